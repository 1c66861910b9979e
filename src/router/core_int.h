/* Core internals shared by the units of src/router/ (never included by modules). */
#ifndef MP_ROUTER_CORE_INT_H
#define MP_ROUTER_CORE_INT_H

#include <stdint.h>
#include <uv.h>

#include "base/arena.h"
#include "base/buf.h"
#include "base/htab.h"
#include "link/link.h"
#include "router/core.h"
#include "xml/tree.h"

struct mp_sasl;
struct mp_sasl_session;
struct mp_module;
struct mp_iq;

enum cstream_state { CS_PREAUTH = 0, CS_AUTHED, CS_BOUND };

typedef struct mp_user mp_user;

/* The core's view of one client stream. */
typedef struct mp_cstream {
    mp_hnode by_conn;
    uint64_t conn;
    mp_link *link;
    uint8_t state;
    uint8_t tls, tls_available, available;
    int host; /* index into cfg->hosts */
    int priority;
    int64_t since;
    struct mp_sasl_session *sasl;
    struct sasl_job *sasl_job; /* its PLAIN check running on the thread pool (stream.c) */
    unsigned char *cb; /* channel binding data from the mux, until authenticated */
    size_t cb_len;
    char *node;            /* authenticated local part */
    char *full;            /* bound full JID */
    size_t full_len, bare_len;
    mp_user *user;
    struct mp_cstream *next_res; /* the user's other bound resources */
    char *presence;              /* last available presence broadcast, as routed */
    size_t presence_len;
    uint8_t roster_requested;    /* gets roster pushes (RFC 6121 §2.1.6) */
    uint8_t initial_sent;        /* initial presence done: probes answered, offline flushed */
    struct mp_directed *directed; /* sent directed available presence outside the roster */
    struct mp_privacy_list *privacy; /* active privacy list (XEP-0016); NULL: the default */
    struct mp_sm_session *sm;        /* stream management (XEP-0198), NULL until <enable/> */
    uint8_t carbons;                 /* XEP-0280: MP_CARBONS_* bits (router/carbons.h) */
    struct mp_csi *csi;              /* XEP-0352 held presences (csi.c); NULL while active */
    char ip[46];
} mp_cstream;

/* A JID a session sent directed presence to (RFC 6121 §4.6): it hears the unavailable too. */
typedef struct mp_directed {
    struct mp_directed *next;
    size_t len;
    char jid[];
} mp_directed;

/* An account with at least one bound resource. */
struct mp_user {
    mp_hnode by_bare;
    mp_cstream *resources;
    int count;
    size_t bare_len;
    struct mp_privacy *privacy; /* privacy lists (router/privacy.h), NULL when none */
    uint8_t avatar_known;       /* avatar read from storage (router/avatar.c) */
    char avatar[41];            /* its SHA-1 in hex, "" for none */
    char bare[]; /* "node@domain" */
};

typedef struct mp_iq_handler {
    mp_hnode node;
    struct mp_module *module;
    int (*fn)(void *iq, void *ud);
    void *ud;
    char key[]; /* "get|host|ns|name" */
} mp_iq_handler;

typedef struct mp_link_ctx {
    mp_core *core;
    mp_link *link;
    uv_async_t wake;
} mp_link_ctx;

