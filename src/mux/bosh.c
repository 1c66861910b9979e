/* BOSH (XEP-0124) carrying XMPP (XEP-0206) on /http-bind.
 *
 * A BOSH session is a virtual connection of the mux (no socket): the core sees an ordinary
 * c2s stream. Requests arrive on any HTTP connection; their payloads go through the session's
 * XML framer in rid order, and what the core writes is collected until a held request can
 * carry it. The request window, the retransmission cache and the body parser live in
 * bosh_session.c, free of sockets for the unit tests.
 *
 * Lifetimes: a session outlives its virtual connection when the stream ended with nobody
 * waiting: the terminate body is owed to the client's next request (or dropped by the
 * inactivity sweep). Responding on an HTTP connection may run that connection's next
 * pipelined request at once, which may come back here for the same session: a session in use
 * is only marked doomed, and freed when the outermost use ends. */
#include "mux/bosh_int.h"
#include "mux/http.h"
#include "mux/mux_int.h"
#include "base/buf.h"
#include "base/config.h"
#include "base/err.h"
#include "base/htab.h"
#include "base/log.h"
#include "base/rand.h"
#include "xml/escape.h"
#include "xmpp/jid.h"

#include <stdlib.h>
#include <string.h>

#define SID_LEN 32 /* [a-z0-9]: about 165 bits */
#define CT_XML "text/xml; charset=utf-8"
#define VER_MAJOR 1
#define VER_MINOR 11
#define POLLING_S 2 /* advertised shortest polling interval; not enforced */
#define NS_STREAMS_ATTR " xmlns:stream='http://etherx.jabber.org/streams'"

typedef struct bosh_state bosh_state;

enum session_flags {
    S_ENDED = 1 << 0,        /* the stream is over: the next answer terminates the session */
    S_ACKS = 1 << 1,         /* the client asked for acknowledgements (ack='1') */
    S_STREAM_ERROR = 1 << 2, /* a <stream:error/> is among the pending output */
    S_CREATE_OWED = 1 << 3,  /* the session creation response is not out yet */
    S_LEGACY = 1 << 4,       /* no 'ver': HTTP error codes instead of binding conditions */
    S_TERM_SENT = 1 << 5,    /* the terminate body went out */
    S_DOOMED = 1 << 6,       /* freed when no longer in use */
};

typedef struct bosh_session {
    mp_hnode node; /* in bosh_state.sessions, by sid */
    struct bosh_session *prev, *next;
    bosh_state *bosh;
    uint64_t conn; /* the virtual connection; 0 once it is freed */
    bosh_win win;
    mp_buf pending; /* elements for the next answer */
    char *from;     /* the stream's host */
    char *authid;   /* the stream id, until the creation response carries it */
    uint64_t create_rid;
    uint64_t last_ms;               /* last answer, or creation */
    uint64_t report_rid, report_ms; /* XEP-0124 §9.2 report for the next answer, or 0 */
    uint64_t pause_rid;             /* a pause request to answer at once, or 0 */
    unsigned wait_s, inactivity_s, pause_s;
    unsigned ver_major, ver_minor;
    unsigned flags;
    int busy;
    const char *condition; /* terminal condition of the ending, or NULL */
    char sid[SID_LEN + 1];
} bosh_session;

struct bosh_state {
    mp_mux *mux;
    mp_htab sessions;
    bosh_session *head;
    size_t count;
    unsigned max_wait, max_hold, max_requests, inactivity, max_pause;
};

static bosh_state *
state_of(mp_mux *m)
{
    return mp_http_bosh_state(m);
}

/* ---- small helpers ---- */

static uint64_t
now_ms(bosh_state *st)
{
    return uv_now(&st->mux->loop);
}

/* The HTTP connection waiting under this id, if it is still there. */
static mp_conn *
live_conn(bosh_state *st, uint64_t id)
{
    mp_conn *c = id ? mp_mux_conn_by_id(st->mux, id) : NULL;
    return c && !(c->flags & (CF_CLOSING | CF_HANDLE_CLOSED)) ? c : NULL;
}

static uint64_t
session_hash(const char *sid, size_t len)
{
    return mp_hash_str(sid, len);
}

