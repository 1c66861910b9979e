/* SQLite storage of publish-subscribe (src/storage/sqlite/sqlite_pubsub.c): nodes, items in
 * publishing order with max_items, subscriptions, affiliations, and what survives a reopen. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "helpers.h"

#include <string.h>

#include "base/err.h"
#include "storage/store.h"

#define SVC "pubsub.example.org"

static int
setup(void **state)
{
    return mp_test_store_setup(state, "pubsub");
}

typedef struct seen {
    char ids[16][32];
    char payload[16][64];
    int n;
} seen;

static int
item_cb(const mp_ps_item *it, void *ud)
{
    seen *s = ud;
    assert_true(s->n < 16);
    snprintf(s->ids[s->n], sizeof s->ids[0], "%s", it->id);
    snprintf(s->payload[s->n], sizeof s->payload[0], "%.*s", (int)it->len, it->payload);
    s->n++;
    return 0;
}

static int
node_cb(const char *node, const char *config, size_t len, void *ud)
{
    seen *s = ud;
    snprintf(s->ids[s->n], sizeof s->ids[0], "%s", node);
    snprintf(s->payload[s->n], sizeof s->payload[0], "%.*s", (int)len, config);
    s->n++;
    return 0;
}

static void
put(mp_test_store *f, const char *svc, const char *node, const char *id, const char *payload,
    int64_t max)
{
    mp_ps_item it = {node, id, "a@example.org/r", payload, strlen(payload), 1};
    assert_int_equal(f->ops->ps_item_put(f->st, svc, node, &it, max), 0);
}

static void
test_nodes(void **state)
{
    mp_test_store *f = *state;
    seen s = {0};
    assert_int_equal(f->ops->ps_node_put(f->st, SVC, "b", "<x/>", 4, 1), 0);
    assert_int_equal(f->ops->ps_node_put(f->st, SVC, "a", "<y/>", 4, 1), 0);
    assert_int_equal(f->ops->ps_node_put(f->st, SVC, "a", "<z/>", 4, 1), MP_EEXIST);
    assert_int_equal(f->ops->ps_node_put(f->st, SVC, "c", "<z/>", 4, 0), MP_ENOTFOUND);
    assert_int_equal(f->ops->ps_node_put(f->st, SVC, "a", "<w/>", 4, 0), 0);
    assert_int_equal(f->ops->ps_node_get(f->st, SVC, NULL, node_cb, &s), 0);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.ids[0], "a");
    assert_string_equal(s.payload[0], "<w/>");
    assert_int_equal(f->ops->ps_node_get(f->st, SVC, "c", node_cb, &s), MP_ENOTFOUND);
    assert_int_equal(f->ops->ps_node_get(f->st, "other", NULL, node_cb, &s), 0);
    assert_int_equal(s.n, 2);
    /* deleting a node takes its items, subscriptions and affiliations */
    put(f, SVC, "a", "1", "<p/>", 0);
    mp_ps_sub sub = {"a", "b@example.org", "s1", MP_PS_SUB_SUBSCRIBED, "deliver=1"};
    assert_int_equal(f->ops->ps_sub_put(f->st, SVC, &sub), 0);
    assert_int_equal(f->ops->ps_aff_put(f->st, SVC, "a", "a@example.org", MP_PS_AFF_OWNER), 0);
    assert_int_equal(f->ops->ps_node_delete(f->st, SVC, "a"), 0);
    assert_int_equal(f->ops->ps_node_delete(f->st, SVC, "a"), MP_ENOTFOUND);
    assert_int_equal(f->ops->ps_node_put(f->st, SVC, "a", "<v/>", 4, 1), 0);
    memset(&s, 0, sizeof s);
    assert_int_equal(f->ops->ps_item_get(f->st, SVC, "a", NULL, 0, item_cb, &s), 0);
    assert_int_equal(s.n, 0);
}

static void
test_items_order_and_max(void **state)
{
    mp_test_store *f = *state;
    seen s = {0};
    put(f, SVC, "n", "1", "<one/>", 3);
    put(f, SVC, "n", "2", "<two/>", 3);
    put(f, SVC, "n", "3", "<three/>", 3);
    /* republishing 1 makes it the newest; 4 pushes the oldest (2) out */
    put(f, SVC, "n", "1", "<uno/>", 3);
    put(f, SVC, "n", "4", "<four/>", 3);
    assert_int_equal(f->ops->ps_item_get(f->st, SVC, "n", NULL, 0, item_cb, &s), 0);
    assert_int_equal(s.n, 3);
    assert_string_equal(s.ids[0], "4");
    assert_string_equal(s.ids[1], "1");
    assert_string_equal(s.payload[1], "<uno/>");
    assert_string_equal(s.ids[2], "3");
    memset(&s, 0, sizeof s);
    assert_int_equal(f->ops->ps_item_get(f->st, SVC, "n", NULL, 1, item_cb, &s), 0);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.ids[0], "4");
    memset(&s, 0, sizeof s);
    assert_int_equal(f->ops->ps_item_get(f->st, SVC, "n", "3", 0, item_cb, &s), 0);
    assert_int_equal(f->ops->ps_item_get(f->st, SVC, "n", "2", 0, item_cb, &s), MP_ENOTFOUND);
    assert_int_equal(f->ops->ps_item_delete(f->st, SVC, "n", "3"), 0);
    assert_int_equal(f->ops->ps_item_delete(f->st, SVC, "n", "3"), MP_ENOTFOUND);
    /* the same node name in another service is another node */
    put(f, "alice@example.org", "n", "x", "<x/>", 0);
    assert_int_equal(f->ops->ps_item_delete(f->st, SVC, "n", NULL), 0);
    memset(&s, 0, sizeof s);
    assert_int_equal(f->ops->ps_item_get(f->st, SVC, "n", NULL, 0, item_cb, &s), 0);
    assert_int_equal(s.n, 0);
    assert_int_equal(f->ops->ps_item_get(f->st, "alice@example.org", "n", NULL, 0, item_cb, &s), 0);
    assert_int_equal(s.n, 1);
}

