/* Private to the SQLite backend: what sqlite_store.c shares with sqlite_archive.c. */
#ifndef MP_STORAGE_SQLITE_INT_H
#define MP_STORAGE_SQLITE_INT_H

#include "storage/store.h"

#include <sqlite3.h>

struct mp_sq_archive;

typedef struct sqlite_store {
    mp_store base; /* first: mp_store * and sqlite_store * convert both ways */
    sqlite3 *db;
    struct mp_sq_archive *arch; /* sqlite_archive.c's statements */
    struct mp_sq_pubsub *ps;    /* sqlite_pubsub.c's statements */
    sqlite3_stmt *q[];          /* sqlite_store.c's statements, by its Q_* index */
} sqlite_store;

/* Log the connection's last error about what; returns MP_EIO. */
int mp_sq_fail(sqlite_store *s, const char *what);
/* Step an INSERT (create) or UPDATE of one row: 0, MP_EEXIST (the row is there: create),
 * MP_ENOTFOUND (no such row: update) or MP_EIO (logged with what). */
int mp_sq_put_step(sqlite_store *s, sqlite3_stmt *q, int create, const char *what);
/* Run SQL without results (several statements allowed); 0 or MP_EIO, logged. */
int mp_sq_exec(sqlite_store *s, const char *sql);
/* Prepare a statement kept for the life of the connection. */
int mp_sq_prepare(sqlite_store *s, const char *sql, sqlite3_stmt **out);
/* Reset a statement and clear its bindings after use. */
void mp_sq_done(sqlite3_stmt *q);
/* Bind ?1 = domain, ?2 = node. */
int mp_sq_bind_key(sqlite3_stmt *st, const char *domain, const char *node);
/* Step a statement returning no rows, then reset it. */
int mp_sq_step_done(sqlite_store *s, sqlite3_stmt *q, const char *what);
/* A write transaction, or a savepoint when one is open already; tx_end commits when rc >= 0
 * (returning rc unless the commit fails), else rolls back and returns rc. */
int mp_sq_tx_begin(sqlite_store *s, int *outer);
int mp_sq_tx_end(sqlite_store *s, int outer, int rc);

/* ---- sqlite_archive.c ---- */

/* The tables schema version 3 adds (run inside the migration's transaction). */
extern const char mp_sq_archive_schema[];
extern const char mp_sq_archive_schema_v4[];
int mp_sq_archive_open(sqlite_store *s);
void mp_sq_archive_close(sqlite_store *s);
/* Drop the owner's messages and preferences, inside the caller's transaction. */
int mp_sq_archive_drop(sqlite_store *s, const char *domain, const char *node);

int mp_sq_archive_append(mp_store *st, const char *domain, const char *node,
                         const mp_archive_item *in, int64_t max_items, char *id_out, size_t id_cap);
int mp_sq_archive_query(mp_store *st, const char *domain, const char *node,
                        const mp_archive_query *q, mp_archive_cb cb, void *ud,
                        mp_archive_page *out);
int mp_sq_archive_get_by_id(mp_store *st, const char *domain, const char *node, const char *id,
                            mp_archive_cb cb, void *ud);
int mp_sq_archive_delete_owner(mp_store *st, const char *domain, const char *node);
int64_t mp_sq_archive_purge_before(mp_store *st, int64_t cutoff_us);
int mp_sq_archive_prefs_get(mp_store *st, const char *domain, const char *node,
                            mp_archive_prefs_cb cb, void *ud);
int mp_sq_archive_prefs_put(mp_store *st, const char *domain, const char *node,
                            const mp_archive_prefs *prefs);

/* ---- sqlite_pubsub.c ---- */

/* Creates the pubsub tables when missing (inside a transaction) and prepares its statements. */
int mp_sq_pubsub_open(sqlite_store *s);
void mp_sq_pubsub_close(sqlite_store *s);
/* Drop the PEP nodes of an account, inside the caller's transaction. */
int mp_sq_pubsub_drop(sqlite_store *s, const char *domain, const char *node);
int mp_sq_ps_node_get(mp_store *st, const char *service, const char *node, mp_ps_node_cb cb,
                      void *ud);
int mp_sq_ps_node_put(mp_store *st, const char *service, const char *node, const char *config,
                      size_t len, int create);
int mp_sq_ps_node_delete(mp_store *st, const char *service, const char *node);
int mp_sq_ps_item_put(mp_store *st, const char *service, const char *node, const mp_ps_item *it,
                      int64_t max_items);
int mp_sq_ps_item_get(mp_store *st, const char *service, const char *node, const char *id,
                      int64_t max, mp_ps_item_cb cb, void *ud);
int mp_sq_ps_item_delete(mp_store *st, const char *service, const char *node, const char *id);
int mp_sq_ps_sub_list(mp_store *st, const char *service, const char *node, const char *jid,
                      mp_ps_sub_cb cb, void *ud);
int mp_sq_ps_sub_put(mp_store *st, const char *service, const mp_ps_sub *sub);
int mp_sq_ps_sub_delete(mp_store *st, const char *service, const char *node, const char *jid,
                        const char *subid);
int mp_sq_ps_aff_list(mp_store *st, const char *service, const char *node, const char *jid,
                      mp_ps_aff_cb cb, void *ud);
int mp_sq_ps_aff_put(mp_store *st, const char *service, const char *node, const char *jid,
                     int affiliation);

#endif
