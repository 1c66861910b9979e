"""Message Carbons (XEP-0280) between real slixmpp sessions: Alice on several resources talks
with Bob. Every missing copy is proven next to a copy that does arrive, so a server that never
copies anything fails too."""
import asyncio
import xml.etree.ElementTree as ET

from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from conftest import (drain, iq_with, jid, next_message, run, settle, slix_client, slix_close,
                      slix_ping)

NS_CARBONS = "urn:xmpp:carbons:2"
NS_FORWARD = "urn:xmpp:forward:0"
NS_HINTS = "urn:xmpp:hints"
USERS = {"alice": None, "bob": None}


async def login(srv, user, resource, carbons=False, priority=None, available=True):
    """A session with the carbons plugin; carbons enabled before its initial presence."""
    c = slix_client(srv, user, resource=resource)
    c.register_plugin("xep_0030")
    c.register_plugin("xep_0280")
    c.presences = asyncio.Queue()
    c.register_handler(Callback("all presence", MatchXPath("{jabber:client}presence"),
                                lambda p: c.presences.put_nowait(p)))
    c.connect(c._mp_address, use_ssl=c._mp_ssl)
    await asyncio.wait_for(c.started.wait(), 20)
    c.auto_authorize = None
    c.auto_subscribe = False
    if carbons:
        await c["xep_0280"].enable(timeout=10)
    if available:
        c.send_presence(ppriority=priority)
    await slix_ping(c)
    return c


def carbon_of(m):
    """(direction, inner <message/> element) of a carbon, or (None, None)."""
    for d in ("received", "sent"):
        inner = m.xml.find(f"{{{NS_CARBONS}}}{d}/{{{NS_FORWARD}}}forwarded/{{jabber:client}}message")
        if inner is not None:
            return d, inner
        if m.xml.find(f"{{{NS_CARBONS}}}{d}") is not None:
            raise AssertionError(f"a carbon without a jabber:client message inside: {m}")
    return None, None


def body_of(inner):
    b = inner.find("{jabber:client}body")
    return b.text if b is not None else None


def send(c, to, body=None, mtype="chat", extra=()):
    m = c.make_message(mto=to, mbody=body, mtype=mtype)
    for x in extra:
        m.append(ET.fromstring(x))
    m.send()


async def expect_carbon(c, direction, body, what):
    m = await next_message(c, what=what)
    d, inner = carbon_of(m)
    assert d == direction, f"{c.boundjid} wanted a <{direction}/> carbon, got {m}"
    assert body_of(inner) == body, f"carbon of the wrong message: {m}"
    return m, inner


def nothing_more(*clients):
    for c in clients:
        left = drain(c.messages)
        assert not left, f"{c.boundjid} got unexpected messages: {[str(m) for m in left]}"


def test_received_and_sent_carbons(make_server):
    srv = make_server(users=USERS)

    async def go():
        a1 = await login(srv, "alice", "desk", carbons=True)
        a2 = await login(srv, "alice", "phone", carbons=True)
        b = await login(srv, "bob", "home")
        # disco#info of the server announces carbons
        info = await a1["xep_0030"].get_info(jid="localhost", timeout=10)
        assert NS_CARBONS in info["disco_info"]["features"], info

        # bob -> alice/desk: desk gets the message, phone a <received/> copy
        send(b, jid("alice", "desk"), "hello desk")
        m = await next_message(a1, what="bob's message")
        assert carbon_of(m) == (None, None) and m["body"] == "hello desk", m
        m, inner = await expect_carbon(a2, "received", "hello desk", "a received carbon")
        assert m["from"] == jid("alice") and m["to"] == jid("alice", "phone"), m
        assert m["type"] == "chat", m
        assert inner.get("from") == jid("bob", "home"), ET.tostring(inner)
        assert inner.get("to") == jid("alice", "desk"), ET.tostring(inner)
        # slixmpp's own parsing of it
        assert a2.boundjid.bare == m["from"].bare
        assert m["carbon_received"]["body"] == "hello desk", m

        # alice/desk -> bob: bob gets it, phone a <sent/> copy, desk nothing back
        send(a1, jid("bob"), "hi bob")
        m = await next_message(b, what="alice's message")
        assert m["body"] == "hi bob", m
        m, inner = await expect_carbon(a2, "sent", "hi bob", "a sent carbon")
        assert m["from"] == jid("alice") and m["to"] == jid("alice", "phone"), m
        assert inner.get("from") == jid("alice", "desk") and inner.get("to") == jid("bob"), m
        assert m["carbon_sent"]["body"] == "hi bob", m

        # a normal message with a body is copied, one without a body (nothing IM in it) is not
        send(b, jid("alice", "desk"), None, mtype="normal", extra=["<x xmlns='urn:example'/>"])
        send(b, jid("alice", "desk"), "normal one", mtype="normal")
        assert (await next_message(a1))["body"] == ""
        assert (await next_message(a1))["body"] == "normal one"
        await expect_carbon(a2, "received", "normal one", "a carbon of a normal message")
        await settle(b, a1, a2)
        nothing_more(a1, a2, b)
        for c in (a1, a2, b):
            await slix_close(c)

    run(go())


