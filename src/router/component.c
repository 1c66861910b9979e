/* Services in the core: components, delivery of stanzas services build, IQs the server waits
 * answers for, and the hooks modules listen on (include/magpie/module.h, "Services").
 *
 * A component's stanzas take the same path as a user's: the router finds the component by the
 * domain of 'to' (a scan of a few names: there is one per service and host), IQ get/set go to a
 * handler found by one hash lookup, the rest to the component's function. What a service sends
 * goes out through mp_core_deliver, which inserts 'to' while copying into the recipient's ring,
 * so a room's message is serialized once for all its occupants. */
#include "router/component.h"
#include "router/archive.h"
#include "router/core_int.h"
#include "router/privacy.h"
#include "magpie/module.h"
#include "base/config.h"
#include "base/err.h"
#include "base/log.h"
#include "storage/store.h"
#include "xml/escape.h"
#include "xml/framer.h"
#include "xmpp/jid.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NS_STANZAS "urn:ietf:params:xml:ns:xmpp-stanzas"
#define IQ_TIMEOUT_MS 30000
#define IQ_SWEEP_MS 1000

struct mp_component {
    struct mp_module *module;
    mp_component_fn fn;
    void *ud;
    char *label;
    char **domains; /* "<label>.<host>", one per configured host */
    size_t *domain_lens;
};

typedef struct pending_iq {
    mp_hnode by_id;
    struct pending_iq *prev, *next; /* all of them, for the sweep */
    uint64_t deadline;
    mp_iq_answer_fn fn;
    void *ud;
    size_t to_len;
    char id[24];
    char to[]; /* the JID asked: only it may answer */
} pending_iq;

typedef struct presence_hook {
    mp_presence_hook fn;
    void *ud;
} presence_hook;

typedef struct offline_hook {
    mp_offline_hook fn;
    void *ud;
} offline_hook;

struct mp_services {
    mp_component *components;
    size_t ncomponents;
    mp_htab pending;
    pending_iq *pending_list;
    uint64_t iq_seq;
    uv_timer_t iq_timer;
    int timer_on, stopped;
    presence_hook *presence_hooks;
    size_t npresence_hooks;
    offline_hook *offline_hooks;
    size_t noffline_hooks;
    mp_buf buf; /* offline copies with their 'to' */
};

/* ---- helpers ---- */

static int
kind_of(const char *bytes, size_t len)
{
    if (len > 8 && memcmp(bytes, "<message", 8) == 0)
        return MP_STANZA_MESSAGE;
    if (len > 9 && memcmp(bytes, "<presence", 9) == 0)
        return MP_STANZA_PRESENCE;
    if (len > 3 && memcmp(bytes, "<iq", 3) == 0 && (bytes[3] == ' ' || bytes[3] == '>'))
        return MP_STANZA_IQ;
    return 0;
}

static const char *const kind_names[] = {"", "message", "presence", "iq"};

static size_t
unescape(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 1 < cap;) {
        if (s[i] != '&') {
            out[o++] = s[i++];
            continue;
        }
        const char *semi = memchr(s + i, ';', n - i);
        size_t el = semi ? (size_t)(semi - (s + i)) + 1 : 0;
        static const struct {
            const char *e;
            char c;
        } ents[] = {
            {"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&apos;", '\''}, {"&quot;", '"'}};
        int done = 0;
        for (size_t k = 0; k < sizeof ents / sizeof ents[0] && !done; k++) {
            if (el == strlen(ents[k].e) && memcmp(s + i, ents[k].e, el) == 0) {
                out[o++] = ents[k].c;
                i += el;
                done = 1;
            }
        }
        if (!done && el > 3 && s[i + 1] == '#') {
            unsigned long v =
                s[i + 2] == 'x' ? strtoul(s + i + 3, NULL, 16) : strtoul(s + i + 2, NULL, 10);
            unsigned char u[4];
            size_t un = 0;
            if (v < 0x80) {
                u[un++] = (unsigned char)v;
            } else if (v < 0x800) {
                u[un++] = (unsigned char)(0xc0 | (v >> 6));
                u[un++] = (unsigned char)(0x80 | (v & 0x3f));
            } else if (v < 0x10000) {
                u[un++] = (unsigned char)(0xe0 | (v >> 12));
                u[un++] = (unsigned char)(0x80 | ((v >> 6) & 0x3f));
                u[un++] = (unsigned char)(0x80 | (v & 0x3f));
            } else {
                u[un++] = (unsigned char)(0xf0 | ((v >> 18) & 0x07));
                u[un++] = (unsigned char)(0x80 | ((v >> 12) & 0x3f));
                u[un++] = (unsigned char)(0x80 | ((v >> 6) & 0x3f));
                u[un++] = (unsigned char)(0x80 | (v & 0x3f));
            }
            for (size_t k = 0; k < un && o + 1 < cap; k++)
                out[o++] = (char)u[k];
            i += el;
            done = 1;
        }
        if (!done)
            out[o++] = s[i++];
    }
    out[o] = '\0';
    return o;
}

