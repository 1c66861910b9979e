/* The presence engine (RFC 6121 §3, §4) and offline messages (XEP-0160), for local users.
 * Subscription states come from the roster in storage; the state machine is in
 * subscription.c. Presence of available resources is kept per session so probes are answered
 * from memory. */
#include "router/amp.h"
#include "router/core_int.h"
#include "router/component.h"
#include "magpie/module.h"
#include "router/archive.h"
#include "router/acl.h"
#include "router/csi.h"
#include "router/privacy.h"
#include "router/subscription.h"
#include "base/config.h"
#include "base/err.h"
#include "base/log.h"
#include "modules/last.h"
#include "storage/store.h"
#include "xml/escape.h"
#include "xml/framer.h"
#include "xmpp/jid.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Bytes of a stanza without 'to' get one after the element name. */
void
mp_deliver_to(mp_core *core, mp_cstream *r, const char *bytes, size_t len, const char *to,
              size_t to_len)
{
    size_t n = 1;
    while (n < len && bytes[n] != ' ' && bytes[n] != '>' && bytes[n] != '/')
        n++;
    mp_buf *b = &core->deliver;
    b->len = 0;
    mp_buf_append(b, bytes, n);
    mp_buf_puts(b, " to='");
    mp_xml_escape_attr(b, to, to_len);
    mp_buf_puts(b, "'");
    if (mp_buf_append(b, bytes + n, len - n) == 0) {
        core->stats.stanzas_routed++;
        mp_csi_send(core, r, b->data, b->len); /* XEP-0352: held while r is inactive */
    }
}

static int
is_local(mp_core *core, const char *bare)
{
    const char *at = strchr(bare, '@');
    const char *domain = at ? at + 1 : bare;
    return mp_config_is_host(core->cfg, domain, strlen(domain));
}

/* <presence from='from' to='to' type='type'/> to every available resource of to. */
static void
send_simple(mp_core *core, const char *from, const char *to, const char *type)
{
    mp_user *u = mp_core_user(core, to, strlen(to));
    if (!u)
        return;
    mp_buf b = {0};
    mp_buf_puts(&b, "<presence from='");
    mp_xml_escape_attr(&b, from, strlen(from));
    mp_buf_puts(&b, "' to='");
    mp_xml_escape_attr(&b, to, strlen(to));
    /* XEP-0016: unavailable is a notification, subscription stanzas only 'all' items block */
    int what = strcmp(type, "unavailable") == 0 ? MP_PRIV_PIN : MP_PRIV_OTHER;
    if (mp_buf_printf(&b, "' type='%s'/>", type) == 0) {
        for (mp_cstream *r = u->resources; r; r = r->next_res)
            if (r->available && !mp_privacy_blocks(core, r, what, from, strlen(from)))
                mp_csi_send(core, r, b.data, b.len);
    }
    mp_buf_free(&b);
}

/* The presence of each available resource of user (or their unavailable presence) to each
 * available resource of contact. */
static void
send_presence_of(mp_core *core, const char *user, const char *contact, int unavailable)
{
    mp_user *u = mp_core_user(core, user, strlen(user));
    mp_user *c = mp_core_user(core, contact, strlen(contact));
    if (!u || !c)
        return;
    for (mp_cstream *r = u->resources; r; r = r->next_res) {
        if (!r->available || mp_privacy_blocks(core, r, MP_PRIV_POUT, contact, strlen(contact)))
            continue;
        if (unavailable) {
            send_simple(core, r->full, contact, "unavailable");
            continue;
        }
        for (mp_cstream *t = c->resources; t; t = t->next_res)
            if (t->available && r->presence &&
                !mp_privacy_blocks(core, t, MP_PRIV_PIN, r->full, r->full_len))
                mp_deliver_to(core, t, r->presence, r->presence_len, contact, strlen(contact));
    }
}

static int
account_exists(mp_core *core, const char *domain, const char *node)
{
    mp_user_cred cred;
    int rc = core->store->ops->user_get(core->store, domain, node, &cred);
    memset(&cred, 0, sizeof cred);
    return rc;
}

