/* Growable byte buffer. Owner frees with mp_buf_free. */
#ifndef MP_BASE_BUF_H
#define MP_BASE_BUF_H

#include <stddef.h>
#include <string.h>

typedef struct mp_buf {
    char *data;
    size_t len, cap;
} mp_buf;

int mp_buf_reserve(mp_buf *b, size_t extra); /* 0 or MP_ENOMEM */
int mp_buf_append(mp_buf *b, const void *p, size_t n);
int mp_buf_printf(mp_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void mp_buf_consume(mp_buf *b, size_t n); /* drop n bytes from the front */
void mp_buf_free(mp_buf *b);

static inline int
mp_buf_puts(mp_buf *b, const char *s)
{
    return mp_buf_append(b, s, strlen(s));
}

#endif
