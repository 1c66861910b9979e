/* Connections per client address, counted across every mux thread of the process (each
 * thread accepts on its own SO_REUSEPORT listener, so no thread sees the whole picture).
 * IPv6 clients are counted per /64: one host usually holds a whole /64, and counting single
 * addresses would let it open as many connections as it likes. IPv4-mapped IPv6 addresses
 * count as the IPv4 address. */
#ifndef MP_MUX_IPLIMIT_H
#define MP_MUX_IPLIMIT_H

#include <stddef.h>

struct sockaddr;

typedef struct mp_iplimit mp_iplimit;

/* The process-wide table, created on the first reference and freed with the last. NULL when
 * out of memory. */
mp_iplimit *mp_iplimit_ref(void);
void mp_iplimit_unref(mp_iplimit *t);

/* A table of its own (tests). */
mp_iplimit *mp_iplimit_new(void);
void mp_iplimit_free(mp_iplimit *t);

/* Count one more connection from addr if the address has fewer than max (0 = no limit).
 * Returns the new count, MP_ELIMIT when the address is at max (not counted; *first_refusal,
 * if given, is set to 1 for the first refusal since the address was last under the limit, so
 * a flood is logged once), MP_EINVAL for an address family other than IPv4/IPv6 (not counted),
 * or MP_ENOMEM. */
int mp_iplimit_acquire(mp_iplimit *t, const struct sockaddr *addr, int max, int *first_refusal);

/* Forget one connection counted by a successful mp_iplimit_acquire of the same address. */
void mp_iplimit_release(mp_iplimit *t, const struct sockaddr *addr);

/* Connections counted for addr (tests, status). */
int mp_iplimit_count(mp_iplimit *t, const struct sockaddr *addr);

#endif
