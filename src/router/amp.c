/* XEP-0079 Advanced Message Processing. */
#include "router/amp.h"
#include "xmpp/datetime.h"
#include "router/csi.h"
#include "router/core_int.h"
#include "router/privacy.h"
#include "router/subscription.h"
#include "base/config.h"
#include "base/err.h"
#include "base/log.h"
#include "storage/store.h"
#include "xml/escape.h"
#include "xml/framer.h"
#include "xmpp/jid.h"

#include <string.h>
#include <time.h>

#define NS_STANZAS "urn:ietf:params:xml:ns:xmpp-stanzas"

typedef struct name_map {
    const char *name;
    int v;
} name_map;

static const name_map conditions[] = {
    {"deliver", MP_AMP_DELIVER},
    {"expire-at", MP_AMP_EXPIRE_AT},
    {"match-resource", MP_AMP_MATCH_RESOURCE},
};
static const name_map actions[] = {
    {"alert", MP_AMP_ALERT},
    {"drop", MP_AMP_DROP},
    {"error", MP_AMP_ERROR},
    {"notify", MP_AMP_NOTIFY},
};
static const name_map deliver_values[] = {
    {"direct", MP_AMP_DIRECT}, {"forward", MP_AMP_FORWARD}, {"gateway", MP_AMP_GATEWAY},
    {"none", MP_AMP_NONE},     {"stored", MP_AMP_STORED},
};
static const name_map match_values[] = {
    {"any", MP_AMP_ANY},
    {"exact", MP_AMP_EXACT},
    {"other", MP_AMP_OTHER},
};

#define LOOKUP(map, s) lookup(map, sizeof map / sizeof map[0], s)

static int
lookup(const name_map *m, size_t n, const char *s)
{
    for (size_t i = 0; s && i < n; i++)
        if (strcmp(m[i].name, s) == 0)
            return m[i].v;
    return 0;
}

/* ---- XEP-0082 DateTime ---- */

int
mp_amp_parse_datetime(const char *s, int64_t *out)
{
    int64_t us;
    /* XEP-0079 §3.3.2: expire-at MUST be UTC; local time or an offset is refused */
    if (!mp_datetime_is_utc(s) || mp_datetime_parse(s, &us) < 0)
        return MP_EINVAL;
    *out = us >= 0 ? us / 1000000 : -((-us + 999999) / 1000000); /* whole seconds, floored */
    return 0;
}

/* ---- parsing and evaluation ---- */

static void
judge_rule(mp_amp_rule *r, int per_hop)
{
    r->cond = LOOKUP(conditions, r->condition);
    r->act = LOOKUP(actions, r->action);
    r->fault = MP_AMP_OK;
    if (!r->action || !r->condition || !r->value || !*r->value) {
        r->fault = MP_AMP_INVALID; /* §4.2: all three attributes MUST be present */
        return;
    }
    if (!r->act) {
        r->fault = MP_AMP_BAD_ACTION;
        return;
    }
    switch (r->cond) {
    case MP_AMP_DELIVER:
        r->val = LOOKUP(deliver_values, r->value);
        break;
    case MP_AMP_MATCH_RESOURCE:
        r->val = LOOKUP(match_values, r->value);
        break;
    case MP_AMP_EXPIRE_AT:
        r->val = mp_amp_parse_datetime(r->value, &r->at) == 0;
        break;
    default:
        r->fault = MP_AMP_BAD_CONDITION;
        return;
    }
    if (!r->val)
        r->fault = MP_AMP_INVALID;
    (void)per_hop;
}

