/* XMPP over WebSocket (RFC 7395) on /xmpp-websocket.
 *
 * After the handshake the connection carries WebSocket frames; each text message is one XML
 * element. The XML framer in mux.c still does all the XML work: an <open/> becomes a
 * synthetic stream header fed to it, a <close/> becomes </stream:stream>, and every other
 * message is fed as it is. Going out, the stream header becomes <open/>, each element the
 * core writes becomes one text message, and the end of the stream becomes <close/> and the
 * closing handshake.
 *
 * State per connection is two buffers that are empty (unallocated) between messages and a
 * few flags: an idle WebSocket session costs no more than an idle TCP one. */
#include "mux/ws.h"
#include "mux/http.h"
#include "base/buf.h"
#include "base/err.h"
#include "base/log.h"
#include "xml/escape.h"

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>

#define NS_FRAMING "urn:ietf:params:xml:ns:xmpp-framing"
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define SMALL_FRAME 4096

/* ---- the codec ---- */

int
mp_ws_parse_header(const uint8_t *p, size_t n, mp_ws_frame *f)
{
    if (n < 2)
        return MP_AGAIN;
    f->fin = (p[0] & 0x80) != 0;
    f->opcode = p[0] & 0x0f;
    f->masked = (p[1] & 0x80) != 0;
    if (p[0] & 0x70)
        return MP_EINVAL; /* no extension was negotiated */
    switch (f->opcode) {
    case MP_WS_CONT:
    case MP_WS_TEXT:
    case MP_WS_BINARY:
        break;
    case MP_WS_CLOSE:
    case MP_WS_PING:
    case MP_WS_PONG:
        if (!f->fin || (p[1] & 0x7f) > 125)
            return MP_EINVAL;
        break;
    default:
        return MP_EINVAL;
    }
    uint64_t len = p[1] & 0x7f;
    size_t h = 2;
    if (len == 126) {
        if (n < 4)
            return MP_AGAIN;
        len = ((uint64_t)p[2] << 8) | p[3];
        if (len < 126)
            return MP_EINVAL;
        h = 4;
    } else if (len == 127) {
        if (n < 10)
            return MP_AGAIN;
        len = 0;
        for (int i = 0; i < 8; i++)
            len = (len << 8) | p[2 + i];
        if (len < 65536 || (len >> 63))
            return MP_EINVAL;
        h = 10;
    }
    if (f->masked) {
        if (n < h + 4)
            return MP_AGAIN;
        memcpy(f->mask, p + h, 4);
        h += 4;
    }
    f->len = len;
    f->header_len = h;
    return 0;
}

size_t
mp_ws_frame_header(uint8_t out[10], int opcode, uint64_t len)
{
    out[0] = (uint8_t)(0x80 | (opcode & 0x0f));
    if (len < 126) {
        out[1] = (uint8_t)len;
        return 2;
    }
    if (len < 65536) {
        out[1] = 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; i++)
        out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
    return 10;
}

void
mp_ws_unmask(uint8_t *p, size_t n, const uint8_t mask[4], uint64_t off)
{
    for (size_t i = 0; i < n; i++)
        p[i] ^= mask[(off + i) & 3];
}

int
mp_ws_accept_key(const char *key, size_t len, char out[29])
{
    unsigned char raw[64], sha[SHA_DIGEST_LENGTH];
    char buf[64 + sizeof WS_GUID];
    /* 16 bytes are 24 base64 characters ending in "==". */
    if (len != 24 || key[22] != '=' || key[23] != '=')
        return MP_EINVAL;
    if (EVP_DecodeBlock(raw, (const unsigned char *)key, 24) != 18) /* counts the padding */
        return MP_EINVAL;
    memcpy(buf, key, len);
    memcpy(buf + len, WS_GUID, sizeof WS_GUID - 1);
    SHA1((const unsigned char *)buf, len + sizeof WS_GUID - 1, sha);
    EVP_EncodeBlock((unsigned char *)out, sha, SHA_DIGEST_LENGTH);
    return 0;
}

/* ---- the connection ---- */

enum ws_flags {
    WS_FRAGMENTED = 1 << 0, /* a text message continues in the next frame */
    WS_CLOSE_SENT = 1 << 1, /* our close frame is out: nothing more may follow */
    WS_OPENED = 1 << 2,     /* an <open/> was seen (see-other-uri only for a new stream) */
};

typedef struct ws_conn {
    mp_buf in;  /* the start of a frame not yet whole */
    mp_buf msg; /* the unmasked text of the message being received */
    uint8_t flags;
} ws_conn;

