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
/* The same with an application-specific condition beside it (RFC 6120 §8.3.4):
 * <app_name xmlns='app_ns' [attr='value']/>, e.g. XEP-0060's pubsub#errors. attr may be NULL. */
int mp_iq_error_app(mp_iq *iq, const char *type, const char *condition, const char *app_ns,
                    const char *app_name, const char *attr, const char *value);

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
/* Announce a feature, or an identity, of every account: the disco#info of a bare JID
 * (XEP-0163 §6 PEP, XEP-0357 push, ...). Strings must outlive the module. */
int mp_module_account_feature(mp_module *m, const char *var);
int mp_module_account_identity(mp_module *m, const char *category, const char *type);
void mp_core_account_features(struct mp_core *core, const char *const **vars, size_t *n);
/* Identities as pairs: (*pairs)[2i] category, (*pairs)[2i+1] type; n pairs. */
void mp_core_account_identities(struct mp_core *core, const char *const **pairs, size_t *n);

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

/* ---- Services: components, hooks, delivery (MUC, PubSub, PEP, push) ----
 *
 * A component is a service at "<label>.<host>" for every configured host (conference.example.org
 * for label "conference"). Every stanza addressed to such a JID, or to node@ or /resource forms of
 * it, is handed to the component: IQ get/set first to the handlers registered with
 * mp_module_component_iq for (label, type, namespace, element) -- found by one hash lookup --
 * and otherwise, like every message, presence and IQ result/error, to the component's stanza
 * function. Directed presence to a component is remembered like presence to a user, so a session
 * that ends sends the component its unavailable presence (RFC 6121 §4.6). */

enum { MP_TARGET_COMPONENT = 1 << 2 }; /* mp_iq.target of a component's IQ */

/* Stanza kinds, the same values as the frames' element kinds. */
enum mp_stanza_kind { MP_STANZA_MESSAGE = 1, MP_STANZA_PRESENCE = 2, MP_STANZA_IQ = 3 };

/* A stanza given to a component, borrowed for the call. */
typedef struct mp_stanza {
    struct mp_core *core;
    int kind;            /* enum mp_stanza_kind */
    const char *from;    /* the sender's JID as stamped (a local session's full JID) */
    const char *to;      /* the 'to', prepared: "room@conference.example.org/nick" */
    const char *to_node; /* its parts, prepared ("" when absent); to_domain is the component's */
    const char *to_domain;
    const char *to_resource;
    const char *type; /* the type attribute, "" when absent */
    const char *id;   /* the id attribute (unescaped), "" when absent */
    const char *bytes; /* the stanza as routed: from stamped, namespace jabber:client implied */
    size_t len;
    mp_arena *arena; /* reset after the call */
    uint64_t conn;   /* the sending stream, 0 when the core or another service sent it */
} mp_stanza;

/* The stanza parsed into st->arena (once; later calls return the same tree). NULL when it is
 * not well-formed XML (cannot happen for stanzas that came through the mux) or on ENOMEM. */
mp_xnode *mp_stanza_tree(mp_stanza *st);
/* Answer st with an RFC 6120 stanza error (from = st->to, to = st->from), never an error to an
 * error or an IQ result. type "cancel"|"modify"|"auth"|"wait"; text may be NULL. */
int mp_stanza_error(mp_stanza *st, const char *type, const char *condition, const char *text);

/* Return 0 when handled (the component answers what it must), MP_ENOTFOUND to have the core
 * answer <service-unavailable/> (for IQ get/set and messages; presence is dropped). */
typedef int (*mp_component_fn)(mp_stanza *st, void *ud);
/* Serve "<label>.<host>" for every host. MP_EEXIST when another module serves that label. */
int mp_module_component(mp_module *m, const char *label, mp_component_fn fn, void *ud);
/* One IQ handler of a component (payload <name xmlns='ns'/>); iq->to is the prepared 'to'
 * (the component, a node of it or a full JID), iq->target MP_TARGET_COMPONENT. */
int mp_module_component_iq(mp_module *m, const char *label, int type, const char *ns,
                           const char *name, mp_iq_fn fn, void *ud);
/* "<label>.<host>" of the i-th host (NULL past the last) into buf; NULL when it does not fit. */
const char *mp_component_jid(struct mp_core *core, const char *label, int i, char *buf,
                             size_t cap);
/* Calls cb for each component JID of host i (for the server's disco#items). */
void mp_core_components(struct mp_core *core, int host,
                        void (*cb)(const char *jid, const char *label, void *ud), void *ud);

