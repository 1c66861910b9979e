/* TLS over memory BIOs with OpenSSL 3: the event loop owns the socket and moves ciphertext
 * in and out; this unit only turns it into plaintext and back. */
#include "stream/tls.h"
#include "base/hex.h"
#include "stream/tls13_record.h"
#include "base/err.h"
#include "base/log.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CERT_DAYS 3650
#define EXPORTER_LABEL "EXPORTER-Channel-Binding"
#define EXPORTER_LEN 32

/* Mozilla "intermediate" for TLS 1.2, forward secret AEAD only, in server preference order.
 * TLS 1.3 suites keep OpenSSL's defaults. */
#define TLS12_CIPHERS                                                                              \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                                   \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                                   \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"                                   \
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305"

static const char alpn_xmpp[] = "xmpp-client";

struct mp_tls_ctx {
    SSL_CTX *ssl_ctx;
};

enum {
    CONN_DONE = 1u << 0,   /* handshake finished once; stays set */
    CONN_FAILED = 1u << 1, /* fatal error seen: every later call fails */
    CONN_CLOSED = 1u << 2, /* close_notify received */
    /* Record accounting for the takeover (TLS 1.3 only, see mp_tls_conn_shrink). */
    CONN_APP_RD = 1u << 3,      /* client Finished read: its records use application keys */
    CONN_APP_WR = 1u << 4,      /* our Finished written: so do ours */
    CONN_NO_TAKEOVER = 1u << 5, /* something happened under OpenSSL we cannot account for */
    CONN_HAVE_CLIENT = 1u << 6, /* CLIENT_TRAFFIC_SECRET_0 captured */
    CONN_HAVE_SERVER = 1u << 7, /* SERVER_TRAFFIC_SECRET_0 captured */
    CONN_OWN = 1u << 8,         /* taken over: ssl is NULL, own->rec carries the records */
    CONN_ALPN = 1u << 9,        /* xmpp-client was selected (kept across the takeover) */
};

/* What our own record layer needs once OpenSSL is gone. Allocated when the handshake logs its
 * first application traffic secret, so TLS 1.2 connections never have one. */
struct own {
    mp_tls13 rec;
    SSL_CTX *ssl_ctx; /* referenced: the certificate for tls-server-end-point */
    unsigned char exporter[EXPORTER_LEN];
};

/* Kept minimal on purpose: one per client connection. The BIOs hang off the SSL. */
struct mp_tls_conn {
    SSL *ssl;                /* NULL after the takeover */
    struct own *own;         /* secrets during the handshake, the record layer after the takeover */
    uint64_t rd_seq, wr_seq; /* application-key records OpenSSL read and wrote */
    unsigned flags;
};

/* One line for the whole OpenSSL error queue, then clear it so it cannot leak into the next
 * SSL_get_error() on this thread. */
static void
log_ssl_error(int level, const char *what, const char *path)
{
    /* The oldest entry is the cause (say, "No such file or directory"), the newest what it
     * broke; both when they differ. */
    unsigned long first = ERR_get_error(), last = ERR_peek_last_error();
    char msg[512] = "no details", tail[256];
    if (first != 0)
        ERR_error_string_n(first, msg, 256);
    if (last != 0 && last != first) {
        ERR_error_string_n(last, tail, sizeof tail);
        size_t n = strlen(msg);
        snprintf(msg + n, sizeof msg - n, "; %s", tail);
    }
    ERR_clear_error();
    if (level == MP_LOG_DEBUG)
        mp_debug("tls: %s%s%s: %s", what, path ? " " : "", path ? path : "", msg);
    else
        mp_log(level, "tls: %s%s%s: %s", what, path ? " " : "", path ? path : "", msg);
}

/* ---- certificate generation ------------------------------------------------------------- */

static int
file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* mkdir -p for the directory part of path. */
static int
make_parent_dirs(const char *path)
{
    char *dir = strdup(path);
    if (!dir)
        return MP_ENOMEM;
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir) {
        free(dir);
        return 0;
    }
    *slash = '\0';
    int rc = 0;
    for (char *p = dir + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
            mp_err("tls: cannot create directory %s: %s", dir, strerror(errno));
            rc = MP_EIO;
            break;
        }
        *p = c;
        if (c == '\0')
            break;
    }
    free(dir);
    return rc;
}

