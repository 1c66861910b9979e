/* The admin socket: request line parsing, the shared user commands on a real SQLite store, and the
 * server end to end on a libuv loop with a fake core (defined below, in place of router/core.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "helpers.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <uv.h>

#include "auth/scram.h"
#include "base/config.h"
#include "base/err.h"
#include "router/admin.h"
#include "router/core.h"
#include "storage/store.h"

/* ---- fake core ----------------------------------------------------------------------------- */

struct mp_core {
    uv_loop_t *loop;
    mp_config *cfg;
    mp_store *st;
    char kicked[8][128]; /* JIDs passed to mp_core_kick */
    int nkicked;
};

uv_loop_t *
mp_core_loop(mp_core *core)
{
    return core->loop;
}

const struct mp_config *
mp_core_config(mp_core *core)
{
    return core->cfg;
}

struct mp_store *
mp_core_store(mp_core *core)
{
    return core->st;
}

void
mp_core_sessions_foreach(mp_core *core, const char *jid, mp_core_session_cb cb, void *ud)
{
    static const mp_core_session_info s[] = {
        {.full_jid = "alice@localhost/phone", .ip = "127.0.0.1", .tls = 1, .since = 0},
        {.full_jid = "bob@localhost/desk", .ip = "::1", .tls = 0, .since = 86400},
    };
    for (size_t i = 0; i < 2; i++)
        if (cb(&s[i], ud))
            return;
}

int
mp_core_kick(mp_core *core, const char *jid, const char *text)
{
    if (core->nkicked < 8)
        snprintf(core->kicked[core->nkicked++], sizeof core->kicked[0], "%s", jid);
    return strncmp(jid, "alice@localhost", 15) == 0 ? 2 : 0;
}

void
mp_core_stats_get(mp_core *core, mp_core_stats *out)
{
    *out = (mp_core_stats){.uptime_s = 42,
                           .connections = 3,
                           .sessions = 2,
                           .stanzas_in = 100,
                           .stanzas_routed = 90,
                           .auth_ok = 5,
                           .auth_failed = 1};
}

/* ---- fixture: a temp dir with a store and a config ------------------------------------------ */

typedef struct fixture {
    char dir[64];
    char db[128];
    char sock[96];
    char *hosts[2];
    mp_config cfg;
    mp_store *st;
    uv_loop_t loop;
    mp_core core;
} fixture;

static int
setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    strcpy(f->dir, "/tmp/mp_test_admin.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->db, sizeof f->db, "%s/magpie.db", f->dir);
    snprintf(f->sock, sizeof f->sock, "%s/magpied.sock", f->dir);
    f->hosts[0] = "localhost";
    f->hosts[1] = "example.org";
    f->cfg.hosts = f->hosts;
    f->cfg.nhosts = 2;
    f->cfg.storage_backend = "sqlite";
    f->cfg.sqlite_path = f->db;
    f->cfg.scram_iterations = 4096;
    assert_int_equal(mp_store_open(&f->cfg, &f->st), 0);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->core.loop = &f->loop;
    f->core.cfg = &f->cfg;
    f->core.st = f->st;
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    fixture *f = *state;

    assert_int_equal(uv_loop_close(&f->loop), 0);
    mp_store_close(f->st);
    mp_test_remove_db(f->db);
    unlink(f->sock);
    assert_int_equal(rmdir(f->dir), 0);
    free(f);
    return 0;
}

/* ---- request line ---------------------------------------------------------------------------- */

static void
test_split_words(void **state)
{
    char line[] = "  user add  alice@localhost p%20w%25d%0a! ";
    char *argv[MP_ADMIN_ARGS_MAX];

    assert_int_equal(mp_admin_split(line, argv, MP_ADMIN_ARGS_MAX), 4);
    assert_string_equal(argv[0], "user");
    assert_string_equal(argv[1], "add");
    assert_string_equal(argv[2], "alice@localhost");
    assert_string_equal(argv[3], "p w%d\n!");

    char empty[] = "   ";
    assert_int_equal(mp_admin_split(empty, argv, MP_ADMIN_ARGS_MAX), 0);
    char none[] = "";
    assert_int_equal(mp_admin_split(none, argv, MP_ADMIN_ARGS_MAX), 0);
    char utf8[] = "caf%C3%A9";
    assert_int_equal(mp_admin_split(utf8, argv, 1), 1);
    assert_string_equal(argv[0], "caf\xc3\xa9");
}

