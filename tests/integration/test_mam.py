"""Message Archive Management (XEP-0313) with stanza ids (XEP-0359), between real slixmpp
sessions of Alice, Bob and Carol: what one sends, both find in their archives; what the
recipient receives carries the id its archive knows the message by."""
import asyncio
import os
import sqlite3
import time
import uuid

from conftest import (drain, iq_with, refused, run, slix_close, slix_login, slix_ping)

NS_MAM = "urn:xmpp:mam:2"
NS_SID = "urn:xmpp:sid:0"
NS_RSM = "http://jabber.org/protocol/rsm"
NS_FWD = "urn:xmpp:forward:0"
NS_DATA = "jabber:x:data"
USERS = {"alice": None, "bob": None, "carol": None}
# the default modules without mam (and without modules added since, for a fair comparison)
NO_MAM = ["ping", "disco", "version", "time", "last", "vcard", "private", "search", "amp",
          "privacy", "blocking"]


def jid(user, res=None):
    return f"{user}@localhost" + (f"/{res}" if res else "")


async def login(srv, user, resource="r", available=True):
    c = await slix_login(srv, user, resource=resource)
    if available:
        c.send_presence()
    await slix_ping(c)
    drain(c.messages)
    return c


def send(c, to, body=None, extra="", mtype="chat", mid=None):
    """A raw <message/> (slixmpp would add its own origin-id and ids otherwise)."""
    inner = (f"<body>{body}</body>" if body is not None else "") + extra
    c.send_raw(f"<message to='{to}' type='{mtype}' id='{mid or uuid.uuid4().hex}'>{inner}"
               "</message>")


async def received(c, n, timeout=10):
    """The next n messages delivered to c that are not archive results."""
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < n:
        left = deadline - time.monotonic()
        assert left > 0, f"{c.boundjid} got {len(got)} of {n} messages"
        m = await asyncio.wait_for(c.messages.get(), left)
        if m.xml.find(f"{{{NS_MAM}}}result") is None:
            got.append(m)
    return got


def form(fields):
    out = f"<x xmlns='{NS_DATA}' type='submit'><field var='FORM_TYPE' type='hidden'>" \
          f"<value>{NS_MAM}</value></field>"
    for var, val in fields.items():
        vals = val if isinstance(val, list) else [val]
        out += f"<field var='{var}'>" + "".join(f"<value>{v}</value>" for v in vals) + \
               "</field>"
    return out + "</x>"


def rsm(max_=None, after=None, before=None):
    inner = ""
    if max_ is not None:
        inner += f"<max>{max_}</max>"
    if after is not None:
        inner += f"<after>{after}</after>"
    if before is not None:
        inner += f"<before>{before}</before>" if before else "<before/>"
    return f"<set xmlns='{NS_RSM}'>{inner}</set>" if inner else ""


class Page:
    def __init__(self, items, fin):
        self.items = items  # [(archive id, stamp, inner message element)]
        self.fin = fin
        s = fin.find(f"{{{NS_RSM}}}set")
        self.complete = fin.get("complete") == "true"
        self.first = s.findtext(f"{{{NS_RSM}}}first")
        self.last = s.findtext(f"{{{NS_RSM}}}last")
        count = s.findtext(f"{{{NS_RSM}}}count")
        self.count = int(count) if count is not None else None

    @property
    def ids(self):
        return [i for i, _, _ in self.items]

    @property
    def bodies(self):
        return [m.findtext("{jabber:client}body") for _, _, m in self.items]


