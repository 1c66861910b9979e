/* Configuration loader. The file is read as a stream of libfyaml events rather
 * than as a document tree: libfyaml 0.7 exposes no start mark for mapping and
 * sequence nodes, and every error must point at the offending node. One table per
 * section drives parsing, checking and the commented default file, so a key
 * cannot exist in one and be missing from another. */
#include "base/config.h"
#include "base/err.h"
#include "base/log.h"
#include "xmpp/jid.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libfyaml.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_DATA_DIR "var"
#ifndef MAGPIE_WEB_ROOT
#define MAGPIE_WEB_ROOT "/usr/share/magpie/web"
#endif
#define SIZE_MAX_CFG ((long long)1 << 30) /* 1 GiB: larger limits are certainly typos */
#define DOMAIN_MAX 1023                   /* RFC 7622 domainpart */

enum kind {
    K_SECTION,
    K_STR,      /* non-empty string */
    K_ADDR,     /* IPv4 or IPv6 literal */
    K_PATH,     /* non-empty string, default derived from data_dir */
    K_BOOL,     /* int */
    K_INT,      /* int, [min, max] */
    K_UINT,     /* unsigned, [min, max] */
    K_SIZE,     /* size_t, [min, max], integer or with a K/KiB/M/MiB/G/GiB suffix */
    K_LOGLEVEL, /* int */
    K_CONFLICT, /* int */
    K_BACKEND,  /* char * */
    K_MECHS,    /* unsigned bit set */
    K_HOSTS,    /* char ** + size_t */
    K_MODULES,  /* char ** + size_t */
    K_SEEPRES,  /* int, enum mp_see_presence */
    K_ACLLIST,  /* mp_strlist: all, local, admins, domains, bare JIDs */
    K_ACLJIDS,  /* mp_strlist: bare JIDs */
    K_ARCHMODE, /* int, MP_ARCHIVE_ALWAYS|NEVER|ROSTER of storage/store.h */
    K_OPTSTR,   /* char *, may be "" (unset) */
    K_STRLIST,  /* mp_strlist of non-empty strings */
    K_MUXPOLICY, /* int, enum mp_mux_policy */
};

struct key {
    const char *name;
    enum kind kind;
    size_t off;
    long long min, max;
    const struct key *sub; /* K_SECTION */
    const char *doc;       /* one line, for the default file */
};

#define F(field) offsetof(mp_config, field)

static const struct key log_keys[] = {
    {"level", K_LOGLEVEL, F(log_level), 0, 0, NULL, "error, warn, info or debug"},
    {"syslog", K_BOOL, F(log_syslog), 0, 0, NULL, "true: log to syslog(3) instead of stderr"},
    {NULL, 0, 0, 0, 0, NULL, NULL},
};

static const struct key c2s_keys[] = {
    {"address", K_ADDR, F(c2s_address), 0, 0, NULL,
     "IPv4 or IPv6 address the client listeners bind to"},
    {"port", K_INT, F(c2s_port), 0, 65535, NULL, "client port with STARTTLS; 0 disables"},
    {"direct_tls_port", K_INT, F(c2s_direct_tls_port), 0, 65535, NULL,
     "client port with direct TLS (XEP-0368); 0 disables"},
    {"tls_required", K_BOOL, F(tls_required), 0, 0, NULL,
     "refuse authentication on a connection without TLS"},
    {"max_stanza_size", K_SIZE, F(max_stanza_size), 10000, SIZE_MAX_CFG, NULL,
     "largest stanza after authentication (RFC 6120 floor: 10000)"},
    {"preauth_max_stanza_size", K_SIZE, F(preauth_max_stanza_size), 1024, SIZE_MAX_CFG, NULL,
     "largest stanza before authentication, at most max_stanza_size"},
    {"preauth_max_elements", K_INT, F(preauth_max_elements), 1, 1000000, NULL,
     "elements allowed in one stanza before authentication"},
    {"max_depth", K_INT, F(max_depth), 2, 1000, NULL, "deepest XML element nesting accepted"},
    {"unauthenticated_timeout", K_INT, F(unauthenticated_timeout), 1, 3600, NULL,
     "seconds a connection may stay unauthenticated"},
    {"resource_conflict", K_CONFLICT, F(conflict_policy), 0, 0, NULL,
     "replace: a new session with a bound resource kicks the old one; refuse: the new one fails"},
    {"legacy_auth", K_BOOL, F(legacy_auth), 0, 0, NULL,
     "true: also offer non-SASL login (XEP-0078), plaintext password, only where PLAIN is"},
    {"max_sessions_per_user", K_INT, F(max_sessions_per_user), 1, 10000, NULL,
     "simultaneous sessions of one account"},
    {"max_output_buffer", K_SIZE, F(max_output_buffer), 4096, SIZE_MAX_CFG, NULL,
     "bytes queued to a slow reader before it is disconnected"},
    {"ping_interval", K_INT, F(ping_interval), 0, 86400, NULL,
     "seconds of silence after which the server pings a client (XEP-0199); 0 disables"},
    {"ping_timeout", K_INT, F(ping_timeout), 1, 3600, NULL,
     "seconds a pinged client has to answer before it is disconnected"},
    {"max_read_rate", K_SIZE, F(max_read_rate), 0, SIZE_MAX_CFG, NULL,
     "bytes per second read from an authenticated client after its burst; 0 disables"},
    {"read_burst", K_SIZE, F(read_burst), 1024, SIZE_MAX_CFG, NULL,
     "bytes an authenticated client may send at once before max_read_rate applies"},
    {"preauth_max_read_rate", K_SIZE, F(preauth_max_read_rate), 0, SIZE_MAX_CFG, NULL,
     "bytes per second read before authentication after the burst; 0 disables"},
    {"preauth_read_burst", K_SIZE, F(preauth_read_burst), 1024, SIZE_MAX_CFG, NULL,
     "bytes a client may send at once before authentication"},
    {"flood_timeout", K_INT, F(flood_timeout), 1, 3600, NULL,
     "seconds a client may stay over its read rate before policy-violation"},
    {"max_connections_per_ip", K_INT, F(max_connections_per_ip), 0, 1000000, NULL,
     "connections from one IPv4 address or IPv6 /64, loopback included; 0 disables"},
    {"max_attributes", K_INT, F(max_attributes), 1, 100000, NULL,
     "attributes plus namespace declarations on one element"},
    {"max_name_length", K_INT, F(max_name_length), 16, 65536, NULL,
     "bytes of one element or attribute name"},
    {"max_attribute_size", K_SIZE, F(max_attribute_size), 256, SIZE_MAX_CFG, NULL,
     "bytes of one attribute value or namespace URI"},
    {NULL, 0, 0, 0, 0, NULL, NULL},
};

static const struct key http_keys[] = {
    {"port", K_INT, F(http_port), 0, 65535, NULL, "HTTP port of the web transports"},
    {"tls_port", K_INT, F(http_tls_port), 0, 65535, NULL,
     "HTTPS port of the web transports; 0 disables"},
    {"max_body_size", K_SIZE, F(http_max_body_size), 1024, SIZE_MAX_CFG, NULL,
     "largest HTTP request body (413 above)"},
    {"max_header_size", K_SIZE, F(http_max_header_size), 1024, 1 << 20, NULL,
     "largest HTTP request line plus headers (431 above)"},
    {"keepalive_timeout", K_INT, F(http_keepalive_timeout), 1, 3600, NULL,
     "seconds an idle HTTP connection is kept, and a request has to arrive whole"},
    {"cors_origins", K_STRLIST, F(http_cors_origins), 0, 0, NULL,
     "origins allowed by CORS and for WebSocket (\"*\": any)"},
    {"consider_secure", K_BOOL, F(http_consider_secure), 0, 0, NULL,
     "true: plain HTTP counts as encrypted (a TLS-terminating proxy is in front)"},
    {"public_url", K_OPTSTR, F(http_public_url), 0, 0, NULL,
     "base URL advertised by host-meta, e.g. https://chat.example.com; empty: from Host"},
    {"web_root", K_STR, F(http_web_root), 0, 0, NULL,
     "directory whose chat/ folder is served at /chat/"},
    {"websocket_see_other_uri", K_OPTSTR, F(http_websocket_see_other_uri), 0, 0, NULL,
     "non-empty: new WebSocket streams are sent there (RFC 7395 see-other-uri)"},
    {"websocket_max_message", K_SIZE, F(http_websocket_max_message), 0, SIZE_MAX_CFG, NULL,
     "largest WebSocket message; 0: c2s.max_stanza_size"},
    {"bosh_max_wait", K_INT, F(http_bosh_max_wait), 1, 3600, NULL,
     "longest a BOSH request is held waiting for data, seconds (XEP-0124 wait)"},
    {"bosh_max_hold", K_INT, F(http_bosh_max_hold), 0, 8, NULL,
     "BOSH requests held at once per session (XEP-0124 hold)"},
    {"bosh_max_requests", K_INT, F(http_bosh_max_requests), 1, 16, NULL,
     "simultaneous BOSH requests per session; at least hold + 1 is granted"},
    {"bosh_max_inactivity", K_INT, F(http_bosh_max_inactivity), 1, 3600, NULL,
     "seconds a BOSH session may go without a request before it is ended"},
    {"bosh_max_pause", K_INT, F(http_bosh_max_pause), 0, 86400, NULL,
     "longest pause a BOSH client may ask for, seconds; 0: no pauses"},
    {NULL, 0, 0, 0, 0, NULL, NULL},
};

