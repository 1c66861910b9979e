/* magpied's link listener; see server.h and docs/design.md ("The link over TCP").
 *
 * Everything here runs on the core loop: a multiplexor's frames are checked and handed to the
 * core where they lie in the read buffer, so the remote path costs the core one read and one
 * write per loop turn and no thread hop. Connection ids: a multiplexor numbers its
 * connections with its thread index in the top byte; here each of its threads gets a top byte
 * of its own (64..254), so ids from different multiplexors never meet in the core, and the
 * byte is turned back on the way out. 255 is for sessions parked after their link died. */
#include "link/server.h"
#include "link/io.h"
#include "link/link.h"
#include "base/config.h"
#include "base/err.h"
#include "base/log.h"
#include "base/rand.h"
#include "router/core.h"

#include <stdio.h>
#include <stdlib.h>

#define FIRST_BYTE 64
#define LAST_BYTE 254
#define MAX_LINKS 64
#define HANDSHAKE_MS 10000
#define ID_LOW 0x00ffffffffffffffull

enum { ST_HELLO, ST_UP, ST_DEAD };

typedef struct lconn lconn;

/* A link slot: the ring the core writes into outlives any one connection (timers in the core
 * may hold the mp_link), so slots are kept and reused, never freed while the core runs.
 * The core and the link share one loop, so the rings need no wake-up (consumer_wake NULL):
 * they are drained before and after every poll (flush_all). */
typedef struct rlink {
    mp_link link;
    lconn *c; /* NULL: idle */
    mp_link_server *ls;
} rlink;

struct lconn {
    mp_lio io;
    uv_timer_t deadline;
    mp_link_server *ls;
    lconn *prev, *next;
    rlink *rl;
    int state, handles;
    uint8_t over; /* output over link.max_output: drop after the drain */
    uint32_t nthreads;
    uint8_t bytes[MP_LINK_MAX_THREADS];
    unsigned char snonce[MP_LINK_NONCE_LEN];
    char peer[64];
};

struct mp_link_server {
    uv_loop_t *loop;
    const mp_config *cfg;
    mp_core *core;
    uv_tcp_t listener;
    SSL_CTX *tls;
    lconn *conns;
    rlink *slots[MAX_LINKS];
    rlink parking;
    uv_prepare_t before_poll; /* flush_all: what timers and other callbacks wrote */
    uv_check_t after_poll;    /* flush_all: what the frames just read made the core write */
    struct {
        rlink *rl;
        uint8_t thread;
    } owner[256];
    unsigned next_byte;
    uint64_t parked_seq;
    size_t max_frame, ring_size;
    int up, stopping;
};

static void
conn_handle_closed(lconn *c)
{
    if (--c->handles == 0)
        free(c);
}

static void
io_closed(mp_lio *io)
{
    conn_handle_closed(io->data);
}

static void
timer_closed(uv_handle_t *h)
{
    conn_handle_closed(h->data);
}

static void
conn_close(lconn *c)
{
    mp_link_server *ls = c->ls;
    if (c->prev)
        c->prev->next = c->next;
    else if (ls->conns == c)
        ls->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    c->state = ST_DEAD;
    uv_close((uv_handle_t *)&c->deadline, timer_closed);
    mp_lio_close(&c->io);
}

/* The link is gone: its streams end as if their connections had died, its ids are freed. */
static void
release(lconn *c)
{
    mp_link_server *ls = c->ls;
    rlink *rl = c->rl;
    if (!rl)
        return;
    c->rl = NULL;
    ls->up--;
    mp_core_link_lost(ls->core, &rl->link, &ls->parking.link, &ls->parked_seq);
    for (uint32_t t = 0; t < c->nthreads; t++)
        ls->owner[c->bytes[t]].rl = NULL;
    mp_ring_discard(&rl->link.to_mux); /* what the core said to the dead streams */
    rl->c = NULL;
}

static void
drop(lconn *c, const char *why)
{
    if (c->state == ST_DEAD)
        return;
    if (c->state == ST_UP && c->rl)
        mp_warn("link: multiplexor %s (mux %d) dropped: %s", c->peer, c->rl->link.index, why);
    else
        mp_warn("link: connection from %s closed during the handshake: %s", c->peer, why);
    c->state = ST_DEAD;
    release(c);
    conn_close(c);
}

static void
on_io_error(mp_lio *io, const char *why)
{
    drop(io->data, why);
}

