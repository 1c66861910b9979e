/* The pure parts of modules/muc/history.c: which entries a <history/> element selects
 * (maxchars, maxstanzas, seconds, since and their combinations), the <history/> attributes,
 * the trim to the room's history length and the <delay/> inserted on join. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "modules/muc/muc_int.h"
#include "xmpp/datetime.h"
#include "base/arena.h"
#include "base/err.h"

#define SEC 1000000LL
#define T0 (1700000000LL * SEC)

/* A room with n entries of 10 characters each, stamped T0, T0+10 s, T0+20 s, ... */
static void
fill(muc_room *room, int n)
{
    memset(room, 0, sizeof *room);
    room->cfg.history_length = 1000;
    for (int i = 0; i < n; i++) {
        char msg[32];
        snprintf(msg, sizeof msg, "<m>%03d</m>", i); /* 10 chars */
        muc_history_add(room, msg, strlen(msg), T0 + i * 10 * SEC);
    }
}

static int
first_index(const muc_msg *m)
{
    int i = -1;
    assert_non_null(m);
    assert_int_equal(sscanf(m->bytes, "<m>%d</m>", &i), 1);
    return i;
}

static const muc_msg *
sel(muc_room *room, long maxchars, long maxstanzas, int64_t seconds, int64_t since, int64_t now,
    int *n)
{
    muc_history_req r = {maxchars, maxstanzas, seconds, since};
    return muc_history_select(room->history, &r, now, n);
}

static void
test_select_single_limits(void **state)
{
    muc_room room;
    int n;
    int64_t now = T0 + 100 * SEC; /* entries 0..9 are 100..10 s old */
    fill(&room, 10);
    assert_int_equal(room.history->chars, 10);

    /* nothing asked: everything kept */
    const muc_msg *m = sel(&room, -1, -1, -1, INT64_MIN, now, &n);
    assert_int_equal(n, 10);
    assert_int_equal(first_index(m), 0);

    m = sel(&room, -1, 3, -1, INT64_MIN, now, &n);
    assert_int_equal(n, 3);
    assert_int_equal(first_index(m), 7);

    assert_null(sel(&room, -1, 0, -1, INT64_MIN, now, &n));
    assert_int_equal(n, 0);
    assert_null(sel(&room, 0, -1, -1, INT64_MIN, now, &n)); /* maxchars='0': none */

    /* 35 characters hold three entries of 10, not four */
    m = sel(&room, 35, -1, -1, INT64_MIN, now, &n);
    assert_int_equal(n, 3);
    assert_int_equal(first_index(m), 7);
    m = sel(&room, 40, -1, -1, INT64_MIN, now, &n);
    assert_int_equal(n, 4);
    assert_null(sel(&room, 9, -1, -1, INT64_MIN, now, &n));

    /* the last 30 seconds: entries 7 (30 s old), 8, 9 */
    m = sel(&room, -1, -1, 30, INT64_MIN, now, &n);
    assert_int_equal(n, 3);
    assert_int_equal(first_index(m), 7);
    assert_null(sel(&room, -1, -1, 0, INT64_MIN, now, &n));
    m = sel(&room, -1, -1, 1000000, INT64_MIN, now, &n);
    assert_int_equal(n, 10);

    /* since: inclusive */
    m = sel(&room, -1, -1, -1, T0 + 50 * SEC, now, &n);
    assert_int_equal(n, 5);
    assert_int_equal(first_index(m), 5);
    m = sel(&room, -1, -1, -1, T0 + 50 * SEC + 1, now, &n);
    assert_int_equal(n, 4);
    assert_null(sel(&room, -1, -1, -1, T0 + 1000 * SEC, now, &n));
    muc_history_free(&room);
}

static void
test_select_combined(void **state)
{
    muc_room room;
    int n;
    int64_t now = T0 + 100 * SEC;
    fill(&room, 10);
    /* the tightest limit wins, whichever it is */
    const muc_msg *m = sel(&room, 1000, 5, 30, INT64_MIN, now, &n);
    assert_int_equal(n, 3);
    assert_int_equal(first_index(m), 7);
    m = sel(&room, 25, 5, 60, INT64_MIN, now, &n);
    assert_int_equal(n, 2);
    assert_int_equal(first_index(m), 8);
    m = sel(&room, -1, 2, -1, T0 + 20 * SEC, now, &n);
    assert_int_equal(n, 2);
    assert_int_equal(first_index(m), 8);
    /* since later than seconds allows: since wins; and the other way round */
    m = sel(&room, -1, -1, 60, T0 + 80 * SEC, now, &n);
    assert_int_equal(n, 2);
    assert_int_equal(first_index(m), 8);
    m = sel(&room, -1, -1, 20, T0 + 10 * SEC, now, &n);
    assert_int_equal(n, 2);
    assert_int_equal(first_index(m), 8);
    assert_null(sel(&room, 100, 0, 100, INT64_MIN, now, &n));
    muc_history_free(&room);

    /* an empty history selects nothing */
    memset(&room, 0, sizeof room);
    assert_null(sel(&room, -1, -1, -1, INT64_MIN, now, &n));
    assert_int_equal(n, 0);
}

