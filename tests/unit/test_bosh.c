/* BOSH without sockets: the <body/> parser and the request window (rid order, early requests,
 * retransmission cache, overactivity) of bosh_session.c. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "mux/bosh_int.h"

#define NS "xmlns='http://jabber.org/protocol/httpbind'"

static int
parse(const char *s, bosh_body *b)
{
    return bosh_parse_body(s, strlen(s), b);
}

/* ---- the wrapper ---- */

static void
test_parse_creation(void **state)
{
    bosh_body b;
    const char *s = "<body content='text/xml; charset=utf-8' hold='1' rid='1573741820' "
                    "to='example.com' route='xmpp:example.com:9999' ver='1.6' wait='60' ack='1' "
                    "xml:lang='en' xmpp:version='1.0' xmlns:xmpp='urn:xmpp:xbosh' " NS "/>";
    assert_int_equal(parse(s, &b), 0);
    assert_true(b.flags & BB_RID);
    assert_false(b.flags & BB_SID);
    assert_int_equal(b.rid, 1573741820ULL);
    assert_int_equal(b.hold, 1);
    assert_int_equal(b.wait, 60);
    assert_int_equal(b.ack, 1);
    assert_int_equal(b.ver_major, 1);
    assert_int_equal(b.ver_minor, 6);
    assert_string_equal(b.to, "example.com");
    assert_string_equal(b.lang, "en");
    assert_true(b.flags & BB_XMPP_VERSION);
    assert_int_equal(b.child_len, 0);
}

static void
test_parse_children(void **state)
{
    bosh_body b;
    const char *s = "<?xml version='1.0'?><body rid='7' sid='abc' " NS "><message to='a@b' "
                    "xmlns='jabber:client'><body>hi &amp; bye</body></message><presence/></body>";
    assert_int_equal(parse(s, &b), 0);
    assert_string_equal(b.sid, "abc");
    const char *want = "<message to='a@b' xmlns='jabber:client'><body>hi &amp; bye</body>"
                       "</message><presence/>";
    assert_int_equal(b.child_len, strlen(want));
    assert_memory_equal(s + b.child_off, want, b.child_len);

    assert_int_equal(parse("<body rid='8' sid='abc' " NS "></body>", &b), 0);
    assert_int_equal(b.child_len, 0);
    s = "<body rid='8' sid='abc' " NS "> </body>";
    assert_int_equal(parse(s, &b), 0);
    assert_int_equal(b.child_len, 1);
}

static void
test_parse_flags(void **state)
{
    bosh_body b;
    assert_int_equal(parse("<body rid='9' sid='s' xmpp:restart='true' "
                           "xmlns:xmpp='urn:xmpp:xbosh' " NS "/>",
                           &b),
                     0);
    assert_true(b.flags & BB_RESTART);
    /* the restart attribute must be in the xbosh namespace */
    assert_int_equal(parse("<body rid='9' sid='s' restart='true' " NS "/>", &b), 0);
    assert_false(b.flags & BB_RESTART);
    assert_int_equal(parse("<body rid='9' sid='s' type='terminate' " NS "/>", &b), 0);
    assert_true(b.flags & BB_TERMINATE);
    assert_int_equal(parse("<body rid='9' sid='s' pause='60' " NS "/>", &b), 0);
    assert_true(b.flags & BB_PAUSE);
    assert_int_equal(b.pause, 60);
}

static void
test_parse_bad(void **state)
{
    bosh_body b;
    const char *bad[] = {
        "",
        "<body rid='1'/>",                                         /* no namespace */
        "<body rid='1' xmlns='jabber:client'/>",                   /* wrong namespace */
        "<html " NS "/>",                                          /* wrong root */
        "<body rid='1' " NS ">",                                   /* not closed */
        "<body rid='1' " NS "/><body/>",                           /* junk after */
        "<body rid='1' " NS "><a></b></body>",                     /* not well-formed */
        "<!DOCTYPE body [<!ENTITY x 'y'>]><body rid='1' " NS "/>", /* DTD */
        "<body rid='0' " NS "/>",                                  /* rid 0 */
        "<body rid='-5' " NS "/>",                                 /* sign */
        "<body rid='12a' " NS "/>",                                /* not a number */
        "<body rid='9007199254740992' " NS "/>",                   /* over 2^53-1 */
        "<body rid='99999999999999999999999' " NS "/>",            /* overflow */
        "<body rid='1' wait='x' " NS "/>",                         /* bad wait */
        "<body rid='1' ver='1' " NS "/>",                          /* bad ver */
        "<body rid='1' sid='0123456789012345678901234567890123456789012345678901234567890123' " NS
        "/>", /* sid too long */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        if (parse(bad[i], &b) != MP_EINVAL)
            fail_msg("accepted: %s", bad[i]);
    }
    assert_int_equal(parse("<body rid='9007199254740991' " NS "/>", &b), 0);
    assert_int_equal(b.rid, BOSH_RID_MAX);
}

