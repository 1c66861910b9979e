/* Site policies. The config loader has already checked and normalised every entry (keywords,
 * nameprepped domains, stringprepped bare JIDs), so compiling only sorts them into a form where
 * a check is a flag test and at most two binary searches, with no parsing and no allocation. */
#include "router/acl.h"
#include "router/core_int.h"
#include "router/subscription.h"
#include "base/config.h"
#include "base/err.h"
#include "base/log.h"
#include "xml/framer.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum { P_ALL = 1 << 0, P_LOCAL = 1 << 1, P_ADMINS = 1 << 2 };

/* A bare JID, longest form: node@domain. */
#define BARE_MAX 2047

typedef struct plist {
    unsigned flags;
    char **domains; /* sorted, lower case */
    size_t ndomains;
    char **jids; /* sorted bare JIDs, domain in lower case */
    size_t njids;
} plist;

struct mp_acl {
    plist rules[MP_ACL_NRULES];
    plist admins; /* JIDs only */
    int same_domain;
    char **hosts;
    size_t nhosts;
};

static void
free_strs(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void
plist_free(plist *p)
{
    free_strs(p->domains, p->ndomains);
    free_strs(p->jids, p->njids);
    memset(p, 0, sizeof *p);
}

void
mp_acl_free(mp_acl *acl)
{
    if (acl == NULL)
        return;
    for (int i = 0; i < MP_ACL_NRULES; i++)
        plist_free(&acl->rules[i]);
    plist_free(&acl->admins);
    free_strs(acl->hosts, acl->nhosts);
    free(acl);
}

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int
push(char ***v, size_t *n, const char *s)
{
    char **t = realloc(*v, (*n + 1) * sizeof *t);
    if (t == NULL)
        return MP_ENOMEM;
    *v = t;
    if ((t[*n] = strdup(s)) == NULL)
        return MP_ENOMEM;
    (*n)++;
    return 0;
}

static int
plist_compile(plist *p, const mp_strlist *l)
{
    for (size_t i = 0; i < l->n; i++) {
        const char *s = l->v[i];
        int rc = 0;
        if (strcmp(s, "all") == 0)
            p->flags |= P_ALL;
        else if (strcmp(s, "local") == 0)
            p->flags |= P_LOCAL;
        else if (strcmp(s, "admins") == 0)
            p->flags |= P_ADMINS;
        else if (strchr(s, '@') != NULL)
            rc = push(&p->jids, &p->njids, s);
        else
            rc = push(&p->domains, &p->ndomains, s);
        if (rc < 0)
            return rc;
    }
    if (p->njids > 1)
        qsort(p->jids, p->njids, sizeof *p->jids, cmp_str);
    if (p->ndomains > 1)
        qsort(p->domains, p->ndomains, sizeof *p->domains, cmp_str);
    return 0;
}

int
mp_acl_compile(const mp_config *cfg, mp_acl **out)
{
    const mp_strlist *lists[MP_ACL_NRULES] = {
        [MP_ACL_SEND_ALERTS] = &cfg->acl_send_alerts,
        [MP_ACL_SAVE_PRIVATE] = &cfg->acl_save_private,
        [MP_ACL_SAVE_VCARD] = &cfg->acl_save_vcard,
        [MP_ACL_CREATE_ROOMS] = &cfg->acl_create_rooms,
    };
    mp_acl *acl = calloc(1, sizeof *acl);
    if (acl == NULL)
        return MP_ENOMEM;
    acl->same_domain = cfg->acl_see_presence == MP_SEE_SAME_DOMAIN;
    int rc = plist_compile(&acl->admins, &cfg->acl_admins);
    for (int i = 0; i < MP_ACL_NRULES && rc == 0; i++)
        rc = plist_compile(&acl->rules[i], lists[i]);
    for (size_t i = 0; i < cfg->nhosts && rc == 0; i++)
        rc = push(&acl->hosts, &acl->nhosts, cfg->hosts[i]);
    if (rc < 0) {
        mp_acl_free(acl);
        return rc;
    }
    *out = acl;
    return 0;
}

/* The bare part of jid with its domain in lower case. Returns the length (0: not usable) and
 * where the domain starts; *has_node tells an account from a server. */
static size_t
bare_of(const char *jid, char *buf, size_t *dom, int *has_node)
{
    size_t len = strcspn(jid, "/");
    if (len == 0 || len > BARE_MAX)
        return 0;
    const char *at = memchr(jid, '@', len);
    *has_node = at != NULL && at != jid;
    *dom = at ? (size_t)(at - jid) + 1 : 0;
    for (size_t i = 0; i < len; i++) {
        char c = jid[i];
        buf[i] = i >= *dom && c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
    }
    buf[len] = '\0';
    return *dom < len ? len : 0;
}

static int
in_sorted(char *const *v, size_t n, const char *key)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(key, v[mid]);
        if (c == 0)
            return 1;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return 0;
}

