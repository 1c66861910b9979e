/* XEP-0079 rules: DateTime parsing, rule parsing and validation (including malformed rules),
 * the decision for each (condition, value, outcome), and the replies' bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "helpers.h"

#include "base/err.h"
#include "router/amp.h"
#include "xml/tree.h"

#define AMP_OPEN "<amp xmlns='" MP_NS_AMP "'"

typedef mp_test_xml fixture;

static void
parse_amp(fixture *f, const char *xml, mp_amp *a)
{
    mp_xnode *el = NULL;
    assert_int_equal(mp_xml_parse(f->p, &f->a, "jabber:client", xml, strlen(xml), &el), 0);
    assert_string_equal(el->ns, MP_NS_AMP);
    assert_int_equal(mp_amp_parse(&f->a, el, a), 0);
}

/* ---- DateTime ---- */

static void
test_datetime(void **state)
{
    static const struct {
        const char *s;
        int ok;
        int64_t want;
    } cases[] = {
        {"1970-01-01T00:00:00Z", 1, 0},
        {"2004-01-01T00:00:00Z", 1, 1072915200},
        {"2000-02-29T12:34:56.789Z", 1, 951827696},
        {"2038-01-19T03:14:08Z", 1, 2147483648LL},
        {"2024-12-31T23:59:60Z", 1, 1735689600}, /* leap second: the next one */
        {"1999-12-31T23:59:59+00:00", 1, 946684799},
        {"1999-12-31T23:59:59-00:00", 1, 946684799},
        {"2100-03-01T00:00:00.0Z", 1, 4107542400LL},
        {"1969-12-31T23:59:59Z", 1, -1},
        {"2001-02-29T00:00:00Z", 0, 0}, /* not a leap year */
        {"1900-02-29T00:00:00Z", 0, 0}, /* century, not a leap year */
        {"2004-13-01T00:00:00Z", 0, 0},
        {"2004-00-10T00:00:00Z", 0, 0},
        {"2004-04-31T00:00:00Z", 0, 0},
        {"2004-01-01T24:00:00Z", 0, 0},
        {"2004-01-01T00:60:00Z", 0, 0},
        {"2004-01-01T00:00:61Z", 0, 0},
        {"2004-01-01 00:00:00Z", 0, 0},
        {"2004-01-01T00:00:00", 0, 0},       /* no zone: local time is not UTC */
        {"2004-01-01T00:00:00+01:00", 0, 0}, /* §3.3.2: MUST be UTC */
        {"2004-01-01T00:00:00.Z", 0, 0},
        {"2004-01-01T00:00:00z", 0, 0},
        {"2004-01-01T00:00:00Zjunk", 0, 0},
        {"2004-1-01T00:00:00Z", 0, 0},
        {"04-01-01T00:00:00Z", 0, 0},
        {"2004-01-01", 0, 0},
        {"", 0, 0},
        {"garbage garbage garbage", 0, 0},
        {"+004-01-01T00:00:00Z", 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t t = 42;
        int rc = mp_amp_parse_datetime(cases[i].s, &t);
        if (cases[i].ok) {
            if (rc != 0 || t != cases[i].want)
                fail_msg("%s: rc %d, t %lld, want %lld", cases[i].s, rc, (long long)t,
                         (long long)cases[i].want);
        } else if (rc != MP_EINVAL) {
            fail_msg("%s: accepted (t %lld)", cases[i].s, (long long)t);
        }
    }
    assert_int_equal(mp_amp_parse_datetime(NULL, NULL), MP_EINVAL);
}

/* ---- parsing and validation ---- */

static void
test_parse_rules(void **state)
{
    static const struct {
        const char *xml;
        int fault; /* of the request */
        size_t nrules;
        const char *faults; /* per rule: '0' ok, 'A' action, 'C' condition, 'I' invalid */
        int per_hop;
    } cases[] = {
        {AMP_OPEN "><rule condition='deliver' action='notify' value='direct'/></amp>", MP_AMP_OK, 1,
         "0", 0},
        {AMP_OPEN " per-hop='true'><rule condition='expire-at' action='drop' "
                  "value='2004-01-01T00:00:00Z'/><rule condition='match-resource' action='error' "
                  "value='other'/></amp>",
         MP_AMP_OK, 2, "00", 1},
        {AMP_OPEN " per-hop='false'><rule condition='deliver' action='alert' value='stored'/>"
                  "<rule condition='deliver' action='drop' value='none'/>"
                  "<rule condition='deliver' action='error' value='forward'/>"
                  "<rule condition='deliver' action='error' value='gateway'/>"
                  "<rule condition='match-resource' action='notify' value='any'/>"
                  "<rule condition='match-resource' action='notify' value='exact'/></amp>",
         MP_AMP_OK, 6, "000000", 0},
        /* unknown action and condition, in either order: actions are reported first */
        {AMP_OPEN "><rule condition='deliver' action='explode' value='direct'/></amp>",
         MP_AMP_BAD_ACTION, 1, "A", 0},
        {AMP_OPEN "><rule condition='weather' action='drop' value='rain'/></amp>",
         MP_AMP_BAD_CONDITION, 1, "C", 0},
        {AMP_OPEN "><rule condition='weather' action='drop' value='rain'/>"
                  "<rule condition='deliver' action='explode' value='direct'/></amp>",
         MP_AMP_BAD_ACTION, 2, "CA", 0},
        {AMP_OPEN "><rule condition='weather' action='drop' value='rain'/>"
                  "<rule condition='deliver' action='drop' value='sometimes'/></amp>",
         MP_AMP_BAD_CONDITION, 2, "CI", 0},
        /* values */
        {AMP_OPEN "><rule condition='deliver' action='drop' value='sometimes'/></amp>",
         MP_AMP_INVALID, 1, "I", 0},
        {AMP_OPEN "><rule condition='deliver' action='drop' value='Direct'/></amp>", MP_AMP_INVALID,
         1, "I", 0},
        {AMP_OPEN "><rule condition='match-resource' action='drop' value='some'/></amp>",
         MP_AMP_INVALID, 1, "I", 0},
        {AMP_OPEN "><rule condition='expire-at' action='drop' value='tomorrow'/></amp>",
         MP_AMP_INVALID, 1, "I", 0},
        {AMP_OPEN "><rule condition='expire-at' action='drop' value='2004-01-01T00:00:00+02:00'/>"
                  "</amp>",
         MP_AMP_INVALID, 1, "I", 0},
        /* missing or empty attributes */
        {AMP_OPEN "><rule condition='deliver' action='drop'/></amp>", MP_AMP_INVALID, 1, "I", 0},
        {AMP_OPEN "><rule condition='deliver' action='drop' value=''/></amp>", MP_AMP_INVALID, 1,
         "I", 0},
        {AMP_OPEN "><rule action='drop' value='direct'/></amp>", MP_AMP_INVALID, 1, "I", 0},
        {AMP_OPEN "><rule condition='deliver' value='direct'/></amp>", MP_AMP_INVALID, 1, "I", 0},
        /* the rule set itself */
        {AMP_OPEN "/>", MP_AMP_INVALID, 0, "", 0},
        {AMP_OPEN "><other xmlns='urn:x'/></amp>", MP_AMP_INVALID, 0, "", 0},
        {AMP_OPEN " per-hop='yes'><rule condition='deliver' action='drop' value='direct'/></amp>",
         MP_AMP_INVALID, 1, "I", 0},
        /* rules in another namespace are not AMP rules */
        {AMP_OPEN "><rule xmlns='urn:x' condition='x' action='y' value='z'/>"
                  "<rule condition='deliver' action='drop' value='stored'/></amp>",
         MP_AMP_OK, 1, "0", 0},
    };
    fixture *f = *state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mp_amp a;
        parse_amp(f, cases[i].xml, &a);
        if (a.fault != cases[i].fault || a.nrules != cases[i].nrules ||
            a.per_hop != cases[i].per_hop)
            fail_msg("case %zu: fault %d nrules %zu per_hop %d", i, a.fault, a.nrules, a.per_hop);
        for (size_t j = 0; j < a.nrules; j++) {
            static const char code[] = "0ACI";
            if (code[a.rules[j].fault] != cases[i].faults[j])
                fail_msg("case %zu rule %zu: fault %c, want %c", i, j, code[a.rules[j].fault],
                         cases[i].faults[j]);
        }
        mp_arena_reset(&f->a);
    }
}

