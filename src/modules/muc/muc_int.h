/* Multi-user chat (XEP-0045) internals shared by the files of src/modules/muc/.
 *
 *   muc.c        module load/unload, the component's stanza function, room registry, disco
 *   room.c       occupants: join, leave, nick change, presence broadcast with status codes,
 *                groupchat messages (fan-out, archive, history), subject, private messages,
 *                self-ping (XEP-0410), role/affiliation changes applied to occupants
 *   history.c    the history kept in memory and sent on join (maxchars/maxstanzas/seconds/since)
 *   admin.c      muc#admin: item lists and changes (kick, ban, voice, member, admin, owner)
 *   config.c     muc#owner: the configuration form (get/set), instant and reserved creation,
 *                destroy with alternate venue; muc#roominfo
 *   store.c      persistent rooms (configuration and affiliations) in storage, loaded at start
 *   invite.c     mediated invitations and declines, voice requests (muc#request)
 *   mam.c        XEP-0313 queries on a room's archive
 *
 * Everything runs on the core thread. A room is found by one hash lookup on its bare JID. */
#ifndef MP_MODULES_MUC_INT_H
#define MP_MODULES_MUC_INT_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/htab.h"
#include "magpie/module.h"

#define MUC_NS "http://jabber.org/protocol/muc"
#define MUC_NS_USER "http://jabber.org/protocol/muc#user"
#define MUC_NS_ADMIN "http://jabber.org/protocol/muc#admin"
#define MUC_NS_OWNER "http://jabber.org/protocol/muc#owner"
#define MUC_NS_CONFIG "http://jabber.org/protocol/muc#roomconfig"
#define MUC_NS_REQUEST "http://jabber.org/protocol/muc#request"
#define MUC_NS_ROOMINFO "http://jabber.org/protocol/muc#roominfo"
#define MUC_NS_CONFERENCE "jabber:x:conference" /* XEP-0249 direct invitations */

/* Affiliations (XEP-0045 §5.2), ordered so that a comparison says who outranks whom. */
enum muc_affil { MUC_OUTCAST = 0, MUC_AFF_NONE, MUC_MEMBER, MUC_ADMIN, MUC_OWNER };
/* Roles (§5.1). */
enum muc_role { MUC_ROLE_NONE = 0, MUC_VISITOR, MUC_PARTICIPANT, MUC_MODERATOR };

/* Who may see occupants' real JIDs (muc#roomconfig_whois). */
enum muc_whois { MUC_WHOIS_MODERATORS = 0, MUC_WHOIS_ANYONE };
/* Who may send private messages (muc#roomconfig_allowpm) in muc_config.allow_pm: NONE is 0, so
 * a boolean test still says whether anyone may. */
enum muc_allowpm { MUC_PM_NONE = 0, MUC_PM_ANYONE, MUC_PM_PARTICIPANTS, MUC_PM_MODERATORS };

/* The room configuration (muc#roomconfig, §10.2). Strings are owned (malloc). */
typedef struct muc_config {
    char *name;          /* muc#roomconfig_roomname, "" when unset */
    char *description;   /* muc#roomconfig_roomdesc */
    char *password;      /* muc#roomconfig_roomsecret, used when password_protected */
    char *subject;       /* current subject, "" when none */
    char *subject_from;  /* occupant JID (room@service/nick) who set it, "" for the room */
    int persistent;      /* muc#roomconfig_persistentroom */
    int public_room;     /* muc#roomconfig_publicroom: listed in disco#items */
    int members_only;    /* muc#roomconfig_membersonly */
    int password_protected; /* muc#roomconfig_passwordprotectedroom */
    int moderated;       /* muc#roomconfig_moderatedroom */
    int max_users;       /* muc#roomconfig_maxusers, 0: no limit */
    int whois;           /* enum muc_whois */
    int allow_invites;   /* muc#roomconfig_allowinvites: participants may invite */
    int change_subject;  /* muc#roomconfig_changesubject: participants may */
    int allow_pm;        /* private messages between occupants allowed */
    int history_length;  /* muc#roomconfig_historylength / muc#maxhistoryfetch: kept in memory */
    int logging;         /* muc#roomconfig_enablelogging: archived (MAM) */
    int members_by_default; /* new occupants of an open room get the member affiliation */
    char *avatar_hash;   /* XEP-0153 photo hash of the room's vCard, "" when none */
} muc_config;

/* One affiliation held by a bare JID (stored for persistent rooms). */
typedef struct muc_affiliation {
    mp_hnode by_jid;
    int affil;    /* enum muc_affil, never MUC_AFF_NONE (those are removed) */
    char *reason; /* "" when none */
    char *nick;   /* registered/reserved nick, "" when none */
    char jid[];   /* bare JID, prepared */
} muc_affiliation;

/* One history entry: the message as broadcast (from = room/nick, without 'to'). */
typedef struct muc_msg {
    struct muc_msg *next;
    int64_t stamp_us;
    size_t len;
    size_t chars; /* XEP-0045 §7.2.15 counts characters of the whole stanza */
    char bytes[];
} muc_msg;

