/*
 * xmppload — a lean, single-threaded XMPP client load generator.
 *
 * One epoll loop drives every connection; XMPP is "parsed" by a tiny tag
 * scanner that tracks element depth and hands each complete top-level stanza
 * (child of <stream:stream>) to a handler that classifies it by simple string
 * matching.  No DOM, no allocation per stanza.
 *
 * Honesty rules this program follows:
 *   - every count it reports is of stanzas it actually read off a socket and
 *     matched (message bodies / presence status carry "sender seq timestamp");
 *   - every latency is now() minus the CLOCK_MONOTONIC timestamp carried inside
 *     the received stanza (sender and receiver live in this one process);
 *   - lost = sent - received, measured after a drain period.
 *
 * Scenarios: login, idle, msg, presence, muc (see usage()).
 *
 * Magpie's copy (bench/xmppload.c, from ../shared/bench/loadgen) adds --ws PATH: the same
 * scenarios over WebSocket (RFC 7395), each element in one text frame, so the web transport
 * can be compared with TCP on the same server in the same run.
 *
 * It also adds the muc scenario (XEP-0045 group chat fan-out, used by bench/muc.sh): the users
 * are split into rooms of --room-size occupants; the first user of each room creates it as an
 * instant room (empty muc#owner form, XEP-0045 10.1.2), then the others join (asking for no
 * history), at most --join-concurrency in flight; once every self-presence (status 110) is in and
 * the occupant-presence flood has been quiet for 1 s, the first --senders occupants of each room
 * send groupchat messages to their room. Every occupant (the sender too: the room reflects it)
 * counts each stamped message once, so expected = sent x occupants of the room. Two phases in one
 * run: a fixed offered load (-r msgs/s in total, for the fan-out latency), drained, then a closed
 * loop with --inflight messages in flight (the delivery capacity).
 * Output: one JSON line on stdout, a human summary on stderr.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

/* ------------------------------------------------------------------ util */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "xmppload: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(2);
}

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (!q && n)
        die("out of memory");
    return q;
}

/* Log-linear latency histogram in microseconds: exact below 128 us, then 64
 * sub-buckets per power of two (~1.6% resolution), up to 2^40 us. */
#define H_SUB 128
#define H_N (H_SUB + 64 * 64)
struct hist {
    uint64_t b[H_N];
    uint64_t n, max;
};

static int h_idx(uint64_t v)
{
    if (v < H_SUB)
        return (int)v;
    int msb = 63 - __builtin_clzll(v);
    int shift = msb - 6;
    int i = H_SUB + (shift - 1) * 64 + (int)((v >> shift) - 64);
    return i < H_N ? i : H_N - 1;
}

static double h_val(int i)
{
    if (i < H_SUB)
        return i;
    int shift = (i - H_SUB) / 64 + 1;
    uint64_t m = (uint64_t)((i - H_SUB) % 64 + 64);
    return ((double)(m << shift) + (double)((m + 1) << shift)) / 2.0;
}

static void h_add(struct hist *h, uint64_t us)
{
    h->b[h_idx(us)]++;
    h->n++;
    if (us > h->max)
        h->max = us;
}

/* value (ms) at quantile q */
static double h_q(const struct hist *h, double q)
{
    if (!h->n)
        return 0;
    uint64_t want = (uint64_t)ceil(q * (double)h->n);
    if (want < 1)
        want = 1;
    uint64_t acc = 0;
    for (int i = 0; i < H_N; i++) {
        acc += h->b[i];
        if (acc >= want) {
            double v = h_val(i);
            if (v > (double)h->max)
                v = (double)h->max;
            return v / 1000.0;
        }
    }
    return (double)h->max / 1000.0;
}

/* ------------------------------------------------------------- options */

enum scenario { SC_LOGIN, SC_IDLE, SC_MSG, SC_PRESENCE, SC_MUC };
static const char *sc_names[] = {"login", "idle", "msg", "presence", "muc"};
#define N_SCENARIOS 5

static struct {
    const char *host;
    int port;
    const char *domain;
    const char *prefix;
    const char *password;
    const char *resource;
    const char *label;
    int users;
    int first;
    int concurrency;
    enum scenario sc;
    double duration;
    double rate;      /* msgs or presence updates per second, 0 = closed loop */
    int window;       /* closed loop: outstanding stanzas per sender */
    int inflight;     /* closed loop, global: outstanding msgs / presence updates in total */
    int body_size;
    int contacts;     /* presence: roster size per user (ring) */
    int roster_get;
    int bidir;
    int src_ips;
    int scram;
    double settle;
    double drain;
    double login_timeout;
    int pids[64];
    int npids;
    int quiet;
    const char *ws_path; /* non-NULL: RFC 7395 WebSocket on this path instead of raw TCP */
    /* muc */
    int room_size;       /* occupants per room */
    int senders;         /* senders per room: the first S occupants */
    int join_conc;       /* joins in flight */
    const char *muc_service;  /* conference.<domain> */
    const char *room_prefix;  /* room JIDs <prefix><n>@service */
    double max_duration; /* closed-loop phase seconds (0: skip) */
    double join_timeout;
} opt = {
    .host = "127.0.0.1",
    .port = 25222,
    .domain = "localhost",
    .prefix = "user",
    .password = "secret",
    .resource = "bench",
    .label = "",
    .users = 100,
    .first = 1,
    .concurrency = 100,
    .sc = SC_LOGIN,
    .duration = 10,
    .rate = 0,
    .window = 4,
    .body_size = 64,
    .contacts = 10,
    .roster_get = 1,
    .src_ips = 4,
    .settle = 3,
    .drain = 10,
    .login_timeout = 300,
    .room_size = 10,
    .senders = 0,
    .join_conc = 50,
    .max_duration = 10,
    .join_timeout = 900,
};

/* ------------------------------------------------------------ connection */

enum cstate {
    ST_IDLE, ST_CONNECTING, ST_WSHS, ST_FEAT1, ST_SASL, ST_FEAT2, ST_BIND, ST_SESSION,
    ST_ROSTER, ST_READY, ST_DONE, ST_FAILED
};

struct conn {
    int fd;
    int idx;
    uint8_t st;
    uint8_t need_session;
    uint8_t want_out;
    uint8_t dirty;           /* queued output waiting for flush_dirty() */
    int depth;
    int32_t sstart;          /* offset of current top-level stanza or -1 */
    uint32_t scan;
    char *rb;
    uint32_t rlen, rcap;
    char *wb;
    uint32_t wlen, wcap, woff;
    char *wsb;               /* --ws: bytes read and not yet unframed */
    uint32_t wslen, wscap;
    uint64_t t0;
    char *jid;               /* full JID from bind */
    char *scram;             /* client-first-bare + saved state during SCRAM */
    uint8_t salted[20];
    /* traffic */
    uint32_t send_seq;       /* next sequence number we send */
    uint32_t recv_next;      /* msg: next expected seq from our partner */
    int64_t pending;         /* deliveries of our stanzas not yet seen */
    int fanout;              /* presence: contacts online at our last update */
    uint32_t roster_items;
    /* muc */
    int8_t muc;              /* enum mucst */
    uint32_t seq_base;       /* sender: first sequence number of the current phase */
    uint32_t *rseq;          /* receiver: next expected seq per sender slot of our room */
    uint64_t t_join;
};

enum mucst { MUC_OUT = 0, MUC_JOINING, MUC_CONFIGURING, MUC_JOINED, MUC_FAILED };

static struct conn *conns;
static int epfd;
static int *dirty_list;      /* connections with unflushed output */
static int ndirty;

/* --------------------------------------------------------------- stats */

static struct {
    int started, connected, ok, failed, inflight;
    uint64_t t_first, t_last_ok;
    struct hist login;
    /* traffic */
    uint64_t sent, recv, dup, errors, foreign, self_echo;
    uint64_t sent_expected; /* deliveries expected from what was sent */
    struct hist lat;
    uint64_t t_send_start, t_send_end, t_last_recv;
    /* presence initial phase */
    uint64_t init_pres, t_init_last;
    uint64_t server_closed, stream_errors;
    uint64_t roster_items_total;
    /* muc */
    int joined, join_failed, join_inflight, rooms_created;
    uint64_t join_pres, t_join_last, late;
    struct hist join;
    char first_error[256];
} S;

static int *room_occ;        /* muc: occupants joined and connected, per room */

static int sending;   /* traffic phase active */

static void note_error(const char *fmt, ...)
{
    if (S.first_error[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(S.first_error, sizeof S.first_error, fmt, ap);
    va_end(ap);
    for (char *p = S.first_error; *p; p++)
        if (*p == '"' || *p == '\\' || (unsigned char)*p < 32)
            *p = ' ';
}

/* --------------------------------------------------------------- I/O */

static void set_events(struct conn *c, int out)
{
    if (c->want_out == out)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0),
                             .data.u32 = (uint32_t)c->idx};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = (uint8_t)out;
}

static void conn_fail(struct conn *c, const char *why);

/* Output is queued and sent once per loop iteration (flush_dirty), so
 * several stanzas for one socket cost one send() syscall. */
static void cwrite_raw(struct conn *c, const char *buf, size_t len);

/* --ws: every element goes out as one masked text frame. The mask key is zero, which RFC 6455
 * allows (it only asks for one per frame) and leaves the payload as it is. */
static void cwrite(struct conn *c, const char *buf, size_t len)
{
    if (!opt.ws_path || c->st == ST_WSHS || c->st == ST_CONNECTING) {
        cwrite_raw(c, buf, len);
        return;
    }
    unsigned char h[14];
    size_t hl = 0;
    h[hl++] = 0x81;
    if (len < 126) {
        h[hl++] = (unsigned char)(0x80 | len);
    } else if (len < 65536) {
        h[hl++] = 0x80 | 126;
        h[hl++] = (unsigned char)(len >> 8);
        h[hl++] = (unsigned char)len;
    } else {
        h[hl++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            h[hl++] = (unsigned char)((uint64_t)len >> (8 * i));
    }
    memset(h + hl, 0, 4);
    hl += 4;
    cwrite_raw(c, (const char *)h, hl);
    cwrite_raw(c, buf, len);
}

static void cwrite_raw(struct conn *c, const char *buf, size_t len)
{
    if (c->fd < 0)
        return;
    if (c->wlen + len > c->wcap) {
        if (c->woff) {
            memmove(c->wb, c->wb + c->woff, c->wlen - c->woff);
            c->wlen -= c->woff;
            c->woff = 0;
        }
        while (c->wlen + len > c->wcap) {
            c->wcap = c->wcap ? c->wcap * 2 : 4096;
            c->wb = xrealloc(c->wb, c->wcap);
        }
    }
    memcpy(c->wb + c->wlen, buf, len);
    c->wlen += (uint32_t)len;
    if (!c->dirty && !c->want_out) {
        c->dirty = 1;
        dirty_list[ndirty++] = c->idx;
    }
}

static void cflush(struct conn *c)
{
    while (c->woff < c->wlen) {
        ssize_t n = send(c->fd, c->wb + c->woff, c->wlen - c->woff, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                set_events(c, 1);
                return;
            }
            conn_fail(c, "write error");
            return;
        }
        c->woff += (uint32_t)n;
    }
    c->wlen = c->woff = 0;
    set_events(c, 0);
}

