"""Privacy lists (XEP-0016), the blocking command (XEP-0191) and invisibility (XEP-0126), between
real slixmpp sessions of Alice, Bob and Carol. Every block is proven by a stanza that does not
arrive, next to one that still does."""
import asyncio

from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from conftest import (befriend, drain, iq_with, jid, next_of, refused, run, settle, slix_close,
                      slix_login, slix_ping)

NS_PRIVACY = "jabber:iq:privacy"
NS_BLOCKING = "urn:xmpp:blocking"
USERS = {"alice": None, "bob": None, "carol": None}


async def login(srv, user, resource="r", available=True, before_presence=None):
    """A session collecting presence stanzas and IQ pushes; with before_presence, that
    coroutine runs (e.g. activating a list) before initial presence."""
    c = await slix_login(srv, user, resource=resource)
    c.auto_authorize = None
    c.auto_subscribe = False
    c.presences = asyncio.Queue()
    c.pushes = asyncio.Queue()
    c.register_handler(Callback("all presence", MatchXPath("{jabber:client}presence"),
                                lambda p: c.presences.put_nowait(p)))
    for ns, name in ((NS_PRIVACY, "query"), (NS_BLOCKING, "block"), (NS_BLOCKING, "unblock")):
        c.register_handler(Callback(f"push {name}",
                                    MatchXPath(f"{{jabber:client}}iq/{{{ns}}}{name}"),
                                    lambda iq: on_push(c, iq)))
    if before_presence:
        await before_presence(c)
    if available:
        c.send_presence()
    await ping(c)
    return c


def on_push(c, iq):
    if iq["type"] == "set":
        c.pushes.put_nowait(iq)
        iq.reply().send()


ping = slix_ping


async def ok(c, typ, xml):
    return await iq_with(c, typ, xml).send(timeout=10)


def privacy(inner):
    return f"<query xmlns='{NS_PRIVACY}'>{inner}</query>"


def deny_list(name, value, kinds="", typ="jid", order=1):
    return privacy(f"<list name='{name}'><item type='{typ}' value='{value}' action='deny' "
                   f"order='{order}'>{kinds}</item></list>")


async def close(*clients):
    for c in clients:
        await slix_close(c)


def message_from(queue, sender, body=None):
    return [m for m in drain(queue)
            if str(m["from"]).startswith(sender) and (body is None or m["body"] == body)]


def available_from(presences, sender):
    return [p for p in presences
            if str(p["from"]).startswith(sender) and p["type"] not in ("unavailable", "error")
            and p["type"] not in ("subscribe", "subscribed", "unsubscribe", "unsubscribed")]


async def error_of(c, what="an error message"):
    return await next_of(c.messages, lambda m: m["type"] == "error", what)


def test_blocked_message_and_iq(server):
    async def main():
        bob = await login(server, "bob", "home")
        alice = await login(server, "alice", "a")
        carol = await login(server, "carol", "c")
        await ok(bob, "set", deny_list("no-alice", jid("alice"), "<message/><iq/>"))
        await ok(bob, "set", privacy("<active name='no-alice'/>"))
        # Alice's message, to the bare and to the full JID: Bob sees neither, Alice gets
        # service-unavailable for each
        alice.send_message(mto=jid("bob"), mbody="hello bare", mtype="chat")
        err = await error_of(alice)
        assert err["error"]["condition"] == "service-unavailable", err
        alice.send_message(mto=jid("bob", "home"), mbody="hello full", mtype="chat")
        err = await error_of(alice)
        assert err["error"]["condition"] == "service-unavailable", err
        # her IQ to Bob's client is refused by the server, not answered by the client
        assert await refused(_ping_iq(alice, jid("bob", "home"))) == \
            ("cancel", "service-unavailable")
        # Carol is not on the list: her message and ping go through
        carol.send_message(mto=jid("bob"), mbody="from carol", mtype="chat")
        await _ping_iq(carol, jid("bob", "home")).send(timeout=10)
        await settle(alice, carol, bob)
        got = drain(bob.messages)
        assert [str(m["from"]) for m in got] == [jid("carol", "c")], got
        # the list has <message/> and <iq/> only: Bob still writes to Alice
        bob.send_message(mto=jid("alice"), mbody="bob writes", mtype="chat")
        await next_of(alice.messages, lambda m: m["body"] == "bob writes", "bob's message")
        await close(alice, bob, carol)
    run(main())


