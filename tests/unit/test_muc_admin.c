/* The permission rules of XEP-0045 §8-§10 (modules/muc/admin.c): every combination of actor,
 * target and change, against the use cases the XEP lists. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "modules/muc/muc_int.h"

#include <string.h>

enum { O = MUC_OUTCAST, N = MUC_AFF_NONE, M = MUC_MEMBER, A = MUC_ADMIN, W = MUC_OWNER };
enum { RN = MUC_ROLE_NONE, V = MUC_VISITOR, P = MUC_PARTICIPANT, MOD = MUC_MODERATOR };

/* The role an occupant of this affiliation may have (admins and owners are moderators). */
static int
possible(int affil, int role)
{
    if (affil == O || role == RN)
        return 0;
    return affil < A || role == MOD;
}

/* §8.2 kick, §8.3/8.4 voice, §9.6/9.7 moderator: the XEP's use cases one by one. */
static void
test_role_use_cases(void **state)
{
    /* a participant (no affiliation) who is no moderator can do nothing */
    assert_int_equal(muc_may_set_role(N, P, N, V, RN), MUC_DENY_FORBIDDEN);
    assert_int_equal(muc_may_set_role(M, P, N, V, P), MUC_DENY_FORBIDDEN);
    /* §8.2: a moderator kicks a participant or visitor */
    assert_int_equal(muc_may_set_role(N, MOD, N, P, RN), MUC_ALLOW);
    assert_int_equal(muc_may_set_role(A, MOD, M, V, RN), MUC_ALLOW);
    /* ... not one of higher affiliation (not-allowed), nor an admin or owner */
    assert_int_equal(muc_may_set_role(N, MOD, M, P, RN), MUC_DENY_NOT_ALLOWED);
    assert_int_equal(muc_may_set_role(A, MOD, W, MOD, RN), MUC_DENY_NOT_ALLOWED);
    assert_int_equal(muc_may_set_role(A, MOD, A, MOD, RN), MUC_DENY_NOT_ALLOWED);
    assert_int_equal(muc_may_set_role(W, MOD, W, MOD, RN), MUC_DENY_NOT_ALLOWED);
    assert_int_equal(muc_may_set_role(W, MOD, A, MOD, V), MUC_DENY_NOT_ALLOWED);
    /* §8.3/§8.4: voice granted and revoked by any moderator */
    assert_int_equal(muc_may_set_role(N, MOD, N, V, P), MUC_ALLOW);
    assert_int_equal(muc_may_set_role(N, MOD, N, P, V), MUC_ALLOW);
    assert_int_equal(muc_may_set_role(M, MOD, M, P, V), MUC_ALLOW);
    /* §9.6: only admins and owners make moderators; §9.7 and unmake them */
    assert_int_equal(muc_may_set_role(N, MOD, M, P, MOD), MUC_DENY_FORBIDDEN);
    assert_int_equal(muc_may_set_role(A, MOD, M, P, MOD), MUC_ALLOW);
    assert_int_equal(muc_may_set_role(W, MOD, N, V, MOD), MUC_ALLOW);
    assert_int_equal(muc_may_set_role(M, MOD, M, MOD, P), MUC_DENY_FORBIDDEN);
    assert_int_equal(muc_may_set_role(A, MOD, M, MOD, P), MUC_ALLOW);
    /* a change to the role held already is no change */
    assert_int_equal(muc_may_set_role(N, MOD, W, MOD, MOD), MUC_ALLOW);
}

/* Properties over every combination the room can hold. */
static void
test_role_table(void **state)
{
    int allowed = 0;
    for (int aa = O; aa <= W; aa++)
        for (int ar = RN; ar <= MOD; ar++)
            for (int ta = O; ta <= W; ta++)
                for (int tr = RN; tr <= MOD; tr++)
                    for (int nr = RN; nr <= MOD; nr++) {
                        if (!possible(ta, tr))
                            continue;
                        int v = muc_may_set_role(aa, ar, ta, tr, nr);
                        assert_true(v == MUC_ALLOW || v == MUC_DENY_FORBIDDEN ||
                                    v == MUC_DENY_NOT_ALLOWED);
                        if (ar != MOD)
                            assert_int_equal(v, MUC_DENY_FORBIDDEN);
                        if (v != MUC_ALLOW)
                            continue;
                        allowed++;
                        assert_int_equal(ar, MOD);
                        /* nobody lowers an admin or owner, or someone above themselves */
                        if (nr < tr)
                            assert_true(ta < A && ta <= aa);
                        /* moderator status moves only by an admin or owner */
                        if (nr != tr && (nr == MOD || tr == MOD))
                            assert_true(aa >= A);
                    }
    assert_true(allowed > 0);
}

