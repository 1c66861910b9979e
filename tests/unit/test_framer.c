/* The stream framer: cutting a stream into top-level elements at any split of the input,
 * canonical bytes that re-parse to the same tree, `from` stamping, restricted XML, limits,
 * resets and stops (STARTTLS). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "xml/framer.h"

#define NS_SEP '\1'

#define HDR_BODY                                                                                   \
    "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "        \
    "to='example.com' version='1.0' xml:lang='en'>"
#define HDR "<?xml version='1.0'?>" HDR_BODY

static const mp_framer_limits big_limits = {
    .max_element_bytes = 65536, .max_elements = 1000, .max_depth = 32};

/* ---- recording callbacks ---- */

typedef struct rec {
    mp_framer *f;
    mp_buf log; /* every event, with canonical bytes, in order */
    int opens, closes, elements;
    char *el[16];
    size_t el_len[16];
    const char *stop_name; /* stop when an element with this name arrives */
    int reset_in_cb;       /* call mp_framer_reset from that callback (the mux does) */
    int stop_ret;          /* what to return then */
    int stop_open;         /* stop in stream_open */
    mp_stream_header hdr;  /* copies of the last header */
    char hdr_buf[5][64];
} rec;

static void
log_str(mp_buf *b, const char *tag, const char *s, size_t len)
{
    if (!s) {
        assert_int_equal(mp_buf_printf(b, " %s=-", tag), 0);
        return;
    }
    assert_int_equal(mp_buf_printf(b, " %s=[%.*s]", tag, (int)len, s), 0);
}

static const char *
keep(rec *r, int i, const char *s)
{
    if (!s)
        return NULL;
    snprintf(r->hdr_buf[i], sizeof r->hdr_buf[i], "%s", s);
    return r->hdr_buf[i];
}

static int
cb_open(void *ud, const mp_stream_header *h)
{
    rec *r = ud;
    r->opens++;
    r->hdr.to = keep(r, 0, h->to);
    r->hdr.from = keep(r, 1, h->from);
    r->hdr.version = keep(r, 2, h->version);
    r->hdr.lang = keep(r, 3, h->lang);
    r->hdr.id = keep(r, 4, h->id);
    assert_int_equal(mp_buf_printf(&r->log, "open to=%s version=%s lang=%s\n", h->to ? h->to : "-",
                                   h->version ? h->version : "-", h->lang ? h->lang : "-"),
                     0);
    return r->stop_open;
}

static int
cb_element(void *ud, const mp_element *el)
{
    rec *r = ud;
    assert_non_null(el->bytes);
    assert_non_null(el->ns);
    assert_non_null(el->name);
    if (r->elements < 16) {
        r->el[r->elements] = malloc(el->len + 1);
        assert_non_null(r->el[r->elements]);
        memcpy(r->el[r->elements], el->bytes, el->len);
        r->el[r->elements][el->len] = '\0';
        r->el_len[r->elements] = el->len;
    }
    r->elements++;
    assert_int_equal(mp_buf_printf(&r->log, "el kind=%d ns=%s name=%s raw=%zu", el->kind, el->ns,
                                   el->name, el->raw_len),
                     0);
    log_str(&r->log, "to", el->to, el->to_len);
    log_str(&r->log, "type", el->type, el->type_len);
    log_str(&r->log, "id", el->id, el->id_len);
    assert_int_equal(mp_buf_printf(&r->log, "\n%.*s\n", (int)el->len, el->bytes), 0);
    if (r->stop_name && strcmp(el->name, r->stop_name) == 0) {
        if (r->reset_in_cb)
            assert_int_equal(mp_framer_reset(r->f), 0);
        return r->stop_ret;
    }
    return 0;
}

static void
cb_close(void *ud)
{
    rec *r = ud;
    r->closes++;
    assert_int_equal(mp_buf_printf(&r->log, "close\n"), 0); /* printf keeps a NUL after */
}

static const mp_framer_cb cbs = {cb_open, cb_element, cb_close};

static void
rec_init(rec *r, mp_framer *f, const mp_framer_limits *lim)
{
    memset(r, 0, sizeof *r);
    r->f = f;
    assert_int_equal(mp_framer_init(f, MP_NS_CLIENT, lim, &cbs, r), 0);
}

static void
rec_clear(rec *r)
{
    for (int i = 0; i < 16 && i < r->elements; i++)
        free(r->el[i]);
    memset(r->el, 0, sizeof r->el);
    r->elements = r->opens = r->closes = 0;
    r->log.len = 0;
}

static void
rec_free(rec *r)
{
    rec_clear(r);
    mp_buf_free(&r->log);
    mp_framer_free(r->f);
}

static char *
log_copy(rec *r)
{
    char *s = strndup(r->log.data ? r->log.data : "", r->log.len);
    assert_non_null(s);
    return s;
}

/* Feed in pieces cut at the given offsets; returns the last return code. */
static int
feed_cuts(mp_framer *f, const char *data, size_t len, const size_t *cuts, int ncuts)
{
    size_t at = 0;
    for (int i = 0; i <= ncuts; i++) {
        size_t end = i < ncuts ? cuts[i] : len;
        size_t used;
        int rc = mp_framer_feed(f, data + at, end - at, &used);
        if (rc != 0)
            return rc;
        assert_int_equal(used, end - at);
        at = end;
    }
    return 0;
}

