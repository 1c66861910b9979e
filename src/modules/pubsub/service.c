/* The pubsub module: the XEP-0060 service at "<pubsub.label>.<host>" for every host and the
 * XEP-0163 PEP service of every account (IQs to the account's bare JID, or without 'to'), one
 * engine for both (engine.c). Limits: pubsub.max_nodes_per_user, pubsub.max_items,
 * pubsub.max_payload_size. */
#include "modules/pubsub/pubsub.h"
#include "modules/caps_cache.h"
#include "router/caps.h"
#include "router/core.h"
#include "base/config.h"
#include "base/err.h"
#include "base/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The module's state of each core, for the bookmarks hook of private.c (a process runs one
 * core; tests may run several, and each unload must find and free its own). */
static ps_module *states;

ps_module *
ps_module_get(struct mp_core *core)
{
    for (ps_module *pm = states; pm; pm = pm->next)
        if (pm->core == core)
            return pm;
    return NULL;
}

int
ps_as_account(ps_module *pm, const char *domain, const char *node, int *syncing,
              int (*fn)(ps_ctx *cx, const mp_xnode *el), const mp_xnode *el)
{
    mp_arena a;
    mp_arena_init(&a, 4096);
    char *bare = mp_arena_alloc(&a, strlen(node) + 1 + strlen(domain) + 1);
    int rc = MP_ENOMEM;
    if (bare) {
        sprintf(bare, "%s@%s", node, domain);
        ps_ctx cx = {pm, &a, bare, 1, bare, bare};
        *syncing = 1;
        rc = fn(&cx, el);
        *syncing = 0;
    }
    mp_arena_free(&a);
    return rc;
}

static const char *const features[] = {
    PS_NS,
    PS_NS "#access-authorize",
    PS_NS "#access-open",
    PS_NS "#access-presence",
    PS_NS "#access-roster",
    PS_NS "#access-whitelist",
    PS_NS "#auto-create",
    PS_NS "#auto-subscribe",
    PS_NS "#config-node",
    PS_NS "#create-and-configure",
    PS_NS "#create-nodes",
    PS_NS "#delete-items",
    PS_NS "#delete-nodes",
    PS_NS "#filtered-notifications",
    PS_NS "#get-pending",
    PS_NS "#instant-nodes",
    PS_NS "#item-ids",
    PS_NS "#last-published",
    PS_NS "#manage-subscriptions",
    PS_NS "#member-affiliation",
    PS_NS "#modify-affiliations",
    PS_NS "#multi-subscribe",
    PS_NS "#outcast-affiliation",
    PS_NS "#persistent-items",
    PS_NS "#presence-notifications",
    PS_NS "#publish",
    PS_NS "#publish-only-affiliation",
    PS_NS "#publish-options",
    PS_NS "#publisher-affiliation",
    PS_NS "#purge-nodes",
    PS_NS "#retract-items",
    PS_NS "#retrieve-affiliations",
    PS_NS "#retrieve-default",
    PS_NS "#retrieve-items",
    PS_NS "#retrieve-subscriptions",
    PS_NS "#subscribe",
    PS_NS "#subscription-options",
    PS_NS "#subscription-notifications",
};

#define NFEATURES (sizeof features / sizeof features[0])

/* A bare JID copy of jid in a. */
static const char *
bare_of(mp_arena *a, const char *jid)
{
    return mp_arena_strndup(a, jid, strcspn(jid, "/"));
}

static int
service_iq(mp_iq *iq, void *ud)
{
    ps_module *pm = ud;
    ps_ctx cx = {pm, iq->arena, bare_of(iq->arena, iq->to),
                 0,  iq->from,  bare_of(iq->arena, iq->from)};
    if (!cx.service || !cx.from_bare)
        return mp_iq_error(iq, "wait", "internal-server-error");
    /* a node or resource part addresses nothing here */
    if (strchr(iq->to, '@') || strchr(iq->to, '/'))
        return mp_iq_error(iq, "cancel", "item-not-found");
    return ps_handle_iq(&cx, iq, strcmp(iq->payload->ns, PS_NS_OWNER) == 0);
}

