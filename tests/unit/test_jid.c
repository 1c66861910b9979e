/* JID preparation: RFC 7622 §3.5 examples read through stringprep, profile edge cases,
 * limits, invalid UTF-8, the ASCII fast path against libidn, and rendering. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <stringprep.h>

#include "base/err.h"
#include "xmpp/jid.h"

struct jid_case {
    const char *in;
    size_t len; /* 0: strlen(in) */
    int rc;
    const char *node, *domain, *resource; /* expected when rc == 0; NULL = absent */
};

#define OK(in, n, d, r)                                                                            \
    {                                                                                              \
        in, 0, 0, n, d, r                                                                          \
    }
#define BAD(in)                                                                                    \
    {                                                                                              \
        in, 0, MP_EINVAL, NULL, NULL, NULL                                                         \
    }

static const struct jid_case cases[] = {
    /* RFC 7622 §3.5.1 examples that are valid. */
    OK("juliet@example.com", "juliet", "example.com", NULL),
    OK("juliet@example.com/foo", "juliet", "example.com", "foo"),
    OK("juliet@example.com/foo bar", "juliet", "example.com", "foo bar"),
    OK("juliet@example.com/foo@bar", "juliet", "example.com", "foo@bar"),
    OK("foo\\20bar@example.com", "foo\\20bar", "example.com", NULL),
    OK("fussball@example.com", "fussball", "example.com", NULL),
    /* stringprep case folding (B.2) maps sharp s to "ss", unlike PRECIS. */
    OK("fu\xc3\x9f"
       "ball@example.com",
       "fussball", "example.com", NULL),
    OK("\xcf\x80@example.com", "\xcf\x80", "example.com", NULL),                /* pi */
    OK("\xce\xa3@example.com", "\xcf\x83", "example.com", NULL),                /* Sigma */
    OK("\xcf\x83@example.com", "\xcf\x83", "example.com", NULL),                /* sigma */
    OK("\xcf\x82@example.com", "\xcf\x83", "example.com", NULL),                /* final sigma */
    OK("king@example.com/\xe2\x99\x9a", "king", "example.com", "\xe2\x99\x9a"), /* chess king */
    OK("example.com", NULL, "example.com", NULL),
    OK("example.com/foobar", NULL, "example.com", "foobar"),
    OK("a.example.com/b@example.net", NULL, "a.example.com", "b@example.net"),
    /* §3.5.2 says PRECIS rejects these two; stringprep (what servers deploy) maps the
     * roman numeral through NFKC and allows the symbol. */
    OK("henry\xe2\x85\xa3@example.com", "henryiv", "example.com", NULL),
    OK("\xe2\x99\x9a@example.com", "\xe2\x99\x9a", "example.com", NULL),
    /* §3.5.2 examples that are invalid for stringprep too. */
    BAD("\"juliet\"@example.com"),
    BAD("foo bar@example.com"),
    BAD("juliet@example.com/"),
    BAD("@example.com/"),
    BAD("@example.com"),
    BAD("juliet@"),
    BAD("/foobar"),
    BAD(""),
    /* Split rules: resource is everything after the first '/'. */
    OK("a@b/c/d@e", "a", "b", "c/d@e"),
    OK("example.com/@", NULL, "example.com", "@"),
    BAD("a@b@example.com"),
    /* nodeprep: case folding, prohibited ASCII, non-ASCII space, mapped-to-nothing. */
    OK("JULIET@EXAMPLE.COM/Balcony", "juliet", "example.com", "Balcony"),
    OK("\xc3\x84LICE@example.com", "\xc3\xa4lice", "example.com", NULL), /* ÄLICE -> älice */
    OK("ju\xc2\xadliet@example.com", "juliet", "example.com", NULL),     /* soft hyphen */
    BAD("\xc2\xad@example.com"),                                         /* maps to empty */
    BAD("a&b@example.com"),
    BAD("a'b@example.com"),
    BAD("a:b@example.com"),
    BAD("a<b@example.com"),
    BAD("a>b@example.com"),
    BAD("a\tb@example.com"),
    BAD("a\x7f"
        "b@example.com"),
    BAD("a\xc2\xa0"
        "b@example.com"), /* no-break space, C.1.2 */
    BAD("a\xee\x80\x80"
        "b@example.com"), /* private use, C.3 */
    /* Fullwidth forms fold through NFKC, the fullwidth full stop included. */
    OK("\xef\xbd\x8a\xef\xbd\x95\xef\xbd\x8c\xef\xbd\x89\xef\xbd\x85\xef\xbd\x94@"
       "\xef\xbd\x85\xef\xbd\x98\xef\xbd\x81\xef\xbd\x8d\xef\xbd\x90\xef\xbd\x8c\xef\xbd\x85"
       "\xef\xbc\x8e\xef\xbd\x83\xef\xbd\x8f\xef\xbd\x8d/\xef\xbc\xa2",
       "juliet", "example.com", "B"), /* resourceprep: NFKC, no case folding */
    /* resourceprep: keeps case and ASCII space, refuses controls and non-ASCII spaces. */
    OK("a@b/ Hello World ", "a", "b", " Hello World "),
    OK("a@b/\xf0\x9f\x98\x80", "a", "b", "\xf0\x9f\x98\x80"), /* unassigned in 3.2: allowed */
    BAD("a@b/x\x01y"),
    BAD("a@b/x\x7fy"),
    BAD("a@b/x\xe1\x9a\x80y"), /* ogham space mark, C.1.2 */
    /* NFKC turns the ideographic space into an ASCII one before the C.1.2 check. */
    OK("a@b/x\xe3\x80\x80y", "a", "b", "x y"),
    BAD("x\xe3\x80\x80y@b"),
    BAD("a@b/x\xef\xbf\xbfy"), /* noncharacter U+FFFF */
    /* Bidi (RFC 3454 §6): RandALCat must not mix with LCat and must start and end. */
    OK("\xd7\x90\xd7\x91@example.com", "\xd7\x90\xd7\x91", "example.com", NULL),
    OK("\xd7\x90"
       "1\xd7\x91@example.com",
       "\xd7\x90"
       "1\xd7\x91",
       "example.com", NULL),
    BAD("\xd7\x90"
        "a@example.com"),
    BAD("a\xd7\x90@example.com"),
    BAD("\xd7\x90"
        "1@example.com"),
    BAD("a@b/\xd7\x90x"),
    /* Domains. */
    OK("example.com.", NULL, "example.com", NULL),
    OK("a@example.com./r", "a", "example.com", "r"),
    BAD("example.com.."),
    BAD("."),
    BAD("a..b"),
    BAD(".example.com"),
    OK("pubsub_host.example.com", NULL, "pubsub_host.example.com", NULL),
    OK("127.0.0.1", NULL, "127.0.0.1", NULL),
    OK("a@[::1]/r", "a", "[::1]", "r"),
    OK("[2001:DB8::1]", NULL, "[2001:db8::1]", NULL),
    BAD("[::1"),
    BAD("[]"),
    BAD("[example.com]"),
    BAD("exa mple.com"),
    BAD("example.com:5222"),
    BAD("exa\x01mple.com"),
    OK("M\xc3\x9cNCHEN.de", NULL, "m\xc3\xbcnchen.de", NULL),
    OK("example\xe3\x80\x82" /* ideographic full stop is a label separator */
       "com",
       NULL, "example.com", NULL),
    BAD("exa\xc2\xa0mple.com"),
    /* Invalid UTF-8 in each part. */
    BAD("\xc0\xae@example.com"), /* overlong '.' */
    BAD("a@b/\xc0\xae"),
    BAD("a@exa\xc0\xaemple.com"),
    BAD("\xed\xa0\x80@example.com"), /* surrogate U+D800 */
    BAD("a@b/\xed\xa0\x80"),
    BAD("\xff@example.com"),
    BAD("a@exam\xffple.com"),
    BAD("a@b/\xff"),
    BAD("a@b/x\xe2\x82"),        /* truncated */
    BAD("a@b/\x80"),             /* lone continuation */
    BAD("a@b/\xf4\x90\x80\x80"), /* above U+10FFFF */
    BAD("a@b/\xe0\x80\xaf"),     /* overlong 3-byte */
    {"a\0b@example.com", 15, MP_EINVAL, NULL, NULL, NULL},
    {"a@b/x\0y", 7, MP_EINVAL, NULL, NULL, NULL},
    {"a@exa\0mple.com", 14, MP_EINVAL, NULL, NULL, NULL},
};

