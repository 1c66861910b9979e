/* Mediated invitations (XEP-0045 §7.8.2), declines (§7.8.3) and voice requests (§7.13).
 *
 * An invitation goes from the room to the invitee (a normal message, so an offline invitee
 * finds it in the offline queue) naming the inviter's real JID, with the room's password. In a
 * members-only room the invitee becomes a member when the inviter may make members: an admin or
 * owner, or anyone when occupants may invite. A voice request from a visitor goes to the
 * moderators as the muc#request form; a moderator who sends it back approved gives voice. */
#include "modules/muc/muc_int.h"
#include "xml/escape.h"
#include "xmpp/jid.h"
#include "base/err.h"
#include "base/log.h"

#include <string.h>

#define NS_XDATA "jabber:x:data"
#define INVITES_MAX 20 /* invitees one message may name */

static void
put_attr(mp_buf *b, const char *name, const char *v)
{
    mp_buf_printf(b, " %s='", name);
    mp_xml_escape_attr(b, v, strlen(v));
    mp_buf_puts(b, "'");
}

static void
put_elem(mp_buf *b, const char *name, const char *text)
{
    mp_buf_printf(b, "<%s>", name);
    mp_xml_escape_text(b, text, strlen(text));
    mp_buf_printf(b, "</%s>", name);
}

static int
send_to(muc_service *svc, muc_room *room, const char *to, const mp_buf *b)
{
    if (!b->data) /* the buffer could not grow */
        return MP_ENOMEM;
    return mp_core_deliver(svc->core, room->jid, to, strlen(to), b->data, b->len, 0);
}

/* Send b to every session of the occupant whose occupant JID is to (room@service/nick), or to
 * to itself when it is no occupant JID of this room. */
static void
route(muc_service *svc, muc_room *room, const char *to, const mp_buf *b)
{
    if (strncmp(to, room->jid, room->jid_len) == 0 && to[room->jid_len] == '/') {
        muc_occupant *o = muc_occupant_by_nick(room, to + room->jid_len + 1);
        for (muc_session *s = o ? o->sessions : NULL; s; s = s->next)
            send_to(svc, room, s->full, b);
        return;
    }
    send_to(svc, room, to, b);
}

static const char *
child_text(const mp_xnode *n, const char *name)
{
    const mp_xnode *c = mp_xnode_child(n, MUC_NS_USER, name);
    return c && c->text_len ? c->text : NULL;
}

/* A prepared copy of a JID attribute into buf; NULL when it is missing or malformed. */
static const char *
prep(const char *jid, char *buf, size_t cap)
{
    mp_jid j;
    if (!jid || mp_jid_prep(jid, strlen(jid), &j) < 0 || mp_jid_full(&j, buf, cap) < 0)
        return NULL;
    return buf;
}

static int
invite(muc_service *svc, muc_room *room, mp_stanza *st, const mp_xnode *inv, int may_make_members)
{
    char buf[3 * MP_JID_PART_MAX + 3];
    const char *to = prep(mp_xnode_attr(inv, "to"), buf, sizeof buf);
    if (!to)
        return mp_stanza_error(st, "modify", "jid-malformed", NULL);
    const char *reason = child_text(inv, "reason");
    const mp_xnode *cont = mp_xnode_child(inv, MUC_NS_USER, "continue");

    if (room->cfg.members_only && may_make_members) {
        size_t bare = strcspn(to, "/");
        char jid[sizeof buf];
        memcpy(jid, to, bare);
        jid[bare] = '\0';
        if (muc_affil_of(room, jid) == MUC_AFF_NONE) {
            if (muc_affil_set(room, jid, MUC_MEMBER, "") < 0)
                return mp_stanza_error(st, "wait", "internal-server-error", NULL);
            mp_info("muc %s: %s is a member, invited by %s", room->jid, jid, st->from);
            if (room->cfg.persistent)
                muc_store_save(svc, room);
        }
    }

    mp_buf b = {0};
    mp_buf_puts(&b, "<message");
    put_attr(&b, "from", room->jid);
    mp_buf_puts(&b, "><x xmlns='" MUC_NS_USER "'><invite");
    put_attr(&b, "from", st->from);
    mp_buf_puts(&b, ">");
    if (reason)
        put_elem(&b, "reason", reason);
    if (cont) {
        const char *thread = mp_xnode_attr(cont, "thread");
        mp_buf_puts(&b, "<continue");
        if (thread)
            put_attr(&b, "thread", thread);
        mp_buf_puts(&b, "/>");
    }
    mp_buf_puts(&b, "</invite>");
    if (room->cfg.password_protected && room->cfg.password && *room->cfg.password)
        put_elem(&b, "password", room->cfg.password);
    mp_buf_puts(&b, "</x><body>");
    mp_xml_escape_text(&b, st->from, strcspn(st->from, "/"));
    mp_buf_puts(&b, " invites you to the room ");
    mp_xml_escape_text(&b, room->jid, room->jid_len);
    if (reason) {
        mp_buf_puts(&b, ": ");
        mp_xml_escape_text(&b, reason, strlen(reason));
    }
    mp_buf_puts(&b, "</body></message>");
    int rc = send_to(svc, room, to, &b);
    mp_buf_free(&b);
    if (rc == MP_ENOMEM)
        return mp_stanza_error(st, "wait", "internal-server-error", NULL);
    if (rc == MP_ENOTFOUND) /* no such account here, and no federation yet */
        return mp_stanza_error(st, "cancel", "item-not-found", NULL);
    return 0;
}

