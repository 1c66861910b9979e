/* The core thread: takes frames from the mux threads, keeps the streams and sessions, and
 * hands stanzas to negotiation, routing and modules. */
#include "router/core_int.h"
#include "router/component.h"
#include "router/acl.h"
#include "router/archive.h"
#include "router/caps.h"
#include "router/journal.h"
#include "router/sm_session.h"
#include "auth/sasl.h"
#include "base/config.h"
#include "base/err.h"
#include "base/log.h"
#include "storage/store.h"
#include "xml/escape.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DRAIN_BATCH 1024

static void
stream_free(mp_core *core, mp_cstream *s)
{
    if (s->state == CS_BOUND)
        mp_presence_session_end(core, s);
    mp_cstream_unbind(core, s);
    if (s->sm) /* after unbinding: its unacknowledged messages must not come back to it */
        mp_sm_end(core, s);
    mp_htab_remove(&core->streams, &s->by_conn);
    core->stats.connections--;
    if (s->sasl)
        mp_sasl_session_free(s->sasl);
    free(s->cb);
    free(s->node);
    free(s->full);
    free(s);
}

void
mp_core_forget_stream(mp_core *core, mp_cstream *s)
{
    stream_free(core, s);
}

void
mp_core_move_stream(mp_core *core, mp_cstream *s, uint64_t conn, mp_link *link)
{
    mp_htab_remove(&core->streams, &s->by_conn);
    s->conn = conn;
    s->link = link;
    /* Cannot fail: the table held this node a moment ago and does not shrink. */
    if (mp_htab_insert(&core->streams, &s->by_conn, mp_hash_u64(conn)) < 0)
        mp_err("core: lost stream %016llx while moving it", (unsigned long long)conn);
}

mp_cstream *
mp_core_stream(mp_core *core, uint64_t conn)
{
    uint64_t h = mp_hash_u64(conn);
    for (mp_hnode *n = mp_htab_find(&core->streams, h); n; n = mp_htab_next_same(n->next, h)) {
        mp_cstream *s = mp_container_of(n, mp_cstream, by_conn);
        if (s->conn == conn)
            return s;
    }
    return NULL;
}

mp_user *
mp_core_user(mp_core *core, const char *bare, size_t len)
{
    uint64_t h = mp_hash_str(bare, len);
    for (mp_hnode *n = mp_htab_find(&core->users, h); n; n = mp_htab_next_same(n->next, h)) {
        mp_user *u = mp_container_of(n, mp_user, by_bare);
        if (u->bare_len == len && memcmp(u->bare, bare, len) == 0)
            return u;
    }
    return NULL;
}

void
mp_core_send_frame(mp_core *core, mp_link *link, int kind, uint64_t conn, const char *aux,
                   size_t aux_len, const char *bytes, size_t len)
{
    mp_frame_out o = {.kind = (uint8_t)kind,
                      .conn = conn,
                      .aux = aux,
                      .aux_len = aux_len,
                      .payload = bytes,
                      .payload_len = len};
    int rc = mp_ring_push(&link->to_mux, &o);
    if (rc < 0)
        mp_err("core: cannot pass %zu bytes to mux %d: %s", len, link->index, mp_strerror(rc));
}

void
mp_core_send(mp_core *core, mp_cstream *s, const char *bytes, size_t len)
{
    if (s->sm && mp_sm_sent(core, s, bytes, len))
        return;
    mp_core_send_frame(core, s->link, MP_LF_SEND, s->conn, NULL, 0, bytes, len);
}

void
mp_core_close_stream(mp_core *core, mp_cstream *s, const char *cond, const char *text)
{
    mp_buf *b = &core->scratch;
    b->len = 0;
    if (cond) {
        mp_info("conn %016llx (%s): stream error %s", (unsigned long long)s->conn, s->ip, cond);
        mp_buf_printf(b, "<stream:error><%s xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>", cond);
        if (text) {
            mp_buf_puts(b, "<text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>");
            mp_xml_escape_text(b, text, strlen(text));
            mp_buf_puts(b, "</text>");
        }
        mp_buf_puts(b, "</stream:error>");
    }
    mp_core_send_frame(core, s->link, MP_LF_CLOSE, s->conn, NULL, 0, b->data, b->len);
    stream_free(core, s);
}

