/* Client entity capabilities (XEP-0115). A session's available presence carries
 * <c hash ver node/>; the features behind a ver are learned once, by a disco#info query to one
 * session that advertised it, verified by recomputing the ver (§5.4), and cached for every
 * session with the same ver. An answer that does not verify serves the session that gave it
 * and nobody else (it might lie to poison the cache); the next session waiting on that ver is
 * asked instead. Legacy caps (no 'hash') are asked of each session and never cached. */
#include "modules/caps_cache.h"
#include "magpie/module.h"
#include "router/caps.h"
#include "router/core.h"
#include "base/config.h"
#include "base/err.h"
#include "base/htab.h"
#include "base/log.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#define NS_DATA "jabber:x:data"
#define QUERY_TIMEOUT_MS 20000
/* Queries in flight at once: a client cycling through made-up vers costs one each. */
#define MAX_INFLIGHT 4096

/* ---- the verification string (§5.1) ---- */

struct mp_caps_info {
    unsigned refs;
    size_t n;
    char **features; /* sorted; the strings follow the array in the same allocation */
};

typedef struct ident {
    const char *category, *type, *lang, *name;
} ident;

typedef struct field {
    const char *var;
    const char **values;
    size_t nvalues;
} field;

typedef struct form {
    const char *type; /* the FORM_TYPE value */
    field *fields;    /* FORM_TYPE left out */
    size_t nfields;
} form;

static const char *
or_empty(const char *s)
{
    return s ? s : "";
}

static int
cmp_ident(const void *a, const void *b)
{
    const ident *x = a, *y = b;
    int c = strcmp(x->category, y->category);
    if (c == 0)
        c = strcmp(x->type, y->type);
    if (c == 0)
        c = strcmp(x->lang, y->lang);
    if (c == 0)
        c = strcmp(x->name, y->name);
    return c;
}

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int
cmp_field(const void *a, const void *b)
{
    return strcmp(((const field *)a)->var, ((const field *)b)->var);
}

static int
cmp_form(const void *a, const void *b)
{
    return strcmp(((const form *)a)->type, ((const form *)b)->type);
}

static size_t
count_children(const mp_xnode *n, const char *ns, const char *name)
{
    size_t k = 0;
    for (const mp_xnode *c = n->children; c; c = c->next)
        if (strcmp(c->ns, ns) == 0 && strcmp(c->name, name) == 0)
            k++;
    return k;
}

static const EVP_MD *
digest_of(const char *hash)
{
    /* the IANA Hash Function Textual Names XEP-0115 §5.1 refers to */
    if (strcmp(hash, "sha-1") == 0)
        return EVP_sha1();
    if (strcmp(hash, "sha-224") == 0)
        return EVP_sha224();
    if (strcmp(hash, "sha-256") == 0)
        return EVP_sha256();
    if (strcmp(hash, "sha-384") == 0)
        return EVP_sha384();
    if (strcmp(hash, "sha-512") == 0)
        return EVP_sha512();
    return NULL;
}

/* One extended form (XEP-0128) into f. 1: use it; 0: ignore it (§5.4: FORM_TYPE not hidden, or
 * none); MP_EINVAL: ill-formed (several FORM_TYPE values); MP_ENOMEM. */
static int
read_form(mp_arena *a, const mp_xnode *x, form *f)
{
    size_t nf = count_children(x, NS_DATA, "field");
    f->type = NULL;
    f->nfields = 0;
    f->fields = mp_arena_alloc(a, (nf ? nf : 1) * sizeof *f->fields);
    if (!f->fields)
        return MP_ENOMEM;
    int hidden = 0;
    for (const mp_xnode *c = x->children; c; c = c->next) {
        if (strcmp(c->ns, NS_DATA) != 0 || strcmp(c->name, "field") != 0)
            continue;
        const char *var = mp_xnode_attr(c, "var");
        if (!var)
            continue; /* fixed fields have no var and take no part */
        size_t nv = count_children(c, NS_DATA, "value");
        const char **vals = mp_arena_alloc(a, (nv ? nv : 1) * sizeof *vals);
        if (!vals)
            return MP_ENOMEM;
        size_t k = 0;
        for (const mp_xnode *v = c->children; v; v = v->next)
            if (strcmp(v->ns, NS_DATA) == 0 && strcmp(v->name, "value") == 0)
                vals[k++] = v->text;
        if (strcmp(var, "FORM_TYPE") == 0) {
            if (f->type)
                return MP_EINVAL;
            for (size_t i = 1; i < k; i++)
                if (strcmp(vals[i], vals[0]) != 0)
                    return MP_EINVAL;
            f->type = k ? vals[0] : "";
            hidden = strcmp(or_empty(mp_xnode_attr(c, "type")), "hidden") == 0;
            continue;
        }
        qsort(vals, k, sizeof *vals, cmp_str);
        f->fields[f->nfields++] = (field){var, vals, k};
    }
    if (!f->type || !hidden)
        return 0;
    qsort(f->fields, f->nfields, sizeof *f->fields, cmp_field);
    return 1;
}