int
mp_start_tag_attr(const char *bytes, size_t len, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    char quote = 0;
    for (size_t i = 1; i < len; i++) {
        char c = bytes[i];
        if (quote) {
            if (c == quote)
                quote = 0;
            continue;
        }
        if (c == '>')
            return -1;
        if (c == '\'' || c == '"') {
            quote = c;
            continue;
        }
        if ((c == ' ' || c == '\t' || c == '\n' || c == '\r') && i + nl + 2 < len &&
            memcmp(bytes + i + 1, name, nl) == 0 && bytes[i + 1 + nl] == '=') {
            char q = bytes[i + 2 + nl];
            if (q != '\'' && q != '"')
                return -1;
            const char *v = bytes + i + 3 + nl;
            const char *end = memchr(v, q, len - (size_t)(v - bytes));
            if (!end || (size_t)(end - v) >= cap)
                return -1;
            return (int)unescape(v, (size_t)(end - v), out, cap);
        }
    }
    return -1;
}

/* "node@domain/resource" split without preparation: services hand us prepared JIDs, and the
 * stringprep of every recipient of a room's message would cost more than the delivery. */
static int
split_prepared(const char *s, size_t len, mp_jid *j)
{
    const char *slash = memchr(s, '/', len);
    size_t bare = slash ? (size_t)(slash - s) : len;
    const char *at = memchr(s, '@', bare);
    size_t nl = at ? (size_t)(at - s) : 0;
    size_t dstart = at ? nl + 1 : 0;
    size_t dl = bare - dstart;
    size_t rl = slash ? len - bare - 1 : 0;
    if (dl == 0 || nl > MP_JID_PART_MAX || dl > MP_JID_PART_MAX || rl > MP_JID_PART_MAX ||
        (at && nl == 0) || (slash && rl == 0))
        return MP_EINVAL;
    memcpy(j->node, s, nl);
    j->node[nl] = '\0';
    j->node_len = nl;
    memcpy(j->domain, s + dstart, dl);
    j->domain[dl] = '\0';
    j->domain_len = dl;
    if (rl)
        memcpy(j->resource, slash + 1, rl);
    j->resource[rl] = '\0';
    j->resource_len = rl;
    return 0;
}

/* ---- components ---- */

const mp_component *
mp_component_find(mp_core *core, const char *domain, size_t len)
{
    struct mp_services *sv = core->services;
    if (!sv)
        return NULL;
    for (size_t i = 0; i < sv->ncomponents; i++) {
        const mp_component *c = &sv->components[i];
        for (size_t h = 0; h < core->cfg->nhosts; h++)
            if (c->domain_lens[h] == len && memcmp(c->domains[h], domain, len) == 0)
                return c;
    }
    return NULL;
}

static char *
make_domain(const char *label, const char *host)
{
    size_t n = strlen(label) + 1 + strlen(host) + 1;
    char *d = malloc(n);
    if (d)
        snprintf(d, n, "%s.%s", label, host);
    return d;
}

