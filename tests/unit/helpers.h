/* Shared by the unit tests: fixtures for storage and XML tests. Include after cmocka.h. */
#ifndef MP_TESTS_UNIT_HELPERS_H
#define MP_TESTS_UNIT_HELPERS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "base/arena.h"
#include "base/buf.h"
#include "storage/store.h"
#include "xml/tree.h"

/* Remove an SQLite database with its WAL and shared-memory files. */
static inline void
mp_test_remove_db(const char *path)
{
    char p[512];
    unlink(path);
    snprintf(p, sizeof p, "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", path);
    unlink(p);
}

/* A fresh SQLite store in its own temporary directory (storage tests). */
typedef struct mp_test_store {
    char dir[64];
    char path[96];
    mp_store *st;
    const mp_store_ops *ops;
} mp_test_store;

/* Close (if open) and open the store again: what survives a restart. */
/* The schema version of a database file (PRAGMA user_version), read on a connection of its
 * own; fails the test when the file cannot be read. */
static inline int
mp_test_user_version(const char *path)
{
    sqlite3 *db;
    sqlite3_stmt *q;
    int v;

    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &q, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    v = sqlite3_column_int(q, 0);
    sqlite3_finalize(q);
    sqlite3_close(db);
    return v;
}

static inline void
mp_test_store_reopen(mp_test_store *f)
{
    if (f->st)
        mp_store_close(f->st);
    f->st = NULL;
    assert_int_equal(mp_store_sqlite_open(f->path, &f->st), 0);
    f->ops = f->st->ops;
}

/* cmocka setup: name tells the test's directories apart in /tmp. */
static inline int
mp_test_store_setup(void **state, const char *name)
{
    mp_test_store *f = calloc(1, sizeof *f);
    assert_non_null(f);
    snprintf(f->dir, sizeof f->dir, "/tmp/mp_test_%s.XXXXXX", name);
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/magpie.db", f->dir);
    mp_test_store_reopen(f);
    *state = f;
    return 0;
}

static inline int
mp_test_store_teardown(void **state)
{
    mp_test_store *f = *state;
    mp_store_close(f->st);
    mp_test_remove_db(f->path);
    rmdir(f->dir);
    free(f);
    return 0;
}

/* A tree parser, an arena for its nodes and a buffer for serializing (XML tests). */
typedef struct mp_test_xml {
    mp_xml_parser *p;
    mp_arena a;
    mp_buf b;
} mp_test_xml;

static inline int
mp_test_xml_setup(void **state)
{
    mp_test_xml *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    f->p = mp_xml_parser_new();
    if (!f->p) {
        free(f);
        return -1;
    }
    mp_arena_init(&f->a, 1024);
    *state = f;
    return 0;
}

static inline int
mp_test_xml_teardown(void **state)
{
    mp_test_xml *f = *state;
    mp_xml_parser_free(f->p);
    mp_arena_free(&f->a);
    mp_buf_free(&f->b);
    free(f);
    return 0;
}

#endif
