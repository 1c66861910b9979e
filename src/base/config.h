/* Configuration: one YAML file, every key documented in docs/configuration.md.
 * mp_config_defaults() gives the embedded defaults; mp_config_load() overlays a file.
 * Unknown keys and bad values are errors reported as "file:line:col: message". */
#ifndef MP_BASE_CONFIG_H
#define MP_BASE_CONFIG_H

#include <stddef.h>

enum mp_sasl_mech_bit {
    MP_MECH_PLAIN = 1 << 0,
    MP_MECH_SCRAM_SHA_1 = 1 << 1,
    MP_MECH_SCRAM_SHA_1_PLUS = 1 << 2,
    MP_MECH_SCRAM_SHA_256 = 1 << 3,
    MP_MECH_SCRAM_SHA_256_PLUS = 1 << 4,
};

enum mp_conflict_policy { MP_CONFLICT_REPLACE = 0, MP_CONFLICT_REFUSE = 1 };

/* mux.policy */
enum mp_mux_policy { MP_MUX_POLICY_ORDERED = 0, MP_MUX_POLICY_STICKY = 1 };

/* acl.see_presence */
enum mp_see_presence { MP_SEE_ALL = 0, MP_SEE_SAME_DOMAIN = 1 };

/* A list of strings read from the file. */
typedef struct mp_strlist {
    char **v;
    size_t n;
} mp_strlist;

