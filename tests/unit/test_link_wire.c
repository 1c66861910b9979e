/* The link protocol on the wire: frames encoded as the ring holds them, checked field by field
 * (every malformed case the server or the mux must refuse), pushed raw into a ring, and the
 * handshake with the right and a wrong secret. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "link/link.h"

#define MAXF 65536

static _Alignas(8) unsigned char buf[4096];

static size_t
encode(const mp_frame_out *o)
{
    size_t n = mp_link_frame_size(o);
    assert_true(n <= sizeof buf);
    memset(buf, 0xa5, sizeof buf);
    mp_link_frame_encode(buf, o);
    return n;
}

static mp_frame *
hdr(void)
{
    return (mp_frame *)(void *)buf;
}

static long
check(size_t avail, int dir, const char **why)
{
    *why = NULL;
    return mp_link_frame_check(buf, avail, MAXF, dir, why);
}

static void
test_encode_roundtrip(void **state)
{
    (void)state;
    mp_frame_out o = {.kind = MP_LF_ELEMENT,
                      .el_kind = 1,
                      .flags = MP_FF_TLS,
                      .conn = 0x0100000200000003ull,
                      .to = "bob@localhost",
                      .to_len = 13,
                      .type = "chat",
                      .type_len = 4,
                      .id = "m1",
                      .id_len = 2,
                      .payload = "<message/>",
                      .payload_len = 10,
                      .payload2 = "!",
                      .payload2_len = 1};
    size_t n = encode(&o);
    assert_int_equal(n % 8, 0);
    assert_int_equal(n, 32 + 13 + 4 + 2 + 11 + 2); /* padded to 64 */
    const char *why;
    assert_int_equal(check(n, MP_LINK_TO_CORE, &why), (long)n);
    mp_frame *f = hdr();
    assert_memory_equal(mp_frame_to(f), "bob@localhost", 13);
    assert_true(mp_frame_type_is(f, "chat"));
    assert_memory_equal(mp_frame_payload(f), "<message/>!", 11);
    /* the padding is zeroed, not left over from the buffer */
    assert_int_equal(buf[n - 1], 0);
    assert_int_equal(buf[n - 2], 0);
    /* wrong direction */
    assert_int_equal(check(n, MP_LINK_TO_MUX, &why), MP_EINVAL);
    assert_string_equal(why, "frame kind not valid in this direction");
}

static void
test_partial(void **state)
{
    (void)state;
    mp_frame_out o = {.kind = MP_LF_SEND, .conn = 1, .payload = "<a/>", .payload_len = 4};
    size_t n = encode(&o);
    const char *why;
    for (size_t i = 0; i < n; i++)
        assert_int_equal(check(i, MP_LINK_TO_MUX, &why), 0);
    assert_int_equal(check(n, MP_LINK_TO_MUX, &why), (long)n);
    /* a second frame behind the first is not part of it */
    assert_int_equal(check(n + 8, MP_LINK_TO_MUX, &why), (long)n);
}

static void
expect_bad(size_t avail, int dir, const char *reason)
{
    const char *why;
    assert_int_equal(check(avail, dir, &why), MP_EINVAL);
    assert_non_null(why);
    assert_string_equal(why, reason);
}

