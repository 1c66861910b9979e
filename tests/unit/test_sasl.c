/* mp_sasl against real GNU SASL client sessions (an independent SCRAM client for tls-exporter
 * and no binding), and against a SCRAM client written out here for what gsasl cannot send. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "helpers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gsasl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "auth/sasl.h"
#include "auth/scram.h"
#include "base/config.h"
#include "base/err.h"
#include "storage/store.h"

#define ALL_MECHS 0x1f

static const unsigned char exporter[32] = "0123456789abcdef0123456789abcdef";
static const unsigned char other_exporter[32] = "fedcba9876543210fedcba9876543210";
static const unsigned char endpoint[32] = "ENDPOINT-HASH-of-the-cert-SHA256";
static const unsigned char other_endpoint[32] = "ENDPOINT-HASH-of-a-forged-cert!!";

static const mp_sasl_channel ch_plain_tcp = {.tls = 0};
static const mp_sasl_channel ch_tls = {.tls = 1};
static const mp_sasl_channel ch_tls_cb = {
    .tls = 1, .exporter = exporter, .exporter_len = sizeof exporter};
static const mp_sasl_channel ch_tls_endpoint_only = {
    .tls = 1, .endpoint = endpoint, .endpoint_len = sizeof endpoint};
static const mp_sasl_channel ch_tls_both = {.tls = 1,
                                            .exporter = exporter,
                                            .exporter_len = sizeof exporter,
                                            .endpoint = endpoint,
                                            .endpoint_len = sizeof endpoint};

static const char *const mechs[] = {"SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256",
                                    "SCRAM-SHA-1", "PLAIN"};

typedef struct fixture {
    char dir[64], path[96];
    char *hosts[1];
    mp_config cfg;
    mp_store *st;
    mp_sasl *sasl;
    Gsasl *client;
} fixture;

/* What the client callback hands gsasl. */
typedef struct creds {
    const char *authid, *authzid, *password;
    const unsigned char *cb; /* tls-exporter bytes the client sees */
    size_t cb_len;
} creds;

typedef struct outcome {
    int result;
    int failure;
    int server_steps;
    char username[64];
    char first_challenge[256]; /* decoded SCRAM server-first-message */
} outcome;

static int
client_cb(Gsasl *ctx, Gsasl_session *s, Gsasl_property prop)
{
    const creds *c = gsasl_session_hook_get(s);
    char *b64;
    int rc;

    switch (prop) {
    case GSASL_AUTHID:
        return gsasl_property_set(s, prop, c->authid);
    case GSASL_AUTHZID:
        return c->authzid ? gsasl_property_set(s, prop, c->authzid) : GSASL_NO_CALLBACK;
    case GSASL_PASSWORD:
        return gsasl_property_set(s, prop, c->password);
    case GSASL_CB_TLS_EXPORTER:
        if (!c->cb)
            return GSASL_NO_CALLBACK;
        rc = gsasl_base64_to((const char *)c->cb, c->cb_len, &b64, NULL);
        assert_int_equal(rc, GSASL_OK);
        rc = gsasl_property_set(s, prop, b64);
        gsasl_free(b64);
        return rc;
    default:
        return GSASL_NO_CALLBACK;
    }
}

static void
put_user(fixture *f, const char *node, const char *password, unsigned iterations)
{
    mp_user_cred c;
    unsigned char salt[16];
    memset(salt, 0x5a, sizeof salt);
    assert_int_equal(mp_scram_derive(password, salt, sizeof salt, iterations, &c), 0);
    assert_int_equal(f->st->ops->user_put(f->st, "localhost", node, &c, 1), 0);
}

static int
setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    strcpy(f->dir, "/tmp/mp_test_sasl.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/magpie.db", f->dir);
    f->hosts[0] = "localhost";
    f->cfg.hosts = f->hosts;
    f->cfg.nhosts = 1;
    f->cfg.storage_backend = "sqlite";
    f->cfg.sqlite_path = f->path;
    f->cfg.sasl_mechanisms = ALL_MECHS;
    f->cfg.scram_iterations = 4096;
    f->cfg.tls_required = 1;
    assert_int_equal(mp_store_open(&f->cfg, &f->st), 0);
    put_user(f, "alice", "pencil", 4096);
    put_user(f, "bob", "crayon", 4096);
    put_user(f, "weak", "pencil", 1000);
    put_user(f, "a,b=c", "comma", 4096);
    assert_int_equal(mp_sasl_new(f->st, &f->cfg, &f->sasl), 0);
    assert_int_equal(gsasl_init(&f->client), GSASL_OK);
    gsasl_callback_set(f->client, client_cb);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    fixture *f = *state;

    gsasl_done(f->client);
    mp_sasl_free(f->sasl);
    mp_store_close(f->st);
    mp_test_remove_db(f->path);
    rmdir(f->dir);
    free(f);
    return 0;
}

/* Runs a whole exchange between a gsasl client and mp_sasl; the client must accept the
 * server's final message (for SCRAM that checks the server signature). */
static outcome
run(fixture *f, const char *mech, const mp_sasl_channel *ch, const creds *c)
{
    outcome o = {.failure = -1};
    mp_sasl_session *ss;
    Gsasl_session *cs;
    char *cout = NULL, *sout = NULL;
    int rc;

    assert_int_equal(mp_sasl_start(f->sasl, mech, "localhost", ch, &ss), 0);
    assert_string_equal(mp_sasl_mechanism(ss), mech);
    assert_int_equal(gsasl_client_start(f->client, mech, &cs), GSASL_OK);
    gsasl_session_hook_set(cs, (void *)c);

    rc = gsasl_step64(cs, "", &cout);
    assert_true(rc == GSASL_OK || rc == GSASL_NEEDS_MORE);
    for (;;) {
        o.result = mp_sasl_step(ss, cout, strlen(cout), &sout, &o.failure);
        o.server_steps++;
        gsasl_free(cout);
        cout = NULL;
        if (o.result != MP_SASL_CONTINUE)
            break;
        assert_non_null(sout);
        if (o.server_steps == 1) {
            char *raw;
            size_t rawlen;
            assert_int_equal(gsasl_base64_from(sout, strlen(sout), &raw, &rawlen), GSASL_OK);
            snprintf(o.first_challenge, sizeof o.first_challenge, "%.*s", (int)rawlen, raw);
            gsasl_free(raw);
        }
        rc = gsasl_step64(cs, sout, &cout);
        free(sout);
        sout = NULL;
        if (rc != GSASL_OK && rc != GSASL_NEEDS_MORE)
            fail_msg("client step: %s", gsasl_strerror_name(rc));
    }
    if (o.result == MP_SASL_SUCCESS) {
        assert_int_equal(o.failure, MP_SASL_F_NONE);
        assert_non_null(mp_sasl_username(ss));
        snprintf(o.username, sizeof o.username, "%s", mp_sasl_username(ss));
        if (strncmp(mech, "SCRAM", 5) == 0) {
            /* additional data with success: v=ServerSignature, checked by the client */
            assert_non_null(sout);
            rc = gsasl_step64(cs, sout, &cout);
            assert_int_equal(rc, GSASL_OK);
            gsasl_free(cout);
        } else {
            assert_null(sout);
        }
    } else {
        assert_int_equal(o.result, MP_SASL_FAILURE);
        assert_null(sout);
        assert_null(mp_sasl_username(ss));
    }
    free(sout);
    gsasl_finish(cs);
    mp_sasl_session_free(ss);
    return o;
}

static const mp_sasl_channel *
channel_for(const char *mech)
{
    return strstr(mech, "-PLUS") ? &ch_tls_cb : &ch_tls;
}

