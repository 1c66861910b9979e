/* HTTP/1.1 on the mux's HTTP and HTTPS ports (mux.c does TLS: this sees plaintext).
 *
 * A request is parsed once its header block is whole and its Content-Length body has arrived;
 * the parser keeps no state between reads besides the bytes themselves, so a split read only
 * means the header block is scanned again. One request is handled at a time: while a handler
 * holds one (BOSH long polling), the socket is not read and pipelined requests wait in the
 * buffer. Limits: http.max_header_size (431), MAX_HEADERS lines (431), http.max_body_size
 * (413); a request must arrive whole within http.keepalive_timeout of its first byte, which
 * is also how long an idle connection is kept. */
#include "mux/http.h"
#include "base/buf.h"
#include "base/err.h"
#include "base/log.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define MAX_HEADERS 100
#define FILE_CHUNK 65536

enum hc_flags {
    HC_HELD = 1 << 0,      /* a request waits for its answer */
    HC_HEAD = 1 << 1,      /* ... and it is a HEAD: no body in the answer */
    HC_KEEP = 1 << 2,      /* ... and the connection stays open after it */
    HC_DISPATCH = 1 << 3,  /* inside the handler: an answer now needs no wake-up */
    HC_CLOSE = 1 << 4,     /* close after the answer (bad request) */
    HC_STARTED = 1 << 5,   /* bytes of a request are in: its deadline runs */
    HC_CONTINUED = 1 << 6, /* 100 Continue sent for the request being read */
    HC_UPGRADE = 1 << 7,   /* the answer was 101: the connection becomes a WebSocket */
    HC_QUEUED = 1 << 8,    /* in the kick list */
    HC_FILE = 1 << 9,      /* a file body is being sent */
};

typedef struct http_conn {
    mp_buf in;
    char *cors; /* Access-Control-Allow-Origin for the request being answered, or NULL */
    int fd;     /* file body being sent, or -1 */
    size_t file_left;
    uint32_t flags;
} http_conn;

/* Per mux thread (m->http). */
typedef struct http_mux {
    mp_mux *m;
    void *bosh;
    uv_timer_t kick; /* handles requests held back behind an answer given later */
    uv_check_t pump; /* after every loop turn: more of the file bodies being sent */
    uint64_t *kicked, *pumping;
    size_t nkicked, kicked_cap, npumping, pumping_cap;
} http_mux;

static void http_feed(mp_conn *c, const char *p, size_t n);
static void http_freed(mp_conn *c);
static void process(mp_conn *c);
static void on_kick(uv_timer_t *t);

static const mp_conn_ops http_ops = {http_feed, NULL, NULL, NULL, http_freed};

/* ---- small helpers ---- */

static uint64_t
keepalive_ms(const mp_conn *c)
{
    return (uint64_t)c->mux->cfg->http_keepalive_timeout * 1000;
}

static int
push_id(uint64_t **v, size_t *n, size_t *cap, uint64_t id)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        uint64_t *t = realloc(*v, nc * sizeof *t);
        if (!t)
            return MP_ENOMEM;
        *v = t;
        *cap = nc;
    }
    (*v)[(*n)++] = id;
    return 0;
}

static const char *
status_text(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 204:
        return "No Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 411:
        return "Length Required";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 426:
        return "Upgrade Required";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}

const char *
mp_http_header_get(const mp_http_request *r, const char *name, size_t *len)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i < r->nheaders; i++) {
        const mp_http_header *h = &r->headers[i];
        if (h->name_len == nl && strncasecmp(h->name, name, nl) == 0) {
            if (len)
                *len = h->value_len;
            return h->value;
        }
    }
    return NULL;
}

int
mp_http_has_token(const char *v, size_t len, const char *token)
{
    size_t tl = strlen(token), i = 0;
    while (i < len) {
        while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t s = i;
        while (i < len && v[i] != ',')
            i++;
        size_t e = i;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (e - s == tl && strncasecmp(v + s, token, tl) == 0)
            return 1;
    }
    return 0;
}