static void
test_parse_values(void **state)
{
    fixture *f = *state;
    mp_amp a;
    parse_amp(f,
              AMP_OPEN "><rule condition='expire-at' action='notify' value='2004-01-01T00:00:00Z'/>"
                       "<rule condition='match-resource' action='alert' value='exact'/>"
                       "<rule condition='deliver' action='error' value='stored'/></amp>",
              &a);
    assert_int_equal(a.nrules, 3);
    assert_int_equal(a.rules[0].cond, MP_AMP_EXPIRE_AT);
    assert_int_equal(a.rules[0].act, MP_AMP_NOTIFY);
    assert_int_equal(a.rules[0].at, 1072915200);
    assert_string_equal(a.rules[0].value, "2004-01-01T00:00:00Z");
    assert_int_equal(a.rules[1].cond, MP_AMP_MATCH_RESOURCE);
    assert_int_equal(a.rules[1].act, MP_AMP_ALERT);
    assert_int_equal(a.rules[1].val, MP_AMP_EXACT);
    assert_int_equal(a.rules[2].cond, MP_AMP_DELIVER);
    assert_int_equal(a.rules[2].act, MP_AMP_ERROR);
    assert_int_equal(a.rules[2].val, MP_AMP_STORED);
}

/* ---- decisions ---- */

