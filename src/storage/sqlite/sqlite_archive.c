/* SQLite backend, message archive (XEP-0313): one row per message, owners numbered in their
 * own table so the per-message indexes hold integers, an FTS5 index over the bodies. */
#include "storage/sqlite/sqlite_int.h"
#include "base/err.h"
#include "base/log.h"
#include "base/rand.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The owner row carries the message count (kept by triggers, so appends can trim and RSM can
 * count without a scan) and the preferences. Message rows never change once written. The id is
 * the rowid, which orders messages of equal stamp; sid is the id the world sees. External-content
 * FTS5 keeps only the index: the text stays in archive.body, where the delete trigger finds
 * what to remove. Retention (stamp < cutoff) walks (owner, stamp) owner by owner, which spares
 * every append the upkeep of an index on stamp alone. */
const char mp_sq_archive_schema[] =
    "CREATE TABLE archive_owner ("
    " id INTEGER PRIMARY KEY,"
    " domain TEXT NOT NULL,"
    " node TEXT NOT NULL,"
    " items INTEGER NOT NULL DEFAULT 0,"
    " prefs BLOB,"
    " UNIQUE (domain, node)"
    ");"
    "CREATE TABLE archive ("
    " id INTEGER PRIMARY KEY,"
    " owner INTEGER NOT NULL,"
    " sid TEXT NOT NULL,"
    " stamp INTEGER NOT NULL,"
    " with_jid TEXT NOT NULL,"
    " with_res TEXT NOT NULL,"
    " dir INTEGER NOT NULL,"
    " origin_id TEXT,"
    " body TEXT,"
    " stanza BLOB NOT NULL"
    ");"
    "CREATE UNIQUE INDEX archive_sid ON archive (sid);"
    "CREATE INDEX archive_owner_stamp ON archive (owner, stamp);"
    "CREATE INDEX archive_owner_with ON archive (owner, with_jid, stamp);"
    "CREATE VIRTUAL TABLE archive_fts USING fts5 (body, content='archive', content_rowid='id',"
    " tokenize='unicode61 remove_diacritics 2');"
    "CREATE TRIGGER archive_ins AFTER INSERT ON archive BEGIN"
    " UPDATE archive_owner SET items = items + 1 WHERE id = new.owner;"
    " INSERT INTO archive_fts (rowid, body) SELECT new.id, new.body WHERE new.body IS NOT NULL;"
    " END;"
    "CREATE TRIGGER archive_del AFTER DELETE ON archive BEGIN"
    " UPDATE archive_owner SET items = items - 1 WHERE id = old.owner;"
    " INSERT INTO archive_fts (archive_fts, rowid, body)"
    "  SELECT 'delete', old.id, old.body WHERE old.body IS NOT NULL;"
    " END;"
    "CREATE TRIGGER archive_upd AFTER UPDATE OF body ON archive BEGIN"
    " INSERT INTO archive_fts (archive_fts, rowid, body)"
    "  SELECT 'delete', old.id, old.body WHERE old.body IS NOT NULL;"
    " INSERT INTO archive_fts (rowid, body) SELECT new.id, new.body WHERE new.body IS NOT NULL;"
    " END;";

/* Schema 4: an append counts the owner's items and indexes the body itself (A_ITEMS_INC,
 * A_FTS_INSERT) instead of by trigger, and finds its owner with a plain SELECT before any
 * upsert. A statement that needs a statement journal (a trigger that writes, an upsert) opens
 * a savepoint, and at every savepoint FTS5 flushes its pending terms into a new segment: one
 * segment per message, half of what an append cost. */
const char mp_sq_archive_schema_v4[] = "DROP TRIGGER IF EXISTS archive_ins;";

enum {
    A_OWNER_GET,
    A_OWNER_UPSERT,
    A_INSERT,
    A_FTS_INSERT,
    A_ITEMS_INC,
    A_TRIM,
    A_KEY,
    A_GET,
    A_DROP_ITEMS,
    A_DROP_OWNER,
    A_PURGE,
    A_PREFS_GET,
    A_PREFS_PUT,
    A_PREFS_CLEAR,
    A_COUNT
};

