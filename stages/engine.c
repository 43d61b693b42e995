/*
 * The pipeline engine. A deployment is run by a struct deploy: loaded on the thread pool (the
 * app at its commit and at the last good one), then its stages one after the other, each behind
 * a timeout timer, with the deployment's own timeout above them. Every transition is written to
 * the store before the next step acts, so a restart finds each deployment where it was.
 */
#include "kanaria/engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <jansson.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "kanaria/alloc.h"
#include "kanaria/log.h"
#include "kanaria/selfmetrics.h"
#include "stages.h"

#define ROLLBACK_TIMEOUT_MS (10 * 60 * 1000LL)

/* A cancel is kept as metadata of the deployment (stage index -1) before the engine acts on it,
 * so that a restart between the two finishes it rather than resuming the pipeline. */
#define CANCEL_META_INDEX  KN_STORE_DEPLOYMENT_META
#define CANCEL_META_HOW    "cancel"
#define CANCEL_META_REASON "cancel_reason"
#define SKIP_META_REASON   KN_ENGINE_SKIP_REASON_META
#define BREAK_GLASS_META   KN_ENGINE_BREAK_GLASS_META

struct deploy;

struct kn_stage_run {
    struct deploy *dp;
    int index;
    const struct kn_stage_config *cfg;
    void *state;
    int finished;
    long long deadline; /* engine_now() at which the stage times out */
    int halting;        /* cancelled for a timeout or a rollback: stop what is in flight */
};

struct deploy {
    struct kn_engine *e;
    struct kn_deployment d;
    char last_good[41];
    char path[512];
    struct kn_engine_load load;
    uv_work_t work;
    int loading;              /* work is on the thread pool */
    int gated;                /* loaded, held by a start gate; stage_timer rechecks */
    struct kn_platform *platform;
    const struct kn_stage_config **plan;
    size_t nplan;
    struct kn_stage_config sync_cfg;
    struct kn_stage_config rollback_cfg;
    struct kn_stage_run run;  /* the stage running now */
    int running;              /* run is started and not finished */
    int rolling_back;
    int cancelled;            /* the rollback under way is a cancel's: it ends CANCELLED */
    char reason[1024];
    uv_timer_t stage_timer;
    uv_timer_t deploy_timer;
    int open_handles;
    char who[384];
    /* the app's background analysis (spec.analysis), recorded as stage nplan + 1; NULL: none */
    const struct kn_background_options *bg;
    size_t bg_start, bg_until; /* it runs from stage bg_start until bg_until starts */
    struct kn_stage_run bg_run;
    struct kn_analysis_runner *bg_runner; /* running now */
};

struct kn_engine {
    struct kn_engine_deps deps;
    struct deploy **active;
    size_t nactive;
    int stopping;
    int held; /* kn_engine_hold: start nothing */
    size_t queued; /* open deployments waiting, as the last kick counted them */
};

static long long wall_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static long long engine_now(const struct kn_engine *e)
{
    return e->deps.now_ms ? e->deps.now_ms(e->deps.data) : wall_ms();
}

/* rm -r, for the work folders kanaria made itself */
static void remove_tree(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *e;

    while (d && (e = readdir(d)) != NULL) {
        char *child;
        struct stat st;
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
            continue;
        }
        child = kn_asprintf("%s/%s", path, e->d_name);
        if (lstat(child, &st) == 0 && S_ISDIR(st.st_mode)) {
            remove_tree(child);
        } else {
            unlink(child);
        }
        free(child);
    }
    if (d) {
        closedir(d);
    }
    rmdir(path);
}

void kn_engine_load_release(struct kn_engine_load *l)
{
    if (l->workdir) {
        remove_tree(l->workdir);
        free(l->workdir);
    }
    kn_app_free(l->app);
    kn_app_free(l->last_good);
    for (size_t i = 0; i < l->changed.count; i++) {
        free(l->changed.items[i]);
    }
    free(l->changed.items);
    memset(l, 0, sizeof(*l));
}

/* ---- the run's accessors ---------------------------------------------------------------- */

const struct kn_stage_config *kn_stage_run_config(const struct kn_stage_run *run)
{
    return run->cfg;
}

const struct kn_app *kn_stage_run_app(const struct kn_stage_run *run)
{
    return run->dp->load.app;
}

const struct kn_app *kn_stage_run_last_good(const struct kn_stage_run *run)
{
    return run->dp->load.last_good;
}

const char *kn_stage_run_last_good_commit(const struct kn_stage_run *run)
{
    return run->dp->last_good[0] ? run->dp->last_good : NULL;
}

const struct kn_deployment *kn_stage_run_deployment(const struct kn_stage_run *run)
{
    return &run->dp->d;
}

struct kn_platform *kn_stage_run_platform(const struct kn_stage_run *run)
{
    return run->dp->platform;
}

uv_loop_t *kn_stage_run_loop(const struct kn_stage_run *run)
{
    return run->dp->e->deps.loop;
}

struct kn_store *kn_stage_run_store(const struct kn_stage_run *run)
{
    return run->dp->e->deps.store;
}

int kn_stage_run_index(const struct kn_stage_run *run)
{
    return run->index;
}

const char *kn_stage_run_workdir(const struct kn_stage_run *run)
{
    return run->dp->load.workdir;
}

size_t kn_stage_run_plan(const struct kn_stage_run *run, const struct kn_stage_config *const **out)
{
    *out = run->dp->plan;
    return run->dp->nplan;
}

int kn_stage_run_started(const struct kn_stage_run *run, size_t i)
{
    struct kn_store *st = run->dp->e->deps.store;
    char status[32];
    char *ran;
    int started;

    if (kn_store_stage_get(st, run->dp->d.id, (int)i, status, sizeof(status), NULL) < 0 ||
        strcmp(status, "NOT_STARTED") == 0) {
        return 0;
    }
    if (strcmp(status, "SKIPPED") != 0) {
        return 1;
    }
    /* skipped while it ran: what it did (a primary applied, a script run) stays done */
    ran = kn_store_stage_meta_get(st, run->dp->d.id, (int)i, "ran");
    started = ran != NULL;
    free(ran);
    return started;
}

long long kn_stage_run_now(const struct kn_stage_run *run)
{
    return engine_now(run->dp->e);
}

long long kn_stage_run_time_left(const struct kn_stage_run *run)
{
    long long left = run->deadline - engine_now(run->dp->e);

    return left > 0 ? left : 1;
}

int kn_stage_run_halting(const struct kn_stage_run *run)
{
    return run->halting;
}

