"""vCards (XEP-0054, with XEP-0153 photos) and private XML storage (XEP-0049, with XEP-0048
bookmarks in it). Alice keeps her card and her bookmarks on the server; Bob may read her card,
never write it, and never sees her private data."""
import base64
import os
import re
import xml.etree.ElementTree as ET

from conftest import RawClient, run, slix_close, slix_login

NS_VCARD = "vcard-temp"
NS_PRIVATE = "jabber:iq:private"
NS_BOOKMARKS = "storage:bookmarks"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"


def connect(server, user, resource="r"):
    c = RawClient(server.port)
    c.login(user, server.users[user], resource=resource)
    return c


def iq(c, iq_id, body, typ="get", to=None):
    """Send an IQ and return the answer with that id as an Element."""
    to_attr = f" to='{to}'" if to else ""
    c.send(f"<iq type='{typ}' id='{iq_id}'{to_attr}>{body}</iq>")
    rx = rf"<iq\b[^>]*\bid=['\"]{iq_id}['\"](?:[^>]*?/>|[^>]*(?<!/)>.*?</iq>)"
    text = c.read_until(rx)
    return ET.fromstring(re.search(rx, text, re.S).group(0))


def condition(reply):
    assert reply.get("type") == "error", ET.tostring(reply)
    err = reply.find("error")
    conds = [ch.tag for ch in err if ch.tag.startswith("{" + NS_STANZAS + "}")]
    assert len(conds) == 1, ET.tostring(reply)
    return err.get("type"), conds[0].split("}")[1]


def result_payload(reply):
    assert reply.get("type") == "result", ET.tostring(reply)
    children = list(reply)
    assert len(children) <= 1, ET.tostring(reply)
    return children[0] if children else None


def shape(el):
    """Element as comparable data: namespaced tag, attributes, trimmed text, children."""
    return (el.tag, sorted(el.attrib.items()), (el.text or "").strip(),
            [shape(ch) for ch in el])


def photo_vcard(photo, nick="Juliet", note="a &amp; b &lt;c&gt; \u00e9t\u00e9"):
    b64 = base64.b64encode(photo).decode()
    # base64 folded into lines as many clients send it
    folded = "\n".join(b64[i:i + 76] for i in range(0, len(b64), 76))
    return (f"<vCard xmlns='{NS_VCARD}'><FN>Alice Capulet</FN><NICKNAME>{nick}</NICKNAME>"
            f"<NOTE xml:lang='en'>{note}</NOTE>"
            f"<PHOTO><TYPE>image/png</TYPE><BINVAL>{folded}</BINVAL></PHOTO></vCard>")


def binval_of(card):
    return base64.b64decode(card.find(f"{{{NS_VCARD}}}PHOTO/{{{NS_VCARD}}}BINVAL").text)


