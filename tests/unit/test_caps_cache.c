/* Client capabilities (XEP-0115): the verification of a disco#info answer against a ver, with
 * the XEP's worked examples, the ill-formed answers of §5.4, and the feature sets kept. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "modules/caps_cache.h"
#include "router/caps.h"
#include "base/err.h"
#include "xml/tree.h"

static mp_arena arena;
static mp_xml_parser *parser;

static int
setup(void **state)
{
    (void)state;
    mp_arena_init(&arena, 4096);
    parser = mp_xml_parser_new();
    return parser ? 0 : -1;
}

static int
teardown(void **state)
{
    (void)state;
    mp_xml_parser_free(parser);
    mp_arena_free(&arena);
    return 0;
}

static mp_xnode *
parse(const char *xml)
{
    mp_xnode *n = NULL;
    assert_int_equal(mp_xml_parse(parser, &arena, "jabber:client", xml, strlen(xml), &n), 0);
    return n;
}

#define Q "<query xmlns='http://jabber.org/protocol/disco#info'"
#define F(v) "<feature var='" v "'/>"

/* §5.2, the simple example, features given out of order */
static const char simple[] = Q
    " node='http://code.google.com/p/exodus#QgayPKawpkPSDYmwT/WM94uAlu0='>"
    "<identity category='client' name='Exodus 0.9.1' type='pc'/>" F(
        "http://jabber.org/protocol/muc") F("http://jabber.org/protocol/disco#info")
        F("http://jabber.org/protocol/caps") F("http://jabber.org/protocol/disco#items") "</query>";

/* §5.3, the complex example: two identities in two languages and a software-info form */
static const char complex_[] = Q
    " node='http://psi-im.org#q07IKJEyjvHSyhy//CH0CxmKi8w='>"
    "<identity xml:lang='en' category='client' name='Psi 0.11' type='pc'/>"
    "<identity xml:lang='el' category='client' name='\xce\xa8 0.11' type='pc'/>" F(
        "http://jabber.org/protocol/caps") F("http://jabber.org/protocol/disco#info")
        F("http://jabber.org/protocol/disco#items")
            F("http://jabber.org/protocol/muc") "<x xmlns='jabber:x:data' type='result'>"
                                                "<field var='FORM_TYPE' "
                                                "type='hidden'><value>urn:xmpp:dataforms:"
                                                "softwareinfo</value></field>"
                                                "<field var='ip_version' "
                                                "type='text-multi'><value>ipv6</value><value>ipv4</"
                                                "value></field>"
                                                "<field var='os'><value>Mac</value></field>"
                                                "<field "
                                                "var='os_version'><value>10.5.1</value></field>"
                                                "<field var='software'><value>Psi</value></field>"
                                                "<field "
                                                "var='software_version'><value>0.11</value></field>"
                                                "</x></query>";

static void
test_simple_example(void **state)
{
    (void)state;
    char ver[64];
    assert_int_equal(mp_caps_compute(parse(simple), "sha-1", ver, sizeof ver), 28);
    assert_string_equal(ver, "QgayPKawpkPSDYmwT/WM94uAlu0=");
}

static void
test_complex_example(void **state)
{
    (void)state;
    char ver[64];
    assert_int_equal(mp_caps_compute(parse(complex_), "sha-1", ver, sizeof ver), 28);
    assert_string_equal(ver, "q07IKJEyjvHSyhy//CH0CxmKi8w=");
}

/* Without forms the client's ver is the one the server computes for itself (router/caps.c). */
static void
test_same_as_server_ver(void **state)
{
    (void)state;
    const char *xml = Q
        "><identity category='client' type='phone' name='Gajim'/>"
        "<identity category='client' type='pc' xml:lang='de' name='Gajim'/>" F("urn:xmpp:jingle:1")
            F("http://jabber.org/protocol/geoloc+notify") F("jabber:iq:version") "</query>";
    mp_caps_identity ids[] = {{"client", "phone", NULL, "Gajim"}, {"client", "pc", "de", "Gajim"}};
    const char *feats[] = {"urn:xmpp:jingle:1", "http://jabber.org/protocol/geoloc+notify",
                           "jabber:iq:version"};
    char mine[64], server[MP_CAPS_VER_MAX];
    assert_int_equal(mp_caps_ver(ids, 2, feats, 3, server, sizeof server), 28);
    assert_int_equal(mp_caps_compute(parse(xml), "sha-1", mine, sizeof mine), 28);
    assert_string_equal(mine, server);
}

/* A form whose FORM_TYPE is not hidden is ignored (§5.4 3.6): the ver is that of the answer
 * without it; so is a form with no FORM_TYPE at all. */
