"""Multi-user chat (XEP-0045) at conference.localhost, the occupant's side: Alice, Bob, Carol
and Dave create rooms, join them, talk, whisper, change nicks, leave and get cut off, invite
each other, ping themselves (XEP-0410) and look rooms up (XEP-0030). Every expectation names
the section of XEP-0045 it comes from."""
from slixmpp.exceptions import IqError

from conftest import run
from muchelp import (NS_CONFERENCE, NS_DATA, NS_DISCO_INFO, NS_MUC, NS_OWNER,
                     NS_USER, SERVICE, T, abort, available, body, close_all, codes,
                     configure, create, delayed, disco_info, disco_items, error_of, features,
                     form_fields, form_values, frm, from_room, heard, instant, iq_error, iq_with,
                     is_error, is_subject, item, jid, join, join_error, leave, login, nick_of,
                     owner_get, pm, presence_of, room_jid, say, settle, stanza_ids,
                     unavailable)

USERS = {"alice": None, "bob": None, "carol": None, "dave": None}


def test_instant_room_locked_until_configured_and_presence_order(make_server):
    """§10.1.1-2: the creator gets 201 and 110, is owner and moderator, and the room stays
    locked (item-not-found, §7.2.11) until the empty form is submitted. §7.2.3: a newcomer gets
    the presence of every occupant first and its own (110) last; then the subject (§7.2.16)."""
    srv = make_server(users=USERS)

    async def go():
        a = await login(srv, "alice")
        b = await login(srv, "bob")
        c = await login(srv, "carol")
        room = room_jid("lobby")

        ja = await join(a, room, "Alice", subject=False)
        assert {110, 201} <= ja.codes, ja.pres
        assert ja.item["affiliation"] == "owner" and ja.item["role"] == "moderator", ja.pres
        assert ja.others == []
        assert frm(ja.pres) == f"{room}/Alice"

        # locked: another user may not enter, nor create it again
        assert await join_error(b, room, "Bob") == ("cancel", "item-not-found")
        await instant(a, room)

        jb = await join(b, room, "Bob")
        assert jb.nicks == ["Alice"], jb.nicks
        assert 110 in jb.codes and 201 not in jb.codes, jb.pres
        assert jb.item["affiliation"] == "none" and jb.item["role"] == "participant", jb.pres
        assert is_subject(jb.subject) and jb.subject_seq > jb.seq
        alice_sees = await presence_of(a, room, "Bob", available)
        assert 110 not in codes(alice_sees) and item(alice_sees)["role"] == "participant"

        jc = await join(c, room, "Carol")
        assert sorted(jc.nicks) == ["Alice", "Bob"], (
            "the other occupants' presence must come before the newcomer's own (§7.2.3)",
            jc.nicks)
        roles = {nick_of(p): item(p) for _, p in jc.others}
        assert roles["Alice"]["affiliation"] == "owner" and roles["Alice"]["role"] == "moderator"
        assert roles["Bob"]["role"] == "participant"
        for cl in (a, b):
            p = await presence_of(cl, room, "Carol", available)
            assert 110 not in codes(p)
        await c.pres.none(lambda st: from_room(room)(st) and nick_of(st) != "Carol",
                          "presence of Alice or Bob after Carol's self-presence")
        await close_all(a, b, c)
    run(go())