static int
write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Writes the PEM in bio to a new file. With excl, the file must not exist (the private key:
 * never follow a planted file or symlink); otherwise it goes through a temporary and rename so
 * a reader never sees half a certificate. */
static int
write_pem_file(const char *path, BIO *bio, mode_t mode, int excl)
{
    char *data = NULL;
    long len = BIO_get_mem_data(bio, &data);
    if (len <= 0)
        return MP_EIO;

    char tmp[PATH_MAX];
    const char *target = path;
    if (!excl) {
        int n = snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
        if (n < 0 || (size_t)n >= sizeof tmp)
            return MP_EINVAL;
        target = tmp;
        unlink(tmp);
    }
    int fd = open(target, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0) {
        mp_err("tls: cannot create %s: %s", target, strerror(errno));
        return MP_EIO;
    }
    if (write_all(fd, data, (size_t)len) != 0 || fsync(fd) != 0) {
        mp_err("tls: cannot write %s: %s", target, strerror(errno));
        close(fd);
        unlink(target);
        return MP_EIO;
    }
    if (close(fd) != 0) {
        mp_err("tls: cannot write %s: %s", target, strerror(errno));
        unlink(target);
        return MP_EIO;
    }
    if (!excl && rename(tmp, path) != 0) {
        mp_err("tls: cannot rename %s to %s: %s", tmp, path, strerror(errno));
        unlink(tmp);
        return MP_EIO;
    }
    return 0;
}

/* A DNS SAN is an IA5String and the domain ends up in a certificate: printable ASCII only
 * (an IDN must already be in its A-label form). */
static int
domain_ok(const char *domain)
{
    size_t n = strlen(domain);
    if (n == 0 || n > 253)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)domain[i];
        if (ch <= 0x20 || ch >= 0x7f || ch == '/' || ch == ',')
            return 0;
    }
    return 1;
}

static int
add_ext(X509 *x, X509V3_CTX *v3, int nid, const char *value)
{
    X509_EXTENSION *ext = X509V3_EXT_nconf_nid(NULL, v3, nid, value);
    if (!ext)
        return 0;
    int ok = X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    return ok;
}

static int
add_san(X509 *x, const char *domain)
{
    GENERAL_NAMES *gens = GENERAL_NAMES_new();
    GENERAL_NAME *gen = GENERAL_NAME_new();
    ASN1_IA5STRING *ia5 = ASN1_IA5STRING_new();
    int ok = 0;
    if (!gens || !gen || !ia5 || !ASN1_STRING_set(ia5, domain, (int)strlen(domain)))
        goto done;
    GENERAL_NAME_set0_value(gen, GEN_DNS, ia5);
    ia5 = NULL;
    if (!sk_GENERAL_NAME_push(gens, gen))
        goto done;
    gen = NULL;
    ok = X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT) == 1;
done:
    ASN1_IA5STRING_free(ia5);
    GENERAL_NAME_free(gen);
    GENERAL_NAMES_free(gens);
    return ok;
}

/* 159 random bits: positive, non-zero, at most 20 octets (RFC 5280 §4.1.2.2). */
static int
set_random_serial(X509 *x)
{
    unsigned char raw[20];
    if (RAND_bytes(raw, sizeof raw) != 1)
        return 0;
    raw[0] &= 0x7f;
    raw[0] |= 0x01;
    BIGNUM *bn = BN_bin2bn(raw, sizeof raw, NULL);
    if (!bn)
        return 0;
    ASN1_INTEGER *serial = BN_to_ASN1_INTEGER(bn, NULL);
    BN_free(bn);
    if (!serial)
        return 0;
    int ok = X509_set_serialNumber(x, serial);
    ASN1_INTEGER_free(serial);
    return ok;
}

