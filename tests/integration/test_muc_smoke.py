"""Multi-user chat, the room engine's own smoke test: Alice and Bob talk in a room, Carol comes
late and asks for part of the history (XEP-0045 §7.2.15), Bob joins from a second device under
the same nick, Carol's client queries Bob's through the room (IQs to an occupant JID), and
Alice gives the room an avatar, and Carol pings herself (XEP-0410) in and out of the
room."""
from conftest import run
from muchelp import (NS_DISCO_INFO, NS_PING, T, admin_set, body, close_all, codes, configure,
                     create, delayed, frm, heard, iq_error, iq_with, jid, join, leave, login,
                     presence_of, room_jid, say, settle, stanza_ids, unavailable)

USERS = {"alice": None, "bob": None, "carol": None, "dave": None}


def test_history_multi_session_iq_forwarding_and_self_ping(make_server):
    srv = make_server(users=USERS)

    async def go():
        a = await login(srv, "alice")
        b = await login(srv, "bob")
        c = await login(srv, "carol")
        room = room_jid("smoke")
        await create(a, room, "Alice")
        await join(b, room, "Bob")
        for i in range(5):
            say(a, room, f"line {i}")
        for i in range(5):
            m = await heard(b, room, f"line {i}")
            assert [by for by, _ in stanza_ids(m)] == [room], m
            assert delayed(m) is None

        # history: the last two lines only, each delayed by the room, with its stanza-id
        jc = await join(c, room, "Carol", history={"maxstanzas": 2})
        assert [body(m) for m in jc.history] == ["line 3", "line 4"], jc.history
        for m in jc.history:
            assert delayed(m).get("from") == room and delayed(m).get("stamp"), m
            assert frm(m) in (f"{room}/Alice", f"{room}/Bob"), m
            assert [by for by, _ in stanza_ids(m)] == [room], m
        leave(c, room, "Carol")
        await presence_of(c, room, "Carol", unavailable)
        # maxchars='0': no history at all; the subject still comes
        jc = await join(c, room, "Carol", history={"maxchars": 0})
        assert jc.history == [] and jc.subject is not None

        # Bob's second device joins under the same nick: nobody sees a new occupant, both of
        # Bob's devices hear the room
        b2 = await login(srv, "bob", resource="phone")
        await settle(a, b, c)
        a.pres.clear()
        jb2 = await join(b2, room, "Bob")
        assert 110 in jb2.codes and sorted(n for n in jb2.nicks) == ["Alice", "Carol"]
        await a.pres.none(lambda st: frm(st) == f"{room}/Bob", "a presence for Bob's 2nd device")
        say(c, room, "both of you?")
        await heard(b, room, "both of you?")
        await heard(b2, room, "both of you?")
        # the phone leaves: the nick stays, only the phone hears it left
        leave(b2, room, "Bob")
        mine = await presence_of(b2, room, "Bob", unavailable)
        assert 110 in codes(mine)
        await a.pres.none(lambda st: frm(st) == f"{room}/Bob", "Bob leaving for his phone")
        say(c, room, "still there?")
        await heard(b, room, "still there?")

        # IQs to an occupant reach its client from the asker's occupant JID, and its answer
        # comes back from the occupant JID: a disco#info (a payload the room itself serves to
        # the room's JID) and a version query (one it does not), which Bob's client refuses
        res = await iq_with(c, "get", f"<query xmlns='{NS_DISCO_INFO}'/>",
                            to=f"{room}/Bob").send(timeout=T)
        assert str(res["from"]) == f"{room}/Bob", res
        assert res.xml.find(f"{{{NS_DISCO_INFO}}}query/{{{NS_DISCO_INFO}}}identity") is not None
        assert (await iq_error(iq_with(c, "get", "<query xmlns='jabber:iq:version'/>",
                                       to=f"{room}/Bob")))[0] == "cancel"
        assert await iq_error(iq_with(c, "get", "<query xmlns='jabber:iq:version'/>",
                                      to=f"{room}/Nobody")) == ("cancel", "item-not-found")

        # the room's vCard (XEP-0153 avatar): set by its owner only, read by anyone; occupants
        # are told the room changed (104)
        vcard = ("<vCard xmlns='vcard-temp'><PHOTO><TYPE>image/png</TYPE>"
                 "<BINVAL>aGVsbG8=</BINVAL></PHOTO></vCard>")
        assert await iq_error(iq_with(b, "set", vcard, to=room)) == ("auth", "forbidden")
        await iq_with(a, "set", vcard, to=room).send(timeout=T)
        m = await b.msgs.take(lambda st: frm(st) == room and 104 in codes(st), "status 104")
        res = await iq_with(c, "get", "<vCard xmlns='vcard-temp'/>", to=room).send(timeout=T)
        assert res.xml.findtext(".//{vcard-temp}BINVAL") == "aGVsbG8=", res

        # self-ping: joined answers, not joined is not-acceptable
        await iq_with(c, "get", f"<ping xmlns='{NS_PING}'/>", to=f"{room}/Carol").send(timeout=T)
        leave(c, room, "Carol")
        await presence_of(c, room, "Carol", unavailable)
        assert await iq_error(iq_with(c, "get", f"<ping xmlns='{NS_PING}'/>",
                                      to=f"{room}/Carol")) == ("cancel", "not-acceptable")
        # members-only: the members stay in, a message for Dave (a member, offline) is
        # announced to the offline hooks (push) and not delivered to him
        await admin_set(a, room, jid=jid("bob"), affiliation="member")
        await admin_set(a, room, jid=jid("dave"), affiliation="member")
        await configure(a, room, muc_roomconfig_membersonly=True)
        say(b, room, "members only now")
        await heard(a, room, "members only now")
        await heard(b, room, "members only now")
        await settle(a, b, c)
        await close_all(a, b, b2, c)
    run(go())
