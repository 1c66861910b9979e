/* SCRAM key derivation (RFC 5802, RFC 7677) and password checks against stored keys. */
#ifndef MP_AUTH_SCRAM_H
#define MP_AUTH_SCRAM_H

#include <stddef.h>
#include "storage/store.h"

/* Derive a fresh credential from a password: random salt (16 bytes), given iterations,
 * SHA-1 and SHA-256 stored/server keys. The password should already be SASLprep'd
 * (mp_scram_saslprep). Returns 0 or MP_E*. */
int mp_scram_make_cred(const char *password, unsigned iterations, mp_user_cred *out);

/* Same with a caller-given salt (tests use RFC vectors). */
int mp_scram_derive(const char *password, const unsigned char *salt, size_t salt_len,
                    unsigned iterations, mp_user_cred *out);

/* 1 if password matches cred (constant-time compare of the SHA-256 stored key), else 0. */
int mp_scram_check_password(const char *password, const mp_user_cred *cred);

/* SASLprep (RFC 4013) into out; returns length or MP_EINVAL. */
int mp_scram_saslprep(const char *in, char *out, size_t cap);

/* Constant-time memory compare: 0 when equal. */
int mp_ct_memcmp(const void *a, const void *b, size_t n);

/* Server side of a SCRAM proof (RFC 5802 §3) for SHA-1 (sha256 = 0, 20-byte keys) or SHA-256
 * (32-byte keys): ClientKey = proof XOR HMAC(StoredKey, AuthMessage), then H(ClientKey) must
 * equal StoredKey (constant-time). server_sig (hash length) receives HMAC(ServerKey,
 * AuthMessage), the v= the client checks. Returns 1 when the proof is right, 0 when not,
 * MP_EINVAL when proof_len is not the hash length, MP_EIO on a crypto error. */
int mp_scram_verify_proof(int sha256, const unsigned char *stored_key,
                          const unsigned char *server_key, const void *authmsg, size_t authmsg_len,
                          const unsigned char *proof, size_t proof_len, unsigned char *server_sig);

/* Decode a SCRAM saslname (RFC 5802 §5.1: "=2C" is ',', "=3D" is '='; any other '=', a bare
 * ',', a NUL or an empty name is an error) into out, NUL-terminated. Returns the length or
 * MP_EINVAL (also when it does not fit in cap). */
int mp_scram_saslname_decode(const char *in, size_t len, char *out, size_t cap);

#endif
