"""Shared pieces of the end-to-end tests.

Every test gets its own magpied: a temporary data directory, free ports, users created with
`magpiectl user add` before the start (direct storage mode). On teardown the server must stop
with exit status 0 on SIGTERM and its log must hold no sanitizer report and no password.
"""
import asyncio
import os
import re
import secrets
import select
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time

import pytest

_BUILD = os.environ.get("MAGPIE_BUILD", os.path.join(os.path.dirname(__file__), "../../build-asan"))
MAGPIED = os.environ.get("MAGPIED") or os.path.join(_BUILD, "magpied")
MAGPIECTL = os.environ.get("MAGPIECTL") or os.path.join(_BUILD, "magpiectl")
SASL_CLIENT = os.environ.get("SASL_CLIENT") or os.path.join(_BUILD, "tests/integration/sasl_client")
STROPHE_ECHO = os.environ.get("STROPHE_ECHO") or os.path.join(
    _BUILD, "tests/integration/strophe_echo")

DOMAIN = "localhost"
NS_STREAMS = "urn:ietf:params:xml:ns:xmpp-streams"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"

SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "runtime error:")


def stream_header(to=DOMAIN, ns="jabber:client", stream_ns="http://etherx.jabber.org/streams",
                  decl=True):
    head = "<?xml version='1.0'?>" if decl else ""
    to_attr = f" to='{to}'" if to is not None else ""
    return (f"{head}<stream:stream xmlns='{ns}' xmlns:stream='{stream_ns}'{to_attr} "
            "version='1.0'>")


def tool_env():
    """Environment for the sanitized C helpers: they exit through error paths on purpose, so
    leak checking would only turn expected failures into noise."""
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = "detect_leaks=0"
    return env


def free_ports(n):
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _yaml_scalar(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_yaml_scalar(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_yaml_scalar(x)}" for k, x in v.items()) + "}"
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _merge(base, extra):
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _merge(base[k], v)
        else:
            base[k] = v
    return base


def vm_rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