static void
test_malformed(void **state)
{
    (void)state;
    mp_frame_out o = {.kind = MP_LF_STREAM, .conn = 7, .to = "localhost", .to_len = 9};
    size_t n = encode(&o);

    hdr()->size = (uint32_t)n + 1;
    expect_bad(4, MP_LINK_TO_CORE, "frame size not a multiple of 8"); /* seen from 4 bytes */
    hdr()->size = 24;
    expect_bad(n, MP_LINK_TO_CORE, "frame shorter than its header");
    hdr()->size = 0;
    expect_bad(n, MP_LINK_TO_CORE, "frame shorter than its header");
    hdr()->size = MAXF + 8;
    expect_bad(4, MP_LINK_TO_CORE, "frame larger than link.max_frame");
    hdr()->size = 0xfffffff8u;
    expect_bad(4, MP_LINK_TO_CORE, "frame larger than link.max_frame");

    n = encode(&o);
    hdr()->kind = 0;
    expect_bad(32, MP_LINK_TO_CORE, "frame kind not valid in this direction");
    hdr()->kind = MP_LF_CLOSE + 1;
    expect_bad(32, MP_LINK_TO_MUX, "frame kind not valid in this direction");
    hdr()->kind = MP_LF_SEND;
    expect_bad(32, MP_LINK_TO_CORE, "frame kind not valid in this direction");
    hdr()->kind = MP_LF_STREAM;
    expect_bad(32, MP_LINK_TO_MUX, "frame kind not valid in this direction");

    n = encode(&o);
    hdr()->kind = MP_LF_ELEMENT;
    hdr()->el_kind = 4;
    expect_bad(n, MP_LINK_TO_CORE, "unknown element kind");

    n = encode(&o);
    hdr()->flags = 1 << 7;
    expect_bad(n, MP_LINK_TO_CORE, "unknown frame flags");

    n = encode(&o);
    hdr()->pad = 1;
    expect_bad(n, MP_LINK_TO_CORE, "nonzero padding field");

    /* each length lying upward, and downward past the padding */
    uint16_t *lens[] = {&hdr()->to_len, &hdr()->type_len, &hdr()->id_len, &hdr()->aux_len};
    for (int i = 0; i < 4; i++) {
        n = encode(&o);
        *lens[i] += 8;
        expect_bad(n, MP_LINK_TO_CORE, "field lengths do not match the frame size");
        n = encode(&o);
        *lens[i] = 0xffff;
        expect_bad(n, MP_LINK_TO_CORE, "field lengths do not match the frame size");
    }
    n = encode(&o);
    hdr()->to_len = 0;
    expect_bad(n, MP_LINK_TO_CORE, "field lengths do not match the frame size");
    n = encode(&o);
    hdr()->payload_len = 0xffffffffu;
    expect_bad(n, MP_LINK_TO_CORE, "field lengths do not match the frame size");
    n = encode(&o);
    hdr()->size = (uint32_t)n + 8; /* one block of padding too many */
    expect_bad(n + 8, MP_LINK_TO_CORE, "field lengths do not match the frame size");
}

static void
test_every_kind(void **state)
{
    (void)state;
    const char *why;
    for (int k = 0; k < 256; k++) {
        mp_frame_out o = {.kind = (uint8_t)k, .conn = 1};
        size_t n = encode(&o);
        int core = k == MP_LF_STREAM || k == MP_LF_ELEMENT || k == MP_LF_CLOSED;
        int mux = k >= MP_LF_SEND && k <= MP_LF_CLOSE;
        assert_int_equal(check(n, MP_LINK_TO_CORE, &why), core ? (long)n : MP_EINVAL);
        assert_int_equal(check(n, MP_LINK_TO_MUX, &why), mux ? (long)n : MP_EINVAL);
    }
}

static void
test_ring_push_raw(void **state)
{
    (void)state;
    mp_ring r;
    assert_int_equal(mp_ring_init(&r, 4096), 0);
    mp_frame_out o = {.kind = MP_LF_SEND, .conn = 42, .payload = "hello", .payload_len = 5};
    size_t n = encode(&o);
    /* more than fits: the rest waits in the overflow, in order */
    for (int i = 0; i < 200; i++) {
        hdr()->conn = (uint64_t)i;
        assert_int_equal(mp_ring_push_raw(&r, hdr()), 0);
    }
    assert_true(r.overflow.len > 0);
    uint64_t next = 0;
    while (next < 200) {
        mp_ring_flush_overflow(&r);
        size_t tail = atomic_load(&r.tail), head = atomic_load(&r.head);
        assert_true(head > tail);
        while (tail != head) {
            const mp_frame *f = (const mp_frame *)(const void *)(r.mem + (tail & (r.size - 1)));
            if (f->size == 0xffffffffu) {
                tail += r.size - (tail & (r.size - 1));
                continue;
            }
            assert_int_equal(f->size, n);
            assert_int_equal(f->conn, next);
            assert_memory_equal(mp_frame_payload(f), "hello", 5);
            next++;
            tail += f->size;
        }
        atomic_store(&r.tail, tail);
    }
    /* a frame of half the ring is refused, as by mp_ring_push */
    hdr()->size = 2048;
    assert_int_equal(mp_ring_push_raw(&r, hdr()), MP_ELIMIT);
    hdr()->size = (uint32_t)n;
    assert_int_equal(mp_ring_push_raw(&r, hdr()), 0);
    mp_ring_discard(&r);
    assert_int_equal(atomic_load(&r.head), atomic_load(&r.tail));
    assert_int_equal(r.overflow.len, 0);
    mp_ring_free(&r);
}

