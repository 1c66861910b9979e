/* Presence subscription states: RFC 6121 Appendix A tables 2-9 written out row by row (with
 * the §3 rules on creating items and auto-replies, and pre-approval, §3.4), type names, the
 * roster's subscription attribute, malformed states, and a two-roster check that a local exchange
 * keeps the user's and the contact's rosters mirror images of each other. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "router/subscription.h"

/* The nine states of A.1, by the RFC's names. */
#define NONE MP_SUB_NONE                               /* "None" */
#define N_PO MP_SUB_PENDING_OUT                        /* "None + Pending Out" */
#define N_PI MP_SUB_PENDING_IN                         /* "None + Pending In" */
#define N_POI (MP_SUB_PENDING_OUT | MP_SUB_PENDING_IN) /* "None + Pending Out+In" */
#define TO MP_SUB_TO                                   /* "To" */
#define TO_PI (MP_SUB_TO | MP_SUB_PENDING_IN)          /* "To + Pending In" */
#define FROM MP_SUB_FROM                               /* "From" */
#define FROM_PO (MP_SUB_FROM | MP_SUB_PENDING_OUT)     /* "From + Pending Out" */
#define BOTH MP_SUB_BOTH                               /* "Both" */
/* §3.4: the three states in which a pre-approval can be on record. */
#define NONE_A (MP_SUB_NONE | MP_SUB_APPROVED)        /* "None" + pre-approved */
#define N_PO_A (MP_SUB_PENDING_OUT | MP_SUB_APPROVED) /* "None + Pending Out" + pre-approved */
#define TO_A (MP_SUB_TO | MP_SUB_APPROVED)            /* "To" + pre-approved */

static const int all_states[] = {NONE, N_PO,    N_PI, N_POI,  TO,     TO_PI,
                                 FROM, FROM_PO, BOTH, NONE_A, N_PO_A, TO_A};
#define NSTATES (sizeof all_states / sizeof all_states[0])

struct row {
    int state, type;
    int new_state, changed, route, create, auto_reply;
};

/* Outbound: the user sends type to the contact; the roster has an item for the contact.
 * route: 1 for the RFC's MUST, 0 for M.N. and S.N. create: §3.1.2 (subscribe) and A.1 state 3
 * (approval puts the contact in the roster). auto_reply is unused here (-1). */