static const struct key tls_keys[] = {
    {"certificate", K_PATH, F(tls_certificate), 0, 0, NULL,
     "PEM certificate chain, generated (self-signed) if missing"},
    {"key", K_PATH, F(tls_key), 0, 0, NULL, "PEM private key, generated if missing"},
    {NULL, 0, 0, 0, 0, NULL, NULL},
};

static const struct key sasl_keys[] = {
    {"mechanisms", K_MECHS, F(sasl_mechanisms), 0, 0, NULL, "SASL mechanisms offered"},
    {"scram_iterations", K_UINT, F(scram_iterations), 4096, 1000000, NULL,
     "PBKDF2 iterations for newly stored SCRAM credentials (min 4096)"},
    {"failure_delay_ms", K_INT, F(auth_failure_delay_ms), 0, 60000, NULL,
     "delay added per recent authentication failure, milliseconds"},
    {"max_failures", K_INT, F(auth_max_failures), 1, 1000000, NULL,
     "failures per IP and per account within failure_window before refusing"},
    {"failure_window", K_INT, F(auth_failure_window), 1, 86400, NULL,
     "seconds over which failures are counted"},
    {NULL, 0, 0, 0, 0, NULL, NULL},
};

static const struct key storage_keys[] = {
    {"backend", K_BACKEND, F(storage_backend), 0, 0, NULL, "only sqlite today"},
    {"sqlite_path", K_PATH, F(sqlite_path), 0, 0, NULL, "SQLite database file"},
    {NULL, 0, 0, 0, 0, NULL, NULL},
};

static const struct key admin_keys[] = {
    {"socket", K_PATH, F(admin_socket), 0, 0, NULL, "Unix socket magpiectl talks to"},
    {NULL, 0, 0, 0, 0, NULL, NULL},
};

static const struct key core_keys[] = {
    {"mux_threads", K_INT, F(mux_threads), 1, 64, NULL,
     "threads owning client connections (1..64)"},
    {"embedded_mux", K_BOOL, F(embedded_mux), 0, 0, NULL,
     "false: no client listeners in magpied, clients come through magpie-mux (link.*)"},
    {NULL, 0, 0, 0, 0, NULL, NULL},
};

static const struct key link_keys[] = {
    {"address", K_ADDR, F(link_address), 0, 0, NULL, "address magpie-mux processes connect to"},
    {"port", K_INT, F(link_port), 1, 65535, NULL, "port of the link listener"},
    {"secret", K_OPTSTR, F(link_secret), 0, 0, NULL,
     "shared secret of the multiplexors; empty: no link listener"},
    {"tls", K_BOOL, F(link_tls), 0, 0, NULL, "TLS on the link, with the tls.* certificate"},
    {"max_frame", K_SIZE, F(link_max_frame), 0, SIZE_MAX_CFG, NULL,
     "largest frame a multiplexor may send, bytes; 0: derived from c2s.max_stanza_size"},
    {"max_output", K_SIZE, F(link_max_output), 65536, SIZE_MAX_CFG, NULL,
     "bytes queued to one multiplexor before its link is dropped"},
    {NULL, 0, 0, 0, 0, NULL, NULL},
};

static const struct key mux_keys[] = {
    {"servers", K_STRLIST, F(mux_servers), 0, 0, NULL,
     "magpie-mux: servers as \"host:port\", in order of preference"},
    {"secret", K_OPTSTR, F(mux_secret), 0, 0, NULL, "magpie-mux: the servers' link.secret"},
    {"tls", K_BOOL, F(mux_tls), 0, 0, NULL, "magpie-mux: TLS on the links to the servers"},
    {"tls_ca", K_OPTSTR, F(mux_tls_ca), 0, 0, NULL,
     "magpie-mux: PEM file the servers' certificates must chain to (or be)"},
    {"policy", K_MUXPOLICY, F(mux_policy), 0, 0, NULL,
     "magpie-mux: ordered (new sessions to the first server up) or sticky"},
    {"reconnect_ms", K_INT, F(mux_reconnect_ms), 10, 600000, NULL,
     "magpie-mux: first delay before reconnecting to a server, doubled per failure"},
    {"reconnect_max_ms", K_INT, F(mux_reconnect_max_ms), 10, 3600000, NULL,
     "magpie-mux: longest delay between reconnection attempts"},
    {NULL, 0, 0, 0, 0, NULL, NULL},
};

static const struct key offline_keys[] = {
    {"max_messages", K_INT, F(offline_max_messages), 0, 1000000, NULL,
     "messages kept for an account with no available resource (XEP-0160); 0 disables"},
    {NULL, 0, 0, 0, 0, NULL, NULL},
};

static const struct key sm_keys[] = {
    {"enabled", K_BOOL, F(sm_enabled), 0, 0, NULL, "offer stream management (XEP-0198)"},
    {"resume_timeout", K_INT, F(sm_resume_timeout), 0, 86400, NULL,
     "seconds a session whose connection died waits to be resumed; 0: no resumption"},
    {"max_queue", K_INT, F(sm_max_queue), 1, 1000000, NULL,
     "stanzas sent to a client and not yet acknowledged before the stream is closed"},
    {"max_queue_size", K_SIZE, F(sm_max_queue_size), 4096, SIZE_MAX_CFG, NULL,
     "bytes of unacknowledged stanzas kept for one session"},
    {"ack_request_every", K_INT, F(sm_ack_request_every), 1, 100000, NULL,
     "unacknowledged stanzas after which the server asks the client for an ack"},
    {NULL, 0, 0, 0, 0, NULL, NULL},
};

static const struct key vcard_keys[] = {
    {"max_size", K_SIZE, F(vcard_max_size), 1024, SIZE_MAX_CFG, NULL,
     "largest vCard an account may store (XEP-0054), bytes"},
    {NULL, 0, 0, 0, 0, NULL, NULL},
};

static const struct key version_keys[] = {
    {"hide_version", K_BOOL, F(version_hide), 0, 0, NULL,
     "true: software version queries get service-unavailable (read at start)"},
    {"hide_os", K_BOOL, F(version_hide_os), 0, 0, NULL,
     "true: software version answers leave out the operating system"},
    {NULL, 0, 0, 0, 0, NULL, NULL},
};

static const struct key register_keys[] = {
    {"enabled", K_BOOL, F(register_enabled), 0, 0, NULL,
     "true: anyone may create an account in-band (XEP-0077)"},
    {"max_per_ip", K_INT, F(register_max_per_ip), 1, 1000000, NULL,
     "accounts one IP address may create within the window"},
    {"window", K_INT, F(register_window), 1, 604800, NULL,
     "seconds over which max_per_ip is counted"},
    {"min_password_length", K_INT, F(register_min_password), 1, 1024, NULL,
     "shortest password accepted in-band (registration and password change)"},
    {NULL, 0, 0, 0, 0, NULL, NULL},
};

static const struct key privacy_keys[] = {
    {"max_lists", K_INT, F(privacy_max_lists), 1, 1000, NULL,
     "privacy lists one account may keep (XEP-0016)"},
    {"max_items", K_INT, F(privacy_max_items), 1, 10000, NULL,
     "items in one privacy list, blocked JIDs included (XEP-0016, XEP-0191)"},
    {NULL, 0, 0, 0, 0, NULL, NULL},
};

static const struct key csi_keys[] = {
    {"max_presences", K_INT, F(csi_max_presences), 0, 100000, NULL,
     "presences held for an inactive client (XEP-0352) before all go out; 0 holds none"},
    {NULL, 0, 0, 0, 0, NULL, NULL},
};

static const struct key mam_keys[] = {
    {"retention_days", K_INT, F(mam_retention_days), 0, 36500, NULL,
     "days archived messages are kept (XEP-0313); 0 keeps them forever"},
    {"max_messages", K_INT, F(mam_max_messages), 0, 100000000, NULL,
     "messages kept per account, the oldest dropped first; 0: no limit"},
    {"default", K_ARCHMODE, F(mam_default), 0, 0, NULL,
     "always, never or roster: what is archived for an account that set no preferences"},
    {"max_page_size", K_INT, F(mam_max_page_size), 1, 1000, NULL,
     "results in one archive query page, whatever the client asks"},
    {"batch_ms", K_INT, F(mam_batch_ms), 0, 1000, NULL,
     "milliseconds archive writes wait to share one commit; 0 commits each"},
    {NULL, 0, 0, 0, 0, NULL, NULL},
};

static const struct key caps_keys[] = {
    {"cache_size", K_INT, F(caps_cache_size), 1, 10000000, NULL,
     "client capability sets (XEP-0115 vers) kept in memory, least recently used dropped"},
    {"max_queries_per_session", K_INT, F(caps_max_queries), 1, 1000, NULL,
     "disco#info queries the server has in flight to one session at once"},
    {NULL, 0, 0, 0, 0, NULL, NULL},
};