/* ---- the window ---- */

static void
add(bosh_win *w, uint64_t rid, uint64_t conn, const char *payload)
{
    bosh_req r = {.rid = rid, .conn = conn};
    if (payload) {
        r.payload = strdup(payload);
        r.len = strlen(payload);
    }
    assert_int_equal(bosh_win_add(w, &r), 0);
}

static void
answer(bosh_win *w, const char *text, uint64_t now)
{
    bosh_win_answered(w, strdup(text), strlen(text), now);
}

static enum bosh_verdict
classify(bosh_win *w, uint64_t rid)
{
    const bosh_cached *c;
    unsigned owed;
    return bosh_win_classify(w, rid, 0, &c, &owed);
}

static void
test_in_order(void **state)
{
    bosh_win w;
    assert_int_equal(bosh_win_init(&w, 100, 2, 1), 0);
    assert_int_equal(classify(&w, 100), BOSH_V_PROCESS);
    add(&w, 100, 1, NULL);
    assert_int_equal(w.next_rid, 101);
    assert_int_equal(bosh_win_held(&w), 1);
    assert_int_equal(classify(&w, 101), BOSH_V_PROCESS);
    add(&w, 101, 2, NULL);
    assert_int_equal(bosh_win_held(&w), 2);
    /* answers go oldest first */
    assert_int_equal(bosh_win_oldest(&w)->rid, 100);
    answer(&w, "<body a/>", 10);
    assert_int_equal(bosh_win_oldest(&w)->rid, 101);
    assert_int_equal(bosh_win_oldest(&w)->conn, 2);
    assert_int_equal(bosh_win_last_in_order(&w), 101);
    bosh_win_free(&w);
}

static void
test_early_then_due(void **state)
{
    bosh_win w;
    assert_int_equal(bosh_win_init(&w, 10, 3, 1), 0);
    add(&w, 10, 1, NULL);
    /* 12 before 11: kept with its payload, not processed */
    assert_int_equal(classify(&w, 12), BOSH_V_EARLY);
    add(&w, 12, 3, "<presence/>");
    assert_int_equal(bosh_win_early(&w), 1);
    assert_null(bosh_win_due(&w));
    assert_int_equal(w.next_rid, 11);
    assert_int_equal(classify(&w, 11), BOSH_V_PROCESS);
    add(&w, 11, 2, NULL);
    bosh_req *due = bosh_win_due(&w);
    assert_non_null(due);
    assert_int_equal(due->rid, 12);
    assert_int_equal(due->len, 11);
    assert_memory_equal(due->payload, "<presence/>", 11);
    bosh_win_promote(&w, due);
    assert_null(bosh_win_due(&w));
    assert_int_equal(w.next_rid, 13);
    assert_int_equal(bosh_win_held(&w), 3);
    /* still answered in rid order */
    assert_int_equal(bosh_win_oldest(&w)->rid, 10);
    answer(&w, "a", 1);
    assert_int_equal(bosh_win_oldest(&w)->rid, 11);
    answer(&w, "b", 1);
    assert_int_equal(bosh_win_oldest(&w)->rid, 12);
    bosh_win_free(&w);
}

static void
test_window_limits(void **state)
{
    bosh_win w;
    assert_int_equal(bosh_win_init(&w, 1000, 2, 1), 0);
    add(&w, 1000, 1, NULL);
    /* window of 2 after 1000: 1001 and 1002 */
    assert_int_equal(classify(&w, 1002), BOSH_V_EARLY);
    assert_int_equal(classify(&w, 1003), BOSH_V_NOT_FOUND);
    assert_int_equal(classify(&w, 5000), BOSH_V_NOT_FOUND);
    /* one held and one early: a third request is one too many ... */
    add(&w, 1002, 3, NULL);
    assert_int_equal(classify(&w, 1001), BOSH_V_OVERACTIVE);
    /* ... unless it pauses or terminates (XEP-0124 §11) */
    const bosh_cached *c;
    unsigned owed;
    assert_int_equal(bosh_win_classify(&w, 1001, 1, &c, &owed), BOSH_V_PROCESS);
    bosh_win_free(&w);
}

