#include "mux/mux.h"
#include "mux/mux_int.h"
#include "base/buf.h"
#include "base/config.h"
#include "base/err.h"
#include "base/htab.h"
#include "base/log.h"
#include "base/rand.h"
#include "link/link.h"
#include "stream/tls.h"
#include "xml/escape.h"
#include "xml/framer.h"
#include "xmpp/jid.h"

#include <arpa/inet.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static void conn_close_now(mp_conn *c);
static int slot_take(mp_mux *m, uint32_t *slot);
static void shaper_apply(mp_conn *c, int fill);
static void apply_limits(mp_mux *m);
static void stream_error(mp_conn *c, const char *cond, const char *extra);

/* ---- small helpers ---- */

static void
list_remove(mp_conn *c)
{
    conn_list *l = c->list;
    if (!l)
        return;
    if (c->prev)
        c->prev->next = c->next;
    else
        l->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        l->tail = c->prev;
    c->prev = c->next = NULL;
    c->list = NULL;
}

static void
list_append(conn_list *l, mp_conn *c, uint64_t deadline)
{
    list_remove(c);
    c->deadline_ms = deadline;
    c->prev = l->tail;
    c->next = NULL;
    if (l->tail)
        l->tail->next = c;
    else
        l->head = c;
    l->tail = c;
    c->list = l;
}

static void
push_frame(mp_mux *m, mp_frame_out *o)
{
    int rc = mp_ring_push(&m->link->to_core, o);
    if (rc < 0)
        mp_err("mux %d: cannot pass frame to core: %s", m->index, mp_strerror(rc));
}

static void
tell_core_closed(mp_conn *c, const char *reason)
{
    if (!(c->flags & CF_CORE_KNOWS))
        return;
    c->flags &= ~CF_CORE_KNOWS;
    if (c->flags & CF_PEER_CLOSED)
        reason = MP_CLOSED_BY_PEER;
    mp_frame_out o = {.kind = MP_LF_CLOSED, .conn = c->id, .aux = reason,
                      .aux_len = strlen(reason)};
    push_frame(c->mux, &o);
}

/* ---- writing ---- */

static void on_write(uv_write_t *req, int status);

static void
start_write(mp_conn *c)
{
    if ((c->flags & (CF_WRITING | CF_HANDLE_CLOSED)) || c->out.len == 0)
        return;
    mp_buf t = c->inflight;
    c->inflight = c->out;
    c->out = t;
    c->out.len = 0;
    uv_buf_t b = uv_buf_init(c->inflight.data, (unsigned)c->inflight.len);
    int rc = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_write);
    if (rc < 0) {
        mp_debug("conn %016llx: write failed: %s", (unsigned long long)c->id, uv_strerror(rc));
        c->inflight.len = 0;
        conn_close_now(c);
        return;
    }
    c->flags |= CF_WRITING;
}

static void
maybe_finish_close(mp_conn *c)
{
    if ((c->flags & CF_CLOSING) && !(c->flags & CF_WRITING) && c->out.len == 0)
        conn_close_now(c);
}

static void
on_write(uv_write_t *req, int status)
{
    mp_conn *c = mp_container_of(req, mp_conn, wreq);
    c->flags &= ~CF_WRITING;
    c->inflight.len = 0;
    if (c->inflight.cap > 16384)
        mp_buf_free(&c->inflight);
    if (status < 0) {
        conn_close_now(c);
        return;
    }
    start_write(c);
    maybe_finish_close(c);
}

static void
raw_write(mp_conn *c, const char *p, size_t n)
{
    if (c->flags & CF_HANDLE_CLOSED)
        return;
    if (!(c->flags & CF_WRITING) && c->out.len == 0) {
        /* The common case: the socket can take it now, no copy. */
        uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
        int r = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
        if (r == (int)n)
            return;
        if (r > 0) {
            p += r;
            n -= (size_t)r;
        } else if (r != UV_EAGAIN) {
            conn_close_now(c);
            return;
        }
    }
    if (c->out.len + n > c->mux->max_output && !(c->flags & CF_CLOSING)) {
        mp_warn("conn %016llx (%s): output buffer over %zu bytes, closing slow reader",
                (unsigned long long)c->id, c->ip, c->mux->max_output);
        conn_close_now(c);
        return;
    }
    if (mp_buf_append(&c->out, p, n) < 0) {
        conn_close_now(c);
        return;
    }
    start_write(c);
}

static void
pump_tls(mp_conn *c)
{
    char tmp[16384];
    size_t n;
    while (c->tls && (n = mp_tls_take_output(c->tls, tmp, sizeof tmp)) > 0)
        raw_write(c, tmp, n);
}

void
mp_mux_wire_write(mp_conn *c, const char *p, size_t n)
{
    if (n == 0 || (c->flags & (CF_HANDLE_CLOSED | CF_VIRTUAL)))
        return;
    if (c->tls && mp_tls_handshake_done(c->tls)) {
        if (mp_tls_write(c->tls, p, n) != 0) {
            conn_close_now(c);
            return;
        }
        pump_tls(c);
        return;
    }
    raw_write(c, p, n);
}

static void
conn_write(mp_conn *c, const char *p, size_t n)
{
    if (n == 0 || (c->flags & CF_HANDLE_CLOSED))
        return;
    if (c->ops && c->ops->xml)
        c->ops->xml(c, p, n);
    else
        mp_mux_wire_write(c, p, n);
}

static void
stream_end(mp_conn *c)
{
    if (c->flags & CF_HANDLE_CLOSED)
        return;
    if (c->ops && c->ops->end)
        c->ops->end(c);
    else
        mp_mux_wire_write(c, "</stream:stream>", 16);
}

