/* The mux as the HTTP transports see it, faked for test_http.c and test_ws.c: one connection,
 * what is written to its socket collected in `wire`, what is fed to its XML stream in
 * `stream`, closes and deadlines recorded. BOSH is a fake that records its requests and
 * answers at once unless told to hold. Defining these here keeps mux.c and bosh.c out of the
 * test executables (the static library only contributes the objects a symbol is missing
 * from). */
#ifndef TEST_HTTP_FAKES_H
#define TEST_HTTP_FAKES_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/buf.h"
#include "base/config.h"
#include "base/err.h"
#include "mux/http.h"
#include "mux/mux_int.h"

static mp_buf wire, stream, bosh_body;
static int closed_graceful, closed_now, read_stopped, stream_begun, bosh_requests, bosh_hold;
static const char *stream_error_cond;
static uint64_t last_deadline;
static mp_conn *the_conn;
static int fake_bosh;

void
mp_mux_wire_write(mp_conn *c, const char *p, size_t n)
{
    if (c->flags & CF_HANDLE_CLOSED)
        return;
    assert_int_equal(mp_buf_append(&wire, p, n), 0);
}

void
mp_mux_close_now(mp_conn *c)
{
    closed_now++;
    c->flags |= CF_CLOSING | CF_HANDLE_CLOSED;
}

void
mp_mux_close_graceful(mp_conn *c)
{
    if (c->flags & CF_CLOSING)
        return;
    closed_graceful++;
    c->flags |= CF_CLOSING;
}

void
mp_mux_stream_error(mp_conn *c, const char *cond, const char *extra)
{
    if (c->flags & CF_CLOSING)
        return;
    stream_error_cond = cond;
    if (c->ops && c->ops->xml)
        c->ops->xml(c, "<stream:error/>", 15);
    if (c->ops && c->ops->end)
        c->ops->end(c);
    mp_mux_close_graceful(c);
}

int
mp_mux_stream_begin(mp_conn *c)
{
    stream_begun++;
    c->flags |= CF_STREAM;
    return 0;
}

/* Tracks the framer's depth the way ws.c reads it: a header opens, </stream:stream> closes. */
void
mp_mux_stream_feed(mp_conn *c, const char *p, size_t n)
{
    assert_int_equal(mp_buf_append(&stream, p, n), 0);
    if (n > 14 && memcmp(p, "<stream:stream", 14) == 0)
        c->fr.depth = 1;
    if (n == 16 && memcmp(p, "</stream:stream>", 16) == 0) {
        c->fr.depth = 0;
        if (c->ops && c->ops->end)
            c->ops->end(c);
        mp_mux_close_graceful(c);
    }
}

mp_conn *
mp_mux_conn_by_id(mp_mux *m, uint64_t id)
{
    return the_conn && the_conn->id == id && !(the_conn->flags & CF_HANDLE_CLOSED) ? the_conn
                                                                                   : NULL;
}

void
mp_mux_set_deadline(mp_conn *c, uint64_t ms)
{
    last_deadline = ms;
}

void
mp_mux_read_stop(mp_conn *c)
{
    read_stopped = 1;
}

void
mp_mux_read_start(mp_conn *c)
{
    read_stopped = 0;
}

void
mp_bosh_request(mp_conn *c, const mp_http_request *r)
{
    bosh_requests++;
    mp_buf_append(&bosh_body, r->body, r->body_len);
    if (!bosh_hold)
        mp_http_respond(c, 200, "text/xml; charset=utf-8", NULL, "<body/>", 7);
}

void *
mp_bosh_new(mp_mux *m)
{
    return &fake_bosh;
}

void
mp_bosh_free(void *bosh)
{
    assert_ptr_equal(bosh, &fake_bosh);
}

void
mp_bosh_sweep(void *bosh, uint64_t now)
{
}

/* ---- a mux with one connection ---- */

static mp_config cfg;
static mp_mux *mux;
static uv_timer_t keepalive; /* a referenced handle: unreferenced ones alone do not run */

static void
on_keepalive(uv_timer_t *t)
{
}

static mp_conn *
fake_setup(void)
{
    assert_int_equal(mp_config_defaults(&cfg), 0);
    mux = calloc(1, sizeof *mux);
    assert_non_null(mux);
    assert_int_equal(uv_loop_init(&mux->loop), 0);
    mux->cfg = &cfg;
    mux->max_output = 1 << 20;
    mux->unauth_timeout_ms = 60000;
    assert_int_equal(mp_http_mux_init(mux), 0);
    uv_timer_init(&mux->loop, &keepalive);
    uv_timer_start(&keepalive, on_keepalive, 1000000, 0);
    the_conn = calloc(1, sizeof *the_conn);
    assert_non_null(the_conn);
    the_conn->mux = mux;
    the_conn->id = 42;
    the_conn->flags = CF_HTTP;
    strcpy(the_conn->ip, "192.0.2.1");
    wire.len = stream.len = bosh_body.len = 0;
    closed_graceful = closed_now = read_stopped = stream_begun = bosh_requests = bosh_hold = 0;
    stream_error_cond = NULL;
    assert_int_equal(mp_http_accept(the_conn), 0);
    return the_conn;
}

static void
walk_close(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void
fake_teardown(void)
{
    if (the_conn->ops && the_conn->ops->freed)
        the_conn->ops->freed(the_conn);
    free(the_conn);
    the_conn = NULL;
    uv_walk(&mux->loop, walk_close, NULL);
    uv_run(&mux->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&mux->loop), 0);
    mp_http_mux_free(mux);
    mp_buf_free(&mux->scratch); /* as mux.c's mux_free does */
    free(mux);
    mp_config_free(&cfg);
    mp_buf_free(&wire);
    mp_buf_free(&stream);
    mp_buf_free(&bosh_body);
}

static inline void
feed(mp_conn *c, const char *s)
{
    c->ops->feed(c, s, strlen(s));
}

/* What was written so far as a string (NUL-terminated copy kept in the buffer). */
static inline const char *
out(void)
{
    assert_int_equal(mp_buf_reserve(&wire, 1), 0);
    wire.data[wire.len] = '\0';
    return wire.data;
}

static inline int
count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

#endif
