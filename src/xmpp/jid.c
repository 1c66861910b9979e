/* JID preparation: RFC 6122 stringprep profiles (nodeprep, nameprep, resourceprep) as
 * Prosody and ejabberd deploy them, with the length and split rules of RFC 7622 §3.
 *
 * Decisions worth knowing:
 * - Unassigned code points (Unicode 3.2) are allowed, as in the "query" mode of RFC 3454
 *   and as Prosody (non-strict) and ejabberd do: rejecting them would refuse every emoji
 *   in a resource. stringprep is frozen at Unicode 3.2, so the mapping stays stable.
 * - The 1023-byte limit applies to the prepared part (RFC 7622 §3.1). The raw part is
 *   bounded too (MP_JID_RAW_MAX) so no input makes us run stringprep over megabytes.
 * - Domain: nameprep, then U+3002 (ideographic full stop) is a label separator as in
 *   IDNA2003 (U+FF0E and U+FF61 reach '.' or U+3002 through NFKC), then one trailing '.'
 *   is stripped. We do NOT apply IDNA's UseSTD3ASCIIRules in full (which would also
 *   forbid '_' and leading or trailing hyphens): XMPP deployments use names like
 *   "pubsub_host". We do reject every other ASCII character outside letters, digits,
 *   '-', '.' and '_' -- controls, space and RFC 6122 §2.2's "/ : @ < > ' & \"" among
 *   them -- because nameprep alone prohibits none of ASCII. Labels must not be empty and
 *   must be at most 63 bytes in their ACE (xn--punycode) form. Non-ASCII characters
 *   that survive nameprep are allowed (IDNA2003 semantics).
 * - IP literals: "[IPv6]" is checked with inet_pton and lowercased; dotted IPv4 passes
 *   the hostname rules unchanged.
 * - Fast path: a pure-ASCII part never calls stringprep. For ASCII the three profiles
 *   reduce to: nodeprep lowercases and prohibits C0 controls, DEL, space and
 *   " & ' / : < > @; resourceprep copies and prohibits C0 controls and DEL; nameprep
 *   lowercases. The unit test checks this against libidn for every ASCII character. */
#include "xmpp/jid.h"

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <punycode.h>
#include <stringprep.h>

#include "base/err.h"

/* Raw input bound: stringprep can only shrink input through B.1 ("map to nothing"), so
 * longer raw parts are pathological. */
#define MP_JID_RAW_MAX (4 * MP_JID_PART_MAX)
#define MP_JID_LABEL_MAX 63

enum jid_profile { JID_NODE, JID_DOMAIN, JID_RESOURCE };

/* Strict UTF-8 (RFC 3629): no overlongs, no surrogates, nothing above U+10FFFF, no NUL
 * (stringprep takes C strings). Returns true when in[0..len) is valid. */
static bool
utf8_valid(const unsigned char *s, size_t len)
{
    size_t i = 0;

    while (i < len) {
        unsigned char c = s[i];
        size_t n;
        uint32_t cp;

        if (c == 0)
            return false;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return false; /* continuation byte, C0/C1 overlong lead, F5..FF */
        }
        if (len - i - 1 < n)
            return false;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)))
            return false;
        if (cp >= 0xd800 && cp <= 0xdfff)
            return false;
        i += n + 1;
    }
    return true;
}

static bool
node_ascii_prohibited(unsigned char c)
{
    return c <= 0x20 || c == 0x7f || c == '"' || c == '&' || c == '\'' || c == '/' || c == ':' ||
           c == '<' || c == '>' || c == '@';
}

/* The ASCII reduction of each profile; see the comment at the top of the file. */
static int
prep_ascii(enum jid_profile prof, const char *in, size_t len, char *out)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];

        switch (prof) {
        case JID_NODE:
            if (node_ascii_prohibited(c))
                return MP_EINVAL;
            break;
        case JID_RESOURCE:
            if (c < 0x20 || c == 0x7f)
                return MP_EINVAL;
            break;
        case JID_DOMAIN:
            /* nameprep prohibits no ASCII; domain_check() applies our rules after either
             * path. NUL cannot pass stringprep, so refuse it here too. */
            if (c == 0)
                return MP_EINVAL;
            break;
        }
        if (prof != JID_RESOURCE && c >= 'A' && c <= 'Z')
            c = (unsigned char)(c - 'A' + 'a');
        out[i] = (char)c;
    }
    out[len] = '\0';
    return (int)len;
}

/* Prepare into work (size MP_JID_RAW_MAX + 1) with libidn. Returns the length, MP_EINVAL
 * or MP_ENOMEM. The result may exceed MP_JID_PART_MAX; the caller checks. */
