/* Client stream negotiation on the core: stream features, SASL, resource binding. The mux
 * owns the bytes and TLS; the core owns who somebody is. */
#include "router/core_int.h"
#include "router/caps.h"
#include "router/csi.h"
#include "router/privacy.h"
#include "router/sm_session.h"
#include "auth/sasl.h"
#include "base/config.h"
#include "base/err.h"
#include "base/log.h"
#include "base/rand.h"
#include "xml/escape.h"
#include "xml/framer.h"
#include "xmpp/jid.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#define NS_SASL "urn:ietf:params:xml:ns:xmpp-sasl"
#define NS_BIND "urn:ietf:params:xml:ns:xmpp-bind"
#define NS_SESSION "urn:ietf:params:xml:ns:xmpp-session"
#define NS_STANZAS "urn:ietf:params:xml:ns:xmpp-stanzas"
#define NS_IQ_AUTH "jabber:iq:auth"

static void
channel_of(const mp_cstream *s, mp_sasl_channel *ch)
{
    memset(ch, 0, sizeof *ch);
    ch->tls = s->tls;
    if (!s->cb || s->cb_len < 2)
        return;
    size_t el = s->cb[0];
    if (1 + el + 1 > s->cb_len)
        return;
    size_t pl = s->cb[1 + el];
    if (2 + el + pl > s->cb_len)
        return;
    if (el) {
        ch->exporter = s->cb + 1;
        ch->exporter_len = el;
    }
    if (pl) {
        ch->endpoint = s->cb + 2 + el;
        ch->endpoint_len = pl;
    }
}

