/* XEP-0049 private XML storage: an account keeps XML fragments on its server, one document per
 * namespace (kind "private", key = the fragment's namespace). XEP-0048 bookmarks
 * (storage:bookmarks) are the main user. Nobody but the account reads or writes them. */
#include "magpie/module.h"
#include "modules/pubsub/bookmarks.h"
#include "router/core.h"
#include "storage/store.h"
#include "base/err.h"
#include "base/log.h"

#include <string.h>

#define NS_PRIVATE "jabber:iq:private"
#define KIND_PRIVATE "private"

/* XEP-0049 §3: the stanza namespaces and this protocol's own are not storage keys (a child
 * without xmlns inherits jabber:iq:private and lands here too). */
static int
reserved_ns(const char *ns)
{
    return ns[0] == '\0' || strcmp(ns, "jabber:client") == 0 || strcmp(ns, "jabber:server") == 0 ||
           strcmp(ns, NS_PRIVATE) == 0;
}

/* Checks common to get and set; answers the IQ and returns nonzero when it fails them. */
static int
refuse(mp_iq *iq, const char **node, const char **domain)
{
    /* XEP-0049 §2: another user's data is forbidden ("preferable" to service-unavailable). */
    if (!mp_iq_is_own(iq)) {
        mp_iq_error(iq, "auth", "forbidden");
        return 1;
    }
    if (mp_iq_account_of(iq, iq->from, node, domain) < 0) {
        mp_iq_error(iq, "wait", "internal-server-error");
        return 1;
    }
    return 0;
}

static int
private_get(mp_iq *iq, void *ud)
{
    const char *node, *domain;
    if (refuse(iq, &node, &domain))
        return 0;
    const mp_xnode *want = iq->payload->children;
    /* One namespace per get (§2); none is "Bad Format", now bad-request. */
    if (!want || want->next)
        return mp_iq_error(iq, "modify", "bad-request");
    if (reserved_ns(want->ns))
        return mp_iq_error(iq, "modify", "not-acceptable");
    mp_xnode *q = mp_xnode_new(iq->arena, NS_PRIVATE, "query");
    if (!q)
        return mp_iq_error(iq, "wait", "internal-server-error");
    mp_store *st = mp_core_store(iq->core);
    mp_buf doc = {0};
    mp_xnode *el = NULL;
    int rc = st->ops->blob_get(st, domain, node, KIND_PRIVATE, want->ns, &doc);
    if (rc == MP_ENOTFOUND) {
        /* Nothing stored: the element asked for, empty, as servers have always answered. */
        el = mp_xnode_new(iq->arena, want->ns, want->name);
        rc = el ? 0 : MP_ENOMEM;
    } else if (rc == 0) {
        mp_xml_parser *p = mp_xml_parser_new();
        rc = p ? mp_xml_parse(p, iq->arena, "jabber:client", doc.data, doc.len, &el) : MP_ENOMEM;
        mp_xml_parser_free(p);
        if (rc == MP_EINVAL)
            mp_warn("private storage of %s@%s: stored %s is not well-formed", node, domain,
                    want->ns);
    }
    mp_buf_free(&doc);
    if (rc < 0)
        return mp_iq_error(iq, "wait", "internal-server-error");
    mp_xnode_append(q, el);
    return mp_iq_result(iq, q);
}

static int
private_set(mp_iq *iq, void *ud)
{
    const char *node, *domain;
    if (refuse(iq, &node, &domain))
        return 0;
    if (!mp_acl_allows(iq->core, MP_ACL_SAVE_PRIVATE, iq->from))
        return mp_iq_error(iq, "auth", "forbidden"); /* acl.save_private */
    const mp_xnode *first = iq->payload->children;
    /* §2: a set without a fragment is "Not Acceptable". Several fragments may come in one set;
     * each replaces what its namespace held. Everything is checked before anything is stored. */
    if (!first)
        return mp_iq_error(iq, "modify", "not-acceptable");
    for (const mp_xnode *c = first; c; c = c->next) {
        if (reserved_ns(c->ns))
            return mp_iq_error(iq, "modify", "not-acceptable");
        for (const mp_xnode *d = first; d != c; d = d->next)
            if (strcmp(d->ns, c->ns) == 0)
                return mp_iq_error(iq, "modify", "bad-request");
    }
    mp_store *st = mp_core_store(iq->core);
    mp_buf doc = {0};
    int rc = 0;
    for (const mp_xnode *c = first; c && rc == 0; c = c->next) {
        doc.len = 0;
        rc = mp_xnode_serialize(&doc, c, "jabber:client");
        if (rc == 0)
            rc = st->ops->blob_put(st, domain, node, KIND_PRIVATE, c->ns, doc.data, doc.len);
    }
    mp_buf_free(&doc);
    if (rc < 0) {
        mp_warn("private storage of %s@%s: not stored: %s", node, domain, mp_strerror(rc));
        return mp_iq_error(iq, "wait", "internal-server-error");
    }
    /* XEP-0411: PEP bookmarks (XEP-0402) follow the legacy document */
    for (const mp_xnode *c = first; c; c = c->next)
        if (strcmp(c->ns, "storage:bookmarks") == 0 && strcmp(c->name, "storage") == 0)
            mp_pubsub_bookmarks_from_private(iq->core, domain, node, c);
    return mp_iq_result(iq, NULL);
}

static int
private_load(mp_module *m)
{
    int rc = mp_module_feature(m, NS_PRIVATE);
    if (rc == 0)
        rc = mp_module_iq(m, MP_IQ_GET, MP_TARGET_ACCOUNT, NS_PRIVATE, "query", private_get, NULL);
    if (rc == 0)
        rc = mp_module_iq(m, MP_IQ_SET, MP_TARGET_ACCOUNT, NS_PRIVATE, "query", private_set, NULL);
    return rc;
}

MP_MODULE(private, MP_ABI_1, private_load, NULL);