static X509 *
make_cert(EVP_PKEY *pkey, const char *domain)
{
    X509 *x = X509_new();
    X509_NAME *name = X509_NAME_new();
    if (!x || !name)
        goto fail;
    if (!X509_set_version(x, X509_VERSION_3) || !set_random_serial(x))
        goto fail;
    if (!X509_gmtime_adj(X509_getm_notBefore(x), 0) ||
        !X509_time_adj_ex(X509_getm_notAfter(x), CERT_DAYS, 0, NULL))
        goto fail;
    if (!X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8,
                                    (const unsigned char *)domain, -1, -1, 0) ||
        !X509_set_subject_name(x, name) || !X509_set_issuer_name(x, name) ||
        !X509_set_pubkey(x, pkey))
        goto fail;

    X509V3_CTX v3;
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    if (!add_ext(x, &v3, NID_basic_constraints, "critical,CA:FALSE") ||
        !add_ext(x, &v3, NID_key_usage, "critical,digitalSignature") ||
        !add_ext(x, &v3, NID_ext_key_usage, "serverAuth") ||
        !add_ext(x, &v3, NID_subject_key_identifier, "hash") || !add_san(x, domain))
        goto fail;

    /* EdDSA signs without a separate digest; every other key type gets SHA-256. */
    const EVP_MD *md = EVP_sha256();
    if (EVP_PKEY_is_a(pkey, "ED25519") || EVP_PKEY_is_a(pkey, "ED448"))
        md = NULL;
    if (X509_sign(x, pkey, md) <= 0)
        goto fail;
    X509_NAME_free(name);
    return x;
fail:
    X509_NAME_free(name);
    X509_free(x);
    return NULL;
}

static EVP_PKEY *
load_key(const char *key_path)
{
    BIO *in = BIO_new_file(key_path, "r");
    if (!in)
        return NULL;
    EVP_PKEY *pkey = PEM_read_bio_PrivateKey(in, NULL, NULL, NULL);
    BIO_free(in);
    return pkey;
}

int
mp_tls_ensure_cert(const char *cert_path, const char *key_path, const char *domain)
{
    int have_cert = file_exists(cert_path), have_key = file_exists(key_path);
    if (have_cert && have_key)
        return 0;
    if (!domain_ok(domain)) {
        mp_err("tls: cannot make a certificate for domain \"%s\"", domain);
        return MP_EINVAL;
    }

    EVP_PKEY *pkey = NULL;
    X509 *x = NULL;
    BIO *kbio = NULL, *cbio = NULL;
    int rc = MP_EIO, key_written = 0;
    ERR_clear_error();

    /* A key without its certificate is kept: replacing it would surprise whoever put it
     * there. A certificate without its key is useless and gets replaced. */
    if (have_key) {
        pkey = load_key(key_path);
        if (!pkey) {
            log_ssl_error(MP_LOG_ERROR, "cannot read private key", key_path);
            goto done;
        }
    } else {
        pkey = EVP_EC_gen("P-256");
        if (!pkey) {
            log_ssl_error(MP_LOG_ERROR, "cannot generate an EC P-256 key for", domain);
            goto done;
        }
    }
    x = make_cert(pkey, domain);
    if (!x) {
        log_ssl_error(MP_LOG_ERROR, "cannot build a certificate for", domain);
        goto done;
    }

    cbio = BIO_new(BIO_s_mem());
    if (!cbio || !PEM_write_bio_X509(cbio, x)) {
        log_ssl_error(MP_LOG_ERROR, "cannot encode certificate", cert_path);
        goto done;
    }
    if (!have_key) {
        kbio = BIO_new(BIO_s_mem());
        if (!kbio || !PEM_write_bio_PrivateKey(kbio, pkey, NULL, NULL, 0, NULL, NULL)) {
            log_ssl_error(MP_LOG_ERROR, "cannot encode private key", key_path);
            goto done;
        }
        if ((rc = make_parent_dirs(key_path)) != 0)
            goto done;
        if ((rc = write_pem_file(key_path, kbio, 0600, 1)) != 0)
            goto done;
        key_written = 1;
    }
    if ((rc = make_parent_dirs(cert_path)) != 0)
        goto done;
    if ((rc = write_pem_file(cert_path, cbio, 0644, 0)) != 0)
        goto done;

    unsigned char fp[EVP_MAX_MD_SIZE];
    unsigned int fplen = 0;
    char hex[EVP_MAX_MD_SIZE * 3 + 1] = "";
    if (X509_digest(x, EVP_sha256(), fp, &fplen)) {
        for (unsigned int i = 0; i < fplen; i++)
            snprintf(hex + 3 * i, 4, "%02X%s", fp[i], i + 1 < fplen ? ":" : "");
    }
    mp_info("tls: generated a self-signed certificate for %s in %s, SHA-256 fingerprint %s", domain,
            cert_path, hex);
    rc = 0;
done:
    /* Never leave a fresh key behind without the certificate that goes with it. */
    if (rc != 0 && key_written)
        unlink(key_path);
    BIO_free(kbio); /* a memory BIO clears its buffer on free */
    BIO_free(cbio);
    X509_free(x);
    EVP_PKEY_free(pkey);
    ERR_clear_error();
    return rc;
}

