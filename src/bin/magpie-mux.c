/* magpie-mux: the multiplexor as its own process. main() only: the mux threads of
 * src/mux/ (the code magpied embeds) with an uplink to the servers of mux.servers in place
 * of the core. */
#include "base/config.h"
#include "base/err.h"
#include "base/htab.h"
#include "base/log.h"
#include "link/link.h"
#include "link/uplink.h"
#include "mux/mux.h"
#include "stream/tls.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define DEFAULT_CONFIG "var/magpie-mux.yml"

typedef struct muxproc {
    uv_loop_t loop;
    mp_config cfg;
    mp_tls_ctx *tls;
    mp_link *links;
    mp_mux **muxes;
    int nlinks;
    mp_uplink *up;
    uv_signal_t sigterm, sigint, sighup;
    int stopped;
} muxproc;

static void
usage(FILE *out)
{
    fprintf(out, "usage: magpie-mux [--config FILE] [--check-config] [--version]\n"
                 "  --config FILE    configuration (default " DEFAULT_CONFIG ")\n"
                 "  --check-config   validate the configuration and exit\n"
                 "  --version        print the version and exit\n");
}

static void
stop_all(muxproc *mp)
{
    if (mp->stopped)
        return;
    mp->stopped = 1;
    /* The mux threads first: each ends its client streams with <system-shutdown/>. */
    for (int i = 0; mp->muxes && i < mp->nlinks; i++) {
        mp_mux_stop(mp->muxes[i]);
        mp->muxes[i] = NULL;
    }
    mp_uplink_stop(mp->up);
    if (uv_is_active((uv_handle_t *)&mp->sigterm)) {
        uv_close((uv_handle_t *)&mp->sigterm, NULL);
        uv_close((uv_handle_t *)&mp->sigint, NULL);
        uv_close((uv_handle_t *)&mp->sighup, NULL);
    }
}

static void
on_term(uv_signal_t *h, int signum)
{
    muxproc *mp = h->data;
    mp_info("received %s, closing client streams", signum == SIGTERM ? "SIGTERM" : "SIGINT");
    stop_all(mp);
}

static void
on_hup(uv_signal_t *h, int signum)
{
    muxproc *mp = h->data;
    mp_config fresh;
    char err[1024];
    if (mp_config_load(mp->cfg.path, &fresh, err, sizeof err) < 0) {
        mp_err("reload failed, keeping the running configuration: %s", err);
        return;
    }
    /* The limits the mux threads apply; listeners and servers need a restart. */
    mp_config *c = &mp->cfg;
    c->log_level = fresh.log_level;
    c->max_stanza_size = fresh.max_stanza_size;
    c->preauth_max_stanza_size = fresh.preauth_max_stanza_size;
    c->preauth_max_elements = fresh.preauth_max_elements;
    c->max_depth = fresh.max_depth;
    c->ping_interval = fresh.ping_interval;
    c->ping_timeout = fresh.ping_timeout;
    c->max_read_rate = fresh.max_read_rate;
    c->read_burst = fresh.read_burst;
    c->preauth_max_read_rate = fresh.preauth_max_read_rate;
    c->preauth_read_burst = fresh.preauth_read_burst;
    c->flood_timeout = fresh.flood_timeout;
    c->max_connections_per_ip = fresh.max_connections_per_ip;
    c->max_attributes = fresh.max_attributes;
    c->max_name_length = fresh.max_name_length;
    c->max_attribute_size = fresh.max_attribute_size;
    mp_log_init(c->log_level, c->log_syslog);
    for (int i = 0; i < mp->nlinks; i++)
        mp_mux_reload(mp->muxes[i], c);
    mp_config_free(&fresh);
    mp_info("configuration reloaded from %s", c->path);
}

