/* XEP-0202: the server's time, for clients that correct their clock or show the server's
 * offset. Answered for the server only: an account's time is its client's business. */
#include "magpie/module.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#define NS_TIME "urn:xmpp:time"

static int
add_text_child(mp_iq *iq, mp_xnode *parent, const char *name, const char *text)
{
    mp_xnode *n = mp_xnode_new(iq->arena, NS_TIME, name);
    if (!n || mp_xnode_set_text(iq->arena, n, text, strlen(text)) < 0)
        return -1;
    mp_xnode_append(parent, n);
    return 0;
}

static int
time_iq(mp_iq *iq, void *ud)
{
    struct timespec now;
    struct tm utc, local;
    if (clock_gettime(CLOCK_REALTIME, &now) != 0 || !gmtime_r(&now.tv_sec, &utc) ||
        !localtime_r(&now.tv_sec, &local))
        return mp_iq_error(iq, "wait", "internal-server-error");
    /* XEP-0082 DateTime in UTC, with the optional milliseconds (XEP-0202 §3). */
    char stamp[40], day[24];
    strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &utc);
    snprintf(stamp, sizeof stamp, "%s.%03ldZ", day, now.tv_nsec / 1000000L);
    /* TZD of XEP-0082: "+hh:mm" or "-hh:mm"; UTC itself is written "Z" there, but XEP-0202's
     * examples and the deployed servers use "+00:00" for <tzo/>. */
    long off = local.tm_gmtoff;
    long abs_off = off < 0 ? -off : off;
    char tzo[24];
    snprintf(tzo, sizeof tzo, "%c%02d:%02d", off < 0 ? '-' : '+', (int)(abs_off / 3600 % 100),
             (int)(abs_off % 3600 / 60));
    mp_xnode *t = mp_xnode_new(iq->arena, NS_TIME, "time");
    if (!t || add_text_child(iq, t, "tzo", tzo) < 0 || add_text_child(iq, t, "utc", stamp) < 0)
        return mp_iq_error(iq, "wait", "internal-server-error");
    return mp_iq_result(iq, t);
}

static int
time_load(mp_module *m)
{
    int rc = mp_module_feature(m, NS_TIME);
    if (rc == 0)
        rc = mp_module_iq(m, MP_IQ_GET, MP_TARGET_HOST, NS_TIME, "time", time_iq, NULL);
    return rc;
}

MP_MODULE(time, MP_ABI_1, time_load, NULL);
