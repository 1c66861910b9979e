/* Our TLS 1.3 record layer: RFC 8448 vectors for key derivation and record protection,
 * KeyUpdate, alerts, and malformed records. Peer records are built here with a second, plain
 * implementation (OpenSSL's HKDF and AEAD directly), so the unit is not checked against itself. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "stream/tls13_record.h"
#include "base/err.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- RFC 8448 §3, "Simple 1-RTT Handshake" (TLS_AES_128_GCM_SHA256) ---------------------- */

static const char c_ap_secret[] = "9e 40 64 6c e7 9a 7f 9d c0 5a f8 88 9b ce 65 52 87 5a fa 0b 06 "
                                  "df 00 87 f7 92 eb b7 c1 75 04 a5";
static const char s_ap_secret[] = "a1 1a f9 f0 55 31 f8 56 ad 47 11 6b 45 a9 50 32 82 04 b4 f4 4b "
                                  "fb 6b 3a 4b 4f 1f 3f cb 63 16 43";
static const char c_ap_key[] = "17 42 2d da 59 6e d5 d9 ac d8 90 e3 c6 3f 50 51";
static const char c_ap_iv[] = "5b 78 92 3d ee 08 57 90 33 e5 23 d9";
static const char s_ap_key[] = "9f 02 28 3b 6c 9c 07 ef c2 6b b9 f2 ac 92 e3 56";
static const char s_ap_iv[] = "cf 78 2b 88 dd 83 54 9a ad f1 e9 84";
/* {client} send application_data record, sequence 0; payload 00 01 .. 31. */
static const char c_app_record[] =
    "17 03 03 00 43 a2 3f 70 54 b6 2c 94 d0 af fa fe 82 28 ba 55 cb ef ac ea 42 f9 14 aa 66 bc ab"
    "3f 2b 98 19 a8 a5 b4 6b 39 5b d5 4a 9a 20 44 1e 2b 62 97 4e 1f 5a 62 92 a2 97 70 14 bd 1e 3d"
    "ea e6 3a ee bb 21 69 49 15 e4";
/* {server} send application_data record, sequence 1 (the NewSessionTicket was 0). */
static const char s_app_record[] =
    "17 03 03 00 43 2e 93 7e 11 ef 4a c7 40 e5 38 ad 36 00 5f c4 a4 69 32 fc 32 25 d0 5f 82 aa 1b"
    "36 e3 0e fa f9 7d 90 e6 df fc 60 2d cb 50 1a 59 a8 fc c4 9c 4b f2 e5 f0 a2 1c 00 47 c2 ab f3"
    "32 54 0d d0 32 e1 67 c2 95 5d";

/* "traffic upd" with SHA-384, as published with s2n-tls's key schedule tests. */
static const char upd_secret[] = "4bc28934ddd802b00f479e14a72d7725dab45d32b3b145f29"
                                 "e4c5b56677560eb5236b168c71c5c75aa52f3e20ee89bfb";
static const char upd_next[] = "ee85dd54781bd4d8a100589a9fe6ac9a3797b811e977f549cd"
                               "531be2441d7c63e2b9729d145c11d84af35957727565a4";

static size_t
unhex(const char *s, unsigned char *out, size_t cap)
{
    size_t n = 0;
    int hi = -1;
    for (; *s; s++) {
        int v;
        if (*s >= '0' && *s <= '9')
            v = *s - '0';
        else if (*s >= 'a' && *s <= 'f')
            v = *s - 'a' + 10;
        else
            continue;
        if (hi < 0) {
            hi = v;
        } else {
            assert_true(n < cap);
            out[n++] = (unsigned char)(hi << 4 | v);
            hi = -1;
        }
    }
    return n;
}

static void
payload50(unsigned char *p)
{
    for (int i = 0; i < 50; i++)
        p[i] = (unsigned char)i;
}

/* ---- the reference peer ------------------------------------------------------------------ */

static const EVP_MD *
ref_md(uint16_t suite)
{
    return suite == MP_TLS13_AES_256_GCM_SHA384 ? EVP_sha384() : EVP_sha256();
}

