#include "xml/tree.h"
#include "xml/escape.h"
#include "base/err.h"

#include <expat.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define NS_SEP '\1'
#define NS_XML "http://www.w3.org/XML/1998/namespace"

struct mp_xml_parser {
    XML_Parser xp;
    mp_buf head;    /* the wrapper's start tag */
    mp_buf text;    /* character data of the open elements, innermost last */
    mp_arena *a;    /* arena of the parse in progress */
    mp_xnode *root; /* the one element inside the wrapper */
    mp_xnode *cur;  /* innermost open element, NULL at wrapper level */
    mp_xnode *prev; /* last closed child of cur, to append siblings in O(1) */
    int depth;      /* 0 outside the wrapper, 1 inside it, 2+ inside the element */
    int err;
};

mp_xml_parser *
mp_xml_parser_new(void)
{
    mp_xml_parser *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->xp = XML_ParserCreateNS("UTF-8", NS_SEP);
    if (!p->xp) {
        free(p);
        return NULL;
    }
    return p;
}

void
mp_xml_parser_free(mp_xml_parser *p)
{
    if (!p)
        return;
    XML_ParserFree(p->xp);
    mp_buf_free(&p->head);
    mp_buf_free(&p->text);
    free(p);
}

static void
fail(mp_xml_parser *p, int err)
{
    if (!p->err)
        p->err = err;
    XML_StopParser(p->xp, XML_FALSE);
}

/* Attribute arrays are sized to a power of two (at least 4) so set_attr can tell from nattrs
 * alone whether there is room left. */
static int
attr_cap(int n)
{
    if (n == 0)
        return 0;
    int c = 4;
    while (c < n)
        c *= 2;
    return c;
}

static const char *
attr_name(mp_arena *a, const char *name)
{
    const char *sep = strchr(name, NS_SEP);
    if (!sep)
        return mp_arena_strndup(a, name, SIZE_MAX);
    size_t ulen = (size_t)(sep - name);
    if (ulen == strlen(NS_XML) && memcmp(name, NS_XML, ulen) == 0) {
        size_t llen = strlen(sep + 1);
        char *s = mp_arena_alloc(a, 4 + llen + 1);
        if (!s)
            return NULL;
        memcpy(s, "xml:", 4);
        memcpy(s + 4, sep + 1, llen + 1);
        return s;
    }
    return mp_arena_strndup(a, name, SIZE_MAX);
}

static void XMLCALL
on_start(void *ud, const XML_Char *name, const XML_Char **atts)
{
    mp_xml_parser *p = ud;
    if (p->err)
        return;
    int depth = p->depth++;
    if (depth == 0)
        return; /* our wrapper */
    if (depth == 1 && p->root) {
        fail(p, MP_EINVAL); /* a second element */
        return;
    }
    mp_arena *a = p->a;
    mp_xnode *n = mp_arena_alloc(a, sizeof *n);
    if (!n)
        goto nomem;
    memset(n, 0, sizeof *n);

    /* One copy of "uri\1local" serves both fields, split in place. */
    size_t len = strlen(name);
    char *copy = mp_arena_strndup(a, name, len);
    if (!copy)
        goto nomem;
    char *sep = memchr(copy, NS_SEP, len);
    if (sep) {
        *sep = '\0';
        n->ns = copy;
        n->name = sep + 1;
    } else {
        n->ns = "";
        n->name = copy;
    }

    int count = 0;
    while (atts[count * 2])
        count++;
    if (count) {
        n->attrs = mp_arena_alloc(a, (size_t)attr_cap(count) * sizeof *n->attrs);
        if (!n->attrs)
            goto nomem;
        for (int i = 0; i < count; i++) {
            n->attrs[i].name = attr_name(a, atts[2 * i]);
            n->attrs[i].value = mp_arena_strndup(a, atts[2 * i + 1], SIZE_MAX);
            if (!n->attrs[i].name || !n->attrs[i].value)
                goto nomem;
        }
        n->nattrs = count;
    }

    n->parent = p->cur;
    if (!p->cur)
        p->root = n;
    else if (p->prev)
        p->prev->next = n;
    else
        p->cur->children = n;
    /* Until the end tag, text_len holds where this element's text starts in p->text. */
    n->text_len = p->text.len;
    p->cur = n;
    p->prev = NULL;
    return;
nomem:
    fail(p, MP_ENOMEM);
}

