/* TLS 1.3 record protection after the handshake: see tls13_record.h for why it exists. */
#include "stream/tls13_record.h"
#include "base/err.h"
#include "base/log.h"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define HDR_LEN 5
#define TAG_LEN 16
/* RFC 8446 §5.2: TLSCiphertext.length may not exceed 2^14 + 256. */
#define MAX_CIPHER (MP_TLS13_MAX_PLAIN + 256)

enum {
    CT_ALERT = 21,
    CT_HANDSHAKE = 22,
    CT_APPDATA = 23,
};

enum {
    AL_CLOSE_NOTIFY = 0,
    AL_UNEXPECTED_MESSAGE = 10,
    AL_BAD_RECORD_MAC = 20,
    AL_RECORD_OVERFLOW = 22,
    AL_ILLEGAL_PARAMETER = 47,
    AL_DECODE_ERROR = 50,
    AL_INTERNAL_ERROR = 80,
};

#define HS_KEY_UPDATE 24

struct suite_info {
    uint16_t id;
    uint8_t key_len;
    const EVP_CIPHER *(*cipher)(void);
    const EVP_MD *(*md)(void);
};

static const struct suite_info suites[] = {
    {MP_TLS13_AES_128_GCM_SHA256, 16, EVP_aes_128_gcm, EVP_sha256},
    {MP_TLS13_AES_256_GCM_SHA384, 32, EVP_aes_256_gcm, EVP_sha384},
    {MP_TLS13_CHACHA20_POLY1305_SHA256, 32, EVP_chacha20_poly1305, EVP_sha256},
};

static const struct suite_info *
suite_find(uint16_t id)
{
    for (size_t i = 0; i < sizeof suites / sizeof suites[0]; i++)
        if (suites[i].id == id)
            return &suites[i];
    return NULL;
}

size_t
mp_tls13_secret_len(uint16_t suite)
{
    const struct suite_info *s = suite_find(suite);
    return s ? (size_t)EVP_MD_get_size(s->md()) : 0;
}

/* HKDF-Expand-Label (RFC 8446 §7.1) with an empty context. Every output here is at most one
 * hash long, so HKDF-Expand is a single HMAC: T(1) = HMAC(secret, HkdfLabel || 0x01). */
static int
expand_label(const EVP_MD *md, const unsigned char *secret, size_t secret_len, const char *label,
             unsigned char *out, size_t out_len)
{
    unsigned char info[2 + 1 + 6 + 32 + 1 + 1];
    size_t label_len = strlen(label), n = 0;
    size_t md_len = (size_t)EVP_MD_get_size(md);
    if (out_len > md_len || label_len > 32)
        return MP_EINVAL;
    info[n++] = (unsigned char)(out_len >> 8);
    info[n++] = (unsigned char)out_len;
    info[n++] = (unsigned char)(6 + label_len);
    memcpy(info + n, "tls13 ", 6);
    n += 6;
    memcpy(info + n, label, label_len);
    n += label_len;
    info[n++] = 0; /* context length */
    info[n++] = 1; /* HKDF-Expand block counter */
    unsigned char t[EVP_MAX_MD_SIZE];
    unsigned int t_len = 0;
    if (!HMAC(md, secret, (int)secret_len, info, n, t, &t_len) || t_len != md_len) {
        ERR_clear_error();
        return MP_EINVAL;
    }
    memcpy(out, t, out_len);
    OPENSSL_cleanse(t, sizeof t);
    return 0;
}

int
mp_tls13_derive_key_iv(uint16_t suite, const unsigned char *secret, unsigned char *key,
                       size_t *key_len, unsigned char iv[MP_TLS13_IV_LEN])
{
    const struct suite_info *s = suite_find(suite);
    if (!s)
        return MP_EINVAL;
    const EVP_MD *md = s->md();
    size_t slen = (size_t)EVP_MD_get_size(md);
    if (expand_label(md, secret, slen, "key", key, s->key_len) != 0 ||
        expand_label(md, secret, slen, "iv", iv, MP_TLS13_IV_LEN) != 0)
        return MP_EINVAL;
    *key_len = s->key_len;
    return 0;
}

