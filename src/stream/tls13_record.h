/* Our own TLS 1.3 record layer (RFC 8446 §5, §7.3, §4.6.3), server side only, for connections
 * whose handshake OpenSSL did: once such a connection is idle, tls.c hands its traffic secrets
 * and sequence numbers over to this unit and frees the SSL object (~13 KiB). What stays per
 * connection while idle is this struct: the two secrets, the sequence numbers, no cipher
 * context and no buffers.
 *
 * Handles application data, alerts (close_notify ends the stream, every other alert is fatal)
 * and KeyUpdate both ways. Any other post-handshake message gets an unexpected_message alert. */
#ifndef MP_STREAM_TLS13_RECORD_H
#define MP_STREAM_TLS13_RECORD_H

#include <stddef.h>
#include <stdint.h>

/* IANA cipher suite values, the only three this layer knows. */
#define MP_TLS13_AES_128_GCM_SHA256 0x1301
#define MP_TLS13_AES_256_GCM_SHA384 0x1302
#define MP_TLS13_CHACHA20_POLY1305_SHA256 0x1303

#define MP_TLS13_MAX_SECRET 48 /* SHA-384 */
#define MP_TLS13_MAX_KEY 32
#define MP_TLS13_IV_LEN 12
#define MP_TLS13_MAX_PLAIN 16384 /* 2^14 */

typedef struct evp_cipher_ctx_st mp_tls13_aead; /* EVP_CIPHER_CTX, without <openssl/evp.h> */

/* One direction: traffic secret and record sequence number; the AEAD context exists only while
 * the connection is busy. */
typedef struct mp_tls13_dir {
    uint64_t seq;
    mp_tls13_aead *aead; /* NULL while idle: rebuilt from secret */
    unsigned char iv[MP_TLS13_IV_LEN];
    unsigned char secret[MP_TLS13_MAX_SECRET];
} mp_tls13_dir;

typedef struct mp_tls13 {
    mp_tls13_dir rd, wr; /* rd: the client's records, wr: ours */
    /* Input: [plain_off, plain_end) decrypted and not yet read, [plain_end, in_len) ciphertext
     * of incomplete records. NULL while idle. */
    unsigned char *in;
    size_t in_len, in_cap, plain_off, plain_end;
    /* Output ciphertext: [out_off, out_len) not yet taken. NULL while idle. */
    unsigned char *out;
    size_t out_off, out_len, out_cap;
    uint16_t suite;
    uint8_t secret_len;
    uint8_t state; /* MP_TLS13_OPEN, _CLOSED (close_notify read), _FAILED */
} mp_tls13;

enum { MP_TLS13_OPEN = 0, MP_TLS13_CLOSED = 1, MP_TLS13_FAILED = 2 };

/* Secret length of a suite (32 or 48), or 0 when the suite is not one of the three. */
size_t mp_tls13_secret_len(uint16_t suite);

/* RFC 8446 §7.3: key (16 or 32 bytes, length in *key_len) and iv for a traffic secret of the
 * suite's length. 0 or MP_EINVAL. */
int mp_tls13_derive_key_iv(uint16_t suite, const unsigned char *secret, unsigned char *key,
                           size_t *key_len, unsigned char iv[MP_TLS13_IV_LEN]);

/* RFC 8446 §7.2: application_traffic_secret_N+1, in place. 0 or MP_EINVAL. */
int mp_tls13_next_secret(uint16_t suite, unsigned char *secret);

/* Server side: rd_secret is the client's application traffic secret, wr_secret ours, each
 * mp_tls13_secret_len(suite) bytes; the sequence numbers are those of the next record each way.
 * 0 or MP_EINVAL. Allocates nothing. */
int mp_tls13_init(mp_tls13 *t, uint16_t suite, const unsigned char *rd_secret,
                  const unsigned char *wr_secret, uint64_t rd_seq, uint64_t wr_seq);

/* Everything freed and the secrets wiped. t can be initialised again. */
void mp_tls13_clear(mp_tls13 *t);

/* Back to the idle footprint: frees the AEAD contexts and the empty buffers. */
void mp_tls13_shrink(mp_tls13 *t);

/* Ciphertext from the peer: decrypts every complete record. 0, or MP_EIO after a fatal error
 * (a fatal alert to the peer is queued when it could be encrypted). Bytes after close_notify are
 * ignored. */
int mp_tls13_feed(mp_tls13 *t, const void *data, size_t len);

/* Plaintext: n > 0, 0 when none is available, MP_ECLOSED once close_notify was read and every
 * byte before it returned, MP_EIO after a fatal error. */
int mp_tls13_read(mp_tls13 *t, void *buf, size_t cap);

/* Encrypts all of data in records of at most 2^14 bytes. 0 or MP_EIO / MP_ENOMEM. */
int mp_tls13_write(mp_tls13 *t, const void *data, size_t len);

/* Queues our close_notify. 0 or an error. */
int mp_tls13_close_notify(mp_tls13 *t);

size_t mp_tls13_take_output(mp_tls13 *t, void *buf, size_t cap);
size_t mp_tls13_output_pending(const mp_tls13 *t);

/* Decrypts one whole record (header included) in place: on success *type is the inner content
 * type and the plaintext is rec[5 .. 5 + *plain_len). Advances the read sequence number. 0 or
 * a negative TLS alert description (-20 bad_record_mac, -22 record_overflow, -10
 * unexpected_message, -50 decode_error, -80 internal_error). */
int mp_tls13_open_record(mp_tls13 *t, unsigned char *rec, size_t len, uint8_t *type,
                         size_t *plain_len);

#endif
