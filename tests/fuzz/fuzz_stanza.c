/* libFuzzer target for everything the core does with stanzas from a logged-in client: routing,
 * presence, and every module's IQ parser (roster, privacy, blocking, vCard, private storage,
 * search, registration, AMP, disco, version, last, time, ping, and whatever modules are built
 * in: all of them are loaded).
 *
 * The whole path is real except the sockets: a real core on an SQLite store, fed through its
 * link ring exactly as a mux thread feeds it, with the mux's own framer cutting the fuzz bytes
 * (after a fixed stream header) into element frames. Two accounts, alice and bob, each have a
 * session bound to a resource; alice is an admin (announcements). The input is split at NUL
 * bytes (never valid XML): the pieces go alternately to alice's and bob's stream, so a seed
 * can have bob send presence or accept a subscription between alice's stanzas.
 *
 * Invariants: no sanitizer report, and every byte the core writes to a client is well-formed
 * XML in the stream's context (an escaping bug there is an injection into somebody's stream).
 *
 * Each input starts from the same state: both accounts are deleted with everything they own
 * and created again, and both sessions are closed at the end (a session waiting for XEP-0198
 * resumption is ended too), so the core must be left with no stream and no user. SASL is not
 * replayed per input (PBKDF2 would dominate the time; fuzz_sasl covers it): the harness marks each
 * stream authenticated as the SASL success path does, then binds a resource with a real <bind/>.
 *
 * Options (environment): MAGPIE_FUZZ_LOG=debug|info|warn|error (default: errors only);
 * MAGPIE_FUZZ_TRACE=1 prints every frame the core writes (to write or debug a seed). */
#include <dirent.h>
#include <expat.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "auth/scram.h"
#include "base/config.h"
#include "base/err.h"
#include "base/log.h"
#include "link/link.h"
#include "magpie/module.h"
#include "router/core_int.h"
#include "storage/sqlite/sqlite_int.h"
#include "storage/store.h"
#include "xml/framer.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

extern const mp_module_def *const mp_builtin_modules[];

#define HOST "localhost"
#define PASSWORD "fuzzing-password"
#define RING_SIZE (1u << 21)
#define MAX_USERS 64
#ifndef MP_CLOSED_BY_PEER /* link.h: the reason a mux gives when the client closed the stream */
#define MP_CLOSED_BY_PEER "stream closed by peer"
#endif

static const char stream_header[] =
    "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
    "xmlns:stream='http://etherx.jabber.org/streams' to='" HOST "' version='1.0'>";

/* One client connection as the mux keeps it: its framer and what the core told it. */
typedef struct fconn {
    uint64_t id;
    const char *node, *resource;
    mp_framer fr;
    int open;   /* the core knows the stream and has not closed it */
    int framer; /* fr is initialised */
} fconn;

static struct {
    uv_loop_t loop;
    mp_config cfg;
    mp_store *store;
    mp_link link;
    mp_core *core;
    mp_user_cred cred;
    char dir[64], path[96];
    fconn conns[2];
    int trace;
} F;

/* ---- the mux side ---- */

static void
push(const mp_frame_out *o)
{
    if (mp_ring_push(&F.link.to_core, o) < 0)
        abort(); /* the ring is sized for the largest input: not a finding of the target */
}

static int
on_open(void *ud, const mp_stream_header *h)
{
    return 0;
}

static int
on_element(void *ud, const mp_element *el)
{
    fconn *c = ud;
    mp_frame_out o = {.kind = MP_LF_ELEMENT,
                      .el_kind = (uint8_t)el->kind,
                      .conn = c->id,
                      .to = el->to,
                      .to_len = el->to_len,
                      .type = el->type,
                      .type_len = el->type_len,
                      .id = el->id,
                      .id_len = el->id_len,
                      .payload = el->bytes,
                      .payload_len = el->len};
    push(&o);
    return 0;
}

