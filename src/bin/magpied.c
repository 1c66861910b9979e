/* magpied: the IM server. main() only: wiring and signals. */
#include "base/config.h"
#include "base/err.h"
#include "base/htab.h"
#include "base/log.h"
#include "link/link.h"
#include "link/server.h"
#include "mux/mux.h"
#include "router/admin.h"
#include "router/core.h"
#include "storage/store.h"
#include "stream/tls.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_CONFIG "var/magpie.yml"

typedef struct server {
    uv_loop_t loop;
    mp_config cfg;
    mp_store *store;
    mp_tls_ctx *tls;
    mp_link *links;
    int nlinks;
    mp_core *core;
    mp_mux **muxes;
    mp_link_server *linksrv; /* remote multiplexors (magpie-mux) */
    mp_admin *admin;
    uv_signal_t sigterm, sigint, sighup;
    int exit_code;
} server;

static void
usage(FILE *out)
{
    fprintf(out, "usage: magpied [--config FILE] [--check-config] [--version]\n"
                 "  --config FILE    configuration (default " DEFAULT_CONFIG
                 "; written with defaults if missing)\n"
                 "  --check-config   validate the configuration and exit\n"
                 "  --version        print the version and exit\n");
}

static int
mkdir_p(const char *path, mode_t mode)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp)
        return MP_EINVAL;
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, mode) < 0 && errno != EEXIST)
            return MP_EIO;
        *p = '/';
    }
    if (mkdir(tmp, mode) < 0 && errno != EEXIST)
        return MP_EIO;
    return 0;
}

static int
parent_dir(const char *path, char *out, size_t cap)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return snprintf(out, cap, ".") < 0 ? MP_EINVAL : 0;
    size_t n = (size_t)(slash - path);
    if (n == 0)
        n = 1;
    if (n >= cap)
        return MP_EINVAL;
    memcpy(out, path, n);
    out[n] = '\0';
    return 0;
}

static void
shutdown_server(server *sv)
{
    mp_info("shutting down");
    if (sv->admin) {
        mp_admin_stop(sv->admin);
        sv->admin = NULL;
    }
    for (int i = 0; i < sv->nlinks; i++) {
        mp_mux_stop(sv->muxes[i]);
        sv->muxes[i] = NULL;
    }
    mp_link_server_stop(sv->linksrv);
    mp_core_stop(sv->core);
    uv_close((uv_handle_t *)&sv->sigterm, NULL);
    uv_close((uv_handle_t *)&sv->sigint, NULL);
    uv_close((uv_handle_t *)&sv->sighup, NULL);
}

static void
on_term(uv_signal_t *h, int signum)
{
    server *sv = h->data;
    mp_info("received %s", signum == SIGTERM ? "SIGTERM" : "SIGINT");
    shutdown_server(sv);
}

