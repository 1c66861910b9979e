/* Occupants of a room (XEP-0045 §7): joining with every check and error the XEP names, the
 * presence broadcast in its order with the status codes, nick changes, leaving, groupchat
 * messages, the subject, private messages and IQs between occupants.
 *
 * Fan-out: a groupchat message is parsed once (the core's tree), rewritten (from = the
 * sender's occupant JID, no 'to', the room's stanza-id), serialized once, and the same bytes
 * go to every session through mp_core_deliver, which inserts each 'to' while copying: no
 * allocation per recipient. A presence is serialized at most twice (with and without the real
 * JID, §7.2.3/§7.2.4) plus once for the occupant itself. */
#include "modules/muc/muc_int.h"
#include "router/archive.h"
#include "router/core.h"
#include "storage/store.h"
#include "base/config.h"
#include "base/err.h"
#include "base/log.h"
#include "base/rand.h"
#include "xml/escape.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NS_CLIENT "jabber:client"
#define NS_DATA "jabber:x:data"
#define MAX_CODES 8

/* ---- small helpers ---- */

static int
is_el(const mp_xnode *n, const char *ns, const char *name)
{
    return strcmp(n->ns, ns) == 0 && strcmp(n->name, name) == 0;
}

static size_t
bare_len(const char *full)
{
    const char *slash = strchr(full, '/');
    return slash ? (size_t)(slash - full) : strlen(full);
}

static int
put_attr(mp_buf *b, const char *name, const char *v)
{
    int bad = mp_buf_printf(b, " %s='", name) < 0;
    bad |= mp_xml_escape_attr(b, v, strlen(v)) < 0;
    bad |= mp_buf_puts(b, "'") < 0;
    return bad ? MP_ENOMEM : 0;
}

static const char *const affil_names[] = {"outcast", "none", "member", "admin", "owner"};
static const char *const role_names[] = {"none", "visitor", "participant", "moderator"};

static const char *
affil_name(int a)
{
    return a >= MUC_OUTCAST && a <= MUC_OWNER ? affil_names[a] : "none";
}

static const char *
role_name(int r)
{
    return r >= MUC_ROLE_NONE && r <= MUC_MODERATOR ? role_names[r] : "none";
}

/* Deliver bytes to every session of o; from is the JID in the bytes' 'from'. */
static void
to_sessions(muc_service *svc, const muc_occupant *o, const char *from, const mp_buf *b)
{
    for (const muc_session *s = o->sessions; s; s = s->next)
        mp_core_deliver(svc->core, from, s->full, s->len, b->data, b->len, 0);
}

/* ---- affiliations and roles ---- */

static muc_affiliation *
affil_find(const muc_room *room, const char *bare, size_t len)
{
    uint64_t h = mp_hash_str(bare, len);
    for (mp_hnode *n = mp_htab_find(&room->affiliations, h); n; n = mp_htab_next_same(n->next, h)) {
        muc_affiliation *a = mp_container_of(n, muc_affiliation, by_jid);
        if (strlen(a->jid) == len && memcmp(a->jid, bare, len) == 0)
            return a;
    }
    return NULL;
}

int
muc_affil_of(const muc_room *room, const char *bare)
{
    const muc_affiliation *a = affil_find(room, bare, bare_len(bare));
    return a ? a->affil : MUC_AFF_NONE;
}

int
muc_affil_set(muc_room *room, const char *bare, int affil, const char *reason)
{
    size_t len = bare_len(bare);
    muc_affiliation *a = affil_find(room, bare, len);
    if (affil == MUC_AFF_NONE) {
        if (a) {
            mp_htab_remove(&room->affiliations, &a->by_jid);
            free(a->reason);
            free(a->nick);
            free(a);
        }
        return 0;
    }
    char *r = strdup(reason ? reason : "");
    if (!r)
        return MP_ENOMEM;
    if (!a) {
        a = calloc(1, sizeof *a + len + 1);
        char *nick = strdup("");
        if (!a || !nick) {
            free(a);
            free(nick);
            free(r);
            return MP_ENOMEM;
        }
        memcpy(a->jid, bare, len);
        a->nick = nick;
        if (mp_htab_insert(&room->affiliations, &a->by_jid, mp_hash_str(bare, len)) < 0) {
            free(a->nick);
            free(a);
            free(r);
            return MP_ENOMEM;
        }
    }
    free(a->reason);
    a->reason = r;
    a->affil = affil;
    return 0;
}

int
muc_role_for(const muc_room *room, int affil)
{
    switch (affil) {
    case MUC_OWNER:
    case MUC_ADMIN:
        return MUC_MODERATOR;
    case MUC_MEMBER:
        return MUC_PARTICIPANT;
    case MUC_AFF_NONE:
        return room->cfg.moderated ? MUC_VISITOR : MUC_PARTICIPANT;
    default:
        return MUC_ROLE_NONE;
    }
}

/* A nick registered by another JID (§7.10): only that JID may use it. */
static int
nick_reserved_by_other(const muc_room *room, const char *nick, const char *bare, size_t blen)
{
    const mp_htab *t = &room->affiliations;
    for (size_t i = 0; i < t->nbuckets; i++)
        for (mp_hnode *n = t->buckets[i]; n; n = n->next) {
            const muc_affiliation *a = mp_container_of(n, muc_affiliation, by_jid);
            if (a->nick && a->nick[0] && strcmp(a->nick, nick) == 0 &&
                !(strlen(a->jid) == blen && memcmp(a->jid, bare, blen) == 0))
                return 1;
        }
    return 0;
}

/* ---- occupants ---- */

muc_occupant *
muc_occupant_by_nick(muc_room *room, const char *nick)
{
    size_t len = strlen(nick);
    uint64_t h = mp_hash_str(nick, len);
    for (mp_hnode *n = mp_htab_find(&room->occupants, h); n; n = mp_htab_next_same(n->next, h)) {
        muc_occupant *o = mp_container_of(n, muc_occupant, by_nick);
        if (strcmp(o->nick, nick) == 0)
            return o;
    }
    return NULL;
}