static int
feed_str(mp_framer *f, const char *s)
{
    size_t used;
    return mp_framer_feed(f, s, strlen(s), &used);
}

static int
feed_bytewise(mp_framer *f, const char *data, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        size_t used;
        int rc = mp_framer_feed(f, data + i, 1, &used);
        if (rc != 0)
            return rc;
        assert_int_equal(used, 1);
    }
    return 0;
}

/* ---- an independent view of a tree: expat again, signatures of the root's children ---- */

typedef struct sig {
    int depth;
    mp_buf cur, text;
    char *out[16];
    int n;
} sig;

static void
sig_flush(sig *s)
{
    if (!s->text.len)
        return;
    assert_int_equal(
        mp_buf_printf(&s->cur, "T(%zu:%.*s)", s->text.len, (int)s->text.len, s->text.data), 0);
    s->text.len = 0;
}

static void XMLCALL
sig_start(void *ud, const XML_Char *name, const XML_Char **atts)
{
    sig *s = ud;
    if (s->depth++ < 1)
        return;
    sig_flush(s);
    int n = 0;
    while (atts[n])
        n += 2;
    /* attributes sorted by expanded name: order and prefixes are not part of the tree */
    const XML_Char *sorted[64][2];
    assert_true(n / 2 <= 64);
    for (int i = 0; i < n / 2; i++) {
        int j = i;
        while (j > 0 && strcmp(sorted[j - 1][0], atts[2 * i]) > 0) {
            sorted[j][0] = sorted[j - 1][0];
            sorted[j][1] = sorted[j - 1][1];
            j--;
        }
        sorted[j][0] = atts[2 * i];
        sorted[j][1] = atts[2 * i + 1];
    }
    assert_int_equal(mp_buf_printf(&s->cur, "<%s", name), 0);
    for (int i = 0; i < n / 2; i++)
        assert_int_equal(
            mp_buf_printf(&s->cur, " %s=%zu:%s", sorted[i][0], strlen(sorted[i][1]), sorted[i][1]),
            0);
    assert_int_equal(mp_buf_puts(&s->cur, ">"), 0);
}

static void XMLCALL
sig_end(void *ud, const XML_Char *name)
{
    sig *s = ud;
    if (--s->depth < 1)
        return;
    sig_flush(s);
    assert_int_equal(mp_buf_puts(&s->cur, "</>"), 0);
    if (s->depth == 1) {
        assert_true(s->n < 16);
        s->out[s->n] = strndup(s->cur.data, s->cur.len);
        assert_non_null(s->out[s->n]);
        s->n++;
        s->cur.len = 0;
    }
}

static void XMLCALL
sig_text(void *ud, const XML_Char *t, int len)
{
    sig *s = ud;
    if (s->depth >= 2)
        assert_int_equal(mp_buf_append(&s->text, t, (size_t)len), 0);
}

/* Parse a whole document and return how many children of the root were recorded. */
static int
sig_parse(sig *s, const char *a, size_t alen, const char *b, size_t blen, const char *c)
{
    memset(s, 0, sizeof *s);
    XML_Parser p = XML_ParserCreateNS("UTF-8", NS_SEP);
    assert_non_null(p);
    XML_SetUserData(p, s);
    XML_SetElementHandler(p, sig_start, sig_end);
    XML_SetCharacterDataHandler(p, sig_text);
    int ok = XML_Parse(p, a, (int)alen, XML_FALSE) == XML_STATUS_OK &&
             XML_Parse(p, b, (int)blen, XML_FALSE) == XML_STATUS_OK &&
             XML_Parse(p, c, (int)strlen(c), XML_TRUE) == XML_STATUS_OK;
    if (!ok)
        fail_msg("re-parse failed: %s in %.*s%.*s%s", XML_ErrorString(XML_GetErrorCode(p)),
                 (int)alen, a, (int)blen, b, c);
    XML_ParserFree(p);
    mp_buf_free(&s->cur);
    mp_buf_free(&s->text);
    return s->n;
}

static void
sig_free(sig *s)
{
    for (int i = 0; i < s->n; i++)
        free(s->out[i]);
}

/* ---- a realistic client stream ---- */

#define M1                                                                                         \
    "<message to='juliet@example.com/balcony' type='chat' id='m1' from='evil@x'>"                  \
    "<body>Fish &amp; chips &lt;3 a > b <![CDATA[<b>bold</b> & ]]>more</body></message>"

static const char client_stream[] =
    HDR "\n" M1 " \n\t \r\n"
        "<presence xml:lang='fr' id=\"p1\"><show>away</show>"
        "<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='v'/></presence>\n"
        "<iq type='get' id='i1' to='example.com'><query xmlns='jabber:iq:roster' ver='1'>"
        "<item jid='a@b' name='A &quot;x&quot;&#9;y'><group>G\xc3\xa9</group></item></query>"
        "<x xmlns='jabber:x:data' type='form'><field var='f'><value>v</value></field></x></iq>"
        "<foo:bar xmlns:foo='urn:x' a='1'><foo:baz>t</foo:baz><plain/></foo:bar>"
        "<message xmlns:e='urn:ext' e:attr=\"it's\" to='romeo@example.net'>"
        "<body>hi\r\nthere</body></message>"
        "\n</stream:stream>";

