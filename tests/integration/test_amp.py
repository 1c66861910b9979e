"""XEP-0079 Advanced Message Processing: Alice attaches rules to her messages for Bob, the
server applies them against what it is about to do (deliver, store, drop) and tells her.
Raw XML over real sockets: the rules and replies are checked byte for byte where it matters,
and as parsed trees elsewhere."""
import re
import time
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone

import pytest

from conftest import DOMAIN, RawClient, barrier, next_message, run, slix_close, slix_login

NS_AMP = "http://jabber.org/protocol/amp"
NS_AMP_ERR = "http://jabber.org/protocol/amp#errors"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_INFO = "http://jabber.org/protocol/disco#info"

FEATURES = [NS_AMP] + [f"{NS_AMP}?action={a}" for a in ("alert", "drop", "error", "notify")] + [
    f"{NS_AMP}?condition={c}" for c in ("deliver", "expire-at", "match-resource")]


def utc(delta_seconds):
    t = datetime.now(timezone.utc) + timedelta(seconds=delta_seconds)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


_ids = iter(range(1, 1000000))


def sync(c):
    """A ping round trip: the server has handled everything c sent before. What arrived
    before the answer is kept for the next read."""
    pid = f"sync{next(_ids)}"
    c.send(f"<iq type='get' id='{pid}' to='{DOMAIN}'><ping xmlns='urn:xmpp:ping'/></iq>")
    text = c.read_until(rf"<iq[^>]*id=['\"]{pid}['\"][^>]*(/>|>.*?</iq>)")
    # What came before the answer stays to be read.
    c.buf = text[:text.rindex("<iq")].encode() + c.buf


def online(server, user, resource, available=True):
    c = RawClient(server.port)
    c.login(user, server.users[user], resource)
    if available:
        c.send("<presence/>")
    sync(c)
    return c


def subscribe(server, subscriber, contact):
    """contact approves subscriber's request: contact's roster has subscriber with 'from'."""
    s = online(server, subscriber, "sub")
    c = online(server, contact, "sub")
    s.send(f"<presence to='{server.jid(contact)}' type='subscribe'/>")
    c.read_until(r"<presence[^>]*type=['\"]subscribe['\"]")
    c.send(f"<presence to='{server.jid(subscriber)}' type='subscribed'/>")
    s.read_until(r"<presence[^>]*type=['\"]subscribed['\"]")
    sync(c)
    sync(s)
    s.close()
    c.close()


def amp_message(to, mid, rules, body="hello", per_hop=None):
    hop = f" per-hop='{per_hop}'" if per_hop else ""
    rs = "".join(f"<rule condition='{c}' action='{a}' value='{v}'/>" for c, a, v in rules)
    return (f"<message to='{to}' id='{mid}' type='chat'><body>{body}</body>"
            f"<amp xmlns='{NS_AMP}'{hop}>{rs}</amp></message>")


def read_message(c, mid, timeout=10):
    text = c.read_until(rf"<message[^>]*id=['\"]{mid}['\"][^>]*(/>|>.*?</message>)",
                        timeout=timeout)
    m = re.search(rf"<message[^>]*id=['\"]{mid}['\"][^>]*(/>|>.*?</message>)", text, re.S)
    stanza = m.group(0)
    if not re.match(r"<message[^>]*\sxmlns=", stanza):  # in the stream's namespace
        stanza = stanza.replace("<message", "<message xmlns='jabber:client'", 1)
    return ET.fromstring(stanza)


def no_message(c, mid, seconds=1.0):
    text = c.nothing_for(seconds)
    assert not re.search(rf"<message[^>]*id=['\"]{mid}['\"]", text), (
        f"message {mid} arrived: {text!r}")


def rules_of(el):
    return [(r.get("condition"), r.get("action"), r.get("value"))
            for r in el.findall(f"{{{NS_AMP}}}rule") + el.findall(f"{{{NS_AMP_ERR}}}rule")]


def check_event(m, status, rule, orig_from, orig_to, mid):
    assert m.get("from") == DOMAIN, ET.tostring(m)
    assert m.get("id") == mid
    amp = m.find(f"{{{NS_AMP}}}amp")
    assert amp is not None, ET.tostring(m)
    assert amp.get("status") == status, ET.tostring(m)
    assert amp.get("from") == orig_from and amp.get("to") == orig_to, ET.tostring(m)
    assert rules_of(amp) == [rule], ET.tostring(m)
    assert m.find("{jabber:client}body") is None, "the reply must not carry the body"


