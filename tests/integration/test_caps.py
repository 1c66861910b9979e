"""Entity capabilities of the server (XEP-0115): Alice logs in, finds <c/> in the stream
features after SASL, asks the server's disco#info at node#ver and checks the ver by hashing the
answer herself (§5.1), as a client that caches capabilities does."""
import base64
import hashlib
import re
import xml.etree.ElementTree as ET

from conftest import RawClient, run, slix_close, slix_login

NS_CAPS = "http://jabber.org/protocol/caps"
NS_INFO = "http://jabber.org/protocol/disco#info"


def q(s):
    return s.replace("'", "['\"]")


def caps_of(features):
    m = re.search(r"<c\s[^>]*xmlns=['\"]" + re.escape(NS_CAPS) + r"['\"][^>]*/>", features)
    assert m, f"no <c/> in the stream features: {features!r}"
    attrs = dict(re.findall(r"(\w+)=['\"]([^'\"]*)['\"]", m.group(0)))
    return attrs


def disco_info(c, iq_id, node=None):
    node_attr = f" node='{node}'" if node else ""
    c.send(f"<iq type='get' id='{iq_id}' to='localhost'>"
           f"<query xmlns='{NS_INFO}'{node_attr}/></iq>")
    return c.read_until(q(rf"<iq[^>]*id='{iq_id}'[^>]*?(/>|>.*?</iq>)"))


def ver_of_answer(reply):
    """XEP-0115 §5.1 over the disco#info answer, as a receiving client computes it (§5.4)."""
    iq = ET.fromstring(reply)
    query = iq.find(f"{{{NS_INFO}}}query")
    assert query is not None, reply
    ids = []
    for i in query.findall(f"{{{NS_INFO}}}identity"):
        ids.append((i.get("category"), i.get("type"),
                    i.get("{http://www.w3.org/XML/1998/namespace}lang", ""), i.get("name", "")))
    feats = [f.get("var") for f in query.findall(f"{{{NS_INFO}}}feature")]
    assert len(feats) == len(set(feats)), f"duplicate features make the answer ill-formed: {feats}"
    s = "".join(f"{c}/{t}/{lang}/{name}<" for c, t, lang, name in sorted(ids))
    s += "".join(f + "<" for f in sorted(feats))
    return base64.b64encode(hashlib.sha1(s.encode()).digest()).decode(), query, feats


def test_stream_features_carry_a_ver_that_verifies(server):
    c = RawClient(server.port)
    c.login("alice", server.users["alice"], resource="caps")
    caps = caps_of(c.features)
    assert caps["hash"] == "sha-1"
    assert caps["node"] == "https://magpie.example/caps"
    assert re.fullmatch(r"[A-Za-z0-9+/]{27}=", caps["ver"]), caps

    # node#ver answers exactly like the plain query, with the node echoed
    node = f"{caps['node']}#{caps['ver']}"
    reply = disco_info(c, "i1", node)
    ver, query, feats = ver_of_answer(reply)
    assert query.get("node") == node
    assert ver == caps["ver"], f"our hash {ver} of {reply!r} differs from {caps['ver']}"
    assert "urn:xmpp:ping" in feats and "jabber:iq:search" in feats
    plain = disco_info(c, "i2")
    ver2, query2, _ = ver_of_answer(plain)
    assert ver2 == caps["ver"] and query2.get("node") is None

    # another node, or an old ver, is no node of ours
    for i, other in enumerate([caps["node"] + "#AAAAAAAAAAAAAAAAAAAAAAAAAAA=", "urn:other"]):
        reply = disco_info(c, f"n{i}", other)
        assert re.search(q(r"<iq[^>]*type='error'"), reply), reply
        assert "<item-not-found" in reply, reply
    c.close()


def test_not_in_features_before_authentication(server):
    c = RawClient(server.port)
    c.open_stream()
    c.starttls()
    features = c.open_stream()
    assert NS_CAPS not in features
    c.close()


def test_ver_follows_the_loaded_modules(make_server):
    """Fewer modules, fewer features, another ver; without disco nobody could query it, so
    no <c/> at all."""
    vers = []
    for modules in (["ping", "disco"], ["ping", "disco", "version"]):
        srv = make_server(users={"alice": None}, config={"modules": modules})
        c = RawClient(srv.port)
        c.login("alice", srv.users["alice"])
        ver = caps_of(c.features)["ver"]
        got, _, feats = ver_of_answer(disco_info(c, "d", f"https://magpie.example/caps#{ver}"))
        assert got == ver
        assert ("jabber:iq:version" in feats) == ("version" in modules)
        vers.append(ver)
        c.close()
    assert vers[0] != vers[1]

    srv = make_server(users={"alice": None}, config={"modules": ["ping"]})
    c = RawClient(srv.port)
    c.login("alice", srv.users["alice"])
    assert NS_CAPS not in c.features
    c.close()


def test_slixmpp_sees_the_same_answer_at_node_ver(server):
    async def scenario():
        c = await slix_login(server, "bob")
        c.register_plugin("xep_0030")
        raw = RawClient(server.port)
        raw.login("alice", server.users["alice"])
        caps = caps_of(raw.features)
        raw.close()
        node = f"{caps['node']}#{caps['ver']}"
        info = await c["xep_0030"].get_info(jid=server.domain, node=node, timeout=10)
        dq = info["disco_info"]
        assert dq["node"] == node
        assert ("server", "im", None, "Magpie") in dq["identities"]
        s = "".join(f"{cat}/{typ}/{lang or ''}/{name or ''}<"
                    for cat, typ, lang, name in sorted(dq["identities"],
                                                       key=lambda i: (i[0], i[1], i[2] or "")))
        s += "".join(f + "<" for f in sorted(dq["features"]))
        assert base64.b64encode(hashlib.sha1(s.encode()).digest()).decode() == caps["ver"]
        await slix_close(c)
    run(scenario())