static const char *const expected_el[] = {
    "<message to='juliet@example.com/balcony' type='chat' id='m1' from='evil@x'>"
    "<body>Fish &amp; chips &lt;3 a &gt; b &lt;b&gt;bold&lt;/b&gt; &amp; more</body></message>",
    "<presence xml:lang='fr' id='p1'><show>away</show>"
    "<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='v'/></presence>",
    "<iq type='get' id='i1' to='example.com'><query xmlns='jabber:iq:roster' ver='1'>"
    "<item jid='a@b' name='A &quot;x&quot;&#9;y'><group>G\xc3\xa9</group></item></query>"
    "<x xmlns='jabber:x:data' type='form'><field var='f'><value>v</value></field></x></iq>",
    "<bar xmlns='urn:x' a='1'><baz>t</baz><plain xmlns='jabber:client'/></bar>",
    "<message xmlns:a1='urn:ext' a1:attr='it&apos;s' to='romeo@example.net'>"
    "<body>hi\nthere</body></message>",
};

static void
test_client_stream(void **state)
{
    const char *data = client_stream;
    size_t len = strlen(data);
    mp_framer f;
    rec r;
    rec_init(&r, &f, &big_limits);
    assert_int_equal(feed_cuts(&f, data, len, NULL, 0), 0);
    assert_int_equal(r.opens, 1);
    assert_string_equal(r.hdr.to, "example.com");
    assert_string_equal(r.hdr.version, "1.0");
    assert_string_equal(r.hdr.lang, "en");
    assert_null(r.hdr.from);
    assert_null(r.hdr.id);
    assert_int_equal(r.closes, 1);
    assert_int_equal(r.elements, 5);
    for (int i = 0; i < 5; i++)
        assert_string_equal(r.el[i], expected_el[i]);
    char *whole = log_copy(&r);
    char want[256];
    snprintf(want, sizeof want,
             "el kind=1 ns=jabber:client name=message raw=%zu to=[juliet@example.com/balcony] "
             "type=[chat] id=[m1]\n",
             strlen(M1));
    assert_non_null(strstr(whole, want));
    assert_non_null(strstr(whole, "el kind=0 ns=urn:x name=bar "));
    assert_non_null(strstr(whole, "el kind=3 ns=jabber:client name=iq "));

    /* The same callbacks and bytes at every split into two pieces, and byte by byte. */
    for (size_t cut = 0; cut <= len; cut++) {
        mp_framer g;
        rec s;
        rec_init(&s, &g, &big_limits);
        assert_int_equal(feed_cuts(&g, data, len, &cut, 1), 0);
        if (strcmp(s.log.data, whole) != 0)
            fail_msg("split at %zu differs:\n%s", cut, s.log.data);
        rec_free(&s);
    }
    mp_framer g;
    rec s;
    rec_init(&s, &g, &big_limits);
    assert_int_equal(feed_bytewise(&g, data, len), 0);
    assert_string_equal(s.log.data, whole);
    rec_free(&s);

    /* The canonical bytes are the same tree as the original. */
    sig orig;
    assert_int_equal(sig_parse(&orig, data, len, "", 0, ""), 5);
    for (int i = 0; i < 5; i++) {
        sig canon;
        static const char open[] = "<s xmlns='jabber:client'>";
        assert_int_equal(sig_parse(&canon, open, strlen(open), r.el[i], r.el_len[i], "</s>"), 1);
        assert_string_equal(canon.out[0], orig.out[i]);
        sig_free(&canon);
    }
    sig_free(&orig);
    free(whole);
    rec_free(&r);
}

/* ---- stamping, attributes, kinds ---- */

static void
test_stamping(void **state)
{
    mp_framer f;
    rec r;
    rec_init(&r, &f, &big_limits);
    assert_int_equal(mp_framer_set_from(&f, "a@b/c", 5), 0);
    assert_int_equal(feed_str(&f, HDR "<message from='mallory@evil/x' to='d@e'><body/></message>"
                                      "<presence/>"
                                      "<iq type='set' id='1' from='x'><bind xmlns='urn:b' "
                                      "from='inner'/></iq>"
                                      "<r xmlns='urn:xmpp:sm:3' from='keep'/>"
                                      "<message xmlns='jabber:server' from='srv'/>"
                                      "<enable xmlns='urn:xmpp:sm:3'/>"),
                     0);
    assert_int_equal(r.elements, 6);
    assert_string_equal(r.el[0], "<message from='a@b/c' to='d@e'><body/></message>");
    assert_string_equal(r.el[1], "<presence from='a@b/c'/>");
    assert_string_equal(r.el[2], "<iq from='a@b/c' type='set' id='1'>"
                                 "<bind xmlns='urn:b' from='inner'/></iq>");
    assert_string_equal(r.el[3], "<r xmlns='urn:xmpp:sm:3' from='keep'/>");
    assert_string_equal(r.el[4], "<message xmlns='jabber:server' from='srv'/>");
    assert_string_equal(r.el[5], "<enable xmlns='urn:xmpp:sm:3'/>");
    rec_clear(&r);

    /* The stamped JID is escaped like any value; NULL clears. */
    assert_int_equal(mp_framer_set_from(&f, "a@b/it's&<", 10), 0);
    assert_int_equal(feed_str(&f, "<message/>"), 0);
    assert_string_equal(r.el[0], "<message from='a@b/it&apos;s&amp;&lt;'/>");
    assert_int_equal(mp_framer_set_from(&f, NULL, 0), 0);
    assert_int_equal(feed_str(&f, "<message from='z'/>"), 0);
    assert_string_equal(r.el[1], "<message from='z'/>");
    rec_free(&r);
}

