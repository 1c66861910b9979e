#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/config.h"
#include "base/err.h"
#include "base/log.h"

#define ALL_MECHS                                                                                  \
    (MP_MECH_PLAIN | MP_MECH_SCRAM_SHA_1 | MP_MECH_SCRAM_SHA_1_PLUS | MP_MECH_SCRAM_SHA_256 |      \
     MP_MECH_SCRAM_SHA_256_PLUS)

static char g_dir[64];
static char g_path[128];

static int
setup_dir(void **state)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/mp_test_config.XXXXXX");
    return mkdtemp(g_dir) == NULL ? -1 : 0;
}

static int
teardown_dir(void **state)
{
    return rmdir(g_dir);
}

/* Write text to a fresh file in the test directory and return its path. */
static const char *
write_file(const char *text)
{
    snprintf(g_path, sizeof g_path, "%s/magpie.yml", g_dir);
    FILE *f = fopen(g_path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
    return g_path;
}

static int
load_text(const char *text, mp_config *cfg, char *err, size_t errlen)
{
    int rc = mp_config_load(write_file(text), cfg, err, errlen);
    unlink(g_path);
    return rc;
}

static int
is_zeroed(const mp_config *cfg)
{
    static const mp_config zero;
    return memcmp(cfg, &zero, sizeof zero) == 0;
}

static void
assert_list_equal(char **a, size_t na, char **b, size_t nb)
{
    assert_int_equal(na, nb);
    for (size_t i = 0; i < na; i++)
        assert_string_equal(a[i], b[i]);
}

/* Every value field, not path (which says where a config came from). */
static void
assert_config_equal(const mp_config *a, const mp_config *b)
{
    assert_list_equal(a->hosts, a->nhosts, b->hosts, b->nhosts);
    assert_string_equal(a->data_dir, b->data_dir);
    assert_int_equal(a->log_level, b->log_level);
    assert_int_equal(a->log_syslog, b->log_syslog);
    assert_string_equal(a->c2s_address, b->c2s_address);
    assert_int_equal(a->c2s_port, b->c2s_port);
    assert_int_equal(a->c2s_direct_tls_port, b->c2s_direct_tls_port);
    assert_int_equal(a->tls_required, b->tls_required);
    assert_int_equal(a->max_stanza_size, b->max_stanza_size);
    assert_int_equal(a->preauth_max_stanza_size, b->preauth_max_stanza_size);
    assert_int_equal(a->preauth_max_elements, b->preauth_max_elements);
    assert_int_equal(a->max_depth, b->max_depth);
    assert_int_equal(a->unauthenticated_timeout, b->unauthenticated_timeout);
    assert_int_equal(a->conflict_policy, b->conflict_policy);
    assert_int_equal(a->max_sessions_per_user, b->max_sessions_per_user);
    assert_int_equal(a->max_output_buffer, b->max_output_buffer);
    assert_int_equal(a->http_port, b->http_port);
    assert_string_equal(a->tls_certificate, b->tls_certificate);
    assert_string_equal(a->tls_key, b->tls_key);
    assert_int_equal(a->sasl_mechanisms, b->sasl_mechanisms);
    assert_int_equal(a->scram_iterations, b->scram_iterations);
    assert_int_equal(a->auth_failure_delay_ms, b->auth_failure_delay_ms);
    assert_int_equal(a->auth_max_failures, b->auth_max_failures);
    assert_int_equal(a->auth_failure_window, b->auth_failure_window);
    assert_string_equal(a->storage_backend, b->storage_backend);
    assert_string_equal(a->sqlite_path, b->sqlite_path);
    assert_string_equal(a->admin_socket, b->admin_socket);
    assert_int_equal(a->mux_threads, b->mux_threads);
    assert_list_equal(a->modules, a->nmodules, b->modules, b->nmodules);
}

static void
test_defaults(void **state)
{
    mp_config c;
    assert_int_equal(mp_config_defaults(&c), 0);
    assert_null(c.path);
    assert_int_equal(c.nhosts, 1);
    assert_string_equal(c.hosts[0], "localhost");
    assert_string_equal(c.data_dir, "var");
    assert_int_equal(c.log_level, MP_LOG_INFO);
    assert_int_equal(c.log_syslog, 0);
    assert_string_equal(c.c2s_address, "0.0.0.0");
    assert_int_equal(c.c2s_port, 5222);
    assert_int_equal(c.c2s_direct_tls_port, 5223);
    assert_int_equal(c.tls_required, 1);
    assert_int_equal(c.max_stanza_size, 262144);
    assert_int_equal(c.preauth_max_stanza_size, 8192);
    assert_int_equal(c.preauth_max_elements, 32);
    assert_int_equal(c.max_depth, 64);
    assert_int_equal(c.unauthenticated_timeout, 60);
    assert_int_equal(c.conflict_policy, MP_CONFLICT_REPLACE);
    assert_int_equal(c.max_sessions_per_user, 10);
    assert_int_equal(c.max_output_buffer, 1024 * 1024);
    assert_int_equal(c.http_port, 5280);
    assert_string_equal(c.tls_certificate, "var/magpie.crt");
    assert_string_equal(c.tls_key, "var/magpie.key");
    assert_int_equal(c.sasl_mechanisms, ALL_MECHS);
    assert_int_equal(c.scram_iterations, 4096);
    assert_int_equal(c.auth_failure_delay_ms, 500);
    assert_int_equal(c.auth_max_failures, 10);
    assert_int_equal(c.auth_failure_window, 300);
    assert_string_equal(c.storage_backend, "sqlite");
    assert_string_equal(c.sqlite_path, "var/magpie.db");
    assert_string_equal(c.admin_socket, "var/magpied.sock");
    assert_int_equal(c.mux_threads, 1);
    static const char *const want[] = {"ping", "disco",   "version",  "time",
                                       "last", "vcard",   "private",  "search",
                                       "amp",  "privacy", "blocking", "mam",
                                       "carbons", "caps",  "push", "pubsub", "muc"};
    assert_int_equal(c.nmodules, sizeof want / sizeof want[0]);
    for (size_t i = 0; i < c.nmodules; i++)
        assert_string_equal(c.modules[i], want[i]);
    assert_int_equal(c.offline_max_messages, 100);
    assert_int_equal(c.ping_interval, 300);
    assert_int_equal(c.ping_timeout, 60);
    assert_int_equal(c.sm_enabled, 1);
    assert_int_equal(c.sm_resume_timeout, 300);
    assert_int_equal(c.sm_max_queue, 5000);
    mp_config_free(&c);
    assert_true(is_zeroed(&c));
}

static const char full_yaml[] = "# every key set to something other than its default\n"
                                "hosts:\n"
                                "  - Example.ORG\n"
                                "  - \"chat.example.org\"\n"
                                "data_dir: /srv/magpie\n"
                                "log:\n"
                                "  level: debug\n"
                                "  syslog: true\n"
                                "c2s:\n"
                                "  address: \"::1\"\n"
                                "  port: 15222\n"
                                "  direct_tls_port: 0\n"
                                "  tls_required: false\n"
                                "  max_stanza_size: 65536\n"
                                "  preauth_max_stanza_size: 4KiB\n"
                                "  preauth_max_elements: 16\n"
                                "  max_depth: 32\n"
                                "  unauthenticated_timeout: 20\n"
                                "  resource_conflict: refuse\n"
                                "  max_sessions_per_user: 3\n"
                                "  max_output_buffer: 2MiB\n"
                                "http:\n"
                                "  port: 15280\n"
                                "tls:\n"
                                "  certificate: /etc/magpie/cert.pem\n"
                                "  key: /etc/magpie/key.pem\n"
                                "sasl:\n"
                                "  mechanisms: [SCRAM-SHA-256, SCRAM-SHA-256-PLUS]\n"
                                "  scram_iterations: 10000\n"
                                "  failure_delay_ms: 250\n"
                                "  max_failures: 5\n"
                                "  failure_window: 600\n"
                                "storage:\n"
                                "  backend: sqlite\n"
                                "  sqlite_path: /var/lib/magpie/magpie.db\n"
                                "admin:\n"
                                "  socket: /run/magpie/magpied.sock\n"
                                "core:\n"
                                "  mux_threads: 4\n"
                                "modules: [ping, muc]\n";

static void
test_full_file(void **state)
{
    mp_config c;
    char err[256];
    const char *path = write_file(full_yaml);
    assert_int_equal(mp_config_load(path, &c, err, sizeof err), 0);
    assert_string_equal(err, "");
    assert_string_equal(c.path, path);
    unlink(path);
    assert_int_equal(c.nhosts, 2);
    assert_string_equal(c.hosts[0], "example.org");
    assert_string_equal(c.hosts[1], "chat.example.org");
    assert_string_equal(c.data_dir, "/srv/magpie");
    assert_int_equal(c.log_level, MP_LOG_DEBUG);
    assert_int_equal(c.log_syslog, 1);
    assert_string_equal(c.c2s_address, "::1");
    assert_int_equal(c.c2s_port, 15222);
    assert_int_equal(c.c2s_direct_tls_port, 0);
    assert_int_equal(c.tls_required, 0);
    assert_int_equal(c.max_stanza_size, 65536);
    assert_int_equal(c.preauth_max_stanza_size, 4096);
    assert_int_equal(c.preauth_max_elements, 16);
    assert_int_equal(c.max_depth, 32);
    assert_int_equal(c.unauthenticated_timeout, 20);
    assert_int_equal(c.conflict_policy, MP_CONFLICT_REFUSE);
    assert_int_equal(c.max_sessions_per_user, 3);
    assert_int_equal(c.max_output_buffer, 2 * 1024 * 1024);
    assert_int_equal(c.http_port, 15280);
    assert_string_equal(c.tls_certificate, "/etc/magpie/cert.pem");
    assert_string_equal(c.tls_key, "/etc/magpie/key.pem");
    assert_int_equal(c.sasl_mechanisms, MP_MECH_SCRAM_SHA_256 | MP_MECH_SCRAM_SHA_256_PLUS);
    assert_int_equal(c.scram_iterations, 10000);
    assert_int_equal(c.auth_failure_delay_ms, 250);
    assert_int_equal(c.auth_max_failures, 5);
    assert_int_equal(c.auth_failure_window, 600);
    assert_string_equal(c.storage_backend, "sqlite");
    assert_string_equal(c.sqlite_path, "/var/lib/magpie/magpie.db");
    assert_string_equal(c.admin_socket, "/run/magpie/magpied.sock");
    assert_int_equal(c.mux_threads, 4);
    assert_int_equal(c.nmodules, 2);
    assert_string_equal(c.modules[0], "ping");
    assert_string_equal(c.modules[1], "muc");
    assert_true(mp_config_is_host(&c, "chat.example.org", 16));
    assert_true(mp_config_is_host(&c, "example.orgXX", 11));
    assert_false(mp_config_is_host(&c, "example.or", 10));
    assert_false(mp_config_is_host(&c, "localhost", 9));
    mp_config_free(&c);
}

/* An empty file, a comment-only file and sections left empty all mean defaults. */
static void
test_empty_means_defaults(void **state)
{
    static const char *const texts[] = {"", "# nothing\n", "---\n", "c2s:\nlog:\n"};
    mp_config d, c;
    char err[256];
    assert_int_equal(mp_config_defaults(&d), 0);
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        assert_int_equal(load_text(texts[i], &c, err, sizeof err), 0);
        assert_config_equal(&c, &d);
        mp_config_free(&c);
    }
    mp_config_free(&d);
}

