/*
 * kanaria's incremental plan, alone, as `kanaria serve` runs it: one detection at FROM without a
 * cache (what a start does), then RUNS round trips FROM → TO → FROM, each a detection with the
 * cache that the one before left, the app baselines at FROM (as after FROM was deployed). The
 * step to TO is timed. Before that, the detection at TO with the cache is held against one
 * without on the same commits, so that a figure is never measured on a wrong result. Prints one
 * JSON object: {"runs_ms": [...], "loaded": N, "planned": N, "apps": N, "full_ms": MS}.
 *
 *     kanaria_bench_plan REPO FROM TO RUNS
 *
 * Exit 1 (and a message) when the two detections differ or a detection fails.
 */
#include <git2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "detect.h"
#include "git/git.h"
#include "kanaria/alloc.h"

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* The detection `d` as lines; with `cached` (the detection of the same commits with the cache),
 * the apps `cached` carried over (left out) as a full detection would list them when their
 * record holds: untouched, valid (the generated repository has no invalid app). */
static char *describe(const struct kn_detect *d, const struct kn_detect *cached)
{
    struct kn_buf b;
    size_t j = 0;

    kn_buf_init(&b, KN_BUF_UNBOUNDED);
    for (size_t i = 0; i < d->napps; i++) {
        const struct kn_detect_app *a = &d->apps[i];
        if (cached && (j >= cached->napps || strcmp(cached->apps[j].path, a->path) != 0)) {
            kn_buf_addf(&b, "%s %s 0 0 - -\n", a->name, a->path);
            continue;
        }
        if (cached) {
            a = &cached->apps[j++];
        }
        kn_buf_addf(&b, "%s %s %d %d %s %s\n", a->name, a->path, a->touched, a->planned,
                    a->errors ? a->errors : "-", a->plan_json ? a->plan_json : "-");
    }
    if (cached && (j != cached->napps || cached->carried != d->napps - cached->napps)) {
        kn_buf_addf(&b, "%zu listed, %zu carried\n", cached->napps, cached->carried);
    }
    for (size_t i = 0; i < (cached ? cached : d)->ngone; i++) {
        const struct kn_detect_gone *g = &(cached ? cached : d)->gone[i];
        kn_buf_addf(&b, "gone %s %d\n", g->name, g->prune);
    }
    return kn_buf_detach(&b, NULL);
}

static int run(struct kn_detect *out, git_repository *repo, const git_oid *head, const char *base,
               struct kn_detect_cache *cache)
{
    struct kn_detect_input in;
    struct kn_error err;

    memset(&in, 0, sizeof(in));
    in.repo = repo;
    in.cache = cache;
    git_oid_cpy(&in.head, head);
    in.fallback_baseline = base;
    in.fallback_deployed = base;
    kn_error_clear(&err);
    if (kn_detect_run(out, &in, &err) < 0) {
        fprintf(stderr, "kanaria_bench_plan: %s\n", err.msg);
        return -1;
    }
    return 0;
}

static size_t planned(const struct kn_detect *d)
{
    size_t n = 0;

    for (size_t i = 0; i < d->napps; i++) {
        n += d->apps[i].planned;
    }
    return n;
}

int main(int argc, char **argv)
{
    git_repository *repo = NULL;
    struct kn_detect_cache *cache = kn_detect_cache_new();
    struct kn_detect d, full;
    struct kn_error err;
    git_oid from, to;
    char base[GIT_OID_HEXSZ + 1];
    char *a = NULL, *b = NULL;
    double t0, full_ms;
    size_t loaded, nplanned, napps;
    int runs, rc = 1;

    if (argc != 5 || (runs = atoi(argv[4])) < 1) {
        fprintf(stderr, "usage: kanaria_bench_plan REPO FROM TO RUNS\n");
        return 2;
    }
    kn_git_global_init();
    if (kn_git_open(&repo, argv[1], &err) < 0 || kn_git_resolve(repo, argv[2], &from, &err) < 0 ||
        kn_git_resolve(repo, argv[3], &to, &err) < 0) {
        fprintf(stderr, "kanaria_bench_plan: %s\n", err.msg);
        goto out;
    }
    git_oid_tostr(base, sizeof(base), &from);
    /* the start: every app loaded */
    if (run(&d, repo, &from, base, cache) < 0) {
        goto out;
    }
    kn_detect_release(&d);
    /* the figure's result, against a detection without the cache */
    t0 = now_ms();
    if (run(&full, repo, &to, base, NULL) < 0) {
        goto out;
    }
    full_ms = now_ms() - t0;
    if (run(&d, repo, &to, base, cache) < 0) {
        kn_detect_release(&full);
        goto out;
    }
    a = describe(&full, NULL);
    b = describe(&full, &d);
    loaded = d.loaded;
    nplanned = planned(&d);
    napps = d.napps + d.carried;
    kn_detect_release(&full);
    kn_detect_release(&d);
    if (strcmp(a, b) != 0) {
        fprintf(stderr, "kanaria_bench_plan: the plan with the cache differs from the plan "
                        "without it\n");
        goto out;
    }
    printf("{\"apps\": %zu, \"loaded\": %zu, \"planned\": %zu, \"full_ms\": %.3f, \"runs_ms\": [",
           napps, loaded, nplanned, full_ms);
    for (int i = 0; i < runs; i++) {
        double ms;
        if (run(&d, repo, &from, base, cache) < 0) {
            goto out;
        }
        kn_detect_release(&d);
        t0 = now_ms();
        if (run(&d, repo, &to, base, cache) < 0) {
            goto out;
        }
        ms = now_ms() - t0;
        kn_detect_release(&d);
        printf("%s%.3f", i ? ", " : "", ms);
    }
    printf("]}\n");
    rc = 0;
out:
    free(a);
    free(b);
    kn_detect_cache_free(cache);
    git_repository_free(repo);
    return rc;
}