struct kn_metrics *kn_stage_run_metrics(const struct kn_stage_run *run, const char *name)
{
    const struct kn_engine_deps *deps = &run->dp->e->deps;
    return deps->metrics ? deps->metrics(deps->data, name) : NULL;
}

struct kn_http_client *kn_stage_run_http(const struct kn_stage_run *run)
{
    return run->dp->e->deps.http;
}

void **kn_stage_run_state(struct kn_stage_run *run)
{
    return &run->state;
}

char *kn_stage_run_meta_get(struct kn_stage_run *run, const char *key)
{
    return kn_store_stage_meta_get(run->dp->e->deps.store, run->dp->d.id, run->index, key);
}

void kn_stage_run_meta_set(struct kn_stage_run *run, const char *key, const char *value)
{
    kn_store_stage_meta_set(run->dp->e->deps.store, run->dp->d.id, run->index, key, value);
}

int kn_stage_run_primary_touched(const struct kn_stage_run *run)
{
    const struct deploy *dp = run->dp;

    for (size_t i = 0; i < dp->nplan; i++) {
        const struct kn_stage_kind *k = dp->plan[i]->kind;
        if ((k == &kn_stage_sync || k == &kn_stage_primary_rollout) &&
            kn_stage_run_started(run, i)) {
            return 1;
        }
    }
    return 0;
}


/* How a stage is named in reasons and events: "ANALYSIS (errors)" when it has an id of its own,
 * else its kind. */
static const char *stage_label(const struct kn_stage_config *cfg, char *buf, size_t size)
{
    if (cfg->id && *cfg->id && strcmp(cfg->id, cfg->name) != 0) {
        snprintf(buf, size, "%s (%s)", cfg->name, cfg->id);
    } else {
        snprintf(buf, size, "%s", cfg->name);
    }
    return buf;
}

void kn_stage_run_log(struct kn_stage_run *run, const char *fmt, ...)
{
    struct deploy *dp = run->dp;
    char who[448];
    char *msg;
    va_list ap;

    va_start(ap, fmt);
    msg = kn_vasprintf(fmt, ap);
    va_end(ap);
    snprintf(who, sizeof(who), "%s stage=%s%s%s", dp->who, run->cfg->name,
             run->cfg->id && *run->cfg->id ? " stage_id=" : "", run->cfg->id ? run->cfg->id : "");
    kn_log_info(who, "%s", msg);
    kn_store_event_add(dp->e->deps.store, "STAGE_LOG", dp->d.repo, dp->d.app, dp->d.id,
                       "kanaria", msg, engine_now(dp->e));
    free(msg);
}

/* ---- lifecycle ------------------------------------------------------------------------------ */

static void run_stage(struct deploy *dp, size_t i);
static void deploy_fail(struct deploy *dp, const char *reason);
static void bg_stop(struct deploy *dp, const char *status);

static void deploy_closed(uv_handle_t *h)
{
    struct deploy *dp = h->data;

    if (--dp->open_handles > 0) {
        return;
    }
    kn_engine_load_release(&dp->load);
    kn_deployment_release(&dp->d);
    free(dp->plan);
    free(dp);
}

/* Forget the deployment (finished, or the engine stops) and free it once its timers close. */
static void deploy_end(struct deploy *dp)
{
    struct kn_engine *e = dp->e;

    if (dp->bg_runner) {
        kn_analysis_runner_stop(dp->bg_runner); /* kanaria stops: a restart resumes it */
        dp->bg_runner = NULL;
    }
    for (size_t i = 0; i < e->nactive; i++) {
        if (e->active[i] == dp) {
            e->active[i] = e->active[--e->nactive];
            break;
        }
    }
    uv_close((uv_handle_t *)&dp->stage_timer, deploy_closed);
    uv_close((uv_handle_t *)&dp->deploy_timer, deploy_closed);
    if (!e->stopping) {
        kn_engine_kick(e); /* the next deployment of this app may wait */
    }
}

static void set_status(struct deploy *dp, enum kn_deploy_status status, const char *reason)
{
    long long now = engine_now(dp->e);

    if (kn_store_deployment_set_status(dp->e->deps.store, dp->d.id, status, reason, now) < 0) {
        kn_log_error(dp->who, "could not record %s", kn_deploy_status_name(status));
    }
    dp->d.status = status;
    if (status == KN_DEPLOY_RUNNING && !dp->d.started_at) {
        dp->d.started_at = now;
    }
    if (reason) {
        kn_log_info(dp->who, "%s: %s", kn_deploy_status_name(status), reason);
    } else {
        kn_log_info(dp->who, "%s", kn_deploy_status_name(status));
    }
}

/* Stage i of the plan; index nplan is the ROLLBACK that follows a failure. */
static const struct kn_stage_config *stage_at(const struct deploy *dp, size_t i)
{
    return i < dp->nplan ? dp->plan[i] : &dp->rollback_cfg;
}

static void stage_status(struct deploy *dp, size_t i, const char *status)
{
    const char *type = strcmp(status, "RUNNING") == 0 ? "STAGE_STARTED" : "STAGE_FINISHED";
    struct kn_store *st = dp->e->deps.store;
    char *why = strcmp(status, "SKIPPED") == 0
                    ? kn_store_stage_meta_get(st, dp->d.id, (int)i, SKIP_META_REASON)
                    : NULL;
    char *msg, label[200];

    kn_store_stage_set(st, dp->d.id, (int)i, stage_at(dp, i)->name, status, engine_now(dp->e));
    msg = kn_asprintf("stage %zu %s: %s%s%s%s", i, stage_label(stage_at(dp, i), label, sizeof(label)),
                      status, why ? " (" : "",
                      why ? why : "", why ? ")" : "");
    kn_store_event_add(st, type, dp->d.repo, dp->d.app, dp->d.id, "kanaria", msg,
                       engine_now(dp->e));
    free(msg);
    free(why);
}

/* The stage's timeout: its own, its kind's, or for the kinds whose length is an option, that
 * length and a margin. */
static long long stage_timeout(const struct kn_stage_config *cfg)
{
    long long t = kn_stage_timeout_ms(cfg);

    if (t > 0) {
        return t;
    }
    if (cfg->kind == &kn_stage_canary_steps && cfg->with) {
        return kn_steps_timeout_ms(cfg);
    }
    if (cfg->kind == &kn_stage_wait && cfg->with) {
        return ((const struct kn_wait_options *)cfg->with)->duration_ms + 60 * 1000;
    }
    if (cfg->kind == &kn_stage_analysis && cfg->with) {
        return ((const struct kn_analysis_options *)cfg->with)->duration_ms + 5 * 60 * 1000;
    }
    return 10 * 60 * 1000;
}

