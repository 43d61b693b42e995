/*
 * `kanaria serve -c kanaria.yaml`: the controller. One libuv loop: the reconcile loop fetches and
 * plans; signals stop it (SIGTERM, SIGINT: finish the step in flight, persist, exit 0) or reload
 * the config (SIGHUP: keep the old one when the new one is invalid, and say why). One instance
 * per dataDir, held by a lock file.
 *
 * Leader election: when a platform campaigns for the lead (kn_platform_lead accepts), the API
 * serves at once but nothing deploys (the engine held; no polling, drift or prune of orphans)
 * until every such platform says this instance leads (a webhook or SIGHUP may still fetch and
 * plan, which the engine runs once it leads); when one says it lost the lead, kanaria stops as on
 * SIGTERM but exits 1, as kube-controller-manager does, and its supervisor starts it again.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "api/api.h"
#include "cli/cli.h"
#include "git/git.h"
#include "kanaria/alloc.h"
#include "kanaria/config.h"
#include "kanaria/engine.h"
#include "kanaria/log.h"
#include "kanaria/metrics.h"
#include "kanaria/selfmetrics.h"
#include "kanaria/store.h"
#include "kanaria/plugin/platform.h"
#include "kanaria/validate.h"
#include "actions.h"
#include "drift.h"
#include "slo.h"
#include "feed.h"
#include "gate.h"
#include "notify.h"
#include "prune.h"
#include "reconcile.h"
#include "kanaria/http.h"
#include "kanaria/sdnotify.h"

#define WHO "serve"

struct serve;

/* One platform that campaigns for the lead. */
struct serve_lead {
    struct serve *s;
    size_t i; /* in s->platforms */
    int leading;
};

struct serve {
    const char *config_path;
    uv_loop_t loop;
    uv_signal_t sigterm;
    uv_signal_t sigint;
    uv_signal_t sighup;
    struct kn_store *store;
    struct kn_reconcile *reconcile;
    struct kn_engine *engine;
    struct kn_api *api;
    struct kn_actions *actions; /* the operator's actions, for the API */
    struct kn_drift *drift;
    struct kn_slo_monitor *slo; /* the SLO readings (leader only), also s->gates.slo */
    struct kn_feed *feed; /* new events of the store, to notifications and the API */
    struct kn_notify *notify;
    struct kn_http_client *http;
    struct kn_platform **platforms;
    size_t nplatforms;
    struct kn_metrics **metrics;
    size_t nmetrics;
    char *data_dir;
    const struct kn_config *config; /* the running one, borrowed from the reconcile loop */
    /* The config as it was at start, for loading deployments' apps on the thread pool: the
     * platforms and metrics providers an app names resolve against it (they change only with
     * a restart), and a reload never frees it under a loading thread. Owned. */
    struct kn_config *load_config;
    struct kn_gates gates;          /* the start gates; gates.cfg follows config */
    int lock_fd;
    struct serve_lead *leads; /* the platforms that campaign, nleads of them */
    size_t nleads;
    int deploying;            /* 0 while the lead is awaited */
    int lost;                 /* the lead was lost: exit 1 */
    int stopped;
    uv_timer_t lead_lost;     /* stops kanaria outside the platform's callback */
    uv_timer_t watchdog;      /* WATCHDOG=1 to systemd every half of WATCHDOG_USEC */
    uv_timer_t settle;        /* gives freed memory back once events stop (KN_SERVE_SETTLE_MS) */
    int ready;                /* READY=1 was sent */
};

/* ---- what the engine needs ---------------------------------------------------------------- */

static struct kn_platform *find_platform(void *data, const char *name)
{
    struct serve *s = data;

    for (size_t i = 0; i < s->nplatforms; i++) {
        if (strcmp(kn_platform_name(s->platforms[i]), name) == 0) {
            return s->platforms[i];
        }
    }
    return NULL;
}

/* The metrics provider `name`; NULL: the first one. */
static struct kn_metrics *find_metrics(void *data, const char *name)
{
    struct serve *s = data;

    for (size_t i = 0; i < s->nmetrics; i++) {
        if (!name || strcmp(s->metrics[i]->name, name) == 0) {
            return s->metrics[i];
        }
    }
    return NULL;
}

/* The platforms in order, for drift. */
static struct kn_platform *platform_at(void *data, size_t i)
{
    struct serve *s = data;

