/* Element trees: parsing canonical stanzas (namespaces, xml:lang, escapes, CDATA), lookups,
 * canonical serialization as a fixed point, builders, malformed input, parser reuse. */
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
#include "xml/tree.h"

#define NS_C "jabber:client"
#define NS_XHTML_IM "http://jabber.org/protocol/xhtml-im"
#define NS_XHTML "http://www.w3.org/1999/xhtml"

typedef mp_test_xml fixture;

static int
parse(fixture *f, const char *ns, const char *s, mp_xnode **out)
{
    return mp_xml_parse(f->p, &f->a, ns, s, strlen(s), out);
}

/* Serialize n into a fresh NUL-terminated string in f->b. */
static const char *
ser(fixture *f, const mp_xnode *n, const char *parent_ns)
{
    f->b.len = 0;
    assert_int_equal(mp_xnode_serialize(&f->b, n, parent_ns), 0);
    assert_int_equal(mp_buf_append(&f->b, "", 1), 0);
    return f->b.data;
}

static const char stanza[] =
    "<message to='juliet@capulet.lit' from='romeo@montague.lit/orchard' type='chat' id='m1'"
    " xml:lang='en'>"
    "<body>Wherefore &amp; &lt;art&gt; thou? <![CDATA[<b>&x</b>]]> &#233;t&apos;&quot;</body>"
    "<html xmlns='" NS_XHTML_IM "'><body xmlns='" NS_XHTML "'><p>hi<em>you</em></p></body>"
    "</html>"
    "<x xmlns='jabber:x:data' xmlns:foo='urn:foo' foo:bar='b&amp;z' type='form'/>"
    "<thread>t1</thread>"
    "</message>";

static const char stanza_canon[] =
    "<message to='juliet@capulet.lit' from='romeo@montague.lit/orchard' type='chat' id='m1'"
    " xml:lang='en'>"
    "<body>Wherefore &amp; &lt;art&gt; thou? &lt;b&gt;&amp;x&lt;/b&gt; \xc3\xa9t'\"</body>"
    "<html xmlns='" NS_XHTML_IM "'><body xmlns='" NS_XHTML "'><p>hi<em>you</em></p></body>"
    "</html>"
    "<x xmlns='jabber:x:data' xmlns:a1='urn:foo' a1:bar='b&amp;z' type='form'/>"
    "<thread>t1</thread>"
    "</message>";

static void
test_parse_stanza(void **state)
{
    fixture *f = *state;
    mp_xnode *m;
    assert_int_equal(parse(f, NS_C, stanza, &m), 0);
    assert_non_null(m);
    assert_string_equal(m->name, "message");
    assert_string_equal(m->ns, NS_C);
    assert_null(m->parent);
    assert_null(m->next);
    assert_int_equal(m->nattrs, 5);
    assert_string_equal(mp_xnode_attr(m, "to"), "juliet@capulet.lit");
    assert_string_equal(mp_xnode_attr(m, "type"), "chat");
    assert_string_equal(mp_xnode_attr(m, "xml:lang"), "en");
    assert_null(mp_xnode_attr(m, "lang"));
    assert_null(mp_xnode_attr(m, "nope"));
    assert_string_equal(m->text, "");
    assert_int_equal(m->text_len, 0);

    mp_xnode *body = mp_xnode_child(m, NS_C, "body");
    assert_non_null(body);
    assert_ptr_equal(body->parent, m);
    assert_ptr_equal(m->children, body);
    const char *want = "Wherefore & <art> thou? <b>&x</b> \xc3\xa9t'\"";
    assert_string_equal(body->text, want);
    assert_int_equal(body->text_len, strlen(want));
    assert_null(body->children);

    mp_xnode *html = mp_xnode_child(m, NS_XHTML_IM, "html");
    assert_non_null(html);
    assert_ptr_equal(body->next, html);
    /* lookup by namespace does not confuse the two bodies */
    mp_xnode *xb = mp_xnode_child(html, NS_XHTML, "body");
    assert_non_null(xb);
    assert_null(mp_xnode_child(html, NS_C, "body"));
    assert_null(mp_xnode_child(m, NS_XHTML, "body"));
    mp_xnode *p = mp_xnode_child(xb, NULL, "p");
    assert_non_null(p);
    assert_string_equal(p->ns, NS_XHTML); /* inherited default namespace */
    assert_string_equal(p->text, "hi");
    assert_string_equal(mp_xnode_child(p, NULL, NULL)->text, "you");

    mp_xnode *x = mp_xnode_child(m, "jabber:x:data", NULL);
    assert_non_null(x);
    assert_string_equal(x->name, "x");
    assert_string_equal(mp_xnode_attr(x, "urn:foo\1bar"), "b&z");
    assert_string_equal(mp_xnode_attr(x, "type"), "form");
    assert_null(mp_xnode_attr(x, "bar"));

    mp_xnode *th = mp_xnode_child(m, NULL, "thread");
    assert_non_null(th);
    assert_null(th->next);
    assert_string_equal(th->text, "t1");
    assert_ptr_equal(mp_xnode_child(m, NULL, NULL), body);
    assert_null(mp_xnode_child(m, NULL, "nothing"));
}

