/* Stream management (XEP-0198) on the core; see sm_session.h.
 *
 * A session with stream management is an mp_cstream like any other. When its connection dies
 * without </stream:stream>, the cstream stays where it is (in the streams table under its dead
 * connection id, bound, available to its contacts) and only stops writing: what it is sent
 * goes into the acknowledgement queue. <resume/> on a new connection moves the cstream onto
 * that connection, wherever the connection is; the cstream the new connection had so far is
 * dropped. Nothing else in the core needs to know a session was ever detached. */
#include "router/sm_session.h"
#include "magpie/module.h"
#include "router/archive.h"
#include "router/journal.h"
#include "router/sm.h"
#include "base/config.h"
#include "base/err.h"
#include "base/log.h"
#include "base/rand.h"
#include "xml/escape.h"
#include "xmpp/jid.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NS_STANZAS "urn:ietf:params:xml:ns:xmpp-stanzas"
#define SM_ID_LEN 24

typedef struct mp_sm_session {
    mp_hnode by_id;
    mp_sm_queue q;
    mp_core *core;
    mp_cstream *s;
    uv_timer_t timer;   /* resumption window, or an overflow close */
    uint8_t timer_init; /* timer initialised: freeing goes through uv_close */
    uint8_t resumable;  /* the client asked for resumption and got an id */
    uint8_t detached;   /* no connection: waiting for <resume/> */
    uint8_t overflow;   /* the queue refused a stanza: closing */
    uint8_t in_table;   /* in core->sm_ids */
    uint32_t asked_at;  /* q.sent when <r/> was last sent */
    uint64_t key;       /* this session in the in-flight journal */
    uint64_t pushed;    /* stanzas queued, not wrapping: the journal's sequence numbers */
    uint64_t acked;     /* of those, acknowledged (or handed on) */
    uint64_t journaled; /* sequence number of the last message put in the journal */
    uint64_t released;  /* the journal holds nothing of this session up to here */
    unsigned timeout_s; /* resumption window */
    char id[SM_ID_LEN + 1];
} mp_sm_session;

/* ---- small helpers ---- */

static void
send_raw(mp_core *core, mp_cstream *s, const char *bytes, size_t len)
{
    mp_frame_out o = {.kind = MP_LF_SEND,
                      .flags = MP_FF_SM,
                      .conn = s->conn,
                      .payload = bytes,
                      .payload_len = len};
    if (mp_ring_push(&s->link->to_mux, &o) < 0)
        mp_err("core: cannot pass %zu bytes to mux %d", len, s->link->index);
}

static void
send_failed(mp_core *core, mp_cstream *s, const char *cond, const mp_sm_session *sm)
{
    char buf[256];
    int n;
    if (sm)
        n = snprintf(buf, sizeof buf,
                     "<failed xmlns='" MP_NS_SM3 "' h='%" PRIu32 "'><%s xmlns='" NS_STANZAS
                     "'/></failed>",
                     sm->q.handled, cond);
    else
        n = snprintf(buf, sizeof buf,
                     "<failed xmlns='" MP_NS_SM3 "'><%s xmlns='" NS_STANZAS "'/></failed>", cond);
    mp_core_send_frame(core, s->link, MP_LF_SEND, s->conn, NULL, 0, buf, (size_t)n);
}

/* What h covers must be safe before h is told: the journal's open transaction first. */
static void
sync_journal(mp_core *core)
{
    mp_archive_flush(core); /* the backend's open batch holds offline stores too */
    if (core->journal && mp_journal_sync(core->journal) < 0)
        mp_err("sm: in-flight journal commit failed: acknowledging anyway");
}

static void
send_ack(mp_core *core, mp_cstream *s)
{
    sync_journal(core);
    char buf[64];
    int n =
        snprintf(buf, sizeof buf, "<a xmlns='" MP_NS_SM3 "' h='%" PRIu32 "'/>", s->sm->q.handled);
    send_raw(core, s, buf, (size_t)n);
}

