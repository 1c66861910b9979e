"""Idle TLS 1.3 connections leave OpenSSL: after a few silent seconds the server frees the SSL
object and carries on with its own record layer. Real clients must not notice: they sit idle,
then talk again, update their keys, and hang up cleanly."""
import asyncio
import base64
import os
import re
import shutil
import subprocess
import threading
import time

import pytest

from conftest import (STROPHE_ECHO, barrier, next_message, run, slix_close, slix_login,
                      tool_env)

TAKEOVER = "TLS 1.3 record layer taken over from OpenSSL"
# Streams hibernate after 3 s of silence, checked every 2 s (mux.c IDLE_MS, SWEEP_MS *
# IDLE_SWEEPS): a takeover comes within 5 s; allow plenty for a loaded machine.
IDLE_WAIT = 20


def takeovers(server):
    return server.log().count(TAKEOVER)


def wait_takeovers(server, n, timeout=IDLE_WAIT):
    deadline = time.monotonic() + timeout
    while takeovers(server) < n:
        assert time.monotonic() < deadline, (
            f"{n} takeovers expected within {timeout}s, saw {takeovers(server)}:\n"
            + server.log()[-3000:])
        time.sleep(0.2)


async def async_wait_takeovers(server, n, timeout=IDLE_WAIT):
    deadline = time.monotonic() + timeout
    while takeovers(server) < n:
        assert time.monotonic() < deadline, (
            f"{n} takeovers expected within {timeout}s, saw {takeovers(server)}:\n"
            + server.log()[-3000:])
        await asyncio.sleep(0.2)


def assert_no_tls_failure(server):
    log = server.log()
    assert "TLS failed" not in log, log[-3000:]


async def chat(a, b, server, text):
    a.send_message(mto=b.boundjid, mbody=f"{text} from {a.boundjid.user}", mtype="chat")
    m = await next_message(b, what=f"{text} from {a.boundjid.user}")
    assert m["body"] == f"{text} from {a.boundjid.user}", m
    b.send_message(mto=a.boundjid, mbody=f"{text} back", mtype="chat")
    m = await next_message(a, what=f"{text} back")
    assert m["body"] == f"{text} back", m


def test_slixmpp_idle_direct_tls_and_starttls(server):
    """Juliet (direct TLS) and Romeo (STARTTLS) fall silent, then speak again."""
    async def dialogue():
        alice = await slix_login(server, "alice", use_ssl=True, resource="direct")
        bob = await slix_login(server, "bob", mech="SCRAM-SHA-256", resource="starttls")
        alice.send_presence()
        bob.send_presence()
        await barrier(alice, server)
        await barrier(bob, server)
        await chat(alice, bob, server, "before")
        base = takeovers(server)

        await async_wait_takeovers(server, base + 2)
        await chat(alice, bob, server, "after idling")
        await barrier(alice, server)
        await barrier(bob, server)
        # A large stanza: many 16 KiB records each way through our own layer.
        big = "x" * 100000
        alice.send_message(mto=bob.boundjid, mbody=big, mtype="chat")
        m = await next_message(bob, what="the large message")
        assert m["body"] == big
        bob.send_message(mto=alice.boundjid, mbody=big[:60000], mtype="chat")
        m = await next_message(alice, what="the large reply")
        assert m["body"] == big[:60000]

        # Idle again: the taken-over layer drops its cipher contexts and rebuilds them.
        await asyncio.sleep(6)
        await chat(bob, alice, server, "second wake-up")
        await slix_close(alice)
        await slix_close(bob)
    run(dialogue())
    assert_no_tls_failure(server)


