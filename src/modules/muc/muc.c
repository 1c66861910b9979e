/* Multi-user chat (XEP-0045): the module, the component at "<muc.label>.<host>", the room
 * registry and the IQs a room or the service answers itself (disco, self-ping, the room's
 * vCard). Occupants and messages are room.c's; configuration, admin lists, persistence,
 * invitations and archives queries are the other files of this folder (muc_int.h). */
#include "modules/muc/muc_int.h"
#include "router/archive.h"
#include "router/core.h"
#include "storage/store.h"
#include "base/config.h"
#include "base/err.h"
#include "base/log.h"
#include "xmpp/avatar.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NS_DISCO_INFO "http://jabber.org/protocol/disco#info"
#define NS_DISCO_ITEMS "http://jabber.org/protocol/disco#items"
#define NS_PING "urn:xmpp:ping"
#define NS_VCARD "vcard-temp"
#define KIND_VCARD "muc-vcard"
#define KIND_ACCOUNT_VCARD "vcard" /* the vcard module's */
#define VCARD_MAX (256 * 1024) /* a room's vCard, photo included */

/* The module's state: one service per process (modules are loaded once per core). */
static muc_service *the_svc;

/* ---- registry ---- */

muc_room *
muc_room_find(muc_service *svc, const char *jid, size_t len)
{
    uint64_t h = mp_hash_str(jid, len);
    for (mp_hnode *n = mp_htab_find(&svc->rooms, h); n; n = mp_htab_next_same(n->next, h)) {
        muc_room *r = mp_container_of(n, muc_room, by_jid);
        if (r->jid_len == len && memcmp(r->jid, jid, len) == 0)
            return r;
    }
    return NULL;
}

void
muc_config_defaults(const muc_service *svc, muc_config *c)
{
    const mp_config *cfg = mp_core_config(svc->core);
    memset(c, 0, sizeof *c);
    c->public_room = 1;
    c->allow_pm = 1;
    c->members_by_default = 1;
    c->whois = MUC_WHOIS_MODERATORS;
    c->logging = cfg->muc_default_logging; /* what mobile members catch up from */
    c->history_length = cfg->muc_default_history < cfg->muc_max_history ? cfg->muc_default_history
                                                                        : cfg->muc_max_history;
}

void
muc_config_free(muc_config *c)
{
    free(c->name);
    free(c->description);
    free(c->password);
    free(c->subject);
    free(c->subject_from);
    free(c->avatar_hash);
    c->name = c->description = c->password = c->subject = c->subject_from = c->avatar_hash = NULL;
}

/* The strings of a fresh configuration: "" everywhere. 0 or MP_ENOMEM. */
static int
config_strings(muc_config *c)
{
    char **v[] = {&c->name,    &c->description,  &c->password,
                  &c->subject, &c->subject_from, &c->avatar_hash};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        if (!*v[i] && !(*v[i] = strdup("")))
            return MP_ENOMEM;
    return 0;
}

muc_room *
muc_room_new(muc_service *svc, const char *node, const char *domain)
{
    muc_room *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    size_t nl = strlen(node), dl = strlen(domain);
    r->svc = svc;
    r->jid = malloc(nl + 1 + dl + 1);
    if (!r->jid)
        goto fail;
    memcpy(r->jid, node, nl);
    r->jid[nl] = '@';
    memcpy(r->jid + nl + 1, domain, dl + 1);
    r->jid_len = nl + 1 + dl;
    r->node = strndup(node, nl);
    r->domain = strdup(domain);
    if (!r->node || !r->domain)
        goto fail;
    muc_config_defaults(svc, &r->cfg);
    if (config_strings(&r->cfg) < 0)
        goto fail;
    r->created = (int64_t)time(NULL);
    if (mp_htab_insert(&svc->rooms, &r->by_jid, mp_hash_str(r->jid, r->jid_len)) < 0)
        goto fail;
    return r;
fail:
    muc_config_free(&r->cfg);
    free(r->node);
    free(r->domain);
    free(r->jid);
    free(r);
    return NULL;
}