static void
test_serialize_fixed_point(void **state)
{
    fixture *f = *state;
    mp_xnode *m, *m2;
    assert_int_equal(parse(f, NS_C, stanza, &m), 0);
    const char *s1 = ser(f, m, NS_C);
    assert_string_equal(s1, stanza_canon);

    char *copy = strdup(s1);
    assert_non_null(copy);
    assert_int_equal(parse(f, NS_C, copy, &m2), 0);
    assert_string_equal(ser(f, m2, NS_C), copy);
    free(copy);

    /* outside its content namespace the root declares it */
    const char *s0 = ser(f, m, "");
    assert_memory_equal(s0, "<message xmlns='jabber:client' to=", 34);

    /* a subtree serialized on its own, under its parent's namespace */
    mp_xnode *xb = mp_xnode_child(mp_xnode_child(m, NS_XHTML_IM, "html"), NS_XHTML, "body");
    assert_string_equal(ser(f, xb, NS_XHTML_IM),
                        "<body xmlns='" NS_XHTML "'><p>hi<em>you</em></p></body>");
    assert_string_equal(ser(f, xb, NS_XHTML), "<body><p>hi<em>you</em></p></body>");
}

static void
test_text_and_children(void **state)
{
    fixture *f = *state;
    mp_xnode *n;
    assert_int_equal(parse(f, NS_C, "<a>x<b>y<c/>w</b>z</a>", &n), 0);
    assert_string_equal(n->text, "xz");
    mp_xnode *b = n->children;
    assert_string_equal(b->text, "yw");
    assert_string_equal(b->children->text, "");
    assert_null(b->children->children);
    /* the tree keeps direct text but not its position: text comes first */
    assert_string_equal(ser(f, n, NS_C), "<a>xz<b>yw<c/></b></a>");

    /* whitespace around the element is allowed, the way a stored stanza may carry it */
    assert_int_equal(parse(f, NS_C, "\n <a>\n</a>\r\n", &n), 0);
    assert_string_equal(n->text, "\n");
    assert_string_equal(ser(f, n, NS_C), "<a>\n</a>");

    /* \r in text survives as a character reference */
    assert_int_equal(parse(f, NS_C, "<a>1&#13;2</a>", &n), 0);
    assert_string_equal(n->text, "1\r2");
    assert_string_equal(ser(f, n, NS_C), "<a>1&#13;2</a>");
}