static void
conn_closed(fconn *c, const char *reason)
{
    if (!c->open)
        return;
    c->open = 0;
    mp_frame_out o = {
        .kind = MP_LF_CLOSED, .conn = c->id, .aux = reason, .aux_len = strlen(reason)};
    push(&o);
}

/* The client's </stream:stream>: the mux answers it and hangs up. */
static void
on_close(void *ud)
{
    conn_closed(ud, MP_CLOSED_BY_PEER);
}

static const mp_framer_cb framer_cb = {on_open, on_element, on_close};

/* ---- checking what the core writes ---- */

static void XMLCALL
xml_start(void *ud, const XML_Char *name, const XML_Char **atts)
{
}

static void XMLCALL
xml_end(void *ud, const XML_Char *name)
{
}

/* Bytes sent to a client must continue a stream well: one or more complete elements. */
static void
check_output(const char *bytes, size_t len)
{
    static const char close[] = "</stream:stream>";
    if (len == 0)
        return;
    XML_Parser p = XML_ParserCreateNS("UTF-8", '\1');
    if (!p)
        abort();
    XML_SetElementHandler(p, xml_start, xml_end);
    int ok = XML_Parse(p, stream_header, (int)strlen(stream_header), XML_FALSE) == XML_STATUS_OK &&
             XML_Parse(p, bytes, (int)len, XML_FALSE) == XML_STATUS_OK &&
             XML_Parse(p, close, (int)strlen(close), XML_TRUE) == XML_STATUS_OK;
    if (!ok) {
        fprintf(stderr, "fuzz_stanza: the core sent malformed XML (%s at byte %ld):\n%.*s\n",
                XML_ErrorString(XML_GetErrorCode(p)), (long)XML_GetCurrentByteIndex(p), (int)len,
                bytes);
        XML_ParserFree(p);
        __builtin_trap();
    }
    XML_ParserFree(p);
}

static fconn *
conn_of(uint64_t id)
{
    for (int i = 0; i < 2; i++)
        if (F.conns[i].id == id)
            return &F.conns[i];
    return NULL;
}

static void
on_core_frame(const mp_frame *f, void *ud)
{
    fconn *c = conn_of(f->conn);
    if (!c)
        __builtin_trap(); /* the core wrote to a connection that never existed */
    if (!c->open)
        return; /* as the mux: gone, the core got or will get MP_LF_CLOSED */
    if (F.trace)
        fprintf(stderr, "%s <- [%d] %.*s\n", c->node, f->kind, (int)f->payload_len,
                mp_frame_payload(f));
    switch (f->kind) {
    case MP_LF_SEND:
        check_output(mp_frame_payload(f), f->payload_len);
        break;
    case MP_LF_AUTHED:
        __builtin_trap(); /* nothing in a bound session authenticates again */
    case MP_LF_BOUND:
        check_output(mp_frame_payload(f), f->payload_len);
        if (mp_framer_set_from(&c->fr, mp_frame_aux(f), f->aux_len) < 0)
            abort();
        break;
    case MP_LF_CLOSE:
        check_output(mp_frame_payload(f), f->payload_len);
        c->open = 0;
        break;
    default:
        break; /* a kind newer than this harness: not a finding */
    }
}

/* Let the core take what the mux pushed (its uv_async fires), run due timers, and take what
 * it wrote back. */
static void
pump(void)
{
    for (int i = 0; i < 4; i++) {
        uv_run(&F.loop, UV_RUN_NOWAIT);
        mp_ring_flush_overflow(&F.link.to_mux);
        if (mp_ring_drain(&F.link.to_mux, on_core_frame, NULL, SIZE_MAX) == 0 &&
            F.link.to_mux.overflow.len == 0)
            break;
    }
}

/* Feed client bytes through the connection's framer, as the mux does with a read. */
static void
feed(fconn *c, const char *data, size_t len)
{
    if (!c->open || !c->framer)
        return;
    size_t used = 0;
    int rc = mp_framer_feed(&c->fr, data, len, &used);
    if (rc == MP_EINVAL)
        conn_closed(c, "stream error"); /* the mux answers the error itself and hangs up */
    pump();
}