def _ping_iq(c, to):
    iq = c.make_iq_get(ito=to)
    iq.enable("ping")
    return iq


def test_presence_in_deny(server):
    async def main():
        alice = await login(server, "alice", "a")
        bob = await login(server, "bob", "b")
        await befriend(alice, bob, "alice", "bob")
        await ok(bob, "set", deny_list("quiet", jid("alice"), "<presence-in/>"))
        await ok(bob, "set", privacy("<active name='quiet'/>"))
        await settle(alice, bob)
        drain(bob.presences)
        alice.send_presence(pstatus="busy now", pshow="dnd")
        await settle(alice, bob)
        assert available_from(drain(bob.presences), jid("alice")) == []
        # messages were not on the list
        alice.send_message(mto=jid("bob"), mbody="still here", mtype="chat")
        await next_of(bob.messages, lambda m: m["body"] == "still here", "alice's message")
        # Bob declines the list: the next change of Alice arrives
        await ok(bob, "set", privacy("<active/>"))
        alice.send_presence(pstatus="back")
        p = await next_of(bob.presences, lambda p: str(p["from"]) == jid("alice", "a"),
                          "alice's presence")
        assert p["status"] == "back"
        await close(alice, bob)
    run(main())


INVISIBLE = privacy("<list name='invisible'><item action='deny' order='1'><presence-out/>"
                    "</item></list>")


def test_invisibility(server):
    async def main():
        bob = await login(server, "bob", "b")
        alice = await login(server, "alice", "a")
        carol = await login(server, "carol", "c")
        await befriend(alice, bob, "alice", "bob")
        await befriend(alice, carol, "alice", "carol")
        await close(alice)
        await settle(bob, carol)
        drain(bob.presences)
        drain(carol.presences)

        async def invisible(c):
            await ok(c, "set", INVISIBLE)
            await ok(c, "set", privacy("<active name='invisible'/>"))

        # Alice comes back invisible: her initial presence reaches nobody
        alice = await login(server, "alice", "a", before_presence=invisible)
        await settle(alice, bob, carol)
        assert available_from(drain(bob.presences), jid("alice")) == []
        assert available_from(drain(carol.presences), jid("alice")) == []
        # she still sees them (her probe is answered) ...
        got = available_from(drain(alice.presences), jid("bob"))
        assert got, "the invisible user gets her contacts' presence"
        # ... but a new session of Bob, whose probe asks for hers, gets nothing of Alice
        bob2 = await login(server, "bob", "b2")
        await settle(alice, bob2)
        assert available_from(drain(bob2.presences), jid("alice")) == []
        # a status change stays invisible too
        alice.send_presence(pstatus="hidden")
        await settle(alice, bob, bob2, carol)
        assert available_from(drain(bob.presences), jid("alice")) == []
        # messages flow both ways
        bob.send_message(mto=jid("alice"), mbody="are you there?", mtype="chat")
        await next_of(alice.messages, lambda m: m["body"] == "are you there?", "bob's message")
        alice.send_message(mto=jid("bob"), mbody="yes", mtype="chat")
        await next_of(bob.messages, lambda m: m["body"] == "yes", "alice's message")
        # visible again: declining the list and sending presence reaches everyone
        await ok(alice, "set", privacy("<active/>"))
        alice.send_presence(pstatus="visible")
        for c in (bob, bob2, carol):
            p = await next_of(c.presences, lambda p: str(p["from"]) == jid("alice", "a"),
                              f"alice's presence at {c.boundjid}")
            assert p["status"] == "visible"
        await close(alice, bob, bob2, carol)
    run(main())


