/* The SQLite store's rosters, offline queues and per-user documents. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "helpers.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/err.h"
#include "router/subscription.h"
#include "storage/store.h"

#define D "localhost"

typedef mp_test_store fixture;

static void
reopen(fixture *f)
{
    mp_test_store_reopen(f);
}

static int
setup(void **state)
{
    return mp_test_store_setup(state, "store_roster");
}

static int
teardown(void **state)
{
    return mp_test_store_teardown(state);
}

/* ---- roster ---- */

#define MAX_ITEMS 8
#define MAX_GROUPS 24

typedef struct got_item {
    char jid[64];
    char name[64];
    int has_name;
    int state;
    char groups[MAX_GROUPS][64];
    size_t ngroups;
} got_item;

typedef struct roster_acc {
    got_item items[MAX_ITEMS];
    int n;
    int stop_after; /* return ret when the n-th item was seen */
    int ret;
} roster_acc;

static int
collect(const mp_roster_item *it, void *ud)
{
    roster_acc *acc = ud;
    assert_true(acc->n < MAX_ITEMS);
    got_item *g = &acc->items[acc->n++];
    assert_non_null(it->jid);
    assert_true(strlen(it->jid) < sizeof g->jid);
    strcpy(g->jid, it->jid);
    g->has_name = it->name != NULL;
    if (it->name) {
        assert_true(strlen(it->name) < sizeof g->name);
        strcpy(g->name, it->name);
    }
    g->state = it->state;
    assert_true(it->ngroups <= MAX_GROUPS);
    assert_true(it->ngroups == 0 || it->groups);
    g->ngroups = it->ngroups;
    for (size_t i = 0; i < it->ngroups; i++) {
        assert_true(strlen(it->groups[i]) < sizeof g->groups[i]);
        strcpy(g->groups[i], it->groups[i]);
    }
    return acc->n == acc->stop_after ? acc->ret : 0;
}

static void
assert_item(const got_item *g, const mp_roster_item *want)
{
    assert_string_equal(g->jid, want->jid);
    assert_int_equal(g->has_name, want->name != NULL);
    if (want->name)
        assert_string_equal(g->name, want->name);
    assert_int_equal(g->state, want->state);
    assert_int_equal(g->ngroups, want->ngroups);
    for (size_t i = 0; i < want->ngroups; i++)
        assert_string_equal(g->groups[i], want->groups[i]);
}

static void
assert_stored(fixture *f, const char *node, const mp_roster_item *want)
{
    roster_acc acc = {0};
    assert_int_equal(f->ops->roster_get(f->st, D, node, want->jid, collect, &acc), 0);
    assert_int_equal(acc.n, 1);
    assert_item(&acc.items[0], want);
}

static uint64_t
version_of(fixture *f, const char *node)
{
    roster_acc acc = {0};
    uint64_t ver = 12345;
    assert_int_equal(f->ops->roster_list(f->st, D, node, collect, &acc, &ver), 0);
    return ver;
}

static const char *const odd_groups[] = {
    "",                                      /* empty name */
    "Freunde \xe2\x9c\x93 \xf0\x9f\x90\xa6", /* unicode, 4-byte sequence too */
    "a\tb\nc\r<&>'\"%_\\",                   /* markup, escapes, LIKE wildcards */
    "\x01\x7f",                              /* control characters */
    "x'';DROP TABLE roster;--",
    "Freunde", /* a prefix of another group */
};