/* ---- per input: a fresh store state, two bound sessions ---- */

static int
collect_user(const char *node, void *ud)
{
    char **names = ud;
    for (int i = 0; i < MAX_USERS; i++) {
        if (!names[i]) {
            names[i] = strdup(node);
            return names[i] ? 0 : MP_ENOMEM;
        }
    }
    return 1;
}

static void
reset_store(void)
{
    char *names[MAX_USERS] = {0};
    mp_store *st = F.store;
    /* registration may have added accounts: remove every one, with all it owns */
    if (st->ops->user_list(st, HOST, collect_user, names) < 0)
        abort();
    for (int i = 0; i < MAX_USERS && names[i]; i++) {
        st->ops->user_delete(st, HOST, names[i]);
        free(names[i]);
    }
    if (st->ops->user_put(st, HOST, "alice", &F.cred, 1) < 0 ||
        st->ops->user_put(st, HOST, "bob", &F.cred, 1) < 0)
        abort();
}

static void
login(fconn *c)
{
    mp_frame_out o = {.kind = MP_LF_STREAM,
                      .conn = c->id,
                      .to = HOST,
                      .to_len = strlen(HOST),
                      .aux = "127.0.0.1",
                      .aux_len = strlen("127.0.0.1")};
    const mp_framer_limits lim = {.max_element_bytes = F.cfg.max_stanza_size,
                                  .max_elements = 0,
                                  .max_depth = F.cfg.max_depth};
    if (mp_framer_init(&c->fr, MP_NS_CLIENT, &lim, &framer_cb, c) < 0)
        abort();
    c->framer = 1;
    c->open = 1;
    push(&o);
    pump();
    /* What sasl_step() does on success, without the PBKDF2 of a PLAIN check. */
    mp_cstream *s = mp_core_stream(F.core, c->id);
    if (!s || s->state != CS_PREAUTH || !(s->node = strdup(c->node)))
        abort();
    s->state = CS_AUTHED;
    push(&o); /* the stream restart after <success/> */
    pump();
    char bind[256];
    int n = snprintf(bind, sizeof bind,
                     "%s<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                     "<resource>%s</resource></bind></iq>",
                     stream_header, c->resource);
    feed(c, bind, (size_t)n);
    s = mp_core_stream(F.core, c->id);
    if (!c->open || !s || s->state != CS_BOUND)
        abort();
}

/* The client says goodbye with </stream:stream> (a clean end: no stream management session
 * stays behind). A session that lost its connection earlier in the input (a stream error) may
 * still wait for resumption (XEP-0198): it ends as when the server closes it. */
static void
logout(fconn *c)
{
    conn_closed(c, MP_CLOSED_BY_PEER);
    pump();
    if (c->framer)
        mp_framer_free(&c->fr);
    c->framer = 0;
    mp_cstream *s = mp_core_stream(F.core, c->id);
    if (s) {
        mp_core_close_stream(F.core, s, NULL, NULL);
        pump();
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    reset_store();
    login(&F.conns[0]);
    login(&F.conns[1]);
    const char *p = (const char *)data, *end = p + size;
    for (int turn = 0; p <= end; turn ^= 1) {
        const char *nul = memchr(p, '\0', (size_t)(end - p));
        const char *stop = nul ? nul : end;
        feed(&F.conns[turn], p, (size_t)(stop - p));
        p = stop + 1;
    }
    logout(&F.conns[0]);
    logout(&F.conns[1]);
    if (F.core->streams.count != 0 || F.core->users.count != 0)
        __builtin_trap();
    return 0;
}

/* ---- once ---- */

static void
close_walk(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void
teardown(void)
{
    char p[512];
    mp_core_stop(F.core);
    uv_walk(&F.loop, close_walk, NULL);
    uv_run(&F.loop, UV_RUN_DEFAULT);
    mp_core_free(F.core);
    mp_store_close(F.store);
    mp_ring_free(&F.link.to_core);
    mp_ring_free(&F.link.to_mux);
    uv_loop_close(&F.loop);
    mp_config_free(&F.cfg);
    /* the store and whatever else the server keeps in its data_dir (the XEP-0198 journal) */
    DIR *d = opendir(F.dir);
    for (struct dirent *e; d && (e = readdir(d));) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0 &&
            snprintf(p, sizeof p, "%s/%s", F.dir, e->d_name) < (int)sizeof p)
            unlink(p);
    }
    if (d)
        closedir(d);
    rmdir(F.dir);
}

