/* TLS unit: certificate generation, handshakes against an OpenSSL client over memory BIOs,
 * data both ways, channel binding, refusals, and the memory an idle connection keeps. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "stream/tls.h"
#include "base/err.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define HAVE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HAVE_ASAN 1
#endif
#endif

#ifdef HAVE_ASAN
/* From <sanitizer/allocator_interface.h>, which gcc does not ship. */
size_t __sanitizer_get_current_allocated_bytes(void);
#endif

#define DOMAIN "example.test"

struct fixture {
    char dir[64];
    char cert[128];
    char key[128];
    mp_tls_ctx *ctx;
};

static struct fixture fx;

static char *
read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = malloc(65536);
    size_t n = buf ? fread(buf, 1, 65535, f) : 0;
    fclose(f);
    if (buf)
        buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

static X509 *
load_cert(const char *path)
{
    BIO *b = BIO_new_file(path, "r");
    assert_non_null(b);
    X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
    BIO_free(b);
    assert_non_null(x);
    return x;
}

static int
group_setup(void **state)
{
    strcpy(fx.dir, "/tmp/mp_tls_XXXXXX");
    if (!mkdtemp(fx.dir))
        return -1;
    /* A subdirectory that does not exist yet: ensure_cert has to create it. */
    snprintf(fx.cert, sizeof fx.cert, "%s/tls/cert.pem", fx.dir);
    snprintf(fx.key, sizeof fx.key, "%s/tls/key.pem", fx.dir);
    if (mp_tls_ensure_cert(fx.cert, fx.key, DOMAIN) != 0)
        return -1;
    if (mp_tls_ctx_new(fx.cert, fx.key, &fx.ctx) != 0)
        return -1;
    return 0;
}

static void
rm_rf(const char *dir)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    int rc = system(cmd);
    (void)rc;
}

static int
group_teardown(void **state)
{
    mp_tls_ctx_free(fx.ctx);
    rm_rf(fx.dir);
    return 0;
}

/* ---- client side ------------------------------------------------------------------------ */

struct client {
    SSL_CTX *ctx;
    SSL *ssl;
};

static void
client_init(struct client *cl, int min_version, int max_version, const char *alpn_wire,
            size_t alpn_len)
{
    cl->ctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(cl->ctx);
    if (min_version)
        assert_int_equal(SSL_CTX_set_min_proto_version(cl->ctx, min_version), 1);
    if (max_version)
        assert_int_equal(SSL_CTX_set_max_proto_version(cl->ctx, max_version), 1);
    if (min_version && min_version < TLS1_2_VERSION)
        /* Let the client really offer the old version, so the server is what refuses it. */
        assert_int_equal(SSL_CTX_set_cipher_list(cl->ctx, "DEFAULT:@SECLEVEL=0"), 1);
    SSL_CTX_set_verify(cl->ctx, SSL_VERIFY_NONE, NULL);
    cl->ssl = SSL_new(cl->ctx);
    assert_non_null(cl->ssl);
    if (alpn_wire)
        assert_int_equal(
            SSL_set_alpn_protos(cl->ssl, (const unsigned char *)alpn_wire, (unsigned int)alpn_len),
            0);
    SSL_set_tlsext_host_name(cl->ssl, DOMAIN);
    SSL_set_bio(cl->ssl, BIO_new(BIO_s_mem()), BIO_new(BIO_s_mem()));
    SSL_set_connect_state(cl->ssl);
}

static void
client_free(struct client *cl)
{
    SSL_free(cl->ssl);
    SSL_CTX_free(cl->ctx);
    cl->ssl = NULL;
    cl->ctx = NULL;
}

/* Moves every pending byte both ways. Returns the bytes moved; *feed_rc gets the first
 * nonzero result of mp_tls_feed. */
static size_t
pump(SSL *cli, mp_tls_conn *srv, int *feed_rc)
{
    static char buf[65536];
    size_t moved = 0;
    int r;
    while ((r = BIO_read(SSL_get_wbio(cli), buf, sizeof buf)) > 0) {
        int rc = mp_tls_feed(srv, buf, (size_t)r);
        if (rc != 0 && *feed_rc == 0)
            *feed_rc = rc;
        moved += (size_t)r;
    }
    size_t n;
    while ((n = mp_tls_take_output(srv, buf, sizeof buf)) > 0) {
        assert_int_equal(BIO_write(SSL_get_rbio(cli), buf, (int)n), (int)n);
        moved += n;
    }
    assert_int_equal(mp_tls_output_pending(srv), 0);
    return moved;
}

static int client_reason; /* OpenSSL reason of the client's last handshake failure */

/* 1 when both sides finished, 0 when either failed; *feed_rc is the server's verdict. */
static int
handshake(SSL *cli, mp_tls_conn *srv, int *feed_rc)
{
    *feed_rc = 0;
    client_reason = 0;
    int cli_done = 0;
    for (int i = 0; i < 50; i++) {
        if (!cli_done) {
            ERR_clear_error();
            int r = SSL_do_handshake(cli);
            if (r == 1)
                cli_done = 1;
            else if (SSL_get_error(cli, r) != SSL_ERROR_WANT_READ)
                break;
        }
        size_t moved = pump(cli, srv, feed_rc);
        if (*feed_rc != 0)
            break;
        if (cli_done && mp_tls_handshake_done(srv) && moved == 0)
            return 1;
    }
    pump(cli, srv, feed_rc);
    ERR_clear_error();
    /* Let the client read the server's alert, if any. */
    int r = SSL_do_handshake(cli);
    if (r != 1 && SSL_get_error(cli, r) == SSL_ERROR_SSL)
        client_reason = ERR_GET_REASON(ERR_peek_error());
    ERR_clear_error();
    return 0;
}

