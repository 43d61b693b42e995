/*
 * `kanaria validate [DIR] [-c kanaria.yaml] [--json]`: check every app under DIR, the manifests
 * it lists and, when given, the controller config, and print every located problem.
 */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "kanaria/alloc.h"
#include "kanaria/app.h"
#include "kanaria/config.h"
#include "kanaria/validate.h"

struct validate_opts {
    const char *dir;
    const char *config;
    int json;
};

struct validate_run {
    struct validate_opts opts;
    struct kn_config *config;
    struct kn_diags config_diags;
    struct kn_app **apps;
    size_t napps;
    struct kn_diags repo_diags; /* problems across apps (duplicate names) */
    int valid;
};

/* The path as the user can open it: relative paths of the source are under opts.dir. */
static char *display_path(const struct validate_run *run, const char *file)
{
    const char *dir = run->opts.dir;
    size_t n = strlen(dir);

    if (!file) {
        return NULL;
    }
    if (strcmp(dir, ".") == 0 || strcmp(dir, "./") == 0 || file[0] == '/') {
        return kn_strdup(file);
    }
    while (n > 1 && dir[n - 1] == '/') {
        n--;
    }
    return kn_asprintf("%.*s/%s", (int)n, dir, file);
}

static void print_diags(const struct validate_run *run, const struct kn_diags *d, int in_source)
{
    for (size_t i = 0; i < d->count; i++) {
        struct kn_diag shown = d->items[i];
        char *path = in_source ? display_path(run, shown.file) : NULL;
        char line[2048];

        if (path) {
            shown.file = path;
        }
        printf("%s\n", kn_diag_format(&shown, line, sizeof(line)));
        free(path);
    }
    if (d->dropped) {
        printf("... and %zu more\n", d->dropped);
    }
}

static json_t *diags_json(const struct validate_run *run, const struct kn_diags *d,
                          int in_source)
{
    json_t *arr = json_array();

    for (size_t i = 0; i < d->count; i++) {
        const struct kn_diag *x = &d->items[i];
        char *path = in_source ? display_path(run, x->file) : kn_strdup(x->file ? x->file : "");
        json_t *o = json_pack("{s:s, s:s}", "file", path ? path : "", "message", x->msg);
        if (x->line) {
            json_object_set_new(o, "line", json_integer(x->line));
            json_object_set_new(o, "column", json_integer(x->col));
        }
        json_array_append_new(arr, o);
        free(path);
    }
    return arr;
}

static int parse_args(struct validate_opts *o, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;

    memset(o, 0, sizeof(*o));
    o->dir = ".";
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'c':
            o->config = optarg;
            break;
        case 'j':
            o->json = 1;
            break;
        case 'h':
            printf("usage: kanaria validate [DIR] [-c kanaria.yaml] [--json]\n");
            exit(KN_EXIT_OK);
        default:
            return KN_EUSAGE;
        }
    }
    if (argc - optind > 1) {
        fprintf(stderr, "kanaria validate: one folder at most, got %d\n", argc - optind);
        return KN_EUSAGE;
    }
    if (optind < argc) {
        o->dir = argv[optind];
    }
    return 0;
}

/* Two apps with the same name would share a backend and a history: refuse both. */
static void check_unique_names(struct validate_run *run)
{
    struct kn_app_ref *refs = kn_calloc(run->napps ? run->napps : 1, sizeof(*refs));

    for (size_t i = 0; i < run->napps; i++) {
        refs[i].name = run->apps[i]->name;
        refs[i].config_path = run->apps[i]->config_path;
        refs[i].diags = &run->apps[i]->diags;
    }
    kn_app_check_unique_names(refs, run->napps);
    free(refs);
}

static void report_text(const struct validate_run *run)
{
    if (run->opts.config) {
        print_diags(run, &run->config_diags, 0);
        if (run->config_diags.count == 0) {
            printf("ok %s\n", run->opts.config);
        }
    }
    print_diags(run, &run->repo_diags, 0);
    for (size_t i = 0; i < run->napps; i++) {
        const struct kn_app *app = run->apps[i];
        size_t n = kn_diags_total(&app->diags);
        print_diags(run, &app->diags, 1);
        if (n == 0) {
            size_t stages = kn_app_stage_count(app);
            printf("ok %s (%zu stage%s)\n", app->name, stages, stages == 1 ? "" : "s");
        } else {
            printf("invalid %s (%zu error%s)\n", app->name, n, n == 1 ? "" : "s");
        }
    }
}

