/* muc#admin (XEP-0045 §8 moderator and §9 admin use cases): role changes by nick (kick, voice,
 * moderator), affiliation changes by JID (ban, member, admin, owner) and the lists of both.
 *
 * A set may name several items: every item is checked before any is applied, so a request
 * either changes everything it asks for or nothing. The permission rules are pure functions
 * (muc_may_set_role, muc_may_set_affil) so the table can be tested exhaustively. */
#include "modules/muc/muc_int.h"
#include "xmpp/jid.h"
#include "base/err.h"
#include "base/log.h"

#include <string.h>

#define ITEMS_MAX 256 /* items one set may change */

static const char *const affil_names[] = {"outcast", "none", "member", "admin", "owner"};
static const char *const role_names[] = {"none", "visitor", "participant", "moderator"};

const char *
muc_affil_str(int affil)
{
    return affil >= MUC_OUTCAST && affil <= MUC_OWNER ? affil_names[affil] : "none";
}

const char *
muc_role_str(int role)
{
    return role >= MUC_ROLE_NONE && role <= MUC_MODERATOR ? role_names[role] : "none";
}

int
muc_affil_parse(const char *s)
{
    for (int i = MUC_OUTCAST; s && i <= MUC_OWNER; i++)
        if (strcmp(s, affil_names[i]) == 0)
            return i;
    return -1;
}

int
muc_role_parse(const char *s)
{
    for (int i = MUC_ROLE_NONE; s && i <= MUC_MODERATOR; i++)
        if (strcmp(s, role_names[i]) == 0)
            return i;
    return -1;
}

muc_room *
muc_iq_room(muc_service *svc, mp_iq *iq)
{
    size_t len = strcspn(iq->to, "/");
    if (iq->to[len]) { /* an occupant JID: these payloads are for the room itself */
        mp_iq_error(iq, "modify", "bad-request");
        return NULL;
    }
    muc_room *room = memchr(iq->to, '@', len) ? muc_room_find(svc, iq->to, len) : NULL;
    if (!room || room->destroyed) {
        mp_iq_error(iq, "cancel", "item-not-found");
        return NULL;
    }
    return room;
}

/* §8 (moderators: kick, voice), §9.6/§9.7 (admins: moderator status). Lowering the role of an
 * admin or owner, or of anyone with a higher affiliation than the actor, is not-allowed; only
 * admins and owners make or unmake moderators. */
int
muc_may_set_role(int actor_affil, int actor_role, int target_affil, int target_role, int new_role)
{
    if (actor_role != MUC_MODERATOR)
        return MUC_DENY_FORBIDDEN;
    if (new_role == target_role)
        return MUC_ALLOW;
    if ((new_role == MUC_MODERATOR || target_role == MUC_MODERATOR) && actor_affil < MUC_ADMIN)
        return MUC_DENY_FORBIDDEN;
    if (new_role < target_role && (target_affil >= MUC_ADMIN || target_affil > actor_affil))
        return MUC_DENY_NOT_ALLOWED;
    return MUC_ALLOW;
}

/* §9 (admins: ban, membership) and §10 (owners: admin and owner lists). Whether the last owner
 * goes is the caller's question (conflict), over the whole request. */
int
muc_may_set_affil(int actor_affil, int target_affil, int new_affil)
{
    if (actor_affil < MUC_ADMIN)
        return MUC_DENY_FORBIDDEN;
    if (new_affil == target_affil || actor_affil == MUC_OWNER)
        return MUC_ALLOW;
    if (new_affil >= MUC_ADMIN)
        return MUC_DENY_FORBIDDEN;
    if (target_affil >= MUC_ADMIN)
        return MUC_DENY_NOT_ALLOWED;
    return MUC_ALLOW;
}

static int
deny(mp_iq *iq, int verdict)
{
    switch (verdict) {
    case MUC_DENY_NOT_ALLOWED:
        return mp_iq_error(iq, "cancel", "not-allowed");
    case MUC_DENY_CONFLICT:
        return mp_iq_error(iq, "cancel", "conflict");
    default:
        return mp_iq_error(iq, "auth", "forbidden");
    }
}

