/* Message archive on the routing path (XEP-0313) and stanza ids (XEP-0359): see archive.h. */
#include "router/archive.h"
#include "xmpp/datetime.h"
#include "router/core_int.h"
#include "router/privacy.h"
#include "router/subscription.h"
#include "base/config.h"
#include "base/err.h"
#include "base/log.h"
#include "storage/store.h"
#include "xml/escape.h"
#include "xml/framer.h"
#include "xmpp/jid.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NS_MARKERS "urn:xmpp:chat-markers:0"
#define NS_RECEIPTS "urn:xmpp:receipts"
#define NS_HINTS "urn:xmpp:hints"
#define BARE_MAX (2 * MP_JID_PART_MAX + 2)
#define PURGE_FIRST_MS 1000             /* first retention pass soon after start */
#define PURGE_EVERY_MS (3600 * 1000ull) /* then hourly: retention is counted in days */
#define BUF_KEEP 65536                  /* scratch buffers above this are given back */

typedef struct mp_archive {
    mp_core *core;
    uv_timer_t batch_timer;
    uv_timer_t purge_timer;
    int handles;    /* timers not yet closed: the struct goes with the last */
    int batch_open; /* a storage transaction is open */
    int batch_n;    /* appends in it */
    mp_buf clean;   /* the message without spoofed stanza-ids, when it had some */
    mp_buf msg;     /* the recipient's copy with its stanza-id */
    mp_buf frame;   /* the frame routed on in place of the original */
} mp_archive;

/* ---- pure helpers ---- */

static int
is(const mp_xnode *n, const char *ns, const char *name)
{
    return strcmp(n->ns, ns) == 0 && strcmp(n->name, name) == 0;
}

/* Nonzero when the 'by' of a stanza-id names bare (compared prepared, so a change of case
 * cannot slip a forgery past). */
static int
by_matches(const char *by, const char *bare)
{
    mp_jid j;
    char buf[3 * MP_JID_PART_MAX + 3];
    if (!bare || mp_jid_prep(by, strlen(by), &j) < 0 || mp_jid_full(&j, buf, sizeof buf) < 0)
        return bare && strcmp(by, bare) == 0;
    return strcmp(buf, bare) == 0;
}

void
mp_archive_inspect(mp_xnode *msg, const char *by1, const char *by2, int unlink, mp_archive_msg *out)
{
    int no_store = 0;
    memset(out, 0, sizeof *out);
    mp_xnode *prev = NULL, *next;
    for (mp_xnode *c = msg->children; c; c = next) {
        next = c->next;
        if (is(c, MP_NS_CLIENT, "body")) {
            if (!out->body)
                out->body = c->text;
            out->keep = 1;
        } else if (strcmp(c->ns, NS_MARKERS) == 0 &&
                   (strcmp(c->name, "received") == 0 || strcmp(c->name, "displayed") == 0 ||
                    strcmp(c->name, "acknowledged") == 0)) {
            out->keep = 1;
        } else if (is(c, NS_RECEIPTS, "received")) {
            out->keep = 1;
        } else if (strcmp(c->ns, NS_HINTS) == 0 && (strcmp(c->name, "no-store") == 0 ||
                                                    strcmp(c->name, "no-permanent-store") == 0)) {
            no_store = 1;
        } else if (is(c, MP_NS_SID, "origin-id")) {
            if (!out->origin_id)
                out->origin_id = mp_xnode_attr(c, "id");
        } else if (is(c, MP_NS_SID, "stanza-id")) {
            const char *by = mp_xnode_attr(c, "by");
            if (by && (by_matches(by, by1) || by_matches(by, by2))) {
                out->spoofed++;
                if (unlink) {
                    if (prev)
                        prev->next = next;
                    else
                        msg->children = next;
                    continue;
                }
            }
        }
        prev = c;
    }
    if (no_store) /* XEP-0334 */
        out->keep = 0;
}

