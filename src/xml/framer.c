#include "xml/framer.h"
#include "xml/escape.h"
#include "base/err.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define NS_SEP '\1'
#define NS_XML "http://www.w3.org/XML/1998/namespace"
/* A token expat holds unparsed is noticed within this many bytes of crossing the size limit. */
#define FEED_SLICE 4096
/* XML_Parse takes an int length. */
#define MAX_PARSE (1u << 30)
/* Buffers are kept between elements (no allocation per stanza) unless together they hold more
 * than this, so an idle connection holds little after a big stanza. */
#define KEEP_BUF 2048

/* Namespace of each open element, to emit xmlns only where it changes. Stored as offsets
 * into one string buffer. */
typedef struct ns_stack {
    mp_buf strings;
    size_t *off;
    int cap;
} ns_stack;

struct framer_priv {
    ns_stack ns;
    mp_buf attrs;         /* unescaped to/type/id of the top-level element */
    int tag_open;         /* "<name attrs" written, '>' not yet */
    int in_parse;         /* inside XML_Parse: the parser must not be freed */
    int halted;           /* a callback stopped the parse and no reset followed */
    XML_Parser next;      /* parser made by a reset asked for inside a callback */
    mp_buf header;        /* the client's raw stream start tag, replayed to rebuild the parser */
    int64_t base;         /* stream input offset of the current parser's byte 0 */
    int replaying;        /* feeding the saved header to a rebuilt parser */
    uint64_t stop_offset; /* input offset at the end of the element a callback stopped on */
    int ns_decls;         /* namespace declarations on the start tag being reported */
};
typedef struct framer_priv framer_priv;

static framer_priv *
priv(mp_framer *f)
{
    return f->priv;
}

static void
fail(mp_framer *f, const char *condition)
{
    if (!f->error)
        f->error = condition;
    XML_StopParser(f->parser, XML_FALSE);
}

static void
fail_too_big(mp_framer *f)
{
    f->too_big = 1;
    fail(f, "policy-violation");
}

/* Expat calls handlers after XML_StopParser until the current token is done (the end handler of
 * an empty element follows its start handler): once failed or stopped, events are ignored. */
static int
dead(const mp_framer *f)
{
    return f->error || f->stopped;
}

static uint64_t
cur_offset(mp_framer *f)
{
    XML_Index i = XML_GetCurrentByteIndex(f->parser);
    return i < 0 ? f->fed : (uint64_t)(priv(f)->base + i);
}

/* Input offset just past the token being reported. */
static uint64_t
event_end(mp_framer *f)
{
    int n = XML_GetCurrentByteCount(f->parser);
    return cur_offset(f) + (uint64_t)(n > 0 ? n : 0);
}

static int
over_limit(mp_framer *f, uint64_t at)
{
    return f->lim.max_element_bytes && at > f->boundary &&
           at - f->boundary > f->lim.max_element_bytes;
}

/* Split "uri\1local" into its parts; names without a namespace have uri "". */
static const char *
split_name(const char *name, const char **uri, size_t *uri_len)
{
    const char *sep = strchr(name, NS_SEP);
    if (!sep) {
        *uri = "";
        *uri_len = 0;
        return name;
    }
    *uri = name;
    *uri_len = (size_t)(sep - name);
    return sep + 1;
}

static int
ns_push(ns_stack *s, int depth, const char *uri, size_t len)
{
    if (depth >= s->cap) {
        int cap = s->cap ? s->cap * 2 : 8;
        size_t *p = realloc(s->off, (size_t)cap * sizeof *p);
        if (!p)
            return MP_ENOMEM;
        s->off = p;
        s->cap = cap;
    }
    s->off[depth] = s->strings.len;
    if (mp_buf_append(&s->strings, uri, len) < 0 || mp_buf_append(&s->strings, "", 1) < 0)
        return MP_ENOMEM;
    return 0;
}

static const char *
ns_at(ns_stack *s, int depth)
{
    return s->strings.data + s->off[depth];
}

