"""Roles and affiliations in multi-user chat (XEP-0045 §8-§10): kicks, bans, voice, membership,
admins and owners, each change seen by three or more real occupants, and each refusal with the
error condition the XEP names for it."""
from conftest import run
from muchelp import (NS_OWNER, NS_REQUEST, admin_items, admin_list, admin_set, available, body,
                     close_all, codes, create, error_of, form_values, frm, from_room, heard,
                     iq_error, iq_with, is_error, item, jid, join, join_error, login,
                     presence_of, room_jid, say, settle, submit_form, unavailable, x_form)

USERS = {"alice": None, "bob": None, "carol": None, "dave": None}


async def refused(c, room, **it):
    """A muc#admin set that must fail: its error condition."""
    return (await iq_error(iq_with(c, "set", admin_items(it), to=room)))[1]


async def refused_list(c, room, **it):
    return (await iq_error(iq_with(c, "get", admin_items(it), to=room)))[1]


def test_kick(make_server):
    """§8.2: a moderator kicks by nick; the kicked occupant gets unavailable with 307 and the
    reason, everyone else unavailable with 307; a participant who tries gets
    <forbidden/>. A kick is not a ban: the kicked user may come back."""
    srv = make_server(users=USERS)

    async def go():
        a = await login(srv, "alice")
        b = await login(srv, "bob")
        c = await login(srv, "carol")
        room = room_jid("kicks")
        await create(a, room, "Alice")
        await join(b, room, "Bob")
        await join(c, room, "Carol")

        assert await refused(b, room, nick="Carol", role="none") == "forbidden"
        await settle(a, b, c)
        await c.pres.none(unavailable, "Carol removed by a participant's kick")

        await a["xep_0045"].set_role(room, "Bob", "none", reason="mind your manners")
        mine = await presence_of(b, room, "Bob", unavailable, "Bob's own kick")
        assert 307 in codes(mine), mine
        assert item(mine)["role"] == "none" and item(mine).get("reason") == "mind your manners"
        for cl in (a, c):
            p = await presence_of(cl, room, "Bob", unavailable, f"{cl.user}: Bob kicked")
            assert 307 in codes(p) and 110 not in codes(p), p
        say(c, room, "after the kick")
        await heard(a, room, "after the kick")
        await b.msgs.none(lambda st: body(st) == "after the kick", "room talk after a kick")
        b.pres.clear()
        await join(b, room, "Bob")
        await close_all(a, b, c)
    run(go())


def test_ban_then_rejoin_forbidden(make_server):
    """§9.1: an admin bans a bare JID; an occupant banned gets unavailable with 301, the others
    301 too; a banned user's join is <forbidden/> (§7.2.8) whether or not they were in
    the room; the ban list holds them; lifting the ban lets them in again. A participant may
    neither ban nor read the ban list (<forbidden/>); banning oneself is a <conflict/>."""
    srv = make_server(users=USERS)

    async def go():
        a = await login(srv, "alice")
        b = await login(srv, "bob")
        c = await login(srv, "carol")
        d = await login(srv, "dave")
        room = room_jid("bans")
        await create(a, room, "Alice")
        await join(b, room, "Bob")
        await join(c, room, "Carol")

        assert await refused(c, room, jid=jid("bob"), affiliation="outcast") == "forbidden"
        assert await refused_list(c, room, affiliation="outcast") == "forbidden"
        # an owner or admin may not ban themselves (§9.1)
        assert await refused(a, room, jid=jid("alice"), affiliation="outcast") == "conflict"

        await admin_set(a, room, jid=jid("bob"), affiliation="outcast", reason="spam")
        mine = await presence_of(b, room, "Bob", unavailable, "Bob's own ban")
        assert 301 in codes(mine), mine
        assert item(mine)["affiliation"] == "outcast" and item(mine)["role"] == "none", mine
        assert item(mine).get("reason") == "spam", mine
        for cl in (a, c):
            p = await presence_of(cl, room, "Bob", unavailable, f"{cl.user}: Bob banned")
            assert 301 in codes(p) and 110 not in codes(p), p
        b.pres.clear()
        assert await join_error(b, room, "Bob") == ("auth", "forbidden")
        assert await join_error(b, room, "Robert") == ("auth", "forbidden")

        # Dave was never there: banned all the same
        await a["xep_0045"].set_affiliation(room, "outcast", jid=jid("dave"))
        assert await join_error(d, room, "Dave") == ("auth", "forbidden")
        listed = {i.get("jid"): i for i in await admin_list(a, room, affiliation="outcast")}
        assert set(listed) == {jid("bob"), jid("dave")}, listed
        assert all(i.get("affiliation") == "outcast" for i in listed.values()), listed

        await admin_set(a, room, jid=jid("bob"), affiliation="none")
        b.pres.clear()
        jb = await join(b, room, "Bob")
        assert jb.item["affiliation"] == "none", jb.pres
        assert [i.get("jid") for i in await admin_list(a, room, affiliation="outcast")] == [
            jid("dave")]
        await close_all(a, b, c, d)
    run(go())


