/* XEP-0055 user directory search at the server's JID, over the accounts of the host asked.
 * A query names the username (substring) and vCard fields (XEP-0054: FN, N/GIVEN, N/FAMILY,
 * NICKNAME, EMAIL/USERID), each matched as a case-insensitive substring, all of them at
 * once. Both the legacy fields (<first/>, <last/>, <nick/>, <email/>) and a XEP-0004 form
 * are understood; the answer takes the form of the question.
 *
 * This is a scan of the host's accounts and their stored vCards, fine for thousands of
 * accounts; a directory (LDAP) will answer for large ones. search.max_results caps an
 * answer. */
#include "magpie/module.h"
#include "router/core.h"
#include "storage/store.h"
#include "base/config.h"
#include "base/err.h"
#include "base/log.h"
#include "xmpp/dataform.h"

#include <string.h>

#define NS_SEARCH "jabber:iq:search"
#define NS_XDATA "jabber:x:data"
#define NS_VCARD "vcard-temp"
#define KIND_VCARD "vcard"

/* What one can ask and what an answer shows, in form order. */
enum { F_USER, F_FN, F_FIRST, F_LAST, F_NICK, F_EMAIL, NFIELDS };

static const struct {
    const char *var;    /* form field */
    const char *legacy; /* legacy element, NULL when the legacy form has none */
    const char *label;
} fields[NFIELDS] = {
    {"user", NULL, "Username"},      {"fn", NULL, "Full name"},    {"first", "first", "Given name"},
    {"last", "last", "Family name"}, {"nick", "nick", "Nickname"}, {"email", "email", "E-mail"},
};

#define INSTRUCTIONS                                                                               \
    "Fill in one or more fields to search for users of this server; each matches any part of "     \
    "the value, ignoring case."

typedef struct found {
    const char *node;
    const char *v[NFIELDS]; /* F_USER holds the JID; "" for missing fields */
} found;

typedef struct scan {
    mp_iq *iq;
    const char *want[NFIELDS]; /* NULL: not asked */
    const char **nodes;        /* accounts whose username matches, in iq->arena */
    size_t nnodes, cap;
    int failed;
} scan;

static int
contains(const char *hay, const char *needle)
{
    return hay && strcasestr(hay, needle) != NULL;
}

static mp_xnode *
add_text(mp_arena *a, mp_xnode *parent, const char *ns, const char *name, const char *text)
{
    mp_xnode *n = mp_xnode_new(a, ns, name);
    if (!n || (text && *text && mp_xnode_set_text(a, n, text, strlen(text)) < 0))
        return NULL;
    mp_xnode_append(parent, n);
    return n;
}

/* <field var='var' [type][label]>[<value>text</value>]</field> */
static mp_xnode *
form_new(mp_arena *a, mp_xnode *query, const char *type)
{
    mp_xnode *x = mp_xnode_new(a, NS_XDATA, "x");
    if (!x || mp_xnode_set_attr(a, x, "type", type) < 0)
        return NULL;
    mp_xnode_append(query, x);
    if (!mp_form_field(a, x, "FORM_TYPE", "hidden", NULL, NS_SEARCH))
        return NULL;
    return x;
}

static int
search_get(mp_iq *iq, void *ud)
{
    mp_arena *a = iq->arena;
    mp_xnode *q = mp_xnode_new(a, NS_SEARCH, "query");
    if (!q || !add_text(a, q, NS_SEARCH, "instructions", INSTRUCTIONS))
        return mp_iq_error(iq, "wait", "internal-server-error");
    for (int i = 0; i < NFIELDS; i++)
        if (fields[i].legacy && !add_text(a, q, NS_SEARCH, fields[i].legacy, NULL))
            return mp_iq_error(iq, "wait", "internal-server-error");
    mp_xnode *x = form_new(a, q, "form");
    if (!x || !add_text(a, x, NS_XDATA, "title", "User directory search") ||
        !add_text(a, x, NS_XDATA, "instructions", INSTRUCTIONS))
        return mp_iq_error(iq, "wait", "internal-server-error");
    for (int i = 0; i < NFIELDS; i++)
        if (!mp_form_field(a, x, fields[i].var, "text-single", fields[i].label, NULL))
            return mp_iq_error(iq, "wait", "internal-server-error");
    return mp_iq_result(iq, q);
}

/* ---- reading the question ---- */

static const char *
nonempty(const mp_xnode *n)
{
    return n && n->text_len ? n->text : NULL;
}

/* The submitted form's values into want[]. Returns 0 or MP_EINVAL (a form of another type). */
static int
read_form(const mp_xnode *x, const char **want)
{
    for (const mp_xnode *f = x->children; f; f = f->next) {
        if (strcmp(f->ns, NS_XDATA) != 0 || strcmp(f->name, "field") != 0)
            continue;
        const char *var = mp_xnode_attr(f, "var");
        const char *value = nonempty(mp_xnode_child(f, NS_XDATA, "value"));
        if (!var)
            continue;
        if (strcmp(var, "FORM_TYPE") == 0) {
            if (value && strcmp(value, NS_SEARCH) != 0)
                return MP_EINVAL;
            continue;
        }
        for (int i = 0; i < NFIELDS; i++)
            if (strcmp(var, fields[i].var) == 0)
                want[i] = value;
    }
    return 0;
}

