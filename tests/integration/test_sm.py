"""Stream management (XEP-0198): enable, acknowledgements both ways, resumption from any mux
thread, the resumption window closing (every unacknowledged stanza redelivered, stored or
bounced, and the counts add up), the edge cases of RELIABILITY.md §3-4, and slixmpp's own
XEP-0198 plugin as a real client."""
import asyncio
import re
import time

import pytest

from conftest import (DOMAIN, RawClient, expect_stream_error, next_message, run, slix_close,
                      slix_login)

NS_SM = "urn:xmpp:sm:3"


def sm_server(make_server, users=("alice", "bob", "carol"), **sm):
    extra = sm.pop("_config", None)
    cfg = {"sm": {"resume_timeout": 30, **sm}}
    if extra:
        cfg.update(extra)
    return make_server(users={u: f"{u}-pw" for u in users}, config=cfg)


def login(srv, user, resource=None):
    c = RawClient(srv.port)
    c.login(user, f"{user}-pw", resource=resource)
    return c


def enable(c, resume=True, max_=None):
    attrs = " resume='true'" if resume else ""
    if max_ is not None:
        attrs += f" max='{max_}'"
    c.send(f"<enable xmlns='{NS_SM}'{attrs}/>")
    reply = c.read_until(r"<enabled[^>]*/>|</failed>|<failed[^>]*/>")
    assert "<enabled" in reply, reply
    m = re.search(r"id=['\"]([^'\"]+)['\"]", reply)
    return m.group(1) if m else None


def ask_h(c):
    c.send(f"<r xmlns='{NS_SM}'/>")
    reply = c.read_until(r"<a [^>]*/>")
    return int(re.search(r"h=['\"](\d+)['\"]", reply).group(1))


def messages_in(text, tag="m"):
    return re.findall(rf"<body>({tag}\d+)</body>", text)


def send_msgs(c, to, prefix, n, start=0):
    for i in range(start, start + n):
        c.send(f"<message to='{to}' type='chat' id='{prefix}{i}'><body>{prefix}{i}</body></message>")


def wait_bodies(c, bodies, timeout=10):
    """Read until every body in `bodies` arrived; returns the bodies seen in order."""
    want = set(bodies)
    seen = []
    deadline = time.monotonic() + timeout
    while not want <= set(seen):
        left = deadline - time.monotonic()
        assert left > 0, f"missing {sorted(want - set(seen))}, got {seen}; {c.text()!r}"
        chunk = c.read_until(r"</message>", timeout=left)
        seen += re.findall(r"<body>([^<]+)</body>", chunk)
    return seen


def resume_on_new_connection(srv, user, previd, h, pipelined=False):
    c = RawClient(srv.port)
    c.open_stream()
    c.starttls()
    c.open_stream()
    assert "<success" in c.auth_plain(user, f"{user}-pw")
    from conftest import stream_header
    if pipelined:
        # stream restart and <resume/> in one write, before the features arrive
        c.send(stream_header() + f"<resume xmlns='{NS_SM}' previd='{previd}' h='{h}'/>")
        c.read_until(r"</stream:features>")
    else:
        c.features = c.open_stream()
        assert f"<sm xmlns='{NS_SM}'/>" in c.features
        c.send(f"<resume xmlns='{NS_SM}' previd='{previd}' h='{h}'/>")
    reply = c.read_until(r"<resumed[^>]*/>|</failed>|<failed[^>]*/>")
    return c, reply


