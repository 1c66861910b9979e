/* The core thread: router, session manager, modules. Everything here runs on the core loop
 * and must never block on the network. Other units (admin socket) use only this API. */
#ifndef MP_ROUTER_CORE_H
#define MP_ROUTER_CORE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct mp_config;
struct mp_store;

typedef struct mp_core mp_core;

typedef struct mp_core_session_info {
    const char *full_jid; /* bound full JID, or "" before bind */
    const char *ip;       /* peer address */
    int tls;              /* 1 when encrypted */
    int64_t since;        /* unix seconds when the stream opened */
    int priority;         /* presence priority, 0 if none sent */
    int available;        /* sent available presence */
    int detached;         /* connection lost, waiting for XEP-0198 resumption */
} mp_core_session_info;

typedef struct mp_core_stats {
    uint64_t uptime_s;
    uint64_t connections; /* open client streams */
    uint64_t sessions;    /* bound resources */
    uint64_t stanzas_in;  /* top-level elements received from clients */
    uint64_t stanzas_routed;
    uint64_t auth_ok, auth_failed;
} mp_core_stats;

typedef int (*mp_core_session_cb)(const mp_core_session_info *info, void *ud);

uv_loop_t *mp_core_loop(mp_core *core);
const struct mp_config *mp_core_config(mp_core *core);
struct mp_store *mp_core_store(mp_core *core);

/* Calls cb for each bound session (all of them when jid is NULL; a bare JID matches all its
 * resources; a full JID one). Stops when cb returns nonzero. */
void mp_core_sessions_foreach(mp_core *core, const char *jid, mp_core_session_cb cb, void *ud);

/* Close the sessions jid matches with a <policy-violation/> stream error and the text given.
 * Returns how many were closed. */
int mp_core_kick(mp_core *core, const char *jid, const char *text);

void mp_core_stats_get(mp_core *core, mp_core_stats *out);



/* Lifecycle, used by magpied's main(). The links must outlive the core. */
struct mp_link;
struct mp_frame;
int mp_core_new(uv_loop_t *loop, const struct mp_config *cfg, struct mp_store *st,
                struct mp_link *links, int nlinks, mp_core **out);
uv_async_t *mp_core_wake_handle(mp_core *core, int link);
/* Take a reloaded configuration (limits and log level; listeners and storage stay). */
void mp_core_set_config(mp_core *core, const struct mp_config *cfg);
/* Remote multiplexors (link/server.c), on the core loop. A link's frames are handed over
 * one by one in place, then mp_core_link_batch_end once per read; mp_core_link_lost ends its
 * streams as if each connection had died (resumable sessions move to the parking link under
 * ids (0xff << 56) | (*parked_seq)++). */
void mp_core_link_input(mp_core *core, struct mp_link *link, const struct mp_frame *f);
void mp_core_link_batch_end(mp_core *core);
void mp_core_link_lost(mp_core *core, struct mp_link *link, struct mp_link *parking,
                       uint64_t *parked_seq);
/* Stop handling frames; free everything once the mux threads have stopped. */
void mp_core_stop(mp_core *core);
void mp_core_free(mp_core *core);

#endif
