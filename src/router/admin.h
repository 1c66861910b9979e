/* The admin socket: a Unix stream socket (mode 0600) on the core loop that magpiectl talks to.
 *
 * Protocol: the client sends one request line (at most MP_ADMIN_LINE_MAX bytes, '\n'-terminated),
 * words separated by spaces, each word percent-encoded where needed ("%20" space, "%25" '%',
 * "%0A" newline; any %XX is accepted). The server answers zero or more "data <text>" lines, then
 * one final "ok" or "error <message>" line, and closes the connection. */
#ifndef MP_ROUTER_ADMIN_H
#define MP_ROUTER_ADMIN_H

#include <stddef.h>

struct mp_core;
struct mp_config;
struct mp_store;

#define MP_ADMIN_LINE_MAX 4096
#define MP_ADMIN_MAX_CLIENTS 16
#define MP_ADMIN_ARGS_MAX 8

typedef struct mp_admin mp_admin;

/* Bind socket_path (removing a stale socket left by a dead server) and start accepting on the
 * core loop. Returns 0, MP_EINVAL (path too long), MP_EEXIST (a server is already listening, or
 * the path is not a socket), MP_EIO or MP_ENOMEM. */
int mp_admin_start(struct mp_core *core, const char *socket_path, mp_admin **out);

/* Close the listener and every client and remove the socket file; memory is freed in the close
 * callbacks, so run the loop afterwards. */
void mp_admin_stop(mp_admin *a);

/* Split line in place into at most max words separated by spaces, percent-decoding each word.
 * Returns the number of words, MP_EINVAL for a malformed escape or an encoded NUL, MP_ELIMIT for
 * more than max words. */
int mp_admin_split(char *line, char **argv, int max);

/* Percent-encode in as one protocol word into out (cap bytes incl. NUL): space, '%', control
 * characters and DEL are escaped. Returns the length, or MP_ELIMIT when out is too small. */
int mp_admin_encode(const char *in, char *out, size_t cap);

/* Receives one "data" line of a command's output; returns 0 or a negative MP_E* to abort. */
typedef int (*mp_admin_emit_cb)(const char *text, void *ud);

/* Run a "user ..." command (argv[0] is "user") on st: add, delete, passwd, list. Shared by the
 * admin socket and magpiectl's offline mode, so both speak and fail alike. Output lines go to
 * emit; on failure returns a negative MP_E* and writes a message (never a password) into err. */
int mp_admin_user_cmd(struct mp_store *st, const struct mp_config *cfg, int argc, char **argv,
                      mp_admin_emit_cb emit, void *ud, char *err, size_t errlen);

#endif
