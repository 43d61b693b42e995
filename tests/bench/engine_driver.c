/*
 * kanaria's engine under load, in process: the real engine (stages/engine.c), stage kinds and
 * store, over the platform front end (per-app queues) with the fake provider
 * (tests/fakes/fake_platform.c), whose operations take a time that differs per app and call, a
 * scripted metrics provider and a fake clock.
 *
 *     kanaria_bench_engine reactions APPS SOLO
 *     kanaria_bench_engine memory SMALL LARGE
 *
 * reactions: SOLO apps one after the other, each alone (the floor), then APPS apps at once. Each
 * app deploys v2 (CANARY_ROLLOUT, 10%, an ANALYSIS that passes, WAIT_APPROVAL, PRIMARY_ROLLOUT,
 * 100%, CANARY_CLEAN), then v3, planned once v2 runs, which waits behind it in the engine's
 * queue and whose ANALYSIS fails. Two reactions are timed per app on the monotonic clock:
 *  - approval: from the approval recorded (with its event, then the engine kicked, as the API's
 *    approve does) to the PRIMARY_ROLLOUT's apply reaching the provider;
 *  - rollback: from the failing answer handed to the analysis to the rollback's first operation
 *    reaching the provider.
 * Beside each, how many platform operations were in flight and how many deployments ran when it
 * began, and the loop thread's CPU time and context switches over it. Prints one JSON object:
 * {"solo": {...}, "load": {...}}, each with "approval_ms", "rollback_ms", "approval_cpu_ms",
 * "rollback_cpu_ms", "approval_vcsw", "rollback_vcsw", "approval_ivcsw", "rollback_ivcsw",
 * "busy_calls", "busy_calls_rollback", "running", "running_rollback" (one value per app).
 *
 * memory: SMALL apps, then LARGE - SMALL more, SMALL at a time, each deploying a canary pipeline
 * that waits for nothing (operations of 1 ms); the Rss and Anonymous of /proc/self/smaps_rollup
 * once the first SMALL are deployed and idle, and once all LARGE are. Prints one JSON object:
 * {"small": N, "large": N, "rss_small_kib": N, "rss_large_kib": N, "anon_small_kib": N,
 * "anon_large_kib": N, "seconds": S}.
 *
 * Exit 1 with a message when a deployment does not end as scripted or a run passes its bound.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "fake_platform.h"
#include "kanaria/alloc.h"
#include "kanaria/app.h"
#include "kanaria/config.h"
#include "kanaria/engine.h"
#include "kanaria/log.h"
#include "kanaria/metrics.h"
#include "kanaria/platform.h"
#include "kanaria/store.h"
#include "kanaria/validate.h"

#define REPO "bench"
/* the fake clock starts here: 2026-11-25T19:40:01.123Z */
#define EPOCH_MS 1795635601123LL
/* a run of the loop that passes this is a failure, never a figure */
#define RUN_BOUND_MS 300000

#define C1 "1111111aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define C2 "2222222bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define C3 "3333333ccccccccccccccccccccccccccccccccc"

/* stage indexes of REACTION_PIPELINE */
#define STAGE_ANALYSIS 2
#define STAGE_APPROVAL 3

/* a format: the app's name and version, for a query of the app's own */
#define REACTION_PIPELINE                                                                          \
    "    - name: CANARY_ROLLOUT\n"                                                                 \
    "    - name: TRAFFIC_ROUTING\n"                                                                \
    "      with: {canary: 10}\n"                                                                   \
    "    - name: ANALYSIS\n"                                                                       \
    "      with:\n"                                                                                \
    "        duration: 1s\n"                                                                       \
    "        metrics:\n"                                                                           \
    "          - {name: err, provider: prom, query: 'err{app=\"%s\",version=\"%s\","               \
    "v=\"{{variant}}\"}[{{window}}]', interval: 1s, expected: {max: 0.05}}\n"                      \
    "    - name: WAIT_APPROVAL\n"                                                                  \
    "      with: {minApprovers: 1}\n"                                                              \
    "    - name: PRIMARY_ROLLOUT\n"                                                                \
    "    - name: TRAFFIC_ROUTING\n"                                                                \
    "      with: {primary: 100}\n"                                                                 \
    "    - name: CANARY_CLEAN\n"