static const struct row outbound[] = {
    /* A.2.1, Table 2: outbound "subscribe", always routed; "pending out" sets ask. */
    {NONE, MP_SUBSCRIBE, N_PO, 1, 1, 1, -1},       /* A.2.1 None: MUST [1] -> None+PO */
    {N_PO, MP_SUBSCRIBE, N_PO, 0, 1, 1, -1},       /* A.2.1 None+PO: MUST, no change */
    {N_PI, MP_SUBSCRIBE, N_POI, 1, 1, 1, -1},      /* A.2.1 None+PI: MUST [1] -> None+PO+PI */
    {N_POI, MP_SUBSCRIBE, N_POI, 0, 1, 1, -1},     /* A.2.1 None+PO+PI: MUST, no change */
    {TO, MP_SUBSCRIBE, TO, 0, 1, 1, -1},           /* A.2.1 To: MUST, no change */
    {TO_PI, MP_SUBSCRIBE, TO_PI, 0, 1, 1, -1},     /* A.2.1 To+PI: MUST, no change */
    {FROM, MP_SUBSCRIBE, FROM_PO, 1, 1, 1, -1},    /* A.2.1 From: MUST [1] -> From+PO */
    {FROM_PO, MP_SUBSCRIBE, FROM_PO, 0, 1, 1, -1}, /* A.2.1 From+PO: MUST, no change */
    {BOTH, MP_SUBSCRIBE, BOTH, 0, 1, 1, -1},       /* A.2.1 Both: MUST, no change */
    /* A.2.2, Table 3: outbound "unsubscribe", always routed (§3.3.2). */
    {NONE, MP_UNSUBSCRIBE, NONE, 0, 1, 0, -1},    /* A.2.2 None: MUST, no change */
    {N_PO, MP_UNSUBSCRIBE, NONE, 1, 1, 0, -1},    /* A.2.2 None+PO: MUST -> None */
    {N_PI, MP_UNSUBSCRIBE, N_PI, 0, 1, 0, -1},    /* A.2.2 None+PI: MUST, no change */
    {N_POI, MP_UNSUBSCRIBE, N_PI, 1, 1, 0, -1},   /* A.2.2 None+PO+PI: MUST -> None+PI */
    {TO, MP_UNSUBSCRIBE, NONE, 1, 1, 0, -1},      /* A.2.2 To: MUST -> None */
    {TO_PI, MP_UNSUBSCRIBE, N_PI, 1, 1, 0, -1},   /* A.2.2 To+PI: MUST -> None+PI */
    {FROM, MP_UNSUBSCRIBE, FROM, 0, 1, 0, -1},    /* A.2.2 From: MUST, no change */
    {FROM_PO, MP_UNSUBSCRIBE, FROM, 1, 1, 0, -1}, /* A.2.2 From+PO: MUST -> From */
    {BOTH, MP_UNSUBSCRIBE, FROM, 1, 1, 0, -1},    /* A.2.2 Both: MUST -> From */
    /* A.2.3, Table 4: outbound "subscribed" (§3.1.5). Pre-approval rows (§3.4.1): M.N. route,
     * the approval is recorded, on a new item if the contact is not in the roster. */
    {NONE, MP_SUBSCRIBED, NONE_A, 1, 0, 1, -1},     /* A.2.3 None: M.N., pre-approval */
    {N_PO, MP_SUBSCRIBED, N_PO_A, 1, 0, 1, -1},     /* A.2.3 None+PO: M.N., pre-approval */
    {N_PI, MP_SUBSCRIBED, FROM, 1, 1, 1, -1},       /* A.2.3 None+PI: MUST -> From */
    {N_POI, MP_SUBSCRIBED, FROM_PO, 1, 1, 1, -1},   /* A.2.3 None+PO+PI: MUST -> From+PO */
    {TO, MP_SUBSCRIBED, TO_A, 1, 0, 1, -1},         /* A.2.3 To: M.N., pre-approval */
    {TO_PI, MP_SUBSCRIBED, BOTH, 1, 1, 1, -1},      /* A.2.3 To+PI: MUST -> Both */
    {FROM, MP_SUBSCRIBED, FROM, 0, 0, 0, -1},       /* A.2.3 From: M.N., no change */
    {FROM_PO, MP_SUBSCRIBED, FROM_PO, 0, 0, 0, -1}, /* A.2.3 From+PO: M.N., no change */
    {BOTH, MP_SUBSCRIBED, BOTH, 0, 0, 0, -1},       /* A.2.3 Both: M.N., no change */
    /* A.2.4, Table 5: outbound "unsubscribed" (§3.2.2). */
    {NONE, MP_UNSUBSCRIBED, NONE, 0, 0, 0, -1},    /* A.2.4 None: S.N., no change [1] */
    {N_PO, MP_UNSUBSCRIBED, N_PO, 0, 0, 0, -1},    /* A.2.4 None+PO: S.N., no change [1] */
    {N_PI, MP_UNSUBSCRIBED, NONE, 1, 1, 0, -1},    /* A.2.4 None+PI: MUST -> None */
    {N_POI, MP_UNSUBSCRIBED, N_PO, 1, 1, 0, -1},   /* A.2.4 None+PO+PI: MUST -> None+PO */
    {TO, MP_UNSUBSCRIBED, TO, 0, 0, 0, -1},        /* A.2.4 To: S.N., no change [1] */
    {TO_PI, MP_UNSUBSCRIBED, TO, 1, 1, 0, -1},     /* A.2.4 To+PI: MUST -> To */
    {FROM, MP_UNSUBSCRIBED, NONE, 1, 1, 0, -1},    /* A.2.4 From: MUST -> None */
    {FROM_PO, MP_UNSUBSCRIBED, N_PO, 1, 1, 0, -1}, /* A.2.4 From+PO: MUST -> None+PO */
    {BOTH, MP_UNSUBSCRIBED, TO, 1, 1, 0, -1},      /* A.2.4 Both: MUST -> To */
    /* §3.4 with a pre-approval on record. The A.2.1 and A.2.2 rows of the same state without
     * it apply, and the approval stays: it is about the contact's subscription, they about
     * the user's. */
    {NONE_A, MP_SUBSCRIBE, N_PO_A, 1, 1, 1, -1},   /* A.2.1 None: MUST [1] -> None+PO */
    {N_PO_A, MP_SUBSCRIBE, N_PO_A, 0, 1, 1, -1},   /* A.2.1 None+PO: MUST, no change */
    {TO_A, MP_SUBSCRIBE, TO_A, 0, 1, 1, -1},       /* A.2.1 To: MUST, no change */
    {NONE_A, MP_UNSUBSCRIBE, NONE_A, 0, 1, 0, -1}, /* A.2.2 None: MUST, no change */
    {N_PO_A, MP_UNSUBSCRIBE, NONE_A, 1, 1, 0, -1}, /* A.2.2 None+PO: MUST -> None */
    {TO_A, MP_UNSUBSCRIBE, NONE_A, 1, 1, 0, -1},   /* A.2.2 To: MUST -> None */
    /* §3.4.1: pre-approving again changes nothing and is still not routed. */
    {NONE_A, MP_SUBSCRIBED, NONE_A, 0, 0, 1, -1}, /* A.2.3 None: M.N., already pre-approved */
    {N_PO_A, MP_SUBSCRIBED, N_PO_A, 0, 0, 1, -1}, /* A.2.3 None+PO: M.N., already */
    {TO_A, MP_SUBSCRIBED, TO_A, 0, 0, 1, -1},     /* A.2.3 To: M.N., already */
    /* A.2.4 note [1], §3.4.1: 'unsubscribed' cancels the pre-approval, S.N. route. */
    {NONE_A, MP_UNSUBSCRIBED, NONE, 1, 0, 0, -1}, /* A.2.4 None: S.N., cancel [1] */
    {N_PO_A, MP_UNSUBSCRIBED, N_PO, 1, 0, 0, -1}, /* A.2.4 None+PO: S.N., cancel [1] */
    {TO_A, MP_UNSUBSCRIBED, TO, 1, 0, 0, -1},     /* A.2.4 To: S.N., cancel [1] */
};