struct mp_core {
    uv_loop_t *loop;
    const struct mp_config *cfg;
    struct mp_store *store;
    struct mp_sasl *sasl;
    mp_link_ctx *links;
    int nlinks;
    mp_htab streams; /* by conn id */
    mp_htab users;   /* by bare JID */
    mp_htab iq_handlers;
    mp_htab throttle;
    mp_htab sm_ids; /* resumable sessions by stream management id (sm_session.c) */
    struct mp_journal *journal; /* in-flight messages of XEP-0198 sessions (journal.c) */
    struct mp_reg_rates *reg_rates; /* register.c: accounts created per IP, lazily made */
    uv_timer_t throttle_gc;
    struct mp_module **modules;
    size_t nmodules;
    const char **features;
    size_t nfeatures;
    const char **account_features; /* of every bare JID's disco#info */
    size_t naccount_features;
    const char **account_identities; /* category, type pairs */
    size_t naccount_identities;
    char caps_ver[32]; /* XEP-0115 ver of the server's disco#info (caps.c), "" if none */
    mp_xml_parser *parser;
    mp_arena arena; /* per stanza, reset after each */
    mp_buf scratch; /* reply building */
    mp_buf deliver; /* copies of stanzas being delivered with a new 'to' */
    uint64_t started_ms;
    int64_t started_unix;
    mp_core_stats stats;
    int stopping;
    struct mp_acl *acl; /* site policies (acl.c), recompiled on reload */
    uint8_t amp_enabled; /* XEP-0079 rules applied (amp.c, switched by the amp module) */
    struct mp_archive *archive; /* XEP-0313 archiving (archive.c); NULL: mam module off */
    struct mp_services *services; /* components, hooks, IQs awaiting answers (component.c) */
};

/* core.c */
mp_cstream *mp_core_stream(mp_core *core, uint64_t conn);
void mp_core_send(mp_core *core, mp_cstream *s, const char *bytes, size_t len);
void mp_core_send_frame(mp_core *core, mp_link *link, int kind, uint64_t conn, const char *aux,
                        size_t aux_len, const char *bytes, size_t len);
/* Close a stream with a stream error condition (NULL: just </stream:stream>), forget it. */
void mp_core_close_stream(mp_core *core, mp_cstream *s, const char *cond, const char *text);
mp_user *mp_core_user(mp_core *core, const char *bare, size_t len);
/* Free a stream and its session without a word to its mux (the caller said what it had to). */
void mp_core_forget_stream(mp_core *core, mp_cstream *s);
/* Put a stream on another connection (stream management resumption). */
void mp_core_move_stream(mp_core *core, mp_cstream *s, uint64_t conn, mp_link *link);

/* stream.c: negotiation before a session is bound */
void mp_cstream_features(mp_core *core, mp_cstream *s);
void mp_cstream_element(mp_core *core, mp_cstream *s, const mp_frame *f);
void mp_cstream_unbind(mp_core *core, mp_cstream *s);
/* An IQ answer on a stream with no bound JID: type error (etype, cond) or result (payload). */
void mp_cstream_iq_reply(mp_core *core, mp_cstream *s, const char *id, const char *from,
                         const char *etype, const char *cond, const char *payload);
/* The common start of an IQ before authentication (registration, legacy auth): its id, the
 * 'from' to answer with, whether it is a get. MP_EINVAL when it was handled already (no id or
 * type: stream closed; result/error ignored; other types answered bad-request). */
int mp_cstream_preauth_iq(mp_core *core, mp_cstream *s, const mp_xnode *iq, const char **id,
                          const char **from, int *get);

/* route.c */
void mp_route_stanza(mp_core *core, mp_cstream *from, const mp_frame *f);
/* RFC 6121 §8.5.2.1, the one rule for a message to a bare JID: the highest priority among
 * u's available resources other than except (NULL: none), -1 when none is non-negative; and
 * whether r is one that gets it (all non-negative ones for a headline). */
int mp_route_best_priority(const mp_user *u, const mp_cstream *except);
static inline int
mp_route_gets_bare(const mp_cstream *r, int best, int headline, const mp_cstream *except)
{
    return r != except && r->available && r->priority >= 0 && (headline || r->priority == best);
}
/* Reply to the sender of a stanza with an RFC 6120 stanza error. from_attr/id are plain text
 * (the framer unescapes them); they are escaped here. */
void mp_route_error(mp_core *core, mp_cstream *to, int el_kind, const char *from_attr,
                    size_t from_len, const char *id, size_t id_len, const char *etype,
                    const char *cond);

