/* Privacy lists (XEP-0016): list evaluation row by row (JID matching in its four forms, order,
 * stanza kinds, subscription and group items with the roster loaded only when needed), the
 * parser's refusals of malformed lists, and the account document's round trip. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/err.h"
#include "router/privacy.h"
#include "router/subscription.h"
#include "xmpp/jid.h"

static mp_xml_parser *parser;
static mp_arena arena;

static int
setup(void **state)
{
    parser = mp_xml_parser_new();
    mp_arena_init(&arena, 4096);
    return parser ? 0 : -1;
}

static int
teardown(void **state)
{
    mp_xml_parser_free(parser);
    mp_arena_free(&arena);
    return 0;
}

static mp_xnode *
xml(const char *s)
{
    mp_xnode *n = NULL;
    assert_int_equal(mp_xml_parse(parser, &arena, MP_NS_PRIVACY, s, strlen(s), &n), 0);
    return n;
}

static mp_privacy_list *
list(const char *s)
{
    mp_privacy_list *l = NULL;
    assert_int_equal(mp_privacy_list_parse(xml(s), &l), 0);
    assert_non_null(l);
    return l;
}

/* ---- evaluation ---- */

typedef struct fake_roster {
    int sub;
    const char *groups[3];
    int loads;
} fake_roster;

static int
fake_load(mp_privacy_roster *r, void *ud)
{
    fake_roster *f = ud;
    f->loads++;
    r->sub = f->sub;
    r->groups = (char **)f->groups;
    r->ngroups = 0;
    while (r->ngroups < 3 && f->groups[r->ngroups])
        r->ngroups++;
    return 0;
}

#define DENY_MSG(v) "<item type='jid' value='" v "' action='deny' order='1'><message/></item>"