int
mp_amp_parse(mp_arena *arena, const mp_xnode *amp, mp_amp *a)
{
    memset(a, 0, sizeof *a);
    const char *ph = mp_xnode_attr(amp, "per-hop");
    int bad_hop = 0;
    if (ph) {
        if (strcmp(ph, "true") == 0 || strcmp(ph, "1") == 0)
            a->per_hop = 1;
        else if (strcmp(ph, "false") != 0 && strcmp(ph, "0") != 0)
            bad_hop = 1;
    }
    size_t n = 0;
    for (const mp_xnode *c = amp->children; c; c = c->next)
        if (strcmp(c->ns, MP_NS_AMP) == 0 && strcmp(c->name, "rule") == 0)
            n++;
    if (n == 0) {
        a->fault = MP_AMP_INVALID;
        return 0;
    }
    a->rules = mp_arena_alloc(arena, n * sizeof *a->rules);
    if (!a->rules)
        return MP_ENOMEM;
    memset(a->rules, 0, n * sizeof *a->rules);
    for (const mp_xnode *c = amp->children; c; c = c->next) {
        if (strcmp(c->ns, MP_NS_AMP) != 0 || strcmp(c->name, "rule") != 0)
            continue;
        mp_amp_rule *r = &a->rules[a->nrules++];
        r->condition = mp_xnode_attr(c, "condition");
        r->action = mp_xnode_attr(c, "action");
        r->value = mp_xnode_attr(c, "value");
        judge_rule(r, a->per_hop);
        if (bad_hop)
            r->fault = MP_AMP_INVALID;
        if (r->fault && (!a->fault || r->fault < a->fault))
            a->fault = r->fault;
    }
    return 0;
}

int
mp_amp_condition_met(const mp_amp *a, const mp_amp_rule *r, const mp_amp_outcome *o)
{
    if (r->fault)
        return 0;
    if (o->at_delivery)
        return r->cond == MP_AMP_EXPIRE_AT && o->now >= r->at;
    switch (r->cond) {
    case MP_AMP_DELIVER:
        /* forward and gateway never happen on a single server without gateways. */
        return r->val == o->deliver;
    case MP_AMP_EXPIRE_AT:
        /* A stored message is delivered later still, so a time already past is past then. */
        return o->deliver != MP_AMP_NONE && o->now >= r->at;
    case MP_AMP_MATCH_RESOURCE:
        if (a->per_hop)
            return 0; /* §3.3.3: not for per-hop rule sets; the rule is ignored */
        switch (r->val) {
        case MP_AMP_ANY:
            return o->deliver == MP_AMP_DIRECT;
        case MP_AMP_EXACT:
            /* A bare JID matches exactly only what has no resource: offline storage. */
            return o->deliver == MP_AMP_DIRECT ? o->exact
                                               : o->deliver == MP_AMP_STORED && !o->addressed_res;
        case MP_AMP_OTHER:
            return o->deliver == MP_AMP_DIRECT && o->other;
        default:
            return 0;
        }
    default:
        return 0;
    }
}

int
mp_amp_match(const mp_amp *a, const mp_amp_outcome *o)
{
    for (size_t i = 0; i < a->nrules; i++)
        if (mp_amp_condition_met(a, &a->rules[i], o))
            return (int)i;
    return -1;
}

/* ---- replies ---- */

static void
put_attr(mp_buf *b, const char *name, const char *v, int *err)
{
    if (!v)
        return;
    *err |= mp_buf_printf(b, " %s='", name);
    *err |= mp_xml_escape_attr(b, v, strlen(v));
    *err |= mp_buf_puts(b, "'");
}

static void
put_rule(mp_buf *b, const mp_amp_rule *r, int *err)
{
    *err |= mp_buf_puts(b, "<rule");
    put_attr(b, "action", r->action, err);
    put_attr(b, "condition", r->condition, err);
    put_attr(b, "value", r->value, err);
    *err |= mp_buf_puts(b, "/>");
}

static void
put_head(mp_buf *b, const mp_amp_reply *rp, int error, int *err)
{
    b->len = 0;
    *err |= mp_buf_puts(b, "<message");
    put_attr(b, "from", rp->server, err);
    put_attr(b, "to", rp->to, err);
    put_attr(b, "id", rp->id, err);
    if (error)
        *err |= mp_buf_puts(b, " type='error'");
    *err |= mp_buf_puts(b, ">");
}