async def query(c, fields=None, set_="", to=None, qid=None):
    """One MAM query: the result messages sent for it, then the <fin/>."""
    qid = qid or uuid.uuid4().hex[:8]
    payload = f"<query xmlns='{NS_MAM}' queryid='{qid}'>" + (form(fields) if fields else "") + \
        set_ + "</query>"
    res = await iq_with(c, "set", payload, to=to).send(timeout=20)
    items = []
    for m in drain(c.messages):
        r = m.xml.find(f"{{{NS_MAM}}}result")
        if r is None or r.get("queryid") != qid:
            continue
        assert m["to"] == c.boundjid, m
        fwd = r.find(f"{{{NS_FWD}}}forwarded")
        stamp = fwd.find("{urn:xmpp:delay}delay").get("stamp")
        items.append((r.get("id"), stamp, fwd.find("{jabber:client}message")))
    fin = res.xml.find(f"{{{NS_MAM}}}fin")
    assert fin is not None, res
    return Page(items, fin)


async def set_prefs(c, default, always=(), never=()):
    xml = f"<prefs xmlns='{NS_MAM}' default='{default}'><always>" + \
        "".join(f"<jid>{j}</jid>" for j in always) + "</always><never>" + \
        "".join(f"<jid>{j}</jid>" for j in never) + "</never></prefs>"
    res = await iq_with(c, "set", xml).send(timeout=10)
    return res.xml.find(f"{{{NS_MAM}}}prefs")


def stanza_ids(m):
    return [(e.get("by"), e.get("id")) for e in m.xml.findall(f"{{{NS_SID}}}stanza-id")]


# ---- archiving both ways, stanza ids ----

def test_both_directions_stanza_id_and_plugin(make_server):
    srv = make_server(users=USERS)

    async def go():
        a = await login(srv, "alice")
        b = await login(srv, "bob")
        a.register_plugin("xep_0313")
        # Alice forges an id "by" Bob's archive, and one by a third party that must stay
        send(a, jid("bob"), "hello bob",
             extra=f"<origin-id xmlns='{NS_SID}' id='orig-1'/>"
                   f"<stanza-id xmlns='{NS_SID}' by='Bob@LOCALHOST' id='forged'/>"
                   f"<stanza-id xmlns='{NS_SID}' by='elsewhere.example' id='kept'/>")
        [m] = await received(b, 1)
        assert m["body"] == "hello bob"
        sids = stanza_ids(m)
        mine = [i for by, i in sids if by == jid("bob")]
        assert len(mine) == 1 and mine[0] != "forged", sids
        assert ("elsewhere.example", "kept") in sids
        assert not [i for by, i in sids if by.lower() == "bob@localhost" and i == "forged"]

        pb = await query(b)
        assert pb.ids == mine, (pb.ids, mine)
        [(_, stamp, inner)] = pb.items
        assert stamp.endswith("Z")
        assert inner.get("from") == jid("alice", "r")
        assert inner.find(f"{{{NS_SID}}}origin-id").get("id") == "orig-1"
        assert pb.count == 1 and pb.complete and pb.first == pb.last == mine[0]

        # Alice's side, read with slixmpp's own MAM plugin
        res = await a["xep_0313"].retrieve(with_jid=jid("bob"))
        results = res["mam"]["results"]
        assert len(results) == 1
        fwd = results[0]["mam_result"]["forwarded"]["stanza"]
        assert fwd["body"] == "hello bob"
        assert results[0]["mam_result"]["id"] != mine[0]  # two archives, two ids
        await slix_close(a)
        await slix_close(b)
    run(go())


def test_markers_receipts_archived_chat_states_not(make_server):
    srv = make_server(users=USERS)

    async def go():
        a = await login(srv, "alice")
        b = await login(srv, "bob")
        send(a, jid("bob"), None,
             extra="<received xmlns='urn:xmpp:receipts' id='m1'/>")
        send(a, jid("bob"), None,
             extra="<displayed xmlns='urn:xmpp:chat-markers:0' id='m1'/>")
        send(a, jid("bob"), None,
             extra="<composing xmlns='http://jabber.org/protocol/chatstates'/>")
        send(a, jid("bob"), "not kept", extra="<no-store xmlns='urn:xmpp:hints'/>")
        got = await received(b, 4)
        assert got[0].xml.find("{urn:xmpp:receipts}received") is not None
        assert stanza_ids(got[0]) and stanza_ids(got[1])
        assert not stanza_ids(got[2]) and not stanza_ids(got[3])
        pb = await query(b)
        assert pb.count == 2
        assert pb.items[0][2].find("{urn:xmpp:receipts}received") is not None
        assert pb.items[1][2].find("{urn:xmpp:chat-markers:0}displayed") is not None
        # groupchat, headline and error are not archived
        send(a, jid("bob"), "news", mtype="headline")
        await received(b, 1)
        pa = await query(a)
        assert pa.count == 2
        await slix_close(a)
        await slix_close(b)
    run(go())


