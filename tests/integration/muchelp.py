"""Helpers of the multi-user chat tests (test_muc*.py), written from XEP-0045, not from the
service's code: real slixmpp sessions (with the xep_0045 plugin loaded) that keep every
presence and message they receive in an Inbox, so that a test can wait for the stanza it
expects without losing the others, and can check the order in which they came."""
import asyncio
import time
import uuid
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape, quoteattr

from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from conftest import DOMAIN, iq_with, slix_close, slix_login, slix_ping

SERVICE = f"conference.{DOMAIN}"
NS_MUC = "http://jabber.org/protocol/muc"
NS_USER = NS_MUC + "#user"
NS_ADMIN = NS_MUC + "#admin"
NS_OWNER = NS_MUC + "#owner"
NS_CONFIG = NS_MUC + "#roomconfig"
NS_REQUEST = NS_MUC + "#request"
NS_ROOMINFO = NS_MUC + "#roominfo"
NS_DATA = "jabber:x:data"
NS_SID = "urn:xmpp:sid:0"
NS_DELAY = "urn:xmpp:delay"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
NS_DISCO_ITEMS = "http://jabber.org/protocol/disco#items"
NS_CONFERENCE = "jabber:x:conference"
NS_PING = "urn:xmpp:ping"
C = "{jabber:client}"

LOGGING = "muc#roomconfig_enablearchiving"
T = 15      # seconds to wait for something that must come (a loaded 2-core machine)
QUIET = 1.0  # seconds to wait for something that must not come


def room_jid(name):
    return f"{name}@{SERVICE}"


def jid(user, res=None):
    return f"{user}@{DOMAIN}" + (f"/{res}" if res else "")


# ---- reading stanzas ---------------------------------------------------------------------

def bare(j):
    return (j or "").split("/", 1)[0]


def nick_of(st):
    f = st["from"].full if hasattr(st["from"], "full") else str(st["from"])
    return f.split("/", 1)[1] if "/" in f else None


def frm(st):
    return str(st["from"])


def muc_x(st):
    return st.xml.find(f"{{{NS_USER}}}x")


def codes(st):
    """The muc#user status codes of a presence or message, as a set of ints."""
    x = muc_x(st)
    if x is None:
        return set()
    return {int(s.get("code")) for s in x.findall(f"{{{NS_USER}}}status")}


def item(st):
    """The muc#user <item/> of a presence: a dict of its attributes plus 'reason'/'actor'."""
    x = muc_x(st)
    it = None if x is None else x.find(f"{{{NS_USER}}}item")
    if it is None:
        return None
    d = dict(it.attrib)
    r = it.find(f"{{{NS_USER}}}reason")
    if r is not None:
        d["reason"] = r.text or ""
    a = it.find(f"{{{NS_USER}}}actor")
    if a is not None:
        d["actor"] = dict(a.attrib)
    return d


def error_of(st):
    """(type, condition) of a stanza's <error/>, or None."""
    e = st.xml.find(f"{C}error")
    if e is None:
        return None
    cond = None
    for child in e:
        if child.tag.startswith(f"{{{NS_STANZAS}}}") and not child.tag.endswith("}text"):
            cond = child.tag.split("}", 1)[1]
    return e.get("type"), cond


def body(st):
    return st.xml.findtext(f"{C}body")


def stanza_ids(st):
    return [(e.get("by"), e.get("id")) for e in st.xml.findall(f"{{{NS_SID}}}stanza-id")]


def is_subject(st):
    """The room's subject message (XEP-0045 §7.2.15): a <subject/> and no <body/>."""
    return (st.xml.get("type") == "groupchat" and st.xml.find(f"{C}subject") is not None
            and st.xml.find(f"{C}body") is None)


def delayed(st):
    return st.xml.find(f"{{{NS_DELAY}}}delay")


def x_form(st_or_el):
    el = st_or_el.xml if hasattr(st_or_el, "xml") else st_or_el
    return el.find(f".//{{{NS_DATA}}}x")


def form_values(x):
    """{var: [values]} of a data form element."""
    out = {}
    for f in x.findall(f"{{{NS_DATA}}}field"):
        var = f.get("var")
        if var is None:
            continue
        out[var] = [v.text or "" for v in f.findall(f"{{{NS_DATA}}}value")]
    return out


def form_fields(x):
    """{var: field element} of a data form element."""
    return {f.get("var"): f for f in x.findall(f"{{{NS_DATA}}}field") if f.get("var")}


# ---- a session that keeps what it receives ---------------------------------------------------

