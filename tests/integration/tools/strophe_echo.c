/* strophe_echo: a libstrophe client for the integration tests. It logs in over TLS (certificate
 * not verified: the test server's certificate is self-signed), sends BODY to PEER and waits for
 * a message from PEER whose body is EXPECT.
 *
 * usage: strophe_echo JID PASSWORD HOST PORT PEER BODY EXPECT
 * exit: 0 reply received and stream closed, 1 otherwise (reason on stderr).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <strophe.h>

struct state {
    const char *peer;
    const char *body;
    const char *expect;
    int connected;
    int secured;
    int got_reply;
    int disconnected;
    int conn_error;
};

static int
bare_eq(const char *full, const char *bare)
{
    size_t n = strlen(bare);

    return strncmp(full, bare, n) == 0 && (full[n] == '\0' || full[n] == '/');
}

static int
message_handler(xmpp_conn_t *conn, xmpp_stanza_t *stanza, void *userdata)
{
    struct state *st = userdata;
    const char *from = xmpp_stanza_get_from(stanza);
    char *body = xmpp_message_get_body(stanza);

    fprintf(stderr, "strophe_echo: message from %s: %s\n", from ? from : "(none)",
            body ? body : "(no body)");
    if (from != NULL && body != NULL && bare_eq(from, st->peer) && strcmp(body, st->expect) == 0) {
        st->got_reply = 1;
        xmpp_disconnect(conn);
    }
    if (body != NULL)
        xmpp_free(xmpp_conn_get_context(conn), body);
    return 1;
}

static void
conn_handler(xmpp_conn_t *conn, xmpp_conn_event_t status, int error,
             xmpp_stream_error_t *stream_error, void *userdata)
{
    struct state *st = userdata;
    xmpp_ctx_t *ctx = xmpp_conn_get_context(conn);

    if (status == XMPP_CONN_CONNECT) {
        xmpp_stanza_t *pres = xmpp_presence_new(ctx);
        xmpp_stanza_t *msg = xmpp_message_new(ctx, "chat", st->peer, "strophe1");

        st->connected = 1;
        st->secured = xmpp_conn_is_secured(conn);
        fprintf(stderr, "strophe_echo: connected as %s, secured=%d\n",
                xmpp_conn_get_bound_jid(conn), st->secured);
        xmpp_handler_add(conn, message_handler, NULL, "message", NULL, st);
        xmpp_send(conn, pres);
        xmpp_stanza_release(pres);
        xmpp_message_set_body(msg, st->body);
        xmpp_send(conn, msg);
        xmpp_stanza_release(msg);
        return;
    }
    if (error != 0 || stream_error != NULL)
        st->conn_error = 1;
    fprintf(stderr, "strophe_echo: disconnected (status %d, error %d, stream error %d)\n",
            (int)status, error, stream_error ? (int)stream_error->type : -1);
    st->disconnected = 1;
    xmpp_stop(ctx);
}

int
main(int argc, char **argv)
{
    struct state st = {0};
    xmpp_ctx_t *ctx;
    xmpp_conn_t *conn;
    xmpp_log_t *log;
    time_t deadline;

    if (argc != 8) {
        fprintf(stderr, "usage: strophe_echo JID PASSWORD HOST PORT PEER BODY EXPECT\n");
        return 1;
    }
    st.peer = argv[5];
    st.body = argv[6];
    st.expect = argv[7];

    xmpp_initialize();
    log = xmpp_get_default_logger(XMPP_LEVEL_DEBUG);
    ctx = xmpp_ctx_new(NULL, log);
    conn = xmpp_conn_new(ctx);
    if (ctx == NULL || conn == NULL) {
        fprintf(stderr, "strophe_echo: out of memory\n");
        return 1;
    }
    xmpp_conn_set_flags(conn, XMPP_CONN_FLAG_MANDATORY_TLS | XMPP_CONN_FLAG_TRUST_TLS);
    xmpp_conn_set_jid(conn, argv[1]);
    xmpp_conn_set_pass(conn, argv[2]);
    if (xmpp_connect_client(conn, argv[3], (unsigned short)atoi(argv[4]), conn_handler, &st) !=
        XMPP_EOK) {
        fprintf(stderr, "strophe_echo: connect failed\n");
        return 1;
    }
    deadline = time(NULL) + 30;
    while (!st.disconnected && time(NULL) < deadline)
        xmpp_run_once(ctx, 100);
    if (!st.disconnected)
        fprintf(stderr, "strophe_echo: timed out (connected=%d, reply=%d)\n", st.connected,
                st.got_reply);
    xmpp_conn_release(conn);
    xmpp_ctx_free(ctx);
    xmpp_shutdown();
    if (!st.connected || !st.secured || !st.got_reply || st.conn_error) {
        fprintf(stderr, "strophe_echo: FAILED connected=%d secured=%d reply=%d error=%d\n",
                st.connected, st.secured, st.got_reply, st.conn_error);
        return 1;
    }
    return 0;
}