static const struct eval_row {
    const char *items; /* inside <list name='l'> */
    int what;
    const char *peer;
    int sub; /* the peer's roster item, -1: not in the roster */
    const char *group;
    int deny;
} eval_rows[] = {
    /* <user@domain/resource>: only that full JID */
    {DENY_MSG("bob@x/phone"), MP_PRIV_MESSAGE, "bob@x/phone", -1, NULL, 1},
    {DENY_MSG("bob@x/phone"), MP_PRIV_MESSAGE, "bob@x/laptop", -1, NULL, 0},
    {DENY_MSG("bob@x/phone"), MP_PRIV_MESSAGE, "bob@x", -1, NULL, 0},
    /* <user@domain>: any resource of it */
    {DENY_MSG("bob@x"), MP_PRIV_MESSAGE, "bob@x/laptop", -1, NULL, 1},
    {DENY_MSG("bob@x"), MP_PRIV_MESSAGE, "bob@x", -1, NULL, 1},
    {DENY_MSG("bob@x"), MP_PRIV_MESSAGE, "carol@x/laptop", -1, NULL, 0},
    {DENY_MSG("bob@x"), MP_PRIV_MESSAGE, "bob@y/laptop", -1, NULL, 0},
    /* <domain/resource>: that resource at that domain */
    {DENY_MSG("x/r"), MP_PRIV_MESSAGE, "x/r", -1, NULL, 1},
    {DENY_MSG("x/r"), MP_PRIV_MESSAGE, "bob@x/r", -1, NULL, 1},
    {DENY_MSG("x/r"), MP_PRIV_MESSAGE, "x/s", -1, NULL, 0},
    {DENY_MSG("x/r"), MP_PRIV_MESSAGE, "x", -1, NULL, 0},
    /* <domain>: the domain and everything at it */
    {DENY_MSG("x"), MP_PRIV_MESSAGE, "x", -1, NULL, 1},
    {DENY_MSG("x"), MP_PRIV_MESSAGE, "bob@x/r", -1, NULL, 1},
    {DENY_MSG("x"), MP_PRIV_MESSAGE, "y", -1, NULL, 0},
    {DENY_MSG("x"), MP_PRIV_MESSAGE, "x.y", -1, NULL, 0},
    /* values are prepared like JIDs */
    {DENY_MSG("Bob@X"), MP_PRIV_MESSAGE, "bob@x/r", -1, NULL, 1},
    /* first match by order wins, whatever the document order */
    {"<item action='deny' order='9'/><item type='jid' value='bob@x' action='allow' order='3'/>",
     MP_PRIV_MESSAGE, "bob@x/r", -1, NULL, 0},
    {"<item action='deny' order='9'/><item type='jid' value='bob@x' action='allow' order='3'/>",
     MP_PRIV_MESSAGE, "carol@x/r", -1, NULL, 1},
    {"<item action='allow' order='1'/><item type='jid' value='bob@x' action='deny' order='2'/>",
     MP_PRIV_MESSAGE, "bob@x/r", -1, NULL, 0},
    /* no match: allowed */
    {"<item type='jid' value='bob@x' action='deny' order='1'/>", MP_PRIV_IQ, "carol@x", -1, NULL,
     0},
    /* the kinds an item names */
    {DENY_MSG("bob@x"), MP_PRIV_IQ, "bob@x", -1, NULL, 0},
    {DENY_MSG("bob@x"), MP_PRIV_PIN, "bob@x", -1, NULL, 0},
    {DENY_MSG("bob@x"), MP_PRIV_OTHER, "bob@x", -1, NULL, 0},
    {"<item action='deny' order='1'><iq/></item>", MP_PRIV_IQ, "bob@x", -1, NULL, 1},
    {"<item action='deny' order='1'><iq/></item>", MP_PRIV_MESSAGE, "bob@x", -1, NULL, 0},
    {"<item action='deny' order='1'><presence-in/></item>", MP_PRIV_PIN, "bob@x", -1, NULL, 1},
    {"<item action='deny' order='1'><presence-in/></item>", MP_PRIV_POUT, "bob@x", -1, NULL, 0},
    {"<item action='deny' order='1'><presence-out/></item>", MP_PRIV_POUT, "bob@x", -1, NULL, 1},
    {"<item action='deny' order='1'><presence-out/></item>", MP_PRIV_PIN, "bob@x", -1, NULL, 0},
    {"<item action='deny' order='1'><presence-out/></item>", MP_PRIV_MESSAGE, "bob@x", -1, NULL, 0},
    {"<item action='deny' order='1'><message/><presence-in/></item>", MP_PRIV_PIN, "bob@x", -1,
     NULL, 1},
    /* four children are not "everything": subscriptions and outgoing messages still pass */
    {"<item action='deny' order='1'><message/><iq/><presence-in/><presence-out/></item>",
     MP_PRIV_OTHER, "bob@x", -1, NULL, 0},
    /* no child: everything, both ways */
    {"<item type='jid' value='bob@x' action='deny' order='1'/>", MP_PRIV_OTHER, "bob@x/r", -1, NULL,
     1},
    {"<item type='jid' value='bob@x' action='deny' order='1'/>", MP_PRIV_POUT, "bob@x/r", -1, NULL,
     1},
    /* subscription: 'none' takes in those not in the roster */
    {"<item type='subscription' value='none' action='deny' order='1'/>", MP_PRIV_MESSAGE, "bob@x",
     -1, NULL, 1},
    {"<item type='subscription' value='none' action='deny' order='1'/>", MP_PRIV_MESSAGE, "bob@x",
     MP_SUB_NONE, NULL, 1},
    {"<item type='subscription' value='none' action='deny' order='1'/>", MP_PRIV_MESSAGE, "bob@x",
     MP_SUB_TO, NULL, 0},
    {"<item type='subscription' value='both' action='deny' order='1'/>", MP_PRIV_MESSAGE, "bob@x",
     MP_SUB_BOTH, NULL, 1},
    {"<item type='subscription' value='from' action='deny' order='1'/>", MP_PRIV_MESSAGE, "bob@x",
     MP_SUB_BOTH, NULL, 0},
    {"<item type='subscription' value='from' action='deny' order='1'/>", MP_PRIV_MESSAGE, "bob@x",
     MP_SUB_FROM, NULL, 1},
    {"<item type='subscription' value='to' action='deny' order='1'/>", MP_PRIV_MESSAGE, "bob@x",
     MP_SUB_TO, NULL, 1},
    /* group */
    {"<item type='group' value='Work' action='deny' order='1'/>", MP_PRIV_MESSAGE, "bob@x",
     MP_SUB_BOTH, "Work", 1},
    {"<item type='group' value='Work' action='deny' order='1'/>", MP_PRIV_MESSAGE, "bob@x",
     MP_SUB_BOTH, "work", 0},
    {"<item type='group' value='Work' action='deny' order='1'/>", MP_PRIV_MESSAGE, "bob@x", -1,
     NULL, 0},
    {"<item type='group' value='Friends' action='allow' order='1'/><item action='deny' "
     "order='2'/>",
     MP_PRIV_PIN, "bob@x", MP_SUB_BOTH, "Friends", 0},
    {"<item type='group' value='Friends' action='allow' order='1'/><item action='deny' "
     "order='2'/>",
     MP_PRIV_PIN, "carol@x", MP_SUB_BOTH, "Work", 1},
    /* an empty list allows everything */
    {"", MP_PRIV_MESSAGE, "bob@x", -1, NULL, 0},
};

