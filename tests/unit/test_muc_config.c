/* The room configuration form (modules/muc/config.c): reading a submitted muc#roomconfig
 * form, all or nothing, the status codes a change broadcasts, the admin and owner lists, the
 * room's disco#info; and blob_list, which persistent rooms are loaded with. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "helpers.h"
#include "modules/muc/muc_int.h"
#include "base/err.h"

#define NS_XDATA "jabber:x:data"
#define FORM_HEAD "<x xmlns='jabber:x:data' type='submit'>"
#define FIELD(var, val) "<field var='" var "'><value>" val "</value></field>"
#define CFG(var, val) FIELD("muc#roomconfig_" var, val)

typedef struct fixture {
    mp_test_xml x;
    muc_room room;
} fixture;

static int
setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    void *xs;
    assert_non_null(f);
    assert_int_equal(mp_test_xml_setup(&xs), 0);
    f->x = *(mp_test_xml *)xs;
    free(xs);
    muc_room *r = &f->room;
    r->jid = strdup("lounge@conference.example.org");
    r->jid_len = strlen(r->jid);
    r->node = strdup("lounge");
    r->domain = strdup("conference.example.org");
    r->locked = 1;
    r->cfg.name = strdup("");
    r->cfg.description = strdup("");
    r->cfg.password = strdup("");
    r->cfg.subject = strdup("");
    r->cfg.subject_from = strdup("");
    r->cfg.avatar_hash = strdup("");
    r->cfg.public_room = 1;
    r->cfg.allow_pm = MUC_PM_ANYONE;
    r->cfg.history_length = 20;
    assert_non_null(r->cfg.avatar_hash);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    fixture *f = *state;
    muc_room *r = &f->room;
    for (size_t i = 0; i < r->affiliations.nbuckets; i++) {
        mp_hnode *n = r->affiliations.buckets[i];
        while (n) {
            mp_hnode *next = n->next;
            muc_affiliation *a = mp_container_of(n, muc_affiliation, by_jid);
            free(a->reason);
            free(a->nick);
            free(a);
            n = next;
        }
    }
    mp_htab_free(&r->affiliations);
    muc_config_free(&r->cfg);
    free(r->jid);
    free(r->node);
    free(r->domain);
    mp_xml_parser_free(f->x.p);
    mp_arena_free(&f->x.a);
    mp_buf_free(&f->x.b);
    free(f);
    return 0;
}

static mp_xnode *
parse(fixture *f, const char *xml)
{
    mp_xnode *n;
    assert_int_equal(mp_xml_parse(f->x.p, &f->x.a, "jabber:client", xml, strlen(xml), &n), 0);
    return n;
}

static int
apply(fixture *f, const char *xml, int *codes)
{
    return muc_config_apply_form(&f->room, xml ? parse(f, xml) : NULL, codes, 4);
}

static void
test_full_form(void **state)
{
    fixture *f = *state;
    int codes[4];
    assert_int_equal(
        apply(f,
              FORM_HEAD FIELD("FORM_TYPE", "http://jabber.org/protocol/muc#roomconfig")
                  CFG("roomname", "The Lounge") CFG("roomdesc", "Where we meet")
                      CFG("persistentroom", "1") CFG("publicroom", "0") CFG("membersonly", "true")
                          CFG("passwordprotectedroom", "1") CFG("roomsecret", "cauldron")
                              CFG("moderatedroom", "1") CFG("maxusers", "30")
                                  CFG("whois", "moderators") CFG("allowinvites", "1")
                                      CFG("changesubject", "0") CFG("allowpm", "moderators")
                                          FIELD("muc#maxhistoryfetch", "50") "</x>",
              codes),
        0);
    const muc_config *c = &f->room.cfg;
    assert_string_equal(c->name, "The Lounge");
    assert_string_equal(c->description, "Where we meet");
    assert_string_equal(c->password, "cauldron");
    assert_int_equal(c->persistent, 1);
    assert_int_equal(c->public_room, 0);
    assert_int_equal(c->members_only, 1);
    assert_int_equal(c->password_protected, 1);
    assert_int_equal(c->moderated, 1);
    assert_int_equal(c->max_users, 30);
    assert_int_equal(c->whois, MUC_WHOIS_MODERATORS);
    assert_int_equal(c->allow_invites, 1);
    assert_int_equal(c->change_subject, 0);
    assert_int_equal(c->allow_pm, MUC_PM_MODERATORS);
    assert_int_equal(c->history_length, 50);
    assert_int_equal(c->logging, 0);
    assert_int_equal(f->room.locked, 0);
    assert_int_equal(codes[0], 104);
    assert_int_equal(codes[1], 0);
}

/* Logging and anonymity have codes of their own (§10.2.1), and 104 only comes with others. */
static void
test_privacy_codes(void **state)
{
    fixture *f = *state;
    int codes[4];
    assert_int_equal(apply(f, FORM_HEAD CFG("enablelogging", "1") "</x>", codes), 0);
    assert_int_equal(codes[0], 170);
    assert_int_equal(codes[1], 0);
    assert_int_equal(apply(f, FORM_HEAD CFG("whois", "anyone") "</x>", codes), 0);
    assert_int_equal(codes[0], 172);
    assert_int_equal(codes[1], 0);
    assert_int_equal(f->room.cfg.whois, MUC_WHOIS_ANYONE);
    assert_int_equal(apply(f,
                           FORM_HEAD CFG("whois", "moderators") CFG("enablelogging", "0")
                               CFG("roomname", "x") "</x>",
                           codes),
                     0);
    assert_int_equal(codes[0], 104);
    assert_int_equal(codes[1], 171);
    assert_int_equal(codes[2], 173);
    assert_int_equal(codes[3], 0);
    /* the same values again: nothing changed, nothing to say */
    assert_int_equal(
        apply(f, FORM_HEAD CFG("roomname", "x") CFG("whois", "moderators") "</x>", codes), 0);
    assert_int_equal(codes[0], 0);
}