static void
test_roster_put_get_list(void **state)
{
    fixture *f = *state;
    static const char *const one[] = {"Friends"};
    const char *many[MAX_GROUPS];
    char names[MAX_GROUPS][16];
    uint64_t ver = 0;

    for (int i = 0; i < MAX_GROUPS; i++) {
        snprintf(names[i], sizeof names[i], "group %02d", MAX_GROUPS - i);
        many[i] = names[i];
    }
    const mp_roster_item items[] = {
        {.jid = "romeo@example.net",
         .name = "Romeo",
         .state = MP_SUB_BOTH,
         .groups = one,
         .ngroups = 1},
        {.jid = "benvolio@example.net", .state = MP_SUB_NONE | MP_SUB_PENDING_OUT},
        {.jid = "nurse@example.com",
         .name = "N\xc3\xbcrse \xe2\x99\xa5",
         .state = MP_SUB_FROM | MP_SUB_PENDING_OUT,
         .groups = odd_groups,
         .ngroups = sizeof odd_groups / sizeof odd_groups[0]},
        {.jid = "mercutio@example.net", .name = "", .state = MP_SUB_PENDING_IN | MP_SUB_HIDDEN},
        {.jid = "capulet@example.com", .state = MP_SUB_TO, .groups = many, .ngroups = MAX_GROUPS},
    };
    /* JID (byte) order */
    static const int order[] = {1, 4, 3, 2, 0};
    const int n = sizeof items / sizeof items[0];

    roster_acc none = {0};
    assert_int_equal(f->ops->roster_get(f->st, D, "juliet", "romeo@example.net", collect, &none),
                     MP_ENOTFOUND);
    assert_int_equal(none.n, 0);

    for (int i = 0; i < n; i++) {
        uint64_t prev = ver;
        assert_int_equal(f->ops->roster_put(f->st, D, "juliet", &items[i], &ver), 0);
        assert_true(ver > prev);
    }
    for (int i = 0; i < n; i++)
        assert_stored(f, "juliet", &items[i]);

    roster_acc acc = {0};
    uint64_t lver = 0;
    assert_int_equal(f->ops->roster_list(f->st, D, "juliet", collect, &acc, &lver), 0);
    assert_int_equal(lver, ver);
    assert_int_equal(acc.n, n);
    for (int i = 0; i < n; i++)
        assert_item(&acc.items[i], &items[order[i]]);

    /* version may be NULL */
    roster_acc acc2 = {0};
    assert_int_equal(f->ops->roster_list(f->st, D, "juliet", collect, &acc2, NULL), 0);
    assert_int_equal(acc2.n, n);

    /* the roster belongs to juliet@localhost only */
    roster_acc other = {0};
    assert_int_equal(f->ops->roster_list(f->st, "example.org", "juliet", collect, &other, &lver),
                     0);
    assert_int_equal(other.n, 0);
    assert_int_equal(lver, 0);
    assert_int_equal(f->ops->roster_get(f->st, D, "romeo", "romeo@example.net", collect, &other),
                     MP_ENOTFOUND);

    /* bad items */
    mp_roster_item bad = {.jid = NULL};
    assert_int_equal(f->ops->roster_put(f->st, D, "juliet", &bad, &ver), MP_EINVAL);
    bad.jid = "";
    assert_int_equal(f->ops->roster_put(f->st, D, "juliet", &bad, &ver), MP_EINVAL);
    static const char *const null_group[] = {"a", NULL};
    bad = (mp_roster_item){.jid = "x@y", .groups = null_group, .ngroups = 2};
    assert_int_equal(f->ops->roster_put(f->st, D, "juliet", &bad, &ver), MP_EINVAL);
    assert_int_equal(version_of(f, "juliet"), ver);
    assert_int_equal(f->ops->roster_get(f->st, D, "juliet", "x@y", collect, &other), MP_ENOTFOUND);
}

static void
test_roster_callbacks_stop(void **state)
{
    fixture *f = *state;
    static const char *const jids[] = {"a@x", "b@x", "c@x"};

    for (int i = 0; i < 3; i++) {
        mp_roster_item it = {.jid = jids[i]};
        assert_int_equal(f->ops->roster_put(f->st, D, "u", &it, NULL), 0);
    }
    roster_acc stop = {.stop_after = 2, .ret = 1};
    assert_int_equal(f->ops->roster_list(f->st, D, "u", collect, &stop, NULL), 0);
    assert_int_equal(stop.n, 2);
    roster_acc fail = {.stop_after = 1, .ret = MP_ENOMEM};
    uint64_t ver = 0;
    assert_int_equal(f->ops->roster_list(f->st, D, "u", collect, &fail, &ver), MP_ENOMEM);
    assert_int_equal(fail.n, 1);
    roster_acc fail1 = {.stop_after = 1, .ret = MP_ENOMEM};
    assert_int_equal(f->ops->roster_get(f->st, D, "u", "b@x", collect, &fail1), MP_ENOMEM);
    roster_acc stop1 = {.stop_after = 1, .ret = 7};
    assert_int_equal(f->ops->roster_get(f->st, D, "u", "b@x", collect, &stop1), 0);
    /* statements were reset: a full listing starts over */
    roster_acc all = {0};
    assert_int_equal(f->ops->roster_list(f->st, D, "u", collect, &all, &ver), 0);
    assert_int_equal(all.n, 3);
    assert_int_equal(ver, 3);
}

