/* magpiectl: the administrator's command line. Talks to magpied over its admin socket; with no
 * server running, the "user" commands work on the storage directly. */
#include "base/config.h"
#include "base/err.h"
#include "base/log.h"
#include "router/admin.h"
#include "storage/store.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#define DEFAULT_CONFIG "var/magpie.yml"
#define DEFAULT_SOCKET "var/magpied.sock"
#define PASSWORD_MAX 1024

typedef struct ctl_opts {
    const char *config; /* NULL: DEFAULT_CONFIG if present, else the embedded defaults */
    const char *socket; /* NULL: the config's admin.socket */
    int argc;           /* the command words */
    char **argv;
} ctl_opts;

static void
usage(FILE *f)
{
    fputs("usage: magpiectl [--config FILE] [--socket PATH] COMMAND\n"
          "\n"
          "commands:\n"
          "  user add JID [PASSWORD]     create an account\n"
          "  user passwd JID [PASSWORD]  change a password\n"
          "  user delete JID             delete an account and close its sessions\n"
          "  user list [DOMAIN]          list accounts (default: the first host)\n"
          "  sessions                    list sessions: full_jid ip tls|plain since\n"
          "  kick JID                    close the sessions of a bare or full JID\n"
          "  status                      version, uptime and counters\n"
          "\n"
          "options:\n"
          "  -c, --config FILE  configuration (default " DEFAULT_CONFIG
          ", built-in defaults if absent)\n"
          "  -s, --socket PATH  admin socket (default: admin.socket of the configuration)\n"
          "  -h, --help         this text\n"
          "\n"
          "Without PASSWORD, \"user add\" and \"user passwd\" read it from the first line of\n"
          "standard input (prompting without echo on a terminal), so that it does not show\n"
          "in ps(1) or the shell history. When magpied is not running, the user commands\n"
          "work directly on the storage named in the configuration.\n",
          f);
}

/* Returns 0 to run a command, 1 when --help was printed, -1 on a usage error. */
static int
parse_args(int argc, char **argv, ctl_opts *o)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"socket", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int ch;

    memset(o, 0, sizeof *o);
    /* '+': stop at the first command word, so a password starting with '-' is not an option */
    while ((ch = getopt_long(argc, argv, "+c:s:h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            o->config = optarg;
            break;
        case 's':
            o->socket = optarg;
            break;
        case 'h':
            usage(stdout);
            return 1;
        default:
            usage(stderr);
            return -1;
        }
    }
    o->argc = argc - optind;
    o->argv = argv + optind;
    return 0;
}

static int
is_cmd(const ctl_opts *o, const char *w0, const char *w1)
{
    return o->argc > 0 && strcmp(o->argv[0], w0) == 0 &&
           (!w1 || (o->argc > 1 && strcmp(o->argv[1], w1) == 0));
}

/* Check the shape of the command. Returns 0 if valid, 1 if valid but the password must be read
 * from stdin, -1 if invalid. */
static int
check_command(const ctl_opts *o)
{
    int n = o->argc;

    if (is_cmd(o, "user", "add") || is_cmd(o, "user", "passwd"))
        return n == 3 ? 1 : n == 4 ? 0 : -1;
    if (is_cmd(o, "user", "delete"))
        return n == 3 ? 0 : -1;
    if (is_cmd(o, "kick", NULL))
        return n == 2 ? 0 : -1;
    if (is_cmd(o, "user", "list"))
        return n <= 3 ? 0 : -1;
    if (is_cmd(o, "sessions", NULL) || is_cmd(o, "status", NULL))
        return n == 1 ? 0 : -1;
    return -1;
}

/* One line from stdin, without echo when it is a terminal. Returns 0 or -1. */
static int
read_password(char *pw, size_t cap)
{
    struct termios old, quiet;
    int tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &old) == 0;

    if (tty) {
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        fputs("Password: ", stderr);
        fflush(stderr);
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    }
    char *got = fgets(pw, (int)cap, stdin);
    if (tty) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
        fputc('\n', stderr);
    }
    if (!got) {
        fputs("magpiectl: no password on standard input\n", stderr);
        return -1;
    }
    size_t len = strcspn(pw, "\r\n");
    if (pw[len] == '\0' && len == cap - 1) {
        fprintf(stderr, "magpiectl: password longer than %zu bytes\n", cap - 2);
        return -1;
    }
    pw[len] = '\0';
    if (len == 0) {
        fputs("magpiectl: empty password\n", stderr);
        return -1;
    }
    return 0;
}

static int
load_config(const char *path, mp_config *cfg)
{
    char err[512];

    if (!path) {
        if (access(DEFAULT_CONFIG, F_OK) < 0 && errno == ENOENT) {
            if (mp_config_defaults(cfg) < 0) {
                fputs("magpiectl: out of memory\n", stderr);
                return -1;
            }
            return 0;
        }
        path = DEFAULT_CONFIG;
    }
    if (mp_config_load(path, cfg, err, sizeof err) < 0) {
        fprintf(stderr, "%s\n", err[0] ? err : path);
        return -1;
    }
    return 0;
}