def blocklist_of(reply):
    return sorted(i.get("jid") for i in reply.xml.iter(f"{{{NS_BLOCKING}}}item"))


def list_items(reply):
    return [dict(i.attrib, kinds=[c.tag.split("}")[1] for c in i])
            for i in reply.xml.iter(f"{{{NS_PRIVACY}}}item")]


def test_blocking_and_privacy_share_one_store(server):
    async def main():
        a1 = await login(server, "alice", "one")
        a2 = await login(server, "alice", "two")
        # a2 asks for the blocklist: it gets pushes from now on
        assert blocklist_of(await ok(a2, "get", f"<blocklist xmlns='{NS_BLOCKING}'/>")) == []
        await ok(a1, "set", f"<block xmlns='{NS_BLOCKING}'><item jid='Bob@localhost'/></block>")
        push = await next_of(a2.pushes, lambda iq: iq.xml.find(f"{{{NS_BLOCKING}}}block")
                             is not None, "a blocklist push")
        assert blocklist_of(push) == [jid("bob")]
        # the privacy view: a default list with a jid/deny item for everything
        names = await ok(a1, "get", privacy(""))
        default = names.xml.find(f"{{{NS_PRIVACY}}}query/{{{NS_PRIVACY}}}default")
        assert default is not None and default.get("name") == "Blocked contacts", names
        got = await ok(a1, "get", privacy("<list name='Blocked contacts'/>"))
        items = list_items(got)
        assert [(i["type"], i["value"], i["action"], i["kinds"]) for i in items] == \
            [("jid", jid("bob"), "deny", [])], items
        # and back: a privacy client adds Carol to the default list, the blocklist shows her
        await ok(a1, "set", privacy(
            "<list name='Blocked contacts'>"
            f"<item type='jid' value='{jid('bob')}' action='deny' order='1'/>"
            f"<item type='jid' value='{jid('carol')}' action='deny' order='2'/>"
            "<item type='jid' value='dave@localhost' action='deny' order='3'><message/></item>"
            "</list>"))
        assert blocklist_of(await ok(a2, "get", f"<blocklist xmlns='{NS_BLOCKING}'/>")) == \
            [jid("bob"), jid("carol")]
        # the edit reached the blocklist client as pushes too
        await settle(a2)
        pushed = set()
        for iq in drain(a2.pushes):
            pushed |= set(blocklist_of(iq))
        assert jid("carol") in pushed
        # unblock one through XEP-0191: the privacy list loses that item only
        await ok(a1, "set", f"<unblock xmlns='{NS_BLOCKING}'><item jid='{jid('bob')}'/></unblock>")
        items = list_items(await ok(a1, "get", privacy("<list name='Blocked contacts'/>")))
        assert [i["value"] for i in items] == [jid("carol"), "dave@localhost"], items
        # unblock all: the non-blocklist item stays
        await ok(a1, "set", f"<unblock xmlns='{NS_BLOCKING}'/>")
        items = list_items(await ok(a1, "get", privacy("<list name='Blocked contacts'/>")))
        assert [i["value"] for i in items] == ["dave@localhost"], items
        assert blocklist_of(await ok(a2, "get", f"<blocklist xmlns='{NS_BLOCKING}'/>")) == []
        await close(a1, a2)
    run(main())