    return i < s->nplatforms ? s->platforms[i] : NULL;
}

/* The live state of `app` as drift last read it (the API never asks a platform itself). */
static int app_live(void *data, const char *app, struct kn_live_state *out)
{
    struct serve *s = data;

    return kn_drift_live(s->drift, NULL, app, out);
}

struct extract {
    struct kn_source *src;
    const char *prefix; /* the app's folder + "/" ("" for the top) */
    const char *dest;
    int failed;
};

/* Write one file of the app's folder under the work folder. */
static int extract_file(const char *relpath, void *data)
{
    struct extract *x = data;
    size_t n = strlen(x->prefix);
    struct kn_buf buf;
    struct kn_error err;
    char *path;
    FILE *f;

    if (strncmp(relpath, x->prefix, n) != 0) {
        return 0;
    }
    path = kn_asprintf("%s/%s", x->dest, relpath + n);
    for (char *p = path + strlen(x->dest) + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            mkdir(path, 0755);
            *p = '/';
        }
    }
    kn_buf_init(&buf, 64 * 1024 * 1024);
    if (x->src->ops->read(x->src, relpath, &buf, &err) < 0 || !(f = fopen(path, "w"))) {
        x->failed = 1;
    } else {
        if (buf.len && fwrite(buf.data, 1, buf.len, f) != buf.len) {
            x->failed = 1;
        }
        fclose(f);
    }
    kn_buf_release(&buf);
    free(path);
    return 0;
}

/* A checkout of the app's folder for SCRIPT_RUN: dataDir/work/deployment-ID. */
static char *extract_app(struct serve *s, struct kn_source *src, const struct kn_app *app,
                         long long id)
{
    const struct kn_stage_config *stages = app->cfg.spec.pipeline.items;
    char *work = kn_asprintf("%s/work", s->data_dir);
    char *prefix = app->dir[0] ? kn_asprintf("%s/", app->dir) : kn_strdup("");
    struct extract x = {.src = src, .prefix = prefix};
    int scripts = 0;

    for (size_t i = 0; i < app->cfg.spec.pipeline.count; i++) {
        scripts |= strcmp(stages[i].name, "SCRIPT_RUN") == 0;
    }
    if (!scripts) {
        free(work);
        free(prefix);
        return NULL;
    }
    x.dest = kn_asprintf("%s/deployment-%lld", work, id);
    mkdir(work, 0755);
    mkdir(x.dest, 0700);
    src->ops->walk(src, extract_file, &x);
    free(work);
    free(prefix);
    return (char *)(uintptr_t)x.dest;
}

/* The app at the deployment's commit and at the last good one, read from the repository's
 * mirror (thread pool). */
static void load_deployment(void *data, const struct kn_deployment *d, const char *app_path,
                            const char *last_good, struct kn_engine_load *out)
{
    struct serve *s = data;
    char *mirror = kn_asprintf("%s/repos/%s.git", s->data_dir, d->repo);
    git_repository *repo = NULL;
    struct kn_source *src = NULL;
    struct kn_error err;
    git_oid commit, good;
    char *path = NULL;

    kn_error_clear(&err);
    memset(out, 0, sizeof(*out));
    if (kn_git_open(&repo, mirror, &err) < 0 || git_oid_fromstr(&commit, d->commit) != 0 ||
        kn_git_tree_source_new(&src, repo, &commit, &err) < 0) {
        snprintf(out->error, sizeof(out->error), "%s", err.msg[0] ? err.msg : "bad commit");
        goto out;
    }
    path = kn_strdup(app_path);
    kn_validate_app_load(&out->app, src, path, s->load_config);
    if (out->app->diags.count == 0) {
        out->workdir = extract_app(s, src, out->app, d->id);
    }
    kn_source_free(src);
    src = NULL;
    if (last_good && git_oid_fromstr(&good, last_good) == 0) {
        if (kn_git_tree_source_new(&src, repo, &good, &err) == 0) {
            kn_validate_app_load(&out->last_good, src, path, s->load_config);
            if (out->last_good->diags.count > 0) {
                kn_app_free(out->last_good);
                out->last_good = NULL;
            }
        }
        kn_git_changed_paths(repo, &good, &commit, &out->changed, &err);
    }
out:
    kn_source_free(src);
    git_repository_free(repo);
    free(path);
    free(mirror);
}


