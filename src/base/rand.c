#include "base/rand.h"
#include "base/log.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/random.h>

void
mp_random_bytes(void *buf, size_t n)
{
    unsigned char *p = buf;
    while (n) {
        ssize_t r = getrandom(p, n, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            mp_err("getrandom failed: no source of randomness");
            abort();
        }
        p += r;
        n -= (size_t)r;
    }
}

void
mp_random_token(char *out, size_t n)
{
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    unsigned char raw[64];
    size_t done = 0;
    while (done < n) {
        mp_random_bytes(raw, sizeof raw);
        for (size_t i = 0; i < sizeof raw && done < n; i++)
            if (raw[i] < 252) /* 252 = 7 * 36: no modulo bias */
                out[done++] = alphabet[raw[i] % 36];
    }
    out[n] = '\0';
}
