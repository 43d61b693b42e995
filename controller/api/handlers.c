/*
 * The API's routes: reads of apps and deployments from the state store, approvals, and the
 * operator's actions (cancel, rollback, sync, skip). Every
 * action is authorized by the caller's role and recorded in the audit log with the caller's name
 * and address.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <git2.h>

#include "api/auth.h"
#include "api/server.h"
#include "git/git.h"
#include "kanaria/alloc.h"
#include "kanaria/app.h"
#include "kanaria/engine.h"
#include "kanaria/log.h"
#include "kanaria/manifest.h"
#include "kanaria/stage.h"
#include "kanaria/validate.h"

#define WHO "api"

/* The most path segments a route has, and how many rows an answer lists. */
#define KN_API_MAX_SEGMENTS 8
#define KN_API_RECENT       10
#define KN_API_HISTORY      100
#define KN_API_EVENTS       500
#define KN_API_REASON_MAX   500 /* bytes of a break-glass reason */

struct kn_api_route {
    char *seg[KN_API_MAX_SEGMENTS]; /* decoded, in the request's pool */
    int nseg;
    char *repo; /* ?repo=, or NULL */
};

struct kn_api_caller {
    char name[128];
    int role;
};

static long long kn_api_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- parsing the request --------------------------------------------------------------------- */

static int kn_api_hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* Percent-decode a query value s[0..len) into the pool ('+' is a space); NULL when it holds an
 * invalid escape or a NUL. */
static char *kn_api_decode(h2o_mem_pool_t *pool, const char *s, size_t len)
{
    char *out = h2o_mem_alloc_pool(pool, len + 1);
    size_t n = 0;

    for (size_t i = 0; i < len; i++) {
        int hi, lo;
        if (s[i] != '%') {
            out[n++] = s[i] == '+' ? ' ' : s[i];
            continue;
        }
        if (i + 2 >= len) {
            return NULL;
        }
        hi = kn_api_hexval(s[i + 1]);
        lo = kn_api_hexval(s[i + 2]);
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
            return NULL;
        }
        out[n++] = (char)(hi << 4 | lo);
        i += 2;
    }
    out[n] = '\0';
    return out;
}

/* Split the path after "/api/v1/" into segments and read ?repo=. KN_EINVAL for a path that
 * cannot be a route, KN_EPARSE for a malformed query. */
static int kn_api_parse_route(h2o_req_t *req, size_t skip, struct kn_api_route *r)
{
    const char *p = req->path_normalized.base + skip;
    size_t len = req->path_normalized.len - skip;
    size_t start = 0;

    memset(r, 0, sizeof(*r));
    for (size_t i = 0; i <= len; i++) {
        if (i < len && p[i] != '/') {
            continue;
        }
        if (i > start) {
            if (r->nseg == KN_API_MAX_SEGMENTS) {
                return KN_EINVAL;
            }
            /* h2o has decoded the escapes of path_normalized already */
            if (memchr(p + start, '\0', i - start)) {
                return KN_EINVAL;
            }
            r->seg[r->nseg++] = h2o_strdup(&req->pool, p + start, i - start).base;
        }
        start = i + 1;
    }
    if (req->query_at != SIZE_MAX && req->query_at < req->path.len) {
        const char *q = req->path.base + req->query_at + 1;
        size_t qlen = req->path.len - req->query_at - 1;
        while (qlen > 0) {
            const char *amp = memchr(q, '&', qlen);
            size_t n = amp ? (size_t)(amp - q) : qlen;
            if (n > 5 && memcmp(q, "repo=", 5) == 0 &&
                !(r->repo = kn_api_decode(&req->pool, q + 5, n - 5))) {
                return KN_EPARSE;
            }
            q += n;
            qlen -= n;
            if (qlen > 0) {
                q++;
                qlen--;
            }
        }
    }
    return 0;
}

static int kn_api_method_is(h2o_req_t *req, const char *m)
{
    return h2o_memis(req->method.base, req->method.len, m, strlen(m));
}

/* The body as a JSON object (a new reference; an empty body is {}), or NULL after answering 400. */
static json_t *kn_api_body_json(h2o_req_t *req)
{
    json_error_t jerr;
    json_t *j;

    if (req->entity.base == NULL || req->entity.len == 0) {
        return json_object();
    }
    j = json_loadb(req->entity.base, req->entity.len, JSON_REJECT_DUPLICATES, &jerr);
    if (!j) {
        kn_api_reply_error(req, 400, "malformed JSON at line %d, column %d: %s", jerr.line,
                           jerr.column, jerr.text);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        kn_api_reply_error(req, 400, "the body must be a JSON object");
        return NULL;
    }
    return j;
}

/* ---- who is calling -------------------------------------------------------------------------- */

/* 0 with the caller in *c when it holds at least `role`; otherwise answered 401 or 403. */
static int kn_api_authorize(struct kn_api *api, h2o_req_t *req, int role, const char *action,
                            struct kn_api_caller *c)
{
    const struct kn_user_config *u;
    const char *value, *token;
    size_t len, tlen;

    memset(c, 0, sizeof(*c));
    if (api->config->users.count == 0) {
        /* no users: a loopback API can be read anonymously, nothing else is allowed */
        if (api->loopback && role == KN_ROLE_VIEWER) {
            snprintf(c->name, sizeof(c->name), "anonymous");
            c->role = KN_ROLE_VIEWER;
            return 0;
        }
        kn_api_refuse(api, req, role == KN_ROLE_VIEWER ? 401 : 403, NULL,
                      "no users are declared in kanaria.yaml: %s is refused", action);
        return KN_EINVAL;
    }
    value = kn_api_header(req, "authorization", &len);
    if (!value) {
        kn_api_refuse(api, req, 401, NULL, "missing 'Authorization: Bearer TOKEN'");
        return KN_EINVAL;
    }
    if (kn_auth_bearer(value, len, &token, &tlen) < 0) {
        kn_api_refuse(api, req, 401, NULL, "the Authorization header is not a bearer token");
        return KN_EINVAL;
    }
    if (!(u = kn_auth_user(api->config, token, tlen))) {
        kn_api_refuse(api, req, 401, NULL, "unknown token");
        return KN_EINVAL;
    }
    if (u->role < role) {
        kn_api_refuse(api, req, 403, u->name, "user '%s' (%s) may not %s: it needs the %s role",
                      u->name, kn_auth_role_name(u->role), action, kn_auth_role_name(role));
        return KN_EINVAL;
    }
    snprintf(c->name, sizeof(c->name), "%s", u->name);
    c->role = u->role;
    return 0;
}

