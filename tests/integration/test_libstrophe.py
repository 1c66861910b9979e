"""A libstrophe client (C) talks to a slixmpp client through Magpie."""
import asyncio
import os

from conftest import STROPHE_ECHO, next_message, run, slix_close, slix_login, tool_env


def test_libstrophe_to_slixmpp_and_back(server):
    assert os.access(STROPHE_ECHO, os.X_OK), f"{STROPHE_ECHO} not built"

    async def dialogue():
        bob = await slix_login(server, "bob", mech="SCRAM-SHA-256", resource="slix")
        bob.send_presence()
        proc = await asyncio.create_subprocess_exec(
            STROPHE_ECHO, server.jid("alice"), server.users["alice"], server.host,
            str(server.port), server.jid("bob"), "hello from libstrophe",
            "echo: hello from libstrophe",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=tool_env())
        try:
            m = await next_message(bob, timeout=30, what="libstrophe's message")
            assert m["body"] == "hello from libstrophe", m
            assert m["from"].bare == server.jid("alice"), m
            bob.send_message(mto=m["from"], mbody="echo: " + m["body"], mtype="chat")
            out, err = await asyncio.wait_for(proc.communicate(), 60)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert proc.returncode == 0, (f"strophe_echo exited {proc.returncode}:\n"
                                      + err.decode(errors="replace")[-6000:])
        await slix_close(bob)
    run(dialogue())
