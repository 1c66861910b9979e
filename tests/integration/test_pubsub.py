"""Publish-subscribe service (XEP-0060) at pubsub.localhost, driven by slixmpp clients: node
lifecycle, every access model both ways, notifications with and without payloads, max_items,
subscription options, publish-options preconditions, persistence across a restart, and the
errors the XEP names."""
import asyncio
import xml.etree.ElementTree as ET

import pytest

from conftest import (befriend, iq_with, jid, next_of, refused, run, settle, slix_close,
                      slix_login)

PS = "http://jabber.org/protocol/pubsub"
EVENT = PS + "#event"
ERRORS = PS + "#errors"
SVC = "pubsub.localhost"
PLUGINS = ("xep_0004", "xep_0030", "xep_0060")


def payload(text, ns="urn:example:news"):
    e = ET.Element(f"{{{ns}}}entry")
    e.text = text
    return e


def form(c, form_type, **fields):
    f = c["xep_0004"].make_form("submit")
    f.add_field(var="FORM_TYPE", ftype="hidden", value=form_type)
    for k, v in fields.items():
        f.add_field(var="pubsub#" + k, value=v)
    return f


def form_values(stanza):
    """var -> first value of the first data form in a stanza."""
    x = stanza.xml.find(".//{jabber:x:data}x")
    return {f.get("var"): (f.findtext("{jabber:x:data}value") or "")
            for f in x.findall("{jabber:x:data}field")}


def config(c, **fields):
    return form(c, PS + "#node_config", **fields)


async def login(server, *users):
    """Clients that sent available presence: notifications to a bare JID go to available
    resources only."""
    cs = [await slix_login(server, u, plugins=PLUGINS) for u in users]
    for c in cs:
        c.send_presence()
    await settle(*cs)
    return cs


def event_of(m):
    return m.xml.find(f"{{{EVENT}}}event")


def is_event(kind, node=None):
    def pred(m):
        ev = event_of(m)
        if ev is None:
            return False
        el = ev.find(f"{{{EVENT}}}{kind}")
        return el is not None and (node is None or el.get("node") == node)
    return pred


async def app_error(iq):
    """Send iq expecting an error: (type, condition, pubsub#errors condition or None)."""
    from slixmpp.exceptions import IqError
    with pytest.raises(IqError) as e:
        await iq
    err = e.value.iq.xml.find("{jabber:client}error")
    app = [c.tag.split("}")[1] for c in err if c.tag.startswith("{" + ERRORS + "}")]
    return err.get("type"), e.value.iq["error"]["condition"], app[0] if app else None


async def nothing(c, pred, seconds=1.0):
    """No queued message matching pred arrives within seconds."""
    deadline = asyncio.get_event_loop().time() + seconds
    while True:
        left = deadline - asyncio.get_event_loop().time()
        if left <= 0:
            return
        try:
            m = await asyncio.wait_for(c.messages.get(), left)
        except asyncio.TimeoutError:
            return
        assert not pred(m), f"unexpected {m}"