static bosh_session *
session_find(bosh_state *st, const char *sid)
{
    size_t len = strlen(sid);
    uint64_t h = session_hash(sid, len);
    for (mp_hnode *n = mp_htab_find(&st->sessions, h); n; n = mp_htab_next_same(n->next, h)) {
        bosh_session *s = mp_container_of(n, bosh_session, node);
        if (strcmp(s->sid, sid) == 0)
            return s;
    }
    return NULL;
}

static int
legacy_status(const char *cond)
{
    if (strcmp(cond, "bad-request") == 0)
        return 400;
    if (strcmp(cond, "policy-violation") == 0)
        return 403;
    if (strcmp(cond, "item-not-found") == 0)
        return 404;
    return 200;
}

/* A terminal binding condition outside any session's window. */
static void
respond_terminate(mp_conn *c, int status, const char *cond)
{
    char b[160];
    int n =
        snprintf(b, sizeof b, "<body xmlns='" BOSH_NS "' type='terminate' condition='%s'/>", cond);
    mp_http_respond(c, status, CT_XML, NULL, b, (size_t)n);
}

/* ---- session lifetime ---- */

static void
session_unlink(bosh_session *s)
{
    bosh_state *st = s->bosh;
    if (s->flags & S_DOOMED)
        return;
    s->flags |= S_DOOMED;
    mp_htab_remove(&st->sessions, &s->node);
    if (s->prev)
        s->prev->next = s->next;
    else
        st->head = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->prev = s->next = NULL;
    st->count--;
}

static void
session_free(bosh_session *s)
{
    bosh_win_free(&s->win);
    mp_buf_free(&s->pending);
    free(s->from);
    free(s->authid);
    free(s);
}

static void
session_close_conn(bosh_session *s)
{
    if (!s->conn)
        return;
    mp_conn *vc = mp_mux_conn_by_id(s->bosh->mux, s->conn);
    s->conn = 0;
    if (vc) {
        vc->tstate = NULL;
        mp_mux_close_now(vc);
    }
}

/* Forget the session: its virtual connection, if any, closes without the client having
 * ended the stream (so the core may keep a XEP-0198 session for resumption). Requests still
 * owed must have been answered by the caller. */
static void
session_destroy(bosh_session *s)
{
    if (s->flags & S_DOOMED)
        return;
    session_unlink(s);
    session_close_conn(s);
    if (!s->busy)
        session_free(s);
}

static void
session_hold(bosh_session *s)
{
    s->busy++;
}

/* Returns 1 when the session is gone. */
static int
session_release(bosh_session *s)
{
    if (--s->busy == 0 && (s->flags & S_DOOMED)) {
        session_free(s);
        return 1;
    }
    return (s->flags & S_DOOMED) != 0;
}

/* ---- answers ---- */

static int
put_creation_attrs(bosh_session *s, mp_buf *b)
{
    bosh_state *st = s->bosh;
    if (mp_buf_printf(b, " sid='%s' wait='%u' requests='%u' hold='%u' inactivity='%u' polling='%u'",
                      s->sid, s->wait_s, s->win.requests, s->win.hold, st->inactivity,
                      POLLING_S) < 0)
        return MP_ENOMEM;
    if (st->max_pause && mp_buf_printf(b, " maxpause='%u'", st->max_pause) < 0)
        return MP_ENOMEM;
    if (!(s->flags & S_LEGACY) && mp_buf_printf(b, " ver='%u.%u'", s->ver_major, s->ver_minor) < 0)
        return MP_ENOMEM;
    if (s->flags & S_ACKS && mp_buf_printf(b, " ack='%llu'", (unsigned long long)s->create_rid) < 0)
        return MP_ENOMEM;
    if (s->from && (mp_buf_puts(b, " from='") < 0 ||
                    mp_xml_escape_attr(b, s->from, strlen(s->from)) < 0 || mp_buf_puts(b, "'") < 0))
        return MP_ENOMEM;
    if (s->authid && mp_buf_printf(b, " authid='%s'", s->authid) < 0)
        return MP_ENOMEM;
    /* The link to the core is in-process or the mux's own authenticated link. */
    return mp_buf_puts(b, " secure='true' xmpp:version='1.0' xmlns:xmpp='" BOSH_NS_XBOSH
                          "'" NS_STREAMS_ATTR);
}