class SClient:
    """`openssl s_client` as an XMPP client: stdin stays open, so its 'k' and 'K' commands
    (KeyUpdate, without and with update_requested) are available."""

    def __init__(self, server, starttls):
        args = ["openssl", "s_client", "-tls1_3", "-servername", server.domain]
        if starttls:
            args += ["-connect", f"{server.host}:{server.port}", "-starttls", "xmpp",
                     "-xmpphost", server.domain]
        else:
            args += ["-connect", f"{server.host}:{server.tls_port}", "-alpn", "xmpp-client"]
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, env=tool_env())
        self.out = b""
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.pos = 0
        self.server = server

    def _read(self):
        while True:
            data = self.proc.stdout.read1(65536)
            if not data:
                return
            with self.lock:
                self.out += data

    def text(self):
        with self.lock:
            return self.out.decode("utf-8", "replace")

    def send(self, line):
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def expect(self, pattern, timeout=15):
        rx = re.compile(pattern, re.S)
        deadline = time.monotonic() + timeout
        while True:
            text = self.text()
            m = rx.search(text, self.pos)
            if m:
                self.pos = m.end()
                return m.group(0)
            assert time.monotonic() < deadline, (
                f"s_client: no {pattern!r} within {timeout}s:\n{text[-1500:]}\n"
                f"server log:\n{self.server.log()[-3000:]}")
            time.sleep(0.05)

    def login(self, server, user):
        header = (f"<?xml version='1.0'?><stream:stream to='{server.domain}' "
                  "xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "
                  "version='1.0'>")
        self.expect(r"(New|Reused), TLSv1\.3")
        self.send(header)
        self.expect(r"</stream:features>")
        cred = base64.b64encode(f"\0{user}\0{server.users[user]}".encode()).decode()
        self.send(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{cred}"
                  "</auth>")
        self.expect(r"<success")
        self.send(header)
        self.expect(r"</stream:features>")
        self.send("<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                  "<resource>sclient</resource></bind></iq>")
        self.expect(r"<jid>[^<]+</jid>")

    def ping(self, server, iq_id):
        self.send(f"<iq type='get' id='{iq_id}' to='{server.domain}'>"
                  "<ping xmlns='urn:xmpp:ping'/></iq>")
        self.expect(rf"<iq[^>]*id=['\"]{iq_id}['\"][^>]*type=['\"]result['\"]|"
                    rf"<iq[^>]*type=['\"]result['\"][^>]*id=['\"]{iq_id}['\"]")

    def key_update(self, cmd):
        """s_client takes a command only when it is alone in one read of its stdin: wait until
        it has acted on it before sending the next line."""
        before = self.text().count("KEYUPDATE")
        self.send(cmd)
        deadline = time.monotonic() + 10
        while self.text().count("KEYUPDATE") <= before:
            assert time.monotonic() < deadline, f"s_client ignored {cmd!r}:\n{self.text()[-2000:]}"
            time.sleep(0.05)

    def close(self):
        try:
            self.send("</stream:stream>")
            self.expect(r"</stream:stream>", timeout=10)
            self.proc.stdin.close()
            self.proc.wait(timeout=10)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()


@pytest.mark.parametrize("starttls", [False, True], ids=["direct-tls", "starttls"])
def test_openssl_s_client_key_update_after_idle(server, starttls):
    if not shutil.which("openssl"):
        pytest.skip("openssl command not installed")
    base = takeovers(server)
    c = SClient(server, starttls)
    try:
        c.login(server, "alice")
        c.ping(server, "before")
        wait_takeovers(server, base + 1)
        c.ping(server, "woken")

        # Romeo asks for new keys both ways, then talks; then only his own.
        c.key_update("K")
        c.ping(server, "after-K")
        c.key_update("k")
        c.ping(server, "after-k")
        c.key_update("K")
        c.key_update("K")
        c.ping(server, "after-KK")

        # Silent again (the layer drops its cipher contexts), then a message to Juliet.
        async def to_bob():
            bob = await slix_login(server, "bob", resource="slix")
            bob.send_presence()
            await barrier(bob, server)
            await asyncio.sleep(6)
            c.send(f"<message to='{server.jid('bob')}/slix' type='chat'>"
                   "<body>after keyupdate</body></message>")
            m = await next_message(bob, what="s_client's message")
            assert m["body"] == "after keyupdate", m
            bob.send_message(mto=m["from"], mbody="heard you", mtype="chat")
            await slix_close(bob)
        run(to_bob())
        c.expect(r"heard you")
        c.close()
    finally:
        if c.proc.poll() is None:
            c.proc.kill()
            c.proc.wait()
    assert_no_tls_failure(server)
    assert "KEYUPDATE" in c.text()


def test_libstrophe_idle_then_echo(server):
    """libstrophe says hello and waits; Romeo answers only once both connections left
    OpenSSL."""
    assert os.access(STROPHE_ECHO, os.X_OK), f"{STROPHE_ECHO} not built"

    async def dialogue():
        bob = await slix_login(server, "bob", mech="SCRAM-SHA-256", resource="slix")
        bob.send_presence()
        await barrier(bob, server)
        base = takeovers(server)
        proc = await asyncio.create_subprocess_exec(
            STROPHE_ECHO, server.jid("alice"), server.users["alice"], server.host,
            str(server.port), server.jid("bob"), "hello from libstrophe",
            "echo: hello from libstrophe",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=tool_env())
        try:
            m = await next_message(bob, timeout=30, what="libstrophe's message")
            assert m["body"] == "hello from libstrophe", m
            await async_wait_takeovers(server, base + 2)
            bob.send_message(mto=m["from"], mbody="echo: " + m["body"], mtype="chat")
            out, err = await asyncio.wait_for(proc.communicate(), 60)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert proc.returncode == 0, (f"strophe_echo exited {proc.returncode}:\n"
                                      + err.decode(errors="replace")[-6000:])
        await slix_close(bob)
    run(dialogue())
    assert_no_tls_failure(server)