int
mp_tls13_next_secret(uint16_t suite, unsigned char *secret)
{
    const struct suite_info *s = suite_find(suite);
    if (!s)
        return MP_EINVAL;
    const EVP_MD *md = s->md();
    size_t slen = (size_t)EVP_MD_get_size(md);
    unsigned char next[MP_TLS13_MAX_SECRET];
    int rc = expand_label(md, secret, slen, "traffic upd", next, slen);
    if (rc == 0)
        memcpy(secret, next, slen);
    OPENSSL_cleanse(next, sizeof next);
    return rc;
}

int
mp_tls13_init(mp_tls13 *t, uint16_t suite, const unsigned char *rd_secret,
              const unsigned char *wr_secret, uint64_t rd_seq, uint64_t wr_seq)
{
    memset(t, 0, sizeof *t);
    size_t slen = mp_tls13_secret_len(suite);
    if (slen == 0)
        return MP_EINVAL;
    t->suite = suite;
    t->secret_len = (uint8_t)slen;
    memcpy(t->rd.secret, rd_secret, slen);
    memcpy(t->wr.secret, wr_secret, slen);
    t->rd.seq = rd_seq;
    t->wr.seq = wr_seq;
    return 0;
}

static void
dir_drop_aead(mp_tls13_dir *d)
{
    EVP_CIPHER_CTX_free(d->aead); /* wipes the key schedule */
    d->aead = NULL;
    OPENSSL_cleanse(d->iv, sizeof d->iv);
}

void
mp_tls13_clear(mp_tls13 *t)
{
    dir_drop_aead(&t->rd);
    dir_drop_aead(&t->wr);
    if (t->in)
        OPENSSL_clear_free(t->in, t->in_cap);
    free(t->out); /* ciphertext only */
    OPENSSL_cleanse(t, sizeof *t);
}

void
mp_tls13_shrink(mp_tls13 *t)
{
    dir_drop_aead(&t->rd);
    dir_drop_aead(&t->wr);
    if (t->in && t->in_len == 0) {
        OPENSSL_clear_free(t->in, t->in_cap);
        t->in = NULL;
        t->in_cap = 0;
    }
    if (t->out && t->out_off == t->out_len) {
        free(t->out);
        t->out = NULL;
        t->out_cap = t->out_len = t->out_off = 0;
    }
}

/* Builds the AEAD context of one direction from its secret (after idling or a KeyUpdate). */
static int
dir_keys(mp_tls13 *t, mp_tls13_dir *d, int enc)
{
    if (d->aead)
        return 0;
    const struct suite_info *s = suite_find(t->suite);
    unsigned char key[MP_TLS13_MAX_KEY];
    size_t key_len = 0;
    int rc = MP_EIO;
    if (!s || mp_tls13_derive_key_iv(t->suite, d->secret, key, &key_len, d->iv) != 0)
        goto done;
    d->aead = EVP_CIPHER_CTX_new();
    if (!d->aead) {
        rc = MP_ENOMEM;
        goto done;
    }
    /* GCM and ChaCha20-Poly1305 both default to a 12-byte nonce. */
    if (EVP_CipherInit_ex(d->aead, s->cipher(), NULL, key, NULL, enc) != 1) {
        dir_drop_aead(d);
        goto done;
    }
    rc = 0;
done:
    OPENSSL_cleanse(key, sizeof key);
    ERR_clear_error();
    return rc;
}

/* RFC 8446 §5.3: the 64-bit sequence number, big-endian, XORed into the right end of the iv. */
static void
make_nonce(const mp_tls13_dir *d, unsigned char nonce[MP_TLS13_IV_LEN])
{
    memcpy(nonce, d->iv, MP_TLS13_IV_LEN);
    for (int i = 0; i < 8; i++)
        nonce[MP_TLS13_IV_LEN - 1 - i] ^= (unsigned char)(d->seq >> (8 * i));
}

