/* The link protocol on the wire: checking frames that come from another process, and the
 * handshake that authenticates a multiplexor to a server (and the server back to it). */
#include "link/link.h"
#include "base/err.h"
#include "xml/framer.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#define ALIGN8(n) (((n) + 7u) & ~(size_t)7u)

static const char MAGIC_HELLO[4] = {'M', 'P', 'L', 'H'};
static const char MAGIC_AUTH[4] = {'M', 'P', 'L', 'A'};
static const char MAGIC_OK[4] = {'M', 'P', 'L', 'K'};

size_t
mp_link_ring_size(size_t max_stanza_size)
{
    size_t want = max_stanza_size * 4 + 65536, size = 1u << 20;
    while (size < want)
        size <<= 1;
    return size;
}

size_t
mp_link_max_frame(size_t max_stanza_size)
{
    /* mp_ring_push refuses frames of half the ring or more (8 bytes kept for a wrap mark). */
    return mp_link_ring_size(max_stanza_size) / 2 - 16;
}

static uint32_t
get32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void
put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static int
kind_ok(unsigned kind, int dir)
{
    if (dir == MP_LINK_TO_CORE)
        return kind == MP_LF_STREAM || kind == MP_LF_ELEMENT || kind == MP_LF_CLOSED;
    return kind == MP_LF_SEND || kind == MP_LF_AUTHED || kind == MP_LF_BOUND || kind == MP_LF_CLOSE;
}

long
mp_link_frame_check(const void *p, size_t avail, size_t max_frame, int dir, const char **why)
{
    static const char *unused;
    if (!why)
        why = &unused;
    if (avail < sizeof(uint32_t))
        return 0;
    mp_frame h;
    uint32_t size;
    memcpy(&size, p, sizeof size);
    if (size % 8 != 0) {
        *why = "frame size not a multiple of 8";
        return MP_EINVAL;
    }
    if (size < sizeof(mp_frame)) {
        *why = "frame shorter than its header";
        return MP_EINVAL;
    }
    if (size > max_frame) {
        *why = "frame larger than link.max_frame";
        return MP_EINVAL;
    }
    if (avail < sizeof h)
        return 0;
    memcpy(&h, p, sizeof h);
    if (!kind_ok(h.kind, dir)) {
        *why = "frame kind not valid in this direction";
        return MP_EINVAL;
    }
    if (h.kind == MP_LF_ELEMENT && h.el_kind > MP_EL_IQ) {
        *why = "unknown element kind";
        return MP_EINVAL;
    }
    if (h.flags & ~(MP_FF_TLS | MP_FF_DIRECT_TLS | MP_FF_TLS_AVAILABLE | MP_FF_SM)) {
        *why = "unknown frame flags";
        return MP_EINVAL;
    }
    if (h.pad != 0) {
        *why = "nonzero padding field";
        return MP_EINVAL;
    }
    uint64_t body = (uint64_t)h.to_len + h.type_len + h.id_len + h.aux_len + h.payload_len;
    if (ALIGN8(sizeof h + body) != size) {
        *why = "field lengths do not match the frame size";
        return MP_EINVAL;
    }
    if (avail < size)
        return 0;
    return (long)size;
}

size_t
mp_link_frame_size(const mp_frame_out *o)
{
    return ALIGN8(sizeof(mp_frame) + o->to_len + o->type_len + o->id_len + o->aux_len +
                  o->payload_len + o->payload2_len);
}

void
mp_link_frame_encode(void *dst, const mp_frame_out *o)
{
    size_t size = mp_link_frame_size(o);
    mp_frame *f = dst;
    memset(f, 0, sizeof *f);
    f->size = (uint32_t)size;
    f->kind = o->kind;
    f->el_kind = o->el_kind;
    f->flags = o->flags;
    f->conn = o->conn;
    f->to_len = (uint16_t)o->to_len;
    f->type_len = (uint16_t)o->type_len;
    f->id_len = (uint16_t)o->id_len;
    f->aux_len = (uint16_t)o->aux_len;
    f->payload_len = (uint32_t)(o->payload_len + o->payload2_len);
    char *q = (char *)(f + 1);
    const char *parts[] = {o->to, o->type, o->id, o->aux, o->payload, o->payload2};
    size_t lens[] = {o->to_len,  o->type_len,    o->id_len,
                     o->aux_len, o->payload_len, o->payload2_len};
    for (int i = 0; i < 6; i++) {
        if (lens[i])
            memcpy(q, parts[i], lens[i]);
        q += lens[i];
    }
    /* The padding goes on the wire: no stale heap bytes in it. */
    memset(q, 0, (size_t)((char *)dst + size - q));
}