int
mp_module_component(mp_module *m, const char *label, mp_component_fn fn, void *ud)
{
    mp_core *core = mp_module_core(m);
    struct mp_services *sv = core->services;
    if (!sv || !label || !*label || !fn)
        return MP_EINVAL;
    for (size_t i = 0; i < sv->ncomponents; i++) {
        if (strcmp(sv->components[i].label, label) == 0) {
            mp_err("module %s: '%s' is already served by another module", mp_module_name(m), label);
            return MP_EEXIST;
        }
    }
    for (size_t h = 0; h < core->cfg->nhosts; h++) {
        char d[MP_JID_MAX];
        snprintf(d, sizeof d, "%s.%s", label, core->cfg->hosts[h]);
        if (mp_config_is_host(core->cfg, d, strlen(d))) {
            mp_err("module %s: %s is a host of its own, not a component", mp_module_name(m), d);
            return MP_EINVAL;
        }
    }
    mp_component *v = realloc(sv->components, (sv->ncomponents + 1) * sizeof *v);
    if (!v)
        return MP_ENOMEM;
    sv->components = v;
    mp_component *c = &v[sv->ncomponents];
    memset(c, 0, sizeof *c);
    c->module = m;
    c->fn = fn;
    c->ud = ud;
    c->label = strdup(label);
    c->domains = calloc(core->cfg->nhosts ? core->cfg->nhosts : 1, sizeof *c->domains);
    c->domain_lens = calloc(core->cfg->nhosts ? core->cfg->nhosts : 1, sizeof *c->domain_lens);
    int ok = c->label && c->domains && c->domain_lens;
    for (size_t h = 0; ok && h < core->cfg->nhosts; h++) {
        c->domains[h] = make_domain(label, core->cfg->hosts[h]);
        ok = c->domains[h] != NULL;
        if (ok)
            c->domain_lens[h] = strlen(c->domains[h]);
    }
    if (!ok) {
        for (size_t h = 0; c->domains && h < core->cfg->nhosts; h++)
            free(c->domains[h]);
        free(c->domains);
        free(c->domain_lens);
        free(c->label);
        return MP_ENOMEM;
    }
    sv->ncomponents++;
    mp_info("module %s serves %s.<host>", mp_module_name(m), label);
    return 0;
}

static int
component_key(char *buf, size_t cap, int type, const char *label, const char *ns, const char *name)
{
    int n = snprintf(buf, cap, "%s|c:%s|%s|%s", type == MP_IQ_SET ? "set" : "get", label, ns, name);
    return n < 0 || (size_t)n >= cap ? MP_ELIMIT : n;
}

int
mp_module_component_iq(mp_module *m, const char *label, int type, const char *ns, const char *name,
                       mp_iq_fn fn, void *ud)
{
    char key[512];
    int len = component_key(key, sizeof key, type, label, ns, name);
    if (len < 0)
        return len;
    return mp_iq_handler_add(mp_module_core(m), m, key, (size_t)len, fn, ud);
}

const char *
mp_component_jid(mp_core *core, const char *label, int i, char *buf, size_t cap)
{
    if (i < 0 || (size_t)i >= core->cfg->nhosts)
        return NULL;
    int n = snprintf(buf, cap, "%s.%s", label, core->cfg->hosts[i]);
    return n < 0 || (size_t)n >= cap ? NULL : buf;
}

void
mp_core_components(mp_core *core, int host, void (*cb)(const char *, const char *, void *),
                   void *ud)
{
    struct mp_services *sv = core->services;
    if (!sv || host < 0 || (size_t)host >= core->cfg->nhosts)
        return;
    for (size_t i = 0; i < sv->ncomponents; i++)
        cb(sv->components[i].domains[host], sv->components[i].label, ud);
}

/* mp_stanza with the lazily parsed tree behind it (mp_stanza_tree casts to it: every
 * mp_stanza the core hands out is one). */
typedef struct stanza_ext {
    mp_stanza pub;
    mp_xnode *tree;
    int tried;
} stanza_ext;

mp_xnode *
mp_stanza_tree(mp_stanza *st)
{
    stanza_ext *x = (stanza_ext *)st;
    if (!x->tried) {
        x->tried = 1;
        if (mp_xml_parse(st->core->parser, st->arena, "jabber:client", st->bytes, st->len,
                         &x->tree) < 0)
            x->tree = NULL;
    }
    return x->tree;
}

