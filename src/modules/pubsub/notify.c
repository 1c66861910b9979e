/* Event notifications (XEP-0060 §7.1.2, §7.2.2, §8.2.5, §8.4.2, §8.5.2) and, for PEP
 * (XEP-0163 §4.3), the implicit subscriptions of the owner's resources and of contacts whose
 * session asked for NODE+notify in its entity capabilities. A notification is serialized once
 * and delivered to each full JID at most once. */
#include "modules/pubsub/pubsub.h"
#include "modules/caps_cache.h"
#include "router/core.h"
#include "router/subscription.h"
#include "base/config.h"
#include "base/err.h"
#include "base/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
ps_deliver(ps_ctx *cx, const char *to, const mp_xnode *msg)
{
    mp_buf b = {0};
    int rc = mp_xnode_serialize(&b, msg, "jabber:client");
    if (rc == 0)
        rc = mp_core_deliver(cx->pm->core, cx->service, to, strlen(to), (const char *)b.data, b.len,
                             0);
    mp_buf_free(&b);
    return rc;
}

/* <message from=service type=... id=...><event xmlns=pubsub#event/></message> */
static mp_xnode *
event_message(ps_ctx *cx, const ps_node *n, mp_xnode **event)
{
    mp_arena *a = cx->arena;
    char id[32];
    ps_new_id(cx->pm, id, sizeof id);
    mp_xnode *m = mp_xnode_new(a, "jabber:client", "message");
    mp_xnode *ev = mp_xnode_new(a, PS_NS_EVENT, "event");
    if (!m || !ev || mp_xnode_set_attr(a, m, "from", cx->service) < 0 ||
        mp_xnode_set_attr(a, m, "type",
                          n->cfg.notification_type == PS_NOTIFY_NORMAL ? "normal" : "headline") <
            0 ||
        mp_xnode_set_attr(a, m, "id", id) < 0)
        return NULL;
    mp_xnode_append(m, ev);
    *event = ev;
    return m;
}

/* ---- fan-out ---- */

typedef struct fan {
    ps_ctx *cx;
    const ps_node *n;
    const char *bytes;
    size_t len;
    const char *notify_feature; /* PEP: "NODE+notify" */
    const char **sent;
    size_t nsent, cap;
} fan;

static int
already(fan *f, const char *full)
{
    for (size_t i = 0; i < f->nsent; i++)
        if (strcmp(f->sent[i], full) == 0)
            return 1;
    return 0;
}

static void
send_to(fan *f, const char *to)
{
    if (already(f, to))
        return;
    if (f->nsent == f->cap) {
        size_t cap = f->cap ? 2 * f->cap : 16;
        const char **v = mp_arena_alloc(f->cx->arena, cap * sizeof *v);
        if (!v)
            return;
        if (f->nsent)
            memcpy(v, f->sent, f->nsent * sizeof *v);
        f->sent = v;
        f->cap = cap;
    }
    const char *copy = mp_arena_strndup(f->cx->arena, to, strlen(to));
    if (!copy)
        return;
    f->sent[f->nsent++] = copy;
    int rc = mp_core_deliver(f->cx->pm->core, f->cx->service, to, strlen(to), f->bytes, f->len,
                             MP_DELIVER_NO_OFFLINE);
    if (rc < 0 && rc != MP_ENOTFOUND)
        mp_debug("pubsub %s: notification to %s: %s", f->cx->service, to, mp_strerror(rc));
}

static void
each_resource(const char *full, int priority, void *ud)
{
    send_to(ud, full);
}

static void
each_notify_resource(const char *full, int priority, void *ud)
{
    fan *f = ud;
    if (mp_client_caps_has(f->cx->pm->core, full, f->notify_feature) == 1)
        send_to(f, full);
}

typedef struct jid_list {
    mp_arena *a;
    const char **v;
    size_t n, cap;
} jid_list;

static int
jid_list_add(jid_list *l, const char *jid)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        const char **v = mp_arena_alloc(l->a, cap * sizeof *v);
        if (!v)
            return MP_ENOMEM;
        if (l->n)
            memcpy(v, l->v, l->n * sizeof *v);
        l->v = v;
        l->cap = cap;
    }
    if (!(l->v[l->n] = mp_arena_strndup(l->a, jid, strlen(jid))))
        return MP_ENOMEM;
    l->n++;
    return 0;
}