static void ws_feed(mp_conn *c, const char *p, size_t n);
static void ws_header(mp_conn *c, const char *host, const char *id);
static void ws_xml(mp_conn *c, const char *p, size_t n);
static void ws_end(mp_conn *c);
static void ws_freed(mp_conn *c);

static const mp_conn_ops ws_ops = {ws_feed, ws_header, ws_xml, ws_end, ws_freed};

static void
send_frame(mp_conn *c, int opcode, const char *p, size_t n)
{
    ws_conn *ws = c->tstate;
    if (ws->flags & WS_CLOSE_SENT)
        return;
    if (opcode == MP_WS_CLOSE)
        ws->flags |= WS_CLOSE_SENT;
    uint8_t small[SMALL_FRAME + 10];
    size_t h = mp_ws_frame_header(small, opcode, n);
    if (n <= SMALL_FRAME) {
        /* One write, so that TLS makes one record of it. */
        memcpy(small + h, p, n);
        mp_mux_wire_write(c, (const char *)small, h + n);
        return;
    }
    mp_mux_wire_write(c, (const char *)small, h);
    mp_mux_wire_write(c, p, n);
}

static void
send_close(mp_conn *c, int status)
{
    char b[2] = {(char)(status >> 8), (char)(status & 0xff)};
    send_frame(c, MP_WS_CLOSE, b, 2);
}

/* A protocol error below XMPP: the closing handshake with its status, then the connection. */
static void
fail(mp_conn *c, int status, const char *why)
{
    mp_info("conn %016llx (%s): WebSocket closed with %d: %s", (unsigned long long)c->id, c->ip,
            status, why);
    send_close(c, status);
    mp_mux_close_graceful(c);
}

static void
send_text(mp_conn *c, const char *p, size_t n)
{
    send_frame(c, MP_WS_TEXT, p, n);
}

static void
each_element(void *ud, const char *el, size_t n)
{
    send_text(ud, el, n);
}

static void
ws_header(mp_conn *c, const char *host, const char *id)
{
    mp_buf b = {0};
    if (mp_buf_puts(&b, "<open xmlns='" NS_FRAMING "' from='") < 0 ||
        mp_xml_escape_attr(&b, host, strlen(host)) < 0 ||
        mp_buf_printf(&b, "' id='%s' version='1.0' xml:lang='en'/>", id) < 0) {
        mp_buf_free(&b);
        mp_mux_close_now(c);
        return;
    }
    send_text(c, b.data, b.len);
    mp_buf_free(&b);
}

static void
ws_xml(mp_conn *c, const char *p, size_t n)
{
    if (mp_http_each_element(p, n, &c->mux->scratch, each_element, c) < 0) {
        mp_err("conn %016llx: output is not whole XML elements; sent as one message",
               (unsigned long long)c->id);
        send_text(c, p, n);
    }
}

/* Byte for byte what Strophe.js (Converse.js underneath) compares a message with to
 * recognise the end of the stream; in any other spelling it takes <close/> for a stanza. */
#define CLOSE_ELEMENT "<close xmlns=\"" NS_FRAMING "\" />"

static void
ws_end(mp_conn *c)
{
    send_text(c, CLOSE_ELEMENT, sizeof CLOSE_ELEMENT - 1);
    send_close(c, MP_WS_NORMAL);
}

static void
ws_freed(mp_conn *c)
{
    ws_conn *ws = c->tstate;
    if (!ws)
        return;
    mp_buf_free(&ws->in);
    mp_buf_free(&ws->msg);
    free(ws);
    c->tstate = NULL;
}

/* ---- messages from the client ---- */

static int
is_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

/* The value of attribute name in the start tag p[0..n) (raw, still escaped), or NULL. */
static const char *
attr(const char *p, size_t n, const char *name, size_t *len)
{
    size_t nl = strlen(name), i = 0;
    while (i < n && !is_space(p[i]) && p[i] != '/' && p[i] != '>')
        i++; /* the element's name */
    for (;;) {
        while (i < n && is_space(p[i]))
            i++;
        if (i >= n || p[i] == '/' || p[i] == '>')
            return NULL;
        size_t a = i;
        while (i < n && p[i] != '=' && !is_space(p[i]) && p[i] != '>')
            i++;
        size_t alen = i - a;
        while (i < n && is_space(p[i]))
            i++;
        if (i >= n || p[i] != '=')
            return NULL;
        i++;
        while (i < n && is_space(p[i]))
            i++;
        if (i >= n || (p[i] != '\'' && p[i] != '"'))
            return NULL;
        char q = p[i++];
        size_t v = i;
        while (i < n && p[i] != q)
            i++;
        if (i >= n)
            return NULL;
        if (alen == nl && memcmp(p + a, name, nl) == 0) {
            *len = i - v;
            return p + v;
        }
        i++;
    }
}

