/* Failed logins counted per IP and per account over a window: each recent failure delays the
 * next failure reply a little more, and past the limit attempts are refused outright with
 * <temporary-auth-failure/> until the window passes. */
#include "router/core_int.h"
#include "base/config.h"
#include "base/err.h"

#include <stdlib.h>
#include <string.h>

#define MAX_DELAY_MS 5000

typedef struct throttle_entry {
    mp_hnode node;
    uint64_t first_ms;
    int count;
    char key[];
} throttle_entry;

static throttle_entry *
lookup(mp_core *core, const char *key, int create)
{
    size_t len = strlen(key);
    uint64_t h = mp_hash_str(key, len);
    uint64_t now = uv_now(core->loop);
    uint64_t window = (uint64_t)core->cfg->auth_failure_window * 1000;
    for (mp_hnode *n = mp_htab_find(&core->throttle, h); n; n = mp_htab_next_same(n->next, h)) {
        throttle_entry *e = mp_container_of(n, throttle_entry, node);
        if (strcmp(e->key, key) != 0)
            continue;
        if (now - e->first_ms > window) {
            e->first_ms = now;
            e->count = 0;
        }
        return e;
    }
    if (!create)
        return NULL;
    throttle_entry *e = calloc(1, sizeof *e + len + 1);
    if (!e)
        return NULL;
    memcpy(e->key, key, len);
    e->first_ms = now;
    if (mp_htab_insert(&core->throttle, &e->node, h) < 0) {
        free(e);
        return NULL;
    }
    return e;
}

int
mp_throttle_check(mp_core *core, const char *ip, const char *account)
{
    int max = core->cfg->auth_max_failures;
    throttle_entry *e = lookup(core, ip, 0);
    if (e && e->count >= max)
        return 1;
    e = account ? lookup(core, account, 0) : NULL;
    return e && e->count >= max;
}

int
mp_throttle_failure(mp_core *core, const char *ip, const char *account)
{
    int worst = 0;
    throttle_entry *e = lookup(core, ip, 1);
    if (e)
        worst = ++e->count;
    e = account ? lookup(core, account, 1) : NULL;
    if (e && ++e->count > worst)
        worst = e->count;
    long delay = (long)(worst - 1) * core->cfg->auth_failure_delay_ms;
    return delay > MAX_DELAY_MS ? MAX_DELAY_MS : (int)delay;
}

void
mp_throttle_success(mp_core *core, const char *account)
{
    throttle_entry *e = lookup(core, account, 0);
    if (e)
        e->count = 0;
}

static void
gc(uv_timer_t *t)
{
    mp_core *core = t->data;
    uint64_t now = uv_now(core->loop);
    uint64_t window = (uint64_t)core->cfg->auth_failure_window * 1000;
    mp_htab *tab = &core->throttle;
    for (size_t i = 0; i < tab->nbuckets; i++) {
        mp_hnode *n = tab->buckets[i];
        while (n) {
            mp_hnode *next = n->next;
            throttle_entry *e = mp_container_of(n, throttle_entry, node);
            if (now - e->first_ms > window) {
                mp_htab_remove(tab, n);
                free(e);
            }
            n = next;
        }
    }
}

int
mp_throttle_init(mp_core *core)
{
    uv_timer_init(core->loop, &core->throttle_gc);
    core->throttle_gc.data = core;
    uv_timer_start(&core->throttle_gc, gc, 60000, 60000);
    uv_unref((uv_handle_t *)&core->throttle_gc);
    return 0;
}

void
mp_throttle_free(mp_core *core)
{
    uv_close((uv_handle_t *)&core->throttle_gc, NULL);
    mp_htab *tab = &core->throttle;
    for (size_t i = 0; i < tab->nbuckets; i++) {
        mp_hnode *n = tab->buckets[i];
        while (n) {
            mp_hnode *next = n->next;
            free(mp_container_of(n, throttle_entry, node));
            n = next;
        }
    }
    mp_htab_free(tab);
}