/* Answer the oldest held request: with the pending output when payload is set, terminating
 * the session when terminate is set. The answer is cached for retransmission whether or not
 * its connection is still there. */
static void
answer_oldest(bosh_session *s, int payload, int terminate)
{
    bosh_state *st = s->bosh;
    bosh_req *r = bosh_win_oldest(&s->win);
    if (!r)
        return;
    uint64_t rid = r->rid, conn = r->conn, now = now_ms(st);
    int creation = (s->flags & S_CREATE_OWED) && rid == s->create_rid;
    mp_buf b = {0};
    int rc = mp_buf_puts(&b, "<body xmlns='" BOSH_NS "'");
    if (rc == 0 && creation)
        rc = put_creation_attrs(s, &b);
    /* §9.1: the highest rid received in order, when it is not this one */
    if (rc == 0 && (s->flags & S_ACKS) && !creation && bosh_win_last_in_order(&s->win) > rid)
        rc = mp_buf_printf(&b, " ack='%llu'", (unsigned long long)bosh_win_last_in_order(&s->win));
    if (rc == 0 && s->report_rid) {
        rc = mp_buf_printf(&b, " report='%llu' time='%llu'", (unsigned long long)s->report_rid,
                           (unsigned long long)s->report_ms);
        s->report_rid = 0;
    }
    int with_data = payload && s->pending.len > 0;
    if (rc == 0 && terminate) {
        rc = mp_buf_puts(&b, " type='terminate'");
        if (rc == 0 && s->condition)
            rc = mp_buf_printf(&b, " condition='%s'", s->condition);
    }
    if (rc == 0 && with_data && (s->flags & S_STREAM_ERROR) && !creation)
        rc = mp_buf_puts(&b, NS_STREAMS_ATTR);
    if (rc == 0 && with_data) {
        rc = mp_buf_puts(&b, ">");
        if (rc == 0)
            rc = mp_buf_append(&b, s->pending.data, s->pending.len);
        if (rc == 0)
            rc = mp_buf_puts(&b, "</body>");
    } else if (rc == 0) {
        rc = mp_buf_puts(&b, "/>");
    }
    if (rc < 0) {
        mp_buf_free(&b);
        mp_err("bosh %s: out of memory building an answer", s->sid);
        s->flags |= S_ENDED;
        s->condition = "internal-server-error";
        /* Nothing is sent for this rid: the client's retry gets item-not-found. */
        bosh_win_answered(&s->win, NULL, 0, now);
        return;
    }
    if (with_data) {
        s->pending.len = 0;
        s->flags &= ~S_STREAM_ERROR;
        if (s->pending.cap > 16384)
            mp_buf_free(&s->pending);
    }
    if (creation) {
        s->flags &= ~S_CREATE_OWED;
        free(s->authid);
        s->authid = NULL;
    }
    if (terminate)
        s->flags |= S_TERM_SENT;
    s->last_ms = now;
    const char *data = b.data;
    size_t len = b.len;
    /* Recorded before it is sent: responding may run the connection's next request. */
    bosh_win_answered(&s->win, b.data, b.len, now);
    mp_conn *c = live_conn(st, conn);
    if (c)
        mp_http_respond(c, 200, CT_XML, NULL, data, len);
}

/* Answer requests that are early (out of order) or otherwise owed outside the window's order,
 * once the session is over. */
static void
drop_early(bosh_session *s, const char *cond)
{
    bosh_state *st = s->bosh;
    while (s->win.nout > 0) {
        bosh_req r = s->win.out[s->win.nout - 1];
        s->win.nout--;
        free(r.payload);
        mp_conn *c = live_conn(st, r.conn);
        if (c)
            respond_terminate(c, 200, cond);
    }
}

/* Answer what can be answered: held requests over `hold`, the oldest one when output is
 * pending, requests whose connection is gone (into the cache, for a retry), everything when
 * the session is over. */
