"""What the server says about itself and its accounts: entity time (XEP-0202), last activity
(XEP-0012), service discovery for accounts (XEP-0030) and software version (XEP-0092, with its
hiding settings). Alice lets Bob see her presence; Carol is a stranger to both."""
import calendar
import os
import re
import sqlite3
import time

import pytest

from conftest import RawClient

ROSTER = "jabber:iq:roster"
NS_INFO = "http://jabber.org/protocol/disco#info"
NS_ITEMS = "http://jabber.org/protocol/disco#items"


def q(s):
    """Server output uses single quotes; make patterns quote-agnostic."""
    return s.replace("'", "['\"]")


def connect(server, user, resource="r", available=True):
    c = RawClient(server.port)
    c.login(user, server.users[user], resource=resource)
    c.send(f"<iq type='get' id='r0'><query xmlns='{ROSTER}'/></iq>")
    c.read_until(q(r"<iq[^>]*id='r0'.*?(</iq>|/>)"))
    if available:
        c.send("<presence/>")
        c.read_until(q(rf"<presence[^>]*from='{re.escape(c.jid)}'"))
    return c


def iq(c, iq_id, payload, to=None):
    """Send an IQ get and return the whole answer with that id."""
    to_attr = f" to='{to}'" if to is not None else ""
    c.send(f"<iq type='get' id='{iq_id}'{to_attr}>{payload}</iq>")
    return c.read_until(q(rf"<iq[^>]*id='{iq_id}'[^>]*?(/>|>.*?</iq>)"))


def is_result(reply):
    return re.search(q(r"<iq[^>]*type='result'"), reply) is not None


def error_of(reply):
    assert re.search(q(r"<iq[^>]*type='error'"), reply), f"expected an error: {reply!r}"
    m = re.search(r"<error[^>]*>\s*<([a-z-]+)", reply)
    return m.group(1)


def features(reply):
    return set(re.findall(r"<feature var=['\"]([^'\"]+)['\"]", reply))


UNAVAILABLE_FROM_ALICE = q(r"<presence(?=[^>]*from='alice@localhost/r')(?=[^>]*type='unavailable')")


def subscribe(watcher, target, target_jid):
    """watcher asks target for its presence and target approves: target's roster item for the
    watcher then says 'from'."""
    watcher.send(f"<presence to='{target_jid}' type='subscribe'/>")
    target.read_until(q(r"<presence[^>]*type='subscribe'[^>]*/>"))
    target.send(f"<presence to='{watcher.jid.split('/')[0]}' type='subscribed'/>")
    watcher.read_until(q(rf"<presence[^>]*from='{re.escape(target_jid)}/[^']*'"))


# -- XEP-0202 ---------------------------------------------------------------------------------