static void
on_deadline(uv_timer_t *t)
{
    drop(t->data, "no handshake in time");
}

/* ---- the core's frames to a multiplexor ---- */

static void
out_frame(const mp_frame *f, void *ud)
{
    lconn *c = ud;
    mp_link_server *ls = c->ls;
    if (c->over)
        return;
    unsigned b = (unsigned)(f->conn >> 56);
    if (ls->owner[b].rl != c->rl)
        return; /* for a connection of an earlier link in this slot */
    int limit;
    char *dst = mp_lio_reserve(&c->io, f->size, &limit);
    if (!dst) {
        c->over = 1;
        return;
    }
    memcpy(dst, f, f->size);
    mp_frame *copy = (mp_frame *)(void *)dst;
    copy->conn = ((uint64_t)ls->owner[b].thread << 56) | (f->conn & ID_LOW);
    c->io.out.len += f->size;
}

static int
ring_empty(mp_ring *r)
{
    return r->overflow.len == 0 && atomic_load_explicit(&r->head, memory_order_relaxed) ==
                                       atomic_load_explicit(&r->tail, memory_order_relaxed);
}

static void
flush_link(rlink *rl)
{
    lconn *c = rl->c;
    mp_ring *r = &rl->link.to_mux;
    if (ring_empty(r))
        return;
    if (!c || c->state != ST_UP) {
        mp_ring_discard(r);
        return;
    }
    do {
        mp_ring_flush_overflow(r);
        mp_ring_drain(r, out_frame, c, (size_t)-1);
    } while (r->overflow.len && !c->over);
    if (c->over) {
        drop(c, "output over link.max_output (the multiplexor does not read)");
        return;
    }
    mp_lio_flush(&c->io);
}

/* ---- handshake and frames from a multiplexor ---- */

static rlink *
slot_get(mp_link_server *ls)
{
    for (int i = 0; i < MAX_LINKS; i++) {
        rlink *rl = ls->slots[i];
        if (rl && !rl->c)
            return rl;
        if (rl)
            continue;
        rl = calloc(1, sizeof *rl);
        if (!rl || mp_ring_init(&rl->link.to_mux, ls->ring_size) < 0) {
            free(rl);
            return NULL;
        }
        rl->ls = ls;
        rl->link.index = 100 + i;
        ls->slots[i] = rl;
        return rl;
    }
    return NULL;
}

/* nthreads free top bytes, taken round-robin so a byte just freed is reused last. */
static int
bytes_get(mp_link_server *ls, lconn *c)
{
    unsigned span = LAST_BYTE - FIRST_BYTE + 1, got = 0;
    for (unsigned i = 0; i < span && got < c->nthreads; i++) {
        unsigned b = FIRST_BYTE + (ls->next_byte + i) % span;
        if (!ls->owner[b].rl)
            c->bytes[got++] = (uint8_t)b;
    }
    if (got < c->nthreads)
        return MP_ELIMIT;
    ls->next_byte = (unsigned)(c->bytes[got - 1] - FIRST_BYTE + 1) % span;
    for (uint32_t t = 0; t < c->nthreads; t++) {
        ls->owner[c->bytes[t]].rl = c->rl;
        ls->owner[c->bytes[t]].thread = (uint8_t)t;
    }
    return 0;
}

static void
handshake(lconn *c)
{
    mp_link_server *ls = c->ls;
    mp_lio *io = &c->io;
    if (io->in.len < MP_LINK_AUTH_LEN)
        return;
    if (io->in.len > MP_LINK_AUTH_LEN) {
        /* The mux waits for our answer before it sends anything else. */
        drop(c, "more bytes than a handshake");
        return;
    }
    unsigned char cnonce[MP_LINK_NONCE_LEN];
    int rc = mp_link_auth_check((unsigned char *)io->in.data, ls->cfg->link_secret, c->snonce,
                                &c->nthreads, cnonce);
    if (rc == MP_EAUTH) {
        mp_warn("link: %s: wrong secret, connection refused", c->peer);
        c->state = ST_DEAD;
        conn_close(c);
        return;
    }
    if (rc < 0) {
        drop(c, "not a magpie-mux handshake");
        return;
    }
    mp_lio_consume(io, MP_LINK_AUTH_LEN);
    c->rl = slot_get(ls);
    if (!c->rl) {
        drop(c, "too many multiplexors");
        return;
    }
    if (bytes_get(ls, c) < 0) {
        c->rl = NULL;
        drop(c, "no connection ids left for its threads");
        return;
    }
    c->rl->c = c;
    ls->up++;
    unsigned char ok[MP_LINK_OK_LEN];
    mp_link_ok_encode(ok, ls->cfg->link_secret, c->snonce, cnonce);
    c->state = ST_UP;
    uv_timer_stop(&c->deadline);
    if (mp_lio_queue(io, ok, sizeof ok) < 0) {
        drop(c, "out of memory");
        return;
    }
    mp_lio_flush(io);
    mp_info("link: multiplexor %s up as mux %d (%u threads)%s", c->peer, c->rl->link.index,
            c->nthreads, io->ssl ? ", TLS" : "");
}