static void
test_attributes_and_kinds(void **state)
{
    mp_framer f;
    rec r;
    rec_init(&r, &f, &big_limits);
#define K1 "<message to='a@b' type='chat' id='x&amp;y&lt;&apos;'><body to='no'/></message>"
#define K2 "<presence xmlns:p='urn:p' p:to='no' p:id='no'/>"
#define K3 "<iq type=''/>"
#define K4 "<message xmlns='jabber:server' to='s@t'/>"
#define K5 "<r xmlns='urn:xmpp:sm:3'/>"
#define K6 "<stream:features/>"
    assert_int_equal(feed_str(&f, HDR K1 "\n" K2 K3 K4 K5 K6), 0);
    assert_int_equal(r.elements, 6);
    char want[6][200];
    /* regression: to/type/id used to point into the escaped copy with the unescaped length */
    snprintf(want[0], 200,
             "el kind=1 ns=jabber:client name=message raw=%zu to=[a@b] "
             "type=[chat] id=[x&y<']\n",
             strlen(K1));
    snprintf(want[1], 200, "el kind=2 ns=jabber:client name=presence raw=%zu to=- type=- id=-\n",
             strlen(K2));
    snprintf(want[2], 200, "el kind=3 ns=jabber:client name=iq raw=%zu to=- type=[] id=-\n",
             strlen(K3));
    snprintf(want[3], 200,
             "el kind=0 ns=jabber:server name=message raw=%zu to=[s@t] type=- "
             "id=-\n",
             strlen(K4));
    snprintf(want[4], 200, "el kind=0 ns=urn:xmpp:sm:3 name=r raw=%zu to=- type=- id=-\n",
             strlen(K5));
    snprintf(want[5], 200,
             "el kind=0 ns=" MP_NS_STREAMS " name=features raw=%zu to=- type=- "
             "id=-\n",
             strlen(K6));
    for (int i = 0; i < 6; i++)
        if (!strstr(r.log.data, want[i]))
            fail_msg("missing %s in\n%s", want[i], r.log.data);
    assert_string_equal(r.el[1], "<presence xmlns:a1='urn:p' a1:to='no' a1:id='no'/>");
    rec_free(&r);
}

/* ---- errors ---- */

static void
expect_error(const char *input, size_t len, const mp_framer_limits *lim, const char *cond,
             int too_big)
{
    for (int bytewise = 0; bytewise < 2; bytewise++) {
        mp_framer f;
        rec r;
        rec_init(&r, &f, lim);
        int rc = bytewise ? feed_bytewise(&f, input, len) : feed_cuts(&f, input, len, NULL, 0);
        if (rc != MP_EINVAL || !mp_framer_error(&f) || strcmp(mp_framer_error(&f), cond) != 0)
            fail_msg("%s (bytewise %d): rc %d error %s, want %s", input, bytewise, rc,
                     mp_framer_error(&f) ? mp_framer_error(&f) : "none", cond);
        assert_int_equal(f.too_big, too_big);
        /* nothing after the error reaches the router */
        assert_int_equal(r.elements, 0);
        size_t used = 99;
        assert_int_equal(mp_framer_feed(&f, "<message/>", 10, &used), MP_EINVAL);
        assert_int_equal(used, 0);
        assert_int_equal(r.elements, 0);
        rec_free(&r);
    }
}

static void
expect_error_str(const char *input, const char *cond)
{
    expect_error(input, strlen(input), &big_limits, cond, 0);
}