def check_failed(m, rule, orig_from, orig_to, mid):
    assert m.get("type") == "error", ET.tostring(m)
    check_event(m, "error", rule, orig_from, orig_to, mid)
    err = m.find("{jabber:client}error")
    assert err is not None and err.get("type") == "modify", ET.tostring(m)
    assert err.find(f"{{{NS_STANZAS}}}undefined-condition") is not None, ET.tostring(m)
    failed = err.find(f"{{{NS_AMP_ERR}}}failed-rules")
    assert failed is not None, ET.tostring(m)
    assert rules_of(failed) == [rule], ET.tostring(m)


def check_rejected(m, cond, listname, listed, mid):
    assert m.get("type") == "error" and m.get("id") == mid, ET.tostring(m)
    err = m.find("{jabber:client}error")
    assert err is not None and err.get("type") == "modify", ET.tostring(m)
    assert err.find(f"{{{NS_STANZAS}}}{cond}") is not None, ET.tostring(m)
    lst = err.find(f"{{{NS_AMP_ERR}}}{listname}")
    assert lst is not None, f"no <{listname} xmlns='{NS_AMP_ERR}'/>: {ET.tostring(m)}"
    assert rules_of(lst) == listed, ET.tostring(m)


@pytest.fixture
def amp_server(make_server):
    srv = make_server(users={"alice": None, "bob": None, "carol": None})
    subscribe(srv, "alice", "bob")
    return srv


def test_disco_and_stream_feature(server):
    async def dialogue():
        alice = await slix_login(server, "alice")
        iq = alice.make_iq_get(ito=server.domain)
        iq.append(ET.Element(f"{{{NS_INFO}}}query"))
        res = await iq.send(timeout=10)
        got = [f.get("var") for f in res.xml.iter(f"{{{NS_INFO}}}feature")]
        for f in FEATURES:
            assert f in got, f"disco#info lacks {f}: {got}"
        await slix_close(alice)
    run(dialogue())
    raw = RawClient(server.port)
    raw.login("alice", server.users["alice"], "r")
    assert re.search(r"<amp\s+xmlns=['\"]http://jabber.org/features/amp['\"]\s*/>", raw.features), (
        raw.features)
    raw.close()


def test_notify_direct_with_slixmpp_recipient(amp_server):
    srv = amp_server

    async def dialogue():
        bob = await slix_login(srv, "bob", resource="desk")
        bob.send_presence()
        await barrier(bob, srv)  # the raw client below blocks the event loop
        alice = online(srv, "alice", "home")
        rule = ("deliver", "notify", "direct")
        alice.send(amp_message(srv.jid("bob"), "n1", [rule], body="notify me"))
        m = read_message(alice, "n1")
        check_event(m, "notify", rule, alice.jid, srv.jid("bob"), "n1")
        got = await next_message(bob, what="the message with notify rule")
        assert got["body"] == "notify me" and got["id"] == "n1", got
        # The rules travel with the message, untouched.
        amp = got.xml.find(f"{{{NS_AMP}}}amp")
        assert amp is not None and rules_of(amp) == [rule], got
        # A rule for another outcome is not met: no reply, plain delivery.
        alice.send(amp_message(srv.jid("bob"), "n2", [("deliver", "error", "stored")]))
        got = await next_message(bob)
        assert got["id"] == "n2", got
        no_message(alice, "n2")
        alice.close()
        await slix_close(bob)
    run(dialogue())


def test_stored_error_and_notify(amp_server):
    srv = amp_server
    alice = online(srv, "alice", "home")
    rule = ("deliver", "error", "stored")
    alice.send(amp_message(srv.jid("bob"), "s1", [rule], body="must not be stored"))
    check_failed(read_message(alice, "s1"), rule, alice.jid, srv.jid("bob"), "s1")
    notify = ("deliver", "notify", "stored")
    alice.send(amp_message(srv.jid("bob"), "s2", [notify], body="stored and said so"))
    check_event(read_message(alice, "s2"), "notify", notify, alice.jid, srv.jid("bob"), "s2")
    alice.send(amp_message(srv.jid("bob"), "s3", [("deliver", "drop", "stored")]))
    alice.send(f"<message to='{srv.jid('bob')}' id='s4' type='chat'><body>plain</body></message>")
    no_message(alice, "s3", 0.5)
    sync(alice)

    bob = online(srv, "bob", "late")
    got = read_message(bob, "s2")
    assert got.findtext("{jabber:client}body") == "stored and said so"
    read_message(bob, "s4")
    rest = bob.nothing_for(1.0)
    for mid in ("s1", "s3"):
        assert f"id='{mid}'" not in rest and f'id="{mid}"' not in rest, rest
    assert "must not be stored" not in rest
    alice.close()
    bob.close()


