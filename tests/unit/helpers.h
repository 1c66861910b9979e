/* Shared by the unit tests: things every storage-backed fixture needs. */
#ifndef MP_TESTS_UNIT_HELPERS_H
#define MP_TESTS_UNIT_HELPERS_H

#include <stdio.h>
#include <unistd.h>

/* Remove an SQLite database with its WAL and shared-memory files. */
static inline void
mp_test_remove_db(const char *path)
{
    char p[512];
    unlink(path);
    snprintf(p, sizeof p, "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", path);
    unlink(p);
}

#endif
