/* XEP-0030 for the server (its identity and the features the loaded modules announced) and
 * on behalf of the accounts it hosts (their bare JIDs). */
#include "magpie/module.h"
#include "modules/last.h"
#include "router/archive.h"
#include "router/caps.h"
#include "base/err.h"

#include <string.h>

#define NS_INFO MP_NS_DISCO_INFO
#define NS_ITEMS MP_NS_DISCO_ITEMS

static int
add_feature(mp_iq *iq, mp_xnode *q, const char *var)
{
    mp_xnode *f = mp_xnode_new(iq->arena, NS_INFO, "feature");
    if (!f || mp_xnode_set_attr(iq->arena, f, "var", var) < 0)
        return -1;
    mp_xnode_append(q, f);
    return 0;
}

/* The identity and features, with node echoed when the query named one. */
static int
server_info(mp_iq *iq, const char *node)
{
    mp_xnode *q = mp_xnode_new(iq->arena, NS_INFO, "query");
    mp_xnode *id = mp_xnode_new(iq->arena, NS_INFO, "identity");
    if (!q || !id || (node && mp_xnode_set_attr(iq->arena, q, "node", node) < 0) ||
        mp_xnode_set_attr(iq->arena, id, "category", MP_SERVER_CATEGORY) < 0 ||
        mp_xnode_set_attr(iq->arena, id, "type", MP_SERVER_TYPE) < 0 ||
        mp_xnode_set_attr(iq->arena, id, "name", MP_SERVER_NAME) < 0)
        return mp_iq_error(iq, "wait", "internal-server-error");
    mp_xnode_append(q, id);
    /* The same list mp_caps_init hashed, so the ver in our stream features verifies. */
    const char **vars;
    size_t n;
    if (mp_caps_server_features(iq->core, iq->arena, &vars, &n) < 0)
        return mp_iq_error(iq, "wait", "internal-server-error");
    for (size_t i = 0; i < n; i++)
        if (add_feature(iq, q, vars[i]) < 0)
            return mp_iq_error(iq, "wait", "internal-server-error");
    return mp_iq_result(iq, q);
}

/* XEP-0115 §6.2: node='NODE#VER' of our own caps answers like no node. */
static int
is_caps_node(mp_iq *iq, const char *node)
{
    const char *ver = mp_core_caps_ver(iq->core);
    size_t nl = strlen(MP_CAPS_NODE);
    return ver[0] && strncmp(node, MP_CAPS_NODE, nl) == 0 && node[nl] == '#' &&
           strcmp(node + nl + 1, ver) == 0;
}

static int
disco_info(mp_iq *iq, void *ud)
{
    const char *node = mp_xnode_attr(iq->payload, "node");
    if (node && !is_caps_node(iq, node))
        return mp_iq_error(iq, "cancel", "item-not-found");
    return server_info(iq, node);
}

typedef struct items_ctx {
    mp_iq *iq;
    mp_xnode *q;
    int failed;
} items_ctx;

static void
add_component(const char *jid, const char *label, void *ud)
{
    items_ctx *c = ud;
    mp_xnode *it = mp_xnode_new(c->iq->arena, NS_ITEMS, "item");
    if (!it || mp_xnode_set_attr(c->iq->arena, it, "jid", jid) < 0) {
        c->failed = 1;
        return;
    }
    mp_xnode_append(c->q, it);
}

/* XEP-0030 §4: the services of the host (conference.<host>, pubsub.<host>, ...) are its items,
 * so clients find them without configuration. */
static int
disco_items(mp_iq *iq, void *ud)
{
    mp_xnode *q = mp_xnode_new(iq->arena, NS_ITEMS, "query");
    if (!q)
        return mp_iq_error(iq, "wait", "internal-server-error");
    if (!mp_xnode_attr(iq->payload, "node")) {
        items_ctx c = {iq, q, 0};
        for (int h = 0; mp_core_host(iq->core, h); h++)
            if (strcmp(mp_core_host(iq->core, h), iq->to) == 0)
                mp_core_components(iq->core, h, add_component, &c);
        if (c.failed)
            return mp_iq_error(iq, "wait", "internal-server-error");
    }
    return mp_iq_result(iq, q);
}

/* XEP-0030 §3.1 and §8: an account answers disco#info with identity account/registered, but
 * only to itself and to those who receive its presence; anyone else, and any query about an
 * account that does not exist, gets <service-unavailable/> so accounts cannot be harvested. */