static void
ns_pop(ns_stack *s, int depth)
{
    s->strings.len = s->off[depth];
}

static void
release_buffers(mp_framer *f)
{
    framer_priv *p = priv(f);
    f->out.len = 0;
    p->attrs.len = 0;
    p->ns.strings.len = 0;
    if (mp_framer_memory(f) <= KEEP_BUF)
        return;
    mp_buf_free(&f->out);
    mp_buf_free(&p->attrs);
    mp_buf_free(&p->ns.strings);
    free(p->ns.off);
    p->ns.off = NULL;
    p->ns.cap = 0;
}

static int
close_start_tag(mp_framer *f)
{
    framer_priv *p = priv(f);
    if (!p->tag_open)
        return 0;
    p->tag_open = 0;
    return mp_buf_append(&f->out, ">", 1);
}

static int
is_stanza_name(const char *local)
{
    if (strcmp(local, "message") == 0)
        return MP_EL_MESSAGE;
    if (strcmp(local, "presence") == 0)
        return MP_EL_PRESENCE;
    if (strcmp(local, "iq") == 0)
        return MP_EL_IQ;
    return MP_EL_OTHER;
}

static void XMLCALL
on_xmldecl(void *ud, const XML_Char *version, const XML_Char *encoding, int standalone)
{
    mp_framer *f = ud;
    if (dead(f))
        return;
    if (encoding && strcasecmp(encoding, "UTF-8") != 0)
        fail(f, "unsupported-encoding");
}

static void XMLCALL
on_doctype(void *ud, const XML_Char *name, const XML_Char *sysid, const XML_Char *pubid,
           int has_internal_subset)
{
    fail(ud, "restricted-xml");
}

static void XMLCALL
on_comment(void *ud, const XML_Char *data)
{
    fail(ud, "restricted-xml");
}

static void XMLCALL
on_pi(void *ud, const XML_Char *target, const XML_Char *data)
{
    fail(ud, "restricted-xml");
}

static void XMLCALL
on_entity_decl(void *ud, const XML_Char *name, int is_param, const XML_Char *value, int len,
               const XML_Char *base, const XML_Char *sysid, const XML_Char *pubid,
               const XML_Char *notation)
{
    fail(ud, "restricted-xml");
}

static void XMLCALL
on_ns_start(void *ud, const XML_Char *prefix, const XML_Char *uri)
{
    mp_framer *f = ud;
    framer_priv *p = priv(f);
    if (dead(f))
        return;
    /* Counted with the attributes of the element (expat reports declarations first). */
    p->ns_decls++;
    const mp_framer_limits *l = &f->lim;
    if (!p->replaying && ((l->max_attributes && p->ns_decls > l->max_attributes) ||
                          (l->max_name_len && prefix && strlen(prefix) > l->max_name_len) ||
                          (l->max_attr_len && uri && strlen(uri) > l->max_attr_len))) {
        fail(f, "policy-violation");
        return;
    }
    if (f->depth != 0 || prefix)
        return;
    if (!uri || strcmp(uri, f->content_ns) != 0)
        fail(f, "invalid-namespace");
    else
        f->saw_default_ns = 1;
}

