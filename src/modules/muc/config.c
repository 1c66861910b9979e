/* muc#owner (XEP-0045 §10): the room configuration form (muc#roomconfig), instant and reserved
 * rooms, cancelling a new room, destroying a room with an alternate venue; and the room's
 * disco#info with the muc#roominfo form.
 *
 * A submitted form is read whole into a copy of the configuration and checked before anything
 * changes, so a bad field leaves the room as it was (not-acceptable). Fields the form does not
 * name keep their values; unknown fields are ignored (§10.2 lets a client submit fewer). */
#include "modules/muc/muc_int.h"
#include "router/core.h"
#include "xmpp/jid.h"
#include "base/config.h"
#include "base/err.h"
#include "base/log.h"
#include "xmpp/dataform.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NS_XDATA "jabber:x:data"
#define NS_DISCO_INFO "http://jabber.org/protocol/disco#info"
#define NS_MAM "urn:xmpp:mam:2"
#define F(x) "muc#roomconfig_" x
#define LIST_MAX 256 /* JIDs of roomadmins / roomowners */
#define MAX_USERS_MAX 100000
#define HISTORY_MAX 10000

/* ---- reading a submitted form ---- */

typedef struct jid_list {
    const char **v;
    size_t n;
} jid_list;

static const char *
fvalue(const mp_xnode *f)
{
    const mp_xnode *v = mp_xnode_child(f, NS_XDATA, "value");
    return v ? v->text : NULL;
}

static int
parse_bool(const char *v, int *out)
{
    if (strcmp(v, "1") == 0 || strcmp(v, "true") == 0)
        *out = 1;
    else if (strcmp(v, "0") == 0 || strcmp(v, "false") == 0)
        *out = 0;
    else
        return MP_EINVAL;
    return 0;
}

static int
parse_uint(const char *v, int max, int *out)
{
    char *end;
    long n = strtol(v, &end, 10);
    if (!*v || *end || n < 0 || n > max)
        return MP_EINVAL;
    *out = (int)n;
    return 0;
}

/* A number of occupants, or "none" (or nothing) for no limit. */
static int
parse_maxusers(const char *v, int *out)
{
    if (!*v || strcmp(v, "none") == 0) {
        *out = 0;
        return 0;
    }
    return parse_uint(v, MAX_USERS_MAX, out);
}

static int
parse_allowpm(const char *v, int *out)
{
    static const char *const names[] = {"none", "anyone", "participants", "moderators"};
    for (int i = 0; i < 4; i++)
        if (strcmp(v, names[i]) == 0) {
            *out = i;
            return 0;
        }
    int b; /* the older boolean field */
    if (parse_bool(v, &b) < 0)
        return MP_EINVAL;
    *out = b ? MUC_PM_ANYONE : MUC_PM_NONE;
    return 0;
}

/* The prepared bare JIDs of a jid-multi field into l (arena copies). */
static int
parse_jids(const mp_xnode *f, mp_arena *a, jid_list *l)
{
    size_t n = 0;
    for (const mp_xnode *v = f->children; v; v = v->next)
        n += strcmp(v->name, "value") == 0;
    if (n > LIST_MAX)
        return MP_EINVAL;
    l->v = mp_arena_alloc(a, (n ? n : 1) * sizeof *l->v);
    if (!l->v)
        return MP_ENOMEM;
    l->n = 0;
    for (const mp_xnode *v = f->children; v; v = v->next) {
        mp_jid j;
        char buf[3 * MP_JID_PART_MAX + 3];
        if (strcmp(v->ns, NS_XDATA) != 0 || strcmp(v->name, "value") != 0 || !v->text_len)
            continue;
        if (mp_jid_prep(v->text, v->text_len, &j) < 0 || !j.node_len || j.resource_len ||
            mp_jid_bare(&j, buf, sizeof buf) < 0)
            return MP_EINVAL;
        if (!(l->v[l->n++] = mp_arena_strndup(a, buf, strlen(buf))))
            return MP_ENOMEM;
    }
    return 0;
}

/* Read x into next, a copy of cur whose strings borrow from cur or from x. MP_EINVAL for a bad
 * value, MP_ENOMEM. The admin and owner lists (NULL v: not submitted) go to admins/owners. */
