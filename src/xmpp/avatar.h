/* Avatars as the server sees them: a vCard's PHOTO (XEP-0153) and a PEP avatar (XEP-0084),
 * both named by the SHA-1 of the image bytes. Shared by the vCard module, the room vCards of
 * MUC and the XEP-0398 conversion in pubsub. */
#ifndef MP_XMPP_AVATAR_H
#define MP_XMPP_AVATAR_H

#include <stddef.h>

#include "xml/tree.h"

#define MP_NS_VCARD "vcard-temp"
#define MP_NS_VCARD_UPDATE "vcard-temp:x:update"
#define MP_NS_AVATAR_DATA "urn:xmpp:avatar:data"
#define MP_NS_AVATAR_META "urn:xmpp:avatar:metadata"
#define MP_AVATAR_HASH_LEN 40 /* hex SHA-1 */

/* Decode base64 text as clients write it (line breaks and spaces allowed) into a malloc'd
 * buffer the caller frees. Returns 0, MP_EINVAL (not base64, or empty) or MP_ENOMEM. */
int mp_avatar_decode(const char *b64, size_t len, unsigned char **out, size_t *out_len);
/* Hex SHA-1 of bytes into hex (41 bytes with the NUL). 0 or MP_ENOMEM. */
int mp_avatar_hash(const unsigned char *bytes, size_t len, char hex[MP_AVATAR_HASH_LEN + 1]);
/* Hash of a vCard's PHOTO/BINVAL; "" when the vCard has none. 0, or MP_EINVAL when BINVAL is
 * not base64. */
int mp_vcard_photo_hash(const mp_xnode *vcard, char hex[MP_AVATAR_HASH_LEN + 1]);

#endif