class Inbox:
    """Stanzas of one kind in arrival order; take() finds the first that matches and waits for
    it when it has not come yet, leaving the others where they are."""

    def __init__(self, who, counter):
        self.who = who
        self.items = []   # (seq, stanza); seq counts the client's presences and messages
        self.counter = counter
        self.ev = asyncio.Event()

    def put(self, st):
        self.counter[0] += 1
        self.items.append((self.counter[0], st))
        self.ev.set()

    async def take(self, pred, what, timeout=T):
        return (await self.take_seq(pred, what, timeout))[1]

    async def take_seq(self, pred, what, timeout=T):
        deadline = time.monotonic() + timeout
        while True:
            for i, (seq, st) in enumerate(self.items):
                if pred(st):
                    del self.items[i]
                    return seq, st
            left = deadline - time.monotonic()
            if left <= 0:
                seen = "\n  ".join(str(st)[:600] for _, st in self.items[-8:])
                raise AssertionError(f"{self.who}: no {what} within {timeout}s; unclaimed:\n  "
                                     f"{seen}")
            self.ev.clear()
            try:
                await asyncio.wait_for(self.ev.wait(), left)
            except asyncio.TimeoutError:
                pass

    def take_all(self, pred=lambda st: True):
        got = [(seq, st) for seq, st in self.items if pred(st)]
        self.items = [(seq, st) for seq, st in self.items if not pred(st)]
        return got

    async def none(self, pred, what, seconds=QUIET):
        """Nothing matching pred arrives within seconds (what has come already counts)."""
        await asyncio.sleep(seconds)
        got = [st for _, st in self.items if pred(st)]
        assert not got, f"{self.who}: unexpected {what}: " + "\n".join(str(s) for s in got)

    def clear(self):
        self.items = []


async def login(srv, user, resource="r", available=True):
    """A slixmpp session with the xep_0045 plugin; c.pres and c.msgs keep what arrives."""
    c = await slix_login(srv, user, resource=resource,
                         plugins=("xep_0030", "xep_0004", "xep_0045"))
    counter = [0]
    c.pres = Inbox(f"{user}/{resource}", counter)
    c.msgs = Inbox(f"{user}/{resource}", counter)
    c.register_handler(Callback("muc test presence", MatchXPath(f"{C}presence"), c.pres.put))
    c.register_handler(Callback("muc test message", MatchXPath(f"{C}message"), c.msgs.put))
    c.user = user
    if available:
        c.send_presence()
    await slix_ping(c)
    c.pres.clear()
    c.msgs.clear()
    return c


async def close_all(*clients):
    for c in clients:
        await slix_close(c)


def abort(c):
    """Drop the TCP connection without a closing stream tag (a phone losing its network)."""
    try:
        c.abort()
    except AttributeError:
        pass  # slixmpp 1.8 raises when the transport closed meanwhile


async def settle(*clients):
    """Everything each client sent has been handled, and what was routed to it has arrived."""
    for c in clients:
        await slix_ping(c)
    for c in clients:
        await slix_ping(c)


# ---- joining -----------------------------------------------------------------------------------

class Joined:
    def __init__(self, others, self_pres, self_seq):
        self.others = others     # [(seq, presence)] of other occupants, before self_pres
        self.pres = self_pres
        self.seq = self_seq
        self.history = []
        self.history_after_subject = []
        self.subject = None
        self.subject_seq = None

    @property
    def codes(self):
        return codes(self.pres)

    @property
    def item(self):
        return item(self.pres)

    @property
    def nicks(self):
        return [nick_of(p) for _, p in self.others]


def send_join(c, room, nick, password=None, history=None, extra=""):
    """A join presence with <x xmlns='muc'/> (XEP-0045 §7.2.2), raw."""
    inner = ""
    if password is not None:
        inner += f"<password>{escape(password)}</password>"
    if history is not None:
        inner += "<history " + " ".join(f"{k}={quoteattr(str(v))}"
                                        for k, v in history.items()) + "/>"
    c.send_raw(f"<presence to={quoteattr(room + '/' + nick)}><x xmlns='{NS_MUC}'>{inner}</x>"
               f"{extra}</presence>")


def from_room(room):
    return lambda st: bare(frm(st)) == room


def self_presence(room):
    """The occupant's own presence: from the room, 110, or an error."""
    def pred(st):
        return bare(frm(st)) == room and (ptype(st) == "error" or 110 in codes(st))
    return pred