static void
on_read(mp_lio *io)
{
    lconn *c = io->data;
    mp_link_server *ls = c->ls;
    if (c->state == ST_HELLO) {
        handshake(c);
        if (c->state != ST_UP || io->in.len == 0)
            return;
    }
    if (c->state != ST_UP)
        return;
    mp_link *link = &c->rl->link;
    size_t off = 0;
    for (;;) {
        const char *why = NULL;
        long n = mp_link_frame_check(io->in.data + off, io->in.len - off, ls->max_frame,
                                     MP_LINK_TO_CORE, &why);
        if (n == 0)
            break;
        if (n < 0) {
            drop(c, why);
            return;
        }
        mp_frame *f = (mp_frame *)(void *)(io->in.data + off);
        unsigned t = (unsigned)(f->conn >> 56);
        if (t >= c->nthreads) {
            drop(c, "connection id of a mux thread it does not have");
            return;
        }
        f->conn = ((uint64_t)c->bytes[t] << 56) | (f->conn & ID_LOW);
        mp_core_link_input(ls->core, link, f);
        off += (size_t)n;
    }
    if (off) {
        mp_lio_consume(io, off);
        mp_core_link_batch_end(ls->core);
    }
}

static void
on_ready(mp_lio *io)
{
    lconn *c = io->data;
    unsigned char hello[MP_LINK_HELLO_LEN];
    mp_random_bytes(c->snonce, sizeof c->snonce);
    mp_link_hello_encode(hello, (uint32_t)c->ls->max_frame, c->snonce);
    if (mp_lio_queue(io, hello, sizeof hello) < 0) {
        drop(c, "out of memory");
        return;
    }
    mp_lio_flush(io);
}

static void
on_connection(uv_stream_t *server, int status)
{
    mp_link_server *ls = server->data;
    if (status < 0 || ls->stopping)
        return;
    lconn *c = calloc(1, sizeof *c);
    if (!c) {
        mp_err("link: out of memory accepting a multiplexor");
        return;
    }
    c->ls = ls;
    if (mp_lio_init(ls->loop, &c->io, ls->cfg->link_max_output) < 0) {
        free(c);
        return;
    }
    c->io.data = c;
    c->io.on_ready = on_ready;
    c->io.on_read = on_read;
    c->io.on_error = on_io_error;
    c->io.on_closed = io_closed;
    uv_timer_init(ls->loop, &c->deadline);
    c->deadline.data = c;
    c->handles = 2;
    c->next = ls->conns;
    if (ls->conns)
        ls->conns->prev = c;
    ls->conns = c;
    snprintf(c->peer, sizeof c->peer, "?");
    if (uv_accept(server, (uv_stream_t *)&c->io.tcp) < 0) {
        c->state = ST_DEAD;
        conn_close(c);
        return;
    }
    struct sockaddr_storage sa;
    int len = sizeof sa;
    if (uv_tcp_getpeername(&c->io.tcp, (struct sockaddr *)&sa, &len) == 0) {
        char ip[46] = "?";
        int port = 0;
        if (sa.ss_family == AF_INET6) {
            uv_ip6_name((struct sockaddr_in6 *)&sa, ip, sizeof ip);
            port = ntohs(((struct sockaddr_in6 *)&sa)->sin6_port);
        } else {
            uv_ip4_name((struct sockaddr_in *)&sa, ip, sizeof ip);
            port = ntohs(((struct sockaddr_in *)&sa)->sin_port);
        }
        snprintf(c->peer, sizeof c->peer, "%s:%d", ip, port);
    }
    uv_timer_start(&c->deadline, on_deadline, HANDSHAKE_MS, 0);
    if (mp_lio_start(&c->io, ls->tls, 1) < 0)
        drop(c, "cannot start reading");
}

