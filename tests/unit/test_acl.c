/* Site policies: the acl: section as the config loader reads and checks it, and the compiled
 * lists as the core evaluates them. */
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
#include "router/acl.h"

static char g_dir[64];
static char g_path[128];

static int
setup_dir(void **state)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/mp_test_acl.XXXXXX");
    return mkdtemp(g_dir) == NULL ? -1 : 0;
}

static int
teardown_dir(void **state)
{
    return rmdir(g_dir);
}

static int
load_text(const char *text, mp_config *cfg, char *err, size_t errlen)
{
    snprintf(g_path, sizeof g_path, "%s/magpie.yml", g_dir);
    FILE *f = fopen(g_path, "w");
    assert_non_null(f);
    assert_true(fputs(text, f) >= 0);
    assert_int_equal(fclose(f), 0);
    int rc = mp_config_load(g_path, cfg, err, errlen);
    unlink(g_path);
    return rc;
}

static mp_acl *
compile_text(const char *text)
{
    mp_config cfg;
    char err[512];
    int rc = load_text(text, &cfg, err, sizeof err);
    if (rc != 0)
        fail_msg("load failed: %s", err);
    mp_acl *acl = NULL;
    assert_int_equal(mp_acl_compile(&cfg, &acl), 0);
    /* The compiled set keeps copies: the config may go (as on reload). */
    mp_config_free(&cfg);
    return acl;
}

static const char policy_file[] = "hosts: [a.test, b.test, localhost]\n"
                                  "acl:\n"
                                  "  admins: [Boss@A.Test]\n"
                                  "  send_alerts: [admins, ops@b.test]\n"
                                  "  save_private: [local]\n"
                                  "  save_vcard: [B.Test, carol@a.test, localhost]\n"
                                  "  create_rooms: [all]\n";

struct row {
    enum mp_acl_rule rule;
    const char *jid;
    int want;
};

static void
test_principal_table(void **state)
{
    mp_acl *acl = compile_text(policy_file);
    static const struct row rows[] = {
        /* admins through the "admins" principal, and a JID */
        {MP_ACL_SEND_ALERTS, "boss@a.test", 1},
        {MP_ACL_SEND_ALERTS, "boss@a.test/desk", 1},
        {MP_ACL_SEND_ALERTS, "boss@A.TEST", 1},
        {MP_ACL_SEND_ALERTS, "ops@b.test/x", 1},
        {MP_ACL_SEND_ALERTS, "alice@a.test", 0},
        {MP_ACL_SEND_ALERTS, "ops@a.test", 0},
        {MP_ACL_SEND_ALERTS, "a.test", 0},
        /* local: accounts of hosted domains, not servers, not other domains */
        {MP_ACL_SAVE_PRIVATE, "alice@a.test", 1},
        {MP_ACL_SAVE_PRIVATE, "bob@b.test/r", 1},
        {MP_ACL_SAVE_PRIVATE, "bob@B.Test", 1},
        {MP_ACL_SAVE_PRIVATE, "dan@localhost", 1},
        {MP_ACL_SAVE_PRIVATE, "eve@remote.example", 0},
        {MP_ACL_SAVE_PRIVATE, "eve@sub.a.test", 0},
        {MP_ACL_SAVE_PRIVATE, "a.test", 0},
        /* a domain (written in capitals), a JID, a dotless host name */
        {MP_ACL_SAVE_VCARD, "bob@b.test", 1},
        {MP_ACL_SAVE_VCARD, "bob@B.TEST/home", 1},
        {MP_ACL_SAVE_VCARD, "carol@a.test/r", 1},
        {MP_ACL_SAVE_VCARD, "dan@localhost", 1},
        {MP_ACL_SAVE_VCARD, "alice@a.test", 0},
        {MP_ACL_SAVE_VCARD, "boss@a.test", 0}, /* admins are not "all" */
        {MP_ACL_SAVE_VCARD, "b.test", 0},
        {MP_ACL_SAVE_VCARD, "bob@sub.b.test", 0},
        {MP_ACL_SAVE_VCARD, "bob@test", 0},
        {MP_ACL_SAVE_VCARD, "", 0},
        /* all: anything, even a server */
        {MP_ACL_CREATE_ROOMS, "eve@remote.example", 1},
        {MP_ACL_CREATE_ROOMS, "a.test", 1},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        int got = mp_acl_check(acl, rows[i].rule, rows[i].jid);
        if (got != rows[i].want)
            fail_msg("rule %d, %s: got %d, want %d", rows[i].rule, rows[i].jid, got, rows[i].want);
    }
    assert_true(mp_acl_check_admin(acl, "boss@a.test"));
    assert_true(mp_acl_check_admin(acl, "boss@a.TEST/phone"));
    assert_false(mp_acl_check_admin(acl, "ops@b.test"));
    assert_false(mp_acl_check_admin(acl, "a.test"));
    assert_false(mp_acl_check(acl, MP_ACL_NRULES, "boss@a.test"));
    assert_false(mp_acl_check(acl, MP_ACL_SEND_ALERTS, NULL));
    /* see_presence not set: everything is visible */
    assert_true(mp_acl_check_visible(acl, "alice@a.test/r", "bob@b.test"));
    mp_acl_free(acl);
}