static void
expect_part(const char *want, const char *got, size_t gotlen)
{
    if (!want) {
        assert_int_equal(gotlen, 0);
        assert_string_equal(got, "");
        return;
    }
    assert_int_equal(gotlen, strlen(want));
    assert_string_equal(got, want);
}

static void
test_table(void **state)
{
    mp_jid j;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct jid_case *c = &cases[i];
        size_t len = c->len ? c->len : strlen(c->in);
        int rc = mp_jid_prep(c->in, len, &j);

        if (rc != c->rc)
            fail_msg("case %zu \"%s\": rc %d, want %d", i, c->in, rc, c->rc);
        if (rc == 0) {
            expect_part(c->node, j.node, j.node_len);
            expect_part(c->domain, j.domain, j.domain_len);
            expect_part(c->resource, j.resource, j.resource_len);
        } else {
            assert_int_equal(j.node_len + j.domain_len + j.resource_len, 0);
        }
    }
    assert_true(sizeof(cases) / sizeof(cases[0]) >= 40);
}

static char *
repeat(const char *unit, size_t n)
{
    size_t ul = strlen(unit);
    char *s = malloc(ul * n + 1);

    assert_non_null(s);
    for (size_t i = 0; i < n; i++)
        memcpy(s + i * ul, unit, ul);
    s[ul * n] = '\0';
    return s;
}

