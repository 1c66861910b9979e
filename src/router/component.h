/* Services inside the core (include/magpie/module.h, "Services"): components at
 * "<label>.<host>", stanzas built by services delivered to any JID, IQs the server sends and
 * whose answers it waits for, and the presence and offline hooks. Internal to src/router/. */
#ifndef MP_ROUTER_COMPONENT_H
#define MP_ROUTER_COMPONENT_H

#include <stddef.h>
#include <stdint.h>

struct mp_core;
struct mp_cstream;
struct mp_frame;
struct mp_jid;
struct mp_xnode;

typedef struct mp_component mp_component;

/* The component serving domain, NULL when none (a scan of a handful of names). */
const mp_component *mp_component_find(struct mp_core *core, const char *domain, size_t len);

/* Hand a stanza from a session (or from the core, s NULL) to component c. IQ get/set go to a
 * registered handler when one matches. Returns 0 when handled, MP_ENOTFOUND when the sender
 * should get <service-unavailable/>. */
int mp_component_stanza(struct mp_core *core, const mp_component *c, struct mp_cstream *s,
                        const char *from, size_t from_len, const struct mp_jid *to, int kind,
                        const char *bytes, size_t len);
/* A frame from a session to a component: the same, bouncing what the component refuses. */
void mp_component_route(struct mp_core *core, const mp_component *c, struct mp_cstream *s,
                        const struct mp_frame *f, const struct mp_jid *to);

/* An IQ result or error addressed to the server, an account or a component: when its id is one
 * mp_core_send_iq is waiting for and it comes from the JID asked, the waiter gets it and 1 is
 * returned; otherwise 0. */
int mp_iq_pending_answer(struct mp_core *core, const char *from, size_t from_len, const char *id,
                         size_t id_len, const char *bytes, size_t len);

/* Hooks (callers in presence.c, sm_session.c). */
void mp_hooks_presence(struct mp_core *core, const char *full, const struct mp_xnode *presence,
                       int initial);

/* The value of attribute name in the start tag of the element in bytes (quotes ' or "),
 * unescaped into out (cap bytes, NUL-terminated). Returns its length or -1 when absent or
 * too long. */
int mp_start_tag_attr(const char *bytes, size_t len, const char *name, char *out, size_t cap);

/* Lifecycle: before the modules load; stop answers every waiting IQ with NULL; free after the
 * modules are unloaded. */
int mp_services_init(struct mp_core *core);
void mp_services_stop(struct mp_core *core);
void mp_services_free(struct mp_core *core);

#endif
