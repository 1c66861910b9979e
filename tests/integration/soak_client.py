"""Raw asyncio XMPP clients for the soak test (test_soak.py).

slixmpp costs several milliseconds of Python per stanza, too much for a thousand clients on
two cores beside an ASan server, so each client here speaks the protocol directly: expat
frames the stream, a few handlers keep the XEP-0198 counts exactly, and a shared Ledger
records every message sent, acknowledged by the server and received.

Counting rules (XEP-0198):
- inbound: every top-level <message/>, <presence/> and <iq/> received after <enabled/> is
  one handled stanza; the client answers each <r/> with <a h='handled'/>.
- outbound: every stanza the client sends after <enabled/> is numbered; the server's
  <a h='N'/> (answer to our <r/>) or <resumed h='N'/> says the first N arrived. Only those
  messages are "acked" and must reach their recipient.
- duplicates: the server learns that the client handled a stanza only from an <a h/> it has
  read. Our <a h='X'/> is known to be read once the server answered an <r/> written after
  it (one stream is processed in order), or when the stream ends cleanly right after it, or
  when <resume h='X'/> succeeded. Messages received above that confirmed h on a session
  that then ended without resumption may lawfully come again (from offline storage or
  another resource); anything else received twice is a duplicate the server must not make.
"""
import asyncio
import base64
import collections
import random
import time
import xml.parsers.expat as expat

NS_SM = "urn:xmpp:sm:3"
NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_REG = "jabber:iq:register"
MOD = 2 ** 32
STEP_TIMEOUT = 90  # one protocol step under load; a server that never answers still fails


class Closed(Exception):
    pass


class El:
    """A top-level element: local name, attributes, children, text."""
    __slots__ = ("name", "attrs", "children", "text")

    def __init__(self, name, attrs):
        self.name = name.rsplit(":", 1)[-1]
        self.attrs = attrs
        self.children = []
        self.text = ""

    def child(self, name):
        for c in self.children:
            if c.name == name:
                return c
        return None

    def __repr__(self):
        attrs = "".join(f" {k}='{v}'" for k, v in self.attrs.items())
        inner = "".join(repr(c) for c in self.children) + self.text[:200]
        return f"<{self.name}{attrs}>{inner}</{self.name}>"


class Conn:
    """One TCP connection; a new expat parser at each stream (re)start."""

    def __init__(self, reader, writer, label):
        self.r = reader
        self.w = writer
        self.label = label
        self.pending = collections.deque()
        self.eof = False
        self.stream_ended = False  # the server sent </stream:stream>
        self.aborted = False
        self.task = None
        self.restart()

    def restart(self):
        self.depth = 0
        self.stack = []
        p = expat.ParserCreate()
        if hasattr(p, "SetReparseDeferralEnabled"):
            p.SetReparseDeferralEnabled(False)  # a lone <r/> must not wait for more bytes
        p.StartElementHandler = self._start
        p.EndElementHandler = self._end
        p.CharacterDataHandler = self._chars
        p.buffer_text = True
        self.parser = p

    def _start(self, name, attrs):
        self.depth += 1
        if self.depth == 1:
            return
        el = El(name, attrs)
        if self.stack:
            self.stack[-1].children.append(el)
        self.stack.append(el)

    def _end(self, name):
        self.depth -= 1
        if self.depth == 0:
            self.stream_ended = True
            return
        el = self.stack.pop()
        if not self.stack:
            self.pending.append(el)

    def _chars(self, data):
        if self.stack:
            self.stack[-1].text += data

    def send(self, text):
        if not self.aborted and not self.w.transport.is_closing():
            self.w.write(text.encode())

    async def next_el(self, timeout=STEP_TIMEOUT):
        while not self.pending:
            if self.eof or self.stream_ended:
                raise Closed("stream ended" if self.stream_ended else "connection closed")
            try:
                data = await asyncio.wait_for(self.r.read(65536), timeout)
            except (ConnectionError, OSError):
                data = b""
            if not data:
                self.eof = True
                continue
            try:
                self.parser.Parse(data, False)
            except expat.ExpatError as e:
                raise Closed(f"not well-formed from server: {e}: {data[:300]!r}") from None
        return self.pending.popleft()

    def abort(self):
        self.aborted = True
        if self.task and self.task is not asyncio.current_task():
            self.task.cancel()
        self.w.transport.abort()

    def close(self):
        if self.task and self.task is not asyncio.current_task():
            self.task.cancel()
        try:
            self.w.transport.abort() if self.aborted else self.w.close()
        except (ConnectionError, OSError, RuntimeError):
            pass


