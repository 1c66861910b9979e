/* The SQLite store's message archive (XEP-0313 storage): append, query with filters and RSM
 * paging, fulltext, trimming, deletion, retention, preferences, the v2 -> v3 upgrade. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "helpers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "base/err.h"
#include "storage/store.h"
/* only to check the fulltext index */
#include "storage/sqlite/sqlite_int.h"

#define D "example.org"
#define ROOM_D "conference.example.org"
#define T0 1700000000000000LL /* 2023-11-14, in microseconds */

typedef mp_test_store fixture;

static void
reopen(fixture *f)
{
    mp_test_store_reopen(f);
}

static int
setup(void **state)
{
    return mp_test_store_setup(state, "store_archive");
}

static int
teardown(void **state)
{
    return mp_test_store_teardown(state);
}

static void
batch(fixture *f, int begin)
{
    assert_int_equal(begin ? f->ops->batch_begin(f->st) : f->ops->batch_end(f->st, 1), 0);
}

/* ---- helpers: append and collect ---- */

static void
append(fixture *f, const char *node, const char *with, const char *res, int64_t stamp,
       const char *body, int64_t max, char id[MP_ARCHIVE_ID_SIZE])
{
    char stanza[512];
    char tmp[MP_ARCHIVE_ID_SIZE];
    int n = snprintf(stanza, sizeof stanza,
                     "<message to='%s@" D "' from='%s/%s'><body>%s</body>"
                     "</message>",
                     node, with, res ? res : "", body ? body : "");
    mp_archive_item it = {
        .with_jid = with,
        .with_resource = res,
        .direction = MP_ARCHIVE_IN,
        .stamp = stamp,
        .body = body,
        .stanza = stanza,
        .len = (size_t)n,
    };
    assert_int_equal(
        f->ops->archive_append(f->st, D, node, &it, max, id ? id : tmp, MP_ARCHIVE_ID_SIZE), 0);
}

#define MAX_GOT 1100

typedef struct got {
    size_t n;
    char id[MAX_GOT][MP_ARCHIVE_ID_SIZE];
    int64_t stamp[MAX_GOT];
    char body[MAX_GOT][64];
    int stop_after; /* > 0: return 1 after this many */
    int fail_after; /* > 0: return MP_EIO at this many */
} got;

static int
collect(const mp_archive_item *it, void *ud)
{
    got *g = ud;
    assert_true(g->n < MAX_GOT);
    assert_int_equal(strlen(it->id), MP_ARCHIVE_ID_LEN);
    strcpy(g->id[g->n], it->id);
    g->stamp[g->n] = it->stamp;
    snprintf(g->body[g->n], sizeof g->body[0], "%s", it->body ? it->body : "");
    g->n++;
    if (g->fail_after && (int)g->n == g->fail_after)
        return MP_EIO;
    return g->stop_after && (int)g->n >= g->stop_after;
}

static int
query(fixture *f, const char *node, const mp_archive_query *q, got *g, mp_archive_page *p)
{
    memset(g, 0, sizeof *g);
    return f->ops->archive_query(f->st, D, node, q, collect, g, p);
}

/* Items 0..n-1 of "juliet": stamp T0 + i seconds, alternating romeo / nurse, body "msg <i>". */
static void
fill(fixture *f, int n, char (*ids)[MP_ARCHIVE_ID_SIZE])
{
    batch(f, 1);
    for (int i = 0; i < n; i++) {
        char body[32];
        snprintf(body, sizeof body, "msg %d", i);
        append(f, "juliet", i % 2 ? "nurse@" D : "romeo@montague.lit",
               i % 3 ? "balcony" : "orchard", T0 + i * 1000000LL, body, 0, ids ? ids[i] : NULL);
    }
    batch(f, 0);
}

static void
assert_stamps(const got *g, int64_t first, int64_t step, size_t n)
{
    assert_int_equal(g->n, n);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(g->stamp[i], first + (int64_t)i * step);
}

/* ---- tests ---- */

typedef struct one {
    int calls;
    char id[MP_ARCHIVE_ID_SIZE];
    char with[64], res[64], origin[64], body[64], stanza[256];
    int direction;
    int64_t stamp;
    int has_origin, has_body;
} one;

static int
copy_one(const mp_archive_item *it, void *ud)
{
    one *o = ud;
    o->calls++;
    snprintf(o->id, sizeof o->id, "%s", it->id);
    snprintf(o->with, sizeof o->with, "%s", it->with_jid);
    snprintf(o->res, sizeof o->res, "%s", it->with_resource);
    o->has_origin = it->origin_id != NULL;
    snprintf(o->origin, sizeof o->origin, "%s", it->origin_id ? it->origin_id : "");
    o->has_body = it->body != NULL;
    snprintf(o->body, sizeof o->body, "%s", it->body ? it->body : "");
    assert_true(it->len < sizeof o->stanza);
    memcpy(o->stanza, it->stanza, it->len);
    o->stanza[it->len] = '\0';
    o->direction = it->direction;
    o->stamp = it->stamp;
    return 0;
}

static void
test_round_trip(void **state)
{
    fixture *f = *state;
    static const char stanza[] = "<message to='romeo@montague.lit/orchard' type='chat'>"
                                 "<body>Wherefore art thou?</body></message>";
    mp_archive_item it = {.with_jid = "romeo@montague.lit",
                          .with_resource = "orchard",
                          .direction = MP_ARCHIVE_OUT,
                          .stamp = T0 + 123456,
                          .origin_id = "origin-1",
                          .body = "Wherefore art thou?",
                          .stanza = stanza,
                          .len = sizeof stanza - 1};
    char id[MP_ARCHIVE_ID_SIZE], small[8];
    mp_archive_query q = {.limit = 10, .want_count = 1};
    mp_archive_page p;
    one o = {0};

    assert_int_equal(f->ops->archive_append(f->st, D, "juliet", &it, 0, id, sizeof id), 0);
    assert_int_equal(strlen(id), MP_ARCHIVE_ID_LEN);
    assert_int_equal(strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
                     MP_ARCHIVE_ID_LEN);

    assert_int_equal(f->ops->archive_query(f->st, D, "juliet", &q, copy_one, &o, &p), 0);
    assert_int_equal(o.calls, 1);
    assert_string_equal(o.id, id);
    assert_string_equal(o.with, "romeo@montague.lit");
    assert_string_equal(o.res, "orchard");
    assert_int_equal(o.direction, MP_ARCHIVE_OUT);
    assert_int_equal(o.stamp, T0 + 123456);
    assert_true(o.has_origin);
    assert_string_equal(o.origin, "origin-1");
    assert_string_equal(o.body, "Wherefore art thou?");
    assert_string_equal(o.stanza, stanza);
    assert_int_equal(p.n, 1);
    assert_string_equal(p.first, id);
    assert_string_equal(p.last, id);
    assert_int_equal(p.complete, 1);
    assert_int_equal(p.count, 1);

    /* by id; not from another owner */
    memset(&o, 0, sizeof o);
    assert_int_equal(f->ops->archive_get_by_id(f->st, D, "juliet", id, copy_one, &o), 0);
    assert_int_equal(o.calls, 1);
    assert_string_equal(o.stanza, stanza);
    assert_int_equal(f->ops->archive_get_by_id(f->st, D, "romeo", id, copy_one, &o), MP_ENOTFOUND);
    assert_int_equal(
        f->ops->archive_get_by_id(f->st, D, "juliet", "AAAAAAAAAAAAAAAA", copy_one, &o),
        MP_ENOTFOUND);
    assert_int_equal(o.calls, 1);

    /* no origin, no body, no resource: NULL, NULL, "" */
    mp_archive_item bare = {
        .with_jid = "nurse@" D, .stamp = T0 + 200000, .stanza = "<m/>", .len = 4};
    assert_int_equal(f->ops->archive_append(f->st, D, "juliet", &bare, 0, id, sizeof id), 0);
    memset(&o, 0, sizeof o);
    assert_int_equal(f->ops->archive_get_by_id(f->st, D, "juliet", id, copy_one, &o), 0);
    assert_false(o.has_origin);
    assert_false(o.has_body);
    assert_string_equal(o.res, "");
    assert_int_equal(o.direction, MP_ARCHIVE_IN);

    /* bad input */
    assert_int_equal(f->ops->archive_append(f->st, D, "juliet", &it, 0, small, sizeof small),
                     MP_EINVAL);
    bare.with_jid = NULL;
    assert_int_equal(f->ops->archive_append(f->st, D, "juliet", &bare, 0, id, sizeof id),
                     MP_EINVAL);
    bare.with_jid = "nurse@" D;
    bare.len = 0;
    assert_int_equal(f->ops->archive_append(f->st, D, "juliet", &bare, 0, id, sizeof id),
                     MP_EINVAL);
    bare.len = 4;
    bare.direction = 7;
    assert_int_equal(f->ops->archive_append(f->st, D, "juliet", &bare, 0, id, sizeof id),
                     MP_EINVAL);
    q.limit = -1;
    assert_int_equal(f->ops->archive_query(f->st, D, "juliet", &q, copy_one, &o, &p), MP_EINVAL);
    q = (mp_archive_query){.with_resource = "orchard", .limit = 5};
    assert_int_equal(f->ops->archive_query(f->st, D, "juliet", &q, copy_one, &o, &p), MP_EINVAL);

    /* it all survives a reopen */
    reopen(f);
    got g;
    q = (mp_archive_query){.limit = 10, .want_count = 1};
    assert_int_equal(query(f, "juliet", &q, &g, &p), 0);
    assert_int_equal(g.n, 2);
    assert_int_equal(p.count, 2);
}

