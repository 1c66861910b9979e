/* libFuzzer target for Advanced Message Processing (XEP-0079): the rule parser, the
 * DateTime parser of expire-at, rule matching and the replies built from the sender's
 * values.
 *
 * The input is a <message/> with an <amp/> (or an <amp/> alone). Its rules are judged against
 * every outcome the router can predict; each rule met, and each refused request, gets its
 * reply built with the message's own from/to/id and the amp's from/to, and every reply must
 * parse again as one well-formed element (those values come from the client: an escaping bug
 * would let it forge stanzas). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/arena.h"
#include "base/buf.h"
#include "base/err.h"
#include "router/amp.h"
#include "xml/tree.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static mp_xml_parser *parser;

static void
must_parse(mp_arena *a, const mp_buf *b)
{
    mp_xnode *n = NULL;
    if (mp_xml_parse(parser, a, "jabber:client", b->data, b->len, &n) != 0 ||
        strcmp(n->name, "message") != 0)
        __builtin_trap();
}

static const char *
attr_or(const mp_xnode *n, const char *name, const char *dflt)
{
    const char *v = n ? mp_xnode_attr(n, name) : NULL;
    return v ? v : dflt;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!parser && !(parser = mp_xml_parser_new()))
        abort();
    /* The DateTime parser on the raw bytes as one C string. */
    if (size < 64) {
        char s[64];
        memcpy(s, data, size);
        s[size] = '\0';
        int64_t t;
        mp_amp_parse_datetime(s, &t);
    }
    mp_arena arena;
    mp_arena_init(&arena, 4096);
    mp_buf b = {0};
    mp_xnode *n = NULL, *msg = NULL, *amp = NULL;
    if (mp_xml_parse(parser, &arena, "jabber:client", (const char *)data, size, &n) != 0)
        goto out;
    if (strcmp(n->name, "message") == 0) {
        msg = n;
        amp = mp_xnode_child(n, MP_NS_AMP, "amp");
    } else if (strcmp(n->ns, MP_NS_AMP) == 0 && strcmp(n->name, "amp") == 0) {
        amp = n;
    }
    if (!amp)
        goto out;
    mp_amp a;
    if (mp_amp_parse(&arena, amp, &a) < 0)
        goto out;
    mp_amp_reply r = {.server = "example.com",
                      .to = attr_or(msg, "from", "alice@example.com/fuzz"),
                      .id = attr_or(msg, "id", NULL),
                      .orig_from = attr_or(amp, "from", NULL),
                      .orig_to = attr_or(amp, "to", NULL)};
    if (a.fault) {
        if (mp_amp_build_reject(&b, &r, &a) == 0)
            must_parse(&arena, &b);
        goto out;
    }
    static const int delivers[] = {MP_AMP_DIRECT, MP_AMP_STORED, MP_AMP_NONE};
    static const int64_t nows[] = {0, 1072915200, 4107542400LL};
    for (size_t d = 0; d < 3; d++) {
        for (int bits = 0; bits < 16; bits++) {
            mp_amp_outcome o = {.deliver = delivers[d],
                                .addressed_res = bits & 1,
                                .exact = (bits >> 1) & 1,
                                .other = (bits >> 2) & 1,
                                .at_delivery = (bits >> 3) & 1,
                                .now = nows[(size_t)bits % 3]};
            int i = mp_amp_match(&a, &o);
            if (i < -1 || i >= (int)a.nrules)
                __builtin_trap();
            if (i < 0)
                continue;
            if (!mp_amp_condition_met(&a, &a.rules[i], &o))
                __builtin_trap(); /* the rule chosen is one whose condition holds */
            for (int j = 0; j < i; j++)
                if (mp_amp_condition_met(&a, &a.rules[j], &o))
                    __builtin_trap(); /* first match wins */
            if (a.rules[i].act != MP_AMP_DROP && mp_amp_build_event(&b, &r, &a.rules[i]) == 0)
                must_parse(&arena, &b);
        }
    }
out:
    mp_buf_free(&b);
    mp_arena_free(&arena);
    return 0;
}