def accepts(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


class Process:
    """One of our daemons (magpied, magpie-mux) run by a test: started in self.dir with its
    output in self.log_path, stopped with SIGTERM, its log checked for sanitizer reports."""
    name = "process"

    def _spawn(self, argv, ready, waiting_for, timeout):
        self.logf = open(self.log_path, "ab")
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.logf,
                                     stderr=self.logf, cwd=self.dir, env=env)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"{self.name} exited with {self.proc.returncode} during start-up:\n"
                    + self.log()[-4000:])
            if ready():
                return self
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} did not {waiting_for} within {timeout}s:\n"
                                     + self.log()[-4000:])
            time.sleep(0.05)

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=30):
        """SIGTERM and wait; returns the exit status."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"{self.name} did not exit within {timeout}s of SIGTERM:\n"
                                     + self.log()[-4000:])
        if self.logf:
            self.logf.close()
            self.logf = None
        return self.proc.returncode

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def check_sanitizers(self, text):
        for marker in SANITIZER_MARKERS:
            if marker in text:
                i = text.index(marker)
                raise AssertionError(f"sanitizer report ({marker}) in {self.name} log:\n"
                                     + text[max(0, i - 2000):i + 6000])


class Server(Process):
    """One magpied in its own directory. Users: {localpart: password}."""
    name = "magpied"

    def __init__(self, tmpdir, users=None, config=None, hosts=(DOMAIN,)):
        self.dir = tmpdir
        self.data_dir = os.path.join(tmpdir, "var")
        os.makedirs(self.data_dir, exist_ok=True)
        self.host = "127.0.0.1"
        self.domain = hosts[0]
        self.port, self.tls_port, self.http_port, self.https_port = free_ports(4)
        self.config_path = os.path.join(tmpdir, "magpie.yml")
        self.log_path = os.path.join(tmpdir, "magpied.log")
        self.admin_socket = os.path.join(self.data_dir, "magpied.sock")
        self.users = {}
        self.secrets = set()
        self.proc = None
        self.logf = None
        cfg = {
            "hosts": list(hosts),
            "data_dir": self.data_dir,
            "log": {"level": "debug"},
            "c2s": {"address": "127.0.0.1", "port": self.port,
                    "direct_tls_port": self.tls_port},
            "http": {"port": self.http_port, "tls_port": self.https_port},
            "admin": {"socket": self.admin_socket},
        }
        self.config = _merge(cfg, config or {})
        self.write_config()
        for user, pw in (users or {}).items():
            self.add_user(user, pw)

    def write_config(self):
        with open(self.config_path, "w") as f:
            f.write("# written by tests/integration/conftest.py\n")
            for k, v in self.config.items():
                f.write(f"{k}: {_yaml_scalar(v)}\n")

    def jid(self, user):
        return f"{user}@{self.domain}"

    # -- magpiectl ---------------------------------------------------------------------------
    def ctl(self, *args, check=True, timeout=60):
        p = subprocess.run([MAGPIECTL, "--config", self.config_path, *args],
                           capture_output=True, text=True, timeout=timeout)
        if check:
            assert p.returncode == 0, (
                f"magpiectl {' '.join(args)} exited {p.returncode}\n"
                f"stdout: {p.stdout}\nstderr: {p.stderr}")
        return p

    def add_user(self, user, password=None):
        """Create user@domain; direct storage before start, admin socket while running."""
        if password is None:
            password = "pw-" + secrets.token_urlsafe(12)
        self.ctl("user", "add", self.jid(user) if "@" not in user else user, password)
        self.users[user.split("@")[0]] = password
        self.secrets.add(password)
        return password

    def add_users_parallel(self, names, jobs=4):
        """Many accounts before start: magpiectl processes run a few at a time."""
        pending = list(names)
        running = []
        while pending or running:
            while pending and len(running) < jobs:
                name = pending.pop()
                pw = "pw-" + secrets.token_urlsafe(12)
                p = subprocess.Popen([MAGPIECTL, "--config", self.config_path, "user", "add",
                                      self.jid(name), pw],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                running.append((name, pw, p))
            name, pw, p = running.pop(0)
            out, err = p.communicate(timeout=60)
            assert p.returncode == 0, f"magpiectl user add {name} failed: {out} {err}"
            self.users[name] = pw
            self.secrets.add(pw)

    # -- process -----------------------------------------------------------------------------
    def start(self, timeout=30):
        ports = [p for p in (self.port, self.tls_port) if p]
        return self._spawn([MAGPIED, "--config", self.config_path],
                           lambda: all(self._accepts(p) for p in ports)
                           and os.path.exists(self.admin_socket),
                           f"accept on {ports} / create {self.admin_socket}", timeout)

    def _accepts(self, port):
        return accepts(port, self.host)

    def rss_kb(self):
        return vm_rss_kb(self.proc.pid)

    def check_log(self):
        text = self.log()
        self.check_sanitizers(text)
        for pw in self.secrets:
            assert pw not in text, f"a user's password ({pw}) appears in the magpied log"


@pytest.fixture
def make_server():
    """Factory: make_server(users={...}, config={...}, start=True) -> Server."""
    servers = []
    dirs = []

    def factory(users=None, config=None, hosts=(DOMAIN,), start=True):
        d = tempfile.mkdtemp(prefix="mpit-")
        dirs.append(d)
        srv = Server(d, users=users, config=config, hosts=hosts)
        servers.append(srv)
        if start:
            srv.start()
        return srv

    yield factory

    problems = []
    for srv in servers:
        try:
            rc = srv.stop()
            if rc != 0:
                problems.append(f"magpied exited with status {rc} after SIGTERM (want 0):\n"
                                + srv.log()[-4000:])
            srv.check_log()
        except AssertionError as e:
            problems.append(str(e))
    if problems:
        for d in dirs:
            print(f"kept {d} for inspection")
        raise AssertionError("\n\n".join(problems))
    for d in dirs:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def server(make_server):
    """A running server with users alice, bob and carol."""
    return make_server(users={"alice": None, "bob": None, "carol": None})


# -- raw sockets -----------------------------------------------------------------------------

def insecure_context(alpn=None, max_version=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(alpn)
    if max_version:
        ctx.maximum_version = max_version
    return ctx


class Closed(Exception):
    pass


class RawClient:
    """Byte-level XMPP client: what is sent is exactly what the test wrote."""

    def __init__(self, port, host="127.0.0.1", direct_tls=False, alpn=None, timeout=10,
                 domain=DOMAIN):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.domain = domain
        self.buf = b""
        self.eof = False
        self.transcript = []
        if direct_tls:
            self.sock = insecure_context(alpn).wrap_socket(self.sock, server_hostname=domain)

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.transcript.append(("C", data[:2000]))
        self.sock.sendall(data)

    def flood(self, data, chunk=16384, limit=None):
        """Send data in chunks (or, with limit, data repeated up to limit bytes), collecting what the server answers in between, and stop when it
        closes the stream or the connection: a server may rightly hang up on us mid-send, and
        its stream error must not be lost to the reset that follows. Returns bytes sent."""
        if isinstance(data, str):
            data = data.encode()
        sent = 0
        total = len(data) if limit is None else limit
        try:
            while sent < total:
                if limit is None:
                    piece = data[sent:sent + chunk]
                else:  # data is a unit repeated until limit bytes are out
                    piece = data[:min(len(data), total - sent)]
                self.sock.settimeout(10)
                self.sock.sendall(piece)
                sent += len(piece)
                self._drain()
                if self.eof or "</stream:stream>" in self.text():
                    break
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, socket.timeout):
            pass
        return sent

    def _drain(self):
        while not self.eof:
            pending = getattr(self.sock, "pending", lambda: 0)()
            if not pending and not select.select([self.sock], [], [], 0)[0]:
                return
            try:
                if not self._recv(0.5):
                    return
            except socket.timeout:
                return

    def _recv(self, timeout):
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except (ConnectionResetError, ssl.SSLEOFError, BrokenPipeError):
            data = b""
        except ssl.SSLError as e:
            if "EOF" in str(e) or "closed" in str(e).lower():
                data = b""
            else:
                raise
        if not data:
            self.eof = True
            return b""
        self.transcript.append(("S", data[:2000]))
        self.buf += data
        return data

    def text(self):
        return self.buf.decode("utf-8", "replace")

    def read_until(self, pattern, timeout=10):
        """Read until regex pattern matches; consume and return the text up to the match end."""
        rx = re.compile(pattern, re.S) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        while True:
            text = self.text()
            m = rx.search(text)
            if m:
                consumed = text[:m.end()]
                self.buf = text[m.end():].encode()
                return consumed
            left = deadline - time.monotonic()
            if self.eof or left <= 0:
                why = "connection closed" if self.eof else f"timeout after {timeout}s"
                raise AssertionError(f"waited for {rx.pattern!r}: {why}; server sent: {text!r}")
            try:
                self._recv(left)
            except socket.timeout:
                pass

    def read_until_closed(self, timeout=10):
        """Read until EOF; return everything unconsumed. Fails if the server keeps it open."""
        deadline = time.monotonic() + timeout
        while not self.eof:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"server did not close the connection within {timeout}s; "
                                     f"it sent: {self.text()!r}")
            try:
                self._recv(left)
            except socket.timeout:
                pass
        text = self.text()
        self.buf = b""
        return text

    def nothing_for(self, seconds):
        """Return what arrived within `seconds` (expected to be nothing)."""
        deadline = time.monotonic() + seconds
        while not self.eof:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                self._recv(left)
            except socket.timeout:
                break
        return self.text()

    def open_stream(self, to=None):
        self.send(stream_header(to=to or self.domain))
        return self.read_until(r"<stream:features\s*/>|</stream:features>")

    def starttls(self, max_version=None):
        self.send(f"<starttls xmlns='{NS_TLS}'/>")
        self.read_until(r"<proceed[^>]*/>|<proceed[^>]*>\s*</proceed>")
        assert self.buf == b"", f"server sent bytes after <proceed/>: {self.buf!r}"
        self.sock = insecure_context(max_version=max_version).wrap_socket(
            self.sock, server_hostname=self.domain)

    def auth_plain(self, user, password, authzid=""):
        import base64
        payload = base64.b64encode(f"{authzid}\0{user}\0{password}".encode()).decode()
        self.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{payload}</auth>")
        return self.read_until(r"<success[^>]*/>|</success>|</failure>|<failure[^>]*/>")

    def bind(self, resource=None, iq_id="bind1"):
        res = f"<resource>{resource}</resource>" if resource else ""
        self.send(f"<iq type='set' id='{iq_id}'><bind xmlns='{NS_BIND}'>{res}</bind></iq>")
        reply = self.read_until(rf"<iq[^>]*id=['\"]{iq_id}['\"].*?(</iq>|/>)")
        m = re.search(r"<jid>([^<]+)</jid>", reply)
        return m.group(1) if m else None, reply

    def login(self, user, password, resource=None):
        """STARTTLS + PLAIN + bind; returns the bound full JID."""
        self.open_stream()
        self.starttls()
        self.open_stream()
        res = self.auth_plain(user, password)
        assert "<success" in res, f"login of {user} failed: {res!r}"
        self.features = self.open_stream()
        jid, reply = self.bind(resource)
        assert jid, f"bind failed for {user}: {reply!r}"
        self.jid = jid
        return jid

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def stream_error_re(condition):
    return (rf"<(stream:)?error[^>]*>\s*<{condition}\s+xmlns=['\"]{NS_STREAMS}['\"]")


def expect_stream_error(client, condition, timeout=10):
    """The server must send <stream:error><condition/></stream:error>, close the stream and the
    connection. Returns everything it sent."""
    text = client.read_until_closed(timeout=timeout)
    assert re.search(stream_error_re(condition), text), (
        f"expected stream error <{condition}/>; server sent: {text!r}")
    assert "</stream:stream>" in text, f"stream error not followed by </stream:stream>: {text!r}"
    return text


# -- slixmpp ---------------------------------------------------------------------------------

def slix_client(server, user, mech="PLAIN", resource=None, password=None, use_ssl=False,
                plain_cb=True, plugins=()):
    """A slixmpp client (not yet connected). With plain_cb, SCRAM without -PLUS sends the
    gs2 flag 'n': slixmpp 1.8.3 otherwise sends 'y' whenever TLS is up, which a server that
    offers -PLUS must refuse (RFC 5802 section 6)."""
    import slixmpp
    from slixmpp.xmlstream.handler import Callback
    from slixmpp.xmlstream.matcher import MatchXPath

    jid = server.jid(user) + (f"/{resource}" if resource else "")
    pw = password if password is not None else server.users[user]
    c = slixmpp.ClientXMPP(jid, pw, sasl_mech=mech)
    if plain_cb:
        fm = c["feature_mechanisms"]
        default_creds = fm._default_credentials

        def creds(required, optional):
            result = default_creds(required, optional)
            if "channel_binding" in result:
                result["channel_binding"] = None
            return result
        fm.sasl_callback = creds
    c.ssl_context.check_hostname = False
    c.ssl_context.verify_mode = ssl.CERT_NONE
    c.register_plugin("xep_0199")
    for p in plugins:
        c.register_plugin(p)
    c.messages = asyncio.Queue()
    c.started = asyncio.Event()
    c.auth_failed = asyncio.Event()
    c.gone = asyncio.Event()
    c.failures = []
    c.stream_errors = []
    c.register_handler(Callback("all messages", MatchXPath("{jabber:client}message"),
                                lambda m: c.messages.put_nowait(m)))
    c.add_event_handler("session_start", lambda _: c.started.set())
    c.add_event_handler("failed_auth", lambda s: c.failures.append(s["condition"]))
    c.add_event_handler("failed_all_auth", lambda _: c.auth_failed.set())
    c.add_event_handler("disconnected", lambda _: c.gone.set())
    c.add_event_handler("connection_failed", lambda _: c.gone.set())
    c.add_event_handler("stream_error", lambda s: c.stream_errors.append(s["condition"]))
    c._mp_address = (server.host, server.tls_port if use_ssl else server.port)
    c._mp_ssl = use_ssl
    return c


async def slix_login(server, user, timeout=20, **kw):
    """Connect and wait for session start; fails loudly otherwise."""
    c = slix_client(server, user, **kw)
    c.connect(c._mp_address, use_ssl=c._mp_ssl)
    waiters = [asyncio.ensure_future(e.wait()) for e in (c.started, c.auth_failed, c.gone)]
    done, pending = await asyncio.wait(waiters, timeout=timeout,
                                       return_when=asyncio.FIRST_COMPLETED)
    for w in pending:
        w.cancel()
    if not c.started.is_set() and not c.gone.is_set():
        try:
            c.abort()
        except AttributeError:
            pass  # slixmpp 1.8 raises when the transport closed meanwhile
        raise AssertionError(
            f"slixmpp login of {user} (mechanism {kw.get('mech', 'PLAIN')}) did not start a "
            f"session: auth failures={c.failures}, stream errors={c.stream_errors}, "
            f"disconnected={c.gone.is_set()}, timeout={not done}")
    return c


async def slix_close(c, timeout=10):
    if c.gone.is_set():
        return
    c.disconnect()
    try:
        await asyncio.wait_for(c.gone.wait(), timeout)
    except asyncio.TimeoutError:
        c.abort()
        raise AssertionError(f"{c.boundjid} did not disconnect within {timeout}s")


async def next_message(c, timeout=10, what="a message"):
    try:
        return await asyncio.wait_for(c.messages.get(), timeout)
    except asyncio.TimeoutError:
        raise AssertionError(f"{c.boundjid} did not receive {what} within {timeout}s") from None


async def barrier(c, server):
    """A ping round trip to the server: everything c sent before has been processed."""
    await ping_iq(c, server.domain).send(timeout=10)


def ping_iq(c, to):
    """<iq type='get'><ping xmlns='urn:xmpp:ping'/></iq> (not a <query/>)."""
    iq = c.make_iq_get(ito=to)
    iq.enable("ping")
    return iq


def run(coro, timeout=120):
    async def guarded():
        return await asyncio.wait_for(coro, timeout)
    return asyncio.run(guarded())


def run_tool(args, timeout=60):
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=tool_env())


def sasl_client(server, user, mech, *opts, password=None, port=None):
    """Run tools/sasl_client; returns CompletedProcess."""
    pw = password if password is not None else server.users[user]
    return run_tool([SASL_CLIENT, *opts, server.host, str(port or server.port), server.domain,
                     user, pw, mech])


# ---- helpers for slixmpp tests that wait on queues of received stanzas ----

async def slix_ping(c, to="localhost"):
    """A round trip to the server: what c sent before has been handled, and what was routed
    to c before has arrived."""
    iq = c.make_iq_get(ito=to)
    iq.enable("ping")
    await iq.send(timeout=10)


def drain(queue):
    """Everything queued so far, without waiting."""
    got = []
    while not queue.empty():
        got.append(queue.get_nowait())
    return got


async def next_of(queue, pred, what, timeout=10):
    """The next queued item for which pred holds (others are dropped); fails after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no {what} within {timeout}s")
        try:
            item = await asyncio.wait_for(queue.get(), left)
        except asyncio.TimeoutError:
            raise AssertionError(f"no {what} within {timeout}s") from None
        if pred(item):
            return item


