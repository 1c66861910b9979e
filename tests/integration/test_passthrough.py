"""Payloads the server does not interpret pass through untouched: message events (XEP-0022),
chat states (XEP-0085), XHTML-IM (XEP-0071), out-of-band data (XEP-0066, in messages and as
jabber:iq:oob IQs), directly and through offline storage; and JIDs with XEP-0106 escapes
arrive exactly as they were bound. Arrivals are parsed and compared as element trees: names,
namespaces, attributes, text and tails."""
import asyncio
import re
import xml.etree.ElementTree as ET

from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from conftest import (RawClient, barrier, next_message, run, slix_close, slix_login)

NS_XHTML_IM = "http://jabber.org/protocol/xhtml-im"
NS_XHTML = "http://www.w3.org/1999/xhtml"
NS_CHATSTATES = "http://jabber.org/protocol/chatstates"

PAYLOADS = {
    "event-request": "<x xmlns='jabber:x:event'><offline/><delivered/><displayed/><composing/></x>",
    "event-report": "<x xmlns='jabber:x:event'><composing/><id>msg-41</id></x>",
    "xhtml": (f"<html xmlns='{NS_XHTML_IM}'><body xmlns='{NS_XHTML}' xml:lang='en'>"
              "<p style='font-weight:bold'>Hi <em>there</em>, see "
              "<a href='http://example.org/?a=1&amp;b=2' title='&quot;quoted&quot; &lt;t&gt;'>"
              "this</a>!</p><p>Line<br/>break <span style='color:#ff0000'>red "
              "<strong>nested <code>deep</code></strong> text</span> tail</p>"
              "<img src='http://example.org/i.png' alt='an image' height='10' width='20'/>"
              "</body><body xmlns='http://www.w3.org/1999/xhtml' xml:lang='fr'><p>Salut</p>"
              "</body></html>"),
    "oob": ("<x xmlns='jabber:x:oob'><url>http://example.org/file.txt?x=1&amp;y=2</url>"
            "<desc>A file &amp; its description: \u00e9t\u00e9 \u263a</desc></x>"),
}
CHAT_STATES = ("active", "composing", "paused", "inactive", "gone")


def canon(el, with_tail=False):
    """Everything that makes two elements the same: expanded name, attributes, text,
    children in order, and the text after each child (mixed content)."""
    return (el.tag, sorted(el.attrib.items()), el.text or "",
            [canon(c, True) for c in el], (el.tail or "") if with_tail else "")


def payload_of(msg_xml, tag):
    found = msg_xml.find(tag)
    assert found is not None, f"{tag} missing in {ET.tostring(msg_xml)!r}"
    return found


def in_client_ns(stanza):
    """A stanza as it stands in the stream: in the content namespace jabber:client, without
    the XEP-0359 stanza-id the archive adds for the recipient (the one thing a server adds)."""
    if not re.match(r"<\w+[^>]*\sxmlns=", stanza):
        stanza = re.sub(r"^<(\w+)", r"<\1 xmlns='jabber:client'", stanza, count=1)
    tree = ET.fromstring(stanza)
    for sid in tree.findall("{urn:xmpp:sid:0}stanza-id"):
        tree.remove(sid)
    return tree


def sent_tree(xml):
    return ET.fromstring(xml)


def slix_message(c, to, body, *payloads, mid=None, mtype="chat"):
    m = c.make_message(mto=to, mbody=body, mtype=mtype)
    if body is None:
        del m["body"]
    if mid:
        m["id"] = mid
    for p in payloads:
        m.xml.append(ET.fromstring(p))
    return m


async def no_message(c, seconds=1.0):
    try:
        m = await asyncio.wait_for(c.messages.get(), seconds)
    except asyncio.TimeoutError:
        return
    raise AssertionError(f"{c.boundjid} got an unexpected message: {m}")


