/* Publish-subscribe, private to the module: one engine serves the XEP-0060 service at
 * "<label>.<host>" and the XEP-0163 PEP service of every account.
 *
 *   forms.c      node configuration, publish-options, subscribe options: data forms to structs
 *                and back (pure functions), access decisions (pure)
 *   engine.c     the protocol: node lifecycle, items, subscriptions, affiliations, errors
 *   notify.c     notifications and the last published item (+notify filtering for PEP)
 *   service.c    the module: the component, the PEP handlers on accounts, hooks, disco
 *   bookmarks.c  XEP-0402 bookmarks kept in sync with XEP-0048 private storage (XEP-0411)
 *   avatar.c     XEP-0398: PEP avatars kept in sync with the vCard PHOTO
 *
 * A service is named by its JID: the component's JID or the account's bare JID; storage keys
 * everything by it (storage/store.h, ps_* operations). */
#ifndef MP_MODULES_PUBSUB_H
#define MP_MODULES_PUBSUB_H

#include <stddef.h>
#include <stdint.h>

#include "magpie/module.h"
#include "storage/store.h"

#define PS_NS "http://jabber.org/protocol/pubsub"
#define PS_NS_OWNER PS_NS "#owner"
#define PS_NS_EVENT PS_NS "#event"
#define PS_NS_ERRORS PS_NS "#errors"
#define PS_NS_XDATA "jabber:x:data"
#define PS_FORM_CONFIG PS_NS "#node_config"
#define PS_FORM_PUBOPTS PS_NS "#publish-options"
#define PS_FORM_SUBOPTS PS_NS "#subscribe_options"
#define PS_FORM_AUTH PS_NS "#subscribe_authorization"
#define PS_FORM_META PS_NS "#meta-data"
#define PS_NS_BOOKMARKS "urn:xmpp:bookmarks:1"
#define PS_NS_LEGACY_BOOKMARKS "storage:bookmarks"

enum ps_access {
    PS_ACCESS_OPEN = 0,
    PS_ACCESS_PRESENCE,
    PS_ACCESS_ROSTER,
    PS_ACCESS_WHITELIST,
    PS_ACCESS_AUTHORIZE,
};
enum ps_publish_model { PS_PUB_PUBLISHERS = 0, PS_PUB_SUBSCRIBERS, PS_PUB_OPEN };
enum ps_send_last { PS_SEND_NEVER = 0, PS_SEND_ON_SUB, PS_SEND_ON_SUB_AND_PRESENCE };
enum ps_notification_type { PS_NOTIFY_HEADLINE = 0, PS_NOTIFY_NORMAL };

#define PS_MAX_GROUPS 64

/* A node's configuration (pubsub#node_config). Strings point into an arena or constants. */
typedef struct ps_config {
    const char *title;
    int64_t max_items; /* >= 1 */
    int persist_items;
    int deliver_payloads;
    int deliver_notifications;
    int notify_config, notify_delete, notify_retract;
    int access_model;                  /* enum ps_access */
    int publish_model;                 /* enum ps_publish_model */
    int send_last;                     /* enum ps_send_last */
    int notification_type;             /* enum ps_notification_type */
    const char *groups[PS_MAX_GROUPS]; /* pubsub#roster_groups_allowed */
    size_t ngroups;
} ps_config;

/* The service-wide limits a form is checked against. */
typedef struct ps_limits {
    int64_t max_items; /* largest max_items of a node ("max" means this) */
} ps_limits;

/* Defaults: a PEP node (access presence, one item) or a service node (open, ten items). */
void ps_config_defaults(ps_config *c, int pep, const ps_limits *lim);

/* Apply the fields of a submitted data form (<x xmlns='jabber:x:data'/>) to c. A field with an
 * unknown var is ignored; FORM_TYPE must be form_type when present. Returns 0, or MP_EINVAL
 * with *bad naming the offending field (a value out of range, a form of another type); strings
 * are copied into a. */
int ps_config_apply(ps_config *c, const mp_xnode *x, const char *form_type, const ps_limits *lim,
                    mp_arena *a, const char **bad);
