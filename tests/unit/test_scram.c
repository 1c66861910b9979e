#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "auth/scram.h"
#include "base/err.h"

static size_t
b64dec(const char *in, unsigned char *out)
{
    size_t inlen = strlen(in);
    int n = EVP_DecodeBlock(out, (const unsigned char *)in, (int)inlen);
    assert_true(n >= 0);
    /* EVP_DecodeBlock counts the padding as output bytes */
    while (inlen > 0 && in[inlen - 1] == '=') {
        inlen--;
        n--;
    }
    return (size_t)n;
}

static void
b64enc(const unsigned char *in, size_t len, char *out)
{
    EVP_EncodeBlock((unsigned char *)out, in, (int)len);
}

/* Replays one RFC exchange from the server's side: the stored keys must accept the RFC's
 * client proof and produce the RFC's server signature. */
static void
check_exchange(const EVP_MD *md, const unsigned char *stored, const unsigned char *server,
               const char *authmsg, const char *proof_b64, const char *verifier_b64)
{
    size_t hlen = (size_t)EVP_MD_get_size(md);
    unsigned char sig[EVP_MAX_MD_SIZE], proof[64], key[EVP_MAX_MD_SIZE], h[EVP_MAX_MD_SIZE];
    unsigned int n;
    char b64[128];

    assert_non_null(
        HMAC(md, server, (int)hlen, (const unsigned char *)authmsg, strlen(authmsg), sig, &n));
    b64enc(sig, hlen, b64);
    assert_string_equal(b64, verifier_b64);

    assert_int_equal(b64dec(proof_b64, proof), hlen);
    assert_non_null(
        HMAC(md, stored, (int)hlen, (const unsigned char *)authmsg, strlen(authmsg), sig, &n));
    for (size_t i = 0; i < hlen; i++)
        key[i] = proof[i] ^ sig[i];
    assert_true(EVP_Digest(key, hlen, h, NULL, md, NULL));
    assert_memory_equal(h, stored, hlen);

    /* the same through the server's own check */
    int sha256 = hlen == 32;
    unsigned char v[EVP_MAX_MD_SIZE];
    assert_int_equal(
        mp_scram_verify_proof(sha256, stored, server, authmsg, strlen(authmsg), proof, hlen, v), 1);
    b64enc(v, hlen, b64);
    assert_string_equal(b64, verifier_b64);
    proof[hlen - 1] ^= 1;
    assert_int_equal(
        mp_scram_verify_proof(sha256, stored, server, authmsg, strlen(authmsg), proof, hlen, v), 0);
    proof[hlen - 1] ^= 1;
    /* one byte of the AuthMessage changed (here the last nonce character) */
    char *other = strdup(authmsg);
    assert_non_null(other);
    other[strlen(other) - 1] ^= 1;
    assert_int_equal(
        mp_scram_verify_proof(sha256, stored, server, other, strlen(other), proof, hlen, v), 0);
    free(other);
    assert_int_equal(
        mp_scram_verify_proof(sha256, stored, server, authmsg, strlen(authmsg), proof, hlen - 1, v),
        MP_EINVAL);
    /* the other hash's key length is refused too */
    assert_int_equal(
        mp_scram_verify_proof(!sha256, stored, server, authmsg, strlen(authmsg), proof, hlen, v),
        MP_EINVAL);
}

static void
test_rfc5802_sha1(void **state)
{
    unsigned char salt[32];
    size_t salt_len = b64dec("QSXCR+Q6sek8bf92", salt);
    mp_user_cred c;

    assert_int_equal(mp_scram_derive("pencil", salt, salt_len, 4096, &c), 0);
    assert_int_equal(c.iterations, 4096);
    assert_int_equal(c.salt_len, salt_len);
    check_exchange(EVP_sha1(), c.sha1_stored_key, c.sha1_server_key,
                   "n=user,r=fyko+d2lbbFgONRv9qkxdawL,"
                   "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096,"
                   "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j",
                   "v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=", "rmF9pqV8S7suAoZWja4dJRkFsKQ=");
}

