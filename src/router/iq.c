/* Module registry and IQ dispatch: a handler is found by one hash lookup on
 * "type|target|ns|name" of the IQ's payload. */
#include "router/core_int.h"
#include "router/component.h"
#include "magpie/module.h"
#include "base/config.h"
#include "base/err.h"
#include "base/log.h"
#include "xml/escape.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NS_STANZAS "urn:ietf:params:xml:ns:xmpp-stanzas"

struct mp_module {
    const mp_module_def *def;
    mp_core *core;
};

extern const mp_module_def *const mp_builtin_modules[];

static int
make_key(char *buf, size_t cap, int type, int target, const char *ns, const char *name)
{
    int n = snprintf(buf, cap, "%s|%s|%s|%s", type == MP_IQ_SET ? "set" : "get",
                     target == MP_TARGET_HOST ? "host" : "account", ns, name);
    return n < 0 || (size_t)n >= cap ? MP_ELIMIT : n;
}

mp_iq_handler *
mp_iq_handler_find(mp_core *core, const char *key, size_t len)
{
    uint64_t h = mp_hash_str(key, len);
    for (mp_hnode *n = mp_htab_find(&core->iq_handlers, h); n; n = mp_htab_next_same(n->next, h)) {
        mp_iq_handler *ih = mp_container_of(n, mp_iq_handler, node);
        if (strlen(ih->key) == len && memcmp(ih->key, key, len) == 0)
            return ih;
    }
    return NULL;
}

int
mp_iq_handler_add(mp_core *core, mp_module *m, const char *key, size_t len, mp_iq_fn fn, void *ud)
{
    if (mp_iq_handler_find(core, key, len)) {
        mp_err("module %s: %s is already served by another module", m->def->name, key);
        return MP_EEXIST;
    }
    mp_iq_handler *ih = calloc(1, sizeof *ih + len + 1);
    if (!ih)
        return MP_ENOMEM;
    memcpy(ih->key, key, len);
    ih->module = m;
    ih->fn = (int (*)(void *, void *))fn;
    ih->ud = ud;
    if (mp_htab_insert(&core->iq_handlers, &ih->node, mp_hash_str(key, len)) < 0) {
        free(ih);
        return MP_ENOMEM;
    }
    return 0;
}

