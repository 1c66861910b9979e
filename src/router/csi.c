/* Client State Indication (XEP-0352); see csi.h. */
#include "router/csi.h"
#include "router/carbons.h"
#include "router/core_int.h"
#include "base/config.h"
#include "base/err.h"
#include "base/log.h"
#include "xml/framer.h"

#include <stdlib.h>
#include <string.h>

/* One held presence: the latest from one sender full JID. */
typedef struct held {
    struct held *next;
    size_t len;
    char *key; /* the sender (unescaped 'from'), points into data */
    char data[];
} held;

struct mp_csi {
    held *head, **tail; /* in the order they were last replaced */
    int count;
    size_t bytes;
};

static int
starts_with(const char *bytes, size_t len, const char *name)
{
    size_t n = strlen(name);
    if (len <= n || memcmp(bytes, name, n) != 0)
        return 0;
    char c = bytes[n];
    return c == ' ' || c == '>' || c == '/' || c == '\t' || c == '\n' || c == '\r';
}

static void
held_free_all(held *h)
{
    while (h) {
        held *next = h->next;
        free(h);
        h = next;
    }
}

void
mp_csi_flush(mp_core *core, mp_cstream *s)
{
    mp_csi *c = s->csi;
    if (!c || !c->head)
        return;
    held *h = c->head;
    int n = c->count;
    c->head = NULL;
    c->tail = &c->head;
    c->count = 0;
    c->bytes = 0;
    while (h) {
        held *next = h->next;
        mp_core_send(core, s, h->data, h->len);
        free(h);
        h = next;
    }
    mp_debug("conn %016llx: %d held presence(s) delivered (XEP-0352)", (unsigned long long)s->conn,
             n);
}

void
mp_csi_end(mp_cstream *s)
{
    mp_csi *c = s->csi;
    if (!c)
        return;
    s->csi = NULL;
    held_free_all(c->head);
    free(c);
}

int
mp_csi_held(const mp_cstream *s)
{
    return s->csi ? s->csi->count : 0;
}

/* A message the user will read: a body (directly, or in a carbon's forwarded message) or an
 * error. Headlines are ephemeral by definition and wake nobody. */
static int
is_important_message(const mp_xnode *msg)
{
    const char *type = mp_xnode_attr(msg, "type");
    if (type && strcmp(type, "error") == 0)
        return 1;
    if (type && strcmp(type, "headline") == 0)
        return 0;
    if (mp_xnode_child(msg, MP_NS_CLIENT, "body"))
        return 1;
    const mp_xnode *cc = mp_xnode_child(msg, MP_NS_CARBONS, NULL);
    const mp_xnode *fw = cc ? mp_xnode_child(cc, MP_NS_FORWARD, "forwarded") : NULL;
    const mp_xnode *inner = fw ? mp_xnode_child(fw, MP_NS_CLIENT, "message") : NULL;
    return inner && mp_xnode_child(inner, MP_NS_CLIENT, "body");
}

/* Keep a copy of presence bytes from `from` in place of the one held for it. 1 when held, 0
 * when the buffer is full (or memory ran out): the caller delivers everything instead. */
static int
hold(mp_core *core, mp_csi *c, const char *from, const char *bytes, size_t len)
{
    size_t klen = strlen(from);
    held **pp = &c->head, *old = NULL;
    for (; *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->key, from) == 0) {
            old = *pp;
            break;
        }
    }
    int max = core->cfg->csi_max_presences;
    size_t bytes_after = c->bytes + len - (old ? old->len : 0);
    if ((!old && c->count >= max) || bytes_after > MP_CSI_MAX_BYTES)
        return 0;
    held *h = malloc(sizeof *h + len + klen + 1);
    if (!h)
        return 0;
    h->next = NULL;
    h->len = len;
    memcpy(h->data, bytes, len);
    h->key = h->data + len;
    memcpy(h->key, from, klen + 1);
    if (old) {
        /* The newest state goes last: flushing keeps the order the changes came in. */
        *pp = old->next;
        if (c->tail == &old->next)
            c->tail = pp;
        c->bytes -= old->len;
        c->count--;
        free(old);
    }
    *c->tail = h;
    c->tail = &h->next;
    c->count++;
    c->bytes += len;
    return 1;
}

/* 1 when bytes were held for the inactive session r; otherwise 0, after flushing what was held
 * when bytes are worth it or did not fit. */
static int
filter(mp_core *core, mp_cstream *r, const char *bytes, size_t len)
{
    mp_csi *c = r->csi;
    int presence = starts_with(bytes, len, "<presence");
    if (!presence && (!c->head || !starts_with(bytes, len, "<message")))
        return 0; /* IQs, and messages while nothing is held, pass untouched */
    mp_xnode *el = NULL;
    if (mp_xml_parse(core->parser, &core->arena, MP_NS_CLIENT, bytes, len, &el) < 0)
        return 0;
    if (!presence) {
        if (is_important_message(el))
            mp_csi_flush(core, r);
        return 0;
    }
    const char *type = mp_xnode_attr(el, "type");
    if (!type || strcmp(type, "unavailable") == 0) {
        const char *from = mp_xnode_attr(el, "from");
        if (hold(core, c, from ? from : "", bytes, len))
            return 1;
    }
    /* Subscription requests and answers, errors, or a full buffer: in order, now. */
    mp_csi_flush(core, r);
    return 0;
}

void
mp_csi_send(mp_core *core, mp_cstream *r, const char *bytes, size_t len)
{
    if (r->csi && filter(core, r, bytes, len))
        return;
    mp_core_send(core, r, bytes, len);
}

int
mp_csi_element(mp_core *core, mp_cstream *s, const mp_xnode *el)
{
    if (strcmp(el->ns, MP_NS_CSI) != 0)
        return 0;
    if (strcmp(el->name, "inactive") == 0) {
        if (!s->csi) {
            mp_csi *c = calloc(1, sizeof *c);
            if (!c) {
                mp_warn("conn %016llx: out of memory for client state, staying active",
                        (unsigned long long)s->conn);
                return 1;
            }
            c->tail = &c->head;
            s->csi = c;
        }
        mp_debug("conn %016llx: %s is inactive", (unsigned long long)s->conn, s->full);
    } else if (strcmp(el->name, "active") == 0) {
        mp_csi_flush(core, s);
        mp_csi_end(s);
        mp_debug("conn %016llx: %s is active", (unsigned long long)s->conn, s->full);
    } else {
        mp_debug("conn %016llx: unknown client state <%s/> ignored", (unsigned long long)s->conn,
                 el->name);
    }
    return 1;
}