static void
ask_ack(mp_core *core, mp_cstream *s)
{
    static const char r[] = "<r xmlns='" MP_NS_SM3 "'/>";
    s->sm->asked_at = s->sm->q.sent;
    send_raw(core, s, r, sizeof r - 1);
}

static int
is_stanza(const char *b, size_t len)
{
    return (len > 8 && memcmp(b, "<message", 8) == 0 &&
            (b[8] == ' ' || b[8] == '>' || b[8] == '/')) ||
           (len > 9 && memcmp(b, "<presence", 9) == 0 &&
            (b[9] == ' ' || b[9] == '>' || b[9] == '/')) ||
           (len > 3 && memcmp(b, "<iq", 3) == 0 && (b[3] == ' ' || b[3] == '>' || b[3] == '/'));
}

static mp_sm_session *
find_id(mp_core *core, const char *id)
{
    size_t n = strlen(id);
    uint64_t h = mp_hash_str(id, n);
    for (mp_hnode *x = mp_htab_find(&core->sm_ids, h); x; x = mp_htab_next_same(x->next, h)) {
        mp_sm_session *sm = mp_container_of(x, mp_sm_session, by_id);
        if (strcmp(sm->id, id) == 0)
            return sm;
    }
    return NULL;
}

static void
sm_closed_cb(uv_handle_t *h)
{
    free(h->data);
}

/* Forget the session's stream management state (queue already handled). */
static void
sm_free(mp_core *core, mp_sm_session *sm)
{
    if (sm->in_table)
        mp_htab_remove(&core->sm_ids, &sm->by_id);
    mp_sm_free(&sm->q);
    if (sm->s)
        sm->s->sm = NULL;
    sm->s = NULL;
    if (sm->timer_init) {
        uv_timer_stop(&sm->timer);
        uv_close((uv_handle_t *)&sm->timer, sm_closed_cb);
    } else {
        free(sm);
    }
}

static void
timer_start(mp_sm_session *sm, void (*cb)(uv_timer_t *), uint64_t ms)
{
    if (!sm->timer_init) {
        uv_timer_init(sm->core->loop, &sm->timer);
        sm->timer.data = sm;
        sm->timer_init = 1;
    }
    uv_timer_start(&sm->timer, cb, ms, 0);
}

void
mp_sm_stop(mp_core *core, mp_cstream *s)
{
    mp_sm_session *sm = s->sm;
    if (sm && sm->timer_init) {
        /* The loop runs once more before the core is freed: the handle is closed by then,
         * and the session is freed (its queue spilled) with its stream. */
        uv_timer_stop(&sm->timer);
        uv_close((uv_handle_t *)&sm->timer, NULL);
        sm->timer_init = 0;
    }
}

/* The journal's part of an acknowledgement: what the client has is no longer in flight. */
static void
release(mp_core *core, mp_sm_session *sm)
{
    if (!core->journal || sm->journaled <= sm->released || sm->acked <= sm->released)
        return;
    uint64_t upto = sm->acked < sm->journaled ? sm->acked : sm->journaled;
    if (mp_journal_release(core->journal, sm->key, upto) == 0)
        sm->released = upto;
}

/* The client's h (from <a/> or <resume/>). 0 or MP_EINVAL (more than was sent). */
static int
acknowledge(mp_core *core, mp_sm_session *sm, uint32_t h)
{
    size_t before = mp_sm_unacked(&sm->q);
    int rc = mp_sm_ack(&sm->q, h);
    if (rc < 0)
        return rc;
    sm->acked += before - mp_sm_unacked(&sm->q);
    release(core, sm);
    return 0;
}

/* A message that offline storage would keep (RFC 6121 §8.5.2): type chat, normal or none.
 * Scans the start tag only; the bytes are well-formed (the mux checked them). */