/* Prepare pre + part + post. */
static int
prep3(mp_jid *j, const char *pre, const char *part, const char *post)
{
    char buf[8192];
    int n = snprintf(buf, sizeof(buf), "%s%s%s", pre, part, post);

    assert_true(n > 0 && (size_t)n < sizeof(buf));
    return mp_jid_prep(buf, (size_t)n, j);
}

/* Domain of exactly n bytes: 63-byte labels joined by dots. */
static char *
long_domain(size_t n)
{
    char *s = malloc(n + 1);

    assert_non_null(s);
    for (size_t i = 0; i < n; i++)
        s[i] = (i % 64 == 63) ? '.' : 'd';
    if (s[n - 1] == '.')
        s[n - 1] = 'e';
    s[n] = '\0';
    return s;
}

static void
test_limits(void **state)
{
    mp_jid j;
    char *p1023 = repeat("x", 1023), *p1024 = repeat("x", 1024);
    char *u1022 = repeat("x", 1020); /* + "\xc3\xa4" = 1022, + 'x' below */
    char *d1023 = long_domain(1023), *d1024 = long_domain(1024);
    char *l63 = repeat("l", 63), *l64 = repeat("l", 64);
    char *ss = repeat("\xc3\x9f", 512); /* 1024 bytes in, 1024 bytes "ss..." out */
    char *shy = repeat("\xc2\xad", 1000);
    char buf[4096];

    assert_int_equal(prep3(&j, "", p1023, "@example.com"), 0);
    assert_int_equal(j.node_len, 1023);
    assert_int_equal(prep3(&j, "", p1024, "@example.com"), MP_EINVAL);
    assert_int_equal(prep3(&j, "a@example.com/", p1023, ""), 0);
    assert_int_equal(j.resource_len, 1023);
    assert_int_equal(prep3(&j, "a@example.com/", p1024, ""), MP_EINVAL);
    assert_int_equal(prep3(&j, "a@", d1023, "/r"), 0);
    assert_int_equal(j.domain_len, 1023);
    assert_int_equal(prep3(&j, "a@", d1023, "./r"), 0); /* trailing dot beyond the limit */
    assert_int_equal(j.domain_len, 1023);
    assert_int_equal(prep3(&j, "a@", d1024, "/r"), MP_EINVAL);

    /* The limit counts prepared bytes, through the stringprep path as well. */
    snprintf(buf, sizeof(buf), "%s\xc3\x84x@example.com", u1022);
    assert_int_equal(mp_jid_prep(buf, strlen(buf), &j), 0);
    assert_int_equal(j.node_len, 1023);
    snprintf(buf, sizeof(buf), "%s\xc3\x84xy@example.com", u1022);
    assert_int_equal(mp_jid_prep(buf, strlen(buf), &j), MP_EINVAL);
    assert_int_equal(prep3(&j, "", ss, "@example.com"), MP_EINVAL); /* grows to 1024 */
    snprintf(buf, sizeof(buf), "%sab@example.com", shy);            /* 2002 bytes in, "ab" out */
    assert_int_equal(mp_jid_prep(buf, strlen(buf), &j), 0);
    assert_string_equal(j.node, "ab");

    /* DNS labels: 63 bytes, counted in ACE form for IDN labels. */
    assert_int_equal(prep3(&j, "", l63, ".example.com"), 0);
    assert_int_equal(prep3(&j, "", l64, ".example.com"), MP_EINVAL);
    free(ss);
    ss = repeat("\xc3\xa4", 20); /* xn--4caaaa... fits */
    assert_int_equal(prep3(&j, "", ss, ".example.com"), 0);
    free(ss);
    ss = repeat("\xc3\xa4", 60); /* 60 code points can't fit 59 punycode bytes */
    assert_int_equal(prep3(&j, "", ss, ".example.com"), MP_EINVAL);
    free(ss);
    ss = repeat("\xc3\xa4", 55); /* punycode is 57 bytes: xn-- makes 61 */
    assert_int_equal(prep3(&j, "", ss, ".example.com"), 0);
    free(ss);
    /* 20 CJK code points far apart: 60 bytes of punycode. */
    ss = strdup("\xe4\xb8\x80\xe5\x87\xa5\xe5\x97\x8a\xe5\xa6\xaf\xe5\xb6\x94\xe6\x85\xb9"
                "\xe6\x95\x9e\xe6\xa5\x83\xe6\xb4\xa8\xe7\x84\x8d\xe7\x93\xb2\xe7\xa3\x97"
                "\xe7\xb2\xbc\xe8\x82\xa1\xe8\x92\x86\xe8\xa1\xab\xe8\xb1\x90\xe9\x80\xb5"
                "\xe9\x90\x9a\xe9\x9f\xbf");
    assert_non_null(ss);
    assert_int_equal(prep3(&j, "", ss, ".example.com"), MP_EINVAL);
    free(ss);
    ss = repeat("\xe4\xb8\xad", 20); /* the same 20 times compresses to 22 bytes */
    assert_int_equal(prep3(&j, "", ss, ".example.com"), 0);
    free(ss);
    ss = repeat("\xe4\xb8\xad", 5);
    assert_int_equal(prep3(&j, "", ss, ".example.com"), 0);

    free(p1023);
    free(p1024);
    free(u1022);
    free(d1023);
    free(d1024);
    free(l63);
    free(l64);
    free(ss);
    free(shy);
}