static void
on_hup(uv_signal_t *h, int signum)
{
    server *sv = h->data;
    mp_config fresh;
    char err[1024];
    if (!sv->cfg.path || mp_config_load(sv->cfg.path, &fresh, err, sizeof err) < 0) {
        mp_err("reload failed, keeping the running configuration: %s",
               sv->cfg.path ? err : "no file");
        return;
    }
    /* Only settings that are safe to change under running streams are taken; listeners,
     * hosts and storage need a restart. The mux threads get their own copy of the limits. */
    mp_config *c = &sv->cfg;
    c->log_level = fresh.log_level;
    c->max_stanza_size = fresh.max_stanza_size;
    c->preauth_max_stanza_size = fresh.preauth_max_stanza_size;
    c->preauth_max_elements = fresh.preauth_max_elements;
    c->max_depth = fresh.max_depth;
    c->conflict_policy = fresh.conflict_policy;
    c->max_sessions_per_user = fresh.max_sessions_per_user;
    c->ping_interval = fresh.ping_interval;
    c->ping_timeout = fresh.ping_timeout;
    c->auth_failure_delay_ms = fresh.auth_failure_delay_ms;
    c->auth_max_failures = fresh.auth_max_failures;
    c->auth_failure_window = fresh.auth_failure_window;
    c->sasl_mechanisms = fresh.sasl_mechanisms;
    c->max_read_rate = fresh.max_read_rate;
    c->read_burst = fresh.read_burst;
    c->preauth_max_read_rate = fresh.preauth_max_read_rate;
    c->preauth_read_burst = fresh.preauth_read_burst;
    c->flood_timeout = fresh.flood_timeout;
    c->max_connections_per_ip = fresh.max_connections_per_ip;
    c->max_attributes = fresh.max_attributes;
    c->max_name_length = fresh.max_name_length;
    c->max_attribute_size = fresh.max_attribute_size;
    c->sm_resume_timeout = fresh.sm_resume_timeout; /* for sessions enabled from now on */
    c->sm_max_queue = fresh.sm_max_queue;
    c->sm_max_queue_size = fresh.sm_max_queue_size;
    c->sm_ack_request_every = fresh.sm_ack_request_every;
    mp_config_swap_acl(c, &fresh);
    mp_core_set_config(sv->core, c); /* recompiles the site policies */
    mp_log_init(c->log_level, c->log_syslog);
    for (int i = 0; i < sv->nlinks; i++)
        mp_mux_reload(sv->muxes[i], c);
    mp_config_free(&fresh);
    mp_info("configuration reloaded from %s", c->path);
}

static int
load_config(const char *path, mp_config *cfg, int create)
{
    char err[1024];
    if (create && access(path, F_OK) != 0) {
        char dir[4096];
        if (parent_dir(path, dir, sizeof dir) < 0 || mkdir_p(dir, 0750) < 0) {
            fprintf(stderr, "magpied: cannot create the folder of %s: %s\n", path, strerror(errno));
            return MP_EIO;
        }
        int rc = mp_config_write_default(path);
        if (rc < 0 && rc != MP_EEXIST) {
            fprintf(stderr, "magpied: cannot write %s: %s\n", path, mp_strerror(rc));
            return rc;
        }
        fprintf(stderr, "magpied: wrote a default configuration to %s\n", path);
    }
    if (mp_config_load(path, cfg, err, sizeof err) < 0) {
        fprintf(stderr, "%s\n", err);
        return MP_EINVAL;
    }
    return 0;
}