typedef struct mp_config {
    char *path; /* file it was loaded from, NULL for embedded defaults */

    /* hosts: domains this server serves. Default ["localhost"]. */
    char **hosts;
    size_t nhosts;

    char *data_dir; /* data_dir: default "var" (relative to the working directory) */

    /* log: */
    int log_level;  /* log.level: error|warn|info|debug, default info */
    int log_syslog; /* log.syslog: bool, default false */

    /* c2s: */
    char *c2s_address;             /* c2s.address: default "0.0.0.0" */
    int c2s_port;                  /* c2s.port: default 5222, 0 disables */
    int c2s_direct_tls_port;       /* c2s.direct_tls_port: default 5223, 0 disables */
    int tls_required;              /* c2s.tls_required: default true */
    size_t max_stanza_size;        /* c2s.max_stanza_size: default 262144 (floor 10000) */
    size_t preauth_max_stanza_size; /* c2s.preauth_max_stanza_size: default 8192 */
    int preauth_max_elements;      /* c2s.preauth_max_elements: default 32 */
    int max_depth;                 /* c2s.max_depth: default 64 */
    int unauthenticated_timeout;   /* c2s.unauthenticated_timeout: seconds, default 60 */
    int conflict_policy;           /* c2s.resource_conflict: replace|refuse, default replace */
    int legacy_auth;               /* c2s.legacy_auth: XEP-0078 non-SASL login, default false */
    int max_sessions_per_user;     /* c2s.max_sessions_per_user: default 10 */
    size_t max_output_buffer;      /* c2s.max_output_buffer: bytes queued to a slow reader, default 1 MiB */
    int ping_interval;             /* c2s.ping_interval: seconds of silence before a ping, default 300 */
    int ping_timeout;              /* c2s.ping_timeout: seconds to answer it, default 60 */
    size_t max_read_rate;          /* c2s.max_read_rate: bytes/s after auth, default 100 KiB, 0 off */
    size_t read_burst;             /* c2s.read_burst: bytes, default 1 MiB */
    size_t preauth_max_read_rate;  /* c2s.preauth_max_read_rate: bytes/s, default 16 KiB, 0 off */
    size_t preauth_read_burst;     /* c2s.preauth_read_burst: bytes, default 64 KiB */
    int flood_timeout;             /* c2s.flood_timeout: seconds over the rate, default 60 */
    int max_connections_per_ip;    /* c2s.max_connections_per_ip: default 64, 0 off */
    int max_attributes;            /* c2s.max_attributes: per element, default 64 */
    int max_name_length;           /* c2s.max_name_length: bytes, default 256 */
    size_t max_attribute_size;     /* c2s.max_attribute_size: bytes, default 8192 */

    /* http: */
    int http_port;     /* http.port: default 5280, 0 disables */
    int http_tls_port; /* http.tls_port: default 5443, 0 disables */
    size_t http_max_body_size;   /* http.max_body_size: bytes of a request body, default 1 MiB */
    size_t http_max_header_size; /* http.max_header_size: request line + headers, default 16 KiB */
    int http_keepalive_timeout;  /* http.keepalive_timeout: seconds, default 30 */
    mp_strlist http_cors_origins; /* http.cors_origins: default ["*"] */
    int http_consider_secure;    /* http.consider_secure: plain HTTP counts as TLS, default false */
    char *http_public_url;       /* http.public_url: default "" (from the Host header) */
    char *http_web_root;         /* http.web_root: default MAGPIE_WEB_ROOT */
    char *http_websocket_see_other_uri; /* http.websocket_see_other_uri: default "" (none) */
    size_t http_websocket_max_message;  /* http.websocket_max_message: 0 = c2s.max_stanza_size */
    int http_bosh_max_wait;       /* http.bosh_max_wait: seconds, default 60 */
    int http_bosh_max_hold;       /* http.bosh_max_hold: default 1 */
    int http_bosh_max_requests;   /* http.bosh_max_requests: default 2 */
    int http_bosh_max_inactivity; /* http.bosh_max_inactivity: seconds, default 60 */
    int http_bosh_max_pause;      /* http.bosh_max_pause: seconds, default 300, 0 off */

    /* tls: */
    char *tls_certificate; /* tls.certificate: default "<data_dir>/magpie.crt", generated if missing */
    char *tls_key;         /* tls.key: default "<data_dir>/magpie.key", generated if missing */

    /* sasl: */
    unsigned sasl_mechanisms;   /* sasl.mechanisms: list, default all five */
    unsigned scram_iterations;  /* sasl.scram_iterations: default 4096, min 4096 */
    int auth_failure_delay_ms;  /* sasl.failure_delay_ms: base delay per recent failure, default 500 */
    int auth_max_failures;      /* sasl.max_failures: per IP and per account within the window, default 10 */
    int auth_failure_window;    /* sasl.failure_window: seconds, default 300 */

    /* storage: */
    char *storage_backend; /* storage.backend: "sqlite" */
    char *sqlite_path;     /* storage.sqlite_path: default "<data_dir>/magpie.db" */

    /* admin: */
    char *admin_socket; /* admin.socket: default "<data_dir>/magpied.sock" */

    /* core: */
    int mux_threads; /* core.mux_threads: default 1 */
    int embedded_mux; /* core.embedded_mux: default true; false: clients only via magpie-mux */

    /* link: magpied's listener for magpie-mux processes (link/server.c) */
    char *link_address;     /* link.address: default "127.0.0.1" */
    int link_port;          /* link.port: default 45222 */
    char *link_secret;      /* link.secret: shared secret; unset (default): no listener */
    int link_tls;           /* link.tls: TLS with the tls.* certificate, default false */
    size_t link_max_frame;  /* link.max_frame: bytes, 0 (default): from c2s.max_stanza_size */
    size_t link_max_output; /* link.max_output: bytes queued to one link, default 64 MiB */

    /* mux: magpie-mux's links to its servers (link/uplink.c) */
    mp_strlist mux_servers;   /* mux.servers: "host:port", in order of preference */
    char *mux_secret;         /* mux.secret: the servers' link.secret */
    int mux_tls;              /* mux.tls: default false */
    char *mux_tls_ca;         /* mux.tls_ca: PEM the server certificate must chain to */
    int mux_policy;           /* mux.policy: ordered|sticky (MP_MUX_POLICY_*), default ordered */
    int mux_reconnect_ms;     /* mux.reconnect_ms: first retry delay, default 500 */
    int mux_reconnect_max_ms; /* mux.reconnect_max_ms: longest retry delay, default 30000 */

    /* offline: */
    int offline_max_messages; /* offline.max_messages: default 100, 0 disables */

    /* sm: (XEP-0198) */
    int sm_enabled;           /* sm.enabled: default true */
    int sm_resume_timeout;    /* sm.resume_timeout: seconds, default 300, 0 = no resumption */
    int sm_max_queue;         /* sm.max_queue: unacknowledged stanzas, default 5000 */
    size_t sm_max_queue_size; /* sm.max_queue_size: their bytes, default 4 MiB */
    int sm_ack_request_every; /* sm.ack_request_every: default 5 */

    /* vcard: */
    size_t vcard_max_size; /* vcard.max_size: bytes of one stored vCard, default 64 KiB */

    /* version: (XEP-0092) */
    int version_hide;    /* version.hide_version: no answer, no disco feature; default false */
    int version_hide_os; /* version.hide_os: answer without <os/>; default false */

    /* register: in-band registration (XEP-0077) */
    int register_enabled;      /* register.enabled: new accounts over XMPP, default false */
    int register_max_per_ip;   /* register.max_per_ip: accounts per IP per window, default 3 */
    int register_window;       /* register.window: seconds, default 3600 */
    int register_min_password; /* register.min_password_length: characters, default 8 */

    /* acl: site policies, compiled by src/router/acl.c. A principal list holds "all",
     * "local", "admins", domains (lower case, nameprep) and bare JIDs (stringprep), already
     * normalised and checked. */
    mp_strlist acl_admins;       /* acl.admins: bare JIDs, default none */
    int acl_see_presence;        /* acl.see_presence: all|same_domain, default all */
    mp_strlist acl_send_alerts;  /* acl.send_alerts: default [admins] */
    mp_strlist acl_save_private; /* acl.save_private: default [all] */
    mp_strlist acl_save_vcard;   /* acl.save_vcard: default [all] */
    mp_strlist acl_create_rooms; /* acl.create_rooms: default [local] */

    /* search: user directory (XEP-0055) */
    int search_max_results; /* search.max_results: items in one answer, default 50 */

    /* privacy: (XEP-0016, XEP-0191) */
    int privacy_max_lists; /* privacy.max_lists: lists per account, default 64 */
    int privacy_max_items; /* privacy.max_items: items per list, default 1024 */

    /* csi: client state indication (XEP-0352) */
    int csi_max_presences; /* csi.max_presences: held per inactive session, default 100 */

    /* mam: message archive (XEP-0313) */
    int mam_retention_days; /* mam.retention_days: days kept, 0 = forever; default 0 */
    int mam_max_messages;   /* mam.max_messages: per account, oldest go first; default 100000 */
    int mam_default;        /* mam.default: always|never|roster (MP_ARCHIVE_*), default always */
    int mam_max_page_size;  /* mam.max_page_size: results per query page, default 100 */
    int mam_batch_ms;       /* mam.batch_ms: appends grouped per commit, 0 = none; default 5 */

    /* muc: multi-user chat (XEP-0045) */
    char *muc_label;         /* muc.label: service <label>.<host>, default "conference" */
    int muc_max_rooms;       /* muc.max_rooms: rooms held at once, 0 = no limit; default 10000 */
    int muc_max_occupants;   /* muc.max_occupants: per room, default 5000 */
    int muc_default_history; /* muc.default_history: history length of new rooms, default 20 */
    int muc_max_history;     /* muc.max_history: highest configurable history length, 200 */
    int muc_max_nick_len;    /* muc.max_nick_len: bytes, default 64 */
    int muc_max_text_len;    /* muc.max_text_len: subject, name, description, password; 1024 */
    int muc_max_presence_len; /* muc.max_presence_len: presence kept per occupant, 8192 */
    int muc_default_logging; /* muc.default_logging: new rooms archived, default true */

    /* caps: client entity capabilities (XEP-0115), module caps */
    int caps_cache_size; /* caps.cache_size: verified vers kept, least recently used go; 4096 */
    int caps_max_queries; /* caps.max_queries_per_session: disco#info in flight to one, 4 */

    /* push: push notifications (XEP-0357), module push */
    int push_include_body;   /* push.include_body: bodies to every app server; default false */
    int push_body_opt_in;    /* push.body_opt_in: a registration may ask for bodies; default 1 */
    int push_min_interval_ms; /* push.min_interval_ms: per registration, bursts coalesced; 2000 */
    int push_max_registrations; /* push.max_registrations: per account, default 10 */
    size_t push_max_reg_size;   /* push.max_registration_size: jid+node+form bytes, 4096 */

    /* pubsub: publish-subscribe (XEP-0060) at <label>.<host> and PEP (XEP-0163), module pubsub */
    char *pubsub_label;        /* pubsub.label: service <label>.<host>, default "pubsub" */
    int pubsub_max_nodes;      /* pubsub.max_nodes_per_user: nodes an account owns, default 1000 */
    int pubsub_max_items;      /* pubsub.max_items: highest max_items of a node, default 1000 */
    size_t pubsub_max_payload; /* pubsub.max_payload_size: bytes of one item, default 256 KiB */
    int pubsub_max_subs;       /* pubsub.max_subscriptions: per account and node, default 16 */
    int pubsub_max_id_len;     /* pubsub.max_id_length: node names, item ids; default 1024 */
    int pubsub_max_node_entries; /* pubsub.max_node_entries: owner-set rows per node, 1000 */
    int pubsub_avatar_conversion; /* pubsub.avatar_conversion: XEP-0398, default on */

    /* modules: list of module names to load, default ping, disco, version, time, last,
     * vcard, private, search */
    char **modules;
    size_t nmodules;
} mp_config;

/* Fill *cfg with the embedded defaults. Returns 0 or MP_ENOMEM. */
int mp_config_defaults(mp_config *cfg);

/* Load path over the defaults. On failure returns MP_EINVAL and writes
 * "path:line:col: message" into err (errlen bytes); *cfg is left freed/zeroed. */
int mp_config_load(const char *path, mp_config *cfg, char *err, size_t errlen);

/* Write a commented default configuration to path (used on first start).
 * Fails with MP_EEXIST if the file exists. */
int mp_config_write_default(const char *path);

void mp_config_free(mp_config *cfg);

/* Exchange the acl: settings of a and b: a reload takes the new site policies this way. */
void mp_config_swap_acl(mp_config *a, mp_config *b);

/* Nonzero when domain (already prepared, lower case) is one of cfg->hosts. */
int mp_config_is_host(const mp_config *cfg, const char *domain, size_t len);

/* Name <-> bit for SASL mechanisms; 0 / NULL when unknown. */
unsigned mp_config_mech_bit(const char *name);
const char *mp_config_mech_name(unsigned bit);

#endif
