#!/usr/bin/env node
/*
 * A small real XMPP client on Strophe.js, driven by the integration tests over WebSocket
 * (ws:// or wss:// URL, RFC 7395) or BOSH (http:// or https:// URL, XEP-0124/0206): Strophe
 * picks the transport from the URL.
 *
 *   node xmpp_client.js --url ws://127.0.0.1:5280/xmpp-websocket --jid alice@localhost/web \
 *        --password secret [--insecure] [--debug] [--timeout 30]
 *
 *   --insecure  accept any TLS certificate (the test server's is self-signed)
 *   --debug     Strophe's raw traffic on stderr
 *   --timeout   seconds to wait for the connection before giving up (default 30)
 *
 * Protocol: one JSON object per line on stdin (commands) and on stdout (events).
 *
 * Commands (stdin; queued until connected, run in order):
 *   {"cmd": "message", "to": JID, "body": TEXT, "type": "chat", "id": ID}   type, id optional
 *   {"cmd": "presence", "to": JID, "type": T, "show": S, "status": TEXT}   all optional
 *   {"cmd": "raw", "xml": "<iq .../>"}         sends the XML as it is
 *   {"cmd": "ping", "id": ID}                  XEP-0199 ping to the server; "pong" event when
 *                                              answered: a barrier for what was sent before
 *   {"cmd": "wait", "ms": N}                   pause before the next command
 *   {"cmd": "disconnect"}                      close the stream, then exit
 *   End of stdin disconnects too.
 *
 * Events (stdout):
 *   {"event": "status", "status": NAME, "condition": C}   every Strophe status change
 *   {"event": "connected", "jid": FULL_JID}
 *   {"event": "message", "from", "to", "type", "id", "body"}  body null when absent
 *   {"event": "presence", "from", "to", "type", "show", "status"}
 *   {"event": "iq", "from", "type", "id", "xml"}   IQs addressed to us (get/set are answered
 *                                                  with service-unavailable, pings with result)
 *   {"event": "pong", "id": ID}
 *   {"event": "error", "condition": C, "text": T}  connection failures, bad commands
 *   {"event": "disconnected", "condition": C}      last event; the process exits 0 after it
 *                                                  (1 when it never connected)
 */
'use strict';

const http = require('http');
const https = require('https');
const readline = require('readline');

// ---- arguments ----

function parseArgs(argv) {
    const a = { timeout: 30, insecure: false, debug: false };
    for (let i = 2; i < argv.length; i++) {
        const k = argv[i];
        if (k === '--insecure') a.insecure = true;
        else if (k === '--debug') a.debug = true;
        else if (k === '--url' || k === '--jid' || k === '--password' || k === '--timeout') {
            if (i + 1 >= argv.length) usage(`${k} needs a value`);
            a[k.slice(2)] = argv[++i];
        } else usage(`unknown argument ${k}`);
    }
    if (!a.url || !a.jid || a.password === undefined) usage('--url, --jid and --password are required');
    a.timeout = Number(a.timeout);
    return a;
}

function usage(msg) {
    process.stderr.write(`xmpp_client.js: ${msg}\n` +
        'usage: xmpp_client.js --url URL --jid JID --password PW [--insecure] [--debug] [--timeout S]\n');
    process.exit(2);
}

const args = parseArgs(process.argv);

function emit(obj) {
    process.stdout.write(JSON.stringify(obj) + '\n');
}

// ---- what node lacks and Strophe needs ----

// stdout carries the events only: Strophe's own logging goes to stderr with --debug.
for (const k of ['log', 'info', 'debug', 'warn', 'error', 'trace']) {
    console[k] = args.debug ? (...a) => process.stderr.write(`${k}: ${a.join(' ')}\n`) : () => {};
}
if (args.insecure) process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';
if (typeof globalThis.crypto === 'undefined') globalThis.crypto = require('crypto').webcrypto;

/* XMLHttpRequest for BOSH, on node's http(s) with keep-alive agents: enough of the API for
 * Strophe (open, setRequestHeader, send, abort, readyState, status, responseText). */
const agents = {
    'http:': new http.Agent({ keepAlive: true, maxSockets: 4 }),
    'https:': new https.Agent({ keepAlive: true, maxSockets: 4, rejectUnauthorized: !args.insecure }),
};

