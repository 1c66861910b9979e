"""Room configuration options that change what occupants see (XEP-0045 §10.2, the
muc#roomconfig form of §15.5.3): password, maximum occupants, who sees real JIDs, who may
invite, discussion history on join, destruction with an alternate venue, and the site policy
(acl.create_rooms) on who may create rooms. Three or more real clients in each."""
import asyncio
import datetime

from conftest import run
from muchelp import (NS_DATA, converse, NS_DISCO_INFO, NS_USER, body, close_all, codes, configure,
                     create, delayed, error_of, form_fields, frm, from_room, heard, iq_error,
                     iq_with, is_error, item, jid, join, join_error, leave, login, owner_get,
                     presence_of, room_jid, say, settle, unavailable)

USERS = {"alice": None, "bob": None, "carol": None, "dave": None}


async def rejoin(c, room, nick, **kw):
    """Leave (when in the room) and join again, starting from an empty inbox."""
    leave(c, room, nick)
    await presence_of(c, room, nick, unavailable, f"{c.user} leaving {room}")
    await settle(c)
    c.pres.clear()
    c.msgs.clear()
    return await join(c, room, nick, **kw)


def test_password_protected_room(make_server):
    """§7.2.6: without the password, or with a wrong one, a join is <not-authorized/>; with it
    the user enters; once the owner drops the password anyone may enter."""
    srv = make_server(users=USERS)

    async def go():
        a = await login(srv, "alice")
        b = await login(srv, "bob")
        c = await login(srv, "carol")
        d = await login(srv, "dave")
        room = room_jid("locked")
        await create(a, room, "Alice", muc_roomconfig_passwordprotectedroom=True,
                     muc_roomconfig_roomsecret="open sesame")
        assert await join_error(b, room, "Bob") == ("auth", "not-authorized")
        assert await join_error(b, room, "Bob", password="open barley") == (
            "auth", "not-authorized")
        await join(b, room, "Bob", password="open sesame")
        await join(c, room, "Carol", password="open sesame")
        await settle(a)
        a.pres.clear()
        assert await join_error(d, room, "Dave", password="") == ("auth", "not-authorized")
        await a.pres.none(from_room(room), "presence of a refused user")
        await configure(a, room, muc_roomconfig_passwordprotectedroom=False)
        await join(d, room, "Dave")
        await close_all(a, b, c, d)
    run(go())


def test_members_only_switch_removes_non_members(make_server):
    """§10.2: when an owner makes the room members-only, occupants who are not members are
    removed with 322, and everyone else is told with 322; members and admins stay."""
    srv = make_server(users=USERS)

    async def go():
        a = await login(srv, "alice")
        b = await login(srv, "bob")
        c = await login(srv, "carol")
        room = room_jid("closing")
        await create(a, room, "Alice")
        await join(b, room, "Bob")
        await join(c, room, "Carol")
        await a["xep_0045"].set_affiliation(room, "member", jid=jid("carol"))
        await configure(a, room, muc_roomconfig_membersonly=True)
        mine = await presence_of(b, room, "Bob", unavailable, "Bob's removal")
        assert 322 in codes(mine) and item(mine)["role"] == "none", mine
        for cl in (a, c):
            p = await presence_of(cl, room, "Bob", unavailable, f"{cl.user}: Bob removed")
            assert 322 in codes(p), p
        await settle(a, b, c)
        for cl in (a, c):
            assert not [p for _, p in cl.pres.items if frm(p) in (f"{room}/Alice", f"{room}/Carol")
                        and unavailable(p)], "a member or the owner was removed"
        say(c, room, "members only now")
        await heard(a, room, "members only now")
        b.pres.clear()
        assert await join_error(b, room, "Bob") == ("auth", "registration-required")
        await close_all(a, b, c)
    run(go())