def test_offline_message_archived_once_with_stanza_id(make_server):
    srv = make_server(users=USERS)

    async def go():
        a = await login(srv, "alice")
        send(a, jid("bob"), "while you were away")
        await slix_ping(a)
        b = await login(srv, "bob", available=False)
        b.send_presence()
        [m] = await received(b, 1)
        assert m["body"] == "while you were away"
        assert m.xml.find("{urn:xmpp:delay}delay") is not None
        [(by, sid)] = stanza_ids(m)
        assert by == jid("bob")
        pb = await query(b)
        assert pb.ids == [sid]
        await slix_close(b)
        b = await login(srv, "bob")  # a second login delivers nothing and archives nothing
        assert (await query(b)).count == 1
        assert (await query(a)).count == 1
        await slix_close(a)
        await slix_close(b)
    run(go())


# ---- paging, filters, search ----

def test_paging_both_ways(make_server):
    srv = make_server(users=USERS)

    async def go():
        a = await login(srv, "alice")
        b = await login(srv, "bob")
        for i in range(25):
            send(a, jid("bob"), f"message {i}")
        await received(b, 25)
        want = [f"message {i}" for i in range(25)]

        seen, after, pages = [], None, 0
        while True:
            p = await query(b, set_=rsm(10, after=after))
            pages += 1
            assert p.count == 25
            seen += p.items
            if p.complete:
                break
            assert len(p.items) == 10
            after = p.last
        assert pages == 3
        assert [m.findtext("{jabber:client}body") for _, _, m in seen] == want
        ids = [i for i, _, _ in seen]
        assert len(set(ids)) == 25

        back, before = [], ""
        while True:
            p = await query(b, set_=rsm(10, before=before))
            assert p.ids == ids[len(ids) - len(back) - len(p.items):len(ids) - len(back)]
            back = p.items + back
            if p.complete:
                break
            before = p.first
        assert [i for i, _, _ in back] == ids

        # after-id / before-id form fields select the same window
        p = await query(b, {"after-id": ids[4], "before-id": ids[9]})
        assert p.ids == ids[5:9]
        p = await query(b, {"ids": [ids[3], ids[17]]})
        assert p.ids == [ids[3], ids[17]]
        # max=0 counts only
        p = await query(b, set_=rsm(0))
        assert p.items == [] and p.count == 25
        # an unknown id in after/before: item-not-found
        assert await refused(iq_with(b, "set", f"<query xmlns='{NS_MAM}'>"
                                     f"{rsm(10, after='AAAAAAAAAAAAAAAA')}</query>")) == \
            ("cancel", "item-not-found")
        # another account's id is unknown here
        pa = await query(a, set_=rsm(1))
        assert await refused(iq_with(b, "set", f"<query xmlns='{NS_MAM}'>"
                                     f"{rsm(10, before=pa.first)}</query>")) == \
            ("cancel", "item-not-found")
        await slix_close(a)
        await slix_close(b)
    run(go())


