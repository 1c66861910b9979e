"""magpie-mux in front of magpied over the link protocol (TCP): two multiplexors, two
servers with the embedded mux off and the same accounts.

Alice and Bob talk through mux 1 to server 1. Server 1 is killed: the mux closes their streams
with system-shutdown and they log in again through the same mux, now to server 2. Mux 1 is
killed: mux 2 keeps serving. Server 1 comes back: under the ordered policy new sessions go to
it again. No process restarts another. A session with stream management resumes through mux 2
after mux 1 died. A wrong secret is refused, and a garbage frame drops only that link."""
import asyncio
import re
import secrets
import socket
import struct

import pytest

from conftest import NS_STREAMS, RawClient, barrier, next_message, run, slix_close, slix_login
from muxproc import (MuxProcess, closed_within, fake_mux, frame, kill9, link_server, recv_exact,
                     start_link_server, wait_for)

SECRET = "link-" + secrets.token_hex(12)
USERS = {u: f"pw-{u}-" + secrets.token_urlsafe(8) for u in ("alice", "bob", "carol", "dave")}
NS_SM = "urn:xmpp:sm:3"

LF_STREAM, LF_ELEMENT, LF_CLOSED, LF_SEND, LF_AUTHED, LF_BOUND, LF_CLOSE = range(1, 8)


@pytest.fixture
def muxes():
    made = []

    def factory(servers, secret=SECRET, **kw):
        m = MuxProcess(servers, secret, USERS, **kw)
        m.killed = False
        made.append(m)
        return m.start()

    yield factory
    problems = []
    for m in made:
        try:
            m.cleanup(killed=m.killed)
        except AssertionError as e:
            problems.append(str(e))
    assert not problems, "\n\n".join(problems)


def up_line(srv, again=False):
    return f"server 127.0.0.1:{srv.link_port} up" + (" again" if again else "")


async def exchange(a, b, text):
    a.send_message(mto=b.boundjid.full, mbody=text, mtype="chat")
    m = await next_message(b, what=f"{text!r} from {a.boundjid}")
    assert m["body"] == text
    b.send_message(mto=a.boundjid.full, mbody="re: " + text, mtype="chat")
    m = await next_message(a, what=f"the answer to {text!r}")
    assert m["body"] == "re: " + text


async def wait_gone(*clients, timeout=20):
    for c in clients:
        await asyncio.wait_for(c.gone.wait(), timeout)


def authenticated(srv, user):
    return f"authenticated {user}@localhost" in srv.log()


def test_failover_between_servers_and_multiplexors(make_server, muxes):
    s1 = link_server(make_server, USERS, SECRET)
    s2 = link_server(make_server, USERS, SECRET)
    m1 = muxes([s1, s2])
    m2 = muxes([s1, s2])
    for m in (m1, m2):
        m.wait_log(up_line(s1))
        m.wait_log(up_line(s2))
    s2_pid, m2_pid = s2.pid, m2.pid

    async def scenario():
        a = await slix_login(m1, "alice")
        b = await slix_login(m1, "bob")
        c = await slix_login(m2, "carol")
        await exchange(a, b, "through mux 1 to server 1")
        assert authenticated(s1, "alice") and not authenticated(s2, "alice")

        kill9(s1)
        await wait_gone(a, b, c)
        for x in (a, b, c):
            assert "system-shutdown" in x.stream_errors, (x.boundjid, x.stream_errors)
        m1.wait_log("client streams closed with system-shutdown")

        # The same mux, at once, to the second server.
        a = await slix_login(m1, "alice")
        b = await slix_login(m1, "bob")
        await exchange(a, b, "through mux 1 to server 2")
        assert authenticated(s2, "alice") and authenticated(s2, "bob")
        c = await slix_login(m2, "carol")

        # A multiplexor dies: the other keeps serving, the server stays up.
        m1.kill9()
        m1.killed = True
        await wait_gone(a, b)
        d = await slix_login(m2, "dave")
        await exchange(c, d, "through mux 2 after mux 1 died")
        assert s2.alive() and s2.pid == s2_pid

        # Server 1 comes back: ordered sends new sessions to it again; mux 2 never restarted.
        start_link_server(s1)
        m2.wait_log(up_line(s1, again=True))
        b = await slix_login(m2, "bob")
        assert authenticated(s1, "bob")
        d2 = await slix_login(m2, "alice")
        await exchange(b, d2, "through mux 2 to server 1 again")
        await exchange(c, d, "server 2 still serves its sessions")
        assert m2.alive() and m2.pid == m2_pid
        for x in (b, d2, c, d):
            await slix_close(x)

    run(scenario(), timeout=80)