static void
free_occupants(muc_room *room)
{
    muc_occupant *o = room->list;
    while (o) {
        muc_occupant *next = o->next;
        muc_session *s = o->sessions;
        while (s) {
            muc_session *sn = s->next;
            free(s);
            s = sn;
        }
        free(o->presence);
        free(o->bare);
        free(o->occupant_jid);
        free(o);
        o = next;
    }
    room->list = NULL;
    room->noccupants = 0;
    mp_htab_free(&room->occupants);
    mp_htab_free(&room->sessions);
    memset(&room->occupants, 0, sizeof room->occupants);
    memset(&room->sessions, 0, sizeof room->sessions);
}

static void
free_affiliations(muc_room *room)
{
    mp_htab *t = &room->affiliations;
    for (size_t i = 0; i < t->nbuckets; i++) {
        mp_hnode *n = t->buckets[i];
        while (n) {
            mp_hnode *next = n->next;
            muc_affiliation *a = mp_container_of(n, muc_affiliation, by_jid);
            free(a->reason);
            free(a->nick);
            free(a);
            n = next;
        }
    }
    mp_htab_free(t);
    memset(t, 0, sizeof *t);
}

/* Without the storage calls: also used at unload, when the store may be closing. */
static void
room_release(muc_service *svc, muc_room *room)
{
    mp_htab_remove(&svc->rooms, &room->by_jid);
    free_occupants(room);
    free_affiliations(room);
    muc_history_free(room);
    muc_config_free(&room->cfg);
    free(room->jid);
    free(room->node);
    free(room->domain);
    free(room);
}

void
muc_room_free(muc_service *svc, muc_room *room, int delete_stored)
{
    if (delete_stored) {
        mp_store *st = mp_core_store(svc->core);
        muc_store_delete(svc, room);
        /* The archive and the vCard go with the room: a new room of the same name must not
         * show what the old one said. */
        if (st->ops->archive_delete_owner(st, room->domain, room->node) < 0)
            mp_warn("room %s: archive not deleted", room->jid);
        st->ops->blob_put(st, room->domain, room->node, KIND_VCARD, "", "", 0);
    }
    room_release(svc, room);
}

/* ---- helpers for the IQ handlers ---- */

/* Split iq->to ("room@service[/nick]") into the room's bare JID (into the arena) and whether
 * a nick follows. NULL when the IQ is for the service itself. */
static const char *
iq_room_jid(mp_iq *iq, const char **nick)
{
    muc_rooms_gc(the_svc); /* every handler starts here: no room of a former stanza is held */
    const char *to = iq->to, *slash = strchr(to, '/');
    size_t bare = slash ? (size_t)(slash - to) : strlen(to);
    *nick = slash ? slash + 1 : NULL;
    if (!memchr(to, '@', bare))
        return NULL;
    return mp_arena_strndup(iq->arena, to, bare);
}

static muc_room *
iq_room(mp_iq *iq, const char **nick)
{
    const char *jid = iq_room_jid(iq, nick);
    return jid ? muc_room_find(the_svc, jid, strlen(jid)) : NULL;
}

static int
add_feature(mp_arena *a, mp_xnode *q, const char *var)
{
    mp_xnode *f = mp_xnode_new(a, NS_DISCO_INFO, "feature");
    if (!f || mp_xnode_set_attr(a, f, "var", var) < 0)
        return MP_ENOMEM;
    mp_xnode_append(q, f);
    return 0;
}

/* The bare JID of a full one, in the arena. */
static const char *
bare_of(mp_arena *a, const char *full)
{
    const char *slash = strchr(full, '/');
    return mp_arena_strndup(a, full, slash ? (size_t)(slash - full) : strlen(full));
}

