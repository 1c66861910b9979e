"""Push notifications (XEP-0357). Alice's phone registers an app server; while Alice is away,
what Bob writes her makes the server publish a summary to the app server. The app server here
is a slixmpp client (app@localhost/push): no federation yet, and an IQ to a bare JID would be
the server's to answer, so its full JID is the registered jid."""
import asyncio
import re
import time

from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from conftest import RawClient, iq_with, refused, run, slix_client, slix_close, slix_login, \
    slix_ping

NS_PUSH = "urn:xmpp:push:0"
NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NS_DATA = "jabber:x:data"
NS_SM = "urn:xmpp:sm:3"
APP = "app@localhost/push"
USERS = {"alice": None, "bob": None, "app": None}
MODULES = ["ping", "disco", "push"]


def push_server(make_server, push=None, **kw):
    cfg = {"modules": MODULES, "push": {"min_interval_ms": 0, **(push or {})}}
    cfg.update(kw)
    return make_server(users=USERS, config=cfg)


def form_fields(x):
    out = {}
    for f in x.findall(f"{{{NS_DATA}}}field"):
        out[f.get("var")] = [v.text or "" for v in f.findall(f"{{{NS_DATA}}}value")]
    return {k: v[0] if len(v) == 1 else v for k, v in out.items()}


async def app_server(srv, fail=()):
    """The app server: records each publish; answers item-not-found for nodes in fail."""
    c = slix_client(srv, "app", resource="push")
    c.pushes = asyncio.Queue()
    c.fail = set(fail)

    def on_publish(iq):
        if iq["type"] != "set":
            return
        ps = iq.xml.find(f"{{{NS_PUBSUB}}}pubsub")
        pub = ps.find(f"{{{NS_PUBSUB}}}publish")
        x = pub.find(f"{{{NS_PUBSUB}}}item/{{{NS_PUSH}}}notification/{{{NS_DATA}}}x")
        opts = ps.find(f"{{{NS_PUBSUB}}}publish-options/{{{NS_DATA}}}x")
        c.pushes.put_nowait({
            "from": iq["from"].full, "node": pub.get("node"), "summary": form_fields(x),
            "options": form_fields(opts) if opts is not None else None,
        })
        if pub.get("node") in c.fail:
            r = iq.reply(clear=True)
            r["type"] = "error"
            r["error"]["type"] = "cancel"
            r["error"]["condition"] = "item-not-found"
            r.send()
        else:
            iq.reply(clear=True).send()
    c.register_handler(Callback("publish", MatchXPath(f"{{jabber:client}}iq/{{{NS_PUBSUB}}}pubsub"),
                                on_publish))
    c.connect(c._mp_address, use_ssl=c._mp_ssl)
    await asyncio.wait_for(c.started.wait(), 20)
    return c


def enable_xml(node, jid=APP, options=None):
    form = ""
    if options is not None:
        form = (f"<x xmlns='{NS_DATA}' type='submit'><field var='FORM_TYPE'><value>"
                "http://jabber.org/protocol/pubsub#publish-options</value></field>"
                + "".join(f"<field var='{k}'><value>{v}</value></field>"
                          for k, v in options.items()) + "</x>")
    return f"<enable xmlns='{NS_PUSH}' jid='{jid}' node='{node}'>{form}</enable>"


async def register(srv, *enables, disable=()):
    """Alice's phone enables (and disables) registrations, then goes away."""
    alice = await slix_login(srv, "alice", resource="phone")
    for e in enables:
        await iq_with(alice, "set", e).send(timeout=10)
    for d in disable:
        await iq_with(alice, "set", d).send(timeout=10)
    await slix_close(alice)


async def next_push(app, timeout=10):
    try:
        return await asyncio.wait_for(app.pushes.get(), timeout)
    except asyncio.TimeoutError:
        raise AssertionError(f"no push within {timeout}s") from None


async def no_push(app, seconds=1.5):
    await asyncio.sleep(seconds)
    await slix_ping(app)
    assert app.pushes.empty(), f"unexpected push: {app.pushes.get_nowait()}"


def say(bob, body=None, extra=""):
    m = bob.make_message(mto="alice@localhost", mbody=body, mtype="chat")
    if extra:
        import xml.etree.ElementTree as ET
        m.append(ET.fromstring(extra))
    m.send()


