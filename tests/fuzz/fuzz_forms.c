/* libFuzzer target for the data forms (XEP-0004) clients submit: the MUC owner's room
 * configuration (muc#roomconfig), a pubsub node configuration, publish-options and subscribe
 * options, the <enable/> of push notifications, and the XEP-0115 ver computed over a
 * disco#info answer.
 *
 * The first byte chooses the reader (its value modulo 6: '0' muc, '1' node config,
 * '2' publish-options, '3' subscribe options, '4' push, '5' caps); the rest is one element.
 *
 * Invariants: a room form either fails leaving the room exactly as it was, or leaves a valid
 * configuration within the site's limits, and submitting it again changes nothing; a node
 * configuration that applies survives its own form and its stored encoding; publish-options
 * that apply to a node hold for it; push options forwarded to the app server, and the payload
 * carrying them, parse; a ver does not depend on the order of the answer's children. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/arena.h"
#include "base/buf.h"
#include "base/config.h"
#include "base/err.h"
#include "modules/caps_cache.h"
#include "modules/muc/muc_int.h"
#include "modules/pubsub/pubsub.h"
#include "modules/push.h"
#include "router/core_int.h"
#include "xml/tree.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NS_XDATA "jabber:x:data"
#define NS_DISCO_INFO "http://jabber.org/protocol/disco#info"

static mp_xml_parser *parser;
/* muc_config_defaults and the limits of apply read the site's configuration through the
 * service's core: a core holding only the configuration is enough. */
static mp_config site;
static struct mp_core core;
static muc_service svc;

static void
init(void)
{
    if (!(parser = mp_xml_parser_new()) || mp_config_defaults(&site) < 0)
        abort();
    core.cfg = &site;
    svc.core = &core;
}

/* The x:data form of an element: the element itself or its first <x/> child. */
static const mp_xnode *
form_of(const mp_xnode *n)
{
    if (strcmp(n->ns, NS_XDATA) == 0 && strcmp(n->name, "x") == 0)
        return n;
    return mp_xnode_child(n, NS_XDATA, "x");
}

/* ---- muc#roomconfig ---- */

typedef struct affil_snap {
    size_t n;
    struct {
        const char *jid;
        int affil;
    } v[600]; /* three seeds, two lists of 256 at most */
} affil_snap;

static int
cmp_affil(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void
snap_affils(const muc_room *room, affil_snap *s)
{
    s->n = 0;
    for (size_t i = 0; i < room->affiliations.nbuckets; i++)
        for (mp_hnode *h = room->affiliations.buckets[i]; h; h = h->next) {
            muc_affiliation *af = mp_container_of(h, muc_affiliation, by_jid);
            if (s->n == sizeof s->v / sizeof s->v[0])
                __builtin_trap();
            s->v[s->n].jid = af->jid;
            s->v[s->n++].affil = af->affil;
        }
    qsort(s->v, s->n, sizeof s->v[0], cmp_affil);
}

/* Same JIDs with the same affiliations; a holds pointers that may be gone, so b's strings
 * are compared against copies the caller made. */
static int
same_affils(const affil_snap *a, const affil_snap *b)
{
    if (a->n != b->n)
        return 0;
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->v[i].jid, b->v[i].jid) != 0 || a->v[i].affil != b->v[i].affil)
            return 0;
    return 1;
}

static void
copy_affils(mp_arena *a, affil_snap *s)
{
    for (size_t i = 0; i < s->n; i++)
        if (!(s->v[i].jid = mp_arena_strndup(a, s->v[i].jid, strlen(s->v[i].jid))))
            abort();
}

static int
same_config(const muc_config *a, const muc_config *b)
{
    return strcmp(a->name, b->name) == 0 && strcmp(a->description, b->description) == 0 &&
           strcmp(a->password, b->password) == 0 && strcmp(a->subject, b->subject) == 0 &&
           strcmp(a->subject_from, b->subject_from) == 0 &&
           strcmp(a->avatar_hash, b->avatar_hash) == 0 && a->persistent == b->persistent &&
           a->public_room == b->public_room && a->members_only == b->members_only &&
           a->password_protected == b->password_protected && a->moderated == b->moderated &&
           a->max_users == b->max_users && a->whois == b->whois &&
           a->allow_invites == b->allow_invites && a->change_subject == b->change_subject &&
           a->allow_pm == b->allow_pm && a->history_length == b->history_length &&
           a->logging == b->logging && a->members_by_default == b->members_by_default;
}

/* A copy of c whose strings live in a (the room's may be freed by the next apply). */
static muc_config
copy_config(mp_arena *a, const muc_config *c)
{
    muc_config k = *c;
    char **s[] = {&k.name,    &k.description,  &k.password,
                  &k.subject, &k.subject_from, &k.avatar_hash};
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++)
        if (!*s[i] || !(*s[i] = mp_arena_strndup(a, *s[i], strlen(*s[i]))))
            abort(); /* a room's strings are never NULL */
    return k;
}