int
mp_archive_add_stanza_id(mp_buf *out, const char *bytes, size_t len, const char *by, const char *id)
{
    static const char close[] = "</message>";
    size_t cl = sizeof close - 1, keep;
    int self_closed = 0;

    if (len >= 2 && bytes[0] == '<' && bytes[len - 2] == '/' && bytes[len - 1] == '>') {
        keep = len - 2;
        self_closed = 1;
    } else if (len > cl && bytes[0] == '<' && memcmp(bytes + len - cl, close, cl) == 0) {
        keep = len - cl;
    } else {
        return MP_EINVAL;
    }
    mp_buf_append(out, bytes, keep);
    if (self_closed)
        mp_buf_puts(out, ">");
    mp_buf_puts(out, "<stanza-id xmlns='" MP_NS_SID "' by='");
    mp_xml_escape_attr(out, by, strlen(by));
    mp_buf_puts(out, "' id='");
    mp_xml_escape_attr(out, id, strlen(id));
    return mp_buf_puts(out, "'/></message>") < 0 ? MP_ENOMEM : 0;
}

int
mp_archive_result(mp_buf *out, const char *to, const char *from, const char *queryid,
                  const char *id, int64_t stamp, const char *stored, size_t len)
{
    char when[40];
    size_t name = 1, tag;

    if (len < 2 || stored[0] != '<')
        return MP_EINVAL;
    while (name < len && stored[name] != ' ' && stored[name] != '>' && stored[name] != '/')
        name++;
    tag = name;
    while (tag < len && stored[tag] != '>')
        tag++;
    mp_datetime_format(stamp, when, sizeof when);
    mp_buf_puts(out, "<message to='");
    mp_xml_escape_attr(out, to, strlen(to));
    if (from) {
        mp_buf_puts(out, "' from='");
        mp_xml_escape_attr(out, from, strlen(from));
    }
    mp_buf_puts(out, "'><result xmlns='" MP_NS_MAM "'");
    if (queryid) {
        mp_buf_puts(out, " queryid='");
        mp_xml_escape_attr(out, queryid, strlen(queryid));
        mp_buf_puts(out, "'");
    }
    mp_buf_puts(out, " id='");
    mp_xml_escape_attr(out, id, strlen(id));
    mp_buf_printf(
        out, "'><forwarded xmlns='" MP_NS_FORWARD "'><delay xmlns='" MP_NS_DELAY "' stamp='%s'/>",
        when);
    mp_buf_append(out, stored, name);
    /* Stored stanzas inherit jabber:client from the stream; inside <forwarded/> they say so.
     * The framer never writes the default namespace on a stanza, but be sure not to repeat it. */
    if (!memmem(stored, tag, " xmlns='", 8) && !memmem(stored, tag, " xmlns=\"", 8))
        mp_buf_puts(out, " xmlns='" MP_NS_CLIENT "'");
    mp_buf_append(out, stored + name, len - name);
    return mp_buf_puts(out, "</forwarded></result></message>") < 0 ? MP_ENOMEM : 0;
}

/* ---- batching ---- */

static void
flush(mp_archive *a)
{
    if (!a->batch_open)
        return;
    mp_store *st = a->core->store;
    uv_timer_stop(&a->batch_timer);
    a->batch_open = 0;
    int rc = st->ops->batch_end(st, 1);
    if (rc < 0)
        mp_err("archive: commit of %d message(s) failed: %s", a->batch_n, mp_strerror(rc));
    a->batch_n = 0;
}

static void
on_batch_timer(uv_timer_t *t)
{
    flush(t->data);
}

static int
append(mp_archive *a, const char *domain, const char *node, const mp_archive_item *it,
       int64_t max_items, char id[MP_ARCHIVE_ID_SIZE])
{
    mp_core *core = a->core;
    mp_store *st = core->store;
    int ms = core->cfg->mam_batch_ms;

    if (ms > 0 && !a->batch_open && st->ops->batch_begin(st) == 0) {
        a->batch_open = 1;
        a->batch_n = 0;
        uv_timer_start(&a->batch_timer, on_batch_timer, (uint64_t)ms, 0);
    }
    int rc = st->ops->archive_append(st, domain, node, it, max_items, id, MP_ARCHIVE_ID_SIZE);
    if (rc < 0)
        mp_err("archive of %s@%s: cannot append: %s", node, domain, mp_strerror(rc));
    if (a->batch_open && ++a->batch_n >= MP_ARCHIVE_BATCH_MAX)
        flush(a);
    return rc;
}

