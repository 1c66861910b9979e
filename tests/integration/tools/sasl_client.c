/* sasl_client: a minimal XMPP client for the integration tests.
 *
 * It exists because no packaged Python client speaks SCRAM-*-PLUS with the channel binding
 * types Magpie offers (tls-exporter, tls-server-end-point). SCRAM is written out here with
 * OpenSSL primitives on purpose: an implementation independent of the server's GNU SASL makes
 * the test mean something.
 *
 * usage: sasl_client [options] HOST PORT DOMAIN USER PASSWORD MECHANISM
 *   --direct-tls        TLS from the first byte (XEP-0368), ALPN xmpp-client
 *   --tls12             cap the TLS version at 1.2
 *   --cb TYPE           channel binding type for -PLUS: tls-exporter | tls-server-end-point
 *                       (default: tls-exporter on TLS 1.3, tls-server-end-point below)
 *   --gs2-y             send the gs2 flag "y" (client supports binding, thinks server does not)
 *   --bad-cb            send wrong channel binding data
 *   --resource R        ask for resource R
 *
 * stdout: "tls: VERSION", "alpn: PROTO", "mechanisms: A B C", then "bound: JID" on success.
 * exit: 0 bound, 2 SASL failure (prints "failure: CONDITION"), 3 server signature wrong,
 *       4 SASL offered again after success, 1 anything else.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/objects.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#define BUFSZ (1 << 20)

struct conn {
    int fd;
    SSL *ssl;
    char *buf;
    size_t len;
};

static void
die(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fputs("sasl_client: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    ERR_print_errors_fp(stderr);
    exit(1);
}

static void
conn_send(struct conn *c, const char *s)
{
    size_t n = strlen(s);

    fprintf(stderr, "SEND: %s\n", s);
    if (c->ssl) {
        if (SSL_write(c->ssl, s, (int)n) != (int)n)
            die("SSL_write failed");
        return;
    }
    while (n > 0) {
        ssize_t w = send(c->fd, s, n, MSG_NOSIGNAL);

        if (w <= 0)
            die("send failed");
        s += w;
        n -= (size_t)w;
    }
}

static void
conn_fill(struct conn *c)
{
    ssize_t r;

    if (c->len + 1 >= BUFSZ)
        die("input buffer full");
    if (c->ssl)
        r = SSL_read(c->ssl, c->buf + c->len, (int)(BUFSZ - 1 - c->len));
    else
        r = recv(c->fd, c->buf + c->len, BUFSZ - 1 - c->len, 0);
    if (r <= 0)
        die("connection closed or timed out; unparsed input: %.*s", (int)c->len, c->buf);
    fprintf(stderr, "RECV: %.*s\n", (int)r, c->buf + c->len);
    c->len += (size_t)r;
    c->buf[c->len] = '\0';
}

/* Find a complete element <name ...>...</name> or <name .../> in buf. On success set *start,
 * *end (one past) and *content and *clen (inner text) and return 1. */
static int
find_elem(const char *buf, const char *name, const char **start, const char **end,
          const char **content, size_t *clen)
{
    size_t nl = strlen(name);
    const char *p = buf;

    while ((p = strstr(p, "<")) != NULL) {
        if (strncmp(p + 1, name, nl) == 0 && strchr(" />\t\r\n", p[1 + nl]) != NULL) {
            const char *gt = strchr(p, '>');
            char close[128];
            const char *ce;

            if (gt == NULL)
                return 0;
            if (gt[-1] == '/') {
                *start = p;
                *end = gt + 1;
                *content = gt;
                *clen = 0;
                return 1;
            }
            snprintf(close, sizeof(close), "</%s>", name);
            ce = strstr(gt, close);
            if (ce == NULL)
                return 0;
            *start = p;
            *end = ce + strlen(close);
            *content = gt + 1;
            *clen = (size_t)(ce - (gt + 1));
            return 1;
        }
        p++;
    }
    return 0;
}

/* Wait for the first of several elements; returns its index and copies it out (malloc'd);
 * everything up to its end is consumed. */