static int
is_bool(int v)
{
    return v == 0 || v == 1;
}

static void
check_config(const muc_config *c)
{
    int max_occ = site.muc_max_occupants;
    if (!is_bool(c->persistent) || !is_bool(c->public_room) || !is_bool(c->members_only) ||
        !is_bool(c->password_protected) || !is_bool(c->moderated) || !is_bool(c->allow_invites) ||
        !is_bool(c->change_subject) || !is_bool(c->logging) ||
        (c->whois != MUC_WHOIS_MODERATORS && c->whois != MUC_WHOIS_ANYONE) ||
        c->allow_pm < MUC_PM_NONE || c->allow_pm > MUC_PM_MODERATORS)
        __builtin_trap();
    if (c->password_protected && !*c->password)
        __builtin_trap(); /* a protected room nobody can enter */
    if (c->history_length < 0 || c->history_length > site.muc_max_history || c->max_users < 0 ||
        (max_occ > 0 && c->max_users > max_occ))
        __builtin_trap();
}

static void
check_codes(const int *codes, size_t ncodes)
{
    size_t k = 0;
    while (k < ncodes && codes[k])
        k++;
    if (k == ncodes)
        __builtin_trap(); /* not 0-terminated */
    for (size_t i = 0; i < k; i++)
        if (codes[i] != 104 && (codes[i] < 170 || codes[i] > 173))
            __builtin_trap();
}

static void
fuzz_muc(mp_arena *a, const mp_xnode *x)
{
    muc_room *room = muc_room_new(&svc, "lounge", "conference.example.org");
    if (!room)
        return;
    /* an owner, an admin and a member the lists may keep or drop */
    if (muc_affil_set(room, "crone@example.org", MUC_OWNER, "") < 0 ||
        muc_affil_set(room, "wiccarocks@example.org", MUC_ADMIN, "") < 0 ||
        muc_affil_set(room, "hag66@example.org", MUC_MEMBER, "") < 0)
        goto out;
    room->locked = 1;
    static affil_snap before, after, again;
    muc_config cfg0 = copy_config(a, &room->cfg);
    snap_affils(room, &before);
    copy_affils(a, &before);

    int codes[4];
    int rc = muc_config_apply_form(room, x, codes, 4);
    if (rc == MP_ENOMEM)
        goto out;
    snap_affils(room, &after);
    if (rc < 0) {
        /* all or nothing: a refused form changes nothing, the room stays locked */
        if (rc != MP_EINVAL || !room->locked || !same_config(&cfg0, &room->cfg) ||
            !same_affils(&before, &after))
            __builtin_trap();
        goto out;
    }
    check_config(&room->cfg);
    check_codes(codes, 4);
    int owners = 0;
    for (size_t i = 0; i < after.n; i++)
        owners += after.v[i].affil == MUC_OWNER;
    if (room->locked || owners == 0)
        __builtin_trap(); /* no form leaves a room without owners */

    /* the same form again is no change at all */
    muc_config cfg1 = copy_config(a, &room->cfg);
    copy_affils(a, &after);
    if (muc_config_apply_form(room, x, codes, 4) != 0)
        __builtin_trap();
    snap_affils(room, &again);
    if (codes[0] != 0 || !same_config(&cfg1, &room->cfg) || !same_affils(&after, &again))
        __builtin_trap();
out:
    muc_room_free(&svc, room, 0);
}

/* ---- pubsub ---- */

static void
check_ps(const ps_config *c, const ps_limits *lim)
{
    if (c->max_items < 1 || c->max_items > lim->max_items || c->ngroups > PS_MAX_GROUPS ||
        c->access_model < PS_ACCESS_OPEN || c->access_model > PS_ACCESS_AUTHORIZE ||
        c->publish_model < PS_PUB_PUBLISHERS || c->publish_model > PS_PUB_OPEN ||
        c->send_last < PS_SEND_NEVER || c->send_last > PS_SEND_ON_SUB_AND_PRESENCE ||
        c->notification_type < PS_NOTIFY_HEADLINE || c->notification_type > PS_NOTIFY_NORMAL ||
        !c->title)
        __builtin_trap();
    for (size_t i = 0; i < c->ngroups; i++)
        if (!c->groups[i] || !c->groups[i][0])
            __builtin_trap();
}