static int
form_read(const mp_xnode *x, const muc_config *cur, muc_config *next, jid_list *admins,
          jid_list *owners, mp_arena *a)
{
    int rc = 0, pw_field = 0;
    const char *secret = NULL;

    *next = *cur;
    admins->v = owners->v = NULL;
    admins->n = owners->n = 0;
    for (const mp_xnode *f = x->children; f && rc == 0; f = f->next) {
        if (strcmp(f->ns, NS_XDATA) != 0 || strcmp(f->name, "field") != 0)
            continue;
        const char *var = mp_xnode_attr(f, "var");
        const char *v = fvalue(f);
        if (!var)
            continue;
        if (strcmp(var, F("roomadmins")) == 0) {
            rc = parse_jids(f, a, admins);
            continue;
        }
        if (strcmp(var, F("roomowners")) == 0) {
            rc = parse_jids(f, a, owners);
            continue;
        }
        if (!v) /* a field without a value keeps the current one */
            continue;
        if (strcmp(var, "FORM_TYPE") == 0)
            rc = strcmp(v, MUC_NS_CONFIG) == 0 ? 0 : MP_EINVAL;
        else if (strcmp(var, F("roomname")) == 0)
            next->name = (char *)v;
        else if (strcmp(var, F("roomdesc")) == 0)
            next->description = (char *)v;
        else if (strcmp(var, F("persistentroom")) == 0)
            rc = parse_bool(v, &next->persistent);
        else if (strcmp(var, F("publicroom")) == 0)
            rc = parse_bool(v, &next->public_room);
        else if (strcmp(var, F("membersonly")) == 0)
            rc = parse_bool(v, &next->members_only);
        else if (strcmp(var, F("passwordprotectedroom")) == 0) {
            rc = parse_bool(v, &next->password_protected);
            pw_field = 1;
        } else if (strcmp(var, F("roomsecret")) == 0)
            secret = v;
        else if (strcmp(var, F("moderatedroom")) == 0)
            rc = parse_bool(v, &next->moderated);
        else if (strcmp(var, F("maxusers")) == 0)
            rc = parse_maxusers(v, &next->max_users);
        else if (strcmp(var, F("whois")) == 0) {
            if (strcmp(v, "anyone") == 0)
                next->whois = MUC_WHOIS_ANYONE;
            else if (strcmp(v, "moderators") == 0)
                next->whois = MUC_WHOIS_MODERATORS;
            else
                rc = MP_EINVAL;
        } else if (strcmp(var, F("allowinvites")) == 0)
            rc = parse_bool(v, &next->allow_invites);
        else if (strcmp(var, F("changesubject")) == 0)
            rc = parse_bool(v, &next->change_subject);
        else if (strcmp(var, F("allowpm")) == 0)
            rc = parse_allowpm(v, &next->allow_pm);
        else if (strcmp(var, "muc#maxhistoryfetch") == 0 || strcmp(var, F("historylength")) == 0)
            rc = parse_uint(v, HISTORY_MAX, &next->history_length);
        else if (strcmp(var, F("enablelogging")) == 0 || strcmp(var, F("enablearchiving")) == 0)
            rc = parse_bool(v, &next->logging);
    }
    if (rc < 0)
        return rc;
    if (secret) {
        next->password = (char *)secret;
        /* a client that only fills in the secret means a password-protected room */
        if (!pw_field && *secret)
            next->password_protected = 1;
    }
    if (next->password_protected && !*next->password)
        return MP_EINVAL;
    return 0;
}

static int
str_changed(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "") != 0;
}

/* The status codes of §10.2.1 for going from o to n, 0-terminated in codes (ncodes >= 4). */
static void
status_codes(const muc_config *o, const muc_config *n, int *codes, size_t ncodes)
{
    size_t k = 0;
    int other = str_changed(o->name, n->name) || str_changed(o->description, n->description) ||
                str_changed(o->password, n->password) || o->persistent != n->persistent ||
                o->public_room != n->public_room || o->members_only != n->members_only ||
                o->password_protected != n->password_protected || o->moderated != n->moderated ||
                o->max_users != n->max_users || o->allow_invites != n->allow_invites ||
                o->change_subject != n->change_subject || o->allow_pm != n->allow_pm ||
                o->history_length != n->history_length;
    if (other && k + 1 < ncodes)
        codes[k++] = 104;
    if (o->logging != n->logging && k + 1 < ncodes)
        codes[k++] = n->logging ? 170 : 171;
    if (o->whois != n->whois && k + 1 < ncodes)
        codes[k++] = n->whois == MUC_WHOIS_ANYONE ? 172 : 173;
    if (ncodes)
        codes[k] = 0;
}

