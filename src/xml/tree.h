/* Element trees, built only when a module needs a stanza's content (the router routes on the
 * framer's attributes). Trees live in an arena; parsing reuses one expat parser. */
#ifndef MP_XML_TREE_H
#define MP_XML_TREE_H

#include <stddef.h>
#include "base/arena.h"
#include "base/buf.h"

typedef struct mp_xattr {
    const char *name;  /* local name; "xml:lang" for the xml namespace; "uri\1local" otherwise */
    const char *value; /* unescaped */
} mp_xattr;

typedef struct mp_xnode {
    const char *name; /* local name */
    const char *ns;   /* namespace URI, "" for none */
    mp_xattr *attrs;
    int nattrs;
    struct mp_xnode *parent, *children, *next; /* children in document order */
    char *text;     /* all direct character data concatenated, unescaped ("" if none) */
    size_t text_len;
} mp_xnode;

typedef struct mp_xml_parser mp_xml_parser; /* reusable parser: one per thread */

mp_xml_parser *mp_xml_parser_new(void);
void mp_xml_parser_free(mp_xml_parser *p);

/* Parse one element given as canonical bytes (as the framer emits them: default namespace
 * content_ns inherited). Nodes are allocated in a. Returns 0, MP_EINVAL (not well-formed),
 * or MP_ENOMEM. */
int mp_xml_parse(mp_xml_parser *p, mp_arena *a, const char *content_ns, const char *bytes,
                 size_t len, mp_xnode **out);

const char *mp_xnode_attr(const mp_xnode *n, const char *name); /* NULL when absent */
/* First child with that namespace (NULL = any) and local name (NULL = any). */
mp_xnode *mp_xnode_child(const mp_xnode *n, const char *ns, const char *name);

/* Serialize n (with its subtree) as canonical XML, declaring xmlns where n's namespace
 * differs from parent_ns. Returns 0 or MP_ENOMEM. */
int mp_xnode_serialize(mp_buf *b, const mp_xnode *n, const char *parent_ns);

/* Building trees for replies. */
mp_xnode *mp_xnode_new(mp_arena *a, const char *ns, const char *name);
int mp_xnode_set_attr(mp_arena *a, mp_xnode *n, const char *name, const char *value);
int mp_xnode_set_text(mp_arena *a, mp_xnode *n, const char *text, size_t len);
void mp_xnode_append(mp_xnode *parent, mp_xnode *child);

#endif