#define MEMORY_PIPELINE                                                                            \
    "    - name: CANARY_ROLLOUT\n"                                                                 \
    "    - name: TRAFFIC_ROUTING\n"                                                                \
    "      with: {canary: 10}\n"                                                                   \
    "    - name: PRIMARY_ROLLOUT\n"                                                                \
    "    - name: TRAFFIC_ROUTING\n"                                                                \
    "      with: {primary: 100}\n"                                                                 \
    "    - name: CANARY_CLEAN\n"

struct app {
    char name[16];
    long long v2, v3;                /* deployment ids; v3 0 until planned */
    uv_timer_t approver;             /* approves v2 a while after its analysis answered */
    uint64_t approved_at;            /* hrtime of the approval; 0: not yet */
    uint64_t bad_at;                 /* hrtime of the failing answer; 0: not yet */
    double approval_ms, rollback_ms; /* < 0: not measured */
    /* the loop thread's CPU time at the start, then over the reaction: wall time far above it
     * is time the thread waited (the machine's other work, the disk) */
    double approval_cpu_ms, rollback_cpu_ms;
    /* the loop thread's context switches over the reaction: voluntary (it blocked: a write
     * waiting for the disk) and involuntary (it was preempted) */
    long approval_vcsw, approval_ivcsw, rollback_vcsw, rollback_ivcsw;
    int approval_busy, rollback_busy;       /* platform operations in flight at the start */
    int approval_running, rollback_running; /* deployments the engine ran at the start */
    unsigned calls;                         /* platform operations so far (the delays' seed) */
};

struct bench {
    char *dir;
    int memory; /* memory mode: operations of 1 ms, no reactions */
    uv_loop_t loop;
    struct kn_store *store;
    struct kn_platform *platform;
    struct kn_fake_platform *fake;
    struct kn_engine *engine;
    struct kn_metrics metrics;
    struct kn_metrics_type metrics_type;
    struct app *apps;
    size_t napps; /* apps made so far */
    size_t nsolo; /* the first nsolo apps deploy alone, for the floor */
    uint64_t hr0;
    uv_timer_t deadline;
    int timed_out;
};