def test_block_unblock_effects(server):
    async def main():
        alice = await login(server, "alice", "a")
        bob = await login(server, "bob", "b")
        await befriend(alice, bob, "alice", "bob")
        await settle(alice, bob)
        drain(bob.presences)
        await ok(alice, "set", f"<block xmlns='{NS_BLOCKING}'><item jid='{jid('bob')}'/></block>")
        # §3.3: Bob sees Alice go offline
        p = await next_of(bob.presences, lambda p: str(p["from"]) == jid("alice", "a"),
                          "alice's unavailable presence")
        assert p["type"] == "unavailable"
        # Bob's message and IQ do not reach Alice
        bob.send_message(mto=jid("alice"), mbody="blocked?", mtype="chat")
        err = await error_of(bob)
        assert err["error"]["condition"] == "service-unavailable"
        assert await refused(_ping_iq(bob, jid("alice", "a"))) == ("cancel", "service-unavailable")
        # Alice cannot write to Bob either: not-acceptable with the blocking error
        alice.send_message(mto=jid("bob"), mbody="to a blocked one", mtype="chat")
        err = await error_of(alice)
        assert err["error"]["condition"] == "not-acceptable"
        assert err.xml.find(f"{{jabber:client}}error/{{urn:xmpp:blocking:errors}}blocked") \
            is not None, err
        # her presence changes do not reach him
        alice.send_presence(pstatus="away from bob")
        await settle(alice, bob)
        assert available_from(drain(bob.presences), jid("alice")) == []
        assert message_from(alice.messages, jid("bob"), "blocked?") == []
        # unblock: Bob gets her presence back and his messages arrive
        await ok(alice, "set", f"<unblock xmlns='{NS_BLOCKING}'><item jid='{jid('bob')}'/>"
                 "</unblock>")
        p = await next_of(bob.presences, lambda p: str(p["from"]) == jid("alice", "a"),
                          "alice's presence after unblock")
        assert p["type"] not in ("unavailable", "error")
        bob.send_message(mto=jid("alice"), mbody="unblocked", mtype="chat")
        await next_of(alice.messages, lambda m: m["body"] == "unblocked", "bob's message")
        alice.send_message(mto=jid("bob"), mbody="hi again", mtype="chat")
        await next_of(bob.messages, lambda m: m["body"] == "hi again", "alice's message")
        await close(alice, bob)
    run(main())


def test_offline_message_of_blocked_not_stored(server):
    async def main():
        alice = await login(server, "alice", "a")
        await ok(alice, "set", f"<block xmlns='{NS_BLOCKING}'><item jid='{jid('bob')}'/></block>")
        await close(alice)
        bob = await login(server, "bob", "b")
        carol = await login(server, "carol", "c")
        bob.send_message(mto=jid("alice"), mbody="from bob", mtype="chat")
        err = await error_of(bob)
        assert err["error"]["condition"] == "service-unavailable"
        carol.send_message(mto=jid("alice"), mbody="from carol", mtype="chat")
        await settle(bob, carol)
        assert message_from(carol.messages, "") == []  # carol's was stored, no error
        alice = await login(server, "alice", "a")
        await next_of(alice.messages, lambda m: m["body"] == "from carol", "carol's message")
        await settle(alice)
        assert message_from(alice.messages, jid("bob")) == []
        await close(alice, bob, carol)
    run(main())


def test_active_list_per_session_and_default(server):
    async def main():
        a1 = await login(server, "alice", "one")
        a2 = await login(server, "alice", "two")
        bob = await login(server, "bob", "b")
        await ok(a1, "set", deny_list("no-bob", jid("bob"), "<message/>"))
        await ok(a1, "set", privacy("<list name='open'><item action='allow' order='1'/></list>"))
        await ok(a1, "set", privacy("<default name='no-bob'/>"))
        await ok(a1, "set", privacy("<active name='open'/>"))
        # the names show this session's active list and the default
        names = (await ok(a1, "get", privacy(""))).xml
        assert names.find(f"{{{NS_PRIVACY}}}query/{{{NS_PRIVACY}}}active").get("name") == "open"
        names2 = (await ok(a2, "get", privacy(""))).xml
        assert names2.find(f"{{{NS_PRIVACY}}}query/{{{NS_PRIVACY}}}active") is None
        assert names2.find(f"{{{NS_PRIVACY}}}query/{{{NS_PRIVACY}}}default").get("name") == \
            "no-bob"
        # a1 applies 'open', a2 the default
        bob.send_message(mto=jid("alice", "one"), mbody="to one", mtype="chat")
        await next_of(a1.messages, lambda m: m["body"] == "to one", "message to one")
        bob.send_message(mto=jid("alice", "two"), mbody="to two", mtype="chat")
        err = await error_of(bob)
        assert err["error"]["condition"] == "service-unavailable"
        await settle(bob, a2)
        assert message_from(a2.messages, jid("bob")) == []
        # the bare JID: the resources that allow it get it
        bob.send_message(mto=jid("alice"), mbody="to bare", mtype="chat")
        await next_of(a1.messages, lambda m: m["body"] == "to bare", "bare message at one")
        await settle(bob, a2)
        assert message_from(a2.messages, jid("bob")) == []
        assert message_from(bob.messages, "") == []  # delivered to one: no error
        await close(a1, a2, bob)
    run(main())


