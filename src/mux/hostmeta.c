/* XEP-0156 discovery: /.well-known/host-meta (XRD) and host-meta.json name the BOSH and
 * WebSocket endpoints. Their URLs come from http.public_url when set (a proxy in front knows
 * the public name better than the request does), else from the Host header and whether the
 * request came over TLS. */
#include "mux/http.h"
#include "base/buf.h"
#include "base/err.h"

#include <string.h>

/* A Host header: a name or an address, with an optional port. Anything else could inject
 * markup into the documents. */
static int
host_ok(const char *h, size_t n)
{
    if (n == 0 || n > 300)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = h[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '-' || ch == ':' || ch == '[' || ch == ']' || ch == '_'))
            return 0;
    }
    return 1;
}

/* Appends s, escaped for both XML attributes and JSON strings: the configured URL is the
 * only text here not checked character by character. */
static int
put_escaped(mp_buf *b, const char *s, size_t n, int json)
{
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        int rc;
        if (json && (ch == '"' || ch == '\\'))
            rc = mp_buf_printf(b, "\\%c", ch);
        else if (json && (unsigned char)ch < 0x20)
            rc = mp_buf_printf(b, "\\u%04x", (unsigned char)ch);
        else if (!json && ch == '&')
            rc = mp_buf_puts(b, "&amp;");
        else if (!json && ch == '<')
            rc = mp_buf_puts(b, "&lt;");
        else if (!json && ch == '"')
            rc = mp_buf_puts(b, "&quot;");
        else if (!json && ch == '\'')
            rc = mp_buf_puts(b, "&apos;");
        else
            rc = mp_buf_append(b, &ch, 1);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* The URL of path on this server, for scheme kind ws (0: http(s), 1: ws(s)). */
static int
put_url(mp_buf *b, mp_conn *c, const mp_http_request *r, int ws, const char *path, int json)
{
    const char *pub = c->mux->cfg->http_public_url;
    const char *rest;
    size_t rest_len;
    int secure;
    if (pub && *pub) {
        secure = strncmp(pub, "https://", 8) == 0;
        rest = pub + (secure ? 8 : strncmp(pub, "http://", 7) == 0 ? 7 : 0);
        rest_len = strlen(rest);
        while (rest_len && rest[rest_len - 1] == '/')
            rest_len--;
    } else {
        rest = mp_http_header_get(r, "Host", &rest_len);
        secure = c->tls != NULL;
    }
    int rc = mp_buf_puts(b, ws ? (secure ? "wss://" : "ws://") : (secure ? "https://" : "http://"));
    if (rc == 0)
        rc = put_escaped(b, rest, rest_len, json);
    if (rc == 0)
        rc = mp_buf_puts(b, path);
    return rc;
}

void
mp_hostmeta_request(mp_conn *c, const mp_http_request *r, int json)
{
    const char *pub = c->mux->cfg->http_public_url;
    size_t hl = 0;
    const char *host = mp_http_header_get(r, "Host", &hl);
    if (!(pub && *pub) && (!host || !host_ok(host, hl))) {
        mp_http_respond(c, 400, "text/plain; charset=utf-8", NULL, "bad Host header\n", 16);
        return;
    }
    mp_buf b = {0};
    int rc;
    if (json) {
        rc = mp_buf_puts(&b, "{\"links\":[{\"rel\":\"urn:xmpp:alt-connections:xbosh\",\"href\":\"");
        if (rc == 0)
            rc = put_url(&b, c, r, 0, "/http-bind", 1);
        if (rc == 0)
            rc = mp_buf_puts(&b, "\"},{\"rel\":\"urn:xmpp:alt-connections:websocket\",\"href\":\"");
        if (rc == 0)
            rc = put_url(&b, c, r, 1, "/xmpp-websocket", 1);
        if (rc == 0)
            rc = mp_buf_puts(&b, "\"}]}\n");
    } else {
        rc = mp_buf_puts(&b, "<?xml version='1.0' encoding='utf-8'?>\n"
                             "<XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'>\n"
                             "  <Link rel='urn:xmpp:alt-connections:xbosh' href='");
        if (rc == 0)
            rc = put_url(&b, c, r, 0, "/http-bind", 0);
        if (rc == 0)
            rc = mp_buf_puts(&b, "'/>\n  <Link rel='urn:xmpp:alt-connections:websocket' href='");
        if (rc == 0)
            rc = put_url(&b, c, r, 1, "/xmpp-websocket", 0);
        if (rc == 0)
            rc = mp_buf_puts(&b, "'/>\n</XRD>\n");
    }
    if (rc < 0) {
        mp_buf_free(&b);
        mp_mux_close_now(c);
        return;
    }
    mp_http_respond(c, 200, json ? "application/json" : "application/xrd+xml; charset=utf-8",
                    "Cache-Control: max-age=300\r\n", b.data, b.len);
    mp_buf_free(&b);
}
