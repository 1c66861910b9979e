/* Stream management (XEP-0198) bookkeeping for one session: the stanzas sent to the client
 * and not yet acknowledged, and the counters of both directions. Counters are 32-bit and
 * wrap (XEP-0198 §4: h is counted modulo 2^32). No I/O here: the core decides what to do with
 * the queue when a stream dies, resumes or times out. */
#ifndef MP_ROUTER_SM_H
#define MP_ROUTER_SM_H

#include <stddef.h>
#include <stdint.h>

/* The unacknowledged stanzas live back to back in one byte buffer, their lengths in a
 * second array; an ack moves the start of both, and the buffers are compacted only when
 * more than half is dead. A busy session therefore reuses its two allocations instead of
 * allocating per stanza. */
typedef struct mp_sm_queue {
    char *bytes;
    size_t start, len, cap; /* live bytes: bytes[start, len) */
    uint32_t *lens;
    size_t lstart, llen, lcap; /* live lengths: lens[lstart, llen) */
    uint32_t sent;             /* stanzas queued to the client since enable, mod 2^32 */
    uint32_t acked;            /* the client's last h */
    uint32_t handled;          /* stanzas received from the client since enable: our h */
    size_t max_stanzas;        /* 0: no limit */
    size_t max_bytes;          /* 0: no limit */
} mp_sm_queue;

void mp_sm_init(mp_sm_queue *q, size_t max_stanzas, size_t max_bytes);
void mp_sm_free(mp_sm_queue *q);

/* Keep a copy of a stanza sent to the client. 0, MP_ELIMIT (the queue is full: nothing kept,
 * the caller must end the stream) or MP_ENOMEM. */
int mp_sm_push(mp_sm_queue *q, const char *bytes, size_t len);

/* The client's <a h='h'/>: drop what it acknowledged. 0, or MP_EINVAL when h acknowledges
 * more than was sent (the caller answers <handled-count-too-high/>); nothing changes then. */
int mp_sm_ack(mp_sm_queue *q, uint32_t h);

/* Stanzas sent and not acknowledged. */
size_t mp_sm_unacked(const mp_sm_queue *q);
size_t mp_sm_unacked_bytes(const mp_sm_queue *q);

/* Each unacknowledged stanza, oldest first. A nonzero return stops and is returned. */
typedef int (*mp_sm_stanza_cb)(const char *bytes, size_t len, void *ud);
int mp_sm_foreach(const mp_sm_queue *q, mp_sm_stanza_cb cb, void *ud);

/* Parse an 'h' attribute value: a decimal in [0, 2^32). 0 or MP_EINVAL. */
int mp_sm_parse_h(const char *s, size_t len, uint32_t *out);

#endif
