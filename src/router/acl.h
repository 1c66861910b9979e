/* Site policies: the acl: section of the configuration compiled into lists that are cheap to
 * evaluate (flags for all/local/admins, sorted arrays of domains and bare JIDs). The core holds
 * one compiled set and replaces it on reload; mp_acl_allows() (magpie/module.h) is the check
 * modules use. */
#ifndef MP_ROUTER_ACL_H
#define MP_ROUTER_ACL_H

#include "magpie/module.h"

struct mp_config;
struct mp_core;

typedef struct mp_acl mp_acl;

/* Compile the acl lists of cfg (already checked by the config loader). The result keeps copies,
 * not pointers into cfg. Returns 0 or MP_ENOMEM. */
int mp_acl_compile(const struct mp_config *cfg, mp_acl **out);
void mp_acl_free(mp_acl *acl);

/* Evaluation on a compiled set. JIDs are prepared ("node@domain[/resource]"); the resource is
 * ignored and domains compare without regard to ASCII case. A JID without a node (a server)
 * matches only "all". */
int mp_acl_check(const mp_acl *acl, enum mp_acl_rule rule, const char *jid);
int mp_acl_check_admin(const mp_acl *acl, const char *jid);
/* Whether presence and subscriptions may pass from one account to another. */
int mp_acl_check_visible(const mp_acl *acl, const char *from, const char *to);

/* The same on the core's current set. */
int mp_acl_is_admin(struct mp_core *core, const char *jid);
int mp_acl_presence_visible(struct mp_core *core, const char *from, const char *to);

/* Outbound subscription stanza f of type (enum mp_sub_type) from session s to the bare JID
 * contact: when see_presence forbids it, answer <forbidden/> and return 1 (nothing stored).
 * Cancelling (unsubscribe, unsubscribed) always passes, so old cross-domain items can go. */
struct mp_cstream;
struct mp_frame;
int mp_acl_subscription_refused(struct mp_core *core, struct mp_cstream *s,
                                const struct mp_frame *f, const char *contact, int type);

/* Recompile from the core's configuration (after a reload). On failure the previous policies
 * stay and MP_ENOMEM is returned. */
int mp_acl_reload(struct mp_core *core);

#endif
