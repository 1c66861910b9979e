/* XEP-0199: answer pings to the server and to one's own account. */
#include "magpie/module.h"

static int
ping_iq(mp_iq *iq, void *ud)
{
    return mp_iq_result(iq, NULL);
}

static int
ping_load(mp_module *m)
{
    int rc = mp_module_feature(m, "urn:xmpp:ping");
    if (rc == 0)
        rc = mp_module_iq(m, MP_IQ_GET, MP_TARGET_HOST | MP_TARGET_ACCOUNT, "urn:xmpp:ping",
                          "ping", ping_iq, NULL);
    return rc;
}

MP_MODULE(ping, MP_ABI_1, ping_load, NULL);