static void
conn_puts(mp_conn *c, const char *s)
{
    conn_write(c, s, strlen(s));
}

/* ---- closing ---- */

/* Every connection ends here (on_closed), whatever closed it, so the count cannot leak. The
 * address is parsed back from its text: a sockaddr per connection would cost more. */
static void
uncount_ip(mp_conn *c)
{
    struct sockaddr_storage ss;
    if (!(c->flags & CF_IP_COUNTED))
        return;
    c->flags &= ~CF_IP_COUNTED;
    int rc = strchr(c->ip, ':') ? uv_ip6_addr(c->ip, 0, (struct sockaddr_in6 *)&ss)
                                : uv_ip4_addr(c->ip, 0, (struct sockaddr_in *)&ss);
    if (rc == 0)
        mp_iplimit_release(c->mux->iplimit, (struct sockaddr *)&ss);
    else
        mp_err("conn %016llx: cannot uncount address %s", (unsigned long long)c->id, c->ip);
}

static void
close_mux_handles(mp_mux *m)
{
    uv_close((uv_handle_t *)&m->sweep, NULL);
    uv_close((uv_handle_t *)&m->resume, NULL);
    uv_close((uv_handle_t *)&m->wake, NULL);
    uv_close((uv_handle_t *)&m->stop, NULL);
}

static void
on_closed(uv_handle_t *h)
{
    mp_conn *c = mp_container_of((uv_tcp_t *)h, mp_conn, tcp);
    mp_mux *m = c->mux;
    uncount_ip(c);
    if (c->ops && c->ops->freed)
        c->ops->freed(c);
    uint32_t slot = (uint32_t)(c->id & 0xffffffffu);
    m->slots[slot] = NULL;
    m->free_slots[m->nfree++] = slot;
    m->nconns--;
    mp_framer_free(&c->fr);
    if (c->tls)
        mp_tls_conn_free(c->tls);
    mp_buf_free(&c->out);
    mp_buf_free(&c->inflight);
    free(c->stream_to);
    free(c);
    if (m->stopping && m->nconns == 0)
        close_mux_handles(m);
}

static void
conn_close_now(mp_conn *c)
{
    if (c->flags & CF_HANDLE_CLOSED)
        return;
    c->flags |= CF_HANDLE_CLOSED | CF_CLOSING;
    list_remove(c);
    tell_core_closed(c, "closed");
    uv_close((uv_handle_t *)&c->tcp, on_closed);
}

/* Close after what is queued has been written, within CLOSE_GRACE_MS. */
static void
conn_close_graceful(mp_conn *c)
{
    if (c->flags & CF_CLOSING)
        return;
    c->flags |= CF_CLOSING;
    uv_read_stop((uv_stream_t *)&c->tcp);
    tell_core_closed(c, "closed");
    list_append(&c->mux->closing, c, uv_now(&c->mux->loop) + CLOSE_GRACE_MS);
    if (c->tls && mp_tls_handshake_done(c->tls))
        pump_tls(c);
    maybe_finish_close(c);
}

static void
send_header(mp_conn *c, const char *host)
{
    char id[25];
    mp_random_token(id, 24);
    c->flags |= CF_HEADER_SENT;
    if (c->ops && c->ops->header) {
        c->ops->header(c, host, id);
        return;
    }
    mp_buf b = {0};
    if (mp_buf_puts(&b, "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
                        "xmlns:stream='http://etherx.jabber.org/streams' id='") < 0 ||
        mp_buf_puts(&b, id) < 0 || mp_buf_puts(&b, "' from='") < 0 ||
        mp_xml_escape_attr(&b, host, strlen(host)) < 0 ||
        mp_buf_puts(&b, "' version='1.0' xml:lang='en'>") < 0) {
        mp_buf_free(&b);
        conn_close_now(c);
        return;
    }
    mp_mux_wire_write(c, b.data, b.len);
    mp_buf_free(&b);
}

static void
stream_error(mp_conn *c, const char *cond, const char *extra)
{
    if (c->flags & CF_CLOSING)
        return;
    if (!(c->flags & CF_STREAM)) { /* HTTP with no stream yet: nothing to say it in */
        mp_debug("conn %016llx (%s): %s, closing", (unsigned long long)c->id, c->ip, cond);
        conn_close_graceful(c);
        return;
    }
    mp_info("conn %016llx (%s): stream error %s%s", (unsigned long long)c->id, c->ip, cond,
            extra ? " (stanza too big)" : "");
    if (!(c->flags & CF_HEADER_SENT))
        send_header(c, c->stream_to ? c->stream_to : c->mux->default_host);
    char buf[512];
    snprintf(buf, sizeof buf,
             "<stream:error><%s xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>%s</stream:error>",
             cond, extra ? extra : "");
    conn_puts(c, buf);
    stream_end(c);
    conn_close_graceful(c);
}

/* ---- framer callbacks ---- */

