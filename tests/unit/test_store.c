#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "helpers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "auth/accounts.h"
#include "auth/scram.h"
#include "base/buf.h"
#include "base/config.h"
#include "base/err.h"
#include "storage/store.h"

typedef struct fixture {
    char dir[64];
    char sub[96];
    char path[128];
    char *hosts[2];
    mp_config cfg;
    mp_store *st;
} fixture;

static int
setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    strcpy(f->dir, "/tmp/mp_test_store.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    /* the parent directory does not exist yet: mp_store_open creates it */
    snprintf(f->sub, sizeof f->sub, "%s/var", f->dir);
    snprintf(f->path, sizeof f->path, "%s/magpie.db", f->sub);
    f->hosts[0] = "localhost";
    f->hosts[1] = "example.org";
    f->cfg.hosts = f->hosts;
    f->cfg.nhosts = 2;
    f->cfg.storage_backend = "sqlite";
    f->cfg.sqlite_path = f->path;
    f->cfg.scram_iterations = 4096;
    f->cfg.sasl_mechanisms = 0x1f;
    f->cfg.tls_required = 1;
    assert_int_equal(mp_store_open(&f->cfg, &f->st), 0);
    assert_non_null(f->st);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    fixture *f = *state;

    mp_store_close(f->st);
    mp_test_remove_db(f->path);
    rmdir(f->sub);
    rmdir(f->dir);
    free(f);
    return 0;
}

static void
cred_for(const char *pw, mp_user_cred *c)
{
    assert_int_equal(mp_scram_make_cred(pw, 4096, c), 0);
}

static void
assert_cred_equal(const mp_user_cred *a, const mp_user_cred *b)
{
    assert_int_equal(a->iterations, b->iterations);
    assert_int_equal(a->salt_len, b->salt_len);
    assert_memory_equal(a->salt, b->salt, a->salt_len);
    assert_memory_equal(a->sha1_stored_key, b->sha1_stored_key, 20);
    assert_memory_equal(a->sha1_server_key, b->sha1_server_key, 20);
    assert_memory_equal(a->sha256_stored_key, b->sha256_stored_key, 32);
    assert_memory_equal(a->sha256_server_key, b->sha256_server_key, 32);
}

