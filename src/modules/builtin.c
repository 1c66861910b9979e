/* The modules compiled into magpied; the configuration's `modules:` list switches them on
 * (session, roster and register are always on: the stream features rely on them). */
#include "magpie/module.h"

#include <stddef.h>

extern const mp_module_def mp_module_def_ping, mp_module_def_disco, mp_module_def_version,
    mp_module_def_session, mp_module_def_roster, mp_module_def_register, mp_module_def_vcard,
    mp_module_def_private, mp_module_def_time, mp_module_def_last;
extern const mp_module_def mp_module_def_amp;
extern const mp_module_def mp_module_def_search;
extern const mp_module_def mp_module_def_privacy, mp_module_def_blocking;
extern const mp_module_def mp_module_def_mam;
extern const mp_module_def mp_module_def_carbons;
extern const mp_module_def mp_module_def_muc;
extern const mp_module_def mp_module_def_caps, mp_module_def_push;
extern const mp_module_def mp_module_def_pubsub;

const mp_module_def *const mp_builtin_modules[] = {
    &mp_module_def_ping,    &mp_module_def_disco,    &mp_module_def_version,
    &mp_module_def_session, &mp_module_def_roster,   &mp_module_def_register,
    &mp_module_def_vcard,   &mp_module_def_private,  &mp_module_def_time,
    &mp_module_def_last,    &mp_module_def_amp,      &mp_module_def_search,
    &mp_module_def_privacy, &mp_module_def_blocking, &mp_module_def_mam,
    &mp_module_def_carbons, &mp_module_def_muc,
    &mp_module_def_caps,
    &mp_module_def_push,
    &mp_module_def_pubsub,
    NULL,
};