/* ---- lists (§8.5, §9.5, §9.8, §10.5, §10.8) ---- */

static mp_xnode *
add_item(mp_arena *a, mp_xnode *q, const char *affil, const char *role, const char *jid,
         const char *nick, const char *reason)
{
    mp_xnode *it = mp_xnode_new(a, MUC_NS_ADMIN, "item");
    if (!it || (affil && mp_xnode_set_attr(a, it, "affiliation", affil) < 0) ||
        (role && mp_xnode_set_attr(a, it, "role", role) < 0) ||
        (jid && mp_xnode_set_attr(a, it, "jid", jid) < 0) ||
        (nick && *nick && mp_xnode_set_attr(a, it, "nick", nick) < 0))
        return NULL;
    if (reason && *reason) {
        mp_xnode *r = mp_xnode_new(a, MUC_NS_ADMIN, "reason");
        if (!r || mp_xnode_set_text(a, r, reason, strlen(reason)) < 0)
            return NULL;
        mp_xnode_append(it, r);
    }
    mp_xnode_append(q, it);
    return it;
}

static int
admin_get(muc_service *svc, muc_room *room, mp_iq *iq, int actor_affil, int actor_role)
{
    const mp_xnode *want = mp_xnode_child(iq->payload, MUC_NS_ADMIN, "item");
    const char *ra = want ? mp_xnode_attr(want, "role") : NULL;
    const char *aa = want ? mp_xnode_attr(want, "affiliation") : NULL;
    int role = ra ? muc_role_parse(ra) : -1;
    int affil = aa ? muc_affil_parse(aa) : -1;
    mp_arena *a = iq->arena;
    mp_xnode *q = mp_xnode_new(a, MUC_NS_ADMIN, "query");
    if (!q)
        return mp_iq_error(iq, "wait", "internal-server-error");

    if (role == MUC_MODERATOR || role == MUC_PARTICIPANT || role == MUC_VISITOR) {
        if (actor_role != MUC_MODERATOR && actor_affil < MUC_ADMIN)
            return mp_iq_error(iq, "auth", "forbidden");
        for (muc_occupant *o = room->list; o; o = o->next) {
            if (o->role != role)
                continue;
            const char *jid = o->sessions ? o->sessions->full : o->bare;
            if (!add_item(a, q, muc_affil_str(muc_affil_of(room, o->bare)), ra, jid, o->nick, NULL))
                return mp_iq_error(iq, "wait", "internal-server-error");
        }
        return mp_iq_result(iq, q);
    }
    if (affil < 0 || affil == MUC_AFF_NONE || ra)
        return mp_iq_error(iq, "modify", "bad-request");
    if (actor_affil < MUC_ADMIN)
        return mp_iq_error(iq, "auth", "forbidden");
    for (size_t i = 0; i < room->affiliations.nbuckets; i++) {
        for (mp_hnode *n = room->affiliations.buckets[i]; n; n = n->next) {
            muc_affiliation *af = mp_container_of(n, muc_affiliation, by_jid);
            if (af->affil == affil && !add_item(a, q, aa, NULL, af->jid, af->nick, af->reason))
                return mp_iq_error(iq, "wait", "internal-server-error");
        }
    }
    return mp_iq_result(iq, q);
}

/* ---- changes (§8.2-§8.4, §9.1-§9.7, §10.3-§10.7) ---- */

typedef struct change {
    int is_role;
    int value;          /* the new role or affiliation */
    const char *nick;   /* role: the occupant's nick */
    const char *bare;   /* affiliation: the bare JID */
    const char *reason; /* NULL when none */
} change;

/* The affiliation bare will have after changes[0..n) (the last one naming it wins). */
static int
affil_after(const muc_room *room, const change *c, size_t n, const char *bare)
{
    for (size_t i = n; i-- > 0;)
        if (!c[i].is_role && strcmp(c[i].bare, bare) == 0)
            return c[i].value;
    return muc_affil_of(room, bare);
}

static int
owners_count(const muc_room *room)
{
    int n = 0;
    for (size_t i = 0; i < room->affiliations.nbuckets; i++)
        for (mp_hnode *h = room->affiliations.buckets[i]; h; h = h->next)
            n += mp_container_of(h, muc_affiliation, by_jid)->affil == MUC_OWNER;
    return n;
}