int
mp_archive_append_owner(mp_core *core, const char *domain, const char *node,
                        const mp_archive_item *it, int64_t max_items, char *id, size_t cap)
{
    if (cap < MP_ARCHIVE_ID_SIZE)
        return MP_EINVAL;
    if (core->archive)
        return append(core->archive, domain, node, it, max_items, id);
    mp_store *st = core->store;
    int rc = st->ops->archive_append(st, domain, node, it, max_items, id, cap);
    if (rc < 0)
        mp_err("archive of %s@%s: cannot append: %s", node, domain, mp_strerror(rc));
    return rc;
}

void
mp_archive_flush(mp_core *core)
{
    if (core->archive)
        flush(core->archive);
}

/* ---- retention ---- */

static int64_t
now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void
on_purge_timer(uv_timer_t *t)
{
    mp_archive *a = t->data;
    mp_core *core = a->core;
    int days = core->cfg->mam_retention_days;
    if (days <= 0)
        return;
    flush(a);
    mp_store *st = core->store;
    int64_t n = st->ops->archive_purge_before(st, now_us() - (int64_t)days * 86400 * 1000000);
    if (n < 0)
        mp_err("archive: retention purge failed: %s", mp_strerror((int)n));
    else if (n > 0)
        mp_info("archive: %" PRId64 " message(s) older than %d days removed", n, days);
}

/* ---- lifecycle ---- */

static void
on_close(uv_handle_t *h)
{
    mp_archive *a = h->data;
    if (--a->handles > 0)
        return;
    mp_buf_free(&a->clean);
    mp_buf_free(&a->msg);
    mp_buf_free(&a->frame);
    free(a);
}

void
mp_archive_stop(mp_core *core)
{
    mp_archive *a = core->archive;
    if (!a)
        return;
    flush(a);
    core->archive = NULL;
    uv_close((uv_handle_t *)&a->batch_timer, on_close);
    uv_close((uv_handle_t *)&a->purge_timer, on_close);
}

int
mp_archive_enable(mp_core *core, int on)
{
    if (!on) {
        mp_archive_stop(core);
        return 0;
    }
    if (core->archive)
        return 0;
    mp_archive *a = calloc(1, sizeof *a);
    if (!a)
        return MP_ENOMEM;
    a->core = core;
    uv_timer_init(core->loop, &a->batch_timer);
    uv_timer_init(core->loop, &a->purge_timer);
    a->batch_timer.data = a->purge_timer.data = a;
    a->handles = 2;
    uv_timer_start(&a->purge_timer, on_purge_timer, PURGE_FIRST_MS, PURGE_EVERY_MS);
    core->archive = a;
    return 0;
}

int
mp_archive_enabled(const mp_core *core)
{
    return core->archive != NULL;
}

void
mp_archive_send(mp_core *core, uint64_t conn, const char *bytes, size_t len)
{
    mp_cstream *s = mp_core_stream(core, conn);
    if (s) {
        core->stats.stanzas_routed++;
        mp_core_send(core, s, bytes, len);
    }
}

/* ---- preferences ---- */

typedef struct pref_ctx {
    const char *bare, *full; /* the peer; full may be NULL */
    int mode;                /* default mode, or -1 after a list matched: see decided */
    int decided;
} pref_ctx;

static int
listed(const char *const *v, size_t n, const pref_ctx *p)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i], p->bare) == 0 || (p->full && strcmp(v[i], p->full) == 0))
            return 1;
    return 0;
}

/* A JID on both lists is not archived: when in doubt, keep less. */
static int
prefs_cb(const mp_archive_prefs *pr, void *ud)
{
    pref_ctx *p = ud;
    p->mode = pr->default_mode;
    if (listed(pr->never, pr->nnever, p))
        p->decided = 0;
    else if (listed(pr->always, pr->nalways, p))
        p->decided = 1;
    else
        return 0;
    p->mode = -1;
    return 0;
}

