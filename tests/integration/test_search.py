"""User directory search (XEP-0055) at the server: Alice, Bob and Carol publish vCards with
slixmpp; Dave has none. They look each other up by nickname, by e-mail and by username, with
the legacy fields and with a data form, and get the answer in the form they asked in."""
import xml.etree.ElementTree as ET

from conftest import run, slix_close, slix_login

NS_SEARCH = "jabber:iq:search"
NS_XDATA = "jabber:x:data"
NS_INFO = "http://jabber.org/protocol/disco#info"

CARDS = {
    "alice": {"FN": "Alice Liddell", "GIVEN": "Alice", "FAMILY": "Liddell",
              "NICKNAME": "Wonder", "EMAIL": "alice@Wonderland.example"},
    "bob": {"FN": "Robert Builder", "GIVEN": "Robert", "FAMILY": "Builder",
            "NICKNAME": "Bobby", "EMAIL": "bob@builders.example"},
    "carol": {"FN": "Carol Wonder", "NICKNAME": "Caz", "EMAIL": "carol@wonderland.example"},
}


async def publish(c, card):
    v = c["xep_0054"].make_vcard()
    v["FN"] = card["FN"]
    v["NICKNAME"] = card["NICKNAME"]
    if "GIVEN" in card:
        v["N"]["GIVEN"] = card["GIVEN"]
        v["N"]["FAMILY"] = card["FAMILY"]
    v["EMAIL"]["INTERNET"] = True
    v["EMAIL"]["USERID"] = card["EMAIL"]
    await c["xep_0054"].publish_vcard(v, timeout=10)


async def login_all(server, users):
    clients = {}
    for u in users:
        c = await slix_login(server, u)
        c.register_plugin("xep_0054")
        clients[u] = c
    return clients


async def search_iq(c, server, payload_xml, itype="set"):
    """Send <query xmlns='jabber:iq:search'>payload</query>; return the reply's <query/>
    (None for an error) and the reply."""
    iq = c.make_iq_set(ito=server.domain) if itype == "set" else c.make_iq_get(ito=server.domain)
    iq.xml.append(ET.fromstring(f"<query xmlns='{NS_SEARCH}'>{payload_xml}</query>"))
    try:
        reply = await iq.send(timeout=10)
    except Exception as e:  # IqError carries the error stanza
        reply = getattr(e, "iq", None)
        assert reply is not None, f"search iq failed: {e!r}"
        return None, reply
    return reply.xml.find(f"{{{NS_SEARCH}}}query"), reply


def legacy_items(query):
    out = {}
    for item in query.findall(f"{{{NS_SEARCH}}}item"):
        out[item.get("jid")] = {k: (item.findtext(f"{{{NS_SEARCH}}}{k}") or "")
                                for k in ("first", "last", "nick", "email")}
    return out


def form_items(query):
    x = query.find(f"{{{NS_XDATA}}}x")
    assert x is not None and x.get("type") == "result", ET.tostring(query)
    ft = [f for f in x.findall(f"{{{NS_XDATA}}}field") if f.get("var") == "FORM_TYPE"]
    assert ft and ft[0].findtext(f"{{{NS_XDATA}}}value") == NS_SEARCH
    reported = [f.get("var") for f in x.find(f"{{{NS_XDATA}}}reported")]
    assert reported == ["jid", "fn", "first", "last", "nick", "email"]
    rows = {}
    for item in x.findall(f"{{{NS_XDATA}}}item"):
        row = {f.get("var"): (f.findtext(f"{{{NS_XDATA}}}value") or "")
               for f in item.findall(f"{{{NS_XDATA}}}field")}
        rows[row["jid"]] = row
    return rows


def form(**fields):
    body = f"<field var='FORM_TYPE' type='hidden'><value>{NS_SEARCH}</value></field>"
    for var, value in fields.items():
        body += f"<field var='{var}'><value>{value}</value></field>"
    return f"<x xmlns='{NS_XDATA}' type='submit'>{body}</x>"


def error_of(reply):
    err = reply.xml.find("{jabber:client}error")
    assert err is not None, f"expected an error: {reply}"
    return err.get("type"), err[0].tag.split("}")[1]