def test_voice_in_moderated_room(make_server):
    """§5.1 and §8.3-8.5: in a moderated room newcomers without affiliation are visitors whose
    messages get <forbidden/> (§7.4); a moderator grants voice (everyone sees the role change)
    and revokes it; the voice list is the moderators' (a visitor gets <forbidden/>)."""
    srv = make_server(users=USERS)

    async def go():
        a = await login(srv, "alice")
        b = await login(srv, "bob")
        c = await login(srv, "carol")
        room = room_jid("stage")
        await create(a, room, "Alice", muc_roomconfig_moderatedroom=True)
        jb = await join(b, room, "Bob")
        jc = await join(c, room, "Carol")
        assert jb.item["role"] == "visitor" and jc.item["role"] == "visitor", (jb.pres, jc.pres)

        say(b, room, "can I speak?")
        err = await b.msgs.take(lambda st: from_room(room)(st) and is_error(st),
                                "error for a visitor's message")
        assert error_of(err)[1] == "forbidden", err
        await a.msgs.none(lambda st: body(st) == "can I speak?", "a visitor's message")

        await settle(a, b, c)
        for cl in (a, b, c):
            cl.pres.clear()
        await a["xep_0045"].set_role(room, "Bob", "participant")
        for cl in (a, b, c):
            p = await presence_of(cl, room, "Bob", available, f"{cl.user}: Bob's voice")
            assert item(p)["role"] == "participant", p
            assert cl is b or 110 not in codes(p), p
        say(b, room, "thank you")
        for cl in (a, c):
            await heard(cl, room, "thank you")

        voiced = [i.get("nick") for i in await admin_list(a, room, role="participant")]
        assert voiced == ["Bob"], voiced
        assert await refused_list(c, room, role="participant") == "forbidden"

        await admin_set(a, room, nick="Bob", role="visitor", reason="enough")
        for cl in (a, b, c):
            p = await presence_of(cl, room, "Bob", available, f"{cl.user}: Bob silenced")
            assert item(p)["role"] == "visitor", p
        say(b, room, "one more thing")
        err = await b.msgs.take(lambda st: from_room(room)(st) and is_error(st),
                                "error after voice was revoked")
        assert error_of(err)[1] == "forbidden", err
        await close_all(a, b, c)
    run(go())


def test_voice_request_reaches_moderators(make_server):
    """§7.13 and §8.6: a visitor's muc#request form goes to the moderators (not to other
    occupants) as a form with the requester's nick and JID; a moderator who approves it gives
    the visitor voice."""
    srv = make_server(users=USERS)

    async def go():
        a = await login(srv, "alice")
        b = await login(srv, "bob")
        c = await login(srv, "carol")
        room = room_jid("requests")
        await create(a, room, "Alice", muc_roomconfig_moderatedroom=True)
        await join(b, room, "Bob")
        await join(c, room, "Carol")
        c["xep_0045"].request_voice(room, "participant")
        req = await a.msgs.take(lambda st: from_room(room)(st) and x_form(st) is not None,
                                "the voice request")
        assert frm(req) == room, req
        vals = form_values(x_form(req))
        assert vals.get("FORM_TYPE") == [NS_REQUEST], vals
        assert vals.get("muc#role") == ["participant"], vals
        assert vals.get("muc#roomnick") == ["Carol"], vals
        assert vals.get("muc#jid", [""])[0].split("/")[0] == jid("carol"), vals
        assert "muc#request_allow" in vals, vals
        await b.msgs.none(lambda st: x_form(st) is not None, "a voice request for a visitor")

        approve = submit_form({"muc#role": "participant", "muc#jid": vals["muc#jid"][0],
                               "muc#roomnick": "Carol", "muc#request_allow": "true"},
                              form_type=NS_REQUEST)
        a.send_raw(f"<message to='{room}' id='ok1'>{approve}</message>")
        for cl in (a, b, c):
            p = await presence_of(cl, room, "Carol", lambda st: available(st)
                                  and item(st)["role"] == "participant",
                                  f"{cl.user}: Carol's voice")
            assert item(p)["role"] == "participant"
        say(c, room, "thanks for the voice")
        await heard(b, room, "thanks for the voice")
        await close_all(a, b, c)
    run(go())


