/* XEP-0313 Message Archive Management for accounts: preferences, the query form, queries with
 * XEP-0059 paging and XEP-0431 full-text search. The archiving itself happens on the routing
 * path (router/archive.c), which this module switches on. */
#include "magpie/module.h"
#include "modules/mam_query.h"
#include "router/archive.h"
#include "router/core.h"
#include "storage/store.h"
#include "base/config.h"
#include "base/err.h"
#include "base/log.h"
#include "xmpp/jid.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PREFS_MAX 1000 /* JIDs on the always and never lists together */

static const char *const mode_names[] = {"always", "never", "roster"};

/* The requester's own archive only: XEP-0313 §4.1.1. */
static int
owner_of(mp_iq *iq, const char **node, const char **domain)
{
    if (!mp_iq_is_own(iq)) {
        mp_iq_error(iq, "auth", "forbidden");
        return MP_EAUTH;
    }
    if (mp_iq_account_of(iq, iq->from, node, domain) < 0) {
        mp_iq_error(iq, "wait", "internal-server-error");
        return MP_ENOMEM;
    }
    return 0;
}

static mp_xnode *
child_text(mp_arena *a, mp_xnode *parent, const char *ns, const char *name, const char *text)
{
    mp_xnode *n = mp_xnode_new(a, ns, name);
    if (!n || (text && mp_xnode_set_text(a, n, text, strlen(text)) < 0))
        return NULL;
    mp_xnode_append(parent, n);
    return n;
}

/* ---- preferences (§6.1) ---- */

typedef struct prefs_out {
    mp_iq *iq;
    mp_xnode *prefs;
} prefs_out;

static int
prefs_build(const mp_archive_prefs *p, void *ud)
{
    prefs_out *o = ud;
    mp_arena *a = o->iq->arena;
    mp_xnode *q = mp_xnode_new(a, MP_NS_MAM, "prefs");
    mp_xnode *al = mp_xnode_new(a, MP_NS_MAM, "always");
    mp_xnode *nv = mp_xnode_new(a, MP_NS_MAM, "never");
    if (!q || !al || !nv || p->default_mode < 0 || p->default_mode > 2 ||
        mp_xnode_set_attr(a, q, "default", mode_names[p->default_mode]) < 0)
        return MP_ENOMEM;
    mp_xnode_append(q, al);
    mp_xnode_append(q, nv);
    for (size_t i = 0; i < p->nalways; i++)
        if (!child_text(a, al, MP_NS_MAM, "jid", p->always[i]))
            return MP_ENOMEM;
    for (size_t i = 0; i < p->nnever; i++)
        if (!child_text(a, nv, MP_NS_MAM, "jid", p->never[i]))
            return MP_ENOMEM;
    o->prefs = q;
    return 0;
}

static int
prefs_reply(mp_iq *iq, const char *node, const char *domain)
{
    mp_store *st = mp_core_store(iq->core);
    prefs_out o = {.iq = iq};
    int rc = st->ops->archive_prefs_get(st, domain, node, prefs_build, &o);
    if (rc == MP_ENOTFOUND) {
        mp_archive_prefs dflt = {.default_mode = mp_core_config(iq->core)->mam_default};
        rc = prefs_build(&dflt, &o);
    }
    if (rc < 0 || !o.prefs)
        return mp_iq_error(iq, "wait", "internal-server-error");
    return mp_iq_result(iq, o.prefs);
}

static int
prefs_get(mp_iq *iq, void *ud)
{
    const char *node, *domain;
    if (owner_of(iq, &node, &domain) < 0)
        return 0;
    return prefs_reply(iq, node, domain);
}

/* The prepared JIDs of <jid/> children of list (NULL: none) into v from *n on. */
static int
jid_list(mp_iq *iq, const mp_xnode *list, const char **v, size_t *n)
{
    for (const mp_xnode *c = list ? list->children : NULL; c; c = c->next) {
        if (strcmp(c->ns, MP_NS_MAM) != 0 || strcmp(c->name, "jid") != 0)
            continue;
        mp_jid j;
        char buf[3 * MP_JID_PART_MAX + 3];
        if (*n >= PREFS_MAX)
            return MP_ELIMIT;
        if (mp_jid_prep(c->text, c->text_len, &j) < 0 || mp_jid_full(&j, buf, sizeof buf) < 0)
            return MP_EINVAL;
        if (!(v[(*n)++] = mp_arena_strndup(iq->arena, buf, strlen(buf))))
            return MP_ENOMEM;
    }
    return 0;
}

