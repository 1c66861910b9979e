/* Push notifications (XEP-0357). A client registers an app server (jid, node, optional
 * publish-options) with <enable/>; while none of the account's sessions can take a message
 * (stored offline, queued for a stream-management session waiting to resume, or said in a
 * members-only room the account is an offline member of) the server publishes a summary to
 * each registration: how many messages since the account was last available, who sent the
 * last one, and its body only when the site (push.include_body) or the user (the include-body
 * field of the publish-options, if push.body_opt_in) allowed it. Bursts are coalesced: at most
 * one publish per registration per push.min_interval_ms. An error from the app server (other
 * than type 'wait') removes the registration (§6).
 *
 * The registrations of an account are one document in storage (kind "push", key ""), kept in
 * memory once read while the account has any. */
#include "modules/push.h"
#include "magpie/module.h"
#include "router/core.h"
#include "storage/store.h"
#include "base/config.h"
#include "base/err.h"
#include "base/htab.h"
#include "base/log.h"
#include "xmpp/jid.h"

#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define KIND_PUSH "push"
#define PUSH_TIMEOUT_MS 30000

typedef struct pacct pacct;

typedef struct preg {
    struct preg *next;
    char *jid, *node;
    char *options; /* the publish-options form, NULL when none */
    size_t olen;
    int want_body;
    unsigned count;     /* messages notified since the account was last available */
    unsigned unsent;    /* of which no publish went out yet (coalesced) */
    char *last_from;    /* sender of the last one */
    char *last_body;    /* its body, NULL when none (or encrypted) */
    uint64_t last_push; /* loop time of the last publish, 0: none yet */
} preg;

struct pacct {
    mp_hnode h;
    preg *regs;
    char bare[];
};

typedef struct push_state {
    struct push_state *next_state;
    mp_core *core;
    mp_htab accts;
    mp_xml_parser *parser;
    mp_arena arena;
    uv_timer_t timer;
    uint64_t timer_due; /* loop time the timer fires at, 0 when idle */
    unsigned inflight;
    int closing;
    int timer_closing; /* uv_close of the timer not called back yet: the state must stay */
} push_state;

/* An answer's way back to its registration (which may be gone by then). */
typedef struct pctx {
    push_state *st;
    char *bare, *jid, *node;
} pctx;

static push_state *states;

static uint64_t
hkey(const char *s)
{
    return mp_hash_str(s, strlen(s));
}

static void
reg_free(preg *r)
{
    free(r->jid);
    free(r->node);
    free(r->options);
    free(r->last_from);
    free(r->last_body);
    free(r);
}

static void
acct_free(push_state *st, pacct *a)
{
    mp_htab_remove(&st->accts, &a->h);
    while (a->regs) {
        preg *r = a->regs;
        a->regs = r->next;
        reg_free(r);
    }
    free(a);
}

static pacct *
acct_find(push_state *st, const char *bare)
{
    uint64_t h = hkey(bare);
    for (mp_hnode *n = mp_htab_find(&st->accts, h); n; n = mp_htab_next_same(n->next, h)) {
        pacct *a = mp_container_of(n, pacct, h);
        if (strcmp(a->bare, bare) == 0)
            return a;
    }
    return NULL;
}

/* Split "node@domain" into copies in ar. */
static int
split_bare(mp_arena *ar, const char *bare, const char **node, const char **domain)
{
    size_t len = strcspn(bare, "/");
    const char *at = memchr(bare, '@', len);
    if (!at)
        return MP_EINVAL;
    *node = mp_arena_strndup(ar, bare, (size_t)(at - bare));
    *domain = mp_arena_strndup(ar, at + 1, (size_t)(bare + len - at - 1));
    return *node && *domain ? 0 : MP_ENOMEM;
}