static void
read_legacy(const mp_xnode *q, const char **want)
{
    for (int i = 0; i < NFIELDS; i++)
        if (fields[i].legacy)
            want[i] = nonempty(mp_xnode_child(q, NS_SEARCH, fields[i].legacy));
}

/* ---- the scan ---- */

static int
collect(const char *node, void *ud)
{
    scan *sc = ud;
    if (sc->want[F_USER] && !contains(node, sc->want[F_USER]))
        return 0;
    if (sc->nnodes == sc->cap) {
        size_t cap = sc->cap ? 2 * sc->cap : 64;
        const char **n = mp_arena_alloc(sc->iq->arena, cap * sizeof *n);
        if (!n) {
            sc->failed = MP_ENOMEM;
            return 1;
        }
        if (sc->nnodes)
            memcpy(n, sc->nodes, sc->nnodes * sizeof *n);
        sc->nodes = n;
        sc->cap = cap;
    }
    sc->nodes[sc->nnodes] = mp_arena_strndup(sc->iq->arena, node, strlen(node));
    if (!sc->nodes[sc->nnodes]) {
        sc->failed = MP_ENOMEM;
        return 1;
    }
    sc->nnodes++;
    return 0;
}

static const char *
vtext(const mp_xnode *card, const char *a, const char *b)
{
    const mp_xnode *n = mp_xnode_child(card, NS_VCARD, a);
    if (n && b)
        n = mp_xnode_child(n, NS_VCARD, b);
    return nonempty(n);
}

/* An EMAIL's address: <USERID/> in vcard-temp, some clients put it as the element's text. */
static const char *
email_of(const mp_xnode *e)
{
    const char *v = nonempty(mp_xnode_child(e, NS_VCARD, "USERID"));
    return v ? v : nonempty(e);
}

/* Does the account's vCard match, and what does it show? v[] gets pointers into card. An
 * asked EMAIL matches any of the vCard's addresses and shows that one. */
static int
card_matches(const mp_xnode *card, const char *const *want, const char **v)
{
    if (card) {
        v[F_FN] = vtext(card, "FN", NULL);
        v[F_FIRST] = vtext(card, "N", "GIVEN");
        v[F_LAST] = vtext(card, "N", "FAMILY");
        v[F_NICK] = vtext(card, "NICKNAME", NULL);
        for (const mp_xnode *e = card->children; e; e = e->next) {
            if (strcmp(e->ns, NS_VCARD) != 0 || strcmp(e->name, "EMAIL") != 0 || !email_of(e))
                continue;
            if (!v[F_EMAIL])
                v[F_EMAIL] = email_of(e);
            if (want[F_EMAIL] && contains(email_of(e), want[F_EMAIL])) {
                v[F_EMAIL] = email_of(e);
                break;
            }
        }
    }
    for (int i = F_FN; i < NFIELDS; i++)
        if (want[i] && !contains(v[i], want[i]))
            return 0;
    return 1;
}

/* Load node's vCard into tmp and match it; on a match copy what it shows into *out. Returns
 * 1 (match), 0 (no match) or MP_E*. */
static int
check_account(scan *sc, mp_xml_parser *p, mp_arena *tmp, mp_buf *doc, const char *domain,
              const char *node, found *out)
{
    mp_store *st = mp_core_store(sc->iq->core);
    mp_xnode *card = NULL;
    doc->len = 0;
    int rc = st->ops->blob_get(st, domain, node, KIND_VCARD, "", doc);
    if (rc == 0 && mp_xml_parse(p, tmp, "jabber:client", doc->data, doc->len, &card) < 0) {
        mp_warn("search: the vCard of %s@%s is not well-formed; searched without it", node, domain);
        card = NULL;
    } else if (rc < 0 && rc != MP_ENOTFOUND) {
        return rc;
    }
    const char *v[NFIELDS] = {0};
    if (!card_matches(card, sc->want, v))
        return 0;
    mp_arena *a = sc->iq->arena;
    out->node = node;
    size_t jl = strlen(node) + 1 + strlen(domain);
    char *jid = mp_arena_alloc(a, jl + 1);
    if (!jid)
        return MP_ENOMEM;
    snprintf(jid, jl + 1, "%s@%s", node, domain);
    out->v[F_USER] = jid;
    for (int i = F_FN; i < NFIELDS; i++) {
        out->v[i] = mp_arena_strndup(a, v[i] ? v[i] : "", v[i] ? strlen(v[i]) : 0);
        if (!out->v[i])
            return MP_ENOMEM;
    }
    return 1;
}

static int
vcard_asked(const char *const *want)
{
    for (int i = F_FN; i < NFIELDS; i++)
        if (want[i])
            return 1;
    return 0;
}

/* ---- answering ---- */