static const char *const archive_sql[A_COUNT] = {
    [A_OWNER_GET] = "SELECT id, items FROM archive_owner WHERE domain = ?1 AND node = ?2",
    /* the no-op update makes RETURNING answer for an existing owner too */
    [A_OWNER_UPSERT] = "INSERT INTO archive_owner (domain, node) VALUES (?1, ?2)"
                       " ON CONFLICT (domain, node) DO UPDATE SET items = items"
                       " RETURNING id, items",
    [A_INSERT] = "INSERT INTO archive (owner, sid, stamp, with_jid, with_res, dir, origin_id,"
                 " body, stanza) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    [A_FTS_INSERT] = "INSERT INTO archive_fts (rowid, body) VALUES (?1, ?2)",
    [A_ITEMS_INC] = "UPDATE archive_owner SET items = items + 1 WHERE id = ?1",
    /* the oldest ?2 of the owner, never the message just added (?3) */
    [A_TRIM] = "DELETE FROM archive WHERE id IN (SELECT id FROM archive"
               " WHERE owner = ?1 AND id <> ?3 ORDER BY stamp, id LIMIT ?2)",
    [A_KEY] = "SELECT stamp, id FROM archive WHERE sid = ?1 AND owner = ?2",
    [A_GET] = "SELECT sid, with_jid, with_res, dir, stamp, origin_id, body, stanza FROM archive"
              " WHERE sid = ?3 AND owner ="
              " (SELECT id FROM archive_owner WHERE domain = ?1 AND node = ?2)",
    [A_DROP_ITEMS] = "DELETE FROM archive WHERE owner ="
                     " (SELECT id FROM archive_owner WHERE domain = ?1 AND node = ?2)",
    [A_DROP_OWNER] = "DELETE FROM archive_owner WHERE domain = ?1 AND node = ?2",
    [A_PURGE] = "DELETE FROM archive INDEXED BY archive_owner_stamp"
                " WHERE owner IN (SELECT id FROM archive_owner) AND stamp < ?1",
    [A_PREFS_GET] = "SELECT prefs FROM archive_owner WHERE domain = ?1 AND node = ?2"
                    " AND prefs IS NOT NULL",
    [A_PREFS_PUT] = "INSERT INTO archive_owner (domain, node, prefs) VALUES (?1, ?2, ?3)"
                    " ON CONFLICT (domain, node) DO UPDATE SET prefs = excluded.prefs",
    [A_PREFS_CLEAR] = "UPDATE archive_owner SET prefs = NULL WHERE domain = ?1 AND node = ?2",
};

/* Query statements differ by which filters apply: each shape is compiled on first use and kept,
 * so a query compiles no SQL after the first of its kind. The parameter numbers are fixed. */
enum {
    S_WITH = 1 << 0,    /* ?2 with_jid */
    S_RES = 1 << 1,     /* ?3 with_res */
    S_START = 1 << 2,   /* ?4 */
    S_END = 1 << 3,     /* ?5 */
    S_FTS = 1 << 4,     /* ?6 FTS5 query */
    S_LO = 1 << 5,      /* (stamp, id) > (?7, ?8) */
    S_LO_INCL = 1 << 6, /* ... >= instead */
    S_HI = 1 << 7,      /* (stamp, id) < (?9, ?10) */
    S_SHAPES = 1 << 8,
    S_FILTERS = S_WITH | S_RES | S_START | S_END | S_FTS,
};

/* What a shaped statement returns: items oldest first, (stamp, id) newest first, a count. */
enum { M_ITEMS, M_KEYS_DESC, M_COUNT, M_MODES };

#define ID_RAW 12      /* random bytes per id: 16 base64 characters */
#define POOL_IDS 32    /* ids drawn from one getrandom call */
#define APPEND_TRIES 4 /* a fresh id after a (96-bit) collision */
#define PREFS_ON_STACK 16

typedef struct mp_sq_archive {
    sqlite3_stmt *q[A_COUNT];
    sqlite3_stmt *shape[M_MODES][S_SHAPES];
    unsigned char pool[ID_RAW * POOL_IDS];
    size_t pool_used;
    int in_query; /* a query's statement is stepping: a nested query would reset it */
} mp_sq_archive;

int
mp_sq_archive_open(sqlite_store *s)
{
    int rc;

    s->arch = calloc(1, sizeof *s->arch);
    if (!s->arch)
        return MP_ENOMEM;
    s->arch->pool_used = sizeof s->arch->pool;
    for (int i = 0; i < A_COUNT; i++)
        if ((rc = mp_sq_prepare(s, archive_sql[i], &s->arch->q[i])) < 0)
            return rc;
    return 0;
}

void
mp_sq_archive_close(sqlite_store *s)
{
    mp_sq_archive *a = s->arch;

    if (!a)
        return;
    for (int i = 0; i < A_COUNT; i++)
        sqlite3_finalize(a->q[i]);
    for (int m = 0; m < M_MODES; m++)
        for (int i = 0; i < S_SHAPES; i++)
            sqlite3_finalize(a->shape[m][i]);
    free(a);
    s->arch = NULL;
}

/* A fresh id: URL-safe base64 (no padding) of 96 random bits. */
static void
new_id(mp_sq_archive *a, char out[MP_ARCHIVE_ID_SIZE])
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    if (a->pool_used + ID_RAW > sizeof a->pool) {
        mp_random_bytes(a->pool, sizeof a->pool);
        a->pool_used = 0;
    }
    const unsigned char *r = a->pool + a->pool_used;
    for (int i = 0, o = 0; i < ID_RAW; i += 3) {
        uint32_t v = (uint32_t)r[i] << 16 | (uint32_t)r[i + 1] << 8 | r[i + 2];
        out[o++] = b64[v >> 18 & 63];
        out[o++] = b64[v >> 12 & 63];
        out[o++] = b64[v >> 6 & 63];
        out[o++] = b64[v & 63];
    }
    out[MP_ARCHIVE_ID_LEN] = '\0';
    /* used bytes are wiped so a later reader of this memory learns nothing of past ids */
    memset(a->pool + a->pool_used, 0, ID_RAW);
    a->pool_used += ID_RAW;
}