static void finish_deploy(struct deploy *dp, enum kn_deploy_status status, const char *reason)
{
    bg_stop(dp, "CANCELLED");
    uv_timer_stop(&dp->stage_timer);
    uv_timer_stop(&dp->deploy_timer);
    set_status(dp, status, reason);
    deploy_end(dp);
}

/* ---- background analysis ------------------------------------------------------------------ */

/* Its status, recorded like a stage's at index nplan + 1; a final one only over RUNNING. */
static void bg_record(struct deploy *dp, const char *status)
{
    struct kn_store *st = dp->e->deps.store;
    int index = (int)dp->nplan + 1;
    int running = strcmp(status, "RUNNING") == 0;
    char have[32];
    char *msg;

    if (!running && (kn_store_stage_get(st, dp->d.id, index, have, sizeof(have), NULL) != 0 ||
                     strcmp(have, "RUNNING") != 0)) {
        return;
    }
    kn_store_stage_set(st, dp->d.id, index, dp->bg->stage.name, status, engine_now(dp->e));
    msg = kn_asprintf("stage %d %s (%s): %s", index, dp->bg->stage.name, dp->bg->stage.id,
                      status);
    kn_store_event_add(st, running ? "STAGE_STARTED" : "STAGE_FINISHED", dp->d.repo, dp->d.app,
                       dp->d.id, "kanaria", msg, engine_now(dp->e));
    free(msg);
}

/* Stop it (if it runs) and record it `status` (if it was RUNNING). */
static void bg_stop(struct deploy *dp, const char *status)
{
    if (!dp->bg) {
        return;
    }
    if (dp->bg_runner) {
        kn_analysis_runner_stop(dp->bg_runner);
        dp->bg_runner = NULL;
        kn_log_info(dp->who, "background analysis stopped (%s)", status);
    }
    bg_record(dp, status);
}

static void cancel_running(struct deploy *dp, int halt);

/* The runner's end: a failed check fails the deployment, whatever stage runs. */
static void bg_done(struct kn_stage_run *run, int ok, const char *reason, void *data)
{
    struct deploy *dp = data;
    char why[1200];

    (void)run;
    dp->bg_runner = NULL; /* freed once this returns */
    if (ok || dp->rolling_back || kn_deploy_status_is_final(dp->d.status)) {
        bg_record(dp, ok ? "SUCCESS" : "FAILURE");
        return;
    }
    bg_record(dp, "FAILURE");
    snprintf(why, sizeof(why), "background analysis failed: %s",
             reason && *reason ? reason : "a check failed");
    if (dp->running) {
        size_t i = (size_t)dp->run.index;
        cancel_running(dp, 1);
        stage_status(dp, i, "CANCELLED");
    }
    deploy_fail(dp, why);
}

/* Stage i is about to start (or resume): start the background analysis when i is in its span
 * and it does not run yet (resumed from its counts after a restart), stop it from its `until`
 * on. -1 when the deployment failed instead (the stage is not to start). */
static int bg_at_stage(struct deploy *dp, size_t i)
{
    struct kn_store *st = dp->e->deps.store;
    struct kn_analysis_runner_cfg cfg;
    char have[32];
    int index = (int)dp->nplan + 1;

    if (!dp->bg) {
        return 0;
    }
    if (i >= dp->bg_until) {
        bg_stop(dp, "SUCCESS");
        return 0;
    }
    if (i < dp->bg_start || dp->bg_runner) {
        return 0;
    }
    if (kn_store_stage_get(st, dp->d.id, index, have, sizeof(have), NULL) == 0) {
        if (strcmp(have, "FAILURE") == 0) {
            /* it failed before a restart, between recording that and acting on it */
            deploy_fail(dp, "background analysis failed (before kanaria restarted)");
            return -1;
        }
        if (strcmp(have, "RUNNING") != 0) {
            return 0; /* ended already */
        }
        kn_log_info(dp->who, "resuming the background analysis");
    } else {
        bg_record(dp, "RUNNING");
    }
    memset(&dp->bg_run, 0, sizeof(dp->bg_run));
    dp->bg_run.dp = dp;
    dp->bg_run.index = index;
    dp->bg_run.cfg = &dp->bg->stage;
    dp->bg_run.deadline = engine_now(dp->e) + dp->load.app->cfg.spec.timeout_ms;
    memset(&cfg, 0, sizeof(cfg));
    cfg.options = &dp->bg->checks;
    cfg.record_index = index;
    cfg.meta_prefix = "background.";
    cfg.duration_ms = 0;
    cfg.done = bg_done;
    cfg.data = dp;
    if (kn_analysis_runner_start(&dp->bg_run, &cfg, &dp->bg_runner) < 0) {
        dp->bg_runner = NULL;
        bg_record(dp, "FAILURE");
        deploy_fail(dp, "background analysis failed: it could not start");
        return -1;
    }
    return 0;
}

/* ---- stages ----------------------------------------------------------------------------- */

/* halt: the stage timed out or a rollback follows, so its platform operation is stopped too. */
static void cancel_running(struct deploy *dp, int halt)
{
    if (dp->running) {
        dp->running = 0;
        dp->run.halting = halt;
        uv_timer_stop(&dp->stage_timer);
        if (dp->run.cfg->kind->cancel) {
            dp->run.cfg->kind->cancel(&dp->run);
        }
    }
}

static void stage_timed_out(uv_timer_t *t)
{
    struct deploy *dp = t->data;
    char reason[512], d[32], label[200];

    if (!dp->running) {
        return;
    }
    cancel_running(dp, 1);
    snprintf(reason, sizeof(reason), "stage %s timed out after %s",
             stage_label(dp->run.cfg, label, sizeof(label)),
             kn_duration_format(stage_timeout(dp->run.cfg), d, sizeof(d)));
    stage_status(dp, (size_t)dp->run.index, "FAILURE");
    deploy_fail(dp, reason);
}

void kn_stage_run_finish(struct kn_stage_run *run, int ok, const char *fmt, ...)
{
    struct deploy *dp = run->dp;
    char reason[1024] = "";
    size_t i = (size_t)run->index;

    if (!dp->running || run->finished) {
        return; /* cancelled, or finished already */
    }
    run->finished = 1;
    dp->running = 0;
    uv_timer_stop(&dp->stage_timer);
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(reason, sizeof(reason), fmt, ap);
        va_end(ap);
    }
    stage_status(dp, i, ok ? "SUCCESS" : "FAILURE");
    if (i == dp->nplan) {
        char final[2100];
        if (ok && dp->cancelled) {
            finish_deploy(dp, KN_DEPLOY_CANCELLED, dp->reason);
            return;
        }
        if (ok) {
            snprintf(final, sizeof(final), "%s (rolled back)", dp->reason);
        } else {
            snprintf(final, sizeof(final), "%s; rollback failed: %s", dp->reason, reason);
        }
        finish_deploy(dp, KN_DEPLOY_FAILURE, final);
        return;
    }
    if (!ok) {
        char full[1200], label[200];
        snprintf(full, sizeof(full), "stage %s failed: %s",
                 stage_label(run->cfg, label, sizeof(label)), reason);
        deploy_fail(dp, full);
        return;
    }
    run_stage(dp, i + 1);
}