static void
test_roster_replace_and_delete(void **state)
{
    fixture *f = *state;
    static const char *const ab[] = {"A", "B"};
    static const char *const c[] = {"C"};
    mp_roster_item it = {.jid = "romeo@example.net",
                         .name = "Romeo",
                         .state = MP_SUB_TO,
                         .groups = ab,
                         .ngroups = 2};
    mp_roster_item keep = {.jid = "tybalt@example.net", .state = MP_SUB_NONE};
    uint64_t v1, v2, v3, v4, v5;

    assert_int_equal(version_of(f, "juliet"), 0);
    assert_int_equal(f->ops->roster_put(f->st, D, "juliet", &it, &v1), 0);
    assert_int_equal(f->ops->roster_put(f->st, D, "juliet", &keep, &v2), 0);
    assert_stored(f, "juliet", &it);

    /* replacing replaces the groups and the name */
    it.name = NULL;
    it.groups = c;
    it.ngroups = 1;
    it.state = MP_SUB_BOTH;
    assert_int_equal(f->ops->roster_put(f->st, D, "juliet", &it, &v3), 0);
    assert_stored(f, "juliet", &it);
    it.groups = NULL;
    it.ngroups = 0;
    assert_int_equal(f->ops->roster_put(f->st, D, "juliet", &it, &v4), 0);
    assert_stored(f, "juliet", &it);
    assert_true(v1 < v2 && v2 < v3 && v3 < v4);
    /* reading does not move the version */
    assert_int_equal(version_of(f, "juliet"), v4);
    assert_int_equal(version_of(f, "juliet"), v4);

    assert_int_equal(f->ops->roster_delete(f->st, D, "juliet", it.jid, &v5), 0);
    assert_true(v5 > v4);
    roster_acc acc = {0};
    assert_int_equal(f->ops->roster_get(f->st, D, "juliet", it.jid, collect, &acc), MP_ENOTFOUND);
    /* deleting what is not there fails and leaves the version */
    uint64_t untouched = 777;
    assert_int_equal(f->ops->roster_delete(f->st, D, "juliet", it.jid, &untouched), MP_ENOTFOUND);
    assert_int_equal(untouched, 777);
    assert_int_equal(f->ops->roster_delete(f->st, D, "nobody", it.jid, NULL), MP_ENOTFOUND);
    assert_int_equal(version_of(f, "juliet"), v5);
    assert_int_equal(version_of(f, "nobody"), 0);
    assert_stored(f, "juliet", &keep);

    /* each roster counts on its own; an emptied roster keeps its version */
    assert_int_equal(f->ops->roster_put(f->st, D, "romeo", &keep, &v1), 0);
    assert_int_equal(v1, 1);
    assert_int_equal(f->ops->roster_delete(f->st, D, "juliet", keep.jid, &v1), 0);
    assert_int_equal(v1, v5 + 1);
    acc.n = 0;
    uint64_t lv;
    assert_int_equal(f->ops->roster_list(f->st, D, "juliet", collect, &acc, &lv), 0);
    assert_int_equal(acc.n, 0);
    assert_int_equal(lv, v5 + 1);
}

/* ---- offline messages ---- */

#define MAX_MSGS 8

typedef struct offline_acc {
    char msg[MAX_MSGS][64];
    size_t len[MAX_MSGS];
    int64_t stamp[MAX_MSGS];
    int n;
    int stop_after;
    int ret;
    fixture *f; /* when set, each call also writes a roster item */
} offline_acc;

static int
take_cb(const char *stanza, size_t len, int64_t stamp, void *ud)
{
    offline_acc *acc = ud;
    assert_true(acc->n < MAX_MSGS);
    assert_true(len <= sizeof acc->msg[0]);
    memcpy(acc->msg[acc->n], stanza, len);
    acc->len[acc->n] = len;
    acc->stamp[acc->n] = stamp;
    acc->n++;
    if (acc->f) {
        mp_roster_item it = {.jid = acc->n == 1 ? "n1@x" : "n2@x"};
        assert_int_equal(acc->f->ops->roster_put(acc->f->st, D, "nested", &it, NULL), 0);
    }
    return acc->n == acc->stop_after ? acc->ret : 0;
}