int
mp_stanza_error(mp_stanza *st, const char *type, const char *condition, const char *text)
{
    if (strcmp(st->type, "error") == 0 ||
        (st->kind == MP_STANZA_IQ && strcmp(st->type, "result") == 0))
        return 0; /* never answer an error with an error */
    if (st->kind < MP_STANZA_MESSAGE || st->kind > MP_STANZA_IQ)
        return MP_EINVAL;
    mp_buf b = {0};
    mp_buf_printf(&b, "<%s type='error' from='", kind_names[st->kind]);
    mp_xml_escape_attr(&b, st->to, strlen(st->to));
    mp_buf_puts(&b, "'");
    if (st->id[0]) {
        mp_buf_puts(&b, " id='");
        mp_xml_escape_attr(&b, st->id, strlen(st->id));
        mp_buf_puts(&b, "'");
    }
    mp_buf_printf(&b, "><error type='%s'><%s xmlns='" NS_STANZAS "'/>", type, condition);
    if (text) {
        mp_buf_puts(&b, "<text xmlns='" NS_STANZAS "'>");
        mp_xml_escape_text(&b, text, strlen(text));
        mp_buf_puts(&b, "</text>");
    }
    int rc = mp_buf_printf(&b, "</error></%s>", kind_names[st->kind]);
    if (rc == 0)
        rc = mp_core_deliver(st->core, st->to, st->from, strlen(st->from), b.data, b.len,
                             MP_DELIVER_NO_OFFLINE);
    mp_buf_free(&b);
    return rc < 0 && rc != MP_ENOTFOUND ? rc : 0;
}

static int
component_iq(mp_core *core, const mp_component *c, stanza_ext *x, mp_cstream *s)
{
    mp_stanza *st = &x->pub;
    int type = strcmp(st->type, "set") == 0 ? MP_IQ_SET : MP_IQ_GET;
    mp_xnode *el = mp_stanza_tree(st);
    if (!el)
        return MP_ENOTFOUND;
    mp_xnode *payload = el->children;
    if (!payload || payload->next) { /* RFC 6120 §8.2.3 */
        mp_stanza_error(st, "modify", "bad-request", NULL);
        return 0;
    }
    char key[512];
    int len = component_key(key, sizeof key, type, c->label, payload->ns, payload->name);
    mp_iq_handler *ih = len > 0 ? mp_iq_handler_find(core, key, (size_t)len) : NULL;
    if (!ih || !s)
        return c->fn(st, c->ud); /* to a nick, or sent by a service: the component decides */
    mp_iq iq = {.core = core,
                .module = ih->module,
                .type = type,
                .target = MP_TARGET_COMPONENT,
                .from = st->from,
                .to = st->to,
                .to_attr = st->to,
                .id = st->id,
                .stanza = el,
                .payload = payload,
                .arena = st->arena,
                .conn = st->conn};
    return ih->fn(&iq, ih->ud) == 0 ? 0 : MP_ENOTFOUND;
}

