"""Rosters, presence subscriptions, presence broadcast and offline messages (RFC 6121,
XEP-0160), between real streams. Alice and Bob go through the whole life of a contact."""
import re
import time

from conftest import RawClient

ROSTER = "jabber:iq:roster"


def q(s):
    """Server output uses single quotes; make patterns quote-agnostic."""
    return s.replace("'", "['\"]")


def connect(server, user, resource, available=True):
    c = RawClient(server.port)
    c.login(user, server.users[user], resource=resource)
    c.send(f"<iq type='get' id='r0'><query xmlns='{ROSTER}'/></iq>")
    c.read_until(q(r"<iq[^>]*id='r0'.*?(</iq>|/>)"))
    if available:
        c.send("<presence/>")
        c.read_until(q(rf"<presence[^>]*from='{re.escape(c.jid)}'"))
    return c


def roster_of(c, iq_id="rg"):
    """The whole roster result (an empty one is <iq .../>; items end with '/>' too)."""
    c.send(f"<iq type='get' id='{iq_id}'><query xmlns='{ROSTER}'/></iq>")
    return c.read_until(q(rf"<iq[^>]*id='{iq_id}'([^>]*/>|.*?</iq>)"))


def test_roster_set_get_push_remove(server):
    a1 = connect(server, "alice", "one")
    a2 = connect(server, "alice", "two")
    a1.send(f"<iq type='set' id='s1'><query xmlns='{ROSTER}'><item jid='Carol@localhost' "
            f"name='Carol &amp; co'><group>Friends</group><group>Work</group></item></query></iq>")
    a1.read_until(q(r"<iq[^>]*id='s1'[^>]*type='result'|<iq[^>]*type='result'[^>]*id='s1'"))
    for c in (a1, a2):  # pushes to every interested resource, with the prepared JID
        push = c.read_until(q(r"<iq[^>]*type='set'.*?</iq>"))
        assert re.search(q(r"jid='carol@localhost'"), push), push
        assert "<group>Friends</group>" in push and "subscription" in push, push
    r = roster_of(a2)
    assert re.search(q(r"name='Carol &amp; co'"), r) and re.search(q("subscription='none'"), r) and "Work" in r, r
    ver = re.search(r"ver=['\"]([^'\"]+)['\"]", r).group(1)
    # versioning: the same version gives an empty result
    a2.send(f"<iq type='get' id='v1'><query xmlns='{ROSTER}' ver='{ver}'/></iq>")
    same = a2.read_until(q(r"<iq[^>]*id='v1'.*?(</iq>|/>)"))
    assert "<item" not in same, same
    # duplicate group, two items: bad-request
    a1.send(f"<iq type='set' id='s2'><query xmlns='{ROSTER}'><item jid='x@localhost'>"
            f"<group>G</group><group>G</group></item></query></iq>")
    assert "bad-request" in a1.read_until(q(r"<iq[^>]*id='s2'.*?</iq>"))
    a1.send(f"<iq type='set' id='s3'><query xmlns='{ROSTER}'><item jid='carol@localhost' "
            f"subscription='remove'/></query></iq>")
    a1.read_until(q(r"<iq[^>]*id='s3'"))
    assert re.search(q(r"subscription='remove'"), a2.read_until(q(r"subscription='remove'")))
    r = roster_of(a1, "rg2")
    assert "carol@localhost" not in r[r.index("rg2"):], r
    # another user's roster is not ours to read
    a1.send(f"<iq type='get' id='s4' to='bob@localhost'><query xmlns='{ROSTER}'/></iq>")
    assert "forbidden" in a1.read_until(q(r"<iq[^>]*id='s4'.*?</iq>"))


