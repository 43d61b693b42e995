/*
 * The operator's actions (see actions.h): the checks of the app's state, the audit events and
 * the hand-over to the engine, the reconcile loop and the platforms.
 */
#include "actions.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <git2.h>

#include "feed.h"
#include "git/git.h"
#include "kanaria/alloc.h"
#include "kanaria/app.h"
#include "kanaria/engine.h"
#include "kanaria/log.h"
#include "kanaria/manifest.h"
#include "kanaria/stage.h"
#include "kanaria/validate.h"
#include "prune.h"
#include "reconcile.h"
#include "slo.h"

#define WHO "actions"

struct kn_actions {
    struct kn_actions_deps deps;
    char *data_dir;
};

static long long kn_actions_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int kn_actions_new(struct kn_actions **out, const struct kn_actions_deps *deps)
{
    struct kn_actions *a = kn_calloc(1, sizeof(*a));

    a->deps = *deps;
    a->data_dir = kn_strdup(deps->data_dir ? deps->data_dir : ".");
    a->deps.data_dir = a->data_dir;
    *out = a;
    return 0;
}

void kn_actions_free(struct kn_actions *a)
{
    if (!a) {
        return;
    }
    free(a->data_dir);
    free(a);
}

void kn_actions_kick(struct kn_actions *a)
{
    if (a->deps.engine) {
        kn_engine_kick(a->deps.engine);
    }
    if (a->deps.feed) {
        kn_feed_kick(a->deps.feed);
    }
}

int kn_actions_fetch(struct kn_actions *a, const char *repo)
{
    return a->deps.reconcile ? kn_reconcile_trigger(a->deps.reconcile, repo) : KN_ENOTFOUND;
}

/* Record an action in the audit log with the actor's name and address. */
static void kn_actions_audit(struct kn_actions *a, const char *type, const char *repo,
                             const char *app, long long deployment, const struct kn_actor *who,
                             const char *what)
{
    char msg[1024];

    snprintf(msg, sizeof(msg), "%s%s%s", what, who->from ? " from " : "",
             who->from ? who->from : "");
    kn_store_event_add(a->deps.store, type, repo, app, deployment, who->name, msg,
                       kn_actions_now_ms());
    kn_log_info(WHO, "app=%s deployment=%lld user=%s %s", app, deployment, who->name, msg);
}

/* The app's state into *out (the caller releases it, also after a failure). */
static int kn_actions_app(struct kn_actions *a, const char *repo, const char *app,
                          struct kn_app_state *out, struct kn_error *err)
{
    memset(out, 0, sizeof(*out));
    if (kn_store_app_get(a->deps.store, repo, app, out) < 0) {
        return kn_error_set(err, KN_ENOTFOUND, NULL, "no app '%s' in repository '%s'", app, repo);
    }
    return 0;
}

/* The app's deployment in progress (RUNNING or ROLLING_BACK) into *d (the caller releases it):
 * 1, or 0 when none (and *d is empty). */
static int kn_actions_in_progress(struct kn_actions *a, const struct kn_app_state *app,
                                  struct kn_deployment *d)
{
    memset(d, 0, sizeof(*d));
    if (!app->current_deployment ||
        kn_store_deployment_get(a->deps.store, app->current_deployment, d) < 0) {
        return 0;
    }
    if (d->status != KN_DEPLOY_RUNNING && d->status != KN_DEPLOY_ROLLING_BACK) {
        kn_deployment_release(d);
        return 0;
    }
    return 1;
}

/* KN_EEXISTS naming the deployment in progress, if there is one. */
static int kn_actions_refuse_busy(struct kn_actions *a, const struct kn_app_state *app,
                                  struct kn_error *err)
{
    struct kn_deployment d;
    int rc;

    if (!kn_actions_in_progress(a, app, &d)) {
        return 0;
    }
    rc = kn_error_set(err, KN_EEXISTS, NULL,
                      "deployment %lld of '%s' (%.7s) is %s: wait for it or cancel it first", d.id,
                      app->name, d.commit, kn_deploy_status_name(d.status));
    kn_deployment_release(&d);
    return rc;
}

static void kn_actions_result(struct kn_action_result *out, const char *repo, const char *app,
                              long long deployment)
{
    memset(out, 0, sizeof(*out));
    out->deployment = deployment;
    out->stage = -1;
    snprintf(out->repo, sizeof(out->repo), "%s", repo);
    snprintf(out->app, sizeof(out->app), "%s", app);
}

/* ---- cancel ------------------------------------------------------------------------------ */

int kn_actions_cancel(struct kn_actions *a, const char *repo, const char *name, int rollback,
                      const char *reason, const struct kn_actor *who,
                      struct kn_action_result *out, struct kn_error *err)
{
    struct kn_app_state app;
    struct kn_deployment d = {0};
    const char *why = reason ? reason : "";
    char what[768];
    int rc;

