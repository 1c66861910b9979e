#include "mux/iplimit.h"
#include "base/err.h"
#include "base/htab.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

typedef struct ip_entry {
    mp_hnode node;
    int count;
    int refused; /* refusals since the address was last under the limit */
    size_t len;
    unsigned char key[9]; /* family tag + 4 (IPv4) or 8 (IPv6 /64) address bytes */
} ip_entry;

struct mp_iplimit {
    pthread_mutex_t lock;
    mp_htab tab;
};

static pthread_mutex_t shared_lock = PTHREAD_MUTEX_INITIALIZER;
static mp_iplimit *shared;
static int shared_refs;

/* The key an address is counted under; 0 for families that are not counted. */
static size_t
key_of(const struct sockaddr *sa, unsigned char key[9])
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        key[0] = 4;
        memcpy(key + 1, &in->sin_addr, 4);
        return 5;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
            key[0] = 4;
            memcpy(key + 1, in6->sin6_addr.s6_addr + 12, 4);
            return 5;
        }
        key[0] = 6;
        memcpy(key + 1, in6->sin6_addr.s6_addr, 8);
        return 9;
    }
    return 0;
}

static ip_entry *
find(mp_iplimit *t, const unsigned char *key, size_t len, uint64_t h)
{
    for (mp_hnode *n = mp_htab_find(&t->tab, h); n; n = mp_htab_next_same(n->next, h)) {
        ip_entry *e = mp_container_of(n, ip_entry, node);
        if (e->len == len && memcmp(e->key, key, len) == 0)
            return e;
    }
    return NULL;
}

mp_iplimit *
mp_iplimit_new(void)
{
    mp_iplimit *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    mp_hash_seed_init();
    pthread_mutex_init(&t->lock, NULL);
    return t;
}

void
mp_iplimit_free(mp_iplimit *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->tab.nbuckets; i++) {
        mp_hnode *n = t->tab.buckets[i];
        while (n) {
            mp_hnode *next = n->next;
            free(mp_container_of(n, ip_entry, node));
            n = next;
        }
    }
    mp_htab_free(&t->tab);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

mp_iplimit *
mp_iplimit_ref(void)
{
    pthread_mutex_lock(&shared_lock);
    if (!shared)
        shared = mp_iplimit_new();
    if (shared)
        shared_refs++;
    mp_iplimit *t = shared;
    pthread_mutex_unlock(&shared_lock);
    return t;
}

void
mp_iplimit_unref(mp_iplimit *t)
{
    if (!t)
        return;
    pthread_mutex_lock(&shared_lock);
    if (t == shared && --shared_refs == 0) {
        mp_iplimit_free(shared);
        shared = NULL;
    }
    pthread_mutex_unlock(&shared_lock);
}

int
mp_iplimit_acquire(mp_iplimit *t, const struct sockaddr *addr, int max, int *first_refusal)
{
    unsigned char key[9];
    size_t len = key_of(addr, key);
    if (first_refusal)
        *first_refusal = 0;
    if (!len)
        return MP_EINVAL;
    uint64_t h = mp_hash_str(key, len);
    int rc;
    pthread_mutex_lock(&t->lock);
    ip_entry *e = find(t, key, len, h);
    if (e && max > 0 && e->count >= max) {
        if (first_refusal)
            *first_refusal = e->refused == 0;
        e->refused++;
        rc = MP_ELIMIT;
        goto out;
    }
    if (!e) {
        e = calloc(1, sizeof *e);
        if (!e || mp_htab_insert(&t->tab, &e->node, h) < 0) {
            free(e);
            rc = MP_ENOMEM;
            goto out;
        }
        memcpy(e->key, key, len);
        e->len = len;
    }
    rc = ++e->count;
out:
    pthread_mutex_unlock(&t->lock);
    return rc;
}

void
mp_iplimit_release(mp_iplimit *t, const struct sockaddr *addr)
{
    unsigned char key[9];
    size_t len = key_of(addr, key);
    if (!len)
        return;
    uint64_t h = mp_hash_str(key, len);
    pthread_mutex_lock(&t->lock);
    ip_entry *e = find(t, key, len, h);
    if (e) {
        e->refused = 0;
        if (--e->count <= 0) {
            /* An address with no connection takes no memory: a scan of many addresses
             * leaves nothing behind. */
            mp_htab_remove(&t->tab, &e->node);
            free(e);
        }
    }
    pthread_mutex_unlock(&t->lock);
}

int
mp_iplimit_count(mp_iplimit *t, const struct sockaddr *addr)
{
    unsigned char key[9];
    size_t len = key_of(addr, key);
    if (!len)
        return 0;
    uint64_t h = mp_hash_str(key, len);
    pthread_mutex_lock(&t->lock);
    ip_entry *e = find(t, key, len, h);
    int n = e ? e->count : 0;
    pthread_mutex_unlock(&t->lock);
    return n;
}