static void
fuzz_node_config(mp_arena *a, const mp_xnode *x, int pep, const ps_limits *lim)
{
    ps_config c, back;
    const char *bad = NULL;
    ps_config_defaults(&c, pep, lim);
    int rc = ps_config_apply(&c, x, PS_FORM_CONFIG, lim, a, &bad);
    if (rc < 0) {
        if (rc == MP_EINVAL && !bad)
            __builtin_trap(); /* the error names the field */
        return;
    }
    check_ps(&c, lim);
    /* what the owner is shown, submitted back unchanged, is the same configuration */
    mp_xnode *form = ps_config_form(&c, "form", a);
    if (!form)
        return;
    ps_config_defaults(&back, !pep, lim);
    if (ps_config_apply(&back, form, PS_FORM_CONFIG, lim, a, &bad) != 0 ||
        !ps_config_equal(&c, &back))
        __builtin_trap();
    /* as stored and loaded again */
    mp_buf b = {0};
    if (ps_config_encode(&c, a, &b) == 0) {
        if (ps_config_decode(&back, !pep, lim, b.data, b.len, parser, a) != 0 ||
            !ps_config_equal(&c, &back))
            __builtin_trap();
    }
    mp_buf_free(&b);
}

/* Whether x has a field the node configuration does not know (it never holds then). */
static int
has_unknown_field(const mp_xnode *x)
{
    static const char *const known[] = {
        "FORM_TYPE",
        "pubsub#title",
        "pubsub#max_items",
        "pubsub#persist_items",
        "pubsub#deliver_payloads",
        "pubsub#deliver_notifications",
        "pubsub#notify_config",
        "pubsub#notify_delete",
        "pubsub#notify_retract",
        "pubsub#access_model",
        "pubsub#roster_groups_allowed",
        "pubsub#publish_model",
        "pubsub#send_last_published_item",
        "pubsub#notification_type",
    };
    for (const mp_xnode *f = x->children; f; f = f->next) {
        const char *var = mp_xnode_attr(f, "var");
        if (strcmp(f->ns, NS_XDATA) != 0 || strcmp(f->name, "field") != 0 || !var)
            continue;
        size_t i = 0;
        while (i < sizeof known / sizeof known[0] && strcmp(var, known[i]) != 0)
            i++;
        if (i == sizeof known / sizeof known[0])
            return 1;
    }
    return 0;
}

static void
fuzz_publish_options(mp_arena *a, const mp_xnode *x, int pep, const ps_limits *lim)
{
    ps_config node, wanted;
    ps_config_defaults(&node, pep, lim);
    int pre = ps_config_preconditions(&node, x, lim, a);
    if (pre != 0 && pre != 1 && pre != MP_ENOMEM)
        __builtin_trap();
    /* a node created with these options (publish auto-create) satisfies them */
    const char *bad;
    ps_config_defaults(&wanted, pep, lim);
    if (ps_config_apply(&wanted, x, PS_FORM_PUBOPTS, lim, a, &bad) != 0)
        return;
    check_ps(&wanted, lim);
    pre = ps_config_preconditions(&wanted, x, lim, a);
    if (pre != MP_ENOMEM && pre != !has_unknown_field(x))
        __builtin_trap();
}

static void
fuzz_subopts(mp_arena *a, const mp_xnode *x)
{
    ps_subopts o, back;
    const char *bad = NULL;
    ps_subopts_defaults(&o);
    int rc = ps_subopts_apply(&o, x, &bad);
    if (rc < 0) {
        if (!bad)
            __builtin_trap();
        return;
    }
    if (!is_bool(o.deliver) || o.digest || o.include_body)
        __builtin_trap(); /* only deliver may be chosen */
    mp_xnode *form = ps_subopts_form(&o, "form", a);
    if (form) {
        ps_subopts_defaults(&back);
        back.deliver = !o.deliver;
        if (ps_subopts_apply(&back, form, &bad) != 0 || back.deliver != o.deliver)
            __builtin_trap();
    }
    char enc[64];
    ps_subopts_encode(&o, enc, sizeof enc);
    ps_subopts_decode(&back, enc);
    if (back.deliver != o.deliver || back.digest != o.digest || back.include_body != o.include_body)
        __builtin_trap();
}

/* ---- push ---- */

static void
must_parse(mp_arena *a, const char *ns, const char *bytes, size_t len, const char *name)
{
    mp_xnode *n = NULL;
    if (mp_xml_parse(parser, a, ns, bytes, len, &n) != 0 || strcmp(n->name, name) != 0)
        __builtin_trap();
}