enum { DIRECT_EXACT, DIRECT_OTHER, DIRECT_BARE, STORED_BARE, STORED_FULL, NONE_BARE, NOUTCOMES };

static void
outcome(int which, mp_amp_outcome *o)
{
    memset(o, 0, sizeof *o);
    o->now = 1000000000;
    switch (which) {
    case DIRECT_EXACT: /* to a full JID with a session */
        o->deliver = MP_AMP_DIRECT, o->addressed_res = 1, o->exact = 1;
        break;
    case DIRECT_OTHER: /* to a full JID without a session, delivered to the bare JID */
        o->deliver = MP_AMP_DIRECT, o->addressed_res = 1, o->other = 1;
        break;
    case DIRECT_BARE: /* to a bare JID, an available resource gets it */
        o->deliver = MP_AMP_DIRECT, o->other = 1;
        break;
    case STORED_BARE:
        o->deliver = MP_AMP_STORED;
        break;
    case STORED_FULL:
        o->deliver = MP_AMP_STORED, o->addressed_res = 1;
        break;
    case NONE_BARE:
        o->deliver = MP_AMP_NONE;
        break;
    }
}

static void
test_decisions(void **state)
{
    /* met[] per outcome: DIRECT_EXACT, DIRECT_OTHER, DIRECT_BARE, STORED_BARE, STORED_FULL,
     * NONE_BARE */
    static const struct {
        const char *condition, *value;
        const char *met;
    } cases[] = {
        {"deliver", "direct", "111000"},
        {"deliver", "stored", "000110"},
        {"deliver", "none", "000001"},
        {"deliver", "forward", "000000"},
        {"deliver", "gateway", "000000"},
        {"match-resource", "any", "111000"},
        {"match-resource", "exact", "100100"},
        {"match-resource", "other", "011000"},
        {"expire-at", "2001-09-09T01:46:39Z", "111110"}, /* now - 1: past */
        {"expire-at", "2001-09-09T01:46:40Z", "111110"}, /* now: "on or after" */
        {"expire-at", "2001-09-09T01:46:41Z", "000000"}, /* now + 1: not yet */
    };
    fixture *f = *state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char xml[512];
        snprintf(xml, sizeof xml, AMP_OPEN "><rule condition='%s' action='drop' value='%s'/></amp>",
                 cases[i].condition, cases[i].value);
        mp_amp a;
        parse_amp(f, xml, &a);
        assert_int_equal(a.fault, MP_AMP_OK);
        for (int k = 0; k < NOUTCOMES; k++) {
            mp_amp_outcome o;
            outcome(k, &o);
            int met = mp_amp_condition_met(&a, &a.rules[0], &o);
            if (met != cases[i].met[k] - '0')
                fail_msg("%s=%s, outcome %d: met %d", cases[i].condition, cases[i].value, k, met);
            /* Delivered from storage later, only expire-at still counts. */
            o.at_delivery = 1;
            o.deliver = MP_AMP_DIRECT;
            met = mp_amp_condition_met(&a, &a.rules[0], &o);
            int want = strcmp(cases[i].condition, "expire-at") == 0 && cases[i].met[0] == '1';
            if (met != want)
                fail_msg("%s=%s at delivery: met %d", cases[i].condition, cases[i].value, met);
        }
        mp_arena_reset(&f->a);
    }
}