static void
test_restricted_xml(void **state)
{
    expect_error_str("<?xml version='1.0'?><!DOCTYPE stream:stream [<!ENTITY x 'y'>]>" HDR,
                     "restricted-xml");
    expect_error_str("<!DOCTYPE stream:stream>" HDR, "restricted-xml");
    expect_error_str(HDR "<message><!-- hi --></message>", "restricted-xml");
    expect_error_str("<!-- hi -->" HDR, "restricted-xml");
    expect_error_str(HDR "<message><?pi data?></message>", "restricted-xml");
    expect_error_str(HDR "<?pi data?>", "restricted-xml");
    expect_error_str("<?xml version='1.0' encoding='UTF-16'?><stream:stream/>",
                     "unsupported-encoding");
    expect_error_str("<?xml version='1.0' encoding='ISO-8859-1'?><stream:stream/>",
                     "unsupported-encoding");
    /* entities are never expanded: no DTD, so any but the five are undefined */
    expect_error_str(HDR "<message><body>&foo;</body></message>", "not-well-formed");
    expect_error_str(HDR "<message to='&foo;'/>", "not-well-formed");
    expect_error_str(HDR "hello", "bad-format");
    expect_error_str(HDR " \n x<b/>", "bad-format");
    expect_error_str(HDR "<message></presence>", "not-well-formed");
    expect_error_str(HDR "<message a='1' a='2'/>", "not-well-formed");
    expect_error_str(HDR "<p:message/>", "not-well-formed");
    /* regression: <xml:a/> has no canonical form (xmlns cannot name the XML namespace) */
    expect_error_str(HDR "<xml:a/>", "bad-namespace-prefix");
    expect_error_str(HDR "<message><xml:a/></message>", "bad-namespace-prefix");

    /* lower-case utf-8 is fine */
    mp_framer f;
    rec r;
    rec_init(&r, &f, &big_limits);
    assert_int_equal(feed_str(&f, "<?xml version='1.0' encoding='utf-8'?>" HDR_BODY), 0);
    assert_int_equal(r.opens, 1);
    rec_free(&r);
}

static void
test_invalid_utf8(void **state)
{
    static const char *const bad[] = {"\xc0\xae", "\xed\xa0\x80", "\xff", "\xc3", "\x01"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char in[512];
        snprintf(in, sizeof in, HDR "<message><body>a%sb</body></message>", bad[i]);
        expect_error_str(in, "not-well-formed");
        snprintf(in, sizeof in, HDR "<message id='a%sb'/>", bad[i]);
        expect_error_str(in, "not-well-formed");
    }
}

static void
test_namespaces(void **state)
{
    expect_error_str("<stream:stream xmlns='jabber:client' xmlns:stream='urn:wrong'>",
                     "invalid-namespace");
    expect_error_str("<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>",
                     "invalid-namespace");
    expect_error_str("<stream:stream xmlns='jabber:server' "
                     "xmlns:stream='http://etherx.jabber.org/streams'>",
                     "invalid-namespace");
    expect_error_str("<stream:foo xmlns='jabber:client' "
                     "xmlns:stream='http://etherx.jabber.org/streams'>",
                     "invalid-namespace");
    expect_error_str("<stream xmlns='jabber:client'>", "invalid-namespace");
}

/* One element of exactly n bytes: <message><body>xxx</body></message> */
static char *
element_of(size_t n)
{
    static const char head[] = "<message><body>", tail[] = "</body></message>";
    size_t fixed = strlen(head) + strlen(tail);
    assert_true(n >= fixed);
    char *s = malloc(n + 1);
    assert_non_null(s);
    memcpy(s, head, strlen(head));
    memset(s + strlen(head), 'x', n - fixed);
    memcpy(s + n - strlen(tail), tail, strlen(tail));
    s[n] = '\0';
    return s;
}

static void
test_size_boundary(void **state)
{
    /* from just above the header's size (the header has the same limit) */
    for (size_t max = strlen(HDR) + 1; max <= 20000; max = max * 3 + 1) {
        for (int bytewise = 0; bytewise < 2; bytewise++) {
            mp_framer_limits lim = {.max_element_bytes = max, .max_elements = 10, .max_depth = 4};
            char *el = element_of(max);
            mp_framer f;
            rec r;
            rec_init(&r, &f, &lim);
            assert_int_equal(feed_str(&f, HDR), 0);
            int rc = bytewise ? feed_bytewise(&f, el, max) : feed_str(&f, el);
            assert_int_equal(rc, 0);
            assert_int_equal(r.elements, 1);
            assert_int_equal(r.el_len[0], max);
            free(el);
            /* one byte more */
            el = element_of(max + 1);
            rc = bytewise ? feed_bytewise(&f, el, max + 1) : feed_str(&f, el);
            assert_int_equal(rc, MP_EINVAL);
            assert_string_equal(mp_framer_error(&f), "policy-violation");
            assert_int_equal(f.too_big, 1);
            assert_int_equal(r.elements, 1);
            free(el);
            rec_free(&r);
        }
    }
    /* an element too big only by its start tag, or only by its end tag */
    mp_framer_limits lim = {.max_element_bytes = 20};
    expect_error(HDR "<message to='abcdefghij'/>", strlen(HDR "<message to='abcdefghij'/>"), &lim,
                 "policy-violation", 1);
    expect_error(HDR "<message>123</message>", strlen(HDR "<message>123</message>"), &lim,
                 "policy-violation", 1);
    /* the header counts too */
    lim.max_element_bytes = 100;
    expect_error(HDR, strlen(HDR), &lim, "policy-violation", 1);
}