def test_reserved_room_form_and_cancel(make_server):
    """§10.1.3: the owner asks for the configuration form, submits it, and the room opens with
    that configuration; an owner who cancels the initial form, or leaves before submitting it,
    destroys the room."""
    srv = make_server(users=USERS)

    async def go():
        a = await login(srv, "alice")
        b = await login(srv, "bob")
        c = await login(srv, "carol")
        room = room_jid("tea")
        ja = await join(a, room, "Alice", subject=False)
        assert 201 in ja.codes
        x = await owner_get(a, room)
        vals = form_values(x)
        assert vals.get("FORM_TYPE") == [f"{NS_MUC}#roomconfig"], vals
        want = {"muc#roomconfig_roomname", "muc#roomconfig_roomdesc",
                "muc#roomconfig_persistentroom", "muc#roomconfig_publicroom",
                "muc#roomconfig_membersonly", "muc#roomconfig_passwordprotectedroom",
                "muc#roomconfig_roomsecret", "muc#roomconfig_moderatedroom",
                "muc#roomconfig_maxusers", "muc#roomconfig_whois",
                "muc#roomconfig_allowinvites", "muc#roomconfig_changesubject",
                "muc#roomconfig_enablelogging"}
        assert want <= set(vals), want - set(vals)
        assert {"muc#maxhistoryfetch", "muc#roomconfig_historylength"} & set(vals), vals
        assert form_fields(x)["muc#roomconfig_whois"].get("type") == "list-single"
        # still locked while the owner reads the form
        assert await join_error(b, room, "Bob") == ("cancel", "item-not-found")
        await configure(a, room, muc_roomconfig_roomname="Tea Room",
                        muc_roomconfig_roomdesc="for tea drinkers")
        await join(b, room, "Bob")
        info = await disco_info(c, room)
        ident = info.find(f"{{{NS_DISCO_INFO}}}identity")
        assert ident.get("category") == "conference" and ident.get("type") == "text", ident.attrib
        assert ident.get("name") == "Tea Room", ident.attrib

        # a second room whose creation the owner cancels: destroyed (the owner leaves it)
        draft = room_jid("draft")
        await join(a, draft, "Alice", subject=False)
        await iq_with(a, "set", f"<query xmlns='{NS_OWNER}'><x xmlns='{NS_DATA}' "
                      "type='cancel'/></query>", to=draft).send(timeout=T)
        gone = await presence_of(a, draft, "Alice", unavailable, "unavailable after cancel")
        assert item(gone) is None or item(gone).get("role") == "none", gone
        assert await iq_error(iq_with(c, "get", f"<query xmlns='{NS_DISCO_INFO}'/>",
                                      to=draft)) == ("cancel", "item-not-found")
        jc = await join(c, draft, "Carol", subject=False)  # a new room, Carol its owner
        assert 201 in jc.codes and jc.item["affiliation"] == "owner", jc.pres
        # Carol leaves before configuring it: the room is destroyed too (§10.1.3)
        leave(c, draft, "Carol")
        await presence_of(c, draft, "Carol", unavailable, "Carol leaving her locked room")
        jb = await join(b, draft, "Bob", subject=False)
        assert 201 in jb.codes and jb.item["affiliation"] == "owner", jb.pres
        await close_all(a, b, c)
    run(go())


def test_nick_conflict_and_service_modified_nick(make_server):
    """§7.2.9: a nick in use by someone else is a <conflict/>; no nick is <jid-malformed/>
    (§7.2.2). §7.2.3: a nick the service changed (here by Resourceprep's NFKC) comes back with
    210."""
    srv = make_server(users=USERS)

    async def go():
        a = await login(srv, "alice")
        b = await login(srv, "bob")
        c = await login(srv, "carol")
        room = room_jid("nicks")
        await create(a, room, "Alice")
        await join(b, room, "Bob")
        # no nick at all: <jid-malformed/> (§7.2.2)
        c.send_raw(f"<presence to='{room}'><x xmlns='{NS_MUC}'/></presence>")
        p = await c.pres.take(lambda st: frm(st) == room and is_error(st),
                              "the error for a join without a nick")
        assert error_of(p)[1] == "jid-malformed", p
        await settle(a, b)
        a.pres.clear()
        assert await join_error(c, room, "Bob") == ("cancel", "conflict")
        await a.pres.none(from_room(room), "a presence for Carol's refused join")
        # Carol takes a free nick written in fullwidth letters: Resourceprep makes it "CAROL"
        c.send_raw(f"<presence to='{room}/\uff23\uff21\uff32\uff2f\uff2c'>"
                   f"<x xmlns='{NS_MUC}'/></presence>")
        p = await c.pres.take(lambda st: from_room(room)(st) and (110 in codes(st)
                                                                  or is_error(st)),
                              "Carol's self-presence")
        assert not is_error(p), p
        assert frm(p) == f"{room}/CAROL", p
        assert 210 in codes(p), ("the service modified the nick: status 210 expected", p)
        await close_all(a, b, c)
    run(go())


