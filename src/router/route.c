/* Routing between local sessions by RFC 6120 §10 and RFC 6121 §8. A stanza is routed on
 * the attributes the mux extracted; its bytes are passed on as they came (already stamped
 * with the sender's full JID), never re-parsed. */
#include "router/core_int.h"
#include "router/amp.h"
#include "router/archive.h"
#include "router/announce.h"
#include "router/carbons.h"
#include "router/component.h"
#include "router/csi.h"
#include "router/privacy.h"
#include "magpie/module.h"
#include "base/config.h"
#include "base/err.h"
#include "base/log.h"
#include "xml/escape.h"
#include "xml/framer.h"
#include "xmpp/jid.h"

#include <stdlib.h>
#include <string.h>

#define NS_STANZAS "urn:ietf:params:xml:ns:xmpp-stanzas"

static const char *const kind_names[] = {"", "message", "presence", "iq"};

void
mp_route_error(mp_core *core, mp_cstream *to, int el_kind, const char *from_attr, size_t from_len,
               const char *id, size_t id_len, const char *etype, const char *cond)
{
    mp_buf *b = &core->scratch;
    b->len = 0;
    mp_buf_printf(b, "<%s type='error'", kind_names[el_kind]);
    if (from_attr && from_len) {
        mp_buf_puts(b, " from='");
        mp_xml_escape_attr(b, from_attr, from_len);
        mp_buf_puts(b, "'");
    }
    mp_buf_puts(b, " to='");
    mp_xml_escape_attr(b, to->full, to->full_len);
    mp_buf_puts(b, "'");
    if (id) {
        mp_buf_puts(b, " id='");
        mp_xml_escape_attr(b, id, id_len);
        mp_buf_puts(b, "'");
    }
    mp_buf_printf(b, "><error type='%s'><%s xmlns='" NS_STANZAS "'/></error></%s>", etype, cond,
                  kind_names[el_kind]);
    if (b->data)
        mp_core_send(core, to, b->data, b->len);
}

static void
bounce(mp_core *core, mp_cstream *from, const mp_frame *f, const char *etype, const char *cond)
{
    if (mp_frame_type_is(f, "error") || (f->el_kind == MP_EL_IQ && mp_frame_type_is(f, "result")))
        return; /* never answer an error with an error */
    mp_route_error(core, from, f->el_kind, mp_frame_to(f), f->to_len,
                   f->id_len ? mp_frame_id(f) : NULL, f->id_len, etype, cond);
}

static void
deliver(mp_core *core, mp_cstream *to, const mp_frame *f)
{
    core->stats.stanzas_routed++;
    mp_csi_send(core, to, mp_frame_payload(f), f->payload_len); /* XEP-0352 */
}

/* RFC 6121 §8.5.2: a message to a bare JID goes to the available resources of highest
 * non-negative priority (all of them for headlines). Returns how many got it. */
int
mp_route_best_priority(const mp_user *u, const mp_cstream *except)
{
    int best = -1;
    for (const mp_cstream *r = u ? u->resources : NULL; r; r = r->next_res)
        if (r != except && r->available && r->priority > best)
            best = r->priority;
    return best;
}

static int
deliver_bare_message(mp_core *core, mp_cstream *from, mp_user *u, const mp_frame *f)
{
    int n = 0, blocked = 0;
    int headline = mp_frame_type_is(f, "headline");
    int best = mp_route_best_priority(u, NULL);
    if (best < 0)
        return 0;
    for (mp_cstream *r = u->resources; r; r = r->next_res) {
        if (mp_route_gets_bare(r, best, headline, NULL)) {
            if (mp_privacy_blocks(core, r, MP_PRIV_MESSAGE, from->full, from->full_len)) {
                blocked = 1;
                continue;
            }
            deliver(core, r, f);
            mp_carbons_mark(r); /* XEP-0280 §6: no carbon for it */
            n++;
        }
    }
    return n || !blocked ? n : -1; /* -1: the privacy lists refused it */
}

