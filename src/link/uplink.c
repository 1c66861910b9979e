/* magpie-mux's links to its servers; see uplink.h and docs/design.md ("Failover").
 *
 * Which server has a connection: a table per mux thread indexed by the connection's slot
 * (the low 32 bits of its id), holding the generation (bits 32..55) it was made for, so a
 * slot reused by a new connection starts afresh and frames of a connection we closed
 * ourselves are dropped rather than given to a server that never saw its stream start. */
#include "link/uplink.h"
#include "link/io.h"
#include "link/link.h"
#include "base/config.h"
#include "base/err.h"
#include "base/log.h"
#include "base/rand.h"

#include <stdio.h>
#include <stdlib.h>

#define HANDSHAKE_MS 10000
#define DRAIN_BATCH 4096
#define SRV_CLOSED (-1) /* closed (by either side): drop what still comes for it */

static const char SHUTDOWN_ERR[] = "<stream:error><system-shutdown "
                                   "xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
                                   "</stream:error>";

enum { S_DOWN, S_CONNECTING, S_UP };

typedef struct userver userver;

typedef struct uconn {
    mp_lio io;
    userver *s; /* NULL once the server moved on to another connection */
    int stage;  /* 0: waiting for hello, 1: waiting for ok, 2: up */
    uv_connect_t creq;
} uconn;

struct userver {
    mp_uplink *u;
    int index;
    char *host;
    char port[8];
    char name[300];
    int state;
    uconn *c;
    uv_timer_t timer; /* handshake deadline, then the next attempt */
    uv_getaddrinfo_t gai;
    uint8_t resolving, outage, over;
    int delay_ms;
    size_t nconns;
    unsigned char snonce[MP_LINK_NONCE_LEN], cnonce[MP_LINK_NONCE_LEN];
};

typedef struct centry {
    uint32_t gen;
    int32_t srv; /* server index, or SRV_CLOSED */
} centry;

typedef struct uthread {
    mp_uplink *u;
    int index;
    mp_link *link;
    uv_async_t wake;
    centry *tab;
    uint32_t ntab;
} uthread;

struct mp_uplink {
    uv_loop_t *loop;
    const mp_config *cfg;
    uthread *threads;
    int nthreads;
    userver *servers;
    int nservers;
    int current; /* sticky policy: the server new sessions go to */
    SSL_CTX *tls;
    size_t max_frame;
    int stopping;
};

static void server_down(userver *s, const char *why);
static void attempt(userver *s);

/* ---- connection table ---- */

static centry *
entry(uthread *t, uint64_t conn)
{
    uint32_t slot = (uint32_t)conn;
    if (slot >= t->ntab) {
        uint32_t n = t->ntab ? t->ntab : 256;
        while (n <= slot)
            n *= 2;
        centry *nt = realloc(t->tab, (size_t)n * sizeof *nt);
        if (!nt)
            return NULL;
        memset(nt + t->ntab, 0, (size_t)(n - t->ntab) * sizeof *nt);
        t->tab = nt;
        t->ntab = n;
    }
    return &t->tab[slot];
}

static uint32_t
gen_of(uint64_t conn)
{
    return (uint32_t)((conn >> 32) & 0xffffff);
}

/* Tell the mux to end a client stream with <system-shutdown/>. */
static void
close_client(uthread *t, uint64_t conn)
{
    mp_frame_out o = {.kind = MP_LF_CLOSE,
                      .conn = conn,
                      .payload = SHUTDOWN_ERR,
                      .payload_len = sizeof SHUTDOWN_ERR - 1};
    if (mp_ring_push(&t->link->to_mux, &o) < 0)
        mp_err("uplink: cannot pass a close to mux thread %d", t->index);
}

static int
pick(mp_uplink *u)
{
    if (u->cfg->mux_policy == MP_MUX_POLICY_STICKY && u->current >= 0 &&
        u->servers[u->current].state == S_UP)
        return u->current;
    for (int i = 0; i < u->nservers; i++) {
        if (u->servers[i].state == S_UP) {
            u->current = i;
            return i;
        }
    }
    return -1;
}