static void flush_dirty(void)
{
    for (int i = 0; i < ndirty; i++) {
        struct conn *c = &conns[dirty_list[i]];
        c->dirty = 0;
        if (c->fd >= 0 && c->st != ST_CONNECTING)
            cflush(c);
    }
    ndirty = 0;
}

static void cprintf(struct conn *c, const char *fmt, ...)
{
    char buf[8192];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0 || n >= (int)sizeof buf)
        die("stanza too long");
    cwrite(c, buf, (size_t)n);
}

static void conn_close(struct conn *c)
{
    if (c->fd >= 0) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
    }
    free(c->rb);
    c->rb = NULL;
    c->rlen = c->rcap = 0;
    free(c->wb);
    c->wb = NULL;
    c->wlen = c->wcap = c->woff = 0;
    free(c->wsb);
    c->wsb = NULL;
    c->wslen = c->wscap = 0;
    free(c->scram);
    c->scram = NULL;
}

static int in_login(const struct conn *c)
{
    return c->st >= ST_CONNECTING && c->st <= ST_SESSION;
}

static void conn_fail(struct conn *c, const char *why)
{
    if (c->st == ST_FAILED || c->st == ST_DONE)
        return;
    if (in_login(c)) {
        S.failed++;
        S.inflight--;
        note_error("user%d login: %s", c->idx + opt.first, why);
    } else {
        note_error("user%d after login: %s", c->idx + opt.first, why);
        S.server_closed++;
    }
    if (c->muc == MUC_JOINED)
        room_occ[c->idx / opt.room_size]--;
    if (c->muc == MUC_JOINING || c->muc == MUC_CONFIGURING) {
        S.join_failed++;
        S.join_inflight--;
    }
    c->muc = MUC_FAILED;
    c->st = ST_FAILED;
    conn_close(c);
}

/* ----------------------------------------------------------- XML helpers */

static void b64enc(const unsigned char *in, int len, char *out)
{
    EVP_EncodeBlock((unsigned char *)out, in, len);
}

static int b64dec(const char *in, int len, unsigned char *out)
{
    while (len > 0 && (in[len - 1] == '\n' || in[len - 1] == '\r' || in[len - 1] == ' '))
        len--;
    int n = EVP_DecodeBlock(out, (const unsigned char *)in, len);
    if (n < 0)
        return -1;
    while (len > 0 && in[len - 1] == '=') { /* DecodeBlock counts padding */
        n--;
        len--;
    }
    return n;
}

/* attribute value from the first tag of stanza s; returns length or -1 */
static int get_attr(const char *s, const char *name, char *out, int cap)
{
    const char *end = strchr(s, '>');
    size_t nl = strlen(name);
    const char *p = s;
    while (p && p < end) {
        p = strstr(p, name);
        if (!p || p >= end)
            return -1;
        if (p[-1] == ' ' && p[nl] == '=' && (p[nl + 1] == '\'' || p[nl + 1] == '"')) {
            char q = p[nl + 1];
            const char *v = p + nl + 2;
            const char *e = strchr(v, q);
            if (!e)
                return -1;
            int l = (int)(e - v);
            if (l >= cap)
                l = cap - 1;
            memcpy(out, v, (size_t)l);
            out[l] = 0;
            return l;
        }
        p += nl;
    }
    return -1;
}

/* text between <tag> (or <tag ...>) and </tag> */
static const char *get_text(const char *s, const char *tag, int *len)
{
    char open[64], close[64];
    snprintf(open, sizeof open, "<%s", tag);
    snprintf(close, sizeof close, "</%s>", tag);
    const char *p = s;
    size_t ol = strlen(open);
    for (;;) {
        p = strstr(p, open);
        if (!p)
            return NULL;
        if (p[ol] == '>' || p[ol] == ' ')
            break;
        p += ol;
    }
    p = strchr(p, '>');
    if (!p || p[-1] == '/')
        return NULL;
    p++;
    const char *e = strstr(p, close);
    if (!e)
        return NULL;
    *len = (int)(e - p);
    return p;
}

/* ------------------------------------------------------------ protocol */

static void send_header(struct conn *c)
{
    if (opt.ws_path) {
        cprintf(c, "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='%s' version='1.0'/>",
                opt.domain);
        return;
    }
    cprintf(c, "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
               "xmlns:stream='http://etherx.jabber.org/streams' to='%s' "
               "version='1.0' xml:lang='en'>",
            opt.domain);
}

static void user_name(int idx, char *out, size_t cap)
{
    snprintf(out, cap, "%s%d", opt.prefix, idx + opt.first);
}