static void
connect_pair(struct client *cl, mp_tls_conn **srv, int max_version)
{
    client_init(cl, 0, max_version, "\x0bxmpp-client", 12);
    *srv = mp_tls_conn_new(fx.ctx);
    assert_non_null(*srv);
    int feed_rc;
    assert_int_equal(handshake(cl->ssl, *srv, &feed_rc), 1);
    assert_int_equal(feed_rc, 0);
}

/* Reads everything the server can decrypt into out; returns bytes or the error. */
static long
server_read_all(mp_tls_conn *srv, unsigned char *out, size_t cap)
{
    size_t got = 0;
    for (;;) {
        int r = mp_tls_read(srv, out + got, cap - got);
        if (r < 0)
            return r;
        if (r == 0)
            return (long)got;
        got += (size_t)r;
    }
}

/* ---- certificate ------------------------------------------------------------------------ */

static void
test_cert_generated(void **state)
{
    struct stat st;
    assert_int_equal(stat(fx.key, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(stat(fx.cert, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);

    X509 *x = load_cert(fx.cert);
    EVP_PKEY *pub = X509_get0_pubkey(x);
    assert_non_null(pub);
    assert_true(EVP_PKEY_is_a(pub, "EC"));
    char group[32];
    size_t glen = 0;
    assert_int_equal(EVP_PKEY_get_group_name(pub, group, sizeof group, &glen), 1);
    assert_string_equal(group, "prime256v1");
    assert_int_equal(X509_verify(x, pub), 1);
    assert_int_equal(X509_get_version(x), X509_VERSION_3);

    /* Subject CN and the SAN both carry the domain. */
    char cn[64];
    assert_true(X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof cn) >
                0);
    assert_string_equal(cn, DOMAIN);
    assert_int_equal(X509_check_host(x, DOMAIN, 0, X509_CHECK_FLAG_NEVER_CHECK_SUBJECT, NULL), 1);
    assert_int_equal(X509_check_host(x, "other.test", 0, 0, NULL), 0);
    GENERAL_NAMES *san = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    assert_non_null(san);
    assert_int_equal(sk_GENERAL_NAME_num(san), 1);
    GENERAL_NAMES_free(san);

    /* Leaf for servers only. */
    assert_int_equal(X509_check_ca(x), 0);
    uint32_t ku = X509_get_key_usage(x);
    assert_true(ku & KU_DIGITAL_SIGNATURE);
    assert_false(ku & KU_KEY_CERT_SIGN);
    assert_true(X509_get_extended_key_usage(x) & XKU_SSL_SERVER);
    assert_int_equal(X509_check_purpose(x, X509_PURPOSE_SSL_SERVER, 0), 1);

    /* About ten years. */
    int days = 0, secs = 0;
    assert_int_equal(ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(x), X509_get0_notAfter(x)),
                     1);
    assert_in_range(days, 3649, 3651);
    X509_free(x);
}

static void
test_cert_not_regenerated(void **state)
{
    size_t l1, l2, k1, k2;
    char *c1 = read_file(fx.cert, &l1), *key1 = read_file(fx.key, &k1);
    assert_non_null(c1);
    assert_non_null(key1);
    assert_int_equal(mp_tls_ensure_cert(fx.cert, fx.key, DOMAIN), 0);
    char *c2 = read_file(fx.cert, &l2), *key2 = read_file(fx.key, &k2);
    assert_non_null(c2);
    assert_non_null(key2);
    assert_int_equal(l1, l2);
    assert_memory_equal(c1, c2, l1);
    assert_int_equal(k1, k2);
    assert_memory_equal(key1, key2, k1);
    free(c1);
    free(c2);
    free(key1);
    free(key2);
}

/* Key present, certificate missing: a new certificate for the same key. */
static void
test_cert_missing_cert_keeps_key(void **state)
{
    char dir[64] = "/tmp/mp_tls_XXXXXX", cert[128], key[128];
    assert_non_null(mkdtemp(dir));
    snprintf(cert, sizeof cert, "%s/c.pem", dir);
    snprintf(key, sizeof key, "%s/k.pem", dir);
    assert_int_equal(mp_tls_ensure_cert(cert, key, "a.test"), 0);
    size_t k1, k2;
    char *key1 = read_file(key, &k1);
    X509 *x1 = load_cert(cert);
    assert_int_equal(unlink(cert), 0);

    assert_int_equal(mp_tls_ensure_cert(cert, key, "a.test"), 0);
    char *key2 = read_file(key, &k2);
    X509 *x2 = load_cert(cert);
    assert_int_equal(k1, k2);
    assert_memory_equal(key1, key2, k1);
    assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(x1), X509_get0_pubkey(x2)), 1);
    /* A fresh random serial. */
    assert_int_not_equal(ASN1_INTEGER_cmp(X509_get0_serialNumber(x1), X509_get0_serialNumber(x2)),
                         0);
    mp_tls_ctx *ctx = NULL;
    assert_int_equal(mp_tls_ctx_new(cert, key, &ctx), 0);
    mp_tls_ctx_free(ctx);
    X509_free(x1);
    X509_free(x2);
    free(key1);
    free(key2);
    rm_rf(dir);
}

