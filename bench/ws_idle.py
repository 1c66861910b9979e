#!/usr/bin/python3
"""Memory per idle WebSocket session (RFC 7395) of magpied.

Starts its own magpied on free ports, creates N accounts (bench/mkusers when given, else
magpiectl, a few at a time), then opens N WebSocket connections to /xmpp-websocket (sub-protocol
xmpp), each logging in with SASL PLAIN, binding a resource and sending initial presence, and
holds them idle. VmRSS of magpied is read before the first connection, after the last login plus
--settle seconds (longer than the idle hibernation delay), and after --hold more seconds; the
figure is (RSS idle - RSS before) / sessions, as tls_idle and xmppload's idle scenario report.

Plain ws:// to http.port with http.consider_secure (as behind a TLS-terminating proxy), or
wss:// to http.tls_port with --tls. A raw client on asyncio: no packages beyond Python's own.

usage: bench/ws_idle.py [--magpied build/magpied] [--magpiectl build/magpiectl]
                        [--mkusers bench/mkusers] [-n 2000] [--tls] [--settle 8] [--hold 5]
Benchmark the release build (make build), not the sanitized one."""
import argparse
import asyncio
import base64
import os
import re
import resource
import secrets
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time

NS_FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
PASSWORD = "bench-" + secrets.token_hex(6)
DOMAIN = "localhost"


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise SystemExit(f"no VmRSS for {pid}")


