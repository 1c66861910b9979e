/* The in-flight journal; see journal.h. */
#include "router/journal.h"
#include "base/err.h"
#include "base/log.h"

#include <sqlite3.h>
#include <stdlib.h>

enum { J_PUT, J_RELEASE, J_DROP, J_ALL, J_CLEAR, J_BEGIN, J_COMMIT, J_COUNT };

static const char *const sql[J_COUNT] = {
    [J_PUT] = ("INSERT OR REPLACE INTO inflight(sess, seq, domain, node, stanza) "
               "VALUES(?, ?, ?, ?, ?)"), /* parenthesized: clang's -Wstring-concatenation */
    [J_RELEASE] = "DELETE FROM inflight WHERE sess = ? AND seq <= ?",
    [J_DROP] = "DELETE FROM inflight WHERE sess = ?",
    [J_ALL] = "SELECT domain, node, stanza FROM inflight ORDER BY sess, seq",
    [J_CLEAR] = "DELETE FROM inflight",
    [J_BEGIN] = "BEGIN",
    [J_COMMIT] = "COMMIT",
};

struct mp_journal {
    sqlite3 *db;
    sqlite3_stmt *st[J_COUNT];
    int in_tx; /* writes since the last mp_journal_sync, in one open transaction */
};

static int
fail(mp_journal *j, const char *what)
{
    mp_err("journal: %s: %s", what, j->db ? sqlite3_errmsg(j->db) : "out of memory");
    return MP_EIO;
}

void
mp_journal_close(mp_journal *j)
{
    if (!j)
        return;
    mp_journal_sync(j);
    for (int i = 0; i < J_COUNT; i++)
        sqlite3_finalize(j->st[i]);
    sqlite3_close(j->db);
    free(j);
}

int
mp_journal_open(const char *path, mp_journal **out)
{
    mp_journal *j = calloc(1, sizeof *j);
    if (!j)
        return MP_ENOMEM;
    int rc = MP_EIO;
    if (sqlite3_open_v2(path, &j->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK) {
        rc = fail(j, path);
        goto out;
    }
    /* WAL without fsync: a commit is in the kernel's page cache when the call returns, which
     * is what outlives the process. */
    if (sqlite3_exec(j->db,
                     "PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF;"
                     "CREATE TABLE IF NOT EXISTS inflight(sess INTEGER NOT NULL, "
                     "seq INTEGER NOT NULL, domain TEXT NOT NULL, node TEXT NOT NULL, "
                     "stanza BLOB NOT NULL, PRIMARY KEY(sess, seq)) WITHOUT ROWID",
                     NULL, NULL, NULL) != SQLITE_OK) {
        rc = fail(j, path);
        goto out;
    }
    for (int i = 0; i < J_COUNT; i++) {
        if (sqlite3_prepare_v3(j->db, sql[i], -1, SQLITE_PREPARE_PERSISTENT, &j->st[i], NULL) !=
            SQLITE_OK) {
            rc = fail(j, sql[i]);
            goto out;
        }
    }
    *out = j;
    return 0;
out:
    mp_journal_close(j);
    return rc;
}

static int
step_done(mp_journal *j, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_DONE ? 0 : fail(j, what);
}

/* Writes group into one transaction until the next sync: a commit per message would cost
 * more than routing it. */
static int
begin(mp_journal *j)
{
    if (j->in_tx)
        return 0;
    int rc = step_done(j, j->st[J_BEGIN], "begin");
    if (rc == 0)
        j->in_tx = 1;
    return rc;
}

int
mp_journal_sync(mp_journal *j)
{
    if (!j || !j->in_tx)
        return 0;
    j->in_tx = 0;
    return step_done(j, j->st[J_COMMIT], "commit");
}

int
mp_journal_put(mp_journal *j, uint64_t sess, uint64_t seq, const char *domain, const char *node,
               const char *bytes, size_t len)
{
    if (begin(j) < 0)
        return MP_EIO;
    sqlite3_stmt *st = j->st[J_PUT];
    sqlite3_bind_int64(st, 1, (sqlite3_int64)sess);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)seq);
    sqlite3_bind_text(st, 3, domain, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, node, -1, SQLITE_STATIC);
    sqlite3_bind_blob64(st, 5, bytes, len, SQLITE_STATIC);
    return step_done(j, st, "put");
}

int
mp_journal_release(mp_journal *j, uint64_t sess, uint64_t upto)
{
    if (begin(j) < 0)
        return MP_EIO;
    sqlite3_stmt *st = j->st[J_RELEASE];
    sqlite3_bind_int64(st, 1, (sqlite3_int64)sess);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)upto);
    return step_done(j, st, "release");
}

int
mp_journal_drop(mp_journal *j, uint64_t sess)
{
    if (begin(j) < 0)
        return MP_EIO;
    sqlite3_stmt *st = j->st[J_DROP];
    sqlite3_bind_int64(st, 1, (sqlite3_int64)sess);
    return step_done(j, st, "drop");
}

int
mp_journal_recover(mp_journal *j, mp_journal_cb cb, void *ud)
{
    if (mp_journal_sync(j) < 0)
        return MP_EIO;
    sqlite3_stmt *st = j->st[J_ALL];
    int n = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *domain = (const char *)sqlite3_column_text(st, 0);
        const char *node = (const char *)sqlite3_column_text(st, 1);
        const char *bytes = sqlite3_column_blob(st, 2);
        size_t len = (size_t)sqlite3_column_bytes(st, 2);
        if (!domain || !node || !bytes)
            continue;
        if (cb(domain, node, bytes, len, ud) < 0) {
            sqlite3_reset(st);
            return MP_EIO;
        }
        n++;
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? n : fail(j, "recover");
}

int
mp_journal_clear(mp_journal *j)
{
    if (mp_journal_sync(j) < 0)
        return MP_EIO;
    return step_done(j, j->st[J_CLEAR], "clear");
}