/* ---- context ---------------------------------------------------------------------------- */

/* Picks "xmpp-client" when offered. A client offering only other protocols still gets TLS,
 * without ALPN: refusing it would break clients that send ALPN for the wrong reasons. */
static int
alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
            unsigned int inlen, void *arg)
{
    const size_t want = sizeof alpn_xmpp - 1;
    unsigned int i = 0;
    while (i < inlen) {
        unsigned int n = in[i++];
        if (n > inlen - i)
            break;
        if (n == want && memcmp(in + i, alpn_xmpp, want) == 0) {
            *out = in + i;
            *outlen = (unsigned char)n;
            return SSL_TLSEXT_ERR_OK;
        }
        i += n;
    }
    return SSL_TLSEXT_ERR_NOACK;
}

/* ---- record accounting for the takeover ------------------------------------------------ */

/* The only way OpenSSL 3.0 hands out TLS 1.3 traffic secrets: its NSS key log line,
 * "CLIENT_TRAFFIC_SECRET_0 <client random> <secret>". Nothing is written anywhere; the secrets
 * stay in the connection (wiped on free) in case it goes idle. */
static void
keylog_cb(const SSL *ssl, const char *line)
{
    mp_tls_conn *c = SSL_get_app_data(ssl);
    static const char cli[] = "CLIENT_TRAFFIC_SECRET_0 ", srv[] = "SERVER_TRAFFIC_SECRET_0 ";
    int is_client = strncmp(line, cli, sizeof cli - 1) == 0;
    if (!c || (!is_client && strncmp(line, srv, sizeof srv - 1) != 0))
        return;
    const char *hex = strrchr(line, ' ');
    size_t n = hex ? strlen(++hex) : 0;
    if (n != 64 && n != 96) {
        c->flags |= CONN_NO_TAKEOVER;
        return;
    }
    if (!c->own && !(c->own = calloc(1, sizeof *c->own))) {
        c->flags |= CONN_NO_TAKEOVER; /* out of memory only costs the takeover */
        return;
    }
    /* Until the takeover, rd.secret holds the client's secret and wr.secret ours. */
    unsigned char *dst = is_client ? c->own->rec.rd.secret : c->own->rec.wr.secret;
    for (size_t i = 0; i < n / 2; i++) {
        int hi = mp_hex_digit(hex[2 * i]), lo = mp_hex_digit(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            c->flags |= CONN_NO_TAKEOVER;
            return;
        }
        dst[i] = (unsigned char)(hi << 4 | lo);
    }
    c->own->rec.secret_len = (uint8_t)(n / 2);
    c->flags |= is_client ? CONN_HAVE_CLIENT : CONN_HAVE_SERVER;
}

/* Counts the records protected with the application traffic keys, the sequence numbers
 * OpenSSL 3.0 has no getter for. OpenSSL reports each record header as it reads or writes it,
 * and each handshake message after it was read or written: the Finished messages mark where
 * the keys changed. Only records that claim to be application data carry a sequence number
 * (a TLS 1.3 change_cipher_spec is unprotected). Any handshake message after that other than
 * the NewSessionTickets we send (a KeyUpdate, say) moves keys we cannot follow: no takeover. */
static void
msg_cb(int write_p, int version, int content_type, const void *buf, size_t len, SSL *ssl, void *arg)
{
    mp_tls_conn *c = SSL_get_app_data(ssl);
    const unsigned char *p = buf;
    if (!c || len == 0)
        return;
    if (content_type == SSL3_RT_HEADER) {
        if (p[0] != SSL3_RT_APPLICATION_DATA)
            return;
        if (write_p && (c->flags & CONN_APP_WR))
            c->wr_seq++;
        else if (!write_p && (c->flags & CONN_APP_RD))
            c->rd_seq++;
        return;
    }
    if (content_type != SSL3_RT_HANDSHAKE)
        return;
    unsigned bit = write_p ? CONN_APP_WR : CONN_APP_RD;
    if (c->flags & bit) {
        if (!write_p || p[0] != SSL3_MT_NEWSESSION_TICKET)
            c->flags |= CONN_NO_TAKEOVER;
    } else if (p[0] == SSL3_MT_FINISHED) {
        c->flags |= bit;
    }
}

