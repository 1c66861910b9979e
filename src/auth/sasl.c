/* Server-side SASL on GNU SASL. gsasl runs the mechanisms; we feed it stored SCRAM keys
 * through its property callback and decide everything that is policy: what to offer on a
 * channel, who may authorize as whom, and which RFC 6120 condition a failure maps to.
 *
 * Channel binding: GNU SASL 2.2 knows only tls-unique and tls-exporter (RFC 9266); it has no
 * property for tls-server-end-point (RFC 5929), and a client naming that type is refused in
 * the first step. So -PLUS is offered only when the transport gives tls-exporter data; the
 * end-point data in mp_sasl_channel is accepted but not used until gsasl supports it. */
#include "auth/sasl.h"
#include "auth/scram.h"
#include "base/config.h"
#include "base/err.h"
#include "base/log.h"
#include "storage/store.h"
#include "xmpp/jid.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsasl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#define MIN_ITERATIONS 4096
#define FAKE_SALT_LEN 16
#define MECH_PLUS (MP_MECH_SCRAM_SHA_1_PLUS | MP_MECH_SCRAM_SHA_256_PLUS)
#define MECH_SHA256 (MP_MECH_SCRAM_SHA_256 | MP_MECH_SCRAM_SHA_256_PLUS)

struct mp_sasl {
    Gsasl *ctx;
    mp_store *st;
    unsigned mechs; /* configured and supported by gsasl */
    int tls_required;
    unsigned iterations; /* for the made-up credentials of unknown users */
    unsigned char secret[32];
};

struct mp_sasl_session {
    mp_sasl *s;
    Gsasl_session *gs;
    unsigned mech_bit;
    const char *mech;
    char *domain;
    int steps;
    int finished;
    int cred_set;    /* SCRAM properties handed to gsasl */
    int node_ok;     /* node holds the nodeprep'd authcid */
    int doomed;      /* unknown user or unusable credentials: fail at the end */
    int temp_fail;   /* storage error */
    int bad_authzid; /* authzid names someone else */
    int success;
    char node[MP_JID_PART_MAX + 1];
};

static const struct {
    const char *name;
    unsigned bit;
} mech_table[] = {
    /* strongest first: this is the order we offer them in */
    {"SCRAM-SHA-256-PLUS", MP_MECH_SCRAM_SHA_256_PLUS},
    {"SCRAM-SHA-1-PLUS", MP_MECH_SCRAM_SHA_1_PLUS},
    {"SCRAM-SHA-256", MP_MECH_SCRAM_SHA_256},
    {"SCRAM-SHA-1", MP_MECH_SCRAM_SHA_1},
    {"PLAIN", MP_MECH_PLAIN},
};
#define NMECH (sizeof mech_table / sizeof mech_table[0])

const char *
mp_sasl_failure_name(int failure)
{
    static const char *const names[] = {
        [MP_SASL_F_NONE] = "none",
        [MP_SASL_F_ABORTED] = "aborted",
        [MP_SASL_F_ACCOUNT_DISABLED] = "account-disabled",
        [MP_SASL_F_CREDENTIALS_EXPIRED] = "credentials-expired",
        [MP_SASL_F_ENCRYPTION_REQUIRED] = "encryption-required",
        [MP_SASL_F_INCORRECT_ENCODING] = "incorrect-encoding",
        [MP_SASL_F_INVALID_AUTHZID] = "invalid-authzid",
        [MP_SASL_F_INVALID_MECHANISM] = "invalid-mechanism",
        [MP_SASL_F_MALFORMED_REQUEST] = "malformed-request",
        [MP_SASL_F_MECHANISM_TOO_WEAK] = "mechanism-too-weak",
        [MP_SASL_F_NOT_AUTHORIZED] = "not-authorized",
        [MP_SASL_F_TEMPORARY_AUTH_FAILURE] = "temporary-auth-failure",
    };
    if (failure < 0 || (size_t)failure >= sizeof names / sizeof names[0])
        return "not-authorized";
    return names[failure];
}

/* Stable per process and per name, unpredictable from outside: an unknown user gets the same
 * salt every time, as a real one would. */