def stream_header(domain):
    return (f"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
            f"xmlns:stream='http://etherx.jabber.org/streams' to='{domain}' version='1.0'>")


class Ledger:
    """Every message: who sent it to whom, whether the server acknowledged it, who got it."""

    def __init__(self):
        self.sent = {}  # id -> [sender, recipient, t_sent, t_acked or None, written]
        self.recv = collections.defaultdict(list)  # id -> [(receiver, t, delayed, via)]
        self.allowed_dup = {}  # id -> how the session that received it above its confirmed
        # h ended (it may come again)
        self.problems = []  # misrouted or garbled messages, bounces
        self.t0 = time.monotonic()

    def now(self):
        return time.monotonic() - self.t0

    def on_sent(self, mid, sender, rcpt, written=True):
        self.sent[mid] = [sender, rcpt, self.now(), None, written]

    def on_acked(self, mid):
        rec = self.sent[mid]
        if rec[3] is None:
            rec[3] = self.now()

    def on_received(self, receiver, el, via):
        mid = el.attrs.get("id")
        body = el.child("body")
        if el.attrs.get("type") == "error" or body is None or mid not in self.sent:
            self.problems.append(f"{receiver} got an unexpected message via {via}: {el!r}")
            return
        sender, rcpt = self.sent[mid][:2]
        want = f"{sender}:{mid}:{rcpt}"
        frm = el.attrs.get("from", "").split("/")[0].split("@")[0]
        if rcpt != receiver or body.text != want or frm != sender:
            self.problems.append(f"{receiver} got a message meant for {rcpt} from {sender} "
                                 f"via {via}: {el!r}")
            return
        self.recv[mid].append((receiver, self.now(), el.child("delay") is not None, via))

    def acked(self):
        return [m for m, r in self.sent.items() if r[3] is not None]

    def missing(self):
        return [m for m in self.acked() if not self.recv.get(m)]

    def duplicates(self):
        return {m: v for m, v in self.recv.items() if len(v) > 1}


class World:
    """What all clients share: where the server is, the ledger, pacing, statistics."""

    def __init__(self, host, port, domain, users, tls_ctx, *, msg_interval, session_len,
                 kinds, short_window, login_concurrency, register=False):
        self.host = host
        self.port = port
        self.domain = domain
        self.users = users  # {name: password}
        self.names = list(users)
        self.tls_ctx = tls_ctx
        self.msg_interval = msg_interval  # mean seconds between two messages of a client
        self.session_len = session_len  # (min, max) seconds between two disconnections
        self.kinds = kinds  # {"a": weight, "b": weight, "c": weight}
        self.short_window = short_window  # max='N' asked by sessions that will not resume
        self.login_sem = asyncio.Semaphore(login_concurrency)
        self.register = register
        self.ledger = Ledger()
        self.stop = asyncio.Event()
        self.stats = collections.Counter()
        self.errors = []  # unexpected stream errors, closes, failed resumptions

    def error(self, client, text):
        self.errors.append(f"{client.user}: {text}")
        client.log(f"ERROR {text}")


