/* XEP-0079 Advanced Message Processing: the rules are applied by the router (router/amp.c);
 * this module switches them on and announces what is supported (§2.1.1, §6). */
#include "magpie/module.h"
#include "router/amp.h"

static const char *const features[] = {
    MP_NS_AMP,
    MP_NS_AMP "?action=alert",
    MP_NS_AMP "?action=drop",
    MP_NS_AMP "?action=error",
    MP_NS_AMP "?action=notify",
    MP_NS_AMP "?condition=deliver",
    MP_NS_AMP "?condition=expire-at",
    MP_NS_AMP "?condition=match-resource",
};

static int
amp_load(mp_module *m)
{
    for (size_t i = 0; i < sizeof features / sizeof features[0]; i++) {
        int rc = mp_module_feature(m, features[i]);
        if (rc < 0)
            return rc;
    }
    mp_amp_enable(mp_module_core(m), 1);
    return 0;
}

static void
amp_unload(mp_module *m)
{
    mp_amp_enable(mp_module_core(m), 0);
}

MP_MODULE(amp, MP_ABI_1, amp_load, amp_unload);