int
mp_module_iq(mp_module *m, int type, int targets, const char *ns, const char *name, mp_iq_fn fn,
             void *ud)
{
    for (int target = MP_TARGET_HOST; target <= MP_TARGET_ACCOUNT; target <<= 1) {
        if (!(targets & target))
            continue;
        char key[512];
        int len = make_key(key, sizeof key, type, target, ns, name);
        if (len < 0)
            return len;
        int rc = mp_iq_handler_add(m->core, m, key, (size_t)len, fn, ud);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int
mp_module_feature(mp_module *m, const char *var)
{
    mp_core *core = m->core;
    const char **f = realloc(core->features, (core->nfeatures + 1) * sizeof *f);
    if (!f)
        return MP_ENOMEM;
    core->features = f;
    core->features[core->nfeatures++] = var;
    return 0;
}

static int
push_str(const char ***v, size_t *n, const char *a, const char *b)
{
    size_t add = b ? 2 : 1;
    const char **nv = realloc(*v, (*n + add) * sizeof *nv);
    if (!nv)
        return MP_ENOMEM;
    nv[(*n)++] = a;
    if (b)
        nv[(*n)++] = b;
    *v = nv;
    return 0;
}

int
mp_module_account_feature(mp_module *m, const char *var)
{
    return push_str(&m->core->account_features, &m->core->naccount_features, var, NULL);
}

int
mp_module_account_identity(mp_module *m, const char *category, const char *type)
{
    return push_str(&m->core->account_identities, &m->core->naccount_identities, category, type);
}

void
mp_core_account_features(mp_core *core, const char *const **vars, size_t *n)
{
    *vars = core->account_features;
    *n = core->naccount_features;
}

void
mp_core_account_identities(mp_core *core, const char *const **pairs, size_t *n)
{
    *pairs = core->account_identities;
    *n = core->naccount_identities / 2;
}

const char *
mp_module_name(const mp_module *m)
{
    return m->def->name;
}

mp_core *
mp_module_core(const mp_module *m)
{
    return m->core;
}

const char *
mp_core_host(mp_core *core, int i)
{
    return i >= 0 && (size_t)i < core->cfg->nhosts ? core->cfg->hosts[i] : NULL;
}

void
mp_core_features(mp_core *core, const char *const **vars, size_t *n)
{
    *vars = core->features;
    *n = core->nfeatures;
}

/* ---- answering ---- */

static int
iq_reply_start(mp_iq *iq, mp_buf *b, const char *type)
{
    b->len = 0;
    mp_buf_printf(b, "<iq type='%s' id='", type);
    mp_xml_escape_attr(b, iq->id, strlen(iq->id));
    mp_buf_puts(b, "'");
    if (iq->to_attr) {
        mp_buf_puts(b, " from='");
        mp_xml_escape_attr(b, iq->to_attr, strlen(iq->to_attr));
        mp_buf_puts(b, "'");
    }
    mp_buf_puts(b, " to='");
    mp_xml_escape_attr(b, iq->from, strlen(iq->from));
    return mp_buf_puts(b, "'");
}

static int
iq_send(mp_iq *iq, mp_buf *b)
{
    mp_cstream *s = mp_core_stream(iq->core, iq->conn);
    if (!s)
        return MP_ENOTFOUND;
    mp_core_send(iq->core, s, b->data, b->len);
    return 0;
}

int
mp_iq_result(mp_iq *iq, const mp_xnode *payload)
{
    mp_buf *b = &iq->core->scratch;
    iq_reply_start(iq, b, "result");
    if (payload) {
        mp_buf_puts(b, ">");
        mp_xnode_serialize(b, payload, "jabber:client");
        if (mp_buf_puts(b, "</iq>") < 0)
            return MP_ENOMEM;
    } else if (mp_buf_puts(b, "/>") < 0) {
        return MP_ENOMEM;
    }
    return iq_send(iq, b);
}

int
mp_iq_error(mp_iq *iq, const char *type, const char *condition)
{
    mp_buf *b = &iq->core->scratch;
    iq_reply_start(iq, b, "error");
    if (mp_buf_printf(b, "><error type='%s'><%s xmlns='" NS_STANZAS "'/></error></iq>", type,
                      condition) < 0)
        return MP_ENOMEM;
    return iq_send(iq, b);
}

int
mp_iq_error_app(mp_iq *iq, const char *type, const char *condition, const char *app_ns,
                const char *app_name, const char *attr, const char *value)
{
    mp_buf *b = &iq->core->scratch;
    iq_reply_start(iq, b, "error");
    mp_buf_printf(b, "><error type='%s'><%s xmlns='" NS_STANZAS "'/><%s xmlns='%s'", type,
                  condition, app_name, app_ns);
    if (attr && value) {
        mp_buf_printf(b, " %s='", attr);
        mp_xml_escape_attr(b, value, strlen(value));
        mp_buf_puts(b, "'");
    }
    if (mp_buf_puts(b, "/></error></iq>") < 0)
        return MP_ENOMEM;
    return iq_send(iq, b);
}

int
mp_iq_is_own(const mp_iq *iq)
{
    size_t bare = strcspn(iq->from, "/");
    return iq->to[0] == '\0' || (strlen(iq->to) == bare && memcmp(iq->to, iq->from, bare) == 0);
}

int
mp_iq_account_of(mp_iq *iq, const char *jid, const char **node, const char **domain)
{
    size_t bare = strcspn(jid, "/");
    const char *at = memchr(jid, '@', bare);
    if (!at || at == jid || at + 1 == jid + bare)
        return MP_EINVAL;
    *node = mp_arena_strndup(iq->arena, jid, (size_t)(at - jid));
    *domain = mp_arena_strndup(iq->arena, at + 1, (size_t)(jid + bare - at - 1));
    return *node && *domain ? 0 : MP_ENOMEM;
}

/* ---- dispatch ---- */

int
mp_iq_dispatch(mp_core *core, mp_cstream *from, const mp_frame *f, int target,
               const char *to_prepped)
{
    int type;
    if (f->type_len == 3 && memcmp(mp_frame_type(f), "get", 3) == 0)
        type = MP_IQ_GET;
    else if (f->type_len == 3 && memcmp(mp_frame_type(f), "set", 3) == 0)
        type = MP_IQ_SET;
    else /* results and errors: answers to the server's own IQs, or the end of the road */
        return mp_iq_pending_answer(core, from->full, from->full_len, mp_frame_id(f), f->id_len,
                                    mp_frame_payload(f), f->payload_len),
               0;
    mp_xnode *el = NULL;
    if (mp_xml_parse(core->parser, &core->arena, "jabber:client", mp_frame_payload(f),
                     f->payload_len, &el) < 0)
        return MP_EINVAL;
    mp_xnode *payload = el->children;
    /* RFC 6120 §8.2.3: get and set carry exactly one payload element. */
    if (!payload || payload->next) {
        mp_route_error(core, from, 3, mp_frame_to(f), f->to_len, mp_frame_id(f), f->id_len,
                       "modify", "bad-request");
        return 0;
    }
    char key[512];
    int len = make_key(key, sizeof key, type, target, payload->ns, payload->name);
    mp_iq_handler *ih = len > 0 ? mp_iq_handler_find(core, key, (size_t)len) : NULL;
    if (!ih)
        return MP_ENOTFOUND;
    char id[1024], to_attr[1024];
    if (f->id_len >= sizeof id || f->to_len >= sizeof to_attr) {
        mp_route_error(core, from, 3, NULL, 0, NULL, 0, "modify", "bad-request");
        return 0;
    }
    memcpy(id, mp_frame_id(f), f->id_len);
    id[f->id_len] = '\0';
    memcpy(to_attr, mp_frame_to(f), f->to_len);
    to_attr[f->to_len] = '\0';
    mp_iq iq = {.core = core, .module = ih->module, .type = type, .target = target,
                .from = from->full, .to = to_prepped, .to_attr = f->to_len ? to_attr : NULL,
                .id = id, .stanza = el, .payload = payload, .arena = &core->arena,
                .conn = from->conn};
    return ih->fn(&iq, ih->ud) == 0 ? 0 : MP_ENOTFOUND;
}

/* ---- loading ---- */

/* Modules the stream protocol itself relies on (the features advertise them), loaded
 * whatever the configuration lists. */
static const char *const mandatory_modules[] = {"session", "roster", "register", NULL};

static int
is_mandatory(const char *name)
{
    for (const char *const *m = mandatory_modules; *m; m++)
        if (strcmp(*m, name) == 0)
            return 1;
    return 0;
}

static int
load_one(mp_core *core, const char *name)
{
    const mp_module_def *def = NULL;
    for (const mp_module_def *const *d = mp_builtin_modules; *d; d++)
        if (strcmp((*d)->name, name) == 0)
            def = *d;
    if (!def) {
        mp_err("%s: unknown module '%s'", core->cfg->path ? core->cfg->path : "config", name);
        return MP_EINVAL;
    }
    if (def->abi != MP_ABI_1) {
        mp_err("module %s: ABI %d not supported", def->name, def->abi);
        return MP_EINVAL;
    }
    for (size_t i = 0; i < core->nmodules; i++) {
        if (core->modules[i]->def == def) {
            mp_err("module %s is listed twice", def->name);
            return MP_EINVAL;
        }
    }
    mp_module *m = calloc(1, sizeof *m);
    if (!m)
        return MP_ENOMEM;
    m->def = def;
    m->core = core;
    core->modules[core->nmodules++] = m;
    int rc = def->load(m);
    if (rc < 0) {
        mp_err("module %s failed to load: %s", def->name, mp_strerror(rc));
        return rc;
    }
    mp_debug("module %s loaded", def->name);
    return 0;
}

int
mp_modules_load(mp_core *core)
{
    const mp_config *cfg = core->cfg;
    size_t max = cfg->nmodules + sizeof mandatory_modules / sizeof mandatory_modules[0];
    core->modules = calloc(max, sizeof *core->modules);
    if (!core->modules)
        return MP_ENOMEM;
    for (const char *const *m = mandatory_modules; *m; m++) {
        int rc = load_one(core, *m);
        if (rc < 0)
            return rc;
    }
    for (size_t i = 0; i < cfg->nmodules; i++) {
        if (is_mandatory(cfg->modules[i]))
            continue;
        int rc = load_one(core, cfg->modules[i]);
        if (rc < 0)
            return rc;
    }
    return 0;
}

void
mp_modules_unload(mp_core *core)
{
    for (size_t i = core->nmodules; i > 0; i--) {
        mp_module *m = core->modules[i - 1];
        if (m->def->unload)
            m->def->unload(m);
        free(m);
    }
    free(core->modules);
    core->modules = NULL;
    core->nmodules = 0;
    mp_htab *t = &core->iq_handlers;
    for (size_t i = 0; i < t->nbuckets; i++) {
        mp_hnode *n = t->buckets[i];
        while (n) {
            mp_hnode *next = n->next;
            free(mp_container_of(n, mp_iq_handler, node));
            n = next;
        }
    }
    mp_htab_free(t);
    free(core->features);
    core->features = NULL;
    core->nfeatures = 0;
    free(core->account_features);
    core->account_features = NULL;
    core->naccount_features = 0;
    free(core->account_identities);
    core->account_identities = NULL;
    core->naccount_identities = 0;
}
