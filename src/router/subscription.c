/* The presence subscription state machine of RFC 6121 Appendix A. The nine states of A.1 are
 * the bits TO/FROM plus PENDING_OUT/PENDING_IN; each table of A.2 and A.3 reduces to a test on
 * one or two bits, and the comments below name the table rows each branch covers. Pre-approval
 * (§3.4) is one more bit, APPROVED, set by the rows the RFC marks "pre-approval" (A.2.3) and
 * only on "None", "None + Pending Out" and "To"; the contact's next 'subscribe' uses it up. */
#include <string.h>

#include "router/subscription.h"

static const char *const type_names[] = {
    [MP_SUBSCRIBE] = "subscribe",
    [MP_SUBSCRIBED] = "subscribed",
    [MP_UNSUBSCRIBE] = "unsubscribe",
    [MP_UNSUBSCRIBED] = "unsubscribed",
};

#define NTYPES ((int)(sizeof type_names / sizeof type_names[0]))

int
mp_sub_type_parse(const char *type, size_t len)
{
    if (!type)
        return -1;
    /* Attribute values are case-sensitive in XML: "Subscribe" is not a subscription type. */
    for (int i = 0; i < NTYPES; i++)
        if (strlen(type_names[i]) == len && memcmp(type_names[i], type, len) == 0)
            return i;
    return -1;
}

const char *
mp_sub_type_name(int type)
{
    return type >= 0 && type < NTYPES ? type_names[type] : NULL;
}

const char *
mp_sub_attr(int state)
{
    switch (state & MP_SUB_BOTH) {
    case MP_SUB_TO:
        return "to";
    case MP_SUB_FROM:
        return "from";
    case MP_SUB_BOTH:
        return "both";
    default:
        return "none";
    }
}

/* Map whatever the store holds onto one of the nine states of A.1, so that a damaged or
 * foreign record cannot drive the tables into a tenth state. ask='subscribe' exists only with
 * subscription 'none' or 'from' (A.1 states 2, 4, 8): the user cannot be waiting for a
 * subscription he has. Likewise a contact who already receives the user's presence has no
 * request pending. Without a roster item only a pending inbound request can be on record
 * (A.1 state 3, and the note there that "None" includes a contact not in the roster). */
static int
normalize(int state, int has_item)
{
    state &= MP_SUB_MASK;
    if (!has_item)
        state &= MP_SUB_PENDING_IN;
    if (state & MP_SUB_TO)
        state &= ~MP_SUB_PENDING_OUT;
    if (state & MP_SUB_FROM)
        state &= ~MP_SUB_PENDING_IN;
    /* §3.4.1: a pre-approval is only recorded while the contact has neither the subscription
     * nor a pending request. Next to a pending request the stray bit is dropped rather than
     * honoured: granting presence needs the user's unambiguous consent. */
    if (state & (MP_SUB_FROM | MP_SUB_PENDING_IN))
        state &= ~MP_SUB_APPROVED;
    return state;
}

void
mp_sub_outbound(int state, int has_item, int type, mp_sub_effect *out)
{
    int s = normalize(state, has_item);
    int ns = s, route = 0, create = 0;

    switch (type) {
    case MP_SUBSCRIBE:
        /* A.2.1: always routed, so a contact whose server lost our request (or its answer) can
         * answer again. "None", "None + Pending In" and "From" gain Pending Out; every other
         * state already has the subscription or the request: no state change. §3.1.2: the
         * item exists afterwards, with ask='subscribe'. */
        route = 1;
        create = 1;
        if (!(s & MP_SUB_TO))
            ns = s | MP_SUB_PENDING_OUT;
        break;
    case MP_UNSUBSCRIBE:
        /* A.2.2 and §3.3.2: always routed. The subscription to the contact and any request for
         * it end: "None + Pending Out" and "To" -> "None", "None + Pending Out+In" and
         * "To + Pending In" -> "None + Pending In", "From + Pending Out" and "Both" -> "From".
         * "None", "None + Pending In", "From": no state change. */
        route = 1;
        ns = s & ~(MP_SUB_TO | MP_SUB_PENDING_OUT);
        break;
    case MP_SUBSCRIBED:
        /* A.2.3 and §3.1.5: approval of a pending request: "None + Pending In" -> "From",
         * "None + Pending Out+In" -> "From + Pending Out", "To + Pending In" -> "Both". The
         * contact enters the roster now (A.1 state 3: not before the user approved). With no
         * request pending the RFC says MUST NOT route. "From", "From + Pending Out", "Both":
         * nothing to approve, no state change. "None", "None + Pending Out", "To" (with or
         * without an earlier pre-approval): §3.4.1 records a pre-approval, creating the item
         * if the contact is not in the roster yet, and does not route. */
        if (s & MP_SUB_PENDING_IN) {
            ns = (s & ~MP_SUB_PENDING_IN) | MP_SUB_FROM;
            route = 1;
            create = 1;
        } else if (!(s & MP_SUB_FROM)) {
            ns = s | MP_SUB_APPROVED;
            create = 1;
        }
        break;
    case MP_UNSUBSCRIBED:
        /* A.2.4 and §3.2.2: denial of a pending request or cancellation of the contact's
         * subscription: "None + Pending In" and "From" -> "None", "None + Pending Out+In" and
         * "From + Pending Out" -> "None + Pending Out", "To + Pending In" and "Both" -> "To".
         * "None", "None + Pending Out", "To": SHOULD NOT route, no state change, except that
         * a pre-approval is cancelled (note [1], §3.4.1). */
        if (s & (MP_SUB_FROM | MP_SUB_PENDING_IN)) {
            ns = s & ~(MP_SUB_FROM | MP_SUB_PENDING_IN);
            route = 1;
        } else {
            ns = s & ~MP_SUB_APPROVED;
        }
        break;
    default:
        break;
    }
    out->state = ns;
    out->changed = ns != state;
    out->route = route;
    out->create = create;
}