static void
stream_header(mp_framer *f, const char *name, const XML_Char **atts)
{
    const char *uri;
    size_t uri_len;
    const char *local = split_name(name, &uri, &uri_len);
    if (strcmp(local, "stream") != 0 || uri_len != strlen(MP_NS_STREAMS) ||
        memcmp(uri, MP_NS_STREAMS, uri_len) != 0 || !f->saw_default_ns) {
        fail(f, "invalid-namespace");
        return;
    }
    mp_stream_header h = {0};
    for (int i = 0; atts[i]; i += 2) {
        const char *a = atts[i], *v = atts[i + 1];
        if (strcmp(a, "to") == 0)
            h.to = v;
        else if (strcmp(a, "from") == 0)
            h.from = v;
        else if (strcmp(a, "version") == 0)
            h.version = v;
        else if (strcmp(a, "id") == 0)
            h.id = v;
        else if (strcmp(a, NS_XML "\1lang") == 0)
            h.lang = v;
    }
    f->depth = 1;
    framer_priv *p = priv(f);
    if (p->replaying)
        return; /* a rebuilt parser catching up: the stream was opened long ago */
    if (over_limit(f, event_end(f))) {
        fail_too_big(f);
        return;
    }
    f->boundary = event_end(f);
    /* Keep the start tag as sent, so an idle stream's parser can be freed and rebuilt in the
     * same state (same prefixes and namespaces in scope). */
    int off = 0, size = 0, n = XML_GetCurrentByteCount(f->parser);
    const char *ctx = XML_GetInputContext(f->parser, &off, &size);
    mp_buf_free(&p->header);
    if (ctx && n > 0 && off >= 0 && off + n <= size && (p->header.data = malloc((size_t)n))) {
        /* exact size: it is kept for the stream's lifetime */
        memcpy(p->header.data, ctx + off, (size_t)n);
        p->header.len = p->header.cap = (size_t)n;
    }
    int stop = f->cb->stream_open ? f->cb->stream_open(f->ud, &h) : 0;
    if (stop && !f->stopped) {
        f->stopped = 1;
        priv(f)->stop_offset = f->boundary;
        XML_StopParser(f->parser, XML_FALSE);
    }
}

/* Keep an unescaped copy of a routing attribute: the router compares JIDs and ids as values. */
static int
save_attr(mp_framer *f, size_t *off, size_t *len, int *has, const char *v, size_t vlen)
{
    mp_buf *a = &priv(f)->attrs;
    *off = a->len;
    *len = vlen;
    *has = 1;
    return mp_buf_append(a, v, vlen) < 0 || mp_buf_append(a, "", 1) < 0 ? MP_ENOMEM : 0;
}

static int
write_attrs(mp_framer *f, const XML_Char **atts, int top, int stamp)
{
    mp_buf *o = &f->out;
    const char *last_uri = NULL;
    size_t last_len = 0;
    int prefixes = 0;
    for (int i = 0; atts[i]; i += 2) {
        const char *uri;
        size_t uri_len;
        const char *local = split_name(atts[i], &uri, &uri_len);
        const char *v = atts[i + 1];
        size_t vlen = strlen(v);
        if (uri_len == 0) {
            if (stamp && strcmp(local, "from") == 0)
                continue;
            /* to='' addresses nobody: the router takes it as absent and adds its own 'to' to
             * broadcasts, so it must not stay in the bytes (a duplicate attribute) */
            if (top && vlen == 0 && strcmp(local, "to") == 0)
                continue;
            if (mp_buf_append(o, " ", 1) < 0 || mp_buf_puts(o, local) < 0 ||
                mp_buf_append(o, "='", 2) < 0)
                return MP_ENOMEM;
            if (mp_xml_escape_attr(o, v, vlen) < 0 || mp_buf_append(o, "'", 1) < 0)
                return MP_ENOMEM;
            int r = 0;
            if (top && strcmp(local, "to") == 0)
                r = save_attr(f, &f->to_off, &f->to_len, &f->has_to, v, vlen);
            else if (top && strcmp(local, "type") == 0)
                r = save_attr(f, &f->type_off, &f->type_len, &f->has_type, v, vlen);
            else if (top && strcmp(local, "id") == 0)
                r = save_attr(f, &f->id_off, &f->id_len, &f->has_id, v, vlen);
            if (r < 0)
                return r;
            continue;
        }
        if (uri_len == strlen(NS_XML) && memcmp(uri, NS_XML, uri_len) == 0) {
            if (mp_buf_printf(o, " xml:%s='", local) < 0)
                return MP_ENOMEM;
        } else {
            if (!last_uri || last_len != uri_len || memcmp(last_uri, uri, uri_len) != 0) {
                prefixes++;
                if (mp_buf_printf(o, " xmlns:a%d='", prefixes) < 0 ||
                    mp_xml_escape_attr(o, uri, uri_len) < 0 || mp_buf_append(o, "'", 1) < 0)
                    return MP_ENOMEM;
                last_uri = uri;
                last_len = uri_len;
            }
            if (mp_buf_printf(o, " a%d:%s='", prefixes, local) < 0)
                return MP_ENOMEM;
        }
        if (mp_xml_escape_attr(o, v, vlen) < 0 || mp_buf_append(o, "'", 1) < 0)
            return MP_ENOMEM;
    }
    return 0;
}

