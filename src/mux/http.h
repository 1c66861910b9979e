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

/* 1 when the connection came over HTTPS, or http.consider_secure says plain HTTP is trusted
 * (a TLS-terminating proxy in front): a BOSH session born on it gets CF_SECURE. */
int mp_http_is_secure(mp_conn *c);

/* bosh.c: a request for the BOSH path (POST, or OPTIONS for a CORS pre-flight). It answers
 * with mp_http_respond, now or later (the connection stays held meanwhile). */
void mp_bosh_request(mp_conn *c, const mp_http_request *r);
/* bosh.c: per-thread state (m->http holds it through http.c), and its timers. */
void *mp_bosh_new(mp_mux *m);
void mp_bosh_free(void *bosh);
void mp_bosh_sweep(void *bosh, uint64_t now);
/* http.c: the pointer mp_bosh_new gave for this mux thread (NULL before init). */
void *mp_http_bosh_state(mp_mux *m);

/* Split stream XML the core wrote (whole top-level elements, one or more) into elements and
 * make each stand alone, as RFC 7395 and XEP-0206 want: xmlns='jabber:client' on a stanza
 * that has no xmlns, xmlns:stream on stream:features and stream:error. fn gets each element
 * (its bytes live until fn returns, and fn must not use scratch). An element that needs a
 * declaration is rebuilt in scratch, which keeps its memory between calls (the mux's
 * m->scratch), so no message costs an allocation. Returns 0, or MP_EINVAL on bytes that are
 * not whole elements. */
typedef void (*mp_http_element_fn)(void *ud, const char *el, size_t n);
int mp_http_each_element(const char *xml, size_t n, mp_buf *scratch, mp_http_element_fn fn,
                         void *ud);

/* ---- between http.c and the resources it serves (ws.c, hostmeta.c, static.c) ---- */

/* The body of a response comes from fd (size bytes, closed by http.c), written in pieces as
 * the client takes them so that a large file neither blocks the loop nor fills the output
 * buffer. Later requests wait until it is all out. */
void mp_http_respond_fd(mp_conn *c, int status, const char *content_type, const char *extra_headers,
                        int fd, size_t size);
/* 1 when origin (not NUL-terminated) is allowed by http.cors_origins. */
int mp_http_origin_allowed(const mp_config *cfg, const char *origin, size_t len);
/* 1 when the comma-separated header value contains token (case-insensitive). */
int mp_http_has_token(const char *value, size_t len, const char *token);

/* ws.c: a GET of /xmpp-websocket. Answers an error and returns 0, or writes the 101 response
 * and returns 1: the connection then takes the WebSocket ops with mp_ws_attach, which gets
 * the bytes that followed the request. */
int mp_ws_handshake(mp_conn *c, const mp_http_request *r);
int mp_ws_attach(mp_conn *c, const char *rest, size_t n);

/* hostmeta.c: /.well-known/host-meta (XRD) and /.well-known/host-meta.json (XEP-0156). */
void mp_hostmeta_request(mp_conn *c, const mp_http_request *r, int json);

/* static.c: GET or HEAD of /chat/... from <http.web_root>/chat/. */
void mp_static_request(mp_conn *c, const mp_http_request *r);

#endif
