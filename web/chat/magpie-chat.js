// Starts Converse.js (dist/, installed from npm at build time) in full-screen view against the
// server that served this page, with the deployment's settings from config.js.
const cfg = window.magpie_chat || {};
const { converse } = window;

function setting(name, fallback) {
    return cfg[name] === undefined ? fallback : cfg[name];
}

function isAddress(host) {
    return /^[0-9.]+$/.test(host) || host.startsWith('[');
}

// The page's own origin: WebSocket first, BOSH when WebSocket cannot connect.
const wsScheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
const websocketUrl = setting('websocket_url', `${wsScheme}//${location.host}/xmpp-websocket`);
const boshUrl = setting('bosh_service_url', `${location.origin}/http-bind`);
// A page reached by a literal address names no XMPP domain: users then type whole JIDs.
const domain = setting('domain', isAddress(location.hostname) ? undefined : location.hostname);

// Converse's own footer shows its sponsors' logos, loaded from conversejs.org. This page loads
// nothing from elsewhere, so a plain footer takes the element's name before Converse registers
// its own (Converse skips names already defined).
customElements.define(
    'converse-footer',
    class extends HTMLElement {
        connectedCallback() {
            if (this.childElementCount) {
                return;
            }
            const p = document.createElement('p');
            p.className = 'brand-subtitle subdued text-center py-3';
            const a = document.createElement('a');
            a.href = 'https://conversejs.org/';
            a.rel = 'noopener noreferrer';
            a.target = '_blank';
            a.textContent = 'Converse.js';
            p.append('Magpie web chat with ', a, ` ${converse.env?.VERSION_NAME || ''} (MPL-2.0)`);
            this.append(p);
        }
    },
);

// Converse's own switch to BOSH after a failed WebSocket connection is not dependable in 14.0
// (it kept retrying the WebSocket), so the page tries the WebSocket endpoint once itself: open
// within a few seconds, or use BOSH alone.
function websocketWorks(url, ms = 4000) {
    return new Promise((resolve) => {
        let ws;
        const done = (ok) => {
            clearTimeout(timer);
            if (ws) {
                ws.onopen = ws.onerror = ws.onclose = null;
                ws.close();
            }
            resolve(ok);
        };
        const timer = setTimeout(() => done(false), ms);
        try {
            ws = new WebSocket(url, 'xmpp');
        } catch (e) {
            done(false);
            return;
        }
        ws.onopen = () => done(true);
        ws.onerror = ws.onclose = () => done(false);
    });
}

const useWebsocket = websocketUrl && (!boshUrl || (await websocketWorks(websocketUrl)));

const settings = {
    view_mode: 'fullscreen',
    authentication: 'login',
    auto_login: false,
    auto_reconnect: true,
    // XEP-0156 discovery would ask https://<JID domain>/.well-known/host-meta, another origin
    // than this page's in most set-ups; the endpoints are known here.
    discover_connection_methods: false,
    websocket_url: useWebsocket ? websocketUrl : undefined,
    bosh_service_url: boshUrl || undefined,
    assets_path: new URL('dist', location.href).pathname,
    allow_registration: setting('allow_registration', false),
    // Both default to lists fetched from data.xmpp.net.
    xmpp_providers_url: '',
    autocomplete_providers_url: '',
    use_system_emojis: true,
    loglevel: setting('loglevel', 'warn'),
};
if (domain) {
    settings[setting('lock_domain', false) ? 'locked_domain' : 'default_domain'] = domain;
    settings.registration_domain = domain;
    settings.domain_placeholder = domain;
}
converse.initialize({ ...settings, ...(cfg.converse || {}) });