def test_max_users(make_server):
    """§7.2.10: when the room holds its maximum number of occupants, one more is refused with
    <service-unavailable/>; when someone leaves there is room again."""
    srv = make_server(users=USERS)

    async def go():
        a = await login(srv, "alice")
        room = room_jid("small")
        await create(a, room, "Alice")
        field = form_fields(await owner_get(a, room))["muc#roomconfig_maxusers"]
        options = [o.findtext(f"{{{NS_DATA}}}value") for o in field.findall(f"{{{NS_DATA}}}option")]
        numeric = sorted(int(v) for v in options if v and v.isdigit())
        limit = min(v for v in numeric if v >= 3) if numeric else 3
        await configure(a, room, muc_roomconfig_maxusers=str(limit))
        fillers = []
        for i in range(limit - 1):  # Alice is the first occupant
            if i < 2:
                user = ("bob", "carol")[i]
            else:
                user = f"filler{i}"
                srv.add_user(user)
            cl = await login(srv, user)
            await join(cl, room, f"N{i}")
            fillers.append(cl)
        d = await login(srv, "dave")
        assert await join_error(d, room, "Dave") == ("wait", "service-unavailable")
        leave(fillers[0], room, "N0")
        await presence_of(a, room, "N0", unavailable, "N0 leaving")
        await join(d, room, "Dave")
        await close_all(a, d, *fillers)
    run(go())


def test_whois_moderators_or_anyone(make_server):
    """§7.2.4-7.2.5: in a semi-anonymous room only moderators get the occupants' real JIDs;
    when the owner makes it non-anonymous the occupants are told (172, §10.2.1), everyone gets
    the JIDs, and a newcomer is warned with 100."""
    srv = make_server(users=USERS)

    async def go():
        a = await login(srv, "alice")
        b = await login(srv, "bob")
        c = await login(srv, "carol")
        d = await login(srv, "dave")
        room = room_jid("masks")
        await create(a, room, "Alice", muc_roomconfig_whois="moderators")
        jb = await join(b, room, "Bob")
        assert 100 not in jb.codes
        jc = await join(c, room, "Carol")
        seen_by_carol = {p["from"].resource: item(p) for _, p in jc.others}
        assert "jid" not in seen_by_carol["Alice"] and "jid" not in seen_by_carol["Bob"], \
            seen_by_carol
        p = await presence_of(b, room, "Carol")
        assert "jid" not in item(p), p
        p = await presence_of(a, room, "Carol")
        assert item(p).get("jid") == jid("carol", "r"), p
        p = await presence_of(a, room, "Bob")
        assert item(p).get("jid") == jid("bob", "r"), p

        await configure(a, room, muc_roomconfig_whois="anyone")
        for cl in (a, b, c):
            m = await cl.msgs.take(lambda st: from_room(room)(st) and 172 in codes(st),
                                   f"{cl.user}: status 172")
            assert frm(m) == room, m
        jd = await join(d, room, "Dave")
        assert 100 in jd.codes, jd.pres
        seen_by_dave = {p["from"].resource: item(p).get("jid") for _, p in jd.others}
        assert seen_by_dave == {"Alice": jid("alice", "r"), "Bob": jid("bob", "r"),
                                "Carol": jid("carol", "r")}, seen_by_dave
        p = await presence_of(b, room, "Dave")
        assert item(p).get("jid") == jid("dave", "r"), p

        await configure(a, room, muc_roomconfig_whois="moderators")
        for cl in (b, c, d):
            await cl.msgs.take(lambda st: from_room(room)(st) and 173 in codes(st),
                               f"{cl.user}: status 173")
        await close_all(a, b, c, d)
    run(go())


def test_allow_invites(make_server):
    """§7.8.2 and muc#roomconfig_allowinvites: in a members-only room where occupants may not
    invite, a member's invitation is <forbidden/> and does not reach the invitee, an owner's
    does; once invitations are allowed the member's goes through."""
    srv = make_server(users=USERS)

    def invitation(room):
        return lambda st: (from_room(room)(st)
                           and st.xml.find(f"{{{NS_USER}}}x/{{{NS_USER}}}invite") is not None)

    async def go():
        a = await login(srv, "alice")
        b = await login(srv, "bob")
        c = await login(srv, "carol")
        d = await login(srv, "dave")
        room = room_jid("invites")
        await create(a, room, "Alice", muc_roomconfig_membersonly=True,
                     muc_roomconfig_allowinvites=False)
        await a["xep_0045"].send_affiliation_list(room, [(jid("bob"), "member"),
                                                         (jid("carol"), "member")])
        await join(b, room, "Bob")
        await join(c, room, "Carol")
        b["xep_0045"].invite(room, jid("dave"), reason="from bob")
        err = await b.msgs.take(lambda st: from_room(room)(st) and is_error(st),
                                "error for a member's invitation")
        assert error_of(err)[1] == "forbidden", err
        await d.msgs.none(invitation(room), "an invitation that was refused")

        a["xep_0045"].invite(room, jid("dave"), reason="from alice")
        inv = await d.msgs.take(invitation(room), "the owner's invitation")
        assert inv.xml.find(f".//{{{NS_USER}}}reason").text == "from alice"

        await configure(a, room, muc_roomconfig_allowinvites=True)
        b["xep_0045"].invite(room, jid("dave"), reason="from bob again")
        inv = await d.msgs.take(invitation(room), "the member's invitation")
        assert inv.xml.find(f".//{{{NS_USER}}}reason").text == "from bob again"
        await b.msgs.none(is_error, "an error for an allowed invitation")
        await close_all(a, b, c, d)
    run(go())