static int
sub_cb(const mp_ps_sub *sub, void *ud)
{
    seen *s = ud;
    snprintf(s->ids[s->n], sizeof s->ids[0], "%s/%s", sub->jid, sub->subid);
    snprintf(s->payload[s->n], sizeof s->payload[0], "%d:%s", sub->state, sub->options);
    s->n++;
    return 0;
}

static int
aff_cb(const mp_ps_aff *a, void *ud)
{
    seen *s = ud;
    snprintf(s->ids[s->n], sizeof s->ids[0], "%s:%s", a->node, a->jid);
    snprintf(s->payload[s->n], sizeof s->payload[0], "%d", a->affiliation);
    s->n++;
    return 0;
}

static void
test_subs_affs_reopen(void **state)
{
    mp_test_store *f = *state;
    seen s = {0};
    mp_ps_sub a = {"n", "b@example.org", "s1", MP_PS_SUB_SUBSCRIBED, "deliver=1"};
    mp_ps_sub b = {"n", "b@example.org", "s2", MP_PS_SUB_PENDING, ""};
    mp_ps_sub c = {"m", "c@example.org", "s3", MP_PS_SUB_SUBSCRIBED, NULL};
    assert_int_equal(f->ops->ps_sub_put(f->st, SVC, &a), 0);
    assert_int_equal(f->ops->ps_sub_put(f->st, SVC, &b), 0);
    assert_int_equal(f->ops->ps_sub_put(f->st, SVC, &c), 0);
    assert_int_equal(f->ops->ps_aff_put(f->st, SVC, "n", "o@example.org", MP_PS_AFF_OWNER), 0);
    assert_int_equal(f->ops->ps_aff_put(f->st, SVC, "m", "o@example.org", MP_PS_AFF_OUTCAST), 0);
    mp_test_store_reopen(f);
    assert_int_equal(f->ops->ps_sub_list(f->st, SVC, "n", NULL, sub_cb, &s), 0);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.ids[0], "b@example.org/s1");
    assert_string_equal(s.payload[0], "3:deliver=1");
    assert_string_equal(s.payload[1], "1:");
    memset(&s, 0, sizeof s);
    assert_int_equal(f->ops->ps_sub_list(f->st, SVC, NULL, "c@example.org", sub_cb, &s), 0);
    assert_int_equal(s.n, 1);
    assert_int_equal(f->ops->ps_sub_delete(f->st, SVC, "n", "b@example.org", "s9"), MP_ENOTFOUND);
    assert_int_equal(f->ops->ps_sub_delete(f->st, SVC, "n", "b@example.org", NULL), 0);
    memset(&s, 0, sizeof s);
    assert_int_equal(f->ops->ps_sub_list(f->st, SVC, "n", NULL, sub_cb, &s), 0);
    assert_int_equal(s.n, 0);
    assert_int_equal(f->ops->ps_aff_list(f->st, SVC, NULL, "o@example.org", aff_cb, &s), 0);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.ids[0], "m:o@example.org");
    assert_string_equal(s.payload[0], "-1");
    assert_int_equal(f->ops->ps_aff_put(f->st, SVC, "m", "o@example.org", MP_PS_AFF_NONE), 0);
    memset(&s, 0, sizeof s);
    assert_int_equal(f->ops->ps_aff_list(f->st, SVC, NULL, NULL, aff_cb, &s), 0);
    assert_int_equal(s.n, 1);
}

/* Deleting an account drops its PEP service. */
static void
test_user_delete_drops_pep(void **state)
{
    mp_test_store *f = *state;
    seen s = {0};
    assert_int_equal(f->ops->ps_node_put(f->st, "alice@example.org", "mood", "<x/>", 4, 1), 0);
    put(f, "alice@example.org", "mood", "1", "<happy/>", 1);
    assert_int_equal(f->ops->ps_node_put(f->st, SVC, "keep", "<x/>", 4, 1), 0);
    f->ops->user_delete(f->st, "example.org", "alice");
    assert_int_equal(f->ops->ps_node_get(f->st, "alice@example.org", NULL, node_cb, &s), 0);
    assert_int_equal(s.n, 0);
    assert_int_equal(f->ops->ps_item_get(f->st, "alice@example.org", "mood", NULL, 0, item_cb, &s),
                     0);
    assert_int_equal(s.n, 0);
    assert_int_equal(f->ops->ps_node_get(f->st, SVC, NULL, node_cb, &s), 0);
    assert_int_equal(s.n, 1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_nodes, setup, mp_test_store_teardown),
        cmocka_unit_test_setup_teardown(test_items_order_and_max, setup, mp_test_store_teardown),
        cmocka_unit_test_setup_teardown(test_subs_affs_reopen, setup, mp_test_store_teardown),
        cmocka_unit_test_setup_teardown(test_user_delete_drops_pep, setup, mp_test_store_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
