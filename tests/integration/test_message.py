"""Alice and Bob talk through Magpie: RFC 6120/6121 delivery rules and stanza errors."""
import asyncio

import pytest
from slixmpp.exceptions import IqError

from conftest import barrier, next_message, ping_iq, run, slix_close, slix_login


async def no_message(c, seconds=1.0):
    try:
        m = await asyncio.wait_for(c.messages.get(), seconds)
    except asyncio.TimeoutError:
        return
    raise AssertionError(f"{c.boundjid} got an unexpected message: {m}")


def test_full_and_bare_jid_delivery(server):
    async def dialogue():
        alice = await slix_login(server, "alice", resource="home")
        bob_low = await slix_login(server, "bob", mech="SCRAM-SHA-1", resource="low")
        bob_high = await slix_login(server, "bob", mech="SCRAM-SHA-256", resource="high")
        bob_low.send_presence(ppriority=1)
        bob_high.send_presence(ppriority=10)
        await barrier(bob_low, server)
        await barrier(bob_high, server)
        # Presence broadcast to the other resources may arrive; only messages are queued.

        alice.send_message(mto=str(bob_low.boundjid), mbody="to low, by full JID", mtype="chat")
        m = await next_message(bob_low, what="a message to its full JID")
        assert m["body"] == "to low, by full JID", m
        assert m["from"] == alice.boundjid, f"from is {m['from']}, want {alice.boundjid}"
        await no_message(bob_high, 0.5)

        alice.send_message(mto=server.jid("bob"), mbody="to bare", mtype="chat")
        m = await next_message(bob_high, what="a message to bare JID (priority 10)")
        assert m["body"] == "to bare", m
        await no_message(bob_low, 1.0)

        # Bob answers, alice gets it.
        bob_high.send_message(mto=str(alice.boundjid), mbody="hi alice", mtype="chat")
        m = await next_message(alice)
        assert m["body"] == "hi alice" and m["from"] == bob_high.boundjid, m
        for c in (alice, bob_low, bob_high):
            await slix_close(c)
    run(dialogue())


def test_spoofed_from_is_restamped(server):
    async def dialogue():
        alice = await slix_login(server, "alice", resource="a")
        bob = await slix_login(server, "bob", resource="b")
        msg = alice.make_message(mto=str(bob.boundjid), mbody="I am carol, honest",
                                 mtype="chat", mfrom=server.jid("carol") + "/forged")
        msg.send()
        m = await next_message(bob)
        assert m["body"] == "I am carol, honest", m
        assert m["from"] == alice.boundjid, (
            f"spoofed from not corrected: bob sees from={m['from']}, want {alice.boundjid}")
        for c in (alice, bob):
            await slix_close(c)
    run(dialogue())


def test_message_to_unknown_user(server):
    async def dialogue():
        alice = await slix_login(server, "alice")
        alice.send_message(mto=server.jid("nobody"), mbody="anyone?", mtype="chat")
        m = await next_message(alice, what="an error bounce")
        assert m["type"] == "error", f"no error for a message to an unknown user: {m}"
        assert m["error"]["condition"] == "service-unavailable", m
        assert m["from"].bare == server.jid("nobody"), m
        await slix_close(alice)
    run(dialogue())


def test_iq_to_unavailable_full_jid(server):
    async def dialogue():
        alice = await slix_login(server, "alice")
        bob = await slix_login(server, "bob", resource="here")
        iq = ping_iq(alice, server.jid("bob") + "/gone")
        with pytest.raises(IqError) as e:
            await iq.send(timeout=10)
        assert e.value.iq["error"]["condition"] == "service-unavailable", e.value.iq
        # and the same IQ to the resource that is there reaches bob, who answers it
        iq = ping_iq(alice, str(bob.boundjid))
        res = await iq.send(timeout=10)
        assert res["type"] == "result", res
        for c in (alice, bob):
            await slix_close(c)
    run(dialogue())


def test_ping_server(server):
    async def dialogue():
        alice = await slix_login(server, "alice")
        iq = ping_iq(alice, server.domain)
        res = await iq.send(timeout=10)
        assert res["type"] == "result", res
        assert res["from"] == server.domain, res
        await slix_close(alice)
    run(dialogue())