/* A locked room (§10.1.1) does not exist for anyone but its owners. */
static int
room_visible(mp_iq *iq, muc_room *room)
{
    if (!room->locked)
        return 1;
    const char *bare = bare_of(iq->arena, iq->from);
    return bare && muc_affil_of(room, bare) == MUC_OWNER;
}

/* ---- disco (§6) ---- */

static int
disco_info(mp_iq *iq, void *ud)
{
    const char *nick;
    const char *jid = iq_room_jid(iq, &nick);
    if (jid && nick)
        return muc_room_iq_forward(the_svc, iq);
    if (mp_xnode_attr(iq->payload, "node"))
        return mp_iq_error(iq, "cancel", "item-not-found");
    if (jid) {
        muc_room *room = muc_room_find(the_svc, jid, strlen(jid));
        if (!room || !room_visible(iq, room))
            return mp_iq_error(iq, "cancel", "item-not-found");
        mp_xnode *q = muc_room_disco_info(the_svc, room, iq->arena);
        return q ? mp_iq_result(iq, q) : mp_iq_error(iq, "wait", "internal-server-error");
    }
    mp_xnode *q = mp_xnode_new(iq->arena, NS_DISCO_INFO, "query");
    mp_xnode *id = mp_xnode_new(iq->arena, NS_DISCO_INFO, "identity");
    if (!q || !id || mp_xnode_set_attr(iq->arena, id, "category", "conference") < 0 ||
        mp_xnode_set_attr(iq->arena, id, "type", "text") < 0 ||
        mp_xnode_set_attr(iq->arena, id, "name", "Chatrooms") < 0)
        return mp_iq_error(iq, "wait", "internal-server-error");
    mp_xnode_append(q, id);
    static const char *const features[] = {NS_DISCO_INFO, NS_DISCO_ITEMS, MUC_NS, NS_PING,
                                           MUC_NS_CONFERENCE};
    for (size_t i = 0; i < sizeof features / sizeof features[0]; i++)
        if (add_feature(iq->arena, q, features[i]) < 0)
            return mp_iq_error(iq, "wait", "internal-server-error");
    return mp_iq_result(iq, q);
}

static int
disco_items(mp_iq *iq, void *ud)
{
    const char *nick;
    const char *jid = iq_room_jid(iq, &nick);
    if (jid && nick)
        return muc_room_iq_forward(the_svc, iq);
    if (mp_xnode_attr(iq->payload, "node"))
        return mp_iq_error(iq, "cancel", "item-not-found");
    mp_xnode *q = mp_xnode_new(iq->arena, NS_DISCO_ITEMS, "query");
    if (!q)
        return mp_iq_error(iq, "wait", "internal-server-error");
    if (jid) {
        /* A room's items would be its occupants (§6.5: MAY); they are not listed, so nicks
         * of hidden or anonymous rooms cannot be harvested. */
        muc_room *room = muc_room_find(the_svc, jid, strlen(jid));
        if (!room || !room_visible(iq, room))
            return mp_iq_error(iq, "cancel", "item-not-found");
        return mp_iq_result(iq, q);
    }
    /* §6.3: the public rooms of this service (this host's: iq->to is the service's JID) */
    mp_htab *t = &the_svc->rooms;
    for (size_t i = 0; i < t->nbuckets; i++) {
        for (mp_hnode *n = t->buckets[i]; n; n = n->next) {
            muc_room *r = mp_container_of(n, muc_room, by_jid);
            if (!r->cfg.public_room || r->locked || r->destroyed || strcmp(r->domain, iq->to))
                continue;
            mp_xnode *it = mp_xnode_new(iq->arena, NS_DISCO_ITEMS, "item");
            if (!it || mp_xnode_set_attr(iq->arena, it, "jid", r->jid) < 0 ||
                mp_xnode_set_attr(iq->arena, it, "name",
                                  r->cfg.name && r->cfg.name[0] ? r->cfg.name : r->node) < 0)
                return mp_iq_error(iq, "wait", "internal-server-error");
            mp_xnode_append(q, it);
        }
    }
    return mp_iq_result(iq, q);
}