/* Deliver a stanza a service built: bytes is one <message/>, <presence/> or <iq/> with its
 * 'from' set and NO 'to' attribute (the core inserts to='to'), its namespace jabber:client
 * implied. from is the JID in that 'from' (privacy lists are checked against it); to a prepared
 * JID, to_len its length. Rules of RFC 6121 §8 as for a stanza from a remote domain:
 *  - a local full JID: that session; gone: a message of type chat/normal goes to the bare
 *    JID, anything else is dropped;
 *  - a local bare JID: a message to the available resources of highest non-negative priority
 *    (all of them for headline), stored offline (XEP-0160) when there are none and type is
 *    chat or normal (unless MP_DELIVER_NO_OFFLINE); presence to every available resource; an
 *    IQ is refused (MP_EINVAL: IQs to accounts are for mp_core_send_iq);
 *  - a component JID: that component (kind, type and id are read from bytes);
 *  - any other domain: MP_ENOTFOUND (no federation yet).
 * Returns the number of sessions that got it (> 0), 0 when stored offline or dropped by rule,
 * MP_ENOTFOUND when no such account or session exists. Never allocates for a local session. */
enum { MP_DELIVER_NO_OFFLINE = 1 << 0 };
int mp_core_deliver(struct mp_core *core, const char *from, const char *to, size_t to_len,
                    const char *bytes, size_t len, int flags);

/* Send an IQ from 'from' (the server, an account's bare JID or a component JID) to 'to', with
 * type "get" or "set" and payload (serialized, non-empty). The core picks the id. fn is called
 * exactly once: with the parsed <iq/> answer (type result or error), or with NULL after
 * timeout_ms (0: 30 s) or at shutdown. Returns 0 or MP_E* (fn is then not called). */
typedef void (*mp_iq_answer_fn)(struct mp_core *core, const mp_xnode *answer, void *ud);
int mp_core_send_iq(struct mp_core *core, const char *from, const char *to, const char *type,
                    const char *payload, size_t len, unsigned timeout_ms, mp_iq_answer_fn fn,
                    void *ud);

/* XEP-0153 / XEP-0398: an account's avatar changed; hash is the SHA-1 (hex) of the image, ""
 * for none. Kept (storage kind "avatar") and put into the account's available presence from
 * then on while pubsub.avatar_conversion is on. 0 or MP_E*. */
int mp_core_avatar_set(struct mp_core *core, const char *domain, const char *node,
                       const char *hash);

/* Available resources of a local account (bare, prepared): cb gets each full JID and its
 * priority. Returns how many there are (cb may be NULL to count). */
int mp_core_resources(struct mp_core *core, const char *bare,
                      void (*cb)(const char *full, int priority, void *ud), void *ud);

/* Hooks. Presence: a session sent available presence (presence: the parsed <presence/>,
 * initial: its first since binding) or went unavailable / ended (presence NULL). */
typedef void (*mp_presence_hook)(struct mp_core *core, const char *full, const mp_xnode *presence,
                                 int initial, void *ud);
int mp_module_on_presence(mp_module *m, mp_presence_hook fn, void *ud);

/* A message for an account none of whose sessions could take it now (push, XEP-0357). */
enum mp_offline_why {
    MP_OFFLINE_STORED = 1, /* stored offline (XEP-0160) */
    MP_OFFLINE_PENDING,    /* queued for a stream-management session waiting to resume */
    MP_OFFLINE_ROOM,       /* a message in a room the account is an offline member of */
};
typedef void (*mp_offline_hook)(struct mp_core *core, const char *bare, const char *from,
                                const char *bytes, size_t len, int why, void *ud);
int mp_module_on_offline(mp_module *m, mp_offline_hook fn, void *ud);
/* Tell the offline hooks (the core calls it for STORED and PENDING; MUC for ROOM). */
void mp_core_offline_notify(struct mp_core *core, const char *bare, const char *from,
                            const char *bytes, size_t len, int why);

/* Append to the archive of owner (domain, node) (XEP-0313), in the core's group commit when
 * archiving is on. id_out gets the new archive id (cap >= 17). 0 or MP_E*. item is a
 * struct mp_archive_item of storage/store.h. */
struct mp_archive_item;
int mp_core_archive_append(struct mp_core *core, const char *domain, const char *node,
                           const struct mp_archive_item *item, int64_t max_items, char *id_out,
                           size_t cap);

#endif
