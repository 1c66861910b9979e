/* Privacy lists (XEP-0016): parsing, evaluation, the account's state in memory and in storage,
 * and the checks the router and the presence engine call. The protocol handlers are the
 * modules "privacy" and "blocking" (src/modules/). */
#include "router/privacy.h"
#include "router/csi.h"
#include "router/core_int.h"
#include "router/subscription.h"
#include "base/config.h"
#include "base/err.h"
#include "base/log.h"
#include "base/rand.h"
#include "storage/store.h"
#include "xml/escape.h"
#include "xml/framer.h"
#include "xmpp/jid.h"

#include <stdlib.h>
#include <string.h>

#define KIND_PRIVACY "privacy"
#define NS_STANZAS "urn:ietf:params:xml:ns:xmpp-stanzas"

/* ---- lists ---- */

static void
item_clear(mp_privacy_item *it)
{
    free(it->value);
    free(it->node); /* domain and resource share its allocation */
    memset(it, 0, sizeof *it);
}

void
mp_privacy_list_free(mp_privacy_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->nitems; i++)
        item_clear(&l->items[i]);
    free(l->items);
    free(l->name);
    free(l);
}

static int
parse_order(const char *s, uint32_t *out)
{
    uint64_t v = 0;
    if (!*s)
        return MP_EINVAL;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return MP_EINVAL;
        v = v * 10 + (uint64_t)(*s - '0');
        if (v > UINT32_MAX)
            return MP_EINVAL;
    }
    *out = (uint32_t)v;
    return 0;
}

static int
set_jid(mp_privacy_item *it, const char *value)
{
    mp_jid j;
    char full[MP_JID_MAX];
    if (mp_jid_prep(value, strlen(value), &j) < 0 || mp_jid_full(&j, full, sizeof full) < 0)
        return MP_EINVAL;
    size_t n = j.node_len + j.domain_len + j.resource_len + 3;
    it->value = strdup(full);
    it->node = malloc(n);
    if (!it->value || !it->node)
        return MP_ENOMEM;
    memcpy(it->node, j.node, j.node_len + 1);
    it->domain = it->node + j.node_len + 1;
    memcpy(it->domain, j.domain, j.domain_len + 1);
    it->resource = it->domain + j.domain_len + 1;
    memcpy(it->resource, j.resource, j.resource_len + 1);
    return 0;
}

static int
parse_sub(const char *v)
{
    if (strcmp(v, "none") == 0)
        return 0;
    if (strcmp(v, "to") == 0)
        return MP_SUB_TO;
    if (strcmp(v, "from") == 0)
        return MP_SUB_FROM;
    if (strcmp(v, "both") == 0)
        return MP_SUB_BOTH;
    return -1;
}

static int
parse_item(const mp_xnode *n, mp_privacy_item *it)
{
    memset(it, 0, sizeof *it);
    if (strcmp(n->ns, MP_NS_PRIVACY) != 0 || strcmp(n->name, "item") != 0)
        return MP_EINVAL;
    const char *action = mp_xnode_attr(n, "action");
    const char *order = mp_xnode_attr(n, "order");
    const char *type = mp_xnode_attr(n, "type");
    const char *value = mp_xnode_attr(n, "value");
    if (!action || !order || parse_order(order, &it->order) < 0)
        return MP_EINVAL;
    if (strcmp(action, "deny") == 0)
        it->deny = 1;
    else if (strcmp(action, "allow") != 0)
        return MP_EINVAL;
    for (const mp_xnode *c = n->children; c; c = c->next) {
        if (strcmp(c->ns, MP_NS_PRIVACY) != 0)
            return MP_EINVAL;
        if (strcmp(c->name, "message") == 0)
            it->what |= MP_PRIV_MESSAGE;
        else if (strcmp(c->name, "iq") == 0)
            it->what |= MP_PRIV_IQ;
        else if (strcmp(c->name, "presence-in") == 0)
            it->what |= MP_PRIV_PIN;
        else if (strcmp(c->name, "presence-out") == 0)
            it->what |= MP_PRIV_POUT;
        else
            return MP_EINVAL;
    }
    if (!it->what)
        it->what = MP_PRIV_ALL;
    if (!type) {
        /* The fall-through item (§2.1): a value would mean nothing. */
        return value ? MP_EINVAL : 0;
    }
    if (!value)
        return MP_EINVAL;
    if (strcmp(type, "jid") == 0) {
        it->type = MP_PRIV_T_JID;
        return set_jid(it, value);
    }
    if (strcmp(type, "group") == 0) {
        it->type = MP_PRIV_T_GROUP;
    } else if (strcmp(type, "subscription") == 0) {
        int sub = parse_sub(value);
        if (sub < 0)
            return MP_EINVAL;
        it->type = MP_PRIV_T_SUB;
        it->sub = (uint8_t)sub;
    } else {
        return MP_EINVAL;
    }
    if (!*value)
        return MP_EINVAL;
    it->value = strdup(value);
    return it->value ? 0 : MP_ENOMEM;
}