static int
storable_message(const char *b, size_t len)
{
    if (len < 9 || memcmp(b, "<message", 8) != 0)
        return 0;
    const char *end = memchr(b, '>', len);
    if (!end)
        return 0;
    for (const char *p = b + 8; p + 5 < end; p++) {
        if ((p[0] != ' ' && p[0] != '\t' && p[0] != '\n' && p[0] != '\r') ||
            memcmp(p + 1, "type", 4) != 0)
            continue;
        const char *v = p + 5;
        while (v < end && (*v == ' ' || *v == '\t' || *v == '\n' || *v == '\r' || *v == '='))
            v++;
        if (v >= end || (*v != '\'' && *v != '"'))
            continue;
        char q = *v++;
        const char *ve = memchr(v, q, (size_t)(end - v));
        if (!ve)
            return 0;
        size_t n = (size_t)(ve - v);
        return (n == 4 && memcmp(v, "chat", 4) == 0) || (n == 6 && memcmp(v, "normal", 6) == 0);
    }
    return 1; /* no type: normal */
}

int
mp_sm_waiting(const mp_cstream *s)
{
    return s->sm && s->sm->detached;
}

/* ---- <enable/>, <r/>, <a/> ---- */

void
mp_sm_handled(mp_cstream *s)
{
    s->sm->q.handled++;
}

static void
enable(mp_core *core, mp_cstream *s, const mp_xnode *el)
{
    const mp_config *cfg = core->cfg;
    if (!cfg->sm_enabled) {
        send_failed(core, s, "service-unavailable", NULL);
        return;
    }
    /* XEP-0198 §3: only after binding, and only once. */
    if (s->state != CS_BOUND || s->sm) {
        send_failed(core, s, "unexpected-request", NULL);
        return;
    }
    mp_sm_session *sm = calloc(1, sizeof *sm);
    if (!sm) {
        send_failed(core, s, "resource-constraint", NULL);
        return;
    }
    mp_sm_init(&sm->q, (size_t)cfg->sm_max_queue, cfg->sm_max_queue_size);
    sm->core = core;
    sm->s = s;
    mp_random_bytes(&sm->key, sizeof sm->key);
    sm->key >>= 1; /* SQLite integers are signed */
    const char *resume = mp_xnode_attr(el, "resume");
    const char *max = mp_xnode_attr(el, "max");
    unsigned timeout = (unsigned)cfg->sm_resume_timeout;
    if (max) {
        char *end;
        unsigned long m = strtoul(max, &end, 10);
        if (*end == '\0' && end != max && m < timeout)
            timeout = (unsigned)m; /* the client may ask for less, never more */
    }
    char buf[160];
    int n;
    if (resume && (strcmp(resume, "true") == 0 || strcmp(resume, "1") == 0) && timeout > 0) {
        mp_random_token(sm->id, SM_ID_LEN);
        if (mp_htab_insert(&core->sm_ids, &sm->by_id, mp_hash_str(sm->id, SM_ID_LEN)) < 0) {
            free(sm);
            send_failed(core, s, "resource-constraint", NULL);
            return;
        }
        sm->in_table = 1;
        sm->resumable = 1;
        sm->timeout_s = timeout;
        n = snprintf(buf, sizeof buf,
                     "<enabled xmlns='" MP_NS_SM3 "' id='%s' resume='true' max='%u'/>", sm->id,
                     timeout);
    } else {
        n = snprintf(buf, sizeof buf, "<enabled xmlns='" MP_NS_SM3 "'/>");
    }
    s->sm = sm;
    mp_info("conn %016llx: %s enabled stream management%s", (unsigned long long)s->conn, s->full,
            sm->resumable ? " with resumption" : "");
    send_raw(core, s, buf, (size_t)n);
}