static void
test_rfc7677_sha256(void **state)
{
    unsigned char salt[32];
    size_t salt_len = b64dec("W22ZaJ0SNY7soEsUEjb6gQ==", salt);
    mp_user_cred c;

    assert_int_equal(salt_len, 16);
    assert_int_equal(mp_scram_derive("pencil", salt, salt_len, 4096, &c), 0);
    check_exchange(EVP_sha256(), c.sha256_stored_key, c.sha256_server_key,
                   "n=user,r=rOprNGfwEbeRWgbNEkqO,"
                   "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                   "s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,"
                   "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
                   "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
                   "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
}

static void
test_make_and_check(void **state)
{
    mp_user_cred a, b;

    assert_int_equal(mp_scram_make_cred("s3cret", 4096, &a), 0);
    assert_int_equal(a.salt_len, 16);
    assert_int_equal(a.iterations, 4096);
    assert_int_equal(mp_scram_make_cred("s3cret", 4096, &b), 0);
    /* fresh salt each time */
    assert_memory_not_equal(a.salt, b.salt, 16);
    assert_memory_not_equal(a.sha256_stored_key, b.sha256_stored_key, 32);

    assert_int_equal(mp_scram_check_password("s3cret", &a), 1);
    assert_int_equal(mp_scram_check_password("s3cret", &b), 1);
    assert_int_equal(mp_scram_check_password("s3creT", &a), 0);
    assert_int_equal(mp_scram_check_password("", &a), 0);

    /* only the SHA-256 key decides */
    a.sha256_stored_key[31] ^= 1;
    assert_int_equal(mp_scram_check_password("s3cret", &a), 0);

    mp_user_cred bad = b;
    bad.salt_len = 0;
    assert_int_equal(mp_scram_check_password("s3cret", &bad), 0);
    bad = b;
    bad.iterations = 0;
    assert_int_equal(mp_scram_check_password("s3cret", &bad), 0);

    unsigned char salt[MP_SCRAM_SALT_MAX + 1] = {0};
    assert_int_equal(mp_scram_derive("x", salt, sizeof salt, 4096, &a), MP_EINVAL);
    assert_int_equal(mp_scram_derive("x", salt, 0, 4096, &a), MP_EINVAL);
    assert_int_equal(mp_scram_derive("x", salt, 16, 0, &a), MP_EINVAL);
}

static void
test_saslprep(void **state)
{
    char out[64];

    assert_int_equal(mp_scram_saslprep("pencil", out, sizeof out), 6);
    assert_string_equal(out, "pencil");
    assert_int_equal(mp_scram_saslprep("a b~", out, sizeof out), 4);
    assert_string_equal(out, "a b~");
    assert_int_equal(mp_scram_saslprep("", out, sizeof out), 0);
    assert_string_equal(out, "");
    /* RFC 4013 §3 examples */
    assert_int_equal(mp_scram_saslprep("I\xc2\xad"
                                       "X",
                                       out, sizeof out),
                     2); /* SOFT HYPHEN mapped to nothing */
    assert_string_equal(out, "IX");
    assert_int_equal(mp_scram_saslprep("\xc2\xaa", out, sizeof out), 1); /* NFKC: ª -> a */
    assert_string_equal(out, "a");
    assert_int_equal(mp_scram_saslprep("\xe2\x85\xa8", out, sizeof out), 2); /* Ⅸ -> IX */
    assert_string_equal(out, "IX");
    /* non-ASCII space maps to SPACE */
    assert_int_equal(mp_scram_saslprep("a\xc2\xa0z", out, sizeof out), 3);
    assert_string_equal(out, "a z");
    /* prohibited: control characters, in both paths */
    assert_int_equal(mp_scram_saslprep("\x07", out, sizeof out), MP_EINVAL);
    assert_int_equal(mp_scram_saslprep("ab\x7f", out, sizeof out), MP_EINVAL);
    assert_int_equal(mp_scram_saslprep("\xc3\xa9\x07", out, sizeof out), MP_EINVAL);
    /* bidi: RandALCat first and last (RFC 4013 §3 example 7 is refused) */
    assert_int_equal(mp_scram_saslprep("\xd8\xa7"
                                       "1",
                                       out, sizeof out),
                     MP_EINVAL);
    /* invalid UTF-8 */
    assert_int_equal(mp_scram_saslprep("\xff\xfe", out, sizeof out), MP_EINVAL);
    /* too small a buffer, both paths */
    assert_int_equal(mp_scram_saslprep("pencil", out, 6), MP_EINVAL);
    assert_int_equal(mp_scram_saslprep("\xc3\xa9t\xc3\xa9", out, 3), MP_EINVAL);
    assert_int_equal(mp_scram_saslprep("\xc3\xa9t\xc3\xa9", out, sizeof out), 5);
}

static void
test_ct_memcmp(void **state)
{
    assert_int_equal(mp_ct_memcmp("abc", "abc", 3), 0);
    assert_int_not_equal(mp_ct_memcmp("abc", "abd", 3), 0);
    assert_int_equal(mp_ct_memcmp("abc", "abd", 2), 0);
}

static void
test_saslname_decode(void **state)
{
    char out[16];

    assert_int_equal(mp_scram_saslname_decode("alice", 5, out, sizeof out), 5);
    assert_string_equal(out, "alice");
    assert_int_equal(mp_scram_saslname_decode("a=2Cb=3Dc", 9, out, sizeof out), 5);
    assert_string_equal(out, "a,b=c");
    assert_int_equal(mp_scram_saslname_decode("=3D=2C", 6, out, sizeof out), 2);
    assert_string_equal(out, "=,");
    /* only the length given counts */
    assert_int_equal(mp_scram_saslname_decode("ab,cd", 2, out, sizeof out), 2);
    assert_string_equal(out, "ab");
    /* other '=' sequences, lower case, cut short, a bare ',' or NUL, empty */
    assert_int_equal(mp_scram_saslname_decode("a=2cb", 5, out, sizeof out), MP_EINVAL);
    assert_int_equal(mp_scram_saslname_decode("a=41", 4, out, sizeof out), MP_EINVAL);
    assert_int_equal(mp_scram_saslname_decode("a=2", 3, out, sizeof out), MP_EINVAL);
    assert_int_equal(mp_scram_saslname_decode("a=", 2, out, sizeof out), MP_EINVAL);
    assert_int_equal(mp_scram_saslname_decode("a,b", 3, out, sizeof out), MP_EINVAL);
    assert_int_equal(mp_scram_saslname_decode("a\0b", 3, out, sizeof out), MP_EINVAL);
    assert_int_equal(mp_scram_saslname_decode("", 0, out, sizeof out), MP_EINVAL);
    /* out must hold the name and its NUL */
    assert_int_equal(mp_scram_saslname_decode("abcd", 4, out, 4), MP_EINVAL);
    assert_int_equal(mp_scram_saslname_decode("abc=2C", 6, out, 5), 4);
    assert_string_equal(out, "abc,");
}

/* Passwords longer than the hash block take HMAC's hashed-key path; short and odd lengths
 * too. Checked against OpenSSL's own PBKDF2. */
static void
test_pbkdf2_matches_openssl(void **state)
{
    static const unsigned char salt[] = "0123456789abcdef";
    static const size_t lens[] = {1, 63, 64, 65, 100, 200};
    char pw[201];
    for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
        for (size_t i = 0; i < lens[k]; i++)
            pw[i] = (char)('a' + (i * 7 + k) % 26);
        pw[lens[k]] = '\0';
        mp_user_cred c;
        assert_int_equal(mp_scram_derive(pw, salt, 16, 4096, &c), 0);
        const EVP_MD *mds[2] = {EVP_sha1(), EVP_sha256()};
        const unsigned char *want[2] = {c.sha1_stored_key, c.sha256_stored_key};
        for (int h = 0; h < 2; h++) {
            unsigned char sp[32], ck[32], sk[32];
            unsigned int n = 0;
            int len = EVP_MD_get_size(mds[h]);
            assert_int_equal(PKCS5_PBKDF2_HMAC(pw, (int)lens[k], salt, 16, 4096, mds[h], len, sp),
                             1);
            assert_non_null(HMAC(mds[h], sp, len, (const unsigned char *)"Client Key", 10, ck, &n));
            assert_int_equal(EVP_Digest(ck, (size_t)len, sk, NULL, mds[h], NULL), 1);
            assert_memory_equal(sk, want[h], (size_t)len);
        }
        assert_int_equal(mp_scram_check_password(pw, &c), 1);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pbkdf2_matches_openssl),
        cmocka_unit_test(test_rfc5802_sha1),   cmocka_unit_test(test_rfc7677_sha256),
        cmocka_unit_test(test_make_and_check), cmocka_unit_test(test_saslprep),
        cmocka_unit_test(test_ct_memcmp),      cmocka_unit_test(test_saslname_decode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
