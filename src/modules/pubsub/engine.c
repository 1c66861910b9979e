/* The XEP-0060 protocol over one service (the pubsub component or an account's PEP): node
 * lifecycle, items, subscriptions, affiliations, and the errors §5-§8 name. Everything is read
 * from and written to storage as it happens: a request costs a few indexed SQLite statements,
 * and nothing is lost at a restart. */
#include "modules/pubsub/pubsub.h"
#include "xmpp/avatar.h"
#include "router/core.h"
#include "router/subscription.h"
#include "base/config.h"
#include "base/err.h"
#include "base/log.h"
#include "base/rand.h"
#include "xml/escape.h"
#include "xmpp/dataform.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NS_STANZAS "urn:ietf:params:xml:ns:xmpp-stanzas"
/* RFC 7622 §3.1: three parts of at most 1023 bytes and their separators */
#define MAX_JID_LEN 3071

void
ps_new_id(ps_module *pm, char *out, size_t cap)
{
    char tok[17];
    mp_random_token(tok, 16);
    snprintf(out, cap, "%s", tok);
}

/* ---- errors ---- */

/* An error with a pubsub#errors condition (XEP-0060 §7-§8; app may be NULL: the stanza
 * condition alone), feature='' when one is named. */
static int
ps_error(mp_iq *iq, const char *type, const char *cond, const char *app, const char *feature)
{
    if (!app)
        return mp_iq_error(iq, type, cond);
    return mp_iq_error_app(iq, type, cond, PS_NS_ERRORS, app, "feature", feature);
}

static int
internal(ps_ctx *cx, mp_iq *iq, int rc, const char *what)
{
    mp_warn("pubsub %s: %s: %s", cx->service, what, mp_strerror(rc));
    return mp_iq_error(iq, "wait", "internal-server-error");
}

static int
deny(ps_ctx *cx, mp_iq *iq, int verdict)
{
    switch (verdict) {
    case PS_DENY_PRESENCE:
        return ps_error(iq, "auth", "not-authorized", "presence-subscription-required", NULL);
    case PS_DENY_GROUP:
        return ps_error(iq, "auth", "not-authorized", "not-in-roster-group", NULL);
    case PS_DENY_WHITELIST:
        return ps_error(iq, "cancel", "not-allowed", "closed-node", NULL);
    case PS_DENY_SUBSCRIBE:
        return ps_error(iq, "auth", "not-authorized", "not-subscribed", NULL);
    default:
        return mp_iq_error(iq, "auth", "forbidden");
    }
}

static int
unsupported(ps_ctx *cx, mp_iq *iq, const char *feature)
{
    return ps_error(iq, "cancel", "feature-not-implemented", "unsupported", feature);
}

/* ---- nodes ---- */

typedef struct node_load {
    ps_ctx *cx;
    ps_node *out;
    int rc;
} node_load;

static int
node_row(const char *node, const char *config, size_t len, void *ud)
{
    node_load *nl = ud;
    ps_ctx *cx = nl->cx;
    nl->out->name = mp_arena_strndup(cx->arena, node, strlen(node));
    if (!nl->out->name)
        return MP_ENOMEM;
    int rc = ps_config_decode(&nl->out->cfg, cx->pep, &cx->pm->lim, config, len, cx->pm->parser,
                              cx->arena);
    if (rc < 0) {
        /* a damaged configuration falls back to the defaults rather than losing the node */
        mp_warn("pubsub %s: node %s: stored configuration unreadable, using defaults", cx->service,
                node);
        ps_config_defaults(&nl->out->cfg, cx->pep, &cx->pm->lim);
    }
    return 0;
}

int
ps_node_load(ps_ctx *cx, const char *name, ps_node *out)
{
    mp_store *st = mp_core_store(cx->pm->core);
    node_load nl = {cx, out, 0};
    memset(out, 0, sizeof *out);
    return st->ops->ps_node_get(st, cx->service, name, node_row, &nl);
}

static int
node_save(ps_ctx *cx, const char *name, const ps_config *cfg, int create)
{
    mp_store *st = mp_core_store(cx->pm->core);
    mp_buf b = {0};
    int rc = ps_config_encode(cfg, cx->arena, &b);
    if (rc == 0)
        rc = st->ops->ps_node_put(st, cx->service, name, (const char *)b.data, b.len, create);
    mp_buf_free(&b);
    return rc;
}

int
ps_create_node(ps_ctx *cx, const char *name, const ps_config *cfg)
{
    mp_store *st = mp_core_store(cx->pm->core);
    int rc = node_save(cx, name, cfg, 1);
    if (rc == 0 && !cx->pep)
        rc = st->ops->ps_aff_put(st, cx->service, name, cx->from_bare, MP_PS_AFF_OWNER);
    if (rc < 0 && rc != MP_EEXIST)
        st->ops->ps_node_delete(st, cx->service, name);
    return rc;
}

/* ---- who is asking ---- */

typedef struct roster_look {
    const ps_config *cfg;
    int state;
    int in_group;
} roster_look;

static int
roster_row(const mp_roster_item *it, void *ud)
{
    roster_look *rl = ud;
    rl->state = it->state;
    rl->in_group = ps_groups_match(rl->cfg, it->groups, it->ngroups);
    return 0;
}

typedef struct owner_look {
    mp_arena *a;
    const char *jid;
} owner_look;

static int
find_owner(const mp_ps_aff *a, void *ud)
{
    owner_look *ol = ud;
    if (a->affiliation != MP_PS_AFF_OWNER || strchr(a->jid, '@') == NULL)
        return 0;
    ol->jid = mp_arena_strndup(ol->a, a->jid, strlen(a->jid));
    return ol->jid ? 1 : MP_ENOMEM;
}

static int
aff_of(const mp_ps_aff *a, void *ud)
{
    *(int *)ud = a->affiliation;
    return 1;
}

typedef struct sub_look {
    const char *bare;
    int subscribed;
    int count;
} sub_look;

/* Subscriptions of bare or any full JID of it. */
static int
sub_of(const mp_ps_sub *s, void *ud)
{
    sub_look *sl = ud;
    size_t n = strlen(sl->bare);
    if (strncmp(s->jid, sl->bare, n) != 0 || (s->jid[n] != '\0' && s->jid[n] != '/'))
        return 0;
    sl->count++;
    if (s->state == MP_PS_SUB_SUBSCRIBED)
        sl->subscribed = 1;
    return 0;
}

int
ps_who_of(ps_ctx *cx, const ps_node *n, const char *bare, ps_who *w)
{
    mp_store *st = mp_core_store(cx->pm->core);
    int rc;
    memset(w, 0, sizeof *w);
    w->roster = -1;
    const char *owner = NULL;
    if (cx->pep) {
        owner = cx->service;
        if (strcmp(bare, owner) == 0)
            w->affiliation = MP_PS_AFF_OWNER;
    }
    if (w->affiliation != MP_PS_AFF_OWNER) {
        rc = st->ops->ps_aff_list(st, cx->service, n->name, bare, aff_of, &w->affiliation);
        if (rc < 0)
            return rc;
    }
    if (!cx->pep && w->affiliation != MP_PS_AFF_OWNER) {
        /* presence and roster access on the service follow the first owner's roster */
        owner_look ol = {cx->arena, NULL};
        rc = st->ops->ps_aff_list(st, cx->service, n->name, NULL, find_owner, &ol);
        if (rc < 0)
            return rc;
        owner = ol.jid;
    }
    if (owner && w->affiliation != MP_PS_AFF_OWNER) {
        const char *at = strchr(owner, '@');
        char *onode = at ? mp_arena_strndup(cx->arena, owner, (size_t)(at - owner)) : NULL;
        if (onode) {
            roster_look rl = {&n->cfg, -1, 0};
            rc = st->ops->roster_get(st, at + 1, onode, bare, roster_row, &rl);
            if (rc < 0 && rc != MP_ENOTFOUND)
                return rc;
            w->roster = rl.state;
            w->in_group = rl.in_group;
        }
    }
    sub_look sl = {bare, 0, 0};
    rc = st->ops->ps_sub_list(st, cx->service, n->name, NULL, sub_of, &sl);
    if (rc < 0)
        return rc;
    w->subscribed = sl.subscribed;
    return 0;
}