def test_with_start_end_fulltext(make_server):
    srv = make_server(users=USERS)

    async def go():
        a = await login(srv, "alice")
        b = await login(srv, "bob")
        c = await login(srv, "carol")
        send(a, jid("bob"), "the quick brown fox")
        send(c, jid("bob"), "a lazy dog")
        await received(b, 2)
        p = await query(b)
        middle = p.items[1][1]
        await asyncio.sleep(0.05)
        send(a, jid("bob", "r"), "Quick thinking, Bob")
        await received(b, 1)

        p = await query(b, {"with": jid("alice")})
        assert p.bodies == ["the quick brown fox", "Quick thinking, Bob"] and p.count == 2
        p = await query(b, {"with": jid("alice", "r")})
        assert p.count == 2
        p = await query(b, {"with": jid("alice", "other")})
        assert p.count == 0 and p.complete
        p = await query(b, {"start": middle})
        assert p.bodies == ["a lazy dog", "Quick thinking, Bob"]
        p = await query(b, {"end": middle})
        assert p.bodies == ["the quick brown fox", "a lazy dog"]
        p = await query(b, {"start": "2000-01-01T00:00:00+02:00", "end": "2001-01-01T00:00:00Z"})
        assert p.count == 0
        p = await query(b, {"{urn:xmpp:fulltext:0}fulltext": "quick"})
        assert p.bodies == ["the quick brown fox", "Quick thinking, Bob"]
        p = await query(b, {"{urn:xmpp:fulltext:0}fulltext": "quick fox"})
        assert p.bodies == ["the quick brown fox"]
        p = await query(b, {"{urn:xmpp:fulltext:0}fulltext": "dog", "with": jid("alice")})
        assert p.count == 0
        # Alice's archive holds only what she sent
        p = await query(a)
        assert p.bodies == ["the quick brown fox", "Quick thinking, Bob"]
        for cl in (a, b, c):
            await slix_close(cl)
    run(go())


# ---- preferences ----

def test_prefs_always_never_roster(make_server):
    srv = make_server(users=USERS)

    async def go():
        a = await login(srv, "alice")
        b = await login(srv, "bob")
        c = await login(srv, "carol")
        res = await iq_with(b, "get", f"<prefs xmlns='{NS_MAM}'/>").send(timeout=10)
        assert res.xml.find(f"{{{NS_MAM}}}prefs").get("default") == "always"

        p = await set_prefs(b, "never", always=[jid("carol")])
        assert p.get("default") == "never"
        assert [j.text for j in p.find(f"{{{NS_MAM}}}always")] == [jid("carol")]
        send(a, jid("bob"), "from alice, not kept")
        send(c, jid("bob"), "from carol, kept")
        got = await received(b, 2)
        assert not stanza_ids(got[0]) and stanza_ids(got[1])
        assert (await query(b)).bodies == ["from carol, kept"]
        assert (await query(a)).count == 1  # Alice's own default still archives

        # roster: only contacts; Bob puts Alice in his roster, not Carol
        await set_prefs(b, "roster")
        await iq_with(b, "set", "<query xmlns='jabber:iq:roster'>"
                      f"<item jid='{jid('alice')}'/></query>").send(timeout=10)
        send(a, jid("bob"), "alice is a contact")
        send(c, jid("bob"), "carol is not")
        await received(b, 2)
        assert (await query(b)).bodies == ["from carol, kept", "alice is a contact"]

        # never-list wins over the default; Bob's own sent messages follow his prefs too
        await set_prefs(b, "always", never=[jid("alice")])
        send(a, jid("bob"), "never from alice")
        send(b, jid("alice"), "never to alice")
        send(b, jid("carol"), "to carol")
        await received(b, 1)
        await received(a, 1)
        await received(c, 1)
        assert (await query(b)).bodies == ["from carol, kept", "alice is a contact", "to carol"]
        res = await iq_with(b, "get", f"<prefs xmlns='{NS_MAM}'/>").send(timeout=10)
        p = res.xml.find(f"{{{NS_MAM}}}prefs")
        assert p.get("default") == "always"
        assert [j.text for j in p.find(f"{{{NS_MAM}}}never")] == [jid("alice")]
        assert await refused(iq_with(b, "set", f"<prefs xmlns='{NS_MAM}' default='maybe'/>")) \
            == ("modify", "bad-request")
        for cl in (a, b, c):
            await slix_close(cl)
    run(go())