static const struct key push_keys[] = {
    {"include_body", K_BOOL, F(push_include_body), 0, 0, NULL,
     "true: every push notification (XEP-0357) carries the message body"},
    {"body_opt_in", K_BOOL, F(push_body_opt_in), 0, 0, NULL,
     "true: a registration may ask for bodies (publish-options field include-body)"},
    {"min_interval_ms", K_INT, F(push_min_interval_ms), 0, 3600000, NULL,
     "milliseconds between two pushes to one app server registration; bursts are coalesced"},
    {"max_registrations", K_INT, F(push_max_registrations), 1, 1000, NULL,
     "app server registrations one account may keep"},
    {"max_registration_size", K_SIZE, F(push_max_reg_size), 256, 1048576, NULL,
     "bytes of one registration: app server JID, node and publish-options form"},
    {NULL, 0, 0, 0, 0, NULL, NULL},
};

static const struct key muc_keys[] = {
    {"label", K_STR, F(muc_label), 0, 0, NULL,
     "the chat service is <label>.<host> for every host (XEP-0045)"},
    {"max_rooms", K_INT, F(muc_max_rooms), 0, 10000000, NULL,
     "rooms the service holds at once; 0: no limit"},
    {"max_occupants", K_INT, F(muc_max_occupants), 1, 1000000, NULL,
     "occupants one room may have, whatever its configuration says"},
    {"default_history", K_INT, F(muc_default_history), 0, 10000, NULL,
     "messages a new room keeps for joiners (its history length)"},
    {"max_history", K_INT, F(muc_max_history), 0, 10000, NULL,
     "highest history length a room may be configured with"},
    {"max_nick_len", K_INT, F(muc_max_nick_len), 1, 1023, NULL,
     "longest room nickname, in bytes"},
    {"max_text_len", K_INT, F(muc_max_text_len), 16, 65536, NULL,
     "longest room subject, name, description or password, in bytes"},
    {"max_presence_len", K_INT, F(muc_max_presence_len), 256, 262144, NULL,
     "largest presence (show, status, ...) a room keeps for an occupant, in bytes"},
    {"default_logging", K_BOOL, F(muc_default_logging), 0, 0, NULL,
     "new rooms archive what is said (XEP-0313), so members catch up after being away"},
    {NULL, 0, 0, 0, 0, NULL, NULL},
};

static const struct key pubsub_keys[] = {
    {"label", K_STR, F(pubsub_label), 0, 0, NULL,
     "the publish-subscribe service is <label>.<host> for every host (XEP-0060)"},
    {"max_nodes_per_user", K_INT, F(pubsub_max_nodes), 1, 10000000, NULL,
     "nodes one account may own on the service, and PEP nodes it may have"},
    {"max_items", K_INT, F(pubsub_max_items), 1, 10000000, NULL,
     "highest max_items of a node (what \"max\" means); items kept per node"},
    {"max_payload_size", K_SIZE, F(pubsub_max_payload), 256, SIZE_MAX_CFG, NULL,
     "largest item payload, in bytes"},
    {"max_subscriptions", K_INT, F(pubsub_max_subs), 1, 100000, NULL,
     "subscriptions one account (its bare and full JIDs) may hold to one node"},
    {"max_id_length", K_INT, F(pubsub_max_id_len), 16, 65536, NULL,
     "longest node name or item id, in bytes"},
    {"max_node_entries", K_INT, F(pubsub_max_node_entries), 1, 10000000, NULL,
     "affiliations, and subscriptions, a node's owners may set for other JIDs"},
    {"avatar_conversion", K_BOOL, F(pubsub_avatar_conversion), 0, 0, NULL,
     "XEP-0398: PEP avatars copied to the vCard and back, their hash put in presence"},
    {NULL, 0, 0, 0, 0, NULL, NULL},
};

static const struct key search_keys[] = {
    {"max_results", K_INT, F(search_max_results), 1, 100000, NULL,
     "accounts listed in one user directory answer (XEP-0055)"},
    {NULL, 0, 0, 0, 0, NULL, NULL},
};

static const struct key acl_keys[] = {
    {"admins", K_ACLJIDS, F(acl_admins), 0, 0, NULL,
     "bare JIDs of the administrators (the principal \"admins\")"},
    {"see_presence", K_SEEPRES, F(acl_see_presence), 0, 0, NULL,
     "all, or same_domain: presence and subscriptions never cross between hosted domains"},
    {"send_alerts", K_ACLLIST, F(acl_send_alerts), 0, 0, NULL,
     "who may send a headline to all online users of a host (<host>/announce/online)"},
    {"save_private", K_ACLLIST, F(acl_save_private), 0, 0, NULL,
     "who may write private XML storage (XEP-0049)"},
    {"save_vcard", K_ACLLIST, F(acl_save_vcard), 0, 0, NULL,
     "who may write their vCard (XEP-0054); reading stays open"},
    {"create_rooms", K_ACLLIST, F(acl_create_rooms), 0, 0, NULL,
     "who may create chat rooms (read by the MUC service)"},
    {NULL, 0, 0, 0, 0, NULL, NULL},
};

static const struct key top_keys[] = {
    {"hosts", K_HOSTS, F(hosts), 0, 0, NULL, "domains this server serves (at least one)"},
    {"data_dir", K_STR, F(data_dir), 0, 0, NULL,
     "directory for the database, keys and socket (relative: to the working directory)"},
    {"log", K_SECTION, 0, 0, 0, log_keys, "logging"},
    {"c2s", K_SECTION, 0, 0, 0, c2s_keys, "client connections"},
    {"http", K_SECTION, 0, 0, 0, http_keys, "BOSH and WebSocket"},
    {"tls", K_SECTION, 0, 0, 0, tls_keys, "TLS certificate and key"},
    {"sasl", K_SECTION, 0, 0, 0, sasl_keys, "authentication"},
    {"storage", K_SECTION, 0, 0, 0, storage_keys, "persistent storage"},
    {"admin", K_SECTION, 0, 0, 0, admin_keys, "administration"},
    {"core", K_SECTION, 0, 0, 0, core_keys, "threads"},
    {"link", K_SECTION, 0, 0, 0, link_keys, "links from magpie-mux processes"},
    {"mux", K_SECTION, 0, 0, 0, mux_keys, "magpie-mux only: the servers it forwards to"},
    {"offline", K_SECTION, 0, 0, 0, offline_keys, "offline messages"},
    {"sm", K_SECTION, 0, 0, 0, sm_keys, "stream management (XEP-0198)"},
    {"vcard", K_SECTION, 0, 0, 0, vcard_keys, "vCards"},
    {"version", K_SECTION, 0, 0, 0, version_keys, "software version (XEP-0092)"},
    {"register", K_SECTION, 0, 0, 0, register_keys, "in-band registration (XEP-0077)"},
    {"search", K_SECTION, 0, 0, 0, search_keys, "user directory search (XEP-0055)"},
    {"mam", K_SECTION, 0, 0, 0, mam_keys, "message archive (XEP-0313)"},
    {"pubsub", K_SECTION, 0, 0, 0, pubsub_keys, "publish-subscribe, PEP (XEP-0060, XEP-0163)"},
    {"muc", K_SECTION, 0, 0, 0, muc_keys, "multi-user chat (XEP-0045)"},
    {"privacy", K_SECTION, 0, 0, 0, privacy_keys, "privacy lists and blocking (XEP-0016, XEP-0191)"},
    {"csi", K_SECTION, 0, 0, 0, csi_keys, "client state indication (XEP-0352)"},
    {"caps", K_SECTION, 0, 0, 0, caps_keys, "client entity capabilities (XEP-0115)"},
    {"push", K_SECTION, 0, 0, 0, push_keys, "push notifications (XEP-0357)"},
    {"acl", K_SECTION, 0, 0, 0, acl_keys,
     "site policies; a list holds all, local, admins, domains and bare JIDs"},
    {"modules", K_MODULES, F(modules), 0, 0, NULL,
     "modules to load, checked by the module registry at start"},
    {NULL, 0, 0, 0, 0, NULL, NULL},
};

/* Paths that follow data_dir unless the file sets them. */
static const struct derived {
    size_t off;
    const char *file;
} derived[] = {
    {F(tls_certificate), "magpie.crt"},
    {F(tls_key), "magpie.key"},
    {F(sqlite_path), "magpie.db"},
    {F(admin_socket), "magpied.sock"},
};

#define NDERIVED (sizeof derived / sizeof derived[0])

static const struct {
    const char *name;
    unsigned bit;
} mechs[] = {
    {"PLAIN", MP_MECH_PLAIN},
    {"SCRAM-SHA-1", MP_MECH_SCRAM_SHA_1},
    {"SCRAM-SHA-1-PLUS", MP_MECH_SCRAM_SHA_1_PLUS},
    {"SCRAM-SHA-256", MP_MECH_SCRAM_SHA_256},
    {"SCRAM-SHA-256-PLUS", MP_MECH_SCRAM_SHA_256_PLUS},
};