/* One bad field and nothing changes. */
static void
test_all_or_nothing(void **state)
{
    fixture *f = *state;
    int codes[4];
    static const char *const bad[] = {
        FORM_HEAD CFG("roomname", "new") CFG("membersonly", "yes") "</x>",
        FORM_HEAD CFG("roomname", "new") CFG("maxusers", "-1") "</x>",
        FORM_HEAD CFG("roomname", "new") CFG("maxusers", "ten") "</x>",
        FORM_HEAD CFG("roomname", "new") CFG("whois", "nobody") "</x>",
        FORM_HEAD CFG("roomname", "new") CFG("allowpm", "friends") "</x>",
        FORM_HEAD FIELD("FORM_TYPE", "jabber:iq:register") CFG("roomname", "new") "</x>",
        FORM_HEAD CFG("roomname", "new") CFG("passwordprotectedroom", "1") "</x>",
        FORM_HEAD CFG("roomname", "new") FIELD("muc#maxhistoryfetch", "99999999") "</x>",
        FORM_HEAD CFG("roomname", "new") CFG("roomowners", "not a jid@") "</x>",
        FORM_HEAD CFG("roomname", "new") CFG("roomadmins", "example.org") "</x>",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(apply(f, bad[i], codes), MP_EINVAL);
        assert_string_equal(f->room.cfg.name, "");
        assert_int_equal(f->room.cfg.max_users, 0);
        assert_int_equal(f->room.cfg.password_protected, 0);
        assert_int_equal(f->room.locked, 1);
        assert_int_equal(f->room.affiliations.count, 0);
    }
}

/* §10.1.2: an empty form (or none) makes an instant room with the defaults. */
static void
test_instant_room(void **state)
{
    fixture *f = *state;
    int codes[4] = {1, 1, 1, 1};
    assert_int_equal(apply(f, FORM_HEAD "</x>", codes), 0);
    assert_int_equal(f->room.locked, 0);
    assert_int_equal(codes[0], 0);
    assert_int_equal(f->room.cfg.public_room, 1);
    assert_int_equal(f->room.cfg.history_length, 20);
    f->room.locked = 1;
    assert_int_equal(apply(f, NULL, codes), 0);
    assert_int_equal(f->room.locked, 0);
}