/* §9.1 ban, §9.3/9.4 members, §10.3-10.7 owners and admins. */
static void
test_affil_use_cases(void **state)
{
    /* members and unaffiliated users change no affiliation */
    assert_int_equal(muc_may_set_affil(M, N, O), MUC_DENY_FORBIDDEN);
    assert_int_equal(muc_may_set_affil(N, N, M), MUC_DENY_FORBIDDEN);
    assert_int_equal(muc_may_set_affil(O, N, M), MUC_DENY_FORBIDDEN);
    /* admins ban, unban, grant and revoke membership */
    assert_int_equal(muc_may_set_affil(A, N, O), MUC_ALLOW);
    assert_int_equal(muc_may_set_affil(A, M, O), MUC_ALLOW);
    assert_int_equal(muc_may_set_affil(A, O, N), MUC_ALLOW);
    assert_int_equal(muc_may_set_affil(A, N, M), MUC_ALLOW);
    assert_int_equal(muc_may_set_affil(A, M, N), MUC_ALLOW);
    /* ... but neither touch admins and owners nor make them */
    assert_int_equal(muc_may_set_affil(A, W, O), MUC_DENY_NOT_ALLOWED);
    assert_int_equal(muc_may_set_affil(A, A, M), MUC_DENY_NOT_ALLOWED);
    assert_int_equal(muc_may_set_affil(A, M, A), MUC_DENY_FORBIDDEN);
    assert_int_equal(muc_may_set_affil(A, N, W), MUC_DENY_FORBIDDEN);
    /* owners do everything (the last owner is the caller's check) */
    assert_int_equal(muc_may_set_affil(W, M, A), MUC_ALLOW);
    assert_int_equal(muc_may_set_affil(W, A, N), MUC_ALLOW);
    assert_int_equal(muc_may_set_affil(W, W, O), MUC_ALLOW);
    assert_int_equal(muc_may_set_affil(W, N, W), MUC_ALLOW);
}

static void
test_affil_table(void **state)
{
    for (int aa = O; aa <= W; aa++)
        for (int ta = O; ta <= W; ta++)
            for (int na = O; na <= W; na++) {
                int v = muc_may_set_affil(aa, ta, na);
                if (aa < A) {
                    assert_int_equal(v, MUC_DENY_FORBIDDEN);
                    continue;
                }
                if (aa == W || na == ta) {
                    assert_int_equal(v, MUC_ALLOW);
                    continue;
                }
                /* an admin, changing something */
                if (na >= A)
                    assert_int_equal(v, MUC_DENY_FORBIDDEN);
                else if (ta >= A)
                    assert_int_equal(v, MUC_DENY_NOT_ALLOWED);
                else
                    assert_int_equal(v, MUC_ALLOW);
            }
}

static void
test_names(void **state)
{
    for (int a = O; a <= W; a++)
        assert_int_equal(muc_affil_parse(muc_affil_str(a)), a);
    for (int r = RN; r <= MOD; r++)
        assert_int_equal(muc_role_parse(muc_role_str(r)), r);
    assert_string_equal(muc_affil_str(O), "outcast");
    assert_string_equal(muc_role_str(P), "participant");
    assert_int_equal(muc_affil_parse("Owner"), -1);
    assert_int_equal(muc_affil_parse(NULL), -1);
    assert_int_equal(muc_role_parse("kick"), -1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_role_use_cases),  cmocka_unit_test(test_role_table),
        cmocka_unit_test(test_affil_use_cases), cmocka_unit_test(test_affil_table),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
