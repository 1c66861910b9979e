/* Stream management (XEP-0198) on the core: <enable/>, acknowledgements both ways, a session
 * that outlives its connection for a while, <resume/> from any mux, and what happens to the
 * stanzas nobody acknowledged. The queue itself is router/sm.h. */
#ifndef MP_ROUTER_SM_SESSION_H
#define MP_ROUTER_SM_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "router/core_int.h"

#define MP_NS_SM3 "urn:xmpp:sm:3"

/* An element of the urn:xmpp:sm:3 namespace from an authenticated stream. s may be freed
 * (a resumption replaces it with the session it resumes). */
void mp_sm_element(mp_core *core, mp_cstream *s, const mp_xnode *el);

/* A stanza from the client was handled (counts toward our h); s->sm is set. */
void mp_sm_handled(mp_cstream *s);

/* mp_core_send on a stream with stream management: keep a copy of a stanza until the client
 * acknowledges it. Returns 1 when the bytes must not be written now (the session waits for
 * resumption), 0 to write them. */
int mp_sm_sent(mp_core *core, mp_cstream *s, const char *bytes, size_t len);

/* The connection of s is gone. Returns 1 when the session stays, waiting for <resume/>;
 * 0 when the caller frees it (clean </stream:stream>, no resumption, or shutting down). */
int mp_sm_detach(mp_core *core, mp_cstream *s, int clean);

/* The session ends (called by stream_free after the resource is unbound): every stanza still
 * unacknowledged is delivered to another resource, stored offline, bounced or dropped. */
void mp_sm_end(mp_core *core, mp_cstream *s);

/* Nonzero while s has no connection and waits for <resume/>. */
int mp_sm_waiting(const mp_cstream *s);

/* The core is stopping: release the session's timer (its queue is spilled when the stream is
 * freed). */
void mp_sm_stop(mp_core *core, mp_cstream *s);

#endif