static void report_json(const struct validate_run *run)
{
    json_t *root = json_object();
    json_t *apps = json_array();
    char *text;

    json_object_set_new(root, "valid", json_boolean(run->valid));
    if (run->opts.config) {
        json_object_set_new(root, "config",
                            json_pack("{s:s, s:b, s:o}", "file", run->opts.config, "valid",
                                      run->config_diags.count == 0, "errors",
                                      diags_json(run, &run->config_diags, 0)));
    }
    json_object_set_new(root, "errors", diags_json(run, &run->repo_diags, 0));
    for (size_t i = 0; i < run->napps; i++) {
        const struct kn_app *app = run->apps[i];
        char *path = display_path(run, app->config_path);
        json_array_append_new(
            apps, json_pack("{s:s, s:s, s:b, s:i, s:s, s:s, s:o}", "name", app->name, "path",
                            path, "valid", app->diags.count == 0, "stages",
                            (int)kn_app_stage_count(app), "platform",
                            app->cfg.spec.platform ? app->cfg.spec.platform : "", "hash",
                            app->hash, "errors", diags_json(run, &app->diags, 1)));
        free(path);
    }
    json_object_set_new(root, "apps", apps);
    text = json_dumps(root, JSON_INDENT(2));
    printf("%s\n", text);
    free(text);
    json_decref(root);
}

int kn_cmd_validate(int argc, char **argv)
{
    struct validate_run run;
    struct kn_source *src = NULL;
    struct kn_error err;
    char **paths = NULL;
    size_t npaths = 0;
    int rc;

    memset(&run, 0, sizeof(run));
    kn_diags_init(&run.config_diags, 0);
    kn_diags_init(&run.repo_diags, 0);
    if (parse_args(&run.opts, argc, argv) < 0) {
        fprintf(stderr, "usage: kanaria validate [DIR] [-c kanaria.yaml] [--json]\n");
        rc = KN_EXIT_USAGE;
        goto out;
    }
    if (run.opts.config) {
        kn_config_load(&run.config, run.opts.config, &run.config_diags);
    }
    kn_error_clear(&err);
    if (kn_source_dir_new(&src, run.opts.dir, &err) < 0) {
        struct kn_loc loc = {.file = run.opts.dir};
        kn_diags_add(&run.repo_diags, &loc, "%s", err.msg);
    } else {
        kn_app_discover(src, &paths, &npaths);
        if (npaths == 0) {
            struct kn_loc loc = {.file = run.opts.dir};
            kn_diags_add(&run.repo_diags, &loc, "no " KN_APP_CONFIG_FILE " found");
        }
    }
    run.apps = kn_calloc(npaths ? npaths : 1, sizeof(*run.apps));
    for (size_t i = 0; i < npaths; i++) {
        kn_validate_app_load(&run.apps[run.napps++], src, paths[i], run.config);
    }
    check_unique_names(&run);
    kn_validate_check_apps(run.apps, run.napps, run.config);
    run.valid = run.config_diags.count == 0 && run.repo_diags.count == 0;
    for (size_t i = 0; i < run.napps; i++) {
        run.valid &= run.apps[i]->diags.count == 0;
    }
    if (run.opts.json) {
        report_json(&run);
    } else {
        report_text(&run);
    }
    rc = run.valid ? KN_EXIT_OK : KN_EXIT_FAILED;
out:
    for (size_t i = 0; i < run.napps; i++) {
        kn_app_free(run.apps[i]);
    }
    free(run.apps);
    for (size_t i = 0; i < npaths; i++) {
        free(paths[i]);
    }
    free(paths);
    kn_source_free(src);
    kn_config_free(run.config);
    kn_diags_release(&run.config_diags);
    kn_diags_release(&run.repo_diags);
    return rc;
}
