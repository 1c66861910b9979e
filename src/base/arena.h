/* Bump arena: many small allocations freed in one go (per stanza, per request). */
#ifndef MP_BASE_ARENA_H
#define MP_BASE_ARENA_H

#include <stddef.h>

typedef struct mp_arena_block mp_arena_block;

typedef struct mp_arena {
    mp_arena_block *head; /* current block; older ones chained behind it */
    size_t block_size;    /* default size of new blocks (grows for big requests) */
    size_t total;         /* bytes allocated from the system */
} mp_arena;

void mp_arena_init(mp_arena *a, size_t block_size);
void *mp_arena_alloc(mp_arena *a, size_t n); /* 16-byte aligned; NULL on ENOMEM */
char *mp_arena_strndup(mp_arena *a, const char *s, size_t n);
/* Free every block but the first, and rewind it: the arena is ready for the next stanza. */
void mp_arena_reset(mp_arena *a);
void mp_arena_free(mp_arena *a);

#endif
