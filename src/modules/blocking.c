/* XEP-0191 blocking command. The blocklist is a view of the default privacy list (XEP-0016):
 * its items of type jid, action deny and no child element. Blocking with no default list
 * creates one ("Blocked contacts") and makes it the default, as ejabberd does, so privacy
 * list clients and blocking clients always see the same thing. */
#include "magpie/module.h"
#include "router/privacy.h"
#include "base/config.h"
#include "router/core.h"
#include "base/err.h"
#include "base/log.h"
#include "xmpp/jid.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int
internal(mp_iq *iq)
{
    return mp_iq_error(iq, "wait", "internal-server-error");
}

static int
blocklist_get(mp_iq *iq, void *ud)
{
    if (!mp_iq_is_own(iq))
        return mp_iq_error(iq, "auth", "forbidden");
    mp_privacy *p = mp_privacy_account(iq->core, iq->conn);
    if (!p || mp_privacy_block_interest(iq->core, iq->conn) < 0)
        return internal(iq);
    mp_xnode *q = mp_xnode_new(iq->arena, MP_NS_BLOCKING, "blocklist");
    if (!q)
        return internal(iq);
    for (size_t i = 0; p->def && i < p->def->nitems; i++) {
        const mp_privacy_item *it = &p->def->items[i];
        if (!mp_privacy_item_is_block(it))
            continue;
        mp_xnode *x = mp_xnode_new(iq->arena, MP_NS_BLOCKING, "item");
        if (!x || mp_xnode_set_attr(iq->arena, x, "jid", it->value) < 0)
            return internal(iq);
        mp_xnode_append(q, x);
    }
    return mp_iq_result(iq, q);
}

/* The JIDs of the request's <item jid='...'/>, prepared, in iq->arena. Returns how many, or
 * a negative code after answering the IQ. */
static int
request_jids(mp_iq *iq, const char ***out)
{
    size_t n = 0;
    for (const mp_xnode *c = iq->payload->children; c; c = c->next)
        n++;
    const char **jids = n ? mp_arena_alloc(iq->arena, n * sizeof *jids) : NULL;
    if (n && !jids) {
        internal(iq);
        return MP_ENOMEM;
    }
    size_t k = 0;
    for (const mp_xnode *c = iq->payload->children; c; c = c->next) {
        const char *v = mp_xnode_attr(c, "jid");
        if (strcmp(c->ns, MP_NS_BLOCKING) != 0 || strcmp(c->name, "item") != 0 || !v) {
            mp_iq_error(iq, "modify", "bad-request");
            return MP_EINVAL;
        }
        mp_jid j;
        char full[MP_JID_MAX];
        if (mp_jid_prep(v, strlen(v), &j) < 0 || mp_jid_full(&j, full, sizeof full) < 0) {
            mp_iq_error(iq, "modify", "jid-malformed");
            return MP_EINVAL;
        }
        if (!(jids[k++] = mp_arena_strndup(iq->arena, full, strlen(full)))) {
            internal(iq);
            return MP_ENOMEM;
        }
    }
    *out = jids;
    return (int)k;
}

static int
listed(const char *const *jids, int n, const char *jid)
{
    for (int i = 0; i < n; i++)
        if (strcmp(jids[i], jid) == 0)
            return 1;
    return 0;
}

static int
is_blocked(const mp_privacy_list *l, const char *jid)
{
    for (size_t i = 0; l && i < l->nitems; i++)
        if (mp_privacy_item_is_block(&l->items[i]) && strcmp(l->items[i].value, jid) == 0)
            return 1;
    return 0;
}

static mp_xnode *
block_item_xml(mp_arena *a, const char *jid)
{
    mp_xnode *x = mp_xnode_new(a, MP_NS_PRIVACY, "item");
    if (!x || mp_xnode_set_attr(a, x, "type", "jid") < 0 ||
        mp_xnode_set_attr(a, x, "value", jid) < 0 || mp_xnode_set_attr(a, x, "action", "deny") < 0)
        return NULL;
    return x;
}

/* Rebuild the default list as XML: the JIDs to block first, then the old items except the
 * block items of the JIDs to unblock (all of them when unblock_all), numbered 1, 2, ... in
 * that order. Then it replaces the old list in place. */
static int
rebuild(mp_iq *iq, mp_privacy *p, const char *const *block, int nblock, const char *const *unblock,
        int nunblock, int unblock_all)
{
    mp_arena *a = iq->arena;
    const mp_privacy_list *old = p->def;
    mp_xnode *list = mp_xnode_new(a, MP_NS_PRIVACY, "list");
    if (!list || mp_xnode_set_attr(a, list, "name", old ? old->name : MP_PRIVACY_BLOCKED_LIST) < 0)
        return MP_ENOMEM;
    for (int i = 0; i < nblock; i++) {
        if (listed(block, i, block[i]))
            continue;
        mp_xnode *x = block_item_xml(a, block[i]);
        if (!x)
            return MP_ENOMEM;
        mp_xnode_append(list, x);
    }
    mp_xnode *all = old ? mp_privacy_list_xml(a, old, 1) : NULL;
    if (old && !all)
        return MP_ENOMEM;
    for (size_t i = 0; old && i < old->nitems; i++) {
        mp_xnode *x = all->children;
        all->children = x->next;
        const mp_privacy_item *it = &old->items[i];
        if (mp_privacy_item_is_block(it) && (unblock_all || listed(unblock, nunblock, it->value) ||
                                             listed(block, nblock, it->value)))
            continue;
        mp_xnode_append(list, x);
    }
    unsigned order = 1;
    for (mp_xnode *x = list->children; x; x = x->next) {
        char o[16];
        snprintf(o, sizeof o, "%u", order++);
        if (mp_xnode_set_attr(a, x, "order", o) < 0)
            return MP_ENOMEM;
    }
    mp_privacy_list *l;
    int rc = mp_privacy_list_parse(list, &l);
    if (rc < 0)
        return rc;
    if (l->nitems > (size_t)mp_core_config(iq->core)->privacy_max_items) {
        mp_privacy_list_free(l);
        return MP_ELIMIT;
    }
    p->def = mp_privacy_put(p, l);
    return mp_privacy_save(iq->core, iq->conn);
}

