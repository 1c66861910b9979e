/* Data forms (XEP-0004) as the modules write them: a field with its attributes and values,
 * built in an arena. One place, so every form the server sends is written the same way. */
#ifndef MP_XMPP_DATAFORM_H
#define MP_XMPP_DATAFORM_H

#include <stddef.h>

#include "base/arena.h"
#include "xml/tree.h"

#define MP_NS_XDATA "jabber:x:data"

/* Append <field var='var' [type=''] [label='']>[<value>value</value>]</field> to x (type, label
 * and value may be NULL). Returns the field, NULL on ENOMEM. */
mp_xnode *mp_form_field(mp_arena *a, mp_xnode *x, const char *var, const char *type,
                        const char *label, const char *value);
/* The same with a value of len bytes (not NUL-terminated). */
mp_xnode *mp_form_field_n(mp_arena *a, mp_xnode *x, const char *var, const char *type,
                          const char *label, const char *value, size_t len);
/* Append one more <value/> to a field (list and jid-multi fields). Returns it, NULL on ENOMEM. */
mp_xnode *mp_form_value(mp_arena *a, mp_xnode *field, const char *value);

#endif
