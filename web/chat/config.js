// Settings of this deployment's web chat page (/chat/). The build copies this file only when
// it is missing, so an edited copy in the web root survives rebuilds. Every key is optional:
// by default the page talks to the server that served it (WebSocket on /xmpp-websocket, BOSH
// on /http-bind as the fall-back) and offers the page's host name as the XMPP domain.
window.magpie_chat = {
    // domain: 'example.org',         // XMPP domain for bare user names ("alice")
    // lock_domain: false,            // true: only accounts of `domain` may log in
    // websocket_url: 'wss://chat.example.org/xmpp-websocket',  // '' for BOSH only
    // bosh_service_url: 'https://chat.example.org/http-bind',  // '' for WebSocket only
    // allow_registration: false,     // in-band registration form (needs the register module)
    // converse: {},                  // any other Converse.js setting, passed through as is
};
