"""User Avatar to vCard-Based Avatars Conversion (XEP-0398), written from the XEP, not from the
server's code. Alice puts an avatar in her PEP nodes (XEP-0084) and Bob, who only speaks
vcard-temp, finds it in her vCard (XEP-0153); she puts one in her vCard and PEP clients see it
in her avatar nodes; and whatever path it came by, the server writes its hash into each
available presence she sends (vcard-temp:x:update), MUC joins and directed presence included.
Bad publications leave the vCard as it was; `pubsub.avatar_conversion: false` turns it all off.

Every test that checks that something did NOT happen also checks, in the same server, that the
conversion itself works, so it cannot pass on a server that does no conversion at all."""
import asyncio
import base64
import hashlib
import struct
import time
import xml.etree.ElementTree as ET
import zlib

from slixmpp.exceptions import IqError
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from conftest import befriend, iq_with, jid, run, settle, slix_close, slix_login
from muchelp import Inbox, create, join, presence_of, room_jid

NS_CONV = "urn:xmpp:pep-vcard-conversion:0"
NS_DATA = "urn:xmpp:avatar:data"
NS_META = "urn:xmpp:avatar:metadata"
NS_VCARD = "vcard-temp"
NS_UPDATE = "vcard-temp:x:update"
NS_PS = "http://jabber.org/protocol/pubsub"
NS_EVENT = NS_PS + "#event"
NS_INFO = "http://jabber.org/protocol/disco#info"
C = "{jabber:client}"

T = 10        # seconds for what must come
QUIET = 1.0   # seconds for what must not come

# PEP +notify for the avatar metadata through entity caps (the xep_0084 plugin registers it)
NOTIFY = ("xep_0004", "xep_0030", "xep_0060", "xep_0115", "xep_0163", "xep_0084")
BASIC = ("xep_0030",)


# ---- images ----------------------------------------------------------------------------------

def png(r, g, b):
    """A real 1x1 PNG of one colour: different colours, different bytes, different hashes."""
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    idat = zlib.compress(bytes([0, r, g, b]))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat)
            + chunk(b"IEND", b""))


def jpeg_like(seed):
    """Bytes a client would call image/jpeg (the server need not decode images)."""
    return b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + hashlib.sha256(seed).digest() * 3 + b"\xff\xd9"


def sha1(data):
    return hashlib.sha1(data).hexdigest()


def b64(data):
    return base64.b64encode(data).decode()


# ---- sessions --------------------------------------------------------------------------------

async def online(srv, user, plugins=BASIC, resource="r", available=True):
    """A slixmpp session whose presences and messages are kept (c.pres, c.msgs); available
    with a plain <presence/> unless told otherwise."""
    c = await slix_login(srv, user, resource=resource, plugins=plugins)
    counter = [0]
    c.pres = Inbox(f"{user}/{resource}", counter)
    c.msgs = Inbox(f"{user}/{resource}", counter)
    c.register_handler(Callback("avatar test presence", MatchXPath(f"{C}presence"), c.pres.put))
    c.register_handler(Callback("avatar test message", MatchXPath(f"{C}message"), c.msgs.put))
    c.user = user
    if available:
        if "xep_0115" in plugins:
            # the caps plugin adds <c/> only once it has computed its ver
            await c["xep_0115"].update_caps(broadcast=False)
        c.send_presence()
        await settle(c)
        if "xep_0115" in plugins:
            await asyncio.sleep(0.5)  # the server asks the client for its caps
            await settle(c)
    return c


async def close_all(*clients):
    for c in clients:
        await slix_close(c)


# ---- vCards and PEP --------------------------------------------------------------------------

async def vcard_set(c, inner):
    await iq_with(c, "set", f"<vCard xmlns='{NS_VCARD}'>{inner}</vCard>").send(timeout=T)


async def vcard_get(c, owner):
    """owner's vCard as c reads it; an account without one (item-not-found, XEP-0054 §3.3)
    reads as an empty card."""
    try:
        res = await iq_with(c, "get", f"<vCard xmlns='{NS_VCARD}'/>", to=owner).send(timeout=T)
    except IqError as e:
        if e.iq["error"]["condition"] == "item-not-found":
            return ET.Element(f"{{{NS_VCARD}}}vCard")
        raise
    card = res.xml.find(f"{{{NS_VCARD}}}vCard")
    assert card is not None, f"no vCard in {res}"
    return card