static const char m_bin[] = "<message>\0\xff\x01</message>";
static const struct {
    const char *data;
    size_t len;
    int64_t stamp;
} msgs[] = {
    {"<message><body>1</body></message>", 33, 1700000000},
    {m_bin, sizeof m_bin - 1, 1700000001},
    {"<message/>", 10, -5},
    {"<message><body>4</body></message>", 33, INT64_MAX},
};

static void
push_all(fixture *f, const char *node, int count)
{
    for (int i = 0; i < count; i++)
        assert_int_equal(
            f->ops->offline_push(f->st, D, node, msgs[i].data, msgs[i].len, msgs[i].stamp, 10), 0);
}

static void
assert_taken(const offline_acc *acc, int from, int count)
{
    assert_int_equal(acc->n, count);
    for (int i = 0; i < count; i++) {
        assert_int_equal(acc->len[i], msgs[from + i].len);
        assert_memory_equal(acc->msg[i], msgs[from + i].data, msgs[from + i].len);
        assert_true(acc->stamp[i] == msgs[from + i].stamp);
    }
}

static void
test_offline_push_take(void **state)
{
    fixture *f = *state;
    offline_acc acc = {0};

    assert_int_equal(f->ops->offline_count(f->st, D, "juliet"), 0);
    assert_int_equal(f->ops->offline_take(f->st, D, "juliet", take_cb, &acc), 0);
    assert_int_equal(acc.n, 0);

    /* up to max, then MP_ELIMIT */
    for (int i = 0; i < 3; i++)
        assert_int_equal(
            f->ops->offline_push(f->st, D, "juliet", msgs[i].data, msgs[i].len, msgs[i].stamp, 3),
            0);
    assert_int_equal(
        f->ops->offline_push(f->st, D, "juliet", msgs[3].data, msgs[3].len, msgs[3].stamp, 3),
        MP_ELIMIT);
    assert_int_equal(f->ops->offline_count(f->st, D, "juliet"), 3);
    /* a smaller max than what is queued refuses too; other users are not counted */
    assert_int_equal(f->ops->offline_push(f->st, D, "juliet", "<message/>", 10, 0, 1), MP_ELIMIT);
    assert_int_equal(f->ops->offline_push(f->st, D, "juliet", "<message/>", 10, 0, 0), MP_ELIMIT);
    assert_int_equal(f->ops->offline_push(f->st, D, "romeo", "<message/>", 10, 0, 1), 0);
    assert_int_equal(f->ops->offline_push(f->st, "example.org", "juliet", "<message/>", 10, 0, 1),
                     0);
    assert_int_equal(f->ops->offline_push(f->st, D, "juliet", "", 0, 0, 10), MP_EINVAL);

    assert_int_equal(f->ops->offline_take(f->st, D, "juliet", take_cb, &acc), 3);
    assert_taken(&acc, 0, 3);
    assert_int_equal(f->ops->offline_count(f->st, D, "juliet"), 0);
    assert_int_equal(f->ops->offline_count(f->st, D, "romeo"), 1);
    assert_int_equal(f->ops->offline_count(f->st, "example.org", "juliet"), 1);

    /* the queue works again after being emptied, in order */
    push_all(f, "juliet", 4);
    offline_acc again = {0};
    assert_int_equal(f->ops->offline_take(f->st, D, "juliet", take_cb, &again), 4);
    assert_taken(&again, 0, 4);
    offline_acc empty = {0};
    assert_int_equal(f->ops->offline_take(f->st, D, "juliet", take_cb, &empty), 0);
    assert_int_equal(empty.n, 0);
}

static void
test_offline_take_failure_keeps_all(void **state)
{
    fixture *f = *state;

    push_all(f, "juliet", 3);
    offline_acc fail = {.stop_after = 2, .ret = MP_EIO};
    assert_int_equal(f->ops->offline_take(f->st, D, "juliet", take_cb, &fail), MP_EIO);
    assert_int_equal(fail.n, 2);
    assert_int_equal(f->ops->offline_count(f->st, D, "juliet"), 3);
    /* the last one failing deletes nothing either */
    offline_acc fail_last = {.stop_after = 3, .ret = MP_ENOMEM};
    assert_int_equal(f->ops->offline_take(f->st, D, "juliet", take_cb, &fail_last), MP_ENOMEM);
    assert_int_equal(f->ops->offline_count(f->st, D, "juliet"), 3);

    /* a positive value stops: what was handed over is taken, the rest stays */
    offline_acc stop = {.stop_after = 1, .ret = 1};
    assert_int_equal(f->ops->offline_take(f->st, D, "juliet", take_cb, &stop), 1);
    assert_taken(&stop, 0, 1);
    assert_int_equal(f->ops->offline_count(f->st, D, "juliet"), 2);
    offline_acc rest = {0};
    assert_int_equal(f->ops->offline_take(f->st, D, "juliet", take_cb, &rest), 2);
    assert_taken(&rest, 1, 2);
    assert_int_equal(f->ops->offline_count(f->st, D, "juliet"), 0);
}

