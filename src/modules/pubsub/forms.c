/* Data forms of publish-subscribe (XEP-0004 with the FORM_TYPEs of XEP-0060 §16.4) and the
 * access decisions, as pure functions the unit tests call directly. */
#include "modules/pubsub/pubsub.h"
#include "router/subscription.h"
#include "base/err.h"
#include "xmpp/dataform.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const access_names[] = {"open", "presence", "roster", "whitelist", "authorize"};
static const char *const publish_names[] = {"publishers", "subscribers", "open"};
static const char *const send_last_names[] = {"never", "on_sub", "on_sub_and_presence"};
static const char *const notification_names[] = {"headline", "normal"};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

const char *
ps_access_name(int access)
{
    return access >= 0 && (size_t)access < NELEM(access_names) ? access_names[access] : "open";
}

static const char *const aff_names[] = {"outcast",      "none",      "member",
                                        "publish-only", "publisher", "owner"};

const char *
ps_affiliation_name(int aff)
{
    int i = aff + 1;
    return i >= 0 && (size_t)i < NELEM(aff_names) ? aff_names[i] : "none";
}

int
ps_affiliation_parse(const char *name)
{
    for (size_t i = 0; name && i < NELEM(aff_names); i++)
        if (strcmp(name, aff_names[i]) == 0)
            return (int)i - 1;
    return MP_EINVAL;
}

const char *
ps_sub_state_name(int state)
{
    switch (state) {
    case MP_PS_SUB_PENDING:
        return "pending";
    case MP_PS_SUB_UNCONFIGURED:
        return "unconfigured";
    case MP_PS_SUB_SUBSCRIBED:
        return "subscribed";
    default:
        return "none";
    }
}

void
ps_config_defaults(ps_config *c, int pep, const ps_limits *lim)
{
    memset(c, 0, sizeof *c);
    c->title = "";
    c->max_items = pep ? 1 : 10;
    if (c->max_items > lim->max_items)
        c->max_items = lim->max_items;
    c->persist_items = 1;
    c->deliver_payloads = 1;
    c->deliver_notifications = 1;
    c->notify_config = 0;
    c->notify_delete = 1;
    c->notify_retract = 1;
    c->access_model = pep ? PS_ACCESS_PRESENCE : PS_ACCESS_OPEN;
    c->publish_model = PS_PUB_PUBLISHERS;
    c->send_last = pep ? PS_SEND_ON_SUB_AND_PRESENCE : PS_SEND_ON_SUB;
    c->notification_type = PS_NOTIFY_HEADLINE;
}

/* ---- reading forms ---- */

static const char *
first_value(const mp_xnode *field)
{
    const mp_xnode *v = mp_xnode_child(field, PS_NS_XDATA, "value");
    return v ? v->text : "";
}

static int
parse_bool(const char *s, int *out)
{
    if (strcmp(s, "1") == 0 || strcmp(s, "true") == 0)
        *out = 1;
    else if (strcmp(s, "0") == 0 || strcmp(s, "false") == 0)
        *out = 0;
    else
        return MP_EINVAL;
    return 0;
}

static int
parse_enum(const char *s, const char *const *names, size_t n, int *out)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = (int)i;
            return 0;
        }
    return MP_EINVAL;
}

static int
parse_max_items(const char *s, const ps_limits *lim, int64_t *out)
{
    if (strcmp(s, "max") == 0) {
        *out = lim->max_items;
        return 0;
    }
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < 1 || v > lim->max_items)
        return MP_EINVAL;
    *out = v;
    return 0;
}

/* The FORM_TYPE of a form, "" when absent. */
static const char *
form_type(const mp_xnode *x)
{
    for (const mp_xnode *f = x->children; f; f = f->next)
        if (strcmp(f->name, "field") == 0 && strcmp(f->ns, PS_NS_XDATA) == 0) {
            const char *var = mp_xnode_attr(f, "var");
            if (var && strcmp(var, "FORM_TYPE") == 0)
                return first_value(f);
        }
    return "";
}

enum {
    C_TITLE,
    C_MAX_ITEMS,
    C_PERSIST,
    C_PAYLOADS,
    C_NOTIFICATIONS,
    C_NOTIFY_CONFIG,
    C_NOTIFY_DELETE,
    C_NOTIFY_RETRACT,
    C_ACCESS,
    C_GROUPS,
    C_PUBLISH,
    C_SEND_LAST,
    C_NOTIFICATION_TYPE,
    C_COUNT
};