static void
fake_cred(const mp_sasl *s, const char *domain, const char *name, mp_user_cred *cred)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    size_t dl = strlen(domain), nl = strlen(name);
    size_t len = dl + 1 + nl;
    unsigned char *msg = malloc(len);

    memset(cred, 0, sizeof *cred);
    cred->iterations = s->iterations;
    cred->salt_len = FAKE_SALT_LEN;
    if (msg) {
        memcpy(msg, domain, dl);
        msg[dl] = 0;
        memcpy(msg + dl + 1, name, nl);
    }
    if (!msg || !HMAC(EVP_sha256(), s->secret, sizeof s->secret, msg, len, mac, &maclen) ||
        maclen < FAKE_SALT_LEN) {
        /* Still fails; only the salt is no longer stable. */
        RAND_bytes(cred->salt, FAKE_SALT_LEN);
    } else {
        memcpy(cred->salt, mac, FAKE_SALT_LEN);
    }
    free(msg);
    /* Keys nobody can match; they are never shown to the peer. */
    RAND_bytes(cred->sha1_stored_key, sizeof cred->sha1_stored_key);
    RAND_bytes(cred->sha1_server_key, sizeof cred->sha1_server_key);
    RAND_bytes(cred->sha256_stored_key, sizeof cred->sha256_stored_key);
    RAND_bytes(cred->sha256_server_key, sizeof cred->sha256_server_key);
}

/* Look the authcid up. Whatever goes wrong, *cred is usable and the exchange goes on to its
 * end, where a doomed session fails like a wrong password. */
static void
load_cred(mp_sasl_session *ss, const char *authid, mp_user_cred *cred)
{
    int n = mp_jid_nodeprep(authid, strlen(authid), ss->node, sizeof ss->node);
    if (n <= 0) {
        ss->node_ok = 0;
        ss->doomed = 1;
        fake_cred(ss->s, ss->domain, authid, cred);
        return;
    }
    ss->node_ok = 1;
    int rc = ss->s->st->ops->user_get(ss->s->st, ss->domain, ss->node, cred);
    if (rc == 0 && cred->iterations < MIN_ITERATIONS) {
        mp_warn("sasl: stored credentials of %s@%s use %u iterations (< %d): refusing; "
                "reset the password",
                ss->node, ss->domain, cred->iterations, MIN_ITERATIONS);
        rc = MP_ENOTFOUND;
    } else if (rc < 0 && rc != MP_ENOTFOUND) {
        mp_err("sasl: credentials lookup failed: %s", mp_strerror(rc));
        ss->temp_fail = 1;
    }
    if (rc < 0) {
        ss->doomed = 1;
        fake_cred(ss->s, ss->domain, ss->node, cred);
    }
}

static int
set_b64(Gsasl_session *gs, Gsasl_property prop, const unsigned char *data, size_t len)
{
    char *b64 = NULL;
    int rc = gsasl_base64_to((const char *)data, len, &b64, NULL);
    if (rc != GSASL_OK)
        return rc;
    rc = gsasl_property_set(gs, prop, b64);
    gsasl_free(b64);
    return rc;
}

/* gsasl 2.x reads SCRAM_STOREDKEY/SERVERKEY as base64, although gsasl.h calls them hex;
 * tests/unit/test_sasl.c pins this down with a real gsasl client. */
static int
scram_props(mp_sasl_session *ss)
{
    Gsasl_session *gs = ss->gs;
    mp_user_cred cred;
    char iter[16];
    int rc;

    if (ss->cred_set)
        return GSASL_NO_CALLBACK;
    const char *authid = gsasl_property_fast(gs, GSASL_AUTHID);
    if (!authid)
        return GSASL_NO_AUTHID;
    load_cred(ss, authid, &cred);
    int sha256 = (ss->mech_bit & MECH_SHA256) != 0;
    snprintf(iter, sizeof iter, "%u", cred.iterations);
    if ((rc = gsasl_property_set(gs, GSASL_SCRAM_ITER, iter)) != GSASL_OK ||
        (rc = set_b64(gs, GSASL_SCRAM_SALT, cred.salt, cred.salt_len)) != GSASL_OK ||
        (rc = set_b64(gs, GSASL_SCRAM_STOREDKEY,
                      sha256 ? cred.sha256_stored_key : cred.sha1_stored_key, sha256 ? 32 : 20)) !=
            GSASL_OK ||
        (rc = set_b64(gs, GSASL_SCRAM_SERVERKEY,
                      sha256 ? cred.sha256_server_key : cred.sha1_server_key, sha256 ? 32 : 20)) !=
            GSASL_OK) {
        ss->temp_fail = 1;
    } else {
        ss->cred_set = 1;
    }
    OPENSSL_cleanse(&cred, sizeof cred);
    return rc;
}