def test_list_push_to_other_resource(server):
    async def main():
        a1 = await login(server, "alice", "one")
        a2 = await login(server, "alice", "two")
        await ok(a1, "set", deny_list("work", jid("bob"), "<iq/>"))
        for c in (a1, a2):
            push = await next_of(c.pushes, lambda iq: iq.xml.find(f"{{{NS_PRIVACY}}}query")
                                 is not None, f"privacy push at {c.boundjid}")
            lst = push.xml.find(f"{{{NS_PRIVACY}}}query/{{{NS_PRIVACY}}}list")
            assert lst is not None and lst.get("name") == "work"
            assert list(lst) == [], "a push names the list, without its items"
        # removal is pushed too
        await ok(a1, "set", privacy("<list name='work'/>"))
        push = await next_of(a2.pushes, lambda iq: True, "removal push")
        assert push.xml.find(f"{{{NS_PRIVACY}}}query/{{{NS_PRIVACY}}}list").get("name") == "work"
        assert await refused(iq_with(a2, "get", privacy("<list name='work'/>"))) == \
            ("cancel", "item-not-found")
        await close(a1, a2)
    run(main())


def test_lists_survive_restart(make_server):
    server = make_server(users=USERS)

    async def before():
        alice = await login(server, "alice", "a")
        await ok(alice, "set", f"<block xmlns='{NS_BLOCKING}'><item jid='{jid('bob')}'/></block>")
        await ok(alice, "set", INVISIBLE)
        await close(alice)
    run(before())
    assert server.stop() == 0
    server.start()

    async def after():
        alice = await login(server, "alice", "a")
        bob = await login(server, "bob", "b")
        names = (await ok(alice, "get", privacy(""))).xml
        q = names.find(f"{{{NS_PRIVACY}}}query")
        assert q.find(f"{{{NS_PRIVACY}}}default").get("name") == "Blocked contacts"
        assert sorted(l.get("name") for l in q.findall(f"{{{NS_PRIVACY}}}list")) == \
            ["Blocked contacts", "invisible"]
        assert blocklist_of(await ok(alice, "get", f"<blocklist xmlns='{NS_BLOCKING}'/>")) == \
            [jid("bob")]
        bob.send_message(mto=jid("alice"), mbody="after restart", mtype="chat")
        err = await error_of(bob)
        assert err["error"]["condition"] == "service-unavailable"
        await settle(alice)
        assert message_from(alice.messages, jid("bob")) == []
        await close(alice, bob)
    run(after())


