/* XEP-0398 conversion between PEP avatars and the vCard. PEP to vCard (§3.1): a metadata item
 * names the image by SHA-1; the data item of that id is checked against it and becomes the
 * vCard's PHOTO; metadata without <info/> (XEP-0084 §4.5, avatar switched off) removes it.
 * vCard to PEP (§3.2): a new PHOTO is published as a data item and a metadata item, which notify
 * the contacts as any publication does. Each direction writes the other's storage directly, and
 * the flag avatar_syncing keeps the publish of §3.2 from coming back as a vCard change. */
#include "modules/pubsub/avatar.h"
#include "modules/pubsub/pubsub.h"
#include "router/core.h"
#include "xmpp/avatar.h"
#include "base/config.h"
#include "base/err.h"
#include "base/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define KIND_VCARD "vcard"

static int
conversion_on(ps_module *pm)
{
    return mp_core_config(pm->core)->pubsub_avatar_conversion;
}

/* The account of a PEP service JID, split into arena copies. */
static int
account_of(mp_arena *a, const char *bare, const char **node, const char **domain)
{
    const char *at = strchr(bare, '@');
    if (!at)
        return MP_EINVAL;
    *node = mp_arena_strndup(a, bare, (size_t)(at - bare));
    *domain = at + 1;
    return *node ? 0 : MP_ENOMEM;
}

/* ---- PEP to vCard ---- */

typedef struct item_copy {
    mp_arena *a;
    const char *payload;
    size_t len;
} item_copy;

static int
copy_item(const mp_ps_item *it, void *ud)
{
    item_copy *ic = ud;
    ic->payload = mp_arena_strndup(ic->a, it->payload, it->len);
    ic->len = it->len;
    return ic->payload ? 0 : MP_ENOMEM;
}

/* The base64 text of data item id, checked to hash to id. MP_ENOTFOUND, MP_EINVAL (not base64,
 * another image), MP_E*. */
static int
load_image(ps_ctx *cx, const char *id, const char **b64, size_t *b64_len)
{
    mp_store *st = mp_core_store(cx->pm->core);
    item_copy ic = {cx->arena, NULL, 0};
    int rc = st->ops->ps_item_get(st, cx->service, MP_NS_AVATAR_DATA, id, 1, copy_item, &ic);
    if (rc < 0)
        return rc;
    mp_xnode *data = NULL;
    if (!ic.payload || !ic.len)
        return MP_EINVAL;
    rc = mp_xml_parse(cx->pm->parser, cx->arena, "jabber:client", ic.payload, ic.len, &data);
    if (rc < 0)
        return rc;
    if (strcmp(data->ns, MP_NS_AVATAR_DATA) != 0 || strcmp(data->name, "data") != 0)
        return MP_EINVAL;
    unsigned char *raw;
    size_t n;
    char hex[MP_AVATAR_HASH_LEN + 1];
    if ((rc = mp_avatar_decode(data->text, data->text_len, &raw, &n)) < 0)
        return rc;
    rc = mp_avatar_hash(raw, n, hex);
    free(raw);
    if (rc < 0)
        return rc;
    if (strcasecmp(hex, id) != 0) /* §3.1: the SHOULD of checking the hash, done */
        return MP_EINVAL;
    *b64 = data->text;
    *b64_len = data->text_len;
    return 0;
}

/* The stored vCard of the account, or an empty one. */
static int
load_vcard(ps_ctx *cx, const char *domain, const char *node, mp_xnode **card)
{
    mp_store *st = mp_core_store(cx->pm->core);
    mp_buf doc = {0};
    int rc = st->ops->blob_get(st, domain, node, KIND_VCARD, "", &doc);
    *card = NULL;
    if (rc == 0 && doc.len)
        rc = mp_xml_parse(cx->pm->parser, cx->arena, "jabber:client", doc.data, doc.len, card);
    mp_buf_free(&doc);
    if (rc < 0 && rc != MP_ENOTFOUND)
        return rc;
    if (!*card && !(*card = mp_xnode_new(cx->arena, MP_NS_VCARD, "vCard")))
        return MP_ENOMEM;
    return 0;
}

static void
remove_photos(mp_xnode *card)
{
    mp_xnode **pp = &card->children;
    while (*pp) {
        if (strcmp((*pp)->ns, MP_NS_VCARD) == 0 && strcmp((*pp)->name, "PHOTO") == 0)
            *pp = (*pp)->next;
        else
            pp = &(*pp)->next;
    }
}

static mp_xnode *
text_child(mp_arena *a, mp_xnode *parent, const char *ns, const char *name, const char *text,
           size_t len)
{
    mp_xnode *c = mp_xnode_new(a, ns, name);
    if (!c || mp_xnode_set_text(a, c, text, len) < 0)
        return NULL;
    mp_xnode_append(parent, c);
    return c;
}