def test_node_lifecycle(server):
    async def go():
        alice, bob = await login(server, "alice", "bob")
        ps_a, ps_b = alice["xep_0060"], bob["xep_0060"]
        await ps_a.create_node(SVC, "news", config=config(alice, title="News", max_items="2"))
        assert await app_error(ps_a.create_node(SVC, "news")) == ("cancel", "conflict", None)
        # instant node: the service names it
        r = await ps_a.create_node(SVC, None)
        assert r["pubsub"]["create"]["node"]
        cfg = await ps_a.get_node_config(SVC, "news")
        fields = cfg["pubsub_owner"]["configure"]["form"].get_fields()
        assert fields["pubsub#title"]["value"] == "News"
        assert fields["pubsub#max_items"]["value"] == "2"
        sub = await ps_b.subscribe(SVC, "news")
        assert sub["pubsub"]["subscription"]["subscription"] == "subscribed"
        for i in range(3):
            await ps_a.publish(SVC, "news", id=f"i{i}", payload=payload(f"story {i}"))
            m = await next_of(bob.messages, is_event("items", "news"), "a notification")
            assert m["type"] == "headline"
            item = event_of(m).find(f"{{{EVENT}}}items/{{{EVENT}}}item")
            assert item.get("id") == f"i{i}"
            assert item.find("{urn:example:news}entry").text == f"story {i}"
        # max_items 2: the oldest went
        items = await ps_b.get_items(SVC, "news")
        assert [i["id"] for i in items["pubsub"]["items"]] == ["i2", "i1"]
        one = await ps_b.get_items(SVC, "news", max_items=1)
        assert [i["id"] for i in one["pubsub"]["items"]] == ["i2"]
        byid = await ps_b.get_item(SVC, "news", "i1")
        assert [i["id"] for i in byid["pubsub"]["items"]] == ["i1"]
        # an id generated when none is given
        r = await ps_a.publish(SVC, "news", payload=payload("no id"))
        gen = r["pubsub"]["publish"]["item"]["id"]
        assert gen
        m = await next_of(bob.messages, is_event("items", "news"), "a notification")
        assert event_of(m).find(f"{{{EVENT}}}items/{{{EVENT}}}item").get("id") == gen
        # retract with notification; bob may not retract alice's items
        assert (await app_error(ps_b.retract(SVC, "news", gen)))[1] == "forbidden"
        await ps_a.retract(SVC, "news", gen, notify=True)
        m = await next_of(bob.messages, is_event("items", "news"), "a retraction")
        assert event_of(m).find(f"{{{EVENT}}}items/{{{EVENT}}}retract").get("id") == gen
        # purge, then delete: both announced
        assert (await app_error(ps_b.purge(SVC, "news")))[1] == "forbidden"
        await ps_a.purge(SVC, "news")
        await next_of(bob.messages, is_event("purge", "news"), "a purge notification")
        assert len((await ps_b.get_items(SVC, "news"))["pubsub"]["items"]) == 0
        assert (await app_error(ps_b.delete_node(SVC, "news")))[1] == "forbidden"
        await ps_a.delete_node(SVC, "news")
        await next_of(bob.messages, is_event("delete", "news"), "a delete notification")
        assert (await app_error(ps_b.get_items(SVC, "news")))[1] == "item-not-found"
        await slix_close(alice)
        await slix_close(bob)
    run(go())


def test_disco(server):
    async def go():
        (alice,) = await login(server, "alice")
        await alice["xep_0060"].create_node(SVC, "n1", config=config(alice, title="First"))
        info = await alice["xep_0030"].get_info(jid=SVC)
        assert ("pubsub", "service", None, "Publish-Subscribe") in info["disco_info"]["identities"]
        assert PS + "#publish" in info["disco_info"]["features"]
        items = await alice["xep_0030"].get_items(jid=SVC)
        assert (SVC, "n1", None) in items["disco_items"]["items"]
        ninfo = await alice["xep_0030"].get_info(jid=SVC, node="n1")
        assert ("pubsub", "leaf", None, None) in ninfo["disco_info"]["identities"]
        await alice["xep_0060"].publish(SVC, "n1", id="a", payload=payload("x"))
        nitems = await alice["xep_0030"].get_items(jid=SVC, node="n1")
        assert (SVC, None, "a") in nitems["disco_items"]["items"]
        await slix_close(alice)
    run(go())


async def set_group(c, contact, group):
    iq = iq_with(c, "set", f"<query xmlns='jabber:iq:roster'><item jid='{contact}'>"
                           f"<group>{group}</group></item></query>")
    await iq.send(timeout=10)