/* ---- files and the clock --------------------------------------------------------------------- */

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fprintf(stderr, "kanaria_bench_engine: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

static void write_file(const char *dir, const char *rel, const char *text)
{
    char *path = kn_asprintf("%s/%s", dir, rel);
    FILE *f;

    for (char *p = path + strlen(dir) + 1; (p = strchr(p, '/')); p++) {
        *p = '\0';
        if (mkdir(path, 0755) != 0 && errno != EEXIST) {
            die("mkdir %s: %s", path, strerror(errno));
        }
        *p = '/';
    }
    if (!(f = fopen(path, "w")) || fputs(text, f) < 0 || fclose(f) != 0) {
        die("cannot write %s", path);
    }
    free(path);
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static long long fake_now(void *data)
{
    struct bench *b = data;

    return EPOCH_MS + (long long)((uv_hrtime() - b->hr0) / 1000000);
}

static double ms_since(uint64_t t0)
{
    return (double)(uv_hrtime() - t0) / 1e6;
}

static double thread_cpu_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* The loop thread's context switches so far, voluntary and involuntary. */
static void thread_switches(long *vcsw, long *ivcsw)
{
    struct rusage ru;

    getrusage(RUSAGE_THREAD, &ru);
    *vcsw = ru.ru_nvcsw;
    *ivcsw = ru.ru_nivcsw;
}

/* Start (begin 1) or end a reaction's counts: CPU time and switches. */
static void reaction_counts(int begin, double *cpu, long *vcsw, long *ivcsw)
{
    long v, iv;

    thread_switches(&v, &iv);
    *cpu = begin ? thread_cpu_ms() : thread_cpu_ms() - *cpu;
    *vcsw = begin ? v : v - *vcsw;
    *ivcsw = begin ? iv : iv - *ivcsw;
}

/* The app at `commit`: app.kanaria.yaml with REACTION_PIPELINE (MEMORY_PIPELINE in memory
 * mode) and its LocalService. */
static void write_app(struct bench *b, const struct app *a, const char *commit, const char *version)
{
    char *rel = kn_asprintf("src/%s/%s/app.kanaria.yaml", commit, a->name);
    char *steps =
        b->memory ? kn_strdup(MEMORY_PIPELINE) : kn_asprintf(REACTION_PIPELINE, a->name, version);
    char *text = kn_asprintf("apiVersion: kanaria.dev/v1\n"
                             "kind: Application\n"
                             "metadata: {name: %s}\n"
                             "spec:\n"
                             "  platform: local\n"
                             "  manifests: [service.yaml]\n"
                             "  pipeline:\n%s",
                             a->name, steps);

    write_file(b->dir, rel, text);
    free(rel);
    free(text);
    free(steps);
    rel = kn_asprintf("src/%s/%s/service.yaml", commit, a->name);
    text = kn_asprintf("apiVersion: kanaria.dev/v1\n"
                       "kind: LocalService\n"
                       "metadata: {name: %s}\n"
                       "spec:\n"
                       "  command: [\"/opt/%s/%s/run\", \"--port\", \"{{port}}\"]\n"
                       "  replicas: 1\n"
                       "  healthCheck: {path: /healthz, interval: 1s, timeout: 1s}\n"
                       "  frontend: {bind: 127.0.0.1:%d}\n",
                       a->name, a->name, version, 20000 + (int)(a - b->apps));
    write_file(b->dir, rel, text);
    free(rel);
    free(text);
}

/* deps.load, on the thread pool: reads only what was written before the deployment was planned */
static void bench_load(void *data, const struct kn_deployment *d, const char *path,
                       const char *last_good, struct kn_engine_load *out)
{
    const struct bench *b = data;

    kn_fake_load(b->dir, d, path, last_good, out);
}

/* ---- the store ------------------------------------------------------------------------------- */

static long long plan(struct bench *b, const struct app *a, const char *commit,
                      const char *strategy)
{
    struct kn_deployment_new d = {
        .repo = REPO,
        .app = a->name,
        .commit = commit,
        .author = "Bench <bench@example.com>",
        .message = "change the service",
        .strategy = strategy,
        .summary = "bench plan",
    };
    char *path = kn_asprintf("%s/app.kanaria.yaml", a->name);
    long long id = 0;

    if (kn_store_app_seen(b->store, REPO, a->name, path, commit, "") < 0 ||
        kn_store_deployment_add(b->store, &d, fake_now(b), &id) < 0) {
        die("cannot plan %s at %.7s", a->name, commit);
    }
    free(path);
    return id;
}

/* C1 is the app's last good commit, as if a deployment of it had succeeded. */
static void seed_good(struct bench *b, const struct app *a)
{
    long long id = plan(b, a, C1, "QUICK_SYNC");

    if (kn_store_deployment_set_status(b->store, id, KN_DEPLOY_RUNNING, NULL, fake_now(b)) < 0 ||
        kn_store_deployment_set_status(b->store, id, KN_DEPLOY_SUCCESS, NULL, fake_now(b)) < 0) {
        die("cannot seed %s", a->name);
    }
}

static int stage_is(struct bench *b, long long id, int index, const char *status)
{
    char s[32];

    return kn_store_stage_get(b->store, id, index, s, sizeof(s), NULL) == 0 &&
           strcmp(s, status) == 0;
}

static void expect_status(struct bench *b, const struct app *a, long long id, const char *want)
{
    struct kn_deployment d;

    if (kn_store_deployment_get(b->store, id, &d) != 0) {
        die("%s: deployment %lld not found", a->name, id);
    }
    if (strcmp(kn_deploy_status_name(d.status), want) != 0) {
        die("%s: deployment %lld is %s (%s), not %s", a->name, id, kn_deploy_status_name(d.status),
            d.reason, want);
    }
    kn_deployment_release(&d);
}

/* ---- the fake platform's hooks --------------------------------------------------------------- */

static struct app *app_of(struct bench *b, const char *name)
{
    size_t i;

    if (strncmp(name, "app", 3) != 0 || (i = strtoul(name + 3, NULL, 10)) >= b->napps) {
        return NULL;
    }
    return &b->apps[i];
}

static uint32_t mix(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x7feb352dU;
    x ^= x >> 15;
    x *= 0x846ca68bU;
    x ^= x >> 16;
    return x;
}

/* Operations of different apps take different times, the same in every run: an apply 20 to
 * 200 ms, anything else 5 to 50 ms. An app deploying alone, and the memory figures, have
 * operations of 1 ms: no reaction is timed while its own app's operation runs. */
static int op_delay(void *data, const struct kn_app_id *id, const char *line)
{
    struct bench *b = data;
    struct app *a = app_of(b, id->app);
    uint32_t h;

    if (b->memory || !a || (size_t)(a - b->apps) < b->nsolo) {
        return 1;
    }
    h = mix((uint32_t)(a - b->apps) * 2654435761U + a->calls);
    return strncmp(line, "apply", 5) == 0 ? 20 + (int)(h % 181) : 5 + (int)(h % 46);
}

static void op_started(void *data, const struct kn_app_id *id, const char *line)
{
    struct bench *b = data;
    struct app *a = app_of(b, id->app);

    if (!a) {
        return;
    }
    a->calls++;
    if (a->approved_at && a->approval_ms < 0 && strncmp(line, "apply primary", 13) == 0) {
        a->approval_ms = ms_since(a->approved_at);
        reaction_counts(0, &a->approval_cpu_ms, &a->approval_vcsw, &a->approval_ivcsw);
    }
    if (a->bad_at && a->rollback_ms < 0) {
        a->rollback_ms = ms_since(a->bad_at);
        reaction_counts(0, &a->rollback_cpu_ms, &a->rollback_vcsw, &a->rollback_ivcsw);
    }
    if (!b->memory && !a->v3 && strncmp(line, "apply canary", 12) == 0) {
        /* v2 runs: v3 waits behind it */
        a->v3 = plan(b, a, C3, "PIPELINE");
    }
}

/* ---- the metrics provider: v3's canary fails its check, anything else passes ----------------- */

struct answer {
    uv_timer_t timer;
    struct bench *b;
    struct app *a;
    int v2;  /* a query of v2's analysis: approve v2 once it passed */
    int bad; /* v3's canary */
    kn_metrics_cb cb;
    void *data;
};

static void answer_closed(uv_handle_t *h)
{
    free(h->data);
}

static void approve(uv_timer_t *t);

static void answer_fire(uv_timer_t *t)
{
    struct answer *x = t->data;
    struct bench *b = x->b;
    struct app *a = x->a;
    double bad[] = {0.3, 0.3}, good[] = {0.01, 0.02};
    long long times[2] = {0, 0};
    struct kn_metrics_series s = {.labels = (char *)(uintptr_t) "{}",
                                  .count = 2,
                                  .values = x->bad ? bad : good,
                                  .times_ms = times};
    struct kn_metrics_result r = {.ok = 1, .nseries = 1, .series = &s};

    if (x->bad && !a->bad_at) {
        a->rollback_busy = b->fake->active;
        a->rollback_running = (int)kn_engine_active(b->engine);
        reaction_counts(1, &a->rollback_cpu_ms, &a->rollback_vcsw, &a->rollback_ivcsw);
        a->bad_at = uv_hrtime();
    }
    x->cb(&r, x->data);
    if (x->v2 && !a->approved_at) {
        /* someone approves 20 to 200 ms after the analysis passed (20 ms when the app deploys
         * alone; a later answer, if any, moves it) */
        size_t i = (size_t)(a - b->apps);
        uv_timer_start(&a->approver, approve, i < b->nsolo ? 20 : 20 + mix((uint32_t)i) % 181, 0);
    }
    uv_close((uv_handle_t *)&x->timer, answer_closed);
}

/* The app and version from the query 'err{app="NAME",version="vN",v="VARIANT"}[...]'. */
static int answer_query(void *instance, const struct kn_metrics_query *q, kn_metrics_cb cb,
                        void *data)
{
    struct bench *b = instance;
    const char *name = strstr(q->query, "app=\"");
    struct app *a = name ? app_of(b, name + 5) : NULL;
    struct answer *x;

    if (!a) {
        return KN_EINVAL;
    }
    x = kn_calloc(1, sizeof(*x));
    x->b = b;
    x->a = a;
    x->v2 = strstr(q->query, "version=\"v2\"") != NULL;
    x->bad = strstr(q->query, "version=\"v3\"") && strstr(q->query, "v=\"canary\"");
    x->cb = cb;
    x->data = data;
    uv_timer_init(&b->loop, &x->timer);
    x->timer.data = x;
    uv_timer_start(&x->timer, answer_fire, 1, 0);
    return 0;
}

static struct kn_metrics *find_metrics(void *data, const char *name)
{
    struct bench *b = data;

    (void)name;
    return &b->metrics;
}

static struct kn_platform *find_platform(void *data, const char *name)
{
    struct bench *b = data;

    return strcmp(name, "local") == 0 ? b->platform : NULL;
}

/* ---- the approver: as `kanaria approve` through the API -------------------------------------- */

static void approve(uv_timer_t *t)
{
    struct app *a = t->data;
    struct bench *b = (struct bench *)a->approver.loop->data;
    long long now;

    if (a->approved_at) {
        return;
    }
    if (!stage_is(b, a->v2, STAGE_APPROVAL, "RUNNING")) {
        if (stage_is(b, a->v2, STAGE_ANALYSIS, "SUCCESS")) {
            uv_timer_start(t, approve, 5, 0); /* WAIT_APPROVAL is about to start */
        }
        return; /* the analysis goes on: its next answer sets the timer again */
    }
    a->approval_busy = b->fake->active;
    a->approval_running = (int)kn_engine_active(b->engine);
    reaction_counts(1, &a->approval_cpu_ms, &a->approval_vcsw, &a->approval_ivcsw);
    a->approved_at = uv_hrtime();
    now = fake_now(b);
    if (kn_store_approval_add(b->store, a->v2, STAGE_APPROVAL, "bench", "APPROVE", now) < 0) {
        die("%s: cannot record the approval", a->name);
    }
    kn_store_event_add(b->store, "APPROVED", REPO, a->name, a->v2, "bench",
                       "approved stage 3 WAIT_APPROVAL", now);
    kn_engine_kick(b->engine);
}

/* ---- running --------------------------------------------------------------------------------- */

static void deadline_hit(uv_timer_t *t)
{
    struct bench *b = t->loop->data;

    b->timed_out = 1;
    kn_engine_stop(b->engine);
    uv_stop(t->loop);
}

/* Run the loop until the engine has nothing left to do. */
static void run_loop(struct bench *b)
{
    uv_timer_start(&b->deadline, deadline_hit, RUN_BOUND_MS, 0);
    uv_run(&b->loop, UV_RUN_DEFAULT);
    uv_timer_stop(&b->deadline);
    if (b->timed_out) {
        die("the engine did not finish within %d ms", RUN_BOUND_MS);
    }
}

static void bench_open(struct bench *b, size_t capacity)
{
    struct kn_platform_config pc = {.name = (char *)(uintptr_t) "local",
                                    .ptype = kn_platform_type_find("fake")};
    struct kn_platform_deps pdeps;
    struct kn_engine_deps edeps = {
        .platform = find_platform,
        .metrics = find_metrics,
        .load = bench_load,
        .now_ms = fake_now,
        .data = b,
    };
    struct kn_error err;
    char tmpl[] = "/tmp/kanaria-bench-engine-XXXXXX";
    const char *tmp = getenv("TMPDIR");
    char *db;

    b->dir = tmp && tmp[0] ? kn_asprintf("%s/kanaria-bench-engine-XXXXXX", tmp) : kn_strdup(tmpl);
    if (!mkdtemp(b->dir)) {
        die("mkdtemp %s: %s", b->dir, strerror(errno));
    }
    /* every app's record is touched now, so that the driver's own memory is resident before
     * the first figure */
    b->apps = kn_calloc(capacity, sizeof(*b->apps));
    memset(b->apps, 0, capacity * sizeof(*b->apps));
    b->hr0 = uv_hrtime();
    if (uv_loop_init(&b->loop) != 0) {
        die("uv_loop_init");
    }
    b->loop.data = b;
    uv_timer_init(&b->loop, &b->deadline);
    uv_unref((uv_handle_t *)&b->deadline);
    kn_error_clear(&err);
    db = kn_asprintf("%s/kanaria.db", b->dir);
    if (kn_store_open(&b->store, db, &err) != 0) {
        die("store: %s", err.msg);
    }
    free(db);
    memset(&pdeps, 0, sizeof(pdeps));
    pdeps.loop = &b->loop;
    pdeps.data_dir = b->dir;
    pdeps.store = b->store;
    if (!pc.ptype) {
        die("the fake platform type is not registered");
    }
    if (kn_platform_new(&b->platform, &pdeps, &pc, &err) != 0) {
        die("platform: %s", err.msg);
    }
    b->fake = kn_fake_platform_last;
    b->fake->on_call = op_started;
    b->fake->delay_ms = op_delay;
    b->fake->data = b;
    b->metrics_type.name = "bench";
    b->metrics_type.query = answer_query;
    b->metrics.name = (char *)(uintptr_t) "prom";
    b->metrics.type = &b->metrics_type;
    b->metrics.instance = b;
    edeps.loop = &b->loop;
    edeps.store = b->store;
    if (kn_engine_new(&b->engine, &edeps) != 0) {
        die("engine");
    }
}

static void bench_close(struct bench *b)
{
    kn_engine_stop(b->engine);
    uv_run(&b->loop, UV_RUN_DEFAULT);
    kn_engine_free(b->engine);
    for (size_t i = 0; i < b->napps; i++) {
        if (!b->memory) {
            uv_close((uv_handle_t *)&b->apps[i].approver, NULL);
        }
    }
    uv_close((uv_handle_t *)&b->deadline, NULL);
    kn_platform_free(b->platform);
    uv_run(&b->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&b->loop) != 0) {
        fprintf(stderr, "kanaria_bench_engine: handles left open\n");
    }
    kn_store_close(b->store);
    nftw(b->dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
    free(b->dir);
    free(b->apps);
}

/* A new app with its commits written: C1 its last good one, C2 (v2) and C3 (v3). */
static struct app *app_add(struct bench *b)
{
    struct app *a = &b->apps[b->napps++];

    snprintf(a->name, sizeof(a->name), "app%05zu", b->napps - 1);
    a->approval_ms = a->rollback_ms = -1;
    if (!b->memory) {
        uv_timer_init(&b->loop, &a->approver);
        a->approver.data = a;
    }
    write_app(b, a, C1, "v1");
    write_app(b, a, C2, "v2");
    if (!b->memory) {
        write_app(b, a, C3, "v3");
    }
    seed_good(b, a);
    return a;
}

/* ---- reactions ------------------------------------------------------------------------------- */

static void check_reactions(struct bench *b, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++) {
        struct app *a = &b->apps[i];
        expect_status(b, a, a->v2, "SUCCESS");
        if (!a->v3) {
            die("%s: v3 was never planned", a->name);
        }
        expect_status(b, a, a->v3, "FAILURE");
        if (a->approval_ms < 0 || a->rollback_ms < 0) {
            die("%s: a reaction was not seen (approval %.1f ms, rollback %.1f ms)", a->name,
                a->approval_ms, a->rollback_ms);
        }
    }
}

static void print_group(const struct bench *b, const char *name, size_t from, size_t to)
{
    static const char *const keys[] = {"approval_ms",         "rollback_ms",    "approval_cpu_ms",
                                       "rollback_cpu_ms",     "approval_vcsw",  "rollback_vcsw",
                                       "approval_ivcsw",      "rollback_ivcsw", "busy_calls",
                                       "busy_calls_rollback", "running",        "running_rollback"};

    printf("\"%s\": {", name);
    for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
        printf("%s\"%s\": [", k ? ", " : "", keys[k]);
        for (size_t i = from; i < to; i++) {
            const struct app *a = &b->apps[i];
            double v = k == 0    ? a->approval_ms
                       : k == 1  ? a->rollback_ms
                       : k == 2  ? a->approval_cpu_ms
                       : k == 3  ? a->rollback_cpu_ms
                       : k == 4  ? (double)a->approval_vcsw
                       : k == 5  ? (double)a->rollback_vcsw
                       : k == 6  ? (double)a->approval_ivcsw
                       : k == 7  ? (double)a->rollback_ivcsw
                       : k == 8  ? a->approval_busy
                       : k == 9  ? a->rollback_busy
                       : k == 10 ? a->approval_running
                                 : a->rollback_running;
            printf("%s%.3f", i > from ? ", " : "", v);
        }
        printf("]");
    }
    printf("}");
}

