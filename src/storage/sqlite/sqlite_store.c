/* SQLite backend: one database file in WAL mode, statements prepared once at open. */
#include "storage/store.h"
#include "storage/sqlite/sqlite_int.h"
#include "base/buf.h"
#include "base/err.h"
#include "base/log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

/* 1: users; 2: roster, offline, blobs; 3: message archive (sqlite_archive.c). */
#define SCHEMA_VERSION 4

/* Statements prepared once at open, by index. */
enum {
    Q_BEGIN,
    Q_COMMIT,
    Q_ROLLBACK,
    Q_USER_GET,
    Q_USER_INSERT,
    Q_USER_UPDATE,
    Q_USER_DELETE,
    Q_USER_LIST,
    /* the account's other data, dropped with the user row; same bindings as Q_USER_DELETE */
    Q_DROP_ROSTER,
    Q_DROP_VERSION,
    Q_DROP_OFFLINE,
    Q_DROP_BLOBS,
    Q_ROSTER_LIST,
    Q_ROSTER_GET,
    Q_ROSTER_PUT,
    Q_ROSTER_DELETE,
    Q_VERSION_GET,
    Q_VERSION_BUMP,
    Q_OFFLINE_COUNT,
    Q_OFFLINE_PUSH,
    Q_OFFLINE_LIST,
    Q_OFFLINE_DELETE,
    Q_BLOB_GET,
    Q_BLOB_PUT,
    Q_BLOB_DELETE,
    Q_BLOB_LIST,
    Q_COUNT
};

static const char *const query_sql[Q_COUNT] = {
    /* IMMEDIATE: a read-then-write transaction that began as a reader could fail with
     * SQLITE_BUSY_SNAPSHOT, which the busy handler does not retry. */
    [Q_BEGIN] = "BEGIN IMMEDIATE",
    [Q_COMMIT] = "COMMIT",
    [Q_ROLLBACK] = "ROLLBACK",
    [Q_USER_GET] = "SELECT iterations, salt, sha1_stored, sha1_server, sha256_stored,"
                   " sha256_server FROM users WHERE domain = ?1 AND node = ?2",
    [Q_USER_INSERT] = "INSERT INTO users (domain, node, iterations, salt, sha1_stored,"
                      " sha1_server, sha256_stored, sha256_server, created)"
                      " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    [Q_USER_UPDATE] = "UPDATE users SET iterations = ?3, salt = ?4, sha1_stored = ?5,"
                      " sha1_server = ?6, sha256_stored = ?7, sha256_server = ?8"
                      " WHERE domain = ?1 AND node = ?2",
    [Q_USER_DELETE] = "DELETE FROM users WHERE domain = ?1 AND node = ?2",
    [Q_USER_LIST] = "SELECT node FROM users WHERE domain = ?1 ORDER BY node",
    [Q_DROP_ROSTER] = "DELETE FROM roster WHERE domain = ?1 AND node = ?2",
    [Q_DROP_VERSION] = "DELETE FROM roster_version WHERE domain = ?1 AND node = ?2",
    [Q_DROP_OFFLINE] = "DELETE FROM offline WHERE domain = ?1 AND node = ?2",
    [Q_DROP_BLOBS] = "DELETE FROM blobs WHERE domain = ?1 AND node = ?2",
    [Q_ROSTER_LIST] = "SELECT jid, name, state, groups FROM roster"
                      " WHERE domain = ?1 AND node = ?2 ORDER BY jid",
    [Q_ROSTER_GET] = "SELECT jid, name, state, groups FROM roster"
                     " WHERE domain = ?1 AND node = ?2 AND jid = ?3",
    [Q_ROSTER_PUT] = "INSERT OR REPLACE INTO roster (domain, node, jid, name, state, groups)"
                     " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [Q_ROSTER_DELETE] = "DELETE FROM roster WHERE domain = ?1 AND node = ?2 AND jid = ?3",
    [Q_VERSION_GET] = "SELECT version FROM roster_version WHERE domain = ?1 AND node = ?2",
    [Q_VERSION_BUMP] = "INSERT INTO roster_version (domain, node, version) VALUES (?1, ?2, 1)"
                       " ON CONFLICT (domain, node) DO UPDATE SET version = version + 1"
                       " RETURNING version",
    [Q_OFFLINE_COUNT] = "SELECT count(*) FROM offline WHERE domain = ?1 AND node = ?2",
    [Q_OFFLINE_PUSH] = "INSERT INTO offline (domain, node, stanza, stamp) VALUES (?1, ?2, ?3, ?4)",
    [Q_OFFLINE_LIST] = "SELECT id, stanza, stamp FROM offline"
                       " WHERE domain = ?1 AND node = ?2 ORDER BY id",
    [Q_OFFLINE_DELETE] = "DELETE FROM offline WHERE domain = ?1 AND node = ?2 AND id <= ?3",
    [Q_BLOB_GET] = "SELECT data FROM blobs"
                   " WHERE domain = ?1 AND node = ?2 AND kind = ?3 AND key = ?4",
    [Q_BLOB_PUT] = "INSERT OR REPLACE INTO blobs (domain, node, kind, key, data)"
                   " VALUES (?1, ?2, ?3, ?4, ?5)",
    [Q_BLOB_DELETE] = "DELETE FROM blobs WHERE domain = ?1 AND node = ?2 AND kind = ?3"
                      " AND key = ?4",
    [Q_BLOB_LIST] = "SELECT node, key, data FROM blobs WHERE domain = ?1 AND kind = ?2"
                    " ORDER BY node, key",
};