static void
test_cert_bad_domain(void **state)
{
    char dir[64] = "/tmp/mp_tls_XXXXXX", cert[128], key[128];
    assert_non_null(mkdtemp(dir));
    snprintf(cert, sizeof cert, "%s/c.pem", dir);
    snprintf(key, sizeof key, "%s/k.pem", dir);
    assert_int_equal(mp_tls_ensure_cert(cert, key, "evil.test,DNS:victim.test"), MP_EINVAL);
    assert_int_equal(mp_tls_ensure_cert(cert, key, ""), MP_EINVAL);
    assert_int_equal(access(cert, F_OK), -1);
    assert_int_equal(access(key, F_OK), -1);
    rm_rf(dir);
}

static void
test_ctx_errors(void **state)
{
    mp_tls_ctx *ctx = (mp_tls_ctx *)1;
    char missing[160];
    snprintf(missing, sizeof missing, "%s/nope.pem", fx.dir);
    assert_int_equal(mp_tls_ctx_new(missing, fx.key, &ctx), MP_EIO);
    assert_null(ctx);
    assert_int_equal(mp_tls_ctx_new(fx.cert, missing, &ctx), MP_EIO);

    /* Someone else's key. */
    char dir[64] = "/tmp/mp_tls_XXXXXX", cert[128], key[128];
    assert_non_null(mkdtemp(dir));
    snprintf(cert, sizeof cert, "%s/c.pem", dir);
    snprintf(key, sizeof key, "%s/k.pem", dir);
    assert_int_equal(mp_tls_ensure_cert(cert, key, "b.test"), 0);
    assert_int_equal(mp_tls_ctx_new(fx.cert, key, &ctx), MP_EIO);
    assert_null(ctx);
    assert_int_equal(ERR_peek_error(), 0); /* logged once, queue left clean */
    rm_rf(dir);
}

/* ---- handshake and data ----------------------------------------------------------------- */

static void
fill(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)((i * 131u + seed) ^ (i >> 8));
}

static void
exchange_large(SSL *cli, mp_tls_conn *srv)
{
    enum { N = 100 * 1024 + 7 };
    unsigned char *out = malloc(N), *in = malloc(N);
    assert_non_null(out);
    assert_non_null(in);
    int feed_rc = 0;

    /* Client to server. */
    fill(out, N, 7);
    size_t written = 0;
    assert_int_equal(SSL_write_ex(cli, out, N, &written), 1);
    assert_int_equal(written, N);
    pump(cli, srv, &feed_rc);
    assert_int_equal(feed_rc, 0);
    assert_int_equal(server_read_all(srv, in, N), N);
    assert_memory_equal(in, out, N);

    /* Server to client. */
    fill(out, N, 99);
    assert_int_equal(mp_tls_write(srv, out, N), 0);
    assert_true(mp_tls_output_pending(srv) > N);
    pump(cli, srv, &feed_rc);
    size_t got = 0;
    while (got < N) {
        size_t n = 0;
        int r = SSL_read_ex(cli, in + got, N - got, &n);
        assert_int_equal(r, 1);
        got += n;
    }
    assert_memory_equal(in, out, N);
    assert_int_equal(mp_tls_write(srv, out, 0), 0);
    free(out);
    free(in);
}

static void
check_end_point(mp_tls_conn *srv)
{
    unsigned char cb[64], want[EVP_MAX_MD_SIZE];
    unsigned int wlen = 0;
    X509 *x = load_cert(fx.cert);
    assert_int_equal(X509_digest(x, EVP_sha256(), want, &wlen), 1);
    X509_free(x);
    assert_int_equal(mp_tls_channel_binding(srv, "tls-server-end-point", cb, sizeof cb), 32);
    assert_memory_equal(cb, want, 32);
    assert_int_equal(mp_tls_channel_binding(srv, "tls-unique", cb, sizeof cb), MP_ENOTFOUND);
}

static void
test_tls13(void **state)
{
    struct client cl;
    mp_tls_conn *srv;
    connect_pair(&cl, &srv, 0);
    assert_string_equal(mp_tls_version(srv), "TLSv1.3");
    assert_int_equal(SSL_version(cl.ssl), TLS1_3_VERSION);
    assert_non_null(mp_tls_alpn(srv));
    assert_string_equal(mp_tls_alpn(srv), "xmpp-client");
    const unsigned char *a = NULL;
    unsigned int alen = 0;
    SSL_get0_alpn_selected(cl.ssl, &a, &alen);
    assert_int_equal(alen, 11);
    assert_memory_equal(a, "xmpp-client", 11);

    exchange_large(cl.ssl, srv);

    unsigned char cb[32], want[32];
    assert_int_equal(mp_tls_channel_binding(srv, "tls-exporter", cb, sizeof cb), 32);
    assert_int_equal(
        SSL_export_keying_material(cl.ssl, want, 32, "EXPORTER-Channel-Binding", 24, NULL, 0, 0),
        1);
    assert_memory_equal(cb, want, 32);
    assert_int_equal(mp_tls_channel_binding(srv, "tls-exporter", cb, 16), MP_ENOTFOUND);
    check_end_point(srv);

    mp_tls_conn_free(srv);
    client_free(&cl);
}

