#include "auth/accounts.h"
#include "auth/scram.h"
#include "base/config.h"
#include "base/err.h"
#include "storage/store.h"
#include "xmpp/jid.h"

#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#define MIN_ITERATIONS 4096
#define PASSWORD_MAX 1024

/* Local twin of mp_config_is_host, so account tools need only the config struct. */
static int
is_host(const mp_config *cfg, const char *domain)
{
    for (size_t i = 0; i < cfg->nhosts; i++)
        if (cfg->hosts[i] && strcasecmp(cfg->hosts[i], domain) == 0)
            return 1;
    return 0;
}

/* Split and prepare "node@domain"; a resource, a missing node or a foreign domain is refused. */
static int
prep_account(const mp_config *cfg, const char *jid, mp_jid *j)
{
    if (!jid || mp_jid_prep(jid, strlen(jid), j) < 0)
        return MP_EINVAL;
    if (j->node_len == 0 || j->resource_len != 0 || !is_host(cfg, j->domain))
        return MP_EINVAL;
    return 0;
}

static int
make_cred(const mp_config *cfg, const char *password, mp_user_cred *cred)
{
    char prepped[PASSWORD_MAX + 1];
    unsigned iter = cfg->scram_iterations < MIN_ITERATIONS ? MIN_ITERATIONS : cfg->scram_iterations;
    int rc;

    if (!password || !*password)
        return MP_EINVAL;
    rc = mp_scram_saslprep(password, prepped, sizeof prepped);
    if (rc <= 0) {
        rc = MP_EINVAL;
        goto out;
    }
    rc = mp_scram_make_cred(prepped, iter, cred);
out:
    OPENSSL_cleanse(prepped, sizeof prepped);
    return rc;
}

static int
put(mp_store *st, const mp_config *cfg, const char *jid, const char *password, int create)
{
    mp_jid j;
    mp_user_cred cred;
    int rc;

    if ((rc = prep_account(cfg, jid, &j)) < 0)
        return rc;
    if ((rc = make_cred(cfg, password, &cred)) < 0)
        return rc;
    rc = st->ops->user_put(st, j.domain, j.node, &cred, create);
    OPENSSL_cleanse(&cred, sizeof cred);
    return rc;
}

int
mp_account_create(mp_store *st, const mp_config *cfg, const char *jid, const char *password)
{
    return put(st, cfg, jid, password, 1);
}

int
mp_account_passwd(mp_store *st, const mp_config *cfg, const char *jid, const char *password)
{
    return put(st, cfg, jid, password, 0);
}

int
mp_account_delete(mp_store *st, const mp_config *cfg, const char *jid)
{
    mp_jid j;
    int rc;

    if ((rc = prep_account(cfg, jid, &j)) < 0)
        return rc;
    return st->ops->user_delete(st, j.domain, j.node);
}