static void
test_defaults(void **state)
{
    mp_config cfg;
    assert_int_equal(mp_config_defaults(&cfg), 0);
    assert_int_equal(cfg.acl_see_presence, MP_SEE_ALL);
    assert_int_equal(cfg.acl_admins.n, 0);
    mp_acl *acl = NULL;
    assert_int_equal(mp_acl_compile(&cfg, &acl), 0);
    /* send_alerts [admins] with no admins: nobody */
    assert_false(mp_acl_check(acl, MP_ACL_SEND_ALERTS, "alice@localhost"));
    assert_true(mp_acl_check(acl, MP_ACL_SAVE_PRIVATE, "alice@localhost"));
    assert_true(mp_acl_check(acl, MP_ACL_SAVE_VCARD, "eve@remote.example"));
    assert_true(mp_acl_check(acl, MP_ACL_CREATE_ROOMS, "alice@localhost/r"));
    assert_false(mp_acl_check(acl, MP_ACL_CREATE_ROOMS, "eve@remote.example"));
    assert_false(mp_acl_check_admin(acl, "alice@localhost"));
    assert_true(mp_acl_check_visible(acl, "alice@localhost", "eve@remote.example"));
    mp_acl_free(acl);
    mp_config_free(&cfg);
}

static void
test_same_domain(void **state)
{
    mp_acl *acl = compile_text("hosts: [a.test, b.test]\n"
                               "acl: {see_presence: same_domain}\n");
    assert_false(mp_acl_check_visible(acl, "alice@a.test/r", "bob@b.test"));
    assert_false(mp_acl_check_visible(acl, "bob@b.test", "alice@a.test/r"));
    assert_true(mp_acl_check_visible(acl, "alice@a.test/r", "carol@a.test"));
    assert_true(mp_acl_check_visible(acl, "alice@a.test", "carol@A.Test/x"));
    assert_false(mp_acl_check_visible(acl, "alice@a.test", "carol@a.test.evil"));
    assert_false(mp_acl_check_visible(acl, "alice@a.test", "carol@test"));
    mp_acl_free(acl);
}

/* Normalised at load: what the core compares is what stringprep makes of it. */
static void
test_normalised(void **state)
{
    mp_config cfg;
    char err[512];
    assert_int_equal(load_text("acl:\n"
                               "  admins: [\"Admin@Example.ORG\"]\n"
                               "  save_vcard: [Example.ORG, all]\n"
                               "  create_rooms: []\n",
                               &cfg, err, sizeof err),
                     0);
    assert_int_equal(cfg.acl_admins.n, 1);
    assert_string_equal(cfg.acl_admins.v[0], "admin@example.org");
    assert_int_equal(cfg.acl_save_vcard.n, 2);
    assert_string_equal(cfg.acl_save_vcard.v[0], "example.org");
    assert_string_equal(cfg.acl_save_vcard.v[1], "all");
    /* a list not given keeps its default, [] means nobody */
    assert_int_equal(cfg.acl_send_alerts.n, 1);
    assert_string_equal(cfg.acl_send_alerts.v[0], "admins");
    assert_int_equal(cfg.acl_create_rooms.n, 0);
    mp_acl *acl = NULL;
    assert_int_equal(mp_acl_compile(&cfg, &acl), 0);
    assert_false(mp_acl_check(acl, MP_ACL_CREATE_ROOMS, "alice@localhost"));
    assert_true(mp_acl_check(acl, MP_ACL_SEND_ALERTS, "admin@example.org/x"));
    mp_acl_free(acl);
    mp_config_free(&cfg);
}

struct bad {
    const char *text;
    const char *where;   /* ":line:col:" */
    const char *message; /* part of the message */
};

