/* Internals of the multiplexor shared by its transports: the XMPP stream over TCP (mux.c),
 * HTTP (http.c), WebSocket (ws.c) and BOSH (bosh.c). Everything here runs on one mux thread.
 *
 * A connection carries one XML stream to the core. How the stream's bytes reach the client
 * is the transport's business: a transport sets `ops`, and mux.c calls it where a TCP stream
 * would read or write the socket. With no ops the connection is a plain XMPP stream. */
#ifndef MP_MUX_MUX_INT_H
#define MP_MUX_MUX_INT_H

#include "mux/iplimit.h"
#include "mux/mux.h"
#include "mux/shaper.h"
#include "base/buf.h"
#include "base/config.h"
#include "link/link.h"
#include "stream/tls.h"
#include "xml/framer.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdatomic.h>
#include <uv.h>

#define READ_BUF 65536
#define SWEEP_MS 500
#define CLOSE_GRACE_MS 3000
/* A connection with no input for this long gives back its parser and buffers (about 10 KiB);
 * the next read rebuilds them. Checked every IDLE_SWEEPS sweeps. */
#define IDLE_MS 3000
#define IDLE_SWEEPS 4
#define NS_TLS "urn:ietf:params:xml:ns:xmpp-tls"

enum conn_flags {
    CF_TLS_WANTED = 1 << 0, /* <proceed/> sent, handshake pending */
    CF_DIRECT_TLS = 1 << 1,
    CF_HEADER_SENT = 1 << 2, /* our stream header for the current stream is out */
    CF_AUTHED = 1 << 3,
    CF_CORE_KNOWS = 1 << 4, /* the core has a stream for this connection */
    CF_CLOSING = 1 << 5,
    CF_HANDLE_CLOSED = 1 << 6,
    CF_WRITING = 1 << 7,
    CF_IDLE = 1 << 8,         /* hibernated: parser and buffers released */
    CF_PINGED = 1 << 9,       /* a XEP-0199 ping is out, unanswered */
    CF_PEER_CLOSED = 1 << 10, /* the client sent </stream:stream> (no XEP-0198 resumption) */
    CF_SM = 1 << 11,          /* XEP-0198 on: the core counts stanzas, so pings are <r/> */
    CF_HTTP = 1 << 12,        /* accepted on the HTTP port: no XML stream until a transport
                               * (WebSocket, BOSH) starts one */
    CF_VIRTUAL = 1 << 13,     /* no socket of its own (a BOSH session): its tcp handle is
                               * initialised but never opened, only closed */
    CF_SECURE = 1 << 14,      /* the transport is encrypted or trusted though c->tls is NULL
                               * (BOSH over HTTPS, http.consider_secure) */
    CF_STREAM = 1 << 15,      /* carries an XML stream: its framer is set up */
    CF_PAUSED = 1 << 20,      /* over its read rate: not reading until the shaper allows */
    CF_SHAPED = 1 << 21,      /* was slowed down once (logged) */
    CF_IP_COUNTED = 1 << 22,  /* counted in the connections per address */
};

typedef struct mp_conn mp_conn;

/* A transport's hooks; any may be NULL, then mux.c does what a TCP XMPP stream does. */
typedef struct mp_conn_ops {
    /* Bytes read from the socket, after TLS. NULL: feed the XML framer. */
    void (*feed)(mp_conn *c, const char *p, size_t n);
    /* Our stream header, for the stream to host with this id. */
    void (*header)(mp_conn *c, const char *host, const char *id);
    /* XML of the stream after the header: whole top-level elements (features, stanzas,
     * errors), possibly several in one call. */
    void (*xml)(mp_conn *c, const char *p, size_t n);
    /* The end of the stream, where TCP writes </stream:stream>. */
    void (*end)(mp_conn *c);
    /* The connection is being freed: release the transport's state. */
    void (*freed)(mp_conn *c);
} mp_conn_ops;

typedef struct conn_list {
    mp_conn *head, *tail;
} conn_list;

struct mp_conn {
    uv_tcp_t tcp;
    mp_mux *mux;
    uint64_t id;
    mp_framer fr;
    mp_tls_conn *tls;
    mp_buf out;      /* waiting to be written (ciphertext when TLS) */
    mp_buf inflight; /* handed to uv_write */
    uv_write_t wreq;
    char *stream_to; /* host of the first stream: may not change on restarts */
    uint64_t deadline_ms;
    uint64_t last_read_ms;
    uint64_t ping_sent_ms;
    mp_conn *prev, *next; /* in the unauthenticated or closing list */
    conn_list *list;
    uint32_t flags;
    const mp_conn_ops *ops; /* NULL: plain XMPP over TCP */
    void *tstate;           /* the transport's own state, freed by ops->freed */
    mp_shaper shaper;
    char ip[INET6_ADDRSTRLEN];
};