/* Results come by stamp, and by arrival among equal stamps, whatever the order of appends. */
static void
test_order(void **state)
{
    fixture *f = *state;
    static const int64_t stamps[] = {50, 10, 90, 10, 30, 90, 10};
    static const char *const expect[] = {"b1", "b3", "b6", "b4", "b0", "b2", "b5"};
    mp_archive_query q = {.limit = 100};
    mp_archive_page p;
    got g;

    for (size_t i = 0; i < 7; i++) {
        char body[8];
        snprintf(body, sizeof body, "b%zu", i);
        append(f, "juliet", "romeo@montague.lit", NULL, T0 + stamps[i], body, 0, NULL);
    }
    assert_int_equal(query(f, "juliet", &q, &g, &p), 0);
    assert_int_equal(g.n, 7);
    for (size_t i = 0; i < 7; i++)
        assert_string_equal(g.body[i], expect[i]);
    /* backwards too: the last 3, still oldest first */
    q.before_id = "";
    q.limit = 3;
    assert_int_equal(query(f, "juliet", &q, &g, &p), 0);
    assert_int_equal(g.n, 3);
    assert_string_equal(g.body[0], "b0");
    assert_string_equal(g.body[1], "b2");
    assert_string_equal(g.body[2], "b5");
    /* paging from an item inside a run of equal stamps */
    char after[MP_ARCHIVE_ID_SIZE];
    strcpy(after, g.id[1]); /* b2 */
    q = (mp_archive_query){.limit = 2, .after_id = after};
    assert_int_equal(query(f, "juliet", &q, &g, &p), 0);
    assert_int_equal(g.n, 1);
    assert_string_equal(g.body[0], "b5");
    assert_int_equal(p.complete, 1);
}

static void
test_filters(void **state)
{
    fixture *f = *state;
    mp_archive_query q = {.limit = 100, .want_count = 1};
    mp_archive_page p;
    got g;

    fill(f, 30, NULL);
    /* a room's archive is one more owner, and not juliet's */
    mp_archive_item it = {.with_jid = "room@" ROOM_D,
                          .with_resource = "romeo",
                          .stamp = T0,
                          .body = "msg in room",
                          .stanza = "<m/>",
                          .len = 4};
    char id[MP_ARCHIVE_ID_SIZE];
    assert_int_equal(f->ops->archive_append(f->st, ROOM_D, "room", &it, 0, id, sizeof id), 0);

    assert_int_equal(query(f, "juliet", &q, &g, &p), 0);
    assert_stamps(&g, T0, 1000000, 30);
    assert_int_equal(p.count, 30);
    assert_int_equal(p.complete, 1);

    /* with: a bare JID matches every resource */
    q.with_jid = "romeo@montague.lit";
    assert_int_equal(query(f, "juliet", &q, &g, &p), 0);
    assert_stamps(&g, T0, 2000000, 15);
    assert_int_equal(p.count, 15);
    /* a full JID matches exactly: romeo is at i = 0, 2, 4 ...; "orchard" when i % 3 == 0 */
    q.with_resource = "orchard";
    assert_int_equal(query(f, "juliet", &q, &g, &p), 0);
    assert_stamps(&g, T0, 6000000, 5);
    assert_int_equal(p.count, 5);
    q.with_resource = "nowhere";
    assert_int_equal(query(f, "juliet", &q, &g, &p), 0);
    assert_int_equal(g.n, 0);
    assert_int_equal(p.count, 0);
    assert_int_equal(p.complete, 1);
    assert_string_equal(p.first, "");
    q.with_jid = "tybalt@capulet.lit";
    q.with_resource = NULL;
    assert_int_equal(query(f, "juliet", &q, &g, &p), 0);
    assert_int_equal(g.n, 0);

    /* start and end, inclusive */
    q = (mp_archive_query){
        .limit = 100, .want_count = 1, .has_start = 1, .start = T0 + 10 * 1000000LL};
    assert_int_equal(query(f, "juliet", &q, &g, &p), 0);
    assert_stamps(&g, T0 + 10 * 1000000LL, 1000000, 20);
    assert_int_equal(p.count, 20);
    q = (mp_archive_query){.limit = 100, .want_count = 1, .has_end = 1, .end = T0 + 10 * 1000000LL};
    assert_int_equal(query(f, "juliet", &q, &g, &p), 0);
    assert_stamps(&g, T0, 1000000, 11);
    q.has_start = 1;
    q.start = T0 + 10 * 1000000LL;
    assert_int_equal(query(f, "juliet", &q, &g, &p), 0);
    assert_stamps(&g, T0 + 10 * 1000000LL, 1000000, 1);
    q.start = T0 + 11 * 1000000LL; /* start after end: nothing */
    assert_int_equal(query(f, "juliet", &q, &g, &p), 0);
    assert_int_equal(g.n, 0);
    assert_int_equal(p.count, 0);

    /* fulltext alone: words, not substrings: "1" is in "msg 1" only */
    q = (mp_archive_query){.limit = 100, .want_count = 1, .fulltext = "1"};
    assert_int_equal(query(f, "juliet", &q, &g, &p), 0);
    assert_int_equal(g.n, 1);
    assert_string_equal(g.body[0], "msg 1");
    q.fulltext = "MSG";
    assert_int_equal(query(f, "juliet", &q, &g, &p), 0);
    assert_int_equal(g.n, 30);
    assert_int_equal(p.count, 30);
    q.fulltext = "   ";
    assert_int_equal(query(f, "juliet", &q, &g, &p), 0);
    assert_int_equal(g.n, 30);

    /* everything combined: romeo (even i), balcony (i % 3 != 0), from 4 s to 20 s, "msg" */
    q = (mp_archive_query){.limit = 100,
                           .want_count = 1,
                           .with_jid = "romeo@montague.lit",
                           .with_resource = "balcony",
                           .has_start = 1,
                           .start = T0 + 4000000,
                           .has_end = 1,
                           .end = T0 + 20000000,
                           .fulltext = "msg"};
    assert_int_equal(query(f, "juliet", &q, &g, &p), 0);
    /* even, not multiple of 3, 4..20: 4 8 10 14 16 20 */
    static const int64_t want[] = {4, 8, 10, 14, 16, 20};
    assert_int_equal(g.n, 6);
    for (int i = 0; i < 6; i++)
        assert_int_equal(g.stamp[i], T0 + want[i] * 1000000);
    assert_int_equal(p.count, 6);
    q.fulltext = "msg 14";
    assert_int_equal(query(f, "juliet", &q, &g, &p), 0);
    assert_int_equal(g.n, 1);
    assert_int_equal(p.count, 1);

    /* counting is optional */
    q = (mp_archive_query){.limit = 100, .with_jid = "romeo@montague.lit"};
    assert_int_equal(query(f, "juliet", &q, &g, &p), 0);
    assert_int_equal(p.count, -1);
    assert_int_equal(g.n, 15);

    /* the room sees its own message only; an unknown owner has none */
    q = (mp_archive_query){.limit = 100, .want_count = 1};
    memset(&g, 0, sizeof g);
    assert_int_equal(f->ops->archive_query(f->st, ROOM_D, "room", &q, collect, &g, &p), 0);
    assert_int_equal(g.n, 1);
    assert_string_equal(g.id[0], id);
    assert_int_equal(query(f, "nobody", &q, &g, &p), 0);
    assert_int_equal(g.n, 0);
    assert_int_equal(p.count, 0);
    assert_int_equal(p.complete, 1);
}