static void
test_file_mode_and_pragmas(void **state)
{
    fixture *f = *state;
    struct stat sb;

    assert_int_equal(stat(f->path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_equal(stat(f->sub, &sb), 0);
    assert_true(S_ISDIR(sb.st_mode));

    sqlite3 *db;
    sqlite3_stmt *q;
    assert_int_equal(sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &q, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(q, 0), "wal");
    sqlite3_finalize(q);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &q, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(q, 0), 4);
    sqlite3_finalize(q);
    sqlite3_close(db);
}

static void
test_crud(void **state)
{
    fixture *f = *state;
    const mp_store_ops *ops = f->st->ops;
    mp_user_cred a, b, got;

    assert_string_equal(ops->name, "sqlite");
    cred_for("one", &a);
    cred_for("two", &b);
    assert_int_equal(ops->user_get(f->st, "localhost", "alice", &got), MP_ENOTFOUND);
    assert_int_equal(ops->user_put(f->st, "localhost", "alice", &a, 0), MP_ENOTFOUND);
    assert_int_equal(ops->user_put(f->st, "localhost", "alice", &a, 1), 0);
    assert_int_equal(ops->user_put(f->st, "localhost", "alice", &b, 1), MP_EEXIST);
    assert_int_equal(ops->user_get(f->st, "localhost", "alice", &got), 0);
    assert_cred_equal(&got, &a);
    /* same node on another domain is another account */
    assert_int_equal(ops->user_get(f->st, "example.org", "alice", &got), MP_ENOTFOUND);
    assert_int_equal(ops->user_put(f->st, "example.org", "alice", &b, 1), 0);

    assert_int_equal(ops->user_put(f->st, "localhost", "alice", &b, 0), 0);
    assert_int_equal(ops->user_get(f->st, "localhost", "alice", &got), 0);
    assert_cred_equal(&got, &b);

    assert_int_equal(ops->user_delete(f->st, "localhost", "alice"), 0);
    assert_int_equal(ops->user_delete(f->st, "localhost", "alice"), MP_ENOTFOUND);
    assert_int_equal(ops->user_get(f->st, "localhost", "alice", &got), MP_ENOTFOUND);
    assert_int_equal(ops->user_get(f->st, "example.org", "alice", &got), 0);

    mp_user_cred bad = a;
    bad.salt_len = 0;
    assert_int_equal(ops->user_put(f->st, "localhost", "bob", &bad, 1), MP_EINVAL);
}

typedef struct list_acc {
    char names[8][16];
    int n;
    int stop_after;
    int ret;
} list_acc;

static int
list_cb(const char *node, void *ud)
{
    list_acc *acc = ud;
    assert_true(acc->n < 8);
    snprintf(acc->names[acc->n], sizeof acc->names[0], "%s", node);
    acc->n++;
    return acc->n == acc->stop_after ? acc->ret : 0;
}

static void
test_list(void **state)
{
    fixture *f = *state;
    const mp_store_ops *ops = f->st->ops;
    mp_user_cred c;
    static const char *const nodes[] = {"mallory", "alice", "carol", "bob"};

    cred_for("pw", &c);
    for (int i = 0; i < 4; i++)
        assert_int_equal(ops->user_put(f->st, "localhost", nodes[i], &c, 1), 0);
    assert_int_equal(ops->user_put(f->st, "example.org", "zed", &c, 1), 0);

    list_acc acc = {0};
    assert_int_equal(ops->user_list(f->st, "localhost", list_cb, &acc), 0);
    assert_int_equal(acc.n, 4);
    assert_string_equal(acc.names[0], "alice");
    assert_string_equal(acc.names[1], "bob");
    assert_string_equal(acc.names[2], "carol");
    assert_string_equal(acc.names[3], "mallory");

    list_acc stop = {.stop_after = 2, .ret = 1};
    assert_int_equal(ops->user_list(f->st, "localhost", list_cb, &stop), 0);
    assert_int_equal(stop.n, 2);

    list_acc err = {.stop_after = 1, .ret = MP_ENOMEM};
    assert_int_equal(ops->user_list(f->st, "localhost", list_cb, &err), MP_ENOMEM);
    assert_int_equal(err.n, 1);

    /* the statement was reset after the early stop: a new listing starts over */
    list_acc again = {0};
    assert_int_equal(ops->user_list(f->st, "example.org", list_cb, &again), 0);
    assert_int_equal(again.n, 1);
    assert_string_equal(again.names[0], "zed");

    list_acc none = {0};
    assert_int_equal(ops->user_list(f->st, "nowhere.test", list_cb, &none), 0);
    assert_int_equal(none.n, 0);
}

static void
test_persistence(void **state)
{
    fixture *f = *state;
    mp_user_cred c, got;

    cred_for("durable", &c);
    assert_int_equal(f->st->ops->user_put(f->st, "localhost", "dora", &c, 1), 0);
    mp_store_close(f->st);
    f->st = NULL;
    assert_int_equal(mp_store_open(&f->cfg, &f->st), 0);
    assert_int_equal(f->st->ops->user_get(f->st, "localhost", "dora", &got), 0);
    assert_cred_equal(&got, &c);
    assert_int_equal(mp_scram_check_password("durable", &got), 1);
}

static void
test_newer_schema_refused(void **state)
{
    fixture *f = *state;
    sqlite3 *db;

    mp_store_close(f->st);
    f->st = NULL;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    assert_int_not_equal(mp_store_open(&f->cfg, &f->st), 0);
    assert_null(f->st);
}

static void
test_unknown_backend(void **state)
{
    fixture *f = *state;
    mp_config cfg = f->cfg;
    mp_store *st = (mp_store *)1;

    cfg.storage_backend = "ldap";
    assert_int_equal(mp_store_open(&cfg, &st), MP_EINVAL);
    assert_null(st);
}

static void
test_accounts(void **state)
{
    fixture *f = *state;
    mp_user_cred got;

    assert_int_equal(mp_account_create(f->st, &f->cfg, "Alice@LocalHost", "pencil"), 0);
    /* stored under the prepared JID */
    assert_int_equal(f->st->ops->user_get(f->st, "localhost", "alice", &got), 0);
    assert_int_equal(got.iterations, 4096);
    assert_int_equal(mp_scram_check_password("pencil", &got), 1);
    assert_int_equal(mp_account_create(f->st, &f->cfg, "alice@localhost", "other"), MP_EEXIST);

    /* bad JIDs, unknown hosts, empty passwords */
    assert_int_equal(mp_account_create(f->st, &f->cfg, "bob@elsewhere.net", "pw"), MP_EINVAL);
    assert_int_equal(mp_account_create(f->st, &f->cfg, "localhost", "pw"), MP_EINVAL);
    assert_int_equal(mp_account_create(f->st, &f->cfg, "@localhost", "pw"), MP_EINVAL);
    assert_int_equal(mp_account_create(f->st, &f->cfg, "bob@localhost/res", "pw"), MP_EINVAL);
    assert_int_equal(mp_account_create(f->st, &f->cfg, "b\"ob@localhost", "pw"), MP_EINVAL);
    assert_int_equal(mp_account_create(f->st, &f->cfg, "bob@localhost", ""), MP_EINVAL);
    assert_int_equal(mp_account_create(f->st, &f->cfg, "bob@localhost", "a\x07"), MP_EINVAL);
    assert_int_equal(f->st->ops->user_get(f->st, "localhost", "bob", &got), MP_ENOTFOUND);

    /* the password is SASLprep'd: a NBSP is stored as a space */
    assert_int_equal(mp_account_create(f->st, &f->cfg, "bob@example.org", "a\xc2\xa0z"), 0);
    assert_int_equal(f->st->ops->user_get(f->st, "example.org", "bob", &got), 0);
    assert_int_equal(mp_scram_check_password("a z", &got), 1);

    assert_int_equal(mp_account_passwd(f->st, &f->cfg, "alice@localhost", "crayon"), 0);
    assert_int_equal(f->st->ops->user_get(f->st, "localhost", "alice", &got), 0);
    assert_int_equal(mp_scram_check_password("crayon", &got), 1);
    assert_int_equal(mp_scram_check_password("pencil", &got), 0);
    assert_int_equal(mp_account_passwd(f->st, &f->cfg, "nobody@localhost", "x"), MP_ENOTFOUND);
    assert_int_equal(mp_account_passwd(f->st, &f->cfg, "alice@nowhere", "x"), MP_EINVAL);

    assert_int_equal(mp_account_delete(f->st, &f->cfg, "alice@localhost"), 0);
    assert_int_equal(mp_account_delete(f->st, &f->cfg, "alice@localhost"), MP_ENOTFOUND);
    assert_int_equal(mp_account_delete(f->st, &f->cfg, "alice@nowhere"), MP_EINVAL);
}

static void
unlink_db(const char *path)
{
    char p[160];

    unlink(path);
    snprintf(p, sizeof p, "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", path);
    unlink(p);
}

/* A database as the version 1 server left it: the users table only, in WAL mode. */
static void
make_v1_db(const char *path, const char *const *nodes, const mp_user_cred *creds, int n)
{
    sqlite3 *db;
    sqlite3_stmt *q;

    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "PRAGMA journal_mode=WAL;"
                                  "CREATE TABLE users ("
                                  " domain TEXT NOT NULL, node TEXT NOT NULL,"
                                  " iterations INTEGER NOT NULL, salt BLOB NOT NULL,"
                                  " sha1_stored BLOB NOT NULL, sha1_server BLOB NOT NULL,"
                                  " sha256_stored BLOB NOT NULL, sha256_server BLOB NOT NULL,"
                                  " created INTEGER NOT NULL, PRIMARY KEY (domain, node)"
                                  ") WITHOUT ROWID;"
                                  "PRAGMA user_version = 1;",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "INSERT INTO users VALUES ('localhost', ?1, ?2, ?3, ?4,"
                                        " ?5, ?6, ?7, 0)",
                                        -1, &q, NULL),
                     SQLITE_OK);
    for (int i = 0; i < n; i++) {
        const mp_user_cred *c = &creds[i];
        sqlite3_bind_text(q, 1, nodes[i], -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 2, c->iterations);
        sqlite3_bind_blob(q, 3, c->salt, (int)c->salt_len, SQLITE_STATIC);
        sqlite3_bind_blob(q, 4, c->sha1_stored_key, 20, SQLITE_STATIC);
        sqlite3_bind_blob(q, 5, c->sha1_server_key, 20, SQLITE_STATIC);
        sqlite3_bind_blob(q, 6, c->sha256_stored_key, 32, SQLITE_STATIC);
        sqlite3_bind_blob(q, 7, c->sha256_server_key, 32, SQLITE_STATIC);
        assert_int_equal(sqlite3_step(q), SQLITE_DONE);
        sqlite3_reset(q);
    }
    sqlite3_finalize(q);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