/* ---- self-ping (XEP-0410) ---- */

static int
ping(mp_iq *iq, void *ud)
{
    const char *nick;
    const char *jid = iq_room_jid(iq, &nick);
    if (!jid)
        return mp_iq_result(iq, NULL); /* the service itself */
    muc_room *room = muc_room_find(the_svc, jid, strlen(jid));
    muc_occupant *me = room ? muc_occupant_by_real(room, iq->from) : NULL;
    if (!nick)
        return room && room_visible(iq, room) ? mp_iq_result(iq, NULL)
                                              : mp_iq_error(iq, "cancel", "item-not-found");
    /* §3: not joined (any more) is what the client must learn, so it rejoins */
    if (!me)
        return mp_iq_error(iq, "cancel", "not-acceptable");
    if (strcmp(me->nick, nick) == 0)
        return mp_iq_result(iq, NULL);
    return muc_room_iq_forward(the_svc, iq); /* an occupant pinging another one */
}

/* ---- the room's vCard (XEP-0054 on the room, XEP-0153 avatar hash) ---- */

/* The vCard stored for (domain, node) under kind (a room's or an account's) into *el;
 * MP_ENOTFOUND when there is none. */
static int
stored_vcard(mp_iq *iq, const char *domain, const char *node, const char *kind, mp_xnode **el)
{
    mp_store *st = mp_core_store(iq->core);
    mp_buf doc = {0};
    int rc = st->ops->blob_get(st, domain, node, kind, "", &doc);
    if (rc == 0 && doc.len == 0)
        rc = MP_ENOTFOUND;
    if (rc == 0) {
        mp_xml_parser *p = mp_xml_parser_new();
        rc = p ? mp_xml_parse(p, iq->arena, "jabber:client", doc.data, doc.len, el) : MP_ENOMEM;
        mp_xml_parser_free(p);
    }
    mp_buf_free(&doc);
    return rc;
}

/* XEP-0153 in rooms: an occupant's avatar hash comes in its presence, and clients ask
 * room/nick for the image. Clients do not answer vCard requests themselves, so for a local
 * occupant the room answers from the account's vCard, in the occupant's name (its real JID
 * stays hidden); Prosody and ejabberd send such requests to the bare JID for the same reason. */
static int
occupant_vcard(mp_iq *iq, muc_room *room, const char *nick)
{
    muc_occupant *o = room ? muc_occupant_by_nick(room, nick) : NULL;
    const char *at = o ? strchr(o->bare, '@') : NULL;
    if (!o || !at || !muc_occupant_by_real(room, iq->from) ||
        !mp_config_is_host(mp_core_config(iq->core), at + 1, strlen(at + 1)))
        return muc_room_iq_forward(the_svc, iq); /* its errors, or a remote occupant */
    const char *node = mp_arena_strndup(iq->arena, o->bare, (size_t)(at - o->bare));
    mp_xnode *el = NULL;
    int rc = node ? stored_vcard(iq, at + 1, node, KIND_ACCOUNT_VCARD, &el) : MP_ENOMEM;
    if (rc == MP_ENOTFOUND)
        return mp_iq_error(iq, "cancel", "item-not-found"); /* XEP-0054 §3.3 */
    if (rc < 0)
        return mp_iq_error(iq, "wait", "internal-server-error");
    return mp_iq_result(iq, el);
}