/* skipOn: the commit message starts with a prefix, or every changed file matches a glob. */
static int skipped(const struct deploy *dp, const struct kn_stage_config *cfg)
{
    const struct kn_skip_on *s = &cfg->skip_on;
    size_t matched = 0;

    for (size_t i = 0; i < s->commit_message_prefixes.count; i++) {
        const char *p = s->commit_message_prefixes.items[i];
        if (strncmp(dp->d.message, p, strlen(p)) == 0) {
            return 1;
        }
    }
    if (s->paths.count == 0 || dp->load.changed.count == 0) {
        return 0;
    }
    for (size_t i = 0; i < dp->load.changed.count; i++) {
        for (size_t j = 0; j < s->paths.count; j++) {
            if (kn_glob_match(s->paths.items[j], dp->load.changed.items[i])) {
                matched++;
                break;
            }
        }
    }
    return matched == dp->load.changed.count;
}

static void start_run(struct deploy *dp, size_t i, long long started_at)
{
    struct kn_stage_run *run = &dp->run;
    long long left = stage_timeout(stage_at(dp, i)) - (engine_now(dp->e) - started_at);

    memset(run, 0, sizeof(*run));
    run->dp = dp;
    run->index = (int)i;
    run->cfg = stage_at(dp, i);
    run->deadline = engine_now(dp->e) + (left > 0 ? left : 0);
    dp->running = 1;
    uv_timer_start(&dp->stage_timer, stage_timed_out, (uint64_t)(left > 0 ? left : 0), 0);
    if (!run->cfg->kind->start) {
        kn_stage_run_finish(run, 0, "stage %s cannot run in this version of kanaria",
                            run->cfg->name);
        return;
    }
    run->cfg->kind->start(run);
}

static void run_stage(struct deploy *dp, size_t i)
{
    char status[32];
    long long started_at = 0;
    char *note;

    for (; i < dp->nplan; i++) {
        const struct kn_stage_config *cfg = dp->plan[i];
        if (kn_store_stage_get(dp->e->deps.store, dp->d.id, (int)i, status, sizeof(status),
                               &started_at) == 0) {
            if (strcmp(status, "SUCCESS") == 0 || strcmp(status, "SKIPPED") == 0) {
                continue; /* done before a restart */
            }
            if (strcmp(status, "RUNNING") == 0) {
                kn_log_info(dp->who, "resuming stage %zu %s", i, cfg->name);
                if (bg_at_stage(dp, i) < 0) {
                    return;
                }
                start_run(dp, i, started_at);
                return;
            }
            if (strcmp(status, "FAILURE") == 0) {
                /* it failed before a restart, between recording that and acting on it */
                char reason[300], label[200];
                snprintf(reason, sizeof(reason), "stage %s failed (before kanaria restarted)",
                         stage_label(cfg, label, sizeof(label)));
                deploy_fail(dp, reason);
                return;
            }
        }
        if (skipped(dp, cfg)) {
            stage_status(dp, i, "SKIPPED");
            continue;
        }
        if (bg_at_stage(dp, i) < 0) {
            return;
        }
        stage_status(dp, i, "RUNNING");
        start_run(dp, i, engine_now(dp->e));
        return;
    }
    bg_stop(dp, "SUCCESS"); /* it ran until the end */
    kn_store_app_set_self_heal(dp->e->deps.store, dp->d.repo, dp->d.app,
                               dp->load.app->cfg.spec.trigger.on_out_of_sync);
    /* a release let out by a break-glass says so in its reason */
    note = kn_store_stage_meta_get(dp->e->deps.store, dp->d.id, CANCEL_META_INDEX,
                                   BREAK_GLASS_META);
    finish_deploy(dp, KN_DEPLOY_SUCCESS, note);
    free(note);
}

static void run_rollback(struct deploy *dp)
{
    char status[32];
    long long started_at = 0;

    dp->rolling_back = 1;
    bg_stop(dp, "CANCELLED");
    if (kn_store_stage_get(dp->e->deps.store, dp->d.id, (int)dp->nplan, status, sizeof(status),
                           &started_at) != 0 ||
        strcmp(status, "RUNNING") != 0) {
        started_at = engine_now(dp->e);
        stage_status(dp, dp->nplan, "RUNNING");
    }
    start_run(dp, dp->nplan, started_at);
}

static void deploy_fail(struct deploy *dp, const char *reason)
{
    const struct kn_app *app = dp->load.app;

    if (dp->rolling_back) {
        char final[2100];
        snprintf(final, sizeof(final), "%s; rollback failed: %s", dp->reason, reason);
        finish_deploy(dp, KN_DEPLOY_FAILURE, final);
        return;
    }
    snprintf(dp->reason, sizeof(dp->reason), "%s", reason);
    if (!app || !app->cfg.spec.auto_rollback) {
        finish_deploy(dp, KN_DEPLOY_FAILURE, reason);
        return;
    }
    set_status(dp, KN_DEPLOY_ROLLING_BACK, reason);
    run_rollback(dp);
}

static void deploy_timed_out(uv_timer_t *t)
{
    struct deploy *dp = t->data;
    char reason[256], d[32];

    if (dp->rolling_back) {
        return; /* the rollback has its own timeout */
    }
    snprintf(reason, sizeof(reason), "the deployment timed out after %s",
             kn_duration_format(dp->load.app->cfg.spec.timeout_ms, d, sizeof(d)));
    if (dp->running) {
        cancel_running(dp, 1);
        stage_status(dp, (size_t)dp->run.index, "FAILURE");
    }
    deploy_fail(dp, reason);
}

/* ---- cancel ------------------------------------------------------------------------------- */

enum cancel_how {
    CANCEL_NONE = 0,
    CANCEL_KEEP,     /* stop, leave the live state as it is */
    CANCEL_ROLLBACK, /* stop, then ROLLBACK */
};

static void cancel_reason(char *out, size_t size, const char *who, const char *reason)
{
    int with = reason && *reason;

    snprintf(out, size, "cancelled by %s%s%s", who && *who ? who : "kanaria", with ? ": " : "",
             with ? reason : "");
}