static void
handled_too_high(mp_core *core, mp_cstream *s, uint32_t h)
{
    char text[160];
    snprintf(text, sizeof text,
             "<handled-count-too-high xmlns='" MP_NS_SM3 "' h='%" PRIu32 "' send-count='%" PRIu32
             "'/>",
             h, s->sm->q.sent);
    mp_info("conn %016llx (%s): acknowledged %" PRIu32 " stanzas of %" PRIu32 " sent",
            (unsigned long long)s->conn, s->full, h, s->sm->q.sent);
    /* XEP-0198 §4: undefined-condition carrying the counts; the session ends (a client that
     * miscounts cannot be trusted with resumption either). */
    mp_buf *b = &core->scratch;
    b->len = 0;
    mp_buf_puts(b, "<stream:error><undefined-condition "
                   "xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>");
    mp_buf_puts(b, text);
    mp_buf_puts(b, "</stream:error>");
    s->sm->resumable = 0;
    mp_core_send_frame(core, s->link, MP_LF_CLOSE, s->conn, NULL, 0, b->data, b->len);
    mp_core_forget_stream(core, s);
}

static void
ack_in(mp_core *core, mp_cstream *s, const mp_xnode *el)
{
    const char *hs = mp_xnode_attr(el, "h");
    uint32_t h;
    if (!hs || mp_sm_parse_h(hs, strlen(hs), &h) < 0) {
        mp_core_close_stream(core, s, "undefined-condition", "bad 'h' in <a/>");
        return;
    }
    if (acknowledge(core, s->sm, h) < 0)
        handled_too_high(core, s, h);
}

/* ---- resumption ---- */

static void
resume_failed(mp_core *core, mp_cstream *s, const char *why, const char *previd)
{
    mp_info("conn %016llx (%s): resumption of '%s' refused: %s", (unsigned long long)s->conn, s->ip,
            previd ? previd : "", why);
    send_failed(core, s, "item-not-found", NULL);
}

static int
resend_one(const char *bytes, size_t len, void *ud)
{
    mp_cstream *s = ud;
    send_raw(NULL, s, bytes, len);
    return 0;
}

static void
resume(mp_core *core, mp_cstream *s, const mp_xnode *el)
{
    const char *previd = mp_xnode_attr(el, "previd");
    const char *hs = mp_xnode_attr(el, "h");
    uint32_t h;
    if (s->state != CS_AUTHED) {
        /* bound already, or resumed already: XEP-0198 §5 */
        send_failed(core, s, "unexpected-request", NULL);
        return;
    }
    if (!previd || !hs || mp_sm_parse_h(hs, strlen(hs), &h) < 0) {
        send_failed(core, s, "bad-request", NULL);
        return;
    }
    mp_sm_session *sm = find_id(core, previd);
    if (!sm || !sm->s || !sm->resumable) {
        resume_failed(core, s, "unknown or expired id", previd);
        return;
    }
    mp_cstream *old = sm->s;
    /* Only the account that enabled it: an id seen on the wire is no key to someone else's
     * session. */
    if (old->host != s->host || !old->node || strcmp(old->node, s->node) != 0) {
        resume_failed(core, s, "id of another account", previd);
        return;
    }
    if (acknowledge(core, sm, h) < 0) {
        sync_journal(core);
        char buf[200];
        int n =
            snprintf(buf, sizeof buf,
                     "<failed xmlns='" MP_NS_SM3 "' h='%" PRIu32 "'><handled-count-too-high "
                     "xmlns='" MP_NS_SM3 "' h='%" PRIu32 "' send-count='%" PRIu32 "'/></failed>",
                     sm->q.handled, h, sm->q.sent);
        mp_info("conn %016llx (%s): resumption of %s refused: h %" PRIu32 " above %" PRIu32 " sent",
                (unsigned long long)s->conn, s->ip, old->full, h, sm->q.sent);
        mp_core_send_frame(core, s->link, MP_LF_SEND, s->conn, NULL, 0, buf, (size_t)n);
        return;
    }
    if (!sm->detached) {
        /* The old connection looks alive to us but the client has moved on (XEP-0198 §5:
         * the server terminates it). */
        static const char err[] = "<stream:error><conflict "
                                  "xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><text "
                                  "xmlns='urn:ietf:params:xml:ns:xmpp-streams'>Resumed on "
                                  "another connection</text></stream:error>";
        mp_core_send_frame(core, old->link, MP_LF_CLOSE, old->conn, NULL, 0, err, sizeof err - 1);
    }
    if (sm->timer_init)
        uv_timer_stop(&sm->timer);
    sm->detached = 0;
    /* The old cstream becomes the new connection's: same session, new wire. */
    uint64_t conn = s->conn;
    mp_link *link = s->link;
    uint8_t tls = s->tls;
    char ip[sizeof s->ip];
    memcpy(ip, s->ip, sizeof ip);
    mp_core_forget_stream(core, s); /* s is gone */
    mp_core_move_stream(core, old, conn, link);
    old->tls = tls;
    memcpy(old->ip, ip, sizeof ip);
    sync_journal(core);
    char buf[160];
    int n =
        snprintf(buf, sizeof buf, "<resumed xmlns='" MP_NS_SM3 "' h='%" PRIu32 "' previd='%s'/>",
                 sm->q.handled, sm->id);
    mp_frame_out o = {.kind = MP_LF_BOUND,
                      .flags = MP_FF_SM,
                      .conn = conn,
                      .aux = old->full,
                      .aux_len = old->full_len,
                      .payload = buf,
                      .payload_len = (size_t)n};
    if (mp_ring_push(&link->to_mux, &o) < 0)
        mp_err("core: cannot pass the resumption of %s to mux %d", old->full, link->index);
    size_t pending = mp_sm_unacked(&sm->q);
    mp_info("conn %016llx (%s): resumed %s, %zu stanzas resent", (unsigned long long)conn, ip,
            old->full, pending);
    mp_sm_foreach(&sm->q, resend_one, old);
    if (pending)
        ask_ack(core, old);
}

