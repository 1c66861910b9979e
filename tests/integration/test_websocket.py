"""XMPP over WebSocket (RFC 7395) on /xmpp-websocket.

Alice uses Strophe.js in node (tests/node/xmpp_client.js) over WebSocket; Bob uses slixmpp
over TCP. They see each other's presence and exchange messages both ways; the login itself
proves the stream restart after SASL (a second <open/>). The error cases use a tiny WebSocket
client written here on a raw socket: a missing or wrong sub-protocol, a bad version, an origin
outside http.cors_origins, unmasked, binary and oversize frames, see-other-uri.
"""
import asyncio
import base64
import json
import os
import re
import shutil
import socket
import ssl
import struct
import time

import pytest
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from conftest import (DOMAIN, insecure_context, next_message, run, slix_close, slix_login)

NODE = "/usr/bin/node"
NODE_DIR = os.path.join(os.path.dirname(__file__), "..", "node")
CLIENT_JS = os.path.join(NODE_DIR, "xmpp_client.js")
NS_FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"
# The spelling Strophe.js recognises (it compares strings).
CLOSE = f'<close xmlns="{NS_FRAMING}" />'


def require_node():
    if not os.path.exists(os.path.join(NODE_DIR, "node_modules", "strophe.js")):
        if shutil.which("npm") is None:
            pytest.skip("tests/node/node_modules is missing and npm is not installed: "
                        "cannot run the Strophe.js client")
        pytest.fail("tests/node/node_modules is missing: run `cd tests/node && npm install`")
    if not os.path.exists(NODE):
        pytest.skip(f"{NODE} is not installed")


class NodeClient:
    """tests/node/xmpp_client.js: commands in, events out (JSON lines)."""

    def __init__(self, proc):
        self.proc = proc
        self.events = []
        self.queue = asyncio.Queue()
        self.reader = asyncio.ensure_future(self._read())

    @classmethod
    async def start(cls, url, jid, password, insecure=False):
        args = [NODE, CLIENT_JS, "--url", url, "--jid", jid, "--password", password]
        if insecure:
            args.append("--insecure")
        proc = await asyncio.create_subprocess_exec(
            *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        return cls(proc)

    async def _read(self):
        while True:
            line = await self.proc.stdout.readline()
            if not line:
                await self.queue.put(None)
                return
            try:
                ev = json.loads(line)
            except ValueError:
                continue  # not an event (a library writing to stdout)
            self.events.append(ev)
            await self.queue.put(ev)

    def send(self, **cmd):
        self.proc.stdin.write((json.dumps(cmd) + "\n").encode())

    async def wait_for(self, pred, what, timeout=20):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"Strophe client: no {what} within {timeout}s; "
                                     f"events: {self.events}")
            try:
                ev = await asyncio.wait_for(self.queue.get(), left)
            except asyncio.TimeoutError:
                continue
            if ev is None:
                err = (await self.proc.stderr.read()).decode(errors="replace")
                raise AssertionError(f"Strophe client exited before {what}; events: "
                                     f"{self.events}; stderr: {err[-2000:]}")
            if pred(ev):
                return ev

    async def close(self, timeout=15):
        if self.proc.returncode is None:
            try:
                self.proc.stdin.close()
            except (BrokenPipeError, ConnectionResetError):
                pass
            try:
                await asyncio.wait_for(self.proc.wait(), timeout)
            except asyncio.TimeoutError:
                self.proc.kill()
                await self.proc.wait()
                raise AssertionError("Strophe client did not exit after end of input")
        await self.reader
        return self.proc.returncode


def ws_url(server, tls=False):
    if tls:
        return f"wss://{server.host}:{server.https_port}/xmpp-websocket"
    return f"ws://{server.host}:{server.http_port}/xmpp-websocket"


# -- Strophe.js against slixmpp --------------------------------------------------------------