int
mp_tls_ctx_new(const char *cert_path, const char *key_path, mp_tls_ctx **out)
{
    *out = NULL;
    mp_tls_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx)
        return MP_ENOMEM;
    ERR_clear_error();
    const char *what = "cannot create context", *path = NULL;
    SSL_CTX *s = ctx->ssl_ctx = SSL_CTX_new(TLS_server_method());
    if (!s)
        goto fail;
    if (!SSL_CTX_set_min_proto_version(s, TLS1_2_VERSION))
        goto fail;
    SSL_CTX_set_options(s, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                               SSL_OP_CIPHER_SERVER_PREFERENCE);
    /* Idle connections dominate: read and write buffers (~34 KiB) go back to the heap whenever
     * they are empty. */
    SSL_CTX_set_mode(s, SSL_MODE_RELEASE_BUFFERS);
    /* Resumption still works through stateless tickets; a server-side cache would hold up to
     * 20480 sessions per context for nothing. */
    SSL_CTX_set_session_cache_mode(s, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(s, 1);
    what = "cannot set cipher list";
    if (!SSL_CTX_set_cipher_list(s, TLS12_CIPHERS) || !SSL_CTX_set_dh_auto(s, 1))
        goto fail;
    SSL_CTX_set_alpn_select_cb(s, alpn_select, NULL);
    SSL_CTX_set_keylog_callback(s, keylog_cb);
    SSL_CTX_set_msg_callback(s, msg_cb);

    what = "cannot load certificate chain";
    path = cert_path;
    if (SSL_CTX_use_certificate_chain_file(s, cert_path) != 1)
        goto fail;
    what = "cannot load private key";
    path = key_path;
    if (SSL_CTX_use_PrivateKey_file(s, key_path, SSL_FILETYPE_PEM) != 1)
        goto fail;
    what = "private key does not match the certificate";
    if (SSL_CTX_check_private_key(s) != 1)
        goto fail;
    *out = ctx;
    return 0;
fail:
    log_ssl_error(MP_LOG_ERROR, what, path);
    mp_tls_ctx_free(ctx);
    return MP_EIO;
}

void
mp_tls_ctx_free(mp_tls_ctx *ctx)
{
    if (!ctx)
        return;
    SSL_CTX_free(ctx->ssl_ctx);
    free(ctx);
}

/* ---- connections ------------------------------------------------------------------------ */

static BIO *
new_mem_bio(void)
{
    BIO *b = BIO_new(BIO_s_mem());
    if (b)
        BIO_set_mem_eof_return(b, -1); /* empty means "wait", never EOF */
    return b;
}

mp_tls_conn *
mp_tls_conn_new(mp_tls_ctx *ctx)
{
    mp_tls_conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    BIO *rbio = new_mem_bio(), *wbio = new_mem_bio();
    c->ssl = SSL_new(ctx->ssl_ctx);
    if (!c->ssl || !rbio || !wbio) {
        BIO_free(rbio);
        BIO_free(wbio);
        SSL_free(c->ssl);
        free(c);
        ERR_clear_error();
        return NULL;
    }
    SSL_set_bio(c->ssl, rbio, wbio);
    SSL_set_accept_state(c->ssl);
    SSL_set_app_data(c->ssl, c);
    return c;
}

static void
own_free(struct own *o)
{
    if (!o)
        return;
    mp_tls13_clear(&o->rec);
    SSL_CTX_free(o->ssl_ctx);
    OPENSSL_clear_free(o, sizeof *o);
}

void
mp_tls_conn_free(mp_tls_conn *c)
{
    if (!c)
        return;
    SSL_free(c->ssl);
    own_free(c->own);
    free(c);
}

/* After the takeover: the record layer's verdicts become the connection's. */
static int
own_result(mp_tls_conn *c, int rc)
{
    if (rc == MP_ECLOSED)
        c->flags |= CONN_CLOSED;
    else if (rc < 0)
        c->flags |= CONN_FAILED;
    return rc;
}

