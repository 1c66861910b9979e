"""Non-SASL authentication (XEP-0078), for old clients: off by default; when c2s.legacy_auth is
on, Alice logs in with username, password and resource in one IQ over TLS and then chats with
Bob (a slixmpp client on SASL) exactly as if she had used SASL and bind."""
import asyncio
import re
import time

from conftest import RawClient, next_message, run, slix_close, slix_login

NS_AUTH = "jabber:iq:auth"
FEATURE = "http://jabber.org/features/iq-auth"
ON = {"c2s": {"legacy_auth": True}}


def q(s):
    return s.replace("'", "['\"]")


def answer(c, iq_id, timeout=10):
    return c.read_until(q(rf"<iq[^>]*id='{iq_id}'[^>]*?(/>|>.*?</iq>)"), timeout=timeout)


def error_of(reply):
    assert re.search(q(r"<iq[^>]*type='error'"), reply), f"expected an error: {reply!r}"
    m = re.search(r"<error[^>]*type=['\"](\w+)['\"][^>]*>\s*<([a-z-]+)", reply)
    return m.group(1), m.group(2)


def tls_stream(server):
    """STARTTLS done, features of the encrypted stream read."""
    c = RawClient(server.port)
    c.open_stream()
    c.starttls()
    c.features = c.open_stream()
    return c


def legacy_set(c, iq_id, username=None, password=None, resource=None, extra=""):
    parts = "".join(f"<{k}>{v}</{k}>" for k, v in
                    (("username", username), ("password", password), ("resource", resource))
                    if v is not None)
    c.send(f"<iq type='set' id='{iq_id}'><query xmlns='{NS_AUTH}'>{parts}{extra}</query></iq>")
    return answer(c, iq_id)


def legacy_login(server, user, resource, password=None):
    c = tls_stream(server)
    reply = legacy_set(c, "auth1", user, password or server.users[user], resource)
    assert re.search(q(r"<iq[^>]*type='result'"), reply), f"legacy login failed: {reply!r}"
    c.jid = f"{user}@{server.domain}/{resource}"
    return c


def test_off_by_default(server):
    c = tls_stream(server)
    assert FEATURE not in c.features
    c.send(f"<iq type='get' id='g1'><query xmlns='{NS_AUTH}'><username>alice</username>"
           "</query></iq>")
    assert error_of(answer(c, "g1")) == ("cancel", "service-unavailable")
    reply = legacy_set(c, "s1", "alice", server.users["alice"], "old")
    assert error_of(reply) == ("cancel", "service-unavailable")
    # nothing was authenticated: a stanza is still refused
    c.send("<message to='bob@localhost'><body>hi</body></message>")
    assert "<not-authorized" in c.read_until_closed()


def test_offered_beside_sasl_only_after_tls(make_server):
    srv = make_server(users={"alice": None}, config=ON)
    c = RawClient(srv.port)
    before = c.open_stream()
    assert FEATURE not in before
    c.starttls()
    after = c.open_stream()
    assert FEATURE in after and "<mechanism>PLAIN</mechanism>" in after
    c.send(f"<iq type='get' id='g1' to='localhost'><query xmlns='{NS_AUTH}'>"
           "<username>alice</username></query></iq>")
    reply = answer(c, "g1")
    assert re.search(q(r"<iq[^>]*type='result'[^>]*from='localhost'"), reply), reply
    assert "<username>alice</username>" in reply
    assert "<password/>" in reply and "<resource/>" in reply
    assert "digest" not in reply  # we keep no plaintext password to hash
    c.close()


def test_login_then_chat_like_a_sasl_session(make_server):
    # a short unauthenticated timeout: the legacy session must not be taken for one
    srv = make_server(users={"alice": None, "bob": None},
                      config={"c2s": {"legacy_auth": True, "unauthenticated_timeout": 2,
                                      "preauth_max_stanza_size": 2048}})

    async def scenario():
        bob = await slix_login(srv, "bob", resource="phone")
        alice = legacy_login(srv, "alice", "oldclient")
        alice.send("<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>")
        answer(alice, "r1")
        alice.send("<presence/>")
        alice.read_until(q(r"<presence[^>]*from='alice@localhost/oldclient'"))
        time.sleep(3)  # past unauthenticated_timeout
        # bigger than the pre-authentication limit: the session has the normal one
        body = "x" * 5000
        alice.send(f"<message to='bob@localhost/phone' type='chat' from='mallory@evil'>"
                   f"<body>{body}</body></message>")
        m = await next_message(bob, what="alice's message")
        assert str(m["from"]) == "alice@localhost/oldclient"  # stamped, not what she wrote
        assert m["body"] == body
        bob.send_message(mto="alice@localhost/oldclient", mbody="hello old friend",
                         mtype="chat")
        got = await asyncio.get_running_loop().run_in_executor(
            None, lambda: alice.read_until(r"hello old friend.*?</message>"))
        assert re.search(q(r"from='bob@localhost/phone'"), got), got
        # a second login on the stream is not possible any more
        reply = legacy_set(alice, "again", "alice", srv.users["alice"], "other")
        assert error_of(reply)[1] == "service-unavailable"
        alice.close()
        await slix_close(bob)
    run(scenario())


