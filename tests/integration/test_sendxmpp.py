"""sendxmpp (Perl, Net::XMPP) sends a message over STARTTLS to a slixmpp client."""
import asyncio
import os
import shutil

import pytest

from conftest import next_message, run, slix_close, slix_login

SENDXMPP = shutil.which("sendxmpp") or "/usr/bin/sendxmpp"


def _rcfile(server, user):
    """sendxmpp wants the password in a file only its owner can read."""
    path = os.path.join(server.dir, "sendxmpprc")
    with open(path, "w") as f:
        f.write(f"username: {user}\njserver: {server.host}\nport: {server.port}\n"
                f"password: {server.users[user]}\ncomponent: {server.domain}\n")
    os.chmod(path, 0o600)
    return path


@pytest.mark.parametrize("tls_opts", [["-t", "-n"]])
def test_sendxmpp_to_slixmpp(server, tls_opts):
    assert os.access(SENDXMPP, os.X_OK), "sendxmpp is not installed"
    rc = _rcfile(server, "alice")

    async def dialogue():
        bob = await slix_login(server, "bob", resource="slix")
        bob.send_presence()
        proc = await asyncio.create_subprocess_exec(
            SENDXMPP, *tls_opts, "-f", rc, "-r", "perl", "--message-type", "chat",
            server.jid("bob"),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=dict(os.environ, HOME=server.dir))
        out, err = await asyncio.wait_for(proc.communicate(b"hello from sendxmpp\n"), 60)
        assert proc.returncode == 0, (
            f"sendxmpp exited {proc.returncode}\nstdout: {out.decode(errors='replace')}\n"
            f"stderr: {err.decode(errors='replace')}\nserver log tail:\n{server.log()[-3000:]}")
        m = await next_message(bob, timeout=20, what="the message from sendxmpp")
        assert m["body"].strip() == "hello from sendxmpp", m
        assert m["from"] == server.jid("alice") + "/perl", m
        await slix_close(bob)
    run(dialogue())