/* Nonzero when a and b are the same configuration. */
int ps_config_equal(const ps_config *a, const ps_config *b);
/* XEP-0060 §7.1.5: whether publish-options x hold for the node's configuration c. Returns 1 when
 * every field matches, 0 when one does not (precondition-not-met), MP_EINVAL for a bad form. */
int ps_config_preconditions(const ps_config *c, const mp_xnode *x, const ps_limits *lim,
                            mp_arena *a);
/* The configuration as a data form of type "form" (with field types and options, for an
 * owner) or "submit" (values only, as stored). NULL on ENOMEM. */
mp_xnode *ps_config_form(const ps_config *c, const char *type, mp_arena *a);
/* Storage: the configuration serialized (a submit form) and back. */
int ps_config_encode(const ps_config *c, mp_arena *a, mp_buf *out);
int ps_config_decode(ps_config *c, int pep, const ps_limits *lim, const char *data, size_t len,
                     mp_xml_parser *p, mp_arena *a);

const char *ps_access_name(int access);
const char *ps_affiliation_name(int aff);
/* -1 ... 4 (enum mp_ps_affiliation); MP_EINVAL for an unknown name. */
int ps_affiliation_parse(const char *name);
const char *ps_sub_state_name(int state);

/* Subscription options (pubsub#subscribe_options). */
typedef struct ps_subopts {
    int deliver;      /* pubsub#deliver: notifications are sent */
    int digest;       /* pubsub#digest: only off is supported */
    int include_body; /* pubsub#include_body: only off is supported */
} ps_subopts;

void ps_subopts_defaults(ps_subopts *o);
/* Apply a submitted form; MP_EINVAL with *bad set for bad values or unsupported ones (digest,
 * include_body on). */
int ps_subopts_apply(ps_subopts *o, const mp_xnode *x, const char **bad);
mp_xnode *ps_subopts_form(const ps_subopts *o, const char *type, mp_arena *a);
/* Storage: "deliver=1;digest=0;include_body=0" and back (unknown text: the defaults). */
void ps_subopts_encode(const ps_subopts *o, char *buf, size_t cap);
void ps_subopts_decode(ps_subopts *o, const char *s);

/* ---- access decisions (XEP-0060 §4.5, §6.1.3, §6.5.9), pure ---- */

/* What the service knows of a requester for one node. */
typedef struct ps_who {
    int affiliation; /* enum mp_ps_affiliation */
    int roster;      /* the owner's roster item for the requester: MP_SUB_* bits, -1 none */
    int in_group;    /* that item is in one of the node's roster_groups_allowed */
    int subscribed;  /* the requester holds a subscription in state subscribed */
} ps_who;

enum ps_verdict {
    PS_ALLOW = 0,
    PS_DENY_OUTCAST,   /* <forbidden/> */
    PS_DENY_PRESENCE,  /* <not-authorized/> + <presence-subscription-required/> */
    PS_DENY_GROUP,     /* <not-authorized/> + <not-in-roster-group/> */
    PS_DENY_WHITELIST, /* <not-allowed/> + <closed-node/> */
    PS_DENY_SUBSCRIBE, /* <not-authorized/> + <not-subscribed/> (authorize: items) */
    PS_PENDING,        /* subscribe: the owner must approve (authorize) */
    PS_DENY_PUBLISH,   /* <forbidden/> */
};

/* May the requester retrieve items (and get notifications)? */
int ps_may_read(const ps_config *c, const ps_who *w);
/* May the requester subscribe? PS_PENDING under the authorize model. */
int ps_may_subscribe(const ps_config *c, const ps_who *w);
/* May the requester publish (or retract: publish_only can publish, not retract others)? */
int ps_may_publish(const ps_config *c, const ps_who *w);
/* Nonzero when one of groups (the roster item's) is among c's roster_groups_allowed. */
int ps_groups_match(const ps_config *c, const char *const *groups, size_t n);

/* ---- the module ---- */