static int
vcard_get(mp_iq *iq, void *ud)
{
    const char *nick;
    muc_room *room = iq_room(iq, &nick);
    if (nick)
        return occupant_vcard(iq, room, nick);
    if (!room || !room_visible(iq, room))
        return mp_iq_error(iq, "cancel", "item-not-found");
    mp_xnode *el = NULL;
    int rc = stored_vcard(iq, room->domain, room->node, KIND_VCARD, &el);
    if (rc == MP_ENOTFOUND) {
        el = mp_xnode_new(iq->arena, NS_VCARD, "vCard");
        rc = el ? 0 : MP_ENOMEM;
    }
    if (rc < 0)
        return mp_iq_error(iq, "wait", "internal-server-error");
    return mp_iq_result(iq, el);
}

static int
vcard_set(mp_iq *iq, void *ud)
{
    const char *nick;
    muc_room *room = iq_room(iq, &nick);
    if (nick)
        return muc_room_iq_forward(the_svc, iq);
    if (!room || !room_visible(iq, room))
        return mp_iq_error(iq, "cancel", "item-not-found");
    const char *bare = bare_of(iq->arena, iq->from);
    if (!bare || muc_affil_of(room, bare) != MUC_OWNER)
        return mp_iq_error(iq, "auth", "forbidden"); /* XEP-0486 §3: owners only */
    char hash[41];
    if (mp_vcard_photo_hash(iq->payload, hash) < 0)
        return mp_iq_error(iq, "modify", "bad-request");
    mp_buf doc = {0};
    int rc = mp_xnode_serialize(&doc, iq->payload, "jabber:client");
    if (rc == 0 && doc.len > VCARD_MAX)
        rc = MP_ELIMIT;
    mp_store *st = mp_core_store(iq->core);
    if (rc == 0)
        rc = st->ops->blob_put(st, room->domain, room->node, KIND_VCARD, "",
                               iq->payload->children ? doc.data : "",
                               iq->payload->children ? doc.len : 0);
    mp_buf_free(&doc);
    if (rc == MP_ELIMIT)
        return mp_iq_error(iq, "modify", "not-acceptable");
    if (rc < 0)
        return mp_iq_error(iq, "wait", "internal-server-error");
    if (strcmp(room->cfg.avatar_hash ? room->cfg.avatar_hash : "", hash) != 0) {
        char *h = strdup(hash);
        if (h) {
            free(room->cfg.avatar_hash);
            room->cfg.avatar_hash = h;
        }
        if (room->cfg.persistent)
            muc_store_save(the_svc, room);
        /* §10.2.1: a change not about privacy: occupants refetch the room's disco#info */
        muc_room_status_message(the_svc, room, (const int[]){104, 0});
    }
    return mp_iq_result(iq, NULL);
}

/* ---- handlers of the other files, with room/nick forwarded to the occupant ---- */

/* The room's own IQs (muc#admin, muc#owner, MAM) with ud the handler: to room/nick they are
 * for the occupant and go on to its client. */
static int
room_or_occupant(mp_iq *iq, void *ud)
{
    const mp_iq_fn *fn = ud;
    const char *nick;
    if (iq_room_jid(iq, &nick) && nick)
        return muc_room_iq_forward(the_svc, iq);
    return (*fn)(iq, the_svc);
}

static const mp_iq_fn admin_fn = muc_admin_iq, owner_fn = muc_owner_iq,
                      mam_query_fn = muc_mam_query, mam_form_fn = muc_mam_form;

/* ---- the component ---- */

static int
component(mp_stanza *st, void *ud)
{
    muc_service *svc = ud;
    /* Only a client's stanza starts with nothing held: one a service sent (conn 0) may come
     * from inside a handler of ours delivering to a component JID (an invitation to a room,
     * a push service named by a member), whose caller still holds a room gc could free. */
    if (st->conn)
        muc_rooms_gc(svc);
    switch (st->kind) {
    case MP_STANZA_PRESENCE:
        return st->to_node[0] ? muc_room_presence(svc, st) : 0;
    case MP_STANZA_MESSAGE:
        if (!st->to_node[0])
            return strcmp(st->type, "error") == 0 ? 0 : MP_ENOTFOUND;
        return muc_room_message(svc, st);
    case MP_STANZA_IQ:
        /* get/set no handler took; results and errors nobody waits for end here */
        if (strcmp(st->type, "get") != 0 && strcmp(st->type, "set") != 0)
            return 0;
        if (st->to_node[0] && st->to_resource[0])
            return muc_room_iq_to_occupant(svc, st);
        return MP_ENOTFOUND;
    default:
        return 0;
    }
}

