/* Storage: one interface, several backends (sqlite/ today; postgres/, ldap/ later).
 * A backend is a small struct of function pointers. Calls are synchronous: SQLite is
 * fast enough to call inline from the core thread. */
#ifndef MP_STORAGE_STORE_H
#define MP_STORAGE_STORE_H

#include <stddef.h>
#include <stdint.h>

struct mp_config;

#define MP_SCRAM_SALT_MAX 32

/* What we keep of a password: SCRAM keys only (RFC 5802), for SHA-1 and SHA-256,
 * derived with one salt and iteration count. The password itself is never stored. */
typedef struct mp_user_cred {
    unsigned iterations;
    unsigned char salt[MP_SCRAM_SALT_MAX];
    size_t salt_len;
    unsigned char sha1_stored_key[20], sha1_server_key[20];
    unsigned char sha256_stored_key[32], sha256_server_key[32];
} mp_user_cred;

typedef struct mp_store mp_store;

typedef int (*mp_store_user_cb)(const char *node, void *ud);

typedef struct mp_store_ops {
    const char *name;
    /* 0, MP_ENOTFOUND, or MP_EIO. */
    int (*user_get)(mp_store *st, const char *domain, const char *node, mp_user_cred *out);
    /* create: 1 = fail with MP_EEXIST if present, 0 = replace credentials (MP_ENOTFOUND if absent). */
    int (*user_put)(mp_store *st, const char *domain, const char *node, const mp_user_cred *cred,
                    int create);
    int (*user_delete)(mp_store *st, const char *domain, const char *node); /* 0 / MP_ENOTFOUND */
    /* Calls cb for each account of domain in node order; stops early if cb returns nonzero. */
    int (*user_list)(mp_store *st, const char *domain, mp_store_user_cb cb, void *ud);
    void (*close)(mp_store *st);
} mp_store_ops;

struct mp_store {
    const mp_store_ops *ops;
};

/* Open the backend the config names (creating files/schema as needed). */
int mp_store_open(const struct mp_config *cfg, mp_store **out);
void mp_store_close(mp_store *st);

/* Backends. */
int mp_store_sqlite_open(const char *path, mp_store **out);

#endif