static void
test_eval_rows(void **state)
{
    for (size_t i = 0; i < sizeof eval_rows / sizeof eval_rows[0]; i++) {
        const struct eval_row *row = &eval_rows[i];
        char doc[1024];
        snprintf(doc, sizeof doc, "<list name='l'>%s</list>", row->items);
        mp_privacy_list *l = list(doc);
        mp_jid peer;
        assert_int_equal(mp_jid_prep(row->peer, strlen(row->peer), &peer), 0);
        fake_roster f = {.sub = row->sub < 0 ? 0 : row->sub, .groups = {row->group}};
        mp_privacy_roster r = {.load = fake_load, .ud = &f};
        int got = mp_privacy_eval(l, row->what, &peer, &r);
        if (got != row->deny)
            fail_msg("row %zu (%s, what %d, peer %s): got %d, want %d", i, row->items, row->what,
                     row->peer, got, row->deny);
        assert_true(f.loads <= 1);
        mp_privacy_list_free(l);
        mp_arena_reset(&arena);
    }
}

/* The roster is read only when an item needs it, once per evaluation. */
static void
test_roster_loaded_lazily(void **state)
{
    mp_jid bob;
    assert_int_equal(mp_jid_prep("bob@x/r", 7, &bob), 0);
    mp_privacy_list *l = list("<list name='l'><item type='jid' value='bob@x' action='deny' "
                              "order='1'/><item type='group' value='G' action='deny' order='2'/>"
                              "<item type='subscription' value='none' action='deny' order='3'/>"
                              "</list>");
    assert_true(l->needs_roster);
    fake_roster f = {.sub = MP_SUB_BOTH};
    mp_privacy_roster r = {.load = fake_load, .ud = &f};
    assert_int_equal(mp_privacy_eval(l, MP_PRIV_MESSAGE, &bob, &r), 1);
    assert_int_equal(f.loads, 0); /* decided by the JID item */
    mp_jid carol;
    assert_int_equal(mp_jid_prep("carol@x", 7, &carol), 0);
    mp_privacy_roster r2 = {.load = fake_load, .ud = &f};
    assert_int_equal(mp_privacy_eval(l, MP_PRIV_MESSAGE, &carol, &r2), 0);
    assert_int_equal(f.loads, 1); /* group and subscription items share one load */
    mp_privacy_list_free(l);

    l = list("<list name='l'><item type='jid' value='bob@x' action='deny' order='1'/></list>");
    assert_false(l->needs_roster);
    assert_int_equal(mp_privacy_eval(l, MP_PRIV_MESSAGE, &bob, NULL), 1);
    mp_privacy_list_free(l);
}

/* ---- malformed lists ---- */

static const char *const bad_lists[] = {
    "<list/>",
    "<list name=''><item action='deny' order='1'/></list>",
    "<list name='l'><item order='1'/></list>",
    "<list name='l'><item action='deny'/></list>",
    "<list name='l'><item action='block' order='1'/></list>",
    "<list name='l'><item action='deny' order='-1'/></list>",
    "<list name='l'><item action='deny' order='1x'/></list>",
    "<list name='l'><item action='deny' order=''/></list>",
    "<list name='l'><item action='deny' order='4294967296'/></list>",
    "<list name='l'><item action='deny' order='1'/><item action='allow' order='1'/></list>",
    "<list name='l'><item type='fish' value='x' action='deny' order='1'/></list>",
    "<list name='l'><item type='jid' action='deny' order='1'/></list>",
    "<list name='l'><item type='jid' value='@x' action='deny' order='1'/></list>",
    "<list name='l'><item type='jid' value='a@' action='deny' order='1'/></list>",
    "<list name='l'><item type='subscription' value='maybe' action='deny' order='1'/></list>",
    "<list name='l'><item type='group' value='' action='deny' order='1'/></list>",
    "<list name='l'><item value='bob@x' action='deny' order='1'/></list>",
    "<list name='l'><item action='deny' order='1'><presence/></item></list>",
    "<list name='l'><item action='deny' order='1'><message xmlns='jabber:client'/></item></list>",
    "<list name='l'><thing action='deny' order='1'/></list>",
    "<list name='l'><item action='deny' order='1'/><item type='jid' value='x' order='2'/></list>",
};

