/*
 * GET /api/v1/apps, /api/v1/apps/{app} and /api/v1/apps/{app}/history: the apps and their
 * deployments as the state store has them; and finding the app a route names.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/router.h"
#include "freeze.h"
#include "kanaria/engine.h"

/* How many deployments an app's answer lists. */
#define KN_API_RECENT  10
#define KN_API_HISTORY 100

/* ---- JSON of what the store holds ------------------------------------------------------------ */

json_t *kn_api_deployment_json(const struct kn_deployment *d)
{
    return json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:s,"
                     " s:I}",
                     "id",
                     (json_int_t)d->id, "repo", d->repo, "app", d->app, "commit", d->commit,
                     "author", d->author, "message", d->message, "strategy", d->strategy, "summary",
                     d->summary, "status", kn_deploy_status_name(d->status), "reason", d->reason,
                     "created_at", (json_int_t)d->created_at, "updated_at",
                     (json_int_t)d->updated_at, "started_at", (json_int_t)d->started_at,
                     "finished_at", (json_int_t)d->finished_at, "trigger", d->trigger,
                     "commit_time", (json_int_t)d->commit_time);
}

int kn_api_collect_deployment(const struct kn_deployment *d, void *data)
{
    json_array_append_new(data, kn_api_deployment_json(d));
    return 0;
}

json_t *kn_api_stage_json(const struct kn_stage_state *s)
{
    return json_pack("{s:i, s:s, s:s, s:I, s:I}", "index", s->index, "name", s->name, "status",
                     s->status, "started_at", (json_int_t)s->started_at, "finished_at",
                     (json_int_t)s->finished_at);
}

const char *kn_api_app_status(const struct kn_app_state *a)
{
    if (a->current_deployment != 0) {
        return "DEPLOYING";
    }
    if (a->error && a->error[0]) {
        return "INVALID";
    }
    if (a->orphaned_at != 0) {
        return "ORPHANED";
    }
    if (a->drift[0]) {
        return "OUT_OF_SYNC";
    }
    if (a->rolled_back_from[0]) {
        return "ROLLED_BACK";
    }
    return a->last_good[0] ? "SYNCED" : "NEW";
}

struct kn_api_platform_find {
    struct kn_store *store;
    char *name; /* the first deployment's that has one; NULL until found */
};

static int kn_api_deployment_platform(const struct kn_deployment *d, void *data)
{
    struct kn_api_platform_find *f = data;

    f->name = kn_store_stage_meta_get(f->store, d->id, KN_STORE_DEPLOYMENT_META,
                                      KN_ENGINE_PLATFORM_META);
    return f->name != NULL;
}

/* The platform the app runs on: the one its newest deployment that started ran on; before any,
 * for a valid app, the only platform kanaria.yaml declares (`local`, the embedded default, when
 * it declares none: an app must name a declared one); otherwise "" (unknown). */
static json_t *kn_api_app_platform(struct kn_api *api, const struct kn_app_state *a)
{
    struct kn_api_platform_find f = {.store = api->deps.store};
    const struct kn_list *platforms = &api->config->platforms;
    json_t *j;

    kn_store_deployments(api->deps.store, a->repo, a->name, KN_API_RECENT,
                         kn_api_deployment_platform, &f);
    if (f.name) {
        j = json_string(f.name);
    } else if (a->error && a->error[0]) {
        j = json_string(""); /* its platform may be what is wrong with it */
    } else if (platforms->count == 0) {
        j = json_string("local");
    } else if (platforms->count == 1) {
        j = json_string(((const struct kn_platform_config *)platforms->items)[0].name);
    } else {
        j = json_string("");
    }
    free(f.name);
    return j;
}

/* The app's traffic split as its platform reports it now ("traffic"), or null and why
 * ("traffic_error"), into j. */