/* ---- subscriptions ---- */

/* A contact who is not in the roster leaves a hidden row while a request is pending; with no
 * request left the row goes. */
static void
store_state(mp_core *core, const char *domain, const char *node, const char *jid,
            const mp_item_copy *cur, int state, int visible)
{
    if (visible) {
        mp_roster_set_state(core, domain, node, jid, cur, state);
        return;
    }
    mp_store *st = core->store;
    if (state == MP_SUB_NONE) {
        if (cur->found && st->ops->roster_delete(st, domain, node, jid, NULL) < 0)
            mp_err("roster of %s@%s: cannot drop the request of %s", node, domain, jid);
        return;
    }
    mp_roster_set_state(core, domain, node, jid, cur, state | MP_SUB_HIDDEN);
}

static void
inbound_subscription(mp_core *core, const char *from, const char *to, int type, int depth)
{
    mp_jid j;
    if (depth > 2 || !is_local(core, to) || mp_jid_prep(to, strlen(to), &j) < 0 || !j.node_len)
        return; /* federation comes later; nothing else to do for remote contacts */
    int rc = account_exists(core, j.domain, j.node);
    if (rc == MP_ENOTFOUND) {
        /* RFC 6121 §3.1.3: no such user, the server says no on its behalf. */
        if (type == MP_SUBSCRIBE)
            inbound_subscription(core, to, from, MP_UNSUBSCRIBED, depth + 1);
        return;
    }
    if (rc < 0)
        return;
    mp_item_copy cur;
    if (mp_roster_load(core, j.domain, j.node, from, &cur) < 0)
        return;
    mp_sub_inbound_effect ie;
    int visible = cur.found && !(cur.state & MP_SUB_HIDDEN);
    int old = cur.found ? cur.state & MP_SUB_MASK : MP_SUB_NONE;
    mp_sub_inbound(old, visible, type, &ie);
    if (ie.e.changed)
        store_state(core, j.domain, j.node, from, &cur, ie.e.state, visible);
    mp_item_copy_free(&cur);
    if (ie.e.route)
        send_simple(core, from, to, mp_sub_type_name(type));
    if (type == MP_UNSUBSCRIBE && (old & MP_SUB_FROM) && !(ie.e.state & MP_SUB_FROM))
        send_presence_of(core, to, from, 1); /* §3.3.3 */
    if (ie.auto_reply >= 0) {
        inbound_subscription(core, to, from, ie.auto_reply, depth + 1);
        if (ie.auto_reply == MP_SUBSCRIBED)
            send_presence_of(core, to, from, 0);
    }
}

void
mp_presence_subscription(mp_core *core, mp_cstream *s, const char *contact, int type,
                         int from_client)
{
    const char *domain = core->cfg->hosts[s->host];
    char user[MP_JID_MAX];
    memcpy(user, s->full, s->bare_len);
    user[s->bare_len] = '\0';
    if (strcmp(user, contact) == 0)
        return; /* no subscriptions to oneself */
    mp_item_copy cur;
    if (mp_roster_load(core, domain, s->node, contact, &cur) < 0)
        return;
    mp_sub_effect e;
    int visible = cur.found && !(cur.state & MP_SUB_HIDDEN);
    int old = cur.found ? cur.state & MP_SUB_MASK : MP_SUB_NONE;
    mp_sub_outbound(old, visible, type, &e);
    if (e.changed || (e.create && !visible))
        store_state(core, domain, s->node, contact, &cur, e.state, visible || e.create);
    mp_item_copy_free(&cur);
    if (e.route)
        inbound_subscription(core, user, contact, type, 0);
    /* RFC 6121 §3.1.5: approving sends our presence; §3.2.2: cancelling sends unavailable. */
    if (type == MP_SUBSCRIBED && (e.state & MP_SUB_FROM) && !(old & MP_SUB_FROM))
        send_presence_of(core, user, contact, 0);
    if (type == MP_UNSUBSCRIBED && (old & MP_SUB_FROM) && !(e.state & MP_SUB_FROM))
        send_presence_of(core, user, contact, 1);
    (void)from_client;
}