static int
dup_into(char **dst, const char *src, char **mine)
{
    if (*dst == src) { /* unchanged: keep the room's own string */
        *mine = NULL;
        return 0;
    }
    *mine = strdup(src ? src : "");
    return *mine ? 0 : MP_ENOMEM;
}

/* Copy next into the room's configuration; its strings become the room's own. */
static int
commit(muc_config *dst, const muc_config *next)
{
    char *name, *desc = NULL, *pw = NULL;
    if (dup_into(&dst->name, next->name, &name) < 0 ||
        dup_into(&dst->description, next->description, &desc) < 0 ||
        dup_into(&dst->password, next->password, &pw) < 0) {
        free(name);
        free(desc);
        return MP_ENOMEM;
    }
    muc_config c = *next;
    c.name = name ? name : dst->name;
    c.description = desc ? desc : dst->description;
    c.password = pw ? pw : dst->password;
    if (name)
        free(dst->name);
    if (desc)
        free(dst->description);
    if (pw)
        free(dst->password);
    *dst = c;
    return 0;
}

static int
listed(const jid_list *l, const char *bare)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i], bare) == 0)
            return 1;
    return 0;
}

/* The submitted lists are full lists (§10.2): listed JIDs get the affiliation, admins or owners
 * left out lose it. An empty or absent list changes nothing, so no form leaves a room without
 * owners. Owners win over admins, and without an owners list an owner listed as admin stays an
 * owner. */
static int
apply_lists(muc_room *room, const jid_list *admins, const jid_list *owners, mp_arena *a)
{
    const char **drop = NULL;
    size_t ndrop = 0, cap = room->affiliations.count;

    if (cap && !(drop = mp_arena_alloc(a, cap * sizeof *drop)))
        return MP_ENOMEM;
    for (size_t i = 0; i < room->affiliations.nbuckets; i++)
        for (mp_hnode *h = room->affiliations.buckets[i]; h; h = h->next) {
            muc_affiliation *af = mp_container_of(h, muc_affiliation, by_jid);
            if ((af->affil == MUC_OWNER && owners->n && !listed(owners, af->jid)) ||
                (af->affil == MUC_ADMIN && admins->n && !listed(admins, af->jid) &&
                 !listed(owners, af->jid)))
                drop[ndrop++] = af->jid; /* the node stays until the loop is done */
        }
    for (size_t i = 0; i < ndrop; i++) {
        char *copy = mp_arena_strndup(a, drop[i], strlen(drop[i]));
        if (!copy || muc_affil_set(room, copy, MUC_AFF_NONE, "") < 0)
            return MP_ENOMEM;
    }
    for (size_t i = 0; i < admins->n; i++) {
        /* without an owners list the owners stay: an owner among the admins is not demoted,
         * which could leave the room with none */
        if (listed(owners, admins->v[i]) ||
            (!owners->n && muc_affil_of(room, admins->v[i]) == MUC_OWNER))
            continue;
        if (muc_affil_set(room, admins->v[i], MUC_ADMIN, "") < 0)
            return MP_ENOMEM;
    }
    for (size_t i = 0; i < owners->n; i++)
        if (muc_affil_set(room, owners->v[i], MUC_OWNER, "") < 0)
            return MP_ENOMEM;
    return 0;
}

static int
apply(muc_room *room, const mp_xnode *x, mp_arena *a, int *codes, size_t ncodes)
{
    muc_config next;
    jid_list admins, owners;

    if (ncodes)
        codes[0] = 0;
    if (x) {
        int rc = form_read(x, &room->cfg, &next, &admins, &owners, a);
        if (rc < 0)
            return rc;
        if (room->svc) { /* the site's limits win over the form's */
            const mp_config *mc = mp_core_config(room->svc->core);
            if (next.history_length > mc->muc_max_history)
                next.history_length = mc->muc_max_history;
            if (mc->muc_max_occupants > 0 && next.max_users > mc->muc_max_occupants)
                next.max_users = mc->muc_max_occupants;
            /* stored, listed in disco and sent with every invitation: bounded */
            size_t max = (size_t)mc->muc_max_text_len;
            if (strlen(next.name) > max || strlen(next.description) > max ||
                strlen(next.password) > max)
                return MP_EINVAL;
        }
        status_codes(&room->cfg, &next, codes, ncodes);
        if ((rc = commit(&room->cfg, &next)) < 0 || (rc = apply_lists(room, &admins, &owners, a)))
            return rc;
    }
    room->locked = 0;
    return 0;
}