/* ---- the queue on the way out ---- */

static void
overflow_close(uv_timer_t *t)
{
    mp_sm_session *sm = t->data;
    mp_cstream *s = sm->s;
    if (!s)
        return;
    mp_warn("%s: %zu stanzas (%zu bytes) unacknowledged, closing the stream", s->full,
            mp_sm_unacked(&sm->q), mp_sm_unacked_bytes(&sm->q));
    sm->resumable = 0;
    mp_core_close_stream(sm->core, s, "policy-violation", "too many unacknowledged stanzas");
}

/* A stanza that neither fits the queue nor can be written: it is handled now as it would be
 * at the end of the session. */
static void spill_one(mp_core *core, mp_cstream *s, const char *bytes, size_t len, int counts[4]);
/* Every queued stanza, likewise; the queue is empty after. */
static void spill_queue(mp_core *core, mp_cstream *s);

int
mp_sm_sent(mp_core *core, mp_cstream *s, const char *bytes, size_t len)
{
    mp_sm_session *sm = s->sm;
    if (!is_stanza(bytes, len))
        return 0;
    if (sm->overflow) {
        int counts[4] = {0};
        spill_one(core, s, bytes, len, counts);
        return 1;
    }
    int rc = mp_sm_push(&sm->q, bytes, len);
    if (rc < 0) {
        /* Closing here would free s under the caller's feet: close on the next turn of the
         * loop, and until then handle what comes as if the session had ended. The queue goes
         * first, so that offline storage keeps the order they were sent in. */
        sm->overflow = 1;
        timer_start(sm, overflow_close, 0);
        spill_queue(core, s);
        int counts[4] = {0};
        spill_one(core, s, bytes, len, counts);
        return 1;
    }
    sm->pushed++;
    if (core->journal && s->node && storable_message(bytes, len) &&
        mp_journal_put(core->journal, sm->key, sm->pushed, core->cfg->hosts[s->host], s->node,
                       bytes, len) == 0)
        sm->journaled = sm->pushed;
    if (sm->detached) {
        if (s->node && storable_message(bytes, len)) /* XEP-0357: wake the phone */
            mp_core_offline_notify(core, s->user ? s->user->bare : s->full, NULL, bytes, len,
                                   MP_OFFLINE_PENDING);
        return 1;
    }
    send_raw(core, s, bytes, len);
    uint32_t every = (uint32_t)core->cfg->sm_ack_request_every;
    if (mp_sm_unacked(&sm->q) >= every && sm->q.sent - sm->asked_at >= every)
        ask_ack(core, s);
    return 1;
}

