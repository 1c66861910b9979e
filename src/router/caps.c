/* XEP-0115 verification string of the server's disco#info identity and features. */
#include "router/caps.h"
#include "router/core_int.h"
#include "magpie/module.h"
#include "base/buf.h"
#include "base/err.h"
#include "base/log.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#define SHA1_LEN 20

static const char *
or_empty(const char *s)
{
    return s ? s : "";
}

static int
cmp_identity(const void *a, const void *b)
{
    const mp_caps_identity *x = *(const mp_caps_identity *const *)a;
    const mp_caps_identity *y = *(const mp_caps_identity *const *)b;
    int c = strcmp(x->category, y->category);
    if (c == 0)
        c = strcmp(x->type, y->type);
    if (c == 0)
        c = strcmp(or_empty(x->lang), or_empty(y->lang));
    return c;
}

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int
mp_caps_ver(const mp_caps_identity *ids, size_t nids, const char *const *features, size_t nfeatures,
            char *out, size_t cap)
{
    const mp_caps_identity **sid = calloc(nids ? nids : 1, sizeof *sid);
    const char **sfeat = calloc(nfeatures ? nfeatures : 1, sizeof *sfeat);
    mp_buf s = {0};
    int rc = MP_ENOMEM;
    if (!sid || !sfeat)
        goto out;
    for (size_t i = 0; i < nids; i++)
        sid[i] = &ids[i];
    if (nfeatures)
        memcpy(sfeat, features, nfeatures * sizeof *sfeat);
    qsort(sid, nids, sizeof *sid, cmp_identity);
    qsort(sfeat, nfeatures, sizeof *sfeat, cmp_str);
    rc = MP_EINVAL;
    for (size_t i = 1; i < nids; i++)
        if (cmp_identity(&sid[i - 1], &sid[i]) == 0)
            goto out;
    for (size_t i = 1; i < nfeatures; i++)
        if (strcmp(sfeat[i - 1], sfeat[i]) == 0)
            goto out;
    int brc = 0;
    for (size_t i = 0; i < nids; i++)
        brc |= mp_buf_printf(&s, "%s/%s/%s/%s<", sid[i]->category, sid[i]->type,
                             or_empty(sid[i]->lang), or_empty(sid[i]->name));
    for (size_t i = 0; i < nfeatures; i++) {
        brc |= mp_buf_puts(&s, sfeat[i]);
        brc |= mp_buf_puts(&s, "<");
    }
    if (brc < 0) {
        rc = MP_ENOMEM;
        goto out;
    }
    unsigned char md[SHA1_LEN];
    unsigned int mdlen = 0;
    if (EVP_Digest(s.data ? s.data : "", s.len, md, &mdlen, EVP_sha1(), NULL) != 1 ||
        mdlen != SHA1_LEN) {
        rc = MP_EIO;
        goto out;
    }
    /* base64 of 20 bytes: 28 characters and the NUL EVP_EncodeBlock writes */
    if (cap < 29) {
        rc = MP_ELIMIT;
        goto out;
    }
    rc = EVP_EncodeBlock((unsigned char *)out, md, SHA1_LEN);
out:
    mp_buf_free(&s);
    free(sid);
    free(sfeat);
    return rc;
}

int
mp_caps_server_features(mp_core *core, mp_arena *a, const char ***out, size_t *n)
{
    const char *const *vars;
    size_t nvars;
    mp_core_features(core, &vars, &nvars);
    const char **list = mp_arena_alloc(a, (nvars + 2) * sizeof *list);
    if (!list)
        return MP_ENOMEM;
    size_t k = 0;
    list[k++] = MP_NS_DISCO_INFO;
    list[k++] = MP_NS_DISCO_ITEMS;
    for (size_t i = 0; i < nvars; i++) {
        size_t j = 0;
        while (j < k && strcmp(list[j], vars[i]) != 0)
            j++;
        if (j == k) /* two modules may announce one namespace; disco lists it once */
            list[k++] = vars[i];
    }
    *out = list;
    *n = k;
    return 0;
}

static int
disco_loaded(mp_core *core)
{
    for (size_t i = 0; i < core->nmodules; i++)
        if (strcmp(mp_module_name(core->modules[i]), "disco") == 0)
            return 1;
    return 0;
}

int
mp_caps_init(mp_core *core)
{
    core->caps_ver[0] = '\0';
    if (!disco_loaded(core))
        return 0;
    mp_arena a;
    mp_arena_init(&a, 4096);
    const char **feats;
    size_t n;
    int rc = mp_caps_server_features(core, &a, &feats, &n);
    if (rc == 0) {
        mp_caps_identity id = {MP_SERVER_CATEGORY, MP_SERVER_TYPE, NULL, MP_SERVER_NAME};
        rc = mp_caps_ver(&id, 1, feats, n, core->caps_ver, sizeof core->caps_ver);
    }
    mp_arena_free(&a);
    if (rc < 0) {
        core->caps_ver[0] = '\0';
        mp_err("caps: cannot compute the server's XEP-0115 ver: %s", mp_strerror(rc));
        return rc;
    }
    mp_debug("caps: ver %s over %zu features", core->caps_ver, n);
    return 0;
}

const char *
mp_core_caps_ver(mp_core *core)
{
    return core->caps_ver;
}
