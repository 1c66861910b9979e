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
/* A stored document (blob_list): its node, key and bytes, valid during the call. */
typedef int (*mp_store_blob_cb)(const char *node, const char *key, const char *data, size_t len,
                                void *ud);

/* ---- Message archive (XEP-0313). An archive belongs to an owner (domain, node): an account,
 * or a MUC room (node "room", domain "conference.example.org"). ---- */

/* Archive ids (XEP-0359 stanza-id): 16 URL-safe base64 characters from 96 random bits, unique
 * in the database and not derived from anything, so an id reveals nothing and is never handed
 * out twice, even after its message is deleted. */
#define MP_ARCHIVE_ID_LEN 16
#define MP_ARCHIVE_ID_SIZE (MP_ARCHIVE_ID_LEN + 1)
/* archive_query returns at most this many items per page, whatever the caller asks. */
#define MP_ARCHIVE_LIMIT_MAX 1000
/* Longest fulltext search string accepted, in bytes (MP_ELIMIT above). */
#define MP_ARCHIVE_FULLTEXT_MAX 1024

/* mp_archive_item.direction: the owner received (IN) or sent (OUT) the message. */
enum { MP_ARCHIVE_IN = 0, MP_ARCHIVE_OUT = 1 };

/* One archived message. For archive_append the caller fills everything but id; the results of
 * archive_query / archive_get_by_id carry every field, valid during the callback only. */
typedef struct mp_archive_item {
    const char *id;            /* archive id (MP_ARCHIVE_ID_LEN chars); ignored by append */
    const char *with_jid;      /* bare JID of the other party, prepared; required */
    const char *with_resource; /* its resource; NULL or "" when none (reads give "") */
    int direction;             /* MP_ARCHIVE_IN or MP_ARCHIVE_OUT */
    int64_t stamp;             /* when archived: microseconds since the epoch, UTC */
    const char *origin_id;     /* XEP-0359 origin-id of the sender; NULL when none */
    const char *body;          /* plain text indexed for fulltext search; NULL when none */
    const char *stanza;        /* the message as stored (serialized XML) */
    size_t len;                /* bytes of stanza; > 0 */
} mp_archive_item;

/* Called per item in chronological order (stamp, then order of arrival). A negative value is
 * passed back to the caller; a positive one stops the query early. */
typedef int (*mp_archive_cb)(const mp_archive_item *item, void *ud);

/* Filters (ANDed; a zeroed struct with a limit asks for the first page of everything) and
 * XEP-0059 paging. Ids from another owner count as unknown. */
typedef struct mp_archive_query {
    const char *with_jid;      /* NULL: any party; else only this bare JID */
    const char *with_resource; /* with with_jid: NULL matches every resource, else exactly */
    int has_start, has_end;    /* whether start / end apply */
    int64_t start, end;        /* inclusive bounds on stamp, microseconds */
    const char *fulltext;      /* NULL / blank: none; else every word must occur in the body
                                * (case- and diacritic-insensitive, no operators, no prefixes) */
    const char *after_id;      /* NULL: none; else only items after this id (next page) */
    const char *before_id;     /* NULL: none; "": the last page; else items before this id. Set,
                                * it pages backwards: the limit items nearest before it */
    int64_t limit;             /* items per page, 0..; capped at MP_ARCHIVE_LIMIT_MAX. 0 still
                                * fills complete and count */
    int want_count;            /* compute mp_archive_page.count (one more indexed scan when
                                * with, start, end or fulltext filter) */
} mp_archive_query;

/* What archive_query tells the module for <fin/> and <set/>. */
typedef struct mp_archive_page {
    char first[MP_ARCHIVE_ID_SIZE]; /* id of the first item delivered; "" when none */
    char last[MP_ARCHIVE_ID_SIZE];  /* id of the last item delivered; "" when none */
    int complete;                   /* 1: nothing more in the paging direction (forwards: after
                                     * last; backwards: before first) */
    int64_t count;                  /* items matching the filters ignoring paging; -1 when not
                                     * asked for */
    size_t n;                       /* items delivered */
} mp_archive_page;

