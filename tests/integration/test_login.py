"""Logging in: every SASL mechanism, both channel binding types, both TLS entry points, and the
ways a login must fail."""
import re
import time

import pytest

from conftest import (NS_SASL, RawClient, run, sasl_client, slix_close, slix_login)


@pytest.mark.parametrize("mech", ["SCRAM-SHA-1", "SCRAM-SHA-256", "PLAIN"])
def test_slixmpp_login_with_each_mechanism(server, mech):
    async def dialogue():
        c = await slix_login(server, "alice", mech=mech)
        assert c.boundjid.bare == server.jid("alice"), c.boundjid
        assert c.boundjid.resource, "server bound an empty resource"
        await slix_close(c)
    run(dialogue())


def test_slixmpp_default_settings_log_in(server):
    """An unconfigured slixmpp 1.8.3 tries -PLUS with tls-unique first and falls back; the
    server must refuse what it cannot check and still let the client in."""
    async def dialogue():
        c = await slix_login(server, "bob", mech=None, plain_cb=False, timeout=60)
        assert c.boundjid.bare == server.jid("bob")
        await slix_close(c)
    run(dialogue())


def test_slixmpp_direct_tls(server):
    async def dialogue():
        c = await slix_login(server, "alice", mech="SCRAM-SHA-256", use_ssl=True)
        assert c.boundjid.bare == server.jid("alice")
        await slix_close(c)
    run(dialogue())


def _bound(p, user, server):
    assert p.returncode == 0, (f"sasl_client exited {p.returncode}\nstdout: {p.stdout}\n"
                               f"stderr (protocol trace): {p.stderr[-6000:]}")
    m = re.search(r"^bound: (\S+)$", p.stdout, re.M)
    assert m, p.stdout
    assert m.group(1).startswith(server.jid(user) + "/"), m.group(1)
    return p.stdout


@pytest.mark.parametrize("mech", ["SCRAM-SHA-1-PLUS", "SCRAM-SHA-256-PLUS"])
@pytest.mark.parametrize("cb,opts,tlsver", [
    ("tls-exporter", [], "TLSv1.3"),
    ("tls-server-end-point", [], "TLSv1.3"),
    ("tls-server-end-point", ["--tls12"], "TLSv1.2"),
])
def test_channel_binding(server, mech, cb, opts, tlsver):
    p = sasl_client(server, "alice", mech, "--cb", cb, *opts)
    out = _bound(p, "alice", server)
    assert f"tls: {tlsver}" in out, out
    mechs = re.search(r"^mechanisms:(.*)$", out, re.M).group(1).split()
    assert mech in mechs, f"{mech} not offered: {mechs}"


@pytest.mark.parametrize("mech", ["SCRAM-SHA-1", "SCRAM-SHA-256", "PLAIN"])
def test_c_client_without_channel_binding(server, mech):
    """A second, independent client implementation of the non-PLUS mechanisms."""
    _bound(sasl_client(server, "bob", mech), "bob", server)


def test_wrong_channel_binding_data_is_refused(server):
    p = sasl_client(server, "alice", "SCRAM-SHA-256-PLUS", "--cb", "tls-exporter", "--bad-cb")
    assert p.returncode == 2 and "failure: not-authorized" in p.stdout, (
        f"login with forged channel binding data was not refused: {p.stdout}\n{p.stderr[-3000:]}")


def test_gs2_flag_y_refused_when_plus_offered(server):
    """RFC 5802 section 6: 'y' while the server offers -PLUS means a downgrade."""
    p = sasl_client(server, "alice", "SCRAM-SHA-256", "--gs2-y")
    assert "SCRAM-SHA-256-PLUS" in p.stdout, p.stdout
    assert p.returncode == 2 and "failure: not-authorized" in p.stdout, (
        f"gs2 flag 'y' accepted although -PLUS is offered: {p.stdout}\n{p.stderr[-3000:]}")


