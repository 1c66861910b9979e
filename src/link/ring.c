#include "link/link.h"
#include "base/err.h"

#include <stdlib.h>
#include <string.h>

#define WRAP_MARK 0xffffffffu

int
mp_ring_init(mp_ring *r, size_t size)
{
    memset(r, 0, sizeof *r);
    if (size < 4096 || (size & (size - 1)) != 0)
        return MP_EINVAL;
    r->mem = aligned_alloc(64, size);
    if (!r->mem)
        return MP_ENOMEM;
    r->size = size;
    atomic_init(&r->head, 0);
    atomic_init(&r->tail, 0);
    atomic_init(&r->producer_waiting, 0);
    return 0;
}

void
mp_ring_free(mp_ring *r)
{
    free(r->mem);
    r->mem = NULL;
    mp_buf_free(&r->overflow);
}

/* Reserve size contiguous bytes; returns the write position or NULL when full. */
static char *
reserve(mp_ring *r, size_t size, size_t *new_head)
{
    size_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    size_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
    size_t used = head - tail;
    size_t off = head & (r->size - 1);
    size_t to_end = r->size - off;
    size_t need = size;
    if (to_end < size)
        need += to_end; /* skip the tail of the ring */
    /* Keep 8 bytes free so a wrap mark always fits. */
    if (used + need + 8 > r->size)
        return NULL;
    if (to_end < size) {
        *(uint32_t *)(void *)(r->mem + off) = WRAP_MARK;
        head += to_end;
        off = 0;
    }
    *new_head = head + size;
    return r->mem + off;
}

static int
push_ring(mp_ring *r, const mp_frame_out *o)
{
    size_t size = mp_link_frame_size(o), new_head;
    char *dst = reserve(r, size, &new_head);
    if (!dst)
        return MP_AGAIN;
    mp_link_frame_encode(dst, o);
    atomic_store_explicit(&r->head, new_head, memory_order_release);
    return 0;
}

/* Frames held back are stored whole (as they would sit in the ring) in the overflow buffer. */
static int
push_overflow(mp_ring *r, const mp_frame_out *o)
{
    size_t size = mp_link_frame_size(o);
    if (mp_buf_reserve(&r->overflow, size) < 0)
        return MP_ENOMEM;
    mp_link_frame_encode(r->overflow.data + r->overflow.len, o);
    r->overflow.len += size;
    atomic_store(&r->producer_waiting, 1);
    return 0;
}

void
mp_ring_flush_overflow(mp_ring *r)
{
    size_t done = 0;
    while (done < r->overflow.len) {
        mp_frame *f = (mp_frame *)(void *)(r->overflow.data + done);
        size_t new_head;
        char *dst = reserve(r, f->size, &new_head);
        if (!dst)
            break;
        memcpy(dst, f, f->size);
        atomic_store_explicit(&r->head, new_head, memory_order_release);
        done += f->size;
    }
    mp_buf_consume(&r->overflow, done);
    if (r->overflow.len == 0) {
        atomic_store(&r->producer_waiting, 0);
        if (r->overflow.cap > 65536)
            mp_buf_free(&r->overflow);
    } else {
        atomic_store(&r->producer_waiting, 1);
    }
    if (done && r->consumer_wake)
        uv_async_send(r->consumer_wake);
}

int
mp_ring_push(mp_ring *r, const mp_frame_out *o)
{
    if (mp_link_frame_size(o) + 8 > r->size / 2)
        return MP_ELIMIT;
    int rc;
    if (r->overflow.len) {
        mp_ring_flush_overflow(r);
        if (r->overflow.len)
            return push_overflow(r, o);
    }
    rc = push_ring(r, o);
    if (rc == MP_AGAIN)
        rc = push_overflow(r, o);
    if (rc == 0 && r->consumer_wake)
        uv_async_send(r->consumer_wake);
    return rc;
}

size_t
mp_ring_drain(mp_ring *r, mp_ring_frame_fn fn, void *ud, size_t max)
{
    size_t n = 0;
    size_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    size_t head = atomic_load_explicit(&r->head, memory_order_acquire);
    while (tail != head && n < max) {
        size_t off = tail & (r->size - 1);
        const mp_frame *f = (const mp_frame *)(const void *)(r->mem + off);
        if (f->size == WRAP_MARK) {
            tail += r->size - off;
            continue;
        }
        fn(f, ud);
        tail += f->size;
        n++;
        /* Release space as we go, so a producer waiting on us can continue. */
        if ((n & 63) == 0)
            atomic_store_explicit(&r->tail, tail, memory_order_release);
    }
    atomic_store_explicit(&r->tail, tail, memory_order_release);
    if (atomic_load(&r->producer_waiting) && r->producer_wake)
        uv_async_send(r->producer_wake);
    return n;
}

int
mp_ring_push_raw(mp_ring *r, const mp_frame *f)
{
    size_t size = f->size;
    if (size + 8 > r->size / 2)
        return MP_ELIMIT;
    if (r->overflow.len)
        mp_ring_flush_overflow(r);
    size_t new_head;
    char *dst = r->overflow.len ? NULL : reserve(r, size, &new_head);
    if (dst) {
        memcpy(dst, f, size);
        atomic_store_explicit(&r->head, new_head, memory_order_release);
    } else {
        if (mp_buf_append(&r->overflow, f, size) < 0)
            return MP_ENOMEM;
        atomic_store(&r->producer_waiting, 1);
    }
    if (r->consumer_wake)
        uv_async_send(r->consumer_wake);
    return 0;
}

void
mp_ring_discard(mp_ring *r)
{
    atomic_store(&r->tail, atomic_load(&r->head));
    r->overflow.len = 0;
    atomic_store(&r->producer_waiting, 0);
}

mp_link *
mp_links_new(int n, size_t max_stanza_size)
{
    mp_link *links = calloc(n > 0 ? (size_t)n : 1, sizeof *links);
    size_t size = mp_link_ring_size(max_stanza_size);
    for (int i = 0; links && i < n; i++) {
        links[i].index = i;
        if (mp_ring_init(&links[i].to_core, size) < 0 || mp_ring_init(&links[i].to_mux, size) < 0) {
            mp_links_free(links, n);
            return NULL;
        }
    }
    return links;
}

void
mp_links_free(mp_link *links, int n)
{
    for (int i = 0; links && i < n; i++) {
        mp_ring_free(&links[i].to_core);
        mp_ring_free(&links[i].to_mux);
    }
    free(links);
}