static void XMLCALL
on_end(void *ud, const XML_Char *name)
{
    mp_xml_parser *p = ud;
    /* expat still reports the end of an empty element after a stop in its start handler */
    if (p->err)
        return;
    if (--p->depth == 0)
        return;
    mp_xnode *n = p->cur;
    size_t start = n->text_len;
    size_t len = p->text.len - start;
    if (len) {
        n->text = mp_arena_alloc(p->a, len + 1);
        if (!n->text) {
            fail(p, MP_ENOMEM);
            return;
        }
        memcpy(n->text, p->text.data + start, len);
        n->text[len] = '\0';
    } else {
        n->text = "";
    }
    n->text_len = len;
    p->text.len = start;
    p->prev = n;
    p->cur = n->parent;
}

static void XMLCALL
on_text(void *ud, const XML_Char *s, int len)
{
    mp_xml_parser *p = ud;
    if (p->err)
        return;
    if (p->depth <= 1) {
        for (int i = 0; i < len; i++) {
            if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n') {
                fail(p, MP_EINVAL); /* text beside the element */
                return;
            }
        }
        return;
    }
    if (mp_buf_append(&p->text, s, (size_t)len) < 0)
        fail(p, MP_ENOMEM);
}

/* RFC 6120 restricted XML: the framer never lets these through, but trees are also parsed
 * from storage, so refuse them here as well. */
static void XMLCALL
on_comment(void *ud, const XML_Char *data)
{
    fail(ud, MP_EINVAL);
}

static void XMLCALL
on_pi(void *ud, const XML_Char *target, const XML_Char *data)
{
    fail(ud, MP_EINVAL);
}

static void XMLCALL
on_doctype(void *ud, const XML_Char *name, const XML_Char *sysid, const XML_Char *pubid,
           int has_internal_subset)
{
    fail(ud, MP_EINVAL);
}

static void XMLCALL
on_entity_decl(void *ud, const XML_Char *name, int is_param, const XML_Char *value, int vlen,
               const XML_Char *base, const XML_Char *sysid, const XML_Char *pubid,
               const XML_Char *notation)
{
    fail(ud, MP_EINVAL);
}

static int
feed(mp_xml_parser *p, const char *s, size_t len, int final)
{
    if (XML_Parse(p->xp, s, (int)len, final) == XML_STATUS_OK)
        return 0;
    return p->err ? p->err : MP_EINVAL;
}

int
mp_xml_parse(mp_xml_parser *p, mp_arena *a, const char *content_ns, const char *bytes, size_t len,
             mp_xnode **out)
{
    *out = NULL;
    if (len > INT_MAX / 2)
        return MP_EINVAL;
    if (!content_ns)
        content_ns = "";
    /* XML_ParserReset drops the handlers and user data: install them for every parse. */
    if (!XML_ParserReset(p->xp, "UTF-8"))
        return MP_ENOMEM;
    XML_SetUserData(p->xp, p);
    XML_SetElementHandler(p->xp, on_start, on_end);
    XML_SetCharacterDataHandler(p->xp, on_text);
    XML_SetCommentHandler(p->xp, on_comment);
    XML_SetProcessingInstructionHandler(p->xp, on_pi);
    XML_SetStartDoctypeDeclHandler(p->xp, on_doctype);
    XML_SetEntityDeclHandler(p->xp, on_entity_decl);
#ifdef HAVE_XML_SETREPARSEDEFERRALENABLED
    /* All input arrives in one go; deferral would only delay the work to the final call. */
    XML_SetReparseDeferralEnabled(p->xp, XML_FALSE);
#endif
    p->a = a;
    p->root = p->cur = p->prev = NULL;
    p->depth = 0;
    p->err = 0;
    p->text.len = 0;
    p->head.len = 0;

    if (mp_buf_puts(&p->head, "<w xmlns='") < 0 ||
        mp_xml_escape_attr(&p->head, content_ns, strlen(content_ns)) < 0 ||
        mp_buf_puts(&p->head, "'>") < 0)
        return MP_ENOMEM;
    int rc = feed(p, p->head.data, p->head.len, 0);
    if (rc == 0)
        rc = feed(p, bytes, len, 0);
    if (rc == 0)
        rc = feed(p, "</w>", 4, 1);
    if (rc == 0 && (!p->root || p->depth != 0))
        rc = MP_EINVAL;
    p->a = NULL;
    if (rc < 0)
        return rc;
    *out = p->root;
    return 0;
}

