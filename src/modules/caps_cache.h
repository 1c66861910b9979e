/* Entity capabilities of the clients (XEP-0115): which features each available session
 * advertised, learned from the <c/> in its presence and a disco#info query the server sends
 * once per unknown ver, verified (§5.4) and cached (ver -> features) for every session that
 * advertises the same ver. The module "caps" (on by default) keeps it; PEP's +notify filtering
 * (XEP-0163) needs it. All calls run on the core thread. */
#ifndef MP_MODULES_CAPS_CACHE_H
#define MP_MODULES_CAPS_CACHE_H

#include <stddef.h>

#include "base/arena.h"
#include "xml/tree.h"

struct mp_core;

/* 1: the session full JID advertised (XEP-0115, verified) the feature; 0: it did not; -1: not
 * known (yet): no such session, no caps in its presence, the query not answered, or the caps
 * module not loaded. */
int mp_client_caps_has(struct mp_core *core, const char *full, const char *feature);

/* cb(core, full, ud) is called when the features of a session become known (after its available
 * presence and the disco#info answer, or at once from the cache), and again when a new ver
 * of the session becomes known. Returns 0, MP_ENOMEM, or MP_ENOTFOUND when the caps module is
 * not loaded (yet: modules load in the order of the configuration's list, and "caps" comes
 * before "pubsub" in the default one). Watchers stay until the module unloads. */
int mp_client_caps_watch(struct mp_core *core,
                         void (*cb)(struct mp_core *, const char *full, void *), void *ud);

/* ---- For the module and its unit tests ---- */

/* The features of one disco#info answer, sorted, in one allocation, reference counted (the
 * cache and the sessions with that ver share it). */
typedef struct mp_caps_info mp_caps_info;

/* XEP-0115 §5.1 over a <query xmlns='http://jabber.org/protocol/disco#info'/>, identities,
 * features and extended forms (XEP-0128) included, hash "sha-1" (the one XEP-0115 makes
 * mandatory), "sha-224", "sha-256", "sha-384" or "sha-512". ver gets the base64 string (cap:
 * 29 for sha-1, 89 for sha-512). Returns its length,
 * MP_EINVAL when the hash is unknown or the answer is ill-formed by §5.4 (duplicate identity or
 * feature, a form with several FORM_TYPE values, two forms with one FORM_TYPE), MP_ELIMIT,
 * MP_ENOMEM. */
int mp_caps_compute(const mp_xnode *query, const char *hash, char *ver, size_t cap);

/* The features of a disco#info answer, copied and sorted, one reference (NULL on ENOMEM). */
mp_caps_info *mp_caps_info_new(const mp_xnode *query);
/* Drop one reference. */
void mp_caps_info_free(mp_caps_info *ci);
/* Nonzero when feature is among them (binary search). */
int mp_caps_info_has(const mp_caps_info *ci, const char *feature);
size_t mp_caps_info_count(const mp_caps_info *ci);

#endif