def bodies(msgs):
    return [body(m) for m in msgs]


def test_history_on_join(make_server):
    """§7.2.15-7.2.16: the history comes after the occupant's own presence and before the
    subject, delayed (XEP-0203, from the room) and from room/nick; maxstanzas, maxchars
    (whole stanzas, newest first, 0 for none), since and seconds choose how much."""
    srv = make_server(users=USERS)

    async def go():
        a = await login(srv, "alice")
        b = await login(srv, "bob")
        c = await login(srv, "carol")
        room = room_jid("history")
        await create(a, room, "Alice")
        await join(c, room, "Carol")
        await converse(room, [(a if i % 2 else c, f"h{i}") for i in range(1, 6)], a)

        jb = await join(b, room, "Bob", history={"maxstanzas": 2})
        assert bodies(jb.history) == ["h4", "h5"], bodies(jb.history)
        assert not jb.history_after_subject
        for m in jb.history:
            assert delayed(m).get("from") == room, m
            assert m.xml.get("type") == "groupchat"
        assert frm(jb.history[0]) == f"{room}/Carol" and frm(jb.history[1]) == f"{room}/Alice"

        jb = await rejoin(b, room, "Bob", history={"maxchars": 0})
        assert jb.history == [], bodies(jb.history)

        await converse(room, [(a, "B" * 3000), (c, "s1"), (a, "s2")], a)
        jb = await rejoin(b, room, "Bob", history={"maxchars": 1500})
        assert bodies(jb.history) == ["s1", "s2"], bodies(jb.history)

        await settle(a, c)
        await asyncio.sleep(1.1)
        since = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
        await asyncio.sleep(1.1)
        say(c, room, "late1")
        await heard(a, room, "late1")
        jb = await rejoin(b, room, "Bob",
                          history={"since": since.strftime("%Y-%m-%dT%H:%M:%SZ")})
        assert bodies(jb.history) == ["late1"], bodies(jb.history)

        await asyncio.sleep(3)
        say(a, room, "late2")
        await heard(a, room, "late2")
        jb = await rejoin(b, room, "Bob", history={"seconds": 2})
        assert bodies(jb.history) == ["late2"], bodies(jb.history)
        await close_all(a, b, c)
    run(go())


def test_history_length_setting(make_server):
    """The room keeps as much history as its configuration says (muc#maxhistoryfetch, or the
    equivalent muc#roomconfig_historylength): a newcomer asking for more gets that many."""
    srv = make_server(users=USERS)

    async def go():
        a = await login(srv, "alice")
        b = await login(srv, "bob")
        c = await login(srv, "carol")
        room = room_jid("short-memory")
        await create(a, room, "Alice")
        vals = form_fields(await owner_get(a, room))
        var = "muc#maxhistoryfetch" if "muc#maxhistoryfetch" in vals else \
            "muc#roomconfig_historylength"
        await configure(a, room, fields={var: "3"})
        await join(b, room, "Bob")
        await converse(room, [(a if i % 2 else b, f"m{i}") for i in range(1, 8)], a)
        jc = await join(c, room, "Carol", history={"maxstanzas": 20})
        assert bodies(jc.history) == ["m5", "m6", "m7"], bodies(jc.history)
        jc = await rejoin(c, room, "Carol")  # no <history/>: the room's default
        assert bodies(jc.history) == ["m5", "m6", "m7"], bodies(jc.history)
        await configure(a, room, fields={var: "0"})
        jc = await rejoin(c, room, "Carol", history={"maxstanzas": 20})
        assert jc.history == [], bodies(jc.history)
        await close_all(a, b, c)
    run(go())


