"""Entity capabilities of the clients (XEP-0115): the server learns what a ver means by asking
one session that advertised it (disco#info to node#ver), verifies the answer, and asks nobody
else about that ver. A wrong answer is not believed for the others: the next session with that
ver is asked. Legacy caps (no hash) are asked of every session. Real slixmpp clients prove the
verification agrees with a client's own ver."""
import asyncio
import base64
import hashlib
import re

from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from conftest import RawClient, run, slix_client, slix_close, slix_ping

NS_CAPS = "http://jabber.org/protocol/caps"
NS_INFO = "http://jabber.org/protocol/disco#info"
NODE = "https://romeo.example/client"
MODULES = ["ping", "disco", "caps"]
USERS = {"alice": None, "bob": None, "carol": None, "dave": None}

QUERY_RE = (r"<iq(?=[^>]*type=['\"]get['\"])[^>]*>\s*<query[^>]*xmlns=['\"]"
            + re.escape(NS_INFO) + r"['\"][^>]*?(?:/>|>.*?</query>)\s*</iq>")


def ver_of(identities, features):
    s = "".join(f"{c}/{t}//{n}<" for c, t, n in sorted(identities))
    s += "".join(f + "<" for f in sorted(features))
    return base64.b64encode(hashlib.sha1(s.encode()).digest()).decode()


IDS = [("client", "phone", "Balcony 1.0")]
FEATS = ["http://jabber.org/protocol/caps", NS_INFO, "urn:xmpp:ping",
         "http://jabber.org/protocol/tune+notify"]
VER = ver_of(IDS, FEATS)


def login(srv, user, resource="r"):
    c = RawClient(srv.port)
    c.login(user, srv.users[user], resource)
    return c


def caps_presence(ver, hash_="sha-1", node=NODE, ext=None):
    h = f" hash='{hash_}'" if hash_ else ""
    e = f" ext='{ext}'" if ext else ""
    return f"<presence><c xmlns='{NS_CAPS}'{h} node='{node}' ver='{ver}'{e}/></presence>"


def next_query(c, timeout=10):
    """The server's next disco#info get to c: (id, node or None)."""
    text = c.read_until(QUERY_RE, timeout=timeout)
    q = re.search(QUERY_RE, text, re.S).group(0)
    assert re.search(r"from=['\"]localhost['\"]", q), q
    iq_id = re.search(r"id=['\"]([^'\"]+)['\"]", q).group(1)
    node = re.search(r"node=['\"]([^'\"]+)['\"]", q)
    return iq_id, node.group(1) if node else None


def answer(c, iq_id, node, identities=IDS, features=FEATS):
    n = f" node='{node}'" if node else ""
    body = "".join(f"<identity category='{a}' type='{b}' name='{nm}'/>" for a, b, nm in identities)
    body += "".join(f"<feature var='{f}'/>" for f in features)
    c.send(f"<iq type='result' id='{iq_id}' to='localhost'><query xmlns='{NS_INFO}'{n}>"
           f"{body}</query></iq>")