    if ((rc = kn_actions_app(a, repo, name, &app, err)) < 0) {
        goto out;
    }
    if (!a->deps.engine) {
        rc = kn_error_set(err, KN_ELIMIT, NULL, "cancelling is not available");
        goto out;
    }
    if (!app.current_deployment ||
        kn_store_deployment_get(a->deps.store, app.current_deployment, &d) < 0 ||
        kn_deploy_status_is_final(d.status)) {
        rc = kn_error_set(err, KN_EEXISTS, NULL, "no deployment of '%s' is in progress", app.name);
        goto out;
    }
    if (rollback && d.status == KN_DEPLOY_ROLLING_BACK) {
        rc = kn_error_set(err, KN_EEXISTS, NULL,
                          "deployment %lld of '%s' is rolling back already (\"rollback\": false "
                          "stops the rollback)",
                          d.id, app.name);
        goto out;
    }
    snprintf(what, sizeof(what), "cancel deployment %lld (%.7s) %s the rollback%s%.500s", d.id,
             d.commit, rollback ? "with" : "without", *why ? ": " : "", why);
    kn_actions_audit(a, "CANCEL_REQUESTED", app.repo, app.name, d.id, who, what);
    if ((rc = kn_engine_cancel(a->deps.engine, d.id, rollback, who->name, why)) < 0) {
        rc = kn_error_set(err, KN_EEXISTS, NULL, "deployment %lld of '%s' cannot be cancelled: %s",
                          d.id, app.name, kn_strerror(rc));
        goto out;
    }
    kn_actions_result(out, d.repo, d.app, d.id);
    out->status = d.status;
    kn_deployment_release(&d);
    if (kn_store_deployment_get(a->deps.store, out->deployment, &d) == 0) {
        out->status = d.status;
    }
out:
    kn_deployment_release(&d);
    kn_app_state_release(&app);
    return rc;
}

/* ---- rollback and sync ------------------------------------------------------------------- */

struct kn_actions_good {
    const char *prefix; /* lower-case hex */
    struct kn_deployment found;
    int count; /* distinct commits that match */
};

/* Successful deployments whose commit starts with the prefix, newest first. */
static int kn_actions_match_good(const struct kn_deployment *d, void *data)
{
    struct kn_actions_good *g = data;

    if (d->status != KN_DEPLOY_SUCCESS || strncmp(d->commit, g->prefix, strlen(g->prefix)) != 0) {
        return 0;
    }
    if (g->count == 0 || strcmp(g->found.commit, d->commit) != 0) {
        if (g->count++ == 0) {
            kn_deployment_copy(&g->found, d);
        }
    }
    return 0;
}

/* The deployment whose commit a rollback goes to (the caller releases *out): `to`, or the app's
 * last good one. */
static int kn_actions_rollback_target(struct kn_actions *a, const struct kn_app_state *app,
                                      const char *to, struct kn_deployment *out,
                                      struct kn_error *err)
{
    struct kn_actions_good g;
    char prefix[41];
    size_t n = to ? strlen(to) : 0;

    memset(&g, 0, sizeof(g));
    if (!to) {
        if (!app->last_good[0]) {
            return kn_error_set(err, KN_EEXISTS, NULL,
                                "'%s' has no successful deployment to roll back to", app->name);
        }
        snprintf(prefix, sizeof(prefix), "%s", app->last_good);
    } else {
        if (n < 7 || n > 40 || strspn(to, "0123456789abcdefABCDEF") != n) {
            return kn_error_set(err, KN_EINVAL, NULL,
                                "'to' must be a commit: 7 to 40 hex digits, got '%.64s'", to);
        }
        for (size_t i = 0; i <= n; i++) {
            prefix[i] = (char)(to[i] >= 'A' && to[i] <= 'F' ? to[i] - 'A' + 'a' : to[i]);
        }
    }
    g.prefix = prefix;
    kn_store_deployments(a->deps.store, app->repo, app->name, 0, kn_actions_match_good, &g);
    if (g.count != 1) {
        kn_deployment_release(&g.found);
    }
    if (g.count == 0) {
        return kn_error_set(err, KN_EINVAL, NULL,
                            "'%s' was never deployed successfully at %.40s: a rollback goes to a "
                            "commit the app ran before (see kanaria history %s)",
                            app->name, prefix, app->name);
    }
    if (g.count > 1) {
        return kn_error_set(err, KN_EINVAL, NULL,
                            "'%s' matches several commits of '%s': give more digits", prefix,
                            app->name);
    }
    *out = g.found;
    return 0;
}