def test_vcard_own_others_and_photo(server):
    alice = connect(server, "alice")
    bob = connect(server, "bob")

    # disco announces both protocols
    info = result_payload(iq(alice, "d1", f"<query xmlns='{NS_DISCO_INFO}'/>", to=server.domain))
    features = {f.get("var") for f in info.findall(f"{{{NS_DISCO_INFO}}}feature")}
    assert NS_VCARD in features and NS_PRIVATE in features, features

    # no card yet: one's own is an empty <vCard/> (XEP-0054 section 3.1)
    card = result_payload(iq(alice, "g0", f"<vCard xmlns='{NS_VCARD}'/>"))
    assert card.tag == f"{{{NS_VCARD}}}vCard" and len(card) == 0 and not (card.text or "").strip()

    photo = os.urandom(3000)
    sent = photo_vcard(photo)
    assert result_payload(iq(alice, "s1", sent, typ="set")) is None
    want = shape(ET.fromstring(sent))

    # read back without 'to', with 'to' = own bare JID, and by Bob at Alice's bare JID
    for c, iq_id, to in ((alice, "g1", None), (alice, "g2", "alice@localhost"),
                         (bob, "g3", "Alice@LOCALHOST")):
        card = result_payload(iq(c, iq_id, f"<vCard xmlns='{NS_VCARD}'/>", to=to))
        assert shape(card) == want, (iq_id, ET.tostring(card))
        assert binval_of(card) == photo
        assert card.find(f"{{{NS_VCARD}}}NOTE").text == "a & b <c> \u00e9t\u00e9"

    # Bob may not write Alice's card (XEP-0054 section 3.2); hers is untouched
    reply = iq(bob, "s2", f"<vCard xmlns='{NS_VCARD}'><FN>Bob was here</FN></vCard>",
               typ="set", to="alice@localhost")
    assert condition(reply) == ("auth", "forbidden")
    assert shape(result_payload(iq(bob, "g4", f"<vCard xmlns='{NS_VCARD}'/>",
                                   to="alice@localhost"))) == want

    # an account without a card and one that does not exist answer alike (section 3.3)
    for iq_id, to in (("g5", "carol@localhost"), ("g6", "nobody@localhost")):
        assert condition(iq(bob, iq_id, f"<vCard xmlns='{NS_VCARD}'/>", to=to)) == \
            ("cancel", "item-not-found")

    # a new card replaces the old one entirely; an empty card empties it
    assert result_payload(iq(alice, "s3", f"<vCard xmlns='{NS_VCARD}'><NICKNAME>Jules"
                                          "</NICKNAME></vCard>", typ="set")) is None
    card = result_payload(iq(bob, "g7", f"<vCard xmlns='{NS_VCARD}'/>", to="alice@localhost"))
    assert [ch.tag for ch in card] == [f"{{{NS_VCARD}}}NICKNAME"] and card[0].text == "Jules"
    assert result_payload(iq(alice, "s4", f"<vCard xmlns='{NS_VCARD}'/>", typ="set")) is None
    card = result_payload(iq(alice, "g8", f"<vCard xmlns='{NS_VCARD}'/>"))
    assert len(card) == 0


def test_vcard_size_limit(make_server):
    server = make_server(users={"alice": None, "bob": None},
                         config={"vcard": {"max_size": 4096}})
    alice = connect(server, "alice")
    small = photo_vcard(os.urandom(1000), nick="small")
    assert len(small) < 4096
    assert result_payload(iq(alice, "s1", small, typ="set")) is None
    # over the limit: a policy refusal (modify/not-acceptable), and the old card stays
    big = photo_vcard(os.urandom(4000), nick="big")
    assert condition(iq(alice, "s2", big, typ="set")) == ("modify", "not-acceptable")
    card = result_payload(iq(alice, "g1", f"<vCard xmlns='{NS_VCARD}'/>"))
    assert card.find(f"{{{NS_VCARD}}}NICKNAME").text == "small"
    assert shape(card) == shape(ET.fromstring(small))


def test_vcard_with_slixmpp(server):
    """A real client publishes its card with an avatar; another one fetches it."""
    photo = os.urandom(2048)

    async def dialogue():
        alice = await slix_login(server, "alice", resource="phone")
        bob = await slix_login(server, "bob", resource="desk")
        alice.register_plugin("xep_0054")
        bob.register_plugin("xep_0054")
        vcard = alice["xep_0054"].make_vcard()
        vcard["FN"] = "Alice"
        vcard["NICKNAME"] = "Juliet"
        vcard["PHOTO"]["TYPE"] = "image/jpeg"
        vcard["PHOTO"]["BINVAL"] = photo
        await alice["xep_0054"].publish_vcard(vcard, timeout=10)
        got = await bob["xep_0054"].get_vcard(server.jid("alice"), timeout=10)
        card = got["vcard_temp"]
        assert card["FN"] == "Alice"
        assert card.xml.find(f"{{{NS_VCARD}}}NICKNAME").text == "Juliet"
        assert card["PHOTO"]["TYPE"] == "image/jpeg"
        assert binval_of(card.xml) == photo
        await slix_close(alice)
        await slix_close(bob)
    run(dialogue())


def private_get(c, iq_id, child, to=None):
    return iq(c, iq_id, f"<query xmlns='{NS_PRIVATE}'>{child}</query>", to=to)


