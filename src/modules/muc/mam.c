/* XEP-0313 on a room's JID: the room's archive, kept by room.c while logging is on
 * (muc#roomconfig_enablelogging). Who may read it: its occupants, and the members (admins,
 * owners) of the room, so that a member whose phone slept can catch up before joining again
 * (XEP-0313 §4.1.1 leaves the policy to the service; outcasts never). The query itself, its
 * filters and paging are the account archive's (modules/mam_query.c), with the results sent
 * from the room's JID. */
#include "modules/muc/muc_int.h"
#include "modules/mam_query.h"

#include <string.h>

/* The room, or NULL after answering the error. */
static muc_room *
readable_room(muc_service *svc, mp_iq *iq)
{
    muc_room *room = muc_iq_room(svc, iq);
    if (!room)
        return NULL;
    const char *bare = mp_arena_strndup(iq->arena, iq->from, strcspn(iq->from, "/"));
    if (!bare) {
        mp_iq_error(iq, "wait", "internal-server-error");
        return NULL;
    }
    int affil = muc_affil_of(room, bare);
    if (affil == MUC_OUTCAST || (affil < MUC_MEMBER && !muc_occupant_by_real(room, iq->from))) {
        mp_iq_error(iq, "auth", "forbidden");
        return NULL;
    }
    return room;
}

int
muc_mam_query(mp_iq *iq, void *ud)
{
    muc_room *room = readable_room(ud, iq);
    if (!room)
        return 0;
    return mp_mam_query_reply(iq, room->domain, room->node, room->jid);
}

int
muc_mam_form(mp_iq *iq, void *ud)
{
    if (!readable_room(ud, iq))
        return 0;
    return mp_mam_form_reply(iq);
}