#define NMECHS (sizeof mechs / sizeof mechs[0])

static const char *const level_names[] = {"error", "warn", "info", "debug"};
static const char *const conflict_names[] = {"replace", "refuse"};
static const char *const see_presence_names[] = {"all", "same_domain"};
static const char *const archive_mode_names[] = {"always", "never", "roster"};
static const char *const mux_policy_names[] = {"ordered", "sticky"};
static const char *const default_modules[] = {"ping", "disco",   "version", "time",
                                              "last", "vcard",   "private", "search",
                                              "amp",  "privacy", "blocking", "mam",
                                              "carbons", "caps", "push", "pubsub", "muc"};

#define FIELD(cfg, off, type) ((type *)(void *)((char *)(cfg) + (off)))

/* The acl lists and their defaults. */
static const struct {
    size_t off;
    const char *dflt; /* NULL: empty */
} acl_lists[] = {
    {F(acl_admins), NULL},      {F(acl_send_alerts), "admins"}, {F(acl_save_private), "all"},
    {F(acl_save_vcard), "all"}, {F(acl_create_rooms), "local"},
};

#define NACL_LISTS (sizeof acl_lists / sizeof acl_lists[0])

unsigned
mp_config_mech_bit(const char *name)
{
    if (name == NULL)
        return 0;
    for (size_t i = 0; i < NMECHS; i++)
        if (strcmp(name, mechs[i].name) == 0)
            return mechs[i].bit;
    return 0;
}

const char *
mp_config_mech_name(unsigned bit)
{
    for (size_t i = 0; i < NMECHS; i++)
        if (bit == mechs[i].bit)
            return mechs[i].name;
    return NULL;
}