def test_strophe_websocket_chat_with_tcp_client(make_server):
    require_node()
    srv = make_server(users={"alice": None, "bob": None},
                      config={"http": {"consider_secure": True}})

    async def scenario():
        bob = await slix_login(srv, "bob", resource="tcp")
        alice = await NodeClient.start(ws_url(srv), f"alice@{DOMAIN}/web", srv.users["alice"])
        try:
            ev = await alice.wait_for(lambda e: e["event"] in ("connected", "disconnected"),
                                      "connected")
            assert ev["event"] == "connected", alice.events
            assert ev["jid"].startswith(f"alice@{DOMAIN}/"), ev
            alice_jid = ev["jid"]

            # Presence both ways (directed: no roster needed).
            seen = asyncio.get_running_loop().create_future()
            bob.register_handler(Callback(
                "alice's presence", MatchXPath("{jabber:client}presence"),
                lambda p: seen.done() or str(p["from"]) != alice_jid or seen.set_result(p)))
            alice.send(cmd="presence", to=f"bob@{DOMAIN}/tcp", show="chat", status="from the web")
            p = await asyncio.wait_for(seen, 10)
            assert p["show"] == "chat" and p["status"] == "from the web"
            bob.send_presence(pto=alice_jid, pstatus="on tcp")
            ev = await alice.wait_for(lambda e: e["event"] == "presence" and
                                      e["from"] == f"bob@{DOMAIN}/tcp", "bob's presence")
            assert ev["type"] is None and ev["status"] == "on tcp", ev

            # Messages both ways, with markup that must survive the framing.
            alice.send(cmd="message", to=f"bob@{DOMAIN}/tcp", body="hello <bob> & 'co' \u00e9")
            m = await next_message(bob, what="alice's message")
            assert m["body"] == "hello <bob> & 'co' \u00e9"
            assert str(m["from"]) == alice_jid
            bob.send_message(mto=alice_jid, mbody="hi alice \U0001f600", mtype="chat")
            ev = await alice.wait_for(lambda e: e["event"] == "message", "bob's message")
            assert ev["body"] == "hi alice \U0001f600" and ev["from"] == f"bob@{DOMAIN}/tcp"

            # Many messages in a row, in order.
            for i in range(20):
                bob.send_message(mto=alice_jid, mbody=f"n{i}", mtype="chat")
            for i in range(20):
                ev = await alice.wait_for(lambda e: e["event"] == "message", f"message n{i}")
                assert ev["body"] == f"n{i}"

            alice.send(cmd="ping", id="p1")
            await alice.wait_for(lambda e: e["event"] == "pong" and e["id"] == "p1", "pong")
            alice.send(cmd="disconnect")
            ev = await alice.wait_for(lambda e: e["event"] == "disconnected", "disconnected")
        finally:
            rc = await alice.close()
            await slix_close(bob)
        assert rc == 0
        # The stream was restarted after SASL, on the same WebSocket.
        log = srv.log()
        assert re.search(r"WebSocket open", log)

    run(scenario())


def test_strophe_over_wss_with_tls_required(make_server):
    """Over HTTPS the connection is encrypted: c2s.tls_required lets Strophe log in."""
    require_node()
    srv = make_server(users={"alice": None})

    async def scenario():
        alice = await NodeClient.start(ws_url(srv, tls=True), f"alice@{DOMAIN}/wss",
                                       srv.users["alice"], insecure=True)
        try:
            ev = await alice.wait_for(lambda e: e["event"] in ("connected", "disconnected"),
                                      "connected")
            assert ev["event"] == "connected", alice.events
            alice.send(cmd="message", to=f"alice@{DOMAIN}/wss", body="to myself")
            ev = await alice.wait_for(lambda e: e["event"] == "message", "own message")
            assert ev["body"] == "to myself"
        finally:
            assert await alice.close() == 0

    run(scenario())


