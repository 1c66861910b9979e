/* libFuzzer target for the MUC history a client asks for on join (XEP-0045 §7.2.15): the
 * attributes of its <history/> (maxchars, maxstanzas, seconds, since), the choice of entries,
 * the room's history kept and trimmed, and the <delay/> each entry is sent with.
 *
 * The input: byte 0 is the number of entries (modulo 24), byte 1 the room's history length
 * (modulo 32), byte 2 how far "now" is past the first entry; then two bytes per entry (its body,
 * its delay after the previous one); the rest is the <history/> element (alone or inside the
 * <x xmlns='http://jabber.org/protocol/muc'/> of a join; anything else: nothing asked).
 *
 * Checked against a plain model: the attributes read as the XEP's non-negative integers (or as
 * absent), the room keeps exactly its newest entries with their characters counted, the
 * selection is the longest run of newest entries within every limit, and every entry sent
 * parses as a message ending with a <delay/> holding its own stamp. */
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/arena.h"
#include "base/buf.h"
#include "base/err.h"
#include "modules/muc/muc_int.h"
#include "xml/tree.h"
#include "xmpp/datetime.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SEC 1000000LL
#define T0 (1700000000LL * SEC)
#define MAX_ENTRIES 24
#define ROOM "lounge@conference.example.org"
#define NS_DELAY "urn:xmpp:delay"

static mp_xml_parser *parser;

/* Pieces of a body and the characters each adds to the stanza (an escaped one counts as its
 * five characters: the count is of the stanza as sent). */
static const struct {
    const char *s;
    size_t chars;
} units[] = {{"a", 1},     {"\xc3\xa9", 1}, {"\xe2\x82\xac", 1}, {"\xf0\x9f\x98\x80", 1},
             {"&amp;", 5}, {" ", 1},        {"\xe4\xb8\xad", 1}, {"&lt;", 4}};

typedef struct entry {
    char bytes[512];
    size_t len, chars;
    int64_t stamp_us;
} entry;

/* The stanza of entry i: self-closed without a body, or a body of the units k picks. */
static void
make_entry(entry *e, int i, uint8_t k, int64_t stamp)
{
    mp_buf b = {0};
    size_t nunits = k >> 3;
    e->stamp_us = stamp;
    if (mp_buf_printf(&b, "<message from='" ROOM "/nick' id='h%02d' type='groupchat'", i) < 0)
        abort();
    e->chars = b.len; /* ASCII so far */
    if (nunits == 0) {
        if (mp_buf_puts(&b, "/>") < 0)
            abort();
        e->chars += 2;
    } else {
        if (mp_buf_puts(&b, "><body>") < 0)
            abort();
        e->chars += 7;
        for (size_t u = 0; u < nunits; u++) {
            size_t which = (k + u * (k | 1)) % (sizeof units / sizeof units[0]);
            if (mp_buf_puts(&b, units[which].s) < 0)
                abort();
            e->chars += units[which].chars;
        }
        if (mp_buf_puts(&b, "</body></message>") < 0)
            abort();
        e->chars += 17;
    }
    if (b.len >= sizeof e->bytes)
        abort();
    memcpy(e->bytes, b.data, b.len);
    e->bytes[b.len] = '\0';
    e->len = b.len;
    mp_buf_free(&b);
}

/* XEP-0045's integers: digits only; too large a number is as good as infinite. */
static long
ref_count(const mp_xnode *h, const char *name)
{
    const char *v = h ? mp_xnode_attr(h, name) : NULL;
    if (!v || !*v)
        return -1;
    long x = 0;
    for (const char *p = v; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        int d = *p - '0';
        x = x > (LONG_MAX - d) / 10 ? LONG_MAX : x * 10 + d;
    }
    return x;
}

static void
check_parse(const mp_xnode *h, const muc_history_req *r)
{
    int64_t us;
    const char *since = h ? mp_xnode_attr(h, "since") : NULL;
    int64_t want_since = since && mp_datetime_parse(since, &us) == 0 ? us : INT64_MIN;
    if (r->maxchars != ref_count(h, "maxchars") || r->maxstanzas != ref_count(h, "maxstanzas") ||
        r->seconds != ref_count(h, "seconds") || r->since_us != want_since)
        __builtin_trap();
}

/* The <history/> of an element: itself, or the child of a join's <x/>. */
static const mp_xnode *
history_of(const mp_xnode *n)
{
    if (strcmp(n->ns, MUC_NS) == 0 && strcmp(n->name, "history") == 0)
        return n;
    if (strcmp(n->ns, MUC_NS) == 0 && strcmp(n->name, "x") == 0)
        return mp_xnode_child(n, MUC_NS, "history");
    return NULL;
}