static int
is_host(const mp_acl *acl, const char *domain)
{
    for (size_t i = 0; i < acl->nhosts; i++)
        if (strcmp(acl->hosts[i], domain) == 0)
            return 1;
    return 0;
}

static int
plist_match(const mp_acl *acl, const plist *p, const char *jid)
{
    if (p->flags & P_ALL)
        return 1;
    char bare[BARE_MAX + 1];
    size_t dom;
    int has_node;
    if (bare_of(jid, bare, &dom, &has_node) == 0 || !has_node)
        return 0;
    if ((p->flags & P_LOCAL) && is_host(acl, bare + dom))
        return 1;
    if ((p->flags & P_ADMINS) && in_sorted(acl->admins.jids, acl->admins.njids, bare))
        return 1;
    return in_sorted(p->domains, p->ndomains, bare + dom) || in_sorted(p->jids, p->njids, bare);
}

int
mp_acl_check(const mp_acl *acl, enum mp_acl_rule rule, const char *jid)
{
    if (acl == NULL || jid == NULL || (unsigned)rule >= MP_ACL_NRULES)
        return 0;
    return plist_match(acl, &acl->rules[rule], jid);
}

int
mp_acl_check_admin(const mp_acl *acl, const char *jid)
{
    return acl != NULL && jid != NULL && plist_match(acl, &acl->admins, jid);
}

/* Length of the domain part of a prepared JID, and where it starts. */
static const char *
domain_of(const char *jid, size_t *len)
{
    size_t n = strcspn(jid, "/");
    const char *at = memchr(jid, '@', n);
    const char *d = at ? at + 1 : jid;
    *len = n - (size_t)(d - jid);
    return d;
}

int
mp_acl_check_visible(const mp_acl *acl, const char *from, const char *to)
{
    if (acl == NULL || !acl->same_domain)
        return 1;
    size_t fl, tl;
    const char *fd = domain_of(from, &fl);
    const char *td = domain_of(to, &tl);
    return fl == tl && strncasecmp(fd, td, fl) == 0;
}

/* ---- on the core ---- */

int
mp_acl_allows(struct mp_core *core, enum mp_acl_rule rule, const char *jid)
{
    return mp_acl_check(core->acl, rule, jid);
}

int
mp_acl_is_admin(struct mp_core *core, const char *jid)
{
    return mp_acl_check_admin(core->acl, jid);
}

int
mp_acl_presence_visible(struct mp_core *core, const char *from, const char *to)
{
    return mp_acl_check_visible(core->acl, from, to);
}

int
mp_acl_subscription_refused(struct mp_core *core, struct mp_cstream *s, const struct mp_frame *f,
                            const char *contact, int type)
{
    if (type != MP_SUBSCRIBE && type != MP_SUBSCRIBED)
        return 0;
    if (mp_acl_check_visible(core->acl, s->full, contact))
        return 0;
    mp_debug("conn %016llx: %s to %s refused (acl.see_presence)", (unsigned long long)s->conn,
             mp_sub_type_name(type), contact);
    mp_route_error(core, s, MP_EL_PRESENCE, mp_frame_to(f), f->to_len,
                   f->id_len ? mp_frame_id(f) : NULL, f->id_len, "auth", "forbidden");
    return 1;
}

int
mp_acl_reload(struct mp_core *core)
{
    mp_acl *acl;
    int rc = mp_acl_compile(core->cfg, &acl);
    if (rc < 0) {
        mp_err("acl: cannot compile the new site policies, keeping the previous ones: %s",
               mp_strerror(rc));
        return rc;
    }
    mp_acl_free(core->acl);
    core->acl = acl;
    return 0;
}