def test_wrong_password_then_right_one(make_server):
    srv = make_server(users={"alice": None},
                      config={"c2s": {"legacy_auth": True}, "sasl": {"failure_delay_ms": 0}})
    c = tls_stream(srv)
    assert error_of(legacy_set(c, "w1", "alice", "wrong", "r")) == ("auth", "not-authorized")
    assert error_of(legacy_set(c, "w2", "nobody", "wrong", "r")) == ("auth", "not-authorized")
    reply = legacy_set(c, "ok", "alice", srv.users["alice"], "r")
    assert re.search(q(r"<iq[^>]*type='result'"), reply), reply
    c.send("<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
    assert re.search(q(r"type='result'"), answer(c, "p1"))
    c.close()
    log = srv.log()
    assert "legacy authentication failed" in log
    assert "authenticated alice@localhost with legacy auth" in log


def test_missing_fields_are_not_acceptable(make_server):
    srv = make_server(users={"alice": None}, config=ON)
    c = tls_stream(srv)
    pw = srv.users["alice"]
    assert error_of(legacy_set(c, "m1", "alice", pw)) == ("modify", "not-acceptable")
    assert error_of(legacy_set(c, "m2", "alice", None, "r")) == ("modify", "not-acceptable")
    assert error_of(legacy_set(c, "m3", None, pw, "r")) == ("modify", "not-acceptable")
    digest = "<digest>48fc78be9ec8f86d8ce1c39c320c97c21d62334d</digest>"
    assert error_of(legacy_set(c, "m4", "alice", None, "r", extra=digest)) == (
        "modify", "not-acceptable")
    c.close()


def test_refused_over_plain_tcp_when_tls_is_required(make_server):
    srv = make_server(users={"alice": None}, config=ON)
    c = RawClient(srv.port)
    features = c.open_stream()
    assert FEATURE not in features
    reply = legacy_set(c, "p1", "alice", srv.users["alice"], "r")
    assert error_of(reply) == ("cancel", "not-allowed")
    c.send("<presence/>")
    assert "<not-authorized" in c.read_until_closed()
    assert "authenticated alice" not in srv.log()


def test_plain_tcp_allowed_when_tls_is_not_required(make_server):
    srv = make_server(users={"alice": None},
                      config={"c2s": {"legacy_auth": True, "tls_required": False}})
    c = RawClient(srv.port)
    assert FEATURE in c.open_stream()
    reply = legacy_set(c, "p1", "alice", srv.users["alice"], "r")
    assert re.search(q(r"<iq[^>]*type='result'"), reply), reply
    c.close()


def test_resource_conflict_follows_the_policy(make_server):
    srv = make_server(users={"alice": None},
                      config={"c2s": {"legacy_auth": True, "resource_conflict": "refuse",
                                      "max_sessions_per_user": 2}})
    first = legacy_login(srv, "alice", "desk")
    c = tls_stream(srv)
    assert error_of(legacy_set(c, "c1", "alice", srv.users["alice"], "desk")) == (
        "cancel", "conflict")
    # refused, not logged in; another resource works on the same stream
    reply = legacy_set(c, "c2", "alice", srv.users["alice"], "laptop")
    assert re.search(q(r"<iq[^>]*type='result'"), reply), reply
    # the session limit holds too
    third = tls_stream(srv)
    assert error_of(legacy_set(third, "c3", "alice", srv.users["alice"], "phone")) == (
        "wait", "resource-constraint")
    for x in (first, c, third):
        x.close()


def test_replace_policy_kicks_the_old_session(make_server):
    srv = make_server(users={"alice": None}, config=ON)
    first = legacy_login(srv, "alice", "desk")
    legacy_login(srv, "alice", "desk").close()
    assert "<conflict" in first.read_until_closed()


def test_failed_logins_are_throttled_like_sasl(make_server):
    srv = make_server(users={"alice": None},
                      config={"c2s": {"legacy_auth": True},
                              "sasl": {"failure_delay_ms": 0, "max_failures": 2}})
    c = tls_stream(srv)
    for i in range(2):
        assert error_of(legacy_set(c, f"f{i}", "alice", "bad", "r"))[1] == "not-authorized"
    # the right password is not even checked now
    assert error_of(legacy_set(c, "f2", "alice", srv.users["alice"], "r")) == (
        "wait", "policy-violation")
    c.close()
    # SASL from the same address is refused as well: one throttle
    c = tls_stream(srv)
    res = c.auth_plain("alice", srv.users["alice"])
    assert "temporary-auth-failure" in res
    c.close()


def test_slixmpp_logs_in_normally_with_legacy_auth_on(make_server):
    srv = make_server(users={"alice": None, "bob": None}, config=ON)

    async def scenario():
        a = await slix_login(srv, "alice")
        b = await slix_login(srv, "bob", mech="SCRAM-SHA-256")
        a.send_message(mto=b.boundjid.full, mbody="still SASL", mtype="chat")
        m = await next_message(b)
        assert m["body"] == "still SASL"
        await slix_close(a)
        await slix_close(b)
    run(scenario())
