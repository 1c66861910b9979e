/* Message archive (XEP-0313) on the routing path, and stanza ids (XEP-0359).
 *
 * route_to_user hands every message to mp_archive_route before delivering it. A one-to-one
 * message worth keeping (chat or normal with a body, a chat marker or a receipt) is appended
 * to the sender's archive (OUT) and to the recipient's (IN) when their preferences say so; the
 * recipient's copy is routed on with <stanza-id by='recipient' id='archive id'/>. Stanza ids a
 * client made up for our accounts are removed first (XEP-0359 §5).
 *
 * Appends are grouped into one storage transaction (batch_begin/batch_end) closed by a timer of
 * a few milliseconds or after a number of appends, so a burst costs one fsync. The id of an
 * append is known at once (the store draws it), so the stanza-id never waits for the commit.
 *
 * The pure helpers (parsing, rewriting, dates) are unit tested; the hooks need the core. */
#ifndef MP_ROUTER_ARCHIVE_H
#define MP_ROUTER_ARCHIVE_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "xml/tree.h"

#define MP_NS_MAM "urn:xmpp:mam:2"
#define MP_NS_SID "urn:xmpp:sid:0"
#define MP_NS_FORWARD "urn:xmpp:forward:0"
#define MP_NS_DELAY "urn:xmpp:delay"
#define MP_NS_RSM "http://jabber.org/protocol/rsm"
#define MP_NS_FULLTEXT "urn:xmpp:fulltext:0"

/* Appends grouped into one transaction at most. */
#define MP_ARCHIVE_BATCH_MAX 256

/* What a message carries that matters to the archive. */
typedef struct mp_archive_msg {
    int keep;              /* worth archiving: a body, a chat marker or a receipt */
    const char *body;      /* text of the first <body/>, NULL when none */
    const char *origin_id; /* <origin-id id=''/>, NULL when none */
    int spoofed;           /* <stanza-id/> elements claiming to be by one of the JIDs given */
} mp_archive_msg;

/* Look at a parsed <message/> (type chat, normal or none; the caller checks the type).
 * Stanza-ids whose 'by' equals by1 or by2 (bare JIDs; either may be NULL) are counted in
 * spoofed and unlinked from the tree when unlink is set. */
void mp_archive_inspect(mp_xnode *msg, const char *by1, const char *by2, int unlink,
                        mp_archive_msg *out);

/* Append to out the message bytes with <stanza-id xmlns='urn:xmpp:sid:0' by='by' id='id'/>
 * as its last child (a self-closed <message/> is opened). MP_EINVAL when bytes is no element
 * ending in '/>' or '</message>'. */
int mp_archive_add_stanza_id(mp_buf *out, const char *bytes, size_t len, const char *by,
                             const char *id);


/* One query result (XEP-0313 §4.2): <message to='to' from='from'><result queryid id>
 * <forwarded><delay stamp/>stored</forwarded></result></message>, appended to out. stored is a
 * message as routed (its namespace inherited): xmlns='jabber:client' is declared on it. */
int mp_archive_result(mp_buf *out, const char *to, const char *from, const char *queryid,
                      const char *id, int64_t stamp, const char *stored, size_t len);

/* ---- hooks (core thread) ---- */
struct mp_core;
struct mp_cstream;
struct mp_frame;
struct mp_jid;
struct mp_user;

/* The mam module switches archiving on (timers started) and off. 0 or MP_ENOMEM. */
int mp_archive_enable(struct mp_core *core, int on);
int mp_archive_enabled(const struct mp_core *core);

/* A message from s to the local account of `to` (u: its sessions, NULL when none) is about to
 * be routed. Archives it as the preferences ask and returns the frame to route on: f itself,
 * or a copy (valid until the next call) with spoofed stanza-ids removed and the recipient's
 * stanza-id added. */
const struct mp_frame *mp_archive_route(struct mp_core *core, struct mp_cstream *s,
                                        const struct mp_frame *f, const struct mp_jid *to,
                                        struct mp_user *u);

/* Append to the archive of any owner (a room: domain = the MUC service, node = the room), in
 * the open group commit when archiving is on, directly otherwise. id gets the archive id
 * (cap >= MP_ARCHIVE_ID_SIZE). 0 or MP_E*. */
struct mp_archive_item;
int mp_archive_append_owner(struct mp_core *core, const char *domain, const char *node,
                            const struct mp_archive_item *it, int64_t max_items, char *id,
                            size_t cap);

/* Commit the open batch, if any: before a query, before acknowledging durability (offline
 * storage, XEP-0198 acks) and at shutdown. */
void mp_archive_flush(struct mp_core *core);
/* Shutdown: flush, close the timers. Archiving is off afterwards. */
void mp_archive_stop(struct mp_core *core);

/* Send bytes to the stream conn (query results), if it is still there. */
void mp_archive_send(struct mp_core *core, uint64_t conn, const char *bytes, size_t len);

#endif