static void
route_to_user(mp_core *core, mp_cstream *from, const mp_frame *f, const mp_jid *to)
{
    char bare[2 * MP_JID_PART_MAX + 2];
    int blen = mp_jid_bare(to, bare, sizeof bare);
    mp_user *u = blen > 0 ? mp_core_user(core, bare, (size_t)blen) : NULL;
    int kind = f->el_kind;
    if (kind == MP_EL_MESSAGE && mp_amp_route(core, from, f, to, u))
        return; /* XEP-0079 rules dropped, bounced or refused it */
    if (kind == MP_EL_MESSAGE)
        mp_carbons_sent(core, from, f, u); /* XEP-0280 §7 */
    if (kind == MP_EL_MESSAGE)
        f = mp_archive_route(core, from, f, to, u); /* XEP-0313; with its stanza-id */
    if (to->resource_len) {
        for (mp_cstream *r = u ? u->resources : NULL; r; r = r->next_res) {
            if (r->full_len - r->bare_len - 1 == to->resource_len &&
                memcmp(r->full + r->bare_len + 1, to->resource, to->resource_len) == 0) {
                if (mp_privacy_blocks(core, r, kind == MP_EL_IQ ? MP_PRIV_IQ : MP_PRIV_MESSAGE,
                                      from->full, from->full_len)) {
                    bounce(core, from, f, "cancel", "service-unavailable"); /* XEP-0016 */
                    return;
                }
                deliver(core, r, f);
                if (kind == MP_EL_MESSAGE) /* XEP-0280 §6 */
                    mp_carbons_received(core, from, f, mp_frame_payload(f), f->payload_len, u, r);
                return;
            }
        }
        /* RFC 6121 §8.5.3.2: no such resource. */
        if (kind == MP_EL_PRESENCE)
            return;
        if (kind == MP_EL_IQ || mp_frame_type_is(f, "groupchat")) {
            bounce(core, from, f, "cancel", "service-unavailable");
            return;
        }
    }
    switch (kind) {
    case MP_EL_MESSAGE:
        if (mp_frame_type_is(f, "error"))
            return;
        if (mp_frame_type_is(f, "groupchat")) {
            bounce(core, from, f, "cancel", "service-unavailable");
            return;
        }
        int n = u ? deliver_bare_message(core, from, u, f) : 0;
        if (n > 0) /* XEP-0280 §6: the resources that did not get it get a carbon */
            mp_carbons_received(core, from, f, mp_frame_payload(f), f->payload_len, u, NULL);
        if (n > 0 || mp_frame_type_is(f, "headline"))
            return;
        /* XEP-0016 §2.13: refused by the lists of the resources, or offline by the default */
        if (n < 0 || mp_privacy_blocks_account(core, u, to->domain, to->node, MP_PRIV_MESSAGE,
                                               from->full, from->full_len)) {
            bounce(core, from, f, "cancel", "service-unavailable");
            return;
        }
        /* No available resource (RFC 6121 §8.5.2.2): keep it for the account (XEP-0160). */
        switch (mp_offline_store(core, to->domain, to->node, f)) {
        case 0:
            return;
        case MP_ELIMIT:
            bounce(core, from, f, "wait", "resource-constraint");
            return;
        case MP_ENOTFOUND:
            bounce(core, from, f, "cancel", "service-unavailable");
            return;
        default:
            bounce(core, from, f, "wait", "internal-server-error");
            return;
        }
    case MP_EL_IQ:
        if (mp_privacy_blocks_account(core, u, to->domain, to->node, MP_PRIV_IQ, from->full,
                                      from->full_len) ||
            mp_iq_dispatch(core, from, f, MP_TARGET_ACCOUNT, bare) != 0)
            bounce(core, from, f, "cancel", "service-unavailable");
        return;
    default:
        return;
    }
}

void
mp_route_stanza(mp_core *core, mp_cstream *s, const mp_frame *f)
{
    int kind = f->el_kind;
    if (kind == MP_EL_PRESENCE) {
        mp_presence_outbound(core, s, f);
        return;
    }
    if (kind == MP_EL_IQ) {
        if (!f->id_len || !(mp_frame_type_is(f, "get") || mp_frame_type_is(f, "set") ||
                            mp_frame_type_is(f, "result") || mp_frame_type_is(f, "error"))) {
            bounce(core, s, f, "modify", "bad-request");
            return;
        }
    }
    if (f->to_len == 0) {
        switch (kind) {
        case MP_EL_IQ:
            if (mp_iq_dispatch(core, s, f, MP_TARGET_ACCOUNT, "") != 0)
                bounce(core, s, f, "cancel", "service-unavailable");
            return;
        default: {
            /* RFC 6120 §10.3.1: a message without 'to' is for the sender's own bare JID. */
            mp_jid self;
            if (mp_jid_prep(s->full, s->bare_len, &self) == 0)
                route_to_user(core, s, f, &self);
            return;
        }
        }
    }
    if (mp_privacy_outgoing(core, s, f))
        return; /* XEP-0191 §3.3: the user blocked the recipient */
    mp_jid to;
    if (mp_jid_prep(mp_frame_to(f), f->to_len, &to) < 0) {
        if (kind != MP_EL_PRESENCE)
            bounce(core, s, f, "modify", "jid-malformed");
        return;
    }
    const mp_component *c = mp_component_find(core, to.domain, to.domain_len);
    if (c) { /* conference.<host>, pubsub.<host>, ... */
        mp_component_route(core, c, s, f, &to);
        return;
    }
    if (!mp_config_is_host(core->cfg, to.domain, to.domain_len)) {
        /* Federation is not there yet: the remote server is unreachable from here. */
        if (kind != MP_EL_PRESENCE)
            bounce(core, s, f, "cancel", "remote-server-not-found");
        return;
    }
    if (to.node_len) {
        route_to_user(core, s, f, &to);
        return;
    }
    if (kind == MP_EL_IQ && !to.resource_len) {
        if (mp_iq_dispatch(core, s, f, MP_TARGET_HOST, to.domain) != 0)
            bounce(core, s, f, "cancel", "service-unavailable");
        return;
    }
    if (kind == MP_EL_MESSAGE && to.resource_len && mp_announce_route(core, s, f, &to))
        return; /* <host>/announce/online */
    if (kind == MP_EL_IQ || (kind == MP_EL_MESSAGE && to.resource_len))
        bounce(core, s, f, "cancel", "service-unavailable");
    /* Messages and presence to the server itself are accepted and dropped. */
}
