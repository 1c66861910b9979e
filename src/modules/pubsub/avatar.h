/* XEP-0398: an avatar published in PEP (XEP-0084) is the account's vCard PHOTO (XEP-0153), and
 * the other way round, while pubsub.avatar_conversion is on. */
#ifndef MP_MODULES_PUBSUB_AVATAR_H
#define MP_MODULES_PUBSUB_AVATAR_H

#include "xml/tree.h"

struct mp_core;

/* vcard.c calls this after storing vcard for node@domain: a PHOTO not yet in PEP is published
 * to urn:xmpp:avatar:data and urn:xmpp:avatar:metadata, with notifications. Does nothing when
 * the pubsub module is not loaded or the conversion is off. Failures are logged. */
void mp_pubsub_avatar_from_vcard(struct mp_core *core, const char *domain, const char *node,
                                 const mp_xnode *vcard);

#endif