static int
is_owner(ps_ctx *cx, const ps_node *n, int *rc)
{
    ps_who w;
    *rc = ps_who_of(cx, n, cx->from_bare, &w);
    return *rc == 0 && w.affiliation == MP_PS_AFF_OWNER;
}

/* ---- building answers ---- */

static mp_xnode *
el(mp_arena *a, mp_xnode *parent, const char *ns, const char *name)
{
    mp_xnode *n = mp_xnode_new(a, ns, name);
    if (n && parent)
        mp_xnode_append(parent, n);
    return n;
}

static int
attr(mp_arena *a, mp_xnode *n, const char *name, const char *value)
{
    return n && mp_xnode_set_attr(a, n, name, value) == 0 ? 0 : MP_ENOMEM;
}

/* The node attribute of an action element; NULL or "" both mean none. */
static const char *
node_attr(const mp_xnode *e)
{
    const char *n = mp_xnode_attr(e, "node");
    return n && n[0] ? n : NULL;
}

static int
load_or_answer(ps_ctx *cx, mp_iq *iq, const char *name, ps_node *n)
{
    int rc = ps_node_load(cx, name, n);
    if (rc == MP_ENOTFOUND)
        mp_iq_error(iq, "cancel", "item-not-found");
    else if (rc < 0)
        internal(cx, iq, rc, "node load");
    return rc;
}

/* ---- items ---- */

static int
count_owned(const mp_ps_aff *a, void *ud)
{
    if (a->affiliation == MP_PS_AFF_OWNER)
        (*(int *)ud)++;
    return 0;
}

static int
count_node(const char *node, const char *config, size_t len, void *ud)
{
    (*(int *)ud)++;
    return 0;
}

/* Nodes the requester owns in this service (PEP: all of the account's). */
static int
owned_nodes(ps_ctx *cx, int *count)
{
    mp_store *st = mp_core_store(cx->pm->core);
    *count = 0;
    if (cx->pep)
        return st->ops->ps_node_get(st, cx->service, NULL, count_node, count);
    return st->ops->ps_aff_list(st, cx->service, NULL, cx->from_bare, count_owned, count);
}

/* Who may create nodes: the account itself in PEP; local accounts on the service. */
static int
may_create(ps_ctx *cx)
{
    if (cx->pep)
        return strcmp(cx->from_bare, cx->service) == 0;
    const char *at = strchr(cx->from_bare, '@');
    return at && mp_config_is_host(mp_core_config(cx->pm->core), at + 1, strlen(at + 1));
}

/* PEP nodes whose items mirror other data of the account: XEP-0402 bookmarks (XEP-0411) and
 * XEP-0084 avatars (XEP-0398). After a publish, or after items went (retract, purge, delete). */
static void
pep_items_changed(ps_ctx *cx, const ps_node *n, int published, const mp_xnode *payload)
{
    if (!cx->pep)
        return;
    if (strcmp(n->name, PS_NS_BOOKMARKS) == 0)
        ps_bookmarks_to_private(cx);
    else if (strcmp(n->name, MP_NS_AVATAR_META) == 0 && published)
        ps_avatar_on_publish(cx, payload);
    else if (strcmp(n->name, MP_NS_AVATAR_META) == 0)
        ps_avatar_on_removed(cx);
}

int
ps_publish_item(ps_ctx *cx, const ps_node *n, const char *id, const mp_xnode *payload)
{
    mp_store *st = mp_core_store(cx->pm->core);
    int rc = 0;
    if (n->cfg.persist_items) {
        mp_buf b = {0};
        if (payload)
            rc = mp_xnode_serialize(&b, payload, "jabber:client");
        mp_ps_item it = {.node = n->name,
                         .id = id,
                         .publisher = cx->from,
                         .payload = (const char *)b.data,
                         .len = b.len,
                         .stamp = (int64_t)time(NULL)};
        if (rc == 0)
            rc = st->ops->ps_item_put(st, cx->service, n->name, &it, n->cfg.max_items);
        mp_buf_free(&b);
        if (rc < 0)
            return rc;
    }
    ps_notify_items(cx, n, id, payload, cx->from, 0);
    pep_items_changed(cx, n, 1, payload);
    return 0;
}

int
ps_retract_item(ps_ctx *cx, const ps_node *n, const char *id, int notify)
{
    mp_store *st = mp_core_store(cx->pm->core);
    int rc = st->ops->ps_item_delete(st, cx->service, n->name, id);
    if (rc < 0)
        return rc;
    if (notify)
        ps_notify_items(cx, n, id, NULL, NULL, 1);
    pep_items_changed(cx, n, 0, NULL);
    return 0;
}