def test_entity_time_of_the_server(server):
    alice = connect(server, "alice")
    before = time.time()
    r = iq(alice, "t1", "<time xmlns='urn:xmpp:time'/>", to=server.domain)
    after = time.time()
    assert is_result(r) and re.search(q(r"from='localhost'"), r), r
    tzo = re.search(r"<tzo>([^<]*)</tzo>", r).group(1)
    assert re.fullmatch(r"[+-]\d\d:\d\d", tzo), r
    utc = re.search(r"<utc>([^<]*)</utc>", r).group(1)
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d{3})?Z", utc)
    assert m, r
    stamp = calendar.timegm(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S"))
    assert before - 2 <= stamp <= after + 1, (utc, before, after)
    # the offset is the server's own: this process shares its clock and zone
    local = time.localtime(stamp)
    sign = "-" if local.tm_gmtoff < 0 else "+"
    off = abs(local.tm_gmtoff)
    assert tzo == f"{sign}{off // 3600:02d}:{off % 3600 // 60:02d}", (tzo, local.tm_gmtoff)
    # an account's time is its client's to tell, not the server's
    r = iq(alice, "t2", "<time xmlns='urn:xmpp:time'/>", to="bob@localhost")
    assert error_of(r) == "service-unavailable", r


def test_server_disco_lists_the_info_features(server):
    alice = connect(server, "alice")
    r = iq(alice, "d1", f"<query xmlns='{NS_INFO}'/>", to=server.domain)
    assert is_result(r) and re.search(q(r"category='server'[^>]*type='im'"), r), r
    got = features(r)
    for var in ("urn:xmpp:time", "jabber:iq:last", "jabber:iq:version", "urn:xmpp:ping",
                NS_INFO, NS_ITEMS):
        assert var in got, (var, r)
    r = iq(alice, "d2", f"<query xmlns='{NS_ITEMS}'/>", to=server.domain)
    assert is_result(r), r


# -- XEP-0012 ---------------------------------------------------------------------------------

def seconds_of(reply):
    assert is_result(reply), reply
    return int(re.search(q(r"seconds='(\d+)'"), reply).group(1))


def test_last_activity_of_the_server_is_its_uptime(make_server):
    srv = make_server(users={"alice": None}, start=False)
    started = time.monotonic()
    srv.start()
    alice = connect(srv, "alice")
    r = iq(alice, "u1", "<query xmlns='jabber:iq:last'/>", to=srv.domain)
    first = seconds_of(r)
    assert 0 <= first <= time.monotonic() - started + 1, r
    assert "</query>" not in r, f"server uptime carries no text: {r!r}"
    time.sleep(2.2)
    second = seconds_of(iq(alice, "u2", "<query xmlns='jabber:iq:last'/>", to=srv.domain))
    assert second >= first + 2, (first, second)


def test_last_activity_of_accounts(server):
    alice = connect(server, "alice")
    bob = connect(server, "bob")
    carol = connect(server, "carol")
    subscribe(bob, alice, "alice@localhost")
    last = "<query xmlns='jabber:iq:last'/>"
    # Bob may see Alice's presence, and she is online: 0 seconds, no text
    r = iq(bob, "l1", last, to="alice@localhost")
    assert seconds_of(r) == 0 and "</query>" not in r, r
    # Carol may not; neither may Alice see Bob's (her item for him is only 'to')
    assert error_of(iq(carol, "l2", last, to="alice@localhost")) == "forbidden"
    assert error_of(iq(alice, "l3", last, to="bob@localhost")) == "forbidden"
    # RFC 6121 8.5.1: no such account is service-unavailable, whoever asks
    assert error_of(iq(bob, "l4", last, to="nobody@localhost")) == "service-unavailable"
    # Alice unavailable but connected, and never logged out: nothing to tell
    alice.send("<presence type='unavailable'/>")
    bob.read_until(UNAVAILABLE_FROM_ALICE)
    assert error_of(iq(bob, "l5", last, to="alice@localhost")) == "service-unavailable"
    # and Carol still learns nothing more than before
    assert error_of(iq(carol, "l6", last, to="alice@localhost")) == "forbidden"


def test_last_activity_from_the_stored_logout(make_server):
    """The record of the last logout (blob kind 'last': "<unix time>\\n<status>") is read back
    for the account itself, with or without 'to'."""
    srv = make_server(users={"alice": None}, start=False)
    db = os.path.join(srv.data_dir, "magpie.db")
    with sqlite3.connect(db) as con:
        con.execute("INSERT INTO blobs (domain, node, kind, key, data) VALUES (?, ?, ?, ?, ?)",
                    ("localhost", "alice", "last", "", b"%d\nHeading Home & <away>"
                     % (int(time.time()) - 903)))
    con.close()
    srv.start()
    alice = connect(srv, "alice", available=False)
    for iq_id, to in (("s1", None), ("s2", "alice@localhost")):
        r = iq(alice, iq_id, "<query xmlns='jabber:iq:last'/>", to=to)
        assert 903 <= seconds_of(r) <= 910, r
        assert ">Heading Home &amp; &lt;away&gt;</query>" in r, r
    # once available, the answer is 0 again
    alice.send("<presence/>")
    alice.read_until(q(r"<presence[^>]*from='alice@localhost/r'"))
    assert seconds_of(iq(alice, "s3", "<query xmlns='jabber:iq:last'/>")) == 0


def test_last_activity_after_logout(server):
    alice = connect(server, "alice")
    bob = connect(server, "bob")
    subscribe(bob, alice, "alice@localhost")
    alice.send("</stream:stream>")
    alice.read_until_closed()
    bob.read_until(UNAVAILABLE_FROM_ALICE)
    time.sleep(1.1)
    r = iq(bob, "g1", "<query xmlns='jabber:iq:last'/>", to="alice@localhost")
    assert 1 <= seconds_of(r) <= 10, r


# -- XEP-0030 for accounts ---------------------------------------------------------------------

def test_disco_of_an_account(server):
    alice = connect(server, "alice")
    bob = connect(server, "bob")
    carol = connect(server, "carol")
    subscribe(bob, alice, "alice@localhost")
    info = f"<query xmlns='{NS_INFO}'/>"
    items = f"<query xmlns='{NS_ITEMS}'/>"
    # the account itself (to its bare JID or with no 'to') and a subscriber see the identity
    for c, iq_id, to in ((alice, "i1", "alice@localhost"), (alice, "i2", None),
                         (bob, "i3", "alice@localhost")):
        r = iq(c, iq_id, info, to=to)
        assert is_result(r), r
        assert re.search(q(r"<identity category='account' type='registered'"), r), r
        assert NS_INFO in features(r), r
        if to:
            assert re.search(q(r"from='alice@localhost'"), r), r
    # XEP-0030 section 8: strangers and missing accounts get the same service-unavailable
    assert error_of(iq(carol, "i4", info, to="alice@localhost")) == "service-unavailable"
    assert error_of(iq(carol, "i5", info, to="nobody@localhost")) == "service-unavailable"
    assert error_of(iq(alice, "i6", info, to="bob@localhost")) == "service-unavailable"
    # a node nobody defined, asked by someone allowed to know the account
    r = iq(alice, "i7", f"<query xmlns='{NS_INFO}' node='x'/>", to="alice@localhost")
    assert error_of(r) == "item-not-found", r
    r = iq(carol, "i8", f"<query xmlns='{NS_INFO}' node='x'/>", to="alice@localhost")
    assert error_of(r) == "service-unavailable", r
    # disco#items: an empty result for everybody, missing accounts included
    for c, iq_id, to in ((alice, "m1", "alice@localhost"), (bob, "m2", "alice@localhost"),
                         (carol, "m3", "alice@localhost"), (carol, "m4", "nobody@localhost")):
        r = iq(c, iq_id, items, to=to)
        assert is_result(r) and "<item" not in r, r
    r = iq(alice, "m5", f"<query xmlns='{NS_ITEMS}' node='x'/>", to="alice@localhost")
    assert error_of(r) == "item-not-found", r


# -- XEP-0092 ---------------------------------------------------------------------------------

VERSION = "<query xmlns='jabber:iq:version'/>"


def test_version_names_the_os_by_default(server):
    alice = connect(server, "alice")
    r = iq(alice, "v1", VERSION, to=server.domain)
    assert is_result(r), r
    assert "<name>Magpie</name>" in r and re.search(r"<version>[0-9][^<]*</version>", r), r
    assert f"<os>{os.uname().sysname}</os>" in r, r


def test_version_hide_os(make_server):
    srv = make_server(users={"alice": None}, config={"version": {"hide_os": True}})
    alice = connect(srv, "alice")
    r = iq(alice, "v1", VERSION, to=srv.domain)
    assert is_result(r) and "<name>Magpie</name>" in r and "<version>" in r, r
    assert "<os" not in r, r
    disco = iq(alice, "v2", f"<query xmlns='{NS_INFO}'/>", to=srv.domain)
    assert "jabber:iq:version" in features(disco), disco


def test_version_hide_version(make_server):
    srv = make_server(users={"alice": None},
                      config={"version": {"hide_version": True, "hide_os": False}})
    alice = connect(srv, "alice")
    r = iq(alice, "v1", VERSION, to=srv.domain)
    assert error_of(r) == "service-unavailable", r
    assert "Magpie" not in r and "<os" not in r, r
    disco = iq(alice, "v2", f"<query xmlns='{NS_INFO}'/>", to=srv.domain)
    got = features(disco)
    assert "jabber:iq:version" not in got and "urn:xmpp:time" in got, disco
    # the rest of the server is unaffected
    assert is_result(iq(alice, "v3", "<time xmlns='urn:xmpp:time'/>", to=srv.domain))
