/* In-band registration (XEP-0077). Before authentication the stream code hands us
 * <iq><query xmlns='jabber:iq:register'/></iq> to create accounts (when register.enabled);
 * after authentication the same namespace changes the account's password (§3.3) or cancels
 * the account (§3.2), served as IQ handlers for the account.
 *
 * Creation is counted per IP address over register.window in a small fixed table made on the
 * first registration attempt: it needs no timer, and an attacker with more than RATE_SLOTS
 * addresses gains nothing a per-address limit could have stopped anyway. Passwords are never
 * logged and their copies are wiped. */
#include "router/core_int.h"
#include "magpie/module.h"
#include "auth/accounts.h"
#include "base/config.h"
#include "base/err.h"
#include "base/log.h"
#include "xml/escape.h"
#include "xmpp/jid.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NS_REGISTER "jabber:iq:register"
#define PASSWORD_MAX 1024
#define RATE_SLOTS 1024

typedef struct reg_rate {
    char ip[46];
    uint64_t first_ms;
    int count;
} reg_rate;

struct mp_reg_rates {
    size_t n;
    reg_rate slot[RATE_SLOTS];
};

void
mp_register_free(mp_core *core)
{
    free(core->reg_rates);
    core->reg_rates = NULL;
}

/* The slot of ip with its window restarted if it has passed; a new slot (taking the oldest
 * one when the table is full) only when create is set. */
static reg_rate *
rate_find(mp_core *core, const char *ip, int create)
{
    uint64_t now = uv_now(core->loop);
    uint64_t window = (uint64_t)core->cfg->register_window * 1000;
    if (!core->reg_rates && create)
        core->reg_rates = calloc(1, sizeof *core->reg_rates);
    struct mp_reg_rates *t = core->reg_rates;
    if (!t)
        return NULL;
    reg_rate *oldest = NULL;
    for (size_t i = 0; i < t->n; i++) {
        reg_rate *r = &t->slot[i];
        if (strcmp(r->ip, ip) == 0) {
            if (now - r->first_ms > window) {
                r->first_ms = now;
                r->count = 0;
            }
            return r;
        }
        if (!oldest || r->first_ms < oldest->first_ms)
            oldest = r;
    }
    if (!create)
        return NULL;
    reg_rate *r = t->n < RATE_SLOTS ? &t->slot[t->n++] : oldest;
    snprintf(r->ip, sizeof r->ip, "%s", ip);
    r->first_ms = now;
    r->count = 0;
    return r;
}

static int
rate_exceeded(mp_core *core, const char *ip)
{
    reg_rate *r = rate_find(core, ip, 0);
    return r && r->count >= core->cfg->register_max_per_ip;
}

static void
rate_count(mp_core *core, const char *ip)
{
    reg_rate *r = rate_find(core, ip, 1);
    if (r)
        r->count++;
}

/* Characters, not bytes: a password's length as the user typed it. */
static size_t
utf8_chars(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            n++;
    return n;
}

/* Copy the <password/> text into pw (NUL-terminated). Returns 0, or MP_EINVAL when missing,
 * too short for register.min_password_length or too long. */
static int
password_of(mp_core *core, const mp_xnode *query, char *pw, size_t cap)
{
    const mp_xnode *p = mp_xnode_child(query, NS_REGISTER, "password");
    if (!p || p->text_len == 0 || p->text_len >= cap || memchr(p->text, '\0', p->text_len))
        return MP_EINVAL;
    if (utf8_chars(p->text, p->text_len) < (size_t)core->cfg->register_min_password)
        return MP_EINVAL;
    memcpy(pw, p->text, p->text_len);
    pw[p->text_len] = '\0';
    return 0;
}

/* The prepared <username/> into node; its length, or MP_EINVAL. */
static int
username_of(const mp_xnode *query, char *node, size_t cap)
{
    const mp_xnode *u = mp_xnode_child(query, NS_REGISTER, "username");
    if (!u || u->text_len == 0)
        return MP_EINVAL;
    return mp_jid_nodeprep(u->text, u->text_len, node, cap);
}

/* ---- before authentication: replies carry neither 'from' nor 'to' ---- */

