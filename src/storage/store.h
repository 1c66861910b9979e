/* Storage: one interface, several backends (sqlite/ today; postgres/, ldap/ later).
 * A backend is a small struct of function pointers. Calls are synchronous: SQLite is
 * fast enough to call inline from the core thread. */
#ifndef MP_STORAGE_STORE_H
#define MP_STORAGE_STORE_H

#include <stddef.h>
#include <stdint.h>

struct mp_config;
struct mp_buf;

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

/* Roster items (RFC 6121 §2). The subscription state is one of mp_sub_state (see
 * src/router/subscription.h): the subscription bits plus pending-in/pending-out. */
typedef struct mp_roster_item {
    const char *jid;  /* contact's bare JID, prepared */
    const char *name; /* NULL when none */
    int state;        /* MP_SUB_* bits */
    const char *const *groups;
    size_t ngroups;
} mp_roster_item;

/* Called per item; the item is valid during the call only. Nonzero stops. */
typedef int (*mp_store_roster_cb)(const mp_roster_item *item, void *ud);
/* Called per stored offline message, oldest first: the stanza bytes and when it was stored
 * (unix seconds). Nonzero stops. */
typedef int (*mp_store_offline_cb)(const char *stanza, size_t len, int64_t stamp, void *ud);

typedef int (*mp_store_user_cb)(const char *node, void *ud);

typedef struct mp_store_ops {
    const char *name;
    /* 0, MP_ENOTFOUND, or MP_EIO. */
    int (*user_get)(mp_store *st, const char *domain, const char *node, mp_user_cred *out);
    /* create: 1 = fail with MP_EEXIST if present, 0 = replace credentials (MP_ENOTFOUND if absent). */
    int (*user_put)(mp_store *st, const char *domain, const char *node, const mp_user_cred *cred,
                    int create);
    /* 0 / MP_ENOTFOUND; also deletes the account's roster, offline queue and documents. */
    int (*user_delete)(mp_store *st, const char *domain, const char *node);
    /* Calls cb for each account of domain in node order; stops early if cb returns nonzero. */
    int (*user_list)(mp_store *st, const char *domain, mp_store_user_cb cb, void *ud);
    /* Roster of node@domain in JID order; *version (may be NULL) gets the roster version,
     * a counter bumped by every change (0 for an empty, never changed roster). */
    int (*roster_list)(mp_store *st, const char *domain, const char *node, mp_store_roster_cb cb,
                       void *ud, uint64_t *version);
    /* One item: 0 (cb called once) or MP_ENOTFOUND. */
    int (*roster_get)(mp_store *st, const char *domain, const char *node, const char *jid,
                      mp_store_roster_cb cb, void *ud);
    /* Insert or replace an item (groups replaced too); *version gets the new roster version. */
    int (*roster_put)(mp_store *st, const char *domain, const char *node,
                      const mp_roster_item *item, uint64_t *version);
    /* 0 or MP_ENOTFOUND; *version gets the new roster version. */
    int (*roster_delete)(mp_store *st, const char *domain, const char *node, const char *jid,
                         uint64_t *version);
    /* Append a stanza to the offline queue; MP_ELIMIT when the queue already holds max. */
    int (*offline_push)(mp_store *st, const char *domain, const char *node, const char *stanza,
                        size_t len, int64_t stamp, int max);
    /* Hand every queued stanza to cb, oldest first, then delete them, in one transaction: if cb
     * fails (returns negative) nothing is deleted. Returns the count or MP_E*. */
    int (*offline_take)(mp_store *st, const char *domain, const char *node,
                        mp_store_offline_cb cb, void *ud);
    int (*offline_count)(mp_store *st, const char *domain, const char *node);
    /* Per-user XML documents: kind "private" with key = namespace (XEP-0049), kind "vcard"
     * with key "" (XEP-0054), ... get: 0 and the bytes appended to *out (an mp_buf), or
     * MP_ENOTFOUND. put with len 0 deletes. */
    int (*blob_get)(mp_store *st, const char *domain, const char *node, const char *kind,
                    const char *key, struct mp_buf *out);
    int (*blob_put)(mp_store *st, const char *domain, const char *node, const char *kind,
                    const char *key, const char *data, size_t len);
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
