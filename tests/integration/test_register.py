"""In-band registration (XEP-0077): off unless register.enabled; Juliet registers, logs in on
the same stream, changes her password and cancels her account."""
import re

from conftest import NS_SASL, RawClient, expect_stream_error

NS_REG = "jabber:iq:register"
FEATURE = "<register xmlns='http://jabber.org/features/iq-register'/>"
ENABLED = {"register": {"enabled": True}}


def secure_stream(srv):
    """A client past STARTTLS, not logged in; returns (client, features)."""
    c = RawClient(srv.port)
    c.open_stream()
    c.starttls()
    return c, c.open_stream()


def iq(c, iq_id, body, type_="set"):
    c.send(f"<iq type='{type_}' id='{iq_id}'>{body}</iq>")
    return c.read_until(rf"<iq[^>]*id=['\"]{iq_id}['\"](?:[^>]*/>|.*?</iq>)")


def register(c, iq_id, user, password):
    return iq(c, iq_id, f"<query xmlns='{NS_REG}'><username>{user}</username>"
                        f"<password>{password}</password></query>")


def error_of(reply):
    assert "type='error'" in reply or 'type="error"' in reply, reply
    m = re.search(r"<error type=['\"](\w+)['\"]><([\w-]+) ", reply)
    assert m, reply
    return m.group(1), m.group(2)


def is_result(reply):
    return re.search(r"<iq[^>]*type=['\"]result['\"]", reply) is not None


def login_fails(srv, user, password):
    c, _ = secure_stream(srv)
    try:
        res = c.auth_plain(user, password)
        return "<failure" in res
    finally:
        c.close()


def test_disabled_by_default(make_server):
    srv = make_server()
    c, features = secure_stream(srv)
    assert "iq-register" not in features, features
    assert error_of(iq(c, "g1", f"<query xmlns='{NS_REG}'/>", "get")) == ("cancel", "not-allowed")
    assert error_of(register(c, "r1", "juliet", "balcony-123")) == ("cancel", "not-allowed")
    c.close()
    assert login_fails(srv, "juliet", "balcony-123")


def test_not_offered_before_tls(make_server):
    srv = make_server(config=ENABLED)
    c = RawClient(srv.port)
    features = c.open_stream()
    assert "iq-register" not in features, features
    assert error_of(iq(c, "g1", f"<query xmlns='{NS_REG}'/>", "get")) == ("cancel", "not-allowed")
    c.close()


def test_register_then_log_in_on_the_same_stream(make_server):
    srv = make_server(config=ENABLED)
    srv.secrets.add("balcony-123")
    c, features = secure_stream(srv)
    assert FEATURE in features, features
    form = iq(c, "g1", f"<query xmlns='{NS_REG}'/>", "get")
    assert is_result(form), form
    for field in ("<instructions>", "<username/>", "<password/>"):
        assert field in form, form
    reply = register(c, "r1", "Juliet", "balcony-123")
    assert is_result(reply), reply
    res = c.auth_plain("juliet", "balcony-123")
    assert "<success" in res, res
    c.open_stream()
    jid, reply = c.bind("phone")
    assert jid == f"juliet@{srv.domain}/phone", reply
    c.close()
    # and on a fresh connection
    c2 = RawClient(srv.port)
    assert c2.login("juliet", "balcony-123").startswith(srv.jid("juliet") + "/")
    c2.close()


def test_refusals(make_server):
    srv = make_server(users={"romeo": None}, config=ENABLED)
    srv.secrets.add("balcony-123")
    c, _ = secure_stream(srv)
    assert error_of(register(c, "r1", "romeo", "balcony-123")) == ("cancel", "conflict")
    # nodeprep forbids '@' and spaces; empty fields and short passwords are not acceptable
    assert error_of(register(c, "r2", "ju@liet", "balcony-123")) == ("modify", "not-acceptable")
    assert error_of(register(c, "r3", "ju liet", "balcony-123")) == ("modify", "not-acceptable")
    assert error_of(register(c, "r4", "", "balcony-123")) == ("modify", "not-acceptable")
    assert error_of(register(c, "r5", "juliet", "short")) == ("modify", "not-acceptable")
    assert error_of(iq(c, "r6", f"<query xmlns='{NS_REG}'><username>juliet</username></query>")) \
        == ("modify", "not-acceptable")
    # cancelling needs a login first
    assert error_of(iq(c, "r7", f"<query xmlns='{NS_REG}'><remove/></query>")) \
        == ("auth", "not-authorized")
    # none of that counted against the address, nor made an account
    assert is_result(register(c, "r8", "juliet", "balcony-123"))
    # other pre-auth IQs are still refused outright
    c.send("<iq type='get' id='v1'><query xmlns='jabber:iq:version'/></iq>")
    expect_stream_error(c, "not-authorized")
    c.close()


