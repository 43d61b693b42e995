/*
 * The reconcile loop. Each repository has a watch: a timer, and at most one fetch at a time (a
 * trigger during a fetch runs one more right after it). The fetch runs in a child process that
 * is killed at its deadline (git/fetch.c: libgit2 cannot be stopped inside a thread); then, on a
 * new head, the thread pool reads the commit and plans on a snapshot taken from the store, and
 * the loop thread records the result.
 *
 * A mirror has one writer at a time: a watch retired by a reload or a stop has its fetch killed,
 * and a new watch of the same mirror waits until that child is gone.
 */
#include "reconcile.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "detect.h"
#include "git/git.h"
#include "kanaria/alloc.h"
#include "kanaria/log.h"
#include "kanaria/selfmetrics.h"

#define BACKOFF_START_MS 1000LL
#define BACKOFF_MAX_MS (5 * 60 * 1000LL)

/* A config shared by the loop and the fetches in flight. */
struct cfg_ref {
    int refs;
    struct kn_config *cfg;
};

struct watch {
    struct kn_reconcile *rc;
    struct cfg_ref *cfg;
    const struct kn_repo_config *repo; /* in cfg */
    char *mirror;
    char who[192];
    uv_timer_t timer;
    struct kn_git_fetch *fetch; /* the fetch's child process, until its callback */
    uv_work_t work;
    int busy;    /* a fetch (child process, then thread pool) is in flight */
    int waiting; /* a retired watch of the same mirror still has its child: start when it ends */
    int again;   /* triggered while busy */
    int retired; /* the config changed or the loop stops: free when idle */
    int failures;
    int rounds; /* fetches finished (recorded or failed) */
    long long asked_ms;       /* when the fetch in flight was asked for (timer or trigger) */
    long long again_ms;       /* when `again` was first set, 0: not set */
    uint64_t fetch_start_ns;  /* uv_hrtime() at the start of the fetch's process */
    double fetch_seconds;     /* how long that process took, -1: it did not start */
    /* snapshot for the worker, taken on the loop */
    char *prev_head;
    struct kn_detect_known *known;
    size_t nknown;
    char **open_commits;
    size_t nopen;
    /* the worker's result */
    int rc_fetch;
    struct kn_error err;
    git_oid head;
    int detected;
    struct kn_detect detect;
    /* what the last planning keeps for the next (the worker's while busy); a new watch (start,
     * reload) begins empty, so its first planning loads every app */
    struct kn_detect_cache *cache;
};

struct kn_reconcile {
    uv_loop_t *loop;
    struct kn_store *store;
    struct cfg_ref *cfg;
    struct watch **watches;
    size_t nwatches;
    struct watch **draining; /* retired watches still busy */
    size_t ndraining;
    char exe[PATH_MAX]; /* this binary, which runs the fetches (`exe __fetch`) */
    int stopping;
    kn_reconcile_planned_cb on_planned;
    void *on_planned_data;
    kn_reconcile_prune_cb on_prune;
    void *on_prune_data;
    kn_reconcile_round_cb on_round;
    void *on_round_data;
    int round_told; /* on_round was called */
};

static long long now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

long long kn_reconcile_backoff_ms(int failures)
{
    long long ms = BACKOFF_START_MS;

    for (int i = 1; i < failures && ms < BACKOFF_MAX_MS; i++) {
        ms *= 2;
    }
    return ms < BACKOFF_MAX_MS ? ms : BACKOFF_MAX_MS;
}

long long kn_reconcile_jitter_ms(long long interval, double r)
{
    return interval + (long long)((double)interval * 0.2 * (r - 0.5));
}

static void cfg_unref(struct cfg_ref *ref)
{
    if (ref && --ref->refs == 0) {
        kn_config_free(ref->cfg);
        free(ref);
    }
}

/* ---- snapshot ------------------------------------------------------------------------------ */

static int snap_app(const struct kn_app_state *a, void *data)
{
    struct watch *w = data;
    struct kn_detect_known *k;
    char baseline[41];

    w->known = kn_reallocarray(w->known, w->nknown + 1, sizeof(*w->known));
    k = &w->known[w->nknown++];
    memset(k, 0, sizeof(*k));
    k->name = kn_strdup(a->name);
    k->path = a->path[0] ? kn_strdup(a->path) : NULL;
    k->orphaned = a->orphaned_at != 0;
    if (a->pruned_at) {
        return 0; /* nothing of it runs: back in the repository, it is a first deployment */
    }
    k->deployed = a->last_good[0] ? kn_strdup(a->last_good) : NULL;
    /* only a deployment of a new commit moves the baseline: a self-heal, a sync or a rollback
     * deploys an older one again, which must not make the changes after it look new */
    kn_store_deployment_baseline(w->rc->store, a->repo, a->name, baseline);
    k->baseline = baseline[0] ? kn_strdup(baseline) : NULL;
    return 0;
}