static preg *
reg_new(const char *jid, const char *node, const char *options, size_t olen, int want_body)
{
    preg *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->jid = strdup(jid);
    r->node = strdup(node);
    r->want_body = want_body;
    if (olen) {
        r->options = malloc(olen);
        if (r->options)
            memcpy(r->options, options, olen);
        r->olen = olen;
    }
    if (!r->jid || !r->node || (olen && !r->options)) {
        reg_free(r);
        return NULL;
    }
    return r;
}

/* Read the account's registrations from storage into a (appended). */
static int
acct_read(push_state *st, pacct *a)
{
    const char *node, *domain;
    mp_arena *ar = &st->arena;
    int rc = split_bare(ar, a->bare, &node, &domain);
    if (rc < 0)
        return rc;
    mp_store *store = mp_core_store(st->core);
    mp_buf doc = {0};
    rc = store->ops->blob_get(store, domain, node, KIND_PUSH, "", &doc);
    if (rc == MP_ENOTFOUND) {
        mp_buf_free(&doc);
        return 0;
    }
    mp_xnode *root = NULL;
    if (rc == 0)
        rc = mp_xml_parse(st->parser, ar, MP_NS_PUSH, doc.data, doc.len, &root);
    mp_buf_free(&doc);
    if (rc < 0) {
        mp_warn("push: registrations of %s unreadable: %s", a->bare, mp_strerror(rc));
        return rc;
    }
    preg **tail = &a->regs;
    mp_buf opts = {0};
    for (const mp_xnode *c = root->children; c; c = c->next) {
        const char *jid = mp_xnode_attr(c, "jid"), *pnode = mp_xnode_attr(c, "node");
        if (strcmp(c->name, "registration") != 0 || !jid || !pnode)
            continue;
        const mp_xnode *x = mp_xnode_child(c, MP_NS_DATA, "x");
        opts.len = 0;
        if (x && mp_xnode_serialize(&opts, x, MP_NS_PUBSUB) < 0) {
            rc = MP_ENOMEM;
            break;
        }
        const char *body = mp_xnode_attr(c, "body");
        preg *r = reg_new(jid, pnode, opts.data, opts.len, body && strcmp(body, "1") == 0);
        if (!r) {
            rc = MP_ENOMEM;
            break;
        }
        *tail = r;
        tail = &r->next;
    }
    mp_buf_free(&opts);
    return rc;
}

/* The account's registrations, read from storage the first time. NULL when it has none (and
 * create is 0), or on error. */
static pacct *
acct_get(push_state *st, const char *bare, int create)
{
    pacct *a = acct_find(st, bare);
    if (a)
        return a;
    size_t bl = strlen(bare) + 1;
    a = calloc(1, sizeof *a + bl);
    if (!a)
        return NULL;
    memcpy(a->bare, bare, bl);
    int rc = acct_read(st, a);
    mp_arena_reset(&st->arena);
    if (rc < 0 || (!a->regs && !create) || mp_htab_insert(&st->accts, &a->h, hkey(bare)) < 0) {
        while (a->regs) {
            preg *r = a->regs;
            a->regs = r->next;
            reg_free(r);
        }
        free(a);
        return NULL;
    }
    return a;
}

/* Write the account's registrations (none: the document goes); an account left with none is
 * forgotten. On failure too, so the next use reads what storage holds. */
