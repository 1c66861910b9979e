/* The one API a Magpie module includes. A module is a table registered at start: its name,
 * the IQ payloads it serves, the disco features it adds. Handlers run on the core thread,
 * never block and never take locks. A stanza tree is borrowed for the call only. */
#ifndef MAGPIE_MODULE_H
#define MAGPIE_MODULE_H

#include <stddef.h>
#include <stdint.h>

#include "base/arena.h"
#include "base/buf.h"
#include "xml/tree.h"

#define MP_ABI_1 1

struct mp_core;
typedef struct mp_module mp_module;

enum mp_iq_type { MP_IQ_GET = 0, MP_IQ_SET = 1 };

/* Who an IQ is addressed to. */
enum mp_iq_target {
    MP_TARGET_HOST = 1 << 0,    /* the server itself: to='domain' */
    MP_TARGET_ACCOUNT = 1 << 1, /* an account: no 'to', or to='user@domain' */
};

typedef struct mp_iq {
    struct mp_core *core;
    mp_module *module;
    int type;                /* enum mp_iq_type */
    int target;              /* enum mp_iq_target */
    const char *from;        /* requester's full JID (as stamped) */
    const char *to;          /* the prepared JID addressed, "" when no 'to' was given */
    const char *to_attr;     /* the 'to' attribute as sent, NULL when absent */
    const char *id;          /* the IQ's id */
    const mp_xnode *stanza;  /* the whole <iq/> */
    const mp_xnode *payload; /* its first child */
    mp_arena *arena;         /* freed after the handler returns */
    uint64_t conn;           /* the requesting stream */
} mp_iq;

/* Return 0 when the IQ was answered (or will be, asynchronously), MP_ENOTFOUND to let the
 * core answer <service-unavailable/>. */
typedef int (*mp_iq_fn)(mp_iq *iq, void *ud);

/* Answer with type='result' and an optional payload (serialized; may be NULL). */
int mp_iq_result(mp_iq *iq, const mp_xnode *payload);
/* Answer with an RFC 6120 stanza error: type "cancel"|"modify"|"auth"|"wait", condition
 * "item-not-found", ... */
int mp_iq_error(mp_iq *iq, const char *type, const char *condition);

/* Nonzero when the IQ is for the requester's own account (no 'to', or 'to' is its bare JID). */
int mp_iq_is_own(const mp_iq *iq);
/* Split the account of a prepared JID "node@domain[/resource]" into copies in iq->arena.
 * Returns 0, MP_EINVAL (no node) or MP_ENOMEM. */
int mp_iq_account_of(mp_iq *iq, const char *jid, const char **node, const char **domain);

/* Serve IQs of type (MP_IQ_GET/SET) addressed to targets (mask of mp_iq_target) whose payload
 * is <name xmlns='ns'/>. One handler per (type, target, ns, name). */
int mp_module_iq(mp_module *m, int type, int targets, const char *ns, const char *name,
                 mp_iq_fn fn, void *ud);
/* Announce a feature in the server's disco#info. */
int mp_module_feature(mp_module *m, const char *var);

/* Site policies (the acl: section of the configuration), evaluated from lists compiled at load
 * and at each reload. mp_acl_allows() is nonzero when the account of jid (a prepared JID; a
 * resource is ignored) may do what rule names. */
enum mp_acl_rule {
    MP_ACL_SEND_ALERTS = 0, /* headlines to every online user of a host */
    MP_ACL_SAVE_PRIVATE,    /* private XML storage writes (XEP-0049) */
    MP_ACL_SAVE_VCARD,      /* vCard writes (XEP-0054) */
    MP_ACL_CREATE_ROOMS,    /* new chat rooms (MUC) */
    MP_ACL_NRULES
};
int mp_acl_allows(struct mp_core *core, enum mp_acl_rule rule, const char *jid);

const char *mp_module_name(const mp_module *m);
struct mp_core *mp_module_core(const mp_module *m);

typedef struct mp_module_def {
    const char *name;
    int abi;
    int (*load)(mp_module *m);
    void (*unload)(mp_module *m);
} mp_module_def;

#define MP_MODULE(name_, abi_, load_, unload_)                                                     \
    const mp_module_def mp_module_def_##name_ = {#name_, abi_, load_, unload_}

/* Server information for modules (disco, version). */
const char *mp_core_host(struct mp_core *core, int i); /* NULL past the last */
void mp_core_features(struct mp_core *core, const char *const **vars, size_t *n);

#endif