def test_search_fields_and_form(server):
    async def scenario():
        c = await slix_login(server, "alice")
        c.register_plugin("xep_0030")
        info = await c["xep_0030"].get_info(jid=server.domain, timeout=10)
        assert NS_SEARCH in info["disco_info"]["features"]
        query, _ = await search_iq(c, server, "", itype="get")
        assert query.findtext(f"{{{NS_SEARCH}}}instructions")
        for legacy in ("first", "last", "nick", "email"):
            assert query.find(f"{{{NS_SEARCH}}}{legacy}") is not None, legacy
        x = query.find(f"{{{NS_XDATA}}}x")
        assert x is not None and x.get("type") == "form"
        vars_ = {f.get("var"): f for f in x.findall(f"{{{NS_XDATA}}}field")}
        assert vars_["FORM_TYPE"].findtext(f"{{{NS_XDATA}}}value") == NS_SEARCH
        assert {"user", "fn", "first", "last", "nick", "email"} <= set(vars_)
        await slix_close(c)
    run(scenario())


def test_search_by_nick_and_email_both_ways(make_server):
    srv = make_server(users={"alice": None, "bob": None, "carol": None, "dave": None})

    async def scenario():
        cs = await login_all(srv, ["alice", "bob", "carol"])
        for u, c in cs.items():
            await publish(c, CARDS[u])
        me = cs["bob"]

        # legacy: nickname, any case, any part
        q, _ = await search_iq(me, srv, "<nick>WONd</nick>")
        got = legacy_items(q)
        assert set(got) == {"alice@localhost"}
        assert got["alice@localhost"] == {"first": "Alice", "last": "Liddell", "nick": "Wonder",
                                          "email": "alice@Wonderland.example"}

        # legacy: e-mail substring finds two
        q, _ = await search_iq(me, srv, "<email>wonderland</email>")
        assert set(legacy_items(q)) == {"alice@localhost", "carol@localhost"}

        # legacy: fields are and-ed
        q, _ = await search_iq(me, srv, "<email>wonderland</email><nick>caz</nick>")
        assert set(legacy_items(q)) == {"carol@localhost"}

        # form: same question, a reported form back
        q, _ = await search_iq(me, srv, form(email="WONDERLAND.example"))
        rows = form_items(q)
        assert set(rows) == {"alice@localhost", "carol@localhost"}
        assert rows["carol@localhost"]["fn"] == "Carol Wonder"
        assert rows["carol@localhost"]["first"] == ""

        q, _ = await search_iq(me, srv, form(nick="bobby"))
        rows = form_items(q)
        assert set(rows) == {"bob@localhost"}
        assert rows["bob@localhost"]["email"] == "bob@builders.example"

        # form: username, which finds Dave too though he has no vCard
        q, _ = await search_iq(me, srv, form(user="A"))
        assert set(form_items(q)) == {"alice@localhost", "carol@localhost", "dave@localhost"}
        q, _ = await search_iq(me, srv, form(user="dave", fn="x"))
        assert form_items(q) == {}

        # full name and family name
        q, _ = await search_iq(me, srv, form(fn="wonder"))
        assert set(form_items(q)) == {"carol@localhost"}
        q, _ = await search_iq(me, srv, "<last>builder</last>")
        assert set(legacy_items(q)) == {"bob@localhost"}

        # nothing matches: an empty answer, not an error
        q, _ = await search_iq(me, srv, "<nick>nobody-has-this</nick>")
        assert legacy_items(q) == {}
        for c in cs.values():
            await slix_close(c)
    run(scenario())


def test_empty_query_is_a_bad_request(server):
    async def scenario():
        c = await slix_login(server, "alice")
        for payload in ("", "<nick/>", "<nick></nick><email/>", form(),
                        form(nick="", email="")):
            q, reply = await search_iq(c, server, payload)
            assert q is None, f"{payload!r} was answered: {reply}"
            assert error_of(reply) == ("modify", "bad-request"), payload
        # a form of another kind is no search
        other = (f"<x xmlns='{NS_XDATA}' type='submit'><field var='FORM_TYPE'>"
                 "<value>urn:other</value></field><field var='nick'><value>a</value></field></x>")
        q, reply = await search_iq(c, server, other)
        assert q is None and error_of(reply) == ("modify", "bad-request")
        await slix_close(c)
    run(scenario())


def test_results_are_capped_by_max_results(make_server):
    names = [f"user{i:02d}" for i in range(7)]
    srv = make_server(users={n: None for n in names}, config={"search": {"max_results": 3}})

    async def scenario():
        c = await slix_login(srv, "user00")
        q, _ = await search_iq(c, srv, form(user="user"))
        assert len(form_items(q)) == 3
        await slix_close(c)
    run(scenario())


def test_module_off_means_no_search(make_server):
    srv = make_server(users={"alice": None}, config={"modules": ["ping", "disco"]})

    async def scenario():
        c = await slix_login(srv, "alice")
        q, reply = await search_iq(c, srv, "<nick>a</nick>")
        assert q is None and error_of(reply) == ("cancel", "service-unavailable")
        await slix_close(c)
    run(scenario())