static int
do_publish(ps_ctx *cx, mp_iq *iq, const mp_xnode *pub, const mp_xnode *opts)
{
    const char *name = node_attr(pub);
    if (!name)
        return ps_error(iq, "modify", "bad-request", "nodeid-required", NULL);
    const mp_xnode *item = NULL;
    int nitems = 0;
    for (const mp_xnode *c = pub->children; c; c = c->next)
        if (strcmp(c->name, "item") == 0 && strcmp(c->ns, PS_NS) == 0) {
            item = c;
            nitems++;
        }
    if (nitems > 1)
        return ps_error(iq, "modify", "bad-request", "invalid-payload", NULL);
    const mp_xnode *payload = item ? item->children : NULL;
    if (payload && payload->next)
        return ps_error(iq, "modify", "bad-request", "invalid-payload", NULL);
    const mp_xnode *optx = opts ? mp_xnode_child(opts, PS_NS_XDATA, "x") : NULL;
    if (opts && !optx)
        return mp_iq_error(iq, "modify", "bad-request");
    if (payload) {
        mp_buf b = {0};
        int rc = mp_xnode_serialize(&b, payload, "jabber:client");
        size_t len = b.len;
        mp_buf_free(&b);
        if (rc < 0)
            return internal(cx, iq, rc, "serialize");
        if (len > cx->pm->max_payload)
            return ps_error(iq, "modify", "not-acceptable", "payload-too-big", NULL);
    }

    ps_node n;
    int rc = ps_node_load(cx, name, &n);
    if (rc == MP_ENOTFOUND) {
        /* §7.1.4 auto-create, with the publish-options as its configuration (§7.1.5) */
        if (!may_create(cx))
            return cx->pep ? mp_iq_error(iq, "auth", "forbidden")
                           : mp_iq_error(iq, "cancel", "item-not-found");
        int owned;
        if ((rc = owned_nodes(cx, &owned)) < 0)
            return internal(cx, iq, rc, "count nodes");
        if (owned >= cx->pm->max_nodes)
            return mp_iq_error(iq, "wait", "resource-constraint");
        n.name = name;
        ps_config_defaults(&n.cfg, cx->pep, &cx->pm->lim);
        const char *bad;
        if (optx &&
            ps_config_apply(&n.cfg, optx, PS_FORM_PUBOPTS, &cx->pm->lim, cx->arena, &bad) < 0)
            return ps_error(iq, "cancel", "conflict", "precondition-not-met", NULL);
        rc = ps_create_node(cx, name, &n.cfg);
        if (rc < 0)
            return internal(cx, iq, rc, "auto-create");
    } else if (rc < 0) {
        return internal(cx, iq, rc, "node load");
    } else if (optx) {
        rc = ps_config_preconditions(&n.cfg, optx, &cx->pm->lim, cx->arena);
        if (rc < 0)
            return internal(cx, iq, rc, "preconditions");
        if (rc == 0)
            return ps_error(iq, "cancel", "conflict", "precondition-not-met", NULL);
    }
    ps_who w;
    if ((rc = ps_who_of(cx, &n, cx->from_bare, &w)) < 0)
        return internal(cx, iq, rc, "who");
    int v = ps_may_publish(&n.cfg, &w);
    if (v != PS_ALLOW)
        return deny(cx, iq, v);
    if (n.cfg.persist_items && n.cfg.deliver_payloads && !payload)
        return ps_error(iq, "modify", "bad-request", "payload-required", NULL);
    if (!n.cfg.persist_items && !n.cfg.deliver_payloads && payload)
        return ps_error(iq, "modify", "bad-request", "item-forbidden", NULL);
    char idbuf[32];
    const char *id = item ? mp_xnode_attr(item, "id") : NULL;
    if (id && strlen(id) > cx->pm->max_id_len)
        return mp_iq_error(iq, "modify", "not-acceptable");
    if (!id || !id[0]) {
        ps_new_id(cx->pm, idbuf, sizeof idbuf);
        id = idbuf;
    }
    if ((rc = ps_publish_item(cx, &n, id, payload)) < 0)
        return internal(cx, iq, rc, "publish");
    mp_xnode *ps = el(iq->arena, NULL, PS_NS, "pubsub");
    mp_xnode *p = el(iq->arena, ps, PS_NS, "publish");
    mp_xnode *it = el(iq->arena, p, PS_NS, "item");
    if (attr(iq->arena, p, "node", name) < 0 || attr(iq->arena, it, "id", id) < 0)
        return internal(cx, iq, MP_ENOMEM, "reply");
    return mp_iq_result(iq, ps);
}

typedef struct item_pub {
    const char *publisher;
} item_pub;

static int
item_publisher(const mp_ps_item *it, void *ud)
{
    item_pub *ip = ud;
    ip->publisher = strdup(it->publisher);
    return ip->publisher ? 0 : MP_ENOMEM;
}

static int
do_retract(ps_ctx *cx, mp_iq *iq, const mp_xnode *r)
{
    const char *name = node_attr(r);
    if (!name)
        return ps_error(iq, "modify", "bad-request", "nodeid-required", NULL);
    const mp_xnode *item = mp_xnode_child(r, PS_NS, "item");
    const char *id = item ? mp_xnode_attr(item, "id") : NULL;
    if (!id || !id[0])
        return ps_error(iq, "modify", "bad-request", "item-required", NULL);
    ps_node n;
    if (load_or_answer(cx, iq, name, &n) < 0)
        return 0;
    ps_who w;
    int rc = ps_who_of(cx, &n, cx->from_bare, &w);
    if (rc < 0)
        return internal(cx, iq, rc, "who");
    if (w.affiliation < MP_PS_AFF_PUBLISHER) {
        /* anyone may retract what they published themselves (§7.2.3.1 allows it) */
        mp_store *st = mp_core_store(cx->pm->core);
        item_pub ip = {NULL};
        rc = st->ops->ps_item_get(st, cx->service, name, id, 0, item_publisher, &ip);
        size_t bl = strlen(cx->from_bare);
        int mine = rc == 0 && strncmp(ip.publisher, cx->from_bare, bl) == 0 &&
                   (ip.publisher[bl] == '\0' || ip.publisher[bl] == '/');
        free((void *)ip.publisher);
        if (rc == MP_ENOTFOUND)
            return mp_iq_error(iq, "cancel", "item-not-found");
        if (rc < 0)
            return internal(cx, iq, rc, "item");
        if (!mine)
            return mp_iq_error(iq, "auth", "forbidden");
    }
    const char *nf = mp_xnode_attr(r, "notify");
    int notify = nf && (strcmp(nf, "true") == 0 || strcmp(nf, "1") == 0);
    rc = ps_retract_item(cx, &n, id, notify || n.cfg.notify_retract);
    if (rc == MP_ENOTFOUND)
        return mp_iq_error(iq, "cancel", "item-not-found");
    if (rc < 0)
        return internal(cx, iq, rc, "retract");
    return mp_iq_result(iq, NULL);
}

typedef struct items_out {
    ps_ctx *cx;
    mp_xnode *items;
    int rc;
} items_out;

static int
item_out(const mp_ps_item *it, void *ud)
{
    items_out *io = ud;
    mp_arena *a = io->cx->arena;
    mp_xnode *item = el(a, io->items, PS_NS, "item");
    if (attr(a, item, "id", it->id) < 0)
        return MP_ENOMEM;
    if (it->len) {
        mp_xnode *p = NULL;
        int rc = mp_xml_parse(io->cx->pm->parser, a, "jabber:client", it->payload, it->len, &p);
        if (rc == MP_ENOMEM)
            return rc;
        if (rc == 0)
            mp_xnode_append(item, p);
        else
            mp_warn("pubsub %s: item %s of %s is not well-formed", io->cx->service, it->id,
                    it->node);
    }
    return 0;
}

static int
do_items(ps_ctx *cx, mp_iq *iq, const mp_xnode *req)
{
    const char *name = node_attr(req);
    if (!name)
        return ps_error(iq, "modify", "bad-request", "nodeid-required", NULL);
    ps_node n;
    if (load_or_answer(cx, iq, name, &n) < 0)
        return 0;
    ps_who w;
    int rc = ps_who_of(cx, &n, cx->from_bare, &w);
    if (rc < 0)
        return internal(cx, iq, rc, "who");
    int v = ps_may_read(&n.cfg, &w);
    if (v != PS_ALLOW)
        return deny(cx, iq, v);
    int64_t max = 0;
    const char *m = mp_xnode_attr(req, "max_items");
    if (m) {
        char *end;
        long long x = strtoll(m, &end, 10);
        if (end == m || *end || x < 1)
            return mp_iq_error(iq, "modify", "bad-request");
        max = x;
    }
    if (max == 0 || max > n.cfg.max_items)
        max = n.cfg.max_items;
    mp_xnode *ps = el(cx->arena, NULL, PS_NS, "pubsub");
    mp_xnode *items = el(cx->arena, ps, PS_NS, "items");
    if (attr(cx->arena, items, "node", name) < 0)
        return internal(cx, iq, MP_ENOMEM, "reply");
    mp_store *st = mp_core_store(cx->pm->core);
    items_out io = {cx, items, 0};
    int byid = 0;
    for (const mp_xnode *c = req->children; c && rc == 0; c = c->next) {
        const char *id = strcmp(c->name, "item") == 0 ? mp_xnode_attr(c, "id") : NULL;
        if (!id)
            continue;
        byid = 1;
        rc = st->ops->ps_item_get(st, cx->service, name, id, 0, item_out, &io);
        if (rc == MP_ENOTFOUND)
            rc = 0; /* items that are not there are just not listed */
    }
    if (!byid)
        rc = st->ops->ps_item_get(st, cx->service, name, NULL, max, item_out, &io);
    if (rc < 0)
        return internal(cx, iq, rc, "items");
    return mp_iq_result(iq, ps);
}