/* The SLO readings, for the API (none on a standby: the leader reads them). */
static void slo_readings(void *data, const char *repo, const char *app, kn_slo_reading_cb cb,
                         void *cb_data)
{
    struct serve *s = data;

    kn_slo_monitor_each(s->slo, repo, app, cb, cb_data);
}

/* The engine's start gates (kanaria/gate.h). */
static void gate_deployment(void *data, const struct kn_deployment *d, const struct kn_app *app,
                            long long now_ms, struct kn_gate_verdict *out)
{
    struct serve *s = data;

    kn_gates_check(&s->gates, d, app, now_ms, out);
}

static void print_diags(const struct kn_diags *d)
{
    char line[2048];

    for (size_t i = 0; i < d->count; i++) {
        kn_log_error(WHO, "%s", kn_diag_format(&d->items[i], line, sizeof(line)));
    }
}

/* mkdir -p */
static int make_dirs(const char *path)
{
    char *p = kn_strdup(path);
    int rc = 0;

    for (char *s = p + 1; *s; s++) {
        if (*s == '/') {
            *s = '\0';
            if (mkdir(p, 0755) < 0 && errno != EEXIST) {
                rc = -errno;
            }
            *s = '/';
        }
    }
    if (mkdir(p, 0755) < 0 && errno != EEXIST) {
        rc = -errno;
    }
    free(p);
    return rc;
}

/* How long a start waits for kanaria.lock: `kill -9` returns before the process is gone, and a
 * restart right after it must not find the lock still held by the one that is exiting. */
#define KN_SERVE_LOCK_WAIT_MS 5000

/* Hold dataDir/kanaria.lock for the life of the process; a second instance is refused. */
static int take_lock(struct serve *s, const char *data_dir)
{
    char *path = kn_asprintf("%s/kanaria.lock", data_dir);
    char pid[32];
    int waited = 0;
    int rc = 0;

    s->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (s->lock_fd < 0) {
        kn_log_error(WHO, "cannot open %s: %s", path, strerror(errno));
        rc = KN_EIO;
        goto out;
    }
    while (flock(s->lock_fd, LOCK_EX | LOCK_NB) < 0) {
        if (waited >= KN_SERVE_LOCK_WAIT_MS) {
            ssize_t n = pread(s->lock_fd, pid, sizeof(pid) - 1, 0);
            pid[n > 0 ? n : 0] = '\0';
            pid[strcspn(pid, "\n")] = '\0';
            kn_log_error(WHO, "another kanaria serve is running on %s (pid %s), still after %d s",
                         data_dir, pid[0] ? pid : "unknown", KN_SERVE_LOCK_WAIT_MS / 1000);
            rc = KN_EEXISTS;
            goto out;
        }
        nanosleep(&(struct timespec){.tv_nsec = 100 * 1000 * 1000}, NULL);
        waited += 100;
    }
    snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    if (ftruncate(s->lock_fd, 0) < 0 || pwrite(s->lock_fd, pid, strlen(pid), 0) < 0) {
        kn_log_warn(WHO, "cannot write the pid into %s", path);
    }
out:
    free(path);
    return rc;
}

static void apply_log_config(const struct kn_config *cfg)
{
    kn_log_setup((enum kn_log_level)cfg->log.level, (enum kn_log_format)cfg->log.format);
}

static void kick_engine(void *data)
{
    struct serve *s = data;
    kn_engine_kick(s->engine);
    kn_feed_kick(s->feed);
}

/* Remove an orphaned app from the platforms (spec.prune, or an operator's prune). */
static void prune_app(void *data, const char *repo, const char *app, const char *actor)
{
    struct serve *s = data;
    if (!s->deploying) {
        return; /* the leader prunes */
    }
    kn_prune_start(s->store, s->platforms, s->nplatforms, repo, app, actor);
}

/* A platform that holds the lead releases it as it stops, with a request of its own (at most
 * 2 s): the HTTP client closes after that, not under it. */
#define KN_SERVE_RELEASE_MS 2500

static void handle_freed(uv_handle_t *h)
{
    free(h);
}

static void close_http(uv_timer_t *t)
{
    kn_http_client_close(t->data);
    uv_close((uv_handle_t *)t, handle_freed);
}

