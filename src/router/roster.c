/* Rosters (RFC 6121 §2): get with versioning, set, remove, and pushes to every resource that
 * asked for the roster. Subscription states are changed only by the presence engine. */
#include "router/core_int.h"
#include "router/subscription.h"
#include "magpie/module.h"
#include "base/config.h"
#include "base/err.h"
#include "base/log.h"
#include "base/rand.h"
#include "storage/store.h"
#include "xml/escape.h"
#include "xmpp/jid.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define NS_ROSTER "jabber:iq:roster"
#define MAX_GROUPS 64

/* ---- items ---- */

void
mp_item_copy_free(mp_item_copy *c)
{
    free(c->name);
    for (size_t i = 0; i < c->ngroups; i++)
        free(c->groups[i]);
    free(c->groups);
    memset(c, 0, sizeof *c);
}

static int
copy_item(const mp_roster_item *it, void *ud)
{
    mp_item_copy *c = ud;
    c->found = 1;
    c->state = it->state;
    c->name = it->name ? strdup(it->name) : NULL;
    c->groups = it->ngroups ? calloc(it->ngroups, sizeof *c->groups) : NULL;
    if ((it->name && !c->name) || (it->ngroups && !c->groups))
        return MP_ENOMEM;
    for (size_t i = 0; i < it->ngroups; i++) {
        if (!(c->groups[i] = strdup(it->groups[i])))
            return MP_ENOMEM;
        c->ngroups++;
    }
    return 0;
}

int
mp_roster_load(mp_core *core, const char *domain, const char *node, const char *jid,
               mp_item_copy *c)
{
    memset(c, 0, sizeof *c);
    mp_store *st = core->store;
    int rc = st->ops->roster_get(st, domain, node, jid, copy_item, c);
    if (rc == MP_ENOTFOUND) {
        mp_item_copy_free(c);
        return 0;
    }
    if (rc < 0) {
        mp_item_copy_free(c);
        mp_err("roster of %s@%s: cannot read the item for %s: %s", node, domain, jid,
               mp_strerror(rc));
        return MP_EIO;
    }
    return 0;
}

int
mp_roster_set_state(mp_core *core, const char *domain, const char *node, const char *jid,
                    const mp_item_copy *c, int state)
{
    mp_roster_item it = {.jid = jid, .name = c->found ? c->name : NULL, .state = state,
                         .groups = c->found ? (const char *const *)c->groups : NULL,
                         .ngroups = c->found ? c->ngroups : 0};
    uint64_t ver = 0;
    mp_store *st = core->store;
    int rc = st->ops->roster_put(st, domain, node, &it, &ver);
    if (rc < 0) {
        mp_err("roster of %s@%s: cannot store the item for %s: %s", node, domain, jid,
               mp_strerror(rc));
        return rc;
    }
    if (state & MP_SUB_HIDDEN)
        return 0; /* not a roster item: nothing to tell the user's clients */
    char bare[2 * MP_JID_PART_MAX + 2];
    int n = snprintf(bare, sizeof bare, "%s@%s", node, domain);
    mp_roster_push(core, bare, (size_t)n, &it, ver, 0);
    return 0;
}

static void
write_item(mp_buf *b, const mp_roster_item *it, int removed)
{
    mp_buf_puts(b, "<item jid='");
    mp_xml_escape_attr(b, it->jid, strlen(it->jid));
    mp_buf_puts(b, "'");
    if (removed) {
        mp_buf_puts(b, " subscription='remove'/>");
        return;
    }
    if (it->name) {
        mp_buf_puts(b, " name='");
        mp_xml_escape_attr(b, it->name, strlen(it->name));
        mp_buf_puts(b, "'");
    }
    mp_buf_printf(b, " subscription='%s'", mp_sub_attr(it->state));
    if (it->state & MP_SUB_PENDING_OUT)
        mp_buf_puts(b, " ask='subscribe'");
    if (it->state & MP_SUB_APPROVED)
        mp_buf_puts(b, " approved='true'"); /* RFC 6121 §2.1.2.1, set only by §3.4 */
    if (!it->ngroups) {
        mp_buf_puts(b, "/>");
        return;
    }
    mp_buf_puts(b, ">");
    for (size_t i = 0; i < it->ngroups; i++) {
        mp_buf_puts(b, "<group>");
        mp_xml_escape_text(b, it->groups[i], strlen(it->groups[i]));
        mp_buf_puts(b, "</group>");
    }
    mp_buf_puts(b, "</item>");
}

