/* libFuzzer target for stream management (XEP-0198) bookkeeping: the parser of the client's
 * <a h=''/> value and the acknowledgement queue it drives, against a plain model.
 *
 * The input is a program of lines: "+N" queues a stanza of N bytes, anything else is an h
 * value as a client would send it. Checked: mp_sm_parse_h accepts exactly the decimals below
 * 2^32 (no sign, no space, at most ten digits), an ack moves the queue exactly as the model
 * says (refusing an h ahead of what was sent or behind the last one, modulo 2^32), and the
 * stanzas left are the right ones, in order. The counters start just before they wrap. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "router/sm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_MODEL 4096

typedef struct model {
    uint32_t sent, acked;
    uint32_t first;           /* sequence number of the oldest unacked stanza */
    size_t n;                 /* unacked */
    uint32_t lens[MAX_MODEL]; /* by sequence number modulo MAX_MODEL */
    size_t bytes;
} model;

static int
ref_parse_h(const char *s, size_t len, uint32_t *out)
{
    if (len == 0 || len > 10)
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > UINT32_MAX)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

typedef struct walk {
    const model *m;
    size_t i;
} walk;

/* Stanza k of the queue is k+1 bytes of the letter of its sequence number. */
static void
stanza_bytes(uint32_t seq, char *buf, size_t len)
{
    memset(buf, 'a' + (int)(seq % 26), len);
}

static int
check_one(const char *bytes, size_t len, void *ud)
{
    walk *w = ud;
    uint32_t seq = w->m->first + (uint32_t)w->i;
    char want[256];
    if (len != w->m->lens[seq % MAX_MODEL] || len > sizeof want)
        __builtin_trap();
    stanza_bytes(seq, want, len);
    if (memcmp(bytes, want, len) != 0)
        __builtin_trap();
    w->i++;
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static model m;
    memset(&m, 0, sizeof m);
    mp_sm_queue q;
    /* a limit the model knows, so MP_ELIMIT is checked too */
    mp_sm_init(&q, 64, 8192);
    /* counters 16 stanzas before they wrap (XEP-0198 counts modulo 2^32) */
    q.sent = q.acked = m.sent = m.acked = m.first = UINT32_MAX - 15;
    const char *p = (const char *)data, *end = p + size;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = (size_t)((nl ? nl : end) - p);
        if (len && p[0] == '+') {
            size_t n = 0;
            for (size_t i = 1; i < len && i < 4; i++)
                n = n * 10 + (size_t)(p[i] >= '0' && p[i] <= '9' ? p[i] - '0' : 0);
            n %= 256;
            char buf[256];
            stanza_bytes(m.sent, buf, n);
            int rc = mp_sm_push(&q, buf, n);
            int full = m.n >= 64 || m.bytes + n > 8192;
            if (full != (rc == MP_ELIMIT) || (!full && rc != 0))
                __builtin_trap();
            if (rc == 0) {
                m.lens[m.sent % MAX_MODEL] = (uint32_t)n;
                m.sent++;
                m.n++;
                m.bytes += n;
            }
        } else {
            uint32_t h = 0, want = 0;
            int rc = mp_sm_parse_h(p, len, &h);
            if ((rc == 0) != (ref_parse_h(p, len, &want) == 0) || (rc == 0 && h != want))
                __builtin_trap();
            if (rc == 0) {
                /* Also h relative to where the queue is, so wrapped values get exercised. */
                for (int rel = 0; rel < 2; rel++) {
                    uint32_t hh = rel ? m.acked + (h % 67) : h;
                    uint32_t newly = hh - m.acked, outstanding = m.sent - m.acked;
                    int ok = mp_sm_ack(&q, hh) == 0;
                    if (ok != (newly <= outstanding))
                        __builtin_trap();
                    if (ok) {
                        for (uint32_t i = 0; i < newly; i++)
                            m.bytes -= m.lens[(m.first + i) % MAX_MODEL];
                        m.first += newly;
                        m.n -= newly;
                        m.acked = hh;
                    }
                }
            }
        }
        if (mp_sm_unacked(&q) != m.n || mp_sm_unacked_bytes(&q) != m.bytes)
            __builtin_trap();
        walk w = {.m = &m};
        mp_sm_foreach(&q, check_one, &w);
        if (w.i != m.n)
            __builtin_trap();
        p += len + 1;
    }
    mp_sm_free(&q);
    return 0;
}
