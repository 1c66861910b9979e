/* Bump arena: alignment, no overlap, big requests, reset and reuse, accounting; leaks are
 * caught by ASan at exit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/arena.h"

static void
test_alignment_and_overlap(void **state)
{
    mp_arena a;
    mp_arena_init(&a, 1024);
    enum { N = 500 };
    unsigned char *p[N];
    size_t len[N];
    for (int i = 0; i < N; i++) {
        len[i] = (size_t)(i % 97) + 1;
        p[i] = mp_arena_alloc(&a, len[i]);
        assert_non_null(p[i]);
        assert_int_equal((uintptr_t)p[i] % 16, 0);
        memset(p[i], i & 0xff, len[i]);
    }
    for (int i = 0; i < N; i++)
        for (size_t j = 0; j < len[i]; j++)
            assert_int_equal(p[i][j], i & 0xff);
    assert_true(a.total >= N * 16);
    mp_arena_free(&a);
    assert_int_equal(a.total, 0);
    assert_null(a.head);
}

static void
test_zero_and_huge(void **state)
{
    mp_arena a;
    mp_arena_init(&a, 0); /* default block size */
    assert_true(a.block_size > 0);
    void *x = mp_arena_alloc(&a, 0), *y = mp_arena_alloc(&a, 0);
    assert_non_null(x);
    assert_non_null(y);
    assert_ptr_not_equal(x, y);
    assert_null(mp_arena_alloc(&a, SIZE_MAX));
    assert_null(mp_arena_alloc(&a, SIZE_MAX - 8));
    mp_arena_free(&a);
}

static void
test_big_allocation(void **state)
{
    mp_arena a;
    mp_arena_init(&a, 512);
    char *small = mp_arena_alloc(&a, 16);
    assert_non_null(small);
    size_t one_block = a.total;

    char *big = mp_arena_alloc(&a, 100000);
    assert_non_null(big);
    assert_int_equal((uintptr_t)big % 16, 0);
    memset(big, 'b', 100000);
    assert_true(a.total >= one_block + 100000);
    size_t with_big = a.total;

    /* the current block keeps serving small requests: no new system memory */
    char *small2 = mp_arena_alloc(&a, 16);
    assert_non_null(small2);
    assert_int_equal(a.total, with_big);
    assert_ptr_equal(small2, small + 16);

    /* reset frees the big block, keeps the first one and rewinds it */
    mp_arena_reset(&a);
    assert_int_equal(a.total, one_block);
    assert_ptr_equal(mp_arena_alloc(&a, 16), small);
    mp_arena_free(&a);
}

static void
test_reset_and_reuse(void **state)
{
    mp_arena a;
    mp_arena_init(&a, 256);
    char *first = mp_arena_alloc(&a, 32);
    assert_non_null(first);
    size_t one_block = a.total;
    for (int round = 0; round < 100; round++) {
        /* many blocks' worth per round */
        for (int i = 0; i < 200; i++) {
            char *p = mp_arena_alloc(&a, 40);
            assert_non_null(p);
            memset(p, 'x', 40);
        }
        assert_true(a.total > one_block);
        mp_arena_reset(&a);
        assert_int_equal(a.total, one_block);
        char *again = mp_arena_alloc(&a, 32);
        assert_ptr_equal(again, first);
    }
    /* reset of an empty arena and double reset are harmless */
    mp_arena_reset(&a);
    mp_arena_reset(&a);
    mp_arena_free(&a);
    mp_arena_reset(&a);
    assert_int_equal(a.total, 0);
    /* usable again after free */
    assert_non_null(mp_arena_alloc(&a, 10));
    mp_arena_free(&a);
}

static void
test_big_first_block_not_kept(void **state)
{
    mp_arena a;
    mp_arena_init(&a, 256);
    assert_non_null(mp_arena_alloc(&a, 1 << 20));
    assert_true(a.total >= 1 << 20);
    mp_arena_reset(&a);
    assert_int_equal(a.total, 0); /* one huge stanza does not pin a megabyte */
    assert_non_null(mp_arena_alloc(&a, 8));
    assert_true(a.total < 1024);
    mp_arena_free(&a);
}

static void
test_strndup(void **state)
{
    mp_arena a;
    mp_arena_init(&a, 256);
    char *s = mp_arena_strndup(&a, "hello world", 5);
    assert_string_equal(s, "hello");
    s = mp_arena_strndup(&a, "hi", 100); /* stops at the NUL, like strndup */
    assert_string_equal(s, "hi");
    s = mp_arena_strndup(&a, "", 0);
    assert_string_equal(s, "");
    char big[1000];
    memset(big, 'q', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    s = mp_arena_strndup(&a, big, SIZE_MAX);
    assert_string_equal(s, big);
    mp_arena_free(&a);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alignment_and_overlap),    cmocka_unit_test(test_zero_and_huge),
        cmocka_unit_test(test_big_allocation),           cmocka_unit_test(test_reset_and_reuse),
        cmocka_unit_test(test_big_first_block_not_kept), cmocka_unit_test(test_strndup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
