/* Data form fields (XEP-0004 §3.2). */
#include "xmpp/dataform.h"

#include <string.h>

static mp_xnode *
value_n(mp_arena *a, mp_xnode *field, const char *value, size_t len)
{
    mp_xnode *v = mp_xnode_new(a, MP_NS_XDATA, "value");
    if (!v || (len && mp_xnode_set_text(a, v, value, len) < 0))
        return NULL;
    mp_xnode_append(field, v);
    return v;
}

mp_xnode *
mp_form_value(mp_arena *a, mp_xnode *field, const char *value)
{
    return value_n(a, field, value, strlen(value));
}

mp_xnode *
mp_form_field_n(mp_arena *a, mp_xnode *x, const char *var, const char *type, const char *label,
                const char *value, size_t len)
{
    mp_xnode *f = mp_xnode_new(a, MP_NS_XDATA, "field");
    if (!f || mp_xnode_set_attr(a, f, "var", var) < 0 ||
        (type && mp_xnode_set_attr(a, f, "type", type) < 0) ||
        (label && mp_xnode_set_attr(a, f, "label", label) < 0) ||
        (value && !value_n(a, f, value, len)))
        return NULL;
    mp_xnode_append(x, f);
    return f;
}

mp_xnode *
mp_form_field(mp_arena *a, mp_xnode *x, const char *var, const char *type, const char *label,
              const char *value)
{
    return mp_form_field_n(a, x, var, type, label, value, value ? strlen(value) : 0);
}