static void
test_password_and_pm(void **state)
{
    fixture *f = *state;
    int codes[4];
    /* a secret alone makes the room password-protected */
    assert_int_equal(apply(f, FORM_HEAD CFG("roomsecret", "s3cr&amp;t") "</x>", codes), 0);
    assert_int_equal(f->room.cfg.password_protected, 1);
    assert_string_equal(f->room.cfg.password, "s3cr&t");
    /* switched off explicitly, the secret given along does not switch it on */
    assert_int_equal(
        apply(f, FORM_HEAD CFG("passwordprotectedroom", "0") CFG("roomsecret", "x") "</x>", codes),
        0);
    assert_int_equal(f->room.cfg.password_protected, 0);
    /* allowpm: the four values and the older boolean */
    static const struct {
        const char *v;
        int want;
    } pm[] = {{"none", MUC_PM_NONE},
              {"anyone", MUC_PM_ANYONE},
              {"participants", MUC_PM_PARTICIPANTS},
              {"moderators", MUC_PM_MODERATORS},
              {"0", MUC_PM_NONE},
              {"true", MUC_PM_ANYONE}};
    for (size_t i = 0; i < sizeof pm / sizeof pm[0]; i++) {
        char xml[256];
        snprintf(xml, sizeof xml, FORM_HEAD CFG("allowpm", "%s") "</x>", pm[i].v);
        assert_int_equal(apply(f, xml, codes), 0);
        assert_int_equal(f->room.cfg.allow_pm, pm[i].want);
    }
    /* maxusers "none" is no limit; a field without a value keeps the value */
    assert_int_equal(apply(f, FORM_HEAD CFG("maxusers", "20") "</x>", codes), 0);
    assert_int_equal(f->room.cfg.max_users, 20);
    assert_int_equal(apply(f, FORM_HEAD "<field var='muc#roomconfig_maxusers'/></x>", codes), 0);
    assert_int_equal(f->room.cfg.max_users, 20);
    assert_int_equal(apply(f, FORM_HEAD CFG("maxusers", "none") "</x>", codes), 0);
    assert_int_equal(f->room.cfg.max_users, 0);
}

/* The admin and owner lists are full lists; empty lists change nothing. */
static void
test_lists(void **state)
{
    fixture *f = *state;
    muc_room *r = &f->room;
    int codes[4];
    assert_int_equal(muc_affil_set(r, "crone@example.org", MUC_OWNER, ""), 0);
    assert_int_equal(muc_affil_set(r, "wiz@example.org", MUC_ADMIN, ""), 0);
    assert_int_equal(muc_affil_set(r, "hag@example.org", MUC_MEMBER, ""), 0);
    assert_int_equal(apply(f,
                           FORM_HEAD "<field var='muc#roomconfig_roomowners'>"
                                     "<value>crone@example.org</value>"
                                     "<value>Witch@Example.org</value></field>"
                                     "<field var='muc#roomconfig_roomadmins'>"
                                     "<value>hag@example.org</value></field></x>",
                           codes),
                     0);
    assert_int_equal(muc_affil_of(r, "crone@example.org"), MUC_OWNER);
    assert_int_equal(muc_affil_of(r, "witch@example.org"), MUC_OWNER);
    assert_int_equal(muc_affil_of(r, "hag@example.org"), MUC_ADMIN);
    assert_int_equal(muc_affil_of(r, "wiz@example.org"), MUC_AFF_NONE);
    /* empty lists: no change (a client that does not show jid-multi fields) */
    assert_int_equal(apply(f,
                           FORM_HEAD "<field var='muc#roomconfig_roomowners'/>"
                                     "<field var='muc#roomconfig_roomadmins'/></x>",
                           codes),
                     0);
    assert_int_equal(muc_affil_of(r, "crone@example.org"), MUC_OWNER);
    assert_int_equal(muc_affil_of(r, "hag@example.org"), MUC_ADMIN);
    /* one owner less */
    assert_int_equal(apply(f,
                           FORM_HEAD "<field var='muc#roomconfig_roomowners'>"
                                     "<value>witch@example.org</value></field></x>",
                           codes),
                     0);
    assert_int_equal(muc_affil_of(r, "crone@example.org"), MUC_AFF_NONE);
    assert_int_equal(muc_affil_of(r, "witch@example.org"), MUC_OWNER);
    assert_int_equal(r->affiliations.count, 2);
    /* the only owner listed among the admins, no owners list: still the owner (found by
     * fuzz_forms: the room was left without one) */
    assert_int_equal(apply(f,
                           FORM_HEAD "<field var='muc#roomconfig_roomadmins'>"
                                     "<value>witch@example.org</value>"
                                     "<value>hecate@example.org</value></field></x>",
                           codes),
                     0);
    assert_int_equal(muc_affil_of(r, "witch@example.org"), MUC_OWNER);
    assert_int_equal(muc_affil_of(r, "hecate@example.org"), MUC_ADMIN);
    assert_int_equal(muc_affil_of(r, "hag@example.org"), MUC_AFF_NONE); /* full list */
}

static int
has_child(const mp_xnode *q, const char *name, const char *attr, const char *value)
{
    for (const mp_xnode *c = q->children; c; c = c->next)
        if (strcmp(c->name, name) == 0 && mp_xnode_attr(c, attr) &&
            strcmp(mp_xnode_attr(c, attr), value) == 0)
            return 1;
    return 0;
}

