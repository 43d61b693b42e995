/*
 * `kanaria plan [REPO] [--from REV] [--to REV] [-c kanaria.yaml] [--json]`: the offline preview
 * of what a change would deploy, read straight from the commits (no checkout): for each app the
 * change touches, QUICK_SYNC or PIPELINE with the summary and the manifest diff. It runs the same
 * detection as `kanaria serve`, with `--from` standing for what is deployed. Apps the change does
 * not touch are listed as such; invalid apps show their errors and make the exit code 1.
 */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "detect.h"
#include "kanaria/alloc.h"

#define USAGE "usage: kanaria plan [REPO] [--from REV] [--to REV] [-c kanaria.yaml] [--json]\n"

struct plan_opts {
    const char *repo;
    const char *from;
    const char *to;
    const char *config;
    int json;
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
            printf(USAGE);
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

static void print_text(const struct kn_detect *d, const char *range)
{
    printf("plan %s: %s\n", range, d->info.summary);
    for (size_t i = 0; i < d->napps; i++) {
        const struct kn_detect_app *a = &d->apps[i];
        if (a->errors) {
            char *copy = kn_strdup(a->errors);
            printf("%s: invalid at this commit, not deployed\n", a->name);
            for (char *line = strtok(copy, "\n"); line; line = strtok(NULL, "\n")) {
                printf("    %s\n", line);
            }
            free(copy);
        } else if (!a->touched) {
            printf("%s: not touched by the change\n", a->name);
        } else {
            printf("%s: %s  %s\n", a->name, kn_plan_strategy_name(a->plan.strategy),
                   a->plan.summary);
            if (a->plan.strategy != KN_PLAN_NONE) {
                char *diff = kn_diff_format(&a->plan.diff);
                for (char *line = strtok(diff, "\n"); line; line = strtok(NULL, "\n")) {
                    printf("    %s\n", line);
                }
                free(diff);
            }
        }
    }
}

static void print_json(const struct kn_detect *d, const char *from, int valid)
{
    json_t *root = json_pack("{s:s, s:s, s:b}", "to", d->info.oid, "summary", d->info.summary,
                             "valid", valid);
    json_t *apps = json_array();
    char *text;

    if (from) {
        json_object_set_new(root, "from", json_string(from));
    }
    for (size_t i = 0; i < d->napps; i++) {
        const struct kn_detect_app *a = &d->apps[i];
        json_t *o = json_pack("{s:s, s:s, s:b, s:b}", "name", a->name, "path", a->path, "valid",
                              a->errors == NULL, "touched", a->touched);
        json_t *errors = json_array();
        if (a->errors) {
            char *copy = kn_strdup(a->errors);
            for (char *line = strtok(copy, "\n"); line; line = strtok(NULL, "\n")) {
                json_array_append_new(errors, json_string(line));
            }
            free(copy);
        }
        json_object_set_new(o, "errors", errors);
        if (a->planned) {
            json_object_set_new(o, "strategy",
                                json_string(kn_plan_strategy_name(a->plan.strategy)));
            json_object_set_new(o, "summary", json_string(a->plan.summary));
            json_object_set_new(o, "diff", kn_diff_to_json(&a->plan.diff));
        }
        json_array_append_new(apps, o);
    }
    json_object_set_new(root, "apps", apps);
    text = json_dumps(root, JSON_INDENT(2));
    printf("%s\n", text);
    free(text);
    json_decref(root);
}

/* The revision to compare with: --from, or the parent of --to (none for a first commit). */
static int resolve_from(git_repository *repo, const struct plan_opts *o, const git_oid *to,
                        char *hex, size_t size, struct kn_error *err)
{
    git_oid from;
    git_commit *c = NULL;
    int rc = 0;

    hex[0] = '\0';
    if (o->from) {
        if ((rc = kn_git_resolve(repo, o->from, &from, err)) == 0) {
            git_oid_tostr(hex, size, &from);
        }
        return rc;
    }
    if (git_commit_lookup(&c, repo, to) == 0 && git_commit_parentcount(c) > 0) {
        git_oid_tostr(hex, size, git_commit_parent_id(c, 0));
    }
    git_commit_free(c);
    return 0;
}

int kn_cmd_plan(int argc, char **argv)
{
    struct plan_opts o;
    struct kn_error err;
    struct kn_diags cdiags;
    struct kn_config *cfg = NULL;
    git_repository *repo = NULL;
    struct kn_detect_input in;
    struct kn_detect d;
    char from[GIT_OID_HEXSZ + 1];
    char range[128];
    int rc = KN_EXIT_FAILED;
    int valid = 1;

    memset(&d, 0, sizeof(d));
    memset(&in, 0, sizeof(in));
    kn_diags_init(&cdiags, 0);
    kn_error_clear(&err);
    if (parse_args(&o, argc, argv) < 0) {
        fprintf(stderr, USAGE);
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
    if (kn_git_open(&repo, o.repo, &err) < 0 || kn_git_resolve(repo, o.to, &in.head, &err) < 0 ||
        resolve_from(repo, &o, &in.head, from, sizeof(from), &err) < 0) {
        goto fail;
    }
    in.repo = repo;
    in.config = cfg;
    in.fallback_baseline = from[0] ? from : NULL;
    in.fallback_deployed = from[0] ? from : NULL;
    if (kn_detect_run(&d, &in, &err) < 0) {
        goto fail;
    }
    for (size_t i = 0; i < d.napps; i++) {
        valid &= d.apps[i].errors == NULL;
    }
    if (from[0]) {
        snprintf(range, sizeof(range), "%.7s..%.7s", from, d.info.oid);
    } else {
        snprintf(range, sizeof(range), "%.7s (first commit)", d.info.oid);
    }
    if (o.json) {
        print_json(&d, from[0] ? from : NULL, valid);
    } else {
        print_text(&d, range);
    }
    rc = valid ? KN_EXIT_OK : KN_EXIT_FAILED;
    goto out;
fail:
    fprintf(stderr, "kanaria plan: %s\n", err.msg);
    rc = KN_EXIT_FAILED;
out:
    kn_detect_release(&d);
    git_repository_free(repo);
    kn_config_free(cfg);
    kn_diags_release(&cdiags);
    return rc;
}