static void
free_list(char **list, size_t n)
{
    if (list == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        free(list[i]);
    free(list);
}

void
mp_config_free(mp_config *cfg)
{
    if (cfg == NULL)
        return;
    free(cfg->path);
    free_list(cfg->hosts, cfg->nhosts);
    free(cfg->data_dir);
    free(cfg->c2s_address);
    free(cfg->tls_certificate);
    free(cfg->tls_key);
    free(cfg->storage_backend);
    free(cfg->sqlite_path);
    free(cfg->admin_socket);
    free(cfg->link_address);
    free(cfg->link_secret);
    free(cfg->mux_secret);
    free(cfg->mux_tls_ca);
    free_list(cfg->mux_servers.v, cfg->mux_servers.n);
    free_list(cfg->modules, cfg->nmodules);
    free_list(cfg->http_cors_origins.v, cfg->http_cors_origins.n);
    free(cfg->http_public_url);
    free(cfg->http_web_root);
    free(cfg->http_websocket_see_other_uri);
    free(cfg->muc_label);
    free(cfg->pubsub_label);
    for (size_t i = 0; i < NACL_LISTS; i++) {
        mp_strlist *l = FIELD(cfg, acl_lists[i].off, mp_strlist);
        free_list(l->v, l->n);
    }
    memset(cfg, 0, sizeof *cfg);
}

static char *
join_path(const char *dir, const char *file)
{
    size_t dl = strlen(dir);
    /* "var/" and "var" give the same file; "/" stays the root. */
    while (dl > 1 && dir[dl - 1] == '/')
        dl--;
    char *p;
    if (asprintf(&p, "%.*s%s%s", (int)dl, dir, dir[dl - 1] == '/' ? "" : "/", file) < 0)
        return NULL;
    return p;
}

/* Recompute the paths the file did not set from cfg->data_dir. */
static int
resolve_paths(mp_config *cfg, unsigned set)
{
    for (size_t i = 0; i < NDERIVED; i++) {
        if (set & (1u << i))
            continue;
        char **slot = FIELD(cfg, derived[i].off, char *);
        char *p = join_path(cfg->data_dir, derived[i].file);
        if (p == NULL)
            return MP_ENOMEM;
        free(*slot);
        *slot = p;
    }
    return 0;
}

int
mp_config_defaults(mp_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    size_t nmod = sizeof default_modules / sizeof default_modules[0];
    cfg->hosts = calloc(1, sizeof *cfg->hosts);
    cfg->modules = calloc(nmod, sizeof *cfg->modules);
    if (cfg->hosts == NULL || cfg->modules == NULL)
        goto fail;
    if ((cfg->hosts[0] = strdup("localhost")) == NULL)
        goto fail;
    cfg->nhosts = 1;
    for (size_t i = 0; i < nmod; i++) {
        if ((cfg->modules[i] = strdup(default_modules[i])) == NULL)
            goto fail;
        cfg->nmodules = i + 1;
    }
    cfg->data_dir = strdup(DEFAULT_DATA_DIR);
    cfg->c2s_address = strdup("0.0.0.0");
    cfg->storage_backend = strdup("sqlite");
    if (cfg->data_dir == NULL || cfg->c2s_address == NULL || cfg->storage_backend == NULL)
        goto fail;

    cfg->log_level = MP_LOG_INFO;
    cfg->log_syslog = 0;
    cfg->c2s_port = 5222;
    cfg->c2s_direct_tls_port = 5223;
    cfg->tls_required = 1;
    cfg->max_stanza_size = 262144;
    cfg->preauth_max_stanza_size = 8192;
    cfg->preauth_max_elements = 32;
    cfg->max_depth = 64;
    cfg->unauthenticated_timeout = 60;
    cfg->conflict_policy = MP_CONFLICT_REPLACE;
    cfg->max_sessions_per_user = 10;
    cfg->offline_max_messages = 100;
    cfg->caps_cache_size = 4096;
    cfg->caps_max_queries = 4;
    cfg->push_body_opt_in = 1;
    cfg->push_min_interval_ms = 2000;
    cfg->push_max_registrations = 10;
    cfg->push_max_reg_size = 4096;
    cfg->sm_enabled = 1;
    cfg->sm_resume_timeout = 300;
    cfg->sm_max_queue = 5000;
    cfg->sm_max_queue_size = 4 * 1024 * 1024;
    cfg->sm_ack_request_every = 5;
    cfg->vcard_max_size = 64 * 1024;
    cfg->ping_interval = 300;
    cfg->ping_timeout = 60;
    cfg->max_output_buffer = 1024 * 1024;
    cfg->max_read_rate = 100 * 1024;
    cfg->read_burst = 1024 * 1024;
    cfg->preauth_max_read_rate = 16 * 1024;
    cfg->preauth_read_burst = 64 * 1024;
    cfg->flood_timeout = 60;
    cfg->max_connections_per_ip = 64;
    cfg->max_attributes = 64;
    cfg->max_name_length = 256;
    cfg->max_attribute_size = 8192;
    cfg->http_port = 5280;
    cfg->http_tls_port = 5443;
    cfg->http_max_body_size = 1024 * 1024;
    cfg->http_max_header_size = 16 * 1024;
    cfg->http_keepalive_timeout = 30;
    cfg->http_public_url = strdup("");
    cfg->http_web_root = strdup(MAGPIE_WEB_ROOT);
    cfg->http_websocket_see_other_uri = strdup("");
    cfg->http_cors_origins.v = calloc(1, sizeof *cfg->http_cors_origins.v);
    if (!cfg->http_public_url || !cfg->http_web_root || !cfg->http_websocket_see_other_uri ||
        !cfg->http_cors_origins.v || !(cfg->http_cors_origins.v[0] = strdup("*")))
        goto fail;
    cfg->http_cors_origins.n = 1;
    cfg->http_bosh_max_wait = 60;
    cfg->http_bosh_max_hold = 1;
    cfg->http_bosh_max_requests = 2;
    cfg->http_bosh_max_inactivity = 60;
    cfg->http_bosh_max_pause = 300;
    for (size_t i = 0; i < NMECHS; i++)
        cfg->sasl_mechanisms |= mechs[i].bit;
    cfg->scram_iterations = 4096;
    cfg->auth_failure_delay_ms = 500;
    cfg->auth_max_failures = 10;
    cfg->auth_failure_window = 300;
    cfg->mux_threads = 1;
    cfg->embedded_mux = 1;
    cfg->link_port = 45222;
    cfg->link_max_output = 64 * 1024 * 1024;
    cfg->mux_reconnect_ms = 500;
    cfg->mux_reconnect_max_ms = 30000;
    cfg->link_address = strdup("127.0.0.1");
    cfg->link_secret = strdup("");
    cfg->mux_secret = strdup("");
    cfg->mux_tls_ca = strdup("");
    if (!cfg->link_address || !cfg->link_secret || !cfg->mux_secret || !cfg->mux_tls_ca)
        goto fail;
    cfg->register_max_per_ip = 3;
    cfg->register_window = 3600;
    cfg->register_min_password = 8;
    cfg->search_max_results = 50;
    cfg->privacy_max_lists = 64;
    cfg->privacy_max_items = 1024;
    cfg->csi_max_presences = 100;
    cfg->mam_max_messages = 100000;
    cfg->mam_default = 0; /* always */
    cfg->mam_max_page_size = 100;
    cfg->mam_batch_ms = 5;
    cfg->muc_max_rooms = 10000;
    cfg->muc_max_occupants = 5000;
    cfg->muc_default_history = 20;
    cfg->muc_max_history = 200;
    cfg->muc_max_nick_len = 64;
    cfg->muc_max_text_len = 1024;
    cfg->muc_max_presence_len = 8192;
    cfg->muc_default_logging = 1;
    if ((cfg->muc_label = strdup("conference")) == NULL)
        goto fail;
    cfg->pubsub_max_nodes = 1000;
    cfg->pubsub_max_items = 1000;
    cfg->pubsub_max_payload = 256 * 1024;
    cfg->pubsub_max_subs = 16;
    cfg->pubsub_max_id_len = 1024;
    cfg->pubsub_max_node_entries = 1000;
    cfg->pubsub_avatar_conversion = 1;
    if ((cfg->pubsub_label = strdup("pubsub")) == NULL)
        goto fail;
    cfg->acl_see_presence = MP_SEE_ALL;
    for (size_t i = 0; i < NACL_LISTS; i++) {
        mp_strlist *l = FIELD(cfg, acl_lists[i].off, mp_strlist);
        if (acl_lists[i].dflt == NULL)
            continue;
        if ((l->v = calloc(1, sizeof *l->v)) == NULL ||
            (l->v[0] = strdup(acl_lists[i].dflt)) == NULL)
            goto fail;
        l->n = 1;
    }
    if (resolve_paths(cfg, 0) < 0)
        goto fail;
    return 0;
fail:
    mp_config_free(cfg);
    return MP_ENOMEM;
}

void
mp_config_swap_acl(mp_config *a, mp_config *b)
{
    int see = a->acl_see_presence;
    a->acl_see_presence = b->acl_see_presence;
    b->acl_see_presence = see;
    for (size_t i = 0; i < NACL_LISTS; i++) {
        mp_strlist *x = FIELD(a, acl_lists[i].off, mp_strlist);
        mp_strlist *y = FIELD(b, acl_lists[i].off, mp_strlist);
        mp_strlist t = *x;
        *x = *y;
        *y = t;
    }
}

int
mp_config_is_host(const mp_config *cfg, const char *domain, size_t len)
{
    for (size_t i = 0; i < cfg->nhosts; i++)
        if (strlen(cfg->hosts[i]) == len && memcmp(cfg->hosts[i], domain, len) == 0)
            return 1;
    return 0;
}

/* ---- loading ---- */

struct ld {
    struct fy_parser *fyp;
    struct fy_diag *diag;
    const char *path;
    char *err;
    size_t errlen;
    mp_config *cfg;
    unsigned derived_set;
    int nomem;
    int key_line, key_col; /* the current key: empty values carry no mark of their own */
    /* where the two stanza limits were set, for the check between them */
    int pre_line, pre_col, max_line, max_col;
    /* dotless domains in acl lists, checked against hosts once the whole file is read */
    struct pending_host *pend;
    size_t npend;
};

struct pending_host {
    int line, col;
    const char *word; /* owned by the list in the config */
    char name[64];
};

/* Scalar classes of the YAML 1.2 core schema we care about. */
enum sclass { S_NULL, S_BOOL, S_INT, S_STR };

struct sval {
    const char *p;
    size_t len;
    enum sclass cls;
    int b;
};

static const char *
class_name(enum sclass c)
{
    switch (c) {
    case S_NULL:
        return "null";
    case S_BOOL:
        return "a boolean";
    case S_INT:
        return "an integer";
    default:
        return "a string";
    }
}

static void __attribute__((format(printf, 4, 0)))
set_errv(struct ld *ld, int line, int col, const char *fmt, va_list ap)
{
    if (ld->err == NULL || ld->errlen == 0)
        return;
    int n;
    if (line > 0)
        n = snprintf(ld->err, ld->errlen, "%s:%d:%d: ", ld->path, line, col);
    else
        n = snprintf(ld->err, ld->errlen, "%s: ", ld->path);
    if (n < 0 || (size_t)n >= ld->errlen)
        return;
    vsnprintf(ld->err + n, ld->errlen - (size_t)n, fmt, ap);
}

static int __attribute__((format(printf, 4, 5)))
fail_at(struct ld *ld, int line, int col, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_errv(ld, line, col, fmt, ap);
    va_end(ap);
    return MP_EINVAL;
}

static void
mark_of(struct ld *ld, struct fy_event *ev, int *line, int *col)
{
    const struct fy_mark *m = fy_event_start_mark(ev);
    *line = m ? m->line + 1 : ld->key_line;
    *col = m ? m->column + 1 : ld->key_col;
}

static int __attribute__((format(printf, 3, 4)))
fail_ev(struct ld *ld, struct fy_event *ev, const char *fmt, ...)
{
    int line, col;
    mark_of(ld, ev, &line, &col);
    va_list ap;
    va_start(ap, fmt);
    set_errv(ld, line, col, fmt, ap);
    va_end(ap);
    return MP_EINVAL;
}

static int
nomem(struct ld *ld)
{
    ld->nomem = 1;
    return fail_at(ld, 0, 0, "out of memory");
}

/* Next event, or NULL after recording the parser's error. */
static struct fy_event *
next_event(struct ld *ld)
{
    struct fy_event *ev = fy_parser_parse(ld->fyp);
    if (ev != NULL)
        return ev;
    void *it = NULL;
    struct fy_diag_error *de = fy_diag_errors_iterate(ld->diag, &it);
    if (de != NULL)
        fail_at(ld, de->line, de->column, "YAML syntax error: %s", de->msg);
    else
        fail_at(ld, 0, 0, "YAML syntax error or unexpected end of input");
    return NULL;
}

static void
free_event(struct ld *ld, struct fy_event *ev)
{
    if (ev != NULL)
        fy_parser_event_free(ld->fyp, ev);
}

static const char *
event_desc(struct fy_event *ev)
{
    switch (ev->type) {
    case FYET_MAPPING_START:
        return "a mapping";
    case FYET_SEQUENCE_START:
        return "a list";
    case FYET_ALIAS:
        return "an alias";
    default:
        return "something else";
    }
}

static int
is_one_of(const char *p, size_t len, const char *const *words)
{
    for (; *words; words++)
        if (strlen(*words) == len && memcmp(p, *words, len) == 0)
            return 1;
    return 0;
}

static int
looks_int(const char *p, size_t len)
{
    size_t i = 0;
    if (len > 2 && p[0] == '0' && (p[1] == 'x' || p[1] == 'o')) {
        for (i = 2; i < len; i++)
            if (p[1] == 'x' ? !strchr("0123456789abcdefABCDEF", p[i]) || !p[i]
                            : (p[i] < '0' || p[i] > '7'))
                return 0;
        return 1;
    }
    if (len > 0 && (p[0] == '-' || p[0] == '+'))
        i = 1;
    if (i == len)
        return 0;
    for (; i < len; i++)
        if (p[i] < '0' || p[i] > '9')
            return 0;
    return 1;
}

/* Classify a scalar event; non-scalars are an error naming what was expected. */
static int
get_scalar(struct ld *ld, struct fy_event *ev, const char *name, const char *want, struct sval *out)
{
    if (ev->type == FYET_ALIAS)
        return fail_ev(ld, ev, "%s: YAML aliases are not supported", name);
    if (ev->type != FYET_SCALAR)
        return fail_ev(ld, ev, "%s: expected %s, got %s", name, want, event_desc(ev));
    if (ev->scalar.tag != NULL)
        return fail_ev(ld, ev, "%s: YAML tags are not supported", name);
    struct fy_token *tok = ev->scalar.value;
    size_t len = 0;
    const char *p = tok ? fy_token_get_text(tok, &len) : "";
    if (p == NULL)
        return nomem(ld);
    out->p = p;
    out->len = len;
    out->b = 0;
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL", NULL};
    static const char *const trues[] = {"true", "True", "TRUE", NULL};
    static const char *const falses[] = {"false", "False", "FALSE", NULL};
    if (tok != NULL && fy_scalar_token_get_style(tok) != FYSS_PLAIN)
        out->cls = S_STR;
    else if (is_one_of(p, len, nulls))
        out->cls = S_NULL;
    else if (is_one_of(p, len, trues))
        out->cls = S_BOOL, out->b = 1;
    else if (is_one_of(p, len, falses))
        out->cls = S_BOOL;
    else if (looks_int(p, len))
        out->cls = S_INT;
    else
        out->cls = S_STR;
    return 0;
}

/* A non-empty string without NUL bytes, copied. */
static int
get_string(struct ld *ld, struct fy_event *ev, const char *name, char **out)
{
    struct sval v;
    int rc = get_scalar(ld, ev, name, "a string", &v);
    if (rc < 0)
        return rc;
    if (v.cls != S_STR)
        return fail_ev(ld, ev, "%s: expected a string, got %s (quote it if meant as text)", name,
                       class_name(v.cls));
    if (v.len == 0)
        return fail_ev(ld, ev, "%s: must not be empty", name);
    if (memchr(v.p, '\0', v.len) != NULL)
        return fail_ev(ld, ev, "%s: must not contain a NUL byte", name);
    if ((*out = strndup(v.p, v.len)) == NULL)
        return nomem(ld);
    return 0;
}

static int
parse_ll(const char *p, size_t len, long long *out)
{
    char buf[64];
    if (len == 0 || len >= sizeof buf)
        return -1;
    memcpy(buf, p, len);
    buf[len] = '\0';
    int base = 10;
    const char *s = buf;
    if (len > 2 && buf[0] == '0' && buf[1] == 'x')
        base = 16, s = buf + 2;
    else if (len > 2 && buf[0] == '0' && buf[1] == 'o')
        base = 8, s = buf + 2;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, base);
    if (errno != 0 || *end != '\0' || end == s)
        return -1;
    *out = v;
    return 0;
}