static int
on_stream_open(void *ud, const mp_stream_header *h)
{
    mp_conn *c = ud;
    mp_mux *m = c->mux;
    char host[MP_JID_PART_MAX + 1];
    const char *to = h->to;
    int len;
    if (to) {
        len = mp_jid_nameprep(to, strlen(to), host, sizeof host);
        if (len < 0 || !mp_config_is_host(m->cfg, host, (size_t)len)) {
            stream_error(c, "host-unknown", NULL);
            return 1;
        }
    } else {
        snprintf(host, sizeof host, "%s", c->stream_to ? c->stream_to : m->default_host);
        len = (int)strlen(host);
    }
    if (c->stream_to && strcmp(c->stream_to, host) != 0) {
        /* RFC 6120 §4.3.3 restarts keep the peer; a changed `to` is a session hijack attempt
         * (Prosody CVE-2018-10847). */
        stream_error(c, "not-authorized", NULL);
        return 1;
    }
    if (!c->stream_to && !(c->stream_to = strdup(host))) {
        stream_error(c, "resource-constraint", NULL);
        return 1;
    }
    send_header(c, host);
    if (!h->version || strtol(h->version, NULL, 10) < 1) {
        stream_error(c, "unsupported-version", NULL);
        return 1;
    }
    /* The core decides the features; tell it what the transport knows. */
    unsigned char cb[2 + 64 + 64];
    size_t cb_len = 0;
    uint16_t flags = 0;
    if (c->flags & CF_SECURE) {
        flags |= MP_FF_TLS;
    } else if (c->tls) {
        flags |= MP_FF_TLS;
        int n = mp_tls_channel_binding(c->tls, "tls-exporter", cb + 1, 64);
        cb[0] = (unsigned char)(n > 0 ? n : 0);
        cb_len = 1 + cb[0];
        n = mp_tls_channel_binding(c->tls, "tls-server-end-point", cb + cb_len + 1, 64);
        cb[cb_len] = (unsigned char)(n > 0 ? n : 0);
        cb_len += 1 + cb[cb_len];
    } else if (m->tls && !(c->flags & CF_HTTP)) {
        flags |= MP_FF_TLS_AVAILABLE;
    }
    if (c->flags & CF_DIRECT_TLS)
        flags |= MP_FF_DIRECT_TLS;
    mp_frame_out o = {.kind = MP_LF_STREAM, .flags = flags, .conn = c->id, .to = host,
                      .to_len = (size_t)len, .aux = c->ip, .aux_len = strlen(c->ip),
                      .payload = (const char *)cb, .payload_len = cb_len};
    c->flags |= CF_CORE_KNOWS;
    push_frame(m, &o);
    return 0;
}

static int
start_tls(mp_conn *c)
{
    mp_mux *m = c->mux;
    /* Over HTTP the TLS is the web transport's (RFC 7395 §3.1, XEP-0206 §4): no STARTTLS. */
    if (c->tls || !m->tls || (c->flags & (CF_AUTHED | CF_HTTP))) {
        conn_puts(c, "<failure xmlns='" NS_TLS "'/>");
        stream_end(c);
        conn_close_graceful(c);
        return 1;
    }
    conn_puts(c, "<proceed xmlns='" NS_TLS "'/>");
    c->tls = mp_tls_conn_new(m->tls);
    if (!c->tls || mp_framer_reset(&c->fr) < 0) {
        conn_close_now(c);
        return 1;
    }
    c->flags |= CF_TLS_WANTED;
    c->flags &= ~CF_HEADER_SENT;
    return 1; /* stop: bytes pipelined after <starttls/> are discarded */
}

static int
on_element(void *ud, const mp_element *el)
{
    mp_conn *c = ud;
    if (c->flags & CF_CLOSING)
        return 1;
    if (strcmp(el->name, "starttls") == 0 && strcmp(el->ns, NS_TLS) == 0)
        return start_tls(c);
    mp_frame_out o = {.kind = MP_LF_ELEMENT, .el_kind = (uint8_t)el->kind, .conn = c->id,
                      .to = el->to, .to_len = el->to_len, .type = el->type,
                      .type_len = el->type_len, .id = el->id, .id_len = el->id_len,
                      .payload = el->bytes, .payload_len = el->len};
    push_frame(c->mux, &o);
    return 0;
}

static void
on_stream_close(void *ud)
{
    mp_conn *c = ud;
    if (c->flags & CF_CLOSING)
        return;
    c->flags |= CF_PEER_CLOSED;
    stream_end(c);
    conn_close_graceful(c);
}

static const mp_framer_cb framer_cb = {on_stream_open, on_element, on_stream_close};

/* ---- reading ---- */

static void
on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    mp_conn *c = mp_container_of((uv_tcp_t *)h, mp_conn, tcp);
    /* One buffer per thread: every read is handled before the next allocation. */
    *buf = uv_buf_init(c->mux->rbuf, READ_BUF);
}

static void
feed_plain(mp_conn *c, const char *p, size_t n)
{
    if (c->flags & (CF_CLOSING | CF_TLS_WANTED))
        return;
    size_t used;
    int rc = mp_framer_feed(&c->fr, p, n, &used);
    if (rc == MP_EINVAL) {
        stream_error(c, mp_framer_error(&c->fr),
                     c->fr.too_big ? "<stanza-too-big xmlns='urn:xmpp:errors'/>" : NULL);
    }
    /* MP_AGAIN: a callback stopped the parse (STARTTLS); the rest is dropped on purpose. */
}

/* Bytes read, after TLS: to the transport, or to the XML stream. */
static void
deliver(mp_conn *c, const char *p, size_t n)
{
    if (c->ops && c->ops->feed)
        c->ops->feed(c, p, n);
    else
        feed_plain(c, p, n);
}

/* ---- read shaping ---- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static mp_conn *conn_by_id(mp_mux *m, uint64_t id);

static void
shaper_apply(mp_conn *c, int fill)
{
    mp_mux *m = c->mux;
    const shape_limits *l = &m->shape;
    int authed = (c->flags & CF_AUTHED) != 0;
    uint64_t rate = authed ? l->rate : l->pre_rate, burst = authed ? l->burst : l->pre_burst;
    uint64_t now = uv_now(&m->loop);
    if (fill && c->shaper.tokens >= 0)
        mp_shaper_init(&c->shaper, rate, burst, now); /* authenticated: a fresh burst */
    else
        mp_shaper_set(&c->shaper, rate, burst, now);
}