def test_payloads_direct(server):
    async def dialogue():
        alice = await slix_login(server, "alice", resource="a")
        bob = await slix_login(server, "bob", resource="b")
        bob.send_presence()
        await barrier(bob, server)
        for name, xml in PAYLOADS.items():
            slix_message(alice, bob.boundjid, f"body of {name}", xml, mid=name).send()
            m = await next_message(bob, what=f"the {name} message")
            assert m["id"] == name and m["body"] == f"body of {name}", m
            want = sent_tree(xml)
            got = payload_of(m.xml, want.tag)
            assert canon(got) == canon(want), f"{name} changed:\n{ET.tostring(got)!r}"
        # Chat states alone and with a body, to the full and the bare JID.
        for state in CHAT_STATES:
            xml = f"<{state} xmlns='{NS_CHATSTATES}'/>"
            for to, body in ((bob.boundjid, None), (bob.boundjid.bare, f"{state}!")):
                slix_message(alice, to, body, xml, mid=f"cs-{state}").send()
                m = await next_message(bob, what=f"chat state {state}")
                assert m["id"] == f"cs-{state}", m
                assert canon(payload_of(m.xml, f"{{{NS_CHATSTATES}}}{state}")) == canon(
                    sent_tree(xml))
                assert (m.xml.find("{jabber:client}body") is None) == (body is None), m
        # All of them in one message.
        allxml = list(PAYLOADS.values()) + [f"<composing xmlns='{NS_CHATSTATES}'/>"]
        slix_message(alice, bob.boundjid, "everything", *allxml, mid="all").send()
        m = await next_message(bob)
        # everything but the body and the stanza-id the archive adds (XEP-0359)
        kids = [c for c in m.xml
                if c.tag not in ("{jabber:client}body", "{urn:xmpp:sid:0}stanza-id")]
        assert [canon(c) for c in kids] == [canon(sent_tree(x)) for x in allxml], m
        for c in (alice, bob):
            await slix_close(c)
    run(dialogue())


def test_payloads_raw_prefixes_and_references(server):
    """Bytes slixmpp would not write: namespace prefixes, character references, CDATA. The
    server may re-serialize them; the tree must stay the same."""
    alice = RawClient(server.port)
    alice.login("alice", server.users["alice"], "raw")
    bob = RawClient(server.port)
    bob.login("bob", server.users["bob"], "raw")
    bob.send("<presence/>")
    sent = ("<message to='bob@localhost/raw' id='r1' type='chat' xmlns:ev='jabber:x:event'>"
            "<body>caf&#xe9; &#9786; &lt;ok&gt;</body>"
            "<ev:x><ev:delivered/><ev:id>r0</ev:id></ev:x>"
            "<h:html xmlns:h='http://jabber.org/protocol/xhtml-im'>"
            "<b:body xmlns:b='http://www.w3.org/1999/xhtml'><b:p>one <b:em a=\"it's\">two"
            "</b:em><![CDATA[ <three> & ]]></b:p></b:body></h:html>"
            "<x xmlns='jabber:x:oob'><url>http://example.org/?q=&#x26;</url><desc/></x>"
            "<active xmlns='http://jabber.org/protocol/chatstates'/></message>")
    alice.send(sent)
    text = bob.read_until(r"<message[^>]*id=['\"]r1['\"].*?</message>")
    raw = re.search(r"<message[^>]*id=['\"]r1['\"].*?</message>", text, re.S).group(0)
    got, want = in_client_ns(raw), in_client_ns(sent)
    assert got.attrib.pop("from") == alice.jid, raw
    assert canon(got) == canon(want), f"changed:\n{raw}"
    alice.close()
    bob.close()


def test_payloads_through_offline_storage(server):
    async def dialogue():
        alice = await slix_login(server, "alice", resource="a")
        names = list(PAYLOADS) + ["chatstate"]
        xmls = dict(PAYLOADS, chatstate=f"<composing xmlns='{NS_CHATSTATES}'/>")
        for name in names:
            slix_message(alice, server.jid("bob"), f"stored {name}", xmls[name],
                         mid=f"off-{name}").send()
        await barrier(alice, server)
        bob = await slix_login(server, "bob", resource="later")
        bob.send_presence()
        got = {}
        for _ in names:
            m = await next_message(bob, what="an offline message")
            got[m["id"]] = m
        for name in names:
            m = got[f"off-{name}"]
            assert m["body"] == f"stored {name}", m
            want = sent_tree(xmls[name])
            assert canon(payload_of(m.xml, want.tag)) == canon(want), (
                f"{name} changed in storage: {m}")
            assert m.xml.find("{urn:xmpp:delay}delay") is not None, m
        for c in (alice, bob):
            await slix_close(c)
    run(dialogue())