/* Platforms keep their apps running; this only lets go of them. */
static void stop_platforms(struct serve *s)
{
    int held = 0;

    for (size_t i = 0; i < s->nleads; i++) {
        held |= s->leads[i].leading;
    }
    for (size_t i = 0; i < s->nplatforms; i++) {
        kn_platform_free(s->platforms[i]);
    }
    s->nplatforms = 0;
    for (size_t i = 0; i < s->nmetrics; i++) {
        kn_metrics_free(s->metrics[i]);
    }
    s->nmetrics = 0;
    if (s->http && held && !s->lost) {
        uv_timer_t *t = kn_calloc(1, sizeof(*t));
        uv_timer_init(&s->loop, t);
        t->data = s->http;
        uv_timer_start(t, close_http, KN_SERVE_RELEASE_MS, 0);
    } else if (s->http) {
        kn_http_client_close(s->http);
    }
    s->http = NULL;
}

static int start_platforms(struct serve *s, const struct kn_config *cfg)
{
    const struct kn_platform_config *pc = cfg->platforms.items;
    struct kn_platform_config local_default = {0};
    struct kn_error err;
    size_t count = cfg->platforms.count;
    int rc = 0;

    /* with no `platforms`, the embedded default: `local` with every key at its default (a
     * managed HAProxy) */
    if (count == 0) {
        if ((rc = kn_config_platform_default(&local_default, "local", "local")) < 0) {
            kn_log_error(WHO, "the default platform 'local': %s", kn_strerror(rc));
            return KN_EIO;
        }
        pc = &local_default;
        count = 1;
    }
    kn_http_client_new(&s->http, &s->loop);
    s->metrics = kn_calloc(cfg->metrics_providers.count + 1, sizeof(*s->metrics));
    for (size_t i = 0; i < cfg->metrics_providers.count; i++) {
        const struct kn_metrics_provider_config *mc =
            &((const struct kn_metrics_provider_config *)cfg->metrics_providers.items)[i];
        kn_error_clear(&err);
        if (kn_metrics_new(&s->metrics[s->nmetrics], mc, s->http, &err) < 0) {
            kn_log_error(WHO, "metrics provider '%s': %s", mc->name, err.msg);
            rc = KN_EIO;
            goto out;
        }
        s->nmetrics++;
    }
    s->platforms = kn_calloc(count + 1, sizeof(*s->platforms));
    /* every entry through its type's create: a type kanaria does not have is an error, never
     * a platform silently left out */
    for (size_t i = 0; i < count; i++) {
        struct kn_platform_deps deps = {
            .loop = &s->loop,
            .data_dir = cfg->data_dir,
            .http = s->http,
            .store = s->store,
        };
        kn_error_clear(&err);
        if (kn_platform_new(&s->platforms[s->nplatforms], &deps, &pc[i], &err) < 0) {
            kn_log_error(WHO, "platform '%s' (type %s): %s", pc[i].name,
                         pc[i].ptype ? pc[i].ptype->name : "unknown", err.msg);
            rc = KN_EIO;
            goto out;
        }
        s->nplatforms++;
    }
out:
    kn_config_platform_release(&local_default); /* the platform keeps copies */
    return rc;
}

/* ---- the service manager (systemd's Type=notify; nothing without $NOTIFY_SOCKET) ---------- */

static void notify_said(int rc)
{
    if (rc < 0) {
        kn_log_warn(WHO, "cannot notify the service manager at $NOTIFY_SOCKET (%s): %s",
                    kn_strerror(rc), rc == KN_EIO ? strerror(errno) : "not a socket name");
    }
}

static void notify(const char *state)
{
    notify_said(kn_sd_notify(state));
}

/* The API listens and every repository was fetched and planned once (or is waiting for the
 * lead): what `systemctl start` waits for. */
static void tell_ready(struct serve *s, const char *status)
{
    char msg[256];

    if (s->ready || s->stopped) {
        return;
    }
    s->ready = 1;
    snprintf(msg, sizeof(msg), "READY=1\nSTATUS=%s", status);
    notify(msg);
    kn_log_info(WHO, "ready: %s", status);
}

static void on_first_round(void *data)
{
    tell_ready(data, "serving: every repository fetched and planned once");
}

static void on_watchdog(uv_timer_t *t)
{
    (void)t;
    notify("WATCHDOG=1");
}