def test_subscription_life_and_presence(server):
    alice = connect(server, "alice", "home")
    bob = connect(server, "bob", "work")
    # alice asks: bob sees the request (from alice's bare JID), alice's item is pending
    alice.send("<presence to='bob@localhost' type='subscribe'/>")
    req = bob.read_until(q(r"<presence[^>]*type='subscribe'[^>]*/>"))
    assert re.search(q(r"from='alice@localhost'"), req), req
    assert re.search(q(r"ask='subscribe'"), alice.read_until(q(r"ask='subscribe'.*?</iq>")))
    # bob approves: alice gets 'subscribed' and bob's presence; the rosters say to/from
    bob.send("<presence to='alice@localhost' type='subscribed'/>")
    got = alice.read_until(q(r"<presence[^>]*from='bob@localhost/work'[^>]*>"))
    assert "subscribed" in got, got
    assert re.search(q(r"jid='alice@localhost'[^>]*subscription='from'"), roster_of(bob))
    assert re.search(q(r"jid='bob@localhost'[^>]*subscription='to'"), roster_of(alice, "ra"))
    # bob's status changes reach alice; alice's do not reach bob (no 'from' for alice yet)
    bob.send("<presence><show>away</show><status>lunch</status></presence>")
    got = alice.read_until(q(r"<presence[^>]*from='bob@localhost/work'.*?</presence>"))
    assert "<show>away</show>" in got, got
    alice.send("<presence><show>dnd</show></presence>")
    assert "dnd" not in bob.nothing_for(1.0)
    # mutual, then alice's broadcast reaches bob
    bob.send("<presence to='alice@localhost' type='subscribe'/>")
    alice.read_until(q(r"type='subscribe'"))
    alice.send("<presence to='bob@localhost' type='subscribed'/>")
    assert re.search(q(r"jid='alice@localhost'[^>]*subscription='both'"),
                     bob.read_until(q(r"subscription='both'.*?</iq>")))
    alice.send("<presence><status>back</status></presence>")
    assert "from" in bob.read_until(r"<status>back</status></presence>")
    # a new session of bob gets alice's current presence at once (answered probe)
    bob2 = connect(server, "bob", "phone", available=False)
    bob2.send("<presence/>")
    got = bob2.read_until(q(r"from='alice@localhost/home'.*?</presence>"))
    assert "back" in got, got
    # when alice's session ends, bob hears she is unavailable
    alice.close()
    got = bob.read_until(q(r"<presence[^>]*from='alice@localhost/home'[^>]*type='unavailable'|"
                           r"<presence[^>]*type='unavailable'[^>]*from='alice@localhost/home'"))
    assert got
    # bob cancels: alice's item in bob's roster goes to 'to'... and a removal clears everything
    bob.send(f"<iq type='set' id='rm'><query xmlns='{ROSTER}'><item jid='alice@localhost' "
             f"subscription='remove'/></query></iq>")
    bob.read_until(q(r"<iq[^>]*id='rm'"))
    alice2 = connect(server, "alice", "again")
    r = roster_of(alice2, "rb")
    assert re.search(q(r"jid='bob@localhost'[^>]*subscription='none'"), r) or "bob@localhost" not in r, r


def test_pending_request_and_offline_messages(make_server):
    server = make_server(users={"alice": None, "bob": None},
                         config={"offline": {"max_messages": 3}})
    alice = connect(server, "alice", "a")
    # bob is offline: the request waits, messages are stored up to the quota
    alice.send("<presence to='bob@localhost' type='subscribe'/>")
    for i in range(3):
        alice.send(f"<message to='bob@localhost' type='chat' id='o{i}'><body>m{i}</body></message>")
    alice.send("<message to='bob@localhost' type='chat' id='o3'><body>too many</body></message>")
    err = alice.read_until(q(r"<message[^>]*type='error'.*?</message>"))
    assert "resource-constraint" in err and "o3" in err, err
    alice.send("<message to='nobody@localhost' id='o4'><body>x</body></message>")
    assert "service-unavailable" in alice.read_until(q(r"<message[^>]*id='o4'.*?</message>"))
    # bob logs in: the request and the three messages arrive, in order, with delay stamps
    bob = connect(server, "bob", "b", available=False)
    bob.send("<presence/>")
    got = bob.read_until(r"m2</body>.*?</message>")
    assert re.search(q(r"type='subscribe'"), got), got
    bodies = re.findall(r"<body>(m\d)</body>", got)
    assert bodies == ["m0", "m1", "m2"], got
    assert got.count("urn:xmpp:delay") == 3, got
    # delivered once: a second session finds nothing
    bob2 = connect(server, "bob", "b2", available=False)
    bob2.send("<presence/>")
    assert "<body>m" not in bob2.nothing_for(1.0)