static int
by_order(const void *a, const void *b)
{
    const mp_privacy_item *x = a, *y = b;
    return x->order < y->order ? -1 : x->order > y->order;
}

int
mp_privacy_list_parse(const mp_xnode *list, mp_privacy_list **out)
{
    *out = NULL;
    const char *name = mp_xnode_attr(list, "name");
    if (strcmp(list->ns, MP_NS_PRIVACY) != 0 || strcmp(list->name, "list") != 0 || !name || !*name)
        return MP_EINVAL;
    size_t n = 0;
    for (const mp_xnode *c = list->children; c; c = c->next)
        n++;
    if (n > MP_PRIVACY_MAX_ITEMS)
        return MP_ELIMIT;
    mp_privacy_list *l = calloc(1, sizeof *l);
    if (!l)
        return MP_ENOMEM;
    int rc = MP_ENOMEM;
    l->name = strdup(name);
    l->items = n ? calloc(n, sizeof *l->items) : NULL;
    if (!l->name || (n && !l->items))
        goto fail;
    for (const mp_xnode *c = list->children; c; c = c->next) {
        rc = parse_item(c, &l->items[l->nitems]);
        l->nitems++; /* counted even when it failed: its parts are freed with the list */
        if (rc < 0)
            goto fail;
        if (l->items[l->nitems - 1].type == MP_PRIV_T_GROUP ||
            l->items[l->nitems - 1].type == MP_PRIV_T_SUB)
            l->needs_roster = 1;
    }
    if (n)
        qsort(l->items, n, sizeof *l->items, by_order);
    for (size_t i = 1; i < n; i++) {
        if (l->items[i].order == l->items[i - 1].order) {
            rc = MP_EINVAL; /* the order decides; two equal ones leave it undecided */
            goto fail;
        }
    }
    *out = l;
    return 0;
fail:
    mp_privacy_list_free(l);
    return rc;
}

int
mp_privacy_item_is_block(const mp_privacy_item *it)
{
    return it->type == MP_PRIV_T_JID && it->deny && it->what == MP_PRIV_ALL;
}

static const char *
what_child(int bit)
{
    switch (bit) {
    case MP_PRIV_MESSAGE:
        return "message";
    case MP_PRIV_IQ:
        return "iq";
    case MP_PRIV_PIN:
        return "presence-in";
    case MP_PRIV_POUT:
        return "presence-out";
    default:
        return NULL;
    }
}

static const char *const type_names[] = {NULL, "jid", "group", "subscription"};