const char *
mp_xnode_attr(const mp_xnode *n, const char *name)
{
    for (int i = 0; i < n->nattrs; i++)
        if (strcmp(n->attrs[i].name, name) == 0)
            return n->attrs[i].value;
    return NULL;
}

mp_xnode *
mp_xnode_child(const mp_xnode *n, const char *ns, const char *name)
{
    for (mp_xnode *c = n->children; c; c = c->next) {
        if (ns && strcmp(c->ns, ns) != 0)
            continue;
        if (name && strcmp(c->name, name) != 0)
            continue;
        return c;
    }
    return NULL;
}

static int
put_attr_value(mp_buf *b, const char *v)
{
    if (mp_buf_append(b, "='", 2) < 0 || mp_xml_escape_attr(b, v, strlen(v)) < 0 ||
        mp_buf_append(b, "'", 1) < 0)
        return MP_ENOMEM;
    return 0;
}

/* Length of the URI of a "uri\1local" attribute name, -1 for a name without one. */
static long
uri_len(const char *name)
{
    const char *sep = strchr(name, NS_SEP);
    return sep ? (long)(sep - name) : -1;
}

/* Index of the first attribute with the same URI as attribute i. */
static int
first_of_uri(const mp_xnode *n, int i)
{
    const char *name = n->attrs[i].name;
    long ul = uri_len(name);
    if (ul < 0)
        return i;
    for (int j = 0; j < i; j++)
        if (uri_len(n->attrs[j].name) == ul && memcmp(n->attrs[j].name, name, (size_t)ul) == 0)
            return j;
    return i;
}

/* Namespaced attributes get prefixes a1, a2, ... one per distinct URI in order of first use
 * on this element, so a tree re-serializes to the bytes it was parsed from. */
static int
prefix_of(const mp_xnode *n, int i)
{
    int f = first_of_uri(n, i), prefix = 0;
    for (int k = 0; k <= f; k++)
        if (uri_len(n->attrs[k].name) >= 0 && first_of_uri(n, k) == k)
            prefix++;
    return prefix;
}

static int
put_start_tag(mp_buf *b, const mp_xnode *n, const char *parent_ns)
{
    if (mp_buf_append(b, "<", 1) < 0 || mp_buf_puts(b, n->name) < 0)
        return MP_ENOMEM;
    if (strcmp(n->ns, parent_ns) != 0) {
        if (mp_buf_puts(b, " xmlns") < 0 || put_attr_value(b, n->ns) < 0)
            return MP_ENOMEM;
    }
    for (int i = 0; i < n->nattrs; i++) {
        const char *name = n->attrs[i].name;
        long ul = uri_len(name);
        if (ul < 0) {
            if (mp_buf_append(b, " ", 1) < 0 || mp_buf_puts(b, name) < 0 ||
                put_attr_value(b, n->attrs[i].value) < 0)
                return MP_ENOMEM;
            continue;
        }
        int prefix = prefix_of(n, i);
        if (first_of_uri(n, i) == i) {
            if (mp_buf_printf(b, " xmlns:a%d='", prefix) < 0 ||
                mp_xml_escape_attr(b, name, (size_t)ul) < 0 || mp_buf_append(b, "'", 1) < 0)
                return MP_ENOMEM;
        }
        if (mp_buf_printf(b, " a%d:%s", prefix, name + ul + 1) < 0 ||
            put_attr_value(b, n->attrs[i].value) < 0)
            return MP_ENOMEM;
    }
    return 0;
}

/* Iterative walk over parent/next links: the depth of a tree read from storage is not
 * bounded by the framer, and recursion would put it on the C stack. */