static void kn_api_app_traffic(struct kn_api *api, const struct kn_app_state *a, json_t *j)
{
    struct kn_live_state ls;
    const char *why = NULL;

    memset(&ls, 0, sizeof(ls));
    if (!api->deps.live || api->deps.live(api->deps.data, a->name, &ls) < 0) {
        why = "the platform has not been read for this app yet";
    } else if (ls.error) {
        why = ls.error;
    }
    if (why) {
        json_object_set_new(j, "traffic", json_null());
        json_object_set_new(j, "traffic_error", json_string(why));
    } else {
        json_object_set_new(j, "traffic",
                            json_pack("{s:f, s:f, s:f}", "primary",
                                      ls.variant[KN_VARIANT_PRIMARY].weight, "canary",
                                      ls.variant[KN_VARIANT_CANARY].weight, "baseline",
                                      ls.variant[KN_VARIANT_BASELINE].weight));
        json_object_set_new(j, "traffic_error", json_string(""));
    }
    kn_live_state_release(&ls);
}

/* The first stage that is RUNNING (the one a person may be waiting on). */
static int kn_api_find_running(const struct kn_stage_state *s, void *data)
{
    struct kn_stage_state *out = data;

    if (strcmp(s->status, "RUNNING") == 0) {
        *out = *s;
        return 1;
    }
    return 0;
}

/* The running stage of deployment d, with the `id` its pipeline gives it ("" when none, or
 * when the pipeline was not recorded) as in GET /api/v1/deployments/{id}. */
static json_t *kn_api_running_stage_json(struct kn_api *api, const struct kn_deployment *d,
                                         const struct kn_stage_state *running)
{
    json_t *j = kn_api_stage_json(running);
    char *text = kn_store_stage_meta_get(api->deps.store, d->id, KN_STORE_DEPLOYMENT_META,
                                         KN_ENGINE_PIPELINE_META);
    json_t *pipeline = text ? json_loads(text, 0, NULL) : NULL;
    const char *id = NULL;
    size_t i;
    json_t *p;

    json_array_foreach(pipeline, i, p)
    {
        if (json_integer_value(json_object_get(p, "index")) == running->index) {
            id = json_string_value(json_object_get(p, "id"));
            break;
        }
    }
    json_object_set_new(j, "id", json_string(id ? id : ""));
    json_decref(pipeline);
    free(text);
    return j;
}

/* A number, or null when it is NaN (that window had no data). */
static json_t *kn_api_number(double v)
{
    return v == v ? json_real(v) : json_null();
}

static void kn_api_collect_slo(const struct kn_slo_reading *r, void *data)
{
    json_t *list = data;
    json_t *burn = json_object();
    char window[32];

    kn_slo_window_format(r->window_ms, window, sizeof(window));
    for (int w = 0; w < KN_SLO_BURN_WINDOWS; w++) {
        char name[32];
        kn_slo_window_format(kn_slo_burn_windows_ms[w], name, sizeof(name));
        json_object_set_new(burn, name, kn_api_number(r->known && !r->error[0] ? r->burn[w]
                                                                               : (double)NAN));
    }
    json_array_append_new(
        list, json_pack("{s:s, s:f, s:s, s:I, s:s, s:o, s:o, s:o, s:I, s:s}", "name", r->slo,
                        "objective", r->objective, "window", window, "window_ms",
                        (json_int_t)r->window_ms, "provider", r->provider, "sli",
                        kn_api_number(r->known && !r->error[0] ? r->sli : (double)NAN),
                        "budget_remaining",
                        kn_api_number(r->known && !r->error[0] ? r->remaining : (double)NAN),
                        "burn_rates", burn, "read_at", (json_int_t)(r->known ? r->at_ms : 0),
                        "error", r->error));
}

/* One opening of a freeze window: times in ms, and as the window's zone shows them. */
static json_t *kn_api_freeze_span(const struct kn_freeze_span *s, int with_from)
{
    char text[96];
    json_t *j = json_object();

    json_object_set_new(j, "name", json_string(s->window->name ? s->window->name : ""));
    if (with_from) {
        json_object_set_new(j, "from", json_integer(s->from_ms));
        kn_freeze_format_local(s->window, s->from_ms, text, sizeof(text));
        json_object_set_new(j, "from_local", json_string(text));
    }
    json_object_set_new(j, "until", json_integer(s->until_ms));
    kn_freeze_format_local(s->window, s->until_ms, text, sizeof(text));
    json_object_set_new(j, "until_local", json_string(text));
    return j;
}