static int
prep_stringprep(enum jid_profile prof, const char *in, size_t len, char *work, size_t worksz)
{
    const Stringprep_profile *p;
    int rc;

    if (!utf8_valid((const unsigned char *)in, len))
        return MP_EINVAL;
    memcpy(work, in, len);
    work[len] = '\0';
    switch (prof) {
    case JID_NODE:
        p = stringprep_xmpp_nodeprep;
        break;
    case JID_DOMAIN:
        p = stringprep_nameprep;
        break;
    default:
        p = stringprep_xmpp_resourceprep;
        break;
    }
    rc = stringprep(work, worksz, 0, p);
    if (rc == STRINGPREP_MALLOC_ERROR)
        return MP_ENOMEM;
    if (rc != STRINGPREP_OK)
        return MP_EINVAL; /* prohibited, bidi, or grew past worksz */
    return (int)strlen(work);
}

/* Decode a valid UTF-8 label into UCS-4; false when it has more code points than fit. */
static bool
label_ucs4(const unsigned char *s, size_t len, uint32_t *cp, size_t cap, size_t *n)
{
    size_t i = 0, k = 0;

    while (i < len) {
        unsigned char c = s[i];
        size_t extra = c < 0x80 ? 0 : c < 0xe0 ? 1 : c < 0xf0 ? 2 : 3;
        uint32_t v = extra == 0 ? c : extra == 1 ? c & 0x1f : extra == 2 ? c & 0x0f : c & 0x07;

        if (k == cap)
            return false;
        for (size_t j = 1; j <= extra; j++)
            v = (v << 6) | (s[i + j] & 0x3f);
        cp[k++] = v;
        i += extra + 1;
    }
    *n = k;
    return true;
}

/* Length of a label in its ACE form is what DNS limits to 63 bytes. */
static bool
label_ok(const char *label, size_t len, bool ascii)
{
    uint32_t cp[MP_JID_LABEL_MAX];
    char ace[MP_JID_LABEL_MAX];
    size_t n, acelen = sizeof(ace) - 4;

    if (len == 0)
        return false;
    if (ascii)
        return len <= MP_JID_LABEL_MAX;
    /* Every code point costs at least one byte of punycode output, so more than 63 of
     * them can never fit. */
    if (!label_ucs4((const unsigned char *)label, len, cp, MP_JID_LABEL_MAX, &n))
        return false;
    return punycode_encode(n, cp, NULL, &acelen, ace) == PUNYCODE_SUCCESS;
}

/* Rules applied to a nameprepped (or ASCII-lowercased) domain in buf[0..len), which is
 * NUL-terminated and may be edited in place. Returns the final length or MP_EINVAL. */
static int
domain_check(char *buf, size_t len)
{
    size_t i, start;
    bool ascii = true;

    /* IDNA2003 label separator U+3002 (E3 80 82) becomes '.': same length, no shift. */
    for (i = 0; i + 2 < len; i++) {
        if ((unsigned char)buf[i] == 0xe3 && (unsigned char)buf[i + 1] == 0x80 &&
            (unsigned char)buf[i + 2] == 0x82) {
            memmove(buf + i + 1, buf + i + 3, len - i - 3);
            buf[i] = '.';
            len -= 2;
            buf[len] = '\0';
        }
    }
    if (len > 0 && buf[len - 1] == '.')
        buf[--len] = '\0';
    if (len == 0 || len > MP_JID_PART_MAX)
        return MP_EINVAL;

    if (buf[0] == '[') {
        struct in6_addr a6;

        if (len < 3 || buf[len - 1] != ']' || len - 2 >= INET6_ADDRSTRLEN)
            return MP_EINVAL;
        char tmp[INET6_ADDRSTRLEN];
        memcpy(tmp, buf + 1, len - 2);
        tmp[len - 2] = '\0';
        return inet_pton(AF_INET6, tmp, &a6) == 1 ? (int)len : MP_EINVAL;
    }

    start = 0;
    for (i = 0; i <= len; i++) {
        unsigned char c = (unsigned char)buf[i];

        if (i == len || c == '.') {
            if (!label_ok(buf + start, i - start, ascii))
                return MP_EINVAL;
            start = i + 1;
            ascii = true;
            continue;
        }
        if (c >= 0x80) {
            ascii = false;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return MP_EINVAL; /* uppercase cannot occur: both paths lowercase */
    }
    return (int)len;
}

static bool
is_ascii(const char *in, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)in[i] >= 0x80)
            return false;
    return true;
}

