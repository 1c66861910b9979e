#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "router/caps.h"
#include "base/err.h"

/* XEP-0115 §5.2: "client/pc//Exodus 0.9.1<http://jabber.org/protocol/caps<..." */
static void
test_simple_example(void **state)
{
    (void)state;
    mp_caps_identity id = {"client", "pc", NULL, "Exodus 0.9.1"};
    /* given out of order: the algorithm sorts them */
    const char *feats[] = {
        "http://jabber.org/protocol/muc",
        "http://jabber.org/protocol/disco#info",
        "http://jabber.org/protocol/caps",
        "http://jabber.org/protocol/disco#items",
    };
    char ver[MP_CAPS_VER_MAX];
    int n = mp_caps_ver(&id, 1, feats, 4, ver, sizeof ver);
    assert_int_equal(n, 28);
    assert_string_equal(ver, "QgayPKawpkPSDYmwT/WM94uAlu0=");
}

/* §5.3's identities (without its extended form): sorted by category, type, then xml:lang, so
 * "el" comes before "en" although given after. Expected value from Python's hashlib. */
static void
test_identities_sorted_by_lang(void **state)
{
    (void)state;
    mp_caps_identity ids[] = {
        {"client", "pc", "en", "Psi 0.11"},
        {"client", "pc", "el", "\xce\xa8 0.11"},
    };
    const char *feats[] = {
        "http://jabber.org/protocol/disco#items",
        "http://jabber.org/protocol/muc",
        "http://jabber.org/protocol/caps",
        "http://jabber.org/protocol/disco#info",
    };
    char ver[MP_CAPS_VER_MAX];
    assert_int_equal(mp_caps_ver(ids, 2, feats, 4, ver, sizeof ver), 28);
    assert_string_equal(ver, "2ZC2Fe8xb+Ln321QG0/AaqNEfBU=");
}

static void
test_no_features(void **state)
{
    (void)state;
    mp_caps_identity id = {"server", "im", "", ""};
    char ver[MP_CAPS_VER_MAX];
    assert_int_equal(mp_caps_ver(&id, 1, NULL, 0, ver, sizeof ver), 28);
    assert_string_equal(ver, "JHtN+vA3PHxOw0JhN3k3Xjk5gi0=");
}

/* §5.4: duplicate features or identities make an answer ill-formed; we refuse to hash one. */
static void
test_duplicates_refused(void **state)
{
    (void)state;
    mp_caps_identity id = {"server", "im", NULL, "Magpie"};
    const char *feats[] = {"urn:xmpp:ping", "jabber:iq:version", "urn:xmpp:ping"};
    char ver[MP_CAPS_VER_MAX] = "unchanged";
    assert_int_equal(mp_caps_ver(&id, 1, feats, 3, ver, sizeof ver), MP_EINVAL);
    mp_caps_identity two[] = {{"server", "im", NULL, "A"}, {"server", "im", NULL, "B"}};
    assert_int_equal(mp_caps_ver(two, 2, feats, 2, ver, sizeof ver), MP_EINVAL);
    assert_string_equal(ver, "unchanged");
}

static void
test_small_buffer(void **state)
{
    (void)state;
    mp_caps_identity id = {"server", "im", NULL, "Magpie"};
    char ver[28];
    assert_int_equal(mp_caps_ver(&id, 1, NULL, 0, ver, sizeof ver), MP_ELIMIT);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple_example), cmocka_unit_test(test_identities_sorted_by_lang),
        cmocka_unit_test(test_no_features),    cmocka_unit_test(test_duplicates_refused),
        cmocka_unit_test(test_small_buffer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
