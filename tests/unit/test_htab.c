/* Intrusive hash table: growth, lookup through forced collisions, removal in every position,
 * removal while iterating, and the two hash functions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/err.h"
#include "base/htab.h"

typedef struct item {
    mp_hnode node;
    int key;
} item;

#define NKEYS 100000

static item *
find(const mp_htab *t, uint64_t h, int key)
{
    for (mp_hnode *n = mp_htab_find(t, h); n; n = mp_htab_next_same(n->next, h)) {
        item *it = mp_container_of(n, item, node);
        if (it->key == key)
            return it;
    }
    return NULL;
}

static size_t
count_nodes(const mp_htab *t)
{
    size_t c = 0;
    for (size_t i = 0; i < t->nbuckets; i++)
        for (mp_hnode *n = t->buckets[i]; n; n = n->next)
            c++;
    return c;
}

/* hash_of chooses how many distinct hashes the keys share. */
static void
run_keys(uint64_t (*hash_of)(int))
{
    mp_htab t = {0};
    item *items = calloc(NKEYS, sizeof *items);
    assert_non_null(items);
    assert_null(mp_htab_find(&t, 42));

    for (int i = 0; i < NKEYS; i++) {
        items[i].key = i;
        assert_int_equal(mp_htab_insert(&t, &items[i].node, hash_of(i)), 0);
        /* load factor stays at most 1, bucket count a power of two */
        assert_true(t.count <= t.nbuckets);
        assert_int_equal(t.nbuckets & (t.nbuckets - 1), 0);
    }
    assert_int_equal(t.count, NKEYS);
    assert_true(t.nbuckets >= NKEYS && t.nbuckets <= 2 * (size_t)NKEYS);
    assert_int_equal(count_nodes(&t), NKEYS);
    for (int i = 0; i < NKEYS; i++)
        assert_ptr_equal(find(&t, hash_of(i), i), &items[i]);
    assert_null(find(&t, hash_of(NKEYS + 7), NKEYS + 7));

    /* remove every odd key */
    for (int i = 1; i < NKEYS; i += 2)
        mp_htab_remove(&t, &items[i].node);
    assert_int_equal(t.count, NKEYS / 2);
    assert_int_equal(count_nodes(&t), NKEYS / 2);
    for (int i = 0; i < NKEYS; i++) {
        if (i % 2)
            assert_null(find(&t, hash_of(i), i));
        else
            assert_ptr_equal(find(&t, hash_of(i), i), &items[i]);
    }

    /* re-insert them: no stale links left behind */
    for (int i = 1; i < NKEYS; i += 2)
        assert_int_equal(mp_htab_insert(&t, &items[i].node, hash_of(i)), 0);
    for (int i = 0; i < NKEYS; i++)
        assert_ptr_equal(find(&t, hash_of(i), i), &items[i]);

    mp_htab_free(&t);
    assert_null(t.buckets);
    assert_int_equal(t.nbuckets, 0);
    assert_int_equal(t.count, 0);
    free(items);
}

static uint64_t
hash_distinct(int k)
{
    return mp_hash_u64((uint64_t)k);
}

static uint64_t
hash_groups(int k)
{
    return mp_hash_u64((uint64_t)(k % 1000)); /* 100 keys per hash */
}

static void
test_distinct_hashes(void **state)
{
    run_keys(hash_distinct);
}

static void
test_colliding_hashes(void **state)
{
    run_keys(hash_groups);
}

/* Every key with the same hash: one chain, removal from head, middle and tail. */
static void
test_one_chain(void **state)
{
    enum { N = 3000 };
    mp_htab t = {0};
    static item items[N];
    const uint64_t h = 0xdeadbeef;
    for (int i = 0; i < N; i++) {
        items[i].key = i;
        assert_int_equal(mp_htab_insert(&t, &items[i].node, h), 0);
    }
    size_t chain = 0;
    for (mp_hnode *n = mp_htab_find(&t, h); n; n = mp_htab_next_same(n->next, h))
        chain++;
    assert_int_equal(chain, N);
    /* a hash in the same bucket but different value is not matched */
    uint64_t other = h + t.nbuckets;
    assert_null(mp_htab_find(&t, other));

    mp_htab_remove(&t, &items[N - 1].node); /* inserted last: chain head */
    mp_htab_remove(&t, &items[0].node);     /* inserted first: chain tail */
    mp_htab_remove(&t, &items[N / 2].node); /* middle */
    assert_int_equal(t.count, N - 3);
    assert_null(find(&t, h, N - 1));
    assert_null(find(&t, h, 0));
    assert_null(find(&t, h, N / 2));
    assert_ptr_equal(find(&t, h, 1), &items[1]);
    assert_ptr_equal(find(&t, h, N - 2), &items[N - 2]);
    for (int i = 1; i < N - 1; i++)
        if (i != N / 2)
            mp_htab_remove(&t, &items[i].node);
    assert_int_equal(t.count, 0);
    assert_null(mp_htab_find(&t, h));
    mp_htab_free(&t);
}