/* One <item/> into c: 0, or the error already answered (negative). */
static int
parse_item(muc_room *room, mp_iq *iq, const mp_xnode *it, change *c)
{
    const char *role = mp_xnode_attr(it, "role");
    const char *affil = mp_xnode_attr(it, "affiliation");
    const char *nick = mp_xnode_attr(it, "nick");
    const char *jid = mp_xnode_attr(it, "jid");
    const mp_xnode *r = mp_xnode_child(it, MUC_NS_ADMIN, "reason");

    memset(c, 0, sizeof *c);
    c->reason = r && r->text_len ? r->text : NULL;
    if ((role != NULL) == (affil != NULL)) {
        mp_iq_error(iq, "modify", "bad-request");
        return MP_EINVAL;
    }
    if (role) {
        c->is_role = 1;
        c->value = muc_role_parse(role);
        c->nick = nick;
        if (c->value < 0 || !nick) {
            mp_iq_error(iq, "modify", "bad-request");
            return MP_EINVAL;
        }
        if (!muc_occupant_by_nick(room, nick)) {
            mp_iq_error(iq, "cancel", "item-not-found");
            return MP_ENOTFOUND;
        }
        return 0;
    }
    c->value = muc_affil_parse(affil);
    if (c->value < 0) {
        mp_iq_error(iq, "modify", "bad-request");
        return MP_EINVAL;
    }
    if (jid) {
        mp_jid j;
        char buf[3 * MP_JID_PART_MAX + 3];
        if (mp_jid_prep(jid, strlen(jid), &j) < 0 || mp_jid_bare(&j, buf, sizeof buf) < 0) {
            mp_iq_error(iq, "modify", "jid-malformed");
            return MP_EINVAL;
        }
        c->bare = mp_arena_strndup(iq->arena, buf, strlen(buf));
    } else if (nick) { /* some clients ban by nick: the occupant's real JID */
        muc_occupant *o = muc_occupant_by_nick(room, nick);
        if (!o) {
            mp_iq_error(iq, "cancel", "item-not-found");
            return MP_ENOTFOUND;
        }
        c->bare = mp_arena_strndup(iq->arena, o->bare, strlen(o->bare));
    } else {
        mp_iq_error(iq, "modify", "bad-request");
        return MP_EINVAL;
    }
    if (!c->bare) {
        mp_iq_error(iq, "wait", "internal-server-error");
        return MP_ENOMEM;
    }
    return 0;
}

/* Every occupant whose real bare JID is bare now has the affiliation just set: the role follows
 * (§9: a ban removes with 301; losing membership of a members-only room removes with 321). */
static void
affil_applied(muc_service *svc, muc_room *room, mp_arena *a, const char *bare, int affil,
              const char *actor, const char *reason)
{
    static const int banned[] = {301, 0}, unmembered[] = {321, 0};
    size_t n = 0;
    for (muc_occupant *o = room->list; o; o = o->next)
        n += strcmp(o->bare, bare) == 0;
    if (!n)
        return;
    muc_occupant **v = mp_arena_alloc(a, n * sizeof *v);
    if (!v)
        return;
    n = 0;
    for (muc_occupant *o = room->list; o; o = o->next)
        if (strcmp(o->bare, bare) == 0)
            v[n++] = o;
    for (size_t i = 0; i < n; i++) {
        const int *codes = NULL;
        if (affil == MUC_OUTCAST) {
            v[i]->role = MUC_ROLE_NONE;
            codes = banned;
        } else if (room->cfg.members_only && affil < MUC_MEMBER) {
            v[i]->role = MUC_ROLE_NONE;
            codes = unmembered;
        } else {
            v[i]->role = muc_role_for(room, affil);
        }
        muc_occupant_changed(svc, room, v[i], codes, actor, reason);
    }
}