static int
wait_elem(struct conn *c, const char *const *names, int n, char **elem, char **content)
{
    for (;;) {
        const char *best_s = NULL, *best_e = NULL, *best_c = NULL;
        size_t best_cl = 0;
        int best = -1;

        for (int i = 0; i < n; i++) {
            const char *s, *e, *ct;
            size_t cl;

            if (find_elem(c->buf, names[i], &s, &e, &ct, &cl) && (best_s == NULL || s < best_s)) {
                best = i;
                best_s = s;
                best_e = e;
                best_c = ct;
                best_cl = cl;
            }
        }
        if (best >= 0) {
            size_t used = (size_t)(best_e - c->buf);

            if (elem != NULL)
                *elem = strndup(best_s, (size_t)(best_e - best_s));
            if (content != NULL)
                *content = strndup(best_c, best_cl);
            if ((elem != NULL && *elem == NULL) || (content != NULL && *content == NULL))
                die("out of memory");
            memmove(c->buf, best_e, c->len - used + 1);
            c->len -= used;
            if (best >= 0 && strcmp(names[best], "stream:error") == 0)
                die("stream error: %s", elem != NULL ? *elem : "");
            return best;
        }
        conn_fill(c);
    }
}

static char *
b64enc(const unsigned char *in, size_t n)
{
    char *out = malloc(4 * ((n + 2) / 3) + 1);

    if (out == NULL)
        die("out of memory");
    EVP_EncodeBlock((unsigned char *)out, in, (int)n);
    return out;
}

static unsigned char *
b64dec(const char *in, size_t *outlen)
{
    size_t n = strlen(in);
    unsigned char *out = malloc(n + 1);
    int r, pad = 0;

    if (out == NULL)
        die("out of memory");
    if (n == 0) {
        *outlen = 0;
        return out;
    }
    r = EVP_DecodeBlock(out, (const unsigned char *)in, (int)n);
    if (r < 0)
        die("bad base64 from server: %s", in);
    if (n >= 1 && in[n - 1] == '=')
        pad++;
    if (n >= 2 && in[n - 2] == '=')
        pad++;
    *outlen = (size_t)r - (size_t)pad;
    out[*outlen] = '\0';
    return out;
}

static void
open_stream(struct conn *c, const char *domain, char **features)
{
    static const char *const names[] = {"stream:features", "stream:error"};
    char hdr[512];

    snprintf(hdr, sizeof(hdr),
             "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
             "xmlns:stream='http://etherx.jabber.org/streams' to='%s' version='1.0'>",
             domain);
    conn_send(c, hdr);
    wait_elem(c, names, 2, features, NULL);
}

static SSL *
tls_start(SSL_CTX *ctx, int fd, const char *domain)
{
    SSL *ssl = SSL_new(ctx);

    if (ssl == NULL)
        die("SSL_new");
    SSL_set_fd(ssl, fd);
    SSL_set_tlsext_host_name(ssl, domain);
    if (SSL_connect(ssl) != 1)
        die("TLS handshake failed");
    return ssl;
}

static size_t
cb_data(SSL *ssl, const char *type, unsigned char *out)
{
    if (strcmp(type, "tls-exporter") == 0) {
        static const char label[] = "EXPORTER-Channel-Binding";

        if (SSL_export_keying_material(ssl, out, 32, label, strlen(label), NULL, 0, 0) != 1)
            die("SSL_export_keying_material");
        return 32;
    }
    if (strcmp(type, "tls-server-end-point") == 0) {
        X509 *cert = SSL_get1_peer_certificate(ssl);
        int md_nid = NID_undef, pk_nid;
        const EVP_MD *md;
        unsigned int n = 0;

        if (cert == NULL)
            die("no server certificate");
        if (!OBJ_find_sigid_algs(X509_get_signature_nid(cert), &md_nid, &pk_nid))
            die("unknown certificate signature algorithm");
        /* RFC 5929 4.1: MD5 and SHA-1 are replaced by SHA-256. */
        if (md_nid == NID_md5 || md_nid == NID_sha1 || md_nid == NID_undef)
            md_nid = NID_sha256;
        md = EVP_get_digestbynid(md_nid);
        if (md == NULL || !X509_digest(cert, md, out, &n))
            die("X509_digest");
        X509_free(cert);
        return n;
    }
    die("unknown channel binding type %s", type);
    return 0;
}

static void
hmac(const EVP_MD *md, const unsigned char *key, size_t klen, const void *msg, size_t mlen,
     unsigned char *out)
{
    unsigned int n;

    if (HMAC(md, key, (int)klen, msg, mlen, out, &n) == NULL)
        die("HMAC");
}

static const char *
attr(const char *msg, char key, char *out, size_t outsz)
{
    const char *p = msg;

    while (p != NULL && *p != '\0') {
        if (p[0] == key && p[1] == '=') {
            const char *e = strchr(p, ',');
            size_t n = e ? (size_t)(e - p - 2) : strlen(p + 2);

            if (n >= outsz)
                die("attribute too long");
            memcpy(out, p + 2, n);
            out[n] = '\0';
            return out;
        }
        p = strchr(p, ',');
        if (p != NULL)
            p++;
    }
    return NULL;
}