static void
test_malformed(void **state)
{
    for (size_t i = 0; i < sizeof bad_lists / sizeof bad_lists[0]; i++) {
        mp_privacy_list *l = (mp_privacy_list *)1;
        int rc = mp_privacy_list_parse(xml(bad_lists[i]), &l);
        if (rc != MP_EINVAL)
            fail_msg("%s: got %d, want MP_EINVAL", bad_lists[i], rc);
        assert_null(l);
        mp_arena_reset(&arena);
    }
    /* not a <list/> of this namespace */
    mp_privacy_list *l;
    mp_xnode *n = NULL;
    const char *other = "<list xmlns='jabber:iq:roster' name='l'/>";
    assert_int_equal(mp_xml_parse(parser, &arena, "jabber:client", other, strlen(other), &n), 0);
    assert_int_equal(mp_privacy_list_parse(n, &l), MP_EINVAL);
}

static void
test_too_many_items(void **state)
{
    mp_buf b = {0};
    mp_buf_puts(&b, "<list name='big'>");
    for (int i = 0; i <= MP_PRIVACY_MAX_ITEMS; i++)
        mp_buf_printf(&b, "<item action='deny' order='%d'/>", i);
    mp_buf_puts(&b, "</list>");
    mp_xnode *n = NULL;
    assert_int_equal(mp_xml_parse(parser, &arena, MP_NS_PRIVACY, b.data, b.len, &n), 0);
    mp_privacy_list *l;
    assert_int_equal(mp_privacy_list_parse(n, &l), MP_ELIMIT);
    mp_buf_free(&b);
}

/* ---- the account document ---- */

static const char *const list_a =
    "<list name='a &amp; b'><item type='jid' value='Bob@X/Phone' action='deny' order='20'>"
    "<message/><presence-out/></item><item type='group' value='Work &lt;3' action='allow' "
    "order='10'/><item type='subscription' value='from' action='deny' order='30'><iq/></item>"
    "<item action='allow' order='40'/></list>";

static void
test_roundtrip(void **state)
{
    mp_privacy *p = calloc(1, sizeof *p);
    assert_non_null(p);
    mp_privacy_list *a = mp_privacy_put(p, list(list_a));
    mp_privacy_put(p, list("<list name='invisible'><item action='deny' order='1'>"
                           "<presence-out/></item></list>"));
    p->def = a;
    mp_buf one = {0}, two = {0};
    assert_int_equal(mp_privacy_serialize(p, &one), 0);
    mp_privacy *q;
    assert_int_equal(mp_privacy_parse(one.data, one.len, &q), 0);
    assert_non_null(q->def);
    assert_string_equal(q->def->name, "a & b");
    mp_privacy_list *qa = mp_privacy_find(q, "a & b");
    assert_ptr_equal(qa, q->def);
    assert_int_equal(qa->nitems, 4);
    /* sorted by order, values prepared */
    assert_int_equal(qa->items[0].order, 10);
    assert_string_equal(qa->items[0].value, "Work <3");
    assert_int_equal(qa->items[1].type, MP_PRIV_T_JID);
    assert_string_equal(qa->items[1].value, "bob@x/Phone");
    assert_int_equal(qa->items[1].what, MP_PRIV_MESSAGE | MP_PRIV_POUT);
    assert_int_equal(qa->items[2].sub, MP_SUB_FROM);
    assert_int_equal(qa->items[3].what, MP_PRIV_ALL);
    assert_non_null(mp_privacy_find(q, "invisible"));
    assert_null(mp_privacy_find(q, "visible"));
    assert_int_equal(mp_privacy_serialize(q, &two), 0);
    assert_int_equal(one.len, two.len);
    assert_memory_equal(one.data, two.data, one.len);

    /* replacing keeps the list's address (sessions applying it see the new items) */
    mp_privacy_list *same = mp_privacy_put(q, list("<list name='a &amp; b'><item action='deny' "
                                                   "order='1'/></list>"));
    assert_ptr_equal(same, qa);
    assert_int_equal(qa->nitems, 1);
    assert_false(qa->needs_roster);
    /* removing the default clears it */
    mp_privacy_remove(q, qa);
    assert_null(q->def);
    assert_null(mp_privacy_find(q, "a & b"));
    mp_privacy_free(q);
    mp_privacy_free(p);
    mp_buf_free(&one);
    mp_buf_free(&two);
}