def test_iq_oob_routed_and_answered(server):
    async def dialogue():
        alice = await slix_login(server, "alice", resource="a")
        bob = await slix_login(server, "bob", resource="b")
        seen = asyncio.Queue()

        def on_oob(iq):
            seen.put_nowait(iq)
            iq.reply(clear=True).send()
        bob.register_handler(Callback("oob", MatchXPath("{jabber:client}iq/{jabber:iq:oob}query"),
                                      on_oob))
        query = ("<query xmlns='jabber:iq:oob' sid='s1'><url>http://example.org/a b.txt</url>"
                 "<desc>A &lt;file&gt;</desc></query>")
        iq = alice.make_iq_set(ito=bob.boundjid)
        iq.append(ET.fromstring(query))
        res = await iq.send(timeout=10)
        assert res["type"] == "result" and res["from"] == bob.boundjid, res
        got = await asyncio.wait_for(seen.get(), 10)
        assert got["from"] == alice.boundjid
        q = got.xml.find("{jabber:iq:oob}query")
        assert canon(q) == canon(ET.fromstring(query)), ET.tostring(q)
        for c in (alice, bob):
            await slix_close(c)
    run(dialogue())


def test_escaped_jids(make_server):
    dart, cadet = "d\\27artagnan", "space\\20cadet"
    srv = make_server(users={dart: None, cadet: None, "alice": None})
    listed = srv.ctl("user", "list").stdout.split()
    assert srv.jid(dart) in listed and srv.jid(cadet) in listed, listed

    async def dialogue():
        d = await slix_login(srv, dart, resource="musket")
        c = await slix_login(srv, cadet, resource="ship")
        assert str(d.boundjid) == srv.jid(dart) + "/musket", d.boundjid
        presences = asyncio.Queue()
        c.add_event_handler("presence_available", lambda p: presences.put_nowait(p))
        c.send_presence()
        await barrier(c, srv)
        d.send_presence(pto=c.boundjid)  # directed presence
        while True:  # skipping the echo of its own presence
            p = await asyncio.wait_for(presences.get(), 10)
            if not p.xml.get("from").startswith(srv.jid(cadet)):
                break
        assert p.xml.get("from") == srv.jid(dart) + "/musket", ET.tostring(p.xml)

        d.send_message(mto=srv.jid(cadet), mbody="all for one", mtype="chat")
        m = await next_message(c)
        assert m.xml.get("from") == srv.jid(dart) + "/musket", ET.tostring(m.xml)
        assert m.xml.get("to") in (srv.jid(cadet), srv.jid(cadet) + "/ship"), ET.tostring(m.xml)
        assert m["from"].unescape().user == "d'artagnan"
        c.send_message(mto=m["from"], mbody="one for all", mtype="chat")
        m = await next_message(d)
        assert m.xml.get("from") == srv.jid(cadet) + "/ship", ET.tostring(m.xml)
        assert m["body"] == "one for all"
        for x in (d, c):
            await slix_close(x)
    run(dialogue())

    # On the wire, byte for byte; and the unescaped forms are not JIDs at all.
    alice = RawClient(srv.port)
    alice.login("alice", srv.users["alice"], "w")
    cad = RawClient(srv.port)
    cad.login(cadet, srv.users[cadet], "wire")
    cad.send("<presence/>")
    alice.send(f"<message to='{srv.jid(cadet)}/wire' id='w1'><body>x</body></message>")
    text = cad.read_until(r"<message[^>]*id=['\"]w1['\"]")
    assert re.search(r"from=['\"]alice@localhost/w['\"]", text), text
    assert f"to='{srv.jid(cadet)}/wire'" in text or f'to="{srv.jid(cadet)}/wire"' in text, text
    alice.send("<message to='space cadet@localhost' id='w2'><body>x</body></message>")
    text = alice.read_until(r"<message[^>]*id=['\"]w2['\"].*?</message>")
    assert "type='error'" in text and "jid-malformed" in text, text
    alice.close()
    cad.close()