static const char *
condition_of(const char *failure)
{
    static char cond[128];
    const char *p = strchr(failure, '>');

    cond[0] = '\0';
    if (p == NULL || p[-1] == '/')
        return "(none)";
    p++;
    while (*p == ' ' || *p == '\n')
        p++;
    if (*p == '<') {
        size_t n = strcspn(p + 1, " />");

        if (n >= sizeof(cond))
            n = sizeof(cond) - 1;
        memcpy(cond, p + 1, n);
        cond[n] = '\0';
    }
    return cond;
}

int
main(int argc, char **argv)
{
    static const char *const sasl_names[] = {"challenge", "success", "failure", "stream:error"};
    static const char *const iq_names[] = {"iq", "stream:error"};
    static const char *const tls_names[] = {"proceed", "failure", "stream:error"};
    int direct_tls = 0, tls12 = 0, gs2_y = 0, bad_cb = 0;
    const char *cbtype = NULL, *resource = NULL;
    const char *host, *port, *domain, *user, *pass, *mech;
    struct addrinfo hints = {0}, *ai;
    struct timeval tv = {20, 0};
    struct conn c = {0};
    SSL_CTX *ctx;
    char *features, *elem, *content, *out;
    int i, r;

    for (i = 1; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        if (strcmp(argv[i], "--direct-tls") == 0)
            direct_tls = 1;
        else if (strcmp(argv[i], "--tls12") == 0)
            tls12 = 1;
        else if (strcmp(argv[i], "--gs2-y") == 0)
            gs2_y = 1;
        else if (strcmp(argv[i], "--bad-cb") == 0)
            bad_cb = 1;
        else if (strcmp(argv[i], "--cb") == 0 && i + 1 < argc)
            cbtype = argv[++i];
        else if (strcmp(argv[i], "--resource") == 0 && i + 1 < argc)
            resource = argv[++i];
        else
            die("unknown option %s", argv[i]);
    }
    if (argc - i != 6)
        die("usage: sasl_client [options] HOST PORT DOMAIN USER PASSWORD MECHANISM");
    host = argv[i];
    port = argv[i + 1];
    domain = argv[i + 2];
    user = argv[i + 3];
    pass = argv[i + 4];
    mech = argv[i + 5];

    c.buf = malloc(BUFSZ);
    if (c.buf == NULL)
        die("out of memory");
    c.buf[0] = '\0';

    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, port, &hints, &ai) != 0)
        die("cannot resolve %s", host);
    c.fd = socket(ai->ai_family, SOCK_STREAM, 0);
    if (c.fd < 0 || connect(c.fd, ai->ai_addr, ai->ai_addrlen) != 0)
        die("cannot connect to %s:%s", host, port);
    freeaddrinfo(ai);
    setsockopt(c.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));

    ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL)
        die("SSL_CTX_new");
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (tls12)
        SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);

    if (direct_tls) {
        static const unsigned char alpn[] = "\x0bxmpp-client";

        SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn) - 1);
        c.ssl = tls_start(ctx, c.fd, domain);
        open_stream(&c, domain, &features);
    } else {
        open_stream(&c, domain, &features);
        if (strstr(features, "urn:ietf:params:xml:ns:xmpp-tls") == NULL)
            die("no STARTTLS offered: %s", features);
        free(features);
        conn_send(&c, "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
        if (wait_elem(&c, tls_names, 3, &elem, NULL) != 0)
            die("STARTTLS refused: %s", elem);
        free(elem);
        c.ssl = tls_start(ctx, c.fd, domain);
        c.len = 0;
        c.buf[0] = '\0';
        open_stream(&c, domain, &features);
    }
    printf("tls: %s\n", SSL_get_version(c.ssl));
    {
        const unsigned char *proto;
        unsigned int plen;

        SSL_get0_alpn_selected(c.ssl, &proto, &plen);
        printf("alpn: %.*s\n", (int)plen, plen ? (const char *)proto : "");
    }
    {
        const char *p = features;

        printf("mechanisms:");
        while ((p = strstr(p, "<mechanism>")) != NULL) {
            const char *e = strstr(p, "</mechanism>");

            if (e == NULL)
                break;
            printf(" %.*s", (int)(e - p - 11), p + 11);
            p = e;
        }
        printf("\n");
        fflush(stdout);
    }
    free(features);

    if (strcmp(mech, "PLAIN") == 0) {
        size_t ul = strlen(user), pl = strlen(pass);
        unsigned char *raw = malloc(ul + pl + 2);
        char *b64, *auth;

        if (raw == NULL)
            die("out of memory");
        raw[0] = '\0';
        memcpy(raw + 1, user, ul);
        raw[1 + ul] = '\0';
        memcpy(raw + 2 + ul, pass, pl);
        b64 = b64enc(raw, ul + pl + 2);
        if (asprintf(&auth,
                     "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>%s</auth>",
                     b64) < 0)
            die("out of memory");
        conn_send(&c, auth);
        free(auth);
        free(b64);
        free(raw);
        r = wait_elem(&c, sasl_names, 4, &elem, &content);
        if (r == 2) {
            printf("failure: %s\n", condition_of(elem));
            return 2;
        }
        if (r != 1)
            die("unexpected SASL answer: %s", elem);
        free(elem);
        free(content);
    } else if (strncmp(mech, "SCRAM-SHA-", 10) == 0) {
        int plus = strstr(mech, "-PLUS") != NULL;
        const EVP_MD *md = strncmp(mech, "SCRAM-SHA-256", 13) == 0 ? EVP_sha256() : EVP_sha1();
        size_t hl = (size_t)EVP_MD_get_size(md);
        unsigned char nonce_raw[18], cb[EVP_MAX_MD_SIZE], salted[EVP_MAX_MD_SIZE];
        unsigned char ckey[EVP_MAX_MD_SIZE], skey[EVP_MAX_MD_SIZE], stored[EVP_MAX_MD_SIZE];
        unsigned char csig[EVP_MAX_MD_SIZE], ssig[EVP_MAX_MD_SIZE], proof[EVP_MAX_MD_SIZE];
        char gs2[64], *cnonce, *first_bare, *first, *b64, *auth, *server_first, *cbinput_b64;
        char *final_wo_proof, *authmsg, *final, *proof_b64, *ssig_b64;
        char rbuf[512], sbuf[256], ibuf[32], vbuf[256];
        unsigned char *salt, *cbinput, *dec;
        size_t cblen = 0, saltlen, declen, gl;

        if (plus) {
            if (cbtype == NULL)
                cbtype =
                    SSL_version(c.ssl) >= TLS1_3_VERSION ? "tls-exporter" : "tls-server-end-point";
            cblen = cb_data(c.ssl, cbtype, cb);
            fprintf(stderr, "CB %s:", cbtype);
            for (size_t k = 0; k < cblen; k++)
                fprintf(stderr, "%02x", cb[k]);
            fputc('\n', stderr);
            if (bad_cb)
                cb[0] ^= 0xff;
            snprintf(gs2, sizeof(gs2), "p=%s,,", cbtype);
        } else {
            snprintf(gs2, sizeof(gs2), "%s,,", gs2_y ? "y" : "n");
        }
        if (RAND_bytes(nonce_raw, sizeof(nonce_raw)) != 1)
            die("RAND_bytes");
        cnonce = b64enc(nonce_raw, sizeof(nonce_raw));
        if (asprintf(&first_bare, "n=%s,r=%s", user, cnonce) < 0 ||
            asprintf(&first, "%s%s", gs2, first_bare) < 0)
            die("out of memory");
        b64 = b64enc((unsigned char *)first, strlen(first));
        if (asprintf(&auth,
                     "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='%s'>%s</auth>",
                     mech, b64) < 0)
            die("out of memory");
        conn_send(&c, auth);
        r = wait_elem(&c, sasl_names, 4, &elem, &content);
        if (r == 2) {
            printf("failure: %s\n", condition_of(elem));
            return 2;
        }
        if (r != 0)
            die("expected a challenge: %s", elem);
        server_first = (char *)b64dec(content, &declen);
        free(elem);
        free(content);
        if (attr(server_first, 'r', rbuf, sizeof(rbuf)) == NULL ||
            attr(server_first, 's', sbuf, sizeof(sbuf)) == NULL ||
            attr(server_first, 'i', ibuf, sizeof(ibuf)) == NULL)
            die("bad server-first-message: %s", server_first);
        if (strncmp(rbuf, cnonce, strlen(cnonce)) != 0 || strlen(rbuf) <= strlen(cnonce))
            die("server nonce does not extend ours: %s", server_first);
        salt = b64dec(sbuf, &saltlen);

        gl = strlen(gs2);
        cbinput = malloc(gl + cblen);
        if (cbinput == NULL)
            die("out of memory");
        memcpy(cbinput, gs2, gl);
        memcpy(cbinput + gl, cb, cblen);
        cbinput_b64 = b64enc(cbinput, gl + cblen);
        if (asprintf(&final_wo_proof, "c=%s,r=%s", cbinput_b64, rbuf) < 0 ||
            asprintf(&authmsg, "%s,%s,%s", first_bare, server_first, final_wo_proof) < 0)
            die("out of memory");
        if (PKCS5_PBKDF2_HMAC(pass, (int)strlen(pass), salt, (int)saltlen, atoi(ibuf), md, (int)hl,
                              salted) != 1)
            die("PBKDF2");
        hmac(md, salted, hl, "Client Key", 10, ckey);
        if (EVP_Digest(ckey, hl, stored, NULL, md, NULL) != 1)
            die("digest");
        hmac(md, stored, hl, authmsg, strlen(authmsg), csig);
        for (size_t k = 0; k < hl; k++)
            proof[k] = ckey[k] ^ csig[k];
        hmac(md, salted, hl, "Server Key", 10, skey);
        hmac(md, skey, hl, authmsg, strlen(authmsg), ssig);
        proof_b64 = b64enc(proof, hl);
        ssig_b64 = b64enc(ssig, hl);
        if (asprintf(&final, "%s,p=%s", final_wo_proof, proof_b64) < 0)
            die("out of memory");
        free(b64);
        b64 = b64enc((unsigned char *) final, strlen(final));
        free(auth);
        if (asprintf(&auth, "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>%s</response>",
                     b64) < 0)
            die("out of memory");
        conn_send(&c, auth);
        r = wait_elem(&c, sasl_names, 4, &elem, &content);
        if (r == 2) {
            printf("failure: %s\n", condition_of(elem));
            return 2;
        }
        if (r == 0) {
            /* server-final sent as a challenge (RFC 6120 allows both) */
            dec = b64dec(content, &declen);
            free(elem);
            free(content);
            conn_send(&c, "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
            r = wait_elem(&c, sasl_names, 4, &elem, &content);
            if (r != 1)
                die("expected success: %s", elem);
        } else {
            dec = b64dec(content, &declen);
        }
        if (attr((char *)dec, 'v', vbuf, sizeof(vbuf)) == NULL || strcmp(vbuf, ssig_b64) != 0) {
            printf("server signature mismatch: got '%s' want '%s'\n", (char *)dec, ssig_b64);
            return 3;
        }
        free(dec);
        free(elem);
        free(content);
        free(cnonce);
        free(first_bare);
        free(first);
        free(b64);
        free(auth);
        free(server_first);
        free(salt);
        free(cbinput);
        free(cbinput_b64);
        free(final_wo_proof);
        free(authmsg);
        free(final);
        free(proof_b64);
        free(ssig_b64);
    } else {
        die("unsupported mechanism %s", mech);
    }

    open_stream(&c, domain, &features);
    if (strstr(features, "<mechanisms") != NULL) {
        printf("SASL offered again after success: %s\n", features);
        return 4;
    }
    if (strstr(features, "urn:ietf:params:xml:ns:xmpp-bind") == NULL)
        die("no resource binding offered: %s", features);
    free(features);
    if (asprintf(&out,
                 "<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                 "%s%s%s</bind></iq>",
                 resource ? "<resource>" : "", resource ? resource : "",
                 resource ? "</resource>" : "") < 0)
        die("out of memory");
    conn_send(&c, out);
    free(out);
    wait_elem(&c, iq_names, 2, &elem, NULL);
    {
        const char *j = strstr(elem, "<jid>");
        const char *je = j ? strstr(j, "</jid>") : NULL;

        if (strstr(elem, "type='result'") == NULL && strstr(elem, "type=\"result\"") == NULL)
            die("bind failed: %s", elem);
        if (j == NULL || je == NULL)
            die("no jid in bind result: %s", elem);
        printf("bound: %.*s\n", (int)(je - j - 5), j + 5);
        fflush(stdout);
    }
    free(elem);
    conn_send(&c, "</stream:stream>");
    /* Wait for the server's closing tag (or EOF) so the server logs a clean close. */
    for (int k = 0; k < 50 && strstr(c.buf, "</stream:stream>") == NULL; k++) {
        int n;

        if (c.len + 1 >= BUFSZ)
            break;
        n = SSL_read(c.ssl, c.buf + c.len, (int)(BUFSZ - 1 - c.len));
        if (n <= 0)
            break;
        c.len += (size_t)n;
        c.buf[c.len] = '\0';
    }
    SSL_shutdown(c.ssl);
    SSL_free(c.ssl);
    SSL_CTX_free(ctx);
    close(c.fd);
    free(c.buf);
    return 0;
}