def test_offline_messages_survive_restart(make_server):
    server = make_server(users={"alice": None, "bob": None})
    alice = connect(server, "alice", "a")
    alice.send("<message to='bob@localhost' type='chat' id='k1'><body>kept</body></message>")
    alice.send("<iq type='get' id='sync' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
    alice.read_until(q(r"<iq[^>]*id='sync'"))
    alice.close()
    assert server.stop() == 0
    server.start()
    bob = connect(server, "bob", "b", available=False)
    bob.send("<presence/>")
    assert "kept" in bob.read_until(r"kept</body>.*?</message>")


def test_pre_approval(make_server):
    """RFC 6121 §3.4: Alice approves Bob before he asks; his request is then granted by the
    server without a word to Alice, and the approval survives a restart."""
    server = make_server(users={"alice": None, "bob": None, "carol": None})
    pre = RawClient(server.port)
    assert "pre-approval" not in pre.open_stream()  # only offered once authenticated
    pre.close()
    alice = connect(server, "alice", "home")
    assert re.search(q(r"<sub xmlns='urn:xmpp:features:pre-approval'\s*/>"), alice.features), \
        alice.features
    bob = connect(server, "bob", "work")
    # alice pre-approves bob: the item appears with approved='true'; bob hears nothing
    alice.send("<presence to='bob@localhost' type='subscribed'/>")
    push = alice.read_until(q(r"<iq[^>]*type='set'.*?</iq>"))
    assert re.search(q(r"jid='bob@localhost'[^>]*subscription='none'[^>]*approved='true'"),
                     push), push
    assert "subscribed" not in bob.nothing_for(1.0)
    assert re.search(q(r"jid='bob@localhost'[^>]*approved='true'"), roster_of(alice))
    # approving again changes nothing and still tells bob nothing
    alice.send("<presence to='bob@localhost' type='subscribed'/>")
    assert "subscribed" not in bob.nothing_for(0.5)
    # bob asks: the server answers for alice at once and sends her presence
    bob.send("<presence to='alice@localhost' type='subscribe'/>")
    got = bob.read_until(q(r"<presence[^>]*from='alice@localhost/home'[^>]*>"))
    assert re.search(q(r"<presence[^>]*from='alice@localhost'[^>]*type='subscribed'|"
                       r"<presence[^>]*type='subscribed'[^>]*from='alice@localhost'"), got), got
    push = alice.read_until(q(r"<iq[^>]*type='set'.*?</iq>"))
    assert re.search(q(r"jid='bob@localhost'[^>]*subscription='from'"), push), push
    assert "approved" not in push, push  # used up
    assert "type='subscribe'" not in alice.nothing_for(1.0).replace('"', "'")
    assert re.search(q(r"jid='alice@localhost'[^>]*subscription='to'"), roster_of(bob, "rb"))
    r = roster_of(alice, "ra")
    assert re.search(q(r"jid='bob@localhost'[^>]*subscription='from'"), r) and "approved" not in r
    alice.send("<presence><status>pre</status></presence>")
    assert "from" in bob.read_until(r"<status>pre</status></presence>")
    # a pre-approval of someone not in the roster is kept across a restart (storage)
    alice.send("<presence to='carol@localhost' type='subscribed'/>")
    alice.read_until(q(r"jid='carol@localhost'[^>]*approved='true'.*?</iq>"))
    alice.close()
    bob.close()
    assert server.stop() == 0
    server.start()
    alice = connect(server, "alice", "again")
    assert re.search(q(r"jid='carol@localhost'[^>]*approved='true'"), roster_of(alice))
    carol = connect(server, "carol", "c")
    carol.send("<presence to='alice@localhost' type='subscribe'/>")
    carol.read_until(q(r"<presence[^>]*from='alice@localhost'[^>]*type='subscribed'|"
                       r"<presence[^>]*type='subscribed'[^>]*from='alice@localhost'"))
    assert re.search(q(r"jid='carol@localhost'[^>]*subscription='from'"), roster_of(alice, "r2"))


def test_pre_approval_cancelled(server):
    """An 'unsubscribed' or a removal takes a pre-approval back, and clients cannot set
    approved='true' through the roster (RFC 6121 §2.1.2.1, §3.4)."""
    alice = connect(server, "alice", "home")
    bob = connect(server, "bob", "work")
    alice.send("<presence to='bob@localhost' type='subscribed'/>")
    alice.read_until(q(r"approved='true'.*?</iq>"))
    alice.send("<presence to='bob@localhost' type='unsubscribed'/>")
    push = alice.read_until(q(r"<iq[^>]*type='set'.*?</iq>"))
    assert re.search(q(r"jid='bob@localhost'[^>]*subscription='none'"), push), push
    assert "approved" not in push, push
    assert "subscribed" not in bob.nothing_for(1.0)  # neither stanza reached bob
    # bob's request now waits for alice, as any other
    bob.send("<presence to='alice@localhost' type='subscribe'/>")
    req = alice.read_until(q(r"<presence[^>]*type='subscribe'[^>]*/>"))
    assert re.search(q(r"from='bob@localhost'"), req), req
    assert "type='subscribed'" not in bob.nothing_for(1.0).replace('"', "'")
    # removing the contact drops the pre-approval with the item
    alice.send("<presence to='carol@localhost' type='subscribed'/>")
    alice.read_until(q(r"jid='carol@localhost'[^>]*approved='true'.*?</iq>"))
    alice.send(f"<iq type='set' id='rm'><query xmlns='{ROSTER}'><item jid='carol@localhost' "
               f"subscription='remove'/></query></iq>")
    alice.read_until(q(r"<iq[^>]*id='rm'"))
    carol = connect(server, "carol", "c")
    carol.send("<presence to='alice@localhost' type='subscribe'/>")
    req = alice.read_until(q(r"<presence[^>]*from='carol@localhost'[^>]*type='subscribe'[^>]*/>|"
                             r"<presence[^>]*type='subscribe'[^>]*from='carol@localhost'[^>]*/>"))
    assert "type='subscribed'" not in carol.nothing_for(1.0).replace('"', "'")
    # a client's approved='true' in a roster set is ignored
    alice.send(f"<iq type='set' id='ap'><query xmlns='{ROSTER}'><item jid='dave@localhost' "
               f"approved='true'/></query></iq>")
    alice.read_until(q(r"<iq[^>]*id='ap'"))
    r = roster_of(alice, "rd")
    assert re.search(q(r"jid='dave@localhost'"), r) and "approved" not in r, r