def test_groupchat_reaches_everyone_with_room_stanza_id(make_server):
    """§7.4: a message to the room goes to every occupant, the sender too, from room/nick, with
    one <stanza-id by='room'/> (XEP-0359, XEP-0313 §5) for all; a non-occupant gets
    <not-acceptable/> and nobody hears it."""
    srv = make_server(users=USERS)

    async def go():
        a = await login(srv, "alice")
        b = await login(srv, "bob")
        c = await login(srv, "carol")
        d = await login(srv, "dave")
        room = room_jid("talk")
        await create(a, room, "Alice", logging=True)
        await join(b, room, "Bob")
        await join(c, room, "Carol")
        stable = f"{NS_MUC}#stable_id" in features(await disco_info(b, room))
        mid = say(b, room, "hello everyone")
        got = [await heard(cl, room, "hello everyone") for cl in (a, b, c)]
        ids = set()
        for m in got:
            assert frm(m) == f"{room}/Bob", m
            # §7.4: a room that says muc#stable_id reflects the sender's id
            assert not stable or m.xml.get("id") == mid, m
            sids = [i for by, i in stanza_ids(m) if by == room]
            assert len(sids) == 1, m
            ids.add(sids[0])
            assert delayed(m) is None
        assert len(ids) == 1, f"one archive, one id: {ids}"

        say(d, room, "let me in")
        err = await d.msgs.take(lambda st: from_room(room)(st) and is_error(st),
                                "error for a non-occupant's groupchat")
        assert error_of(err)[1] == "not-acceptable", err
        for cl in (a, b, c):
            await cl.msgs.none(lambda st: body(st) == "let me in", "a non-occupant's message")
        await close_all(a, b, c, d)
    run(go())


def test_private_messages(make_server):
    """§7.5: a private message to room/nick reaches that occupant only, from room/sender;
    an unknown nick is <item-not-found/>, type groupchat is <bad-request/>, and someone who is
    not in the room gets <not-acceptable/>."""
    srv = make_server(users=USERS)

    async def go():
        a = await login(srv, "alice")
        b = await login(srv, "bob")
        c = await login(srv, "carol")
        d = await login(srv, "dave")
        room = room_jid("whisper")
        await create(a, room, "Alice")
        await join(b, room, "Bob")
        await join(c, room, "Carol")
        pm(b, f"{room}/Carol", "psst carol")
        m = await c.msgs.take(lambda st: body(st) == "psst carol", "Bob's private message")
        assert frm(m) == f"{room}/Bob" and m.xml.get("type") == "chat", m
        await a.msgs.none(lambda st: body(st) == "psst carol", "someone else's whisper")
        await b.msgs.none(lambda st: body(st) == "psst carol", "a reflected whisper")

        pm(b, f"{room}/Nobody", "hello?")
        err = await b.msgs.take(is_error, "error for an unknown nick")
        assert error_of(err)[1] == "item-not-found", err
        pm(b, f"{room}/Carol", "as groupchat", mtype="groupchat")
        err = await b.msgs.take(is_error, "error for a private groupchat message")
        assert error_of(err)[1] == "bad-request", err
        pm(d, f"{room}/Carol", "from outside")
        err = await d.msgs.take(is_error, "error for a non-occupant's private message")
        assert error_of(err)[1] == "not-acceptable", err
        await c.msgs.none(lambda st: body(st) in ("as groupchat", "from outside"),
                          "a refused private message")
        await close_all(a, b, c, d)
    run(go())