/* ---- node lifecycle ---- */

static int
do_create(ps_ctx *cx, mp_iq *iq, const mp_xnode *create, const mp_xnode *configure)
{
    if (!may_create(cx))
        return mp_iq_error(iq, "auth", "forbidden");
    const char *name = node_attr(create);
    char idbuf[32];
    int instant = !name;
    if (instant) {
        if (cx->pep)
            return ps_error(iq, "modify", "not-acceptable", "nodeid-required", NULL);
        ps_new_id(cx->pm, idbuf, sizeof idbuf);
        name = idbuf;
    }
    int owned, rc;
    if ((rc = owned_nodes(cx, &owned)) < 0)
        return internal(cx, iq, rc, "count nodes");
    if (owned >= cx->pm->max_nodes)
        return mp_iq_error(iq, "wait", "resource-constraint");
    ps_config cfg;
    ps_config_defaults(&cfg, cx->pep, &cx->pm->lim);
    const mp_xnode *x = configure ? mp_xnode_child(configure, PS_NS_XDATA, "x") : NULL;
    const char *bad;
    if (x && ps_config_apply(&cfg, x, PS_FORM_CONFIG, &cx->pm->lim, cx->arena, &bad) < 0)
        return mp_iq_error(iq, "modify", "not-acceptable");
    rc = ps_create_node(cx, name, &cfg);
    if (rc == MP_EEXIST)
        return mp_iq_error(iq, "cancel", "conflict");
    if (rc < 0)
        return internal(cx, iq, rc, "create");
    if (!instant)
        return mp_iq_result(iq, NULL);
    mp_xnode *ps = el(iq->arena, NULL, PS_NS, "pubsub");
    mp_xnode *c = el(iq->arena, ps, PS_NS, "create");
    if (attr(iq->arena, c, "node", name) < 0)
        return internal(cx, iq, MP_ENOMEM, "reply");
    return mp_iq_result(iq, ps);
}

/* Owner actions load the node and check ownership; 0 when the IQ was answered. */
static int
owner_node(ps_ctx *cx, mp_iq *iq, const mp_xnode *e, ps_node *n)
{
    const char *name = node_attr(e);
    if (!name) {
        ps_error(iq, "modify", "bad-request", "nodeid-required", NULL);
        return 0;
    }
    if (load_or_answer(cx, iq, name, n) < 0)
        return 0;
    int rc;
    if (!is_owner(cx, n, &rc)) {
        if (rc < 0)
            internal(cx, iq, rc, "who");
        else
            mp_iq_error(iq, "auth", "forbidden");
        return 0;
    }
    return 1;
}

static int
do_configure_get(ps_ctx *cx, mp_iq *iq, const mp_xnode *e)
{
    ps_node n;
    if (!owner_node(cx, iq, e, &n))
        return 0;
    mp_xnode *ps = el(cx->arena, NULL, PS_NS_OWNER, "pubsub");
    mp_xnode *c = el(cx->arena, ps, PS_NS_OWNER, "configure");
    mp_xnode *x = ps_config_form(&n.cfg, "form", cx->arena);
    if (attr(cx->arena, c, "node", n.name) < 0 || !x)
        return internal(cx, iq, MP_ENOMEM, "reply");
    mp_xnode_append(c, x);
    return mp_iq_result(iq, ps);
}

static int
do_configure_set(ps_ctx *cx, mp_iq *iq, const mp_xnode *e)
{
    ps_node n;
    if (!owner_node(cx, iq, e, &n))
        return 0;
    const mp_xnode *x = mp_xnode_child(e, PS_NS_XDATA, "x");
    if (!x)
        return mp_iq_error(iq, "modify", "bad-request");
    const char *type = mp_xnode_attr(x, "type");
    if (type && strcmp(type, "cancel") == 0)
        return mp_iq_result(iq, NULL);
    const char *bad;
    if (ps_config_apply(&n.cfg, x, PS_FORM_CONFIG, &cx->pm->lim, cx->arena, &bad) < 0)
        return mp_iq_error(iq, "modify", "not-acceptable");
    int rc = node_save(cx, n.name, &n.cfg, 0);
    if (rc < 0)
        return internal(cx, iq, rc, "configure");
    /* a lower max_items hides the oldest items at once (do_items) and drops them at the next
     * publish */
    if (n.cfg.notify_config)
        ps_notify_node(cx, &n, "configuration");
    return mp_iq_result(iq, NULL);
}

static int
do_default(ps_ctx *cx, mp_iq *iq, int owner_ns)
{
    mp_xnode *ps = el(cx->arena, NULL, owner_ns ? PS_NS_OWNER : PS_NS, "pubsub");
    mp_xnode *d = el(cx->arena, ps, owner_ns ? PS_NS_OWNER : PS_NS, "default");
    mp_xnode *x;
    if (owner_ns) {
        ps_config cfg;
        ps_config_defaults(&cfg, cx->pep, &cx->pm->lim);
        x = ps_config_form(&cfg, "form", cx->arena);
    } else {
        ps_subopts o;
        ps_subopts_defaults(&o);
        x = ps_subopts_form(&o, "form", cx->arena);
    }
    if (!d || !x)
        return internal(cx, iq, MP_ENOMEM, "reply");
    mp_xnode_append(d, x);
    return mp_iq_result(iq, ps);
}

static int
do_delete(ps_ctx *cx, mp_iq *iq, const mp_xnode *e)
{
    ps_node n;
    if (!owner_node(cx, iq, e, &n))
        return 0;
    /* subscribers learn it before their subscriptions go with the node */
    if (n.cfg.notify_delete)
        ps_notify_node(cx, &n, "delete");
    mp_store *st = mp_core_store(cx->pm->core);
    int rc = st->ops->ps_node_delete(st, cx->service, n.name);
    if (rc < 0 && rc != MP_ENOTFOUND)
        return internal(cx, iq, rc, "delete");
    pep_items_changed(cx, &n, 0, NULL);
    return mp_iq_result(iq, NULL);
}

static int
do_purge(ps_ctx *cx, mp_iq *iq, const mp_xnode *e)
{
    ps_node n;
    if (!owner_node(cx, iq, e, &n))
        return 0;
    if (!n.cfg.persist_items)
        return unsupported(cx, iq, "persistent-items");
    mp_store *st = mp_core_store(cx->pm->core);
    int rc = st->ops->ps_item_delete(st, cx->service, n.name, NULL);
    if (rc < 0)
        return internal(cx, iq, rc, "purge");
    if (n.cfg.notify_retract)
        ps_notify_node(cx, &n, "purge");
    pep_items_changed(cx, &n, 0, NULL);
    return mp_iq_result(iq, NULL);
}

/* ---- subscriptions ---- */