def test_plain_websocket_without_consider_secure_cannot_log_in(make_server):
    require_node()
    srv = make_server(users={"alice": None})

    async def scenario():
        alice = await NodeClient.start(ws_url(srv), f"alice@{DOMAIN}/web", srv.users["alice"])
        ev = await alice.wait_for(lambda e: e["event"] in ("connected", "disconnected"),
                                  "the end of the attempt")
        assert ev["event"] == "disconnected", alice.events
        assert not any(e["event"] == "connected" for e in alice.events)
        assert await alice.close() == 1

    run(scenario())


# -- a raw WebSocket client --------------------------------------------------------------------

class WS:
    """Just enough of RFC 6455 to say exactly what a test wants, right or wrong."""

    def __init__(self, server, protocol="xmpp", version="13", origin=None, tls=False,
                 path="/xmpp-websocket"):
        port = server.https_port if tls else server.http_port
        self.sock = socket.create_connection((server.host, port), timeout=10)
        if tls:
            self.sock = insecure_context().wrap_socket(self.sock, server_hostname=DOMAIN)
        self.buf = b""
        key = base64.b64encode(os.urandom(16)).decode()
        req = (f"GET {path} HTTP/1.1\r\nHost: {server.host}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
               f"Sec-WebSocket-Version: {version}\r\n")
        if protocol is not None:
            req += f"Sec-WebSocket-Protocol: {protocol}\r\n"
        if origin is not None:
            req += f"Origin: {origin}\r\n"
        self.sock.sendall((req + "\r\n").encode())
        while b"\r\n\r\n" not in self.buf:
            self._recv()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        self.head = head.decode()
        self.status = int(self.head.split()[1])
        self.headers = {}
        for line in self.head.split("\r\n")[1:]:
            k, v = line.split(":", 1)
            self.headers[k.strip().lower()] = v.strip()
        if self.status == 101:
            import hashlib
            want = base64.b64encode(hashlib.sha1(
                (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
            assert self.headers["sec-websocket-accept"] == want
            assert self.headers["sec-websocket-protocol"] == "xmpp"

    def _recv(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError
        self.buf += data

    def frame(self, payload, opcode=1, fin=True, mask=True):
        if isinstance(payload, str):
            payload = payload.encode()
        head = bytes([(0x80 if fin else 0) | opcode])
        n = len(payload)
        mbit = 0x80 if mask else 0
        if n < 126:
            head += bytes([mbit | n])
        elif n < 65536:
            head += bytes([mbit | 126]) + struct.pack(">H", n)
        else:
            head += bytes([mbit | 127]) + struct.pack(">Q", n)
        if mask:
            key = os.urandom(4)
            payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
            head += key
        return head + payload

    def send(self, payload, **kw):
        self.sock.sendall(self.frame(payload, **kw))

    def recv(self, timeout=10):
        """(opcode, payload bytes) of the next server frame."""
        self.sock.settimeout(timeout)
        while True:
            if len(self.buf) >= 2:
                b0, b1 = self.buf[0], self.buf[1]
                assert not b1 & 0x80, "server frames must not be masked"
                n, h = b1 & 0x7f, 2
                if n == 126 and len(self.buf) >= 4:
                    n, h = struct.unpack(">H", self.buf[2:4])[0], 4
                elif n == 127 and len(self.buf) >= 10:
                    n, h = struct.unpack(">Q", self.buf[2:10])[0], 10
                if (n < 126 or h > 2) and len(self.buf) >= h + n:
                    payload = self.buf[h:h + n]
                    self.buf = self.buf[h + n:]
                    assert b0 & 0x80, "fragmented server frame"
                    return b0 & 0x0f, payload
            self._recv()

    def recv_text(self, timeout=10):
        op, p = self.recv(timeout)
        assert op == 1, f"expected a text frame, got opcode {op}: {p!r}"
        return p.decode()

    def expect_close(self, status, timeout=10):
        """Skips text frames up to the close frame; then the server closes the connection."""
        texts = []
        while True:
            op, p = self.recv(timeout)
            if op == 8:
                break
            texts.append(p.decode(errors="replace"))
        got = struct.unpack(">H", p[:2])[0] if len(p) >= 2 else None
        assert got == status, f"close status {got}, expected {status}; texts before: {texts}"
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._recv()
            except (EOFError, ConnectionResetError):
                return texts
            assert time.monotonic() < deadline, "server kept the connection after its close"

    def close(self):
        self.sock.close()


def test_raw_websocket_stream(make_server):
    srv = make_server(users={"alice": None}, config={"http": {"consider_secure": True}})
    ws = WS(srv)
    assert ws.status == 101
    ws.send(f"<open xmlns='{NS_FRAMING}' to='{DOMAIN}' version='1.0'/>")
    opened = ws.recv_text()
    assert re.match(rf"<open xmlns='{NS_FRAMING}' from='{DOMAIN}' id='[^']+' version='1.0'", opened)
    features = ws.recv_text()
    assert features.startswith(
        "<stream:features xmlns:stream='http://etherx.jabber.org/streams'"), features
    assert "PLAIN" in features and "starttls" not in features
    # A ping is answered with the same payload.
    ws.send(b"are you there", opcode=9)
    assert ws.recv() == (10, b"are you there")
    # Log in with PLAIN, restart with a new <open/>, bind: each element is one message.
    cred = base64.b64encode(f"\0alice\0{srv.users['alice']}".encode()).decode()
    ws.send(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{cred}</auth>")
    assert ws.recv_text().startswith("<success")
    ws.send(f"<open xmlns='{NS_FRAMING}' to='{DOMAIN}' version='1.0'/>")
    assert ws.recv_text().startswith("<open ")
    assert "urn:ietf:params:xml:ns:xmpp-bind" in ws.recv_text()
    ws.send("<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
            "<resource>raw</resource></bind></iq>")
    bound = ws.recv_text()
    assert bound.startswith("<iq xmlns='jabber:client'") and f"alice@{DOMAIN}/raw" in bound
    # A stanza in two fragments.
    ws.send("<message to='alice@localhost/raw' type='chat'>", fin=False)
    ws.send("<body>split</body></message>", opcode=0)
    msg = ws.recv_text()
    assert msg.startswith("<message xmlns='jabber:client'") and "<body>split</body>" in msg
    # <close/> is answered with <close/> and the closing handshake.
    ws.send(f"<close xmlns='{NS_FRAMING}'/>")
    texts = ws.expect_close(1000)
    assert texts == [CLOSE], texts
    ws.close()


def test_starttls_refused(make_server):
    """TLS over the web is the WebSocket's own (RFC 7395): <starttls/> gets <failure/>, then
    the stream ends with <close/> and the closing handshake."""
    srv = make_server(users={"alice": None})
    ws = WS(srv)
    assert ws.status == 101
    ws.send(f"<open xmlns='{NS_FRAMING}' to='{DOMAIN}' version='1.0'/>")
    assert ws.recv_text().startswith("<open ")
    assert "starttls" not in ws.recv_text()  # not offered, and refused when asked anyway
    ws.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
    texts = ws.expect_close(1000)
    assert texts == ["<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>", CLOSE], texts
    ws.close()
    assert "established" not in srv.log()


def test_host_unknown(make_server):
    srv = make_server()
    ws = WS(srv)
    ws.send(f"<open xmlns='{NS_FRAMING}' to='elsewhere.example' version='1.0'/>")
    texts = ws.expect_close(1000)
    assert texts[0].startswith("<open ")
    assert any("<host-unknown" in t and "xmlns:stream=" in t for t in texts), texts
    assert texts[-1] == CLOSE


@pytest.mark.parametrize("protocol", [None, "chat", "xmpp-ish, soap"])
def test_subprotocol_required(make_server, protocol):
    srv = make_server()
    ws = WS(srv, protocol=protocol)
    assert ws.status == 400, ws.head
    assert "sec-websocket-protocol" not in ws.headers


def test_bad_version(make_server):
    srv = make_server()
    ws = WS(srv, version="8")
    assert ws.status == 426, ws.head
    assert ws.headers["sec-websocket-version"] == "13"


def test_origin_checked(make_server):
    srv = make_server(config={"http": {"cors_origins": ["https://chat.example"]}})
    assert WS(srv, origin="https://evil.example").status == 403
    assert WS(srv, origin="https://chat.example").status == 101
    assert WS(srv).status == 101  # no Origin: not a browser


def test_unmasked_frame(make_server):
    srv = make_server()
    ws = WS(srv)
    ws.send(f"<open xmlns='{NS_FRAMING}' to='{DOMAIN}' version='1.0'/>", mask=False)
    ws.expect_close(1002)


def test_binary_frame(make_server):
    srv = make_server()
    ws = WS(srv)
    ws.send(f"<open xmlns='{NS_FRAMING}' to='{DOMAIN}' version='1.0'/>", opcode=2)
    ws.expect_close(1003)


def test_oversize_message(make_server):
    srv = make_server(config={"http": {"websocket_max_message": 4096}})
    ws = WS(srv)
    ws.send(f"<open xmlns='{NS_FRAMING}' to='{DOMAIN}' version='1.0'/>")
    ws.recv_text()
    ws.recv_text()
    # Refused on the frame header: the payload need not even be sent.
    big = "<message><body>" + "x" * 5000 + "</body></message>"
    ws.sock.sendall(ws.frame(big)[:200])
    ws.expect_close(1009)


def test_oversize_stanza_is_a_stream_error(make_server):
    """Within the WebSocket limit but over the pre-authentication stanza size: the framer's
    policy-violation, inside the XMPP stream."""
    srv = make_server()
    ws = WS(srv)
    ws.send(f"<open xmlns='{NS_FRAMING}' to='{DOMAIN}' version='1.0'/>")
    ws.recv_text()
    ws.recv_text()
    ws.send("<message><body>" + "x" * 20000 + "</body></message>")
    texts = ws.expect_close(1000)
    assert any("<stream:error" in t for t in texts), texts


def test_see_other_uri(make_server):
    other = "wss://other.example:5443/xmpp-websocket"
    srv = make_server(config={"http": {"websocket_see_other_uri": other}})
    ws = WS(srv)
    ws.send(f"<open xmlns='{NS_FRAMING}' to='{DOMAIN}' version='1.0'/>")
    texts = ws.expect_close(1000)
    assert texts == [f"<close xmlns='{NS_FRAMING}' see-other-uri='{other}'/>"], texts


def test_client_close_frame_and_idle_timeout(make_server):
    srv = make_server(config={"c2s": {"unauthenticated_timeout": 2}})
    ws = WS(srv)
    ws.send(struct.pack(">H", 1001) + b"bye", opcode=8)
    ws.expect_close(1000)
    # A WebSocket that never opens a stream is dropped after the unauthenticated timeout.
    ws = WS(srv)
    t0 = time.monotonic()
    texts = ws.expect_close(1000, timeout=10)
    assert time.monotonic() - t0 >= 1.0
    assert texts[0].startswith("<open ") and "<connection-timeout" in texts[1], texts
    assert texts[-1] == CLOSE


def test_wss_raw(make_server):
    srv = make_server()
    ws = WS(srv, tls=True)
    assert ws.status == 101
    ws.send(f"<open xmlns='{NS_FRAMING}' to='{DOMAIN}' version='1.0'/>")
    assert ws.recv_text().startswith("<open ")
    assert "SCRAM-SHA-256" in ws.recv_text()
    ws.send(f"<close xmlns='{NS_FRAMING}'/>")
    ws.expect_close(1000)
