#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "auth/accounts.h"
#include "auth/scram.h"
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
    char p[160];

    mp_store_close(f->st);
    unlink(f->path);
    snprintf(p, sizeof p, "%s-wal", f->path);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", f->path);
    unlink(p);
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
    assert_int_equal(sqlite3_column_int(q, 0), 1);
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
