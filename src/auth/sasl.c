/* Server-side SASL. SCRAM-SHA-1/-256 and their -PLUS variants are our own code (RFC 5802,
 * RFC 7677), checked against stored SCRAM keys; PLAIN runs in GNU SASL, which parses the
 * message and hands us the password through its validate callback. Both share the policy
 * here: what to offer on a channel, who may authorize as whom, unknown users failing like
 * wrong passwords, and which RFC 6120 condition a failure maps to.
 *
 * Why SCRAM is not gsasl's: GNU SASL 2.2 knows only tls-unique and tls-exporter channel
 * bindings and has no property for tls-server-end-point (RFC 5929), the only binding TLS 1.2
 * has that is worth offering. Our server does tls-exporter (RFC 9266) and
 * tls-server-end-point, whichever the transport gives data for. */
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
#define MECH_SCRAM (MECH_PLUS | MP_MECH_SCRAM_SHA_1 | MP_MECH_SCRAM_SHA_256)
/* A client message, decoded, is refused above this: no honest SCRAM or PLAIN message comes
 * near it, and everything we keep of it is bounded by it. */
#define MAX_MSG 4096
#define MAX_B64 (((MAX_MSG + 2) / 3) * 4)
#define SERVER_NONCE_RAW 24 /* random bytes; 32 base64 characters on the wire */
#define MAX_CB_DATA 256     /* a TLS exporter or a certificate hash is far smaller */

struct mp_sasl {
    Gsasl *ctx;
    mp_store *st;
    unsigned mechs; /* configured and supported */
    int tls_required;
    unsigned iterations; /* for the made-up credentials of unknown users */
    unsigned char secret[32];
    int defer_plain; /* PLAIN checks are handed to the caller (MP_SASL_PENDING) */
};

/* A PLAIN password check taken out of its session: nothing in it is shared. */
struct mp_sasl_check {
    char *password;
    mp_user_cred cred;
    int ok;
};

enum scram_phase { SCRAM_FIRST = 0, SCRAM_FINAL };

/* What a SCRAM exchange keeps between its two client messages. */
typedef struct scram_state {
    enum scram_phase phase;
    int plus_offered; /* -PLUS was offered on this channel: 'y' means a downgrade */
    unsigned char exporter[MAX_CB_DATA], endpoint[MAX_CB_DATA];
    size_t exporter_len, endpoint_len;
    const unsigned char *cb; /* the binding the client named: exporter, endpoint or none */
    size_t cb_len;
    char *gs2; /* the gs2 header exactly as the client sent it */
    size_t gs2_len;
    char *authmsg; /* client-first-bare "," server-first "," (the final part comes later) */
    size_t authmsg_len;
    char *nonce; /* client nonce + server nonce */
    size_t nonce_len;
    unsigned char stored_key[32], server_key[32];
} scram_state;

