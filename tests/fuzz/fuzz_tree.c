/* libFuzzer target for the stanza tree parser every module reads client XML with. Invariant:
 * a tree that parses serializes to bytes that parse again and serialize to the same bytes
 * (the canonical form is a fixed point), and no input makes the parser misbehave. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/arena.h"
#include "base/buf.h"
#include "xml/tree.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static mp_xml_parser *parser;

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!parser && !(parser = mp_xml_parser_new()))
        abort();
    mp_arena arena;
    mp_arena_init(&arena, 4096);
    mp_buf one = {0}, two = {0};
    mp_xnode *n = NULL, *m = NULL;
    if (mp_xml_parse(parser, &arena, "jabber:client", (const char *)data, size, &n) == 0) {
        if (mp_xnode_serialize(&one, n, "jabber:client") != 0)
            abort();
        if (mp_xml_parse(parser, &arena, "jabber:client", one.data, one.len, &m) != 0)
            abort();
        if (mp_xnode_serialize(&two, m, "jabber:client") != 0)
            abort();
        if (one.len != two.len || memcmp(one.data, two.data, one.len) != 0)
            abort();
    }
    mp_buf_free(&one);
    mp_buf_free(&two);
    mp_arena_free(&arena);
    return 0;
}