static int
get_int(struct ld *ld, struct fy_event *ev, const char *name, long long min, long long max,
        long long *out)
{
    struct sval v;
    int rc = get_scalar(ld, ev, name, "an integer", &v);
    if (rc < 0)
        return rc;
    if (v.cls != S_INT)
        return fail_ev(ld, ev, "%s: expected an integer, got %s", name, class_name(v.cls));
    if (parse_ll(v.p, v.len, out) < 0 || *out < min || *out > max)
        return fail_ev(ld, ev, "%s: %.*s is out of range (%lld..%lld)", name,
                       (int)(v.len > 32 ? 32 : v.len), v.p, min, max);
    return 0;
}

/* "262144", "256K", "256KiB", "1M", "1MiB", "1G", "1GiB"; K means 1024 like KiB. */
static int
parse_size(const char *p, size_t len, long long *out)
{
    size_t i = 0;
    while (i < len && p[i] >= '0' && p[i] <= '9')
        i++;
    if (i == 0)
        return -1;
    long long n;
    if (parse_ll(p, i, &n) < 0)
        return -2; /* only digits, so too many of them */
    size_t j = i;
    while (j < len && p[j] == ' ')
        j++;
    const char *suf = p + j;
    size_t sl = len - j;
    int shift;
    if (sl == 0 && j == i)
        shift = 0;
    else if ((sl == 1 && suf[0] == 'K') || (sl == 3 && memcmp(suf, "KiB", 3) == 0))
        shift = 10;
    else if ((sl == 1 && suf[0] == 'M') || (sl == 3 && memcmp(suf, "MiB", 3) == 0))
        shift = 20;
    else if ((sl == 1 && suf[0] == 'G') || (sl == 3 && memcmp(suf, "GiB", 3) == 0))
        shift = 30;
    else
        return -1;
    if (n > (LLONG_MAX >> shift))
        return -2;
    *out = n << shift;
    return 0;
}

static int
get_size(struct ld *ld, struct fy_event *ev, const char *name, long long min, long long max,
         size_t *out)
{
    struct sval v;
    int rc = get_scalar(ld, ev, name, "a size", &v);
    if (rc < 0)
        return rc;
    long long n = 0;
    if (v.cls != S_INT && v.cls != S_STR)
        return fail_ev(ld, ev, "%s: expected a size, got %s", name, class_name(v.cls));
    rc = v.cls == S_INT ? parse_ll(v.p, v.len, &n) : parse_size(v.p, v.len, &n);
    if (rc == -1 && v.cls == S_STR)
        return fail_ev(ld, ev,
                       "%s: expected a size (bytes, or a number with K, KiB, M, MiB, G or GiB), "
                       "got \"%.*s\"",
                       name, (int)(v.len > 32 ? 32 : v.len), v.p);
    if (rc < 0 || n < min || n > max)
        return fail_ev(ld, ev, "%s: %.*s is out of range (%lld..%lld bytes)", name,
                       (int)(v.len > 32 ? 32 : v.len), v.p, min, max);
    *out = (size_t)n;
    return 0;
}

static int
get_enum(struct ld *ld, struct fy_event *ev, const char *name, const char *const *names, int n,
         int *out)
{
    struct sval v;
    int rc = get_scalar(ld, ev, name, "a string", &v);
    if (rc < 0)
        return rc;
    for (int i = 0; i < n && v.cls == S_STR; i++) {
        if (strlen(names[i]) == v.len && memcmp(names[i], v.p, v.len) == 0) {
            *out = i;
            return 0;
        }
    }
    char allowed[128] = "";
    for (int i = 0; i < n; i++) {
        size_t used = strlen(allowed);
        snprintf(allowed + used, sizeof allowed - used, "%s%s", i ? ", " : "", names[i]);
    }
    if (v.cls != S_STR)
        return fail_ev(ld, ev, "%s: expected one of %s, got %s", name, allowed, class_name(v.cls));
    return fail_ev(ld, ev, "%s: unknown value \"%.*s\" (expected one of %s)", name,
                   (int)(v.len > 32 ? 32 : v.len), v.p, allowed);
}

static int
check_host(struct ld *ld, struct fy_event *ev, const char *name, char *h, char **list, size_t n)
{
    size_t len = strlen(h);
    if (len > DOMAIN_MAX)
        return fail_ev(ld, ev, "%s: host name longer than %d bytes", name, DOMAIN_MAX);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)h[i];
        if (c <= ' ' || c == '@' || c == '/' || c == 0x7f)
            return fail_ev(ld, ev, "%s: \"%s\" is not a host name", name, h);
        if (c >= 'A' && c <= 'Z')
            h[i] = (char)(c - 'A' + 'a');
    }
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i], h) == 0)
            return fail_ev(ld, ev, "%s: duplicate host \"%s\"", name, h);
    return 0;
}

static int
is_acl_keyword(const char *s)
{
    return strcmp(s, "all") == 0 || strcmp(s, "local") == 0 || strcmp(s, "admins") == 0;
}

/* One entry of an acl list, normalised: *s is replaced by the prepared bare JID or domain. A
 * word without a dot must name a host; that waits until the hosts are known. */
static int
check_principal(struct ld *ld, struct fy_event *ev, const char *name, char **s, int jids_only)
{
    const char *p = *s;
    size_t len = strlen(p);
    char buf[2 * MP_JID_PART_MAX + 2];
    int n;
    if (!jids_only && is_acl_keyword(p))
        return 0;
    if (strchr(p, '@') != NULL) {
        mp_jid j;
        if (mp_jid_prep(p, len, &j) < 0 || !j.node_len || j.resource_len ||
            (n = mp_jid_bare(&j, buf, sizeof buf)) < 0)
            return fail_ev(ld, ev, "%s: \"%s\" is not a bare JID (user@domain)", name, p);
    } else if (jids_only) {
        return fail_ev(ld, ev, "%s: \"%s\" is not a bare JID (user@domain)", name, p);
    } else if (strchr(p, '/') != NULL || (n = mp_jid_nameprep(p, len, buf, sizeof buf)) <= 0) {
        return fail_ev(
            ld, ev, "%s: \"%s\" is not a domain, a bare JID or one of all, local, admins", name, p);
    }
    char *norm = strndup(buf, (size_t)n);
    if (norm == NULL)
        return nomem(ld);
    free(*s);
    *s = norm;
    if (jids_only || memchr(norm, '@', (size_t)n) || memchr(norm, '.', (size_t)n))
        return 0;
    struct pending_host *t = realloc(ld->pend, (ld->npend + 1) * sizeof *t);
    if (t == NULL)
        return nomem(ld);
    ld->pend = t;
    t += ld->npend++;
    mark_of(ld, ev, &t->line, &t->col);
    t->word = norm;
    snprintf(t->name, sizeof t->name, "%s", name);
    return 0;
}

/* hosts, modules, sasl.mechanisms and the acl lists: a list of strings. ev is the list's first
 * event. */