static int
bare_len(const char *jid)
{
    return (int)strcspn(jid, "/");
}

/* jid (a subscriber JID from a request) belongs to the requester. */
static int
jid_is_requester(ps_ctx *cx, const char *jid)
{
    int n = bare_len(jid);
    return (size_t)n == strlen(cx->from_bare) && strncmp(jid, cx->from_bare, (size_t)n) == 0;
}

typedef struct subs_of {
    const char *jid;
    mp_arena *a;
    mp_ps_sub first;
    int count;
} subs_of;

static int
sub_match(const mp_ps_sub *s, void *ud)
{
    subs_of *so = ud;
    if (so->count++ == 0) {
        so->first = *s;
        so->first.subid = mp_arena_strndup(so->a, s->subid, strlen(s->subid));
        so->first.options = mp_arena_strndup(so->a, s->options, strlen(s->options));
        so->first.node = mp_arena_strndup(so->a, s->node, strlen(s->node));
        so->first.jid = mp_arena_strndup(so->a, s->jid, strlen(s->jid));
        if (!so->first.subid || !so->first.options || !so->first.node || !so->first.jid)
            return MP_ENOMEM;
    }
    return 0;
}

/* Subscriptions of jid to node: how many, and the first one. */
static int
find_subs(ps_ctx *cx, const char *node, const char *jid, subs_of *so)
{
    mp_store *st = mp_core_store(cx->pm->core);
    memset(so, 0, sizeof *so);
    so->jid = jid;
    so->a = cx->arena;
    return st->ops->ps_sub_list(st, cx->service, node, jid, sub_match, so);
}

static mp_xnode *
subscription_el(mp_arena *a, const char *ns, const char *node, const char *jid, const char *subid,
                int state)
{
    mp_xnode *s = mp_xnode_new(a, ns, "subscription");
    if (!s || (node && attr(a, s, "node", node) < 0) || attr(a, s, "jid", jid) < 0 ||
        (subid && subid[0] && attr(a, s, "subid", subid) < 0) ||
        attr(a, s, "subscription", ps_sub_state_name(state)) < 0)
        return NULL;
    return s;
}

/* §8.6: ask the owners of the node to approve a subscription. */
static void ask_owners(ps_ctx *cx, const ps_node *n, const char *jid, const char *subid);

static int
do_subscribe(ps_ctx *cx, mp_iq *iq, const mp_xnode *e, const mp_xnode *options)
{
    const char *name = node_attr(e);
    const char *jid = mp_xnode_attr(e, "jid");
    if (!name)
        return ps_error(iq, "modify", "bad-request", "nodeid-required", NULL);
    if (!jid || !jid[0])
        return ps_error(iq, "modify", "bad-request", "jid-required", NULL);
    if (!jid_is_requester(cx, jid) || strlen(jid) > MAX_JID_LEN)
        return ps_error(iq, "modify", "bad-request", "invalid-jid", NULL);
    ps_node n;
    if (load_or_answer(cx, iq, name, &n) < 0)
        return 0;
    ps_who w;
    int rc = ps_who_of(cx, &n, cx->from_bare, &w);
    if (rc < 0)
        return internal(cx, iq, rc, "who");
    int v = ps_may_subscribe(&n.cfg, &w);
    if (v != PS_ALLOW && v != PS_PENDING)
        return deny(cx, iq, v);
    ps_subopts o;
    ps_subopts_defaults(&o);
    const mp_xnode *ox = options ? mp_xnode_child(options, PS_NS_XDATA, "x") : NULL;
    const char *bad;
    if (ox && ps_subopts_apply(&o, ox, &bad) < 0)
        return mp_iq_error(iq, "modify", "not-acceptable");
    subs_of so;
    if ((rc = find_subs(cx, name, jid, &so)) < 0)
        return internal(cx, iq, rc, "subscriptions");
    mp_store *st = mp_core_store(cx->pm->core);
    const char *subid;
    int state;
    char idbuf[32];
    if (so.count > 0 && !ox) {
        /* §6.1.6: already subscribed; answer with the subscription held */
        subid = so.first.subid;
        state = so.first.state;
    } else {
        /* every resource, and every subscribe with options, is one more row (and, under the
         * authorize model, one more request to the owners): bounded per account and node */
        sub_look sl = {cx->from_bare, 0, 0};
        if ((rc = st->ops->ps_sub_list(st, cx->service, name, NULL, sub_of, &sl)) < 0)
            return internal(cx, iq, rc, "subscriptions");
        if (sl.count >= cx->pm->max_subs)
            return ps_error(iq, "wait", "policy-violation", "too-many-subscriptions", NULL);
        ps_new_id(cx->pm, idbuf, sizeof idbuf);
        subid = idbuf;
        state = v == PS_PENDING ? MP_PS_SUB_PENDING : MP_PS_SUB_SUBSCRIBED;
        char obuf[64];
        ps_subopts_encode(&o, obuf, sizeof obuf);
        mp_ps_sub s = {name, jid, subid, state, obuf};
        if ((rc = st->ops->ps_sub_put(st, cx->service, &s)) < 0)
            return internal(cx, iq, rc, "subscribe");
        if (state == MP_PS_SUB_PENDING)
            ask_owners(cx, &n, jid, subid);
    }
    mp_xnode *ps = el(cx->arena, NULL, PS_NS, "pubsub");
    mp_xnode *s = subscription_el(cx->arena, PS_NS, name, jid, subid, state);
    if (!ps || !s)
        return internal(cx, iq, MP_ENOMEM, "reply");
    mp_xnode_append(ps, s);
    rc = mp_iq_result(iq, ps);
    if (state == MP_PS_SUB_SUBSCRIBED && n.cfg.send_last != PS_SEND_NEVER && o.deliver)
        ps_send_last(cx, &n, jid);
    return rc;
}

/* What unsubscribe and options have in common (§6.2, §6.3): the node, the JID (its own or, for
 * an owner, anybody's) and the subid. Returns 0, or nonzero when the IQ has been answered. */
static int
subscription_target(ps_ctx *cx, mp_iq *iq, const mp_xnode *e, const char **name, const char **jid,
                    const char **subid, ps_node *n)
{
    *name = node_attr(e);
    *jid = mp_xnode_attr(e, "jid");
    *subid = mp_xnode_attr(e, "subid");
    if (!*name) {
        ps_error(iq, "modify", "bad-request", "nodeid-required", NULL);
        return 1;
    }
    if (!*jid || !(*jid)[0]) {
        ps_error(iq, "modify", "bad-request", "jid-required", NULL);
        return 1;
    }
    if (load_or_answer(cx, iq, *name, n) < 0)
        return 1;
    int rc;
    if (!jid_is_requester(cx, *jid) && !is_owner(cx, n, &rc)) {
        mp_iq_error(iq, "auth", "forbidden");
        return 1;
    }
    return 0;
}

static int
do_unsubscribe(ps_ctx *cx, mp_iq *iq, const mp_xnode *e)
{
    const char *name, *jid, *subid;
    ps_node n;
    if (subscription_target(cx, iq, e, &name, &jid, &subid, &n))
        return 0;
    int rc;
    subs_of so;
    if ((rc = find_subs(cx, name, jid, &so)) < 0)
        return internal(cx, iq, rc, "subscriptions");
    if (so.count == 0)
        return ps_error(iq, "cancel", "unexpected-request", "not-subscribed", NULL);
    if (so.count > 1 && (!subid || !subid[0]))
        return ps_error(iq, "modify", "bad-request", "subid-required", NULL);
    mp_store *st = mp_core_store(cx->pm->core);
    rc = st->ops->ps_sub_delete(st, cx->service, name, jid, subid && subid[0] ? subid : NULL);
    if (rc == MP_ENOTFOUND)
        return ps_error(iq, "modify", "not-acceptable", "invalid-subid", NULL);
    if (rc < 0)
        return internal(cx, iq, rc, "unsubscribe");
    return mp_iq_result(iq, NULL);
}