static void
test_write_default_loads_back(void **state)
{
    char path[128], err[256];
    snprintf(path, sizeof path, "%s/default.yml", g_dir);
    assert_int_equal(mp_config_write_default(path), 0);
    assert_int_equal(mp_config_write_default(path), MP_EEXIST);

    mp_config d, c;
    assert_int_equal(mp_config_defaults(&d), 0);
    assert_int_equal(mp_config_load(path, &c, err, sizeof err), 0);
    assert_config_equal(&c, &d);
    mp_config_free(&c);

    /* The file names every key, so an operator sees what exists; paths are
     * commented out so that they keep following data_dir. */
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    static char text[65536];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    assert_true(n < sizeof text - 1); /* the whole file, or the checks below mean nothing */
    text[n] = '\0';
    static const char *const keys[] = {"\nhosts:",
                                       "\ndata_dir:",
                                       "\nlog:",
                                       "  level:",
                                       "  syslog:",
                                       "\nc2s:",
                                       "  address:",
                                       "  port:",
                                       "  direct_tls_port:",
                                       "  tls_required:",
                                       "  max_stanza_size:",
                                       "  preauth_max_stanza_size:",
                                       "  preauth_max_elements:",
                                       "  max_depth:",
                                       "  unauthenticated_timeout:",
                                       "  resource_conflict:",
                                       "  max_sessions_per_user:",
                                       "  max_output_buffer:",
                                       "\nhttp:",
                                       "\ntls:",
                                       "# certificate: <data_dir>/magpie.crt",
                                       "# key: <data_dir>/magpie.key",
                                       "\nsasl:",
                                       "  mechanisms:",
                                       "  scram_iterations:",
                                       "  failure_delay_ms:",
                                       "  max_failures:",
                                       "  failure_window:",
                                       "\nstorage:",
                                       "  backend:",
                                       "# sqlite_path: <data_dir>/magpie.db",
                                       "\nadmin:",
                                       "# socket: <data_dir>/magpied.sock",
                                       "\ncore:",
                                       "  mux_threads:",
                                       "\nmodules:"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (strstr(text, keys[i]) == NULL)
            fail_msg("default file lacks %s", keys[i]);

    /* Moving data_dir in the written file moves the paths with it. */
    char *dd = strstr(text, "data_dir: \"var\"");
    assert_non_null(dd);
    static char edited[sizeof text + 128];
    snprintf(edited, sizeof edited, "%.*sdata_dir: /srv/x%s", (int)(dd - text), text,
             dd + strlen("data_dir: \"var\""));
    assert_int_equal(load_text(edited, &c, err, sizeof err), 0);
    assert_string_equal(c.sqlite_path, "/srv/x/magpie.db");
    assert_string_equal(c.tls_key, "/srv/x/magpie.key");
    mp_config_free(&c);

    mp_config_free(&d);
    unlink(path);
}

struct bad {
    const char *yaml;
    int line;
    const char *needle; /* must appear in the message: names the key */
};

static void
test_errors(void **state)
{
    static const struct bad bad[] = {
        /* unknown keys */
        {"hosts: [a]\nbogus: 1\n", 2, "unknown key \"bogus\""},
        {"c2s:\n  port: 5222\n  prot: 1\n", 3, "unknown key \"c2s.prot\""},
        {"log:\n  level: info\nsasl:\n  mechanisms: [PLAIN]\n  iterations: 5000\n", 5,
         "sasl.iterations"},
        {"c2s:\n  port: 1\n  port: 2\n", 3, "duplicate key \"c2s.port\""},
        /* types */
        {"c2s:\n  port: \"5222\"\n", 2, "c2s.port: expected an integer, got a string"},
        {"c2s:\n  port: abc\n", 2, "c2s.port: expected an integer"},
        {"\n\nc2s:\n  tls_required: yes\n", 4, "c2s.tls_required: expected a boolean"},
        {"log:\n  syslog: 1\n", 2, "log.syslog: expected a boolean"},
        {"c2s: 5\n", 1, "c2s: expected a mapping"},
        {"c2s:\n  port: [1]\n", 2, "c2s.port: expected an integer, got a list"},
        {"data_dir: 42\n", 1, "data_dir: expected a string"},
        {"data_dir: {a: b}\n", 1, "data_dir: expected a string, got a mapping"},
        {"hosts: localhost\n", 1, "hosts: expected a list"},
        {"modules:\n  - ping\n  - {x: 1}\n", 3, "modules[1]"},
        {"modules:\n", 1, "modules: expected a list"},
        {"- a\n- b\n", 1, "top level: expected a mapping"},
        /* ranges */
        {"c2s:\n  port: 65536\n", 2, "c2s.port: 65536 is out of range (0..65535)"},
        {"c2s:\n  direct_tls_port: -1\n", 2, "c2s.direct_tls_port"},
        {"http:\n  port: 99999999999999999999999\n", 2, "http.port"},
        {"c2s:\n  max_stanza_size: 9999\n", 2, "c2s.max_stanza_size: 9999 is out of range"},
        {"sasl:\n  scram_iterations: 4095\n", 2, "sasl.scram_iterations"},
        {"core:\n  mux_threads: 0\n", 2, "core.mux_threads"},
        {"core:\n  mux_threads: 65\n", 2, "core.mux_threads"},
        {"c2s:\n  max_stanza_size: 20000\n  preauth_max_stanza_size: 30000\n", 3,
         "c2s.preauth_max_stanza_size"},
        {"c2s:\n  max_output_buffer: 10 parsecs\n", 2, "c2s.max_output_buffer: expected a size"},
        /* enums */
        {"log:\n  level: verbose\n", 2, "log.level: unknown value \"verbose\""},
        {"c2s:\n  resource_conflict: kick\n", 2, "c2s.resource_conflict"},
        {"sasl:\n  mechanisms:\n    - PLAIN\n    - DIGEST-MD5\n", 4,
         "sasl.mechanisms[1]: unknown SASL mechanism \"DIGEST-MD5\""},
        {"sasl:\n  mechanisms: []\n", 2, "sasl.mechanisms"},
        {"storage:\n  backend: postgres\n", 2, "storage.backend"},
        {"c2s:\n  address: localhost\n", 2, "c2s.address"},
        /* hosts */
        {"hosts: []\n", 1, "hosts: at least one host is required"},
        {"hosts:\n  - a.example\n  - \"\"\n", 3, "hosts[1]: must not be empty"},
        {"hosts: [a.example, A.Example]\n", 1, "duplicate host \"a.example\""},
        {"hosts:\n  - a b\n", 2, "hosts[0]"},
        /* YAML syntax */
        {"c2s:\n  port: 1\n]\n", 3, "YAML syntax error"},
        {"log:\n  level: info\n  - x\n", 3, "YAML syntax error"},
        {"c2s:\n  port: \"5222\n", 2, "YAML syntax error"},
        {"c2s:\n\tport: 5222\n", 2, "YAML syntax error"},
        {"hosts: [a]\n---\nhosts: [b]\n", 2, "only one YAML document"},
        {"data_dir: &d x\nc2s: *d\n", 2, "c2s: YAML aliases are not supported"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mp_config c;
        char err[512], prefix[192];
        memset(&c, 0xa5, sizeof c); /* load must not depend on the caller zeroing */
        int rc = load_text(bad[i].yaml, &c, err, sizeof err);
        if (rc != MP_EINVAL)
            fail_msg("case %zu: rc %d for:\n%s", i, rc, bad[i].yaml);
        assert_true(is_zeroed(&c));
        snprintf(prefix, sizeof prefix, "%s:%d:", g_path, bad[i].line);
        if (strncmp(err, prefix, strlen(prefix)) != 0 || strstr(err, bad[i].needle) == NULL)
            fail_msg("case %zu: got \"%s\", want prefix \"%s\" and \"%s\"", i, err, prefix,
                     bad[i].needle);
        /* line:col: message — the column is a number too */
        const char *col = err + strlen(prefix);
        assert_true(*col >= '1' && *col <= '9');
        mp_config_free(&c);
    }
}

static void
test_error_columns(void **state)
{
    mp_config c;
    char err[512], want[256];
    assert_int_equal(load_text("c2s:\n  port: 70000\n", &c, err, sizeof err), MP_EINVAL);
    snprintf(want, sizeof want, "%s:2:9: c2s.port: 70000 is out of range (0..65535)", g_path);
    assert_string_equal(err, want);
    assert_int_equal(load_text("c2s:\n  bogus: 1\n", &c, err, sizeof err), MP_EINVAL);
    snprintf(want, sizeof want, "%s:2:3: unknown key \"c2s.bogus\"", g_path);
    assert_string_equal(err, want);
    /* A tiny buffer truncates but stays terminated; NULL is allowed. */
    assert_int_equal(load_text("bogus: 1\n", &c, err, 8), MP_EINVAL);
    assert_int_equal(strlen(err), 7);
    assert_int_equal(load_text("bogus: 1\n", &c, NULL, 0), MP_EINVAL);
    assert_true(is_zeroed(&c));
}

static void
test_missing_file(void **state)
{
    mp_config c;
    char err[256], path[128];
    snprintf(path, sizeof path, "%s/absent.yml", g_dir);
    assert_int_equal(mp_config_load(path, &c, err, sizeof err), MP_EINVAL);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "No such file"));
    assert_true(is_zeroed(&c));
    assert_int_equal(mp_config_load(g_dir, &c, err, sizeof err), MP_EINVAL);
    assert_non_null(strstr(err, "not a regular file"));
}

