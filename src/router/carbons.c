/* Message Carbons (XEP-0280) on the routing path; see carbons.h. */
#include "router/carbons.h"
#include "router/core_int.h"
#include "router/csi.h"
#include "router/privacy.h"
#include "base/err.h"
#include "base/log.h"
#include "xml/escape.h"
#include "xml/framer.h"

#include <string.h>

#define NS_CHATSTATES "http://jabber.org/protocol/chatstates"
#define NS_RECEIPTS "urn:xmpp:receipts"
#define NS_MARKERS "urn:xmpp:chat-markers:0"
#define NS_MAM_PREFIX "urn:xmpp:mam:"

static int
type_is(const char *type, size_t len, const char *what)
{
    size_t n = strlen(what);
    return len == n && memcmp(type, what, n) == 0;
}

int
mp_carbons_eligible(const mp_xnode *msg, const char *type, size_t type_len)
{
    int chat = type_is(type, type_len, "chat");
    /* §6.1: errors, groupchat and headlines are never copied; nor are types nobody defined. */
    if (!chat && type_len && !type_is(type, type_len, "normal"))
        return 0;
    int im = chat;
    for (const mp_xnode *c = msg->children; c; c = c->next) {
        if (strcmp(c->ns, MP_NS_CARBONS) == 0)
            return 0; /* <private/> (§8), or a carbon itself (<received/>, <sent/>) */
        if (strcmp(c->ns, MP_NS_HINTS) == 0 &&
            (strcmp(c->name, "no-copy") == 0 || strcmp(c->name, "private") == 0))
            return 0; /* XEP-0334 §4.2 */
        if (strncmp(c->ns, NS_MAM_PREFIX, strlen(NS_MAM_PREFIX)) == 0 &&
            strcmp(c->name, "result") == 0)
            return 0; /* an archive query result is for the session that asked */
        if ((strcmp(c->ns, MP_NS_CLIENT) == 0 && strcmp(c->name, "body") == 0) ||
            strcmp(c->ns, NS_CHATSTATES) == 0 || strcmp(c->ns, NS_RECEIPTS) == 0 ||
            strcmp(c->ns, NS_MARKERS) == 0)
            im = 1; /* §6.1: a body, or a payload of instant messaging */
    }
    return im;
}

/* Length of the element name at the start of bytes ("<message" is 8), 0 when bytes do not
 * start with <message followed by an attribute, '>' or '/>'. */
static size_t
message_name_end(const char *bytes, size_t len)
{
    static const char open[] = "<message";
    size_t n = sizeof open - 1;
    if (len < n + 2 || memcmp(bytes, open, n) != 0)
        return 0;
    char c = bytes[n];
    return c == ' ' || c == '>' || c == '/' || c == '\t' || c == '\n' || c == '\r' ? n : 0;
}

/* Nonzero when the start tag at bytes declares a default namespace itself. */
static int
declares_default_ns(const char *bytes, size_t len)
{
    char quote = 0;
    for (size_t i = 0; i < len; i++) {
        char c = bytes[i];
        if (quote) {
            if (c == quote)
                quote = 0;
            continue;
        }
        if (c == '\'' || c == '"')
            quote = c;
        else if (c == '>')
            return 0;
        else if ((c == ' ' || c == '\t' || c == '\n' || c == '\r') && len - i > 7 &&
                 memcmp(bytes + i + 1, "xmlns", 5) == 0 &&
                 (bytes[i + 6] == '=' || bytes[i + 6] == ' '))
            return 1;
    }
    return 0;
}

int
mp_carbons_wrap(mp_buf *out, int dir, const char *bare, size_t bare_len, const char *full,
                size_t full_len, const char *type, size_t type_len, const char *bytes, size_t len)
{
    size_t n = message_name_end(bytes, len);
    if (!n)
        return MP_EINVAL;
    int rc = mp_buf_puts(out, "<message from='");
    rc |= mp_xml_escape_attr(out, bare, bare_len);
    rc |= mp_buf_puts(out, "' to='");
    rc |= mp_xml_escape_attr(out, full, full_len);
    rc |= mp_buf_puts(out, "'");
    if (type_len) {
        rc |= mp_buf_puts(out, " type='");
        rc |= mp_xml_escape_attr(out, type, type_len);
        rc |= mp_buf_puts(out, "'");
    }
    rc |= mp_buf_printf(out, "><%s xmlns='" MP_NS_CARBONS "'><forwarded xmlns='" MP_NS_FORWARD "'>",
                        dir == MP_CARBONS_SENT ? "sent" : "received");
    /* The routed bytes inherit jabber:client from the stream; inside <forwarded/> they would
     * inherit urn:xmpp:forward:0, so the namespace is declared on the copy (XEP-0297 §3). */
    rc |= mp_buf_append(out, bytes, n);
    if (!declares_default_ns(bytes, len))
        rc |= mp_buf_puts(out, " xmlns='" MP_NS_CLIENT "'");
    rc |= mp_buf_append(out, bytes + n, len - n);
    rc |= mp_buf_printf(out, "</forwarded></%s></message>",
                        dir == MP_CARBONS_SENT ? "sent" : "received");
    return rc < 0 ? MP_ENOMEM : 0;
}

