/* The modules compiled into magpied; the configuration's `modules:` list switches them on. */
#include "magpie/module.h"

#include <stddef.h>

extern const mp_module_def mp_module_def_ping, mp_module_def_disco, mp_module_def_version,
    mp_module_def_session, mp_module_def_roster;

const mp_module_def *const mp_builtin_modules[] = {
    &mp_module_def_ping, &mp_module_def_disco, &mp_module_def_version, &mp_module_def_session, &mp_module_def_roster,
    NULL,
};