/* 25 items, 5 per page: forward through 5 pages, then backward from the end. */
static void
test_paging(void **state)
{
    fixture *f = *state;
    static char ids[25][MP_ARCHIVE_ID_SIZE];
    char cursor[MP_ARCHIVE_ID_SIZE] = "";
    mp_archive_query q;
    mp_archive_page p;
    got g;

    fill(f, 25, ids);
    for (int page = 0; page < 5; page++) {
        q = (mp_archive_query){.limit = 5, .want_count = 1, .after_id = page ? cursor : NULL};
        assert_int_equal(query(f, "juliet", &q, &g, &p), 0);
        assert_stamps(&g, T0 + page * 5 * 1000000LL, 1000000, 5);
        assert_string_equal(p.first, ids[page * 5]);
        assert_string_equal(p.last, ids[page * 5 + 4]);
        assert_int_equal(p.n, 5);
        assert_int_equal(p.complete, page == 4);
        assert_int_equal(p.count, 25);
        strcpy(cursor, p.last);
    }
    /* after the last item: an empty, complete page */
    q = (mp_archive_query){.limit = 5, .after_id = cursor};
    assert_int_equal(query(f, "juliet", &q, &g, &p), 0);
    assert_int_equal(g.n, 0);
    assert_int_equal(p.complete, 1);
    assert_string_equal(p.first, "");
    assert_string_equal(p.last, "");

    /* backward: before '' is the last page, then before = first of the previous answer */
    for (int page = 4; page >= 0; page--) {
        q = (mp_archive_query){.limit = 5, .want_count = 1, .before_id = page == 4 ? "" : cursor};
        assert_int_equal(query(f, "juliet", &q, &g, &p), 0);
        assert_stamps(&g, T0 + page * 5 * 1000000LL, 1000000, 5);
        assert_string_equal(p.first, ids[page * 5]);
        assert_string_equal(p.last, ids[page * 5 + 4]);
        assert_int_equal(p.complete, page == 0);
        assert_int_equal(p.count, 25);
        strcpy(cursor, p.first);
    }
    q = (mp_archive_query){.limit = 5, .before_id = cursor};
    assert_int_equal(query(f, "juliet", &q, &g, &p), 0);
    assert_int_equal(g.n, 0);
    assert_int_equal(p.complete, 1);

    /* a short last page backwards: 3 before the 4th item */
    q = (mp_archive_query){.limit = 5, .before_id = ids[3]};
    assert_int_equal(query(f, "juliet", &q, &g, &p), 0);
    assert_stamps(&g, T0, 1000000, 3);
    assert_int_equal(p.complete, 1);
    /* between two ids, forwards and backwards */
    q = (mp_archive_query){.limit = 100, .after_id = ids[5], .before_id = ids[11]};
    assert_int_equal(query(f, "juliet", &q, &g, &p), 0);
    assert_stamps(&g, T0 + 6000000, 1000000, 5);
    assert_int_equal(p.complete, 1);
    q.limit = 2;
    assert_int_equal(query(f, "juliet", &q, &g, &p), 0);
    assert_stamps(&g, T0 + 9000000, 1000000, 2);
    assert_int_equal(p.complete, 0);

    /* paging under a filter: romeo's 13 (even i), 4 per page */
    int seen = 0;
    cursor[0] = '\0';
    for (int page = 0; page < 4; page++) {
        q = (mp_archive_query){.limit = 4,
                               .want_count = 1,
                               .with_jid = "romeo@montague.lit",
                               .after_id = page ? cursor : NULL};
        assert_int_equal(query(f, "juliet", &q, &g, &p), 0);
        assert_int_equal(g.n, page < 3 ? 4 : 1);
        for (size_t i = 0; i < g.n; i++)
            assert_int_equal(g.stamp[i], T0 + (seen + (int)i) * 2000000LL);
        seen += (int)g.n;
        assert_int_equal(p.complete, page == 3);
        assert_int_equal(p.count, 13);
        strcpy(cursor, p.last);
    }
    /* the same backwards, with a fulltext filter too */
    q = (mp_archive_query){
        .limit = 4, .with_jid = "romeo@montague.lit", .before_id = "", .fulltext = "msg"};
    assert_int_equal(query(f, "juliet", &q, &g, &p), 0);
    assert_int_equal(g.n, 4);
    assert_int_equal(g.stamp[0], T0 + 18000000);
    assert_int_equal(g.stamp[3], T0 + 24000000);
    assert_int_equal(p.complete, 0);
}

static void
test_limits(void **state)
{
    fixture *f = *state;
    mp_archive_query q = {.limit = 0, .want_count = 1};
    mp_archive_page p;
    got g;

    /* limit 0 on an empty archive, then on a full one: count only */
    assert_int_equal(query(f, "juliet", &q, &g, &p), 0);
    assert_int_equal(g.n, 0);
    assert_int_equal(p.count, 0);
    assert_int_equal(p.complete, 1);
    fill(f, MP_ARCHIVE_LIMIT_MAX + 20, NULL);
    assert_int_equal(query(f, "juliet", &q, &g, &p), 0);
    assert_int_equal(g.n, 0);
    assert_int_equal(p.count, MP_ARCHIVE_LIMIT_MAX + 20);
    assert_int_equal(p.complete, 0);
    assert_string_equal(p.first, "");
    q.before_id = "";
    assert_int_equal(query(f, "juliet", &q, &g, &p), 0);
    assert_int_equal(g.n, 0);
    assert_int_equal(p.complete, 0);
    /* the hard maximum */
    q = (mp_archive_query){.limit = 1000000};
    assert_int_equal(query(f, "juliet", &q, &g, &p), 0);
    assert_int_equal(g.n, MP_ARCHIVE_LIMIT_MAX);
    assert_int_equal(p.complete, 0);
    q.before_id = "";
    assert_int_equal(query(f, "juliet", &q, &g, &p), 0);
    assert_stamps(&g, T0 + 20 * 1000000LL, 1000000, MP_ARCHIVE_LIMIT_MAX);
    assert_int_equal(p.complete, 0);

    /* the callback: positive stops (page describes what was delivered), negative is passed on */
    q = (mp_archive_query){.limit = 10};
    memset(&g, 0, sizeof g);
    g.stop_after = 3;
    assert_int_equal(f->ops->archive_query(f->st, D, "juliet", &q, collect, &g, &p), 0);
    assert_int_equal(g.n, 3);
    assert_int_equal(p.n, 3);
    assert_string_equal(p.last, g.id[2]);
    assert_int_equal(p.complete, 0);
    memset(&g, 0, sizeof g);
    g.fail_after = 2;
    assert_int_equal(f->ops->archive_query(f->st, D, "juliet", &q, collect, &g, &p), MP_EIO);
    assert_int_equal(g.n, 2);
}