static void
test_success_all_mechs(void **state)
{
    fixture *f = *state;
    for (size_t i = 0; i < 5; i++) {
        creds c = {
            .authid = "alice", .password = "pencil", .cb = exporter, .cb_len = sizeof exporter};
        if (!strstr(mechs[i], "-PLUS"))
            c.cb = NULL; /* a client without binding data says 'n' */
        outcome o = run(f, mechs[i], channel_for(mechs[i]), &c);
        assert_int_equal(o.result, MP_SASL_SUCCESS);
        assert_string_equal(o.username, "alice");
        if (strncmp(mechs[i], "SCRAM", 5) == 0) {
            assert_non_null(strstr(o.first_challenge, ",s=WlpaWlpaWlpaWlpaWlpaWg==,"));
            assert_non_null(strstr(o.first_challenge, ",i=4096"));
        }
    }
}

static void
test_authcid_is_nodeprepped(void **state)
{
    fixture *f = *state;
    creds c = {.authid = "ALICE", .password = "pencil"};
    outcome o = run(f, "SCRAM-SHA-256", &ch_tls, &c);
    assert_int_equal(o.result, MP_SASL_SUCCESS);
    assert_string_equal(o.username, "alice");
    o = run(f, "PLAIN", &ch_tls, &c);
    assert_int_equal(o.result, MP_SASL_SUCCESS);
    assert_string_equal(o.username, "alice");
}

static void
test_wrong_password_and_unknown_user(void **state)
{
    fixture *f = *state;
    for (size_t i = 0; i < 5; i++) {
        creds wrong = {
            .authid = "alice", .password = "pen", .cb = exporter, .cb_len = sizeof exporter};
        creds unknown = {
            .authid = "nobody", .password = "pencil", .cb = exporter, .cb_len = sizeof exporter};
        creds badnode = {
            .authid = "a@b", .password = "pencil", .cb = exporter, .cb_len = sizeof exporter};
        if (!strstr(mechs[i], "-PLUS"))
            wrong.cb = unknown.cb = badnode.cb = NULL;
        outcome w = run(f, mechs[i], channel_for(mechs[i]), &wrong);
        outcome u = run(f, mechs[i], channel_for(mechs[i]), &unknown);
        outcome b = run(f, mechs[i], channel_for(mechs[i]), &badnode);
        assert_int_equal(w.result, MP_SASL_FAILURE);
        assert_int_equal(w.failure, MP_SASL_F_NOT_AUTHORIZED);
        assert_int_equal(u.result, MP_SASL_FAILURE);
        assert_int_equal(u.failure, MP_SASL_F_NOT_AUTHORIZED);
        assert_int_equal(b.result, MP_SASL_FAILURE);
        assert_int_equal(b.failure, MP_SASL_F_NOT_AUTHORIZED);
        /* an unknown user gets as far as a known one: SCRAM fails at its final step */
        assert_int_equal(u.server_steps, w.server_steps);
        assert_int_equal(b.server_steps, w.server_steps);
        assert_int_equal(w.server_steps, strncmp(mechs[i], "SCRAM", 5) == 0 ? 2 : 1);
    }
}

static void
test_unknown_user_salt_is_stable(void **state)
{
    fixture *f = *state;
    creds a = {.authid = "nobody", .password = "x"};
    creds b = {.authid = "somebody", .password = "x"};
    outcome o1 = run(f, "SCRAM-SHA-1", &ch_tls, &a);
    outcome o2 = run(f, "SCRAM-SHA-256", &ch_tls, &a);
    outcome o3 = run(f, "SCRAM-SHA-256", &ch_tls, &b);
    const char *s1 = strstr(o1.first_challenge, ",s="), *s2 = strstr(o2.first_challenge, ",s=");
    const char *s3 = strstr(o3.first_challenge, ",s=");
    assert_non_null(s1);
    assert_non_null(s2);
    assert_non_null(s3);
    assert_string_equal(s1, s2); /* same salt and iterations */
    assert_string_not_equal(s2, s3);
    assert_non_null(strstr(s1, ",i=4096"));
}

static void
test_weak_iterations_refused(void **state)
{
    fixture *f = *state;
    creds c = {.authid = "weak", .password = "pencil"};
    outcome o = run(f, "SCRAM-SHA-256", &ch_tls, &c);
    assert_int_equal(o.result, MP_SASL_FAILURE);
    assert_int_equal(o.failure, MP_SASL_F_NOT_AUTHORIZED);
    /* the peer never learns the weak count */
    assert_non_null(strstr(o.first_challenge, ",i=4096"));
    o = run(f, "PLAIN", &ch_tls, &c);
    assert_int_equal(o.result, MP_SASL_FAILURE);
    assert_int_equal(o.failure, MP_SASL_F_NOT_AUTHORIZED);
}

static void
test_authzid(void **state)
{
    fixture *f = *state;
    for (size_t i = 0; i < 5; i++) {
        creds self = {.authid = "alice",
                      .authzid = "alice@localhost",
                      .password = "pencil",
                      .cb = exporter,
                      .cb_len = sizeof exporter};
        creds other = self, other_domain = self, with_res = self;
        other.authzid = "bob@localhost";
        other_domain.authzid = "alice@example.org";
        with_res.authzid = "alice@localhost/phone";
        if (!strstr(mechs[i], "-PLUS"))
            self.cb = other.cb = other_domain.cb = with_res.cb = NULL;
        outcome o = run(f, mechs[i], channel_for(mechs[i]), &self);
        assert_int_equal(o.result, MP_SASL_SUCCESS);
        assert_string_equal(o.username, "alice");
        o = run(f, mechs[i], channel_for(mechs[i]), &other);
        assert_int_equal(o.result, MP_SASL_FAILURE);
        assert_int_equal(o.failure, MP_SASL_F_INVALID_AUTHZID);
        o = run(f, mechs[i], channel_for(mechs[i]), &other_domain);
        assert_int_equal(o.failure, MP_SASL_F_INVALID_AUTHZID);
        o = run(f, mechs[i], channel_for(mechs[i]), &with_res);
        assert_int_equal(o.failure, MP_SASL_F_INVALID_AUTHZID);
    }
}

/* A SCRAM client written out by hand (RFC 5802 §3), for what gsasl will not send: the gs2
 * flag 'y', tls-server-end-point, escaped names, extensions, tampered messages. */
enum tamper { T_NONE, T_NONCE, T_PROOF, T_CBIND, T_REPLAY };

typedef struct hand {
    const char *mech;          /* "SCRAM-SHA-1" when NULL */
    const mp_sasl_channel *ch; /* &ch_tls when NULL */
    const char *gs2;           /* "n,," when NULL */
    const unsigned char *cb;   /* binding data the client sees, for c= */
    size_t cb_len;
    const char *bare;      /* client-first-bare; "n=alice,r=hand0made0nonce" when NULL */
    const char *password;  /* "pencil" when NULL */
    const char *final_ext; /* put between the nonce and the proof, e.g. ",x=y" */
    enum tamper tamper;
    const char *replay; /* T_REPLAY: this client-final is sent instead */
    /* results */
    int failure;
    int server_steps;
    char attempted[64]; /* mp_sasl_attempted_user at the end, "" for NULL */
    char username[64];
    char final[6100]; /* the client-final sent */
} hand;

static char *
b64(const void *data, size_t len)
{
    char *out = NULL;
    assert_int_equal(gsasl_base64_to(data, len, &out, NULL), GSASL_OK);
    return out;
}

static int
hand_step(mp_sasl_session *ss, hand *h, const char *msg, char **out)
{
    char *in = b64(msg, strlen(msg));
    int res = mp_sasl_step(ss, in, strlen(in), out, &h->failure);
    gsasl_free(in);
    h->server_steps++;
    return res;
}