static void
on_resume(uv_timer_t *t)
{
    mp_mux *m = t->data;
    uint64_t now = uv_now(&m->loop), next = UINT64_MAX;
    size_t j = 0;
    for (size_t i = 0; i < m->npaused; i++) {
        paused_conn p = m->paused[i];
        mp_conn *c = conn_by_id(m, p.id);
        if (!c || (c->flags & CF_HANDLE_CLOSED))
            continue;
        if (p.until > now) {
            m->paused[j++] = p;
            if (p.until < next)
                next = p.until;
            continue;
        }
        c->flags &= ~CF_PAUSED;
        if (!(c->flags & CF_CLOSING))
            uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    }
    m->npaused = j;
    if (next != UINT64_MAX)
        uv_timer_start(&m->resume, on_resume, next - now, 0);
}

static int
pause_reading(mp_conn *c, uint64_t until)
{
    mp_mux *m = c->mux;
    if (m->npaused == m->paused_cap) {
        size_t cap = m->paused_cap ? m->paused_cap * 2 : 16;
        paused_conn *p = realloc(m->paused, cap * sizeof *p);
        if (!p)
            return MP_ENOMEM;
        m->paused = p;
        m->paused_cap = cap;
    }
    m->paused[m->npaused++] = (paused_conn){c->id, until};
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->flags |= CF_PAUSED;
    uint64_t now = uv_now(&m->loop);
    if (!uv_is_active((uv_handle_t *)&m->resume) || now + uv_timer_get_due_in(&m->resume) > until)
        uv_timer_start(&m->resume, on_resume, until - now, 0);
    return 0;
}

/* Count n bytes read. Over the rate, reading pauses until the bucket has paid the debt back:
 * the kernel's receive buffer fills, TCP's window closes, and the sender is slowed without
 * the server holding more than it has read. A client that stays over the rate for
 * c2s.flood_timeout is disconnected. Returns nonzero when the connection is being closed. */
static int
shape(mp_conn *c, size_t n)
{
    mp_mux *m = c->mux;
    uint64_t now = uv_now(&m->loop);
    uint64_t wait = mp_shaper_take(&c->shaper, n, now);
    if (!wait)
        return 0;
    uint64_t rate = c->shaper.rate;
    const char *jid = c->fr.stamp_from ? c->fr.stamp_from : "";
    if (mp_shaper_over_for(&c->shaper, now) > m->shape.flood_ms) {
        mp_warn("conn %016llx (%s%s%s): over %llu bytes/s for %llu s, disconnecting "
                "(c2s.flood_timeout)",
                (unsigned long long)c->id, c->ip, *jid ? " " : "", jid, (unsigned long long)rate,
                (unsigned long long)(m->shape.flood_ms / 1000));
        stream_error(c, "policy-violation", NULL);
        return 1;
    }
    if (!(c->flags & CF_SHAPED)) {
        c->flags |= CF_SHAPED;
        mp_info("conn %016llx (%s%s%s): reading faster than %llu bytes/s, slowed down",
                (unsigned long long)c->id, c->ip, *jid ? " " : "", jid, (unsigned long long)rate);
    }
    if (pause_reading(c, now + wait) < 0) {
        conn_close_now(c);
        return 1;
    }
    return 0;
}

/* ---- reading (continued) ---- */

static void
on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    mp_conn *c = mp_container_of((uv_tcp_t *)s, mp_conn, tcp);
    if (nread == 0)
        return;
    if (nread < 0) {
        mp_debug("conn %016llx (%s): %s", (unsigned long long)c->id, c->ip,
                 uv_strerror((int)nread));
        conn_close_now(c);
        return;
    }
    c->last_read_ms = uv_now(&c->mux->loop);
    c->flags &= ~(CF_IDLE | CF_PINGED); /* any bytes answer a ping */
    /* A reload is applied before the next byte is parsed, not whenever the wake-up runs. */
    if (atomic_load_explicit(&c->mux->limits_changed, memory_order_acquire))
        apply_limits(c->mux);
    if (shape(c, (size_t)nread))
        return;
    if (!c->tls) {
        deliver(c, buf->base, (size_t)nread);
        return;
    }
    int was_done = mp_tls_handshake_done(c->tls);
    if (mp_tls_feed(c->tls, buf->base, (size_t)nread) != 0) {
        pump_tls(c); /* send the alert, if any */
        mp_info("conn %016llx (%s): TLS failed", (unsigned long long)c->id, c->ip);
        conn_close_now(c);
        return;
    }
    pump_tls(c);
    if (!was_done && mp_tls_handshake_done(c->tls)) {
        c->flags &= ~CF_TLS_WANTED;
        mp_debug("conn %016llx (%s): %s established", (unsigned long long)c->id, c->ip,
                 mp_tls_version(c->tls));
    }
    for (;;) {
        if (c->flags & (CF_CLOSING | CF_HANDLE_CLOSED))
            return;
        int n = mp_tls_read(c->tls, c->mux->rbuf, READ_BUF);
        if (n == 0)
            break;
        if (n < 0) {
            if (n == MP_ECLOSED)
                conn_close_graceful(c);
            else
                conn_close_now(c);
            return;
        }
        deliver(c, c->mux->rbuf, (size_t)n);
    }
    pump_tls(c);
}

/* ---- accepting ---- */