static int
prefs_set(mp_iq *iq, void *ud)
{
    const char *node, *domain;
    if (owner_of(iq, &node, &domain) < 0)
        return 0;
    const char *dflt = mp_xnode_attr(iq->payload, "default");
    mp_archive_prefs p = {.default_mode = -1};
    for (int i = 0; dflt && i < 3; i++)
        if (strcmp(dflt, mode_names[i]) == 0)
            p.default_mode = i;
    if (p.default_mode < 0)
        return mp_iq_error(iq, "modify", "bad-request");
    const char **v = mp_arena_alloc(iq->arena, 2 * PREFS_MAX * sizeof *v);
    if (!v)
        return mp_iq_error(iq, "wait", "internal-server-error");
    int rc = jid_list(iq, mp_xnode_child(iq->payload, MP_NS_MAM, "always"), v, &p.nalways);
    p.never = v + PREFS_MAX;
    if (rc == 0)
        rc =
            jid_list(iq, mp_xnode_child(iq->payload, MP_NS_MAM, "never"), v + PREFS_MAX, &p.nnever);
    p.always = v;
    if (rc == MP_EINVAL)
        return mp_iq_error(iq, "modify", "jid-malformed");
    if (rc == MP_ELIMIT)
        return mp_iq_error(iq, "modify", "not-acceptable");
    if (rc < 0)
        return mp_iq_error(iq, "wait", "internal-server-error");
    mp_store *st = mp_core_store(iq->core);
    rc = st->ops->archive_prefs_put(st, domain, node, &p);
    if (rc < 0) {
        mp_err("archive of %s@%s: cannot store preferences: %s", node, domain, mp_strerror(rc));
        return mp_iq_error(iq, "wait", "internal-server-error");
    }
    return prefs_reply(iq, node, domain);
}

/* ---- the query form (§5.1) and queries (§4), shared with room archives ---- */

static int
form_get(mp_iq *iq, void *ud)
{
    const char *node, *domain;
    if (owner_of(iq, &node, &domain) < 0)
        return 0;
    return mp_mam_form_reply(iq);
}

static int
query_set(mp_iq *iq, void *ud)
{
    const char *node, *domain;
    if (owner_of(iq, &node, &domain) < 0)
        return 0;
    /* the results come from the requester's bare JID, the archive's */
    const char *owner = mp_arena_strndup(iq->arena, iq->from, strcspn(iq->from, "/"));
    if (!owner)
        return mp_iq_error(iq, "wait", "internal-server-error");
    return mp_mam_query_reply(iq, domain, node, owner);
}

static int
mam_load(mp_module *m)
{
    int rc = mp_module_iq(m, MP_IQ_GET, MP_TARGET_ACCOUNT, MP_NS_MAM, "prefs", prefs_get, NULL);
    if (rc == 0)
        rc = mp_module_iq(m, MP_IQ_SET, MP_TARGET_ACCOUNT, MP_NS_MAM, "prefs", prefs_set, NULL);
    if (rc == 0)
        rc = mp_module_iq(m, MP_IQ_GET, MP_TARGET_ACCOUNT, MP_NS_MAM, "query", form_get, NULL);
    if (rc == 0)
        rc = mp_module_iq(m, MP_IQ_SET, MP_TARGET_ACCOUNT, MP_NS_MAM, "query", query_set, NULL);
    if (rc == 0)
        rc = mp_module_feature(m, MP_NS_MAM);
    if (rc == 0)
        rc = mp_module_feature(m, MP_NS_SID);
    if (rc == 0)
        rc = mp_archive_enable(mp_module_core(m), 1);
    return rc;
}

static void
mam_unload(mp_module *m)
{
    mp_archive_enable(mp_module_core(m), 0);
}

MP_MODULE(mam, MP_ABI_1, mam_load, mam_unload);