static muc_session *
session_by_real(muc_room *room, const char *full)
{
    size_t len = strlen(full);
    uint64_t h = mp_hash_str(full, len);
    for (mp_hnode *n = mp_htab_find(&room->sessions, h); n; n = mp_htab_next_same(n->next, h)) {
        muc_session *s = mp_container_of(n, muc_session, by_full);
        if (s->len == len && memcmp(s->full, full, len) == 0)
            return s;
    }
    return NULL;
}

muc_occupant *
muc_occupant_by_real(muc_room *room, const char *full)
{
    muc_session *s = session_by_real(room, full);
    return s ? s->occ : NULL;
}

static int
visible_jid(const muc_room *room, const muc_occupant *viewer)
{
    return room->cfg.whois == MUC_WHOIS_ANYONE || viewer->role == MUC_MODERATOR;
}

static muc_session *
session_add(muc_room *room, muc_occupant *o, const char *full)
{
    size_t len = strlen(full);
    muc_session *s = calloc(1, sizeof *s + len + 1);
    if (!s)
        return NULL;
    memcpy(s->full, full, len);
    s->len = len;
    s->occ = o;
    if (mp_htab_insert(&room->sessions, &s->by_full, mp_hash_str(full, len)) < 0) {
        free(s);
        return NULL;
    }
    s->next = o->sessions;
    o->sessions = s;
    return s;
}

static void
session_remove(muc_room *room, muc_occupant *o, muc_session *s)
{
    for (muc_session **p = &o->sessions; *p; p = &(*p)->next)
        if (*p == s) {
            *p = s->next;
            break;
        }
    mp_htab_remove(&room->sessions, &s->by_full);
    free(s);
}

/* An occupant with no session yet, not in the room's tables. */
static muc_occupant *
occupant_alloc(const muc_room *room, const char *nick, const char *bare, size_t blen)
{
    size_t nl = strlen(nick);
    muc_occupant *o = calloc(1, sizeof *o + nl + 1);
    if (!o)
        return NULL;
    memcpy(o->nick, nick, nl);
    o->bare = strndup(bare, blen);
    o->occupant_jid_len = room->jid_len + 1 + nl;
    o->occupant_jid = malloc(o->occupant_jid_len + 1);
    if (!o->bare || !o->occupant_jid) {
        free(o->bare);
        free(o->occupant_jid);
        free(o);
        return NULL;
    }
    memcpy(o->occupant_jid, room->jid, room->jid_len);
    o->occupant_jid[room->jid_len] = '/';
    memcpy(o->occupant_jid + room->jid_len + 1, nick, nl + 1);
    return o;
}

static void
occupant_unlink(muc_room *room, muc_occupant *o)
{
    mp_htab_remove(&room->occupants, &o->by_nick);
    for (muc_occupant **p = &room->list; *p; p = &(*p)->next)
        if (*p == o) {
            *p = o->next;
            break;
        }
    room->noccupants--;
}

static void
occupant_free(muc_room *room, muc_occupant *o)
{
    while (o->sessions)
        session_remove(room, o, o->sessions);
    free(o->presence);
    free(o->bare);
    free(o->occupant_jid);
    free(o);
}

/* Keep the presence a client sent (its children but the MUC ones) to show newcomers. Each
 * newcomer gets every occupant's, so its size is capped: MP_ELIMIT leaves o as it was. */
static int
keep_presence(muc_service *svc, muc_occupant *o, const mp_xnode *pres)
{
    size_t max = (size_t)mp_core_config(svc->core)->muc_max_presence_len;
    mp_buf b = {0};
    int rc = 0;
    for (const mp_xnode *c = pres ? pres->children : NULL; c && rc == 0; c = c->next)
        if (!(strcmp(c->name, "x") == 0 &&
              (strcmp(c->ns, MUC_NS) == 0 || strcmp(c->ns, MUC_NS_USER) == 0)))
            rc = mp_xnode_serialize(&b, c, NS_CLIENT);
    if (rc == 0 && b.len > max)
        rc = MP_ELIMIT;
    if (rc < 0) {
        mp_buf_free(&b);
        return rc;
    }
    free(o->presence);
    o->presence = b.data; /* NULL when empty */
    o->presence_len = b.len;
    return 0;
}

/* ---- presence building ---- */

typedef struct pres_args {
    int unavailable;
    const char *children; /* show, status, ... as the client sent them */
    size_t children_len;
    const int *codes;      /* to everyone, 0-terminated, may be NULL */
    const int *self_codes; /* to the occupant only (110 is added), may be NULL */
    const char *new_nick;  /* 303 */
    const char *actor, *reason;
    int role_none;       /* role='none' whatever o->role says (leaving) */
    const char *self_id; /* the id of the client's presence, reflected on its own copy */
} pres_args;