def test_offline_message_pushes_a_summary_without_body(make_server):
    srv = push_server(make_server)

    async def scenario():
        app = await app_server(srv)
        await register(srv, enable_xml("n1", options={"secret": "eruio234vzxc2kla-91"}))
        bob = await slix_login(srv, "bob", resource="desk")
        # a chat state alone wakes nobody
        say(bob, extra="<composing xmlns='http://jabber.org/protocol/chatstates'/>")
        await slix_ping(bob)
        say(bob, "Wherefore art thou?")
        p = await next_push(app)
        assert p["from"] == "alice@localhost"
        assert p["node"] == "n1"
        assert p["summary"]["FORM_TYPE"] == "urn:xmpp:push:summary"
        assert p["summary"]["message-count"] == "1"  # the chat state was not counted
        assert p["summary"]["last-message-sender"] == "bob@localhost/desk"
        assert "last-message-body" not in p["summary"]
        assert p["options"]["secret"] == "eruio234vzxc2kla-91"
        assert p["options"]["FORM_TYPE"] == "http://jabber.org/protocol/pubsub#publish-options"
        say(bob, "Deny thy father")
        p = await next_push(app)
        assert p["summary"]["message-count"] == "2"
        # Alice comes back, reads, leaves: the count starts again
        alice = await slix_login(srv, "alice", resource="phone")
        alice.send_presence()
        await slix_ping(alice)
        await slix_close(alice)
        say(bob, "and refuse thy name")
        p = await next_push(app)
        assert p["summary"]["message-count"] == "1"
        await no_push(app, 0.5)
        for c in (bob, app):
            await slix_close(c)
    run(scenario())


def test_body_only_when_allowed(make_server):
    """By default nobody gets bodies; a registration asking for them (include-body) does, and
    the field is not passed on; with push.body_opt_in off it does not; push.include_body
    sends them to everyone."""
    for push, opt_in, want in (({}, False, False), ({}, True, True),
                               ({"body_opt_in": False}, True, False),
                               ({"include_body": True}, False, True)):
        srv = push_server(make_server, push=push)

        async def scenario():
            app = await app_server(srv)
            opts = {"include-body": "true"} if opt_in else None
            await register(srv, enable_xml("n1", options=opts))
            bob = await slix_login(srv, "bob", resource="desk")
            say(bob, "O Romeo, Romeo")
            p = await next_push(app)
            assert p["summary"].get("last-message-body") == ("O Romeo, Romeo" if want else None), \
                (push, opt_in, p)
            assert p["options"] is None, p  # nothing left for the app server in that form
            for c in (bob, app):
                await slix_close(c)
        run(scenario())
        srv.stop()


def test_disable_stops_pushes(make_server):
    srv = push_server(make_server)

    async def scenario():
        app = await app_server(srv)
        await register(srv, enable_xml("n1"), enable_xml("n2"))
        bob = await slix_login(srv, "bob", resource="desk")
        say(bob, "one")
        got = {(await next_push(app))["node"], (await next_push(app))["node"]}
        assert got == {"n1", "n2"}
        await register(srv, disable=[f"<disable xmlns='{NS_PUSH}' jid='{APP}' node='n1'/>"])
        say(bob, "two")
        assert (await next_push(app))["node"] == "n2"
        await no_push(app, 1.0)
        await register(srv, disable=[f"<disable xmlns='{NS_PUSH}' jid='{APP}'/>"])
        say(bob, "three")
        await no_push(app)
        # still alive: a new registration gets the next one
        await register(srv, enable_xml("n3"))
        say(bob, "four")
        assert (await next_push(app))["node"] == "n3"
        for c in (bob, app):
            await slix_close(c)
    run(scenario())


def test_error_from_app_server_disables(make_server):
    """§6: the app server answers item-not-found for n1: that registration is gone, n2 stays."""
    srv = push_server(make_server)

    async def scenario():
        app = await app_server(srv, fail={"n1"})
        await register(srv, enable_xml("n1"), enable_xml("n2"))
        bob = await slix_login(srv, "bob", resource="desk")
        say(bob, "one")
        got = {(await next_push(app))["node"], (await next_push(app))["node"]}
        assert got == {"n1", "n2"}
        await slix_ping(app)
        await slix_ping(bob)
        say(bob, "two")
        assert (await next_push(app))["node"] == "n2"
        await no_push(app, 1.0)
        for c in (bob, app):
            await slix_close(c)
    run(scenario())
    assert "registration of alice@localhost removed" in srv.log()