def test_subject_rights_and_subject_on_join(make_server):
    """§8.1: the subject comes from room/nick to everyone; with changesubject off a participant
    gets <forbidden/>; with it on anyone with voice may; newcomers get the subject last."""
    srv = make_server(users=USERS)

    async def go():
        a = await login(srv, "alice")
        b = await login(srv, "bob")
        c = await login(srv, "carol")
        d = await login(srv, "dave")
        room = room_jid("topic")
        await create(a, room, "Alice", muc_roomconfig_changesubject=False)
        await join(b, room, "Bob")
        await join(c, room, "Carol")
        a["xep_0045"].set_subject(room, "Tea at five")
        for cl in (a, b, c):
            m = await cl.msgs.take(lambda st: is_subject(st)
                                   and st.xml.findtext("{jabber:client}subject")
                                   == "Tea at five", "the new subject")
            assert frm(m) == f"{room}/Alice", m
        b.send_raw(f"<message to='{room}' type='groupchat' id='s1'><subject>Coffee instead"
                   "</subject></message>")
        err = await b.msgs.take(is_error, "error for a participant's subject")
        assert error_of(err) == ("auth", "forbidden"), err
        await c.msgs.none(lambda st: st.xml.findtext("{jabber:client}subject")
                          == "Coffee instead", "a refused subject")

        a["xep_0045"].set_subject(room, "Tea at six")
        await c.msgs.take(lambda st: st.xml.findtext("{jabber:client}subject") == "Tea at six",
                          "the second subject")
        jd = await join(d, room, "Dave")
        assert jd.subject.xml.findtext("{jabber:client}subject") == "Tea at six", jd.subject
        # only the current subject; earlier ones are not history (§7.2.14)
        await settle(d)
        assert not [m for _, m in d.msgs.items if m.xml.find("{jabber:client}subject")
                    is not None], d.msgs.items

        await configure(a, room, muc_roomconfig_changesubject=True)
        b.send_raw(f"<message to='{room}' type='groupchat' id='s2'><subject>Coffee instead"
                   "</subject></message>")
        for cl in (a, c, d):
            m = await cl.msgs.take(lambda st: st.xml.findtext("{jabber:client}subject")
                                   == "Coffee instead", "Bob's subject")
            assert frm(m) == f"{room}/Bob" and not is_error(m), m
        await close_all(a, b, c, d)
    run(go())


def test_nick_change_and_conflict(make_server):
    """§7.6: a nick change is an unavailable presence with 303 and the new nick, then the
    presence under the new nick, to everyone (110 on the occupant's own copies); a taken nick
    is a <conflict/> and changes nothing."""
    srv = make_server(users=USERS)

    async def go():
        a = await login(srv, "alice")
        b = await login(srv, "bob")
        c = await login(srv, "carol")
        room = room_jid("names")
        await create(a, room, "Alice")
        await join(b, room, "Bob")
        await join(c, room, "Carol")
        for cl in (a, b):
            await presence_of(cl, room, "Carol", available)
        b.send_raw(f"<presence to='{room}/Robert'/>")
        for cl in (a, b, c):
            s1, off = await cl.pres.take_seq(lambda st: frm(st) == f"{room}/Bob"
                                             and unavailable(st), f"{cl.user}: Bob leaving")
            assert 303 in codes(off) and item(off).get("nick") == "Robert", off
            s2, on = await cl.pres.take_seq(lambda st: frm(st) == f"{room}/Robert"
                                            and available(st), f"{cl.user}: Robert")
            assert s1 < s2, "the unavailable presence comes first (§7.6)"
            assert (110 in codes(off)) == (cl is b) and (110 in codes(on)) == (cl is b)
        say(b, room, "call me Robert")
        m = await heard(c, room, "call me Robert")
        assert frm(m) == f"{room}/Robert"
        # §7.7: a change of availability goes to everyone with the occupant's item
        b.send_raw(f"<presence to='{room}/Robert'><show>away</show><status>tea</status>"
                   "</presence>")
        for cl in (a, c):
            p = await presence_of(cl, room, "Robert", lambda st: available(st)
                                  and st.xml.findtext("{jabber:client}show") == "away",
                                  f"{cl.user}: Robert away")
            assert p.xml.findtext("{jabber:client}status") == "tea", p
            assert item(p)["role"] == "participant", p

        c.send_raw(f"<presence to='{room}/Alice'/>")
        err = await c.pres.take(lambda st: from_room(room)(st) and is_error(st),
                                "the error for a taken nick")
        assert error_of(err)[1] == "conflict", err
        await a.pres.none(lambda st: from_room(room)(st) and nick_of(st) == "Carol",
                          "Carol changing nick despite the conflict")
        say(c, room, "still Carol")
        assert frm(await heard(a, room, "still Carol")) == f"{room}/Carol"
        await close_all(a, b, c)
    run(go())


