/* XEP-0092: software version of the server. XEP-0092 §5 requires a way to stop disclosing the
 * operating system (version.hide_os, as Prosody's hide_os_type and ejabberd's show_os); the
 * version itself can only be withheld altogether (version.hide_version), since <name/> and
 * <version/> are both required in an answer. */
#include "magpie/module.h"
#include "router/core.h"
#include "base/config.h"

#include <string.h>
#include <sys/utsname.h>

#define NS_VERSION "jabber:iq:version"

static int
add_text_child(mp_iq *iq, mp_xnode *parent, const char *name, const char *text)
{
    mp_xnode *n = mp_xnode_new(iq->arena, NS_VERSION, name);
    if (!n || mp_xnode_set_text(iq->arena, n, text, strlen(text)) < 0)
        return -1;
    mp_xnode_append(parent, n);
    return 0;
}

static int
version_iq(mp_iq *iq, void *ud)
{
    /* Read per query, so a reload that sets hide_os takes effect at once. */
    int show_os = !mp_core_config(iq->core)->version_hide_os;
    struct utsname u;
    mp_xnode *q = mp_xnode_new(iq->arena, NS_VERSION, "query");
    if (!q || add_text_child(iq, q, "name", "Magpie") < 0 ||
        add_text_child(iq, q, "version", MAGPIE_VERSION) < 0)
        return mp_iq_error(iq, "wait", "internal-server-error");
    if (show_os && (uname(&u) != 0 || add_text_child(iq, q, "os", u.sysname) < 0))
        return mp_iq_error(iq, "wait", "internal-server-error");
    return mp_iq_result(iq, q);
}

static int
version_load(mp_module *m)
{
    /* Hidden: neither the feature nor a handler, so the core answers <service-unavailable/>
     * exactly as for a server without the module. */
    if (mp_core_config(mp_module_core(m))->version_hide)
        return 0;
    int rc = mp_module_feature(m, NS_VERSION);
    if (rc == 0)
        rc = mp_module_iq(m, MP_IQ_GET, MP_TARGET_HOST, NS_VERSION, "query", version_iq, NULL);
    return rc;
}

MP_MODULE(version, MP_ABI_1, version_load, NULL);