static void
fuzz_push(mp_arena *a, const mp_xnode *n)
{
    /* the text of a message the element might be, made long enough to be cut */
    int encrypted;
    const char *text = mp_push_message_text(n, &encrypted);
    mp_buf body = {0};
    if (text && *text)
        while (body.len <= MP_PUSH_BODY_MAX)
            if (mp_buf_puts(&body, text) < 0)
                goto out;
    if (text && mp_buf_append(&body, "", 1) < 0) /* a C string, even when empty */
        goto out;

    mp_push_enable e;
    int rc = mp_push_enable_read(a, n, &e);
    if (rc < 0) {
        if (e.options.data)
            __builtin_trap(); /* freed on failure */
        goto out;
    }
    if (!e.jid || !*e.jid || !e.node || !*e.node)
        __builtin_trap();
    if (e.options.len) {
        /* it goes to the app server as is: one form, without the user's include-body */
        mp_xnode *x = NULL;
        if (mp_xml_parse(parser, a, "jabber:client", e.options.data, e.options.len, &x) != 0 ||
            strcmp(x->ns, NS_XDATA) != 0 || strcmp(x->name, "x") != 0)
            __builtin_trap();
        for (const mp_xnode *f = x->children; f; f = f->next) {
            const char *var = mp_xnode_attr(f, "var");
            if (var && strcmp(var, MP_PUSH_BODY_FIELD) == 0)
                __builtin_trap();
        }
    }
    mp_buf out = {0};
    if (mp_push_payload(&out, e.node, 3, e.jid, text ? body.data : NULL, e.options.data,
                        e.options.len) == 0)
        must_parse(a, "jabber:client", out.data, out.len, "pubsub");
    mp_buf_free(&out);
    mp_buf_free(&e.options);
out:
    mp_buf_free(&body);
}

/* ---- caps ---- */

static mp_xnode *
reverse(mp_xnode *first)
{
    mp_xnode *prev = NULL;
    while (first) {
        mp_xnode *next = first->next;
        first->next = prev;
        prev = first;
        first = next;
    }
    return prev;
}

static void
fuzz_caps(mp_xnode *q)
{
    static const char *const hashes[] = {"sha-1", "sha-224", "sha-256", "sha-384", "sha-512"};
    static const int lens[] = {28, 40, 44, 64, 88};
    char ver[5][89], again[89];
    int rc[5];
    for (int i = 0; i < 5; i++) {
        rc[i] = mp_caps_compute(q, hashes[i], ver[i], sizeof ver[i]);
        if (rc[i] >= 0 && (rc[i] != lens[i] || (int)strlen(ver[i]) != lens[i]))
            __builtin_trap();
        if ((rc[i] < 0) != (rc[0] < 0))
            __builtin_trap(); /* well-formedness does not depend on the hash */
    }
    if ((rc[0] >= 0 && mp_caps_compute(q, "sha-1", again, 28) != MP_ELIMIT) ||
        mp_caps_compute(q, "md5", again, sizeof again) != MP_EINVAL)
        __builtin_trap();

    mp_caps_info *ci = mp_caps_info_new(q);
    if (ci) {
        size_t n = 0;
        for (const mp_xnode *c = q->children; c; c = c->next) {
            const char *var = mp_xnode_attr(c, "var");
            if (var && strcmp(c->ns, NS_DISCO_INFO) == 0 && strcmp(c->name, "feature") == 0) {
                n++;
                if (!mp_caps_info_has(ci, var))
                    __builtin_trap();
            }
        }
        if (mp_caps_info_count(ci) != n)
            __builtin_trap();
        mp_caps_info_free(ci);
    }

    /* §5.1 sorts everything: the order the client sent them in does not count */
    q->children = reverse(q->children);
    for (mp_xnode *x = q->children; x; x = x->next)
        if (strcmp(x->ns, NS_XDATA) == 0 && strcmp(x->name, "x") == 0)
            for (mp_xnode *f = x->children; f; f = f->next)
                f->children = reverse(f->children);
    for (int i = 0; i < 5; i++) {
        int r = mp_caps_compute(q, hashes[i], again, sizeof again);
        if (r != rc[i] || (r >= 0 && strcmp(again, ver[i]) != 0))
            __builtin_trap();
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!parser)
        init();
    if (size < 1)
        return 0;
    mp_arena arena;
    mp_arena_init(&arena, 4096);
    mp_xnode *n = NULL;
    if (mp_xml_parse(parser, &arena, "jabber:client", (const char *)data + 1, size - 1, &n) != 0)
        goto out;
    const mp_xnode *x = form_of(n);
    int which = data[0] % 6;
    static const ps_limits lims[] = {{1}, {10}, {1000}};
    switch (which) {
    case 0:
        if (x)
            fuzz_muc(&arena, x);
        break;
    case 1:
    case 2:
        if (!x)
            break;
        for (int pep = 0; pep < 2; pep++)
            for (size_t l = 0; l < sizeof lims / sizeof lims[0]; l++)
                if (which == 1)
                    fuzz_node_config(&arena, x, pep, &lims[l]);
                else
                    fuzz_publish_options(&arena, x, pep, &lims[l]);
        break;
    case 3:
        if (x)
            fuzz_subopts(&arena, x);
        break;
    case 4:
        fuzz_push(&arena, n);
        break;
    default:
        fuzz_caps(n);
        break;
    }
out:
    mp_arena_free(&arena);
    return 0;
}