static void
test_split_errors(void **state)
{
    static const char *const bad[] = {"a %", "a %2", "a %zz", "a %2g", "a b%00c", "%%41"};
    char *argv[MP_ADMIN_ARGS_MAX];
    char line[64];

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(line, sizeof line, "%s", bad[i]);
        assert_int_equal(mp_admin_split(line, argv, MP_ADMIN_ARGS_MAX), MP_EINVAL);
    }
    snprintf(line, sizeof line, "a b c");
    assert_int_equal(mp_admin_split(line, argv, 2), MP_ELIMIT);
    snprintf(line, sizeof line, "a b c");
    assert_int_equal(mp_admin_split(line, argv, 3), 3);
}

static void
test_encode_roundtrip(void **state)
{
    static const char *const words[] = {"plain",     "with space",  "100%", "two\nlines",
                                        "tab\there", "caf\xc3\xa9", "%20",  "\x7f"};
    char enc[64], *argv[2];

    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        int n = mp_admin_encode(words[i], enc, sizeof enc);
        assert_true(n > 0);
        assert_int_equal((size_t)n, strlen(enc));
        assert_null(strpbrk(enc, " \n\t\x7f"));
        assert_int_equal(mp_admin_split(enc, argv, 2), 1);
        assert_string_equal(argv[0], words[i]);
    }
    assert_int_equal(mp_admin_encode("a b", enc, 5), MP_ELIMIT); /* needs 6 */
    assert_int_equal(mp_admin_encode("a b", enc, 6), 5);
    assert_string_equal(enc, "a%20b");
    assert_int_equal(mp_admin_encode("", enc, 1), 0);
    assert_int_equal(mp_admin_encode("x", enc, 1), MP_ELIMIT);
}

/* ---- the user commands on storage ------------------------------------------------------------ */

typedef struct lines {
    char buf[1024];
    int n;
} lines;

static int
collect(const char *text, void *ud)
{
    lines *l = ud;
    size_t len = strlen(l->buf);
    snprintf(l->buf + len, sizeof l->buf - len, "%s\n", text);
    l->n++;
    return 0;
}

static int
user_cmd(fixture *f, lines *out, char *err, const char *cmd)
{
    char line[256], *argv[MP_ADMIN_ARGS_MAX];

    snprintf(line, sizeof line, "%s", cmd);
    int argc = mp_admin_split(line, argv, MP_ADMIN_ARGS_MAX);
    assert_true(argc > 0);
    memset(out, 0, sizeof *out);
    err[0] = '\0';
    return mp_admin_user_cmd(f->st, &f->cfg, argc, argv, collect, out, err, 256);
}

static void
test_user_commands(void **state)
{
    fixture *f = *state;
    mp_user_cred c1, c2;
    lines out;
    char err[256];

    assert_int_equal(user_cmd(f, &out, err, "user add alice@localhost s3cret%20pw"), 0);
    assert_int_equal(user_cmd(f, &out, err, "user add Bob@LocalHost pw"), 0);
    assert_int_equal(user_cmd(f, &out, err, "user add carol@example.org pw"), 0);
    assert_int_equal(user_cmd(f, &out, err, "user add alice@localhost other"), MP_EEXIST);
    assert_non_null(strstr(err, "already exists"));
    assert_null(strstr(err, "other"));
    assert_int_equal(user_cmd(f, &out, err, "user add dave@elsewhere.net pw"), MP_EINVAL);
    assert_int_equal(user_cmd(f, &out, err, "user add dave@localhost/res pw"), MP_EINVAL);
    assert_int_equal(user_cmd(f, &out, err, "user add dave@localhost"), MP_EINVAL);
    assert_non_null(strstr(err, "usage"));

    assert_int_equal(user_cmd(f, &out, err, "user list"), 0);
    assert_string_equal(out.buf, "alice@localhost\nbob@localhost\n");
    assert_int_equal(user_cmd(f, &out, err, "user list EXAMPLE.org"), 0);
    assert_string_equal(out.buf, "carol@example.org\n");
    assert_int_equal(user_cmd(f, &out, err, "user list elsewhere.net"), MP_EINVAL);
    assert_non_null(strstr(err, "not a served host"));

    assert_int_equal(f->st->ops->user_get(f->st, "localhost", "alice", &c1), 0);
    assert_int_equal(user_cmd(f, &out, err, "user passwd alice@localhost new"), 0);
    assert_int_equal(f->st->ops->user_get(f->st, "localhost", "alice", &c2), 0);
    assert_memory_not_equal(c1.sha256_stored_key, c2.sha256_stored_key, 32);
    assert_int_equal(user_cmd(f, &out, err, "user passwd nobody@localhost new"), MP_ENOTFOUND);
    assert_non_null(strstr(err, "does not exist"));

    assert_int_equal(user_cmd(f, &out, err, "user delete alice@localhost"), 0);
    assert_int_equal(user_cmd(f, &out, err, "user delete alice@localhost"), MP_ENOTFOUND);
    assert_int_equal(user_cmd(f, &out, err, "user list"), 0);
    assert_string_equal(out.buf, "bob@localhost\n");
    assert_int_equal(user_cmd(f, &out, err, "user frobnicate"), MP_EINVAL);
    assert_int_equal(user_cmd(f, &out, err, "user"), MP_EINVAL);
}