static const struct {
    const char *var, *type, *label;
} cfields[C_COUNT] = {
    [C_TITLE] = {"pubsub#title", "text-single", "A friendly name for the node"},
    [C_MAX_ITEMS] = {"pubsub#max_items", "text-single", "Max # of items to persist"},
    [C_PERSIST] = {"pubsub#persist_items", "boolean", "Persist items to storage"},
    [C_PAYLOADS] = {"pubsub#deliver_payloads", "boolean",
                    "Deliver payloads with event notifications"},
    [C_NOTIFICATIONS] = {"pubsub#deliver_notifications", "boolean", "Deliver event notifications"},
    [C_NOTIFY_CONFIG] = {"pubsub#notify_config", "boolean",
                         "Notify subscribers when the node configuration changes"},
    [C_NOTIFY_DELETE] = {"pubsub#notify_delete", "boolean",
                         "Notify subscribers when the node is deleted"},
    [C_NOTIFY_RETRACT] = {"pubsub#notify_retract", "boolean",
                          "Notify subscribers when items are removed from the node"},
    [C_ACCESS] = {"pubsub#access_model", "list-single", "Who may subscribe and retrieve items"},
    [C_GROUPS] = {"pubsub#roster_groups_allowed", "list-multi",
                  "Roster groups allowed to subscribe"},
    [C_PUBLISH] = {"pubsub#publish_model", "list-single", "Who may publish items"},
    [C_SEND_LAST] = {"pubsub#send_last_published_item", "list-single",
                     "When to send the last published item"},
    [C_NOTIFICATION_TYPE] = {"pubsub#notification_type", "list-single",
                             "Message type of event notifications"},
};

static int
config_var(const char *var)
{
    for (int i = 0; i < C_COUNT; i++)
        if (strcmp(var, cfields[i].var) == 0)
            return i;
    return -1;
}

static int
apply_field(ps_config *c, int which, const mp_xnode *f, const ps_limits *lim, mp_arena *a)
{
    const char *v = first_value(f);
    switch (which) {
    case C_TITLE: {
        char *t = mp_arena_strndup(a, v, strlen(v));
        if (!t)
            return MP_ENOMEM;
        c->title = t;
        return 0;
    }
    case C_MAX_ITEMS:
        return parse_max_items(v, lim, &c->max_items);
    case C_PERSIST:
        return parse_bool(v, &c->persist_items);
    case C_PAYLOADS:
        return parse_bool(v, &c->deliver_payloads);
    case C_NOTIFICATIONS:
        return parse_bool(v, &c->deliver_notifications);
    case C_NOTIFY_CONFIG:
        return parse_bool(v, &c->notify_config);
    case C_NOTIFY_DELETE:
        return parse_bool(v, &c->notify_delete);
    case C_NOTIFY_RETRACT:
        return parse_bool(v, &c->notify_retract);
    case C_ACCESS:
        return parse_enum(v, access_names, NELEM(access_names), &c->access_model);
    case C_PUBLISH:
        return parse_enum(v, publish_names, NELEM(publish_names), &c->publish_model);
    case C_SEND_LAST:
        return parse_enum(v, send_last_names, NELEM(send_last_names), &c->send_last);
    case C_NOTIFICATION_TYPE:
        return parse_enum(v, notification_names, NELEM(notification_names), &c->notification_type);
    case C_GROUPS:
        c->ngroups = 0;
        for (const mp_xnode *val = f->children; val; val = val->next) {
            if (strcmp(val->name, "value") != 0 || strcmp(val->ns, PS_NS_XDATA) != 0 ||
                !val->text[0])
                continue;
            if (c->ngroups == PS_MAX_GROUPS)
                return MP_EINVAL;
            char *g = mp_arena_strndup(a, val->text, val->text_len);
            if (!g)
                return MP_ENOMEM;
            c->groups[c->ngroups++] = g;
        }
        return 0;
    }
    return MP_EINVAL;
}

