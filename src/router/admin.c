#include "router/admin.h"
#include "base/hex.h"
#include "auth/accounts.h"
#include "base/buf.h"
#include "base/config.h"
#include "base/err.h"
#include "base/log.h"
#include "router/core.h"
#include "storage/store.h"
#include "xmpp/jid.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#ifndef MAGPIE_VERSION
#define MAGPIE_VERSION "unknown"
#endif

/* A client has this long to send its request; a reply it does not read is dropped after the
 * grace period, so idle connections cannot hold the MP_ADMIN_MAX_CLIENTS slots forever. */
#define REQUEST_TIMEOUT_MS 10000
#define REPLY_GRACE_MS 60000
#define SWEEP_INTERVAL_MS 1000
#define OUTPUT_MAX (32u << 20)
#define ERR_MAX 256

typedef struct admin_client admin_client;

struct admin_client {
    uv_pipe_t pipe;
    uv_write_t wreq;
    mp_admin *admin;
    admin_client *prev, *next;
    uint64_t deadline; /* loop time (ms) by which the request must have arrived */
    int answered;      /* reply queued; nothing more is read */
    size_t in_len;
    mp_buf out;
    char in[MP_ADMIN_LINE_MAX + 1];
};

struct mp_admin {
    mp_core *core;
    uv_pipe_t listener;
    uv_timer_t sweep;
    admin_client *clients;
    int nclients;
    int handles; /* open handles (listener, timer, clients); freed when the last has closed */
    int stopping;
    char *path;
};

/* ---- protocol words ---------------------------------------------------------------------- */

static int
decode_word(char *w)
{
    char *o = w;

    for (const char *p = w; *p; p++) {
        if (*p != '%') {
            *o++ = *p;
            continue;
        }
        int hi = mp_hex_digit((unsigned char)p[1]);
        int lo = hi < 0 ? -1 : mp_hex_digit((unsigned char)p[2]);
        /* an encoded NUL would silently cut the argument short */
        if (hi < 0 || lo < 0 || (hi | lo) == 0)
            return MP_EINVAL;
        *o++ = (char)(hi << 4 | lo);
        p += 2;
    }
    *o = '\0';
    return 0;
}

int
mp_admin_split(char *line, char **argv, int max)
{
    int argc = 0;
    char *p = line;

    for (;;) {
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        if (argc == max)
            return MP_ELIMIT;
        argv[argc++] = p;
        while (*p && *p != ' ')
            p++;
        if (*p)
            *p++ = '\0';
    }
    for (int i = 0; i < argc; i++)
        if (decode_word(argv[i]) < 0)
            return MP_EINVAL;
    return argc;
}

int
mp_admin_encode(const char *in, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;

    if (cap == 0)
        return MP_ELIMIT;
    for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
        int esc = *p <= ' ' || *p == '%' || *p == 0x7f;
        if (n + (esc ? 3 : 1) >= cap)
            return MP_ELIMIT;
        if (esc) {
            out[n++] = '%';
            out[n++] = hex[*p >> 4];
            out[n++] = hex[*p & 15];
        } else {
            out[n++] = (char)*p;
        }
    }
    out[n] = '\0';
    return (int)n;
}

/* ---- commands shared with magpiectl --------------------------------------------------------- */

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int
fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return rc;
}

static int
account_fail(char *err, size_t errlen, int rc, const char *jid)
{
    switch (rc) {
    case MP_EEXIST:
        return fail(err, errlen, rc, "user %s already exists", jid);
    case MP_ENOTFOUND:
        return fail(err, errlen, rc, "user %s does not exist", jid);
    case MP_EINVAL:
        return fail(err, errlen, rc,
                    "invalid JID %s (expected user@host for a served host) or invalid password",
                    jid);
    case MP_EIO:
        return fail(err, errlen, rc, "storage error");
    default:
        return fail(err, errlen, rc, "%s", mp_strerror(rc));
    }
}

typedef struct list_ctx {
    mp_admin_emit_cb emit;
    void *ud;
    const char *domain;
    int rc;
} list_ctx;

static int
list_one(const char *node, void *ud)
{
    list_ctx *l = ud;
    char line[2 * MP_JID_PART_MAX + 2];

    snprintf(line, sizeof line, "%s@%s", node, l->domain);
    l->rc = l->emit(line, l->ud);
    return l->rc < 0;
}

