/* XEP-0016 privacy lists: the jabber:iq:privacy protocol. The lists, their evaluation and
 * storage are the engine's (router/privacy.h); the default list is also what the blocking
 * command (XEP-0191) shows and edits, so a change here is pushed to both kinds of clients. */
#include "magpie/module.h"
#include "router/privacy.h"
#include "base/config.h"
#include "router/core.h"
#include "base/err.h"
#include "base/log.h"

#include <string.h>

static size_t
count_children(const mp_xnode *n)
{
    size_t k = 0;
    for (const mp_xnode *c = n->children; c; c = c->next)
        k++;
    return k;
}

static int
internal(mp_iq *iq)
{
    return mp_iq_error(iq, "wait", "internal-server-error");
}

/* The default list changed under blocklist clients: XEP-0191 has no push of the whole list,
 * so they get "everything unblocked" and then what is blocked now. */
static void
resync_blocklist(mp_iq *iq, const mp_privacy *p)
{
    mp_buf b = {0};
    mp_buf_puts(&b, "<unblock xmlns='" MP_NS_BLOCKING "'/>");
    mp_privacy_push_blocklist(iq->core, iq->conn, b.data, b.len);
    b.len = 0;
    mp_xnode *block = mp_xnode_new(iq->arena, MP_NS_BLOCKING, "block");
    size_t n = 0;
    for (size_t i = 0; block && p->def && i < p->def->nitems; i++) {
        const mp_privacy_item *it = &p->def->items[i];
        if (!mp_privacy_item_is_block(it))
            continue;
        mp_xnode *x = mp_xnode_new(iq->arena, MP_NS_BLOCKING, "item");
        if (!x || mp_xnode_set_attr(iq->arena, x, "jid", it->value) < 0)
            break;
        mp_xnode_append(block, x);
        n++;
    }
    if (n && mp_xnode_serialize(&b, block, "jabber:client") == 0)
        mp_privacy_push_blocklist(iq->core, iq->conn, b.data, b.len);
    mp_buf_free(&b);
}

static int
privacy_get(mp_iq *iq, void *ud)
{
    if (!mp_iq_is_own(iq))
        return mp_iq_error(iq, "auth", "forbidden");
    mp_privacy *p = mp_privacy_account(iq->core, iq->conn);
    if (!p)
        return internal(iq);
    size_t n = count_children(iq->payload);
    const mp_xnode *want = iq->payload->children;
    /* §2.3: one list at a time. */
    if (n > 1 || (n == 1 && strcmp(want->name, "list") != 0))
        return mp_iq_error(iq, "modify", "bad-request");
    mp_xnode *q = mp_xnode_new(iq->arena, MP_NS_PRIVACY, "query");
    if (!q)
        return internal(iq);
    if (n == 1) {
        const char *name = mp_xnode_attr(want, "name");
        mp_privacy_list *l = name ? mp_privacy_find(p, name) : NULL;
        if (!l)
            return mp_iq_error(iq, "cancel", "item-not-found");
        mp_xnode *x = mp_privacy_list_xml(iq->arena, l, 1);
        if (!x)
            return internal(iq);
        mp_xnode_append(q, x);
        return mp_iq_result(iq, q);
    }
    /* §2.2: the names, with the session's active list and the account's default. */
    const mp_privacy_list *active = mp_privacy_active(iq->core, iq->conn);
    if (active) {
        mp_xnode *a = mp_xnode_new(iq->arena, MP_NS_PRIVACY, "active");
        if (!a || mp_xnode_set_attr(iq->arena, a, "name", active->name) < 0)
            return internal(iq);
        mp_xnode_append(q, a);
    }
    if (p->def) {
        mp_xnode *d = mp_xnode_new(iq->arena, MP_NS_PRIVACY, "default");
        if (!d || mp_xnode_set_attr(iq->arena, d, "name", p->def->name) < 0)
            return internal(iq);
        mp_xnode_append(q, d);
    }
    for (const mp_privacy_list *l = p->lists; l; l = l->next) {
        mp_xnode *x = mp_privacy_list_xml(iq->arena, l, 0);
        if (!x)
            return internal(iq);
        mp_xnode_append(q, x);
    }
    return mp_iq_result(iq, q);
}

static int
set_active(mp_iq *iq, mp_privacy *p, const mp_xnode *el)
{
    const char *name = mp_xnode_attr(el, "name");
    mp_privacy_list *l = NULL;
    /* §2.5: no name declines the active list (the default applies again). */
    if (name && !(l = mp_privacy_find(p, name)))
        return mp_iq_error(iq, "cancel", "item-not-found");
    mp_privacy_set_active(iq->core, iq->conn, l);
    return mp_iq_result(iq, NULL);
}