/* A store call from inside offline_take's callback joins its transaction. */
static void
test_offline_take_nested_writes(void **state)
{
    fixture *f = *state;
    roster_acc r = {0};
    uint64_t ver;

    push_all(f, "juliet", 2);
    offline_acc ok = {.f = f};
    assert_int_equal(f->ops->offline_take(f->st, D, "juliet", take_cb, &ok), 2);
    assert_int_equal(f->ops->roster_list(f->st, D, "nested", collect, &r, &ver), 0);
    assert_int_equal(r.n, 2);
    assert_int_equal(ver, 2);

    push_all(f, "juliet", 2);
    offline_acc fail = {.f = f, .stop_after = 2, .ret = MP_EIO};
    assert_int_equal(f->ops->offline_take(f->st, D, "juliet", take_cb, &fail), MP_EIO);
    assert_int_equal(f->ops->offline_count(f->st, D, "juliet"), 2);
    /* rolled back with the take: the version did not move */
    assert_int_equal(version_of(f, "nested"), 2);
    /* and the store is usable afterwards (no transaction left open) */
    assert_int_equal(f->ops->offline_take(f->st, D, "juliet", take_cb, &(offline_acc){0}), 2);
    mp_roster_item it = {.jid = "n3@x"};
    assert_int_equal(f->ops->roster_put(f->st, D, "nested", &it, &ver), 0);
    assert_int_equal(ver, 3);
}

/* An acknowledged push is committed: a kill -9 right after it loses nothing. */
static void
test_offline_survives_kill(void **state)
{
    fixture *f = *state;

    mp_store_close(f->st);
    f->st = NULL;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        mp_store *st;
        if (mp_store_sqlite_open(f->path, &st) != 0 ||
            st->ops->offline_push(st, D, "juliet", msgs[0].data, msgs[0].len, msgs[0].stamp, 10) !=
                0)
            _exit(1);
        kill(getpid(), SIGKILL);
        _exit(2);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    reopen(f);
    offline_acc acc = {0};
    assert_int_equal(f->ops->offline_take(f->st, D, "juliet", take_cb, &acc), 1);
    assert_taken(&acc, 0, 1);
}

/* ---- documents ---- */

