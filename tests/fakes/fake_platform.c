/*
 * The fake platform provider (see fake_platform.h).
 */
#include "fake_platform.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kanaria/alloc.h"
#include "kanaria/engine.h"
#include "kanaria/validate.h"

struct kn_fake_platform *kn_fake_platform_last;
struct kn_fake_world *kn_fake_world;

struct kn_fake_call {
    uv_timer_t timer;
    struct kn_fake_platform *fp;
    struct kn_platform_call *call;
    struct kn_app_id id; /* strings owned */
    int status;
    const char *message;
    char line[128];
    int hung;
    int ending; /* its timer runs to end it */
    enum kn_fake_op kind;
    enum kn_variant variant;           /* apply, remove */
    char commit[41];                   /* apply */
    double percent[KN_VARIANT_COUNT];  /* weights */
    struct kn_fake_call *next;
};

static void call_unlink(struct kn_fake_call *c)
{
    struct kn_fake_call **at = &c->fp->calls_in_flight;

    while (*at && *at != c) {
        at = &(*at)->next;
    }
    if (*at) {
        *at = c->next;
    }
}

static void call_closed(uv_handle_t *h)
{
    struct kn_fake_call *c = h->data;

    free((char *)(uintptr_t)c->id.repository);
    free((char *)(uintptr_t)c->id.app);
    free(c);
}

struct kn_fake_app *kn_fake_world_app(struct kn_fake_world *w, const struct kn_app_id *id,
                                      int create)
{
    struct kn_fake_app *a;

    for (a = w->apps; a; a = a->next) {
        if (strcmp(a->repository, id->repository) == 0 && strcmp(a->app, id->app) == 0) {
            return a;
        }
    }
    if (!create) {
        return NULL;
    }
    a = kn_calloc(1, sizeof(*a));
    a->repository = kn_strdup(id->repository);
    a->app = kn_strdup(id->app);
    a->next = w->apps;
    w->apps = a;
    return a;
}

static void world_drop(struct kn_fake_world *w, struct kn_fake_app *a)
{
    struct kn_fake_app **at = &w->apps;

    while (*at && *at != a) {
        at = &(*at)->next;
    }
    if (*at) {
        *at = a->next;
    }
    free(a->repository);
    free(a->app);
    free(a);
}

void kn_fake_world_release(struct kn_fake_world *w)
{
    while (w && w->apps) {
        world_drop(w, w->apps);
    }
}

/* What the call's end changes in the world; a failure or a cancel undoes what it started. A
 * status other than 0 may come from here (traffic to a variant that does not run). */
static int world_end(struct kn_fake_call *c, int status)
{
    struct kn_fake_world *w = c->fp->world;
    struct kn_fake_app *a = kn_fake_world_app(w, &c->id, 0);
    double sum = 0;

    if (!a) {
        return c->kind == KN_FAKE_WEIGHTS && status == 0 && c->percent[KN_VARIANT_PRIMARY] < 100
                   ? KN_EINVAL
                   : status;
    }
    switch (c->kind) {
    case KN_FAKE_APPLY:
        a->starting[c->variant] = 0;
        if (status == 0) {
            a->running[c->variant] = 1;
            snprintf(a->commit[c->variant], sizeof(a->commit[0]), "%s", c->commit);
            for (int v = 0; v < KN_VARIANT_COUNT; v++) {
                sum += a->weight[v];
            }
            if (sum <= 0 && c->variant == KN_VARIANT_PRIMARY) {
                a->weight[KN_VARIANT_PRIMARY] = 100; /* a first primary takes the traffic */
            }
        }
        break;
    case KN_FAKE_REMOVE:
        if (status == 0) {
            a->running[c->variant] = 0;
            a->commit[c->variant][0] = '\0';
            a->weight[c->variant] = 0;
            for (int v = 0; v < KN_VARIANT_COUNT; v++) {
                sum += a->weight[v];
            }
            for (int v = 0; v < KN_VARIANT_COUNT && sum > 0; v++) {
                a->weight[v] = 100 * a->weight[v] / sum;
            }
        }
        break;
    case KN_FAKE_WEIGHTS:
        for (int v = KN_VARIANT_CANARY; status == 0 && v < KN_VARIANT_COUNT; v++) {
            if (c->percent[v] > 0 && !a->running[v]) {
                c->message = "traffic to a variant that does not run";
                status = KN_EINVAL;
            }
        }
        if (status == 0) {
            memcpy(a->weight, c->percent, sizeof(a->weight));
        }
        break;
    case KN_FAKE_REMOVE_APP:
        if (status == 0) {
            world_drop(w, a);
        }
        break;
    default:
        break;
    }
    return status;
}