int
mp_amp_build_event(mp_buf *b, const mp_amp_reply *rp, const mp_amp_rule *rule)
{
    static const char *const status[] = {"", "alert", "drop", "error", "notify"};
    int err = 0, error = rule->act == MP_AMP_ERROR;
    put_head(b, rp, error, &err);
    err |= mp_buf_printf(b, "<amp xmlns='" MP_NS_AMP "' status='%s'", status[rule->act]);
    put_attr(b, "from", rp->orig_from, &err);
    put_attr(b, "to", rp->orig_to, &err);
    err |= mp_buf_puts(b, ">");
    put_rule(b, rule, &err);
    err |= mp_buf_puts(b, "</amp>");
    if (error) {
        err |=
            mp_buf_puts(b, "<error type='modify' code='500'><undefined-condition xmlns='" NS_STANZAS
                           "'/><failed-rules xmlns='" MP_NS_AMP_ERRORS "'>");
        put_rule(b, rule, &err);
        err |= mp_buf_puts(b, "</failed-rules></error>");
    }
    err |= mp_buf_puts(b, "</message>");
    return err ? MP_ENOMEM : 0;
}

int
mp_amp_build_reject(mp_buf *b, const mp_amp_reply *rp, const mp_amp *a)
{
    static const struct {
        const char *code, *cond, *list;
    } kinds[] = {
        [MP_AMP_BAD_ACTION] = {"400", "bad-request", "unsupported-actions"},
        [MP_AMP_BAD_CONDITION] = {"400", "bad-request", "unsupported-conditions"},
        [MP_AMP_INVALID] = {"405", "not-acceptable", "invalid-rules"},
    };
    if (a->fault <= MP_AMP_OK || a->fault > MP_AMP_INVALID)
        return MP_EINVAL;
    int err = 0;
    put_head(b, rp, 1, &err);
    err |= mp_buf_puts(b, "<amp xmlns='" MP_NS_AMP "'");
    if (a->per_hop)
        err |= mp_buf_puts(b, " per-hop='true'");
    err |= mp_buf_puts(b, ">");
    for (size_t i = 0; i < a->nrules; i++)
        put_rule(b, &a->rules[i], &err);
    err |= mp_buf_printf(b,
                         "</amp><error type='modify' code='%s'><%s xmlns='" NS_STANZAS
                         "'/><%s xmlns='" MP_NS_AMP_ERRORS "'>",
                         kinds[a->fault].code, kinds[a->fault].cond, kinds[a->fault].list);
    for (size_t i = 0; i < a->nrules; i++)
        if (a->rules[i].fault == a->fault)
            put_rule(b, &a->rules[i], &err);
    err |= mp_buf_printf(b, "</%s></error></message>", kinds[a->fault].list);
    return err ? MP_ENOMEM : 0;
}

int
mp_amp_requested(const char *bytes, size_t len)
{
    return memmem(bytes, len, MP_NS_AMP, sizeof MP_NS_AMP - 1) != NULL;
}

/* ---- router hooks ---- */

void
mp_amp_enable(mp_core *core, int on)
{
    core->amp_enabled = on != 0;
}

int
mp_amp_enabled(const mp_core *core)
{
    return core->amp_enabled;
}

/* The <amp/> request of a message, or NULL: replies from servers (status set) and error
 * messages carry <amp/> too but ask for nothing. */
static const mp_xnode *
request_of(mp_core *core, const char *bytes, size_t len, const mp_xnode **msg)
{
    mp_xnode *el = NULL;
    if (mp_xml_parse(core->parser, &core->arena, MP_NS_CLIENT, bytes, len, &el) < 0)
        return NULL;
    const mp_xnode *amp = mp_xnode_child(el, MP_NS_AMP, "amp");
    if (!amp || mp_xnode_attr(amp, "status") || mp_xnode_child(el, MP_NS_CLIENT, "error"))
        return NULL;
    *msg = el;
    return amp;
}

static const char *
arena_str(mp_core *core, const char *s, size_t n)
{
    return mp_arena_strndup(&core->arena, s, n);
}

static int
same_resource(const mp_cstream *r, const char *res, size_t len)
{
    return r->full_len - r->bare_len - 1 == len && memcmp(r->full + r->bare_len + 1, res, len) == 0;
}

/* What route_to_user (route.c) will do with a message, decided the same way: the addressed
 * resource if it has a session, else the available resources of highest non-negative
 * priority (all for headlines), else offline storage when the account can have it; privacy
 * lists (XEP-0016) that refuse the sender mean no delivery. */
