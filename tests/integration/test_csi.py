"""Client State Indication (XEP-0352) with real slixmpp sessions: Alice's phone goes
<inactive/> while Bob, her contact, keeps changing his presence. Presence is held and folded,
messages and IQs are not; <active/> delivers what was held."""
import asyncio

from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from conftest import (befriend, drain, jid, next_message, run, settle, slix_client, slix_close,
                      slix_ping)

USERS = {"alice": None, "bob": None}
NS_CHATSTATES = "http://jabber.org/protocol/chatstates"


async def login(srv, user, resource, available=True):
    """A session with the CSI plugin; c.stanzas gets presence and messages in arrival order."""
    c = slix_client(srv, user, resource=resource)
    c.register_plugin("xep_0352")
    c.presences = asyncio.Queue()
    c.stanzas = asyncio.Queue()

    def on_presence(p):
        c.presences.put_nowait(p)
        c.stanzas.put_nowait(p)
    c.register_handler(Callback("all presence", MatchXPath("{jabber:client}presence"),
                                on_presence))
    c.register_handler(Callback("in order", MatchXPath("{jabber:client}message"),
                                lambda m: c.stanzas.put_nowait(m)))
    c.connect(c._mp_address, use_ssl=c._mp_ssl)
    await asyncio.wait_for(c.started.wait(), 20)
    c.auto_authorize = None
    c.auto_subscribe = False
    if available:
        c.send_presence()
    await slix_ping(c)
    return c


def from_bob(c):
    """Presence stanzas from bob's resources received so far: [(resource, type, status)]."""
    return [(p["from"].resource, p["type"], p["status"]) for p in drain(c.presences)
            if p["from"].bare == jid("bob")]


async def inactive(c):
    c["xep_0352"].send_inactive()
    await slix_ping(c)


async def active(c):
    c["xep_0352"].send_active()
    await slix_ping(c)


def test_presence_held_and_folded_messages_flow(make_server):
    srv = make_server(users=USERS)

    async def go():
        a = await login(srv, "alice", "phone")
        b = await login(srv, "bob", "home")
        b2 = await login(srv, "bob", "work")
        await befriend(a, b, "alice", "bob")
        assert a["xep_0352"].enabled, "no <csi xmlns='urn:xmpp:csi:0'/> stream feature"
        b2.send_presence()  # now that alice may see it
        await settle(b2, a)
        assert ("work", "available", "") in from_bob(a)

        await inactive(a)
        for i in range(1, 6):
            b.send_presence(pstatus=f"s{i}")
        b2.send_presence(pstatus="leaving")
        await settle(b, b2, a)
        assert from_bob(a) == [], "presence reached an inactive client"
        # messages (here without a body) and IQs pass at once, and flush nothing
        b.send_message(mto=jid("alice", "phone"), mtype="chat", mbody=None)
        b.send_raw(f"<message to='{jid('alice', 'phone')}' type='chat'>"
                   f"<composing xmlns='{NS_CHATSTATES}'/></message>")
        m1 = await next_message(a, what="a message while inactive")
        m2 = await next_message(a, what="a chat state while inactive")
        assert [m.xml.find(f"{{{NS_CHATSTATES}}}composing") is not None
                for m in (m1, m2)].count(True) == 1, (m1, m2)
        await b["xep_0199"].send_ping(jid("alice", "phone"), timeout=10)
        await slix_close(b2)  # unavailable replaces its 'leaving'
        await settle(b, a)
        assert from_bob(a) == [], "presence reached an inactive client"

        await active(a)
        await settle(a)
        got = from_bob(a)
        assert got == [("home", "available", "s5"), ("work", "unavailable", "")], got

        # active again: presence flows as usual
        b.send_presence(pstatus="s6")
        await settle(b, a)
        assert from_bob(a) == [("home", "available", "s6")]

        # a session that ends while presence is held frees it (checked by the sanitizers)
        await inactive(a)
        b.send_presence(pstatus="s7")
        await settle(b)
        await slix_close(a)
        await slix_close(b)

    run(go())


def test_message_with_body_flushes_held_presence_first(make_server):
    srv = make_server(users=USERS)

    async def go():
        a = await login(srv, "alice", "phone")
        b = await login(srv, "bob", "home")
        await befriend(a, b, "alice", "bob")
        await settle(a, b)
        drain(a.presences)
        drain(a.stanzas)
        await inactive(a)
        b.send_presence(pshow="away", pstatus="first")
        b.send_presence(pshow="away", pstatus="second")
        b.send_message(mto=jid("alice", "phone"), mbody="are you there?", mtype="chat")
        first = await asyncio.wait_for(a.stanzas.get(), 10)
        second = await asyncio.wait_for(a.stanzas.get(), 10)
        assert first.name == "presence" and first["status"] == "second", first
        assert second.name == "message" and second["body"] == "are you there?", second
        await settle(b, a)
        assert drain(a.stanzas) == []
        drain(a.presences)
        # a subscription request flushes too (it is for the user to answer)
        b.send_presence(pstatus="third")
        await settle(b, a)
        assert from_bob(a) == []
        b.send_presence(pto=jid("alice"), ptype="unsubscribe")
        first = await asyncio.wait_for(a.stanzas.get(), 10)
        second = await asyncio.wait_for(a.stanzas.get(), 10)
        assert first["status"] == "third" and second["type"] == "unsubscribe", (first, second)
        await slix_close(a)
        await slix_close(b)

    run(go())


def test_buffer_limit(make_server):
    """csi.max_presences: 2 — a third sender delivers everything held, with itself."""
    srv = make_server(users=USERS, config={"csi": {"max_presences": 2}})

    async def go():
        a = await login(srv, "alice", "phone")
        b1 = await login(srv, "bob", "one")
        await befriend(a, b1, "alice", "bob")
        b2 = await login(srv, "bob", "two")
        b3 = await login(srv, "bob", "three")
        await settle(b1, b2, b3, a)
        drain(a.presences)
        await inactive(a)
        b1.send_presence(pstatus="x1")
        b1.send_presence(pstatus="y1")  # folds with x1: still one entry
        await settle(b1)
        b2.send_presence(pstatus="x2")
        await settle(b2, a)
        assert from_bob(a) == []
        b3.send_presence(pstatus="x3")
        await settle(b3, a)
        got = from_bob(a)
        assert got == [("one", "available", "y1"), ("two", "available", "x2"),
                       ("three", "available", "x3")], got
        b1.send_presence(pstatus="z1")
        await settle(b1, a)
        assert from_bob(a) == []
        await active(a)
        await settle(a)
        assert from_bob(a) == [("one", "available", "z1")]
        for c in (a, b1, b2, b3):
            await slix_close(c)

    run(go())


def test_csi_off_holds_nothing(make_server):
    """csi.max_presences: 0 — inactive changes nothing."""
    srv = make_server(users=USERS, config={"csi": {"max_presences": 0}})

    async def go():
        a = await login(srv, "alice", "phone")
        b = await login(srv, "bob", "home")
        await befriend(a, b, "alice", "bob")
        await settle(a, b)
        drain(a.presences)
        await inactive(a)
        b.send_presence(pstatus="now")
        await settle(b, a)
        assert from_bob(a) == [("home", "available", "now")]
        await slix_close(a)
        await slix_close(b)

    run(go())
