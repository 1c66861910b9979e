#include "base/log.h"
#include "base/err.h"

#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static int g_level = MP_LOG_INFO;
static int g_syslog;

void
mp_log_init(int level, int use_syslog)
{
    g_level = level;
    if (use_syslog && !g_syslog)
        openlog("magpied", LOG_PID | LOG_NDELAY, LOG_DAEMON);
    g_syslog = use_syslog;
}

int
mp_log_level_parse(const char *name)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++)
        if (strcmp(name, names[i]) == 0)
            return i;
    return -1;
}

int
mp_log_enabled(int level)
{
    return level <= g_level;
}

void
mp_vlog(int level, const char *fmt, va_list ap)
{
    static const char *const tags[] = {"error", "warn", "info", "debug"};
    static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
    if (level > g_level)
        return;
    if (g_syslog) {
        vsyslog(prio[level], fmt, ap);
        return;
    }
    /* One write(2) per line so lines from several threads never interleave. */
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, tags[level]);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

void
mp_log(int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    mp_vlog(level, fmt, ap);
    va_end(ap);
}

const char *
mp_strerror(int err)
{
    switch (err) {
    case MP_OK: return "ok";
    case MP_AGAIN: return "again";
    case MP_ENOMEM: return "out of memory";
    case MP_EINVAL: return "invalid argument";
    case MP_EIO: return "i/o error";
    case MP_ENOTFOUND: return "not found";
    case MP_EEXIST: return "already exists";
    case MP_ELIMIT: return "limit exceeded";
    case MP_EAUTH: return "authentication failed";
    case MP_ECLOSED: return "closed";
    default: return "unknown error";
    }
}
