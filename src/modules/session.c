/* RFC 3921 session establishment, kept for old clients: RFC 6121 made it a no-op, so the
 * feature is advertised as <optional/> and the IQ just succeeds. */
#include "magpie/module.h"

static int
session_iq(mp_iq *iq, void *ud)
{
    return mp_iq_result(iq, NULL);
}

static int
session_load(mp_module *m)
{
    return mp_module_iq(m, MP_IQ_SET, MP_TARGET_HOST | MP_TARGET_ACCOUNT,
                        "urn:ietf:params:xml:ns:xmpp-session", "session", session_iq, NULL);
}

MP_MODULE(session, MP_ABI_1, session_load, NULL);