/* The owner's row id and message count; MP_ENOTFOUND when it has none. */
static int
owner_get(sqlite_store *s, const char *domain, const char *node, sqlite3_int64 *id,
          sqlite3_int64 *items)
{
    sqlite3_stmt *q = s->arch->q[A_OWNER_GET];
    int rc = 0;

    if (mp_sq_bind_key(q, domain, node) < 0) {
        rc = mp_sq_fail(s, "archive owner bind");
        goto out;
    }
    switch (sqlite3_step(q)) {
    case SQLITE_ROW:
        *id = sqlite3_column_int64(q, 0);
        if (items)
            *items = sqlite3_column_int64(q, 1);
        break;
    case SQLITE_DONE:
        rc = MP_ENOTFOUND;
        break;
    default:
        rc = mp_sq_fail(s, "archive owner");
    }
out:
    mp_sq_done(q);
    return rc;
}

static int
owner_upsert(sqlite_store *s, const char *domain, const char *node, sqlite3_int64 *id,
             sqlite3_int64 *items)
{
    sqlite3_stmt *q = s->arch->q[A_OWNER_GET];
    int rc = 0;

    /* Almost always there already: a read opens no savepoint (see schema v4). */
    if (mp_sq_bind_key(q, domain, node) < 0)
        return mp_sq_fail(s, "archive owner get");
    int step = sqlite3_step(q);
    if (step == SQLITE_ROW) {
        *id = sqlite3_column_int64(q, 0);
        *items = sqlite3_column_int64(q, 1);
    }
    mp_sq_done(q);
    if (step == SQLITE_ROW)
        return 0;
    if (step != SQLITE_DONE)
        return mp_sq_fail(s, "archive owner get");
    q = s->arch->q[A_OWNER_UPSERT];

    if (mp_sq_bind_key(q, domain, node) < 0 || sqlite3_step(q) != SQLITE_ROW) {
        rc = mp_sq_fail(s, "archive owner upsert");
    } else {
        *id = sqlite3_column_int64(q, 0);
        *items = sqlite3_column_int64(q, 1);
        /* step to the end so the statement finishes its write before reset */
        if (sqlite3_step(q) != SQLITE_DONE)
            rc = mp_sq_fail(s, "archive owner upsert");
    }
    mp_sq_done(q);
    return rc;
}

static int
index_body(sqlite_store *s, sqlite3_int64 rowid, const char *body)
{
    sqlite3_stmt *q = s->arch->q[A_FTS_INSERT];
    if (sqlite3_bind_int64(q, 1, rowid) != SQLITE_OK ||
        sqlite3_bind_text(q, 2, body, -1, SQLITE_STATIC) != SQLITE_OK) {
        int rc = mp_sq_fail(s, "archive_append fts bind");
        mp_sq_done(q);
        return rc;
    }
    int step = sqlite3_step(q);
    mp_sq_done(q);
    return step == SQLITE_DONE ? 0 : mp_sq_fail(s, "archive_append fts");
}

/* Insert the row under a fresh id; a clash on the unique sid (odds 2^-96 per pair) draws
 * another. */
static int
insert_item(sqlite_store *s, sqlite3_int64 owner, const mp_archive_item *in,
            char id[MP_ARCHIVE_ID_SIZE])
{
    sqlite3_stmt *q = s->arch->q[A_INSERT];
    const char *res = in->with_resource ? in->with_resource : "";

    for (int t = 0; t < APPEND_TRIES; t++) {
        new_id(s->arch, id);
        if (sqlite3_bind_int64(q, 1, owner) != SQLITE_OK ||
            sqlite3_bind_text(q, 2, id, MP_ARCHIVE_ID_LEN, SQLITE_STATIC) != SQLITE_OK ||
            sqlite3_bind_int64(q, 3, in->stamp) != SQLITE_OK ||
            sqlite3_bind_text(q, 4, in->with_jid, -1, SQLITE_STATIC) != SQLITE_OK ||
            sqlite3_bind_text(q, 5, res, -1, SQLITE_STATIC) != SQLITE_OK ||
            sqlite3_bind_int(q, 6, in->direction) != SQLITE_OK ||
            sqlite3_bind_text(q, 7, in->origin_id, -1, SQLITE_STATIC) != SQLITE_OK ||
            sqlite3_bind_text(q, 8, in->body, -1, SQLITE_STATIC) != SQLITE_OK ||
            sqlite3_bind_blob(q, 9, in->stanza, (int)in->len, SQLITE_STATIC) != SQLITE_OK) {
            int rc = mp_sq_fail(s, "archive_append bind");
            mp_sq_done(q);
            return rc;
        }
        int step = sqlite3_step(q);
        mp_sq_done(q);
        if (step == SQLITE_DONE) {
            sqlite3_int64 rowid = sqlite3_last_insert_rowid(s->db);
            sqlite3_stmt *inc = s->arch->q[A_ITEMS_INC];
            int rc =
                sqlite3_bind_int64(inc, 1, owner) == SQLITE_OK && sqlite3_step(inc) == SQLITE_DONE
                    ? 0
                    : mp_sq_fail(s, "archive_append count");
            mp_sq_done(inc);
            if (rc < 0)
                return rc;
            return in->body ? index_body(s, rowid, in->body) : 0;
        }
        if (step != SQLITE_CONSTRAINT_UNIQUE)
            return mp_sq_fail(s, "archive_append");
        mp_warn("sqlite: archive id collision, drawing another");
    }
    return MP_EIO;
}