static int
user_list(mp_store *st, const mp_config *cfg, const char *domain, mp_admin_emit_cb emit, void *ud,
          char *err, size_t errlen)
{
    char dom[MP_JID_PART_MAX + 1];
    list_ctx l = {.emit = emit, .ud = ud, .domain = dom};
    int rc;

    if (!domain) {
        if (cfg->nhosts == 0)
            return fail(err, errlen, MP_EINVAL, "no hosts configured");
        domain = cfg->hosts[0];
    }
    if (mp_jid_nameprep(domain, strlen(domain), dom, sizeof dom) < 0)
        return fail(err, errlen, MP_EINVAL, "invalid domain %s", domain);
    size_t i = 0;
    while (i < cfg->nhosts && strcasecmp(cfg->hosts[i], dom) != 0)
        i++;
    if (i == cfg->nhosts)
        return fail(err, errlen, MP_EINVAL, "%s is not a served host", dom);
    rc = st->ops->user_list(st, dom, list_one, &l);
    if (l.rc < 0)
        return fail(err, errlen, l.rc, "listing aborted: %s", mp_strerror(l.rc));
    if (rc < 0)
        return fail(err, errlen, rc, "storage error");
    return 0;
}

int
mp_admin_user_cmd(mp_store *st, const mp_config *cfg, int argc, char **argv, mp_admin_emit_cb emit,
                  void *ud, char *err, size_t errlen)
{
    const char *sub = argc > 1 ? argv[1] : "";
    int rc;

    if (strcmp(sub, "add") == 0 && argc == 4)
        rc = mp_account_create(st, cfg, argv[2], argv[3]);
    else if (strcmp(sub, "passwd") == 0 && argc == 4)
        rc = mp_account_passwd(st, cfg, argv[2], argv[3]);
    else if (strcmp(sub, "delete") == 0 && argc == 3)
        rc = mp_account_delete(st, cfg, argv[2]);
    else if (strcmp(sub, "list") == 0 && argc <= 3)
        return user_list(st, cfg, argc == 3 ? argv[2] : NULL, emit, ud, err, errlen);
    else
        return fail(err, errlen, MP_EINVAL,
                    "usage: user add JID PASSWORD | user delete JID | user passwd JID PASSWORD | "
                    "user list [DOMAIN]");
    return rc < 0 ? account_fail(err, errlen, rc, argv[2]) : 0;
}

/* ---- server-side commands ------------------------------------------------------------------ */

/* Text from a client (a JID in a message) must not end a protocol or log line early. */
static void
sanitize(char *p)
{
    for (; *p; p++)
        if ((unsigned char)*p < ' ' || *p == 0x7f)
            *p = '?';
}

static int
client_emit(const char *text, void *ud)
{
    admin_client *c = ud;
    size_t start = c->out.len + 5;

    if (c->out.len + strlen(text) + 6 > OUTPUT_MAX)
        return MP_ELIMIT;
    if (mp_buf_puts(&c->out, "data ") < 0 || mp_buf_puts(&c->out, text) < 0 ||
        mp_buf_append(&c->out, "", 1) < 0)
        return MP_ENOMEM;
    sanitize(c->out.data + start);
    c->out.data[c->out.len - 1] = '\n';
    return 0;
}

typedef struct sessions_ctx {
    admin_client *c;
    int rc;
} sessions_ctx;