static int snap_open(const struct kn_deployment *d, void *data)
{
    struct watch *w = data;

    if (strcmp(d->repo, w->repo->name) == 0 &&
        kn_deploy_status_is_waiting(d->status)) {
        w->open_commits = kn_reallocarray(w->open_commits, w->nopen + 1, sizeof(char *));
        w->open_commits[w->nopen++] = kn_strdup(d->commit);
    }
    return 0;
}

static void snapshot_release(struct watch *w)
{
    for (size_t i = 0; i < w->nknown; i++) {
        free(w->known[i].name);
        free(w->known[i].baseline);
        free(w->known[i].deployed);
        free(w->known[i].path);
    }
    free(w->known);
    w->known = NULL;
    w->nknown = 0;
    for (size_t i = 0; i < w->nopen; i++) {
        free(w->open_commits[i]);
    }
    free(w->open_commits);
    w->open_commits = NULL;
    w->nopen = 0;
    free(w->prev_head);
    w->prev_head = NULL;
}

static void snapshot_take(struct watch *w)
{
    struct kn_repo_state rs;

    if (kn_store_repo_get(w->rc->store, w->repo->name, &rs) == 0 && rs.head[0]) {
        w->prev_head = kn_strdup(rs.head);
    }
    kn_store_apps(w->rc->store, w->repo->name, snap_app, w);
    kn_store_deployments_open(w->rc->store, snap_open, w);
}

/* ---- the worker (thread pool) ------------------------------------------------------------- */

/* Read the new head and plan (after a fetch that brought one). */
static void detect_work(uv_work_t *req)
{
    struct watch *w = req->data;
    git_repository *repo = NULL;
    struct kn_detect_input in;

    if ((w->rc_fetch = kn_git_open(&repo, w->mirror, &w->err)) < 0) {
        return;
    }
    memset(&in, 0, sizeof(in));
    in.repo = repo;
    in.cache = w->cache;
    git_oid_cpy(&in.head, &w->head);
    in.prev_head = w->prev_head;
    in.config = w->cfg->cfg;
    in.known = w->known;
    in.nknown = w->nknown;
    in.open_commits = (const char *const *)w->open_commits;
    in.nopen = w->nopen;
    w->rc_fetch = kn_detect_run(&w->detect, &in, &w->err);
    w->detected = 1;
    git_repository_free(repo);
}

/* ---- recording (loop) --------------------------------------------------------------------- */

static void schedule(struct watch *w, long long delay_ms);
static void watch_closed(uv_handle_t *h);
static void start_fetch(struct watch *w);

static int record_app(struct watch *w, const struct kn_detect_app *a, const char *head)
{
    struct kn_store *st = w->rc->store;
    const struct kn_detect *d = &w->detect;
    struct kn_app_state before = {0};
    char who[320];
    long long id = 0;
    int had = kn_store_app_get(st, w->repo->name, a->name, &before) == 0;
    int same_error = had && a->errors && strcmp(before.error, a->errors) == 0;
    int rc;

    kn_app_state_release(&before); /* only its fixed fields are used below */
    snprintf(who, sizeof(who), "%s app=%s commit=%.7s", w->who, a->name, head);
    /* only a valid folder brings an orphan back: a pruned one is then planned afresh (its
     * snapshot had no baseline), and an invalid folder taking its name changes nothing */
    if (had && before.orphaned_at && !a->errors &&
        kn_store_app_restore(st, w->repo->name, a->name, now_ms()) > 0) {
        kn_log_info(who, "in the repository again: no longer orphaned%s",
                    before.pruned_at ? " (it was pruned: deployed afresh)" : "");
    }
    kn_store_app_seen(st, w->repo->name, a->name, a->path, head, a->errors);
    if (a->errors) {
        /* once per change of its errors: a commit that leaves them as they were says nothing
         * new (an app carried over by the detection is not even listed) */
        if (!same_error) {
            kn_log_error(who, "invalid at this commit, not deployed:\n%s", a->errors);
            kn_store_event_add(st, "INVALID_APP", w->repo->name, a->name, 0, "kanaria",
                               a->errors, now_ms());
        }
        return 0;
    }
    if (!a->touched) {
        kn_log_debug(who, "not touched by the change");
        return 0;
    }
    if (a->plan.strategy == KN_PLAN_NONE) {
        kn_log_info(who, "not deployed: %s", a->plan.summary);
        return 0;
    }
    {
        struct kn_deployment_new nd = {
            .repo = w->repo->name,
            .app = a->name,
            .commit = head,
            .author = d->info.author,
            .message = d->info.summary,
            .commit_time = d->info.time * 1000,
            .strategy = kn_plan_strategy_name(a->plan.strategy),
            .summary = a->plan.summary,
            .plan_json = a->plan_json,
        };
        rc = kn_store_deployment_add(st, &nd, now_ms(), &id);
    }
    if (rc == KN_EEXISTS) {
        return 0;
    }
    if (rc < 0) {
        kn_log_error(who, "could not record the deployment: %s", kn_strerror(rc));
        return 0;
    }
    snprintf(who, sizeof(who), "%s app=%s commit=%.7s deployment=%lld", w->who, a->name, head,
             id);
    kn_log_info(who, "planned %s: %s", kn_plan_strategy_name(a->plan.strategy), a->plan.summary);
    return 1;
}