/* ---- frames from the mux threads ---- */

static void
from_mux(const mp_frame *f, void *ud)
{
    uthread *t = ud;
    mp_uplink *u = t->u;
    centry *e = entry(t, f->conn);
    uint32_t gen = gen_of(f->conn);
    if (!e) {
        mp_err("uplink: out of memory; closing a client stream");
        if (f->kind != MP_LF_CLOSED)
            close_client(t, f->conn);
        return;
    }
    if (e->gen != gen) {
        /* A connection we have not seen: its first frame is its stream header. */
        if (f->kind != MP_LF_STREAM)
            return;
        e->gen = gen;
        e->srv = pick(u);
        if (e->srv < 0) {
            e->srv = SRV_CLOSED;
            mp_debug("uplink: no server up for a new stream");
            close_client(t, f->conn);
            return;
        }
        u->servers[e->srv].nconns++;
    }
    if (e->srv < 0)
        return;
    userver *s = &u->servers[e->srv];
    if (f->kind == MP_LF_CLOSED) {
        e->srv = SRV_CLOSED;
        s->nconns--;
    }
    if (s->state != S_UP || s->over)
        return;
    int limit;
    char *dst = mp_lio_reserve(&s->c->io, f->size, &limit);
    if (!dst) {
        s->over = 1; /* dropped once the drain is over */
        return;
    }
    memcpy(dst, f, f->size);
    s->c->io.out.len += f->size;
}

static void
flush_servers(mp_uplink *u)
{
    for (int i = 0; i < u->nservers; i++) {
        userver *s = &u->servers[i];
        if (s->state != S_UP)
            continue;
        if (s->over)
            server_down(s, "output over link.max_output (the server does not read)");
        else if (s->c->io.out.len)
            mp_lio_flush(&s->c->io);
    }
}

static void
on_wake(uv_async_t *a)
{
    uthread *t = a->data;
    if (t->u->stopping)
        return;
    mp_ring_flush_overflow(&t->link->to_mux);
    while (mp_ring_drain(&t->link->to_core, from_mux, t, DRAIN_BATCH) == DRAIN_BATCH)
        ;
    flush_servers(t->u); /* one write per server per batch */
}

/* ---- frames from a server ---- */

static void
server_frames(userver *s, mp_lio *io)
{
    mp_uplink *u = s->u;
    size_t off = 0;
    for (;;) {
        const char *why = NULL;
        long n = mp_link_frame_check(io->in.data + off, io->in.len - off, u->max_frame,
                                     MP_LINK_TO_MUX, &why);
        if (n == 0)
            break;
        if (n < 0) {
            server_down(s, why);
            return;
        }
        const mp_frame *f = (const mp_frame *)(const void *)(io->in.data + off);
        off += (size_t)n;
        unsigned ti = (unsigned)(f->conn >> 56);
        if (ti >= (unsigned)u->nthreads) {
            server_down(s, "connection id of a mux thread we do not have");
            return;
        }
        uthread *t = &u->threads[ti];
        centry *e = (uint32_t)f->conn < t->ntab ? &t->tab[(uint32_t)f->conn] : NULL;
        if (!e || e->gen != gen_of(f->conn) || e->srv != s->index)
            continue; /* a stream that ended meanwhile */
        if (f->kind == MP_LF_CLOSE) {
            e->srv = SRV_CLOSED; /* the mux tells the core nothing more about it */
            s->nconns--;
        }
        if (mp_ring_push_raw(&t->link->to_mux, f) < 0)
            mp_err("uplink: cannot pass %u bytes to mux thread %d", f->size, t->index);
    }
    mp_lio_consume(io, off);
}