int
mp_sq_archive_append(mp_store *st, const char *domain, const char *node, const mp_archive_item *in,
                     int64_t max_items, char *id_out, size_t id_cap)
{
    sqlite_store *s = (sqlite_store *)st;
    char id[MP_ARCHIVE_ID_SIZE];
    sqlite3_int64 owner = 0, items = 0;
    int rc, outer = 0, own_tx;

    if (!in || !in->with_jid || !in->stanza || in->len == 0 || !id_out ||
        id_cap < MP_ARCHIVE_ID_SIZE ||
        (in->direction != MP_ARCHIVE_IN && in->direction != MP_ARCHIVE_OUT))
        return MP_EINVAL;
    if (in->len > INT_MAX)
        return MP_ELIMIT;
    /* Inside a caller's transaction (a batch) no savepoint: FTS5 flushes its pending terms to
     * disk at every savepoint, which made batched appends five times slower. A failure part-way
     * then leaves at most an empty owner row, or one item over max_items that the next append
     * trims, since it drops all that is over. */
    own_tx = sqlite3_get_autocommit(s->db);
    if (own_tx && (rc = mp_sq_tx_begin(s, &outer)) < 0)
        return rc;
    if ((rc = owner_upsert(s, domain, node, &owner, &items)) < 0)
        goto out;
    if ((rc = insert_item(s, owner, in, id)) < 0)
        goto out;
    if (max_items > 0 && items >= max_items) {
        sqlite3_stmt *q = s->arch->q[A_TRIM];
        if (sqlite3_bind_int64(q, 1, owner) != SQLITE_OK ||
            sqlite3_bind_int64(q, 2, items - max_items + 1) != SQLITE_OK ||
            sqlite3_bind_int64(q, 3, sqlite3_last_insert_rowid(s->db)) != SQLITE_OK) {
            rc = mp_sq_fail(s, "archive trim bind");
            mp_sq_done(q);
            goto out;
        }
        rc = mp_sq_step_done(s, q, "archive trim");
    }
out:
    if (own_tx)
        rc = mp_sq_tx_end(s, outer, rc);
    if (rc == 0)
        memcpy(id_out, id, MP_ARCHIVE_ID_SIZE);
    return rc;
}

/* ---- queries ---- */

/* The FTS5 query for what a user typed: every whitespace-separated word becomes a quoted string
 * (inner quotes doubled), so nothing is ever read as an operator, column filter, prefix or
 * grouping; FTS5 ANDs the strings. NULL in *out when there is no word at all. */
static int
fts_query(const char *text, char **out)
{
    size_t n = strlen(text);
    char *p, *o;
    int words = 0;

    *out = NULL;
    if (n > MP_ARCHIVE_FULLTEXT_MAX)
        return MP_ELIMIT;
    /* worst case "a b": every byte doubled, plus quotes and a space per word */
    p = malloc(3 * n + 1);
    if (!p)
        return MP_ENOMEM;
    o = p;
    for (const char *t = text; *t;) {
        while (*t == ' ' || *t == '\t' || *t == '\n' || *t == '\r' || *t == '\f' || *t == '\v')
            t++;
        if (!*t)
            break;
        if (words++)
            *o++ = ' ';
        *o++ = '"';
        for (;
             *t && *t != ' ' && *t != '\t' && *t != '\n' && *t != '\r' && *t != '\f' && *t != '\v';
             t++) {
            if (*t == '"')
                *o++ = '"';
            *o++ = *t;
        }
        *o++ = '"';
    }
    *o = '\0';
    if (!words) {
        free(p);
        return 0;
    }
    *out = p;
    return 0;
}