static void
test_first_rule_wins(void **state)
{
    fixture *f = *state;
    mp_amp a;
    mp_amp_outcome o;
    parse_amp(f,
              AMP_OPEN "><rule condition='deliver' action='error' value='stored'/>"
                       "<rule condition='match-resource' action='notify' value='any'/>"
                       "<rule condition='deliver' action='drop' value='direct'/></amp>",
              &a);
    outcome(DIRECT_BARE, &o);
    assert_int_equal(mp_amp_match(&a, &o), 1);
    outcome(STORED_BARE, &o);
    assert_int_equal(mp_amp_match(&a, &o), 0);
    outcome(NONE_BARE, &o);
    assert_int_equal(mp_amp_match(&a, &o), -1);
    mp_arena_reset(&f->a);

    /* §3.3.3: match-resource is ignored in a per-hop rule set; expire-at is not. */
    parse_amp(f,
              AMP_OPEN " per-hop='true'><rule condition='match-resource' action='error' "
                       "value='any'/><rule condition='expire-at' action='drop' "
                       "value='2000-01-01T00:00:00Z'/></amp>",
              &a);
    outcome(DIRECT_EXACT, &o);
    assert_int_equal(mp_amp_match(&a, &o), 1);
    outcome(NONE_BARE, &o);
    assert_int_equal(mp_amp_match(&a, &o), -1);
}

/* ---- replies ---- */

static const mp_amp_reply reply = {
    .server = "hamlet.lit",
    .to = "bernardo@hamlet.lit/elsinore",
    .id = "chatty'2",
    .orig_from = "bernardo@hamlet.lit/elsinore",
    .orig_to = "francisco@hamlet.lit",
};

static void
test_build_event(void **state)
{
    static const struct {
        const char *rule, *want;
    } cases[] = {
        {"<rule condition='deliver' action='notify' value='stored'/>",
         "<message from='hamlet.lit' to='bernardo@hamlet.lit/elsinore' id='chatty&apos;2'>"
         "<amp xmlns='" MP_NS_AMP "' status='notify' from='bernardo@hamlet.lit/elsinore' "
         "to='francisco@hamlet.lit'><rule action='notify' condition='deliver' value='stored'/>"
         "</amp></message>"},
        {"<rule condition='deliver' action='alert' value='stored'/>",
         "<message from='hamlet.lit' to='bernardo@hamlet.lit/elsinore' id='chatty&apos;2'>"
         "<amp xmlns='" MP_NS_AMP "' status='alert' from='bernardo@hamlet.lit/elsinore' "
         "to='francisco@hamlet.lit'><rule action='alert' condition='deliver' value='stored'/>"
         "</amp></message>"},
        {"<rule condition='match-resource' action='error' value='other'/>",
         "<message from='hamlet.lit' to='bernardo@hamlet.lit/elsinore' id='chatty&apos;2' "
         "type='error'><amp xmlns='" MP_NS_AMP "' status='error' "
         "from='bernardo@hamlet.lit/elsinore' to='francisco@hamlet.lit'><rule action='error' "
         "condition='match-resource' value='other'/></amp><error type='modify' code='500'>"
         "<undefined-condition xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><failed-rules "
         "xmlns='" MP_NS_AMP_ERRORS "'><rule action='error' condition='match-resource' "
         "value='other'/></failed-rules></error></message>"},
    };
    fixture *f = *state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char xml[512];
        snprintf(xml, sizeof xml, AMP_OPEN ">%s</amp>", cases[i].rule);
        mp_amp a;
        parse_amp(f, xml, &a);
        assert_int_equal(mp_amp_build_event(&f->b, &reply, &a.rules[0]), 0);
        assert_int_equal(f->b.len, strlen(cases[i].want));
        assert_memory_equal(f->b.data, cases[i].want, f->b.len);
        /* what we send must itself parse */
        mp_xnode *el = NULL;
        assert_int_equal(mp_xml_parse(f->p, &f->a, "jabber:client", f->b.data, f->b.len, &el), 0);
        mp_arena_reset(&f->a);
    }
}