static void
test_blobs(void **state)
{
    fixture *f = *state;
    mp_buf b = {0};
    static const char bin[] = "\0<query xmlns='jabber:iq:private'/>\xff\0";

    assert_int_equal(f->ops->blob_get(f->st, D, "juliet", "vcard", "", &b), MP_ENOTFOUND);
    assert_int_equal(b.len, 0);
    assert_int_equal(f->ops->blob_put(f->st, D, "juliet", "vcard", "", "<vCard/>", 8), 0);
    assert_int_equal(
        f->ops->blob_put(f->st, D, "juliet", "private", "storage:bookmarks", bin, sizeof bin), 0);
    assert_int_equal(
        f->ops->blob_put(f->st, D, "juliet", "private", "storage:rosternotes", "<notes/>", 8), 0);
    /* kinds and keys are separate, and so are accounts */
    assert_int_equal(f->ops->blob_get(f->st, D, "juliet", "private", "", &b), MP_ENOTFOUND);
    assert_int_equal(f->ops->blob_get(f->st, D, "juliet", "vcard", "storage:bookmarks", &b),
                     MP_ENOTFOUND);
    assert_int_equal(f->ops->blob_get(f->st, D, "romeo", "vcard", "", &b), MP_ENOTFOUND);
    assert_int_equal(f->ops->blob_get(f->st, "example.org", "juliet", "vcard", "", &b),
                     MP_ENOTFOUND);

    assert_int_equal(f->ops->blob_get(f->st, D, "juliet", "vcard", "", &b), 0);
    assert_int_equal(b.len, 8);
    assert_memory_equal(b.data, "<vCard/>", 8);
    /* get appends */
    assert_int_equal(f->ops->blob_get(f->st, D, "juliet", "private", "storage:bookmarks", &b), 0);
    assert_int_equal(b.len, 8 + sizeof bin);
    assert_memory_equal(b.data + 8, bin, sizeof bin);
    b.len = 0;
    assert_int_equal(f->ops->blob_get(f->st, D, "juliet", "private", "storage:rosternotes", &b), 0);
    assert_int_equal(b.len, 8);
    assert_memory_equal(b.data, "<notes/>", 8);

    /* replace */
    b.len = 0;
    assert_int_equal(f->ops->blob_put(f->st, D, "juliet", "vcard", "", "<vCard><FN/></vCard>", 20),
                     0);
    assert_int_equal(f->ops->blob_get(f->st, D, "juliet", "vcard", "", &b), 0);
    assert_int_equal(b.len, 20);
    assert_memory_equal(b.data, "<vCard><FN/></vCard>", 20);
    /* a NULL key is the empty key */
    b.len = 0;
    assert_int_equal(f->ops->blob_get(f->st, D, "juliet", "vcard", NULL, &b), 0);
    assert_int_equal(b.len, 20);

    /* len 0 deletes that one only; deleting what is absent is fine */
    assert_int_equal(f->ops->blob_put(f->st, D, "juliet", "vcard", "", NULL, 0), 0);
    assert_int_equal(f->ops->blob_get(f->st, D, "juliet", "vcard", "", &b), MP_ENOTFOUND);
    assert_int_equal(f->ops->blob_put(f->st, D, "juliet", "vcard", "", "", 0), 0);
    b.len = 0;
    assert_int_equal(f->ops->blob_get(f->st, D, "juliet", "private", "storage:bookmarks", &b), 0);
    assert_int_equal(b.len, sizeof bin);

    assert_int_equal(f->ops->blob_put(f->st, D, "juliet", NULL, "", "x", 1), MP_EINVAL);
    assert_int_equal(f->ops->blob_put(f->st, D, "juliet", "vcard", "", NULL, 1), MP_EINVAL);
    assert_int_equal(f->ops->blob_get(f->st, D, "juliet", NULL, "", &b), MP_EINVAL);
    mp_buf_free(&b);
}

static void
test_persistence(void **state)
{
    fixture *f = *state;
    static const char *const grp[] = {"Fam\xc3\xadlia", ""};
    mp_roster_item it = {
        .jid = "romeo@example.net", .name = "R", .state = MP_SUB_BOTH, .groups = grp, .ngroups = 2};
    uint64_t ver;
    mp_buf b = {0};

    assert_int_equal(f->ops->roster_put(f->st, D, "juliet", &it, &ver), 0);
    assert_int_equal(f->ops->roster_put(f->st, D, "juliet", &it, &ver), 0);
    push_all(f, "juliet", 4);
    assert_int_equal(f->ops->blob_put(f->st, D, "juliet", "vcard", "", "<vCard/>", 8), 0);

    reopen(f);
    assert_stored(f, "juliet", &it);
    assert_int_equal(version_of(f, "juliet"), ver);
    assert_int_equal(f->ops->roster_put(f->st, D, "juliet", &it, &ver), 0);
    assert_int_equal(ver, 3);
    offline_acc acc = {0};
    assert_int_equal(f->ops->offline_take(f->st, D, "juliet", take_cb, &acc), 4);
    assert_taken(&acc, 0, 4);
    assert_int_equal(f->ops->blob_get(f->st, D, "juliet", "vcard", "", &b), 0);
    assert_int_equal(b.len, 8);
    mp_buf_free(&b);

    /* ids keep growing after a reopen of an emptied queue: order holds */
    reopen(f);
    push_all(f, "juliet", 2);
    offline_acc acc2 = {0};
    assert_int_equal(f->ops->offline_take(f->st, D, "juliet", take_cb, &acc2), 2);
    assert_taken(&acc2, 0, 2);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_roster_put_get_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_roster_callbacks_stop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_roster_replace_and_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_offline_push_take, setup, teardown),
        cmocka_unit_test_setup_teardown(test_offline_take_failure_keeps_all, setup, teardown),
        cmocka_unit_test_setup_teardown(test_offline_take_nested_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_offline_survives_kill, setup, teardown),
        cmocka_unit_test_setup_teardown(test_blobs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_persistence, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