def test_access_models(server):
    """open, presence, roster, whitelist, authorize: who gets in and who gets which error."""
    async def go():
        alice, bob, carol = await login(server, "alice", "bob", "carol")
        await befriend(alice, bob, "alice", "bob")
        await befriend(alice, carol, "alice", "carol")
        (dave,) = await login(server, "dave")
        await set_group(alice, jid("bob"), "friends")
        await set_group(alice, jid("carol"), "others")
        await settle(alice, bob, carol, dave)
        ps = alice["xep_0060"]
        for model in ("open", "presence", "roster", "whitelist", "authorize"):
            extra = {"roster_groups_allowed": "friends"} if model == "roster" else {}
            await ps.create_node(SVC, model, config=config(alice, access_model=model, **extra))
            await ps.publish(SVC, model, id="x", payload=payload(model))

        async def items(c, node):
            return await c["xep_0060"].get_items(SVC, node)

        # open: anyone
        assert len((await items(dave, "open"))["pubsub"]["items"]) == 1
        # presence: contacts with a subscription, not strangers
        assert len((await items(carol, "presence"))["pubsub"]["items"]) == 1
        assert await app_error(items(dave, "presence")) == (
            "auth", "not-authorized", "presence-subscription-required")
        assert await app_error(dave["xep_0060"].subscribe(SVC, "presence")) == (
            "auth", "not-authorized", "presence-subscription-required")
        # roster: only the allowed group
        assert len((await items(bob, "roster"))["pubsub"]["items"]) == 1
        assert await app_error(items(carol, "roster")) == (
            "auth", "not-authorized", "not-in-roster-group")
        # whitelist: members only
        assert await app_error(items(bob, "whitelist")) == ("cancel", "not-allowed", "closed-node")
        await ps.modify_affiliations(SVC, "whitelist", affiliations=[(jid("bob"), "member")])
        assert len((await items(bob, "whitelist"))["pubsub"]["items"]) == 1
        affs = await ps.get_node_affiliations(SVC, "whitelist")
        got = {(a["jid"].bare, a["affiliation"])
               for a in affs["pubsub_owner"]["affiliations"]}
        assert (jid("bob"), "member") in got and (jid("alice"), "owner") in got
        # authorize: pending until the owner approves through the form message
        assert await app_error(items(carol, "authorize")) == (
            "auth", "not-authorized", "not-subscribed")
        sub = await carol["xep_0060"].subscribe(SVC, "authorize")
        assert sub["pubsub"]["subscription"]["subscription"] == "pending"

        def auth_form(m):
            x = m.xml.find("{jabber:x:data}x")
            return x is not None and any(
                v.text == PS + "#subscribe_authorization"
                for v in x.iter("{jabber:x:data}value"))
        req = await next_of(alice.messages, auth_form, "an authorization request")
        x = req.xml.find("{jabber:x:data}x")
        vals = {f.get("var"): f.find("{jabber:x:data}value").text
                for f in x.findall("{jabber:x:data}field")}
        assert vals["pubsub#node"] == "authorize"
        assert vals["pubsub#subscriber_jid"] == jid("carol")
        answer = alice.make_message(mto=SVC)
        ans = ET.SubElement(answer.xml, "{jabber:x:data}x", type="submit")
        for var, val in (("FORM_TYPE", PS + "#subscribe_authorization"),
                         ("pubsub#subid", vals["pubsub#subid"]), ("pubsub#node", "authorize"),
                         ("pubsub#subscriber_jid", jid("carol")), ("pubsub#allow", "true")):
            f = ET.SubElement(ans, "{jabber:x:data}field", var=var)
            ET.SubElement(f, "{jabber:x:data}value").text = val
        answer.send()
        await next_of(carol.messages, is_event("subscription", "authorize"), "the approval")
        assert len((await items(carol, "authorize"))["pubsub"]["items"]) == 1
        # an outcast is refused even on an open node
        await ps.modify_affiliations(SVC, "open", affiliations=[(jid("dave"), "outcast")])
        assert (await app_error(items(dave, "open")))[:2] == ("auth", "forbidden")
        # publish model: only publishers; then open
        assert (await app_error(bob["xep_0060"].publish(SVC, "open", payload=payload("b"))))[1] \
            == "forbidden"
        await ps.modify_affiliations(SVC, "open", affiliations=[(jid("bob"), "publisher")])
        await bob["xep_0060"].publish(SVC, "open", payload=payload("by bob"))
        for c in (alice, bob, carol, dave):
            await slix_close(c)
    srv = server
    srv.add_user("dave")
    run(go())


def test_payloads_and_notification_type(server):
    async def go():
        alice, bob = await login(server, "alice", "bob")
        await alice["xep_0060"].create_node(
            SVC, "bare", config=config(alice, deliver_payloads="0", notification_type="normal"))
        await bob["xep_0060"].subscribe(SVC, "bare")
        await alice["xep_0060"].publish(SVC, "bare", id="one", payload=payload("secret"))
        m = await next_of(bob.messages, is_event("items", "bare"), "a notification")
        assert m["type"] == "normal"
        item = event_of(m).find(f"{{{EVENT}}}items/{{{EVENT}}}item")
        assert item.get("id") == "one" and len(item) == 0
        # the item itself is still stored with its payload
        items = await bob["xep_0060"].get_items(SVC, "bare")
        assert items.xml.find(f".//{{urn:example:news}}entry").text == "secret"
        await slix_close(alice)
        await slix_close(bob)
    run(go())