def test_bad_requests(server):
    async def main():
        a1 = await login(server, "alice", "one")
        a2 = await login(server, "alice", "two")
        bob = await login(server, "bob", "b")
        item = "<item action='deny' order='1'><message/></item>"
        # two lists in one set, a get of two lists
        assert await refused(iq_with(a1, "set", privacy(
            f"<list name='x'>{item}</list><list name='y'>{item}</list>"))) == \
            ("modify", "bad-request")
        assert await refused(iq_with(a1, "get", privacy("<list name='x'/><list name='y'/>"))) \
            == ("modify", "bad-request")
        # malformed lists
        for bad in ("<item action='deny'/>", "<item action='maybe' order='1'/>",
                    "<item type='jid' value='@@' action='deny' order='1'/>",
                    "<item action='deny' order='1'/><item action='allow' order='1'/>"):
            assert await refused(iq_with(a1, "set", privacy(f"<list name='x'>{bad}</list>"))) \
                == ("modify", "bad-request"), bad
        # unknown lists
        assert await refused(iq_with(a1, "set", privacy("<active name='nope'/>"))) == \
            ("cancel", "item-not-found")
        assert await refused(iq_with(a1, "set", privacy("<default name='nope'/>"))) == \
            ("cancel", "item-not-found")
        assert await refused(iq_with(a1, "get", privacy("<list name='nope'/>"))) == \
            ("cancel", "item-not-found")
        assert await refused(iq_with(a1, "set", privacy("<list name='nope'/>"))) == \
            ("cancel", "item-not-found")
        # a default list that a2 applies cannot be removed, nor the default changed, by a1
        await ok(a1, "set", privacy(f"<list name='x'>{item}</list>"))
        await ok(a1, "set", privacy(f"<list name='z'>{item}</list>"))
        await ok(a1, "set", privacy("<default name='x'/>"))
        assert await refused(iq_with(a1, "set", privacy("<list name='x'/>"))) == \
            ("cancel", "conflict")
        assert await refused(iq_with(a1, "set", privacy("<default name='z'/>"))) == \
            ("cancel", "conflict")
        # nor a list another session has active
        await ok(a2, "set", privacy("<active name='z'/>"))
        assert await refused(iq_with(a1, "set", privacy("<list name='z'/>"))) == \
            ("cancel", "conflict")
        # another account's lists are not ours
        assert await refused(iq_with(bob, "get", privacy(""), to=jid("alice"))) == \
            ("auth", "forbidden")
        # blocking: nothing to block, a malformed JID
        assert await refused(iq_with(a1, "set", f"<block xmlns='{NS_BLOCKING}'/>")) == \
            ("modify", "bad-request")
        assert await refused(iq_with(a1, "set", f"<block xmlns='{NS_BLOCKING}'><item "
                                     "jid='a@b@c'/></block>")) == ("modify", "jid-malformed")
        # once a2 is gone, a1 may remove the default list
        await close(a2)
        await ok(a1, "set", privacy("<list name='x'/>"))
        names = (await ok(a1, "get", privacy(""))).xml
        assert names.find(f"{{{NS_PRIVACY}}}query/{{{NS_PRIVACY}}}default") is None
        await close(a1, bob)
    run(main())


def test_limits_from_config(make_server):
    """privacy.max_items and privacy.max_lists: over the limit is not-acceptable and nothing
    changes; at the limit works."""
    server = make_server(users=USERS, config={"privacy": {"max_items": 2, "max_lists": 2}})

    async def main():
        alice = await login(server, "alice", "a")
        two = "".join(f"<item type='jid' value='u{i}@localhost' action='deny' order='{i}'/>"
                      for i in (1, 2))
        three = two + "<item type='jid' value='u3@localhost' action='deny' order='3'/>"
        await ok(alice, "set", privacy(f"<list name='one'>{two}</list>"))
        assert await refused(iq_with(alice, "set", privacy(f"<list name='big'>{three}</list>"))) \
            == ("modify", "not-acceptable")
        await ok(alice, "set", privacy(f"<list name='two'>{two}</list>"))
        assert await refused(iq_with(alice, "set", privacy(f"<list name='third'>{two}</list>"))) \
            == ("modify", "not-acceptable")
        names = (await ok(alice, "get", privacy(""))).xml
        assert sorted(l.get("name") for l in names.findall(
            f"{{{NS_PRIVACY}}}query/{{{NS_PRIVACY}}}list")) == ["one", "two"]
        # the blocklist is the default list: two blocked JIDs fit, a third does not
        await ok(alice, "set", privacy("<default name='one'/>"))
        assert await refused(iq_with(alice, "set", f"<block xmlns='{NS_BLOCKING}'><item "
                                     f"jid='{jid('bob')}'/></block>")) == \
            ("modify", "not-acceptable")
        assert blocklist_of(await ok(alice, "get", f"<blocklist xmlns='{NS_BLOCKING}'/>")) == \
            ["u1@localhost", "u2@localhost"]
        await close(alice)
    run(main())
