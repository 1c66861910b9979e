/* XEP-0398 §4 (and the server side of XEP-0153): the server puts an account's avatar hash into
 * the available presence its sessions send, so contacts and rooms learn of an avatar the client
 * never hashed itself -- a client that uploads through PEP does not download its own vCard to
 * hash it. The hash is read once per online account (storage kind "avatar"; for accounts from
 * before that kind, from the vCard, once) and kept on the mp_user while it is online. */
#include "router/core_int.h"
#include "storage/store.h"
#include "xmpp/avatar.h"
#include "base/config.h"
#include "base/err.h"
#include "base/log.h"
#include "xmpp/jid.h"

#include <stdio.h>
#include <string.h>

#define KIND_AVATAR "avatar"
#define KIND_VCARD "vcard"

static int
is_hash(const char *s, size_t len)
{
    if (len != MP_AVATAR_HASH_LEN)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

/* The hash of a vCard stored before the "avatar" kind existed; "" when none or unreadable. */
static void
hash_of_stored_vcard(mp_core *core, const char *domain, const char *node, char *hex)
{
    hex[0] = '\0';
    mp_store *st = core->store;
    mp_buf b = {0};
    int rc = st->ops->blob_get(st, domain, node, KIND_VCARD, "", &b);
    mp_xnode *card = NULL;
    if (rc == 0 && b.len)
        rc = mp_xml_parse(core->parser, &core->arena, "jabber:client", b.data, b.len, &card);
    if (rc == 0 && card && mp_vcard_photo_hash(card, hex) < 0)
        mp_warn("vcard of %s@%s: PHOTO is not base64; no avatar in presence", node, domain);
    mp_buf_free(&b);
    if (rc < 0 && rc != MP_ENOTFOUND)
        mp_warn("vcard of %s@%s: not read for its avatar: %s", node, domain, mp_strerror(rc));
    if (rc == 0 && card) /* remembered, so this is read once */
        if ((rc = st->ops->blob_put(st, domain, node, KIND_AVATAR, "", hex, strlen(hex))) < 0)
            mp_warn("avatar of %s@%s: not stored: %s", node, domain, mp_strerror(rc));
}

static void
avatar_load(mp_core *core, mp_cstream *s)
{
    mp_user *u = s->user;
    const char *domain = core->cfg->hosts[s->host];
    mp_store *st = core->store;
    mp_buf b = {0};
    int rc = st->ops->blob_get(st, domain, s->node, KIND_AVATAR, "", &b);
    u->avatar[0] = '\0';
    if (rc == 0 && is_hash(b.data, b.len)) {
        memcpy(u->avatar, b.data, b.len);
        u->avatar[b.len] = '\0';
    } else if (rc == 0 && b.len) {
        mp_warn("avatar of %s: stored hash is not one; ignored", u->bare);
    } else if (rc == MP_ENOTFOUND) {
        hash_of_stored_vcard(core, domain, s->node, u->avatar);
        rc = 0;
    }
    mp_buf_free(&b);
    if (rc < 0) { /* asked again at the next presence */
        mp_warn("avatar of %s: not read: %s", u->bare, mp_strerror(rc));
        return;
    }
    u->avatar_known = 1;
}

int
mp_core_avatar_set(mp_core *core, const char *domain, const char *node, const char *hash)
{
    size_t hl = strlen(hash);
    if (hl && !is_hash(hash, hl))
        return MP_EINVAL;
    mp_store *st = core->store;
    int rc = st->ops->blob_put(st, domain, node, KIND_AVATAR, "", hash, hl);
    if (rc < 0)
        return rc;
    char bare[MP_JID_MAX];
    int bl = snprintf(bare, sizeof bare, "%s@%s", node, domain);
    mp_user *u = bl > 0 && (size_t)bl < sizeof bare ? mp_core_user(core, bare, (size_t)bl) : NULL;
    if (u) {
        memcpy(u->avatar, hash, hl + 1);
        u->avatar_known = 1;
    }
    return 0;
}

int
mp_avatar_presence(mp_core *core, mp_cstream *s, const char *bytes, size_t len, const mp_xnode *el,
                   mp_buf *out)
{
    out->len = 0;
    if (!core->cfg->pubsub_avatar_conversion || !s->user || !s->node)
        return 0;
    if (!s->user->avatar_known)
        avatar_load(core, s);
    const char *hash = s->user->avatar;
    if (!hash[0])
        return 0;
    mp_xnode *parsed = NULL;
    if (!el) {
        if (mp_xml_parse(core->parser, &core->arena, "jabber:client", bytes, len, &parsed) < 0)
            return 0;
        el = parsed;
    }
    /* §4: a photo the client named (empty: "not ready to say") stands; an <x/> without one is
     * replaced. */
    const mp_xnode *x = mp_xnode_child(el, MP_NS_VCARD_UPDATE, "x");
    if (x && mp_xnode_child(x, MP_NS_VCARD_UPDATE, "photo"))
        return 0;
    mp_xnode top = *el; /* the start tag alone: no children, so no parent is walked */
    top.children = NULL;
    top.text_len = 0;
    int rc = mp_xnode_serialize(out, &top, "jabber:client");
    if (rc == 0 && out->len >= 2 && memcmp(out->data + out->len - 2, "/>", 2) == 0) {
        out->len -= 2;
        rc = mp_buf_puts(out, ">");
    }
    for (const mp_xnode *c = el->children; c && rc == 0; c = c->next)
        if (c != x)
            rc = mp_xnode_serialize(out, c, el->ns);
    if (rc == 0)
        rc = mp_buf_printf(out, "<x xmlns='" MP_NS_VCARD_UPDATE "'><photo>%s</photo></x>", hash);
    if (rc == 0)
        rc = mp_buf_puts(out, "</presence>");
    if (rc < 0) {
        out->len = 0;
        return 0; /* the presence goes as sent */
    }
    return 1;
}
