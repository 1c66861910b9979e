/* XEP-0411 bookmark conversion, both ways, so that clients of XEP-0402 (PEP node
 * urn:xmpp:bookmarks:1, one item per room, item id = the room's JID) and of XEP-0048 (one
 * <storage xmlns='storage:bookmarks'/> document in XEP-0049 private storage) see the same rooms.
 * <url/> bookmarks exist only in the legacy document and are kept there. */
#include "modules/pubsub/bookmarks.h"
#include "modules/pubsub/pubsub.h"
#include "router/core.h"
#include "base/err.h"
#include "base/log.h"

#include <string.h>

#define KIND_PRIVATE "private"

static int
is_true(const char *v)
{
    return v && (strcmp(v, "true") == 0 || strcmp(v, "1") == 0);
}

static mp_xnode *
text_child(mp_arena *a, mp_xnode *parent, const char *ns, const char *name, const mp_xnode *from)
{
    if (!from)
        return parent;
    mp_xnode *n = mp_xnode_new(a, ns, name);
    if (!n || mp_xnode_set_text(a, n, from->text, from->text_len) < 0)
        return NULL;
    mp_xnode_append(parent, n);
    return parent;
}

/* <conference xmlns='urn:xmpp:bookmarks:1'/> from a legacy <conference jid/> and back. */
static mp_xnode *
conference_convert(mp_arena *a, const mp_xnode *c, const char *to_ns, const char *jid)
{
    mp_xnode *n = mp_xnode_new(a, to_ns, "conference");
    const char *name = mp_xnode_attr(c, "name");
    if (!n || (jid && mp_xnode_set_attr(a, n, "jid", jid) < 0) ||
        (name && mp_xnode_set_attr(a, n, "name", name) < 0) ||
        mp_xnode_set_attr(a, n, "autojoin",
                          is_true(mp_xnode_attr(c, "autojoin")) ? "true" : "false") < 0)
        return NULL;
    if (!text_child(a, n, to_ns, "nick", mp_xnode_child(c, NULL, "nick")) ||
        !text_child(a, n, to_ns, "password", mp_xnode_child(c, NULL, "password")))
        return NULL;
    return n;
}

typedef struct to_legacy {
    ps_ctx *cx;
    mp_xnode *storage;
} to_legacy;

static int
legacy_item(const mp_ps_item *it, void *ud)
{
    to_legacy *tl = ud;
    mp_xnode *p = NULL;
    if (!it->len)
        return 0;
    int rc =
        mp_xml_parse(tl->cx->pm->parser, tl->cx->arena, "jabber:client", it->payload, it->len, &p);
    if (rc == MP_ENOMEM)
        return rc;
    if (rc < 0 || strcmp(p->name, "conference") != 0 || strcmp(p->ns, PS_NS_BOOKMARKS) != 0)
        return 0;
    mp_xnode *c = conference_convert(tl->cx->arena, p, PS_NS_LEGACY_BOOKMARKS, it->id);
    if (!c)
        return MP_ENOMEM;
    mp_xnode_append(tl->storage, c);
    return 0;
}

void
ps_bookmarks_to_private(ps_ctx *cx)
{
    ps_module *pm = cx->pm;
    if (pm->syncing)
        return; /* the change came from private storage */
    const char *at = strchr(cx->service, '@');
    if (!at)
        return;
    mp_arena *a = cx->arena;
    const char *node = mp_arena_strndup(a, cx->service, (size_t)(at - cx->service));
    const char *domain = at + 1;
    mp_store *st = mp_core_store(pm->core);
    mp_xnode *storage = mp_xnode_new(a, PS_NS_LEGACY_BOOKMARKS, "storage");
    if (!node || !storage)
        return;
    /* the legacy document's <url/> bookmarks stay */
    mp_buf old = {0};
    if (st->ops->blob_get(st, domain, node, KIND_PRIVATE, PS_NS_LEGACY_BOOKMARKS, &old) == 0) {
        mp_xnode *doc = NULL;
        if (mp_xml_parse(pm->parser, a, "jabber:client", (const char *)old.data, old.len, &doc) ==
            0) {
            for (mp_xnode *c = doc->children, *next; c; c = next) {
                next = c->next;
                if (strcmp(c->name, "url") == 0) {
                    c->next = NULL;
                    mp_xnode_append(storage, c);
                }
            }
        }
    }
    mp_buf_free(&old);
    to_legacy tl = {cx, storage};
    int rc = st->ops->ps_item_get(st, cx->service, PS_NS_BOOKMARKS, NULL, 0, legacy_item, &tl);
    mp_buf doc = {0};
    if (rc == 0 || rc == MP_ENOTFOUND)
        rc = mp_xnode_serialize(&doc, storage, "jabber:client");
    if (rc == 0)
        rc = st->ops->blob_put(st, domain, node, KIND_PRIVATE, PS_NS_LEGACY_BOOKMARKS,
                               (const char *)doc.data, doc.len);
    mp_buf_free(&doc);
    if (rc < 0)
        mp_warn("bookmarks of %s: legacy document not updated: %s", cx->service, mp_strerror(rc));
}