static int reactions(size_t napps, size_t nsolo)
{
    struct bench b;

    memset(&b, 0, sizeof(b));
    bench_open(&b, napps + nsolo);
    b.nsolo = nsolo;
    /* the floor: each app alone */
    for (size_t i = 0; i < nsolo; i++) {
        struct app *a = app_add(&b);
        a->v2 = plan(&b, a, C2, "PIPELINE");
        kn_engine_kick(b.engine);
        run_loop(&b);
    }
    check_reactions(&b, 0, nsolo);
    /* all at once */
    for (size_t i = 0; i < napps; i++) {
        struct app *a = app_add(&b);
        a->v2 = plan(&b, a, C2, "PIPELINE");
    }
    kn_engine_kick(b.engine);
    run_loop(&b);
    check_reactions(&b, nsolo, nsolo + napps);
    printf("{");
    print_group(&b, "solo", 0, nsolo);
    printf(", ");
    print_group(&b, "load", nsolo, nsolo + napps);
    printf("}\n");
    bench_close(&b);
    return 0;
}

/* ---- memory ---------------------------------------------------------------------------------- */

static void read_rss(long long *rss, long long *anon)
{
    FILE *f = fopen("/proc/self/smaps_rollup", "r");
    char line[256];

    *rss = *anon = -1;
    if (!f) {
        die("cannot read /proc/self/smaps_rollup: %s", strerror(errno));
    }
    while (fgets(line, sizeof(line), f)) {
        sscanf(line, "Rss: %lld kB", rss);
        sscanf(line, "Anonymous: %lld kB", anon);
    }
    fclose(f);
}

