/* SASL for client streams: SCRAM-SHA-1/-256 and -PLUS (RFC 5802, RFC 7677) are our own server
 * code, with tls-exporter (RFC 9266) and tls-server-end-point (RFC 5929) channel binding; PLAIN
 * runs in GNU SASL. All are checked against stored SCRAM keys. */
#ifndef MP_AUTH_SASL_H
#define MP_AUTH_SASL_H

#include <stddef.h>

struct mp_config;
struct mp_store;

typedef struct mp_sasl mp_sasl;                 /* one per process (holds a Gsasl * for PLAIN) */
typedef struct mp_sasl_session mp_sasl_session; /* one per authentication exchange */

enum mp_sasl_result {
    MP_SASL_CONTINUE = 0,
    MP_SASL_SUCCESS = 1,
    MP_SASL_FAILURE = 2,
    MP_SASL_PENDING = 3, /* a PLAIN password check waits to be run (mp_sasl_defer_plain) */
};

/* RFC 6120 §6.5 failure conditions. */
enum mp_sasl_failure {
    MP_SASL_F_NONE = 0,
    MP_SASL_F_ABORTED,
    MP_SASL_F_ACCOUNT_DISABLED,
    MP_SASL_F_CREDENTIALS_EXPIRED,
    MP_SASL_F_ENCRYPTION_REQUIRED,
    MP_SASL_F_INCORRECT_ENCODING,
    MP_SASL_F_INVALID_AUTHZID,
    MP_SASL_F_INVALID_MECHANISM,
    MP_SASL_F_MALFORMED_REQUEST,
    MP_SASL_F_MECHANISM_TOO_WEAK,
    MP_SASL_F_NOT_AUTHORIZED,
    MP_SASL_F_TEMPORARY_AUTH_FAILURE,
};
const char *mp_sasl_failure_name(int failure); /* "not-authorized", ... */

/* What the transport knows; the buffers are copied by mp_sasl_start. */
typedef struct mp_sasl_channel {
    int tls;                       /* stream is encrypted */
    const unsigned char *exporter; /* tls-exporter (RFC 9266), NULL when unavailable */
    size_t exporter_len;
    const unsigned char *endpoint; /* tls-server-end-point (RFC 5929), NULL when unavailable */
    size_t endpoint_len;
} mp_sasl_channel;

int mp_sasl_new(struct mp_store *st, const struct mp_config *cfg, mp_sasl **out);
void mp_sasl_free(mp_sasl *s);

/* The <mechanism>NAME</mechanism> elements to offer on this channel, written into buf
 * (NUL-terminated). PLAIN only over TLS unless tls_required is off; -PLUS only with channel
 * binding data: tls-exporter (TLS 1.3) or tls-server-end-point (any TLS version), the client
 * names which in its gs2 header. Returns length or MP_ELIMIT. */
int mp_sasl_mechanisms_xml(mp_sasl *s, const mp_sasl_channel *ch, char *buf, size_t cap);

/* Start an exchange for mechanism mech on domain. Returns 0, or MP_EINVAL when the mechanism
 * is unknown or not offered on this channel (-> <invalid-mechanism/>). */
int mp_sasl_start(mp_sasl *s, const char *mech, const char *domain, const mp_sasl_channel *ch,
                  mp_sasl_session **out);

/* One step. in_b64 is the element's base64 text ("=" or "" for empty). On CONTINUE *out_b64 is
 * the challenge; on SUCCESS the additional data (SCRAM's v=ServerSignature; NULL for PLAIN);
 * both malloc'd, caller frees. On FAILURE *failure is set: incorrect-encoding for bad base64
 * around the message, malformed-request for its syntax (also a message over 4 KiB decoded),
 * not-authorized for a wrong proof, a channel binding mismatch or a gs2 'y' while -PLUS was
 * offered, invalid-authzid, temporary-auth-failure for storage errors. Unknown users fail
 * exactly like wrong passwords, at the same step. */
int mp_sasl_step(mp_sasl_session *ss, const char *in_b64, size_t in_len, char **out_b64,
                 int *failure);

/* PLAIN's password check is a PBKDF2 of the offered password (4096 iterations, about 0.5 ms):
 * too long for the core thread, which routes every stanza meanwhile. With deferral on, a PLAIN
 * step that gets as far as the password returns MP_SASL_PENDING instead; the caller takes the
 * check out of the session, runs it on any thread, and ends the step with
 * mp_sasl_check_finish on the session's thread. Off (the default) the check runs inline. */
typedef struct mp_sasl_check mp_sasl_check;
void mp_sasl_defer_plain(mp_sasl *s, int on);
/* After PENDING: the check, now the caller's (NULL when there is none). */
mp_sasl_check *mp_sasl_take_check(mp_sasl_session *ss);
/* The PBKDF2 and compare; touches nothing but c, so it may run on a worker thread. */
void mp_sasl_check_run(mp_sasl_check *c);
/* End the pending step with the check's outcome: MP_SASL_SUCCESS or MP_SASL_FAILURE (with
 * *failure set as mp_sasl_step would). Frees c. */
int mp_sasl_check_finish(mp_sasl_session *ss, mp_sasl_check *c, int *failure);
/* Take, run and finish the pending check here and now (no thread to hand it to). */
int mp_sasl_check_now(mp_sasl_session *ss, int *failure);
/* Free a check that will not be finished (its session went away). NULL is fine. */
void mp_sasl_check_free(mp_sasl_check *c);

/* After SUCCESS: the authenticated, nodeprep'd local part; NULL before. */
const char *mp_sasl_username(const mp_sasl_session *ss);
/* The nodeprep'd local part the client named (known after its first message, also when the
 * exchange failed: failed logins are throttled per account). NULL before. */
const char *mp_sasl_attempted_user(const mp_sasl_session *ss);
/* The name of the mechanism in use ("SCRAM-SHA-256-PLUS", ...). */
const char *mp_sasl_mechanism(const mp_sasl_session *ss);

void mp_sasl_session_free(mp_sasl_session *ss);

#endif