mp_xnode *
mp_privacy_list_xml(mp_arena *a, const mp_privacy_list *l, int with_items)
{
    mp_xnode *list = mp_xnode_new(a, MP_NS_PRIVACY, "list");
    if (!list || mp_xnode_set_attr(a, list, "name", l->name) < 0)
        return NULL;
    if (!with_items)
        return list;
    mp_xnode **tail = &list->children;
    for (size_t i = 0; i < l->nitems; i++) {
        const mp_privacy_item *it = &l->items[i];
        char order[16];
        snprintf(order, sizeof order, "%u", (unsigned)it->order);
        mp_xnode *x = mp_xnode_new(a, MP_NS_PRIVACY, "item");
        if (!x || (it->type && (mp_xnode_set_attr(a, x, "type", type_names[it->type]) < 0 ||
                                mp_xnode_set_attr(a, x, "value", it->value) < 0)))
            return NULL;
        if (mp_xnode_set_attr(a, x, "action", it->deny ? "deny" : "allow") < 0 ||
            mp_xnode_set_attr(a, x, "order", order) < 0)
            return NULL;
        if (it->what != MP_PRIV_ALL) {
            mp_xnode **ct = &x->children;
            for (int bit = MP_PRIV_MESSAGE; bit <= MP_PRIV_POUT; bit <<= 1) {
                if (!(it->what & bit))
                    continue;
                mp_xnode *c = mp_xnode_new(a, MP_NS_PRIVACY, what_child(bit));
                if (!c)
                    return NULL;
                c->parent = x;
                *ct = c;
                ct = &c->next;
            }
        }
        x->parent = list;
        *tail = x;
        tail = &x->next;
    }
    return list;
}

/* ---- evaluation (§2.13) ---- */

static int
item_matches(const mp_privacy_item *it, const mp_jid *peer, mp_privacy_roster *r)
{
    switch (it->type) {
    case MP_PRIV_T_ANY:
        return 1;
    case MP_PRIV_T_JID:
        /* <user@domain/resource>, <user@domain>, <domain/resource>, <domain>: an absent part
         * of the item matches anything. */
        return strcmp(it->domain, peer->domain) == 0 &&
               (!*it->node || strcmp(it->node, peer->node) == 0) &&
               (!*it->resource || strcmp(it->resource, peer->resource) == 0);
    default:
        break;
    }
    if (!r)
        return 0;
    if (!r->loaded) {
        r->loaded = 1;
        if (r->load && r->load(r, r->ud) < 0) {
            r->sub = 0;
            r->ngroups = 0;
        }
    }
    if (it->type == MP_PRIV_T_SUB)
        return r->sub == it->sub; /* "none" takes in those not in the roster at all */
    for (size_t i = 0; i < r->ngroups; i++)
        if (strcmp(r->groups[i], it->value) == 0)
            return 1;
    return 0;
}

int
mp_privacy_eval(const mp_privacy_list *l, int what, const mp_jid *peer, mp_privacy_roster *r)
{
    for (size_t i = 0; i < l->nitems; i++) {
        const mp_privacy_item *it = &l->items[i];
        if ((it->what & what) && item_matches(it, peer, r))
            return it->deny;
    }
    return 0;
}

/* ---- the account's state ---- */

void
mp_privacy_free(mp_privacy *p)
{
    if (!p)
        return;
    while (p->lists) {
        mp_privacy_list *l = p->lists;
        p->lists = l->next;
        mp_privacy_list_free(l);
    }
    free(p->block_conns);
    free(p);
}

mp_privacy_list *
mp_privacy_find(const mp_privacy *p, const char *name)
{
    for (mp_privacy_list *l = p ? p->lists : NULL; l; l = l->next)
        if (strcmp(l->name, name) == 0)
            return l;
    return NULL;
}

mp_privacy_list *
mp_privacy_put(mp_privacy *p, mp_privacy_list *l)
{
    mp_privacy_list *old = mp_privacy_find(p, l->name);
    if (!old) {
        mp_privacy_list **pp = &p->lists;
        while (*pp)
            pp = &(*pp)->next;
        *pp = l;
        l->next = NULL;
        return l;
    }
    for (size_t i = 0; i < old->nitems; i++)
        item_clear(&old->items[i]);
    free(old->items);
    old->items = l->items;
    old->nitems = l->nitems;
    old->needs_roster = l->needs_roster;
    l->items = NULL;
    l->nitems = 0;
    mp_privacy_list_free(l);
    return old;
}

void
mp_privacy_remove(mp_privacy *p, mp_privacy_list *l)
{
    for (mp_privacy_list **pp = &p->lists; *pp; pp = &(*pp)->next) {
        if (*pp == l) {
            *pp = l->next;
            break;
        }
    }
    if (p->def == l)
        p->def = NULL;
    mp_privacy_list_free(l);
}