/* The string S of §5.1 into s. */
static int
build_s(mp_arena *a, const mp_xnode *q, mp_buf *s)
{
    size_t ni = count_children(q, MP_NS_DISCO_INFO, "identity");
    size_t nf = count_children(q, MP_NS_DISCO_INFO, "feature");
    size_t nx = count_children(q, NS_DATA, "x");
    ident *ids = mp_arena_alloc(a, (ni ? ni : 1) * sizeof *ids);
    const char **feats = mp_arena_alloc(a, (nf ? nf : 1) * sizeof *feats);
    form *forms = mp_arena_alloc(a, (nx ? nx : 1) * sizeof *forms);
    if (!ids || !feats || !forms)
        return MP_ENOMEM;
    size_t ki = 0, kf = 0, kx = 0;
    for (const mp_xnode *c = q->children; c; c = c->next) {
        if (strcmp(c->ns, MP_NS_DISCO_INFO) == 0 && strcmp(c->name, "identity") == 0) {
            const char *cat = mp_xnode_attr(c, "category"), *type = mp_xnode_attr(c, "type");
            if (!cat || !type)
                return MP_EINVAL;
            ids[ki++] = (ident){cat, type, or_empty(mp_xnode_attr(c, "xml:lang")),
                                or_empty(mp_xnode_attr(c, "name"))};
        } else if (strcmp(c->ns, MP_NS_DISCO_INFO) == 0 && strcmp(c->name, "feature") == 0) {
            const char *var = mp_xnode_attr(c, "var");
            if (!var)
                return MP_EINVAL;
            feats[kf++] = var;
        } else if (strcmp(c->ns, NS_DATA) == 0 && strcmp(c->name, "x") == 0) {
            int rc = read_form(a, c, &forms[kx]);
            if (rc < 0)
                return rc;
            kx += (size_t)rc;
        }
    }
    qsort(ids, ki, sizeof *ids, cmp_ident);
    qsort(feats, kf, sizeof *feats, cmp_str);
    qsort(forms, kx, sizeof *forms, cmp_form);
    /* §5.4: duplicates make the whole answer ill-formed */
    for (size_t i = 1; i < ki; i++)
        if (cmp_ident(&ids[i - 1], &ids[i]) == 0)
            return MP_EINVAL;
    for (size_t i = 1; i < kf; i++)
        if (strcmp(feats[i - 1], feats[i]) == 0)
            return MP_EINVAL;
    for (size_t i = 1; i < kx; i++)
        if (strcmp(forms[i - 1].type, forms[i].type) == 0)
            return MP_EINVAL;
    int rc = 0;
    for (size_t i = 0; i < ki; i++)
        rc |= mp_buf_printf(s, "%s/%s/%s/%s<", ids[i].category, ids[i].type, ids[i].lang,
                            ids[i].name);
    for (size_t i = 0; i < kf; i++)
        rc |= mp_buf_printf(s, "%s<", feats[i]);
    for (size_t i = 0; i < kx; i++) {
        rc |= mp_buf_printf(s, "%s<", forms[i].type);
        for (size_t j = 0; j < forms[i].nfields; j++) {
            const field *fl = &forms[i].fields[j];
            rc |= mp_buf_printf(s, "%s<", fl->var);
            for (size_t v = 0; v < fl->nvalues; v++)
                rc |= mp_buf_printf(s, "%s<", fl->values[v]);
        }
    }
    return rc < 0 ? MP_ENOMEM : 0;
}