void
mp_cstream_features(mp_core *core, mp_cstream *s)
{
    const mp_config *cfg = core->cfg;
    mp_buf *b = &core->scratch;
    b->len = 0;
    mp_buf_puts(b, "<stream:features>");
    if (s->state == CS_PREAUTH) {
        if (s->tls_available && !s->tls)
            mp_buf_puts(b, cfg->tls_required
                               ? "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/>"
                                 "</starttls>"
                               : "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
        if (s->tls || !cfg->tls_required) {
            char mechs[512] = "";
            mp_sasl_channel ch;
            channel_of(s, &ch);
            if (mp_sasl_mechanisms_xml(core->sasl, &ch, mechs, sizeof mechs) > 0) {
                mp_buf_puts(b, "<mechanisms xmlns='" NS_SASL "'>");
                mp_buf_puts(b, mechs);
                mp_buf_puts(b, "</mechanisms>");
            }
            /* XEP-0078 §4: legacy login checks a plaintext password exactly as PLAIN does,
             * so it is offered where PLAIN is. */
            if (cfg->legacy_auth && strstr(mechs, "<mechanism>PLAIN</mechanism>"))
                mp_buf_puts(b, "<auth xmlns='http://jabber.org/features/iq-auth'/>");
            if (ch.exporter || ch.endpoint) {
                /* XEP-0440: which channel bindings this server can do. */
                mp_buf_puts(b, "<sasl-channel-binding xmlns='urn:xmpp:sasl-cb:0'>");
                if (ch.exporter)
                    mp_buf_puts(b, "<channel-binding type='tls-exporter'/>");
                if (ch.endpoint)
                    mp_buf_puts(b, "<channel-binding type='tls-server-end-point'/>");
                mp_buf_puts(b, "</sasl-channel-binding>");
            }
        }
        if (cfg->register_enabled && (s->tls || !cfg->tls_required))
            mp_buf_puts(b, "<register xmlns='http://jabber.org/features/iq-register'/>");
        mp_buf_printf(b,
                      "<limits xmlns='urn:xmpp:stream-limits:0'><max-bytes>%zu</max-bytes>"
                      "<idle-seconds>%d</idle-seconds></limits>",
                      cfg->preauth_max_stanza_size, cfg->unauthenticated_timeout);
    } else {
        mp_buf_puts(b, "<bind xmlns='" NS_BIND "'/>"
                       "<session xmlns='" NS_SESSION "'><optional/></session>"
                       "<sub xmlns='urn:xmpp:features:pre-approval'/>"); /* RFC 6121 §3.4 */
        const char *ver = mp_core_caps_ver(core);
        if (ver[0]) /* XEP-0115 §6.3: the server's own capabilities */
            mp_buf_printf(
                b, "<c xmlns='" MP_NS_CAPS "' hash='sha-1' node='" MP_CAPS_NODE "' ver='%s'/>",
                ver);
        mp_buf_printf(b,
                      "<limits xmlns='urn:xmpp:stream-limits:0'><max-bytes>%zu</max-bytes>"
                      "</limits>",
                      cfg->max_stanza_size);
        if (cfg->sm_enabled)
            mp_buf_puts(b, "<sm xmlns='" MP_NS_SM3 "'/>");
        mp_buf_puts(b, MP_CSI_FEATURE); /* XEP-0352 */
    }
    if (core->amp_enabled) /* XEP-0079 §9 */
        mp_buf_puts(b, "<amp xmlns='http://jabber.org/features/amp'/>");
    if (mp_buf_puts(b, "</stream:features>") < 0) {
        mp_core_close_stream(core, s, "resource-constraint", NULL);
        return;
    }
    mp_core_send(core, s, b->data, b->len);
}

/* ---- SASL ---- */

typedef struct delayed_reply {
    uv_timer_t timer;
    mp_core *core;
    mp_link *link;
    uint64_t conn;
    size_t len;
    char bytes[];
} delayed_reply;

static void
delayed_closed(uv_handle_t *h)
{
    free(h->data);
}

static void
delayed_fire(uv_timer_t *t)
{
    delayed_reply *d = t->data;
    if (!d->core->stopping)
        mp_core_send_frame(d->core, d->link, MP_LF_SEND, d->conn, NULL, 0, d->bytes, d->len);
    uv_close((uv_handle_t *)t, delayed_closed);
}

/* Send a failed login's answer after delay_ms: slows down guessing; the core does not wait. */
static void
send_later(mp_core *core, mp_cstream *s, const char *bytes, size_t len, int delay_ms)
{
    if (delay_ms <= 0) {
        mp_core_send(core, s, bytes, len);
        return;
    }
    delayed_reply *d = malloc(sizeof *d + len);
    if (!d) {
        mp_core_send(core, s, bytes, len);
        return;
    }
    d->core = core;
    d->link = s->link;
    d->conn = s->conn;
    d->len = len;
    memcpy(d->bytes, bytes, len);
    uv_timer_init(core->loop, &d->timer);
    d->timer.data = d;
    uv_timer_start(&d->timer, delayed_fire, (uint64_t)delay_ms, 0);
}

static void
sasl_failure(mp_core *core, mp_cstream *s, int failure, int delay_ms)
{
    char buf[160];
    int n = snprintf(buf, sizeof buf, "<failure xmlns='" NS_SASL "'><%s/></failure>",
                     mp_sasl_failure_name(failure));
    send_later(core, s, buf, (size_t)n, delay_ms);
}

/* A PLAIN password check on the libuv thread pool: the core thread goes on routing while the
 * PBKDF2 runs. The job knows its stream only by connection id; the stream knows its job while
 * it waits for it, and forgets it when it goes or starts over. */
typedef struct sasl_job {
    uv_work_t req;
    mp_core *core;
    uint64_t conn;
    mp_sasl_check *check;
} sasl_job;

static void sasl_outcome(mp_core *core, mp_cstream *s, int r, char *out, int failure);

static void
sasl_done(mp_core *core, mp_cstream *s)
{
    s->sasl_job = NULL; /* a check still running finds nobody waiting and is dropped */
    if (s->sasl) {
        mp_sasl_session_free(s->sasl);
        s->sasl = NULL;
    }
}

static void
sasl_job_run(uv_work_t *req)
{
    sasl_job *job = req->data;
    mp_sasl_check_run(job->check);
}

static void
sasl_job_done(uv_work_t *req, int status)
{
    sasl_job *job = req->data;
    mp_core *core = job->core;
    mp_cstream *s = core->stopping ? NULL : mp_core_stream(core, job->conn);
    if (status < 0 || !s || s->sasl_job != job || !s->sasl) {
        mp_sasl_check_free(job->check);
        free(job);
        return;
    }
    s->sasl_job = NULL;
    int failure = 0;
    int r = mp_sasl_check_finish(s->sasl, job->check, &failure);
    free(job);
    sasl_outcome(core, s, r, NULL, failure);
}

/* MP_SASL_PENDING: hand the check to the pool; inline when that cannot be done. */
static void
sasl_defer(mp_core *core, mp_cstream *s)
{
    sasl_job *job = calloc(1, sizeof *job);
    int failure = 0, r;
    if (!job) {
        r = mp_sasl_check_now(s->sasl, &failure);
    } else {
        job->req.data = job;
        job->core = core;
        job->conn = s->conn;
        job->check = mp_sasl_take_check(s->sasl); /* never NULL after PENDING */
        if (uv_queue_work(core->loop, &job->req, sasl_job_run, sasl_job_done) == 0) {
            s->sasl_job = job;
            return;
        }
        mp_sasl_check_run(job->check); /* not queued: done here after all */
        r = mp_sasl_check_finish(s->sasl, job->check, &failure);
        free(job);
    }
    sasl_outcome(core, s, r, NULL, failure);
}

static void
sasl_step(mp_core *core, mp_cstream *s, const char *text, size_t len)
{
    char *out = NULL;
    int failure = 0;
    int r = mp_sasl_step(s->sasl, text, len, &out, &failure);
    if (r == MP_SASL_PENDING)
        sasl_defer(core, s);
    else
        sasl_outcome(core, s, r, out, failure);
}

/* What a step (or a deferred check) came to: a challenge, success or failure. out is the
 * step's additional data, freed here. */
static void
sasl_outcome(mp_core *core, mp_cstream *s, int r, char *out, int failure)
{
    char account[2 * MP_JID_PART_MAX + 2];
    const char *user = mp_sasl_username(s->sasl);
    const char *host = core->cfg->hosts[s->host];
    mp_buf *b = &core->scratch;
    b->len = 0;
    if (r == MP_SASL_CONTINUE) {
        mp_buf_puts(b, "<challenge xmlns='" NS_SASL "'>");
        mp_buf_puts(b, out && *out ? out : "=");
        if (mp_buf_puts(b, "</challenge>") == 0)
            mp_core_send(core, s, b->data, b->len);
        free(out);
        return;
    }
    /* The account being guessed at is known only now: refuse it while it is locked out, the
     * right password included, so that a lockout tells nothing about the password. */
    const char *named = user ? user : mp_sasl_attempted_user(s->sasl);
    if (named) {
        snprintf(account, sizeof account, "%s@%s", named, host);
        if (mp_throttle_check(core, s->ip, account)) {
            free(out);
            mp_info("conn %016llx (%s): too many failed logins for %s, refusing for now",
                    (unsigned long long)s->conn, s->ip, account);
            sasl_done(core, s);
            sasl_failure(core, s, MP_SASL_F_TEMPORARY_AUTH_FAILURE, 0);
            return;
        }
    }
    if (r == MP_SASL_SUCCESS && user) {
        snprintf(account, sizeof account, "%s@%s", user, host);
        s->node = strdup(user);
        if (!s->node) {
            free(out);
            mp_core_close_stream(core, s, "resource-constraint", NULL);
            return;
        }
        mp_info("conn %016llx (%s): authenticated %s with %s", (unsigned long long)s->conn, s->ip,
                account, mp_sasl_mechanism(s->sasl));
        mp_throttle_success(core, account);
        core->stats.auth_ok++;
        sasl_done(core, s);
        free(s->cb);
        s->cb = NULL;
        s->cb_len = 0;
        s->state = CS_AUTHED;
        mp_buf_puts(b, "<success xmlns='" NS_SASL "'");
        if (out && *out) {
            mp_buf_puts(b, ">");
            mp_buf_puts(b, out);
            mp_buf_puts(b, "</success>");
        } else {
            mp_buf_puts(b, "/>");
        }
        free(out);
        mp_core_send_frame(core, s->link, MP_LF_AUTHED, s->conn, NULL, 0, b->data, b->len);
        return;
    }
    free(out);
    /* The account named is known only to the SASL layer after a step; use it if any. */
    const char *who = mp_sasl_attempted_user(s->sasl);
    snprintf(account, sizeof account, "%s@%s", who ? who : "", host);
    int delay = mp_throttle_failure(core, s->ip, who ? account : NULL);
    core->stats.auth_failed++;
    mp_info("conn %016llx (%s): authentication failed (%s)", (unsigned long long)s->conn, s->ip,
            mp_sasl_failure_name(failure ? failure : MP_SASL_F_NOT_AUTHORIZED));
    sasl_done(core, s);
    sasl_failure(core, s, failure ? failure : MP_SASL_F_NOT_AUTHORIZED, delay);
}

static void
sasl_element(mp_core *core, mp_cstream *s, const mp_xnode *el)
{
    const mp_config *cfg = core->cfg;
    if (strcmp(el->name, "abort") == 0) {
        sasl_done(core, s);
        sasl_failure(core, s, MP_SASL_F_ABORTED, 0);
        return;
    }
    if (strcmp(el->name, "response") == 0) {
        if (!s->sasl) {
            sasl_failure(core, s, MP_SASL_F_MALFORMED_REQUEST, 0);
            return;
        }
        sasl_step(core, s, el->text, el->text_len);
        return;
    }
    if (strcmp(el->name, "auth") != 0) {
        mp_core_close_stream(core, s, "unsupported-stanza-type", NULL);
        return;
    }
    sasl_done(core, s);
    if (!s->tls && cfg->tls_required) {
        sasl_failure(core, s, MP_SASL_F_ENCRYPTION_REQUIRED, 0);
        return;
    }
    if (mp_throttle_check(core, s->ip, NULL)) {
        mp_info("conn %016llx (%s): too many failed logins, refusing for now",
                (unsigned long long)s->conn, s->ip);
        sasl_failure(core, s, MP_SASL_F_TEMPORARY_AUTH_FAILURE, 0);
        return;
    }
    const char *mech = mp_xnode_attr(el, "mechanism");
    mp_sasl_channel ch;
    channel_of(s, &ch);
    if (!mech || mp_sasl_start(core->sasl, mech, cfg->hosts[s->host], &ch, &s->sasl) < 0) {
        sasl_failure(core, s, MP_SASL_F_INVALID_MECHANISM, 0);
        return;
    }
    sasl_step(core, s, el->text, el->text_len);
}

/* ---- binding ---- */

/* An IQ answer on a stream that has no bound JID yet (bind, in-band registration): no 'to'.
 * etype NULL means type='result', with payload (serialized, may be NULL) inside. */
static int
iq_reply_build(mp_buf *b, const char *id, const char *from, const char *etype, const char *cond,
               const char *payload)
{
    b->len = 0;
    int rc = mp_buf_printf(b, "<iq type='%s' id='", etype ? "error" : "result");
    rc |= mp_xml_escape_attr(b, id, strlen(id));
    if (from) {
        rc |= mp_buf_puts(b, "' from='");
        rc |= mp_xml_escape_attr(b, from, strlen(from));
    }
    if (etype)
        rc |= mp_buf_printf(b, "'><error type='%s'><%s xmlns='" NS_STANZAS "'/></error></iq>",
                            etype, cond);
    else if (payload)
        rc |= mp_buf_printf(b, "'>%s</iq>", payload);
    else
        rc |= mp_buf_puts(b, "'/>");
    return rc;
}

void
mp_cstream_iq_reply(mp_core *core, mp_cstream *s, const char *id, const char *from,
                    const char *etype, const char *cond, const char *payload)
{
    mp_buf *b = &core->scratch;
    if (iq_reply_build(b, id, from, etype, cond, payload) < 0) {
        mp_core_close_stream(core, s, "resource-constraint", NULL);
        return;
    }
    mp_core_send(core, s, b->data, b->len);
}

/* A stanza error to a failed login, delayed like a SASL failure. */
static void
delayed_iq_error(mp_core *core, mp_cstream *s, const char *id, const char *from, const char *etype,
                 const char *cond, int delay_ms)
{
    mp_buf *b = &core->scratch;
    if (iq_reply_build(b, id, from, etype, cond, NULL) < 0) {
        mp_core_close_stream(core, s, "resource-constraint", NULL);
        return;
    }
    send_later(core, s, b->data, b->len, delay_ms);
}

/* Bind resource res (resourceprep'd, "" lets the server choose) for the authenticated s->node
 * (RFC 6120 §7): the conflict policy, then the session limit. On success s is CS_BOUND and
 * s->full is set; otherwise *etype and *cond name the stanza error, nothing changed. May close
 * the stream the new one replaces (which uses core->scratch). */
static int
bind_session(mp_core *core, mp_cstream *s, const char *res_in, const char **etype,
             const char **cond)
{
    const mp_config *cfg = core->cfg;
    char res[MP_JID_PART_MAX + 1];
    if (res_in[0]) {
        snprintf(res, sizeof res, "%s", res_in);
    } else {
        /* server-chosen resource (RFC 6120 §7.6.2.1); mp_random_token ends the string */
        memcpy(res, "magpie-", 7);
        mp_random_token(res + 7, 12);
    }
    const char *host = cfg->hosts[s->host];
    char full[3 * MP_JID_PART_MAX + 3];
    int blen = snprintf(full, sizeof full, "%s@%s", s->node, host);
    int flen = snprintf(full + blen, sizeof full - (size_t)blen, "/%s", res) + blen;
    *etype = "wait";
    *cond = "resource-constraint";
    mp_user *u = mp_core_user(core, full, (size_t)blen);
    if (u) {
        for (mp_cstream *o = u->resources; o; o = o->next_res) {
            if (o->full_len != (size_t)flen || memcmp(o->full, full, (size_t)flen) != 0)
                continue;
            /* A session without a connection, waiting for resumption, is not in use: a
             * client that cannot resume must not be locked out of its resource for the
             * whole window, whatever the policy. */
            if (cfg->conflict_policy == MP_CONFLICT_REFUSE && !mp_sm_waiting(o)) {
                *etype = "cancel";
                *cond = "conflict";
                return MP_EEXIST;
            }
            mp_info("conn %016llx: %s replaces the session on conn %016llx",
                    (unsigned long long)s->conn, full, (unsigned long long)o->conn);
            mp_core_close_stream(core, o, "conflict", "Replaced by new connection");
            break;
        }
        u = mp_core_user(core, full, (size_t)blen);
        if (u && u->count >= cfg->max_sessions_per_user)
            return MP_ELIMIT;
    }
    if (!u) {
        u = calloc(1, sizeof *u + (size_t)blen + 1);
        if (!u || mp_htab_insert(&core->users, &u->by_bare, mp_hash_str(full, (size_t)blen)) < 0) {
            free(u);
            return MP_ENOMEM;
        }
        memcpy(u->bare, full, (size_t)blen);
        u->bare_len = (size_t)blen;
    }
    s->full = strdup(full);
    if (!s->full) {
        if (!u->resources) {
            mp_htab_remove(&core->users, &u->by_bare);
            free(u);
        }
        return MP_ENOMEM;
    }
    s->full_len = (size_t)flen;
    s->bare_len = (size_t)blen;
    s->user = u;
    s->next_res = u->resources;
    u->resources = s;
    u->count++;
    s->state = CS_BOUND;
    mp_privacy_bind(core, s); /* XEP-0016: the account's lists, on its first resource */
    core->stats.sessions++;
    mp_info("conn %016llx (%s): bound %s", (unsigned long long)s->conn, s->ip, full);
    return 0;
}

static void
bind_resource(mp_core *core, mp_cstream *s, const mp_xnode *iq, const mp_xnode *bind)
{
    const char *id = mp_xnode_attr(iq, "id");
    const char *type = mp_xnode_attr(iq, "type");
    if (!id || !type || strcmp(type, "set") != 0) {
        mp_core_close_stream(core, s, "not-authorized", NULL);
        return;
    }
    char res[MP_JID_PART_MAX + 1] = "";
    const mp_xnode *r = mp_xnode_child(bind, NS_BIND, "resource");
    if (r && r->text_len && mp_jid_resourceprep(r->text, r->text_len, res, sizeof res) < 0) {
        mp_cstream_iq_reply(core, s, id, NULL, "modify", "bad-request", NULL);
        return;
    }
    const char *etype, *cond;
    if (bind_session(core, s, res, &etype, &cond) < 0) {
        mp_cstream_iq_reply(core, s, id, NULL, etype, cond, NULL);
        return;
    }
    mp_buf *b = &core->scratch;
    b->len = 0;
    mp_buf_puts(b, "<iq type='result' id='");
    mp_xml_escape_attr(b, id, strlen(id));
    mp_buf_puts(b, "'><bind xmlns='" NS_BIND "'><jid>");
    mp_xml_escape_text(b, s->full, s->full_len);
    if (mp_buf_puts(b, "</jid></bind></iq>") < 0) {
        mp_core_close_stream(core, s, "resource-constraint", NULL);
        return;
    }
    mp_core_send_frame(core, s->link, MP_LF_BOUND, s->conn, s->full, s->full_len, b->data, b->len);
}

/* ---- non-SASL authentication (XEP-0078) ---- */

/* A child's text, or NULL when the child is absent or empty. */
static const char *
field_text(const mp_xnode *query, const char *name)
{
    const mp_xnode *n = mp_xnode_child(query, NS_IQ_AUTH, name);
    return n && n->text_len ? n->text : NULL;
}

/* Check user's password as a SASL PLAIN exchange would: the same stored-key check, the same
 * answer for unknown users, the same storage failure handling. Returns MP_SASL_SUCCESS (the
 * prepared local part copied to node) or MP_SASL_FAILURE with *failure set; *attempted gets
 * the nodeprep'd name tried (for the throttle), "" when it was no valid local part. */
static int
check_password(mp_core *core, mp_cstream *s, const char *user, const char *password, char *node,
               size_t node_cap, char *attempted, size_t att_cap, int *failure)
{
    size_t ul = strlen(user), pl = strlen(password);
    size_t msg_len = 1 + ul + 1 + pl;
    char *msg = malloc(msg_len);
    size_t b64_cap = 4 * ((msg_len + 2) / 3) + 1;
    char *b64 = malloc(b64_cap);
    int r = MP_SASL_FAILURE;
    mp_sasl_session *ss = NULL;
    *failure = MP_SASL_F_TEMPORARY_AUTH_FAILURE;
    attempted[0] = '\0';
    if (!msg || !b64)
        goto out;
    /* PLAIN message: empty authzid, authcid, password */
    msg[0] = '\0';
    memcpy(msg + 1, user, ul);
    msg[1 + ul] = '\0';
    memcpy(msg + 2 + ul, password, pl);
    int n = EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)msg, (int)msg_len);
    mp_sasl_channel ch;
    channel_of(s, &ch);
    if (mp_sasl_start(core->sasl, "PLAIN", core->cfg->hosts[s->host], &ch, &ss) < 0) {
        *failure = MP_SASL_F_INVALID_MECHANISM;
        goto out;
    }
    char *extra = NULL;
    *failure = 0;
    r = mp_sasl_step(ss, b64, (size_t)n, &extra, failure);
    free(extra);
    if (r == MP_SASL_PENDING) /* XEP-0078 is rare: its check runs inline */
        r = mp_sasl_check_now(ss, failure);
    const char *who = r == MP_SASL_SUCCESS ? mp_sasl_username(ss) : mp_sasl_attempted_user(ss);
    if (who)
        snprintf(attempted, att_cap, "%s", who);
    if (r == MP_SASL_SUCCESS)
        snprintf(node, node_cap, "%s", who ? who : "");
    if (r == MP_SASL_SUCCESS && !who)
        r = MP_SASL_FAILURE; /* cannot happen: PLAIN names a user */
    if (r != MP_SASL_SUCCESS && !*failure)
        *failure = MP_SASL_F_NOT_AUTHORIZED;