/* <presence from='occupant'>children<x xmlns='muc#user'><item .../>codes</x></presence> */
static int
build_presence(mp_buf *b, muc_room *room, const muc_occupant *o, const pres_args *a, int with_jid,
               int self)
{
    b->len = 0;
    int bad = mp_buf_puts(b, "<presence") < 0;
    bad |= put_attr(b, "from", o->occupant_jid) < 0;
    if (self && a->self_id && a->self_id[0])
        bad |= put_attr(b, "id", a->self_id) < 0;
    if (a->unavailable)
        bad |= mp_buf_puts(b, " type='unavailable'") < 0;
    bad |= mp_buf_puts(b, ">") < 0;
    if (a->children_len)
        bad |= mp_buf_append(b, a->children, a->children_len) < 0;
    bad |= mp_buf_puts(b, "<x xmlns='" MUC_NS_USER "'><item") < 0;
    bad |= put_attr(b, "affiliation", affil_name(muc_affil_of(room, o->bare))) < 0;
    bad |= put_attr(b, "role", role_name(a->role_none ? MUC_ROLE_NONE : o->role)) < 0;
    if (with_jid && o->sessions)
        bad |= put_attr(b, "jid", o->sessions->full) < 0;
    if (a->new_nick)
        bad |= put_attr(b, "nick", a->new_nick) < 0;
    if (a->actor || a->reason) {
        bad |= mp_buf_puts(b, ">") < 0;
        if (a->actor) {
            bad |= mp_buf_puts(b, "<actor") < 0;
            bad |= put_attr(b, "nick", a->actor) < 0;
            bad |= mp_buf_puts(b, "/>") < 0;
        }
        if (a->reason) {
            bad |= mp_buf_puts(b, "<reason>") < 0;
            bad |= mp_xml_escape_text(b, a->reason, strlen(a->reason)) < 0;
            bad |= mp_buf_puts(b, "</reason>") < 0;
        }
        bad |= mp_buf_puts(b, "</item>") < 0;
    } else {
        bad |= mp_buf_puts(b, "/>") < 0;
    }
    for (const int *c = a->codes; c && *c; c++)
        bad |= mp_buf_printf(b, "<status code='%d'/>", *c) < 0;
    if (self) {
        for (const int *c = a->self_codes; c && *c; c++)
            bad |= mp_buf_printf(b, "<status code='%d'/>", *c) < 0;
        bad |= mp_buf_puts(b, "<status code='110'/>") < 0;
    }
    bad |= mp_buf_puts(b, "</x></presence>") < 0;
    return bad ? MP_ENOMEM : 0;
}

/* o's presence to every other occupant (with the real JID to those who may see it), then to
 * o's own sessions (only to `only` when not NULL) with 110 and the self codes. */
static void
broadcast_presence(muc_service *svc, muc_room *room, const muc_occupant *o, const pres_args *a,
                   const muc_session *only)
{
    int have_plain = 0, have_jid = 0;
    if (!only) {
        for (muc_occupant *r = room->list; r; r = r->next) {
            if (r == o)
                continue;
            int wj = visible_jid(room, r);
            mp_buf *b = wj ? &svc->out2 : &svc->out;
            int *have = wj ? &have_jid : &have_plain;
            if (!*have) {
                if (build_presence(b, room, o, a, wj, 0) < 0) {
                    mp_warn("room %s: no memory for a presence", room->jid);
                    return;
                }
                *have = 1;
            }
            to_sessions(svc, r, o->occupant_jid, b);
        }
    }
    if (build_presence(&svc->out3, room, o, a, 1, 1) < 0)
        return;
    if (only)
        mp_core_deliver(svc->core, o->occupant_jid, only->full, only->len, svc->out3.data,
                        svc->out3.len, 0);
    else
        to_sessions(svc, o, o->occupant_jid, &svc->out3);
}

/* ---- forgetting empty rooms ---- */

static int
room_disposable(const muc_room *room)
{
    return room->noccupants == 0 && (!room->cfg.persistent || room->locked || room->destroyed);
}

void
muc_rooms_gc(muc_service *svc)
{
    if (!svc->gc_pending)
        return;
    svc->gc_pending = 0;
    mp_htab *t = &svc->rooms;
    for (size_t i = 0; i < t->nbuckets; i++) {
        mp_hnode *n = t->buckets[i];
        while (n) {
            mp_hnode *next = n->next;
            muc_room *r = mp_container_of(n, muc_room, by_jid);
            if (room_disposable(r))
                muc_room_free(svc, r, !r->cfg.persistent || r->destroyed);
            n = next;
        }
    }
}

/* Remove o (its presence already sent) and forget the room when that emptied it. */
static void
occupant_gone(muc_service *svc, muc_room *room, muc_occupant *o, int now)
{
    occupant_unlink(room, o);
    occupant_free(room, o);
    if (room_disposable(room)) {
        if (now)
            muc_room_free(svc, room, !room->cfg.persistent || room->destroyed);
        else
            svc->gc_pending = 1; /* the caller (admin.c) may still hold the room */
    }
}

/* ---- joining (§7.2) ---- */

static void
send_subject(muc_service *svc, muc_room *room, const char *to)
{
    mp_buf *b = &svc->out3;
    const char *from =
        room->cfg.subject_from && room->cfg.subject_from[0] ? room->cfg.subject_from : room->jid;
    const char *subj = room->cfg.subject ? room->cfg.subject : "";
    b->len = 0;
    int bad = mp_buf_puts(b, "<message type='groupchat'") < 0;
    bad |= put_attr(b, "from", from) < 0;
    if (subj[0]) {
        bad |= mp_buf_puts(b, "><subject>") < 0;
        bad |= mp_xml_escape_text(b, subj, strlen(subj)) < 0;
        bad |= mp_buf_puts(b, "</subject></message>") < 0;
    } else {
        bad |= mp_buf_puts(b, "><subject/></message>") < 0;
    }
    if (!bad)
        mp_core_deliver(svc->core, from, to, strlen(to), b->data, b->len, 0);
}

/* Everything a new session of o gets: the others' presence, its own, history, subject. */
static void
welcome(muc_service *svc, muc_room *room, muc_occupant *o, muc_session *s, const int *self_codes,
        const mp_xnode *history, int broadcast, const char *id)
{
    int see = visible_jid(room, o);
    for (muc_occupant *r = room->list; r; r = r->next) {
        if (r == o)
            continue;
        pres_args a = {.children = r->presence, .children_len = r->presence_len};
        if (build_presence(&svc->out, room, r, &a, see, 0) == 0)
            mp_core_deliver(svc->core, r->occupant_jid, s->full, s->len, svc->out.data,
                            svc->out.len, 0);
    }
    pres_args me = {.children = o->presence,
                    .children_len = o->presence_len,
                    .self_codes = self_codes,
                    .self_id = id};
    broadcast_presence(svc, room, o, &me, broadcast ? NULL : s);
    muc_history_send(svc, room, history, s->full);
    send_subject(svc, room, s->full);
}