static const EVP_CIPHER *
ref_cipher(uint16_t suite)
{
    switch (suite) {
    case MP_TLS13_AES_128_GCM_SHA256:
        return EVP_aes_128_gcm();
    case MP_TLS13_AES_256_GCM_SHA384:
        return EVP_aes_256_gcm();
    default:
        return EVP_chacha20_poly1305();
    }
}

/* HKDF-Expand-Label through OpenSSL's HKDF, in expand-only mode. */
static void
ref_expand_label(uint16_t suite, const unsigned char *secret, const char *label, unsigned char *out,
                 size_t len)
{
    const EVP_MD *md = ref_md(suite);
    unsigned char info[64];
    size_t ll = strlen(label), n = 0;
    info[n++] = (unsigned char)(len >> 8);
    info[n++] = (unsigned char)len;
    info[n++] = (unsigned char)(6 + ll);
    memcpy(info + n, "tls13 ", 6);
    memcpy(info + n + 6, label, ll);
    n += 6 + ll;
    info[n++] = 0;
    EVP_PKEY_CTX *k = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, NULL);
    assert_non_null(k);
    assert_int_equal(EVP_PKEY_derive_init(k), 1);
    assert_int_equal(EVP_PKEY_CTX_set_hkdf_md(k, md), 1);
    assert_int_equal(EVP_PKEY_CTX_set_hkdf_mode(k, EVP_PKEY_HKDEF_MODE_EXPAND_ONLY), 1);
    assert_int_equal(EVP_PKEY_CTX_set1_hkdf_key(k, secret, EVP_MD_get_size(md)), 1);
    assert_int_equal(EVP_PKEY_CTX_add1_hkdf_info(k, info, (int)n), 1);
    size_t outlen = len;
    assert_int_equal(EVP_PKEY_derive(k, out, &outlen), 1);
    assert_int_equal(outlen, len);
    EVP_PKEY_CTX_free(k);
}

/* One record protected by the peer: inner is content || type || padding, as given. */
static size_t
ref_seal(uint16_t suite, const unsigned char *secret, uint64_t seq, const unsigned char *inner,
         size_t inner_len, unsigned char *out)
{
    unsigned char key[32], iv[12];
    size_t klen = suite == MP_TLS13_AES_128_GCM_SHA256 ? 16 : 32;
    ref_expand_label(suite, secret, "key", key, klen);
    ref_expand_label(suite, secret, "iv", iv, 12);
    for (int i = 0; i < 8; i++)
        iv[11 - i] ^= (unsigned char)(seq >> (8 * i));
    size_t clen = inner_len + 16;
    out[0] = 23;
    out[1] = 3;
    out[2] = 3;
    out[3] = (unsigned char)(clen >> 8);
    out[4] = (unsigned char)clen;
    EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();
    int n = 0;
    assert_int_equal(EVP_EncryptInit_ex(x, ref_cipher(suite), NULL, key, iv), 1);
    assert_int_equal(EVP_EncryptUpdate(x, NULL, &n, out, 5), 1);
    assert_int_equal(EVP_EncryptUpdate(x, out + 5, &n, inner, (int)inner_len), 1);
    assert_int_equal(EVP_EncryptFinal_ex(x, out + 5 + n, &n), 1);
    assert_int_equal(EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_AEAD_GET_TAG, 16, out + 5 + inner_len), 1);
    EVP_CIPHER_CTX_free(x);
    return 5 + clen;
}

/* Opens one of the server's records; returns the inner plaintext length (type included). */
static size_t
ref_open(uint16_t suite, const unsigned char *secret, uint64_t seq, const unsigned char *rec,
         size_t len, unsigned char *inner)
{
    unsigned char key[32], iv[12];
    size_t klen = suite == MP_TLS13_AES_128_GCM_SHA256 ? 16 : 32;
    ref_expand_label(suite, secret, "key", key, klen);
    ref_expand_label(suite, secret, "iv", iv, 12);
    for (int i = 0; i < 8; i++)
        iv[11 - i] ^= (unsigned char)(seq >> (8 * i));
    assert_true(len >= 5 + 17);
    assert_int_equal(rec[0], 23);
    assert_int_equal(((size_t)rec[3] << 8 | rec[4]) + 5, len);
    size_t dlen = len - 5 - 16;
    EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();
    int n = 0, m = 0;
    assert_int_equal(EVP_DecryptInit_ex(x, ref_cipher(suite), NULL, key, iv), 1);
    assert_int_equal(EVP_DecryptUpdate(x, NULL, &n, rec, 5), 1);
    assert_int_equal(EVP_DecryptUpdate(x, inner, &n, rec + 5, (int)dlen), 1);
    assert_int_equal(EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_AEAD_SET_TAG, 16, (void *)(rec + 5 + dlen)),
                     1);
    assert_int_equal(EVP_DecryptFinal_ex(x, inner + n, &m), 1);
    EVP_CIPHER_CTX_free(x);
    return dlen;
}