/* The authzid may only name the authenticating account itself (node@domain). */
static int
authzid_ok(const mp_sasl_session *ss, const char *authzid)
{
    mp_jid j;

    if (!ss->node_ok || mp_jid_prep(authzid, strlen(authzid), &j) < 0)
        return 0;
    return j.resource_len == 0 && strcmp(j.node, ss->node) == 0 &&
           strcmp(j.domain, ss->domain) == 0;
}

static int
validate_plain(mp_sasl_session *ss)
{
    Gsasl_session *gs = ss->gs;
    const char *authid = gsasl_property_fast(gs, GSASL_AUTHID);
    const char *authzid = gsasl_property_fast(gs, GSASL_AUTHZID);
    const char *password = gsasl_property_fast(gs, GSASL_PASSWORD);
    mp_user_cred cred;

    if (!authid || !password)
        return GSASL_AUTHENTICATION_ERROR;
    load_cred(ss, authid, &cred);
    /* gsasl fills an empty authzid with the authcid, so that one stands for "none". */
    if (authzid && *authzid && strcmp(authzid, authid) != 0 && !authzid_ok(ss, authzid)) {
        ss->bad_authzid = 1;
        OPENSSL_cleanse(&cred, sizeof cred);
        return GSASL_AUTHENTICATION_ERROR;
    }
    /* Unknown users pay the same PBKDF2 as real ones. */
    int ok = mp_scram_check_password(password, &cred);
    OPENSSL_cleanse(&cred, sizeof cred);
    return ok && !ss->doomed ? GSASL_OK : GSASL_AUTHENTICATION_ERROR;
}

static int
gs_callback(Gsasl *ctx, Gsasl_session *gs, Gsasl_property prop)
{
    mp_sasl_session *ss = gs ? gsasl_session_hook_get(gs) : NULL;

    if (!ss)
        return GSASL_NO_CALLBACK;
    switch (prop) {
    case GSASL_SCRAM_ITER:
    case GSASL_SCRAM_SALT:
    case GSASL_SCRAM_STOREDKEY:
    case GSASL_SCRAM_SERVERKEY:
        return scram_props(ss);
    case GSASL_VALIDATE_SIMPLE:
        return validate_plain(ss);
    default:
        /* Notably GSASL_PASSWORD: the server never sees one for SCRAM. */
        return GSASL_NO_CALLBACK;
    }
}

int
mp_sasl_new(mp_store *st, const mp_config *cfg, mp_sasl **out)
{
    mp_sasl *s;
    int rc;

    *out = NULL;
    s = calloc(1, sizeof *s);
    if (!s)
        return MP_ENOMEM;
    if ((rc = gsasl_init(&s->ctx)) != GSASL_OK) {
        mp_err("sasl: gsasl_init: %s", gsasl_strerror(rc));
        free(s);
        return rc == GSASL_MALLOC_ERROR ? MP_ENOMEM : MP_EIO;
    }
    if (RAND_bytes(s->secret, sizeof s->secret) != 1) {
        mp_sasl_free(s);
        return MP_EIO;
    }
    gsasl_callback_set(s->ctx, gs_callback);
    gsasl_callback_hook_set(s->ctx, s);
    s->st = st;
    s->tls_required = cfg->tls_required;
    s->iterations = cfg->scram_iterations < MIN_ITERATIONS ? MIN_ITERATIONS : cfg->scram_iterations;
    for (size_t i = 0; i < NMECH; i++) {
        if (!(cfg->sasl_mechanisms & mech_table[i].bit))
            continue;
        if (gsasl_server_support_p(s->ctx, mech_table[i].name))
            s->mechs |= mech_table[i].bit;
        else
            mp_warn("sasl: %s is configured but not supported by GNU SASL", mech_table[i].name);
    }
    *out = s;
    return 0;
}

