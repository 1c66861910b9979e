/* Persistent rooms in storage: one document per room (blob kind "muc-room", domain = the
 * service, node = the room), an XML element of our own namespace holding the configuration,
 * the subject and the affiliations:
 *
 *   <room xmlns='urn:magpie:muc:0' created='1700000000'>
 *     <config name='' desc='' password='' persistent='1' ... />
 *     <subject from='room@service/nick'>text</subject>
 *     <affil jid='juliet@example.org' affil='owner' nick=''>reason</affil>
 *   </room>
 *
 * The document is rewritten whole on each change (configuration, affiliations, subject): rooms
 * change rarely and a room's document is small. Its archive is kept apart by the MAM store. */
#include "modules/muc/muc_int.h"
#include "router/core.h"
#include "storage/store.h"
#include "xml/escape.h"
#include "base/err.h"
#include "base/log.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NS_ROOM "urn:magpie:muc:0"
#define KIND_ROOM "muc-room"

static int
put_attr(mp_buf *b, const char *name, const char *v)
{
    mp_buf_printf(b, " %s='", name);
    mp_xml_escape_attr(b, v ? v : "", v ? strlen(v) : 0);
    return mp_buf_puts(b, "'");
}

static int
put_int(mp_buf *b, const char *name, int64_t v)
{
    return mp_buf_printf(b, " %s='%" PRId64 "'", name, v);
}

/* The room's document into b. 0 or MP_ENOMEM. */
static int
serialize(const muc_room *room, mp_buf *b)
{
    const muc_config *c = &room->cfg;
    mp_buf_puts(b, "<room xmlns='" NS_ROOM "'");
    put_int(b, "created", room->created);
    mp_buf_puts(b, "><config");
    put_attr(b, "name", c->name);
    put_attr(b, "desc", c->description);
    put_attr(b, "password", c->password);
    put_attr(b, "avatar", c->avatar_hash);
    put_int(b, "persistent", c->persistent);
    put_int(b, "public", c->public_room);
    put_int(b, "membersonly", c->members_only);
    put_int(b, "pwprotected", c->password_protected);
    put_int(b, "moderated", c->moderated);
    put_int(b, "maxusers", c->max_users);
    put_int(b, "whois", c->whois);
    put_int(b, "invites", c->allow_invites);
    put_int(b, "changesubject", c->change_subject);
    put_int(b, "allowpm", c->allow_pm);
    put_int(b, "history", c->history_length);
    put_int(b, "logging", c->logging);
    put_int(b, "membersbydefault", c->members_by_default);
    mp_buf_puts(b, "/><subject");
    put_attr(b, "from", c->subject_from);
    mp_buf_puts(b, ">");
    if (c->subject)
        mp_xml_escape_text(b, c->subject, strlen(c->subject));
    mp_buf_puts(b, "</subject>");
    for (size_t i = 0; i < room->affiliations.nbuckets; i++)
        for (mp_hnode *h = room->affiliations.buckets[i]; h; h = h->next) {
            const muc_affiliation *af = mp_container_of(h, muc_affiliation, by_jid);
            mp_buf_puts(b, "<affil");
            put_attr(b, "jid", af->jid);
            put_attr(b, "affil", muc_affil_str(af->affil));
            put_attr(b, "nick", af->nick);
            mp_buf_puts(b, ">");
            if (af->reason)
                mp_xml_escape_text(b, af->reason, strlen(af->reason));
            mp_buf_puts(b, "</affil>");
        }
    return mp_buf_puts(b, "</room>") < 0 ? MP_ENOMEM : 0;
}

/* A temporary room has no document: saving one deletes what a persistent past left. */
int
muc_store_save(muc_service *svc, muc_room *room)
{
    mp_store *st = mp_core_store(svc->core);
    mp_buf b = {0};
    int rc = 0;

    if (room->cfg.persistent && !room->destroyed)
        rc = serialize(room, &b);
    if (rc == 0)
        rc = st->ops->blob_put(st, room->domain, room->node, KIND_ROOM, "", b.data, b.len);
    if (rc < 0)
        mp_err("muc %s: cannot store the room: %s", room->jid, mp_strerror(rc));
    mp_buf_free(&b);
    return rc;
}

int
muc_store_delete(muc_service *svc, muc_room *room)
{
    mp_store *st = mp_core_store(svc->core);
    int rc = st->ops->blob_put(st, room->domain, room->node, KIND_ROOM, "", NULL, 0);
    int rc2 = st->ops->archive_delete_owner(st, room->domain, room->node);
    if (rc < 0 || rc2 < 0)
        mp_err("muc %s: cannot delete the stored room: %s", room->jid,
               mp_strerror(rc < 0 ? rc : rc2));
    return rc < 0 ? rc : rc2;
}

/* ---- loading ---- */

static int
set_str(char **dst, const char *v)
{
    char *s = strdup(v ? v : "");
    if (!s)
        return MP_ENOMEM;
    free(*dst);
    *dst = s;
    return 0;
}

static int
int_attr(const mp_xnode *n, const char *name, int dflt)
{
    const char *v = mp_xnode_attr(n, name);
    return v ? atoi(v) : dflt;
}

