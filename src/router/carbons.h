/* Message Carbons (XEP-0280): copies of a user's one-to-one messages for the user's other
 * resources that asked for them.
 *
 * A session switches carbons on and off with an IQ (modules/carbons.c). The router calls the
 * hooks below from route_to_user: mp_carbons_sent when a session sends a message, and
 * mp_carbons_received after a message was delivered to the resources RFC 6121 §8 chooses
 * (each one marked with mp_carbons_mark). A resource that got the message itself never gets a
 * carbon of it (XEP-0280 §6), so a message to a bare JID shown on every resource of equal
 * priority is not duplicated.
 *
 * The eligibility rules (XEP-0280 §6.1, with the XEP-0334 hints) and the wrapping are pure and
 * work on a parsed message; the hooks look at sessions and privacy lists. A message costs one
 * loop over the account's sessions when none of them enabled carbons. */
#ifndef MP_ROUTER_CARBONS_H
#define MP_ROUTER_CARBONS_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "xml/tree.h"

#define MP_NS_CARBONS "urn:xmpp:carbons:2"
#define MP_NS_FORWARD "urn:xmpp:forward:0"
#define MP_NS_HINTS "urn:xmpp:hints"

/* mp_cstream.carbons bits */
#define MP_CARBONS_ON 0x01  /* the session enabled carbons */
#define MP_CARBONS_GOT 0x02 /* it received the message being routed (cleared afterwards) */

enum mp_carbons_dir { MP_CARBONS_RECEIVED = 0, MP_CARBONS_SENT };

/* Nonzero when the message msg (parsed, its 'type' given separately as type/type_len, as the
 * framer extracted it) may be copied: type chat, or normal with a <body/> or an IM payload
 * (chat states, receipts, chat markers); never errors, groupchat, headlines, carbons
 * themselves, archive results, or messages marked <private/> or <no-copy/>. */
int mp_carbons_eligible(const mp_xnode *msg, const char *type, size_t type_len);

/* Append to out the carbon of the message bytes (a canonical <message/> whose namespace is
 * inherited) for the session full_jid of the account bare: <message from='bare' to='full'
 * type='type'><received|sent xmlns='urn:xmpp:carbons:2'><forwarded
 * xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' .../></forwarded>... with the
 * original's bytes otherwise untouched. type (may be empty) and the JIDs are plain text.
 * Returns 0, MP_EINVAL (bytes is no <message/>) or MP_ENOMEM. */
int mp_carbons_wrap(mp_buf *out, int dir, const char *bare, size_t bare_len, const char *full,
                    size_t full_len, const char *type, size_t type_len, const char *bytes,
                    size_t len);

/* ---- hooks (core thread) ---- */
struct mp_core;
struct mp_cstream;
struct mp_frame;
struct mp_user;

/* The carbons IQ of the stream conn: on or off. 0, or MP_ENOTFOUND when conn has no bound
 * session. */
int mp_carbons_set(struct mp_core *core, uint64_t conn, int on);

/* Session s sent the message f to the local account u (NULL when no session of it is bound;
 * u may be s's own account): <sent/> copies to s's other carbons-enabled resources. */
void mp_carbons_sent(struct mp_core *core, struct mp_cstream *s, const struct mp_frame *f,
                     struct mp_user *u);

/* r got the message being routed itself: no carbon of it for r. */
void mp_carbons_mark(struct mp_cstream *r);

/* The message f from session from was delivered to got (when not NULL) and to the resources of
 * u that are marked: <received/> copies to u's other carbons-enabled resources (never back to
 * from), and the marks cleared. bytes/len: the message as the recipients got it. */
void mp_carbons_received(struct mp_core *core, struct mp_cstream *from, const struct mp_frame *f,
                         const char *bytes, size_t len, struct mp_user *u, struct mp_cstream *got);

#endif
