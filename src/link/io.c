#include "link/io.h"
#include "base/err.h"
#include "base/log.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <stdlib.h>

#define READ_CHUNK 65536
#define KEEP_CAP (1u << 20) /* buffers above this are freed once empty */

int
mp_lio_init(uv_loop_t *loop, mp_lio *io, size_t max_out)
{
    memset(io, 0, sizeof *io);
    io->max_out = max_out;
    if (uv_tcp_init(loop, &io->tcp) < 0)
        return MP_ENOMEM;
    io->tcp.data = io;
    return 0;
}

size_t
mp_lio_pending(const mp_lio *io)
{
    return io->out.len + io->wbuf.len;
}

static void
fail(mp_lio *io, const char *why)
{
    if (io->failed || io->closing)
        return;
    io->failed = 1;
    uv_read_stop((uv_stream_t *)&io->tcp);
    io->on_error(io, why);
}

static void
write_cb(uv_write_t *req, int status)
{
    mp_lio *io = req->data;
    io->writing = 0;
    io->wbuf.len = 0;
    if (io->wbuf.cap > KEEP_CAP)
        mp_buf_free(&io->wbuf);
    if (status < 0) {
        fail(io, uv_strerror(status));
        return;
    }
    mp_lio_flush(io);
}

void
mp_lio_flush(mp_lio *io)
{
    if (io->writing || io->closing || io->failed)
        return;
    if (io->ssl) {
        if (io->ready && io->out.len) {
            /* A memory BIO never refuses bytes: SSL_write takes all of it. */
            if (SSL_write(io->ssl, io->out.data, (int)io->out.len) <= 0) {
                fail(io, "TLS write failed");
                return;
            }
            io->out.len = 0;
        }
        BIO *w = SSL_get_wbio(io->ssl);
        size_t n = (size_t)BIO_ctrl_pending(w);
        if (n) {
            if (mp_buf_reserve(&io->wbuf, n) < 0) {
                fail(io, "out of memory");
                return;
            }
            int got = BIO_read(w, io->wbuf.data, (int)n);
            io->wbuf.len = got > 0 ? (size_t)got : 0;
        }
    } else if (io->out.len) {
        mp_buf t = io->wbuf;
        io->wbuf = io->out;
        io->out = t;
        io->out.len = 0;
    }
    if (io->out.cap > KEEP_CAP && io->out.len == 0)
        mp_buf_free(&io->out);
    if (!io->wbuf.len)
        return;
    uv_buf_t b = uv_buf_init(io->wbuf.data, (unsigned)io->wbuf.len);
    io->wreq.data = io;
    int rc = uv_write(&io->wreq, (uv_stream_t *)&io->tcp, &b, 1, write_cb);
    if (rc < 0) {
        fail(io, uv_strerror(rc));
        return;
    }
    io->writing = 1;
}

char *
mp_lio_reserve(mp_lio *io, size_t n, int *limit)
{
    *limit = 0;
    if (mp_lio_pending(io) + n > io->max_out) {
        *limit = 1;
        return NULL;
    }
    if (mp_buf_reserve(&io->out, n) < 0)
        return NULL;
    return io->out.data + io->out.len;
}

int
mp_lio_queue(mp_lio *io, const void *p, size_t n)
{
    int limit;
    char *dst = mp_lio_reserve(io, n, &limit);
    if (!dst)
        return limit ? MP_ELIMIT : MP_ENOMEM;
    memcpy(dst, p, n);
    io->out.len += n;
    return 0;
}

void
mp_lio_consume(mp_lio *io, size_t n)
{
    mp_buf_consume(&io->in, n);
    if (io->in.len == 0 && io->in.cap > KEEP_CAP)
        mp_buf_free(&io->in);
}

static void
alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    mp_lio *io = h->data;
    if (io->ssl) {
        *buf = uv_buf_init(io->rtmp, READ_CHUNK);
        return;
    }
    if (mp_buf_reserve(&io->in, READ_CHUNK) < 0) {
        *buf = uv_buf_init(NULL, 0); /* libuv reports UV_ENOBUFS */
        return;
    }
    *buf = uv_buf_init(io->in.data + io->in.len, (unsigned)(io->in.cap - io->in.len));
}