static void
test_tls12(void **state)
{
    struct client cl;
    mp_tls_conn *srv;
    connect_pair(&cl, &srv, TLS1_2_VERSION);
    assert_string_equal(mp_tls_version(srv), "TLSv1.2");
    assert_string_equal(mp_tls_alpn(srv), "xmpp-client");
    /* Server preference: AEAD with forward secrecy. */
    const char *cipher = SSL_get_cipher_name(cl.ssl);
    assert_non_null(strstr(cipher, "ECDHE"));
    assert_non_null(strstr(cipher, "GCM"));

    exchange_large(cl.ssl, srv);

    unsigned char cb[32];
    assert_int_equal(mp_tls_channel_binding(srv, "tls-exporter", cb, sizeof cb), MP_ENOTFOUND);
    check_end_point(srv);
    mp_tls_conn_free(srv);
    client_free(&cl);
}

static void
test_alpn_tolerant(void **state)
{
    /* No ALPN at all, and ALPN without xmpp-client: both still get TLS. */
    static const struct {
        const char *wire;
        size_t len;
    } offers[] = {{NULL, 0}, {"\x02h2\x08http/1.1", 12}};
    for (size_t i = 0; i < sizeof offers / sizeof offers[0]; i++) {
        struct client cl;
        client_init(&cl, 0, 0, offers[i].wire, offers[i].len);
        mp_tls_conn *srv = mp_tls_conn_new(fx.ctx);
        assert_non_null(srv);
        int feed_rc;
        assert_int_equal(handshake(cl.ssl, srv, &feed_rc), 1);
        assert_null(mp_tls_alpn(srv));
        mp_tls_conn_free(srv);
        client_free(&cl);
    }
}

static void
test_write_before_handshake(void **state)
{
    mp_tls_conn *srv = mp_tls_conn_new(fx.ctx);
    assert_non_null(srv);
    assert_int_equal(mp_tls_handshake_done(srv), 0);
    assert_int_equal(mp_tls_write(srv, "x", 1), MP_AGAIN);
    assert_int_equal(mp_tls_output_pending(srv), 0);
    unsigned char buf[16];
    assert_int_equal(mp_tls_read(srv, buf, sizeof buf), 0);
    assert_int_equal(mp_tls_channel_binding(srv, "tls-server-end-point", buf, sizeof buf),
                     MP_ENOTFOUND);
    assert_int_equal(mp_tls_shutdown(srv), MP_AGAIN);
    mp_tls_conn_free(srv);
}

/* Bytes trickling in one at a time must still complete the handshake. */
static void
test_byte_by_byte(void **state)
{
    struct client cl;
    client_init(&cl, 0, 0, "\x0bxmpp-client", 12);
    mp_tls_conn *srv = mp_tls_conn_new(fx.ctx);
    assert_non_null(srv);
    unsigned char buf[16384];
    int cli_done = 0;
    for (int round = 0; round < 20 && !(cli_done && mp_tls_handshake_done(srv)); round++) {
        if (!cli_done && SSL_do_handshake(cl.ssl) == 1)
            cli_done = 1;
        int r;
        while ((r = BIO_read(SSL_get_wbio(cl.ssl), buf, sizeof buf)) > 0)
            for (int i = 0; i < r; i++)
                assert_int_equal(mp_tls_feed(srv, buf + i, 1), 0);
        size_t n;
        while ((n = mp_tls_take_output(srv, buf, 7)) > 0)
            assert_int_equal(BIO_write(SSL_get_rbio(cl.ssl), buf, (int)n), (int)n);
    }
    assert_true(cli_done);
    assert_true(mp_tls_handshake_done(srv));
    assert_int_equal(SSL_write(cl.ssl, "<presence/>", 11), 11);
    int r = BIO_read(SSL_get_wbio(cl.ssl), buf, sizeof buf);
    assert_true(r > 0);
    for (int i = 0; i < r; i++)
        assert_int_equal(mp_tls_feed(srv, buf + i, 1), 0);
    assert_int_equal(mp_tls_read(srv, buf, sizeof buf), 11);
    assert_memory_equal(buf, "<presence/>", 11);
    mp_tls_conn_free(srv);
    client_free(&cl);
}

/* ---- refusals --------------------------------------------------------------------------- */

static void
test_tls11_refused(void **state)
{
    struct client cl;
    client_init(&cl, TLS1_1_VERSION, TLS1_1_VERSION, NULL, 0);
    mp_tls_conn *srv = mp_tls_conn_new(fx.ctx);
    assert_non_null(srv);
    int feed_rc;
    assert_int_equal(handshake(cl.ssl, srv, &feed_rc), 0);
    assert_int_equal(feed_rc, MP_EIO);
    assert_false(mp_tls_handshake_done(srv));
    /* Refused for its version, not for some side effect such as missing ciphers. */
    assert_int_equal(client_reason, SSL_R_TLSV1_ALERT_PROTOCOL_VERSION);
    /* Once failed, always failed. */
    unsigned char buf[8];
    assert_int_equal(mp_tls_feed(srv, "x", 1), MP_EIO);
    assert_int_equal(mp_tls_read(srv, buf, sizeof buf), MP_EIO);
    assert_int_equal(mp_tls_write(srv, "x", 1), MP_EIO);
    assert_int_equal(ERR_peek_error(), 0);
    mp_tls_conn_free(srv);
    client_free(&cl);
}