class SoakClient:
    def __init__(self, world, user):
        self.world = world
        self.user = user
        self.password = world.users[user]
        self.others = [n for n in world.names if n != user]
        self.conn = None
        self.conn_no = 0
        self.gen = 0  # resource number: each fresh login binds r<gen>
        self.seq = 0
        self.hist = collections.deque(maxlen=40)
        self.rng = random.Random(f"{user}-{random.random()}")
        self.must_register = world.register
        self.reset_sm()

    # -- bookkeeping -----------------------------------------------------------------------
    def log(self, text):
        self.hist.append(f"{self.world.ledger.now():8.3f} {text}")

    def reset_sm(self):
        self.sm_on = False
        self.sm_id = None
        self.planned = None
        self.n_in = 0  # stanzas handled since <enabled/>; h = n_in mod 2^32
        self.last_written = 0  # h of our last <a/>
        self.confirmed = 0  # h the server is known to have read
        self.rq = collections.deque()  # last_written at each <r/> we sent, oldest first
        self.rq_empty = asyncio.Event()
        self.rq_empty.set()
        self.win = collections.deque()  # (index, id) of messages received above confirmed
        self.out = collections.deque()  # (index, xml, id) sent and not yet acknowledged
        self.out_count = 0
        self.out_acked = 0

    def end_sm_session(self, how):
        """The session is gone for good: what we received but the server may not know of
        can come again."""
        dups = [mid for idx, mid in self.win if idx > self.confirmed]
        for mid in dups:
            self.world.ledger.allowed_dup.setdefault(mid, how)
        unacked = sum(1 for _, _, mid in self.out if mid)
        self.log(f"sm session {self.sm_id} ended ({how}): h={self.n_in} confirmed="
                 f"{self.confirmed}, {len(dups)} received in the open window, {unacked} sent "
                 f"unacknowledged")
        self.reset_sm()

    def send_stanza(self, xml, mid=None, lost=False):
        self.out_count += 1
        self.out.append((self.out_count, xml, mid))
        if not lost:
            self.conn.send(xml)

    def send_r(self):
        self.rq.append(self.last_written)
        self.rq_empty.clear()
        self.conn.send(f"<r xmlns='{NS_SM}'/>")

    def server_acked(self, h, what):
        new = (h - self.out_acked) % MOD
        if new > len(self.out):
            self.world.error(self, f"{what} h={h} acknowledges {new} stanzas, only "
                                   f"{len(self.out)} are outstanding")
            new = len(self.out)
        for _ in range(new):
            _, _, mid = self.out.popleft()
            if mid:
                self.world.ledger.on_acked(mid)
        self.out_acked = (self.out_acked + new) % MOD

    def confirm(self, h):
        if h > self.confirmed:
            self.confirmed = h
        while self.win and self.win[0][0] <= self.confirmed:
            self.win.popleft()

    # -- inbound -----------------------------------------------------------------------------
    def handle(self, conn, el):
        name = el.name
        if name in ("message", "presence", "iq"):
            idx = None
            if self.sm_on:
                self.n_in += 1
                idx = self.n_in
            if name == "message":
                self.world.stats["received"] += 1
                self.world.ledger.on_received(self.user, el, conn.label)
                if idx is not None:
                    self.win.append((idx, el.attrs.get("id")))
            elif name == "iq" and el.attrs.get("type") in ("get", "set"):
                # a server ping (or anything else): answer so it never times us out
                to = el.attrs.get("from", self.world.domain)
                self.send_stanza(f"<iq type='result' id='{el.attrs.get('id', '')}' to='{to}'/>")
            return
        if name == "r":
            h = self.n_in
            conn.send(f"<a xmlns='{NS_SM}' h='{h % MOD}'/>")
            self.last_written = h
            return
        if name == "a":
            self.server_acked(int(el.attrs.get("h", "0")), "<a/>")
            if self.rq:
                self.confirm(self.rq.popleft())
            if not self.rq:
                self.rq_empty.set()
            return
        if name == "error":
            self.world.error(self, f"stream error on {conn.label}: {el!r}")
            return
        self.world.error(self, f"unexpected element on {conn.label}: {el!r}")

    async def expect(self, conn, *names):
        """The next element named one of names; stanzas and acks met on the way are handled."""
        while True:
            el = await conn.next_el()
            if el.name in names:
                return el
            if el.name in ("error", "failure") or not self.sm_on:
                raise Closed(f"wanted {names}, got {el!r}")
            self.handle(conn, el)

    async def reader(self, conn):
        try:
            while True:
                self.handle(conn, await conn.next_el(timeout=None))
        except Closed as e:
            if not conn.aborted and not getattr(conn, "closing", False):
                self.world.error(self, f"{conn.label} closed by the server: {e}")
        except asyncio.CancelledError:
            raise

    # -- connecting ----------------------------------------------------------------------------
    async def open_conn(self):
        self.conn_no += 1
        label = f"{self.user}#{self.conn_no}"
        reader, writer = await asyncio.open_connection(self.world.host, self.world.port,
                                                       limit=1 << 20)
        conn = Conn(reader, writer, label)
        dom = self.world.domain
        try:
            conn.send(stream_header(dom))
            await self.expect(conn, "features")
            if self.world.tls_ctx is not None:
                conn.send(f"<starttls xmlns='{NS_TLS}'/>")
                await self.expect(conn, "proceed")
                await writer.start_tls(self.world.tls_ctx, server_hostname=dom)
                conn.restart()
                conn.send(stream_header(dom))
                await self.expect(conn, "features")
            if self.must_register:
                conn.send(f"<iq type='set' id='reg'><query xmlns='{NS_REG}'><username>"
                          f"{self.user}</username><password>{self.password}</password>"
                          "</query></iq>")
                el = await self.expect(conn, "iq")
                if el.attrs.get("type") != "result":
                    raise Closed(f"registration of {self.user} failed: {el!r}")
                self.must_register = False
            payload = base64.b64encode(f"\0{self.user}\0{self.password}".encode()).decode()
            conn.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{payload}</auth>")
            el = await self.expect(conn, "success", "failure")
            if el.name != "success":
                raise Closed(f"authentication failed: {el!r}")
            conn.restart()
            conn.send(stream_header(dom))
            feats = await self.expect(conn, "features")
            if feats.child("sm") is None:
                raise Closed(f"no <sm/> feature: {feats!r}")
        except BaseException:
            conn.abort()
            raise
        return conn

    async def bind_and_enable(self, conn):
        self.gen += 1
        res = f"r{self.gen}"
        conn.send(f"<iq type='set' id='bind{self.gen}'><bind xmlns='{NS_BIND}'>"
                  f"<resource>{res}</resource></bind></iq>")
        el = await self.expect(conn, "iq")
        if el.attrs.get("type") != "result":
            raise Closed(f"bind failed: {el!r}")
        self.planned = self.rng.choices(list(self.world.kinds),
                                        weights=list(self.world.kinds.values()))[0]
        max_ = f" max='{self.world.short_window}'" if self.planned == "b" else ""
        conn.send(f"<enable xmlns='{NS_SM}' resume='true'{max_}/>")
        el = await self.expect(conn, "enabled", "failed")
        if el.name != "enabled" or el.attrs.get("resume") not in ("true", "1"):
            raise Closed(f"enable failed: {el!r}")
        self.sm_on = True
        self.sm_id = el.attrs["id"]
        self.conn = conn
        self.log(f"{conn.label}: bound {res}, enabled {self.sm_id} max={el.attrs.get('max')}"
                 f" planned={self.planned}")
        self.send_stanza("<presence/>")  # the offline store empties after this
        self.send_r()
        conn.task = asyncio.ensure_future(self.reader(conn))

    async def login(self, tries=5):
        """A fresh session; a failed attempt is an error of the run, then tried again."""
        for attempt in range(tries):
            try:
                async with self.world.login_sem:
                    conn = await self.open_conn()
                    self.conn = conn
                    await self.bind_and_enable(conn)
                self.world.stats["logins"] += 1
                return
            except (Closed, OSError, asyncio.TimeoutError) as e:
                self.world.error(self, f"login attempt {attempt + 1} failed: {e!r}")
                await asyncio.sleep(1)
        raise Closed(f"{self.user}: {tries} logins failed")

    async def resume(self):
        """<resume/> on a new connection; on <failed/> a fresh session on the same stream."""
        try:
            await self._resume()
        except (Closed, OSError, asyncio.TimeoutError) as e:
            self.world.error(self, f"resumption of {self.sm_id} failed: {e!r}")
            self.end_sm_session("resumption failed")
            await self.login()

    async def _resume(self):
        async with self.world.login_sem:
            conn = await self.open_conn()
            self.conn = conn
            h = self.n_in
            conn.send(f"<resume xmlns='{NS_SM}' previd='{self.sm_id}' h='{h % MOD}'/>")
            el = await self.expect(conn, "resumed", "failed")
            if el.name == "failed":
                self.world.stats["resume_failed"] += 1
                self.world.error(self, f"resumption of {self.sm_id} refused: {el!r}")
                self.end_sm_session("resume refused")
                await self.bind_and_enable(conn)
                return
            self.last_written = h
            self.confirm(h)
            self.rq.clear()
            self.rq_empty.set()
            self.server_acked(int(el.attrs.get("h", "0")), "<resumed/>")
            for _, xml, mid in self.out:  # what the server did not get, again
                conn.send(xml)
                self.world.stats["resent"] += 1
                if mid:
                    self.world.ledger.sent[mid][4] = True
            self.log(f"{conn.label}: resumed {self.sm_id} h={h} server h={el.attrs.get('h')}"
                     f" resent {len(self.out)}")
            self.send_r()
            conn.task = asyncio.ensure_future(self.reader(conn))
        self.world.stats["resumed"] += 1

    # -- leaving -------------------------------------------------------------------------------
    async def close_clean(self, timeout=60):
        """<a h/> then </stream:stream>; read what still comes until the server closes."""
        conn = self.conn
        conn.closing = True
        h = self.n_in
        conn.send(f"<a xmlns='{NS_SM}' h='{h % MOD}'/></stream:stream>")
        self.last_written = h
        self.confirm(h)  # read before the end of the stream, which comes after it
        try:
            await asyncio.wait_for(asyncio.shield(conn.task), timeout)
        except asyncio.TimeoutError:
            self.world.error(self, f"{conn.label}: no </stream:stream> within {timeout}s")
        if not conn.stream_ended:
            self.world.error(self, f"{conn.label}: closed without </stream:stream>")
        conn.close()
        self.end_sm_session("closed")

    async def disconnect(self, kind):
        self.world.stats[f"disconnect_{kind}"] += 1
        self.log(f"disconnect {kind}")
        if kind in "ab" and self.rng.random() < 0.3:
            # a message on the wire when the connection dies: written (it arrives first, h
            # covers it), or lost in the network (never written: resent after <resumed/>,
            # or with (b) it stays unconfirmed and the server never saw it)
            lost = self.rng.random() < 0.5
            self.send_message(lost=lost)
            self.world.stats["lost_on_wire" if lost else "sent_at_abort"] += 1
        if kind == "a":
            self.conn.abort()
            await asyncio.sleep(self.rng.uniform(0, 1.0))
            await self.resume()
        elif kind == "b":
            self.conn.abort()
            await asyncio.sleep(self.world.short_window + 1.5 + self.rng.uniform(0, 1.0))
            self.end_sm_session("window closed")
            await self.login()
        else:
            await self.close_clean()
            await asyncio.sleep(self.rng.uniform(0, 0.5))
            await self.login()

    # -- the life of a client ----------------------------------------------------------------
    def send_message(self, lost=False):
        self.seq += 1
        mid = f"{self.user}-{self.seq}"
        rcpt = self.rng.choice(self.others)
        self.world.ledger.on_sent(mid, self.user, rcpt, written=not lost)
        self.world.stats["sent"] += 1
        self.send_stanza(f"<message to='{rcpt}@{self.world.domain}' type='chat' id='{mid}'>"
                         f"<body>{self.user}:{mid}:{rcpt}</body></message>", mid, lost)
        if not lost:
            self.send_r()

    async def pause(self, seconds):
        """Sleep, but wake up when the senders are stopped. True if stopped."""
        if seconds > 0 and not self.world.stop.is_set():
            try:
                await asyncio.wait_for(self.world.stop.wait(), seconds)
            except asyncio.TimeoutError:
                pass
        return self.world.stop.is_set()

    async def chaos(self):
        """Send at random, disconnect at random in the planned way, until told to stop."""
        loop = asyncio.get_running_loop()
        w = self.world
        while not w.stop.is_set():
            end = loop.time() + self.rng.uniform(*w.session_len)
            while loop.time() < end:
                gap = min(self.rng.expovariate(1.0 / w.msg_interval), end - loop.time())
                if await self.pause(gap) or self.conn.task.done():
                    break
                if loop.time() < end:
                    self.send_message()
            if self.conn.task.done():  # the server closed us: resume if it can
                self.world.stats["closed_by_server"] += 1
                self.conn.abort()
                await self.resume()
                continue
            if w.stop.is_set():
                break
            await self.disconnect(self.planned)

    async def sync(self, timeout=60):
        """<r/> and wait for every outstanding <a/>: what we sent is acknowledged."""
        self.send_r()
        try:
            await asyncio.wait_for(self.rq_empty.wait(), timeout)
        except asyncio.TimeoutError:
            self.world.error(self, f"{self.conn.label}: no <a/> within {timeout}s")