/* Decrypted bytes into io->in; 0, or MP_ECLOSED / MP_EIO. */
static int
tls_pump(mp_lio *io)
{
    if (!io->ready) {
        int r = SSL_do_handshake(io->ssl);
        if (r <= 0) {
            int e = SSL_get_error(io->ssl, r);
            if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
                unsigned long oe = ERR_peek_last_error();
                char msg[256];
                ERR_error_string_n(oe, msg, sizeof msg);
                mp_warn("link: TLS handshake failed: %s", oe ? msg : "protocol error");
                ERR_clear_error();
                return MP_EIO;
            }
            return 0;
        }
        io->ready = 1;
        mp_lio_flush(io);
        io->on_ready(io);
        if (io->failed || io->closing)
            return 0;
    }
    for (;;) {
        if (mp_buf_reserve(&io->in, 16384) < 0)
            return MP_EIO;
        int r = SSL_read(io->ssl, io->in.data + io->in.len, (int)(io->in.cap - io->in.len));
        if (r > 0) {
            io->in.len += (size_t)r;
            continue;
        }
        int e = SSL_get_error(io->ssl, r);
        ERR_clear_error();
        if (e == SSL_ERROR_WANT_READ)
            return 0;
        return e == SSL_ERROR_ZERO_RETURN ? MP_ECLOSED : MP_EIO;
    }
}

static void
read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    mp_lio *io = s->data;
    if (nread == 0 || io->failed || io->closing)
        return;
    if (nread < 0) {
        fail(io, nread == UV_EOF ? "connection closed by peer" : uv_strerror((int)nread));
        return;
    }
    if (!io->ssl) {
        io->in.len += (size_t)nread;
        io->on_read(io);
        return;
    }
    size_t before = io->in.len;
    if (BIO_write(SSL_get_rbio(io->ssl), buf->base, (int)nread) != (int)nread) {
        fail(io, "out of memory");
        return;
    }
    int rc = tls_pump(io);
    mp_lio_flush(io); /* handshake records, alerts, key updates */
    if (io->in.len > before && !io->failed && !io->closing)
        io->on_read(io);
    if (rc < 0)
        fail(io, rc == MP_ECLOSED ? "TLS closed by peer" : "TLS error");
}

int
mp_lio_start(mp_lio *io, SSL_CTX *ctx, int server)
{
    uv_tcp_nodelay(&io->tcp, 1);
    io->started = 1;
    if (ctx) {
        io->rtmp = malloc(READ_CHUNK);
        io->ssl = SSL_new(ctx);
        BIO *r = BIO_new(BIO_s_mem()), *w = BIO_new(BIO_s_mem());
        if (!io->rtmp || !io->ssl || !r || !w) {
            BIO_free(r);
            BIO_free(w);
            return MP_ENOMEM;
        }
        SSL_set_bio(io->ssl, r, w);
        if (server) {
            SSL_set_accept_state(io->ssl);
        } else {
            SSL_set_connect_state(io->ssl);
            SSL_do_handshake(io->ssl); /* the ClientHello */
            ERR_clear_error();
        }
    }
    int rc = uv_read_start((uv_stream_t *)&io->tcp, alloc_cb, read_cb);
    if (rc < 0)
        return MP_EIO;
    if (!ctx) {
        io->ready = 1;
        io->on_ready(io);
    } else {
        mp_lio_flush(io);
    }
    return 0;
}

static void
closed_cb(uv_handle_t *h)
{
    mp_lio *io = h->data;
    if (io->ssl)
        SSL_free(io->ssl);
    io->ssl = NULL;
    free(io->rtmp);
    mp_buf_free(&io->in);
    mp_buf_free(&io->out);
    mp_buf_free(&io->wbuf);
    if (io->on_closed)
        io->on_closed(io);
}

void
mp_lio_close(mp_lio *io)
{
    if (io->closing)
        return;
    io->closing = 1;
    uv_close((uv_handle_t *)&io->tcp, closed_cb);
}

SSL_CTX *
mp_lio_server_ctx(const char *cert, const char *key)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx)
        return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        mp_err("link: cannot use the TLS certificate %s and key %s", cert, key);
        ERR_clear_error();
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

SSL_CTX *
mp_lio_client_ctx(const char *ca_file)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx)
        return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    if (!ca_file || SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
        mp_err("link: cannot load mux.tls_ca %s", ca_file ? ca_file : "(not set)");
        ERR_clear_error();
        SSL_CTX_free(ctx);
        return NULL;
    }
    /* The file pins what we trust: the server's own certificate may be the anchor. Names are
     * not checked (servers are listed by address); the shared secret authenticates too. */
    X509_STORE_set_flags(SSL_CTX_get_cert_store(ctx), X509_V_FLAG_PARTIAL_CHAIN);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    return ctx;
}

void
mp_lio_ctx_free(SSL_CTX *ctx)
{
    SSL_CTX_free(ctx);
}