static void
hand_done(mp_sasl_session *ss, hand *h)
{
    const char *who = mp_sasl_attempted_user(ss);
    snprintf(h->attempted, sizeof h->attempted, "%s", who ? who : "");
    if (mp_sasl_username(ss))
        snprintf(h->username, sizeof h->username, "%s", mp_sasl_username(ss));
    mp_sasl_session_free(ss);
}

static int
hand_scram(fixture *f, hand *h)
{
    const char *mech = h->mech ? h->mech : "SCRAM-SHA-1";
    const char *gs2 = h->gs2 ? h->gs2 : "n,,";
    const char *bare = h->bare ? h->bare : "n=alice,r=hand0made0nonce";
    const char *password = h->password ? h->password : "pencil";
    const EVP_MD *md = strstr(mech, "SHA-256") ? EVP_sha256() : EVP_sha1();
    size_t hlen = (size_t)EVP_MD_get_size(md);
    mp_sasl_session *ss;
    char msg[6100], *out = NULL, *raw, sf[6000];
    size_t rawlen;
    int res;

    h->failure = -1;
    h->server_steps = 0;
    assert_int_equal(mp_sasl_start(f->sasl, mech, "localhost", h->ch ? h->ch : &ch_tls, &ss), 0);
    assert_true(snprintf(msg, sizeof msg, "%s%s", gs2, bare) < (int)sizeof msg);
    res = hand_step(ss, h, msg, &out);
    if (res != MP_SASL_CONTINUE) {
        assert_null(out);
        goto done;
    }
    assert_int_equal(gsasl_base64_from(out, strlen(out), &raw, &rawlen), GSASL_OK);
    snprintf(sf, sizeof sf, "%.*s", (int)rawlen, raw);
    gsasl_free(raw);
    free(out);
    out = NULL;

    /* server-first: r=<client nonce><24+ printable>,s=...,i=... */
    char nonce[5000], salt_b64[128];
    unsigned iter;
    assert_int_equal(sscanf(sf, "r=%4999[^,],s=%127[^,],i=%u", nonce, salt_b64, &iter), 3);
    const char *cnonce = strstr(bare, "r=") + 2;
    size_t cnonce_len = strcspn(cnonce, ",");
    assert_true(strlen(nonce) >= cnonce_len + 24);
    assert_memory_equal(nonce, cnonce, cnonce_len);
    for (const char *c = nonce; *c; c++)
        assert_true(*c >= 0x21 && *c <= 0x7e && *c != ',');
    char *salt;
    size_t salt_len;
    assert_int_equal(gsasl_base64_from(salt_b64, strlen(salt_b64), &salt, &salt_len), GSASL_OK);
    unsigned char sp[64], ck[64], sk[64], sig[64], proof[64];
    unsigned int n;
    assert_true(PKCS5_PBKDF2_HMAC(password, (int)strlen(password), (unsigned char *)salt,
                                  (int)salt_len, (int)iter, md, (int)hlen, sp));
    gsasl_free(salt);
    assert_non_null(HMAC(md, sp, (int)hlen, (const unsigned char *)"Client Key", 10, ck, &n));
    assert_true(EVP_Digest(ck, hlen, sk, NULL, md, NULL));

    /* c= is the gs2 header, then the binding data */
    unsigned char cbuf[512];
    size_t clen = strlen(gs2);
    memcpy(cbuf, gs2, clen);
    if (h->cb) {
        memcpy(cbuf + clen, h->cb, h->cb_len);
        clen += h->cb_len;
    }
    if (h->tamper == T_CBIND)
        cbuf[0] = cbuf[0] == 'n' ? 'y' : 'n'; /* claims another gs2 header than it sent */
    if (h->tamper == T_NONCE)
        nonce[strlen(nonce) - 1] ^= 1;
    char *cbind = b64(cbuf, clen);
    char without_proof[6000], authmsg[12000];
    assert_true(snprintf(without_proof, sizeof without_proof, "c=%s,r=%s%s", cbind, nonce,
                         h->final_ext ? h->final_ext : "") < (int)sizeof without_proof);
    gsasl_free(cbind);
    assert_true(snprintf(authmsg, sizeof authmsg, "%s,%s,%s", bare, sf, without_proof) <
                (int)sizeof authmsg);
    assert_non_null(
        HMAC(md, sk, (int)hlen, (const unsigned char *)authmsg, strlen(authmsg), sig, &n));
    for (size_t i = 0; i < hlen; i++)
        proof[i] = ck[i] ^ sig[i];
    if (h->tamper == T_PROOF)
        proof[0] ^= 0x80;
    char *proof_b64 = b64(proof, hlen);
    assert_true(snprintf(msg, sizeof msg, "%s,p=%s", without_proof, proof_b64) < (int)sizeof msg);
    gsasl_free(proof_b64);
    assert_true(snprintf(h->final, sizeof h->final, "%s", h->tamper == T_REPLAY ? h->replay : msg) <
                (int)sizeof h->final);
    res = hand_step(ss, h, h->final, &out);
    if (res == MP_SASL_SUCCESS) {
        assert_int_equal(h->failure, MP_SASL_F_NONE);
        /* v= must be HMAC(ServerKey, AuthMessage) */
        unsigned char srvk[64], v[64];
        char expect[128];
        assert_non_null(HMAC(md, sp, (int)hlen, (const unsigned char *)"Server Key", 10, srvk, &n));
        assert_non_null(
            HMAC(md, srvk, (int)hlen, (const unsigned char *)authmsg, strlen(authmsg), v, &n));
        char *v_b64 = b64(v, hlen);
        snprintf(expect, sizeof expect, "v=%s", v_b64);
        gsasl_free(v_b64);
        char *final;
        size_t finallen;
        assert_non_null(out);
        assert_int_equal(gsasl_base64_from(out, strlen(out), &final, &finallen), GSASL_OK);
        assert_int_equal(finallen, strlen(expect));
        assert_memory_equal(final, expect, finallen);
        gsasl_free(final);
        free(out);
        out = NULL;
        /* the exchange is over: the same client-final again is refused */
        assert_int_equal(hand_step(ss, h, msg, &out), MP_SASL_FAILURE);
        assert_int_equal(h->failure, MP_SASL_F_MALFORMED_REQUEST);
        h->failure = MP_SASL_F_NONE;
        h->server_steps--;
        assert_null(out);
        assert_non_null(mp_sasl_username(ss));
    } else {
        assert_null(out);
        assert_null(mp_sasl_username(ss));
    }
done:
    free(out);
    hand_done(ss, h);
    return res;
}

/* The old helper's shape, for the downgrade checks. */
static int
manual_scram(fixture *f, int sha256, const mp_sasl_channel *ch, const char *gs2,
             const char *password, int *failure)
{
    hand h = {.mech = sha256 ? "SCRAM-SHA-256" : "SCRAM-SHA-1",
              .ch = ch,
              .gs2 = gs2,
              .password = password};
    int res = hand_scram(f, &h);
    *failure = h.failure;
    return res;
}