def test_leave_and_abrupt_disconnect(make_server):
    """§7.14: leaving sends everyone an unavailable presence, 110 on the leaver's copy. A client
    whose connection drops leaves too (RFC 6121 §4.6 unavailable from the server), and so does
    one that sends a broadcast unavailable presence."""
    srv = make_server(users=USERS)

    async def go():
        a = await login(srv, "alice")
        b = await login(srv, "bob")
        c = await login(srv, "carol")
        room = room_jid("exit")
        await create(a, room, "Alice")
        # Bob joins with slixmpp's own join (occupants, subject) to show a stock client works
        pres, subject, occupants, history = await b["xep_0045"].join_muc_wait(
            room, "Bob", maxstanzas=0, timeout=T)
        assert 110 in codes(pres) and is_subject(subject), pres
        await join(c, room, "Carol")
        leave(b, room, "Bob", status="bye")
        mine = await presence_of(b, room, "Bob", unavailable, "Bob's own unavailable")
        assert 110 in codes(mine), mine
        for cl in (a, c):
            p = await presence_of(cl, room, "Bob", unavailable, f"{cl.user}: Bob left")
            assert 110 not in codes(p) and p.xml.findtext("{jabber:client}status") == "bye", p
            assert item(p)["role"] == "none", p

        abort(c)
        p = await presence_of(a, room, "Carol", unavailable, "Carol gone with her connection")
        assert item(p)["role"] == "none", p
        # Dave goes offline with a broadcast unavailable presence, not one to the room: his
        # server tells the room (§7.14, RFC 6121 §4.5.2)
        d = await login(srv, "dave")
        await join(d, room, "Dave")
        d.send_raw("<presence type='unavailable'/>")
        await presence_of(a, room, "Dave", unavailable, "Dave offline")
        await close_all(d)
        say(a, room, "anyone?")
        await heard(a, room, "anyone?")
        await close_all(a, b)
    run(go())


def test_mediated_invitation_decline_and_direct_invitation(make_server):
    """§7.8.2: an invitation through the room reaches the invitee from the room with the
    inviter and the room's password; a decline goes back to the inviter. XEP-0249: a direct
    invitation is a message between users that passes untouched."""
    srv = make_server(users=USERS)

    async def go():
        a = await login(srv, "alice")
        b = await login(srv, "bob")
        c = await login(srv, "carol")
        d = await login(srv, "dave")
        room = room_jid("secret")
        await create(a, room, "Alice", muc_roomconfig_passwordprotectedroom=True,
                     muc_roomconfig_roomsecret="s3cr3t")
        await join(b, room, "Bob", password="s3cr3t")
        a["xep_0045"].invite(room, jid("dave"), reason="tea is ready")
        inv = await d.msgs.take(lambda st: from_room(room)(st)
                                and st.xml.find(f"{{{NS_USER}}}x/{{{NS_USER}}}invite")
                                is not None, "the invitation")
        assert frm(inv) == room, inv
        x = inv.xml.find(f"{{{NS_USER}}}x")
        i = x.find(f"{{{NS_USER}}}invite")
        assert i.get("from", "").split("/")[0] == jid("alice"), inv
        assert i.findtext(f"{{{NS_USER}}}reason") == "tea is ready", inv
        assert x.findtext(f"{{{NS_USER}}}password") == "s3cr3t", inv

        d["xep_0045"].decline(room, i.get("from"), reason="busy")
        dec = await a.msgs.take(lambda st: st.xml.find(f"{{{NS_USER}}}x/{{{NS_USER}}}decline")
                                is not None, "the decline")
        assert frm(dec) == room, dec
        de = dec.xml.find(f"{{{NS_USER}}}x/{{{NS_USER}}}decline")
        assert de.get("from", "").split("/")[0] == jid("dave"), dec
        assert de.findtext(f"{{{NS_USER}}}reason") == "busy", dec
        await b.msgs.none(lambda st: st.xml.find(f"{{{NS_USER}}}x") is not None
                          and body(st) is None and not is_subject(st),
                          "someone else's invitation or decline")
        await join(d, room, "Dave", password="s3cr3t")

        # XEP-0249: Alice invites Carol directly; the server only routes it
        a.send_raw(f"<message to='{jid('carol')}' id='di1'><x xmlns='{NS_CONFERENCE}' "
                   f"jid='{room}' password='s3cr3t' reason='come along'/></message>")
        m = await c.msgs.take(lambda st: st.xml.find(f"{{{NS_CONFERENCE}}}x") is not None,
                              "the direct invitation")
        assert str(m["from"]) == jid("alice", "r"), m
        cx = m.xml.find(f"{{{NS_CONFERENCE}}}x")
        assert (cx.get("jid"), cx.get("password"), cx.get("reason")) == (
            room, "s3cr3t", "come along"), m
        await join(c, room, "Carol", password="s3cr3t")
        await close_all(a, b, c, d)
    run(go())