static int
starts_element(const char *p, size_t n, const char *name)
{
    size_t l = strlen(name);
    return n > l + 1 && p[0] == '<' && memcmp(p + 1, name, l) == 0 &&
           (is_space(p[1 + l]) || p[1 + l] == '/' || p[1 + l] == '>');
}

static int
framing_ns(const char *p, size_t n)
{
    size_t len;
    const char *ns = attr(p, n, "xmlns", &len);
    return ns && len == sizeof NS_FRAMING - 1 && memcmp(ns, NS_FRAMING, len) == 0;
}

/* An attribute copied into the synthetic stream header. Its raw value is XML already; one
 * with markup or references is refused rather than re-escaped wrongly. */
static int
put_attr(mp_buf *b, const char *name, const char *v, size_t len)
{
    if (!v)
        return 0;
    if (memchr(v, '&', len) || memchr(v, '<', len))
        return MP_EINVAL;
    if (mp_buf_printf(b, " %s='", name) < 0 || mp_xml_escape_attr(b, v, len) < 0 ||
        mp_buf_puts(b, "'") < 0)
        return MP_ENOMEM;
    return 0;
}

static void
see_other(mp_conn *c, const char *uri)
{
    mp_buf b = {0};
    if (mp_buf_puts(&b, "<close xmlns='" NS_FRAMING "' see-other-uri='") == 0 &&
        mp_xml_escape_attr(&b, uri, strlen(uri)) == 0 && mp_buf_puts(&b, "'/>") == 0) {
        mp_info("conn %016llx (%s): WebSocket client sent to %s (http.websocket_see_other_uri)",
                (unsigned long long)c->id, c->ip, uri);
        send_text(c, b.data, b.len);
    }
    mp_buf_free(&b);
    send_close(c, MP_WS_NORMAL);
    mp_mux_close_graceful(c);
}

static void
on_open(mp_conn *c, const char *p, size_t n)
{
    ws_conn *ws = c->tstate;
    const mp_config *cfg = c->mux->cfg;
    if (!(ws->flags & WS_OPENED) && cfg->http_websocket_see_other_uri &&
        cfg->http_websocket_see_other_uri[0]) {
        see_other(c, cfg->http_websocket_see_other_uri);
        return;
    }
    ws->flags |= WS_OPENED;
    if (c->fr.depth != 0) {
        /* A restart is only possible after the framer was reset (SASL success). */
        mp_mux_stream_error(c, "invalid-xml", NULL);
        return;
    }
    if (!framing_ns(p, n)) {
        mp_mux_stream_error(c, "invalid-namespace", NULL);
        return;
    }
    size_t tl = 0, vl = 0, ll = 0;
    const char *to = attr(p, n, "to", &tl);
    const char *version = attr(p, n, "version", &vl);
    const char *lang = attr(p, n, "xml:lang", &ll);
    mp_buf b = {0};
    int rc = mp_buf_puts(&b, "<stream:stream xmlns='jabber:client' "
                             "xmlns:stream='http://etherx.jabber.org/streams'");
    if (rc == 0)
        rc = put_attr(&b, "to", to, tl);
    if (rc == 0)
        rc = put_attr(&b, "version", version, vl);
    if (rc == 0)
        rc = put_attr(&b, "xml:lang", lang, ll);
    if (rc == 0)
        rc = mp_buf_puts(&b, ">");
    if (rc == MP_EINVAL)
        mp_mux_stream_error(c, "improper-addressing", NULL);
    else if (rc < 0)
        mp_mux_close_now(c);
    else
        mp_mux_stream_feed(c, b.data, b.len);
    mp_buf_free(&b);
}