static void
flush(bosh_session *s)
{
    bosh_state *st = s->bosh;
    session_hold(s);
    for (;;) {
        if (s->flags & S_DOOMED)
            break;
        bosh_req *r = bosh_win_oldest(&s->win);
        if (!r)
            break;
        unsigned held = bosh_win_held(&s->win);
        if (!live_conn(st, r->conn)) {
            answer_oldest(s, 0, 0);
        } else if (s->flags & S_ENDED) {
            answer_oldest(s, 1, held == 1);
        } else if (s->pause_rid && r->rid <= s->pause_rid) {
            /* §10: the pause request itself carries no payload */
            int is_pause = r->rid == s->pause_rid;
            answer_oldest(s, !is_pause, 0);
            if (is_pause)
                s->pause_rid = 0;
        } else if (s->pending.len || held > s->win.hold || s->report_rid) {
            answer_oldest(s, 1, 0);
        } else {
            break;
        }
    }
    if (!(s->flags & S_DOOMED) && (s->flags & S_ENDED)) {
        if (bosh_win_early(&s->win))
            drop_early(s, "other-request");
        if ((s->flags & S_TERM_SENT) && !s->conn)
            session_destroy(s);
    }
    session_release(s);
}

/* End the session for a protocol violation: the request gets the condition (an HTTP error
 * for a legacy client), every other owed request other-request, and the stream closes as if
 * the connection dropped. */
static void
session_fail(bosh_session *s, mp_conn *c, const char *cond)
{
    bosh_state *st = s->bosh;
    mp_info("bosh %s (%s): %s, ending the session", s->sid, c ? c->ip : "-", cond);
    session_hold(s);
    int status = (s->flags & S_LEGACY) ? legacy_status(cond) : 200;
    uint64_t cid = c ? c->id : 0;
    session_destroy(s);
    while (s->win.nout > 0) {
        bosh_req r = s->win.out[--s->win.nout];
        free(r.payload);
        mp_conn *o = r.conn != cid ? live_conn(st, r.conn) : NULL;
        if (o)
            respond_terminate(o, 200, "other-request");
    }
    if (c)
        respond_terminate(c, status, cond);
    session_release(s);
}

/* ---- the virtual connection's ops ---- */

static void
op_header(mp_conn *c, const char *host, const char *id)
{
    bosh_session *s = c->tstate;
    if (!s)
        return;
    if (!s->from)
        s->from = strdup(host); /* NULL: the creation response goes without 'from' */
    if (s->flags & S_CREATE_OWED) {
        free(s->authid);
        s->authid = strdup(id);
    }
}

static void
collect(void *ud, const char *el, size_t n)
{
    bosh_session *s = ud;
    if (n >= 13 && memcmp(el, "<stream:error", 13) == 0)
        s->flags |= S_STREAM_ERROR;
    if (mp_buf_append(&s->pending, el, n) < 0)
        s->flags |= S_ENDED;
}

static void
op_xml(mp_conn *c, const char *p, size_t n)
{
    bosh_session *s = c->tstate;
    if (!s || (s->flags & S_DOOMED))
        return;
    if (mp_http_each_element(p, n, &c->mux->scratch, collect, s) < 0) {
        mp_err("bosh %s: the core wrote bytes that are not whole elements", s->sid);
        s->flags |= S_ENDED;
        s->condition = "internal-server-error";
    }
    if (s->pending.len > c->mux->max_output && !(s->flags & S_ENDED)) {
        /* Nobody polls: as a slow reader on TCP, the client is let go. */
        mp_warn("bosh %s (%s): over %zu bytes waiting for a request, ending the session", s->sid,
                c->ip, c->mux->max_output);
        s->pending.len = 0;
        s->flags |= S_ENDED;
        s->condition = "policy-violation";
    }
    if ((s->flags & S_ENDED) && !(c->flags & CF_CLOSING))
        mp_mux_close_now(c);
    /* A stream error is followed by the end of the stream: both go in one terminate body
     * (XEP-0206 §9), not the error in one answer and the terminate in the next. */
    if ((s->flags & (S_STREAM_ERROR | S_ENDED)) != S_STREAM_ERROR)
        flush(s);
}

static void
op_end(mp_conn *c)
{
    bosh_session *s = c->tstate;
    if (!s || (s->flags & S_DOOMED))
        return;
    s->flags |= S_ENDED;
    if (!s->condition && (s->flags & S_STREAM_ERROR))
        s->condition = "remote-stream-error"; /* XEP-0206 §9 */
    flush(s);
}