static void
on_stream_header(mp_core *core, mp_link *link, const mp_frame *f)
{
    mp_cstream *s = mp_core_stream(core, f->conn);
    if (!s) {
        s = calloc(1, sizeof *s);
        if (!s || mp_htab_insert(&core->streams, &s->by_conn, mp_hash_u64(f->conn)) < 0) {
            free(s);
            static const char err[] = "<stream:error><resource-constraint "
                                      "xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
                                      "</stream:error>";
            mp_core_send_frame(core, link, MP_LF_CLOSE, f->conn, NULL, 0, err, sizeof err - 1);
            return;
        }
        s->conn = f->conn;
        s->link = link;
        s->since = (int64_t)time(NULL);
        size_t iplen = f->aux_len < sizeof s->ip ? f->aux_len : sizeof s->ip - 1;
        memcpy(s->ip, mp_frame_aux(f), iplen);
        core->stats.connections++;
        s->host = 0;
        for (size_t i = 0; i < core->cfg->nhosts; i++) {
            if (strlen(core->cfg->hosts[i]) == f->to_len &&
                memcmp(core->cfg->hosts[i], mp_frame_to(f), f->to_len) == 0)
                s->host = (int)i;
        }
    }
    s->tls = (f->flags & MP_FF_TLS) != 0;
    s->tls_available = (f->flags & MP_FF_TLS_AVAILABLE) != 0;
    if (s->state == CS_PREAUTH) {
        free(s->cb);
        s->cb = NULL;
        s->cb_len = 0;
        if (f->payload_len) {
            s->cb = malloc(f->payload_len);
            if (s->cb) {
                memcpy(s->cb, mp_frame_payload(f), f->payload_len);
                s->cb_len = f->payload_len;
            }
        }
    }
    mp_cstream_features(core, s);
}

static inline void
handle_frame(mp_core *core, mp_link *link, const mp_frame *f)
{
    mp_cstream *s;
    switch (f->kind) {
    case MP_LF_STREAM:
        on_stream_header(core, link, f);
        break;
    case MP_LF_ELEMENT:
        s = mp_core_stream(core, f->conn);
        if (!s)
            break;
        core->stats.stanzas_in++;
        mp_cstream_element(core, s, f);
        mp_arena_reset(&core->arena);
        break;
    case MP_LF_CLOSED:
        s = mp_core_stream(core, f->conn);
        if (s) {
            mp_debug("conn %016llx: closed (%.*s)", (unsigned long long)f->conn, (int)f->aux_len,
                     mp_frame_aux(f));
            int clean = f->aux_len == strlen(MP_CLOSED_BY_PEER) &&
                        memcmp(mp_frame_aux(f), MP_CLOSED_BY_PEER, f->aux_len) == 0;
            if (!mp_sm_detach(core, s, clean))
                stream_free(core, s);
        }
        break;
    default:
        mp_err("core: unexpected frame kind %d from mux %d", f->kind, link->index);
        break;
    }
    if (core->scratch.cap > 65536)
        mp_buf_free(&core->scratch);
    if (core->deliver.cap > 65536)
        mp_buf_free(&core->deliver);
}

static void
on_frame(const mp_frame *f, void *ud)
{
    mp_link_ctx *lc = ud;
    handle_frame(lc->core, lc->link, f);
}

static void
on_wake(uv_async_t *a)
{
    mp_link_ctx *lc = a->data;
    if (lc->core->stopping)
        return;
    mp_ring_flush_overflow(&lc->link->to_mux);
    while (mp_ring_drain(&lc->link->to_core, on_frame, lc, DRAIN_BATCH) == DRAIN_BATCH)
        ;
    /* A commit per batch bounds what a crash can take to the batch in hand. */
    if (lc->core->journal && mp_journal_sync(lc->core->journal) < 0)
        mp_err("core: in-flight journal commit failed");
}

/* ---- remote multiplexors (link/server.c): frames read from a socket on this loop ---- */

void
mp_core_link_input(mp_core *core, mp_link *link, const mp_frame *f)
{
    if (!core->stopping)
        handle_frame(core, link, f);
}

void
mp_core_link_batch_end(mp_core *core)
{
    if (!core->stopping && core->journal && mp_journal_sync(core->journal) < 0)
        mp_err("core: in-flight journal commit failed");
}

/* Every stream of a link that went away ends as if its TCP connection had died without the
 * client closing it: a resumable session waits for <resume/> on its parked id (parking: a
 * link that discards what is sent to it), any other ends with unavailable presence. */