static void
test_unknown_ids(void **state)
{
    fixture *f = *state;
    char romeo_id[MP_ARCHIVE_ID_SIZE];
    mp_archive_query q = {.limit = 5};
    mp_archive_page p;
    got g;

    /* unknown owner */
    q.after_id = "AAAAAAAAAAAAAAAA";
    assert_int_equal(query(f, "juliet", &q, &g, &p), MP_ENOTFOUND);
    q.after_id = NULL;
    q.before_id = "AAAAAAAAAAAAAAAA";
    assert_int_equal(query(f, "juliet", &q, &g, &p), MP_ENOTFOUND);

    fill(f, 3, NULL);
    append(f, "romeo", "juliet@" D, NULL, T0, "hi", 0, romeo_id);
    const char *const bad[] = {"AAAAAAAAAAAAAAAA", "", "x", "'; DROP TABLE archive; --", romeo_id};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        q = (mp_archive_query){.limit = 5, .after_id = bad[i]};
        assert_int_equal(query(f, "juliet", &q, &g, &p), MP_ENOTFOUND);
        assert_int_equal(g.n, 0);
        if (!*bad[i])
            continue; /* before '' means the last page */
        q = (mp_archive_query){.limit = 5, .before_id = bad[i]};
        assert_int_equal(query(f, "juliet", &q, &g, &p), MP_ENOTFOUND);
    }
    q = (mp_archive_query){.limit = 5};
    assert_int_equal(query(f, "juliet", &q, &g, &p), 0);
    assert_int_equal(g.n, 3);
}

typedef struct fts_case {
    const char *query;
    int matches; /* bitmask over the bodies below */
} fts_case;

static void
test_fulltext(void **state)
{
    fixture *f = *state;
    static const char *const bodies[] = {
        "Hello World, how are you?",         /* 0 */
        "hello and goodbye",                 /* 1 */
        "Café au lait à l'École",            /* 2 */
        "ΣΊΣΥΦΟΣ pushes the stone",          /* 3 */
        "the body: column and NEAR things",  /* 4 */
        "she said \"quoted words\" (twice)", /* 5 */
        "e-mail me at romeo@montague.lit",   /* 6 */
        "worldwide",                         /* 7 */
    };
    static const fts_case cases[] = {
        {"hello", 1 << 0 | 1 << 1},
        {"HELLO", 1 << 0 | 1 << 1},
        {"hello world", 1 << 0},
        {"world hello", 1 << 0},
        {"hello, world!", 1 << 0},
        {"hello AND world", 0}, /* AND is a word: body 0 lacks it */
        {"hello AND", 1 << 1},
        {"hello OR world", 0},
        {"NOT world", 0},
        {"hello NOT goodbye", 0},
        {"NEAR(hello world)", 0},
        {"near", 1 << 4},
        {"wor*", 0}, /* no prefix queries */
        {"world*", 1 << 0},
        {"^hello", 1 << 0 | 1 << 1},
        {"body:hello", 0}, /* no column filter: the words "body" and "hello" side by side */
        {"body:", 1 << 4},
        {"body: column", 1 << 4},
        {"{body}: stone", 0},
        {"-hello", 1 << 0 | 1 << 1},
        {"+world", 1 << 0},
        {"\"hello", 1 << 0 | 1 << 1},
        {"\"quoted words\"", 1 << 5},
        {"\"\"\"", 0},
        {"(twice)", 1 << 5},
        {"cafe ecole", 1 << 2},
        {"CAFÉ", 1 << 2},
        {"l'école", 1 << 2},
        {"σίσυφος", 1 << 3},
        {"e-mail", 1 << 6},
        {"romeo@montague.lit", 1 << 6},
        {"montague", 1 << 6},
        {"***", 0},
        {"hello ***", 1 << 0 | 1 << 1},
        {"worldwide", 1 << 7},
        {"\x01\x02 hello", 1 << 0 | 1 << 1},
        {"\xff\xfe", 0},
    };
    mp_archive_page p;
    got g;

    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++)
        append(f, "juliet", "romeo@montague.lit", NULL, T0 + (int64_t)i, bodies[i], 0, NULL);
    /* a message without a body is never a fulltext match */
    append(f, "juliet", "romeo@montague.lit", NULL, T0 + 30, NULL, 0, NULL);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        mp_archive_query q = {.limit = 100, .want_count = 1, .fulltext = cases[c].query};
        int mask = 0;
        print_message("fulltext %s\n", cases[c].query);
        assert_int_equal(query(f, "juliet", &q, &g, &p), 0);
        for (size_t i = 0; i < g.n; i++)
            mask |= 1 << (int)(g.stamp[i] - T0);
        assert_int_equal(mask, cases[c].matches);
        assert_int_equal(p.count, (int64_t)g.n);
    }
    char *big = malloc(MP_ARCHIVE_FULLTEXT_MAX + 2);
    assert_non_null(big);
    memset(big, 'a', MP_ARCHIVE_FULLTEXT_MAX + 1);
    big[MP_ARCHIVE_FULLTEXT_MAX + 1] = '\0';
    mp_archive_query q = {.limit = 5, .fulltext = big};
    assert_int_equal(query(f, "juliet", &q, &g, &p), MP_ELIMIT);
    big[MP_ARCHIVE_FULLTEXT_MAX] = '\0';
    assert_int_equal(query(f, "juliet", &q, &g, &p), 0);
    assert_int_equal(g.n, 0);
    free(big);

    /* deleted messages leave the index */
    assert_int_equal(f->ops->archive_delete_owner(f->st, D, "juliet"), 0);
    append(f, "juliet", "romeo@montague.lit", NULL, T0, "fresh start", 0, NULL);
    q = (mp_archive_query){.limit = 5, .fulltext = "hello"};
    assert_int_equal(query(f, "juliet", &q, &g, &p), 0);
    assert_int_equal(g.n, 0);
    sqlite_store *s = (sqlite_store *)f->st;
    assert_int_equal(
        sqlite3_exec(s->db, "INSERT INTO archive_fts (archive_fts) VALUES ('integrity-check')",
                     NULL, NULL, NULL),
        SQLITE_OK);
}

static void
test_max_items(void **state)
{
    fixture *f = *state;
    char ids[8][MP_ARCHIVE_ID_SIZE];
    mp_archive_query q = {.limit = 100, .want_count = 1};
    mp_archive_page p;
    got g;

    for (int i = 0; i < 8; i++)
        append(f, "juliet", "romeo@montague.lit", NULL, T0 + i, "word", 3, ids[i]);
    assert_int_equal(query(f, "juliet", &q, &g, &p), 0);
    assert_stamps(&g, T0 + 5, 1, 3);
    assert_int_equal(p.count, 3);
    assert_string_equal(g.id[0], ids[5]);
    one o;
    assert_int_equal(f->ops->archive_get_by_id(f->st, D, "juliet", ids[4], copy_one, &o),
                     MP_ENOTFOUND);
    /* trimmed rows left the fulltext index too */
    q.fulltext = "word";
    assert_int_equal(query(f, "juliet", &q, &g, &p), 0);
    assert_int_equal(g.n, 3);
    assert_int_equal(p.count, 3);

    /* a lower limit drops several at once; the new message stays even if it is the oldest */
    append(f, "juliet", "romeo@montague.lit", NULL, T0 - 100, "late", 2, NULL);
    q.fulltext = NULL;
    assert_int_equal(query(f, "juliet", &q, &g, &p), 0);
    assert_int_equal(g.n, 2);
    assert_int_equal(p.count, 2);
    assert_string_equal(g.body[0], "late");
    assert_int_equal(g.stamp[1], T0 + 7);
    /* 0: no limit; other owners are not touched */
    append(f, "romeo", "juliet@" D, NULL, T0, "x", 1, NULL);
    for (int i = 0; i < 5; i++)
        append(f, "juliet", "romeo@montague.lit", NULL, T0 + 10 + i, "more", 0, NULL);
    assert_int_equal(query(f, "juliet", &q, &g, &p), 0);
    assert_int_equal(p.count, 7);
    assert_int_equal(query(f, "romeo", &q, &g, &p), 0);
    assert_int_equal(p.count, 1);
}