async def vcard_error(c, to):
    """The condition of the error c gets asking to for its vCard."""
    try:
        res = await iq_with(c, "get", f"<vCard xmlns='{NS_VCARD}'/>", to=to).send(timeout=T)
    except IqError as e:
        return e.iq["error"]["condition"]
    raise AssertionError(f"vCard of {to} given to a stranger: {res}")


def card_view(card):
    """(FN, [(TYPE, decoded BINVAL)] of each PHOTO) of a vCard element."""
    photos = []
    for p in card.findall(f"{{{NS_VCARD}}}PHOTO"):
        binval = p.findtext(f"{{{NS_VCARD}}}BINVAL")
        photos.append((p.findtext(f"{{{NS_VCARD}}}TYPE"),
                       base64.b64decode(binval) if binval is not None else None))
    return card.findtext(f"{{{NS_VCARD}}}FN"), photos


async def card_becomes(c, owner, want, what, timeout=T):
    """Read owner's vCard (as c) until card_view(card) == want: the conversion may finish a
    little after the publish was answered."""
    deadline = time.monotonic() + timeout
    while True:
        got = card_view(await vcard_get(c, owner))
        if got == want:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: vCard of {owner} is {summary(got)}, want "
                                 f"{summary(want)} (after {timeout}s)")
        await asyncio.sleep(0.2)


async def card_stays(c, owner, want, what):
    """owner's vCard is card_view want now and still QUIET seconds later."""
    for _ in range(2):
        got = card_view(await vcard_get(c, owner))
        assert got == want, f"{what}: vCard of {owner} is {summary(got)}, want {summary(want)}"
        await asyncio.sleep(QUIET)


def summary(view):
    fn, photos = view
    return (fn, [(t, None if d is None else f"{len(d)} bytes sha1 {sha1(d)}") for t, d in photos])


async def publish(c, node, item_id, payload):
    """Publish one item to c's own PEP node (no 'to': the account's bare JID); item_id None
    lets the service name the item."""
    id_attr = f" id='{item_id}'" if item_id is not None else ""
    xml = (f"<pubsub xmlns='{NS_PS}'><publish node='{node}'><item{id_attr}>{payload}"
           "</item></publish></pubsub>")
    return await iq_with(c, "set", xml).send(timeout=T)


def data_payload(data):
    return f"<data xmlns='{NS_DATA}'>{b64(data)}</data>"


def info(data, mime="image/png", url=None, item_id=None):
    u = f" url='{url}'" if url else ""
    return (f"<info bytes='{len(data)}' id='{item_id or sha1(data)}' type='{mime}' height='1' "
            f"width='1'{u}/>")


async def publish_avatar(c, data, mime="image/png"):
    """XEP-0084 §4.1-4.2: the data item, then the metadata item with the same id."""
    await publish(c, NS_DATA, sha1(data), data_payload(data))
    await publish(c, NS_META, sha1(data),
                  f"<metadata xmlns='{NS_META}'>{info(data, mime)}</metadata>")


async def pep_items(c, owner, node):
    res = await iq_with(c, "get", f"<pubsub xmlns='{NS_PS}'><items node='{node}'/></pubsub>",
                        to=owner).send(timeout=T)
    return res.xml.findall(f"{{{NS_PS}}}pubsub/{{{NS_PS}}}items/{{{NS_PS}}}item")


async def alive(c):
    """The server still answers (a disco#info of the server)."""
    res = await iq_with(c, "get", f"<query xmlns='{NS_INFO}'/>", to="localhost").send(timeout=T)
    assert res["type"] == "result"


async def account_features(c):
    res = await iq_with(c, "get", f"<query xmlns='{NS_INFO}'/>",
                        to=c.boundjid.bare).send(timeout=T)
    q = res.xml.find(f"{{{NS_INFO}}}query")
    return {f.get("var") for f in q.findall(f"{{{NS_INFO}}}feature")}


# ---- presence --------------------------------------------------------------------------------

def updates(st):
    return st.xml.findall(f"{{{NS_UPDATE}}}x")


def photo(st):
    """The vcard-temp:x:update photo of a presence: None when there is none, '' when empty.
    More than one <x/> (or <photo/>) is a failure: the server was to fill in the client's
    element, not add a second one."""
    xs = updates(st)
    assert len(xs) <= 1, f"{len(xs)} vcard-temp:x:update elements in {st}"
    if not xs:
        return None
    ps = xs[0].findall(f"{{{NS_UPDATE}}}photo")
    assert len(ps) <= 1, f"{len(ps)} photo elements in {st}"
    return None if not ps else (ps[0].text or "").strip()


