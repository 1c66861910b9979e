/* XML escaping for text and attribute values (single-quoted). */
#ifndef MP_XML_ESCAPE_H
#define MP_XML_ESCAPE_H

#include "base/buf.h"

int mp_xml_escape_text(mp_buf *b, const char *s, size_t n);
int mp_xml_escape_attr(mp_buf *b, const char *s, size_t n);

#endif
