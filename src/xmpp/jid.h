/* JIDs (RFC 7622 in the stringprep flavour XMPP servers deploy: nodeprep,
 * nameprep/IDNA for the domain, resourceprep). */
#ifndef MP_XMPP_JID_H
#define MP_XMPP_JID_H

#include <stddef.h>

#define MP_JID_PART_MAX 1023
#define MP_JID_MAX (3 * MP_JID_PART_MAX + 3) /* node@domain/resource and its NUL */

/* Scratch value (3 KiB): use on the stack, never keep one per session. */
typedef struct mp_jid {
    char node[MP_JID_PART_MAX + 1];
    char domain[MP_JID_PART_MAX + 1];
    char resource[MP_JID_PART_MAX + 1];
    size_t node_len, domain_len, resource_len;
} mp_jid;

/* Split and prepare in[0..len). Empty parts are absent (len 0).
 * Returns 0, or MP_EINVAL for a malformed or unpreparable JID
 * (empty domain, empty node before '@', empty resource after '/', part over 1023 bytes,
 * prohibited characters, invalid UTF-8). ASCII input takes a fast path without stringprep. */
int mp_jid_prep(const char *in, size_t len, mp_jid *out);

/* Prepare one part into out (cap bytes incl. NUL); returns the length or MP_EINVAL. */
int mp_jid_nodeprep(const char *in, size_t len, char *out, size_t cap);
int mp_jid_nameprep(const char *in, size_t len, char *out, size_t cap);
int mp_jid_resourceprep(const char *in, size_t len, char *out, size_t cap);

/* Write "node@domain" / "node@domain/resource" into buf; returns length, or MP_ELIMIT when
 * cap is too small. */
int mp_jid_bare(const mp_jid *j, char *buf, size_t cap);
int mp_jid_full(const mp_jid *j, char *buf, size_t cap);

#endif