def test_unknown_iq_namespace(server):
    async def dialogue():
        alice = await slix_login(server, "alice")
        iq = alice.make_iq_get(queryxmlns="urn:example:nobody-serves-this", ito=server.domain)
        with pytest.raises(IqError) as e:
            await iq.send(timeout=10)
        assert e.value.iq["error"]["condition"] == "service-unavailable", e.value.iq
        # to one's own bare JID (the server answers for the account)
        iq = alice.make_iq_get(queryxmlns="urn:example:nobody-serves-this",
                               ito=alice.boundjid.bare)
        with pytest.raises(IqError) as e:
            await iq.send(timeout=10)
        assert e.value.iq["error"]["condition"] == "service-unavailable", e.value.iq
        await slix_close(alice)
    run(dialogue())


def test_version_and_disco(server):
    async def dialogue():
        alice = await slix_login(server, "alice")
        iq = alice.make_iq_get(queryxmlns="jabber:iq:version", ito=server.domain)
        res = await iq.send(timeout=10)
        assert res["type"] == "result", res
        assert "Magpie" in str(res) or "magpie" in str(res), f"version answer: {res}"
        iq = alice.make_iq_get(queryxmlns="http://jabber.org/protocol/disco#info",
                               ito=server.domain)
        res = await iq.send(timeout=10)
        assert "urn:xmpp:ping" in str(res), f"disco#info lacks ping: {res}"
        await slix_close(alice)
    run(dialogue())


def test_many_messages_in_order(server):
    async def dialogue():
        alice = await slix_login(server, "alice")
        bob = await slix_login(server, "bob")
        for i in range(200):
            alice.send_message(mto=str(bob.boundjid), mbody=f"n{i}", mtype="chat")
        for i in range(200):
            m = await next_message(bob, what=f"message n{i}")
            assert m["body"] == f"n{i}", f"out of order or lost: got {m['body']} want n{i}"
        for c in (alice, bob):
            await slix_close(c)
    run(dialogue())


def test_escaped_id_and_resource_round_trip(server):
    """Regression: ids and JIDs with XML-special characters come back escaped exactly once
    (the framer hands the router unescaped values)."""
    from conftest import RawClient
    bob = RawClient(server.port)
    bob.login("bob", server.users["bob"], resource="r&amp;'&lt;d&gt;")
    bob.send("<presence/>")
    bob.read_until(r"<presence")
    alice = RawClient(server.port)
    alice.login("alice", server.users["alice"])
    alice.send("<iq type='get' id='a&amp;b&apos;c' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
    reply = alice.read_until(r"<iq[^>]*/?>")
    assert "result" in reply and ("a&amp;b&apos;c" in reply or 'a&amp;b\'c' in reply), reply
    alice.send("<message to='bob@localhost/r&amp;&apos;&lt;d&gt;' id='m&amp;1'><body>x</body></message>")
    got = bob.read_until(r"</message>")
    assert "<body>x</body>" in got, got
    alice.send("<iq type='get' id='q&amp;2' to='bob@localhost/no&amp;such'><ping xmlns='urn:xmpp:ping'/></iq>")
    err = alice.read_until(r"</iq>")
    assert "service-unavailable" in err and "q&amp;2" in err and "no&amp;such" in err, err


def test_idle_streams_wake_up(server):
    """A stream idle long enough to give back its parser and buffers (3 s) carries on as if
    nothing happened, in both directions, over TLS, and closes cleanly."""
    import time
    from conftest import RawClient
    bob = RawClient(server.port)
    bob.login("bob", server.users["bob"], resource="idle")
    bob.send("<presence/>")
    bob.read_until(r"<presence")
    alice = RawClient(server.port)
    alice.login("alice", server.users["alice"])
    alice.send("<presence/>")
    alice.read_until(r"<presence")
    time.sleep(5)
    # bob's stream is asleep: a message must reach it...
    alice.send("<message to='bob@localhost/idle' id='w1'><body>wake up</body></message>")
    got = bob.read_until(r"</message>")
    assert "wake up" in got and "from='alice@localhost/" in got.replace('"', "'"), got
    # ...and the first bytes it sends after sleeping are parsed as before.
    time.sleep(5)
    bob.send("<message to='alice@localhost' type='chat' id='w2'><body>awake</body></message>")
    got = alice.read_until(r"awake</body>.*?</message>")
    assert "from='bob@localhost/idle'" in got.replace('"', "'"), got
    bob.send("</stream:stream>")
    assert "</stream:stream>" in bob.read_until_closed()
