/* SQLite storage of publish-subscribe: nodes (their configuration as one document the module
 * writes), items in publishing order, subscriptions and affiliations. A service is a JID:
 * "pubsub.example.org" or an account's bare JID (PEP).
 *
 * The tables are created with IF NOT EXISTS when the store opens rather than by a schema
 * migration: they depend on nothing else and nothing depends on them, so an older database
 * simply gains them, and the schema version stays with the tables other units share. */
#include "storage/store.h"
#include "storage/sqlite/sqlite_int.h"
#include "base/err.h"
#include "base/log.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

static const char pubsub_schema[] =
    "CREATE TABLE IF NOT EXISTS pubsub_nodes ("
    " service TEXT NOT NULL,"
    " node TEXT NOT NULL,"
    " config BLOB NOT NULL,"
    " PRIMARY KEY (service, node)"
    ") WITHOUT ROWID;"
    /* seq orders the items: a republished id gets a new seq and becomes the newest */
    "CREATE TABLE IF NOT EXISTS pubsub_items ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " service TEXT NOT NULL,"
    " node TEXT NOT NULL,"
    " id TEXT NOT NULL,"
    " publisher TEXT NOT NULL,"
    " payload BLOB NOT NULL,"
    " stamp INTEGER NOT NULL,"
    " UNIQUE (service, node, id)"
    ");"
    "CREATE INDEX IF NOT EXISTS pubsub_items_order ON pubsub_items (service, node, seq);"
    "CREATE TABLE IF NOT EXISTS pubsub_subs ("
    " service TEXT NOT NULL,"
    " node TEXT NOT NULL,"
    " jid TEXT NOT NULL,"
    " subid TEXT NOT NULL,"
    " state INTEGER NOT NULL,"
    " options BLOB NOT NULL,"
    " PRIMARY KEY (service, node, jid, subid)"
    ") WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS pubsub_subs_jid ON pubsub_subs (service, jid);"
    "CREATE TABLE IF NOT EXISTS pubsub_affs ("
    " service TEXT NOT NULL,"
    " node TEXT NOT NULL,"
    " jid TEXT NOT NULL,"
    " aff INTEGER NOT NULL,"
    " PRIMARY KEY (service, node, jid)"
    ") WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS pubsub_affs_jid ON pubsub_affs (service, jid);";

enum {
    P_NODE_GET,
    P_NODE_LIST,
    P_NODE_INSERT,
    P_NODE_UPDATE,
    P_NODE_DELETE,
    P_NODE_DELETE_ITEMS,
    P_NODE_DELETE_SUBS,
    P_NODE_DELETE_AFFS,
    P_SVC_DELETE,
    P_SVC_DELETE_ITEMS,
    P_SVC_DELETE_SUBS,
    P_SVC_DELETE_AFFS,
    P_ITEM_PUT,
    P_ITEM_TRIM,
    P_ITEM_GET,
    P_ITEM_LIST,
    P_ITEM_LIST_MAX,
    P_ITEM_DELETE,
    P_SUB_LIST,
    P_SUB_PUT,
    P_SUB_DELETE,
    P_SUB_DELETE_ALL,
    P_AFF_LIST,
    P_AFF_PUT,
    P_AFF_DELETE,
    P_COUNT
};

#define ITEM_COLS "node, id, publisher, payload, stamp"