def private_set(c, iq_id, child, to=None):
    return iq(c, iq_id, f"<query xmlns='{NS_PRIVATE}'>{child}</query>", typ="set", to=to)


def stored(reply):
    q = result_payload(reply)
    assert q is not None and q.tag == f"{{{NS_PRIVATE}}}query", ET.tostring(reply)
    assert len(q) == 1, ET.tostring(reply)
    return q[0]


def test_private_set_get_replace(server):
    alice = connect(server, "alice")
    # nothing stored: the element asked for comes back empty
    el = stored(private_get(alice, "g1", "<prefs xmlns='urn:example:prefs'/>"))
    assert el.tag == "{urn:example:prefs}prefs" and len(el) == 0

    doc = ("<prefs xmlns='urn:example:prefs' xmlns:x='urn:example:x' x:flag='1' xml:lang='en'>"
           "<theme>dark &amp; &lt;moody&gt;</theme><x:extra a='b'/></prefs>")
    assert result_payload(private_set(alice, "s1", doc)) is None
    assert shape(stored(private_get(alice, "g2", "<prefs xmlns='urn:example:prefs'/>"))) == \
        shape(ET.fromstring(doc))
    # the namespace is the key, whatever the element is called in the get
    assert stored(private_get(alice, "g3", "<other xmlns='urn:example:prefs'/>")).find(
        "{urn:example:prefs}theme").text == "dark & <moody>"

    # set replaces; other namespaces are left alone
    notes = "<notes xmlns='urn:example:notes'><n>one</n></notes>"
    assert result_payload(private_set(alice, "s2", notes)) is None
    doc2 = "<prefs xmlns='urn:example:prefs'><theme>light</theme></prefs>"
    assert result_payload(private_set(alice, "s3", doc2)) is None
    assert shape(stored(private_get(alice, "g4", "<prefs xmlns='urn:example:prefs'/>"))) == \
        shape(ET.fromstring(doc2))
    assert shape(stored(private_get(alice, "g5", "<notes xmlns='urn:example:notes'/>"))) == \
        shape(ET.fromstring(notes))

    # several fragments in one set (XEP-0049 allows it), each under its namespace
    a, b = "<a xmlns='urn:example:a'>1</a>", "<b xmlns='urn:example:b'>2</b>"
    assert result_payload(private_set(alice, "s4", a + b)) is None
    assert stored(private_get(alice, "g6", "<a xmlns='urn:example:a'/>")).text == "1"
    assert stored(private_get(alice, "g7", "<b xmlns='urn:example:b'/>")).text == "2"


def test_private_bad_requests(server):
    alice = connect(server, "alice")
    # XEP-0049: reserved namespaces are not keys (a child without xmlns inherits
    # jabber:iq:private)
    for i, child in enumerate(("<x xmlns='jabber:client'/>", "<x xmlns='jabber:server'/>",
                               f"<query xmlns='{NS_PRIVATE}'/>", "<x/>")):
        assert condition(private_set(alice, f"s{i}", child)) == ("modify", "not-acceptable")
        assert condition(private_get(alice, f"g{i}", child)) == ("modify", "not-acceptable")
    # a set must carry a fragment; a get asks for exactly one namespace
    assert condition(private_set(alice, "s9", "")) == ("modify", "not-acceptable")
    assert condition(private_get(alice, "g9", ""))[1] == "bad-request"
    assert condition(private_get(alice, "g10", "<a xmlns='urn:a'/><b xmlns='urn:b'/>"))[1] == \
        "bad-request"
    # a refused set stores nothing, not even its valid fragments
    mixed = "<ok xmlns='urn:ok'>1</ok><x xmlns='jabber:client'/>"
    assert condition(private_set(alice, "s10", mixed)) == ("modify", "not-acceptable")
    ok = stored(private_get(alice, "g11", "<ok xmlns='urn:ok'/>"))
    assert len(ok) == 0 and not (ok.text or "").strip(), ET.tostring(ok)


