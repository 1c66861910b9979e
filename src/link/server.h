/* magpied's side of the link over TCP: a listener for magpie-mux processes on the core loop.
 * Frames read from a multiplexor go to the core in place (mp_core_link_input); what the core
 * sends them goes through a ring per link, drained into one write per loop turn. */
#ifndef MP_LINK_SERVER_H
#define MP_LINK_SERVER_H

#include <uv.h>

struct mp_config;
struct mp_core;

typedef struct mp_link_server mp_link_server;

/* Listen on link.address:link.port (cfg must outlive the server). Returns 0 or a negative
 * MP_E* (logged). */
int mp_link_server_start(uv_loop_t *loop, const struct mp_config *cfg, struct mp_core *core,
                         mp_link_server **out);
/* Close the listener and every link; their streams stay for the core to free. */
void mp_link_server_stop(mp_link_server *ls);
/* After the loop closed the handles and the core is freed (its streams point at our links). */
void mp_link_server_free(mp_link_server *ls);
/* Links up now (tests, metrics). */
int mp_link_server_count(const mp_link_server *ls);

#endif