static void
predict(mp_core *core, mp_cstream *s, const mp_frame *f, const mp_jid *to, mp_user *u,
        mp_amp_outcome *o)
{
    memset(o, 0, sizeof *o);
    o->now = (int64_t)time(NULL);
    o->addressed_res = to->resource_len > 0;
    o->deliver = MP_AMP_NONE;
    if (to->resource_len) {
        for (mp_cstream *r = u ? u->resources : NULL; r; r = r->next_res) {
            if (same_resource(r, to->resource, to->resource_len)) {
                if (!mp_privacy_blocks(core, r, MP_PRIV_MESSAGE, s->full, s->full_len)) {
                    o->deliver = MP_AMP_DIRECT;
                    o->exact = 1;
                }
                return;
            }
        }
    }
    if (mp_frame_type_is(f, "groupchat"))
        return;
    int blocked = 0, headline = mp_frame_type_is(f, "headline");
    int best = mp_route_best_priority(u, NULL);
    for (mp_cstream *r = u ? u->resources : NULL; best >= 0 && r; r = r->next_res) {
        if (mp_route_gets_bare(r, best, headline, NULL)) {
            if (mp_privacy_blocks(core, r, MP_PRIV_MESSAGE, s->full, s->full_len)) {
                blocked = 1;
                continue;
            }
            o->deliver = MP_AMP_DIRECT;
            o->other = 1; /* the addressed resource, if any, has no session (see above) */
        }
    }
    if (o->deliver == MP_AMP_DIRECT || blocked || headline || core->cfg->offline_max_messages <= 0)
        return;
    if (mp_privacy_blocks_account(core, u, to->domain, to->node, MP_PRIV_MESSAGE, s->full,
                                  s->full_len))
        return;
    mp_user_cred cred;
    if (core->store->ops->user_get(core->store, to->domain, to->node, &cred) == 0)
        o->deliver = MP_AMP_STORED;
    memset(&cred, 0, sizeof cred);
}

/* §10: conditions that tell whether the recipient is online are honoured only for senders
 * allowed to see its presence (the recommended course): the account itself, or a contact
 * with a subscription from the recipient. Others get <not-acceptable/>. */
static int
may_see_presence(mp_core *core, const mp_cstream *s, const mp_jid *to)
{
    char bare[2 * MP_JID_PART_MAX + 2];
    int bl = mp_jid_bare(to, bare, sizeof bare);
    if (bl < 0 || s->bare_len >= sizeof bare)
        return 0;
    if ((size_t)bl == s->bare_len && memcmp(bare, s->full, s->bare_len) == 0)
        return 1;
    memcpy(bare, s->full, s->bare_len);
    bare[s->bare_len] = '\0';
    mp_item_copy c;
    if (mp_roster_load(core, to->domain, to->node, bare, &c) < 0)
        return 0;
    int ok = c.found && !(c.state & MP_SUB_HIDDEN) && (c.state & MP_SUB_FROM);
    mp_item_copy_free(&c);
    return ok;
}

static int
reveals_presence(const mp_amp_rule *r)
{
    return (r->cond == MP_AMP_DELIVER || r->cond == MP_AMP_MATCH_RESOURCE) && r->act != MP_AMP_DROP;
}

static void
send_reply(mp_core *core, mp_cstream *to, int rc)
{
    if (rc == 0) /* through CSI: after any presence it holds for this client */
        mp_csi_send(core, to, core->scratch.data, core->scratch.len);
    else
        mp_err("amp: cannot build a reply for %s: %s", to->full, mp_strerror(rc));
}

/* Carry out a met rule. Returns 1 when the message goes no further. */
static int
act(mp_core *core, mp_cstream *sender, const mp_amp_reply *rp, const mp_amp_rule *r)
{
    mp_debug("amp: rule %s=%s met for a message from %s to %s: %s", r->condition, r->value,
             rp->orig_from, rp->orig_to, r->action);
    if (r->act != MP_AMP_DROP && sender)
        send_reply(core, sender, mp_amp_build_event(&core->scratch, rp, r));
    return r->act != MP_AMP_NOTIFY;
}