def test_registrations_survive_a_restart(make_server):
    srv = push_server(make_server)
    run(register(srv, enable_xml("n1", options={"secret": "s3"})))
    srv.stop()
    srv.start()

    async def scenario():
        app = await app_server(srv)
        bob = await slix_login(srv, "bob", resource="desk")
        say(bob, "still there?")
        p = await next_push(app)
        assert (p["node"], p["options"]["secret"]) == ("n1", "s3")
        for c in (bob, app):
            await slix_close(c)
    run(scenario())


def test_bursts_are_coalesced(make_server):
    srv = push_server(make_server, push={"min_interval_ms": 2000})

    async def scenario():
        app = await app_server(srv)
        await register(srv, enable_xml("n1"))
        bob = await slix_login(srv, "bob", resource="desk")
        say(bob, "a")
        t0 = time.monotonic()
        assert (await next_push(app))["summary"]["message-count"] == "1"
        for b in ("b", "c", "d"):
            say(bob, b)
        await slix_ping(bob)
        p = await next_push(app, timeout=15)
        assert time.monotonic() - t0 >= 1.5, "the second push came before the interval"
        assert p["summary"]["message-count"] == "4"  # b, c and d in one push
        await no_push(app, 2.5)
        for c in (bob, app):
            await slix_close(c)
    run(scenario())


def test_stream_management_pending_pushes(make_server):
    """Alice's connection dies with stream management on: the session waits for resumption
    and what Bob writes meanwhile is queued for it, which wakes the phone."""
    srv = push_server(make_server, sm={"resume_timeout": 60})

    async def scenario():
        app = await app_server(srv)
        a = RawClient(srv.port)
        a.login("alice", srv.users["alice"], "phone")
        a.send(f"<iq type='set' id='e1'>{enable_xml('n1')}</iq>")
        a.read_until(r"<iq[^>]*id=['\"]e1['\"][^>]*type=['\"]result['\"]|"
                     r"<iq[^>]*type=['\"]result['\"][^>]*id=['\"]e1['\"]")
        a.send("<presence/>")
        a.send(f"<enable xmlns='{NS_SM}' resume='true'/>")
        a.read_until(r"<enabled[^>]*/>")
        a.close()  # TCP dies, no </stream:stream>
        deadline = time.monotonic() + 10
        while "waits 60 s for resumption" not in srv.log():
            assert time.monotonic() < deadline, "the session did not wait for resumption"
            await asyncio.sleep(0.1)
        bob = await slix_login(srv, "bob", resource="desk")
        say(bob, "are you there?")
        p = await next_push(app)
        assert (p["node"], p["summary"]["message-count"]) == ("n1", "1")
        for c in (bob, app):
            await slix_close(c)
    run(scenario())


def test_refused_requests(make_server):
    srv = push_server(make_server, push={"max_registrations": 2})

    async def scenario():
        alice = await slix_login(srv, "alice", resource="phone", plugins=["xep_0030"])
        assert await refused(iq_with(alice, "set", f"<enable xmlns='{NS_PUSH}' jid='{APP}'/>")) \
            == ("modify", "bad-request")
        assert await refused(iq_with(alice, "set", f"<disable xmlns='{NS_PUSH}'/>")) \
            == ("modify", "bad-request")
        assert await refused(iq_with(alice, "set", enable_xml("n1"), to="bob@localhost")) \
            == ("auth", "forbidden")
        form = (f"<enable xmlns='{NS_PUSH}' jid='{APP}' node='n'><x xmlns='{NS_DATA}' "
                "type='submit'><field var='FORM_TYPE'><value>urn:other</value></field></x>"
                "</enable>")
        assert await refused(iq_with(alice, "set", form)) == ("modify", "bad-request")
        await iq_with(alice, "set", enable_xml("n1")).send(timeout=10)
        await iq_with(alice, "set", enable_xml("n2")).send(timeout=10)
        await iq_with(alice, "set", enable_xml("n2")).send(timeout=10)  # the same again: fine
        assert await refused(iq_with(alice, "set", enable_xml("n3"))) \
            == ("wait", "resource-constraint")
        info = await alice["xep_0030"].get_info(jid="localhost", timeout=10)
        assert NS_PUSH in info["disco_info"]["features"]
        # XEP-0357 §5: the account's own bare JID says so too (where Conversations looks)
        info = await alice["xep_0030"].get_info(jid=alice.boundjid.bare, timeout=10)
        assert NS_PUSH in info["disco_info"]["features"]
        await slix_close(alice)
    run(scenario())


