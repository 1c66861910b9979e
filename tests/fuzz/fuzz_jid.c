/* libFuzzer target for JID preparation (RFC 7622 stringprep flavour). Invariants: a JID that
 * prepares is a fixed point (preparing its printed form gives the same parts), its bare and
 * full forms fit their lengths, and every part respects the 1023-byte limit. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "xmpp/jid.h"

static mp_jid a, b; /* 3 KiB each: static, not on libFuzzer's stack */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (mp_jid_prep((const char *)data, size, &a) != 0)
        return 0;
    if (a.domain_len == 0 || a.node_len > MP_JID_PART_MAX || a.domain_len > MP_JID_PART_MAX ||
        a.resource_len > MP_JID_PART_MAX)
        abort();
    char full[3 * MP_JID_PART_MAX + 3], bare[2 * MP_JID_PART_MAX + 2];
    int fl = mp_jid_full(&a, full, sizeof full);
    int bl = mp_jid_bare(&a, bare, sizeof bare);
    if (fl <= 0 || bl <= 0 || bl > fl || memcmp(full, bare, (size_t)bl) != 0)
        abort();
    if (mp_jid_prep(full, (size_t)fl, &b) != 0)
        abort();
    if (a.node_len != b.node_len || a.domain_len != b.domain_len ||
        a.resource_len != b.resource_len || memcmp(a.node, b.node, a.node_len) != 0 ||
        memcmp(a.domain, b.domain, a.domain_len) != 0 ||
        memcmp(a.resource, b.resource, a.resource_len) != 0)
        abort();
    return 0;
}