/* Store card with PHOTO = (type, b64), or without PHOTO when b64 is NULL. */
static int
store_vcard_photo(ps_ctx *cx, const char *type, const char *b64, size_t b64_len, const char *hash)
{
    const char *node, *domain;
    int rc = account_of(cx->arena, cx->service, &node, &domain);
    mp_xnode *card = NULL;
    if (rc == 0)
        rc = load_vcard(cx, domain, node, &card);
    if (rc < 0)
        return rc;
    remove_photos(card);
    if (b64) {
        mp_xnode *photo = mp_xnode_new(cx->arena, MP_NS_VCARD, "PHOTO");
        if (!photo)
            return MP_ENOMEM;
        mp_xnode_append(card, photo);
        if ((type && !text_child(cx->arena, photo, MP_NS_VCARD, "TYPE", type, strlen(type))) ||
            !text_child(cx->arena, photo, MP_NS_VCARD, "BINVAL", b64, b64_len))
            return MP_ENOMEM;
    }
    mp_buf doc = {0};
    rc = mp_xnode_serialize(&doc, card, "jabber:client");
    if (rc == 0 && doc.len > mp_core_config(cx->pm->core)->vcard_max_size)
        rc = MP_ELIMIT;
    mp_store *st = mp_core_store(cx->pm->core);
    if (rc == 0)
        rc = st->ops->blob_put(st, domain, node, KIND_VCARD, "", doc.data, doc.len);
    mp_buf_free(&doc);
    if (rc == 0)
        rc = mp_core_avatar_set(cx->pm->core, domain, node, hash);
    return rc;
}

void
ps_avatar_on_publish(ps_ctx *cx, const mp_xnode *metadata)
{
    ps_module *pm = cx->pm;
    if (!cx->pep || pm->avatar_syncing || !conversion_on(pm) || !metadata ||
        strcmp(metadata->ns, MP_NS_AVATAR_META) != 0 || strcmp(metadata->name, "metadata") != 0)
        return;
    if (!mp_acl_allows(pm->core, MP_ACL_SAVE_VCARD, cx->service)) {
        mp_debug("avatar of %s: not copied to the vCard (acl.save_vcard)", cx->service);
        return;
    }
    const mp_xnode *info = NULL;
    int ninfo = 0;
    for (const mp_xnode *c = metadata->children; c; c = c->next)
        if (strcmp(c->ns, MP_NS_AVATAR_META) == 0 && strcmp(c->name, "info") == 0) {
            ninfo++;
            if (!info && !mp_xnode_attr(c, "url")) /* §3.1: the one stored here */
                info = c;
        }
    int rc;
    if (ninfo == 0) {
        rc = store_vcard_photo(cx, NULL, NULL, 0, "");
    } else if (!info) {
        mp_debug("avatar of %s: only external images; the vCard stays", cx->service);
        return;
    } else {
        const char *id = mp_xnode_attr(info, "id");
        const char *type = mp_xnode_attr(info, "type");
        const char *b64 = NULL;
        size_t b64_len = 0;
        rc = id ? load_image(cx, id, &b64, &b64_len) : MP_EINVAL;
        char hash[MP_AVATAR_HASH_LEN + 1];
        if (rc == 0 && strlen(id) == MP_AVATAR_HASH_LEN) {
            for (size_t i = 0; i <= MP_AVATAR_HASH_LEN; i++) /* stored lower case */
                hash[i] = (char)(id[i] >= 'A' && id[i] <= 'F' ? id[i] - 'A' + 'a' : id[i]);
            rc = store_vcard_photo(cx, type, b64, b64_len, hash);
        } else if (rc == 0) {
            rc = MP_EINVAL;
        }
        if (rc == MP_ENOTFOUND || rc == MP_EINVAL) {
            mp_info("avatar of %s: metadata names no stored image with that hash; the vCard "
                    "stays",
                    cx->service);
            return;
        }
    }
    if (rc == MP_ELIMIT)
        mp_info("avatar of %s: the vCard with it would pass vcard.max_size; not copied",
                cx->service);
    else if (rc < 0)
        mp_warn("avatar of %s: vCard not updated: %s", cx->service, mp_strerror(rc));
}

typedef struct any_item {
    int found;
} any_item;

static int
note_item(const mp_ps_item *it, void *ud)
{
    ((any_item *)ud)->found = 1;
    return 0;
}

void
ps_avatar_on_removed(ps_ctx *cx)
{
    ps_module *pm = cx->pm;
    if (!cx->pep || pm->avatar_syncing || !conversion_on(pm) ||
        !mp_acl_allows(pm->core, MP_ACL_SAVE_VCARD, cx->service))
        return;
    /* no metadata item left: no avatar any more, as with empty metadata */
    mp_store *st = mp_core_store(pm->core);
    any_item ai = {0};
    int rc = st->ops->ps_item_get(st, cx->service, MP_NS_AVATAR_META, NULL, 1, note_item, &ai);
    if (rc == 0 && !ai.found)
        rc = store_vcard_photo(cx, NULL, NULL, 0, "");
    if (rc < 0 && rc != MP_ENOTFOUND)
        mp_warn("avatar of %s: vCard not updated: %s", cx->service, mp_strerror(rc));
}

/* ---- vCard to PEP ---- */