static void
test_channel_binding(void **state)
{
    fixture *f = *state;
    /* the client sees another channel (a man in the middle) */
    creds mitm = {.authid = "alice",
                  .password = "pencil",
                  .cb = other_exporter,
                  .cb_len = sizeof other_exporter};
    outcome o = run(f, "SCRAM-SHA-256-PLUS", &ch_tls_cb, &mitm);
    assert_int_equal(o.result, MP_SASL_FAILURE);
    assert_int_equal(o.failure, MP_SASL_F_NOT_AUTHORIZED);
    o = run(f, "SCRAM-SHA-1-PLUS", &ch_tls_cb, &mitm);
    assert_int_equal(o.failure, MP_SASL_F_NOT_AUTHORIZED);

    /* Downgrade: a client that supports binding but picked plain SCRAM says 'y'. When we
     * offered -PLUS on this channel, someone removed it from the list: refuse. (The gsasl
     * client refuses to send 'y' itself, so this client is hand-made.) */
    int failure;
    assert_int_equal(manual_scram(f, 1, &ch_tls_cb, "y,,", "pencil", &failure), MP_SASL_FAILURE);
    assert_int_equal(failure, MP_SASL_F_NOT_AUTHORIZED);
    assert_int_equal(manual_scram(f, 0, &ch_tls_cb, "y,,", "pencil", &failure), MP_SASL_FAILURE);
    assert_int_equal(failure, MP_SASL_F_NOT_AUTHORIZED);
    /* -PLUS is offered with tls-server-end-point data alone too (TLS 1.2) */
    assert_int_equal(manual_scram(f, 0, &ch_tls_endpoint_only, "y,,", "pencil", &failure),
                     MP_SASL_FAILURE);
    assert_int_equal(failure, MP_SASL_F_NOT_AUTHORIZED);
    /* No -PLUS offered (no binding data): 'y' is honest and the exchange completes. */
    assert_int_equal(manual_scram(f, 1, &ch_tls, "y,,", "pencil", &failure), MP_SASL_SUCCESS);
    assert_int_equal(manual_scram(f, 0, &ch_tls, "y,,", "pencil", &failure), MP_SASL_SUCCESS);
    /* the hand-made client is right otherwise */
    assert_int_equal(manual_scram(f, 1, &ch_tls_cb, "n,,", "pencil", &failure), MP_SASL_SUCCESS);
    assert_int_equal(manual_scram(f, 1, &ch_tls, "n,,", "pencil", &failure), MP_SASL_SUCCESS);
    assert_int_equal(manual_scram(f, 1, &ch_tls, "y,,", "pencil!", &failure), MP_SASL_FAILURE);
    assert_int_equal(failure, MP_SASL_F_NOT_AUTHORIZED);
}

/* One raw client message through a fresh session. */
static int
raw_step(fixture *f, const char *mech, const mp_sasl_channel *ch, const char *msg, int *failure,
         char **out)
{
    mp_sasl_session *ss;
    char *b64 = NULL;
    int res;

    assert_int_equal(mp_sasl_start(f->sasl, mech, "localhost", ch, &ss), 0);
    assert_int_equal(gsasl_base64_to(msg, strlen(msg), &b64, NULL), GSASL_OK);
    res = mp_sasl_step(ss, b64, strlen(b64), out, failure);
    gsasl_free(b64);
    mp_sasl_session_free(ss);
    return res;
}

static void
test_hand_made_messages(void **state)
{
    fixture *f = *state;
    int failure;
    char *out = NULL;

    /* 'y' written by hand, with and without -PLUS on offer */
    assert_int_equal(
        raw_step(f, "SCRAM-SHA-256", &ch_tls_cb, "y,,n=alice,r=abcdefghijkl", &failure, &out),
        MP_SASL_FAILURE);
    assert_int_equal(failure, MP_SASL_F_NOT_AUTHORIZED);
    assert_int_equal(
        raw_step(f, "SCRAM-SHA-256", &ch_tls, "y,,n=alice,r=abcdefghijkl", &failure, &out),
        MP_SASL_CONTINUE);
    free(out);
    out = NULL;
    /* tls-server-end-point on a channel that has no end-point data (and the reverse) */
    assert_int_equal(raw_step(f, "SCRAM-SHA-256-PLUS", &ch_tls_cb,
                              "p=tls-server-end-point,,n=alice,r=abcdefghijkl", &failure, &out),
                     MP_SASL_FAILURE);
    assert_int_equal(failure, MP_SASL_F_NOT_AUTHORIZED);
    assert_int_equal(raw_step(f, "SCRAM-SHA-256-PLUS", &ch_tls_endpoint_only,
                              "p=tls-exporter,,n=alice,r=abcdefghijkl", &failure, &out),
                     MP_SASL_FAILURE);
    assert_int_equal(failure, MP_SASL_F_NOT_AUTHORIZED);
    /* -PLUS without binding: the gs2 header contradicts the mechanism */
    assert_int_equal(
        raw_step(f, "SCRAM-SHA-256-PLUS", &ch_tls_cb, "n,,n=alice,r=abcdefghijkl", &failure, &out),
        MP_SASL_FAILURE);
    assert_int_equal(failure, MP_SASL_F_MALFORMED_REQUEST);
    assert_int_equal(
        raw_step(f, "SCRAM-SHA-1-PLUS", &ch_tls_cb, "y,,n=alice,r=abcdefghijkl", &failure, &out),
        MP_SASL_FAILURE);
    assert_int_equal(failure, MP_SASL_F_MALFORMED_REQUEST);
    /* syntax */
    assert_int_equal(raw_step(f, "SCRAM-SHA-1", &ch_tls, "hello", &failure, &out), MP_SASL_FAILURE);
    assert_int_equal(failure, MP_SASL_F_MALFORMED_REQUEST);
    assert_int_equal(raw_step(f, "PLAIN", &ch_tls, "no-nul-bytes", &failure, &out),
                     MP_SASL_FAILURE);
    assert_int_equal(failure, MP_SASL_F_MALFORMED_REQUEST);
}

static const char *const scram_mechs[] = {"SCRAM-SHA-1", "SCRAM-SHA-256"};
static const char *const plus_mechs[] = {"SCRAM-SHA-1-PLUS", "SCRAM-SHA-256-PLUS"};

static void
test_plus_server_end_point(void **state)
{
    fixture *f = *state;
    for (size_t i = 0; i < 2; i++) {
        /* TLS 1.2: end-point data only */
        hand h = {.mech = plus_mechs[i],
                  .ch = &ch_tls_endpoint_only,
                  .gs2 = "p=tls-server-end-point,,",
                  .cb = endpoint,
                  .cb_len = sizeof endpoint};
        assert_int_equal(hand_scram(f, &h), MP_SASL_SUCCESS);
        assert_string_equal(h.username, "alice");
        assert_int_equal(h.server_steps, 2);
        /* TLS 1.3: both; the client picks either */
        h.ch = &ch_tls_both;
        assert_int_equal(hand_scram(f, &h), MP_SASL_SUCCESS);
        hand e = {.mech = plus_mechs[i],
                  .ch = &ch_tls_both,
                  .gs2 = "p=tls-exporter,,",
                  .cb = exporter,
                  .cb_len = sizeof exporter};
        assert_int_equal(hand_scram(f, &e), MP_SASL_SUCCESS);
        /* with an authzid in the gs2 header, which c= must repeat */
        h.gs2 = "p=tls-server-end-point,a=alice@localhost,";
        assert_int_equal(hand_scram(f, &h), MP_SASL_SUCCESS);
        h.gs2 = "p=tls-server-end-point,a=bob@localhost,";
        assert_int_equal(hand_scram(f, &h), MP_SASL_FAILURE);
        assert_int_equal(h.failure, MP_SASL_F_INVALID_AUTHZID);
        /* wrong password and unknown user: both at the final step */
        h.gs2 = "p=tls-server-end-point,,";
        h.password = "pen";
        assert_int_equal(hand_scram(f, &h), MP_SASL_FAILURE);
        assert_int_equal(h.failure, MP_SASL_F_NOT_AUTHORIZED);
        assert_int_equal(h.server_steps, 2);
        h.password = NULL;
        h.bare = "n=nobody,r=hand0made0nonce";
        assert_int_equal(hand_scram(f, &h), MP_SASL_FAILURE);
        assert_int_equal(h.failure, MP_SASL_F_NOT_AUTHORIZED);
        assert_int_equal(h.server_steps, 2);
        assert_string_equal(h.attempted, "nobody");
    }
}

