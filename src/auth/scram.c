/* The low-level SHA functions are deprecated in OpenSSL 3 but are the only way to copy a
 * hash state without an allocation, which is what makes PBKDF2 below fast. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include "auth/scram.h"
#include "base/err.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stringprep.h>

#define SCRAM_SALT_LEN 16

int
mp_ct_memcmp(const void *a, const void *b, size_t n)
{
    return CRYPTO_memcmp(a, b, n) != 0;
}

/* PBKDF2-HMAC for one output block (dkLen = hLen, as SCRAM uses it). The HMAC key pads are
 * hashed once; each iteration then costs two hash compressions and two struct copies.
 * OpenSSL's generic PBKDF2 allocates and copies EVP contexts per iteration, which made a
 * PLAIN login about twice as expensive. */
#define DEFINE_PBKDF2(NAME, CTX, INIT, UPDATE, FINAL, LEN, BLOCK)                                  \
    static void NAME(const unsigned char *pw, size_t pwlen, const unsigned char *salt,             \
                     size_t salt_len, unsigned iterations, unsigned char *out)                     \
    {                                                                                              \
        unsigned char key[BLOCK], pad[BLOCK], u[LEN], t[LEN];                                      \
        CTX ictx, octx, c;                                                                         \
        memset(key, 0, sizeof key);                                                                \
        if (pwlen > BLOCK) {                                                                       \
            INIT(&c);                                                                              \
            UPDATE(&c, pw, pwlen);                                                                 \
            FINAL(key, &c);                                                                        \
        } else if (pwlen) {                                                                        \
            memcpy(key, pw, pwlen);                                                                \
        }                                                                                          \
        for (size_t i = 0; i < BLOCK; i++)                                                         \
            pad[i] = key[i] ^ 0x36;                                                                \
        INIT(&ictx);                                                                               \
        UPDATE(&ictx, pad, BLOCK);                                                                 \
        for (size_t i = 0; i < BLOCK; i++)                                                         \
            pad[i] = key[i] ^ 0x5c;                                                                \
        INIT(&octx);                                                                               \
        UPDATE(&octx, pad, BLOCK);                                                                 \
        static const unsigned char one[4] = {0, 0, 0, 1};                                          \
        c = ictx;                                                                                  \
        UPDATE(&c, salt, salt_len);                                                                \
        UPDATE(&c, one, 4);                                                                        \
        FINAL(t, &c);                                                                              \
        c = octx;                                                                                  \
        UPDATE(&c, t, LEN);                                                                        \
        FINAL(u, &c);                                                                              \
        memcpy(out, u, LEN);                                                                       \
        for (unsigned it = 1; it < iterations; it++) {                                             \
            c = ictx;                                                                              \
            UPDATE(&c, u, LEN);                                                                    \
            FINAL(t, &c);                                                                          \
            c = octx;                                                                              \
            UPDATE(&c, t, LEN);                                                                    \
            FINAL(u, &c);                                                                          \
            for (size_t i = 0; i < LEN; i++)                                                       \
                out[i] ^= u[i];                                                                    \
        }                                                                                          \
        OPENSSL_cleanse(key, sizeof key);                                                          \
        OPENSSL_cleanse(pad, sizeof pad);                                                          \
        OPENSSL_cleanse(u, sizeof u);                                                              \
        OPENSSL_cleanse(t, sizeof t);                                                              \
        OPENSSL_cleanse(&ictx, sizeof ictx);                                                       \
        OPENSSL_cleanse(&octx, sizeof octx);                                                       \
        OPENSSL_cleanse(&c, sizeof c);                                                             \
    }

DEFINE_PBKDF2(pbkdf2_sha1, SHA_CTX, SHA1_Init, SHA1_Update, SHA1_Final, SHA_DIGEST_LENGTH,
              SHA_CBLOCK)
DEFINE_PBKDF2(pbkdf2_sha256, SHA256_CTX, SHA256_Init, SHA256_Update, SHA256_Final,
              SHA256_DIGEST_LENGTH, SHA256_CBLOCK)

