/* The socket-free half of BOSH: the <body/> wrapper parser and a session's request window. */
#include "mux/bosh_int.h"
#include "base/err.h"

#include <expat.h>
#include <stdlib.h>
#include <string.h>

/* ---- the <body/> wrapper ---- */

#define NS_SEP '\1'
#define XML_NS "http://www.w3.org/XML/1998/namespace"

typedef struct body_parse {
    XML_Parser p;
    bosh_body *b;
    int depth;
    int bad;
    size_t start_end; /* offset just after the <body ...> start tag */
    int seen_root;
} body_parse;

/* A decimal integer with no sign, no spaces, at most max. */
static int
parse_uint(const char *s, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    if (!*s)
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        unsigned d = (unsigned)(*s - '0');
        if (v > (max - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

static int
parse_small(const char *s, unsigned *out)
{
    uint64_t v;
    if (parse_uint(s, 1000000000, &v) < 0)
        return -1;
    *out = (unsigned)v;
    return 0;
}

/* "major.minor" (XEP-0124 §7.1 'ver'). */
static int
parse_ver(const char *s, unsigned *major, unsigned *minor)
{
    const char *dot = strchr(s, '.');
    char tmp[16];
    if (!dot || (size_t)(dot - s) >= sizeof tmp)
        return -1;
    memcpy(tmp, s, (size_t)(dot - s));
    tmp[dot - s] = '\0';
    return parse_small(tmp, major) < 0 || parse_small(dot + 1, minor) < 0 ? -1 : 0;
}

static int
copy_attr(char *dst, size_t cap, const char *v)
{
    size_t n = strlen(v);
    if (n >= cap)
        return -1;
    memcpy(dst, v, n + 1);
    return 0;
}

static int
body_attr(bosh_body *b, const char *name, const char *v)
{
    uint64_t u;
    if (strcmp(name, "rid") == 0) {
        if (parse_uint(v, BOSH_RID_MAX, &u) < 0 || u == 0)
            return -1;
        b->rid = u;
        b->flags |= BB_RID;
    } else if (strcmp(name, "sid") == 0) {
        if (copy_attr(b->sid, sizeof b->sid, v) < 0)
            return -1;
        b->flags |= BB_SID;
    } else if (strcmp(name, "to") == 0) {
        if (copy_attr(b->to, sizeof b->to, v) < 0)
            return -1;
        b->flags |= BB_TO;
    } else if (strcmp(name, "wait") == 0) {
        if (parse_small(v, &b->wait) < 0)
            return -1;
        b->flags |= BB_WAIT;
    } else if (strcmp(name, "hold") == 0) {
        if (parse_small(v, &b->hold) < 0)
            return -1;
        b->flags |= BB_HOLD;
    } else if (strcmp(name, "ack") == 0) {
        if (parse_uint(v, BOSH_RID_MAX, &u) < 0)
            return -1;
        b->ack = u;
        b->flags |= BB_ACK;
    } else if (strcmp(name, "pause") == 0) {
        if (parse_small(v, &b->pause) < 0)
            return -1;
        b->flags |= BB_PAUSE;
    } else if (strcmp(name, "type") == 0) {
        if (strcmp(v, "terminate") == 0)
            b->flags |= BB_TERMINATE;
    } else if (strcmp(name, "ver") == 0) {
        if (parse_ver(v, &b->ver_major, &b->ver_minor) < 0)
            return -1;
        b->flags |= BB_VER;
    } else if (strcmp(name, BOSH_NS_XBOSH "\1restart") == 0) {
        if (strcmp(v, "true") == 0 || strcmp(v, "1") == 0)
            b->flags |= BB_RESTART;
    } else if (strcmp(name, BOSH_NS_XBOSH "\1version") == 0) {
        b->flags |= BB_XMPP_VERSION;
    } else if (strcmp(name, XML_NS "\1lang") == 0) {
        if (copy_attr(b->lang, sizeof b->lang, v) < 0)
            return -1;
    }
    /* content, route, from, secure, key, newkey, stream: not used (one stream, one server) */
    return 0;
}

static void
stop(body_parse *bp)
{
    bp->bad = 1;
    XML_StopParser(bp->p, XML_FALSE);
}

static void XMLCALL
on_start(void *ud, const char *name, const char **attrs)
{
    body_parse *bp = ud;
    if (bp->depth++ > 0)
        return;
    if (strcmp(name, BOSH_NS "\1body") != 0) {
        stop(bp);
        return;
    }
    bp->seen_root = 1;
    for (size_t i = 0; attrs[i]; i += 2) {
        if (body_attr(bp->b, attrs[i], attrs[i + 1]) < 0) {
            stop(bp);
            return;
        }
    }
    bp->start_end = (size_t)XML_GetCurrentByteIndex(bp->p) + (size_t)XML_GetCurrentByteCount(bp->p);
}

static void XMLCALL
on_end(void *ud, const char *name)
{
    body_parse *bp = ud;
    if (--bp->depth > 0)
        return;
    size_t end = (size_t)XML_GetCurrentByteIndex(bp->p);
    /* <body/>: the end event sits inside the start tag */
    if (end > bp->start_end) {
        bp->b->child_off = bp->start_end;
        bp->b->child_len = end - bp->start_end;
    }
}

static void XMLCALL
on_doctype(void *ud, const char *name, const char *sysid, const char *pubid, int has_internal)
{
    stop(ud); /* no DTD: no entity expansion to amplify */
}

int
bosh_parse_body(const char *p, size_t n, bosh_body *out)
{
    memset(out, 0, sizeof *out);
    if (n == 0 || n > INT32_MAX)
        return MP_EINVAL;
    XML_Parser xp = XML_ParserCreateNS("UTF-8", NS_SEP);
    if (!xp)
        return MP_ENOMEM;
    body_parse bp = {.p = xp, .b = out};
    XML_SetUserData(xp, &bp);
    XML_SetElementHandler(xp, on_start, on_end);
    XML_SetStartDoctypeDeclHandler(xp, on_doctype);
    enum XML_Status st = XML_Parse(xp, p, (int)n, XML_TRUE);
    XML_ParserFree(xp);
    if (st != XML_STATUS_OK || bp.bad || !bp.seen_root)
        return MP_EINVAL;
    return 0;
}

/* ---- the request window ---- */

int
bosh_win_init(bosh_win *w, uint64_t first_rid, unsigned requests, unsigned hold)
{
    memset(w, 0, sizeof *w);
    w->next_rid = first_rid;
    w->requests = requests ? requests : 1;
    w->hold = hold;
    /* one over `requests` for a pause or terminate, one more transiently while processing */
    w->cap_out = w->requests + 2;
    w->out = calloc(w->cap_out, sizeof *w->out);
    w->cache = calloc(w->requests, sizeof *w->cache);
    if (!w->out || !w->cache) {
        bosh_win_free(w);
        return MP_ENOMEM;
    }
    return 0;
}

void
bosh_win_free(bosh_win *w)
{
    for (unsigned i = 0; w->out && i < w->nout; i++)
        free(w->out[i].payload);
    for (unsigned i = 0; w->cache && i < w->ncache; i++)
        free(w->cache[i].data);
    free(w->out);
    free(w->cache);
    w->out = NULL;
    w->cache = NULL;
    w->nout = w->ncache = 0;
}

const bosh_cached *
bosh_win_cached(const bosh_win *w, uint64_t rid)
{
    for (unsigned i = 0; i < w->ncache; i++)
        if (w->cache[i].rid == rid)
            return &w->cache[i];
    return NULL;
}

enum bosh_verdict
bosh_win_classify(const bosh_win *w, uint64_t rid, int exempt, const bosh_cached **cached,
                  unsigned *owed)
{
    for (unsigned i = 0; i < w->nout; i++) {
        if (w->out[i].rid == rid) {
            *owed = i;
            return BOSH_V_REATTACH;
        }
    }
    if (rid < w->next_rid) {
        *cached = bosh_win_cached(w, rid);
        return *cached ? BOSH_V_RESEND : BOSH_V_NOT_FOUND;
    }
    unsigned allowed = w->requests + (exempt ? 1 : 0);
    if (rid - w->next_rid >= allowed)
        return BOSH_V_NOT_FOUND; /* §14.2: beyond the window */
    if (w->nout + 1 > allowed)
        return BOSH_V_OVERACTIVE; /* §11: none of them answered yet */
    return rid == w->next_rid ? BOSH_V_PROCESS : BOSH_V_EARLY;
}

int
bosh_win_add(bosh_win *w, const bosh_req *r)
{
    if (w->nout == w->cap_out)
        return MP_ENOMEM; /* classify keeps this from happening */
    unsigned i = w->nout;
    while (i > 0 && w->out[i - 1].rid > r->rid) {
        w->out[i] = w->out[i - 1];
        i--;
    }
    w->out[i] = *r;
    w->nout++;
    if (r->rid == w->next_rid) {
        w->out[i].processed = 1;
        free(w->out[i].payload);
        w->out[i].payload = NULL;
        w->out[i].len = 0;
        w->next_rid++;
    }
    return 0;
}

bosh_req *
bosh_win_due(bosh_win *w)
{
    for (unsigned i = 0; i < w->nout; i++)
        if (!w->out[i].processed && w->out[i].rid == w->next_rid)
            return &w->out[i];
    return NULL;
}

void
bosh_win_promote(bosh_win *w, bosh_req *r)
{
    r->processed = 1;
    free(r->payload);
    r->payload = NULL;
    r->len = 0;
    w->next_rid++;
}

unsigned
bosh_win_held(const bosh_win *w)
{
    unsigned n = 0;
    for (unsigned i = 0; i < w->nout; i++)
        n += w->out[i].processed != 0;
    return n;
}

unsigned
bosh_win_early(const bosh_win *w)
{
    return w->nout - bosh_win_held(w);
}

bosh_req *
bosh_win_oldest(bosh_win *w)
{
    return w->nout && w->out[0].processed ? &w->out[0] : NULL;
}

void
bosh_win_answered(bosh_win *w, char *data, size_t len, uint64_t now_ms)
{
    if (!w->nout || !w->out[0].processed) {
        free(data);
        return;
    }
    uint64_t rid = w->out[0].rid;
    memmove(&w->out[0], &w->out[1], (w->nout - 1) * sizeof *w->out);
    w->nout--;
    if (w->ncache == w->requests) {
        free(w->cache[0].data);
        memmove(&w->cache[0], &w->cache[1], (w->ncache - 1) * sizeof *w->cache);
        w->ncache--;
    }
    w->cache[w->ncache++] = (bosh_cached){.rid = rid, .sent_ms = now_ms, .data = data, .len = len};
}

void
bosh_win_acked(bosh_win *w, uint64_t ack)
{
    unsigned j = 0;
    for (unsigned i = 0; i < w->ncache; i++) {
        if (w->cache[i].rid <= ack)
            free(w->cache[i].data);
        else
            w->cache[j++] = w->cache[i];
    }
    w->ncache = j;
}

size_t
bosh_win_memory(const bosh_win *w)
{
    size_t n = w->cap_out * sizeof *w->out + w->requests * sizeof *w->cache;
    for (unsigned i = 0; i < w->nout; i++)
        n += w->out[i].len;
    for (unsigned i = 0; i < w->ncache; i++)
        n += w->cache[i].len;
    return n;
}
