/* The read shaper's token bucket: bursts pass, a steady client under the rate is never paused,
 * pauses pay exactly the debt back, a flood is held to the rate on average and is seen as one
 * long spell over it, a pause long enough to refill half the bucket ends the spell, and new
 * settings keep what the bucket holds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "mux/shaper.h"

static void
test_unlimited(void **state)
{
    mp_shaper s;
    mp_shaper_init(&s, 0, 1024, 0);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(mp_shaper_take(&s, 1 << 20, (uint64_t)i), 0);
    assert_int_equal(mp_shaper_over_for(&s, 1000), 0);
}

static void
test_burst_then_debt(void **state)
{
    mp_shaper s;
    mp_shaper_init(&s, 1000, 4000, 100);
    assert_int_equal(mp_shaper_take(&s, 4000, 100), 0); /* the whole burst at once */
    assert_int_equal(mp_shaper_over_for(&s, 100), 0);
    /* 500 bytes of debt at 1000 B/s: half a second */
    assert_int_equal(mp_shaper_take(&s, 500, 100), 500);
    assert_int_equal(mp_shaper_over_for(&s, 300), 200);
    /* one byte of debt still takes a whole millisecond (rounded up) */
    assert_int_equal(mp_shaper_take(&s, 1, 600), 1);
    /* at 601 that byte is paid, at 602 the next one is there: one byte per millisecond */
    assert_int_equal(mp_shaper_take(&s, 0, 601), 0);
    assert_int_equal(mp_shaper_take(&s, 1, 602), 0);
    assert_int_equal(mp_shaper_take(&s, 1, 602), 1);
}

static void
test_steady_client_never_paused(void **state)
{
    mp_shaper s;
    mp_shaper_init(&s, 10000, 10000, 0);
    /* 90% of the rate for ten minutes, in small reads */
    for (uint64_t t = 1; t <= 600000; t += 10)
        assert_int_equal(mp_shaper_take(&s, 90, t), 0);
    assert_int_equal(mp_shaper_over_for(&s, 600000), 0);
}

static void
test_flood_held_to_rate(void **state)
{
    const uint64_t rate = 100 * 1024, burst = 1024 * 1024;
    mp_shaper s;
    mp_shaper_init(&s, rate, burst, 1000);
    /* A flooder reads 64 KiB whenever it is allowed to, for 30 simulated seconds. */
    uint64_t t = 1000, bytes = 0, first_pause = 0;
    while (t < 31000) {
        uint64_t wait = mp_shaper_take(&s, 65536, t);
        bytes += 65536;
        if (wait && !first_pause)
            first_pause = t;
        t += wait ? wait : 1;
    }
    /* never more than the burst plus the rate plus one read */
    assert_true(bytes <= burst + rate * 30 + 65536);
    assert_true(bytes >= rate * 30); /* shaped, not starved */
    /* the burst went in the first reads, one a millisecond */
    assert_true(first_pause >= 1015 && first_pause <= 1017);
    /* one long spell over the rate, from the first pause on */
    assert_true(mp_shaper_over_for(&s, t) >= t - first_pause - 1);
    assert_true(mp_shaper_over_for(&s, t) > 29000);
}

static void
test_quiet_pause_ends_spell(void **state)
{
    mp_shaper s;
    mp_shaper_init(&s, 1000, 2000, 0);
    assert_int_equal(mp_shaper_take(&s, 3000, 0), 1000);
    assert_true(mp_shaper_over_for(&s, 900) > 0);
    /* debt paid at 1000 ms; the bucket holds 900 bytes at 1900 ms: still the same spell */
    assert_int_equal(mp_shaper_take(&s, 0, 1900), 0);
    assert_int_equal(mp_shaper_over_for(&s, 1900), 1900);
    /* half the burst (1000 bytes) at 2000 ms: the client paused, it was a burst */
    assert_int_equal(mp_shaper_take(&s, 0, 2000), 0);
    assert_int_equal(mp_shaper_over_for(&s, 2000), 0);
    /* a new spell starts from its own first pause */
    assert_int_equal(mp_shaper_take(&s, 1500, 2000), 500);
    assert_int_equal(mp_shaper_over_for(&s, 2300), 300);
}

static void
test_set_keeps_state(void **state)
{
    mp_shaper s;
    mp_shaper_init(&s, 1000, 64 * 1024, 0);
    /* a larger burst (authentication) does not refill the bucket */
    assert_int_equal(mp_shaper_take(&s, 60 * 1024, 0), 0);
    mp_shaper_set(&s, 100 * 1024, 1024 * 1024, 0);
    assert_int_equal(mp_shaper_take(&s, 4 * 1024, 0), 0);
    assert_int_equal(mp_shaper_take(&s, 1024, 0), 10); /* 1 KiB of debt at 100 KiB/s */
    /* a debt survives a change of settings */
    mp_shaper_set(&s, 1024, 4096, 0);
    assert_int_equal(mp_shaper_take(&s, 0, 0), 1000);
    /* a smaller burst caps what the bucket holds */
    mp_shaper_init(&s, 1000, 100000, 0);
    mp_shaper_set(&s, 1000, 2000, 0);
    assert_int_equal(mp_shaper_take(&s, 2000, 0), 0);
    assert_int_equal(mp_shaper_take(&s, 1, 0), 1);
    /* switching shaping off and on again starts from a full bucket */
    mp_shaper_set(&s, 0, 2000, 5);
    assert_int_equal(mp_shaper_take(&s, 1 << 30, 5), 0);
    mp_shaper_set(&s, 1000, 2000, 5);
    assert_int_equal(mp_shaper_take(&s, 2000, 5), 0);
    assert_int_equal(mp_shaper_take(&s, 1, 5), 1);
}

static void
test_long_idle_no_overflow(void **state)
{
    mp_shaper s;
    /* the largest settings the configuration allows, idle for years */
    mp_shaper_init(&s, 1u << 30, 1u << 30, 0);
    assert_int_equal(mp_shaper_take(&s, 1u << 30, 0), 0);
    assert_int_equal(mp_shaper_take(&s, 1u << 30, 0), 1000);
    uint64_t years = (uint64_t)100 * 365 * 24 * 3600 * 1000;
    assert_int_equal(mp_shaper_take(&s, 1u << 30, years), 0);
    assert_int_equal(mp_shaper_take(&s, 1, years), 1);
    /* the clock never goes back, but a stale time must not refill anything */
    assert_int_equal(mp_shaper_take(&s, 0, years - 5000), 1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unlimited),
        cmocka_unit_test(test_burst_then_debt),
        cmocka_unit_test(test_steady_client_never_paused),
        cmocka_unit_test(test_flood_held_to_rate),
        cmocka_unit_test(test_quiet_pause_ends_spell),
        cmocka_unit_test(test_set_keeps_state),
        cmocka_unit_test(test_long_idle_no_overflow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
