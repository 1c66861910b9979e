/* XEP-0092: software version of the server. */
#include "magpie/module.h"

#include <string.h>
#include <sys/utsname.h>

#define NS_VERSION "jabber:iq:version"

static int
version_iq(mp_iq *iq, void *ud)
{
    mp_xnode *q = mp_xnode_new(iq->arena, NS_VERSION, "query");
    mp_xnode *name = mp_xnode_new(iq->arena, NS_VERSION, "name");
    mp_xnode *ver = mp_xnode_new(iq->arena, NS_VERSION, "version");
    mp_xnode *os = mp_xnode_new(iq->arena, NS_VERSION, "os");
    struct utsname u;
    if (!q || !name || !ver || !os || uname(&u) != 0)
        return mp_iq_error(iq, "wait", "internal-server-error");
    if (mp_xnode_set_text(iq->arena, name, "Magpie", 6) < 0 ||
        mp_xnode_set_text(iq->arena, ver, MAGPIE_VERSION, strlen(MAGPIE_VERSION)) < 0 ||
        mp_xnode_set_text(iq->arena, os, u.sysname, strlen(u.sysname)) < 0)
        return mp_iq_error(iq, "wait", "internal-server-error");
    mp_xnode_append(q, name);
    mp_xnode_append(q, ver);
    mp_xnode_append(q, os);
    return mp_iq_result(iq, q);
}

static int
version_load(mp_module *m)
{
    int rc = mp_module_feature(m, NS_VERSION);
    if (rc == 0)
        rc = mp_module_iq(m, MP_IQ_GET, MP_TARGET_HOST, NS_VERSION, "query", version_iq, NULL);
    return rc;
}

MP_MODULE(version, MP_ABI_1, version_load, NULL);