void
mp_sasl_free(mp_sasl *s)
{
    if (!s)
        return;
    gsasl_done(s->ctx);
    OPENSSL_cleanse(s->secret, sizeof s->secret);
    free(s);
}

static unsigned
offered(const mp_sasl *s, const mp_sasl_channel *ch)
{
    unsigned m = s->mechs;

    if (!ch->tls && s->tls_required)
        m &= ~(unsigned)MP_MECH_PLAIN;
    if (!ch->exporter || ch->exporter_len == 0)
        m &= ~(unsigned)MECH_PLUS;
    return m;
}

int
mp_sasl_mechanisms_xml(mp_sasl *s, const mp_sasl_channel *ch, char *buf, size_t cap)
{
    unsigned m = offered(s, ch);
    size_t len = 0;

    if (cap == 0)
        return MP_ELIMIT;
    buf[0] = '\0';
    for (size_t i = 0; i < NMECH; i++) {
        if (!(m & mech_table[i].bit))
            continue;
        int n = snprintf(buf + len, cap - len, "<mechanism>%s</mechanism>", mech_table[i].name);
        if (n < 0 || (size_t)n >= cap - len) {
            buf[0] = '\0';
            return MP_ELIMIT;
        }
        len += (size_t)n;
    }
    return (int)len;
}

int
mp_sasl_start(mp_sasl *s, const char *mech, const char *domain, const mp_sasl_channel *ch,
              mp_sasl_session **out)
{
    unsigned m = offered(s, ch);
    mp_sasl_session *ss;
    size_t i;
    int rc;

    *out = NULL;
    for (i = 0; i < NMECH; i++)
        if (strcmp(mech, mech_table[i].name) == 0)
            break;
    if (i == NMECH || !(m & mech_table[i].bit))
        return MP_EINVAL;
    ss = calloc(1, sizeof *ss);
    if (!ss)
        return MP_ENOMEM;
    ss->s = s;
    ss->mech = mech_table[i].name;
    ss->mech_bit = mech_table[i].bit;
    ss->domain = strdup(domain);
    if (!ss->domain) {
        rc = MP_ENOMEM;
        goto fail;
    }
    if ((rc = gsasl_server_start(s->ctx, ss->mech, &ss->gs)) != GSASL_OK) {
        mp_err("sasl: gsasl_server_start(%s): %s", ss->mech, gsasl_strerror(rc));
        rc = rc == GSASL_MALLOC_ERROR ? MP_ENOMEM : MP_EIO;
        goto fail;
    }
    gsasl_session_hook_set(ss->gs, ss);
    /* Present whenever -PLUS was offered here, for every mechanism: that is how gsasl knows
     * to refuse a SCRAM client claiming with 'y' that we cannot bind (RFC 5802 §6). */
    if (m & MECH_PLUS) {
        if (set_b64(ss->gs, GSASL_CB_TLS_EXPORTER, ch->exporter, ch->exporter_len) != GSASL_OK) {
            rc = MP_ENOMEM;
            goto fail;
        }
    }
    *out = ss;
    return 0;
fail:
    mp_sasl_session_free(ss);
    return rc;
}

static int
map_error(const mp_sasl_session *ss, int rc)
{
    if (ss->temp_fail)
        return MP_SASL_F_TEMPORARY_AUTH_FAILURE;
    if (ss->bad_authzid)
        return MP_SASL_F_INVALID_AUTHZID;
    switch (rc) {
    case GSASL_MECHANISM_PARSE_ERROR:
    case GSASL_MECHANISM_CALLED_TOO_MANY_TIMES:
    case GSASL_BASE64_ERROR: /* base64 inside the SCRAM message: c= or p= */
        return MP_SASL_F_MALFORMED_REQUEST;
    case GSASL_MALLOC_ERROR:
    case GSASL_CRYPTO_ERROR:
        return MP_SASL_F_TEMPORARY_AUTH_FAILURE;
    default:
        /* AUTHENTICATION_ERROR, SASLPREP_ERROR, NO_CB_* (a binding type we lack), ... */
        return MP_SASL_F_NOT_AUTHORIZED;
    }
}