int
mp_http_origin_allowed(const mp_config *cfg, const char *origin, size_t len)
{
    const mp_strlist *l = &cfg->http_cors_origins;
    for (size_t i = 0; i < l->n; i++) {
        const char *o = l->v[i];
        if (strcmp(o, "*") == 0 || (strlen(o) == len && strncasecmp(o, origin, len) == 0))
            return 1;
    }
    return 0;
}

static int
any_origin(const mp_config *cfg)
{
    for (size_t i = 0; i < cfg->http_cors_origins.n; i++)
        if (strcmp(cfg->http_cors_origins.v[i], "*") == 0)
            return 1;
    return 0;
}

int
mp_http_is_secure(mp_conn *c)
{
    return c->tls != NULL || c->mux->cfg->http_consider_secure;
}

/* ---- answering ---- */

static void
request_done(mp_conn *c, http_conn *h)
{
    /* The next request's time starts now, whether its bytes are here yet or not. */
    h->flags &= ~HC_STARTED;
    if (h->in.len)
        h->flags |= HC_STARTED;
    mp_mux_set_deadline(c, keepalive_ms(c));
}

static void
kick(mp_conn *c, http_conn *h)
{
    http_mux *hm = c->mux->http;
    if (h->flags & HC_QUEUED)
        return;
    if (push_id(&hm->kicked, &hm->nkicked, &hm->kicked_cap, c->id) < 0) {
        mp_mux_close_now(c);
        return;
    }
    h->flags |= HC_QUEUED;
    uv_timer_start(&hm->kick, on_kick, 0, 0);
}

/* The answer is out (or being sent as a file, then this runs when it is all out). */
static void
finish(mp_conn *c, http_conn *h)
{
    int close = (h->flags & HC_CLOSE) || !(h->flags & HC_KEEP);
    h->flags &= ~(HC_HELD | HC_HEAD | HC_CONTINUED | HC_FILE);
    free(h->cors);
    h->cors = NULL;
    if (close) {
        mp_buf_free(&h->in);
        mp_mux_close_graceful(c);
        return;
    }
    if (h->flags & HC_DISPATCH)
        return; /* process() goes on with the next request */
    /* Answered later than the request came: reading was stopped, and requests that came
     * meanwhile are handled from the loop, not from inside whoever answered. */
    mp_mux_read_start(c);
    request_done(c, h);
    if (h->in.len)
        kick(c, h);
}

static int
write_head(mp_conn *c, http_conn *h, mp_buf *b, int status, const char *type, const char *extra,
           size_t len)
{
    int rc = mp_buf_printf(b, "HTTP/1.1 %d %s\r\n", status, status_text(status));
    if (rc == 0 && type)
        rc = mp_buf_printf(b, "Content-Type: %s\r\n", type);
    if (rc == 0 && status >= 200 && status != 204 && status != 304)
        rc = mp_buf_printf(b, "Content-Length: %zu\r\n", len);
    if (rc == 0 && status != 101)
        rc = mp_buf_puts(b, (h->flags & HC_CLOSE) || !(h->flags & HC_KEEP)
                                ? "Connection: close\r\n"
                                : "Connection: keep-alive\r\n");
    if (rc == 0 && h->cors && status != 101)
        rc = mp_buf_printf(b,
                           "Access-Control-Allow-Origin: %s\r\n%s"
                           "Access-Control-Allow-Methods: GET, HEAD, POST, OPTIONS\r\n"
                           "Access-Control-Allow-Headers: Content-Type\r\n"
                           "Access-Control-Max-Age: 86400\r\n",
                           h->cors, strcmp(h->cors, "*") ? "Vary: Origin\r\n" : "");
    if (rc == 0 && extra)
        rc = mp_buf_puts(b, extra);
    if (rc == 0)
        rc = mp_buf_puts(b, "\r\n");
    return rc;
}

static http_conn *
held(mp_conn *c)
{
    if ((c->flags & CF_CLOSING) || c->ops != &http_ops)
        return NULL;
    http_conn *h = c->tstate;
    if (!(h->flags & HC_HELD) || (h->flags & HC_FILE)) {
        mp_err("conn %016llx: HTTP answer with no request waiting", (unsigned long long)c->id);
        return NULL;
    }
    return h;
}

