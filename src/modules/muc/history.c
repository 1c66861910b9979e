/* A room's recent messages, kept in memory and sent to each new occupant (XEP-0045 §7.2.15).
 * An entry is one allocation holding the message exactly as it was broadcast (from the
 * occupant JID, with its stanza-id, without 'to'); on join a <delay/> is inserted and the
 * bytes go out once per session. The list is oldest first, trimmed from the head. */
#include "modules/muc/muc_int.h"
#include "router/archive.h"
#include "base/err.h"
#include "base/log.h"
#include "xml/escape.h"
#include "xmpp/datetime.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t
muc_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

size_t
muc_utf8_chars(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += ((unsigned char)s[i] & 0xc0) != 0x80;
    return n;
}

void
muc_history_add(muc_room *room, const char *bytes, size_t len, int64_t stamp_us)
{
    if (room->cfg.history_length <= 0)
        return;
    muc_msg *m = malloc(sizeof *m + len + 1);
    if (!m) {
        mp_warn("room %s: no memory for its history", room->jid);
        return;
    }
    m->next = NULL;
    m->stamp_us = stamp_us;
    m->len = len;
    m->chars = muc_utf8_chars(bytes, len);
    memcpy(m->bytes, bytes, len);
    m->bytes[len] = '\0';
    if (room->history_tail)
        room->history_tail->next = m;
    else
        room->history = m;
    room->history_tail = m;
    room->nhistory++;
    muc_history_trim(room);
}

void
muc_history_trim(muc_room *room)
{
    int keep = room->cfg.history_length > 0 ? room->cfg.history_length : 0;
    while (room->nhistory > keep && room->history) {
        muc_msg *m = room->history;
        room->history = m->next;
        free(m);
        room->nhistory--;
    }
    if (!room->history) {
        room->history_tail = NULL;
        room->nhistory = 0;
    }
}

void
muc_history_free(muc_room *room)
{
    muc_msg *m = room->history;
    while (m) {
        muc_msg *next = m->next;
        free(m);
        m = next;
    }
    room->history = room->history_tail = NULL;
    room->nhistory = 0;
}

/* A non-negative decimal integer attribute, -1 when absent or malformed. */
static long
count_attr(const mp_xnode *n, const char *name)
{
    const char *v = mp_xnode_attr(n, name);
    if (!v || *v < '0' || *v > '9')
        return -1;
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (*end || errno == ERANGE)
        return errno == ERANGE && *end == '\0' ? LONG_MAX : -1;
    return x;
}

void
muc_history_parse(const mp_xnode *history, muc_history_req *req)
{
    req->maxchars = req->maxstanzas = -1;
    req->seconds = -1;
    req->since_us = INT64_MIN;
    if (!history)
        return;
    req->maxchars = count_attr(history, "maxchars");
    req->maxstanzas = count_attr(history, "maxstanzas");
    req->seconds = count_attr(history, "seconds");
    const char *since = mp_xnode_attr(history, "since");
    int64_t us;
    if (since && mp_datetime_parse(since, &us) == 0)
        req->since_us = us;
}

const muc_msg *
muc_history_select(const muc_msg *head, const muc_history_req *req, int64_t now_us, int *count)
{
    long n = 0;
    size_t chars = 0;
    for (const muc_msg *m = head; m; m = m->next) {
        n++;
        chars += m->chars;
    }
    int64_t cutoff = req->since_us;
    /* seconds beyond a century mean "everything"; this also keeps the product in range */
    if (req->seconds >= 0 && req->seconds < 3155760000LL &&
        now_us - req->seconds * 1000000 > cutoff)
        cutoff = now_us - req->seconds * 1000000;
    const muc_msg *m = head;
    while (m && ((req->maxstanzas >= 0 && n > req->maxstanzas) ||
                 (req->maxchars >= 0 && chars > (size_t)req->maxchars) || m->stamp_us < cutoff)) {
        chars -= m->chars;
        n--;
        m = m->next;
    }
    *count = (int)n;
    return n > 0 ? m : NULL;
}

int
muc_delay_append(mp_buf *out, const char *bytes, size_t len, const char *from, int64_t stamp_us)
{
    static const char close[] = "</message>";
    size_t cl = sizeof close - 1, keep;
    int self_closed = 0;

    if (len >= 2 && bytes[0] == '<' && bytes[len - 2] == '/' && bytes[len - 1] == '>') {
        keep = len - 2;
        self_closed = 1;
    } else if (len > cl && bytes[0] == '<' && memcmp(bytes + len - cl, close, cl) == 0) {
        keep = len - cl;
    } else {
        return MP_EINVAL;
    }
    char stamp[40];
    mp_datetime_format(stamp_us, stamp, sizeof stamp);
    int bad = mp_buf_append(out, bytes, keep) < 0;
    if (self_closed)
        bad |= mp_buf_puts(out, ">") < 0;
    bad |= mp_buf_puts(out, "<delay xmlns='" MP_NS_DELAY "' from='") < 0;
    bad |= mp_xml_escape_attr(out, from, strlen(from)) < 0;
    bad |= mp_buf_printf(out, "' stamp='%s'/></message>", stamp) < 0;
    return bad ? MP_ENOMEM : 0;
}

void
muc_history_send(muc_service *svc, muc_room *room, const mp_xnode *history, const char *to_full)
{
    muc_history_req req;
    int n;
    muc_history_parse(history, &req);
    const muc_msg *m = muc_history_select(room->history, &req, muc_now_us(), &n);
    size_t to_len = strlen(to_full);
    for (; m; m = m->next) {
        mp_buf *b = &svc->out3;
        b->len = 0;
        if (muc_delay_append(b, m->bytes, m->len, room->jid, m->stamp_us) < 0) {
            mp_warn("room %s: history entry not sent", room->jid);
            continue;
        }
        /* privacy lists see the room's JID: the nick is inside the stored bytes only */
        mp_core_deliver(svc->core, room->jid, to_full, to_len, b->data, b->len, 0);
    }
}
