/* HTTP/1.1 on the mux's HTTP and HTTPS ports: the request parser and the responses, shared by
 * the web transports (BOSH in bosh.c, WebSocket in ws.c) and the small resources (host-meta,
 * the web client's files). One request is handled at a time per connection; a handler that
 * does not answer at once (a BOSH long poll) holds the connection's later requests back
 * until it calls mp_http_respond. */
#ifndef MP_MUX_HTTP_H
#define MP_MUX_HTTP_H

#include <stddef.h>

#include "mux/mux_int.h"

typedef struct mp_http_header {
    const char *name, *value;
    size_t name_len, value_len;
} mp_http_header;

/* Valid only during the handler call: copy what must outlive it. */
typedef struct mp_http_request {
    const char *method, *path, *query; /* path without the query; query may be NULL */
    size_t method_len, path_len, query_len;
    const mp_http_header *headers;
    size_t nheaders;
    const char *body;
    size_t body_len;
    int keep_alive;
} mp_http_request;

/* The value of a header (case-insensitive name), or NULL. */
const char *mp_http_header_get(const mp_http_request *r, const char *name, size_t *len);

/* Answer the request the connection is waiting on: status line, Content-Length, Connection,
 * the CORS headers when the request had an Origin (http.cors_origins), extra_headers (whole
 * lines ending in \r\n, or NULL), then body. Then the next pipelined request is handled. Does
 * nothing when c is closing. */
void mp_http_respond(mp_conn *c, int status, const char *content_type, const char *extra_headers,
                     const char *body, size_t len);

/* bosh.c: a request for the BOSH path (POST, or OPTIONS for a CORS pre-flight). It answers
 * with mp_http_respond, now or later (the connection stays held meanwhile). */
void mp_bosh_request(mp_conn *c, const mp_http_request *r);
/* bosh.c: per-thread state (m->http holds it through http.c), and its timers. */
void *mp_bosh_new(mp_mux *m);
void mp_bosh_free(void *bosh);
void mp_bosh_sweep(void *bosh, uint64_t now);

/* Split stream XML the core wrote (whole top-level elements, one or more) into elements and
 * make each stand alone, as RFC 7395 and XEP-0206 want: xmlns='jabber:client' on a stanza
 * that has no xmlns, xmlns:stream on stream:features and stream:error. fn gets each element
 * (its bytes live until fn returns). Returns 0, or MP_EINVAL on bytes that are not whole
 * elements. */
typedef void (*mp_http_element_fn)(void *ud, const char *el, size_t n);
int mp_http_each_element(const char *xml, size_t n, mp_http_element_fn fn, void *ud);

#endif