int
mp_component_stanza(mp_core *core, const mp_component *c, mp_cstream *s, const char *from,
                    size_t from_len, const mp_jid *to, int kind, const char *bytes, size_t len)
{
    char fromz[MP_JID_MAX], toz[MP_JID_MAX], type[32], id[1024];
    if (from_len >= sizeof fromz)
        return MP_EINVAL;
    memcpy(fromz, from, from_len);
    fromz[from_len] = '\0';
    if (mp_jid_full(to, toz, sizeof toz) < 0)
        return MP_EINVAL;
    if (mp_start_tag_attr(bytes, len, "type", type, sizeof type) < 0)
        type[0] = '\0';
    if (mp_start_tag_attr(bytes, len, "id", id, sizeof id) < 0)
        id[0] = '\0';
    /* A stanza from a session uses the core's per-stanza arena; one a service sent may come
     * while that arena is in use (a room's handler delivering to another component), so it
     * gets its own. */
    mp_arena own;
    mp_arena *arena = &core->arena;
    if (!s) {
        mp_arena_init(&own, 2048);
        arena = &own;
    }
    stanza_ext x = {.pub = {.core = core,
                            .kind = kind,
                            .from = fromz,
                            .to = toz,
                            .to_node = to->node,
                            .to_domain = to->domain,
                            .to_resource = to->resource,
                            .type = type,
                            .id = id,
                            .bytes = bytes,
                            .len = len,
                            .arena = arena,
                            .conn = s ? s->conn : 0}};
    int rc;
    if (kind == MP_STANZA_IQ && (strcmp(type, "result") == 0 || strcmp(type, "error") == 0) &&
        mp_iq_pending_answer(core, from, from_len, id, strlen(id), bytes, len))
        rc = 0;
    else if (kind == MP_STANZA_IQ && (strcmp(type, "get") == 0 || strcmp(type, "set") == 0))
        rc = component_iq(core, c, &x, s);
    else
        rc = c->fn(&x.pub, c->ud);
    if (!s)
        mp_arena_free(&own);
    return rc;
}

void
mp_component_route(mp_core *core, const mp_component *c, mp_cstream *s, const mp_frame *f,
                   const mp_jid *to)
{
    core->stats.stanzas_routed++;
    int rc = mp_component_stanza(core, c, s, s->full, s->full_len, to, f->el_kind,
                                 mp_frame_payload(f), f->payload_len);
    if (rc == 0 || f->el_kind == MP_EL_PRESENCE)
        return;
    if (mp_frame_type_is(f, "error") || (f->el_kind == MP_EL_IQ && mp_frame_type_is(f, "result")))
        return;
    mp_route_error(core, s, f->el_kind, mp_frame_to(f), f->to_len,
                   f->id_len ? mp_frame_id(f) : NULL, f->id_len, "cancel", "service-unavailable");
}

/* ---- delivery ---- */

static int
same_resource(const mp_cstream *r, const char *res, size_t len)
{
    return r->full_len - r->bare_len - 1 == len && memcmp(r->full + r->bare_len + 1, res, len) == 0;
}

static int
privacy_kind(int kind)
{
    return kind == MP_STANZA_MESSAGE    ? MP_PRIV_MESSAGE
           : kind == MP_STANZA_PRESENCE ? MP_PRIV_PIN
                                        : MP_PRIV_IQ;
}

static int
deliver_one(mp_core *core, mp_cstream *r, int kind, const char *from, size_t from_len,
            const char *to, size_t to_len, const char *bytes, size_t len)
{
    if (mp_privacy_blocks(core, r, privacy_kind(kind), from, from_len))
        return 0;
    mp_deliver_to(core, r, bytes, len, to, to_len);
    return 1;
}

static int
store_offline(mp_core *core, const mp_jid *j, const char *to, size_t to_len, const char *bytes,
              size_t len)
{
    struct mp_services *sv = core->services;
    size_t n = 1;
    while (n < len && bytes[n] != ' ' && bytes[n] != '>' && bytes[n] != '/')
        n++;
    mp_buf *b = &sv->buf;
    b->len = 0;
    mp_buf_append(b, bytes, n);
    mp_buf_puts(b, " to='");
    mp_xml_escape_attr(b, to, to_len);
    mp_buf_puts(b, "'");
    if (mp_buf_append(b, bytes + n, len - n) < 0)
        return MP_ENOMEM;
    return mp_offline_store_bytes(core, j->domain, j->node, b->data, b->len, 0);
}