/* Prepare one part; out must hold MP_JID_PART_MAX + 1 bytes. */
static int
prep_part(enum jid_profile prof, const char *in, size_t len, char *out)
{
    char work[MP_JID_RAW_MAX + 1];
    int n;

    if (len > MP_JID_RAW_MAX)
        return MP_EINVAL;
    if (is_ascii(in, len)) {
        /* A domain may carry one trailing dot beyond the limit; domain_check strips it. */
        size_t lim = MP_JID_PART_MAX + (prof == JID_DOMAIN && len > 0 && in[len - 1] == '.');

        if (len > lim)
            return MP_EINVAL;
        if (prof != JID_DOMAIN) {
            n = prep_ascii(prof, in, len, out);
            return n == 0 ? MP_EINVAL : n;
        }
        n = prep_ascii(prof, in, len, work);
    } else {
        n = prep_stringprep(prof, in, len, work, sizeof(work));
    }
    if (n < 0)
        return n;
    if (prof == JID_DOMAIN)
        n = domain_check(work, (size_t)n);
    if (n < 0)
        return n;
    if (n == 0 || n > MP_JID_PART_MAX)
        return MP_EINVAL;
    memcpy(out, work, (size_t)n + 1);
    return n;
}

static int
prep_public(enum jid_profile prof, const char *in, size_t len, char *out, size_t cap)
{
    char tmp[MP_JID_PART_MAX + 1];
    int n;

    if (cap > MP_JID_PART_MAX)
        return prep_part(prof, in, len, out);
    n = prep_part(prof, in, len, tmp);
    if (n < 0)
        return n;
    if ((size_t)n >= cap)
        return MP_ELIMIT; /* a caller's buffer problem, not a bad JID */
    memcpy(out, tmp, (size_t)n + 1);
    return n;
}

int
mp_jid_nodeprep(const char *in, size_t len, char *out, size_t cap)
{
    return prep_public(JID_NODE, in, len, out, cap);
}

int
mp_jid_nameprep(const char *in, size_t len, char *out, size_t cap)
{
    return prep_public(JID_DOMAIN, in, len, out, cap);
}

int
mp_jid_resourceprep(const char *in, size_t len, char *out, size_t cap)
{
    return prep_public(JID_RESOURCE, in, len, out, cap);
}

int
mp_jid_prep(const char *in, size_t len, mp_jid *out)
{
    const char *slash, *at, *dom;
    size_t domlen;
    int n;

    out->node[0] = out->domain[0] = out->resource[0] = '\0';
    out->node_len = out->domain_len = out->resource_len = 0;

    slash = memchr(in, '/', len);
    domlen = slash ? (size_t)(slash - in) : len;
    at = memchr(in, '@', domlen);
    dom = in;
    if (at) {
        n = prep_part(JID_NODE, in, (size_t)(at - in), out->node);
        if (n < 0)
            goto fail;
        out->node_len = (size_t)n;
        dom = at + 1;
        domlen -= (size_t)(dom - in);
    }
    n = prep_part(JID_DOMAIN, dom, domlen, out->domain);
    if (n < 0)
        goto fail;
    out->domain_len = (size_t)n;
    if (slash) {
        n = prep_part(JID_RESOURCE, slash + 1, len - (size_t)(slash + 1 - in), out->resource);
        if (n < 0)
            goto fail;
        out->resource_len = (size_t)n;
    }
    return 0;

fail:
    out->node[0] = out->domain[0] = out->resource[0] = '\0';
    out->node_len = out->domain_len = out->resource_len = 0;
    return n;
}

static int
render(const mp_jid *j, bool full, char *buf, size_t cap)
{
    size_t need = j->domain_len + 1, off = 0;

    if (j->node_len)
        need += j->node_len + 1;
    if (full && j->resource_len)
        need += j->resource_len + 1;
    if (need > cap)
        return MP_ELIMIT;
    if (j->node_len) {
        memcpy(buf, j->node, j->node_len);
        off = j->node_len;
        buf[off++] = '@';
    }
    memcpy(buf + off, j->domain, j->domain_len);
    off += j->domain_len;
    if (full && j->resource_len) {
        buf[off++] = '/';
        memcpy(buf + off, j->resource, j->resource_len);
        off += j->resource_len;
    }
    buf[off] = '\0';
    return (int)off;
}

int
mp_jid_bare(const mp_jid *j, char *buf, size_t cap)
{
    return render(j, false, buf, cap);
}

int
mp_jid_full(const mp_jid *j, char *buf, size_t cap)
{
    return render(j, true, buf, cap);
}