static const char *const pubsub_sql[P_COUNT] = {
    [P_NODE_GET] = "SELECT node, config FROM pubsub_nodes WHERE service = ?1 AND node = ?2",
    [P_NODE_LIST] = "SELECT node, config FROM pubsub_nodes WHERE service = ?1 ORDER BY node",
    [P_NODE_INSERT] = "INSERT INTO pubsub_nodes (service, node, config) VALUES (?1, ?2, ?3)",
    [P_NODE_UPDATE] = "UPDATE pubsub_nodes SET config = ?3 WHERE service = ?1 AND node = ?2",
    [P_NODE_DELETE] = "DELETE FROM pubsub_nodes WHERE service = ?1 AND node = ?2",
    [P_NODE_DELETE_ITEMS] = "DELETE FROM pubsub_items WHERE service = ?1 AND node = ?2",
    [P_NODE_DELETE_SUBS] = "DELETE FROM pubsub_subs WHERE service = ?1 AND node = ?2",
    [P_NODE_DELETE_AFFS] = "DELETE FROM pubsub_affs WHERE service = ?1 AND node = ?2",
    [P_SVC_DELETE] = "DELETE FROM pubsub_nodes WHERE service = ?1",
    [P_SVC_DELETE_ITEMS] = "DELETE FROM pubsub_items WHERE service = ?1",
    [P_SVC_DELETE_SUBS] = "DELETE FROM pubsub_subs WHERE service = ?1",
    [P_SVC_DELETE_AFFS] = "DELETE FROM pubsub_affs WHERE service = ?1",
    [P_ITEM_PUT] = "INSERT OR REPLACE INTO pubsub_items (service, node, id, publisher, payload,"
                   " stamp) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    /* everything older than the newest ?3 */
    [P_ITEM_TRIM] = "DELETE FROM pubsub_items WHERE service = ?1 AND node = ?2 AND seq <="
                    " (SELECT seq FROM pubsub_items WHERE service = ?1 AND node = ?2"
                    " ORDER BY seq DESC LIMIT 1 OFFSET ?3)",
    [P_ITEM_GET] = "SELECT " ITEM_COLS " FROM pubsub_items"
                   " WHERE service = ?1 AND node = ?2 AND id = ?3",
    [P_ITEM_LIST] = "SELECT " ITEM_COLS " FROM pubsub_items WHERE service = ?1 AND node = ?2"
                    " ORDER BY seq DESC",
    [P_ITEM_LIST_MAX] = "SELECT " ITEM_COLS " FROM pubsub_items WHERE service = ?1 AND node = ?2"
                        " ORDER BY seq DESC LIMIT ?3",
    [P_ITEM_DELETE] = "DELETE FROM pubsub_items WHERE service = ?1 AND node = ?2 AND id = ?3",
    [P_SUB_LIST] = "SELECT node, jid, subid, state, options FROM pubsub_subs WHERE service = ?1"
                   " AND (?2 IS NULL OR node = ?2) AND (?3 IS NULL OR jid = ?3)"
                   " ORDER BY node, jid, subid",
    [P_SUB_PUT] = "INSERT OR REPLACE INTO pubsub_subs (service, node, jid, subid, state, options)"
                  " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [P_SUB_DELETE] = "DELETE FROM pubsub_subs WHERE service = ?1 AND node = ?2 AND jid = ?3"
                     " AND subid = ?4",
    [P_SUB_DELETE_ALL] = "DELETE FROM pubsub_subs WHERE service = ?1 AND node = ?2 AND jid = ?3",
    [P_AFF_LIST] = "SELECT node, jid, aff FROM pubsub_affs WHERE service = ?1"
                   " AND (?2 IS NULL OR node = ?2) AND (?3 IS NULL OR jid = ?3)"
                   " ORDER BY node, jid",
    [P_AFF_PUT] = "INSERT OR REPLACE INTO pubsub_affs (service, node, jid, aff)"
                  " VALUES (?1, ?2, ?3, ?4)",
    [P_AFF_DELETE] = "DELETE FROM pubsub_affs WHERE service = ?1 AND node = ?2 AND jid = ?3",
};

typedef struct mp_sq_pubsub {
    sqlite3_stmt *q[P_COUNT];
} mp_sq_pubsub;

int
mp_sq_pubsub_open(sqlite_store *s)
{
    int rc, outer;

    if ((rc = mp_sq_tx_begin(s, &outer)) < 0)
        return rc;
    rc = mp_sq_tx_end(s, outer, mp_sq_exec(s, pubsub_schema));
    if (rc < 0)
        return rc;
    s->ps = calloc(1, sizeof *s->ps);
    if (!s->ps)
        return MP_ENOMEM;
    for (int i = 0; i < P_COUNT; i++)
        if ((rc = mp_sq_prepare(s, pubsub_sql[i], &s->ps->q[i])) < 0)
            return rc;
    return 0;
}

void
mp_sq_pubsub_close(sqlite_store *s)
{
    if (!s->ps)
        return;
    for (int i = 0; i < P_COUNT; i++)
        sqlite3_finalize(s->ps->q[i]);
    free(s->ps);
    s->ps = NULL;
}

/* Bind ?1 service, ?2 node (SQL NULL when node is NULL), and text ?3.. from the rest. */
static int
bind_texts(sqlite3_stmt *q, int n, const char *const *v)
{
    for (int i = 0; i < n; i++)
        if (sqlite3_bind_text(q, i + 1, v[i], -1, SQLITE_STATIC) != SQLITE_OK)
            return MP_EIO;
    return 0;
}