static void
op_freed(mp_conn *c)
{
    bosh_session *s = c->tstate;
    c->tstate = NULL;
    if (!s)
        return;
    s->conn = 0;
    if (s->flags & S_DOOMED)
        return;
    if (!(s->flags & S_ENDED)) {
        s->flags |= S_ENDED;
        if (!s->condition)
            s->condition = "remote-connection-failed";
    }
    flush(s);
}

static const mp_conn_ops session_ops = {
    .header = op_header,
    .xml = op_xml,
    .end = op_end,
    .freed = op_freed,
};

/* ---- requests ---- */

static mp_conn *
session_conn(bosh_session *s)
{
    mp_conn *vc = s->conn ? mp_mux_conn_by_id(s->bosh->mux, s->conn) : NULL;
    return vc && !(vc->flags & CF_CLOSING) ? vc : NULL;
}

static int
feed_header(bosh_session *s, mp_conn *vc, const char *lang)
{
    mp_buf b = {0};
    int rc = mp_buf_puts(&b, "<stream:stream xmlns='jabber:client' "
                             "xmlns:stream='http://etherx.jabber.org/streams' to='");
    if (rc == 0)
        rc = mp_xml_escape_attr(&b, s->from, strlen(s->from));
    if (rc == 0)
        rc = mp_buf_puts(&b, "' version='1.0'");
    if (rc == 0 && lang && *lang) {
        rc = mp_buf_puts(&b, " xml:lang='");
        if (rc == 0)
            rc = mp_xml_escape_attr(&b, lang, strlen(lang));
        if (rc == 0)
            rc = mp_buf_puts(&b, "'");
    }
    if (rc == 0)
        rc = mp_buf_puts(&b, ">");
    if (rc == 0)
        mp_mux_stream_feed(vc, b.data, b.len);
    mp_buf_free(&b);
    return rc;
}

/* Process one request in rid order (it is already held). Returns 0, or a condition to end
 * the session with. */
static const char *
process(bosh_session *s, uint64_t rid, unsigned flags, uint64_t ack, unsigned pause,
        const char *payload, size_t len, const char *lang)
{
    bosh_state *st = s->bosh;
    uint64_t now = now_ms(st);
    s->pause_s = 0; /* §10: back to normal with the next request */
    if ((flags & BB_ACK) && (s->flags & S_ACKS)) {
        const bosh_cached *lost = bosh_win_cached(&s->win, ack + 1);
        if (lost && ack + 1 < rid) {
            /* §9.2: the client has not seen an answer we sent */
            s->report_rid = ack + 1;
            s->report_ms = now - lost->sent_ms;
            mp_debug("bosh %s: client acks %llu, answer to %llu lost?", s->sid,
                     (unsigned long long)ack, (unsigned long long)ack + 1);
        }
        bosh_win_acked(&s->win, ack);
    }
    if ((flags & BB_PAUSE) && st->max_pause) {
        s->pause_s = pause < st->max_pause ? pause : st->max_pause;
        s->pause_rid = rid;
    }
    mp_conn *vc = session_conn(s);
    if (flags & BB_RESTART) {
        /* XEP-0206 §5: only after the mux reset the stream (SASL success), with no payload */
        if (!vc || (vc->flags & CF_HEADER_SENT) || len)
            return "bad-request";
        if (feed_header(s, vc, lang) < 0)
            return "internal-server-error";
        vc = session_conn(s);
    }
    if (vc && len) {
        mp_mux_stream_feed(vc, payload, len);
        vc = session_conn(s);
    }
    if (flags & BB_TERMINATE) {
        /* §13: the payloads went first; now the client's end of the stream */
        if (vc && (vc->flags & CF_HEADER_SENT)) {
            mp_mux_stream_feed(vc, "</stream:stream>", 16);
        } else if (vc) {
            vc->flags |= CF_PEER_CLOSED;
            mp_mux_close_graceful(vc);
        }
        s->flags |= S_ENDED;
    }
    return NULL;
}

static void
hold_conn(mp_conn *c)
{
    mp_mux_set_deadline(c, 0); /* http.c re-arms its keep-alive when it responds */
}