/* A name "uri\1local" within the limits: the local part is a name, the URI a value. */
static int
name_ok(const mp_framer_limits *l, const char *name)
{
    const char *uri;
    size_t uri_len;
    const char *local = split_name(name, &uri, &uri_len);
    return (!l->max_name_len || strlen(local) <= l->max_name_len) &&
           (!l->max_attr_len || uri_len <= l->max_attr_len);
}

/* The per-tag limits: attributes (namespace declarations included), names and values. */
static int
start_tag_ok(mp_framer *f, const char *name, const XML_Char **atts)
{
    framer_priv *p = priv(f);
    const mp_framer_limits *l = &f->lim;
    int decls = p->ns_decls;
    p->ns_decls = 0;
    if (p->replaying)
        return 1; /* the saved header passed when it was first parsed */
    int n = 0;
    while (atts[2 * n])
        n++;
    if (l->max_attributes && n + decls > l->max_attributes)
        goto bad;
    if (!name_ok(l, name))
        goto bad;
    for (int i = 0; atts[i]; i += 2)
        if (!name_ok(l, atts[i]) || (l->max_attr_len && strlen(atts[i + 1]) > l->max_attr_len))
            goto bad;
    return 1;
bad:
    fail(f, "policy-violation");
    return 0;
}

static void XMLCALL
on_start(void *ud, const XML_Char *name, const XML_Char **atts)
{
    mp_framer *f = ud;
    framer_priv *p = priv(f);
    if (dead(f) || !start_tag_ok(f, name, atts))
        return;
    if (f->depth == 0) {
        stream_header(f, name, atts);
        return;
    }
    if (f->depth == 1) {
        f->boundary = cur_offset(f);
        f->out.len = 0;
        f->elements = 0;
        f->has_to = f->has_type = f->has_id = 0;
        p->ns.strings.len = 0;
        p->attrs.len = 0;
        p->tag_open = 0;
        if (ns_push(&p->ns, 1, f->content_ns, strlen(f->content_ns)) < 0) {
            fail(f, "resource-constraint");
            return;
        }
    }
    if (over_limit(f, event_end(f))) {
        fail_too_big(f);
        return;
    }
    f->elements++;
    if (f->lim.max_elements && f->elements > f->lim.max_elements) {
        fail_too_big(f);
        return;
    }
    if (f->lim.max_depth && f->depth > f->lim.max_depth) {
        fail(f, "policy-violation");
        return;
    }
    const char *uri;
    size_t uri_len;
    const char *local = split_name(name, &uri, &uri_len);
    if (uri_len == strlen(NS_XML) && memcmp(uri, NS_XML, uri_len) == 0) {
        /* <xml:foo/>: expat accepts it, but the XML namespace cannot be made the default
         * one, so there is no canonical form. */
        fail(f, "bad-namespace-prefix");
        return;
    }
    const char *parent = ns_at(&p->ns, f->depth);
    int same_ns = strlen(parent) == uri_len && memcmp(parent, uri, uri_len) == 0;
    int top = f->depth == 1;
    int stamp = top && f->stamp_from && same_ns && is_stanza_name(local) != MP_EL_OTHER;
    if (close_start_tag(f) < 0 || mp_buf_append(&f->out, "<", 1) < 0 ||
        mp_buf_puts(&f->out, local) < 0)
        goto nomem;
    if (!same_ns) {
        if (mp_buf_append(&f->out, " xmlns='", 8) < 0 ||
            mp_xml_escape_attr(&f->out, uri, uri_len) < 0 || mp_buf_append(&f->out, "'", 1) < 0)
            goto nomem;
    }
    if (stamp) {
        if (mp_buf_append(&f->out, " from='", 7) < 0 ||
            mp_xml_escape_attr(&f->out, f->stamp_from, f->stamp_from_len) < 0 ||
            mp_buf_append(&f->out, "'", 1) < 0)
            goto nomem;
    }
    if (write_attrs(f, atts, top, stamp) < 0)
        goto nomem;
    p->tag_open = 1;
    f->depth++;
    if (ns_push(&p->ns, f->depth, uri, uri_len) < 0)
        goto nomem;
    return;
nomem:
    fail(f, "resource-constraint");
}

