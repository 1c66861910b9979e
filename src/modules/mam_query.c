/* XEP-0313 queries, shared by the account archives (modules/mam.c) and the room archives
 * (modules/muc/mam.c): the query form, the filters, XEP-0059 paging and the results. */
#include "modules/mam_query.h"
#include "router/archive.h"
#include "router/core.h"
#include "storage/store.h"
#include "xmpp/datetime.h"
#include "xmpp/jid.h"
#include "base/config.h"
#include "base/err.h"
#include "base/log.h"
#include "xmpp/dataform.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NS_DATA "jabber:x:data"
#define FULLTEXT_VAR "{" MP_NS_FULLTEXT "}fulltext"
#define IDS_MAX 100 /* archive ids one query may name */

static mp_xnode *
child_text(mp_arena *a, mp_xnode *parent, const char *ns, const char *name, const char *text)
{
    mp_xnode *n = mp_xnode_new(a, ns, name);
    if (!n || (text && mp_xnode_set_text(a, n, text, strlen(text)) < 0))
        return NULL;
    mp_xnode_append(parent, n);
    return n;
}

/* ---- the query form (§5.1) ---- */

int
mp_mam_form_reply(mp_iq *iq)
{
    static const char *const fields[][2] = {
        {"with", "jid-single"},        {"start", "text-single"},     {"end", "text-single"},
        {FULLTEXT_VAR, "text-single"}, {"before-id", "text-single"}, {"after-id", "text-single"},
        {"ids", "list-multi"},
    };
    mp_arena *a = iq->arena;
    mp_xnode *q = mp_xnode_new(a, MP_NS_MAM, "query");
    mp_xnode *x = mp_xnode_new(a, NS_DATA, "x");
    if (!q || !x || mp_xnode_set_attr(a, x, "type", "form") < 0 ||
        !mp_form_field(a, x, "FORM_TYPE", "hidden", NULL, MP_NS_MAM))
        return mp_iq_error(iq, "wait", "internal-server-error");
    mp_xnode_append(q, x);
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        if (!mp_form_field(a, x, fields[i][0], fields[i][1], NULL, NULL))
            return mp_iq_error(iq, "wait", "internal-server-error");
    return mp_iq_result(iq, q);
}

/* ---- queries (§4) ---- */

typedef struct query {
    mp_archive_query q;
    char with_buf[3 * MP_JID_PART_MAX + 3];
    const char *ids[IDS_MAX];
    size_t nids;
    int has_ids;
} query;

static const char *
value_of(const mp_xnode *field)
{
    const mp_xnode *v = mp_xnode_child(field, NS_DATA, "value");
    return v ? v->text : NULL;
}