static void
test_handshake(void **state)
{
    (void)state;
    unsigned char sn[MP_LINK_NONCE_LEN], cn[MP_LINK_NONCE_LEN], got_sn[MP_LINK_NONCE_LEN],
        got_cn[MP_LINK_NONCE_LEN];
    memset(sn, 1, sizeof sn);
    memset(cn, 2, sizeof cn);
    unsigned char hello[MP_LINK_HELLO_LEN], auth[MP_LINK_AUTH_LEN], ok[MP_LINK_OK_LEN];
    uint32_t maxf = 0, threads = 0;
    mp_link_hello_encode(hello, 123456, sn);
    assert_int_equal(mp_link_hello_decode(hello, &maxf, got_sn), 0);
    assert_int_equal(maxf, 123456);
    assert_memory_equal(got_sn, sn, sizeof sn);
    hello[4] = 9; /* a version we do not speak */
    assert_int_equal(mp_link_hello_decode(hello, &maxf, got_sn), MP_EINVAL);

    mp_link_auth_encode(auth, "s3cret", 3, sn, cn);
    assert_int_equal(mp_link_auth_check(auth, "s3cret", sn, &threads, got_cn), 0);
    assert_int_equal(threads, 3);
    assert_memory_equal(got_cn, cn, sizeof cn);
    assert_int_equal(mp_link_auth_check(auth, "s3creT", sn, &threads, got_cn), MP_EAUTH);
    unsigned char other[MP_LINK_NONCE_LEN];
    memset(other, 3, sizeof other);
    /* a recorded answer is worth nothing against another server nonce */
    assert_int_equal(mp_link_auth_check(auth, "s3cret", other, &threads, got_cn), MP_EAUTH);
    auth[4] = 4; /* the thread count is covered by the MAC */
    assert_int_equal(mp_link_auth_check(auth, "s3cret", sn, &threads, got_cn), MP_EAUTH);
    mp_link_auth_encode(auth, "s3cret", 0, sn, cn);
    assert_int_equal(mp_link_auth_check(auth, "s3cret", sn, &threads, got_cn), MP_EINVAL);
    mp_link_auth_encode(auth, "s3cret", MP_LINK_MAX_THREADS + 1, sn, cn);
    assert_int_equal(mp_link_auth_check(auth, "s3cret", sn, &threads, got_cn), MP_EINVAL);
    memcpy(auth, "XXXX", 4);
    assert_int_equal(mp_link_auth_check(auth, "s3cret", sn, &threads, got_cn), MP_EINVAL);

    mp_link_ok_encode(ok, "s3cret", sn, cn);
    assert_int_equal(mp_link_ok_check(ok, "s3cret", sn, cn), 0);
    assert_int_equal(mp_link_ok_check(ok, "other", sn, cn), MP_EAUTH);
    assert_int_equal(mp_link_ok_check(ok, "s3cret", cn, sn), MP_EAUTH);
    /* the server's answer is not the mux's MAC replayed */
    mp_link_auth_encode(auth, "s3cret", 0, sn, cn);
    memcpy(ok + 8, auth + 8 + MP_LINK_NONCE_LEN, MP_LINK_MAC_LEN);
    assert_int_equal(mp_link_ok_check(ok, "s3cret", sn, cn), MP_EAUTH);
}

static void
test_sizes(void **state)
{
    (void)state;
    assert_int_equal(sizeof(mp_frame), 32);
    assert_int_equal(mp_link_ring_size(262144), 2u << 20);
    assert_true(mp_link_max_frame(262144) + 8 <= mp_link_ring_size(262144) / 2);
    assert_true(mp_link_max_frame(262144) >= 4 * 262144 / 2);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_roundtrip),
        cmocka_unit_test(test_partial),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_every_kind),
        cmocka_unit_test(test_ring_push_raw),
        cmocka_unit_test(test_handshake),
        cmocka_unit_test(test_sizes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