static void
test_renegotiation_refused(void **state)
{
    struct client cl;
    mp_tls_conn *srv;
    connect_pair(&cl, &srv, TLS1_2_VERSION);
    assert_int_equal(SSL_renegotiate(cl.ssl), 1);
    int renegotiated = 0, cli_failed = 0, reason = 0;
    unsigned char buf[256];
    for (int i = 0; i < 10 && !cli_failed; i++) {
        ERR_clear_error();
        int r = SSL_do_handshake(cl.ssl);
        if (r == 1 && !SSL_renegotiate_pending(cl.ssl))
            renegotiated = 1;
        else if (r != 1 && SSL_get_error(cl.ssl, r) != SSL_ERROR_WANT_READ) {
            cli_failed = 1;
            reason = ERR_GET_REASON(ERR_peek_error());
        }
        int feed_rc = 0;
        pump(cl.ssl, srv, &feed_rc);
        assert_true(mp_tls_read(srv, buf, sizeof buf) <= 0);
        pump(cl.ssl, srv, &feed_rc);
    }
    ERR_clear_error();
    assert_false(renegotiated);
    /* The server answered the new ClientHello with a no_renegotiation alert. */
    assert_true(cli_failed);
    assert_int_equal(reason, SSL_R_NO_RENEGOTIATION);
    mp_tls_conn_free(srv);
    client_free(&cl);
}

static void
test_garbage(void **state)
{
    /* Before the handshake. */
    mp_tls_conn *srv = mp_tls_conn_new(fx.ctx);
    assert_non_null(srv);
    static const char junk[] = "<?xml version='1.0'?><stream:stream to='example.test'>";
    assert_int_equal(mp_tls_feed(srv, junk, sizeof junk - 1), MP_EIO);
    assert_int_equal(ERR_peek_error(), 0);
    mp_tls_conn_free(srv);

    /* After it: a record that does not decrypt. */
    struct client cl;
    connect_pair(&cl, &srv, 0);
    unsigned char rec[64];
    rec[0] = 0x17;
    rec[1] = 0x03;
    rec[2] = 0x03;
    rec[3] = 0;
    rec[4] = sizeof rec - 5;
    memset(rec + 5, 0xa5, sizeof rec - 5);
    assert_int_equal(mp_tls_feed(srv, rec, sizeof rec), 0);
    unsigned char buf[64];
    assert_int_equal(mp_tls_read(srv, buf, sizeof buf), MP_EIO);
    assert_true(mp_tls_output_pending(srv) > 0); /* the alert for the peer */
    assert_int_equal(ERR_peek_error(), 0);
    mp_tls_conn_free(srv);
    client_free(&cl);
}

static void
test_close_notify(void **state)
{
    struct client cl;
    mp_tls_conn *srv;
    connect_pair(&cl, &srv, 0);
    assert_int_equal(SSL_write(cl.ssl, "</stream:stream>", 16), 16);
    assert_int_equal(SSL_shutdown(cl.ssl), 0);
    int feed_rc = 0;
    pump(cl.ssl, srv, &feed_rc);
    unsigned char buf[64];
    assert_int_equal(mp_tls_read(srv, buf, sizeof buf), 16);
    assert_memory_equal(buf, "</stream:stream>", 16);
    assert_int_equal(mp_tls_read(srv, buf, sizeof buf), MP_ECLOSED);
    assert_int_equal(mp_tls_read(srv, buf, sizeof buf), MP_ECLOSED);

    /* Our close_notify completes the client's shutdown. */
    assert_int_equal(mp_tls_shutdown(srv), 0);
    assert_true(mp_tls_output_pending(srv) > 0);
    pump(cl.ssl, srv, &feed_rc);
    assert_int_equal(SSL_shutdown(cl.ssl), 1);
    mp_tls_conn_free(srv);
    client_free(&cl);
}

/* ---- takeover of idle TLS 1.3 connections ---------------------------------------------- */

static void
connect_suite(struct client *cl, mp_tls_conn **srv, const char *suite)
{
    client_init(cl, 0, 0, "\x0bxmpp-client", 12);
    if (suite)
        assert_int_equal(SSL_set_ciphersuites(cl->ssl, suite), 1);
    *srv = mp_tls_conn_new(fx.ctx);
    assert_non_null(*srv);
    int feed_rc;
    assert_int_equal(handshake(cl->ssl, *srv, &feed_rc), 1);
    assert_int_equal(feed_rc, 0);
}

/* A small message each way, checked byte for byte. */
static void
ping_pong(SSL *cli, mp_tls_conn *srv, int round)
{
    char msg[64], got[64];
    int len = snprintf(msg, sizeof msg, "<message id='c%d'/>", round);
    int feed_rc = 0;
    assert_int_equal(SSL_write(cli, msg, len), len);
    pump(cli, srv, &feed_rc);
    assert_int_equal(feed_rc, 0);
    assert_int_equal(server_read_all(srv, (unsigned char *)got, sizeof got), len);
    assert_memory_equal(got, msg, (size_t)len);

    len = snprintf(msg, sizeof msg, "<message id='s%d'/>", round);
    assert_int_equal(mp_tls_write(srv, msg, (size_t)len), 0);
    pump(cli, srv, &feed_rc);
    assert_int_equal(SSL_read(cli, got, sizeof got), len);
    assert_memory_equal(got, msg, (size_t)len);
}

