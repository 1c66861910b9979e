/* Account administration shared by magpiectl (directly on storage) and the admin socket. */
#ifndef MP_AUTH_ACCOUNTS_H
#define MP_AUTH_ACCOUNTS_H

struct mp_config;
struct mp_store;

/* jid is "node@domain"; the domain must be one of the configured hosts.
 * Returns 0, MP_EINVAL (bad JID, unknown host, empty password), MP_EEXIST, MP_ENOTFOUND,
 * MP_EIO. Errors are returned, not logged. */
int mp_account_create(struct mp_store *st, const struct mp_config *cfg, const char *jid,
                      const char *password);
int mp_account_passwd(struct mp_store *st, const struct mp_config *cfg, const char *jid,
                      const char *password);
int mp_account_delete(struct mp_store *st, const struct mp_config *cfg, const char *jid);

#endif