/* The filters of the data form: MP_EINVAL for anything malformed or unknown (bad-request). */
static int
parse_form(const mp_xnode *x, query *qr)
{
    const char *type = mp_xnode_attr(x, "type");
    if (type && strcmp(type, "submit") != 0)
        return MP_EINVAL;
    for (const mp_xnode *f = x->children; f; f = f->next) {
        if (strcmp(f->ns, NS_DATA) != 0 || strcmp(f->name, "field") != 0)
            continue;
        const char *var = mp_xnode_attr(f, "var");
        const char *val = value_of(f);
        if (!var)
            return MP_EINVAL;
        if (strcmp(var, "ids") == 0) {
            qr->has_ids = 1;
            for (const mp_xnode *v = f->children; v; v = v->next) {
                if (strcmp(v->ns, NS_DATA) != 0 || strcmp(v->name, "value") != 0)
                    continue;
                if (qr->nids == IDS_MAX)
                    return MP_EINVAL;
                qr->ids[qr->nids++] = v->text;
            }
            continue;
        }
        if (!val)
            return MP_EINVAL;
        if (strcmp(var, "FORM_TYPE") == 0) {
            if (strcmp(val, MP_NS_MAM) != 0)
                return MP_EINVAL;
        } else if (strcmp(var, "with") == 0) {
            mp_jid j;
            if (mp_jid_prep(val, strlen(val), &j) < 0 ||
                mp_jid_bare(&j, qr->with_buf, sizeof qr->with_buf) < 0)
                return MP_EINVAL;
            qr->q.with_jid = qr->with_buf;
            if (j.resource_len) {
                /* the resource goes after the bare JID's NUL in the same buffer */
                size_t bl = strlen(qr->with_buf);
                if (bl + 1 + j.resource_len + 1 > sizeof qr->with_buf)
                    return MP_EINVAL;
                memcpy(qr->with_buf + bl + 1, j.resource, j.resource_len + 1);
                qr->q.with_resource = qr->with_buf + bl + 1;
            }
        } else if (strcmp(var, "start") == 0) {
            if (mp_datetime_parse(val, &qr->q.start) < 0)
                return MP_EINVAL;
            qr->q.has_start = 1;
        } else if (strcmp(var, "end") == 0) {
            if (mp_datetime_parse(val, &qr->q.end) < 0)
                return MP_EINVAL;
            qr->q.has_end = 1;
        } else if (strcmp(var, FULLTEXT_VAR) == 0 || strcmp(var, "fulltext") == 0 ||
                   strcmp(var, "withtext") == 0) {
            qr->q.fulltext = val;
        } else if (strcmp(var, "after-id") == 0) {
            qr->q.after_id = val;
        } else if (strcmp(var, "before-id") == 0) {
            qr->q.before_id = val;
        } else {
            return MP_EINVAL; /* a filter we do not know cannot be ignored */
        }
    }
    return 0;
}

/* XEP-0059 <set/>: max, after, before (empty: the last page). index is not supported. */
static int
parse_set(const mp_xnode *set, query *qr, int64_t page_max)
{
    qr->q.limit = page_max;
    if (!set)
        return 0;
    for (const mp_xnode *c = set->children; c; c = c->next) {
        if (strcmp(c->ns, MP_NS_RSM) != 0)
            continue;
        if (strcmp(c->name, "max") == 0) {
            char *end;
            long long n = strtoll(c->text, &end, 10);
            if (!c->text[0] || *end || n < 0)
                return MP_EINVAL;
            qr->q.limit = n < page_max ? n : page_max;
        } else if (strcmp(c->name, "after") == 0) {
            if (qr->q.after_id || !c->text[0])
                return MP_EINVAL;
            qr->q.after_id = c->text;
        } else if (strcmp(c->name, "before") == 0) {
            if (qr->q.before_id)
                return MP_EINVAL;
            qr->q.before_id = c->text;
        } else if (strcmp(c->name, "index") == 0) {
            return MP_ENOTFOUND; /* feature-not-implemented */
        }
    }
    return 0;
}

typedef struct sender {
    mp_iq *iq;
    const char *owner; /* bare JID, the results' from */
    const char *queryid;
    mp_buf out;
} sender;

static int
send_item(const mp_archive_item *it, void *ud)
{
    sender *sd = ud;
    sd->out.len = 0;
    if (mp_archive_result(&sd->out, sd->iq->from, sd->owner, sd->queryid, it->id, it->stamp,
                          it->stanza, it->len) < 0)
        return MP_ENOMEM;
    mp_archive_send(sd->iq->core, sd->iq->conn, sd->out.data, sd->out.len);
    return 0;
}