static int
parse_list(struct ld *ld, const struct key *k, const char *name, struct fy_event *start)
{
    if (start->type != FYET_SEQUENCE_START) {
        struct sval v;
        int rc = get_scalar(ld, start, name, "a list", &v);
        return rc < 0 ? rc
                      : fail_ev(ld, start, "%s: expected a list, got %s", name, class_name(v.cls));
    }
    char **items = NULL;
    size_t n = 0, cap = 0, idx = 0;
    unsigned bits = 0;
    int rc = 0;
    for (;;) {
        struct fy_event *ev = next_event(ld);
        if (ev == NULL) {
            rc = MP_EINVAL;
            goto out;
        }
        if (ev->type == FYET_SEQUENCE_END) {
            free_event(ld, ev);
            break;
        }
        char iname[128];
        snprintf(iname, sizeof iname, "%s[%zu]", name, idx++);
        char *s = NULL;
        rc = get_string(ld, ev, iname, &s);
        if (rc == 0 && k->kind == K_MECHS) {
            unsigned bit = mp_config_mech_bit(s);
            if (bit == 0)
                rc = fail_ev(ld, ev,
                             "%s: unknown SASL mechanism \"%s\" (known: PLAIN, SCRAM-SHA-1, "
                             "SCRAM-SHA-1-PLUS, SCRAM-SHA-256, SCRAM-SHA-256-PLUS)",
                             iname, s);
            bits |= bit;
            free(s);
            s = NULL;
        } else if (rc == 0 && k->kind == K_HOSTS) {
            rc = check_host(ld, ev, iname, s, items, n);
        } else if (rc == 0 && (k->kind == K_ACLLIST || k->kind == K_ACLJIDS)) {
            rc = check_principal(ld, ev, iname, &s, k->kind == K_ACLJIDS);
        }
        free_event(ld, ev);
        if (rc < 0) {
            free(s);
            goto out;
        }
        if (s == NULL)
            continue;
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 4;
            char **t = realloc(items, ncap * sizeof *t);
            if (t == NULL) {
                free(s);
                rc = nomem(ld);
                goto out;
            }
            items = t;
            cap = ncap;
        }
        items[n++] = s;
    }

    if (k->kind == K_MECHS) {
        if (bits == 0)
            rc = fail_ev(ld, start, "%s: at least one mechanism is required", name);
        else
            *FIELD(ld->cfg, k->off, unsigned) = bits;
        goto out;
    }
    if (k->kind == K_HOSTS && n == 0) {
        rc = fail_ev(ld, start, "%s: at least one host is required", name);
        goto out;
    }
    if (k->kind == K_ACLLIST || k->kind == K_ACLJIDS || k->kind == K_STRLIST) {
        mp_strlist *l = FIELD(ld->cfg, k->off, mp_strlist);
        free_list(l->v, l->n);
        l->v = items;
        l->n = n;
        return 0;
    }
    char ***slot = FIELD(ld->cfg, k->off, char **);
    size_t *count = k->kind == K_HOSTS ? &ld->cfg->nhosts : &ld->cfg->nmodules;
    free_list(*slot, *count);
    *slot = items;
    *count = n;
    return 0;
out:
    free_list(items, n);
    return rc;
}

static int parse_map(struct ld *ld, const struct key *tab, const char *prefix);

/* Parse the value whose first event is ev (owned by the caller) for key k. */
static int
parse_value(struct ld *ld, const struct key *k, const char *name, struct fy_event *ev)
{
    mp_config *cfg = ld->cfg;
    long long n;
    int rc, e = 0;
    char *s;
    struct sval v;

    switch (k->kind) {
    case K_SECTION:
        if (ev->type == FYET_MAPPING_START)
            return parse_map(ld, k->sub, name);
        if ((rc = get_scalar(ld, ev, name, "a mapping", &v)) < 0)
            return rc;
        /* "c2s:" with every child commented out means "all defaults". */
        if (v.cls == S_NULL)
            return 0;
        return fail_ev(ld, ev, "%s: expected a mapping, got %s", name, class_name(v.cls));
    case K_STR:
    case K_ADDR:
    case K_PATH:
    case K_BACKEND:
        if ((rc = get_string(ld, ev, name, &s)) < 0)
            return rc;
        if (k->kind == K_ADDR) {
            unsigned char a[16];
            if (inet_pton(AF_INET, s, a) != 1 && inet_pton(AF_INET6, s, a) != 1) {
                rc = fail_ev(ld, ev, "%s: \"%s\" is not an IPv4 or IPv6 address", name, s);
                free(s);
                return rc;
            }
        }
        if (k->kind == K_BACKEND && strcmp(s, "sqlite") != 0) {
            rc = fail_ev(ld, ev, "%s: unknown storage backend \"%s\" (expected one of sqlite)",
                         name, s);
            free(s);
            return rc;
        }
        if (k->kind == K_PATH) {
            for (size_t i = 0; i < NDERIVED; i++)
                if (derived[i].off == k->off)
                    ld->derived_set |= 1u << i;
        }
        free(*FIELD(cfg, k->off, char *));
        *FIELD(cfg, k->off, char *) = s;
        return 0;
    case K_BOOL:
        if ((rc = get_scalar(ld, ev, name, "a boolean", &v)) < 0)
            return rc;
        if (v.cls != S_BOOL)
            return fail_ev(ld, ev, "%s: expected a boolean (true or false), got %s", name,
                           class_name(v.cls));
        *FIELD(cfg, k->off, int) = v.b;
        return 0;
    case K_INT:
        if ((rc = get_int(ld, ev, name, k->min, k->max, &n)) < 0)
            return rc;
        *FIELD(cfg, k->off, int) = (int)n;
        return 0;
    case K_UINT:
        if ((rc = get_int(ld, ev, name, k->min, k->max, &n)) < 0)
            return rc;
        *FIELD(cfg, k->off, unsigned) = (unsigned)n;
        return 0;
    case K_SIZE:
        if ((rc = get_size(ld, ev, name, k->min, k->max, FIELD(cfg, k->off, size_t))) < 0)
            return rc;
        if (k->off == F(preauth_max_stanza_size))
            mark_of(ld, ev, &ld->pre_line, &ld->pre_col);
        else if (k->off == F(max_stanza_size))
            mark_of(ld, ev, &ld->max_line, &ld->max_col);
        return 0;
    case K_LOGLEVEL:
        if ((rc = get_enum(ld, ev, name, level_names, 4, &e)) < 0)
            return rc;
        *FIELD(cfg, k->off, int) = e;
        return 0;
    case K_CONFLICT:
        if ((rc = get_enum(ld, ev, name, conflict_names, 2, &e)) < 0)
            return rc;
        *FIELD(cfg, k->off, int) = e;
        return 0;
    case K_SEEPRES:
        if ((rc = get_enum(ld, ev, name, see_presence_names, 2, &e)) < 0)
            return rc;
        *FIELD(cfg, k->off, int) = e;
        return 0;
    case K_ARCHMODE:
        if ((rc = get_enum(ld, ev, name, archive_mode_names, 3, &e)) < 0)
            return rc;
        *FIELD(cfg, k->off, int) = e;
        return 0;
    case K_MUXPOLICY:
        if ((rc = get_enum(ld, ev, name, mux_policy_names, 2, &e)) < 0)
            return rc;
        *FIELD(cfg, k->off, int) = e;
        return 0;
    case K_MECHS:
    case K_HOSTS:
    case K_MODULES:
    case K_ACLLIST:
    case K_ACLJIDS:
    case K_STRLIST:
        return parse_list(ld, k, name, ev);
    case K_OPTSTR:
        if ((rc = get_scalar(ld, ev, name, "a string", &v)) < 0)
            return rc;
        if (v.cls != S_STR && v.cls != S_NULL)
            return fail_ev(ld, ev, "%s: expected a string, got %s", name, class_name(v.cls));
        if (v.cls == S_STR && memchr(v.p, '\0', v.len) != NULL)
            return fail_ev(ld, ev, "%s: must not contain a NUL byte", name);
        if ((s = strndup(v.cls == S_STR ? v.p : "", v.cls == S_STR ? v.len : 0)) == NULL)
            return nomem(ld);
        free(*FIELD(cfg, k->off, char *));
        *FIELD(cfg, k->off, char *) = s;
        return 0;
    }
    return fail_ev(ld, ev, "%s: internal error: unhandled key kind", name);
}

/* Called after the mapping's start event; consumes up to its end event. */
static int
parse_map(struct ld *ld, const struct key *tab, const char *prefix)
{
    uint64_t seen = 0;
    for (;;) {
        struct fy_event *ev = next_event(ld);
        if (ev == NULL)
            return MP_EINVAL;
        if (ev->type == FYET_MAPPING_END) {
            free_event(ld, ev);
            return 0;
        }
        char name[96];
        struct sval v;
        int rc = get_scalar(ld, ev, prefix ? prefix : "key", "a key name", &v);
        if (rc == 0 && v.cls != S_STR)
            rc = fail_ev(ld, ev, "%s%s%.*s: a key must be a string, got %s", prefix ? prefix : "",
                         prefix ? "." : "", (int)(v.len > 64 ? 64 : v.len), v.p, class_name(v.cls));
        size_t i = 0;
        if (rc == 0) {
            snprintf(name, sizeof name, "%s%s%.*s", prefix ? prefix : "", prefix ? "." : "",
                     (int)(v.len > 64 ? 64 : v.len), v.p);
            while (tab[i].name &&
                   (strlen(tab[i].name) != v.len || memcmp(tab[i].name, v.p, v.len) != 0))
                i++;
            if (tab[i].name == NULL)
                rc = fail_ev(ld, ev, "unknown key \"%s\"", name);
            else if (seen & ((uint64_t)1 << i))
                rc = fail_ev(ld, ev, "duplicate key \"%s\"", name);
            seen |= (uint64_t)1 << i;
        }
        if (rc == 0)
            mark_of(ld, ev, &ld->key_line, &ld->key_col);
        free_event(ld, ev);
        if (rc < 0)
            return rc;
        if ((ev = next_event(ld)) == NULL)
            return MP_EINVAL;
        rc = parse_value(ld, &tab[i], name, ev);
        free_event(ld, ev);
        if (rc < 0)
            return rc;
    }
}

