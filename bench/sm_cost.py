#!/usr/bin/python3
"""Server CPU per message delivered to a client with and without stream management (XEP-0198):
what the acknowledgement queue and the in-flight journal cost. Starts its own magpied (plain
TCP, no TLS, so only the routing path is measured) and compares within one run.

usage: bench/sm_cost.py MAGPIED MAGPIECTL [messages]"""
import base64
import os
import re
import socket
import subprocess
import sys
import tempfile
import time

NS_SM = "urn:xmpp:sm:3"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Client:
    def __init__(self, port, user):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.buf = b""
        self.send("<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
                  "xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>")
        self.until(b"</stream:features>")
        pl = base64.b64encode(f"\0{user}\0pw-{user}".encode()).decode()
        self.send(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{pl}</auth>")
        self.until(b"<success")
        self.send("<stream:stream xmlns='jabber:client' "
                  "xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>")
        self.until(b"</stream:features>")
        self.send("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                  "<resource>r</resource></bind></iq>")
        self.until(b"</iq>")
        self.buf = b""

    def send(self, x):
        self.s.sendall(x.encode() if isinstance(x, str) else x)

    def until(self, pat):
        while pat not in self.buf:
            d = self.s.recv(1 << 16)
            if not d:
                raise SystemExit("server closed")
            self.buf += d
        i = self.buf.index(pat) + len(pat)
        self.buf = self.buf[i:]


def cpu_ticks(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])


def run(port, pid, n, sm):
    rx = Client(port, "rx")
    tx = Client(port, "tx")
    if sm:
        rx.send(f"<enable xmlns='{NS_SM}' resume='true'/>")
        rx.until(b"<enabled")
    msg = "<message to='rx@localhost/r' type='chat'><body>hello there, a short chat line</body></message>"
    t0 = cpu_ticks(pid)
    w0 = time.monotonic()
    got = 0
    h = 0
    sent = 0
    rx.s.setblocking(False)
    data = b""
    while got < n:
        if sent < n:
            k = min(200, n - sent)
            tx.send(msg * k)
            sent += k
        try:
            while True:
                d = rx.s.recv(1 << 20)
                if not d:
                    raise SystemExit("closed")
                data += d
        except BlockingIOError:
            pass
        c = data.count(b"</message>")
        if c:
            got += c
            h += c
            data = data[data.rindex(b"</message>") + 10:]
            if sm:
                rx.s.setblocking(True)
                rx.send(f"<a xmlns='{NS_SM}' h='{h}'/>")
                rx.s.setblocking(False)
        time.sleep(0.0005)
    ticks = cpu_ticks(pid) - t0
    wall = time.monotonic() - w0
    rx.s.close()
    tx.s.close()
    return ticks / os.sysconf("SC_CLK_TCK") / n * 1e6, n / wall


def main():
    magpied, ctl = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 50000
    d = tempfile.mkdtemp(prefix="smcost-")
    port = free_port()
    cfg = os.path.join(d, "m.yml")
    open(cfg, "w").write(f"hosts: [localhost]\ndata_dir: {d}/var\nlog: {{level: warn}}\n"
                         f"c2s: {{address: 127.0.0.1, port: {port}, direct_tls_port: 0, "
                         f"tls_required: false}}\nhttp: {{port: 0}}\n"
                         f"sasl: {{mechanisms: [PLAIN]}}\nmodules: [session, roster, ping, disco]\n")
    os.makedirs(f"{d}/var", exist_ok=True)
    for u in ("rx", "tx"):
        subprocess.run([ctl, "--config", cfg, "user", "add", f"{u}@localhost", f"pw-{u}"],
                       check=True)
    p = subprocess.Popen([magpied, "--config", cfg], stderr=open(f"{d}/log", "w"))
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port)).close()
            break
        except OSError:
            time.sleep(0.05)
    try:
        run(port, p.pid, 2000, False)  # warm-up
        rows = []
        for sm in (False, True, False, True):
            us, rate = run(port, p.pid, n, sm)
            rows.append((sm, us, rate))
            print(f"sm={'on ' if sm else 'off'} server CPU {us:.2f} us/message, {rate:.0f} msg/s",
                  flush=True)
        off = sum(r[1] for r in rows if not r[0]) / 2
        on = sum(r[1] for r in rows if r[0]) / 2
        print(f"stream management costs {on / off:.2f}x the server CPU per message "
              f"({on - off:+.2f} us)")
    finally:
        p.terminate()
        p.wait()


main()