/* An app whose folder is gone from the head keeps running, orphaned (said once); one whose last
 * good config has spec.prune is removed from its platform. */
static void record_gone(struct watch *w, const struct kn_detect_gone *g, const char *head)
{
    struct kn_store *st = w->rc->store;
    struct kn_app_state a;
    char who[320], msg[1024];
    int prune = g->prune;

    snprintf(who, sizeof(who), "%s app=%s commit=%.7s", w->who, g->name, head);
    if (kn_store_app_get(st, w->repo->name, g->name, &a) < 0) {
        return;
    }
    kn_app_state_release(&a); /* only its fixed fields are used below */
    if (prune && (a.current_deployment || !w->rc->on_prune)) {
        prune = 0; /* a deployment of it is under way: an operator decides (kanaria prune) */
    }
    snprintf(msg, sizeof(msg), "no folder of %.7s declares the app any more (it was %s): %s", head,
             a.path[0] ? a.path : "unknown",
             prune ? "spec.prune is true, removing it from its platform"
                   : "it keeps running, orphaned, until `kanaria prune` removes it");
    if (kn_store_app_orphan(st, w->repo->name, g->name, msg, now_ms()) <= 0) {
        return;
    }
    kn_log_warn(who, "orphaned: %s", msg);
    if (prune) {
        w->rc->on_prune(w->rc->on_prune_data, w->repo->name, g->name, "kanaria");
    }
}

struct stale_ctx {
    struct watch *w;
    long long *ids;
    size_t n;
};

static int find_stale(const struct kn_deployment *d, void *data)
{
    struct stale_ctx *sc = data;

    if (strcmp(d->repo, sc->w->repo->name) != 0 ||
        !kn_deploy_status_is_waiting(d->status)) {
        return 0;
    }
    for (size_t i = 0; i < sc->w->detect.nstale; i++) {
        if (strcmp(d->commit, sc->w->detect.stale[i]) == 0) {
            sc->ids = kn_reallocarray(sc->ids, sc->n + 1, sizeof(*sc->ids));
            sc->ids[sc->n++] = d->id;
        }
    }
    return 0;
}

/* Deployments not yet started whose commit left the branch are never run. */
static void record_stale(struct watch *w)
{
    struct stale_ctx sc = {.w = w};
    char who[256];

    if (w->detect.nstale == 0) {
        return;
    }
    kn_store_deployments_open(w->rc->store, find_stale, &sc);
    for (size_t i = 0; i < sc.n; i++) {
        snprintf(who, sizeof(who), "%s deployment=%lld", w->who, sc.ids[i]);
        kn_log_warn(who, "dropped: its commit is no longer on the branch");
        kn_store_deployment_set_status(w->rc->store, sc.ids[i], KN_DEPLOY_SUPERSEDED,
                                       "its commit is no longer on the branch (force-push)",
                                       now_ms());
    }
    free(sc.ids);
}

static void drain_done(struct watch *w);

/* Tell on_round once every current repository has finished a fetch. */
static void check_first_round(struct kn_reconcile *rc)
{
    if (rc->round_told || !rc->on_round) {
        return;
    }
    for (size_t i = 0; i < rc->nwatches; i++) {
        if (rc->watches[i]->rounds == 0) {
            return;
        }
    }
    rc->round_told = 1;
    rc->on_round(rc->on_round_data);
}