static void
test_plus_cb_mismatch(void **state)
{
    fixture *f = *state;
    for (size_t i = 0; i < 2; i++) {
        /* the client's TLS session shows another certificate: a man in the middle */
        hand h = {.mech = plus_mechs[i],
                  .ch = &ch_tls_both,
                  .gs2 = "p=tls-server-end-point,,",
                  .cb = other_endpoint,
                  .cb_len = sizeof other_endpoint};
        assert_int_equal(hand_scram(f, &h), MP_SASL_FAILURE);
        assert_int_equal(h.failure, MP_SASL_F_NOT_AUTHORIZED);
        assert_int_equal(h.server_steps, 2);
        assert_string_equal(h.attempted, "alice");
        /* names end-point but binds the exporter bytes */
        h.cb = exporter;
        assert_int_equal(hand_scram(f, &h), MP_SASL_FAILURE);
        assert_int_equal(h.failure, MP_SASL_F_NOT_AUTHORIZED);
        /* no data at all after the gs2 header */
        h.cb = NULL;
        assert_int_equal(hand_scram(f, &h), MP_SASL_FAILURE);
        assert_int_equal(h.failure, MP_SASL_F_NOT_AUTHORIZED);
        /* the right data, but c= repeats another gs2 header than was sent */
        h.cb = endpoint;
        h.tamper = T_CBIND;
        assert_int_equal(hand_scram(f, &h), MP_SASL_FAILURE);
        assert_int_equal(h.failure, MP_SASL_F_NOT_AUTHORIZED);
        /* plain SCRAM: c= must be exactly the gs2 header, with no binding data */
        hand n = {
            .mech = scram_mechs[i], .ch = &ch_tls_both, .cb = endpoint, .cb_len = sizeof endpoint};
        assert_int_equal(hand_scram(f, &n), MP_SASL_FAILURE);
        assert_int_equal(n.failure, MP_SASL_F_NOT_AUTHORIZED);
        n.cb = NULL;
        n.tamper = T_CBIND; /* "y,," in c= after "n,," */
        assert_int_equal(hand_scram(f, &n), MP_SASL_FAILURE);
        assert_int_equal(n.failure, MP_SASL_F_NOT_AUTHORIZED);
    }
}

static void
test_plus_cb_names(void **state)
{
    fixture *f = *state;
    static const char *const refused[] = {"p=tls-unique,,", "p=tls-exporter-x,,",
                                          "p=TLS-SERVER-END-POINT,,"};
    for (size_t i = 0; i < 2; i++) {
        for (size_t j = 0; j < 3; j++) {
            hand h = {.mech = plus_mechs[i], .ch = &ch_tls_both, .gs2 = refused[j]};
            assert_int_equal(hand_scram(f, &h), MP_SASL_FAILURE);
            assert_int_equal(h.failure, MP_SASL_F_NOT_AUTHORIZED);
            assert_int_equal(h.server_steps, 1);
            assert_string_equal(h.attempted, "alice");
        }
        /* not a cb-name at all */
        hand h = {.mech = plus_mechs[i], .ch = &ch_tls_both, .gs2 = "p=tls exporter,,"};
        assert_int_equal(hand_scram(f, &h), MP_SASL_FAILURE);
        assert_int_equal(h.failure, MP_SASL_F_MALFORMED_REQUEST);
        h.gs2 = "p=,,";
        assert_int_equal(hand_scram(f, &h), MP_SASL_FAILURE);
        assert_int_equal(h.failure, MP_SASL_F_MALFORMED_REQUEST);
        /* 'p=' on a mechanism without -PLUS, whatever we could bind */
        hand p = {.mech = scram_mechs[i],
                  .ch = &ch_tls_both,
                  .gs2 = "p=tls-exporter,,",
                  .cb = exporter,
                  .cb_len = sizeof exporter};
        assert_int_equal(hand_scram(f, &p), MP_SASL_FAILURE);
        assert_int_equal(p.failure, MP_SASL_F_MALFORMED_REQUEST);
        p.ch = &ch_tls;
        assert_int_equal(hand_scram(f, &p), MP_SASL_FAILURE);
        assert_int_equal(p.failure, MP_SASL_F_MALFORMED_REQUEST);
    }
}

static void
test_extensions(void **state)
{
    fixture *f = *state;
    /* 'm' is a mandatory extension we cannot know: RFC 5802 says fail */
    hand h = {.bare = "m=must-know,n=alice,r=hand0made0nonce"};
    assert_int_equal(hand_scram(f, &h), MP_SASL_FAILURE);
    assert_int_equal(h.failure, MP_SASL_F_MALFORMED_REQUEST);
    h.bare = "n=alice,r=hand0made0nonce,m=late";
    assert_int_equal(hand_scram(f, &h), MP_SASL_FAILURE);
    assert_int_equal(h.failure, MP_SASL_F_MALFORMED_REQUEST);
    /* other extensions are ignored, but are part of the AuthMessage */
    h.bare = "n=alice,r=hand0made0nonce,x=one,y=two";
    assert_int_equal(hand_scram(f, &h), MP_SASL_SUCCESS);
    h.bare = NULL;
    h.final_ext = ",z=three";
    assert_int_equal(hand_scram(f, &h), MP_SASL_SUCCESS);
    h.final_ext = ",m=no";
    assert_int_equal(hand_scram(f, &h), MP_SASL_FAILURE);
    assert_int_equal(h.failure, MP_SASL_F_MALFORMED_REQUEST);
    /* not attr=value */
    h.final_ext = ",zzz";
    assert_int_equal(hand_scram(f, &h), MP_SASL_FAILURE);
    assert_int_equal(h.failure, MP_SASL_F_MALFORMED_REQUEST);
    h.final_ext = NULL;
    h.bare = "n=alice,r=hand0made0nonce,";
    assert_int_equal(hand_scram(f, &h), MP_SASL_FAILURE);
    assert_int_equal(h.failure, MP_SASL_F_MALFORMED_REQUEST);
}

