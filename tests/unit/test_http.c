/* The HTTP/1.1 server of the mux (http.c), against a faked mux: requests split over reads,
 * pipelining behind an answer given later, keep-alive and close, HEAD, the limits and the
 * errors HTTP names, CORS, host-meta, the static files and their path checks; and
 * mp_http_each_element (elements.c), which cuts the core's output into stand-alone elements. */
#include "http_fakes.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#define GET(path) "GET " path " HTTP/1.1\r\nHost: example.com\r\n\r\n"

static void
test_simple_keepalive(void **state)
{
    mp_conn *c = fake_setup();
    feed(c, GET("/nothing-here"));
    const char *o = out();
    assert_true(strncmp(o, "HTTP/1.1 404 Not Found\r\n", 24) == 0);
    assert_non_null(strstr(o, "Connection: keep-alive\r\n"));
    assert_non_null(strstr(o, "Content-Length: 14\r\n"));
    assert_non_null(strstr(o, "\r\n\r\n404 Not Found\n"));
    assert_int_equal(closed_graceful + closed_now, 0);
    assert_int_equal(last_deadline, 30000); /* http.keepalive_timeout */
    fake_teardown();
}

static void
test_split_reads(void **state)
{
    mp_conn *c = fake_setup();
    const char *req = "GET /.well-known/host-meta HTTP/1.1\r\nHost: chat.example.org:5280\r\n\r\n";
    for (size_t i = 0; req[i]; i++) {
        assert_int_equal(wire.len, 0);
        c->ops->feed(c, req + i, 1);
    }
    const char *o = out();
    assert_true(strncmp(o, "HTTP/1.1 200 OK\r\n", 17) == 0);
    assert_non_null(strstr(o, "Content-Type: application/xrd+xml"));
    assert_non_null(strstr(o, "href='http://chat.example.org:5280/http-bind'"));
    assert_non_null(strstr(o, "href='ws://chat.example.org:5280/xmpp-websocket'"));
    assert_int_equal(count(o, "HTTP/1.1 "), 1);
    fake_teardown();
}

static void
test_hostmeta_json_and_public_url(void **state)
{
    mp_conn *c = fake_setup();
    free(cfg.http_public_url);
    cfg.http_public_url = strdup("https://im.example.net/");
    feed(c, GET("/.well-known/host-meta.json"));
    const char *o = out();
    assert_non_null(strstr(o, "Content-Type: application/json\r\n"));
    assert_non_null(strstr(o, "{\"links\":[{\"rel\":\"urn:xmpp:alt-connections:xbosh\","
                              "\"href\":\"https://im.example.net/http-bind\"},"
                              "{\"rel\":\"urn:xmpp:alt-connections:websocket\","
                              "\"href\":\"wss://im.example.net/xmpp-websocket\"}]}"));
    fake_teardown();
}

static void
test_hostmeta_bad_host(void **state)
{
    mp_conn *c = fake_setup();
    feed(c, "GET /.well-known/host-meta HTTP/1.1\r\nHost: a'><x\r\n\r\n");
    assert_true(strncmp(out(), "HTTP/1.1 400 ", 13) == 0);
    fake_teardown();
}

static void
test_pipelining(void **state)
{
    mp_conn *c = fake_setup();
    feed(c, GET("/a") GET("/") "HEAD /chat HTTP/1.1\r\nHost: x\r\n\r\n");
    const char *o = out();
    assert_int_equal(count(o, "HTTP/1.1 "), 3);
    const char *a = strstr(o, "404 Not Found"), *b = strstr(o, "302 Found"),
               *d = strstr(o, "301 Moved Permanently");
    assert_true(a && b && d && a < b && b < d);
    assert_non_null(strstr(o, "Location: /chat/\r\n"));
    /* HEAD: the length of the body that GET would get, and no body */
    assert_true(o[wire.len - 1] == '\n' && strcmp(o + wire.len - 4, "\r\n\r\n") == 0);
    fake_teardown();
}