typedef struct prefs_copy {
    int calls;
    int mode;
    size_t nalways, nnever;
    char always[40][48], never[40][48];
} prefs_copy;

static int
copy_prefs(const mp_archive_prefs *pr, void *ud)
{
    prefs_copy *c = ud;
    c->calls++;
    c->mode = pr->default_mode;
    c->nalways = pr->nalways;
    c->nnever = pr->nnever;
    assert_true(pr->nalways <= 40 && pr->nnever <= 40);
    for (size_t i = 0; i < pr->nalways; i++)
        snprintf(c->always[i], sizeof c->always[0], "%s", pr->always[i]);
    for (size_t i = 0; i < pr->nnever; i++)
        snprintf(c->never[i], sizeof c->never[0], "%s", pr->never[i]);
    return 7;
}

static void
test_prefs(void **state)
{
    fixture *f = *state;
    prefs_copy c = {0};
    static const char *const always[] = {"romeo@montague.lit", "nurse@" D};
    static const char *const never[] = {"tybalt@capulet.lit"};
    mp_archive_prefs pr = {.default_mode = MP_ARCHIVE_ROSTER,
                           .always = always,
                           .nalways = 2,
                           .never = never,
                           .nnever = 1};

    assert_int_equal(f->ops->archive_prefs_get(f->st, D, "juliet", copy_prefs, &c), MP_ENOTFOUND);
    assert_int_equal(c.calls, 0);
    assert_int_equal(f->ops->archive_prefs_put(f->st, D, "juliet", &pr), 0);
    assert_int_equal(f->ops->archive_prefs_get(f->st, D, "juliet", copy_prefs, &c), 7);
    assert_int_equal(c.calls, 1);
    assert_int_equal(c.mode, MP_ARCHIVE_ROSTER);
    assert_int_equal(c.nalways, 2);
    assert_string_equal(c.always[0], "romeo@montague.lit");
    assert_string_equal(c.always[1], "nurse@" D);
    assert_int_equal(c.nnever, 1);
    assert_string_equal(c.never[0], "tybalt@capulet.lit");

    /* replace: empty lists, mode never; archive rows are unaffected by prefs */
    append(f, "juliet", "romeo@montague.lit", NULL, T0, "x", 0, NULL);
    pr = (mp_archive_prefs){.default_mode = MP_ARCHIVE_NEVER};
    assert_int_equal(f->ops->archive_prefs_put(f->st, D, "juliet", &pr), 0);
    memset(&c, 0, sizeof c);
    assert_int_equal(f->ops->archive_prefs_get(f->st, D, "juliet", copy_prefs, &c), 7);
    assert_int_equal(c.mode, MP_ARCHIVE_NEVER);
    assert_int_equal(c.nalways, 0);
    assert_int_equal(c.nnever, 0);

    /* many JIDs (past the on-stack array) keep their order and survive a reopen */
    char jids[70][48];
    const char *a[35], *n[35];
    for (int i = 0; i < 35; i++) {
        snprintf(jids[i], sizeof jids[0], "always%d@example.net", i);
        snprintf(jids[35 + i], sizeof jids[0], "never%d@example.net", i);
        a[i] = jids[i];
        n[i] = jids[35 + i];
    }
    pr = (mp_archive_prefs){
        .default_mode = MP_ARCHIVE_ALWAYS, .always = a, .nalways = 35, .never = n, .nnever = 35};
    assert_int_equal(f->ops->archive_prefs_put(f->st, D, "juliet", &pr), 0);
    reopen(f);
    memset(&c, 0, sizeof c);
    assert_int_equal(f->ops->archive_prefs_get(f->st, D, "juliet", copy_prefs, &c), 7);
    assert_int_equal(c.mode, MP_ARCHIVE_ALWAYS);
    assert_int_equal(c.nalways, 35);
    assert_int_equal(c.nnever, 35);
    for (int i = 0; i < 35; i++) {
        assert_string_equal(c.always[i], jids[i]);
        assert_string_equal(c.never[i], jids[35 + i]);
    }

    /* invalid */
    pr.default_mode = 3;
    assert_int_equal(f->ops->archive_prefs_put(f->st, D, "juliet", &pr), MP_EINVAL);
    pr.default_mode = MP_ARCHIVE_ALWAYS;
    a[3] = "";
    assert_int_equal(f->ops->archive_prefs_put(f->st, D, "juliet", &pr), MP_EINVAL);
    a[3] = NULL;
    assert_int_equal(f->ops->archive_prefs_put(f->st, D, "juliet", &pr), MP_EINVAL);
    pr = (mp_archive_prefs){.nalways = 1};
    assert_int_equal(f->ops->archive_prefs_put(f->st, D, "juliet", &pr), MP_EINVAL);
    memset(&c, 0, sizeof c);
    assert_int_equal(f->ops->archive_prefs_get(f->st, D, "juliet", copy_prefs, &c), 7);
    assert_int_equal(c.nalways, 35);

    /* forget: back to not found, the messages stay */
    assert_int_equal(f->ops->archive_prefs_put(f->st, D, "juliet", NULL), 0);
    assert_int_equal(f->ops->archive_prefs_get(f->st, D, "juliet", copy_prefs, &c), MP_ENOTFOUND);
    mp_archive_query q = {.limit = 5, .want_count = 1};
    mp_archive_page p;
    got g;
    assert_int_equal(query(f, "juliet", &q, &g, &p), 0);
    assert_int_equal(p.count, 1);
    assert_int_equal(f->ops->archive_prefs_put(f->st, D, "nobody", NULL), 0);
}

static void
test_delete_owner(void **state)
{
    fixture *f = *state;
    char jid_id[MP_ARCHIVE_ID_SIZE], rid[MP_ARCHIVE_ID_SIZE];
    mp_archive_prefs pr = {.default_mode = MP_ARCHIVE_ALWAYS};
    mp_archive_query q = {.limit = 100, .want_count = 1};
    mp_archive_page p;
    prefs_copy c;
    got g;
    one o;

    fill(f, 10, NULL);
    append(f, "juliet", "romeo@montague.lit", NULL, T0 + 99000000, "last", 0, jid_id);
    append(f, "romeo", "juliet@" D, NULL, T0, "romeo's", 0, rid);
    assert_int_equal(f->ops->archive_prefs_put(f->st, D, "juliet", &pr), 0);
    assert_int_equal(f->ops->archive_prefs_put(f->st, D, "romeo", &pr), 0);

    assert_int_equal(f->ops->archive_delete_owner(f->st, D, "juliet"), 0);
    assert_int_equal(query(f, "juliet", &q, &g, &p), 0);
    assert_int_equal(g.n, 0);
    assert_int_equal(p.count, 0);
    assert_int_equal(f->ops->archive_get_by_id(f->st, D, "juliet", jid_id, copy_one, &o),
                     MP_ENOTFOUND);
    assert_int_equal(f->ops->archive_prefs_get(f->st, D, "juliet", copy_prefs, &c), MP_ENOTFOUND);
    q.after_id = jid_id;
    assert_int_equal(query(f, "juliet", &q, &g, &p), MP_ENOTFOUND);
    q.after_id = NULL;
    /* again, and an owner never seen: fine */
    assert_int_equal(f->ops->archive_delete_owner(f->st, D, "juliet"), 0);
    assert_int_equal(f->ops->archive_delete_owner(f->st, D, "nobody"), 0);

    /* romeo keeps everything */
    assert_int_equal(query(f, "romeo", &q, &g, &p), 0);
    assert_int_equal(g.n, 1);
    assert_int_equal(p.count, 1);
    assert_string_equal(g.id[0], rid);
    assert_int_equal(f->ops->archive_prefs_get(f->st, D, "romeo", copy_prefs, &c), 7);

    /* juliet starts afresh with a correct count */
    append(f, "juliet", "romeo@montague.lit", NULL, T0, "again", 0, NULL);
    assert_int_equal(query(f, "juliet", &q, &g, &p), 0);
    assert_int_equal(p.count, 1);
    q.fulltext = "msg";
    assert_int_equal(query(f, "juliet", &q, &g, &p), 0);
    assert_int_equal(g.n, 0);
}

