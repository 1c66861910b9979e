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

#endif