/* Archiving preferences (XEP-0313 §6.1). */
enum { MP_ARCHIVE_ALWAYS = 0, MP_ARCHIVE_NEVER = 1, MP_ARCHIVE_ROSTER = 2 };
typedef struct mp_archive_prefs {
    int default_mode;          /* MP_ARCHIVE_ALWAYS, _NEVER or _ROSTER */
    const char *const *always; /* JIDs always archived */
    size_t nalways;
    const char *const *never; /* JIDs never archived */
    size_t nnever;
} mp_archive_prefs;

/* Called once with the stored preferences, valid during the call only; its value is returned. */
typedef int (*mp_archive_prefs_cb)(const mp_archive_prefs *prefs, void *ud);

/* ---- Publish-subscribe (XEP-0060 nodes, XEP-0163 PEP nodes). A service is named by its JID:
 * "pubsub.example.org", or an account's bare JID for the account's PEP nodes. ---- */

/* Affiliations (XEP-0060 §4.1), ordered so that more rights compare greater, outcast first. */
enum mp_ps_affiliation {
    MP_PS_AFF_OUTCAST = -1,
    MP_PS_AFF_NONE = 0,
    MP_PS_AFF_MEMBER = 1,
    MP_PS_AFF_PUBLISH_ONLY = 2,
    MP_PS_AFF_PUBLISHER = 3,
    MP_PS_AFF_OWNER = 4,
};
/* Subscription states (§4.2). */
enum mp_ps_sub_state { MP_PS_SUB_PENDING = 1, MP_PS_SUB_UNCONFIGURED = 2, MP_PS_SUB_SUBSCRIBED = 3 };

/* Rows as handed to callbacks, valid during the call only. */
typedef struct mp_ps_item {
    const char *node;
    const char *id;
    const char *publisher; /* full JID of the publisher; "" when unknown */
    const char *payload;   /* serialized XML of the item's payload; may be empty */
    size_t len;
    int64_t stamp; /* unix seconds */
} mp_ps_item;
typedef struct mp_ps_sub {
    const char *node, *jid, *subid;
    int state;           /* enum mp_ps_sub_state */
    const char *options; /* serialized subscribe options form; "" for the defaults */
} mp_ps_sub;
typedef struct mp_ps_aff {
    const char *node, *jid;
    int affiliation; /* enum mp_ps_affiliation, never NONE */
} mp_ps_aff;

/* Callbacks: nonzero stops; a negative value is passed back to the caller. */
typedef int (*mp_ps_node_cb)(const char *node, const char *config, size_t len, void *ud);
typedef int (*mp_ps_item_cb)(const mp_ps_item *it, void *ud);
typedef int (*mp_ps_sub_cb)(const mp_ps_sub *sub, void *ud);
typedef int (*mp_ps_aff_cb)(const mp_ps_aff *aff, void *ud);