static int
roster_cb(const mp_roster_item *item, void *ud)
{
    *(int *)ud = !(item->state & MP_SUB_HIDDEN);
    return 0;
}

/* Whether the owner's preferences want messages exchanged with the peer archived. */
static int
wanted(mp_core *core, const char *domain, const char *node, const char *peer_bare,
       const char *peer_full)
{
    mp_store *st = core->store;
    pref_ctx p = {.bare = peer_bare, .full = peer_full, .mode = core->cfg->mam_default};
    int rc = st->ops->archive_prefs_get(st, domain, node, prefs_cb, &p);
    if (rc < 0 && rc != MP_ENOTFOUND) {
        mp_err("archive of %s@%s: cannot read preferences: %s", node, domain, mp_strerror(rc));
        return 0;
    }
    if (p.mode < 0)
        return p.decided;
    if (p.mode == MP_ARCHIVE_NEVER)
        return 0;
    if (p.mode == MP_ARCHIVE_ROSTER) {
        int in = 0;
        rc = st->ops->roster_get(st, domain, node, peer_bare, roster_cb, &in);
        return rc == 0 && in;
    }
    return 1;
}

/* ---- the routing hook ---- */

static int
same_resource(const mp_cstream *r, const char *res, size_t len)
{
    return r->full_len - r->bare_len - 1 == len && memcmp(r->full + r->bare_len + 1, res, len) == 0;
}

/* Whether route_to_user (route.c) will deliver the message or keep it offline, decided the same
 * way, so a message the recipient never gets is not in its archive: the addressed resource,
 * else the available ones of highest non-negative priority, else offline storage with room. */
static int
will_accept(mp_core *core, mp_cstream *s, const mp_jid *to, mp_user *u)
{
    if (to->resource_len && u) {
        for (mp_cstream *r = u->resources; r; r = r->next_res)
            if (same_resource(r, to->resource, to->resource_len))
                return !mp_privacy_blocks(core, r, MP_PRIV_MESSAGE, s->full, s->full_len);
    }
    int best = -1;
    for (mp_cstream *r = u ? u->resources : NULL; r; r = r->next_res)
        if (r->available && r->priority > best)
            best = r->priority;
    if (best >= 0) {
        for (mp_cstream *r = u->resources; r; r = r->next_res)
            if (r->available && r->priority == best &&
                !mp_privacy_blocks(core, r, MP_PRIV_MESSAGE, s->full, s->full_len))
                return 1;
        return 0;
    }
    int max = core->cfg->offline_max_messages;
    mp_store *st = core->store;
    if (max <= 0 || mp_privacy_blocks_account(core, u, to->domain, to->node, MP_PRIV_MESSAGE,
                                              s->full, s->full_len))
        return 0;
    if (!u) {
        mp_user_cred cred;
        int rc = st->ops->user_get(st, to->domain, to->node, &cred);
        memset(&cred, 0, sizeof cred);
        if (rc < 0)
            return 0;
    }
    int n = st->ops->offline_count(st, to->domain, to->node);
    return n >= 0 && n < max;
}

/* A copy of frame f with another payload, in a->frame. */
static const mp_frame *
reframe(mp_archive *a, const mp_frame *f, const char *payload, size_t len)
{
    size_t head = sizeof *f + f->to_len + f->type_len + f->id_len + f->aux_len;
    size_t total = (head + len + 7) & ~(size_t)7;
    mp_buf *b = &a->frame;
    if (len > UINT32_MAX)
        return NULL;
    b->len = 0;
    if (mp_buf_reserve(b, total) < 0)
        return NULL;
    memcpy(b->data, f, head);
    memcpy(b->data + head, payload, len);
    mp_frame *nf = (mp_frame *)(void *)b->data;
    nf->payload_len = (uint32_t)len;
    nf->size = (uint32_t)total;
    b->len = total;
    return nf;
}

static void
shrink(mp_buf *b)
{
    if (b->cap > BUF_KEEP)
        mp_buf_free(b);
}