/* `freeze`: the window of kanaria.yaml covering the app that is open now and the one that opens
 * next ({active: {name, until}, next: {name, from, until}}, each null when none). */
static json_t *kn_api_app_freeze(struct kn_api *api, const struct kn_app_state *a)
{
    struct kn_freeze_span s;
    struct timespec ts;
    long long now;
    json_t *j = json_object();

    clock_gettime(CLOCK_REALTIME, &ts);
    now = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    json_object_set_new(j, "active",
                        kn_freeze_active(api->config, NULL, a->repo, a->name, now, &s)
                            ? kn_api_freeze_span(&s, 0)
                            : json_null());
    json_object_set_new(j, "next", kn_freeze_next(api->config, NULL, a->repo, a->name, now, &s)
                                       ? kn_api_freeze_span(&s, 1)
                                       : json_null());
    return j;
}

static json_t *kn_api_app_json(struct kn_api *api, const struct kn_app_state *a)
{
    json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "repo", a->repo, "name", a->name,
                          "path", a->path, "last_good", a->last_good, "last_seen", a->last_seen,
                          "rolled_back_from", a->rolled_back_from, "error", a->error);
    json_t *latest = json_array();
    struct kn_deployment d;

    json_object_set_new(j, "platform", kn_api_app_platform(api, a));
    json_object_set_new(j, "status", json_string(kn_api_app_status(a)));
    json_object_set_new(j, "drift", json_string(a->drift));
    json_object_set_new(j, "drift_since", json_integer(a->drift_since));
    json_object_set_new(j, "self_heal", json_boolean(a->self_heal));
    json_object_set_new(j, "orphaned", json_boolean(a->orphaned_at != 0));
    json_object_set_new(j, "orphaned_since", json_integer(a->orphaned_at));
    json_object_set_new(j, "pruned", json_boolean(a->pruned_at != 0));
    json_object_set_new(j, "pruned_at", json_integer(a->pruned_at));
    json_object_set_new(j, "slos", json_array());
    if (api->deps.slos) {
        api->deps.slos(api->deps.data, a->repo, a->name, kn_api_collect_slo,
                       json_object_get(j, "slos"));
    }
    json_object_set_new(j, "freeze", kn_api_app_freeze(api, a));
    /* while the store cannot be written, no app's state can be recorded */
    json_object_set_new(j, "storage_error",
                        json_string(kn_store_storage_error(api->deps.store, NULL)));
    json_object_set_new(j, "current", json_null());
    if (a->current_deployment &&
        kn_store_deployment_get(api->deps.store, a->current_deployment, &d) == 0) {
        json_t *cur = kn_api_deployment_json(&d);
        struct kn_stage_state running;
        memset(&running, 0, sizeof(running));
        running.index = -1;
        kn_store_stages(api->deps.store, d.id, kn_api_find_running, &running);
        char *glass = kn_store_stage_meta_get(api->deps.store, d.id, KN_STORE_DEPLOYMENT_META,
                                              KN_ENGINE_BREAK_GLASS_META);
        json_object_set_new(cur, "running_stage",
                            running.index >= 0 ? kn_api_running_stage_json(api, &d, &running)
                                               : json_null());
        /* a stage skipped by break-glass, shown while the deployment runs on */
        json_object_set_new(cur, "break_glass", glass ? json_string(glass) : json_null());
        free(glass);
        json_object_set_new(j, "current", cur);
        kn_deployment_release(&d);
    }
    kn_store_deployments(api->deps.store, a->repo, a->name, 1, kn_api_collect_deployment, latest);
    json_object_set(j, "latest", json_array_size(latest) ? json_array_get(latest, 0) : json_null());
    json_decref(latest);
    return j;
}

