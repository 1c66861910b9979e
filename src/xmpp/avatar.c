#include "xmpp/avatar.h"
#include "base/err.h"

#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int
mp_avatar_decode(const char *b64, size_t len, unsigned char **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    if (len > (size_t)INT32_MAX)
        return MP_EINVAL;
    unsigned char *clean = malloc(len + 1);
    unsigned char *raw = malloc(len / 4 * 3 + 3);
    if (!clean || !raw) {
        free(clean);
        free(raw);
        return MP_ENOMEM;
    }
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        if (b64[i] != ' ' && b64[i] != '\n' && b64[i] != '\r' && b64[i] != '\t')
            clean[n++] = (unsigned char)b64[i];
    /* EVP_DecodeBlock takes any 4-aligned text of the alphabet; '=' only at the end. */
    int ok = n > 0 && n % 4 == 0;
    for (size_t i = 0; ok && i < n; i++)
        if (clean[i] == '=' && i < n - 2)
            ok = 0;
    if (ok && clean[n - 2] == '=' && clean[n - 1] != '=')
        ok = 0;
    int dl = ok ? EVP_DecodeBlock(raw, clean, (int)n) : -1;
    if (dl < 0) {
        free(clean);
        free(raw);
        return MP_EINVAL;
    }
    dl -= (clean[n - 1] == '=') + (clean[n - 2] == '='); /* DecodeBlock counts the padding */
    free(clean);
    *out = raw;
    *out_len = (size_t)dl;
    return 0;
}

int
mp_avatar_hash(const unsigned char *bytes, size_t len, char hex[MP_AVATAR_HASH_LEN + 1])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdl = 0;
    hex[0] = '\0';
    if (!EVP_Digest(bytes, len, md, &mdl, EVP_sha1(), NULL) || mdl != 20)
        return MP_ENOMEM;
    for (unsigned i = 0; i < mdl; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    return 0;
}

int
mp_vcard_photo_hash(const mp_xnode *vcard, char hex[MP_AVATAR_HASH_LEN + 1])
{
    hex[0] = '\0';
    const mp_xnode *photo = mp_xnode_child(vcard, MP_NS_VCARD, "PHOTO");
    const mp_xnode *bin = photo ? mp_xnode_child(photo, MP_NS_VCARD, "BINVAL") : NULL;
    if (!bin || !bin->text_len)
        return 0;
    unsigned char *raw;
    size_t n;
    int rc = mp_avatar_decode(bin->text, bin->text_len, &raw, &n);
    if (rc < 0)
        return rc;
    rc = mp_avatar_hash(raw, n, hex);
    free(raw);
    return rc;
}