/* Record a QUICK_SYNC deployment of `commit` asked by an actor, and wake the engine. */
static int kn_actions_deploy_again(struct kn_actions *a, const struct kn_app_state *app,
                                   const struct kn_deployment *src, const char *commit,
                                   const char *verb, const struct kn_actor *who, long long *id)
{
    char trigger[64], summary[512];
    struct kn_deployment_new nd = {
        .repo = app->repo,
        .app = app->name,
        .commit = commit,
        .author = src ? src->author : "",
        .message = src ? src->message : "",
        .commit_time = src ? src->commit_time : 0,
        .strategy = "QUICK_SYNC",
        .summary = summary,
        .trigger = trigger,
    };
    int rc;

    snprintf(trigger, sizeof(trigger), "%s by %.48s", verb, who->name);
    snprintf(summary, sizeof(summary), "quick sync: %s to %.7s by %s", verb, commit, who->name);
    if ((rc = kn_store_deployment_add(a->deps.store, &nd, kn_actions_now_ms(), id)) == 0) {
        kn_actions_kick(a);
    }
    return rc;
}

int kn_actions_rollback(struct kn_actions *a, const char *repo, const char *name, const char *to,
                        const struct kn_actor *who, struct kn_action_result *out,
                        struct kn_error *err)
{
    struct kn_app_state app;
    struct kn_deployment target = {0};
    char what[256];
    long long id = 0;
    int rc;

    if ((rc = kn_actions_app(a, repo, name, &app, err)) < 0 ||
        (rc = kn_actions_refuse_busy(a, &app, err)) < 0 ||
        (rc = kn_actions_rollback_target(a, &app, to, &target, err)) < 0) {
        goto out;
    }
    if ((rc = kn_actions_deploy_again(a, &app, &target, target.commit, "rollback", who, &id)) <
        0) {
        rc = kn_error_set(err, KN_EIO, NULL, "cannot record the rollback: %s", kn_strerror(rc));
        goto out;
    }
    snprintf(what, sizeof(what), "roll back to %.7s (deployment %lld)", target.commit, id);
    kn_actions_audit(a, "ROLLBACK_REQUESTED", app.repo, app.name, id, who, what);
    kn_actions_result(out, app.repo, app.name, id);
    snprintf(out->commit, sizeof(out->commit), "%s", target.commit);
out:
    kn_deployment_release(&target);
    kn_app_state_release(&app);
    return rc;
}

/* The newest deployment of the app at `commit`, for its author and message. */
static int kn_actions_find_commit(const struct kn_deployment *d, void *data)
{
    struct kn_deployment *out = data;

    if (strcmp(d->commit, out->commit) != 0) {
        return 0;
    }
    kn_deployment_copy(out, d);
    return 1;
}

int kn_actions_sync(struct kn_actions *a, const char *repo_name, const char *name,
                    const struct kn_actor *who, struct kn_action_result *out,
                    struct kn_error *err)
{
    struct kn_app_state app;
    struct kn_repo_state repo;
    struct kn_deployment known = {0};
    char what[256];
    long long id = 0;
    int rc;

    if ((rc = kn_actions_app(a, repo_name, name, &app, err)) < 0 ||
        (rc = kn_actions_refuse_busy(a, &app, err)) < 0) {
        goto out;
    }
    if (kn_store_repo_get(a->deps.store, app.repo, &repo) < 0 || !repo.head[0]) {
        rc = kn_error_set(err, KN_EEXISTS, NULL, "repository '%s' has not been fetched yet",
                          app.repo);
        goto out;
    }
    if (strcmp(app.last_seen, repo.head) != 0) {
        rc = kn_error_set(err, KN_EEXISTS, NULL, "'%s' is not in the head %.7s of repository '%s'",
                          app.name, repo.head, app.repo);
        goto out;
    }
    if (app.error[0]) {
        rc = kn_error_set(err, KN_EEXISTS, NULL, "'%s' is invalid at %.7s: %.*s", app.name,
                          repo.head, (int)strcspn(app.error, "\n"), app.error);
        goto out;
    }
    snprintf(known.commit, sizeof(known.commit), "%s", repo.head);
    kn_store_deployments(a->deps.store, app.repo, app.name, 0, kn_actions_find_commit, &known);
    if ((rc = kn_actions_deploy_again(a, &app, known.id ? &known : NULL, repo.head, "sync", who,
                                      &id)) < 0) {
        rc = kn_error_set(err, KN_EIO, NULL, "cannot record the sync: %s", kn_strerror(rc));
        goto out;
    }
    snprintf(what, sizeof(what), "sync to the head %.7s (deployment %lld)", repo.head, id);
    kn_actions_audit(a, "SYNC_REQUESTED", app.repo, app.name, id, who, what);
    kn_actions_result(out, app.repo, app.name, id);
    snprintf(out->commit, sizeof(out->commit), "%s", repo.head);
out:
    kn_deployment_release(&known);
    kn_app_state_release(&app);
    return rc;
}

/* ---- retry and promote ------------------------------------------------------------------- */

/* The app's newest deployment into *data (a kn_store_deployment_cb). */
static int kn_actions_newest(const struct kn_deployment *d, void *data)
{
    kn_deployment_copy(data, d);
    return 1;
}

