"""Never lose a message: what the server acknowledged to a sender (XEP-0198 <a h/>) or stored
offline is there after `kill -9`, and connections cut mid-flight lose nothing and double
nothing when the client resumes."""
import random
import re
import time


from test_sm import NS_SM, ask_h, enable, login, resume_on_new_connection, srv_log_wait, \
    wait_bodies

USERS = {"alice": "alice-pw", "bob": "bob-pw"}


def kill9_and_restart(srv):
    srv.proc.kill()
    srv.proc.wait()
    assert srv.proc.returncode == -9
    if srv.logf:
        srv.logf.close()
        srv.logf = None
    srv.start()


def test_offline_messages_survive_kill9(make_server):
    srv = make_server(users=USERS)
    b = login(srv, "bob", "desk")
    enable(b, resume=False)
    for i in range(20):
        b.send(f"<message to='alice@localhost' type='chat' id='o{i}'><body>o{i}</body></message>")
    assert ask_h(b) == 20  # the server has handled (stored) all twenty
    kill9_and_restart(srv)
    a = login(srv, "alice", "phone")
    a.send("<presence/>")
    want = [f"o{i}" for i in range(20)]
    assert wait_bodies(a, want) == want


def test_acked_to_sender_unacked_by_recipient_survive_kill9(make_server):
    """Alice is online with stream management and got 30 messages but acknowledged 10; bob
    was told all 30 arrived. The server dies: the 20 alice never confirmed must reach her."""
    srv = make_server(users=USERS)
    a = login(srv, "alice", "phone")
    a.send("<presence/>")
    enable(a)
    b = login(srv, "bob", "desk")
    enable(b, resume=False)
    for i in range(30):
        b.send(f"<message to='alice@localhost' type='chat' id='k{i}'><body>k{i}</body></message>")
    assert ask_h(b) == 30
    got = wait_bodies(a, [f"k{i}" for i in range(30)])
    assert got == [f"k{i}" for i in range(30)]
    a.send(f"<a xmlns='{NS_SM}' h='10'/>")
    assert ask_h(a) == 0  # the server processed our <a/> (and we sent no stanza since enable)
    kill9_and_restart(srv)
    assert "20 in-flight messages from before a crash moved to offline storage" in srv.log()
    a2 = login(srv, "alice", "phone")
    a2.send("<presence/>")
    want = [f"k{i}" for i in range(10, 30)]
    assert wait_bodies(a2, want) == want  # exactly the unconfirmed ones, in order
    assert "<body>k" not in a2.nothing_for(0.5)
    # the journal was emptied once they were stored: another restart brings nothing back
    a2.send("</stream:stream>")
    a2.read_until_closed()
    assert srv.stop() == 0
    srv.start()
    assert srv.log().count("in-flight messages from before a crash") == 1
    a3 = login(srv, "alice", "phone")
    a3.send("<presence/>")
    assert "<body>k" not in a3.nothing_for(1.0)


def test_clean_shutdown_keeps_unacked(make_server):
    """SIGTERM with a session waiting for resumption: its queue goes to offline storage."""
    srv = make_server(users=USERS, config={"sm": {"resume_timeout": 300}})
    a = login(srv, "alice", "phone")
    a.send("<presence/>")
    enable(a)
    b = login(srv, "bob", "desk")
    for i in range(5):
        b.send(f"<message to='alice@localhost' type='chat'><body>t{i}</body></message>")
    wait_bodies(a, [f"t{i}" for i in range(5)])
    a.close()
    srv_log_wait(srv, "waits 300 s for resumption")
    assert srv.stop() == 0
    srv.start()
    a2 = login(srv, "alice", "phone")
    a2.send("<presence/>")
    want = [f"t{i}" for i in range(5)]
    assert wait_bodies(a2, want) == want


def test_connections_cut_mid_flight(make_server):
    """Bob streams 300 messages while alice's TCP connection is cut at random points a dozen
    times; alice resumes each time with the count she really received. Sent = received, none
    twice."""
    srv = make_server(users=USERS, config={"sm": {"resume_timeout": 60}})
    rng = random.Random(1234)
    a = login(srv, "alice", "phone")
    sm_id = enable(a)
    b = login(srv, "bob", "desk")
    total = 300
    received = []
    h = 0
    sent = 0
    cuts = 0
    while len(received) < total:
        if sent < total:
            n = min(total - sent, rng.randint(5, 40))
            for i in range(sent, sent + n):
                b.send(f"<message to='alice@localhost/phone' type='chat'><body>c{i}</body>"
                       "</message>")
            sent += n
        # read a random number of complete messages, then cut the connection
        want = rng.randint(1, 30)
        deadline = time.monotonic() + 10
        while want and time.monotonic() < deadline and len(received) < sent:
            try:
                chunk = a.read_until(r"</message>|<r xmlns='urn:xmpp:sm:3'/>", timeout=2)
            except AssertionError:
                break
            bodies = re.findall(r"<body>(c\d+)</body>", chunk)
            received += bodies
            h += len(bodies)
            want -= len(bodies)
        if len(received) >= total:
            break
        a.close()
        cuts += 1
        srv_log_wait_count(srv, "waits 60 s for resumption", cuts)
        a, reply = resume_on_new_connection(srv, "alice", sm_id, h)
        assert "<resumed" in reply, reply
    assert cuts >= 8
    assert len(received) == total, f"{len(received)} of {total}"
    assert received == [f"c{i}" for i in range(total)]  # in order, none twice


def srv_log_wait_count(srv, needle, count, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if srv.log().count(needle) >= count:
            return
        time.sleep(0.02)
    raise AssertionError(f"log said {needle!r} fewer than {count} times")
