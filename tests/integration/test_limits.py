"""Hard limits under abuse: for each limit an attacker crosses it and is cut off with the error
RFC 6120 (or the XEP) names, while real clients (slixmpp) on the same server keep sending and
receiving messages during and after the attack.

Covered elsewhere, not repeated here: stanza size at and over the limit with two clients
chatting (test_stream_errors.py test_stanza_size_limit), pre-auth 10 MB attribute with RSS
(test_preauth_huge_attribute), pre-auth element count, post-auth nesting, DOCTYPE and billion
laughs (test_stream_errors.py), growing delays on failed logins (test_login.py), the offline
quota for one message over (test_presence.py), sessions per account with legacy auth
(test_legacy_auth.py).
"""
import asyncio
import re
import select
import socket
import ssl
import time

import pytest

from conftest import (DOMAIN, RawClient, expect_stream_error, insecure_context,
                      next_message, run, slix_close, slix_login, stream_error_re, stream_header)

PING = "<iq type='get' id='{id}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>"


class RawFrom(RawClient):
    """A RawClient whose connection comes from another loopback address (127.0.0.0/8 all
    reaches lo on Linux), so that it counts as another IP than the slixmpp clients."""

    def __init__(self, port, src, direct_tls=False, timeout=10):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                             source_address=(src, 0))
        self.domain = DOMAIN
        self.buf = b""
        self.eof = False
        self.transcript = []
        if direct_tls:
            self.sock = insecure_context().wrap_socket(self.sock, server_hostname=DOMAIN)


async def exchange(server, a, b, tag, timeout=10):
    """a sends b a message and b answers: both directions work, within timeout each."""
    a.send_message(mto=b.boundjid, mbody=f"{tag}-ping", mtype="chat")
    m = await next_message(b, timeout=timeout, what=f"{tag}-ping")
    assert m["body"] == f"{tag}-ping", m
    b.send_message(mto=a.boundjid, mbody=f"{tag}-pong", mtype="chat")
    m = await next_message(a, timeout=timeout, what=f"{tag}-pong")
    assert m["body"] == f"{tag}-pong", m


def others_served(server, a="bob", b="carol", tag="after"):
    """Two fresh slixmpp clients log in and exchange messages."""
    async def go():
        x = await slix_login(server, a)
        y = await slix_login(server, b)
        await exchange(server, x, y, tag)
        await slix_close(x)
        await slix_close(y)
    run(go())


def flood_until_closed(c, unit, seconds):
    """Send unit over and over for up to `seconds` while reading what the server says, until it
    closes the connection. Non-blocking on both sides, so a stream error the server sends while
    we are still writing is read, not lost. Returns (bytes sent, seconds until closed or
    None)."""
    c.sock.setblocking(False)
    t0 = time.monotonic()
    sent = 0
    writing = True
    try:
        while time.monotonic() - t0 < seconds:
            r, w, _ = select.select([c.sock], [c.sock] if writing else [], [], 0.2)
            if r or getattr(c.sock, "pending", lambda: 0)():
                try:
                    data = c.sock.recv(65536)
                except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                    data = None
                except (ConnectionResetError, BrokenPipeError, ssl.SSLEOFError, ssl.SSLError):
                    data = b""
                if data == b"":
                    c.eof = True
                    return sent, time.monotonic() - t0
                if data:
                    c.buf += data
            if w:
                try:
                    sent += c.sock.send(unit)
                except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
                    pass
                except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                    writing = False
        return sent, None
    finally:
        c.sock.setblocking(True)


def log_count(server, text):
    return server.log().count(text)


# ---- read rate (shaper) ---------------------------------------------------------------------