int
ps_config_apply(ps_config *c, const mp_xnode *x, const char *want_type, const ps_limits *lim,
                mp_arena *a, const char **bad)
{
    *bad = NULL;
    if (strcmp(x->name, "x") != 0 || strcmp(x->ns, PS_NS_XDATA) != 0) {
        *bad = "x";
        return MP_EINVAL;
    }
    const char *type = mp_xnode_attr(x, "type");
    if (type && strcmp(type, "submit") != 0 && strcmp(type, "form") != 0) {
        *bad = "type";
        return MP_EINVAL;
    }
    const char *ft = form_type(x);
    if (ft[0] && strcmp(ft, want_type) != 0) {
        *bad = "FORM_TYPE";
        return MP_EINVAL;
    }
    for (const mp_xnode *f = x->children; f; f = f->next) {
        if (strcmp(f->name, "field") != 0 || strcmp(f->ns, PS_NS_XDATA) != 0)
            continue;
        const char *var = mp_xnode_attr(f, "var");
        int which = var ? config_var(var) : -1;
        if (which < 0)
            continue;
        int rc = apply_field(c, which, f, lim, a);
        if (rc < 0) {
            *bad = cfields[which].var;
            return rc;
        }
    }
    return 0;
}

int
ps_config_equal(const ps_config *a, const ps_config *b)
{
    if (strcmp(a->title ? a->title : "", b->title ? b->title : "") != 0 ||
        a->max_items != b->max_items || a->persist_items != b->persist_items ||
        a->deliver_payloads != b->deliver_payloads ||
        a->deliver_notifications != b->deliver_notifications ||
        a->notify_config != b->notify_config || a->notify_delete != b->notify_delete ||
        a->notify_retract != b->notify_retract || a->access_model != b->access_model ||
        a->publish_model != b->publish_model || a->send_last != b->send_last ||
        a->notification_type != b->notification_type || a->ngroups != b->ngroups)
        return 0;
    for (size_t i = 0; i < a->ngroups; i++)
        if (strcmp(a->groups[i], b->groups[i]) != 0)
            return 0;
    return 1;
}

int
ps_config_preconditions(const ps_config *c, const mp_xnode *x, const ps_limits *lim, mp_arena *a)
{
    /* A field the node does not have cannot hold (XEP-0060 §7.1.5). */
    for (const mp_xnode *f = x->children; f; f = f->next) {
        if (strcmp(f->name, "field") != 0 || strcmp(f->ns, PS_NS_XDATA) != 0)
            continue;
        const char *var = mp_xnode_attr(f, "var");
        if (var && strcmp(var, "FORM_TYPE") != 0 && config_var(var) < 0)
            return 0;
    }
    ps_config want = *c;
    const char *bad;
    int rc = ps_config_apply(&want, x, PS_FORM_PUBOPTS, lim, a, &bad);
    if (rc == MP_EINVAL)
        return 0; /* a value the node can never have: not met either */
    if (rc < 0)
        return rc;
    return ps_config_equal(c, &want);
}

/* ---- writing forms ---- */

static int
add_value(mp_arena *a, mp_xnode *f, const char *v)
{
    return mp_form_value(a, f, v) ? 0 : MP_ENOMEM;
}

static int
add_options(mp_arena *a, mp_xnode *f, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        mp_xnode *o = mp_xnode_new(a, PS_NS_XDATA, "option");
        if (!o || add_value(a, o, names[i]) < 0)
            return MP_ENOMEM;
        mp_xnode_append(f, o);
    }
    return 0;
}