static int
pbkdf2(const EVP_MD *md, const char *password, const unsigned char *salt, size_t salt_len,
       unsigned iterations, unsigned char *out, int mdlen)
{
    size_t pwlen = strlen(password);
    switch (EVP_MD_get_type(md)) {
    case NID_sha1:
        pbkdf2_sha1((const unsigned char *)password, pwlen, salt, salt_len, iterations, out);
        return 1;
    case NID_sha256:
        pbkdf2_sha256((const unsigned char *)password, pwlen, salt, salt_len, iterations, out);
        return 1;
    default:
        return PKCS5_PBKDF2_HMAC(password, (int)pwlen, salt, (int)salt_len, (int)iterations, md,
                                 mdlen, out);
    }
}

/* SaltedPassword, then StoredKey and ServerKey for one hash (RFC 5802 §3). */
static int
derive_one(const EVP_MD *md, const char *password, const unsigned char *salt, size_t salt_len,
           unsigned iterations, unsigned char *stored_key, unsigned char *server_key)
{
    static const char client_lbl[] = "Client Key";
    static const char server_lbl[] = "Server Key";
    unsigned char salted[EVP_MAX_MD_SIZE], client_key[EVP_MAX_MD_SIZE];
    int mdlen = EVP_MD_get_size(md);
    unsigned int outlen = 0;
    int rc = MP_EIO;

    if (mdlen <= 0)
        return MP_EIO;
    if (!pbkdf2(md, password, salt, salt_len, iterations, salted, mdlen))
        goto out;
    if (!HMAC(md, salted, mdlen, (const unsigned char *)client_lbl, sizeof client_lbl - 1,
              client_key, &outlen))
        goto out;
    if (!EVP_Digest(client_key, (size_t)mdlen, stored_key, NULL, md, NULL))
        goto out;
    if (!HMAC(md, salted, mdlen, (const unsigned char *)server_lbl, sizeof server_lbl - 1,
              server_key, &outlen))
        goto out;
    rc = 0;
out:
    OPENSSL_cleanse(salted, sizeof salted);
    OPENSSL_cleanse(client_key, sizeof client_key);
    return rc;
}

static int
check_params(const char *password, size_t salt_len, unsigned iterations)
{
    if (!password || salt_len == 0 || salt_len > MP_SCRAM_SALT_MAX || iterations == 0 ||
        iterations > INT_MAX || strlen(password) > INT_MAX)
        return MP_EINVAL;
    return 0;
}

int
mp_scram_derive(const char *password, const unsigned char *salt, size_t salt_len,
                unsigned iterations, mp_user_cred *out)
{
    int rc = check_params(password, salt_len, iterations);
    if (rc < 0)
        return rc;
    memset(out, 0, sizeof *out);
    out->iterations = iterations;
    memcpy(out->salt, salt, salt_len);
    out->salt_len = salt_len;
    rc = derive_one(EVP_sha1(), password, salt, salt_len, iterations, out->sha1_stored_key,
                    out->sha1_server_key);
    if (rc == 0)
        rc = derive_one(EVP_sha256(), password, salt, salt_len, iterations, out->sha256_stored_key,
                        out->sha256_server_key);
    if (rc < 0)
        OPENSSL_cleanse(out, sizeof *out);
    return rc;
}

int
mp_scram_make_cred(const char *password, unsigned iterations, mp_user_cred *out)
{
    unsigned char salt[SCRAM_SALT_LEN];

    if (RAND_bytes(salt, sizeof salt) != 1)
        return MP_EIO;
    return mp_scram_derive(password, salt, sizeof salt, iterations, out);
}

