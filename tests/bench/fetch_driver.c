/*
 * kanaria's fetch, alone: one kn_git_mirror_fetch() of URL's BRANCH into the bare mirror at
 * MIRROR (created when missing), in a process of its own as `kanaria serve` runs it (its child
 * `kanaria __fetch` calls the same function, with a progress callback). Prints
 * the head and the wall time of the fetch in milliseconds, so that the benchmark can hold it
 * against `git fetch` of the same commits.
 *
 *     kanaria_bench_fetch MIRROR URL BRANCH
 */
#include <git2.h>
#include <stdio.h>
#include <time.h>

#include "git/git.h"

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int main(int argc, char **argv)
{
    struct kn_git_auth auth = {0};
    struct kn_error err;
    char hex[GIT_OID_HEXSZ + 1];
    git_oid head;
    double t0;
    double t1;
    int rc;

    if (argc != 4) {
        fprintf(stderr, "usage: kanaria_bench_fetch MIRROR URL BRANCH\n");
        return 2;
    }
    git_libgit2_init();
    kn_error_clear(&err);
    t0 = now_ms();
    rc = kn_git_mirror_fetch(argv[1], argv[2], argv[3], &auth, &head, &err);
    t1 = now_ms();
    if (rc < 0) {
        fprintf(stderr, "kanaria_bench_fetch: %s\n", err.msg);
    } else {
        git_oid_tostr(hex, sizeof(hex), &head);
        printf("%s %.3f\n", hex, t1 - t0);
    }
    git_libgit2_shutdown();
    return rc < 0 ? 1 : 0;
}
