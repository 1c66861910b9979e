/* XEP-0198 acknowledgement queue: acks in any batch size, the 2^32 wrap, h too high or going
 * back, the stanza and byte caps, and the bytes kept intact through compaction. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/err.h"
#include "router/sm.h"

typedef struct collect {
    char seen[64][64];
    int n;
} collect;

static int
collect_cb(const char *bytes, size_t len, void *ud)
{
    collect *c = ud;
    assert_true(c->n < 64 && len < 64);
    memcpy(c->seen[c->n], bytes, len);
    c->seen[c->n][len] = '\0';
    c->n++;
    return 0;
}

static void
push_n(mp_sm_queue *q, int from, int n)
{
    for (int i = from; i < from + n; i++) {
        char s[64];
        int len = snprintf(s, sizeof s, "<message id='%d'/>", i);
        assert_int_equal(mp_sm_push(q, s, (size_t)len), 0);
    }
}

/* The queue holds exactly stanzas [first, first + n) in order. */
static void
assert_holds(const mp_sm_queue *q, int first, int n)
{
    collect c = {.n = 0};
    assert_int_equal(mp_sm_foreach(q, collect_cb, &c), 0);
    assert_int_equal(c.n, n);
    assert_int_equal(mp_sm_unacked(q), (size_t)n);
    for (int i = 0; i < n; i++) {
        char want[64];
        snprintf(want, sizeof want, "<message id='%d'/>", first + i);
        assert_string_equal(c.seen[i], want);
    }
}

static void
test_ack_batches(void **state)
{
    (void)state;
    mp_sm_queue q;
    mp_sm_init(&q, 0, 0);
    push_n(&q, 0, 10);
    assert_holds(&q, 0, 10);
    assert_int_equal(mp_sm_ack(&q, 0), 0); /* nothing new: fine */
    assert_holds(&q, 0, 10);
    assert_int_equal(mp_sm_ack(&q, 3), 0);
    assert_holds(&q, 3, 7);
    assert_int_equal(mp_sm_ack(&q, 3), 0); /* the same h again is no error */
    push_n(&q, 10, 5);
    assert_holds(&q, 3, 12);
    assert_int_equal(mp_sm_ack(&q, 15), 0);
    assert_holds(&q, 0, 0);
    assert_int_equal(mp_sm_unacked_bytes(&q), 0);
    mp_sm_free(&q);
}

static void
test_too_high_and_backwards(void **state)
{
    (void)state;
    mp_sm_queue q;
    mp_sm_init(&q, 0, 0);
    push_n(&q, 0, 4);
    assert_int_equal(mp_sm_ack(&q, 5), MP_EINVAL);
    assert_holds(&q, 0, 4); /* refused: nothing dropped */
    assert_int_equal(mp_sm_ack(&q, 2), 0);
    assert_int_equal(mp_sm_ack(&q, 1), MP_EINVAL); /* going back */
    assert_holds(&q, 2, 2);
    assert_int_equal(mp_sm_ack(&q, 4), 0);
    assert_int_equal(mp_sm_ack(&q, 5), MP_EINVAL);
    mp_sm_free(&q);
}

static void
test_wrap(void **state)
{
    (void)state;
    mp_sm_queue q;
    mp_sm_init(&q, 0, 0);
    /* A session that has already exchanged 2^32 - 3 stanzas. */
    q.sent = q.acked = UINT32_MAX - 2;
    push_n(&q, 0, 6); /* sent wraps to 3 */
    assert_int_equal(q.sent, 3);
    assert_int_equal(mp_sm_ack(&q, UINT32_MAX), 0); /* 2 acknowledged */
    assert_holds(&q, 2, 4);
    assert_int_equal(mp_sm_ack(&q, 4), MP_EINVAL);
    assert_int_equal(mp_sm_ack(&q, 1), 0); /* across the wrap */
    assert_holds(&q, 4, 2);
    assert_int_equal(mp_sm_ack(&q, UINT32_MAX), MP_EINVAL); /* behind */
    assert_int_equal(mp_sm_ack(&q, 3), 0);
    assert_holds(&q, 0, 0);
    mp_sm_free(&q);
}

static void
test_caps(void **state)
{
    (void)state;
    mp_sm_queue q;
    mp_sm_init(&q, 3, 0);
    push_n(&q, 0, 3);
    assert_int_equal(mp_sm_push(&q, "<x/>", 4), MP_ELIMIT);
    assert_int_equal(q.sent, 3); /* the refused one is not counted */
    assert_int_equal(mp_sm_ack(&q, 1), 0);
    assert_int_equal(mp_sm_push(&q, "<x/>", 4), 0);
    mp_sm_free(&q);

    mp_sm_init(&q, 0, 10);
    assert_int_equal(mp_sm_push(&q, "0123456789", 10), 0);
    assert_int_equal(mp_sm_push(&q, "a", 1), MP_ELIMIT);
    assert_int_equal(mp_sm_ack(&q, 1), 0);
    assert_int_equal(mp_sm_push(&q, "0123456789", 10), 0);
    mp_sm_free(&q);
}

/* Long-running session with a bounded backlog: memory stays bounded and the content right
 * while the buffers compact again and again. */
static void
test_steady_state(void **state)
{
    (void)state;
    mp_sm_queue q;
    mp_sm_init(&q, 0, 0);
    int next = 0, first = 0;
    for (int round = 0; round < 2000; round++) {
        int n = 1 + round % 7;
        push_n(&q, next, n);
        next += n;
        int keep = round % 5;
        if (next - first > keep) {
            first = next - keep;
            assert_int_equal(mp_sm_ack(&q, (uint32_t)first), 0);
        }
    }
    assert_holds(&q, first, next - first);
    assert_true(q.cap <= 4096);
    assert_true(q.lcap <= 64);
    mp_sm_free(&q);
}

static void
test_parse_h(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        int rc;
        uint32_t v;
    } cases[] = {
        {"0", 0, 0},
        {"42", 0, 42},
        {"4294967295", 0, UINT32_MAX},
        {"4294967296", MP_EINVAL, 0},
        {"99999999999", MP_EINVAL, 0},
        {"", MP_EINVAL, 0},
        {"-1", MP_EINVAL, 0},
        {"1 ", MP_EINVAL, 0},
        {"0x10", MP_EINVAL, 0},
        {"+5", MP_EINVAL, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint32_t v = 7;
        int rc = mp_sm_parse_h(cases[i].s, strlen(cases[i].s), &v);
        assert_int_equal(rc, cases[i].rc);
        if (rc == 0)
            assert_int_equal(v, cases[i].v);
    }
    uint32_t v;
    assert_int_equal(mp_sm_parse_h(NULL, 0, &v), MP_EINVAL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ack_batches),  cmocka_unit_test(test_too_high_and_backwards),
        cmocka_unit_test(test_wrap),         cmocka_unit_test(test_caps),
        cmocka_unit_test(test_steady_state), cmocka_unit_test(test_parse_h),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