static int
slot_take(mp_mux *m, uint32_t *slot)
{
    if (m->nfree == 0) {
        uint32_t n = m->nslots ? m->nslots * 2 : 1024;
        mp_conn **s = realloc(m->slots, n * sizeof *s);
        if (!s)
            return MP_ENOMEM;
        m->slots = s;
        uint32_t *g = realloc(m->slot_gen, n * sizeof *g);
        if (!g)
            return MP_ENOMEM;
        m->slot_gen = g;
        uint32_t *f = realloc(m->free_slots, n * sizeof *f);
        if (!f)
            return MP_ENOMEM;
        m->free_slots = f;
        for (uint32_t i = n; i > m->nslots; i--) {
            m->slots[i - 1] = NULL;
            m->slot_gen[i - 1] = 0;
            m->free_slots[m->nfree++] = i - 1;
        }
        m->nslots = n;
    }
    *slot = m->free_slots[--m->nfree];
    return 0;
}

/* Count the connection against c2s.max_connections_per_ip. Over it, the client gets
 * <policy-violation/> at once (on the direct TLS port no handshake is spent on it: it is just
 * closed). Returns 0 when the connection is being refused. */
static int
count_ip(mp_conn *c, const struct sockaddr *sa, int direct)
{
    mp_mux *m = c->mux;
    int first;
    int max = m->shape.max_per_ip;
    int rc = mp_iplimit_acquire(m->iplimit, sa, max, &first);
    if (rc > 0) {
        c->flags |= CF_IP_COUNTED;
        return 1;
    }
    if (rc != MP_ELIMIT) {
        conn_close_now(c);
        return 0;
    }
    /* Once per spell at the limit: a flood of connections must not become a flood of logs. */
    if (first)
        mp_warn("%s: %d connections open from this address, refusing more "
                "(c2s.max_connections_per_ip)",
                c->ip, max);
    else
        mp_debug("conn %016llx: refused, too many connections from %s", (unsigned long long)c->id,
                 c->ip);
    if (direct || (c->flags & CF_HTTP)) {
        conn_close_now(c);
        return 0;
    }
    send_header(c, m->default_host);
    conn_puts(c, "<stream:error><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
                 "<text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>too many connections from "
                 "your address</text></stream:error>");
    stream_end(c);
    conn_close_graceful(c);
    return 0;
}

static void
on_connection(uv_stream_t *server, int status)
{
    mp_mux *m = server->data;
    int http = server == (uv_stream_t *)&m->listen_http || server == (uv_stream_t *)&m->listen_https;
    int direct = server == (uv_stream_t *)&m->listen_tls || server == (uv_stream_t *)&m->listen_https;
    if (status < 0 || m->stopping)
        return;
    mp_conn *c = calloc(1, sizeof *c);
    uint32_t slot;
    if (!c || slot_take(m, &slot) < 0) {
        free(c);
        mp_err("mux %d: out of memory accepting a connection", m->index);
        return;
    }
    uv_tcp_init(&m->loop, &c->tcp);
    c->mux = m;
    m->slot_gen[slot] = (m->slot_gen[slot] + 1) & 0xffffff;
    c->id = ((uint64_t)m->index << 56) | ((uint64_t)m->slot_gen[slot] << 32) | slot;
    m->slots[slot] = c;
    m->nconns++;
    c->last_read_ms = uv_now(&m->loop);
    if (http)
        c->flags |= CF_HTTP;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0 || (!http && mp_mux_stream_begin(c) < 0)) {
        conn_close_now(c);
        return;
    }
    struct sockaddr_storage ss;
    int sl = sizeof ss;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET6)
            uv_ip6_name((struct sockaddr_in6 *)&ss, c->ip, sizeof c->ip);
        else
            uv_ip4_name((struct sockaddr_in *)&ss, c->ip, sizeof c->ip);
        if (!count_ip(c, (struct sockaddr *)&ss, direct))
            return;
    }
    shaper_apply(c, 1);
    uv_tcp_nodelay(&c->tcp, 1);
    if (direct) {
        c->flags |= CF_DIRECT_TLS | CF_TLS_WANTED;
        c->tls = mp_tls_conn_new(m->tls);
        if (!c->tls) {
            conn_close_now(c);
            return;
        }
    }
    list_append(&m->unauth, c, uv_now(&m->loop) + m->unauth_timeout_ms);
    if (http && mp_http_accept(c) != 0)
        return;
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    mp_debug("conn %016llx: accepted from %s%s%s", (unsigned long long)c->id, c->ip,
             http ? " (HTTP)" : "", direct ? " (direct TLS)" : "");
}

/* ---- for the transports ---- */

void
mp_mux_conn_write(mp_conn *c, const char *p, size_t n)
{
    conn_write(c, p, n);
}

void
mp_mux_close_now(mp_conn *c)
{
    conn_close_now(c);
}

void
mp_mux_close_graceful(mp_conn *c)
{
    conn_close_graceful(c);
}

void
mp_mux_stream_error(mp_conn *c, const char *cond, const char *extra)
{
    stream_error(c, cond, extra);
}

int
mp_mux_stream_begin(mp_conn *c)
{
    if (c->flags & CF_STREAM)
        return 0;
    int rc = mp_framer_init(&c->fr, MP_NS_CLIENT, &c->mux->pre_limits, &framer_cb, c);
    if (rc == 0)
        c->flags |= CF_STREAM;
    return rc;
}

void
mp_mux_stream_feed(mp_conn *c, const char *p, size_t n)
{
    c->last_read_ms = uv_now(&c->mux->loop);
    c->flags &= ~(CF_IDLE | CF_PINGED);
    feed_plain(c, p, n);
}