int kn_actions_retry(struct kn_actions *a, const char *repo, const char *name,
                     const struct kn_actor *who, struct kn_action_result *out,
                     struct kn_error *err)
{
    struct kn_app_state app;
    struct kn_deployment last = {0};
    char trigger[64], summary[512], what[256];
    char *plan = NULL;
    long long id = 0;
    int rc;

    if ((rc = kn_actions_app(a, repo, name, &app, err)) < 0 ||
        (rc = kn_actions_refuse_busy(a, &app, err)) < 0) {
        goto out;
    }
    kn_store_deployments(a->deps.store, app.repo, app.name, 1, kn_actions_newest, &last);
    if (!last.id) {
        rc = kn_error_set(err, KN_EEXISTS, NULL, "'%s' has no deployment to retry", app.name);
        goto out;
    }
    if (last.status != KN_DEPLOY_FAILURE) {
        rc = kn_error_set(err, KN_EEXISTS, NULL,
                          "the last deployment of '%s' (%lld, %.7s) is %s: retry runs again only "
                          "a deployment that failed or was rolled back",
                          app.name, last.id, last.commit, kn_deploy_status_name(last.status));
        goto out;
    }
    plan = kn_store_deployment_plan(a->deps.store, last.id);
    snprintf(trigger, sizeof(trigger), "retry by %.48s", who->name);
    snprintf(summary, sizeof(summary), "%s: retry of deployment %lld (%.7s) by %s",
             strcmp(last.strategy, "PIPELINE") == 0 ? "pipeline" : "quick sync", last.id,
             last.commit, who->name);
    {
        struct kn_deployment_new nd = {
            .repo = app.repo,
            .app = app.name,
            .commit = last.commit,
            .author = last.author,
            .message = last.message ? last.message : "",
            .commit_time = last.commit_time,
            .strategy = last.strategy,
            .summary = summary,
            .plan_json = plan,
            .trigger = trigger,
        };
        if ((rc = kn_store_deployment_add(a->deps.store, &nd, kn_actions_now_ms(), &id)) < 0) {
            rc = kn_error_set(err, KN_EIO, NULL, "cannot record the retry: %s", kn_strerror(rc));
            goto out;
        }
    }
    kn_actions_kick(a);
    snprintf(what, sizeof(what), "retry %.7s of deployment %lld (deployment %lld)", last.commit,
             last.id, id);
    kn_actions_audit(a, "RETRY_REQUESTED", app.repo, app.name, id, who, what);
    kn_actions_result(out, app.repo, app.name, id);
    snprintf(out->commit, sizeof(out->commit), "%s", last.commit);
out:
    free(plan);
    kn_deployment_release(&last);
    kn_app_state_release(&app);
    return rc;
}

int kn_actions_promote(struct kn_actions *a, long long deployment, const struct kn_actor *who,
                       struct kn_action_result *out, struct kn_error *err)
{
    struct kn_deployment d = {0};
    char why[512], what[256];
    int rc;

    if (kn_store_deployment_get(a->deps.store, deployment, &d) < 0) {
        rc = kn_error_set(err, KN_ENOTFOUND, NULL, "no deployment %lld", deployment);
        goto out;
    }
    if (d.status != KN_DEPLOY_RUNNING) {
        rc = kn_error_set(err, KN_EEXISTS, NULL,
                          "deployment %lld of '%s' is %s: only a running pipeline is promoted",
                          d.id, d.app, kn_deploy_status_name(d.status));
        goto out;
    }
    if (!a->deps.engine) {
        rc = kn_error_set(err, KN_ELIMIT, NULL, "promoting is not available");
        goto out;
    }
    if ((rc = kn_engine_promote(a->deps.engine, d.id, who->name, why, sizeof(why))) < 0) {
        rc = kn_error_set(err, rc == KN_EINVAL ? KN_EINVAL : KN_EEXISTS, NULL, "%s", why);
        goto out;
    }
    snprintf(what, sizeof(what), "promote deployment %lld (%.7s) in full", d.id, d.commit);
    kn_actions_audit(a, "PROMOTE_REQUESTED", d.repo, d.app, d.id, who, what);
    kn_actions_result(out, d.repo, d.app, d.id);
    snprintf(out->commit, sizeof(out->commit), "%s", d.commit);
out:
    kn_deployment_release(&d);
    return rc;
}

/* ---- skip -------------------------------------------------------------------------------- */

struct kn_actions_stage_find {
    int index;
    struct kn_stage_state found;
    int ok;
};

static int kn_actions_stage_at(const struct kn_stage_state *s, void *data)
{
    struct kn_actions_stage_find *f = data;

    if (s->index != f->index) {
        return 0;
    }
    f->found = *s;
    f->ok = 1;
    return 1;
}