static void
test_overactive_in_order(void **state)
{
    bosh_win w;
    assert_int_equal(bosh_win_init(&w, 1, 2, 1), 0);
    add(&w, 1, 1, NULL);
    add(&w, 2, 2, NULL); /* hold is 1: the caller would answer 1 now; it did not */
    assert_int_equal(classify(&w, 3), BOSH_V_OVERACTIVE);
    answer(&w, "x", 0);
    assert_int_equal(classify(&w, 3), BOSH_V_PROCESS);
    bosh_win_free(&w);
}

static void
test_retransmission(void **state)
{
    bosh_win w;
    const bosh_cached *c = NULL;
    unsigned owed = 99;
    assert_int_equal(bosh_win_init(&w, 50, 2, 1), 0);
    add(&w, 50, 1, NULL);
    /* a repeat of a rid still held: the new connection takes its place */
    assert_int_equal(bosh_win_classify(&w, 50, 0, &c, &owed), BOSH_V_REATTACH);
    assert_int_equal(owed, 0);
    answer(&w, "<body one/>", 100);
    assert_int_equal(bosh_win_classify(&w, 50, 0, &c, &owed), BOSH_V_RESEND);
    assert_non_null(c);
    assert_int_equal(c->len, 11);
    assert_memory_equal(c->data, "<body one/>", 11);
    assert_int_equal(c->sent_ms, 100);
    add(&w, 51, 2, NULL);
    answer(&w, "<body two/>", 200);
    add(&w, 52, 3, NULL);
    answer(&w, "<body three/>", 300);
    /* only the last `requests` answers are kept */
    assert_int_equal(classify(&w, 50), BOSH_V_NOT_FOUND);
    assert_int_equal(bosh_win_classify(&w, 51, 0, &c, &owed), BOSH_V_RESEND);
    assert_memory_equal(c->data, "<body two/>", 11);
    assert_int_equal(classify(&w, 52), BOSH_V_RESEND);
    /* acknowledged answers are dropped (XEP-0124 §9.2) */
    bosh_win_acked(&w, 51);
    assert_int_equal(classify(&w, 51), BOSH_V_NOT_FOUND);
    assert_non_null(bosh_win_cached(&w, 52));
    /* long before the window */
    assert_int_equal(classify(&w, 1), BOSH_V_NOT_FOUND);
    bosh_win_free(&w);
}

static void
test_early_repeat(void **state)
{
    bosh_win w;
    const bosh_cached *c;
    unsigned owed = 99;
    assert_int_equal(bosh_win_init(&w, 5, 3, 1), 0);
    add(&w, 5, 1, NULL);
    add(&w, 7, 3, "<iq/>");
    assert_int_equal(bosh_win_classify(&w, 7, 0, &c, &owed), BOSH_V_REATTACH);
    assert_int_equal(w.out[owed].rid, 7);
    assert_true(bosh_win_memory(&w) >= 5);
    bosh_win_free(&w); /* frees the early payload */
}

static void
test_hold_zero(void **state)
{
    bosh_win w;
    assert_int_equal(bosh_win_init(&w, 1, 1, 0), 0);
    add(&w, 1, 1, NULL);
    assert_int_equal(bosh_win_held(&w), 1);
    assert_true(bosh_win_held(&w) > w.hold); /* the caller answers at once */
    /* polling: one request at a time */
    assert_int_equal(classify(&w, 2), BOSH_V_OVERACTIVE);
    answer(&w, "p", 0);
    assert_int_equal(classify(&w, 2), BOSH_V_PROCESS);
    bosh_win_free(&w);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_creation), cmocka_unit_test(test_parse_children),
        cmocka_unit_test(test_parse_flags),    cmocka_unit_test(test_parse_bad),
        cmocka_unit_test(test_in_order),       cmocka_unit_test(test_early_then_due),
        cmocka_unit_test(test_window_limits),  cmocka_unit_test(test_overactive_in_order),
        cmocka_unit_test(test_retransmission), cmocka_unit_test(test_early_repeat),
        cmocka_unit_test(test_hold_zero),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
