#include "storage/store.h"
#include "base/config.h"
#include "base/err.h"
#include "base/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* mkdir -p for the directory part of path; private to the server, hence 0700. */
static int
make_parent_dirs(const char *path)
{
    char *dir = strdup(path);
    int rc = 0;

    if (!dir)
        return MP_ENOMEM;
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        goto out;
    *slash = '\0';
    for (char *p = dir + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
            mp_err("storage: cannot create directory %s: %s", dir, strerror(errno));
            rc = MP_EIO;
            goto out;
        }
        *p = c;
        if (c == '\0')
            break;
    }
out:
    free(dir);
    return rc;
}

int
mp_store_open(const struct mp_config *cfg, mp_store **out)
{
    const char *backend = cfg->storage_backend ? cfg->storage_backend : "sqlite";

    *out = NULL;
    if (strcmp(backend, "sqlite") == 0) {
        if (!cfg->sqlite_path || !*cfg->sqlite_path) {
            mp_err("storage: storage.sqlite_path is empty");
            return MP_EINVAL;
        }
        int rc = make_parent_dirs(cfg->sqlite_path);
        if (rc < 0)
            return rc;
        return mp_store_sqlite_open(cfg->sqlite_path, out);
    }
    mp_err("storage: unknown backend \"%s\"", backend);
    return MP_EINVAL;
}

void
mp_store_close(mp_store *st)
{
    if (st)
        st->ops->close(st);
}
