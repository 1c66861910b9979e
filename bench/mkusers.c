/* mkusers: create many benchmark accounts in one process, through the same code path as
 * "magpiectl user add" (mp_account_create: SCRAM keys with the configured iteration count,
 * random salt per user, stored by the configured backend). Spawning magpiectl once per user
 * costs a process start and a fresh storage open per account; this does not.
 *
 *   mkusers CONFIG PREFIX FIRST LAST PASSWORD
 *
 * creates PREFIX<i>@<first host> for i = FIRST..LAST. Run it while magpied is stopped.
 * Build: see bench/Makefile (links build/libmagpie.a). */
#include "auth/accounts.h"
#include "base/config.h"
#include "base/err.h"
#include "storage/store.h"

#include <stdio.h>
#include <stdlib.h>

static int
parse_uint(const char *s, unsigned long *out)
{
    char *end;

    *out = strtoul(s, &end, 10);
    return *s && !*end ? 0 : -1;
}

int
main(int argc, char **argv)
{
    mp_config cfg;
    mp_store *st;
    char err[512], jid[1100];
    unsigned long first, last;
    int rc = 1;

    if (argc != 6 || parse_uint(argv[3], &first) < 0 || parse_uint(argv[4], &last) < 0 ||
        first > last) {
        fputs("usage: mkusers CONFIG PREFIX FIRST LAST PASSWORD\n", stderr);
        return 2;
    }
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
    rc = 0;
out_store:
    mp_store_close(st);
out_cfg:
    mp_config_free(&cfg);
    return rc;
}