def ptype(st):
    return st.xml.get("type") or ""


def marked(sender, status):
    """The presence of sender's full JID carrying <status>status</status>."""
    full = sender.boundjid.full

    def pred(st):
        return str(st["from"]) == full and st.xml.findtext(f"{C}status") == status
    return pred


async def presence_from(receiver, sender, pred=lambda st: True, what="presence"):
    full = sender.boundjid.full
    return await receiver.pres.take(lambda st: str(st["from"]) == full and pred(st),
                                    f"{what} of {full}", T)


async def sent_and_seen(sender, receiver, status, extra="", what=None):
    """sender sends an available presence with a <status/> marker (and extra children);
    the copy that reaches receiver."""
    receiver.pres.clear()
    sender.send_raw(f"<presence><status>{status}</status>{extra}</presence>")
    return await receiver.pres.take(marked(sender, status), what or f"presence {status!r}", T)


async def alice_with_good_avatar(srv, good):
    """Alice (FN Alice) and Bob online, Alice's PEP avatar `good` already in her vCard."""
    a = await online(srv, "alice")
    b = await online(srv, "bob")
    await vcard_set(a, "<FN>Alice</FN>")
    await publish_avatar(a, good)
    want = ("Alice", [("image/png", good)])
    await card_becomes(b, jid("alice"), want, "after a good avatar")
    return a, b, want


async def friends_with_avatar(srv, img):
    """Alice and Bob online and mutual contacts, Alice's PEP avatar `img` in her vCard."""
    a = await online(srv, "alice")
    b = await online(srv, "bob")
    await befriend(a, b, "alice", "bob")
    await publish_avatar(a, img)
    await card_becomes(b, jid("alice"), (None, [("image/png", img)]), "with the avatar")
    return a, b


# ---- the tests -------------------------------------------------------------------------------

def test_account_announces_conversion(make_server):
    """XEP-0398 §2: the feature is on the account, asked from the account's own session."""
    srv = make_server(users={"alice": None})

    async def go():
        a = await online(srv, "alice", available=False)
        feats = await account_features(a)
        assert NS_CONV in feats, sorted(feats)
        await close_all(a)
    run(go())


def test_pep_avatar_lands_in_vcard(make_server):
    """§3.1 with a real client's XEP-0084 plugin: the photo goes into the vCard Alice already
    had, which keeps its other fields; Bob reads it with plain vcard-temp."""
    srv = make_server(users={"alice": None, "bob": None})
    img = png(200, 30, 40)

    async def go():
        a = await online(srv, "alice", plugins=NOTIFY)
        b = await online(srv, "bob")
        await vcard_set(a, "<FN>Alice</FN>")
        await card_becomes(b, jid("alice"), ("Alice", []), "before any avatar")
        await a["xep_0084"].publish_avatar(img, timeout=T)
        await a["xep_0084"].publish_avatar_metadata(
            items=[{"id": sha1(img), "type": "image/png", "bytes": str(len(img)), "height": "1",
                    "width": "1"}], timeout=T)
        await card_becomes(b, jid("alice"), ("Alice", [("image/png", img)]),
                           "after the PEP avatar")
        # and again with another picture: the PHOTO is replaced, not added to
        img2 = png(1, 2, 3)
        await publish_avatar(a, img2)
        await card_becomes(b, jid("alice"), ("Alice", [("image/png", img2)]),
                           "after a second PEP avatar")
        await close_all(a, b)
    run(go())


def test_pep_metadata_picks_the_local_info(make_server):
    """§3.1: of several <info/>, the one without a url is the picture in the data node."""
    srv = make_server(users={"alice": None, "bob": None})
    local = png(9, 99, 199)
    remote = png(250, 250, 0)

    async def go():
        a = await online(srv, "alice")
        b = await online(srv, "bob")
        await vcard_set(a, "<FN>Alice</FN>")
        await publish(a, NS_DATA, sha1(local), data_payload(local))
        meta = (f"<metadata xmlns='{NS_META}'>"
                + info(remote, "image/gif", url="https://example.org/avatars/alice.gif")
                + info(local, "image/png") + "</metadata>")
        await publish(a, NS_META, sha1(local), meta)
        await card_becomes(b, jid("alice"), ("Alice", [("image/png", local)]),
                           "after metadata with an external and a local info")
        await close_all(a, b)
    run(go())