struct mp_sasl_session {
    mp_sasl *s;
    Gsasl_session *gs; /* PLAIN only */
    unsigned mech_bit;
    const char *mech;
    char *domain;
    int steps;
    int finished;
    int node_ok;     /* node holds the nodeprep'd authcid */
    int doomed;      /* unknown user or unusable credentials: fail at the end */
    int temp_fail;   /* storage error */
    int bad_authzid; /* authzid names someone else */
    int success;
    char node[MP_JID_PART_MAX + 1];
    scram_state *scram;   /* SCRAM only */
    mp_sasl_check *check; /* PLAIN, deferred: the check waiting to be taken */
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

/* The authcid as an account name (nodeprep); one that is no valid local part dooms the
 * exchange. */
static void
prep_user(mp_sasl_session *ss, const char *authid)
{
    int n = mp_jid_nodeprep(authid, strlen(authid), ss->node, sizeof ss->node);
    ss->node_ok = n > 0;
    if (!ss->node_ok)
        ss->doomed = 1;
}

/* Look the authcid up. Whatever goes wrong, *cred is usable and the exchange goes on to its
 * end, where a doomed session fails like a wrong password. */
static void
lookup_cred(mp_sasl_session *ss, const char *authid, mp_user_cred *cred)
{
    if (!ss->node_ok) {
        fake_cred(ss->s, ss->domain, authid, cred);
        return;
    }
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

static void
load_cred(mp_sasl_session *ss, const char *authid, mp_user_cred *cred)
{
    prep_user(ss, authid);
    lookup_cred(ss, authid, cred);
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

/* ---- PLAIN, through GNU SASL ---- */

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
    /* Unknown users pay the same PBKDF2 as real ones, deferred or not. */
    if (ss->s->defer_plain) {
        mp_sasl_check *c = calloc(1, sizeof *c);
        if (c && (c->password = strdup(password)) != NULL) {
            c->cred = cred;
            ss->check = c;
        } else {
            free(c);
            ss->temp_fail = 1;
        }
        OPENSSL_cleanse(&cred, sizeof cred);
        /* gsasl's step ends here whatever the password; the check decides (plain_step) */
        return GSASL_AUTHENTICATION_ERROR;
    }
    int ok = mp_scram_check_password(password, &cred);
    OPENSSL_cleanse(&cred, sizeof cred);
    return ok && !ss->doomed ? GSASL_OK : GSASL_AUTHENTICATION_ERROR;
}

static int
gs_callback(Gsasl *ctx, Gsasl_session *gs, Gsasl_property prop)
{
    mp_sasl_session *ss = gs ? gsasl_session_hook_get(gs) : NULL;

    if (!ss || prop != GSASL_VALIDATE_SIMPLE)
        return GSASL_NO_CALLBACK;
    return validate_plain(ss);
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
        /* SCRAM is ours; only PLAIN depends on what gsasl was built with. */
        if ((mech_table[i].bit & MECH_SCRAM) || gsasl_server_support_p(s->ctx, mech_table[i].name))
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

/* Binding data we can use: present, and of a size a real exporter or certificate hash has. */
static int
cb_usable(const unsigned char *data, size_t len)
{
    return data && len > 0 && len <= MAX_CB_DATA;
}

static unsigned
offered(const mp_sasl *s, const mp_sasl_channel *ch)
{
    unsigned m = s->mechs;

    if (!ch->tls && s->tls_required)
        m &= ~(unsigned)MP_MECH_PLAIN;
    if (!cb_usable(ch->exporter, ch->exporter_len) && !cb_usable(ch->endpoint, ch->endpoint_len))
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
    if (ss->mech_bit & MECH_SCRAM) {
        scram_state *sc = calloc(1, sizeof *sc);
        if (!sc) {
            rc = MP_ENOMEM;
            goto fail;
        }
        ss->scram = sc;
        /* For every SCRAM mechanism, not only -PLUS: a client saying 'y' to plain SCRAM
         * while we offered -PLUS here had the -PLUS names removed on the way (RFC 5802 §6). */
        sc->plus_offered = (m & MECH_PLUS) != 0;
        if (cb_usable(ch->exporter, ch->exporter_len)) {
            memcpy(sc->exporter, ch->exporter, ch->exporter_len);
            sc->exporter_len = ch->exporter_len;
        }
        if (cb_usable(ch->endpoint, ch->endpoint_len)) {
            memcpy(sc->endpoint, ch->endpoint, ch->endpoint_len);
            sc->endpoint_len = ch->endpoint_len;
        }
    } else {
        if ((rc = gsasl_server_start(s->ctx, ss->mech, &ss->gs)) != GSASL_OK) {
            mp_err("sasl: gsasl_server_start(%s): %s", ss->mech, gsasl_strerror(rc));
            rc = rc == GSASL_MALLOC_ERROR ? MP_ENOMEM : MP_EIO;
            goto fail;
        }
        gsasl_session_hook_set(ss->gs, ss);
    }
    *out = ss;
    return 0;
fail:
    mp_sasl_session_free(ss);
    return rc;
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

static int
plain_map_error(const mp_sasl_session *ss, int rc)
{
    if (ss->temp_fail)
        return MP_SASL_F_TEMPORARY_AUTH_FAILURE;
    if (ss->bad_authzid)
        return MP_SASL_F_INVALID_AUTHZID;
    switch (rc) {
    case GSASL_MECHANISM_PARSE_ERROR:
    case GSASL_MECHANISM_CALLED_TOO_MANY_TIMES:
        return MP_SASL_F_MALFORMED_REQUEST;
    case GSASL_MALLOC_ERROR:
    case GSASL_CRYPTO_ERROR:
        return MP_SASL_F_TEMPORARY_AUTH_FAILURE;
    default:
        /* AUTHENTICATION_ERROR, SASLPREP_ERROR, ... */
        return MP_SASL_F_NOT_AUTHORIZED;
    }
}

static int
plain_step(mp_sasl_session *ss, const char *in, size_t inlen, char **out_b64, int *failure)
{
    char *out = NULL;
    size_t outlen = 0;
    int rc = gsasl_step(ss->gs, in, inlen, &out, &outlen);

    if (ss->check) { /* deferred: the message parsed, the account looked up */
        gsasl_free(out);
        if (ss->temp_fail || ss->bad_authzid) {
            mp_sasl_check_free(mp_sasl_take_check(ss));
            return fail(ss, plain_map_error(ss, GSASL_AUTHENTICATION_ERROR), failure);
        }
        return MP_SASL_PENDING;
    }
    if (rc == GSASL_NEEDS_MORE || rc == GSASL_OK) {
        if (ss->temp_fail || ss->bad_authzid || (rc == GSASL_OK && ss->doomed)) {
            gsasl_free(out);
            return fail(ss, plain_map_error(ss, GSASL_AUTHENTICATION_ERROR), failure);
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
    gsasl_free(out); /* PLAIN has no additional data with success */
    if (rc == GSASL_OK) {
        if (!ss->node_ok) /* cannot happen: PLAIN names a user */
            return fail(ss, MP_SASL_F_NOT_AUTHORIZED, failure);
        return MP_SASL_SUCCESS;
    }
    return fail(ss, plain_map_error(ss, rc), failure);
}

/* ---- SCRAM, our own (RFC 5802, RFC 7677; bindings RFC 9266 and RFC 5929) ---- */

/* Attribute `name` at *p ("r=..."): its value up to the next ',' or the end; *p moves past
 * it. 0 when *p holds another attribute. */
static int
attr(const char **p, const char *end, char name, const char **val, size_t *len)
{
    const char *q = *p, *c;

    if (end - q < 2 || q[0] != name || q[1] != '=')
        return 0;
    q += 2;
    c = memchr(q, ',', (size_t)(end - q));
    if (!c)
        c = end;
    *val = q;
    *len = (size_t)(c - q);
    *p = c;
    return 1;
}

static int
comma(const char **p, const char *end)
{
    if (*p >= end || **p != ',')
        return 0;
    (*p)++;
    return 1;
}

static int
is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* An extension we ignore (attr-val = ALPHA "=" value), but never 'm': RFC 5802 §5.1 reserves
 * it for extensions the server must understand, and we understand none. */
static int
skip_extension(const char **p, const char *end)
{
    const char *q = *p, *c;

    if (end - q < 2 || !is_alpha(q[0]) || q[1] != '=' || q[0] == 'm')
        return 0;
    c = memchr(q, ',', (size_t)(end - q));
    *p = c ? c : end;
    return 1;
}

/* RFC 5802 printable: 0x21..0x7e without ','. */
static int
nonce_ok(const char *v, size_t len)
{
    if (len == 0)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (v[i] < 0x21 || v[i] > 0x7e || v[i] == ',')
            return 0;
    return 1;
}

static int
cbname_ok(const char *v, size_t len)
{
    if (len == 0)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!is_alpha(v[i]) && !(v[i] >= '0' && v[i] <= '9') && v[i] != '.' && v[i] != '-')
            return 0;
    return 1;
}

static int
name_is(const char *v, size_t len, const char *name)
{
    return len == strlen(name) && memcmp(v, name, len) == 0;
}

static size_t
hash_len(const mp_sasl_session *ss)
{
    return (ss->mech_bit & MECH_SHA256) ? 32 : 20;
}

/* client-first-message -> server-first-message. */
static int
scram_first(mp_sasl_session *ss, const char *msg, size_t len, char **out_b64, int *failure)
{
    scram_state *sc = ss->scram;
    const char *p = msg, *end = msg + len, *v, *cbname = NULL, *bare, *cnonce;
    size_t vl, cbname_len = 0, cnonce_len;
    char flag, user[MAX_MSG + 1], authzid[MAX_MSG + 1];
    int plus = (ss->mech_bit & MECH_PLUS) != 0;
    mp_user_cred cred;

    /* gs2-header: gs2-cbind-flag "," [authzid] "," */
    if (len >= 2 && (p[0] == 'n' || p[0] == 'y') && p[1] == ',') {
        flag = p[0];
        p += 2;
    } else if (attr(&p, end, 'p', &cbname, &cbname_len) && cbname_ok(cbname, cbname_len) &&
               comma(&p, end)) {
        flag = 'p';
    } else {
        return fail(ss, MP_SASL_F_MALFORMED_REQUEST, failure);
    }
    authzid[0] = '\0';
    if (attr(&p, end, 'a', &v, &vl) && mp_scram_saslname_decode(v, vl, authzid, sizeof authzid) < 0)
        return fail(ss, MP_SASL_F_MALFORMED_REQUEST, failure);
    if (!comma(&p, end))
        return fail(ss, MP_SASL_F_MALFORMED_REQUEST, failure);
    sc->gs2_len = (size_t)(p - msg);

    /* client-first-message-bare: [reserved-mext ","] username "," nonce ["," extensions] */
    bare = p;
    if (!attr(&p, end, 'n', &v, &vl) || mp_scram_saslname_decode(v, vl, user, sizeof user) < 0 ||
        !comma(&p, end) || !attr(&p, end, 'r', &cnonce, &cnonce_len) ||
        !nonce_ok(cnonce, cnonce_len))
        return fail(ss, MP_SASL_F_MALFORMED_REQUEST, failure); /* "m=" first lands here too */
    while (p < end)
        if (!comma(&p, end) || !skip_extension(&p, end))
            return fail(ss, MP_SASL_F_MALFORMED_REQUEST, failure);

    /* From here on the account is known: failed logins count against it. */
    prep_user(ss, user);

    if (plus != (flag == 'p'))
        return fail(ss, MP_SASL_F_MALFORMED_REQUEST, failure);
    if (flag == 'y' && sc->plus_offered) {
        mp_debug("sasl: %s: gs2 flag 'y' although -PLUS was offered: downgrade?", ss->mech);
        return fail(ss, MP_SASL_F_NOT_AUTHORIZED, failure);
    }
    if (flag == 'p') {
        if (name_is(cbname, cbname_len, "tls-exporter") && sc->exporter_len) {
            sc->cb = sc->exporter;
            sc->cb_len = sc->exporter_len;
        } else if (name_is(cbname, cbname_len, "tls-server-end-point") && sc->endpoint_len) {
            sc->cb = sc->endpoint;
            sc->cb_len = sc->endpoint_len;
        } else {
            mp_debug("sasl: %s: channel binding '%.*s' unavailable", ss->mech, (int)cbname_len,
                     cbname);
            return fail(ss, MP_SASL_F_NOT_AUTHORIZED, failure);
        }
    }
    if (authzid[0] && !authzid_ok(ss, authzid)) {
        ss->bad_authzid = 1;
        return fail(ss, MP_SASL_F_INVALID_AUTHZID, failure);
    }

    lookup_cred(ss, user, &cred);
    if (ss->temp_fail) {
        OPENSSL_cleanse(&cred, sizeof cred);
        return fail(ss, MP_SASL_F_TEMPORARY_AUTH_FAILURE, failure);
    }
    int sha256 = (ss->mech_bit & MECH_SHA256) != 0;
    memcpy(sc->stored_key, sha256 ? cred.sha256_stored_key : cred.sha1_stored_key, hash_len(ss));
    memcpy(sc->server_key, sha256 ? cred.sha256_server_key : cred.sha1_server_key, hash_len(ss));

    unsigned char rnd[SERVER_NONCE_RAW];
    char snonce[((SERVER_NONCE_RAW + 2) / 3) * 4 + 1], salt[((MP_SCRAM_SALT_MAX + 2) / 3) * 4 + 1];
    size_t bare_len = (size_t)(end - bare);
    int rc = MP_SASL_F_TEMPORARY_AUTH_FAILURE;

    if (RAND_bytes(rnd, sizeof rnd) != 1 || cred.salt_len > MP_SCRAM_SALT_MAX)
        goto out;
    EVP_EncodeBlock((unsigned char *)snonce, rnd, sizeof rnd);
    EVP_EncodeBlock((unsigned char *)salt, cred.salt, (int)cred.salt_len);
    sc->nonce_len = cnonce_len + strlen(snonce);
    sc->gs2 = malloc(sc->gs2_len);
    sc->nonce = malloc(sc->nonce_len);
    /* client-first-bare "," server-first "," (the client-final part comes later) */
    size_t cap = bare_len + 1 + 2 + sc->nonce_len + 3 + strlen(salt) + 3 + 10 + 1 + 1;
    sc->authmsg = malloc(cap);
    if (!sc->gs2 || !sc->nonce || !sc->authmsg)
        goto out;
    memcpy(sc->gs2, msg, sc->gs2_len);
    memcpy(sc->nonce, cnonce, cnonce_len);
    memcpy(sc->nonce + cnonce_len, snonce, strlen(snonce));
    int n = snprintf(sc->authmsg, cap, "%.*s,r=%.*s,s=%s,i=%u,", (int)bare_len, bare,
                     (int)sc->nonce_len, sc->nonce, salt, cred.iterations);
    if (n < 0 || (size_t)n >= cap)
        goto out;
    sc->authmsg_len = (size_t)n;
    /* the server-first-message is the part between the two commas we added */
    const char *sf = sc->authmsg + bare_len + 1;
    if (gsasl_base64_to(sf, sc->authmsg_len - bare_len - 2, out_b64, NULL) != GSASL_OK)
        goto out;
    sc->phase = SCRAM_FINAL;
    rc = MP_SASL_F_NONE;
out:
    OPENSSL_cleanse(&cred, sizeof cred);
    return rc == MP_SASL_F_NONE ? MP_SASL_CONTINUE : fail(ss, rc, failure);
}

/* client-final-message -> server-final-message (v=ServerSignature), or failure. */
static int
scram_final(mp_sasl_session *ss, const char *msg, size_t len, char **out_b64, int *failure)
{
    scram_state *sc = ss->scram;
    const char *p = msg, *end = msg + len, *c64, *rnonce, *p64 = NULL, *mark;
    size_t c64_len, rnonce_len, p64_len = 0, without_proof_len = 0;
    char *cbind = NULL, *proof = NULL, *authmsg = NULL;
    size_t cbind_len = 0, proof_len = 0, hlen = hash_len(ss);
    unsigned char sig[32];
    int res = MP_SASL_F_MALFORMED_REQUEST;

    /* channel-binding "," nonce ["," extensions] "," proof */
    if (!attr(&p, end, 'c', &c64, &c64_len) || c64_len == 0 || !comma(&p, end) ||
        !attr(&p, end, 'r', &rnonce, &rnonce_len))
        goto out;
    for (;;) {
        mark = p;
        if (!comma(&p, end))
            goto out;
        if (attr(&p, end, 'p', &p64, &p64_len)) {
            if (p != end || p64_len == 0)
                goto out;
            without_proof_len = (size_t)(mark - msg);
            break;
        }
        if (!skip_extension(&p, end))
            goto out;
    }
    if (gsasl_base64_from(c64, c64_len, &cbind, &cbind_len) != GSASL_OK ||
        gsasl_base64_from(p64, p64_len, &proof, &proof_len) != GSASL_OK || proof_len != hlen)
        goto out;

    res = MP_SASL_F_NOT_AUTHORIZED;
    /* c= is the gs2 header the client sent, then the binding data it sees on its side */
    if (cbind_len != sc->gs2_len + sc->cb_len || memcmp(cbind, sc->gs2, sc->gs2_len) != 0 ||
        CRYPTO_memcmp(cbind + sc->gs2_len, sc->cb, sc->cb_len) != 0) {
        mp_debug("sasl: %s: channel binding mismatch", ss->mech);
        goto out;
    }
    if (rnonce_len != sc->nonce_len || memcmp(rnonce, sc->nonce, sc->nonce_len) != 0) {
        mp_debug("sasl: %s: nonce mismatch", ss->mech);
        goto out;
    }
    res = MP_SASL_F_TEMPORARY_AUTH_FAILURE;
    authmsg = malloc(sc->authmsg_len + without_proof_len);
    if (!authmsg)
        goto out;
    memcpy(authmsg, sc->authmsg, sc->authmsg_len);
    memcpy(authmsg + sc->authmsg_len, msg, without_proof_len);
    int ok = mp_scram_verify_proof(hlen == 32, sc->stored_key, sc->server_key, authmsg,
                                   sc->authmsg_len + without_proof_len,
                                   (const unsigned char *)proof, proof_len, sig);
    if (ok < 0)
        goto out;
    res = MP_SASL_F_NOT_AUTHORIZED;
    if (!ok || ss->doomed || !ss->node_ok)
        goto out;

    /* server-final-message, sent as the additional data of <success/> */
    char v[2 + ((32 + 2) / 3) * 4 + 1] = "v=";
    EVP_EncodeBlock((unsigned char *)v + 2, sig, (int)hlen);
    res = MP_SASL_F_TEMPORARY_AUTH_FAILURE;
    if (gsasl_base64_to(v, strlen(v), out_b64, NULL) != GSASL_OK)
        goto out;
    res = MP_SASL_F_NONE;
out:
    gsasl_free(cbind);
    if (proof) {
        OPENSSL_cleanse(proof, proof_len);
        gsasl_free(proof);
    }
    free(authmsg);
    OPENSSL_cleanse(sig, sizeof sig);
    if (res != MP_SASL_F_NONE)
        return fail(ss, res, failure);
    return MP_SASL_SUCCESS;
}

static int
scram_step(mp_sasl_session *ss, const char *in, size_t inlen, char **out_b64, int *failure)
{
    if (inlen == 0) {
        /* No initial response: ask for the client-first with an empty challenge, once. */
        if (ss->scram->phase == SCRAM_FIRST && ss->steps == 0) {
            *out_b64 = strdup("");
            return *out_b64 ? MP_SASL_CONTINUE
                            : fail(ss, MP_SASL_F_TEMPORARY_AUTH_FAILURE, failure);
        }
        return fail(ss, MP_SASL_F_MALFORMED_REQUEST, failure);
    }
    /* No attribute value may hold a NUL; refusing them here lets the parsers ignore them. */
    if (memchr(in, '\0', inlen))
        return fail(ss, MP_SASL_F_MALFORMED_REQUEST, failure);
    if (ss->scram->phase == SCRAM_FIRST)
        return scram_first(ss, in, inlen, out_b64, failure);
    return scram_final(ss, in, inlen, out_b64, failure);
}

int
mp_sasl_step(mp_sasl_session *ss, const char *in_b64, size_t in_len, char **out_b64, int *failure)
{
    char *in = NULL;
    size_t inlen = 0;
    int res;

    *out_b64 = NULL;
    *failure = MP_SASL_F_NONE;
    if (ss->finished)
        return fail(ss, MP_SASL_F_MALFORMED_REQUEST, failure);
    /* Bounded before it is decoded. */
    if (in_len > MAX_B64)
        return fail(ss, MP_SASL_F_MALFORMED_REQUEST, failure);
    /* RFC 6120 §6.4.2: "=" is a present but empty response; an empty element is no data. */
    if (in_len > 0 && !(in_len == 1 && in_b64[0] == '=')) {
        if (gsasl_base64_from(in_b64, in_len, &in, &inlen) != GSASL_OK)
            return fail(ss, MP_SASL_F_INCORRECT_ENCODING, failure);
    }
    if (inlen > MAX_MSG)
        res = fail(ss, MP_SASL_F_MALFORMED_REQUEST, failure);
    else if (ss->scram)
        res = scram_step(ss, in, inlen, out_b64, failure);
    else
        res = plain_step(ss, in, inlen, out_b64, failure);
    if (in) {
        OPENSSL_cleanse(in, inlen); /* may hold a PLAIN password */
        gsasl_free(in);
    }
    ss->steps++;
    if (res == MP_SASL_SUCCESS) {
        ss->finished = 1;
        ss->success = 1;
        mp_debug("sasl: %s succeeded for %s@%s", ss->mech, ss->node, ss->domain);
    }
    return res;
}

void
mp_sasl_defer_plain(mp_sasl *s, int on)
{
    s->defer_plain = on;
}

mp_sasl_check *
mp_sasl_take_check(mp_sasl_session *ss)
{
    mp_sasl_check *c = ss->check;
    ss->check = NULL;
    return c;
}

void
mp_sasl_check_run(mp_sasl_check *c)
{
    c->ok = mp_scram_check_password(c->password, &c->cred);
}

int
mp_sasl_check_now(mp_sasl_session *ss, int *failure)
{
    mp_sasl_check *c = mp_sasl_take_check(ss);
    if (!c)
        return fail(ss, MP_SASL_F_TEMPORARY_AUTH_FAILURE, failure);
    mp_sasl_check_run(c);
    return mp_sasl_check_finish(ss, c, failure);
}

void
mp_sasl_check_free(mp_sasl_check *c)
{
    if (!c)
        return;
    OPENSSL_cleanse(c->password, strlen(c->password));
    free(c->password);
    OPENSSL_cleanse(c, sizeof *c);
    free(c);
}

int
mp_sasl_check_finish(mp_sasl_session *ss, mp_sasl_check *c, int *failure)
{
    int ok = c->ok;
    mp_sasl_check_free(c);
    *failure = MP_SASL_F_NONE;
    if (ss->finished)
        return fail(ss, MP_SASL_F_MALFORMED_REQUEST, failure);
    if (!ok || ss->doomed || !ss->node_ok)
        return fail(ss, plain_map_error(ss, GSASL_AUTHENTICATION_ERROR), failure);
    ss->finished = 1;
    ss->success = 1;
    mp_debug("sasl: %s succeeded for %s@%s", ss->mech, ss->node, ss->domain);
    return MP_SASL_SUCCESS;
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
    mp_sasl_check_free(ss->check);
    if (ss->scram) {
        free(ss->scram->gs2);
        free(ss->scram->nonce);
        free(ss->scram->authmsg);
        OPENSSL_cleanse(ss->scram, sizeof *ss->scram);
        free(ss->scram);
    }
    free(ss->domain);
    OPENSSL_cleanse(ss, sizeof *ss);
    free(ss);
}