static int
session_line(const mp_core_session_info *s, void *ud)
{
    sessions_ctx *x = ud;
    char since[32], line[3 * MP_JID_PART_MAX + 128];
    time_t t = (time_t)s->since;
    struct tm tm;

    if (!gmtime_r(&t, &tm) || !strftime(since, sizeof since, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(since, sizeof since, "%lld", (long long)s->since);
    snprintf(line, sizeof line, "%s %s %s %s%s", s->full_jid, s->ip && *s->ip ? s->ip : "-",
             s->tls ? "tls" : "plain", since, s->detached ? " waiting-for-resumption" : "");
    x->rc = client_emit(line, x->c);
    return x->rc < 0;
}

static int
cmd_sessions(admin_client *c, char *err, size_t errlen)
{
    sessions_ctx x = {.c = c};

    mp_core_sessions_foreach(c->admin->core, NULL, session_line, &x);
    if (x.rc < 0)
        return fail(err, errlen, x.rc, "listing aborted: %s", mp_strerror(x.rc));
    return 0;
}

static int
cmd_kick(admin_client *c, const char *jid, char *err, size_t errlen)
{
    char line[64];
    int n = mp_core_kick(c->admin->core, jid, "Disconnected by the administrator");

    if (n <= 0)
        return fail(err, errlen, MP_ENOTFOUND, "no session matches %s", jid);
    snprintf(line, sizeof line, "%d session%s closed", n, n == 1 ? "" : "s");
    return client_emit(line, c) < 0 ? fail(err, errlen, MP_ENOMEM, "out of memory") : 0;
}

static int
cmd_status(admin_client *c, char *err, size_t errlen)
{
    mp_core_stats s;
    char line[64];

    memset(&s, 0, sizeof s);
    mp_core_stats_get(c->admin->core, &s);
    const struct {
        const char *name;
        uint64_t value;
    } rows[] = {
        {"uptime", s.uptime_s},
        {"connections", s.connections},
        {"sessions", s.sessions},
        {"stanzas_in", s.stanzas_in},
        {"stanzas_routed", s.stanzas_routed},
        {"auth_ok", s.auth_ok},
        {"auth_failed", s.auth_failed},
    };
    if (client_emit("version " MAGPIE_VERSION, c) < 0)
        return fail(err, errlen, MP_ENOMEM, "out of memory");
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        snprintf(line, sizeof line, "%s %llu", rows[i].name, (unsigned long long)rows[i].value);
        if (client_emit(line, c) < 0)
            return fail(err, errlen, MP_ENOMEM, "out of memory");
    }
    return 0;
}

static int
dispatch(admin_client *c, int argc, char **argv, char *err, size_t errlen)
{
    mp_core *core = c->admin->core;

    if (strcmp(argv[0], "user") == 0) {
        int rc = mp_admin_user_cmd(mp_core_store(core), mp_core_config(core), argc, argv,
                                   client_emit, c, err, errlen);
        /* a deleted account must not stay logged in */
        if (rc == 0 && argc == 3 && strcmp(argv[1], "delete") == 0 &&
            mp_core_kick(core, argv[2], "Account deleted") > 0)
            mp_info("admin: closed the sessions of deleted user %s", argv[2]);
        return rc;
    }
    if (strcmp(argv[0], "sessions") == 0 && argc == 1)
        return cmd_sessions(c, err, errlen);
    if (strcmp(argv[0], "kick") == 0 && argc == 2)
        return cmd_kick(c, argv[1], err, errlen);
    if (strcmp(argv[0], "status") == 0 && argc == 1)
        return cmd_status(c, err, errlen);
    return fail(err, errlen, MP_EINVAL, "unknown command or wrong arguments");
}

/* The words worth logging: never a password (the 4th word of "user add|passwd"), never a word
 * of an unknown command, no control characters. */
static void
describe(int argc, char **argv, char *out, size_t cap)
{
    static const char *const known[] = {"user", "sessions", "kick", "status"};
    int show = 0;
    size_t n = 0;

    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(argv[0], known[i]) == 0)
            show = strcmp(argv[0], "user") == 0 ? 3 : 2;
    if (show == 0) {
        snprintf(out, cap, "(unknown command)");
        return;
    }
    out[0] = '\0';
    for (int i = 0; i < argc && i < show && n + 1 < cap; i++) {
        int m = snprintf(out + n, cap - n, "%s%.64s", i ? " " : "", argv[i]);
        if (m < 0 || (size_t)m >= cap - n)
            break;
        n += (size_t)m;
    }
    sanitize(out);
}

/* ---- connections ------------------------------------------------------------------------- */

static void
admin_unref(mp_admin *a)
{
    if (--a->handles > 0)
        return;
    free(a->path);
    free(a);
}

static void
on_handle_closed(uv_handle_t *h)
{
    admin_unref(h->data);
}

static void
on_client_closed(uv_handle_t *h)
{
    admin_client *c = h->data;
    mp_admin *a = c->admin;

    if (c->prev)
        c->prev->next = c->next;
    else
        a->clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    a->nclients--;
    mp_buf_free(&c->out);
    explicit_bzero(c->in, sizeof c->in);
    free(c);
    admin_unref(a);
}

static void
client_close(admin_client *c)
{
    if (!uv_is_closing((uv_handle_t *)&c->pipe))
        uv_close((uv_handle_t *)&c->pipe, on_client_closed);
}

static void
on_written(uv_write_t *req, int status)
{
    client_close(req->data);
}

/* Queue "error <msg>" or "ok" after whatever data lines the command produced, then close. */
static void
client_finish(admin_client *c, int rc, const char *msg)
{
    int r;

    c->answered = 1;
    uv_read_stop((uv_stream_t *)&c->pipe);
    explicit_bzero(c->in, sizeof c->in);
    if (rc < 0)
        r = mp_buf_printf(&c->out, "error %s\n", msg);
    else
        r = mp_buf_puts(&c->out, "ok\n");
    if (r < 0) {
        mp_err("admin: out of memory for a reply");
        client_close(c);
        return;
    }
    uv_buf_t buf = uv_buf_init(c->out.data, (unsigned)c->out.len);
    c->wreq.data = c;
    if (uv_write(&c->wreq, (uv_stream_t *)&c->pipe, &buf, 1, on_written) < 0)
        client_close(c);
}