static void
test_held_request_holds_pipeline(void **state)
{
    mp_conn *c = fake_setup();
    bosh_hold = 1;
    feed(c, "POST /http-bind HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\n\r\n<body/>" GET("/b"));
    assert_int_equal(bosh_requests, 1);
    assert_int_equal(wire.len, 0);
    assert_int_equal(read_stopped, 1);
    assert_int_equal(last_deadline, 0); /* BOSH's own wait, not ours */
    /* More bytes while held are only buffered. */
    feed(c, GET("/c"));
    assert_int_equal(wire.len, 0);
    mp_http_respond(c, 200, "text/xml", NULL, "<body xmlns='http://jabber.org/protocol/httpbind'/>",
                    51);
    assert_int_equal(count(out(), "HTTP/1.1 "), 1);
    assert_int_equal(read_stopped, 0);
    /* The pipelined requests run from the loop, not inside the answer. */
    uv_run(&mux->loop, UV_RUN_NOWAIT);
    const char *o = out();
    assert_int_equal(count(o, "HTTP/1.1 "), 3);
    assert_true(strstr(o, "200 OK") < strstr(o, "404 Not Found"));
    assert_string_equal(bosh_body.data ? (mp_buf_append(&bosh_body, "", 1), bosh_body.data) : "",
                        "<body/>");
    fake_teardown();
}

static void
test_body_split_and_continue(void **state)
{
    mp_conn *c = fake_setup();
    feed(c, "POST /http-bind/ HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 10\r\n"
            "\r\n01234");
    assert_string_equal(out(), "HTTP/1.1 100 Continue\r\n\r\n");
    feed(c, "567");
    assert_int_equal(bosh_requests, 0);
    feed(c, "89" GET("/x"));
    assert_int_equal(bosh_requests, 1);
    assert_int_equal(bosh_body.len, 10);
    assert_memory_equal(bosh_body.data, "0123456789", 10);
    assert_int_equal(count(out(), "HTTP/1.1 "), 3); /* 100, 200, 404 */
    fake_teardown();
}

static void
expect_error_close(const char *req, const char *status_line)
{
    mp_conn *c = fake_setup();
    feed(c, req);
    const char *o = out();
    if (strncmp(o, status_line, strlen(status_line)) != 0)
        fail_msg("for %s expected %s, got %s", req, status_line, o);
    assert_non_null(strstr(o, "Connection: close\r\n"));
    assert_int_equal(closed_graceful, 1);
    fake_teardown();
}

static void
test_errors(void **state)
{
    expect_error_close("GET / HTTP/2.0\r\nHost: x\r\n\r\n", "HTTP/1.1 505 ");
    expect_error_close("GET / FOO/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 400 ");
    expect_error_close("GET  / HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 400 ");
    expect_error_close("G(T / HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 400 ");
    expect_error_close("GET nopath HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 400 ");
    expect_error_close("GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 400 "); /* no Host */
    expect_error_close("GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", "HTTP/1.1 400 ");
    expect_error_close("GET / HTTP/1.1\r\nHost : x\r\n\r\n", "HTTP/1.1 400 ");
    expect_error_close("GET / HTTP/1.1\r\nHost: x\r\nX: a\nb\r\n\r\n", "HTTP/1.1 400 ");
    expect_error_close("POST /http-bind HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n",
                       "HTTP/1.1 400 ");
    expect_error_close("POST /http-bind HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n"
                       "Content-Length: 2\r\n\r\nab",
                       "HTTP/1.1 400 ");
    expect_error_close("POST /http-bind HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "1\r\na\r\n0\r\n\r\n",
                       "HTTP/1.1 411 ");
    expect_error_close("POST /http-bind HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
                       "HTTP/1.1 501 ");
    expect_error_close("POST /http-bind HTTP/1.1\r\nHost: x\r\nContent-Length: 1048577\r\n\r\n",
                       "HTTP/1.1 413 ");
    expect_error_close("POST /http-bind HTTP/1.1\r\nHost: x\r\nContent-Length: "
                       "99999999999999999999999\r\n\r\n",
                       "HTTP/1.1 413 ");
    /* HTTP/1.0 without keep-alive closes after a good answer too */
    expect_error_close("GET /nope HTTP/1.0\r\n\r\n", "HTTP/1.1 404 ");
}