int
muc_config_apply_form(muc_room *room, const mp_xnode *x, int *codes, size_t ncodes)
{
    mp_arena a;
    mp_arena_init(&a, 4096);
    int rc = apply(room, x, &a, codes, ncodes);
    mp_arena_free(&a);
    return rc;
}

/* ---- building forms ---- */

static mp_xnode *
add_text(mp_arena *a, mp_xnode *parent, const char *ns, const char *name, const char *text)
{
    mp_xnode *n = mp_xnode_new(a, ns, name);
    if (!n || (text && mp_xnode_set_text(a, n, text, strlen(text)) < 0))
        return NULL;
    mp_xnode_append(parent, n);
    return n;
}

static mp_xnode *
add_bool(mp_arena *a, mp_xnode *x, const char *var, const char *label, int v)
{
    return mp_form_field(a, x, var, "boolean", label, v ? "1" : "0");
}

static mp_xnode *
add_list(mp_arena *a, mp_xnode *x, const char *var, const char *label, const char *value,
         const char *const *opts, size_t nopts)
{
    mp_xnode *f = mp_form_field(a, x, var, "list-single", label, value);
    for (size_t i = 0; f && i < nopts; i++) {
        mp_xnode *o = mp_xnode_new(a, NS_XDATA, "option");
        if (!o || mp_xnode_set_attr(a, o, "label", opts[i]) < 0 || !mp_form_value(a, o, opts[i]))
            return NULL;
        mp_xnode_append(f, o);
    }
    return f;
}

static mp_xnode *
add_jids(mp_arena *a, mp_xnode *x, const muc_room *room, const char *var, const char *label,
         int affil)
{
    mp_xnode *f = mp_form_field(a, x, var, "jid-multi", label, NULL);
    for (size_t i = 0; f && i < room->affiliations.nbuckets; i++)
        for (mp_hnode *h = room->affiliations.buckets[i]; h; h = h->next) {
            muc_affiliation *af = mp_container_of(h, muc_affiliation, by_jid);
            if (af->affil == affil && !mp_form_value(a, f, af->jid))
                return NULL;
        }
    return f;
}

/* The muc#roomconfig form with the room's current values, in x. */
static int
config_form(mp_arena *a, mp_xnode *x, const muc_room *room)
{
    static const char *const maxusers[] = {"none", "10", "20", "30", "50", "100", "200"};
    static const char *const whois[] = {"moderators", "anyone"};
    static const char *const pm[] = {"anyone", "participants", "moderators", "none"};
    static const char *const pm_names[] = {"none", "anyone", "participants", "moderators"};
    const muc_config *c = &room->cfg;
    char title[512], n1[16], n2[16];

    snprintf(title, sizeof title, "Configuration of %s", room->jid);
    snprintf(n1, sizeof n1, "%d", c->max_users);
    snprintf(n2, sizeof n2, "%d", c->history_length);
    int pmi = c->allow_pm >= MUC_PM_NONE && c->allow_pm <= MUC_PM_MODERATORS ? c->allow_pm : 1;
    if (mp_xnode_set_attr(a, x, "type", "form") < 0 || !add_text(a, x, NS_XDATA, "title", title) ||
        !mp_form_field(a, x, "FORM_TYPE", "hidden", NULL, MUC_NS_CONFIG) ||
        !mp_form_field(a, x, F("roomname"), "text-single", "Name", c->name) ||
        !mp_form_field(a, x, F("roomdesc"), "text-single", "Description", c->description) ||
        !add_bool(a, x, F("persistentroom"), "Persistent (kept when empty)", c->persistent) ||
        !add_bool(a, x, F("publicroom"), "Listed in the directory", c->public_room) ||
        !add_bool(a, x, F("membersonly"), "Members only", c->members_only) ||
        !add_bool(a, x, F("passwordprotectedroom"), "Password required to enter",
                  c->password_protected) ||
        !mp_form_field(a, x, F("roomsecret"), "text-private", "Password", c->password) ||
        !add_bool(a, x, F("moderatedroom"), "Moderated (only participants speak)", c->moderated) ||
        !add_list(a, x, F("maxusers"), "Maximum number of occupants", c->max_users ? n1 : "none",
                  maxusers, sizeof maxusers / sizeof maxusers[0]) ||
        !add_list(a, x, F("whois"), "Who may discover real JIDs", whois[c->whois != 0], whois, 2) ||
        !add_bool(a, x, F("allowinvites"), "Occupants may invite others", c->allow_invites) ||
        !add_bool(a, x, F("changesubject"), "Occupants may change the subject",
                  c->change_subject) ||
        !add_list(a, x, F("allowpm"), "Who may send private messages", pm_names[pmi], pm, 4) ||
        !mp_form_field(a, x, "muc#maxhistoryfetch", "text-single",
                       "Messages of history sent on entry", n2) ||
        !add_bool(a, x, F("enablelogging"), "Archive messages (MAM)", c->logging) ||
        !add_jids(a, x, room, F("roomadmins"), "Room admins", MUC_ADMIN) ||
        !add_jids(a, x, room, F("roomowners"), "Room owners", MUC_OWNER))
        return MP_ENOMEM;
    return 0;
}

