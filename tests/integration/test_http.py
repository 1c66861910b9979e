"""The HTTP side of the multiplexor on http.port and http.tls_port: host-meta (XEP-0156) in
both forms, CORS, the web client's static files (and paths that try to escape their folder),
the errors HTTP names (404, 405, 413, 431), keep-alive with pipelining, and the deadline that
drops a client dripping its headers one byte at a time.

Requests are written by hand on raw sockets, so each test says exactly which bytes were sent.
"""
import json
import os
import socket
import time

import pytest

from conftest import insecure_context


class HTTP:
    """One connection; responses parsed with their Content-Length."""

    def __init__(self, server, tls=False, timeout=10):
        port = server.https_port if tls else server.http_port
        self.sock = socket.create_connection((server.host, port), timeout=timeout)
        if tls:
            self.sock = insecure_context().wrap_socket(self.sock, server_hostname="localhost")
        self.buf = b""
        self.eof = False

    def send(self, data):
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def _recv(self):
        try:
            data = self.sock.recv(1 << 20)
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            raise EOFError
        self.buf += data

    def response(self, head=False):
        """(status, {lower-case name: value}, body) of the next response."""
        while b"\r\n\r\n" not in self.buf:
            self._recv()
        raw, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        assert lines[0].startswith("HTTP/1.1 "), lines[0]
        headers = {}
        for line in lines[1:]:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
        n = 0 if head or status in (204, 304) or status < 200 else int(headers["content-length"])
        while len(self.buf) < n:
            self._recv()
        body, self.buf = self.buf[:n], self.buf[n:]
        return status, headers, body

    def closed(self, timeout=10):
        """True when the server closes the connection within timeout (nothing more sent)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                self._recv()
        except EOFError:
            return True
        except socket.timeout:
            return False

    def close(self):
        self.sock.close()


def get(server, path, headers="", tls=False, method="GET"):
    c = HTTP(server, tls=tls)
    c.send(f"{method} {path} HTTP/1.1\r\nHost: chat.example.org\r\n{headers}\r\n")
    r = c.response(head=method == "HEAD")
    c.close()
    return r


@pytest.fixture
def web_server(make_server, tmp_path):
    root = tmp_path / "web"
    chat = root / "chat"
    (chat / "dist").mkdir(parents=True)
    (chat / "index.html").write_text("<!doctype html><title>Magpie chat</title>")
    (chat / "dist" / "app.js").write_text("console.log('magpie');")
    (chat / "style.css").write_text("body{}")
    (chat / "logo.svg").write_text("<svg/>")
    (chat / "font.woff2").write_bytes(b"wOF2\0\0")
    # Bigger than the output buffer (c2s.max_output_buffer, 1 MiB by default): it has to be
    # sent piece by piece as the socket drains.
    (chat / "dist" / "big.min.js").write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    (root / "secret.txt").write_text("TOP SECRET")
    srv = make_server(config={"http": {"web_root": str(root), "keepalive_timeout": 3}})
    srv.web_root = root
    return srv


# -- host-meta -------------------------------------------------------------------------------

def test_host_meta_xrd(make_server):
    srv = make_server()
    status, h, body = get(srv, "/.well-known/host-meta")
    assert status == 200
    assert h["content-type"].startswith("application/xrd+xml")
    text = body.decode()
    assert "<XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'>" in text
    assert ("<Link rel='urn:xmpp:alt-connections:xbosh' "
            "href='http://chat.example.org/http-bind'/>") in text
    assert ("<Link rel='urn:xmpp:alt-connections:websocket' "
            "href='ws://chat.example.org/xmpp-websocket'/>") in text
    # Over HTTPS the URLs say so.
    status, h, body = get(srv, "/.well-known/host-meta", tls=True)
    assert "href='https://chat.example.org/http-bind'" in body.decode()
    assert "href='wss://chat.example.org/xmpp-websocket'" in body.decode()


def test_host_meta_json_and_public_url(make_server):
    srv = make_server(config={"http": {"public_url": "https://im.example.com/"}})
    status, h, body = get(srv, "/.well-known/host-meta.json")
    assert status == 200 and h["content-type"] == "application/json"
    doc = json.loads(body)
    links = {link["rel"]: link["href"] for link in doc["links"]}
    assert links == {"urn:xmpp:alt-connections:xbosh": "https://im.example.com/http-bind",
                     "urn:xmpp:alt-connections:websocket": "wss://im.example.com/xmpp-websocket"}
    status, h, body = get(srv, "/.well-known/host-meta", method="HEAD")
    assert status == 200 and int(h["content-length"]) > 100 and body == b""


def test_cors(make_server):
    srv = make_server(config={"http": {"cors_origins": ["https://app.example"]}})
    status, h, body = get(srv, "/.well-known/host-meta.json", method="OPTIONS",
                          headers="Origin: https://app.example\r\n"
                                  "Access-Control-Request-Method: GET\r\n")
    assert status == 204
    assert h["access-control-allow-origin"] == "https://app.example"
    assert "GET" in h["access-control-allow-methods"]
    assert "content-type" in h["access-control-allow-headers"].lower()
    assert int(h["access-control-max-age"]) > 0
    status, h, _ = get(srv, "/.well-known/host-meta.json",
                       headers="Origin: https://app.example\r\n")
    assert status == 200 and h["access-control-allow-origin"] == "https://app.example"
    status, h, _ = get(srv, "/.well-known/host-meta.json",
                       headers="Origin: https://other.example\r\n")
    assert status == 200 and "access-control-allow-origin" not in h


# -- static files ----------------------------------------------------------------------------

def test_static_files(web_server):
    srv = web_server
    status, h, body = get(srv, "/")
    assert status == 302 and h["location"] == "/chat/"
    status, h, body = get(srv, "/chat")
    assert status == 301 and h["location"] == "/chat/"
    status, h, body = get(srv, "/chat/")
    assert status == 200 and b"Magpie chat" in body
    assert h["content-type"] == "text/html; charset=utf-8"
    assert h["cache-control"] == "no-cache"
    for path, ctype in (("/chat/dist/app.js", "text/javascript; charset=utf-8"),
                        ("/chat/style.css", "text/css; charset=utf-8"),
                        ("/chat/logo.svg", "image/svg+xml"),
                        ("/chat/font.woff2", "font/woff2")):
        status, h, body = get(srv, path)
        assert status == 200 and h["content-type"] == ctype, (path, status, h)
        assert "max-age" in h["cache-control"]
    status, h, body = get(srv, "/chat/dist")
    assert status == 301 and h["location"] == "/chat/dist/"
    status, h, body = get(srv, "/chat/dist/app.js", method="HEAD")
    assert status == 200 and h["content-length"] == "22" and body == b""
    status, _, _ = get(srv, "/chat/missing.js")
    assert status == 404


def test_static_large_file(web_server):
    """3 MiB over plain HTTP and over TLS, twice on one connection, read slowly at first."""
    srv = web_server
    want = (srv.web_root / "chat" / "dist" / "big.min.js").read_bytes()
    for tls in (False, True):
        c = HTTP(srv, tls=tls, timeout=30)
        c.send("GET /chat/dist/big.min.js HTTP/1.1\r\nHost: x\r\n\r\n"
               "GET /chat/dist/big.min.js HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(1.0)  # the server must not give up on a client that reads late
        for _ in range(2):
            status, h, body = c.response()
            assert status == 200 and int(h["content-length"]) == len(want)
            assert body == want
        c.close()
    assert "output buffer over" not in srv.log()


@pytest.mark.parametrize("path", [
    "/chat/../secret.txt",
    "/chat/%2e%2e/secret.txt",
    "/chat/%2E%2E%2Fsecret.txt",
    "/chat/dist/..%2F..%2Fsecret.txt",
    "/chat/dist/%2e%2e/%2e%2e/secret.txt",
    "/chat/..%5csecret.txt",
    "/chat/index.html%00.js",
    "/chat//etc/passwd",
    "/chat/%2fetc%2fpasswd",
    "/chat/.%2e/secret.txt",
])
def test_static_path_escapes(web_server, path):
    status, h, body = get(web_server, path)
    assert status in (400, 404), (path, status)
    assert b"SECRET" not in body


# -- errors ----------------------------------------------------------------------------------

def test_errors(make_server):
    srv = make_server(config={"http": {"max_body_size": 2048, "max_header_size": 2048}})
    status, h, _ = get(srv, "/no/such/thing")
    assert status == 404 and h["connection"] == "keep-alive"
    status, h, _ = get(srv, "/.well-known/host-meta", method="DELETE")
    assert status == 405 and h["allow"] == "GET, HEAD, OPTIONS"
    status, h, _ = get(srv, "/xmpp-websocket", method="PUT", headers="Content-Length: 0\r\n")
    assert status == 405 and h["allow"] == "GET"

    c = HTTP(srv)
    c.send("POST /http-bind HTTP/1.1\r\nHost: x\r\nContent-Length: 2049\r\n\r\n")
    status, h, _ = c.response()
    assert status == 413 and h["connection"] == "close"
    assert c.closed()

    c = HTTP(srv)
    c.send("GET / HTTP/1.1\r\nHost: x\r\nX-Filler: " + "a" * 3000 + "\r\n\r\n")
    status, h, _ = c.response()
    assert status == 431
    assert c.closed()

    c = HTTP(srv)
    c.send("GET / HTTP/3.0\r\nHost: x\r\n\r\n")
    assert c.response()[0] == 505
    assert c.closed()

    c = HTTP(srv)
    c.send("POST /http-bind HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    assert c.response()[0] == 411
    assert c.closed()

    c = HTTP(srv)
    c.send("this is not http\r\n\r\n")
    assert c.response()[0] == 400
    assert c.closed()


def test_keepalive_pipelining(web_server):
    srv = web_server
    c = HTTP(srv)
    c.send("GET /chat/dist/app.js HTTP/1.1\r\nHost: x\r\n\r\n"
           "GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n"
           "HEAD /chat/ HTTP/1.1\r\nHost: x\r\n\r\n"
           "GET /.well-known/host-meta.json HTTP/1.1\r\nHost: x\r\n\r\n")
    status, h, body = c.response()
    assert status == 200 and body == b"console.log('magpie');"
    assert c.response()[0] == 404
    status, h, body = c.response(head=True)
    assert status == 200 and body == b""
    status, h, body = c.response()
    assert status == 200 and b"alt-connections" in body
    # The connection stays open for more, split over several writes.
    c.send("GET /chat/style.css HTT")
    time.sleep(0.2)
    c.send("P/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    status, h, body = c.response()
    assert status == 200 and body == b"body{}" and h["connection"] == "close"
    assert c.closed()


def test_idle_keepalive_closed(web_server):
    """http.keepalive_timeout is 3 s here."""
    c = HTTP(web_server)
    c.send("GET /chat/style.css HTTP/1.1\r\nHost: x\r\n\r\n")
    assert c.response()[0] == 200
    t0 = time.monotonic()
    assert c.closed(timeout=15)
    assert 2.0 <= time.monotonic() - t0 <= 10


def test_slow_loris(web_server):
    """A client that sends its headers a byte every half second never gets a whole request
    in before the deadline, which its dripping does not move."""
    c = HTTP(web_server)
    req = "GET /chat/ HTTP/1.1\r\nHost: x\r\nX-Slow: " + "a" * 100 + "\r\n\r\n"
    t0 = time.monotonic()
    sent = 0
    try:
        for ch in req:
            c.send(ch)
            sent += 1
            time.sleep(0.5)
            if time.monotonic() - t0 > 15:
                break
    except (BrokenPipeError, ConnectionResetError):
        pass
    assert c.closed(timeout=5)
    elapsed = time.monotonic() - t0
    assert sent < len(req), "the whole request went through"
    assert 2.0 <= elapsed <= 10, elapsed
    assert b"HTTP/1.1 200" not in c.buf