int
mp_xnode_serialize(mp_buf *b, const mp_xnode *n, const char *parent_ns)
{
    const mp_xnode *root = n;
    if (!parent_ns)
        parent_ns = "";
    for (;;) {
        const char *pns = n == root ? parent_ns : n->parent->ns;
        if (put_start_tag(b, n, pns) < 0)
            return MP_ENOMEM;
        if (!n->children && !n->text_len) {
            if (mp_buf_append(b, "/>", 2) < 0)
                return MP_ENOMEM;
        } else {
            if (mp_buf_append(b, ">", 1) < 0 ||
                mp_xml_escape_text(b, n->text ? n->text : "", n->text_len) < 0)
                return MP_ENOMEM;
            if (n->children) {
                n = n->children;
                continue;
            }
            if (mp_buf_append(b, "</", 2) < 0 || mp_buf_puts(b, n->name) < 0 ||
                mp_buf_append(b, ">", 1) < 0)
                return MP_ENOMEM;
        }
        /* n is closed: move to its next sibling, closing ancestors on the way up. */
        for (;;) {
            if (n == root)
                return 0;
            if (n->next) {
                n = n->next;
                break;
            }
            n = n->parent;
            if (mp_buf_append(b, "</", 2) < 0 || mp_buf_puts(b, n->name) < 0 ||
                mp_buf_append(b, ">", 1) < 0)
                return MP_ENOMEM;
        }
    }
}

mp_xnode *
mp_xnode_new(mp_arena *a, const char *ns, const char *name)
{
    mp_xnode *n = mp_arena_alloc(a, sizeof *n);
    if (!n)
        return NULL;
    memset(n, 0, sizeof *n);
    n->ns = ns && *ns ? mp_arena_strndup(a, ns, SIZE_MAX) : "";
    n->name = mp_arena_strndup(a, name, SIZE_MAX);
    n->text = "";
    if (!n->ns || !n->name)
        return NULL;
    return n;
}

/* Replaces the value when the attribute exists; a NULL value removes it. */
int
mp_xnode_set_attr(mp_arena *a, mp_xnode *n, const char *name, const char *value)
{
    for (int i = 0; i < n->nattrs; i++) {
        if (strcmp(n->attrs[i].name, name) != 0)
            continue;
        if (!value) {
            memmove(&n->attrs[i], &n->attrs[i + 1], (size_t)(n->nattrs - i - 1) * sizeof *n->attrs);
            n->nattrs--;
            return 0;
        }
        const char *v = mp_arena_strndup(a, value, SIZE_MAX);
        if (!v)
            return MP_ENOMEM;
        n->attrs[i].value = v;
        return 0;
    }
    if (!value)
        return 0;
    if (n->nattrs == attr_cap(n->nattrs)) {
        if (n->nattrs > INT_MAX / 4)
            return MP_ENOMEM;
        mp_xattr *na = mp_arena_alloc(a, (size_t)attr_cap(n->nattrs + 1) * sizeof *na);
        if (!na)
            return MP_ENOMEM;
        if (n->nattrs)
            memcpy(na, n->attrs, (size_t)n->nattrs * sizeof *na);
        n->attrs = na;
    }
    const char *nm = mp_arena_strndup(a, name, SIZE_MAX);
    const char *v = mp_arena_strndup(a, value, SIZE_MAX);
    if (!nm || !v)
        return MP_ENOMEM;
    n->attrs[n->nattrs].name = nm;
    n->attrs[n->nattrs].value = v;
    n->nattrs++;
    return 0;
}

int
mp_xnode_set_text(mp_arena *a, mp_xnode *n, const char *text, size_t len)
{
    char *t = mp_arena_alloc(a, len + 1);
    if (!t)
        return MP_ENOMEM;
    if (len)
        memcpy(t, text, len);
    t[len] = '\0';
    n->text = t;
    n->text_len = len;
    return 0;
}

void
mp_xnode_append(mp_xnode *parent, mp_xnode *child)
{
    child->parent = parent;
    child->next = NULL;
    mp_xnode **pp = &parent->children;
    while (*pp)
        pp = &(*pp)->next;
    *pp = child;
}