/* ---- the server, end to end ----------------------------------------------------------------- */

#define MAX_EXCHANGES 16

typedef struct exchange {
    const char *request; /* sent as is; NULL ends the list */
    char *reply;         /* everything read until the server closed */
} exchange;

typedef struct client_job {
    const char *path;
    exchange *ex;
    uv_async_t done;
    int flood; /* also check the client limit */
    char *flood_reply;
} client_job;

static int
connect_to(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);

    if (fd < 0)
        return -1;
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static char *
read_all(int fd)
{
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    ssize_t n;

    if (!buf)
        return NULL;
    while ((n = read(fd, buf + len, cap - len - 1)) > 0) {
        len += (size_t)n;
        if (len + 1 == cap) {
            char *nb = realloc(buf, cap *= 2);
            if (!nb)
                break;
            buf = nb;
        }
    }
    buf[len] = '\0';
    return buf;
}

static char *
roundtrip(const char *path, const char *req)
{
    int fd = connect_to(path);
    char *reply;

    if (fd < 0)
        return strdup("(connect failed)");
    /* A server that refuses us may have answered and closed before our request went out
     * (EPIPE): what it said is still in our receive queue (AF_UNIX keeps it). */
    int wrote = send(fd, req, strlen(req), MSG_NOSIGNAL) >= 0;
    shutdown(fd, SHUT_WR);
    reply = read_all(fd);
    if (!wrote && reply && !*reply) {
        free(reply);
        reply = strdup("(write failed)");
    }
    close(fd);
    return reply;
}

static void
client_thread(void *arg)
{
    client_job *job = arg;

    for (exchange *e = job->ex; e->request; e++)
        e->reply = roundtrip(job->path, e->request);
    if (job->flood) {
        int fds[MP_ADMIN_MAX_CLIENTS];
        for (int i = 0; i < MP_ADMIN_MAX_CLIENTS; i++)
            fds[i] = connect_to(job->path);
        /* the slots are full: the next client is told so */
        job->flood_reply = roundtrip(job->path, "status\n");
        for (int i = 0; i < MP_ADMIN_MAX_CLIENTS; i++)
            if (fds[i] >= 0)
                close(fds[i]);
    }
    uv_async_send(&job->done);
}

static void
on_done(uv_async_t *a)
{
    mp_admin_stop(a->data);
    uv_close((uv_handle_t *)a, NULL);
}

/* Start the server, run the exchanges from another thread, stop, and check the loop drained. */
static void
serve(fixture *f, client_job *job)
{
    mp_admin *a;
    uv_thread_t t;

    assert_int_equal(mp_admin_start(&f->core, f->sock, &a), 0);
    job->path = f->sock;
    assert_int_equal(uv_async_init(&f->loop, &job->done, on_done), 0);
    job->done.data = a;
    assert_int_equal(uv_thread_create(&t, client_thread, job), 0);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_thread_join(&t), 0);
    /* mp_admin_stop removed the socket file */
    assert_int_equal(access(f->sock, F_OK), -1);
}

static void
free_exchanges(exchange *ex)
{
    for (exchange *e = ex; e->request; e++)
        free(e->reply);
}

