"""Resource binding: server-chosen resources, conflicts, the legacy session IQ."""
import re

from conftest import NS_STANZAS, RawClient, expect_stream_error, run, slix_close, slix_login


def test_server_chosen_resource(server):
    c = RawClient(server.port)
    jid = c.login("alice", server.users["alice"], resource=None)
    assert jid.startswith(server.jid("alice") + "/"), jid
    assert len(jid) > len(server.jid("alice")) + 1, f"empty resource chosen: {jid}"
    d = RawClient(server.port)
    jid2 = d.login("alice", server.users["alice"], resource=None)
    assert jid2 != jid, f"server chose the same resource twice: {jid}"
    c.close()
    d.close()


def test_server_chosen_resource_slixmpp(server):
    async def dialogue():
        c = await slix_login(server, "bob")
        assert c.boundjid.resource, f"no resource in {c.boundjid}"
        await slix_close(c)
    run(dialogue())


def test_requested_resource_is_granted(server):
    c = RawClient(server.port)
    assert c.login("alice", server.users["alice"], resource="balcony") == \
        server.jid("alice") + "/balcony"
    c.close()


def test_resource_conflict_replaces_older_session(server):
    first = RawClient(server.port)
    first.login("alice", server.users["alice"], resource="phone")
    second = RawClient(server.port)
    jid = second.login("alice", server.users["alice"], resource="phone")
    assert jid == server.jid("alice") + "/phone", jid
    expect_stream_error(first, "conflict")
    # The new session is fully usable: it is the one that gets messages to the full JID.
    bob = RawClient(server.port)
    bob.login("bob", server.users["bob"], resource="r")
    bob.send(f"<message to='{jid}' type='chat' id='m1'><body>still there?</body></message>")
    msg = second.read_until(r"<message.*?</message>")
    assert "still there?" in msg, msg
    for c in (second, bob):
        c.close()


def test_resource_conflict_refuse_policy(make_server):
    srv = make_server(users={"alice": None}, config={"c2s": {"resource_conflict": "refuse"}})
    first = RawClient(srv.port)
    first.login("alice", srv.users["alice"], resource="phone")
    second = RawClient(srv.port)
    second.open_stream()
    second.starttls()
    second.open_stream()
    assert "<success" in second.auth_plain("alice", srv.users["alice"])
    second.open_stream()
    jid, reply = second.bind("phone")
    assert jid is None and "type='error'" in reply.replace('"', "'"), (
        f"refuse policy: second bind of the same resource was not refused: {reply!r}")
    assert re.search(rf"<conflict\s+xmlns=['\"]{NS_STANZAS}['\"]", reply), reply
    # The first session is untouched.
    first.send("<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
    reply = first.read_until(r"<iq[^>]*id=['\"]p1['\"][^>]*>")
    assert "result" in reply, reply
    first.close()
    second.close()


def test_legacy_session_iq(server):
    c = RawClient(server.port)
    c.login("alice", server.users["alice"], resource="old")
    c.send("<iq type='set' id='sess1'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>")
    reply = c.read_until(r"<iq[^>]*id=['\"]sess1['\"][^>]*(/>|>.*?</iq>)")
    assert re.search(r"type=['\"]result['\"]", reply), f"session IQ not answered with result: " \
        f"{reply!r}"
    c.close()


def test_stanza_before_bind_is_not_routed(server):
    bob = RawClient(server.port)
    bob.login("bob", server.users["bob"], resource="r")
    c = RawClient(server.port)
    c.open_stream()
    c.starttls()
    c.open_stream()
    assert "<success" in c.auth_plain("alice", server.users["alice"])
    c.open_stream()
    c.send(f"<message to='{bob.jid}'><body>unbound</body></message>")
    c.send("<iq type='get' id='p0' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
    got = bob.nothing_for(1.0)
    assert "unbound" not in got, f"a stanza sent before resource binding was routed: {got!r}"
    c.close()
    bob.close()