static void
test_chars_are_code_points(void **state)
{
    muc_room room;
    memset(&room, 0, sizeof room);
    room.cfg.history_length = 5;
    const char *s = "<m>\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80</m>"; /* é € 😀 */
    assert_int_equal(muc_utf8_chars(s, strlen(s)), 10);
    muc_history_add(&room, s, strlen(s), T0);
    assert_int_equal(room.history->chars, 10);
    assert_int_equal(room.history->len, strlen(s));
    int n;
    assert_non_null(sel(&room, 10, -1, -1, INT64_MIN, T0, &n));
    assert_int_equal(n, 1);
    muc_history_free(&room);
}

static void
test_trim(void **state)
{
    muc_room room;
    fill(&room, 10);
    room.cfg.history_length = 4;
    muc_history_trim(&room);
    assert_int_equal(room.nhistory, 4);
    assert_int_equal(first_index(room.history), 6);
    assert_int_equal(first_index(room.history_tail), 9);
    /* adding beyond the length drops the oldest */
    muc_history_add(&room, "<m>010</m>", 10, T0 + 100 * SEC);
    assert_int_equal(room.nhistory, 4);
    assert_int_equal(first_index(room.history), 7);
    assert_int_equal(first_index(room.history_tail), 10);
    /* length 0 keeps nothing, and adds nothing */
    room.cfg.history_length = 0;
    muc_history_trim(&room);
    assert_null(room.history);
    assert_null(room.history_tail);
    muc_history_add(&room, "<m>011</m>", 10, T0);
    assert_null(room.history);
    assert_int_equal(room.nhistory, 0);
    muc_history_free(&room);
}

static void
test_parse(void **state)
{
    mp_xml_parser *p = mp_xml_parser_new();
    mp_arena a;
    mp_arena_init(&a, 4096);
    mp_xnode *h = NULL;
    const char *xml = "<history xmlns='http://jabber.org/protocol/muc' maxchars='65000' "
                      "maxstanzas='20' seconds='180' since='1970-01-01T00:00:10Z'/>";
    assert_int_equal(mp_xml_parse(p, &a, MUC_NS, xml, strlen(xml), &h), 0);
    muc_history_req r;
    muc_history_parse(h, &r);
    assert_int_equal(r.maxchars, 65000);
    assert_int_equal(r.maxstanzas, 20);
    assert_int_equal(r.seconds, 180);
    assert_int_equal(r.since_us, 10 * SEC);

    /* malformed values count as absent, a huge one as unlimited */
    xml = "<history xmlns='http://jabber.org/protocol/muc' maxchars='-5' maxstanzas='x1' "
          "seconds='99999999999999999999999' since='yesterday'/>";
    assert_int_equal(mp_xml_parse(p, &a, MUC_NS, xml, strlen(xml), &h), 0);
    muc_history_parse(h, &r);
    assert_int_equal(r.maxchars, -1);
    assert_int_equal(r.maxstanzas, -1);
    assert_true(r.seconds > 1000000000);
    assert_true(r.since_us == INT64_MIN);

    muc_history_parse(NULL, &r);
    assert_int_equal(r.maxchars, -1);
    assert_int_equal(r.maxstanzas, -1);
    assert_int_equal(r.seconds, -1);

    /* seconds too large to compute a cutoff selects everything instead of overflowing */
    muc_room room;
    int n;
    fill(&room, 3);
    assert_non_null(muc_history_select(room.history, &r, T0, &n));
    assert_int_equal(n, 3);
    muc_history_free(&room);
    mp_arena_free(&a);
    mp_xml_parser_free(p);
}

static void
test_delay(void **state)
{
    mp_buf b = {0};
    const char *msg = "<message from='r@c.x/nick' type='groupchat'><body>hi</body></message>";
    assert_int_equal(muc_delay_append(&b, msg, strlen(msg), "r@c.x", 10 * SEC + 5), 0);
    char want[256];
    snprintf(want, sizeof want,
             "<message from='r@c.x/nick' type='groupchat'><body>hi</body><delay "
             "xmlns='urn:xmpp:delay' from='r@c.x' stamp='1970-01-01T00:00:10.000005Z'/></message>");
    assert_int_equal(b.len, strlen(want));
    assert_memory_equal(b.data, want, b.len);

    b.len = 0;
    assert_int_equal(muc_delay_append(&b, "<message from='a&apos;b'/>", 26, "q'&", 0), 0);
    b.data[b.len] = '\0';
    assert_non_null(strstr(b.data, "<message from='a&apos;b'><delay"));
    assert_non_null(strstr(b.data, "from='q&apos;&amp;'"));
    assert_non_null(strstr(b.data, "/></message>"));

    b.len = 0;
    assert_int_equal(muc_delay_append(&b, "<presence>x</presence>", 22, "r", 0), MP_EINVAL);
    assert_int_equal(muc_delay_append(&b, "x", 1, "r", 0), MP_EINVAL);
    mp_buf_free(&b);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_select_single_limits),
        cmocka_unit_test(test_select_combined),
        cmocka_unit_test(test_chars_are_code_points),
        cmocka_unit_test(test_trim),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_delay),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