static int
acct_save(push_state *st, pacct *a)
{
    const char *node, *domain;
    mp_arena *ar = &st->arena;
    mp_buf doc = {0};
    int rc = split_bare(ar, a->bare, &node, &domain);
    if (rc == 0 && a->regs) {
        mp_xnode *root = mp_xnode_new(ar, MP_NS_PUSH, "registrations");
        rc = root ? 0 : MP_ENOMEM;
        for (preg *r = a->regs; r && rc == 0; r = r->next) {
            mp_xnode *e = mp_xnode_new(ar, MP_NS_PUSH, "registration");
            if (!e || mp_xnode_set_attr(ar, e, "jid", r->jid) < 0 ||
                mp_xnode_set_attr(ar, e, "node", r->node) < 0 ||
                (r->want_body && mp_xnode_set_attr(ar, e, "body", "1") < 0)) {
                rc = MP_ENOMEM;
                break;
            }
            if (r->olen) {
                mp_xnode *x = NULL;
                rc = mp_xml_parse(st->parser, ar, MP_NS_PUSH, r->options, r->olen, &x);
                if (rc < 0)
                    break;
                mp_xnode_append(e, x);
            }
            mp_xnode_append(root, e);
        }
        if (rc == 0)
            rc = mp_xnode_serialize(&doc, root, "jabber:client");
    }
    if (rc == 0) {
        mp_store *store = mp_core_store(st->core);
        rc = store->ops->blob_put(store, domain, node, KIND_PUSH, "", doc.data ? doc.data : "",
                                  doc.len);
    }
    mp_buf_free(&doc);
    mp_arena_reset(ar);
    if (rc < 0)
        mp_warn("push: registrations of %s not stored: %s", a->bare, mp_strerror(rc));
    if (rc < 0 || !a->regs)
        acct_free(st, a);
    return rc;
}

static int
reg_matches(const preg *r, const char *jid, const char *node)
{
    return strcmp(r->jid, jid) == 0 && (!node || strcmp(r->node, node) == 0);
}

/* Remove the registrations of (jid, node); node NULL: all of jid. Returns how many went. */
static int
acct_remove(pacct *a, const char *jid, const char *node)
{
    int n = 0;
    for (preg **p = &a->regs; *p;) {
        preg *r = *p;
        if (reg_matches(r, jid, node)) {
            *p = r->next;
            reg_free(r);
            n++;
        } else {
            p = &r->next;
        }
    }
    return n;
}

/* ---- publishing ---- */

static void state_free(push_state *st);

/* An unloaded module's state goes once no answer and no timer close can reach it. */
static void
state_release(push_state *st)
{
    if (st->closing && st->inflight == 0 && !st->timer_closing)
        state_free(st);
}

static void
pctx_free(pctx *c)
{
    free(c->bare);
    free(c->jid);
    free(c->node);
    free(c);
}

static void
on_push_answer(mp_core *core, const mp_xnode *answer, void *ud)
{
    pctx *c = ud;
    push_state *st = c->st;
    st->inflight--;
    if (st->closing) {
        pctx_free(c);
        state_release(st);
        return;
    }
    const char *type = answer ? mp_xnode_attr(answer, "type") : NULL;
    if (!answer) {
        mp_debug("push: %s did not answer the notification for %s", c->jid, c->bare);
    } else if (type && strcmp(type, "error") == 0) {
        const mp_xnode *err = mp_xnode_child(answer, NULL, "error");
        const char *etype = err ? mp_xnode_attr(err, "type") : NULL;
        const mp_xnode *cond = err ? err->children : NULL;
        if (etype && strcmp(etype, "wait") == 0) {
            mp_info("push: %s is busy (%s), registration of %s kept", c->jid,
                    cond ? cond->name : "?", c->bare);
        } else {
            /* §6: the app server no longer wants them (item-not-found, not-authorized, ...) */
            pacct *a = acct_get(st, c->bare, 0);
            if (a && acct_remove(a, c->jid, c->node) > 0) {
                mp_info("push: %s answered %s; registration of %s removed", c->jid,
                        cond ? cond->name : "an error", c->bare);
                acct_save(st, a);
            }
        }
    }
    pctx_free(c);
}

static int
body_allowed(push_state *st, const preg *r)
{
    const mp_config *cfg = mp_core_config(st->core);
    return cfg->push_include_body || (cfg->push_body_opt_in && r->want_body);
}