typedef struct one_sub {
    const char *subid;
    mp_arena *a;
    mp_ps_sub found;
    int count, hit;
} one_sub;

static int
sub_pick(const mp_ps_sub *s, void *ud)
{
    one_sub *os = ud;
    os->count++;
    if (os->hit || (os->subid && strcmp(os->subid, s->subid) != 0))
        return 0;
    os->hit = 1;
    os->found = *s;
    os->found.node = mp_arena_strndup(os->a, s->node, strlen(s->node));
    os->found.jid = mp_arena_strndup(os->a, s->jid, strlen(s->jid));
    os->found.subid = mp_arena_strndup(os->a, s->subid, strlen(s->subid));
    os->found.options = mp_arena_strndup(os->a, s->options, strlen(s->options));
    return os->found.node && os->found.jid && os->found.subid && os->found.options ? 0 : MP_ENOMEM;
}

static int
do_options(ps_ctx *cx, mp_iq *iq, const mp_xnode *e, int set)
{
    const char *name, *jid, *subid;
    ps_node n;
    if (subscription_target(cx, iq, e, &name, &jid, &subid, &n))
        return 0;
    int rc;
    mp_store *st = mp_core_store(cx->pm->core);
    one_sub os = {subid && subid[0] ? subid : NULL, cx->arena, {0}, 0, 0};
    if ((rc = st->ops->ps_sub_list(st, cx->service, name, jid, sub_pick, &os)) < 0)
        return internal(cx, iq, rc, "subscriptions");
    if (os.count == 0)
        return ps_error(iq, "cancel", "unexpected-request", "not-subscribed", NULL);
    if (os.count > 1 && !os.subid)
        return ps_error(iq, "modify", "bad-request", "subid-required", NULL);
    if (!os.hit)
        return ps_error(iq, "modify", "not-acceptable", "invalid-subid", NULL);
    ps_subopts o;
    ps_subopts_decode(&o, os.found.options);
    if (set) {
        const mp_xnode *x = mp_xnode_child(e, PS_NS_XDATA, "x");
        const char *bad;
        if (!x)
            return mp_iq_error(iq, "modify", "bad-request");
        if (ps_subopts_apply(&o, x, &bad) < 0)
            return mp_iq_error(iq, "modify", "not-acceptable");
        char obuf[64];
        ps_subopts_encode(&o, obuf, sizeof obuf);
        os.found.options = obuf;
        if ((rc = st->ops->ps_sub_put(st, cx->service, &os.found)) < 0)
            return internal(cx, iq, rc, "options");
        return mp_iq_result(iq, NULL);
    }
    mp_xnode *ps = el(cx->arena, NULL, PS_NS, "pubsub");
    mp_xnode *op = el(cx->arena, ps, PS_NS, "options");
    mp_xnode *x = ps_subopts_form(&o, "form", cx->arena);
    if (attr(cx->arena, op, "node", name) < 0 || attr(cx->arena, op, "jid", jid) < 0 ||
        attr(cx->arena, op, "subid", os.found.subid) < 0 || !x)
        return internal(cx, iq, MP_ENOMEM, "reply");
    mp_xnode_append(op, x);
    return mp_iq_result(iq, ps);
}

/* ---- listing subscriptions and affiliations ---- */

typedef struct lister {
    ps_ctx *cx;
    mp_xnode *parent;
    const char *ns;
    int with_node;
    const char *only_bare; /* subscriptions: only those of this account */
} lister;

static int
list_sub(const mp_ps_sub *s, void *ud)
{
    lister *l = ud;
    if (l->only_bare) {
        size_t n = strlen(l->only_bare);
        if (strncmp(s->jid, l->only_bare, n) != 0 || (s->jid[n] && s->jid[n] != '/'))
            return 0;
    }
    mp_xnode *e = subscription_el(l->cx->arena, l->ns, l->with_node ? s->node : NULL, s->jid,
                                  s->subid, s->state);
    if (!e)
        return MP_ENOMEM;
    mp_xnode_append(l->parent, e);
    return 0;
}

static int
list_aff(const mp_ps_aff *a, void *ud)
{
    lister *l = ud;
    mp_xnode *e = mp_xnode_new(l->cx->arena, l->ns, "affiliation");
    if (!e || (l->with_node && attr(l->cx->arena, e, "node", a->node) < 0) ||
        (!l->with_node && attr(l->cx->arena, e, "jid", a->jid) < 0) ||
        attr(l->cx->arena, e, "affiliation", ps_affiliation_name(a->affiliation)) < 0)
        return MP_ENOMEM;
    mp_xnode_append(l->parent, e);
    return 0;
}

static int
pep_owner_aff(const char *node, const char *config, size_t len, void *ud)
{
    mp_ps_aff a = {node, "", MP_PS_AFF_OWNER};
    return list_aff(&a, ud);
}

/* <subscriptions/> and <affiliations/> of the requester (§5.6, §5.7) */
static int
do_own_list(ps_ctx *cx, mp_iq *iq, const mp_xnode *e, int affs)
{
    mp_store *st = mp_core_store(cx->pm->core);
    const char *name = node_attr(e);
    mp_xnode *ps = el(cx->arena, NULL, PS_NS, "pubsub");
    mp_xnode *list = el(cx->arena, ps, PS_NS, affs ? "affiliations" : "subscriptions");
    if (!list || (name && attr(cx->arena, list, "node", name) < 0))
        return internal(cx, iq, MP_ENOMEM, "reply");
    lister l = {cx, list, PS_NS, 1, cx->from_bare};
    int rc;
    if (affs && cx->pep && strcmp(cx->from_bare, cx->service) == 0) {
        rc = st->ops->ps_node_get(st, cx->service, name, pep_owner_aff, &l);
        if (rc == MP_ENOTFOUND)
            rc = 0;
    } else if (affs) {
        rc = st->ops->ps_aff_list(st, cx->service, name, cx->from_bare, list_aff, &l);
    } else {
        rc = st->ops->ps_sub_list(st, cx->service, name, NULL, list_sub, &l);
    }
    if (rc < 0)
        return internal(cx, iq, rc, "list");
    return mp_iq_result(iq, ps);
}

static int
count_aff(const mp_ps_aff *a, void *ud)
{
    (*(int *)ud)++;
    return 0;
}

static int
count_sub(const mp_ps_sub *s, void *ud)
{
    (*(int *)ud)++;
    return 0;
}

/* Rows of the node an owner's set would add (JIDs that hold none yet), and the rows it holds,
 * so that an owner cannot store entries for any number of made-up JIDs. */