static const char schema_v1[] = "CREATE TABLE users ("
                                " domain TEXT NOT NULL,"
                                " node TEXT NOT NULL,"
                                " iterations INTEGER NOT NULL,"
                                " salt BLOB NOT NULL,"
                                " sha1_stored BLOB NOT NULL,"
                                " sha1_server BLOB NOT NULL,"
                                " sha256_stored BLOB NOT NULL,"
                                " sha256_server BLOB NOT NULL,"
                                " created INTEGER NOT NULL,"
                                " PRIMARY KEY (domain, node)"
                                ") WITHOUT ROWID;";

/* Roster groups live in the item's row as one BLOB, each name followed by a NUL (names cannot
 * contain one): an item is read in one row, and x'' is the empty list. Offline stanzas and
 * documents can be large, so those tables keep their rowid. */
static const char schema_v2[] = "CREATE TABLE roster ("
                                " domain TEXT NOT NULL,"
                                " node TEXT NOT NULL,"
                                " jid TEXT NOT NULL,"
                                " name TEXT,"
                                " state INTEGER NOT NULL,"
                                " groups BLOB NOT NULL DEFAULT x'',"
                                " PRIMARY KEY (domain, node, jid)"
                                ") WITHOUT ROWID;"
                                "CREATE TABLE roster_version ("
                                " domain TEXT NOT NULL,"
                                " node TEXT NOT NULL,"
                                " version INTEGER NOT NULL,"
                                " PRIMARY KEY (domain, node)"
                                ") WITHOUT ROWID;"
                                "CREATE TABLE offline ("
                                " id INTEGER PRIMARY KEY AUTOINCREMENT,"
                                " domain TEXT NOT NULL,"
                                " node TEXT NOT NULL,"
                                " stanza BLOB NOT NULL,"
                                " stamp INTEGER NOT NULL"
                                ");"
                                "CREATE INDEX offline_owner ON offline (domain, node, id);"
                                "CREATE TABLE blobs ("
                                " domain TEXT NOT NULL,"
                                " node TEXT NOT NULL,"
                                " kind TEXT NOT NULL,"
                                " key TEXT NOT NULL,"
                                " data BLOB NOT NULL,"
                                " PRIMARY KEY (domain, node, kind, key)"
                                ");";

int
mp_sq_fail(sqlite_store *s, const char *what)
{
    mp_err("sqlite: %s: %s", what, sqlite3_errmsg(s->db));
    return MP_EIO;
}

int
mp_sq_put_step(sqlite_store *s, sqlite3_stmt *q, int create, const char *what)
{
    int step = sqlite3_step(q);
    if (step == SQLITE_DONE)
        return create || sqlite3_changes(s->db) > 0 ? 0 : MP_ENOTFOUND;
    if (create && step == SQLITE_CONSTRAINT_PRIMARYKEY)
        return MP_EEXIST;
    return mp_sq_fail(s, what);
}

int
mp_sq_exec(sqlite_store *s, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        mp_err("sqlite: %s: %s", sql, msg ? msg : sqlite3_errmsg(s->db));
        sqlite3_free(msg);
        return MP_EIO;
    }
    return 0;
}

static int
schema_version(sqlite_store *s, int *version)
{
    sqlite3_stmt *st;
    int rc = MP_EIO;

    if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
        return mp_sq_fail(s, "user_version");
    if (sqlite3_step(st) == SQLITE_ROW) {
        *version = sqlite3_column_int(st, 0);
        rc = 0;
    }
    sqlite3_finalize(st);
    return rc;
}

/* Upgrades run in one transaction each, so a crash leaves the old or the new schema. */
static int
migrate(sqlite_store *s)
{
    int version, rc;

    if ((rc = mp_sq_exec(s, "BEGIN IMMEDIATE")) < 0)
        return rc;
    if ((rc = schema_version(s, &version)) < 0)
        goto fail;
    if (version > SCHEMA_VERSION) {
        mp_err("sqlite: database schema %d is newer than this server (%d)", version,
               SCHEMA_VERSION);
        rc = MP_EINVAL;
        goto fail;
    }
    if (version < 1) {
        if ((rc = mp_sq_exec(s, schema_v1)) < 0)
            goto fail;
    }
    if (version < 2) {
        if ((rc = mp_sq_exec(s, schema_v2)) < 0)
            goto fail;
    }
    if (version < 3) {
        if ((rc = mp_sq_exec(s, mp_sq_archive_schema)) < 0)
            goto fail;
    }
    if (version < 4) {
        if ((rc = mp_sq_exec(s, mp_sq_archive_schema_v4)) < 0)
            goto fail;
    }
    if (version < SCHEMA_VERSION) {
        char sql[64];
        snprintf(sql, sizeof sql, "PRAGMA user_version = %d", SCHEMA_VERSION);
        if ((rc = mp_sq_exec(s, sql)) < 0)
            goto fail;
    }
    return mp_sq_exec(s, "COMMIT");
fail:
    mp_sq_exec(s, "ROLLBACK");
    return rc;
}