def test_self_ping(make_server):
    """XEP-0410: a ping to one's own occupant JID is answered (result, or the errors §4 counts
    as joined) while joined, and <not-acceptable/> when not joined."""
    srv = make_server(users=USERS)
    joined_ok = (None, "service-unavailable", "feature-not-implemented")

    async def ping_result(cl, to):
        iq = cl.make_iq_get(ito=to)
        iq.enable("ping")
        try:
            await iq.send(timeout=T)
            return None
        except IqError as e:
            return e.iq["error"]["condition"]

    async def go():
        a = await login(srv, "alice")
        b = await login(srv, "bob")
        c = await login(srv, "carol")
        room = room_jid("pingroom")
        await create(a, room, "Alice")
        await join(b, room, "Bob")
        assert await ping_result(b, f"{room}/Bob") in joined_ok
        assert await ping_result(a, f"{room}/Alice") in joined_ok
        # Carol is not in the room: not joined, whatever nick she asks about
        assert await ping_result(c, f"{room}/Carol") == "not-acceptable"
        assert await ping_result(c, f"{room}/Bob") == "not-acceptable"
        leave(b, room, "Bob")
        await presence_of(b, room, "Bob", unavailable)
        assert await ping_result(b, f"{room}/Bob") == "not-acceptable"
        await close_all(a, b, c)
    run(go())