/* ---- losing the connection, and the end ---- */

static void
window_closed(uv_timer_t *t)
{
    mp_sm_session *sm = t->data;
    mp_cstream *s = sm->s;
    if (!s)
        return;
    mp_info("%s: not resumed within %u s, ending the session", s->full, sm->timeout_s);
    sm->resumable = 0;
    mp_core_forget_stream(sm->core, s);
}

int
mp_sm_detach(mp_core *core, mp_cstream *s, int clean)
{
    mp_sm_session *sm = s->sm;
    if (!sm || !sm->resumable || clean || sm->overflow || core->stopping || s->state != CS_BOUND)
        return 0;
    sm->detached = 1;
    timer_start(sm, window_closed, (uint64_t)sm->timeout_s * 1000);
    mp_info("conn %016llx (%s): connection lost, %s waits %u s for resumption (%zu unacked)",
            (unsigned long long)s->conn, s->ip, s->full, sm->timeout_s, mp_sm_unacked(&sm->q));
    return 1;
}

enum { SPILL_REDELIVERED, SPILL_STORED, SPILL_BOUNCED, SPILL_DROPPED };

/* The available resources of the account of s (s is unbound already) that would get a
 * message to the bare JID (RFC 6121 §8.5.2.1). */
static int
redeliver(mp_core *core, mp_cstream *s, const char *bytes, size_t len)
{
    if (!s->node)
        return 0;
    char bare[2 * MP_JID_PART_MAX + 2];
    int bl = snprintf(bare, sizeof bare, "%s@%s", s->node, core->cfg->hosts[s->host]);
    mp_user *u = mp_core_user(core, bare, (size_t)bl);
    int n = 0;
    /* s itself is still bound when its queue overflows: never back to it. */
    int best = mp_route_best_priority(u, s);
    if (best < 0)
        return 0;
    for (mp_cstream *r = u->resources; r; r = r->next_res) {
        if (mp_route_gets_bare(r, best, 0, s)) {
            mp_core_send(core, r, bytes, len);
            n++;
        }
    }
    return n;
}

/* An IQ request the client never answered: the requester hears service-unavailable from the
 * full JID it asked (RFC 6120 §8.3). Built in its own buffer: callers may hold core->scratch. */
static void
bounce_iq(mp_core *core, mp_cstream *s, const mp_xnode *iq)
{
    const char *from = mp_xnode_attr(iq, "from");
    const char *id = mp_xnode_attr(iq, "id");
    if (!from || !id || !s->full)
        return;
    mp_jid j;
    if (mp_jid_prep(from, strlen(from), &j) < 0 || !j.node_len || !j.resource_len)
        return; /* only local sessions ask from a full JID the core can find */
    char bare[2 * MP_JID_PART_MAX + 2];
    int bl = mp_jid_bare(&j, bare, sizeof bare);
    mp_user *u = bl > 0 ? mp_core_user(core, bare, (size_t)bl) : NULL;
    size_t fl = strlen(from);
    for (mp_cstream *r = u ? u->resources : NULL; r; r = r->next_res) {
        if (r->full_len != fl || memcmp(r->full, from, fl) != 0)
            continue;
        mp_buf b = {0};
        int rc = mp_buf_puts(&b, "<iq type='error' from='");
        rc |= mp_xml_escape_attr(&b, s->full, s->full_len);
        rc |= mp_buf_puts(&b, "' to='");
        rc |= mp_xml_escape_attr(&b, r->full, r->full_len);
        rc |= mp_buf_puts(&b, "' id='");
        rc |= mp_xml_escape_attr(&b, id, strlen(id));
        rc |= mp_buf_puts(&b, "'><error type='cancel'><service-unavailable xmlns='" NS_STANZAS
                              "'/></error></iq>");
        if (rc == 0)
            mp_core_send(core, r, b.data, b.len);
        mp_buf_free(&b);
        return;
    }
}