def raw_login_sm(port, user):
    cl = RawClient(port)
    cl.login(user, USERS[user], resource="sm")
    cl.send(f"<enable xmlns='{NS_SM}' resume='true'/>")
    enabled = cl.read_until(r"<enabled[^>]*/>")
    return cl, re.search(r"id=['\"]([^'\"]+)['\"]", enabled).group(1)


def test_stream_management_resumes_through_the_other_mux(make_server, muxes):
    s1 = link_server(make_server, USERS, SECRET)
    m1 = muxes([s1])
    m2 = muxes([s1])
    m1.wait_log(up_line(s1))
    m2.wait_log(up_line(s1))
    alice, sm_id = raw_login_sm(m1.port, "alice")
    m1.kill9()
    m1.killed = True
    alice.close()
    wait_for(lambda: "waits" in s1.log() and "for resumption" in s1.log(), 20,
             "the session to wait for resumption")

    async def bob_writes():
        b = await slix_login(m2, "bob")
        b.send_message(mto="alice@localhost/sm", mbody="while you were away", mtype="chat")
        await barrier(b, m2)
        await slix_close(b)

    run(bob_writes())
    cl = RawClient(m2.port)
    cl.open_stream()
    cl.starttls()
    cl.open_stream()
    assert "<success" in cl.auth_plain("alice", USERS["alice"])
    cl.open_stream()
    cl.send(f"<resume xmlns='{NS_SM}' previd='{sm_id}' h='0'/>")
    cl.read_until(r"<resumed[^>]*/>")
    cl.read_until(r"while you were away")
    cl.close()


def test_wrong_secret_is_refused(make_server, muxes):
    s1 = link_server(make_server, USERS, SECRET)
    bad = muxes([s1], secret="not-the-secret")
    wait_for(lambda: "wrong secret, connection refused" in s1.log(), 20, "the refusal")
    assert re.search(r"link: 127\.0\.0\.1:\d+: wrong secret", s1.log())
    bad.wait_log("link closed during the handshake")
    assert "uplink: cannot reach server" in bad.log() and up_line(s1) not in bad.log()
    # No server is up behind this mux: a new client is told to go away at once.
    cl = RawClient(bad.port)
    cl.send("<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
            "xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>")
    text = cl.read_until_closed(timeout=10)
    assert re.search(rf"<system-shutdown\s+xmlns=['\"]{NS_STREAMS}['\"]", text), text
    # A hand-made handshake with a bad MAC gets the same treatment.
    s = socket.create_connection(("127.0.0.1", s1.link_port), timeout=10)
    recv_exact(s, 44)
    s.sendall(b"MPLA" + struct.pack("<I", 1) + b"\1" * 64)
    assert closed_within(s, 10)
    s.close()


GARBAGE = [
    (frame(LF_STREAM, 0, to=b"localhost", pad=1), None, "nonzero padding"),
    (frame(LF_ELEMENT, 0, payload=b"<x/>", flags=0x100), None, "unknown frame flags"),
    (b"\x29" + b"\0" * 47, None, "not a multiple of 8"),
    (frame(LF_SEND, 0, payload=b"<x/>"), None, "frame kind not valid"),
    (frame(LF_ELEMENT, 0, payload=b"<x/>", el_kind=9), None, "unknown element kind"),
    (frame(LF_STREAM, 0, to=b"localhost", size=16), None, "shorter than its header"),
    (frame(LF_STREAM, 0, to=b"localhost", size=1 << 30), None, "larger than link.max_frame"),
    (frame(LF_STREAM, 5 << 56, to=b"localhost"), None, "mux thread it does not have"),
]