static char *
xstrdup(const char *s)
{
    char *d = strdup(s);
    if (!d)
        abort();
    return d;
}

/* Every built-in module, default or not: new modules get fuzzed without editing this file. */
static void
all_modules(mp_config *cfg)
{
    size_t n = 0;
    while (mp_builtin_modules[n])
        n++;
    for (size_t i = 0; i < cfg->nmodules; i++)
        free(cfg->modules[i]);
    free(cfg->modules);
    cfg->modules = calloc(n, sizeof *cfg->modules);
    if (!cfg->modules)
        abort();
    for (size_t i = 0; i < n; i++)
        cfg->modules[i] = xstrdup(mp_builtin_modules[i]->name);
    cfg->nmodules = n;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *lvl = getenv("MAGPIE_FUZZ_LOG");
    int level = lvl ? mp_log_level_parse(lvl) : MP_LOG_ERROR;
    mp_log_init(level < 0 ? MP_LOG_ERROR : level, 0);
    F.trace = getenv("MAGPIE_FUZZ_TRACE") != NULL;
    /* tmpfs when there is one: the store writes on every roster or privacy change */
    const char *tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(F.dir, sizeof F.dir, "%s/magpie-fuzz-stanza.XXXXXX", tmp);
    if (!mkdtemp(F.dir))
        abort();
    snprintf(F.path, sizeof F.path, "%s/magpie.db", F.dir);

    mp_config *cfg = &F.cfg;
    if (mp_config_defaults(cfg) < 0)
        abort();
    free(cfg->data_dir);
    cfg->data_dir = xstrdup(F.dir);
    free(cfg->sqlite_path);
    cfg->sqlite_path = xstrdup(F.path);
    cfg->tls_required = 0;
    cfg->register_enabled = 1;
    cfg->legacy_auth = 1;
    cfg->acl_admins.v = calloc(1, sizeof *cfg->acl_admins.v);
    if (!cfg->acl_admins.v)
        abort();
    cfg->acl_admins.v[0] = xstrdup("alice@" HOST);
    cfg->acl_admins.n = 1;
    all_modules(cfg);

    if (mp_store_open(cfg, &F.store) < 0)
        abort();
    /* Durability is not under test: no fsync per write. */
    if (mp_sq_exec((sqlite_store *)(void *)F.store, "PRAGMA synchronous=OFF") < 0)
        abort();
    /* Real SCRAM keys, derived once: the minimum iteration count the server accepts. */
    if (mp_scram_make_cred(PASSWORD, 4096, &F.cred) < 0)
        abort();

    if (uv_loop_init(&F.loop) < 0 || mp_ring_init(&F.link.to_core, RING_SIZE) < 0 ||
        mp_ring_init(&F.link.to_mux, RING_SIZE) < 0)
        abort();
    if (mp_core_new(&F.loop, cfg, F.store, &F.link, 1, &F.core) < 0)
        abort();
    F.link.to_core.consumer_wake = mp_core_wake_handle(F.core, 0);
    F.conns[0] = (fconn){.id = 0x100000001ull, .node = "alice", .resource = "fuzz"};
    F.conns[1] = (fconn){.id = 0x100000002ull, .node = "bob", .resource = "phone"};
    atexit(teardown);
    return 0;
}
