/* The pure parts of modules/muc/room.c: affiliations kept by bare JID (a full JID names its
 * account), their removal, and the default role of each affiliation (XEP-0045 §5.1.2). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "modules/muc/muc_int.h"
#include "base/htab.h"

static void
test_affiliations(void **state)
{
    muc_room room;
    memset(&room, 0, sizeof room);
    assert_int_equal(muc_affil_of(&room, "alice@x"), MUC_AFF_NONE);

    assert_int_equal(muc_affil_set(&room, "alice@x", MUC_OWNER, NULL), 0);
    assert_int_equal(muc_affil_set(&room, "bob@x/phone", MUC_MEMBER, "friend"), 0);
    assert_int_equal(muc_affil_set(&room, "eve@x", MUC_OUTCAST, "spam"), 0);
    assert_int_equal(room.affiliations.count, 3);
    assert_int_equal(muc_affil_of(&room, "alice@x"), MUC_OWNER);
    assert_int_equal(muc_affil_of(&room, "alice@x/desk"), MUC_OWNER); /* its account's */
    assert_int_equal(muc_affil_of(&room, "bob@x"), MUC_MEMBER);
    assert_int_equal(muc_affil_of(&room, "eve@x"), MUC_OUTCAST);
    assert_int_equal(muc_affil_of(&room, "alice@xx"), MUC_AFF_NONE);
    assert_int_equal(muc_affil_of(&room, "alic@x"), MUC_AFF_NONE);

    /* a change replaces in place, with its reason */
    assert_int_equal(muc_affil_set(&room, "bob@x", MUC_ADMIN, "promoted"), 0);
    assert_int_equal(room.affiliations.count, 3);
    assert_int_equal(muc_affil_of(&room, "bob@x"), MUC_ADMIN);
    mp_hnode *n = mp_htab_find(&room.affiliations, mp_hash_str("bob@x", 5));
    assert_non_null(n);
    muc_affiliation *a = mp_container_of(n, muc_affiliation, by_jid);
    assert_string_equal(a->jid, "bob@x");
    assert_string_equal(a->reason, "promoted");
    assert_string_equal(a->nick, "");

    /* none removes; removing what is not there is fine */
    assert_int_equal(muc_affil_set(&room, "eve@x", MUC_AFF_NONE, NULL), 0);
    assert_int_equal(muc_affil_of(&room, "eve@x"), MUC_AFF_NONE);
    assert_int_equal(muc_affil_set(&room, "nobody@x", MUC_AFF_NONE, NULL), 0);
    assert_int_equal(room.affiliations.count, 2);
    assert_int_equal(muc_affil_set(&room, "alice@x", MUC_AFF_NONE, NULL), 0);
    assert_int_equal(muc_affil_set(&room, "bob@x", MUC_AFF_NONE, NULL), 0);
    assert_int_equal(room.affiliations.count, 0);
    mp_htab_free(&room.affiliations);
}

static void
test_default_roles(void **state)
{
    muc_room room;
    memset(&room, 0, sizeof room);
    assert_int_equal(muc_role_for(&room, MUC_OWNER), MUC_MODERATOR);
    assert_int_equal(muc_role_for(&room, MUC_ADMIN), MUC_MODERATOR);
    assert_int_equal(muc_role_for(&room, MUC_MEMBER), MUC_PARTICIPANT);
    assert_int_equal(muc_role_for(&room, MUC_AFF_NONE), MUC_PARTICIPANT);
    assert_int_equal(muc_role_for(&room, MUC_OUTCAST), MUC_ROLE_NONE);
    room.cfg.moderated = 1; /* only those without an affiliation lose their voice */
    assert_int_equal(muc_role_for(&room, MUC_AFF_NONE), MUC_VISITOR);
    assert_int_equal(muc_role_for(&room, MUC_MEMBER), MUC_PARTICIPANT);
    assert_int_equal(muc_role_for(&room, MUC_ADMIN), MUC_MODERATOR);
}

static void
test_no_occupants(void **state)
{
    muc_room room;
    memset(&room, 0, sizeof room);
    assert_null(muc_occupant_by_nick(&room, "Alice"));
    assert_null(muc_occupant_by_real(&room, "alice@x/r"));
}

int
main(void)
{
    mp_hash_seed_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_affiliations),
        cmocka_unit_test(test_default_roles),
        cmocka_unit_test(test_no_occupants),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