static int
collect_sub(const mp_ps_sub *s, void *ud)
{
    if (s->state != MP_PS_SUB_SUBSCRIBED)
        return 0;
    ps_subopts o;
    ps_subopts_decode(&o, s->options);
    return o.deliver ? jid_list_add(ud, s->jid) : 0;
}

typedef struct contacts {
    jid_list l;
    const ps_node *n;
} contacts;

/* Contacts that receive the owner's presence and pass the node's access model. */
static int
collect_contact(const mp_roster_item *it, void *ud)
{
    contacts *c = ud;
    ps_who w = {MP_PS_AFF_NONE, it->state, ps_groups_match(&c->n->cfg, it->groups, it->ngroups), 0};
    if (!(it->state & MP_SUB_FROM) || (it->state & MP_SUB_HIDDEN))
        return 0;
    /* whitelist and authorize need an affiliation or a subscription: explicit subscribers */
    if (ps_may_read(&c->n->cfg, &w) != PS_ALLOW)
        return 0;
    return jid_list_add(&c->l, it->jid);
}

static void
fan_out(ps_ctx *cx, const ps_node *n, const mp_xnode *msg, int implicit)
{
    mp_buf b = {0};
    if (mp_xnode_serialize(&b, msg, "jabber:client") < 0) {
        mp_buf_free(&b);
        return;
    }
    fan f = {cx, n, (const char *)b.data, b.len, NULL, NULL, 0, 0};
    mp_core *core = cx->pm->core;
    mp_store *st = mp_core_store(core);
    jid_list subs = {cx->arena, NULL, 0, 0};
    if (st->ops->ps_sub_list(st, cx->service, n->name, NULL, collect_sub, &subs) < 0)
        mp_warn("pubsub %s: node %s: cannot read the subscriptions", cx->service, n->name);
    for (size_t i = 0; i < subs.n; i++) {
        const char *j = subs.v[i];
        if (strchr(j, '/') || mp_core_resources(core, j, NULL, NULL) <= 0)
            send_to(&f, j);
        else
            mp_core_resources(core, j, each_resource, &f);
    }
    if (cx->pep && implicit) {
        size_t fl = strlen(n->name) + sizeof "+notify";
        char *feat = mp_arena_alloc(cx->arena, fl);
        if (feat) {
            snprintf(feat, fl, "%s+notify", n->name);
            f.notify_feature = feat;
            mp_core_resources(core, cx->service, each_notify_resource, &f);
            const char *at = strchr(cx->service, '@');
            char *node = mp_arena_strndup(cx->arena, cx->service, (size_t)(at - cx->service));
            contacts c = {{cx->arena, NULL, 0, 0}, n};
            if (node && st->ops->roster_list(st, at + 1, node, collect_contact, &c, NULL) < 0)
                mp_warn("pubsub %s: cannot read the roster", cx->service);
            for (size_t i = 0; i < c.l.n; i++)
                mp_core_resources(core, c.l.v[i], each_notify_resource, &f);
        }
    }
    mp_buf_free(&b);
}

/* A deep copy of n under parent (names, namespaces, attributes and text are shared). */
static mp_xnode *
copy_tree(mp_arena *a, const mp_xnode *n, mp_xnode *parent)
{
    mp_xnode *c = mp_arena_alloc(a, sizeof *c);
    if (!c)
        return NULL;
    *c = *n;
    c->parent = parent;
    c->next = NULL;
    c->children = NULL;
    mp_xnode **tail = &c->children;
    for (const mp_xnode *k = n->children; k; k = k->next) {
        if (!(*tail = copy_tree(a, k, c)))
            return NULL;
        tail = &(*tail)->next;
    }
    return c;
}

static mp_xnode *
item_el(mp_arena *a, const char *id, const mp_xnode *payload, const char *publisher)
{
    mp_xnode *it = mp_xnode_new(a, PS_NS_EVENT, "item");
    if (!it || mp_xnode_set_attr(a, it, "id", id) < 0 ||
        (publisher && publisher[0] && mp_xnode_set_attr(a, it, "publisher", publisher) < 0))
        return NULL;
    if (payload) {
        /* the payload belongs to another tree (the request's): the serializer climbs parent
         * links, so it gets a copy of its own */
        mp_xnode *p = copy_tree(a, payload, it);
        if (!p)
            return NULL;
        it->children = p;
    }
    return it;
}