static int
join(muc_service *svc, mp_stanza *st, muc_room *room, const mp_xnode *pres)
{
    const mp_config *cfg = mp_core_config(svc->core);
    const char *nick = st->to_resource;
    const char *from = st->from;
    size_t blen = bare_len(from);
    char *bare = mp_arena_strndup(st->arena, from, blen);
    if (!bare)
        return mp_stanza_error(st, "wait", "internal-server-error", NULL);
    const mp_xnode *x = pres ? mp_xnode_child(pres, MUC_NS, "x") : NULL;
    int created = 0;

    if (!nick[0] || strlen(nick) > (size_t)cfg->muc_max_nick_len)
        return mp_stanza_error(st, "modify", "jid-malformed", NULL);
    if (!room) {
        if (!mp_acl_allows(svc->core, MP_ACL_CREATE_ROOMS, from))
            return mp_stanza_error(st, "cancel", "not-allowed", NULL);
        if (cfg->muc_max_rooms > 0 && svc->rooms.count >= (size_t)cfg->muc_max_rooms)
            return mp_stanza_error(st, "wait", "resource-constraint", NULL);
        room = muc_room_new(svc, st->to_node, st->to_domain);
        if (!room || muc_affil_set(room, bare, MUC_OWNER, NULL) < 0) {
            if (room)
                muc_room_free(svc, room, 0);
            return mp_stanza_error(st, "wait", "internal-server-error", NULL);
        }
        /* §10.1.1: locked until the owner configures it; a groupchat 1.0 client (no <x/>)
         * cannot, so it gets an instant room */
        room->locked = x != NULL;
        created = 1;
        mp_info("room %s created by %s", room->jid, bare);
    }
    int affil = muc_affil_of(room, bare);
    muc_occupant *o = muc_occupant_by_nick(room, nick);
    int same = o && strcmp(o->bare, bare) == 0;

    if (room->locked && affil != MUC_OWNER)
        return mp_stanza_error(st, "cancel", "item-not-found", NULL);
    if (room->destroyed)
        return mp_stanza_error(st, "cancel", "gone", NULL);
    if (affil == MUC_OUTCAST)
        return mp_stanza_error(st, "auth", "forbidden", NULL);
    if ((o && !same) || nick_reserved_by_other(room, nick, bare, blen))
        return mp_stanza_error(st, "cancel", "conflict", NULL);
    if (room->cfg.members_only && affil < MUC_MEMBER)
        return mp_stanza_error(st, "auth", "registration-required", NULL);
    if (room->cfg.password_protected && affil != MUC_OWNER) {
        const mp_xnode *pw = x ? mp_xnode_child(x, MUC_NS, "password") : NULL;
        if (!pw || !room->cfg.password || strcmp(pw->text, room->cfg.password) != 0)
            return mp_stanza_error(st, "auth", "not-authorized", NULL);
    }
    int max = cfg->muc_max_occupants;
    if (room->cfg.max_users > 0 && room->cfg.max_users < max)
        max = room->cfg.max_users;
    if (!same && room->noccupants >= max && affil < MUC_ADMIN)
        return mp_stanza_error(st, "wait", "service-unavailable", NULL);

    int fresh = !o;
    if (fresh) {
        o = occupant_alloc(room, nick, bare, blen);
        if (!o ||
            mp_htab_insert(&room->occupants, &o->by_nick, mp_hash_str(nick, strlen(nick))) < 0) {
            if (o)
                occupant_free(room, o);
            if (created)
                muc_room_free(svc, room, 0);
            return mp_stanza_error(st, "wait", "internal-server-error", NULL);
        }
        /* join order: appended at the end */
        muc_occupant **p = &room->list;
        while (*p)
            p = &(*p)->next;
        *p = o;
        room->noccupants++;
        o->role = muc_role_for(room, affil);
    }
    muc_session *s = session_add(room, o, from);
    int kept = s ? keep_presence(svc, o, pres) : MP_ENOMEM;
    if (kept < 0) {
        if (s)
            session_remove(room, o, s);
        if (fresh)
            occupant_gone(svc, room, o, 1);
        if (kept == MP_ELIMIT)
            return mp_stanza_error(st, "modify", "not-acceptable", "Presence too large");
        return mp_stanza_error(st, "wait", "internal-server-error", NULL);
    }
    int codes[MAX_CODES], n = 0;
    if (room->cfg.whois == MUC_WHOIS_ANYONE)
        codes[n++] = 100;
    if (room->cfg.logging)
        codes[n++] = 170;
    if (created)
        codes[n++] = 201;
    /* the nick as sent is not the prepared one (Resourceprep maps and normalizes): the
     * client must learn the nick it really has */
    const char *to_attr = mp_xnode_attr(pres, "to");
    const char *sent = to_attr ? strchr(to_attr, '/') : NULL;
    if (sent && strcmp(sent + 1, nick) != 0)
        codes[n++] = 210;
    codes[n] = 0;
    welcome(svc, room, o, s, codes, x ? mp_xnode_child(x, MUC_NS, "history") : NULL, fresh, st->id);
    return 0;
}

/* ---- presence to room@service/nick ---- */

static void
leave(muc_service *svc, muc_room *room, muc_session *s, const mp_xnode *pres, const char *id)
{
    muc_occupant *o = s->occ;
    mp_buf status = {0};
    for (const mp_xnode *c = pres ? pres->children : NULL; c; c = c->next)
        if (is_el(c, NS_CLIENT, "status"))
            mp_xnode_serialize(&status, c, NS_CLIENT);
    pres_args a = {.unavailable = 1,
                   .children = status.data,
                   .children_len = status.len,
                   .role_none = 1,
                   .self_id = id};
    if (o->sessions->next) {
        /* another session keeps the nick: only this one learns it left */
        broadcast_presence(svc, room, o, &a, s);
        session_remove(room, o, s);
    } else {
        broadcast_presence(svc, room, o, &a, NULL);
        occupant_gone(svc, room, o, 1);
    }
    mp_buf_free(&status);
}