void
mp_http_respond(mp_conn *c, int status, const char *content_type, const char *extra_headers,
                const char *body, size_t len)
{
    http_conn *h = held(c);
    if (!h)
        return;
    if (status == 101)
        h->flags |= HC_KEEP;
    int with_body = body && len && !(h->flags & HC_HEAD);
    mp_buf b = {0};
    if (write_head(c, h, &b, status, content_type, extra_headers, len) < 0 ||
        (with_body && len <= FILE_CHUNK && mp_buf_append(&b, body, len) < 0)) {
        mp_buf_free(&b);
        mp_mux_close_now(c);
        return;
    }
    mp_mux_wire_write(c, b.data, b.len);
    if (with_body && len > FILE_CHUNK)
        mp_mux_wire_write(c, body, len);
    mp_buf_free(&b);
    if (!(c->flags & CF_HANDLE_CLOSED))
        finish(c, h);
}

static void
http_error(mp_conn *c, http_conn *h, int status, const char *extra)
{
    char body[64];
    int n = snprintf(body, sizeof body, "%d %s\n", status, status_text(status));
    mp_http_respond(c, status, "text/plain; charset=utf-8", extra, body, (size_t)n);
}

/* A request that cannot be parsed: the answer, then the connection is closed. */
static int
bad_request(mp_conn *c, http_conn *h, int status)
{
    mp_debug("conn %016llx (%s): HTTP %d", (unsigned long long)c->id, c->ip, status);
    h->flags |= HC_HELD | HC_CLOSE;
    http_error(c, h, status, NULL);
    return 0;
}

/* ---- file bodies ---- */

/* Writes pieces while the output buffer is empty: at most two pieces are in memory at once,
 * and the loop is never held longer than the kernel takes them. Returns 1 when done. */
static int
pump_file(mp_conn *c, http_conn *h)
{
    size_t chunk = c->mux->max_output / 2;
    if (chunk > FILE_CHUNK)
        chunk = FILE_CHUNK;
    char *buf = NULL;
    while (h->file_left && c->out.len == 0 && !(c->flags & CF_CLOSING)) {
        if (!buf && !(buf = malloc(chunk))) {
            mp_mux_close_now(c);
            return 1;
        }
        size_t want = h->file_left < chunk ? h->file_left : chunk;
        ssize_t r = read(h->fd, buf, want);
        if (r <= 0) {
            /* The length was promised in the header: the body can only be cut off. */
            mp_warn("conn %016llx: file shorter than announced, closing",
                    (unsigned long long)c->id);
            free(buf);
            mp_mux_close_now(c);
            return 1;
        }
        mp_mux_wire_write(c, buf, (size_t)r);
        h->file_left -= (size_t)r;
        /* A client that stops reading is dropped after a keep-alive time without progress. */
        mp_mux_set_deadline(c, keepalive_ms(c));
    }
    free(buf);
    if (c->flags & CF_CLOSING)
        return 1;
    if (h->file_left)
        return 0;
    close(h->fd);
    h->fd = -1;
    finish(c, h);
    return 1;
}

static void
on_pump(uv_check_t *t)
{
    http_mux *hm = t->data;
    size_t j = 0;
    for (size_t i = 0; i < hm->npumping; i++) {
        uint64_t id = hm->pumping[i];
        mp_conn *c = mp_mux_conn_by_id(hm->m, id);
        if (!c || (c->flags & CF_CLOSING) || c->ops != &http_ops ||
            !(((http_conn *)c->tstate)->flags & HC_FILE))
            continue;
        if (!pump_file(c, c->tstate))
            hm->pumping[j++] = id;
    }
    /* Ids added meanwhile (a pipelined file request) were visited by the loop above. */
    hm->npumping = j;
    if (j == 0)
        uv_check_stop(t);
}

