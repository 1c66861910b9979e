/* XEP-0079 Advanced Message Processing: the rules a sender attaches to a <message/>
 * (conditions deliver, expire-at, match-resource; actions alert, drop, error, notify), judged
 * against what the router is about to do with the message, and the replies they call for.
 *
 * The parsing, evaluation and reply building below are pure (unit tested); the router hooks
 * at the end look at the core's sessions and storage. A message without an <amp/> costs one
 * memmem on the routing path. */
#ifndef MP_ROUTER_AMP_H
#define MP_ROUTER_AMP_H

#include <stddef.h>
#include <stdint.h>

#include "base/arena.h"
#include "base/buf.h"
#include "xml/tree.h"

#define MP_NS_AMP "http://jabber.org/protocol/amp"
#define MP_NS_AMP_ERRORS "http://jabber.org/protocol/amp#errors"
#define MP_NS_AMP_FEATURE "http://jabber.org/features/amp"

enum mp_amp_condition {
    MP_AMP_COND_UNKNOWN = 0,
    MP_AMP_DELIVER,
    MP_AMP_EXPIRE_AT,
    MP_AMP_MATCH_RESOURCE,
};

enum mp_amp_action {
    MP_AMP_ACT_UNKNOWN = 0,
    MP_AMP_ALERT,
    MP_AMP_DROP,
    MP_AMP_ERROR,
    MP_AMP_NOTIFY,
};

/* Values of deliver (also the outcome the router predicts) and of match-resource. */
enum mp_amp_value {
    MP_AMP_DIRECT = 1,
    MP_AMP_FORWARD,
    MP_AMP_GATEWAY,
    MP_AMP_NONE,
    MP_AMP_STORED,
    MP_AMP_ANY,
    MP_AMP_EXACT,
    MP_AMP_OTHER,
};

/* What makes a rule unacceptable, in the order the §8 errors are chosen: a request with
 * several kinds of bad rules is answered for the first kind, naming all its rules. */
enum mp_amp_fault {
    MP_AMP_OK = 0,
    MP_AMP_BAD_ACTION,    /* <bad-request/> + <unsupported-actions/> */
    MP_AMP_BAD_CONDITION, /* <bad-request/> + <unsupported-conditions/> */
    MP_AMP_INVALID,       /* <not-acceptable/> + <invalid-rules/> */
};

typedef struct mp_amp_rule {
    const char *condition, *action, *value; /* as sent (unescaped), NULL when absent */
    int cond;                               /* enum mp_amp_condition */
    int act;                                /* enum mp_amp_action */
    int val;                                /* enum mp_amp_value (deliver, match-resource) */
    int64_t at;                             /* expire-at, seconds since the epoch */
    int fault;                              /* enum mp_amp_fault */
} mp_amp_rule;

typedef struct mp_amp {
    mp_amp_rule *rules; /* in the arena given to mp_amp_parse */
    size_t nrules;
    int per_hop;
    int fault; /* the worst fault of the request (enum mp_amp_fault) */
} mp_amp;

/* Parse an <amp xmlns='http://jabber.org/protocol/amp'/> request. Returns 0 or MP_ENOMEM;
 * a->fault (and each rule's fault) says whether it can be honoured. An <amp/> without rules,
 * or with a per-hop other than true/false, is MP_AMP_INVALID. */
int mp_amp_parse(mp_arena *arena, const mp_xnode *amp, mp_amp *a);

/* XEP-0082 DateTime (CCYY-MM-DDThh:mm:ss[.sss](Z|+00:00|-00:00)); XEP-0079 §3.3.2 wants
 * UTC, so other offsets are refused. Returns 0 or MP_EINVAL. */
int mp_amp_parse_datetime(const char *s, int64_t *out);

/* What the router is about to do with the message. */
typedef struct mp_amp_outcome {
    int deliver;       /* MP_AMP_DIRECT, MP_AMP_STORED or MP_AMP_NONE */
    int addressed_res; /* the sender addressed a full JID */
    int exact;         /* direct delivery reaches the addressed resource */
    int other;         /* direct delivery reaches a resource other than the addressed one */
    int at_delivery;   /* a stored message is being delivered now: only expire-at applies */
    int64_t now;       /* seconds since the epoch */
} mp_amp_outcome;

int mp_amp_condition_met(const mp_amp *a, const mp_amp_rule *r, const mp_amp_outcome *o);
/* Index of the first rule whose condition is met (§2.2.3: rules in order, first wins), or
 * -1 when none is and the message takes its default course. */
int mp_amp_match(const mp_amp *a, const mp_amp_outcome *o);

/* Addressing of the replies to the sender (plain text; escaped when written). */
typedef struct mp_amp_reply {
    const char *server;    /* from: the server that applied the rules */
    const char *to;        /* the sender's full JID */
    const char *id;        /* the message's id */
    const char *orig_from; /* <amp from=''/>: the original sender */
    const char *orig_to;   /* <amp to=''/>: the intended recipient as addressed */
} mp_amp_reply;

/* The message telling the sender rule r was met: <amp status='notify|alert'/> for those
 * actions, for MP_AMP_ERROR a type='error' message with <failed-rules/>. Replaces b's
 * contents. Returns 0 or MP_ENOMEM. */
int mp_amp_build_event(mp_buf *b, const mp_amp_reply *r, const mp_amp_rule *rule);
/* The §8 error for a request with a->fault set: echoes the rules and names the faulty ones.
 * Replaces b's contents. Returns 0, MP_EINVAL (nothing to reject) or MP_ENOMEM. */
int mp_amp_build_reject(mp_buf *b, const mp_amp_reply *r, const mp_amp *a);

/* Nonzero when bytes may carry an AMP request (the namespace occurs). */
int mp_amp_requested(const char *bytes, size_t len);

/* ---- router hooks (core thread) ---- */
struct mp_core;
struct mp_cstream;
struct mp_frame;
struct mp_jid;
struct mp_user;

/* The amp module switches processing on; without it <amp/> passes through untouched. */
void mp_amp_enable(struct mp_core *core, int on);
int mp_amp_enabled(const struct mp_core *core);

/* A message from s to the local account of `to` (u: its sessions, NULL when none) is about to
 * be routed. Applies the rules: replies to the sender as they ask. Returns 1 when the message
 * must go no further (dropped, alerted, errored or refused), 0 to route it as usual. */
int mp_amp_route(struct mp_core *core, struct mp_cstream *s, const struct mp_frame *f,
                 const struct mp_jid *to, struct mp_user *u);

/* A message from offline storage is about to be delivered to r: applies expire-at rules.
 * Returns 1 when it must not be delivered. */
int mp_amp_offline(struct mp_core *core, struct mp_cstream *r, const char *stanza, size_t len);

#endif