def test_rate_limited_per_ip(make_server):
    srv = make_server(config={"register": {"enabled": True, "max_per_ip": 3,
                                           "window": 3600}})
    srv.secrets.add("balcony-123")
    for i in range(3):
        c, _ = secure_stream(srv)
        assert is_result(register(c, f"r{i}", f"user{i}", "balcony-123"))
        c.close()
    c, _ = secure_stream(srv)
    assert error_of(register(c, "r3", "user3", "balcony-123")) == ("wait", "resource-constraint")
    c.close()
    assert login_fails(srv, "user3", "balcony-123")


def test_password_change_even_with_registration_off(make_server):
    srv = make_server(users={"juliet": "old-password-1"})
    srv.secrets.update({"old-password-1", "new-password-2"})
    c = RawClient(srv.port)
    c.login("juliet", "old-password-1")
    assert error_of(register(c, "p1", "juliet", "short")) == ("modify", "not-acceptable")
    assert error_of(register(c, "p2", "romeo", "new-password-2")) == ("auth", "not-authorized")
    reply = iq(c, "g1", f"<query xmlns='{NS_REG}'/>", "get")
    assert "<registered/>" in reply and "<username>juliet</username>" in reply, reply
    reply = register(c, "p3", "juliet", "new-password-2")
    assert is_result(reply), reply
    c.close()
    assert login_fails(srv, "juliet", "old-password-1")
    c2 = RawClient(srv.port)
    c2.login("juliet", "new-password-2")
    c2.close()


def test_cancel_removes_the_account_and_closes_its_streams(make_server):
    srv = make_server(users={"juliet": "balcony-123", "romeo": None})
    srv.secrets.add("balcony-123")
    phone = RawClient(srv.port)
    phone.login("juliet", "balcony-123", resource="phone")
    laptop = RawClient(srv.port)
    laptop.login("juliet", "balcony-123", resource="laptop")
    romeo = RawClient(srv.port)
    romeo.login("romeo", srv.users["romeo"])
    # another account cannot be cancelled by addressing it
    romeo.send(f"<iq type='set' id='x1' to='{srv.jid('juliet')}'>"
               f"<query xmlns='{NS_REG}'><remove/></query></iq>")
    reply = romeo.read_until(r"<iq[^>]*id=['\"]x1['\"].*?</iq>")
    assert error_of(reply)[1] == "service-unavailable", reply

    phone.send(f"<iq type='set' id='c1'><query xmlns='{NS_REG}'><remove/></query></iq>")
    text = phone.read_until_closed()
    assert re.search(r"<iq[^>]*id=['\"]c1['\"][^>]*type=['\"]result['\"]|"
                     r"<iq[^>]*type=['\"]result['\"][^>]*id=['\"]c1['\"]", text), text
    assert re.search(r"<not-authorized xmlns=['\"]urn:ietf:params:xml:ns:xmpp-streams", text), text
    assert text.index("c1") < text.index("not-authorized"), text
    expect_stream_error(laptop, "not-authorized")
    phone.close()
    laptop.close()
    assert login_fails(srv, "juliet", "balcony-123")
    # romeo is untouched
    romeo.send(f"<iq type='get' id='p1' to='{srv.domain}'><ping xmlns='urn:xmpp:ping'/></iq>")
    reply = romeo.read_until(r"<iq[^>]*id=['\"]p1['\"][^>]*/>")
    assert is_result(reply), reply
    romeo.close()


def test_slixmpp_registers_changes_password_and_cancels(make_server):
    """slixmpp's XEP-0077 plugin: register from the stream feature, log in, change the password,
    cancel; the server then closes the stream."""
    import asyncio
    from conftest import run, slix_client, slix_login, slix_close

    srv = make_server(config=ENABLED)
    srv.secrets.update({"nurse-says-hi", "nurse-says-bye"})

    async def dialogue():
        c = slix_client(srv, "nurse", password="nurse-says-hi")
        c.register_plugin("xep_0004")
        c.register_plugin("xep_0066")
        c.register_plugin("xep_0077")
        c["xep_0077"].create_account = True
        # slixmpp 1.8 queues every stanza but bind/session until the session starts, its own
        # registration IQs included; let them through as its register example needs.
        c._always_send_everything = True
        forms = []

        async def on_register(form):
            forms.append(form)
            iq = c.Iq()
            iq["type"] = "set"
            iq["register"]["username"] = "nurse"
            iq["register"]["password"] = "nurse-says-hi"
            await iq.send(timeout=10)
        c.add_event_handler("register", on_register)
        c.connect(c._mp_address)
        await asyncio.wait_for(c.started.wait(), 20)
        assert forms and forms[0]["register"]["fields"] is not None
        assert c.boundjid.bare == srv.jid("nurse")
        reply = await c["xep_0077"].change_password("nurse-says-bye", timeout=10)
        assert reply["type"] == "result", reply
        await c["xep_0077"].cancel_registration(timeout=10)
        await asyncio.wait_for(c.gone.wait(), 10)
        assert "not-authorized" in c.stream_errors, c.stream_errors

        srv.users["nurse"] = "nurse-says-bye"
        try:
            await slix_login(srv, "nurse", timeout=10)
            raise AssertionError("login to a cancelled account succeeded")
        except AssertionError as e:
            assert "did not start a session" in str(e), e
    run(dialogue())