static int
set_default(mp_iq *iq, mp_privacy *p, const mp_xnode *el)
{
    const char *name = mp_xnode_attr(el, "name");
    mp_privacy_list *l = NULL;
    if (name && !(l = mp_privacy_find(p, name)))
        return mp_iq_error(iq, "cancel", "item-not-found");
    if (l == p->def)
        return mp_iq_result(iq, NULL);
    /* §2.4, §2.6: another session applying the default list keeps it. */
    if (p->def && mp_privacy_in_use(iq->core, iq->conn, p->def))
        return mp_iq_error(iq, "cancel", "conflict");
    p->def = l;
    if (mp_privacy_save(iq->core, iq->conn) < 0)
        return internal(iq);
    resync_blocklist(iq, p);
    return mp_iq_result(iq, NULL);
}

static int
remove_list(mp_iq *iq, mp_privacy *p, const char *name)
{
    mp_privacy_list *l = mp_privacy_find(p, name);
    if (!l)
        return mp_iq_error(iq, "cancel", "item-not-found");
    /* §2.8: a list another session applies (actively or as its default) stays. */
    if (mp_privacy_in_use(iq->core, iq->conn, l))
        return mp_iq_error(iq, "cancel", "conflict");
    int was_default = p->def == l;
    if (mp_privacy_active(iq->core, iq->conn) == l)
        mp_privacy_set_active(iq->core, iq->conn, NULL);
    mp_privacy_remove(p, l);
    if (mp_privacy_save(iq->core, iq->conn) < 0)
        return internal(iq);
    mp_iq_result(iq, NULL);
    mp_privacy_push_list(iq->core, iq->conn, name);
    if (was_default)
        resync_blocklist(iq, p);
    return 0;
}

static int
set_list(mp_iq *iq, mp_privacy *p, const mp_xnode *el)
{
    const char *name = mp_xnode_attr(el, "name");
    if (!name || !*name)
        return mp_iq_error(iq, "modify", "bad-request");
    if (!el->children)
        return remove_list(iq, p, name);
    mp_privacy_list *l;
    int rc = mp_privacy_list_parse(el, &l);
    if (rc == MP_ENOMEM)
        return internal(iq);
    if (rc < 0)
        return mp_iq_error(iq, "modify", rc == MP_ELIMIT ? "not-acceptable" : "bad-request");
    const mp_config *cfg = mp_core_config(iq->core);
    size_t nlists = 0;
    for (const mp_privacy_list *o = p->lists; o; o = o->next)
        nlists++;
    if (l->nitems > (size_t)cfg->privacy_max_items ||
        (!mp_privacy_find(p, name) && nlists >= (size_t)cfg->privacy_max_lists)) {
        mp_privacy_list_free(l);
        return mp_iq_error(iq, "modify", "not-acceptable");
    }
    /* §2.6: editing a list in use is allowed; the sessions applying it get the new items. */
    l = mp_privacy_put(p, l);
    if (mp_privacy_save(iq->core, iq->conn) < 0)
        return internal(iq);
    mp_iq_result(iq, NULL);
    mp_privacy_push_list(iq->core, iq->conn, l->name);
    if (l == p->def)
        resync_blocklist(iq, p);
    return 0;
}

static int
privacy_set(mp_iq *iq, void *ud)
{
    if (!mp_iq_is_own(iq))
        return mp_iq_error(iq, "auth", "forbidden");
    /* §2.3: one change per set (active, default or one list). */
    if (count_children(iq->payload) != 1)
        return mp_iq_error(iq, "modify", "bad-request");
    const mp_xnode *el = iq->payload->children;
    if (strcmp(el->ns, MP_NS_PRIVACY) != 0)
        return mp_iq_error(iq, "modify", "bad-request");
    mp_privacy *p = mp_privacy_account(iq->core, iq->conn);
    if (!p)
        return internal(iq);
    if (strcmp(el->name, "active") == 0)
        return set_active(iq, p, el);
    if (strcmp(el->name, "default") == 0)
        return set_default(iq, p, el);
    if (strcmp(el->name, "list") == 0)
        return set_list(iq, p, el);
    return mp_iq_error(iq, "modify", "bad-request");
}

static int
privacy_load(mp_module *m)
{
    int rc = mp_module_feature(m, MP_NS_PRIVACY);
    if (rc == 0)
        rc = mp_module_iq(m, MP_IQ_GET, MP_TARGET_ACCOUNT, MP_NS_PRIVACY, "query", privacy_get,
                          NULL);
    if (rc == 0)
        rc = mp_module_iq(m, MP_IQ_SET, MP_TARGET_ACCOUNT, MP_NS_PRIVACY, "query", privacy_set,
                          NULL);
    return rc;
}

MP_MODULE(privacy, MP_ABI_1, privacy_load, NULL);
