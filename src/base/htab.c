#include "base/htab.h"
#include "base/err.h"
#include "base/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define HTAB_MIN_BUCKETS 16

static uint64_t g_k0, g_k1;
static pthread_once_t g_seed_once = PTHREAD_ONCE_INIT;

static void
seed_once(void)
{
    unsigned char key[16];
    size_t got = 0;
    while (got < sizeof key) {
        ssize_t r = getrandom(key + got, sizeof key - got, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            /* A guessable seed lets any peer flood one bucket: refuse to run without one. */
            mp_err("getrandom: %s: cannot seed the hash function", strerror(errno));
            abort();
        }
        got += (size_t)r;
    }
    memcpy(&g_k0, key, 8);
    memcpy(&g_k1, key + 8, 8);
}

void
mp_hash_seed_init(void)
{
    pthread_once(&g_seed_once, seed_once);
}

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = ROTL(v1, 13);                                                                         \
        v1 ^= v0;                                                                                  \
        v0 = ROTL(v0, 32);                                                                         \
        v2 += v3;                                                                                  \
        v3 = ROTL(v3, 16);                                                                         \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = ROTL(v3, 21);                                                                         \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = ROTL(v1, 17);                                                                         \
        v1 ^= v2;                                                                                  \
        v2 = ROTL(v2, 32);                                                                         \
    } while (0)

static inline uint64_t
load_le64(const unsigned char *p)
{
    return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24 |
           (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 | (uint64_t)p[6] << 48 |
           (uint64_t)p[7] << 56;
}

/* SipHash-1-3: one compression round and three finalization rounds, the variant Rust and
 * Python use for hash tables; strong enough against flooding, twice as fast as 2-4. */
uint64_t
mp_hash_str(const void *key, size_t len)
{
    mp_hash_seed_init();
    const unsigned char *in = key;
    uint64_t v0 = g_k0 ^ 0x736f6d6570736575ULL;
    uint64_t v1 = g_k1 ^ 0x646f72616e646f6dULL;
    uint64_t v2 = g_k0 ^ 0x6c7967656e657261ULL;
    uint64_t v3 = g_k1 ^ 0x7465646279746573ULL;
    const unsigned char *end = in + (len & ~(size_t)7);
    for (; in != end; in += 8) {
        uint64_t m = load_le64(in);
        v3 ^= m;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t b = (uint64_t)len << 56;
    switch (len & 7) {
    case 7:
        b |= (uint64_t)in[6] << 48; /* fall through */
    case 6:
        b |= (uint64_t)in[5] << 40; /* fall through */
    case 5:
        b |= (uint64_t)in[4] << 32; /* fall through */
    case 4:
        b |= (uint64_t)in[3] << 24; /* fall through */
    case 3:
        b |= (uint64_t)in[2] << 16; /* fall through */
    case 2:
        b |= (uint64_t)in[1] << 8; /* fall through */
    case 1:
        b |= (uint64_t)in[0];
        break;
    default:
        break;
    }
    v3 ^= b;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

uint64_t
mp_hash_u64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

static int
grow(mp_htab *t, size_t nb)
{
    mp_hnode **nbk = calloc(nb, sizeof *nbk);
    if (!nbk)
        return MP_ENOMEM;
    for (size_t i = 0; i < t->nbuckets; i++) {
        mp_hnode *n = t->buckets[i];
        while (n) {
            mp_hnode *next = n->next;
            mp_hnode **slot = &nbk[n->hash & (nb - 1)];
            n->next = *slot;
            *slot = n;
            n = next;
        }
    }
    free(t->buckets);
    t->buckets = nbk;
    t->nbuckets = nb;
    return 0;
}

int
mp_htab_insert(mp_htab *t, mp_hnode *n, uint64_t hash)
{
    if (!t->nbuckets && grow(t, HTAB_MIN_BUCKETS) < 0)
        return MP_ENOMEM;
    /* A failed growth only lengthens the chains; the table stays correct, so go on. */
    if (t->count + 1 > t->nbuckets && t->nbuckets <= SIZE_MAX / 2 / sizeof(mp_hnode *))
        (void)grow(t, t->nbuckets * 2);
    n->hash = hash;
    mp_hnode **slot = &t->buckets[hash & (t->nbuckets - 1)];
    n->next = *slot;
    *slot = n;
    t->count++;
    return 0;
}

void
mp_htab_remove(mp_htab *t, mp_hnode *n)
{
    if (!t->nbuckets)
        return;
    mp_hnode **pp = &t->buckets[n->hash & (t->nbuckets - 1)];
    while (*pp && *pp != n)
        pp = &(*pp)->next;
    if (!*pp)
        return; /* not in t: the caller broke the contract; leave t intact */
    *pp = n->next;
    n->next = NULL;
    t->count--;
}

void
mp_htab_free(mp_htab *t)
{
    free(t->buckets);
    t->buckets = NULL;
    t->nbuckets = 0;
    t->count = 0;
}