static int
owner_set_rows(ps_ctx *cx, const ps_node *n, const mp_xnode *e, int affs, int *held, int *added)
{
    mp_store *st = mp_core_store(cx->pm->core);
    *held = *added = 0;
    int rc = affs ? st->ops->ps_aff_list(st, cx->service, n->name, NULL, count_aff, held)
                  : st->ops->ps_sub_list(st, cx->service, n->name, NULL, count_sub, held);
    for (const mp_xnode *c = e->children; c && rc >= 0; c = c->next) {
        const char *jid = mp_xnode_attr(c, "jid");
        const char *v = mp_xnode_attr(c, affs ? "affiliation" : "subscription");
        if (strcmp(v, "none") == 0)
            continue;
        int k = 0;
        rc = affs ? st->ops->ps_aff_list(st, cx->service, n->name, jid, count_aff, &k)
                  : st->ops->ps_sub_list(st, cx->service, n->name, jid, count_sub, &k);
        if (k == 0)
            (*added)++;
    }
    return rc < 0 ? rc : 0;
}

/* Owner: <subscriptions node/> and <affiliations node/>, get (§8.8.1, §8.9.1) and set. */
static int
do_owner_list(ps_ctx *cx, mp_iq *iq, const mp_xnode *e, int affs, int set)
{
    ps_node n;
    if (!owner_node(cx, iq, e, &n))
        return 0;
    mp_store *st = mp_core_store(cx->pm->core);
    int rc = 0;
    if (set) {
        /* everything is checked before anything changes */
        for (const mp_xnode *c = e->children; c; c = c->next) {
            const char *jid = mp_xnode_attr(c, "jid");
            const char *v = mp_xnode_attr(c, affs ? "affiliation" : "subscription");
            if (!jid || !jid[0] || !v || strlen(jid) > MAX_JID_LEN)
                return mp_iq_error(iq, "modify", "bad-request");
            if (affs ? ps_affiliation_parse(v) < MP_PS_AFF_OUTCAST
                     : strcmp(v, "none") != 0 && strcmp(v, "subscribed") != 0 &&
                           strcmp(v, "pending") != 0 && strcmp(v, "unconfigured") != 0)
                return mp_iq_error(iq, "modify", "bad-request");
        }
        int held, added;
        if ((rc = owner_set_rows(cx, &n, e, affs, &held, &added)) < 0)
            return internal(cx, iq, rc, "owner set");
        if (added > 0 && held + added > cx->pm->max_node_entries)
            return mp_iq_error(iq, "wait", "resource-constraint");
        for (const mp_xnode *c = e->children; c && rc >= 0; c = c->next) {
            const char *jid = mp_xnode_attr(c, "jid");
            const char *v = mp_xnode_attr(c, affs ? "affiliation" : "subscription");
            if (affs) {
                int aff = ps_affiliation_parse(v);
                rc = st->ops->ps_aff_put(st, cx->service, n.name, jid, aff);
                /* an outcast loses its subscriptions (§8.9.2.4) */
                if (rc == 0 && aff == MP_PS_AFF_OUTCAST) {
                    rc = st->ops->ps_sub_delete(st, cx->service, n.name, jid, NULL);
                    if (rc == MP_ENOTFOUND)
                        rc = 0;
                }
            } else if (strcmp(v, "none") == 0) {
                rc = st->ops->ps_sub_delete(st, cx->service, n.name, jid, NULL);
                if (rc == MP_ENOTFOUND)
                    rc = 0;
            } else {
                int state = strcmp(v, "subscribed") == 0 ? MP_PS_SUB_SUBSCRIBED
                            : strcmp(v, "pending") == 0  ? MP_PS_SUB_PENDING
                                                         : MP_PS_SUB_UNCONFIGURED;
                subs_of so;
                rc = find_subs(cx, n.name, jid, &so);
                char idbuf[32], obuf[64];
                ps_subopts o;
                ps_subopts_defaults(&o);
                ps_subopts_encode(&o, obuf, sizeof obuf);
                mp_ps_sub s = {n.name, jid, NULL, state, obuf};
                if (so.count > 0) {
                    s.subid = so.first.subid;
                    s.options = so.first.options;
                } else {
                    ps_new_id(cx->pm, idbuf, sizeof idbuf);
                    s.subid = idbuf;
                }
                if (rc == 0)
                    rc = st->ops->ps_sub_put(st, cx->service, &s);
            }
        }
        if (rc < 0)
            return internal(cx, iq, rc, "owner set");
        return mp_iq_result(iq, NULL);
    }
    mp_xnode *ps = el(cx->arena, NULL, PS_NS_OWNER, "pubsub");
    mp_xnode *list = el(cx->arena, ps, PS_NS_OWNER, affs ? "affiliations" : "subscriptions");
    if (attr(cx->arena, list, "node", n.name) < 0)
        return internal(cx, iq, MP_ENOMEM, "reply");
    lister l = {cx, list, PS_NS_OWNER, 0, NULL};
    if (affs && cx->pep) {
        mp_ps_aff self = {n.name, cx->service, MP_PS_AFF_OWNER};
        rc = list_aff(&self, &l);
    }
    if (rc == 0)
        rc = affs ? st->ops->ps_aff_list(st, cx->service, n.name, NULL, list_aff, &l)
                  : st->ops->ps_sub_list(st, cx->service, n.name, NULL, list_sub, &l);
    if (rc < 0)
        return internal(cx, iq, rc, "owner list");
    return mp_iq_result(iq, ps);
}

/* ---- authorization (§8.6) ---- */

typedef struct owners {
    const char **jids;
    size_t n;
    mp_arena *a;
} owners;

static int
collect_owner(const mp_ps_aff *a, void *ud)
{
    owners *o = ud;
    if (a->affiliation != MP_PS_AFF_OWNER || o->n >= 16)
        return 0;
    const char *j = mp_arena_strndup(o->a, a->jid, strlen(a->jid));
    if (!j)
        return MP_ENOMEM;
    o->jids[o->n++] = j;
    return 0;
}

static void
ask_owners(ps_ctx *cx, const ps_node *n, const char *jid, const char *subid)
{
    mp_store *st = mp_core_store(cx->pm->core);
    const char *jids[16];
    owners o = {jids, 0, cx->arena};
    if (cx->pep)
        jids[o.n++] = cx->service;
    else if (st->ops->ps_aff_list(st, cx->service, n->name, NULL, collect_owner, &o) < 0)
        return;
    mp_arena *a = cx->arena;
    mp_xnode *m = el(a, NULL, "jabber:client", "message");
    mp_xnode *x = el(a, m, PS_NS_XDATA, "x");
    mp_xnode *t = el(a, x, PS_NS_XDATA, "title");
    char id[32];
    ps_new_id(cx->pm, id, sizeof id);
    if (!t || attr(a, m, "from", cx->service) < 0 || attr(a, m, "id", id) < 0 ||
        attr(a, x, "type", "form") < 0 ||
        mp_xnode_set_text(a, t, "PubSub subscriber request", 25) < 0 ||
        !mp_form_field(a, x, "FORM_TYPE", "hidden", NULL, PS_FORM_AUTH) ||
        !mp_form_field(a, x, "pubsub#subid", "hidden", NULL, subid) ||
        !mp_form_field(a, x, "pubsub#node", "text-single", "Node ID", n->name) ||
        !mp_form_field(a, x, "pubsub#subscriber_jid", "jid-single", "Subscriber Address", jid) ||
        !mp_form_field(a, x, "pubsub#allow", "boolean",
                       "Allow this JID to subscribe to this pubsub node?", "false"))
        return;
    for (size_t i = 0; i < o.n; i++)
        ps_deliver(cx, jids[i], m);
}