/* 10 MB in 64 KiB reads is refused before max + 8 KiB of the element is in. */
static void
huge_token(const char *prefix)
{
    const size_t max = 100000, chunk = 65536, total = 10u << 20;
    mp_framer_limits lim = {.max_element_bytes = max, .max_elements = 10, .max_depth = 4};
    mp_framer f;
    rec r;
    rec_init(&r, &f, &lim);
    assert_int_equal(feed_str(&f, HDR), 0);
    uint64_t start = f.fed;
    char *buf = malloc(chunk);
    assert_non_null(buf);
    memset(buf, 'a', chunk);
    memcpy(buf, prefix, strlen(prefix));
    size_t sent = 0;
    int rc = 0;
    while (sent < total && rc == 0) {
        size_t used;
        rc = mp_framer_feed(&f, buf, chunk, &used);
        memset(buf, 'a', strlen(prefix));
        sent += chunk;
    }
    assert_int_equal(rc, MP_EINVAL);
    assert_string_equal(mp_framer_error(&f), "policy-violation");
    assert_int_equal(f.too_big, 1);
    if (f.fed - start > max + 8192)
        fail_msg("%s: %llu bytes parsed before the refusal", prefix,
                 (unsigned long long)(f.fed - start));
    assert_true(sent <= max + chunk);
    free(buf);
    rec_free(&r);
}

static void
test_huge_tokens(void **state)
{
    huge_token("<message to='");
    huge_token("<message><body>");
    huge_token("<message");
    huge_token("<mess");
}

static void
test_element_and_depth_limits(void **state)
{
    mp_framer_limits lim = {.max_element_bytes = 4096, .max_elements = 3, .max_depth = 3};
    mp_framer f;
    rec r;
    rec_init(&r, &f, &lim);
    assert_int_equal(feed_str(&f, HDR "<a><b/><c/></a><a><b><c/></b></a>"), 0);
    assert_int_equal(r.elements, 2);
    rec_free(&r);

    const char *four = HDR "<a><b/><c/><d/></a>";
    expect_error(four, strlen(four), &lim, "policy-violation", 1);
    lim.max_elements = 0;
    const char *deep = HDR "<a><b><c><d/></c></b></a>";
    expect_error(deep, strlen(deep), &lim, "policy-violation", 0);
    /* regression: an empty element refused at the limit used to be closed anyway, so the
     * parent was delivered after the error */
    lim.max_depth = 1;
    const char *one = HDR "<message><x/></message>";
    expect_error(one, strlen(one), &lim, "policy-violation", 0);
}

static void
test_deep_nesting(void **state)
{
    const int n = 100000;
    size_t len = (size_t)n * 7 + 1;
    char *s = malloc(len);
    assert_non_null(s);
    for (int i = 0; i < n; i++)
        memcpy(s + 3 * (size_t)i, "<a>", 3);
    for (int i = 0; i < n; i++)
        memcpy(s + 3 * (size_t)n + 4 * (size_t)i, "</a>", 4);
    s[len - 1] = '\0';

    /* refused cleanly by depth, and by size */
    mp_framer_limits lim = {.max_element_bytes = 1 << 20, .max_depth = 16};
    mp_framer f;
    rec r;
    rec_init(&r, &f, &lim);
    assert_int_equal(feed_str(&f, HDR), 0);
    assert_int_equal(feed_str(&f, s), MP_EINVAL);
    assert_string_equal(mp_framer_error(&f), "policy-violation");
    assert_int_equal(f.too_big, 0);
    rec_free(&r);

    lim = (mp_framer_limits){.max_element_bytes = 65536};
    rec_init(&r, &f, &lim);
    assert_int_equal(feed_str(&f, HDR), 0);
    assert_int_equal(feed_str(&f, s), MP_EINVAL);
    assert_int_equal(f.too_big, 1);
    rec_free(&r);

    /* unlimited: no recursion anywhere, one element, and the memory goes back afterwards */
    lim = (mp_framer_limits){0};
    rec_init(&r, &f, &lim);
    assert_int_equal(feed_str(&f, HDR), 0);
    assert_int_equal(feed_str(&f, s), 0);
    assert_int_equal(r.elements, 1);
    assert_int_equal(r.el_len[0], strlen(s) - 3); /* <a></a> is written <a/> */
    assert_true(mp_framer_memory(&f) <= 1024);
    rec_free(&r);
    free(s);
}