async def join(c, room, nick, password=None, history=None, subject=True, timeout=T):
    """Join and return Joined; fails on a presence error. With subject, also waits for the
    subject message and collects the history (delayed groupchat messages) before it."""
    send_join(c, room, nick, password, history)
    seq, p = await c.pres.take_seq(self_presence(room), f"self-presence in {room}", timeout)
    assert ptype(p) != "error", f"{c.user} could not join {room} as {nick}: {p}"
    others = c.pres.take_all(lambda st: bare(frm(st)) == room and ptype(st) != "error")
    j = Joined([(s, st) for s, st in others if s < seq], p, seq)
    # presences that arrived after ours (others joining meanwhile) are not the join's: put back
    for s, st in others:
        if s > seq:
            c.pres.items.append((s, st))
    c.pres.items.sort(key=lambda e: e[0])
    if subject:
        sseq, subj = await c.msgs.take_seq(lambda st: from_room(room)(st) and is_subject(st),
                                           f"subject of {room}", timeout)
        j.subject = subj
        j.subject_seq = sseq
        # the history comes before the subject (§7.2.15, §7.2.16)
        hist = c.msgs.take_all(lambda st: from_room(room)(st) and st.xml.get("type") == "groupchat"
                               and delayed(st) is not None and not is_subject(st))
        j.history = [st for s, st in hist if s < sseq]
        j.history_after_subject = [st for s, st in hist if s > sseq]
    return j


async def join_error(c, room, nick, password=None, timeout=T):
    """Try to join; the presence error's (type, condition)."""
    send_join(c, room, nick, password)
    p = await c.pres.take(self_presence(room), f"answer to the join of {room}", timeout)
    assert ptype(p) == "error", f"{c.user} joined {room} but should not have: {p}"
    return error_of(p)


def leave(c, room, nick, status=None):
    st = f"<status>{escape(status)}</status>" if status else ""
    c.send_raw(f"<presence to={quoteattr(room + '/' + nick)} type='unavailable'>{st}</presence>")


async def presence_of(c, room, nick, pred=lambda st: True, what=None, timeout=T):
    """The next presence from room/nick for which pred holds."""
    full = f"{room}/{nick}"
    return await c.pres.take(lambda st: frm(st) == full and pred(st),
                             what or f"presence of {full}", timeout)


def ptype(st):
    """The type attribute as sent ("" when absent; slixmpp's st["type"] says "away" etc.)."""
    return st.xml.get("type") or ""


def unavailable(st):
    return ptype(st) == "unavailable"


def available(st):
    return ptype(st) == ""


# ---- owner: creation and configuration ---------------------------------------------------------

async def owner_get(c, room):
    """The configuration form (muc#owner get, §10.1.3): the <x/> element."""
    res = await iq_with(c, "get", f"<query xmlns='{NS_OWNER}'/>", to=room).send(timeout=T)
    x = x_form(res)
    assert x is not None, f"no data form in the owner query result: {res}"
    return x


def submit_form(values, form_type=NS_CONFIG):
    """A submitted data form; values {var: str | bool | int | list}."""
    out = f"<x xmlns='{NS_DATA}' type='submit'><field var='FORM_TYPE'><value>{form_type}" \
          "</value></field>"
    for var, val in values.items():
        if var == "FORM_TYPE":
            continue
        vals = val if isinstance(val, (list, tuple)) else [val]
        out += f"<field var={quoteattr(var)}>"
        for v in vals:
            if isinstance(v, bool):
                v = "1" if v else "0"
            out += f"<value>{escape(str(v))}</value>"
        out += "</field>"
    return out + "</x>"


async def configure(c, room, **changes):
    """What a client does: fetch the form, change some fields, submit all of them back.
    Keys use '_' for '#': muc_roomconfig_membersonly=True, or pass fields={var: value};
    logging=True turns message archiving on."""
    fields = changes.pop("fields", {})
    for k, v in changes.items():
        fields[k.replace("muc_roomconfig_", "muc#roomconfig_")
                .replace("muc_maxhistoryfetch", "muc#maxhistoryfetch")] = v
    x = await owner_get(c, room)
    vals = form_values(x)
    types = {var: f.get("type") for var, f in form_fields(x).items()}
    if "logging" in fields:
        # XEP-0045 1.35 §10.1.3: archiving (MAM) is muc#roomconfig_enablearchiving, public logs
        # muc#roomconfig_enablelogging; a service without the former archives by the latter
        fields[LOGGING if LOGGING in vals else "muc#roomconfig_enablelogging"] = \
            fields.pop("logging")
    out = {}
    for var, v in vals.items():
        if types.get(var) == "fixed":
            continue
        out[var] = v
    for var, v in fields.items():
        assert var in vals or var in types, \
            f"the configuration form of {room} has no field {var}; it has {sorted(vals)}"
        out[var] = v
    await iq_with(c, "set", f"<query xmlns='{NS_OWNER}'>{submit_form(out)}</query>",
                  to=room).send(timeout=T)
    return x