static int
count_item(const mp_roster_item *it, void *ud)
{
    (*(int *)ud)++;
    return 0;
}

static void
test_migrate_v1(void **state)
{
    fixture *f = *state;
    static const char *const nodes[] = {"olga", "oscar"};
    mp_user_cred creds[2], got;
    uint64_t ver = 99;
    int n = 0;

    cred_for("old", &creds[0]);
    cred_for("older", &creds[1]);
    mp_store_close(f->st);
    f->st = NULL;
    unlink_db(f->path);
    make_v1_db(f->path, nodes, creds, 2);
    assert_int_equal(mp_test_user_version(f->path), 1);

    assert_int_equal(mp_store_open(&f->cfg, &f->st), 0);
    assert_int_equal(mp_test_user_version(f->path), 4);
    const mp_store_ops *ops = f->st->ops;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(ops->user_get(f->st, "localhost", nodes[i], &got), 0);
        assert_cred_equal(&got, &creds[i]);
    }
    assert_int_equal(mp_scram_check_password("older", &got), 1);
    list_acc acc = {0};
    assert_int_equal(ops->user_list(f->st, "localhost", list_cb, &acc), 0);
    assert_int_equal(acc.n, 2);

    /* the new tables are there and empty */
    assert_int_equal(ops->roster_list(f->st, "localhost", "olga", count_item, &n, &ver), 0);
    assert_int_equal(n, 0);
    assert_int_equal(ver, 0);
    assert_int_equal(ops->offline_count(f->st, "localhost", "olga"), 0);
    mp_roster_item it = {.jid = "romeo@example.net", .state = 1};
    assert_int_equal(ops->roster_put(f->st, "localhost", "olga", &it, &ver), 0);
    assert_int_equal(ver, 1);
    assert_int_equal(ops->offline_push(f->st, "localhost", "olga", "<message/>", 10, 5, 10), 0);

    /* opening the upgraded file again changes nothing */
    mp_store_close(f->st);
    f->st = NULL;
    assert_int_equal(mp_store_open(&f->cfg, &f->st), 0);
    assert_int_equal(mp_test_user_version(f->path), 4);
    ops = f->st->ops;
    n = 0;
    assert_int_equal(ops->roster_list(f->st, "localhost", "olga", count_item, &n, &ver), 0);
    assert_int_equal(n, 1);
    assert_int_equal(ver, 1);
    assert_int_equal(ops->offline_count(f->st, "localhost", "olga"), 1);
    assert_int_equal(ops->user_get(f->st, "localhost", "oscar", &got), 0);
    assert_cred_equal(&got, &creds[1]);
}