int
mp_core_deliver(mp_core *core, const char *from, const char *to, size_t to_len, const char *bytes,
                size_t len, int flags)
{
    mp_jid j;
    int kind = kind_of(bytes, len);
    if (!kind || !from || split_prepared(to, to_len, &j) < 0)
        return MP_EINVAL;
    size_t from_len = strlen(from);
    const mp_component *c = mp_component_find(core, j.domain, j.domain_len);
    if (c)
        return mp_component_stanza(core, c, NULL, from, from_len, &j, kind, bytes, len) == 0
                   ? 1
                   : MP_ENOTFOUND;
    if (!mp_config_is_host(core->cfg, j.domain, j.domain_len))
        return MP_ENOTFOUND; /* no federation yet */
    char type[16];
    if (mp_start_tag_attr(bytes, len, "type", type, sizeof type) < 0)
        type[0] = '\0';
    if (!j.node_len) {
        /* To the server itself: answers to the IQs it sent; the rest ends here. */
        if (kind == MP_STANZA_IQ && (strcmp(type, "result") == 0 || strcmp(type, "error") == 0)) {
            char id[256];
            int il = mp_start_tag_attr(bytes, len, "id", id, sizeof id);
            if (il > 0 && mp_iq_pending_answer(core, from, from_len, id, (size_t)il, bytes, len))
                return 1;
        }
        return 0;
    }
    size_t bare_len = j.node_len + 1 + j.domain_len;
    mp_user *u = mp_core_user(core, to, bare_len);
    if (j.resource_len) {
        for (mp_cstream *r = u ? u->resources : NULL; r; r = r->next_res)
            if (same_resource(r, j.resource, j.resource_len))
                return deliver_one(core, r, kind, from, from_len, to, to_len, bytes, len);
        /* RFC 6121 §8.5.3.2.1: a chat or normal message to a gone resource goes to the bare
         * JID; anything else is dropped (an IQ answered by the caller's timeout). */
        if (kind != MP_STANZA_MESSAGE ||
            !(type[0] == '\0' || strcmp(type, "chat") == 0 || strcmp(type, "normal") == 0))
            return u ? 0 : MP_ENOTFOUND;
    }
    if (kind == MP_STANZA_IQ) {
        if (strcmp(type, "result") == 0 || strcmp(type, "error") == 0) {
            char id[256];
            int il = mp_start_tag_attr(bytes, len, "id", id, sizeof id);
            if (il > 0 && mp_iq_pending_answer(core, from, from_len, id, (size_t)il, bytes, len))
                return 1;
        }
        return MP_EINVAL;
    }
    int n = 0;
    if (kind == MP_STANZA_PRESENCE) {
        for (mp_cstream *r = u ? u->resources : NULL; r; r = r->next_res)
            if (r->available)
                n += deliver_one(core, r, kind, from, from_len, to, to_len, bytes, len);
        return n;
    }
    int headline = strcmp(type, "headline") == 0;
    int best = mp_route_best_priority(u, NULL);
    for (mp_cstream *r = u && best >= 0 ? u->resources : NULL; r; r = r->next_res)
        if (mp_route_gets_bare(r, best, headline, NULL))
            n += deliver_one(core, r, kind, from, from_len, to, to_len, bytes, len);
    if (n || best >= 0 || (flags & MP_DELIVER_NO_OFFLINE))
        return n;
    if (!(type[0] == '\0' || strcmp(type, "chat") == 0 || strcmp(type, "normal") == 0))
        return 0;
    int rc = store_offline(core, &j, to, bare_len, bytes, len);
    return rc == 0 ? 0 : rc == MP_ENOTFOUND ? MP_ENOTFOUND : 0;
}

int
mp_core_resources(mp_core *core, const char *bare, void (*cb)(const char *, int, void *), void *ud)
{
    mp_user *u = mp_core_user(core, bare, strlen(bare));
    int n = 0;
    for (mp_cstream *r = u ? u->resources : NULL; r; r = r->next_res) {
        if (!r->available)
            continue;
        n++;
        if (cb)
            cb(r->full, r->priority, ud);
    }
    return n;
}

/* ---- IQs the server sends ---- */

static void
pending_unlink(struct mp_services *sv, pending_iq *p)
{
    mp_htab_remove(&sv->pending, &p->by_id);
    if (p->prev)
        p->prev->next = p->next;
    else
        sv->pending_list = p->next;
    if (p->next)
        p->next->prev = p->prev;
}