/* The document parsed in doc onto a room made with its defaults. */
static int
restore(muc_room *room, const mp_xnode *doc)
{
    const mp_xnode *c = mp_xnode_child(doc, NS_ROOM, "config");
    const mp_xnode *s = mp_xnode_child(doc, NS_ROOM, "subject");
    muc_config *cfg = &room->cfg;
    const char *created = mp_xnode_attr(doc, "created");

    if (!c)
        return MP_EINVAL;
    if (created)
        room->created = strtoll(created, NULL, 10);
    if (set_str(&cfg->name, mp_xnode_attr(c, "name")) < 0 ||
        set_str(&cfg->description, mp_xnode_attr(c, "desc")) < 0 ||
        set_str(&cfg->password, mp_xnode_attr(c, "password")) < 0 ||
        set_str(&cfg->avatar_hash, mp_xnode_attr(c, "avatar")) < 0 ||
        set_str(&cfg->subject, s ? s->text : "") < 0 ||
        set_str(&cfg->subject_from, s ? mp_xnode_attr(s, "from") : "") < 0)
        return MP_ENOMEM;
    cfg->persistent = 1;
    cfg->public_room = int_attr(c, "public", cfg->public_room);
    cfg->members_only = int_attr(c, "membersonly", cfg->members_only);
    cfg->password_protected = int_attr(c, "pwprotected", cfg->password_protected);
    cfg->moderated = int_attr(c, "moderated", cfg->moderated);
    cfg->max_users = int_attr(c, "maxusers", cfg->max_users);
    cfg->whois = int_attr(c, "whois", cfg->whois);
    cfg->allow_invites = int_attr(c, "invites", cfg->allow_invites);
    cfg->change_subject = int_attr(c, "changesubject", cfg->change_subject);
    cfg->allow_pm = int_attr(c, "allowpm", cfg->allow_pm);
    cfg->history_length = int_attr(c, "history", cfg->history_length);
    cfg->logging = int_attr(c, "logging", cfg->logging);
    cfg->members_by_default = int_attr(c, "membersbydefault", cfg->members_by_default);
    for (const mp_xnode *a = doc->children; a; a = a->next) {
        if (strcmp(a->ns, NS_ROOM) != 0 || strcmp(a->name, "affil") != 0)
            continue;
        const char *jid = mp_xnode_attr(a, "jid");
        int affil = muc_affil_parse(mp_xnode_attr(a, "affil"));
        if (!jid || affil < 0 || affil == MUC_AFF_NONE)
            continue;
        if (muc_affil_set(room, jid, affil, a->text) < 0)
            return MP_ENOMEM;
        const char *nick = mp_xnode_attr(a, "nick");
        if (nick && *nick) { /* rare: a scan rather than knowing room.c's hash */
            for (size_t i = 0; i < room->affiliations.nbuckets; i++)
                for (mp_hnode *n = room->affiliations.buckets[i]; n; n = n->next) {
                    muc_affiliation *af = mp_container_of(n, muc_affiliation, by_jid);
                    if (strcmp(af->jid, jid) == 0 && set_str(&af->nick, nick) < 0)
                        return MP_ENOMEM;
                }
        }
    }
    room->locked = 0;
    return 0;
}

typedef struct loader {
    muc_service *svc;
    const char *domain;
    mp_xml_parser *parser;
    mp_arena arena;
    int rooms, failed;
} loader;

static int
load_one(const char *node, const char *key, const char *data, size_t len, void *ud)
{
    loader *ld = ud;
    mp_xnode *doc;
    char jid[2048];

    mp_arena_reset(&ld->arena);
    if (snprintf(jid, sizeof jid, "%s@%s", node, ld->domain) >= (int)sizeof jid)
        return 0;
    if (muc_room_find(ld->svc, jid, strlen(jid)))
        return 0;
    if (mp_xml_parse(ld->parser, &ld->arena, "", data, len, &doc) < 0 ||
        strcmp(doc->ns, NS_ROOM) != 0 || strcmp(doc->name, "room") != 0) {
        mp_warn("muc %s: the stored room is damaged, not loaded", jid);
        ld->failed++;
        return 0;
    }
    muc_room *room = muc_room_new(ld->svc, node, ld->domain);
    if (!room)
        return MP_ENOMEM;
    int rc = restore(room, doc);
    if (rc < 0) {
        mp_warn("muc %s: cannot restore the stored room: %s", jid, mp_strerror(rc));
        muc_room_free(ld->svc, room, 0);
        if (rc == MP_ENOMEM)
            return rc;
        ld->failed++;
        return 0;
    }
    muc_history_trim(room);
    ld->rooms++;
    return 0;
}

int
muc_store_load_all(muc_service *svc)
{
    mp_store *st = mp_core_store(svc->core);
    loader ld = {.svc = svc};
    char domain[1100];
    int rc = 0;

    if (!(ld.parser = mp_xml_parser_new()))
        return MP_ENOMEM;
    mp_arena_init(&ld.arena, 16384);
    for (int i = 0; rc == 0 && mp_component_jid(svc->core, svc->label, i, domain, sizeof domain);
         i++) {
        ld.domain = domain;
        rc = st->ops->blob_list(st, domain, KIND_ROOM, load_one, &ld);
    }
    mp_arena_free(&ld.arena);
    mp_xml_parser_free(ld.parser);
    if (rc < 0)
        mp_err("muc: cannot load the stored rooms: %s", mp_strerror(rc));
    else if (ld.rooms || ld.failed)
        mp_info("muc: %d persistent room(s) loaded, %d damaged", ld.rooms, ld.failed);
    return rc;
}