mp_xnode *
ps_config_form(const ps_config *c, const char *type, mp_arena *a)
{
    int full = strcmp(type, "form") == 0;
    mp_xnode *x = mp_xnode_new(a, PS_NS_XDATA, "x");
    if (!x || mp_xnode_set_attr(a, x, "type", type) < 0)
        return NULL;
    mp_xnode *f = mp_form_field(a, x, "FORM_TYPE", "hidden", NULL, NULL);
    if (!f || add_value(a, f, PS_FORM_CONFIG) < 0)
        return NULL;
    char num[32];
    snprintf(num, sizeof num, "%" PRId64, c->max_items);
    const char *values[C_COUNT] = {
        [C_TITLE] = c->title ? c->title : "",
        [C_MAX_ITEMS] = num,
        [C_PERSIST] = c->persist_items ? "1" : "0",
        [C_PAYLOADS] = c->deliver_payloads ? "1" : "0",
        [C_NOTIFICATIONS] = c->deliver_notifications ? "1" : "0",
        [C_NOTIFY_CONFIG] = c->notify_config ? "1" : "0",
        [C_NOTIFY_DELETE] = c->notify_delete ? "1" : "0",
        [C_NOTIFY_RETRACT] = c->notify_retract ? "1" : "0",
        [C_ACCESS] = access_names[c->access_model],
        [C_PUBLISH] = publish_names[c->publish_model],
        [C_SEND_LAST] = send_last_names[c->send_last],
        [C_NOTIFICATION_TYPE] = notification_names[c->notification_type],
    };
    for (int i = 0; i < C_COUNT; i++) {
        f = mp_form_field(a, x, cfields[i].var, full ? cfields[i].type : NULL,
                          full ? cfields[i].label : NULL, NULL);
        if (!f)
            return NULL;
        int rc = 0;
        if (i == C_GROUPS) {
            for (size_t g = 0; g < c->ngroups && rc == 0; g++)
                rc = add_value(a, f, c->groups[g]);
        } else {
            rc = add_value(a, f, values[i]);
        }
        if (rc == 0 && full && i == C_ACCESS)
            rc = add_options(a, f, access_names, NELEM(access_names));
        if (rc == 0 && full && i == C_PUBLISH)
            rc = add_options(a, f, publish_names, NELEM(publish_names));
        if (rc == 0 && full && i == C_SEND_LAST)
            rc = add_options(a, f, send_last_names, NELEM(send_last_names));
        if (rc == 0 && full && i == C_NOTIFICATION_TYPE)
            rc = add_options(a, f, notification_names, NELEM(notification_names));
        if (rc < 0)
            return NULL;
    }
    return x;
}

int
ps_config_encode(const ps_config *c, mp_arena *a, mp_buf *out)
{
    mp_xnode *x = ps_config_form(c, "submit", a);
    if (!x)
        return MP_ENOMEM;
    return mp_xnode_serialize(out, x, "jabber:client");
}

int
ps_config_decode(ps_config *c, int pep, const ps_limits *lim, const char *data, size_t len,
                 mp_xml_parser *p, mp_arena *a)
{
    ps_config_defaults(c, pep, lim);
    mp_xnode *x = NULL;
    int rc = mp_xml_parse(p, a, "jabber:client", data, len, &x);
    if (rc < 0)
        return rc;
    /* A limit lowered since the node was stored caps it rather than losing the node. */
    ps_limits wide = {INT64_MAX};
    const char *bad;
    rc = ps_config_apply(c, x, PS_FORM_CONFIG, &wide, a, &bad);
    if (c->max_items > lim->max_items)
        c->max_items = lim->max_items;
    return rc;
}

/* ---- subscription options ---- */

void
ps_subopts_defaults(ps_subopts *o)
{
    o->deliver = 1;
    o->digest = 0;
    o->include_body = 0;
}

int
ps_subopts_apply(ps_subopts *o, const mp_xnode *x, const char **bad)
{
    *bad = NULL;
    const char *ft = form_type(x);
    if (ft[0] && strcmp(ft, PS_FORM_SUBOPTS) != 0) {
        *bad = "FORM_TYPE";
        return MP_EINVAL;
    }
    for (const mp_xnode *f = x->children; f; f = f->next) {
        if (strcmp(f->name, "field") != 0 || strcmp(f->ns, PS_NS_XDATA) != 0)
            continue;
        const char *var = mp_xnode_attr(f, "var");
        if (!var)
            continue;
        int *dst = strcmp(var, "pubsub#deliver") == 0        ? &o->deliver
                   : strcmp(var, "pubsub#digest") == 0       ? &o->digest
                   : strcmp(var, "pubsub#include_body") == 0 ? &o->include_body
                                                             : NULL;
        if (!dst)
            continue;
        if (parse_bool(first_value(f), dst) < 0 || (dst != &o->deliver && *dst)) {
            *bad = var;
            return MP_EINVAL;
        }
    }
    return 0;
}

