/* XEP-0313 queries shared by the account archives (modules/mam.c) and the room archives
 * (modules/muc/mam.c). The caller decides who may read which archive; these answer. */
#ifndef MP_MODULES_MAM_QUERY_H
#define MP_MODULES_MAM_QUERY_H

#include "magpie/module.h"

/* Answer a get of <query xmlns='urn:xmpp:mam:2'/> with the query form (§5.1). */
int mp_mam_form_reply(mp_iq *iq);

/* Answer a set of <query/> on the archive of (domain, node): the form's filters (with, start,
 * end, full-text, ids, before-id/after-id), XEP-0059 paging, one result message per item from
 * archive_jid (the archive's JID) to the requester's stream, then <fin/>; or the error the
 * XEP names. Returns what mp_iq_result / mp_iq_error returned. */
int mp_mam_query_reply(mp_iq *iq, const char *domain, const char *node, const char *archive_jid);

#endif
