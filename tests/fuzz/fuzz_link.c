/* libFuzzer target for the link frame decoder: what a server reads from a multiplexor (and a
 * multiplexor from a server) over TCP, checked as the readers in src/link/server.c and
 * src/link/uplink.c check it.
 *
 * The first byte picks the direction and whether the rest starts with a handshake message;
 * the rest is the byte stream. Checked: a frame the decoder accepts lies wholly inside the
 * bytes given, its size is a multiple of 8 within the limit, its fields fit inside it (every
 * byte of them is read, so ASan sees any overrun), its kind is one of the direction's; a
 * refusal always comes with a reason; the handshake checks never accept a wrong secret. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "link/link.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_FRAME 65536

static unsigned
touch(const char *p, size_t n)
{
    unsigned h = 0;
    for (size_t i = 0; i < n; i++)
        h = h * 31 + (unsigned char)p[i];
    return h;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int dir = data[0] & 1 ? MP_LINK_TO_MUX : MP_LINK_TO_CORE;
    int hs = (data[0] & 2) != 0;
    data++;
    size--;
    if (hs && size >= MP_LINK_AUTH_LEN) {
        static const unsigned char sn[MP_LINK_NONCE_LEN];
        unsigned char cn[MP_LINK_NONCE_LEN];
        uint32_t threads = 0, maxf = 0;
        /* No input that does not carry the MAC for this secret and nonce may pass. */
        int rc = mp_link_auth_check(data, "fuzz-secret", sn, &threads, cn);
        if (rc == 0) {
            unsigned char want[MP_LINK_AUTH_LEN];
            mp_link_auth_encode(want, "fuzz-secret", threads, sn, cn);
            if (memcmp(want, data, sizeof want) != 0 || threads < 1 ||
                threads > MP_LINK_MAX_THREADS)
                abort();
        }
        if (mp_link_ok_check(data, "fuzz-secret", sn, sn) == 0) {
            unsigned char want[MP_LINK_OK_LEN];
            mp_link_ok_encode(want, "fuzz-secret", sn, sn);
            if (memcmp(want, data, sizeof want) != 0)
                abort();
        }
        (void)mp_link_hello_decode(data, &maxf, cn);
        data += MP_LINK_AUTH_LEN;
        size -= MP_LINK_AUTH_LEN;
    }
    /* The readers hand frames on in place: an 8-aligned buffer, exactly as long as the input
     * so that ASan catches a read past what arrived. */
    char *buf = aligned_alloc(8, (size + 7) & ~(size_t)7);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    size_t off = 0;
    volatile unsigned sink = 0;
    for (;;) {
        const char *why = NULL;
        long n = mp_link_frame_check(buf + off, size - off, MAX_FRAME, dir, &why);
        if (n == 0)
            break;
        if (n < 0) {
            if (n != MP_EINVAL || !why)
                abort();
            break;
        }
        const mp_frame *f = (const mp_frame *)(const void *)(buf + off);
        if ((size_t)n > size - off || n % 8 || n < (long)sizeof *f || n > MAX_FRAME ||
            f->size != (uint32_t)n)
            abort();
        int ok = dir == MP_LINK_TO_CORE ? f->kind >= MP_LF_STREAM && f->kind <= MP_LF_CLOSED
                                        : f->kind >= MP_LF_SEND && f->kind <= MP_LF_CLOSE;
        if (!ok)
            abort();
        const char *end = mp_frame_payload(f) + f->payload_len;
        if (end > buf + off + n || end + 8 <= buf + off + n)
            abort();
        sink += touch(mp_frame_to(f), f->to_len) + touch(mp_frame_type(f), f->type_len) +
                touch(mp_frame_id(f), f->id_len) + touch(mp_frame_aux(f), f->aux_len) +
                touch(mp_frame_payload(f), f->payload_len);
        off += (size_t)n;
    }
    (void)sink;
    free(buf);
    return 0;
}