/* Inbound: the contact's stanza arrives for the user. route: 1 for the RFC's MUST (deliver),
 * 0 for S.N. create is never set (§3.1.3 security warning). */
static const struct row inbound[] = {
    /* A.3.1, Table 6: inbound "subscribe" (§3.1.3). [2]: SHOULD auto-reply "subscribed". */
    {NONE, MP_SUBSCRIBE, N_PI, 1, 1, 0, -1},            /* A.3.1 None: MUST [1] -> None+PI */
    {N_PO, MP_SUBSCRIBE, N_POI, 1, 1, 0, -1},           /* A.3.1 None+PO: MUST -> None+PO+PI */
    {N_PI, MP_SUBSCRIBE, N_PI, 0, 0, 0, -1},            /* A.3.1 None+PI: S.N., no change */
    {N_POI, MP_SUBSCRIBE, N_POI, 0, 0, 0, -1},          /* A.3.1 None+PO+PI: S.N., no change */
    {TO, MP_SUBSCRIBE, TO_PI, 1, 1, 0, -1},             /* A.3.1 To: MUST -> To+PI */
    {TO_PI, MP_SUBSCRIBE, TO_PI, 0, 0, 0, -1},          /* A.3.1 To+PI: S.N., no change */
    {FROM, MP_SUBSCRIBE, FROM, 0, 0, 0, MP_SUBSCRIBED}, /* A.3.1 From: S.N. [2], §3.1.3 #2 */
    {FROM_PO, MP_SUBSCRIBE, FROM_PO, 0, 0, 0, MP_SUBSCRIBED}, /* A.3.1 From+PO: S.N. [2] */
    {BOTH, MP_SUBSCRIBE, BOTH, 0, 0, 0, MP_SUBSCRIBED},       /* A.3.1 Both: S.N. [2] */
    /* A.3.2, Table 7: inbound "unsubscribe" (§3.3.3). [1]: SHOULD auto-reply "unsubscribed". */
    {NONE, MP_UNSUBSCRIBE, NONE, 0, 0, 0, -1},                 /* A.3.2 None: S.N. */
    {N_PO, MP_UNSUBSCRIBE, N_PO, 0, 0, 0, -1},                 /* A.3.2 None+PO: S.N. */
    {N_PI, MP_UNSUBSCRIBE, NONE, 1, 1, 0, MP_UNSUBSCRIBED},    /* A.3.2 None+PI: MUST [1] */
    {N_POI, MP_UNSUBSCRIBE, N_PO, 1, 1, 0, MP_UNSUBSCRIBED},   /* A.3.2 None+PO+PI: MUST [1] */
    {TO, MP_UNSUBSCRIBE, TO, 0, 0, 0, -1},                     /* A.3.2 To: S.N. */
    {TO_PI, MP_UNSUBSCRIBE, TO, 1, 1, 0, MP_UNSUBSCRIBED},     /* A.3.2 To+PI: MUST [1] */
    {FROM, MP_UNSUBSCRIBE, NONE, 1, 1, 0, MP_UNSUBSCRIBED},    /* A.3.2 From: MUST [1] */
    {FROM_PO, MP_UNSUBSCRIBE, N_PO, 1, 1, 0, MP_UNSUBSCRIBED}, /* A.3.2 From+PO: MUST [1] */
    {BOTH, MP_UNSUBSCRIBE, TO, 1, 1, 0, MP_UNSUBSCRIBED},      /* A.3.2 Both: MUST [1] -> To */
    /* A.3.3, Table 8: inbound "subscribed" (§3.1.6). */
    {NONE, MP_SUBSCRIBED, NONE, 0, 0, 0, -1},    /* A.3.3 None: S.N. */
    {N_PO, MP_SUBSCRIBED, TO, 1, 1, 0, -1},      /* A.3.3 None+PO: MUST -> To */
    {N_PI, MP_SUBSCRIBED, N_PI, 0, 0, 0, -1},    /* A.3.3 None+PI: S.N. */
    {N_POI, MP_SUBSCRIBED, TO_PI, 1, 1, 0, -1},  /* A.3.3 None+PO+PI: MUST -> To+PI */
    {TO, MP_SUBSCRIBED, TO, 0, 0, 0, -1},        /* A.3.3 To: S.N. */
    {TO_PI, MP_SUBSCRIBED, TO_PI, 0, 0, 0, -1},  /* A.3.3 To+PI: S.N. */
    {FROM, MP_SUBSCRIBED, FROM, 0, 0, 0, -1},    /* A.3.3 From: S.N. */
    {FROM_PO, MP_SUBSCRIBED, BOTH, 1, 1, 0, -1}, /* A.3.3 From+PO: MUST -> Both */
    {BOTH, MP_SUBSCRIBED, BOTH, 0, 0, 0, -1},    /* A.3.3 Both: S.N. */
    /* A.3.4, Table 9: inbound "unsubscribed" (§3.2.3). */
    {NONE, MP_UNSUBSCRIBED, NONE, 0, 0, 0, -1},    /* A.3.4 None: S.N. */
    {N_PO, MP_UNSUBSCRIBED, NONE, 1, 1, 0, -1},    /* A.3.4 None+PO: MUST -> None */
    {N_PI, MP_UNSUBSCRIBED, N_PI, 0, 0, 0, -1},    /* A.3.4 None+PI: S.N. */
    {N_POI, MP_UNSUBSCRIBED, N_PI, 1, 1, 0, -1},   /* A.3.4 None+PO+PI: MUST -> None+PI */
    {TO, MP_UNSUBSCRIBED, NONE, 1, 1, 0, -1},      /* A.3.4 To: MUST -> None */
    {TO_PI, MP_UNSUBSCRIBED, N_PI, 1, 1, 0, -1},   /* A.3.4 To+PI: MUST -> None+PI */
    {FROM, MP_UNSUBSCRIBED, FROM, 0, 0, 0, -1},    /* A.3.4 From: S.N. */
    {FROM_PO, MP_UNSUBSCRIBED, FROM, 1, 1, 0, -1}, /* A.3.4 From+PO: MUST -> From */
    {BOTH, MP_UNSUBSCRIBED, FROM, 1, 1, 0, -1},    /* A.3.4 Both: MUST -> From */
    /* §3.4.1 and §3.1.3 rule 2: a pre-approved request is answered 'subscribed' by the server,
     * not delivered to the user; the approval is used up. */
    {NONE_A, MP_SUBSCRIBE, FROM, 1, 0, 0, MP_SUBSCRIBED},    /* A.3.1 None: pre-approved */
    {N_PO_A, MP_SUBSCRIBE, FROM_PO, 1, 0, 0, MP_SUBSCRIBED}, /* A.3.1 None+PO: pre-approved */
    {TO_A, MP_SUBSCRIBE, BOTH, 1, 0, 0, MP_SUBSCRIBED},      /* A.3.1 To: pre-approved */
    /* The other inbound types follow the rows of the state without the approval, which
     * stays on record. */
    {NONE_A, MP_UNSUBSCRIBE, NONE_A, 0, 0, 0, -1},  /* A.3.2 None: S.N. */
    {N_PO_A, MP_UNSUBSCRIBE, N_PO_A, 0, 0, 0, -1},  /* A.3.2 None+PO: S.N. */
    {TO_A, MP_UNSUBSCRIBE, TO_A, 0, 0, 0, -1},      /* A.3.2 To: S.N. */
    {NONE_A, MP_SUBSCRIBED, NONE_A, 0, 0, 0, -1},   /* A.3.3 None: S.N. */
    {N_PO_A, MP_SUBSCRIBED, TO_A, 1, 1, 0, -1},     /* A.3.3 None+PO: MUST -> To */
    {TO_A, MP_SUBSCRIBED, TO_A, 0, 0, 0, -1},       /* A.3.3 To: S.N. */
    {NONE_A, MP_UNSUBSCRIBED, NONE_A, 0, 0, 0, -1}, /* A.3.4 None: S.N. */
    {N_PO_A, MP_UNSUBSCRIBED, NONE_A, 1, 1, 0, -1}, /* A.3.4 None+PO: MUST -> None */
    {TO_A, MP_UNSUBSCRIBED, NONE_A, 1, 1, 0, -1},   /* A.3.4 To: MUST -> None */
};

