"""Room archives: Message Archive Management (XEP-0313) on the room JID, and the mobile
catch-up it makes possible. What a room says while logging is on is archived once under the
id its <stanza-id by='room'/> carried; occupants page through it (RSM), filter it by time and
search it; members of a members-only room who were away get everything they missed, with no
gap, by asking for what came after the last id they saw."""
import asyncio
import datetime
import uuid

from conftest import run
from muchelp import (T, abort, converse, leave, pm, body, close_all, codes, create, disco_info,
                     features, from_room, heard, iq_error, iq_with, jid, join, login,
                     presence_of, room_jid, say, settle, stanza_ids, unavailable, configure)

NS_MAM = "urn:xmpp:mam:2"
NS_RSM = "http://jabber.org/protocol/rsm"
NS_FWD = "urn:xmpp:forward:0"
NS_DATA = "jabber:x:data"
FULLTEXT = "{urn:xmpp:fulltext:0}fulltext"
USERS = {"alice": None, "bob": None, "carol": None, "dave": None}


def mam_form(fields):
    out = f"<x xmlns='{NS_DATA}' type='submit'><field var='FORM_TYPE' type='hidden'>" \
          f"<value>{NS_MAM}</value></field>"
    for var, val in fields.items():
        out += f"<field var='{var}'><value>{val}</value></field>"
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
        self.items = items  # [(archive id, outer message, forwarded message)]
        s = fin.find(f"{{{NS_RSM}}}set")
        self.complete = fin.get("complete") == "true"
        self.first = s.findtext(f"{{{NS_RSM}}}first") if s is not None else None
        self.last = s.findtext(f"{{{NS_RSM}}}last") if s is not None else None
        count = s.findtext(f"{{{NS_RSM}}}count") if s is not None else None
        self.count = int(count) if count is not None else None

    @property
    def ids(self):
        return [i for i, _, _ in self.items]

    @property
    def bodies(self):
        return [m.findtext("{jabber:client}body") for _, _, m in self.items]


def query_iq(c, room, fields=None, set_="", qid=None):
    qid = qid or uuid.uuid4().hex[:8]
    payload = f"<query xmlns='{NS_MAM}' queryid='{qid}'>" + \
        (mam_form(fields) if fields else "") + set_ + "</query>"
    return qid, iq_with(c, "set", payload, to=room)


async def query(c, room, fields=None, set_=""):
    """One MAM query to the room: its results (checked to come from the room) and its fin."""
    qid, iq = query_iq(c, room, fields, set_)
    res = await iq.send(timeout=T)
    items = []
    for _, m in c.msgs.take_all(lambda st: st.xml.find(f"{{{NS_MAM}}}result") is not None
                                and st.xml.find(f"{{{NS_MAM}}}result").get("queryid") == qid):
        assert str(m["from"]) == room, f"a room's archive result comes from the room: {m}"
        r = m.xml.find(f"{{{NS_MAM}}}result")
        fwd = r.find(f"{{{NS_FWD}}}forwarded")
        assert fwd.find("{urn:xmpp:delay}delay") is not None, m
        inner = fwd.find("{jabber:client}message")
        assert inner.get("to") is None, f"XEP-0313 §6.1.2: no 'to' in a room's result: {m}"
        items.append((r.get("id"), m, inner))
    fin = res.xml.find(f"{{{NS_MAM}}}fin")
    assert fin is not None, res
    return Page(items, fin)


async def everything(c, room, page=10, after=None, fields=None):
    """Page forward through the archive; the (id, from, body) of every message."""
    out = []
    for _ in range(100):
        p = await query(c, room, fields, rsm(page, after=after))
        out += [(i, m.get("from"), m.findtext("{jabber:client}body")) for i, _, m in p.items]
        if p.complete or not p.items:
            return out
        after = p.last
    raise AssertionError("the archive never said complete")


def room_id(m, room):
    ids = [i for by, i in stanza_ids(m) if by == room]
    assert len(ids) == 1, f"one <stanza-id by='{room}'/> expected: {m}"
    return ids[0]