/* §7.6: unavailable with 303 from the old nick, then available from the new one. */
static int
change_nick(muc_service *svc, mp_stanza *st, muc_room *room, muc_occupant *o, const mp_xnode *pres)
{
    const mp_config *cfg = mp_core_config(svc->core);
    const char *nick = st->to_resource;
    if (strlen(nick) > (size_t)cfg->muc_max_nick_len)
        return mp_stanza_error(st, "modify", "jid-malformed", NULL);
    if (muc_occupant_by_nick(room, nick) ||
        nick_reserved_by_other(room, nick, o->bare, strlen(o->bare)))
        return mp_stanza_error(st, "cancel", "conflict", NULL);
    muc_occupant *n = occupant_alloc(room, nick, o->bare, strlen(o->bare));
    if (!n || mp_htab_insert(&room->occupants, &n->by_nick, mp_hash_str(nick, strlen(nick))) < 0) {
        if (n)
            occupant_free(room, n);
        return mp_stanza_error(st, "wait", "internal-server-error", NULL);
    }
    pres_args gone = {.unavailable = 1, .codes = (const int[]){303, 0}, .new_nick = nick};
    broadcast_presence(svc, room, o, &gone, NULL);
    /* n takes o's place in the join order, its sessions and its role */
    mp_htab_remove(&room->occupants, &o->by_nick);
    for (muc_occupant **p = &room->list; *p; p = &(*p)->next)
        if (*p == o) {
            *p = n;
            break;
        }
    n->next = o->next;
    n->role = o->role;
    n->sessions = o->sessions;
    for (muc_session *s = n->sessions; s; s = s->next)
        s->occ = n;
    n->presence = o->presence;
    n->presence_len = o->presence_len;
    o->sessions = NULL;
    o->presence = NULL;
    occupant_free(room, o);
    keep_presence(svc, n, pres); /* too large: the presence kept so far stays */
    pres_args back = {.children = n->presence, .children_len = n->presence_len, .self_id = st->id};
    broadcast_presence(svc, room, n, &back, NULL);
    return 0;
}

int
muc_room_presence(muc_service *svc, mp_stanza *st)
{
    char jid[3 * 1024 + 3];
    int jl = snprintf(jid, sizeof jid, "%s@%s", st->to_node, st->to_domain);
    if (jl < 0 || (size_t)jl >= sizeof jid)
        return 0;
    muc_room *room = muc_room_find(svc, jid, (size_t)jl);
    muc_session *s = room ? session_by_real(room, st->from) : NULL;
    const char *type = st->type;

    if (strcmp(type, "unavailable") == 0 || strcmp(type, "error") == 0) {
        /* a session that ended, or a client whose presence bounced: gone either way */
        if (s)
            leave(svc, room, s, strcmp(type, "error") == 0 ? NULL : mp_stanza_tree(st), st->id);
        return 0;
    }
    if (type[0] && strcmp(type, "available") != 0)
        return 0; /* subscriptions and probes mean nothing to a room */
    mp_xnode *pres = mp_stanza_tree(st);
    if (!pres)
        return mp_stanza_error(st, "modify", "bad-request", NULL);
    if (!s)
        return join(svc, st, room, pres);
    muc_occupant *o = s->occ;
    if (!st->to_resource[0])
        return mp_stanza_error(st, "modify", "jid-malformed", NULL);
    if (strcmp(o->nick, st->to_resource) != 0)
        return change_nick(svc, st, room, o, pres);
    /* §7.7: a new show or status goes to everyone */
    int kept = keep_presence(svc, o, pres);
    if (kept == MP_ELIMIT)
        return mp_stanza_error(st, "modify", "not-acceptable", "Presence too large");
    if (kept < 0)
        return mp_stanza_error(st, "wait", "internal-server-error", NULL);
    const mp_xnode *x = mp_xnode_child(pres, MUC_NS, "x");
    if (x) {
        /* §7.2.2: a join from a session already in the room (a client that lost track, a
         * phone back from sleep) gets the whole join again: clients wait for the subject. */
        int codes[MAX_CODES], n = 0;
        if (room->cfg.whois == MUC_WHOIS_ANYONE)
            codes[n++] = 100;
        if (room->cfg.logging)
            codes[n++] = 170;
        codes[n] = 0;
        welcome(svc, room, o, s, codes, mp_xnode_child(x, MUC_NS, "history"), 1, st->id);
        return 0;
    }
    pres_args a = {.children = o->presence, .children_len = o->presence_len, .self_id = st->id};
    broadcast_presence(svc, room, o, &a, NULL);
    return 0;
}

/* ---- messages ---- */

/* The element's attributes without 'to', with 'from' = from (in the arena). */
static int
readdress(mp_arena *arena, mp_xnode *el, const char *from)
{
    mp_xattr *v = mp_arena_alloc(arena, ((size_t)el->nattrs + 1) * sizeof *v);
    if (!v)
        return MP_ENOMEM;
    int n = 0;
    for (int i = 0; i < el->nattrs; i++)
        if (strcmp(el->attrs[i].name, "to") != 0 && strcmp(el->attrs[i].name, "from") != 0)
            v[n++] = el->attrs[i];
    v[n].name = "from";
    v[n++].value = from;
    el->attrs = v;
    el->nattrs = n;
    return 0;
}

/* 16 URL-safe base64 characters from 96 random bits, like the archive's ids. */
static void
random_id(char out[MP_ARCHIVE_ID_SIZE])
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    unsigned char r[12];
    mp_random_bytes(r, sizeof r);
    for (int i = 0; i < 4; i++) {
        unsigned v = (unsigned)r[3 * i] << 16 | (unsigned)r[3 * i + 1] << 8 | r[3 * i + 2];
        for (int k = 0; k < 4; k++)
            out[4 * i + k] = b64[(v >> (18 - 6 * k)) & 63];
    }
    out[MP_ARCHIVE_ID_LEN] = '\0';
}