/* ---- finding an app -------------------------------------------------------------------------- */

struct kn_api_app_find {
    const char *name;
    const char *repo; /* NULL: any */
    struct kn_app_state found;
    int count;
    char repos[512];
};

static int kn_api_app_match(const struct kn_app_state *a, void *data)
{
    struct kn_api_app_find *f = data;
    size_t n = strlen(f->repos);

    if (strcmp(a->name, f->name) != 0 || (f->repo && strcmp(a->repo, f->repo) != 0)) {
        return 0;
    }
    if (f->count++ == 0) {
        kn_app_state_copy(&f->found, a);
    }
    snprintf(f->repos + n, sizeof(f->repos) - n, "%s'%s'", n ? ", " : "", a->repo);
    return 0;
}

int kn_api_find_app(struct kn_api *api, h2o_req_t *req, const struct kn_api_call *call,
                    struct kn_app_state *out)
{
    struct kn_api_app_find f;

    memset(&f, 0, sizeof(f));
    f.name = kn_api_param(call, "app");
    f.repo = call->repo;
    kn_store_apps(api->deps.store, NULL, kn_api_app_match, &f);
    if (f.count != 1) {
        kn_app_state_release(&f.found);
    }
    if (f.count == 0) {
        if (call->repo) {
            kn_api_reply_error(req, 404, "no app '%s' in repository '%s'", f.name, call->repo);
        } else {
            kn_api_reply_error(req, 404, "no app '%s'", f.name);
        }
        return KN_ENOTFOUND;
    }
    if (f.count > 1) {
        kn_api_reply_error(req, 409, "app '%s' is in several repositories (%s): add ?repo=NAME",
                           f.name, f.repos);
        return KN_EEXISTS;
    }
    *out = f.found;
    return 0;
}

/* ---- the routes ------------------------------------------------------------------------------ */

struct kn_api_apps {
    struct kn_api *api;
    json_t *list;
};

static int kn_api_collect_app(const struct kn_app_state *a, void *data)
{
    struct kn_api_apps *x = data;

    json_array_append_new(x->list, kn_api_app_json(x->api, a));
    return 0;
}

void kn_api_apps_list(struct kn_api *api, h2o_req_t *req, const struct kn_api_call *call)
{
    struct kn_api_apps x = {.api = api, .list = json_array()};
    json_t *body;

    kn_store_apps(api->deps.store, call->repo, kn_api_collect_app, &x);
    body = json_pack("{s:o, s:s}", "apps", x.list, "storage_error",
                     kn_store_storage_error(api->deps.store, NULL));
    kn_api_reply(req, 200, body);
    json_decref(body);
}

static void kn_api_app_answer(struct kn_api *api, h2o_req_t *req, const struct kn_api_call *call,
                              int history)
{
    struct kn_app_state a = {0};
    json_t *list = json_array();
    json_t *body;

    if (kn_api_find_app(api, req, call, &a) < 0) {
        json_decref(list);
        return;
    }
    kn_store_deployments(api->deps.store, a.repo, a.name, history ? KN_API_HISTORY : KN_API_RECENT,
                         kn_api_collect_deployment, list);
    if (history) {
        body = json_pack("{s:s, s:s}", "repo", a.repo, "app", a.name);
    } else {
        body = kn_api_app_json(api, &a);
        kn_api_app_traffic(api, &a, body);
    }
    json_object_set_new(body, "deployments", list);
    kn_api_reply(req, 200, body);
    json_decref(body);
    kn_app_state_release(&a);
}

void kn_api_app_get(struct kn_api *api, h2o_req_t *req, const struct kn_api_call *call)
{
    kn_api_app_answer(api, req, call, 0);
}

void kn_api_app_history(struct kn_api *api, h2o_req_t *req, const struct kn_api_call *call)
{
    kn_api_app_answer(api, req, call, 1);
}