void
mp_roster_push(mp_core *core, const char *bare, size_t bare_len, const mp_roster_item *item,
               uint64_t ver, int removed)
{
    mp_user *u = mp_core_user(core, bare, bare_len);
    if (!u)
        return;
    mp_buf b = {0};
    for (mp_cstream *r = u->resources; r; r = r->next_res) {
        if (!r->roster_requested)
            continue;
        char id[17];
        mp_random_token(id, 16);
        b.len = 0;
        mp_buf_printf(&b, "<iq type='set' id='push%s' to='", id);
        mp_xml_escape_attr(&b, r->full, r->full_len);
        mp_buf_printf(&b, "'><query xmlns='" NS_ROSTER "' ver='%" PRIu64 "'>", ver);
        write_item(&b, item, removed);
        if (mp_buf_puts(&b, "</query></iq>") == 0)
            mp_core_send(core, r, b.data, b.len);
    }
    mp_buf_free(&b);
}

/* ---- the roster IQ ---- */

typedef struct list_ctx {
    mp_buf *b;
} list_ctx;

static int
list_item(const mp_roster_item *it, void *ud)
{
    list_ctx *lc = ud;
    if (it->state & MP_SUB_HIDDEN)
        return 0;
    write_item(lc->b, it, 0);
    return 0;
}

static int
roster_get(mp_iq *iq, void *ud)
{
    mp_core *core = iq->core;
    mp_cstream *s = mp_core_stream(core, iq->conn);
    if (!s)
        return 0;
    if (!mp_iq_is_own(iq))
        return mp_iq_error(iq, "auth", "forbidden");
    const char *domain = core->cfg->hosts[s->host];
    mp_store *st = core->store;
    s->roster_requested = 1;
    mp_buf items = {0};
    list_ctx lc = {&items};
    uint64_t ver = 0;
    int rc = st->ops->roster_list(st, domain, s->node, list_item, &lc, &ver);
    if (rc < 0) {
        mp_buf_free(&items);
        mp_err("roster of %s@%s: cannot read: %s", s->node, domain, mp_strerror(rc));
        return mp_iq_error(iq, "wait", "internal-server-error");
    }
    /* RFC 6121 §2.6.3: the client's version is current, so the roster comes as pushes. */
    const char *cver = mp_xnode_attr(iq->payload, "ver");
    char vbuf[24];
    snprintf(vbuf, sizeof vbuf, "%" PRIu64, ver);
    if (cver && strcmp(cver, vbuf) == 0) {
        mp_buf_free(&items);
        return mp_iq_result(iq, NULL);
    }
    mp_buf *b = &core->scratch;
    b->len = 0;
    mp_buf_puts(b, "<iq type='result' id='");
    mp_xml_escape_attr(b, iq->id, strlen(iq->id));
    mp_buf_puts(b, "' to='");
    mp_xml_escape_attr(b, s->full, s->full_len);
    mp_buf_printf(b, "'><query xmlns='" NS_ROSTER "' ver='%s'>", vbuf);
    mp_buf_append(b, items.data, items.len);
    mp_buf_free(&items);
    if (mp_buf_puts(b, "</query></iq>") < 0)
        return mp_iq_error(iq, "wait", "resource-constraint");
    mp_core_send(core, s, b->data, b->len);
    return 0;
}

/* The user removes a contact (RFC 6121 §2.5.2): cancel both directions first. */
static void
remove_contact(mp_core *core, mp_cstream *s, const char *jid, int state)
{
    if (state & (MP_SUB_TO | MP_SUB_PENDING_OUT))
        mp_presence_subscription(core, s, jid, MP_UNSUBSCRIBE, 0);
    if (state & (MP_SUB_FROM | MP_SUB_PENDING_IN))
        mp_presence_subscription(core, s, jid, MP_UNSUBSCRIBED, 0);
}