void
ps_notify_items(ps_ctx *cx, const ps_node *n, const char *id, const mp_xnode *payload,
                const char *publisher, int retract)
{
    if (!n->cfg.deliver_notifications)
        return;
    mp_xnode *ev;
    mp_xnode *m = event_message(cx, n, &ev);
    mp_xnode *items = m ? mp_xnode_new(cx->arena, PS_NS_EVENT, "items") : NULL;
    if (!items || mp_xnode_set_attr(cx->arena, items, "node", n->name) < 0)
        return;
    mp_xnode_append(ev, items);
    mp_xnode *it;
    if (retract) {
        it = mp_xnode_new(cx->arena, PS_NS_EVENT, "retract");
        if (!it || mp_xnode_set_attr(cx->arena, it, "id", id) < 0)
            return;
    } else {
        /* the publisher's bare JID, not its resource, on a PEP node */
        (void)publisher;
        it = item_el(cx->arena, id, n->cfg.deliver_payloads ? payload : NULL, NULL);
        if (!it)
            return;
    }
    mp_xnode_append(items, it);
    fan_out(cx, n, m, 1);
}

void
ps_notify_node(ps_ctx *cx, const ps_node *n, const char *what)
{
    mp_xnode *ev;
    mp_xnode *m = event_message(cx, n, &ev);
    mp_xnode *e = m ? mp_xnode_new(cx->arena, PS_NS_EVENT, what) : NULL;
    if (!e || mp_xnode_set_attr(cx->arena, e, "node", n->name) < 0)
        return;
    mp_xnode_append(ev, e);
    fan_out(cx, n, m, 0);
}

typedef struct last_item {
    ps_ctx *cx;
    mp_xnode *item;
} last_item;

static int
take_last(const mp_ps_item *it, void *ud)
{
    last_item *li = ud;
    mp_xnode *p = NULL;
    if (it->len) {
        int rc = mp_xml_parse(li->cx->pm->parser, li->cx->arena, "jabber:client", it->payload,
                              it->len, &p);
        if (rc == MP_ENOMEM)
            return rc;
    }
    li->item = item_el(li->cx->arena, it->id, p, NULL);
    return li->item ? 1 : MP_ENOMEM;
}

void
ps_send_last(ps_ctx *cx, const ps_node *n, const char *to)
{
    mp_store *st = mp_core_store(cx->pm->core);
    last_item li = {cx, NULL};
    if (!n->cfg.deliver_notifications || !n->cfg.persist_items)
        return;
    if (st->ops->ps_item_get(st, cx->service, n->name, NULL, 1, take_last, &li) < 0 || !li.item)
        return;
    if (!n->cfg.deliver_payloads)
        li.item->children = NULL;
    mp_xnode *ev;
    mp_xnode *m = event_message(cx, n, &ev);
    mp_xnode *items = m ? mp_xnode_new(cx->arena, PS_NS_EVENT, "items") : NULL;
    if (!items || mp_xnode_set_attr(cx->arena, items, "node", n->name) < 0)
        return;
    mp_xnode_append(ev, items);
    mp_xnode_append(items, li.item);
    ps_deliver(cx, to, m);
}

/* ---- hooks ---- */

typedef struct node_names {
    jid_list l;
} node_names;

static int
collect_node(const char *node, const char *config, size_t len, void *ud)
{
    return jid_list_add(ud, node);
}

/* The last items of the PEP nodes of account `owner` that session `full` (of account `bare`)
 * should get: it advertised NODE+notify and the node's access model lets it read. */
