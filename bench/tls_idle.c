/* tls_idle: memory per idle TLS session of an XMPP server.
 *
 * Opens N client sessions over TLS (direct TLS, XEP-0368, or STARTTLS on the plain port), each
 * authenticating with SASL PLAIN, binding a resource (plus the legacy session IQ when the server
 * says it is required) and sending initial presence, then holds them idle. Reads VmRSS of the
 * server PIDs from /proc before the first connect, after the logins plus --settle seconds, and
 * at the end of the hold, and prints (RSS loaded - RSS before) / sessions -- the same figure as
 * the shared load generator's idle scenario (xmppload -s idle), which speaks plain TCP only.
 *
 * One process, one thread, epoll (edge-triggered), non-blocking OpenSSL. The server certificate
 * is not verified (the benchmark server uses a self-signed one).
 *
 *   tls_idle -p 25280 -u 10000 --pids 1234                 # direct TLS
 *   tls_idle -p 25222 --starttls -u 10000 --pids 1234      # STARTTLS
 *
 * One JSON line on stdout, a summary on stderr. Exit 1 if no session logged in. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define IN_CAP 16384
#define OUT_CAP 4096
#define MAX_PIDS 16

enum state {
    ST_FREE,
    ST_CONNECTING,
    ST_PLAIN_FEATURES, /* STARTTLS: waiting for the first stream features */
    ST_PROCEED,        /* STARTTLS: waiting for <proceed/> */
    ST_HANDSHAKE,
    ST_FEATURES,  /* waiting for features with the SASL mechanisms */
    ST_AUTH,      /* waiting for <success/> */
    ST_FEATURES2, /* after the stream restart: bind */
    ST_BIND,
    ST_SESSION,
    ST_IDLE,
    ST_DEAD,
};

typedef struct conn {
    int fd;
    enum state st;
    SSL *ssl;
    int connected;
    int need_session;
    char *in;
    size_t inlen;
    char out[OUT_CAP];
    size_t outlen, outoff;
} conn;

static struct {
    const char *host, *domain, *prefix, *password;
    int port, users, first, concurrency, starttls, src_ips, npids;
    int pids[MAX_PIDS];
    double settle, hold, timeout;
} opt = {
    .host = "127.0.0.1",
    .domain = "localhost",
    .prefix = "user",
    .password = "secret",
    .port = 25280,
    .users = 100,
    .first = 1,
    .concurrency = 100,
    .src_ips = 4,
    .settle = 5,
    .hold = 5,
    .timeout = 300,
};

static int epfd;
static conn *conns;
static SSL_CTX *ctx;
static struct sockaddr_in dst;
static int next_user, in_flight, n_ok, n_failed, n_closed;
static char first_error[256];
static char tls_desc[128];
static volatile sig_atomic_t interrupted;

