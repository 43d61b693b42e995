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

/* One platform's answer to remove_app: unknown there is fine (nothing of it ran). */
struct ask {
    struct prune *pr;
    char *platform;
};

static void asked(int status, const char *message, void *data)
{
    struct ask *a = data;
    struct prune *pr = a->pr;

    if (status == 0) {
        size_t len = strlen(pr->removed);
        snprintf(pr->removed + len, sizeof(pr->removed) - len, "%sremoved from platform '%s'",
                 len ? "; " : "", a->platform);
    } else if (!pr->error[0]) {
        snprintf(pr->error, sizeof(pr->error), "platform '%s': %s", a->platform,
                 message ? message : kn_strerror(status));
    }
    free(a->platform);
    free(a);
    prune_done(status == 0 ? 0 : KN_EIO, NULL, pr);
}

int kn_prune_start(struct kn_store *st, struct kn_platform *const *platforms, size_t n,
                   const char *repo, const char *app, const char *actor)
{
    struct prune *pr;

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
    /* platforms know apps by (repository, app): another repository's app of the same name is
     * never touched, and a platform that does not know this one is done with it at once */
    for (size_t i = 0; i < n; i++) {
        struct kn_platform *p = platforms[i];
        struct ask *a = kn_calloc(1, sizeof(*a));
        struct kn_platform_req req = {
            .id = {.repository = repo, .app = app},
            .deployment_id = 0,
            .stage_index = -1,
            .timeout_ms = 0,
            .done = asked,
            .data = a,
        };
        int rc;
        a->pr = pr;
        a->platform = kn_strdup(kn_platform_name(p));
        pr->pending++;
        if ((rc = kn_platform_remove_app(p, &req, NULL)) < 0) {
            pr->pending--;
            free(a->platform);
            free(a);
            if (rc == KN_EUNSUPPORTED) {
                kn_log_warn(WHO, "app=%s repo=%s platform '%s' cannot remove an app: whatever of "
                            "it runs there keeps running", app, repo, kn_platform_name(p));
            } else if (!pr->error[0]) {
                snprintf(pr->error, sizeof(pr->error), "platform '%s': %s", kn_platform_name(p),
                         kn_strerror(rc));
            }
        }
    }
    prune_done(0, NULL, pr);
    return 0;
}