static int
admin_set(muc_service *svc, muc_room *room, mp_iq *iq, int actor_affil, int actor_role,
          const char *actor_nick)
{
    size_t n = 0;
    for (const mp_xnode *it = iq->payload->children; it; it = it->next)
        n += strcmp(it->ns, MUC_NS_ADMIN) == 0 && strcmp(it->name, "item") == 0;
    if (n == 0)
        return mp_iq_error(iq, "modify", "bad-request");
    if (n > ITEMS_MAX)
        return mp_iq_error(iq, "modify", "not-acceptable");
    change *c = mp_arena_alloc(iq->arena, n * sizeof *c);
    if (!c)
        return mp_iq_error(iq, "wait", "internal-server-error");

    /* check everything first */
    n = 0;
    int owners = owners_count(room), owner_lost = 0;
    for (const mp_xnode *it = iq->payload->children; it; it = it->next) {
        if (strcmp(it->ns, MUC_NS_ADMIN) != 0 || strcmp(it->name, "item") != 0)
            continue;
        if (parse_item(room, iq, it, &c[n]) < 0)
            return 0;
        int verdict;
        if (c[n].is_role) {
            muc_occupant *o = muc_occupant_by_nick(room, c[n].nick);
            verdict = muc_may_set_role(actor_affil, actor_role, affil_after(room, c, n, o->bare),
                                       o->role, c[n].value);
        } else {
            int cur = affil_after(room, c, n, c[n].bare);
            verdict = muc_may_set_affil(actor_affil, cur, c[n].value);
            owners += (c[n].value == MUC_OWNER) - (cur == MUC_OWNER);
            owner_lost |= cur == MUC_OWNER && c[n].value != MUC_OWNER;
        }
        if (verdict != MUC_ALLOW)
            return deny(iq, verdict);
        n++;
    }
    if (owners <= 0 && owner_lost) /* §10.7: the last owner stays */
        return deny(iq, MUC_DENY_CONFLICT);

    int changed_affil = 0;
    for (size_t i = 0; i < n; i++) {
        if (c[i].is_role) {
            static const int kicked[] = {307, 0};
            muc_occupant *o = muc_occupant_by_nick(room, c[i].nick);
            if (!o || o->role == c[i].value) /* gone by an earlier item, or nothing to do */
                continue;
            o->role = c[i].value;
            muc_occupant_changed(svc, room, o, c[i].value == MUC_ROLE_NONE ? kicked : NULL,
                                 actor_nick, c[i].reason);
            continue;
        }
        if (muc_affil_of(room, c[i].bare) == c[i].value)
            continue;
        if (muc_affil_set(room, c[i].bare, c[i].value, c[i].reason ? c[i].reason : "") < 0) {
            mp_err("muc %s: cannot set an affiliation: out of memory", room->jid);
            return mp_iq_error(iq, "wait", "internal-server-error");
        }
        changed_affil = 1;
        mp_info("muc %s: %s is now %s", room->jid, c[i].bare, muc_affil_str(c[i].value));
        affil_applied(svc, room, iq->arena, c[i].bare, c[i].value, actor_nick, c[i].reason);
    }
    if (changed_affil && room->cfg.persistent && muc_store_save(svc, room) < 0)
        return mp_iq_error(iq, "wait", "internal-server-error");
    return mp_iq_result(iq, NULL);
}

int
muc_admin_iq(mp_iq *iq, void *ud)
{
    muc_service *svc = ud;
    muc_room *room = muc_iq_room(svc, iq);
    if (!room)
        return 0;
    const char *bare = mp_arena_strndup(iq->arena, iq->from, strcspn(iq->from, "/"));
    if (!bare)
        return mp_iq_error(iq, "wait", "internal-server-error");
    muc_occupant *me = muc_occupant_by_real(room, iq->from);
    int affil = muc_affil_of(room, bare);
    int role = me ? me->role : MUC_ROLE_NONE;
    if (iq->type == MP_IQ_GET)
        return admin_get(svc, room, iq, affil, role);
    /* the actor's nick is copied: a change may remove the actor's own occupant */
    const char *nick = me ? mp_arena_strndup(iq->arena, me->nick, strlen(me->nick)) : NULL;
    if (me && !nick)
        return mp_iq_error(iq, "wait", "internal-server-error");
    return admin_set(svc, room, iq, affil, role, nick);
}