/* The change goes to privacy clients as a list push, to blocklist clients as the block or
 * unblock element with the prepared JIDs (none: unblock all). */
static void
push_change(mp_iq *iq, const mp_privacy *p, const char *what, const char *const *jids, int n)
{
    mp_privacy_push_list(iq->core, iq->conn, p->def->name);
    mp_xnode *el = mp_xnode_new(iq->arena, MP_NS_BLOCKING, what);
    for (int i = 0; el && i < n; i++) {
        mp_xnode *x = mp_xnode_new(iq->arena, MP_NS_BLOCKING, "item");
        if (!x || mp_xnode_set_attr(iq->arena, x, "jid", jids[i]) < 0)
            return;
        mp_xnode_append(el, x);
    }
    mp_buf b = {0};
    if (el && mp_xnode_serialize(&b, el, "jabber:client") == 0)
        mp_privacy_push_blocklist(iq->core, iq->conn, b.data, b.len);
    mp_buf_free(&b);
}

static int
block_set(mp_iq *iq, void *ud)
{
    if (!mp_iq_is_own(iq))
        return mp_iq_error(iq, "auth", "forbidden");
    const char **jids;
    int n = request_jids(iq, &jids);
    if (n < 0)
        return 0;
    if (n == 0) /* §3.2: nothing to block */
        return mp_iq_error(iq, "modify", "bad-request");
    mp_privacy *p = mp_privacy_account(iq->core, iq->conn);
    if (!p)
        return internal(iq);
    /* The default list may be named "Blocked contacts" already without being the default. */
    if (!p->def && mp_privacy_find(p, MP_PRIVACY_BLOCKED_LIST))
        p->def = mp_privacy_find(p, MP_PRIVACY_BLOCKED_LIST);
    /* Only the newly blocked get unavailable presence. */
    int *fresh = mp_arena_alloc(iq->arena, (size_t)n * sizeof *fresh);
    if (!fresh)
        return internal(iq);
    for (int i = 0; i < n; i++)
        fresh[i] = !is_blocked(p->def, jids[i]) && !listed(jids, i, jids[i]);
    int rc = rebuild(iq, p, jids, n, NULL, 0, 0);
    if (rc == MP_ELIMIT) /* privacy.max_items */
        return mp_iq_error(iq, "modify", "not-acceptable");
    if (rc < 0)
        return internal(iq);
    mp_iq_result(iq, NULL);
    push_change(iq, p, "block", jids, n);
    for (int i = 0; i < n; i++)
        if (fresh[i])
            mp_privacy_send_unavailable(iq->core, iq->conn, jids[i]); /* §3.3 */
    return 0;
}

static int
unblock_set(mp_iq *iq, void *ud)
{
    if (!mp_iq_is_own(iq))
        return mp_iq_error(iq, "auth", "forbidden");
    const char **jids;
    int n = request_jids(iq, &jids);
    if (n < 0)
        return 0;
    mp_privacy *p = mp_privacy_account(iq->core, iq->conn);
    if (!p)
        return internal(iq);
    if (!p->def)
        return mp_iq_result(iq, NULL); /* nothing is blocked */
    /* Who gets our presence back (§3.4): the JIDs that were blocked. */
    size_t was = 0;
    for (size_t i = 0; i < p->def->nitems; i++)
        was += mp_privacy_item_is_block(&p->def->items[i]);
    const char **freed = was ? mp_arena_alloc(iq->arena, was * sizeof *freed) : NULL;
    size_t nfreed = 0;
    for (size_t i = 0; freed && i < p->def->nitems; i++) {
        const mp_privacy_item *it = &p->def->items[i];
        if (mp_privacy_item_is_block(it) && (n == 0 || listed(jids, n, it->value)))
            freed[nfreed++] = mp_arena_strndup(iq->arena, it->value, strlen(it->value));
    }
    if (rebuild(iq, p, NULL, 0, jids, n, n == 0) < 0)
        return internal(iq);
    mp_iq_result(iq, NULL);
    push_change(iq, p, "unblock", jids, n);
    for (size_t i = 0; i < nfreed; i++)
        if (freed[i])
            mp_privacy_send_presence(iq->core, iq->conn, freed[i]);
    return 0;
}

static int
blocking_load(mp_module *m)
{
    int rc = mp_module_feature(m, MP_NS_BLOCKING);
    if (rc == 0)
        rc = mp_module_iq(m, MP_IQ_GET, MP_TARGET_ACCOUNT, MP_NS_BLOCKING, "blocklist",
                          blocklist_get, NULL);
    if (rc == 0)
        rc =
            mp_module_iq(m, MP_IQ_SET, MP_TARGET_ACCOUNT, MP_NS_BLOCKING, "block", block_set, NULL);
    if (rc == 0)
        rc = mp_module_iq(m, MP_IQ_SET, MP_TARGET_ACCOUNT, MP_NS_BLOCKING, "unblock", unblock_set,
                          NULL);
    return rc;
}

MP_MODULE(blocking, MP_ABI_1, blocking_load, NULL);