/* One pass over the links per loop phase instead of an eventfd write per batch: the frames
 * a read of link input makes the core write go out in one write per link, at no syscall
 * beyond it. */
static void
flush_all(mp_link_server *ls)
{
    for (int i = 0; i < MAX_LINKS && ls->slots[i]; i++) /* slot_get fills them in order */
        flush_link(ls->slots[i]);
    mp_ring_discard(&ls->parking.link.to_mux); /* what the core says to parked sessions */
}

static void
on_before_poll(uv_prepare_t *p)
{
    flush_all(p->data);
}

static void
on_after_poll(uv_check_t *c)
{
    flush_all(c->data);
}

int
mp_link_server_start(uv_loop_t *loop, const mp_config *cfg, mp_core *core, mp_link_server **out)
{
    mp_link_server *ls = calloc(1, sizeof *ls);
    if (!ls)
        return MP_ENOMEM;
    ls->loop = loop;
    ls->cfg = cfg;
    ls->core = core;
    ls->ring_size = mp_link_ring_size(cfg->max_stanza_size);
    ls->max_frame =
        cfg->link_max_frame ? cfg->link_max_frame : mp_link_max_frame(cfg->max_stanza_size);
    if (ls->max_frame > ls->ring_size / 2 - 16)
        ls->max_frame = ls->ring_size / 2 - 16; /* what the core's ring can take */
    int rc = mp_ring_init(&ls->parking.link.to_mux, ls->ring_size);
    if (rc < 0) {
        free(ls);
        return rc;
    }
    ls->parking.ls = ls;
    ls->parking.link.index = 99;
    uv_prepare_init(loop, &ls->before_poll);
    ls->before_poll.data = ls;
    uv_prepare_start(&ls->before_poll, on_before_poll);
    uv_unref((uv_handle_t *)&ls->before_poll);
    uv_check_init(loop, &ls->after_poll);
    ls->after_poll.data = ls;
    uv_check_start(&ls->after_poll, on_after_poll);
    uv_unref((uv_handle_t *)&ls->after_poll);
    uv_tcp_init(loop, &ls->listener);
    ls->listener.data = ls;
    *out = ls; /* from here on, stop and free undo everything */
    if (cfg->link_tls) {
        ls->tls = mp_lio_server_ctx(cfg->tls_certificate, cfg->tls_key);
        if (!ls->tls)
            return MP_EIO;
    }
    struct sockaddr_storage sa;
    if (uv_ip4_addr(cfg->link_address, cfg->link_port, (struct sockaddr_in *)&sa) != 0 &&
        uv_ip6_addr(cfg->link_address, cfg->link_port, (struct sockaddr_in6 *)&sa) != 0) {
        mp_err("link: bad address %s", cfg->link_address);
        return MP_EINVAL;
    }
    rc = uv_tcp_bind(&ls->listener, (struct sockaddr *)&sa, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&ls->listener, 64, on_connection);
    if (rc < 0) {
        mp_err("link: cannot listen on %s port %d: %s", cfg->link_address, cfg->link_port,
               uv_strerror(rc));
        return MP_EIO;
    }
    mp_info("link: listening for multiplexors on %s port %d%s", cfg->link_address, cfg->link_port,
            ls->tls ? " (TLS)" : "");
    return 0;
}

void
mp_link_server_stop(mp_link_server *ls)
{
    if (!ls || ls->stopping)
        return;
    ls->stopping = 1;
    while (ls->conns) {
        lconn *c = ls->conns;
        if (c->rl) { /* no mp_core_link_lost: the core frees every stream itself */
            c->rl->c = NULL;
            c->rl = NULL;
        }
        conn_close(c);
    }
    if (!uv_is_closing((uv_handle_t *)&ls->listener))
        uv_close((uv_handle_t *)&ls->listener, NULL);
    uv_close((uv_handle_t *)&ls->before_poll, NULL);
    uv_close((uv_handle_t *)&ls->after_poll, NULL);
}

void
mp_link_server_free(mp_link_server *ls)
{
    if (!ls)
        return;
    for (int i = 0; i < MAX_LINKS; i++) {
        if (ls->slots[i]) {
            mp_ring_free(&ls->slots[i]->link.to_mux);
            free(ls->slots[i]);
        }
    }
    mp_ring_free(&ls->parking.link.to_mux);
    if (ls->tls)
        mp_lio_ctx_free(ls->tls);
    free(ls);
}

int
mp_link_server_count(const mp_link_server *ls)
{
    return ls ? ls->up : 0;
}