static void
push_now(push_state *st, pacct *a, preg *r, uint64_t now)
{
    r->unsent = 0;
    r->last_push = now ? now : 1;
    mp_buf payload = {0};
    pctx *c = calloc(1, sizeof *c);
    int rc = MP_ENOMEM;
    if (c) {
        c->st = st;
        c->bare = strdup(a->bare);
        c->jid = strdup(r->jid);
        c->node = strdup(r->node);
    }
    if (c && c->bare && c->jid && c->node)
        rc = mp_push_payload(&payload, r->node, r->count, r->last_from,
                             body_allowed(st, r) ? r->last_body : NULL, r->options, r->olen);
    if (rc == 0)
        rc = mp_core_send_iq(st->core, a->bare, r->jid, "set", payload.data, payload.len,
                             PUSH_TIMEOUT_MS, on_push_answer, c);
    mp_buf_free(&payload);
    if (rc < 0) {
        mp_warn("push: notification of %s to %s not sent: %s", a->bare, r->jid, mp_strerror(rc));
        if (c)
            pctx_free(c);
        return;
    }
    st->inflight++;
    mp_debug("push: %s notified through %s (%u messages)", a->bare, r->jid, r->count);
}

static void on_timer(uv_timer_t *t);

static void
arm(push_state *st, uint64_t due)
{
    uint64_t now = uv_now(mp_core_loop(st->core));
    if (st->timer_due && st->timer_due <= due)
        return;
    st->timer_due = due;
    uv_timer_start(&st->timer, on_timer, due > now ? due - now : 0, 0);
}

/* Publish what is due; arm the timer for what is not yet. */
static void
flush(push_state *st)
{
    uint64_t now = uv_now(mp_core_loop(st->core));
    uint64_t interval = (uint64_t)mp_core_config(st->core)->push_min_interval_ms;
    uint64_t next = 0;
    for (size_t i = 0; i < st->accts.nbuckets; i++)
        for (mp_hnode *n = st->accts.buckets[i]; n; n = n->next) {
            pacct *a = mp_container_of(n, pacct, h);
            for (preg *r = a->regs; r; r = r->next) {
                if (!r->unsent)
                    continue;
                uint64_t due = r->last_push ? r->last_push + interval : now;
                if (due <= now)
                    push_now(st, a, r, now);
                else if (!next || due < next)
                    next = due;
            }
        }
    st->timer_due = 0;
    if (next)
        arm(st, next);
}

static void
on_timer(uv_timer_t *t)
{
    push_state *st = t->data;
    st->timer_due = 0;
    flush(st);
}

static void
push_offline(mp_core *core, const char *bare, const char *from, const char *bytes, size_t len,
             int why, void *ud)
{
    push_state *st = ud;
    mp_arena *ar = &st->arena;
    mp_xnode *msg = NULL;
    char *body = NULL;
    if (mp_xml_parse(st->parser, ar, "jabber:client", bytes, len, &msg) < 0 ||
        strcmp(msg->name, "message") != 0)
        goto out;
    const char *type = mp_xnode_attr(msg, "type");
    if (type && (strcmp(type, "error") == 0 || strcmp(type, "headline") == 0))
        goto out;
    int encrypted;
    const char *text = mp_push_message_text(msg, &encrypted);
    if (!text)
        goto out; /* chat states, receipts, markers: nothing to wake a phone for */
    /* acct_get reads storage through st->arena and resets it, which frees the block the message
     * was parsed into when it is a large one: the text must not live there past this point */
    if (text[0] && !(body = strdup(text)))
        goto out;
    pacct *a = acct_get(st, bare, 0);
    if (!a)
        goto out;
    uint64_t now = uv_now(mp_core_loop(core));
    uint64_t interval = (uint64_t)mp_core_config(core)->push_min_interval_ms;
    for (preg *r = a->regs; r; r = r->next) {
        char *f = from && from[0] ? strdup(from) : NULL;
        char *b = body ? strdup(body) : NULL;
        free(r->last_from);
        free(r->last_body);
        r->last_from = f;
        r->last_body = b;
        r->count++;
        r->unsent++;
        uint64_t due = r->last_push ? r->last_push + interval : now;
        if (due <= now)
            push_now(st, a, r, now);
        else
            arm(st, due);
    }
out:
    free(body);
    mp_arena_reset(ar);
}