#define NROWS(t) (sizeof(t) / sizeof((t)[0]))

/* Each table must hold every (state, type) pair exactly once, or a typo could drop a row. */
static void
check_complete(const struct row *t, size_t n)
{
    assert_int_equal(n, NSTATES * 4);
    for (size_t i = 0; i < NSTATES; i++)
        for (int type = 0; type < 4; type++) {
            int seen = 0;
            for (size_t k = 0; k < n; k++)
                seen += t[k].state == all_states[i] && t[k].type == type;
            assert_int_equal(seen, 1);
        }
}

static void
fail_row(const char *dir, const struct row *r, int state, int changed, int route, int create,
         int reply)
{
    print_error("%s %s in state %d: got state %d changed %d route %d create %d reply %d, "
                "want %d %d %d %d %d\n",
                dir, mp_sub_type_name(r->type), r->state, state, changed, route, create, reply,
                r->new_state, r->changed, r->route, r->create, r->auto_reply);
    fail();
}

static void
test_outbound_table(void **st)
{
    (void)st;
    check_complete(outbound, NROWS(outbound));
    for (size_t i = 0; i < NROWS(outbound); i++) {
        const struct row *r = &outbound[i];
        mp_sub_effect e;
        memset(&e, 0x5a, sizeof e);
        mp_sub_outbound(r->state, 1, r->type, &e);
        if (e.state != r->new_state || e.changed != r->changed || e.route != r->route ||
            e.create != r->create)
            fail_row("outbound", r, e.state, e.changed, e.route, e.create, -1);
    }
}