def test_garbage_frame_drops_only_that_link(make_server, muxes):
    s1 = link_server(make_server, USERS, SECRET)
    m1 = muxes([s1])
    m1.wait_log(up_line(s1))

    # A well-formed stream header from a hand-made mux gets the stream features back, under
    # the id it used (the server's own top byte turned back into our thread index).
    fake = fake_mux(s1.link_port, SECRET)
    fake.sendall(frame(LF_STREAM, 0x0000000700000003, to=b"localhost", aux=b"192.0.2.1",
                       flags=1))
    head = recv_exact(fake, 32)
    size, kind, _, _, conn = struct.unpack("<IBBHQ", head[:16])
    body = recv_exact(fake, size - 32)
    assert kind == LF_SEND and conn == 0x0000000700000003, (kind, hex(conn))
    assert b"<stream:features" in body or b"mechanisms" in body, body
    fake.close()

    # A length field that lies drops the link at once.
    fake = fake_mux(s1.link_port, SECRET)
    f = bytearray(frame(LF_STREAM, 1, to=b"localhost"))
    struct.pack_into("<H", f, 16, 200)
    fake.sendall(bytes(f))
    assert closed_within(fake, 10)
    fake.close()
    wait_for(lambda: "field lengths do not match" in s1.log(), 10, "the log line")

    for data, _, why in GARBAGE:
        fake = fake_mux(s1.link_port, SECRET)
        fake.sendall(data)
        assert closed_within(fake, 10), why
        fake.close()
        wait_for(lambda: why in s1.log(), 10, f"{why!r} in the server log")

    async def still_serving():
        a = await slix_login(m1, "alice")
        b = await slix_login(m1, "bob")
        await exchange(a, b, "after the garbage")
        await slix_close(a)
        await slix_close(b)

    run(still_serving())
    assert up_line(s1, again=True) not in m1.log(), "the real mux's link was dropped too"


def test_link_over_tls(make_server, muxes):
    s1 = link_server(make_server, USERS, SECRET, extra={"link": {"tls": True}})
    other = link_server(make_server, USERS, SECRET, extra={"link": {"tls": True}})
    cert = f"{s1.data_dir}/magpie.crt"
    m = muxes([s1], tls=True, tls_ca=cert)
    m.wait_log(up_line(s1) + " (TLS)")
    assert "TLS" in s1.log().split("link: multiplexor")[1].split("\n")[0]

    async def talk():
        a = await slix_login(m, "alice")
        b = await slix_login(m, "bob")
        await exchange(a, b, "over a TLS link")
        await slix_close(a)
        await slix_close(b)

    run(talk())
    # A server whose certificate the CA file does not vouch for is not used.
    wrong = muxes([other], tls=True, tls_ca=cert)
    wait_for(lambda: "TLS handshake failed" in wrong.log(), 20, "the TLS refusal")
    assert up_line(other) not in wrong.log()


def test_sticky_policy_stays_on_the_server_in_use(make_server, muxes):
    s1 = link_server(make_server, USERS, SECRET)
    s2 = link_server(make_server, USERS, SECRET)
    m = muxes([s1, s2], policy="sticky")
    m.wait_log(up_line(s1))
    m.wait_log(up_line(s2))

    async def scenario():
        a = await slix_login(m, "alice")
        assert authenticated(s1, "alice")
        kill9(s1)
        await wait_gone(a)
        b = await slix_login(m, "bob")
        assert authenticated(s2, "bob")
        start_link_server(s1)
        m.wait_log(up_line(s1, again=True))
        c = await slix_login(m, "carol")  # sticky: still server 2
        assert authenticated(s2, "carol") and not authenticated(s1, "carol")
        await exchange(b, c, "both on server 2")
        await slix_close(b)
        await slix_close(c)

    run(scenario(), timeout=60)
