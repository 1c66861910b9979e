"""BOSH (XEP-0124, XEP-0206) on /http-bind: a raw HTTP client speaks the protocol byte by byte
(session creation, SASL PLAIN, stream restart, bind, messages and presence with a slixmpp user
over TCP, retransmission, the error cases), and Strophe.js in node proves a real client works."""
import asyncio
import base64
import json
import os
import random
import re
import shutil
import socket
import time
import xml.etree.ElementTree as ET

import pytest

from conftest import DOMAIN, insecure_context, next_message, run, slix_close, slix_login

NS_BOSH = "http://jabber.org/protocol/httpbind"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
XBOSH = "xmlns:xmpp='urn:xmpp:xbosh'"
BOSH_NS_ATTR = f"xmlns='{NS_BOSH}'"

# Short timers so that expiry cases run in seconds; TLS is trusted so plain HTTP may log in.
CONFIG = {"http": {"consider_secure": True, "bosh_max_inactivity": 3, "bosh_max_wait": 30,
                   "bosh_max_pause": 10, "max_body_size": 8192}}
NODE_DIR = os.path.join(os.path.dirname(__file__), "../node")


# -- a raw HTTP/1.1 client ----------------------------------------------------------------------

class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.text = body.decode()
        self.raw = body

    def xml(self):
        return ET.fromstring(self.text)

    def attr(self, name):
        return self.xml().get(name)

    def __repr__(self):
        return f"<HTTP {self.status} {self.text[:300]!r}>"


class HttpConn:
    """One keep-alive connection; a request may be sent now and its answer read later."""

    def __init__(self, port, tls=False):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=40)
        if tls:
            self.sock = insecure_context().wrap_socket(self.sock, server_hostname=DOMAIN)
        self.buf = b""

    def send(self, method, body=b"", headers=None, path="/http-bind"):
        if isinstance(body, str):
            body = body.encode()
        h = {"Host": DOMAIN, "Content-Type": "text/xml; charset=utf-8",
             "Content-Length": str(len(body))}
        h.update(headers or {})
        head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items())
        self.sock.sendall(head.encode() + b"\r\n" + body)

    def _fill(self, timeout):
        self.sock.settimeout(timeout)
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("closed by the server")
        self.buf += data

    def read(self, timeout=15):
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self.buf:
            self._fill(max(0.01, deadline - time.monotonic()))
        head, _, rest = self.buf.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        n = int(headers.get("content-length", "0"))
        while len(rest) < n:
            self.buf = head + b"\r\n\r\n" + rest
            self._fill(max(0.01, deadline - time.monotonic()))
            head, _, rest = self.buf.partition(b"\r\n\r\n")
        self.buf = rest[n:]
        return Response(status, headers, rest[:n])

    def request(self, method, body=b"", headers=None, timeout=15, path="/http-bind"):
        self.send(method, body, headers, path)
        return self.read(timeout)

    def close(self):
        self.sock.close()