static void
test_namespaces(void **state)
{
    fixture *f = *state;
    mp_xnode *n;
    /* no namespace at all */
    assert_int_equal(parse(f, "", "<a><b/></a>", &n), 0);
    assert_string_equal(n->ns, "");
    assert_string_equal(n->children->ns, "");
    assert_string_equal(ser(f, n, ""), "<a><b/></a>");
    assert_string_equal(ser(f, n, NS_C), "<a xmlns=''><b/></a>");

    /* undeclared default inside the content namespace */
    assert_int_equal(parse(f, NS_C, "<a><b xmlns=''><c/></b></a>", &n), 0);
    assert_string_equal(n->ns, NS_C);
    assert_string_equal(n->children->ns, "");
    assert_string_equal(n->children->children->ns, "");
    assert_string_equal(ser(f, n, NS_C), "<a><b xmlns=''><c/></b></a>");

    /* prefixed elements become default-namespaced ones */
    assert_int_equal(parse(f, NS_C, "<p:a xmlns:p='urn:p'><p:b/><c/></p:a>", &n), 0);
    assert_string_equal(n->ns, "urn:p");
    assert_string_equal(n->name, "a");
    assert_string_equal(n->children->ns, "urn:p");
    assert_string_equal(n->children->next->ns, NS_C);
    assert_string_equal(ser(f, n, NS_C), "<a xmlns='urn:p'><b/><c xmlns='jabber:client'/></a>");

    /* two namespaced attributes sharing a URI share a prefix; others get the next one */
    assert_int_equal(parse(f, NS_C,
                           "<a xmlns:x='urn:x' xmlns:y='urn:y' x:one='1' y:two='2' x:three='3'"
                           " plain='p' xml:space='preserve'/>",
                           &n),
                     0);
    assert_int_equal(n->nattrs, 5);
    assert_string_equal(mp_xnode_attr(n, "urn:x\1one"), "1");
    assert_string_equal(mp_xnode_attr(n, "urn:y\1two"), "2");
    assert_string_equal(mp_xnode_attr(n, "urn:x\1three"), "3");
    assert_string_equal(mp_xnode_attr(n, "xml:space"), "preserve");
    const char *want = "<a xmlns:a1='urn:x' a1:one='1' xmlns:a2='urn:y' a2:two='2' a1:three='3'"
                       " plain='p' xml:space='preserve'/>";
    assert_string_equal(ser(f, n, NS_C), want);
    char *copy = strdup(want);
    assert_non_null(copy);
    assert_int_equal(parse(f, NS_C, copy, &n), 0);
    assert_string_equal(ser(f, n, NS_C), copy);
    free(copy);
}

