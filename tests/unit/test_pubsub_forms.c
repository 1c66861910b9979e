/* Publish-subscribe data forms (node configuration, publish-options preconditions, subscribe
 * options) and access decisions: the pure functions of src/modules/pubsub/forms.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "modules/pubsub/pubsub.h"
#include "router/subscription.h"
#include "base/err.h"

typedef struct fx {
    mp_arena a;
    mp_xml_parser *p;
} fx;

static int
setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    mp_arena_init(&f->a, 4096);
    f->p = mp_xml_parser_new();
    assert_non_null(f->p);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    fx *f = *state;
    mp_xml_parser_free(f->p);
    mp_arena_free(&f->a);
    free(f);
    return 0;
}

static mp_xnode *
parse(fx *f, const char *xml)
{
    mp_xnode *n = NULL;
    assert_int_equal(mp_xml_parse(f->p, &f->a, "jabber:client", xml, strlen(xml), &n), 0);
    return n;
}

#define FORM(type, fields)                                                                         \
    "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>" type                   \
    "</value></field>" fields "</x>"
#define FIELD(var, value) "<field var='" var "'><value>" value "</value></field>"

static const ps_limits lim = {100};

static void
test_defaults(void **state)
{
    ps_config c;
    ps_config_defaults(&c, 1, &lim);
    assert_int_equal(c.access_model, PS_ACCESS_PRESENCE);
    assert_int_equal(c.max_items, 1);
    assert_int_equal(c.send_last, PS_SEND_ON_SUB_AND_PRESENCE);
    ps_config_defaults(&c, 0, &lim);
    assert_int_equal(c.access_model, PS_ACCESS_OPEN);
    assert_int_equal(c.max_items, 10);
    assert_int_equal(c.publish_model, PS_PUB_PUBLISHERS);
    assert_true(c.deliver_payloads);
    assert_true(c.persist_items);
}

static void
test_apply_config(void **state)
{
    fx *f = *state;
    ps_config c;
    const char *bad;
    ps_config_defaults(&c, 0, &lim);
    mp_xnode *x = parse(
        f, FORM(PS_FORM_CONFIG,
                FIELD("pubsub#title", "Princely Musings") FIELD("pubsub#max_items", "max")
                    FIELD("pubsub#deliver_payloads", "false") FIELD("pubsub#access_model", "roster")
                        FIELD("pubsub#publish_model", "open")
                            FIELD("pubsub#notification_type", "normal")
                                FIELD("pubsub#unknown",
                                      "whatever") "<field var='pubsub#roster_groups_allowed'>"
                                                  "<value>friends</value><value>"
                                                  "servants</value></field>"));
    assert_int_equal(ps_config_apply(&c, x, PS_FORM_CONFIG, &lim, &f->a, &bad), 0);
    assert_string_equal(c.title, "Princely Musings");
    assert_int_equal(c.max_items, 100);
    assert_false(c.deliver_payloads);
    assert_int_equal(c.access_model, PS_ACCESS_ROSTER);
    assert_int_equal(c.publish_model, PS_PUB_OPEN);
    assert_int_equal(c.notification_type, PS_NOTIFY_NORMAL);
    assert_int_equal(c.ngroups, 2);
    assert_string_equal(c.groups[1], "servants");
}

static void
test_apply_rejects(void **state)
{
    fx *f = *state;
    ps_config c;
    const char *bad;
    static const char *const forms[] = {
        FORM(PS_FORM_CONFIG, FIELD("pubsub#max_items", "0")),
        FORM(PS_FORM_CONFIG, FIELD("pubsub#max_items", "101")),
        FORM(PS_FORM_CONFIG, FIELD("pubsub#max_items", "ten")),
        FORM(PS_FORM_CONFIG, FIELD("pubsub#access_model", "secret")),
        FORM(PS_FORM_CONFIG, FIELD("pubsub#persist_items", "yes")),
        FORM("urn:other", FIELD("pubsub#title", "x")),
    };
    static const char *const vars[] = {"pubsub#max_items",     "pubsub#max_items",
                                       "pubsub#max_items",     "pubsub#access_model",
                                       "pubsub#persist_items", "FORM_TYPE"};
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        ps_config_defaults(&c, 0, &lim);
        assert_int_equal(ps_config_apply(&c, parse(f, forms[i]), PS_FORM_CONFIG, &lim, &f->a, &bad),
                         MP_EINVAL);
        assert_string_equal(bad, vars[i]);
    }
}

static void
test_encode_decode(void **state)
{
    fx *f = *state;
    ps_config c, d;
    const char *bad;
    ps_config_defaults(&c, 0, &lim);
    mp_xnode *x = parse(
        f, FORM(PS_FORM_CONFIG,
                FIELD("pubsub#title", "a &amp; b") FIELD("pubsub#access_model", "whitelist")
                    FIELD("pubsub#max_items", "7") FIELD("pubsub#roster_groups_allowed", "g")));
    assert_int_equal(ps_config_apply(&c, x, PS_FORM_CONFIG, &lim, &f->a, &bad), 0);
    mp_buf b = {0};
    assert_int_equal(ps_config_encode(&c, &f->a, &b), 0);
    assert_int_equal(ps_config_decode(&d, 0, &lim, (const char *)b.data, b.len, f->p, &f->a), 0);
    mp_buf_free(&b);
    assert_true(ps_config_equal(&c, &d));
    assert_string_equal(d.title, "a & b");
    /* a lower limit since then caps max_items */
    ps_limits low = {5};
    assert_int_equal(ps_config_encode(&c, &f->a, &b), 0);
    assert_int_equal(ps_config_decode(&d, 0, &low, (const char *)b.data, b.len, f->p, &f->a), 0);
    mp_buf_free(&b);
    assert_int_equal(d.max_items, 5);
}

