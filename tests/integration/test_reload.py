"""SIGHUP reloads the configuration: new limits apply to streams opened and running, a bad file
is refused and the running configuration kept."""
import os
import signal
import time

from conftest import RawClient, expect_stream_error


def wait_log(server, text, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if text in server.log():
            return
        time.sleep(0.1)
    raise AssertionError(f"{text!r} not in the log:\n" + server.log()[-3000:])


def message_of(size):
    head = "<message to='bob@localhost' type='chat'><body>"
    tail = "</body></message>"
    return head + "x" * (size - len(head) - len(tail)) + tail


def test_sighup_applies_new_stanza_limit(make_server):
    server = make_server(users={"alice": None, "bob": None},
                         config={"c2s": {"max_stanza_size": 100000}})
    bob = RawClient(server.port)
    bob.login("bob", server.users["bob"])
    bob.send("<presence/>")
    bob.read_until(r"<presence")

    alice = RawClient(server.port)
    alice.login("alice", server.users["alice"])
    alice.send(message_of(50000))
    bob.read_until(r"</message>")

    server.config["c2s"]["max_stanza_size"] = 20000
    server.write_config()
    os.kill(server.pid, signal.SIGHUP)
    wait_log(server, "configuration reloaded")

    # The running stream now has the new limit.
    alice.send(message_of(50000))
    sent = expect_stream_error(alice, "policy-violation")
    assert "stanza-too-big" in sent, sent
    bob.send("<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
    assert "result" in bob.read_until(r"<iq[^>]*id=['\"]p1['\"][^>]*>")


def test_sighup_with_bad_file_keeps_running_config(make_server):
    server = make_server(users={"alice": None})
    with open(server.config_path, "a") as f:
        f.write("no_such_key: 1\n")
    os.kill(server.pid, signal.SIGHUP)
    wait_log(server, "reload failed")
    assert "no_such_key" in server.log()
    c = RawClient(server.port)
    c.login("alice", server.users["alice"])
    c.send("<iq type='get' id='p2' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
    assert "result" in c.read_until(r"<iq[^>]*id=['\"]p2['\"][^>]*>")
    # Leave a valid file for the fixture's clean shutdown check.
    server.write_config()