static void start_watchdog(struct serve *s)
{
    long long ms = kn_sd_watchdog_ms();

    uv_timer_init(&s->loop, &s->watchdog);
    s->watchdog.data = s;
    if (ms > 0) {
        /* the loop is alive as long as this fires: a stuck loop misses it and systemd acts */
        uv_timer_start(&s->watchdog, on_watchdog, 0, ms / 2 > 0 ? (uint64_t)(ms / 2) : 1);
        uv_unref((uv_handle_t *)&s->watchdog);
    }
}

/* How long after the last event kanaria counts a burst of work (plannings, deployments) as over
 * and gives the memory it freed back to the system. */
#define KN_SERVE_SETTLE_MS 5000

static void on_settled(uv_timer_t *t)
{
    (void)t;
    kn_alloc_trim();
}

/* Every event of the store (a deployment, a stage, a planning that deploys) starts the wait
 * again: an idle kanaria trims once after the burst, never on a period. */
static void settle_on_event(const struct kn_event *e, void *data)
{
    struct serve *s = data;

    (void)e;
    if (!s->stopped) {
        uv_timer_start(&s->settle, on_settled, KN_SERVE_SETTLE_MS, 0);
    }
}

static void stop_serving(struct serve *s)
{
    if (s->stopped) {
        return;
    }
    s->stopped = 1;
    notify("STOPPING=1");
    kn_feed_close(s->feed);
    s->feed = NULL;
    kn_notify_close(s->notify); /* before the HTTP client closes */
    s->notify = NULL;
    kn_api_stop(s->api);
    kn_engine_stop(s->engine);
    kn_drift_stop(s->drift);
    kn_slo_monitor_stop(s->slo);
    kn_reconcile_stop(s->reconcile);
    stop_platforms(s);
    uv_close((uv_handle_t *)&s->sigterm, NULL);
    uv_close((uv_handle_t *)&s->sigint, NULL);
    uv_close((uv_handle_t *)&s->sighup, NULL);
    uv_close((uv_handle_t *)&s->lead_lost, NULL);
    uv_close((uv_handle_t *)&s->watchdog, NULL);
    uv_close((uv_handle_t *)&s->settle, NULL);
}

static void on_stop(uv_signal_t *h, int signum)
{
    struct serve *s = h->data;

    kn_log_info(WHO, "received %s: finishing the step in flight, then exiting",
                signum == SIGTERM ? "SIGTERM" : "SIGINT");
    stop_serving(s);
}

/* ---- leader election ---------------------------------------------------------------------- */

/* How often SLOs are read when driftInterval is 0. */
#define KN_SERVE_SLO_INTERVAL_MS (60 * 1000)

/* ---- the SLOs of apps deployed before this start -------------------------------------------
 * The monitor learns an app's SLOs from each deployment's load; an app deployed before kanaria
 * started is read once, at its last good commit, on the thread pool, so that its SLOs are read
 * and shown from the start. */

struct slo_learn {
    struct serve *s;
    uv_work_t work;
    size_t n;
    struct slo_learn_app {
        char *repo, *path, *commit;
        struct kn_app *app; /* loaded, kept when it declares SLOs */
    } *apps;
};

static int slo_learn_collect(const struct kn_app_state *a, void *data)
{
    struct slo_learn *l = data;

    if (a->last_good[0] && !a->orphaned_at && a->path[0]) {
        l->apps = kn_reallocarray(l->apps, l->n + 1, sizeof(*l->apps));
        l->apps[l->n].repo = kn_strdup(a->repo);
        l->apps[l->n].path = kn_strdup(a->path);
        l->apps[l->n].commit = kn_strdup(a->last_good);
        l->apps[l->n].app = NULL;
        l->n++;
    }
    return 0;
}

/* Thread pool: each app at its last good commit, from its repository's mirror. */
static void slo_learn_work(uv_work_t *w)
{
    struct slo_learn *l = w->data;
    git_repository *repo = NULL;
    char *open_repo = NULL;

    for (size_t i = 0; i < l->n; i++) {
        struct slo_learn_app *x = &l->apps[i];
        struct kn_source *src = NULL;
        struct kn_error err;
        git_oid commit;

        kn_error_clear(&err);
        if (!open_repo || strcmp(open_repo, x->repo) != 0) {
            char *mirror = kn_asprintf("%s/repos/%s.git", l->s->data_dir, x->repo);
            git_repository_free(repo);
            repo = NULL;
            free(open_repo);
            open_repo = kn_strdup(x->repo);
            kn_git_open(&repo, mirror, &err);
            free(mirror);
        }
        if (!repo || git_oid_fromstr(&commit, x->commit) != 0 ||
            kn_git_tree_source_new(&src, repo, &commit, &err) < 0) {
            continue; /* its next deployment teaches the monitor */
        }
        kn_validate_app_load(&x->app, src, x->path, l->s->load_config);
        if (x->app && (x->app->diags.count > 0 || x->app->cfg.spec.slos.count == 0)) {
            kn_app_free(x->app);
            x->app = NULL;
        }
        kn_source_free(src);
    }
    git_repository_free(repo);
    free(open_repo);
}

