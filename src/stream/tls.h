/* TLS for streams through memory BIOs, so the event loop owns the socket.
 * TLS 1.2 and 1.3 only, renegotiation off, no compression, ALPN "xmpp-client". */
#ifndef MP_STREAM_TLS_H
#define MP_STREAM_TLS_H

#include <stddef.h>

typedef struct mp_tls_ctx mp_tls_ctx;   /* wraps SSL_CTX, shared by all connections */
typedef struct mp_tls_conn mp_tls_conn; /* one per connection */

/* If cert_path or key_path is missing, generate a self-signed certificate for domain
 * (EC P-256, SAN DNS:domain, 10 years) and write both (key mode 0600). */
int mp_tls_ensure_cert(const char *cert_path, const char *key_path, const char *domain);

/* Server context from PEM files. Returns 0 or MP_EIO (logged). */
int mp_tls_ctx_new(const char *cert_path, const char *key_path, mp_tls_ctx **out);
void mp_tls_ctx_free(mp_tls_ctx *ctx);

mp_tls_conn *mp_tls_conn_new(mp_tls_ctx *ctx); /* NULL on ENOMEM */
void mp_tls_conn_free(mp_tls_conn *c);

/* Ciphertext received from the socket. Returns 0 or MP_EIO (fatal TLS error; logged at
 * debug with the OpenSSL reason). Drives the handshake as needed. */
int mp_tls_feed(mp_tls_conn *c, const void *data, size_t len);

/* Decrypted bytes: returns n > 0, 0 when nothing is available yet, MP_ECLOSED on close_notify,
 * MP_EIO on error. */
int mp_tls_read(mp_tls_conn *c, void *buf, size_t cap);

/* Encrypt plaintext (all of it; queued in the BIO until taken). 0 or MP_EIO. Only valid after
 * the handshake finished; before that, returns MP_AGAIN and nothing is queued. */
int mp_tls_write(mp_tls_conn *c, const void *data, size_t len);

/* Ciphertext to send to the socket: copies up to cap bytes, returns count (0 = none). */
size_t mp_tls_take_output(mp_tls_conn *c, void *buf, size_t cap);
size_t mp_tls_output_pending(mp_tls_conn *c);

int mp_tls_handshake_done(const mp_tls_conn *c);
/* Negotiated protocol version string ("TLSv1.3") and ALPN (may be NULL). */
const char *mp_tls_version(const mp_tls_conn *c);
const char *mp_tls_alpn(const mp_tls_conn *c); /* "xmpp-client" or NULL */

/* Queue our close_notify (take it with mp_tls_take_output). 0, MP_AGAIN before the handshake
 * finished, or MP_EIO. */
int mp_tls_shutdown(mp_tls_conn *c);

/* Channel binding data after the handshake. type "tls-exporter" (RFC 9266: 32 bytes, label
 * "EXPORTER-Channel-Binding", TLS 1.3 only) or "tls-server-end-point" (RFC 5929). Returns the
 * length written into out, or MP_ENOTFOUND when unavailable. */
int mp_tls_channel_binding(mp_tls_conn *c, const char *type, unsigned char *out, size_t cap);

/* Drop memory kept per idle connection; call when a connection goes idle. An idle TLS 1.3
 * connection whose records are all accounted for leaves OpenSSL altogether: its SSL object is
 * freed and our own record layer (tls13_record.h) carries on with the traffic secrets and
 * sequence numbers, transparently for every other call here. TLS 1.2 keeps OpenSSL, with its
 * buffers and BIOs shrunk. */
void mp_tls_conn_shrink(mp_tls_conn *c);

/* 1 once mp_tls_conn_shrink took the record layer over from OpenSSL (tests, diagnostics). */
int mp_tls_taken_over(const mp_tls_conn *c);

#endif