static void
test_form_not_hidden_ignored(void **state)
{
    (void)state;
    const char *with = Q "><identity category='client' name='Exodus 0.9.1' type='pc'/>" F(
        "http://jabber.org/protocol/caps") F("http://jabber.org/protocol/disco#info")
        F("http://jabber.org/protocol/disco#items") F(
            "http://jabber.org/protocol/muc") "<x xmlns='jabber:x:data' type='result'><field "
                                              "var='FORM_TYPE'><value>urn:x</value>"
                                              "</field><field var='a'><value>b</value></field></x>"
                                              "<x xmlns='jabber:x:data' type='result'><field "
                                              "var='a'><value>b</value></field></x>"
                                              "</query>";
    char ver[64];
    assert_int_equal(mp_caps_compute(parse(with), "sha-1", ver, sizeof ver), 28);
    assert_string_equal(ver, "QgayPKawpkPSDYmwT/WM94uAlu0=");
}

static void
assert_ill_formed(const char *xml)
{
    char ver[64];
    assert_int_equal(mp_caps_compute(parse(xml), "sha-1", ver, sizeof ver), MP_EINVAL);
}

/* §5.4: duplicate identities, features or FORM_TYPEs, or a FORM_TYPE with two values, make
 * the whole answer ill-formed (never cached). */
static void
test_ill_formed(void **state)
{
    (void)state;
    assert_ill_formed(Q "><identity category='client' type='pc' name='A'/>"
                        "<identity category='client' type='pc' name='A'/></query>");
    assert_ill_formed(Q "><identity category='client' type='pc'/>" F("a") F("b") F("a") "</query>");
    assert_ill_formed(Q "><identity category='client' type='pc'/>"
                        "<x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE' "
                        "type='hidden'><value>urn:x</value></field></x>"
                        "<x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE' "
                        "type='hidden'><value>urn:x</value></field></x></query>");
    assert_ill_formed(Q "><x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE' "
                        "type='hidden'><value>urn:x</value><value>urn:y</value></field></x>"
                        "</query>");
    assert_ill_formed(Q "><feature/></query>");
    assert_ill_formed(Q "><identity type='pc'/></query>");
}

/* The same name in two identities with different languages is not a duplicate. */
static void
test_identities_differ_by_name(void **state)
{
    (void)state;
    char ver[64];
    const char *xml = Q "><identity category='client' type='pc' name='A'/>"
                        "<identity category='client' type='pc' name='B'/></query>";
    assert_int_equal(mp_caps_compute(parse(xml), "sha-1", ver, sizeof ver), 28);
}

/* Other hashes of the IANA registry; unknown ones refused; a buffer too small. */
static void
test_hashes(void **state)
{
    (void)state;
    char ver[128];
    /* base64(sha256(S)) of §5.2's S, from Python's hashlib */
    assert_int_equal(mp_caps_compute(parse(simple), "sha-256", ver, sizeof ver), 44);
    assert_string_equal(ver, "Wr6IGEKhx6b9627gBmi/cCmpxXBc/GYq5zWuYfWGWoc=");
    assert_int_equal(mp_caps_compute(parse(simple), "md4", ver, sizeof ver), MP_EINVAL);
    assert_int_equal(mp_caps_compute(parse(simple), "sha-1", ver, 28), MP_ELIMIT);
    assert_int_equal(mp_caps_compute(parse(simple), "sha-1", ver, 29), 28);
}

static void
test_info(void **state)
{
    (void)state;
    mp_caps_info *ci = mp_caps_info_new(parse(complex_));
    assert_non_null(ci);
    assert_int_equal(mp_caps_info_count(ci), 4);
    assert_true(mp_caps_info_has(ci, "http://jabber.org/protocol/muc"));
    assert_true(mp_caps_info_has(ci, "http://jabber.org/protocol/caps"));
    assert_false(mp_caps_info_has(ci, "http://jabber.org/protocol/tune+notify"));
    assert_false(mp_caps_info_has(ci, "Psi 0.11"));
    mp_caps_info_free(ci);
    ci = mp_caps_info_new(parse(Q "/>"));
    assert_non_null(ci);
    assert_int_equal(mp_caps_info_count(ci), 0);
    assert_false(mp_caps_info_has(ci, "x"));
    mp_caps_info_free(ci);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple_example),
        cmocka_unit_test(test_complex_example),
        cmocka_unit_test(test_same_as_server_ver),
        cmocka_unit_test(test_form_not_hidden_ignored),
        cmocka_unit_test(test_ill_formed),
        cmocka_unit_test(test_identities_differ_by_name),
        cmocka_unit_test(test_hashes),
        cmocka_unit_test(test_info),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
