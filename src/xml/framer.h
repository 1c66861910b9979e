/* The stream framer: an expat stream parser that cuts an XMPP stream into top-level
 * elements and re-serializes each into canonical bytes (namespaces made explicit where they
 * differ from the stream's, the client's `from` replaced by the bound JID), extracting
 * to/type/id on the way so the router never re-parses a stanza to route it.
 *
 * It enforces RFC 6120 restricted XML (no DTD, comments, PIs, entities other than the five
 * predefined ones; UTF-8 only) and the limits: bytes per top-level element (checked while the
 * element is still open, so a huge token is refused early), elements per stanza, depth,
 * attributes per element and the length of names and values. */
#ifndef MP_XML_FRAMER_H
#define MP_XML_FRAMER_H

#include <stddef.h>
#include <stdint.h>
#include <expat.h>

#include "base/buf.h"

#define MP_NS_STREAMS "http://etherx.jabber.org/streams"
#define MP_NS_CLIENT "jabber:client"
#define MP_NS_SERVER "jabber:server"

enum mp_el_kind { MP_EL_OTHER = 0, MP_EL_MESSAGE, MP_EL_PRESENCE, MP_EL_IQ };

typedef struct mp_stream_header {
    const char *to, *from, *version, *lang, *id; /* NULL when absent */
} mp_stream_header;

typedef struct mp_element {
    const char *bytes; /* canonical serialization; valid during the callback only */
    size_t len;
    const char *ns;   /* namespace URI ("" for none) */
    const char *name; /* local name */
    int kind;         /* enum mp_el_kind (stanzas in the stream's content namespace) */
    const char *to, *type, *id; /* top-level attributes, NULL when absent */
    size_t to_len, type_len, id_len;
    size_t raw_len; /* bytes of input the element took */
} mp_element;

typedef struct mp_framer_cb {
    /* Return 0 to go on, nonzero to stop parsing (the rest of the input is not consumed). */
    int (*stream_open)(void *ud, const mp_stream_header *h);
    int (*element)(void *ud, const mp_element *el);
    void (*stream_close)(void *ud);
} mp_framer_cb;

typedef struct mp_framer_limits {
    size_t max_element_bytes; /* raw bytes of one top-level element (and of the header) */
    int max_elements;         /* elements in one top-level element, 0 = unlimited */
    int max_depth;            /* nesting below the stream element */
    /* Checked on every element, the stream header included; 0 = unlimited. Expat has parsed
     * the start tag by then, so memory is bounded by max_element_bytes, not by these. */
    int max_attributes;  /* attributes plus namespace declarations on one element */
    size_t max_name_len; /* bytes of an element or attribute local name, or a prefix */
    size_t max_attr_len; /* bytes of one attribute value or namespace URI */
} mp_framer_limits;

typedef struct mp_framer {
    XML_Parser parser;
    const mp_framer_cb *cb;
    void *ud;
    mp_framer_limits lim;
    const char *content_ns; /* "jabber:client" */
    mp_buf out;             /* serialization of the current top-level element */
    char *stamp_from;       /* replaces `from` on stanzas when set */
    size_t stamp_from_len;
    int depth;              /* 0 before the header, 1 inside the stream, 2+ inside an element */
    int elements;           /* elements in the current top-level element */
    int stopped;            /* a callback asked to stop */
    const char *error;      /* stream error condition once failed, NULL otherwise */
    int too_big;            /* the failure was a size limit: add <stanza-too-big/> */
    uint64_t fed;           /* bytes fed since the last reset */
    uint64_t boundary;      /* input offset where the current top-level element began */
    int saw_default_ns;     /* the header declared the content namespace */
    /* unescaped attributes of the top-level element being built (offsets in private state) */
    size_t to_off, to_len, type_off, type_len, id_off, id_len;
    int has_to, has_type, has_id;
    struct framer_priv *priv; /* namespace stack and serializer state */
} mp_framer;

int mp_framer_init(mp_framer *f, const char *content_ns, const mp_framer_limits *lim,
                   const mp_framer_cb *cb, void *ud);
void mp_framer_free(mp_framer *f);

/* Start a new stream (after STARTTLS or SASL success): a fresh parser, limits kept. May be
 * called from a callback: the parse then stops at the end of that element and the feed returns
 * MP_AGAIN. Never call mp_framer_free or mp_framer_feed from a callback. */
int mp_framer_reset(mp_framer *f);

void mp_framer_set_limits(mp_framer *f, const mp_framer_limits *lim);
int mp_framer_set_from(mp_framer *f, const char *from, size_t len); /* NULL clears */

/* Free the expat parser (about 10 KiB) of a stream that rests between top-level elements with
 * nothing pending; the next feed rebuilds it by replaying the client's stream start tag.
 * Returns 1 when the parser was freed, 0 when the stream is not at rest (nothing changes). */
int mp_framer_hibernate(mp_framer *f);

/* Feed bytes. Returns 0 when all were consumed, MP_AGAIN when a callback stopped the parse
 * (*consumed says how many bytes were used, up to the end of that element; feeding again needs
 * mp_framer_reset first), or MP_EINVAL on a stream error (mp_framer_error names the RFC 6120
 * condition; further feeds return MP_EINVAL). */
int mp_framer_feed(mp_framer *f, const char *data, size_t len, size_t *consumed);

static inline const char *
mp_framer_error(const mp_framer *f)
{
    return f->error;
}

/* Bytes of memory held besides the struct (for accounting). */
size_t mp_framer_memory(const mp_framer *f);

#endif