static sqlite3_stmt *
shape_stmt(sqlite_store *s, int mode, unsigned shape)
{
    static const char *const head[M_MODES] = {
        [M_ITEMS] = "SELECT sid, with_jid, with_res, dir, stamp, origin_id, body, stanza",
        [M_KEYS_DESC] = "SELECT stamp, id",
        [M_COUNT] = "SELECT count(*)",
    };
    sqlite3_stmt **slot = &s->arch->shape[mode][shape];
    char sql[640];

    if (*slot)
        return *slot;
    snprintf(sql, sizeof sql, "%s FROM archive WHERE owner = ?1%s%s%s%s%s%s%s%s", head[mode],
             shape & S_WITH ? " AND with_jid = ?2" : "", shape & S_RES ? " AND with_res = ?3" : "",
             shape & S_START ? " AND stamp >= ?4" : "", shape & S_END ? " AND stamp <= ?5" : "",
             shape & S_FTS ? " AND id IN (SELECT rowid FROM archive_fts WHERE archive_fts MATCH ?6)"
                           : "",
             !(shape & S_LO)     ? ""
             : shape & S_LO_INCL ? " AND (stamp, id) >= (?7, ?8)"
                                 : " AND (stamp, id) > (?7, ?8)",
             shape & S_HI ? " AND (stamp, id) < (?9, ?10)" : "",
             mode == M_ITEMS       ? " ORDER BY stamp, id LIMIT ?11"
             : mode == M_KEYS_DESC ? " ORDER BY stamp DESC, id DESC LIMIT ?11"
                                   : "");
    if (mp_sq_prepare(s, sql, slot) < 0)
        return NULL;
    return *slot;
}

/* Where a page boundary sits: the (stamp, rowid) of an item. */
typedef struct key {
    sqlite3_int64 stamp, id;
} key;

typedef struct qctx {
    sqlite3_int64 owner;
    const mp_archive_query *q;
    const char *fts;
    key lo, hi;
} qctx;

static int
bind_shape(sqlite3_stmt *st, unsigned shape, const qctx *c, sqlite3_int64 limit, int mode)
{
    const mp_archive_query *q = c->q;

    if (sqlite3_bind_int64(st, 1, c->owner) != SQLITE_OK ||
        ((shape & S_WITH) && sqlite3_bind_text(st, 2, q->with_jid, -1, SQLITE_STATIC)) ||
        ((shape & S_RES) && sqlite3_bind_text(st, 3, q->with_resource, -1, SQLITE_STATIC)) ||
        ((shape & S_START) && sqlite3_bind_int64(st, 4, q->start)) ||
        ((shape & S_END) && sqlite3_bind_int64(st, 5, q->end)) ||
        ((shape & S_FTS) && sqlite3_bind_text(st, 6, c->fts, -1, SQLITE_STATIC)) ||
        ((shape & S_LO) &&
         (sqlite3_bind_int64(st, 7, c->lo.stamp) || sqlite3_bind_int64(st, 8, c->lo.id))) ||
        ((shape & S_HI) &&
         (sqlite3_bind_int64(st, 9, c->hi.stamp) || sqlite3_bind_int64(st, 10, c->hi.id))) ||
        (mode != M_COUNT && sqlite3_bind_int64(st, 11, limit)))
        return MP_EIO;
    return 0;
}

/* The position of the owner's item with archive id sid: MP_ENOTFOUND if there is none. */
static int
key_of(sqlite_store *s, sqlite3_int64 owner, const char *sid, key *out)
{
    sqlite3_stmt *q = s->arch->q[A_KEY];
    int rc = 0;

    if (sqlite3_bind_text(q, 1, sid, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_int64(q, 2, owner) != SQLITE_OK) {
        rc = mp_sq_fail(s, "archive key bind");
        goto out;
    }
    switch (sqlite3_step(q)) {
    case SQLITE_ROW:
        out->stamp = sqlite3_column_int64(q, 0);
        out->id = sqlite3_column_int64(q, 1);
        break;
    case SQLITE_DONE:
        rc = MP_ENOTFOUND;
        break;
    default:
        rc = mp_sq_fail(s, "archive key");
    }
out:
    mp_sq_done(q);
    return rc;
}

/* The item row st stands on (columns as in M_ITEMS and A_GET) to cb. */
static int
item_row(sqlite3_stmt *st, mp_archive_cb cb, void *ud)
{
    mp_archive_item it = {0};

    it.id = (const char *)sqlite3_column_text(st, 0);
    it.with_jid = (const char *)sqlite3_column_text(st, 1);
    it.with_resource = (const char *)sqlite3_column_text(st, 2);
    it.direction = sqlite3_column_int(st, 3);
    it.stamp = sqlite3_column_int64(st, 4);
    it.origin_id = (const char *)sqlite3_column_text(st, 5);
    it.body = (const char *)sqlite3_column_text(st, 6);
    it.stanza = sqlite3_column_blob(st, 7);
    it.len = (size_t)sqlite3_column_bytes(st, 7);
    if (!it.id || strlen(it.id) != MP_ARCHIVE_ID_LEN || !it.with_jid || !it.with_resource ||
        !it.stanza) {
        mp_err("sqlite: damaged archive row");
        return MP_EIO;
    }
    return cb(&it, ud);
}

/* Run an M_ITEMS statement: up to n items to cb, recording the first and last ids. Returns 1 if
 * a further row exists (the page is not the end), 0 if not, 2 if cb stopped, or MP_E*. */
static int
deliver(sqlite_store *s, sqlite3_stmt *st, sqlite3_int64 n, mp_archive_cb cb, void *ud,
        mp_archive_page *out)
{
    int step, r;

    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if ((sqlite3_int64)out->n == n)
            return 1;
        if ((r = item_row(st, cb, ud)) < 0)
            return r;
        const char *sid = (const char *)sqlite3_column_text(st, 0);
        if (out->n++ == 0)
            memcpy(out->first, sid, MP_ARCHIVE_ID_SIZE);
        memcpy(out->last, sid, MP_ARCHIVE_ID_SIZE);
        if (r > 0)
            return 2;
    }
    return step == SQLITE_DONE ? 0 : mp_sq_fail(s, "archive_query");
}