static int
fail(mp_sasl_session *ss, int failure, int *out_failure)
{
    ss->finished = 1;
    *out_failure = failure;
    mp_debug("sasl: %s failed for %s@%s: %s", ss->mech, ss->node_ok ? ss->node : "?", ss->domain,
             mp_sasl_failure_name(failure));
    return MP_SASL_FAILURE;
}

int
mp_sasl_step(mp_sasl_session *ss, const char *in_b64, size_t in_len, char **out_b64, int *failure)
{
    char *in = NULL, *out = NULL;
    size_t inlen = 0, outlen = 0;
    int rc;

    *out_b64 = NULL;
    *failure = MP_SASL_F_NONE;
    if (ss->finished)
        return fail(ss, MP_SASL_F_MALFORMED_REQUEST, failure);
    /* RFC 6120 §6.4.2: "=" is a present but empty response; an empty element is no data. */
    if (in_len > 0 && !(in_len == 1 && in_b64[0] == '=')) {
        if (gsasl_base64_from(in_b64, in_len, &in, &inlen) != GSASL_OK)
            return fail(ss, MP_SASL_F_INCORRECT_ENCODING, failure);
    }
    rc = gsasl_step(ss->gs, in, inlen, &out, &outlen);
    if (in) {
        OPENSSL_cleanse(in, inlen); /* may hold a PLAIN password */
        gsasl_free(in);
    }
    ss->steps++;

    if (rc == GSASL_NEEDS_MORE || rc == GSASL_OK) {
        const char *authzid;
        /* SCRAM: the authzid arrived in the first message; refuse it before going on. */
        if (!ss->bad_authzid && ss->mech_bit != MP_MECH_PLAIN &&
            (authzid = gsasl_property_fast(ss->gs, GSASL_AUTHZID)) && *authzid &&
            !authzid_ok(ss, authzid))
            ss->bad_authzid = 1;
        if (ss->temp_fail || ss->bad_authzid || (rc == GSASL_OK && ss->doomed)) {
            gsasl_free(out);
            return fail(ss, map_error(ss, GSASL_AUTHENTICATION_ERROR), failure);
        }
    }
    if (rc == GSASL_NEEDS_MORE) {
        /* An empty challenge goes out as an empty element, which every client reads as
         * zero bytes. */
        if (outlen == 0) {
            *out_b64 = strdup("");
            rc = *out_b64 ? 0 : GSASL_MALLOC_ERROR;
        } else {
            rc = gsasl_base64_to(out, outlen, out_b64, NULL);
        }
        gsasl_free(out);
        if (rc != GSASL_OK)
            return fail(ss, MP_SASL_F_TEMPORARY_AUTH_FAILURE, failure);
        return MP_SASL_CONTINUE;
    }
    if (rc == GSASL_OK) {
        if (!ss->node_ok) { /* cannot happen: every mechanism we run names a user */
            gsasl_free(out);
            return fail(ss, MP_SASL_F_NOT_AUTHORIZED, failure);
        }
        if (outlen > 0) {
            rc = gsasl_base64_to(out, outlen, out_b64, NULL);
            if (rc != GSASL_OK) {
                gsasl_free(out);
                return fail(ss, MP_SASL_F_TEMPORARY_AUTH_FAILURE, failure);
            }
        }
        gsasl_free(out);
        ss->finished = 1;
        ss->success = 1;
        mp_debug("sasl: %s succeeded for %s@%s", ss->mech, ss->node, ss->domain);
        return MP_SASL_SUCCESS;
    }
    gsasl_free(out);
    return fail(ss, map_error(ss, rc), failure);
}

const char *
mp_sasl_username(const mp_sasl_session *ss)
{
    return ss && ss->success ? ss->node : NULL;
}

const char *
mp_sasl_attempted_user(const mp_sasl_session *ss)
{
    return ss && ss->node_ok ? ss->node : NULL;
}

const char *
mp_sasl_mechanism(const mp_sasl_session *ss)
{
    return ss->mech;
}

void
mp_sasl_session_free(mp_sasl_session *ss)
{
    if (!ss)
        return;
    if (ss->gs)
        gsasl_finish(ss->gs);
    free(ss->domain);
    OPENSSL_cleanse(ss, sizeof *ss);
    free(ss);
}
