/* Client State Indication (XEP-0352): a client that says it is <inactive/> (a phone in a
 * pocket) does not need every presence change of its contacts at once.
 *
 * While a session is inactive, presence notifications to it (available and unavailable) are
 * held, folded to the latest one per sender full JID, in a buffer of at most
 * csi.max_presences entries (and MP_CSI_MAX_BYTES bytes); when it is full, everything held
 * goes out. Messages and IQs are never held. A stanza the user will look at — a message with a
 * <body/> (also inside a carbon), a message error, a subscription request or answer — first
 * flushes what is held, so the client never sees a contact's message before the presence that
 * came ahead of it. <active/> flushes too; the end of the session frees the buffer.
 *
 * An active session has no CSI state at all (s->csi is NULL): sending to it costs one check. */
#ifndef MP_ROUTER_CSI_H
#define MP_ROUTER_CSI_H

#include <stddef.h>

#include "xml/tree.h"

#define MP_NS_CSI "urn:xmpp:csi:0"
#define MP_CSI_FEATURE "<csi xmlns='" MP_NS_CSI "'/>"
/* Bytes held for one session at most, whatever the count allows. */
#define MP_CSI_MAX_BYTES (1u << 20)

struct mp_core;
struct mp_cstream;

typedef struct mp_csi mp_csi;

/* A top-level element of a bound session: <inactive/> or <active/> in urn:xmpp:csi:0. Returns 1
 * when it was one of ours (handled), 0 when el is something else. */
int mp_csi_element(struct mp_core *core, struct mp_cstream *s, const mp_xnode *el);

/* Send bytes (one stanza) to the session r, or hold them while r is inactive. */
void mp_csi_send(struct mp_core *core, struct mp_cstream *r, const char *bytes, size_t len);

/* Deliver what is held for s now (nothing when s is active). */
void mp_csi_flush(struct mp_core *core, struct mp_cstream *s);

/* The session ends: what is held is dropped (the client is gone), the state freed. */
void mp_csi_end(struct mp_cstream *s);

/* Presences held for s, for tests and statistics. */
int mp_csi_held(const struct mp_cstream *s);

#endif