static void
fan_out(muc_service *svc, muc_room *room, const char *from, const char *bytes, size_t len)
{
    for (muc_occupant *r = room->list; r; r = r->next)
        for (const muc_session *s = r->sessions; s; s = s->next)
            mp_core_deliver(svc->core, from, s->full, s->len, bytes, len, 0);
}

static void
offline_members(muc_service *svc, muc_room *room, const char *bytes, size_t len)
{
    const mp_htab *t = &room->affiliations;
    for (size_t i = 0; i < t->nbuckets; i++)
        for (mp_hnode *n = t->buckets[i]; n; n = n->next) {
            const muc_affiliation *a = mp_container_of(n, muc_affiliation, by_jid);
            /* an occupant's sessions are available resources: none online means none here */
            if (a->affil >= MUC_MEMBER && mp_core_resources(svc->core, a->jid, NULL, NULL) == 0)
                mp_core_offline_notify(svc->core, a->jid, room->jid, bytes, len, MP_OFFLINE_ROOM);
        }
}

static int
subject_change(muc_service *svc, mp_stanza *st, muc_room *room, muc_occupant *o, mp_xnode *msg,
               const mp_xnode *subject)
{
    if (!(o->role == MUC_MODERATOR || (room->cfg.change_subject && o->role >= MUC_PARTICIPANT)))
        return mp_stanza_error(st, "auth", "forbidden", NULL);
    /* kept, stored and sent to every newcomer: bounded like the room's other texts */
    if (subject->text_len > (size_t)mp_core_config(svc->core)->muc_max_text_len)
        return mp_stanza_error(st, "modify", "not-acceptable", "Subject too long");
    char *text = strndup(subject->text, subject->text_len);
    char *by = strdup(o->occupant_jid);
    if (!text || !by || readdress(st->arena, msg, o->occupant_jid) < 0) {
        free(text);
        free(by);
        return mp_stanza_error(st, "wait", "internal-server-error", NULL);
    }
    free(room->cfg.subject);
    free(room->cfg.subject_from);
    room->cfg.subject = text;
    room->cfg.subject_from = by;
    if (room->cfg.persistent)
        muc_store_save(svc, room);
    mp_buf *b = &svc->out;
    b->len = 0;
    if (mp_xnode_serialize(b, msg, NS_CLIENT) == 0)
        fan_out(svc, room, o->occupant_jid, b->data, b->len);
    return 0;
}

static int
groupchat(muc_service *svc, mp_stanza *st, muc_room *room)
{
    muc_occupant *o = muc_occupant_by_real(room, st->from);
    if (!o)
        return mp_stanza_error(st, "modify", "not-acceptable", NULL); /* §7.4 */
    mp_xnode *msg = mp_stanza_tree(st);
    if (!msg)
        return mp_stanza_error(st, "modify", "bad-request", NULL);
    const mp_xnode *subject = mp_xnode_child(msg, NS_CLIENT, "subject");
    const mp_xnode *body = mp_xnode_child(msg, NS_CLIENT, "body");
    if (subject && !body) /* §8.1: a subject without a body changes it */
        return subject_change(svc, st, room, o, msg, subject);
    if (o->role < MUC_PARTICIPANT)
        return mp_stanza_error(st, "auth", "forbidden", NULL); /* visitors have no voice */

    mp_archive_msg am;
    mp_archive_inspect(msg, room->jid, NULL, 1, &am); /* ids only the room may give */
    if (readdress(st->arena, msg, o->occupant_jid) < 0)
        return mp_stanza_error(st, "wait", "internal-server-error", NULL);
    mp_buf *b = &svc->out;
    b->len = 0;
    if (mp_xnode_serialize(b, msg, NS_CLIENT) < 0)
        return mp_stanza_error(st, "wait", "internal-server-error", NULL);
    if (!am.keep) {
        /* chat states and the like: passed on, not kept */
        fan_out(svc, room, o->occupant_jid, b->data, b->len);
        return 0;
    }
    int64_t now = muc_now_us();
    char id[MP_ARCHIVE_ID_SIZE] = "";
    if (room->cfg.logging) {
        mp_archive_item it = {.with_jid = room->jid,
                              .with_resource = o->nick,
                              .direction = MP_ARCHIVE_IN,
                              .stamp = now,
                              .origin_id = am.origin_id,
                              .body = am.body,
                              .stanza = b->data,
                              .len = b->len};
        const mp_config *cfg = mp_core_config(svc->core);
        if (mp_core_archive_append(svc->core, room->domain, room->node, &it, cfg->mam_max_messages,
                                   id, sizeof id) < 0)
            id[0] = '\0';
    }
    if (!id[0])
        random_id(id);
    mp_buf *out = &svc->out2;
    out->len = 0;
    if (mp_archive_add_stanza_id(out, b->data, b->len, room->jid, id) < 0)
        return mp_stanza_error(st, "wait", "internal-server-error", NULL);
    fan_out(svc, room, o->occupant_jid, out->data, out->len);
    if (body)
        muc_history_add(room, out->data, out->len, now);
    if (room->cfg.members_only && body)
        offline_members(svc, room, out->data, out->len);
    return 0;
}

/* muc#roomconfig_allowpm names the lowest role that may send private messages; moderators
 * always may (they can see who talks to whom anyway). */
static int
pm_allowed(int allow_pm, int role)
{
    switch (allow_pm) {
    case MUC_PM_ANYONE:
        return 1;
    case MUC_PM_PARTICIPANTS:
        return role >= MUC_PARTICIPANT;
    default:
        return role == MUC_MODERATOR;
    }
}