/* Settings of the read shaper and the per-address cap, bytes and milliseconds. */
typedef struct shape_limits {
    uint64_t pre_rate, pre_burst, rate, burst, flood_ms;
    int max_per_ip;
} shape_limits;

/* A connection whose reading is paused, and until when (by id: it may close meanwhile). */
typedef struct paused_conn {
    uint64_t id, until;
} paused_conn;

struct mp_mux {
    uv_loop_t loop;
    uv_thread_t thread;
    uv_async_t wake;
    uv_async_t stop;
    uv_timer_t sweep;
    uv_tcp_t listen_plain, listen_tls, listen_http, listen_https;
    int have_plain, have_tls, have_http, have_https;
    void *http; /* state of the HTTP transports (BOSH sessions), owned by http.c */
    mp_link *link;
    uv_async_t *core_wake;
    mp_tls_ctx *tls;
    int index;
    const mp_config *cfg;
    pthread_mutex_t limits_lock;
    mp_framer_limits pre_limits, post_limits, pending_pre, pending_post;
    shape_limits shape, pending_shape;
    _Atomic int limits_changed; /* set by the core thread on reload; read on every read */
    size_t max_output;
    uint64_t ping_interval_ms, ping_timeout_ms, pending_ping_interval_ms, pending_ping_timeout_ms;
    uint64_t unauth_timeout_ms;
    mp_conn **slots;
    uint32_t *slot_gen;
    uint32_t nslots, *free_slots, nfree;
    size_t nconns;
    conn_list unauth, closing;
    mp_iplimit *iplimit;
    uv_timer_t resume; /* for the earliest paused connection */
    paused_conn *paused;
    size_t npaused, paused_cap;
    int stopping;
    unsigned sweeps;
    char *rbuf;
    mp_buf scratch; /* the transports' per-thread scratch (elements made to stand alone) */
    char default_host[256];
};

/* ---- mux.c, for the transports ---- */

/* Write stream XML (goes through ops->xml when set). */
void mp_mux_conn_write(mp_conn *c, const char *p, size_t n);
/* Write bytes to the socket, through TLS when it is on. */
void mp_mux_wire_write(mp_conn *c, const char *p, size_t n);
/* Close at once / after what is queued has been written (within a grace period). Both tell
 * the core when it knows the stream. */
void mp_mux_close_now(mp_conn *c);
void mp_mux_close_graceful(mp_conn *c);
/* Send a stream error (cond is an RFC 6120 condition) and close. */
void mp_mux_stream_error(mp_conn *c, const char *cond, const char *extra);
/* Give an HTTP-born connection an XML stream: set up its framer (pre-auth limits). */
int mp_mux_stream_begin(mp_conn *c);
/* Feed bytes of the XML stream to the framer; a parse error becomes a stream error. */
void mp_mux_stream_feed(mp_conn *c, const char *p, size_t n);
/* A connection without a socket (BOSH session) for a client at ip, with a fresh id; its
 * deadline list is the unauthenticated one. NULL when out of memory. */
mp_conn *mp_mux_conn_virtual(mp_mux *m, const char *ip);
mp_conn *mp_mux_conn_by_id(mp_mux *m, uint64_t id);
/* Close the connection when ms pass without this being called again; 0: no deadline. */
void mp_mux_set_deadline(mp_conn *c, uint64_t ms);
/* Stop / restart reading the socket (HTTP pipelining while a request is held). */
void mp_mux_read_stop(mp_conn *c);
void mp_mux_read_start(mp_conn *c);

/* ---- http.c ---- */

/* A connection was accepted on the HTTP or HTTPS port: set its ops. Nonzero: refused (closed). */
int mp_http_accept(mp_conn *c);
/* Set up / tear down the HTTP transports' per-thread state (m->http). */
int mp_http_mux_init(mp_mux *m);
void mp_http_mux_free(mp_mux *m);
/* Called every sweep (SWEEP_MS) for the transports' timers. */
void mp_http_sweep(mp_mux *m, uint64_t now);

#endif