static const char *
field_value(const mp_xnode *x, const char *var)
{
    for (const mp_xnode *f = x->children; f; f = f->next) {
        const char *v = strcmp(f->name, "field") == 0 ? mp_xnode_attr(f, "var") : NULL;
        if (v && strcmp(v, var) == 0) {
            const mp_xnode *val = mp_xnode_child(f, PS_NS_XDATA, "value");
            return val ? val->text : "";
        }
    }
    return NULL;
}

int
ps_handle_message(ps_ctx *cx, mp_stanza *st)
{
    mp_xnode *m = mp_stanza_tree(st);
    const mp_xnode *x = m ? mp_xnode_child(m, PS_NS_XDATA, "x") : NULL;
    const char *ft = x ? field_value(x, "FORM_TYPE") : NULL;
    if (!ft || strcmp(ft, PS_FORM_AUTH) != 0)
        return 0; /* nothing else is meant for the service; messages are dropped */
    const char *type = mp_xnode_attr(x, "type");
    if (type && strcmp(type, "cancel") == 0)
        return 0;
    const char *node = field_value(x, "pubsub#node");
    const char *jid = field_value(x, "pubsub#subscriber_jid");
    const char *allow = field_value(x, "pubsub#allow");
    const char *subid = field_value(x, "pubsub#subid");
    if (!node || !jid || !allow)
        return mp_stanza_error(st, "modify", "bad-request", NULL);
    ps_node n;
    int rc = ps_node_load(cx, node, &n);
    if (rc == MP_ENOTFOUND)
        return mp_stanza_error(st, "cancel", "item-not-found", NULL);
    if (rc < 0)
        return mp_stanza_error(st, "wait", "internal-server-error", NULL);
    ps_who w;
    if (ps_who_of(cx, &n, cx->from_bare, &w) < 0 || w.affiliation != MP_PS_AFF_OWNER)
        return mp_stanza_error(st, "auth", "forbidden", NULL);
    mp_store *store = mp_core_store(cx->pm->core);
    one_sub os = {subid && subid[0] ? subid : NULL, cx->arena, {0}, 0, 0};
    rc = store->ops->ps_sub_list(store, cx->service, node, jid, sub_pick, &os);
    if (rc < 0)
        return mp_stanza_error(st, "wait", "internal-server-error", NULL);
    if (!os.hit || os.found.state != MP_PS_SUB_PENDING)
        return mp_stanza_error(st, "cancel", "unexpected-request", NULL);
    int yes = strcmp(allow, "1") == 0 || strcmp(allow, "true") == 0;
    if (yes) {
        os.found.state = MP_PS_SUB_SUBSCRIBED;
        rc = store->ops->ps_sub_put(store, cx->service, &os.found);
    } else {
        rc = store->ops->ps_sub_delete(store, cx->service, node, jid, os.found.subid);
    }
    if (rc < 0)
        return mp_stanza_error(st, "wait", "internal-server-error", NULL);
    /* §8.6: the subscriber learns the outcome */
    mp_arena *a = cx->arena;
    mp_xnode *msg = el(a, NULL, "jabber:client", "message");
    mp_xnode *ev = el(a, msg, PS_NS_EVENT, "event");
    mp_xnode *s =
        subscription_el(a, PS_NS_EVENT, node, jid, os.found.subid, yes ? MP_PS_SUB_SUBSCRIBED : 0);
    if (!ev || !s || attr(a, msg, "from", cx->service) < 0)
        return 0;
    mp_xnode_append(ev, s);
    ps_deliver(cx, jid, msg);
    if (yes && n.cfg.send_last != PS_SEND_NEVER)
        ps_send_last(cx, &n, jid);
    return 0;
}

/* ---- dispatch ---- */

int
ps_handle_iq(ps_ctx *cx, mp_iq *iq, int owner_ns)
{
    const char *ns = owner_ns ? PS_NS_OWNER : PS_NS;
    const mp_xnode *action = NULL, *extra = NULL;
    for (const mp_xnode *c = iq->payload->children; c; c = c->next) {
        if (strcmp(c->ns, ns) != 0)
            continue;
        if (!action)
            action = c;
        else if (!extra)
            extra = c;
        else
            return mp_iq_error(iq, "modify", "bad-request");
    }
    if (!action)
        return mp_iq_error(iq, "modify", "bad-request");
    /* node names are stored and sent back in every notification: bounded */
    const char *an = node_attr(action), *en = extra ? node_attr(extra) : NULL;
    if ((an && strlen(an) > cx->pm->max_id_len) || (en && strlen(en) > cx->pm->max_id_len))
        return mp_iq_error(iq, "modify", "not-acceptable");
    const char *a = action->name;
    int set = iq->type == MP_IQ_SET;
    if (!owner_ns && set) {
        if (strcmp(a, "create") == 0) {
            if (extra && strcmp(extra->name, "configure") != 0)
                return mp_iq_error(iq, "modify", "bad-request");
            return do_create(cx, iq, action, extra);
        }
        if (strcmp(a, "publish") == 0) {
            if (extra && strcmp(extra->name, "publish-options") != 0)
                return mp_iq_error(iq, "modify", "bad-request");
            return do_publish(cx, iq, action, extra);
        }
        if (strcmp(a, "subscribe") == 0) {
            if (extra && strcmp(extra->name, "options") != 0)
                return mp_iq_error(iq, "modify", "bad-request");
            return do_subscribe(cx, iq, action, extra);
        }
        if (strcmp(a, "retract") == 0)
            return do_retract(cx, iq, action);
        if (strcmp(a, "unsubscribe") == 0)
            return do_unsubscribe(cx, iq, action);
        if (strcmp(a, "options") == 0)
            return do_options(cx, iq, action, 1);
        if (strcmp(a, "configure") == 0 && extra && strcmp(extra->name, "create") == 0)
            return do_create(cx, iq, extra, action);
    } else if (!owner_ns) {
        if (strcmp(a, "items") == 0)
            return do_items(cx, iq, action);
        if (strcmp(a, "subscriptions") == 0)
            return do_own_list(cx, iq, action, 0);
        if (strcmp(a, "affiliations") == 0)
            return do_own_list(cx, iq, action, 1);
        if (strcmp(a, "options") == 0)
            return do_options(cx, iq, action, 0);
        if (strcmp(a, "default") == 0)
            return do_default(cx, iq, 0);
    } else if (set) {
        if (strcmp(a, "configure") == 0)
            return do_configure_set(cx, iq, action);
        if (strcmp(a, "delete") == 0)
            return do_delete(cx, iq, action);
        if (strcmp(a, "purge") == 0)
            return do_purge(cx, iq, action);
        if (strcmp(a, "subscriptions") == 0)
            return do_owner_list(cx, iq, action, 0, 1);
        if (strcmp(a, "affiliations") == 0)
            return do_owner_list(cx, iq, action, 1, 1);
    } else {
        if (strcmp(a, "configure") == 0)
            return do_configure_get(cx, iq, action);
        if (strcmp(a, "default") == 0)
            return do_default(cx, iq, 1);
        if (strcmp(a, "subscriptions") == 0)
            return do_owner_list(cx, iq, action, 0, 0);
        if (strcmp(a, "affiliations") == 0)
            return do_owner_list(cx, iq, action, 1, 0);
    }
    return mp_iq_error(iq, "cancel", "feature-not-implemented");
}