static void slo_learn_done(uv_work_t *w, int status)
{
    struct slo_learn *l = w->data;

    for (size_t i = 0; i < l->n; i++) {
        if (status == 0 && !l->s->stopped && l->s->slo && l->apps[i].app) {
            kn_slo_monitor_learn(l->s->slo, l->apps[i].repo, l->apps[i].app);
        }
        kn_app_free(l->apps[i].app);
        free(l->apps[i].repo);
        free(l->apps[i].path);
        free(l->apps[i].commit);
    }
    free(l->apps);
    free(l);
}

static void slo_learn_start(struct serve *s)
{
    struct slo_learn *l = kn_calloc(1, sizeof(*l));

    l->s = s;
    l->work.data = l;
    kn_store_apps(s->store, NULL, slo_learn_collect, l);
    if (l->n == 0 || uv_queue_work(&s->loop, &l->work, slo_learn_work, slo_learn_done) != 0) {
        slo_learn_done(&l->work, UV_ECANCELED);
    }
}

/* Fetch, plan, deploy and compare: what only the leader does. */
static void start_deploying(struct serve *s)
{
    struct kn_drift_deps deps = {
        .loop = &s->loop,
        .store = s->store,
        /* driftInterval 0 compares never, but live state is still read for /metrics and the
         * API at the default interval */
        .interval_ms = s->config->drift_interval_ms > 0 ? s->config->drift_interval_ms : 10000,
        .cache_only = s->config->drift_interval_ms <= 0,
        .platform_at = platform_at,
        .planned = kick_engine,
        .data = s,
    };

    struct kn_slo_monitor_deps slo = {
        .loop = &s->loop,
        .store = s->store,
        /* SLOs are read on driftInterval, or every minute when drift never compares */
        .interval_ms = s->config->drift_interval_ms > 0 ? s->config->drift_interval_ms
                                                        : KN_SERVE_SLO_INTERVAL_MS,
        .metrics = find_metrics,
        .kick = kick_engine,
        .data = s,
    };

    s->deploying = 1;
    kn_drift_new(&s->drift, &deps);
    kn_slo_monitor_new(&s->slo, &slo);
    s->gates.slo = s->slo;
    slo_learn_start(s);
    kn_engine_hold(s->engine, 0); /* deployments a previous run left */
    kn_reconcile_start(s->reconcile);
}

static void on_lead_lost(uv_timer_t *t)
{
    stop_serving(t->data);
}

static void on_lead(int leading, const char *why, void *data)
{
    struct serve_lead *l = data;
    struct serve *s = l->s;
    const char *name = kn_platform_name(s->platforms[l->i]);
    size_t waiting = 0;

    if (s->stopped || s->lost) {
        return;
    }
    if (!leading) {
        kn_log_error(WHO, "platform '%s': %s; stopping so that this instance deploys nothing "
                     "more (exit 1: let the supervisor start it again)", name,
                     why ? why : "lost the lead");
        s->lost = 1;
        uv_timer_start(&s->lead_lost, on_lead_lost, 0, 0);
        return;
    }
    l->leading = 1;
    for (size_t i = 0; i < s->nleads; i++) {
        waiting += !s->leads[i].leading;
    }
    kn_log_info(WHO, "platform '%s': this instance leads%s", name,
                waiting ? "; waiting for the other platforms' lead" : ": deploying");
    if (!waiting && !s->deploying) {
        start_deploying(s);
    }
}

/* Campaign on every platform that offers leader election: 1 when the lead is awaited, 0 when
 * none campaigns, KN_E* when one refused. */
