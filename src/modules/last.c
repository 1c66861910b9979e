/* XEP-0012 Last Activity: the server's uptime, and for an account's bare JID the time since
 * its last session ended (0 while it has an available resource), shown only to those who may
 * see its presence (XEP-0012 §3 and §7). The logout time is kept in the per-user blob store,
 * kind "last", as "<unix seconds>\n<status text>". */
#include "modules/last.h"
#include "router/core.h"
#include "router/subscription.h"
#include "storage/store.h"
#include "base/err.h"
#include "base/log.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NS_LAST "jabber:iq:last"
#define BLOB_KIND "last"

void
mp_last_logout(struct mp_core *core, const char *domain, const char *node, const char *status)
{
    mp_store *st = mp_core_store(core);
    mp_buf b = {0};
    mp_buf_printf(&b, "%" PRId64 "\n", (int64_t)time(NULL));
    if (status && mp_buf_puts(&b, status) < 0)
        b.len = 0;
    int rc = b.len ? st->ops->blob_put(st, domain, node, BLOB_KIND, "", b.data, b.len) : MP_ENOMEM;
    if (rc < 0)
        mp_warn("last activity of %s@%s: cannot store: %s", node, domain, mp_strerror(rc));
    mp_buf_free(&b);
}

static int
roster_state(const mp_roster_item *item, void *ud)
{
    *(int *)ud = item->state;
    return 0;
}

int
mp_account_query_resolve(mp_iq *iq, mp_account_query *q)
{
    mp_jid from;
    memset(q, 0, sizeof *q);
    if (mp_jid_prep(iq->from, strlen(iq->from), &from) < 0)
        return MP_EINVAL;
    char from_bare[sizeof q->bare];
    if (mp_jid_bare(&from, from_bare, sizeof from_bare) < 0)
        return MP_EINVAL;
    const char *to = iq->to[0] ? iq->to : from_bare;
    if (mp_jid_prep(to, strlen(to), &q->target) < 0 || !q->target.node_len ||
        mp_jid_bare(&q->target, q->bare, sizeof q->bare) < 0)
        return MP_EINVAL;
    if (strcmp(q->bare, from_bare) == 0) {
        q->self = q->exists = q->may_see = 1;
        return 0;
    }
    mp_store *st = mp_core_store(iq->core);
    mp_user_cred cred;
    int rc = st->ops->user_get(st, q->target.domain, q->target.node, &cred);
    explicit_bzero(&cred, sizeof cred);
    if (rc == MP_ENOTFOUND)
        return 0;
    if (rc < 0)
        return MP_EIO;
    q->exists = 1;
    /* RFC 6121: the account's item for the requester says 'from' (or 'both'). A hidden row only
     * remembers an unanswered request and grants nothing. */
    int state = 0;
    rc = st->ops->roster_get(st, q->target.domain, q->target.node, from_bare, roster_state, &state);
    if (rc < 0 && rc != MP_ENOTFOUND)
        return MP_EIO;
    q->may_see = rc == 0 && !(state & MP_SUB_HIDDEN) && (state & MP_SUB_FROM);
    return 0;
}

static int
last_result(mp_iq *iq, uint64_t seconds, const char *text, size_t len)
{
    char secs[24];
    snprintf(secs, sizeof secs, "%" PRIu64, seconds);
    mp_xnode *q = mp_xnode_new(iq->arena, NS_LAST, "query");
    if (!q || mp_xnode_set_attr(iq->arena, q, "seconds", secs) < 0 ||
        (len && mp_xnode_set_text(iq->arena, q, text, len) < 0))
        return mp_iq_error(iq, "wait", "internal-server-error");
    return mp_iq_result(iq, q);
}

/* XEP-0012 §5: to the server itself, its uptime, without text. */
static int
last_host(mp_iq *iq, void *ud)
{
    mp_core_stats stats;
    mp_core_stats_get(iq->core, &stats);
    return last_result(iq, stats.uptime_s, NULL, 0);
}

static int
find_available(const mp_core_session_info *info, void *ud)
{
    if (!info->available)
        return 0;
    *(int *)ud = 1;
    return 1;
}

static int
last_account(mp_iq *iq, void *ud)
{
    mp_account_query q;
    int rc = mp_account_query_resolve(iq, &q);
    if (rc == MP_EINVAL)
        return mp_iq_error(iq, "modify", "jid-malformed");
    if (rc < 0)
        return mp_iq_error(iq, "wait", "internal-server-error");
    /* RFC 6121 §8.5.1: an IQ to a bare JID with no such account gets <service-unavailable/>
     * (XEP-0012 §3 defers to RFC 6121 for the error rules). */
    if (!q.exists)
        return mp_iq_error(iq, "cancel", "service-unavailable");
    /* XEP-0012 §3: only to those authorized to view the user's presence; <forbidden/>. */
    if (!q.may_see)
        return mp_iq_error(iq, "auth", "forbidden");
    /* XEP-0012 §3: with an available resource, seconds='0' and no text. */
    int online = 0;
    mp_core_sessions_foreach(iq->core, q.bare, find_available, &online);
    if (online)
        return last_result(iq, 0, NULL, 0);
    mp_store *st = mp_core_store(iq->core);
    mp_buf b = {0};
    rc = st->ops->blob_get(st, q.target.domain, q.target.node, BLOB_KIND, "", &b);
    if (rc == MP_ENOTFOUND) {
        /* Never logged out since it was recorded: nothing to tell, as ejabberd answers. */
        mp_buf_free(&b);
        return mp_iq_error(iq, "cancel", "service-unavailable");
    }
    /* NUL-terminated for strtoll, the terminator not counted. */
    if (rc < 0 || mp_buf_append(&b, "", 1) < 0) {
        mp_buf_free(&b);
        return mp_iq_error(iq, "wait", "internal-server-error");
    }
    b.len--;
    char *nl = memchr(b.data, '\n', b.len);
    char *end;
    long long when = strtoll(b.data, &end, 10);
    if (!nl || end != nl) {
        mp_warn("last activity of %s: malformed record", q.bare);
        mp_buf_free(&b);
        return mp_iq_error(iq, "wait", "internal-server-error");
    }
    long long now = (long long)time(NULL);
    size_t text_len = b.len - (size_t)(nl + 1 - b.data);
    rc = last_result(iq, now > when ? (uint64_t)(now - when) : 0, nl + 1, text_len);
    mp_buf_free(&b);
    return rc;
}

static int
last_load(mp_module *m)
{
    int rc = mp_module_feature(m, NS_LAST);
    if (rc == 0)
        rc = mp_module_iq(m, MP_IQ_GET, MP_TARGET_HOST, NS_LAST, "query", last_host, NULL);
    if (rc == 0)
        rc = mp_module_iq(m, MP_IQ_GET, MP_TARGET_ACCOUNT, NS_LAST, "query", last_account, NULL);
    return rc;
}

MP_MODULE(last, MP_ABI_1, last_load, NULL);