typedef struct mp_store_ops {
    const char *name;
    /* 0, MP_ENOTFOUND, or MP_EIO. */
    int (*user_get)(mp_store *st, const char *domain, const char *node, mp_user_cred *out);
    /* create: 1 = fail with MP_EEXIST if present, 0 = replace credentials (MP_ENOTFOUND if absent). */
    int (*user_put)(mp_store *st, const char *domain, const char *node, const mp_user_cred *cred,
                    int create);
    /* 0 / MP_ENOTFOUND; also deletes the account's roster, offline queue, documents, message
     * archive and PEP nodes. */
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
    /* Every document of kind in domain (persistent MUC rooms: kind "muc-room"), in node and key
     * order. A negative cb value stops and is returned, a positive one just stops. */
    int (*blob_list)(mp_store *st, const char *domain, const char *kind, mp_store_blob_cb cb,
                     void *ud);
    /* ---- message archive; owner = (domain, node) ---- */
    /* Store in->stanza (in->id ignored) and write its new archive id, NUL-terminated, to id_out
     * (id_cap >= MP_ARCHIVE_ID_SIZE). With max_items > 0 and the owner holding that many already,
     * the oldest go in the same transaction so the owner keeps max_items, this one included.
     * 0, MP_EINVAL (missing field, id_cap too small) or MP_EIO. */
    int (*archive_append)(mp_store *st, const char *domain, const char *node,
                          const mp_archive_item *in, int64_t max_items, char *id_out,
                          size_t id_cap);
    /* One page of the owner's archive to cb (chronological order), described in *out.
     * MP_ENOTFOUND when after_id / before_id is not an id of this owner; MP_EINVAL for a
     * negative limit, MP_ELIMIT for a too long fulltext. An unknown owner has no items. */
    int (*archive_query)(mp_store *st, const char *domain, const char *node,
                         const mp_archive_query *q, mp_archive_cb cb, void *ud,
                         mp_archive_page *out);
    /* One item by archive id: 0 (cb called once, its positive value ignored) or MP_ENOTFOUND. */
    int (*archive_get_by_id)(mp_store *st, const char *domain, const char *node, const char *id,
                             mp_archive_cb cb, void *ud);
    /* Every message and the preferences of the owner. 0 even when there was nothing. */
    int (*archive_delete_owner)(mp_store *st, const char *domain, const char *node);
    /* Retention: delete the messages of every owner stamped before cutoff_us. Returns how many
     * went, or MP_E*. */
    int64_t (*archive_purge_before)(mp_store *st, int64_t cutoff_us);
    /* cb gets the owner's preferences: 0 (cb's value) or MP_ENOTFOUND when never set. */
    int (*archive_prefs_get)(mp_store *st, const char *domain, const char *node,
                             mp_archive_prefs_cb cb, void *ud);
    /* Replace the preferences; NULL prefs forgets them (back to MP_ENOTFOUND). */
    int (*archive_prefs_put)(mp_store *st, const char *domain, const char *node,
                             const mp_archive_prefs *prefs);
    /* Group commit: every write between batch_begin and batch_end joins one transaction, so a
     * burst of archive_append costs one fsync instead of one each. batch_end commits (commit = 1)
     * or rolls back; a crash before it loses the batch. Keep batches short (a timer of a few ms):
     * other processes wait to write meanwhile. MP_EINVAL when one is already open / none is. */
    int (*batch_begin)(mp_store *st);
    int (*batch_end)(mp_store *st, int commit);
    /* ---- publish-subscribe; service = a pubsub service JID or an account's bare JID ---- */
    /* node NULL: every node of the service in name order; else that node, or MP_ENOTFOUND.
     * config is the node's configuration as the module serialized it. */
    int (*ps_node_get)(mp_store *st, const char *service, const char *node, mp_ps_node_cb cb,
                       void *ud);
    /* create: MP_EEXIST when the node exists; else replace its configuration (MP_ENOTFOUND). */
    int (*ps_node_put)(mp_store *st, const char *service, const char *node, const char *config,
                       size_t len, int create);
    /* The node with its items, subscriptions and affiliations (MP_ENOTFOUND); node NULL: every
     * node of the service and every subscription and affiliation held in it (0 always). */
    int (*ps_node_delete)(mp_store *st, const char *service, const char *node);
    /* Insert, or replace the item with it->id, which becomes the newest. With max_items > 0 the
     * oldest beyond max_items go in the same transaction. */
    int (*ps_item_put)(mp_store *st, const char *service, const char *node, const mp_ps_item *it,
                       int64_t max_items);
    /* id set: that item (0, cb called once) or MP_ENOTFOUND; else the items newest first, at
     * most max of them (0: all). */
    int (*ps_item_get)(mp_store *st, const char *service, const char *node, const char *id,
                       int64_t max, mp_ps_item_cb cb, void *ud);
    /* id set: that item, 0 or MP_ENOTFOUND; id NULL: every item of the node (purge). */
    int (*ps_item_delete)(mp_store *st, const char *service, const char *node, const char *id);
    /* Subscriptions in the service, filtered by node and by jid (NULL: any). */
    int (*ps_sub_list)(mp_store *st, const char *service, const char *node, const char *jid,
                       mp_ps_sub_cb cb, void *ud);
    /* Insert or replace the subscription (sub->node, sub->jid, sub->subid). */
    int (*ps_sub_put)(mp_store *st, const char *service, const mp_ps_sub *sub);
    /* That subscription; subid NULL: every one of jid on node. 0 or MP_ENOTFOUND. */
    int (*ps_sub_delete)(mp_store *st, const char *service, const char *node, const char *jid,
                         const char *subid);
    /* Affiliations in the service, filtered by node and by jid (NULL: any). */
    int (*ps_aff_list)(mp_store *st, const char *service, const char *node, const char *jid,
                       mp_ps_aff_cb cb, void *ud);
    /* Set jid's affiliation with node; MP_PS_AFF_NONE removes it. */
    int (*ps_aff_put)(mp_store *st, const char *service, const char *node, const char *jid,
                      int affiliation);
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