mp_xnode *
ps_subopts_form(const ps_subopts *o, const char *type, mp_arena *a)
{
    mp_xnode *x = mp_xnode_new(a, PS_NS_XDATA, "x");
    if (!x || mp_xnode_set_attr(a, x, "type", type) < 0)
        return NULL;
    mp_xnode *f = mp_form_field(a, x, "FORM_TYPE", "hidden", NULL, NULL);
    if (!f || add_value(a, f, PS_FORM_SUBOPTS) < 0)
        return NULL;
    struct {
        const char *var, *label;
        int v;
    } fs[] = {
        {"pubsub#deliver", "Enable delivery?", o->deliver},
        {"pubsub#digest", "Receive digest notifications (approx. one per day)?", o->digest},
        {"pubsub#include_body", "Receive message body in addition to payload?", o->include_body}};
    for (size_t i = 0; i < NELEM(fs); i++) {
        f = mp_form_field(a, x, fs[i].var, "boolean", fs[i].label, NULL);
        if (!f || add_value(a, f, fs[i].v ? "1" : "0") < 0)
            return NULL;
    }
    return x;
}

void
ps_subopts_encode(const ps_subopts *o, char *buf, size_t cap)
{
    snprintf(buf, cap, "deliver=%d;digest=%d;include_body=%d", o->deliver ? 1 : 0,
             o->digest ? 1 : 0, o->include_body ? 1 : 0);
}

void
ps_subopts_decode(ps_subopts *o, const char *s)
{
    int d, g, b;
    ps_subopts_defaults(o);
    if (s && sscanf(s, "deliver=%d;digest=%d;include_body=%d", &d, &g, &b) == 3) {
        o->deliver = d != 0;
        o->digest = g != 0;
        o->include_body = b != 0;
    }
}

/* ---- access ---- */

int
ps_groups_match(const ps_config *c, const char *const *groups, size_t n)
{
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < c->ngroups; j++)
            if (strcmp(groups[i], c->groups[j]) == 0)
                return 1;
    return 0;
}

/* Presence and roster access: the owner's roster gives the requester a 'from' subscription
 * (the requester receives the owner's presence). */
static int
has_presence(const ps_who *w)
{
    return w->roster >= 0 && !(w->roster & MP_SUB_HIDDEN) && (w->roster & MP_SUB_FROM);
}

int
ps_may_read(const ps_config *c, const ps_who *w)
{
    if (w->affiliation == MP_PS_AFF_OUTCAST)
        return PS_DENY_OUTCAST;
    /* owners, publishers and members (the whitelist) always may */
    if (w->affiliation >= MP_PS_AFF_MEMBER && w->affiliation != MP_PS_AFF_PUBLISH_ONLY)
        return PS_ALLOW;
    switch (c->access_model) {
    case PS_ACCESS_OPEN:
        return PS_ALLOW;
    case PS_ACCESS_PRESENCE:
        return has_presence(w) ? PS_ALLOW : PS_DENY_PRESENCE;
    case PS_ACCESS_ROSTER:
        return has_presence(w) && w->in_group ? PS_ALLOW : PS_DENY_GROUP;
    case PS_ACCESS_AUTHORIZE:
        return w->subscribed ? PS_ALLOW : PS_DENY_SUBSCRIBE;
    default:
        return PS_DENY_WHITELIST;
    }
}

int
ps_may_subscribe(const ps_config *c, const ps_who *w)
{
    if (w->affiliation == MP_PS_AFF_OUTCAST)
        return PS_DENY_OUTCAST;
    if (w->affiliation >= MP_PS_AFF_MEMBER && w->affiliation != MP_PS_AFF_PUBLISH_ONLY)
        return PS_ALLOW;
    if (c->access_model == PS_ACCESS_AUTHORIZE)
        return PS_PENDING;
    return ps_may_read(c, w);
}

int
ps_may_publish(const ps_config *c, const ps_who *w)
{
    if (w->affiliation == MP_PS_AFF_OUTCAST)
        return PS_DENY_OUTCAST;
    if (w->affiliation >= MP_PS_AFF_PUBLISH_ONLY)
        return PS_ALLOW;
    switch (c->publish_model) {
    case PS_PUB_OPEN:
        return PS_ALLOW;
    case PS_PUB_SUBSCRIBERS:
        return w->subscribed ? PS_ALLOW : PS_DENY_PUBLISH;
    default:
        return PS_DENY_PUBLISH;
    }
}