static void
preauth_set(mp_core *core, mp_cstream *s, const char *id, const char *from, const mp_xnode *query)
{
    const mp_config *cfg = core->cfg;
    if (mp_xnode_child(query, NS_REGISTER, "remove")) {
        /* Cancelling needs to know whose account: log in first (§3.2). */
        mp_cstream_iq_reply(core, s, id, from, "auth", "not-authorized", NULL);
        return;
    }
    if (rate_exceeded(core, s->ip)) {
        mp_info("conn %016llx (%s): registration refused, too many from this address",
                (unsigned long long)s->conn, s->ip);
        mp_cstream_iq_reply(core, s, id, from, "wait", "resource-constraint", NULL);
        return;
    }
    char node[MP_JID_PART_MAX + 1];
    char pw[PASSWORD_MAX + 1];
    if (username_of(query, node, sizeof node) <= 0 || password_of(core, query, pw, sizeof pw) < 0) {
        mp_cstream_iq_reply(core, s, id, from, "modify", "not-acceptable", NULL);
        return;
    }
    const char *host = cfg->hosts[s->host];
    char jid[2 * MP_JID_PART_MAX + 2];
    snprintf(jid, sizeof jid, "%s@%s", node, host);
    int rc = mp_account_create(core->store, cfg, jid, pw);
    explicit_bzero(pw, sizeof pw);
    switch (rc) {
    case 0:
        rate_count(core, s->ip);
        mp_info("conn %016llx (%s): registered %s", (unsigned long long)s->conn, s->ip, jid);
        mp_cstream_iq_reply(core, s, id, from, NULL, NULL, NULL);
        return;
    case MP_EEXIST:
        mp_cstream_iq_reply(core, s, id, from, "cancel", "conflict", NULL);
        return;
    case MP_EINVAL:
        mp_cstream_iq_reply(core, s, id, from, "modify", "not-acceptable", NULL);
        return;
    default:
        mp_warn("conn %016llx (%s): registering %s failed: %s", (unsigned long long)s->conn, s->ip,
                jid, mp_strerror(rc));
        mp_cstream_iq_reply(core, s, id, from, "wait", "internal-server-error", NULL);
        return;
    }
}

void
mp_register_preauth(mp_core *core, mp_cstream *s, const mp_xnode *iq, const mp_xnode *query)
{
    const mp_config *cfg = core->cfg;
    const char *id, *from;
    int get;
    if (mp_cstream_preauth_iq(core, s, iq, &id, &from, &get) < 0)
        return;
    /* Not offered before TLS when TLS is required: the password would travel in clear. */
    if (!cfg->register_enabled || (cfg->tls_required && !s->tls)) {
        mp_cstream_iq_reply(core, s, id, from, "cancel", "not-allowed", NULL);
        return;
    }
    if (get) {
        mp_cstream_iq_reply(core, s, id, from, NULL, NULL,
                            "<query xmlns='" NS_REGISTER "'><instructions>Choose a username and "
                            "password to register with this server.</instructions><username/>"
                            "<password/></query>");
        return;
    }
    preauth_set(core, s, id, from, query);
}

/* ---- after authentication: the account's own registration ---- */

/* The stream that sent iq when it asks about its own account: no 'to', its bare JID, or
 * (as some clients do for their home server) the domain it logged in to. */
static mp_cstream *
own_stream(mp_iq *iq)
{
    mp_cstream *s = mp_core_stream(iq->core, iq->conn);
    if (!s || !s->full || !s->node)
        return NULL;
    if (iq->target == MP_TARGET_HOST)
        return strcmp(iq->to, iq->core->cfg->hosts[s->host]) == 0 ? s : NULL;
    return mp_iq_is_own(iq) ? s : NULL;
}

static int
own_get(mp_iq *iq, void *ud)
{
    (void)ud;
    mp_cstream *s = own_stream(iq);
    if (!s)
        return MP_ENOTFOUND;
    mp_xnode *q = mp_xnode_new(iq->arena, NS_REGISTER, "query");
    mp_xnode *reg = mp_xnode_new(iq->arena, NS_REGISTER, "registered");
    mp_xnode *user = mp_xnode_new(iq->arena, NS_REGISTER, "username");
    mp_xnode *pw = mp_xnode_new(iq->arena, NS_REGISTER, "password");
    if (!q || !reg || !user || !pw ||
        mp_xnode_set_text(iq->arena, user, s->node, strlen(s->node)) < 0)
        return mp_iq_error(iq, "wait", "resource-constraint");
    mp_xnode_append(q, reg);
    mp_xnode_append(q, user);
    mp_xnode_append(q, pw);
    return mp_iq_result(iq, q);
}