@pytest.mark.parametrize("mech", ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-1", "PLAIN"])
def test_direct_tls_alpn(server, mech):
    p = sasl_client(server, "carol", mech, "--direct-tls", port=server.tls_port)
    out = _bound(p, "carol", server)
    assert "alpn: xmpp-client" in out, f"ALPN xmpp-client not selected: {out}"


def test_direct_tls_raw_alpn(server):
    c = RawClient(server.tls_port, direct_tls=True, alpn=["xmpp-client"])
    assert c.sock.selected_alpn_protocol() == "xmpp-client", c.sock.selected_alpn_protocol()
    assert c.sock.version() in ("TLSv1.2", "TLSv1.3"), c.sock.version()
    features = c.open_stream()
    assert "<mechanisms" in features and "PLAIN" in features, features
    assert "xmpp-tls" not in features, f"STARTTLS offered inside TLS: {features}"
    assert "<success" in c.auth_plain("alice", server.users["alice"])
    c.open_stream()
    jid, reply = c.bind("direct")
    assert jid == server.jid("alice") + "/direct", reply
    c.close()


@pytest.mark.parametrize("mech", ["SCRAM-SHA-1", "SCRAM-SHA-256", "PLAIN", "SCRAM-SHA-256-PLUS"])
def test_wrong_password(server, mech):
    p = sasl_client(server, "alice", mech, password="not-the-password")
    assert p.returncode == 2, f"wrong password not refused: {p.stdout}\n{p.stderr[-3000:]}"
    assert "failure: not-authorized" in p.stdout, p.stdout


@pytest.mark.parametrize("mech", ["SCRAM-SHA-1", "SCRAM-SHA-256", "PLAIN"])
def test_unknown_user(server, mech):
    p = sasl_client(server, "nobody", mech, password="whatever")
    assert p.returncode == 2, f"unknown user not refused: {p.stdout}\n{p.stderr[-3000:]}"
    assert "failure: not-authorized" in p.stdout, p.stdout


def test_slixmpp_wrong_password(server):
    async def dialogue():
        with pytest.raises(AssertionError) as e:
            await slix_login(server, "alice", mech="SCRAM-SHA-256", password="wrong")
        assert "not-authorized" in str(e.value), str(e.value)
    run(dialogue())


def test_no_plain_before_tls(server):
    c = RawClient(server.port)
    features = c.open_stream()
    assert re.search(r"<starttls\s+xmlns=['\"]urn:ietf:params:xml:ns:xmpp-tls['\"]", features), \
        f"STARTTLS not offered: {features}"
    assert "<required" in features, f"STARTTLS not marked required: {features}"
    assert "<mechanism>PLAIN</mechanism>" not in features, f"PLAIN offered before TLS: {features}"
    # A client that tries anyway must not get in, and must not have its password accepted.
    import base64
    payload = base64.b64encode(b"\0alice\0" + server.users["alice"].encode()).decode()
    c.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{payload}</auth>")
    text = c.read_until(r"</failure>|<failure[^>]*/>|</stream:error>|</stream:stream>")
    assert "<success" not in text, f"PLAIN accepted before TLS: {text!r}"
    assert re.search(r"encryption-required|<failure|policy-violation|not-authorized", text), text
    c.close()


def test_sasl_not_offered_again_after_success(server):
    c = RawClient(server.port)
    c.login("alice", server.users["alice"])
    assert "<mechanisms" not in c.features, f"SASL offered again after success: {c.features}"
    assert "xmpp-bind" in c.features, c.features
    c.close()


def test_plain_authzid_for_other_user_refused(server):
    c = RawClient(server.port)
    c.open_stream()
    c.starttls()
    c.open_stream()
    res = c.auth_plain("alice", server.users["alice"], authzid=server.jid("bob"))
    assert "<success" not in res, f"PLAIN with authzid of another user succeeded: {res!r}"
    assert re.search(r"invalid-authzid|not-authorized", res), res
    c.close()


def test_tls_1_1_refused(server):
    import ssl
    import warnings
    warnings.simplefilter("ignore", DeprecationWarning)
    c = RawClient(server.port)
    c.open_stream()
    c.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
    c.read_until(r"<proceed")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        ctx.set_ciphers("ALL:@SECLEVEL=0")
    except (ValueError, ssl.SSLError):
        pytest.skip("this OpenSSL cannot speak TLS 1.1 at all")
    with pytest.raises((ssl.SSLError, OSError)):
        ctx.wrap_socket(c.sock, server_hostname="localhost")
    c.close()


def _timed_failure(server):
    t0 = time.monotonic()
    p = sasl_client(server, "alice", "PLAIN", password="wrong-password")
    dt = time.monotonic() - t0
    assert p.returncode == 2, p.stdout + p.stderr[-2000:]
    return dt, p.stdout


def test_repeated_failures_get_slower(make_server):
    srv = make_server(users={"alice": None},
                      config={"sasl": {"failure_delay_ms": 300, "max_failures": 10}})
    times = []
    for _ in range(6):
        dt, out = _timed_failure(srv)
        times.append(dt)
    assert times[5] > times[0] + 0.5, (
        f"6th failed login answered in {times[5]:.2f}s, 1st in {times[0]:.2f}s: "
        f"failures are not slowed down (all: {[round(t, 2) for t in times]})")
    assert max(times) < 30, f"throttling delay out of bounds: {times}"


def _plain(user, password):
    import base64
    payload = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
    return f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{payload}</auth>"


def _tls_stream(server):
    c = RawClient(server.port)
    c.open_stream()
    c.starttls()
    c.open_stream()
    return c


def test_plain_abort_while_the_check_runs(server):
    """A PLAIN password check runs on a worker thread; an <abort/> sent before its outcome ends
    the exchange, and the check's late result must not log the client in."""
    c = _tls_stream(server)
    c.send(_plain("alice", server.users["alice"]) + f"<abort xmlns='{NS_SASL}'/>")
    text = c.read_until(r"<failure[^>]*>\s*<aborted/>\s*</failure>")
    text += c.nothing_for(1.0)
    assert "<success" not in text, f"aborted exchange logged in: {text!r}"
    # the stream is usable: a new exchange logs in
    res = c.auth_plain("alice", server.users["alice"])
    assert "<success" in res, res
    c.close()


def test_plain_second_auth_replaces_the_pending_one(server):
    """<auth/> again while the first check runs: only the second exchange counts, whichever
    order the checks finish in."""
    c = _tls_stream(server)
    c.send(_plain("alice", server.users["alice"]) + _plain("alice", "wrong password"))
    text = c.read_until(r"</failure>|<failure[^>]*/>")
    text += c.nothing_for(1.0)
    assert "<success" not in text, f"the replaced exchange logged in: {text!r}"
    assert "not-authorized" in text, text
    c.close()
    c = _tls_stream(server)
    c.send(_plain("alice", "wrong password") + _plain("alice", server.users["alice"]))
    text = c.read_until(r"<success[^>]*/>|</success>")
    text += c.nothing_for(1.0)
    assert text.count("<success") == 1 and "<failure" not in text, text
    c.close()


def test_plain_client_gone_while_the_check_runs(server):
    """Connections that close right after <auth/>: each check finishes for nobody; the server
    stays up and logs everyone else in."""
    for _ in range(30):
        c = _tls_stream(server)
        c.send(_plain("alice", server.users["alice"]))
        c.close()
    c = RawClient(server.port)
    assert c.login("bob", server.users["bob"])
    c.close()
    assert server.alive()