/* A failed upgrade leaves the version 1 database as it was. */
static void
test_migrate_failure_rolls_back(void **state)
{
    fixture *f = *state;
    static const char *const nodes[] = {"olga"};
    mp_user_cred c, got;
    sqlite3 *db;

    cred_for("old", &c);
    mp_store_close(f->st);
    f->st = NULL;
    unlink_db(f->path);
    make_v1_db(f->path, nodes, &c, 1);
    /* a table in the way of the version 2 schema */
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "CREATE TABLE blobs (x)", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(mp_store_open(&f->cfg, &f->st), MP_EIO);
    assert_null(f->st);
    assert_int_equal(mp_test_user_version(f->path), 1);
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_not_equal(sqlite3_exec(db, "SELECT * FROM roster", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "DROP TABLE blobs", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(mp_store_open(&f->cfg, &f->st), 0);
    assert_int_equal(f->st->ops->user_get(f->st, "localhost", "olga", &got), 0);
    assert_cred_equal(&got, &c);
}

static void
test_user_delete_cascades(void **state)
{
    fixture *f = *state;
    const mp_store_ops *ops = f->st->ops;
    mp_user_cred c;
    uint64_t ver;
    mp_buf b = {0};
    int n;
    static const char *const grp[] = {"Friends"};
    mp_roster_item it = {.jid = "juliet@example.com", .state = 3, .groups = grp, .ngroups = 1};

    cred_for("pw", &c);
    /* alice on two hosts, and bob: only localhost's alice goes */
    assert_int_equal(ops->user_put(f->st, "localhost", "alice", &c, 1), 0);
    assert_int_equal(ops->user_put(f->st, "example.org", "alice", &c, 1), 0);
    assert_int_equal(ops->user_put(f->st, "localhost", "bob", &c, 1), 0);
    const char *who[][2] = {{"localhost", "alice"}, {"example.org", "alice"}, {"localhost", "bob"}};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ops->roster_put(f->st, who[i][0], who[i][1], &it, &ver), 0);
        assert_int_equal(ops->offline_push(f->st, who[i][0], who[i][1], "<message/>", 10, 1, 5), 0);
        assert_int_equal(ops->blob_put(f->st, who[i][0], who[i][1], "vcard", "", "<vCard/>", 8), 0);
    }

    assert_int_equal(ops->user_delete(f->st, "localhost", "alice"), 0);
    n = 0;
    assert_int_equal(ops->roster_list(f->st, "localhost", "alice", count_item, &n, &ver), 0);
    assert_int_equal(n, 0);
    assert_int_equal(ver, 0); /* the version went too */
    assert_int_equal(ops->offline_count(f->st, "localhost", "alice"), 0);
    assert_int_equal(ops->blob_get(f->st, "localhost", "alice", "vcard", "", &b), MP_ENOTFOUND);

    for (int i = 1; i < 3; i++) {
        n = 0;
        assert_int_equal(ops->roster_list(f->st, who[i][0], who[i][1], count_item, &n, &ver), 0);
        assert_int_equal(n, 1);
        assert_int_equal(ver, 1);
        assert_int_equal(ops->offline_count(f->st, who[i][0], who[i][1]), 1);
        b.len = 0;
        assert_int_equal(ops->blob_get(f->st, who[i][0], who[i][1], "vcard", "", &b), 0);
        assert_int_equal(b.len, 8);
    }
    mp_buf_free(&b);

    /* leftovers without a user row are cleaned, but the answer is still "not found" */
    assert_int_equal(ops->roster_put(f->st, "localhost", "ghost", &it, NULL), 0);
    assert_int_equal(ops->user_delete(f->st, "localhost", "ghost"), MP_ENOTFOUND);
    n = 0;
    assert_int_equal(ops->roster_list(f->st, "localhost", "ghost", count_item, &n, NULL), 0);
    assert_int_equal(n, 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_file_mode_and_pragmas, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crud, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_persistence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_backend, setup, teardown),
        cmocka_unit_test_setup_teardown(test_accounts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrate_v1, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrate_failure_rolls_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_user_delete_cascades, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
