/* SQLite backend: one database file in WAL mode, statements prepared once at open. */
#include "storage/store.h"
#include "base/err.h"
#include "base/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#define SCHEMA_VERSION 1

typedef struct sqlite_store {
    mp_store base; /* first: mp_store * and sqlite_store * convert both ways */
    sqlite3 *db;
    sqlite3_stmt *get, *insert, *update, *del, *list;
} sqlite_store;

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

static int
db_fail(sqlite_store *s, const char *what)
{
    mp_err("sqlite: %s: %s", what, sqlite3_errmsg(s->db));
    return MP_EIO;
}

static int
exec(sqlite_store *s, const char *sql)
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
        return db_fail(s, "user_version");
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

    if ((rc = exec(s, "BEGIN IMMEDIATE")) < 0)
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
        if ((rc = exec(s, schema_v1)) < 0)
            goto fail;
    }
    if (version < SCHEMA_VERSION) {
        char sql[64];
        snprintf(sql, sizeof sql, "PRAGMA user_version = %d", SCHEMA_VERSION);
        if ((rc = exec(s, sql)) < 0)
            goto fail;
    }
    return exec(s, "COMMIT");
fail:
    exec(s, "ROLLBACK");
    return rc;
}

static int
prepare(sqlite_store *s, const char *sql, sqlite3_stmt **out)
{
    if (sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, out, NULL) != SQLITE_OK)
        return db_fail(s, sql);
    return 0;
}

static int
bind_key(sqlite3_stmt *st, const char *domain, const char *node)
{
    if (sqlite3_bind_text(st, 1, domain, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(st, 2, node, -1, SQLITE_STATIC) != SQLITE_OK)
        return MP_EIO;
    return 0;
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
    sqlite3_stmt *q = s->get;
    int rc;

    if ((rc = bind_key(q, domain, node)) < 0)
        goto out;
    switch (sqlite3_step(q)) {
    case SQLITE_ROW:
        break;
    case SQLITE_DONE:
        rc = MP_ENOTFOUND;
        goto out;
    default:
        rc = db_fail(s, "user_get");
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
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    return rc;
}

static int
sq_user_put(mp_store *st, const char *domain, const char *node, const mp_user_cred *cred,
            int create)
{
    sqlite_store *s = (sqlite_store *)st;
    sqlite3_stmt *q = create ? s->insert : s->update;
    int rc;

    if (cred->salt_len == 0 || cred->salt_len > MP_SCRAM_SALT_MAX || cred->iterations == 0)
        return MP_EINVAL;
    /* insert: (domain, node, iter, salt, keys..., created); update: same minus created. */
    if ((rc = bind_key(q, domain, node)) < 0 ||
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
        rc = db_fail(s, "user_put bind");
        goto out;
    }
    int step = sqlite3_step(q);
    if (step == SQLITE_DONE)
        rc = create || sqlite3_changes(s->db) > 0 ? 0 : MP_ENOTFOUND;
    else if (create && step == SQLITE_CONSTRAINT_PRIMARYKEY)
        rc = MP_EEXIST;
    else
        rc = db_fail(s, "user_put");
out:
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    return rc;
}

static int
sq_user_delete(mp_store *st, const char *domain, const char *node)
{
    sqlite_store *s = (sqlite_store *)st;
    sqlite3_stmt *q = s->del;
    int rc;

    if ((rc = bind_key(q, domain, node)) < 0)
        goto out;
    if (sqlite3_step(q) != SQLITE_DONE)
        rc = db_fail(s, "user_delete");
    else
        rc = sqlite3_changes(s->db) > 0 ? 0 : MP_ENOTFOUND;
out:
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    return rc;
}

/* A negative value returned by cb is passed back to the caller; a positive one just stops. */
static int
sq_user_list(mp_store *st, const char *domain, mp_store_user_cb cb, void *ud)
{
    sqlite_store *s = (sqlite_store *)st;
    sqlite3_stmt *q = s->list;
    int rc = 0, step;

    if (sqlite3_bind_text(q, 1, domain, -1, SQLITE_STATIC) != SQLITE_OK) {
        rc = db_fail(s, "user_list bind");
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
        rc = db_fail(s, "user_list");
out:
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    return rc;
}

static void
sq_close(mp_store *st)
{
    sqlite_store *s = (sqlite_store *)st;

    if (!s)
        return;
    sqlite3_finalize(s->get);
    sqlite3_finalize(s->insert);
    sqlite3_finalize(s->update);
    sqlite3_finalize(s->del);
    sqlite3_finalize(s->list);
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
    return exec(s, "PRAGMA journal_mode=WAL");
}

int
mp_store_sqlite_open(const char *path, mp_store **out)
{
    sqlite_store *s;
    int rc;

    *out = NULL;
    if ((rc = create_private(path)) < 0)
        return rc;
    s = calloc(1, sizeof *s);
    if (!s)
        return MP_ENOMEM;
    s->base.ops = &sqlite_ops;
    if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX, NULL) !=
        SQLITE_OK) {
        rc = s->db ? db_fail(s, path) : MP_ENOMEM;
        goto fail;
    }
    sqlite3_extended_result_codes(s->db, 1);
    /* The busy handler first: magpiectl and magpied may open the same new file at once. */
    if (sqlite3_busy_timeout(s->db, 5000) != SQLITE_OK) {
        rc = db_fail(s, "busy_timeout");
        goto fail;
    }
    if ((rc = set_wal(s)) < 0 || (rc = exec(s, "PRAGMA synchronous=FULL")) < 0 ||
        (rc = exec(s, "PRAGMA foreign_keys=ON")) < 0)
        goto fail;
    if ((rc = migrate(s)) < 0)
        goto fail;
    if ((rc = prepare(s,
                      "SELECT iterations, salt, sha1_stored, sha1_server, sha256_stored,"
                      " sha256_server FROM users WHERE domain = ?1 AND node = ?2",
                      &s->get)) < 0 ||
        (rc = prepare(s,
                      "INSERT INTO users (domain, node, iterations, salt, sha1_stored,"
                      " sha1_server, sha256_stored, sha256_server, created)"
                      " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                      &s->insert)) < 0 ||
        (rc = prepare(s,
                      "UPDATE users SET iterations = ?3, salt = ?4, sha1_stored = ?5,"
                      " sha1_server = ?6, sha256_stored = ?7, sha256_server = ?8"
                      " WHERE domain = ?1 AND node = ?2",
                      &s->update)) < 0 ||
        (rc = prepare(s, "DELETE FROM users WHERE domain = ?1 AND node = ?2", &s->del)) < 0 ||
        (rc = prepare(s, "SELECT node FROM users WHERE domain = ?1 ORDER BY node", &s->list)) < 0)
        goto fail;
    *out = &s->base;
    return 0;
fail:
    sq_close(&s->base);
    return rc;
}
