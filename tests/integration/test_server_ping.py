"""The server pings silent clients (XEP-0199) and drops those that do not answer."""
import re
import time

from conftest import RawClient, expect_stream_error


def test_silent_client_is_pinged_and_dropped(make_server):
    server = make_server(users={"alice": None, "bob": None},
                         config={"c2s": {"ping_interval": 2, "ping_timeout": 2}})
    mute = RawClient(server.port)
    mute.login("alice", server.users["alice"], resource="mute")
    alive = RawClient(server.port)
    alive.login("bob", server.users["bob"], resource="alive")

    # bob answers every ping and stays; alice never answers and is disconnected
    deadline = time.time() + 15
    answered = 0
    while time.time() < deadline and answered < 3:
        ping = alive.read_until(r"<iq[^>]*type=['\"]get['\"].*?</iq>", timeout=10)
        assert "urn:xmpp:ping" in ping and "to='bob@localhost/alive'" in ping.replace('"', "'"), ping
        pid = re.search(r"id=['\"]([^'\"]+)['\"]", ping).group(1)
        alive.send(f"<iq type='result' id='{pid}' to='localhost'/>")
        answered += 1
    assert answered == 3
    got = mute.read_until(r"urn:xmpp:ping", timeout=10)
    assert "<iq" in got
    expect_stream_error(mute, "connection-timeout", timeout=10)
    alive.send("<iq type='get' id='still' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
    assert "result" in alive.read_until(r"<iq[^>]*id=['\"]still['\"][^>]*>")