/* presence.c: the presence engine (RFC 6121 §3, §4) */
void mp_presence_outbound(mp_core *core, mp_cstream *s, const mp_frame *f);
/* XEP-0398 §4 (router/avatar.c): when s's account has an avatar and the available presence
 * (bytes, el its tree or NULL) does not name a photo itself, *out is the presence with
 * <x xmlns='vcard-temp:x:update'><photo>SHA-1</photo></x> and 1 is returned; else 0 and
 * bytes stand. out is the caller's, reset first. */
int mp_avatar_presence(mp_core *core, mp_cstream *s, const char *bytes, size_t len,
                       const struct mp_xnode *el, mp_buf *out);
void mp_presence_session_end(mp_core *core, mp_cstream *s);
/* The user of session s sends a subscription stanza of type (enum mp_sub_type) to the bare
 * JID contact (outbound processing, RFC 6121 §3). */
void mp_presence_subscription(mp_core *core, mp_cstream *s, const char *contact, int type,
                              int from_client);
/* Deliver bytes of a stanza to one session with to='...' inserted after the element name. */
void mp_deliver_to(mp_core *core, mp_cstream *r, const char *bytes, size_t len, const char *to,
                   size_t to_len);
/* Offline storage (XEP-0160): store a message for an account with no available resource.
 * Returns 0, MP_ENOTFOUND (no such account), MP_ELIMIT (quota) or MP_EIO. */
int mp_offline_store(mp_core *core, const char *domain, const char *node, const mp_frame *f);
/* The same for bytes; acked: the sender was acknowledged already (XEP-0198), so the quota and
 * offline.max_messages 0 do not apply. */
int mp_offline_store_bytes(mp_core *core, const char *domain, const char *node, const char *bytes,
                           size_t len, int acked);

/* roster.c */
struct mp_roster_item;
/* A roster item copied out of storage. */
typedef struct mp_item_copy {
    int found;
    int state;
    char *name;
    char **groups;
    size_t ngroups;
} mp_item_copy;
/* 0 (found or not: see c->found) or MP_EIO. */
int mp_roster_load(mp_core *core, const char *domain, const char *node, const char *jid,
                   mp_item_copy *c);
void mp_item_copy_free(mp_item_copy *c);
/* Store jid's item with a new state (name and groups kept) and push it to the user's
 * interested resources. */
int mp_roster_set_state(mp_core *core, const char *domain, const char *node, const char *jid,
                        const mp_item_copy *c, int state);
void mp_roster_push(mp_core *core, const char *bare, size_t bare_len,
                    const struct mp_roster_item *item, uint64_t ver, int removed);

/* iq.c */
int mp_iq_dispatch(mp_core *core, mp_cstream *from, const mp_frame *f, int target,
                   const char *to_prepped);
int mp_modules_load(mp_core *core);
/* Handlers by key "type|target|ns|name" (component.c uses "type|c:label|ns|name"). */
mp_iq_handler *mp_iq_handler_find(mp_core *core, const char *key, size_t len);
int mp_iq_handler_add(mp_core *core, struct mp_module *m, const char *key, size_t len,
                      int (*fn)(struct mp_iq *, void *), void *ud);
void mp_modules_unload(mp_core *core);

/* throttle.c: failed logins per IP and per account */
int mp_throttle_check(mp_core *core, const char *ip, const char *account); /* 1 = refuse */
int mp_throttle_failure(mp_core *core, const char *ip, const char *account); /* delay ms */
void mp_throttle_success(mp_core *core, const char *account);
int mp_throttle_init(mp_core *core);
void mp_throttle_free(mp_core *core);

/* register.c: in-band registration (XEP-0077) */
/* An <iq/> carrying <query xmlns='jabber:iq:register'/> on a stream not yet authenticated. */
void mp_register_preauth(mp_core *core, mp_cstream *s, const mp_xnode *iq, const mp_xnode *query);
void mp_register_free(mp_core *core);

#endif