static void
session_request(bosh_session *s, mp_conn *c, const bosh_body *b, const char *raw)
{
    bosh_state *st = s->bosh;
    uint64_t now = now_ms(st);
    if (!(b->flags & BB_RID)) {
        session_fail(s, c, "bad-request");
        return;
    }
    if (s->flags & S_TERM_SENT) {
        respond_terminate(c, (s->flags & S_LEGACY) ? 404 : 200, "item-not-found");
        return;
    }
    const bosh_cached *cached = NULL;
    unsigned owed = 0;
    int exempt = (b->flags & (BB_PAUSE | BB_TERMINATE)) != 0;
    enum bosh_verdict v = bosh_win_classify(&s->win, b->rid, exempt, &cached, &owed);
    switch (v) {
    case BOSH_V_RESEND:
        mp_debug("bosh %s: rid %llu again, answer resent", s->sid, (unsigned long long)b->rid);
        if (cached->data)
            mp_http_respond(c, 200, CT_XML, NULL, cached->data, cached->len);
        else
            respond_terminate(c, 200, "item-not-found");
        return;
    case BOSH_V_REATTACH: {
        bosh_req *r = &s->win.out[owed];
        mp_conn *old = r->conn != c->id ? live_conn(st, r->conn) : NULL;
        r->conn = c->id;
        r->since_ms = now;
        hold_conn(c);
        if (old)
            mp_mux_close_graceful(old); /* the client gave up on it */
        flush(s);
        return;
    }
    case BOSH_V_NOT_FOUND:
        session_fail(s, c, "item-not-found");
        return;
    case BOSH_V_OVERACTIVE:
        session_fail(s, c, "policy-violation");
        return;
    case BOSH_V_EARLY: {
        bosh_req r = {.rid = b->rid,
                      .conn = c->id,
                      .since_ms = now,
                      .flags = b->flags,
                      .pause = b->pause,
                      .ack = b->ack};
        if (b->child_len && !(r.payload = malloc(b->child_len))) {
            session_fail(s, c, "internal-server-error");
            return;
        }
        if (b->child_len)
            memcpy(r.payload, raw + b->child_off, b->child_len);
        r.len = b->child_len;
        if (bosh_win_add(&s->win, &r) < 0) {
            free(r.payload);
            session_fail(s, c, "internal-server-error");
            return;
        }
        hold_conn(c);
        return;
    }
    case BOSH_V_PROCESS:
        break;
    }
    bosh_req r = {.rid = b->rid, .conn = c->id, .since_ms = now};
    if (bosh_win_add(&s->win, &r) < 0) {
        session_fail(s, c, "internal-server-error");
        return;
    }
    hold_conn(c);
    session_hold(s);
    const char *cond =
        process(s, b->rid, b->flags, b->ack, b->pause, raw + b->child_off, b->child_len, b->lang);
    /* requests that came early and whose turn it is now */
    bosh_req *due;
    while (!cond && !(s->flags & S_DOOMED) && (due = bosh_win_due(&s->win))) {
        char *payload = due->payload;
        size_t len = due->len;
        uint64_t rid = due->rid, ack = due->ack;
        unsigned flags = due->flags, pause = due->pause;
        due->payload = NULL;
        bosh_win_promote(&s->win, due);
        cond = process(s, rid, flags, ack, pause, payload, len, NULL);
        free(payload);
    }
    if (cond && !(s->flags & S_DOOMED))
        session_fail(s, c, cond);
    else if (!(s->flags & S_DOOMED))
        flush(s);
    session_release(s);
}

static int
count_address(mp_conn *vc)
{
    struct sockaddr_storage ss;
    mp_mux *m = vc->mux;
    int rc = strchr(vc->ip, ':') ? uv_ip6_addr(vc->ip, 0, (struct sockaddr_in6 *)&ss)
                                 : uv_ip4_addr(vc->ip, 0, (struct sockaddr_in *)&ss);
    if (rc != 0)
        return 0; /* no address (a test harness): not counted */
    int first = 0;
    rc = mp_iplimit_acquire(m->iplimit, (struct sockaddr *)&ss, m->shape.max_per_ip, &first);
    if (rc > 0) {
        vc->flags |= CF_IP_COUNTED; /* released when the connection is freed */
        return 0;
    }
    if (rc == MP_ELIMIT && first)
        mp_warn("%s: %d connections and BOSH sessions open from this address, refusing more "
                "(c2s.max_connections_per_ip)",
                vc->ip, m->shape.max_per_ip);
    return rc == MP_ELIMIT ? rc : 0;
}

