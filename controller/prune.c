/*
 * Pruning an orphaned app (see prune.h).
 */
#include "prune.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kanaria/alloc.h"
#include "kanaria/log.h"

#define WHO "prune"

struct prune {
    struct kn_store *store;
    char *repo;
    char *app;
    char *actor;
    char removed[256]; /* the platforms it was removed from */
    char error[512];   /* the first failure, "" none */
    size_t pending;
};

static long long prune_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One platform answered (or none was asked: status 0 with pending already 1). */
static void prune_done(int status, const char *message, void *data)
{
    struct prune *pr = data;
    char msg[1024];
    int rc;

    if (status != 0 && !pr->error[0]) {
        snprintf(pr->error, sizeof(pr->error), "%s", message ? message : kn_strerror(status));
    }
    if (--pr->pending > 0) {
        return;
    }
    if (pr->error[0]) {
        snprintf(msg, sizeof(msg), "pruning failed, the app is still orphaned: %s", pr->error);
        kn_log_error(WHO, "app=%s repo=%s %s", pr->app, pr->repo, msg);
        kn_store_event_add(pr->store, "PRUNE_FAILED", pr->repo, pr->app, 0, pr->actor, msg,
                           prune_now());
    } else {
        snprintf(msg, sizeof(msg), "pruned by %s: %s", pr->actor,
                 pr->removed[0] ? pr->removed : "nothing of it ran on any platform");
        if ((rc = kn_store_app_pruned(pr->store, pr->repo, pr->app, pr->actor, msg, prune_now())) <
            0) {
            kn_log_warn(WHO, "app=%s repo=%s removed, but not recorded pruned: %s", pr->app,
                        pr->repo,
                        rc == KN_EINVAL ? "it is in the repository again" : kn_strerror(rc));
        } else {
            kn_log_info(WHO, "app=%s repo=%s %s", pr->app, pr->repo, msg);
        }
    }
    free(pr->repo);
    free(pr->app);
    free(pr->actor);
    free(pr);
}

struct same_name {
    const char *repo;
    const char *app;
    char other[128]; /* a repository where an app of that name is not orphaned */
};

static int find_same_name(const struct kn_app_state *a, void *data)
{
    struct same_name *sn = data;

    if (strcmp(a->name, sn->app) == 0 && strcmp(a->repo, sn->repo) != 0 && !a->orphaned_at) {
        snprintf(sn->other, sizeof(sn->other), "%s", a->repo);
        return 1;
    }
    return 0;
}

int kn_prune_start(struct kn_store *st, struct kn_platform *const *platforms, size_t n,
                   const char *repo, const char *app, const char *actor)
{
    struct prune *pr;
    struct kn_live_state live;

    if (!st || (n && !platforms) || !repo || !app || !actor) {
        return KN_EINVAL;
    }
    pr = kn_calloc(1, sizeof(*pr));
    pr->store = st;
    pr->repo = kn_strdup(repo);
    pr->app = kn_strdup(app);
    pr->actor = kn_strdup(actor);
    pr->pending = 1; /* held until every platform was asked */
    kn_log_info(WHO, "app=%s repo=%s pruning on behalf of %s", app, repo, actor);
    {
        /* platforms know apps by name: what runs may be the other repository's */
        struct same_name sn = {.repo = repo, .app = app};
        kn_store_apps(st, NULL, find_same_name, &sn);
        if (sn.other[0]) {
            snprintf(pr->error, sizeof(pr->error),
                     "repository '%s' also declares an app named '%s': what runs may be its own",
                     sn.other, app);
            n = 0;
        }
    }
    for (size_t i = 0; i < n; i++) {
        struct kn_platform *p = platforms[i];
        size_t len = strlen(pr->removed);
        int rc;
        if (p->ops->live(p, app, &live) == KN_ENOTFOUND) {
            continue; /* it does not run there */
        }
        if (!p->ops->remove_app) {
            snprintf(pr->error, sizeof(pr->error), "platform '%s' cannot remove an app", p->name);
            continue;
        }
        snprintf(pr->removed + len, sizeof(pr->removed) - len,
                 "%sremoved from platform '%s' "
                 "(instances, frontend and backend)",
                 len ? "; " : "", p->name);
        pr->pending++;
        if ((rc = p->ops->remove_app(p, app, prune_done, pr)) < 0) {
            pr->pending--;
            if (!pr->error[0]) {
                snprintf(pr->error, sizeof(pr->error), "platform '%s': %s", p->name,
                         kn_strerror(rc));
            }
        }
    }
    prune_done(0, NULL, pr);
    return 0;
}
