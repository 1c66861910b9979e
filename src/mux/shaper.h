/* Read rate of one connection: a token bucket in bytes. A connection may read `burst` bytes
 * at once and `rate` bytes per second after that; past it the mux stops reading the socket
 * until the debt is paid back, so the kernel's receive window slows the sender down. A client
 * that stays over the rate for long is a flood, not a burst: the mux then disconnects it. */
#ifndef MP_MUX_SHAPER_H
#define MP_MUX_SHAPER_H

#include <stddef.h>
#include <stdint.h>

typedef struct mp_shaper {
    uint64_t rate;    /* bytes per second, 0 = unlimited */
    int64_t burst;    /* bucket size, in milli-bytes */
    int64_t tokens;   /* milli-bytes; negative while in debt */
    uint64_t last_ms; /* time of the last refill */
    uint64_t over_ms; /* when the current spell over the rate began */
    int over;         /* in a spell over the rate */
} mp_shaper;

/* A full bucket. rate 0 disables shaping (every call then says "go on"). */
void mp_shaper_init(mp_shaper *s, uint64_t rate, uint64_t burst, uint64_t now_ms);

/* New settings (authentication, reload): what the bucket holds is kept, capped at the new
 * burst; a debt is kept too. */
void mp_shaper_set(mp_shaper *s, uint64_t rate, uint64_t burst, uint64_t now_ms);

/* Count n bytes read at now_ms. Returns 0 when reading may go on, otherwise the milliseconds
 * to pause before the debt is paid back. */
uint64_t mp_shaper_take(mp_shaper *s, size_t n, uint64_t now_ms);

/* How long the connection has been over the rate without a break (0 when it is not). A spell
 * ends once the bucket has refilled to half its burst: a client that paused to let it refill
 * was bursting, not flooding. */
uint64_t mp_shaper_over_for(const mp_shaper *s, uint64_t now_ms);

#endif