static void
test_memory(void **state)
{
    mp_framer f;
    rec r;
    mp_framer_limits lim = {.max_element_bytes = 1 << 20, .max_elements = 1000, .max_depth = 64};
    rec_init(&r, &f, &lim);
    assert_int_equal(feed_str(&f, HDR "<message><body>small</body></message>"), 0);
    size_t idle = mp_framer_memory(&f);
    assert_true(idle <= 1024);

    /* a big stanza: long routing attributes, long text, deep nesting */
    mp_buf big = {0};
    assert_int_equal(mp_buf_puts(&big, "<message to='"), 0);
    for (int i = 0; i < 5000; i++)
        assert_int_equal(mp_buf_puts(&big, "abcdefghij"), 0);
    assert_int_equal(mp_buf_puts(&big, "' id='1'><body>"), 0);
    for (int i = 0; i < 20000; i++)
        assert_int_equal(mp_buf_puts(&big, "0123456789"), 0);
    assert_int_equal(mp_buf_puts(&big, "</body>"), 0);
    for (int i = 0; i < 60; i++)
        assert_int_equal(mp_buf_printf(&big, "<x%d xmlns='urn:deep:%d'>", i, i), 0);
    for (int i = 59; i >= 0; i--)
        assert_int_equal(mp_buf_printf(&big, "</x%d>", i), 0);
    assert_int_equal(mp_buf_puts(&big, "</message>"), 0);
    size_t used;
    assert_int_equal(mp_framer_feed(&f, big.data, big.len, &used), 0);
    assert_int_equal(r.elements, 2);
    assert_true(r.el_len[1] > 250000);
    if (mp_framer_memory(&f) > 1024)
        fail_msg("%zu bytes held after a big stanza", mp_framer_memory(&f));
    assert_int_equal(feed_str(&f, "<presence to='x'/>"), 0);
    if (mp_framer_memory(&f) > 1024)
        fail_msg("%zu bytes held after a small stanza", mp_framer_memory(&f));
    /* medium stanzas: never more than the budget kept between elements */
    for (int i = 0; i < 40; i++) {
        char m[2048];
        snprintf(m, sizeof m, "<message to='%0*d'><body>%0*d</body><x xmlns='urn:%0*d'/></message>",
                 i * 10, 0, i * 20, 0, i * 5, 0);
        assert_int_equal(feed_str(&f, m), 0);
        if (mp_framer_memory(&f) > 2048)
            fail_msg("%zu bytes held after stanza %d", mp_framer_memory(&f), i);
    }
    mp_buf_free(&big);
    rec_free(&r);
}

/* ---- resets and stops ---- */

static void
test_reset(void **state)
{
    mp_framer f;
    rec r;
    rec_init(&r, &f, &big_limits);
    assert_int_equal(feed_str(&f, HDR "<message/>"), 0);
    assert_int_equal(mp_framer_reset(&f), 0);
    assert_int_equal(f.fed, 0);
    /* a new header, without the XML declaration this time */
    assert_int_equal(feed_str(&f, HDR_BODY), 0);
    assert_int_equal(feed_str(&f, "<presence/></stream:stream>"), 0);
    assert_int_equal(r.opens, 2);
    assert_int_equal(r.elements, 2);
    assert_int_equal(r.closes, 1);
    assert_string_equal(r.el[1], "<presence/>");

    /* a reset also recovers from an error */
    assert_int_equal(feed_str(&f, "junk"), MP_EINVAL);
    assert_non_null(mp_framer_error(&f));
    assert_int_equal(mp_framer_reset(&f), 0);
    assert_null(mp_framer_error(&f));
    assert_int_equal(feed_str(&f, HDR "<iq/>"), 0);
    assert_int_equal(r.opens, 3);
    assert_string_equal(r.el[2], "<iq/>");
    rec_free(&r);
}

static void
starttls_case(const char *tls_el, int reset_in_cb, int stop_ret, size_t split)
{
    static const char tail[] = "\x16\x03\x01\x02\x00\x01<garbage";
    char in[1024];
    int n = snprintf(in, sizeof in, "%s<presence/>%s", HDR, tls_el);
    size_t el_end = (size_t)n;
    memcpy(in + n, tail, sizeof tail);
    size_t len = el_end + sizeof tail - 1;

    mp_framer f;
    rec r;
    rec_init(&r, &f, &big_limits);
    r.stop_name = "starttls";
    r.reset_in_cb = reset_in_cb;
    r.stop_ret = stop_ret;
    size_t used = 0;
    int rc = 0;
    size_t base = 0;
    if (split) {
        rc = mp_framer_feed(&f, in, split, &used);
        assert_int_equal(rc, 0);
        assert_int_equal(used, split);
        base = split;
    }
    rc = mp_framer_feed(&f, in + base, len - base, &used);
    assert_int_equal(rc, MP_AGAIN);
    assert_int_equal(used, el_end - base);
    assert_int_equal(r.elements, 2);
    if (reset_in_cb) {
        /* the new stream goes on in the same framer */
        assert_int_equal(f.fed, 0);
        assert_int_equal(feed_str(&f, HDR "<message/>"), 0);
        assert_int_equal(r.opens, 2);
        assert_int_equal(r.elements, 3);
    } else {
        /* stopped without a reset: feeding is a program error, reset recovers */
        assert_int_equal(mp_framer_feed(&f, "<a/>", 4, &used), MP_EINVAL);
        assert_int_equal(mp_framer_reset(&f), 0);
        assert_int_equal(feed_str(&f, HDR "<message/>"), 0);
        assert_int_equal(r.opens, 2);
        assert_int_equal(r.elements, 3);
    }
    rec_free(&r);
}

