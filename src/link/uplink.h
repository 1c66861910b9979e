/* magpie-mux's side of the link over TCP: a link to every server of mux.servers it can reach,
 * the mux threads' rings on the other side. Each new client stream is given to one server by
 * mux.policy; when that server's link dies, its streams are closed with <system-shutdown/> so
 * their clients log in again at once, to another server. */
#ifndef MP_LINK_UPLINK_H
#define MP_LINK_UPLINK_H

#include <uv.h>

struct mp_config;
struct mp_link;

typedef struct mp_uplink mp_uplink;

/* links[0..nlinks) are the mux threads' rings (thread i numbers its connections with i in the
 * top byte). cfg must outlive the uplink. Returns 0, or MP_EINVAL with the reason logged (no
 * servers, no secret, a server not "host:port", TLS without a CA file). */
int mp_uplink_new(uv_loop_t *loop, const struct mp_config *cfg, struct mp_link *links, int nlinks,
                  mp_uplink **out);
/* The async mux thread i wakes when it pushed frames (mp_mux_opts.core_wake). */
uv_async_t *mp_uplink_wake_handle(mp_uplink *u, int i);
/* Begin connecting to every server. */
void mp_uplink_start(mp_uplink *u);
/* Close every link and handle; call once the mux threads have stopped. */
void mp_uplink_stop(mp_uplink *u);
/* After the loop ran the close callbacks. */
void mp_uplink_free(mp_uplink *u);
/* Servers whose link is up now (tests). */
int mp_uplink_up(const mp_uplink *u);

#endif
