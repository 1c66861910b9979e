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
    MP_SUB_MASK = 0x0f,
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
 * §3.1.2, subscribed §3.1.5, unsubscribe §3.3.2, unsubscribed §3.2.2). Pre-approval (§3.4) is
 * not supported: a 'subscribed' with no request pending changes nothing and is not routed.
 * has_item: the roster has an item (or a pending-in record) for the contact; without one the
 * state is taken as "None" or "None + Pending In" (A.1). Malformed states are mapped onto the
 * nine of A.1, and changed is set when the result differs from the state passed in. */
void mp_sub_outbound(int state, int has_item, int type, mp_sub_effect *out);
/* The contact's subscription stanza arrives for the user (RFC 6121 A.3; subscribe §3.1.3,
 * subscribed §3.1.6, unsubscribe §3.3.3, unsubscribed §3.2.3). route means deliver it to the
 * user's available resources (for subscribe: only when the contact is not subscribed yet and
 * no request of his is pending; when he is subscribed the server answers 'subscribed' itself,
 * see auto_reply; an inbound unsubscribe that changes the state is answered 'unsubscribed'). */
typedef struct mp_sub_inbound_effect {
    mp_sub_effect e;
    int auto_reply; /* -1, or the type the server sends back on the user's behalf */
} mp_sub_inbound_effect;
void mp_sub_inbound(int state, int has_item, int type, mp_sub_inbound_effect *out);

#endif
