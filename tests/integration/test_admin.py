"""magpiectl over the admin socket, magpiectl on the storage directly, magpied --check-config."""
import os
import re
import subprocess
import time

from conftest import MAGPIECTL, MAGPIED, RawClient, sasl_client


def _login(server, user, password):
    return sasl_client(server, user, "SCRAM-SHA-256", password=password)


def test_user_add_passwd_delete_at_runtime(server):
    pw = server.add_user("dave")
    p = _login(server, "dave", pw)
    assert p.returncode == 0 and "bound: dave@localhost/" in p.stdout, (
        f"user added at runtime cannot log in at once: {p.stdout}\n{p.stderr[-3000:]}")

    new_pw = "pw-new-" + os.urandom(6).hex()
    server.secrets.add(new_pw)
    server.ctl("user", "passwd", server.jid("dave"), new_pw)
    p = _login(server, "dave", pw)
    assert p.returncode == 2 and "not-authorized" in p.stdout, f"old password still works: {p.stdout}"
    p = _login(server, "dave", new_pw)
    assert p.returncode == 0, f"new password refused: {p.stdout}\n{p.stderr[-3000:]}"

    server.ctl("user", "delete", server.jid("dave"))
    p = _login(server, "dave", new_pw)
    assert p.returncode == 2 and "not-authorized" in p.stdout, f"deleted user logs in: {p.stdout}"
    assert server.jid("dave") not in server.ctl("user", "list").stdout.split()


def test_user_add_existing_fails(server):
    p = server.ctl("user", "add", server.jid("alice"), "pw-other-1234", check=False)
    assert p.returncode == 1 and p.stderr.strip(), (
        f"adding an existing user: exit {p.returncode}, stderr {p.stderr!r}")
    # alice's password is unchanged
    assert _login(server, "alice", server.users["alice"]).returncode == 0


def test_user_delete_unknown_fails(server):
    p = server.ctl("user", "delete", server.jid("nobody"), check=False)
    assert p.returncode == 1 and p.stderr.strip(), (p.returncode, p.stderr)


def test_user_add_bad_jid_fails(server):
    p = server.ctl("user", "add", "not a jid@@", "pw-x-12345678", check=False)
    assert p.returncode == 1 and p.stderr.strip(), (p.returncode, p.stderr)
    p = server.ctl("user", "add", "eve@not-served.example", "pw-x-12345678", check=False)
    assert p.returncode == 1, f"user added for a domain this server does not serve: {p.stdout}"


def test_user_list(server):
    lines = server.ctl("user", "list").stdout.split("\n")
    users = sorted(x for x in lines if x.strip())
    assert users == sorted(server.jid(u) for u in ("alice", "bob", "carol")), users
    lines = server.ctl("user", "list", "localhost").stdout.split()
    assert server.jid("alice") in lines, lines


def test_sessions_and_kick(server):
    c = RawClient(server.port)
    jid = c.login("alice", server.users["alice"], resource="kickme")
    out = server.ctl("sessions").stdout
    line = next((x for x in out.splitlines() if x.startswith(jid + " ")), None)
    assert line, f"{jid} not in sessions:\n{out}"
    fields = line.split()
    assert fields[1] == "127.0.0.1" and fields[2] == "tls" and len(fields) >= 4, line

    server.ctl("kick", jid)
    text = c.read_until_closed(timeout=10)
    assert "</stream:stream>" in text, f"kicked session not closed with a stream end: {text!r}"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if jid not in server.ctl("sessions").stdout:
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"{jid} still listed after kick")


def test_kick_unknown_session_fails(server):
    p = server.ctl("kick", server.jid("alice") + "/nope", check=False)
    assert p.returncode == 1 and p.stderr.strip(), (p.returncode, p.stdout, p.stderr)


def test_status(server):
    p = server.ctl("status")
    assert p.stdout.strip(), "status printed nothing"


def test_without_server(make_server):
    srv = make_server(users={"alice": None}, start=False)
    p = srv.ctl("sessions", check=False)
    assert p.returncode == 1 and "magpied is not running" in p.stderr, (p.returncode, p.stderr)
    p = srv.ctl("status", check=False)
    assert p.returncode == 1 and "magpied is not running" in p.stderr, (p.returncode, p.stderr)
    # user commands work on the storage, and the server sees the result
    srv.add_user("bob")
    assert sorted(srv.ctl("user", "list").stdout.split()) == ["alice@localhost", "bob@localhost"]
    srv.start()
    p = _login(srv, "bob", srv.users["bob"])
    assert p.returncode == 0, p.stdout + p.stderr[-3000:]


