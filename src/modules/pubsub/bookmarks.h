/* XEP-0411: bookmarks kept in sync between XEP-0402 (PEP node urn:xmpp:bookmarks:1) and the
 * legacy XEP-0048 document in XEP-0049 private storage. */
#ifndef MP_MODULES_PUBSUB_BOOKMARKS_H
#define MP_MODULES_PUBSUB_BOOKMARKS_H

#include "xml/tree.h"

struct mp_core;

/* private.c calls this after storing a <storage xmlns='storage:bookmarks'/> document for
 * node@domain: the PEP items follow it (one per room, published or retracted with
 * notifications). Does nothing when the pubsub module is not loaded. Failures are logged. */
void mp_pubsub_bookmarks_from_private(struct mp_core *core, const char *domain, const char *node,
                                      const mp_xnode *storage);

#endif