/* HMAC-SHA256(secret, label || a || b || n): a label per direction, so that one side's MAC is
 * never a valid answer for the other. */
static void
mac(const char *secret, const char *label, const unsigned char *a, const unsigned char *b,
    uint32_t n, unsigned char out[MP_LINK_MAC_LEN])
{
    unsigned char msg[32 + 2 * MP_LINK_NONCE_LEN + 4];
    size_t ll = strlen(label);
    memcpy(msg, label, ll);
    memcpy(msg + ll, a, MP_LINK_NONCE_LEN);
    memcpy(msg + ll + MP_LINK_NONCE_LEN, b, MP_LINK_NONCE_LEN);
    put32(msg + ll + 2 * MP_LINK_NONCE_LEN, n);
    unsigned int len = MP_LINK_MAC_LEN;
    if (!HMAC(EVP_sha256(), secret, (int)strlen(secret), msg, ll + 2 * MP_LINK_NONCE_LEN + 4, out,
              &len))
        memset(out, 0, MP_LINK_MAC_LEN); /* never matches a real MAC: the link is refused */
}

void
mp_link_hello_encode(unsigned char out[MP_LINK_HELLO_LEN], uint32_t max_frame,
                     const unsigned char snonce[MP_LINK_NONCE_LEN])
{
    memcpy(out, MAGIC_HELLO, 4);
    put32(out + 4, MP_LINK_VERSION);
    put32(out + 8, max_frame);
    memcpy(out + 12, snonce, MP_LINK_NONCE_LEN);
}

int
mp_link_hello_decode(const unsigned char in[MP_LINK_HELLO_LEN], uint32_t *max_frame,
                     unsigned char snonce[MP_LINK_NONCE_LEN])
{
    if (memcmp(in, MAGIC_HELLO, 4) != 0 || get32(in + 4) != MP_LINK_VERSION)
        return MP_EINVAL;
    *max_frame = get32(in + 8);
    memcpy(snonce, in + 12, MP_LINK_NONCE_LEN);
    return 0;
}

void
mp_link_auth_encode(unsigned char out[MP_LINK_AUTH_LEN], const char *secret, uint32_t threads,
                    const unsigned char snonce[MP_LINK_NONCE_LEN],
                    const unsigned char cnonce[MP_LINK_NONCE_LEN])
{
    memcpy(out, MAGIC_AUTH, 4);
    put32(out + 4, threads);
    memcpy(out + 8, cnonce, MP_LINK_NONCE_LEN);
    mac(secret, "magpie-link mux", snonce, cnonce, threads, out + 8 + MP_LINK_NONCE_LEN);
}

int
mp_link_auth_check(const unsigned char in[MP_LINK_AUTH_LEN], const char *secret,
                   const unsigned char snonce[MP_LINK_NONCE_LEN], uint32_t *threads,
                   unsigned char cnonce[MP_LINK_NONCE_LEN])
{
    if (memcmp(in, MAGIC_AUTH, 4) != 0)
        return MP_EINVAL;
    uint32_t n = get32(in + 4);
    unsigned char want[MP_LINK_MAC_LEN];
    mac(secret, "magpie-link mux", snonce, in + 8, n, want);
    if (CRYPTO_memcmp(want, in + 8 + MP_LINK_NONCE_LEN, MP_LINK_MAC_LEN) != 0)
        return MP_EAUTH;
    if (n < 1 || n > MP_LINK_MAX_THREADS)
        return MP_EINVAL;
    *threads = n;
    memcpy(cnonce, in + 8, MP_LINK_NONCE_LEN);
    return 0;
}

void
mp_link_ok_encode(unsigned char out[MP_LINK_OK_LEN], const char *secret,
                  const unsigned char snonce[MP_LINK_NONCE_LEN],
                  const unsigned char cnonce[MP_LINK_NONCE_LEN])
{
    memcpy(out, MAGIC_OK, 4);
    put32(out + 4, 0);
    mac(secret, "magpie-link server", cnonce, snonce, 0, out + 8);
}

int
mp_link_ok_check(const unsigned char in[MP_LINK_OK_LEN], const char *secret,
                 const unsigned char snonce[MP_LINK_NONCE_LEN],
                 const unsigned char cnonce[MP_LINK_NONCE_LEN])
{
    if (memcmp(in, MAGIC_OK, 4) != 0 || get32(in + 4) != 0)
        return MP_EINVAL;
    unsigned char want[MP_LINK_MAC_LEN];
    mac(secret, "magpie-link server", cnonce, snonce, 0, want);
    return CRYPTO_memcmp(want, in + 8, MP_LINK_MAC_LEN) == 0 ? 0 : MP_EAUTH;
}
