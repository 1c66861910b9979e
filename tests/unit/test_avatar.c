/* Avatar helpers: base64 as clients write it (line breaks inside, padding only at the end),
 * SHA-1 names, and the hash of a vCard's PHOTO. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/arena.h"
#include "base/err.h"
#include "xml/tree.h"
#include "xmpp/avatar.h"

static void
decodes(const char *b64, const char *want, size_t want_len)
{
    unsigned char *out = NULL;
    size_t n = 99;
    assert_int_equal(mp_avatar_decode(b64, strlen(b64), &out, &n), 0);
    assert_int_equal(n, want_len);
    assert_memory_equal(out, want, want_len);
    free(out);
}

static void
refuses(const char *b64)
{
    unsigned char *out = (unsigned char *)"x";
    size_t n = 99;
    assert_int_equal(mp_avatar_decode(b64, strlen(b64), &out, &n), MP_EINVAL);
    assert_null(out);
    assert_int_equal(n, 0);
}

static void
test_decode(void **state)
{
    (void)state;
    decodes("aGVsbG8=", "hello", 5);
    decodes("aGVsbG8h", "hello!", 6);
    decodes("aGVs", "hel", 3);
    decodes("aGk=", "hi", 2);
    decodes("aA==", "h", 1);
    decodes("aGVs\r\nbG8h\n", "hello!", 6); /* MIME line breaks, as vCard clients write */
    decodes(" aGVs bG8h\t", "hello!", 6);
    refuses("");
    refuses(" \n ");
    refuses("aGVsbG8");  /* not a multiple of 4 */
    refuses("aG=sbG8h"); /* '=' inside */
    refuses("aGVsbG=h"); /* '=' then a letter */
    refuses("aGVs*G8h"); /* not the alphabet */
    refuses("aGVsbG8===");
}

static void
test_hash(void **state)
{
    (void)state;
    char hex[MP_AVATAR_HASH_LEN + 1];
    assert_int_equal(mp_avatar_hash((const unsigned char *)"hello", 5, hex), 0);
    assert_string_equal(hex, "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d");
    assert_int_equal(mp_avatar_hash((const unsigned char *)"", 0, hex), 0);
    assert_string_equal(hex, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
}

static int
vcard_hash(const char *xml, char *hex)
{
    mp_arena a;
    mp_arena_init(&a, 1024);
    mp_xml_parser *p = mp_xml_parser_new();
    mp_xnode *card = NULL;
    assert_int_equal(mp_xml_parse(p, &a, "jabber:client", xml, strlen(xml), &card), 0);
    int rc = mp_vcard_photo_hash(card, hex);
    mp_xml_parser_free(p);
    mp_arena_free(&a);
    return rc;
}

static void
test_vcard_photo(void **state)
{
    (void)state;
    char hex[MP_AVATAR_HASH_LEN + 1];
    assert_int_equal(vcard_hash("<vCard xmlns='vcard-temp'><FN>A</FN><PHOTO><TYPE>image/png"
                                "</TYPE><BINVAL>aGVs\nbG8=</BINVAL></PHOTO></vCard>",
                                hex),
                     0);
    assert_string_equal(hex, "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d");
    /* none: "" */
    assert_int_equal(vcard_hash("<vCard xmlns='vcard-temp'><FN>A</FN></vCard>", hex), 0);
    assert_string_equal(hex, "");
    assert_int_equal(vcard_hash("<vCard xmlns='vcard-temp'><PHOTO><EXTVAL>https://x/y.png"
                                "</EXTVAL></PHOTO></vCard>",
                                hex),
                     0);
    assert_string_equal(hex, "");
    /* PHOTO of another namespace is not the vCard's */
    assert_int_equal(vcard_hash("<vCard xmlns='vcard-temp'><PHOTO xmlns='urn:x'><BINVAL>aGk="
                                "</BINVAL></PHOTO></vCard>",
                                hex),
                     0);
    assert_string_equal(hex, "");
    assert_int_equal(vcard_hash("<vCard xmlns='vcard-temp'><PHOTO><BINVAL>not base64!</BINVAL>"
                                "</PHOTO></vCard>",
                                hex),
                     MP_EINVAL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode),
        cmocka_unit_test(test_hash),
        cmocka_unit_test(test_vcard_photo),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