static int
start(muxproc *mp)
{
    mp_config *cfg = &mp->cfg;
    int rc;
    mp_log_init(cfg->log_level, cfg->log_syslog);
    mp_hash_seed_init();
    if (mkdir(cfg->data_dir, 0750) < 0 && errno != EEXIST) {
        mp_err("cannot create data_dir %s: %s", cfg->data_dir, strerror(errno));
        return MP_EIO;
    }
    if (cfg->c2s_port || cfg->c2s_direct_tls_port || cfg->http_tls_port) {
        rc = mp_tls_ensure_cert(cfg->tls_certificate, cfg->tls_key, cfg->hosts[0]);
        if (rc == 0)
            rc = mp_tls_ctx_new(cfg->tls_certificate, cfg->tls_key, &mp->tls);
        if (rc < 0) {
            mp_err("TLS is not available (%s, %s)", cfg->tls_certificate, cfg->tls_key);
            return rc;
        }
    }
    mp->nlinks = cfg->mux_threads;
    mp->links = mp_links_new(mp->nlinks, cfg->max_stanza_size);
    mp->muxes = calloc((size_t)mp->nlinks, sizeof *mp->muxes);
    if (!mp->links || !mp->muxes)
        return MP_ENOMEM;
    rc = mp_uplink_new(&mp->loop, cfg, mp->links, mp->nlinks, &mp->up);
    if (rc < 0)
        return rc;
    for (int i = 0; i < mp->nlinks; i++) {
        mp_mux_opts o = {.cfg = cfg,
                         .tls = mp->tls,
                         .link = &mp->links[i],
                         .core_wake = mp_uplink_wake_handle(mp->up, i),
                         .index = i};
        rc = mp_mux_start(&o, &mp->muxes[i]);
        if (rc < 0)
            return rc;
    }
    mp_uplink_start(mp->up);
    uv_signal_init(&mp->loop, &mp->sigterm);
    uv_signal_init(&mp->loop, &mp->sigint);
    uv_signal_init(&mp->loop, &mp->sighup);
    mp->sigterm.data = mp->sigint.data = mp->sighup.data = mp;
    uv_signal_start(&mp->sigterm, on_term, SIGTERM);
    uv_signal_start(&mp->sigint, on_term, SIGINT);
    uv_signal_start(&mp->sighup, on_hup, SIGHUP);
    mp_info("magpie-mux %s for %s: client port %d, direct TLS port %d, %d thread(s), %zu "
            "server(s), policy %s",
            MAGPIE_VERSION, cfg->hosts[0], cfg->c2s_port, cfg->c2s_direct_tls_port,
            cfg->mux_threads, cfg->mux_servers.n,
            cfg->mux_policy == MP_MUX_POLICY_STICKY ? "sticky" : "ordered");
    return 0;
}

static void
close_walk(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void
cleanup(muxproc *mp)
{
    stop_all(mp);
    uv_walk(&mp->loop, close_walk, NULL);
    uv_run(&mp->loop, UV_RUN_DEFAULT);
    mp_uplink_free(mp->up);
    mp_links_free(mp->links, mp->nlinks);
    free(mp->muxes);
    if (mp->tls)
        mp_tls_ctx_free(mp->tls);
    uv_loop_close(&mp->loop);
    mp_config_free(&mp->cfg);
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
        case 'c':
            path = optarg;
            break;
        case 'k':
            check = 1;
            break;
        case 'v':
            printf("magpie-mux %s\n", MAGPIE_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    muxproc mp;
    memset(&mp, 0, sizeof mp);
    char err[1024];
    if (mp_config_load(path, &mp.cfg, err, sizeof err) < 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    if (check) {
        printf("%s: ok\n", path);
        mp_config_free(&mp.cfg);
        return 0;
    }
    signal(SIGPIPE, SIG_IGN);
    if (uv_loop_init(&mp.loop) < 0) {
        mp_config_free(&mp.cfg);
        return 1;
    }
    int rc = start(&mp);
    if (rc == 0)
        uv_run(&mp.loop, UV_RUN_DEFAULT);
    cleanup(&mp);
    if (rc == 0)
        mp_info("stopped");
    return rc == 0 ? 0 : 1;
}