static void
rfc_secrets(unsigned char *c, unsigned char *s)
{
    assert_int_equal(unhex(c_ap_secret, c, 32), 32);
    assert_int_equal(unhex(s_ap_secret, s, 32), 32);
}

/* ---- vectors ------------------------------------------------------------------------------ */

static void
test_rfc8448_keys(void **state)
{
    unsigned char cs[32], ss[32], key[32], iv[12], want_key[16], want_iv[12];
    size_t klen = 0;
    rfc_secrets(cs, ss);
    assert_int_equal(mp_tls13_secret_len(MP_TLS13_AES_128_GCM_SHA256), 32);
    assert_int_equal(mp_tls13_secret_len(MP_TLS13_AES_256_GCM_SHA384), 48);
    assert_int_equal(mp_tls13_secret_len(MP_TLS13_CHACHA20_POLY1305_SHA256), 32);
    assert_int_equal(mp_tls13_secret_len(0x1304), 0); /* TLS_AES_128_CCM_SHA256: not ours */

    assert_int_equal(mp_tls13_derive_key_iv(MP_TLS13_AES_128_GCM_SHA256, cs, key, &klen, iv), 0);
    assert_int_equal(klen, 16);
    unhex(c_ap_key, want_key, 16);
    unhex(c_ap_iv, want_iv, 12);
    assert_memory_equal(key, want_key, 16);
    assert_memory_equal(iv, want_iv, 12);

    assert_int_equal(mp_tls13_derive_key_iv(MP_TLS13_AES_128_GCM_SHA256, ss, key, &klen, iv), 0);
    unhex(s_ap_key, want_key, 16);
    unhex(s_ap_iv, want_iv, 12);
    assert_memory_equal(key, want_key, 16);
    assert_memory_equal(iv, want_iv, 12);
    assert_int_equal(mp_tls13_derive_key_iv(0x1304, ss, key, &klen, iv), MP_EINVAL);
}

static void
test_rfc8448_records(void **state)
{
    unsigned char cs[32], ss[32], rec[128], want[128], payload[50], buf[64];
    rfc_secrets(cs, ss);
    payload50(payload);

    /* As the server: the client's record at sequence 0 opens to the payload. */
    mp_tls13 srv;
    assert_int_equal(mp_tls13_init(&srv, MP_TLS13_AES_128_GCM_SHA256, cs, ss, 0, 1), 0);
    size_t n = unhex(c_app_record, rec, sizeof rec);
    assert_int_equal(n, 72);
    assert_int_equal(mp_tls13_feed(&srv, rec, n), 0);
    assert_int_equal(mp_tls13_read(&srv, buf, sizeof buf), 50);
    assert_memory_equal(buf, payload, 50);
    assert_int_equal(mp_tls13_read(&srv, buf, sizeof buf), 0);
    /* ... and the server's own record at sequence 1 comes out byte for byte. */
    assert_int_equal(mp_tls13_write(&srv, payload, 50), 0);
    assert_int_equal(mp_tls13_output_pending(&srv), 72);
    assert_int_equal(mp_tls13_take_output(&srv, rec, sizeof rec), 72);
    assert_int_equal(unhex(s_app_record, want, sizeof want), 72);
    assert_memory_equal(rec, want, 72);
    assert_int_equal(mp_tls13_output_pending(&srv), 0);
    assert_int_equal(srv.rd.seq, 1);
    assert_int_equal(srv.wr.seq, 2);

    /* Idle and awake again: the same keys from the secrets alone. */
    mp_tls13_shrink(&srv);
    assert_null(srv.rd.aead);
    assert_null(srv.wr.aead);
    assert_null(srv.in);
    assert_null(srv.out);
    mp_tls13_clear(&srv);

    /* The client's record sealed by this unit (as if it were the client) is the RFC's. */
    mp_tls13 cli;
    assert_int_equal(mp_tls13_init(&cli, MP_TLS13_AES_128_GCM_SHA256, ss, cs, 1, 0), 0);
    assert_int_equal(mp_tls13_write(&cli, payload, 50), 0);
    assert_int_equal(mp_tls13_take_output(&cli, rec, sizeof rec), 72);
    unhex(c_app_record, want, sizeof want);
    assert_memory_equal(rec, want, 72);
    unhex(s_app_record, rec, sizeof rec);
    assert_int_equal(mp_tls13_feed(&cli, rec, 72), 0);
    assert_int_equal(mp_tls13_read(&cli, buf, 20), 20); /* short reads keep the rest */
    assert_int_equal(mp_tls13_read(&cli, buf + 20, sizeof buf - 20), 30);
    assert_memory_equal(buf, payload, 50);
    mp_tls13_clear(&cli);
}