void
mp_core_link_lost(mp_core *core, mp_link *link, mp_link *parking, uint64_t *parked_seq)
{
    if (core->stopping)
        return;
    mp_htab *t = &core->streams;
    size_t n = 0, cap = 64;
    mp_cstream **v = malloc(cap * sizeof *v);
    for (size_t i = 0; v && i < t->nbuckets; i++) {
        for (mp_hnode *h = t->buckets[i]; h; h = h->next) {
            mp_cstream *s = mp_container_of(h, mp_cstream, by_conn);
            if (s->link != link)
                continue;
            if (n == cap) {
                mp_cstream **nv = realloc(v, 2 * cap * sizeof *v);
                if (!nv) {
                    free(v);
                    v = NULL;
                    break;
                }
                v = nv;
                cap *= 2;
            }
            v[n++] = s;
        }
    }
    if (!v)
        mp_err("core: out of memory ending the streams of mux %d", link->index);
    for (size_t i = 0; v && i < n; i++) {
        mp_cstream *s = v[i];
        /* Freeing one stream may end another of the same link (presence fan-out does not,
         * but a module might): look it up again before touching it. */
        if (mp_core_stream(core, s->conn) != s || s->link != link)
            continue;
        if (mp_sm_detach(core, s, 0))
            mp_core_move_stream(core, s, (0xffull << 56) | (*parked_seq)++, parking);
        else
            stream_free(core, s);
    }
    free(v);
}

static int
recover_one(const char *domain, const char *node, const char *bytes, size_t len, void *ud)
{
    int rc = mp_offline_store_bytes(ud, domain, node, bytes, len, 1);
    return rc == MP_ENOTFOUND ? 0 : rc; /* an account deleted meanwhile takes its mail along */
}

/* Messages acknowledged to their senders and not to their recipients when the server last
 * died: they wait in offline storage now. */
static void
journal_open(mp_core *core)
{
    const char *dir = core->cfg->data_dir;
    if (!dir)
        return;
    char path[4096];
    if (snprintf(path, sizeof path, "%s/inflight.db", dir) >= (int)sizeof path)
        return;
    if (mp_journal_open(path, &core->journal) < 0) {
        mp_warn("core: no in-flight journal (%s): messages unacknowledged by their recipients "
                "will not survive a crash",
                path);
        return;
    }
    /* One transaction for all of them (a commit each is an fsync each), and the journal is
     * emptied only once they are committed to offline storage. */
    mp_store *st = core->store;
    int batch = st->ops->batch_begin && st->ops->batch_begin(st) == 0;
    int n = mp_journal_recover(core->journal, recover_one, core);
    if (batch && st->ops->batch_end(st, n >= 0) < 0)
        n = MP_EIO;
    if (n >= 0 && mp_journal_clear(core->journal) < 0)
        n = MP_EIO; /* stored already: the next start stores them again (duplicates, no loss) */
    if (n > 0)
        mp_warn("core: %d in-flight messages from before a crash moved to offline storage", n);
    else if (n < 0)
        mp_err("core: cannot recover in-flight messages from %s, kept for the next start", path);
}

int
mp_core_new(uv_loop_t *loop, const mp_config *cfg, mp_store *st, mp_link *links, int nlinks,
            mp_core **out)
{
    mp_core *core = calloc(1, sizeof *core);
    if (!core)
        return MP_ENOMEM;
    core->loop = loop;
    core->cfg = cfg;
    core->store = st;
    core->started_ms = uv_now(loop);
    core->started_unix = (int64_t)time(NULL);
    mp_arena_init(&core->arena, 8192);
    int rc = MP_ENOMEM;
    core->parser = mp_xml_parser_new();
    core->links = calloc(nlinks > 0 ? (size_t)nlinks : 1, sizeof *core->links);
    if (!core->parser || !core->links)
        goto fail;
    core->nlinks = nlinks;
    for (int i = 0; i < nlinks; i++) {
        core->links[i].core = core;
        core->links[i].link = &links[i];
        uv_async_init(loop, &core->links[i].wake, on_wake);
        core->links[i].wake.data = &core->links[i];
    }
    rc = mp_sasl_new(st, cfg, &core->sasl);
    if (rc == 0) /* PLAIN's PBKDF2 goes to the thread pool (router/stream.c) */
        mp_sasl_defer_plain(core->sasl, 1);
    if (rc < 0)
        goto fail;
    mp_throttle_init(core);
    rc = mp_services_init(core);
    if (rc < 0)
        goto fail;
    rc = mp_acl_compile(cfg, &core->acl);
    if (rc < 0)
        goto fail;
    rc = mp_modules_load(core);
    if (rc < 0)
        goto fail;
    rc = mp_caps_init(core);
    if (rc < 0)
        goto fail;
    journal_open(core);
    *out = core;
    return 0;
fail:
    mp_core_stop(core);
    mp_core_free(core);
    return rc;
}

