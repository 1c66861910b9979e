/* The web client's files: GET and HEAD of /chat/... from <http.web_root>/chat/.
 *
 * The path is percent-decoded once, then checked segment by segment: no "..", no hidden
 * files, no NUL or backslash. Opening and fstat are blocking calls on a local disk, which is
 * accepted; the body is read in pieces by http.c as the client takes it. */
#include "mux/http.h"
#include "base/hex.h"
#include "base/err.h"
#include "base/log.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_PATH 1024

static const struct {
    const char *ext, *type;
} types[] = {
    {"html", "text/html; charset=utf-8"},
    {"htm", "text/html; charset=utf-8"},
    {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},
    {"json", "application/json"},
    {"map", "application/json"},
    {"svg", "image/svg+xml"},
    {"png", "image/png"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},
    {"webp", "image/webp"},
    {"ico", "image/x-icon"},
    {"woff", "font/woff"},
    {"woff2", "font/woff2"},
    {"ttf", "font/ttf"},
    {"otf", "font/otf"},
    {"wasm", "application/wasm"},
    {"txt", "text/plain; charset=utf-8"},
    {"xml", "application/xml"},
    {"webmanifest", "application/manifest+json"},
    {"mp3", "audio/mpeg"},
    {"ogg", "audio/ogg"},
};

static const char *
content_type(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *dot = strrchr(slash ? slash : path, '.');
    if (dot)
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
            if (strcasecmp(dot + 1, types[i].ext) == 0)
                return types[i].type;
    return "application/octet-stream";
}

/* The part of the path after "/chat/", decoded into out and checked. Returns 0, or the HTTP
 * status to answer. */
static int
decode_path(const char *p, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = p[i];
        if (ch == '%') {
            int hi = i + 2 < n ? mp_hex_digit(p[i + 1]) : -1,
                lo = i + 2 < n ? mp_hex_digit(p[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return 400;
            ch = (char)(hi * 16 + lo);
            i += 2;
        }
        if (ch == '\0' || ch == '\\')
            return 404;
        if (o + 1 >= cap)
            return 414;
        out[o++] = ch;
    }
    out[o] = '\0';
    /* Every segment: not empty in the middle, not "." or "..", not hidden. */
    for (const char *s = out; *s;) {
        const char *e = strchr(s, '/');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        if (len == 0 || s[0] == '.')
            return 404;
        s += len + (e ? 1 : 0);
    }
    return 0;
}

void
mp_static_request(mp_conn *c, const mp_http_request *r)
{
    char rel[MAX_PATH], full[MAX_PATH * 2];
    int st = decode_path(r->path + 6, r->path_len - 6, rel, sizeof rel);
    if (st) {
        mp_debug("conn %016llx (%s): static path refused (%d)", (unsigned long long)c->id, c->ip,
                 st);
        mp_http_respond(c, st, "text/plain; charset=utf-8", NULL, "not found\n", 10);
        return;
    }
    size_t rl = strlen(rel);
    int n = snprintf(full, sizeof full, "%s/chat/%s%s", c->mux->cfg->http_web_root, rel,
                     rl == 0 || rel[rl - 1] == '/' ? "index.html" : "");
    if (n < 0 || (size_t)n >= sizeof full) {
        mp_http_respond(c, 414, "text/plain; charset=utf-8", NULL, "path too long\n", 14);
        return;
    }
    int fd = open(full, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) < 0) {
        if (fd >= 0)
            close(fd);
        mp_http_respond(c, 404, "text/plain; charset=utf-8", NULL, "not found\n", 10);
        return;
    }
    if (S_ISDIR(sb.st_mode)) {
        close(fd);
        /* A folder named without its slash: relative links inside it need the slash. */
        char loc[MAX_PATH + 32];
        if (snprintf(loc, sizeof loc, "Location: %.*s/\r\n", (int)r->path_len, r->path) >=
            (int)sizeof loc) {
            mp_http_respond(c, 414, "text/plain; charset=utf-8", NULL, "path too long\n", 14);
            return;
        }
        mp_http_respond(c, 301, "text/plain; charset=utf-8", loc, "moved\n", 6);
        return;
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        mp_http_respond(c, 404, "text/plain; charset=utf-8", NULL, "not found\n", 10);
        return;
    }
    /* Pages are revalidated so that an upgrade shows at once; the rest may be cached. */
    const char *type = content_type(full);
    const char *cache = strncmp(type, "text/html", 9) == 0
                            ? "Cache-Control: no-cache\r\nX-Content-Type-Options: nosniff\r\n"
                            : "Cache-Control: public, max-age=3600\r\n"
                              "X-Content-Type-Options: nosniff\r\n";
    mp_http_respond_fd(c, 200, type, cache, fd, (size_t)sb.st_size);
}