static void send_plain(struct conn *c)
{
    char user[128], raw[512], b64[800];
    user_name(c->idx, user, sizeof user);
    int n = snprintf(raw, sizeof raw, "%c%s%c%s", 0, user, 0, opt.password);
    b64enc((unsigned char *)raw, n, b64);
    cprintf(c, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>%s</auth>", b64);
}

/* SCRAM-SHA-1 salted-password cache: provisioning may use one salt for all
 * users (benchmark-only), which makes the client side cheap. */
struct saltc {
    char key[160];
    uint8_t salted[20];
};
static struct saltc salt_cache[256];
static int salt_next;

static void hmac_sha1(const uint8_t *key, int klen, const void *d, size_t dl, uint8_t out[20])
{
    unsigned int ol = 20;
    HMAC(EVP_sha1(), key, klen, d, dl, out, &ol);
}

static void send_scram_first(struct conn *c)
{
    char user[128], bare[256], gs2[300], b64[500];
    unsigned char nonce[18];
    char nb64[40];
    RAND_bytes(nonce, sizeof nonce);
    b64enc(nonce, sizeof nonce, nb64);
    user_name(c->idx, user, sizeof user);
    snprintf(bare, sizeof bare, "n=%s,r=%s", user, nb64);
    int n = snprintf(gs2, sizeof gs2, "n,,%s", bare);
    b64enc((unsigned char *)gs2, n, b64);
    free(c->scram);
    c->scram = strdup(bare);
    cprintf(c, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-1'>%s</auth>", b64);
}

static void scram_challenge(struct conn *c, const char *s)
{
    int len;
    const char *t = get_text(s, "challenge", &len);
    if (!t || !c->scram) {
        conn_fail(c, "bad SCRAM challenge");
        return;
    }
    unsigned char sf[1024];
    if (len > 1300) {
        conn_fail(c, "SCRAM challenge too long");
        return;
    }
    int sl = b64dec(t, len, sf);
    if (sl <= 0) {
        conn_fail(c, "bad SCRAM base64");
        return;
    }
    sf[sl] = 0;
    const char *r = strstr((char *)sf, "r="), *sa = strstr((char *)sf, ",s="), *it = strstr((char *)sf, ",i=");
    if (!r || !sa || !it) {
        conn_fail(c, "bad SCRAM server-first");
        return;
    }
    char nonce[256], salt[160];
    int rl = (int)(strchrnul(r, ',') - (r + 2));
    int sal = (int)(strchrnul(sa + 3, ',') - (sa + 3));
    if (rl >= (int)sizeof nonce || sal >= (int)sizeof salt) {
        conn_fail(c, "SCRAM fields too long");
        return;
    }
    memcpy(nonce, r + 2, (size_t)rl);
    nonce[rl] = 0;
    memcpy(salt, sa + 3, (size_t)sal);
    salt[sal] = 0;
    int iter = atoi(it + 3);
    const char *cn = strstr(c->scram, ",r=") + 3;
    if (strncmp(nonce, cn, strlen(cn)) != 0) {
        conn_fail(c, "SCRAM nonce mismatch");
        return;
    }
    char key[200];
    snprintf(key, sizeof key, "%s/%d", salt, iter);
    int found = -1;
    for (int i = 0; i < 256; i++)
        if (salt_cache[i].key[0] && strcmp(salt_cache[i].key, key) == 0) {
            found = i;
            break;
        }
    if (found >= 0) {
        memcpy(c->salted, salt_cache[found].salted, 20);
    } else {
        unsigned char rawsalt[128];
        int rsl = b64dec(salt, sal, rawsalt);
        if (rsl < 0) {
            conn_fail(c, "bad SCRAM salt");
            return;
        }
        PKCS5_PBKDF2_HMAC_SHA1(opt.password, (int)strlen(opt.password), rawsalt, rsl, iter, 20, c->salted);
        if (strlen(key) < sizeof salt_cache[0].key) {
            struct saltc *e = &salt_cache[salt_next++ & 255];
            strcpy(e->key, key);
            memcpy(e->salted, c->salted, 20);
        }
    }
    char cfwp[400];
    snprintf(cfwp, sizeof cfwp, "c=biws,r=%s", nonce);
    char authmsg[1600];
    int al = snprintf(authmsg, sizeof authmsg, "%s,%s,%s", c->scram, (char *)sf, cfwp);
    uint8_t ckey[20], skey[20], csig[20], proof[20];
    hmac_sha1(c->salted, 20, "Client Key", 10, ckey);
    unsigned int dl = 20;
    EVP_Digest(ckey, 20, skey, &dl, EVP_sha1(), NULL);
    hmac_sha1(skey, 20, authmsg, (size_t)al, csig);
    for (int i = 0; i < 20; i++)
        proof[i] = ckey[i] ^ csig[i];
    char pb64[40];
    b64enc(proof, 20, pb64);
    char final[600], fb64[900];
    int fl = snprintf(final, sizeof final, "%s,p=%s", cfwp, pb64);
    b64enc((unsigned char *)final, fl, fb64);
    /* keep AuthMessage to verify the server signature */
    free(c->scram);
    c->scram = strdup(authmsg);
    cprintf(c, "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>%s</response>", fb64);
}

static int scram_verify(struct conn *c, const char *s)
{
    int len;
    const char *t = get_text(s, "success", &len);
    if (!t || !c->scram)
        return 0;
    unsigned char sf[256];
    if (len > 300)
        return 0;
    int sl = b64dec(t, len, sf);
    if (sl <= 2 || sf[0] != 'v' || sf[1] != '=')
        return 0;
    sf[sl] = 0;
    uint8_t sk[20], ss[20];
    char b[40];
    hmac_sha1(c->salted, 20, "Server Key", 10, sk);
    hmac_sha1(sk, 20, c->scram, strlen(c->scram), ss);
    b64enc(ss, 20, b);
    return strcmp(b, (char *)sf + 2) == 0;
}

static void send_presence_initial(struct conn *c)
{
    cwrite(c, "<presence/>", 11);
}

static void login_done(struct conn *c)
{
    uint64_t t = now_ns();
    h_add(&S.login, (t - c->t0) / 1000);
    S.ok++;
    S.inflight--;
    S.t_last_ok = t;
    free(c->scram);
    c->scram = NULL;
    switch (opt.sc) {
    case SC_LOGIN:
        c->st = ST_READY;
        break;
    case SC_IDLE:
    case SC_MSG:
    case SC_MUC:
        send_presence_initial(c);
        c->st = ST_READY;
        break;
    case SC_PRESENCE:
        if (opt.roster_get) {
            cwrite(c, "<iq type='get' id='roster1'><query xmlns='jabber:iq:roster'/></iq>", 66);
            c->st = ST_ROSTER;
        } else {
            send_presence_initial(c);
            c->st = ST_READY;
        }
        break;
    }
}

static int ring_is_contact(int a, int b)
{
    /* contacts of a: a±1..a±K/2 (mod N) */
    int n = opt.users, h = opt.contacts / 2;
    int d = ((b - a) % n + n) % n;
    return d != 0 && (d <= h || d >= n - h);
}

static void send_message(struct conn *from);
static void send_presence_update(struct conn *from);

static void on_muc_message(struct conn *c, const char *s);
static void on_muc_presence(struct conn *c, const char *s);

static void on_message(struct conn *c, const char *s)
{
    char type[32];
    if (get_attr(s, "type", type, sizeof type) > 0 && strcmp(type, "error") == 0) {
        S.errors++;
        note_error("message error: %.120s", s);
        return;
    }
    if (opt.sc == SC_MUC) {
        on_muc_message(c, s);
        return;
    }
    int len;
    const char *b = get_text(s, "body", &len);
    int sender;
    unsigned seq;
    unsigned long long ts;
    if (!b || sscanf(b, "M %d %u %llu", &sender, &seq, &ts) != 3 || sender < 0 || sender >= opt.users) {
        S.foreign++;
        return;
    }
    uint64_t t = now_ns();
    /* pair partner check: only our partner sends to us */
    if ((sender ^ 1) != c->idx) {
        S.foreign++;
        return;
    }
    if (seq >= c->recv_next) {
        c->recv_next = seq + 1;
        S.recv++;
        h_add(&S.lat, (t - ts) / 1000);
        S.t_last_recv = t;
    } else {
        S.dup++;
    }
    struct conn *snd = &conns[sender];
    snd->pending--;
    if (sending && opt.rate <= 0 && !opt.inflight && snd->pending < opt.window && snd->st == ST_READY)
        send_message(snd);
}

static void on_presence(struct conn *c, const char *s)
{
    char type[32];
    if (opt.sc == SC_MUC) {
        on_muc_presence(c, s);
        return;
    }
    if (get_attr(s, "type", type, sizeof type) > 0) {
        if (strcmp(type, "error") == 0) {
            S.errors++;
            note_error("presence error: %.120s", s);
        }
        return; /* unavailable/subscribe/... are not what we count */
    }
    int len;
    const char *b = get_text(s, "status", &len);
    int sender;
    unsigned seq;
    unsigned long long ts;
    if (!b || sscanf(b, "P %d %u %llu", &sender, &seq, &ts) != 3 || sender < 0 || sender >= opt.users) {
        /* unstamped: initial presence or probe answer; count it only when it
         * comes from one of our roster contacts */
        char from[256];
        size_t pl = strlen(opt.prefix);
        if (get_attr(s, "from", from, sizeof from) > 0 && strncmp(from, opt.prefix, pl) == 0) {
            int fi = atoi(from + pl) - opt.first;
            if (fi == c->idx) {
                S.self_echo++;
            } else if (fi >= 0 && fi < opt.users && ring_is_contact(c->idx, fi)) {
                S.init_pres++;
                S.t_init_last = now_ns();
            } else {
                S.foreign++;
            }
        } else {
            S.foreign++;
        }
        return;
    }
    uint64_t t = now_ns();
    if (sender == c->idx) {
        S.self_echo++;
        return;
    }
    if (!ring_is_contact(c->idx, sender)) {
        S.foreign++;
        return;
    }
    S.recv++;
    h_add(&S.lat, (t - ts) / 1000);
    S.t_last_recv = t;
    struct conn *snd = &conns[sender];
    snd->pending--;
    if (sending && opt.rate <= 0 && !opt.inflight && snd->pending <= (int64_t)snd->fanout * (opt.window - 1) &&
        snd->st == ST_READY)
        send_presence_update(snd);
}

static void muc_joined(struct conn *c);

static void on_iq_ready(struct conn *c, const char *s)
{
    char type[16], id[128], from[512];
    if (get_attr(s, "type", type, sizeof type) <= 0)
        return;
    if (c->muc == MUC_CONFIGURING && get_attr(s, "id", id, sizeof id) > 0 && strcmp(id, "cfg1") == 0) {
        if (strcmp(type, "result") == 0) {
            muc_joined(c);
        } else {
            note_error("user%d: instant room configuration refused: %.150s", c->idx + opt.first, s);
            c->muc = MUC_FAILED;
            S.join_failed++;
            S.join_inflight--;
        }
        return;
    }
    if (strcmp(type, "get") && strcmp(type, "set"))
        return;
    if (get_attr(s, "id", id, sizeof id) < 0)
        id[0] = 0;
    int hf = get_attr(s, "from", from, sizeof from) > 0;
    if (strstr(s, "urn:xmpp:ping"))
        cprintf(c, "<iq type='result' id='%s'%s%s%s/>", id, hf ? " to='" : "", hf ? from : "", hf ? "'" : "");
    else
        cprintf(c, "<iq type='error' id='%s'%s%s%s><error type='cancel'><service-unavailable "
                   "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
                id, hf ? " to='" : "", hf ? from : "", hf ? "'" : "");
}

static int session_required(const char *s)
{
    const char *p = strstr(s, "urn:ietf:params:xml:ns:xmpp-session");
    if (!p)
        return 0;
    const char *gt = strchr(p, '>');
    if (!gt)
        return 0;
    if (gt[-1] == '/')
        return 1;
    const char *end = strstr(gt, "</session>");
    const char *o = strstr(gt, "<optional");
    return !(o && (!end || o < end));
}

static void handle_stanza(struct conn *c, const char *s)
{
    if (strncmp(s, "<stream:error", 13) == 0) {
        S.stream_errors++;
        char buf[200];
        snprintf(buf, sizeof buf, "stream error: %.150s", s);
        conn_fail(c, buf);
        return;
    }
    switch (c->st) {
    case ST_FEAT1:
        if (strncmp(s, "<stream:features", 16))
            return;
        if (opt.scram) {
            if (!strstr(s, ">SCRAM-SHA-1<")) {
                conn_fail(c, "server does not offer SCRAM-SHA-1");
                return;
            }
            send_scram_first(c);
        } else {
            if (!strstr(s, ">PLAIN<")) {
                conn_fail(c, strstr(s, "<required") ? "server requires STARTTLS (disable it for benchmarks)"
                                                    : "server does not offer PLAIN");
                return;
            }
            send_plain(c);
        }
        c->st = ST_SASL;
        return;
    case ST_SASL:
        if (strncmp(s, "<success", 8) == 0) {
            if (opt.scram && !scram_verify(c, s)) {
                conn_fail(c, "SCRAM server signature mismatch");
                return;
            }
            send_header(c);
            c->st = ST_FEAT2;
        } else if (strncmp(s, "<challenge", 10) == 0 && opt.scram) {
            scram_challenge(c, s);
        } else if (strncmp(s, "<failure", 8) == 0) {
            char buf[200];
            snprintf(buf, sizeof buf, "SASL failure: %.150s", s);
            conn_fail(c, buf);
        }
        return;
    case ST_FEAT2:
        if (strncmp(s, "<stream:features", 16))
            return;
        c->need_session = (uint8_t)session_required(s);
        cprintf(c, "<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                   "<resource>%s</resource></bind></iq>",
                opt.resource);
        c->st = ST_BIND;
        return;
    case ST_BIND: {
        char id[32], type[16];
        if (strncmp(s, "<iq", 3) || get_attr(s, "id", id, sizeof id) < 0 || strcmp(id, "bind1"))
            return;
        get_attr(s, "type", type, sizeof type);
        int jl;
        const char *j = get_text(s, "jid", &jl);
        if (strcmp(type, "result") || !j) {
            conn_fail(c, "bind failed");
            return;
        }
        c->jid = xrealloc(c->jid, (size_t)jl + 1);
        memcpy(c->jid, j, (size_t)jl);
        c->jid[jl] = 0;
        if (c->need_session) {
            cwrite(c, "<iq type='set' id='sess1'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>", 84);
            c->st = ST_SESSION;
        } else {
            login_done(c);
        }
        return;
    }
    case ST_SESSION: {
        char id[32], type[16];
        if (strncmp(s, "<iq", 3) || get_attr(s, "id", id, sizeof id) < 0 || strcmp(id, "sess1"))
            return;
        get_attr(s, "type", type, sizeof type);
        if (strcmp(type, "result")) {
            conn_fail(c, "session failed");
            return;
        }
        login_done(c);
        return;
    }
    case ST_ROSTER: {
        char id[32];
        if (strncmp(s, "<iq", 3) == 0 && get_attr(s, "id", id, sizeof id) > 0 && strcmp(id, "roster1") == 0) {
            uint32_t n = 0;
            for (const char *p = s; (p = strstr(p, "<item")) != NULL; p += 5)
                if (p[5] == ' ' || p[5] == '>' || p[5] == '/')
                    n++;
            c->roster_items = n;
            S.roster_items_total += n;
            send_presence_initial(c);
            c->st = ST_READY;
            return;
        }
        if (strncmp(s, "<presence", 9) == 0)
            on_presence(c, s);
        return;
    }
    case ST_READY:
        if (strncmp(s, "<message", 8) == 0)
            on_message(c, s);
        else if (strncmp(s, "<presence", 9) == 0)
            on_presence(c, s);
        else if (strncmp(s, "<iq", 3) == 0)
            on_iq_ready(c, s);
        return;
    default:
        return;
    }
}

/* Tag scanner: finds complete top-level stanzas in c->rb. */
static void parse(struct conn *c)
{
    uint32_t p = c->scan;
    int idx = c->idx;
    while (p < c->rlen) {
        char *lt = memchr(c->rb + p, '<', c->rlen - p);
        if (!lt) {
            p = c->rlen;
            break;
        }
        uint32_t t = (uint32_t)(lt - c->rb);
        if (t + 1 >= c->rlen) {
            p = t;
            break;
        }
        char ch = c->rb[t + 1];
        if (ch == '?' || ch == '!') {
            const char *term = ch == '?' ? "?>" : (c->rlen - t >= 4 && memcmp(lt, "<!--", 4) == 0) ? "-->"
                                              : (c->rlen - t >= 9 && memcmp(lt, "<![CDATA[", 9) == 0) ? "]]>"
                                                                                                     : ">";
            char *e = memmem(lt + 2, c->rlen - t - 2, term, strlen(term));
            if (!e) {
                p = t;
                break;
            }
            p = (uint32_t)(e - c->rb) + (uint32_t)strlen(term);
            continue;
        }
        uint32_t i = t + 1;
        char q = 0;
        for (; i < c->rlen; i++) {
            char x = c->rb[i];
            if (q) {
                if (x == q)
                    q = 0;
            } else if (x == '"' || x == '\'') {
                q = x;
            } else if (x == '>') {
                break;
            }
        }
        if (i >= c->rlen) {
            p = t;
            break;
        }
        uint32_t e = i;
        p = e + 1;
        if (ch == '/') {
            c->depth--;
            if (c->depth == 1 && c->sstart >= 0) {
                char save = c->rb[p];
                c->rb[p] = 0;
                handle_stanza(c, c->rb + c->sstart);
                if (conns[idx].rb == NULL)
                    return; /* connection closed by handler */
                c->rb[p] = save;
                c->sstart = -1;
            } else if (c->depth <= 0) {
                conn_fail(c, "server closed stream");
                return;
            }
        } else if (e - t >= 14 && memcmp(lt, "<stream:stream", 14) == 0) {
            c->depth = 1;
            c->sstart = -1;
        } else if (c->rb[e - 1] == '/') {
            if (c->depth == 1) {
                char save = c->rb[p];
                c->rb[p] = 0;
                handle_stanza(c, c->rb + t);
                if (conns[idx].rb == NULL)
                    return;
                c->rb[p] = save;
            }
        } else {
            if (c->depth == 1)
                c->sstart = (int32_t)t;
            c->depth++;
        }
    }
    uint32_t keep = c->sstart >= 0 ? (uint32_t)c->sstart : p;
    if (keep > 0) {
        memmove(c->rb, c->rb + keep, c->rlen - keep);
        c->rlen -= keep;
        if (c->sstart >= 0)
            c->sstart = 0;
        p -= keep;
    }
    c->scan = p;
}

/* --ws: the bytes just read (the tail of rb from wsfrom) hold frames; move them to wsb, then
 * put the payloads of whole frames back into rb for the tag scanner. During the handshake
 * the HTTP response is consumed here too. Returns -1 when the connection failed. */
static uint32_t wsfrom;

static int ws_unframe(struct conn *c)
{
    uint32_t n = c->rlen - wsfrom;
    if (c->wslen + n > c->wscap) {
        while (c->wslen + n > c->wscap)
            c->wscap = c->wscap ? c->wscap * 2 : 8192;
        c->wsb = xrealloc(c->wsb, c->wscap);
    }
    memcpy(c->wsb + c->wslen, c->rb + wsfrom, n);
    c->wslen += n;
    c->rlen = wsfrom;
    uint32_t p = 0;
    if (c->st == ST_WSHS) {
        char *e = memmem(c->wsb, c->wslen, "\r\n\r\n", 4);
        if (!e)
            return 0;
        if (c->wslen < 12 || memcmp(c->wsb + 9, "101", 3) != 0) {
            conn_fail(c, "WebSocket upgrade refused");
            return -1;
        }
        p = (uint32_t)(e - c->wsb) + 4;
        c->st = ST_FEAT1;
        c->depth = 1; /* no stream element: every top-level element is a stanza */
        send_header(c);
    }
    for (;;) {
        if (c->wslen - p < 2)
            break;
        unsigned char *h = (unsigned char *)c->wsb + p;
        int op = h[0] & 0x0f;
        uint64_t len = h[1] & 0x7f;
        uint32_t hl = 2;
        if (len == 126) {
            if (c->wslen - p < 4)
                break;
            len = ((uint64_t)h[2] << 8) | h[3];
            hl = 4;
        } else if (len == 127) {
            if (c->wslen - p < 10)
                break;
            len = 0;
            for (int i = 0; i < 8; i++)
                len = (len << 8) | h[2 + i];
            hl = 10;
        }
        if (h[1] & 0x80) {
            conn_fail(c, "masked frame from server");
            return -1;
        }
        if (c->wslen - p - hl < len)
            break;
        if (op == 8) {
            conn_fail(c, "server closed WebSocket");
            return -1;
        }
        if (op == 9) { /* ping: pong with the same payload */
            unsigned char ph[6] = {0x8a, (unsigned char)(0x80 | (len & 0x7f)), 0, 0, 0, 0};
            cwrite_raw(c, (const char *)ph, 6);
            cwrite_raw(c, c->wsb + p + hl, (size_t)len);
        } else if (op == 0 || op == 1) {
            if (c->rlen + len + 1 > c->rcap) {
                while (c->rlen + len + 1 > c->rcap)
                    c->rcap = c->rcap ? c->rcap * 2 : 8192;
                c->rb = xrealloc(c->rb, c->rcap);
            }
            memcpy(c->rb + c->rlen, c->wsb + p + hl, (size_t)len);
            c->rlen += (uint32_t)len;
        }
        p += hl + (uint32_t)len;
    }
    memmove(c->wsb, c->wsb + p, c->wslen - p);
    c->wslen -= p;
    return 0;
}

static void on_readable(struct conn *c)
{
    for (int rounds = 0; rounds < 4; rounds++) {
        if (c->rcap - c->rlen < 4097) {
            c->rcap = c->rcap ? c->rcap * 2 : 8192;
            c->rb = xrealloc(c->rb, c->rcap);
        }
        wsfrom = c->rlen;
        ssize_t n = recv(c->fd, c->rb + c->rlen, c->rcap - c->rlen - 1, 0);
        if (n == 0) {
            conn_fail(c, "server closed connection");
            return;
        }
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            conn_fail(c, strerror(errno));
            return;
        }
        c->rlen += (uint32_t)n;
        if (opt.ws_path && ws_unframe(c) < 0)
            return;
        parse(c);
        if (c->fd < 0)
            return;
        if ((size_t)n < c->rcap - c->rlen - 1)
            return;
    }
}

/* ------------------------------------------------------------ traffic */

static char *padding;

static void send_message(struct conn *from)
{
    struct conn *to = &conns[from->idx ^ 1];
    if (!to->jid)
        return;
    uint64_t t = now_ns();
    cprintf(from, "<message to='%s' type='chat' id='m%u'><body>M %d %u %" PRIu64 " %s</body></message>", to->jid,
            from->send_seq, from->idx, from->send_seq, t, padding);
    from->send_seq++;
    from->pending++;
    S.sent++;
    S.sent_expected++;
}

static int online_contacts(int a)
{
    int n = opt.users, h = opt.contacts / 2, on = 0;
    for (int d = 1; d <= h; d++) {
        on += conns[(a + d) % n].st == ST_READY;
        on += conns[((a - d) % n + n) % n].st == ST_READY;
    }
    return on;
}

static void send_presence_update(struct conn *from)
{
    int on = online_contacts(from->idx);
    uint64_t t = now_ns();
    cprintf(from, "<presence><status>P %d %u %" PRIu64 " %s</status></presence>", from->idx, from->send_seq, t,
            padding);
    from->send_seq++;
    from->pending += on;
    from->fanout = on;
    S.sent++;
    S.sent_expected += (uint64_t)on;
}


/* ------------------------------------------------------------- muc */

static int room_of(int idx)
{
    return idx / opt.room_size;
}

static int slot_of(int idx)
{
    return idx % opt.room_size;
}

static int room_jid(int r, char *out, size_t cap)
{
    return snprintf(out, cap, "%s%d@%s", opt.room_prefix, r, opt.muc_service);
}

static void muc_send_join(struct conn *c)
{
    char room[256];
    room_jid(room_of(c->idx), room, sizeof room);
    if (!c->rseq)
        c->rseq = calloc((size_t)opt.senders, sizeof *c->rseq);
    if (!c->rseq)
        die("out of memory");
    /* no history on join: every server then sends the same stanzas, whatever it keeps */
    cprintf(c, "<presence to='%s/n%d'><x xmlns='http://jabber.org/protocol/muc'>"
               "<history maxstanzas='0'/></x></presence>",
            room, c->idx + opt.first);
    c->muc = MUC_JOINING;
    c->t_join = now_ns();
    S.join_inflight++;
}

static void muc_joined(struct conn *c)
{
    c->muc = MUC_JOINED;
    S.joined++;
    S.join_inflight--;
    room_occ[room_of(c->idx)]++;
    h_add(&S.join, (now_ns() - c->t_join) / 1000);
}

static void muc_join_failed(struct conn *c)
{
    if (c->muc == MUC_JOINING || c->muc == MUC_CONFIGURING) {
        S.join_failed++;
        S.join_inflight--;
    } else if (c->muc == MUC_JOINED) {
        room_occ[room_of(c->idx)]--;
    }
    c->muc = MUC_FAILED;
}

static int has_code(const char *s, const char *code)
{
    char a[32], b[32];
    snprintf(a, sizeof a, "code='%s'", code);
    snprintf(b, sizeof b, "code=\"%s\"", code);
    return strstr(s, a) || strstr(s, b);
}

static void on_muc_presence(struct conn *c, const char *s)
{
    char type[32], from[512], room[256], nick[32];
    int typed = get_attr(s, "type", type, sizeof type) > 0;
    if (typed && strcmp(type, "error") == 0) {
        S.errors++;
        note_error("user%d: presence error: %.150s", c->idx + opt.first, s);
        muc_join_failed(c);
        return;
    }
    int rl = room_jid(room_of(c->idx), room, sizeof room);
    if (get_attr(s, "from", from, sizeof from) <= 0 || strncmp(from, room, (size_t)rl) != 0 || from[rl] != '/') {
        S.foreign++; /* e.g. roster contacts' initial presence */
        return;
    }
    snprintf(nick, sizeof nick, "n%d", c->idx + opt.first);
    if (strcmp(from + rl + 1, nick) == 0 && has_code(s, "110")) {
        if (typed && strcmp(type, "unavailable") == 0) {
            note_error("user%d: removed from the room: %.150s", c->idx + opt.first, s);
            muc_join_failed(c);
        } else if (c->muc == MUC_JOINING) {
            if (has_code(s, "201")) {
                /* we created it: make it an instant room (XEP-0045 10.1.2) */
                S.rooms_created++;
                c->muc = MUC_CONFIGURING;
                cprintf(c, "<iq type='set' id='cfg1' to='%s'><query xmlns='http://jabber.org/protocol/muc#owner'>"
                           "<x xmlns='jabber:x:data' type='submit'/></query></iq>",
                        room);
            } else {
                muc_joined(c);
            }
        }
        return;
    }
    S.join_pres++;
    S.t_join_last = now_ns();
}

static void on_muc_message(struct conn *c, const char *s)
{
    int len;
    const char *b = get_text(s, "body", &len);
    int sender;
    unsigned seq;
    unsigned long long ts;
    if (!b || sscanf(b, "M %d %u %llu", &sender, &seq, &ts) != 3 || sender < 0 || sender >= opt.users ||
        room_of(sender) != room_of(c->idx) || slot_of(sender) >= opt.senders || !c->rseq) {
        S.foreign++; /* subjects, room notices, ... */
        return;
    }
    if (c->muc != MUC_JOINED) {
        S.foreign++; /* a join given up on (timeout) that the server completed later: not counted */
        return;
    }
    uint64_t t = now_ns();
    if (seq < conns[sender].seq_base) {
        S.late++; /* sent in the previous phase */
        return;
    }
    uint32_t *next = &c->rseq[slot_of(sender)];
    if (seq >= *next) {
        *next = seq + 1;
        S.recv++;
        h_add(&S.lat, (t - ts) / 1000);
        S.t_last_recv = t;
    } else {
        S.dup++;
    }
}

static void send_groupchat(struct conn *from)
{
    if (from->muc != MUC_JOINED)
        return;
    char room[256];
    int r = room_of(from->idx);
    room_jid(r, room, sizeof room);
    uint64_t t = now_ns();
    cprintf(from, "<message to='%s' type='groupchat' id='g%u'><body>M %d %u %" PRIu64 " %s</body></message>",
            room, from->send_seq, from->idx, from->send_seq, t, padding);
    from->send_seq++;
    S.sent++;
    S.sent_expected += (uint64_t)room_occ[r]; /* the sender's own copy included */
}

static void send_one(struct conn *c)
{
    if (opt.sc == SC_MSG)
        send_message(c);
    else if (opt.sc == SC_MUC)
        send_groupchat(c);
    else
        send_presence_update(c);
}

static int is_sender(int i)
{
    if (opt.sc == SC_PRESENCE)
        return 1;
    if (opt.sc == SC_MUC)
        return slot_of(i) < opt.senders && conns[i].muc == MUC_JOINED;
    if ((i ^ 1) >= opt.users)
        return 0;
    return opt.bidir || (i % 2 == 0);
}

/* ------------------------------------------------------------- connect */

static struct sockaddr_in dst;

static void start_conn(int i)
{
    struct conn *c = &conns[i];
    memset(c, 0, sizeof *c);
    c->idx = i;
    c->sstart = -1;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    S.started++;
    S.inflight++;
    c->t0 = now_ns();
    if (!S.t_first)
        S.t_first = c->t0;
    c->st = ST_CONNECTING;
    if (c->fd < 0) {
        conn_fail(c, strerror(errno));
        return;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (opt.src_ips > 1) {
        struct sockaddr_in src = {.sin_family = AF_INET};
        src.sin_addr.s_addr = htonl(0x7f000001u + (uint32_t)(i % opt.src_ips));
        setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        if (bind(c->fd, (struct sockaddr *)&src, sizeof src) < 0) {
            conn_fail(c, "bind source address");
            return;
        }
    }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u32 = (uint32_t)i};
    c->want_out = 1;
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
        conn_fail(c, "epoll_ctl");
        return;
    }
    if (connect(c->fd, (struct sockaddr *)&dst, sizeof dst) < 0 && errno != EINPROGRESS) {
        conn_fail(c, strerror(errno));
        return;
    }
}