static void
test_inbound_table(void **st)
{
    (void)st;
    check_complete(inbound, NROWS(inbound));
    for (size_t i = 0; i < NROWS(inbound); i++) {
        const struct row *r = &inbound[i];
        mp_sub_inbound_effect ie;
        memset(&ie, 0x5a, sizeof ie);
        mp_sub_inbound(r->state, 1, r->type, &ie);
        if (ie.e.state != r->new_state || ie.e.changed != r->changed || ie.e.route != r->route ||
            ie.e.create != r->create || ie.auto_reply != r->auto_reply)
            fail_row("inbound", r, ie.e.state, ie.e.changed, ie.e.route, ie.e.create,
                     ie.auto_reply);
    }
}

/* A.1 note: "None" includes a contact not in the roster at all; state 3 ("None + Pending In")
 * may be on record without an item. The rows for those two states apply unchanged. */
static void
test_no_item(void **st)
{
    (void)st;
    for (size_t i = 0; i < NROWS(outbound); i++) {
        const struct row *r = &outbound[i];
        if (r->state != NONE && r->state != N_PI)
            continue;
        mp_sub_effect e;
        mp_sub_outbound(r->state, 0, r->type, &e);
        if (e.state != r->new_state || e.changed != r->changed || e.route != r->route ||
            e.create != r->create)
            fail_row("outbound/no item", r, e.state, e.changed, e.route, e.create, -1);
    }
    for (size_t i = 0; i < NROWS(inbound); i++) {
        const struct row *r = &inbound[i];
        if (r->state != NONE && r->state != N_PI)
            continue;
        mp_sub_inbound_effect ie;
        mp_sub_inbound(r->state, 0, r->type, &ie);
        if (ie.e.state != r->new_state || ie.e.changed != r->changed || ie.e.route != r->route ||
            ie.e.create != 0 || ie.auto_reply != r->auto_reply)
            fail_row("inbound/no item", r, ie.e.state, ie.e.changed, ie.e.route, ie.e.create,
                     ie.auto_reply);
    }

    /* §3.1.6 / §3.2.3: a contact not in the roster gets its subscribed/unsubscribed ignored,
     * even if the caller passes stale subscription bits along with has_item = 0. */
    mp_sub_inbound_effect ie;
    mp_sub_inbound(N_PO, 0, MP_SUBSCRIBED, &ie);
    assert_int_equal(ie.e.route, 0);
    assert_int_equal(ie.e.state, NONE);
    mp_sub_inbound(TO, 0, MP_UNSUBSCRIBED, &ie);
    assert_int_equal(ie.e.route, 0);
    assert_int_equal(ie.e.state, NONE);
    /* No item and a stale 'from': the request is a new one, not auto-approved. */
    mp_sub_inbound(FROM, 0, MP_SUBSCRIBE, &ie);
    assert_int_equal(ie.e.route, 1);
    assert_int_equal(ie.auto_reply, -1);
    assert_int_equal(ie.e.state, N_PI);
    assert_int_equal(ie.e.create, 0);
}