/* The cancel recorded for the deployment (reason into why), or CANCEL_NONE. */
static enum cancel_how cancel_requested(struct deploy *dp, char *why, size_t size)
{
    struct kn_store *st = dp->e->deps.store;
    char *how = kn_store_stage_meta_get(st, dp->d.id, CANCEL_META_INDEX, CANCEL_META_HOW);
    char *reason = kn_store_stage_meta_get(st, dp->d.id, CANCEL_META_INDEX, CANCEL_META_REASON);
    enum cancel_how rc = CANCEL_NONE;

    if (how) {
        rc = strcmp(how, "rollback") == 0 ? CANCEL_ROLLBACK : CANCEL_KEEP;
        snprintf(why, size, "%s", reason ? reason : "cancelled");
    }
    free(how);
    free(reason);
    return rc;
}

/* Stop the running stage (or the one a restart left RUNNING) and record it CANCELLED. */
static void cancel_stage(struct deploy *dp, int rollback)
{
    char status[32];

    if (dp->running) {
        size_t i = (size_t)dp->run.index;
        cancel_running(dp, rollback);
        stage_status(dp, i, "CANCELLED");
        return;
    }
    for (size_t i = 0; i <= dp->nplan; i++) {
        if (kn_store_stage_get(dp->e->deps.store, dp->d.id, (int)i, status, sizeof(status),
                               NULL) == 0 &&
            strcmp(status, "RUNNING") == 0) {
            stage_status(dp, i, "CANCELLED");
        }
    }
}

/* Act on a cancel of a loaded deployment (recorded in the store already). */
static void deploy_cancel(struct deploy *dp, int rollback, const char *why)
{
    const struct kn_app *app = dp->load.app;

    cancel_stage(dp, rollback && !dp->rolling_back);
    if (!rollback || dp->rolling_back || !app || !app->cfg.spec.auto_rollback) {
        finish_deploy(dp, KN_DEPLOY_CANCELLED, why);
        return;
    }
    dp->cancelled = 1;
    snprintf(dp->reason, sizeof(dp->reason), "%s", why);
    set_status(dp, KN_DEPLOY_ROLLING_BACK, why);
    run_rollback(dp);
}

/* ---- loading ------------------------------------------------------------------------------ */

static void load_work(uv_work_t *req)
{
    struct deploy *dp = req->data;

    dp->e->deps.load(dp->e->deps.data, &dp->d, dp->path,
                     dp->last_good[0] ? dp->last_good : NULL, &dp->load);
}

static void build_plan(struct deploy *dp)
{
    const struct kn_list *pipeline = &dp->load.app->cfg.spec.pipeline;

    dp->sync_cfg.name = (char *)(uintptr_t) "SYNC";
    dp->sync_cfg.kind = &kn_stage_sync;
    dp->rollback_cfg.name = (char *)(uintptr_t) "ROLLBACK";
    dp->rollback_cfg.kind = &kn_stage_rollback;
    dp->rollback_cfg.timeout_ms = ROLLBACK_TIMEOUT_MS;
    if (strcmp(dp->d.strategy, "PIPELINE") == 0 && pipeline->count > 0) {
        dp->plan = kn_calloc(pipeline->count, sizeof(*dp->plan));
        for (size_t i = 0; i < pipeline->count; i++) {
            dp->plan[i] = &((const struct kn_stage_config *)pipeline->items)[i];
        }
        dp->nplan = pipeline->count;
        if (dp->load.app->cfg.spec.analysis &&
            kn_background_bounds(dp->load.app->cfg.spec.analysis, pipeline, &dp->bg_start,
                                 &dp->bg_until) == 0 &&
            dp->bg_start < dp->bg_until) {
            dp->bg = dp->load.app->cfg.spec.analysis;
        }
    } else {
        dp->plan = kn_calloc(1, sizeof(*dp->plan));
        dp->plan[0] = &dp->sync_cfg;
        dp->nplan = 1;
    }
}

/* What the deployment runs on, for the API: its platform and pipeline, once (a restart finds
 * them recorded). */
static void record_start(struct deploy *dp)
{
    struct kn_store *st = dp->e->deps.store;
    char *have = kn_store_stage_meta_get(st, dp->d.id, KN_STORE_DEPLOYMENT_META,
                                         KN_ENGINE_PIPELINE_META);
    json_t *stages;
    char *text;

    if (have) {
        free(have);
        return;
    }
    stages = json_array();
    for (size_t i = 0; i < dp->nplan; i++) {
        json_array_append_new(stages,
                              kn_stage_describe(dp->plan[i], (int)i, stage_timeout(dp->plan[i])));
    }
    if (dp->bg) {
        /* the background analysis after the ROLLBACK's index (kanaria/engine.h) */
        json_t *bg = kn_stage_describe(&dp->bg->stage, (int)dp->nplan + 1, 0);
        json_object_set_new(bg, "background", json_true());
        json_object_set_new(bg, "starting_stage", json_integer((json_int_t)dp->bg_start));
        json_object_set_new(bg, "until", json_integer((json_int_t)dp->bg_until));
        json_array_append_new(stages, bg);
    }
    text = json_dumps(stages, JSON_COMPACT);
    kn_store_stage_meta_set(st, dp->d.id, KN_STORE_DEPLOYMENT_META, KN_ENGINE_PLATFORM_META,
                            kn_platform_name(dp->platform));
    kn_store_stage_meta_set(st, dp->d.id, KN_STORE_DEPLOYMENT_META, KN_ENGINE_PIPELINE_META,
                            text);
    free(text);
    json_decref(stages);
}

/* ---- start gates -------------------------------------------------------------------------- */

static void gate_recheck(uv_timer_t *t);
static void deploy_go(struct deploy *dp);

/* Ask the start gates about dp (loaded, not started): 1 to go on, 0 when it waits (recorded
 * BLOCKED, FROZEN or PLANNED with the gate's reason; the stage timer asks again). */