void
mp_http_respond_fd(mp_conn *c, int status, const char *content_type, const char *extra_headers,
                   int fd, size_t size)
{
    http_conn *h = held(c);
    if (!h) {
        close(fd);
        return;
    }
    mp_buf b = {0};
    if (write_head(c, h, &b, status, content_type, extra_headers, size) < 0) {
        mp_buf_free(&b);
        close(fd);
        mp_mux_close_now(c);
        return;
    }
    mp_mux_wire_write(c, b.data, b.len);
    mp_buf_free(&b);
    if ((h->flags & HC_HEAD) || size == 0 || (c->flags & CF_CLOSING)) {
        close(fd);
        if (!(c->flags & CF_HANDLE_CLOSED))
            finish(c, h);
        return;
    }
    h->fd = fd;
    h->file_left = size;
    h->flags |= HC_FILE;
    if (pump_file(c, h))
        return;
    http_mux *hm = c->mux->http;
    if (push_id(&hm->pumping, &hm->npumping, &hm->pumping_cap, c->id) < 0) {
        mp_mux_close_now(c);
        return;
    }
    uv_check_start(&hm->pump, on_pump);
}

/* ---- routing ---- */

static int
path_is(const mp_http_request *r, const char *path)
{
    return strlen(path) == r->path_len && memcmp(r->path, path, r->path_len) == 0;
}

static int
method_is(const mp_http_request *r, const char *m)
{
    return strlen(m) == r->method_len && memcmp(r->method, m, r->method_len) == 0;
}

static void
not_allowed(mp_conn *c, http_conn *h, const char *allow)
{
    char extra[96];
    snprintf(extra, sizeof extra, "Allow: %s\r\n", allow);
    http_error(c, h, 405, extra);
}

static void
preflight(mp_conn *c, const char *allow)
{
    char extra[96];
    snprintf(extra, sizeof extra, "Allow: %s\r\n", allow);
    mp_http_respond(c, 204, NULL, extra, NULL, 0);
}

static void
redirect(mp_conn *c, int status, const char *to)
{
    char extra[96];
    snprintf(extra, sizeof extra, "Location: %s\r\n", to);
    mp_http_respond(c, status, "text/plain; charset=utf-8", extra, "moved\n", 6);
}

static void
dispatch(mp_conn *c, http_conn *h, const mp_http_request *r)
{
    int get = method_is(r, "GET") || method_is(r, "HEAD");
    int options = method_is(r, "OPTIONS");
    if (path_is(r, "/http-bind") || path_is(r, "/http-bind/")) {
        if (method_is(r, "POST") || options)
            mp_bosh_request(c, r);
        else
            not_allowed(c, h, "POST, OPTIONS");
    } else if (path_is(r, "/xmpp-websocket")) {
        if (method_is(r, "GET")) {
            if (mp_ws_handshake(c, r))
                h->flags |= HC_UPGRADE;
        } else {
            not_allowed(c, h, "GET");
        }
    } else if (path_is(r, "/.well-known/host-meta") || path_is(r, "/.well-known/host-meta.json")) {
        if (get)
            mp_hostmeta_request(c, r, r->path_len == sizeof "/.well-known/host-meta.json" - 1);
        else if (options)
            preflight(c, "GET, HEAD, OPTIONS");
        else
            not_allowed(c, h, "GET, HEAD, OPTIONS");
    } else if (path_is(r, "/") || path_is(r, "/chat")) {
        if (get)
            redirect(c, r->path_len == 1 ? 302 : 301, "/chat/");
        else
            not_allowed(c, h, "GET, HEAD");
    } else if (r->path_len >= 6 && memcmp(r->path, "/chat/", 6) == 0) {
        if (get)
            mp_static_request(c, r);
        else
            not_allowed(c, h, "GET, HEAD");
    } else if (options && path_is(r, "*")) {
        preflight(c, "GET, HEAD, POST, OPTIONS");
    } else {
        http_error(c, h, 404, NULL);
    }
}

/* ---- parsing ---- */

