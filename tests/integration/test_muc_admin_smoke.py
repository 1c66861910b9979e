"""Admin and owner flows of a room the other MUC tests leave out: a muc#admin request with
several items is all or nothing (XEP-0045 §9, §10), a room switched to members-only removes
its non-members with 322 and tells the others 104 (§10.2.1), logging switched on says 170, the
'with' filter of a room archive query selects one occupant JID (XEP-0313), and a member of a
members-only room reads its archive without being in the room."""
import uuid

from conftest import run
from muchelp import (T, admin_items, admin_list, admin_set, close_all, codes, configure, create,
                     heard, iq_error, iq_with, item, jid, join, login, presence_of,
                     room_jid, say, settle, unavailable)

USERS = {"alice": None, "bob": None, "carol": None, "dave": None}
NS_MAM = "urn:xmpp:mam:2"
NS_DATA = "jabber:x:data"


def status_message(room, code):
    """A message from the room itself carrying a status code (a configuration change)."""
    def pred(st):
        return str(st["from"]) == room and code in codes(st)
    return pred


def test_several_items_all_or_nothing(make_server):
    """An admin asks for two changes at once, one of which an admin may not make (banning an
    owner, §9.1: not-allowed): neither happens. The same two changes, the allowed one alone,
    go through."""
    srv = make_server(users=USERS)

    async def go():
        a = await login(srv, "alice")
        b = await login(srv, "bob")
        d = await login(srv, "dave")
        room = room_jid("batch-" + uuid.uuid4().hex[:6])
        await create(a, room, "Alice")
        await join(b, room, "Bob")
        await admin_set(a, room, jid=jid("dave"), affiliation="admin")

        both = admin_items({"jid": jid("bob"), "affiliation": "member"},
                           {"jid": jid("alice"), "affiliation": "outcast"})
        assert (await iq_error(iq_with(d, "set", both, to=room)))[1] == "not-allowed"
        assert [i["jid"] for i in await admin_list(a, room, affiliation="member")] == []

        await admin_set(d, room, jid=jid("bob"), affiliation="member")
        assert [i["jid"] for i in await admin_list(a, room, affiliation="member")] == \
            [jid("bob")]
        await presence_of(a, room, "Bob", lambda st: (item(st) or {}).get("affiliation") ==
                          "member", "Bob's presence as a member")
        # the owners' list names Alice; an admin may read it, a member may not
        assert [i["jid"] for i in await admin_list(d, room, affiliation="owner")] == \
            [jid("alice")]
        err = await iq_error(iq_with(b, "get", admin_items({"affiliation": "owner"}), to=room))
        assert err == ("auth", "forbidden"), err
        await close_all(a, b, d)
    run(go())


def test_members_only_switch_and_logging_codes(make_server):
    """The owner makes an open room members-only: Carol (no affiliation) is removed with 322,
    Bob (a member) stays and hears 104; switching logging on says 170."""
    srv = make_server(users=USERS)

    async def go():
        a = await login(srv, "alice")
        b = await login(srv, "bob")
        c = await login(srv, "carol")
        room = room_jid("club-" + uuid.uuid4().hex[:6])
        await create(a, room, "Alice", logging=False)
        await join(b, room, "Bob")
        await join(c, room, "Carol")
        await admin_set(a, room, jid=jid("bob"), affiliation="member")
        await settle(a, b, c)

        await configure(a, room, muc_roomconfig_membersonly=True)
        gone = await presence_of(c, room, "Carol", unavailable, "Carol removed")
        assert 322 in codes(gone), gone
        seen = await presence_of(b, room, "Carol", unavailable, "Carol's removal seen by Bob")
        assert 322 in codes(seen), seen
        await b.msgs.take(status_message(room, 104), "104 after the configuration change")

        await configure(a, room, logging=True)
        await b.msgs.take(status_message(room, 170), "170 when logging starts")
        say(a, room, "still here")
        await heard(b, room, "still here")
        await c.msgs.none(lambda st: str(st["from"]).startswith(room + "/"),
                          "room talk after removal")
        await close_all(a, b, c)
    run(go())


def mam_query(c, room, with_=None):
    form = ""
    if with_:
        form = (f"<x xmlns='{NS_DATA}' type='submit'><field var='FORM_TYPE'>"
                f"<value>{NS_MAM}</value></field><field var='with'><value>{with_}</value>"
                "</field></x>")
    qid = uuid.uuid4().hex[:8]
    return qid, iq_with(c, "set", f"<query xmlns='{NS_MAM}' queryid='{qid}'>{form}</query>",
                        to=room)


async def archived_bodies(c, room, with_=None):
    qid, iq = mam_query(c, room, with_)
    res = await iq.send(timeout=T)
    assert res.xml.find(f"{{{NS_MAM}}}fin") is not None, res
    out = []
    for _, m in c.msgs.take_all(lambda st: st.xml.find(f"{{{NS_MAM}}}result") is not None and
                                st.xml.find(f"{{{NS_MAM}}}result").get("queryid") == qid):
        inner = m.xml.find(f"{{{NS_MAM}}}result/{{urn:xmpp:forward:0}}forwarded/"
                           "{jabber:client}message")
        out.append((inner.get("from"), inner.findtext("{jabber:client}body")))
    return out


def test_room_archive_with_and_access(make_server):
    """'with' = an occupant JID selects that nick's messages; a stranger may not read the
    archive of a members-only room, a member who is not in it may."""
    srv = make_server(users=USERS)

    async def go():
        a = await login(srv, "alice")
        b = await login(srv, "bob")
        d = await login(srv, "dave")
        room = room_jid("log-" + uuid.uuid4().hex[:6])
        await create(a, room, "Alice", logging=True)
        await admin_set(a, room, jid=jid("bob"), affiliation="member")
        await join(b, room, "Bob")
        for who, text in ((a, "one"), (b, "two"), (a, "three"), (b, "four")):
            say(who, room, text)
            await heard(a, room, text)
        await settle(a, b)

        assert await archived_bodies(a, room, with_=room + "/Bob") == \
            [(room + "/Bob", "two"), (room + "/Bob", "four")]
        assert [t for _, t in await archived_bodies(a, room)] == ["one", "two", "three", "four"]

        await configure(a, room, muc_roomconfig_membersonly=True)
        _, iq = mam_query(d, room)
        assert await iq_error(iq) == ("auth", "forbidden")
        await admin_set(a, room, jid=jid("dave"), affiliation="member")
        assert len(await archived_bodies(d, room)) == 4
        await close_all(a, b, d)
    run(go())