static void
on_iq_sweep(uv_timer_t *t)
{
    mp_core *core = t->data;
    struct mp_services *sv = core->services;
    uint64_t now = uv_now(core->loop);
    pending_iq *p = sv->pending_list;
    while (p) {
        pending_iq *next = p->next;
        if (p->deadline <= now) {
            pending_unlink(sv, p);
            mp_debug("iq %s to %s: no answer in time", p->id, p->to);
            p->fn(core, NULL, p->ud);
            free(p);
        }
        p = next;
    }
    if (!sv->pending_list) {
        uv_timer_stop(&sv->iq_timer);
        sv->timer_on = 0;
    }
}

int
mp_core_send_iq(mp_core *core, const char *from, const char *to, const char *type,
                const char *payload, size_t len, unsigned timeout_ms, mp_iq_answer_fn fn, void *ud)
{
    struct mp_services *sv = core->services;
    if (!sv || sv->stopped || !fn || !from || !to || !type || !payload || !len ||
        (strcmp(type, "get") != 0 && strcmp(type, "set") != 0))
        return MP_EINVAL;
    size_t to_len = strlen(to);
    pending_iq *p = calloc(1, sizeof *p + to_len + 1);
    if (!p)
        return MP_ENOMEM;
    snprintf(p->id, sizeof p->id, "mp%llx", (unsigned long long)++sv->iq_seq);
    memcpy(p->to, to, to_len);
    p->to_len = to_len;
    p->fn = fn;
    p->ud = ud;
    p->deadline = uv_now(core->loop) + (timeout_ms ? timeout_ms : IQ_TIMEOUT_MS);
    mp_buf b = {0};
    mp_buf_printf(&b, "<iq type='%s' id='%s' from='", type, p->id);
    mp_xml_escape_attr(&b, from, strlen(from));
    mp_buf_puts(&b, "'>");
    mp_buf_append(&b, payload, len);
    int rc = mp_buf_puts(&b, "</iq>");
    if (rc == 0)
        rc = mp_htab_insert(&sv->pending, &p->by_id, mp_hash_str(p->id, strlen(p->id)));
    if (rc < 0) {
        mp_buf_free(&b);
        free(p);
        return rc;
    }
    p->next = sv->pending_list;
    if (p->next)
        p->next->prev = p;
    sv->pending_list = p;
    if (!sv->timer_on) {
        uv_timer_start(&sv->iq_timer, on_iq_sweep, IQ_SWEEP_MS, IQ_SWEEP_MS);
        sv->timer_on = 1;
    }
    rc = mp_core_deliver(core, from, to, to_len, b.data, b.len, MP_DELIVER_NO_OFFLINE);
    mp_buf_free(&b);
    if (rc <= 0) {
        /* Nobody to ask: say so on the next sweep rather than inside the caller's call. */
        p->deadline = 0;
    }
    return 0;
}

int
mp_iq_pending_answer(mp_core *core, const char *from, size_t from_len, const char *id,
                     size_t id_len, const char *bytes, size_t len)
{
    struct mp_services *sv = core->services;
    if (!sv || !sv->pending_list || id_len < 3 || memcmp(id, "mp", 2) != 0)
        return 0;
    uint64_t h = mp_hash_str(id, id_len);
    pending_iq *p = NULL;
    for (mp_hnode *n = mp_htab_find(&sv->pending, h); n; n = mp_htab_next_same(n->next, h)) {
        pending_iq *c = mp_container_of(n, pending_iq, by_id);
        if (strlen(c->id) == id_len && memcmp(c->id, id, id_len) == 0)
            p = c;
    }
    if (!p)
        return 0;
    /* Only the JID asked may answer; a bare JID asked may answer from any of its resources. */
    if (!(from_len == p->to_len && memcmp(from, p->to, from_len) == 0) &&
        !(from_len > p->to_len && from[p->to_len] == '/' && memcmp(from, p->to, p->to_len) == 0 &&
          !memchr(p->to, '/', p->to_len))) {
        mp_info("iq %s: answer from %.*s, asked %s: ignored", p->id, (int)from_len, from, p->to);
        return 1;
    }
    pending_unlink(sv, p);
    mp_arena a;
    mp_arena_init(&a, 2048);
    mp_xnode *el = NULL;
    if (mp_xml_parse(core->parser, &a, "jabber:client", bytes, len, &el) < 0)
        el = NULL;
    p->fn(core, el, p->ud);
    mp_arena_free(&a);
    free(p);
    return 1;
}