/* End the call now: done to the front end, then the record goes. */
static void call_end(struct kn_fake_call *c)
{
    struct kn_fake_platform *fp = c->fp;
    struct kn_platform_call *call = c->call;

    call_unlink(c);
    fp->active--;
    if (fp->world && !fp->destroying) {
        c->status = world_end(c, c->status);
    }
    if (c->status != 0) {
        fp->failures++;
    } else {
        fp->completed++;
    }
    uv_close((uv_handle_t *)&c->timer, call_closed); /* c is freed on a later loop turn */
    if (c->status != 0) {
        kn_platform_call_done(call, c->status, "%s", c->message);
    } else {
        kn_platform_call_done(call, 0, NULL);
    }
    if (fp->on_done) {
        fp->on_done(fp->data, &c->id, c->line, c->status);
    }
}

static void call_fire(uv_timer_t *t)
{
    call_end(t->data);
}

static struct kn_fake_call *fake_start(struct kn_fake_platform *fp, enum kn_fake_op kind,
                                       struct kn_platform_call *call, const char *line)
{
    const struct kn_fake_rule *r = &fp->rule[kind];
    size_t n = (size_t)fp->calls[kind]++;
    char how = r->script && n < strlen(r->script) ? r->script[n] : (r->then ? r->then : 'o');
    struct kn_fake_call *c = kn_calloc(1, sizeof(*c));
    const struct kn_app_id *id = kn_platform_call_id(call);
    int delay;

    c->fp = fp;
    c->call = call;
    c->kind = kind;
    c->id.repository = kn_strdup(id->repository);
    c->id.app = kn_strdup(id->app);
    snprintf(c->line, sizeof(c->line), "%s", line);
    snprintf(fp->last_token, sizeof(fp->last_token), "%s", kn_platform_call_token(call));
    c->next = fp->calls_in_flight;
    fp->calls_in_flight = c;
    if (++fp->active > fp->max_active) {
        fp->max_active = fp->active;
    }
    if (fp->on_call) {
        fp->on_call(fp->data, &c->id, line);
    }
    if (fp->say) {
        kn_platform_call_progress(call, "%s", fp->say);
        kn_platform_call_progress(call, "%s", fp->say);
    }
    uv_timer_init(fp->loop, &c->timer);
    c->timer.data = c;
    if (how == 'h') {
        c->hung = 1;
        return c;
    }
    c->status = how == 'f' ? KN_EIO : 0;
    c->message = r->message ? r->message : "fake failure";
    c->ending = 1;
    delay = fp->delay_ms ? fp->delay_ms(fp->data, &c->id, line) : 0;
    if (delay <= 0) {
        delay = r->delay_ms > 0 ? r->delay_ms : 1;
    }
    uv_timer_start(&c->timer, call_fire, (uint64_t)delay, 0);
    return c;
}

/* "v2" from the command "/opt/hello/v2/run" of the manifests, to tell which commit's manifests
 * an apply was given. */
static const char *manifest_version(const json_t *manifests, char *buf, size_t size)
{
    const json_t *doc = json_array_get(manifests, 0);
    const char *cmd = json_string_value(
        json_array_get(json_object_get(json_object_get(doc, "spec"), "command"), 0));
    const char *start, *end;

    snprintf(buf, size, "?");
    if (cmd && strlen(cmd) > 5 && (start = strchr(cmd + 5, '/')) &&
        (end = strchr(start + 1, '/'))) {
        snprintf(buf, size, "%.*s", (int)(end - start - 1), start + 1);
    }
    return buf;
}

static int fake_apply(void *self, struct kn_platform_call *call,
                      const struct kn_variant_spec *spec)
{
    struct kn_fake_platform *fp = self;
    struct kn_fake_call *c;
    char line[128], v[32];

    snprintf(line, sizeof(line), "apply %s %.7s %s", kn_variant_name(spec->variant),
             spec->commit && spec->commit[0] ? spec->commit : "(none)",
             manifest_version(spec->manifests, v, sizeof(v)));
    fp->apply_ready_timeout_ms = spec->ready_timeout_ms;
    fp->apply_time_left_ms = kn_platform_call_time_left(call);
    if (fp->memo_key) {
        free(fp->memo_read);
        fp->memo_read = kn_platform_call_memo_get(call, fp->memo_key);
        kn_platform_call_memo_set(call, fp->memo_key, fp->memo_value);
    }
    c = fake_start(fp, KN_FAKE_APPLY, call, line);
    c->variant = spec->variant;
    snprintf(c->commit, sizeof(c->commit), "%s", spec->commit ? spec->commit : "");
    if (fp->world) {
        kn_fake_world_app(fp->world, &c->id, 1)->starting[spec->variant] = 1;
    }
    return 0;
}