static int gate_check(struct deploy *dp)
{
    struct kn_engine *e = dp->e;
    struct kn_store *st = e->deps.store;
    struct kn_gate_verdict v = {.status = KN_DEPLOY_RUNNING};
    long long now = engine_now(e), delay;

    if (!e->deps.gate) {
        return 1;
    }
    e->deps.gate(e->deps.data, &dp->d, dp->load.app, now, &v);
    if (v.status == KN_DEPLOY_RUNNING) {
        if (v.reason[0]) {
            kn_log_info(dp->who, "%s", v.reason);
            kn_store_event_add(st, KN_GATE_PASSED_EVENT, dp->d.repo, dp->d.app, dp->d.id,
                               "kanaria", v.reason, now);
        }
        dp->gated = 0;
        return 1;
    }
    if (v.status != dp->d.status) {
        set_status(dp, v.status, v.reason);
        free(dp->d.reason);
        dp->d.reason = kn_strdup(v.reason);
    } else if (!dp->d.reason || strcmp(dp->d.reason, v.reason) != 0) {
        kn_store_deployment_set_reason(st, dp->d.id, v.reason, now); /* new numbers, no event */
        free(dp->d.reason);
        dp->d.reason = kn_strdup(v.reason);
    }
    dp->gated = 1;
    delay = v.recheck_at_ms > 0 ? v.recheck_at_ms - now : KN_GATE_RECHECK_MS;
    delay = delay < 100 ? 100 : delay > 3600000 ? 3600000 : delay; /* at least hourly */
    uv_timer_start(&dp->stage_timer, gate_recheck, (uint64_t)delay, 0);
    return 0;
}

/* A held deployment's time to be asked again (or a kick): it may have been superseded or
 * cancelled meanwhile, which the store says. */
static void gate_recheck(uv_timer_t *t)
{
    struct deploy *dp = t->data;
    struct kn_deployment now = {0};

    if (!dp->gated || dp->e->stopping) {
        return;
    }
    if (kn_store_deployment_get(dp->e->deps.store, dp->d.id, &now) == 0) {
        dp->d.status = now.status;
    }
    kn_deployment_release(&now);
    if (!kn_deploy_status_is_waiting(dp->d.status)) {
        dp->gated = 0;
        deploy_end(dp); /* superseded or cancelled while it waited */
        return;
    }
    if (gate_check(dp)) {
        deploy_go(dp);
    }
}

static void load_done(uv_work_t *req, int status)
{
    struct deploy *dp = req->data;
    struct kn_engine *e = dp->e;

    dp->loading = 0;
    if (status == UV_ECANCELED || e->stopping || kn_deploy_status_is_final(dp->d.status)) {
        deploy_end(dp); /* stopping, or cancelled while it was loading */
        return;
    }
    if (!dp->load.app || dp->load.app->diags.count > 0) {
        char reason[700];
        snprintf(reason, sizeof(reason), "cannot load the app at %.7s: %s", dp->d.commit,
                 dp->load.error[0] ? dp->load.error : "it is invalid at this commit");
        finish_deploy(dp, KN_DEPLOY_FAILURE, reason);
        return;
    }
    dp->platform = e->deps.platform(e->deps.data, dp->load.app->cfg.spec.platform);
    if (!dp->platform) {
        char reason[300];
        snprintf(reason, sizeof(reason), "platform '%s' is not configured",
                 dp->load.app->cfg.spec.platform);
        finish_deploy(dp, KN_DEPLOY_FAILURE, reason);
        return;
    }
    build_plan(dp);
    record_start(dp);
    if (kn_deploy_status_is_waiting(dp->d.status) && !gate_check(dp)) {
        return; /* held: gate_recheck asks again */
    }
    deploy_go(dp);
}

/* Loaded, past the gates: run the pipeline (or resume it). */
static void deploy_go(struct deploy *dp)
{
    struct kn_engine *e = dp->e;
    enum cancel_how cancel;
    char why[1024];
    long long left;

    dp->gated = 0;
    if (kn_deploy_status_is_waiting(dp->d.status)) {
        set_status(dp, KN_DEPLOY_RUNNING, NULL);
    }
    left = dp->load.app->cfg.spec.timeout_ms - (engine_now(e) - dp->d.started_at);
    uv_timer_start(&dp->deploy_timer, deploy_timed_out, (uint64_t)(left > 0 ? left : 0), 0);
    cancel = cancel_requested(dp, why, sizeof(why));
    if (dp->d.status == KN_DEPLOY_ROLLING_BACK && cancel != CANCEL_KEEP) {
        snprintf(dp->reason, sizeof(dp->reason), "%s", dp->d.reason);
        dp->cancelled = cancel == CANCEL_ROLLBACK;
        kn_log_info(dp->who, "resuming the rollback");
        run_rollback(dp);
        return;
    }
    if (cancel != CANCEL_NONE) {
        /* cancelled before a restart, between recording that and acting on it */
        kn_log_info(dp->who, "finishing the cancel recorded before kanaria restarted");
        deploy_cancel(dp, cancel == CANCEL_ROLLBACK, why);
        return;
    }
    run_stage(dp, 0);
}

/* ---- the engine --------------------------------------------------------------------------- */

int kn_engine_new(struct kn_engine **out, const struct kn_engine_deps *deps)
{
    struct kn_engine *e;

    if (!out || !deps || !deps->loop || !deps->store || !deps->platform || !deps->load) {
        return KN_EINVAL;
    }
    e = kn_calloc(1, sizeof(*e));
    e->deps = *deps;
    *out = e;
    return 0;
}

/* One deployment per app at a time. */
static int app_active(const struct kn_engine *e, const struct kn_deployment *d)
{
    for (size_t i = 0; i < e->nactive; i++) {
        const struct kn_deployment *a = &e->active[i]->d;
        if (a->id == d->id || (strcmp(a->repo, d->repo) == 0 && strcmp(a->app, d->app) == 0)) {
            return 1;
        }
    }
    return 0;
}

static void deploy_start(struct kn_engine *e, const struct kn_deployment *d)
{
    struct deploy *dp = kn_calloc(1, sizeof(*dp));
    struct kn_app_state as;

    dp->e = e;
    kn_deployment_copy(&dp->d, d);
    snprintf(dp->who, sizeof(dp->who), "engine repo=%s app=%s commit=%.7s deployment=%lld",
             d->repo, d->app, d->commit, d->id);
    if (kn_store_app_get(e->deps.store, d->repo, d->app, &as) == 0) {
        snprintf(dp->last_good, sizeof(dp->last_good), "%s", as.last_good);
        snprintf(dp->path, sizeof(dp->path), "%s", as.path);
        kn_app_state_release(&as);
    }
    uv_timer_init(e->deps.loop, &dp->stage_timer);
    uv_timer_init(e->deps.loop, &dp->deploy_timer);
    dp->stage_timer.data = dp;
    dp->deploy_timer.data = dp;
    dp->open_handles = 2;
    e->active = kn_reallocarray(e->active, e->nactive + 1, sizeof(*e->active));
    e->active[e->nactive++] = dp;
    dp->work.data = dp;
    dp->loading = 1;
    if (uv_queue_work(e->deps.loop, &dp->work, load_work, load_done) != 0) {
        dp->loading = 0;
        finish_deploy(dp, KN_DEPLOY_FAILURE, "could not queue the loading of the app");
    }
}

