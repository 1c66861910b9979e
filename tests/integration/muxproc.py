"""magpie-mux processes and link-only servers for the tests of the link over TCP.

A MuxProcess looks enough like conftest's Server (host, port, tls_port, domain, users, jid)
for slix_client/slix_login and RawClient to connect through it."""
import hashlib
import hmac
import os
import shutil
import signal
import socket
import struct
import tempfile
import time

from conftest import DOMAIN, _BUILD, Process, _yaml_scalar, accepts, free_ports

MAGPIE_MUX = os.environ.get("MAGPIE_MUX") or os.path.join(_BUILD, "magpie-mux")


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def link_server(make_server, users, secret, extra=None):
    """A magpied with the embedded mux off, serving only through its link port."""
    link_port, = free_ports(1)
    cfg = {"core": {"embedded_mux": False},
           "link": {"port": link_port, "secret": secret}}
    for k, v in (extra or {}).items():
        cfg.setdefault(k, {}).update(v)
    srv = make_server(users=users, config=cfg, start=False)
    srv.link_port = link_port
    srv.port = srv.tls_port = 0  # Server.start waits for no client port
    start_link_server(srv)
    return srv


def start_link_server(srv):
    srv.start()
    wait_for(lambda: accepts(srv.link_port), 30, f"link port {srv.link_port}")
    return srv


def kill9(srv):
    srv.proc.send_signal(signal.SIGKILL)
    srv.proc.wait(timeout=10)
    if srv.logf:
        srv.logf.close()
        srv.logf = None


class MuxProcess(Process):
    name = "magpie-mux"

    def __init__(self, servers, secret, users, policy="ordered", tls=False, tls_ca=None,
                 extra=None):
        self.dir = tempfile.mkdtemp(prefix="mpmux-")
        self.host = "127.0.0.1"
        self.domain = DOMAIN
        self.users = users
        self.port, self.tls_port = free_ports(2)
        self.config_path = os.path.join(self.dir, "mux.yml")
        self.log_path = os.path.join(self.dir, "magpie-mux.log")
        self.proc = None
        self.logf = None
        mux = {"servers": [f"127.0.0.1:{s.link_port}" for s in servers], "secret": secret,
               "policy": policy, "reconnect_ms": 100, "reconnect_max_ms": 400}
        if tls:
            mux["tls"] = True
            mux["tls_ca"] = tls_ca
        self.config = {
            "hosts": [DOMAIN],
            "data_dir": os.path.join(self.dir, "var"),
            "log": {"level": "debug"},
            "c2s": {"address": "127.0.0.1", "port": self.port, "direct_tls_port": self.tls_port},
            "http": {"port": 0, "tls_port": 0},
            "mux": mux,
        }
        for k, v in (extra or {}).items():
            self.config.setdefault(k, {}).update(v)
        with open(self.config_path, "w") as f:
            for k, v in self.config.items():
                f.write(f"{k}: {_yaml_scalar(v)}\n")

    def jid(self, user):
        return f"{user}@{self.domain}"

    def start(self, timeout=30):
        return self._spawn([MAGPIE_MUX, "--config", self.config_path],
                           lambda: accepts(self.port), f"listen on {self.port}", timeout)

    def wait_log(self, text, timeout=20, count=1):
        wait_for(lambda: self.log().count(text) >= count, timeout,
                 f"{text!r} in the magpie-mux log:\n{self.log()[-3000:]}")

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def check_log(self):
        text = self.log()
        self.check_sanitizers(text)
        for pw in self.users.values():
            assert pw not in text, "a password appears in the magpie-mux log"
        secret = self.config["mux"]["secret"]
        assert secret not in text, "the link secret appears in the magpie-mux log"

    def cleanup(self, killed=False):
        rc = self.stop()
        self.check_log()
        if not killed:
            assert rc == 0, f"magpie-mux exited {rc} on SIGTERM:\n{self.log()[-3000:]}"
        shutil.rmtree(self.dir, ignore_errors=True)


# -- a fake multiplexor speaking the link protocol by hand -----------------------------------

def _mac(secret, label, a, b, n):
    return hmac.new(secret.encode(), label + a + b + struct.pack("<I", n), hashlib.sha256).digest()


def fake_mux(port, secret, threads=1):
    """Connect and authenticate; returns the socket, ready for frames."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    hello = recv_exact(s, 44)
    assert hello[:4] == b"MPLH", hello
    snonce = hello[12:44]
    cnonce = os.urandom(32)
    s.sendall(b"MPLA" + struct.pack("<I", threads) + cnonce
              + _mac(secret, b"magpie-link mux", snonce, cnonce, threads))
    ok = recv_exact(s, 40)
    assert ok[:4] == b"MPLK", ok
    assert ok[8:] == _mac(secret, b"magpie-link server", cnonce, snonce, 0), "bad server MAC"
    return s


def recv_exact(s, n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise ConnectionError(f"closed after {len(data)} of {n} bytes")
        data += chunk
    return data


def frame(kind, conn, payload=b"", to=b"", typ=b"", iq_id=b"", aux=b"", el_kind=0, flags=0,
          size=None, pad=0):
    body = to + typ + iq_id + aux + payload
    n = 32 + len(body)
    n8 = (n + 7) & ~7
    head = struct.pack("<IBBHQHHHHII", size if size is not None else n8, kind, el_kind, flags,
                       conn, len(to), len(typ), len(iq_id), len(aux), len(payload), pad)
    return head + body + b"\0" * (n8 - n)


def closed_within(s, timeout):
    """True when the peer closes the socket within timeout seconds."""
    s.settimeout(timeout)
    try:
        while True:
            if not s.recv(65536):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False
