"""Bookmarks (XEP-0411): XEP-0402 items in PEP and the legacy XEP-0048 document in XEP-0049
private storage show the same rooms, whichever side a client writes."""
import asyncio
import xml.etree.ElementTree as ET

from conftest import iq_with, jid, next_of, run, settle, slix_close, slix_login
from test_pubsub import PS, app_error, form, is_event

BM = "urn:xmpp:bookmarks:1"
LEGACY = "storage:bookmarks"
PLUGINS = ("xep_0004", "xep_0030", "xep_0060", "xep_0115")


async def legacy_rooms(c):
    iq = iq_with(c, "get", f"<query xmlns='jabber:iq:private'><storage xmlns='{LEGACY}'/>"
                           "</query>")
    r = await iq.send(timeout=10)
    st = r.xml.find(f".//{{{LEGACY}}}storage")
    return {cf.get("jid"): (cf.get("name"), cf.get("autojoin"), cf.findtext(f"{{{LEGACY}}}nick"))
            for cf in st.findall(f"{{{LEGACY}}}conference")}, st


async def pep_rooms(c, owner):
    r = await c["xep_0060"].get_items(owner, BM)
    out = {}
    for item in r.xml.iter(f"{{{PS}}}item"):
        cf = item.find(f"{{{BM}}}conference")
        out[item.get("id")] = (cf.get("name"), cf.get("autojoin"), cf.findtext(f"{{{BM}}}nick"))
    return out


def test_sync_both_ways(make_server):
    srv = make_server(users={"alice": None, "bob": None})

    async def go():
        alice = await slix_login(srv, "alice", plugins=PLUGINS)
        bob = await slix_login(srv, "bob", plugins=PLUGINS)
        # a legacy client stores two rooms and a URL in private storage
        iq = iq_with(alice, "set",
                     f"<query xmlns='jabber:iq:private'><storage xmlns='{LEGACY}'>"
                     "<conference jid='tea@conference.localhost' name='Tea' autojoin='true'>"
                     "<nick>Alice</nick></conference>"
                     "<conference jid='work@conference.localhost' name='Work'/>"
                     "<url name='Home' url='https://example.org/'/>"
                     "</storage></query>")
        await iq.send(timeout=10)
        assert await pep_rooms(alice, jid("alice")) == {
            "tea@conference.localhost": ("Tea", "true", "Alice"),
            "work@conference.localhost": ("Work", "false", None),
        }
        # the PEP node is the account's own (XEP-0402: whitelist)
        assert await app_error(bob["xep_0060"].get_items(jid("alice"), BM)) == (
            "cancel", "not-allowed", "closed-node")
        # a XEP-0402 client adds a room with the publish-options the XEP asks for
        conf = ET.fromstring(f"<conference xmlns='{BM}' name='Books' autojoin='false'>"
                             "<nick>Al</nick></conference>")
        opts = form(alice, PS + "#publish-options", persist_items="true", access_model="whitelist",
                    max_items="max", send_last_published_item="never")
        await alice["xep_0060"].publish(jid("alice"), BM, id="books@conference.localhost",
                                        payload=conf, options=opts)
        rooms, st = await legacy_rooms(alice)
        assert rooms == {
            "tea@conference.localhost": ("Tea", "true", "Alice"),
            "work@conference.localhost": ("Work", "false", None),
            "books@conference.localhost": ("Books", "false", "Al"),
        }
        assert st.find(f"{{{LEGACY}}}url").get("url") == "https://example.org/"
        # a retraction in PEP removes it from the legacy document
        await alice["xep_0060"].retract(jid("alice"), BM, "work@conference.localhost", notify=True)
        rooms, _ = await legacy_rooms(alice)
        assert set(rooms) == {"tea@conference.localhost", "books@conference.localhost"}
        # and a legacy write that drops a room retracts its item, notifying the owner's
        # resources that asked for it
        alice2 = await slix_login(srv, "alice", plugins=PLUGINS + ("xep_0163",),
                                  resource="phone")
        alice2["xep_0163"].add_interest(BM)
        await alice2["xep_0115"].update_caps(broadcast=False)
        alice2.send_presence()
        await settle(alice2)
        await asyncio.sleep(0.5)
        iq = iq_with(alice, "set",
                     f"<query xmlns='jabber:iq:private'><storage xmlns='{LEGACY}'>"
                     "<conference jid='tea@conference.localhost' name='Tea' autojoin='true'>"
                     "<nick>Alice</nick></conference></storage></query>")
        await iq.send(timeout=10)

        def retracted(m):
            return is_event("items", BM)(m) and m.xml.find(
                ".//{http://jabber.org/protocol/pubsub#event}retract") is not None
        m = await next_of(alice2.messages, retracted, "the retraction of the dropped room")
        assert m.xml.find(".//{http://jabber.org/protocol/pubsub#event}retract").get("id") == \
            "books@conference.localhost"
        assert set(await pep_rooms(alice, jid("alice"))) == {"tea@conference.localhost"}
        for c in (alice, alice2, bob):
            await slix_close(c)
    run(go())
