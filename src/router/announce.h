/* Announcements (ejabberd's mod_announce convention): a message to <host>/announce/online from
 * a sender that acl.send_alerts allows goes out as a headline, from the server, to every
 * available session of that host. */
#ifndef MP_ROUTER_ANNOUNCE_H
#define MP_ROUTER_ANNOUNCE_H

#include "router/core_int.h"
#include "xmpp/jid.h"

/* Called for a message to a hosted domain with a resource and no node. Returns 1 when to is an
 * announcement address (the message was delivered, refused or dropped), 0 otherwise. */
int mp_announce_route(mp_core *core, mp_cstream *s, const mp_frame *f, const mp_jid *to);

#endif