/* The end of a fetch and its planning (or of a fetch that failed): record, schedule the next. */
static void fetch_finish(struct watch *w, int cancelled)
{
    struct kn_store *st = w->rc->store;
    char head_hex[GIT_OID_HEXSZ + 1];
    long long next;
    int planned = 0, recorded = 0;

    w->busy = 0;
    if (cancelled) {
        goto out;
    }
    if (w->rc_fetch < 0) {
        w->failures++;
        next = kn_reconcile_backoff_ms(w->failures);
        kn_store_repo_failed(st, w->repo->name, w->err.msg, now_ms());
        kn_selfmetrics_add(NULL, KN_SM_FETCH_FAILURES, w->repo->name, NULL, 1);
        kn_log_warn(w->who, "fetch failed (attempt %d, retrying in %llds) after %.2fs: %s",
                    w->failures, next / 1000, w->fetch_seconds > 0 ? w->fetch_seconds : 0.0,
                    w->err.msg);
        schedule(w, next);
        w->rounds++;
        check_first_round(w->rc);
        goto out;
    }
    w->failures = 0;
    git_oid_tostr(head_hex, sizeof(head_hex), &w->head);
    if (w->detected) {
        if (w->detect.forced) {
            kn_log_warn(w->who, "branch '%s' was rewritten (force-push): planning from the new "
                        "head %.7s", w->repo->branch, head_hex);
            kn_store_event_add(st, "FORCE_PUSHED", w->repo->name, "", 0, "kanaria",
                               "the branch was rewritten; planning from the new head", now_ms());
        }
        record_stale(w);
        if (w->detect.incremental) {
            /* the apps the detection carried over are seen at the head as they were */
            kn_store_apps_carry(st, w->repo->name, w->detect.from, head_hex,
                                (const char *const *)w->detect.removed.items,
                                w->detect.removed.count);
        }
        for (size_t i = 0; i < w->detect.napps; i++) {
            planned += record_app(w, &w->detect.apps[i], head_hex);
        }
        for (size_t i = 0; i < w->detect.ngone; i++) {
            record_gone(w, &w->detect.gone[i], head_hex);
        }
        kn_detect_release(&w->detect);
        w->detected = 0;
        recorded = 1;
    }
    /* last: a crash before this line fetches and detects again, and adding a deployment twice
     * is refused by the store */
    kn_store_repo_fetched(st, w->repo->name, head_hex, now_ms());
    if (recorded) {
        kn_selfmetrics_set(NULL, KN_SM_RECONCILE_LAG, w->repo->name, NULL,
                           (double)(now_ms() - w->asked_ms) / 1000.0);
    }
    if (planned && w->rc->on_planned) {
        w->rc->on_planned(w->rc->on_planned_data);
    }
    w->rounds++;
    check_first_round(w->rc);
    if (w->again) {
        w->again = 0;
        schedule(w, 0);
    } else if (w->repo->poll_interval_ms > 0) {
        schedule(w, kn_reconcile_jitter_ms(w->repo->poll_interval_ms, rand() / (RAND_MAX + 1.0)));
    }
out:
    if (w->detected) {
        kn_detect_release(&w->detect);
        w->detected = 0;
    }
    snapshot_release(w);
    if (w->retired) {
        drain_done(w);
        uv_close((uv_handle_t *)&w->timer, watch_closed);
    }
}

static void detect_done(uv_work_t *req, int status)
{
    struct watch *w = req->data;

    fetch_finish(w, status == UV_ECANCELED);
}

/* The fetch's child has ended (fetch.c calls back once per fetch). */
static void fetched(int rc, const git_oid *head, const struct kn_error *err, void *data)
{
    struct watch *w = data;
    char head_hex[GIT_OID_HEXSZ + 1];

    w->fetch = NULL;
    w->detected = 0;
    w->rc_fetch = rc;
    w->fetch_seconds = (double)(uv_hrtime() - w->fetch_start_ns) / 1e9;
    if (w->retired) {
        fetch_finish(w, 1);
        return;
    }
    if (rc < 0) {
        kn_selfmetrics_observe(NULL, KN_SM_FETCH_DURATION, w->repo->name, NULL, w->fetch_seconds);
        w->err = *err;
        fetch_finish(w, 0);
        return;
    }
    kn_selfmetrics_observe(NULL, KN_SM_FETCH_DURATION, w->repo->name, NULL, w->fetch_seconds);
    git_oid_cpy(&w->head, head);
    git_oid_tostr(head_hex, sizeof(head_hex), head);
    kn_log_debug(w->who, "fetched %.7s in %.2fs", head_hex, w->fetch_seconds);
    if (w->prev_head && strcmp(w->prev_head, head_hex) == 0) {
        fetch_finish(w, 0); /* nothing new */
        return;
    }
    w->work.data = w;
    if (uv_queue_work(w->rc->loop, &w->work, detect_work, detect_done) != 0) {
        w->rc_fetch = kn_error_set(&w->err, KN_EIO, NULL, "could not queue the planning");
        fetch_finish(w, 0);
    }
}