def iq_with(c, typ, xml, to=None):
    """An IQ get or set of client c carrying the payload xml (a string)."""
    import xml.etree.ElementTree as ET
    iq = c.make_iq_set(ito=to) if typ == "set" else c.make_iq_get(ito=to)
    iq.append(ET.fromstring(xml))
    return iq


async def refused(iq):
    """Send iq, expect an error: its (type, condition)."""
    from slixmpp.exceptions import IqError
    with pytest.raises(IqError) as e:
        await iq.send(timeout=10)
    err = e.value.iq["error"]
    return err["type"], err["condition"]


def jid(user, res=None):
    """user@localhost[/res]"""
    return f"{user}@{DOMAIN}" + (f"/{res}" if res else "")


async def settle(*clients):
    """Everything each client sent has been routed, and what was routed to it has arrived."""
    for c in clients:
        await slix_ping(c)
    for c in clients:
        await slix_ping(c)


async def befriend(a, b, ua, ub):
    """Mutual subscription, one step at a time (no pre-approval by accident)."""
    a.send_presence(pto=jid(ub), ptype="subscribe")
    await settle(a, b)
    b.send_presence(pto=jid(ua), ptype="subscribed")
    b.send_presence(pto=jid(ua), ptype="subscribe")
    await settle(b, a)
    a.send_presence(pto=jid(ub), ptype="subscribed")
    await settle(a, b)