/* ---- broadcast ---- */

typedef struct bcast {
    mp_core *core;
    mp_cstream *s;
    const char *bytes;
    size_t len;
    int initial;
} bcast;

static int
bcast_item(const mp_roster_item *it, void *ud)
{
    bcast *bc = ud;
    mp_core *core = bc->core;
    if (!mp_acl_presence_visible(core, bc->s->full, it->jid))
        return 0; /* acl.see_presence: items from before the policy stay silent */
    mp_user *c = mp_core_user(core, it->jid, strlen(it->jid));
    if ((it->state & MP_SUB_FROM) && c &&
        !mp_privacy_blocks(core, bc->s, MP_PRIV_POUT, it->jid, strlen(it->jid))) {
        for (mp_cstream *t = c->resources; t; t = t->next_res)
            if (t->available && !mp_privacy_blocks(core, t, MP_PRIV_PIN, bc->s->full,
                                                   bc->s->full_len))
                mp_deliver_to(core, t, bc->bytes, bc->len, it->jid, strlen(it->jid));
    }
    if (!bc->initial)
        return 0;
    /* Initial presence: the contacts' presence (a local probe, RFC 6121 §4.3), and the
     * subscription requests that waited for the user. */
    if ((it->state & MP_SUB_TO) && c) {
        for (mp_cstream *r = c->resources; r; r = r->next_res)
            if (r->available && r->presence &&
                !mp_privacy_blocks(core, r, MP_PRIV_POUT, bc->s->full, bc->s->full_len) &&
                !mp_privacy_blocks(core, bc->s, MP_PRIV_PIN, r->full, r->full_len))
                mp_deliver_to(core, bc->s, r->presence, r->presence_len, bc->s->full,
                              bc->s->full_len);
    }
    if ((it->state & MP_SUB_PENDING_IN) &&
        !mp_privacy_blocks(core, bc->s, MP_PRIV_OTHER, it->jid, strlen(it->jid))) {
        mp_buf b = {0};
        mp_buf_puts(&b, "<presence from='");
        mp_xml_escape_attr(&b, it->jid, strlen(it->jid));
        mp_buf_puts(&b, "' to='");
        mp_xml_escape_attr(&b, bc->s->full, bc->s->bare_len);
        if (mp_buf_puts(&b, "' type='subscribe'/>") == 0)
            mp_csi_send(core, bc->s, b.data, b.len);
        mp_buf_free(&b);
    }
    return 0;
}

static void
to_roster(mp_core *core, mp_cstream *s, const char *bytes, size_t len, int initial)
{
    bcast bc = {core, s, bytes, len, initial};
    mp_store *st = core->store;
    int rc = st->ops->roster_list(st, core->cfg->hosts[s->host], s->node, bcast_item, &bc, NULL);
    if (rc < 0)
        mp_err("roster of %s: cannot read for presence: %s", s->full, mp_strerror(rc));
}

static void
to_own_resources(mp_core *core, mp_cstream *s, const char *bytes, size_t len)
{
    for (mp_cstream *r = s->user ? s->user->resources : NULL; r; r = r->next_res)
        if (r->available || r == s)
            mp_deliver_to(core, r, bytes, len, r->full, r->full_len);
}

static void
directed_free(mp_cstream *s)
{
    while (s->directed) {
        mp_directed *d = s->directed;
        s->directed = d->next;
        free(d);
    }
}