mp_conn *
mp_mux_conn_virtual(mp_mux *m, const char *ip)
{
    mp_conn *c = calloc(1, sizeof *c);
    uint32_t slot;
    if (!c || slot_take(m, &slot) < 0) {
        free(c);
        return NULL;
    }
    uv_tcp_init(&m->loop, &c->tcp); /* no socket is opened until bind or connect: none is */
    c->mux = m;
    m->slot_gen[slot] = (m->slot_gen[slot] + 1) & 0xffffff;
    c->id = ((uint64_t)m->index << 56) | ((uint64_t)m->slot_gen[slot] << 32) | slot;
    m->slots[slot] = c;
    m->nconns++;
    c->flags = CF_VIRTUAL | CF_HTTP;
    c->last_read_ms = uv_now(&m->loop);
    snprintf(c->ip, sizeof c->ip, "%s", ip);
    shaper_apply(c, 1);
    if (mp_mux_stream_begin(c) < 0) {
        conn_close_now(c);
        return NULL;
    }
    list_append(&m->unauth, c, uv_now(&m->loop) + m->unauth_timeout_ms);
    return c;
}

mp_conn *
mp_mux_conn_by_id(mp_mux *m, uint64_t id)
{
    return conn_by_id(m, id);
}

void
mp_mux_set_deadline(mp_conn *c, uint64_t ms)
{
    if (c->flags & CF_CLOSING)
        return;
    if (ms == 0)
        list_remove(c);
    else
        list_append(&c->mux->unauth, c, uv_now(&c->mux->loop) + ms);
}

void
mp_mux_read_stop(mp_conn *c)
{
    if (!(c->flags & (CF_HANDLE_CLOSED | CF_VIRTUAL)))
        uv_read_stop((uv_stream_t *)&c->tcp);
}

