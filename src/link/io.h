/* One end of a link over TCP: the socket, optional TLS through memory BIOs, the bytes read
 * (plaintext, 8-aligned from offset 0, so frames can be handled in place) and batched writes
 * with a byte cap. Used by the server's listener (server.c) and the mux's uplink (uplink.c). */
#ifndef MP_LINK_IO_H
#define MP_LINK_IO_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "base/buf.h"

typedef struct ssl_st SSL;
typedef struct ssl_ctx_st SSL_CTX;

typedef struct mp_lio mp_lio;

struct mp_lio {
    uv_tcp_t tcp;
    uv_write_t wreq;
    SSL *ssl;
    mp_buf in;   /* plaintext received and not consumed yet */
    mp_buf out;  /* plaintext queued for the next write */
    mp_buf wbuf; /* bytes of the write in flight */
    char *rtmp;  /* ciphertext read buffer (TLS only) */
    size_t max_out;
    uint8_t writing, closing, failed, ready, started;
    void (*on_ready)(mp_lio *io);                  /* TLS is up (at once without TLS) */
    void (*on_read)(mp_lio *io);                   /* io->in grew */
    void (*on_error)(mp_lio *io, const char *why); /* once; the owner closes */
    void (*on_closed)(mp_lio *io);                 /* handle closed: free the owner now */
    void *data;
};

/* Prepare io (its uv_tcp_t initialised on loop). Returns 0 or MP_ENOMEM. */
int mp_lio_init(uv_loop_t *loop, mp_lio *io, size_t max_out);
/* The socket is connected (or accepted): start TLS when ctx is set (as server or client),
 * then reading. on_ready comes when application bytes may flow. */
int mp_lio_start(mp_lio *io, SSL_CTX *ctx, int server);
/* Room for n more bytes at io->out.data + io->out.len (the caller adds n to out.len), or
 * NULL: out of memory or over max_out (*limit set). */
char *mp_lio_reserve(mp_lio *io, size_t n, int *limit);
int mp_lio_queue(mp_lio *io, const void *p, size_t n); /* 0, MP_ENOMEM or MP_ELIMIT */
/* Write what is queued unless a write is in flight (then it follows that one). */
void mp_lio_flush(mp_lio *io);
/* Drop n bytes of io->in from the front. */
void mp_lio_consume(mp_lio *io, size_t n);
void mp_lio_close(mp_lio *io);
/* Bytes queued and in flight. */
size_t mp_lio_pending(const mp_lio *io);

/* TLS contexts for the link: the server's from its certificate and key; the mux's trusts
 * only ca_file (the server's certificate or a CA it chains to). NULL on failure (logged). */
SSL_CTX *mp_lio_server_ctx(const char *cert, const char *key);
SSL_CTX *mp_lio_client_ctx(const char *ca_file);
void mp_lio_ctx_free(SSL_CTX *ctx);

#endif
