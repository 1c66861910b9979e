/* XEP-0054 vcard-temp: each account has one vCard, stored as one document (kind "vcard", key
 * ""). The owner writes it; anyone may read it through the account's bare JID, as ejabberd and
 * Prosody do by default. PHOTO (with its base64 BINVAL) is stored and returned as sent; its hash
 * goes to the core, which puts it into the account's presence (XEP-0153, XEP-0398 §4), and to
 * PEP as a XEP-0084 avatar (XEP-0398 §3.2, pubsub/avatar.c). */
#include "magpie/module.h"
#include "router/core.h"
#include "storage/store.h"
#include "base/config.h"
#include "base/err.h"
#include "base/log.h"
#include "modules/pubsub/avatar.h"
#include "xmpp/avatar.h"

#include <string.h>

#define NS_VCARD MP_NS_VCARD
#define KIND_VCARD "vcard"

static int
vcard_get(mp_iq *iq, void *ud)
{
    int own = mp_iq_is_own(iq);
    const char *node, *domain;
    if (mp_iq_account_of(iq, own ? iq->from : iq->to, &node, &domain) < 0)
        return mp_iq_error(iq, "wait", "internal-server-error");
    mp_store *st = mp_core_store(iq->core);
    mp_buf doc = {0};
    int rc = st->ops->blob_get(st, domain, node, KIND_VCARD, "", &doc);
    if (rc == MP_ENOTFOUND) {
        mp_buf_free(&doc);
        /* XEP-0054 §3.1 allows an empty vCard for one's own; §3.3 asks for the same error
         * whether the other account lacks a vCard or does not exist, so that the answer does
         * not tell which accounts exist. */
        if (!own)
            return mp_iq_error(iq, "cancel", "item-not-found");
        mp_xnode *empty = mp_xnode_new(iq->arena, NS_VCARD, "vCard");
        return empty ? mp_iq_result(iq, empty) : mp_iq_error(iq, "wait", "internal-server-error");
    }
    mp_xnode *card = NULL;
    if (rc == 0) {
        mp_xml_parser *p = mp_xml_parser_new();
        rc = p ? mp_xml_parse(p, iq->arena, "jabber:client", doc.data, doc.len, &card) : MP_ENOMEM;
        mp_xml_parser_free(p);
        if (rc == MP_EINVAL)
            mp_warn("vcard of %s@%s: stored document is not well-formed", node, domain);
    }
    mp_buf_free(&doc);
    if (rc < 0)
        return mp_iq_error(iq, "wait", "internal-server-error");
    return mp_iq_result(iq, card);
}

static int
vcard_set(mp_iq *iq, void *ud)
{
    /* XEP-0054 §3.2: only one's own vCard can be set. */
    if (!mp_iq_is_own(iq))
        return mp_iq_error(iq, "auth", "forbidden");
    if (!mp_acl_allows(iq->core, MP_ACL_SAVE_VCARD, iq->from))
        return mp_iq_error(iq, "auth", "forbidden"); /* acl.save_vcard */
    const char *node, *domain;
    if (mp_iq_account_of(iq, iq->from, &node, &domain) < 0)
        return mp_iq_error(iq, "wait", "internal-server-error");
    char hash[MP_AVATAR_HASH_LEN + 1];
    if (mp_vcard_photo_hash(iq->payload, hash) < 0)
        return mp_iq_error(iq, "modify", "bad-request"); /* a BINVAL that is not base64 */
    mp_buf doc = {0};
    if (mp_xnode_serialize(&doc, iq->payload, "jabber:client") < 0) {
        mp_buf_free(&doc);
        return mp_iq_error(iq, "wait", "internal-server-error");
    }
    /* A server policy the request fails, not a shortage that waiting would cure: modify /
     * not-acceptable (RFC 6120 §8.3.3.12) rather than wait / resource-constraint. */
    size_t max = mp_core_config(iq->core)->vcard_max_size;
    if (doc.len > max) {
        mp_debug("vcard of %s@%s: %zu bytes refused (vcard.max_size %zu)", node, domain, doc.len,
                 max);
        mp_buf_free(&doc);
        return mp_iq_error(iq, "modify", "not-acceptable");
    }
    mp_store *st = mp_core_store(iq->core);
    int rc = st->ops->blob_put(st, domain, node, KIND_VCARD, "", doc.data, doc.len);
    mp_buf_free(&doc);
    if (rc < 0) {
        mp_warn("vcard of %s@%s: not stored: %s", node, domain, mp_strerror(rc));
        return mp_iq_error(iq, "wait", "internal-server-error");
    }
    if ((rc = mp_core_avatar_set(iq->core, domain, node, hash)) < 0)
        mp_warn("avatar of %s@%s: hash not stored: %s", node, domain, mp_strerror(rc));
    mp_pubsub_avatar_from_vcard(iq->core, domain, node, iq->payload);
    return mp_iq_result(iq, NULL);
}

static int
vcard_load(mp_module *m)
{
    int rc = mp_module_feature(m, NS_VCARD);
    if (rc == 0)
        rc = mp_module_iq(m, MP_IQ_GET, MP_TARGET_ACCOUNT, NS_VCARD, "vCard", vcard_get, NULL);
    if (rc == 0)
        rc = mp_module_iq(m, MP_IQ_SET, MP_TARGET_ACCOUNT, NS_VCARD, "vCard", vcard_set, NULL);
    return rc;
}

MP_MODULE(vcard, MP_ABI_1, vcard_load, NULL);