static void
spill_one(mp_core *core, mp_cstream *s, const char *bytes, size_t len, int counts[4])
{
    mp_arena a;
    mp_arena_init(&a, 1024);
    mp_xnode *el = NULL;
    int kind = SPILL_DROPPED;
    if (mp_xml_parse(core->parser, &a, "jabber:client", bytes, len, &el) == 0) {
        const char *type = mp_xnode_attr(el, "type");
        if (strcmp(el->name, "message") == 0) {
            /* RFC 6121 §8.5.2: what would be stored for an account with no resource. */
            if (!type || strcmp(type, "chat") == 0 || strcmp(type, "normal") == 0) {
                if (redeliver(core, s, bytes, len) > 0)
                    kind = SPILL_REDELIVERED;
                else if (s->node && mp_offline_store_bytes(core, core->cfg->hosts[s->host], s->node,
                                                           bytes, len, 1) == 0)
                    kind = SPILL_STORED;
                else
                    mp_warn("%s: an unacknowledged message could not be stored", s->full);
            }
        } else if (strcmp(el->name, "iq") == 0 && type &&
                   (strcmp(type, "get") == 0 || strcmp(type, "set") == 0)) {
            bounce_iq(core, s, el);
            kind = SPILL_BOUNCED;
        }
    }
    mp_arena_free(&a);
    counts[kind]++;
}

typedef struct spill_ctx {
    mp_core *core;
    mp_cstream *s;
    int counts[4];
} spill_ctx;

static int
spill_cb(const char *bytes, size_t len, void *ud)
{
    spill_ctx *c = ud;
    spill_one(c->core, c->s, bytes, len, c->counts);
    return 0;
}

static void
spill_queue(mp_core *core, mp_cstream *s)
{
    mp_sm_session *sm = s->sm;
    size_t n = mp_sm_unacked(&sm->q);
    if (!n)
        return;
    spill_ctx c = {core, s, {0}};
    mp_sm_foreach(&sm->q, spill_cb, &c);
    mp_sm_ack(&sm->q, sm->q.sent); /* all handled: as good as acknowledged */
    sm->acked = sm->pushed;
    if (core->journal && sm->journaled > sm->released &&
        mp_journal_drop(core->journal, sm->key) == 0)
        sm->released = sm->journaled;
    mp_info("%s: %zu unacknowledged stanzas: %d redelivered, %d stored offline, %d bounced, "
            "%d dropped",
            s->full ? s->full : "?", n, c.counts[SPILL_REDELIVERED], c.counts[SPILL_STORED],
            c.counts[SPILL_BOUNCED], c.counts[SPILL_DROPPED]);
}

void
mp_sm_end(mp_core *core, mp_cstream *s)
{
    mp_sm_session *sm = s->sm;
    if (!sm)
        return;
    spill_queue(core, s);
    sm_free(core, sm);
}

/* ---- dispatch ---- */

void
mp_sm_element(mp_core *core, mp_cstream *s, const mp_xnode *el)
{
    if (strcmp(el->name, "enable") == 0) {
        enable(core, s, el);
    } else if (strcmp(el->name, "resume") == 0) {
        resume(core, s, el);
    } else if (strcmp(el->name, "r") == 0) {
        if (s->sm)
            send_ack(core, s);
        else
            mp_core_close_stream(core, s, "unsupported-stanza-type",
                                 "stream management is not enabled");
    } else if (strcmp(el->name, "a") == 0) {
        if (s->sm)
            ack_in(core, s, el);
        else
            mp_core_close_stream(core, s, "unsupported-stanza-type",
                                 "stream management is not enabled");
    } else {
        mp_core_close_stream(core, s, "unsupported-stanza-type", NULL);
    }
}