/* A session of the account is available: what it missed is in front of the user now. */
static void
push_presence(mp_core *core, const char *full, const mp_xnode *presence, int initial, void *ud)
{
    push_state *st = ud;
    if (!presence || st->accts.count == 0)
        return;
    size_t bl = strcspn(full, "/");
    char *bare = strndup(full, bl);
    pacct *a = bare ? acct_find(st, bare) : NULL;
    free(bare);
    for (preg *r = a ? a->regs : NULL; r; r = r->next) {
        r->count = 0;
        r->unsent = 0;
        free(r->last_from);
        free(r->last_body);
        r->last_from = r->last_body = NULL;
    }
}

/* ---- enable / disable (§5) ---- */

static push_state *
state_of(mp_core *core)
{
    for (push_state *s = states; s; s = s->next_state)
        if (s->core == core && !s->closing)
            return s;
    return NULL;
}

static int
push_enable(mp_iq *iq, void *ud)
{
    push_state *st = ud;
    if (!mp_iq_is_own(iq))
        return mp_iq_error(iq, "auth", "forbidden");
    mp_push_enable e;
    int rc = mp_push_enable_read(iq->arena, iq->payload, &e);
    if (rc == MP_EINVAL)
        return mp_iq_error(iq, "modify", "bad-request");
    if (rc < 0)
        return mp_iq_error(iq, "wait", "internal-server-error");
    /* stored, and sent along with every notification: bounded */
    if (strlen(e.jid) + strlen(e.node) + e.options.len >
        mp_core_config(iq->core)->push_max_reg_size) {
        mp_buf_free(&e.options);
        return mp_iq_error(iq, "modify", "not-acceptable");
    }
    size_t bl = strcspn(iq->from, "/");
    char *bare = mp_arena_strndup(iq->arena, iq->from, bl);
    pacct *a = bare ? acct_get(st, bare, 1) : NULL;
    if (!a) {
        mp_buf_free(&e.options);
        return mp_iq_error(iq, "wait", "internal-server-error");
    }
    preg *r = a->regs;
    int n = 0;
    while (r && !reg_matches(r, e.jid, e.node)) {
        r = r->next;
        n++;
    }
    if (r) { /* enabling again replaces the form */
        preg *nr = reg_new(e.jid, e.node, e.options.data, e.options.len, e.want_body);
        if (nr) {
            free(r->options);
            r->options = nr->options;
            r->olen = nr->olen;
            r->want_body = nr->want_body;
            nr->options = NULL;
            reg_free(nr);
        }
        mp_buf_free(&e.options);
        if (!nr)
            return mp_iq_error(iq, "wait", "internal-server-error");
    } else {
        int full = n >= mp_core_config(iq->core)->push_max_registrations;
        r = full ? NULL : reg_new(e.jid, e.node, e.options.data, e.options.len, e.want_body);
        mp_buf_free(&e.options);
        if (!r) {
            if (!a->regs)
                acct_free(st, a);
            return mp_iq_error(iq, "wait", full ? "resource-constraint" : "internal-server-error");
        }
        r->next = a->regs;
        a->regs = r;
    }
    if (acct_save(st, a) < 0)
        return mp_iq_error(iq, "wait", "internal-server-error");
    mp_debug("push: %s enabled %s node %s", bare, e.jid, e.node);
    return mp_iq_result(iq, NULL);
}