/* ---- JSON of what the store holds ------------------------------------------------------------ */

static json_t *kn_api_deployment_json(const struct kn_deployment *d)
{
    return json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:s}",
                     "id",
                     (json_int_t)d->id, "repo", d->repo, "app", d->app, "commit", d->commit,
                     "author", d->author, "message", d->message, "strategy", d->strategy, "summary",
                     d->summary, "status", kn_deploy_status_name(d->status), "reason", d->reason,
                     "created_at", (json_int_t)d->created_at, "updated_at",
                     (json_int_t)d->updated_at, "started_at", (json_int_t)d->started_at,
                     "finished_at", (json_int_t)d->finished_at, "trigger", d->trigger);
}

static int kn_api_collect_deployment(const struct kn_deployment *d, void *data)
{
    json_array_append_new(data, kn_api_deployment_json(d));
    return 0;
}

static json_t *kn_api_stage_json(const struct kn_stage_state *s)
{
    return json_pack("{s:i, s:s, s:s, s:I, s:I}", "index", s->index, "name", s->name, "status",
                     s->status, "started_at", (json_int_t)s->started_at, "finished_at",
                     (json_int_t)s->finished_at);
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

static json_t *kn_api_app_json(struct kn_api *api, const struct kn_app_state *a)
{
    json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "repo", a->repo, "name", a->name,
                          "path", a->path, "last_good", a->last_good, "last_seen", a->last_seen,
                          "rolled_back_from", a->rolled_back_from, "error", a->error);
    json_t *latest = json_array();
    struct kn_deployment d;

    json_object_set_new(j, "drift", json_string(a->drift));
    json_object_set_new(j, "drift_since", json_integer(a->drift_since));
    json_object_set_new(j, "self_heal", json_boolean(a->self_heal));
    json_object_set_new(j, "orphaned", json_boolean(a->orphaned_at != 0));
    json_object_set_new(j, "orphaned_since", json_integer(a->orphaned_at));
    json_object_set_new(j, "pruned", json_boolean(a->pruned_at != 0));
    json_object_set_new(j, "pruned_at", json_integer(a->pruned_at));
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
                            running.index >= 0 ? kn_api_stage_json(&running) : json_null());
        /* a stage skipped by break-glass, shown while the deployment runs on */
        json_object_set_new(cur, "break_glass", glass ? json_string(glass) : json_null());
        free(glass);
        json_object_set_new(j, "current", cur);
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
        f->found = *a;
    }
    snprintf(f->repos + n, sizeof(f->repos) - n, "%s'%s'", n ? ", " : "", a->repo);
    return 0;
}

/* The app named in the route; otherwise answered 404 or 409. */
static int kn_api_find_app(struct kn_api *api, h2o_req_t *req, const struct kn_api_route *r,
                           struct kn_app_state *out)
{
    struct kn_api_app_find f;