def test_pep_hash_mismatch_leaves_vcard(make_server):
    """§3.1 (SHOULD verify, required here): a data item whose bytes do not hash to the id the
    metadata names does not reach the vCard, though the publications themselves succeed."""
    srv = make_server(users={"alice": None, "bob": None})
    good = png(10, 20, 30)
    claimed = png(40, 50, 60)
    actual = png(70, 80, 90)

    async def go():
        a, b, want = await alice_with_good_avatar(srv, good)
        # item id = SHA-1 of `claimed`, content `actual`
        await publish(a, NS_DATA, sha1(claimed), data_payload(actual))
        res = await publish(a, NS_META, sha1(claimed),
                            f"<metadata xmlns='{NS_META}'>{info(claimed)}</metadata>")
        assert res["type"] == "result"
        # the publication stands in PEP, only the vCard ignores it
        items = await pep_items(a, jid("alice"), NS_META)
        assert sha1(claimed) in [i.get("id") for i in items], [ET.tostring(i) for i in items]
        await card_stays(b, jid("alice"), want, "after a metadata whose data does not match")
        await close_all(a, b)
    run(go())


def test_empty_metadata_removes_photo(make_server):
    """XEP-0084 §4.5 (avatar disabled) carried over: the vCard loses its PHOTO, keeps FN, and
    Alice's next presence no longer names the old picture."""
    srv = make_server(users={"alice": None, "bob": None})
    img = png(33, 66, 99)

    async def go():
        a = await online(srv, "alice")
        b = await online(srv, "bob")
        await befriend(a, b, "alice", "bob")
        await vcard_set(a, "<FN>Alice</FN>")
        await publish_avatar(a, img)
        await card_becomes(b, jid("alice"), ("Alice", [("image/png", img)]), "with the avatar")
        await publish(a, NS_META, None, f"<metadata xmlns='{NS_META}'/>")
        await card_becomes(b, jid("alice"), ("Alice", []), "after the avatar was disabled")
        p = await sent_and_seen(a, b, "no avatar now")
        # whether the server then says <photo/> (no avatar) or nothing is not specified
        assert photo(p) in (None, ""), p
        await close_all(a, b)
    run(go())


def test_retracted_metadata_removes_photo(make_server):
    """The avatar withdrawn by retracting its metadata item, or deleting the node, rather than
    publishing empty metadata: once no metadata item is left, the vCard has no PHOTO either."""
    srv = make_server(users={"alice": None, "bob": None})
    img = png(34, 67, 98)

    async def go():
        a, b, want = await alice_with_good_avatar(srv, img)
        await iq_with(a, "set", f"<pubsub xmlns='{NS_PS}'><retract node='{NS_META}'>"
                                f"<item id='{sha1(img)}'/></retract></pubsub>").send(timeout=T)
        await card_becomes(b, jid("alice"), ("Alice", []), "after the metadata was retracted")
        # the same when the owner deletes the whole metadata node
        await publish_avatar(a, img)
        await card_becomes(b, jid("alice"), want, "with the avatar again")
        await iq_with(a, "set", f"<pubsub xmlns='{NS_PS}#owner'><delete node='{NS_META}'/>"
                                "</pubsub>").send(timeout=T)
        await card_becomes(b, jid("alice"), ("Alice", []), "after the metadata node was deleted")
        await close_all(a, b)
    run(go())