static void
test_key_update_secret(void **state)
{
    unsigned char s[48], want[48], ref[48];
    assert_int_equal(unhex(upd_secret, s, sizeof s), 48);
    assert_int_equal(unhex(upd_next, want, sizeof want), 48);
    assert_int_equal(mp_tls13_next_secret(MP_TLS13_AES_256_GCM_SHA384, s), 0);
    assert_memory_equal(s, want, 48);

    /* SHA-256 suites against the reference HKDF. */
    unsigned char cs[32], ss[32];
    rfc_secrets(cs, ss);
    ref_expand_label(MP_TLS13_AES_128_GCM_SHA256, cs, "traffic upd", ref, 32);
    assert_int_equal(mp_tls13_next_secret(MP_TLS13_CHACHA20_POLY1305_SHA256, cs), 0);
    assert_memory_equal(cs, ref, 32);
    assert_int_equal(mp_tls13_next_secret(0x1304, cs), MP_EINVAL);
}

/* The client updates its key and asks for ours, for each suite. */
static void
key_update_suite(uint16_t suite)
{
    size_t sl = mp_tls13_secret_len(suite);
    unsigned char cs[48], ss[48], cs1[48], ss1[48];
    for (size_t i = 0; i < sl; i++) {
        cs[i] = (unsigned char)(i + 1);
        ss[i] = (unsigned char)(0xa0 ^ i);
    }
    memcpy(cs1, cs, sl);
    memcpy(ss1, ss, sl);
    ref_expand_label(suite, cs, "traffic upd", cs1, sl);
    ref_expand_label(suite, ss, "traffic upd", ss1, sl);

    mp_tls13 srv;
    assert_int_equal(mp_tls13_init(&srv, suite, cs, ss, 5, 7), 0);
    unsigned char rec[512], inner[512], buf[64];
    static const unsigned char hello[] = {'h', 'i', 23};
    static const unsigned char ku_req[] = {24, 0, 0, 1, 1, 22};
    size_t n = ref_seal(suite, cs, 5, hello, sizeof hello, rec);
    n += ref_seal(suite, cs, 6, ku_req, sizeof ku_req, rec + n);
    /* Under the new key, sequence numbers restart at 0; padding is allowed. */
    static const unsigned char after[] = {'o', 'k', 23, 0, 0, 0};
    n += ref_seal(suite, cs1, 0, after, sizeof after, rec + n);
    assert_int_equal(mp_tls13_feed(&srv, rec, n), 0);
    assert_int_equal(mp_tls13_read(&srv, buf, sizeof buf), 4);
    assert_memory_equal(buf, "hiok", 4);

    /* Our KeyUpdate (update_not_requested) under the old key, then data under the new one. */
    assert_int_equal(mp_tls13_write(&srv, "yo", 2), 0);
    n = mp_tls13_take_output(&srv, rec, sizeof rec);
    size_t first = 5 + ((size_t)rec[3] << 8 | rec[4]);
    assert_true(first < n);
    assert_int_equal(ref_open(suite, ss, 7, rec, first, inner), 6);
    static const unsigned char ku_resp[] = {24, 0, 0, 1, 0, 22};
    assert_memory_equal(inner, ku_resp, 6);
    assert_int_equal(ref_open(suite, ss1, 0, rec + first, n - first, inner), 3);
    assert_memory_equal(inner, "yo\x17", 3);

    /* A record under the client's old key is now a forgery. */
    n = ref_seal(suite, cs, 7, hello, sizeof hello, rec);
    assert_int_equal(mp_tls13_feed(&srv, rec, n), MP_EIO);
    assert_int_equal(mp_tls13_read(&srv, buf, sizeof buf), MP_EIO);
    mp_tls13_clear(&srv);

    /* update_not_requested: only the client's key moves. */
    assert_int_equal(mp_tls13_init(&srv, suite, cs, ss, 0, 0), 0);
    static const unsigned char ku[] = {24, 0, 0, 1, 0, 22};
    n = ref_seal(suite, cs, 0, ku, sizeof ku, rec);
    n += ref_seal(suite, cs1, 0, hello, sizeof hello, rec + n);
    assert_int_equal(mp_tls13_feed(&srv, rec, n), 0);
    assert_int_equal(mp_tls13_output_pending(&srv), 0);
    assert_int_equal(mp_tls13_read(&srv, buf, sizeof buf), 2);
    assert_int_equal(mp_tls13_write(&srv, "yo", 2), 0);
    n = mp_tls13_take_output(&srv, rec, sizeof rec);
    assert_int_equal(ref_open(suite, ss, 0, rec, n, inner), 3);
    mp_tls13_clear(&srv);
}