static void
test_sizes(void **state)
{
    static const struct {
        const char *text;
        size_t want;
    } ok[] = {
        {"262144", 262144}, {"256KiB", 262144}, {"256K", 262144},
        {"1MiB", 1048576},  {"2M", 2097152},    {"\"64 KiB\"", 65536},
        {"0x10000", 65536}, {"1GiB", 1u << 30}, {"10000", 10000},
    };
    static const char *const bad[] = {"256kb", "1.5M", "K", "-1M", "2GiB", "12 34", "true"};
    char yaml[128], err[256];
    mp_config c;
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        snprintf(yaml, sizeof yaml, "c2s:\n  max_stanza_size: %s\n", ok[i].text);
        if (load_text(yaml, &c, err, sizeof err) != 0)
            fail_msg("%s: %s", ok[i].text, err);
        assert_int_equal(c.max_stanza_size, ok[i].want);
        mp_config_free(&c);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(yaml, sizeof yaml, "c2s:\n  max_output_buffer: %s\n", bad[i]);
        if (load_text(yaml, &c, err, sizeof err) != MP_EINVAL)
            fail_msg("%s accepted", bad[i]);
        assert_non_null(strstr(err, ":2:"));
        assert_non_null(strstr(err, "c2s.max_output_buffer"));
    }
}