static int
ensure_cap(unsigned char **p, size_t *cap, size_t need, int secret)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : 1024;
    while (n < need)
        n *= 2;
    unsigned char *q = malloc(n);
    if (!q)
        return MP_ENOMEM;
    if (*p) {
        memcpy(q, *p, *cap);
        if (secret)
            OPENSSL_clear_free(*p, *cap);
        else
            free(*p);
    }
    *p = q;
    *cap = n;
    return 0;
}

/* Appends one protected record: header, AEAD(content || type), tag. */
static int
seal(mp_tls13 *t, uint8_t type, const unsigned char *data, size_t len)
{
    if (len > MP_TLS13_MAX_PLAIN || t->state == MP_TLS13_FAILED)
        return MP_EIO;
    if (t->wr.seq == UINT64_MAX)
        return MP_EIO; /* RFC 8446 §5.3: never wrap */
    int rc = dir_keys(t, &t->wr, 1);
    if (rc != 0)
        return rc;
    size_t clen = len + 1 + TAG_LEN;
    if (t->out_off == t->out_len)
        t->out_off = t->out_len = 0;
    if ((rc = ensure_cap(&t->out, &t->out_cap, t->out_len + HDR_LEN + clen, 0)) != 0)
        return rc;
    unsigned char *h = t->out + t->out_len, *body = h + HDR_LEN;
    h[0] = CT_APPDATA;
    h[1] = 3;
    h[2] = 3;
    h[3] = (unsigned char)(clen >> 8);
    h[4] = (unsigned char)clen;
    unsigned char nonce[MP_TLS13_IV_LEN];
    make_nonce(&t->wr, nonce);
    EVP_CIPHER_CTX *x = t->wr.aead;
    int n = 0, m = 0;
    if (EVP_EncryptInit_ex(x, NULL, NULL, NULL, nonce) != 1 ||
        EVP_EncryptUpdate(x, NULL, &n, h, HDR_LEN) != 1 ||
        (len && EVP_EncryptUpdate(x, body, &n, data, (int)len) != 1) ||
        EVP_EncryptUpdate(x, body + len, &m, &type, 1) != 1 ||
        EVP_EncryptFinal_ex(x, body + len + 1, &m) != 1 ||
        EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_AEAD_GET_TAG, TAG_LEN, body + len + 1) != 1) {
        ERR_clear_error();
        t->state = MP_TLS13_FAILED;
        return MP_EIO;
    }
    t->out_len += HDR_LEN + clen;
    t->wr.seq++;
    return 0;
}

/* A fatal alert of ours, if it can still be encrypted; the connection is dead either way. */
static int
fail(mp_tls13 *t, int alert)
{
    if (t->state != MP_TLS13_FAILED) {
        unsigned char a[2] = {2, (unsigned char)alert};
        if (seal(t, CT_ALERT, a, sizeof a) != 0)
            mp_debug("tls13: cannot send alert %d", alert);
    }
    t->state = MP_TLS13_FAILED;
    return MP_EIO;
}