/* ---- hooks ---- */

int
mp_carbons_set(mp_core *core, uint64_t conn, int on)
{
    mp_cstream *s = mp_core_stream(core, conn);
    if (!s || s->state != CS_BOUND)
        return MP_ENOTFOUND;
    if (on)
        s->carbons |= MP_CARBONS_ON;
    else
        s->carbons &= (uint8_t)~MP_CARBONS_ON;
    mp_debug("conn %016llx: carbons %s for %s", (unsigned long long)conn, on ? "on" : "off",
             s->full);
    return 0;
}

void
mp_carbons_mark(mp_cstream *r)
{
    r->carbons |= MP_CARBONS_GOT;
}

/* A resource of the account that wants a copy: carbons on, not the session the message came
 * from, and not one that received the message itself. */
static int
wants_copy(const mp_cstream *r, const mp_cstream *except)
{
    return r != except && (r->carbons & (MP_CARBONS_ON | MP_CARBONS_GOT)) == MP_CARBONS_ON;
}

static void
clear_marks(mp_user *u)
{
    for (mp_cstream *r = u->resources; r; r = r->next_res)
        r->carbons &= (uint8_t)~MP_CARBONS_GOT;
}

/* Parse the message and check its eligibility: only when somebody wants a copy. */
static int
eligible(mp_core *core, const mp_frame *f, const char *bytes, size_t len)
{
    mp_xnode *el = NULL;
    if (mp_xml_parse(core->parser, &core->arena, MP_NS_CLIENT, bytes, len, &el) < 0)
        return 0;
    return mp_carbons_eligible(el, mp_frame_type(f), f->type_len);
}

/* Send a carbon of bytes to every resource of u that wants one (except `except`), unless
 * its privacy list denies messages from peer. */
static void
copy_to(mp_core *core, mp_user *u, const mp_cstream *except, int dir, const mp_frame *f,
        const char *bytes, size_t len, const char *peer, size_t peer_len)
{
    mp_buf b = {0};
    for (mp_cstream *r = u->resources; r; r = r->next_res) {
        if (!wants_copy(r, except))
            continue;
        /* XEP-0016: the copy reaches r exactly when the original would have. */
        if (mp_privacy_blocks(core, r, MP_PRIV_MESSAGE, peer, peer_len))
            continue;
        b.len = 0;
        int rc = mp_carbons_wrap(&b, dir, u->bare, u->bare_len, r->full, r->full_len,
                                 mp_frame_type(f), f->type_len, bytes, len);
        if (rc < 0) {
            mp_warn("carbons: cannot copy a message for %s: %s", r->full, mp_strerror(rc));
            break;
        }
        core->stats.stanzas_routed++;
        mp_csi_send(core, r, b.data, b.len);
    }
    mp_buf_free(&b);
}

void
mp_carbons_sent(mp_core *core, mp_cstream *s, const mp_frame *f, mp_user *u)
{
    mp_user *own = s->user;
    /* To one's own account: the other resources hear of it through <received/> copies. */
    if (!own || own == u)
        return;
    int any = 0;
    for (mp_cstream *r = own->resources; r && !any; r = r->next_res)
        any = wants_copy(r, s);
    if (!any || !eligible(core, f, mp_frame_payload(f), f->payload_len))
        return;
    /* The copy comes from the account itself (§7): lists are checked against its bare JID. */
    copy_to(core, own, s, MP_CARBONS_SENT, f, mp_frame_payload(f), f->payload_len, own->bare,
            own->bare_len);
}

void
mp_carbons_received(mp_core *core, mp_cstream *from, const mp_frame *f, const char *bytes,
                    size_t len, mp_user *u, mp_cstream *got)
{
    if (!u)
        return;
    if (got)
        mp_carbons_mark(got);
    int any = 0;
    for (mp_cstream *r = u->resources; r && !any; r = r->next_res)
        any = wants_copy(r, from);
    if (any && eligible(core, f, bytes, len))
        copy_to(core, u, from, MP_CARBONS_RECEIVED, f, bytes, len, from->full, from->full_len);
    clear_marks(u);
}
