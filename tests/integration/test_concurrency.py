"""500 clients log in at once (STARTTLS + PLAIN + bind), then 250 pairs exchange messages."""
import asyncio
import base64
import re
import time

from conftest import NS_BIND, NS_SASL, NS_TLS, insecure_context, stream_header

USERS = 50
RESOURCES = 10         # 50 accounts x 10 resources = 500 sessions (max_sessions_per_user: 10)
LOGIN_BUDGET = 90      # seconds for all 500 under ASan on 2 cores


class AsyncRaw:
    def __init__(self, reader, writer):
        self.r, self.w, self.buf = reader, writer, ""

    async def until(self, pattern, timeout=60):
        rx = re.compile(pattern, re.S)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.buf)
            if m:
                out, self.buf = self.buf[:m.end()], self.buf[m.end():]
                return out
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"waited for {pattern!r}, got {self.buf!r}")
            data = await asyncio.wait_for(self.r.read(65536), left)
            if not data:
                raise AssertionError(f"connection closed waiting for {pattern!r}: {self.buf!r}")
            self.buf += data.decode("utf-8", "replace")

    def send(self, s):
        self.w.write(s.encode())


async def login(server, user, password, resource, ctx):
    reader, writer = await asyncio.open_connection(server.host, server.port)
    c = AsyncRaw(reader, writer)
    c.send(stream_header())
    await c.until(r"</stream:features>")
    c.send(f"<starttls xmlns='{NS_TLS}'/>")
    await c.until(r"<proceed[^>]*/>")
    await writer.start_tls(ctx, server_hostname="localhost")
    c.send(stream_header())
    await c.until(r"</stream:features>")
    payload = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
    c.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{payload}</auth>")
    res = await c.until(r"<success[^>]*/>|</success>|</failure>")
    assert "<success" in res, f"{user}/{resource}: {res}"
    c.send(stream_header())
    await c.until(r"</stream:features>")
    c.send(f"<iq type='set' id='b'><bind xmlns='{NS_BIND}'><resource>{resource}</resource>"
           "</bind></iq>")
    res = await c.until(r"</iq>")
    m = re.search(r"<jid>([^<]+)</jid>", res)
    assert m, f"{user}/{resource} bind failed: {res}"
    c.jid = m.group(1)
    return c


def test_500_concurrent_logins_and_250_pairs(make_server):
    # 500 connections from one address: the per-address cap is not what this test is about
    srv = make_server(config={"c2s": {"max_connections_per_ip": 0}})
    names = [f"u{i:03d}" for i in range(USERS)]
    srv.add_users_parallel(names)  # over the admin socket
    rss0 = srv.rss_kb()

    async def scenario():
        ctx = insecure_context()
        t0 = time.monotonic()
        tasks = [login(srv, n, srv.users[n], f"r{k}", ctx) for n in names
                 for k in range(RESOURCES)]
        results = await asyncio.gather(*tasks, return_exceptions=True)
        dt = time.monotonic() - t0
        errors = [r for r in results if isinstance(r, BaseException)]
        assert not errors, (f"{len(errors)} of {len(tasks)} logins failed; first: "
                            f"{errors[0]!r}")
        assert dt < LOGIN_BUDGET, f"500 logins took {dt:.1f}s"
        assert srv.alive(), "magpied died during the logins"
        clients = results
        jids = {c.jid for c in clients}
        assert len(jids) == len(clients), "two sessions were bound to the same full JID"

        # Pairs (0,1), (2,3), ...: each side sends one message to the other's full JID.
        for i in range(0, len(clients), 2):
            a, b = clients[i], clients[i + 1]
            a.send(f"<message to='{b.jid}' type='chat' id='m{i}'><body>from {a.jid}</body>"
                   "</message>")
            b.send(f"<message to='{a.jid}' type='chat' id='m{i + 1}'><body>from {b.jid}</body>"
                   "</message>")

        async def receive(i, c):
            peer = clients[i ^ 1]
            m = await c.until(r"<message.*?</message>", timeout=60)
            assert f"<body>from {peer.jid}</body>" in m, f"{c.jid} got {m}"
            assert re.search(rf"from=['\"]{re.escape(peer.jid)}['\"]", m), f"{c.jid} got {m}"

        got = await asyncio.gather(*(receive(i, c) for i, c in enumerate(clients)),
                                   return_exceptions=True)
        lost = [g for g in got if isinstance(g, BaseException)]
        assert not lost, f"{len(lost)} of {len(clients)} messages not delivered; first: {lost[0]!r}"

        for c in clients:
            c.send("</stream:stream>")
        for c in clients:
            try:
                await c.until(r"</stream:stream>", timeout=30)
            finally:
                c.w.close()
        return dt

    asyncio.run(asyncio.wait_for(scenario(), 240))
    assert srv.alive(), "magpied died"
    out = srv.ctl("status").stdout
    assert out.strip(), "magpiectl status printed nothing"
    print(f"RSS before {rss0} kB, after {srv.rss_kb()} kB")