static void
test_preconditions(void **state)
{
    fx *f = *state;
    ps_config c;
    ps_config_defaults(&c, 1, &lim);
    c.access_model = PS_ACCESS_WHITELIST;
    c.max_items = lim.max_items;
    /* XEP-0223 and XEP-0402 ask exactly this */
    mp_xnode *ok = parse(f, FORM(PS_FORM_PUBOPTS, FIELD("pubsub#persist_items", "true")
                                                      FIELD("pubsub#access_model", "whitelist")
                                                          FIELD("pubsub#max_items", "max")));
    assert_int_equal(ps_config_preconditions(&c, ok, &lim, &f->a), 1);
    mp_xnode *open = parse(f, FORM(PS_FORM_PUBOPTS, FIELD("pubsub#access_model", "open")));
    assert_int_equal(ps_config_preconditions(&c, open, &lim, &f->a), 0);
    mp_xnode *unknown = parse(f, FORM(PS_FORM_PUBOPTS, FIELD("pubsub#frobnicate", "1")));
    assert_int_equal(ps_config_preconditions(&c, unknown, &lim, &f->a), 0);
    mp_xnode *badval = parse(f, FORM(PS_FORM_PUBOPTS, FIELD("pubsub#max_items", "-1")));
    assert_int_equal(ps_config_preconditions(&c, badval, &lim, &f->a), 0);
}

static void
test_form_roundtrip_owner(void **state)
{
    fx *f = *state;
    ps_config c;
    ps_config_defaults(&c, 0, &lim);
    mp_xnode *x = ps_config_form(&c, "form", &f->a);
    assert_non_null(x);
    mp_buf b = {0};
    assert_int_equal(mp_xnode_serialize(&b, x, "jabber:client"), 0);
    assert_non_null(memmem(b.data, b.len, "type='list-single'", 18));
    assert_non_null(memmem(b.data, b.len, "<option><value>authorize</value></option>", 41));
    mp_buf_free(&b);
}

static void
test_subopts(void **state)
{
    fx *f = *state;
    ps_subopts o;
    const char *bad;
    char buf[64];
    ps_subopts_defaults(&o);
    assert_true(o.deliver);
    assert_int_equal(
        ps_subopts_apply(&o, parse(f, FORM(PS_FORM_SUBOPTS, FIELD("pubsub#deliver", "0"))), &bad),
        0);
    assert_false(o.deliver);
    ps_subopts_encode(&o, buf, sizeof buf);
    ps_subopts d;
    ps_subopts_decode(&d, buf);
    assert_false(d.deliver);
    ps_subopts_decode(&d, "garbage");
    assert_true(d.deliver);
    assert_int_equal(
        ps_subopts_apply(&o, parse(f, FORM(PS_FORM_SUBOPTS, FIELD("pubsub#digest", "1"))), &bad),
        MP_EINVAL);
    assert_string_equal(bad, "pubsub#digest");
}

static void
test_affiliation_names(void **state)
{
    static const char *const names[] = {"outcast",      "none",      "member",
                                        "publish-only", "publisher", "owner"};
    for (int i = 0; i < 6; i++) {
        assert_int_equal(ps_affiliation_parse(names[i]), i - 1);
        assert_string_equal(ps_affiliation_name(i - 1), names[i]);
    }
    assert_int_equal(ps_affiliation_parse("admin"), MP_EINVAL);
}