static void
client_request(admin_client *c)
{
    char *argv[MP_ADMIN_ARGS_MAX];
    char err[ERR_MAX] = "", what[256];
    size_t len = strlen(c->in);

    if (len > 0 && c->in[len - 1] == '\r')
        c->in[--len] = '\0';
    int argc = mp_admin_split(c->in, argv, MP_ADMIN_ARGS_MAX);
    if (argc <= 0) {
        mp_warn("admin: malformed request (%s)", argc == 0 ? "empty" : mp_strerror(argc));
        client_finish(c, MP_EINVAL, "malformed request");
        return;
    }
    describe(argc, argv, what, sizeof what);
    int rc = dispatch(c, argc, argv, err, sizeof err);
    sanitize(err);
    if (rc < 0) {
        /* the message names at most a JID or domain, never a password */
        mp_warn("admin: %s: %s", what, err);
        c->out.len = 0; /* partial output of a failed command would mislead */
    } else {
        mp_info("admin: %s", what);
    }
    client_finish(c, rc, err);
}

static void
on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    admin_client *c = h->data;

    buf->base = c->in + c->in_len;
    buf->len = MP_ADMIN_LINE_MAX - c->in_len;
}

static void
on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    admin_client *c = s->data;

    if (c->answered || nread == 0)
        return;
    if (nread < 0) {
        /* a request without its final newline still counts when the client half-closes */
        if (nread == UV_EOF && c->in_len > 0) {
            c->in[c->in_len] = '\0';
            if (memchr(c->in, '\0', c->in_len)) {
                mp_warn("admin: malformed request (NUL byte)");
                client_finish(c, MP_EINVAL, "malformed request");
                return;
            }
            client_request(c);
        } else {
            client_close(c);
        }
        return;
    }
    size_t old = c->in_len;
    c->in_len += (size_t)nread;
    char *nl = memchr(c->in + old, '\n', (size_t)nread);
    if (nl) {
        *nl = '\0';
        if (memchr(c->in, '\0', (size_t)(nl - c->in))) {
            mp_warn("admin: malformed request (NUL byte)");
            client_finish(c, MP_EINVAL, "malformed request");
            return;
        }
        client_request(c);
    } else if (c->in_len >= MP_ADMIN_LINE_MAX) {
        mp_warn("admin: request line longer than %d bytes", MP_ADMIN_LINE_MAX);
        client_finish(c, MP_ELIMIT, "request line too long");
    }
}

static void
on_connection(uv_stream_t *server, int status)
{
    mp_admin *a = server->data;
    uv_loop_t *loop = server->loop;

    if (status < 0) {
        mp_warn("admin: accept failed: %s", uv_strerror(status));
        return;
    }
    admin_client *c = calloc(1, sizeof *c);
    if (!c) {
        mp_err("admin: out of memory for a client");
        return;
    }
    uv_pipe_init(loop, &c->pipe, 0);
    c->pipe.data = c;
    c->admin = a;
    c->next = a->clients;
    if (a->clients)
        a->clients->prev = c;
    a->clients = c;
    a->nclients++;
    a->handles++;
    c->deadline = uv_now(loop) + REQUEST_TIMEOUT_MS;
    int r = uv_accept(server, (uv_stream_t *)&c->pipe);
    if (r < 0) {
        mp_warn("admin: accept failed: %s", uv_strerror(r));
        client_close(c);
        return;
    }
    if (a->nclients > MP_ADMIN_MAX_CLIENTS) {
        mp_warn("admin: more than %d clients, refusing one", MP_ADMIN_MAX_CLIENTS);
        client_finish(c, MP_ELIMIT, "too many admin clients, try again");
        return;
    }
    r = uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read);
    if (r < 0) {
        mp_warn("admin: cannot read from a client: %s", uv_strerror(r));
        client_close(c);
    }
}

static void
on_sweep(uv_timer_t *t)
{
    mp_admin *a = t->data;
    uint64_t now = uv_now(t->loop);

    for (admin_client *c = a->clients; c; c = c->next) {
        if (uv_is_closing((uv_handle_t *)&c->pipe))
            continue;
        if (!c->answered && now >= c->deadline) {
            mp_warn("admin: client sent no request within %d s", REQUEST_TIMEOUT_MS / 1000);
            client_finish(c, MP_ELIMIT, "timeout waiting for the request");
        } else if (c->answered && now >= c->deadline + REPLY_GRACE_MS) {
            mp_warn("admin: client did not read its reply, closing it");
            client_close(c);
        }
    }
}