static void
test_key_update(void **state)
{
    key_update_suite(MP_TLS13_AES_128_GCM_SHA256);
    key_update_suite(MP_TLS13_AES_256_GCM_SHA384);
    key_update_suite(MP_TLS13_CHACHA20_POLY1305_SHA256);
}

/* ---- alerts and malformed input ----------------------------------------------------------- */

static mp_tls13 srv;
static unsigned char cs[32], ss[32];

static void
fresh(void)
{
    mp_tls13_clear(&srv);
    rfc_secrets(cs, ss);
    assert_int_equal(mp_tls13_init(&srv, MP_TLS13_AES_128_GCM_SHA256, cs, ss, 0, 0), 0);
}

/* The record is refused, the connection is dead, and the alert we sent says why. */
static void
expect_refused(const unsigned char *rec, size_t n, int alert)
{
    unsigned char buf[64], inner[64];
    assert_int_equal(mp_tls13_feed(&srv, rec, n), MP_EIO);
    assert_int_equal(mp_tls13_read(&srv, buf, sizeof buf), MP_EIO);
    assert_int_equal(mp_tls13_write(&srv, "x", 1), MP_EIO);
    assert_int_equal(mp_tls13_feed(&srv, "x", 1), MP_EIO);
    size_t out = mp_tls13_take_output(&srv, buf, sizeof buf);
    if (alert < 0) {
        assert_int_equal(out, 0);
        return;
    }
    assert_int_equal(ref_open(MP_TLS13_AES_128_GCM_SHA256, ss, 0, buf, out, inner), 3);
    assert_int_equal(inner[0], 2); /* fatal */
    assert_int_equal(inner[1], alert);
    assert_int_equal(inner[2], 21);
}