typedef int (*prep_fn)(const char *, size_t, char *, size_t);

static void
expect_same(prep_fn fn, const char *a, const char *b)
{
    char oa[MP_JID_PART_MAX + 1], ob[MP_JID_PART_MAX + 1];
    int ra = fn(a, strlen(a), oa, sizeof(oa));
    int rb = fn(b, strlen(b), ob, sizeof(ob));

    if (ra != rb)
        fail_msg("\"%s\" -> %d but via stringprep %d", a, ra, rb);
    if (ra >= 0 && strcmp(oa, ob) != 0)
        fail_msg("\"%s\" -> \"%s\" but via stringprep \"%s\"", a, oa, ob);
}

/* libidn itself is the oracle: the fast path must accept exactly what stringprep accepts
 * and produce the same bytes (for domains, our extra rules only ever reject). */
static void
expect_libidn(prep_fn fn, const Stringprep_profile *prof, const char *in)
{
    char ref[256], out[MP_JID_PART_MAX + 1];
    int rc, n;

    assert_true(strlen(in) < sizeof(ref) / 2);
    snprintf(ref, sizeof(ref), "%s", in);
    rc = stringprep(ref, sizeof(ref), 0, prof);
    n = fn(in, strlen(in), out, sizeof(out));
    if (prof == stringprep_nameprep) {
        size_t rl = strlen(ref);

        if (rc == STRINGPREP_OK && rl > 0 && ref[rl - 1] == '.')
            ref[rl - 1] = '\0'; /* the root label we strip */
        if (n >= 0 && rc != STRINGPREP_OK)
            fail_msg("\"%s\": stringprep rc %d, fast path accepted", in, rc);
        if (n >= 0)
            assert_string_equal(out, ref);
        return;
    }
    if ((rc == STRINGPREP_OK) != (n >= 0))
        fail_msg("\"%s\": stringprep rc %d, fast path %d", in, rc, n);
    if (n >= 0)
        assert_string_equal(out, ref);
}