out:
    if (ss)
        mp_sasl_session_free(ss);
    if (msg)
        OPENSSL_cleanse(msg, msg_len);
    if (b64)
        OPENSSL_cleanse(b64, b64_cap);
    free(msg);
    free(b64);
    return r;
}

static void
legacy_set(mp_core *core, mp_cstream *s, const char *id, const char *from, const mp_xnode *q)
{
    const char *user = field_text(q, "username");
    const char *password = field_text(q, "password");
    const char *resource = field_text(q, "resource");
    /* XEP-0078 §3: every field is required; digest is not offered (we keep no password). */
    if (!user || !password || !resource) {
        mp_cstream_iq_reply(core, s, id, from, "modify", "not-acceptable", NULL);
        return;
    }
    char res[MP_JID_PART_MAX + 1];
    if (mp_jid_resourceprep(resource, strlen(resource), res, sizeof res) <= 0) {
        mp_cstream_iq_reply(core, s, id, from, "modify", "not-acceptable", NULL);
        return;
    }
    const char *host = core->cfg->hosts[s->host];
    char account[2 * MP_JID_PART_MAX + 2];
    char named[MP_JID_PART_MAX + 1];
    /* The throttle keys on the prepared account; refuse before any password work. */
    int nl = mp_jid_nodeprep(user, strlen(user), named, sizeof named);
    snprintf(account, sizeof account, "%s@%s", nl > 0 ? named : "", host);
    if (mp_throttle_check(core, s->ip, nl > 0 ? account : NULL)) {
        mp_info("conn %016llx (%s): too many failed logins, refusing for now",
                (unsigned long long)s->conn, s->ip);
        mp_cstream_iq_reply(core, s, id, from, "wait", "policy-violation", NULL);
        return;
    }
    char node[MP_JID_PART_MAX + 1], attempted[MP_JID_PART_MAX + 1];
    int failure = 0;
    int r = check_password(core, s, user, password, node, sizeof node, attempted, sizeof attempted,
                           &failure);
    if (r != MP_SASL_SUCCESS) {
        if (failure == MP_SASL_F_INVALID_MECHANISM) {
            /* PLAIN switched off in sasl.mechanisms: so is this. */
            mp_cstream_iq_reply(core, s, id, from, "cancel", "service-unavailable", NULL);
            return;
        }
        if (failure == MP_SASL_F_TEMPORARY_AUTH_FAILURE) {
            mp_cstream_iq_reply(core, s, id, from, "wait", "internal-server-error", NULL);
            return;
        }
        snprintf(account, sizeof account, "%s@%s", attempted, host);
        int delay = mp_throttle_failure(core, s->ip, attempted[0] ? account : NULL);
        core->stats.auth_failed++;
        mp_info("conn %016llx (%s): legacy authentication failed (%s)", (unsigned long long)s->conn,
                s->ip, mp_sasl_failure_name(failure));
        delayed_iq_error(core, s, id, from, "auth", "not-authorized", delay);
        return;
    }
    snprintf(account, sizeof account, "%s@%s", node, host);
    s->node = strdup(node);
    if (!s->node) {
        mp_core_close_stream(core, s, "resource-constraint", NULL);
        return;
    }
    mp_throttle_success(core, account);
    const char *etype, *cond;
    if (bind_session(core, s, res, &etype, &cond) < 0) {
        /* The password was right but the session is refused: not logged in, may retry. */
        free(s->node);
        s->node = NULL;
        mp_cstream_iq_reply(core, s, id, from, etype, cond, NULL);
        return;
    }
    mp_info("conn %016llx (%s): authenticated %s with legacy auth (XEP-0078)",
            (unsigned long long)s->conn, s->ip, account);
    core->stats.auth_ok++;
    free(s->cb);
    s->cb = NULL;
    s->cb_len = 0;
    mp_buf *b = &core->scratch;
    if (iq_reply_build(b, id, from, NULL, NULL, NULL) < 0) {
        mp_core_close_stream(core, s, "resource-constraint", NULL);
        return;
    }
    /* Authenticated and bound in one step, no stream restart: MP_LF_BOUND on a stream the mux
     * still counts as unauthenticated also lifts its pre-authentication limits. */
    mp_core_send_frame(core, s->link, MP_LF_BOUND, s->conn, s->full, s->full_len, b->data, b->len);
}

