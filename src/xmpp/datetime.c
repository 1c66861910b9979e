/* XEP-0082 DateTime; see datetime.h. */
#include "xmpp/datetime.h"
#include "base/err.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static int
digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++, (*p)++) {
        if (**p < '0' || **p > '9')
            return MP_EINVAL;
        v = v * 10 + (**p - '0');
    }
    *out = v;
    return 0;
}

static int
expect(const char **p, char c)
{
    if (**p != c)
        return MP_EINVAL;
    (*p)++;
    return 0;
}

static int
leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Days from 1970-01-01 to y-m-d of the proleptic Gregorian calendar (H. Hinnant's method). */
static int64_t
days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int
mp_datetime_parse(const char *s, int64_t *us)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y, mo, d, h, mi, se, oh = 0, om = 0, sign = 0;
    int64_t frac = 0;
    const char *p = s;

    if (!s || digits(&p, 4, &y) || expect(&p, '-') || digits(&p, 2, &mo) || expect(&p, '-') ||
        digits(&p, 2, &d) || expect(&p, 'T') || digits(&p, 2, &h) || expect(&p, ':') ||
        digits(&p, 2, &mi) || expect(&p, ':') || digits(&p, 2, &se))
        return MP_EINVAL;
    if (*p == '.') {
        int n = 0;
        p++;
        for (; *p >= '0' && *p <= '9'; p++, n++)
            if (n < 6)
                frac = frac * 10 + (*p - '0');
        if (n == 0)
            return MP_EINVAL;
        for (; n < 6; n++)
            frac *= 10;
    }
    if (*p == 'Z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        sign = *p++ == '-' ? -1 : 1;
        if (digits(&p, 2, &oh) || expect(&p, ':') || digits(&p, 2, &om) || oh > 23 || om > 59)
            return MP_EINVAL;
    } else {
        return MP_EINVAL;
    }
    if (*p || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || se > 60 ||
        d > mdays[mo - 1] + (mo == 2 && leap(y)))
        return MP_EINVAL;
    int64_t t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se;
    t -= sign * (oh * 3600 + om * 60);
    *us = t * 1000000 + frac;
    return 0;
}

void
mp_datetime_format(int64_t us, char *buf, size_t cap)
{
    int64_t sec = us / 1000000, frac = us % 1000000;
    if (frac < 0) {
        frac += 1000000;
        sec--;
    }
    time_t t = (time_t)sec;
    struct tm tm;
    char head[24];
    gmtime_r(&t, &tm);
    strftime(head, sizeof head, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, cap, "%s.%06dZ", head, (int)frac);
}

int
mp_datetime_is_utc(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    return (n > 1 && s[n - 1] == 'Z') ||
           (n > 6 && (strcmp(s + n - 6, "+00:00") == 0 || strcmp(s + n - 6, "-00:00") == 0));
}
