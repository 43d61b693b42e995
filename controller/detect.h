/*
 * Detection: from a new head of a repository to the plans of the apps the change touches. Pure
 * Git reading and planning, no store and no loop: the reconcile loop runs it on the thread pool
 * with a snapshot of what the store knows, then records the result on the loop.
 */
#ifndef KANARIA_DETECT_H
#define KANARIA_DETECT_H

#include <git2.h>

#include "git/git.h"
#include "kanaria/config.h"
#include "planner.h"

/* What the store knows of one app, by name. */
struct kn_detect_known {
    char *name;
    char *baseline; /* commit of its newest deployment (any status), NULL: never planned */
    char *deployed; /* commit of its last successful deployment, NULL: none */
    char *path;     /* its config path when last seen, NULL: unknown */
    int orphaned;   /* marked orphaned already (its folder was gone at an earlier head) */
};

/*
 * What one detection keeps for the next on the same repository and controller config, so that a
 * commit's cost follows the change, not the repository: the config paths of the apps (the list
 * of app folders, moved by the changed paths instead of walking the tree again) and, for each
 * app, its name, the errors of its own load, its frontend.bind, every path its load read (or
 * tried to read: a file created later counts) and whether it was proved untouched since its
 * baseline. An app none of whose files changed since the cached head, and nothing in its folder,
 * is carried over without being loaded; everything else is loaded and validated as without a
 * cache. The first detection, one after a failure, one with another config, one whose changes
 * cannot be read (the cached head is gone) or that touch `.kanaria/` plans everything. Owned by
 * the caller (kn_detect_cache_new/_free); used by one detection at a time.
 */
struct kn_detect_cache;

struct kn_detect_cache *kn_detect_cache_new(void);
void kn_detect_cache_free(struct kn_detect_cache *cache);

struct kn_detect_input {
    git_repository *repo;          /* borrowed */
    struct kn_detect_cache *cache; /* borrowed, read and updated; NULL: load every app */
    git_oid head;
    /* hex of the head recorded before, NULL: none; when given, the cache is used only when its
     * head is that one (the apps it carries over keep what was recorded for them there) */
    const char *prev_head;
    const struct kn_config *config; /* borrowed; may be NULL */
    const struct kn_detect_known *known;
    size_t nknown;
    /* for apps not in `known`: the commit to diff from and the one deployed (both NULL: the app
     * is new, every change touches it and it is a first deployment) */
    const char *fallback_baseline;
    const char *fallback_deployed;
    const char *const *open_commits; /* commits of deployments not yet started */
    size_t nopen;
};

struct kn_detect_app {
    char *name;
    char *path;      /* config path in the repository */
    char *errors;    /* located errors, one per line; NULL when valid */
    int touched;
    int planned;     /* plan below is set (touched and valid) */
    struct kn_plan plan;
    char *plan_json; /* {"strategy","summary","diff"} (owned) */
};

/* A known app that has deployments and that no folder of the head declares any more. */
struct kn_detect_gone {
    char *name;
    int prune; /* the config of its last successful commit has spec.prune: true */
};

/*
 * Without the cache's help, `apps` is every app of the head. With it (`incremental`), `apps` is
 * those loaded, and those carried over whose errors from checks across apps (a shared name or
 * frontend.bind) changed; the `carried` others are as they were recorded at the cached head
 * (`from`): same name, config path and errors, untouched. `removed` are the configs of the
 * cached head that the head no longer has.
 */
struct kn_detect {
    struct kn_git_commit_info info; /* of the head */
    int forced;      /* prev_head is not an ancestor of head: the branch was rewritten */
    struct kn_detect_app *apps; /* sorted by config path */
    size_t napps;
    size_t carried;
    char from[GIT_OID_HEXSZ + 1]; /* the cached head, when incremental; "" otherwise */
    struct kn_strlist removed;    /* sorted */
    char **stale;    /* open_commits that are no longer on the branch */
    size_t nstale;
    struct kn_detect_gone *gone; /* newly gone: known apps not orphaned already */
    size_t ngone;
    size_t loaded;    /* apps loaded and validated; the others were carried from the cache */
    int incremental;  /* the cache was used (the change could be read from its head) */
};

/* Caller-owned out; release with kn_detect_release (also after a failure). KN_EIO and err when
 * the head cannot be read; problems of single apps are in their `errors`, not a failure. */
int kn_detect_run(struct kn_detect *out, const struct kn_detect_input *in, struct kn_error *err);

void kn_detect_release(struct kn_detect *d);

#endif /* KANARIA_DETECT_H */