/* ---- hooks ---- */

int
mp_module_on_presence(mp_module *m, mp_presence_hook fn, void *ud)
{
    struct mp_services *sv = mp_module_core(m)->services;
    presence_hook *v = realloc(sv->presence_hooks, (sv->npresence_hooks + 1) * sizeof *v);
    if (!v)
        return MP_ENOMEM;
    sv->presence_hooks = v;
    v[sv->npresence_hooks++] = (presence_hook){fn, ud};
    return 0;
}

void
mp_hooks_presence(mp_core *core, const char *full, const mp_xnode *presence, int initial)
{
    struct mp_services *sv = core->services;
    for (size_t i = 0; sv && !core->stopping && i < sv->npresence_hooks; i++)
        sv->presence_hooks[i].fn(core, full, presence, initial, sv->presence_hooks[i].ud);
}

int
mp_module_on_offline(mp_module *m, mp_offline_hook fn, void *ud)
{
    struct mp_services *sv = mp_module_core(m)->services;
    offline_hook *v = realloc(sv->offline_hooks, (sv->noffline_hooks + 1) * sizeof *v);
    if (!v)
        return MP_ENOMEM;
    sv->offline_hooks = v;
    v[sv->noffline_hooks++] = (offline_hook){fn, ud};
    return 0;
}

void
mp_core_offline_notify(mp_core *core, const char *bare, const char *from, const char *bytes,
                       size_t len, int why)
{
    struct mp_services *sv = core->services;
    if (!sv || core->stopping)
        return;
    char fromz[MP_JID_MAX];
    if (!from) {
        if (mp_start_tag_attr(bytes, len, "from", fromz, sizeof fromz) < 0)
            fromz[0] = '\0';
        from = fromz;
    }
    for (size_t i = 0; i < sv->noffline_hooks; i++)
        sv->offline_hooks[i].fn(core, bare, from, bytes, len, why, sv->offline_hooks[i].ud);
}

/* ---- archive ---- */

int
mp_core_archive_append(mp_core *core, const char *domain, const char *node,
                       const struct mp_archive_item *item, int64_t max_items, char *id_out,
                       size_t cap)
{
    return mp_archive_append_owner(core, domain, node, item, max_items, id_out, cap);
}

/* ---- lifecycle ---- */

int
mp_services_init(mp_core *core)
{
    struct mp_services *sv = calloc(1, sizeof *sv);
    if (!sv)
        return MP_ENOMEM;
    uv_timer_init(core->loop, &sv->iq_timer);
    sv->iq_timer.data = core;
    core->services = sv;
    return 0;
}

static void
on_timer_closed(uv_handle_t *h)
{
    mp_core *core = h->data;
    if (core->services)
        core->services->stopped = 2;
}

void
mp_services_stop(mp_core *core)
{
    struct mp_services *sv = core->services;
    if (!sv || sv->stopped)
        return;
    sv->stopped = 1;
    while (sv->pending_list) {
        pending_iq *p = sv->pending_list;
        pending_unlink(sv, p);
        p->fn(core, NULL, p->ud);
        free(p);
    }
    uv_close((uv_handle_t *)&sv->iq_timer, on_timer_closed);
}

void
mp_services_free(mp_core *core)
{
    struct mp_services *sv = core->services;
    if (!sv)
        return;
    if (!sv->stopped)
        mp_services_stop(core);
    for (size_t i = 0; i < sv->ncomponents; i++) {
        mp_component *c = &sv->components[i];
        for (size_t h = 0; h < core->cfg->nhosts; h++)
            free(c->domains[h]);
        free(c->domains);
        free(c->domain_lens);
        free(c->label);
    }
    free(sv->components);
    mp_htab_free(&sv->pending);
    free(sv->presence_hooks);
    free(sv->offline_hooks);
    mp_buf_free(&sv->buf);
    free(sv);
    core->services = NULL;
}