static int
is_tchar(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

static int
is_ws(char ch)
{
    return ch == ' ' || ch == '\t';
}

/* The request line at p (without its CRLF). Returns 0 or the status to answer. */
static int
parse_request_line(const char *p, size_t n, mp_http_request *r, int *minor)
{
    size_t i = 0;
    while (i < n && is_tchar((unsigned char)p[i]))
        i++;
    if (i == 0 || i >= n || p[i] != ' ')
        return 400;
    r->method = p;
    r->method_len = i;
    size_t t = ++i;
    while (i < n && p[i] != ' ') {
        if ((unsigned char)p[i] <= 0x20 || p[i] == 0x7f)
            return 400;
        i++;
    }
    if (i == t || i >= n)
        return 400;
    const char *target = p + t;
    size_t tl = i - t;
    i++;
    if (n - i != 8 || memcmp(p + i, "HTTP/", 5) != 0 || p[i + 6] != '.' || p[i + 5] < '0' ||
        p[i + 5] > '9' || p[i + 7] < '0' || p[i + 7] > '9')
        return 400;
    if (p[i + 5] != '1')
        return 505;
    *minor = p[i + 7] - '0';
    /* absolute-form (RFC 7230 §5.3.2): only the path matters here. */
    if (tl > 8 &&
        (strncasecmp(target, "http://", 7) == 0 || strncasecmp(target, "https://", 8) == 0)) {
        const char *s = memchr(target + 8, '/', tl - 8);
        if (!s) {
            target = "/";
            tl = 1;
        } else {
            tl -= (size_t)(s - target);
            target = s;
        }
    }
    if (target[0] != '/' && !(tl == 1 && target[0] == '*'))
        return 400;
    const char *q = memchr(target, '?', tl);
    r->path = target;
    r->path_len = q ? (size_t)(q - target) : tl;
    r->query = q ? q + 1 : NULL;
    r->query_len = q ? tl - r->path_len - 1 : 0;
    return 0;
}

/* Header lines between p and end (each ending in CRLF). Returns 0 or the status to answer. */
static int
parse_headers(const char *p, const char *end, mp_http_header *hv, size_t *nh)
{
    *nh = 0;
    while (p < end) {
        const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
        if (!eol)
            return 400;
        if (is_ws(*p))
            return 400; /* obsolete line folding (RFC 7230 §3.2.4) */
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        if (!colon || colon == p)
            return 400;
        for (const char *s = p; s < colon; s++)
            if (!is_tchar((unsigned char)*s))
                return 400;
        const char *v = colon + 1, *ve = eol;
        for (const char *s = v; s < ve; s++)
            if (((unsigned char)*s < 0x20 && *s != '\t') || *s == 0x7f)
                return 400; /* a bare CR or LF could split a header we echo */
        while (v < ve && is_ws(*v))
            v++;
        while (ve > v && is_ws(ve[-1]))
            ve--;
        if (*nh == MAX_HEADERS)
            return 431;
        hv[*nh] = (mp_http_header){p, v, (size_t)(colon - p), (size_t)(ve - v)};
        (*nh)++;
        p = eol + 2;
    }
    return 0;
}

/* Content-Length (all copies must agree). Returns 0 or the status to answer. */
static int
content_length(const mp_http_request *r, size_t max, size_t *out)
{
    int seen = 0;
    *out = 0;
    for (size_t i = 0; i < r->nheaders; i++) {
        const mp_http_header *h = &r->headers[i];
        if (h->name_len != 14 || strncasecmp(h->name, "Content-Length", 14) != 0)
            continue;
        if (h->value_len == 0)
            return 400;
        unsigned long long v = 0;
        for (size_t j = 0; j < h->value_len; j++) {
            char ch = h->value[j];
            if (ch < '0' || ch > '9')
                return 400;
            if (v > (1ull << 40))
                return 413;
            v = v * 10 + (unsigned)(ch - '0');
        }
        if (seen && v != *out)
            return 400;
        seen = 1;
        *out = (size_t)v;
    }
    return *out > max ? 413 : 0;
}

/* Handle the request at the front of the buffer if it is whole. Returns 1 when the next one
 * may be handled at once, 0 when more bytes are needed or the connection changed. */
static int
handle_one(mp_conn *c, http_conn *h)
{
    const mp_config *cfg = c->mux->cfg;
    size_t maxh = cfg->http_max_header_size;
    /* Empty lines before a request are allowed (RFC 7230 §3.5). */
    size_t skip = 0;
    while (skip < h->in.len && (h->in.data[skip] == '\r' || h->in.data[skip] == '\n'))
        skip++;
    mp_buf_consume(&h->in, skip);
    const char *p = h->in.data;
    size_t n = h->in.len;
    if (n == 0)
        return 0;
    const char *end = memmem(p, n < maxh + 4 ? n : maxh + 4, "\r\n\r\n", 4);
    if (!end)
        return n > maxh ? bad_request(c, h, 431) : 0;
    size_t hlen = (size_t)(end - p) + 4;
    if (hlen > maxh + 4)
        return bad_request(c, h, 431);
    const char *eol = memmem(p, hlen, "\r\n", 2);
    mp_http_request r = {0};
    mp_http_header hv[MAX_HEADERS];
    size_t nh, clen;
    int minor = 1;
    int st = parse_request_line(p, (size_t)(eol - p), &r, &minor);
    if (!st)
        st = parse_headers(eol + 2, end + 2, hv, &nh);
    if (st)
        return bad_request(c, h, st);
    r.headers = hv;
    r.nheaders = nh;
    size_t vl = 0;
    const char *te = mp_http_header_get(&r, "Transfer-Encoding", &vl);
    if (te)
        return bad_request(c, h, mp_http_has_token(te, vl, "chunked") ? 411 : 501);
    if ((st = content_length(&r, cfg->http_max_body_size, &clen)))
        return bad_request(c, h, st);
    if (minor >= 1 && !mp_http_header_get(&r, "Host", NULL))
        return bad_request(c, h, 400);
    if (n - hlen < clen) {
        const char *ex = mp_http_header_get(&r, "Expect", &vl);
        if (ex && !(h->flags & HC_CONTINUED) && vl == 12 &&
            strncasecmp(ex, "100-continue", 12) == 0) {
            h->flags |= HC_CONTINUED;
            mp_mux_wire_write(c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
        }
        return 0;
    }
    r.body = p + hlen;
    r.body_len = clen;
    const char *conn = mp_http_header_get(&r, "Connection", &vl);
    r.keep_alive = minor >= 1 ? !(conn && mp_http_has_token(conn, vl, "close"))
                              : (conn && mp_http_has_token(conn, vl, "keep-alive"));
    h->flags &= ~HC_KEEP;
    h->flags |= HC_HELD | HC_DISPATCH | (r.keep_alive ? HC_KEEP : 0);
    if (method_is(&r, "HEAD"))
        h->flags |= HC_HEAD;
    const char *origin = mp_http_header_get(&r, "Origin", &vl);
    if (origin && mp_http_origin_allowed(cfg, origin, vl)) {
        h->cors = any_origin(cfg) ? strdup("*") : strndup(origin, vl);
        if (!h->cors) {
            mp_mux_close_now(c);
            return 0;
        }
    }
    mp_debug("conn %016llx (%s): HTTP %.*s %.*s", (unsigned long long)c->id, c->ip,
             (int)r.method_len, r.method, (int)(r.path_len > 200 ? 200 : r.path_len), r.path);
    dispatch(c, h, &r);
    h->flags &= ~HC_DISPATCH;
    if (c->flags & CF_CLOSING)
        return 0;
    mp_buf_consume(&h->in, hlen + clen);
    if (h->flags & HC_UPGRADE) {
        mp_buf rest = h->in;
        h->in = (mp_buf){0};
        http_freed(c);
        c->ops = NULL;
        if (mp_ws_attach(c, rest.data, rest.len) < 0)
            mp_mux_close_now(c);
        mp_buf_free(&rest);
        return 0;
    }
    if (h->flags & HC_HELD) {
        /* Answered later (a BOSH long poll, a file being sent): until then nothing is read,
         * and the handler's own timer, not ours, bounds the wait. */
        mp_mux_read_stop(c);
        if (!(h->flags & HC_FILE))
            mp_mux_set_deadline(c, 0);
        return 0;
    }
    request_done(c, h);
    return 1;
}

static void
process(mp_conn *c)
{
    while (!(c->flags & CF_CLOSING) && c->ops == &http_ops) {
        http_conn *h = c->tstate;
        if ((h->flags & HC_HELD) || !handle_one(c, h))
            break;
    }
    if (!(c->flags & CF_CLOSING) && c->ops == &http_ops) {
        http_conn *h = c->tstate;
        if (h->in.len == 0)
            mp_buf_free(&h->in); /* an idle keep-alive connection holds no buffer */
    }
}

static void
http_feed(mp_conn *c, const char *p, size_t n)
{
    http_conn *h = c->tstate;
    const mp_config *cfg = c->mux->cfg;
    if (c->flags & CF_CLOSING)
        return;
    if (h->in.len + n > cfg->http_max_header_size + cfg->http_max_body_size + READ_BUF) {
        /* Only a client that pipelines without end behind a held request gets here. */
        mp_info("conn %016llx (%s): too much pipelined HTTP input, closing",
                (unsigned long long)c->id, c->ip);
        mp_mux_close_now(c);
        return;
    }
    if (mp_buf_append(&h->in, p, n) < 0) {
        mp_mux_close_now(c);
        return;
    }
    if (!(h->flags & (HC_STARTED | HC_HELD))) {
        h->flags |= HC_STARTED;
        mp_mux_set_deadline(c, keepalive_ms(c));
    }
    process(c);
}

static void
http_freed(mp_conn *c)
{
    http_conn *h = c->tstate;
    if (!h)
        return;
    mp_buf_free(&h->in);
    free(h->cors);
    if (h->fd >= 0)
        close(h->fd);
    free(h);
    c->tstate = NULL;
}

/* ---- the mux's hooks ---- */

static void
on_kick(uv_timer_t *t)
{
    http_mux *hm = t->data;
    mp_mux *m = hm->m;
    /* Handling a request may queue another kick: work on a copy of the list. */
    size_t n = hm->nkicked;
    uint64_t *ids = hm->kicked;
    hm->kicked = NULL;
    hm->nkicked = hm->kicked_cap = 0;
    for (size_t i = 0; i < n; i++) {
        mp_conn *c = mp_mux_conn_by_id(m, ids[i]);
        if (!c || c->ops != &http_ops)
            continue;
        ((http_conn *)c->tstate)->flags &= ~HC_QUEUED;
        process(c);
    }
    free(ids);
}

int
mp_http_accept(mp_conn *c)
{
    http_conn *h = calloc(1, sizeof *h);
    if (!h) {
        mp_mux_close_now(c);
        return 1;
    }
    h->fd = -1;
    c->tstate = h;
    c->ops = &http_ops;
    mp_mux_set_deadline(c, keepalive_ms(c));
    return 0;
}

int
mp_http_mux_init(mp_mux *m)
{
    http_mux *hm = calloc(1, sizeof *hm);
    if (!hm)
        return MP_ENOMEM;
    hm->bosh = mp_bosh_new(m);
    if (!hm->bosh) {
        free(hm);
        return MP_ENOMEM;
    }
    /* Nothing can fail after the handles join the loop: mux_free closes them by walking it. */
    hm->m = m;
    uv_timer_init(&m->loop, &hm->kick);
    hm->kick.data = hm;
    uv_unref((uv_handle_t *)&hm->kick);
    uv_check_init(&m->loop, &hm->pump);
    hm->pump.data = hm;
    uv_unref((uv_handle_t *)&hm->pump);
    m->http = hm;
    return 0;
}

void
mp_http_mux_free(mp_mux *m)
{
    http_mux *hm = m->http;
    if (!hm)
        return;
    mp_bosh_free(hm->bosh);
    free(hm->kicked);
    free(hm->pumping);
    free(hm);
    m->http = NULL;
}

void *
mp_http_bosh_state(mp_mux *m)
{
    http_mux *hm = m->http;
    return hm ? hm->bosh : NULL;
}

void
mp_http_sweep(mp_mux *m, uint64_t now)
{
    http_mux *hm = m->http;
    if (hm)
        mp_bosh_sweep(hm->bosh, now);
}