def test_disco_service_rooms_and_features(make_server):
    """§6.1-6.4: the service is conference/text with the muc feature and is listed by the
    server; public rooms are listed, hidden ones not; a room's features follow its
    configuration (muc_membersonly/open, passwordprotected/unsecured, persistent/temporary,
    moderated/unmoderated, nonanonymous/semianonymous, public/hidden)."""
    srv = make_server(users=USERS)

    async def go():
        a = await login(srv, "alice")
        b = await login(srv, "bob")
        c = await login(srv, "carol")
        items = await disco_items(c, srv.domain)
        assert SERVICE in [i.get("jid") for i in items], items
        info = await disco_info(c, SERVICE)
        idents = [(i.get("category"), i.get("type"))
                  for i in info.findall(f"{{{NS_DISCO_INFO}}}identity")]
        assert ("conference", "text") in idents, idents
        assert NS_MUC in features(info)

        open_room, closed_room = room_jid("agora"), room_jid("vault")
        await create(a, open_room, "Alice", muc_roomconfig_publicroom=True,
                     muc_roomconfig_roomname="Agora")
        await create(b, closed_room, "Bob", muc_roomconfig_publicroom=False,
                     muc_roomconfig_membersonly=True, muc_roomconfig_passwordprotectedroom=True,
                     muc_roomconfig_roomsecret="pw", muc_roomconfig_persistentroom=True,
                     muc_roomconfig_moderatedroom=True, muc_roomconfig_whois="anyone")
        listed = {i.get("jid"): i.get("name") for i in await disco_items(c, SERVICE)}
        assert open_room in listed and closed_room not in listed, listed

        f = features(await disco_info(c, closed_room))
        assert {NS_MUC, "muc_membersonly", "muc_passwordprotected", "muc_persistent",
                "muc_moderated", "muc_nonanonymous", "muc_hidden"} <= f, f
        assert not f & {"muc_open", "muc_unsecured", "muc_temporary", "muc_unmoderated",
                        "muc_semianonymous", "muc_public"}, f
        await configure(b, closed_room, muc_roomconfig_publicroom=True,
                        muc_roomconfig_membersonly=False,
                        muc_roomconfig_passwordprotectedroom=False,
                        muc_roomconfig_persistentroom=False,
                        muc_roomconfig_moderatedroom=False, muc_roomconfig_whois="moderators")
        f = features(await disco_info(c, closed_room))
        assert {"muc_open", "muc_unsecured", "muc_temporary", "muc_unmoderated",
                "muc_semianonymous", "muc_public"} <= f, f
        assert not f & {"muc_membersonly", "muc_passwordprotected", "muc_persistent",
                        "muc_moderated", "muc_nonanonymous", "muc_hidden"}, f
        listed = [i.get("jid") for i in await disco_items(c, SERVICE)]
        assert closed_room in listed, listed
        # a non-occupant's disco request to an occupant JID (§6.6)
        assert (await iq_error(iq_with(c, "get", f"<query xmlns='{NS_DISCO_INFO}'/>",
                                       to=f"{open_room}/Alice")))[1] == "bad-request"
        # a room that does not exist
        assert await iq_error(iq_with(c, "get", f"<query xmlns='{NS_DISCO_INFO}'/>",
                                      to=room_jid("nowhere"))) == ("cancel", "item-not-found")
        await settle(a, b, c)
        await close_all(a, b, c)
    run(go())


def test_two_sessions_one_nick_and_rejoin_while_joined(make_server):
    """§7.2.9: the same bare JID may join a nick it already uses from another resource; room
    messages reach both sessions, and one leaving does not make the occupant leave. §7.2.2: a
    join from a session that is already in the room (a client that lost track) is answered as
    a new join: the others' presence, its own with 110, the subject."""
    srv = make_server(users=USERS)

    async def go():
        a = await login(srv, "alice")
        c = await login(srv, "carol")
        phone = await login(srv, "bob", resource="phone")
        laptop = await login(srv, "bob", resource="laptop")
        room = room_jid("sessions")
        await create(a, room, "Alice")
        await join(c, room, "Carol")
        await join(phone, room, "Bob")
        await presence_of(a, room, "Bob", available)
        jl = await join(laptop, room, "Bob")
        assert sorted(jl.nicks) == ["Alice", "Carol"], jl.nicks
        say(a, room, "to both of you")
        await heard(phone, room, "to both of you")
        await heard(laptop, room, "to both of you")
        say(laptop, room, "from the laptop")
        m = await heard(phone, room, "from the laptop")
        assert frm(m) == f"{room}/Bob", m

        await settle(a, c)
        a.pres.clear()
        leave(laptop, room, "Bob")
        mine = await presence_of(laptop, room, "Bob", unavailable, "the laptop's own leave")
        assert 110 in codes(mine), mine
        await a.pres.none(lambda st: frm(st) == f"{room}/Bob" and unavailable(st),
                          "Bob leaving while his phone is still in the room")
        say(c, room, "still there?")
        await heard(phone, room, "still there?")
        await laptop.msgs.none(lambda st: body(st) == "still there?", "talk after leaving")
        # XEP-0410: the laptop is not joined any more, though the nick is still Bob's
        ping = laptop.make_iq_get(ito=f"{room}/Bob")
        ping.enable("ping")
        assert await iq_error(ping) == ("cancel", "not-acceptable")

        # the phone lost track and joins again
        await settle(phone)
        phone.pres.clear()
        phone.msgs.clear()
        a.pres.clear()
        jp = await join(phone, room, "Bob")
        assert sorted(jp.nicks) == ["Alice", "Carol"] and 110 in jp.codes, (jp.nicks, jp.pres)
        await a.pres.none(lambda st: frm(st) == f"{room}/Bob" and unavailable(st),
                          "Bob leaving because he joined again")
        say(a, room, "welcome back")
        await heard(phone, room, "welcome back")
        await close_all(a, c, phone, laptop)
    run(go())