static void
on_message(mp_conn *c, const char *p, size_t n)
{
    ws_conn *ws = c->tstate;
    while (n && is_space(*p))
        p++, n--;
    while (n && is_space(p[n - 1]))
        n--;
    if (n == 0)
        return;
    if (n >= 5 && memcmp(p, "<?xml", 5) == 0) {
        const char *e = memmem(p, n, "?>", 2);
        if (!e) {
            fail(c, MP_WS_INVALID_DATA, "unterminated XML declaration");
            return;
        }
        n -= (size_t)(e + 2 - p);
        p = e + 2;
        while (n && is_space(*p))
            p++, n--;
    }
    if (starts_element(p, n, "open")) {
        on_open(c, p, n);
        return;
    }
    if (!(ws->flags & WS_OPENED)) {
        mp_mux_stream_error(c, "invalid-xml", NULL); /* anything before <open/> */
        return;
    }
    if (starts_element(p, n, "close")) {
        if (!framing_ns(p, n)) {
            mp_mux_stream_error(c, "invalid-namespace", NULL);
            return;
        }
        if (c->fr.depth >= 1) {
            mp_mux_stream_feed(c, "</stream:stream>", 16);
        } else {
            ws_end(c);
            mp_mux_close_graceful(c);
        }
        return;
    }
    if (c->fr.depth < 1) {
        mp_mux_stream_error(c, "invalid-xml", NULL); /* after SASL success, before <open/> */
        return;
    }
    mp_mux_stream_feed(c, p, n);
}

static size_t
max_message(const mp_conn *c)
{
    const mp_config *cfg = c->mux->cfg;
    return cfg->http_websocket_max_message ? cfg->http_websocket_max_message : cfg->max_stanza_size;
}

/* One whole frame at p (header included). */
static void
on_frame(mp_conn *c, const mp_ws_frame *f, const uint8_t *p)
{
    ws_conn *ws = c->tstate;
    const uint8_t *payload = p + f->header_len;
    size_t len = (size_t)f->len;
    if (f->opcode >= MP_WS_CLOSE) {
        uint8_t ctl[125];
        memcpy(ctl, payload, len);
        mp_ws_unmask(ctl, len, f->mask, 0);
        if (f->opcode == MP_WS_PING) {
            send_frame(c, MP_WS_PONG, (const char *)ctl, len);
        } else if (f->opcode == MP_WS_CLOSE) {
            int status = len >= 2 ? (ctl[0] << 8) | ctl[1] : MP_WS_NORMAL;
            if (len == 1)
                status = MP_WS_PROTOCOL_ERROR;
            mp_debug("conn %016llx (%s): WebSocket close %d from the client",
                     (unsigned long long)c->id, c->ip, status);
            send_close(c, status == MP_WS_PROTOCOL_ERROR ? status : MP_WS_NORMAL);
            mp_mux_close_graceful(c);
        }
        return;
    }
    if (f->opcode == MP_WS_BINARY) {
        fail(c, MP_WS_UNSUPPORTED, "binary message (RFC 7395 uses text)");
        return;
    }
    if ((f->opcode == MP_WS_CONT) != ((ws->flags & WS_FRAGMENTED) != 0)) {
        fail(c, MP_WS_PROTOCOL_ERROR, "bad fragmentation");
        return;
    }
    size_t off = ws->msg.len;
    if (mp_buf_append(&ws->msg, payload, len) < 0) {
        mp_mux_close_now(c);
        return;
    }
    mp_ws_unmask((uint8_t *)ws->msg.data + off, len, f->mask, 0);
    if (!f->fin) {
        ws->flags |= WS_FRAGMENTED;
        return;
    }
    ws->flags &= ~WS_FRAGMENTED;
    /* The message is handed over from its buffer, which is then released: between messages
     * a connection holds nothing. */
    mp_buf msg = ws->msg;
    ws->msg = (mp_buf){0};
    on_message(c, msg.data, msg.len);
    mp_buf_free(&msg);
}

static void
ws_feed(mp_conn *c, const char *data, size_t n)
{
    ws_conn *ws = c->tstate;
    const uint8_t *p = (const uint8_t *)data;
    size_t len = n, off = 0;
    if (ws->in.len) {
        if (mp_buf_append(&ws->in, data, n) < 0) {
            mp_mux_close_now(c);
            return;
        }
        p = (const uint8_t *)ws->in.data;
        len = ws->in.len;
    }
    size_t max = max_message(c);
    while (off < len && !(c->flags & CF_CLOSING)) {
        mp_ws_frame f;
        int rc = mp_ws_parse_header(p + off, len - off, &f);
        if (rc == MP_AGAIN)
            break;
        if (rc < 0) {
            fail(c, MP_WS_PROTOCOL_ERROR, "malformed frame");
            break;
        }
        if (!f.masked) {
            fail(c, MP_WS_PROTOCOL_ERROR, "unmasked frame from a client");
            break;
        }
        /* Checked on the header, before the payload is buffered. */
        if (f.opcode < MP_WS_CLOSE && f.len > max - ws->msg.len) {
            fail(c, MP_WS_TOO_BIG, "message over http.websocket_max_message");
            break;
        }
        if (len - off - f.header_len < f.len)
            break;
        on_frame(c, &f, p + off);
        off += f.header_len + (size_t)f.len;
    }
    if (c->flags & CF_CLOSING) {
        mp_buf_free(&ws->in);
        mp_buf_free(&ws->msg);
        return;
    }
    if (p == (const uint8_t *)ws->in.data) {
        mp_buf_consume(&ws->in, off);
        if (ws->in.len == 0)
            mp_buf_free(&ws->in);
    } else if (off < len && mp_buf_append(&ws->in, p + off, len - off) < 0) {
        mp_mux_close_now(c);
    }
}