/* Backwards: walk the keys newest first to find where the page starts, then read the page
 * oldest first from there, so the items reach cb in order without being held in memory. */
static int
query_backward(sqlite_store *s, unsigned shape, qctx *c, sqlite3_int64 limit, mp_archive_cb cb,
               void *ud, mp_archive_page *out)
{
    sqlite3_stmt *st = shape_stmt(s, M_KEYS_DESC, shape);
    sqlite3_int64 n = 0;
    key low = {0};
    int rc = 0, step;

    if (!st)
        return MP_EIO;
    if (bind_shape(st, shape, c, limit + 1, M_KEYS_DESC) < 0) {
        rc = mp_sq_fail(s, "archive_query bind");
        goto out;
    }
    while ((step = sqlite3_step(st)) == SQLITE_ROW && n < limit) {
        low.stamp = sqlite3_column_int64(st, 0);
        low.id = sqlite3_column_int64(st, 1);
        n++;
    }
    if (step != SQLITE_ROW && step != SQLITE_DONE) {
        rc = mp_sq_fail(s, "archive_query keys");
        goto out;
    }
    out->complete = step == SQLITE_DONE;
    mp_sq_done(st);
    if (n == 0)
        return 0;
    /* the page's first key is a lower bound tighter than after_id's, which it replaces */
    shape |= S_LO | S_LO_INCL;
    c->lo = low;
    st = shape_stmt(s, M_ITEMS, shape);
    if (!st)
        return MP_EIO;
    if (bind_shape(st, shape, c, n, M_ITEMS) < 0) {
        rc = mp_sq_fail(s, "archive_query bind");
        goto out;
    }
    rc = deliver(s, st, n, cb, ud, out);
    if (rc == 2)
        out->complete = 0;
    rc = rc < 0 ? rc : 0;
out:
    mp_sq_done(st);
    return rc;
}

static int
query_forward(sqlite_store *s, unsigned shape, qctx *c, sqlite3_int64 limit, mp_archive_cb cb,
              void *ud, mp_archive_page *out)
{
    sqlite3_stmt *st = shape_stmt(s, M_ITEMS, shape);
    int rc;

    if (!st)
        return MP_EIO;
    if (bind_shape(st, shape, c, limit + 1, M_ITEMS) < 0) {
        rc = mp_sq_fail(s, "archive_query bind");
        goto out;
    }
    rc = deliver(s, st, limit, cb, ud, out);
    if (rc >= 0) {
        out->complete = rc == 0;
        rc = 0;
    }
out:
    mp_sq_done(st);
    return rc;
}

static int
query_count(sqlite_store *s, unsigned shape, qctx *c, int64_t *count)
{
    sqlite3_stmt *st = shape_stmt(s, M_COUNT, shape);
    int rc = 0;

    if (!st)
        return MP_EIO;
    if (bind_shape(st, shape, c, 0, M_COUNT) < 0 || sqlite3_step(st) != SQLITE_ROW)
        rc = mp_sq_fail(s, "archive_query count");
    else
        *count = sqlite3_column_int64(st, 0);
    mp_sq_done(st);
    return rc;
}