/* <fin complete=''><set><first/><last/><count/></set></fin> */
static int
fin_reply(mp_iq *iq, const char *queryid, const mp_archive_page *pg)
{
    mp_arena *a = iq->arena;
    char count[24];
    mp_xnode *fin = mp_xnode_new(a, MP_NS_MAM, "fin");
    mp_xnode *set = mp_xnode_new(a, MP_NS_RSM, "set");
    if (!fin || !set ||
        mp_xnode_set_attr(a, fin, "complete", pg->complete ? "true" : "false") < 0 ||
        (queryid && mp_xnode_set_attr(a, fin, "queryid", queryid) < 0))
        return mp_iq_error(iq, "wait", "internal-server-error");
    mp_xnode_append(fin, set);
    if (pg->n && (!child_text(a, set, MP_NS_RSM, "first", pg->first) ||
                  !child_text(a, set, MP_NS_RSM, "last", pg->last)))
        return mp_iq_error(iq, "wait", "internal-server-error");
    if (pg->count >= 0) {
        snprintf(count, sizeof count, "%" PRId64, pg->count);
        if (!child_text(a, set, MP_NS_RSM, "count", count))
            return mp_iq_error(iq, "wait", "internal-server-error");
    }
    return mp_iq_result(iq, fin);
}

/* The 'ids' field: those items, in the order named; any unknown id is item-not-found. */
static int
query_ids(mp_iq *iq, const char *node, const char *domain, query *qr, sender *sd)
{
    mp_store *st = mp_core_store(iq->core);
    mp_archive_page pg = {.complete = 1, .count = (int64_t)qr->nids};
    for (size_t i = 0; i < qr->nids; i++) {
        int rc = st->ops->archive_get_by_id(st, domain, node, qr->ids[i], send_item, sd);
        if (rc == MP_ENOTFOUND)
            return mp_iq_error(iq, "cancel", "item-not-found");
        if (rc < 0)
            return mp_iq_error(iq, "wait", "internal-server-error");
        if (pg.n++ == 0)
            snprintf(pg.first, sizeof pg.first, "%s", qr->ids[i]);
        snprintf(pg.last, sizeof pg.last, "%s", qr->ids[i]);
    }
    return fin_reply(iq, sd->queryid, &pg);
}

int
mp_mam_query_reply(mp_iq *iq, const char *domain, const char *node, const char *archive_jid)
{
    mp_core *core = iq->core;
    const mp_config *cfg = mp_core_config(core);
    query *qr = mp_arena_alloc(iq->arena, sizeof *qr);
    if (!qr)
        return mp_iq_error(iq, "wait", "internal-server-error");
    memset(qr, 0, sizeof *qr);
    const mp_xnode *x = mp_xnode_child(iq->payload, NS_DATA, "x");
    int rc = x ? parse_form(x, qr) : 0;
    if (rc == 0)
        rc = parse_set(mp_xnode_child(iq->payload, MP_NS_RSM, "set"), qr, cfg->mam_max_page_size);
    if (rc == MP_ENOTFOUND)
        return mp_iq_error(iq, "cancel", "feature-not-implemented");
    if (rc < 0 || (qr->has_ids && (qr->q.with_jid || qr->q.has_start || qr->q.has_end ||
                                   qr->q.fulltext || qr->q.after_id || qr->q.before_id)))
        return mp_iq_error(iq, "modify", "bad-request");
    qr->q.want_count = 1;

    sender sd = {.iq = iq, .owner = archive_jid, .queryid = mp_xnode_attr(iq->payload, "queryid")};
    /* The batch commits first: a long read does not hold the write transaction open. */
    mp_archive_flush(core);
    if (qr->has_ids) {
        rc = query_ids(iq, node, domain, qr, &sd);
        mp_buf_free(&sd.out);
        return rc;
    }
    mp_store *st = mp_core_store(core);
    mp_archive_page pg;
    rc = st->ops->archive_query(st, domain, node, &qr->q, send_item, &sd, &pg);
    mp_buf_free(&sd.out);
    switch (rc) {
    case 0:
        mp_debug("archive of %s@%s: query sent %zu of %" PRId64, node, domain, pg.n, pg.count);
        return fin_reply(iq, sd.queryid, &pg);
    case MP_ENOTFOUND: /* an after/before id that is not in this archive */
        return mp_iq_error(iq, "cancel", "item-not-found");
    case MP_EINVAL:
    case MP_ELIMIT:
        return mp_iq_error(iq, "modify", "bad-request");
    default:
        return mp_iq_error(iq, "wait", "internal-server-error");
    }
}