int
mp_privacy_serialize(const mp_privacy *p, mp_buf *out)
{
    mp_arena a;
    mp_arena_init(&a, 4096);
    int rc = MP_ENOMEM;
    mp_xnode *root = mp_xnode_new(&a, MP_NS_PRIVACY, "privacy");
    if (!root || (p->def && mp_xnode_set_attr(&a, root, "default", p->def->name) < 0))
        goto done;
    mp_xnode **tail = &root->children;
    for (const mp_privacy_list *l = p->lists; l; l = l->next) {
        mp_xnode *x = mp_privacy_list_xml(&a, l, 1);
        if (!x)
            goto done;
        x->parent = root;
        *tail = x;
        tail = &x->next;
    }
    rc = mp_xnode_serialize(out, root, "");
done:
    mp_arena_free(&a);
    return rc;
}

int
mp_privacy_parse(const char *bytes, size_t len, mp_privacy **out)
{
    *out = NULL;
    mp_arena a;
    mp_arena_init(&a, 4096);
    mp_xml_parser *parser = mp_xml_parser_new();
    mp_privacy *p = calloc(1, sizeof *p);
    mp_xnode *root = NULL;
    int rc = MP_ENOMEM;
    if (!parser || !p)
        goto done;
    rc = mp_xml_parse(parser, &a, "", bytes, len, &root);
    if (rc < 0)
        goto done;
    rc = MP_EINVAL;
    if (strcmp(root->ns, MP_NS_PRIVACY) != 0 || strcmp(root->name, "privacy") != 0)
        goto done;
    size_t n = 0;
    for (const mp_xnode *c = root->children; c; c = c->next) {
        mp_privacy_list *l;
        if (++n > MP_PRIVACY_MAX_LISTS) {
            rc = MP_ELIMIT;
            goto done;
        }
        rc = mp_privacy_list_parse(c, &l);
        if (rc < 0)
            goto done;
        if (mp_privacy_find(p, l->name)) {
            mp_privacy_list_free(l);
            rc = MP_EINVAL;
            goto done;
        }
        mp_privacy_put(p, l);
    }
    const char *def = mp_xnode_attr(root, "default");
    if (def && !(p->def = mp_privacy_find(p, def))) {
        rc = MP_EINVAL;
        goto done;
    }
    *out = p;
    p = NULL;
    rc = 0;
done:
    mp_privacy_free(p);
    mp_xml_parser_free(parser);
    mp_arena_free(&a);
    return rc;
}

/* ---- checks on the routing path ---- */

typedef struct roster_ud {
    mp_core *core;
    const char *domain, *node;
    char bare[MP_JID_MAX];
    mp_item_copy copy;
} roster_ud;

static int
load_roster(mp_privacy_roster *r, void *ud)
{
    roster_ud *ru = ud;
    if (mp_roster_load(ru->core, ru->domain, ru->node, ru->bare, &ru->copy) < 0)
        return MP_EIO;
    if (ru->copy.found && !(ru->copy.state & MP_SUB_HIDDEN)) {
        r->sub = ru->copy.state & MP_SUB_BOTH;
        r->groups = ru->copy.groups;
        r->ngroups = ru->copy.ngroups;
    }
    return 0;
}

/* Stanzas between the resources of one account are never blocked, as in ejabberd. */
static int
check(mp_core *core, const mp_privacy_list *l, const char *domain, const char *node, int what,
      const char *peer, size_t peer_len)
{
    mp_jid j;
    if (mp_jid_prep(peer, peer_len, &j) < 0)
        return 0;
    if (strcmp(j.domain, domain) == 0 && strcmp(j.node, node) == 0)
        return 0;
    roster_ud ru = {.core = core, .domain = domain, .node = node};
    mp_privacy_roster r = {.load = load_roster, .ud = &ru};
    if (l->needs_roster && mp_jid_bare(&j, ru.bare, sizeof ru.bare) < 0)
        return 0;
    int deny = mp_privacy_eval(l, what, &j, l->needs_roster ? &r : NULL);
    mp_item_copy_free(&ru.copy);
    return deny;
}