static void
session_create(bosh_state *st, mp_conn *c, const bosh_body *b, const char *raw)
{
    mp_mux *m = st->mux;
    char host[MP_JID_PART_MAX + 1];
    int legacy = !(b->flags & BB_VER);
    if (!(b->flags & BB_RID)) {
        respond_terminate(c, 400, "bad-request");
        return;
    }
    if (!(b->flags & BB_TO) || !*b->to) {
        respond_terminate(c, legacy ? 400 : 200, "improper-addressing");
        return;
    }
    int len = mp_jid_nameprep(b->to, strlen(b->to), host, sizeof host);
    if (len < 0 || !mp_config_is_host(m->cfg, host, (size_t)len)) {
        mp_debug("bosh (%s): session for unknown host refused", c->ip);
        respond_terminate(c, 200, "host-unknown");
        return;
    }
    if (m->stopping) {
        respond_terminate(c, 200, "system-shutdown");
        return;
    }
    mp_conn *vc = mp_mux_conn_virtual(m, c->ip);
    bosh_session *s = calloc(1, sizeof *s);
    if (!vc || !s)
        goto oom;
    if (count_address(vc) < 0) {
        free(s);
        mp_mux_close_now(vc);
        respond_terminate(c, legacy ? 403 : 200, "policy-violation");
        return;
    }
    unsigned hold = (b->flags & BB_HOLD) ? b->hold : 1;
    if (hold > st->max_hold)
        hold = st->max_hold;
    unsigned requests = st->max_requests > hold + 1 ? st->max_requests : hold + 1;
    if (bosh_win_init(&s->win, b->rid, requests, hold) < 0)
        goto oom;
    s->bosh = st;
    s->wait_s = (b->flags & BB_WAIT) && b->wait < st->max_wait ? b->wait : st->max_wait;
    s->inactivity_s = st->inactivity;
    s->create_rid = b->rid;
    s->last_ms = now_ms(st);
    s->flags =
        S_CREATE_OWED | (legacy ? S_LEGACY : 0) | ((b->flags & BB_ACK) && b->ack == 1 ? S_ACKS : 0);
    if (!legacy) {
        int newer =
            b->ver_major > VER_MAJOR || (b->ver_major == VER_MAJOR && b->ver_minor > VER_MINOR);
        s->ver_major = newer ? VER_MAJOR : b->ver_major;
        s->ver_minor = newer ? VER_MINOR : b->ver_minor;
    }
    if (!(s->from = strdup(host)))
        goto oom_win;
    do
        mp_random_token(s->sid, SID_LEN);
    while (session_find(st, s->sid));
    if (mp_htab_insert(&st->sessions, &s->node, session_hash(s->sid, SID_LEN)) < 0)
        goto oom_win;
    s->next = st->head;
    if (st->head)
        st->head->prev = s;
    st->head = s;
    st->count++;
    if (mp_http_is_secure(c))
        vc->flags |= CF_SECURE;
    vc->ops = &session_ops;
    vc->tstate = s;
    s->conn = vc->id;
    mp_debug("bosh %s (%s): session for %s, conn %016llx, wait %u hold %u", s->sid, c->ip, host,
             (unsigned long long)vc->id, s->wait_s, hold);
    bosh_req r = {.rid = b->rid, .conn = c->id, .since_ms = s->last_ms};
    bosh_win_add(&s->win, &r); /* cannot fail: the window is empty */
    hold_conn(c);
    session_hold(s);
    if (feed_header(s, vc, b->lang) < 0) {
        session_fail(s, c, "internal-server-error");
    } else {
        mp_conn *v = session_conn(s);
        if (v && b->child_len)
            mp_mux_stream_feed(v, raw + b->child_off, b->child_len);
        flush(s);
    }
    session_release(s);
    return;
oom_win:
    bosh_win_free(&s->win);
    free(s->from);
oom:
    free(s);
    if (vc)
        mp_mux_close_now(vc);
    mp_err("bosh (%s): out of memory creating a session", c->ip);
    respond_terminate(c, 200, "internal-server-error");
}