def barrier(c, n=[0]):
    """A ping round trip: the server has handled everything c sent before."""
    n[0] += 1
    c.send(f"<iq type='get' id='ping{n[0]}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
    c.read_until(rf"<iq[^>]*id=['\"]ping{n[0]}['\"]")


def no_query(c, seconds=1.5):
    text = c.nothing_for(seconds)
    assert NS_INFO not in text, f"{c.jid} was asked again: {text!r}"


def test_one_query_per_ver(make_server):
    """Alice is asked; Bob, with the same ver while Alice has not answered yet, waits for her
    answer and is not asked; Carol, later, is not asked either. Dave's other ver is asked."""
    srv = make_server(users=USERS, config={"modules": MODULES})
    alice, bob, carol, dave = (login(srv, u) for u in ("alice", "bob", "carol", "dave"))
    alice.send(caps_presence(VER))
    iq_id, node = next_query(alice)
    assert node == f"{NODE}#{VER}"
    bob.send(caps_presence(VER))
    barrier(bob)
    no_query(bob, 0.5)
    answer(alice, iq_id, node)
    barrier(alice)
    carol.send(caps_presence(VER))
    barrier(carol)
    no_query(carol)
    no_query(bob, 0.1)
    # the same presence again (a status change) asks nothing either
    alice.send(caps_presence(VER).replace("</presence>", "<show>away</show></presence>"))
    barrier(alice)
    no_query(alice, 0.5)

    other = ver_of(IDS, FEATS[:-1])
    dave.send(caps_presence(other))
    iq_id, node = next_query(dave)
    assert node == f"{NODE}#{other}"
    answer(dave, iq_id, node, features=FEATS[:-1])
    barrier(dave)
    # a new session of Alice with Dave's ver: cached by now
    alice2 = login(srv, "alice", "second")
    alice2.send(caps_presence(other))
    barrier(alice2)
    no_query(alice2)
    for c in (alice, bob, carol, dave, alice2):
        c.close()


def test_wrong_answer_is_not_cached(make_server):
    """Alice's answer does not hash to the ver she advertised: Bob, waiting on the same ver, is
    asked next; Carol's error answer makes the server ask Dave; once Dave answered right,
    nobody else is asked."""
    srv = make_server(users=USERS, config={"modules": MODULES})
    alice, bob = login(srv, "alice"), login(srv, "bob")
    alice.send(caps_presence(VER))
    iq_id, node = next_query(alice)
    bob.send(caps_presence(VER))
    barrier(bob)
    answer(alice, iq_id, node, features=FEATS + ["urn:xmpp:jingle:1"])  # a lie
    iq_id, node = next_query(bob)
    assert node == f"{NODE}#{VER}"

    carol, dave = login(srv, "carol"), login(srv, "dave")
    carol.send(caps_presence(VER))
    barrier(carol)
    dave.send(caps_presence(VER))
    barrier(dave)
    # Bob answers with an ill-formed list (a feature twice): not cached, Carol is next
    answer(bob, iq_id, node, features=FEATS + [FEATS[0]])
    iq_id, node = next_query(carol)
    carol.send(f"<iq type='error' id='{iq_id}' to='localhost'><query xmlns='{NS_INFO}'/>"
               "<error type='cancel'><item-not-found "
               "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>")
    iq_id, node = next_query(dave)
    answer(dave, iq_id, node)
    barrier(dave)
    alice2 = login(srv, "alice", "second")
    alice2.send(caps_presence(VER))
    barrier(alice2)
    no_query(alice2)
    for c in (alice, bob, carol, dave, alice2):
        c.close()


def test_legacy_caps_asked_of_each(make_server):
    """Caps without 'hash' (XEP-0115 before 1.5) cannot be verified: every session is asked,
    without a node, and nothing is cached."""
    srv = make_server(users=USERS, config={"modules": MODULES})
    alice, bob = login(srv, "alice"), login(srv, "bob")
    for c in (alice, bob):
        c.send(caps_presence("1.0", hash_=None, ext="voice-v1"))
        iq_id, node = next_query(c)
        assert node is None
        answer(c, iq_id, None)
        barrier(c)
    # the same legacy caps again from Alice: nothing new to learn
    alice.send(caps_presence("1.0", hash_=None, ext="voice-v1"))
    barrier(alice)
    no_query(alice)
    alice.close()
    bob.close()


def test_without_the_module_nobody_is_asked(make_server):
    srv = make_server(users=USERS, config={"modules": ["ping", "disco"]})
    alice = login(srv, "alice")
    alice.send(caps_presence(VER))
    barrier(alice)
    no_query(alice)
    alice.close()


def test_slixmpp_clients_share_one_query(make_server):
    """slixmpp's XEP-0115 plugin advertises the ver of its own disco#info: the server
    verifies it (were it refused, the second client would be asked too) and asks once."""
    srv = make_server(users=USERS, config={"modules": MODULES})

    async def scenario():
        clients = []
        for user in ("alice", "bob"):
            c = slix_client(srv, user, resource="phone", plugins=["xep_0030", "xep_0115"])
            c.queries = []
            c.register_handler(Callback(
                "disco#info gets", MatchXPath(f"{{jabber:client}}iq/{{{NS_INFO}}}query"),
                lambda iq, c=c: c.queries.append(iq["disco_info"]["node"])
                if iq["type"] == "get" and iq["from"].full == "localhost" else None))
            c.connect(c._mp_address, use_ssl=c._mp_ssl)
            await asyncio.wait_for(c.started.wait(), 20)
            # the plugin adds <c/> only once it has computed its ver (asynchronously)
            await c["xep_0115"].update_caps(broadcast=False)
            c.send_presence()
            clients.append(c)
            deadline = asyncio.get_running_loop().time() + 10
            while user == "alice" and not c.queries:
                assert asyncio.get_running_loop().time() < deadline, "alice was never asked"
                await asyncio.sleep(0.05)
            await slix_ping(c)
            await asyncio.sleep(1.0)  # time for a query to Bob, if one were sent
            await slix_ping(c)
        alice, bob = clients
        ver = await alice["xep_0115"].get_verstring(alice.boundjid)
        assert ver == await bob["xep_0115"].get_verstring(bob.boundjid)
        assert alice.queries == [f"{alice['xep_0115'].caps_node}#{ver}"]
        assert bob.queries == []
        for c in clients:
            await slix_close(c)
    run(scenario())



def test_queries_to_one_session_are_bounded(make_server):
    """A client cycling through made-up vers, never answering, was asked about each (up to
    4096 queries held for 20 s, for every session together); caps.max_queries_per_session
    bounds what one session has in flight. Once it answers, it is asked again."""
    srv = make_server(users=USERS, config={"modules": MODULES,
                                           "caps": {"max_queries_per_session": 2}})
    alice, bob = login(srv, "alice"), login(srv, "bob")
    for i in range(5):
        alice.send(caps_presence(ver_of(IDS, FEATS + [f"urn:made-up:{i}"])))
    alice.send("<iq type='get' id='bounded' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
    text = alice.read_until(r"<iq[^>]*id=['\"]bounded['\"]") + alice.nothing_for(1.5)
    asked = [m.group(0) for m in re.finditer(QUERY_RE, text, re.S)]
    assert len(asked) == 2, asked
    # other sessions are not held up by alice's
    bob.send(caps_presence(VER))
    iq_id, node = next_query(bob)
    answer(bob, iq_id, node)
    barrier(bob)
    # an answer frees a slot: the last ver, advertised again, is asked about now
    first = re.search(r"id=['\"]([^'\"]+)['\"]", asked[0]).group(1)
    first_node = re.search(r"node=['\"]([^'\"]+)['\"]", asked[0]).group(1)
    answer(alice, first, first_node)
    barrier(alice)
    last = ver_of(IDS, FEATS + ["urn:made-up:4"])
    alice.send(caps_presence(last))
    iq_id, node = next_query(alice)
    assert node == f"{NODE}#{last}"
    alice.close()
    bob.close()