/* One occupant: a nick in the room, used by one or more sessions of the same bare JID
 * (multi-session nicks, §7.2.11 "servers MAY"). */
typedef struct muc_session {
    struct muc_session *next;
    mp_hnode by_full;         /* in room->sessions, hash of full (room.c) */
    struct muc_occupant *occ; /* the occupant this session is */
    size_t len;
    char full[]; /* the real full JID, prepared */
} muc_session;

typedef struct muc_occupant {
    mp_hnode by_nick;   /* in room->occupants, hash of nick */
    struct muc_occupant *next; /* in room->list, join order */
    int role;           /* enum muc_role */
    muc_session *sessions;
    char *presence;     /* its last presence as broadcast, children only (show/status/...) */
    size_t presence_len;
    char *bare;         /* real bare JID, prepared */
    char *occupant_jid; /* room@service/nick */
    size_t occupant_jid_len;
    char nick[];
} muc_occupant;

typedef struct muc_room {
    mp_hnode by_jid;    /* in muc_service.rooms */
    struct muc_service *svc;
    char *jid;          /* room@service, prepared */
    size_t jid_len;
    char *node;         /* "room" */
    char *domain;       /* "conference.example.org" */
    muc_config cfg;
    int locked;         /* created, waiting for the owner's configuration (§10.1.1) */
    int destroyed;
    mp_htab occupants;  /* muc_occupant by nick (exact, case-sensitive after resourceprep) */
    muc_occupant *list; /* join order */
    int noccupants;
    mp_htab affiliations; /* muc_affiliation by bare JID */
    muc_msg *history, *history_tail;
    int nhistory;
    int64_t created;    /* unix seconds */
    mp_htab sessions;   /* muc_session by real full JID (room.c: one lookup per stanza) */
} muc_room;

typedef struct muc_service {
    mp_module *m;
    struct mp_core *core;
    mp_htab rooms;      /* muc_room by bare JID */
    mp_buf out;         /* stanza building, reused */
    mp_buf out2;
    const char *label;  /* "conference" */
    mp_buf out3;        /* room.c: self-presence, history with <delay/> */
    int gc_pending;     /* room.c: empty temporary rooms to forget before the next stanza */
} muc_service;

/* ---- muc.c ---- */
muc_room *muc_room_find(muc_service *svc, const char *jid, size_t len);
/* Create an empty room (not yet in storage); the creator becomes owner in room.c. */
muc_room *muc_room_new(muc_service *svc, const char *node, const char *domain);
/* Forget a room: occupants get nothing (callers say what they must first); stored data is
 * deleted when delete_stored. */
void muc_room_free(muc_service *svc, muc_room *room, int delete_stored);
void muc_config_defaults(const muc_service *svc, muc_config *c);
void muc_config_free(muc_config *c);

/* ---- room.c ---- */
int muc_room_presence(muc_service *svc, mp_stanza *st);  /* presence to room@service/nick */
int muc_room_message(muc_service *svc, mp_stanza *st);   /* message to the room or a nick */
int muc_room_iq_to_occupant(muc_service *svc, mp_stanza *st); /* IQ to room@service/nick */
muc_occupant *muc_occupant_by_nick(muc_room *room, const char *nick);
muc_occupant *muc_occupant_by_real(muc_room *room, const char *full);
/* The occupant's role or affiliation changed (admin.c, config.c): tell everyone, with the
 * status codes given (0-terminated list, e.g. (const int[]){307, 0} for a kick; NULL: none);
 * role NONE removes the occupant (o is freed then; an emptied temporary room is forgotten
 * before the service's next stanza, never during the call). actor_nick and reason may be NULL. */
void muc_occupant_changed(muc_service *svc, muc_room *room, muc_occupant *o, const int *codes,
                          const char *actor_nick, const char *reason);
/* Broadcast a room's configuration change status codes (104, 170-174) in a message
 * (codes 0-terminated). */
void muc_room_status_message(muc_service *svc, muc_room *room, const int *codes);
/* The affiliation of a bare JID (MUC_AFF_NONE when none). */
int muc_affil_of(const muc_room *room, const char *bare);
/* Set (or with MUC_AFF_NONE remove) an affiliation. 0 or MP_ENOMEM. */
int muc_affil_set(muc_room *room, const char *bare, int affil, const char *reason);
/* Default role for an affiliation in this room (§5.1.2). */
int muc_role_for(const muc_room *room, int affil);
/* Send every occupant unavailable with <destroy/> and remove them (config.c's destroy). */
void muc_room_evict_all(muc_service *svc, muc_room *room, const char *alt_jid,
                        const char *reason, const char *password);
/* An IQ get/set a component handler got for room@service/nick: forwarded to that occupant
 * (from the sender's occupant JID), its answer routed back. Always answers: returns 0. */