static void
test_remove_while_iterating(void **state)
{
    enum { N = 1000 };
    mp_htab t = {0};
    static item items[N];
    for (int i = 0; i < N; i++) {
        items[i].key = i;
        assert_int_equal(mp_htab_insert(&t, &items[i].node, mp_hash_u64((uint64_t)i % 37)), 0);
    }
    int seen = 0;
    for (size_t i = 0; i < t.nbuckets; i++) {
        mp_hnode *next;
        for (mp_hnode *n = t.buckets[i]; n; n = next) {
            next = n->next;
            if (mp_container_of(n, item, node)->key % 3 == 0)
                mp_htab_remove(&t, n);
            seen++;
        }
    }
    assert_int_equal(seen, N);
    assert_int_equal(t.count, N - (N + 2) / 3);
    assert_int_equal(count_nodes(&t), t.count);
    mp_htab_free(&t);
}

static void
test_hash_str(void **state)
{
    mp_hash_seed_init();
    mp_hash_seed_init(); /* idempotent */
    const char *a = "juliet@capulet.lit";
    uint64_t h1 = mp_hash_str(a, strlen(a));
    assert_int_equal(h1, mp_hash_str(a, strlen(a)));
    assert_int_not_equal(h1, mp_hash_str("romeo@montague.lit", 18));
    /* the length is part of the hash: trailing NULs and prefixes differ */
    assert_int_not_equal(mp_hash_str("a", 1), mp_hash_str("a\0", 2));
    assert_int_not_equal(mp_hash_str("", 0), mp_hash_str("\0", 1));
    assert_int_not_equal(mp_hash_str("abcdefgh", 8), mp_hash_str("abcdefghi", 9));

    /* all lengths around the 8-byte block boundary: distinct and stable */
    char buf[40];
    uint64_t hs[sizeof buf];
    memset(buf, 'x', sizeof buf);
    for (size_t n = 0; n < sizeof buf; n++) {
        hs[n] = mp_hash_str(buf, n);
        for (size_t m = 0; m < n; m++)
            assert_int_not_equal(hs[n], hs[m]);
    }
    for (size_t n = 0; n < sizeof buf; n++)
        assert_int_equal(hs[n], mp_hash_str(buf, n));

    /* a single flipped bit anywhere changes the hash */
    for (size_t i = 0; i < 24; i++) {
        buf[i] ^= 1;
        assert_int_not_equal(mp_hash_str(buf, 24), hs[24]);
        buf[i] ^= 1;
    }
}

static void
test_hash_u64(void **state)
{
    /* splitmix64 finalizer reference values */
    assert_int_equal(mp_hash_u64(0), 0);
    assert_int_equal(mp_hash_u64(1), 0x5692161d100b05e5ULL);
    assert_int_equal(mp_hash_u64(0x9e3779b97f4a7c15ULL), 0xe220a8397b1dcdafULL);
    /* consecutive ids spread over the low bits the buckets use */
    int low[16] = {0};
    for (uint64_t i = 0; i < 1600; i++)
        low[mp_hash_u64(i) & 15]++;
    for (int i = 0; i < 16; i++)
        assert_true(low[i] > 50 && low[i] < 150);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_distinct_hashes), cmocka_unit_test(test_colliding_hashes),
        cmocka_unit_test(test_one_chain),       cmocka_unit_test(test_remove_while_iterating),
        cmocka_unit_test(test_hash_str),        cmocka_unit_test(test_hash_u64),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