/* A break-glass skip: an admin's, with a reason that says something. */
static int kn_actions_break_glass_ok(const char *reason, const struct kn_actor *who,
                                     struct kn_error *err)
{
    if (who->role < KN_ROLE_ADMIN) {
        return kn_error_set(err, KN_EUNSUPPORTED, NULL,
                            "user '%s' (%s) may not break glass: a break-glass skip needs the "
                            "admin role",
                            who->name, who->role == KN_ROLE_VIEWER     ? "viewer"
                                       : who->role == KN_ROLE_APPROVER ? "approver"
                                                                       : "operator");
    }
    if (strspn(reason, " \t\r\n") == strlen(reason)) {
        return kn_error_set(err, KN_EINVAL, NULL, "a break-glass skip needs a 'reason' saying why");
    }
    if (strlen(reason) > KN_ACTIONS_REASON_MAX) {
        return kn_error_set(err, KN_EINVAL, NULL, "'reason' is longer than %d bytes",
                            KN_ACTIONS_REASON_MAX);
    }
    return 0;
}

int kn_actions_skip(struct kn_actions *a, const char *repo, const char *name, int index,
                    const char *glass, const struct kn_actor *who, struct kn_action_result *out,
                    struct kn_error *err)
{
    struct kn_app_state app;
    struct kn_deployment d = {0};
    struct kn_actions_stage_find f;
    char what[1024];
    int rc;

    if ((rc = kn_actions_app(a, repo, name, &app, err)) < 0 ||
        (glass && (rc = kn_actions_break_glass_ok(glass, who, err)) < 0)) {
        goto out;
    }
    if (!a->deps.engine) {
        rc = kn_error_set(err, KN_ELIMIT, NULL, "skipping is not available");
        goto out;
    }
    if (!kn_actions_in_progress(a, &app, &d) || d.status != KN_DEPLOY_RUNNING) {
        rc = kn_error_set(err, KN_EEXISTS, NULL, "no deployment of '%s' is running its pipeline",
                          app.name);
        goto out;
    }
    memset(&f, 0, sizeof(f));
    f.index = index;
    kn_store_stages(a->deps.store, d.id, kn_actions_stage_at, &f);
    if (f.ok && strcmp(f.found.status, "RUNNING") != 0 &&
        strcmp(f.found.status, "NOT_STARTED") != 0) {
        rc = kn_error_set(err, KN_EEXISTS, NULL, "stage %d %s of deployment %lld has finished (%s)",
                          f.index, f.found.name, d.id, f.found.status);
        goto out;
    }
    rc = kn_engine_skip(a->deps.engine, d.id, f.index, who->name, glass);
    if (rc == KN_EINVAL) {
        rc = kn_error_set(err, KN_EINVAL, NULL, "deployment %lld of '%s' has no stage %d", d.id,
                          app.name, f.index);
        goto out;
    }
    if (rc == KN_EUNSUPPORTED) {
        rc = kn_error_set(err, KN_EUNSUPPORTED, NULL,
                          "stage %d of deployment %lld is a WAIT_APPROVAL: a WAIT_APPROVAL stage "
                          "passes only with its approvals; an admin may skip it with "
                          "{\"breakGlass\": true, \"reason\": \"...\"}",
                          f.index, d.id);
        goto out;
    }
    if (rc < 0) {
        rc = kn_error_set(
            err, KN_EEXISTS, NULL, "stage %d of deployment %lld cannot be skipped: %s", f.index,
            d.id,
            rc == KN_EEXISTS ? "it has finished" : "the deployment is not running its pipeline");
        goto out;
    }
    /* recorded once done, so that the audit log names the stage even one not started yet */
    kn_store_stages(a->deps.store, d.id, kn_actions_stage_at, &f);
    snprintf(what, sizeof(what), "%sskip stage %d %s of deployment %lld%s%.700s%s",
             glass ? "break-glass " : "", f.index, f.found.name, d.id, glass ? ", reason \"" : "",
             glass ? glass : "", glass ? "\"" : "");
    kn_actions_audit(a, glass ? "BREAK_GLASS" : "SKIP_REQUESTED", app.repo, app.name, d.id, who,
                     what);
    kn_actions_result(out, d.repo, d.app, d.id);
    out->stage = f.index;
    snprintf(out->stage_name, sizeof(out->stage_name), "%s", f.found.name);
out:
    kn_deployment_release(&d);
    kn_app_state_release(&app);
    return rc;
}

/* ---- prune ------------------------------------------------------------------------------- */

