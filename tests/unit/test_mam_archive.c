/* The pure parts of router/archive.c: what a message carries for the archive, forged stanza-ids
 * removed, the recipient's stanza-id added, XEP-0082 dates, query results. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "router/archive.h"
#include "xmpp/datetime.h"
#include "base/arena.h"
#include "base/err.h"
#include "xml/framer.h"

static mp_xnode *
parse(mp_xml_parser *p, mp_arena *a, const char *xml)
{
    mp_xnode *n = NULL;
    assert_int_equal(mp_xml_parse(p, a, MP_NS_CLIENT, xml, strlen(xml), &n), 0);
    return n;
}

static void
test_inspect(void **state)
{
    mp_xml_parser *p = mp_xml_parser_new();
    mp_arena a;
    mp_archive_msg m;
    mp_arena_init(&a, 4096);

    mp_xnode *msg = parse(p, &a,
                          "<message from='a@x/r' to='b@x'><body>hi</body><body>2nd</body>"
                          "<origin-id xmlns='urn:xmpp:sid:0' id='o1'/>"
                          "<stanza-id xmlns='urn:xmpp:sid:0' by='B@X' id='forged'/>"
                          "<stanza-id xmlns='urn:xmpp:sid:0' by='other.example' id='k'/>"
                          "<stanza-id xmlns='urn:xmpp:sid:0' by='a@x' id='forged2'/></message>");
    mp_archive_inspect(msg, "a@x", "b@x", 1, &m);
    assert_true(m.keep);
    assert_string_equal(m.body, "hi");
    assert_string_equal(m.origin_id, "o1");
    assert_int_equal(m.spoofed, 2);
    mp_buf b = {0};
    assert_int_equal(mp_xnode_serialize(&b, msg, MP_NS_CLIENT), 0);
    assert_null(memmem(b.data, b.len, "forged", 6));
    assert_non_null(memmem(b.data, b.len, "other.example", 13));
    assert_non_null(memmem(b.data, b.len, "o1", 2));
    /* counted but left in place without unlink */
    msg = parse(p, &a, "<message><stanza-id xmlns='urn:xmpp:sid:0' by='b@x' id='f'/></message>");
    mp_archive_inspect(msg, NULL, "b@x", 0, &m);
    assert_int_equal(m.spoofed, 1);
    assert_false(m.keep);
    assert_non_null(msg->children);

    msg = parse(p, &a,
                "<message><composing xmlns='http://jabber.org/protocol/chatstates'/>"
                "</message>");
    mp_archive_inspect(msg, "a@x", "b@x", 1, &m);
    assert_false(m.keep);
    msg = parse(p, &a, "<message><received xmlns='urn:xmpp:receipts' id='1'/></message>");
    mp_archive_inspect(msg, "a@x", "b@x", 1, &m);
    assert_true(m.keep);
    assert_null(m.body);
    msg = parse(p, &a, "<message><displayed xmlns='urn:xmpp:chat-markers:0' id='1'/></message>");
    mp_archive_inspect(msg, "a@x", "b@x", 1, &m);
    assert_true(m.keep);
    msg = parse(p, &a, "<message><markable xmlns='urn:xmpp:chat-markers:0'/></message>");
    mp_archive_inspect(msg, "a@x", "b@x", 1, &m);
    assert_false(m.keep);
    msg = parse(p, &a, "<message><body>x</body><no-store xmlns='urn:xmpp:hints'/></message>");
    mp_archive_inspect(msg, "a@x", "b@x", 1, &m);
    assert_false(m.keep);
    mp_buf_free(&b);
    mp_arena_free(&a);
    mp_xml_parser_free(p);
}