/* Maps the result of an SSL call: 0 to wait for more input, MP_ECLOSED, or MP_EIO. */
static int
ssl_result(mp_tls_conn *c, int ret, const char *what)
{
    switch (SSL_get_error(c->ssl, ret)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE: /* memory BIOs never refuse a write; be safe anyway */
        return 0;
    case SSL_ERROR_ZERO_RETURN:
        c->flags |= CONN_CLOSED;
        ERR_clear_error();
        return MP_ECLOSED;
    default:
        c->flags |= CONN_FAILED;
        log_ssl_error(MP_LOG_DEBUG, what, NULL);
        return MP_EIO;
    }
}

static int
drive_handshake(mp_tls_conn *c)
{
    ERR_clear_error();
    int ret = SSL_do_handshake(c->ssl);
    if (ret == 1) {
        c->flags |= CONN_DONE;
        return 0;
    }
    int rc = ssl_result(c, ret, "handshake failed");
    if (rc == MP_ECLOSED) {
        /* close_notify before the handshake finished is a failure, not an orderly close. */
        c->flags |= CONN_FAILED;
        rc = MP_EIO;
    }
    return rc;
}

int
mp_tls_feed(mp_tls_conn *c, const void *data, size_t len)
{
    if (c->flags & CONN_FAILED)
        return MP_EIO;
    if (c->flags & CONN_OWN)
        return own_result(c, mp_tls13_feed(&c->own->rec, data, len));
    BIO *rbio = SSL_get_rbio(c->ssl);
    const char *p = data;
    while (len > 0) {
        int chunk = len > INT_MAX ? INT_MAX : (int)len;
        int w = BIO_write(rbio, p, chunk);
        if (w <= 0) {
            c->flags |= CONN_FAILED;
            ERR_clear_error();
            return MP_EIO;
        }
        p += w;
        len -= (size_t)w;
    }
    if (!(c->flags & CONN_DONE))
        return drive_handshake(c);
    return 0;
}

int
mp_tls_read(mp_tls_conn *c, void *buf, size_t cap)
{
    if (c->flags & CONN_FAILED)
        return MP_EIO;
    if (c->flags & CONN_OWN)
        return own_result(c, mp_tls13_read(&c->own->rec, buf, cap));
    if (c->flags & CONN_CLOSED)
        return MP_ECLOSED;
    if (!(c->flags & CONN_DONE)) {
        int rc = drive_handshake(c);
        if (rc != 0 || !(c->flags & CONN_DONE))
            return rc;
    }
    if (cap == 0)
        return 0;
    if (cap > INT_MAX)
        cap = INT_MAX;
    size_t n = 0;
    ERR_clear_error();
    int ret = SSL_read_ex(c->ssl, buf, cap, &n);
    if (ret == 1)
        return (int)n;
    return ssl_result(c, ret, "read failed");
}

int
mp_tls_write(mp_tls_conn *c, const void *data, size_t len)
{
    if (c->flags & CONN_FAILED)
        return MP_EIO;
    if (!(c->flags & CONN_DONE))
        return MP_AGAIN;
    if (c->flags & CONN_OWN)
        return own_result(c, mp_tls13_write(&c->own->rec, data, len));
    const char *p = data;
    while (len > 0) {
        size_t n = 0;
        ERR_clear_error();
        int ret = SSL_write_ex(c->ssl, p, len, &n);
        if (ret != 1) {
            /* The memory BIO grows as needed, so any refusal here is an error. */
            c->flags |= CONN_FAILED;
            log_ssl_error(MP_LOG_DEBUG, "write failed", NULL);
            return MP_EIO;
        }
        p += n;
        len -= n;
    }
    return 0;
}

size_t
mp_tls_take_output(mp_tls_conn *c, void *buf, size_t cap)
{
    if (c->flags & CONN_OWN)
        return mp_tls13_take_output(&c->own->rec, buf, cap);
    BIO *wbio = SSL_get_wbio(c->ssl);
    size_t total = 0;
    char *p = buf;
    while (total < cap) {
        size_t want = cap - total;
        int chunk = want > INT_MAX ? INT_MAX : (int)want;
        int r = BIO_read(wbio, p + total, chunk);
        if (r <= 0)
            break;
        total += (size_t)r;
    }
    return total;
}