def test_membership_in_members_only_room(make_server):
    """§7.2.7, §9.3-9.5: a non-member's join is <registration-required/>; an admin grants
    membership and the member enters; the member list holds the members; revoking membership
    removes the occupant from a members-only room with 321 (§9.4)."""
    srv = make_server(users=USERS)

    async def go():
        a = await login(srv, "alice")
        b = await login(srv, "bob")
        c = await login(srv, "carol")
        room = room_jid("club")
        await create(a, room, "Alice", muc_roomconfig_membersonly=True)
        assert await join_error(b, room, "Bob") == ("auth", "registration-required")
        await a["xep_0045"].send_affiliation_list(room, [(jid("bob"), "member"),
                                                         (jid("carol"), "member")])
        jb = await join(b, room, "Bob")
        assert jb.item["affiliation"] == "member" and jb.item["role"] == "participant", jb.pres
        await join(c, room, "Carol")
        members = sorted(i.get("jid") for i in await admin_list(a, room, affiliation="member"))
        assert members == [jid("bob"), jid("carol")], members

        await admin_set(a, room, jid=jid("carol"), affiliation="none")
        mine = await presence_of(c, room, "Carol", unavailable, "Carol's removal")
        assert 321 in codes(mine), mine
        assert item(mine)["affiliation"] == "none" and item(mine)["role"] == "none", mine
        for cl in (a, b):
            p = await presence_of(cl, room, "Carol", unavailable, f"{cl.user}: Carol removed")
            assert 321 in codes(p) and 110 not in codes(p), p
        c.pres.clear()
        assert await join_error(c, room, "Carol") == ("auth", "registration-required")
        members = [i.get("jid") for i in await admin_list(a, room, affiliation="member")]
        assert members == [jid("bob")], members
        await close_all(a, b, c)
    run(go())