/* PEP: the account's bare JID is the service; another account must exist. */
static int
pep_iq(mp_iq *iq, void *ud)
{
    ps_module *pm = ud;
    const char *from_bare = bare_of(iq->arena, iq->from);
    const char *svc = iq->to[0] ? bare_of(iq->arena, iq->to) : from_bare;
    if (!svc || !from_bare)
        return mp_iq_error(iq, "wait", "internal-server-error");
    if (strcmp(svc, from_bare) != 0) {
        const char *node, *domain;
        if (mp_iq_account_of(iq, svc, &node, &domain) < 0)
            return mp_iq_error(iq, "modify", "jid-malformed");
        mp_store *st = mp_core_store(iq->core);
        mp_user_cred cred;
        int rc = st->ops->user_get(st, domain, node, &cred);
        explicit_bzero(&cred, sizeof cred);
        if (rc == MP_ENOTFOUND)
            return mp_iq_error(iq, "cancel", "service-unavailable");
        if (rc < 0)
            return mp_iq_error(iq, "wait", "internal-server-error");
    }
    ps_ctx cx = {pm, iq->arena, svc, 1, iq->from, from_bare};
    return ps_handle_iq(&cx, iq, strcmp(iq->payload->ns, PS_NS_OWNER) == 0);
}

static int
service_stanza(mp_stanza *st, void *ud)
{
    ps_module *pm = ud;
    if (st->kind == MP_STANZA_PRESENCE)
        return 0;
    if (st->kind == MP_STANZA_IQ)
        return strcmp(st->type, "get") == 0 || strcmp(st->type, "set") == 0 ? MP_ENOTFOUND : 0;
    if (strcmp(st->type, "error") == 0)
        return 0;
    const char *svc = bare_of(st->arena, st->to);
    const char *from_bare = bare_of(st->arena, st->from);
    if (!svc || !from_bare)
        return 0;
    ps_ctx cx = {pm, st->arena, svc, 0, st->from, from_bare};
    return ps_handle_message(&cx, st);
}

/* ---- disco of the service and its nodes ---- */

static mp_xnode *
child(mp_arena *a, mp_xnode *parent, const char *ns, const char *name)
{
    mp_xnode *n = mp_xnode_new(a, ns, name);
    if (n)
        mp_xnode_append(parent, n);
    return n;
}

static int
set(mp_arena *a, mp_xnode *n, const char *name, const char *value)
{
    return n && mp_xnode_set_attr(a, n, name, value) == 0 ? 0 : -1;
}

static int
meta_field(mp_arena *a, mp_xnode *x, const char *var, const char *value)
{
    mp_xnode *f = child(a, x, PS_NS_XDATA, "field");
    mp_xnode *v = f ? child(a, f, PS_NS_XDATA, "value") : NULL;
    if (set(a, f, "var", var) < 0 || !v || mp_xnode_set_text(a, v, value, strlen(value)) < 0)
        return -1;
    return 0;
}

