/* Push notifications (XEP-0357): the <enable/> read, the summary form published to the app
 * server (body only when allowed, cut at a UTF-8 boundary), which messages notify. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "modules/push.h"
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
parse_n(const char *xml, size_t len)
{
    mp_xnode *n = NULL;
    assert_int_equal(mp_xml_parse(parser, &arena, "jabber:client", xml, len, &n), 0);
    return n;
}

static mp_xnode *
parse(const char *xml)
{
    return parse_n(xml, strlen(xml));
}

/* The value of the summary field var, NULL when absent. */
static const char *
summary_field(const mp_xnode *pubsub, const char *var)
{
    const mp_xnode *n = mp_xnode_child(pubsub, MP_NS_PUBSUB, "publish");
    assert_non_null(n);
    n = mp_xnode_child(n, MP_NS_PUBSUB, "item");
    assert_non_null(n);
    n = mp_xnode_child(n, MP_NS_PUSH, "notification");
    assert_non_null(n);
    n = mp_xnode_child(n, MP_NS_DATA, "x");
    assert_non_null(n);
    for (const mp_xnode *f = n->children; f; f = f->next) {
        const char *v = mp_xnode_attr(f, "var");
        if (v && strcmp(v, var) == 0) {
            const mp_xnode *val = mp_xnode_child(f, MP_NS_DATA, "value");
            assert_non_null(val);
            return val->text;
        }
    }
    return NULL;
}

static void
test_summary_without_body(void **state)
{
    (void)state;
    mp_buf b = {0};
    assert_int_equal(mp_push_payload(&b, "yxs32uqsflafdk3iuqo", 3, "juliet@capulet.example/balcony",
                                     NULL, NULL, 0),
                     0);
    mp_xnode *ps = parse_n(b.data, b.len);
    assert_string_equal(ps->ns, MP_NS_PUBSUB);
    assert_string_equal(ps->name, "pubsub");
    const mp_xnode *pub = mp_xnode_child(ps, MP_NS_PUBSUB, "publish");
    assert_string_equal(mp_xnode_attr(pub, "node"), "yxs32uqsflafdk3iuqo");
    assert_string_equal(summary_field(ps, "FORM_TYPE"), MP_PUSH_SUMMARY);
    assert_string_equal(summary_field(ps, "message-count"), "3");
    assert_string_equal(summary_field(ps, "last-message-sender"), "juliet@capulet.example/balcony");
    assert_null(summary_field(ps, "last-message-body"));
    assert_null(mp_xnode_child(ps, MP_NS_PUBSUB, "publish-options"));
    assert_null(memmem(b.data, b.len, "body", 4));
    mp_buf_free(&b);
}

static void
test_summary_with_body_and_options(void **state)
{
    (void)state;
    static const char opts[] = "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'>"
                               "<value>http://jabber.org/protocol/pubsub#publish-options</value>"
                               "</field><field var='secret'><value>eruio234vzxc2kla-91"
                               "</value></field></x>";
    mp_buf b = {0};
    assert_int_equal(mp_push_payload(&b, "n<&'", 1, "romeo@montague.example",
                                     "Wherefore art thou <Romeo> & ...", opts, strlen(opts)),
                     0);
    mp_xnode *ps = parse_n(b.data, b.len);
    assert_string_equal(mp_xnode_attr(mp_xnode_child(ps, MP_NS_PUBSUB, "publish"), "node"), "n<&'");
    assert_string_equal(summary_field(ps, "last-message-body"), "Wherefore art thou <Romeo> & ...");
    const mp_xnode *po = mp_xnode_child(ps, MP_NS_PUBSUB, "publish-options");
    assert_non_null(po);
    const mp_xnode *x = mp_xnode_child(po, MP_NS_DATA, "x");
    assert_non_null(x);
    int secret = 0;
    for (const mp_xnode *f = x->children; f; f = f->next)
        if (strcmp(mp_xnode_attr(f, "var"), "secret") == 0)
            secret =
                strcmp(mp_xnode_child(f, MP_NS_DATA, "value")->text, "eruio234vzxc2kla-91") == 0;
    assert_true(secret);
    mp_buf_free(&b);
}

/* A long body is cut to MP_PUSH_BODY_MAX bytes without splitting a character. */
static void
test_body_cut_at_utf8_boundary(void **state)
{
    (void)state;
    char body[MP_PUSH_BODY_MAX + 64];
    size_t n = 0;
    body[n++] = 'a'; /* so the two-byte characters straddle the limit */
    while (n + 2 < sizeof body) {
        body[n++] = (char)0xc3;
        body[n++] = (char)0xa9; /* é */
    }
    body[n] = '\0';
    mp_buf b = {0};
    assert_int_equal(mp_push_payload(&b, "n", 1, NULL, body, NULL, 0), 0);
    mp_xnode *ps = parse_n(b.data, b.len);
    const char *got = summary_field(ps, "last-message-body");
    assert_null(summary_field(ps, "last-message-sender"));
    assert_int_equal(strlen(got), MP_PUSH_BODY_MAX - 1);
    assert_memory_equal(got, body, MP_PUSH_BODY_MAX - 1);
    mp_buf_free(&b);
}