int
mp_privacy_blocks(mp_core *core, mp_cstream *s, int what, const char *peer, size_t peer_len)
{
    const mp_privacy_list *l = s->privacy;
    if (!l && (!s->user || !s->user->privacy || !(l = s->user->privacy->def)))
        return 0;
    return check(core, l, core->cfg->hosts[s->host], s->node, what, peer, peer_len);
}

static int
load_state(mp_core *core, const char *domain, const char *node, mp_privacy **out)
{
    *out = NULL;
    mp_store *st = core->store;
    mp_buf doc = {0};
    int rc = st->ops->blob_get(st, domain, node, KIND_PRIVACY, "", &doc);
    if (rc == 0)
        rc = mp_privacy_parse(doc.data, doc.len, out);
    mp_buf_free(&doc);
    if (rc == MP_ENOTFOUND)
        return 0;
    if (rc < 0)
        mp_err("privacy lists of %s@%s: cannot load: %s", node, domain, mp_strerror(rc));
    return rc;
}

int
mp_privacy_blocks_account(mp_core *core, mp_user *u, const char *domain, const char *node, int what,
                          const char *peer, size_t peer_len)
{
    if (u) {
        if (!u->privacy || !u->privacy->def)
            return 0;
        return check(core, u->privacy->def, domain, node, what, peer, peer_len);
    }
    mp_privacy *p;
    if (load_state(core, domain, node, &p) < 0 || !p)
        return 0;
    int deny = p->def ? check(core, p->def, domain, node, what, peer, peer_len) : 0;
    mp_privacy_free(p);
    return deny;
}

int
mp_privacy_outgoing(mp_core *core, mp_cstream *s, const mp_frame *f)
{
    if (!s->privacy && (!s->user || !s->user->privacy || !s->user->privacy->def))
        return 0;
    if (!mp_privacy_blocks(core, s, MP_PRIV_OTHER, mp_frame_to(f), f->to_len))
        return 0;
    if (mp_frame_type_is(f, "error") || (f->el_kind == MP_EL_IQ && mp_frame_type_is(f, "result")))
        return 1;
    const char *kind = f->el_kind == MP_EL_IQ ? "iq" : "message";
    mp_buf *b = &core->scratch;
    b->len = 0;
    mp_buf_printf(b, "<%s type='error' from='", kind);
    mp_xml_escape_attr(b, mp_frame_to(f), f->to_len);
    mp_buf_puts(b, "' to='");
    mp_xml_escape_attr(b, s->full, s->full_len);
    mp_buf_puts(b, "'");
    if (f->id_len) {
        mp_buf_puts(b, " id='");
        mp_xml_escape_attr(b, mp_frame_id(f), f->id_len);
        mp_buf_puts(b, "'");
    }
    /* XEP-0191 §3.3 (and XEP-0016 §2.13 since 1.7) */
    if (mp_buf_printf(b,
                      "><error type='cancel'><not-acceptable xmlns='" NS_STANZAS "'/>"
                      "<blocked xmlns='urn:xmpp:blocking:errors'/></error></%s>",
                      kind) == 0)
        mp_core_send(core, s, b->data, b->len);
    return 1;
}

/* ---- sessions ---- */

void
mp_privacy_bind(mp_core *core, mp_cstream *s)
{
    mp_user *u = s->user;
    if (!u || u->privacy || u->count != 1)
        return;
    mp_privacy *p;
    if (load_state(core, core->cfg->hosts[s->host], s->node, &p) < 0 || !p)
        return;
    if (!p->lists) {
        mp_privacy_free(p); /* nothing to apply: keep the routing path at one NULL check */
        return;
    }
    u->privacy = p;
}

void
mp_privacy_unbind(mp_core *core, mp_cstream *s)
{
    mp_user *u = s->user;
    s->privacy = NULL;
    if (!u || !u->privacy)
        return;
    if (u->count <= 1) {
        mp_privacy_free(u->privacy);
        u->privacy = NULL;
        return;
    }
    mp_privacy *p = u->privacy;
    for (size_t i = 0; i < p->nblock_conns; i++) {
        if (p->block_conns[i] == s->conn) {
            p->block_conns[i] = p->block_conns[--p->nblock_conns];
            break;
        }
    }
}

