/* The link protocol between multiplexor and core: length-prefixed frames carrying a
 * connection id, a kind, routing attributes and raw XML bytes.
 *
 * Inside one process the frames travel through a single-producer/single-consumer byte ring
 * per direction, woken by uv_async; between processes the same frames will travel over TCP.
 * A frame is written contiguously into the ring (a wrap marker skips the tail), so the
 * consumer reads it in place without copying. */
#ifndef MP_LINK_LINK_H
#define MP_LINK_LINK_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <uv.h>

#include "base/buf.h"

enum mp_frame_kind {
    /* mux -> core */
    MP_LF_STREAM = 1, /* stream header read (first or restart); aux = peer ip, payload = cb */
    MP_LF_ELEMENT,    /* one top-level element; to/type/id and el_kind set */
    MP_LF_CLOSED,     /* the connection is gone; aux = reason (MP_CLOSED_BY_PEER: the
                       * client ended the stream itself) */
    /* core -> mux */
    MP_LF_SEND,   /* write payload */
    MP_LF_AUTHED, /* write payload (<success/>), raise limits, expect a stream restart */
    MP_LF_BOUND,  /* aux = full JID to stamp as from; write payload (the bind result). On a
                   * stream not yet AUTHED (XEP-0078: login and bind in one IQ) it also lifts
                   * the pre-authentication limits and timeout. */
    MP_LF_CLOSE,  /* write payload (a stream error or nothing), close the stream */
};

#define MP_CLOSED_BY_PEER "stream closed by peer"

enum mp_frame_flags {
    MP_FF_TLS = 1 << 0,           /* stream is encrypted */
    MP_FF_DIRECT_TLS = 1 << 1,    /* connection began with TLS (XEP-0368) */
    MP_FF_TLS_AVAILABLE = 1 << 2, /* STARTTLS may be offered */
    MP_FF_SM = 1 << 3, /* core -> mux: stream management is on, so the mux must not write
                        * stanzas of its own (its keepalive becomes <r/>, which is no stanza) */
};

typedef struct mp_frame {
    uint32_t size; /* whole frame, header included, multiple of 8 */
    uint8_t kind;
    uint8_t el_kind;
    uint16_t flags;
    uint64_t conn;
    uint16_t to_len, type_len, id_len, aux_len;
    uint32_t payload_len;
    uint32_t pad;
    /* followed by to, type, id, aux, payload */
} mp_frame;

static inline const char *
mp_frame_to(const mp_frame *f)
{
    return (const char *)(f + 1);
}
static inline const char *
mp_frame_type(const mp_frame *f)
{
    return mp_frame_to(f) + f->to_len;
}
static inline const char *
mp_frame_id(const mp_frame *f)
{
    return mp_frame_type(f) + f->type_len;
}
static inline const char *
mp_frame_aux(const mp_frame *f)
{
    return mp_frame_id(f) + f->id_len;
}
static inline const char *
mp_frame_payload(const mp_frame *f)
{
    return mp_frame_aux(f) + f->aux_len;
}

/* Nonzero when the frame's type attribute is exactly t. */
static inline int
mp_frame_type_is(const mp_frame *f, const char *t)
{
    size_t n = strlen(t);
    return f->type_len == n && memcmp(mp_frame_type(f), t, n) == 0;
}

/* What a producer fills in; strings need not be NUL-terminated. */
typedef struct mp_frame_out {
    uint8_t kind, el_kind;
    uint16_t flags;
    uint64_t conn;
    const char *to, *type, *id, *aux;
    size_t to_len, type_len, id_len, aux_len;
    const char *payload;
    size_t payload_len;
    const char *payload2; /* appended after payload (saves a copy when joining two parts) */
    size_t payload2_len;
} mp_frame_out;

typedef struct mp_ring {
    char *mem;
    size_t size;                               /* power of two */
    _Alignas(64) _Atomic size_t head;          /* producer writes here */
    _Alignas(64) _Atomic size_t tail;          /* consumer reads here */
    _Alignas(64) _Atomic int producer_waiting; /* producer has frames held back */
    uv_async_t *consumer_wake;                 /* on the consumer's loop */
    uv_async_t *producer_wake;                 /* on the producer's loop: space was freed */
    mp_buf overflow; /* producer side: frames that did not fit, in order */
} mp_ring;

int mp_ring_init(mp_ring *r, size_t size);
void mp_ring_free(mp_ring *r);

/* Producer: append one frame (to the overflow buffer when the ring is full; order kept).
 * Wakes the consumer. Returns 0 or MP_ENOMEM / MP_ELIMIT (frame larger than the ring). */
int mp_ring_push(mp_ring *r, const mp_frame_out *out);
/* Producer: move held-back frames into the ring; called when producer_wake fires. */
void mp_ring_flush_overflow(mp_ring *r);

/* Consumer: call fn for each frame available now (at most max), then release their space.
 * Returns the number handled. */