int muc_room_iq_forward(muc_service *svc, mp_iq *iq);
/* Forget every empty room that is temporary (or still locked) now, when an occupant was
 * removed by muc_occupant_changed since the last call (muc.c calls it before each stanza). */
void muc_rooms_gc(muc_service *svc);

/* ---- history.c ---- */
/* What a <history/> element asks for (XEP-0045 §7.2.15); -1 / INT64_MIN: not given. */
typedef struct muc_history_req {
    long maxchars, maxstanzas;
    int64_t seconds;
    int64_t since_us;
} muc_history_req;
/* Read the attributes of history (NULL: nothing asked: everything kept). Malformed values are
 * ignored, as if absent. */
void muc_history_parse(const mp_xnode *history, muc_history_req *req);
/* The oldest entry to send (then every later one; *count of them), or NULL for none: the
 * longest run of newest entries within every limit asked. Pure. */
const muc_msg *muc_history_select(const muc_msg *head, const muc_history_req *req,
                                  int64_t now_us, int *count);
/* Characters (UTF-8 code points) in s[0..len). */
size_t muc_utf8_chars(const char *s, size_t len);
/* Append bytes (a <message/>) to out with <delay xmlns='urn:xmpp:delay' from stamp/> as its
 * last child. 0, MP_EINVAL (not a message element) or MP_ENOMEM. */
int muc_delay_append(mp_buf *out, const char *bytes, size_t len, const char *from,
                     int64_t stamp_us);
int64_t muc_now_us(void); /* wall clock, microseconds since the epoch */
void muc_history_add(muc_room *room, const char *bytes, size_t len, int64_t stamp_us);
void muc_history_trim(muc_room *room); /* to cfg.history_length */
void muc_history_free(muc_room *room);
/* Send the history a <history/> element (may be NULL) asks for to one real full JID. */
void muc_history_send(muc_service *svc, muc_room *room, const mp_xnode *history,
                      const char *to_full);

/* ---- admin.c ---- */
/* The component IQ handlers (admin, owner, MAM) get the muc_service as ud. */
int muc_admin_iq(mp_iq *iq, void *ud); /* get and set of muc#admin <query/> */
/* The room an IQ is addressed to (bare room JID); NULL after answering item-not-found. */
muc_room *muc_iq_room(muc_service *svc, mp_iq *iq);
/* Permission rules of §8-§10, pure so they can be tested exhaustively: MUC_ALLOW or the error. */
enum muc_verdict { MUC_ALLOW = 0, MUC_DENY_FORBIDDEN, MUC_DENY_NOT_ALLOWED, MUC_DENY_CONFLICT };
int muc_may_set_role(int actor_affil, int actor_role, int target_affil, int target_role,
                     int new_role);
int muc_may_set_affil(int actor_affil, int target_affil, int new_affil);
/* "owner", "admin", "member", "none", "outcast" / "moderator", "participant", "visitor",
 * "none"; the parsers return -1 for anything else. */
const char *muc_affil_str(int affil);
const char *muc_role_str(int role);
int muc_affil_parse(const char *s);
int muc_role_parse(const char *s);

/* ---- config.c ---- */
int muc_owner_iq(mp_iq *iq, void *ud); /* get and set of muc#owner <query/> */
/* Apply a submitted muc#roomconfig form (or default values for an instant room): 0,
 * MP_EINVAL (bad form: not-acceptable) ; codes receives the status codes to broadcast. */
int muc_config_apply_form(muc_room *room, const mp_xnode *x, int *codes, size_t ncodes);
/* The disco#info of a room (identity, features muc_*, muc#roominfo form) as a <query/>. */
mp_xnode *muc_room_disco_info(muc_service *svc, muc_room *room, mp_arena *a);

/* ---- store.c ----
 * A persistent room is one blob (kind "muc-room", domain = service, node = room, key ""): an
 * XML document of its configuration, subject and affiliations. */
int muc_store_save(muc_service *svc, muc_room *room);   /* persistent rooms only */
int muc_store_delete(muc_service *svc, muc_room *room);
int muc_store_load_all(muc_service *svc);               /* at module load */

/* ---- invite.c ---- */
/* <message><x xmlns='muc#user'><invite/>|<decline/></x></message> to the room. */
int muc_invite_message(muc_service *svc, muc_room *room, mp_stanza *st, const mp_xnode *x);
/* A voice request (muc#request form) from a visitor, or its approval by a moderator. */
int muc_voice_request(muc_service *svc, muc_room *room, mp_stanza *st, const mp_xnode *form);

/* ---- mam.c ----
 * A room's archive is owned by (room->domain, room->node). Items are appended (room.c) as
 * broadcast (from = room@service/nick) with with_jid = the room's bare JID and with_resource =
 * the nick, so that a query's 'with' = room@service/nick (an occupant JID) selects one nick. */
int muc_mam_query(mp_iq *iq, void *ud); /* set of urn:xmpp:mam:2 <query/> to a room */
int muc_mam_form(mp_iq *iq, void *ud);  /* get of the query form */

#endif