/* ---- for the modules ---- */

static mp_cstream *
bound(mp_core *core, uint64_t conn)
{
    mp_cstream *s = mp_core_stream(core, conn);
    return s && s->state == CS_BOUND && s->user ? s : NULL;
}

mp_privacy *
mp_privacy_account(mp_core *core, uint64_t conn)
{
    mp_cstream *s = bound(core, conn);
    if (!s)
        return NULL;
    if (!s->user->privacy)
        s->user->privacy = calloc(1, sizeof *s->user->privacy);
    return s->user->privacy;
}

mp_privacy_list *
mp_privacy_active(mp_core *core, uint64_t conn)
{
    mp_cstream *s = bound(core, conn);
    return s ? s->privacy : NULL;
}

void
mp_privacy_set_active(mp_core *core, uint64_t conn, mp_privacy_list *l)
{
    mp_cstream *s = bound(core, conn);
    if (s)
        s->privacy = l;
}

int
mp_privacy_in_use(mp_core *core, uint64_t conn, const mp_privacy_list *l)
{
    mp_cstream *s = bound(core, conn);
    if (!s || !s->user->privacy)
        return 0;
    int n = 0;
    for (mp_cstream *r = s->user->resources; r; r = r->next_res)
        if (r != s && (r->privacy == l || (!r->privacy && s->user->privacy->def == l)))
            n++;
    return n;
}

int
mp_privacy_save(mp_core *core, uint64_t conn)
{
    mp_cstream *s = bound(core, conn);
    if (!s)
        return MP_ENOTFOUND;
    mp_privacy *p = s->user->privacy;
    mp_buf doc = {0};
    int rc = p && p->lists ? mp_privacy_serialize(p, &doc) : 0;
    if (rc == 0) {
        mp_store *st = core->store;
        rc = st->ops->blob_put(st, core->cfg->hosts[s->host], s->node, KIND_PRIVACY, "",
                               doc.data ? doc.data : "", doc.len);
    }
    mp_buf_free(&doc);
    if (rc < 0)
        mp_err("privacy lists of %.*s: cannot store: %s", (int)s->bare_len, s->full,
               mp_strerror(rc));
    return rc;
}

static void
push(mp_core *core, mp_cstream *r, const char *payload, size_t len)
{
    char id[17];
    mp_random_token(id, 16);
    mp_buf b = {0};
    mp_buf_printf(&b, "<iq type='set' id='push%s' to='", id);
    mp_xml_escape_attr(&b, r->full, r->full_len);
    mp_buf_puts(&b, "'>");
    mp_buf_append(&b, payload, len);
    if (mp_buf_puts(&b, "</iq>") == 0)
        mp_core_send(core, r, b.data, b.len);
    mp_buf_free(&b);
}

void
mp_privacy_push_list(mp_core *core, uint64_t conn, const char *name)
{
    mp_cstream *s = bound(core, conn);
    if (!s)
        return;
    mp_buf b = {0};
    mp_buf_puts(&b, "<query xmlns='" MP_NS_PRIVACY "'><list name='");
    mp_xml_escape_attr(&b, name, strlen(name));
    if (mp_buf_puts(&b, "'/></query>") == 0)
        for (mp_cstream *r = s->user->resources; r; r = r->next_res)
            push(core, r, b.data, b.len);
    mp_buf_free(&b);
}

int
mp_privacy_block_interest(mp_core *core, uint64_t conn)
{
    mp_privacy *p = mp_privacy_account(core, conn);
    if (!p)
        return MP_ENOMEM;
    for (size_t i = 0; i < p->nblock_conns; i++)
        if (p->block_conns[i] == conn)
            return 0;
    uint64_t *c = realloc(p->block_conns, (p->nblock_conns + 1) * sizeof *c);
    if (!c)
        return MP_ENOMEM;
    c[p->nblock_conns++] = conn;
    p->block_conns = c;
    return 0;
}