static int pick(const struct kn_deployment *d, void *data)
{
    struct kn_engine *e = data;

    /* oldest first: an app's RUNNING or ROLLING_BACK deployment comes before its PLANNED one */
    if (!e->stopping && !app_active(e, d)) {
        deploy_start(e, d);
    } else {
        int running = 0;
        for (size_t i = 0; i < e->nactive; i++) {
            running |= e->active[i]->d.id == d->id;
        }
        e->queued += !running; /* waits for its app's running deployment */
    }
    return 0;
}

void kn_engine_hold(struct kn_engine *e, int hold)
{
    e->held = hold;
    if (!hold) {
        kn_engine_kick(e);
    }
}

void kn_engine_kick(struct kn_engine *e)
{
    if (e->stopping || e->held) {
        return;
    }
    e->queued = 0;
    kn_store_deployments_open(e->deps.store, pick, e);
    kn_selfmetrics_set(NULL, KN_SM_ENGINE_QUEUE, NULL, NULL, (double)e->queued);
    kn_selfmetrics_set(NULL, KN_SM_ENGINE_RUNNING, NULL, NULL, (double)e->nactive);
    /* a stage waiting on the store (an approval) looks again now. Poking may finish it, start
     * the next stage, even end a deployment (which moves the last entry into its place and kicks
     * again): each entry is read afresh, and a deploy is freed only in its close callbacks */
    for (size_t i = 0, n = e->nactive; i < n && i < e->nactive; i++) {
        struct deploy *dp = e->active[i];
        if (dp->gated) {
            uv_timer_start(&dp->stage_timer, gate_recheck, 0, 0); /* not from inside a kick */
        }
        if (dp->running && dp->run.cfg->kind->poke) {
            dp->run.cfg->kind->poke(&dp->run);
        }
    }
}

static struct deploy *find_deploy(const struct kn_engine *e, long long id)
{
    for (size_t i = 0; i < e->nactive; i++) {
        if (e->active[i]->d.id == id) {
            return e->active[i];
        }
    }
    return NULL;
}

int kn_engine_cancel(struct kn_engine *e, long long id, int rollback, const char *who,
                     const char *reason)
{
    struct kn_store *st = e->deps.store;
    struct kn_deployment d = {0};
    struct deploy *dp;
    char why[1024], name[64];
    int rc;

    if ((rc = kn_store_deployment_get(st, id, &d)) < 0) {
        goto out;
    }
    if (kn_deploy_status_is_final(d.status) || (rollback && d.status == KN_DEPLOY_ROLLING_BACK)) {
        rc = KN_EINVAL;
        goto out;
    }
    cancel_reason(why, sizeof(why), who, reason);
    dp = find_deploy(e, id);
    snprintf(name, sizeof(name), "engine deployment=%lld", id);
    if (kn_deploy_status_is_waiting(d.status)) {
        /* nothing ran: nothing to stop or roll back (one that is loading is let go once loaded) */
        rc = kn_store_deployment_set_status(st, id, KN_DEPLOY_CANCELLED, why, engine_now(e));
        if (rc == 0 && dp) {
            dp->d.status = KN_DEPLOY_CANCELLED;
            if (dp->gated) {
                dp->gated = 0;
                deploy_end(dp); /* held by a gate: nothing else holds it */
            }
        }
        kn_log_info(dp ? dp->who : name, "CANCELLED before it started: %s", why);
        goto out;
    }
    /* recorded first: a restart finishes the cancel instead of resuming the pipeline */
    if ((rc = kn_store_stage_meta_set(st, id, CANCEL_META_INDEX, CANCEL_META_REASON, why)) < 0 ||
        (rc = kn_store_stage_meta_set(st, id, CANCEL_META_INDEX, CANCEL_META_HOW,
                                      rollback ? "rollback" : "keep")) < 0) {
        goto out;
    }
    kn_log_info(dp ? dp->who : name, "%s (%s)", why,
                rollback ? "rolling back" : "leaving the live state as it is");
    if (!dp) {
        kn_engine_kick(e); /* picked up, and cancelled as the store says once loaded */
    } else if (!dp->loading) {
        deploy_cancel(dp, rollback, why);
    }
out:
    kn_deployment_release(&d);
    return rc;
}

/* A break-glass skip: the stage's reason and the deployment's note, kept in the store so that
 * the final status and a restart still show it. */
static void skip_break_glass(struct deploy *dp, int index, const char *who, const char *why)
{
    struct kn_store *st = dp->e->deps.store;
    char *reason = kn_asprintf("skipped by %s (break-glass): %s", who ? who : "kanaria", why);
    char *note = kn_asprintf("stage %d %s %s", index, dp->plan[index]->name, reason);

    kn_store_stage_meta_set(st, dp->d.id, index, SKIP_META_REASON, reason);
    kn_store_stage_meta_set(st, dp->d.id, CANCEL_META_INDEX, BREAK_GLASS_META, note);
    kn_log_warn(dp->who, "%s", note);
    free(note);
    free(reason);
}

int kn_engine_skip(struct kn_engine *e, long long id, int index, const char *who,
                   const char *break_glass)
{
    struct deploy *dp = find_deploy(e, id);
    char status[32];
    int rc = 0;

    if (!dp || dp->loading || dp->rolling_back || !dp->plan ||
        kn_deploy_status_is_final(dp->d.status)) {
        rc = KN_ENOTFOUND;
        goto out;
    }
    if (index < 0 || (size_t)index >= dp->nplan) {
        rc = KN_EINVAL;
        goto out;
    }
    if ((dp->running && index < dp->run.index) ||
        (!(dp->running && dp->run.index == index) &&
         kn_store_stage_get(e->deps.store, id, index, status, sizeof(status), NULL) == 0 &&
         strcmp(status, "NOT_STARTED") != 0)) {
        rc = KN_EEXISTS;
        goto out;
    }
    /* an approval stage passes only with its approvals, or by an admin's break-glass */
    if (dp->plan[index]->kind == &kn_stage_wait_approval && !(break_glass && *break_glass)) {
        rc = KN_EUNSUPPORTED;
        goto out;
    }
    if (break_glass && *break_glass) {
        skip_break_glass(dp, index, who, break_glass);
    }
    if (dp->running && dp->run.index == index) {
        cancel_running(dp, 0);
        kn_store_stage_meta_set(dp->e->deps.store, dp->d.id, index, "ran", "1");
        stage_status(dp, (size_t)index, "SKIPPED");
        kn_log_info(dp->who, "stage %d %s skipped by %s while running", index,
                    dp->plan[index]->name, who ? who : "kanaria");
        run_stage(dp, (size_t)index + 1);
        goto out;
    }
    stage_status(dp, (size_t)index, "SKIPPED");
    kn_log_info(dp->who, "stage %d %s skipped ahead of time by %s", index, dp->plan[index]->name,
                who ? who : "kanaria");
out:
    return rc;
}

