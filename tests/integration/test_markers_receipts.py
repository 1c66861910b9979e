"""Chat markers (XEP-0333) and delivery receipts (XEP-0184) are end-to-end payloads: the server
passes them on untouched, live and through offline storage (XEP-0160)."""

from conftest import next_message, run, slix_close, slix_login, slix_ping

NS_RECEIPTS = "urn:xmpp:receipts"
NS_MARKERS = "urn:xmpp:chat-markers:0"
USERS = {"alice": None, "bob": None}


def jid(user, res=None):
    return f"{user}@localhost" + (f"/{res}" if res else "")


# (id, payload XML, the elements that must arrive as sent: (ns, name, attributes))
STANZAS = [
    ("m1", f"<body>Hi &amp; bye</body><request xmlns='{NS_RECEIPTS}'/>"
           f"<markable xmlns='{NS_MARKERS}'/>",
     [(NS_RECEIPTS, "request", {}), (NS_MARKERS, "markable", {})]),
    ("r1", f"<received xmlns='{NS_RECEIPTS}' id='m0'/>", [(NS_RECEIPTS, "received", {"id": "m0"})]),
    ("k1", f"<received xmlns='{NS_MARKERS}' id='m0'/>", [(NS_MARKERS, "received", {"id": "m0"})]),
    ("k2", f"<displayed xmlns='{NS_MARKERS}' id='m0'/>",
     [(NS_MARKERS, "displayed", {"id": "m0"})]),
    ("k3", f"<acknowledged xmlns='{NS_MARKERS}' id='m0'/>",
     [(NS_MARKERS, "acknowledged", {"id": "m0"})]),
]


def send_all(c, to):
    for mid, payload, _ in STANZAS:
        c.send_raw(f"<message to='{to}' type='chat' id='{mid}'>{payload}</message>")


def check(m, mid, expected):
    assert m["id"] == mid, f"wanted message {mid}, got {m}"
    assert m["from"] == jid("bob", "home"), m
    for ns, name, attrs in expected:
        el = m.xml.find(f"{{{ns}}}{name}")
        assert el is not None, f"{{{ns}}}{name} missing from {m}"
        assert dict(el.attrib) == attrs, f"{{{ns}}}{name} changed: {m}"
        assert len(el) == 0 and not (el.text or "").strip(), f"{{{ns}}}{name} changed: {m}"
    if mid == "m1":
        assert m["body"] == "Hi & bye", m


def test_live(make_server):
    srv = make_server(users=USERS)

    async def go():
        a = await slix_login(srv, "alice", resource="phone")
        b = await slix_login(srv, "bob", resource="home")
        a.send_presence()
        b.send_presence()
        await slix_ping(a)
        await slix_ping(b)
        send_all(b, jid("alice", "phone"))
        for mid, _, expected in STANZAS:
            check(await next_message(a, what=f"message {mid}"), mid, expected)
        await slix_close(a)
        await slix_close(b)

    run(go())


def test_offline(make_server):
    srv = make_server(users=USERS)

    async def go():
        b = await slix_login(srv, "bob", resource="home")
        send_all(b, jid("alice"))
        await slix_ping(b)
        a = await slix_login(srv, "alice", resource="phone")
        a.send_presence()
        for mid, _, expected in STANZAS:
            m = await next_message(a, what=f"offline message {mid}")
            check(m, mid, expected)
            assert m.xml.find("{urn:xmpp:delay}delay") is not None, m
        await slix_close(a)
        await slix_close(b)

    run(go())
