/* libFuzzer target for the SASL server (SCRAM with and without channel binding, PLAIN).
 * The input's first byte picks the mechanism and the channel; the rest is split at NUL bytes
 * into the client's messages, each base64-encoded by the harness so the fuzzer reaches the
 * message parsers (odd selector values send the raw bytes instead, to reach the base64
 * decoder). Invariants: no crash, no leak, an exchange ends in at most a few steps, and it
 * never succeeds: the stored account's password is not guessable from here. */
#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/sasl.h"
#include "auth/scram.h"
#include "base/config.h"
#include "storage/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static mp_config cfg;
static mp_store *store;
static mp_sasl *sasl;
static char *hosts[] = {"localhost"};
static char dbpath[256];

static const char *const mechs[] = {"PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-1-PLUS",
                                    "SCRAM-SHA-256-PLUS"};

static void
cleanup(void)
{
    mp_sasl_free(sasl);
    if (store)
        store->ops->close(store);
    char p[300];
    unlink(dbpath);
    snprintf(p, sizeof p, "%s-wal", dbpath);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", dbpath);
    unlink(p);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    snprintf(dbpath, sizeof dbpath, "/tmp/magpie-fuzz-sasl-%d.db", (int)getpid());
    cfg.hosts = hosts;
    cfg.nhosts = 1;
    cfg.storage_backend = "sqlite";
    cfg.sqlite_path = dbpath;
    cfg.sasl_mechanisms = MP_MECH_PLAIN | MP_MECH_SCRAM_SHA_1 | MP_MECH_SCRAM_SHA_1_PLUS |
                          MP_MECH_SCRAM_SHA_256 | MP_MECH_SCRAM_SHA_256_PLUS;
    cfg.scram_iterations = 4096;
    cfg.tls_required = 1;
    mp_user_cred c;
    unsigned char salt[16];
    memset(salt, 0x5a, sizeof salt);
    if (mp_store_open(&cfg, &store) != 0 || mp_scram_derive("a long secret", salt, 16, 4096, &c) ||
        store->ops->user_put(store, "localhost", "alice", &c, 1) < 0 ||
        mp_sasl_new(store, &cfg, &sasl) != 0)
        abort();
    atexit(cleanup);
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned sel = data[0];
    static const unsigned char exporter[32] = {1, 2, 3};
    static const unsigned char endpoint[32] = {4, 5, 6};
    mp_sasl_channel ch = {.tls = 1};
    if (sel & 0x10) {
        ch.exporter = exporter;
        ch.exporter_len = sizeof exporter;
    }
    if (sel & 0x20) {
        ch.endpoint = endpoint;
        ch.endpoint_len = sizeof endpoint;
    }
    mp_sasl_session *ss = NULL;
    if (mp_sasl_start(sasl, mechs[(sel >> 1) % 5], "localhost", &ch, &ss) != 0)
        return 0;
    int raw = sel & 1;
    const uint8_t *p = data + 1, *end = data + size;
    for (int step = 0; step < 4; step++) {
        const uint8_t *nul = memchr(p, 0, (size_t)(end - p));
        size_t len = nul ? (size_t)(nul - p) : (size_t)(end - p);
        char *in;
        size_t in_len;
        if (raw) {
            in = malloc(len + 1);
            if (!in)
                abort();
            memcpy(in, p, len);
            in_len = len;
        } else {
            in = malloc(4 * (len / 3 + 1) + 1);
            if (!in)
                abort();
            in_len = (size_t)EVP_EncodeBlock((unsigned char *)in, p, (int)len);
        }
        in[in_len] = '\0';
        char *out = NULL;
        int failure = 0;
        int rc = mp_sasl_step(ss, in, in_len, &out, &failure);
        free(in);
        free(out);
        if (rc == MP_SASL_SUCCESS)
            abort(); /* nobody can know the password */
        if (rc == MP_SASL_FAILURE || !nul)
            break;
        p = nul + 1;
    }
    mp_sasl_session_free(ss);
    return 0;
}
