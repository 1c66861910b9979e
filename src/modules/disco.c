/* XEP-0030 for the server: its identity and the features the loaded modules announced. */
#include "magpie/module.h"

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

static int
disco_load(mp_module *m)
{
    int rc = mp_module_iq(m, MP_IQ_GET, MP_TARGET_HOST, NS_INFO, "query", disco_info, NULL);
    if (rc == 0)
        rc = mp_module_iq(m, MP_IQ_GET, MP_TARGET_HOST, NS_ITEMS, "query", disco_items, NULL);
    return rc;
}

MP_MODULE(disco, MP_ABI_1, disco_load, NULL);
