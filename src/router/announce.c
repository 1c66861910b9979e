/* Announcements to the online users of a host. Only <subject/> and <body/> travel: the
 * announcement is the server's message, not a copy of the sender's stanza with whatever
 * extensions it carried. */
#include "router/announce.h"
#include "router/acl.h"
#include "base/err.h"
#include "base/log.h"
#include "xml/escape.h"
#include "xml/framer.h"

#include <string.h>

#define NS_CLIENT "jabber:client"
#define ONLINE "announce/online"

static int
is_online_address(const mp_jid *to)
{
    return to->resource_len == strlen(ONLINE) &&
           memcmp(to->resource, ONLINE, to->resource_len) == 0;
}

static void
refuse(mp_core *core, mp_cstream *s, const mp_frame *f, const char *etype, const char *cond)
{
    mp_route_error(core, s, MP_EL_MESSAGE, mp_frame_to(f), f->to_len,
                   f->id_len ? mp_frame_id(f) : NULL, f->id_len, etype, cond);
}

/* <message from='host' type='headline'>subjects and bodies</message>, without 'to'. */
static int
build(mp_core *core, const mp_frame *f, const mp_jid *to, mp_buf *b)
{
    mp_xnode *el = NULL;
    int rc = mp_xml_parse(core->parser, &core->arena, NS_CLIENT, mp_frame_payload(f),
                          f->payload_len, &el);
    if (rc < 0)
        return rc;
    mp_buf_puts(b, "<message from='");
    mp_xml_escape_attr(b, to->domain, to->domain_len);
    mp_buf_puts(b, "' type='headline'>");
    int n = 0;
    for (const mp_xnode *c = el->children; c; c = c->next) {
        if (strcmp(c->ns, NS_CLIENT) != 0 ||
            (strcmp(c->name, "subject") != 0 && strcmp(c->name, "body") != 0))
            continue;
        if ((rc = mp_xnode_serialize(b, c, NS_CLIENT)) < 0)
            return rc;
        n++;
    }
    if (n == 0)
        return MP_EINVAL;
    return mp_buf_puts(b, "</message>");
}

/* Every available resource of every account of the host addressed. */
static int
deliver_all(mp_core *core, const mp_jid *to, const mp_buf *b)
{
    int n = 0;
    mp_htab *t = &core->users;
    for (size_t i = 0; i < t->nbuckets; i++) {
        for (mp_hnode *h = t->buckets[i]; h; h = h->next) {
            mp_user *u = mp_container_of(h, mp_user, by_bare);
            const char *at = memchr(u->bare, '@', u->bare_len);
            size_t dl = at ? u->bare_len - (size_t)(at + 1 - u->bare) : 0;
            if (!at || dl != to->domain_len || memcmp(at + 1, to->domain, dl) != 0)
                continue;
            for (mp_cstream *r = u->resources; r; r = r->next_res) {
                if (!r->available)
                    continue;
                mp_deliver_to(core, r, b->data, b->len, r->full, r->full_len);
                n++;
            }
        }
    }
    return n;
}

int
mp_announce_route(mp_core *core, mp_cstream *s, const mp_frame *f, const mp_jid *to)
{
    if (to->node_len || !is_online_address(to))
        return 0;
    if (mp_frame_type_is(f, "error"))
        return 1; /* never answer an error with an error */
    if (!mp_acl_allows(core, MP_ACL_SEND_ALERTS, s->full)) {
        mp_info("conn %016llx: %s may not send announcements (acl.send_alerts)",
                (unsigned long long)s->conn, s->full);
        refuse(core, s, f, "auth", "forbidden");
        return 1;
    }
    mp_buf b = {0};
    int rc = build(core, f, to, &b);
    if (rc == MP_EINVAL) {
        refuse(core, s, f, "modify", "bad-request"); /* nothing to announce */
    } else if (rc < 0) {
        refuse(core, s, f, "wait", "internal-server-error");
    } else {
        int n = deliver_all(core, to, &b);
        mp_info("announcement from %s to %d session(s) of %.*s", s->full, n, (int)to->domain_len,
                to->domain);
    }
    mp_buf_free(&b);
    return 1;
}