static void on_connected(struct conn *c)
{
    int err = 0;
    socklen_t l = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
    if (err) {
        conn_fail(c, strerror(err));
        return;
    }
    S.connected++;
    set_events(c, 0);
    if (opt.ws_path) {
        c->st = ST_WSHS;
        cprintf(c, "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                   "Sec-WebSocket-Protocol: xmpp\r\n\r\n",
                opt.ws_path, opt.host, opt.port);
        return;
    }
    c->st = ST_FEAT1;
    send_header(c);
}

/* ------------------------------------------------------------ metering */

struct cpu {
    double lg, srv;
    unsigned long long sys_busy, sys_total;
    uint64_t t;
};

static long clk_tck;

static double proc_cpu(int pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p)
        return 0;
    unsigned long ut = 0, st = 0;
    /* after ") " : state(3) ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime(14) stime(15) */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return 0;
    return (double)(ut + st) / (double)clk_tck;
}

static long proc_rss_kb(int pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kb = atol(line + 6);
            break;
        }
    fclose(f);
    return kb;
}

static long servers_rss_kb(void)
{
    long s = 0;
    for (int i = 0; i < opt.npids; i++) {
        long r = proc_rss_kb(opt.pids[i]);
        if (r > 0)
            s += r;
    }
    return s;
}

