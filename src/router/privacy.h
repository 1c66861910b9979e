/* Privacy lists (XEP-0016), the engine under the blocking command (XEP-0191) and invisibility
 * (XEP-0126). An account's lists live in memory while it has a bound resource (one pointer in
 * mp_user) and in storage as one document (kind "privacy"). A session applies its active list,
 * else the account's default list; with neither, the routing path pays one NULL check.
 *
 * This header is the only bridge between the modules "privacy" and "blocking" and the core. */
#ifndef MP_ROUTER_PRIVACY_H
#define MP_ROUTER_PRIVACY_H

#include <stddef.h>
#include <stdint.h>

#include "base/arena.h"
#include "base/buf.h"
#include "xml/tree.h"

struct mp_core;
struct mp_cstream;
struct mp_user;
struct mp_frame;
struct mp_jid;

#define MP_NS_PRIVACY "jabber:iq:privacy"
#define MP_NS_BLOCKING "urn:xmpp:blocking"
#define MP_PRIVACY_BLOCKED_LIST "Blocked contacts"
/* Bounds on what one account may keep: a list is evaluated per stanza. */
/* Hard caps of the stored document; the settings privacy.max_items / privacy.max_lists (at
 * most these) are what a client may set. */
#define MP_PRIVACY_MAX_ITEMS 10000
#define MP_PRIVACY_MAX_LISTS 1000

/* What a stanza is, seen from the account (XEP-0016 §2.1). OTHER is everything only an item
 * without child elements blocks: subscription stanzas (the note in §2.1: presence-in and
 * presence-out are notifications only) and the user's own outgoing messages and IQs. */
enum mp_privacy_what {
    MP_PRIV_MESSAGE = 1 << 0, /* incoming message */
    MP_PRIV_IQ = 1 << 1,      /* incoming IQ */
    MP_PRIV_PIN = 1 << 2,     /* incoming presence notification */
    MP_PRIV_POUT = 1 << 3,    /* outgoing presence notification */
    MP_PRIV_OTHER = 1 << 4,
    MP_PRIV_ALL = (1 << 5) - 1,
};

enum mp_privacy_type { MP_PRIV_T_ANY = 0, MP_PRIV_T_JID, MP_PRIV_T_GROUP, MP_PRIV_T_SUB };

typedef struct mp_privacy_item {
    uint8_t type; /* enum mp_privacy_type */
    uint8_t deny; /* action='deny' */
    uint8_t what; /* enum mp_privacy_what bits; MP_PRIV_ALL when no child element */
    uint8_t sub;  /* MP_PRIV_T_SUB: MP_SUB_TO / MP_SUB_FROM bits ("none" = 0) */
    uint32_t order;
    char *value; /* as given back to clients: prepared JID, group name, subscription */
    /* MP_PRIV_T_JID: the parts of value ("" when absent), in one allocation */
    char *node, *domain, *resource;
} mp_privacy_item;

typedef struct mp_privacy_list {
    struct mp_privacy_list *next;
    char *name;
    mp_privacy_item *items; /* sorted by order */
    size_t nitems;
    int needs_roster; /* has group or subscription items */
} mp_privacy_list;

/* The privacy state of one account. */
typedef struct mp_privacy {
    mp_privacy_list *lists;
    mp_privacy_list *def;  /* the default list, or NULL */
    uint64_t *block_conns; /* sessions that fetched the blocklist (XEP-0191 §3.1) */
    size_t nblock_conns;
} mp_privacy;

/* The roster item of the peer, for group and subscription items: loaded by load(ud) the
 * first time an item needs it. */
typedef struct mp_privacy_roster {
    int loaded;
    int sub; /* MP_SUB_TO / MP_SUB_FROM bits of the item, 0 when not in the roster */
    char **groups;
    size_t ngroups;
    int (*load)(struct mp_privacy_roster *r, void *ud);
    void *ud;
} mp_privacy_roster;

/* ---- lists: pure functions ---- */

/* Parse <list name='...'> with its items (XEP-0016 §2.1). MP_EINVAL for a malformed list: no
 * name, an item without action or order, a bad action, type, value or child, two items with
 * the same order. An empty list gives *out with nitems 0. */