int kn_actions_prune(struct kn_actions *a, const char *repo, const char *name,
                     const struct kn_actor *who, struct kn_error *err)
{
    struct kn_app_state app;
    int rc;

    if ((rc = kn_actions_app(a, repo, name, &app, err)) < 0) {
        goto out;
    }
    if (!app.orphaned_at) {
        rc = kn_error_set(err, KN_EEXISTS, NULL,
                          "'%s' is not orphaned: a folder of repository '%s' declares it (prune "
                          "removes only an app whose folder was deleted)",
                          app.name, app.repo);
        goto out;
    }
    if (app.pruned_at) {
        rc = kn_error_set(err, KN_EEXISTS, NULL, "'%s' was pruned already", app.name);
        goto out;
    }
    if ((rc = kn_actions_refuse_busy(a, &app, err)) < 0) {
        goto out;
    }
    if (a->deps.nplatforms == 0) {
        rc = kn_error_set(err, KN_ELIMIT, NULL, "pruning is not available");
        goto out;
    }
    kn_actions_audit(a, "PRUNE_REQUESTED", app.repo, app.name, 0, who,
                     "prune the orphaned app (instances, frontend and backend)");
    if ((rc = kn_prune_start(a->deps.store, a->deps.platforms, a->deps.nplatforms, app.repo,
                             app.name, who->name)) < 0) {
        rc = kn_error_set(err, KN_EIO, NULL, "cannot prune '%s': %s", app.name, kn_strerror(rc));
        goto out;
    }
out:
    kn_app_state_release(&app);
    return rc;
}

/* ---- approve and reject ------------------------------------------------------------------ */

/* The step (1-based) after which a running CANARY_STEPS holds until approved; 0: it does not. */
static long long kn_actions_awaiting_step(struct kn_actions *a, long long deployment, int index)
{
    char *v = kn_store_stage_meta_get(a->deps.store, deployment, index, KN_STEPS_AWAITING_META);
    long long step = v ? atoll(v) : 0;

    free(v);
    return step;
}

/*
 * The stage's `approvers` are in the app's config at the deployment's commit, which the store
 * does not keep: it is read from the repository's mirror on the thread pool, then the decision
 * is checked again on the loop (the stage may have ended meanwhile) and recorded.
 */
struct kn_actions_decision {
    struct kn_actions *a;
    kn_actions_decided_cb cb;
    void *data;
    uv_work_t work;
    int reject;
    char who[128];
    char from[96];
    char reason[512];
    struct kn_deployment d;
    char app_path[512];
    char mirror[1024];
    struct kn_stage_state stage; /* index -1: the deployment is BLOCKED by the error-budget
                                    gate, and an approval lets it past (action: approve) */
    long long step; /* a CANARY_STEPS paused after this step (1-based) until approved; 0: none */
    /* filled on the thread pool */
    char **approvers;
    size_t napprovers;
    char error[512];
};

/* The approvers of the app's first WAIT_APPROVAL stage, which also decide on a deployment held
 * by the error-budget gate; none (any approver) when it has none. */
static void kn_actions_budget_approvers(struct kn_actions_decision *x, const struct kn_app *app)
{
    const struct kn_stage_config *stages = app->cfg.spec.pipeline.items;

    if (app->cfg.spec.budget.action != KN_BUDGET_APPROVE) {
        snprintf(x->error, sizeof(x->error),
                 "deployment %lld of '%s' waits for its error budget under 'action: block': "
                 "it starts when the budget recovers, not by an approval",
                 x->d.id, x->d.app);
        return;
    }
    for (size_t i = 0; i < app->cfg.spec.pipeline.count; i++) {
        const struct kn_node *list =
            stages[i].with_node ? kn_node_get(stages[i].with_node, "approvers") : NULL;
        if (strcmp(stages[i].name, "WAIT_APPROVAL") != 0) {
            continue;
        }
        if (list && list->type == KN_NODE_SEQ && list->len > 0) {
            x->approvers = kn_calloc(list->len, sizeof(*x->approvers));
            for (size_t j = 0; j < list->len; j++) {
                if (list->items[j]->type == KN_NODE_SCALAR) {
                    x->approvers[x->napprovers++] = kn_strdup(list->items[j]->scalar);
                }
            }
        }
        return;
    }
}