static void
test_nonce_and_replay(void **state)
{
    fixture *f = *state;
    for (size_t i = 0; i < 4; i++) {
        const char *mech = i < 2 ? scram_mechs[i] : plus_mechs[i - 2];
        int plus = i >= 2;
        hand h = {.mech = mech,
                  .ch = &ch_tls_both,
                  .gs2 = plus ? "p=tls-server-end-point,," : NULL,
                  .cb = plus ? endpoint : NULL,
                  .cb_len = plus ? sizeof endpoint : 0};
        /* the client's nonce, changed */
        h.tamper = T_NONCE;
        assert_int_equal(hand_scram(f, &h), MP_SASL_FAILURE);
        assert_int_equal(h.failure, MP_SASL_F_NOT_AUTHORIZED);
        assert_int_equal(h.server_steps, 2);
        /* a proof off by one bit */
        h.tamper = T_PROOF;
        assert_int_equal(hand_scram(f, &h), MP_SASL_FAILURE);
        assert_int_equal(h.failure, MP_SASL_F_NOT_AUTHORIZED);
        /* a good client-final, replayed into a new exchange (another server nonce) */
        h.tamper = T_NONE;
        assert_int_equal(hand_scram(f, &h), MP_SASL_SUCCESS);
        char captured[512];
        assert_true(strlen(h.final) < sizeof captured);
        memcpy(captured, h.final, strlen(h.final) + 1);
        h.tamper = T_REPLAY;
        h.replay = captured;
        assert_int_equal(hand_scram(f, &h), MP_SASL_FAILURE);
        assert_int_equal(h.failure, MP_SASL_F_NOT_AUTHORIZED);
        /* and modified: the proof left out, moved, or not last */
        char edited[600];
        char *p = strstr(captured, ",p=");
        assert_non_null(p);
        snprintf(edited, sizeof edited, "%.*s", (int)(p - captured), captured);
        h.replay = edited;
        assert_int_equal(hand_scram(f, &h), MP_SASL_FAILURE);
        assert_int_equal(h.failure, MP_SASL_F_MALFORMED_REQUEST);
        snprintf(edited, sizeof edited, "%s,x=after", captured);
        assert_int_equal(hand_scram(f, &h), MP_SASL_FAILURE);
        assert_int_equal(h.failure, MP_SASL_F_MALFORMED_REQUEST);
        snprintf(edited, sizeof edited, "%s=", captured); /* proof of the wrong length */
        assert_int_equal(hand_scram(f, &h), MP_SASL_FAILURE);
        assert_int_equal(h.failure, MP_SASL_F_MALFORMED_REQUEST);
    }
    /* nonce syntax in the client-first */
    hand h = {.bare = "n=alice,r="};
    assert_int_equal(hand_scram(f, &h), MP_SASL_FAILURE);
    assert_int_equal(h.failure, MP_SASL_F_MALFORMED_REQUEST);
    h.bare = "n=alice,r=bad\x7fnonce";
    assert_int_equal(hand_scram(f, &h), MP_SASL_FAILURE);
    assert_int_equal(h.failure, MP_SASL_F_MALFORMED_REQUEST);
    h.bare = "n=alice";
    assert_int_equal(hand_scram(f, &h), MP_SASL_FAILURE);
    assert_int_equal(h.failure, MP_SASL_F_MALFORMED_REQUEST);
    h.bare = "r=abc,n=alice";
    assert_int_equal(hand_scram(f, &h), MP_SASL_FAILURE);
    assert_int_equal(h.failure, MP_SASL_F_MALFORMED_REQUEST);
    assert_string_equal(h.attempted, ""); /* never got as far as the name */
}

static void
test_escaped_names(void **state)
{
    fixture *f = *state;
    /* the account "a,b=c" */
    hand h = {.bare = "n=a=2Cb=3Dc,r=hand0made0nonce", .password = "comma"};
    assert_int_equal(hand_scram(f, &h), MP_SASL_SUCCESS);
    assert_string_equal(h.username, "a,b=c");
    h.mech = "SCRAM-SHA-256-PLUS";
    h.ch = &ch_tls_endpoint_only;
    h.gs2 = "p=tls-server-end-point,a=a=2Cb=3Dc@localhost,";
    h.cb = endpoint;
    h.cb_len = sizeof endpoint;
    assert_int_equal(hand_scram(f, &h), MP_SASL_SUCCESS);
    assert_string_equal(h.username, "a,b=c");
    /* the name is nodeprep'd after decoding */
    hand u = {.bare = "n=A=2CB=3DC,r=hand0made0nonce", .password = "comma"};
    assert_int_equal(hand_scram(f, &u), MP_SASL_SUCCESS);
    assert_string_equal(u.username, "a,b=c");
    /* undefined or lower-case escapes, bare ',' cut the name: all malformed */
    static const char *const bad[] = {"n=a=2cb=3dc,r=x", "n=a=41,r=x", "n=a=,r=x", "n=,r=x",
                                      "n=a=2,r=x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        hand b = {.bare = bad[i]};
        assert_int_equal(hand_scram(f, &b), MP_SASL_FAILURE);
        assert_int_equal(b.failure, MP_SASL_F_MALFORMED_REQUEST);
        assert_string_equal(b.attempted, "");
    }
    hand a = {.gs2 = "n,a=alice=40localhost,"};
    assert_int_equal(hand_scram(f, &a), MP_SASL_FAILURE);
    assert_int_equal(a.failure, MP_SASL_F_MALFORMED_REQUEST);
    a.gs2 = "n,a=,";
    assert_int_equal(hand_scram(f, &a), MP_SASL_FAILURE);
    assert_int_equal(a.failure, MP_SASL_F_MALFORMED_REQUEST);
}

static void
test_attempted_user(void **state)
{
    fixture *f = *state;
    /* known from the client-first on, also when the exchange fails there or later */
    hand h = {.mech = "SCRAM-SHA-256",
              .ch = &ch_tls_both,
              .gs2 = "y,,",
              .bare = "n=ALICE,r=hand0made0nonce"};
    assert_int_equal(hand_scram(f, &h), MP_SASL_FAILURE);
    assert_int_equal(h.failure, MP_SASL_F_NOT_AUTHORIZED);
    assert_string_equal(h.attempted, "alice");
    h.gs2 = NULL;
    h.password = "wrong";
    assert_int_equal(hand_scram(f, &h), MP_SASL_FAILURE);
    assert_string_equal(h.attempted, "alice");
    /* a name that is no local part is not an account */
    h.bare = "n=a@b,r=hand0made0nonce";
    assert_int_equal(hand_scram(f, &h), MP_SASL_FAILURE);
    assert_int_equal(h.failure, MP_SASL_F_NOT_AUTHORIZED);
    assert_int_equal(h.server_steps, 2);
    assert_string_equal(h.attempted, "");
}

static void
test_oversize(void **state)
{
    fixture *f = *state;
    static char bare[8200];
    int failure;
    char *out = NULL;

    /* a long but bounded nonce is fine */
    memcpy(bare, "n=alice,r=", 10);
    memset(bare + 10, 'x', 3000);
    bare[3010] = '\0';
    hand h = {.bare = bare};
    assert_int_equal(hand_scram(f, &h), MP_SASL_SUCCESS);
    /* over 4 KiB decoded */
    memset(bare + 10, 'x', 4100);
    bare[4110] = '\0';
    h.bare = bare;
    assert_int_equal(hand_scram(f, &h), MP_SASL_FAILURE);
    assert_int_equal(h.failure, MP_SASL_F_MALFORMED_REQUEST);
    assert_int_equal(h.server_steps, 1);
    assert_int_equal(raw_step(f, "PLAIN", &ch_tls, bare, &failure, &out), MP_SASL_FAILURE);
    assert_int_equal(failure, MP_SASL_F_MALFORMED_REQUEST);
    /* refused before decoding: base64 text far over the bound */
    mp_sasl_session *ss;
    memset(bare, 'A', 8192);
    bare[8192] = '\0';
    assert_int_equal(mp_sasl_start(f->sasl, "SCRAM-SHA-1", "localhost", &ch_tls, &ss), 0);
    assert_int_equal(mp_sasl_step(ss, bare, 8192, &out, &failure), MP_SASL_FAILURE);
    assert_int_equal(failure, MP_SASL_F_MALFORMED_REQUEST);
    assert_null(out);
    mp_sasl_session_free(ss);
    /* a NUL inside a SCRAM message */
    static const char nul[] = "n,,n=alice\0x,r=abc";
    char *in = b64(nul, sizeof nul - 1);
    assert_int_equal(mp_sasl_start(f->sasl, "SCRAM-SHA-1", "localhost", &ch_tls, &ss), 0);
    assert_int_equal(mp_sasl_step(ss, in, strlen(in), &out, &failure), MP_SASL_FAILURE);
    assert_int_equal(failure, MP_SASL_F_MALFORMED_REQUEST);
    gsasl_free(in);
    mp_sasl_session_free(ss);
}