static void
test_add_stanza_id(void **state)
{
    mp_buf b = {0};
    const char *m = "<message to='b@x'><body>1</body></message>";
    assert_int_equal(mp_archive_add_stanza_id(&b, m, strlen(m), "b@x", "ID'1"), 0);
    assert_memory_equal(b.data,
                        "<message to='b@x'><body>1</body><stanza-id xmlns='urn:xmpp:sid:0' "
                        "by='b@x' id='ID&apos;1'/></message>",
                        b.len);
    b.len = 0;
    m = "<message to='b@x'/>";
    assert_int_equal(mp_archive_add_stanza_id(&b, m, strlen(m), "b@x", "Z"), 0);
    assert_memory_equal(b.data,
                        "<message to='b@x'><stanza-id xmlns='urn:xmpp:sid:0' by='b@x' "
                        "id='Z'/></message>",
                        b.len);
    b.len = 0;
    assert_int_equal(mp_archive_add_stanza_id(&b, "<message>", 9, "b@x", "Z"), MP_EINVAL);
    assert_int_equal(mp_archive_add_stanza_id(&b, "x", 1, "b@x", "Z"), MP_EINVAL);
    mp_buf_free(&b);
}

static void
test_time(void **state)
{
    int64_t us;
    char buf[40];
    assert_int_equal(mp_datetime_parse("1970-01-01T00:00:00Z", &us), 0);
    assert_int_equal(us, 0);
    assert_int_equal(mp_datetime_parse("2010-07-10T23:08:25.123456789Z", &us), 0);
    assert_int_equal(us, 1278803305123456LL);
    mp_datetime_format(us, buf, sizeof buf);
    assert_string_equal(buf, "2010-07-10T23:08:25.123456Z");
    assert_int_equal(mp_datetime_parse("2010-07-11T01:08:25.5+02:00", &us), 0);
    assert_int_equal(us, 1278803305500000LL);
    assert_int_equal(mp_datetime_parse("2000-02-29T00:00:00-00:00", &us), 0);
    assert_int_equal(mp_datetime_parse("1969-12-31T23:59:59.5Z", &us), 0);
    assert_int_equal(us, -500000);
    mp_datetime_format(us, buf, sizeof buf);
    assert_string_equal(buf, "1969-12-31T23:59:59.500000Z");
    static const char *const bad[] = {
        "",
        "yesterday",
        "2010-07-10",
        "2010-07-10T23:08:25",
        "2010-13-10T23:08:25Z",
        "2001-02-29T00:00:00Z",
        "2010-07-10T24:00:00Z",
        "2010-07-10T23:08:25.Z",
        "2010-07-10T23:08:25Zjunk",
        "2010-07-10T23:08:25+0200",
        "2010-07-10 23:08:25Z",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(mp_datetime_parse(bad[i], &us), MP_EINVAL);
}

static void
test_result(void **state)
{
    mp_buf b = {0};
    const char *stored = "<message from='a@x/r' to='b@x'><body>&lt;hi</body></message>";
    assert_int_equal(mp_archive_result(&b, "b@x/r", "b@x", "q&1", "ID", 0, stored, strlen(stored)),
                     0);
    assert_memory_equal(
        b.data,
        "<message to='b@x/r' from='b@x'><result xmlns='urn:xmpp:mam:2' queryid='q&amp;1' "
        "id='ID'><forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' "
        "stamp='1970-01-01T00:00:00.000000Z'/><message xmlns='jabber:client' from='a@x/r' "
        "to='b@x'><body>&lt;hi</body></message></forwarded></result></message>",
        b.len);
    /* a stanza that declares its namespace keeps one declaration */
    b.len = 0;
    stored = "<message xmlns='jabber:client'><body>x</body></message>";
    assert_int_equal(mp_archive_result(&b, "b@x/r", NULL, NULL, "ID", 0, stored, strlen(stored)),
                     0);
    const char *first = memmem(b.data, b.len, "xmlns='jabber:client'", 21);
    assert_non_null(first);
    assert_null(
        memmem(first + 1, b.len - (size_t)(first + 1 - b.data), "xmlns='jabber:client'", 21));
    mp_buf_free(&b);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_inspect),
        cmocka_unit_test(test_add_stanza_id),
        cmocka_unit_test(test_time),
        cmocka_unit_test(test_result),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