static void
go_unavailable(mp_core *core, mp_cstream *s, const char *bytes, size_t len)
{
    to_own_resources(core, s, bytes, len);
    s->available = 0;
    to_roster(core, s, bytes, len, 0);
    for (mp_directed *d = s->directed; d; d = d->next) {
        mp_jid j;
        if (mp_jid_prep(d->jid, d->len, &j) < 0)
            continue;
        char bare[MP_JID_MAX];
        int bl = mp_jid_bare(&j, bare, sizeof bare);
        mp_user *u = bl > 0 ? mp_core_user(core, bare, (size_t)bl) : NULL;
        if (mp_privacy_blocks(core, s, MP_PRIV_POUT, d->jid, d->len))
            continue;
        const mp_component *c = mp_component_find(core, j.domain, j.domain_len);
        if (c) { /* a room learns its occupant left */
            mp_component_stanza(core, c, s, s->full, s->full_len, &j, MP_EL_PRESENCE, bytes, len);
            continue;
        }
        for (mp_cstream *r = u ? u->resources : NULL; r; r = r->next_res)
            if (r->available && !mp_privacy_blocks(core, r, MP_PRIV_PIN, s->full, s->full_len))
                mp_deliver_to(core, r, bytes, len, d->jid, d->len);
    }
    directed_free(s);
    free(s->presence);
    s->presence = NULL;
    s->presence_len = 0;
    mp_hooks_presence(core, s->full, NULL, 0);
}

static void offline_flush(mp_core *core, mp_cstream *s);

static void
go_available(mp_core *core, mp_cstream *s, const mp_frame *f)
{
    const char *bytes = mp_frame_payload(f);
    size_t len = f->payload_len;
    mp_xnode *el = NULL;
    s->priority = 0;
    if (mp_xml_parse(core->parser, &core->arena, "jabber:client", bytes, len, &el) == 0) {
        const mp_xnode *p = mp_xnode_child(el, "jabber:client", "priority");
        if (p && p->text_len) {
            long v = strtol(p->text, NULL, 10);
            s->priority = v < -128 ? -128 : v > 127 ? 127 : (int)v;
        }
    }
    mp_buf av = {0}; /* XEP-0398: the avatar's hash put in */
    if (mp_avatar_presence(core, s, bytes, len, el, &av)) {
        bytes = av.data;
        len = av.len;
    }
    char *copy = malloc(len);
    if (copy) {
        memcpy(copy, bytes, len);
        free(s->presence);
        s->presence = copy;
        s->presence_len = len;
    }
    int initial = !s->initial_sent;
    s->available = 1;
    s->initial_sent = 1;
    to_own_resources(core, s, bytes, len);
    to_roster(core, s, bytes, len, initial);
    if (initial && s->priority >= 0)
        offline_flush(core, s);
    mp_buf_free(&av);
    mp_hooks_presence(core, s->full, el, initial); /* PEP, entity capabilities */
}

static void
remember_directed(mp_cstream *s, const char *to, size_t len, int available)
{
    mp_directed **pp = &s->directed;
    for (; *pp; pp = &(*pp)->next) {
        if ((*pp)->len == len && memcmp((*pp)->jid, to, len) == 0) {
            if (!available) {
                mp_directed *d = *pp;
                *pp = d->next;
                free(d);
            }
            return;
        }
    }
    if (!available)
        return;
    mp_directed *d = malloc(sizeof *d + len + 1);
    if (!d)
        return;
    memcpy(d->jid, to, len);
    d->jid[len] = '\0';
    d->len = len;
    d->next = s->directed;
    s->directed = d;
}

static void
directed(mp_core *core, mp_cstream *s, const mp_frame *f, const mp_jid *to)
{
    char bare[MP_JID_MAX];
    int bl = mp_jid_bare(to, bare, sizeof bare);
    if (bl < 0 || !to->node_len || !mp_config_is_host(core->cfg, to->domain, to->domain_len))
        return; /* presence to servers and remote users is dropped until federation */
    if (!mp_acl_presence_visible(core, s->full, bare))
        return; /* acl.see_presence */
    if (mp_privacy_blocks(core, s, MP_PRIV_POUT, mp_frame_to(f), f->to_len))
        return; /* XEP-0016 presence-out, XEP-0126 invisibility */
    const char *bytes = mp_frame_payload(f);
    size_t len = f->payload_len;
    mp_buf av = {0}; /* XEP-0398 §4: directed presence carries the avatar too */
    if (f->type_len == 0 && mp_avatar_presence(core, s, bytes, len, NULL, &av)) {
        bytes = av.data;
        len = av.len;
    }
    mp_user *u = mp_core_user(core, bare, (size_t)bl);
    for (mp_cstream *r = u ? u->resources : NULL; r; r = r->next_res) {
        if (to->resource_len) {
            if (r->full_len - r->bare_len - 1 != to->resource_len ||
                memcmp(r->full + r->bare_len + 1, to->resource, to->resource_len) != 0)
                continue;
        } else if (!r->available) {
            continue;
        }
        if (mp_privacy_blocks(core, r, MP_PRIV_PIN, s->full, s->full_len))
            continue;
        core->stats.stanzas_routed++;
        mp_csi_send(core, r, bytes, len);
    }
    mp_buf_free(&av);
    if (mp_frame_type_is(f, "error"))
        return;
    char full[MP_JID_MAX];
    int fl = mp_jid_full(to, full, sizeof full);
    if (fl > 0)
        remember_directed(s, full, (size_t)fl, !mp_frame_type_is(f, "unavailable"));
}