async def instant(c, room):
    """Accept the default configuration (§10.1.2): an empty submitted form."""
    await iq_with(c, "set", f"<query xmlns='{NS_OWNER}'><x xmlns='{NS_DATA}' type='submit'/>"
                  "</query>", to=room).send(timeout=T)


async def create(c, room, nick, **config):
    """Create a room (201) and unlock it: instant when no config is given, else reserved with
    those fields changed. Returns the Joined of the creator."""
    j = await join(c, room, nick, subject=False)
    assert 201 in j.codes, f"{room} was not created (no status 201): {j.pres}"
    if config:
        await configure(c, room, **config)
    else:
        await instant(c, room)
    return j


# ---- admin: roles and affiliations ------------------------------------------------------------

def admin_items(*items):
    """A muc#admin <query/> with items given as dicts of attributes (+ 'reason')."""
    out = f"<query xmlns='{NS_ADMIN}'>"
    for it in items:
        it = dict(it)
        reason = it.pop("reason", None)
        attrs = " ".join(f"{k}={quoteattr(v)}" for k, v in it.items())
        if reason is not None:
            out += f"<item {attrs}><reason>{escape(reason)}</reason></item>"
        else:
            out += f"<item {attrs}/>"
    return out + "</query>"


async def admin_set(c, room, **it):
    return await iq_with(c, "set", admin_items(it), to=room).send(timeout=T)


async def admin_list(c, room, **it):
    """The items of a muc#admin get (list by affiliation or role): list of attribute dicts."""
    res = await iq_with(c, "get", admin_items(it), to=room).send(timeout=T)
    q = res.xml.find(f"{{{NS_ADMIN}}}query")
    return [dict(i.attrib) for i in q.findall(f"{{{NS_ADMIN}}}item")]


async def iq_error(iq):
    """Send iq, expect an error: (type, condition)."""
    try:
        res = await iq.send(timeout=T)
    except IqError as e:
        err = e.iq["error"]
        return err["type"], err["condition"]
    except IqTimeout:
        raise AssertionError(f"no answer to {iq}") from None
    raise AssertionError(f"expected an error, got {res}")


# ---- messages ---------------------------------------------------------------------------------

def say(c, room, text, mid=None, extra=""):
    mid = mid or uuid.uuid4().hex[:12]
    c.send_raw(f"<message to={quoteattr(room)} type='groupchat' id={quoteattr(mid)}>"
               f"<body>{escape(text)}</body>{extra}</message>")
    return mid


async def converse(room, lines, listener):
    """Say [(client, text)] one after the other, each heard by listener before the next is
    said: messages from different connections have no order until the room has seen them.
    Returns the messages as listener got them."""
    got = []
    for c, text in lines:
        say(c, room, text)
        got.append(await heard(listener, room, text))
    return got


def pm(c, to, text, mtype="chat"):
    c.send_raw(f"<message to={quoteattr(to)} type={quoteattr(mtype)} "
               f"id={quoteattr(uuid.uuid4().hex[:12])}><body>{escape(text)}</body></message>")


def groupchat_with(room, text):
    return lambda st: (from_room(room)(st) and st.xml.get("type") == "groupchat"
                       and body(st) == text)


async def heard(c, room, text, timeout=T):
    """The groupchat message with this body, from the room."""
    return await c.msgs.take(groupchat_with(room, text), f"groupchat {text!r} in {room}",
                             timeout)


def is_error(st):
    return st.xml.get("type") == "error"


async def disco_info(c, to, node=None):
    n = f" node={quoteattr(node)}" if node else ""
    res = await iq_with(c, "get", f"<query xmlns='{NS_DISCO_INFO}'{n}/>", to=to).send(timeout=T)
    return res.xml.find(f"{{{NS_DISCO_INFO}}}query")


def features(q):
    return {f.get("var") for f in q.findall(f"{{{NS_DISCO_INFO}}}feature")}


async def disco_items(c, to):
    res = await iq_with(c, "get", f"<query xmlns='{NS_DISCO_ITEMS}'/>", to=to).send(timeout=T)
    q = res.xml.find(f"{{{NS_DISCO_ITEMS}}}query")
    return [dict(i.attrib) for i in q.findall(f"{{{NS_DISCO_ITEMS}}}item")]


def xml_of(s):
    return ET.fromstring(s)


__all__ = [n for n in dir() if not n.startswith("_")] + ["slix_ping", "slix_close", "iq_with"]