def test_destroy_with_alternate_venue(make_server):
    """§10.9: only an owner may destroy a room (<forbidden/> otherwise); every occupant gets an
    unavailable presence with <destroy jid='alternate'> and the reason, and the room is gone."""
    srv = make_server(users=USERS)

    async def go():
        a = await login(srv, "alice")
        b = await login(srv, "bob")
        c = await login(srv, "carol")
        room, venue = room_jid("old-place"), room_jid("new-place")
        await create(a, room, "Alice")
        await join(b, room, "Bob")
        await join(c, room, "Carol")
        assert await iq_error(iq_with(b, "set", "<query xmlns='http://jabber.org/protocol/"
                                      "muc#owner'><destroy/></query>", to=room)) == (
            "auth", "forbidden")
        await a["xep_0045"].destroy(room, reason="we moved", altroom=venue)
        for cl, nick in ((a, "Alice"), (b, "Bob"), (c, "Carol")):
            p = await presence_of(cl, room, nick, unavailable, f"{cl.user}: the destruction")
            de = p.xml.find(f"{{{NS_USER}}}x/{{{NS_USER}}}destroy")
            assert de is not None and de.get("jid") == venue, p
            assert de.findtext(f"{{{NS_USER}}}reason") == "we moved", p
            assert item(p)["role"] == "none", p
        assert await iq_error(iq_with(c, "get", f"<query xmlns='{NS_DISCO_INFO}'/>",
                                      to=room)) == ("cancel", "item-not-found")
        say(b, room, "hello?")
        err = await b.msgs.take(lambda st: from_room(room)(st) and is_error(st),
                                "error for a message to a destroyed room")
        assert error_of(err)[1] in ("not-acceptable", "item-not-found"), err
        await close_all(a, b, c)
    run(go())


def test_acl_create_rooms(make_server):
    """acl.create_rooms (docs/configuration.md): who is not on the list gets <not-allowed/>
    (§7.2.? room creation restricted) and no room; rooms others created stay open to them."""
    srv = make_server(users=USERS, config={"acl": {"create_rooms": ["alice@localhost"]}})

    async def go():
        a = await login(srv, "alice")
        b = await login(srv, "bob")
        c = await login(srv, "carol")
        assert await join_error(b, room_jid("bobs"), "Bob") == ("cancel", "not-allowed")
        assert await iq_error(iq_with(c, "get", f"<query xmlns='{NS_DISCO_INFO}'/>",
                                      to=room_jid("bobs"))) == ("cancel", "item-not-found")
        assert await join_error(c, room_jid("carols"), "Carol") == ("cancel", "not-allowed")
        room = room_jid("alices")
        await create(a, room, "Alice")
        jb = await join(b, room, "Bob")
        assert 201 not in jb.codes
        await join(c, room, "Carol")
        say(b, room, "allowed to talk")
        await heard(c, room, "allowed to talk")
        await close_all(a, b, c)
    run(go())


def test_room_made_temporary_from_outside_is_forgotten(make_server):
    """§10.2: an owner who is not in a persistent, empty room and makes it temporary leaves
    nobody whose leaving would end it: it goes at once (no longer listed, a join creates it
    anew with 201). A room name longer than muc.max_text_len is <not-acceptable/>."""
    from slixmpp.exceptions import IqError
    from muchelp import SERVICE, disco_items
    srv = make_server(users=USERS)

    async def go():
        a = await login(srv, "alice")
        b = await login(srv, "bob")
        room = room_jid("lasting")
        await create(a, room, "Alice", muc_roomconfig_persistentroom=True)
        try:
            await configure(a, room, muc_roomconfig_roomname="n" * 2000)
            raise AssertionError("an over-long room name was accepted")
        except IqError as e:
            assert e.iq["error"]["condition"] == "not-acceptable", e.iq
        leave(a, room, "Alice")
        await presence_of(a, room, "Alice", unavailable, "Alice leaving")
        assert room in [i["jid"] for i in await disco_items(b, SERVICE)]
        await configure(a, room, muc_roomconfig_persistentroom=False)
        assert room not in [i["jid"] for i in await disco_items(b, SERVICE)]
        j = await join(b, room, "Bob", subject=False)
        assert 201 in j.codes, j.pres
        await close_all(a, b)
    run(go())