static void
on_read(mp_lio *io)
{
    uconn *c = io->data;
    userver *s = c->s;
    if (!s)
        return;
    mp_uplink *u = s->u;
    if (c->stage == 0) {
        if (io->in.len < MP_LINK_HELLO_LEN)
            return;
        uint32_t their_max;
        if (io->in.len > MP_LINK_HELLO_LEN ||
            mp_link_hello_decode((unsigned char *)io->in.data, &their_max, s->snonce) < 0) {
            server_down(s, "not a magpied link listener (bad hello)");
            return;
        }
        mp_lio_consume(io, MP_LINK_HELLO_LEN);
        size_t mine = mp_link_max_frame(u->cfg->max_stanza_size);
        if (their_max < mine && !s->outage)
            mp_warn("uplink: server %s takes frames up to %u bytes, ours reach %zu: lower "
                    "c2s.max_stanza_size here or raise link.max_frame there",
                    s->name, their_max, mine);
        unsigned char auth[MP_LINK_AUTH_LEN];
        mp_random_bytes(s->cnonce, sizeof s->cnonce);
        mp_link_auth_encode(auth, u->cfg->mux_secret, (uint32_t)u->nthreads, s->snonce, s->cnonce);
        c->stage = 1;
        if (mp_lio_queue(io, auth, sizeof auth) < 0) {
            server_down(s, "out of memory");
            return;
        }
        mp_lio_flush(io);
        return;
    }
    if (c->stage == 1) {
        if (io->in.len < MP_LINK_OK_LEN)
            return;
        int rc = mp_link_ok_check((unsigned char *)io->in.data, u->cfg->mux_secret, s->snonce,
                                  s->cnonce);
        if (rc < 0) {
            server_down(s, rc == MP_EAUTH ? "the server does not know mux.secret"
                                          : "bad handshake answer");
            return;
        }
        mp_lio_consume(io, MP_LINK_OK_LEN);
        c->stage = 2;
        s->state = S_UP;
        s->over = 0;
        s->delay_ms = u->cfg->mux_reconnect_ms;
        uv_timer_stop(&s->timer);
        mp_info("uplink: server %s up%s%s", s->name, io->ssl ? " (TLS)" : "",
                s->outage ? " again" : "");
        s->outage = 0;
    }
    server_frames(s, io);
}

/* ---- connecting, failing, retrying ---- */

static void
conn_closed(mp_lio *io)
{
    free(io->data);
}

static void
conn_drop(userver *s)
{
    uconn *c = s->c;
    if (!c)
        return;
    s->c = NULL;
    c->s = NULL;
    mp_lio_close(&c->io);
}

static void
on_retry(uv_timer_t *t)
{
    userver *s = t->data;
    attempt(s);
}

static void
server_down(userver *s, const char *why)
{
    mp_uplink *u = s->u;
    int was_up = s->state == S_UP;
    conn_drop(s);
    s->state = S_DOWN;
    if (u->stopping)
        return;
    size_t closed = 0;
    if (was_up) {
        for (int i = 0; i < u->nthreads; i++) {
            uthread *t = &u->threads[i];
            for (uint32_t slot = 0; slot < t->ntab; slot++) {
                centry *e = &t->tab[slot];
                if (e->srv != s->index)
                    continue;
                e->srv = SRV_CLOSED;
                close_client(t, ((uint64_t)i << 56) | ((uint64_t)e->gen << 32) | slot);
                closed++;
            }
        }
        s->nconns = 0;
    }
    /* Once per outage: every further failed attempt is only a debug line. */
    if (!s->outage) {
        if (was_up)
            mp_warn("uplink: server %s down (%s): %zu client streams closed with "
                    "system-shutdown; reconnecting",
                    s->name, why, closed);
        else
            mp_warn("uplink: cannot reach server %s (%s); retrying with backoff", s->name, why);
        s->outage = 1;
    } else {
        mp_debug("uplink: server %s: %s", s->name, why);
    }
    if (u->current == s->index)
        u->current = -1;
    uv_timer_start(&s->timer, on_retry, (uint64_t)s->delay_ms, 0);
    s->delay_ms *= 2;
    if (s->delay_ms > u->cfg->mux_reconnect_max_ms)
        s->delay_ms = u->cfg->mux_reconnect_max_ms;
}