int
mp_cstream_preauth_iq(mp_core *core, mp_cstream *s, const mp_xnode *iq, const char **id,
                      const char **from, int *get)
{
    const char *type = mp_xnode_attr(iq, "type");
    *id = mp_xnode_attr(iq, "id");
    /* Addressed to the server (the XEP examples do): answer from it, clients match on that. */
    *from = mp_xnode_attr(iq, "to") ? core->cfg->hosts[s->host] : NULL;
    if (!*id || !type) {
        mp_core_close_stream(core, s, "not-authorized", NULL);
        return MP_EINVAL;
    }
    *get = strcmp(type, "get") == 0;
    if (!*get && strcmp(type, "set") != 0) {
        if (strcmp(type, "result") != 0 && strcmp(type, "error") != 0)
            mp_cstream_iq_reply(core, s, *id, *from, "modify", "bad-request", NULL);
        return MP_EINVAL;
    }
    return 0;
}

/* <iq/> with <query xmlns='jabber:iq:auth'/> before authentication. */
static void
legacy_auth(mp_core *core, mp_cstream *s, const mp_xnode *iq, const mp_xnode *q)
{
    const mp_config *cfg = core->cfg;
    const char *id, *from;
    int get;
    if (mp_cstream_preauth_iq(core, s, iq, &id, &from, &get) < 0)
        return;
    if (!cfg->legacy_auth) {
        mp_cstream_iq_reply(core, s, id, from, "cancel", "service-unavailable", NULL);
        return;
    }
    /* Not before TLS when TLS is required: the password would travel in clear. Nothing sent
     * is looked at, so a wrong password cannot be told from a right one here. */
    if (cfg->tls_required && !s->tls) {
        mp_cstream_iq_reply(core, s, id, from, "cancel", "not-allowed", NULL);
        return;
    }
    if (!get) {
        legacy_set(core, s, id, from, q);
        return;
    }
    /* XEP-0078 §3 example 2: the fields a set must carry; no <digest/>. */
    const char *user = field_text(q, "username");
    mp_buf p = {0};
    int rc = mp_buf_puts(&p, "<query xmlns='" NS_IQ_AUTH "'>");
    if (user) {
        rc |= mp_buf_puts(&p, "<username>");
        rc |= mp_xml_escape_text(&p, user, strlen(user));
        rc |= mp_buf_puts(&p, "</username>");
    } else {
        rc |= mp_buf_puts(&p, "<username/>");
    }
    rc |= mp_buf_puts(&p, "<password/><resource/></query>");
    rc |= mp_buf_append(&p, "", 1); /* a C string for mp_cstream_iq_reply */
    if (rc < 0)
        mp_cstream_iq_reply(core, s, id, from, "wait", "resource-constraint", NULL);
    else
        mp_cstream_iq_reply(core, s, id, from, NULL, NULL, p.data);
    mp_buf_free(&p);
}