    memset(&f, 0, sizeof(f));
    f.name = r->seg[1];
    f.repo = r->repo;
    kn_store_apps(api->deps.store, NULL, kn_api_app_match, &f);
    if (f.count == 0) {
        if (r->repo) {
            kn_api_reply_error(req, 404, "no app '%s' in repository '%s'", f.name, r->repo);
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

/* ---- reads ----------------------------------------------------------------------------------- */

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

static void kn_api_get_apps(struct kn_api *api, h2o_req_t *req, const struct kn_api_route *r)
{
    struct kn_api_apps x = {.api = api, .list = json_array()};
    json_t *body;

    kn_store_apps(api->deps.store, r->repo, kn_api_collect_app, &x);
    body = json_pack("{s:o, s:s}", "apps", x.list, "storage_error",
                     kn_store_storage_error(api->deps.store, NULL));
    kn_api_reply(req, 200, body);
    json_decref(body);
}

static void kn_api_get_app(struct kn_api *api, h2o_req_t *req, const struct kn_api_route *r,
                           int history)
{
    struct kn_app_state a;
    json_t *list = json_array();
    json_t *body;

    if (kn_api_find_app(api, req, r, &a) < 0) {
        json_decref(list);
        return;
    }
    kn_store_deployments(api->deps.store, a.repo, a.name, history ? KN_API_HISTORY : KN_API_RECENT,
                         kn_api_collect_deployment, list);
    body =
        history ? json_pack("{s:s, s:s}", "repo", a.repo, "app", a.name) : kn_api_app_json(api, &a);
    json_object_set_new(body, "deployments", list);
    kn_api_reply(req, 200, body);
    json_decref(body);
}

struct kn_api_detail {
    struct kn_api *api;
    long long id;
    json_t *stages; /* array, by index */
    json_t *events;
};

/* The stage object of index i, created when the store has approvals or analysis records of a
 * stage it has no row for. */
static json_t *kn_api_stage_slot(struct kn_api_detail *x, int index)
{
    size_t i;
    json_t *s;

    json_array_foreach(x->stages, i, s)
    {
        if (json_integer_value(json_object_get(s, "index")) == index) {
            return s;
        }
    }
    s = json_pack("{s:i, s:s, s:s}", "index", index, "name", "", "status", "NOT_STARTED");
    json_array_append_new(x->stages, s);
    return s;
}

static json_t *kn_api_stage_list(json_t *stage, const char *key)
{
    json_t *l = json_object_get(stage, key);

    if (!l) {
        l = json_array();
        json_object_set_new(stage, key, l);
    }
    return l;
}

static int kn_api_collect_stage(const struct kn_stage_state *s, void *data)
{
    struct kn_api_detail *x = data;
    json_t *j = kn_api_stage_json(s);
    char *reason = NULL;

    /* why it was skipped, for a break-glass skip */
    if (strcmp(s->status, "SKIPPED") == 0 &&
        (reason = kn_store_stage_meta_get(x->api->deps.store, x->id, s->index,
                                          KN_ENGINE_SKIP_REASON_META))) {
        json_object_set_new(j, "reason", json_string(reason));
        free(reason);
    }
    json_object_set_new(j, "approvals", json_array());
    json_object_set_new(j, "analysis", json_array());
    json_array_append_new(x->stages, j);
    return 0;
}

static int kn_api_collect_approval(const struct kn_approval_record *a, void *data)
{
    json_t *l = kn_api_stage_list(kn_api_stage_slot(data, a->stage), "approvals");

    json_array_append_new(l, json_pack("{s:s, s:s, s:I}", "who", a->who, "decision", a->decision,
                                       "at", (json_int_t)a->at));
    return 0;
}

static int kn_api_collect_analysis(const struct kn_analysis_record *r, void *data)
{
    json_t *l = kn_api_stage_list(kn_api_stage_slot(data, r->stage), "analysis");
    json_t *values = json_loads(r->values_json, 0, NULL);

    json_array_append_new(l,
                          json_pack("{s:I, s:I, s:s, s:s, s:o, s:s, s:s}", "id", (json_int_t)r->id,
                                    "at", (json_int_t)r->at, "check", r->check, "query", r->query,
                                    "values", values ? values : json_string(r->values_json),
                                    "bound", r->bound, "verdict", r->verdict));
    return 0;
}

static int kn_api_collect_event(const struct kn_event *e, void *data)
{
    struct kn_api_detail *x = data;

    json_array_append_new(x->events, json_pack("{s:I, s:I, s:s, s:s, s:s}", "id", (json_int_t)e->id,
                                               "at", (json_int_t)e->at, "type", e->type, "actor",
                                               e->actor, "message", e->message));
    return 0;
}

static void kn_api_get_deployment(struct kn_api *api, h2o_req_t *req, const char *arg)
{
    struct kn_deployment d;
    char *end = NULL;
    long long id = strtoll(arg, &end, 10);
    struct kn_api_detail x = {.api = api, .id = id, .stages = json_array(), .events = json_array()};
    char *plan = NULL;
    json_t *body = NULL;

    if (!end || *end || id <= 0 || kn_store_deployment_get(api->deps.store, id, &d) < 0) {
        kn_api_reply_error(req, 404, "no deployment '%s'", arg);
        goto out;
    }
    body = kn_api_deployment_json(&d);
    plan = kn_store_deployment_plan(api->deps.store, id);
    json_object_set_new(body, "plan", plan ? json_loads(plan, 0, NULL) : json_null());
    if (!json_object_get(body, "plan")) {
        json_object_set_new(body, "plan", json_null());
    }
    kn_store_stages(api->deps.store, id, kn_api_collect_stage, &x);
    kn_store_approval_list(api->deps.store, id, kn_api_collect_approval, &x);
    kn_store_analysis_list(api->deps.store, id, kn_api_collect_analysis, &x);
    kn_store_deployment_events(api->deps.store, id, KN_API_EVENTS, kn_api_collect_event, &x);
    json_object_set(body, "stages", x.stages);
    json_object_set(body, "events", x.events);
    kn_api_reply(req, 200, body);
out:
    free(plan);
    json_decref(body);
    json_decref(x.stages);
    json_decref(x.events);
}

/* ---- approve and reject ------------------------------------------------------------------------
 */

/*
 * The stage's `approvers` are in the app's config at the deployment's commit, which the store
 * does not keep: it is read from the repository's mirror on the thread pool, then the decision
 * is checked again on the loop (the stage may have ended meanwhile) and recorded.
 */
struct kn_api_approval {
    struct kn_api *api;
    h2o_req_t *req;                  /* NULL once the request is gone (the client went away) */
    struct kn_api_approval_ref *ref; /* in req's pool; NULL with req */
    uv_work_t work;
    int reject;
    struct kn_api_caller caller;
    char peer[96];
    char reason[512];
    struct kn_deployment d;
    char app_path[512];
    char mirror[1024];
    struct kn_stage_state stage;
    /* filled on the thread pool */
    char **approvers;
    size_t napprovers;
    char error[512];
};

struct kn_api_approval_ref {
    struct kn_api_approval *a;
};

static void kn_api_approval_req_gone(void *p)
{
    struct kn_api_approval_ref *ref = p;

    if (ref->a) {
        ref->a->req = NULL;
        ref->a->ref = NULL;
    }
}

/* On the thread pool: the `approvers` of stage a->stage.index at the deployment's commit. */
static void kn_api_approval_load(uv_work_t *w)
{
    struct kn_api_approval *a = w->data;
    git_repository *repo = NULL;
    struct kn_source *src = NULL;
    struct kn_app *app = NULL;
    const struct kn_stage_config *stages;
    const struct kn_node *list;
    struct kn_error err;
    git_oid commit;

    kn_error_clear(&err);
    if (kn_git_open(&repo, a->mirror, &err) < 0 || git_oid_fromstr(&commit, a->d.commit) != 0 ||
        kn_git_tree_source_new(&src, repo, &commit, &err) < 0) {
        snprintf(a->error, sizeof(a->error), "cannot read commit %.7s: %.400s", a->d.commit,
                 err.msg[0] ? err.msg : "bad commit");
        goto out;
    }
    kn_validate_app_load(&app, src, a->app_path, NULL);
    stages = app ? app->cfg.spec.pipeline.items : NULL;
    if (!app || a->stage.index < 0 || (size_t)a->stage.index >= app->cfg.spec.pipeline.count ||
        strcmp(stages[a->stage.index].name, a->stage.name) != 0) {
        snprintf(a->error, sizeof(a->error), "the pipeline at commit %.7s has no stage %d %s",
                 a->d.commit, a->stage.index, a->stage.name);
        goto out;
    }
    list = stages[a->stage.index].with_node
               ? kn_node_get(stages[a->stage.index].with_node, "approvers")
               : NULL;
    if (list && list->type == KN_NODE_SEQ && list->len > 0) {
        a->approvers = kn_calloc(list->len, sizeof(*a->approvers));
        for (size_t i = 0; i < list->len; i++) {
            if (list->items[i]->type == KN_NODE_SCALAR) {
                a->approvers[a->napprovers++] = kn_strdup(list->items[i]->scalar);
            }
        }
    }
out:
    kn_app_free(app);
    kn_source_free(src);
    git_repository_free(repo);
}

static void kn_api_approval_free(struct kn_api_approval *a)
{
    for (size_t i = 0; i < a->napprovers; i++) {
        free(a->approvers[i]);
    }
    free(a->approvers);
    free(a);
}

static int kn_api_approval_listed(const struct kn_api_approval *a)
{
    if (a->napprovers == 0) {
        return 1; /* no list: anyone with the approver role */
    }
    for (size_t i = 0; i < a->napprovers; i++) {
        if (strcmp(a->approvers[i], a->caller.name) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Back on the loop: check again, record the decision and its audit event, wake the engine. */
static void kn_api_approval_done(uv_work_t *w, int status)
{
    struct kn_api_approval *a = w->data;
    struct kn_api *api = a->api;
    const char *verb = a->reject ? "rejected" : "approved";
    char now_status[16];
    char msg[1024];
    long long now = kn_api_now_ms();
    json_t *body;

    api->pending--;
    if (!a->req) {
        goto out;
    }
    if (status != 0 || a->error[0]) {
        kn_api_reply_error(a->req, 500, "%s", a->error[0] ? a->error : "cancelled");
        goto out;
    }
    if (kn_store_stage_get(api->deps.store, a->d.id, a->stage.index, now_status, sizeof(now_status),
                           NULL) < 0 ||
        strcmp(now_status, "RUNNING") != 0) {
        kn_api_reply_error(a->req, 409, "deployment %lld of '%s' is no longer waiting for approval",
                           a->d.id, a->d.app);
        goto out;
    }
    if (!kn_api_approval_listed(a)) {
        kn_api_refuse(api, a->req, 403, a->caller.name,
                      "not an approver of this stage: '%s' is not in its approvers",
                      a->caller.name);
        goto out;
    }
    if (kn_store_approval_add(api->deps.store, a->d.id, a->stage.index, a->caller.name,
                              a->reject ? "REJECT" : "APPROVE", now) < 0) {
        kn_api_reply_error(a->req, 500, "cannot record the decision in the state store");
        goto out;
    }
    snprintf(msg, sizeof(msg), "%s stage %d %s from %s%s%s", verb, a->stage.index, a->stage.name,
             a->peer, a->reason[0] ? ": " : "", a->reason);
    kn_store_event_add(api->deps.store, a->reject ? "REJECTED" : "APPROVED", a->d.repo, a->d.app,
                       a->d.id, a->caller.name, msg, now);
    kn_log_info(WHO, "app=%s deployment=%lld user=%s %s", a->d.app, a->d.id, a->caller.name, msg);
    if (api->deps.kick) {
        api->deps.kick(api->deps.data);
    }
    body =
        json_pack("{s:I, s:s, s:s, s:i, s:s, s:s, s:s}", "deployment", (json_int_t)a->d.id, "repo",
                  a->d.repo, "app", a->d.app, "stage", a->stage.index, "stage_name", a->stage.name,
                  "decision", a->reject ? "REJECT" : "APPROVE", "by", a->caller.name);
    kn_api_reply(a->req, 200, body);
    json_decref(body);
out:
    if (a->ref) {
        /* the request's pool outlives this answer: its dispose must not reach `a` */
        a->ref->a = NULL;
    }
    kn_api_approval_free(a);
}

static void kn_api_decide(struct kn_api *api, h2o_req_t *req, const struct kn_api_route *r,
                          int reject)
{
    const char *action = reject ? "reject" : "approve";
    struct kn_api_approval *a = NULL;
    struct kn_api_caller caller;
    struct kn_app_state app;
    struct kn_stage_state running;
    json_t *body = NULL;
    json_t *reason;

    if (kn_api_authorize(api, req, KN_ROLE_APPROVER, action, &caller) < 0 ||
        !(body = kn_api_body_json(req)) || kn_api_find_app(api, req, r, &app) < 0) {
        goto out;
    }
    reason = json_object_get(body, "reason");
    if (reason && !json_is_string(reason) && !json_is_null(reason)) {
        kn_api_reply_error(req, 400, "'reason' must be a string");
        goto out;
    }
    memset(&running, 0, sizeof(running));
    running.index = -1;
    if (app.current_deployment) {
        kn_store_stages(api->deps.store, app.current_deployment, kn_api_find_running, &running);
    }
    if (running.index < 0 || strcmp(running.name, "WAIT_APPROVAL") != 0) {
        kn_api_reply_error(req, 409, "no deployment of '%s' is waiting for approval", app.name);
        goto out;
    }
    a = kn_calloc(1, sizeof(*a));
    if (kn_store_deployment_get(api->deps.store, app.current_deployment, &a->d) < 0) {
        kn_api_reply_error(req, 409, "no deployment of '%s' is waiting for approval", app.name);
        goto out;
    }
    a->api = api;
    a->req = req;
    a->reject = reject;
    a->caller = caller;
    a->stage = running;
    kn_api_peer(req, a->peer, sizeof(a->peer));
    snprintf(a->reason, sizeof(a->reason), "%s",
             json_is_string(reason) ? json_string_value(reason) : "");
    snprintf(a->app_path, sizeof(a->app_path), "%s", app.path);
    snprintf(a->mirror, sizeof(a->mirror), "%s/repos/%s.git", api->data_dir, app.repo);
    a->ref = h2o_mem_alloc_shared(&req->pool, sizeof(*a->ref), kn_api_approval_req_gone);
    a->ref->a = a;
    a->work.data = a;
    if (uv_queue_work(api->deps.loop, &a->work, kn_api_approval_load, kn_api_approval_done) != 0) {
        a->ref->a = NULL;
        kn_api_reply_error(req, 503, "cannot check the approval now");
        goto out;
    }
    api->pending++;
    a = NULL; /* answered in kn_api_approval_done */
out:
    if (a) {
        kn_api_approval_free(a);
    }
    json_decref(body);
}

/* ---- operator actions: cancel, rollback, sync, skip ------------------------------------------ */

/* Record an operator's action in the audit log, with the caller's name and address. */
static void kn_api_audit(struct kn_api *api, h2o_req_t *req, const char *type,
                         const struct kn_app_state *app, long long deployment,
                         const struct kn_api_caller *c, const char *what)
{
    char peer[96], msg[1024];

    snprintf(msg, sizeof(msg), "%s from %s", what, kn_api_peer(req, peer, sizeof(peer)));
    kn_store_event_add(api->deps.store, type, app->repo, app->name, deployment, c->name, msg,
                       kn_api_now_ms());
    kn_log_info(WHO, "app=%s deployment=%lld user=%s %s", app->name, deployment, c->name, msg);
}

/* The app's deployment in progress (RUNNING or ROLLING_BACK) into *d: 1, or 0 when none. */
static int kn_api_in_progress(struct kn_api *api, const struct kn_app_state *app,
                              struct kn_deployment *d)
{
    return app->current_deployment &&
           kn_store_deployment_get(api->deps.store, app->current_deployment, d) == 0 &&
           (d->status == KN_DEPLOY_RUNNING || d->status == KN_DEPLOY_ROLLING_BACK);
}

/* Answer 409 naming the deployment in progress, if there is one. */
static int kn_api_refuse_busy(struct kn_api *api, h2o_req_t *req, const struct kn_app_state *app)
{
    struct kn_deployment d;

    if (!kn_api_in_progress(api, app, &d)) {
        return 0;
    }
    kn_api_reply_error(req, 409,
                       "deployment %lld of '%s' (%.7s) is %s: wait for it or cancel it first", d.id,
                       app->name, d.commit, kn_deploy_status_name(d.status));
    return KN_EEXISTS;
}

static void kn_api_cancel(struct kn_api *api, h2o_req_t *req, const struct kn_api_route *r)
{
    struct kn_api_caller caller;
    struct kn_app_state app;
    struct kn_deployment d;
    json_t *body = NULL, *reply = NULL, *rb, *reason;
    const char *why;
    char what[768];
    int rollback, rc;

    if (kn_api_authorize(api, req, KN_ROLE_OPERATOR, "cancel", &caller) < 0 ||
        !(body = kn_api_body_json(req)) || kn_api_find_app(api, req, r, &app) < 0) {
        goto out;
    }
    rb = json_object_get(body, "rollback");
    reason = json_object_get(body, "reason");
    if (rb && !json_is_boolean(rb)) {
        kn_api_reply_error(req, 400, "'rollback' must be true or false");
        goto out;
    }
    if (reason && !json_is_string(reason) && !json_is_null(reason)) {
        kn_api_reply_error(req, 400, "'reason' must be a string");
        goto out;
    }
    rollback = rb ? json_is_true(rb) : 1;
    why = json_is_string(reason) ? json_string_value(reason) : "";
    if (!api->deps.cancel) {
        kn_api_reply_error(req, 503, "cancelling is not available");
        goto out;
    }
    if (!app.current_deployment ||
        kn_store_deployment_get(api->deps.store, app.current_deployment, &d) < 0 ||
        kn_deploy_status_is_final(d.status)) {
        kn_api_reply_error(req, 409, "no deployment of '%s' is in progress", app.name);
        goto out;
    }
    if (rollback && d.status == KN_DEPLOY_ROLLING_BACK) {
        kn_api_reply_error(req, 409,
                           "deployment %lld of '%s' is rolling back already (\"rollback\": false "
                           "stops the rollback)",
                           d.id, app.name);
        goto out;
    }
    snprintf(what, sizeof(what), "cancel deployment %lld (%.7s) %s the rollback%s%.500s", d.id,
             d.commit, rollback ? "with" : "without", *why ? ": " : "", why);
    kn_api_audit(api, req, "CANCEL_REQUESTED", &app, d.id, &caller, what);
    if ((rc = api->deps.cancel(api->deps.data, d.id, rollback, caller.name, why)) < 0) {
        kn_api_reply_error(req, 409, "deployment %lld of '%s' cannot be cancelled: %s", d.id,
                           app.name, kn_strerror(rc));
        goto out;
    }
    kn_store_deployment_get(api->deps.store, d.id, &d);
    reply = json_pack("{s:I, s:s, s:s, s:b, s:s, s:s}", "deployment", (json_int_t)d.id, "repo",
                      d.repo, "app", d.app, "rollback", rollback, "status",
                      kn_deploy_status_name(d.status), "by", caller.name);
    kn_api_reply(req, 200, reply);
out:
    json_decref(reply);
    json_decref(body);
}

struct kn_api_good {
    const char *prefix; /* lower-case hex */
    struct kn_deployment found;
    int count; /* distinct commits that match */
};

/* Successful deployments whose commit starts with the prefix, newest first. */
static int kn_api_match_good(const struct kn_deployment *d, void *data)
{
    struct kn_api_good *g = data;

    if (d->status != KN_DEPLOY_SUCCESS || strncmp(d->commit, g->prefix, strlen(g->prefix)) != 0) {
        return 0;
    }
    if (g->count == 0 || strcmp(g->found.commit, d->commit) != 0) {
        if (g->count++ == 0) {
            g->found = *d;
        }
    }
    return 0;
}

/* The commit a rollback goes to: `to` (a prefix of 7 to 40 hex digits of a commit this app was
 * deployed at successfully), or the app's last good one. Otherwise answered 400 or 409. */
static int kn_api_rollback_target(struct kn_api *api, h2o_req_t *req,
                                  const struct kn_app_state *app, const char *to,
                                  struct kn_deployment *out)
{
    struct kn_api_good g;
    char prefix[41];
    size_t n = to ? strlen(to) : 0;

    memset(&g, 0, sizeof(g));
    if (!to) {
        if (!app->last_good[0]) {
            kn_api_reply_error(req, 409, "'%s' has no successful deployment to roll back to",
                               app->name);
            return KN_ENOTFOUND;
        }
        snprintf(prefix, sizeof(prefix), "%s", app->last_good);
    } else {
        if (n < 7 || n > 40 || strspn(to, "0123456789abcdefABCDEF") != n) {
            kn_api_reply_error(req, 400, "'to' must be a commit: 7 to 40 hex digits, got '%.64s'",
                               to);
            return KN_EINVAL;
        }
        for (size_t i = 0; i <= n; i++) {
            prefix[i] = (char)(to[i] >= 'A' && to[i] <= 'F' ? to[i] - 'A' + 'a' : to[i]);
        }
    }
    g.prefix = prefix;
    kn_store_deployments(api->deps.store, app->repo, app->name, 0, kn_api_match_good, &g);
    if (g.count == 0) {
        kn_api_reply_error(req, 400,
                           "'%s' was never deployed successfully at %.40s: a rollback goes to a "
                           "commit the app ran before (see kanaria history %s)",
                           app->name, prefix, app->name);
        return KN_ENOTFOUND;
    }
    if (g.count > 1) {
        kn_api_reply_error(req, 400, "'%s' matches several commits of '%s': give more digits",
                           prefix, app->name);
        return KN_EINVAL;
    }
    *out = g.found;
    return 0;
}

/* Record a QUICK_SYNC deployment of `commit` asked by an operator, and wake the engine. */
static int kn_api_deploy_again(struct kn_api *api, const struct kn_app_state *app,
                               const struct kn_deployment *src, const char *commit,
                               const char *verb, const struct kn_api_caller *c, long long *id)
{
    char trigger[64], summary[512];
    struct kn_deployment_new nd = {
        .repo = app->repo,
        .app = app->name,
        .commit = commit,
        .author = src ? src->author : "",
        .message = src ? src->message : "",
        .strategy = "QUICK_SYNC",
        .summary = summary,
        .trigger = trigger,
    };
    int rc;

    snprintf(trigger, sizeof(trigger), "%s by %.48s", verb, c->name);
    snprintf(summary, sizeof(summary), "quick sync: %s to %.7s by %s", verb, commit, c->name);
    if ((rc = kn_store_deployment_add(api->deps.store, &nd, kn_api_now_ms(), id)) == 0 &&
        api->deps.kick) {
        api->deps.kick(api->deps.data);
    }
    return rc;
}

static void kn_api_rollback(struct kn_api *api, h2o_req_t *req, const struct kn_api_route *r)
{
    struct kn_api_caller caller;
    struct kn_app_state app;
    struct kn_deployment target;
    json_t *body = NULL, *reply = NULL, *to;
    char what[256];
    long long id = 0;
    int rc;

    if (kn_api_authorize(api, req, KN_ROLE_OPERATOR, "roll back", &caller) < 0 ||
        !(body = kn_api_body_json(req)) || kn_api_find_app(api, req, r, &app) < 0) {
        goto out;
    }
    to = json_object_get(body, "to");
    if (to && !json_is_string(to) && !json_is_null(to)) {
        kn_api_reply_error(req, 400, "'to' must be a commit (a string)");
        goto out;
    }
    if (kn_api_refuse_busy(api, req, &app) < 0 ||
        kn_api_rollback_target(api, req, &app, json_is_string(to) ? json_string_value(to) : NULL,
                               &target) < 0) {
        goto out;
    }
    if ((rc = kn_api_deploy_again(api, &app, &target, target.commit, "rollback", &caller, &id)) <
        0) {
        kn_api_reply_error(req, 500, "cannot record the rollback: %s", kn_strerror(rc));
        goto out;
    }
    snprintf(what, sizeof(what), "roll back to %.7s (deployment %lld)", target.commit, id);
    kn_api_audit(api, req, "ROLLBACK_REQUESTED", &app, id, &caller, what);
    reply = json_pack("{s:I, s:s, s:s, s:s, s:s, s:s}", "deployment", (json_int_t)id, "repo",
                      app.repo, "app", app.name, "commit", target.commit, "strategy", "QUICK_SYNC",
                      "by", caller.name);
    kn_api_reply(req, 202, reply);
out:
    json_decref(reply);
    json_decref(body);
}

/* The newest deployment of the app at `commit`, for its author and message. */
static int kn_api_find_commit(const struct kn_deployment *d, void *data)
{
    struct kn_deployment *out = data;

    if (strcmp(d->commit, out->commit) != 0) {
        return 0;
    }
    *out = *d;
    return 1;
}

static void kn_api_sync(struct kn_api *api, h2o_req_t *req, const struct kn_api_route *r)
{
    struct kn_api_caller caller;
    struct kn_app_state app;
    struct kn_repo_state repo;
    struct kn_deployment known;
    json_t *reply = NULL;
    char what[256];
    long long id = 0;
    int rc;

    if (kn_api_authorize(api, req, KN_ROLE_OPERATOR, "sync", &caller) < 0 ||
        kn_api_find_app(api, req, r, &app) < 0 || kn_api_refuse_busy(api, req, &app) < 0) {
        goto out;
    }
    if (kn_store_repo_get(api->deps.store, app.repo, &repo) < 0 || !repo.head[0]) {
        kn_api_reply_error(req, 409, "repository '%s' has not been fetched yet", app.repo);
        goto out;
    }
    if (strcmp(app.last_seen, repo.head) != 0) {
        kn_api_reply_error(req, 409, "'%s' is not in the head %.7s of repository '%s'", app.name,
                           repo.head, app.repo);
        goto out;
    }
    if (app.error[0]) {
        kn_api_reply_error(req, 409, "'%s' is invalid at %.7s: %.*s", app.name, repo.head,
                           (int)strcspn(app.error, "\n"), app.error);
        goto out;
    }
    memset(&known, 0, sizeof(known));
    snprintf(known.commit, sizeof(known.commit), "%s", repo.head);
    kn_store_deployments(api->deps.store, app.repo, app.name, 0, kn_api_find_commit, &known);
    if ((rc = kn_api_deploy_again(api, &app, known.id ? &known : NULL, repo.head, "sync", &caller,
                                  &id)) < 0) {
        kn_api_reply_error(req, 500, "cannot record the sync: %s", kn_strerror(rc));
        goto out;
    }
    snprintf(what, sizeof(what), "sync to the head %.7s (deployment %lld)", repo.head, id);
    kn_api_audit(api, req, "SYNC_REQUESTED", &app, id, &caller, what);
    reply = json_pack("{s:I, s:s, s:s, s:s, s:s, s:s}", "deployment", (json_int_t)id, "repo",
                      app.repo, "app", app.name, "commit", repo.head, "strategy", "QUICK_SYNC",
                      "by", caller.name);
    kn_api_reply(req, 202, reply);
out:
    json_decref(reply);
}

struct kn_api_stage_find {
    int index;
    struct kn_stage_state found;
    int ok;
};

static int kn_api_stage_at(const struct kn_stage_state *s, void *data)
{
    struct kn_api_stage_find *f = data;

    if (s->index != f->index) {
        return 0;
    }
    f->found = *s;
    f->ok = 1;
    return 1;
}

/* The skip's options: `breakGlass` (a boolean) and its `reason`; otherwise answered 400 or 403. */
static int kn_api_skip_break_glass(struct kn_api *api, h2o_req_t *req, json_t *body,
                                   const struct kn_api_caller *c, const char **reason)
{
    json_t *bg = json_object_get(body, "breakGlass");
    json_t *why = json_object_get(body, "reason");

    *reason = NULL;
    if (bg && !json_is_boolean(bg)) {
        kn_api_reply_error(req, 400, "'breakGlass' must be true or false");
        return KN_EINVAL;
    }
    if (why && !json_is_string(why) && !json_is_null(why)) {
        kn_api_reply_error(req, 400, "'reason' must be a string");
        return KN_EINVAL;
    }
    if (!json_is_true(bg)) {
        return 0;
    }
    if (c->role < KN_ROLE_ADMIN) {
        kn_api_refuse(api, req, 403, c->name,
                      "user '%s' (%s) may not break glass: a break-glass skip needs the admin role",
                      c->name, kn_auth_role_name(c->role));
        return KN_EINVAL;
    }
    if (!json_is_string(why) || strspn(json_string_value(why), " \t\r\n") ==
                                     strlen(json_string_value(why))) {
        kn_api_reply_error(req, 400, "a break-glass skip needs a 'reason' saying why");
        return KN_EINVAL;
    }
    if (strlen(json_string_value(why)) > KN_API_REASON_MAX) {
        kn_api_reply_error(req, 400, "'reason' is longer than %d bytes", KN_API_REASON_MAX);
        return KN_EINVAL;
    }
    *reason = json_string_value(why);
    return 0;
}

static void kn_api_skip(struct kn_api *api, h2o_req_t *req, const struct kn_api_route *r)
{
    struct kn_api_caller caller;
    struct kn_app_state app;
    struct kn_deployment d;
    struct kn_api_stage_find f;
    json_t *body = NULL, *reply = NULL, *stage;
    const char *glass = NULL;
    char what[1024];
    int rc;

    if (kn_api_authorize(api, req, KN_ROLE_OPERATOR, "skip a stage", &caller) < 0 ||
        !(body = kn_api_body_json(req)) || kn_api_find_app(api, req, r, &app) < 0) {
        goto out;
    }
    stage = json_object_get(body, "stage");
    if (!json_is_integer(stage) || json_integer_value(stage) < 0 ||
        json_integer_value(stage) > 1000) {
        kn_api_reply_error(req, 400,
                           "'stage' must be the index of a stage of the pipeline (0, "
                           "1, ...)");
        goto out;
    }
    if (kn_api_skip_break_glass(api, req, body, &caller, &glass) < 0) {
        goto out;
    }
    if (!api->deps.skip) {
        kn_api_reply_error(req, 503, "skipping is not available");
        goto out;
    }
    if (!kn_api_in_progress(api, &app, &d) || d.status != KN_DEPLOY_RUNNING) {
        kn_api_reply_error(req, 409, "no deployment of '%s' is running its pipeline", app.name);
        goto out;
    }
    memset(&f, 0, sizeof(f));
    f.index = (int)json_integer_value(stage);
    kn_store_stages(api->deps.store, d.id, kn_api_stage_at, &f);
    if (f.ok && strcmp(f.found.status, "RUNNING") != 0 &&
        strcmp(f.found.status, "NOT_STARTED") != 0) {
        kn_api_reply_error(req, 409, "stage %d %s of deployment %lld has finished (%s)", f.index,
                           f.found.name, d.id, f.found.status);
        goto out;
    }
    rc = api->deps.skip(api->deps.data, d.id, f.index, caller.name, glass);
    if (rc == KN_EINVAL) {
        kn_api_reply_error(req, 400, "deployment %lld of '%s' has no stage %d", d.id, app.name,
                           f.index);
        goto out;
    }
    if (rc == KN_EUNSUPPORTED) {
        kn_api_refuse(api, req, 403, caller.name,
                      "stage %d of deployment %lld is a WAIT_APPROVAL: a WAIT_APPROVAL stage "
                      "passes only with its approvals; an admin may skip it with "
                      "{\"breakGlass\": true, \"reason\": \"...\"}",
                      f.index, d.id);
        goto out;
    }
    if (rc < 0) {
        kn_api_reply_error(
            req, 409, "stage %d of deployment %lld cannot be skipped: %s", f.index, d.id,
            rc == KN_EEXISTS ? "it has finished" : "the deployment is not running its pipeline");
        goto out;
    }
    /* recorded once done, so that the audit log names the stage even one not started yet */
    kn_store_stages(api->deps.store, d.id, kn_api_stage_at, &f);
    snprintf(what, sizeof(what), "%sskip stage %d %s of deployment %lld%s%.700s%s",
             glass ? "break-glass " : "", f.index, f.found.name, d.id, glass ? ", reason \"" : "",
             glass ? glass : "", glass ? "\"" : "");
    kn_api_audit(api, req, glass ? "BREAK_GLASS" : "SKIP_REQUESTED", &app, d.id, &caller, what);
    reply = json_pack("{s:I, s:s, s:s, s:i, s:s, s:s, s:b}", "deployment", (json_int_t)d.id,
                      "repo", d.repo, "app", d.app, "stage", f.index, "stage_name", f.found.name,
                      "by", caller.name, "break_glass", glass != NULL);
    if (glass) {
        json_object_set_new(reply, "reason", json_string(glass));
    }
    kn_api_reply(req, 200, reply);
out:
    json_decref(reply);
    json_decref(body);
}

/* Remove an app whose folder left the repository from its platforms; the outcome is an event
 * (APP_PRUNED or PRUNE_FAILED) and shows in the app's status. */
static void kn_api_prune(struct kn_api *api, h2o_req_t *req, const struct kn_api_route *r)
{
    struct kn_api_caller caller;
    struct kn_app_state app;
    json_t *reply = NULL;
    int rc;

    if (kn_api_authorize(api, req, KN_ROLE_OPERATOR, "prune", &caller) < 0 ||
        kn_api_find_app(api, req, r, &app) < 0) {
        goto out;
    }
    if (!app.orphaned_at) {
        kn_api_reply_error(req, 409,
                           "'%s' is not orphaned: a folder of repository '%s' declares it (prune "
                           "removes only an app whose folder was deleted)",
                           app.name, app.repo);
        goto out;
    }
    if (app.pruned_at) {
        kn_api_reply_error(req, 409, "'%s' was pruned already", app.name);
        goto out;
    }
    if (kn_api_refuse_busy(api, req, &app) < 0) {
        goto out;
    }
    if (!api->deps.prune) {
        kn_api_reply_error(req, 503, "pruning is not available");
        goto out;
    }
    kn_api_audit(api, req, "PRUNE_REQUESTED", &app, 0, &caller,
                 "prune the orphaned app (instances, frontend and backend)");
    if ((rc = api->deps.prune(api->deps.data, app.repo, app.name, caller.name)) < 0) {
        kn_api_reply_error(req, 500, "cannot prune '%s': %s", app.name, kn_strerror(rc));
        goto out;
    }
    reply = json_pack("{s:s, s:s, s:s, s:s}", "repo", app.repo, "app", app.name, "status",
                      "PRUNING", "by", caller.name);
    kn_api_reply(req, 202, reply);
out:
    json_decref(reply);
}

/* ---- routing --------------------------------------------------------------------------------- */

/* Answer 405 unless the method is `want`. */
static int kn_api_want_method(h2o_req_t *req, const char *want)
{
    if (kn_api_method_is(req, want)) {
        return 0;
    }
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, want, strlen(want));
    kn_api_reply_error(req, 405, "%.*s is not allowed here, only %s", (int)req->method.len,
                       req->method.base, want);
    return KN_EINVAL;
}

static void kn_api_route_v1(struct kn_api *api, h2o_req_t *req, const struct kn_api_route *r)
{
    struct kn_api_caller caller;
    const char *const *seg = (const char *const *)r->seg;
    int n = r->nseg;

    if (n == 2 && strcmp(seg[0], "webhooks") == 0 && strcmp(seg[1], "git") == 0) {
        if (kn_api_want_method(req, "POST") == 0) {
            kn_api_webhook(api, req);
        }
        return;
    }
    if (n == 3 && strcmp(seg[0], "apps") == 0 &&
        (strcmp(seg[2], "approve") == 0 || strcmp(seg[2], "reject") == 0)) {
        if (kn_api_want_method(req, "POST") == 0) {
            kn_api_decide(api, req, r, strcmp(seg[2], "reject") == 0);
        }
        return;
    }
    if (n == 3 && strcmp(seg[0], "apps") == 0 && strcmp(seg[2], "prune") == 0) {
        if (kn_api_want_method(req, "POST") == 0) {
            kn_api_prune(api, req, r);
        }
        return;
    }
    if (n == 3 && strcmp(seg[0], "apps") == 0 &&
        (strcmp(seg[2], "cancel") == 0 || strcmp(seg[2], "rollback") == 0 ||
         strcmp(seg[2], "sync") == 0 || strcmp(seg[2], "skip") == 0)) {
        if (kn_api_want_method(req, "POST") < 0) {
            return;
        }
        if (strcmp(seg[2], "cancel") == 0) {
            kn_api_cancel(api, req, r);
        } else if (strcmp(seg[2], "rollback") == 0) {
            kn_api_rollback(api, req, r);
        } else if (strcmp(seg[2], "sync") == 0) {
            kn_api_sync(api, req, r);
        } else {
            kn_api_skip(api, req, r);
        }
        return;
    }
    if (!((n == 1 && strcmp(seg[0], "apps") == 0) || (n == 2 && strcmp(seg[0], "apps") == 0) ||
          (n == 3 && strcmp(seg[0], "apps") == 0 && strcmp(seg[2], "history") == 0) ||
          (n == 2 && strcmp(seg[0], "deployments") == 0) ||
          (n == 1 && strcmp(seg[0], "events") == 0))) {
        kn_api_reply_error(req, 404, "no such route: %.*s", (int)req->path_normalized.len,
                           req->path_normalized.base);
        return;
    }
    if (kn_api_want_method(req, "GET") < 0 ||
        kn_api_authorize(api, req, KN_ROLE_VIEWER, "read", &caller) < 0) {
        return;
    }
    if (strcmp(seg[0], "deployments") == 0) {
        kn_api_get_deployment(api, req, seg[1]);
    } else if (strcmp(seg[0], "events") == 0) {
        kn_api_events_open(api, req);
    } else if (n == 1) {
        kn_api_get_apps(api, req, r);
    } else {
        kn_api_get_app(api, req, r, n == 3);
    }
}

void kn_api_handle(struct kn_api *api, h2o_req_t *req)
{
    static const char prefix[] = "/api/v1/";
    const h2o_iovec_t path = req->path_normalized;
    struct kn_api_route r;
    int rc = 0;

    if (h2o_memis(path.base, path.len, H2O_STRLIT("/healthz"))) {
        if (kn_api_want_method(req, "GET") == 0) {
            json_t *body = json_pack("{s:s, s:s}", "status", "ok", "version", KANARIA_VERSION);
            kn_api_reply(req, 200, body);
            json_decref(body);
        }
        return;
    }
    if (h2o_memis(path.base, path.len, H2O_STRLIT("/metrics"))) {
        struct kn_api_caller caller;
        /* app names and deployment outcomes: readable by viewers, like the rest of the API */
        if (kn_api_want_method(req, "GET") == 0 &&
            kn_api_authorize(api, req, KN_ROLE_VIEWER, "read metrics", &caller) == 0) {
            kn_api_metrics(api, req);
        }
        return;
    }
    /* h2o has read the body whole: up to KN_WEBHOOK_BODY_MAX, the largest of any route */
    if (req->entity.base && req->entity.len > kn_api_body_max(path.base, path.len)) {
        if (kn_api_body_max(path.base, path.len) == KN_WEBHOOK_BODY_MAX) {
            kn_api_reply_error(req, 413, "a webhook body is at most %d MiB",
                               KN_WEBHOOK_BODY_MAX / (1024 * 1024));
        } else {
            kn_api_reply_error(req, 413, "the body is larger than %d KiB", KN_API_BODY_MAX / 1024);
        }
        return;
    }
    if (path.len < sizeof(prefix) - 1 || memcmp(path.base, prefix, sizeof(prefix) - 1) != 0 ||
        (rc = kn_api_parse_route(req, sizeof(prefix) - 1, &r)) == KN_EINVAL) {
        kn_api_reply_error(req, 404, "no such route: %.*s", (int)path.len, path.base);
        return;
    }
    if (rc < 0) {
        kn_api_reply_error(req, 400, "malformed query: %.*s", (int)(req->path.len - req->query_at),
                           req->path.base + req->query_at);
        return;
    }
    kn_api_route_v1(api, req, &r);
}
