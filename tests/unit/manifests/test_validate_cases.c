/*
 * The data-driven validation suite: every tests/data/validate/NAME.case describes a small
 * repository (and optionally a kanaria.yaml) and the exact located messages validation must
 * print for it, in order. An empty `--- expect` section means the input is valid.
 *
 *     # what the case is about
 *     --- file apps/web/app.kanaria.yaml
 *     ...content...
 *     --- config
 *     ...a kanaria.yaml, loaded and used to check names...
 *     --- expect
 *     apps/web/app.kanaria.yaml:9:22: stage 'TRAFFIC_ROUTING': 'canary' must be between 0 and
 *     100, got 150   (on one line)
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kanaria/alloc.h"
#include "kanaria/app.h"
#include "kanaria/config.h"
#include "kanaria/validate.h"
#include "testutil.h"

struct vcase {
    char *path;
    struct kn_buf expect;
    int has_config;
};

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    struct kn_buf b;
    char chunk[4096];
    size_t n;

    if (!f) {
        fail_msg("cannot open %s", path);
    }
    kn_buf_init(&b, KN_BUF_UNBOUNDED);
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        kn_buf_add(&b, chunk, n);
    }
    fclose(f);
    return kn_buf_detach(&b, NULL);
}

/* Write the case's files into dir; returns the expected text (caller frees). */
static char *materialize(const char *case_path, const char *dir, int *has_config)
{
    char *text = slurp(case_path);
    char *save = NULL;
    char *line;
    struct kn_buf content, expect;
    char *target = NULL;
    int in_expect = 0;

    kn_buf_init(&content, KN_BUF_UNBOUNDED);
    kn_buf_init(&expect, KN_BUF_UNBOUNDED);
    *has_config = 0;
    for (line = strtok_r(text, "\n", &save);; line = strtok_r(NULL, "\n", &save)) {
        int header = line && strncmp(line, "--- ", 4) == 0;
        if (!line || header) {
            if (target) {
                kn_test_write(dir, target, content.data ? content.data : "");
                free(target);
                target = NULL;
            }
            kn_buf_reset(&content);
            if (!line) {
                break;
            }
            if (strncmp(line, "--- file ", 9) == 0) {
                target = kn_strdup(line + 9);
            } else if (strcmp(line, "--- config") == 0) {
                target = kn_strdup("kanaria.yaml");
                *has_config = 1;
            } else if (strcmp(line, "--- expect") == 0) {
                in_expect = 1;
            } else {
                fail_msg("%s: unknown section '%s'", case_path, line);
            }
            continue;
        }
        if (in_expect) {
            kn_buf_addf(&expect, "%s\n", line);
        } else if (target) {
            kn_buf_addf(&content, "%s\n", line);
        }
    }
    if (!in_expect) {
        fail_msg("%s: no '--- expect' section", case_path);
    }
    free(text);
    kn_buf_release(&content);
    return kn_buf_detach(&expect, NULL);
}

static void append_diags(struct kn_buf *out, const struct kn_diags *d)
{
    char line[2048];
    for (size_t i = 0; i < d->count; i++) {
        kn_buf_addf(out, "%s\n", kn_diag_format(&d->items[i], line, sizeof(line)));
    }
}

static void run_case(void **state)
{
    const char *case_path = *state;
    char *dir = kn_test_tmpdir();
    char cwd[4096];
    int has_config;
    char *expect = materialize(case_path, dir, &has_config);
    struct kn_buf got;
    struct kn_diags cdiags;
    struct kn_config *cfg = NULL;
    struct kn_source *src = NULL;
    struct kn_error err;
    char **paths = NULL;
    struct kn_app **apps;
    size_t npaths = 0;
    int same;

    assert_non_null(getcwd(cwd, sizeof(cwd)));
    assert_int_equal(chdir(dir), 0);
    kn_buf_init(&got, KN_BUF_UNBOUNDED);
    kn_diags_init(&cdiags, 0);
    if (has_config) {
        kn_config_load(&cfg, "kanaria.yaml", &cdiags);
        append_diags(&got, &cdiags);
    }
    assert_int_equal(kn_source_dir_new(&src, ".", &err), 0);
    assert_int_equal(kn_app_discover(src, &paths, &npaths), 0);
    apps = kn_calloc(npaths + 1, sizeof(*apps));
    for (size_t i = 0; i < npaths; i++) {
        assert_int_equal(kn_validate_app_load(&apps[i], src, paths[i], cfg), 0);
    }
    /* across the apps, as `kanaria validate` checks them */
    kn_validate_check_apps(apps, npaths, cfg);
    for (size_t i = 0; i < npaths; i++) {
        append_diags(&got, &apps[i]->diags);
        kn_app_free(apps[i]);
        free(paths[i]);
    }
    free(apps);
    free(paths);
    kn_source_free(src);
    kn_config_free(cfg);
    kn_diags_release(&cdiags);
    assert_int_equal(chdir(cwd), 0);
    kn_test_rmtree(dir);
    free(dir);
    same = strcmp(got.data ? got.data : "", expect) == 0;
    if (!same) {
        /* in pieces: cmocka cuts one message at about 1 KB */
        print_error("case %s\n--- expected:\n", case_path);
        print_error("%s", expect);
        print_error("--- got:\n");
        print_error("%s", got.data ? got.data : "");
    }
    free(expect);
    kn_buf_release(&got);
    assert_true(same);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(void)
{
    char *dirpath = kn_asprintf("%s/tests/data/validate", kn_test_source_dir());
    DIR *d = opendir(dirpath);
    struct dirent *e;
    char **names = NULL;
    size_t n = 0;
    struct CMUnitTest *tests;
    int rc;

    if (!d) {
        fprintf(stderr, "cannot open %s\n", dirpath);
        return 1;
    }
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len > 5 && strcmp(e->d_name + len - 5, ".case") == 0) {
            names = kn_reallocarray(names, n + 1, sizeof(*names));
            names[n++] = kn_asprintf("%s/%s", dirpath, e->d_name);
        }
    }
    closedir(d);
    qsort(names, n, sizeof(*names), by_name);
    tests = kn_calloc(n ? n : 1, sizeof(*tests));
    for (size_t i = 0; i < n; i++) {
        tests[i].name = strrchr(names[i], '/') + 1;
        tests[i].test_func = run_case;
        tests[i].initial_state = names[i];
    }
    rc = _cmocka_run_group_tests("validate_cases", tests, n, NULL, NULL);
    for (size_t i = 0; i < n; i++) {
        free(names[i]);
    }
    free(names);
    free(tests);
    free(dirpath);
    return rc;
}
