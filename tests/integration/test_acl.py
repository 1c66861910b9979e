"""Site policies (the acl: section), each tried both ways with real clients: who may save a
vCard or private data, who may announce to everyone online, and whether presence crosses
between the hosted domains a.test and b.test. A reload brings new policies to running
sessions."""
import asyncio
import os
import signal
import subprocess
import time
import types
import xml.etree.ElementTree as ET

from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from conftest import (MAGPIED, drain, iq_with, next_of, refused, run, slix_close, slix_login,
                      slix_ping as ping)

HOSTS = ("a.test", "b.test")
NS_VCARD = "vcard-temp"
NS_PRIVATE = "jabber:iq:private"


def server_with(make_server, users, acl=None, hosts=HOSTS):
    """users: bare JIDs (local parts unique across hosts)."""
    srv = make_server(config={"acl": acl} if acl else None, hosts=hosts, start=False)
    for jid in users:
        srv.add_user(jid)
    return srv.start()


async def login(srv, jid, resource="r", available=True):
    """A slixmpp session of jid (any hosted domain), collecting presence stanzas."""
    user, domain = jid.split("@")
    view = types.SimpleNamespace(host=srv.host, port=srv.port, tls_port=srv.tls_port,
                                 users=srv.users, jid=lambda u: f"{u}@{domain}")
    c = await slix_login(view, user, resource=resource)
    c.auto_authorize = None  # subscription requests are the test's to answer
    c.auto_subscribe = False
    c.presences = asyncio.Queue()
    c.register_handler(Callback("all presence", MatchXPath("{jabber:client}presence"),
                                lambda p: c.presences.put_nowait(p)))
    if available:
        c.send_presence()
    await ping(c, domain)
    return c


async def quiet(queue, seconds=1.0):
    """What arrives in seconds (expected: nothing)."""
    await asyncio.sleep(seconds)
    return drain(queue)


def vcard(fn):
    return f"<vCard xmlns='{NS_VCARD}'><FN>{fn}</FN></vCard>"


async def stored_fn(c):
    r = await iq_with(c, "get", f"<vCard xmlns='{NS_VCARD}'/>").send(timeout=10)
    fn = r.xml.find(f"{{{NS_VCARD}}}vCard/{{{NS_VCARD}}}FN")
    return None if fn is None else fn.text


