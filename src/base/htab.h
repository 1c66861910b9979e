/* Intrusive chained hash table. The caller embeds an mp_hnode in its struct, computes the
 * hash (mp_hash_str for attacker-influenced keys: seeded SipHash; mp_hash_u64 for ids the
 * server chose) and compares keys itself while walking a bucket. */
#ifndef MP_BASE_HTAB_H
#define MP_BASE_HTAB_H

#include <stddef.h>
#include <stdint.h>

typedef struct mp_hnode {
    struct mp_hnode *next;
    uint64_t hash;
} mp_hnode;

typedef struct mp_htab {
    mp_hnode **buckets;
    size_t nbuckets; /* power of two, 0 until the first insert */
    size_t count;
} mp_htab;

/* Seed the string hash from the OS random source once at start (thread-safe, idempotent). */
void mp_hash_seed_init(void);
uint64_t mp_hash_str(const void *key, size_t len); /* SipHash-1-3 with the process seed */
uint64_t mp_hash_u64(uint64_t x);                  /* splitmix64 finalizer */

int mp_htab_insert(mp_htab *t, mp_hnode *n, uint64_t hash); /* 0 or MP_ENOMEM (grows x2 at load 1) */
void mp_htab_remove(mp_htab *t, mp_hnode *n);               /* n must be in t */
void mp_htab_free(mp_htab *t);                              /* frees buckets only */

/* First node of hash's bucket whose hash equals hash; then mp_htab_next_same. */
static inline mp_hnode *
mp_htab_next_same(mp_hnode *n, uint64_t hash)
{
    while (n && n->hash != hash)
        n = n->next;
    return n;
}

static inline mp_hnode *
mp_htab_find(const mp_htab *t, uint64_t hash)
{
    if (!t->nbuckets)
        return NULL;
    return mp_htab_next_same(t->buckets[hash & (t->nbuckets - 1)], hash);
}

/* Iterate every node: for (i = 0; i < t->nbuckets; i++) for (n = t->buckets[i]; n; n = n->next).
 * Removing the current node while iterating is allowed if next was read first. */

#define mp_container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

#endif