int mp_privacy_list_parse(const mp_xnode *list, mp_privacy_list **out);
void mp_privacy_list_free(mp_privacy_list *l);
/* <list name='...'/> with its items (or without, for pushes and names), built in a. */
mp_xnode *mp_privacy_list_xml(mp_arena *a, const mp_privacy_list *l, int with_items);
/* Nonzero when l denies a stanza of kind what (one MP_PRIV_* bit) exchanged with peer: the
 * first item by order that matches decides (§2.13); no match allows. r may be NULL when l has
 * no group or subscription items. */
int mp_privacy_eval(const mp_privacy_list *l, int what, const struct mp_jid *peer,
                    mp_privacy_roster *r);

/* The whole state of an account as one document, and back. */
int mp_privacy_serialize(const mp_privacy *p, mp_buf *out);
int mp_privacy_parse(const char *bytes, size_t len, mp_privacy **out);
void mp_privacy_free(mp_privacy *p);
mp_privacy_list *mp_privacy_find(const mp_privacy *p, const char *name);
/* Put l into p in place of the list of the same name (its contents move into the old list,
 * which keeps its address: sessions using it see the new items) or append it. l is consumed;
 * returns the list now in p. */
mp_privacy_list *mp_privacy_put(mp_privacy *p, mp_privacy_list *l);
/* Unlink and free l (clears the default if it was). */
void mp_privacy_remove(mp_privacy *p, mp_privacy_list *l);
/* The XEP-0191 view of a list: nonzero when item i blocks its JID for everything. */
int mp_privacy_item_is_block(const mp_privacy_item *it);

/* ---- the core's hooks ---- */

/* First resource of an account bound: load its state. Last resource gone: free it. */
void mp_privacy_bind(struct mp_core *core, struct mp_cstream *s);
void mp_privacy_unbind(struct mp_core *core, struct mp_cstream *s);
/* Nonzero when the list session s applies denies a stanza of kind what exchanged with the JID
 * peer. One NULL check when the session applies no list. */
int mp_privacy_blocks(struct mp_core *core, struct mp_cstream *s, int what, const char *peer,
                      size_t peer_len);
/* The same for an account without a session applying lists (u NULL: nothing bound), by its
 * default list; read from storage when u is NULL. */
int mp_privacy_blocks_account(struct mp_core *core, struct mp_user *u, const char *domain,
                              const char *node, int what, const char *peer, size_t peer_len);
/* The user's own message or IQ of frame f to a contact its list blocks: answer
 * <not-acceptable/> with <blocked xmlns='urn:xmpp:blocking:errors'/> and return nonzero. */
int mp_privacy_outgoing(struct mp_core *core, struct mp_cstream *s, const struct mp_frame *f);

/* ---- for the modules: the account of the session conn ---- */

/* The account's state (created empty when it has none); NULL when conn has no bound session
 * or memory ran out. */
mp_privacy *mp_privacy_account(struct mp_core *core, uint64_t conn);
mp_privacy_list *mp_privacy_active(struct mp_core *core, uint64_t conn);
void mp_privacy_set_active(struct mp_core *core, uint64_t conn, mp_privacy_list *l);
/* How many of the account's sessions other than conn apply l (active, or default when they
 * have no active list). */
int mp_privacy_in_use(struct mp_core *core, uint64_t conn, const mp_privacy_list *l);
/* Write the account's state to storage. */
int mp_privacy_save(struct mp_core *core, uint64_t conn);
/* XEP-0016 §2.6: <query><list name='name'/></query> pushed to every resource of the account. */
void mp_privacy_push_list(struct mp_core *core, uint64_t conn, const char *name);
/* XEP-0191: the session asked for the blocklist and gets pushes from now on. */
int mp_privacy_block_interest(struct mp_core *core, uint64_t conn);
/* Send the payload (a <block/> or <unblock/> element, serialized) in an IQ set to each session
 * that fetched the blocklist. */
void mp_privacy_push_blocklist(struct mp_core *core, uint64_t conn, const char *payload,
                               size_t len);
/* XEP-0191 §3.3: each available resource of the account sends unavailable presence to jid. */
void mp_privacy_send_unavailable(struct mp_core *core, uint64_t conn, const char *jid);
/* XEP-0191 §3.4: each available resource sends its presence to jid if jid may see it. */
void mp_privacy_send_presence(struct mp_core *core, uint64_t conn, const char *jid);

#endif
