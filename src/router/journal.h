/* The in-flight journal: messages a client with stream management (XEP-0198) has been sent
 * and has not acknowledged yet. The sender was acknowledged already, so these live only in
 * memory otherwise: if the server is killed, the journal gives them back at the next start
 * (to offline storage). A local SQLite file of its own (<data_dir>/inflight.db), apart from
 * the storage backend: it is this server's crash log, not anybody's data, and its writes
 * must never wait behind the backend's transactions. Committed without fsync: it survives
 * the process dying (kill -9, a crash), not the machine losing power. Writes are grouped
 * into one transaction until mp_journal_sync. */
#ifndef MP_ROUTER_JOURNAL_H
#define MP_ROUTER_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

typedef struct mp_journal mp_journal;

/* Open or create the journal at path. 0 or MP_EIO / MP_ENOMEM. */
int mp_journal_open(const char *path, mp_journal **out);
void mp_journal_close(mp_journal *j);

/* Record message number seq of session sess, for the account (domain, node). */
int mp_journal_put(mp_journal *j, uint64_t sess, uint64_t seq, const char *domain, const char *node,
                   const char *bytes, size_t len);
/* The client acknowledged everything up to seq: forget those. */
int mp_journal_release(mp_journal *j, uint64_t sess, uint64_t upto);
/* The session handed its queue on (offline storage, another resource): forget it all. */
int mp_journal_drop(mp_journal *j, uint64_t sess);

/* Writes are grouped in a transaction: they are safe once this returns 0. Call it before
 * telling anybody that what was written is safe (an <a/> or <resumed/>), and often. */
int mp_journal_sync(mp_journal *j);

/* Each recorded message, oldest first per session (at start, before any put). cb returning
 * negative stops. Returns the count or MP_E*. Nothing is forgotten: once what cb did with them
 * is safe, mp_journal_clear. */
typedef int (*mp_journal_cb)(const char *domain, const char *node, const char *bytes, size_t len,
                             void *ud);
int mp_journal_recover(mp_journal *j, mp_journal_cb cb, void *ud);
int mp_journal_clear(mp_journal *j);

#endif
