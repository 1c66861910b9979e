/* Entity capabilities (XEP-0115) of the server: the verification string of its disco#info
 * answer, computed once after the modules are loaded (the feature set is fixed at start) and
 * advertised in the stream features as <c xmlns='http://jabber.org/protocol/caps'/>. */
#ifndef MP_ROUTER_CAPS_H
#define MP_ROUTER_CAPS_H

#include <stddef.h>

#include "base/arena.h"

struct mp_core;

/* The node in our <c/>: names the software, not a host (XEP-0115 §4). */
#define MP_CAPS_NODE "https://magpie.example/caps"
#define MP_NS_CAPS "http://jabber.org/protocol/caps"
#define MP_NS_DISCO_INFO "http://jabber.org/protocol/disco#info"
#define MP_NS_DISCO_ITEMS "http://jabber.org/protocol/disco#items"

/* The server's one disco identity. */
#define MP_SERVER_CATEGORY "server"
#define MP_SERVER_TYPE "im"
#define MP_SERVER_NAME "Magpie"

/* Room for a SHA-1 ver: 28 base64 characters and the NUL. */
#define MP_CAPS_VER_MAX 32

typedef struct mp_caps_identity {
    const char *category, *type;
    const char *lang; /* NULL or "" when none */
    const char *name; /* NULL or "" when none */
} mp_caps_identity;

/* XEP-0115 §5.1 with SHA-1 (no extended forms): sort the identities by category, type and
 * xml:lang, the features by octets, join "category/type/lang/name<" and "feature<", hash,
 * base64. Writes the NUL-terminated ver into out. Returns its length, MP_EINVAL for duplicate
 * features or identities (§5.4 calls such an answer ill-formed), MP_ELIMIT when out is too
 * small, MP_ENOMEM or MP_EIO. */
int mp_caps_ver(const mp_caps_identity *ids, size_t nids, const char *const *features,
                size_t nfeatures, char *out, size_t cap);

/* The server's disco#info features: disco#info, disco#items, then those the modules
 * announced, without duplicates, in that order (array in a). Returns 0 or MP_ENOMEM. */
int mp_caps_server_features(struct mp_core *core, mp_arena *a, const char ***out, size_t *n);

/* Compute the server's ver (left empty when the disco module is not loaded: nobody could
 * query it). Called once after the modules are loaded. Returns 0 or MP_E*. */
int mp_caps_init(struct mp_core *core);

/* The ver computed by mp_caps_init, "" when the server advertises no caps. */
const char *mp_core_caps_ver(struct mp_core *core);

#endif
