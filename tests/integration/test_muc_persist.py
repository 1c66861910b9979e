"""Persistent rooms (XEP-0045 muc#roomconfig_persistentroom): a persistent room outlives its
last occupant and a restart of the server, with its configuration, subject and affiliations;
a temporary room goes away with its last occupant; a destroyed persistent room stays gone."""
from conftest import run
from muchelp import (NS_DISCO_INFO, close_all, configure, create, disco_info, disco_items,
                     features, form_values, iq_error, iq_with, jid, join, join_error, leave,
                     login, owner_get, presence_of, room_jid, settle, unavailable)

USERS = {"alice": None, "bob": None, "carol": None, "dave": None}


async def gone(c, room):
    return await iq_error(iq_with(c, "get", f"<query xmlns='{NS_DISCO_INFO}'/>", to=room)) == (
        "cancel", "item-not-found")


def name_of(info):
    return info.find(f"{{{NS_DISCO_INFO}}}identity").get("name")


def test_persistent_room_survives_last_occupant_and_restart(make_server):
    srv = make_server(users=USERS)
    keep, agora, fleeting = room_jid("keep"), room_jid("agora"), room_jid("fleeting")

    async def before():
        a = await login(srv, "alice")
        b = await login(srv, "bob")
        c = await login(srv, "carol")
        await create(a, keep, "Alice", muc_roomconfig_persistentroom=True,
                     muc_roomconfig_roomname="Keeper", muc_roomconfig_publicroom=False,
                     muc_roomconfig_membersonly=True, muc_roomconfig_whois="anyone",
                     muc_roomconfig_passwordprotectedroom=True,
                     muc_roomconfig_roomsecret="pw1")
        await a["xep_0045"].send_affiliation_list(keep, [
            (jid("bob"), "member"), (jid("carol"), "admin"), (jid("dave"), "outcast")])
        a["xep_0045"].set_subject(keep, "Kept subject")
        await join(b, keep, "Bob", password="pw1")
        await create(a, agora, "Alice", muc_roomconfig_persistentroom=True,
                     muc_roomconfig_publicroom=True, muc_roomconfig_roomname="Agora")
        await create(b, fleeting, "Bob", muc_roomconfig_persistentroom=False)
        await join(c, fleeting, "Carol")

        for cl, room, nick in ((a, keep, "Alice"), (b, keep, "Bob"), (a, agora, "Alice"),
                               (b, fleeting, "Bob"), (c, fleeting, "Carol")):
            leave(cl, room, nick)
            await presence_of(cl, room, nick, unavailable, f"{nick} leaving {room}")
        await settle(a, b, c)
        # empty now: the persistent rooms stay, the temporary one is gone
        info = await disco_info(c, keep)
        assert name_of(info) == "Keeper"
        assert {"muc_persistent", "muc_membersonly", "muc_passwordprotected",
                "muc_nonanonymous", "muc_hidden"} <= features(info), features(info)
        assert await gone(c, fleeting)
        listed = [i.get("jid") for i in await disco_items(c, f"conference.{srv.domain}")]
        assert agora in listed and keep not in listed and fleeting not in listed, listed
        await close_all(a, b, c)

    async def after():
        a = await login(srv, "alice")
        b = await login(srv, "bob")
        c = await login(srv, "carol")
        d = await login(srv, "dave")
        info = await disco_info(d, keep)
        assert name_of(info) == "Keeper", info
        assert {"muc_persistent", "muc_membersonly", "muc_passwordprotected",
                "muc_nonanonymous", "muc_hidden"} <= features(info), features(info)
        listed = [i.get("jid") for i in await disco_items(d, f"conference.{srv.domain}")]
        assert agora in listed and keep not in listed, listed
        assert await gone(d, fleeting)

        # affiliations and password kept
        assert await join_error(d, keep, "Dave", password="pw1") == ("auth", "forbidden")
        assert await join_error(b, keep, "Bob") == ("auth", "not-authorized")
        b.pres.clear()
        jb = await join(b, keep, "Bob", password="pw1")
        assert 201 not in jb.codes, "the room was created again instead of loaded"
        assert jb.item["affiliation"] == "member", jb.pres
        assert 100 in jb.codes, "whois anyone kept: newcomers are warned (100)"
        assert jb.subject.xml.findtext("{jabber:client}subject") == "Kept subject", jb.subject
        jc = await join(c, keep, "Carol", password="pw1")
        assert jc.item["affiliation"] == "admin" and jc.item["role"] == "moderator", jc.pres
        ja = await join(a, keep, "Alice", password="pw1")
        assert ja.item["affiliation"] == "owner" and 201 not in ja.codes, ja.pres
        vals = form_values(await owner_get(a, keep))
        assert vals["muc#roomconfig_roomname"] == ["Keeper"], vals
        for var in ("muc#roomconfig_persistentroom", "muc#roomconfig_membersonly",
                    "muc#roomconfig_passwordprotectedroom"):
            assert vals[var][0] in ("1", "true"), (var, vals[var])
        assert vals["muc#roomconfig_publicroom"][0] in ("0", "false"), vals
        assert vals["muc#roomconfig_whois"] == ["anyone"], vals
        # still a working room
        await configure(a, keep, muc_roomconfig_roomname="Keeper II")
        assert name_of(await disco_info(d, keep)) == "Keeper II"
        await close_all(a, b, c, d)

    run(before())
    assert srv.stop() == 0
    srv.start()
    run(after())


def test_destroyed_persistent_room_stays_gone(make_server):
    """§10.9 on a persistent room: after the destruction and a restart, the room does not come
    back (the name is free: joining it creates a new room, 201)."""
    srv = make_server(users=USERS)
    room = room_jid("doomed")

    async def before():
        a = await login(srv, "alice")
        b = await login(srv, "bob")
        c = await login(srv, "carol")
        await create(a, room, "Alice", muc_roomconfig_persistentroom=True)
        await a["xep_0045"].set_affiliation(room, "outcast", jid=jid("carol"))
        await join(b, room, "Bob")
        await a["xep_0045"].destroy(room, reason="done")
        await presence_of(b, room, "Bob", unavailable, "Bob told of the destruction")
        assert await gone(c, room)
        await close_all(a, b, c)

    async def after():
        b = await login(srv, "bob")
        c = await login(srv, "carol")
        d = await login(srv, "dave")
        assert await gone(d, room)
        jc = await join(c, room, "Carol", subject=False)  # no longer banned: a new room
        assert 201 in jc.codes and jc.item["affiliation"] == "owner", jc.pres
        await close_all(b, c, d)

    run(before())
    assert srv.stop() == 0
    srv.start()
    run(after())