int
mp_tls13_open_record(mp_tls13 *t, unsigned char *rec, size_t len, uint8_t *type, size_t *plain_len)
{
    if (len < HDR_LEN)
        return -AL_DECODE_ERROR;
    size_t clen = ((size_t)rec[3] << 8) | rec[4];
    if (clen != len - HDR_LEN)
        return -AL_DECODE_ERROR;
    /* After the handshake every record is protected and claims to be application data. */
    if (rec[0] != CT_APPDATA)
        return -AL_UNEXPECTED_MESSAGE;
    if (clen > MAX_CIPHER)
        return -AL_RECORD_OVERFLOW;
    if (clen < 1 + TAG_LEN)
        return -AL_BAD_RECORD_MAC; /* cannot even hold the tag */
    if (t->rd.seq == UINT64_MAX)
        return -AL_INTERNAL_ERROR;
    if (dir_keys(t, &t->rd, 0) != 0)
        return -AL_INTERNAL_ERROR;
    unsigned char nonce[MP_TLS13_IV_LEN];
    make_nonce(&t->rd, nonce);
    EVP_CIPHER_CTX *x = t->rd.aead;
    unsigned char *body = rec + HDR_LEN;
    size_t dlen = clen - TAG_LEN;
    int n = 0, m = 0;
    if (EVP_DecryptInit_ex(x, NULL, NULL, NULL, nonce) != 1 ||
        EVP_DecryptUpdate(x, NULL, &n, rec, HDR_LEN) != 1 ||
        EVP_DecryptUpdate(x, body, &n, body, (int)dlen) != 1 ||
        EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_AEAD_SET_TAG, TAG_LEN, body + dlen) != 1 ||
        EVP_DecryptFinal_ex(x, body + n, &m) != 1) {
        ERR_clear_error();
        return -AL_BAD_RECORD_MAC;
    }
    t->rd.seq++;
    /* Strip the zero padding; the last non-zero byte is the real content type. */
    size_t i = dlen;
    while (i > 0 && body[i - 1] == 0)
        i--;
    if (i == 0)
        return -AL_UNEXPECTED_MESSAGE; /* §5.4: no content type at all */
    *type = body[i - 1];
    *plain_len = i - 1;
    if (*plain_len > MP_TLS13_MAX_PLAIN)
        return -AL_RECORD_OVERFLOW;
    return 0;
}

/* RFC 8446 §4.6.3. Only a whole KeyUpdate alone in its record is accepted: a client has nothing
 * else to send after the handshake (we never ask for post-handshake authentication), and a
 * KeyUpdate must end its record anyway because the key changes after it. */
static int
handle_handshake(mp_tls13 *t, const unsigned char *p, size_t n)
{
    if (n < 4)
        return fail(t, AL_UNEXPECTED_MESSAGE);
    size_t body = ((size_t)p[1] << 16) | ((size_t)p[2] << 8) | p[3];
    if (p[0] != HS_KEY_UPDATE || body + 4 != n)
        return fail(t, AL_UNEXPECTED_MESSAGE);
    if (body != 1)
        return fail(t, AL_DECODE_ERROR);
    if (p[4] > 1)
        return fail(t, AL_ILLEGAL_PARAMETER);
    dir_drop_aead(&t->rd);
    if (mp_tls13_next_secret(t->suite, t->rd.secret) != 0)
        return fail(t, AL_INTERNAL_ERROR);
    t->rd.seq = 0;
    if (p[4] == 1) {
        /* update_requested: ours goes out under the old key, then we switch. */
        static const unsigned char ku[5] = {HS_KEY_UPDATE, 0, 0, 1, 0};
        if (seal(t, CT_HANDSHAKE, ku, sizeof ku) != 0)
            return fail(t, AL_INTERNAL_ERROR);
        dir_drop_aead(&t->wr);
        if (mp_tls13_next_secret(t->suite, t->wr.secret) != 0)
            return fail(t, AL_INTERNAL_ERROR);
        t->wr.seq = 0;
    }
    mp_debug("tls13: peer updated its key%s", p[4] ? ", ours too" : "");
    return 0;
}

