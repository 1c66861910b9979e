/* Cutting the stream XML the core writes into stand-alone elements, for the transports that
 * carry one element per message (WebSocket, RFC 7395) or per body (BOSH, XEP-0206).
 *
 * The input is the core's own serialization, not a client's, so this is a scanner, not a
 * parser: it tracks quotes, comments, CDATA and nesting depth, and checks that the end tag
 * of each top-level element names its start tag. Anything else unexpected is MP_EINVAL. */
#include "mux/http.h"
#include "base/buf.h"
#include "base/err.h"

#include <string.h>

#define NS_STREAMS_DECL " xmlns:stream='http://etherx.jabber.org/streams'"
#define NS_CLIENT_DECL " xmlns='jabber:client'"

static int
is_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

static int
is_name_end(char ch)
{
    return is_space(ch) || ch == '/' || ch == '>';
}

/* Index just past the first occurrence of pat in [i, n), or 0 when there is none. */
static size_t
skip_past(const char *p, size_t i, size_t n, const char *pat)
{
    size_t pl = strlen(pat);
    for (; i + pl <= n; i++)
        if (memcmp(p + i, pat, pl) == 0)
            return i + pl;
    return 0;
}

/* A start tag at p[i] == '<': the index after its '>', *empty set for "/>", the attributes'
 * names checked against xmlns / xmlns:stream. 0 on malformed input. */
static size_t
scan_start_tag(const char *p, size_t i, size_t n, size_t *name_len, int *empty, int *has_xmlns,
               int *has_xmlns_stream)
{
    size_t s = ++i;
    while (i < n && !is_name_end(p[i]) && p[i] != '<' && p[i] != '"' && p[i] != '\'' && p[i] != '=')
        i++;
    if (i == s || i >= n)
        return 0;
    *name_len = i - s;
    *has_xmlns = *has_xmlns_stream = 0;
    for (;;) {
        while (i < n && is_space(p[i]))
            i++;
        if (i >= n)
            return 0;
        if (p[i] == '>') {
            *empty = 0;
            return i + 1;
        }
        if (p[i] == '/') {
            if (i + 1 >= n || p[i + 1] != '>')
                return 0;
            *empty = 1;
            return i + 2;
        }
        size_t a = i;
        while (i < n && !is_space(p[i]) && p[i] != '=' && p[i] != '>' && p[i] != '/' &&
               p[i] != '<' && p[i] != '"' && p[i] != '\'')
            i++;
        size_t alen = i - a;
        if (alen == 0)
            return 0;
        if (alen == 5 && memcmp(p + a, "xmlns", 5) == 0)
            *has_xmlns = 1;
        if (alen == 12 && memcmp(p + a, "xmlns:stream", 12) == 0)
            *has_xmlns_stream = 1;
        while (i < n && is_space(p[i]))
            i++;
        if (i >= n || p[i] != '=')
            return 0;
        i++;
        while (i < n && is_space(p[i]))
            i++;
        if (i >= n || (p[i] != '"' && p[i] != '\''))
            return 0;
        char q = p[i++];
        while (i < n && p[i] != q) {
            if (p[i] == '<')
                return 0;
            i++;
        }
        if (i >= n)
            return 0;
        i++;
        if (i < n && !is_space(p[i]) && p[i] != '>' && p[i] != '/')
            return 0; /* attributes must be separated by white space */
    }
}

/* One whole element starting at p[i] == '<': the index after it, 0 when malformed. */
static size_t
scan_element(const char *p, size_t i, size_t n, size_t *name_len, int *has_xmlns,
             int *has_xmlns_stream, size_t *start_end)
{
    int empty, hx, hs;
    size_t nl;
    size_t j = scan_start_tag(p, i, n, name_len, &empty, has_xmlns, has_xmlns_stream);
    if (!j)
        return 0;
    *start_end = j;
    if (empty)
        return j;
    const char *name = p + i + 1;
    size_t depth = 1;
    while (j < n) {
        if (p[j] != '<') {
            j++;
            continue;
        }
        if (j + 4 <= n && memcmp(p + j, "<!--", 4) == 0) {
            if (!(j = skip_past(p, j + 4, n, "-->")))
                return 0;
        } else if (j + 9 <= n && memcmp(p + j, "<![CDATA[", 9) == 0) {
            if (!(j = skip_past(p, j + 9, n, "]]>")))
                return 0;
        } else if (j + 1 < n && (p[j + 1] == '?' || p[j + 1] == '!')) {
            return 0; /* no PIs or declarations inside a stanza */
        } else if (j + 1 < n && p[j + 1] == '/') {
            size_t s = j + 2, e = s;
            while (e < n && !is_space(p[e]) && p[e] != '>')
                e++;
            size_t k = e;
            while (k < n && is_space(p[k]))
                k++;
            if (k >= n || p[k] != '>' || e == s)
                return 0;
            j = k + 1;
            if (--depth == 0) {
                if (e - s != *name_len || memcmp(p + s, name, *name_len) != 0)
                    return 0;
                return j;
            }
        } else {
            if (!(j = scan_start_tag(p, j, n, &nl, &empty, &hx, &hs)))
                return 0;
            if (!empty)
                depth++;
        }
    }
    return 0;
}

static int
name_is(const char *p, size_t len, const char *name)
{
    return strlen(name) == len && memcmp(p, name, len) == 0;
}

int
mp_http_each_element(const char *xml, size_t n, mp_buf *b, mp_http_element_fn fn, void *ud)
{
    size_t i = 0;
    int rc = 0;
    while (i < n) {
        while (i < n && is_space(xml[i]))
            i++;
        if (i == n)
            break;
        size_t name_len, start_end;
        int has_xmlns, has_xmlns_stream;
        if (xml[i] != '<' ||
            (i + 1 < n && (xml[i + 1] == '/' || xml[i + 1] == '!' || xml[i + 1] == '?'))) {
            rc = MP_EINVAL;
            break;
        }
        size_t end = scan_element(xml, i, n, &name_len, &has_xmlns, &has_xmlns_stream, &start_end);
        if (!end) {
            rc = MP_EINVAL;
            break;
        }
        const char *name = xml + i + 1;
        const char *decl = NULL;
        if (!has_xmlns && (name_is(name, name_len, "message") ||
                           name_is(name, name_len, "presence") || name_is(name, name_len, "iq")))
            decl = NS_CLIENT_DECL;
        else if (!has_xmlns_stream && (name_is(name, name_len, "stream:features") ||
                                       name_is(name, name_len, "stream:error")))
            decl = NS_STREAMS_DECL;
        if (!decl) {
            fn(ud, xml + i, end - i);
        } else {
            /* The declaration goes right after the name: the rest of the element is copied
             * as it is. */
            size_t at = i + 1 + name_len;
            b->len = 0;
            if (mp_buf_append(b, xml + i, at - i) < 0 || mp_buf_puts(b, decl) < 0 ||
                mp_buf_append(b, xml + at, end - at) < 0) {
                rc = MP_ENOMEM;
                break;
            }
            fn(ud, b->data, b->len);
        }
        i = end;
    }
    if (b->cap > 65536)
        mp_buf_free(b); /* one big stanza does not keep its size for the thread's life */
    return rc;
}