def test_subscription_options_and_subids(server):
    async def go():
        alice, bob = await login(server, "alice", "bob")
        psb = bob["xep_0060"]
        await alice["xep_0060"].create_node(SVC, "opt")
        await psb.subscribe(SVC, "opt")
        opts = await psb.get_subscription_options(SVC, "opt", jid("bob"))
        assert form_values(opts)["pubsub#deliver"] in ("1", "true")
        # (slixmpp's set_subscription_options sends a get)
        iq = iq_with(bob, "set", f"<pubsub xmlns='{PS}'><options node='opt' jid='{jid('bob')}'>"
                                 "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'>"
                                 f"<value>{PS}#subscribe_options</value></field>"
                                 "<field var='pubsub#deliver'><value>0</value></field></x>"
                                 "</options></pubsub>", to=SVC)
        await iq.send(timeout=10)
        opts = await psb.get_subscription_options(SVC, "opt", jid("bob"))
        assert form_values(opts)["pubsub#deliver"] in ("0", "false")
        await alice["xep_0060"].publish(SVC, "opt", payload=payload("quiet"))
        await nothing(bob, is_event("items", "opt"))
        # a second subscription with options gets its own subid
        await psb.subscribe(SVC, "opt", options=form(bob, PS + "#subscribe_options",
                                                     deliver="1"))
        subs = await psb.get_subscriptions(SVC, "opt")
        subids = {s["subid"] for s in subs["pubsub"]["subscriptions"]}
        assert len(subids) == 2
        await alice["xep_0060"].publish(SVC, "opt", payload=payload("loud"))
        await next_of(bob.messages, is_event("items", "opt"), "a notification")
        assert await app_error(psb.unsubscribe(SVC, "opt")) == (
            "modify", "bad-request", "subid-required")
        for s in subids:
            await psb.unsubscribe(SVC, "opt", subid=s)
        assert await app_error(psb.unsubscribe(SVC, "opt")) == (
            "cancel", "unexpected-request", "not-subscribed")
        await slix_close(alice)
        await slix_close(bob)
    run(go())


def test_errors(make_server):
    srv = make_server(users={"alice": None, "bob": None},
                      config={"pubsub": {"max_payload_size": 1024, "max_nodes_per_user": 2}})

    async def go():
        alice, bob = await login(srv, "alice", "bob")
        ps = alice["xep_0060"]
        assert await app_error(ps.publish(SVC, "", payload=payload("x"))) == (
            "modify", "bad-request", "nodeid-required")
        await ps.create_node(SVC, "n")
        assert await app_error(ps.publish(SVC, "n", payload=payload("x" * 2000))) == (
            "modify", "not-acceptable", "payload-too-big")
        assert (await app_error(bob["xep_0060"].get_node_config(SVC, "n")))[1] == "forbidden"
        assert (await app_error(ps.get_node_config(SVC, "missing")))[1] == "item-not-found"
        assert (await app_error(ps.create_node(
            SVC, "bad", config=config(alice, access_model="secret"))))[1] == "not-acceptable"
        await ps.create_node(SVC, "m")
        assert (await app_error(ps.create_node(SVC, "third")))[1] == "resource-constraint"
        # publish-options that do not hold (XEP-0060 §7.1.5)
        assert await app_error(ps.publish(
            SVC, "n", payload=payload("x"),
            options=form(alice, PS + "#publish-options", access_model="whitelist"))) == (
            "cancel", "conflict", "precondition-not-met")
        await ps.publish(SVC, "n", payload=payload("x"),
                         options=form(alice, PS + "#publish-options", access_model="open"))
        # subscribing someone else
        iq = iq_with(bob, "set", f"<pubsub xmlns='{PS}'><subscribe node='n' "
                                 f"jid='{jid('alice')}'/></pubsub>", to=SVC)
        assert await app_error(iq.send(timeout=10)) == ("modify", "bad-request", "invalid-jid")
        iq = iq_with(bob, "get", f"<pubsub xmlns='{PS}'><frobnicate node='n'/></pubsub>", to=SVC)
        assert (await refused(iq))[1] == "feature-not-implemented"
        await slix_close(alice)
        await slix_close(bob)
    run(go())


def test_persistence_across_restart(make_server):
    srv = make_server(users={"alice": None, "bob": None})

    async def before():
        alice, bob = await login(srv, "alice", "bob")
        await alice["xep_0060"].create_node(SVC, "kept", config=config(alice, max_items="5",
                                                                        title="Kept"))
        await alice["xep_0060"].publish(SVC, "kept", id="a", payload=payload("one"))
        await alice["xep_0060"].publish(SVC, "kept", id="b", payload=payload("two"))
        await alice["xep_0060"].modify_affiliations(SVC, "kept",
                                                    affiliations=[(jid("bob"), "publisher")])
        await bob["xep_0060"].subscribe(SVC, "kept")
        await slix_close(alice)
        await slix_close(bob)
    run(before())
    assert srv.stop() == 0
    srv.start()

    async def after():
        alice, bob = await login(srv, "alice", "bob")
        items = await bob["xep_0060"].get_items(SVC, "kept")
        assert [i["id"] for i in items["pubsub"]["items"]] == ["b", "a"]
        cfg = await alice["xep_0060"].get_node_config(SVC, "kept")
        assert cfg["pubsub_owner"]["configure"]["form"].get_fields()[
            "pubsub#title"]["value"] == "Kept"
        # bob is still a publisher and still subscribed
        await bob["xep_0060"].publish(SVC, "kept", id="c", payload=payload("three"))
        m = await next_of(bob.messages, is_event("items", "kept"), "a notification")
        assert event_of(m).find(f"{{{EVENT}}}items/{{{EVENT}}}item").get("id") == "c"
        await slix_close(alice)
        await slix_close(bob)
    run(after())