def test_match_resource(amp_server):
    srv = amp_server
    bob = online(srv, "bob", "here")
    alice = online(srv, "alice", "home")
    bob_here, bob_gone = srv.jid("bob") + "/here", srv.jid("bob") + "/gone"

    # 'other' with 'error': the sender wants this resource or nothing (XEP-0079 §5.1).
    other = ("match-resource", "error", "other")
    alice.send(amp_message(bob_gone, "m1", [other]))
    check_failed(read_message(alice, "m1"), other, alice.jid, bob_gone, "m1")
    no_message(bob, "m1", 0.5)

    # 'exact' is not met when the resource is gone: delivered to the bare JID as usual.
    exact = ("match-resource", "error", "exact")
    alice.send(amp_message(bob_gone, "m2", [exact]))
    read_message(bob, "m2")
    no_message(alice, "m2", 0.5)

    # ... and met when the resource is there.
    alice.send(amp_message(bob_here, "m3", [exact]))
    check_failed(read_message(alice, "m3"), exact, alice.jid, bob_here, "m3")
    no_message(bob, "m3", 0.5)

    # 'any' with alert: alerted, not delivered.
    anyr = ("match-resource", "alert", "any")
    alice.send(amp_message(srv.jid("bob"), "m4", [anyr]))
    check_event(read_message(alice, "m4"), "alert", anyr, alice.jid, srv.jid("bob"), "m4")
    no_message(bob, "m4", 0.5)

    # per-hop rule sets ignore match-resource (§3.3.3).
    alice.send(amp_message(bob_here, "m5", [exact], per_hop="true"))
    read_message(bob, "m5")
    no_message(alice, "m5", 0.5)
    alice.close()
    bob.close()


def test_expire_at_in_the_past(amp_server):
    srv = amp_server
    alice = online(srv, "alice", "home")
    bob = online(srv, "bob", "here")
    past = ("expire-at", "drop", "2004-01-01T00:00:00Z")
    alice.send(amp_message(srv.jid("bob"), "e1", [past], body="stale"))
    future = ("expire-at", "drop", utc(3600))
    alice.send(amp_message(srv.jid("bob"), "e2", [future], body="fresh"))
    read_message(bob, "e2")
    no_message(bob, "e1", 0.5)
    no_message(alice, "e1", 0.2)  # drop: no response
    bob.close()
    time.sleep(0.5)  # bob's session end is processed

    alice.send(amp_message(srv.jid("bob"), "e3", [past], body="stale too"))
    alice.send(f"<message to='{srv.jid('bob')}' id='e4' type='chat'><body>control</body></message>")
    sync(alice)
    bob = online(srv, "bob", "again")
    read_message(bob, "e4")
    rest = bob.nothing_for(1.0)
    assert "stale too" not in rest, f"an expired message was stored: {rest!r}"
    alice.close()
    bob.close()


def test_expire_at_while_stored(amp_server):
    srv = amp_server
    alice = online(srv, "alice", "home")
    soon = utc(2)
    alert = ("expire-at", "alert", soon)
    drop = ("expire-at", "drop", soon)
    later = ("expire-at", "drop", utc(3600))
    alice.send(amp_message(srv.jid("bob"), "w1", [alert], body="expires with an alert"))
    alice.send(amp_message(srv.jid("bob"), "w2", [drop], body="expires silently"))
    alice.send(amp_message(srv.jid("bob"), "w3", [later], body="still good"))
    no_message(alice, "w1", 0.5)  # accepted and stored, nothing to say yet
    time.sleep(3.5)

    bob = online(srv, "bob", "back")
    got = read_message(bob, "w3")
    assert got.findtext("{jabber:client}body") == "still good"
    rest = bob.nothing_for(1.0)
    assert "expires" not in rest, f"an expired message was delivered from storage: {rest!r}"
    check_event(read_message(alice, "w1"), "alert", alert, alice.jid, srv.jid("bob"), "w1")
    no_message(alice, "w2", 0.5)
    # They are gone for good, not kept for next time.
    bob.close()
    time.sleep(0.5)
    bob = online(srv, "bob", "third")
    rest = bob.nothing_for(1.0)
    assert "expires" not in rest and "still good" not in rest, rest
    alice.close()
    bob.close()