static int
valid_label(const char *s)
{
    if (!*s || strlen(s) > 63 || *s == '-')
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-'))
            return 0;
    return 1;
}

static void
muc_unload(mp_module *m)
{
    muc_service *svc = the_svc;
    if (!svc)
        return;
    mp_htab *t = &svc->rooms;
    for (size_t i = 0; i < t->nbuckets; i++) {
        mp_hnode *n = t->buckets[i];
        while (n) {
            mp_hnode *next = n->next;
            room_release(svc, mp_container_of(n, muc_room, by_jid));
            n = next;
        }
    }
    mp_htab_free(t);
    mp_buf_free(&svc->out);
    mp_buf_free(&svc->out2);
    mp_buf_free(&svc->out3);
    free((char *)svc->label);
    free(svc);
    the_svc = NULL;
}

static int
muc_load(mp_module *m)
{
    mp_core *core = mp_module_core(m);
    const mp_config *cfg = mp_core_config(core);
    if (!valid_label(cfg->muc_label)) {
        mp_err("muc.label \"%s\" is not a DNS label (a-z, 0-9, -)", cfg->muc_label);
        return MP_EINVAL;
    }
    muc_service *svc = calloc(1, sizeof *svc);
    if (!svc)
        return MP_ENOMEM;
    svc->m = m;
    svc->core = core;
    svc->label = strdup(cfg->muc_label);
    the_svc = svc;
    if (!svc->label) {
        muc_unload(m);
        return MP_ENOMEM;
    }
    const char *l = svc->label;
    int rc = mp_module_component(m, l, component, svc);
    struct {
        int type;
        const char *ns, *name;
        mp_iq_fn fn;
        const mp_iq_fn *room_fn; /* through room_or_occupant */
    } iqs[] = {
        {MP_IQ_GET, NS_DISCO_INFO, "query", disco_info, NULL},
        {MP_IQ_GET, NS_DISCO_ITEMS, "query", disco_items, NULL},
        {MP_IQ_GET, NS_PING, "ping", ping, NULL},
        {MP_IQ_GET, NS_VCARD, "vCard", vcard_get, NULL},
        {MP_IQ_SET, NS_VCARD, "vCard", vcard_set, NULL},
        {MP_IQ_GET, MUC_NS_ADMIN, "query", room_or_occupant, &admin_fn},
        {MP_IQ_SET, MUC_NS_ADMIN, "query", room_or_occupant, &admin_fn},
        {MP_IQ_GET, MUC_NS_OWNER, "query", room_or_occupant, &owner_fn},
        {MP_IQ_SET, MUC_NS_OWNER, "query", room_or_occupant, &owner_fn},
        {MP_IQ_SET, MP_NS_MAM, "query", room_or_occupant, &mam_query_fn},
        {MP_IQ_GET, MP_NS_MAM, "query", room_or_occupant, &mam_form_fn},
    };
    for (size_t i = 0; rc == 0 && i < sizeof iqs / sizeof iqs[0]; i++)
        rc = mp_module_component_iq(m, l, iqs[i].type, iqs[i].ns, iqs[i].name, iqs[i].fn,
                                    iqs[i].room_fn ? (void *)iqs[i].room_fn : svc);
    if (rc == 0)
        rc = muc_store_load_all(svc);
    if (rc < 0) {
        mp_err("muc: cannot start: %s", mp_strerror(rc));
        muc_unload(m);
    }
    return rc;
}

MP_MODULE(muc, MP_ABI_1, muc_load, muc_unload);