static const char *
info_field(const mp_xnode *q, const char *var)
{
    const mp_xnode *x = mp_xnode_child(q, NS_XDATA, "x");
    assert_non_null(x);
    for (const mp_xnode *c = x->children; c; c = c->next)
        if (mp_xnode_attr(c, "var") && strcmp(mp_xnode_attr(c, "var"), var) == 0) {
            const mp_xnode *v = mp_xnode_child(c, NS_XDATA, "value");
            return v ? v->text : "";
        }
    return NULL;
}

static void
test_disco_info(void **state)
{
    fixture *f = *state;
    int codes[4];
    muc_room *r = &f->room;
    mp_xnode *q = muc_room_disco_info(NULL, r, &f->x.a);
    assert_non_null(q);
    assert_true(has_child(q, "identity", "category", "conference"));
    assert_true(has_child(q, "identity", "name", "lounge")); /* no name: the node */
    static const char *const open[] = {
        MUC_NS,          "muc_public",       "muc_temporary", "muc_open", "muc_unmoderated",
        "muc_unsecured", "muc_semianonymous"};
    for (size_t i = 0; i < sizeof open / sizeof open[0]; i++)
        assert_true(has_child(q, "feature", "var", open[i]));
    assert_false(has_child(q, "feature", "var", "urn:xmpp:mam:2"));

    assert_int_equal(apply(f,
                           FORM_HEAD CFG("roomname", "Lounge") CFG("roomdesc", "d") CFG(
                               "persistentroom", "1") CFG("publicroom", "0") CFG("membersonly", "1")
                               CFG("moderatedroom", "1") CFG("roomsecret", "pw")
                                   CFG("whois", "anyone") CFG("enablelogging", "1") "</x>",
                           codes),
                     0);
    r->noccupants = 3;
    q = muc_room_disco_info(NULL, r, &f->x.a);
    assert_non_null(q);
    assert_true(has_child(q, "identity", "name", "Lounge"));
    static const char *const closed[] = {
        "muc_hidden",    "muc_persistent",        "muc_membersonly",
        "muc_moderated", "muc_passwordprotected", "muc_nonanonymous",
        "urn:xmpp:mam:2"};
    for (size_t i = 0; i < sizeof closed / sizeof closed[0]; i++)
        assert_true(has_child(q, "feature", "var", closed[i]));
    assert_false(has_child(q, "feature", "var", "muc_public"));
    assert_string_equal(info_field(q, "FORM_TYPE"), MUC_NS_ROOMINFO);
    assert_string_equal(info_field(q, "muc#roominfo_description"), "d");
    assert_string_equal(info_field(q, "muc#roominfo_occupants"), "3");
}

/* ---- blob_list (storage of persistent rooms) ---- */

typedef struct seen {
    char nodes[8][32];
    size_t n;
} seen;

static int
collect(const char *node, const char *key, const char *data, size_t len, void *ud)
{
    seen *s = ud;
    assert_true(s->n < 8);
    assert_string_equal(key, "");
    assert_true(len == 4 && memcmp(data, "<r/>", 4) == 0);
    snprintf(s->nodes[s->n++], sizeof s->nodes[0], "%s", node);
    return 0;
}

static void
test_blob_list(void **state)
{
    mp_test_store *f = *state;
    const char *d = "conference.example.org";
    assert_int_equal(f->ops->blob_put(f->st, d, "b", "muc-room", "", "<r/>", 4), 0);
    assert_int_equal(f->ops->blob_put(f->st, d, "a", "muc-room", "", "<r/>", 4), 0);
    assert_int_equal(f->ops->blob_put(f->st, d, "c", "muc-vcard", "", "<v/>", 4), 0);
    assert_int_equal(
        f->ops->blob_put(f->st, "conference.other.org", "z", "muc-room", "", "<r/>", 4), 0);
    seen s = {0};
    assert_int_equal(f->ops->blob_list(f->st, d, "muc-room", collect, &s), 0);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.nodes[0], "a");
    assert_string_equal(s.nodes[1], "b");
    /* deleted rooms are gone; and it survives a restart */
    assert_int_equal(f->ops->blob_put(f->st, d, "a", "muc-room", "", NULL, 0), 0);
    mp_test_store_reopen(f);
    memset(&s, 0, sizeof s);
    assert_int_equal(f->ops->blob_list(f->st, d, "muc-room", collect, &s), 0);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.nodes[0], "b");
}

static int
store_setup(void **state)
{
    return mp_test_store_setup(state, "muc_config");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_full_form, setup, teardown),
        cmocka_unit_test_setup_teardown(test_privacy_codes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_all_or_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_instant_room, setup, teardown),
        cmocka_unit_test_setup_teardown(test_password_and_pm, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lists, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disco_info, setup, teardown),
        cmocka_unit_test_setup_teardown(test_blob_list, store_setup, mp_test_store_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