static void
test_data_dir_paths(void **state)
{
    mp_config c;
    char err[256];
    assert_int_equal(load_text("data_dir: /srv/m\n", &c, err, sizeof err), 0);
    assert_string_equal(c.tls_certificate, "/srv/m/magpie.crt");
    assert_string_equal(c.tls_key, "/srv/m/magpie.key");
    assert_string_equal(c.sqlite_path, "/srv/m/magpie.db");
    assert_string_equal(c.admin_socket, "/srv/m/magpied.sock");
    mp_config_free(&c);

    /* An explicit path is kept as written, the others still follow data_dir. */
    assert_int_equal(
        load_text("storage:\n  sqlite_path: db/x.db\ndata_dir: \"d/\"\n", &c, err, sizeof err), 0);
    assert_string_equal(c.data_dir, "d/");
    assert_string_equal(c.sqlite_path, "db/x.db");
    assert_string_equal(c.tls_certificate, "d/magpie.crt");
    assert_string_equal(c.admin_socket, "d/magpied.sock");
    mp_config_free(&c);

    assert_int_equal(load_text("data_dir: /\n", &c, err, sizeof err), 0);
    assert_string_equal(c.sqlite_path, "/magpie.db");
    mp_config_free(&c);
}

static void
test_free_twice(void **state)
{
    mp_config c;
    memset(&c, 0, sizeof c);
    mp_config_free(&c);
    mp_config_free(NULL);
    assert_int_equal(mp_config_defaults(&c), 0);
    mp_config_free(&c);
    assert_true(is_zeroed(&c));
    mp_config_free(&c);

    char err[256];
    assert_int_equal(load_text(full_yaml, &c, err, sizeof err), 0);
    mp_config_free(&c);
    mp_config_free(&c);
    assert_true(is_zeroed(&c));
}