static int
decline(muc_service *svc, muc_room *room, mp_stanza *st, const mp_xnode *dec)
{
    char buf[3 * MP_JID_PART_MAX + 3];
    const char *to = prep(mp_xnode_attr(dec, "to"), buf, sizeof buf);
    if (!to)
        return mp_stanza_error(st, "modify", "jid-malformed", NULL);
    const char *reason = child_text(dec, "reason");
    mp_buf b = {0};
    mp_buf_puts(&b, "<message");
    put_attr(&b, "from", room->jid);
    mp_buf_puts(&b, "><x xmlns='" MUC_NS_USER "'><decline from='");
    mp_xml_escape_attr(&b, st->from, strcspn(st->from, "/"));
    mp_buf_puts(&b, "'>");
    if (reason)
        put_elem(&b, "reason", reason);
    mp_buf_puts(&b, "</decline></x></message>");
    route(svc, room, to, &b);
    mp_buf_free(&b);
    return 0;
}

int
muc_invite_message(muc_service *svc, muc_room *room, mp_stanza *st, const mp_xnode *x)
{
    const mp_xnode *dec = mp_xnode_child(x, MUC_NS_USER, "decline");
    if (dec)
        return decline(svc, room, st, dec);

    size_t bl = strcspn(st->from, "/");
    char bare[3 * MP_JID_PART_MAX + 3];
    if (bl >= sizeof bare)
        return mp_stanza_error(st, "modify", "jid-malformed", NULL);
    memcpy(bare, st->from, bl);
    bare[bl] = '\0';
    muc_occupant *me = muc_occupant_by_real(room, st->from);
    int affil = muc_affil_of(room, bare);
    int role = me ? me->role : MUC_ROLE_NONE;
    if (!me && affil < MUC_ADMIN)
        return mp_stanza_error(st, "cancel", "not-acceptable", "Only occupants may invite");
    if (!room->cfg.allow_invites && role != MUC_MODERATOR && affil < MUC_ADMIN)
        return mp_stanza_error(st, "auth", "forbidden", "Only moderators may invite");
    int may_make_members = affil >= MUC_ADMIN || room->cfg.allow_invites;

    int n = 0;
    for (const mp_xnode *c = x->children; c; c = c->next) {
        if (strcmp(c->ns, MUC_NS_USER) != 0 || strcmp(c->name, "invite") != 0)
            continue;
        if (++n > INVITES_MAX)
            return mp_stanza_error(st, "modify", "not-acceptable", NULL);
        int rc = invite(svc, room, st, c, may_make_members);
        if (rc != 0)
            return rc;
    }
    return n ? 0 : mp_stanza_error(st, "modify", "bad-request", NULL);
}

/* ---- voice requests (§7.13) ---- */

static const char *
form_value(const mp_xnode *form, const char *var)
{
    for (const mp_xnode *f = form->children; f; f = f->next) {
        if (strcmp(f->ns, NS_XDATA) != 0 || strcmp(f->name, "field") != 0)
            continue;
        const char *v = mp_xnode_attr(f, "var");
        if (v && strcmp(v, var) == 0) {
            const mp_xnode *val = mp_xnode_child(f, NS_XDATA, "value");
            return val ? val->text : "";
        }
    }
    return NULL;
}

