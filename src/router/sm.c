/* XEP-0198 acknowledgement queue; see sm.h. */
#include "router/sm.h"
#include "base/err.h"

#include <stdlib.h>
#include <string.h>

void
mp_sm_init(mp_sm_queue *q, size_t max_stanzas, size_t max_bytes)
{
    memset(q, 0, sizeof *q);
    q->max_stanzas = max_stanzas;
    q->max_bytes = max_bytes;
}

void
mp_sm_free(mp_sm_queue *q)
{
    free(q->bytes);
    free(q->lens);
    memset(q, 0, sizeof *q);
}

size_t
mp_sm_unacked(const mp_sm_queue *q)
{
    return q->llen - q->lstart;
}

size_t
mp_sm_unacked_bytes(const mp_sm_queue *q)
{
    return q->len - q->start;
}

/* Room for need more bytes and one more length, moving the live part to the front first
 * when that is enough. */
static int
reserve(mp_sm_queue *q, size_t need)
{
    if (q->start && (q->len + need > q->cap || q->start > q->len / 2)) {
        memmove(q->bytes, q->bytes + q->start, q->len - q->start);
        q->len -= q->start;
        q->start = 0;
    }
    if (q->lstart && (q->llen == q->lcap || q->lstart > q->llen / 2)) {
        memmove(q->lens, q->lens + q->lstart, (q->llen - q->lstart) * sizeof *q->lens);
        q->llen -= q->lstart;
        q->lstart = 0;
    }
    if (!q->bytes || q->len + need > q->cap) { /* a first stanza of 0 bytes needs a buffer too */
        size_t cap = q->cap ? q->cap : 1024;
        while (cap < q->len + need)
            cap *= 2;
        char *b = realloc(q->bytes, cap);
        if (!b)
            return MP_ENOMEM;
        q->bytes = b;
        q->cap = cap;
    }
    if (q->llen == q->lcap) {
        size_t cap = q->lcap ? q->lcap * 2 : 16;
        uint32_t *l = realloc(q->lens, cap * sizeof *l);
        if (!l)
            return MP_ENOMEM;
        q->lens = l;
        q->lcap = cap;
    }
    return 0;
}

int
mp_sm_push(mp_sm_queue *q, const char *bytes, size_t len)
{
    if (len > UINT32_MAX)
        return MP_ELIMIT;
    if ((q->max_stanzas && mp_sm_unacked(q) >= q->max_stanzas) ||
        (q->max_bytes && mp_sm_unacked_bytes(q) + len > q->max_bytes))
        return MP_ELIMIT;
    int rc = reserve(q, len);
    if (rc < 0)
        return rc;
    memcpy(q->bytes + q->len, bytes, len);
    q->len += len;
    q->lens[q->llen++] = (uint32_t)len;
    q->sent++;
    return 0;
}

int
mp_sm_ack(mp_sm_queue *q, uint32_t h)
{
    /* Modulo 2^32 both differences are what they mean even across a wrap; an h behind the
     * last one is as wrong as one ahead of what was sent and lands here as a huge count. */
    uint32_t newly = h - q->acked;
    uint32_t outstanding = q->sent - q->acked;
    if (newly > outstanding)
        return MP_EINVAL;
    for (uint32_t i = 0; i < newly; i++)
        q->start += q->lens[q->lstart++];
    q->acked = h;
    if (q->lstart == q->llen) {
        q->start = q->len = 0;
        q->lstart = q->llen = 0;
    }
    return 0;
}

int
mp_sm_foreach(const mp_sm_queue *q, mp_sm_stanza_cb cb, void *ud)
{
    size_t off = q->start;
    for (size_t i = q->lstart; i < q->llen; i++) {
        int rc = cb(q->bytes + off, q->lens[i], ud);
        if (rc)
            return rc;
        off += q->lens[i];
    }
    return 0;
}

int
mp_sm_parse_h(const char *s, size_t len, uint32_t *out)
{
    if (!s || len == 0 || len > 10)
        return MP_EINVAL;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return MP_EINVAL;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > UINT32_MAX)
        return MP_EINVAL;
    *out = (uint32_t)v;
    return 0;
}
