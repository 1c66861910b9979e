/* libFuzzer target for the stream framer. The router trusts the framer's canonical bytes, so
 * the invariant checked here is: every element delivered re-parses, alone, as well-formed
 * namespace-correct XML with the same name and namespace, with the bound JID stamped on
 * stanzas. The first input byte picks where the input is split into two reads. */
#include <expat.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "base/err.h"
#include "xml/framer.h"

#define STAMP "fuzz@example.com/r"

typedef struct check {
    const mp_element *el;
    int depth, top, bad;
} check;

static void XMLCALL
chk_start(void *ud, const XML_Char *name, const XML_Char **atts)
{
    check *c = ud;
    if (c->depth++ != 1)
        return;
    c->top++;
    const char *sep = strchr(name, '\1');
    const char *local = sep ? sep + 1 : name;
    size_t ns_len = sep ? (size_t)(sep - name) : 0;
    if (strcmp(local, c->el->name) != 0 || strlen(c->el->ns) != ns_len ||
        memcmp(c->el->ns, name, ns_len) != 0)
        c->bad = 1;
}

static void XMLCALL
chk_end(void *ud, const XML_Char *name)
{
    check *c = ud;
    c->depth--;
}

static void XMLCALL
chk_forbidden(void *ud)
{
    ((check *)ud)->bad = 1;
}

static void XMLCALL
chk_comment(void *ud, const XML_Char *data)
{
    chk_forbidden(ud);
}

static void XMLCALL
chk_pi(void *ud, const XML_Char *target, const XML_Char *data)
{
    chk_forbidden(ud);
}

/* Canonical bytes in a synthetic stream: exactly one element, nothing else. */
static void
reparse(const mp_element *el)
{
    static const char open[] = "<s xmlns='jabber:client'>", close[] = "</s>";
    check c = {.el = el};
    XML_Parser p = XML_ParserCreateNS("UTF-8", '\1');
    if (!p)
        return; /* out of memory is not a finding */
    XML_SetUserData(p, &c);
    XML_SetElementHandler(p, chk_start, chk_end);
    XML_SetCommentHandler(p, chk_comment);
    XML_SetProcessingInstructionHandler(p, chk_pi);
    int ok = XML_Parse(p, open, (int)strlen(open), XML_FALSE) == XML_STATUS_OK &&
             XML_Parse(p, el->bytes, (int)el->len, XML_FALSE) == XML_STATUS_OK &&
             XML_Parse(p, close, (int)strlen(close), XML_TRUE) == XML_STATUS_OK;
    XML_ParserFree(p);
    if (!ok || c.bad || c.top != 1)
        __builtin_trap();
}

static int
on_open(void *ud, const mp_stream_header *h)
{
    return 0;
}

static int
on_element(void *ud, const mp_element *el)
{
    mp_framer *f = ud;
    if (el->len == 0 || el->bytes[0] != '<' || el->raw_len > f->lim.max_element_bytes)
        __builtin_trap();
    if ((el->to && memchr(el->to, '\0', el->to_len)) ||
        (el->id && memchr(el->id, '\0', el->id_len)) ||
        (el->type && memchr(el->type, '\0', el->type_len)))
        __builtin_trap();
    if (el->kind != MP_EL_OTHER) {
        /* a stanza carries the bound JID as its first attribute, whatever the client sent */
        size_t n = strlen(el->name);
        static const char stamp[] = " from='" STAMP "'";
        if (strcmp(el->ns, MP_NS_CLIENT) != 0 || el->len < 1 + n + sizeof stamp - 1 ||
            memcmp(el->bytes + 1 + n, stamp, sizeof stamp - 1) != 0)
            __builtin_trap();
    }
    reparse(el);
    /* exercise the STARTTLS path: a reset from inside the callback */
    if (strcmp(el->name, "starttls") == 0) {
        if (mp_framer_reset(f) < 0)
            __builtin_trap();
        return 1;
    }
    return 0;
}

static void
on_close(void *ud)
{
}

static const mp_framer_cb cbs = {on_open, on_element, on_close};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t split = (size_t)data[0] * 37;
    data++;
    size--;
    if (split > size)
        split = size ? split % (size + 1) : 0;
    const mp_framer_limits lim = {.max_element_bytes = 8192, .max_elements = 32, .max_depth = 16};
    mp_framer f;
    if (mp_framer_init(&f, MP_NS_CLIENT, &lim, &cbs, &f) < 0)
        return 0;
    if (mp_framer_set_from(&f, STAMP, strlen(STAMP)) < 0)
        goto out;
    const char *p = (const char *)data;
    size_t ends[2] = {split, size}, at = 0;
    for (int i = 0; i < 2; i++) {
        while (at < ends[i]) {
            size_t used = 0;
            int rc = mp_framer_feed(&f, p + at, ends[i] - at, &used);
            if (used > ends[i] - at)
                __builtin_trap();
            if (rc == MP_EINVAL) {
                if (!mp_framer_error(&f))
                    __builtin_trap();
                goto out;
            }
            if (rc == 0 && used != ends[i] - at)
                __builtin_trap();
            at += used; /* after STARTTLS the rest is the new stream */
            /* The mux frees the parser of a resting stream; the next piece rebuilds it. */
            if (data[-1] & 1)
                mp_framer_hibernate(&f);
        }
    }
out:
    mp_framer_free(&f);
    return 0;
}