size_t
mp_tls_output_pending(mp_tls_conn *c)
{
    if (c->flags & CONN_OWN)
        return mp_tls13_output_pending(&c->own->rec);
    return BIO_ctrl_pending(SSL_get_wbio(c->ssl));
}

int
mp_tls_handshake_done(const mp_tls_conn *c)
{
    return (c->flags & CONN_DONE) != 0;
}

const char *
mp_tls_version(const mp_tls_conn *c)
{
    if (c->flags & CONN_OWN)
        return "TLSv1.3"; /* only TLS 1.3 is ever taken over */
    return SSL_get_version(c->ssl);
}

const char *
mp_tls_alpn(const mp_tls_conn *c)
{
    if (c->flags & CONN_OWN)
        return (c->flags & CONN_ALPN) ? alpn_xmpp : NULL;
    const unsigned char *p = NULL;
    unsigned int n = 0;
    SSL_get0_alpn_selected(c->ssl, &p, &n);
    /* The callback only ever selects one protocol: return our own NUL-terminated copy. */
    if (p && n == sizeof alpn_xmpp - 1 && memcmp(p, alpn_xmpp, n) == 0)
        return alpn_xmpp;
    return NULL;
}

int
mp_tls_shutdown(mp_tls_conn *c)
{
    if (c->flags & CONN_FAILED)
        return MP_EIO;
    if (!(c->flags & CONN_DONE))
        return MP_AGAIN;
    if (c->flags & CONN_OWN)
        return own_result(c, mp_tls13_close_notify(&c->own->rec));
    ERR_clear_error();
    int ret = SSL_shutdown(c->ssl);
    if (ret >= 0)
        return 0; /* 0: ours is queued, the peer's not seen yet; fine either way */
    c->flags |= CONN_FAILED;
    log_ssl_error(MP_LOG_DEBUG, "shutdown failed", NULL);
    return MP_EIO;
}

static int
server_end_point(X509 *x, unsigned char *out, size_t cap)
{
    if (!x)
        return MP_ENOTFOUND;
    /* X509_digest_sig applies RFC 5929 §4.1: the signature's hash, SHA-256 instead of MD5 or
     * SHA-1. */
    ASN1_OCTET_STRING *d = X509_digest_sig(x, NULL, NULL);
    if (!d) {
        ERR_clear_error();
        return MP_ENOTFOUND;
    }
    int n = ASN1_STRING_length(d);
    int rc = MP_ENOTFOUND;
    if (n > 0 && (size_t)n <= cap) {
        memcpy(out, ASN1_STRING_get0_data(d), (size_t)n);
        rc = n;
    }
    ASN1_OCTET_STRING_free(d);
    return rc;
}

int
mp_tls_channel_binding(mp_tls_conn *c, const char *type, unsigned char *out, size_t cap)
{
    if (!(c->flags & CONN_DONE) || (c->flags & CONN_FAILED))
        return MP_ENOTFOUND;
    if (strcmp(type, "tls-exporter") == 0) {
        /* RFC 9266 needs TLS 1.3 (or 1.2 with extended master secret; we do not offer it). */
        if (cap < EXPORTER_LEN)
            return MP_ENOTFOUND;
        if (c->flags & CONN_OWN) {
            memcpy(out, c->own->exporter, EXPORTER_LEN);
            return EXPORTER_LEN;
        }
        if (SSL_version(c->ssl) != TLS1_3_VERSION)
            return MP_ENOTFOUND;
        ERR_clear_error();
        if (SSL_export_keying_material(c->ssl, out, EXPORTER_LEN, EXPORTER_LABEL,
                                       sizeof EXPORTER_LABEL - 1, NULL, 0, 0) != 1) {
            ERR_clear_error();
            return MP_ENOTFOUND;
        }
        return EXPORTER_LEN;
    }
    if (strcmp(type, "tls-server-end-point") == 0)
        return server_end_point((c->flags & CONN_OWN) ? SSL_CTX_get0_certificate(c->own->ssl_ctx)
                                                      : SSL_get_certificate(c->ssl),
                                out, cap);
    return MP_ENOTFOUND;
}