/* ---- muc#owner ---- */

/* After a configuration change: the roles that follow from affiliations that changed (before[]
 * holds each occupant's affiliation in list order), removal of non-members from a room that
 * became members-only (322), the history length, storage, the status codes. */
static int
after_change(muc_service *svc, muc_room *room, mp_arena *a, const int *before, int was_locked,
             const int *codes)
{
    static const int not_member[] = {322, 0};
    size_t n = 0;
    for (muc_occupant *o = room->list; o; o = o->next)
        n++;
    muc_occupant **v = n ? mp_arena_alloc(a, n * sizeof *v) : NULL;
    if (n && !v)
        return MP_ENOMEM;
    n = 0;
    for (muc_occupant *o = room->list; o; o = o->next)
        v[n++] = o;
    for (size_t i = 0; i < n; i++) {
        int affil = muc_affil_of(room, v[i]->bare);
        if (room->cfg.members_only && affil < MUC_MEMBER) {
            v[i]->role = MUC_ROLE_NONE;
            muc_occupant_changed(svc, room, v[i], not_member, NULL, NULL);
        } else if (before && affil != before[i]) {
            v[i]->role = muc_role_for(room, affil);
            muc_occupant_changed(svc, room, v[i], NULL, NULL, NULL);
        }
    }
    muc_history_trim(room);
    if (!was_locked && codes[0])
        muc_room_status_message(svc, room, codes);
    /* an owner outside the room made it temporary (or emptied it): nobody is left whose
     * leaving would forget it, so it goes before the next stanza */
    if (room->noccupants == 0 && !room->cfg.persistent)
        svc->gc_pending = 1;
    return muc_store_save(svc, room);
}

static int
owner_set(muc_service *svc, muc_room *room, mp_iq *iq)
{
    const mp_xnode *destroy = mp_xnode_child(iq->payload, MUC_NS_OWNER, "destroy");
    const mp_xnode *x = mp_xnode_child(iq->payload, NS_XDATA, "x");

    if (destroy) { /* §10.9 */
        const char *alt = mp_xnode_attr(destroy, "jid");
        const mp_xnode *r = mp_xnode_child(destroy, MUC_NS_OWNER, "reason");
        const mp_xnode *pw = mp_xnode_child(destroy, MUC_NS_OWNER, "password");
        mp_jid j;
        char buf[3 * MP_JID_PART_MAX + 3];
        if (alt && (mp_jid_prep(alt, strlen(alt), &j) < 0 || mp_jid_full(&j, buf, sizeof buf) < 0))
            return mp_iq_error(iq, "modify", "jid-malformed");
        mp_info("muc %s: destroyed by %s", room->jid, iq->from);
        muc_room_evict_all(svc, room, alt ? buf : NULL, r && r->text_len ? r->text : NULL,
                           pw && pw->text_len ? pw->text : NULL);
        muc_room_free(svc, room, 1);
        return mp_iq_result(iq, NULL);
    }
    if (!x)
        return mp_iq_error(iq, "modify", "bad-request");
    const char *type = mp_xnode_attr(x, "type");
    if (type && strcmp(type, "cancel") == 0) { /* §10.1.3: a new room the owner gave up on */
        if (room->locked) {
            muc_room_evict_all(svc, room, NULL, NULL, NULL);
            muc_room_free(svc, room, 1);
        }
        return mp_iq_result(iq, NULL);
    }
    if (!type || strcmp(type, "submit") != 0)
        return mp_iq_error(iq, "modify", "bad-request");

    size_t n = 0;
    for (muc_occupant *o = room->list; o; o = o->next)
        n++;
    int *before = mp_arena_alloc(iq->arena, (n ? n : 1) * sizeof *before);
    if (!before)
        return mp_iq_error(iq, "wait", "internal-server-error");
    n = 0;
    for (muc_occupant *o = room->list; o; o = o->next)
        before[n++] = muc_affil_of(room, o->bare);
    int was_locked = room->locked, codes[4];
    int rc = apply(room, x, iq->arena, codes, 4);
    if (rc == MP_EINVAL)
        return mp_iq_error(iq, "modify", "not-acceptable");
    if (rc < 0)
        return mp_iq_error(iq, "wait", "internal-server-error");
    if (was_locked)
        mp_info("muc %s: configured by %s, unlocked", room->jid, iq->from);
    if (after_change(svc, room, iq->arena, before, was_locked, codes) < 0)
        return mp_iq_error(iq, "wait", "internal-server-error");
    return mp_iq_result(iq, NULL);
}