/* §7.5: to room/nick, from the sender's occupant JID, with <x xmlns='muc#user'/>. */
static int
private_message(muc_service *svc, mp_stanza *st, muc_room *room)
{
    if (strcmp(st->type, "error") == 0)
        return 0;
    muc_occupant *o = muc_occupant_by_real(room, st->from);
    if (!o)
        return mp_stanza_error(st, "modify", "not-acceptable", NULL);
    if (strcmp(st->type, "groupchat") == 0)
        return mp_stanza_error(st, "modify", "bad-request", NULL);
    muc_occupant *to = muc_occupant_by_nick(room, st->to_resource);
    if (!to)
        return mp_stanza_error(st, "cancel", "item-not-found", NULL);
    if (!pm_allowed(room->cfg.allow_pm, o->role))
        return mp_stanza_error(st, "cancel", "not-allowed", NULL);
    mp_xnode *msg = mp_stanza_tree(st);
    if (!msg || readdress(st->arena, msg, o->occupant_jid) < 0)
        return mp_stanza_error(st, "wait", "internal-server-error", NULL);
    if (!mp_xnode_child(msg, MUC_NS_USER, "x")) {
        mp_xnode *x = mp_xnode_new(st->arena, MUC_NS_USER, "x");
        if (!x)
            return mp_stanza_error(st, "wait", "internal-server-error", NULL);
        mp_xnode_append(msg, x);
    }
    mp_buf *b = &svc->out;
    b->len = 0;
    if (mp_xnode_serialize(b, msg, NS_CLIENT) < 0)
        return mp_stanza_error(st, "wait", "internal-server-error", NULL);
    to_sessions(svc, to, o->occupant_jid, b);
    return 0;
}

/* A muc#request form (voice request, §8.6) among the children, or NULL. */
static const mp_xnode *
request_form(const mp_xnode *msg)
{
    for (const mp_xnode *c = msg->children; c; c = c->next) {
        if (!is_el(c, NS_DATA, "x"))
            continue;
        for (const mp_xnode *f = c->children; f; f = f->next) {
            const char *var = mp_xnode_attr(f, "var");
            const mp_xnode *v = mp_xnode_child(f, NS_DATA, "value");
            if (var && strcmp(var, "FORM_TYPE") == 0 && v && strcmp(v->text, MUC_NS_REQUEST) == 0)
                return c;
        }
    }
    return NULL;
}

int
muc_room_message(muc_service *svc, mp_stanza *st)
{
    char jid[3 * 1024 + 3];
    int jl = snprintf(jid, sizeof jid, "%s@%s", st->to_node, st->to_domain);
    muc_room *room = jl > 0 && (size_t)jl < sizeof jid ? muc_room_find(svc, jid, (size_t)jl) : NULL;
    if (!room || room->destroyed) {
        if (strcmp(st->type, "error") != 0)
            mp_stanza_error(st, "cancel", "item-not-found", NULL);
        return 0;
    }
    if (st->to_resource[0])
        return private_message(svc, st, room);
    if (strcmp(st->type, "groupchat") == 0)
        return groupchat(svc, st, room);
    if (strcmp(st->type, "error") == 0)
        return 0;
    mp_xnode *msg = mp_stanza_tree(st);
    if (!msg)
        return mp_stanza_error(st, "modify", "bad-request", NULL);
    const mp_xnode *x = mp_xnode_child(msg, MUC_NS_USER, "x");
    if (x &&
        (mp_xnode_child(x, MUC_NS_USER, "invite") || mp_xnode_child(x, MUC_NS_USER, "decline")))
        return muc_invite_message(svc, room, st, x);
    const mp_xnode *form = request_form(msg);
    if (form)
        return muc_voice_request(svc, room, st, form);
    return mp_stanza_error(st, "modify", "bad-request", NULL);
}

/* ---- IQs to occupants (§6.5, §7.2: vCards, versions, pings of other occupants) ---- */

typedef struct iq_fwd {
    muc_service *svc;
    char *requester; /* real full JID */
    char *id;
    char *from; /* the target's occupant JID: the answer comes from it */
} iq_fwd;

static void
fwd_free(iq_fwd *f)
{
    free(f->requester);
    free(f->id);
    free(f->from);
    free(f);
}

static void
on_answer(struct mp_core *core, const mp_xnode *answer, void *ud)
{
    iq_fwd *f = ud;
    mp_buf b = {0};
    const char *type = answer ? mp_xnode_attr(answer, "type") : NULL;
    int ok = type && strcmp(type, "result") == 0;
    int bad = mp_buf_printf(&b, "<iq type='%s'", ok ? "result" : "error") < 0;
    bad |= put_attr(&b, "id", f->id) < 0;
    bad |= put_attr(&b, "from", f->from) < 0;
    bad |= mp_buf_puts(&b, ">") < 0;
    if (answer) {
        for (const mp_xnode *c = answer->children; c; c = c->next)
            bad |= mp_xnode_serialize(&b, c, NS_CLIENT) < 0;
    } else {
        bad |= mp_buf_puts(&b, "<error type='wait'><remote-server-timeout "
                               "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>") < 0;
    }
    bad |= mp_buf_puts(&b, "</iq>") < 0;
    if (!bad)
        mp_core_deliver(core, f->from, f->requester, strlen(f->requester), b.data, b.len,
                        MP_DELIVER_NO_OFFLINE);
    mp_buf_free(&b);
    fwd_free(f);
}