/* XEP-0084 wants a type; a vCard may lack one. */
static const char *
sniff_type(const unsigned char *raw, size_t n)
{
    if (n >= 8 && memcmp(raw, "\x89PNG\r\n\x1a\n", 8) == 0)
        return "image/png";
    if (n >= 3 && memcmp(raw, "\xff\xd8\xff", 3) == 0)
        return "image/jpeg";
    if (n >= 6 && (memcmp(raw, "GIF87a", 6) == 0 || memcmp(raw, "GIF89a", 6) == 0))
        return "image/gif";
    if (n >= 12 && memcmp(raw, "RIFF", 4) == 0 && memcmp(raw + 8, "WEBP", 4) == 0)
        return "image/webp";
    return NULL;
}

typedef struct newest {
    mp_arena *a;
    const char *id;
} newest;

static int
newest_id(const mp_ps_item *it, void *ud)
{
    newest *nw = ud;
    nw->id = mp_arena_strndup(nw->a, it->id, strlen(it->id));
    return nw->id ? 0 : MP_ENOMEM;
}

/* Publish payload as item id of PEP node name, creating the node with PEP defaults. */
static int
publish(ps_ctx *cx, const char *name, const char *id, const mp_xnode *payload)
{
    ps_node n;
    int rc = ps_node_load(cx, name, &n);
    if (rc == MP_ENOTFOUND) {
        n.name = name;
        ps_config_defaults(&n.cfg, 1, &cx->pm->lim);
        rc = ps_create_node(cx, name, &n.cfg);
    }
    if (rc == 0)
        rc = ps_publish_item(cx, &n, id, payload);
    return rc;
}

static int
from_vcard(ps_ctx *cx, const mp_xnode *vcard)
{
    const mp_xnode *photo = mp_xnode_child(vcard, MP_NS_VCARD, "PHOTO");
    const mp_xnode *bin = photo ? mp_xnode_child(photo, MP_NS_VCARD, "BINVAL") : NULL;
    const mp_xnode *tnode = photo ? mp_xnode_child(photo, MP_NS_VCARD, "TYPE") : NULL;
    if (!bin || !bin->text_len)
        return 0; /* §3.2 is about a photo set; none leaves PEP as it is */
    unsigned char *raw;
    size_t n;
    int rc = mp_avatar_decode(bin->text, bin->text_len, &raw, &n);
    if (rc < 0)
        return rc;
    char hash[MP_AVATAR_HASH_LEN + 1], bytes[32];
    rc = mp_avatar_hash(raw, n, hash);
    const char *type = tnode && tnode->text_len ? tnode->text : sniff_type(raw, n);
    free(raw);
    if (rc < 0)
        return rc;
    if (!type) {
        mp_info("avatar of %s: vCard PHOTO of unknown type; not published in PEP", cx->service);
        return 0;
    }
    mp_store *st = mp_core_store(cx->pm->core);
    newest nw = {cx->arena, NULL};
    rc = st->ops->ps_item_get(st, cx->service, MP_NS_AVATAR_META, NULL, 1, newest_id, &nw);
    if (rc < 0 && rc != MP_ENOTFOUND)
        return rc;
    if (nw.id && strcasecmp(nw.id, hash) == 0)
        return 0; /* already there: a vCard rewritten with the same photo */
    if (bin->text_len > cx->pm->max_payload) {
        mp_info("avatar of %s: larger than pubsub.max_payload_size; not published in PEP",
                cx->service);
        return 0;
    }
    mp_arena *a = cx->arena;
    mp_xnode *data = mp_xnode_new(a, MP_NS_AVATAR_DATA, "data");
    mp_xnode *meta = mp_xnode_new(a, MP_NS_AVATAR_META, "metadata");
    mp_xnode *info = mp_xnode_new(a, MP_NS_AVATAR_META, "info");
    snprintf(bytes, sizeof bytes, "%zu", n);
    if (!data || !meta || !info || mp_xnode_set_text(a, data, bin->text, bin->text_len) < 0 ||
        mp_xnode_set_attr(a, info, "bytes", bytes) < 0 ||
        mp_xnode_set_attr(a, info, "id", hash) < 0 || mp_xnode_set_attr(a, info, "type", type) < 0)
        return MP_ENOMEM;
    mp_xnode_append(meta, info);
    /* data first: a client that sees the metadata fetches the data (XEP-0084 §4.2) */
    rc = publish(cx, MP_NS_AVATAR_DATA, hash, data);
    if (rc == 0)
        rc = publish(cx, MP_NS_AVATAR_META, hash, meta);
    return rc;
}

void
mp_pubsub_avatar_from_vcard(struct mp_core *core, const char *domain, const char *node,
                            const mp_xnode *vcard)
{
    ps_module *pm = ps_module_get(core);
    if (!pm || !conversion_on(pm))
        return;
    int rc = ps_as_account(pm, domain, node, &pm->avatar_syncing, from_vcard, vcard);
    if (rc < 0)
        mp_warn("avatar of %s@%s: not published in PEP: %s", node, domain, mp_strerror(rc));
}