def test_room_archive_paging_filters_and_search(make_server):
    """XEP-0313 on a room: archive ids are the live stanza-ids; results come from the room with
    the message from room/nick; RSM pages forward (after) and backward (before); start/end
    and full-text search filter; private messages stay out; occupants are warned that the room
    is logged (170)."""
    srv = make_server(users=USERS)

    async def go():
        a = await login(srv, "alice")
        b = await login(srv, "bob")
        c = await login(srv, "carol")
        room = room_jid("archive")
        await create(a, room, "Alice", logging=True)
        jb = await join(b, room, "Bob")
        assert 170 in jb.codes, ("room logging: 170 on entering (§7.2.12)", jb.pres)
        await join(c, room, "Carol")
        assert NS_MAM in features(await disco_info(c, room))

        speakers = [(a, "Alice"), (b, "Bob"), (c, "Carol")]
        texts = [f"msg {i}" + (" apple pie" if i % 5 == 0 else "") for i in range(24)]
        got = await converse(room, [(speakers[i % 3][0], t) for i, t in enumerate(texts[:12])],
                             c)
        live = [room_id(m, room) for m in got]
        await settle(a, b, c)
        await asyncio.sleep(1.1)
        middle = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
        await asyncio.sleep(1.1)
        got = await converse(room, [(speakers[i % 3][0], t)
                                    for i, t in enumerate(texts[12:], 12)], c)
        live += [room_id(m, room) for m in got]

        # a private message between occupants is not the room's (XEP-0313 §6.1.2)
        pm(b, f"{room}/Carol", "just between us")
        await c.msgs.take(lambda st: body(st) == "just between us", "Bob's private message")

        p = await query(c, room, set_=rsm(10))
        assert p.count == 24 and not p.complete and len(p.items) == 10, (p.count, p.complete)
        assert p.first == p.ids[0] and p.last == p.ids[-1]
        allm = await everything(c, room)
        assert [i for i, _, _ in allm] == live, "archive ids are the stanza-ids said live"
        assert [t for _, _, t in allm] == texts
        assert [f for _, f, _ in allm] == [f"{room}/{speakers[i % 3][1]}" for i in range(24)]
        # the last page, then the one before it
        last = await query(c, room, set_=rsm(5, before=""))
        assert last.bodies == texts[19:], last.bodies
        prev = await query(c, room, set_=rsm(5, before=last.first))
        assert prev.bodies == texts[14:19], prev.bodies
        # every occupant sees the same archive (Bob asks too)
        assert [i for i, _, _ in await everything(b, room, page=7)] == live

        stamp = middle.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert (await query(c, room, {"start": stamp})).bodies == texts[12:]
        assert (await query(c, room, {"end": stamp})).bodies == texts[:12]
        found = await query(c, room, {FULLTEXT: "apple"})
        assert found.bodies == [t for t in texts if "apple" in t], found.bodies
        assert found.bodies and len(found.bodies) == 5
        await close_all(a, b, c)
    run(go())