static uint64_t
now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void
die(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fputs("tls_idle: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(2);
}

static long
pid_rss_kb(int pid)
{
    char path[64], line[256];
    long kb = -1;

    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

static long
servers_rss_kb(void)
{
    long sum = 0;

    for (int i = 0; i < opt.npids; i++) {
        long r = pid_rss_kb(opt.pids[i]);
        if (r < 0)
            return -1;
        sum += r;
    }
    return opt.npids ? sum : -1;
}

static void
conn_fail(conn *c, const char *why)
{
    if (c->st == ST_IDLE) {
        n_closed++;
        n_ok--;
    } else {
        n_failed++;
        in_flight--;
    }
    if (!first_error[0]) {
        int len = (int)(c->inlen < 120 ? c->inlen : 120);
        snprintf(first_error, sizeof first_error, "%s (got: %.*s)", why, len, c->in ? c->in : "");
    }
    if (c->ssl)
        SSL_free(c->ssl);
    c->ssl = NULL;
    close(c->fd);
    c->fd = -1;
    free(c->in);
    c->in = NULL;
    c->st = ST_DEAD;
}

static void
queue(conn *c, const char *s)
{
    size_t n = strlen(s);

    if (c->outlen + n > OUT_CAP)
        die("output buffer overflow");
    memcpy(c->out + c->outlen, s, n);
    c->outlen += n;
}

static void
queue_header(conn *c)
{
    char h[512];

    snprintf(h, sizeof h,
             "<?xml version='1.0'?><stream:stream to='%s' version='1.0' xml:lang='en' "
             "xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>",
             opt.domain);
    queue(c, h);
}

/* Returns -1 on a fatal error, 0 otherwise (everything written or the socket is full). */
static int
flush_out(conn *c)
{
    while (c->outoff < c->outlen) {
        size_t n = c->outlen - c->outoff;
        ssize_t w;
        if (c->ssl) {
            int r = SSL_write(c->ssl, c->out + c->outoff, (int)n);
            if (r <= 0) {
                int e = SSL_get_error(c->ssl, r);
                if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ)
                    return 0;
                return -1;
            }
            w = r;
        } else {
            w = send(c->fd, c->out + c->outoff, n, MSG_NOSIGNAL);
            if (w < 0)
                return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
        }
        c->outoff += (size_t)w;
    }
    c->outlen = c->outoff = 0;
    return 0;
}

static int
has(const conn *c, const char *s)
{
    return c->inlen && memmem(c->in, c->inlen, s, strlen(s)) != NULL;
}

static int
features_done(const conn *c)
{
    return has(c, "</stream:features>") || has(c, "<stream:features/>");
}

static int
stream_failed(const conn *c)
{
    return has(c, "<stream:error") || has(c, "</stream:stream>");
}

static void
consume(conn *c)
{
    c->inlen = 0;
}

static void
start_tls(conn *c)
{
    c->ssl = SSL_new(ctx);
    if (!c->ssl)
        die("SSL_new failed");
    SSL_set_fd(c->ssl, c->fd);
    SSL_set_tlsext_host_name(c->ssl, opt.domain);
    if (!opt.starttls)
        SSL_set_alpn_protos(c->ssl, (const unsigned char *)"\x0bxmpp-client", 12);
    SSL_set_connect_state(c->ssl);
    c->st = ST_HANDSHAKE;
}

static void
logged_in(conn *c)
{
    queue(c, "<presence/>");
    c->st = ST_IDLE;
    in_flight--;
    n_ok++;
}

/* The protocol, driven by whatever has arrived. Returns -1 when the connection failed. */
static int
advance(conn *c)
{
    char buf[1024], b64[700];

    if (c->st != ST_IDLE && stream_failed(c)) {
        conn_fail(c, "stream error");
        return -1;
    }
    switch (c->st) {
    case ST_PLAIN_FEATURES:
        if (!features_done(c))
            return 0;
        if (!has(c, "urn:ietf:params:xml:ns:xmpp-tls")) {
            conn_fail(c, "no starttls offered");
            return -1;
        }
        consume(c);
        queue(c, "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
        c->st = ST_PROCEED;
        return 0;
    case ST_PROCEED:
        if (!has(c, "<proceed"))
            return 0;
        consume(c);
        start_tls(c);
        return 0;
    case ST_FEATURES: {
        if (!features_done(c))
            return 0;
        if (!has(c, "<mechanism>PLAIN</mechanism>")) {
            conn_fail(c, "PLAIN not offered");
            return -1;
        }
        consume(c);
        int user = (int)(c - conns) + opt.first;
        int n = snprintf(buf, sizeof buf, "%c%s%d%c%s", 0, opt.prefix, user, 0, opt.password);
        EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)buf, n);
        snprintf(buf, sizeof buf,
                 "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>%s</auth>", b64);
        queue(c, buf);
        c->st = ST_AUTH;
        return 0;
    }
    case ST_AUTH:
        if (has(c, "<failure")) {
            conn_fail(c, "auth failed");
            return -1;
        }
        if (!has(c, "<success"))
            return 0;
        consume(c);
        queue_header(c);
        c->st = ST_FEATURES2;
        return 0;
    case ST_FEATURES2: {
        if (!features_done(c))
            return 0;
        /* The legacy session IQ only when the server says it is required (no <optional/>). */
        const char *s = memmem(c->in, c->inlen, "urn:ietf:params:xml:ns:xmpp-session", 35);
        c->need_session = s && !memmem(s, c->inlen - (size_t)(s - c->in), "<optional", 9);
        consume(c);
        queue(c, "<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                 "<resource>idle</resource></bind></iq>");
        c->st = ST_BIND;
        return 0;
    }
    case ST_BIND:
    case ST_SESSION:
        if (has(c, "type='error'") || has(c, "type=\"error\"")) {
            conn_fail(c, c->st == ST_BIND ? "bind failed" : "session failed");
            return -1;
        }
        if (!has(c, "type='result'") && !has(c, "type=\"result\""))
            return 0;
        if (c->st == ST_BIND && !has(c, "</iq>"))
            return 0;
        consume(c);
        if (c->st == ST_BIND && c->need_session) {
            queue(c, "<iq type='set' id='s1'>"
                     "<session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>");
            c->st = ST_SESSION;
            return 0;
        }
        logged_in(c);
        return 0;
    case ST_IDLE:
        if (stream_failed(c)) {
            conn_fail(c, "server closed an idle session");
            return -1;
        }
        consume(c); /* presence echoes and the like */
        return 0;
    default:
        return 0;
    }
}

/* Read everything available. Returns -1 when the connection failed. */
static int
read_in(conn *c)
{
    for (;;) {
        if (c->inlen == IN_CAP) {
            conn_fail(c, "input buffer full");
            return -1;
        }
        ssize_t r;
        size_t room = IN_CAP - c->inlen;
        if (c->ssl) {
            int n = SSL_read(c->ssl, c->in + c->inlen, (int)room);
            if (n <= 0) {
                int e = SSL_get_error(c->ssl, n);
                if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                    return 0;
                conn_fail(c, e == SSL_ERROR_ZERO_RETURN ? "TLS closed" : "TLS read error");
                return -1;
            }
            r = n;
        } else {
            r = recv(c->fd, c->in + c->inlen, room, 0);
            if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                return 0;
            if (r <= 0) {
                conn_fail(c, r == 0 ? "connection closed" : "read error");
                return -1;
            }
        }
        c->inlen += (size_t)r;
        enum state before = c->st;
        if (advance(c) < 0)
            return -1;
        /* After <proceed/> the rest of the socket belongs to TLS: stop reading plain text. */
        if (before == ST_PROCEED && c->st == ST_HANDSHAKE)
            return 0;
    }
}

/* Do all the work possible on c without blocking. */
static void
service(conn *c)
{
    if (c->st == ST_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err) {
            conn_fail(c, "connect failed");
            return;
        }
        if (!c->connected)
            return;
        if (opt.starttls) {
            queue_header(c);
            c->st = ST_PLAIN_FEATURES;
        } else {
            start_tls(c);
        }
    }
    for (;;) {
        if (c->st == ST_HANDSHAKE) {
            int r = SSL_do_handshake(c->ssl);
            if (r != 1) {
                int e = SSL_get_error(c->ssl, r);
                if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                    return;
                unsigned long ee = ERR_get_error();
                char why[160];
                snprintf(why, sizeof why, "TLS handshake failed: %s",
                         ee ? ERR_error_string(ee, NULL) : "peer closed");
                conn_fail(c, why);
                return;
            }
            if (!tls_desc[0])
                snprintf(tls_desc, sizeof tls_desc, "%s %s", SSL_get_version(c->ssl),
                         SSL_get_cipher_name(c->ssl));
            queue_header(c);
            c->st = ST_FEATURES;
        }
        if (flush_out(c) < 0) {
            conn_fail(c, "write error");
            return;
        }
        enum state before = c->st;
        if (read_in(c) < 0)
            return;
        /* Just switched to TLS after <proceed/>: start the handshake now. */
        if (before != ST_HANDSHAKE && c->st == ST_HANDSHAKE)
            continue;
        /* What the reads made us say (the socket may be full: EPOLLOUT brings us back). */
        if (flush_out(c) < 0)
            conn_fail(c, "write error");
        return;
    }
}