class NodeXHR {
    constructor() {
        this.readyState = 0;
        this.status = 0;
        this.responseText = '';
        this.responseXML = null;
        this.onreadystatechange = null;
        this.withCredentials = false;
        this._headers = {};
        this._resHeaders = {};
        this._req = null;
        this._aborted = false;
    }

    open(method, url) {
        this._method = method;
        this._url = new URL(url);
        this._set(1);
    }

    setRequestHeader(k, v) {
        this._headers[k] = v;
    }

    overrideMimeType() {}

    getAllResponseHeaders() {
        return Object.entries(this._resHeaders).map(([k, v]) => `${k}: ${v}`).join('\r\n');
    }

    send(body) {
        const u = this._url;
        const mod = u.protocol === 'https:' ? https : http;
        const data = body === undefined || body === null ? '' : String(body);
        const headers = Object.assign({ 'Content-Length': Buffer.byteLength(data) }, this._headers);
        this._req = mod.request({
            method: this._method, hostname: u.hostname, port: u.port, path: u.pathname + u.search,
            headers, agent: agents[u.protocol],
        }, (res) => {
            const chunks = [];
            this.status = res.statusCode;
            this._resHeaders = res.headers;
            res.on('data', (c) => chunks.push(c));
            res.on('end', () => {
                if (this._aborted) return;
                this.responseText = Buffer.concat(chunks).toString('utf8');
                this._set(4);
            });
        });
        this._req.on('error', () => {
            if (this._aborted) return;
            this.status = 0;
            this._set(4);
        });
        this._req.end(data);
    }

    abort() {
        this._aborted = true;
        if (this._req) this._req.destroy();
    }

    _set(state) {
        this.readyState = state;
        if (this.onreadystatechange) this.onreadystatechange();
    }
}

if (typeof globalThis.XMLHttpRequest === 'undefined') globalThis.XMLHttpRequest = NodeXHR;

// Resolved from this file's folder (tests/node/node_modules), wherever we are started from;
// a bare name, so that the package's "exports" pick its CommonJS build.
const { Strophe, $msg, $pres, $iq } = require('strophe.js');

// Strophe's own copy of xmldom has no firstElementChild, which Strophe reads on every
// message while disconnecting: without it the process dies on the server's last stanzas.
const elementProto = Object.getPrototypeOf(Strophe.xmlElement('x'));
if (!('firstElementChild' in elementProto)) {
    Object.defineProperty(elementProto, 'firstElementChild', {
        get() {
            for (let n = this.firstChild; n; n = n.nextSibling) if (n.nodeType === 1) return n;
            return null;
        },
    });
}

// ---- the connection ----

const statusNames = Object.fromEntries(Object.entries(Strophe.Status).map(([k, v]) => [v, k]));
const conn = new Strophe.Connection(args.url);
let connected = false;
let everConnected = false;
let finished = false;
let lastCondition = null;
const queue = [];
let running = false;
let pingSeq = 0;

if (args.debug) {
    conn.rawInput = (d) => process.stderr.write(`RECV ${d}\n`);
    conn.rawOutput = (d) => process.stderr.write(`SENT ${d}\n`);
}

// Missing attributes are null whatever the DOM implementation returns for them.
function attr(el, name) {
    return el.getAttribute(name) || null;
}

function text(el, name) {
    const c = el.getElementsByTagName(name);
    return c.length ? Strophe.getText(c[0]) : null;
}

function unescape(s) {
    return s === null ? null : Strophe.xmlunescape(s);
}

function finish(condition) {
    if (finished) return;
    finished = true;
    emit({ event: 'disconnected', condition: condition || lastCondition });
    // Let stdout drain before exiting.
    process.stdout.write('', () => process.exit(everConnected ? 0 : 1));
}

conn.addHandler((m) => {
    emit({
        event: 'message', from: attr(m, 'from'), to: attr(m, 'to'),
        type: attr(m, 'type'), id: attr(m, 'id'), body: unescape(text(m, 'body')),
    });
    return true;
}, null, 'message');

conn.addHandler((p) => {
    emit({
        event: 'presence', from: attr(p, 'from'), to: attr(p, 'to'),
        type: attr(p, 'type'), show: text(p, 'show'), status: unescape(text(p, 'status')),
    });
    return true;
}, null, 'presence');