static void
test_malformed(void **state)
{
    unsigned char rec[16384 + 512], inner[16384 + 512];
    size_t n;

    /* Bad tag. */
    fresh();
    n = unhex(c_app_record, rec, sizeof rec);
    rec[n - 1] ^= 0x80;
    expect_refused(rec, n, 20);

    /* Bad ciphertext, wrong sequence number. */
    fresh();
    n = unhex(c_app_record, rec, sizeof rec);
    rec[10] ^= 1;
    expect_refused(rec, n, 20);
    fresh();
    srv.rd.seq = 1;
    n = unhex(c_app_record, rec, sizeof rec);
    expect_refused(rec, n, 20);

    /* Shorter than a tag. */
    fresh();
    memcpy(rec, "\x17\x03\x03\x00\x10", 5);
    memset(rec + 5, 0, 16);
    expect_refused(rec, 21, 20);

    /* A header claiming more than 2^14 + 256 bytes is refused before the body arrives. */
    fresh();
    memcpy(rec, "\x17\x03\x03\x41\x01", 5);
    expect_refused(rec, 5, 22);

    /* Outer type other than application_data (a change_cipher_spec, a plain handshake). */
    fresh();
    memcpy(rec, "\x14\x03\x03\x00\x01\x01", 6);
    expect_refused(rec, 6, 10);
    fresh();
    memcpy(rec, "\x16\x03\x03\x00\x04", 5);
    expect_refused(rec, 5, 10);

    /* Zero-length inner plaintext: nothing but padding, no content type. */
    fresh();
    memset(inner, 0, 8);
    n = ref_seal(MP_TLS13_AES_128_GCM_SHA256, cs, 0, inner, 8, rec);
    expect_refused(rec, n, 10);
    fresh();
    n = ref_seal(MP_TLS13_AES_128_GCM_SHA256, cs, 0, inner, 0, rec);
    expect_refused(rec, n, 20); /* 16 bytes: the tag alone */

    /* Inner plaintext over 2^14 bytes inside a record of legal size. */
    fresh();
    memset(inner, 'a', 16385);
    inner[16385] = 23;
    n = ref_seal(MP_TLS13_AES_128_GCM_SHA256, cs, 0, inner, 16386, rec);
    expect_refused(rec, n, 22);

    /* Exactly 2^14 bytes plus padding up to the limit is fine. */
    fresh();
    memset(inner, 'b', 16384);
    inner[16384] = 23;
    memset(inner + 16385, 0, 255 - 16);
    n = ref_seal(MP_TLS13_AES_128_GCM_SHA256, cs, 0, inner, 16385 + 255 - 16, rec);
    assert_int_equal(n, 5 + 16384 + 256);
    assert_int_equal(mp_tls13_feed(&srv, rec, n), 0);
    static unsigned char big[20000];
    assert_int_equal(mp_tls13_read(&srv, big, sizeof big), 16384);
    assert_int_equal(big[16383], 'b');

    /* Handshake messages other than a whole KeyUpdate. */
    static const unsigned char nst[] = {4, 0, 0, 1, 0, 22};
    static const unsigned char ku_split[] = {24, 0, 0, 1, 22};
    static const unsigned char ku_bad[] = {24, 0, 0, 1, 2, 22};
    static const unsigned char ku_long[] = {24, 0, 0, 2, 0, 0, 22};
    fresh();
    expect_refused(rec, ref_seal(MP_TLS13_AES_128_GCM_SHA256, cs, 0, nst, sizeof nst, rec), 10);
    fresh();
    expect_refused(rec, ref_seal(MP_TLS13_AES_128_GCM_SHA256, cs, 0, ku_split, 5, rec), 10);
    fresh();
    expect_refused(rec, ref_seal(MP_TLS13_AES_128_GCM_SHA256, cs, 0, ku_bad, 6, rec), 47);
    fresh();
    expect_refused(rec, ref_seal(MP_TLS13_AES_128_GCM_SHA256, cs, 0, ku_long, 7, rec), 50);

    /* Unknown inner content type, alert of the wrong size. */
    static const unsigned char weird[] = {'x', 99};
    static const unsigned char alert3[] = {1, 0, 0, 21};
    fresh();
    expect_refused(rec, ref_seal(MP_TLS13_AES_128_GCM_SHA256, cs, 0, weird, 2, rec), 10);
    fresh();
    expect_refused(rec, ref_seal(MP_TLS13_AES_128_GCM_SHA256, cs, 0, alert3, 4, rec), 50);

    /* Direct calls with nonsense lengths. */
    fresh();
    uint8_t type;
    size_t plen;
    assert_int_equal(mp_tls13_open_record(&srv, rec, 3, &type, &plen), -50);
    memcpy(rec, "\x17\x03\x03\x00\x20", 5);
    assert_int_equal(mp_tls13_open_record(&srv, rec, 10, &type, &plen), -50);
    assert_int_equal(mp_tls13_init(&srv, 0x1305, cs, ss, 0, 0), MP_EINVAL);
    mp_tls13_clear(&srv);
}