static int
disco_info(mp_iq *iq, void *ud)
{
    ps_module *pm = ud;
    mp_arena *a = iq->arena;
    const char *node = mp_xnode_attr(iq->payload, "node");
    mp_xnode *q = mp_xnode_new(a, MP_NS_DISCO_INFO, "query");
    mp_xnode *id = q ? child(a, q, MP_NS_DISCO_INFO, "identity") : NULL;
    if (!id || set(a, id, "category", "pubsub") < 0)
        return mp_iq_error(iq, "wait", "internal-server-error");
    if (node && node[0]) {
        ps_ctx cx = {pm, a, bare_of(a, iq->to), 0, iq->from, bare_of(a, iq->from)};
        ps_node n;
        int rc = cx.service ? ps_node_load(&cx, node, &n) : MP_ENOMEM;
        if (rc == MP_ENOTFOUND)
            return mp_iq_error(iq, "cancel", "item-not-found");
        if (rc < 0)
            return mp_iq_error(iq, "wait", "internal-server-error");
        mp_xnode *x = mp_xnode_new(a, PS_NS_XDATA, "x");
        if (set(a, q, "node", node) < 0 || set(a, id, "type", "leaf") < 0 || !x ||
            set(a, x, "type", "result") < 0 || meta_field(a, x, "FORM_TYPE", PS_FORM_META) < 0 ||
            meta_field(a, x, "pubsub#title", n.cfg.title) < 0 ||
            meta_field(a, x, "pubsub#access_model", ps_access_name(n.cfg.access_model)) < 0)
            return mp_iq_error(iq, "wait", "internal-server-error");
        mp_xnode *f = child(a, q, MP_NS_DISCO_INFO, "feature");
        if (set(a, f, "var", PS_NS) < 0)
            return mp_iq_error(iq, "wait", "internal-server-error");
        mp_xnode_append(q, x);
        return mp_iq_result(iq, q);
    }
    if (set(a, id, "type", "service") < 0 || set(a, id, "name", "Publish-Subscribe") < 0)
        return mp_iq_error(iq, "wait", "internal-server-error");
    static const char *const base[] = {MP_NS_DISCO_INFO, MP_NS_DISCO_ITEMS};
    for (size_t i = 0; i < 2 + NFEATURES; i++) {
        mp_xnode *f = child(a, q, MP_NS_DISCO_INFO, "feature");
        if (set(a, f, "var", i < 2 ? base[i] : features[i - 2]) < 0)
            return mp_iq_error(iq, "wait", "internal-server-error");
    }
    return mp_iq_result(iq, q);
}

typedef struct items_ctx {
    mp_iq *iq;
    mp_xnode *q;
    const char *service;
} items_ctx;

static int
node_item(const char *node, const char *config, size_t len, void *ud)
{
    items_ctx *ic = ud;
    mp_arena *a = ic->iq->arena;
    mp_xnode *it = child(a, ic->q, MP_NS_DISCO_ITEMS, "item");
    return set(a, it, "jid", ic->service) < 0 || set(a, it, "node", node) < 0 ? MP_ENOMEM : 0;
}

static int
item_item(const mp_ps_item *item, void *ud)
{
    items_ctx *ic = ud;
    mp_arena *a = ic->iq->arena;
    mp_xnode *it = child(a, ic->q, MP_NS_DISCO_ITEMS, "item");
    return set(a, it, "jid", ic->service) < 0 || set(a, it, "name", item->id) < 0 ? MP_ENOMEM : 0;
}

static int
disco_items(mp_iq *iq, void *ud)
{
    ps_module *pm = ud;
    mp_arena *a = iq->arena;
    const char *node = mp_xnode_attr(iq->payload, "node");
    mp_xnode *q = mp_xnode_new(a, MP_NS_DISCO_ITEMS, "query");
    ps_ctx cx = {pm, a, bare_of(a, iq->to), 0, iq->from, bare_of(a, iq->from)};
    if (!q || !cx.service || !cx.from_bare)
        return mp_iq_error(iq, "wait", "internal-server-error");
    mp_store *st = mp_core_store(pm->core);
    items_ctx ic = {iq, q, cx.service};
    int rc;
    if (node && node[0]) {
        ps_node n;
        ps_who w;
        rc = ps_node_load(&cx, node, &n);
        if (rc == MP_ENOTFOUND)
            return mp_iq_error(iq, "cancel", "item-not-found");
        if (rc == 0)
            rc = ps_who_of(&cx, &n, cx.from_bare, &w);
        if (rc < 0)
            return mp_iq_error(iq, "wait", "internal-server-error");
        if (set(a, q, "node", node) < 0)
            return mp_iq_error(iq, "wait", "internal-server-error");
        if (ps_may_read(&n.cfg, &w) == PS_ALLOW)
            rc = st->ops->ps_item_get(st, cx.service, node, NULL, n.cfg.max_items, item_item, &ic);
    } else {
        rc = st->ops->ps_node_get(st, cx.service, NULL, node_item, &ic);
    }
    if (rc < 0)
        return mp_iq_error(iq, "wait", "internal-server-error");
    return mp_iq_result(iq, q);
}