conn.addHandler((iq) => {
    const type = attr(iq, 'type');
    emit({ event: 'iq', from: attr(iq, 'from'), type, id: attr(iq, 'id'),
           xml: Strophe.serialize(iq) });
    if (type === 'get' || type === 'set') {
        const isPing = iq.getElementsByTagName('ping').length > 0;
        const reply = $iq({ type: isPing ? 'result' : 'error', id: attr(iq, 'id') });
        if (attr(iq, 'from')) reply.attrs({ to: attr(iq, 'from') });
        if (!isPing) {
            reply.c('error', { type: 'cancel' })
                .c('service-unavailable', { xmlns: 'urn:ietf:params:xml:ns:xmpp-stanzas' });
        }
        conn.send(reply.tree());
    }
    return true;
}, null, 'iq', null, null, null);

const timer = setTimeout(() => {
    if (!connected) {
        emit({ event: 'error', condition: 'timeout', text: `not connected within ${args.timeout}s` });
        finish('timeout');
    }
}, args.timeout * 1000);

conn.connect(args.jid, args.password, (status, condition) => {
    const name = statusNames[status] || String(status);
    emit({ event: 'status', status: name, condition: condition || null });
    if (condition) lastCondition = condition;
    switch (status) {
    case Strophe.Status.CONNECTED:
        connected = everConnected = true;
        clearTimeout(timer);
        emit({ event: 'connected', jid: conn.jid });
        runQueue();
        break;
    case Strophe.Status.CONNFAIL:
    case Strophe.Status.AUTHFAIL:
    case Strophe.Status.ERROR:
    case Strophe.Status.CONNTIMEOUT:
        emit({ event: 'error', condition: condition || name.toLowerCase(), text: name });
        break;
    case Strophe.Status.DISCONNECTED:
        connected = false;
        finish(condition);
        break;
    default:
        break;
    }
});

// ---- commands ----

function runQueue() {
    if (running || !connected) return;
    running = true;
    const step = () => {
        if (!connected || queue.length === 0) {
            running = false;
            return;
        }
        const cmd = queue.shift();
        let delay = 0;
        try {
            delay = runCommand(cmd);
        } catch (e) {
            emit({ event: 'error', condition: 'bad-command', text: String(e && e.message || e) });
        }
        if (delay > 0) setTimeout(step, delay);
        else setImmediate(step);
    };
    step();
}

function runCommand(cmd) {
    switch (cmd.cmd) {
    case 'message': {
        const attrs = { to: cmd.to, type: cmd.type || 'chat' };
        if (cmd.id) attrs.id = cmd.id;
        conn.send($msg(attrs).c('body').t(cmd.body === undefined ? '' : String(cmd.body)).tree());
        return 0;
    }
    case 'presence': {
        const attrs = {};
        if (cmd.to) attrs.to = cmd.to;
        if (cmd.type) attrs.type = cmd.type;
        const p = $pres(attrs);
        if (cmd.show) p.c('show').t(cmd.show).up();
        if (cmd.status) p.c('status').t(cmd.status).up();
        conn.send(p.tree());
        return 0;
    }
    case 'raw':
        conn.send(Strophe.xmlHtmlNode(cmd.xml).documentElement);
        return 0;
    case 'ping': {
        const id = cmd.id || `ping-${++pingSeq}`;
        const domain = Strophe.getDomainFromJid(conn.jid);
        conn.sendIQ($iq({ type: 'get', to: domain, id }).c('ping', { xmlns: 'urn:xmpp:ping' }),
            () => emit({ event: 'pong', id }),
            (el) => emit({ event: 'error', condition: 'ping-failed', text: el ? Strophe.serialize(el) : 'timeout' }),
            20000);
        return 0;
    }
    case 'wait':
        return Number(cmd.ms) || 0;
    case 'disconnect':
        conn.disconnect('bye');
        return 0;
    default:
        throw new Error(`unknown command ${JSON.stringify(cmd.cmd)}`);
    }
}

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
    if (!line.trim()) return;
    let cmd;
    try {
        cmd = JSON.parse(line);
    } catch (e) {
        emit({ event: 'error', condition: 'bad-command', text: `not JSON: ${line}` });
        return;
    }
    queue.push(cmd);
    runQueue();
});
rl.on('close', () => {
    // End of input: finish what is queued, then close the stream.
    queue.push({ cmd: 'disconnect' });
    if (connected) runQueue();
    else if (!everConnected) setTimeout(() => finish('stdin-closed'), 100);
});
