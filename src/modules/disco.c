/* XEP-0030 for the server (its identity and the features the loaded modules announced) and
 * on behalf of the accounts it hosts (their bare JIDs). */
#include "magpie/module.h"
#include "modules/last.h"
#include "base/err.h"

#include <string.h>

#define NS_INFO "http://jabber.org/protocol/disco#info"
#define NS_ITEMS "http://jabber.org/protocol/disco#items"

static int
add_feature(mp_iq *iq, mp_xnode *q, const char *var)
{
    mp_xnode *f = mp_xnode_new(iq->arena, NS_INFO, "feature");
    if (!f || mp_xnode_set_attr(iq->arena, f, "var", var) < 0)
        return -1;
    mp_xnode_append(q, f);
    return 0;
}

static int
disco_info(mp_iq *iq, void *ud)
{
    const char *node = mp_xnode_attr(iq->payload, "node");
    if (node)
        return mp_iq_error(iq, "cancel", "item-not-found");
    mp_xnode *q = mp_xnode_new(iq->arena, NS_INFO, "query");
    mp_xnode *id = mp_xnode_new(iq->arena, NS_INFO, "identity");
    if (!q || !id || mp_xnode_set_attr(iq->arena, id, "category", "server") < 0 ||
        mp_xnode_set_attr(iq->arena, id, "type", "im") < 0 ||
        mp_xnode_set_attr(iq->arena, id, "name", "Magpie") < 0)
        return mp_iq_error(iq, "wait", "internal-server-error");
    mp_xnode_append(q, id);
    const char *const *vars;
    size_t n;
    mp_core_features(iq->core, &vars, &n);
    if (add_feature(iq, q, NS_INFO) < 0 || add_feature(iq, q, NS_ITEMS) < 0)
        return mp_iq_error(iq, "wait", "internal-server-error");
    for (size_t i = 0; i < n; i++)
        if (add_feature(iq, q, vars[i]) < 0)
            return mp_iq_error(iq, "wait", "internal-server-error");
    return mp_iq_result(iq, q);
}

static int
disco_items(mp_iq *iq, void *ud)
{
    mp_xnode *q = mp_xnode_new(iq->arena, NS_ITEMS, "query");
    if (!q)
        return mp_iq_error(iq, "wait", "internal-server-error");
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
    if (add_feature(iq, q, NS_INFO) < 0 || add_feature(iq, q, NS_ITEMS) < 0)
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