def test_socket_option(server):
    p = subprocess.run([MAGPIECTL, "--socket", server.admin_socket, "user", "list"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and server.jid("alice") in p.stdout, (p.returncode, p.stderr)


def _check(path):
    return subprocess.run([MAGPIED, "--check-config", "--config", path], capture_output=True,
                          text=True, timeout=30)


def test_check_config_ok(make_server):
    srv = make_server(start=False)
    p = _check(srv.config_path)
    assert p.returncode == 0, p.stderr
    assert f"{srv.config_path}: ok" in p.stdout + p.stderr, (p.stdout, p.stderr)


def test_check_config_unknown_key(tmp_path):
    cfg = tmp_path / "bad.yml"
    cfg.write_text("hosts: [localhost]\n"
                   f"data_dir: {tmp_path}/var\n"
                   "c2s:\n"
                   "  port: 5222\n"
                   "  bogus_key: 1\n")
    p = _check(str(cfg))
    assert p.returncode == 1, f"unknown key accepted: {p.stdout} {p.stderr}"
    assert re.search(rf"{re.escape(str(cfg))}:5:\d+: .*bogus_key", p.stderr), (
        f"error does not name file:line (5) and the key: {p.stderr!r}")


def test_check_config_bad_value(tmp_path):
    cfg = tmp_path / "bad.yml"
    cfg.write_text("hosts: [localhost]\n"
                   "log: {level: debug}\n"
                   "c2s: {port: not-a-number}\n")
    p = _check(str(cfg))
    assert p.returncode == 1, f"bad value accepted: {p.stdout} {p.stderr}"
    assert re.search(rf"{re.escape(str(cfg))}:3:\d+: ", p.stderr), p.stderr


def test_server_refuses_to_start_with_bad_config(tmp_path):
    cfg = tmp_path / "bad.yml"
    cfg.write_text("hosts: [localhost]\nsasl: {scram_iterations: 10}\n")
    p = subprocess.run([MAGPIED, "--config", str(cfg)], capture_output=True, text=True,
                       timeout=30, cwd=tmp_path)
    assert p.returncode != 0, "magpied started with scram_iterations: 10"
    assert re.search(rf"{re.escape(str(cfg))}:2:\d+: ", p.stderr), p.stderr


def test_default_config_written(tmp_path):
    cfg = tmp_path / "new.yml"
    p = _check(str(cfg))
    # --check-config on a missing file either writes the default and validates it or fails
    # clearly; magpied --config on a missing file must write a commented default.
    if not cfg.exists():
        assert p.returncode == 1 and p.stderr.strip(), (p.returncode, p.stderr)
    proc = subprocess.Popen([MAGPIED, "--config", str(cfg)], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 10
        while not cfg.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert cfg.exists(), "magpied did not write a default configuration"
        text = cfg.read_text()
        assert "#" in text and "hosts" in text, text
    finally:
        if proc.poll() is None:
            proc.terminate()
        out, err = proc.communicate(timeout=30)
    assert _check(str(cfg)).returncode == 0, "the written default does not pass --check-config"
    for marker in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
        assert marker not in err, err


def test_concurrent_magpiectl_on_storage(make_server):
    """Two administrators adding users at the same time without a running server: SQLite
    must wait for its lock rather than fail."""
    srv = make_server(start=False)
    srv.add_users_parallel([f"p{i}" for i in range(24)], jobs=6)
    assert len(srv.ctl("user", "list").stdout.split()) == 24


def test_sigterm_closes_streams(server):
    c = RawClient(server.port)
    c.login("alice", server.users["alice"], resource="bye")
    d = RawClient(server.port)
    d.open_stream()
    rc = server.stop()
    assert rc == 0, f"magpied exited {rc} on SIGTERM"
    for client in (c, d):
        text = client.read_until_closed(timeout=10)
        assert "</stream:stream>" in text, f"stream not closed on shutdown: {text!r}"
        assert "system-shutdown" in text or "<stream:error" not in text, text