static int
start(server *sv)
{
    mp_config *cfg = &sv->cfg;
    int rc;
    mp_log_init(cfg->log_level, cfg->log_syslog);
    mp_hash_seed_init();
    if (mkdir_p(cfg->data_dir, 0750) < 0) {
        mp_err("cannot create data_dir %s: %s", cfg->data_dir, strerror(errno));
        return MP_EIO;
    }
    int embedded = cfg->embedded_mux;
    if ((embedded && (cfg->c2s_port || cfg->c2s_direct_tls_port)) ||
        (cfg->link_tls && cfg->link_secret[0])) {
        rc = mp_tls_ensure_cert(cfg->tls_certificate, cfg->tls_key, cfg->hosts[0]);
        if (rc == 0)
            rc = mp_tls_ctx_new(cfg->tls_certificate, cfg->tls_key, &sv->tls);
        if (rc < 0) {
            mp_err("TLS is not available (%s, %s)", cfg->tls_certificate, cfg->tls_key);
            return rc;
        }
    }
    rc = mp_store_open(cfg, &sv->store);
    if (rc < 0) {
        mp_err("cannot open storage: %s", mp_strerror(rc));
        return rc;
    }
    sv->nlinks = embedded ? cfg->mux_threads : 0;
    sv->links = mp_links_new(sv->nlinks, cfg->max_stanza_size);
    sv->muxes = calloc(embedded ? (size_t)sv->nlinks : 1, sizeof *sv->muxes);
    if (!sv->links || !sv->muxes)
        return MP_ENOMEM;
    rc = mp_core_new(&sv->loop, cfg, sv->store, sv->links, sv->nlinks, &sv->core);
    if (rc < 0)
        return rc;
    for (int i = 0; i < sv->nlinks; i++) {
        mp_mux_opts o = {.cfg = cfg, .tls = sv->tls, .link = &sv->links[i],
                         .core_wake = mp_core_wake_handle(sv->core, i), .index = i};
        rc = mp_mux_start(&o, &sv->muxes[i]);
        if (rc < 0)
            return rc;
    }
    if (cfg->link_secret[0]) {
        rc = mp_link_server_start(&sv->loop, cfg, sv->core, &sv->linksrv);
        if (rc < 0)
            return rc;
    } else {
        mp_info("link: no link.secret set, so no listener for magpie-mux");
        if (!embedded)
            mp_warn("core.embedded_mux is off and link.secret unset: no client can connect");
    }
    rc = mp_admin_start(sv->core, cfg->admin_socket, &sv->admin);
    if (rc < 0) {
        mp_err("cannot open the admin socket %s", cfg->admin_socket);
        return rc;
    }
    uv_signal_init(&sv->loop, &sv->sigterm);
    uv_signal_init(&sv->loop, &sv->sigint);
    uv_signal_init(&sv->loop, &sv->sighup);
    sv->sigterm.data = sv->sigint.data = sv->sighup.data = sv;
    uv_signal_start(&sv->sigterm, on_term, SIGTERM);
    uv_signal_start(&sv->sigint, on_term, SIGINT);
    uv_signal_start(&sv->sighup, on_hup, SIGHUP);
    if (embedded)
        mp_info("magpied %s serving %s: client port %d, direct TLS port %d, %d mux thread(s)",
                MAGPIE_VERSION, cfg->hosts[0], cfg->c2s_port, cfg->c2s_direct_tls_port,
                cfg->mux_threads);
    else
        mp_info("magpied %s serving %s through magpie-mux only (core.embedded_mux off)",
                MAGPIE_VERSION, cfg->hosts[0]);
    return 0;
}

static void
close_walk(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void
cleanup(server *sv)
{
    if (sv->admin)
        mp_admin_stop(sv->admin);
    for (int i = 0; sv->muxes && i < sv->nlinks; i++)
        mp_mux_stop(sv->muxes[i]);
    mp_link_server_stop(sv->linksrv);
    if (sv->core)
        mp_core_stop(sv->core);
    uv_walk(&sv->loop, close_walk, NULL);
    uv_run(&sv->loop, UV_RUN_DEFAULT);
    mp_core_free(sv->core);
    mp_link_server_free(sv->linksrv); /* after the core: its streams point at the links */
    mp_links_free(sv->links, sv->nlinks);
    free(sv->muxes);
    if (sv->store)
        mp_store_close(sv->store);
    if (sv->tls)
        mp_tls_ctx_free(sv->tls);
    uv_loop_close(&sv->loop);
    mp_config_free(&sv->cfg);
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"check-config", no_argument, NULL, 'k'},
                                         {"version", no_argument, NULL, 'v'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *path = DEFAULT_CONFIG;
    int check = 0, c;
    while ((c = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
        switch (c) {
        case 'c': path = optarg; break;
        case 'k': check = 1; break;
        case 'v': printf("magpied %s\n", MAGPIE_VERSION); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    server sv;
    memset(&sv, 0, sizeof sv);
    if (load_config(path, &sv.cfg, !check) < 0)
        return 1;
    if (check) {
        printf("%s: ok\n", path);
        mp_config_free(&sv.cfg);
        return 0;
    }
    signal(SIGPIPE, SIG_IGN);
    if (uv_loop_init(&sv.loop) < 0) {
        mp_config_free(&sv.cfg);
        return 1;
    }
    int rc = start(&sv);
    if (rc == 0) {
        uv_run(&sv.loop, UV_RUN_DEFAULT);
        sv.admin = NULL;
        memset(sv.muxes, 0, (size_t)sv.nlinks * sizeof *sv.muxes);
    } else {
        sv.exit_code = 1;
    }
    cleanup(&sv);
    if (rc == 0)
        mp_info("stopped");
    return sv.exit_code;
}