/* ---- from private storage ---- */

typedef struct held {
    const char *id;
    const char *payload;
    int keep;
} held;

typedef struct held_list {
    mp_arena *a;
    held *v;
    size_t n, cap;
} held_list;

static int
hold_item(const mp_ps_item *it, void *ud)
{
    held_list *hl = ud;
    if (hl->n == hl->cap) {
        size_t cap = hl->cap ? 2 * hl->cap : 16;
        held *v = mp_arena_alloc(hl->a, cap * sizeof *v);
        if (!v)
            return MP_ENOMEM;
        if (hl->n)
            memcpy(v, hl->v, hl->n * sizeof *v);
        hl->v = v;
        hl->cap = cap;
    }
    held *h = &hl->v[hl->n];
    h->id = mp_arena_strndup(hl->a, it->id, strlen(it->id));
    h->payload = mp_arena_strndup(hl->a, it->payload, it->len);
    h->keep = 0;
    if (!h->id || !h->payload)
        return MP_ENOMEM;
    hl->n++;
    return 0;
}

static int
sync_from(ps_ctx *cx, const mp_xnode *storage)
{
    mp_store *st = mp_core_store(cx->pm->core);
    ps_node n;
    int rc = ps_node_load(cx, PS_NS_BOOKMARKS, &n);
    if (rc == MP_ENOTFOUND) {
        /* XEP-0402 §3: the node's configuration */
        n.name = PS_NS_BOOKMARKS;
        ps_config_defaults(&n.cfg, 1, &cx->pm->lim);
        n.cfg.access_model = PS_ACCESS_WHITELIST;
        n.cfg.max_items = cx->pm->lim.max_items;
        n.cfg.send_last = PS_SEND_NEVER;
        n.cfg.persist_items = 1;
        rc = ps_create_node(cx, PS_NS_BOOKMARKS, &n.cfg);
    }
    if (rc < 0)
        return rc;
    held_list hl = {cx->arena, NULL, 0, 0};
    if ((rc = st->ops->ps_item_get(st, cx->service, PS_NS_BOOKMARKS, NULL, 0, hold_item, &hl)) < 0)
        return rc;
    mp_buf b = {0};
    for (const mp_xnode *c = storage->children; c && rc >= 0; c = c->next) {
        const char *jid = mp_xnode_attr(c, "jid");
        if (strcmp(c->name, "conference") != 0 || !jid || !jid[0])
            continue;
        mp_xnode *p = conference_convert(cx->arena, c, PS_NS_BOOKMARKS, NULL);
        if (!p) {
            rc = MP_ENOMEM;
            break;
        }
        b.len = 0;
        if ((rc = mp_xnode_serialize(&b, p, "jabber:client")) < 0)
            break;
        int same = 0;
        for (size_t i = 0; i < hl.n; i++)
            if (strcmp(hl.v[i].id, jid) == 0) {
                hl.v[i].keep = 1;
                same =
                    strlen(hl.v[i].payload) == b.len && memcmp(hl.v[i].payload, b.data, b.len) == 0;
            }
        if (!same)
            rc = ps_publish_item(cx, &n, jid, p);
    }
    mp_buf_free(&b);
    for (size_t i = 0; i < hl.n && rc >= 0; i++)
        if (!hl.v[i].keep)
            rc = ps_retract_item(cx, &n, hl.v[i].id, 1);
    return rc;
}

void
mp_pubsub_bookmarks_from_private(struct mp_core *core, const char *domain, const char *node,
                                 const mp_xnode *storage)
{
    ps_module *pm = ps_module_get(core);
    if (!pm)
        return;
    int rc = ps_as_account(pm, domain, node, &pm->syncing, sync_from, storage);
    if (rc < 0)
        mp_warn("bookmarks of %s@%s: PEP items not updated: %s", node, domain, mp_strerror(rc));
}