def test_subscriptions_per_account_and_node_are_bounded(make_server):
    """Every resource named in <subscribe jid/>, and every subscribe with options, was one
    more stored subscription, without end; pubsub.max_subscriptions bounds them per account
    and node."""
    srv = make_server(users={"alice": None, "bob": None},
                      config={"pubsub": {"max_subscriptions": 3}})

    def sub(c, who):
        return iq_with(c, "set", f"<pubsub xmlns='{PS}'><subscribe node='news' jid='{who}'/>"
                                 "</pubsub>", to=SVC).send(timeout=10)

    async def go():
        alice, bob = await login(srv, "alice", "bob")
        await alice["xep_0060"].create_node(SVC, "news")
        for i in range(3):
            await sub(bob, jid("bob", f"r{i}"))
        for who in (jid("bob", "r3"), jid("bob")):
            # slixmpp does not know RFC 6120's <policy-violation/>: read the XML
            from slixmpp.exceptions import IqError
            with pytest.raises(IqError) as e:
                await sub(bob, who)
            err = e.value.iq.xml.find("{jabber:client}error")
            assert err.get("type") == "wait"
            assert err.find("{urn:ietf:params:xml:ns:xmpp-stanzas}policy-violation") is not None
            assert err.find(f"{{{ERRORS}}}too-many-subscriptions") is not None
        # one already held is answered as before; another account has its own count
        await sub(bob, jid("bob", "r0"))
        await sub(alice, jid("alice"))
        await slix_close(alice)
        await slix_close(bob)
    run(go())


def test_long_node_names_and_item_ids_are_refused(make_server):
    srv = make_server(users={"alice": None}, config={"pubsub": {"max_id_length": 64}})

    async def go():
        (alice,) = await login(srv, "alice")
        ps = alice["xep_0060"]
        assert (await app_error(ps.create_node(SVC, "n" * 65)))[1] == "not-acceptable"
        assert (await app_error(ps.publish(SVC, "n" * 65, payload=payload("x"))))[1] == \
            "not-acceptable"
        await ps.create_node(SVC, "n" * 64)
        assert (await app_error(ps.publish(SVC, "n" * 64, id="i" * 65,
                                           payload=payload("x"))))[1] == "not-acceptable"
        await ps.publish(SVC, "n" * 64, id="i" * 64, payload=payload("x"))
        await slix_close(alice)
    run(go())


def test_owner_set_entries_are_bounded(make_server):
    """An owner could store affiliations and subscriptions for any number of made-up JIDs;
    pubsub.max_node_entries bounds what an owner's change may add."""
    srv = make_server(users={"alice": None}, config={"pubsub": {"max_node_entries": 3}})

    def owner_set(c, what, attr, pairs):
        rows = "".join(f"<{what[:-1]} jid='{j}' {attr}='{v}'/>" for j, v in pairs)
        return iq_with(c, "set", f"<pubsub xmlns='{PS}#owner'><{what} node='n'>{rows}</{what}>"
                                 "</pubsub>", to=SVC).send(timeout=10)

    async def go():
        (alice,) = await login(srv, "alice")
        await alice["xep_0060"].create_node(SVC, "n")  # alice: one owner affiliation
        await owner_set(alice, "affiliations", "affiliation",
                        [("a@x.example", "member"), ("b@x.example", "publisher")])
        assert (await app_error(owner_set(alice, "affiliations", "affiliation",
                                          [("c@x.example", "member")])))[1] == \
            "resource-constraint"
        # changing and removing what is there still works; then there is room again
        await owner_set(alice, "affiliations", "affiliation",
                        [("a@x.example", "outcast"), ("b@x.example", "none")])
        await owner_set(alice, "affiliations", "affiliation", [("c@x.example", "member")])
        subs = [(f"s{i}@x.example", "subscribed") for i in range(4)]
        assert (await app_error(owner_set(alice, "subscriptions", "subscription", subs)))[1] == \
            "resource-constraint"
        await owner_set(alice, "subscriptions", "subscription", subs[:3])
        await slix_close(alice)
    run(go())
