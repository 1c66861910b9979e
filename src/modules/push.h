/* Push notifications (XEP-0357): the forms of push_form.c, shared by the push module and its
 * unit tests. */
#ifndef MP_MODULES_PUSH_H
#define MP_MODULES_PUSH_H

#include <stddef.h>

#include "base/arena.h"
#include "base/buf.h"
#include "xml/tree.h"

#define MP_NS_PUSH "urn:xmpp:push:0"
#define MP_NS_PUBSUB "http://jabber.org/protocol/pubsub"
#define MP_NS_DATA "jabber:x:data"
#define MP_PUSH_SUMMARY "urn:xmpp:push:summary"
#define MP_PUBLISH_OPTIONS "http://jabber.org/protocol/pubsub#publish-options"
/* The field of an <enable/>'s publish-options by which the user asks for message bodies in
 * the notifications (push.body_opt_in). It is kept by the server, not sent to the app server. */
#define MP_PUSH_BODY_FIELD "include-body"
/* Bodies in a notification are cut to this many bytes (at a UTF-8 boundary). */
#define MP_PUSH_BODY_MAX 1024

/* What an <enable/> asks for, read by mp_push_enable_read. */
typedef struct mp_push_enable {
    const char *jid;  /* the app server, prepared (in the arena) */
    const char *node; /* the node on it, as given */
    mp_buf options;   /* the publish-options form to send along ("" when none), owned */
    int want_body;    /* the form's include-body field was true */
} mp_push_enable;

/* Check and read <enable xmlns='urn:xmpp:push:0' jid node>[<x/>]</enable> into e (strings in
 * a; e->options to be freed with mp_buf_free). A form must be a data form of FORM_TYPE
 * pubsub#publish-options (§5: type submit); the include-body field is taken out of it.
 * Returns 0, MP_EINVAL (no jid, no node, malformed jid, another form) or MP_ENOMEM. */
int mp_push_enable_read(mp_arena *a, const mp_xnode *enable, mp_push_enable *e);

/* The payload of the publish to an app server (§7): <pubsub><publish node><item><notification>
 * with the urn:xmpp:push:summary form (message-count, last-message-sender when not NULL,
 * last-message-body when body is not NULL, cut to MP_PUSH_BODY_MAX), then <publish-options>
 * holding options (a serialized form, appended as is) when olen > 0. Appends to out; 0 or
 * MP_ENOMEM. */
int mp_push_payload(mp_buf *out, const char *node, unsigned count, const char *sender,
                    const char *body, const char *options, size_t olen);

/* The text a notification tells of a message (its first <body/>), NULL when the message
 * carries nothing a user would be notified of: no body and no encrypted payload (OMEMO,
 * OpenPGP). *encrypted is set when the payload is encrypted (no body text is then sent). */
const char *mp_push_message_text(const mp_xnode *message, int *encrypted);

#endif