static void
element_done(mp_framer *f, const char *name)
{
    framer_priv *p = priv(f);
    const char *uri;
    size_t uri_len;
    const char *local = split_name(name, &uri, &uri_len);
    uint64_t end = event_end(f);
    mp_element el = {0};
    el.bytes = f->out.data;
    el.len = f->out.len;
    el.name = local;
    /* The namespace string lives in the ns stack at depth 2 (the element's own entry). */
    el.ns = ns_at(&p->ns, 2);
    el.kind = strcmp(el.ns, f->content_ns) == 0 ? is_stanza_name(local) : MP_EL_OTHER;
    el.raw_len = (size_t)(end - f->boundary);
    if (f->has_to) {
        el.to = p->attrs.data + f->to_off;
        el.to_len = f->to_len;
    }
    if (f->has_type) {
        el.type = p->attrs.data + f->type_off;
        el.type_len = f->type_len;
    }
    if (f->has_id) {
        el.id = p->attrs.data + f->id_off;
        el.id_len = f->id_len;
    }
    f->boundary = end;
    int stop = f->cb->element(f->ud, &el);
    release_buffers(f);
    if (stop && !f->stopped) {
        f->stopped = 1;
        p->stop_offset = end;
        XML_StopParser(f->parser, XML_FALSE);
    }
}

static void XMLCALL
on_end(void *ud, const XML_Char *name)
{
    mp_framer *f = ud;
    framer_priv *p = priv(f);
    if (dead(f))
        return;
    if (f->depth == 1) {
        f->depth = 0;
        f->boundary = event_end(f);
        if (f->cb->stream_close)
            f->cb->stream_close(f->ud);
        return;
    }
    if (over_limit(f, event_end(f))) {
        fail_too_big(f);
        return;
    }
    int r;
    if (p->tag_open) {
        p->tag_open = 0;
        r = mp_buf_append(&f->out, "/>", 2);
    } else {
        const char *uri;
        size_t uri_len;
        const char *local = split_name(name, &uri, &uri_len);
        r = mp_buf_append(&f->out, "</", 2);
        if (r == 0)
            r = mp_buf_puts(&f->out, local);
        if (r == 0)
            r = mp_buf_append(&f->out, ">", 1);
    }
    if (r < 0) {
        fail(f, "resource-constraint");
        return;
    }
    ns_pop(&p->ns, f->depth);
    f->depth--;
    if (f->depth == 1)
        element_done(f, name);
}

static void XMLCALL
on_text(void *ud, const XML_Char *s, int len)
{
    mp_framer *f = ud;
    if (dead(f) || f->depth < 1)
        return;
    if (f->depth == 1) {
        for (int i = 0; i < len; i++) {
            if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n') {
                fail(f, "bad-format");
                return;
            }
        }
        /* Not len: expat reports "\r\n" as one "\n". */
        f->boundary = event_end(f);
        return;
    }
    if (over_limit(f, event_end(f))) {
        fail_too_big(f);
        return;
    }
    if (close_start_tag(f) < 0 || mp_xml_escape_text(&f->out, s, (size_t)len) < 0)
        fail(f, "resource-constraint");
}