/* ---- the module ---- */

static void
pubsub_unload(mp_module *m)
{
    ps_module *pm = ps_module_get(mp_module_core(m));
    if (!pm)
        return;
    for (ps_module **p = &states; *p; p = &(*p)->next)
        if (*p == pm) {
            *p = pm->next;
            break;
        }
    mp_xml_parser_free(pm->parser);
    free(pm);
}

static int
pubsub_load(mp_module *m)
{
    mp_core *core = mp_module_core(m);
    const mp_config *cfg = mp_core_config(core);
    ps_module *pm = calloc(1, sizeof *pm);
    if (!pm)
        return MP_ENOMEM;
    pm->core = core;
    pm->m = m;
    pm->label = cfg->pubsub_label;
    pm->lim.max_items = cfg->pubsub_max_items;
    pm->max_nodes = cfg->pubsub_max_nodes;
    pm->max_payload = cfg->pubsub_max_payload;
    pm->max_subs = cfg->pubsub_max_subs;
    pm->max_id_len = (size_t)cfg->pubsub_max_id_len;
    pm->max_node_entries = cfg->pubsub_max_node_entries;
    pm->parser = mp_xml_parser_new();
    if (!pm->parser) {
        free(pm);
        return MP_ENOMEM;
    }
    pm->next = states;
    states = pm;
    int rc = mp_module_component(m, pm->label, service_stanza, pm);
    static const char *const nss[] = {PS_NS, PS_NS_OWNER};
    for (int t = MP_IQ_GET; t <= MP_IQ_SET && rc == 0; t++)
        for (size_t i = 0; i < 2 && rc == 0; i++) {
            rc = mp_module_component_iq(m, pm->label, t, nss[i], "pubsub", service_iq, pm);
            if (rc == 0)
                rc = mp_module_iq(m, t, MP_TARGET_ACCOUNT, nss[i], "pubsub", pep_iq, pm);
        }
    if (rc == 0)
        rc = mp_module_component_iq(m, pm->label, MP_IQ_GET, MP_NS_DISCO_INFO, "query", disco_info,
                                    pm);
    if (rc == 0)
        rc = mp_module_component_iq(m, pm->label, MP_IQ_GET, MP_NS_DISCO_ITEMS, "query",
                                    disco_items, pm);
    /* what an account's PEP service offers; the server lists them (XEP-0163 §6) */
    for (size_t i = 0; i < NFEATURES && rc == 0; i++) {
        rc = mp_module_feature(m, features[i]);
        if (rc == 0) /* and on every account's bare JID, where clients look (§6) */
            rc = mp_module_account_feature(m, features[i]);
    }
    if (rc == 0)
        rc = mp_module_account_identity(m, "pubsub", "pep");
    if (rc == 0)
        rc = mp_module_feature(m, PS_NS_BOOKMARKS "#compat");
    if (rc == 0)
        rc = mp_module_feature(m, "urn:xmpp:bookmarks-conversion:0");
    if (rc == 0 && cfg->pubsub_avatar_conversion) /* XEP-0398 §2, on the account */
        rc = mp_module_account_feature(m, "urn:xmpp:pep-vcard-conversion:0");
    if (rc == 0)
        rc = mp_module_on_presence(m, ps_on_presence, pm);
    if (rc == 0) {
        int w = mp_client_caps_watch(core, ps_on_caps, pm);
        if (w == MP_ENOTFOUND)
            mp_warn("pubsub: the caps module is not loaded: PEP sends no +notify notifications "
                    "to contacts");
        else if (w < 0)
            rc = w;
    }
    if (rc < 0)
        pubsub_unload(m);
    return rc;
}

MP_MODULE(pubsub, MP_ABI_1, pubsub_load, pubsub_unload);