static void
test_server_commands(void **state)
{
    fixture *f = *state;
    char long_line[MP_ADMIN_LINE_MAX + 16];
    exchange ex[] = {
        {"status\n", NULL},
        {"sessions\n", NULL},
        {"user add alice@localhost pass%20with%20spaces\n", NULL},
        {"user add alice@localhost again\n", NULL},
        {"user add bob@localhost pw%25%20x\r\n", NULL},
        {"user list\n", NULL},
        {"user delete alice@localhost\n", NULL},
        {"kick bob@localhost\n", NULL},
        {"kick alice@localhost/phone\n", NULL},
        {"frobnicate now\n", NULL},
        {"user add x@localhost bad%zz\n", NULL},
        {"\n", NULL},
        {long_line, NULL},
        {"status", NULL}, /* no newline: the half-close ends the request */
        {"kick a%0Aok%0Ab\n", NULL},
        {NULL, NULL},
    };
    client_job job = {.ex = ex};

    memset(long_line, 'a', sizeof long_line - 2);
    long_line[sizeof long_line - 2] = '\n';
    long_line[sizeof long_line - 1] = '\0';
    serve(f, &job);

    assert_string_equal(ex[0].reply, "data version " MAGPIE_VERSION "\n"
                                     "data uptime 42\n"
                                     "data connections 3\n"
                                     "data sessions 2\n"
                                     "data stanzas_in 100\n"
                                     "data stanzas_routed 90\n"
                                     "data auth_ok 5\n"
                                     "data auth_failed 1\n"
                                     "ok\n");
    assert_string_equal(ex[1].reply,
                        "data alice@localhost/phone 127.0.0.1 tls 1970-01-01T00:00:00Z\n"
                        "data bob@localhost/desk ::1 plain 1970-01-02T00:00:00Z\n"
                        "ok\n");
    assert_string_equal(ex[2].reply, "ok\n");
    assert_string_equal(ex[3].reply, "error user alice@localhost already exists\n");
    assert_string_equal(ex[4].reply, "ok\n");
    assert_string_equal(ex[5].reply, "data alice@localhost\ndata bob@localhost\nok\n");
    assert_string_equal(ex[6].reply, "ok\n");
    assert_string_equal(ex[7].reply, "error no session matches bob@localhost\n");
    assert_string_equal(ex[8].reply, "data 2 sessions closed\nok\n");
    assert_string_equal(ex[9].reply, "error unknown command or wrong arguments\n");
    assert_string_equal(ex[10].reply, "error malformed request\n");
    assert_string_equal(ex[11].reply, "error malformed request\n");
    assert_string_equal(ex[12].reply, "error request line too long\n");
    assert_string_equal(ex[13].reply, ex[0].reply);
    /* a decoded newline cannot forge a protocol line */
    assert_string_equal(ex[14].reply, "error no session matches a?ok?b\n");

    /* user delete kicked the deleted user's sessions */
    assert_int_equal(f->core.nkicked, 4);
    assert_string_equal(f->core.kicked[0], "alice@localhost");
    assert_string_equal(f->core.kicked[1], "bob@localhost");
    assert_string_equal(f->core.kicked[2], "alice@localhost/phone");

    /* the password reached storage decoded, the CR before the newline dropped */
    mp_user_cred cred;
    assert_int_equal(f->st->ops->user_get(f->st, "localhost", "alice", &cred), MP_ENOTFOUND);
    assert_int_equal(f->st->ops->user_get(f->st, "localhost", "bob", &cred), 0);
    assert_int_equal(mp_scram_check_password("pw% x", &cred), 1);
    assert_int_equal(mp_scram_check_password("pw%25%20x", &cred), 0);
    free_exchanges(ex);
}

static void
test_client_limit(void **state)
{
    fixture *f = *state;
    exchange ex[] = {{NULL, NULL}};
    client_job job = {.ex = ex, .flood = 1};

    serve(f, &job);
    assert_string_equal(job.flood_reply, "error too many admin clients, try again\n");
    free(job.flood_reply);
}

static void
on_stop_now(uv_timer_t *t)
{
    mp_admin_stop(t->data);
    uv_close((uv_handle_t *)t, NULL);
}

static void
test_socket_file(void **state)
{
    fixture *f = *state;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct stat st;
    mp_admin *a, *b;
    uv_timer_t t;

    /* a socket file left by a dead server is replaced */
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", f->sock);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    close(fd);
    assert_int_equal(mp_admin_start(&f->core, f->sock, &a), 0);
    assert_int_equal(stat(f->sock, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0600);

    /* a live server's socket is not */
    assert_int_equal(mp_admin_start(&f->core, f->sock, &b), MP_EEXIST);
    assert_null(b);
    assert_int_equal(access(f->sock, F_OK), 0);

    uv_timer_init(&f->loop, &t);
    t.data = a;
    uv_timer_start(&t, on_stop_now, 0, 0);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);

    /* nor is a file that is not a socket */
    FILE *file = fopen(f->sock, "w");
    assert_non_null(file);
    fclose(file);
    assert_int_equal(mp_admin_start(&f->core, f->sock, &b), MP_EEXIST);
    assert_int_equal(access(f->sock, F_OK), 0);
    unlink(f->sock);

    /* a path that does not fit in sockaddr_un */
    char longpath[200];
    memset(longpath, 'x', sizeof longpath - 1);
    longpath[0] = '/';
    longpath[sizeof longpath - 1] = '\0';
    assert_int_equal(mp_admin_start(&f->core, longpath, &b), MP_EINVAL);

    /* a directory that does not exist: bind fails, the handles still close cleanly */
    char missing[160];
    snprintf(missing, sizeof missing, "%s/nodir/s.sock", f->dir);
    assert_int_equal(mp_admin_start(&f->core, missing, &b), MP_EIO);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
}

int
main(void)
{
    /* As in magpied: a peer that went away is an error code, not a signal. */
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_words),
        cmocka_unit_test(test_split_errors),
        cmocka_unit_test(test_encode_roundtrip),
        cmocka_unit_test_setup_teardown(test_user_commands, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_commands, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_socket_file, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