/* States outside the nine of A.1 are mapped onto them, and the repair counts as a change so
 * the caller stores it. */
static void
test_malformed_state(void **st)
{
    (void)st;
    mp_sub_effect e;
    /* 'to' with ask='subscribe' is "To": a subscribe is routed, the stray ask dropped. */
    mp_sub_outbound(TO | MP_SUB_PENDING_OUT, 1, MP_SUBSCRIBE, &e);
    assert_int_equal(e.state, TO);
    assert_int_equal(e.changed, 1);
    assert_int_equal(e.route, 1);
    /* 'from' with a pending request is "From": approving again is not routed. */
    mp_sub_outbound(FROM | MP_SUB_PENDING_IN, 1, MP_SUBSCRIBED, &e);
    assert_int_equal(e.state, FROM);
    assert_int_equal(e.changed, 1);
    assert_int_equal(e.route, 0);
    /* Unknown high bits are dropped. */
    mp_sub_outbound(BOTH | 0x100, 1, MP_UNSUBSCRIBE, &e);
    assert_int_equal(e.state, FROM);
    assert_int_equal(e.changed, 1);

    mp_sub_inbound_effect ie;
    mp_sub_inbound(BOTH | MP_SUB_PENDING_IN | MP_SUB_PENDING_OUT, 1, MP_SUBSCRIBE, &ie);
    assert_int_equal(ie.e.state, BOTH);
    assert_int_equal(ie.e.changed, 1);
    assert_int_equal(ie.e.route, 0);
    assert_int_equal(ie.auto_reply, MP_SUBSCRIBED);

    /* A pre-approval next to the subscription or a pending request is dropped (§3.4.1 records
     * one only without them): approving the request is still the user's call. */
    mp_sub_outbound(FROM | MP_SUB_APPROVED, 1, MP_SUBSCRIBED, &e);
    assert_int_equal(e.state, FROM);
    assert_int_equal(e.changed, 1);
    assert_int_equal(e.route, 0);
    mp_sub_inbound(N_PI | MP_SUB_APPROVED, 1, MP_SUBSCRIBE, &ie);
    assert_int_equal(ie.e.state, N_PI);
    assert_int_equal(ie.e.changed, 1);
    assert_int_equal(ie.auto_reply, -1);
    /* The approval lives on a roster item: without one it does not count. */
    mp_sub_inbound(NONE_A, 0, MP_SUBSCRIBE, &ie);
    assert_int_equal(ie.e.state, N_PI);
    assert_int_equal(ie.e.route, 1);
    assert_int_equal(ie.auto_reply, -1);
    /* Stored with the storage-only HIDDEN bit, it is dropped too (callers mask it off). */
    mp_sub_outbound(NONE_A | MP_SUB_HIDDEN, 1, MP_UNSUBSCRIBED, &e);
    assert_int_equal(e.state, NONE);
}

/* An unknown type changes nothing and routes nothing. */
static void
test_bad_type(void **st)
{
    (void)st;
    for (size_t i = 0; i < NSTATES; i++) {
        const int bad[] = {-1, 4, 1000};
        for (size_t k = 0; k < 3; k++) {
            mp_sub_effect e;
            mp_sub_outbound(all_states[i], 1, bad[k], &e);
            assert_int_equal(e.state, all_states[i]);
            assert_int_equal(e.changed, 0);
            assert_int_equal(e.route, 0);
            assert_int_equal(e.create, 0);
            mp_sub_inbound_effect ie;
            mp_sub_inbound(all_states[i], 1, bad[k], &ie);
            assert_int_equal(ie.e.state, all_states[i]);
            assert_int_equal(ie.e.changed, 0);
            assert_int_equal(ie.e.route, 0);
            assert_int_equal(ie.auto_reply, -1);
        }
    }
}

/* The contact's view of the same relationship: 'to' and 'from' swap, and so do the pending
 * directions. */
static int
mirror(int s)
{
    int m = 0;
    if (s & MP_SUB_TO)
        m |= MP_SUB_FROM;
    if (s & MP_SUB_FROM)
        m |= MP_SUB_TO;
    if (s & MP_SUB_PENDING_OUT)
        m |= MP_SUB_PENDING_IN;
    if (s & MP_SUB_PENDING_IN)
        m |= MP_SUB_PENDING_OUT;
    return m;
}

/* A pre-approval is recorded only where §3.4.1 allows it. */
static void
check_approved(int s)
{
    if (s & MP_SUB_APPROVED)
        assert_int_equal(s & (MP_SUB_FROM | MP_SUB_PENDING_IN), 0);
}