/* Every access model, both ways. */
static void
test_access(void **state)
{
    ps_config c;
    ps_config_defaults(&c, 0, &lim);
    const char *friends[] = {"friends"}, *others[] = {"others"};
    c.groups[0] = "friends";
    c.ngroups = 1;
    ps_who stranger = {MP_PS_AFF_NONE, -1, 0, 0};
    ps_who contact = {MP_PS_AFF_NONE, MP_SUB_BOTH, 0, 0};
    ps_who hidden = {MP_PS_AFF_NONE, MP_SUB_FROM | MP_SUB_HIDDEN, 0, 0};
    ps_who to_only = {MP_PS_AFF_NONE, MP_SUB_TO, 0, 0};
    ps_who friend = {MP_PS_AFF_NONE, MP_SUB_FROM, ps_groups_match(&c, friends, 1), 0};
    ps_who other = {MP_PS_AFF_NONE, MP_SUB_FROM, ps_groups_match(&c, others, 1), 0};
    ps_who member = {MP_PS_AFF_MEMBER, -1, 0, 0};
    ps_who outcast = {MP_PS_AFF_OUTCAST, MP_SUB_BOTH, 0, 1};
    ps_who subscriber = {MP_PS_AFF_NONE, -1, 0, 1};
    ps_who publish_only = {MP_PS_AFF_PUBLISH_ONLY, -1, 0, 0};

    c.access_model = PS_ACCESS_OPEN;
    assert_int_equal(ps_may_read(&c, &stranger), PS_ALLOW);
    assert_int_equal(ps_may_subscribe(&c, &stranger), PS_ALLOW);
    assert_int_equal(ps_may_read(&c, &outcast), PS_DENY_OUTCAST);

    c.access_model = PS_ACCESS_PRESENCE;
    assert_int_equal(ps_may_read(&c, &contact), PS_ALLOW);
    assert_int_equal(ps_may_read(&c, &stranger), PS_DENY_PRESENCE);
    assert_int_equal(ps_may_read(&c, &hidden), PS_DENY_PRESENCE);
    assert_int_equal(ps_may_read(&c, &to_only), PS_DENY_PRESENCE);
    assert_int_equal(ps_may_subscribe(&c, &stranger), PS_DENY_PRESENCE);

    c.access_model = PS_ACCESS_ROSTER;
    assert_int_equal(ps_may_read(&c, &friend), PS_ALLOW);
    assert_int_equal(ps_may_read(&c, &other), PS_DENY_GROUP);
    assert_int_equal(ps_may_read(&c, &stranger), PS_DENY_GROUP);

    c.access_model = PS_ACCESS_WHITELIST;
    assert_int_equal(ps_may_read(&c, &member), PS_ALLOW);
    assert_int_equal(ps_may_read(&c, &contact), PS_DENY_WHITELIST);
    assert_int_equal(ps_may_subscribe(&c, &contact), PS_DENY_WHITELIST);
    assert_int_equal(ps_may_read(&c, &publish_only), PS_DENY_WHITELIST);

    c.access_model = PS_ACCESS_AUTHORIZE;
    assert_int_equal(ps_may_subscribe(&c, &stranger), PS_PENDING);
    assert_int_equal(ps_may_read(&c, &stranger), PS_DENY_SUBSCRIBE);
    assert_int_equal(ps_may_read(&c, &subscriber), PS_ALLOW);
    assert_int_equal(ps_may_subscribe(&c, &member), PS_ALLOW);
}

static void
test_publish_model(void **state)
{
    ps_config c;
    ps_config_defaults(&c, 0, &lim);
    ps_who none = {MP_PS_AFF_NONE, -1, 0, 0};
    ps_who sub = {MP_PS_AFF_NONE, -1, 0, 1};
    ps_who po = {MP_PS_AFF_PUBLISH_ONLY, -1, 0, 0};
    ps_who member = {MP_PS_AFF_MEMBER, -1, 0, 0};
    ps_who outcast = {MP_PS_AFF_OUTCAST, -1, 0, 1};
    assert_int_equal(ps_may_publish(&c, &none), PS_DENY_PUBLISH);
    assert_int_equal(ps_may_publish(&c, &member), PS_DENY_PUBLISH);
    assert_int_equal(ps_may_publish(&c, &po), PS_ALLOW);
    c.publish_model = PS_PUB_SUBSCRIBERS;
    assert_int_equal(ps_may_publish(&c, &sub), PS_ALLOW);
    assert_int_equal(ps_may_publish(&c, &none), PS_DENY_PUBLISH);
    c.publish_model = PS_PUB_OPEN;
    assert_int_equal(ps_may_publish(&c, &none), PS_ALLOW);
    assert_int_equal(ps_may_publish(&c, &outcast), PS_DENY_OUTCAST);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test_setup_teardown(test_apply_config, setup, teardown),
        cmocka_unit_test_setup_teardown(test_apply_rejects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_encode_decode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_preconditions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_form_roundtrip_owner, setup, teardown),
        cmocka_unit_test_setup_teardown(test_subopts, setup, teardown),
        cmocka_unit_test(test_affiliation_names),
        cmocka_unit_test(test_access),
        cmocka_unit_test(test_publish_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