def test_allowpm_roles_are_enforced(make_server):
    """§10.2 muc#roomconfig_allowpm: with "moderators" a participant's private message is
    <not-allowed/> while a moderator's goes through; with "participants" a visitor is refused
    and a participant may whisper again."""
    srv = make_server(users=USERS)

    async def go():
        a = await login(srv, "alice")
        b = await login(srv, "bob")
        c = await login(srv, "carol")
        room = room_jid("hush")
        await create(a, room, "Alice", muc_roomconfig_allowpm="moderators")
        await join(b, room, "Bob")
        await join(c, room, "Carol")
        pm(b, f"{room}/Carol", "bob whispers")
        err = await b.msgs.take(is_error, "error for a participant's private message")
        assert error_of(err) == ("cancel", "not-allowed"), err
        await c.msgs.none(lambda st: body(st) == "bob whispers", "a refused whisper")
        pm(a, f"{room}/Carol", "alice whispers")
        await c.msgs.take(lambda st: body(st) == "alice whispers", "a moderator's whisper")

        await configure(a, room, muc_roomconfig_allowpm="participants",
                        muc_roomconfig_moderatedroom=True)
        await a["xep_0045"].set_role(room, "Carol", "visitor")
        await presence_of(c, room, "Carol", lambda st: item(st).get("role") == "visitor")
        pm(c, f"{room}/Bob", "carol whispers")
        err = await c.msgs.take(is_error, "error for a visitor's private message")
        assert error_of(err) == ("cancel", "not-allowed"), err
        pm(b, f"{room}/Carol", "bob whispers again")
        await c.msgs.take(lambda st: body(st) == "bob whispers again", "a participant's whisper")
        await close_all(a, b, c)
    run(go())


def test_subject_and_presence_are_bounded(make_server):
    """muc.max_text_len and muc.max_presence_len: a subject longer than the limit is
    <not-acceptable/> and the old one stays; a join whose presence is larger than the limit
    is refused, and a larger presence update from an occupant is refused without reaching
    the others."""
    from muchelp import send_join, self_presence
    srv = make_server(users=USERS)

    async def go():
        a = await login(srv, "alice")
        b = await login(srv, "bob")
        room = room_jid("bounded")
        await create(a, room, "Alice")
        a["xep_0045"].set_subject(room, "Short")
        await a.msgs.take(lambda st: is_subject(st)
                          and st.xml.findtext("{jabber:client}subject") == "Short", "subject")
        a.send_raw(f"<message to='{room}' type='groupchat' id='long'><subject>{'x' * 2000}"
                   "</subject></message>")
        err = await a.msgs.take(is_error, "error for an over-long subject")
        assert error_of(err) == ("modify", "not-acceptable"), err
        big = f"<status>{'y' * 9000}</status>"
        send_join(b, room, "Bob", extra=big)
        p = await b.pres.take(self_presence(room), "answer to a join with a huge status")
        assert error_of(p) == ("modify", "not-acceptable"), p
        await a.pres.none(from_room(room), "presence of a refused joiner")
        jd = await join(b, room, "Bob")
        assert jd.subject.xml.findtext("{jabber:client}subject") == "Short", jd.subject
        await settle(a)
        a.pres.clear()
        b.send_raw(f"<presence to='{room}/Bob'>{big}</presence>")
        p = await b.pres.take(lambda st: from_room(room)(st) and st.xml.get("type") == "error",
                              "error for a huge presence update")
        assert error_of(p) == ("modify", "not-acceptable"), p
        await a.pres.none(lambda st: frm(st) == f"{room}/Bob", "a refused presence update")
        await close_all(a, b)
    run(go())