static int campaign(struct serve *s)
{
    int rc = 0;

    s->leads = kn_calloc(s->nplatforms + 1, sizeof(*s->leads));
    for (size_t i = 0; i < s->nplatforms; i++) {
        struct serve_lead *l = &s->leads[s->nleads];
        l->s = s;
        l->i = i;
        rc = kn_platform_lead(s->platforms[i], on_lead, l);
        if (rc == KN_EUNSUPPORTED) {
            continue;
        }
        if (rc < 0) {
            kn_log_error(WHO, "platform '%s': cannot campaign for the lead: %s",
                         kn_platform_name(s->platforms[i]), kn_strerror(rc));
            return rc;
        }
        s->nleads++;
        kn_log_info(WHO, "platform '%s': serving the API, deploying nothing until this "
                    "instance leads", kn_platform_name(s->platforms[i]));
    }
    return s->nleads > 0;
}

static void on_reload(uv_signal_t *h, int signum)
{
    struct serve *s = h->data;
    struct kn_diags diags;
    struct kn_config *cfg = NULL;
    char key[128];

    (void)signum;
    if (s->ready) {
        notify_said(kn_sd_notify_reloading());
    }
    kn_diags_init(&diags, 0);
    if (kn_config_load(&cfg, s->config_path, &diags) < 0) {
        kn_log_error(WHO, "SIGHUP: %s is invalid, keeping the running config:",
                     s->config_path);
        print_diags(&diags);
    } else if (kn_config_restart_key(s->config, cfg, key, sizeof(key))) {
        /* The platforms, the API listener and the store were made from the running config:
         * applying the rest would leave them behind it. */
        kn_log_error(WHO,
                     "SIGHUP: %s: '%s' changed, which takes a restart of kanaria; keeping the "
                     "running config",
                     s->config_path, key);
        kn_config_free(cfg);
    } else {
        kn_log_info(WHO, "SIGHUP: reloaded %s", s->config_path);
        apply_log_config(cfg);
        kn_reconcile_set_config(s->reconcile, cfg);
        kn_api_set_config(s->api, cfg); /* owned by the reconcile loop, like the first one */
        kn_notify_set_config(s->notify, cfg);
        s->config = cfg;
        s->gates.cfg = cfg;
        kick_engine(s); /* held deployments: asked again against the new freeze windows */
    }
    if (s->ready) {
        notify(s->config == cfg ? "READY=1\nSTATUS=serving: reloaded"
                                : "READY=1\nSTATUS=serving: the reload was refused, see the log");
    }
    kn_diags_release(&diags);
}

static int parse_args(struct serve *s, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;

    optind = 1;
    while ((c = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'c':
            s->config_path = optarg;
            break;
        case 'h':
            printf("usage: kanaria serve -c kanaria.yaml\n");
            exit(KN_EXIT_OK);
        default:
            return KN_EUSAGE;
        }
    }
    if (!s->config_path || optind < argc) {
        return KN_EUSAGE;
    }
    return 0;
}