static void
check_exporter(SSL *cli, mp_tls_conn *srv)
{
    unsigned char cb[32], want[32];
    assert_int_equal(mp_tls_channel_binding(srv, "tls-exporter", cb, sizeof cb), 32);
    assert_int_equal(
        SSL_export_keying_material(cli, want, 32, "EXPORTER-Channel-Binding", 24, NULL, 0, 0), 1);
    assert_memory_equal(cb, want, 32);
}

/* Lets the client process whatever the server sent (a KeyUpdate, tickets) without data. */
static void
client_poll(SSL *cli)
{
    char tmp[16];
    ERR_clear_error();
    int r = SSL_read(cli, tmp, sizeof tmp);
    assert_true(r <= 0);
    assert_int_equal(SSL_get_error(cli, r), SSL_ERROR_WANT_READ);
}

static void
takeover_suite(const char *suite, const char *name)
{
    struct client cl;
    mp_tls_conn *srv;
    connect_suite(&cl, &srv, suite);
    assert_string_equal(SSL_CIPHER_get_name(SSL_get_current_cipher(cl.ssl)), name);
    ping_pong(cl.ssl, srv, 0);
    client_poll(cl.ssl); /* takes the session tickets */

    assert_false(mp_tls_taken_over(srv));
    mp_tls_conn_shrink(srv);
    assert_true(mp_tls_taken_over(srv));
    assert_string_equal(mp_tls_version(srv), "TLSv1.3");
    assert_string_equal(mp_tls_alpn(srv), "xmpp-client");
    check_exporter(cl.ssl, srv);
    check_end_point(srv);

    for (int i = 1; i <= 20; i++) {
        ping_pong(cl.ssl, srv, i);
        if (i % 5 == 0)
            mp_tls_conn_shrink(srv); /* idle again: the AEAD contexts go and come back */
    }
    exchange_large(cl.ssl, srv); /* 100 KiB each way: many full 2^14 records */
    mp_tls_conn_shrink(srv);

    /* The client updates its key and asks for ours: the server must follow both. */
    int feed_rc = 0;
    assert_int_equal(SSL_key_update(cl.ssl, SSL_KEY_UPDATE_REQUESTED), 1);
    ping_pong(cl.ssl, srv, 100);
    ping_pong(cl.ssl, srv, 101);
    mp_tls_conn_shrink(srv);
    assert_int_equal(SSL_key_update(cl.ssl, SSL_KEY_UPDATE_NOT_REQUESTED), 1);
    ping_pong(cl.ssl, srv, 102);
    exchange_large(cl.ssl, srv);
    assert_int_equal(SSL_key_update(cl.ssl, SSL_KEY_UPDATE_REQUESTED), 1);
    assert_int_equal(SSL_do_handshake(cl.ssl), 1); /* sends the KeyUpdate alone */
    pump(cl.ssl, srv, &feed_rc);
    assert_int_equal(feed_rc, 0);
    assert_true(mp_tls_output_pending(srv) == 0); /* pump moved our KeyUpdate */
    client_poll(cl.ssl);
    ping_pong(cl.ssl, srv, 103);

    /* Orderly close both ways. */
    unsigned char buf[64];
    assert_int_equal(SSL_write(cl.ssl, "</stream:stream>", 16), 16);
    assert_int_equal(SSL_shutdown(cl.ssl), 0);
    pump(cl.ssl, srv, &feed_rc);
    assert_int_equal(feed_rc, 0);
    assert_int_equal(mp_tls_read(srv, buf, sizeof buf), 16);
    assert_memory_equal(buf, "</stream:stream>", 16);
    assert_int_equal(mp_tls_read(srv, buf, sizeof buf), MP_ECLOSED);
    assert_int_equal(mp_tls_read(srv, buf, sizeof buf), MP_ECLOSED);
    assert_int_equal(mp_tls_shutdown(srv), 0);
    pump(cl.ssl, srv, &feed_rc);
    assert_int_equal(SSL_shutdown(cl.ssl), 1);
    mp_tls_conn_free(srv);
    client_free(&cl);
}

static void
test_takeover_suites(void **state)
{
    takeover_suite("TLS_AES_128_GCM_SHA256", "TLS_AES_128_GCM_SHA256");
    takeover_suite("TLS_AES_256_GCM_SHA384", "TLS_AES_256_GCM_SHA384");
    takeover_suite("TLS_CHACHA20_POLY1305_SHA256", "TLS_CHACHA20_POLY1305_SHA256");
    takeover_suite(NULL, "TLS_AES_256_GCM_SHA384"); /* server preference */
}

/* Right after the handshake, before any application data and before the client even read
 * its tickets, and with the server talking first. */
static void
test_takeover_fresh(void **state)
{
    struct client cl;
    mp_tls_conn *srv;
    connect_suite(&cl, &srv, NULL);
    mp_tls_conn_shrink(srv);
    assert_true(mp_tls_taken_over(srv));
    int feed_rc = 0;
    assert_int_equal(mp_tls_write(srv, "<stream:stream>", 15), 0);
    pump(cl.ssl, srv, &feed_rc);
    char got[32];
    assert_int_equal(SSL_read(cl.ssl, got, sizeof got), 15);
    assert_memory_equal(got, "<stream:stream>", 15);
    ping_pong(cl.ssl, srv, 1);
    mp_tls_conn_free(srv);
    client_free(&cl);
}

