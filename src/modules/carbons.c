/* XEP-0280 Message Carbons: the enable/disable IQs and the disco feature. The copies
 * themselves are made on the routing path (router/carbons.c). */
#include "magpie/module.h"
#include "router/carbons.h"
#include "base/err.h"

static int
carbons_iq(mp_iq *iq, void *ud)
{
    int on = ud != NULL;
    /* §4: a session switches its own carbons; nobody else's. */
    if (iq->target == MP_TARGET_ACCOUNT && !mp_iq_is_own(iq))
        return mp_iq_error(iq, "cancel", "not-allowed");
    if (mp_carbons_set(iq->core, iq->conn, on) < 0)
        return mp_iq_error(iq, "wait", "internal-server-error");
    return mp_iq_result(iq, NULL);
}

static int
carbons_load(mp_module *m)
{
    static int enable; /* any non-NULL user data says "enable" */
    int rc = mp_module_feature(m, MP_NS_CARBONS);
    if (rc == 0)
        rc = mp_module_iq(m, MP_IQ_SET, MP_TARGET_HOST | MP_TARGET_ACCOUNT, MP_NS_CARBONS, "enable",
                          carbons_iq, &enable);
    if (rc == 0)
        rc = mp_module_iq(m, MP_IQ_SET, MP_TARGET_HOST | MP_TARGET_ACCOUNT, MP_NS_CARBONS,
                          "disable", carbons_iq, NULL);
    return rc;
}

MP_MODULE(carbons, MP_ABI_1, carbons_load, NULL);