/* ---- scheduling ------------------------------------------------------------------------------ */

/* Whether a retired watch of the same mirror still has a fetch process. */
static int mirror_draining(struct watch *w)
{
    for (size_t i = 0; i < w->rc->ndraining; i++) {
        if (w->rc->draining[i]->fetch && strcmp(w->rc->draining[i]->mirror, w->mirror) == 0) {
            return 1;
        }
    }
    return 0;
}

/* A retired watch is done: forget it, and start the fetch that waited for its mirror. */
static void drain_done(struct watch *w)
{
    struct kn_reconcile *rc = w->rc;

    for (size_t i = 0; i < rc->ndraining; i++) {
        if (rc->draining[i] == w) {
            rc->draining[i] = rc->draining[--rc->ndraining];
            break;
        }
    }
    for (size_t i = 0; i < rc->nwatches; i++) {
        struct watch *n = rc->watches[i];

        if (n->waiting && strcmp(n->mirror, w->mirror) == 0 && !mirror_draining(n)) {
            n->waiting = 0;
            start_fetch(n);
        }
    }
}

static void start_fetch(struct watch *w)
{
    const struct kn_repo_config *r = w->repo;
    struct kn_git_auth auth = {
        .username = r->credentials.username,
        .token_file = r->credentials.token_file,
        .ssh_key_file = r->credentials.ssh_key_file,
        .ca_file = r->ca_file,
        .repo_name = r->name,
    };
    struct kn_git_fetch_opts opts = {
        .exe = w->rc->exe,
        .mirror_path = w->mirror,
        .url = r->url,
        .branch = r->branch,
        .auth = &auth,
        .timeout_ms = r->fetch_timeout_ms,
        .stall_timeout_ms = r->fetch_stall_timeout_ms,
    };

    if (w->busy) {
        if (!w->again) {
            w->again_ms = now_ms();
        }
        w->again = 1;
        return;
    }
    if (w->retired || w->rc->stopping) {
        return;
    }
    if (mirror_draining(w)) {
        kn_log_debug(w->who, "waiting for the stopped fetch of the same mirror to end");
        w->waiting = 1;
        return;
    }
    w->busy = 1;
    /* a trigger during the previous fetch asked for this one when it came */
    w->asked_ms = w->again_ms ? w->again_ms : now_ms();
    w->again_ms = 0;
    w->fetch_seconds = -1;
    w->fetch_start_ns = uv_hrtime();
    snapshot_take(w);
    kn_error_clear(&w->err);
    kn_log_debug(w->who, "fetching");
    if ((w->rc_fetch = kn_git_fetch_start(&w->fetch, w->rc->loop, &opts, fetched, w, &w->err)) <
        0) {
        fetch_finish(w, 0);
    }
}

static void on_timer(uv_timer_t *t)
{
    start_fetch(t->data);
}

static void schedule(struct watch *w, long long delay_ms)
{
    if (w->retired || w->rc->stopping) {
        return;
    }
    uv_timer_start(&w->timer, on_timer, (uint64_t)(delay_ms > 0 ? delay_ms : 0), 0);
}

static void watch_closed(uv_handle_t *h)
{
    struct watch *w = h->data;

    cfg_unref(w->cfg);
    kn_detect_cache_free(w->cache);
    free(w->mirror);
    free(w);
}

/* Stop a watch: its fetch process is killed (nothing recorded), its planning on the thread pool
 * (disk only) is cancelled, or finishes and is recorded; its memory goes when the timer is
 * closed, after that. */
static void watch_retire(struct watch *w)
{
    struct kn_reconcile *rc = w->rc;

    w->retired = 1;
    uv_timer_stop(&w->timer);
    if (!w->busy) {
        uv_close((uv_handle_t *)&w->timer, watch_closed);
        return;
    }
    rc->draining = kn_reallocarray(rc->draining, rc->ndraining + 1, sizeof(*rc->draining));
    rc->draining[rc->ndraining++] = w;
    if (w->fetch) {
        kn_git_fetch_stop(w->fetch);
    } else {
        uv_cancel((uv_req_t *)&w->work);
    }
}