static void
test_user_delete(void **state)
{
    fixture *f = *state;
    mp_user_cred cred = {.iterations = 4096, .salt_len = 16};
    mp_archive_prefs pr = {.default_mode = MP_ARCHIVE_NEVER};
    mp_archive_query q = {.limit = 100, .want_count = 1};
    mp_archive_page p;
    prefs_copy c;
    got g;

    memset(cred.salt, 7, 16);
    assert_int_equal(f->ops->user_put(f->st, D, "juliet", &cred, 1), 0);
    fill(f, 5, NULL);
    assert_int_equal(f->ops->archive_prefs_put(f->st, D, "juliet", &pr), 0);
    append(f, "romeo", "juliet@" D, NULL, T0, "keep", 0, NULL);
    /* a room named like the user, on the MUC domain, is another owner */
    mp_archive_item it = {.with_jid = "room@" ROOM_D, .stamp = T0, .stanza = "<m/>", .len = 4};
    char id[MP_ARCHIVE_ID_SIZE];
    assert_int_equal(f->ops->archive_append(f->st, ROOM_D, "juliet", &it, 0, id, sizeof id), 0);

    assert_int_equal(f->ops->user_delete(f->st, D, "juliet"), 0);
    assert_int_equal(query(f, "juliet", &q, &g, &p), 0);
    assert_int_equal(g.n, 0);
    assert_int_equal(p.count, 0);
    assert_int_equal(f->ops->archive_prefs_get(f->st, D, "juliet", copy_prefs, &c), MP_ENOTFOUND);
    assert_int_equal(query(f, "romeo", &q, &g, &p), 0);
    assert_int_equal(g.n, 1);
    memset(&g, 0, sizeof g);
    assert_int_equal(f->ops->archive_query(f->st, ROOM_D, "juliet", &q, collect, &g, &p), 0);
    assert_int_equal(g.n, 1);
    /* leftovers without a user row go too, and the answer is still not found */
    append(f, "ghost", "romeo@montague.lit", NULL, T0, "boo", 0, NULL);
    assert_int_equal(f->ops->user_delete(f->st, D, "ghost"), MP_ENOTFOUND);
    assert_int_equal(query(f, "ghost", &q, &g, &p), 0);
    assert_int_equal(g.n, 0);
}

static void
test_purge_before(void **state)
{
    fixture *f = *state;
    mp_archive_query q = {.limit = 100, .want_count = 1};
    mp_archive_page p;
    got g;

    assert_int_equal(f->ops->archive_purge_before(f->st, T0), 0);
    fill(f, 20, NULL); /* T0 .. T0 + 19 s */
    for (int i = 0; i < 6; i++)
        append(f, "romeo", "juliet@" D, NULL, T0 + i * 5000000LL, "r", 0, NULL); /* 0..25 s */
    mp_archive_item it = {.with_jid = "room@" ROOM_D,
                          .stamp = T0 + 1,
                          .stanza = "<m/>",
                          .len = 4,
                          .body = "room msg"};
    char id[MP_ARCHIVE_ID_SIZE];
    assert_int_equal(f->ops->archive_append(f->st, ROOM_D, "room", &it, 0, id, sizeof id), 0);

    /* before 10 s: juliet 0..9, romeo 0 and 5, the room's one */
    assert_int_equal(f->ops->archive_purge_before(f->st, T0 + 10000000), 13);
    assert_int_equal(query(f, "juliet", &q, &g, &p), 0);
    assert_stamps(&g, T0 + 10000000, 1000000, 10);
    assert_int_equal(p.count, 10);
    assert_int_equal(query(f, "romeo", &q, &g, &p), 0);
    assert_stamps(&g, T0 + 10000000, 5000000, 4);
    assert_int_equal(p.count, 4);
    memset(&g, 0, sizeof g);
    assert_int_equal(f->ops->archive_query(f->st, ROOM_D, "room", &q, collect, &g, &p), 0);
    assert_int_equal(g.n, 0);
    assert_int_equal(p.count, 0);
    q.fulltext = "msg";
    assert_int_equal(query(f, "juliet", &q, &g, &p), 0);
    assert_int_equal(g.n, 10);
    /* nothing older left */
    assert_int_equal(f->ops->archive_purge_before(f->st, T0 + 10000000), 0);
    assert_int_equal(f->ops->archive_purge_before(f->st, T0 + 1000000000), 14);
    q.fulltext = NULL;
    assert_int_equal(query(f, "juliet", &q, &g, &p), 0);
    assert_int_equal(p.count, 0);
}

/* A database as the version 2 server left it. */
static const char schema_v2_sql[] =
    "PRAGMA journal_mode=WAL;"
    "CREATE TABLE users (domain TEXT NOT NULL, node TEXT NOT NULL, iterations INTEGER NOT NULL,"
    " salt BLOB NOT NULL, sha1_stored BLOB NOT NULL, sha1_server BLOB NOT NULL,"
    " sha256_stored BLOB NOT NULL, sha256_server BLOB NOT NULL, created INTEGER NOT NULL,"
    " PRIMARY KEY (domain, node)) WITHOUT ROWID;"
    "CREATE TABLE roster (domain TEXT NOT NULL, node TEXT NOT NULL, jid TEXT NOT NULL, name TEXT,"
    " state INTEGER NOT NULL, groups BLOB NOT NULL DEFAULT x'', PRIMARY KEY (domain, node, jid))"
    " WITHOUT ROWID;"
    "CREATE TABLE roster_version (domain TEXT NOT NULL, node TEXT NOT NULL,"
    " version INTEGER NOT NULL, PRIMARY KEY (domain, node)) WITHOUT ROWID;"
    "CREATE TABLE offline (id INTEGER PRIMARY KEY AUTOINCREMENT, domain TEXT NOT NULL,"
    " node TEXT NOT NULL, stanza BLOB NOT NULL, stamp INTEGER NOT NULL);"
    "CREATE INDEX offline_owner ON offline (domain, node, id);"
    "CREATE TABLE blobs (domain TEXT NOT NULL, node TEXT NOT NULL, kind TEXT NOT NULL,"
    " key TEXT NOT NULL, data BLOB NOT NULL, PRIMARY KEY (domain, node, kind, key));"
    "INSERT INTO users VALUES ('" D "', 'olga', 4096, x'0102030405060708',"
    " zeroblob(20), zeroblob(20), zeroblob(32), zeroblob(32), 0);"
    "INSERT INTO roster VALUES ('" D "', 'olga', 'romeo@montague.lit', 'Romeo', 3, x'');"
    "INSERT INTO roster_version VALUES ('" D "', 'olga', 4);"
    "INSERT INTO offline (domain, node, stanza, stamp) VALUES ('" D "', 'olga', '<message/>', 1);"
    "PRAGMA user_version = 2;";

static int
count_roster(const mp_roster_item *it, void *ud)
{
    assert_string_equal(it->jid, "romeo@montague.lit");
    (*(int *)ud)++;
    return 0;
}