/* ---- promote --full ----------------------------------------------------------------------- */

/* The newest verdict of each analysis check of a deployment, to find one failing now. */
struct promote_analysis {
    char check[32][128];
    char verdict[32][32];
    size_t n;
};

static int promote_analysis_seen(const struct kn_analysis_record *r, void *data)
{
    struct promote_analysis *x = data;
    size_t i = 0;

    while (i < x->n && strcmp(x->check[i], r->check) != 0) {
        i++;
    }
    if (i == x->n) {
        if (x->n == sizeof(x->check) / sizeof(x->check[0])) {
            return 0; /* more checks than a pipeline has in practice: the first ones decide */
        }
        snprintf(x->check[x->n++], sizeof(x->check[0]), "%s", r->check);
    }
    snprintf(x->verdict[i], sizeof(x->verdict[0]), "%s", r->verdict);
    return 0;
}

int kn_engine_promote(struct kn_engine *e, long long id, const char *who, char *why, size_t size)
{
    struct deploy *dp = find_deploy(e, id);
    struct promote_analysis seen;
    char status[32], *reason = NULL;
    size_t start, to;
    int rc = 0;

    snprintf(why, size, "%s", "");
    if (!dp || dp->loading || dp->rolling_back || !dp->plan || !dp->running ||
        kn_deploy_status_is_final(dp->d.status) || (size_t)dp->run.index >= dp->nplan) {
        rc = KN_ENOTFOUND;
        snprintf(why, size, "deployment %lld is not running its pipeline", id);
        goto out;
    }
    start = (size_t)dp->run.index;
    for (to = start; to < dp->nplan && dp->plan[to]->kind != &kn_stage_primary_rollout; to++) {
    }
    if (to == dp->nplan) {
        rc = KN_EINVAL;
        snprintf(why, size, "deployment %lld has no PRIMARY_ROLLOUT ahead to promote to", id);
        goto out;
    }
    if (to == start) {
        rc = KN_EEXISTS;
        snprintf(why, size, "deployment %lld is promoting already (stage %zu PRIMARY_ROLLOUT runs)",
                 id, to);
        goto out;
    }
    /* an approval between now and the promotion passes only once its approvers approved (it
     * then ends SUCCESS on its own) */
    for (size_t i = start; i < to; i++) {
        if (dp->plan[i]->kind != &kn_stage_wait_approval ||
            (kn_store_stage_get(e->deps.store, id, (int)i, status, sizeof(status), NULL) == 0 &&
             (strcmp(status, "SUCCESS") == 0 || strcmp(status, "SKIPPED") == 0))) {
            continue;
        }
        rc = KN_EEXISTS;
        snprintf(why, size,
                 "stage %zu WAIT_APPROVAL of deployment %lld lacks its approvals: approve it "
                 "before promoting",
                 i, id);
        goto out;
    }
    /* so does a pause until approved of a CANARY_STEPS, at or after the step it is on */
    for (size_t i = start; i < to; i++) {
        const struct kn_steps_options *o = dp->plan[i]->with;
        const struct kn_steps_pause *p;
        char *v = NULL, key[64];
        long long cur = 1;
        if (dp->plan[i]->kind != &kn_stage_canary_steps || !o) {
            continue;
        }
        if (i == start && (v = kn_store_stage_meta_get(e->deps.store, id, (int)i, "step"))) {
            cur = atoll(v);
            free(v);
        }
        for (size_t k = 0; k < o->pauses.count; k++) {
            p = (const struct kn_steps_pause *)o->pauses.items + k;
            if (!p->until_approved || p->step < cur) {
                continue;
            }
            snprintf(key, sizeof(key), "step.%lld.approved", p->step - 1);
            if ((v = kn_store_stage_meta_get(e->deps.store, id, (int)i, key)) != NULL) {
                free(v);
                continue;
            }
            rc = KN_EEXISTS;
            snprintf(why, size,
                     "stage %zu CANARY_STEPS of deployment %lld pauses after step %lld until "
                     "approved: approve it before promoting",
                     i, id, p->step);
            goto out;
        }
    }
    memset(&seen, 0, sizeof(seen));
    kn_store_analysis_list(e->deps.store, id, promote_analysis_seen, &seen);
    for (size_t i = 0; i < seen.n; i++) {
        if (strcmp(seen.verdict[i], "FAIL") == 0) {
            rc = KN_EEXISTS;
            snprintf(why, size,
                     "analysis '%s' of deployment %lld failed at its last evaluation: the "
                     "canary is not healthy",
                     seen.check[i], id);
            goto out;
        }
    }
    reason = kn_asprintf("promoted by %s (full)", who ? who : "kanaria");
    for (size_t i = start + 1; i < to; i++) {
        if (kn_store_stage_get(e->deps.store, id, (int)i, status, sizeof(status), NULL) == 0 &&
            strcmp(status, "NOT_STARTED") != 0) {
            continue; /* skipped ahead of time already */
        }
        kn_store_stage_meta_set(e->deps.store, id, (int)i, SKIP_META_REASON, reason);
        stage_status(dp, i, "SKIPPED");
    }
    /* the running stage (a CANARY_STEPS stops at its step) is left as it is, like a skip */
    cancel_running(dp, 0);
    kn_store_stage_meta_set(e->deps.store, id, (int)start, "ran", "1");
    kn_store_stage_meta_set(e->deps.store, id, (int)start, SKIP_META_REASON, reason);
    stage_status(dp, start, "SKIPPED");
    kn_log_info(dp->who, "stages %zu to %zu %s", start, to - 1, reason);
    run_stage(dp, to);
out:
    free(reason);
    return rc;
}

void kn_engine_stop(struct kn_engine *e)
{
    e->stopping = 1;
    while (e->nactive > 0) {
        struct deploy *dp = e->active[e->nactive - 1];
        cancel_running(dp, 0);
        uv_timer_stop(&dp->deploy_timer);
        if (dp->loading) {
            e->nactive--; /* load_done ends it */
            continue;
        }
        deploy_end(dp);
    }
}

void kn_engine_free(struct kn_engine *e)
{
    if (!e) {
        return;
    }
    free(e->active);
    free(e);
}

size_t kn_engine_active(const struct kn_engine *e)
{
    return e->nactive;
}