static void
test_http10_keepalive(void **state)
{
    mp_conn *c = fake_setup();
    feed(c, "GET /nope HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_non_null(strstr(out(), "Connection: keep-alive\r\n"));
    assert_int_equal(closed_graceful, 0);
    feed(c, "GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_non_null(strstr(out(), "Connection: close\r\n"));
    assert_int_equal(closed_graceful, 1);
    fake_teardown();
}

static void
test_header_limits(void **state)
{
    /* No end of headers within http.max_header_size: 431 without waiting for more. */
    mp_conn *c = fake_setup();
    char *big = malloc(20000);
    assert_non_null(big);
    strcpy(big, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: ");
    memset(big + strlen(big), 'a', 17000);
    big[33 + 17000] = '\0';
    feed(c, big);
    assert_true(strncmp(out(), "HTTP/1.1 431 ", 13) == 0);
    assert_int_equal(closed_graceful, 1);
    fake_teardown();
    /* Too many header lines. */
    c = fake_setup();
    strcpy(big, "GET / HTTP/1.1\r\nHost: x\r\n");
    for (int i = 0; i < 120; i++)
        strcat(big, "X-A: b\r\n");
    strcat(big, "\r\n");
    feed(c, big);
    assert_true(strncmp(out(), "HTTP/1.1 431 ", 13) == 0);
    fake_teardown();
    /* Smaller limits from the configuration. */
    c = fake_setup();
    cfg.http_max_body_size = 1024;
    feed(c, "POST /http-bind HTTP/1.1\r\nHost: x\r\nContent-Length: 1025\r\n\r\n");
    assert_true(strncmp(out(), "HTTP/1.1 413 ", 13) == 0);
    fake_teardown();
    free(big);
}

static void
test_slow_request_deadline(void **state)
{
    /* The deadline of a request is set at its first byte and not renewed by each byte. */
    mp_conn *c = fake_setup();
    last_deadline = 12345;
    feed(c, "GET / HT");
    assert_int_equal(last_deadline, 30000);
    last_deadline = 12345;
    feed(c, "TP/1.1\r\n");
    assert_int_equal(last_deadline, 12345);
    fake_teardown();
}

static void
test_methods(void **state)
{
    mp_conn *c = fake_setup();
    feed(c, "DELETE /.well-known/host-meta HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_true(strncmp(out(), "HTTP/1.1 405 ", 13) == 0);
    assert_non_null(strstr(out(), "Allow: GET, HEAD, OPTIONS\r\n"));
    wire.len = 0;
    feed(c, GET("/http-bind"));
    assert_true(strncmp(out(), "HTTP/1.1 405 ", 13) == 0);
    assert_non_null(strstr(out(), "Allow: POST, OPTIONS\r\n"));
    wire.len = 0;
    feed(c, "POST /xmpp-websocket HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
    assert_true(strncmp(out(), "HTTP/1.1 405 ", 13) == 0);
    assert_int_equal(closed_graceful, 0);
    fake_teardown();
}

static void
test_cors(void **state)
{
    mp_conn *c = fake_setup();
    feed(c, "OPTIONS /.well-known/host-meta HTTP/1.1\r\nHost: x\r\nOrigin: https://web.example\r\n"
            "Access-Control-Request-Method: GET\r\n\r\n");
    const char *o = out();
    assert_true(strncmp(o, "HTTP/1.1 204 ", 13) == 0);
    assert_null(strstr(o, "Content-Length"));
    assert_non_null(strstr(o, "Access-Control-Allow-Origin: *\r\n"));
    assert_non_null(strstr(o, "Access-Control-Allow-Methods: GET, HEAD, POST, OPTIONS\r\n"));
    assert_non_null(strstr(o, "Access-Control-Allow-Headers: Content-Type\r\n"));
    assert_non_null(strstr(o, "Access-Control-Max-Age: 86400\r\n"));
    wire.len = 0;
    feed(c, GET("/nope")); /* no Origin, no CORS */
    assert_null(strstr(out(), "Access-Control"));
    fake_teardown();

    /* A list of origins: only those, echoed with Vary. */
    c = fake_setup();
    mp_config_free(&cfg);
    assert_int_equal(mp_config_defaults(&cfg), 0);
    free(cfg.http_cors_origins.v[0]);
    cfg.http_cors_origins.v[0] = strdup("https://good.example");
    feed(c,
         "GET /.well-known/host-meta HTTP/1.1\r\nHost: x\r\nOrigin: https://good.example\r\n\r\n");
    assert_non_null(strstr(out(), "Access-Control-Allow-Origin: https://good.example\r\n"));
    assert_non_null(strstr(out(), "Vary: Origin\r\n"));
    wire.len = 0;
    feed(c,
         "GET /.well-known/host-meta HTTP/1.1\r\nHost: x\r\nOrigin: https://evil.example\r\n\r\n");
    assert_true(strncmp(out(), "HTTP/1.1 200 ", 13) == 0);
    assert_null(strstr(out(), "Access-Control"));
    fake_teardown();
}

static void
test_has_token(void **state)
{
    const char *v = "keep-alive, Upgrade";
    assert_true(mp_http_has_token(v, strlen(v), "upgrade"));
    assert_true(mp_http_has_token(v, strlen(v), "Keep-Alive"));
    assert_false(mp_http_has_token(v, strlen(v), "close"));
    assert_false(mp_http_has_token(v, strlen(v), "keep"));
    v = "xmpp-x,xmpp";
    assert_true(mp_http_has_token(v, strlen(v), "xmpp"));
    assert_false(mp_http_has_token(v, 6, "xmpp"));
}

/* ---- static files ---- */

static char root[64];

static void
write_file(const char *rel, const char *text)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s", root, rel);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static mp_conn *
static_setup(void)
{
    strcpy(root, "/tmp/mp-test-http-XXXXXX");
    assert_non_null(mkdtemp(root));
    char p[256];
    snprintf(p, sizeof p, "%s/chat", root);
    assert_int_equal(mkdir(p, 0700), 0);
    snprintf(p, sizeof p, "%s/chat/sub", root);
    assert_int_equal(mkdir(p, 0700), 0);
    write_file("chat/index.html", "<html>hi</html>");
    write_file("chat/app.js", "console.log(1)");
    write_file("chat/sub/a b.css", "p{}");
    write_file("chat/.hidden", "no");
    write_file("secret.txt", "SECRET");
    mp_conn *c = fake_setup();
    free(cfg.http_web_root);
    cfg.http_web_root = strdup(root);
    return c;
}

static void
static_teardown(void)
{
    fake_teardown();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    assert_int_equal(system(cmd), 0);
}

static void
expect_static(mp_conn *c, const char *path, const char *status, const char *has)
{
    char req[512];
    snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path);
    wire.len = 0;
    feed(c, req);
    const char *o = out();
    if (strncmp(o, status, strlen(status)) != 0 || (has && !strstr(o, has)))
        fail_msg("GET %s: expected %s with %s, got %s", path, status, has ? has : "-", o);
    assert_null(strstr(o, "SECRET"));
}

static void
test_static(void **state)
{
    mp_conn *c = static_setup();
    expect_static(c, "/chat/", "HTTP/1.1 200 ", "<html>hi</html>");
    expect_static(c, "/chat/", "HTTP/1.1 200 ", "Content-Type: text/html; charset=utf-8\r\n");
    expect_static(c, "/chat/", "HTTP/1.1 200 ", "Cache-Control: no-cache\r\n");
    expect_static(c, "/chat/index.html", "HTTP/1.1 200 ", "Content-Length: 15\r\n");
    expect_static(c, "/chat/app.js?v=3", "HTTP/1.1 200 ", "Content-Type: text/javascript");
    expect_static(c, "/chat/app.js", "HTTP/1.1 200 ", "Cache-Control: public, max-age=3600");
    expect_static(c, "/chat/sub/a%20b.css", "HTTP/1.1 200 ", "Content-Type: text/css");
    expect_static(c, "/chat/sub", "HTTP/1.1 301 ", "Location: /chat/sub/\r\n");
    expect_static(c, "/chat/sub/", "HTTP/1.1 404 ", NULL); /* no index.html there */
    expect_static(c, "/chat/missing.js", "HTTP/1.1 404 ", NULL);
    expect_static(c, "/chat/../secret.txt", "HTTP/1.1 404 ", NULL);
    expect_static(c, "/chat/%2e%2e/secret.txt", "HTTP/1.1 404 ", NULL);
    expect_static(c, "/chat/%2E%2E%2Fsecret.txt", "HTTP/1.1 404 ", NULL);
    expect_static(c, "/chat/sub/..%2f..%2fsecret.txt", "HTTP/1.1 404 ", NULL);
    expect_static(c, "/chat/.hidden", "HTTP/1.1 404 ", NULL);
    expect_static(c, "/chat/app.js%00.html", "HTTP/1.1 404 ", NULL);
    expect_static(c, "/chat/a%zz", "HTTP/1.1 400 ", NULL);
    expect_static(c, "/chat/a%2", "HTTP/1.1 400 ", NULL);
    expect_static(c, "/chat//etc/passwd", "HTTP/1.1 404 ", NULL);
    expect_static(c, "/chat/sub%5c..%5c..%5csecret.txt", "HTTP/1.1 404 ", NULL);
    assert_int_equal(closed_graceful + closed_now, 0);
    static_teardown();
}

static void
test_static_large_file(void **state)
{
    /* Bigger than the output buffer: it goes out in pieces as the socket takes them. */
    mp_conn *c = static_setup();
    mux->max_output = 8192;
    char p[256];
    snprintf(p, sizeof p, "%s/chat/big.js", root);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    for (int i = 0; i < 100000; i++)
        fprintf(f, "%09d\n", i);
    fclose(f);
    /* The fake socket never fills, so the whole file is written during the request. */
    feed(c, GET("/chat/big.js") GET("/chat/index.html"));
    const char *o = out();
    assert_non_null(strstr(o, "Content-Length: 1000000\r\n"));
    const char *body = strstr(o, "\r\n\r\n") + 4;
    assert_memory_equal(body, "000000000\n000000001\n", 20);
    assert_memory_equal(body + 999990, "000099999\n", 10);
    assert_true(strncmp(body + 1000000, "HTTP/1.1 200 OK\r\n", 17) == 0);
    /* A socket that is slow: out.len is not empty, so the pump waits for the loop. */
    wire.len = 0;
    c->out.len = 1;
    feed(c, GET("/chat/big.js") GET("/chat/app.js"));
    size_t first = wire.len;
    assert_true(first < 10000);
    c->out.len = 0;
    for (int i = 0; i < 1000 && count(out(), "HTTP/1.1 ") < 2; i++)
        uv_run(&mux->loop, UV_RUN_NOWAIT);
    o = out();
    assert_int_equal(count(o, "HTTP/1.1 200 OK"), 2);
    assert_non_null(strstr(o, "console.log(1)"));
    static_teardown();
}

/* ---- elements ---- */

typedef struct collected {
    char el[8][512];
    int n;
} collected;

static void
collect(void *ud, const char *el, size_t n)
{
    collected *c = ud;
    assert_true(c->n < 8 && n < 512);
    memcpy(c->el[c->n], el, n);
    c->el[c->n][n] = '\0';
    c->n++;
}

static int
split(const char *xml, collected *c)
{
    memset(c, 0, sizeof *c);
    mp_buf scratch = {0};
    int rc = mp_http_each_element(xml, strlen(xml), &scratch, collect, c);
    mp_buf_free(&scratch);
    return rc;
}

static void
test_elements(void **state)
{
    collected c;
    assert_int_equal(split("<message to='a@b' type='chat'><body>hi &amp; bye</body></message>"
                           "<presence/>\n<iq type=\"result\" id='1'/>",
                           &c),
                     0);
    assert_int_equal(c.n, 3);
    assert_string_equal(c.el[0], "<message xmlns='jabber:client' to='a@b' type='chat'><body>hi "
                                 "&amp; bye</body></message>");
    assert_string_equal(c.el[1], "<presence xmlns='jabber:client'/>");
    assert_string_equal(c.el[2], "<iq xmlns='jabber:client' type=\"result\" id='1'/>");

    /* Stream prefixes get their declaration; elements with their own namespace are kept. */
    assert_int_equal(split("<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
                           "<mechanism>PLAIN</mechanism></mechanisms></stream:features>"
                           "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"
                           "<message xmlns='jabber:client'/><r xmlns='urn:xmpp:sm:3'/>",
                           &c),
                     0);
    assert_int_equal(c.n, 4);
    static const char feat[] = "<stream:features xmlns:stream='http://etherx.jabber.org/streams'>"
                               "<mechanisms";
    assert_true(strncmp(c.el[0], feat, sizeof feat - 1) == 0);
    assert_string_equal(c.el[1], "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
    assert_string_equal(c.el[2], "<message xmlns='jabber:client'/>");
    assert_string_equal(c.el[3], "<r xmlns='urn:xmpp:sm:3'/>");
    assert_int_equal(split("<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
                           "</stream:error>",
                           &c),
                     0);
    assert_true(strncmp(c.el[0], "<stream:error xmlns:stream='http://etherx.jabber.org/streams'>",
                        62) == 0);

    /* Quotes hiding '>' and "/>", CDATA, comments, nested elements of the same name. */
    assert_int_equal(split("<message a='x/>y' b=\"'>\"><body><![CDATA[</message><x>]]></body>"
                           "<message><message/></message><!-- </message> --></message><iq/>",
                           &c),
                     0);
    assert_int_equal(c.n, 2);
    assert_string_equal(c.el[1], "<iq xmlns='jabber:client'/>");
    assert_true(strstr(c.el[0], "<!-- </message> --></message>") != NULL);

    /* Only whitespace, or nothing: no element, no error. */
    assert_int_equal(split(" \r\n", &c), 0);
    assert_int_equal(c.n, 0);
    assert_int_equal(split("", &c), 0);
}

static void
test_elements_malformed(void **state)
{
    collected c;
    static const char *const bad[] = {
        "<message>",                       /* not closed */
        "<message></iq>",                  /* wrong end tag */
        "text<message/>",                  /* text at the top level */
        "</message>",                      /* end tag alone */
        "<message a='1/>",                 /* unterminated attribute */
        "<message a=1/>",                  /* unquoted attribute */
        "<message a='1'b='2'/>",           /* attributes run together */
        "<message><![CDATA[x</message>",   /* unterminated CDATA */
        "<message><!-- x</message>",       /* unterminated comment */
        "<message><?pi x?></message>",     /* processing instruction */
        "<?xml version='1.0'?><message/>", /* declaration */
        "<>",                              /* no name */
        "<message/><iq>",                  /* the second one is cut */
        "<message a='<'/>",                /* '<' in a value */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (split(bad[i], &c) != MP_EINVAL)
            fail_msg("accepted: %s", bad[i]);
    }
    /* The whole elements before the bad bytes were delivered. */
    assert_int_equal(split("<message/><iq>", &c), MP_EINVAL);
    assert_int_equal(c.n, 1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple_keepalive),
        cmocka_unit_test(test_split_reads),
        cmocka_unit_test(test_hostmeta_json_and_public_url),
        cmocka_unit_test(test_hostmeta_bad_host),
        cmocka_unit_test(test_pipelining),
        cmocka_unit_test(test_held_request_holds_pipeline),
        cmocka_unit_test(test_body_split_and_continue),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_http10_keepalive),
        cmocka_unit_test(test_header_limits),
        cmocka_unit_test(test_slow_request_deadline),
        cmocka_unit_test(test_methods),
        cmocka_unit_test(test_cors),
        cmocka_unit_test(test_has_token),
        cmocka_unit_test(test_static),
        cmocka_unit_test(test_static_large_file),
        cmocka_unit_test(test_elements),
        cmocka_unit_test(test_elements_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