static int
roster_set(mp_iq *iq, void *ud)
{
    mp_core *core = iq->core;
    mp_cstream *s = mp_core_stream(core, iq->conn);
    if (!s)
        return 0;
    if (!mp_iq_is_own(iq))
        return mp_iq_error(iq, "auth", "forbidden");
    const mp_xnode *item = mp_xnode_child(iq->payload, NS_ROSTER, "item");
    if (!item)
        return mp_iq_error(iq, "modify", "bad-request");
    for (const mp_xnode *n = iq->payload->children; n; n = n->next)
        if (n != item)
            return mp_iq_error(iq, "modify", "bad-request"); /* exactly one item */
    const char *jattr = mp_xnode_attr(item, "jid");
    mp_jid j;
    if (!jattr || mp_jid_prep(jattr, strlen(jattr), &j) < 0 || j.resource_len)
        return mp_iq_error(iq, "modify", "jid-malformed");
    char jid[2 * MP_JID_PART_MAX + 2];
    if (mp_jid_bare(&j, jid, sizeof jid) < 0)
        return mp_iq_error(iq, "modify", "jid-malformed");
    const char *domain = core->cfg->hosts[s->host];
    const char *sub = mp_xnode_attr(item, "subscription");
    mp_item_copy cur;
    if (mp_roster_load(core, domain, s->node, jid, &cur) < 0)
        return mp_iq_error(iq, "wait", "internal-server-error");
    mp_store *st = core->store;
    if (cur.found && (cur.state & MP_SUB_HIDDEN)) {
        /* Adding someone whose request waits: the item appears with the request kept. */
        cur.state &= ~MP_SUB_HIDDEN;
        if (!(sub && strcmp(sub, "remove") == 0))
            cur.found = 1;
        else
            cur.found = 0;
    }
    if (sub && strcmp(sub, "remove") == 0) {
        if (!cur.found) {
            mp_item_copy_free(&cur);
            return mp_iq_error(iq, "cancel", "item-not-found");
        }
        remove_contact(core, s, jid, cur.state);
        mp_item_copy_free(&cur);
        uint64_t ver = 0;
        int rc = st->ops->roster_delete(st, domain, s->node, jid, &ver);
        if (rc < 0 && rc != MP_ENOTFOUND)
            return mp_iq_error(iq, "wait", "internal-server-error");
        mp_iq_result(iq, NULL);
        mp_roster_item it = {.jid = jid};
        mp_roster_push(core, s->full, s->bare_len, &it, ver, 1);
        return 0;
    }
    /* §2.1.2.2: clients do not set subscription states; "none" is tolerated as a no-op.
     * §2.1.2.1: nor 'approved' (pre-approval is presence business, §3.4): it is ignored, and
     * an approval on record stays with the item. */
    if ((sub && strcmp(sub, "none") != 0) || mp_xnode_attr(item, "ask")) {
        mp_item_copy_free(&cur);
        return mp_iq_error(iq, "modify", "bad-request");
    }
    const char *groups[MAX_GROUPS];
    size_t ngroups = 0;
    for (const mp_xnode *g = item->children; g; g = g->next) {
        if (strcmp(g->name, "group") != 0 || strcmp(g->ns, NS_ROSTER) != 0)
            continue;
        if (ngroups == MAX_GROUPS || g->text_len == 0) {
            mp_item_copy_free(&cur);
            return mp_iq_error(iq, "modify", "not-acceptable");
        }
        for (size_t k = 0; k < ngroups; k++) {
            if (strcmp(groups[k], g->text) == 0) {
                mp_item_copy_free(&cur);
                return mp_iq_error(iq, "modify", "bad-request"); /* §2.3.3 duplicate group */
            }
        }
        groups[ngroups++] = g->text;
    }
    const char *name = mp_xnode_attr(item, "name");
    mp_roster_item it = {.jid = jid, .name = name && *name ? name : NULL,
                         .state = cur.found ? cur.state : MP_SUB_NONE, .groups = groups,
                         .ngroups = ngroups};
    mp_item_copy_free(&cur);
    uint64_t ver = 0;
    if (st->ops->roster_put(st, domain, s->node, &it, &ver) < 0)
        return mp_iq_error(iq, "wait", "internal-server-error");
    mp_iq_result(iq, NULL);
    mp_roster_push(core, s->full, s->bare_len, &it, ver, 0);
    return 0;
}

static int
roster_load_module(mp_module *m)
{
    int rc = mp_module_iq(m, MP_IQ_GET, MP_TARGET_ACCOUNT, NS_ROSTER, "query", roster_get, NULL);
    if (rc == 0)
        rc = mp_module_iq(m, MP_IQ_SET, MP_TARGET_ACCOUNT, NS_ROSTER, "query", roster_set, NULL);
    return rc;
}

MP_MODULE(roster, MP_ABI_1, roster_load_module, NULL);