/* The request line: encoded words separated by spaces, '\n' at the end. */
static int
build_request(int argc, char **argv, char *req, size_t cap)
{
    size_t n = 0;

    for (int i = 0; i < argc; i++) {
        if (i > 0 && n + 1 < cap)
            req[n++] = ' ';
        int m = mp_admin_encode(argv[i], req + n, cap - n);
        if (m < 0)
            return -1;
        n += (size_t)m;
    }
    if (n + 2 > cap)
        return -1;
    req[n++] = '\n';
    req[n] = '\0';
    return (int)n;
}

/* Returns a connected socket, or -errno. */
static int
connect_admin(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};

    if (strlen(path) >= sizeof sa.sun_path)
        return -ENAMETOOLONG;
    memcpy(sa.sun_path, path, strlen(path));
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

static int
send_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t w = send(fd, p, len, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

/* Print the server's reply: data lines to stdout, the error to stderr. Returns the exit code. */
static int
print_reply(FILE *in)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int code = -1;

    while (code < 0 && (len = getline(&line, &cap, in)) >= 0) {
        if (len > 0 && line[len - 1] == '\n')
            line[--len] = '\0';
        if (strncmp(line, "data ", 5) == 0) {
            puts(line + 5);
        } else if (strcmp(line, "ok") == 0) {
            code = 0;
        } else if (strncmp(line, "error ", 6) == 0) {
            fprintf(stderr, "magpiectl: %s\n", line + 6);
            code = 1;
        } else {
            fputs("magpiectl: unexpected reply from magpied\n", stderr);
            code = 1;
        }
    }
    if (code < 0) {
        fputs("magpiectl: magpied closed the connection without a reply\n", stderr);
        code = 1;
    }
    free(line);
    return code;
}

static int
run_online(int fd, int argc, char **argv)
{
    char req[MP_ADMIN_LINE_MAX + 1];
    int n = build_request(argc, argv, req, sizeof req);

    if (n < 0) {
        fprintf(stderr, "magpiectl: request longer than %d bytes\n", MP_ADMIN_LINE_MAX);
        close(fd);
        return 1;
    }
    int rc = send_all(fd, req, (size_t)n);
    explicit_bzero(req, sizeof req);
    if (rc < 0) {
        fprintf(stderr, "magpiectl: cannot send to magpied: %s\n", strerror(errno));
        close(fd);
        return 1;
    }
    shutdown(fd, SHUT_WR);
    FILE *in = fdopen(fd, "r");
    if (!in) {
        fprintf(stderr, "magpiectl: %s\n", strerror(errno));
        close(fd);
        return 1;
    }
    int code = print_reply(in);
    fclose(in);
    return code;
}

static int
print_line(const char *text, void *ud)
{
    return puts(text) < 0 ? MP_EIO : 0;
}

static int
run_offline(const mp_config *cfg, int argc, char **argv)
{
    mp_store *st;
    char err[256];

    if (mp_store_open(cfg, &st) < 0) {
        fputs("magpiectl: cannot open the storage\n", stderr);
        return 1;
    }
    int rc = mp_admin_user_cmd(st, cfg, argc, argv, print_line, NULL, err, sizeof err);
    mp_store_close(st);
    if (rc < 0) {
        fprintf(stderr, "magpiectl: %s\n", err);
        return 1;
    }
    return 0;
}

static int
run(const ctl_opts *o, const mp_config *cfg)
{
    const char *path = o->socket           ? o->socket
                       : cfg->admin_socket ? cfg->admin_socket
                                           : DEFAULT_SOCKET;
    int fd = connect_admin(path);

    if (fd >= 0)
        return run_online(fd, o->argc, o->argv);
    if (fd != -ENOENT && fd != -ECONNREFUSED) {
        fprintf(stderr, "magpiectl: cannot connect to %s: %s\n", path, strerror(-fd));
        return 1;
    }
    if (!is_cmd(o, "user", NULL)) {
        fprintf(stderr, "magpiectl: magpied is not running (socket %s)\n", path);
        return 1;
    }
    return run_offline(cfg, o->argc, o->argv);
}

int
main(int argc, char **argv)
{
    ctl_opts o;
    mp_config cfg;
    char pw[PASSWORD_MAX + 2];
    char *words[4];
    int rc;

    if ((rc = parse_args(argc, argv, &o)) != 0)
        return rc > 0 ? 0 : 1;
    int shape = check_command(&o);
    if (shape < 0) {
        if (o.argc == 0) {
            usage(stderr);
            return 1;
        }
        fputs("magpiectl: unknown command or wrong number of arguments; see magpiectl --help\n",
              stderr);
        return 1;
    }
    mp_log_init(MP_LOG_WARN, 0);
    memset(&cfg, 0, sizeof cfg);
    if (load_config(o.config, &cfg) < 0)
        return 1;
    if (shape == 1) {
        if (read_password(pw, sizeof pw) < 0) {
            mp_config_free(&cfg);
            return 1;
        }
        memcpy(words, o.argv, 3 * sizeof *words);
        words[3] = pw;
        o.argv = words;
        o.argc = 4;
    }
    rc = run(&o, &cfg);
    explicit_bzero(pw, sizeof pw);
    mp_config_free(&cfg);
    return rc;
}