typedef struct ps_module {
    struct ps_module *next; /* the module's state of each core (service.c) */
    struct mp_core *core;
    mp_module *m;
    const char *label;     /* "pubsub" */
    mp_xml_parser *parser; /* for stored documents, on the core thread */
    ps_limits lim;
    int max_nodes;        /* nodes one account may own on the service / in PEP */
    size_t max_payload;   /* bytes of one item's payload */
    int max_subs;         /* subscriptions of one account to one node */
    size_t max_id_len;    /* bytes of a node name or an item id */
    int max_node_entries; /* affiliations, or subscriptions, an owner may set on one node */
    int syncing;          /* bookmarks.c: a change coming from private storage */
    int avatar_syncing;   /* avatar.c: a PEP avatar published from the vCard */
} ps_module;

/* One request against one service. */
typedef struct ps_ctx {
    ps_module *pm;
    mp_arena *arena;
    const char *service; /* the service JID: component JID or the account's bare JID */
    int pep;             /* service is an account's PEP */
    const char *from;    /* requester, full JID */
    const char *from_bare;
} ps_ctx;

/* A node loaded from storage. */
typedef struct ps_node {
    const char *name;
    ps_config cfg;
} ps_node;

/* engine.c */
int ps_handle_iq(ps_ctx *cx, mp_iq *iq, int owner_ns);
int ps_node_load(ps_ctx *cx, const char *name, ps_node *out); /* 0, MP_ENOTFOUND, MP_E* */
/* The requester's standing for one node (affiliation, owner's roster, subscription). */
int ps_who_of(ps_ctx *cx, const ps_node *n, const char *bare, ps_who *w);
/* Handle a message to the service (authorization form answers). */
int ps_handle_message(ps_ctx *cx, mp_stanza *st);
/* Store an item and tell whom it concerns; publisher may be "". Creates nothing. */
int ps_publish_item(ps_ctx *cx, const ps_node *n, const char *id, const mp_xnode *payload);
int ps_retract_item(ps_ctx *cx, const ps_node *n, const char *id, int notify);
/* Create a node with cfg, owner = cx->from_bare. */
int ps_create_node(ps_ctx *cx, const char *name, const ps_config *cfg);
void ps_new_id(ps_module *pm, char *out, size_t cap);

/* notify.c */
/* Notify an item published (payload may be NULL: not delivered) or retracted. */
void ps_notify_items(ps_ctx *cx, const ps_node *n, const char *id, const mp_xnode *payload,
                     const char *publisher, int retract);
/* <delete/>, <purge/> or <configuration/> to every subscriber. */
void ps_notify_node(ps_ctx *cx, const ps_node *n, const char *what);
/* The last item of node n to one full JID (nothing when there is none). */
void ps_send_last(ps_ctx *cx, const ps_node *n, const char *to_full);
/* A message from the service to one JID; bytes without 'to'. */
int ps_deliver(ps_ctx *cx, const char *to, const mp_xnode *msg);
/* caps watch and presence hook */
void ps_on_caps(struct mp_core *core, const char *full, void *ud);
void ps_on_presence(struct mp_core *core, const char *full, const mp_xnode *presence, int initial,
                    void *ud);

/* avatar.c: after a publish to the account's urn:xmpp:avatar:metadata (XEP-0398 §3.1) */
void ps_avatar_on_publish(ps_ctx *cx, const mp_xnode *metadata);
/* avatar.c: after items of it went (retract, purge, delete); none left removes the PHOTO */
void ps_avatar_on_removed(ps_ctx *cx);

/* bookmarks.c: after a change of the PEP bookmarks node, rewrite the legacy document */
void ps_bookmarks_to_private(ps_ctx *cx);
ps_module *ps_module_get(struct mp_core *core);
/* Run fn(cx, el) with a context for the PEP service of node@domain acting as the account itself
 * (a change that came from its private storage or vCard), *syncing set meanwhile so that the
 * change does not travel back. Returns fn's result or MP_ENOMEM. */
int ps_as_account(ps_module *pm, const char *domain, const char *node, int *syncing,
                  int (*fn)(ps_ctx *cx, const mp_xnode *el), const mp_xnode *el);

#endif