static void
test_bad_base64(void **state)
{
    fixture *f = *state;
    for (size_t i = 0; i < 5; i++) {
        mp_sasl_session *ss;
        char *out = NULL;
        int failure;
        assert_int_equal(mp_sasl_start(f->sasl, mechs[i], "localhost", channel_for(mechs[i]), &ss),
                         0);
        assert_int_equal(mp_sasl_step(ss, "!!*garbage*!!", 13, &out, &failure), MP_SASL_FAILURE);
        assert_int_equal(failure, MP_SASL_F_INCORRECT_ENCODING);
        assert_null(out);
        /* the exchange is over */
        assert_int_equal(mp_sasl_step(ss, "", 0, &out, &failure), MP_SASL_FAILURE);
        mp_sasl_session_free(ss);
    }
    /* garbage inside SCRAM's own base64 (the c= attribute) */
    mp_sasl_session *ss;
    char *b64, *out = NULL;
    int failure;
    assert_int_equal(mp_sasl_start(f->sasl, "SCRAM-SHA-1", "localhost", &ch_tls, &ss), 0);
    const char *first = "n,,n=alice,r=abcdefghijkl";
    assert_int_equal(gsasl_base64_to(first, strlen(first), &b64, NULL), GSASL_OK);
    assert_int_equal(mp_sasl_step(ss, b64, strlen(b64), &out, &failure), MP_SASL_CONTINUE);
    gsasl_free(b64);
    char *raw, sf[256], final[512];
    size_t rawlen;
    assert_int_equal(gsasl_base64_from(out, strlen(out), &raw, &rawlen), GSASL_OK);
    snprintf(sf, sizeof sf, "%.*s", (int)rawlen, raw);
    gsasl_free(raw);
    free(out);
    out = NULL;
    const char *r = strstr(sf, "r=");
    const char *comma = strchr(r, ',');
    snprintf(final, sizeof final, "c=*!*,%.*s,p=AAAAAAAAAAAAAAAAAAAAAAAAAAA=", (int)(comma - r), r);
    assert_int_equal(gsasl_base64_to(final, strlen(final), &b64, NULL), GSASL_OK);
    assert_int_equal(mp_sasl_step(ss, b64, strlen(b64), &out, &failure), MP_SASL_FAILURE);
    assert_int_equal(failure, MP_SASL_F_MALFORMED_REQUEST);
    gsasl_free(b64);
    mp_sasl_session_free(ss);
}

static void
test_empty_responses(void **state)
{
    fixture *f = *state;
    mp_sasl_session *ss;
    char *out = NULL, *b64;
    int failure;

    /* PLAIN without an initial response: empty challenge, then the credentials */
    assert_int_equal(mp_sasl_start(f->sasl, "PLAIN", "localhost", &ch_tls, &ss), 0);
    assert_int_equal(mp_sasl_step(ss, "", 0, &out, &failure), MP_SASL_CONTINUE);
    assert_string_equal(out, "");
    free(out);
    out = NULL;
    const char plain[] = "\0alice\0pencil";
    assert_int_equal(gsasl_base64_to(plain, sizeof plain - 1, &b64, NULL), GSASL_OK);
    assert_int_equal(mp_sasl_step(ss, b64, strlen(b64), &out, &failure), MP_SASL_SUCCESS);
    assert_null(out);
    assert_string_equal(mp_sasl_username(ss), "alice");
    gsasl_free(b64);
    mp_sasl_session_free(ss);

    /* "=" is a present but empty response: nothing for PLAIN to check */
    assert_int_equal(mp_sasl_start(f->sasl, "PLAIN", "localhost", &ch_tls, &ss), 0);
    assert_int_equal(mp_sasl_step(ss, "", 0, &out, &failure), MP_SASL_CONTINUE);
    free(out);
    out = NULL;
    assert_int_equal(mp_sasl_step(ss, "=", 1, &out, &failure), MP_SASL_CONTINUE);
    free(out);
    out = NULL;
    mp_sasl_session_free(ss);

    /* SCRAM: "=" initial response, then a real client-first */
    assert_int_equal(mp_sasl_start(f->sasl, "SCRAM-SHA-256", "localhost", &ch_tls, &ss), 0);
    assert_int_equal(mp_sasl_step(ss, "=", 1, &out, &failure), MP_SASL_CONTINUE);
    assert_string_equal(out, "");
    free(out);
    out = NULL;
    const char *first = "n,,n=alice,r=abcdefghijkl";
    assert_int_equal(gsasl_base64_to(first, strlen(first), &b64, NULL), GSASL_OK);
    assert_int_equal(mp_sasl_step(ss, b64, strlen(b64), &out, &failure), MP_SASL_CONTINUE);
    assert_true(strlen(out) > 0);
    free(out);
    out = NULL;
    gsasl_free(b64);
    /* an empty client-final is a syntax error */
    assert_int_equal(mp_sasl_step(ss, "=", 1, &out, &failure), MP_SASL_FAILURE);
    assert_int_equal(failure, MP_SASL_F_MALFORMED_REQUEST);
    mp_sasl_session_free(ss);
}

static void
test_offer(void **state)
{
    fixture *f = *state;
    char buf[512];
    int n;

    n = mp_sasl_mechanisms_xml(f->sasl, &ch_tls_cb, buf, sizeof buf);
    assert_int_equal(n, (int)strlen(buf));
    assert_string_equal(buf, "<mechanism>SCRAM-SHA-256-PLUS</mechanism>"
                             "<mechanism>SCRAM-SHA-1-PLUS</mechanism>"
                             "<mechanism>SCRAM-SHA-256</mechanism>"
                             "<mechanism>SCRAM-SHA-1</mechanism>"
                             "<mechanism>PLAIN</mechanism>");
    n = mp_sasl_mechanisms_xml(f->sasl, &ch_tls, buf, sizeof buf);
    assert_string_equal(buf, "<mechanism>SCRAM-SHA-256</mechanism>"
                             "<mechanism>SCRAM-SHA-1</mechanism>"
                             "<mechanism>PLAIN</mechanism>");
    /* tls-server-end-point alone (TLS 1.2) is enough for -PLUS */
    n = mp_sasl_mechanisms_xml(f->sasl, &ch_tls_endpoint_only, buf, sizeof buf);
    assert_string_equal(buf, "<mechanism>SCRAM-SHA-256-PLUS</mechanism>"
                             "<mechanism>SCRAM-SHA-1-PLUS</mechanism>"
                             "<mechanism>SCRAM-SHA-256</mechanism>"
                             "<mechanism>SCRAM-SHA-1</mechanism>"
                             "<mechanism>PLAIN</mechanism>");
    /* binding data of an absurd size is not used */
    static const unsigned char huge[1024];
    mp_sasl_channel ch_huge = {.tls = 1, .endpoint = huge, .endpoint_len = sizeof huge};
    n = mp_sasl_mechanisms_xml(f->sasl, &ch_huge, buf, sizeof buf);
    assert_string_equal(buf, "<mechanism>SCRAM-SHA-256</mechanism>"
                             "<mechanism>SCRAM-SHA-1</mechanism>"
                             "<mechanism>PLAIN</mechanism>");
    /* no PLAIN in the clear while TLS is required */
    n = mp_sasl_mechanisms_xml(f->sasl, &ch_plain_tcp, buf, sizeof buf);
    assert_string_equal(buf, "<mechanism>SCRAM-SHA-256</mechanism>"
                             "<mechanism>SCRAM-SHA-1</mechanism>");
    assert_int_equal(mp_sasl_mechanisms_xml(f->sasl, &ch_tls_cb, buf, 40), MP_ELIMIT);
    assert_int_equal(mp_sasl_mechanisms_xml(f->sasl, &ch_tls_cb, buf, 0), MP_ELIMIT);

    mp_sasl_session *ss = NULL;
    assert_int_equal(mp_sasl_start(f->sasl, "PLAIN", "localhost", &ch_plain_tcp, &ss), MP_EINVAL);
    assert_int_equal(mp_sasl_start(f->sasl, "SCRAM-SHA-1-PLUS", "localhost", &ch_tls, &ss),
                     MP_EINVAL);
    assert_int_equal(mp_sasl_start(f->sasl, "DIGEST-MD5", "localhost", &ch_tls, &ss), MP_EINVAL);
    assert_int_equal(mp_sasl_start(f->sasl, "scram-sha-1", "localhost", &ch_tls, &ss), MP_EINVAL);
    assert_null(ss);

    /* configuration narrows the list; tls_required off allows PLAIN in the clear */
    mp_config cfg = f->cfg;
    mp_sasl *s2;
    cfg.sasl_mechanisms = MP_MECH_PLAIN | MP_MECH_SCRAM_SHA_256;
    cfg.tls_required = 0;
    assert_int_equal(mp_sasl_new(f->st, &cfg, &s2), 0);
    mp_sasl_mechanisms_xml(s2, &ch_plain_tcp, buf, sizeof buf);
    assert_string_equal(buf, "<mechanism>SCRAM-SHA-256</mechanism><mechanism>PLAIN</mechanism>");
    assert_int_equal(mp_sasl_start(s2, "SCRAM-SHA-1", "localhost", &ch_tls_cb, &ss), MP_EINVAL);
    mp_sasl_free(s2);
}

