/* Return codes used across Magpie: 0 on success, a negative MP_E* on failure,
 * MP_AGAIN when the caller must wait for more input. */
#ifndef MP_BASE_ERR_H
#define MP_BASE_ERR_H

#define MP_OK 0
#define MP_AGAIN 1
#define MP_ENOMEM (-1)
#define MP_EINVAL (-2)
#define MP_EIO (-3)
#define MP_ENOTFOUND (-4)
#define MP_EEXIST (-5)
#define MP_ELIMIT (-6)
#define MP_EAUTH (-7)
#define MP_ECLOSED (-8)

const char *mp_strerror(int err);

#endif