static void
test_migrate_v2(void **state)
{
    fixture *f = *state;
    mp_user_cred cred;
    sqlite3 *db;
    uint64_t ver = 0;
    int n = 0;

    mp_store_close(f->st);
    f->st = NULL;
    mp_test_remove_db(f->path);
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, schema_v2_sql, NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
    assert_int_equal(mp_test_user_version(f->path), 2);

    reopen(f);
    assert_int_equal(mp_test_user_version(f->path), 4);
    /* the old data is all there */
    assert_int_equal(f->ops->user_get(f->st, D, "olga", &cred), 0);
    assert_int_equal(cred.iterations, 4096);
    assert_int_equal(f->ops->roster_list(f->st, D, "olga", count_roster, &n, &ver), 0);
    assert_int_equal(n, 1);
    assert_int_equal(ver, 4);
    assert_int_equal(f->ops->offline_count(f->st, D, "olga"), 1);
    /* and the archive works */
    char id[MP_ARCHIVE_ID_SIZE];
    append(f, "olga", "romeo@montague.lit", NULL, T0, "hello from v2", 0, id);
    mp_archive_query q = {.limit = 5, .want_count = 1, .fulltext = "hello"};
    mp_archive_page p;
    got g;
    assert_int_equal(query(f, "olga", &q, &g, &p), 0);
    assert_int_equal(g.n, 1);
    assert_string_equal(g.id[0], id);

    /* reopening changes nothing; deleting the user takes the archive along */
    reopen(f);
    assert_int_equal(mp_test_user_version(f->path), 4);
    assert_int_equal(query(f, "olga", &q, &g, &p), 0);
    assert_int_equal(p.count, 1);
    assert_int_equal(f->ops->user_delete(f->st, D, "olga"), 0);
    assert_int_equal(query(f, "olga", &q, &g, &p), 0);
    assert_int_equal(g.n, 0);
}

/* A v3 file (bodies indexed by the insert trigger) becomes v4 (indexed by the append): old
 * and new messages are found once each. */
static void
test_migrate_v3(void **state)
{
    fixture *f = *state;
    char old_id[MP_ARCHIVE_ID_SIZE], new_id[MP_ARCHIVE_ID_SIZE];
    append(f, "olga", "romeo@montague.lit", NULL, T0, "wherefore art thou", 0, old_id);
    mp_store_close(f->st);
    f->st = NULL;
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(db,
                     "DROP TRIGGER IF EXISTS archive_ins;"
                     "CREATE TRIGGER archive_ins AFTER INSERT ON archive BEGIN"
                     " UPDATE archive_owner SET items = items + 1 WHERE id = new.owner;"
                     " INSERT INTO archive_fts (rowid, body) SELECT new.id, new.body"
                     " WHERE new.body IS NOT NULL; END; PRAGMA user_version = 3;",
                     NULL, NULL, NULL),
        SQLITE_OK);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
    assert_int_equal(mp_test_user_version(f->path), 3);
    reopen(f);
    assert_int_equal(mp_test_user_version(f->path), 4);
    append(f, "olga", "romeo@montague.lit", NULL, T0 + 1, "thou art wherefore", 0, new_id);
    mp_archive_query q = {.limit = 5, .want_count = 1, .fulltext = "wherefore"};
    mp_archive_page p;
    got g;
    assert_int_equal(query(f, "olga", &q, &g, &p), 0);
    assert_int_equal(g.n, 2);
    assert_int_equal(p.count, 2);
    assert_string_equal(g.id[0], old_id);
    assert_string_equal(g.id[1], new_id);
    /* the v3 insert trigger is gone (it would index each body a second time, and flush an
     * FTS5 segment per append), and the index agrees with the content table */
    mp_store_close(f->st);
    f->st = NULL;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    sqlite3_stmt *t;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT count(*) FROM sqlite_master WHERE type = 'trigger'"
                                        " AND name = 'archive_ins'",
                                        -1, &t, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(t), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(t, 0), 0);
    sqlite3_finalize(t);
    assert_int_equal(
        sqlite3_exec(db, "INSERT INTO archive_fts (archive_fts) VALUES ('integrity-check')", NULL,
                     NULL, NULL),
        SQLITE_OK);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
    reopen(f);
    /* deleting still takes the index entries along (the delete trigger) */
    assert_int_equal(f->ops->archive_delete_owner(f->st, D, "olga"), 0);
    assert_int_equal(query(f, "olga", &q, &g, &p), 0);
    assert_int_equal(g.n, 0);
}