static void cpu_snap(struct cpu *c)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    c->lg = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
            ru.ru_stime.tv_usec / 1e6;
    c->srv = 0;
    for (int i = 0; i < opt.npids; i++)
        c->srv += proc_cpu(opt.pids[i]);
    c->sys_busy = c->sys_total = 0;
    FILE *f = fopen("/proc/stat", "r");
    if (f) {
        unsigned long long v[10] = {0};
        if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6],
                   &v[7]) == 8) {
            for (int i = 0; i < 8; i++)
                c->sys_total += v[i];
            c->sys_busy = c->sys_total - v[3] - v[4];
        }
        fclose(f);
    }
    c->t = now_ns();
}

struct cpu_delta {
    double wall, lg, srv, lg_pct, srv_pct, sys_pct;
};

static struct cpu_delta cpu_diff(const struct cpu *a, const struct cpu *b)
{
    struct cpu_delta d;
    d.wall = (double)(b->t - a->t) / 1e9;
    d.lg = b->lg - a->lg;
    d.srv = b->srv - a->srv;
    d.lg_pct = d.wall > 0 ? 100.0 * d.lg / d.wall : 0;
    d.srv_pct = d.wall > 0 ? 100.0 * d.srv / d.wall : 0;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned long long tot = b->sys_total - a->sys_total;
    d.sys_pct = tot ? 100.0 * (double)ncpu * (double)(b->sys_busy - a->sys_busy) / (double)tot : 0;
    return d;
}

/* ------------------------------------------------------------- loop */

static volatile sig_atomic_t interrupted;
static void on_sig(int s)
{
    (void)s;
    interrupted = 1;
}