def test_logging_switch_and_access(make_server):
    """Archiving switched in the configuration: what is said while it is off is not archived;
    turning it on and off is announced to occupants (170, 171, §10.2.1). XEP-0313 §6.1.2: a
    non-member may not read a members-only room's archive (<forbidden/>), a member who is not in
    the room may; an outcast may not read an open room's."""
    srv = make_server(users=USERS)

    async def go():
        a = await login(srv, "alice")
        b = await login(srv, "bob")
        c = await login(srv, "carol")
        d = await login(srv, "dave")
        room = room_jid("diary")
        await create(a, room, "Alice", logging=False,
                     muc_roomconfig_membersonly=True)
        await a["xep_0045"].send_affiliation_list(room, [(jid("bob"), "member"),
                                                         (jid("carol"), "member")])
        jb = await join(b, room, "Bob")
        assert 170 not in jb.codes, jb.pres
        await join(c, room, "Carol")
        say(b, room, "off the record")
        await heard(c, room, "off the record")

        await configure(a, room, logging=True)
        for cl in (b, c):
            await cl.msgs.take(lambda st: from_room(room)(st) and 170 in codes(st),
                               f"{cl.user}: status 170")
        say(b, room, "on the record")
        say(c, room, "also on the record")
        await heard(b, room, "also on the record")
        await configure(a, room, logging=False)
        for cl in (b, c):
            await cl.msgs.take(lambda st: from_room(room)(st) and 171 in codes(st),
                               f"{cl.user}: status 171")
        say(c, room, "off again")
        await heard(b, room, "off again")
        await settle(a, b, c)
        await configure(a, room, logging=True)
        got = [t for _, _, t in await everything(b, room)]
        assert got == ["on the record", "also on the record"], got

        _, iq = query_iq(d, room)
        assert (await iq_error(iq))[1] == "forbidden"
        # a member who is not in the room may read it (XEP-0313 §6.1.2: owners, admins, members)
        leave(c, room, "Carol")
        await presence_of(c, room, "Carol", unavailable, "Carol leaving")
        got = [t for _, _, t in await everything(c, room)]
        assert got == ["on the record", "also on the record"], got

        # an open room's archive is closed to its outcasts
        hall = room_jid("hall")
        await create(a, hall, "Alice", logging=True)
        say(a, hall, "hello hall")
        await heard(a, hall, "hello hall")
        await a["xep_0045"].set_affiliation(hall, "outcast", jid=jid("dave"))
        _, iq = query_iq(d, hall)
        assert (await iq_error(iq))[1] == "forbidden"
        await close_all(a, b, c, d)
    run(go())


def test_mobile_catch_up_without_gap(make_server):
    """A member's phone drops off a members-only room; the room talks on; the member comes
    back, joins without history (maxstanzas 0) and asks the room's archive for what came
    after the last stanza-id it saw: the archive and the live messages together hold every
    message exactly once, in order, none missing."""
    srv = make_server(users=USERS)

    async def go():
        a = await login(srv, "alice")
        b = await login(srv, "bob", resource="phone")
        c = await login(srv, "carol")
        room = room_jid("family")
        await create(a, room, "Alice", muc_roomconfig_membersonly=True,
                     logging=True, muc_roomconfig_persistentroom=True)
        await a["xep_0045"].send_affiliation_list(room, [(jid("bob"), "member"),
                                                         (jid("carol"), "member")])
        await join(b, room, "Bob")
        await join(c, room, "Carol")
        got = await converse(room, [(a if i % 2 else c, f"m{i}") for i in range(3)], b)
        seen = [room_id(m, room) for m in got]
        last_seen = seen[-1]

        abort(b)  # the phone loses its network: no unavailable presence from the client
        await presence_of(a, room, "Bob", unavailable, "Bob's phone gone")
        missed = [f"m{i}" for i in range(3, 15)]
        await converse(room, [(a if i % 2 else c, t) for i, t in enumerate(missed)], a)

        b = await login(srv, "bob", resource="phone")
        jb = await join(b, room, "Bob", history={"maxstanzas": 0})
        assert jb.history == [], [body(m) for m in jb.history]
        say(c, room, "m15")  # said while Bob catches up
        live = await heard(b, room, "m15")
        got = []
        after = last_seen
        for _ in range(20):
            p = await query(b, room, set_=rsm(5, after=after))
            got += [(i, m.findtext("{jabber:client}body")) for i, _, m in p.items]
            if p.complete or not p.items:
                break
            after = p.last
        ids = [i for i, _ in got]
        assert len(ids) == len(set(ids)), f"a message twice in the catch-up: {got}"
        # m15 was archived before Bob asked: the archive holds it too, under its live id
        assert [t for _, t in got] == missed + ["m15"], got
        assert ids[-1] == room_id(live, room), (ids[-1], live)
        await close_all(a, b, c)
    run(go())