def test_private_is_private(server):
    alice = connect(server, "alice")
    bob = connect(server, "bob")
    secret = "<diary xmlns='urn:example:diary'>Romeo</diary>"
    assert result_payload(private_set(alice, "s1", secret)) is None
    # to Alice's bare JID, Bob gets forbidden both ways (XEP-0049: preferable to
    # service-unavailable)
    assert condition(private_get(bob, "g1", "<diary xmlns='urn:example:diary'/>",
                                 to="alice@localhost")) == ("auth", "forbidden")
    assert condition(private_set(bob, "s2", "<diary xmlns='urn:example:diary'>Tybalt</diary>",
                                 to="alice@localhost")) == ("auth", "forbidden")
    # Bob's own storage under the same namespace is his, and empty
    assert not (stored(private_get(bob, "g2", "<diary xmlns='urn:example:diary'/>")).text or "")
    # Alice still has hers, also when she names herself
    assert stored(private_get(alice, "g3", "<diary xmlns='urn:example:diary'/>",
                              to="alice@localhost")).text == "Romeo"


def test_bookmarks_with_slixmpp(server):
    """XEP-0048 bookmarks through private storage, written on one device, read on another."""
    async def dialogue():
        from slixmpp.plugins.xep_0048 import Bookmarks
        phone = await slix_login(server, "alice", resource="phone")
        for p in ("xep_0049", "xep_0048"):
            phone.register_plugin(p)
        bm = Bookmarks()
        bm.add_conference("verona@conference.localhost", "Juliet", name="Verona",
                          autojoin=True, password="balcony")
        bm.add_url("https://example.org/rose", name="Rose")
        await phone["xep_0048"].set_bookmarks(bm, method="xep_0049", timeout=10)
        await slix_close(phone)

        desk = await slix_login(server, "alice", resource="desk")
        for p in ("xep_0049", "xep_0048"):
            desk.register_plugin(p)
        got = await desk["xep_0048"].get_bookmarks(method="xep_0049", timeout=10)
        storage = got["private"]["bookmarks"]
        confs = storage.xml.findall(f"{{{NS_BOOKMARKS}}}conference")
        assert len(confs) == 1, ET.tostring(storage.xml)
        conf = confs[0]
        assert conf.get("jid") == "verona@conference.localhost" and conf.get("name") == "Verona"
        assert conf.get("autojoin") in ("true", "1")
        assert conf.find(f"{{{NS_BOOKMARKS}}}nick").text == "Juliet"
        assert conf.find(f"{{{NS_BOOKMARKS}}}password").text == "balcony"
        urls = storage.xml.findall(f"{{{NS_BOOKMARKS}}}url")
        assert [(u.get("url"), u.get("name")) for u in urls] == [("https://example.org/rose",
                                                                  "Rose")]
        # bob's bookmarks are his own, and empty
        bob = await slix_login(server, "bob")
        for p in ("xep_0049", "xep_0048"):
            bob.register_plugin(p)
        mine = await bob["xep_0048"].get_bookmarks(method="xep_0049", timeout=10)
        assert len(mine["private"]["bookmarks"].xml) == 0
        await slix_close(desk)
        await slix_close(bob)
    run(dialogue())


def test_data_survives_restart(make_server):
    server = make_server(users={"alice": None, "bob": None})
    alice = connect(server, "alice")
    photo = os.urandom(1500)
    card = photo_vcard(photo)
    marks = (f"<storage xmlns='{NS_BOOKMARKS}'><conference jid='r@conference.localhost' "
             "autojoin='true'><nick>J</nick></conference></storage>")
    assert result_payload(iq(alice, "s1", card, typ="set")) is None
    assert result_payload(private_set(alice, "s2", marks)) is None
    alice.close()
    assert server.stop() == 0
    server.start()

    alice = connect(server, "alice", resource="again")
    bob = connect(server, "bob")
    got = result_payload(iq(bob, "g1", f"<vCard xmlns='{NS_VCARD}'/>", to="alice@localhost"))
    assert shape(got) == shape(ET.fromstring(card)) and binval_of(got) == photo
    assert shape(stored(private_get(alice, "g2", f"<storage xmlns='{NS_BOOKMARKS}'/>"))) == \
        shape(ET.fromstring(marks))