static void
pep_last_items(ps_module *pm, const char *owner, const char *bare, const char *full)
{
    mp_arena a;
    mp_arena_init(&a, 4096);
    ps_ctx cx = {pm, &a, owner, 1, full, bare};
    mp_store *st = mp_core_store(pm->core);
    jid_list names = {&a, NULL, 0, 0};
    if (st->ops->ps_node_get(st, owner, NULL, collect_node, &names) < 0)
        goto out;
    for (size_t i = 0; i < names.n; i++) {
        size_t fl = strlen(names.v[i]) + sizeof "+notify";
        char *feat = mp_arena_alloc(&a, fl);
        if (!feat)
            break;
        snprintf(feat, fl, "%s+notify", names.v[i]);
        if (mp_client_caps_has(pm->core, full, feat) != 1)
            continue;
        ps_node n;
        ps_who w;
        if (ps_node_load(&cx, names.v[i], &n) < 0 || ps_who_of(&cx, &n, bare, &w) < 0)
            continue;
        if (n.cfg.send_last == PS_SEND_ON_SUB_AND_PRESENCE && ps_may_read(&n.cfg, &w) == PS_ALLOW)
            ps_send_last(&cx, &n, full);
    }
out:
    mp_arena_free(&a);
}

typedef struct to_contacts {
    jid_list l;
    const struct mp_config *cfg;
} to_contacts;

static int
collect_to(const mp_roster_item *it, void *ud)
{
    to_contacts *tc = ud;
    const char *at = strchr(it->jid, '@');
    if (!at || !(it->state & MP_SUB_TO) || (it->state & MP_SUB_HIDDEN) ||
        !mp_config_is_host(tc->cfg, at + 1, strlen(at + 1)))
        return 0;
    return jid_list_add(&tc->l, it->jid);
}

void
ps_on_caps(struct mp_core *core, const char *full, void *ud)
{
    ps_module *pm = ud;
    size_t bl = strcspn(full, "/");
    const char *at = memchr(full, '@', bl);
    if (!at)
        return;
    mp_arena a;
    mp_arena_init(&a, 2048);
    char *bare = mp_arena_strndup(&a, full, bl);
    char *node = mp_arena_strndup(&a, full, (size_t)(at - full));
    char *domain = mp_arena_strndup(&a, at + 1, (size_t)(full + bl - at - 1));
    if (!bare || !node || !domain)
        goto out;
    /* its own account's nodes, then those of every contact whose presence it receives */
    pep_last_items(pm, bare, bare, full);
    to_contacts tc = {{&a, NULL, 0, 0}, mp_core_config(core)};
    mp_store *st = mp_core_store(core);
    if (st->ops->roster_list(st, domain, node, collect_to, &tc, NULL) < 0)
        goto out;
    for (size_t i = 0; i < tc.l.n; i++)
        pep_last_items(pm, tc.l.v[i], bare, full);
out:
    mp_arena_free(&a);
}

typedef struct sub_nodes {
    jid_list l;
} sub_nodes;

static int
collect_sub_node(const mp_ps_sub *s, void *ud)
{
    return s->state == MP_PS_SUB_SUBSCRIBED ? jid_list_add(ud, s->node) : 0;
}

/* Subscribers of service nodes with send_last_published_item = on_sub_and_presence get the
 * last item when they come online (XEP-0060 §12.3). */
void
ps_on_presence(struct mp_core *core, const char *full, const mp_xnode *presence, int initial,
               void *ud)
{
    ps_module *pm = ud;
    if (!presence || !initial)
        return;
    size_t bl = strcspn(full, "/");
    mp_arena a;
    mp_arena_init(&a, 2048);
    char *bare = mp_arena_strndup(&a, full, bl);
    mp_store *st = mp_core_store(core);
    char svc[1100];
    for (int h = 0; bare && mp_component_jid(core, pm->label, h, svc, sizeof svc); h++) {
        ps_ctx cx = {pm, &a, svc, 0, full, bare};
        jid_list nodes = {&a, NULL, 0, 0};
        /* bare and full subscriptions both count */
        if (st->ops->ps_sub_list(st, svc, NULL, bare, collect_sub_node, &nodes) < 0 ||
            st->ops->ps_sub_list(st, svc, NULL, full, collect_sub_node, &nodes) < 0)
            continue;
        for (size_t i = 0; i < nodes.n; i++) {
            ps_node n;
            if (ps_node_load(&cx, nodes.v[i], &n) == 0 &&
                n.cfg.send_last == PS_SEND_ON_SUB_AND_PRESENCE)
                ps_send_last(&cx, &n, full);
        }
    }
    mp_arena_free(&a);
}