static int
account_info(mp_iq *iq, void *ud)
{
    mp_account_query aq;
    int rc = mp_account_query_resolve(iq, &aq);
    if (rc == MP_EINVAL)
        return mp_iq_error(iq, "modify", "jid-malformed");
    if (rc < 0)
        return mp_iq_error(iq, "wait", "internal-server-error");
    if (!aq.exists || !aq.may_see)
        return mp_iq_error(iq, "cancel", "service-unavailable");
    if (mp_xnode_attr(iq->payload, "node"))
        return mp_iq_error(iq, "cancel", "item-not-found");
    mp_xnode *q = mp_xnode_new(iq->arena, NS_INFO, "query");
    mp_xnode *id = mp_xnode_new(iq->arena, NS_INFO, "identity");
    if (!q || !id || mp_xnode_set_attr(iq->arena, id, "category", "account") < 0 ||
        mp_xnode_set_attr(iq->arena, id, "type", "registered") < 0)
        return mp_iq_error(iq, "wait", "internal-server-error");
    mp_xnode_append(q, id);
    const char *const *pairs;
    size_t npairs;
    mp_core_account_identities(iq->core, &pairs, &npairs);
    for (size_t i = 0; i < npairs; i++) { /* pubsub/pep (XEP-0163 §6) */
        mp_xnode *more = mp_xnode_new(iq->arena, NS_INFO, "identity");
        if (!more || mp_xnode_set_attr(iq->arena, more, "category", pairs[2 * i]) < 0 ||
            mp_xnode_set_attr(iq->arena, more, "type", pairs[2 * i + 1]) < 0)
            return mp_iq_error(iq, "wait", "internal-server-error");
        mp_xnode_append(q, more);
    }
    if (add_feature(iq, q, NS_INFO) < 0 || add_feature(iq, q, NS_ITEMS) < 0)
        return mp_iq_error(iq, "wait", "internal-server-error");
    const char *const *vars;
    size_t nvars;
    mp_core_account_features(iq->core, &vars, &nvars);
    for (size_t i = 0; i < nvars; i++)
        if (add_feature(iq, q, vars[i]) < 0)
            return mp_iq_error(iq, "wait", "internal-server-error");
    /* XEP-0313 §7.1: the archive and its stanza ids are the account's */
    if (mp_archive_enabled(iq->core) &&
        (add_feature(iq, q, MP_NS_MAM) < 0 || add_feature(iq, q, MP_NS_SID) < 0))
        return mp_iq_error(iq, "wait", "internal-server-error");
    return mp_iq_result(iq, q);
}

/* XEP-0030 §8: disco#items to a bare JID is an empty result for a missing account or an
 * unauthorized requester. Resources are not listed to anyone (the XEP allows it, no client
 * needs it), so the only other answer is item-not-found for a node nobody defined. */
static int
account_items(mp_iq *iq, void *ud)
{
    mp_account_query aq;
    int rc = mp_account_query_resolve(iq, &aq);
    if (rc == MP_EINVAL)
        return mp_iq_error(iq, "modify", "jid-malformed");
    if (rc < 0)
        return mp_iq_error(iq, "wait", "internal-server-error");
    if (aq.exists && aq.may_see && mp_xnode_attr(iq->payload, "node"))
        return mp_iq_error(iq, "cancel", "item-not-found");
    mp_xnode *q = mp_xnode_new(iq->arena, NS_ITEMS, "query");
    if (!q)
        return mp_iq_error(iq, "wait", "internal-server-error");
    return mp_iq_result(iq, q);
}

static int
disco_load(mp_module *m)
{
    int rc = mp_module_iq(m, MP_IQ_GET, MP_TARGET_HOST, NS_INFO, "query", disco_info, NULL);
    if (rc == 0)
        rc = mp_module_iq(m, MP_IQ_GET, MP_TARGET_HOST, NS_ITEMS, "query", disco_items, NULL);
    if (rc == 0)
        rc = mp_module_iq(m, MP_IQ_GET, MP_TARGET_ACCOUNT, NS_INFO, "query", account_info, NULL);
    if (rc == 0)
        rc = mp_module_iq(m, MP_IQ_GET, MP_TARGET_ACCOUNT, NS_ITEMS, "query", account_items, NULL);
    return rc;
}

MP_MODULE(disco, MP_ABI_1, disco_load, NULL);
