/*
 * `kanaria plan [REPO] [--from REV] [--to REV] [-c kanaria.yaml] [--json]`: the offline preview
 * of what a change would deploy, read straight from the commits (no checkout): for each app the
 * change touches, QUICK_SYNC or PIPELINE with the summary and the manifest diff. Apps the change
 * does not touch are listed as such; invalid apps show their errors and make the exit code 1.
 */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "git/git.h"
#include "kanaria/alloc.h"
#include "kanaria/app.h"
#include "kanaria/config.h"
#include "planner.h"

struct plan_opts {
    const char *repo;
    const char *from;
    const char *to;
    const char *config;
    int json;
};

struct app_result {
    struct kn_app *app;
    int touched;
    int has_plan;
    struct kn_plan plan;
};

static int parse_args(struct plan_opts *o, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"from", required_argument, NULL, 'f'}, {"to", required_argument, NULL, 't'},
        {"config", required_argument, NULL, 'c'}, {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},       {NULL, 0, NULL, 0},
    };
    int c;

    memset(o, 0, sizeof(*o));
    o->repo = ".";
    o->to = "HEAD";
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'f':
            o->from = optarg;
            break;
        case 't':
            o->to = optarg;
            break;
        case 'c':
            o->config = optarg;
            break;
        case 'j':
            o->json = 1;
            break;
        case 'h':
            printf("usage: kanaria plan [REPO] [--from REV] [--to REV] [-c kanaria.yaml] "
                   "[--json]\n");
            exit(KN_EXIT_OK);
        default:
            return KN_EUSAGE;
        }
    }
    if (argc - optind > 1) {
        fprintf(stderr, "kanaria plan: one repository at most, got %d\n", argc - optind);
        return KN_EUSAGE;
    }
    if (optind < argc) {
        o->repo = argv[optind];
    }
    return 0;
}

/* The app at `from`, when it was there and valid: its manifests are what was deployed. */
static const json_t *deployed_manifests(struct kn_source *from_src, const char *config_path,
                                        const struct kn_config *cfg, struct kn_app **keep)
{
    struct kn_app *old = NULL;

    *keep = NULL;
    if (!from_src) {
        return NULL;
    }
    kn_app_load(&old, from_src, config_path, cfg);
    if (old->diags.count > 0) {
        kn_app_free(old);
        return NULL;
    }
    *keep = old;
    return old->manifests;
}

static void print_text(const struct app_result *r, size_t n, const char *range,
                       const struct kn_git_commit_info *info)
{
    printf("plan %s: %s\n", range, info->summary);
    for (size_t i = 0; i < n; i++) {
        const struct kn_app *app = r[i].app;
        if (app->diags.count > 0) {
            char line[2048];
            printf("%s: invalid at this commit, not deployed\n", app->name);
            for (size_t j = 0; j < app->diags.count; j++) {
                printf("    %s\n", kn_diag_format(&app->diags.items[j], line, sizeof(line)));
            }
            continue;
        }
        if (!r[i].touched) {
            printf("%s: not touched by the change\n", app->name);
            continue;
        }
        printf("%s: %s  %s\n", app->name, kn_plan_strategy_name(r[i].plan.strategy),
               r[i].plan.summary);
        if (r[i].plan.strategy != KN_PLAN_NONE) {
            char *diff = kn_diff_format(&r[i].plan.diff);
            /* indent the diff under the app */
            for (char *line = strtok(diff, "\n"); line; line = strtok(NULL, "\n")) {
                printf("    %s\n", line);
            }
            free(diff);
        }
    }
}

static json_t *result_json(const struct app_result *r)
{
    const struct kn_app *app = r->app;
    json_t *o = json_pack("{s:s, s:s, s:b, s:b}", "name", app->name, "path", app->config_path,
                          "valid", app->diags.count == 0, "touched", r->touched);
    json_t *errors = json_array();

    for (size_t j = 0; j < app->diags.count; j++) {
        const struct kn_diag *d = &app->diags.items[j];
        json_array_append_new(errors, json_pack("{s:s, s:i, s:i, s:s}", "file",
                                                d->file ? d->file : "", "line", (int)d->line,
                                                "column", (int)d->col, "message", d->msg));
    }
    json_object_set_new(o, "errors", errors);
    if (r->has_plan) {
        json_object_set_new(o, "strategy",
                            json_string(kn_plan_strategy_name(r->plan.strategy)));
        json_object_set_new(o, "summary", json_string(r->plan.summary));
        json_object_set_new(o, "diff", kn_diff_to_json(&r->plan.diff));
    }
    return o;
}