/* Deploy `n` more apps at once and run until every deployment ended. */
static void deploy_batch(struct bench *b, size_t n)
{
    size_t from = b->napps;

    for (size_t i = 0; i < n; i++) {
        struct app *a = app_add(b);
        a->v2 = plan(b, a, C2, "PIPELINE");
    }
    kn_engine_kick(b->engine);
    run_loop(b);
    for (size_t i = from; i < b->napps; i++) {
        expect_status(b, &b->apps[i], b->apps[i].v2, "SUCCESS");
    }
}

static int memory(size_t small, size_t large)
{
    struct bench b;
    long long rss_small, anon_small, rss_large, anon_large;
    uint64_t t0 = uv_hrtime();

    memset(&b, 0, sizeof(b));
    b.memory = 1;
    bench_open(&b, large);
    deploy_batch(&b, small);
    read_rss(&rss_small, &anon_small);
    while (b.napps < large) {
        deploy_batch(&b, large - b.napps < small ? large - b.napps : small);
    }
    read_rss(&rss_large, &anon_large);
    printf("{\"small\": %zu, \"large\": %zu, \"rss_small_kib\": %lld, \"rss_large_kib\": %lld, "
           "\"anon_small_kib\": %lld, \"anon_large_kib\": %lld, \"seconds\": %.2f}\n",
           small, large, rss_small, rss_large, anon_small, anon_large, ms_since(t0) / 1e3);
    bench_close(&b);
    return 0;
}

int main(int argc, char **argv)
{
    long x = argc == 4 ? strtol(argv[2], NULL, 10) : 0,
         y = argc == 4 ? strtol(argv[3], NULL, 10) : 0;

    if (argc == 4 && strcmp(argv[1], "reactions") == 0 && x > 0 && x <= 10000 && y >= 0 &&
        y <= 100) {
        return reactions((size_t)x, (size_t)y);
    }
    if (argc == 4 && strcmp(argv[1], "memory") == 0 && x > 0 && y > x && y <= 100000) {
        return memory((size_t)x, (size_t)y);
    }
    fprintf(stderr, "usage: kanaria_bench_engine reactions APPS SOLO\n"
                    "       kanaria_bench_engine memory SMALL LARGE\n");
    return 2;
}
