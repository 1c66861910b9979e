/* The attribute reader services rely on when the core hands them stanzas they built or
 * delivers such stanzas: type, id and from are read from the start tag only, unescaped. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "router/component.h"

static int
attr(const char *xml, const char *name, char *out, size_t cap)
{
    return mp_start_tag_attr(xml, strlen(xml), name, out, cap);
}

static void
test_reads_start_tag_only(void **state)
{
    char v[64];
    assert_int_equal(
        attr("<message type='groupchat' id='a1'><body type='x'/></message>", "type", v, sizeof v),
        9);
    assert_string_equal(v, "groupchat");
    assert_int_equal(attr("<message id='a1'><body type='x'/></message>", "type", v, sizeof v), -1);
    assert_int_equal(attr("<iq id=\"q\" type=\"result\"/>", "type", v, sizeof v), 6);
    assert_string_equal(v, "result");
}

static void
test_name_must_match_whole(void **state)
{
    char v[64];
    /* xml:type or mytype are other attributes; a value containing " type='" is a value. */
    assert_int_equal(attr("<message mytype='a' x=\" type='b'\" type='c'/>", "type", v, sizeof v),
                     1);
    assert_string_equal(v, "c");
}

static void
test_unescapes(void **state)
{
    char v[64];
    assert_int_equal(attr("<presence from='a&amp;b&apos;c&#x41;&#233;' />", "from", v, sizeof v),
                     8);
    assert_string_equal(v, "a&b'cA\xc3\xa9");
}

static void
test_too_long_is_absent(void **state)
{
    char v[4];
    assert_int_equal(attr("<iq id='abcdef'/>", "id", v, sizeof v), -1);
    assert_int_equal(attr("<iq id='abc'/>", "id", v, sizeof v), 3);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reads_start_tag_only),
        cmocka_unit_test(test_name_must_match_whole),
        cmocka_unit_test(test_unescapes),
        cmocka_unit_test(test_too_long_is_absent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