static void
on_io_error(mp_lio *io, const char *why)
{
    uconn *c = io->data;
    if (!c->s)
        return;
    if (c->stage == 1)
        why = "link closed during the handshake (is mux.secret the server's link.secret?)";
    server_down(c->s, why);
}

static void
on_ready(mp_lio *io)
{
    (void)io; /* the server speaks first */
}

static void
on_deadline(uv_timer_t *t)
{
    server_down(t->data, "no handshake in time");
}

static void
on_connect(uv_connect_t *req, int status)
{
    uconn *c = req->data;
    userver *s = c->s;
    if (!s)
        return;
    if (status < 0) {
        server_down(s, uv_strerror(status));
        return;
    }
    if (mp_lio_start(&c->io, s->u->tls, 0) < 0)
        server_down(s, "cannot start the link");
}

static void
on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *ai)
{
    userver *s = req->data;
    mp_uplink *u = s->u;
    s->resolving = 0;
    if (u->stopping || s->state != S_CONNECTING) {
        uv_freeaddrinfo(ai);
        return;
    }
    if (status < 0 || !ai) {
        uv_freeaddrinfo(ai);
        server_down(s, status < 0 ? uv_strerror(status) : "no address");
        return;
    }
    uconn *c = calloc(1, sizeof *c);
    if (!c || mp_lio_init(u->loop, &c->io, u->cfg->link_max_output) < 0) {
        free(c);
        uv_freeaddrinfo(ai);
        server_down(s, "out of memory");
        return;
    }
    c->s = s;
    c->io.data = c;
    c->io.on_ready = on_ready;
    c->io.on_read = on_read;
    c->io.on_error = on_io_error;
    c->io.on_closed = conn_closed;
    c->creq.data = c;
    s->c = c;
    int rc = uv_tcp_connect(&c->creq, &c->io.tcp, ai->ai_addr, on_connect);
    uv_freeaddrinfo(ai);
    if (rc < 0)
        server_down(s, uv_strerror(rc));
}

static void
attempt(userver *s)
{
    mp_uplink *u = s->u;
    if (u->stopping || s->state != S_DOWN)
        return;
    if (s->resolving) { /* the last lookup timed out and is still running */
        uv_timer_start(&s->timer, on_retry, 100, 0);
        return;
    }
    s->state = S_CONNECTING;
    uv_timer_start(&s->timer, on_deadline, HANDSHAKE_MS, 0);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    s->gai.data = s;
    s->resolving = 1;
    int rc = uv_getaddrinfo(u->loop, &s->gai, on_resolved, s->host, s->port, &hints);
    if (rc < 0) {
        s->resolving = 0;
        server_down(s, uv_strerror(rc));
    }
}

/* ---- life cycle ---- */

/* "host:port" or "[v6]:port". */
static int
parse_server(userver *s, const char *spec)
{
    const char *colon = strrchr(spec, ':');
    if (!colon || colon == spec || !colon[1])
        return MP_EINVAL;
    const char *h = spec;
    size_t hl = (size_t)(colon - spec);
    if (h[0] == '[') {
        if (hl < 3 || h[hl - 1] != ']')
            return MP_EINVAL;
        h++;
        hl -= 2;
    }
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 1 || port > 65535)
        return MP_EINVAL;
    s->host = strndup(h, hl);
    if (!s->host)
        return MP_ENOMEM;
    snprintf(s->port, sizeof s->port, "%ld", port);
    snprintf(s->name, sizeof s->name, "%s", spec);
    return 0;
}