static int fake_remove(void *self, struct kn_platform_call *call, enum kn_variant v)
{
    char line[128];

    snprintf(line, sizeof(line), "remove %s", kn_variant_name(v));
    fake_start(self, KN_FAKE_REMOVE, call, line)->variant = v;
    return 0;
}

static int fake_set_weights(void *self, struct kn_platform_call *call,
                            const double percent[KN_VARIANT_COUNT])
{
    char line[128];

    snprintf(line, sizeof(line), "weights %g/%g/%g", percent[0], percent[1], percent[2]);
    memcpy(fake_start(self, KN_FAKE_WEIGHTS, call, line)->percent, percent,
           sizeof(double) * KN_VARIANT_COUNT);
    return 0;
}

static int fake_remove_app(void *self, struct kn_platform_call *call)
{
    fake_start(self, KN_FAKE_REMOVE_APP, call, "remove app");
    return 0;
}

/* What runs of the app in the world, with a drift line where the split differs from the one
 * kanaria set. */
static void world_observe(struct kn_fake_platform *fp, struct kn_platform_call *call,
                          const struct kn_desired *desired)
{
    const struct kn_fake_app *a = kn_fake_world_app(fp->world, kn_platform_call_id(call), 0);
    struct kn_live_state *out = kn_platform_call_live(call);

    if (!a) {
        kn_platform_call_done(call, KN_ENOTFOUND, "the fake runs no such app");
        return;
    }
    for (int v = 0; v < KN_VARIANT_COUNT; v++) {
        char name[32], status[64], drift[96];
        out->variant[v].instances = a->running[v] + a->starting[v];
        out->variant[v].healthy = a->running[v];
        out->variant[v].weight = a->weight[v];
        snprintf(out->variant[v].commit, sizeof(out->variant[v].commit), "%s", a->commit[v]);
        if (!a->running[v] && !a->starting[v] && a->weight[v] <= 0) {
            continue;
        }
        snprintf(name, sizeof(name), "%s-1", kn_variant_name((enum kn_variant)v));
        snprintf(status, sizeof(status), "%s, weight %g", a->running[v] ? "ready" : "starting",
                 a->weight[v]);
        drift[0] = '\0';
        if (desired && fabs(a->weight[v] - desired->percent[v]) > 0.5) {
            snprintf(drift, sizeof(drift), "weight %g, kanaria set %g", a->weight[v],
                     desired->percent[v]);
        }
        kn_live_state_add(out, "instance", name, status, drift[0] ? drift : NULL);
    }
    kn_platform_call_done(call, 0, NULL);
}

static int fake_observe(void *self, struct kn_platform_call *call,
                        const struct kn_desired *desired)
{
    struct kn_fake_platform *fp = self;

    if (fp->on_observe) {
        fp->on_observe(fp->data, kn_platform_call_id(call));
    }
    if (fp->world) {
        world_observe(fp, call, desired);
        return 0;
    }
    if (fp->observe_status != 0) {
        kn_platform_call_done(call, fp->observe_status, "the fake does not know the app");
        return 0;
    }
    kn_live_state_copy(kn_platform_call_live(call), &fp->live);
    kn_platform_call_done(call, 0, NULL);
    return 0;
}

/* A hung call that is cancelled ends with KN_ECANCELLED on the next loop turn, as a platform
 * that stops it does; one under way ends as it would have. */
static void fake_cancel(void *self, struct kn_platform_call *call)
{
    struct kn_fake_platform *fp = self;

    fp->cancels++;
    for (struct kn_fake_call *c = fp->calls_in_flight; c; c = c->next) {
        if (c->call == call && c->hung && !c->ending) {
            snprintf(fp->cancelled, sizeof(fp->cancelled), "%s", c->line);
            c->status = KN_ECANCELLED;
            c->message = "cancelled";
            c->ending = 1;
            uv_timer_start(&c->timer, call_fire, 1, 0);
            return;
        }
    }
}