int kn_cmd_plan(int argc, char **argv)
{
    struct plan_opts o;
    struct kn_error err;
    struct kn_diags cdiags;
    struct kn_config *cfg = NULL;
    git_repository *repo = NULL;
    git_oid to, from;
    int has_from = 0;
    struct kn_git_commit_info info;
    struct kn_source *to_src = NULL, *from_src = NULL;
    struct kn_strlist changed = {0};
    char **paths = NULL;
    size_t npaths = 0;
    struct app_result *results = NULL;
    char range[128];
    int rc = KN_EXIT_FAILED;
    int valid = 1;

    memset(&info, 0, sizeof(info));
    kn_diags_init(&cdiags, 0);
    kn_error_clear(&err);
    if (parse_args(&o, argc, argv) < 0) {
        fprintf(stderr, "usage: kanaria plan [REPO] [--from REV] [--to REV] [-c kanaria.yaml] "
                        "[--json]\n");
        rc = KN_EXIT_USAGE;
        goto out;
    }
    if (o.config && kn_config_load(&cfg, o.config, &cdiags) < 0) {
        char line[2048];
        for (size_t i = 0; i < cdiags.count; i++) {
            fprintf(stderr, "%s\n", kn_diag_format(&cdiags.items[i], line, sizeof(line)));
        }
        goto out;
    }
    if (kn_git_open(&repo, o.repo, &err) < 0 || kn_git_resolve(repo, o.to, &to, &err) < 0 ||
        kn_git_commit_info(repo, &to, &info, &err) < 0) {
        goto fail;
    }
    if (o.from) {
        if (kn_git_resolve(repo, o.from, &from, &err) < 0) {
            goto fail;
        }
        has_from = 1;
    } else {
        git_commit *c = NULL;
        if (git_commit_lookup(&c, repo, &to) == 0 && git_commit_parentcount(c) > 0) {
            git_oid_cpy(&from, git_commit_parent_id(c, 0));
            has_from = 1;
        }
        git_commit_free(c);
    }
    if (kn_git_tree_source_new(&to_src, repo, &to, &err) < 0 ||
        (has_from && kn_git_tree_source_new(&from_src, repo, &from, &err) < 0) ||
        kn_git_changed_paths(repo, has_from ? &from : NULL, &to, &changed, &err) < 0) {
        goto fail;
    }
    kn_app_discover(to_src, &paths, &npaths);
    results = kn_calloc(npaths ? npaths : 1, sizeof(*results));
    for (size_t i = 0; i < npaths; i++) {
        struct app_result *r = &results[i];
        struct kn_app *old = NULL;
        const json_t *deployed;
        struct kn_plan_input in;

        kn_app_load(&r->app, to_src, paths[i], cfg);
        if (r->app->diags.count > 0) {
            valid = 0;
            continue;
        }
        r->touched = kn_app_touched(r->app, has_from ? &changed : NULL);
        if (!r->touched) {
            continue;
        }
        deployed = deployed_manifests(from_src, paths[i], cfg, &old);
        in.app = r->app;
        in.deployed = deployed;
        in.commit_message = info.message;
        kn_plan_app(&r->plan, &in);
        r->has_plan = 1;
        kn_app_free(old);
    }
    if (has_from) {
        char a[GIT_OID_HEXSZ + 1];
        git_oid_tostr(a, sizeof(a), &from);
        snprintf(range, sizeof(range), "%.7s..%.7s", a, info.oid);
    } else {
        snprintf(range, sizeof(range), "%.7s (first commit)", info.oid);
    }
    if (o.json) {
        json_t *root = json_pack("{s:s, s:s, s:b}", "to", info.oid, "summary", info.summary,
                                 "valid", valid);
        json_t *apps = json_array();
        char *text;
        if (has_from) {
            char a[GIT_OID_HEXSZ + 1];
            json_object_set_new(root, "from", json_string(git_oid_tostr(a, sizeof(a), &from)));
        }
        for (size_t i = 0; i < npaths; i++) {
            json_array_append_new(apps, result_json(&results[i]));
        }
        json_object_set_new(root, "apps", apps);
        text = json_dumps(root, JSON_INDENT(2));
        printf("%s\n", text);
        free(text);
        json_decref(root);
    } else {
        print_text(results, npaths, range, &info);
    }
    rc = valid ? KN_EXIT_OK : KN_EXIT_FAILED;
    goto out;
fail:
    fprintf(stderr, "kanaria plan: %s\n", err.msg);
    rc = KN_EXIT_FAILED;
out:
    for (size_t i = 0; results && i < npaths; i++) {
        if (results[i].has_plan) {
            kn_plan_release(&results[i].plan);
        }
        kn_app_free(results[i].app);
    }
    free(results);
    for (size_t i = 0; i < npaths; i++) {
        free(paths[i]);
    }
    free(paths);
    for (size_t i = 0; i < changed.count; i++) {
        free(changed.items[i]);
    }
    free(changed.items);
    kn_source_free(to_src);
    kn_source_free(from_src);
    kn_git_commit_info_release(&info);
    git_repository_free(repo);
    kn_config_free(cfg);
    kn_diags_release(&cdiags);
    return rc;
}