int
mp_uplink_new(uv_loop_t *loop, const mp_config *cfg, mp_link *links, int nlinks, mp_uplink **out)
{
    if (cfg->mux_servers.n == 0) {
        mp_err("magpie-mux: mux.servers is empty: no server to forward to");
        return MP_EINVAL;
    }
    if (!cfg->mux_secret || !cfg->mux_secret[0]) {
        mp_err("magpie-mux: mux.secret is not set (the servers' link.secret)");
        return MP_EINVAL;
    }
    if (nlinks < 1 || nlinks > MP_LINK_MAX_THREADS)
        return MP_EINVAL;
    mp_uplink *u = calloc(1, sizeof *u);
    if (!u)
        return MP_ENOMEM;
    u->loop = loop;
    u->cfg = cfg;
    u->current = -1;
    u->max_frame = mp_link_max_frame(cfg->max_stanza_size);
    u->threads = calloc((size_t)nlinks, sizeof *u->threads);
    u->servers = calloc(cfg->mux_servers.n, sizeof *u->servers);
    if (!u->threads || !u->servers) {
        free(u->threads);
        free(u->servers);
        free(u);
        return MP_ENOMEM;
    }
    u->nthreads = nlinks;
    u->nservers = (int)cfg->mux_servers.n;
    int rc = 0;
    for (int i = 0; i < u->nservers; i++) {
        userver *s = &u->servers[i];
        s->u = u;
        s->index = i;
        s->delay_ms = cfg->mux_reconnect_ms;
        if (rc == 0 && (rc = parse_server(s, cfg->mux_servers.v[i])) < 0)
            mp_err("magpie-mux: mux.servers[%d]: \"%s\" is not host:port", i,
                   cfg->mux_servers.v[i]);
    }
    if (rc == 0 && cfg->mux_tls) {
        u->tls = mp_lio_client_ctx(cfg->mux_tls_ca && cfg->mux_tls_ca[0] ? cfg->mux_tls_ca : NULL);
        if (!u->tls)
            rc = MP_EINVAL;
    }
    if (rc < 0) {
        for (int i = 0; i < u->nservers; i++)
            free(u->servers[i].host);
        free(u->servers);
        free(u->threads);
        free(u);
        return rc;
    }
    for (int i = 0; i < u->nservers; i++) {
        uv_timer_init(loop, &u->servers[i].timer);
        u->servers[i].timer.data = &u->servers[i];
    }
    for (int i = 0; i < nlinks; i++) {
        uthread *t = &u->threads[i];
        t->u = u;
        t->index = i;
        t->link = &links[i];
        uv_async_init(loop, &t->wake, on_wake);
        t->wake.data = t;
    }
    *out = u;
    return 0;
}

uv_async_t *
mp_uplink_wake_handle(mp_uplink *u, int i)
{
    return &u->threads[i].wake;
}

void
mp_uplink_start(mp_uplink *u)
{
    for (int i = 0; i < u->nservers; i++)
        attempt(&u->servers[i]);
}

void
mp_uplink_stop(mp_uplink *u)
{
    if (!u || u->stopping)
        return;
    u->stopping = 1;
    for (int i = 0; i < u->nservers; i++) {
        userver *s = &u->servers[i];
        conn_drop(s);
        s->state = S_DOWN;
        if (s->resolving)
            uv_cancel((uv_req_t *)&s->gai);
        uv_close((uv_handle_t *)&s->timer, NULL);
    }
    for (int i = 0; i < u->nthreads; i++) {
        u->threads[i].link->to_mux.consumer_wake = NULL; /* the mux threads are gone */
        uv_close((uv_handle_t *)&u->threads[i].wake, NULL);
    }
}

void
mp_uplink_free(mp_uplink *u)
{
    if (!u)
        return;
    for (int i = 0; i < u->nservers; i++)
        free(u->servers[i].host);
    for (int i = 0; i < u->nthreads; i++)
        free(u->threads[i].tab);
    if (u->tls)
        mp_lio_ctx_free(u->tls);
    free(u->servers);
    free(u->threads);
    free(u);
}

int
mp_uplink_up(const mp_uplink *u)
{
    int n = 0;
    for (int i = 0; i < u->nservers; i++)
        n += u->servers[i].state == S_UP;
    return n;
}
