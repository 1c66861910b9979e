/* Logging: one line per call, to stderr or syslog, thread-safe.
 * Never log passwords, SASL payloads or message bodies at info or above. */
#ifndef MP_BASE_LOG_H
#define MP_BASE_LOG_H

#include <stdarg.h>

enum mp_log_level { MP_LOG_ERROR = 0, MP_LOG_WARN, MP_LOG_INFO, MP_LOG_DEBUG };

/* level: one of the enum; syslog: nonzero sends lines to syslog(3) instead of stderr. */
void mp_log_init(int level, int use_syslog);
int mp_log_level_parse(const char *name); /* "error".."debug" -> level, -1 if unknown */
int mp_log_enabled(int level);
void mp_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void mp_vlog(int level, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

#define mp_err(...) mp_log(MP_LOG_ERROR, __VA_ARGS__)
#define mp_warn(...) mp_log(MP_LOG_WARN, __VA_ARGS__)
#define mp_info(...) mp_log(MP_LOG_INFO, __VA_ARGS__)
#define mp_debug(...)                                                                              \
    do {                                                                                           \
        if (mp_log_enabled(MP_LOG_DEBUG))                                                          \
            mp_log(MP_LOG_DEBUG, __VA_ARGS__);                                                     \
    } while (0)

#endif
