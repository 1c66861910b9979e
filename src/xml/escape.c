#include "xml/escape.h"
#include "base/err.h"

/* Runs of plain bytes are copied in one go; only the few special bytes are expanded. */
static int
escape(mp_buf *b, const char *s, size_t n, int attr)
{
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        const char *rep = NULL;
        switch (s[i]) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '\r': rep = "&#13;"; break;
        case '\'': rep = attr ? "&apos;" : NULL; break;
        case '"': rep = attr ? "&quot;" : NULL; break;
        case '\n': rep = attr ? "&#10;" : NULL; break;
        case '\t': rep = attr ? "&#9;" : NULL; break;
        default: break;
        }
        if (!rep)
            continue;
        if (mp_buf_append(b, s + run, i - run) < 0 || mp_buf_puts(b, rep) < 0)
            return MP_ENOMEM;
        run = i + 1;
    }
    return mp_buf_append(b, s + run, n - run);
}

int
mp_xml_escape_text(mp_buf *b, const char *s, size_t n)
{
    return escape(b, s, n, 0);
}

int
mp_xml_escape_attr(mp_buf *b, const char *s, size_t n)
{
    return escape(b, s, n, 1);
}