/* Swaps a drained memory BIO for a fresh one: the old one keeps its largest-ever buffer. */
static void
renew_bio(mp_tls_conn *c, int read_side)
{
    BIO *old = read_side ? SSL_get_rbio(c->ssl) : SSL_get_wbio(c->ssl);
    BUF_MEM *bm = NULL;
    if (BIO_ctrl_pending(old) != 0 || BIO_get_mem_ptr(old, &bm) <= 0 || !bm || bm->max == 0)
        return;
    BIO *fresh = new_mem_bio();
    if (!fresh)
        return; /* keeping the old one is harmless */
    if (read_side)
        SSL_set0_rbio(c->ssl, fresh);
    else
        SSL_set0_wbio(c->ssl, fresh);
}

/* The takeover: an idle TLS 1.3 connection trades OpenSSL's SSL object, session and BIOs
 * (~14 KiB) for our own record layer (a few hundred bytes while idle). Only when every record
 * so far is accounted for: OpenSSL holds no input, plaintext or output, the handshake and its
 * tickets are behind us, and nothing changed the keys since. Returns 1 when taken over. */
static int
take_over(mp_tls_conn *c)
{
    const unsigned need =
        CONN_DONE | CONN_APP_RD | CONN_APP_WR | CONN_HAVE_CLIENT | CONN_HAVE_SERVER;
    if ((c->flags & need) != need || (c->flags & (CONN_FAILED | CONN_CLOSED | CONN_NO_TAKEOVER)) ||
        !c->own)
        return 0;
    SSL *ssl = c->ssl;
    const SSL_CIPHER *cipher = SSL_get_current_cipher(ssl);
    uint16_t suite = cipher ? SSL_CIPHER_get_protocol_id(cipher) : 0;
    if (SSL_version(ssl) != TLS1_3_VERSION ||
        mp_tls13_secret_len(suite) != c->own->rec.secret_len || SSL_get_shutdown(ssl) != 0 ||
        SSL_has_pending(ssl) || SSL_pending(ssl) != 0 || BIO_ctrl_pending(SSL_get_rbio(ssl)) != 0 ||
        BIO_ctrl_pending(SSL_get_wbio(ssl)) != 0 ||
        SSL_get_key_update_type(ssl) != SSL_KEY_UPDATE_NONE || !SSL_is_init_finished(ssl))
        return 0;
    struct own *o = c->own;
    ERR_clear_error();
    if (SSL_export_keying_material(ssl, o->exporter, EXPORTER_LEN, EXPORTER_LABEL,
                                   sizeof EXPORTER_LABEL - 1, NULL, 0, 0) != 1 ||
        SSL_free_buffers(ssl) != 1) {
        ERR_clear_error();
        return 0;
    }
    unsigned char rd[MP_TLS13_MAX_SECRET], wr[MP_TLS13_MAX_SECRET];
    memcpy(rd, o->rec.rd.secret, sizeof rd);
    memcpy(wr, o->rec.wr.secret, sizeof wr);
    int rc = mp_tls13_init(&o->rec, suite, rd, wr, c->rd_seq, c->wr_seq);
    OPENSSL_cleanse(rd, sizeof rd);
    OPENSSL_cleanse(wr, sizeof wr);
    if (rc != 0)
        return 0;
    if (mp_tls_alpn(c))
        c->flags |= CONN_ALPN;
    o->ssl_ctx = SSL_get_SSL_CTX(ssl);
    SSL_CTX_up_ref(o->ssl_ctx);
    SSL_free(ssl); /* no alert: the peer never notices */
    c->ssl = NULL;
    c->flags |= CONN_OWN;
    return 1;
}

void
mp_tls_conn_shrink(mp_tls_conn *c)
{
    if (c->flags & CONN_FAILED)
        return;
    if (c->flags & CONN_OWN) {
        mp_tls13_shrink(&c->own->rec);
        return;
    }
    if (take_over(c))
        return;
    if ((c->flags & CONN_NO_TAKEOVER) || (c->own && SSL_version(c->ssl) != TLS1_3_VERSION)) {
        own_free(c->own); /* stays with OpenSSL for good: the secrets are of no use */
        c->own = NULL;
    }
    /* Frees the record buffers if they are empty; RELEASE_BUFFERS normally did already. */
    SSL_free_buffers(c->ssl);
    renew_bio(c, 1);
    renew_bio(c, 0);
    ERR_clear_error();
}

int
mp_tls_taken_over(const mp_tls_conn *c)
{
    return (c->flags & CONN_OWN) != 0;
}