# ---- errors, discovery ----

def test_errors_form_and_disco(make_server):
    srv = make_server(users=USERS)

    async def go():
        a = await login(srv, "alice")
        b = await login(srv, "bob")
        # somebody else's archive
        assert await refused(iq_with(a, "set", f"<query xmlns='{NS_MAM}'/>", to=jid("bob"))) \
            == ("auth", "forbidden")
        assert await refused(iq_with(a, "get", f"<prefs xmlns='{NS_MAM}'/>", to=jid("bob"))) \
            == ("auth", "forbidden")
        # malformed forms
        for bad in ({"start": "yesterday"}, {"with": "@@"}, {"colour": "blue"},
                    {"FORM_TYPE": "urn:xmpp:mam:1"}):
            xml = f"<query xmlns='{NS_MAM}'>{form(bad)}</query>"
            assert await refused(iq_with(a, "set", xml)) == ("modify", "bad-request"), bad
        assert await refused(iq_with(a, "set", f"<query xmlns='{NS_MAM}'>"
                                     f"<set xmlns='{NS_RSM}'><max>-1</max></set></query>")) == \
            ("modify", "bad-request")
        # the form, own archive (no 'to' and to=own bare JID)
        for to in (None, jid("alice")):
            res = await iq_with(a, "get", f"<query xmlns='{NS_MAM}'/>", to=to).send(timeout=10)
            x = res.xml.find(f"{{{NS_MAM}}}query/{{{NS_DATA}}}x")
            vars_ = {f.get("var") for f in x.findall(f"{{{NS_DATA}}}field")}
            assert {"FORM_TYPE", "with", "start", "end",
                    "{urn:xmpp:fulltext:0}fulltext"} <= vars_, vars_
        # disco#info of the account and of the server
        a.register_plugin("xep_0030")
        info = await a["xep_0030"].get_info(jid=jid("alice"), local=False)
        feats = info["disco_info"]["features"]
        assert NS_MAM in feats and NS_SID in feats, feats
        info = await a["xep_0030"].get_info(jid="localhost", local=False)
        assert NS_MAM in info["disco_info"]["features"]
        await slix_close(a)
        await slix_close(b)
    run(go())


def test_module_off_passes_messages_untouched(make_server):
    srv = make_server(users=USERS, config={"modules": NO_MAM})

    async def go():
        a = await login(srv, "alice")
        b = await login(srv, "bob")
        send(a, jid("bob"), "plain", extra=f"<stanza-id xmlns='{NS_SID}' by='x.example' id='1'/>")
        [m] = await received(b, 1)
        assert stanza_ids(m) == [("x.example", "1")]
        assert await refused(iq_with(a, "set", f"<query xmlns='{NS_MAM}'/>")) == \
            ("cancel", "service-unavailable")
        await slix_close(a)
        await slix_close(b)
    run(go())


# ---- limits: size, retention; deletion with the account ----

def test_size_limit(make_server):
    srv = make_server(users=USERS, config={"mam": {"max_messages": 5}})

    async def go():
        a = await login(srv, "alice")
        b = await login(srv, "bob")
        for i in range(8):
            send(a, jid("bob"), f"n{i}")
        await received(b, 8)
        p = await query(b)
        assert p.count == 5 and p.bodies == [f"n{i}" for i in range(3, 8)]
        await slix_close(a)
        await slix_close(b)
    run(go())