int
mp_scram_check_password(const char *password, const mp_user_cred *cred)
{
    unsigned char stored[EVP_MAX_MD_SIZE], server[EVP_MAX_MD_SIZE];
    int ok;

    if (check_params(password, cred->salt_len, cred->iterations) < 0)
        return 0;
    /* SHA-256 alone is enough to decide; it halves the PBKDF2 work of a PLAIN login. */
    if (derive_one(EVP_sha256(), password, cred->salt, cred->salt_len, cred->iterations, stored,
                   server) < 0)
        return 0;
    ok = CRYPTO_memcmp(stored, cred->sha256_stored_key, sizeof cred->sha256_stored_key) == 0;
    OPENSSL_cleanse(stored, sizeof stored);
    OPENSSL_cleanse(server, sizeof server);
    return ok;
}

int
mp_scram_saslprep(const char *in, char *out, size_t cap)
{
    size_t len = 0;
    const unsigned char *p;

    /* Printable ASCII is left unchanged by SASLprep (no mapping, nothing prohibited),
     * which is what nearly every password is. */
    for (p = (const unsigned char *)in; *p; p++, len++)
        if (*p < 0x20 || *p > 0x7e)
            break;
    if (*p == '\0') {
        if (len >= cap || len > INT_MAX)
            return MP_EINVAL;
        memcpy(out, in, len + 1);
        return (int)len;
    }

    char *prepped = NULL;
    /* Passwords stored from now on: unassigned code points are refused (RFC 4013 §2.5). */
    if (stringprep_profile(in, &prepped, "SASLprep", STRINGPREP_NO_UNASSIGNED) != STRINGPREP_OK)
        return MP_EINVAL;
    len = strlen(prepped);
    if (len >= cap || len > INT_MAX) {
        OPENSSL_cleanse(prepped, len);
        free(prepped);
        return MP_EINVAL;
    }
    memcpy(out, prepped, len + 1);
    OPENSSL_cleanse(prepped, len);
    free(prepped);
    return (int)len;
}

int
mp_scram_verify_proof(int sha256, const unsigned char *stored_key, const unsigned char *server_key,
                      const void *authmsg, size_t authmsg_len, const unsigned char *proof,
                      size_t proof_len, unsigned char *server_sig)
{
    const EVP_MD *md = sha256 ? EVP_sha256() : EVP_sha1();
    size_t hlen = sha256 ? 32 : 20;
    unsigned char sig[EVP_MAX_MD_SIZE], key[EVP_MAX_MD_SIZE], h[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    int rc = MP_EIO;

    if (proof_len != hlen)
        return MP_EINVAL;
    /* The server signature is computed whatever the outcome: the same work either way. */
    if (!HMAC(md, server_key, (int)hlen, authmsg, authmsg_len, server_sig, &n))
        goto out;
    if (!HMAC(md, stored_key, (int)hlen, authmsg, authmsg_len, sig, &n))
        goto out;
    for (size_t i = 0; i < hlen; i++)
        key[i] = proof[i] ^ sig[i];
    if (!EVP_Digest(key, hlen, h, NULL, md, NULL))
        goto out;
    rc = CRYPTO_memcmp(h, stored_key, hlen) == 0;
out:
    OPENSSL_cleanse(sig, sizeof sig);
    OPENSSL_cleanse(key, sizeof key);
    OPENSSL_cleanse(h, sizeof h);
    return rc;
}

int
mp_scram_saslname_decode(const char *in, size_t len, char *out, size_t cap)
{
    size_t o = 0;

    if (len == 0)
        return MP_EINVAL;
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        if (c == '\0' || c == ',')
            return MP_EINVAL;
        if (c == '=') {
            /* RFC 5802 §5.1: only "=2C" and "=3D", upper case, are defined. */
            if (len - i < 3)
                return MP_EINVAL;
            if (in[i + 1] == '2' && in[i + 2] == 'C')
                c = ',';
            else if (in[i + 1] == '3' && in[i + 2] == 'D')
                c = '=';
            else
                return MP_EINVAL;
            i += 2;
        }
        if (o + 1 >= cap || o >= INT_MAX)
            return MP_EINVAL;
        out[o++] = c;
    }
    out[o] = '\0';
    return (int)o;
}
