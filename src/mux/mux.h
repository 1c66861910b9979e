/* A multiplexor thread: its own libuv loop owning client sockets, TLS, XML framing and
 * stream headers. It talks to the core only through its mp_link. */
#ifndef MP_MUX_MUX_H
#define MP_MUX_MUX_H

#include <uv.h>

struct mp_config;
struct mp_tls_ctx;
struct mp_link;

typedef struct mp_mux mp_mux;

typedef struct mp_mux_opts {
    const struct mp_config *cfg; /* read at start; limits are copied */
    struct mp_tls_ctx *tls;      /* NULL disables STARTTLS and direct TLS */
    struct mp_link *link;
    uv_async_t *core_wake; /* the core's async for this link */
    int index;             /* thread number, part of every connection id */
} mp_mux_opts;

/* Bind the listeners (SO_REUSEPORT, so every mux thread has its own) and start the thread.
 * Returns 0 or a negative MP_E* (logged). */
int mp_mux_start(const mp_mux_opts *opts, mp_mux **out);

/* The async handle the core wakes when it pushed frames to this mux. */
uv_async_t *mp_mux_wake_handle(mp_mux *m);

/* Ask the thread to close every stream with <system-shutdown/>, then join it and free. */
void mp_mux_stop(mp_mux *m);

/* Apply reloadable settings (limits) from cfg. Thread-safe: copied under a lock. */
void mp_mux_reload(mp_mux *m, const struct mp_config *cfg);

#endif