def test_retention_purges_old_messages(make_server):
    srv = make_server(users=USERS)

    async def go(n):
        a = await login(srv, "alice")
        b = await login(srv, "bob")
        for i in range(n):
            send(a, jid("bob"), f"old {i}")
        await received(b, n)
        await slix_close(a)
        await slix_close(b)
    run(go(3))
    assert srv.stop() == 0
    # age the archive by ten days, as if the server had been running since
    db = sqlite3.connect(os.path.join(srv.data_dir, "magpie.db"))
    db.execute("UPDATE archive SET stamp = stamp - 10 * 86400 * 1000000")
    db.commit()
    db.close()
    srv.config["mam"] = {"retention_days": 7}
    srv.write_config()
    srv.start()

    async def check():
        a = await login(srv, "alice")
        b = await login(srv, "bob")
        send(a, jid("bob"), "fresh")
        await received(b, 1)
        deadline = time.monotonic() + 15
        while True:
            p = await query(b)
            if p.count == 1:
                break
            assert time.monotonic() < deadline, p.bodies
            await asyncio.sleep(0.3)
        assert p.bodies == ["fresh"]
        assert (await query(a)).bodies == ["fresh"]
        await slix_close(a)
        await slix_close(b)
    run(check())
    assert "older than 7 days removed" in srv.log()


def test_archive_goes_with_the_account(make_server):
    srv = make_server(users=USERS)

    async def go():
        a = await login(srv, "alice")
        b = await login(srv, "bob")
        send(a, jid("bob"), "to be forgotten")
        await received(b, 1)
        await slix_close(b)
        srv.ctl("user", "delete", jid("bob"))
        srv.add_user("bob")
        b = await login(srv, "bob")
        p = await query(b)
        assert p.count == 0 and p.items == []
        # XEP-0077 cancellation takes Alice's archive too
        assert (await query(a)).count == 1
        await iq_with(a, "set", "<query xmlns='jabber:iq:register'><remove/></query>").send(
            timeout=10)
        await asyncio.wait_for(a.gone.wait(), 10)
        srv.add_user("alice")
        a = await login(srv, "alice")
        assert (await query(a)).count == 0
        await slix_close(a)
        await slix_close(b)
    run(go())
    db = sqlite3.connect(os.path.join(srv.data_dir, "magpie.db"))
    assert db.execute("SELECT count(*) FROM archive").fetchone()[0] == 0
    db.close()


# ---- cost ----

async def blast(srv, n):
    a = await login(srv, "alice")
    b = await login(srv, "bob")
    t0 = time.monotonic()
    for i in range(n):
        send(a, jid("bob"), f"load {i}")
        if i % 200 == 199:
            await asyncio.sleep(0)
    got = 0
    while got < n:
        await asyncio.wait_for(b.messages.get(), 60)
        got += 1
    elapsed = time.monotonic() - t0
    await slix_close(a)
    await slix_close(b)
    return elapsed


def test_throughput_archive_on_and_off(make_server):
    n = 2000
    rates = {}
    for name, cfg in (("mam off", {"modules": NO_MAM}), ("mam on", {"modules": NO_MAM + ["mam"]}),
                      ("mam on, no batching", {"modules": NO_MAM + ["mam"],
                                               "mam": {"batch_ms": 0}})):
        srv = make_server(users=USERS, config=cfg)
        elapsed = run(blast(srv, n))
        rates[name] = n / elapsed
        if name != "mam off":
            async def count():
                b = await login(srv, "bob")
                p = await query(b, set_=rsm(0))
                await slix_close(b)
                return p.count
            assert run(count()) == n
        assert srv.stop() == 0
    print("\nthroughput (messages/s, alice -> bob, %d messages): %s" % (
        n, ", ".join(f"{k}: {v:.0f}" for k, v in rates.items())))
    # generous: sanitizer builds slow SQLite's allocations down most (a release build measured
    # about half the rate of "mam off"), and the machine is shared. Grouped commits must beat
    # one fsync each.
    assert rates["mam on"] > rates["mam on, no batching"], rates
    assert rates["mam on"] > rates["mam off"] / 25, rates