static int
broken_get(mp_store *st, const char *domain, const char *node, mp_user_cred *out)
{
    return MP_EIO;
}

static void
test_storage_error(void **state)
{
    fixture *f = *state;
    static const mp_store_ops broken_ops = {.name = "broken", .user_get = broken_get};
    mp_store broken = {.ops = &broken_ops};
    mp_sasl *real = f->sasl;
    creds c = {.authid = "alice", .password = "pencil"};

    assert_int_equal(mp_sasl_new(&broken, &f->cfg, &f->sasl), 0);
    outcome o = run(f, "SCRAM-SHA-256", &ch_tls, &c);
    assert_int_equal(o.result, MP_SASL_FAILURE);
    assert_int_equal(o.failure, MP_SASL_F_TEMPORARY_AUTH_FAILURE);
    o = run(f, "PLAIN", &ch_tls, &c);
    assert_int_equal(o.result, MP_SASL_FAILURE);
    assert_int_equal(o.failure, MP_SASL_F_TEMPORARY_AUTH_FAILURE);
    mp_sasl_free(f->sasl);
    f->sasl = real;
}

static void
test_failure_names(void **state)
{
    assert_string_equal(mp_sasl_failure_name(MP_SASL_F_NOT_AUTHORIZED), "not-authorized");
    assert_string_equal(mp_sasl_failure_name(MP_SASL_F_INVALID_AUTHZID), "invalid-authzid");
    assert_string_equal(mp_sasl_failure_name(MP_SASL_F_INCORRECT_ENCODING), "incorrect-encoding");
    assert_string_equal(mp_sasl_failure_name(MP_SASL_F_TEMPORARY_AUTH_FAILURE),
                        "temporary-auth-failure");
    assert_string_equal(mp_sasl_failure_name(MP_SASL_F_MALFORMED_REQUEST), "malformed-request");
    assert_string_equal(mp_sasl_failure_name(MP_SASL_F_ABORTED), "aborted");
}

/* PLAIN with the check deferred: the step stops at PENDING, the check runs apart from the
 * session, and the outcome is the same as inline; a check never finished leaks nothing. */
static int
deferred_n(fixture *f, const char *msg, size_t len, int take, int *failure)
{
    mp_sasl_session *ss;
    char *b64 = NULL, *out = NULL;
    assert_int_equal(mp_sasl_start(f->sasl, "PLAIN", "localhost", &ch_tls, &ss), 0);
    assert_int_equal(gsasl_base64_to(msg, len, &b64, NULL), GSASL_OK);
    int r = mp_sasl_step(ss, b64, strlen(b64), &out, failure);
    gsasl_free(b64);
    assert_null(out);
    if (r == MP_SASL_PENDING && take) {
        mp_sasl_check *c = mp_sasl_take_check(ss);
        assert_non_null(c);
        assert_null(mp_sasl_take_check(ss)); /* taken once */
        mp_sasl_check_run(c);
        r = mp_sasl_check_finish(ss, c, failure);
        if (r == MP_SASL_SUCCESS)
            assert_string_equal(mp_sasl_username(ss), "alice");
    }
    mp_sasl_session_free(ss);
    return r;
}
#define deferred(f, lit, take, failure) deferred_n(f, lit, sizeof lit - 1, take, failure)

static void
test_plain_deferred(void **state)
{
    fixture *f = *state;
    int failure;
    mp_sasl_defer_plain(f->sasl, 1);
    assert_int_equal(deferred(f, "\0alice\0pencil", 1, &failure), MP_SASL_SUCCESS);
    assert_int_equal(failure, MP_SASL_F_NONE);
    assert_int_equal(deferred(f, "\0alice\0crayon", 1, &failure), MP_SASL_FAILURE);
    assert_int_equal(failure, MP_SASL_F_NOT_AUTHORIZED);
    /* unknown users go through the same PBKDF2 and fail at the same point */
    assert_int_equal(deferred(f, "\0nobody\0pencil", 0, &failure), MP_SASL_PENDING);
    assert_int_equal(deferred(f, "\0nobody\0pencil", 1, &failure), MP_SASL_FAILURE);
    assert_int_equal(failure, MP_SASL_F_NOT_AUTHORIZED);
    assert_int_equal(deferred(f, "\0weak\0pencil", 1, &failure), MP_SASL_FAILURE);
    /* an authzid of someone else fails at once: nothing to defer */
    assert_int_equal(deferred(f, "bob@localhost\0alice\0pencil", 1, &failure), MP_SASL_FAILURE);
    assert_int_equal(failure, MP_SASL_F_INVALID_AUTHZID);
    /* the session ends with its check never taken, or taken and never finished */
    assert_int_equal(deferred(f, "\0alice\0pencil", 0, &failure), MP_SASL_PENDING);
    mp_sasl_session *ss;
    char *b64 = NULL, *out = NULL;
    assert_int_equal(mp_sasl_start(f->sasl, "PLAIN", "localhost", &ch_tls, &ss), 0);
    assert_int_equal(gsasl_base64_to("\0alice\0pencil", 13, &b64, NULL), GSASL_OK);
    assert_int_equal(mp_sasl_step(ss, b64, strlen(b64), &out, &failure), MP_SASL_PENDING);
    gsasl_free(b64);
    mp_sasl_check *c = mp_sasl_take_check(ss);
    mp_sasl_session_free(ss);
    mp_sasl_check_run(c); /* on the worker, after its session went away */
    mp_sasl_check_free(c);
    mp_sasl_check_free(NULL);
    /* off again: inline as before */
    mp_sasl_defer_plain(f->sasl, 0);
    assert_int_equal(deferred(f, "\0alice\0pencil", 1, &failure), MP_SASL_SUCCESS);
}

int
main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_success_all_mechs),
        T(test_authcid_is_nodeprepped),
        T(test_wrong_password_and_unknown_user),
        T(test_unknown_user_salt_is_stable),
        T(test_weak_iterations_refused),
        T(test_authzid),
        T(test_channel_binding),
        T(test_hand_made_messages),
        T(test_plus_server_end_point),
        T(test_plus_cb_mismatch),
        T(test_plus_cb_names),
        T(test_extensions),
        T(test_nonce_and_replay),
        T(test_escaped_names),
        T(test_attempted_user),
        T(test_oversize),
        T(test_bad_base64),
        T(test_empty_responses),
        T(test_offer),
        T(test_storage_error),
        T(test_plain_deferred),
        cmocka_unit_test(test_failure_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