int
mp_sq_archive_query(mp_store *st, const char *domain, const char *node, const mp_archive_query *q,
                    mp_archive_cb cb, void *ud, mp_archive_page *out)
{
    sqlite_store *s = (sqlite_store *)st;
    qctx c = {.q = q};
    sqlite3_int64 items = 0, limit;
    char *fts = NULL;
    unsigned shape = 0;
    int rc;

    memset(out, 0, sizeof *out);
    out->count = -1;
    if (!q || !cb || q->limit < 0 || (q->with_resource && !q->with_jid))
        return MP_EINVAL;
    if (s->arch->in_query)
        return MP_EINVAL; /* from inside a query's callback */
    limit = q->limit > MP_ARCHIVE_LIMIT_MAX ? MP_ARCHIVE_LIMIT_MAX : q->limit;
    if (q->fulltext && (rc = fts_query(q->fulltext, &fts)) < 0)
        return rc;
    c.fts = fts;
    shape |= q->with_jid ? S_WITH : 0;
    shape |= q->with_resource ? S_RES : 0;
    shape |= q->has_start ? S_START : 0;
    shape |= q->has_end ? S_END : 0;
    shape |= fts ? S_FTS : 0;

    rc = owner_get(s, domain, node, &c.owner, &items);
    if (rc == MP_ENOTFOUND) {
        /* nothing archived yet: no id can be known */
        if (q->after_id || (q->before_id && *q->before_id))
            goto out;
        out->complete = 1;
        if (q->want_count)
            out->count = 0;
        rc = 0;
        goto out;
    }
    if (rc < 0)
        goto out;
    if (q->after_id) {
        if ((rc = key_of(s, c.owner, q->after_id, &c.lo)) < 0)
            goto out;
        shape |= S_LO;
    }
    if (q->before_id && *q->before_id) {
        if ((rc = key_of(s, c.owner, q->before_id, &c.hi)) < 0)
            goto out;
        shape |= S_HI;
    }
    s->arch->in_query = 1;
    if (q->before_id)
        rc = query_backward(s, shape, &c, limit, cb, ud, out);
    else
        rc = query_forward(s, shape, &c, limit, cb, ud, out);
    s->arch->in_query = 0;
    if (rc < 0 || !q->want_count)
        goto out;
    if (!(shape & S_FILTERS))
        out->count = items;
    else
        rc = query_count(s, shape & S_FILTERS, &c, &out->count);
out:
    free(fts);
    return rc;
}

int
mp_sq_archive_get_by_id(mp_store *st, const char *domain, const char *node, const char *id,
                        mp_archive_cb cb, void *ud)
{
    sqlite_store *s = (sqlite_store *)st;
    sqlite3_stmt *q = s->arch->q[A_GET];
    int rc;

    if (!id || !cb)
        return MP_EINVAL;
    if (mp_sq_bind_key(q, domain, node) < 0 ||
        sqlite3_bind_text(q, 3, id, -1, SQLITE_STATIC) != SQLITE_OK) {
        rc = mp_sq_fail(s, "archive_get bind");
        goto out;
    }
    switch (sqlite3_step(q)) {
    case SQLITE_ROW:
        rc = item_row(q, cb, ud);
        if (rc > 0)
            rc = 0;
        break;
    case SQLITE_DONE:
        rc = MP_ENOTFOUND;
        break;
    default:
        rc = mp_sq_fail(s, "archive_get");
    }
out:
    mp_sq_done(q);
    return rc;
}

/* ---- deletion ---- */

/* Messages first: their delete trigger updates the owner row, which must still be there. */
int
mp_sq_archive_drop(sqlite_store *s, const char *domain, const char *node)
{
    static const int drops[] = {A_DROP_ITEMS, A_DROP_OWNER};
    int rc = 0;

    for (size_t i = 0; i < sizeof drops / sizeof drops[0] && rc == 0; i++) {
        sqlite3_stmt *q = s->arch->q[drops[i]];
        if (mp_sq_bind_key(q, domain, node) < 0) {
            rc = mp_sq_fail(s, "archive drop bind");
            mp_sq_done(q);
            break;
        }
        rc = mp_sq_step_done(s, q, "archive drop");
    }
    return rc;
}

int
mp_sq_archive_delete_owner(mp_store *st, const char *domain, const char *node)
{
    sqlite_store *s = (sqlite_store *)st;
    int rc, outer;

    if ((rc = mp_sq_tx_begin(s, &outer)) < 0)
        return rc;
    rc = mp_sq_archive_drop(s, domain, node);
    return mp_sq_tx_end(s, outer, rc);
}

int64_t
mp_sq_archive_purge_before(mp_store *st, int64_t cutoff_us)
{
    sqlite_store *s = (sqlite_store *)st;
    sqlite3_stmt *q = s->arch->q[A_PURGE];
    int64_t n = 0;
    int rc, outer;

    if ((rc = mp_sq_tx_begin(s, &outer)) < 0)
        return rc;
    if (sqlite3_bind_int64(q, 1, cutoff_us) != SQLITE_OK) {
        rc = mp_sq_fail(s, "archive purge bind");
        mp_sq_done(q);
    } else if ((rc = mp_sq_step_done(s, q, "archive purge")) == 0) {
        n = sqlite3_changes64(s->db); /* rows of the DELETE itself, not of its triggers */
    }
    rc = mp_sq_tx_end(s, outer, rc);
    return rc < 0 ? rc : n;
}

/* ---- preferences ---- */

/* Stored as one BLOB: the default mode as a byte, then per JID 'A' (always) or 'N' (never),
 * the JID and a NUL. JIDs cannot contain NUL, so the form needs no escaping. */