static void
field(mp_buf *b, const char *var, const char *type, const char *label, const char *value)
{
    mp_buf_puts(b, "<field");
    put_attr(b, "var", var);
    put_attr(b, "type", type);
    if (label)
        put_attr(b, "label", label);
    mp_buf_puts(b, ">");
    put_elem(b, "value", value);
}

/* The request form to every session of every moderator. */
static int
ask_moderators(muc_service *svc, muc_room *room, const muc_occupant *who, const char *full)
{
    mp_buf b = {0};
    mp_buf_puts(&b, "<message");
    put_attr(&b, "from", room->jid);
    mp_buf_puts(&b, "><x xmlns='" NS_XDATA "' type='form'><title>Voice request</title>"
                    "<instructions>To approve this request for voice, select the &quot;Grant "
                    "voice to this person?&quot; checkbox and click OK. To skip this request, "
                    "click the cancel button.</instructions>");
    field(&b, "FORM_TYPE", "hidden", NULL, MUC_NS_REQUEST);
    mp_buf_puts(&b, "</field>");
    field(&b, "muc#role", "list-single", "Requested role", "participant");
    mp_buf_puts(&b, "<option><value>participant</value></option></field>");
    field(&b, "muc#jid", "jid-single", "User ID", full);
    mp_buf_puts(&b, "</field>");
    field(&b, "muc#roomnick", "text-single", "Room Nickname", who->nick);
    mp_buf_puts(&b, "</field>");
    field(&b, "muc#request_allow", "boolean", "Grant voice to this person?", "false");
    mp_buf_puts(&b, "</field></x></message>");
    int sent = 0, rc = 0;
    for (muc_occupant *o = room->list; o && rc == 0; o = o->next)
        for (muc_session *s = o->role == MUC_MODERATOR ? o->sessions : NULL; s; s = s->next) {
            rc = send_to(svc, room, s->full, &b);
            sent += rc > 0;
            rc = rc == MP_ENOMEM ? rc : 0;
        }
    mp_buf_free(&b);
    mp_debug("muc %s: voice request of %s sent to %d moderator session(s)", room->jid, who->nick,
             sent);
    return rc;
}

int
muc_voice_request(muc_service *svc, muc_room *room, mp_stanza *st, const mp_xnode *form)
{
    const char *type = mp_xnode_attr(form, "type");
    const char *ft = form_value(form, "FORM_TYPE");
    if (!ft || strcmp(ft, MUC_NS_REQUEST) != 0 || (type && strcmp(type, "submit") != 0))
        return mp_stanza_error(st, "modify", "bad-request", NULL);
    muc_occupant *me = muc_occupant_by_real(room, st->from);
    if (!me)
        return mp_stanza_error(st, "cancel", "not-acceptable", NULL);

    const char *allow = form_value(form, "muc#request_allow");
    if (allow) { /* a moderator's answer */
        if (me->role != MUC_MODERATOR)
            return mp_stanza_error(st, "auth", "forbidden", NULL);
        if (strcmp(allow, "1") != 0 && strcmp(allow, "true") != 0)
            return 0;
        const char *nick = form_value(form, "muc#roomnick");
        muc_occupant *o = nick ? muc_occupant_by_nick(room, nick) : NULL;
        if (!o)
            return mp_stanza_error(st, "cancel", "item-not-found", NULL);
        if (o->role != MUC_VISITOR)
            return 0;
        o->role = MUC_PARTICIPANT;
        mp_info("muc %s: voice granted to %s by %s", room->jid, o->nick, me->nick);
        muc_occupant_changed(svc, room, o, NULL, me->nick, NULL);
        return 0;
    }
    const char *role = form_value(form, "muc#role");
    if (!role || strcmp(role, "participant") != 0)
        return mp_stanza_error(st, "modify", "bad-request", NULL);
    if (me->role != MUC_VISITOR) /* has voice already: nothing to ask */
        return 0;
    if (ask_moderators(svc, room, me, st->from) < 0)
        return mp_stanza_error(st, "wait", "internal-server-error", NULL);
    return 0;
}