def test_feature_enable_and_counts(make_server):
    srv = sm_server(make_server)
    a = login(srv, "alice", "r1")
    assert f"<sm xmlns='{NS_SM}'/>" in a.features
    # before bind would be unexpected-request; after bind it works once
    sm_id = enable(a)
    assert sm_id and len(sm_id) >= 16
    a.send(f"<enable xmlns='{NS_SM}'/>")
    assert "unexpected-request" in a.read_until(r"</failed>")
    assert ask_h(a) == 0
    a.send("<presence/>")
    a.send("<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
    a.read_until(r"id=['\"]p1['\"]")
    a.send(f"<message to='alice@{DOMAIN}' type='chat'><body>self</body></message>")
    assert ask_h(a) == 3  # presence, iq, message: nonzas are not counted


def test_server_requests_acks_and_too_high_h(make_server):
    srv = sm_server(make_server, ack_request_every=5)
    a = login(srv, "alice", "r1")
    b = login(srv, "bob", "r1")
    enable(a)
    send_msgs(b, "alice@localhost/r1", "m", 7)
    seen = wait_bodies(a, [f"m{i}" for i in range(7)])
    assert seen == [f"m{i}" for i in range(7)]
    # an <r/> after the fifth unacknowledged stanza
    assert re.search(r"<r xmlns=['\"]urn:xmpp:sm:3['\"]\s*/>", "".join(
        d.decode() for w, d in a.transcript if w == "S"))
    a.send(f"<a xmlns='{NS_SM}' h='7'/>")
    assert ask_h(a) == 0
    # h above what was sent: undefined-condition with <handled-count-too-high/>
    a.send(f"<a xmlns='{NS_SM}' h='100'/>")
    text = expect_stream_error(a, "undefined-condition")
    assert "handled-count-too-high" in text and "h='100'" in text and "send-count='7'" in text
    # bob keeps being served
    b.send("<iq type='get' id='still' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
    b.read_until(r"id=['\"]still['\"]")


def test_resume_resends_unacked_and_keeps_presence(make_server):
    srv = sm_server(make_server)
    a = login(srv, "alice", "phone")
    b = login(srv, "bob", "desk")
    # mutual presence via a roster is not needed: directed presence is remembered
    a.send("<presence/>")
    sm_id = enable(a)
    send_msgs(b, "alice@localhost", "m", 3)
    assert wait_bodies(a, ["m0", "m1", "m2"]) == ["m0", "m1", "m2"]
    a.send(f"<a xmlns='{NS_SM}' h='1'/>")  # only m0 acknowledged
    time.sleep(0.2)
    a.close()  # TCP dies, no </stream:stream>
    srv_log_wait(srv, "waits 30 s for resumption")
    send_msgs(b, "alice@localhost", "m", 2, start=3)  # queued while detached
    time.sleep(0.3)
    a2, reply = resume_on_new_connection(srv, "alice", sm_id, 1)
    assert "<resumed" in reply and f"previd='{sm_id}'" in reply, reply
    seen = wait_bodies(a2, ["m1", "m2", "m3", "m4"])
    assert seen == ["m1", "m2", "m3", "m4"], seen  # m0 acked: not resent; none twice
    # the resumed session is the old one: same full JID, still routable
    b.send("<message to='alice@localhost/phone' type='chat'><body>m5</body></message>")
    assert wait_bodies(a2, ["m5"]) == ["m5"]
    a2.send("<message to='bob@localhost/desk' type='chat'><body>back</body></message>")
    b.read_until(r"<body>back</body>")
    assert re.search(r"from=['\"]alice@localhost/phone['\"]", b.transcript[-1][1].decode())
    assert "unavailable" not in b.text()


def srv_log_wait(srv, needle, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if needle in srv.log():
            return
        time.sleep(0.05)
    raise AssertionError(f"log never said {needle!r}")


def test_resume_across_mux_threads(make_server):
    srv = sm_server(make_server, _config={"core": {"mux_threads": 2}})
    b = login(srv, "bob", "desk")
    crossed = 0
    for attempt in range(12):
        a = login(srv, "alice", "phone")
        sm_id = enable(a)
        send_msgs(b, "alice@localhost/phone", f"x{attempt}_", 1)
        wait_bodies(a, [f"x{attempt}_0"])
        a.close()
        srv_log_wait(srv, f"phone waits", timeout=10)
        a2, reply = resume_on_new_connection(srv, "alice", sm_id, 0)
        assert "<resumed" in reply, reply
        assert wait_bodies(a2, [f"x{attempt}_0"]) == [f"x{attempt}_0"]
        log = srv.log()
        enabled = re.findall(r"conn ([0-9a-f]{16}): alice@localhost/phone enabled", log)[-1]
        resumed = re.findall(r"conn ([0-9a-f]{16}) \([^)]*\): resumed alice@localhost/phone",
                             log)[-1]
        if enabled[:2] != resumed[:2]:
            crossed += 1
        a2.send("</stream:stream>")
        a2.read_until_closed()
        # a clean close ends the session: its id is no good any more (a reused previd)
        a3, reply = resume_on_new_connection(srv, "alice", sm_id, 0)
        assert "item-not-found" in reply, reply
        a3.close()
        if crossed >= 1 and attempt >= 3:
            break
    assert crossed >= 1, "no resumption went through the other mux thread"


def test_window_closes_counts_add_up(make_server):
    srv = sm_server(make_server)
    a = login(srv, "alice", "phone")
    b = login(srv, "bob", "desk")
    a.send("<presence/>")
    enable(a, max_=1)  # the client asks for a 1 s window
    send_msgs(b, "alice@localhost", "m", 3)
    wait_bodies(a, ["m0", "m1", "m2"])
    a.close()
    srv_log_wait(srv, "waits 1 s for resumption")
    send_msgs(b, "alice@localhost", "m", 1, start=3)  # while detached
    b.send("<iq type='get' id='v1' to='alice@localhost/phone'>"
           "<query xmlns='jabber:iq:version'/></iq>")
    b.send("<message to='alice@localhost' type='headline'><body>h0</body></message>")
    # when the window closes: 4 messages stored, the IQ bounced, the headline dropped
    b.read_until(r"<iq[^>]*type=['\"]error['\"][^>]*id=['\"]v1['\"]|"
                 r"<iq[^>]*id=['\"]v1['\"][^>]*type=['\"]error['\"]", timeout=10)
    assert "service-unavailable" in b.text()
    srv_log_wait(srv, "not resumed within 1 s")
    srv_log_wait(srv, "unacknowledged stanzas:")
    m = re.search(r"alice@localhost/phone: (\d+) unacknowledged stanzas: (\d+) redelivered, "
                  r"(\d+) stored offline, (\d+) bounced, (\d+) dropped", srv.log())
    assert m, srv.log()[-3000:]
    total, redelivered, stored, bounced, dropped = map(int, m.groups())
    assert total == redelivered + stored + bounced + dropped
    assert (stored, bounced) == (4, 1)
    # and the resumption id is gone
    a2, reply = resume_on_new_connection(srv, "alice", "whatever", 0)
    assert "item-not-found" in reply
    a2.close()
    # the messages come back, once each, in order, from offline storage
    a3 = login(srv, "alice", "phone2")
    a3.send("<presence/>")
    assert wait_bodies(a3, ["m0", "m1", "m2", "m3"]) == ["m0", "m1", "m2", "m3"]
    assert "h0" not in a3.nothing_for(0.5)


def test_redelivered_to_other_resource(make_server):
    srv = sm_server(make_server)
    a = login(srv, "alice", "phone")
    a2 = login(srv, "alice", "laptop")
    b = login(srv, "bob", "desk")
    a.send("<presence><priority>5</priority></presence>")
    a2.send("<presence/>")
    enable(a, max_=1)
    send_msgs(b, "alice@localhost/phone", "m", 2)
    wait_bodies(a, ["m0", "m1"])
    a.close()
    # the window closes and the laptop gets what the phone never acknowledged
    assert wait_bodies(a2, ["m0", "m1"], timeout=15) == ["m0", "m1"]


def test_bad_previds_refused_without_leak(make_server):
    srv = sm_server(make_server)
    a = login(srv, "alice", "phone")
    sm_id = enable(a)
    # wrong id: <failed/>, and the stream can still bind a fresh session
    c, reply = resume_on_new_connection(srv, "alice", "nosuchid", 0)
    assert "<failed" in reply and "item-not-found" in reply
    jid, _ = c.bind("fresh")
    assert jid == "alice@localhost/fresh"
    c.close()
    # someone else's id
    c, reply = resume_on_new_connection(srv, "bob", sm_id, 0)
    assert "item-not-found" in reply
    c.close()
    # malformed h
    c, reply = resume_on_new_connection(srv, "alice", sm_id, "-1")
    assert "bad-request" in reply
    c.close()
    # resume while the old connection looks alive: it is replaced (conflict), session moves
    c, reply = resume_on_new_connection(srv, "alice", sm_id, 0)
    assert "<resumed" in reply
    expect_stream_error(a, "conflict")
    # <resume/> on a bound stream
    c.send(f"<resume xmlns='{NS_SM}' previd='{sm_id}' h='0'/>")
    assert "unexpected-request" in c.read_until(r"</failed>")
    c.send("</stream:stream>")
    c.read_until_closed()
    time.sleep(0.3)
    out = srv.ctl("sessions").stdout
    assert "alice@localhost/phone" not in out, out


def test_pipelined_resume(make_server):
    srv = sm_server(make_server)
    a = login(srv, "alice", "phone")
    b = login(srv, "bob", "desk")
    sm_id = enable(a)
    send_msgs(b, "alice@localhost/phone", "m", 2)
    wait_bodies(a, ["m0", "m1"])
    a.close()
    srv_log_wait(srv, "waits 30 s")
    c, reply = resume_on_new_connection(srv, "alice", sm_id, 2, pipelined=True)
    assert "<resumed" in reply and "h='0'" in reply, reply
    c.send("<message to='bob@localhost/desk' type='chat'><body>after</body></message>")
    b.read_until(r"<body>after</body>")


def test_queue_cap(make_server):
    srv = sm_server(make_server, max_queue=10)
    a = login(srv, "alice", "phone")
    b = login(srv, "bob", "desk")
    a.send("<presence/>")
    enable(a)
    send_msgs(b, "alice@localhost", "m", 15)
    text = expect_stream_error(a, "policy-violation")
    assert "unacknowledged" in text
    srv_log_wait(srv, "stored offline")
    # nothing lost, nothing twice: the 15 come back from offline storage in order
    a2 = login(srv, "alice", "laptop")
    a2.send("<presence/>")
    want = [f"m{i}" for i in range(15)]
    assert wait_bodies(a2, want) == want
    b.send("<iq type='get' id='ok' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
    b.read_until(r"id=['\"]ok['\"]")


def test_not_enabled_and_disabled(make_server):
    srv = sm_server(make_server, enabled=False)
    a = login(srv, "alice")
    assert NS_SM not in a.features
    a.send(f"<enable xmlns='{NS_SM}'/>")
    assert "service-unavailable" in a.read_until(r"</failed>")
    a.send(f"<r xmlns='{NS_SM}'/>")
    expect_stream_error(a, "unsupported-stanza-type")


def test_slixmpp_sm_resumes(make_server):
    """slixmpp's XEP-0198 plugin: acks in both directions, then its own resumption after the
    TCP connection is cut, with no message lost or doubled."""
    srv = sm_server(make_server)

    async def scenario():
        a = await slix_login(srv, "alice", plugins=["xep_0198"], resource="phone")
        b = await slix_login(srv, "bob", resource="desk")
        sm = a.plugin["xep_0198"]
        assert sm.sm_id, "slixmpp did not get a resumption id"
        got = []
        a.add_event_handler("message", lambda m: got.append(m["body"]))
        for i in range(10):
            b.send_message(mto="alice@localhost/phone", mbody=f"s{i}", mtype="chat")
        for _ in range(100):
            if len(got) >= 10:
                break
            await asyncio.sleep(0.05)
        assert got == [f"s{i}" for i in range(10)]
        resumed = asyncio.Event()
        a.add_event_handler("session_resumed", lambda _: resumed.set())
        a.transport.abort()  # the network goes away
        await asyncio.wait_for(a.gone.wait(), 10)
        for i in range(10, 15):
            b.send_message(mto="alice@localhost/phone", mbody=f"s{i}", mtype="chat")
        await asyncio.sleep(0.3)
        a.gone.clear()
        a.connect(a._mp_address)  # slixmpp offers <resume/> by itself
        await asyncio.wait_for(resumed.wait(), 20)
        for _ in range(100):
            if len(got) >= 15:
                break
            await asyncio.sleep(0.05)
        assert got == [f"s{i}" for i in range(15)], got
        await slix_close(a)
        await slix_close(b)

    run(scenario())


def test_waiting_session_does_not_block_its_resource(make_server):
    """With resource_conflict: refuse, a session waiting for resumption still gives way to a
    client that logs in afresh with the same resource; what it had queued is not lost."""
    srv = sm_server(make_server, _config={"c2s": {"resource_conflict": "refuse"}})
    a = login(srv, "alice", "phone")
    b = login(srv, "bob", "desk")
    a.send("<presence/>")
    enable(a)
    send_msgs(b, "alice@localhost/phone", "m", 2)
    wait_bodies(a, ["m0", "m1"])
    a.close()
    srv_log_wait(srv, "waits 30 s for resumption")
    a2 = login(srv, "alice", "phone")  # would be <conflict/> against a live session
    a2.send("<presence/>")
    assert wait_bodies(a2, ["m0", "m1"]) == ["m0", "m1"]
    # against a live session the policy still holds
    a3 = RawClient(srv.port)
    a3.open_stream()
    a3.starttls()
    a3.open_stream()
    assert "<success" in a3.auth_plain("alice", "alice-pw")
    a3.open_stream()
    jid, reply = a3.bind("phone")
    assert jid is None and "conflict" in reply, reply


def test_sessions_lists_waiting_sessions(make_server):
    """magpiectl shows which sessions wait for resumption; kicking one ends it and keeps its
    unacknowledged messages."""
    srv = sm_server(make_server)
    a = login(srv, "alice", "phone")
    b = login(srv, "bob", "desk")
    a.send("<presence/>")
    enable(a)
    send_msgs(b, "alice@localhost/phone", "m", 2)
    wait_bodies(a, ["m0", "m1"])
    out = srv.ctl("sessions").stdout
    assert "alice@localhost/phone" in out and "waiting-for-resumption" not in out, out
    a.close()
    srv_log_wait(srv, "waits 30 s for resumption")
    out = srv.ctl("sessions").stdout
    line = next(x for x in out.splitlines() if x.startswith("alice@localhost/phone "))
    assert line.endswith(" waiting-for-resumption"), line
    srv.ctl("kick", "alice@localhost/phone")
    srv_log_wait(srv, "2 stored offline")
    assert "alice@localhost/phone" not in srv.ctl("sessions").stdout
    a2 = login(srv, "alice", "phone")
    a2.send("<presence/>")
    assert wait_bodies(a2, ["m0", "m1"]) == ["m0", "m1"]
