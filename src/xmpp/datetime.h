/* XEP-0082 date and time profiles: the DateTime that XMPP extensions carry (delay stamps,
 * AMP expiry, archive queries). */
#ifndef MP_XMPP_DATETIME_H
#define MP_XMPP_DATETIME_H

#include <stddef.h>
#include <stdint.h>

/* CCYY-MM-DDThh:mm:ss[.s+](Z|(+|-)hh:mm) to microseconds since the epoch (UTC); digits past
 * the sixth of the fraction are dropped, a leap second (:60) is the first second of the next
 * minute. 0, or MP_EINVAL when malformed or out of range. */
int mp_datetime_parse(const char *s, int64_t *us);
/* Nonzero when the DateTime s names its zone as UTC (Z, +00:00 or -00:00). */
int mp_datetime_is_utc(const char *s);
/* The reverse of mp_datetime_parse: "CCYY-MM-DDThh:mm:ss.uuuuuuZ" (cap >= 28). */
void mp_datetime_format(int64_t us, char *buf, size_t cap);

#endif
