"""Personal eventing (XEP-0163) on every account: notifications go to the owner's resources and
to contacts whose session advertised NODE+notify in its entity capabilities (XEP-0115), never
to contacts that did not nor to strangers; the last item comes when a contact's +notify becomes
known; mood (XEP-0107), avatar metadata (XEP-0084) and nickname (XEP-0172) through slixmpp's
own plugins; XEP-0223 private data with publish-options."""
import asyncio
import xml.etree.ElementTree as ET

from conftest import befriend, jid, next_of, run, settle, slix_close, slix_login
from test_pubsub import EVENT, PS, app_error, event_of, form, is_event, nothing

MOOD = "http://jabber.org/protocol/mood"
NICK = "http://jabber.org/protocol/nick"
META = "urn:xmpp:avatar:metadata"
INFO = "http://jabber.org/protocol/disco#info"

# with +notify for mood, nick and avatar metadata (the plugins register their interest)
NOTIFY = ("xep_0004", "xep_0030", "xep_0060", "xep_0115", "xep_0163", "xep_0107", "xep_0084",
          "xep_0172")
# caps, but no +notify at all
PLAIN = ("xep_0004", "xep_0030", "xep_0060", "xep_0115")


async def online(server, user, plugins, resource=None):
    """Logged in and available with its caps; sessions with one ver share one query, so the
    wait is for the server to have asked and been answered, whoever it asked."""
    c = await slix_login(server, user, plugins=plugins, resource=resource)
    await caps_presence(c)
    return c


async def caps_presence(c):
    # the plugin adds <c/> only once it has computed its ver (asynchronously)
    await c["xep_0115"].update_caps(broadcast=False)
    c.send_presence()
    await settle(c)
    await asyncio.sleep(0.5)
    await settle(c)


def mood_of(m):
    ev = event_of(m)
    item = ev.find(f"{{{EVENT}}}items/{{{EVENT}}}item") if ev is not None else None
    mood = item.find(f"{{{MOOD}}}mood") if item is not None else None
    return [c.tag.split("}")[1] for c in mood if c.tag != f"{{{MOOD}}}text"] if mood is not None \
        else None


def test_notify_only_to_contacts_that_asked(make_server):
    srv = make_server(users={u: None for u in ("alice", "bob", "carol", "dave")})

    async def go():
        alice = await online(srv, "alice", NOTIFY, resource="a1")
        alice2 = await online(srv, "alice", PLAIN, resource="a2")
        bob = await online(srv, "bob", NOTIFY)
        carol = await online(srv, "carol", PLAIN)
        dave = await online(srv, "dave", NOTIFY)
        await befriend(alice, bob, "alice", "bob")
        await befriend(alice, carol, "alice", "carol")
        await settle(alice, alice2, bob, carol, dave)
        for c in (alice, alice2, bob, carol, dave):
            while not c.messages.empty():
                c.messages.get_nowait()
        await alice["xep_0107"].publish_mood("happy", text="sunny day")
        m = await next_of(bob.messages, is_event("items", MOOD), "bob's mood notification")
        assert m["from"] == jid("alice")
        assert mood_of(m) == ["happy"]
        # the owner's own resource that asked gets it too
        m = await next_of(alice.messages, is_event("items", MOOD), "alice's own notification")
        assert mood_of(m) == ["happy"]
        # a contact without +notify, a stranger with it, and the owner's resource without it: no
        await nothing(carol, is_event("items", MOOD))
        await nothing(dave, is_event("items", MOOD))
        await nothing(alice2, is_event("items", MOOD))
        # the stranger may not read the node either (default access model: presence)
        assert await app_error(dave["xep_0060"].get_items(jid("alice"), MOOD)) == (
            "auth", "not-authorized", "presence-subscription-required")
        items = await carol["xep_0060"].get_items(jid("alice"), MOOD)
        assert len(items["pubsub"]["items"]) == 1
        # nickname and avatar metadata work the same way
        await alice["xep_0172"].publish_nick("Alice in Wonderland")
        m = await next_of(bob.messages, is_event("items", NICK), "the nickname")
        assert m.xml.find(f".//{{{NICK}}}nick").text == "Alice in Wonderland"
        await alice["xep_0084"].publish_avatar_metadata(
            items=[{"id": "a" * 40, "type": "image/png", "bytes": "1234", "height": "64",
                    "width": "64"}])
        m = await next_of(bob.messages, is_event("items", META), "the avatar metadata")
        info = m.xml.find(f".//{{{META}}}info")
        assert info.get("id") == "a" * 40 and info.get("bytes") == "1234"
        await nothing(carol, lambda m: event_of(m) is not None)
        # retraction reaches the same people
        await alice["xep_0107"].stop()
        m = await next_of(bob.messages, is_event("items", MOOD), "the mood cleared")
        for c in (alice, alice2, bob, carol, dave):
            await slix_close(c)
    run(go())