int
mp_sq_prepare(sqlite_store *s, const char *sql, sqlite3_stmt **out)
{
    if (sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, out, NULL) != SQLITE_OK)
        return mp_sq_fail(s, sql);
    return 0;
}

void
mp_sq_done(sqlite3_stmt *q)
{
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
}

int
mp_sq_bind_key(sqlite3_stmt *st, const char *domain, const char *node)
{
    if (sqlite3_bind_text(st, 1, domain, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(st, 2, node, -1, SQLITE_STATIC) != SQLITE_OK)
        return MP_EIO;
    return 0;
}

/* Run a statement that returns no rows (its parameters bound); reset it either way. */
int
mp_sq_step_done(sqlite_store *s, sqlite3_stmt *q, const char *what)
{
    int rc = sqlite3_step(q) == SQLITE_DONE ? 0 : mp_sq_fail(s, what);
    mp_sq_done(q);
    return rc;
}

/* A store call made from inside a callback of another (offline_take holds its transaction
 * while it hands stanzas over) nests as a savepoint: it commits or rolls back with the outer
 * transaction. *outer tells tx_end which kind was opened. */
int
mp_sq_tx_begin(sqlite_store *s, int *outer)
{
    *outer = sqlite3_get_autocommit(s->db);
    if (!*outer)
        return mp_sq_exec(s, "SAVEPOINT mp_nested");
    return mp_sq_step_done(s, s->q[Q_BEGIN], "begin");
}

/* Commit when ok (rc >= 0, returned unchanged unless the commit fails), else roll back. */
int
mp_sq_tx_end(sqlite_store *s, int outer, int rc)
{
    if (rc >= 0) {
        int c = outer ? mp_sq_step_done(s, s->q[Q_COMMIT], "commit")
                      : mp_sq_exec(s, "RELEASE mp_nested");
        if (c == 0)
            return rc;
        rc = c;
    }
    /* A failed COMMIT may leave the transaction open; a failed statement may have ended it
     * already (SQLITE_FULL, SQLITE_IOERR): roll back only what is still open. */
    if (outer) {
        if (!sqlite3_get_autocommit(s->db))
            mp_sq_step_done(s, s->q[Q_ROLLBACK], "rollback");
    } else {
        mp_sq_exec(s, "ROLLBACK TO mp_nested; RELEASE mp_nested");
    }
    return rc;
}

/* Copy one BLOB column into a fixed-size field; a size mismatch means a damaged row. */
static int
column_blob(sqlite3_stmt *st, int col, unsigned char *dst, size_t want)
{
    const void *p = sqlite3_column_blob(st, col);
    if ((size_t)sqlite3_column_bytes(st, col) != want || !p)
        return MP_EIO;
    memcpy(dst, p, want);
    return 0;
}

static int
sq_user_get(mp_store *st, const char *domain, const char *node, mp_user_cred *out)
{
    sqlite_store *s = (sqlite_store *)st;
    sqlite3_stmt *q = s->q[Q_USER_GET];
    int rc;

    if ((rc = mp_sq_bind_key(q, domain, node)) < 0)
        goto out;
    switch (sqlite3_step(q)) {
    case SQLITE_ROW:
        break;
    case SQLITE_DONE:
        rc = MP_ENOTFOUND;
        goto out;
    default:
        rc = mp_sq_fail(s, "user_get");
        goto out;
    }
    memset(out, 0, sizeof *out);
    sqlite3_int64 iter = sqlite3_column_int64(q, 0);
    int salt_len = sqlite3_column_bytes(q, 1);
    if (iter <= 0 || iter > 0x7fffffff || salt_len <= 0 || salt_len > MP_SCRAM_SALT_MAX) {
        rc = MP_EIO;
        goto bad_row;
    }
    out->iterations = (unsigned)iter;
    out->salt_len = (size_t)salt_len;
    if (column_blob(q, 1, out->salt, out->salt_len) < 0 ||
        column_blob(q, 2, out->sha1_stored_key, sizeof out->sha1_stored_key) < 0 ||
        column_blob(q, 3, out->sha1_server_key, sizeof out->sha1_server_key) < 0 ||
        column_blob(q, 4, out->sha256_stored_key, sizeof out->sha256_stored_key) < 0 ||
        column_blob(q, 5, out->sha256_server_key, sizeof out->sha256_server_key) < 0) {
        rc = MP_EIO;
        goto bad_row;
    }
    rc = 0;
    goto out;
bad_row:
    mp_err("sqlite: damaged credentials row for %s@%s", node, domain);
    memset(out, 0, sizeof *out);
out:
    mp_sq_done(q);
    return rc;
}

static int
sq_user_put(mp_store *st, const char *domain, const char *node, const mp_user_cred *cred,
            int create)
{
    sqlite_store *s = (sqlite_store *)st;
    sqlite3_stmt *q = s->q[create ? Q_USER_INSERT : Q_USER_UPDATE];
    int rc;

    if (cred->salt_len == 0 || cred->salt_len > MP_SCRAM_SALT_MAX || cred->iterations == 0)
        return MP_EINVAL;
    /* insert: (domain, node, iter, salt, keys..., created); update: same minus created. */
    if ((rc = mp_sq_bind_key(q, domain, node)) < 0 ||
        sqlite3_bind_int64(q, 3, cred->iterations) != SQLITE_OK ||
        sqlite3_bind_blob(q, 4, cred->salt, (int)cred->salt_len, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_blob(q, 5, cred->sha1_stored_key, sizeof cred->sha1_stored_key,
                          SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_blob(q, 6, cred->sha1_server_key, sizeof cred->sha1_server_key,
                          SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_blob(q, 7, cred->sha256_stored_key, sizeof cred->sha256_stored_key,
                          SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_blob(q, 8, cred->sha256_server_key, sizeof cred->sha256_server_key,
                          SQLITE_STATIC) != SQLITE_OK ||
        (create && sqlite3_bind_int64(q, 9, (sqlite3_int64)time(NULL)) != SQLITE_OK)) {
        rc = mp_sq_fail(s, "user_put bind");
        goto out;
    }
    rc = mp_sq_put_step(s, q, create, "user_put");
out:
    mp_sq_done(q);
    return rc;
}

/* The user row and everything the account owns go in one transaction. Leftovers of an account
 * that has no user row any more are dropped too, though the answer is then MP_ENOTFOUND. */
static int
sq_user_delete(mp_store *st, const char *domain, const char *node)
{
    static const int drops[] = {Q_USER_DELETE, Q_DROP_ROSTER, Q_DROP_VERSION, Q_DROP_OFFLINE,
                                Q_DROP_BLOBS};
    sqlite_store *s = (sqlite_store *)st;
    int rc, outer, found = 0;

    if ((rc = mp_sq_tx_begin(s, &outer)) < 0)
        return rc;
    for (size_t i = 0; i < sizeof drops / sizeof drops[0] && rc == 0; i++) {
        sqlite3_stmt *q = s->q[drops[i]];
        if (mp_sq_bind_key(q, domain, node) < 0) {
            rc = mp_sq_fail(s, "user_delete bind");
            mp_sq_done(q);
            break;
        }
        rc = mp_sq_step_done(s, q, "user_delete");
        if (i == 0)
            found = sqlite3_changes(s->db) > 0;
    }
    if (rc == 0)
        rc = mp_sq_archive_drop(s, domain, node);
    if (rc == 0)
        rc = mp_sq_pubsub_drop(s, domain, node);
    rc = mp_sq_tx_end(s, outer, rc);
    return rc < 0 ? rc : found ? 0 : MP_ENOTFOUND;
}

/* A negative value returned by cb is passed back to the caller; a positive one just stops. */
static int
sq_user_list(mp_store *st, const char *domain, mp_store_user_cb cb, void *ud)
{
    sqlite_store *s = (sqlite_store *)st;
    sqlite3_stmt *q = s->q[Q_USER_LIST];
    int rc = 0, step;

    if (sqlite3_bind_text(q, 1, domain, -1, SQLITE_STATIC) != SQLITE_OK) {
        rc = mp_sq_fail(s, "user_list bind");
        goto out;
    }
    while ((step = sqlite3_step(q)) == SQLITE_ROW) {
        const char *node = (const char *)sqlite3_column_text(q, 0);
        if (!node)
            continue;
        int r = cb(node, ud);
        if (r != 0) {
            rc = r < 0 ? r : 0;
            goto out;
        }
    }
    if (step != SQLITE_DONE)
        rc = mp_sq_fail(s, "user_list");
out:
    mp_sq_done(q);
    return rc;
}

/* ---- roster ---- */

#define GROUPS_ON_STACK 16

/* Hand the roster row q stands on to cb: the groups point into the row's BLOB, which stays
 * valid until q moves on. Returns cb's value, or MP_EIO / MP_ENOMEM. */
static int
roster_row(sqlite_store *s, sqlite3_stmt *q, const char *domain, const char *node,
           mp_store_roster_cb cb, void *ud)
{
    const char *stack[GROUPS_ON_STACK], **groups = stack;
    mp_roster_item it = {0};
    int rc;

    it.jid = (const char *)sqlite3_column_text(q, 0);
    it.name = (const char *)sqlite3_column_text(q, 1); /* NULL for SQL NULL */
    it.state = sqlite3_column_int(q, 2);
    const char *g = sqlite3_column_blob(q, 3);
    size_t glen = (size_t)sqlite3_column_bytes(q, 3);
    if (!it.jid || (glen > 0 && (!g || g[glen - 1] != '\0'))) {
        mp_err("sqlite: damaged roster row in the roster of %s@%s", node, domain);
        return MP_EIO;
    }
    for (size_t i = 0; i < glen; i++)
        it.ngroups += g[i] == '\0';
    if (it.ngroups > GROUPS_ON_STACK) {
        groups = malloc(it.ngroups * sizeof *groups);
        if (!groups)
            return MP_ENOMEM;
    }
    for (size_t i = 0, off = 0; i < it.ngroups; i++) {
        groups[i] = g + off;
        off += strlen(g + off) + 1;
    }
    it.groups = groups;
    rc = cb(&it, ud);
    if (groups != stack)
        free(groups);
    return rc;
}

static int
version_get(sqlite_store *s, const char *domain, const char *node, uint64_t *version)
{
    sqlite3_stmt *q = s->q[Q_VERSION_GET];
    int rc = 0;

    *version = 0;
    if (mp_sq_bind_key(q, domain, node) < 0) {
        rc = mp_sq_fail(s, "roster version bind");
        goto out;
    }
    switch (sqlite3_step(q)) {
    case SQLITE_ROW:
        *version = (uint64_t)sqlite3_column_int64(q, 0);
        break;
    case SQLITE_DONE:
        break;
    default:
        rc = mp_sq_fail(s, "roster version");
    }
out:
    mp_sq_done(q);
    return rc;
}

/* Called inside the transaction of the change. */
static int
version_bump(sqlite_store *s, const char *domain, const char *node, uint64_t *version)
{
    sqlite3_stmt *q = s->q[Q_VERSION_BUMP];
    int rc = 0;

    if (mp_sq_bind_key(q, domain, node) < 0 || sqlite3_step(q) != SQLITE_ROW) {
        rc = mp_sq_fail(s, "roster version bump");
        goto out;
    }
    if (version)
        *version = (uint64_t)sqlite3_column_int64(q, 0);
out:
    mp_sq_done(q);
    return rc;
}

/* The version is read before the items: should a change slip in between, the client gets
 * newer items under the older version and asks again, never stale items under a new one. */
static int
sq_roster_list(mp_store *st, const char *domain, const char *node, mp_store_roster_cb cb, void *ud,
               uint64_t *version)
{
    sqlite_store *s = (sqlite_store *)st;
    sqlite3_stmt *q = s->q[Q_ROSTER_LIST];
    uint64_t ver = 0;
    int rc = 0, step;

    if (version && (rc = version_get(s, domain, node, &ver)) < 0)
        return rc;
    if (mp_sq_bind_key(q, domain, node) < 0) {
        rc = mp_sq_fail(s, "roster_list bind");
        goto out;
    }
    while ((step = sqlite3_step(q)) == SQLITE_ROW) {
        int r = roster_row(s, q, domain, node, cb, ud);
        if (r != 0) {
            rc = r < 0 ? r : 0;
            goto out;
        }
    }
    if (step != SQLITE_DONE)
        rc = mp_sq_fail(s, "roster_list");
out:
    mp_sq_done(q);
    if (rc == 0 && version)
        *version = ver;
    return rc;
}

static int
sq_roster_get(mp_store *st, const char *domain, const char *node, const char *jid,
              mp_store_roster_cb cb, void *ud)
{
    sqlite_store *s = (sqlite_store *)st;
    sqlite3_stmt *q = s->q[Q_ROSTER_GET];
    int rc;

    if (!jid)
        return MP_EINVAL;
    if (mp_sq_bind_key(q, domain, node) < 0 ||
        sqlite3_bind_text(q, 3, jid, -1, SQLITE_STATIC) != SQLITE_OK) {
        rc = mp_sq_fail(s, "roster_get bind");
        goto out;
    }
    switch (sqlite3_step(q)) {
    case SQLITE_ROW:
        rc = roster_row(s, q, domain, node, cb, ud);
        if (rc > 0)
            rc = 0;
        break;
    case SQLITE_DONE:
        rc = MP_ENOTFOUND;
        break;
    default:
        rc = mp_sq_fail(s, "roster_get");
    }
out:
    mp_sq_done(q);
    return rc;
}

/* The groups as stored: each name and its NUL, in order. *out is NULL for none. */
static int
encode_groups(const mp_roster_item *item, char **out, size_t *len)
{
    size_t total = 0;

    *out = NULL;
    *len = 0;
    if (item->ngroups && !item->groups)
        return MP_EINVAL;
    for (size_t i = 0; i < item->ngroups; i++) {
        if (!item->groups[i])
            return MP_EINVAL;
        total += strlen(item->groups[i]) + 1;
        if (total > INT_MAX)
            return MP_ELIMIT;
    }
    if (total == 0)
        return 0;
    char *p = malloc(total);
    if (!p)
        return MP_ENOMEM;
    *out = p;
    *len = total;
    for (size_t i = 0; i < item->ngroups; i++) {
        size_t n = strlen(item->groups[i]) + 1;
        memcpy(p, item->groups[i], n);
        p += n;
    }
    return 0;
}

static int
sq_roster_put(mp_store *st, const char *domain, const char *node, const mp_roster_item *item,
              uint64_t *version)
{
    sqlite_store *s = (sqlite_store *)st;
    sqlite3_stmt *q = s->q[Q_ROSTER_PUT];
    char *groups;
    size_t glen;
    int rc, outer;

    if (!item->jid || !*item->jid)
        return MP_EINVAL;
    if ((rc = encode_groups(item, &groups, &glen)) < 0)
        return rc;
    if ((rc = mp_sq_tx_begin(s, &outer)) < 0)
        goto out;
    /* "" rather than NULL: a NULL pointer would bind SQL NULL, not the empty BLOB. */
    if (mp_sq_bind_key(q, domain, node) < 0 ||
        sqlite3_bind_text(q, 3, item->jid, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(q, 4, item->name, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_int(q, 5, item->state) != SQLITE_OK ||
        sqlite3_bind_blob(q, 6, groups ? groups : "", (int)glen, SQLITE_STATIC) != SQLITE_OK) {
        rc = mp_sq_fail(s, "roster_put bind");
        mp_sq_done(q);
    } else {
        rc = mp_sq_step_done(s, q, "roster_put");
    }
    if (rc == 0)
        rc = version_bump(s, domain, node, version);
    rc = mp_sq_tx_end(s, outer, rc);
out:
    free(groups);
    return rc;
}

static int
sq_roster_delete(mp_store *st, const char *domain, const char *node, const char *jid,
                 uint64_t *version)
{
    sqlite_store *s = (sqlite_store *)st;
    sqlite3_stmt *q = s->q[Q_ROSTER_DELETE];
    int rc, outer;

    if (!jid)
        return MP_EINVAL;
    if ((rc = mp_sq_tx_begin(s, &outer)) < 0)
        return rc;
    if (mp_sq_bind_key(q, domain, node) < 0 ||
        sqlite3_bind_text(q, 3, jid, -1, SQLITE_STATIC) != SQLITE_OK) {
        rc = mp_sq_fail(s, "roster_delete bind");
        mp_sq_done(q);
    } else if ((rc = mp_sq_step_done(s, q, "roster_delete")) == 0) {
        rc = sqlite3_changes(s->db) > 0 ? version_bump(s, domain, node, version) : MP_ENOTFOUND;
    }
    return mp_sq_tx_end(s, outer, rc);
}

/* ---- offline messages ---- */

static int
offline_count(sqlite_store *s, const char *domain, const char *node)
{
    sqlite3_stmt *q = s->q[Q_OFFLINE_COUNT];
    int rc;

    if (mp_sq_bind_key(q, domain, node) < 0 || sqlite3_step(q) != SQLITE_ROW) {
        rc = mp_sq_fail(s, "offline_count");
        goto out;
    }
    sqlite3_int64 n = sqlite3_column_int64(q, 0);
    rc = n > INT_MAX ? INT_MAX : (int)n;
out:
    mp_sq_done(q);
    return rc;
}

static int
sq_offline_count(mp_store *st, const char *domain, const char *node)
{
    return offline_count((sqlite_store *)st, domain, node);
}

static int
sq_offline_push(mp_store *st, const char *domain, const char *node, const char *stanza, size_t len,
                int64_t stamp, int max)
{
    sqlite_store *s = (sqlite_store *)st;
    sqlite3_stmt *q = s->q[Q_OFFLINE_PUSH];
    int rc, outer;

    if (!stanza || len == 0)
        return MP_EINVAL;
    if (len > INT_MAX)
        return MP_ELIMIT;
    if ((rc = mp_sq_tx_begin(s, &outer)) < 0)
        return rc;
    if ((rc = offline_count(s, domain, node)) < 0)
        goto out;
    if (rc >= max) {
        rc = MP_ELIMIT;
        goto out;
    }
    if (mp_sq_bind_key(q, domain, node) < 0 ||
        sqlite3_bind_blob(q, 3, stanza, (int)len, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_int64(q, 4, stamp) != SQLITE_OK) {
        rc = mp_sq_fail(s, "offline_push bind");
        mp_sq_done(q);
        goto out;
    }
    rc = mp_sq_step_done(s, q, "offline_push");
out:
    return mp_sq_tx_end(s, outer, rc);
}

/* The stanzas are read and deleted under one write lock, so the DELETE (every id up to the
 * last one handed over) removes exactly what cb saw. A positive value from cb stops after that
 * stanza, which counts as taken. Should the COMMIT fail after cb sent the stanzas, they stay
 * queued and come again: a duplicate rather than a loss. */
static int
sq_offline_take(mp_store *st, const char *domain, const char *node, mp_store_offline_cb cb,
                void *ud)
{
    sqlite_store *s = (sqlite_store *)st;
    sqlite3_stmt *q = s->q[Q_OFFLINE_LIST];
    sqlite3_int64 last = 0;
    int rc, outer, n = 0, step;

    if ((rc = mp_sq_tx_begin(s, &outer)) < 0)
        return rc;
    if (mp_sq_bind_key(q, domain, node) < 0) {
        rc = mp_sq_fail(s, "offline_take bind");
        mp_sq_done(q);
        goto out;
    }
    while ((step = sqlite3_step(q)) == SQLITE_ROW) {
        const char *p = sqlite3_column_blob(q, 1);
        size_t len = (size_t)sqlite3_column_bytes(q, 1);
        last = sqlite3_column_int64(q, 0);
        int r = cb(p ? p : "", len, sqlite3_column_int64(q, 2), ud);
        if (r < 0) {
            mp_sq_done(q);
            rc = r;
            goto out;
        }
        n++;
        if (r > 0)
            break;
    }
    if (step != SQLITE_ROW && step != SQLITE_DONE) {
        rc = mp_sq_fail(s, "offline_take");
        mp_sq_done(q);
        goto out;
    }
    mp_sq_done(q);
    if (n == 0)
        goto out;
    q = s->q[Q_OFFLINE_DELETE];
    if (mp_sq_bind_key(q, domain, node) < 0 || sqlite3_bind_int64(q, 3, last) != SQLITE_OK) {
        rc = mp_sq_fail(s, "offline_take bind");
        mp_sq_done(q);
        goto out;
    }
    if ((rc = mp_sq_step_done(s, q, "offline_take delete")) == 0)
        rc = n;
out:
    return mp_sq_tx_end(s, outer, rc);
}

/* ---- per-user documents ---- */

static int
bind_blob_key(sqlite3_stmt *q, const char *domain, const char *node, const char *kind,
              const char *key)
{
    if (mp_sq_bind_key(q, domain, node) < 0 ||
        sqlite3_bind_text(q, 3, kind, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(q, 4, key ? key : "", -1, SQLITE_STATIC) != SQLITE_OK)
        return MP_EIO;
    return 0;
}

static int
sq_blob_get(mp_store *st, const char *domain, const char *node, const char *kind, const char *key,
            mp_buf *out)
{
    sqlite_store *s = (sqlite_store *)st;
    sqlite3_stmt *q = s->q[Q_BLOB_GET];
    int rc;

    if (!kind)
        return MP_EINVAL;
    if (bind_blob_key(q, domain, node, kind, key) < 0) {
        rc = mp_sq_fail(s, "blob_get bind");
        goto out;
    }
    switch (sqlite3_step(q)) {
    case SQLITE_ROW: {
        const void *p = sqlite3_column_blob(q, 0);
        int len = sqlite3_column_bytes(q, 0);
        rc = p && len > 0 ? mp_buf_append(out, p, (size_t)len) : 0;
        break;
    }
    case SQLITE_DONE:
        rc = MP_ENOTFOUND;
        break;
    default:
        rc = mp_sq_fail(s, "blob_get");
    }
out:
    mp_sq_done(q);
    return rc;
}

static int
sq_blob_put(mp_store *st, const char *domain, const char *node, const char *kind, const char *key,
            const char *data, size_t len)
{
    sqlite_store *s = (sqlite_store *)st;
    sqlite3_stmt *q = s->q[len ? Q_BLOB_PUT : Q_BLOB_DELETE];

    if (!kind || (len && !data))
        return MP_EINVAL;
    if (len > INT_MAX)
        return MP_ELIMIT;
    if (bind_blob_key(q, domain, node, kind, key) < 0 ||
        (len && sqlite3_bind_blob(q, 5, data, (int)len, SQLITE_STATIC) != SQLITE_OK)) {
        int rc = mp_sq_fail(s, "blob_put bind");
        mp_sq_done(q);
        return rc;
    }
    return mp_sq_step_done(s, q, "blob_put");
}

static int
sq_blob_list(mp_store *st, const char *domain, const char *kind, mp_store_blob_cb cb, void *ud)
{
    sqlite_store *s = (sqlite_store *)st;
    sqlite3_stmt *q = s->q[Q_BLOB_LIST];
    int rc = 0, step;

    if (sqlite3_bind_text(q, 1, domain, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(q, 2, kind, -1, SQLITE_STATIC) != SQLITE_OK) {
        rc = mp_sq_fail(s, "blob_list bind");
        goto out;
    }
    while ((step = sqlite3_step(q)) == SQLITE_ROW) {
        const char *node = (const char *)sqlite3_column_text(q, 0);
        const char *key = (const char *)sqlite3_column_text(q, 1);
        const char *data = sqlite3_column_blob(q, 2);
        int len = sqlite3_column_bytes(q, 2);
        if (!node || !key || !data || len <= 0)
            continue;
        int r = cb(node, key, data, (size_t)len, ud);
        if (r != 0) {
            rc = r < 0 ? r : 0;
            goto out;
        }
    }
    if (step != SQLITE_DONE)
        rc = mp_sq_fail(s, "blob_list");
out:
    mp_sq_done(q);
    return rc;
}

static int
sq_batch_begin(mp_store *st)
{
    sqlite_store *s = (sqlite_store *)st;

    if (!sqlite3_get_autocommit(s->db))
        return MP_EINVAL;
    return mp_sq_step_done(s, s->q[Q_BEGIN], "batch begin");
}

/* A failed COMMIT rolls the batch back: the caller learns that none of it was stored. */
static int
sq_batch_end(mp_store *st, int commit)
{
    sqlite_store *s = (sqlite_store *)st;

    if (sqlite3_get_autocommit(s->db))
        return MP_EINVAL;
    if (!commit)
        return mp_sq_step_done(s, s->q[Q_ROLLBACK], "batch rollback");
    return mp_sq_tx_end(s, 1, 0);
}

static void
sq_close(mp_store *st)
{
    sqlite_store *s = (sqlite_store *)st;

    if (!s)
        return;
    mp_sq_archive_close(s);
    mp_sq_pubsub_close(s);
    for (int i = 0; i < Q_COUNT; i++)
        sqlite3_finalize(s->q[i]);
    if (s->db && sqlite3_close(s->db) != SQLITE_OK)
        mp_err("sqlite: close: %s", sqlite3_errmsg(s->db));
    free(s);
}

static const mp_store_ops sqlite_ops = {
    .name = "sqlite",
    .user_get = sq_user_get,
    .user_put = sq_user_put,
    .user_delete = sq_user_delete,
    .user_list = sq_user_list,
    .roster_list = sq_roster_list,
    .roster_get = sq_roster_get,
    .roster_put = sq_roster_put,
    .roster_delete = sq_roster_delete,
    .offline_push = sq_offline_push,
    .offline_take = sq_offline_take,
    .offline_count = sq_offline_count,
    .blob_get = sq_blob_get,
    .blob_put = sq_blob_put,
    .blob_list = sq_blob_list,
    .archive_append = mp_sq_archive_append,
    .archive_query = mp_sq_archive_query,
    .archive_get_by_id = mp_sq_archive_get_by_id,
    .archive_delete_owner = mp_sq_archive_delete_owner,
    .archive_purge_before = mp_sq_archive_purge_before,
    .archive_prefs_get = mp_sq_archive_prefs_get,
    .archive_prefs_put = mp_sq_archive_prefs_put,
    .ps_node_get = mp_sq_ps_node_get,
    .ps_node_put = mp_sq_ps_node_put,
    .ps_node_delete = mp_sq_ps_node_delete,
    .ps_item_put = mp_sq_ps_item_put,
    .ps_item_get = mp_sq_ps_item_get,
    .ps_item_delete = mp_sq_ps_item_delete,
    .ps_sub_list = mp_sq_ps_sub_list,
    .ps_sub_put = mp_sq_ps_sub_put,
    .ps_sub_delete = mp_sq_ps_sub_delete,
    .ps_aff_list = mp_sq_ps_aff_list,
    .ps_aff_put = mp_sq_ps_aff_put,
    .batch_begin = sq_batch_begin,
    .batch_end = sq_batch_end,
    .close = sq_close,
};

/* SQLite gives -wal and -shm files the mode of the database file, so creating the file
 * ourselves with 0600 keeps all three private. */
static int
create_private(const char *path)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        mp_err("sqlite: cannot open %s: %s", path, strerror(errno));
        return MP_EIO;
    }
    close(fd);
    return 0;
}

/* Switching a new database to WAL takes an exclusive lock and SQLite may answer SQLITE_BUSY
 * without consulting the busy handler while another process does the same: retry briefly. */
static int
set_wal(sqlite_store *s)
{
    for (int i = 0; i < 100; i++) {
        int rc = sqlite3_exec(s->db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL);
        if (rc == SQLITE_OK)
            return 0;
        if ((rc & 0xff) != SQLITE_BUSY && (rc & 0xff) != SQLITE_LOCKED)
            break;
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return mp_sq_exec(s, "PRAGMA journal_mode=WAL");
}

int
mp_store_sqlite_open(const char *path, mp_store **out)
{
    sqlite_store *s;
    int rc;

    *out = NULL;
    if ((rc = create_private(path)) < 0)
        return rc;
    s = calloc(1, sizeof *s + Q_COUNT * sizeof s->q[0]);
    if (!s)
        return MP_ENOMEM;
    s->base.ops = &sqlite_ops;
    if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX, NULL) !=
        SQLITE_OK) {
        rc = s->db ? mp_sq_fail(s, path) : MP_ENOMEM;
        goto fail;
    }
    sqlite3_extended_result_codes(s->db, 1);
    /* The busy handler first: magpiectl and magpied may open the same new file at once. */
    if (sqlite3_busy_timeout(s->db, 5000) != SQLITE_OK) {
        rc = mp_sq_fail(s, "busy_timeout");
        goto fail;
    }
    if ((rc = set_wal(s)) < 0 || (rc = mp_sq_exec(s, "PRAGMA synchronous=FULL")) < 0 ||
        (rc = mp_sq_exec(s, "PRAGMA foreign_keys=ON")) < 0)
        goto fail;
    if ((rc = migrate(s)) < 0)
        goto fail;
    for (int i = 0; i < Q_COUNT; i++)
        if ((rc = mp_sq_prepare(s, query_sql[i], &s->q[i])) < 0)
            goto fail;
    if ((rc = mp_sq_archive_open(s)) < 0 || (rc = mp_sq_pubsub_open(s)) < 0)
        goto fail;
    *out = &s->base;
    return 0;
fail:
    sq_close(&s->base);
    return rc;
}