static XML_Parser
create_parser(mp_framer *f)
{
    XML_Parser x = XML_ParserCreateNS("UTF-8", NS_SEP);
    if (!x)
        return NULL;
    XML_SetUserData(x, f);
    XML_SetXmlDeclHandler(x, on_xmldecl);
    XML_SetStartDoctypeDeclHandler(x, on_doctype);
    XML_SetCommentHandler(x, on_comment);
    XML_SetProcessingInstructionHandler(x, on_pi);
    XML_SetEntityDeclHandler(x, on_entity_decl);
    XML_SetStartNamespaceDeclHandler(x, on_ns_start);
    XML_SetElementHandler(x, on_start, on_end);
    XML_SetCharacterDataHandler(x, on_text);
    XML_SetParamEntityParsing(x, XML_PARAM_ENTITY_PARSING_NEVER);
#ifdef HAVE_XML_SETREPARSEDEFERRALENABLED
    /* Streams must see each element as soon as its bytes are in (CVE-2023-52425 fix
     * otherwise holds back small tokens). */
    XML_SetReparseDeferralEnabled(x, XML_FALSE);
#endif
    return x;
}

static void
reset_state(mp_framer *f)
{
    framer_priv *p = priv(f);
    f->depth = 0;
    f->elements = 0;
    f->saw_default_ns = 0;
    f->stopped = 0;
    f->error = NULL;
    f->too_big = 0;
    f->fed = 0;
    f->boundary = 0;
    f->has_to = f->has_type = f->has_id = 0;
    p->tag_open = 0;
    p->ns_decls = 0;
    p->halted = 0;
    p->base = 0;
    p->replaying = 0;
    mp_buf_free(&p->header);
    release_buffers(f);
}

int
mp_framer_init(mp_framer *f, const char *content_ns, const mp_framer_limits *lim,
               const mp_framer_cb *cb, void *ud)
{
    memset(f, 0, sizeof *f);
    f->cb = cb;
    f->ud = ud;
    f->lim = *lim;
    f->content_ns = content_ns;
    framer_priv *p = calloc(1, sizeof *p);
    if (!p)
        return MP_ENOMEM;
    f->priv = p;
    f->parser = create_parser(f);
    if (!f->parser) {
        free(p);
        f->priv = NULL;
        return MP_ENOMEM;
    }
    return 0;
}

void
mp_framer_free(mp_framer *f)
{
    if (f->parser)
        XML_ParserFree(f->parser);
    f->parser = NULL;
    framer_priv *p = priv(f);
    if (p) {
        if (p->next)
            XML_ParserFree(p->next);
        mp_buf_free(&p->ns.strings);
        mp_buf_free(&p->attrs);
        mp_buf_free(&p->header);
        free(p->ns.off);
        free(p);
    }
    f->priv = NULL;
    mp_buf_free(&f->out);
    free(f->stamp_from);
    f->stamp_from = NULL;
}

int
mp_framer_reset(mp_framer *f)
{
    framer_priv *p = priv(f);
    XML_Parser x = create_parser(f);
    if (!x) {
        if (!f->error)
            f->error = "resource-constraint";
        return MP_ENOMEM;
    }
    if (p->in_parse) {
        /* Called from a callback (STARTTLS): expat is still on the stack, so the swap waits
         * until XML_Parse returns, and the parse stops at the end of the current element. */
        if (p->next)
            XML_ParserFree(p->next);
        p->next = x;
        if (!f->stopped) {
            f->stopped = 1;
            p->stop_offset = event_end(f);
            XML_StopParser(f->parser, XML_FALSE);
        }
        return 0;
    }
    if (f->parser)
        XML_ParserFree(f->parser);
    f->parser = x;
    reset_state(f);
    return 0;
}

void
mp_framer_set_limits(mp_framer *f, const mp_framer_limits *lim)
{
    f->lim = *lim;
}

int
mp_framer_set_from(mp_framer *f, const char *from, size_t len)
{
    free(f->stamp_from);
    f->stamp_from = NULL;
    f->stamp_from_len = 0;
    if (!from)
        return 0;
    f->stamp_from = malloc(len + 1);
    if (!f->stamp_from)
        return MP_ENOMEM;
    memcpy(f->stamp_from, from, len);
    f->stamp_from[len] = '\0';
    f->stamp_from_len = len;
    return 0;
}