def test_unsupported_and_invalid_rules(amp_server):
    srv = amp_server
    alice = online(srv, "alice", "home")
    bob = online(srv, "bob", "here")
    to = srv.jid("bob")
    alice.send(amp_message(to, "x1", [("deliver", "explode", "direct"),
                                      ("deliver", "notify", "direct")]))
    check_rejected(read_message(alice, "x1"), "bad-request", "unsupported-actions",
                   [("deliver", "explode", "direct")], "x1")
    alice.send(amp_message(to, "x2", [("weather", "drop", "rain"), ("expire-in", "drop", "30")]))
    check_rejected(read_message(alice, "x2"), "bad-request", "unsupported-conditions",
                   [("weather", "drop", "rain"), ("expire-in", "drop", "30")], "x2")
    alice.send(amp_message(to, "x3", [("deliver", "drop", "sometimes"),
                                      ("expire-at", "drop", "tomorrow"),
                                      ("match-resource", "drop", "any")]))
    check_rejected(read_message(alice, "x3"), "not-acceptable", "invalid-rules",
                   [("deliver", "drop", "sometimes"), ("expire-at", "drop", "tomorrow")], "x3")
    alice.send(amp_message(to, "x4", [("expire-at", "drop", "2030-01-01T00:00:00+02:00")]))
    check_rejected(read_message(alice, "x4"), "not-acceptable", "invalid-rules",
                   [("expire-at", "drop", "2030-01-01T00:00:00+02:00")], "x4")
    # A request without an id cannot be answered in kind.
    alice.send(f"<message to='{to}'><body>no id</body><amp xmlns='{NS_AMP}'>"
               "<rule condition='deliver' action='notify' value='direct'/></amp></message>")
    text = alice.read_until(r"<message[^>]*type=['\"]error['\"].*?</message>")
    assert "bad-request" in text, text
    rest = bob.nothing_for(1.0)
    for mid in ("x1", "x2", "x3", "x4"):
        assert f"id='{mid}'" not in rest, f"a refused message was delivered: {rest!r}"
    assert "no id" not in rest
    alice.close()
    bob.close()


def test_presence_revealing_rules_need_a_subscription(amp_server):
    """§10: Carol may not learn whether Bob is online through AMP; rules that reveal it are
    not acceptable from her, expire-at still is."""
    srv = amp_server
    carol = online(srv, "carol", "c")
    bob = online(srv, "bob", "here")
    rule = ("deliver", "notify", "direct")
    carol.send(amp_message(srv.jid("bob"), "c1", [rule]))
    check_rejected(read_message(carol, "c1"), "not-acceptable", "invalid-rules", [rule], "c1")
    drop = ("deliver", "drop", "stored")  # drop answers nothing: allowed
    carol.send(amp_message(srv.jid("bob"), "c2", [drop], body="transient"))
    carol.send(amp_message(srv.jid("bob"), "c3", [("expire-at", "drop", utc(60))]))
    read_message(bob, "c2")
    read_message(bob, "c3")
    no_message(carol, "c2", 0.3)
    carol.close()
    bob.close()


def test_amp_module_off_passes_through(make_server):
    srv = make_server(users={"alice": None, "bob": None},
                      config={"modules": ["ping", "disco"]})
    alice = online(srv, "alice", "home")
    bob = online(srv, "bob", "here")
    alice.send(f"<iq type='get' id='d1' to='{DOMAIN}'><query xmlns='{NS_INFO}'/></iq>")
    text = alice.read_until(r"<iq[^>]*id=['\"]d1['\"].*?</iq>")
    assert NS_AMP not in text, text
    assert "features/amp" not in alice.features
    alice.send(amp_message(srv.jid("bob"), "o1", [("deliver", "drop", "direct")]))
    got = read_message(bob, "o1")
    assert got.find(f"{{{NS_AMP}}}amp") is not None
    alice.close()
    bob.close()