/* Both parties on one server, rosters in step: the user's outbound processing, then (if
 * routed) the contact's inbound processing, then any auto-reply processed inbound at the
 * user. Afterwards the two rosters must still mirror each other (a pre-approval is the
 * user's alone and has no mirror): the A.2 and A.3 tables are each other's mirror image.
 * Sequences of two stanzas walk every reachable pair. */
static void
exchange(int *user, int *contact, int type)
{
    mp_sub_effect e;
    mp_sub_outbound(*user, 1, type, &e);
    if (!e.route) {
        /* Nothing sent, nothing to fall out of step: only a pre-approval may come or go. */
        assert_int_equal(e.state & ~MP_SUB_APPROVED, *user & ~MP_SUB_APPROVED);
        assert_int_equal(e.changed, e.state != *user);
        *user = e.state;
        check_approved(*user);
        return;
    }
    *user = e.state;
    int approved = *contact & MP_SUB_APPROVED;
    mp_sub_inbound_effect ie;
    mp_sub_inbound(*contact, 1, type, &ie);
    *contact = ie.e.state;
    if (ie.auto_reply >= 0) {
        mp_sub_inbound_effect back;
        mp_sub_inbound(*user, 1, ie.auto_reply, &back);
        /* An auto-reply to a subscriber confirms what the user has; one on a pre-approval is
         * the answer the user's pending request was waiting for. */
        assert_int_equal(back.e.changed, approved && type == MP_SUBSCRIBE);
        assert_int_equal(back.auto_reply, -1);
        *user = back.e.state;
    }
    check_approved(*user);
    check_approved(*contact);
}

static void
test_two_rosters_in_step(void **st)
{
    (void)st;
    for (size_t i = 0; i < NSTATES; i++)
        for (int ca = 0; ca < 2; ca++)
            for (int t1 = 0; t1 < 4; t1++)
                for (int t2 = 0; t2 < 4; t2++)
                    for (int second_by_contact = 0; second_by_contact < 2; second_by_contact++) {
                        int user = all_states[i], contact = mirror(user);
                        if (ca) {
                            /* the contact may hold a pre-approval of its own */
                            if (contact & (MP_SUB_FROM | MP_SUB_PENDING_IN))
                                continue;
                            contact |= MP_SUB_APPROVED;
                        }
                        exchange(&user, &contact, t1);
                        assert_int_equal(contact & ~MP_SUB_APPROVED, mirror(user));
                        if (second_by_contact)
                            exchange(&contact, &user, t2);
                        else
                            exchange(&user, &contact, t2);
                        assert_int_equal(contact & ~MP_SUB_APPROVED, mirror(user));
                    }
}

/* §3.1: the whole handshake from "None" to "Both" on both sides. */
static void
test_handshake(void **st)
{
    (void)st;
    int romeo = NONE, juliet = NONE;
    exchange(&romeo, &juliet, MP_SUBSCRIBE);
    assert_int_equal(romeo, N_PO);
    assert_int_equal(juliet, N_PI);
    exchange(&juliet, &romeo, MP_SUBSCRIBED);
    assert_int_equal(romeo, TO);
    assert_int_equal(juliet, FROM);
    exchange(&juliet, &romeo, MP_SUBSCRIBE);
    assert_int_equal(romeo, TO_PI);
    assert_int_equal(juliet, FROM_PO);
    exchange(&romeo, &juliet, MP_SUBSCRIBED);
    assert_int_equal(romeo, BOTH);
    assert_int_equal(juliet, BOTH);
    /* §3.3 then §3.2: Romeo unsubscribes, Juliet cancels his access. */
    exchange(&romeo, &juliet, MP_UNSUBSCRIBE);
    assert_int_equal(romeo, FROM);
    assert_int_equal(juliet, TO);
    exchange(&romeo, &juliet, MP_UNSUBSCRIBED);
    assert_int_equal(romeo, NONE);
    assert_int_equal(juliet, NONE);
}

/* §3.4: Romeo pre-approves Juliet; her later request is granted without asking him. A
 * cancelled pre-approval leaves the request to Romeo again. */