def test_flood_is_slowed_to_the_read_rate(make_server):
    """An authenticated client sending far above c2s.max_read_rate is read at that rate: a ping
    behind N bytes of whitespace keepalives is answered only after about N / rate seconds, and
    it is not disconnected while under c2s.flood_timeout. Two slixmpp clients chat meanwhile
    with ordinary latency."""
    rate, burst, n = 64 * 1024, 16 * 1024, 512 * 1024
    srv = make_server(users={"alice": None, "bob": None, "carol": None},
                      config={"c2s": {"max_read_rate": rate, "read_burst": burst,
                                      "flood_timeout": 120}})
    attacker = RawClient(srv.port)
    attacker.login("alice", srv.users["alice"], resource="flood")

    async def go():
        bob = await slix_login(srv, "bob")
        carol = await slix_login(srv, "carol")
        loop = asyncio.get_running_loop()

        def attack():
            t0 = time.monotonic()
            attacker.sock.settimeout(120)
            for _ in range(n // 16384):
                attacker.sock.sendall(b" " * 16384)
            attacker.send(PING.format(id="behind"))
            attacker.read_until(r"<iq[^>]*id=['\"]behind['\"][^>]*>", timeout=120)
            return time.monotonic() - t0
        job = loop.run_in_executor(None, attack)
        worst = 0.0
        i = 0
        while not job.done():
            t = time.monotonic()
            await exchange(srv, bob, carol, f"during{i}", timeout=5)
            worst = max(worst, time.monotonic() - t)
            i += 1
            await asyncio.sleep(0.2)
        took = await job
        await slix_close(bob)
        await slix_close(carol)
        return took, worst, i
    took, worst, rounds = run(go(), timeout=180)
    expected = (n - burst) / rate
    print(f"{n} bytes at {rate} B/s took {took:.1f}s (expected {expected:.1f}s); "
          f"{rounds} exchanges, slowest {worst:.2f}s")
    assert took >= 0.7 * expected, (
        f"{n} bytes were read in {took:.1f}s: not shaped to {rate} B/s ({expected:.1f}s)")
    assert took <= 3 * expected + 10, f"shaped far below the rate: {took:.1f}s"
    assert rounds >= 3 and worst < 3, f"other users slowed down: {rounds} rounds, worst {worst}"
    assert log_count(srv, "slowed down") == 1, "the shaping was not logged exactly once"
    attacker.close()


@pytest.mark.parametrize("authed", [True, False], ids=["authenticated", "preauth"])
def test_sustained_flood_is_disconnected(make_server, authed):
    """A client that stays over its read rate for c2s.flood_timeout gets <policy-violation/>;
    the log names its address (and JID once bound), once. Others are served throughout."""
    srv = make_server(users={"alice": None, "bob": None, "carol": None},
                      config={"c2s": {"max_read_rate": 32768, "read_burst": 16384,
                                      "preauth_max_read_rate": 8192,
                                      "preauth_read_burst": 8192, "flood_timeout": 2}})
    attacker = RawClient(srv.port)
    if authed:
        jid = attacker.login("alice", srv.users["alice"], resource="flood")
    else:
        attacker.open_stream()

    async def go():
        bob = await slix_login(srv, "bob")
        carol = await slix_login(srv, "carol")
        loop = asyncio.get_running_loop()
        job = loop.run_in_executor(None, flood_until_closed, attacker, b" " * 8192, 30)
        i = 0
        while not job.done():
            await exchange(srv, bob, carol, f"during{i}", timeout=5)
            i += 1
            await asyncio.sleep(0.2)
        sent, closed_after = await job
        await exchange(srv, bob, carol, "after")
        await slix_close(bob)
        await slix_close(carol)
        return sent, closed_after
    sent, closed_after = run(go(), timeout=120)
    text = attacker.text()
    print(f"closed after {closed_after}s and {sent} bytes sent")
    assert closed_after is not None, f"a flood of {sent} bytes was never disconnected"
    assert 1.5 <= closed_after <= 15, f"disconnected after {closed_after:.1f}s (flood_timeout 2)"
    assert re.search(stream_error_re("policy-violation"), text), text[-500:]
    lines = [l for l in srv.log().splitlines() if "c2s.flood_timeout" in l]
    assert len(lines) == 1, lines
    assert "127.0.0.1" in lines[0], lines
    if authed:
        assert jid in lines[0], f"the flood log line does not name {jid}: {lines}"
    attacker.close()


# ---- connections per address ----------------------------------------------------------------

def _open(srv, src):
    c = RawFrom(srv.port, src)
    c.open_stream()
    return c


def _wait_accepted(srv, src, timeout=10):
    """A connection from src is served again once the server has counted a close."""
    deadline = time.monotonic() + timeout
    while True:
        c = RawFrom(srv.port, src)
        c.send(stream_header())
        try:
            text = c.read_until(r"<stream:features\s*/>|</stream:features>|</stream:stream>")
        except AssertionError:
            text = c.text()
        if "<stream:features" in text:
            return c
        c.close()
        if time.monotonic() > deadline:
            raise AssertionError(f"{src} still refused after {timeout}s: {text!r}")
        time.sleep(0.2)


def test_connections_per_ip(make_server):
    """One address gets c2s.max_connections_per_ip connections; the next ones get a stream
    header and <policy-violation/> at once (logged once for the whole flood), on the direct TLS
    port they are closed before any handshake. Another address logs in and chats meanwhile.
    When one of the attacker's connections closes, it may open one again."""
    srv = make_server(users={"alice": None, "bob": None, "carol": None},
                      config={"c2s": {"max_connections_per_ip": 5}})
    attacker = "127.0.0.2"
    held = [_open(srv, attacker) for _ in range(5)]
    refused = []
    for _ in range(20):
        c = RawFrom(srv.port, attacker)
        refused.append(c)
        text = expect_stream_error(c, "policy-violation", timeout=10)
        assert "<stream:features" not in text, text
    # direct TLS: closed without a handshake
    with pytest.raises((ssl.SSLError, ConnectionResetError, OSError)):
        RawFrom(srv.tls_port, attacker, direct_tls=True)
    assert log_count(srv, "refusing more (c2s.max_connections_per_ip)") == 1, srv.log()[-3000:]
    # everyone else: a fresh address, and 127.0.0.1 for slixmpp
    other = _open(srv, "127.0.0.3")
    others_served(srv, tag="during")
    # the held connections still work: one of them logs in
    held[0].starttls()
    held[0].open_stream()
    assert "<success" in held[0].auth_plain("alice", srv.users["alice"])
    # one closes: room for exactly one more
    held.pop().close()
    held.append(_wait_accepted(srv, attacker))
    c = RawFrom(srv.port, attacker)
    expect_stream_error(c, "policy-violation")
    for c in held + refused + [other]:
        c.close()


def test_connection_count_goes_down_on_every_close(make_server):
    """Whatever ends a connection (the client hanging up, a stream error, the unauthenticated
    timeout, a TLS failure, logging in and out) gives its place back: three rounds of three
    connections from one address with a cap of three all get in."""
    srv = make_server(users={"alice": None, "bob": None, "carol": None},
                      config={"c2s": {"max_connections_per_ip": 3,
                                      "unauthenticated_timeout": 2}})
    src = "127.0.0.2"
    for rnd in range(3):
        # the previous round's closes may still be on their way to the server
        a, b, c = (_wait_accepted(srv, src) for _ in range(3))
        # the cap holds
        d = RawFrom(srv.port, src)
        expect_stream_error(d, "policy-violation")
        if rnd == 0:
            a.close()                                   # hang up
            b.send("<message><body>oops</message>")      # stream error
            expect_stream_error(b, "not-well-formed")
            expect_stream_error(c, "connection-timeout", timeout=10)   # timeout
        elif rnd == 1:
            a.starttls()                                 # a full session, ended by the client
            a.open_stream()
            assert "<success" in a.auth_plain("alice", srv.users["alice"])
            a.open_stream()
            assert a.bind("r")[0]
            a.send("</stream:stream>")
            a.read_until_closed()
            b.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
            b.read_until(r"<proceed[^>]*/>")
            b.send(b"\x16\x03\x01\x00\x05garbage")       # TLS failure
            b.read_until_closed()
            c.sock.shutdown(socket.SHUT_RDWR)
            c.close()
        else:
            for x in (a, b, c):
                x.close()
        for x in (a, b, c):
            x.close()
        again = [_wait_accepted(srv, src) for _ in range(3)]
        for x in again:
            x.close()
    others_served(srv)


# ---- authentication attempts ----------------------------------------------------------------

def _tls_stream_from(srv, src):
    c = RawFrom(srv.port, src)
    c.open_stream()
    c.starttls()
    c.open_stream()
    return c


def test_failed_logins_per_ip(make_server):
    """After sasl.max_failures failed logins from one address, that address gets
    <temporary-auth-failure/> even with the right password; a client from another address logs
    in and chats."""
    srv = make_server(users={"alice": None, "bob": None, "carol": None},
                      config={"sasl": {"max_failures": 3, "failure_delay_ms": 0}})
    attacker = "127.0.0.2"
    c = _tls_stream_from(srv, attacker)
    # guesses spread over accounts that do not exist: no account reaches its own limit
    for i in range(3):
        res = c.auth_plain(f"nobody{i}", f"guess-{i}")
        assert "<not-authorized" in res, res
    res = c.auth_plain("alice", srv.users["alice"])
    assert "<temporary-auth-failure" in res, f"4th attempt from the same address: {res!r}"
    c.close()
    # a new connection from there is refused too
    d = _tls_stream_from(srv, attacker)
    assert "<temporary-auth-failure" in d.auth_plain("bob", srv.users["bob"])
    d.close()
    assert "too many failed logins" in srv.log()
    # everyone else: alice herself from her usual address
    others_served(srv, "alice", "bob")


def test_failed_logins_per_account(make_server):
    """sasl.max_failures failures against one account, each from a different address, lock
    that account for the window whatever the address; other accounts are served."""
    srv = make_server(users={"alice": None, "bob": None, "carol": None},
                      config={"sasl": {"max_failures": 3, "failure_delay_ms": 0}})
    for i in range(3):
        c = _tls_stream_from(srv, f"127.0.0.{10 + i}")
        assert "<not-authorized" in c.auth_plain("carol", f"guess-{i}")
        c.close()
    c = _tls_stream_from(srv, "127.0.0.20")
    res = c.auth_plain("carol", srv.users["carol"])
    c.close()
    others_served(srv, "alice", "bob")
    assert "<temporary-auth-failure" in res, f"carol after 3 failures elsewhere: {res!r}"


# ---- sessions per account -------------------------------------------------------------------

def test_sessions_per_account(make_server):
    """With c2s.max_sessions_per_user 2, a third bind of the same account is refused with
    resource-constraint; its two sessions and everyone else keep working."""
    srv = make_server(users={"alice": None, "bob": None, "carol": None},
                      config={"c2s": {"max_sessions_per_user": 2}})

    async def go():
        a1 = await slix_login(srv, "alice", resource="one")
        a2 = await slix_login(srv, "alice", resource="two")
        loop = asyncio.get_running_loop()

        def third():
            c = RawClient(srv.port)
            c.open_stream()
            c.starttls()
            c.open_stream()
            assert "<success" in c.auth_plain("alice", srv.users["alice"])
            c.open_stream()
            jid, reply = c.bind("three")
            c.close()
            return jid, reply
        jid, reply = await loop.run_in_executor(None, third)
        assert jid is None, f"a third session was bound: {reply}"
        assert "type='error'" in reply.replace('"', "'") and "resource-constraint" in reply, reply
        bob = await slix_login(srv, "bob")
        await exchange(srv, a1, bob, "one")
        await exchange(srv, a2, bob, "two")
        for x in (a1, a2, bob):
            await slix_close(x)
    run(go())
    others_served(srv)


# ---- offline queue --------------------------------------------------------------------------

def test_offline_queue_flood(make_server):
    """Twenty messages to an offline account with offline.max_messages 5: five are stored, the
    other fifteen bounce with resource-constraint; the account gets exactly the five when it
    comes online, and online users chat meanwhile."""
    srv = make_server(users={"alice": None, "bob": None, "carol": None, "dave": None},
                      config={"offline": {"max_messages": 5}})

    async def go():
        alice = await slix_login(srv, "alice")
        errors = asyncio.Queue()
        alice.add_event_handler("message_error", lambda m: errors.put_nowait(m))
        alice.messages = asyncio.Queue()  # errors come through the catch-all too: use our own
        for i in range(20):
            alice.send_message(mto=srv.jid("dave"), mbody=f"spam {i}", mtype="chat")
        bounced = []
        for _ in range(15):
            m = await asyncio.wait_for(errors.get(), 15)
            bounced.append(m)
        assert all(m["error"]["condition"] == "resource-constraint" for m in bounced), bounced
        bob = await slix_login(srv, "bob")
        carol = await slix_login(srv, "carol")
        await exchange(srv, bob, carol, "during")
        dave = await slix_login(srv, "dave")
        dave.send_presence()
        got = []
        for _ in range(5):
            got.append((await next_message(dave, what="a stored message"))["body"])
        assert got == [f"spam {i}" for i in range(5)], got
        await asyncio.sleep(0.5)
        assert dave.messages.empty(), "more than max_messages were stored"
        assert errors.empty(), "more than 15 bounces"
        for x in (alice, bob, carol, dave):
            await slix_close(x)
    run(go())


# ---- unauthenticated timeout ----------------------------------------------------------------

def test_slowloris_gets_connection_timeout(make_server):
    """A client trickling a byte every half second never authenticates: trickling does not
    reset c2s.unauthenticated_timeout, it gets <connection-timeout/>; slixmpp logs in
    meanwhile."""
    srv = make_server(users={"alice": None, "bob": None, "carol": None},
                      config={"c2s": {"unauthenticated_timeout": 3}})
    c = RawFrom(srv.port, "127.0.0.2")
    c.open_stream()
    t0 = time.monotonic()
    c.send("<iq type='get' id='slow'>")
    text = ""
    while time.monotonic() - t0 < 15:
        try:
            c.send(" ")
        except OSError:
            break
        text = c.nothing_for(0.5)
        if c.eof or "</stream:stream>" in text:
            break
    dt = time.monotonic() - t0
    text = c.read_until_closed() if not c.eof else c.text()
    assert re.search(stream_error_re("connection-timeout"), text), text
    assert 2 <= dt <= 10, f"closed after {dt:.1f}s with unauthenticated_timeout 3"
    others_served(srv)


# ---- XML bombs -----------------------------------------------------------------------------

def _bomb_after_login(srv, payload, condition="policy-violation", timeout=10):
    """alice sends payload; she gets the stream error quickly, bob (online) receives nothing of
    it, the server's memory stays flat, bob and carol chat afterwards."""
    bob = RawClient(srv.port)
    bob.login("bob", srv.users["bob"], resource="r")
    c = RawClient(srv.port)
    c.login("alice", srv.users["alice"])
    rss0 = srv.rss_kb()
    t0 = time.monotonic()
    c.flood(payload.replace("TO", bob.jid))
    text = expect_stream_error(c, condition, timeout=timeout)
    dt = time.monotonic() - t0
    rss1 = srv.rss_kb()
    assert dt < timeout, dt
    assert rss1 - rss0 < 8192, f"RSS {rss0} -> {rss1} kB"
    assert "<message" not in bob.nothing_for(0.5), "part of the bomb was routed"
    bob.close()
    others_served(srv)
    return text


def _srv(make_server, **c2s):
    return make_server(users={"alice": None, "bob": None, "carol": None}, config={"c2s": c2s})


def test_many_attributes(make_server):
    srv = _srv(make_server)  # default c2s.max_attributes 64
    attrs = "".join(f" a{i}=''" for i in range(20000))
    _bomb_after_login(srv, f"<message to='TO'><body{attrs}>x</body></message>")


def test_attributes_at_the_limit_pass(make_server):
    srv = _srv(make_server, max_attributes=10)
    bob = RawClient(srv.port)
    bob.login("bob", srv.users["bob"], resource="r")
    c = RawClient(srv.port)
    c.login("alice", srv.users["alice"])
    # the namespace declaration counts: 9 attributes + 1 xmlns
    ok = "".join(f" a{i}='v'" for i in range(9))
    c.send(f"<message to='{bob.jid}' id='ok'><x xmlns='urn:test'{ok}/></message>")
    assert "a8='v'" in bob.read_until(r"<message.*?</message>")
    bob.close()
    c.send(f"<message to='{bob.jid}'><x xmlns='urn:test'{ok} a9='v'/></message>")
    expect_stream_error(c, "policy-violation")


def test_many_namespace_declarations(make_server):
    srv = _srv(make_server)
    decls = "".join(f" xmlns:p{i}='urn:p{i}'" for i in range(5000))
    _bomb_after_login(srv, f"<message to='TO'><body{decls}>x</body></message>")


def test_long_attribute_name(make_server):
    srv = _srv(make_server)  # default c2s.max_name_length 256
    _bomb_after_login(srv, f"<message to='TO'><body {'a' * 100000}='1'>x</body></message>")


def test_long_element_name(make_server):
    srv = _srv(make_server)
    _bomb_after_login(srv, f"<message to='TO'><{'e' * 100000}/></message>")


def test_long_attribute_value(make_server):
    srv = _srv(make_server, max_attribute_size=1024)
    bob = RawClient(srv.port)
    bob.login("bob", srv.users["bob"], resource="r")
    c = RawClient(srv.port)
    c.login("alice", srv.users["alice"])
    c.send(f"<message to='{bob.jid}' id='{'i' * 1024}'/>")
    assert "i" * 1024 in bob.read_until(r"<message[^>]*/>|</message>")
    bob.close()
    _bomb_after_login(srv, f"<message to='TO' id='{'i' * 1025}'/>")
    c.close()


def test_long_namespace_uri(make_server):
    srv = _srv(make_server)  # default c2s.max_attribute_size 8192
    _bomb_after_login(srv, f"<message to='TO'><x xmlns='urn:{'u' * 100000}'/></message>")


def test_stream_header_with_many_attributes(make_server):
    srv = _srv(make_server)
    c = RawClient(srv.port)
    attrs = "".join(f" a{i}='x'" for i in range(1000))
    c.send(f"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
           f"xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'"
           f"{attrs}>")
    expect_stream_error(c, "policy-violation")
    others_served(srv)


def test_preauth_deep_nesting(make_server):
    srv = _srv(make_server)
    c = RawClient(srv.port)
    c.open_stream()
    rss0 = srv.rss_kb()
    c.flood("<a>" * 100000)
    text = c.read_until_closed()
    assert re.search(stream_error_re("policy-violation"), text), text
    assert srv.rss_kb() - rss0 < 8192
    others_served(srv)


def test_depth_at_the_limit_passes(make_server):
    srv = _srv(make_server, max_depth=8)
    bob = RawClient(srv.port)
    bob.login("bob", srv.users["bob"], resource="r")
    c = RawClient(srv.port)
    c.login("alice", srv.users["alice"])
    # <message> is depth 1 below the stream: 7 more levels fit in 8
    c.send(f"<message to='{bob.jid}'>" + "<a xmlns='urn:d'>" * 7 + "</a>" * 7 + "</message>")
    assert bob.read_until(r"<message.*?</message>").count("<a") == 7
    bob.close()
    c.send(f"<message to='{bob.jid}'>" + "<a xmlns='urn:d'>" * 8)
    expect_stream_error(c, "policy-violation")


@pytest.mark.parametrize("bad", [
    "<message to='TO'><body>&lol;</body></message>",
    "<message to='TO' id='&lol;'><body>x</body></message>",
    "<message to='TO'><body>&#x0;</body></message>",
])
def test_entity_references_refused(make_server, bad):
    """Only the five predefined entities and character references of legal characters: an
    undefined entity (there is never a DTD to define one) or a reference to NUL is refused and
    never expanded or routed."""
    srv = _srv(make_server)
    text = _bomb_after_login(srv, bad, condition=r"(not-well-formed|restricted-xml)")
    assert "&lol;" not in text


def test_predefined_entities_pass(make_server):
    srv = _srv(make_server)
    bob = RawClient(srv.port)
    bob.login("bob", srv.users["bob"], resource="r")
    c = RawClient(srv.port)
    c.login("alice", srv.users["alice"])
    c.send(f"<message to='{bob.jid}'><body>&lt;&gt;&amp;&quot;&apos;&#x263A;&#65;</body>"
           "</message>")
    got = bob.read_until(r"<message.*?</message>")
    assert "\u263a" in got and "A" in got and "&lt;" in got and "&amp;" in got, got
    bob.close()
    c.close()