static void
test_list_xml(void **state)
{
    mp_privacy_list *l = list(list_a);
    mp_xnode *x = mp_privacy_list_xml(&arena, l, 1);
    assert_non_null(x);
    mp_buf b = {0};
    assert_int_equal(mp_xnode_serialize(&b, x, MP_NS_PRIVACY), 0);
    assert_int_equal(mp_buf_append(&b, "", 1), 0);
    assert_non_null(strstr(b.data, "presence-out"));
    assert_non_null(strstr(b.data, "Work &lt;3"));
    /* the names alone for the names reply and pushes */
    mp_xnode *bare = mp_privacy_list_xml(&arena, l, 0);
    assert_null(bare->children);
    /* what it writes parses back to the same list */
    mp_privacy_list *again;
    assert_int_equal(mp_privacy_list_parse(x, &again), 0);
    assert_int_equal(again->nitems, l->nitems);
    for (size_t i = 0; i < l->nitems; i++) {
        assert_int_equal(again->items[i].order, l->items[i].order);
        assert_int_equal(again->items[i].what, l->items[i].what);
        assert_int_equal(again->items[i].deny, l->items[i].deny);
    }
    mp_privacy_list_free(again);
    mp_privacy_list_free(l);
    mp_buf_free(&b);
}

static void
test_bad_documents(void **state)
{
    static const char *const docs[] = {
        "<privacy xmlns='jabber:iq:roster'/>",
        "<privacy xmlns='jabber:iq:privacy' default='x'/>",
        "<privacy xmlns='jabber:iq:privacy'><list name='a'><item action='deny' order='1'/>"
        "</list><list name='a'><item action='deny' order='1'/></list></privacy>",
        "<privacy xmlns='jabber:iq:privacy'><list name='a'><item order='1'/></list></privacy>",
        "<privacy xmlns='jabber:iq:privacy'><list name='a'>",
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        mp_privacy *p = (mp_privacy *)1;
        assert_true(mp_privacy_parse(docs[i], strlen(docs[i]), &p) < 0);
        assert_null(p);
    }
    mp_privacy *p;
    const char *empty = "<privacy xmlns='jabber:iq:privacy'/>";
    assert_int_equal(mp_privacy_parse(empty, strlen(empty), &p), 0);
    assert_null(p->lists);
    assert_null(p->def);
    mp_privacy_free(p);
}

/* The blocklist view: jid items that deny everything. */
static void
test_block_items(void **state)
{
    mp_privacy_list *l = list("<list name='l'><item type='jid' value='a@x' action='deny' "
                              "order='1'/><item type='jid' value='b@x' action='deny' "
                              "order='2'><message/></item><item type='jid' value='c@x' "
                              "action='allow' order='3'/><item action='deny' order='4'/>"
                              "<item type='group' value='g' action='deny' order='5'/></list>");
    assert_true(mp_privacy_item_is_block(&l->items[0]));
    for (size_t i = 1; i < l->nitems; i++)
        assert_false(mp_privacy_item_is_block(&l->items[i]));
    mp_privacy_list_free(l);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_eval_rows),     cmocka_unit_test(test_roster_loaded_lazily),
        cmocka_unit_test(test_malformed),     cmocka_unit_test(test_too_many_items),
        cmocka_unit_test(test_roundtrip),     cmocka_unit_test(test_list_xml),
        cmocka_unit_test(test_bad_documents), cmocka_unit_test(test_block_items),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