static void
test_bad_values(void **state)
{
    /* libfyaml places a quoted scalar at its first character after the quote. */
    static const struct bad bad[] = {
        {"acl:\n  save_vcard: [all, everyone]\n",
         ":2:21:", "acl.save_vcard[1]: unknown principal \"everyone\""},
        {"hosts: [a.test]\nacl:\n  send_alerts:\n    - admins\n    - localhost\n",
         ":5:7:", "unknown principal \"localhost\""},
        {"acl:\n  save_private: [\"@example.org\"]\n",
         ":2:19:", "acl.save_private[0]: \"@example.org\" is not a bare JID"},
        {"acl:\n  save_private: [bob@example.org/phone]\n",
         ":2:18:", "\"bob@example.org/phone\" is not a bare JID"},
        {"acl:\n  create_rooms: [\"bob@exa mple.org\"]\n", ":2:19:", "is not a bare JID"},
        {"acl:\n  create_rooms: [example.org/x]\n",
         ":2:18:", "\"example.org/x\" is not a domain, a bare JID or one of all, local, admins"},
        {"acl:\n  create_rooms: [\"exa mple.org\"]\n", ":2:19:", "is not a domain"},
        {"acl:\n  admins: [all]\n", ":2:12:", "acl.admins[0]: \"all\" is not a bare JID"},
        {"acl:\n  admins: [example.org]\n", ":2:12:", "is not a bare JID"},
        {"acl:\n  see_presence: nobody\n",
         ":2:17:", "acl.see_presence: unknown value \"nobody\" (expected one of all, same_domain)"},
        {"acl:\n  save_vcard: all\n", ":2:15:", "acl.save_vcard: expected a list"},
        {"acl:\n  send_alerts:\n  save_vcard: [all]\n", ":2:", "send_alerts: expected a list"},
        {"acl:\n  save_vcard: [7]\n", ":2:16:", "acl.save_vcard[0]: expected a string"},
        {"acl:\n  save_vcard: [[all]]\n", ":2:16:", "expected a string, got a list"},
        {"acl:\n  save_everything: [all]\n", ":2:3:", "unknown key \"acl.save_everything\""},
        {"acl: [all]\n", ":1:6:", "acl: expected a mapping"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mp_config cfg;
        char err[512];
        int rc = load_text(bad[i].text, &cfg, err, sizeof err);
        if (rc != MP_EINVAL)
            fail_msg("case %zu: accepted:\n%s", i, bad[i].text);
        if (strstr(err, bad[i].where) == NULL || strstr(err, bad[i].message) == NULL)
            fail_msg("case %zu: got \"%s\", want %s and \"%s\"", i, err, bad[i].where,
                     bad[i].message);
        if (strncmp(err, g_path, strlen(g_path)) != 0)
            fail_msg("case %zu: \"%s\" does not start with the file name", i, err);
    }
}

/* The commented default file must load back with the same policies: an empty admins list has
 * to stay a list, not become null. */
static void
test_default_file(void **state)
{
    char path[160];
    snprintf(path, sizeof path, "%s/default.yml", g_dir);
    assert_int_equal(mp_config_write_default(path), 0);
    mp_config cfg, def;
    char err[512];
    int rc = mp_config_load(path, &cfg, err, sizeof err);
    if (rc != 0)
        fail_msg("%s", err);
    assert_int_equal(mp_config_defaults(&def), 0);
    const mp_strlist *a[] = {&cfg.acl_admins, &cfg.acl_send_alerts, &cfg.acl_save_private,
                             &cfg.acl_save_vcard, &cfg.acl_create_rooms};
    const mp_strlist *b[] = {&def.acl_admins, &def.acl_send_alerts, &def.acl_save_private,
                             &def.acl_save_vcard, &def.acl_create_rooms};
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(a[i]->n, b[i]->n);
        for (size_t j = 0; j < a[i]->n; j++)
            assert_string_equal(a[i]->v[j], b[i]->v[j]);
    }
    assert_int_equal(cfg.acl_see_presence, def.acl_see_presence);
    mp_config_free(&cfg);
    mp_config_free(&def);
    unlink(path);
}

/* Reload takes the acl section of the new file through a swap; the old lists go with it. */
static void
test_swap(void **state)
{
    mp_config running, fresh;
    char err[512];
    assert_int_equal(mp_config_defaults(&running), 0);
    assert_int_equal(load_text("acl: {see_presence: same_domain, save_vcard: [admins], "
                               "admins: [root@localhost]}\n",
                               &fresh, err, sizeof err),
                     0);
    mp_config_swap_acl(&running, &fresh);
    assert_int_equal(running.acl_see_presence, MP_SEE_SAME_DOMAIN);
    assert_int_equal(fresh.acl_see_presence, MP_SEE_ALL);
    assert_string_equal(running.acl_save_vcard.v[0], "admins");
    assert_string_equal(fresh.acl_save_vcard.v[0], "all");
    mp_config_free(&fresh);
    mp_acl *acl = NULL;
    assert_int_equal(mp_acl_compile(&running, &acl), 0);
    assert_true(mp_acl_check(acl, MP_ACL_SAVE_VCARD, "root@localhost"));
    assert_false(mp_acl_check(acl, MP_ACL_SAVE_VCARD, "alice@localhost"));
    mp_acl_free(acl);
    mp_config_free(&running);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_principal_table),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_same_domain),
        cmocka_unit_test(test_normalised),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_default_file),
        cmocka_unit_test(test_swap),
    };
    return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