static void
test_takeover_tls12_stays(void **state)
{
    struct client cl;
    mp_tls_conn *srv;
    connect_pair(&cl, &srv, TLS1_2_VERSION);
    ping_pong(cl.ssl, srv, 0);
    mp_tls_conn_shrink(srv);
    assert_false(mp_tls_taken_over(srv));
    assert_string_equal(mp_tls_version(srv), "TLSv1.2");
    exchange_large(cl.ssl, srv);
    mp_tls_conn_shrink(srv);
    assert_false(mp_tls_taken_over(srv));
    ping_pong(cl.ssl, srv, 1);
    check_end_point(srv);
    mp_tls_conn_free(srv);
    client_free(&cl);
}

/* What OpenSSL did that we cannot follow keeps the connection with OpenSSL. */
static void
test_takeover_refused(void **state)
{
    struct client cl;
    mp_tls_conn *srv;
    int feed_rc = 0;

    /* A KeyUpdate while OpenSSL still had the connection. */
    connect_suite(&cl, &srv, NULL);
    assert_int_equal(SSL_key_update(cl.ssl, SSL_KEY_UPDATE_REQUESTED), 1);
    ping_pong(cl.ssl, srv, 0);
    mp_tls_conn_shrink(srv);
    assert_false(mp_tls_taken_over(srv));
    ping_pong(cl.ssl, srv, 1);
    mp_tls_conn_free(srv);
    client_free(&cl);

    /* Input not read yet, then plaintext OpenSSL decrypted but we did not take. */
    connect_suite(&cl, &srv, NULL);
    assert_int_equal(SSL_write(cl.ssl, "abcdef", 6), 6);
    pump(cl.ssl, srv, &feed_rc);
    mp_tls_conn_shrink(srv);
    assert_false(mp_tls_taken_over(srv));
    char got[8];
    assert_int_equal(mp_tls_read(srv, got, 2), 2);
    mp_tls_conn_shrink(srv);
    assert_false(mp_tls_taken_over(srv));
    assert_int_equal(server_read_all(srv, (unsigned char *)got, sizeof got), 4);
    assert_memory_equal(got, "cdef", 4);
    /* Output not taken yet. */
    assert_int_equal(mp_tls_write(srv, "xyz", 3), 0);
    mp_tls_conn_shrink(srv);
    assert_false(mp_tls_taken_over(srv));
    pump(cl.ssl, srv, &feed_rc);
    assert_int_equal(SSL_read(cl.ssl, got, sizeof got), 3);
    mp_tls_conn_shrink(srv);
    assert_true(mp_tls_taken_over(srv));
    ping_pong(cl.ssl, srv, 2);
    mp_tls_conn_free(srv);
    client_free(&cl);

    /* Our own close_notify is out. */
    connect_suite(&cl, &srv, NULL);
    assert_int_equal(mp_tls_shutdown(srv), 0);
    pump(cl.ssl, srv, &feed_rc);
    mp_tls_conn_shrink(srv);
    assert_false(mp_tls_taken_over(srv));
    mp_tls_conn_free(srv);
    client_free(&cl);
}

/* A record the client did not send: the server refuses it with bad_record_mac. */
static void
test_takeover_tampered(void **state)
{
    struct client cl;
    mp_tls_conn *srv;
    connect_suite(&cl, &srv, NULL);
    mp_tls_conn_shrink(srv);
    assert_true(mp_tls_taken_over(srv));
    assert_int_equal(SSL_write(cl.ssl, "<presence/>", 11), 11);
    unsigned char rec[256];
    int n = BIO_read(SSL_get_wbio(cl.ssl), rec, sizeof rec);
    assert_true(n > 20);
    rec[n - 1] ^= 1; /* the tag */
    assert_int_equal(mp_tls_feed(srv, rec, (size_t)n), MP_EIO);
    unsigned char buf[16];
    assert_int_equal(mp_tls_read(srv, buf, sizeof buf), MP_EIO);
    assert_int_equal(mp_tls_write(srv, "x", 1), MP_EIO);
    int feed_rc = 0;
    pump(cl.ssl, srv, &feed_rc);
    ERR_clear_error();
    assert_true(SSL_read(cl.ssl, buf, sizeof buf) <= 0);
    assert_int_equal(ERR_GET_REASON(ERR_peek_last_error()), SSL_R_SSLV3_ALERT_BAD_RECORD_MAC);
    ERR_clear_error();
    mp_tls_conn_free(srv);
    client_free(&cl);
}

/* Records trickling in a byte at a time after the takeover. */
static void
test_takeover_byte_by_byte(void **state)
{
    struct client cl;
    mp_tls_conn *srv;
    connect_suite(&cl, &srv, "TLS_CHACHA20_POLY1305_SHA256");
    mp_tls_conn_shrink(srv);
    assert_true(mp_tls_taken_over(srv));
    static const char msg[] = "<iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>";
    assert_int_equal(SSL_write(cl.ssl, msg, sizeof msg - 1), (int)sizeof msg - 1);
    assert_int_equal(SSL_write(cl.ssl, msg, sizeof msg - 1), (int)sizeof msg - 1);
    unsigned char wire[512], got[256];
    int n = BIO_read(SSL_get_wbio(cl.ssl), wire, sizeof wire);
    assert_true(n > 0);
    size_t have = 0;
    for (int i = 0; i < n; i++) {
        assert_int_equal(mp_tls_feed(srv, wire + i, 1), 0);
        int r = mp_tls_read(srv, got + have, sizeof got - have);
        assert_true(r >= 0);
        have += (size_t)r;
    }
    assert_int_equal(have, 2 * (sizeof msg - 1));
    assert_memory_equal(got, msg, sizeof msg - 1);
    assert_memory_equal(got + sizeof msg - 1, msg, sizeof msg - 1);
    mp_tls_conn_free(srv);
    client_free(&cl);
}

