/* Placeholder until the HTTP transports land: connections on the HTTP port are closed. */
#include "mux/mux_int.h"

int
mp_http_accept(mp_conn *c)
{
    mp_mux_close_now(c);
    return 1;
}

int
mp_http_mux_init(mp_mux *m)
{
    return 0;
}

void
mp_http_mux_free(mp_mux *m)
{
}

void
mp_http_sweep(mp_mux *m, uint64_t now)
{
}