/* On the thread pool: the `approvers` of stage x->stage.index at the deployment's commit. */
static void kn_actions_decision_load(uv_work_t *w)
{
    struct kn_actions_decision *x = w->data;
    git_repository *repo = NULL;
    struct kn_source *src = NULL;
    struct kn_app *app = NULL;
    const struct kn_stage_config *stages;
    const struct kn_node *list;
    struct kn_error err;
    git_oid commit;

    kn_error_clear(&err);
    if (kn_git_open(&repo, x->mirror, &err) < 0 || git_oid_fromstr(&commit, x->d.commit) != 0 ||
        kn_git_tree_source_new(&src, repo, &commit, &err) < 0) {
        snprintf(x->error, sizeof(x->error), "cannot read commit %.7s: %.400s", x->d.commit,
                 err.msg[0] ? err.msg : "bad commit");
        goto out;
    }
    kn_validate_app_load(&app, src, x->app_path, NULL);
    if (app && x->stage.index < 0) {
        kn_actions_budget_approvers(x, app);
        goto out;
    }
    stages = app ? app->cfg.spec.pipeline.items : NULL;
    if (!app || x->stage.index < 0 || (size_t)x->stage.index >= app->cfg.spec.pipeline.count ||
        strcmp(stages[x->stage.index].name, x->stage.name) != 0) {
        snprintf(x->error, sizeof(x->error), "the pipeline at commit %.7s has no stage %d %s",
                 x->d.commit, x->stage.index, x->stage.name);
        goto out;
    }
    list = stages[x->stage.index].with_node
               ? kn_node_get(stages[x->stage.index].with_node, "approvers")
               : NULL;
    if (x->step > 0) {
        /* a CANARY_STEPS: the approvers of its pause after that step */
        const struct kn_node *pauses = stages[x->stage.index].with_node
                                           ? kn_node_get(stages[x->stage.index].with_node, "pause")
                                           : NULL;
        list = NULL;
        for (size_t i = 0; pauses && pauses->type == KN_NODE_SEQ && i < pauses->len; i++) {
            const struct kn_node *at = kn_node_get(pauses->items[i], "step");
            if (at && at->type == KN_NODE_SCALAR && atoll(at->scalar) == x->step) {
                list = kn_node_get(pauses->items[i], "approvers");
            }
        }
    }
    if (list && list->type == KN_NODE_SEQ && list->len > 0) {
        x->approvers = kn_calloc(list->len, sizeof(*x->approvers));
        for (size_t i = 0; i < list->len; i++) {
            if (list->items[i]->type == KN_NODE_SCALAR) {
                x->approvers[x->napprovers++] = kn_strdup(list->items[i]->scalar);
            }
        }
    }
out:
    kn_app_free(app);
    kn_source_free(src);
    git_repository_free(repo);
}

static void kn_actions_decision_free(struct kn_actions_decision *x)
{
    for (size_t i = 0; i < x->napprovers; i++) {
        free(x->approvers[i]);
    }
    free(x->approvers);
    kn_deployment_release(&x->d);
    free(x);
}