static void create_watches(struct kn_reconcile *rc)
{
    const struct kn_config *cfg = rc->cfg->cfg;
    const struct kn_repo_config *repos = cfg->repositories.items;

    rc->watches = kn_calloc(cfg->repositories.count ? cfg->repositories.count : 1,
                            sizeof(*rc->watches));
    rc->nwatches = cfg->repositories.count;
    for (size_t i = 0; i < cfg->repositories.count; i++) {
        struct watch *w = kn_calloc(1, sizeof(*w));
        w->rc = rc;
        w->cfg = rc->cfg;
        rc->cfg->refs++;
        w->repo = &repos[i];
        w->mirror = kn_asprintf("%s/repos/%s.git", cfg->data_dir, repos[i].name);
        w->cache = kn_detect_cache_new();
        snprintf(w->who, sizeof(w->who), "reconcile repo=%s", repos[i].name);
        uv_timer_init(rc->loop, &w->timer);
        w->timer.data = w;
        rc->watches[i] = w;
    }
}

static void retire_watches(struct kn_reconcile *rc)
{
    for (size_t i = 0; i < rc->nwatches; i++) {
        watch_retire(rc->watches[i]);
    }
    free(rc->watches);
    rc->watches = NULL;
    rc->nwatches = 0;
}

int kn_reconcile_new(struct kn_reconcile **out, uv_loop_t *loop, struct kn_store *store,
                     struct kn_config *cfg)
{
    struct kn_reconcile *rc = kn_calloc(1, sizeof(*rc));
    size_t len = sizeof(rc->exe);

    /* /proc/self/exe where there is one: the very binary that runs, even when an upgrade has
     * replaced or removed the file since it started */
    if (access("/proc/self/exe", X_OK) == 0 || uv_exepath(rc->exe, &len) != 0) {
        snprintf(rc->exe, sizeof(rc->exe), "/proc/self/exe");
    }
    rc->loop = loop;
    rc->store = store;
    rc->cfg = kn_calloc(1, sizeof(*rc->cfg));
    rc->cfg->refs = 1;
    rc->cfg->cfg = cfg;
    srand((unsigned)(now_ms() ^ (long long)getpid()));
    create_watches(rc);
    *out = rc;
    return 0;
}

void kn_reconcile_on_planned(struct kn_reconcile *rc, kn_reconcile_planned_cb cb, void *data)
{
    rc->on_planned = cb;
    rc->on_planned_data = data;
}

void kn_reconcile_on_prune(struct kn_reconcile *rc, kn_reconcile_prune_cb cb, void *data)
{
    rc->on_prune = cb;
    rc->on_prune_data = data;
}

void kn_reconcile_on_first_round(struct kn_reconcile *rc, kn_reconcile_round_cb cb, void *data)
{
    rc->on_round = cb;
    rc->on_round_data = data;
}

void kn_reconcile_start(struct kn_reconcile *rc)
{
    for (size_t i = 0; i < rc->nwatches; i++) {
        start_fetch(rc->watches[i]);
    }
    check_first_round(rc);
}

int kn_reconcile_trigger(struct kn_reconcile *rc, const char *repo)
{
    for (size_t i = 0; i < rc->nwatches; i++) {
        if (strcmp(rc->watches[i]->repo->name, repo) == 0) {
            uv_timer_stop(&rc->watches[i]->timer);
            start_fetch(rc->watches[i]);
            return 0;
        }
    }
    return KN_ENOTFOUND;
}

void kn_reconcile_set_config(struct kn_reconcile *rc, struct kn_config *cfg)
{
    retire_watches(rc);
    cfg_unref(rc->cfg);
    rc->cfg = kn_calloc(1, sizeof(*rc->cfg));
    rc->cfg->refs = 1;
    rc->cfg->cfg = cfg;
    create_watches(rc);
    kn_reconcile_start(rc);
}

void kn_reconcile_stop(struct kn_reconcile *rc)
{
    rc->stopping = 1;
    retire_watches(rc);
}

void kn_reconcile_free(struct kn_reconcile *rc)
{
    if (!rc) {
        return;
    }
    free(rc->watches);
    free(rc->draining);
    cfg_unref(rc->cfg);
    free(rc);
}