int
mp_caps_compute(const mp_xnode *query, const char *hash, char *ver, size_t cap)
{
    const EVP_MD *md = digest_of(hash);
    if (!md)
        return MP_EINVAL;
    mp_arena a;
    mp_arena_init(&a, 2048);
    mp_buf s = {0};
    int rc = build_s(&a, query, &s);
    if (rc < 0)
        goto out;
    unsigned char dig[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    if (EVP_Digest(s.data ? s.data : "", s.len, dig, &dlen, md, NULL) != 1) {
        rc = MP_EIO;
        goto out;
    }
    if (cap < 4 * ((dlen + 2) / 3) + 1) {
        rc = MP_ELIMIT;
        goto out;
    }
    rc = EVP_EncodeBlock((unsigned char *)ver, dig, (int)dlen);
out:
    mp_buf_free(&s);
    mp_arena_free(&a);
    return rc;
}

mp_caps_info *
mp_caps_info_new(const mp_xnode *query)
{
    size_t n = 0, bytes = 0;
    for (const mp_xnode *c = query->children; c; c = c->next) {
        const char *var = mp_xnode_attr(c, "var");
        if (var && strcmp(c->ns, MP_NS_DISCO_INFO) == 0 && strcmp(c->name, "feature") == 0) {
            n++;
            bytes += strlen(var) + 1;
        }
    }
    mp_caps_info *ci = malloc(sizeof *ci + n * sizeof(char *) + bytes);
    if (!ci)
        return NULL;
    ci->refs = 1;
    ci->n = 0;
    ci->features = (char **)(void *)(ci + 1);
    char *p = (char *)(ci->features + n);
    for (const mp_xnode *c = query->children; c; c = c->next) {
        const char *var = mp_xnode_attr(c, "var");
        if (var && strcmp(c->ns, MP_NS_DISCO_INFO) == 0 && strcmp(c->name, "feature") == 0) {
            size_t l = strlen(var) + 1;
            memcpy(p, var, l);
            ci->features[ci->n++] = p;
            p += l;
        }
    }
    qsort(ci->features, ci->n, sizeof *ci->features, cmp_str);
    return ci;
}

static mp_caps_info *
info_ref(mp_caps_info *ci)
{
    ci->refs++;
    return ci;
}

void
mp_caps_info_free(mp_caps_info *ci)
{
    if (ci && --ci->refs == 0)
        free(ci);
}

int
mp_caps_info_has(const mp_caps_info *ci, const char *feature)
{
    return bsearch(&feature, ci->features, ci->n, sizeof *ci->features, cmp_str) != NULL;
}

size_t
mp_caps_info_count(const mp_caps_info *ci)
{
    return ci->n;
}

/* ---- the module ---- */

typedef struct watcher {
    void (*cb)(struct mp_core *, const char *, void *);
    void *ud;
} watcher;

/* One cached ver, in the cache table and on the LRU list (most recent first). */
typedef struct centry {
    mp_hnode h;
    struct centry *prev, *next;
    mp_caps_info *info;
    char key[]; /* "hash ver" */
} centry;

typedef struct csess {
    mp_hnode h;
    mp_caps_info *info; /* NULL: not known */
    char *key;          /* "hash ver", or "legacy node ver ext", of its last caps; NULL: none */
    uint64_t gen;       /* bumped when key changes, so stale answers are dropped */
    unsigned asked;     /* queries to it in flight (caps.max_queries_per_session) */
    char full[];
} csess;

/* A query for one hashed ver, with the sessions that wait for it. */
typedef struct cquery {
    mp_hnode h;
    char *node; /* "node#ver" asked */
    char *hash, *ver;
    char **waiters; /* full JIDs, the first the one asked now */
    size_t nwaiters, cap;
    char key[];
} cquery;

typedef struct caps_state {
    struct caps_state *next_state;
    mp_core *core;
    mp_htab sessions, cache, queries;
    centry *lru_head, *lru_tail;
    size_t ncache;
    watcher *watchers;
    size_t nwatchers;
    unsigned inflight;
    int closing;
} caps_state;

/* What an IQ callback needs; q is NULL for a legacy query. */
typedef struct qctx {
    caps_state *st;
    cquery *q;
    uint64_t gen;
    char full[];
} qctx;

/* The module's state of each core (a process runs one; tests may run several). */
static caps_state *states;

static caps_state *
state_of(mp_core *core)
{
    for (caps_state *s = states; s; s = s->next_state)
        if (s->core == core && !s->closing)
            return s;
    return NULL;
}

static uint64_t
hkey(const char *s)
{
    return mp_hash_str(s, strlen(s));
}

static csess *
sess_find(caps_state *st, const char *full)
{
    uint64_t h = hkey(full);
    for (mp_hnode *n = mp_htab_find(&st->sessions, h); n; n = mp_htab_next_same(n->next, h)) {
        csess *s = mp_container_of(n, csess, h);
        if (strcmp(s->full, full) == 0)
            return s;
    }
    return NULL;
}

static centry *
cache_find(caps_state *st, const char *key)
{
    uint64_t h = hkey(key);
    for (mp_hnode *n = mp_htab_find(&st->cache, h); n; n = mp_htab_next_same(n->next, h)) {
        centry *e = mp_container_of(n, centry, h);
        if (strcmp(e->key, key) == 0)
            return e;
    }
    return NULL;
}

static cquery *
query_find(caps_state *st, const char *key)
{
    uint64_t h = hkey(key);
    for (mp_hnode *n = mp_htab_find(&st->queries, h); n; n = mp_htab_next_same(n->next, h)) {
        cquery *q = mp_container_of(n, cquery, h);
        if (strcmp(q->key, key) == 0)
            return q;
    }
    return NULL;
}

static void
lru_unlink(caps_state *st, centry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        st->lru_head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        st->lru_tail = e->prev;
    e->prev = e->next = NULL;
}

static void
lru_push(caps_state *st, centry *e)
{
    e->prev = NULL;
    e->next = st->lru_head;
    if (st->lru_head)
        st->lru_head->prev = e;
    st->lru_head = e;
    if (!st->lru_tail)
        st->lru_tail = e;
}

static void
centry_free(caps_state *st, centry *e)
{
    lru_unlink(st, e);
    mp_htab_remove(&st->cache, &e->h);
    st->ncache--;
    mp_caps_info_free(e->info);
    free(e);
}

static void
cache_put(caps_state *st, const char *key, mp_caps_info *info)
{
    if (cache_find(st, key))
        return;
    size_t kl = strlen(key) + 1;
    centry *e = calloc(1, sizeof *e + kl);
    if (!e)
        return; /* the sessions got the features; only the cache misses out */
    memcpy(e->key, key, kl);
    if (mp_htab_insert(&st->cache, &e->h, hkey(key)) < 0) {
        free(e);
        return;
    }
    e->info = info_ref(info);
    lru_push(st, e);
    st->ncache++;
    int max = mp_core_config(st->core)->caps_cache_size;
    while (st->ncache > (size_t)(max > 0 ? max : 1) && st->lru_tail)
        centry_free(st, st->lru_tail);
}

static void
fire(caps_state *st, const char *full)
{
    for (size_t i = 0; i < st->nwatchers; i++)
        st->watchers[i].cb(st->core, full, st->watchers[i].ud);
}

/* Give s the features info (a new reference) and tell the watchers. */
static void
sess_learn(caps_state *st, csess *s, mp_caps_info *info)
{
    mp_caps_info_free(s->info);
    s->info = info_ref(info);
    fire(st, s->full);
}

static void
sess_free(caps_state *st, csess *s)
{
    mp_htab_remove(&st->sessions, &s->h);
    mp_caps_info_free(s->info);
    free(s->key);
    free(s);
}

static void
query_free(caps_state *st, cquery *q)
{
    mp_htab_remove(&st->queries, &q->h);
    for (size_t i = 0; i < q->nwaiters; i++)
        free(q->waiters[i]);
    free(q->waiters);
    free(q->node);
    free(q->hash);
    free(q->ver);
    free(q);
}

static void state_free(caps_state *st);
static void on_answer(mp_core *core, const mp_xnode *answer, void *ud);

/* The domain of a full JID, where the query comes from. */
static const char *
domain_of(mp_arena *a, const char *full)
{
    const char *at = strchr(full, '@');
    const char *d = at ? at + 1 : full;
    const char *slash = strchr(d, '/');
    return mp_arena_strndup(a, d, slash ? (size_t)(slash - d) : strlen(d));
}

/* disco#info (node may be NULL) to session s; q the query it serves (NULL: legacy). */
static int
send_query(caps_state *st, csess *s, const char *node, cquery *q)
{
    const char *full = s->full;
    uint64_t gen = s->gen;
    if (st->inflight >= MAX_INFLIGHT) {
        mp_debug("caps: %u queries in flight, %s not asked", st->inflight, full);
        return MP_ELIMIT;
    }
    /* a client cycling through made-up vers, never answering, would hold every slot above */
    int per = mp_core_config(st->core)->caps_max_queries;
    if (s->asked >= (unsigned)(per > 0 ? per : 1)) {
        mp_debug("caps: %u queries to %s in flight, not asked again", s->asked, full);
        return MP_ELIMIT;
    }
    size_t fl = strlen(full) + 1;
    qctx *c = malloc(sizeof *c + fl);
    if (!c)
        return MP_ENOMEM;
    c->st = st;
    c->q = q;
    c->gen = gen;
    memcpy(c->full, full, fl);
    mp_arena a;
    mp_arena_init(&a, 1024);
    mp_buf b = {0};
    int rc = MP_ENOMEM;
    const char *from = domain_of(&a, full);
    mp_xnode *qn = mp_xnode_new(&a, MP_NS_DISCO_INFO, "query");
    if (from && qn && (!node || mp_xnode_set_attr(&a, qn, "node", node) == 0) &&
        mp_xnode_serialize(&b, qn, "jabber:client") == 0)
        rc = mp_core_send_iq(st->core, from, full, "get", b.data, b.len, QUERY_TIMEOUT_MS,
                             on_answer, c);
    mp_buf_free(&b);
    mp_arena_free(&a);
    if (rc < 0) {
        mp_debug("caps: cannot ask %s for its features: %s", full, mp_strerror(rc));
        free(c);
        return rc;
    }
    st->inflight++;
    s->asked++;
    return 0;
}

/* Ask the next session still waiting for q's ver; free q when none is left. */
static void
query_next(caps_state *st, cquery *q)
{
    while (q->nwaiters > 0) {
        free(q->waiters[0]);
        memmove(q->waiters, q->waiters + 1, (q->nwaiters - 1) * sizeof *q->waiters);
        q->nwaiters--;
        if (q->nwaiters == 0)
            break;
        csess *s = sess_find(st, q->waiters[0]);
        if (s && !s->info && s->key && strcmp(s->key, q->key) == 0 &&
            send_query(st, s, q->node, q) == 0)
            return;
    }
    query_free(st, q);
}

static const mp_xnode *
answer_query(const mp_xnode *answer)
{
    const char *type = mp_xnode_attr(answer, "type");
    if (!type || strcmp(type, "result") != 0)
        return NULL;
    return mp_xnode_child(answer, MP_NS_DISCO_INFO, "query");
}

static void
on_hashed_answer(caps_state *st, cquery *q, const char *full, const mp_xnode *answer)
{
    const mp_xnode *qn = answer ? answer_query(answer) : NULL;
    csess *asked = sess_find(st, full);
    if (asked && (asked->info || !asked->key || strcmp(asked->key, q->key) != 0))
        asked = NULL; /* it moved on to another ver meanwhile */
    if (!qn) {
        mp_debug("caps: %s gave no features for %s", full, q->node);
        query_next(st, q);
        return;
    }
    mp_caps_info *info = mp_caps_info_new(qn);
    if (!info) {
        query_next(st, q);
        return;
    }
    char ver[EVP_MAX_MD_SIZE * 2];
    int rc = mp_caps_compute(qn, q->hash, ver, sizeof ver);
    if (rc < 0 || strcmp(ver, q->ver) != 0) {
        /* §5.4: not cached; the features serve the session that sent them, the next waiting
         * session is asked in case this one lied */
        mp_info("caps: %s answered %s with features that hash to %s", full, q->node,
                rc < 0 ? mp_strerror(rc) : ver);
        if (asked)
            sess_learn(st, asked, info);
        mp_caps_info_free(info);
        query_next(st, q);
        return;
    }
    cache_put(st, q->key, info);
    for (size_t i = 0; i < q->nwaiters; i++) {
        csess *s = sess_find(st, q->waiters[i]);
        if (s && !s->info && s->key && strcmp(s->key, q->key) == 0)
            sess_learn(st, s, info);
    }
    mp_caps_info_free(info);
    query_free(st, q);
}

static void
on_answer(mp_core *core, const mp_xnode *answer, void *ud)
{
    qctx *c = ud;
    caps_state *st = c->st;
    st->inflight--;
    csess *asked = st->closing ? NULL : sess_find(st, c->full);
    if (asked && asked->asked > 0) /* a new session of the same JID may have started at 0 */
        asked->asked--;
    if (st->closing) {
        if (st->inflight == 0)
            state_free(st);
    } else if (c->q) {
        on_hashed_answer(st, c->q, c->full, answer);
    } else {
        csess *s = sess_find(st, c->full);
        const mp_xnode *qn = answer ? answer_query(answer) : NULL;
        mp_caps_info *info = qn && s && s->gen == c->gen ? mp_caps_info_new(qn) : NULL;
        if (info) {
            sess_learn(st, s, info);
            mp_caps_info_free(info);
        }
    }
    free(c);
}

static cquery *
query_new(caps_state *st, const char *key, const char *hash, const char *node, const char *ver)
{
    size_t kl = strlen(key) + 1;
    cquery *q = calloc(1, sizeof *q + kl);
    if (!q)
        return NULL;
    memcpy(q->key, key, kl);
    size_t nl = strlen(node), vl = strlen(ver);
    q->node = malloc(nl + vl + 2);
    q->hash = strdup(hash);
    q->ver = strdup(ver);
    q->waiters = calloc(4, sizeof *q->waiters);
    q->cap = 4;
    if (!q->node || !q->hash || !q->ver || !q->waiters ||
        mp_htab_insert(&st->queries, &q->h, hkey(key)) < 0) {
        free(q->node);
        free(q->hash);
        free(q->ver);
        free(q->waiters);
        free(q);
        return NULL;
    }
    memcpy(q->node, node, nl);
    q->node[nl] = '#';
    memcpy(q->node + nl + 1, ver, vl + 1);
    return q;
}

static int
query_wait(cquery *q, const char *full)
{
    for (size_t i = 0; i < q->nwaiters; i++)
        if (strcmp(q->waiters[i], full) == 0)
            return 0; /* back to a ver it had advertised before: waiting already */
    if (q->nwaiters == q->cap) {
        char **w = realloc(q->waiters, 2 * q->cap * sizeof *w);
        if (!w)
            return MP_ENOMEM;
        q->waiters = w;
        q->cap *= 2;
    }
    if (!(q->waiters[q->nwaiters] = strdup(full)))
        return MP_ENOMEM;
    q->nwaiters++;
    return 0;
}

/* A session advertised a hashed ver it has not had before. */
static void
learn_hashed(caps_state *st, csess *s, const char *hash, const char *node, const char *ver)
{
    centry *e = cache_find(st, s->key);
    if (e) {
        lru_unlink(st, e);
        lru_push(st, e);
        sess_learn(st, s, e->info);
        return;
    }
    cquery *q = query_find(st, s->key);
    if (q) {
        query_wait(q, s->full);
        return;
    }
    q = query_new(st, s->key, hash, node, ver);
    if (!q)
        return;
    if (query_wait(q, s->full) < 0 || send_query(st, s, q->node, q) < 0)
        query_free(st, q);
}

static void
caps_presence(mp_core *core, const char *full, const mp_xnode *presence, int initial, void *ud)
{
    caps_state *st = ud;
    csess *s = sess_find(st, full);
    if (!presence) {
        if (s)
            sess_free(st, s);
        return;
    }
    const mp_xnode *c = mp_xnode_child(presence, MP_NS_CAPS, "c");
    const char *node = c ? mp_xnode_attr(c, "node") : NULL;
    const char *ver = c ? mp_xnode_attr(c, "ver") : NULL;
    if (!node || !ver || !ver[0])
        return; /* §6.3: a presence without caps leaves what we know as it was */
    const char *hash = mp_xnode_attr(c, "hash");
    const char *ext = mp_xnode_attr(c, "ext");
    mp_buf key = {0};
    int rc = hash ? mp_buf_printf(&key, "%s %s", hash, ver)
                  : mp_buf_printf(&key, "legacy %s %s %s", node, ver, or_empty(ext));
    if (rc < 0 || mp_buf_append(&key, "", 1) < 0) {
        mp_buf_free(&key);
        return;
    }
    /* unchanged: known, or being asked; a hashed ver nobody could tell us about is asked again */
    if (s && s->key && strcmp(s->key, key.data) == 0 &&
        (s->info || !hash || query_find(st, key.data))) {
        mp_buf_free(&key);
        return;
    }
    if (!s) {
        size_t fl = strlen(full) + 1;
        s = calloc(1, sizeof *s + fl);
        if (s)
            memcpy(s->full, full, fl);
        if (!s || mp_htab_insert(&st->sessions, &s->h, hkey(full)) < 0) {
            free(s);
            mp_buf_free(&key);
            return;
        }
    }
    free(s->key);
    s->key = key.data; /* taken over from the buffer */
    s->gen++;
    mp_caps_info_free(s->info);
    s->info = NULL;
    if (!hash)
        send_query(st, s, NULL, NULL); /* legacy: what it has now, for it only */
    else if (digest_of(hash))
        learn_hashed(st, s, hash, node, ver);
    else
        mp_debug("caps: %s uses hash %s, not supported", full, hash);
}

int
mp_client_caps_has(mp_core *core, const char *full, const char *feature)
{
    caps_state *st = state_of(core);
    csess *s = st ? sess_find(st, full) : NULL;
    if (!s || !s->info)
        return -1;
    return mp_caps_info_has(s->info, feature);
}

int
mp_client_caps_watch(mp_core *core, void (*cb)(mp_core *, const char *, void *), void *ud)
{
    caps_state *st = state_of(core);
    if (!st)
        return MP_ENOTFOUND;
    watcher *w = realloc(st->watchers, (st->nwatchers + 1) * sizeof *w);
    if (!w)
        return MP_ENOMEM;
    st->watchers = w;
    w[st->nwatchers++] = (watcher){cb, ud};
    return 0;
}

static void
state_free(caps_state *st)
{
    for (caps_state **p = &states; *p; p = &(*p)->next_state)
        if (*p == st) {
            *p = st->next_state;
            break;
        }
    free(st);
}

/* Everything but the state itself, which stays while queries are in flight. */
static void
state_clear(caps_state *st)
{
    mp_htab *tabs[] = {&st->sessions, &st->cache, &st->queries};
    for (size_t t = 0; t < 3; t++) {
        for (size_t i = 0; i < tabs[t]->nbuckets; i++) {
            mp_hnode *n = tabs[t]->buckets[i];
            while (n) {
                mp_hnode *next = n->next;
                if (t == 0)
                    sess_free(st, mp_container_of(n, csess, h));
                else if (t == 1)
                    centry_free(st, mp_container_of(n, centry, h));
                else
                    query_free(st, mp_container_of(n, cquery, h));
                n = next;
            }
        }
        mp_htab_free(tabs[t]);
    }
    free(st->watchers);
    st->watchers = NULL;
    st->nwatchers = 0;
}

static void
caps_unload(mp_module *m)
{
    caps_state *st = state_of(mp_module_core(m));
    if (!st)
        return;
    state_clear(st);
    st->closing = 1;
    if (st->inflight == 0)
        state_free(st);
}

static int
caps_load(mp_module *m)
{
    caps_state *st = calloc(1, sizeof *st);
    if (!st)
        return MP_ENOMEM;
    st->core = mp_module_core(m);
    int rc = mp_module_on_presence(m, caps_presence, st);
    if (rc < 0) {
        free(st);
        return rc;
    }
    st->next_state = states;
    states = st;
    return 0;
}

MP_MODULE(caps, MP_ABI_1, caps_load, caps_unload);
