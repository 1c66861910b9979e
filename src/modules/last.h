/* XEP-0012 Last Activity: what the core tells the module, and the access rule the modules
 * answering for an account's bare JID share (last activity, disco). */
#ifndef MP_MODULES_LAST_H
#define MP_MODULES_LAST_H

#include "magpie/module.h"
#include "xmpp/jid.h"

struct mp_core;

/* Remember that node@domain has just ended a session, with the <status/> text of its
 * unavailable presence (NULL or "" when none). Called by the presence engine when a bound
 * session ends; failures are logged, never fatal. */
void mp_last_logout(struct mp_core *core, const char *domain, const char *node, const char *status);

/* An IQ to a local account's bare JID (or with no 'to': the requester's own), resolved. */
typedef struct mp_account_query {
    mp_jid target; /* node and domain of the account addressed */
    char bare[2 * MP_JID_PART_MAX + 2];
    int self;    /* the requester is that account */
    int exists;  /* the account is in storage */
    int may_see; /* self, or the account's roster gives the requester a 'from' subscription */
} mp_account_query;

/* 0, MP_EINVAL (malformed JIDs) or MP_EIO (storage failed). */
int mp_account_query_resolve(mp_iq *iq, mp_account_query *q);

#endif
