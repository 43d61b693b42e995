/*
 * libFuzzer target: the apps of a repository held in memory, found and loaded as `kanaria
 * validate` does (kn_app_discover, then kn_validate_app_load of each, no controller config).
 *
 * The input is the top app.kanaria.yaml. A line `#file PATH` (a YAML comment, so that seeds
 * stay readable YAML) ends the file before it and starts the file PATH of the repository, e.g.
 *
 *     apiVersion: kanaria.dev/v1
 *     ...
 *     #file svc.yaml
 *     kind: LocalService
 *     ...
 *     #file analysis-templates.yaml
 *     ...
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kanaria/alloc.h"
#include "kanaria/app.h"
#include "kanaria/error.h"
#include "kanaria/schema.h"
#include "kanaria/validate.h"

#define FZ_MAX_FILES 16

struct fz_file {
    char *path;
    const char *data;
    size_t len;
};

struct fz_source {
    struct kn_source base;
    struct fz_file files[FZ_MAX_FILES];
    size_t count;
};

static int fz_read(struct kn_source *src, const char *relpath, struct kn_buf *out,
                   struct kn_error *err)
{
    struct fz_source *s = (struct fz_source *)src;
    char *norm = NULL;
    int rc = 0;

    kn_buf_reset(out);
    if ((rc = kn_source_check_path(relpath, &norm, err)) < 0) {
        goto out;
    }
    for (size_t i = 0; i < s->count; i++) {
        if (strcmp(s->files[i].path, norm) == 0) {
            if (kn_buf_add(out, s->files[i].data, s->files[i].len) < 0) {
                rc = kn_error_set(err, KN_ETOOBIG, NULL, "'%s' is larger than %zu bytes", norm,
                                  out->max);
                goto out;
            }
            rc = kn_buf_add(out, "", 0);
            goto out;
        }
    }
    rc = kn_error_set(err, KN_ENOENT, NULL, "'%s' does not exist", norm);
out:
    free(norm);
    return rc;
}

/* Like a folder's walk, it gives only paths that are already normalized. */
static int fz_walk(struct kn_source *src, kn_source_walk_cb cb, void *data)
{
    struct fz_source *s = (struct fz_source *)src;
    int rc = 0;

    for (size_t i = 0; i < s->count && rc == 0; i++) {
        char *norm = NULL;
        if (kn_source_check_path(s->files[i].path, &norm, NULL) == 0 &&
            strcmp(norm, s->files[i].path) == 0) {
            rc = cb(s->files[i].path, data);
        }
        free(norm);
    }
    return rc;
}

static void fz_free(struct kn_source *src)
{
    (void)src; /* on the stack of the run */
}

static const struct kn_source_ops fz_ops = {.read = fz_read, .walk = fz_walk, .free = fz_free};

/* The next line of data[*pos..len) (without its '\n'); 0 at the end. */
static int fz_line(const char *data, size_t len, size_t *pos, const char **line, size_t *n)
{
    if (*pos >= len) {
        return 0;
    }
    const char *start = data + *pos;
    const char *nl = memchr(start, '\n', len - *pos);
    *line = start;
    *n = nl ? (size_t)(nl - start) : len - *pos;
    *pos += *n + (nl ? 1 : 0);
    return 1;
}

static void fz_split(struct fz_source *s, const char *data, size_t len)
{
    static const char mark[] = "#file ";
    size_t pos = 0, n;
    const char *line;
    struct fz_file *cur = &s->files[0];

    cur->path = kn_strdup(KN_APP_CONFIG_FILE);
    cur->data = data;
    s->count = 1;
    while (fz_line(data, len, &pos, &line, &n)) {
        if (n > sizeof(mark) - 1 && memcmp(line, mark, sizeof(mark) - 1) == 0 &&
            s->count < FZ_MAX_FILES) {
            cur->len = (size_t)(line - cur->data);
            cur = &s->files[s->count++];
            cur->path = kn_strndup(line + sizeof(mark) - 1, n - (sizeof(mark) - 1));
            cur->data = data + pos;
        }
    }
    cur->len = (size_t)(data + len - cur->data);
}

static char fz_name[] = "fuzz";

static void fz_load(struct fz_source *s, const char *config_path)
{
    struct kn_app *app = NULL;
    char line[2048];

    if (kn_validate_app_load(&app, &s->base, config_path, NULL) == 0 && app) {
        /* what `kanaria validate` prints */
        for (size_t i = 0; i < app->diags.count; i++) {
            kn_diag_format(&app->diags.items[i], line, sizeof(line));
        }
        (void)kn_app_stage_count(app);
    }
    kn_app_free(app);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz_source s;
    char **paths = NULL;
    size_t count = 0;

    memset(&s, 0, sizeof(s));
    s.base.ops = &fz_ops;
    s.base.name = fz_name;
    fz_split(&s, (const char *)data, size);
    /* as `kanaria validate` goes: find the apps, then load each */
    if (kn_app_discover(&s.base, &paths, &count) == 0) {
        for (size_t i = 0; i < count; i++) {
            fz_load(&s, paths[i]);
            free(paths[i]);
        }
        free(paths);
    }
    for (size_t i = 0; i < s.count; i++) {
        free(s.files[i].path);
    }
    return 0;
}
