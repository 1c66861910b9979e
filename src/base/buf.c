#include "base/buf.h"
#include "base/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

int
mp_buf_reserve(mp_buf *b, size_t extra)
{
    if (b->cap - b->len >= extra)
        return 0;
    size_t want = b->len + extra;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < want)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p)
        return MP_ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

int
mp_buf_append(mp_buf *b, const void *p, size_t n)
{
    if (n == 0)
        return 0;
    if (mp_buf_reserve(b, n) < 0)
        return MP_ENOMEM;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

int
mp_buf_printf(mp_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || mp_buf_reserve(b, (size_t)n + 1) < 0)
        return MP_ENOMEM;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void
mp_buf_consume(mp_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

void
mp_buf_free(mp_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