static void
open_next(void)
{
    int i = next_user++;
    conn *c = &conns[i];

    c->in = malloc(IN_CAP);
    if (!c->in)
        die("out of memory");
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        die("socket: %s", strerror(errno));
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (opt.src_ips > 1) {
        struct sockaddr_in src = {.sin_family = AF_INET};
        src.sin_addr.s_addr = htonl(0x7f000001u + (uint32_t)(i % opt.src_ips));
        if (bind(c->fd, (struct sockaddr *)&src, sizeof src) < 0)
            die("bind source address: %s", strerror(errno));
    }
    c->st = ST_CONNECTING;
    in_flight++;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET | EPOLLRDHUP, .data.ptr = c};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0)
        die("epoll_ctl: %s", strerror(errno));
    if (connect(c->fd, (struct sockaddr *)&dst, sizeof dst) == 0) {
        c->connected = 1;
        service(c);
    } else if (errno != EINPROGRESS) {
        conn_fail(c, "connect failed");
    }
}

/* Run the event loop for up to seconds (logins keep being started as others finish). */
static void
pump(double seconds, int until_logged_in)
{
    struct epoll_event evs[256];
    uint64_t end = now_ns() + (uint64_t)(seconds * 1e9);

    while (!interrupted) {
        while (in_flight < opt.concurrency && next_user < opt.users)
            open_next();
        if (until_logged_in && next_user == opt.users && in_flight == 0)
            return;
        uint64_t t = now_ns();
        if (t >= end)
            return;
        int ms = (int)((end - t) / 1000000) + 1;
        int n = epoll_wait(epfd, evs, 256, ms > 100 ? 100 : ms);
        for (int i = 0; i < n; i++) {
            conn *c = evs[i].data.ptr;
            if (c->st == ST_DEAD)
                continue;
            if (c->st == ST_CONNECTING)
                c->connected = 1;
            service(c);
        }
    }
}