int
mp_tls13_feed(mp_tls13 *t, const void *data, size_t len)
{
    if (t->state == MP_TLS13_FAILED)
        return MP_EIO;
    if (t->state == MP_TLS13_CLOSED || len == 0)
        return 0;
    if (ensure_cap(&t->in, &t->in_cap, t->in_len + len, 1) != 0)
        return fail(t, AL_INTERNAL_ERROR);
    memcpy(t->in + t->in_len, data, len);
    t->in_len += len;

    size_t pos = t->plain_end; /* start of the next record */
    int rc = 0;
    while (t->in_len - pos >= HDR_LEN) {
        unsigned char *rec = t->in + pos;
        size_t clen = ((size_t)rec[3] << 8) | rec[4];
        /* Refuse early what can never become a valid record, before buffering 64 KiB of it. */
        if (rec[0] != CT_APPDATA) {
            rc = fail(t, AL_UNEXPECTED_MESSAGE);
            break;
        }
        if (clen > MAX_CIPHER) {
            rc = fail(t, AL_RECORD_OVERFLOW);
            break;
        }
        if (t->in_len - pos < HDR_LEN + clen)
            break;
        uint8_t type = 0;
        size_t plen = 0;
        int r = mp_tls13_open_record(t, rec, HDR_LEN + clen, &type, &plen);
        if (r < 0) {
            rc = fail(t, -r);
            break;
        }
        pos += HDR_LEN + clen;
        if (type == CT_APPDATA) {
            /* Compacts the plaintext to the front; the record's header and tag are gone. */
            memmove(t->in + t->plain_end, rec + HDR_LEN, plen);
            t->plain_end += plen;
        } else if (type == CT_ALERT) {
            if (plen != 2) {
                rc = fail(t, AL_DECODE_ERROR);
                break;
            }
            if (rec[HDR_LEN + 1] == AL_CLOSE_NOTIFY) {
                t->state = MP_TLS13_CLOSED;
                pos = t->in_len; /* anything after close_notify is ignored */
                break;
            }
            mp_debug("tls13: peer sent alert %u", rec[HDR_LEN + 1]);
            t->state = MP_TLS13_FAILED; /* §6.2: every other alert is fatal; no answer */
            rc = MP_EIO;
            break;
        } else if (type == CT_HANDSHAKE) {
            if ((rc = handle_handshake(t, rec + HDR_LEN, plen)) != 0)
                break;
        } else {
            rc = fail(t, AL_UNEXPECTED_MESSAGE);
            break;
        }
    }
    if (rc != 0) {
        t->in_len = t->plain_end;
        return rc;
    }
    /* Keep the incomplete record right behind the plaintext. */
    if (pos > t->plain_end) {
        memmove(t->in + t->plain_end, t->in + pos, t->in_len - pos);
        t->in_len -= pos - t->plain_end;
    }
    return 0;
}

int
mp_tls13_read(mp_tls13 *t, void *buf, size_t cap)
{
    if (t->state == MP_TLS13_FAILED)
        return MP_EIO;
    size_t avail = t->plain_end - t->plain_off;
    if (avail == 0)
        return t->state == MP_TLS13_CLOSED ? MP_ECLOSED : 0;
    if (cap > INT_MAX)
        cap = INT_MAX;
    size_t n = avail < cap ? avail : cap;
    memcpy(buf, t->in + t->plain_off, n);
    t->plain_off += n;
    if (t->plain_off == t->plain_end) {
        /* All plaintext read: move the partial record, if any, to the front. */
        size_t rest = t->in_len - t->plain_end;
        memmove(t->in, t->in + t->plain_end, rest);
        OPENSSL_cleanse(t->in + rest, t->plain_end);
        t->in_len = rest;
        t->plain_off = t->plain_end = 0;
    }
    return (int)n;
}

int
mp_tls13_write(mp_tls13 *t, const void *data, size_t len)
{
    const unsigned char *p = data;
    while (len > 0) {
        size_t n = len > MP_TLS13_MAX_PLAIN ? MP_TLS13_MAX_PLAIN : len;
        int rc = seal(t, CT_APPDATA, p, n);
        if (rc != 0) {
            t->state = MP_TLS13_FAILED;
            return rc;
        }
        p += n;
        len -= n;
    }
    return 0;
}

int
mp_tls13_close_notify(mp_tls13 *t)
{
    static const unsigned char a[2] = {1, AL_CLOSE_NOTIFY};
    return seal(t, CT_ALERT, a, sizeof a);
}

size_t
mp_tls13_take_output(mp_tls13 *t, void *buf, size_t cap)
{
    size_t avail = t->out_len - t->out_off;
    size_t n = avail < cap ? avail : cap;
    if (n) {
        memcpy(buf, t->out + t->out_off, n);
        t->out_off += n;
    }
    if (t->out_off == t->out_len)
        t->out_off = t->out_len = 0;
    return n;
}

size_t
mp_tls13_output_pending(const mp_tls13 *t)
{
    return t->out_len - t->out_off;
}
