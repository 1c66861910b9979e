/* The presence subscription state machine of RFC 6121 (Appendix A), as a pure function: the
 * state the user's server keeps for one contact, and what a subscription stanza does to it. */
#ifndef MP_ROUTER_SUBSCRIPTION_H
#define MP_ROUTER_SUBSCRIPTION_H

#include <stddef.h>

/* State bits. MP_SUB_TO: the user receives the contact's presence; MP_SUB_FROM: the contact
 * receives the user's. PENDING_OUT: the user asked the contact (ask='subscribe');
 * PENDING_IN: the contact asked the user and got no answer yet. */
enum mp_sub_state {
    MP_SUB_NONE = 0,
    MP_SUB_TO = 1 << 0,
    MP_SUB_FROM = 1 << 1,
    MP_SUB_BOTH = MP_SUB_TO | MP_SUB_FROM,
    MP_SUB_PENDING_OUT = 1 << 2,
    MP_SUB_PENDING_IN = 1 << 3,
    /* Storage only, never passed to the functions below: the row just remembers a request from
     * someone not in the roster, which RFC 6121 §3.1.3 forbids adding before approval. */
    MP_SUB_HIDDEN = 1 << 4,
    /* RFC 6121 §3.4: the user pre-approved the contact's future request (approved='true',
     * §2.1.2.1). Only with subscription 'none' or 'to' and no request pending: once the
     * contact has 'from' or has asked, there is nothing left to pre-approve. */
    MP_SUB_APPROVED = 1 << 5,
    /* The bits the functions below take: everything but HIDDEN. */
    MP_SUB_MASK = MP_SUB_BOTH | MP_SUB_PENDING_OUT | MP_SUB_PENDING_IN | MP_SUB_APPROVED,
};

enum mp_sub_type { MP_SUBSCRIBE = 0, MP_SUBSCRIBED, MP_UNSUBSCRIBE, MP_UNSUBSCRIBED };

/* "subscribe" ... "unsubscribed" -> enum, -1 for anything else (case-sensitive). */
int mp_sub_type_parse(const char *type, size_t len);
/* enum -> "subscribe" ... "unsubscribed"; NULL for anything else. */
const char *mp_sub_type_name(int type);
/* "none" / "to" / "from" / "both" for the roster's subscription attribute. */
const char *mp_sub_attr(int state);

typedef struct mp_sub_effect {
    int state;   /* the new state for the roster item */
    int changed; /* state differs: store it and push the roster item to the user's resources */
    int route;   /* pass the stanza on (outbound: to the contact; inbound: to the user) */
    int create;  /* the item must be created if absent (RFC 6121 §3.1.2 for subscribe, A.1 state
                  * 3 for approving a request); never for inbound stanzas (§3.1.3) */
} mp_sub_effect;

/* The user sends a subscription stanza of type to the contact (RFC 6121 A.2; subscribe
 * §3.1.2, subscribed §3.1.5, unsubscribe §3.3.2, unsubscribed §3.2.2). A 'subscribed' with no
 * request pending records a pre-approval (§3.4.1: MP_SUB_APPROVED set, item created, not
 * routed); an 'unsubscribed' cancels it (§3.4.1, A.2.4 note [1]: not routed either).
 * has_item: the roster has an item (or a pending-in record) for the contact; without one the
 * state is taken as "None" or "None + Pending In" (A.1). Malformed states are mapped onto the
 * nine of A.1 (plus APPROVED on "None", "None + Pending Out", "To"), and changed is set when
 * the result differs from the state passed in. */
void mp_sub_outbound(int state, int has_item, int type, mp_sub_effect *out);
/* The contact's subscription stanza arrives for the user (RFC 6121 A.3; subscribe §3.1.3,
 * subscribed §3.1.6, unsubscribe §3.3.3, unsubscribed §3.2.3). route means deliver it to the
 * user's available resources (for subscribe: only when the contact is not subscribed yet and
 * no request of his is pending; when he is subscribed, or the user pre-approved him (§3.4),
 * the server answers 'subscribed' itself, see auto_reply, and a pre-approval is used up; an
 * inbound unsubscribe that changes the state is answered 'unsubscribed'). */
typedef struct mp_sub_inbound_effect {
    mp_sub_effect e;
    int auto_reply; /* -1, or the type the server sends back on the user's behalf */
} mp_sub_inbound_effect;
void mp_sub_inbound(int state, int has_item, int type, mp_sub_inbound_effect *out);

#endif