/* §3.2: the account goes, then every stream of it is closed with <not-authorized/>. */
static int
cancel_account(mp_iq *iq, mp_cstream *s)
{
    mp_core *core = iq->core;
    char bare[2 * MP_JID_PART_MAX + 2];
    size_t blen = s->bare_len < sizeof bare ? s->bare_len : sizeof bare - 1;
    memcpy(bare, s->full, blen);
    bare[blen] = '\0';
    int rc = mp_account_delete(core->store, core->cfg, bare);
    if (rc < 0 && rc != MP_ENOTFOUND) {
        mp_warn("conn %016llx (%s): cancelling %s failed: %s", (unsigned long long)s->conn, s->ip,
                bare, mp_strerror(rc));
        return mp_iq_error(iq, "wait", "internal-server-error");
    }
    mp_info("conn %016llx (%s): account %s cancelled in-band", (unsigned long long)s->conn, s->ip,
            bare);
    mp_iq_result(iq, NULL);
    /* The requester last, so that its result is on the wire before its stream closes. iq and
     * s must not be used after this: closing frees the stream. */
    mp_user *u;
    while ((u = mp_core_user(core, bare, blen)) != NULL && u->resources) {
        mp_cstream *o = u->resources;
        if (o == s && o->next_res)
            o = o->next_res;
        mp_core_close_stream(core, o, "not-authorized", NULL);
    }
    return 0;
}

static int
own_set(mp_iq *iq, void *ud)
{
    (void)ud;
    mp_core *core = iq->core;
    mp_cstream *s = own_stream(iq);
    if (!s)
        return MP_ENOTFOUND;
    if (mp_xnode_child(iq->payload, NS_REGISTER, "remove"))
        return cancel_account(iq, s);
    /* §3.3: a password change names the account's own username. */
    char node[MP_JID_PART_MAX + 1];
    int nlen = username_of(iq->payload, node, sizeof node);
    if (nlen <= 0 || !mp_xnode_child(iq->payload, NS_REGISTER, "password"))
        return mp_iq_error(iq, "modify", "bad-request");
    if (strcmp(node, s->node) != 0)
        return mp_iq_error(iq, "auth", "not-authorized");
    char pw[PASSWORD_MAX + 1];
    if (password_of(core, iq->payload, pw, sizeof pw) < 0)
        return mp_iq_error(iq, "modify", "not-acceptable");
    char bare[2 * MP_JID_PART_MAX + 2];
    snprintf(bare, sizeof bare, "%.*s", (int)s->bare_len, s->full);
    int rc = mp_account_passwd(core->store, core->cfg, bare, pw);
    explicit_bzero(pw, sizeof pw);
    if (rc == MP_EINVAL)
        return mp_iq_error(iq, "modify", "not-acceptable");
    if (rc < 0) {
        mp_warn("conn %016llx (%s): password change for %s failed: %s", (unsigned long long)s->conn,
                s->ip, bare, mp_strerror(rc));
        return mp_iq_error(iq, "wait", "internal-server-error");
    }
    mp_info("conn %016llx (%s): password changed for %s", (unsigned long long)s->conn, s->ip, bare);
    return mp_iq_result(iq, NULL);
}

/* The account's own jabber:iq:register IQs, after authentication. Always loaded: changing
 * one's password and cancelling one's account do not depend on register.enabled, which
 * only governs creating accounts before authentication. */
static int
register_load(mp_module *m)
{
    int targets = MP_TARGET_HOST | MP_TARGET_ACCOUNT;
    int rc = mp_module_iq(m, MP_IQ_GET, targets, NS_REGISTER, "query", own_get, NULL);
    if (rc == 0)
        rc = mp_module_iq(m, MP_IQ_SET, targets, NS_REGISTER, "query", own_set, NULL);
    return rc;
}

MP_MODULE(register, MP_ABI_1, register_load, NULL);