static void
test_fast_path_equals_stringprep(void **state)
{
    /* '#' stands for the character under test. */
    static const char *const tmpl[] = {"#", "a#B", "#Z", "Y#", "##"};
    static const struct {
        prep_fn fn;
        const Stringprep_profile *prof;
    } profiles[] = {
        {mp_jid_nodeprep, stringprep_xmpp_nodeprep},
        {mp_jid_nameprep, stringprep_nameprep},
        {mp_jid_resourceprep, stringprep_xmpp_resourceprep},
    };
    int accepted = 0, rejected = 0;

    for (size_t p = 0; p < 3; p++) {
        for (int c = 1; c < 0x80; c++) {
            for (size_t t = 0; t < sizeof(tmpl) / sizeof(tmpl[0]); t++) {
                char ascii[16], slow[32], out[MP_JID_PART_MAX + 1];

                size_t k;

                for (k = 0; tmpl[t][k]; k++)
                    ascii[k] = tmpl[t][k] == '#' ? (char)c : tmpl[t][k];
                ascii[k] = '\0';
                /* U+00AD maps to nothing in all three profiles and forces stringprep. */
                snprintf(slow, sizeof(slow), "\xc2\xad%s", ascii);
                expect_same(profiles[p].fn, ascii, slow);
                snprintf(slow, sizeof(slow), "%s\xc2\xad", ascii);
                expect_same(profiles[p].fn, ascii, slow);
                expect_libidn(profiles[p].fn, profiles[p].prof, ascii);
                if (profiles[p].fn(ascii, strlen(ascii), out, sizeof(out)) >= 0)
                    accepted++;
                else
                    rejected++;
            }
        }
    }
    /* Both outcomes were exercised. */
    assert_true(accepted > 1000);
    assert_true(rejected > 100);

    /* A whole printable-ASCII string at once, per profile. */
    char all[128], slow[160];
    size_t n = 0;
    for (int c = 0x21; c < 0x7f; c++)
        if (c != '/' && c != '@' && c != '"' && c != '&' && c != '\'' && c != ':' && c != '<' &&
            c != '>')
            all[n++] = (char)c;
    all[n] = '\0';
    snprintf(slow, sizeof(slow), "%s\xc2\xad", all);
    expect_same(mp_jid_nodeprep, all, slow);
    expect_same(mp_jid_resourceprep, all, slow);
    expect_libidn(mp_jid_nodeprep, stringprep_xmpp_nodeprep, all);
    expect_libidn(mp_jid_resourceprep, stringprep_xmpp_resourceprep, all);
}