/* Run statement i with the texts bound; no rows expected. */
static int
run(sqlite_store *s, int i, int n, const char *const *v)
{
    sqlite3_stmt *q = s->ps->q[i];
    if (bind_texts(q, n, v) < 0) {
        mp_sq_done(q);
        return mp_sq_fail(s, pubsub_sql[i]);
    }
    return mp_sq_step_done(s, q, pubsub_sql[i]);
}

static int
drop_service(sqlite_store *s, const char *service)
{
    static const int drops[] = {P_SVC_DELETE, P_SVC_DELETE_ITEMS, P_SVC_DELETE_SUBS,
                                P_SVC_DELETE_AFFS};
    int rc = 0;
    for (size_t i = 0; i < sizeof drops / sizeof drops[0] && rc == 0; i++)
        rc = run(s, drops[i], 1, &service);
    return rc;
}

int
mp_sq_pubsub_drop(sqlite_store *s, const char *domain, const char *node)
{
    char bare[2048];
    int n = snprintf(bare, sizeof bare, "%s@%s", node, domain);
    if (n < 0 || (size_t)n >= sizeof bare)
        return MP_EINVAL;
    return drop_service(s, bare);
}

int
mp_sq_ps_node_get(mp_store *st, const char *service, const char *node, mp_ps_node_cb cb, void *ud)
{
    sqlite_store *s = (sqlite_store *)st;
    sqlite3_stmt *q = s->ps->q[node ? P_NODE_GET : P_NODE_LIST];
    const char *v[] = {service, node};
    int rc = 0, step, rows = 0;

    if (bind_texts(q, node ? 2 : 1, v) < 0) {
        rc = mp_sq_fail(s, "ps_node_get bind");
        goto out;
    }
    while ((step = sqlite3_step(q)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(q, 0);
        const char *cfg = sqlite3_column_blob(q, 1);
        int len = sqlite3_column_bytes(q, 1);
        rows++;
        int r = cb(name ? name : "", cfg ? cfg : "", (size_t)len, ud);
        if (r != 0) {
            rc = r < 0 ? r : 0;
            goto out;
        }
    }
    if (step != SQLITE_DONE)
        rc = mp_sq_fail(s, "ps_node_get");
    else if (node && rows == 0)
        rc = MP_ENOTFOUND;
out:
    mp_sq_done(q);
    return rc;
}

int
mp_sq_ps_node_put(mp_store *st, const char *service, const char *node, const char *config,
                  size_t len, int create)
{
    sqlite_store *s = (sqlite_store *)st;
    sqlite3_stmt *q = s->ps->q[create ? P_NODE_INSERT : P_NODE_UPDATE];
    int rc;

    if (!node || len > INT_MAX)
        return MP_EINVAL;
    if (bind_texts(q, 2, (const char *const[]){service, node}) < 0 ||
        sqlite3_bind_blob(q, 3, config ? config : "", (int)len, SQLITE_STATIC) != SQLITE_OK) {
        rc = mp_sq_fail(s, "ps_node_put bind");
        goto out;
    }
    rc = mp_sq_put_step(s, q, create, "ps_node_put");
out:
    mp_sq_done(q);
    return rc;
}

int
mp_sq_ps_node_delete(mp_store *st, const char *service, const char *node)
{
    static const int drops[] = {P_NODE_DELETE, P_NODE_DELETE_ITEMS, P_NODE_DELETE_SUBS,
                                P_NODE_DELETE_AFFS};
    sqlite_store *s = (sqlite_store *)st;
    int rc, outer, found = 0;

    if ((rc = mp_sq_tx_begin(s, &outer)) < 0)
        return rc;
    if (!node) {
        rc = drop_service(s, service);
        return mp_sq_tx_end(s, outer, rc);
    }
    const char *v[] = {service, node};
    for (size_t i = 0; i < sizeof drops / sizeof drops[0] && rc == 0; i++) {
        rc = run(s, drops[i], 2, v);
        if (i == 0)
            found = sqlite3_changes(s->db) > 0;
    }
    if (rc == 0 && !found)
        rc = MP_ENOTFOUND;
    return mp_sq_tx_end(s, outer, rc);
}

int
mp_sq_ps_item_put(mp_store *st, const char *service, const char *node, const mp_ps_item *it,
                  int64_t max_items)
{
    sqlite_store *s = (sqlite_store *)st;
    sqlite3_stmt *q = s->ps->q[P_ITEM_PUT];
    int rc, outer;

    if (!node || !it->id || it->len > INT_MAX || (it->len && !it->payload))
        return MP_EINVAL;
    if ((rc = mp_sq_tx_begin(s, &outer)) < 0)
        return rc;
    if (bind_texts(
            q, 4,
            (const char *const[]){service, node, it->id, it->publisher ? it->publisher : ""}) < 0 ||
        sqlite3_bind_blob(q, 5, it->len ? it->payload : "", (int)it->len, SQLITE_STATIC) !=
            SQLITE_OK ||
        sqlite3_bind_int64(q, 6, it->stamp) != SQLITE_OK) {
        mp_sq_done(q);
        rc = mp_sq_fail(s, "ps_item_put bind");
        goto out;
    }
    if ((rc = mp_sq_step_done(s, q, "ps_item_put")) < 0 || max_items <= 0)
        goto out;
    q = s->ps->q[P_ITEM_TRIM];
    if (bind_texts(q, 2, (const char *const[]){service, node}) < 0 ||
        sqlite3_bind_int64(q, 3, max_items) != SQLITE_OK) {
        mp_sq_done(q);
        rc = mp_sq_fail(s, "ps_item_trim bind");
        goto out;
    }
    rc = mp_sq_step_done(s, q, "ps_item_trim");
out:
    return mp_sq_tx_end(s, outer, rc);
}

int
mp_sq_ps_item_get(mp_store *st, const char *service, const char *node, const char *id, int64_t max,
                  mp_ps_item_cb cb, void *ud)
{
    sqlite_store *s = (sqlite_store *)st;
    int which = id ? P_ITEM_GET : max > 0 ? P_ITEM_LIST_MAX : P_ITEM_LIST;
    sqlite3_stmt *q = s->ps->q[which];
    int rc = 0, step, rows = 0;

    if (!node)
        return MP_EINVAL;
    if (bind_texts(q, 2, (const char *const[]){service, node}) < 0 ||
        (id && sqlite3_bind_text(q, 3, id, -1, SQLITE_STATIC) != SQLITE_OK) ||
        (which == P_ITEM_LIST_MAX && sqlite3_bind_int64(q, 3, max) != SQLITE_OK)) {
        rc = mp_sq_fail(s, "ps_item_get bind");
        goto out;
    }
    while ((step = sqlite3_step(q)) == SQLITE_ROW) {
        mp_ps_item it = {0};
        it.node = (const char *)sqlite3_column_text(q, 0);
        it.id = (const char *)sqlite3_column_text(q, 1);
        it.publisher = (const char *)sqlite3_column_text(q, 2);
        it.payload = sqlite3_column_blob(q, 3);
        it.len = (size_t)sqlite3_column_bytes(q, 3);
        it.stamp = sqlite3_column_int64(q, 4);
        if (!it.node || !it.id || !it.publisher) {
            rc = mp_sq_fail(s, "ps_item_get: damaged row");
            goto out;
        }
        if (!it.payload)
            it.payload = "";
        rows++;
        int r = cb(&it, ud);
        if (r != 0) {
            rc = r < 0 ? r : 0;
            goto out;
        }
    }
    if (step != SQLITE_DONE)
        rc = mp_sq_fail(s, "ps_item_get");
    else if (id && rows == 0)
        rc = MP_ENOTFOUND;
out:
    mp_sq_done(q);
    return rc;
}

int
mp_sq_ps_item_delete(mp_store *st, const char *service, const char *node, const char *id)
{
    sqlite_store *s = (sqlite_store *)st;

    if (!node)
        return MP_EINVAL;
    if (!id)
        return run(s, P_NODE_DELETE_ITEMS, 2, (const char *const[]){service, node});
    int rc = run(s, P_ITEM_DELETE, 3, (const char *const[]){service, node, id});
    return rc < 0 ? rc : sqlite3_changes(s->db) > 0 ? 0 : MP_ENOTFOUND;
}

int
mp_sq_ps_sub_list(mp_store *st, const char *service, const char *node, const char *jid,
                  mp_ps_sub_cb cb, void *ud)
{
    sqlite_store *s = (sqlite_store *)st;
    sqlite3_stmt *q = s->ps->q[P_SUB_LIST];
    int rc = 0, step;

    if (bind_texts(q, 3, (const char *const[]){service, node, jid}) < 0) {
        rc = mp_sq_fail(s, "ps_sub_list bind");
        goto out;
    }
    while ((step = sqlite3_step(q)) == SQLITE_ROW) {
        mp_ps_sub sub = {0};
        sub.node = (const char *)sqlite3_column_text(q, 0);
        sub.jid = (const char *)sqlite3_column_text(q, 1);
        sub.subid = (const char *)sqlite3_column_text(q, 2);
        sub.state = sqlite3_column_int(q, 3);
        sub.options = sqlite3_column_blob(q, 4);
        if (!sub.node || !sub.jid || !sub.subid) {
            rc = mp_sq_fail(s, "ps_sub_list: damaged row");
            goto out;
        }
        /* the blob is not NUL-terminated: the module stores options with their NUL */
        if (!sub.options || sqlite3_column_bytes(q, 4) == 0 ||
            sub.options[sqlite3_column_bytes(q, 4) - 1] != '\0')
            sub.options = "";
        int r = cb(&sub, ud);
        if (r != 0) {
            rc = r < 0 ? r : 0;
            goto out;
        }
    }
    if (step != SQLITE_DONE)
        rc = mp_sq_fail(s, "ps_sub_list");
out:
    mp_sq_done(q);
    return rc;
}

int
mp_sq_ps_sub_put(mp_store *st, const char *service, const mp_ps_sub *sub)
{
    sqlite_store *s = (sqlite_store *)st;
    sqlite3_stmt *q = s->ps->q[P_SUB_PUT];
    const char *opt = sub->options ? sub->options : "";

    if (!sub->node || !sub->jid || !sub->subid)
        return MP_EINVAL;
    if (bind_texts(q, 4, (const char *const[]){service, sub->node, sub->jid, sub->subid}) < 0 ||
        sqlite3_bind_int(q, 5, sub->state) != SQLITE_OK ||
        sqlite3_bind_blob(q, 6, opt, (int)strlen(opt) + 1, SQLITE_STATIC) != SQLITE_OK) {
        mp_sq_done(q);
        return mp_sq_fail(s, "ps_sub_put bind");
    }
    return mp_sq_step_done(s, q, "ps_sub_put");
}

int
mp_sq_ps_sub_delete(mp_store *st, const char *service, const char *node, const char *jid,
                    const char *subid)
{
    sqlite_store *s = (sqlite_store *)st;
    int rc;

    if (!node || !jid)
        return MP_EINVAL;
    if (subid)
        rc = run(s, P_SUB_DELETE, 4, (const char *const[]){service, node, jid, subid});
    else
        rc = run(s, P_SUB_DELETE_ALL, 3, (const char *const[]){service, node, jid});
    return rc < 0 ? rc : sqlite3_changes(s->db) > 0 ? 0 : MP_ENOTFOUND;
}

int
mp_sq_ps_aff_list(mp_store *st, const char *service, const char *node, const char *jid,
                  mp_ps_aff_cb cb, void *ud)
{
    sqlite_store *s = (sqlite_store *)st;
    sqlite3_stmt *q = s->ps->q[P_AFF_LIST];
    int rc = 0, step;

    if (bind_texts(q, 3, (const char *const[]){service, node, jid}) < 0) {
        rc = mp_sq_fail(s, "ps_aff_list bind");
        goto out;
    }
    while ((step = sqlite3_step(q)) == SQLITE_ROW) {
        mp_ps_aff a = {0};
        a.node = (const char *)sqlite3_column_text(q, 0);
        a.jid = (const char *)sqlite3_column_text(q, 1);
        a.affiliation = sqlite3_column_int(q, 2);
        if (!a.node || !a.jid) {
            rc = mp_sq_fail(s, "ps_aff_list: damaged row");
            goto out;
        }
        int r = cb(&a, ud);
        if (r != 0) {
            rc = r < 0 ? r : 0;
            goto out;
        }
    }
    if (step != SQLITE_DONE)
        rc = mp_sq_fail(s, "ps_aff_list");
out:
    mp_sq_done(q);
    return rc;
}

int
mp_sq_ps_aff_put(mp_store *st, const char *service, const char *node, const char *jid,
                 int affiliation)
{
    sqlite_store *s = (sqlite_store *)st;

    if (!node || !jid)
        return MP_EINVAL;
    if (affiliation == MP_PS_AFF_NONE)
        return run(s, P_AFF_DELETE, 3, (const char *const[]){service, node, jid});
    sqlite3_stmt *q = s->ps->q[P_AFF_PUT];
    if (bind_texts(q, 3, (const char *const[]){service, node, jid}) < 0 ||
        sqlite3_bind_int(q, 4, affiliation) != SQLITE_OK) {
        mp_sq_done(q);
        return mp_sq_fail(s, "ps_aff_put bind");
    }
    return mp_sq_step_done(s, q, "ps_aff_put");
}