static void
test_pre_approval(void **st)
{
    (void)st;
    int romeo = NONE, juliet = NONE;
    exchange(&romeo, &juliet, MP_SUBSCRIBED);
    assert_int_equal(romeo, NONE_A);
    assert_int_equal(juliet, NONE);
    mp_sub_inbound_effect ie;
    mp_sub_inbound(romeo, 1, MP_SUBSCRIBE, &ie);
    assert_int_equal(ie.e.route, 0); /* §3.4.1: Romeo is not bothered */
    assert_int_equal(ie.auto_reply, MP_SUBSCRIBED);
    exchange(&juliet, &romeo, MP_SUBSCRIBE);
    assert_int_equal(romeo, FROM);
    assert_int_equal(juliet, TO);
    /* Romeo pre-approves again while asking for hers, then takes it back. */
    exchange(&romeo, &juliet, MP_UNSUBSCRIBED);
    assert_int_equal(romeo, NONE);
    assert_int_equal(juliet, NONE);
    exchange(&romeo, &juliet, MP_SUBSCRIBE);
    exchange(&romeo, &juliet, MP_SUBSCRIBED);
    assert_int_equal(romeo, N_PO_A);
    assert_int_equal(juliet, N_PI);
    exchange(&romeo, &juliet, MP_UNSUBSCRIBED);
    assert_int_equal(romeo, N_PO);
    mp_sub_inbound(romeo, 1, MP_SUBSCRIBE, &ie);
    assert_int_equal(ie.e.route, 1);
    assert_int_equal(ie.auto_reply, -1);
    assert_int_equal(ie.e.state, N_POI);
    /* Juliet's answer keeps a pre-approval in place; the request then uses it up. */
    romeo = N_PO_A;
    juliet = N_PI;
    exchange(&juliet, &romeo, MP_SUBSCRIBED);
    assert_int_equal(romeo, TO_A);
    assert_int_equal(juliet, FROM);
    exchange(&juliet, &romeo, MP_SUBSCRIBE);
    assert_int_equal(romeo, BOTH);
    assert_int_equal(juliet, BOTH);
}

static void
test_type_parse_and_name(void **st)
{
    (void)st;
    static const struct {
        const char *s;
        int want;
    } cases[] = {
        {"subscribe", MP_SUBSCRIBE},
        {"subscribed", MP_SUBSCRIBED},
        {"unsubscribe", MP_UNSUBSCRIBE},
        {"unsubscribed", MP_UNSUBSCRIBED},
        {"", -1},
        {"Subscribe", -1},
        {"SUBSCRIBED", -1},
        {"subscribe ", -1},
        {" subscribe", -1},
        {"subscribedd", -1},
        {"unsub", -1},
        {"probe", -1},
        {"unavailable", -1},
        {"error", -1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_int_equal(mp_sub_type_parse(cases[i].s, strlen(cases[i].s)), cases[i].want);

    /* The length counts, not a terminator: a prefix of a longer buffer. */
    assert_int_equal(mp_sub_type_parse("subscribed", 9), MP_SUBSCRIBE);
    assert_int_equal(mp_sub_type_parse("unsubscribedXYZ", 12), MP_UNSUBSCRIBED);
    assert_int_equal(mp_sub_type_parse("subscribe", 8), -1);
    assert_int_equal(mp_sub_type_parse("subscribe\0d", 10), -1);
    assert_int_equal(mp_sub_type_parse(NULL, 0), -1);

    for (int t = 0; t < 4; t++) {
        const char *n = mp_sub_type_name(t);
        assert_non_null(n);
        assert_int_equal(mp_sub_type_parse(n, strlen(n)), t);
    }
    assert_string_equal(mp_sub_type_name(MP_SUBSCRIBE), "subscribe");
    assert_string_equal(mp_sub_type_name(MP_SUBSCRIBED), "subscribed");
    assert_string_equal(mp_sub_type_name(MP_UNSUBSCRIBE), "unsubscribe");
    assert_string_equal(mp_sub_type_name(MP_UNSUBSCRIBED), "unsubscribed");
    assert_null(mp_sub_type_name(-1));
    assert_null(mp_sub_type_name(4));
}

/* A.1: the roster's subscription attribute shows only the to/from part of the state; the
 * pending flags live in ask= (out) or nowhere (in). */
static void
test_attr(void **st)
{
    (void)st;
    static const struct {
        int state;
        const char *attr;
    } cases[] = {
        {NONE, "none"}, {N_PO, "none"},   {N_PI, "none"},   {N_POI, "none"},
        {TO, "to"},     {TO_PI, "to"},    {FROM, "from"},   {FROM_PO, "from"},
        {BOTH, "both"}, {NONE_A, "none"}, {N_PO_A, "none"}, {TO_A, "to"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_string_equal(mp_sub_attr(cases[i].state), cases[i].attr);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_outbound_table), cmocka_unit_test(test_inbound_table),
        cmocka_unit_test(test_no_item),        cmocka_unit_test(test_malformed_state),
        cmocka_unit_test(test_bad_type),       cmocka_unit_test(test_two_rosters_in_step),
        cmocka_unit_test(test_handshake),      cmocka_unit_test(test_type_parse_and_name),
        cmocka_unit_test(test_attr),           cmocka_unit_test(test_pre_approval),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