/* Rebuild the parser of a hibernated stream: a fresh parser is fed the saved start tag, so it
 * stands inside the stream element again; input offsets continue where they were. */
static int
wake(mp_framer *f)
{
    framer_priv *p = priv(f);
    f->parser = create_parser(f);
    if (!f->parser) {
        f->error = "resource-constraint";
        return MP_ENOMEM;
    }
    p->base = (int64_t)f->fed - (int64_t)p->header.len;
    f->depth = 0; /* the replayed start tag takes it back to 1 */
    p->replaying = 1;
    p->in_parse = 1;
    enum XML_Status st = XML_Parse(f->parser, p->header.data, (int)p->header.len, XML_FALSE);
    p->in_parse = 0;
    p->replaying = 0;
    if (st != XML_STATUS_OK || f->error || f->depth != 1) {
        f->error = "internal-server-error";
        return MP_EINVAL;
    }
    return 0;
}

int
mp_framer_hibernate(mp_framer *f)
{
    framer_priv *p = priv(f);
    if (!f->parser || !p || f->error || f->stopped || p->halted || p->in_parse || p->next ||
        f->depth != 1 || f->fed != f->boundary || p->header.len == 0)
        return 0;
    XML_ParserFree(f->parser);
    f->parser = NULL;
    mp_buf_free(&f->out);
    mp_buf_free(&p->attrs);
    mp_buf_free(&p->ns.strings);
    free(p->ns.off);
    p->ns.off = NULL;
    p->ns.cap = 0;
    return 1;
}

int
mp_framer_feed(mp_framer *f, const char *data, size_t len, size_t *consumed)
{
    framer_priv *p = priv(f);
    uint64_t start = f->fed;
    *consumed = 0;
    if (f->error)
        return MP_EINVAL;
    if (p->halted || p->in_parse) {
        /* The parser was stopped without a reset, or this is a feed from a callback. */
        f->error = "internal-server-error";
        return MP_EINVAL;
    }
    if (!f->parser && wake(f) < 0) {
        *consumed = len;
        return MP_EINVAL;
    }
    size_t off = 0;
    while (off < len) {
        size_t n = len - off;
        size_t max = f->lim.max_element_bytes;
        if (max) {
            /* Parse in one go what cannot take the open element more than FEED_SLICE bytes
             * past the limit: a big read is one XML_Parse call (expat rescans a token it holds
             * on every call), a huge token is still refused early. */
            uint64_t held = f->fed - f->boundary;
            uint64_t room = FEED_SLICE + (held < max ? max - held : 0);
            if (n > room)
                n = (size_t)room;
        }
        if (n > MAX_PARSE)
            n = MAX_PARSE;
        f->fed += n;
        p->in_parse = 1;
        enum XML_Status st = XML_Parse(f->parser, data + off, (int)n, XML_FALSE);
        p->in_parse = 0;
        if (f->stopped) {
            *consumed = (size_t)(p->stop_offset - start);
            if (p->next) {
                XML_ParserFree(f->parser);
                f->parser = p->next;
                p->next = NULL;
                reset_state(f);
                return MP_AGAIN;
            }
            p->halted = 1;
            return MP_AGAIN;
        }
        if (st != XML_STATUS_OK || f->error) {
            if (!f->error)
                f->error = "not-well-formed";
            *consumed = len;
            return MP_EINVAL;
        }
        off += n;
        /* A token expat holds unparsed (a huge attribute, say) is counted here. */
        if (over_limit(f, f->fed)) {
            f->too_big = 1;
            f->error = "policy-violation";
            *consumed = len;
            return MP_EINVAL;
        }
    }
    *consumed = len;
    return 0;
}

size_t
mp_framer_memory(const mp_framer *f)
{
    const framer_priv *p = f->priv;
    if (!p)
        return f->out.cap;
    return f->out.cap + p->attrs.cap + p->ns.strings.cap + p->header.cap +
           (size_t)p->ns.cap * sizeof(size_t);
}