void
mp_cstream_unbind(mp_core *core, mp_cstream *s)
{
    mp_user *u = s->user;
    if (!u)
        return;
    mp_privacy_unbind(core, s);
    for (mp_cstream **pp = &u->resources; *pp; pp = &(*pp)->next_res) {
        if (*pp == s) {
            *pp = s->next_res;
            break;
        }
    }
    u->count--;
    core->stats.sessions--;
    s->user = NULL;
    if (!u->resources) {
        mp_htab_remove(&core->users, &u->by_bare);
        free(u);
    }
}

/* ---- elements before a session is bound, and nonzas after ---- */

void
mp_cstream_element(mp_core *core, mp_cstream *s, const mp_frame *f)
{
    if (s->state == CS_BOUND && f->el_kind != 0) {
        if (s->sm)
            mp_sm_handled(s);
        mp_route_stanza(core, s, f);
        return;
    }
    mp_xnode *el = NULL;
    int rc = mp_xml_parse(core->parser, &core->arena, "jabber:client", mp_frame_payload(f),
                          f->payload_len, &el);
    if (rc < 0) {
        mp_core_close_stream(core, s, rc == MP_ENOMEM ? "resource-constraint" : "not-well-formed",
                             NULL);
        return;
    }
    int sasl_ns = strcmp(el->ns, NS_SASL) == 0;
    if (s->state != CS_PREAUTH && strcmp(el->ns, MP_NS_SM3) == 0) {
        mp_sm_element(core, s, el); /* may free s */
        return;
    }
    switch (s->state) {
    case CS_PREAUTH: {
        const mp_xnode *reg =
            f->el_kind == MP_EL_IQ ? mp_xnode_child(el, "jabber:iq:register", "query") : NULL;
        const mp_xnode *lauth =
            f->el_kind == MP_EL_IQ ? mp_xnode_child(el, NS_IQ_AUTH, "query") : NULL;
        if (sasl_ns)
            sasl_element(core, s, el);
        else if (reg)
            mp_register_preauth(core, s, el, reg);
        else if (lauth)
            legacy_auth(core, s, el, lauth);
        else
            mp_core_close_stream(core, s, "not-authorized", NULL);
        return;
    }
    case CS_AUTHED: {
        const mp_xnode *bind = f->el_kind == MP_EL_IQ ? mp_xnode_child(el, NS_BIND, "bind") : NULL;
        if (bind)
            bind_resource(core, s, el, bind);
        else
            mp_core_close_stream(core, s, "not-authorized", NULL);
        return;
    }
    default:
        break;
    }
    /* Bound, and not a stanza. */
    if (mp_csi_element(core, s, el))
        return; /* XEP-0352 <active/>, <inactive/> */
    if (strcmp(el->ns, "jabber:client") == 0 || sasl_ns) {
        /* SASL is never offered again after success (RFC 6120 §6.4.8). */
        mp_core_close_stream(core, s, "unsupported-stanza-type", NULL);
        return;
    }
    mp_debug("conn %016llx: dropped unknown nonza {%s}%s", (unsigned long long)s->conn, el->ns,
             el->name);
}