static void run_loop(int timeout_ms)
{
    static struct epoll_event evs[512];
    flush_dirty();
    int n = epoll_wait(epfd, evs, 512, timeout_ms);
    for (int k = 0; k < n; k++) {
        struct conn *c = &conns[evs[k].data.u32];
        if (c->fd < 0)
            continue;
        if (c->st == ST_CONNECTING) {
            if (evs[k].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
                on_connected(c);
            continue;
        }
        if (evs[k].events & EPOLLOUT)
            cflush(c);
        if (c->fd >= 0 && (evs[k].events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
            on_readable(c);
    }
    flush_dirty();
}

/* login phase: returns when all users are logged in or failed */
static void login_all(void)
{
    int next = 0;
    uint64_t deadline = now_ns() + (uint64_t)(opt.login_timeout * 1e9);
    while (!interrupted) {
        while (next < opt.users && S.inflight < opt.concurrency)
            start_conn(next++);
        if (S.ok + S.failed >= opt.users)
            break;
        if (now_ns() > deadline) {
            for (int i = 0; i < next; i++)
                if (in_login(&conns[i]))
                    conn_fail(&conns[i], "login timeout");
            for (; next < opt.users; next++) {
                S.failed++;
            }
            note_error("login phase timed out after %.0fs", opt.login_timeout);
            break;
        }
        run_loop(20);
    }
}

static void pump(double secs)
{
    uint64_t end = now_ns() + (uint64_t)(secs * 1e9);
    while (!interrupted && now_ns() < end)
        run_loop(20);
}

static void close_all(void)
{
    for (int i = 0; i < opt.users; i++) {
        struct conn *c = &conns[i];
        if (c->fd >= 0) {
            if (c->st == ST_READY || c->st == ST_ROSTER)
                send(c->fd, "</stream:stream>", 16, MSG_NOSIGNAL | MSG_DONTWAIT);
            c->st = ST_DONE;
            conn_close(c);
        }
        free(c->jid);
        c->jid = NULL;
        free(c->rseq);
        c->rseq = NULL;
    }
}

static void traffic(void);

/* muc: the creators make their rooms, then everyone else joins; returns when every join is
 * answered and the occupant-presence flood has been quiet for 1 s */
static void muc_join_all(void)
{
    uint64_t deadline = now_ns() + (uint64_t)(opt.join_timeout * 1e9);
    int nrooms = opt.users / opt.room_size;
    for (int r = 0; r < nrooms; r++) {
        struct conn *c = &conns[r * opt.room_size];
        if (c->st == ST_READY)
            muc_send_join(c);
    }
    while (!interrupted && S.join_inflight > 0 && now_ns() < deadline)
        run_loop(20);
    int next = 0;
    while (!interrupted && now_ns() < deadline) {
        while (next < opt.users && S.join_inflight < opt.join_conc) {
            struct conn *c = &conns[next++];
            if (slot_of(c->idx) == 0 || c->st != ST_READY)
                continue;
            if (conns[room_of(c->idx) * opt.room_size].muc != MUC_JOINED) {
                S.join_failed++; /* its room was not created */
                continue;
            }
            muc_send_join(c);
        }
        if (next >= opt.users && S.join_inflight == 0)
            break;
        run_loop(20);
    }
    if (S.join_inflight > 0) {
        note_error("%d joins unanswered after %.0fs", S.join_inflight, opt.join_timeout);
        for (int i = 0; i < opt.users; i++)
            if (conns[i].muc == MUC_JOINING || conns[i].muc == MUC_CONFIGURING)
                muc_join_failed(&conns[i]);
    }
    uint64_t q0 = now_ns();
    for (;;) {
        pump(0.25);
        uint64_t t = now_ns(), last = S.t_join_last > q0 ? S.t_join_last : q0;
        if (interrupted || t - q0 > 120000000000ull || t - last > 1000000000ull)
            break;
    }
}

struct phase {
    int ran;
    double rate, duration;
    int inflight;
    uint64_t sent, expected, recv, dup, late, errors, foreign;
    double send_span, span, p50, p99, p999, max;
    struct cpu_delta cpu;
};

static void phase_reset(void)
{
    S.sent = S.recv = S.dup = S.late = S.errors = S.foreign = S.self_echo = S.sent_expected = 0;
    S.t_last_recv = S.t_send_start = S.t_send_end = 0;
    memset(&S.lat, 0, sizeof S.lat);
    for (int i = 0; i < opt.users; i++)
        conns[i].seq_base = conns[i].send_seq;
}

static void muc_phase(struct phase *ph, double rate, int inflight, double duration)
{
    struct cpu a, b;
    opt.rate = rate;
    opt.inflight = inflight;
    opt.duration = duration;
    phase_reset();
    cpu_snap(&a);
    traffic();
    cpu_snap(&b);
    ph->ran = 1;
    ph->rate = rate;
    ph->inflight = inflight;
    ph->duration = duration;
    ph->sent = S.sent;
    ph->expected = S.sent_expected;
    ph->recv = S.recv;
    ph->dup = S.dup;
    ph->late = S.late;
    ph->errors = S.errors;
    ph->foreign = S.foreign;
    ph->send_span = S.t_send_end > S.t_send_start ? (double)(S.t_send_end - S.t_send_start) / 1e9 : 0;
    ph->span = S.t_last_recv > S.t_send_start ? (double)(S.t_last_recv - S.t_send_start) / 1e9 : 0;
    ph->p50 = h_q(&S.lat, 0.5);
    ph->p99 = h_q(&S.lat, 0.99);
    ph->p999 = h_q(&S.lat, 0.999);
    ph->max = (double)S.lat.max / 1000.0;
    ph->cpu = cpu_diff(&a, &b);
}

static int muc_phase_json(char *js, size_t cap, const char *pre, const struct phase *ph)
{
    double dps = ph->span > 0 ? (double)ph->recv / ph->span : 0;
    return snprintf(js, cap,
                    "\"%s_rate_target\":%.1f,\"%s_inflight\":%d,\"%s_duration_s\":%.1f,\"%s_sent\":%" PRIu64
                    ",\"%s_expected\":%" PRIu64 ",\"%s_received\":%" PRIu64 ",\"%s_lost\":%" PRId64
                    ",\"%s_dup_or_reordered\":%" PRIu64 ",\"%s_late\":%" PRIu64 ",\"%s_errors\":%" PRIu64
                    ",\"%s_foreign\":%" PRIu64 ",\"%s_sent_per_s\":%.1f,\"%s_delivered_per_s\":%.1f,"
                    "\"%s_lat_p50_ms\":%.3f,\"%s_lat_p99_ms\":%.3f,\"%s_lat_p999_ms\":%.3f,\"%s_lat_max_ms\":%.3f,"
                    "\"%s_wall_s\":%.3f,\"%s_lg_cpu_s\":%.3f,\"%s_srv_cpu_s\":%.3f,\"%s_lg_cpu_pct\":%.1f,"
                    "\"%s_srv_cpu_pct\":%.1f,\"%s_sys_busy_pct\":%.1f,\"%s_srv_us_per_delivery\":%.3f,",
                    pre, ph->rate, pre, ph->inflight, pre, ph->duration, pre, ph->sent, pre, ph->expected, pre,
                    ph->recv, pre, (int64_t)ph->expected - (int64_t)ph->recv, pre, ph->dup, pre, ph->late, pre,
                    ph->errors, pre, ph->foreign, pre, ph->send_span > 0 ? (double)ph->sent / ph->send_span : 0,
                    pre, dps, pre, ph->p50, pre, ph->p99, pre, ph->p999, pre, ph->max, pre, ph->cpu.wall, pre,
                    ph->cpu.lg, pre, ph->cpu.srv, pre, ph->cpu.lg_pct, pre, ph->cpu.srv_pct, pre, ph->cpu.sys_pct,
                    pre, ph->recv ? ph->cpu.srv * 1e6 / (double)ph->recv : 0);
}

static int muc_main(long rss0, double logins_per_s, const struct cpu_delta *dl)
{
    struct cpu c0, c1;
    cpu_snap(&c0);
    uint64_t t0 = now_ns();
    muc_join_all();
    double join_s = (double)(now_ns() - t0) / 1e9;
    cpu_snap(&c1);
    struct cpu_delta dj = cpu_diff(&c0, &c1);
    long rss1 = servers_rss_kb();
    int nrooms = opt.users / opt.room_size, full = 0;
    for (int r = 0; r < nrooms; r++)
        full += room_occ[r] == opt.room_size;
    uint64_t join_pres = S.join_pres;
    double rate = opt.rate, dur = opt.duration;
    int inflight = opt.inflight;
    struct phase fixed = {0}, max = {0};
    if (S.joined > 0 && rate > 0 && dur > 0)
        muc_phase(&fixed, rate, 0, dur);
    if (S.joined > 0 && inflight > 0 && opt.max_duration > 0)
        muc_phase(&max, 0, inflight, opt.max_duration);
    long rss2 = servers_rss_kb();
    close_all();

    static char js[8192];
    int n = snprintf(js, sizeof js,
                     "{\"tool\":\"xmppload\",\"scenario\":\"muc\",\"server\":\"%s\",\"users\":%d,"
                     "\"room_size\":%d,\"rooms\":%d,\"senders_per_room\":%d,\"body_size\":%d,"
                     "\"login_ok\":%d,\"login_failed\":%d,\"logins_per_s\":%.1f,\"login_srv_cpu_s\":%.3f,"
                     "\"joined\":%d,\"join_failed\":%d,\"rooms_created\":%d,\"rooms_full\":%d,"
                     "\"join_s\":%.3f,\"join_p50_ms\":%.3f,\"join_p99_ms\":%.3f,\"join_presence_recv\":%" PRIu64
                     ",\"join_srv_cpu_s\":%.3f,\"join_lg_cpu_pct\":%.1f,\"rss_before_kb\":%ld,"
                     "\"rss_joined_kb\":%ld,\"rss_after_kb\":%ld,",
                     opt.label, opt.users, opt.room_size, nrooms, opt.senders, opt.body_size, S.ok, S.failed,
                     logins_per_s, dl->srv, S.joined, S.join_failed, S.rooms_created, full, join_s, h_q(&S.join, 0.5),
                     h_q(&S.join, 0.99), join_pres, dj.srv, dj.lg_pct, rss0, rss1, rss2);
    if (fixed.ran)
        n += muc_phase_json(js + n, sizeof js - (size_t)n, "fixed", &fixed);
    if (max.ran)
        n += muc_phase_json(js + n, sizeof js - (size_t)n, "max", &max);
    snprintf(js + n, sizeof js - (size_t)n,
             "\"server_closed\":%" PRIu64 ",\"stream_errors\":%" PRIu64 ",\"first_error\":\"%s\",\"interrupted\":%d}",
             S.server_closed, S.stream_errors, S.first_error, (int)interrupted);
    printf("%s\n", js);
    fflush(stdout);
    if (!opt.quiet) {
        fprintf(stderr,
                "[%s] muc: %d users in %d rooms of %d, logins ok %d failed %d; joined %d failed %d in %.1f s "
                "(%d rooms full), occupant presence received %" PRIu64 "\n",
                opt.label, opt.users, nrooms, opt.room_size, S.ok, S.failed, S.joined, S.join_failed, join_s, full,
                join_pres);
        const struct phase *ps[2] = {&fixed, &max};
        const char *names[2] = {"fixed", "max"};
        for (int i = 0; i < 2; i++) {
            const struct phase *ph = ps[i];
            if (!ph->ran)
                continue;
            fprintf(stderr,
                    "  %s (%s): sent %" PRIu64 " (%.0f/s) expected %" PRIu64 " received %" PRIu64 " lost %" PRId64
                    " dup %" PRIu64 ": %.0f delivered/s, latency p50 %.2f p99 %.2f p99.9 %.2f max %.2f ms\n"
                    "    CPU: loadgen %.0f%% server %.0f%% machine %.0f%%, server %.2f us/delivery\n",
                    names[i], ph->rate > 0 ? "fixed rate" : "closed loop", ph->sent,
                    ph->send_span > 0 ? (double)ph->sent / ph->send_span : 0, ph->expected, ph->recv,
                    (int64_t)ph->expected - (int64_t)ph->recv, ph->dup, ph->span > 0 ? (double)ph->recv / ph->span : 0,
                    ph->p50, ph->p99, ph->p999, ph->max, ph->cpu.lg_pct, ph->cpu.srv_pct, ph->cpu.sys_pct,
                    ph->recv ? ph->cpu.srv * 1e6 / (double)ph->recv : 0);
        }
        if (S.first_error[0])
            fprintf(stderr, "  first error: %s\n", S.first_error);
    }
    return S.joined == 0;
}

/* traffic phase for msg / presence */
static void traffic(void)
{
    int nsend = 0;
    for (int i = 0; i < opt.users; i++)
        if (is_sender(i) && conns[i].st == ST_READY && conns[i ^ (opt.sc == SC_MSG)].st == ST_READY)
            nsend++;
    if (!nsend) {
        note_error("no ready senders");
        return;
    }
    int *senders = malloc(sizeof(int) * (size_t)nsend);
    int k = 0;
    for (int i = 0; i < opt.users; i++)
        if (is_sender(i) && conns[i].st == ST_READY && conns[i ^ (opt.sc == SC_MSG)].st == ST_READY)
            senders[k++] = i;
    sending = 1;
    S.t_send_start = now_ns();
    uint64_t end = S.t_send_start + (uint64_t)(opt.duration * 1e9);
    if (opt.rate <= 0 && opt.inflight > 0) {
        /* closed loop, global budget: keep --inflight stanzas (msg) or presence
         * updates (each fanning out to the sender's online contacts) in flight,
         * senders taken round-robin; refilled after every loop turn */
        uint64_t rr = 0;
        int64_t budget = (int64_t)opt.inflight *
                         (opt.sc == SC_PRESENCE ? opt.contacts : opt.sc == SC_MUC ? opt.room_size : 1);
        while (!interrupted && now_ns() < end) {
            int tries = 0;
            while ((int64_t)(S.sent_expected - S.recv) < budget && tries++ < 2 * nsend) {
                struct conn *c = &conns[senders[rr++ % (uint64_t)nsend]];
                if (c->st != ST_READY)
                    continue;
                send_one(c);
            }
            run_loop(5);
        }
    } else if (opt.rate <= 0) {
        /* closed loop: fill every sender's window; the receive path refills */
        for (int w = 0; w < opt.window; w++)
            for (int j = 0; j < nsend; j++) {
                struct conn *c = &conns[senders[j]];
                if (c->st != ST_READY)
                    continue;
                send_one(c);
            }
        while (!interrupted && now_ns() < end)
            run_loop(5);
    } else {
        uint64_t rr = 0;
        while (!interrupted) {
            uint64_t t = now_ns();
            if (t >= end)
                break;
            uint64_t due = (uint64_t)(opt.rate * (double)(t - S.t_send_start) / 1e9);
            int burst = 0, tries = 0;
            while (S.sent < due && burst < 5000 && tries++ < 5000 + 2 * nsend) {
                struct conn *c = &conns[senders[rr++ % (uint64_t)nsend]];
                if (c->st != ST_READY)
                    continue;
                send_one(c);
                burst++;
            }
            run_loop(1);
        }
    }
    sending = 0;
    S.t_send_end = now_ns();
    /* drain: wait until everything sent has been seen, or drain timeout */
    uint64_t dend = S.t_send_end + (uint64_t)(opt.drain * 1e9);
    while (!interrupted && now_ns() < dend && S.recv < S.sent_expected)
        run_loop(10);
    free(senders);
}

/* ------------------------------------------------------------- main */

static void usage(void)
{
    fprintf(stderr,
            "usage: xmppload -s SCENARIO [options]\n"
            "  -s, --scenario login|idle|msg|presence\n"
            "  -H, --host ADDR (127.0.0.1)      -p, --port N (25222)\n"
            "  -d, --domain D (localhost)       -u, --users N (100)\n"
            "      --first N (1)  --prefix user --password secret --resource bench\n"
            "  -c, --concurrency N  logins in flight (100)\n"
            "  -t, --duration S     msg/presence traffic seconds, idle hold seconds (10)\n"
            "  -r, --rate R         msg/s or presence updates/s in total; 0 = closed loop (0)\n"
            "  -w, --window W       closed loop: stanzas in flight per sender (4)\n"
            "      --inflight G     closed loop with one global budget instead: G msgs, or G presence\n"
            "                       updates (x online contacts deliveries), in flight in total\n"
            "      --body-size B    padding bytes in each body/status (64)\n"
            "  -k, --contacts K     presence: roster size per user, ring of +-K/2 (10)\n"
            "      --no-roster-get  presence: skip roster fetch before initial presence\n"
            "      --bidir          msg: both users of a pair send\n"
            "      --src-ips N      spread source addresses over 127.0.0.1..N (4)\n"
            "      --scram          SASL SCRAM-SHA-1 instead of PLAIN\n"
            "      --settle S       wait after logins before measuring (3)\n"
            "      --drain S        max wait for in-flight stanzas after sending (10)\n"
            "      --login-timeout S (300)\n"
            "      --pids P1,P2..   server PIDs: RSS and CPU are read from /proc\n"
            "  -l, --label NAME     server name written into the JSON line\n"
            "  -q, --quiet          no human summary on stderr\n"
            "      --ws PATH        WebSocket (RFC 7395) on PATH of the port instead of raw TCP\n"
            "  muc: -u must be a multiple of --room-size; -r R msgs/s in total for the fixed-rate phase\n"
            "       (-t seconds, 0 = skip it), then --inflight G msgs in flight for --max-duration S\n"
            "      --room-size N    occupants per room (10)\n"
            "      --senders S      senders per room, the first S occupants (min(N, 10))\n"
            "      --join-concurrency J  joins in flight (50)\n"
            "      --muc-service H  (conference.<domain>)   --room-prefix P (r<pid>x)\n"
            "      --max-duration S closed-loop phase seconds (10; 0 = skip it)\n"
            "      --join-timeout S all joins must be answered within S seconds (900)\n");
    exit(2);
}

int main(int argc, char **argv)
{
    static struct option lo[] = {
        {"scenario", 1, 0, 's'}, {"host", 1, 0, 'H'}, {"port", 1, 0, 'p'}, {"domain", 1, 0, 'd'},
        {"users", 1, 0, 'u'}, {"first", 1, 0, 1}, {"prefix", 1, 0, 2}, {"password", 1, 0, 3},
        {"resource", 1, 0, 4}, {"concurrency", 1, 0, 'c'}, {"duration", 1, 0, 't'}, {"rate", 1, 0, 'r'},
        {"window", 1, 0, 'w'}, {"inflight", 1, 0, 14}, {"body-size", 1, 0, 5}, {"contacts", 1, 0, 'k'}, {"no-roster-get", 0, 0, 6},
        {"bidir", 0, 0, 7}, {"src-ips", 1, 0, 8}, {"scram", 0, 0, 9}, {"settle", 1, 0, 10},
        {"drain", 1, 0, 11}, {"login-timeout", 1, 0, 12}, {"pids", 1, 0, 13}, {"label", 1, 0, 'l'},
        {"quiet", 0, 0, 'q'}, {"help", 0, 0, 'h'}, {"ws", 1, 0, 15},
        {"room-size", 1, 0, 16}, {"senders", 1, 0, 17}, {"join-concurrency", 1, 0, 18},
        {"muc-service", 1, 0, 19}, {"room-prefix", 1, 0, 20}, {"max-duration", 1, 0, 21},
        {"join-timeout", 1, 0, 22}, {0, 0, 0, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "s:H:p:d:u:c:t:r:w:k:l:qh", lo, NULL)) != -1) {
        switch (o) {
        case 's': {
            int f = 0;
            for (int i = 0; i < N_SCENARIOS; i++)
                if (!strcmp(optarg, sc_names[i])) {
                    opt.sc = (enum scenario)i;
                    f = 1;
                }
            if (!f)
                usage();
            break;
        }
        case 'H': opt.host = optarg; break;
        case 'p': opt.port = atoi(optarg); break;
        case 'd': opt.domain = optarg; break;
        case 'u': opt.users = atoi(optarg); break;
        case 1: opt.first = atoi(optarg); break;
        case 2: opt.prefix = optarg; break;
        case 3: opt.password = optarg; break;
        case 4: opt.resource = optarg; break;
        case 'c': opt.concurrency = atoi(optarg); break;
        case 't': opt.duration = atof(optarg); break;
        case 'r': opt.rate = atof(optarg); break;
        case 'w': opt.window = atoi(optarg); break;
        case 14: opt.inflight = atoi(optarg); break;
        case 5: opt.body_size = atoi(optarg); break;
        case 'k': opt.contacts = atoi(optarg); break;
        case 6: opt.roster_get = 0; break;
        case 7: opt.bidir = 1; break;
        case 8: opt.src_ips = atoi(optarg); break;
        case 9: opt.scram = 1; break;
        case 10: opt.settle = atof(optarg); break;
        case 11: opt.drain = atof(optarg); break;
        case 12: opt.login_timeout = atof(optarg); break;
        case 13: {
            char *save, *tok, *s = strdup(optarg);
            for (tok = strtok_r(s, ", ", &save); tok && opt.npids < 64; tok = strtok_r(NULL, ", ", &save))
                if (atoi(tok) > 0)
                    opt.pids[opt.npids++] = atoi(tok);
            free(s);
            break;
        }
        case 'l': opt.label = optarg; break;
        case 'q': opt.quiet = 1; break;
        case 15: opt.ws_path = optarg; break;
        case 16: opt.room_size = atoi(optarg); break;
        case 17: opt.senders = atoi(optarg); break;
        case 18: opt.join_conc = atoi(optarg); break;
        case 19: opt.muc_service = optarg; break;
        case 20: opt.room_prefix = optarg; break;
        case 21: opt.max_duration = atof(optarg); break;
        case 22: opt.join_timeout = atof(optarg); break;
        default: usage();
        }
    }
    if (opt.users < 1 || opt.concurrency < 1 || opt.window < 1 || opt.src_ips < 1 || opt.src_ips > 250)
        usage();
    if (opt.sc == SC_MSG && opt.users < 2)
        die("msg needs at least 2 users");
    if (opt.sc == SC_PRESENCE && (opt.contacts < 2 || opt.contacts % 2 || opt.contacts >= opt.users))
        die("presence needs an even --contacts K with 2 <= K < users");
    if (opt.body_size < 0 || opt.body_size > 4000)
        die("--body-size must be 0..4000");
    static char svc_buf[300], prefix_buf[32];
    if (opt.sc == SC_MUC) {
        if (opt.room_size < 1 || opt.users % opt.room_size)
            die("muc: --users must be a multiple of --room-size");
        if (opt.senders <= 0)
            opt.senders = opt.room_size < 10 ? opt.room_size : 10;
        if (opt.senders > opt.room_size || opt.join_conc < 1)
            usage();
        if (!opt.muc_service) {
            snprintf(svc_buf, sizeof svc_buf, "conference.%s", opt.domain);
            opt.muc_service = svc_buf;
        }
        if (!opt.room_prefix) {
            snprintf(prefix_buf, sizeof prefix_buf, "r%dx", (int)getpid());
            opt.room_prefix = prefix_buf;
        }
    }

    clk_tck = sysconf(_SC_CLK_TCK);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, on_sig);
    signal(SIGTERM, on_sig);
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if ((rlim_t)opt.users + 32 > rl.rlim_cur)
        die("users=%d exceeds the open-file limit %lu (ulimit -n)", opt.users, (unsigned long)rl.rlim_cur);

    padding = malloc((size_t)opt.body_size + 1);
    memset(padding, 'x', (size_t)opt.body_size);
    padding[opt.body_size] = 0;

    dst.sin_family = AF_INET;
    dst.sin_port = htons((uint16_t)opt.port);
    if (inet_pton(AF_INET, opt.host, &dst.sin_addr) != 1)
        die("bad host %s (IPv4 address expected)", opt.host);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    conns = calloc((size_t)opt.users, sizeof *conns);
    dirty_list = calloc((size_t)opt.users, sizeof *dirty_list);
    for (int i = 0; i < opt.users; i++)
        conns[i].fd = -1;
    room_occ = calloc((size_t)(opt.users / opt.room_size + 1), sizeof *room_occ);
    if (!conns || !dirty_list || !room_occ)
        die("out of memory");

    long rss0 = servers_rss_kb();
    struct cpu c0, c1, c2, c3;
    cpu_snap(&c0);
    login_all();
    cpu_snap(&c1);
    struct cpu_delta dl = cpu_diff(&c0, &c1);
    double login_span = S.t_last_ok > S.t_first ? (double)(S.t_last_ok - S.t_first) / 1e9 : 0;
    double logins_per_s = login_span > 0 ? S.ok / login_span : 0;

    if (opt.sc == SC_MUC) {
        int rc = muc_main(rss0, logins_per_s, &dl);
        free(padding);
        free(conns);
        return rc;
    }

    /* scenario specific */
    long rss1 = -1, rss2 = -1;
    struct cpu_delta dt = {0};
    double init_span = 0;
    uint64_t init_pres = 0;
    if (opt.sc == SC_IDLE) {
        pump(opt.settle);
        rss1 = servers_rss_kb();
        cpu_snap(&c2);
        pump(opt.duration);
        cpu_snap(&c3);
        dt = cpu_diff(&c2, &c3);
        rss2 = servers_rss_kb();
    } else if (opt.sc == SC_MSG || opt.sc == SC_PRESENCE) {
        if (opt.sc == SC_PRESENCE) {
            /* let initial presence + probes settle: quiet for 1s (max 60s) */
            uint64_t t0 = now_ns(), deadline = t0 + 60000000000ull;
            for (;;) {
                pump(0.25);
                uint64_t t = now_ns();
                uint64_t last = S.t_init_last ? S.t_init_last : t0;
                if (interrupted || t > deadline || (t - last > 1000000000ull && t - t0 > opt.settle * 1e9))
                    break;
            }
            init_pres = S.init_pres;
            init_span = S.t_init_last > S.t_first ? (double)(S.t_init_last - S.t_first) / 1e9 : 0;
        } else {
            pump(opt.settle);
        }
        rss1 = servers_rss_kb();
        cpu_snap(&c2);
        traffic();
        cpu_snap(&c3);
        dt = cpu_diff(&c2, &c3);
        rss2 = servers_rss_kb();
    }
    close_all();

    /* ---------------------------------------------------------- report */
    char js[4096];
    int n = 0;
#define J(...) n += snprintf(js + n, sizeof js - (size_t)n, __VA_ARGS__)
    J("{\"tool\":\"xmppload\",\"scenario\":\"%s\",\"server\":\"%s\",\"users\":%d,\"auth\":\"%s\","
      "\"concurrency\":%d,",
      sc_names[opt.sc], opt.label, opt.users, opt.scram ? "SCRAM-SHA-1" : "PLAIN", opt.concurrency);
    J("\"login_ok\":%d,\"login_failed\":%d,\"logins_per_s\":%.1f,\"login_p50_ms\":%.3f,\"login_p99_ms\":%.3f,"
      "\"login_max_ms\":%.3f,",
      S.ok, S.failed, logins_per_s, h_q(&S.login, 0.5), h_q(&S.login, 0.99), (double)S.login.max / 1000.0);
    J("\"login_wall_s\":%.3f,\"login_lg_cpu_s\":%.3f,\"login_srv_cpu_s\":%.3f,\"login_lg_cpu_pct\":%.1f,"
      "\"login_srv_cpu_pct\":%.1f,\"login_sys_busy_pct\":%.1f,",
      dl.wall, dl.lg, dl.srv, dl.lg_pct, dl.srv_pct, dl.sys_pct);
    J("\"ncpu\":%ld,\"server_pids\":%d,\"rss_before_kb\":%ld,", sysconf(_SC_NPROCESSORS_ONLN), opt.npids, rss0);
    if (opt.sc == SC_IDLE) {
        double per = S.ok ? (double)(rss1 - rss0) / S.ok : 0;
        J("\"rss_loaded_kb\":%ld,\"rss_hold_end_kb\":%ld,\"rss_per_session_kb\":%.2f,\"hold_s\":%.1f,"
          "\"hold_srv_cpu_pct\":%.1f,",
          rss1, rss2, per, opt.duration, dt.srv_pct);
    }
    if (opt.sc == SC_MSG || opt.sc == SC_PRESENCE) {
        double span = S.t_last_recv > S.t_send_start ? (double)(S.t_last_recv - S.t_send_start) / 1e9 : 0;
        double send_span = (double)(S.t_send_end - S.t_send_start) / 1e9;
        int64_t lost = (int64_t)S.sent_expected - (int64_t)S.recv;
        J("\"duration_s\":%.1f,\"rate_target\":%.1f,\"window\":%d,\"inflight\":%d,\"body_size\":%d,", opt.duration,
          opt.rate, opt.window, opt.inflight, opt.body_size);
        if (opt.sc == SC_PRESENCE)
            J("\"contacts\":%d,\"roster_items_avg\":%.2f,\"initial_presence_recv\":%" PRIu64
              ",\"initial_presence_expected\":%d,\"initial_presence_span_s\":%.3f,\"updates_sent\":%" PRIu64 ",",
              opt.contacts, S.ok ? (double)S.roster_items_total / S.ok : 0, init_pres, opt.users * opt.contacts,
              init_span, S.sent);
        J("\"sent\":%" PRIu64 ",\"expected\":%" PRIu64 ",\"received\":%" PRIu64 ",\"lost\":%" PRId64
          ",\"dup_or_reordered\":%" PRIu64 ",\"errors\":%" PRIu64 ",\"foreign\":%" PRIu64 ",\"self_echo\":%" PRIu64
          ",",
          S.sent, S.sent_expected, S.recv, lost, S.dup, S.errors, S.foreign, S.self_echo);
        J("\"sent_per_s\":%.1f,\"delivered_per_s\":%.1f,\"lat_p50_ms\":%.3f,\"lat_p99_ms\":%.3f,\"lat_p999_ms\":%.3f,"
          "\"lat_max_ms\":%.3f,",
          send_span > 0 ? S.sent / send_span : 0, span > 0 ? S.recv / span : 0, h_q(&S.lat, 0.5), h_q(&S.lat, 0.99),
          h_q(&S.lat, 0.999), (double)S.lat.max / 1000.0);
        J("\"rss_loaded_kb\":%ld,\"rss_after_kb\":%ld,\"wall_s\":%.3f,\"lg_cpu_s\":%.3f,\"srv_cpu_s\":%.3f,"
          "\"lg_cpu_pct\":%.1f,\"srv_cpu_pct\":%.1f,\"sys_busy_pct\":%.1f,",
          rss1, rss2, dt.wall, dt.lg, dt.srv, dt.lg_pct, dt.srv_pct, dt.sys_pct);
    }
    J("\"server_closed\":%" PRIu64 ",\"stream_errors\":%" PRIu64 ",\"first_error\":\"%s\",\"interrupted\":%d}",
      S.server_closed, S.stream_errors, S.first_error, (int)interrupted);
    printf("%s\n", js);
    fflush(stdout);

    if (!opt.quiet) {
        fprintf(stderr, "[%s] %s: %d users, logins ok %d failed %d, %.0f logins/s, p50 %.2f ms p99 %.2f ms\n",
                opt.label, sc_names[opt.sc], opt.users, S.ok, S.failed, logins_per_s, h_q(&S.login, 0.5),
                h_q(&S.login, 0.99));
        fprintf(stderr, "  login phase CPU: loadgen %.0f%%  server %.0f%%  machine %.0f%% of %ld cores\n", dl.lg_pct,
                dl.srv_pct, dl.sys_pct, sysconf(_SC_NPROCESSORS_ONLN) * 100);
        if (opt.sc == SC_IDLE)
            fprintf(stderr, "  server RSS %ld kB -> %ld kB: %.1f kB/session\n", rss0, rss1,
                    S.ok ? (double)(rss1 - rss0) / S.ok : 0);
        if (opt.sc == SC_MSG || opt.sc == SC_PRESENCE) {
            double span = S.t_last_recv > S.t_send_start ? (double)(S.t_last_recv - S.t_send_start) / 1e9 : 0;
            fprintf(stderr,
                    "  sent %" PRIu64 " expected %" PRIu64 " received %" PRIu64 " lost %" PRId64
                    ": %.0f delivered/s, latency p50 %.2f p99 %.2f p99.9 %.2f max %.2f ms\n",
                    S.sent, S.sent_expected, S.recv, (int64_t)S.sent_expected - (int64_t)S.recv,
                    span > 0 ? S.recv / span : 0, h_q(&S.lat, 0.5), h_q(&S.lat, 0.99), h_q(&S.lat, 0.999),
                    (double)S.lat.max / 1000.0);
            fprintf(stderr, "  traffic CPU: loadgen %.0f%%  server %.0f%%  machine %.0f%%\n", dt.lg_pct, dt.srv_pct,
                    dt.sys_pct);
            if (opt.sc == SC_PRESENCE)
                fprintf(stderr, "  roster items/user %.1f, initial presence received %" PRIu64 " (N*K=%d)\n",
                        S.ok ? (double)S.roster_items_total / S.ok : 0, init_pres, opt.users * opt.contacts);
        }
        if (S.first_error[0])
            fprintf(stderr, "  first error: %s\n", S.first_error);
    }
    free(padding);
    free(conns);
    return (S.ok == 0) ? 1 : 0;
}