typedef void (*mp_ring_frame_fn)(const mp_frame *f, void *ud);
size_t mp_ring_drain(mp_ring *r, mp_ring_frame_fn fn, void *ud, size_t max);

/* The two rings joining one mux thread and the core. */
typedef struct mp_link {
    mp_ring to_core;
    mp_ring to_mux;
    int index; /* mux thread number */
} mp_link;

/* ---- The link over TCP (wire.c: frames and handshake; io.c: a socket with optional TLS;
 * server.c: magpied's listener; uplink.c: magpie-mux's links to its servers) ----
 *
 * Frames cross the wire exactly as they sit in a ring (little-endian, the layout above), one
 * after the other. Before them, a fixed-size handshake proves both ends know the shared
 * secret: server hello (magic, version, largest frame it takes, nonce), mux auth (magic,
 * thread count, nonce, HMAC), server ok (magic, HMAC). See docs/design.md. */

#define MP_LINK_VERSION 1u
#define MP_LINK_NONCE_LEN 32
#define MP_LINK_MAC_LEN 32
#define MP_LINK_HELLO_LEN (4 + 4 + 4 + MP_LINK_NONCE_LEN)              /* 44 */
#define MP_LINK_AUTH_LEN (4 + 4 + MP_LINK_NONCE_LEN + MP_LINK_MAC_LEN) /* 72 */
#define MP_LINK_OK_LEN (4 + 4 + MP_LINK_MAC_LEN)                       /* 40 */
#define MP_LINK_MAX_THREADS 64 /* mux threads behind one link (core.mux_threads) */

enum mp_link_dir {
    MP_LINK_TO_CORE, /* frames a mux sends: STREAM, ELEMENT, CLOSED */
    MP_LINK_TO_MUX,  /* frames a server sends: SEND, AUTHED, BOUND, CLOSE */
};

/* The rings between mux threads and the core, and so the largest frame either end sends:
 * a ring holds at least four of the largest stanzas, and a frame fits half a ring. */
size_t mp_link_ring_size(size_t max_stanza_size);
/* n links (mux threads 0..n-1) with both rings sized for max_stanza_size; NULL when out of
 * memory. The array has room for one even when n is 0. mp_links_free takes the same n. */
mp_link *mp_links_new(int n, size_t max_stanza_size);
void mp_links_free(mp_link *links, int n);
size_t mp_link_max_frame(size_t max_stanza_size);

/* Check the frame at the start of p, of which avail bytes have arrived. Returns its size once
 * it is complete and valid, 0 while more bytes are needed (a header already seen is checked
 * before its body arrives), or MP_EINVAL with *why set. p need not be aligned. */
long mp_link_frame_check(const void *p, size_t avail, size_t max_frame, int dir, const char **why);

/* Encode a frame into dst (mp_link_frame_size(o) bytes, 8-aligned). */
size_t mp_link_frame_size(const mp_frame_out *o);
void mp_link_frame_encode(void *dst, const mp_frame_out *o);

/* The handshake messages. The *_check functions return 0, MP_EINVAL (not our protocol or a
 * version we do not speak) or MP_EAUTH (wrong secret); MACs are compared in constant time. */
void mp_link_hello_encode(unsigned char out[MP_LINK_HELLO_LEN], uint32_t max_frame,
                          const unsigned char snonce[MP_LINK_NONCE_LEN]);
int mp_link_hello_decode(const unsigned char in[MP_LINK_HELLO_LEN], uint32_t *max_frame,
                         unsigned char snonce[MP_LINK_NONCE_LEN]);
void mp_link_auth_encode(unsigned char out[MP_LINK_AUTH_LEN], const char *secret, uint32_t threads,
                         const unsigned char snonce[MP_LINK_NONCE_LEN],
                         const unsigned char cnonce[MP_LINK_NONCE_LEN]);
int mp_link_auth_check(const unsigned char in[MP_LINK_AUTH_LEN], const char *secret,
                       const unsigned char snonce[MP_LINK_NONCE_LEN], uint32_t *threads,
                       unsigned char cnonce[MP_LINK_NONCE_LEN]);
void mp_link_ok_encode(unsigned char out[MP_LINK_OK_LEN], const char *secret,
                       const unsigned char snonce[MP_LINK_NONCE_LEN],
                       const unsigned char cnonce[MP_LINK_NONCE_LEN]);
int mp_link_ok_check(const unsigned char in[MP_LINK_OK_LEN], const char *secret,
                     const unsigned char snonce[MP_LINK_NONCE_LEN],
                     const unsigned char cnonce[MP_LINK_NONCE_LEN]);

/* Producer: append a whole frame as it came off the wire (already checked). Same rules as
 * mp_ring_push. */
int mp_ring_push_raw(mp_ring *r, const mp_frame *f);
/* Throw away everything queued, held-back frames too (a link that went away). Only when
 * producer and consumer are the calling thread (the core's remote links). */
void mp_ring_discard(mp_ring *r);

#endif