/* ---- listener ---------------------------------------------------------------------------- */

static int
fill_addr(const char *path, struct sockaddr_un *sa)
{
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sa->sun_path)
        return MP_EINVAL;
    memcpy(sa->sun_path, path, strlen(path));
    return 0;
}

/* A socket file left by a server that died is removed; a live server's socket, or any other kind
 * of file, is left alone. */
static int
clear_stale_socket(const char *path)
{
    struct sockaddr_un sa;
    struct stat st;

    if (lstat(path, &st) < 0) {
        if (errno == ENOENT)
            return 0;
        mp_err("admin: cannot stat %s: %s", path, strerror(errno));
        return MP_EIO;
    }
    if (!S_ISSOCK(st.st_mode)) {
        mp_err("admin: %s exists and is not a socket", path);
        return MP_EEXIST;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        mp_err("admin: socket: %s", strerror(errno));
        return MP_EIO;
    }
    fill_addr(path, &sa);
    int r = connect(fd, (struct sockaddr *)&sa, sizeof sa);
    int e = errno;
    close(fd);
    if (r == 0 || e == EAGAIN || e == EINPROGRESS) {
        mp_err("admin: another server is listening on %s", path);
        return MP_EEXIST;
    }
    if (e != ECONNREFUSED && e != ENOENT) {
        mp_err("admin: cannot probe %s: %s", path, strerror(e));
        return MP_EIO;
    }
    if (unlink(path) < 0 && errno != ENOENT) {
        mp_err("admin: cannot remove stale socket %s: %s", path, strerror(errno));
        return MP_EIO;
    }
    mp_info("admin: removed stale socket %s", path);
    return 0;
}

static int
listen_on(mp_admin *a)
{
    int r = uv_pipe_bind(&a->listener, a->path);

    if (r < 0) {
        mp_err("admin: cannot bind %s: %s", a->path, uv_strerror(r));
        return MP_EIO;
    }
    /* The data dir is 0700 too, which covers the moment between bind and chmod. */
    if (chmod(a->path, 0600) < 0) {
        mp_err("admin: cannot chmod %s: %s", a->path, strerror(errno));
        unlink(a->path);
        return MP_EIO;
    }
    r = uv_listen((uv_stream_t *)&a->listener, MP_ADMIN_MAX_CLIENTS, on_connection);
    if (r < 0) {
        mp_err("admin: cannot listen on %s: %s", a->path, uv_strerror(r));
        unlink(a->path);
        return MP_EIO;
    }
    return 0;
}

int
mp_admin_start(mp_core *core, const char *socket_path, mp_admin **out)
{
    struct sockaddr_un sa;
    uv_loop_t *loop = mp_core_loop(core);
    int rc;

    *out = NULL;
    if (!socket_path || !*socket_path || fill_addr(socket_path, &sa) < 0) {
        mp_err("admin: socket path \"%s\" is empty or longer than %zu bytes",
               socket_path ? socket_path : "", sizeof sa.sun_path - 1);
        return MP_EINVAL;
    }
    if ((rc = clear_stale_socket(socket_path)) < 0)
        return rc;
    mp_admin *a = calloc(1, sizeof *a);
    if (!a || !(a->path = strdup(socket_path))) {
        free(a);
        mp_err("admin: out of memory");
        return MP_ENOMEM;
    }
    a->core = core;
    uv_pipe_init(loop, &a->listener, 0);
    a->listener.data = a;
    uv_timer_init(loop, &a->sweep);
    a->sweep.data = a;
    a->handles = 2;
    if ((rc = listen_on(a)) < 0) {
        a->stopping = 1;
        uv_close((uv_handle_t *)&a->listener, on_handle_closed);
        uv_close((uv_handle_t *)&a->sweep, on_handle_closed);
        return rc;
    }
    uv_timer_start(&a->sweep, on_sweep, SWEEP_INTERVAL_MS, SWEEP_INTERVAL_MS);
    uv_unref((uv_handle_t *)&a->sweep);
    mp_info("admin: listening on %s", a->path);
    *out = a;
    return 0;
}

void
mp_admin_stop(mp_admin *a)
{
    if (!a || a->stopping)
        return;
    a->stopping = 1;
    for (admin_client *c = a->clients; c; c = c->next)
        client_close(c);
    uv_close((uv_handle_t *)&a->listener, on_handle_closed);
    uv_close((uv_handle_t *)&a->sweep, on_handle_closed);
    if (unlink(a->path) < 0 && errno != ENOENT)
        mp_warn("admin: cannot remove %s: %s", a->path, strerror(errno));
}