class Bosh:
    """A BOSH session driven by hand. Each outstanding request gets a connection of its own."""

    def __init__(self, server, tls=False):
        self.port = server.https_port if tls else server.http_port
        self.tls = tls
        self.rid = random.randint(1 << 20, 1 << 40)
        self.sid = None
        self.free = []
        self.jid = None

    def conn(self):
        return self.free.pop() if self.free else HttpConn(self.port, self.tls)

    def wrap(self, children="", rid=None, **attrs):
        if rid is None:
            rid = self.rid
            self.rid += 1
        a = {"rid": str(rid)}
        if self.sid:
            a["sid"] = self.sid
        a.update({k.replace("__", ":"): str(v) for k, v in attrs.items()})
        at = " ".join(f"{k}='{v}'" for k, v in a.items())
        if children:
            return f"<body {at} {BOSH_NS_ATTR} {XBOSH}>{children}</body>"
        return f"<body {at} {BOSH_NS_ATTR} {XBOSH}/>"

    def send(self, children="", **attrs):
        """Send a request; returns a handle for read()."""
        c = self.conn()
        c.send("POST", self.wrap(children, **attrs))
        return c

    def read(self, c, timeout=15):
        r = c.read(timeout)
        self.free.append(c)
        return r

    def post(self, children="", timeout=15, **attrs):
        return self.read(self.send(children, **attrs), timeout)

    def create(self, wait=20, hold=1, ver="1.6", **extra):
        attrs = {"to": DOMAIN, "wait": wait, "hold": hold, "xml__lang": "en",
                 "xmpp__version": "1.0", "content": "text/xml; charset=utf-8"}
        if ver:
            attrs["ver"] = ver
        attrs.update(extra)
        r = self.post(**attrs)
        assert r.status == 200, r
        self.sid = r.attr("sid")
        assert self.sid, r
        return r

    def until(self, pattern, timeout=15):
        """Poll with empty requests until an answer matches pattern; returns its text."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = self.post(timeout=timeout)
            assert r.status == 200 and r.attr("type") != "terminate", r
            if re.search(pattern, r.text):
                return r.text
        raise AssertionError(f"no answer matching {pattern!r} within {timeout}s")

    def login(self, user, password, resource="bosh"):
        r = self.create()
        features = r.text if "mechanisms" in r.text else self.until("mechanisms")
        assert "PLAIN" in features
        cred = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        r = self.post(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{cred}</auth>")
        text = r.text if "success" in r.text else self.until("success|failure")
        assert "<success" in text, text
        r = self.post(to=DOMAIN, xml__lang="en", xmpp__restart="true")
        text = r.text if "bind" in r.text else self.until(NS_BIND)
        assert NS_BIND in text
        r = self.post(f"<iq type='set' id='b1' xmlns='jabber:client'><bind xmlns='{NS_BIND}'>"
                      f"<resource>{resource}</resource></bind></iq>")
        text = r.text if "<jid>" in r.text else self.until("<jid>")
        self.jid = re.search(r"<jid>([^<]+)</jid>", text).group(1)
        assert self.jid == f"{user}@{DOMAIN}/{resource}"
        return self.jid

    def close(self):
        for c in self.free:
            c.close()
        self.free = []


def assert_clean(srv):
    """No error line from the web transports (an answer to a connection not waiting, a
    malformed write from the core)."""
    log = srv.log()
    assert "HTTP answer with no request waiting" not in log
    assert not re.search(r"Z error ", log), log[-3000:]


def children(resp):
    return list(resp.xml())


def terminated(resp, condition=None):
    x = resp.xml()
    return x.get("type") == "terminate" and (condition is None or x.get("condition") == condition)


# -- session creation --------------------------------------------------------------------------

def test_session_creation_attributes(make_server):
    srv = make_server(users={"alice": None}, config=CONFIG)
    b = Bosh(srv)
    r = b.create(wait=9999, hold=5, ack=1)
    assert r.headers["content-type"] == "text/xml; charset=utf-8"
    x = r.xml()
    assert x.tag == f"{{{NS_BOSH}}}body"
    assert re.fullmatch(r"[a-z0-9]{32}", x.get("sid"))
    assert x.get("wait") == "30"          # capped at http.bosh_max_wait
    assert x.get("hold") == "1"           # capped at http.bosh_max_hold
    assert x.get("requests") == "2"
    assert x.get("inactivity") == "3"
    assert x.get("maxpause") == "10"
    assert x.get("polling") is not None
    assert x.get("ver") == "1.6"          # the lower of the client's and ours
    assert x.get("from") == DOMAIN
    assert x.get("ack") == str(b.rid - 1)  # the client asked for acks
    assert x.get("{urn:xmpp:xbosh}version") == "1.0"
    assert x.get("authid")
    assert "xmlns:stream='http://etherx.jabber.org/streams'" in r.text
    feats = r.text if "features" in r.text else b.until("features")
    assert "<mechanisms" in feats and "PLAIN" in feats
    # another session: another unguessable sid
    b2 = Bosh(srv)
    b2.create()
    assert b2.sid != b.sid
    b.close()
    b2.close()


def test_host_unknown_and_bad_requests(make_server):
    srv = make_server(config=CONFIG)
    c = HttpConn(srv.http_port)
    r = c.request("POST", f"<body rid='10' to='example.org' ver='1.6' wait='10' hold='1' "
                          f"{BOSH_NS_ATTR}/>")
    assert r.status == 200 and terminated(r, "host-unknown"), r
    r = c.request("POST", f"<body rid='10' to='{DOMAIN}' wait='10' hold='1' "
                          "xmlns='jabber:client'/>")
    assert r.status == 400 and terminated(r, "bad-request"), r
    r = c.request("POST", f"<body rid='10' to='{DOMAIN}' {BOSH_NS_ATTR}><unclosed></body>")
    assert r.status == 400, r
    r = c.request("POST", f"<body rid='x' to='{DOMAIN}' {BOSH_NS_ATTR}/>")
    assert r.status == 400, r
    r = c.request("GET", b"")
    assert r.status == 405, r
    c.close()


def test_oversize_body(make_server):
    srv = make_server(config=CONFIG)
    c = HttpConn(srv.http_port)
    big = "<message to='bob@localhost' xmlns='jabber:client'><body>" + "x" * 9000 + \
          "</body></message>"
    try:
        r = c.request("POST", f"<body rid='10' sid='nosuch' {BOSH_NS_ATTR}>{big}</body>")
        assert r.status == 413, r
    except (ConnectionError, BrokenPipeError, ConnectionResetError):
        pytest.fail("the server closed without answering 413")
    c.close()


def test_cors_preflight(make_server):
    srv = make_server(config=CONFIG)
    c = HttpConn(srv.http_port)
    r = c.request("OPTIONS", b"", headers={
        "Origin": "https://chat.example.com", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type"})
    assert 200 <= r.status < 300, r
    assert r.headers.get("access-control-allow-origin") in ("*", "https://chat.example.com")
    assert "POST" in r.headers.get("access-control-allow-methods", "")
    r = c.request("POST", f"<body rid='77' to='{DOMAIN}' ver='1.6' wait='5' hold='1' "
                          f"{BOSH_NS_ATTR}/>", headers={"Origin": "https://chat.example.com"})
    assert r.status == 200 and r.attr("sid"), r
    assert r.headers.get("access-control-allow-origin") in ("*", "https://chat.example.com")
    c.close()


# -- a whole session with a TCP user -----------------------------------------------------------

def test_login_messages_presence_with_tcp_user(make_server):
    srv = make_server(users={"alice": None, "bob": None}, config=CONFIG)
    b = Bosh(srv)
    b.login("alice", srv.users["alice"])

    async def scenario():
        bob = await slix_login(srv, "bob", resource="tcp")
        presences = asyncio.Queue()
        bob.add_event_handler("presence_available", presences.put_nowait)
        loop = asyncio.get_running_loop()
        # alice (BOSH) -> bob (TCP): the request stays held, as a client's long poll does
        poll = b.send("<presence to='bob@localhost/tcp' xmlns='jabber:client'/>"
                      "<message to='bob@localhost/tcp' type='chat' id='m1' xmlns='jabber:client'>"
                      "<body>hello from BOSH</body></message>")
        m = await next_message(bob, what="alice's BOSH message")
        assert m["body"] == "hello from BOSH"
        assert str(m["from"]) == b.jid
        p = await asyncio.wait_for(presences.get(), 10)
        assert str(p["from"]) == b.jid
        # bob -> alice: the held request delivers it as soon as it is routed
        t0 = time.monotonic()
        bob.send_presence(pto=b.jid)
        bob.send_message(mto=b.jid, mbody="hello from TCP", mtype="chat")
        got = ""
        deadline = time.monotonic() + 15
        while "hello from TCP" not in got and time.monotonic() < deadline:
            r = await loop.run_in_executor(None, lambda: b.read(poll, 20))
            assert r.status == 200 and not terminated(r), r
            got += r.text
            if "hello from TCP" not in got:
                poll = b.send()
        assert "hello from TCP" in got, got
        assert time.monotonic() - t0 < 10  # not the 20 s wait
        assert "<presence" in got and "from='bob@localhost/tcp'" in got
        await slix_close(bob)

    run(scenario())
    b.close()
    assert_clean(srv)


def test_retransmission_and_bad_rid(make_server):
    srv = make_server(users={"alice": None}, config=CONFIG)
    b = Bosh(srv)
    b.login("alice", srv.users["alice"])
    rid = b.rid
    ping = ("<iq type='get' id='p1' to='localhost' xmlns='jabber:client'>"
            "<ping xmlns='urn:xmpp:ping'/></iq>")
    # nothing else is held: the request waits for the ping's result and carries it
    first = b.post(ping)
    assert first.status == 200 and "id='p1'" in first.text and "type='result'" in first.text, \
        first
    # the same request again (as after a broken connection): the same answer, byte for byte,
    # and the ping is not processed twice
    r2 = b.post(ping, rid=rid)
    assert r2.status == 200 and r2.raw == first.raw, (first, r2)
    assert srv.log().count("rid %d again, answer resent" % rid) == 1
    # a request held when its connection dropped: the retry on a new connection gets the
    # answer
    lost = b.send()
    lost_rid = b.rid - 1
    time.sleep(0.3)
    lost.close()
    b.free = [c for c in b.free if c is not lost]
    retry = b.send(rid=lost_rid)
    time.sleep(0.3)
    r3 = b.post(ping.replace("p1", "p2"))  # hold is 1: the retried request is answered now
    r4 = b.read(retry)
    assert r4.status == 200 and not terminated(r4), r4
    text = r3.text + r4.text
    if "id='p2'" not in text:
        text += b.post().text
    assert "id='p2'" in text, text
    # a rid far beyond the window ends the session with item-not-found
    r = b.post(rid=b.rid + 50)
    assert r.status == 200 and terminated(r, "item-not-found"), r
    # and the session is gone
    r = b.post()
    assert r.status == 404 and terminated(r, "item-not-found"), r
    b.close()


def test_unknown_sid_and_inactivity(make_server):
    srv = make_server(users={"alice": None}, config=CONFIG)
    c = HttpConn(srv.http_port)
    r = c.request("POST", f"<body rid='5' sid='nosuchsession' {BOSH_NS_ATTR}/>")
    assert r.status == 404 and terminated(r, "item-not-found"), r
    c.close()
    b = Bosh(srv)
    r = b.create(wait=2)
    if "features" not in r.text:
        b.until("features")
    # nothing held, no request for longer than inactivity (3 s): the session is ended
    time.sleep(5)
    r = b.post()
    assert r.status == 404 and terminated(r, "item-not-found"), r
    assert re.search(r"bosh [a-z0-9]{32}: no request for 3 s", srv.log())
    b.close()


def test_legacy_client_gets_http_errors(make_server):
    srv = make_server(users={"alice": None}, config=CONFIG)
    b = Bosh(srv)
    b.create(ver=None, wait=2)
    r = b.post(rid=b.rid + 50)
    assert r.status == 404, r
    b.close()


def test_overactivity(make_server):
    srv = make_server(users={"alice": None}, config=CONFIG)
    b = Bosh(srv)
    r = b.create(wait=10)
    if "features" not in r.text:
        b.until("features")
    base = b.rid
    held = b.send(rid=base)                # held: nothing to say
    time.sleep(0.3)
    early = b.send(rid=base + 2)           # after a gap: kept
    time.sleep(0.3)
    third = b.send("<presence xmlns='jabber:client'/>", rid=base + 1)  # a third at once
    r = b.read(third)
    assert r.status == 200 and terminated(r, "policy-violation"), r
    for h in (held, early):
        o = b.read(h)
        assert terminated(o), o
    b.rid = base + 3
    r = b.post()
    assert r.status == 404, r
    b.close()


def test_pause(make_server):
    srv = make_server(users={"alice": None}, config=CONFIG)
    b = Bosh(srv)
    r = b.create(wait=2)
    if "features" not in r.text:
        b.until("features")
    held = b.send()
    time.sleep(0.3)
    t0 = time.monotonic()
    r = b.post(pause=6)
    # the pause request and the held one are answered at once, the pause one empty
    assert r.status == 200 and not terminated(r) and len(children(r)) == 0, r
    o = b.read(held, 5)
    assert o.status == 200 and not terminated(o), o
    assert time.monotonic() - t0 < 5
    time.sleep(4.5)  # longer than inactivity (3 s), shorter than the pause
    r = b.post()  # held for the session's wait (2 s), then empty
    assert r.status == 200 and not terminated(r), r
    # the pause is over with that request: normal inactivity again
    time.sleep(5)
    r = b.post()
    assert r.status == 404, r
    b.close()


def test_terminate_sends_payload_then_closes(make_server):
    srv = make_server(users={"alice": None, "bob": None}, config=CONFIG)
    b = Bosh(srv)
    b.login("alice", srv.users["alice"])

    async def scenario():
        bob = await slix_login(srv, "bob", resource="tcp")
        gone = asyncio.Queue()
        bob.add_event_handler("presence_unavailable", gone.put_nowait)
        loop = asyncio.get_running_loop()
        r = await loop.run_in_executor(None, lambda: b.post(
            "<message to='bob@localhost/tcp' type='chat' xmlns='jabber:client'><body>bye</body>"
            "</message><presence type='unavailable' to='bob@localhost/tcp' "
            "xmlns='jabber:client'/>", type="terminate"))
        assert r.status == 200 and terminated(r), r
        m = await next_message(bob, what="the message sent with the terminate")
        assert m["body"] == "bye"
        p = await asyncio.wait_for(gone.get(), 10)
        assert str(p["from"]) == b.jid
        await slix_close(bob)

    run(scenario())
    r = b.post()
    assert r.status == 404, r
    b.close()
    assert_clean(srv)


def test_restart_before_auth_is_refused(make_server):
    srv = make_server(users={"alice": None}, config=CONFIG)
    b = Bosh(srv)
    r = b.create()
    if "features" not in r.text:
        b.until("features")
    r = b.post(to=DOMAIN, xmpp__restart="true")
    assert terminated(r, "bad-request"), r
    b.close()


def test_https_session_is_secure(make_server):
    # no consider_secure: only HTTPS counts as TLS, and c2s.tls_required is on by default
    srv = make_server(users={"alice": None},
                      config={"http": {"bosh_max_inactivity": 3, "bosh_max_wait": 20}})
    b = Bosh(srv, tls=True)
    assert b.login("alice", srv.users["alice"]) == f"alice@{DOMAIN}/bosh"
    r = b.post(type="terminate")
    assert terminated(r), r
    b.close()


def test_session_end_by_server_shutdown_is_clean(make_server):
    """A held request and a session alive at SIGTERM: the server exits 0, no leak report."""
    srv = make_server(users={"alice": None}, config=CONFIG)
    b = Bosh(srv)
    b.login("alice", srv.users["alice"])
    held = b.send()
    time.sleep(0.3)
    assert srv.stop() == 0
    try:
        r = held.read(5)
        # XEP-0206 §9: the stream error inside a terminate body with remote-stream-error
        assert terminated(r, "remote-stream-error") and "<system-shutdown" in r.text, r
    except (ConnectionError, socket.timeout, OSError):
        pass  # closed before the answer went out: also a clean end
    b.close()


# -- Strophe.js --------------------------------------------------------------------------------

def node_client_available():
    return shutil.which("node") and os.path.exists(os.path.join(NODE_DIR, "xmpp_client.js")) \
        and os.path.isdir(os.path.join(NODE_DIR, "node_modules", "strophe.js"))


@pytest.mark.skipif(not node_client_available(),
                    reason="tests/node/xmpp_client.js, its node_modules or node is missing")
def test_strophe_over_bosh(make_server):
    """Strophe.js (a real browser-grade client library) over BOSH: login with SASL and the
    stream restart, bind, messages both ways with a slixmpp user over TCP, then a clean end."""
    srv = make_server(users={"alice": None, "bob": None}, config=CONFIG)

    async def scenario():
        bob = await slix_login(srv, "bob", resource="tcp")
        url = f"http://127.0.0.1:{srv.http_port}/http-bind"
        p = await asyncio.create_subprocess_exec(
            "node", os.path.join(NODE_DIR, "xmpp_client.js"), "--url", url,
            "--jid", f"alice@{DOMAIN}/strophe", "--password", srv.users["alice"],
            "--timeout", "20", cwd=NODE_DIR, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        seen = []

        async def cmd(obj):
            p.stdin.write((json.dumps(obj) + "\n").encode())
            await p.stdin.drain()

        async def event(pred, what, timeout=20):
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                try:
                    line = await asyncio.wait_for(p.stdout.readline(),
                                                  deadline - time.monotonic())
                except asyncio.TimeoutError:
                    break
                if not line:
                    err = await p.stderr.read()
                    raise AssertionError(f"xmpp_client.js exited; events {seen}; "
                                         f"stderr: {err.decode()[-2000:]}")
                ev = json.loads(line)
                seen.append(ev)
                if pred(ev):
                    return ev
            raise AssertionError(f"no {what} from Strophe within {timeout}s; events {seen}")

        try:
            ev = await event(lambda e: e.get("event") == "connected", "connected event")
            assert ev["jid"] == f"alice@{DOMAIN}/strophe"
            await cmd({"cmd": "message", "to": f"bob@{DOMAIN}/tcp", "body": "hi from Strophe"})
            m = await next_message(bob, what="Strophe's message")
            assert m["body"] == "hi from Strophe"
            assert str(m["from"]) == f"alice@{DOMAIN}/strophe"
            bob.send_message(mto=f"alice@{DOMAIN}/strophe", mbody="hi Strophe", mtype="chat")
            ev = await event(lambda e: e.get("event") == "message" and e.get("body"),
                             "message event")
            assert ev["body"] == "hi Strophe" and ev["from"] == f"bob@{DOMAIN}/tcp"
            await cmd({"cmd": "disconnect"})
            await event(lambda e: e.get("event") == "disconnected", "disconnected event")
            assert await asyncio.wait_for(p.wait(), 10) == 0
        finally:
            if p.returncode is None:
                p.kill()
                await p.wait()
        await slix_close(bob)

    run(scenario())
    assert_clean(srv)
