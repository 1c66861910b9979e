/* mkusers: create many benchmark accounts in one process, through the same code path as
 * "magpiectl user add" (mp_account_create: SCRAM keys with the configured iteration count,
 * random salt per user, stored by the configured backend). Spawning magpiectl once per user
 * costs a process start and a fresh storage open per account; this does not.
 *
 *   mkusers CONFIG PREFIX FIRST LAST PASSWORD [CONTACTS RING]
 *
 * creates PREFIX<i>@<first host> for i = FIRST..LAST. With CONTACTS (K) and RING (R) it also
 * writes the benchmark's ring rosters (shared/bench README, provision/gen.py): user i of 1..R
 * gets the users i+-1 .. i+-K/2 (mod R) with subscription both, through the store's
 * roster_put, i.e. the rows the server itself writes; users above R get no roster. K is made
 * even and below R exactly as gen.py does. Run it while magpied is stopped.
 * Build: see bench/Makefile (links build/libmagpie.a). */
#include "auth/accounts.h"
#include "base/config.h"
#include "base/err.h"
#include "router/subscription.h"
#include "storage/store.h"
#include "xmpp/jid.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int
parse_uint(const char *s, unsigned long *out)
{
    char *end;

    *out = strtoul(s, &end, 10);
    return *s && !*end ? 0 : -1;
}

/* gen.py's K: even, and at most the largest even number below R (a contact appears once). */
static unsigned long
ring_k(unsigned long k, unsigned long ring)
{
    if (k % 2 || k >= ring) {
        unsigned long top = ring ? (ring - 1) - ((ring - 1) % 2) : 0;
        k -= k % 2;
        k = k < top ? k : top;
    }
    return k;
}

static int
count_item(const mp_roster_item *item, void *ud)
{
    (void)item;
    ++*(unsigned long *)ud;
    return 0;
}

/* Prepare PREFIX<i>@host the way the server does, so that the rows match its lookups. */
static int
prep_user(const char *prefix, unsigned long i, const char *host, mp_jid *j, char *bare, size_t cap)
{
    char raw[1100];
    int n = snprintf(raw, sizeof raw, "%s%lu@%s", prefix, i, host);

    if (n < 0 || (size_t)n >= sizeof raw || mp_jid_prep(raw, (size_t)n, j) < 0 || j->node_len == 0)
        return MP_EINVAL;
    return mp_jid_bare(j, bare, cap) < 0 ? MP_ELIMIT : 0;
}

/* The ring roster of user i (1-based) among users 1..ring, K/2 neighbours on each side. */
static int
put_ring_roster(mp_store *st, const char *prefix, const char *host, unsigned long i,
                unsigned long ring, unsigned long k)
{
    static mp_jid owner, contact; /* 3 KiB each: not on the stack */
    char owner_bare[2100], bare[2100];
    int rc;

    if ((rc = prep_user(prefix, i, host, &owner, owner_bare, sizeof owner_bare)) < 0)
        return rc;
    /* ring_k keeps K below R, so d + d' < R: no neighbour repeats and none is i itself. */
    for (unsigned long d = 1; d <= k / 2; d++) {
        unsigned long z = i - 1; /* 0-based, as gen.py */
        unsigned long js[2] = {(z + d) % ring, (z + ring - d) % ring};
        for (int s = 0; s < 2; s++) {
            unsigned long j = js[s];
            if ((rc = prep_user(prefix, j + 1, host, &contact, bare, sizeof bare)) < 0)
                return rc;
            mp_roster_item it = {.jid = bare, .state = MP_SUB_BOTH};
            if ((rc = st->ops->roster_put(st, owner.domain, owner.node, &it, NULL)) < 0) {
                fprintf(stderr, "mkusers: roster of %s: %s: error %d\n", owner_bare, bare, rc);
                return rc;
            }
        }
    }
    return 0;
}

int
main(int argc, char **argv)
{
    mp_config cfg;
    mp_store *st;
    char err[512], jid[1100];
    unsigned long first, last, k = 0, ring = 0;
    int rc = 1;

    if ((argc != 6 && argc != 8) || parse_uint(argv[3], &first) < 0 ||
        parse_uint(argv[4], &last) < 0 || first > last ||
        (argc == 8 && (parse_uint(argv[6], &k) < 0 || parse_uint(argv[7], &ring) < 0))) {
        fputs("usage: mkusers CONFIG PREFIX FIRST LAST PASSWORD [CONTACTS RING]\n", stderr);
        return 2;
    }
    if (ring > last)
        ring = last;
    k = ring_k(k, ring);
    if (mp_config_load(argv[1], &cfg, err, sizeof err) < 0) {
        fprintf(stderr, "mkusers: %s\n", err);
        return 1;
    }
    if (mp_store_open(&cfg, &st) < 0) {
        fputs("mkusers: cannot open the storage\n", stderr);
        goto out_cfg;
    }
    for (unsigned long i = first; i <= last; i++) {
        snprintf(jid, sizeof jid, "%s%lu@%s", argv[2], i, cfg.hosts[0]);
        int e = mp_account_create(st, &cfg, jid, argv[5]);
        if (e < 0) {
            fprintf(stderr, "mkusers: %s: error %d\n", jid, e);
            goto out_store;
        }
    }
    /* Owners must exist first (the roster rows belong to an account). */
    for (unsigned long i = first < 1 ? 1 : first; k > 0 && i <= ring; i++) {
        if (put_ring_roster(st, argv[2], cfg.hosts[0], i, ring, k) < 0)
            goto out_store;
    }
    if (k > 0 && first <= 1) {
        /* Read one roster back through the server's own call: a wrong key would show here
         * rather than as "0 roster items" in the benchmark table. */
        static mp_jid j;
        unsigned long n = 0;
        if (prep_user(argv[2], 1, cfg.hosts[0], &j, jid, sizeof jid) < 0 ||
            st->ops->roster_list(st, j.domain, j.node, count_item, &n, NULL) < 0 || n != k) {
            fprintf(stderr, "mkusers: %s has %lu roster items, expected %lu\n", jid, n, k);
            goto out_store;
        }
    }
    rc = 0;
out_store:
    mp_store_close(st);
out_cfg:
    mp_config_free(&cfg);
    return rc;
}