/* Presence to a service (a room): handed over and, when directed available presence, kept so
 * the service hears the session's unavailable (RFC 6121 §4.6.3) -- how a room learns that an
 * occupant's client vanished. */
static void
component_presence(mp_core *core, mp_cstream *s, const mp_frame *f, const mp_jid *to,
                   const mp_component *c)
{
    if (mp_privacy_blocks(core, s, MP_PRIV_POUT, mp_frame_to(f), f->to_len))
        return;
    const char *bytes = mp_frame_payload(f);
    size_t len = f->payload_len;
    mp_buf av = {0}; /* XEP-0398 §4: "such as MUC joins" */
    if (f->type_len == 0 && mp_avatar_presence(core, s, bytes, len, NULL, &av)) {
        bytes = av.data;
        len = av.len;
    }
    int rc = mp_component_stanza(core, c, s, s->full, s->full_len, to, MP_EL_PRESENCE, bytes, len);
    mp_buf_free(&av);
    if (rc < 0 || mp_frame_type_is(f, "error") || mp_frame_type_is(f, "probe") ||
        mp_sub_type_parse(mp_frame_type(f), f->type_len) >= 0)
        return;
    char full[MP_JID_MAX];
    int fl = mp_jid_full(to, full, sizeof full);
    if (fl > 0)
        remember_directed(s, full, (size_t)fl, !mp_frame_type_is(f, "unavailable"));
}

void
mp_presence_outbound(mp_core *core, mp_cstream *s, const mp_frame *f)
{
    if (f->to_len == 0) {
        if (f->type_len == 0)
            go_available(core, s, f);
        else if (mp_frame_type_is(f, "unavailable"))
            go_unavailable(core, s, mp_frame_payload(f), f->payload_len);
        else
            mp_debug("conn %016llx: presence of type %.*s without 'to' ignored",
                     (unsigned long long)s->conn, (int)f->type_len, mp_frame_type(f));
        return;
    }
    mp_jid to;
    if (mp_jid_prep(mp_frame_to(f), f->to_len, &to) < 0)
        return; /* RFC 6121 §4.6.3: bad presence is dropped */
    const mp_component *c = mp_component_find(core, to.domain, to.domain_len);
    if (c) {
        component_presence(core, s, f, &to, c);
        return;
    }
    int sub = mp_sub_type_parse(mp_frame_type(f), f->type_len);
    if (sub >= 0) {
        char bare[MP_JID_MAX];
        if (to.node_len && mp_jid_bare(&to, bare, sizeof bare) > 0 &&
            !mp_acl_subscription_refused(core, s, f, bare, sub) &&
            !mp_privacy_blocks(core, s, MP_PRIV_OTHER, bare, strlen(bare)))
            mp_presence_subscription(core, s, bare, sub, 1);
        return;
    }
    if (mp_frame_type_is(f, "probe"))
        return; /* probes are the server's business (§4.3) */
    directed(core, s, f, &to);
}