const mp_frame *
mp_archive_route(mp_core *core, mp_cstream *s, const mp_frame *f, const mp_jid *to, mp_user *u)
{
    mp_archive *a = core->archive;
    if (!a || f->el_kind != MP_EL_MESSAGE || !to->node_len)
        return f;
    if (f->type_len && !mp_frame_type_is(f, "chat") && !mp_frame_type_is(f, "normal"))
        return f; /* no errors, groupchat or headlines */
    const char *bytes = mp_frame_payload(f);
    size_t len = f->payload_len;
    /* Most messages between clients are chat states: no tree for them. */
    if (!memmem(bytes, len, "<body", 5) && !memmem(bytes, len, NS_MARKERS, strlen(NS_MARKERS)) &&
        !memmem(bytes, len, NS_RECEIPTS, strlen(NS_RECEIPTS)) &&
        !memmem(bytes, len, MP_NS_SID, strlen(MP_NS_SID)))
        return f;
    shrink(&a->clean);
    shrink(&a->msg);
    shrink(&a->frame);

    char sender[BARE_MAX], rcpt[BARE_MAX];
    if (s->bare_len >= sizeof sender || mp_jid_bare(to, rcpt, sizeof rcpt) < 0)
        return f;
    memcpy(sender, s->full, s->bare_len);
    sender[s->bare_len] = '\0';
    const char *at = strchr(sender, '@');
    if (!at || !s->node)
        return f;
    const char *sdomain = at + 1;
    int same = strcmp(sender, rcpt) == 0;

    mp_xnode *msg = NULL;
    if (mp_xml_parse(core->parser, &core->arena, MP_NS_CLIENT, bytes, len, &msg) < 0)
        return f;
    mp_archive_msg m;
    mp_archive_inspect(msg, sender, rcpt, 1, &m);

    int out_ok = 0, in_ok = 0;
    if (m.keep) {
        char peer_full[3 * MP_JID_PART_MAX + 3];
        out_ok =
            !same && wanted(core, sdomain, s->node, rcpt,
                            mp_jid_full(to, peer_full, sizeof peer_full) > 0 ? peer_full : NULL);
        in_ok = will_accept(core, s, to, u) && wanted(core, to->domain, to->node, sender, s->full);
    }
    if (!out_ok && !in_ok && !m.spoofed)
        return f;

    const char *clean = bytes;
    size_t clean_len = len;
    if (m.spoofed) {
        mp_debug("archive: removed %d forged stanza-id(s) from a message of %s", m.spoofed,
                 s->full);
        a->clean.len = 0;
        if (mp_xnode_serialize(&a->clean, msg, MP_NS_CLIENT) < 0)
            return f;
        clean = a->clean.data;
        clean_len = a->clean.len;
    }
    mp_archive_item it = {
        .stamp = now_us(),
        .origin_id = m.origin_id,
        .body = m.body && *m.body ? m.body : NULL,
        .stanza = clean,
        .len = clean_len,
    };
    char id[MP_ARCHIVE_ID_SIZE];
    if (out_ok) {
        it.with_jid = rcpt;
        it.with_resource = to->resource_len ? to->resource : NULL;
        it.direction = MP_ARCHIVE_OUT;
        append(a, sdomain, s->node, &it, core->cfg->mam_max_messages, id);
    }
    int have_id = 0;
    if (in_ok) {
        it.with_jid = sender;
        it.with_resource = s->full_len > s->bare_len ? s->full + s->bare_len + 1 : NULL;
        it.direction = MP_ARCHIVE_IN;
        have_id = append(a, to->domain, to->node, &it, core->cfg->mam_max_messages, id) == 0;
    }
    if (have_id) {
        a->msg.len = 0;
        if (mp_archive_add_stanza_id(&a->msg, clean, clean_len, rcpt, id) == 0) {
            clean = a->msg.data;
            clean_len = a->msg.len;
        }
    }
    if (clean == bytes)
        return f;
    const mp_frame *nf = reframe(a, f, clean, clean_len);
    return nf ? nf : f;
}