int
muc_owner_iq(mp_iq *iq, void *ud)
{
    muc_service *svc = ud;
    muc_room *room = muc_iq_room(svc, iq);
    if (!room)
        return 0;
    const char *bare = mp_arena_strndup(iq->arena, iq->from, strcspn(iq->from, "/"));
    if (!bare)
        return mp_iq_error(iq, "wait", "internal-server-error");
    if (muc_affil_of(room, bare) != MUC_OWNER)
        return mp_iq_error(iq, "auth", "forbidden");
    if (iq->type == MP_IQ_SET)
        return owner_set(svc, room, iq);
    mp_xnode *q = mp_xnode_new(iq->arena, MUC_NS_OWNER, "query");
    mp_xnode *x = mp_xnode_new(iq->arena, NS_XDATA, "x");
    if (!q || !x || config_form(iq->arena, x, room) < 0)
        return mp_iq_error(iq, "wait", "internal-server-error");
    mp_xnode_append(q, x);
    return mp_iq_result(iq, q);
}

/* ---- disco#info (§6.4) ---- */

mp_xnode *
muc_room_disco_info(muc_service *svc, muc_room *room, mp_arena *a)
{
    const muc_config *c = &room->cfg;
    const char *features[] = {
        MUC_NS,
        c->public_room ? "muc_public" : "muc_hidden",
        c->persistent ? "muc_persistent" : "muc_temporary",
        c->members_only ? "muc_membersonly" : "muc_open",
        c->moderated ? "muc_moderated" : "muc_unmoderated",
        c->password_protected ? "muc_passwordprotected" : "muc_unsecured",
        c->whois == MUC_WHOIS_ANYONE ? "muc_nonanonymous" : "muc_semianonymous",
        c->logging ? NS_MAM : NULL,
    };
    char occupants[16], hist[16];
    mp_xnode *q = mp_xnode_new(a, NS_DISCO_INFO, "query");
    mp_xnode *id = mp_xnode_new(a, NS_DISCO_INFO, "identity");
    mp_xnode *x = mp_xnode_new(a, NS_XDATA, "x");
    if (!q || !id || !x || mp_xnode_set_attr(a, id, "category", "conference") < 0 ||
        mp_xnode_set_attr(a, id, "type", "text") < 0 ||
        mp_xnode_set_attr(a, id, "name", c->name && *c->name ? c->name : room->node) < 0)
        return NULL;
    mp_xnode_append(q, id);
    for (size_t i = 0; i < sizeof features / sizeof features[0]; i++) {
        if (!features[i])
            continue;
        mp_xnode *f = mp_xnode_new(a, NS_DISCO_INFO, "feature");
        if (!f || mp_xnode_set_attr(a, f, "var", features[i]) < 0)
            return NULL;
        mp_xnode_append(q, f);
    }
    snprintf(occupants, sizeof occupants, "%d", room->noccupants);
    snprintf(hist, sizeof hist, "%d", c->history_length);
    if (mp_xnode_set_attr(a, x, "type", "result") < 0 ||
        !mp_form_field(a, x, "FORM_TYPE", "hidden", NULL, MUC_NS_ROOMINFO) ||
        !mp_form_field(a, x, "muc#roominfo_description", NULL, "Description", c->description) ||
        !mp_form_field(a, x, "muc#roominfo_subject", NULL, "Subject", c->subject) ||
        !mp_form_field(a, x, "muc#roominfo_occupants", NULL, "Number of occupants", occupants) ||
        !mp_form_field(a, x, "muc#roomconfig_roomname", NULL, "Name", c->name) ||
        !mp_form_field(a, x, "muc#roominfo_subjectmod", "boolean",
                       "Occupants may change the subject", c->change_subject ? "1" : "0") ||
        !mp_form_field(a, x, "muc#maxhistoryfetch", NULL, "Messages of history sent on entry",
                       hist))
        return NULL;
    mp_xnode_append(q, x);
    return q;
}