void
mp_sub_inbound(int state, int has_item, int type, mp_sub_inbound_effect *out)
{
    int s = normalize(state, has_item);
    int ns = s, route = 0, reply = -1;

    switch (type) {
    case MP_SUBSCRIBE:
        /* A.3.1 and §3.1.3. "From", "From + Pending Out", "Both": the contact is subscribed
         * already, so the server answers 'subscribed' itself (§3.1.3 rule 2, A.3.1 note [2])
         * and does not bother the user. A request already pending is not delivered again
         * now ("None + Pending In", "None + Pending Out+In", "To + Pending In": S.N.); it is
         * redelivered when the user next becomes available (§3.1.3 rule 4). "None",
         * "None + Pending Out", "To" gain Pending In and the request is delivered, unless the
         * user pre-approved it (§3.4.1, §3.1.3 rule 2): then the server answers 'subscribed',
         * the state becomes "From", "From + Pending Out", "Both" (as if the user had approved
         * at once), the pre-approval is used up and the user is not asked. */
        if (s & MP_SUB_FROM) {
            reply = MP_SUBSCRIBED;
        } else if (s & MP_SUB_APPROVED) {
            ns = (s & ~MP_SUB_APPROVED) | MP_SUB_FROM;
            reply = MP_SUBSCRIBED;
        } else if (!(s & MP_SUB_PENDING_IN)) {
            ns = s | MP_SUB_PENDING_IN;
            route = 1;
        }
        break;
    case MP_UNSUBSCRIBE:
        /* A.3.2: the contact withdraws its subscription or its pending request: "None +
         * Pending In" and "From" -> "None", "None + Pending Out+In" and "From + Pending Out"
         * -> "None + Pending Out", "To + Pending In" and "Both" -> "To"; delivered, and the
         * server SHOULD answer 'unsubscribed' (note [1]). §3.3.3 lists only the From states;
         * the table also clears a pending request, which is what the contact meant. "None",
         * "None + Pending Out", "To": S.N., no state change. */
        if (s & (MP_SUB_FROM | MP_SUB_PENDING_IN)) {
            ns = s & ~(MP_SUB_FROM | MP_SUB_PENDING_IN);
            route = 1;
            reply = MP_UNSUBSCRIBED;
        }
        break;
    case MP_SUBSCRIBED:
        /* A.3.3 and §3.1.6: only an answer to our pending request counts: "None + Pending
         * Out" -> "To", "None + Pending Out+In" -> "To + Pending In", "From + Pending Out" ->
         * "Both". Anything else is ignored silently (S.N., no state change). */
        if (s & MP_SUB_PENDING_OUT) {
            ns = (s & ~MP_SUB_PENDING_OUT) | MP_SUB_TO;
            route = 1;
        }
        break;
    case MP_UNSUBSCRIBED:
        /* A.3.4 and §3.2.3: the contact denies our request or cancels our subscription:
         * "None + Pending Out" and "To" -> "None", "None + Pending Out+In" and "To + Pending
         * In" -> "None + Pending In", "From + Pending Out" and "Both" -> "From". "None",
         * "None + Pending In", "From": S.N., no state change. */
        if (s & (MP_SUB_TO | MP_SUB_PENDING_OUT)) {
            ns = s & ~(MP_SUB_TO | MP_SUB_PENDING_OUT);
            route = 1;
        }
        break;
    default:
        break;
    }
    /* §3.1.3 (security warning): the contact's request alone never adds an item to the
     * user's roster; only the pending-in note is kept. */
    out->e.state = ns;
    out->e.changed = ns != state;
    out->e.route = route;
    out->e.create = 0;
    out->auto_reply = reply;
}