void
mp_privacy_push_blocklist(mp_core *core, uint64_t conn, const char *payload, size_t len)
{
    mp_cstream *s = bound(core, conn);
    if (!s || !s->user->privacy)
        return;
    mp_privacy *p = s->user->privacy;
    for (mp_cstream *r = s->user->resources; r; r = r->next_res)
        for (size_t i = 0; i < p->nblock_conns; i++)
            if (p->block_conns[i] == r->conn)
                push(core, r, payload, len);
}

/* The available resources of the local account jid names (one when it has a resource). */
typedef int (*each_fn)(mp_core *core, mp_cstream *t, void *ud);

static void
each_target(mp_core *core, const char *jid, each_fn fn, void *ud)
{
    mp_jid j;
    char bare[MP_JID_MAX];
    if (mp_jid_prep(jid, strlen(jid), &j) < 0 || !j.node_len ||
        mp_jid_bare(&j, bare, sizeof bare) < 0)
        return;
    mp_user *u = mp_core_user(core, bare, strlen(bare));
    for (mp_cstream *t = u ? u->resources : NULL; t; t = t->next_res) {
        if (!t->available)
            continue;
        if (j.resource_len && (t->full_len - t->bare_len - 1 != j.resource_len ||
                               memcmp(t->full + t->bare_len + 1, j.resource, j.resource_len)))
            continue;
        fn(core, t, ud);
    }
}

typedef struct send_ctx {
    mp_cstream *from;
    const char *to;
} send_ctx;

static int
send_unavailable(mp_core *core, mp_cstream *t, void *ud)
{
    send_ctx *sc = ud;
    mp_buf b = {0};
    mp_buf_puts(&b, "<presence from='");
    mp_xml_escape_attr(&b, sc->from->full, sc->from->full_len);
    mp_buf_puts(&b, "' to='");
    mp_xml_escape_attr(&b, sc->to, strlen(sc->to));
    if (mp_buf_puts(&b, "' type='unavailable'/>") == 0)
        mp_csi_send(core, t, b.data, b.len); /* replaces what CSI may hold from the same JID */
    mp_buf_free(&b);
    return 0;
}

void
mp_privacy_send_unavailable(mp_core *core, uint64_t conn, const char *jid)
{
    mp_cstream *s = bound(core, conn);
    for (mp_cstream *r = s ? s->user->resources : NULL; r; r = r->next_res) {
        if (!r->available)
            continue;
        send_ctx sc = {r, jid};
        each_target(core, jid, send_unavailable, &sc);
    }
}

static int
send_presence(mp_core *core, mp_cstream *t, void *ud)
{
    send_ctx *sc = ud;
    if (!mp_privacy_blocks(core, t, MP_PRIV_PIN, sc->from->full, sc->from->full_len))
        mp_deliver_to(core, t, sc->from->presence, sc->from->presence_len, sc->to, strlen(sc->to));
    return 0;
}

void
mp_privacy_send_presence(mp_core *core, uint64_t conn, const char *jid)
{
    mp_cstream *s = bound(core, conn);
    if (!s)
        return;
    mp_jid j;
    char bare[MP_JID_MAX];
    if (mp_jid_prep(jid, strlen(jid), &j) < 0 || mp_jid_bare(&j, bare, sizeof bare) < 0)
        return;
    mp_item_copy c;
    if (mp_roster_load(core, core->cfg->hosts[s->host], s->node, bare, &c) < 0)
        return;
    int from = c.found && !(c.state & MP_SUB_HIDDEN) && (c.state & MP_SUB_FROM);
    mp_item_copy_free(&c);
    if (!from)
        return; /* RFC 6121: only subscribers get presence broadcast */
    for (mp_cstream *r = s->user->resources; r; r = r->next_res) {
        if (!r->available || !r->presence ||
            mp_privacy_blocks(core, r, MP_PRIV_POUT, jid, strlen(jid)))
            continue;
        send_ctx sc = {r, jid};
        each_target(core, jid, send_presence, &sc);
    }
}