static void
on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

static void
usage(FILE *f)
{
    fputs("usage: tls_idle [options]\n"
          "  -H, --host ADDR (127.0.0.1)     -p, --port N (25280: direct TLS)\n"
          "      --starttls       plain port with STARTTLS instead of direct TLS\n"
          "  -d, --domain D (localhost)      -u, --users N (100)\n"
          "      --first N (1)  --prefix user  --password secret\n"
          "  -c, --concurrency N  logins in flight (100)\n"
          "      --settle S       wait after the last login before reading RSS (5)\n"
          "  -t, --hold S         hold the sessions idle, then read RSS again (5)\n"
          "      --src-ips N      spread source addresses over 127.0.0.1..N (4)\n"
          "      --login-timeout S (300)\n"
          "      --pids P1,P2..   server PIDs whose VmRSS is summed\n",
          f);
}

static void
parse_pids(const char *s)
{
    char *copy = strdup(s), *save = NULL;

    if (!copy)
        die("out of memory");
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (opt.npids == MAX_PIDS)
            die("too many pids");
        opt.pids[opt.npids++] = atoi(t);
    }
    free(copy);
}

int
main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"host", 1, 0, 'H'},        {"port", 1, 0, 'p'},
        {"domain", 1, 0, 'd'},      {"users", 1, 0, 'u'},
        {"concurrency", 1, 0, 'c'}, {"hold", 1, 0, 't'},
        {"starttls", 0, 0, 1},      {"first", 1, 0, 2},
        {"prefix", 1, 0, 3},        {"password", 1, 0, 4},
        {"settle", 1, 0, 5},        {"src-ips", 1, 0, 6},
        {"login-timeout", 1, 0, 7}, {"pids", 1, 0, 8},
        {"help", 0, 0, 'h'},        {0, 0, 0, 0},
    };
    int ch;

    while ((ch = getopt_long(argc, argv, "H:p:d:u:c:t:h", lo, NULL)) != -1) {
        switch (ch) {
        case 'H':
            opt.host = optarg;
            break;
        case 'p':
            opt.port = atoi(optarg);
            break;
        case 'd':
            opt.domain = optarg;
            break;
        case 'u':
            opt.users = atoi(optarg);
            break;
        case 'c':
            opt.concurrency = atoi(optarg);
            break;
        case 't':
            opt.hold = atof(optarg);
            break;
        case 1:
            opt.starttls = 1;
            break;
        case 2:
            opt.first = atoi(optarg);
            break;
        case 3:
            opt.prefix = optarg;
            break;
        case 4:
            opt.password = optarg;
            break;
        case 5:
            opt.settle = atof(optarg);
            break;
        case 6:
            opt.src_ips = atoi(optarg);
            break;
        case 7:
            opt.timeout = atof(optarg);
            break;
        case 8:
            parse_pids(optarg);
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (opt.users < 1 || opt.concurrency < 1 || opt.src_ips < 1 || opt.src_ips > 250 ||
        opt.port < 1 || opt.port > 65535 || strlen(opt.prefix) + strlen(opt.password) > 400)
        die("bad arguments (see --help)");

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        if ((rlim_t)opt.users + 20 > rl.rlim_cur)
            die("users=%d exceeds the open-file limit %lu", opt.users, (unsigned long)rl.rlim_cur);
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);

    ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx)
        die("SSL_CTX_new failed");
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);

    dst.sin_family = AF_INET;
    dst.sin_port = htons((uint16_t)opt.port);
    if (inet_pton(AF_INET, opt.host, &dst.sin_addr) != 1)
        die("bad host %s (IPv4 address expected)", opt.host);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    conns = calloc((size_t)opt.users, sizeof *conns);
    if (epfd < 0 || !conns)
        die("setup failed");
    for (int i = 0; i < opt.users; i++)
        conns[i].fd = -1;

    long rss0 = servers_rss_kb();
    uint64_t t0 = now_ns();
    pump(opt.timeout, 1);
    double login_s = (double)(now_ns() - t0) / 1e9;
    int logged_in_total = n_ok;
    pump(opt.settle, 0);
    long rss1 = servers_rss_kb();
    pump(opt.hold, 0);
    long rss2 = servers_rss_kb();
    int held = n_ok;
    double per = held > 0 && rss0 >= 0 ? (double)(rss1 - rss0) / held : 0;

    printf("{\"tool\":\"tls_idle\",\"mode\":\"%s\",\"tls\":\"%s\",\"users\":%d,\"login_ok\":%d,"
           "\"login_failed\":%d,\"closed_while_idle\":%d,\"sessions_held\":%d,"
           "\"login_wall_s\":%.3f,\"rss_before_kb\":%ld,\"rss_loaded_kb\":%ld,"
           "\"rss_hold_end_kb\":%ld,\"rss_per_session_kb\":%.2f,\"first_error\":\"",
           opt.starttls ? "starttls" : "direct", tls_desc, opt.users, logged_in_total, n_failed,
           n_closed, held, login_s, rss0, rss1, rss2, per);
    for (const char *p = first_error; *p; p++)
        if (*p >= 0x20 && *p != '"' && *p != '\\')
            putchar(*p);
    printf("\",\"interrupted\":%d}\n", (int)interrupted);
    fprintf(stderr,
            "tls_idle (%s, %s): %d sessions logged in, %d failed, %d closed while idle, "
            "logins took %.2f s\n",
            opt.starttls ? "STARTTLS" : "direct TLS", tls_desc, logged_in_total, n_failed, n_closed,
            login_s);
    if (first_error[0])
        fprintf(stderr, "  first error: %s\n", first_error);
    fprintf(stderr, "  server RSS %ld kB -> %ld kB (hold end %ld kB): %.2f kB/session\n", rss0,
            rss1, rss2, per);

    for (int i = 0; i < opt.users; i++) {
        conn *c = &conns[i];
        if (c->fd < 0)
            continue;
        if (c->st == ST_IDLE && c->ssl) {
            SSL_write(c->ssl, "</stream:stream>", 16);
            SSL_shutdown(c->ssl);
        }
        if (c->ssl)
            SSL_free(c->ssl);
        close(c->fd);
        free(c->in);
    }
    free(conns);
    SSL_CTX_free(ctx);
    return logged_in_total > 0 ? 0 : 1;
}