/* ---- the handshake ---- */

int
mp_ws_handshake(mp_conn *c, const mp_http_request *r)
{
    size_t ul = 0, cl = 0, kl = 0, vl = 0, pl = 0, ol = 0;
    const char *upgrade = mp_http_header_get(r, "Upgrade", &ul);
    const char *conn = mp_http_header_get(r, "Connection", &cl);
    const char *key = mp_http_header_get(r, "Sec-WebSocket-Key", &kl);
    const char *version = mp_http_header_get(r, "Sec-WebSocket-Version", &vl);
    const char *proto = mp_http_header_get(r, "Sec-WebSocket-Protocol", &pl);
    const char *origin = mp_http_header_get(r, "Origin", &ol);
    char accept[29];
    const char *why = NULL;
    if (!upgrade || !mp_http_has_token(upgrade, ul, "websocket")) {
        mp_http_respond(c, 426, "text/plain", "Upgrade: websocket\r\n",
                        "WebSocket (RFC 7395) only\n", 26);
        return 0;
    }
    if (!version || vl != 2 || memcmp(version, "13", 2) != 0) {
        mp_http_respond(c, 426, "text/plain", "Sec-WebSocket-Version: 13\r\n",
                        "WebSocket version 13 only\n", 26);
        return 0;
    }
    if (!conn || !mp_http_has_token(conn, cl, "upgrade"))
        why = "Connection: Upgrade missing\n";
    else if (!key || mp_ws_accept_key(key, kl, accept) < 0)
        why = "bad Sec-WebSocket-Key\n";
    else if (!mp_http_header_get(r, "Host", NULL))
        why = "Host missing\n";
    else if (!proto || !mp_http_has_token(proto, pl, "xmpp"))
        /* RFC 7395 §3.1: no XMPP WebSocket connection without the sub-protocol; refusing
         * the handshake says so more clearly than a handshake the client must drop. */
        why = "the xmpp sub-protocol (RFC 7395) is required\n";
    if (why) {
        mp_debug("conn %016llx (%s): WebSocket handshake refused: %.*s", (unsigned long long)c->id,
                 c->ip, (int)strlen(why) - 1, why);
        mp_http_respond(c, 400, "text/plain", NULL, why, strlen(why));
        return 0;
    }
    if (origin && !mp_http_origin_allowed(c->mux->cfg, origin, ol)) {
        mp_info("conn %016llx (%s): WebSocket from origin %.*s refused (http.cors_origins)",
                (unsigned long long)c->id, c->ip, (int)(ol > 200 ? 200 : ol), origin);
        mp_http_respond(c, 403, "text/plain", NULL, "origin not allowed\n", 19);
        return 0;
    }
    char extra[160];
    snprintf(extra, sizeof extra,
             "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n"
             "Sec-WebSocket-Protocol: xmpp\r\n",
             accept);
    mp_http_respond(c, 101, NULL, extra, NULL, 0);
    return (c->flags & CF_CLOSING) ? 0 : 1;
}

int
mp_ws_attach(mp_conn *c, const char *rest, size_t n)
{
    ws_conn *ws = calloc(1, sizeof *ws);
    if (!ws)
        return MP_ENOMEM;
    c->tstate = ws;
    c->ops = &ws_ops;
    mp_debug("conn %016llx (%s): WebSocket open", (unsigned long long)c->id, c->ip);
    /* The stream exists from now on, so that whatever ends it (a timeout, a bad first message)
     * is said in XMPP: <open/>, the stream error, <close/>, the closing handshake. */
    if (mp_mux_stream_begin(c) < 0)
        return MP_ENOMEM;
    if (!c->tls && c->mux->cfg->http_consider_secure)
        c->flags |= CF_SECURE;
    /* Until authentication, the unauthenticated timeout applies as on TCP. */
    mp_mux_set_deadline(c, c->mux->unauth_timeout_ms);
    if (n)
        ws_feed(c, rest, n);
    return 0;
}
