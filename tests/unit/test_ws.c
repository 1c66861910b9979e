/* WebSocket (ws.c): the frame codec (RFC 6455) and, against a faked mux, the handshake and
 * the RFC 7395 framing: <open/> becomes a stream header for the framer, stanzas pass as they
 * are, the core's output goes out one element per text frame, control frames and the errors
 * (unmasked, binary, oversize, bad fragmentation) close with the right status. */
#include "http_fakes.h"
#include "mux/ws.h"

#define NS_FRAMING "urn:ietf:params:xml:ns:xmpp-framing"

/* ---- codec ---- */

static void
test_accept_key(void **state)
{
    char out[29];
    /* RFC 6455 §1.3 */
    assert_int_equal(mp_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", 24, out), 0);
    assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    assert_int_equal(mp_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ=", 23, out), MP_EINVAL);
    assert_int_equal(mp_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ!!", 24, out), MP_EINVAL);
    assert_int_equal(mp_ws_accept_key("dGhlIHNhbXBsZSBub25j!Q==", 24, out), MP_EINVAL);
}

static void
test_parse_header(void **state)
{
    mp_ws_frame f;
    const uint8_t small[] = {0x81, 0x85, 1, 2, 3, 4};
    for (size_t i = 0; i < sizeof small; i++)
        assert_int_equal(mp_ws_parse_header(small, i, &f), MP_AGAIN);
    assert_int_equal(mp_ws_parse_header(small, sizeof small, &f), 0);
    assert_true(f.fin && f.masked);
    assert_int_equal(f.opcode, MP_WS_TEXT);
    assert_int_equal(f.len, 5);
    assert_int_equal(f.header_len, 6);
    assert_memory_equal(f.mask, "\1\2\3\4", 4);

    const uint8_t mid[] = {0x01, 0x7e, 0x01, 0x00};
    assert_int_equal(mp_ws_parse_header(mid, 3, &f), MP_AGAIN);
    assert_int_equal(mp_ws_parse_header(mid, 4, &f), 0);
    assert_false(f.fin || f.masked);
    assert_int_equal(f.len, 256);
    assert_int_equal(f.header_len, 4);

    const uint8_t big[] = {0x82, 0xff, 0, 0, 0, 0, 0, 1, 0, 0, 9, 9, 9, 9};
    assert_int_equal(mp_ws_parse_header(big, 13, &f), MP_AGAIN);
    assert_int_equal(mp_ws_parse_header(big, 14, &f), 0);
    assert_int_equal(f.len, 65536);
    assert_int_equal(f.header_len, 14);

    static const uint8_t bad[][10] = {
        {0xc1, 0x00},                            /* RSV1 without an extension */
        {0x83, 0x00},                            /* reserved opcode */
        {0x8b, 0x00},                            /* reserved control opcode */
        {0x09, 0x00},                            /* fragmented ping */
        {0x88, 0x7e, 0x00, 0x7e},                /* control frame over 125 bytes */
        {0x81, 0x7e, 0x00, 0x10},                /* 16 bits for a length under 126 */
        {0x81, 0x7f, 0, 0, 0, 0, 0, 0, 1, 0},    /* 64 bits for a length under 65536 */
        {0x81, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0}, /* the top bit of a 64-bit length */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (mp_ws_parse_header(bad[i], 10, &f) != MP_EINVAL)
            fail_msg("bad header %zu accepted", i);
}

static void
test_frame_header(void **state)
{
    uint8_t h[10];
    mp_ws_frame f;
    const uint64_t lens[] = {0, 125, 126, 65535, 65536, 1u << 30};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        size_t n = mp_ws_frame_header(h, MP_WS_TEXT, lens[i]);
        assert_int_equal(mp_ws_parse_header(h, n, &f), 0);
        assert_int_equal(f.header_len, n);
        assert_int_equal(f.len, lens[i]);
        assert_true(f.fin && !f.masked && f.opcode == MP_WS_TEXT);
    }
    uint8_t p[7] = "abcdefg";
    const uint8_t mask[4] = {0x10, 0x20, 0x30, 0x40};
    mp_ws_unmask(p, 3, mask, 0);
    mp_ws_unmask(p + 3, 4, mask, 3); /* a payload cut in two keeps its mask phase */
    mp_ws_unmask(p, 7, mask, 0);
    assert_memory_equal(p, "abcdefg", 7);
    assert_int_equal(p[0] ^ 0, 'a');
}

/* ---- a connection ---- */

/* A client frame: masked, FIN as given. */
static size_t
client_frame(uint8_t *out, int fin, int opcode, const char *payload, size_t n)
{
    static const uint8_t mask[4] = {0xa1, 0xb2, 0xc3, 0xd4};
    size_t h = mp_ws_frame_header(out, opcode, n);
    if (!fin)
        out[0] &= 0x7f;
    out[1] |= 0x80;
    memcpy(out + h, mask, 4);
    memcpy(out + h + 4, payload, n);
    mp_ws_unmask(out + h + 4, n, mask, 0);
    return h + 4 + n;
}

static void
core_xml(mp_conn *c, const char *s)
{
    c->ops->xml(c, s, strlen(s));
}

static void
send_msg(mp_conn *c, int opcode, const char *text)
{
    size_t n = strlen(text);
    uint8_t *f = malloc(n + 14);
    assert_non_null(f);
    size_t len = client_frame(f, 1, opcode, text, n);
    c->ops->feed(c, (const char *)f, len);
    free(f);
}

/* The server frames in wire from offset *at: the next one's opcode and payload. */
static int
next_frame(size_t *at, char *payload, size_t cap)
{
    mp_ws_frame f;
    if (*at >= wire.len)
        return -1;
    assert_int_equal(mp_ws_parse_header((const uint8_t *)wire.data + *at, wire.len - *at, &f), 0);
    assert_false(f.masked);
    assert_true(f.len < cap);
    memcpy(payload, wire.data + *at + f.header_len, (size_t)f.len);
    payload[f.len] = '\0';
    *at += f.header_len + (size_t)f.len;
    return f.opcode;
}

#define UPGRADE(proto)                                                                             \
    "GET /xmpp-websocket HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"                    \
    "Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"           \
    "Sec-WebSocket-Version: 13\r\n" proto "\r\n"

static mp_conn *
ws_setup(void)
{
    mp_conn *c = fake_setup();
    feed(c, UPGRADE("Sec-WebSocket-Protocol: xmpp\r\n"));
    const char *o = out();
    assert_true(strncmp(o, "HTTP/1.1 101 Switching Protocols\r\n", 34) == 0);
    assert_non_null(strstr(o, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
    assert_non_null(strstr(o, "Sec-WebSocket-Protocol: xmpp\r\n"));
    assert_null(strstr(o, "Content-Length"));
    assert_int_equal(closed_graceful + closed_now, 0);
    wire.len = 0;
    return c;
}

static void
expect_refused(const char *req, const char *status)
{
    mp_conn *c = fake_setup();
    feed(c, req);
    if (strncmp(out(), status, strlen(status)) != 0)
        fail_msg("expected %s, got %s", status, out());
    feed(c, "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"); /* still HTTP */
    assert_non_null(strstr(out(), "404 Not Found"));
    fake_teardown();
}

static void
test_handshake_refused(void **state)
{
    expect_refused(UPGRADE(""), "HTTP/1.1 400 ");
    expect_refused(UPGRADE("Sec-WebSocket-Protocol: chat, xmpp-foo\r\n"), "HTTP/1.1 400 ");
    expect_refused("GET /xmpp-websocket HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                   "Sec-WebSocket-Version: 8\r\nSec-WebSocket-Protocol: xmpp\r\n\r\n",
                   "HTTP/1.1 426 ");
    expect_refused("GET /xmpp-websocket HTTP/1.1\r\nHost: localhost\r\n\r\n", "HTTP/1.1 426 ");
    expect_refused("GET /xmpp-websocket HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Key: short\r\n"
                   "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: xmpp\r\n\r\n",
                   "HTTP/1.1 400 ");

    /* An origin outside http.cors_origins. */
    mp_conn *c = fake_setup();
    free(cfg.http_cors_origins.v[0]);
    cfg.http_cors_origins.v[0] = strdup("https://good.example");
    feed(c, UPGRADE("Sec-WebSocket-Protocol: xmpp\r\nOrigin: https://evil.example\r\n"));
    assert_true(strncmp(out(), "HTTP/1.1 403 ", 13) == 0);
    wire.len = 0;
    feed(c, UPGRADE("Sec-WebSocket-Protocol: xmpp\r\nOrigin: https://good.example\r\n"));
    assert_true(strncmp(out(), "HTTP/1.1 101 ", 13) == 0);
    fake_teardown();
}

static void
test_open_stanzas_close(void **state)
{
    mp_conn *c = ws_setup();
    char p[1024];
    size_t at = 0;
    send_msg(c, MP_WS_TEXT, "<open xmlns='" NS_FRAMING "' to='localhost' version='1.0'/>");
    assert_int_equal(stream_begun, 1);
    assert_int_equal(last_deadline, 60000); /* c2s.unauthenticated_timeout */
    mp_buf_append(&stream, "", 1);
    assert_string_equal(stream.data, "<stream:stream xmlns='jabber:client' "
                                     "xmlns:stream='http://etherx.jabber.org/streams' "
                                     "to='localhost' version='1.0'>");
    stream.len = 0;

    /* The core's answer: the header and features. */
    c->ops->header(c, "localhost", "abc");
    core_xml(c, "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>"
                "</stream:features>");
    assert_int_equal(next_frame(&at, p, sizeof p), MP_WS_TEXT);
    assert_string_equal(p, "<open xmlns='" NS_FRAMING "' from='localhost' id='abc' "
                           "version='1.0' xml:lang='en'/>");
    assert_int_equal(next_frame(&at, p, sizeof p), MP_WS_TEXT);
    assert_string_equal(p, "<stream:features xmlns:stream='http://etherx.jabber.org/streams'>"
                           "<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>");

    /* A stanza goes to the framer as it is; two elements out become two messages. */
    send_msg(c, MP_WS_TEXT, "<message to='b@localhost'><body>hi</body></message>");
    mp_buf_append(&stream, "", 1);
    assert_string_equal(stream.data, "<message to='b@localhost'><body>hi</body></message>");
    stream.len = 0;
    core_xml(c, "<message from='b@localhost/r'><body>yo</body></message><presence/>");
    assert_int_equal(next_frame(&at, p, sizeof p), MP_WS_TEXT);
    assert_string_equal(p, "<message xmlns='jabber:client' from='b@localhost/r'><body>yo</body>"
                           "</message>");
    assert_int_equal(next_frame(&at, p, sizeof p), MP_WS_TEXT);
    assert_string_equal(p, "<presence xmlns='jabber:client'/>");

    /* Fragmented message with a ping in between (control frames may interleave). */
    uint8_t f[256];
    size_t n = client_frame(f, 0, MP_WS_TEXT, "<presence>", 10);
    n += client_frame(f + n, 1, MP_WS_PING, "pp", 2);
    n += client_frame(f + n, 0, MP_WS_CONT, "<show>away</show>", 17);
    /* delivered one byte at a time */
    for (size_t i = 0; i < n; i++)
        c->ops->feed(c, (const char *)f + i, 1);
    assert_int_equal(next_frame(&at, p, sizeof p), MP_WS_PONG);
    assert_string_equal(p, "pp");
    assert_int_equal(stream.len, 0);
    n = client_frame(f, 1, MP_WS_CONT, "</presence>", 11);
    c->ops->feed(c, (const char *)f, n);
    mp_buf_append(&stream, "", 1);
    assert_string_equal(stream.data, "<presence><show>away</show></presence>");
    stream.len = 0;

    /* A restart after SASL success: the framer was reset, a new <open/> is a new header. */
    c->fr.depth = 0;
    send_msg(c, MP_WS_TEXT, "<open xmlns='" NS_FRAMING "' to='localhost' version='1.0'/>");
    assert_int_equal(stream_begun, 1);
    assert_true(strncmp(stream.data, "<stream:stream ", 15) == 0);
    stream.len = 0;

    /* <close/>: the end of the stream, answered by <close/> and the closing handshake. */
    send_msg(c, MP_WS_TEXT, "<close xmlns='" NS_FRAMING "'/>");
    mp_buf_append(&stream, "", 1);
    assert_string_equal(stream.data, "</stream:stream>");
    assert_int_equal(next_frame(&at, p, sizeof p), MP_WS_TEXT);
    assert_string_equal(p, "<close xmlns=\"" NS_FRAMING "\" />");
    assert_int_equal(next_frame(&at, p, sizeof p), MP_WS_CLOSE);
    assert_memory_equal(p, "\x03\xe8", 2); /* 1000 */
    assert_int_equal(closed_graceful, 1);
    /* Nothing after our close frame. */
    core_xml(c, "<presence/>");
    assert_int_equal(next_frame(&at, p, sizeof p), -1);
    fake_teardown();
}

static void
test_open_escapes_to(void **state)
{
    mp_conn *c = ws_setup();
    send_msg(c, MP_WS_TEXT, "<open xmlns=\"" NS_FRAMING "\" to=\"local'host\" version=\"1.0\"/>");
    mp_buf_append(&stream, "", 1);
    assert_non_null(strstr(stream.data, "to='local&apos;host'"));
    fake_teardown();

    c = ws_setup();
    send_msg(c, MP_WS_TEXT, "<open xmlns='" NS_FRAMING "' to='a&amp;b' version='1.0'/>");
    assert_string_equal(stream_error_cond, "improper-addressing");
    fake_teardown();

    c = ws_setup();
    send_msg(c, MP_WS_TEXT, "<open xmlns='jabber:client' to='localhost' version='1.0'/>");
    assert_string_equal(stream_error_cond, "invalid-namespace");
    fake_teardown();

    /* A stanza before <open/>. */
    c = ws_setup();
    send_msg(c, MP_WS_TEXT, "<message/>");
    assert_string_equal(stream_error_cond, "invalid-xml");
    assert_int_equal(stream.len, 0);
    fake_teardown();

    /* A second <open/> while the stream is open. */
    c = ws_setup();
    send_msg(c, MP_WS_TEXT, "<open xmlns='" NS_FRAMING "' to='localhost' version='1.0'/>");
    send_msg(c, MP_WS_TEXT, "<open xmlns='" NS_FRAMING "' to='localhost' version='1.0'/>");
    assert_string_equal(stream_error_cond, "invalid-xml");
    fake_teardown();
}

static void
expect_close_status(mp_conn *c, int status)
{
    char p[256];
    size_t at = 0;
    int op, last = -1;
    while ((op = next_frame(&at, p, sizeof p)) >= 0)
        if (op == MP_WS_CLOSE)
            last = ((uint8_t)p[0] << 8) | (uint8_t)p[1];
    assert_int_equal(last, status);
    assert_int_equal(closed_graceful, 1);
}

static void
test_protocol_errors(void **state)
{
    mp_conn *c = ws_setup();
    send_msg(c, MP_WS_BINARY, "<open/>");
    expect_close_status(c, MP_WS_UNSUPPORTED);
    fake_teardown();

    /* unmasked */
    c = ws_setup();
    uint8_t f[64];
    size_t n = mp_ws_frame_header(f, MP_WS_TEXT, 3);
    memcpy(f + n, "abc", 3);
    c->ops->feed(c, (const char *)f, n + 3);
    expect_close_status(c, MP_WS_PROTOCOL_ERROR);
    fake_teardown();

    /* a continuation with nothing to continue */
    c = ws_setup();
    n = client_frame(f, 1, MP_WS_CONT, "x", 1);
    c->ops->feed(c, (const char *)f, n);
    expect_close_status(c, MP_WS_PROTOCOL_ERROR);
    fake_teardown();

    /* a new message inside a fragmented one */
    c = ws_setup();
    n = client_frame(f, 0, MP_WS_TEXT, "x", 1);
    n += client_frame(f + n, 1, MP_WS_TEXT, "y", 1);
    c->ops->feed(c, (const char *)f, n);
    expect_close_status(c, MP_WS_PROTOCOL_ERROR);
    fake_teardown();

    /* over http.websocket_max_message, refused on the header alone */
    c = ws_setup();
    cfg.http_websocket_max_message = 1000;
    uint8_t h[14];
    n = mp_ws_frame_header(h, MP_WS_TEXT, 1001);
    h[1] |= 0x80;
    memset(h + n, 0, 4);
    c->ops->feed(c, (const char *)h, n + 4);
    expect_close_status(c, MP_WS_TOO_BIG);
    fake_teardown();

    /* ... and across fragments */
    c = ws_setup();
    cfg.http_websocket_max_message = 1000;
    char *big = calloc(1, 700);
    uint8_t *fb = malloc(1500);
    assert_true(big && fb);
    memset(big, 'a', 699);
    n = client_frame(fb, 0, MP_WS_TEXT, big, 600);
    n += client_frame(fb + n, 1, MP_WS_CONT, big, 600);
    c->ops->feed(c, (const char *)fb, n);
    expect_close_status(c, MP_WS_TOO_BIG);
    free(big);
    free(fb);
    fake_teardown();

    /* the client's close frame is answered and the connection closed */
    c = ws_setup();
    n = client_frame(f, 1, MP_WS_CLOSE, "\x03\xe9", 2);
    c->ops->feed(c, (const char *)f, n);
    expect_close_status(c, MP_WS_NORMAL);
    fake_teardown();
}

static void
test_see_other_uri(void **state)
{
    mp_conn *c = ws_setup();
    free(cfg.http_websocket_see_other_uri);
    cfg.http_websocket_see_other_uri = strdup("wss://other.example/xmpp-websocket?a=1&b=2");
    send_msg(c, MP_WS_TEXT, "<open xmlns='" NS_FRAMING "' to='localhost' version='1.0'/>");
    char p[256];
    size_t at = 0;
    assert_int_equal(next_frame(&at, p, sizeof p), MP_WS_TEXT);
    assert_string_equal(p, "<close xmlns='" NS_FRAMING "' see-other-uri='wss://other.example/"
                           "xmpp-websocket?a=1&amp;b=2'/>");
    assert_int_equal(next_frame(&at, p, sizeof p), MP_WS_CLOSE);
    assert_int_equal(stream.len, 0); /* the core never heard of it */
    assert_int_equal(closed_graceful, 1);
    fake_teardown();
}

static void
test_pipelined_frames_after_upgrade(void **state)
{
    /* Frames in the same read as the upgrade request reach the WebSocket side. */
    mp_conn *c = fake_setup();
    uint8_t f[256];
    const char *req = UPGRADE("Sec-WebSocket-Protocol: xmpp\r\n");
    size_t rl = strlen(req);
    char *buf = malloc(rl + 256);
    assert_non_null(buf);
    memcpy(buf, req, rl);
    size_t n = client_frame(f, 1, MP_WS_TEXT, "<open xmlns='" NS_FRAMING "' to='localhost'/>",
                            strlen("<open xmlns='" NS_FRAMING "' to='localhost'/>"));
    memcpy(buf + rl, f, n);
    c->ops->feed(c, buf, rl + n);
    free(buf);
    assert_int_equal(stream_begun, 1);
    assert_true(stream.len > 15 && memcmp(stream.data, "<stream:stream ", 15) == 0);
    fake_teardown();
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accept_key),
        cmocka_unit_test(test_parse_header),
        cmocka_unit_test(test_frame_header),
        cmocka_unit_test(test_handshake_refused),
        cmocka_unit_test(test_open_stanzas_close),
        cmocka_unit_test(test_open_escapes_to),
        cmocka_unit_test(test_protocol_errors),
        cmocka_unit_test(test_see_other_uri),
        cmocka_unit_test(test_pipelined_frames_after_upgrade),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