static void
check_delay(mp_arena *a, const muc_msg *m)
{
    mp_buf out = {0};
    mp_xnode *n = NULL, *last = NULL;
    if (muc_delay_append(&out, m->bytes, m->len, ROOM, m->stamp_us) != 0)
        __builtin_trap();
    if (mp_xml_parse(parser, a, "jabber:client", out.data, out.len, &n) != 0 ||
        strcmp(n->name, "message") != 0)
        __builtin_trap();
    for (mp_xnode *c = n->children; c; c = c->next)
        last = c;
    const char *stamp = last ? mp_xnode_attr(last, "stamp") : NULL;
    const char *from = last ? mp_xnode_attr(last, "from") : NULL;
    int64_t us;
    if (!last || strcmp(last->ns, NS_DELAY) != 0 || strcmp(last->name, "delay") != 0 || !stamp ||
        mp_datetime_parse(stamp, &us) != 0 || us != m->stamp_us || !from || strcmp(from, ROOM) != 0)
        __builtin_trap();
    mp_buf_free(&out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static entry entries[MAX_ENTRIES];
    if (!parser && !(parser = mp_xml_parser_new()))
        abort();
    if (size < 3)
        return 0;
    int n = data[0] % MAX_ENTRIES;
    if (size < 3 + 2 * (size_t)n)
        return 0;
    muc_room room;
    memset(&room, 0, sizeof room);
    room.jid = (char *)ROOM;
    room.jid_len = strlen(ROOM);
    room.cfg.history_length = data[1] % 32;
    int64_t stamp = T0;
    for (int i = 0; i < n; i++) {
        stamp += (int64_t)data[3 + 2 * i + 1] * 5 * SEC; /* several may share a second */
        make_entry(&entries[i], i, data[3 + 2 * i], stamp);
        muc_history_add(&room, entries[i].bytes, entries[i].len, stamp);
    }
    int64_t now = stamp + (int64_t)data[2] * 7 * SEC;

    /* the newest history_length entries, oldest first, with their characters */
    int kept = n < room.cfg.history_length ? n : room.cfg.history_length;
    const muc_msg *list[MAX_ENTRIES];
    int k = 0;
    for (const muc_msg *m = room.history; m; m = m->next) {
        if (k == kept)
            __builtin_trap();
        const entry *e = &entries[n - kept + k];
        if (m->len != e->len || memcmp(m->bytes, e->bytes, e->len) != 0 ||
            m->bytes[m->len] != '\0' || m->chars != e->chars || m->stamp_us != e->stamp_us ||
            m->chars != muc_utf8_chars(m->bytes, m->len))
            __builtin_trap();
        list[k++] = m;
    }
    if (k != kept || room.nhistory != kept || (kept && room.history_tail != list[kept - 1]) ||
        (!kept && room.history_tail))
        __builtin_trap();

    mp_arena arena;
    mp_arena_init(&arena, 4096);
    size_t off = 3 + 2 * (size_t)n;
    mp_xnode *x = NULL;
    const mp_xnode *h = NULL;
    if (mp_xml_parse(parser, &arena, "jabber:client", (const char *)data + off, size - off, &x) ==
        0)
        h = history_of(x);
    muc_history_req req;
    muc_history_parse(h, &req);
    check_parse(h, &req);

    /* the model: the oldest entry sent is the oldest whose run to the newest fits every limit
     * (stamps never decrease, so the oldest of a run decides 'seconds' and 'since') */
    int64_t cutoff = req.since_us;
    if (req.seconds >= 0 && req.seconds < 3155760000LL && now - req.seconds * SEC > cutoff)
        cutoff = now - req.seconds * SEC;
    int want = 0;
    size_t chars = 0;
    for (int i = kept - 1; i >= 0; i--) {
        chars += list[i]->chars;
        if ((req.maxstanzas >= 0 && want + 1 > req.maxstanzas) ||
            (req.maxchars >= 0 && chars > (size_t)req.maxchars) || list[i]->stamp_us < cutoff)
            break;
        want++;
    }
    int count = -1;
    const muc_msg *first = muc_history_select(room.history, &req, now, &count);
    if (count != want || first != (want ? list[kept - want] : NULL))
        __builtin_trap();
    for (const muc_msg *m = first; m; m = m->next)
        check_delay(&arena, m);

    /* a shorter history length keeps the newest of them */
    room.cfg.history_length = kept / 2;
    muc_history_trim(&room);
    if (room.nhistory != kept / 2 || (kept / 2 && room.history != list[kept - kept / 2]))
        __builtin_trap();
    mp_arena_free(&arena);
    muc_history_free(&room);
    return 0;
}
