#ifndef MP_BASE_RAND_H
#define MP_BASE_RAND_H

#include <stddef.h>

/* Cryptographically strong random bytes (getrandom). Aborts only if the kernel refuses. */
void mp_random_bytes(void *buf, size_t n);
/* n random characters from [a-z0-9] plus a NUL: ids and resources. */
void mp_random_token(char *out, size_t n);

#endif
