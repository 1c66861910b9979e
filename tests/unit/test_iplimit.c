/* Connections per address: the cap, refusals logged once per spell, IPv6 counted per /64,
 * IPv4-mapped addresses counted as IPv4, entries gone when the last connection closes, the
 * shared table counted from several threads at once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>

#include "base/err.h"
#include "mux/iplimit.h"

static struct sockaddr_storage
addr(const char *text)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    if (strchr(text, ':')) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        assert_int_equal(inet_pton(AF_INET6, text, &a->sin6_addr), 1);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        assert_int_equal(inet_pton(AF_INET, text, &a->sin_addr), 1);
    }
    return ss;
}

#define SA(ss) ((const struct sockaddr *)&(ss))

static void
test_cap_and_release(void **state)
{
    mp_iplimit *t = mp_iplimit_new();
    assert_non_null(t);
    struct sockaddr_storage a = addr("192.0.2.1"), b = addr("192.0.2.2");
    int first = -1;
    for (int i = 1; i <= 3; i++)
        assert_int_equal(mp_iplimit_acquire(t, SA(a), 3, &first), i);
    assert_int_equal(first, 0);
    assert_int_equal(mp_iplimit_acquire(t, SA(a), 3, &first), MP_ELIMIT);
    assert_int_equal(first, 1); /* logged */
    assert_int_equal(mp_iplimit_acquire(t, SA(a), 3, &first), MP_ELIMIT);
    assert_int_equal(first, 0); /* not again */
    assert_int_equal(mp_iplimit_count(t, SA(a)), 3);
    /* another address is not affected */
    assert_int_equal(mp_iplimit_acquire(t, SA(b), 3, NULL), 1);
    /* one closes: room for one more, and the next spell at the cap is logged again */
    mp_iplimit_release(t, SA(a));
    assert_int_equal(mp_iplimit_acquire(t, SA(a), 3, &first), 3);
    assert_int_equal(mp_iplimit_acquire(t, SA(a), 3, &first), MP_ELIMIT);
    assert_int_equal(first, 1);
    /* max 0: no limit */
    assert_int_equal(mp_iplimit_acquire(t, SA(a), 0, NULL), 4);
    for (int i = 0; i < 4; i++)
        mp_iplimit_release(t, SA(a));
    mp_iplimit_release(t, SA(b));
    assert_int_equal(mp_iplimit_count(t, SA(a)), 0);
    /* releasing an address never counted is harmless */
    mp_iplimit_release(t, SA(a));
    assert_int_equal(mp_iplimit_acquire(t, SA(a), 1, NULL), 1);
    mp_iplimit_release(t, SA(a));
    mp_iplimit_free(t); /* ASan: every entry was freed with its last connection or here */
}

static void
test_ipv6_prefix_and_mapped(void **state)
{
    mp_iplimit *t = mp_iplimit_new();
    struct sockaddr_storage a1 = addr("2001:db8:1:2::1"), a2 = addr("2001:db8:1:2:ffff::9");
    struct sockaddr_storage other = addr("2001:db8:1:3::1");
    assert_int_equal(mp_iplimit_acquire(t, SA(a1), 2, NULL), 1);
    assert_int_equal(mp_iplimit_acquire(t, SA(a2), 2, NULL), 2); /* same /64 */
    assert_int_equal(mp_iplimit_acquire(t, SA(a1), 2, NULL), MP_ELIMIT);
    assert_int_equal(mp_iplimit_acquire(t, SA(other), 2, NULL), 1);
    struct sockaddr_storage v4 = addr("198.51.100.7"), mapped = addr("::ffff:198.51.100.7");
    struct sockaddr_storage mapped_other = addr("::ffff:198.51.100.8");
    assert_int_equal(mp_iplimit_acquire(t, SA(v4), 2, NULL), 1);
    assert_int_equal(mp_iplimit_acquire(t, SA(mapped), 2, NULL), 2);
    assert_int_equal(mp_iplimit_acquire(t, SA(mapped_other), 2, NULL), 1);
    struct sockaddr_storage unix_sa;
    memset(&unix_sa, 0, sizeof unix_sa);
    unix_sa.ss_family = AF_UNIX;
    assert_int_equal(mp_iplimit_acquire(t, SA(unix_sa), 2, NULL), MP_EINVAL);
    mp_iplimit_free(t); /* entries still counted are freed too */
}

#define THREADS 4
#define ROUNDS 20000

static void *
hammer(void *arg)
{
    mp_iplimit *t = arg;
    struct sockaddr_storage a = addr("203.0.113.5");
    for (int i = 0; i < ROUNDS; i++) {
        if (mp_iplimit_acquire(t, SA(a), 0, NULL) > 0)
            mp_iplimit_release(t, SA(a));
    }
    return NULL;
}

static void
test_shared_across_threads(void **state)
{
    mp_iplimit *t = mp_iplimit_ref();
    mp_iplimit *t2 = mp_iplimit_ref();
    assert_ptr_equal(t, t2); /* one table for every mux thread */
    struct sockaddr_storage a = addr("203.0.113.5");
    assert_int_equal(mp_iplimit_acquire(t, SA(a), 0, NULL), 1);
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, hammer, t), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(mp_iplimit_count(t, SA(a)), 1);
    mp_iplimit_release(t, SA(a));
    mp_iplimit_unref(t2);
    mp_iplimit_unref(t);
    /* the last reference freed it: a new one starts empty */
    t = mp_iplimit_ref();
    assert_int_equal(mp_iplimit_count(t, SA(a)), 0);
    mp_iplimit_unref(t);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cap_and_release),
        cmocka_unit_test(test_ipv6_prefix_and_mapped),
        cmocka_unit_test(test_shared_across_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