static void
test_mechs(void **state)
{
    static const char *const names[] = {"PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256",
                                        "SCRAM-SHA-256-PLUS"};
    unsigned all = 0;
    for (size_t i = 0; i < 5; i++) {
        unsigned bit = mp_config_mech_bit(names[i]);
        assert_int_not_equal(bit, 0);
        assert_int_equal(bit & (bit - 1), 0);
        assert_string_equal(mp_config_mech_name(bit), names[i]);
        all |= bit;
    }
    assert_int_equal(all, ALL_MECHS);
    assert_int_equal(mp_config_mech_bit("plain"), 0);
    assert_int_equal(mp_config_mech_bit("SCRAM-SHA-512"), 0);
    assert_int_equal(mp_config_mech_bit(""), 0);
    assert_int_equal(mp_config_mech_bit(NULL), 0);
    assert_null(mp_config_mech_name(0));
    assert_null(mp_config_mech_name(MP_MECH_PLAIN | MP_MECH_SCRAM_SHA_1));
    assert_null(mp_config_mech_name(1u << 5));
}

/* The checked-in example in tests/data/config must stay valid. */
static void
test_fixture(void **state)
{
    const char *dir = getenv("MP_TEST_DATA");
    if (dir == NULL)
        skip();
    char path[512], err[256];
    snprintf(path, sizeof path, "%s/config/example.yml", dir);
    mp_config c;
    if (mp_config_load(path, &c, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_int_equal(c.nhosts, 2);
    assert_string_equal(c.hosts[0], "example.org");
    assert_int_equal(c.max_stanza_size, 512 * 1024);
    assert_string_equal(c.sqlite_path, "/var/lib/magpie/magpie.db");
    mp_config_free(&c);

    snprintf(path, sizeof path, "%s/config/bad-nested-key.yml", dir);
    assert_int_equal(mp_config_load(path, &c, err, sizeof err), MP_EINVAL);
    char want[600];
    snprintf(want, sizeof want, "%s:7:3: unknown key \"c2s.max_stanzas\"", path);
    assert_string_equal(err, want);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_full_file),
        cmocka_unit_test(test_empty_means_defaults),
        cmocka_unit_test(test_write_default_loads_back),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_error_columns),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_data_dir_paths),
        cmocka_unit_test(test_free_twice),
        cmocka_unit_test(test_mechs),
        cmocka_unit_test(test_fixture),
    };
    return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