class WsClient:
    """One XMPP-over-WebSocket client: client frames masked, text frames only."""

    def __init__(self, reader, writer):
        self.r, self.w = reader, writer

    @classmethod
    async def connect(cls, host, port, tls):
        ctx = None
        if tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        r, w = await asyncio.open_connection(host, port, ssl=ctx)
        key = base64.b64encode(os.urandom(16)).decode()
        w.write((f"GET /xmpp-websocket HTTP/1.1\r\nHost: {host}:{port}\r\n"
                 "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                 f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                 "Sec-WebSocket-Protocol: xmpp\r\n\r\n").encode())
        head = await r.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            raise RuntimeError("no upgrade: " + head.split(b"\r\n", 1)[0].decode(errors="replace"))
        return cls(r, w)

    def send(self, text):
        data = text.encode()
        n = len(data)
        if n < 126:
            head = struct.pack("!BB", 0x81, 0x80 | n)
        elif n < 65536:
            head = struct.pack("!BBH", 0x81, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x81, 0x80 | 127, n)
        mask = os.urandom(4)
        self.w.write(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def _control(self, op, payload):
        mask = os.urandom(4)
        self.w.write(struct.pack("!BB", 0x80 | op, 0x80 | len(payload)) + mask
                     + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    async def recv(self):
        """The next text message (fragments joined); answers pings on the way."""
        parts = []
        while True:
            b0, b1 = await self.r.readexactly(2)
            n = b1 & 0x7F
            if n == 126:
                (n,) = struct.unpack("!H", await self.r.readexactly(2))
            elif n == 127:
                (n,) = struct.unpack("!Q", await self.r.readexactly(8))
            payload = await self.r.readexactly(n)
            op = b0 & 0x0F
            if op == 9:
                self._control(10, payload)
                continue
            if op == 10:
                continue
            if op == 8:
                raise RuntimeError("server closed the WebSocket")
            parts.append(payload)
            if b0 & 0x80:
                return b"".join(parts).decode()

    async def until(self, pattern):
        while True:
            msg = await self.recv()
            if re.search(pattern, msg):
                return msg
            if "<failure" in msg or "stream:error" in msg or "<close" in msg:
                raise RuntimeError("server said: " + msg[:300])

    async def login(self, user):
        opening = f"<open xmlns='{NS_FRAMING}' to='{DOMAIN}' version='1.0'/>"
        self.send(opening)
        await self.until(r"<mechanism>PLAIN</mechanism>")
        pl = base64.b64encode(f"\0{user}\0{PASSWORD}".encode()).decode()
        self.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{pl}</auth>")
        await self.until(r"<success")
        self.send(opening)
        await self.until(r"urn:ietf:params:xml:ns:xmpp-bind")
        self.send(f"<iq type='set' id='b1' xmlns='jabber:client'><bind xmlns='{NS_BIND}'/></iq>")
        await self.until(r"id=['\"]b1['\"]")
        self.send("<presence xmlns='jabber:client'/>")


async def open_sessions(n, port, tls, concurrency):
    clients = []
    sem = asyncio.Semaphore(concurrency)
    failures = []

    async def one(i):
        async with sem:
            try:
                c = await WsClient.connect("127.0.0.1", port, tls)
                await asyncio.wait_for(c.login(f"ws{i}"), 60)
                clients.append(c)
            except Exception as e:  # noqa: BLE001 -- counted and reported
                failures.append(f"ws{i}: {e}")
    await asyncio.gather(*(one(i) for i in range(1, n + 1)))
    return clients, failures


async def drain_forever(clients):
    """Keep reading (pings, presence) so that no client's socket buffer fills."""
    async def drain(c):
        try:
            while True:
                await c.recv()
        except Exception:  # noqa: BLE001 -- a closed session just stops
            return
    await asyncio.gather(*(drain(c) for c in clients))


def make_users(args, config, n):
    t = time.monotonic()
    if args.mkusers:
        subprocess.run([args.mkusers, config, "ws", "1", str(n), PASSWORD], check=True,
                       stdout=subprocess.DEVNULL)
    else:
        running = []
        for i in range(1, n + 1):
            running.append(subprocess.Popen(
                [args.magpiectl, "--config", config, "user", "add", f"ws{i}@{DOMAIN}", PASSWORD],
                stdout=subprocess.DEVNULL))
            if len(running) >= 8:
                if running.pop(0).wait() != 0:
                    raise SystemExit("magpiectl user add failed")
        for p in running:
            if p.wait() != 0:
                raise SystemExit("magpiectl user add failed")
    print(f"{n} accounts in {time.monotonic() - t:.1f} s", file=sys.stderr)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--magpied", default=os.path.join(here, "../build/magpied"))
    ap.add_argument("--magpiectl", default=os.path.join(here, "../build/magpiectl"))
    ap.add_argument("--mkusers", help="bench/mkusers, much faster than magpiectl for many")
    ap.add_argument("-n", "--sessions", type=int, default=2000)
    ap.add_argument("--tls", action="store_true", help="wss:// on http.tls_port")
    ap.add_argument("--settle", type=float, default=8.0,
                    help="seconds after the last login before the idle reading (> hibernation)")
    ap.add_argument("--hold", type=float, default=5.0)
    ap.add_argument("--concurrency", type=int, default=64, help="logins in flight")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    args.magpied = os.path.abspath(args.magpied)  # magpied runs in its temporary directory

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, 2 * args.sessions + 256))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))

    tmp = tempfile.mkdtemp(prefix="ws-idle-")
    c2s, tls_port, http, https = free_ports(4)
    config = os.path.join(tmp, "magpie.yml")
    with open(config, "w") as f:
        f.write(f"""# bench/ws_idle.py
hosts: [{DOMAIN}]
data_dir: {tmp}/var
log: {{level: warn}}
c2s: {{address: 127.0.0.1, port: {c2s}, direct_tls_port: {tls_port},
       max_connections_per_ip: 0, max_read_rate: 0, preauth_max_read_rate: 0}}
http: {{port: {http}, tls_port: {https}, consider_secure: {'false' if args.tls else 'true'}}}
sasl: {{scram_iterations: 4096, failure_delay_ms: 0, max_failures: 1000000}}
admin: {{socket: {tmp}/var/magpied.sock}}
""")
    make_users(args, config, args.sessions)
    log = open(os.path.join(tmp, "magpied.log"), "wb")
    proc = subprocess.Popen([args.magpied, "--config", config], stdout=log, stderr=log,
                            stdin=subprocess.DEVNULL, cwd=tmp)
    try:
        port = https if args.tls else http
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"magpied did not listen on {port}; log in {tmp}")
                time.sleep(0.05)
        time.sleep(1.0)
        before = rss_kib(proc.pid)

        async def scenario():
            t = time.monotonic()
            clients, failures = await open_sessions(args.sessions, port, args.tls,
                                                    args.concurrency)
            took = time.monotonic() - t
            drainer = asyncio.ensure_future(drain_forever(clients))
            await asyncio.sleep(args.settle)
            idle = rss_kib(proc.pid)
            await asyncio.sleep(args.hold)
            held = rss_kib(proc.pid)
            drainer.cancel()
            for c in clients:
                c.w.close()
            return len(clients), failures, took, idle, held

        ok, failures, took, idle, held = asyncio.run(scenario())
        for f in failures[:5]:
            print("failed:", f, file=sys.stderr)
        if not ok:
            raise SystemExit("no session logged in")
        per = (held - before) / ok
        print(f"{ok} WebSocket sessions ({'wss' if args.tls else 'ws'}) logged in in "
              f"{took:.1f} s ({len(failures)} failed); magpied RSS {before} KiB before, "
              f"{idle} KiB after {args.settle:g} s idle, {held} KiB after {args.hold:g} s more",
              file=sys.stderr)
        print(f'{{"sessions": {ok}, "failed": {len(failures)}, "tls": {str(args.tls).lower()}, '
              f'"rss_before_kib": {before}, "rss_idle_kib": {idle}, "rss_held_kib": {held}, '
              f'"kib_per_session": {per:.2f}}}')
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
