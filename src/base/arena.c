#include "base/arena.h"

#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_ALIGN 16
#define ARENA_DEFAULT_BLOCK 8192
#define ARENA_MIN_BLOCK 256

struct mp_arena_block {
    mp_arena_block *next; /* the older block */
    size_t size;          /* usable bytes after the header */
    size_t used;
};

/* The header is padded so data starts 16-aligned given malloc's own alignment. */
#define HDR ((sizeof(mp_arena_block) + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1))

_Static_assert(alignof(max_align_t) >= ARENA_ALIGN, "malloc must return 16-aligned memory");

static inline char *
block_data(mp_arena_block *b)
{
    return (char *)b + HDR;
}

void
mp_arena_init(mp_arena *a, size_t block_size)
{
    if (block_size == 0)
        block_size = ARENA_DEFAULT_BLOCK;
    if (block_size < ARENA_MIN_BLOCK)
        block_size = ARENA_MIN_BLOCK;
    a->head = NULL;
    a->block_size = (block_size + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    a->total = 0;
}

static mp_arena_block *
block_new(mp_arena *a, size_t size)
{
    mp_arena_block *b = malloc(HDR + size);
    if (!b)
        return NULL;
    b->next = NULL;
    b->size = size;
    b->used = 0;
    a->total += HDR + size;
    return b;
}

void *
mp_arena_alloc(mp_arena *a, size_t n)
{
    if (n == 0)
        n = 1; /* distinct pointers for distinct calls, as malloc gives */
    if (n > SIZE_MAX - HDR - ARENA_ALIGN)
        return NULL;
    n = (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);

    mp_arena_block *h = a->head;
    if (h && h->size - h->used >= n) {
        void *p = block_data(h) + h->used;
        h->used += n;
        return p;
    }
    if (n > a->block_size) {
        /* A big request gets a block of its own, chained behind the current one so the
         * room left in the current block stays usable. */
        mp_arena_block *b = block_new(a, n);
        if (!b)
            return NULL;
        b->used = n;
        if (h) {
            b->next = h->next;
            h->next = b;
        } else {
            a->head = b;
        }
        return block_data(b);
    }
    mp_arena_block *b = block_new(a, a->block_size);
    if (!b)
        return NULL;
    b->next = h;
    a->head = b;
    b->used = n;
    return block_data(b);
}

char *
mp_arena_strndup(mp_arena *a, const char *s, size_t n)
{
    n = strnlen(s, n);
    char *p = mp_arena_alloc(a, n + 1);
    if (!p)
        return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void
mp_arena_reset(mp_arena *a)
{
    /* Keep the oldest block of the default size for the next stanza. Oversized blocks are
     * always freed, so one huge stanza does not pin its memory for the life of the arena;
     * they sit behind the head, so "oldest" means the last standard block in the chain. */
    mp_arena_block *keep = NULL;
    for (mp_arena_block *b = a->head; b; b = b->next)
        if (b->size <= a->block_size)
            keep = b;
    mp_arena_block *b = a->head;
    while (b) {
        mp_arena_block *next = b->next;
        if (b != keep) {
            a->total -= HDR + b->size;
            free(b);
        }
        b = next;
    }
    if (keep) {
        keep->used = 0;
        keep->next = NULL;
    }
    a->head = keep;
}

void
mp_arena_free(mp_arena *a)
{
    mp_arena_block *b = a->head;
    while (b) {
        mp_arena_block *next = b->next;
        free(b);
        b = next;
    }
    a->head = NULL;
    a->total = 0;
}