static void
test_parts(void **state)
{
    char out[8];

    assert_int_equal(mp_jid_nodeprep("JuLiEt", 6, out, sizeof(out)), 6);
    assert_string_equal(out, "juliet");
    assert_int_equal(mp_jid_resourceprep("JuLiEt", 6, out, sizeof(out)), 6);
    assert_string_equal(out, "JuLiEt");
    assert_int_equal(mp_jid_nameprep("Ex.Org.", 7, out, sizeof(out)), 6);
    assert_string_equal(out, "ex.org");
    /* Buffer too small is the caller's limit, not a bad part. */
    assert_int_equal(mp_jid_nodeprep("juliet", 6, out, 6), MP_ELIMIT);
    assert_int_equal(mp_jid_nodeprep("juliet", 6, out, 7), 6);
    assert_int_equal(mp_jid_nodeprep("\xc3\x84lice", 6, out, 6), MP_ELIMIT);
    assert_int_equal(mp_jid_nodeprep("\xc3\x84lice", 6, out, 7), 6);
    assert_string_equal(out, "\xc3\xa4lice");
    assert_int_equal(mp_jid_nodeprep("", 0, out, sizeof(out)), MP_EINVAL);
    assert_int_equal(mp_jid_nameprep("", 0, out, sizeof(out)), MP_EINVAL);
    assert_int_equal(mp_jid_resourceprep("", 0, out, sizeof(out)), MP_EINVAL);
    assert_int_equal(mp_jid_nodeprep("a/b", 3, out, sizeof(out)), MP_EINVAL);
    assert_int_equal(mp_jid_nodeprep("a@b", 3, out, sizeof(out)), MP_EINVAL);
}

static void
test_render(void **state)
{
    mp_jid j;
    char buf[64];
    const char *in = "Juliet@Example.COM/Balcony";

    assert_int_equal(mp_jid_prep(in, strlen(in), &j), 0);
    assert_int_equal(mp_jid_bare(&j, buf, sizeof(buf)), 18);
    assert_string_equal(buf, "juliet@example.com");
    assert_int_equal(mp_jid_full(&j, buf, sizeof(buf)), 26);
    assert_string_equal(buf, "juliet@example.com/Balcony");

    /* Exactly enough room, then one byte short. */
    assert_int_equal(mp_jid_bare(&j, buf, 19), 18);
    assert_int_equal(mp_jid_bare(&j, buf, 18), MP_ELIMIT);
    assert_int_equal(mp_jid_full(&j, buf, 27), 26);
    assert_int_equal(mp_jid_full(&j, buf, 26), MP_ELIMIT);
    assert_int_equal(mp_jid_full(&j, buf, 0), MP_ELIMIT);

    assert_int_equal(mp_jid_prep("example.com/r", 13, &j), 0);
    assert_int_equal(mp_jid_bare(&j, buf, sizeof(buf)), 11);
    assert_string_equal(buf, "example.com");
    assert_int_equal(mp_jid_full(&j, buf, sizeof(buf)), 13);
    assert_string_equal(buf, "example.com/r");
    assert_int_equal(mp_jid_bare(&j, buf, 11), MP_ELIMIT);

    assert_int_equal(mp_jid_prep("a@b", 3, &j), 0);
    assert_int_equal(mp_jid_full(&j, buf, sizeof(buf)), 3);
    assert_string_equal(buf, "a@b");

    /* Rendering a prepared JID and preparing it again is a fixed point. */
    mp_jid k;
    in = "\xc3\x84LICE@M\xc3\x9cNCHEN.de./R\xc3\xa9sum\xc3\xa9";
    assert_int_equal(mp_jid_prep(in, strlen(in), &j), 0);
    int n = mp_jid_full(&j, buf, sizeof(buf));
    assert_true(n > 0);
    assert_string_equal(buf, "\xc3\xa4lice@m\xc3\xbcnchen.de/R\xc3\xa9sum\xc3\xa9");
    assert_int_equal(mp_jid_prep(buf, (size_t)n, &k), 0);
    assert_string_equal(k.node, j.node);
    assert_string_equal(k.domain, j.domain);
    assert_string_equal(k.resource, j.resource);
    assert_int_equal(k.node_len + k.domain_len + k.resource_len,
                     j.node_len + j.domain_len + j.resource_len);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_fast_path_equals_stringprep),
        cmocka_unit_test(test_parts),
        cmocka_unit_test(test_render),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