int
mp_amp_route(mp_core *core, mp_cstream *s, const mp_frame *f, const mp_jid *to, mp_user *u)
{
    const char *bytes = mp_frame_payload(f);
    if (!core->amp_enabled || f->el_kind != MP_EL_MESSAGE || mp_frame_type_is(f, "error") ||
        !mp_amp_requested(bytes, f->payload_len))
        return 0;
    const mp_xnode *msg = NULL, *el = request_of(core, bytes, f->payload_len, &msg);
    if (!el)
        return 0;
    if (!f->id_len) {
        /* §1.3: replies are matched by id, so a request without one cannot be honoured. */
        mp_route_error(core, s, MP_EL_MESSAGE, mp_frame_to(f), f->to_len, NULL, 0, "modify",
                       "bad-request");
        return 1;
    }
    mp_amp a;
    mp_amp_reply rp = {
        .server = to->domain,
        .to = s->full,
        .id = arena_str(core, mp_frame_id(f), f->id_len),
        .orig_from = s->full,
        .orig_to = f->to_len ? arena_str(core, mp_frame_to(f), f->to_len)
                             : arena_str(core, s->full, s->bare_len),
    };
    if (!rp.id || !rp.orig_to || mp_amp_parse(&core->arena, el, &a) < 0) {
        mp_route_error(core, s, MP_EL_MESSAGE, mp_frame_to(f), f->to_len, mp_frame_id(f), f->id_len,
                       "wait", "resource-constraint");
        return 1;
    }
    if (!a.fault) {
        int check = 0;
        for (size_t i = 0; i < a.nrules; i++)
            check |= reveals_presence(&a.rules[i]);
        if (check && !may_see_presence(core, s, to)) {
            for (size_t i = 0; i < a.nrules; i++)
                if (reveals_presence(&a.rules[i]))
                    a.rules[i].fault = MP_AMP_INVALID;
            a.fault = MP_AMP_INVALID;
        }
    }
    if (a.fault) {
        mp_debug("amp: refusing the rules of a message from %s (fault %d)", s->full, a.fault);
        send_reply(core, s, mp_amp_build_reject(&core->scratch, &rp, &a));
        return 1;
    }
    mp_amp_outcome o;
    predict(core, s, f, to, u, &o);
    int i = mp_amp_match(&a, &o);
    return i < 0 ? 0 : act(core, s, &rp, &a.rules[i]);
}

/* The session of a full JID, if it is connected here. */
static mp_cstream *
session_of(mp_core *core, const char *full)
{
    mp_jid j;
    char bare[2 * MP_JID_PART_MAX + 2];
    if (!full || mp_jid_prep(full, strlen(full), &j) < 0 || !j.resource_len)
        return NULL;
    int bl = mp_jid_bare(&j, bare, sizeof bare);
    mp_user *u = bl > 0 ? mp_core_user(core, bare, (size_t)bl) : NULL;
    for (mp_cstream *r = u ? u->resources : NULL; r; r = r->next_res)
        if (same_resource(r, j.resource, j.resource_len))
            return r;
    return NULL;
}

int
mp_amp_offline(mp_core *core, mp_cstream *r, const char *stanza, size_t len)
{
    if (!core->amp_enabled || !mp_amp_requested(stanza, len))
        return 0;
    const mp_xnode *msg = NULL, *el = request_of(core, stanza, len, &msg);
    mp_amp a;
    if (!el || mp_amp_parse(&core->arena, el, &a) < 0 || a.fault)
        return 0; /* refused rules never reach storage; nothing to apply */
    mp_amp_outcome o = {.deliver = MP_AMP_DIRECT, .at_delivery = 1, .now = (int64_t)time(NULL)};
    int i = mp_amp_match(&a, &o);
    if (i < 0)
        return 0;
    const char *from = mp_xnode_attr(msg, "from");
    mp_amp_reply rp = {
        .server = core->cfg->hosts[r->host],
        .to = from,
        .id = mp_xnode_attr(msg, "id"),
        .orig_from = from,
        .orig_to = mp_xnode_attr(msg, "to"),
    };
    if (!rp.orig_to)
        rp.orig_to = r->full;
    /* The sender hears of it only while connected: an expired message is never kept. */
    return act(core, session_of(core, from), &rp, &a.rules[i]);
}