/* A v2 file where the v3 tables cannot be made stays a v2 file. */
static void
test_migrate_v2_failure_rolls_back(void **state)
{
    fixture *f = *state;
    sqlite3 *db;

    mp_store_close(f->st);
    f->st = NULL;
    mp_test_remove_db(f->path);
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, schema_v2_sql, NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "CREATE TABLE archive_fts (x)", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
    assert_int_equal(mp_store_sqlite_open(f->path, &f->st), MP_EIO);
    assert_null(f->st);
    assert_int_equal(mp_test_user_version(f->path), 2);
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_not_equal(sqlite3_exec(db, "SELECT * FROM archive", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "DROP TABLE archive_fts", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
    reopen(f);
    assert_int_equal(mp_test_user_version(f->path), 4);
}

static int
cmp_id(const void *a, const void *b)
{
    return memcmp(a, b, MP_ARCHIVE_ID_SIZE);
}

#define NIDS 10000

static void
test_ids_unique(void **state)
{
    fixture *f = *state;
    char(*ids)[MP_ARCHIVE_ID_SIZE] = calloc(2 * NIDS, MP_ARCHIVE_ID_SIZE);
    assert_non_null(ids);

    batch(f, 1);
    for (int i = 0; i < NIDS; i++)
        append(f, i % 2 ? "juliet" : "romeo", "nurse@" D, NULL, T0 + i, NULL, 0, ids[i]);
    batch(f, 0);
    assert_int_equal(f->ops->archive_delete_owner(f->st, D, "juliet"), 0);
    assert_int_equal(f->ops->archive_delete_owner(f->st, D, "romeo"), 0);
    reopen(f);
    batch(f, 1);
    for (int i = 0; i < NIDS; i++)
        append(f, "juliet", "nurse@" D, NULL, T0 + i, NULL, 0, ids[NIDS + i]);
    batch(f, 0);
    qsort(ids, 2 * NIDS, MP_ARCHIVE_ID_SIZE, cmp_id);
    for (int i = 1; i < 2 * NIDS; i++)
        assert_int_not_equal(memcmp(ids[i - 1], ids[i], MP_ARCHIVE_ID_SIZE), 0);
    /* not a counter: the ids spread over the alphabet */
    assert_true(ids[0][0] < 'D');
    assert_true(ids[2 * NIDS - 1][0] > 'x');
    free(ids);
}

/* A callback must not start another query (it would reset the running statement). */
static int
nested_query(const mp_archive_item *it, void *ud)
{
    fixture *f = ud;
    mp_archive_query q = {.limit = 5};
    mp_archive_page p;
    got g;
    assert_int_equal(query(f, "juliet", &q, &g, &p), MP_EINVAL);
    /* writes are fine */
    append(f, "romeo", "juliet@" D, NULL, it->stamp, "echo", 0, NULL);
    return 0;
}

static void
test_nested(void **state)
{
    fixture *f = *state;
    mp_archive_query q = {.limit = 5};
    mp_archive_page p;
    got g;

    fill(f, 3, NULL);
    assert_int_equal(f->ops->archive_query(f->st, D, "juliet", &q, nested_query, f, &p), 0);
    assert_int_equal(p.n, 3);
    q.want_count = 1;
    assert_int_equal(query(f, "romeo", &q, &g, &p), 0);
    assert_int_equal(p.count, 3);
}

/* Group commit: appends in a batch become visible together, or not at all. */
static void
test_batch(void **state)
{
    fixture *f = *state;
    mp_archive_query q = {.limit = 100, .want_count = 1};
    mp_archive_page p;
    got g;

    assert_int_equal(f->ops->batch_end(f->st, 1), MP_EINVAL);
    assert_int_equal(f->ops->batch_begin(f->st), 0);
    assert_int_equal(f->ops->batch_begin(f->st), MP_EINVAL);
    for (int i = 0; i < 3; i++)
        append(f, "juliet", "romeo@montague.lit", NULL, T0 + i, "dropped", 0, NULL);
    assert_int_equal(f->ops->batch_end(f->st, 0), 0);
    assert_int_equal(query(f, "juliet", &q, &g, &p), 0);
    assert_int_equal(g.n, 0);
    assert_int_equal(p.count, 0);

    assert_int_equal(f->ops->batch_begin(f->st), 0);
    for (int i = 0; i < 4; i++)
        append(f, "juliet", "romeo@montague.lit", NULL, T0 + i, "kept", 3, NULL);
    /* other writes join the batch */
    mp_archive_prefs pr = {.default_mode = MP_ARCHIVE_ROSTER};
    assert_int_equal(f->ops->archive_prefs_put(f->st, D, "juliet", &pr), 0);
    assert_int_equal(f->ops->batch_end(f->st, 1), 0);
    assert_int_equal(f->ops->batch_end(f->st, 1), MP_EINVAL);
    reopen(f);
    q.fulltext = "kept";
    assert_int_equal(query(f, "juliet", &q, &g, &p), 0);
    assert_stamps(&g, T0 + 1, 1, 3);
    assert_int_equal(p.count, 3);
    prefs_copy c;
    assert_int_equal(f->ops->archive_prefs_get(f->st, D, "juliet", copy_prefs, &c), 7);
    q.fulltext = "dropped";
    assert_int_equal(query(f, "juliet", &q, &g, &p), 0);
    assert_int_equal(g.n, 0);
}

/* ---- benchmark: small by default, MP_ARCHIVE_BENCH=1 for the full run ---- */

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
count_only(const mp_archive_item *it, void *ud)
{
    (*(size_t *)ud)++;
    return 0;
}

static void
test_bench(void **state)
{
    fixture *f = *state;
    int full = getenv("MP_ARCHIVE_BENCH") != NULL;
    int n_batch = full ? 20000 : 2000, n_single = full ? 2000 : 50, n_big = full ? 100000 : 3000;
    static const char *const words[] = {"apple", "banana", "cherry", "plum", "pear",
                                        "fig",   "grape",  "lemon",  "lime", "kiwi"};
    char stanza[300], body[64], id[MP_ARCHIVE_ID_SIZE];
    double t;

    mp_archive_item it = {.with_jid = "romeo@montague.lit",
                          .with_resource = "orchard",
                          .stanza = stanza,
                          .body = body};
    /* one transaction for all */
    t = now_s();
    batch(f, 1);
    for (int i = 0; i < n_batch; i++) {
        snprintf(body, sizeof body, "%s %s number %d", words[i % 10], words[(i / 10) % 10], i);
        it.len = (size_t)snprintf(stanza, sizeof stanza,
                                  "<message from='romeo@montague.lit/orchard' to='juliet@" D
                                  "' type='chat' id='m%d'><body>%s</body></message>",
                                  i, body);
        it.stamp = T0 + i;
        assert_int_equal(f->ops->archive_append(f->st, D, "bench1", &it, 0, id, sizeof id), 0);
    }
    batch(f, 0);
    t = now_s() - t;
    print_message("bench: %d appends in one transaction: %.3f s, %.0f/s\n", n_batch, t,
                  n_batch / t);
    /* one transaction (and so one fsync) each */
    t = now_s();
    for (int i = 0; i < n_single; i++) {
        it.stamp = T0 + i;
        assert_int_equal(f->ops->archive_append(f->st, D, "bench2", &it, 0, id, sizeof id), 0);
    }
    t = now_s() - t;
    print_message("bench: %d appends, one commit each: %.3f s, %.0f/s\n", n_single, t,
                  n_single / t);

    /* queries over one user's big archive, 10 parties */
    batch(f, 1);
    for (int i = 0; i < n_big; i++) {
        char with[40];
        snprintf(with, sizeof with, "friend%d@example.net", i % 10);
        snprintf(body, sizeof body, "%s %s number %d", words[i % 10], words[(i / 7) % 10], i);
        it.with_jid = with;
        it.len = (size_t)snprintf(stanza, sizeof stanza,
                                  "<message from='%s/x' to='juliet@" D
                                  "' type='chat' id='m%d'><body>%s</body></message>",
                                  with, i, body);
        it.stamp = T0 + (int64_t)i * 1000000;
        assert_int_equal(f->ops->archive_append(f->st, D, "big", &it, 0, id, sizeof id), 0);
    }
    batch(f, 0);
    struct {
        const char *name;
        mp_archive_query q;
    } qs[] = {
        {"first page (50)", {.limit = 50, .want_count = 1}},
        {"last page (before '')", {.limit = 50, .before_id = "", .want_count = 1}},
        {"with, last page", {.limit = 50, .with_jid = "friend3@example.net", .before_id = ""}},
        {"with + count", {.limit = 50, .with_jid = "friend3@example.net", .want_count = 1}},
        {"start/end middle",
         {.limit = 50,
          .has_start = 1,
          .start = T0 + (int64_t)n_big / 2 * 1000000,
          .has_end = 1,
          .end = T0 + (int64_t)n_big * 1000000}},
        {"fulltext common, last page", {.limit = 50, .fulltext = "cherry", .before_id = ""}},
        {"fulltext common + count", {.limit = 50, .fulltext = "cherry", .want_count = 1}},
        {"fulltext rare", {.limit = 50, .fulltext = "number 1234"}},
        {"fulltext none", {.limit = 50, .fulltext = "durian"}},
    };
    for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++) {
        mp_archive_page p;
        size_t n = 0;
        int reps = 20;
        t = now_s();
        for (int r = 0; r < reps; r++)
            assert_int_equal(f->ops->archive_query(f->st, D, "big", &qs[i].q, count_only, &n, &p),
                             0);
        t = (now_s() - t) / reps;
        print_message("bench: %d rows, %-28s %3zu items, count %lld: %.3f ms\n", n_big, qs[i].name,
                      p.n, (long long)p.count, t * 1e3);
        assert_true(p.n > 0 || i == 8);
    }
    /* walking the whole archive page by page */
    char cursor[MP_ARCHIVE_ID_SIZE] = "";
    size_t total = 0;
    t = now_s();
    for (;;) {
        mp_archive_query q = {.limit = 100, .after_id = *cursor ? cursor : NULL};
        mp_archive_page p;
        assert_int_equal(f->ops->archive_query(f->st, D, "big", &q, count_only, &total, &p), 0);
        if (p.complete)
            break;
        strcpy(cursor, p.last);
    }
    t = now_s() - t;
    assert_int_equal(total, (size_t)n_big);
    print_message("bench: paged through %d rows by 100: %.3f s (%.3f ms a page)\n", n_big, t,
                  t * 1e3 / (n_big / 100.0));
    t = now_s();
    assert_int_equal(f->ops->archive_purge_before(f->st, T0 + (int64_t)n_big / 2 * 1000000),
                     n_big / 2 + n_batch + n_single);
    print_message("bench: purged %d rows: %.3f s\n", n_big / 2 + n_batch + n_single, now_s() - t);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_filters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_paging, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fulltext, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_items, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prefs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_owner, setup, teardown),
        cmocka_unit_test_setup_teardown(test_user_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_purge_before, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrate_v2, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrate_v3, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrate_v2_failure_rolls_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ids_unique, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nested, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bench, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