int kn_cmd_serve(int argc, char **argv)
{
    struct serve s;
    struct kn_diags diags;
    struct kn_config *cfg = NULL;
    struct kn_error err;
    char *db = NULL;
    int rc = KN_EXIT_FAILED;

    memset(&s, 0, sizeof(s));
    s.lock_fd = -1;
    kn_diags_init(&diags, 0);
    if (parse_args(&s, argc, argv) < 0) {
        fprintf(stderr, "usage: kanaria serve -c kanaria.yaml\n");
        rc = KN_EXIT_USAGE;
        goto out;
    }
    if (kn_config_load(&cfg, s.config_path, &diags) < 0 ||
        kn_config_load(&s.load_config, s.config_path, &diags) < 0) {
        print_diags(&diags);
        goto out;
    }
    apply_log_config(cfg);
    if (make_dirs(cfg->data_dir) < 0) {
        kn_log_error(WHO, "cannot create dataDir %s: %s", cfg->data_dir, strerror(errno));
        goto out;
    }
    if (take_lock(&s, cfg->data_dir) < 0) {
        goto out;
    }
    db = kn_asprintf("%s/kanaria.db", cfg->data_dir);
    if (kn_store_open(&s.store, db, &err) < 0) {
        kn_log_error(WHO, "%s", err.msg);
        goto out;
    }
    uv_loop_init(&s.loop);
    uv_signal_init(&s.loop, &s.sigterm);
    uv_signal_init(&s.loop, &s.sigint);
    uv_signal_init(&s.loop, &s.sighup);
    s.sigterm.data = s.sigint.data = s.sighup.data = &s;
    uv_signal_start(&s.sigterm, on_stop, SIGTERM);
    uv_signal_start(&s.sigint, on_stop, SIGINT);
    uv_signal_start(&s.sighup, on_reload, SIGHUP);
    /* a client that goes away mid-answer (an event stream, a slow reader) must cost a write
     * error on its connection, not the process */
    signal(SIGPIPE, SIG_IGN);
    kn_log_info(WHO, "kanaria %s serving %zu repositories, state in %s", KANARIA_VERSION,
                cfg->repositories.count, cfg->data_dir);
    s.data_dir = kn_strdup(cfg->data_dir);
    if (start_platforms(&s, cfg) < 0) {
        stop_platforms(&s);
        uv_close((uv_handle_t *)&s.sigterm, NULL);
        uv_close((uv_handle_t *)&s.sigint, NULL);
        uv_close((uv_handle_t *)&s.sighup, NULL);
        uv_run(&s.loop, UV_RUN_DEFAULT);
        uv_loop_close(&s.loop);
        goto out;
    }
    {
        struct kn_engine_deps deps = {
            .loop = &s.loop,
            .store = s.store,
            .platform = find_platform,
            .metrics = find_metrics,
            .http = s.http,
            .load = load_deployment,
            .gate = gate_deployment,
            .data = &s,
        };
        kn_engine_new(&s.engine, &deps);
    }
    kn_reconcile_new(&s.reconcile, &s.loop, s.store, cfg);
    kn_feed_new(&s.feed, &s.loop, s.store, 0);
    {
        struct kn_actions_deps deps = {
            .loop = &s.loop,
            .store = s.store,
            .data_dir = cfg->data_dir,
            .engine = s.engine,
            .reconcile = s.reconcile,
            .feed = s.feed,
            .platforms = s.platforms,
            .nplatforms = s.nplatforms,
        };
        kn_actions_new(&s.actions, &deps);
    }
    {
        struct kn_api_deps deps = {
            .loop = &s.loop,
            .config = cfg,
            .store = s.store,
            .actions = s.actions,
            .live = app_live,
            .slos = slo_readings,
            .data = &s,
        };
        kn_error_clear(&err);
        if (kn_api_new(&s.api, &deps, &err) < 0) {
            kn_log_error(WHO, "api: %s", err.msg);
        }
    }
    kn_notify_new(&s.notify, &s.loop, s.http, s.store, cfg);
    kn_feed_subscribe(s.feed, kn_notify_event, s.notify);
    kn_feed_subscribe(s.feed, kn_api_publish, s.api);
    uv_timer_init(&s.loop, &s.settle);
    s.settle.data = &s;
    kn_feed_subscribe(s.feed, settle_on_event, &s);
    s.config = cfg;
    s.gates.cfg = cfg;
    cfg = NULL; /* owned by the reconcile loop */
    kn_reconcile_on_planned(s.reconcile, kick_engine, &s);
    kn_reconcile_on_prune(s.reconcile, prune_app, &s);
    kn_reconcile_on_first_round(s.reconcile, on_first_round, &s);
    uv_timer_init(&s.loop, &s.lead_lost);
    s.lead_lost.data = &s;
    start_watchdog(&s);
    kn_engine_hold(s.engine, 1);
    switch (campaign(&s)) {
    case 0:
        start_deploying(&s);
        break;
    case 1:
        /* on_lead starts deploying; a standby is ready to serve the API */
        tell_ready(&s, "serving the API, waiting for the lead");
        break;
    default:
        s.lost = 1;
        stop_serving(&s);
        break;
    }
    uv_run(&s.loop, UV_RUN_DEFAULT);
    kn_api_free(s.api);
    kn_actions_free(s.actions);
    kn_engine_free(s.engine);
    kn_drift_free(s.drift);
    kn_slo_monitor_free(s.slo);
    kn_reconcile_free(s.reconcile);
    uv_loop_close(&s.loop);
    kn_log_info(WHO, "stopped");
    rc = s.lost ? KN_EXIT_FAILED : KN_EXIT_OK;
out:
    kn_store_close(s.store);
    if (s.lock_fd >= 0) {
        close(s.lock_fd);
    }
    free(db);
    free(s.platforms);
    free(s.leads);
    free(s.metrics);
    free(s.data_dir);
    kn_config_free(cfg);
    kn_config_free(s.load_config);
    kn_diags_release(&diags);
    kn_selfmetrics_process_release();
    return rc;
}