uv_async_t *
mp_core_wake_handle(mp_core *core, int link)
{
    return &core->links[link].wake;
}

void
mp_core_set_config(mp_core *core, const mp_config *cfg)
{
    core->cfg = cfg;
    mp_acl_reload(core);
}

void
mp_core_stop(mp_core *core)
{
    if (!core || core->stopping)
        return;
    core->stopping = 1;
    mp_htab *t = &core->streams;
    for (size_t i = 0; i < t->nbuckets; i++)
        for (mp_hnode *n = t->buckets[i]; n; n = n->next)
            mp_sm_stop(core, mp_container_of(n, mp_cstream, by_conn));
    for (int i = 0; i < core->nlinks; i++)
        uv_close((uv_handle_t *)&core->links[i].wake, NULL);
    if (core->sasl)
        mp_throttle_free(core);
    mp_register_free(core);
    mp_services_stop(core); /* IQs awaiting answers are told there will be none */
    mp_archive_stop(core); /* commits the open archive batch */
}

void
mp_core_free(mp_core *core)
{
    if (!core)
        return;
    mp_htab *t = &core->streams;
    for (size_t i = 0; i < t->nbuckets; i++) {
        mp_hnode *n = t->buckets[i];
        while (n) {
            mp_hnode *next = n->next;
            stream_free(core, mp_container_of(n, mp_cstream, by_conn));
            n = next;
        }
    }
    mp_htab_free(&core->streams);
    mp_htab_free(&core->users);
    mp_htab_free(&core->sm_ids);
    mp_journal_close(core->journal);
    mp_modules_unload(core);
    mp_services_free(core);
    mp_acl_free(core->acl);
    if (core->sasl)
        mp_sasl_free(core->sasl);
    if (core->parser)
        mp_xml_parser_free(core->parser);
    mp_arena_free(&core->arena);
    mp_buf_free(&core->scratch);
    mp_buf_free(&core->deliver);
    free(core->links);
    free(core);
}

/* ---- the API of core.h ---- */

uv_loop_t *
mp_core_loop(mp_core *core)
{
    return core->loop;
}

const mp_config *
mp_core_config(mp_core *core)
{
    return core->cfg;
}

mp_store *
mp_core_store(mp_core *core)
{
    return core->store;
}

static int
jid_matches(const mp_cstream *s, const char *jid)
{
    if (!jid)
        return 1;
    size_t n = strlen(jid);
    if (n == s->full_len && memcmp(jid, s->full, n) == 0)
        return 1;
    return n == s->bare_len && memcmp(jid, s->full, n) == 0;
}

void
mp_core_sessions_foreach(mp_core *core, const char *jid, mp_core_session_cb cb, void *ud)
{
    mp_htab *t = &core->streams;
    for (size_t i = 0; i < t->nbuckets; i++) {
        for (mp_hnode *n = t->buckets[i]; n; n = n->next) {
            mp_cstream *s = mp_container_of(n, mp_cstream, by_conn);
            if (s->state != CS_BOUND || !jid_matches(s, jid))
                continue;
            mp_core_session_info info = {.full_jid = s->full,
                                         .ip = s->ip,
                                         .tls = s->tls,
                                         .since = s->since,
                                         .priority = s->priority,
                                         .available = s->available,
                                         .detached = mp_sm_waiting(s)};
            if (cb(&info, ud))
                return;
        }
    }
}

int
mp_core_kick(mp_core *core, const char *jid, const char *text)
{
    int n = 0;
    mp_htab *t = &core->streams;
    for (size_t i = 0; i < t->nbuckets; i++) {
        mp_hnode *h = t->buckets[i];
        while (h) {
            mp_hnode *next = h->next;
            mp_cstream *s = mp_container_of(h, mp_cstream, by_conn);
            if (s->state == CS_BOUND && jid_matches(s, jid)) {
                mp_core_close_stream(core, s, "policy-violation", text);
                n++;
            }
            h = next;
        }
    }
    return n;
}

void
mp_core_stats_get(mp_core *core, mp_core_stats *out)
{
    *out = core->stats;
    out->uptime_s = (uv_now(core->loop) - core->started_ms) / 1000;
}
