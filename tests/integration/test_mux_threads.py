"""Several mux threads: connections spread over them by the kernel (SO_REUSEPORT), and
stanzas cross from one thread's client to another's through the core."""
import re

from conftest import RawClient


def test_messages_cross_mux_threads(make_server):
    users = {f"u{i}": None for i in range(12)}
    server = make_server(users=users, config={"core": {"mux_threads": 3}})
    clients = {}
    for name in users:
        c = RawClient(server.port)
        c.login(name, server.users[name], resource="r")
        c.send("<presence/>")
        c.read_until(r"<presence")
        clients[name] = c
    # connection ids carry the mux thread number: the log shows which threads accepted
    threads = set(re.findall(r"conn ([0-9a-f]{2})[0-9a-f]{14}: accepted", server.log()))
    assert len(threads) >= 2, f"all connections on one mux thread: {threads}"
    names = list(users)
    for i, a in enumerate(names):
        for b in names[i + 1:i + 4]:
            clients[a].send(f"<message to='{b}@localhost/r' id='{a}-{b}'><body>{a} to {b}</body>"
                            "</message>")
    for i, a in enumerate(names):
        got = ""  # senders on other threads: any order between them
        for b in names[max(0, i - 3):i]:
            if f"<body>{b} to {a}</body>" not in got:
                got += clients[a].read_until(rf"<body>{b} to {a}</body>.*?</message>")
            assert re.search(rf"from=['\"]{b}@localhost/r['\"][^>]*>\s*<body>{b} to {a}<", got), got
    for c in clients.values():
        c.send("</stream:stream>")
        c.read_until_closed()