static void
test_build_reject(void **state)
{
    static const struct {
        const char *rules, *cond, *list, *listed;
    } cases[] = {
        {"<rule condition='deliver' action='explode' value='direct'/>"
         "<rule condition='deliver' action='drop' value='none'/>",
         "<error type='modify' code='400'><bad-request", "unsupported-actions",
         "<rule action='explode' condition='deliver' value='direct'/>"},
        {"<rule condition='weather' action='drop' value='rain'/>"
         "<rule condition='tide' action='notify' value='&lt;high&gt;'/>",
         "<error type='modify' code='400'><bad-request", "unsupported-conditions",
         "<rule action='drop' condition='weather' value='rain'/>"
         "<rule action='notify' condition='tide' value='&lt;high&gt;'/>"},
        {"<rule condition='expire-at' action='drop' value='soon'/>"
         "<rule condition='deliver' action='drop' value='stored'/>",
         "<error type='modify' code='405'><not-acceptable", "invalid-rules",
         "<rule action='drop' condition='expire-at' value='soon'/>"},
    };
    fixture *f = *state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char xml[512], want[2048];
        snprintf(xml, sizeof xml, AMP_OPEN ">%s</amp>", cases[i].rules);
        mp_amp a;
        parse_amp(f, xml, &a);
        assert_int_equal(mp_amp_build_reject(&f->b, &reply, &a), 0);
        assert_int_equal(mp_buf_append(&f->b, "", 1), 0);
        snprintf(want, sizeof want,
                 " xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><%s xmlns='" MP_NS_AMP_ERRORS
                 "'>%s</%s></error></message>",
                 cases[i].list, cases[i].listed, cases[i].list);
        const char *err = strstr(f->b.data, cases[i].cond);
        if (!err || strcmp(err + strlen(cases[i].cond), want) != 0)
            fail_msg("case %zu: %s", i, f->b.data);
        assert_non_null(strstr(f->b.data, "<message from='hamlet.lit' "
                                          "to='bernardo@hamlet.lit/elsinore' id='chatty&apos;2' "
                                          "type='error'><amp xmlns='" MP_NS_AMP "'><rule"));
        mp_xnode *el = NULL;
        assert_int_equal(mp_xml_parse(f->p, &f->a, "jabber:client", f->b.data, f->b.len - 1, &el),
                         0);
        mp_arena_reset(&f->a);
    }
    mp_amp ok;
    parse_amp(f, AMP_OPEN "><rule condition='deliver' action='drop' value='none'/></amp>", &ok);
    assert_int_equal(mp_amp_build_reject(&f->b, &reply, &ok), MP_EINVAL);
}

static void
test_requested(void **state)
{
    static const char with[] = "<message to='a@b' id='1'><amp xmlns='" MP_NS_AMP "'/></message>";
    static const char without[] = "<message to='a@b' id='1'><body>http://jabber.org/</body>"
                                  "</message>";
    assert_true(mp_amp_requested(with, sizeof with - 1));
    assert_false(mp_amp_requested(without, sizeof without - 1));
    assert_false(mp_amp_requested(with, 20));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_datetime),
        cmocka_unit_test_setup_teardown(test_parse_rules, mp_test_xml_setup, mp_test_xml_teardown),
        cmocka_unit_test_setup_teardown(test_parse_values, mp_test_xml_setup, mp_test_xml_teardown),
        cmocka_unit_test_setup_teardown(test_decisions, mp_test_xml_setup, mp_test_xml_teardown),
        cmocka_unit_test_setup_teardown(test_first_rule_wins, mp_test_xml_setup,
                                        mp_test_xml_teardown),
        cmocka_unit_test_setup_teardown(test_build_event, mp_test_xml_setup, mp_test_xml_teardown),
        cmocka_unit_test_setup_teardown(test_build_reject, mp_test_xml_setup, mp_test_xml_teardown),
        cmocka_unit_test(test_requested),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
