/* The data forms of push notifications (XEP-0357): the <enable/> a client sends, the summary
 * the server publishes to the app server. */
#include "modules/push.h"
#include "base/err.h"
#include "xmpp/jid.h"
#include "xmpp/dataform.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int
is_true(const char *v)
{
    return v && (strcmp(v, "1") == 0 || strcmp(v, "true") == 0);
}

static const char *
field_value(const mp_xnode *field)
{
    const mp_xnode *v = mp_xnode_child(field, MP_NS_DATA, "value");
    return v ? v->text : NULL;
}

/* The form without its include-body field, serialized into e->options. */
static int
read_options(const mp_xnode *x, mp_push_enable *e)
{
    const char *type = mp_xnode_attr(x, "type");
    if (type && strcmp(type, "submit") != 0)
        return MP_EINVAL;
    int typed = 0, fields = 0;
    mp_buf *b = &e->options;
    int rc = mp_buf_puts(b, "<x xmlns='" MP_NS_DATA "' type='submit'>");
    for (const mp_xnode *c = x->children; c && rc == 0; c = c->next) {
        const char *var = mp_xnode_attr(c, "var");
        if (strcmp(c->ns, MP_NS_DATA) != 0 || strcmp(c->name, "field") != 0 || !var)
            continue;
        if (strcmp(var, MP_PUSH_BODY_FIELD) == 0) {
            e->want_body = is_true(field_value(c));
            continue;
        }
        if (strcmp(var, "FORM_TYPE") == 0) {
            const char *v = field_value(c);
            if (!v || strcmp(v, MP_PUBLISH_OPTIONS) != 0)
                return MP_EINVAL;
            typed = 1;
        } else {
            fields++;
        }
        rc = mp_xnode_serialize(b, c, MP_NS_DATA);
    }
    if (rc == 0)
        rc = mp_buf_puts(b, "</x>");
    if (rc < 0)
        return MP_ENOMEM;
    if (!typed)
        return MP_EINVAL;
    if (fields == 0)
        b->len = 0; /* only FORM_TYPE (and our field) left: nothing for the app server */
    return 0;
}

int
mp_push_enable_read(mp_arena *a, const mp_xnode *enable, mp_push_enable *e)
{
    memset(e, 0, sizeof *e);
    const char *jid = mp_xnode_attr(enable, "jid");
    const char *node = mp_xnode_attr(enable, "node");
    if (!jid || !node || !node[0])
        return MP_EINVAL;
    mp_jid *j = malloc(sizeof *j);
    if (!j)
        return MP_ENOMEM;
    char *buf = NULL;
    int rc = mp_jid_prep(jid, strlen(jid), j);
    if (rc == 0) {
        size_t cap = j->node_len + j->domain_len + j->resource_len + 3;
        buf = mp_arena_alloc(a, cap);
        rc = buf ? mp_jid_full(j, buf, cap) : MP_ENOMEM;
    }
    free(j);
    if (rc < 0)
        return rc == MP_ENOMEM ? rc : MP_EINVAL;
    e->jid = buf;
    e->node = node;
    const mp_xnode *x = mp_xnode_child(enable, MP_NS_DATA, "x");
    if (x && (rc = read_options(x, e)) < 0) {
        mp_buf_free(&e->options);
        return rc;
    }
    return 0;
}

/* Bytes of s to keep so that at most max are sent and no UTF-8 sequence is cut. */
static size_t
utf8_cut(const char *s, size_t len, size_t max)
{
    if (len <= max)
        return len;
    size_t n = max;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--;
    return n;
}

int
mp_push_payload(mp_buf *out, const char *node, unsigned count, const char *sender, const char *body,
                const char *options, size_t olen)
{
    mp_arena a;
    mp_arena_init(&a, 2048);
    int rc = MP_ENOMEM;
    char num[16];
    snprintf(num, sizeof num, "%u", count);
    mp_xnode *ps = mp_xnode_new(&a, MP_NS_PUBSUB, "pubsub");
    mp_xnode *pub = mp_xnode_new(&a, MP_NS_PUBSUB, "publish");
    mp_xnode *item = mp_xnode_new(&a, MP_NS_PUBSUB, "item");
    mp_xnode *notif = mp_xnode_new(&a, MP_NS_PUSH, "notification");
    mp_xnode *x = mp_xnode_new(&a, MP_NS_DATA, "x");
    if (!ps || !pub || !item || !notif || !x || mp_xnode_set_attr(&a, pub, "node", node) < 0 ||
        mp_xnode_set_attr(&a, x, "type", "form") < 0)
        goto out;
    mp_xnode_append(ps, pub);
    mp_xnode_append(pub, item);
    mp_xnode_append(item, notif);
    mp_xnode_append(notif, x);
    if (!mp_form_field_n(&a, x, "FORM_TYPE", "hidden", NULL, MP_PUSH_SUMMARY,
                         strlen(MP_PUSH_SUMMARY)) ||
        !mp_form_field_n(&a, x, "message-count", NULL, NULL, num, strlen(num)) ||
        (sender &&
         !mp_form_field_n(&a, x, "last-message-sender", NULL, NULL, sender, strlen(sender))) ||
        (body && !mp_form_field_n(&a, x, "last-message-body", NULL, NULL, body,
                                  utf8_cut(body, strlen(body), MP_PUSH_BODY_MAX))))
        goto out;
    rc = mp_xnode_serialize(out, ps, "jabber:client");
    if (rc == 0 && olen > 0) {
        /* the stored form goes in as it was serialized, before </pubsub> */
        static const char end[] = "</pubsub>";
        size_t el = sizeof end - 1;
        if (out->len < el || memcmp(out->data + out->len - el, end, el) != 0) {
            rc = MP_EINVAL;
            goto out;
        }
        out->len -= el;
        rc = mp_buf_puts(out, "<publish-options>");
        rc |= mp_buf_append(out, options, olen);
        rc |= mp_buf_puts(out, "</publish-options></pubsub>");
        rc = rc < 0 ? MP_ENOMEM : 0;
    }
out:
    mp_arena_free(&a);
    return rc;
}

const char *
mp_push_message_text(const mp_xnode *message, int *encrypted)
{
    static const char *const enc_ns[] = {
        "eu.siacs.conversations.axolotl", /* OMEMO (XEP-0384, legacy) */
        "urn:xmpp:omemo:2",               /* OMEMO */
        "urn:xmpp:openpgp:0",             /* XEP-0373 */
        "jabber:x:encrypted",             /* XEP-0027 */
    };
    *encrypted = 0;
    for (const mp_xnode *c = message->children; c; c = c->next)
        for (size_t i = 0; i < sizeof enc_ns / sizeof enc_ns[0]; i++)
            if (strcmp(c->ns, enc_ns[i]) == 0 &&
                (strcmp(c->name, "encrypted") == 0 || strcmp(c->name, "openpgp") == 0 ||
                 strcmp(c->name, "x") == 0))
                *encrypted = 1;
    const mp_xnode *body = mp_xnode_child(message, message->ns, "body");
    if (body && body->text_len > 0)
        return body->text;
    return *encrypted ? "" : NULL;
}