static void
test_alerts(void **state)
{
    unsigned char rec[256], buf[64];
    static const unsigned char data[] = {'b', 'y', 'e', 23};
    static const unsigned char close_notify[] = {1, 0, 21};
    static const unsigned char other[] = {2, 40, 21}; /* handshake_failure */

    /* close_notify: what came before is still read, then MP_ECLOSED; later bytes ignored. */
    fresh();
    size_t n = ref_seal(MP_TLS13_AES_128_GCM_SHA256, cs, 0, data, sizeof data, rec);
    n += ref_seal(MP_TLS13_AES_128_GCM_SHA256, cs, 1, close_notify, 3, rec + n);
    n += ref_seal(MP_TLS13_AES_128_GCM_SHA256, cs, 2, data, sizeof data, rec + n);
    assert_int_equal(mp_tls13_feed(&srv, rec, n), 0);
    assert_int_equal(mp_tls13_read(&srv, buf, sizeof buf), 3);
    assert_int_equal(mp_tls13_read(&srv, buf, sizeof buf), MP_ECLOSED);
    assert_int_equal(mp_tls13_feed(&srv, rec, n), 0);
    assert_int_equal(mp_tls13_read(&srv, buf, sizeof buf), MP_ECLOSED);
    /* Our close_notify still goes out. */
    assert_int_equal(mp_tls13_close_notify(&srv), 0);
    unsigned char inner[8];
    n = mp_tls13_take_output(&srv, rec, sizeof rec);
    assert_int_equal(ref_open(MP_TLS13_AES_128_GCM_SHA256, ss, 0, rec, n, inner), 3);
    assert_memory_equal(inner, close_notify, 3);

    /* Any other alert is fatal, and not answered. */
    fresh();
    n = ref_seal(MP_TLS13_AES_128_GCM_SHA256, cs, 0, other, 3, rec);
    expect_refused(rec, n, -1);
    mp_tls13_clear(&srv);
}

/* Writes are cut in records of at most 2^14 bytes, and a zero-length write sends nothing. */
static void
test_write_split(void **state)
{
    fresh();
    enum { N = 3 * 16384 + 100 };
    unsigned char *data = malloc(N), *wire = malloc(N + 1024), *inner = malloc(16384 + 64);
    assert_non_null(data);
    assert_non_null(wire);
    assert_non_null(inner);
    for (size_t i = 0; i < N; i++)
        data[i] = (unsigned char)(i * 7);
    assert_int_equal(mp_tls13_write(&srv, data, 0), 0);
    assert_int_equal(mp_tls13_output_pending(&srv), 0);
    assert_int_equal(mp_tls13_write(&srv, data, N), 0);
    size_t n = 0, got;
    while ((got = mp_tls13_take_output(&srv, wire + n, 1000)) > 0)
        n += got;
    assert_int_equal(n, N + 4 * (5 + 17));
    size_t pos = 0, off = 0;
    for (uint64_t seq = 0; seq < 4; seq++) {
        size_t len = 5 + ((size_t)wire[pos + 3] << 8 | wire[pos + 4]);
        size_t il = ref_open(MP_TLS13_AES_128_GCM_SHA256, ss, seq, wire + pos, len, inner);
        assert_int_equal(il, seq < 3 ? 16385 : 101);
        assert_memory_equal(inner, data + off, il - 1);
        assert_int_equal(inner[il - 1], 23);
        off += il - 1;
        pos += len;
    }
    assert_int_equal(pos, n);
    free(data);
    free(wire);
    free(inner);
    mp_tls13_clear(&srv);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc8448_keys),      cmocka_unit_test(test_rfc8448_records),
        cmocka_unit_test(test_key_update_secret), cmocka_unit_test(test_key_update),
        cmocka_unit_test(test_malformed),         cmocka_unit_test(test_alerts),
        cmocka_unit_test(test_write_split),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