static int
prefs_encode(const mp_archive_prefs *p, char **out, size_t *len)
{
    size_t total = 1;

    if (p->default_mode < MP_ARCHIVE_ALWAYS || p->default_mode > MP_ARCHIVE_ROSTER ||
        (p->nalways && !p->always) || (p->nnever && !p->never))
        return MP_EINVAL;
    for (int l = 0; l < 2; l++) {
        const char *const *v = l ? p->never : p->always;
        size_t nv = l ? p->nnever : p->nalways;
        for (size_t i = 0; i < nv; i++) {
            if (!v[i] || !*v[i])
                return MP_EINVAL;
            total += strlen(v[i]) + 2;
            if (total > INT_MAX)
                return MP_ELIMIT;
        }
    }
    char *b = malloc(total), *o = b;
    if (!b)
        return MP_ENOMEM;
    *o++ = (char)p->default_mode;
    for (int l = 0; l < 2; l++) {
        const char *const *v = l ? p->never : p->always;
        size_t nv = l ? p->nnever : p->nalways;
        for (size_t i = 0; i < nv; i++) {
            size_t n = strlen(v[i]) + 1;
            *o++ = l ? 'N' : 'A';
            memcpy(o, v[i], n);
            o += n;
        }
    }
    *out = b;
    *len = total;
    return 0;
}

/* Split the BLOB of the row q stands on and hand it to cb; the JIDs point into the BLOB. */
static int
prefs_row(sqlite3_stmt *q, const char *domain, const char *node, mp_archive_prefs_cb cb, void *ud)
{
    const char *stack[PREFS_ON_STACK], **v = stack;
    const char *b = sqlite3_column_blob(q, 0);
    size_t len = (size_t)sqlite3_column_bytes(q, 0), n = 0;
    mp_archive_prefs p = {0};
    int rc;

    if (!b || len < 1 || b[0] < MP_ARCHIVE_ALWAYS || b[0] > MP_ARCHIVE_ROSTER ||
        (len > 1 && b[len - 1] != '\0'))
        goto damaged;
    for (size_t i = 1; i < len; i++)
        n += b[i] == '\0';
    if (n > PREFS_ON_STACK && !(v = malloc(n * sizeof *v)))
        return MP_ENOMEM;
    /* always-JIDs fill v from the front, never-JIDs from the back: one array for both lists */
    size_t front = 0, back = n;
    for (size_t i = 1; i < len;) {
        char kind = b[i++];
        if (kind == 'A')
            v[front++] = b + i;
        else if (kind == 'N')
            v[--back] = b + i;
        else
            goto damaged_free;
        i += strlen(b + i) + 1;
    }
    if (front != back)
        goto damaged_free;
    /* the never-list was filled backwards: restore the stored order */
    for (size_t i = back, j = n; i < j--; i++) {
        const char *t = v[i];
        v[i] = v[j];
        v[j] = t;
    }
    p.default_mode = b[0];
    p.always = v;
    p.nalways = front;
    p.never = v + back;
    p.nnever = n - back;
    rc = cb(&p, ud);
    if (v != stack)
        free(v);
    return rc;
damaged_free:
    if (v != stack)
        free(v);
damaged:
    mp_err("sqlite: damaged archive preferences of %s@%s", node, domain);
    return MP_EIO;
}

int
mp_sq_archive_prefs_get(mp_store *st, const char *domain, const char *node, mp_archive_prefs_cb cb,
                        void *ud)
{
    sqlite_store *s = (sqlite_store *)st;
    sqlite3_stmt *q = s->arch->q[A_PREFS_GET];
    int rc;

    if (!cb)
        return MP_EINVAL;
    if (mp_sq_bind_key(q, domain, node) < 0) {
        rc = mp_sq_fail(s, "archive prefs bind");
        goto out;
    }
    switch (sqlite3_step(q)) {
    case SQLITE_ROW:
        rc = prefs_row(q, domain, node, cb, ud);
        break;
    case SQLITE_DONE:
        rc = MP_ENOTFOUND;
        break;
    default:
        rc = mp_sq_fail(s, "archive prefs");
    }
out:
    mp_sq_done(q);
    return rc;
}

int
mp_sq_archive_prefs_put(mp_store *st, const char *domain, const char *node,
                        const mp_archive_prefs *prefs)
{
    sqlite_store *s = (sqlite_store *)st;
    sqlite3_stmt *q = s->arch->q[prefs ? A_PREFS_PUT : A_PREFS_CLEAR];
    char *blob = NULL;
    size_t len = 0;
    int rc;

    if (prefs && (rc = prefs_encode(prefs, &blob, &len)) < 0)
        return rc;
    if (mp_sq_bind_key(q, domain, node) < 0 ||
        (prefs && sqlite3_bind_blob(q, 3, blob, (int)len, SQLITE_STATIC) != SQLITE_OK)) {
        rc = mp_sq_fail(s, "archive prefs bind");
        mp_sq_done(q);
    } else {
        rc = mp_sq_step_done(s, q, "archive prefs put");
    }
    free(blob);
    return rc;
}