def test_vcard_photo_published_to_pep(make_server):
    """§3.2: a vCard with a photo fills the data and metadata nodes; Bob, a contact with
    +notify for the metadata, is notified and may read it (access model presence)."""
    srv = make_server(users={"alice": None, "bob": None})
    img = jpeg_like(b"alice at the beach")
    h = sha1(img)

    async def go():
        a = await online(srv, "alice")
        b = await online(srv, "bob", plugins=NOTIFY)
        await befriend(a, b, "alice", "bob")
        await settle(a, b)
        b.msgs.clear()
        await vcard_set(a, f"<FN>Alice</FN><PHOTO><TYPE>image/jpeg</TYPE><BINVAL>{b64(img)}"
                           "</BINVAL></PHOTO>")
        # Bob is told (§3.2: SHOULD notify), from Alice's bare JID
        m = await b.msgs.take(
            lambda st: st.xml.find(f"{{{NS_EVENT}}}event/{{{NS_EVENT}}}items[@node='{NS_META}']")
            is not None, "the avatar metadata notification")
        assert str(m["from"]) == jid("alice"), m
        item = m.xml.find(f"{{{NS_EVENT}}}event/{{{NS_EVENT}}}items/{{{NS_EVENT}}}item")
        assert item is not None and item.get("id") == h, m
        # the data node, read by the owner
        items = await pep_items(a, jid("alice"), NS_DATA)
        assert [i.get("id") for i in items] == [h], [ET.tostring(i) for i in items]
        data = items[0].find(f"{{{NS_DATA}}}data")
        assert data is not None and base64.b64decode(data.text) == img, ET.tostring(items[0])
        # the metadata node, read by the owner and by the contact
        for reader in (a, b):
            items = await pep_items(reader, jid("alice"), NS_META)
            assert [i.get("id") for i in items] == [h], [ET.tostring(i) for i in items]
            infos = items[0].findall(f"{{{NS_META}}}metadata/{{{NS_META}}}info")
            assert len(infos) == 1, ET.tostring(items[0])
            got = infos[0]
            assert (got.get("id"), got.get("bytes"), got.get("type")) == (
                h, str(len(img)), "image/jpeg"), ET.tostring(got)
            assert got.get("url") is None, ET.tostring(got)
        # and the vCard Alice set is hers as she set it
        assert card_view(await vcard_get(b, jid("alice"))) == ("Alice", [("image/jpeg", img)])
        await close_all(a, b)
    run(go())


def test_presence_carries_hash_everywhere(make_server):
    """§4: the initial broadcast, later presences, a directed presence to a stranger and a MUC
    join all carry the hash, though Alice's client sent none; unavailable is left alone."""
    srv = make_server(users={"alice": None, "bob": None, "carol": None})
    img = png(120, 130, 140)
    h = sha1(img)

    async def go():
        a, b = await friends_with_avatar(srv, img)
        await close_all(a)
        # a new session: its initial presence is a bare <presence/>
        b.pres.clear()
        a = await online(srv, "alice", resource="phone", available=False)
        a.send_raw("<presence/>")
        p = await presence_from(b, a, lambda st: ptype(st) == "", "initial presence")
        assert photo(p) == h, p
        # later presences, with and without other children
        p = await sent_and_seen(a, b, "later", "<show>away</show><priority>5</priority>")
        assert photo(p) == h, p
        # directed presence to a stranger
        c = await online(srv, "carol")
        c.pres.clear()
        a.send_raw(f"<presence to='{c.boundjid.full}'><status>hello carol</status></presence>")
        p = await c.pres.take(marked(a, "hello carol"), "Alice's directed presence", T)
        assert photo(p) == h, p
        # a MUC join: the other occupant sees it in the room
        room = room_jid("garden")
        await create(b, room, "Bob")
        await join(a, room, "Alice")
        p = await presence_of(b, room, "Alice", lambda st: ptype(st) == "")
        assert photo(p) == h, p
        # XEP-0153 in the room: Bob fetches the image from room/nick, and gets it from the
        # room in Alice's occupant name (her client is never asked)
        card = await vcard_get(b, f"{room}/Alice")
        assert card_view(card) == (None, [("image/png", img)]), ET.tostring(card)
        # a non-occupant is not let in on it
        c2 = await vcard_error(c, f"{room}/Alice")
        assert c2 in ("not-acceptable", "item-not-found", "forbidden"), c2
        # unavailable: untouched
        b.pres.clear()
        a.send_raw("<presence type='unavailable'><status>bye</status></presence>")
        p = await presence_from(b, a, lambda st: ptype(st) == "unavailable", "unavailable")
        assert updates(p) == [], p
        await close_all(a, b, c)
    run(go())


def test_presence_client_update_element(make_server):
    """§4: <x><photo/></x> from the client arrives untouched; an <x/> without <photo/> is
    filled in with the hash."""
    srv = make_server(users={"alice": None, "bob": None})
    img = png(5, 15, 25)
    h = sha1(img)

    async def go():
        a, b = await friends_with_avatar(srv, img)
        p = await sent_and_seen(a, b, "plain")
        assert photo(p) == h, p
        p = await sent_and_seen(a, b, "empty photo", f"<x xmlns='{NS_UPDATE}'><photo/></x>")
        assert photo(p) == "", p
        p = await sent_and_seen(a, b, "empty x", f"<x xmlns='{NS_UPDATE}'/>")
        assert photo(p) == h, p
        await close_all(a, b)
    run(go())


