#include "mux/shaper.h"

/* Tokens are kept in milli-bytes so that rate * elapsed milliseconds adds up exactly: a slow
 * rate refilled every millisecond would otherwise round down to nothing. Settings are capped
 * at 1 GiB (config), so milli-bytes fit easily in 64 bits. */
#define MILLI 1000

static void
refill(mp_shaper *s, uint64_t now_ms)
{
    if (now_ms <= s->last_ms)
        return;
    uint64_t elapsed = now_ms - s->last_ms;
    uint64_t missing = (uint64_t)(s->burst - s->tokens);
    s->last_ms = now_ms;
    /* Compared by division first: a connection idle for days would overflow the product. */
    if (elapsed > missing / s->rate)
        s->tokens = s->burst;
    else
        s->tokens += (int64_t)(elapsed * s->rate);
    if (s->tokens > s->burst)
        s->tokens = s->burst;
    if (s->over && s->tokens >= s->burst / 2)
        s->over = 0;
}

void
mp_shaper_init(mp_shaper *s, uint64_t rate, uint64_t burst, uint64_t now_ms)
{
    s->rate = rate;
    s->burst = (int64_t)burst * MILLI;
    s->tokens = s->burst;
    s->last_ms = now_ms;
    s->over = 0;
    s->over_ms = 0;
}

void
mp_shaper_set(mp_shaper *s, uint64_t rate, uint64_t burst, uint64_t now_ms)
{
    if (s->rate)
        refill(s, now_ms);
    else
        s->tokens = (int64_t)burst * MILLI; /* was unlimited: start full */
    s->rate = rate;
    s->burst = (int64_t)burst * MILLI;
    s->last_ms = now_ms;
    if (s->tokens > s->burst)
        s->tokens = s->burst;
    if (!rate)
        s->over = 0;
}

uint64_t
mp_shaper_take(mp_shaper *s, size_t n, uint64_t now_ms)
{
    if (!s->rate)
        return 0;
    refill(s, now_ms);
    s->tokens -= (int64_t)n * MILLI;
    if (s->tokens >= 0)
        return 0;
    if (!s->over) {
        s->over = 1;
        s->over_ms = now_ms;
    }
    /* milli-bytes / (bytes per second) = milliseconds; round up so the pause pays it all */
    uint64_t debt = (uint64_t)-s->tokens;
    return (debt + s->rate - 1) / s->rate;
}

uint64_t
mp_shaper_over_for(const mp_shaper *s, uint64_t now_ms)
{
    if (!s->over || now_ms < s->over_ms)
        return 0;
    return now_ms - s->over_ms;
}