def test_room_message_for_an_offline_member(make_server):
    """Bob talks in a members-only room Alice is a member of while she is offline: the MUC
    service tells the push module, and Alice's app server gets a summary naming the room."""
    srv = push_server(make_server, modules=MODULES + ["muc"])
    room = "balcony@conference.localhost"
    muc = "http://jabber.org/protocol/muc"

    async def scenario():
        app = await app_server(srv)
        await register(srv, enable_xml("n1"))
        b = RawClient(srv.port)
        b.login("bob", srv.users["bob"], "desk")
        b.send(f"<presence to='{room}/bob'><x xmlns='{muc}'/></presence>")
        b.read_until(r"status code=['\"]201['\"]")
        b.send(f"<iq type='set' id='cfg' to='{room}'><query xmlns='{muc}#owner'>"
               f"<x xmlns='{NS_DATA}' type='submit'><field var='FORM_TYPE'><value>"
               f"{muc}#roomconfig</value></field><field var='muc#roomconfig_membersonly'>"
               "<value>1</value></field></x></query></iq>")
        b.read_until(r"<iq[^>]*id=['\"]cfg['\"][^>]*>|<iq[^>]*type=['\"]result['\"][^>]*"
                     r"id=['\"]cfg['\"]")
        b.send(f"<iq type='set' id='mem' to='{room}'><query xmlns='{muc}#admin'>"
               "<item affiliation='member' jid='alice@localhost'/></query></iq>")
        reply = b.read_until(r"<iq[^>]*id=['\"]mem['\"].*?(?:/>|</iq>)")
        assert "type='result'" in reply or 'type="result"' in reply, reply
        await no_push(app, 0.5)
        b.send(f"<message to='{room}' type='groupchat'><body>Who's there?</body></message>")
        p = await next_push(app)
        assert p["from"] == "alice@localhost"
        assert p["summary"]["message-count"] == "1"
        assert p["summary"]["last-message-sender"].startswith(room)
        assert "last-message-body" not in p["summary"]
        b.close()
        await slix_close(app)
    run(scenario())


def test_long_message_after_restart_pushes_its_body(make_server):
    """Regression: after a restart the registrations are read from storage when the first
    message comes; reading them reset the arena the message was parsed into, and a message too
    large for one arena block was read after it was freed."""
    srv = push_server(make_server, push={"include_body": True})
    run(register(srv, enable_xml("n1")))
    srv.stop()
    srv.start()
    body = "Romeo " * 1500

    async def scenario():
        app = await app_server(srv)
        bob = await slix_login(srv, "bob", resource="desk")
        say(bob, body)
        p = await next_push(app)
        assert p["summary"]["message-count"] == "1"
        assert p["summary"]["last-message-body"] == body[:1024]
        await slix_close(bob)
        await slix_close(app)

    run(scenario())


def test_large_registrations_are_refused(make_server):
    """A registration (its node and publish-options form) is stored and sent with every push:
    push.max_registration_size bounds it."""
    srv = push_server(make_server, push={"max_registration_size": 1024})

    async def scenario():
        alice = await slix_login(srv, "alice", resource="phone")
        assert await refused(iq_with(alice, "set", enable_xml("n" * 1100))) \
            == ("modify", "not-acceptable")
        assert await refused(iq_with(alice, "set", enable_xml("n1", options={
            "secret": "s" * 1100}))) == ("modify", "not-acceptable")
        await iq_with(alice, "set", enable_xml("n1", options={"secret": "s" * 100})) \
            .send(timeout=10)
        await slix_close(alice)

    run(scenario())