def test_last_item_when_contact_comes_online(make_server):
    srv = make_server(users={u: None for u in ("alice", "bob", "carol")})

    async def go():
        alice = await online(srv, "alice", NOTIFY)
        bob = await online(srv, "bob", NOTIFY)
        carol = await online(srv, "carol", PLAIN)
        await befriend(alice, bob, "alice", "bob")
        await befriend(alice, carol, "alice", "carol")
        await slix_close(bob)
        await slix_close(carol)
        await alice["xep_0107"].publish_mood("excited")
        await settle(alice)
        # bob comes back: his +notify becomes known and he gets the last mood
        bob = await slix_login(srv, "bob", plugins=NOTIFY)
        await bob["xep_0115"].update_caps(broadcast=False)
        bob.send_presence()
        m = await next_of(bob.messages, is_event("items", MOOD), "the last mood")
        assert m["from"] == jid("alice")
        assert mood_of(m) == ["excited"]
        carol = await online(srv, "carol", PLAIN)
        await nothing(carol, is_event("items", MOOD))
        for c in (alice, bob, carol):
            await slix_close(c)
    run(go())


def test_explicit_subscription_and_xep0223(make_server):
    srv = make_server(users={u: None for u in ("alice", "bob")})

    async def go():
        alice = await online(srv, "alice", PLAIN)
        bob = await online(srv, "bob", PLAIN)
        await befriend(alice, bob, "alice", "bob")
        # an explicit subscription gets notifications without +notify
        await alice["xep_0060"].publish(jid("alice"), "urn:example:blog",
                                        payload=ET.fromstring("<post xmlns='urn:example:blog'>"
                                                              "first</post>"))
        sub = await bob["xep_0060"].subscribe(jid("alice"), "urn:example:blog")
        assert sub["pubsub"]["subscription"]["subscription"] == "subscribed"
        # the last item came on subscription
        m = await next_of(bob.messages, is_event("items", "urn:example:blog"), "the last post")
        assert m.xml.find(".//{urn:example:blog}post").text == "first"
        await alice["xep_0060"].publish(jid("alice"), "urn:example:blog",
                                        payload=ET.fromstring("<post xmlns='urn:example:blog'>"
                                                              "second</post>"))
        m = await next_of(bob.messages, is_event("items", "urn:example:blog"), "the next post")
        assert m.xml.find(".//{urn:example:blog}post").text == "second"
        # nobody but the owner creates PEP nodes in an account
        assert (await app_error(bob["xep_0060"].publish(
            jid("alice"), "urn:example:other",
            payload=ET.fromstring("<x xmlns='urn:example:other'/>"))))[1] == "forbidden"
        # XEP-0223: private data through publish-options
        opts = form(alice, PS + "#publish-options", persist_items="true",
                    access_model="whitelist")
        secret = ET.fromstring("<data xmlns='urn:example:private'>s3cret</data>")
        await alice["xep_0060"].publish(jid("alice"), "urn:example:private", id="current",
                                        payload=secret, options=opts)
        got = await alice["xep_0060"].get_items(jid("alice"), "urn:example:private")
        assert got.xml.find(".//{urn:example:private}data").text == "s3cret"
        assert await app_error(bob["xep_0060"].get_items(jid("alice"), "urn:example:private")) \
            == ("cancel", "not-allowed", "closed-node")
        # publishing again with the same options holds; with another access model it does not
        await alice["xep_0060"].publish(jid("alice"), "urn:example:private", id="current",
                                        payload=secret, options=opts)
        assert await app_error(alice["xep_0060"].publish(
            jid("alice"), "urn:example:private", id="current", payload=secret,
            options=form(alice, PS + "#publish-options", access_model="open"))) == (
            "cancel", "conflict", "precondition-not-met")
        for c in (alice, bob):
            await slix_close(c)
    run(go())


def test_pep_persists_across_restart(make_server):
    srv = make_server(users={u: None for u in ("alice", "bob")})

    async def before():
        alice = await online(srv, "alice", NOTIFY)
        bob = await online(srv, "bob", NOTIFY)
        await befriend(alice, bob, "alice", "bob")
        await alice["xep_0107"].publish_mood("sleepy")
        await settle(alice)
        await slix_close(alice)
        await slix_close(bob)
    run(before())
    assert srv.stop() == 0
    srv.start()

    async def after():
        bob = await slix_login(srv, "bob", plugins=NOTIFY)
        await bob["xep_0115"].update_caps(broadcast=False)
        bob.send_presence()
        m = await next_of(bob.messages, is_event("items", MOOD), "the stored mood")
        assert mood_of(m) == ["sleepy"]
        await slix_close(bob)
    run(after())


def test_account_disco_announces_pep(make_server):
    """XEP-0163 §6: the account's bare JID has identity pubsub/pep and the PEP features; the
    server's own answer is not where Conversations and Dino look."""
    srv = make_server(users={"alice": None})

    async def go():
        alice = await slix_login(srv, "alice", plugins=PLAIN)
        info = await alice["xep_0030"].get_info(jid=alice.boundjid.bare, timeout=10)
        idents = {(i[0], i[1]) for i in info["disco_info"]["identities"]}
        feats = set(info["disco_info"]["features"])
        assert ("pubsub", "pep") in idents, idents
        assert ("account", "registered") in idents, idents
        assert {PS + "#publish", PS + "#publish-options", PS + "#auto-create"} <= feats, feats
        await slix_close(alice)
    run(go())