static int kn_actions_decision_listed(const struct kn_actions_decision *x)
{
    if (x->napprovers == 0) {
        return 1; /* no list: anyone with the approver role */
    }
    for (size_t i = 0; i < x->napprovers; i++) {
        if (strcmp(x->approvers[i], x->who) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Back on the loop, for a deployment held by the error-budget gate: still BLOCKED, by someone
 * the rules allow: record who approved it (the gate reads it) and wake the engine. */
static int kn_actions_budget_approve(struct kn_actions_decision *x,
                                     struct kn_action_result *result, struct kn_error *err)
{
    struct kn_actions *a = x->a;
    struct kn_deployment now = {0};
    char msg[1024];
    int rc = 0;

    if (kn_store_deployment_get(a->deps.store, x->d.id, &now) < 0 ||
        now.status != KN_DEPLOY_BLOCKED) {
        rc = kn_error_set(err, KN_EEXISTS, NULL,
                          "deployment %lld of '%s' is no longer held by its error budget",
                          x->d.id, x->d.app);
        goto out;
    }
    if (!kn_actions_decision_listed(x)) {
        rc = kn_error_set(err, KN_EUNSUPPORTED, NULL,
                          "not an approver of this app: '%s' is not in the approvers of its "
                          "WAIT_APPROVAL stage",
                          x->who);
        goto out;
    }
    if (kn_store_stage_meta_set(a->deps.store, x->d.id, KN_STORE_DEPLOYMENT_META,
                                KN_SLO_APPROVED_META, x->who) < 0) {
        rc = kn_error_set(err, KN_EIO, NULL, "cannot record the approval in the state store");
        goto out;
    }
    snprintf(msg, sizeof(msg), "approved the deployment past its spent error budget%s%s%s%s",
             x->from[0] ? " from " : "", x->from, x->reason[0] ? ": " : "", x->reason);
    kn_store_event_add(a->deps.store, "APPROVED", x->d.repo, x->d.app, x->d.id, x->who, msg,
                       kn_actions_now_ms());
    kn_log_info(WHO, "app=%s deployment=%lld user=%s %s", x->d.app, x->d.id, x->who, msg);
    kn_actions_kick(a);
    kn_actions_result(result, x->d.repo, x->d.app, x->d.id);
    result->stage = -1;
out:
    kn_deployment_release(&now);
    return rc;
}

/* Back on the loop: check again, record the decision and its audit event, wake the engine. */
static void kn_actions_decision_done(uv_work_t *w, int status)
{
    struct kn_actions_decision *x = w->data;
    struct kn_actions *a = x->a;
    const char *verb = x->reject ? "rejected" : "approved";
    struct kn_action_result result;
    struct kn_error err;
    char now_status[16];
    char msg[1024], step[32];
    long long now = kn_actions_now_ms();
    int rc = 0;

    kn_error_clear(&err);
    snprintf(step, sizeof(step), "%lld)", x->step);
    if (status != 0 || x->error[0]) {
        rc = kn_error_set(&err, KN_EIO, NULL, "%s", x->error[0] ? x->error : "cancelled");
        goto out;
    }
    if (x->stage.index < 0) {
        rc = kn_actions_budget_approve(x, &result, &err);
        goto out;
    }
    if (kn_store_stage_get(a->deps.store, x->d.id, x->stage.index, now_status,
                           sizeof(now_status), NULL) < 0 ||
        strcmp(now_status, "RUNNING") != 0 ||
        (x->step > 0 && kn_actions_awaiting_step(a, x->d.id, x->stage.index) != x->step)) {
        rc = kn_error_set(&err, KN_EEXISTS, NULL,
                          "deployment %lld of '%s' is no longer waiting for approval", x->d.id,
                          x->d.app);
        goto out;
    }
    if (!kn_actions_decision_listed(x)) {
        rc = kn_error_set(&err, KN_EUNSUPPORTED, NULL,
                          "not an approver of this stage: '%s' is not in its approvers", x->who);
        goto out;
    }
    if (kn_store_approval_add(a->deps.store, x->d.id, x->stage.index, x->who,
                              x->reject ? "REJECT" : "APPROVE", now) < 0) {
        rc = kn_error_set(&err, KN_EIO, NULL, "cannot record the decision in the state store");
        goto out;
    }
    snprintf(msg, sizeof(msg), "%s stage %d %s%s%s%s%s%s%s", verb, x->stage.index, x->stage.name,
             x->step > 0 ? " (its pause after step " : "", x->step > 0 ? step : "",
             x->from[0] ? " from " : "", x->from, x->reason[0] ? ": " : "", x->reason);
    kn_store_event_add(a->deps.store, x->reject ? "REJECTED" : "APPROVED", x->d.repo, x->d.app,
                       x->d.id, x->who, msg, now);
    kn_log_info(WHO, "app=%s deployment=%lld user=%s %s", x->d.app, x->d.id, x->who, msg);
    kn_actions_kick(a);
    kn_actions_result(&result, x->d.repo, x->d.app, x->d.id);
    result.stage = x->stage.index;
    snprintf(result.stage_name, sizeof(result.stage_name), "%s", x->stage.name);
out:
    x->cb(rc, rc == 0 ? &result : NULL, &err, x->data);
    kn_actions_decision_free(x);
}

/* The first stage that is RUNNING (the one a person may be waiting on). */
static int kn_actions_find_running(const struct kn_stage_state *s, void *data)
{
    struct kn_stage_state *out = data;

    if (strcmp(s->status, "RUNNING") == 0) {
        *out = *s;
        return 1;
    }
    return 0;
}

int kn_actions_decide(struct kn_actions *a, const char *repo, const char *name, int reject,
                      const char *reason, const struct kn_actor *who, kn_actions_decided_cb cb,
                      void *data, struct kn_error *err)
{
    struct kn_actions_decision *x = NULL;
    struct kn_app_state app;
    struct kn_stage_state running;
    int found;
    int rc;

    if ((rc = kn_actions_app(a, repo, name, &app, err)) < 0) {
        goto out;
    }
    memset(&running, 0, sizeof(running));
    running.index = -1;
    if (app.current_deployment) {
        kn_store_stages(a->deps.store, app.current_deployment, kn_actions_find_running, &running);
    }
    x = kn_calloc(1, sizeof(*x));
    if (running.index >= 0 && strcmp(running.name, "CANARY_STEPS") == 0) {
        x->step = kn_actions_awaiting_step(a, app.current_deployment, running.index);
    }
    found = app.current_deployment &&
            kn_store_deployment_get(a->deps.store, app.current_deployment, &x->d) == 0;
    if (found && !reject && running.index < 0 && x->d.status == KN_DEPLOY_BLOCKED) {
        running.index = -1; /* held by the error-budget gate: approved past it (checked on) */
    } else if (!found || running.index < 0 ||
               (strcmp(running.name, "WAIT_APPROVAL") != 0 && x->step <= 0)) {
        rc = kn_error_set(err, KN_EEXISTS, NULL, "no deployment of '%s' is waiting for approval",
                          app.name);
        goto out;
    }
    x->a = a;
    x->cb = cb;
    x->data = data;
    x->reject = reject;
    x->stage = running;
    snprintf(x->who, sizeof(x->who), "%s", who->name);
    snprintf(x->from, sizeof(x->from), "%s", who->from ? who->from : "");
    snprintf(x->reason, sizeof(x->reason), "%s", reason ? reason : "");
    snprintf(x->app_path, sizeof(x->app_path), "%s", app.path);
    snprintf(x->mirror, sizeof(x->mirror), "%s/repos/%s.git", a->data_dir, app.repo);
    x->work.data = x;
    if (uv_queue_work(a->deps.loop, &x->work, kn_actions_decision_load,
                      kn_actions_decision_done) != 0) {
        rc = kn_error_set(err, KN_ELIMIT, NULL, "cannot check the approval now");
        goto out;
    }
    x = NULL; /* cb says how it went */
out:
    if (x) {
        kn_actions_decision_free(x);
    }
    kn_app_state_release(&app);
    return rc;
}
