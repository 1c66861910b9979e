/* libFuzzer target for privacy lists (XEP-0016): the parser of a client's <list/> and the
 * parser of the stored account document, which reads back what the first one accepted.
 *
 * Invariants: a list that parses is written back (mp_privacy_list_xml) as XML that parses to
 * an equivalent list, one that decides every probe stanza the same way; the stored document
 * of an account holding it parses back and serializes to the same bytes (fixed point); and
 * a document that parses (the input read as a stored document) does the same. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/arena.h"
#include "base/buf.h"
#include "base/err.h"
#include "router/privacy.h"
#include "router/subscription.h"
#include "xml/tree.h"
#include "xmpp/jid.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static mp_xml_parser *parser;

/* Peers every list is probed with: full, bare, domain and other-domain JIDs. */
static const char *const peers[] = {"bob@example.com/phone", "bob@example.com",
                                    "example.com",           "carol@other.org/x",
                                    "example.com/r",         "alice@example.com"};

static int
fake_load(mp_privacy_roster *r, void *ud)
{
    static const char *const groups[] = {"Friends", "Work <3"};
    r->sub = *(const int *)ud;
    r->groups = (char **)groups;
    r->ngroups = 2;
    return 0;
}

/* Decisions of l for every kind of stanza, peer and subscription, as bits. */
static uint64_t
decisions(const mp_privacy_list *l)
{
    uint64_t bits = 0;
    int bit = 0;
    for (size_t p = 0; p < sizeof peers / sizeof peers[0]; p++) {
        mp_jid peer;
        if (mp_jid_prep(peers[p], strlen(peers[p]), &peer) < 0)
            __builtin_trap();
        for (int sub = 0; sub < 4; sub += 3) { /* none, both */
            for (int what = MP_PRIV_MESSAGE; what <= MP_PRIV_OTHER; what <<= 1) {
                int s = sub == 3 ? MP_SUB_TO | MP_SUB_FROM : 0;
                mp_privacy_roster r = {.load = fake_load, .ud = &s};
                if (mp_privacy_eval(l, what, &peer, &r))
                    bits |= 1ull << bit;
                bit++;
            }
        }
    }
    return bits;
}

static void
same_items(const mp_privacy_list *a, const mp_privacy_list *b)
{
    if (a->nitems != b->nitems || strcmp(a->name, b->name) != 0 ||
        a->needs_roster != b->needs_roster)
        __builtin_trap();
    for (size_t i = 0; i < a->nitems; i++) {
        const mp_privacy_item *x = &a->items[i], *y = &b->items[i];
        if (x->type != y->type || x->deny != y->deny || x->what != y->what || x->sub != y->sub ||
            x->order != y->order || (x->value == NULL) != (y->value == NULL) ||
            (x->value && strcmp(x->value, y->value) != 0))
            __builtin_trap();
    }
}

/* A document that parsed serializes, parses again and serializes to the same bytes. */
static void
document_fixed_point(const mp_privacy *p)
{
    mp_buf one = {0}, two = {0};
    mp_privacy *q = NULL;
    if (mp_privacy_serialize(p, &one) < 0)
        goto out; /* out of memory only */
    if (mp_privacy_parse(one.data, one.len, &q) < 0)
        __builtin_trap();
    if (mp_privacy_serialize(q, &two) < 0)
        goto out;
    if (one.len != two.len || memcmp(one.data, two.data, one.len) != 0)
        __builtin_trap();
    if ((p->def == NULL) != (q->def == NULL) || (p->def && strcmp(p->def->name, q->def->name)))
        __builtin_trap();
out:
    mp_privacy_free(q);
    mp_buf_free(&one);
    mp_buf_free(&two);
}

static void
fuzz_list(mp_arena *a, const mp_xnode *n)
{
    mp_privacy_list *l = NULL, *again = NULL;
    mp_buf b = {0};
    if (mp_privacy_list_parse(n, &l) < 0)
        return;
    uint64_t d = decisions(l);
    mp_xnode *x = mp_privacy_list_xml(a, l, 1);
    mp_xnode *back = NULL;
    if (!x || mp_xnode_serialize(&b, x, MP_NS_PRIVACY) < 0)
        goto out;
    /* through bytes, as a client would see it and send it again */
    if (mp_xml_parse(parser, a, MP_NS_PRIVACY, b.data, b.len, &back) != 0)
        __builtin_trap();
    if (mp_privacy_list_parse(back, &again) < 0)
        __builtin_trap();
    same_items(l, again);
    if (decisions(again) != d)
        __builtin_trap();
    /* the account document holding it, made the default */
    mp_privacy *p = calloc(1, sizeof *p);
    if (!p)
        goto out;
    p->def = mp_privacy_put(p, l);
    l = NULL;
    document_fixed_point(p);
    mp_privacy_free(p);
out:
    mp_privacy_list_free(l);
    mp_privacy_list_free(again);
    mp_buf_free(&b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!parser && !(parser = mp_xml_parser_new()))
        abort();
    /* as a stored document */
    mp_privacy *p = NULL;
    if (mp_privacy_parse((const char *)data, size, &p) == 0) {
        document_fixed_point(p);
        mp_privacy_free(p);
    }
    /* as what a client sends: a <list/>, alone or inside a <query/> */
    mp_arena arena;
    mp_arena_init(&arena, 4096);
    mp_xnode *n = NULL;
    if (mp_xml_parse(parser, &arena, MP_NS_PRIVACY, (const char *)data, size, &n) == 0) {
        if (strcmp(n->name, "query") == 0)
            n = mp_xnode_child(n, MP_NS_PRIVACY, "list");
        if (n && strcmp(n->name, "list") == 0)
            fuzz_list(&arena, n);
    }
    mp_arena_free(&arena);
    return 0;
}