/* Forward an IQ to the occupant of to_nick. el is the whole <iq/>. */
static int
forward(muc_service *svc, muc_room *room, const char *from, const char *nick, const char *type,
        const char *id, const mp_xnode *el, int *cond)
{
    muc_occupant *me = muc_occupant_by_real(room, from);
    muc_occupant *to = muc_occupant_by_nick(room, nick);
    if (!me) {
        /* only occupants talk to occupants: not-acceptable, but §6.6 names bad-request for a
         * stranger's disco query */
        const mp_xnode *q = el->children;
        *cond = q && q->ns && strncmp(q->ns, "http://jabber.org/protocol/disco#", 33) == 0 ? 3 : 0;
        return MP_EAUTH;
    }
    if (!to || !to->sessions) {
        *cond = 1;
        return MP_ENOTFOUND;
    }
    mp_buf payload = {0};
    int rc = 0;
    for (const mp_xnode *c = el->children; c && rc == 0; c = c->next)
        rc = mp_xnode_serialize(&payload, c, NS_CLIENT);
    if (rc == 0 && payload.len == 0)
        rc = MP_EINVAL;
    iq_fwd *f = rc == 0 ? calloc(1, sizeof *f) : NULL;
    if (f) {
        f->svc = svc;
        f->requester = strdup(from);
        f->id = strdup(id);
        f->from = strdup(to->occupant_jid);
        if (!f->requester || !f->id || !f->from) {
            fwd_free(f);
            f = NULL;
        }
    }
    if (f) {
        /* the answer comes back to me->occupant_jid, where the core matches its id */
        rc = mp_core_send_iq(svc->core, me->occupant_jid, to->sessions->full, type, payload.data,
                             payload.len, 0, on_answer, f);
        if (rc < 0)
            fwd_free(f);
    } else if (rc == 0) {
        rc = MP_ENOMEM;
    }
    mp_buf_free(&payload);
    *cond = 2;
    return rc;
}

static const char *const fwd_errors[][2] = {{"modify", "not-acceptable"},
                                            {"cancel", "item-not-found"},
                                            {"wait", "internal-server-error"},
                                            {"modify", "bad-request"}};

int
muc_room_iq_to_occupant(muc_service *svc, mp_stanza *st)
{
    char jid[3 * 1024 + 3];
    int jl = snprintf(jid, sizeof jid, "%s@%s", st->to_node, st->to_domain);
    muc_room *room = jl > 0 && (size_t)jl < sizeof jid ? muc_room_find(svc, jid, (size_t)jl) : NULL;
    if (!room)
        return mp_stanza_error(st, "cancel", "item-not-found", NULL);
    mp_xnode *el = mp_stanza_tree(st);
    if (!el)
        return mp_stanza_error(st, "modify", "bad-request", NULL);
    int cond = 2;
    int rc = forward(svc, room, st->from, st->to_resource, st->type, st->id, el, &cond);
    if (rc < 0)
        return mp_stanza_error(st, fwd_errors[cond][0], fwd_errors[cond][1], NULL);
    return 0;
}

int
muc_room_iq_forward(muc_service *svc, mp_iq *iq)
{
    const char *slash = strchr(iq->to, '/');
    muc_room *room = slash ? muc_room_find(svc, iq->to, (size_t)(slash - iq->to)) : NULL;
    if (!room)
        return mp_iq_error(iq, "cancel", "item-not-found");
    int cond = 2;
    int rc = forward(svc, room, iq->from, slash + 1, iq->type == MP_IQ_SET ? "set" : "get", iq->id,
                     iq->stanza, &cond);
    if (rc < 0)
        return mp_iq_error(iq, fwd_errors[cond][0], fwd_errors[cond][1]);
    return 0;
}

/* ---- changes made by admins and owners ---- */

void
muc_occupant_changed(muc_service *svc, muc_room *room, muc_occupant *o, const int *codes,
                     const char *actor_nick, const char *reason)
{
    if (o->role == MUC_ROLE_NONE) {
        pres_args a = {.unavailable = 1,
                       .codes = codes,
                       .actor = actor_nick,
                       .reason = reason,
                       .role_none = 1};
        broadcast_presence(svc, room, o, &a, NULL);
        occupant_gone(svc, room, o, 0);
        return;
    }
    pres_args a = {.children = o->presence,
                   .children_len = o->presence_len,
                   .codes = codes,
                   .actor = actor_nick,
                   .reason = reason};
    broadcast_presence(svc, room, o, &a, NULL);
}

void
muc_room_status_message(muc_service *svc, muc_room *room, const int *codes)
{
    mp_buf *b = &svc->out;
    b->len = 0;
    int bad = mp_buf_puts(b, "<message type='groupchat'") < 0;
    bad |= put_attr(b, "from", room->jid) < 0;
    bad |= mp_buf_puts(b, "><x xmlns='" MUC_NS_USER "'>") < 0;
    for (const int *c = codes; c && *c; c++)
        bad |= mp_buf_printf(b, "<status code='%d'/>", *c) < 0;
    bad |= mp_buf_puts(b, "</x></message>") < 0;
    if (!bad)
        fan_out(svc, room, room->jid, b->data, b->len);
}

void
muc_room_evict_all(muc_service *svc, muc_room *room, const char *alt_jid, const char *reason,
                   const char *password)
{
    while (room->list) {
        muc_occupant *o = room->list;
        mp_buf *b = &svc->out;
        b->len = 0;
        int bad = mp_buf_puts(b, "<presence type='unavailable'") < 0;
        bad |= put_attr(b, "from", o->occupant_jid) < 0;
        bad |= mp_buf_puts(b, "><x xmlns='" MUC_NS_USER "'><item affiliation='none' "
                              "role='none'/><destroy") < 0;
        if (alt_jid && alt_jid[0])
            bad |= put_attr(b, "jid", alt_jid) < 0;
        bad |= mp_buf_puts(b, ">") < 0;
        if (reason && reason[0]) {
            bad |= mp_buf_puts(b, "<reason>") < 0;
            bad |= mp_xml_escape_text(b, reason, strlen(reason)) < 0;
            bad |= mp_buf_puts(b, "</reason>") < 0;
        }
        if (password && password[0]) {
            bad |= mp_buf_puts(b, "<password>") < 0;
            bad |= mp_xml_escape_text(b, password, strlen(password)) < 0;
            bad |= mp_buf_puts(b, "</password>") < 0;
        }
        bad |= mp_buf_puts(b, "</destroy></x></presence>") < 0;
        if (!bad)
            to_sessions(svc, o, o->occupant_jid, b);
        occupant_unlink(room, o);
        occupant_free(room, o);
    }
}