/* {{fakeVar}}: "fake-APP-VARIANT", so a test sees which app and variant it was filled for. */
static void fake_template_vars(void *self, const struct kn_app_id *id, enum kn_variant v,
                               struct kn_strmap *out)
{
    char *value = kn_asprintf("fake-%s-%s", id->app, kn_variant_name(v));

    (void)self;
    kn_platform_vars_set(out, "fakeVar", value);
    free(value);
}

/* Calls that were not ended are ended now with KN_ECANCELLED (a platform that goes away answers
 * what it was asked). */
static void fake_destroy(void *self)
{
    struct kn_fake_platform *fp = self;

    fp->destroying = 1; /* what runs in the world stays as it is */
    while (fp->calls_in_flight) {
        struct kn_fake_call *c = fp->calls_in_flight;
        uv_timer_stop(&c->timer);
        c->status = KN_ECANCELLED;
        c->message = "the platform is closing";
        call_end(c);
    }
    if (kn_fake_platform_last == fp) {
        kn_fake_platform_last = NULL;
    }
    kn_live_state_release(&fp->live);
    free(fp->memo_read);
    free(fp->name);
    free(fp);
}

static int fake_create(void **out, const struct kn_platform_env *env, const void *config,
                       struct kn_error *err)
{
    struct kn_fake_platform *fp = kn_calloc(1, sizeof(*fp));

    (void)config;
    (void)err;
    fp->loop = env->loop;
    fp->name = kn_strdup(env->name);
    fp->live.variant[KN_VARIANT_PRIMARY].weight = 100;
    fp->world = kn_fake_world;
    for (struct kn_fake_app *a = fp->world ? fp->world->apps : NULL; a; a = a->next) {
        for (int v = 0; v < KN_VARIANT_COUNT; v++) {
            /* what an apply that never ended started took no traffic: stopped */
            fp->world->settled += a->starting[v];
            a->starting[v] = 0;
        }
    }
    kn_fake_platform_last = fp;
    *out = fp;
    return 0;
}

const struct kn_platform_provider_ops kn_fake_platform_ops = {
    .apply = fake_apply,
    .remove = fake_remove,
    .set_weights = fake_set_weights,
    .remove_app = fake_remove_app,
    .observe = fake_observe,
    .cancel = fake_cancel,
    .template_vars = fake_template_vars,
    .destroy = fake_destroy,
};

static const struct kn_manifest_kind fake_kinds[] = {
    {.kind = "LocalService", .role = KN_KIND_WORKLOAD, .min = 1, .max = 1,
     .help = "the fake runs a LocalService's manifest as if it were its own"},
};

static const struct kn_placeholder fake_placeholders[] = {
    {.name = "fakeVar", .help = "fake-APP-VARIANT"},
    {.name = NULL},
};

const struct kn_platform_type kn_platform_fake = {
    .name = "fake",
    .help = "a platform for tests: answers each call on a timer, as the test scripts it",
    .caps = KN_PLATFORM_APPLY | KN_PLATFORM_CANARY | KN_PLATFORM_BASELINE |
            KN_PLATFORM_TRAFFIC_SPLIT | KN_PLATFORM_LIVE | KN_PLATFORM_CANCEL,
    .weight_step = 0,
    .kinds = fake_kinds,
    .nkinds = 1,
    .placeholders = fake_placeholders,
    .create = fake_create,
    .ops = &kn_fake_platform_ops,
};

/* ---- loading the apps of a deployment ------------------------------------------------------ */

static void load_at(const char *top, const char *commit, const char *path, struct kn_app **app,
                    char *error, size_t size)
{
    char *dir = kn_asprintf("%s/src/%s", top, commit);
    struct kn_source *src = NULL;
    struct kn_error err;

    kn_error_clear(&err);
    if (kn_source_dir_new(&src, dir, &err) < 0) {
        if (error) {
            snprintf(error, size, "%s", err.msg);
        }
        goto out;
    }
    kn_validate_app_load(app, src, path, NULL);
    if (*app && (*app)->diags.count > 0 && error) {
        kn_diag_format(&(*app)->diags.items[0], error, size);
    }
out:
    kn_source_free(src);
    free(dir);
}

void kn_fake_load(const char *dir, const struct kn_deployment *d, const char *path,
                  const char *last_good, struct kn_engine_load *out)
{
    load_at(dir, d->commit, path, &out->app, out->error, sizeof(out->error));
    if (last_good) {
        load_at(dir, last_good, path, &out->last_good, NULL, 0);
        if (out->last_good && out->last_good->diags.count > 0) {
            kn_app_free(out->last_good);
            out->last_good = NULL;
        }
    }
}