static mp_xnode *
legacy_answer(mp_arena *a, const found *res, size_t n)
{
    mp_xnode *q = mp_xnode_new(a, NS_SEARCH, "query");
    if (!q)
        return NULL;
    for (size_t k = 0; k < n; k++) {
        mp_xnode *item = mp_xnode_new(a, NS_SEARCH, "item");
        if (!item || mp_xnode_set_attr(a, item, "jid", res[k].v[F_USER]) < 0)
            return NULL;
        mp_xnode_append(q, item);
        for (int i = 0; i < NFIELDS; i++)
            if (fields[i].legacy && !add_text(a, item, NS_SEARCH, fields[i].legacy, res[k].v[i]))
                return NULL;
    }
    return q;
}

/* XEP-0055 §3.1 example 8: FORM_TYPE, <reported/> naming the columns, one <item/> a row. */
static mp_xnode *
form_answer(mp_arena *a, const found *res, size_t n)
{
    mp_xnode *q = mp_xnode_new(a, NS_SEARCH, "query");
    mp_xnode *x = q ? form_new(a, q, "result") : NULL;
    mp_xnode *rep = mp_xnode_new(a, NS_XDATA, "reported");
    if (!x || !rep)
        return NULL;
    mp_xnode_append(x, rep);
    if (!mp_form_field(a, rep, "jid", "jid-single", "JID", NULL))
        return NULL;
    for (int i = F_FN; i < NFIELDS; i++)
        if (!mp_form_field(a, rep, fields[i].var, "text-single", fields[i].label, NULL))
            return NULL;
    for (size_t k = 0; k < n; k++) {
        mp_xnode *item = mp_xnode_new(a, NS_XDATA, "item");
        if (!item || !mp_form_field(a, item, "jid", NULL, NULL, res[k].v[F_USER]))
            return NULL;
        mp_xnode_append(x, item);
        for (int i = F_FN; i < NFIELDS; i++)
            if (!mp_form_field(a, item, fields[i].var, NULL, NULL, res[k].v[i]))
                return NULL;
    }
    return q;
}

static int
run_scan(scan *sc, const char *domain, found *res, size_t max, size_t *nres)
{
    mp_store *st = mp_core_store(sc->iq->core);
    int rc = st->ops->user_list(st, domain, collect, sc);
    if (rc == 0 && sc->failed)
        rc = sc->failed;
    if (rc < 0)
        return rc;
    mp_xml_parser *p = mp_xml_parser_new();
    if (!p)
        return MP_ENOMEM;
    /* One vCard at a time: a scan must not hold every account's photo. */
    mp_arena tmp;
    mp_arena_init(&tmp, 8192);
    mp_buf doc = {0};
    size_t n = 0;
    for (size_t k = 0; k < sc->nnodes && n < max; k++) {
        rc = check_account(sc, p, &tmp, &doc, domain, sc->nodes[k], &res[n]);
        mp_arena_reset(&tmp);
        if (rc < 0)
            break;
        n += (size_t)rc;
        rc = 0;
    }
    mp_buf_free(&doc);
    mp_arena_free(&tmp);
    mp_xml_parser_free(p);
    *nres = n;
    return rc;
}

static int
search_set(mp_iq *iq, void *ud)
{
    scan sc = {.iq = iq};
    const mp_xnode *x = mp_xnode_child(iq->payload, NS_XDATA, "x");
    if (x && read_form(x, sc.want) < 0)
        return mp_iq_error(iq, "modify", "bad-request");
    if (!x)
        read_legacy(iq->payload, sc.want);
    int asked = 0;
    for (int i = 0; i < NFIELDS; i++)
        asked |= sc.want[i] != NULL;
    /* XEP-0055 §3: a search needs something to search for; listing everyone is not one. */
    if (!asked)
        return mp_iq_error(iq, "modify", "bad-request");
    size_t max = (size_t)mp_core_config(iq->core)->search_max_results;
    found *res = mp_arena_alloc(iq->arena, max * sizeof *res);
    if (!res)
        return mp_iq_error(iq, "wait", "internal-server-error");
    size_t n = 0;
    int rc = run_scan(&sc, iq->to, res, max, &n);
    if (rc < 0) {
        mp_warn("search on %s: %s", iq->to, mp_strerror(rc));
        return mp_iq_error(iq, "wait", "internal-server-error");
    }
    mp_debug("search on %s: %zu accounts scanned%s, %zu found", iq->to, sc.nnodes,
             vcard_asked(sc.want) ? " with vCards" : "", n);
    mp_xnode *q = x ? form_answer(iq->arena, res, n) : legacy_answer(iq->arena, res, n);
    if (!q)
        return mp_iq_error(iq, "wait", "internal-server-error");
    return mp_iq_result(iq, q);
}

static int
search_load(mp_module *m)
{
    int rc = mp_module_feature(m, NS_SEARCH);
    if (rc == 0)
        rc = mp_module_iq(m, MP_IQ_GET, MP_TARGET_HOST, NS_SEARCH, "query", search_get, NULL);
    if (rc == 0)
        rc = mp_module_iq(m, MP_IQ_SET, MP_TARGET_HOST, NS_SEARCH, "query", search_set, NULL);
    return rc;
}

MP_MODULE(search, MP_ABI_1, search_load, NULL);