void
mp_mux_read_start(mp_conn *c)
{
    if (!(c->flags & (CF_HANDLE_CLOSED | CF_VIRTUAL | CF_CLOSING | CF_PAUSED)))
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

/* ---- frames from the core ---- */

static mp_conn *
conn_by_id(mp_mux *m, uint64_t id)
{
    uint32_t slot = (uint32_t)(id & 0xffffffffu);
    uint32_t gen = (uint32_t)((id >> 32) & 0xffffff);
    if (slot >= m->nslots || m->slot_gen[slot] != gen)
        return NULL;
    mp_conn *c = m->slots[slot];
    return c && c->id == id ? c : NULL;
}

static void
on_core_frame(const mp_frame *f, void *ud)
{
    mp_mux *m = ud;
    mp_conn *c = conn_by_id(m, f->conn);
    if (!c || (c->flags & CF_HANDLE_CLOSED))
        return; /* gone: the core got or will get MP_LF_CLOSED */
    const char *payload = mp_frame_payload(f);
    if (f->flags & MP_FF_SM)
        c->flags |= CF_SM;
    switch (f->kind) {
    case MP_LF_SEND:
        conn_write(c, payload, f->payload_len);
        break;
    case MP_LF_AUTHED:
        conn_write(c, payload, f->payload_len);
        c->flags |= CF_AUTHED;
        c->flags &= ~CF_HEADER_SENT;
        list_remove(c);
        mp_framer_set_limits(&c->fr, &m->post_limits);
        shaper_apply(c, 1);
        if (mp_framer_reset(&c->fr) < 0)
            conn_close_now(c);
        break;
    case MP_LF_BOUND:
        if (mp_framer_set_from(&c->fr, mp_frame_aux(f), f->aux_len) < 0) {
            conn_close_now(c);
            break;
        }
        if (!(c->flags & (CF_AUTHED | CF_CLOSING))) { /* XEP-0078: no stream restart */
            c->flags |= CF_AUTHED;
            list_remove(c);
            mp_framer_set_limits(&c->fr, &m->post_limits);
            shaper_apply(c, 1);
        }
        conn_write(c, payload, f->payload_len);
        break;
    case MP_LF_CLOSE:
        if (!(c->flags & CF_CLOSING)) {
            c->flags &= ~CF_CORE_KNOWS; /* the core already forgot it */
            if (f->payload_len)
                conn_write(c, payload, f->payload_len);
            stream_end(c);
            conn_close_graceful(c);
        }
        break;
    default:
        mp_err("mux %d: unexpected frame kind %d from core", m->index, f->kind);
        break;
    }
}

static void
apply_limits(mp_mux *m)
{
    pthread_mutex_lock(&m->limits_lock);
    int changed = atomic_load(&m->limits_changed);
    if (changed) {
        m->pre_limits = m->pending_pre;
        m->post_limits = m->pending_post;
        m->shape = m->pending_shape;
        m->ping_interval_ms = m->pending_ping_interval_ms;
        m->ping_timeout_ms = m->pending_ping_timeout_ms;
        atomic_store(&m->limits_changed, 0);
    }
    pthread_mutex_unlock(&m->limits_lock);
    if (!changed)
        return;
    /* Streams already open take the new limits too: a reload that lowers the stanza size is
     * usually a response to abuse in progress. */
    for (uint32_t i = 0; i < m->nslots; i++) {
        mp_conn *c = m->slots[i];
        if (c && !(c->flags & CF_HANDLE_CLOSED)) {
            mp_framer_set_limits(&c->fr, (c->flags & CF_AUTHED) ? &m->post_limits : &m->pre_limits);
            shaper_apply(c, 0);
        }
    }
}

static void
on_wake(uv_async_t *a)
{
    mp_mux *m = a->data;
    apply_limits(m);
    mp_ring_flush_overflow(&m->link->to_core);
    /* Bounded batches keep one busy link from starving the sockets. */
    while (mp_ring_drain(&m->link->to_mux, on_core_frame, m, 4096) == 4096)
        ;
}

/* XEP-0199 from the server's side: a silent client is asked, and one that does not answer
 * in time is gone (its TCP connection may be dead without the kernel knowing). */
static void
ping_check(mp_mux *m, mp_conn *c, uint64_t now)
{
    /* A BOSH session has no socket to go dead: its inactivity timeout does this job. */
    if (!m->ping_interval_ms || !c->fr.stamp_from || (c->flags & (CF_CLOSING | CF_VIRTUAL)))
        return;
    if (c->flags & CF_PINGED) {
        if (now - c->ping_sent_ms >= m->ping_timeout_ms)
            stream_error(c, "connection-timeout", NULL);
        return;
    }
    if (now - c->last_read_ms < m->ping_interval_ms)
        return;
    if (c->flags & CF_SM) {
        /* An IQ of ours would be a stanza the core never counted (XEP-0198 h). */
        conn_puts(c, "<r xmlns='urn:xmpp:sm:3'/>");
        c->flags |= CF_PINGED;
        c->ping_sent_ms = now;
        return;
    }
    char id[13];
    mp_random_token(id, 12);
    mp_buf b = {0};
    mp_buf_printf(&b, "<iq type='get' id='ping-%s' from='", id);
    mp_xml_escape_attr(&b, c->stream_to, strlen(c->stream_to));
    mp_buf_puts(&b, "' to='");
    mp_xml_escape_attr(&b, c->fr.stamp_from, c->fr.stamp_from_len);
    if (mp_buf_puts(&b, "'><ping xmlns='urn:xmpp:ping'/></iq>") == 0) {
        conn_write(c, b.data, b.len);
        c->flags |= CF_PINGED;
        c->ping_sent_ms = now;
    }
    mp_buf_free(&b);
}

/* Most connections are idle most of the time: what they hold then is what a server of many
 * users pays for. */
static void
hibernate_idle(mp_mux *m, uint64_t now)
{
    size_t n = 0;
    for (uint32_t i = 0; i < m->nslots; i++) {
        mp_conn *c = m->slots[i];
        if (c)
            ping_check(m, c, now);
        if (!c || !(c->flags & CF_STREAM) ||
            (c->flags & (CF_IDLE | CF_CLOSING | CF_TLS_WANTED | CF_HANDLE_CLOSED)) ||
            now - c->last_read_ms < IDLE_MS)
            continue;
        if (!mp_framer_hibernate(&c->fr))
            continue; /* half an element is pending: not idle */
        if (c->tls) {
            int was_own = mp_tls_taken_over(c->tls);
            mp_tls_conn_shrink(c->tls);
            if (!was_own && mp_tls_taken_over(c->tls))
                mp_debug("conn %016llx (%s): idle, TLS 1.3 record layer taken over from OpenSSL",
                         (unsigned long long)c->id, c->ip);
        }
        if (c->out.len == 0)
            mp_buf_free(&c->out);
        if (!(c->flags & CF_WRITING))
            mp_buf_free(&c->inflight);
        c->flags |= CF_IDLE;
        n++;
    }
    /* Freed parsers sit between live objects, where glibc keeps them mapped; trimming hands
     * their whole pages back to the kernel. */
    if (n)
        malloc_trim(0);
}

static void
on_sweep(uv_timer_t *t)
{
    mp_mux *m = t->data;
    uint64_t now = uv_now(&m->loop);
    if (++m->sweeps % IDLE_SWEEPS == 0)
        hibernate_idle(m, now);
    mp_http_sweep(m, now);
    while (m->unauth.head && m->unauth.head->deadline_ms <= now) {
        mp_conn *c = m->unauth.head;
        list_remove(c);
        stream_error(c, "connection-timeout", NULL);
    }
    while (m->closing.head && m->closing.head->deadline_ms <= now)
        conn_close_now(m->closing.head);
}

static void
on_stop(uv_async_t *a)
{
    mp_mux *m = a->data;
    m->stopping = 1;
    if (m->have_plain)
        uv_close((uv_handle_t *)&m->listen_plain, NULL);
    if (m->have_tls)
        uv_close((uv_handle_t *)&m->listen_tls, NULL);
    if (m->have_http)
        uv_close((uv_handle_t *)&m->listen_http, NULL);
    if (m->have_https)
        uv_close((uv_handle_t *)&m->listen_https, NULL);
    for (uint32_t i = 0; i < m->nslots; i++) {
        mp_conn *c = m->slots[i];
        if (c && !(c->flags & CF_CLOSING))
            stream_error(c, "system-shutdown", NULL);
    }
    if (m->nconns == 0)
        close_mux_handles(m);
}

static void
mux_main(void *arg)
{
    mp_mux *m = arg;
    uv_run(&m->loop, UV_RUN_DEFAULT);
}

static int
listen_on(mp_mux *m, uv_tcp_t *t, const char *addr, int port)
{
    struct sockaddr_storage ss;
    int rc = strchr(addr, ':') ? uv_ip6_addr(addr, port, (struct sockaddr_in6 *)&ss)
                               : uv_ip4_addr(addr, port, (struct sockaddr_in *)&ss);
    if (rc < 0) {
        mp_err("bad listen address %s", addr);
        return MP_EINVAL;
    }
    uv_tcp_init_ex(&m->loop, t, ss.ss_family);
    t->data = m;
    uv_os_fd_t fd;
    int one = 1;
    if (uv_fileno((uv_handle_t *)t, &fd) == 0)
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    rc = uv_tcp_bind(t, (struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)t, 511, on_connection);
    if (rc < 0) {
        mp_err("cannot listen on %s port %d: %s", addr, port, uv_strerror(rc));
        return MP_EIO;
    }
    return 0;
}

static void
limits_from(const mp_config *cfg, mp_framer_limits *pre, mp_framer_limits *post)
{
    pre->max_element_bytes = cfg->preauth_max_stanza_size;
    pre->max_elements = cfg->preauth_max_elements;
    pre->max_depth = cfg->max_depth;
    post->max_element_bytes = cfg->max_stanza_size;
    post->max_elements = 0;
    post->max_depth = cfg->max_depth;
    pre->max_attributes = post->max_attributes = cfg->max_attributes;
    pre->max_name_len = post->max_name_len = (size_t)cfg->max_name_length;
    pre->max_attr_len = post->max_attr_len = cfg->max_attribute_size;
}

static void
shape_from(const mp_config *cfg, shape_limits *l)
{
    l->pre_rate = cfg->preauth_max_read_rate;
    l->pre_burst = cfg->preauth_read_burst;
    l->rate = cfg->max_read_rate;
    l->burst = cfg->read_burst;
    l->flood_ms = (uint64_t)cfg->flood_timeout * 1000;
    l->max_per_ip = cfg->max_connections_per_ip;
}

static void
close_walk(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void
mux_free(mp_mux *m)
{
    uv_walk(&m->loop, close_walk, NULL);
    uv_run(&m->loop, UV_RUN_DEFAULT);
    uv_loop_close(&m->loop);
    mp_http_mux_free(m);
    pthread_mutex_destroy(&m->limits_lock);
    mp_iplimit_unref(m->iplimit);
    free(m->paused);
    free(m->slots);
    free(m->slot_gen);
    free(m->free_slots);
    free(m->rbuf);
    mp_buf_free(&m->scratch);
    free(m);
}

int
mp_mux_start(const mp_mux_opts *opts, mp_mux **out)
{
    mp_mux *m = calloc(1, sizeof *m);
    if (!m)
        return MP_ENOMEM;
    m->rbuf = malloc(READ_BUF);
    if (!m->rbuf || uv_loop_init(&m->loop) < 0) {
        free(m->rbuf);
        free(m);
        return MP_ENOMEM;
    }
    pthread_mutex_init(&m->limits_lock, NULL);
    const mp_config *cfg = opts->cfg;
    m->cfg = cfg;
    m->link = opts->link;
    m->core_wake = opts->core_wake;
    m->tls = opts->tls;
    m->index = opts->index;
    m->max_output = cfg->max_output_buffer;
    m->unauth_timeout_ms = (uint64_t)cfg->unauthenticated_timeout * 1000;
    m->ping_interval_ms = (uint64_t)cfg->ping_interval * 1000;
    m->ping_timeout_ms = (uint64_t)cfg->ping_timeout * 1000;
    snprintf(m->default_host, sizeof m->default_host, "%s", cfg->hosts[0]);
    limits_from(cfg, &m->pre_limits, &m->post_limits);
    shape_from(cfg, &m->shape);
    uv_async_init(&m->loop, &m->wake, on_wake);
    m->wake.data = m;
    uv_async_init(&m->loop, &m->stop, on_stop);
    m->stop.data = m;
    uv_timer_init(&m->loop, &m->sweep);
    m->sweep.data = m;
    uv_timer_init(&m->loop, &m->resume);
    m->resume.data = m;
    uv_timer_start(&m->sweep, on_sweep, SWEEP_MS, SWEEP_MS);
    m->link->to_core.consumer_wake = opts->core_wake;
    m->link->to_core.producer_wake = &m->wake;
    m->link->to_mux.consumer_wake = &m->wake;
    m->link->to_mux.producer_wake = opts->core_wake;
    m->iplimit = mp_iplimit_ref();
    int rc = m->iplimit ? 0 : MP_ENOMEM;
    if (rc == 0)
        rc = mp_http_mux_init(m);
    if (rc == 0 && cfg->c2s_port) {
        rc = listen_on(m, &m->listen_plain, cfg->c2s_address, cfg->c2s_port);
        m->have_plain = rc == 0;
    }
    if (rc == 0 && cfg->c2s_direct_tls_port && m->tls) {
        rc = listen_on(m, &m->listen_tls, cfg->c2s_address, cfg->c2s_direct_tls_port);
        m->have_tls = rc == 0;
    }
    /* HTTP only on the first mux thread: a BOSH session's requests come on several TCP
     * connections, which SO_REUSEPORT would spread over threads that cannot see it. */
    if (rc == 0 && cfg->http_port && m->index == 0) {
        rc = listen_on(m, &m->listen_http, cfg->c2s_address, cfg->http_port);
        m->have_http = rc == 0;
    }
    if (rc == 0 && cfg->http_tls_port && m->tls && m->index == 0) {
        rc = listen_on(m, &m->listen_https, cfg->c2s_address, cfg->http_tls_port);
        m->have_https = rc == 0;
    }
    if (rc == 0 && uv_thread_create(&m->thread, mux_main, m) != 0)
        rc = MP_EIO;
    if (rc < 0) {
        mux_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

uv_async_t *
mp_mux_wake_handle(mp_mux *m)
{
    return &m->wake;
}

void
mp_mux_stop(mp_mux *m)
{
    if (!m)
        return;
    uv_async_send(&m->stop);
    uv_thread_join(&m->thread);
    mux_free(m);
}

void
mp_mux_reload(mp_mux *m, const mp_config *cfg)
{
    pthread_mutex_lock(&m->limits_lock);
    limits_from(cfg, &m->pending_pre, &m->pending_post);
    shape_from(cfg, &m->pending_shape);
    m->pending_ping_interval_ms = (uint64_t)cfg->ping_interval * 1000;
    m->pending_ping_timeout_ms = (uint64_t)cfg->ping_timeout * 1000;
    atomic_store_explicit(&m->limits_changed, 1, memory_order_release);
    pthread_mutex_unlock(&m->limits_lock);
    uv_async_send(&m->wake);
}