def test_presence_follows_avatar_changes(make_server):
    """No avatar, no photo; after a PEP avatar, its hash; after a new one set through the
    vCard, the next presence names the new one."""
    srv = make_server(users={"alice": None, "bob": None})
    first = png(1, 1, 1)
    second = jpeg_like(b"second picture")

    async def go():
        a = await online(srv, "alice")
        b = await online(srv, "bob")
        await befriend(a, b, "alice", "bob")
        p = await sent_and_seen(a, b, "no avatar yet")
        assert photo(p) is None, p
        await publish_avatar(a, first)
        await card_becomes(b, jid("alice"), (None, [("image/png", first)]), "first avatar")
        p = await sent_and_seen(a, b, "first")
        assert photo(p) == sha1(first), p
        await vcard_set(a, f"<FN>Alice</FN><PHOTO><TYPE>image/jpeg</TYPE><BINVAL>{b64(second)}"
                           "</BINVAL></PHOTO>")
        p = await sent_and_seen(a, b, "second")
        assert photo(p) == sha1(second), p
        await close_all(a, b)
    run(go())


def test_hash_survives_restart(make_server):
    srv = make_server(users={"alice": None, "bob": None})
    img = png(77, 88, 99)

    async def before():
        a, b = await friends_with_avatar(srv, img)
        await close_all(a, b)
    run(before())
    assert srv.stop() == 0
    srv.start()

    async def after():
        b = await online(srv, "bob")
        b.pres.clear()
        a = await online(srv, "alice", available=False)
        a.send_raw("<presence/>")
        p = await presence_from(b, a, lambda st: ptype(st) == "", "initial presence")
        assert photo(p) == sha1(img), p
        await close_all(a, b)
    run(after())


def test_bad_metadata_leaves_vcard(make_server):
    """Metadata naming a data item that does not exist, or one that is not base64: the vCard
    keeps the avatar it had and the server goes on answering."""
    srv = make_server(users={"alice": None, "bob": None})
    good = png(60, 70, 80)
    missing = png(61, 71, 81)
    garbled = png(62, 72, 82)

    async def go():
        a, b, want = await alice_with_good_avatar(srv, good)
        # no data item under this id
        try:
            await publish(a, NS_META, sha1(missing),
                          f"<metadata xmlns='{NS_META}'>{info(missing)}</metadata>")
        except IqError:
            pass  # refusing it is as good as ignoring it
        await alive(b)
        await card_stays(b, jid("alice"), want, "after metadata without data")
        # a data item that is not base64
        await publish(a, NS_DATA, sha1(garbled),
                      f"<data xmlns='{NS_DATA}'>**not base64 at all!**</data>")
        try:
            await publish(a, NS_META, sha1(garbled),
                          f"<metadata xmlns='{NS_META}'>{info(garbled)}</metadata>")
        except IqError:
            pass
        await alive(b)
        await card_stays(b, jid("alice"), want, "after metadata with garbled data")
        await alive(a)
        await close_all(a, b)
    run(go())


def test_conversion_off(make_server):
    """pubsub.avatar_conversion: false: no feature, no PEP to vCard, no vCard to PEP, no hash
    in presence."""
    srv = make_server(users={"alice": None, "bob": None},
                      config={"pubsub": {"avatar_conversion": False}})
    pep_img = png(11, 22, 33)
    card_img = jpeg_like(b"vcard picture")

    async def go():
        a = await online(srv, "alice")
        b = await online(srv, "bob")
        await befriend(a, b, "alice", "bob")
        assert NS_CONV not in await account_features(a)
        await vcard_set(a, "<FN>Alice</FN>")
        await publish_avatar(a, pep_img)
        await card_stays(b, jid("alice"), ("Alice", []), "PEP avatar with conversion off")
        p = await sent_and_seen(a, b, "pep avatar, conversion off")
        assert photo(p) is None, p
        # a vCard photo stays in the vCard: the PEP nodes keep the PEP avatar only
        await vcard_set(a, f"<FN>Alice</FN><PHOTO><TYPE>image/jpeg</TYPE><BINVAL>{b64(card_img)}"
                           "</BINVAL></PHOTO>")
        await asyncio.sleep(QUIET)
        for node in (NS_DATA, NS_META):
            items = await pep_items(a, jid("alice"), node)
            assert [i.get("id") for i in items] == [sha1(pep_img)], (node, [ET.tostring(i)
                                                                            for i in items])
        p = await sent_and_seen(a, b, "vcard avatar, conversion off")
        assert photo(p) is None, p
        await close_all(a, b)
    run(go())