static void
test_stop_starttls(void **state)
{
    static const char *const forms[] = {
        "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>",
        "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'></starttls>",
        "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>",
    };
    for (size_t i = 0; i < 3; i++) {
        size_t hdr = strlen(HDR);
        starttls_case(forms[i], 0, 1, 0);
        starttls_case(forms[i], 1, 1, 0);
        starttls_case(forms[i], 1, 0, 0); /* a reset alone stops the parse too */
        for (size_t split = hdr - 3; split < hdr + 11 + strlen(forms[i]); split += 7)
            starttls_case(forms[i], 1, 1, split);
        starttls_case(forms[i], 0, 1, hdr + 11 + strlen(forms[i]) - 1);
    }

    /* a stop in stream_open consumes exactly the header */
    mp_framer f;
    rec r;
    rec_init(&r, &f, &big_limits);
    r.stop_open = 1;
    size_t used;
    assert_int_equal(mp_framer_feed(&f, HDR "<message/>", strlen(HDR "<message/>"), &used),
                     MP_AGAIN);
    assert_int_equal(used, strlen(HDR));
    assert_int_equal(r.elements, 0);
    rec_free(&r);
}

/* ---- hibernation: the parser of a resting stream is freed and rebuilt ---- */

static void
test_hibernate(void **state)
{
    /* Every element of the realistic stream, with the parser freed before each one: the same
     * callbacks and bytes as one straight parse. */
    const char *data = client_stream;
    size_t len = strlen(data);
    mp_framer f;
    rec whole;
    rec_init(&whole, &f, &big_limits);
    assert_int_equal(feed_str(&f, data), 0);
    char *want = log_copy(&whole);
    rec_free(&whole);

    rec r;
    rec_init(&r, &f, &big_limits);
    assert_int_equal(mp_framer_hibernate(&f), 0); /* before the header: nothing to replay */
    int freed = 0;
    for (size_t i = 0; i < len; i++) {
        size_t used;
        if (mp_framer_feed(&f, data + i, 1, &used) != 0)
            fail_msg("byte %zu: %s", i, mp_framer_error(&f));
        freed += mp_framer_hibernate(&f);
        if (f.depth == 1 && f.fed == f.boundary)
            assert_null(f.parser);
    }
    assert_true(freed >= 5);
    assert_string_equal(r.log.data, want);
    free(want);
    rec_free(&r);

    /* A prefix of the client's own choosing still closes the stream after a rebuild. */
    static const char hdr2[] = "<s:stream xmlns:s='http://etherx.jabber.org/streams' "
                               "xmlns='jabber:client' xmlns:x='urn:x' to='a' version='1.0'>";
    rec_init(&r, &f, &big_limits);
    assert_int_equal(feed_str(&f, hdr2), 0);
    assert_int_equal(mp_framer_hibernate(&f), 1);
    assert_int_equal(mp_framer_hibernate(&f), 0); /* already asleep */
    assert_int_equal(feed_str(&f, "<x:e/>"), 0);
    assert_int_equal(r.elements, 1);
    assert_string_equal(r.el[0], "<e xmlns='urn:x'/>");
    assert_int_equal(r.opens, 1); /* the replayed header is not reported again */
    assert_int_equal(mp_framer_hibernate(&f), 1);
    assert_int_equal(feed_str(&f, "</s:stream>"), 0);
    assert_int_equal(r.closes, 1);
    rec_free(&r);

    /* Not at rest (half an element in), nothing is freed; limits count the same after a
     * rebuild: exactly max passes, max + 1 fails. */
    mp_framer_limits lim = {.max_element_bytes = 300, .max_elements = 10, .max_depth = 4};
    rec_init(&r, &f, &lim);
    assert_int_equal(feed_str(&f, HDR), 0);
    assert_int_equal(feed_str(&f, "<message><bo"), 0);
    assert_int_equal(mp_framer_hibernate(&f), 0);
    assert_int_equal(feed_str(&f, "dy/></message>"), 0);
    assert_int_equal(mp_framer_hibernate(&f), 1);
    char *el = element_of(300);
    assert_int_equal(feed_str(&f, el), 0);
    free(el);
    assert_int_equal(mp_framer_hibernate(&f), 1);
    el = element_of(301);
    assert_int_equal(feed_str(&f, el), MP_EINVAL);
    free(el);
    assert_string_equal(mp_framer_error(&f), "policy-violation");
    assert_int_equal(r.elements, 2);
    rec_free(&r);

    /* A reset forgets the saved header: the next stream saves its own. */
    rec_init(&r, &f, &big_limits);
    assert_int_equal(feed_str(&f, HDR), 0);
    assert_int_equal(mp_framer_reset(&f), 0);
    assert_int_equal(mp_framer_hibernate(&f), 0);
    assert_int_equal(feed_str(&f, hdr2), 0);
    assert_int_equal(mp_framer_hibernate(&f), 1);
    assert_int_equal(feed_str(&f, "<message/>"), 0);
    assert_int_equal(r.elements, 1);
    rec_free(&r);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hibernate),
        cmocka_unit_test(test_client_stream),
        cmocka_unit_test(test_stamping),
        cmocka_unit_test(test_attributes_and_kinds),
        cmocka_unit_test(test_restricted_xml),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_namespaces),
        cmocka_unit_test(test_size_boundary),
        cmocka_unit_test(test_huge_tokens),
        cmocka_unit_test(test_element_and_depth_limits),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_memory),
        cmocka_unit_test(test_reset),
        cmocka_unit_test(test_stop_starttls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