static int
push_disable(mp_iq *iq, void *ud)
{
    push_state *st = ud;
    if (!mp_iq_is_own(iq))
        return mp_iq_error(iq, "auth", "forbidden");
    const char *jid = mp_xnode_attr(iq->payload, "jid");
    const char *node = mp_xnode_attr(iq->payload, "node");
    if (!jid || !jid[0])
        return mp_iq_error(iq, "modify", "bad-request");
    mp_jid *j = malloc(sizeof *j);
    char *pjid = NULL;
    int rc = j ? mp_jid_prep(jid, strlen(jid), j) : MP_ENOMEM;
    if (rc == 0) {
        size_t cap = j->node_len + j->domain_len + j->resource_len + 3;
        pjid = mp_arena_alloc(iq->arena, cap);
        rc = pjid ? mp_jid_full(j, pjid, cap) : MP_ENOMEM;
    }
    free(j);
    if (rc == MP_EINVAL)
        return mp_iq_error(iq, "modify", "jid-malformed");
    if (rc < 0)
        return mp_iq_error(iq, "wait", "internal-server-error");
    size_t bl = strcspn(iq->from, "/");
    char *bare = mp_arena_strndup(iq->arena, iq->from, bl);
    pacct *a = bare ? acct_get(st, bare, 0) : NULL;
    /* nothing registered with that app server is no error: it is disabled either way */
    if (a && acct_remove(a, pjid, node && node[0] ? node : NULL) > 0 && acct_save(st, a) < 0)
        return mp_iq_error(iq, "wait", "internal-server-error");
    return mp_iq_result(iq, NULL);
}

/* ---- module ---- */

static void
state_free(push_state *st)
{
    for (push_state **p = &states; *p; p = &(*p)->next_state)
        if (*p == st) {
            *p = st->next_state;
            break;
        }
    free(st);
}

static void
on_timer_closed(uv_handle_t *h)
{
    push_state *st = h->data;
    st->timer_closing = 0;
    state_release(st);
}

static void
push_unload(mp_module *m)
{
    push_state *st = state_of(mp_module_core(m));
    if (!st)
        return;
    for (size_t i = 0; i < st->accts.nbuckets; i++) {
        mp_hnode *n = st->accts.buckets[i];
        while (n) {
            mp_hnode *next = n->next;
            acct_free(st, mp_container_of(n, pacct, h));
            n = next;
        }
    }
    mp_htab_free(&st->accts);
    mp_xml_parser_free(st->parser);
    mp_arena_free(&st->arena);
    /* magpied closed every handle and ran the loop before unloading: the timer is closed. When
     * not (a failed start), the loop still holds the handle, which lives in st, until its close
     * callback */
    if (!uv_is_closing((uv_handle_t *)&st->timer)) {
        st->timer_closing = 1;
        uv_close((uv_handle_t *)&st->timer, on_timer_closed);
    }
    st->closing = 1;
    state_release(st);
}

static int
push_load(mp_module *m)
{
    push_state *st = calloc(1, sizeof *st);
    if (!st)
        return MP_ENOMEM;
    st->core = mp_module_core(m);
    st->parser = mp_xml_parser_new();
    mp_arena_init(&st->arena, 4096);
    if (!st->parser) {
        mp_arena_free(&st->arena);
        free(st);
        return MP_ENOMEM;
    }
    uv_timer_init(mp_core_loop(st->core), &st->timer);
    st->timer.data = st;
    uv_unref((uv_handle_t *)&st->timer); /* pending pushes never hold the server up */
    st->next_state = states;
    states = st;
    int rc = mp_module_feature(m, MP_NS_PUSH);
    if (rc == 0) /* XEP-0357 §5: clients look for it on their own bare JID */
        rc = mp_module_account_feature(m, MP_NS_PUSH);
    if (rc == 0)
        rc = mp_module_iq(m, MP_IQ_SET, MP_TARGET_ACCOUNT, MP_NS_PUSH, "enable", push_enable, st);
    if (rc == 0)
        rc = mp_module_iq(m, MP_IQ_SET, MP_TARGET_ACCOUNT, MP_NS_PUSH, "disable", push_disable, st);
    if (rc == 0)
        rc = mp_module_on_offline(m, push_offline, st);
    if (rc == 0)
        rc = mp_module_on_presence(m, push_presence, st);
    return rc; /* on failure the core unloads the module (push_unload frees st) */
}

MP_MODULE(push, MP_ABI_1, push_load, push_unload);
