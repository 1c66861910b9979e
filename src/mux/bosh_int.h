/* BOSH (XEP-0124, XEP-0206) without sockets: the parser of the <body/> wrapper and the request
 * window of one session (in-order processing by rid, requests held for long polling, the
 * retransmission cache). bosh.c ties these to HTTP connections and the mux; the unit tests
 * drive them directly. */
#ifndef MP_MUX_BOSH_INT_H
#define MP_MUX_BOSH_INT_H

#include <stddef.h>
#include <stdint.h>

#define BOSH_NS "http://jabber.org/protocol/httpbind"
#define BOSH_NS_XBOSH "urn:xmpp:xbosh"
/* XEP-0124 §14.1: rids stay below 2^53 so that JavaScript clients can count them. */
#define BOSH_RID_MAX 9007199254740991ULL

/* ---- the <body/> wrapper ---- */

enum bosh_body_flags {
    BB_RID = 1 << 0,
    BB_SID = 1 << 1,
    BB_WAIT = 1 << 2,
    BB_HOLD = 1 << 3,
    BB_ACK = 1 << 4,
    BB_PAUSE = 1 << 5,
    BB_TERMINATE = 1 << 6, /* type='terminate' */
    BB_RESTART = 1 << 7,   /* xmpp:restart='true' */
    BB_TO = 1 << 8,
    BB_VER = 1 << 9,
    BB_XMPP_VERSION = 1 << 10,
};

typedef struct bosh_body {
    unsigned flags;
    uint64_t rid, ack;
    unsigned wait, hold, pause;
    unsigned ver_major, ver_minor;
    char sid[64];
    char to[1024];
    char lang[36];
    /* The child elements: bytes [child_off, child_off + child_len) of the request body. */
    size_t child_off, child_len;
} bosh_body;

/* Parse a request body: a well-formed document whose root is <body/> in the BOSH namespace,
 * no DTD. Attribute values that do not fit or do not parse make it invalid. Returns 0 or
 * MP_EINVAL (the client gets bad-request). */
int bosh_parse_body(const char *p, size_t n, bosh_body *out);

/* ---- the request window ---- */

/* A request the session owes an answer. Held: processed, waiting for output or for `wait` to
 * pass. Early: its rid is ahead of a missing one; its payload is kept until the gap fills. */
typedef struct bosh_req {
    uint64_t rid;
    uint64_t conn;     /* the HTTP connection waiting (mux connection id) */
    uint64_t since_ms; /* arrival */
    int processed;
    /* early requests only: what to do once it is its turn */
    char *payload;
    size_t len;
    unsigned flags; /* BB_* of its <body/> */
    unsigned pause;
    uint64_t ack;
} bosh_req;

typedef struct bosh_cached {
    uint64_t rid;
    uint64_t sent_ms;
    char *data; /* the whole response body */
    size_t len;
} bosh_cached;

typedef struct bosh_win {
    uint64_t next_rid; /* the rid to process next */
    unsigned requests, hold;
    bosh_req *out; /* owed answers, by rid: the processed (held) ones first */
    unsigned nout, cap_out;
    bosh_cached *cache; /* `requests` most recent answers, oldest first */
    unsigned ncache;
} bosh_win;

/* The first rid expected is first_rid (the session creation request's rid is processed as
 * first_rid). Returns 0 or MP_ENOMEM. */
int bosh_win_init(bosh_win *w, uint64_t first_rid, unsigned requests, unsigned hold);
void bosh_win_free(bosh_win *w);

enum bosh_verdict {
    BOSH_V_PROCESS,    /* the rid expected next: process it now */
    BOSH_V_EARLY,      /* within the window, after a gap: keep it for later */
    BOSH_V_RESEND,     /* answered already: send the cached answer again */
    BOSH_V_REATTACH,   /* owed but unanswered (held or early): the new connection waits instead */
    BOSH_V_NOT_FOUND,  /* outside the window, or its answer is no longer cached */
    BOSH_V_OVERACTIVE, /* more simultaneous requests than `requests` */
};

/* What to do with a request of this rid. exempt: it pauses or terminates the session, which
 * XEP-0124 §11 allows as one request over the limit. *cached is set for BOSH_V_RESEND, *owed
 * (an index in w->out) for BOSH_V_REATTACH. */
enum bosh_verdict bosh_win_classify(const bosh_win *w, uint64_t rid, int exempt,
                                    const bosh_cached **cached, unsigned *owed);

/* Record a request as owed. For a processed one (rid == next_rid) next_rid moves on. An early
 * one takes ownership of payload (malloc'd, may be NULL). Returns 0 or MP_ENOMEM. */
int bosh_win_add(bosh_win *w, const bosh_req *r);

/* The early request whose turn has come (rid == next_rid), or NULL. The caller processes it
 * and calls bosh_win_promote. */
bosh_req *bosh_win_due(bosh_win *w);
/* Mark the due request processed (held); its payload is freed. */
void bosh_win_promote(bosh_win *w, bosh_req *r);

/* Processed requests waiting for an answer, and early ones. */
unsigned bosh_win_held(const bosh_win *w);
unsigned bosh_win_early(const bosh_win *w);
/* The held request to answer next (lowest rid), or NULL. */
bosh_req *bosh_win_oldest(bosh_win *w);

/* The oldest held request was answered with data (malloc'd, owned by the window from now on):
 * it leaves the owed list and enters the cache, pushing out the oldest cached answer. */
void bosh_win_answered(bosh_win *w, char *data, size_t len, uint64_t now_ms);

/* The client acknowledged every answer up to ack: they need not be kept (XEP-0124 §9.2). */
void bosh_win_acked(bosh_win *w, uint64_t ack);

/* The cached answer for rid, or NULL. */
const bosh_cached *bosh_win_cached(const bosh_win *w, uint64_t rid);

/* The highest rid received with every lower one received too. */
static inline uint64_t
bosh_win_last_in_order(const bosh_win *w)
{
    return w->next_rid - 1;
}

/* Bytes held by the window besides the struct (the cache and early payloads). */
size_t bosh_win_memory(const bosh_win *w);

#endif
