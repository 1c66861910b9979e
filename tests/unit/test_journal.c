/* The in-flight journal: what is put comes back, in order per session, after a reopen (as
 * after a crash); released and dropped entries do not; it is empty only once cleared. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/err.h"
#include "router/journal.h"

typedef struct seen {
    char items[32][96];
    int n;
    int fail_at; /* return an error at this item (-1: never) */
} seen;

static int
seen_cb(const char *domain, const char *node, const char *bytes, size_t len, void *ud)
{
    seen *s = ud;
    if (s->n == s->fail_at)
        return MP_EIO;
    assert_true(s->n < 32);
    snprintf(s->items[s->n], sizeof s->items[0], "%s@%s %.*s", node, domain, (int)len, bytes);
    s->n++;
    return 0;
}

static char dir[64];
static char path[128];

static int
setup(void **state)
{
    snprintf(dir, sizeof dir, "/tmp/mp-journal-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/inflight.db", dir);
    return 0;
}

static int
teardown(void **state)
{
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void
test_recover_after_reopen(void **state)
{
    mp_journal *j;
    assert_int_equal(mp_journal_open(path, &j), 0);
    /* two sessions, interleaved */
    assert_int_equal(mp_journal_put(j, 7, 1, "example.org", "alice", "<m1/>", 5), 0);
    assert_int_equal(mp_journal_put(j, 9, 1, "example.org", "bob", "<b1/>", 5), 0);
    assert_int_equal(mp_journal_put(j, 7, 2, "example.org", "alice", "<m2/>", 5), 0);
    assert_int_equal(mp_journal_put(j, 7, 3, "example.org", "alice", "<m3/>", 5), 0);
    assert_int_equal(mp_journal_put(j, 9, 2, "example.org", "bob", "<b2/>", 5), 0);
    assert_int_equal(mp_journal_release(j, 7, 1), 0); /* alice acknowledged m1 */
    assert_int_equal(mp_journal_drop(j, 9), 0);       /* bob's queue went elsewhere */
    mp_journal_close(j);                              /* the process dies */

    assert_int_equal(mp_journal_open(path, &j), 0);
    seen s = {.fail_at = 0};
    assert_int_equal(mp_journal_recover(j, seen_cb, &s), MP_EIO); /* kept on failure */
    s = (seen){.fail_at = -1};
    assert_int_equal(mp_journal_recover(j, seen_cb, &s), 2);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.items[0], "alice@example.org <m2/>");
    assert_string_equal(s.items[1], "alice@example.org <m3/>");
    s = (seen){.fail_at = -1};
    assert_int_equal(mp_journal_recover(j, seen_cb, &s), 2); /* kept until cleared */
    assert_int_equal(mp_journal_clear(j), 0);
    s = (seen){.fail_at = -1};
    assert_int_equal(mp_journal_recover(j, seen_cb, &s), 0);
    mp_journal_close(j);
}

static void
test_release_bounds(void **state)
{
    mp_journal *j;
    assert_int_equal(mp_journal_open(path, &j), 0);
    for (uint64_t i = 1; i <= 10; i++)
        assert_int_equal(mp_journal_put(j, 1, i, "d", "n", "<x/>", 4), 0);
    assert_int_equal(mp_journal_release(j, 1, 7), 0);
    assert_int_equal(mp_journal_release(j, 2, 100), 0); /* another session: no effect */
    seen s = {.fail_at = -1};
    assert_int_equal(mp_journal_recover(j, seen_cb, &s), 3);
    assert_int_equal(mp_journal_clear(j), 0);
    mp_journal_close(j);
}

static void
test_open_failure(void **state)
{
    mp_journal *j = NULL;
    assert_int_equal(mp_journal_open("/nonexistent-dir/x/inflight.db", &j), MP_EIO);
    assert_null(j);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_recover_after_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_release_bounds, setup, teardown),
        cmocka_unit_test(test_open_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