static void
test_builders(void **state)
{
    fixture *f = *state;
    mp_arena *a = &f->a;
    mp_xnode *iq = mp_xnode_new(a, NS_C, "iq");
    assert_non_null(iq);
    assert_string_equal(iq->text, "");
    assert_int_equal(mp_xnode_set_attr(a, iq, "type", "get"), 0);
    assert_int_equal(mp_xnode_set_attr(a, iq, "id", "r1"), 0);
    assert_int_equal(mp_xnode_set_attr(a, iq, "type", "result"), 0); /* replaces */
    assert_int_equal(iq->nattrs, 2);
    assert_string_equal(mp_xnode_attr(iq, "type"), "result");

    mp_xnode *q = mp_xnode_new(a, "jabber:iq:roster", "query");
    assert_non_null(q);
    mp_xnode_append(iq, q);
    for (int i = 0; i < 3; i++) {
        mp_xnode *it = mp_xnode_new(a, "jabber:iq:roster", "item");
        assert_non_null(it);
        char jid[32];
        snprintf(jid, sizeof jid, "u%d@example.com", i);
        assert_int_equal(mp_xnode_set_attr(a, it, "jid", jid), 0);
        if (i == 1)
            assert_int_equal(mp_xnode_set_attr(a, it, "name", "O'Neil & <Co>\n"), 0);
        mp_xnode *g = mp_xnode_new(a, "jabber:iq:roster", "group");
        assert_non_null(g);
        assert_int_equal(mp_xnode_set_text(a, g, "Friends & <Family>", 18), 0);
        mp_xnode_append(it, g);
        mp_xnode_append(q, it);
    }
    mp_xnode *ping = mp_xnode_new(a, NULL, "none");
    assert_non_null(ping);
    assert_string_equal(ping->ns, "");
    mp_xnode_append(iq, ping);

    const char *want =
        "<iq type='result' id='r1'><query xmlns='jabber:iq:roster'>"
        "<item jid='u0@example.com'><group>Friends &amp; &lt;Family&gt;</group></item>"
        "<item jid='u1@example.com' name='O&apos;Neil &amp; &lt;Co&gt;&#10;'>"
        "<group>Friends &amp; &lt;Family&gt;</group></item>"
        "<item jid='u2@example.com'><group>Friends &amp; &lt;Family&gt;</group></item>"
        "</query><none xmlns=''/></iq>";
    assert_string_equal(ser(f, iq, NS_C), want);

    /* the bytes parse back to the same tree */
    char *copy = strdup(want);
    assert_non_null(copy);
    mp_xnode *back;
    assert_int_equal(parse(f, NS_C, copy, &back), 0);
    assert_string_equal(ser(f, back, NS_C), copy);
    free(copy);
    mp_xnode *it1 = mp_xnode_child(back->children, NULL, "item")->next;
    assert_string_equal(mp_xnode_attr(it1, "name"), "O'Neil & <Co>\n");

    /* many attributes, removal, namespaced and xml: attributes */
    mp_xnode *e = mp_xnode_new(a, "urn:e", "e");
    assert_non_null(e);
    for (int i = 0; i < 20; i++) {
        char name[8], val[8];
        snprintf(name, sizeof name, "k%d", i);
        snprintf(val, sizeof val, "%d", i);
        assert_int_equal(mp_xnode_set_attr(a, e, name, val), 0);
    }
    assert_int_equal(e->nattrs, 20);
    for (int i = 0; i < 20; i++) {
        char name[8], val[8];
        snprintf(name, sizeof name, "k%d", i);
        snprintf(val, sizeof val, "%d", i);
        assert_string_equal(mp_xnode_attr(e, name), val);
    }
    for (int i = 2; i < 20; i++) {
        char name[8];
        snprintf(name, sizeof name, "k%d", i);
        assert_int_equal(mp_xnode_set_attr(a, e, name, NULL), 0);
        assert_null(mp_xnode_attr(e, name));
    }
    assert_int_equal(mp_xnode_set_attr(a, e, "absent", NULL), 0);
    assert_int_equal(e->nattrs, 2);
    assert_int_equal(mp_xnode_set_attr(a, e, "urn:a\1x", "1"), 0);
    assert_int_equal(mp_xnode_set_attr(a, e, "xml:lang", "fr"), 0);
    assert_int_equal(mp_xnode_set_attr(a, e, "urn:b\1y", "2"), 0);
    assert_int_equal(mp_xnode_set_attr(a, e, "urn:a\1z", "3"), 0);
    assert_int_equal(mp_xnode_set_text(a, e, "", 0), 0);
    assert_string_equal(ser(f, e, NS_C),
                        "<e xmlns='urn:e' k0='0' k1='1' xmlns:a1='urn:a' a1:x='1' xml:lang='fr'"
                        " xmlns:a2='urn:b' a2:y='2' a1:z='3'/>");
}