def test_admin_and_owner_grants(make_server):
    """§9.6 and §10.3-10.6: an owner makes an admin and another owner (the room tells everyone,
    with the default role of moderator, §5.1.2); an admin may kick a participant but kicking,
    banning, silencing or demoting an owner is <not-allowed/> (§8.2, §8.4, §9.1, §9.7); the last
    owner cannot give up
    ownership (<conflict/>), one of two owners can; a revoked admin is a participant again."""
    srv = make_server(users=USERS)

    async def go():
        a = await login(srv, "alice")
        b = await login(srv, "bob")
        c = await login(srv, "carol")
        d = await login(srv, "dave")
        room = room_jid("board")
        await create(a, room, "Alice")
        for cl, nick in ((b, "Bob"), (c, "Carol"), (d, "Dave")):
            await join(cl, room, nick)
        await settle(a, b, c, d)
        for cl in (a, b, c, d):
            cl.pres.clear()

        await a["xep_0045"].set_affiliation(room, "admin", jid=jid("bob"))
        for cl in (a, c, d):
            p = await presence_of(cl, room, "Bob", available, f"{cl.user}: Bob made admin")
            assert item(p)["affiliation"] == "admin" and item(p)["role"] == "moderator", p

        assert await refused(b, room, nick="Alice", role="none") == "not-allowed"
        assert await refused(b, room, jid=jid("alice"), affiliation="outcast") == "not-allowed"
        # nor take the owner's voice or moderator role (§8.4, §9.7)
        assert await refused(b, room, nick="Alice", role="visitor") == "not-allowed"
        assert await refused(b, room, nick="Alice", role="participant") == "not-allowed"
        # and only owners name admins (§10.8)
        assert await refused(b, room, jid=jid("dave"), affiliation="admin") == "forbidden"
        await admin_set(b, room, nick="Dave", role="none")
        p = await presence_of(d, room, "Dave", unavailable, "Dave kicked by an admin")
        assert 307 in codes(p), p

        # Alice is the only owner
        assert await refused(a, room, jid=jid("alice"), affiliation="admin") == "conflict"
        await admin_set(a, room, jid=jid("carol"), affiliation="owner")
        for cl in (a, b, c):
            p = await presence_of(cl, room, "Carol", available, f"{cl.user}: Carol made owner")
            assert item(p)["affiliation"] == "owner" and item(p)["role"] == "moderator", p
        owners = sorted(i.get("jid") for i in await admin_list(a, room, affiliation="owner"))
        assert owners == [jid("alice"), jid("carol")], owners
        admins = [i.get("jid") for i in await admin_list(c, room, affiliation="admin")]
        assert admins == [jid("bob")], admins

        await admin_set(a, room, jid=jid("alice"), affiliation="admin")
        for cl in (a, b, c):
            p = await presence_of(cl, room, "Alice", available, f"{cl.user}: Alice steps down")
            assert item(p)["affiliation"] == "admin", p
        assert await refused(c, room, jid=jid("carol"), affiliation="member") == "conflict"
        owners = [i.get("jid") for i in await admin_list(c, room, affiliation="owner")]
        assert owners == [jid("carol")], owners
        # §10.7: the owner takes Bob's admin status back; he is a participant again
        await admin_set(c, room, jid=jid("bob"), affiliation="none")
        for cl in (a, b, c):
            p = await presence_of(cl, room, "Bob", lambda st: available(st)
                                  and item(st)["affiliation"] == "none", f"{cl.user}: Bob demoted")
            assert item(p)["role"] == "participant", p
        await close_all(a, b, c, d)
    run(go())


def test_lists_and_changes_forbidden_to_participants(make_server):
    """§8.5, §9.2, §9.8, §10.5, §10.8: in a semi-anonymous room the voice, moderator, ban,
    admin and owner lists are not for participants (<forbidden/>), nor are changes of roles and
    affiliations (§8 and §9 preambles, §10.5, §10.8)."""
    srv = make_server(users=USERS)

    async def go():
        a = await login(srv, "alice")
        b = await login(srv, "bob")
        c = await login(srv, "carol")
        room = room_jid("private-lists")
        await create(a, room, "Alice", muc_roomconfig_whois="moderators")
        await join(b, room, "Bob")
        await join(c, room, "Carol")
        for what in ({"role": "participant"}, {"role": "moderator"},
                     {"affiliation": "outcast"}, {"affiliation": "admin"},
                     {"affiliation": "owner"}):
            assert await refused_list(b, room, **what) == "forbidden", what
        for change in ({"nick": "Carol", "role": "moderator"},
                       {"nick": "Carol", "role": "visitor"},
                       {"jid": jid("carol"), "affiliation": "member"},
                       {"jid": jid("carol"), "affiliation": "admin"},
                       {"jid": jid("bob"), "affiliation": "owner"}):
            assert await refused(b, room, **change) == "forbidden", change
        # the configuration is the owners' (§10.2)
        assert await iq_error(iq_with(b, "get", f"<query xmlns='{NS_OWNER}'/>", to=room)) == (
            "auth", "forbidden")
        await settle(a, b, c)
        await c.pres.none(lambda st: from_room(room)(st) and frm(st).endswith("/Carol"),
                          "a change of Carol's role or affiliation")
        # the owner may read them all
        assert [i.get("jid") for i in await admin_list(a, room, affiliation="owner")] == [
            jid("alice")]
        mods = [i.get("nick") for i in await admin_list(a, room, role="moderator")]
        assert mods == ["Alice"], mods
        await close_all(a, b, c)
    run(go())