void
mp_bosh_request(mp_conn *c, const mp_http_request *r)
{
    bosh_state *st = state_of(c->mux);
    if (r->method_len == 7 && memcmp(r->method, "OPTIONS", 7) == 0) {
        mp_http_respond(c, 200, "text/plain; charset=utf-8", NULL, "", 0); /* CORS pre-flight */
        return;
    }
    if (!(r->method_len == 4 && memcmp(r->method, "POST", 4) == 0)) {
        static const char msg[] = "BOSH: POST XEP-0124 <body/> elements here\n";
        mp_http_respond(c, 405, "text/plain; charset=utf-8", "Allow: POST, OPTIONS\r\n", msg,
                        sizeof msg - 1);
        return;
    }
    if (!st) {
        mp_http_respond(c, 503, "text/plain; charset=utf-8", NULL, "", 0);
        return;
    }
    bosh_body b;
    if (bosh_parse_body(r->body, r->body_len, &b) < 0) {
        mp_debug("bosh (%s): request body is not a BOSH <body/>", c->ip);
        respond_terminate(c, 400, "bad-request");
        return;
    }
    if (!(b.flags & BB_SID)) {
        session_create(st, c, &b, r->body);
        return;
    }
    bosh_session *s = session_find(st, b.sid);
    if (!s) {
        /* XEP-0124 §17: the client's version is unknown here; 404 suits both kinds */
        respond_terminate(c, 404, "item-not-found");
        return;
    }
    session_request(s, c, &b, r->body);
}

/* ---- timers ---- */

static void
sweep_session(bosh_session *s, uint64_t now)
{
    bosh_state *st = s->bosh;
    uint64_t wait_ms = (uint64_t)s->wait_s * 1000;
    session_hold(s);
    /* held requests whose wait is over, or whose connection went away */
    bosh_req *r;
    while (!(s->flags & S_DOOMED) && (r = bosh_win_oldest(&s->win)) &&
           (now - r->since_ms >= wait_ms || !live_conn(st, r->conn)))
        answer_oldest(s, live_conn(st, r->conn) != NULL, (s->flags & S_ENDED) != 0);
    if (s->flags & S_DOOMED)
        goto out;
    /* an early request whose gap never filled: the missing one is lost */
    for (unsigned i = 0; i < s->win.nout; i++) {
        if (!s->win.out[i].processed && now - s->win.out[i].since_ms >= wait_ms) {
            session_fail(s, NULL, "item-not-found");
            goto out;
        }
    }
    uint64_t limit = (uint64_t)(s->pause_s ? s->pause_s : s->inactivity_s) * 1000;
    if (s->win.nout == 0 && now - s->last_ms >= limit) {
        if (!(s->flags & S_ENDED))
            mp_debug("bosh %s: no request for %llu s, session ended", s->sid,
                     (unsigned long long)(limit / 1000));
        session_destroy(s);
    }
out:
    session_release(s);
}

void
mp_bosh_sweep(void *bosh, uint64_t now)
{
    bosh_state *st = bosh;
    if (!st)
        return;
    bosh_session *s = st->head;
    while (s) {
        /* s may go; a later session may not (nothing here answers other sessions) */
        bosh_session *next = s->next;
        sweep_session(s, now);
        s = next;
    }
}

void *
mp_bosh_new(mp_mux *m)
{
    bosh_state *st = calloc(1, sizeof *st);
    if (!st)
        return NULL;
    const mp_config *cfg = m->cfg;
    st->mux = m;
    st->max_wait = (unsigned)cfg->http_bosh_max_wait;
    st->max_hold = (unsigned)cfg->http_bosh_max_hold;
    st->max_requests = (unsigned)cfg->http_bosh_max_requests;
    st->inactivity = (unsigned)cfg->http_bosh_max_inactivity;
    st->max_pause = (unsigned)cfg->http_bosh_max_pause;
    return st;
}

void
mp_bosh_free(void *bosh)
{
    bosh_state *st = bosh;
    if (!st)
        return;
    /* The mux's connections are closed by now; what is left are sessions owing a terminate. */
    while (st->head) {
        bosh_session *s = st->head;
        s->conn = 0;
        session_destroy(s);
    }
    mp_htab_free(&st->sessions);
    free(st);
}