static void
test_enable_plain(void **state)
{
    (void)state;
    mp_push_enable e;
    assert_int_equal(mp_push_enable_read(&arena,
                                         parse("<enable xmlns='urn:xmpp:push:0' "
                                               "jid='Push.Example.NET/App' node='yxs32'/>"),
                                         &e),
                     0);
    assert_string_equal(e.jid, "push.example.net/App"); /* prepared */
    assert_string_equal(e.node, "yxs32");
    assert_int_equal(e.options.len, 0);
    assert_false(e.want_body);
    mp_buf_free(&e.options);
}

static void
test_enable_with_options(void **state)
{
    (void)state;
    mp_push_enable e;
    const char *xml =
        "<enable xmlns='urn:xmpp:push:0' jid='push.example.net' node='yxs32'>"
        "<x xmlns='jabber:x:data' type='submit'>"
        "<field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#publish-options</value>"
        "</field><field var='secret'><value>eruio234vzxc2kla-91</value></field>"
        "<field var='include-body'><value>true</value></field></x></enable>";
    assert_int_equal(mp_push_enable_read(&arena, parse(xml), &e), 0);
    assert_true(e.want_body);
    assert_true(e.options.len > 0);
    /* the form kept for the app server: FORM_TYPE and secret, not our include-body */
    mp_xnode *x = parse_n(e.options.data, e.options.len);
    assert_string_equal(x->ns, MP_NS_DATA);
    assert_string_equal(mp_xnode_attr(x, "type"), "submit");
    int n = 0, secret = 0;
    for (const mp_xnode *f = x->children; f; f = f->next, n++)
        secret |= strcmp(mp_xnode_attr(f, "var"), "secret") == 0;
    assert_int_equal(n, 2);
    assert_true(secret);
    assert_null(memmem(e.options.data, e.options.len, "include-body", 12));
    mp_buf_free(&e.options);

    /* a form with nothing but the opt-in is not sent along */
    xml = "<enable xmlns='urn:xmpp:push:0' jid='push.example.net' node='yxs32'>"
          "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'>"
          "<value>http://jabber.org/protocol/pubsub#publish-options</value></field>"
          "<field var='include-body'><value>1</value></field></x></enable>";
    assert_int_equal(mp_push_enable_read(&arena, parse(xml), &e), 0);
    assert_true(e.want_body);
    assert_int_equal(e.options.len, 0);
    mp_buf_free(&e.options);
}

static void
assert_enable_refused(const char *xml)
{
    mp_push_enable e;
    assert_int_equal(mp_push_enable_read(&arena, parse(xml), &e), MP_EINVAL);
    assert_null(e.options.data);
}

static void
test_enable_refused(void **state)
{
    (void)state;
    assert_enable_refused("<enable xmlns='urn:xmpp:push:0' node='n'/>");
    assert_enable_refused("<enable xmlns='urn:xmpp:push:0' jid='push.example.net'/>");
    assert_enable_refused("<enable xmlns='urn:xmpp:push:0' jid='push.example.net' node=''/>");
    assert_enable_refused("<enable xmlns='urn:xmpp:push:0' jid='a@@b' node='n'/>");
    /* a form of another type, or without FORM_TYPE, or not a submission */
    assert_enable_refused("<enable xmlns='urn:xmpp:push:0' jid='p.example' node='n'>"
                          "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'>"
                          "<value>urn:other</value></field></x></enable>");
    assert_enable_refused("<enable xmlns='urn:xmpp:push:0' jid='p.example' node='n'>"
                          "<x xmlns='jabber:x:data' type='submit'><field var='secret'>"
                          "<value>s</value></field></x></enable>");
    assert_enable_refused("<enable xmlns='urn:xmpp:push:0' jid='p.example' node='n'>"
                          "<x xmlns='jabber:x:data' type='form'><field var='FORM_TYPE'>"
                          "<value>http://jabber.org/protocol/pubsub#publish-options</value>"
                          "</field></x></enable>");
}

static void
test_message_text(void **state)
{
    (void)state;
    int enc;
    assert_string_equal(
        mp_push_message_text(parse("<message type='chat'><body>hi</body></message>"), &enc), "hi");
    assert_false(enc);
    /* chat states and receipts alone wake nobody */
    assert_null(mp_push_message_text(
        parse("<message type='chat'><active xmlns='http://jabber.org/protocol/chatstates'/>"
              "</message>"),
        &enc));
    assert_null(mp_push_message_text(
        parse("<message><received xmlns='urn:xmpp:receipts' id='x'/></message>"), &enc));
    assert_null(mp_push_message_text(parse("<message><body/></message>"), &enc));
    /* OMEMO without a fallback body: notify, with no text */
    const char *t = mp_push_message_text(
        parse("<message><encrypted xmlns='eu.siacs.conversations.axolotl'><payload>AAA"
              "</payload></encrypted></message>"),
        &enc);
    assert_non_null(t);
    assert_string_equal(t, "");
    assert_true(enc);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_summary_without_body),
        cmocka_unit_test(test_summary_with_body_and_options),
        cmocka_unit_test(test_body_cut_at_utf8_boundary),
        cmocka_unit_test(test_enable_plain),
        cmocka_unit_test(test_enable_with_options),
        cmocka_unit_test(test_enable_refused),
        cmocka_unit_test(test_message_text),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