static int
parse_stream(struct ld *ld)
{
    struct fy_event *ev;
    int docs = 0, rc = 0;
    while (rc == 0 && (ev = next_event(ld)) != NULL) {
        enum fy_event_type t = ev->type;
        if (t == FYET_STREAM_END) {
            free_event(ld, ev);
            return 0;
        }
        if (t == FYET_DOCUMENT_START && docs++ > 0)
            rc = fail_ev(ld, ev, "only one YAML document is allowed");
        free_event(ld, ev);
        if (rc < 0 || t != FYET_DOCUMENT_START)
            continue;

        if ((ev = next_event(ld)) == NULL)
            return MP_EINVAL;
        if (ev->type == FYET_MAPPING_START) {
            rc = parse_map(ld, top_keys, NULL);
        } else {
            struct sval v;
            rc = get_scalar(ld, ev, "top level", "a mapping", &v);
            if (rc == 0 && v.cls != S_NULL)
                rc = fail_ev(ld, ev, "top level: expected a mapping, got %s", class_name(v.cls));
        }
        free_event(ld, ev);
    }
    return rc < 0 ? rc : MP_EINVAL;
}

int
mp_config_load(const char *path, mp_config *cfg, char *err, size_t errlen)
{
    struct ld ld = {.path = path, .err = err, .errlen = errlen, .cfg = cfg};
    FILE *fp = NULL;
    int rc;

    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (mp_config_defaults(cfg) < 0) {
        memset(cfg, 0, sizeof *cfg);
        return nomem(&ld);
    }
    fp = fopen(path, "re");
    if (fp == NULL) {
        rc = fail_at(&ld, 0, 0, "%s", strerror(errno));
        goto fail;
    }
    struct stat st;
    if (fstat(fileno(fp), &st) < 0 || !S_ISREG(st.st_mode)) {
        rc = fail_at(&ld, 0, 0, "not a regular file");
        goto fail;
    }

    struct fy_diag_cfg dc;
    fy_diag_cfg_default(&dc);
    dc.fp = NULL; /* collect, never print: the caller decides where errors go */
    dc.output_fn = NULL;
    dc.colorize = false;
    ld.diag = fy_diag_create(&dc);
    if (ld.diag == NULL) {
        rc = nomem(&ld);
        goto fail;
    }
    fy_diag_set_collect_errors(ld.diag, true);
    struct fy_parse_cfg pc = {.flags = FYPCF_QUIET | FYPCF_COLLECT_DIAG, .diag = ld.diag};
    ld.fyp = fy_parser_create(&pc);
    if (ld.fyp == NULL) {
        rc = nomem(&ld);
        goto fail;
    }
    if (fy_parser_set_input_fp(ld.fyp, path, fp) != 0) {
        rc = fail_at(&ld, 0, 0, "cannot read the file");
        goto fail;
    }
    if ((rc = parse_stream(&ld)) < 0)
        goto fail;

    if (cfg->preauth_max_stanza_size > cfg->max_stanza_size) {
        int line = ld.pre_line ? ld.pre_line : ld.max_line;
        int col = ld.pre_line ? ld.pre_col : ld.max_col;
        rc = fail_at(&ld, line, col,
                     "c2s.preauth_max_stanza_size (%zu) must not exceed c2s.max_stanza_size (%zu)",
                     cfg->preauth_max_stanza_size, cfg->max_stanza_size);
        goto fail;
    }
    for (size_t i = 0; i < ld.npend; i++) {
        const struct pending_host *ph = &ld.pend[i];
        if (!mp_config_is_host(cfg, ph->word, strlen(ph->word))) {
            rc = fail_at(&ld, ph->line, ph->col,
                         "%s: unknown principal \"%s\" (all, local, admins, a domain with a dot "
                         "or one of hosts, or a bare JID)",
                         ph->name, ph->word);
            goto fail;
        }
    }
    if (resolve_paths(cfg, ld.derived_set) < 0 || (cfg->path = strdup(path)) == NULL) {
        rc = nomem(&ld);
        goto fail;
    }
    free(ld.pend);
    fy_parser_destroy(ld.fyp);
    fy_diag_destroy(ld.diag);
    fclose(fp);
    return 0;

fail:
    free(ld.pend);
    if (ld.fyp != NULL)
        fy_parser_destroy(ld.fyp);
    if (ld.diag != NULL)
        fy_diag_destroy(ld.diag);
    if (fp != NULL)
        fclose(fp);
    mp_config_free(cfg);
    return ld.nomem ? MP_ENOMEM : MP_EINVAL;
}

/* ---- the default file ---- */

static void
write_size(FILE *f, size_t n)
{
    if (n >= (1u << 20) && n % (1u << 20) == 0)
        fprintf(f, "%zuMiB", n >> 20);
    else if (n >= 1024 && n % 1024 == 0)
        fprintf(f, "%zuKiB", n >> 10);
    else
        fprintf(f, "%zu", n);
}

static void
write_qstr(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fputc('\\', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static void
write_keys(FILE *f, const mp_config *cfg, const struct key *tab, const char *indent)
{
    for (const struct key *k = tab; k->name; k++) {
        const void *slot = (const char *)cfg + k->off;
        fprintf(f, "%s# %s\n", indent, k->doc);
        if (k->kind == K_PATH) {
            for (size_t i = 0; i < NDERIVED; i++)
                if (derived[i].off == k->off)
                    fprintf(f, "%s# %s: <data_dir>/%s\n", indent, k->name, derived[i].file);
            continue;
        }
        fprintf(f, "%s%s:", indent, k->name);
        switch (k->kind) {
        case K_SECTION:
            fputc('\n', f);
            write_keys(f, cfg, k->sub, "  ");
            break;
        case K_STR:
        case K_OPTSTR:
        case K_ADDR:
        case K_BACKEND:
            fputc(' ', f);
            write_qstr(f, *(char *const *)slot);
            fputc('\n', f);
            break;
        case K_BOOL:
            fprintf(f, " %s\n", *(const int *)slot ? "true" : "false");
            break;
        case K_INT:
            fprintf(f, " %d\n", *(const int *)slot);
            break;
        case K_UINT:
            fprintf(f, " %u\n", *(const unsigned *)slot);
            break;
        case K_SIZE:
            fputc(' ', f);
            write_size(f, *(const size_t *)slot);
            fputc('\n', f);
            break;
        case K_LOGLEVEL:
            fprintf(f, " %s\n", level_names[*(const int *)slot]);
            break;
        case K_CONFLICT:
            fprintf(f, " %s\n", conflict_names[*(const int *)slot]);
            break;
        case K_MECHS:
            fputc('\n', f);
            for (size_t i = 0; i < NMECHS; i++)
                if (*(const unsigned *)slot & mechs[i].bit)
                    fprintf(f, "%s  - %s\n", indent, mechs[i].name);
            break;
        case K_HOSTS:
        case K_MODULES: {
            char *const *list = *(char **const *)slot;
            size_t n = k->kind == K_HOSTS ? cfg->nhosts : cfg->nmodules;
            fputc('\n', f);
            for (size_t i = 0; i < n; i++) {
                fprintf(f, "%s  - ", indent);
                write_qstr(f, list[i]);
                fputc('\n', f);
            }
            break;
        }
        case K_SEEPRES:
            fprintf(f, " %s\n", see_presence_names[*(const int *)slot]);
            break;
        case K_ARCHMODE:
            fprintf(f, " %s\n", archive_mode_names[*(const int *)slot]);
            break;
        case K_MUXPOLICY:
            fprintf(f, " %s\n", mux_policy_names[*(const int *)slot]);
            break;
        case K_ACLLIST:
        case K_ACLJIDS:
        case K_STRLIST: {
            /* Flow style, so that an empty list stays a list and not null. */
            const mp_strlist *l = slot;
            fputs(" [", f);
            for (size_t i = 0; i < l->n; i++) {
                fputs(i ? ", " : "", f);
                write_qstr(f, l->v[i]);
            }
            fputs("]\n", f);
            break;
        }
        case K_PATH:
            break;
        }
        if (k->kind == K_SECTION && *indent == '\0')
            fputc('\n', f);
    }
}

int
mp_config_write_default(const char *path)
{
    mp_config cfg;
    char *text = NULL;
    size_t len = 0;
    int rc = mp_config_defaults(&cfg);
    if (rc < 0)
        return rc;
    FILE *f = open_memstream(&text, &len);
    if (f == NULL) {
        mp_config_free(&cfg);
        return MP_ENOMEM;
    }
    fputs("# Magpie configuration. Every key is listed with its default value;\n"
          "# see docs/configuration.md. Check a file with:\n"
          "#   magpied --check-config --config FILE\n"
          "# Sizes take an integer number of bytes or a K, KiB, M, MiB, G or GiB suffix.\n"
          "# Commented paths default to a file in data_dir.\n\n",
          f);
    write_keys(f, &cfg, top_keys, "");
    mp_config_free(&cfg);
    if (fclose(f) != 0) {
        free(text);
        return MP_ENOMEM;
    }

    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (fd < 0) {
        rc = errno == EEXIST ? MP_EEXIST : MP_EIO;
        free(text);
        return rc;
    }
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, text + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            rc = MP_EIO;
            break;
        }
        off += (size_t)w;
    }
    if (close(fd) != 0)
        rc = MP_EIO;
    if (rc < 0)
        unlink(path); /* never leave a half-written file that O_EXCL would then keep */
    free(text);
    return rc;
}