/* ---- memory ----------------------------------------------------------------------------- */

static size_t
heap_in_use(void)
{
#ifdef HAVE_ASAN
    return __sanitizer_get_current_allocated_bytes();
#else
    return mallinfo2().uordblks;
#endif
}

static void
test_idle_memory(void **state)
{
    enum { CONNS = 100 };
    mp_tls_conn *srv[CONNS];
    struct client warm;

    /* One full round first: OpenSSL loads providers and caches algorithms on first use. */
    mp_tls_conn *w;
    connect_pair(&warm, &w, 0);
    exchange_large(warm.ssl, w);
    mp_tls_conn_free(w);
    client_free(&warm);

    size_t before = heap_in_use();
    for (int i = 0; i < CONNS; i++) {
        struct client cl;
        connect_pair(&cl, &srv[i], i % 2 ? TLS1_2_VERSION : 0);
        /* A typical exchange leaves the BIOs holding their largest buffers. */
        unsigned char buf[4096];
        memset(buf, 'x', sizeof buf);
        assert_int_equal(SSL_write(cl.ssl, buf, sizeof buf), (int)sizeof buf);
        int feed_rc = 0;
        pump(cl.ssl, srv[i], &feed_rc);
        assert_int_equal(server_read_all(srv[i], buf, sizeof buf), sizeof buf);
        assert_int_equal(mp_tls_write(srv[i], buf, sizeof buf), 0);
        pump(cl.ssl, srv[i], &feed_rc);
        client_free(&cl);
    }
    size_t idle = heap_in_use();
    for (int i = 0; i < CONNS; i++)
        mp_tls_conn_shrink(srv[i]);
    size_t shrunk = heap_in_use();
    size_t per_idle = (idle - before) / CONNS, per_shrunk = (shrunk - before) / CONNS;
    printf("tls: heap per idle handshaken connection (%s): %zu bytes, after shrink %zu bytes"
           " (%d connections, half TLS 1.3, half TLS 1.2)\n",
#ifdef HAVE_ASAN
           "asan allocator",
#else
           "mallinfo2",
#endif
           per_idle, per_shrunk, CONNS);
    assert_true(shrunk <= idle);
    assert_true(per_shrunk < 16 * 1024);

    /* Shrunk connections still work. */
    struct client cl;
    mp_tls_conn *s;
    connect_pair(&cl, &s, 0);
    mp_tls_conn_shrink(s);
    exchange_large(cl.ssl, s);
    mp_tls_conn_shrink(s);
    exchange_large(cl.ssl, s);
    mp_tls_conn_free(s);
    client_free(&cl);

    for (int i = 0; i < CONNS; i++)
        mp_tls_conn_free(srv[i]);
}

/* What an idle TLS 1.3 connection keeps once taken over: a few hundred bytes. */
static void
test_takeover_memory(void **state)
{
    enum { CONNS = 50 };
    mp_tls_conn *srv[CONNS];
    size_t before = heap_in_use();
    for (int i = 0; i < CONNS; i++) {
        struct client cl;
        connect_suite(&cl, &srv[i], NULL);
        ping_pong(cl.ssl, srv[i], i);
        client_free(&cl);
    }
    size_t idle = heap_in_use();
    for (int i = 0; i < CONNS; i++) {
        mp_tls_conn_shrink(srv[i]);
        assert_true(mp_tls_taken_over(srv[i]));
    }
    size_t shrunk = heap_in_use();
    printf("tls: heap per idle TLS 1.3 connection: %zu bytes with OpenSSL, %zu bytes taken over\n",
           (idle - before) / CONNS, (shrunk - before) / CONNS);
    assert_true((shrunk - before) / CONNS < 1024);
    for (int i = 0; i < CONNS; i++)
        mp_tls_conn_free(srv[i]);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cert_generated),
        cmocka_unit_test(test_cert_not_regenerated),
        cmocka_unit_test(test_cert_missing_cert_keeps_key),
        cmocka_unit_test(test_cert_bad_domain),
        cmocka_unit_test(test_ctx_errors),
        cmocka_unit_test(test_tls13),
        cmocka_unit_test(test_tls12),
        cmocka_unit_test(test_alpn_tolerant),
        cmocka_unit_test(test_write_before_handshake),
        cmocka_unit_test(test_byte_by_byte),
        cmocka_unit_test(test_tls11_refused),
        cmocka_unit_test(test_renegotiation_refused),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_close_notify),
        cmocka_unit_test(test_idle_memory),
        cmocka_unit_test(test_takeover_suites),
        cmocka_unit_test(test_takeover_fresh),
        cmocka_unit_test(test_takeover_tls12_stays),
        cmocka_unit_test(test_takeover_refused),
        cmocka_unit_test(test_takeover_tampered),
        cmocka_unit_test(test_takeover_byte_by_byte),
        cmocka_unit_test(test_takeover_memory),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