void
mp_presence_session_end(mp_core *core, mp_cstream *s)
{
    mp_csi_end(s); /* XEP-0352: held presence is for nobody now */
    /* XEP-0012: every session end counts, also after an explicit unavailable. */
    if (!core->stopping)
        mp_last_logout(core, core->cfg->hosts[s->host], s->node, NULL);
    if (!s->available || core->stopping) {
        directed_free(s);
        free(s->presence);
        s->presence = NULL;
        return;
    }
    mp_buf b = {0};
    mp_buf_puts(&b, "<presence from='");
    mp_xml_escape_attr(&b, s->full, s->full_len);
    if (mp_buf_puts(&b, "' type='unavailable'/>") == 0)
        go_unavailable(core, s, b.data, b.len);
    mp_buf_free(&b);
}

/* ---- offline messages ---- */

int
mp_offline_store(mp_core *core, const char *domain, const char *node, const mp_frame *f)
{
    return mp_offline_store_bytes(core, domain, node, mp_frame_payload(f), f->payload_len, 0);
}

int
mp_offline_store_bytes(mp_core *core, const char *domain, const char *node, const char *bytes,
                       size_t len, int acked)
{
    int max = core->cfg->offline_max_messages;
    if (max <= 0 && !acked)
        return MP_ENOTFOUND;
    if (acked) /* its sender was told it arrived: no quota can refuse it now */
        max = INT_MAX;
    int rc = account_exists(core, domain, node);
    if (rc < 0)
        return rc == MP_ENOTFOUND ? rc : MP_EIO;
    mp_store *st = core->store;
    rc = st->ops->offline_push(st, domain, node, bytes, len, (int64_t)time(NULL), max);
    if (rc == 0)
        mp_archive_flush(core); /* stored offline means durable: commit an open archive batch */
    if (rc == 0 && !acked) { /* XEP-0357: an acked one was announced while pending */
        char bare[MP_JID_MAX];
        snprintf(bare, sizeof bare, "%s@%s", node, domain);
        mp_core_offline_notify(core, bare, NULL, bytes, len, MP_OFFLINE_STORED);
    }
    if (rc == MP_ELIMIT)
        mp_info("offline queue of %s@%s is full (%d messages)", node, domain, max);
    else if (rc < 0)
        mp_err("offline queue of %s@%s: cannot store: %s", node, domain, mp_strerror(rc));
    return rc;
}

typedef struct flush_ctx {
    mp_core *core;
    mp_cstream *s;
} flush_ctx;

/* Each message goes out with a XEP-0203 delay stamp of when it was stored. */
static int
flush_one(const char *stanza, size_t len, int64_t stamp, void *ud)
{
    flush_ctx *fc = ud;
    mp_core *core = fc->core;
    if (mp_amp_offline(core, fc->s, stanza, len))
        return 0; /* XEP-0079 expire-at passed while it waited */
    time_t t = (time_t)stamp;
    struct tm tm;
    char when[32];
    gmtime_r(&t, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    mp_buf *b = &core->deliver;
    b->len = 0;
    int empty = len >= 2 && memcmp(stanza + len - 2, "/>", 2) == 0;
    size_t keep = empty ? len - 2 : len - strlen("</message>");
    if (len < strlen("<message/>") || keep > len)
        return 0;
    mp_buf_append(b, stanza, keep);
    if (empty)
        mp_buf_puts(b, ">");
    mp_buf_printf(b, "<delay xmlns='urn:xmpp:delay' from='%s' stamp='%s'>Offline Storage</delay>",
                  core->cfg->hosts[fc->s->host], when);
    if (mp_buf_puts(b, "</message>") < 0)
        return MP_ENOMEM;
    core->stats.stanzas_routed++;
    mp_core_send(core, fc->s, b->data, b->len);
    return 0;
}

static void
offline_flush(mp_core *core, mp_cstream *s)
{
    if (core->cfg->offline_max_messages <= 0)
        return;
    flush_ctx fc = {core, s};
    mp_store *st = core->store;
    int rc = st->ops->offline_take(st, core->cfg->hosts[s->host], s->node, flush_one, &fc);
    if (rc < 0)
        mp_err("offline queue of %s: cannot deliver: %s", s->full, mp_strerror(rc));
    else if (rc > 0)
        mp_info("delivered %d offline message(s) to %s", rc, s->full);
}