def wait_log(srv, text, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if text in srv.log():
            return
        time.sleep(0.1)
    raise AssertionError(f"{text!r} not in the log:\n" + srv.log()[-3000:])


def test_save_vcard_policy_and_reload(make_server):
    srv = server_with(make_server, ["alice@a.test", "bob@a.test", "eve@b.test"],
                      acl={"save_vcard": ["alice@a.test", "b.test"]})

    async def main():
        alice = await login(srv, "alice@a.test")
        bob = await login(srv, "bob@a.test")
        eve = await login(srv, "eve@b.test")
        # allowed: a JID and a domain of the list
        await iq_with(alice, "set", vcard("Alice")).send(timeout=10)
        await iq_with(eve, "set", vcard("Eve")).send(timeout=10)
        assert await stored_fn(alice) == "Alice"
        assert await stored_fn(eve) == "Eve"
        # denied: forbidden (auth), nothing stored; reading stays open to him
        assert await refused(iq_with(bob, "set", vcard("Bob"))) == ("auth", "forbidden")
        assert await stored_fn(bob) is None
        get = bob.make_iq_get(ito="alice@a.test")
        get.append(ET.fromstring(f"<vCard xmlns='{NS_VCARD}'/>"))
        r = await get.send(timeout=10)
        assert r.xml.find(f"{{{NS_VCARD}}}vCard/{{{NS_VCARD}}}FN").text == "Alice"

        # SIGHUP with a new policy: the running sessions are judged by it at once
        srv.config["acl"] = {"save_vcard": ["bob@a.test"]}
        srv.write_config()
        os.kill(srv.pid, signal.SIGHUP)
        await asyncio.get_running_loop().run_in_executor(
            None, wait_log, srv, "configuration reloaded")
        await iq_with(bob, "set", vcard("Bob")).send(timeout=10)
        assert await stored_fn(bob) == "Bob"
        assert await refused(iq_with(alice, "set", vcard("Alice 2"))) == ("auth", "forbidden")
        assert await stored_fn(alice) == "Alice"
        for c in (alice, bob, eve):
            await slix_close(c)

    run(main())


def test_save_private_policy(make_server):
    srv = server_with(make_server, ["alice@a.test", "bob@a.test"],
                      acl={"admins": ["alice@a.test"], "save_private": ["admins"]},
                      hosts=("a.test",))
    bookmarks = ("<query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'>"
                 "<url name='news' url='https://example.org/'/></storage></query>")
    fetch = "<query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query>"

    async def main():
        alice = await login(srv, "alice@a.test")
        bob = await login(srv, "bob@a.test")
        await iq_with(alice, "set", bookmarks).send(timeout=10)
        r = await iq_with(alice, "get", fetch).send(timeout=10)
        assert r.xml.find(".//{storage:bookmarks}url") is not None
        assert await refused(iq_with(bob, "set", bookmarks)) == ("auth", "forbidden")
        # bob may still read his own (empty) storage; nothing was stored for him
        r = await iq_with(bob, "get", fetch).send(timeout=10)
        assert r.xml.find(".//{storage:bookmarks}url") is None
        await slix_close(alice)
        await slix_close(bob)

    run(main())


def test_announce_online(make_server):
    srv = server_with(make_server,
                      ["boss@a.test", "alice@a.test", "bob@a.test", "dan@a.test", "eve@b.test"],
                      acl={"admins": ["boss@a.test"]})

    async def main():
        boss = await login(srv, "boss@a.test")
        alice = await login(srv, "alice@a.test", resource="one")
        alice2 = await login(srv, "alice@a.test", resource="two")
        bob = await login(srv, "bob@a.test")
        dan = await login(srv, "dan@a.test", available=False)  # connected, not available
        eve = await login(srv, "eve@b.test")  # another host

        # a normal user: forbidden, and nobody hears anything
        bob.send_message(mto="a.test/announce/online", mbody="free pizza", mtype="normal")
        err = await next_of(bob.messages, lambda m: m["type"] == "error", "error")
        assert err["error"]["condition"] == "forbidden" and err["error"]["type"] == "auth"
        for c in (boss, alice, alice2, dan, eve):
            assert await quiet(c.messages, 0.3) == [], c.boundjid

        # the administrator: a headline from the server to every available session of a.test
        boss.send_message(mto="a.test/announce/online", mbody="maintenance at 18:00",
                          msubject="Notice")
        for c in (boss, alice, alice2, bob):
            m = await next_of(c.messages, lambda m: True, f"the announcement at {c.boundjid}")
            assert m["type"] == "headline", m
            assert m["from"].full == "a.test", m
            assert m["to"].full == c.boundjid.full, m
            assert m["body"] == "maintenance at 18:00" and m["subject"] == "Notice", m
        for c in (dan, eve):
            assert await quiet(c.messages, 0.5) == [], c.boundjid
        for c in (boss, alice, alice2, bob, dan, eve):
            await slix_close(c)

    run(main())


async def roster_jids(c):
    r = await c.get_roster()
    return {str(j) for j in r["roster"]["items"]}


def test_cross_domain_subscription_allowed_by_default(make_server):
    srv = server_with(make_server, ["alice@a.test", "bob@b.test"])

    async def main():
        alice = await login(srv, "alice@a.test")
        bob = await login(srv, "bob@b.test")
        alice.send_presence(pto="bob@b.test", ptype="subscribe")
        p = await next_of(bob.presences, lambda p: p["type"] == "subscribe", "subscribe")
        assert p["from"].bare == "alice@a.test"
        bob.send_presence(pto="alice@a.test", ptype="subscribed")
        await next_of(alice.presences, lambda p: p["type"] == "subscribed", "subscribed")
        # bob's presence now reaches alice
        bob.send_presence(pstatus="across")
        await next_of(alice.presences, lambda p: p["status"] == "across", "bob's presence")
        await slix_close(alice)
        await slix_close(bob)

    run(main())


def test_same_domain_presence(make_server):
    srv = server_with(make_server, ["alice@a.test", "carol@a.test", "bob@b.test"],
                      acl={"see_presence": "same_domain"})

    async def main():
        alice = await login(srv, "alice@a.test")
        carol = await login(srv, "carol@a.test")
        bob = await login(srv, "bob@b.test")
        for c in (alice, carol, bob):
            await quiet(c.presences, 0.2)

        # across domains: refused with forbidden, nothing reaches bob, nothing is stored
        alice.send_presence(pto="bob@b.test", ptype="subscribe")
        err = await next_of(alice.presences, lambda p: p["type"] == "error", "presence error")
        assert err["error"]["condition"] == "forbidden" and err["from"].bare == "bob@b.test"
        assert "bob@b.test" not in await roster_jids(alice)
        # approving across domains is refused the same way
        bob.send_presence(pto="alice@a.test", ptype="subscribed")
        err = await next_of(bob.presences, lambda p: p["type"] == "error", "presence error")
        assert err["error"]["condition"] == "forbidden"
        # directed presence across domains is dropped
        alice.send_presence(pto="bob@b.test/r", pstatus="psst")
        got = await quiet(bob.presences, 1.0)
        assert [p for p in got if p["from"].bare == "alice@a.test"] == [], got

        # within the domain everything works: request, approval, directed presence
        alice.send_presence(pto="carol@a.test", ptype="subscribe")
        p = await next_of(carol.presences, lambda p: p["type"] == "subscribe", "subscribe")
        assert p["from"].bare == "alice@a.test"
        assert "carol@a.test" in await roster_jids(alice)
        alice.send_presence(pto="carol@a.test/r", pstatus="hello carol")
        await next_of(carol.presences, lambda p: p["status"] == "hello carol", "directed")
        for c in (alice, carol, bob):
            await slix_close(c)

    run(main())


def test_same_domain_after_reload_silences_old_contacts(make_server):
    srv = server_with(make_server, ["alice@a.test", "carol@a.test", "bob@b.test"])

    async def befriend(a, b):
        a.send_presence(pto=b.boundjid.bare, ptype="subscribe")
        await next_of(b.presences, lambda p: p["type"] == "subscribe", "subscribe")
        b.send_presence(pto=a.boundjid.bare, ptype="subscribed")
        await next_of(a.presences, lambda p: p["type"] == "subscribed", "subscribed")

    async def main():
        alice = await login(srv, "alice@a.test")
        carol = await login(srv, "carol@a.test")
        bob = await login(srv, "bob@b.test")
        await befriend(carol, alice)  # carol sees alice
        await befriend(bob, alice)    # bob (other domain) sees alice
        alice.send_presence(pstatus="before")
        for c in (carol, bob):
            await next_of(c.presences, lambda p: p["status"] == "before", "before")

        srv.config["acl"] = {"see_presence": "same_domain"}
        srv.write_config()
        os.kill(srv.pid, signal.SIGHUP)
        await asyncio.get_running_loop().run_in_executor(
            None, wait_log, srv, "configuration reloaded")

        alice.send_presence(pstatus="after")
        await next_of(carol.presences, lambda p: p["status"] == "after", "after at carol")
        assert [p for p in await quiet(bob.presences, 1.0) if p["status"] == "after"] == []
        # a new session of bob gets no probe answer from alice either
        bob2 = await login(srv, "bob@b.test", resource="two")
        got = await quiet(bob2.presences, 1.0)
        assert [p for p in got if p["from"].bare == "alice@a.test"] == [], got
        for c in (alice, carol, bob, bob2):
            await slix_close(c)

    run(main())


def test_bad_acl_refuses_to_start(make_server):
    srv = make_server(config={"acl": {"send_alerts": ["admins", "everyone"]}}, start=False)
    p = subprocess.run([MAGPIED, "--check-config", "--config", srv.config_path],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1, p
    assert f"{srv.config_path}:" in p.stderr and "everyone" in p.stderr, p.stderr