static void
test_malformed(void **state)
{
    fixture *f = *state;
    static const char *const bad[] = {
        "",
        "   ",
        "text",
        "<a>",
        "<a></b>",
        "<a/><b/>",
        "<a/>text",
        "text<a/>",
        "<a/><![CDATA[x]]>",
        "<a/></w><w>",
        "</w><w><a/>",
        "<!-- c --><a/>",
        "<a><!-- c --></a>",
        "<a><?pi x?></a>",
        "<?xml version='1.0'?><a/>",
        "<!DOCTYPE a><a/>",
        "<a>&foo;</a>",
        "<a b='1' b='2'/>",
        "<a xmlns:x='u' xmlns:y='u' x:b='1' y:b='2'/>",
        "<p:a/>",
        "<a>\xff</a>",
        "<a>\xc3</a>",
        "<a x='<'/>",
        "<a>&#0;</a>",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mp_xnode *n = (mp_xnode *)1;
        int rc = parse(f, NS_C, bad[i], &n);
        if (rc != MP_EINVAL)
            fail_msg("accepted or wrong code %d for \"%s\"", rc, bad[i]);
        assert_null(n);
        /* the parser is fine after every failure */
        assert_int_equal(parse(f, NS_C, "<ok/>", &n), 0);
        assert_string_equal(n->name, "ok");
    }
    /* an embedded NUL byte */
    mp_xnode *n;
    assert_int_equal(mp_xml_parse(f->p, &f->a, NS_C, "<a>\0</a>", 8, &n), MP_EINVAL);
    /* a length shorter than the string: only the prefix counts */
    assert_int_equal(mp_xml_parse(f->p, &f->a, NS_C, "<a/><b/>", 4, &n), 0);
    assert_string_equal(n->name, "a");
}

static void
test_reuse_with_reset(void **state)
{
    fixture *f = *state;
    size_t total = 0;
    for (int i = 0; i < 1000; i++) {
        char s[256];
        snprintf(s, sizeof s,
                 "<iq type='get' id='q%d'><query xmlns='jabber:iq:version'>%d</query></iq>", i, i);
        mp_xnode *n;
        assert_int_equal(parse(f, NS_C, s, &n), 0);
        char id[16], text[16];
        snprintf(id, sizeof id, "q%d", i);
        snprintf(text, sizeof text, "%d", i);
        assert_string_equal(mp_xnode_attr(n, "id"), id);
        mp_xnode *q = mp_xnode_child(n, "jabber:iq:version", "query");
        assert_non_null(q);
        assert_string_equal(q->text, text);
        assert_string_equal(ser(f, n, NS_C), s);
        mp_arena_reset(&f->a);
        if (i == 0)
            total = f->a.total;
        assert_int_equal(f->a.total, total); /* memory reused, not grown */
    }
}

/* Deep trees serialize without recursion. */
static void
test_deep(void **state)
{
    fixture *f = *state;
    enum { DEPTH = 20000 };
    mp_buf in = {0};
    for (int i = 0; i < DEPTH; i++)
        assert_int_equal(mp_buf_puts(&in, "<d>"), 0);
    for (int i = 0; i < DEPTH; i++)
        assert_int_equal(mp_buf_puts(&in, "</d>"), 0);
    mp_xnode *n;
    assert_int_equal(mp_xml_parse(f->p, &f->a, NS_C, in.data, in.len, &n), 0);
    int depth = 0;
    for (mp_xnode *c = n; c; c = c->children)
        depth++;
    assert_int_equal(depth, DEPTH);
    f->b.len = 0;
    assert_int_equal(mp_xnode_serialize(&f->b, n, NS_C), 0);
    /* the innermost is empty: <d/> replaces <d></d> */
    assert_int_equal(f->b.len, in.len - 3);
    mp_buf_free(&in);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_parse_stanza, mp_test_xml_setup, mp_test_xml_teardown),
        cmocka_unit_test_setup_teardown(test_serialize_fixed_point, mp_test_xml_setup,
                                        mp_test_xml_teardown),
        cmocka_unit_test_setup_teardown(test_text_and_children, mp_test_xml_setup,
                                        mp_test_xml_teardown),
        cmocka_unit_test_setup_teardown(test_namespaces, mp_test_xml_setup, mp_test_xml_teardown),
        cmocka_unit_test_setup_teardown(test_builders, mp_test_xml_setup, mp_test_xml_teardown),
        cmocka_unit_test_setup_teardown(test_malformed, mp_test_xml_setup, mp_test_xml_teardown),
        cmocka_unit_test_setup_teardown(test_reuse_with_reset, mp_test_xml_setup,
                                        mp_test_xml_teardown),
        cmocka_unit_test_setup_teardown(test_deep, mp_test_xml_setup, mp_test_xml_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