def test_not_copied(make_server):
    """Disabled carbons, <private/>, <no-copy/>, errors, headlines, groupchat and forged
    carbons never give copies."""
    srv = make_server(users=USERS)

    async def go():
        a1 = await login(srv, "alice", "desk", carbons=True)
        a2 = await login(srv, "alice", "phone", carbons=True)
        a3 = await login(srv, "alice", "tablet", carbons=True)
        b = await login(srv, "bob", "home")
        await a3["xep_0280"].disable(timeout=10)
        # tablet switched them off, phone still has them
        send(b, jid("alice", "desk"), "one")
        assert (await next_message(a1))["body"] == "one"
        await expect_carbon(a2, "received", "one", "the control carbon")
        await settle(b, a1, a2, a3)
        nothing_more(a1, a2, a3)

        # private and no-copy, both directions
        send(b, jid("alice", "desk"), "secret", extra=[f"<private xmlns='{NS_CARBONS}'/>"])
        send(b, jid("alice", "desk"), "nocopy", extra=[f"<no-copy xmlns='{NS_HINTS}'/>"])
        send(a1, jid("bob", "home"), "out secret", extra=[f"<private xmlns='{NS_CARBONS}'/>"])
        send(a1, jid("bob", "home"), "out nocopy", extra=[f"<no-copy xmlns='{NS_HINTS}'/>"])
        assert [(await next_message(a1))["body"] for _ in range(2)] == ["secret", "nocopy"]
        assert [(await next_message(b))["body"] for _ in range(2)] == ["out secret", "out nocopy"]
        # a forged carbon from bob is passed to desk but not copied again
        send(b, jid("alice", "desk"), None,
             extra=[f"<received xmlns='{NS_CARBONS}'><forwarded xmlns='{NS_FORWARD}'>"
                    "<message xmlns='jabber:client' from='x@localhost/y' type='chat'>"
                    "<body>forged</body></message></forwarded></received>"])
        await next_message(a1, what="the forged carbon")
        # error, groupchat to a full JID, headline to the bare JID (everybody gets it)
        send(b, jid("alice", "desk"), "err", mtype="error")
        send(b, jid("alice"), "news", mtype="headline")
        assert (await next_message(a1))["type"] == "error"
        for c in (a1, a2, a3):
            m = await next_message(c, what="the headline")
            assert m["type"] == "headline" and carbon_of(m) == (None, None), m
        send(a1, jid("bob", "home"), "the end")
        await expect_carbon(a2, "sent", "the end", "the closing sent carbon")
        await settle(b, a1, a2, a3)
        nothing_more(a1, a2, a3)
        for c in (a1, a2, a3, b):
            await slix_close(c)

    run(go())


def test_bare_jid_message_not_duplicated(make_server):
    """XEP-0280 §6 with RFC 6121 §8.5.2: resources of equal top priority get the message itself
    and no carbon; a carbons-enabled resource of lower priority gets a carbon."""
    srv = make_server(users=USERS)

    async def go():
        a1 = await login(srv, "alice", "desk", carbons=True, priority=5)
        a2 = await login(srv, "alice", "laptop", carbons=True, priority=5)
        a3 = await login(srv, "alice", "phone", carbons=True, priority=-1)
        a4 = await login(srv, "alice", "watch", carbons=False, priority=0)
        b = await login(srv, "bob", "home")
        send(b, jid("alice"), "to all of you")
        for c in (a1, a2):
            m = await next_message(c)
            assert carbon_of(m) == (None, None) and m["body"] == "to all of you", m
        await expect_carbon(a3, "received", "to all of you", "a carbon for the low priority")
        await settle(b, a1, a2, a3, a4)
        nothing_more(a1, a2, a3, a4)

        # a message without 'to' is for alice's own bare JID: never a copy back to the sender
        a3.send_message(mto=None, mbody="note to self", mtype="chat")
        for c in (a1, a2):
            assert (await next_message(c))["body"] == "note to self"
        await settle(a3, a1, a2, a4)
        nothing_more(a1, a2, a3, a4)
        for c in (a1, a2, a3, a4, b):
            await slix_close(c)

    run(go())


def test_privacy_list_applies_to_carbons(make_server):
    """A resource whose active privacy list refuses Bob's messages gets no carbon of them."""
    srv = make_server(users=USERS)

    async def go():
        a1 = await login(srv, "alice", "desk", carbons=True)
        a2 = await login(srv, "alice", "phone", carbons=True)
        a3 = await login(srv, "alice", "tablet", carbons=True)
        b = await login(srv, "bob", "home")
        await iq_with(a2, "set",
                      "<query xmlns='jabber:iq:privacy'><list name='nobob'>"
                      "<item type='jid' value='bob@localhost' action='deny' order='1'><message/>"
                      "</item><item action='allow' order='2'/></list></query>").send(timeout=10)
        await iq_with(a2, "set",
                      "<query xmlns='jabber:iq:privacy'><active name='nobob'/></query>"
                      ).send(timeout=10)
        await settle(a2)
        drain(a2.messages)
        send(b, jid("alice", "desk"), "through")
        assert (await next_message(a1))["body"] == "through"
        await expect_carbon(a3, "received", "through", "tablet's carbon")
        await settle(b, a1, a2, a3)
        nothing_more(a1, a2, a3)
        for c in (a1, a2, a3, b):
            await slix_close(c)

    run(go())
