/*
 * The platform front end (include/kanaria/platform.h): the one place between the callers (the
 * stages, prune, drift) and a provider (include/kanaria/plugin/platform.h).
 *
 * Each operation is a call. The calls of one app (repository, app) wait in that app's queue and
 * reach the provider one at a time, in the order asked; the queues of different apps are
 * independent, so one app's long health wait never delays another's rollback. observe is not
 * queued. Every call has a deadline (a uv timer): past it the provider's cancel is called and the
 * caller is told KN_ETIMEDOUT at once; the app's next call still waits for the provider to end
 * the old one, so two calls of an app never overlap in the provider.
 *
 * The caller's callback runs exactly once, always from the loop (a zero timer), never from inside
 * the call that asked nor from inside a provider's kn_platform_call_done.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kanaria/alloc.h"
#include "kanaria/config.h"
#include "kanaria/log.h"
#include "kanaria/platform.h"
#include "kanaria/plugin/platform.h"
#include "kanaria/store.h"

#define DEFAULT_TIMEOUT_MS (10LL * 60 * 1000)
#define MEMO_MAX (64 * 1024)
#define LINE_MAX_LEN 1024

enum call_kind {
    CALL_APPLY,
    CALL_REMOVE,
    CALL_WEIGHTS,
    CALL_REMOVE_APP,
    CALL_OBSERVE,
    CALL_ROUTES,
};

static const char *const call_kind_names[] = {
    [CALL_APPLY] = "apply",
    [CALL_REMOVE] = "remove",
    [CALL_WEIGHTS] = "weights",
    [CALL_REMOVE_APP] = "remove-app",
    [CALL_OBSERVE] = "observe",
    [CALL_ROUTES] = "routes",
};

struct memo {
    struct memo *next;
    char *repository;
    char *app;
    char *key;
    char *value;
};

struct appq {
    struct appq *next;
    char *repository;
    char *app;
    struct kn_platform_call *head; /* the call the provider has (or the next to start) */
    struct kn_platform_call *tail;
};

struct kn_platform {
    const struct kn_platform_type *type;
    void *self;                 /* the provider's instance */
    char *name;
    uv_loop_t *loop;
    struct kn_store *store;
    struct memo *memos;         /* without a store */
    struct appq *queues;
    struct kn_platform_call *observing; /* observe calls in flight (not queued) */
    struct kn_platform_call *all; /* every call not yet freed */
    uv_timer_t *kick;           /* hands the heads of the queues to the provider, from the loop */
    size_t ncalls;              /* calls not yet freed: the platform is freed after the last */
    int asking;                 /* inside a caller's kn_platform_* call: progress is held */
    int closing;
    char who[160];
};

struct kn_platform_call {
    struct kn_platform *p;
    struct appq *q;             /* NULL: an observe */
    struct kn_platform_call *next;
    struct kn_platform_call *all_next;
    struct kn_platform_call *all_prev;
    enum call_kind kind;
    struct kn_app_id id;        /* strings owned */
    long long deployment;
    int stage;
    char *stage_name;
    char token[72];
    long long deadline;         /* uv_now() */
    enum kn_variant variant;
    struct kn_variant_spec spec; /* apply: commit owned, manifests referenced */
    struct kn_desired desired;   /* observe: commit owned, manifests referenced */
    double percent[KN_VARIANT_COUNT];
    struct kn_routes routes;    /* routes: matches and their strings owned */
    kn_platform_cb done;
    kn_platform_progress_cb progress;
    kn_platform_observe_cb observed;
    void *data;
    struct kn_live_state live;
    uv_timer_t timer;           /* the deadline, then the delivery of the outcome */
    int started;                /* the provider has it */
    int provider_done;          /* the provider ended it (or never had it) */
    int told;                   /* the caller's callback ran, or is scheduled */
    int delivering;             /* the timer delivers the outcome */
    int cancelled;
    int closing_timer;
    int status;
    char *message;
    char *last_line;            /* the last progress line, to fold repeats */
    char *skip_line;            /* a skip's progress line, handed over with the outcome */
    char **held;                /* progress lines said while the caller's call was under way */
    size_t nheld;
    unsigned repeats;
};

/* The handle a caller cancels with is the call itself. */
struct kn_platform_op {
    struct kn_platform_call call;
};

static void queue_run(struct appq *q);
static void call_release(struct kn_platform_call *c);
static void call_start(struct kn_platform_call *c);
static void deliver_now(struct kn_platform_call *c);
static void call_unqueue(struct kn_platform_call *c);

/* ---- live state ----------------------------------------------------------------------------- */

void kn_live_state_add(struct kn_live_state *s, const char *kind, const char *name,
                       const char *status, const char *drift)
{
    struct kn_live_resource *r;

    s->resources = kn_reallocarray(s->resources, s->nresources + 1, sizeof(*s->resources));
    r = &s->resources[s->nresources++];
    r->kind = kn_strdup(kind ? kind : "");
    r->name = kn_strdup(name ? name : "");
    r->status = kn_strdup(status ? status : "");
    r->drift = drift ? kn_strdup(drift) : NULL;
}

void kn_live_state_release(struct kn_live_state *s)
{
    if (!s) {
        return;
    }
    for (size_t i = 0; i < s->nresources; i++) {
        free(s->resources[i].kind);
        free(s->resources[i].name);
        free(s->resources[i].status);
        free(s->resources[i].drift);
    }
    free(s->resources);
    free(s->error);
    memset(s, 0, sizeof(*s));
}

void kn_live_state_copy(struct kn_live_state *dst, const struct kn_live_state *src)
{
    memset(dst, 0, sizeof(*dst));
    memcpy(dst->variant, src->variant, sizeof(dst->variant));
    dst->error = src->error ? kn_strdup(src->error) : NULL;
    for (size_t i = 0; i < src->nresources; i++) {
        const struct kn_live_resource *r = &src->resources[i];
        kn_live_state_add(dst, r->kind, r->name, r->status, r->drift);
    }
}

void kn_platform_vars_set(struct kn_strmap *m, const char *name, const char *value)
{
    for (size_t i = 0; i < m->count; i++) {
        if (strcmp(m->keys[i], name) == 0) {
            free(m->values[i]);
            m->values[i] = kn_strdup(value);
            return;
        }
    }
    m->keys = kn_reallocarray(m->keys, m->count + 1, sizeof(*m->keys));
    m->values = kn_reallocarray(m->values, m->count + 1, sizeof(*m->values));
    m->keys[m->count] = kn_strdup(name);
    m->values[m->count++] = kn_strdup(value);
}

void kn_platform_vars_release(struct kn_strmap *m)
{
    for (size_t i = 0; m && i < m->count; i++) {
        free(m->keys[i]);
        free(m->values[i]);
    }
    if (m) {
        free(m->keys);
        free(m->values);
        memset(m, 0, sizeof(*m));
    }
}

/* ---- instances ------------------------------------------------------------------------------ */

static void platform_release(struct kn_platform *p);

static void kick_closed(uv_handle_t *h)
{
    struct kn_platform *p = h->data;

    free(h);
    if (--p->ncalls == 0) {
        platform_release(p);
    }
}

/* Start the first call of each queue that the provider does not have yet. A start that is
 * refused ends its call and may start the next of that queue: look again from the top. */
/* Hand the progress lines held during a caller's call over, now that it has returned. */
static void held_flush(struct kn_platform_call *c)
{
    for (size_t i = 0; i < c->nheld; i++) {
        if (c->progress && !c->told) {
            c->progress(c->held[i], c->data);
        }
        free(c->held[i]);
    }
    free(c->held);
    c->held = NULL;
    c->nheld = 0;
}

static void kick_fired(uv_timer_t *t)
{
    struct kn_platform *p = t->data;
    int again = 1;

    for (struct kn_platform_call *c = p->all; c; c = c->all_next) {
        held_flush(c);
    }
    while (again && !p->closing) {
        again = 0;
        for (struct appq *q = p->queues; q; q = q->next) {
            if (q->head && !q->head->started) {
                call_start(q->head);
                again = 1;
                break;
            }
        }
    }
}

int kn_platform_new(struct kn_platform **out, const struct kn_platform_deps *deps,
                    const struct kn_platform_config *cfg, struct kn_error *err)
{
    struct kn_platform *p = NULL;
    const struct kn_platform_type *type = cfg ? cfg->ptype : NULL;
    int rc = 0;

    *out = NULL;
    if (!deps || !deps->loop || !cfg || !cfg->name) {
        rc = kn_error_set(err, KN_EINVAL, NULL, "a platform needs a loop and a named entry");
        goto out;
    }
    if (!type || !type->create || !type->ops) {
        rc = kn_error_set(err, KN_EUNSUPPORTED, NULL,
                          "platform '%s': no platform type of that name is built into kanaria",
                          cfg->name);
        goto out;
    }
    p = kn_calloc(1, sizeof(*p));
    p->type = type;
    p->name = kn_strdup(cfg->name);
    p->loop = deps->loop;
    p->store = deps->store;
    snprintf(p->who, sizeof(p->who), "platform=%s", cfg->name);
    p->kick = kn_calloc(1, sizeof(*p->kick));
    uv_timer_init(p->loop, p->kick);
    p->kick->data = p;
    p->ncalls = 1; /* the kick timer, until its close */
    {
        struct kn_platform_env env = {
            .loop = deps->loop,
            .name = cfg->name,
            .data_dir = deps->data_dir,
            .http = deps->http,
        };
        /* the entry's keys beside name and type, parsed by the type's config_schema */
        if ((rc = type->create(&p->self, &env, cfg->options, err)) < 0) {
            goto out;
        }
    }
    *out = p;
    p = NULL;
out:
    if (p) {
        p->closing = 1;
        uv_close((uv_handle_t *)p->kick, kick_closed);
    }
    return rc;
}

static void platform_release(struct kn_platform *p)
{
    while (p->memos) {
        struct memo *m = p->memos;
        p->memos = m->next;
        free(m->repository);
        free(m->app);
        free(m->key);
        free(m->value);
        free(m);
    }
    free(p->name);
    free(p);
}

void kn_platform_free(struct kn_platform *p)
{
    struct kn_platform_call *c, *next;

    if (!p || p->closing) {
        return;
    }
    p->closing = 1;
    p->ncalls++; /* held while the calls are ended below */
    /* every caller learns the end now: calls that wait, calls the provider has, outcomes not
     * yet handed over */
    for (c = p->all; c; c = c->all_next) {
        if (!c->told) {
            c->told = 1;
            c->status = KN_ECANCELLED;
            free(c->message);
            c->message = kn_strdup("kanaria is stopping");
            c->delivering = 1;
        }
        if (c->delivering) {
            uv_timer_stop(&c->timer);
            deliver_now(c);
        }
    }
    /* calls that wait never reach the provider */
    for (struct appq *q = p->queues, *qnext; q; q = qnext) {
        qnext = q->next;
        for (c = q->head; c; c = next) {
            next = c->next;
            if (!c->started) {
                c->provider_done = 1;
                call_unqueue(c);
                call_release(c);
            }
        }
    }
    for (c = p->all; c; c = next) {
        next = c->all_next;
        call_release(c);
    }
    /* the provider ends the calls it has (done with KN_ECANCELLED), now or later */
    if (p->type->ops->destroy) {
        p->type->ops->destroy(p->self);
    }
    p->self = NULL;
    uv_close((uv_handle_t *)p->kick, kick_closed);
    if (--p->ncalls == 0) {
        platform_release(p);
    }
}

const char *kn_platform_name(const struct kn_platform *p)
{
    return p->name;
}

const struct kn_platform_type *kn_platform_type_of(const struct kn_platform *p)
{
    return p->type;
}

unsigned kn_platform_caps(const struct kn_platform *p)
{
    return p->type->caps;
}

int kn_platform_lead(struct kn_platform *p, kn_platform_lead_cb cb, void *data)
{
    if (!p->type->ops->lead || p->closing) {
        return KN_EUNSUPPORTED;
    }
    return p->type->ops->lead(p->self, cb, data);
}

/* ---- calls ---------------------------------------------------------------------------------- */

static struct appq *queue_of(struct kn_platform *p, const struct kn_app_id *id)
{
    struct appq *q;

    for (q = p->queues; q; q = q->next) {
        if (strcmp(q->repository, id->repository) == 0 && strcmp(q->app, id->app) == 0) {
            return q;
        }
    }
    q = kn_calloc(1, sizeof(*q));
    q->repository = kn_strdup(id->repository);
    q->app = kn_strdup(id->app);
    q->next = p->queues;
    p->queues = q;
    return q;
}

static void queue_drop(struct kn_platform *p, struct appq *q)
{
    struct appq **at = &p->queues;

    while (*at && *at != q) {
        at = &(*at)->next;
    }
    if (*at) {
        *at = q->next;
    }
    free(q->repository);
    free(q->app);
    free(q);
}

static void timer_closed(uv_handle_t *h)
{
    struct kn_platform_call *c = h->data;
    struct kn_platform *p = c->p;

    if (c->all_prev) {
        c->all_prev->all_next = c->all_next;
    } else {
        p->all = c->all_next;
    }
    if (c->all_next) {
        c->all_next->all_prev = c->all_prev;
    }
    kn_live_state_release(&c->live);
    free((char *)(uintptr_t)c->id.repository);
    free((char *)(uintptr_t)c->id.app);
    free(c->stage_name);
    free((char *)(uintptr_t)c->spec.commit);
    json_decref((json_t *)(uintptr_t)c->spec.manifests);
    free((char *)(uintptr_t)c->desired.commit);
    json_decref((json_t *)(uintptr_t)c->desired.manifests);
    for (size_t i = 0; i < c->routes.nmatches; i++) {
        free((char *)(uintptr_t)c->routes.matches[i].name);
        free((char *)(uintptr_t)c->routes.matches[i].value);
    }
    free((struct kn_route_match *)(uintptr_t)c->routes.matches);
    free(c->message);
    free(c->last_line);
    free(c->skip_line);
    for (size_t i = 0; i < c->nheld; i++) {
        free(c->held[i]);
    }
    free(c->held);
    free((struct kn_platform_op *)c);
    if (--p->ncalls == 0 && p->closing) {
        platform_release(p);
    }
}

/* Free the call once the provider and the caller are both done with it. */
static void call_release(struct kn_platform_call *c)
{
    if (!c->provider_done || !c->told || c->delivering || c->closing_timer) {
        return;
    }
    c->closing_timer = 1;
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, timer_closed);
}

/* Take the call out of its queue (it is the head, or waits) and let the next one start. */
static void call_unqueue(struct kn_platform_call *c)
{
    struct appq *q = c->q;
    struct kn_platform_call **at;
    struct kn_platform_call *prev = NULL;

    if (!q) {
        at = &c->p->observing;
        while (*at && *at != c) {
            at = &(*at)->next;
        }
        if (*at) {
            *at = c->next;
        }
        return;
    }
    for (at = &q->head; *at && *at != c; at = &(*at)->next) {
        prev = *at;
    }
    if (!*at) {
        return;
    }
    *at = c->next;
    if (q->tail == c) {
        q->tail = prev;
    }
    c->q = NULL;
    if (!q->head) {
        queue_drop(c->p, q);
    } else if (!c->p->closing) {
        queue_run(q);
    }
}

static void deliver_now(struct kn_platform_call *c)
{
    c->delivering = 0;
    if (c->nheld) {
        int told = c->told;
        c->told = 0; /* lines said before the end still reach the caller, before it */
        held_flush(c);
        c->told = told;
    }
    if (c->skip_line && c->progress) {
        c->progress(c->skip_line, c->data);
    }
    if (c->kind == CALL_OBSERVE) {
        if (c->status != 0 && !c->live.error && c->message) {
            c->live.error = kn_strdup(c->message); /* why, in the provider's words */
        }
        c->observed(c->status, &c->live, c->data);
    } else {
        c->done(c->status, c->status ? c->message : NULL, c->data);
    }
}

static void deliver(uv_timer_t *t)
{
    struct kn_platform_call *c = t->data;

    deliver_now(c);
    call_release(c);
}

/* Tell the caller (once) from the loop. */
static void call_tell(struct kn_platform_call *c, int status, const char *message)
{
    if (c->told) {
        return;
    }
    c->told = 1;
    c->status = status;
    free(c->message);
    c->message = status ? kn_strdup(message ? message : kn_strerror(status)) : NULL;
    if (status != 0 && c->kind != CALL_OBSERVE) {
        kn_log_warn(c->p->who, "repository=%s app=%s %s: %s", c->id.repository, c->id.app,
                    call_kind_names[c->kind], c->message);
    }
    c->delivering = 1;
    uv_timer_stop(&c->timer);
    uv_ref((uv_handle_t *)&c->timer);
    uv_timer_start(&c->timer, deliver, 0, 0);
}

static void deadline_passed(uv_timer_t *t)
{
    struct kn_platform_call *c = t->data;
    char why[160];

    snprintf(why, sizeof(why), "%s did not end within its deadline", call_kind_names[c->kind]);
    if (!c->started) {
        c->provider_done = 1;
        call_unqueue(c);
    } else if (!c->cancelled && c->p->type->ops->cancel) {
        c->cancelled = 1;
        c->p->type->ops->cancel(c->p->self, c);
    }
    c->cancelled = 1;
    call_tell(c, KN_ETIMEDOUT, why);
    call_release(c);
}

static int provider_start(struct kn_platform_call *c)
{
    const struct kn_platform_provider_ops *ops = c->p->type->ops;

    switch (c->kind) {
    case CALL_APPLY:
        return ops->apply(c->p->self, c, &c->spec);
    case CALL_REMOVE:
        return ops->remove(c->p->self, c, c->variant);
    case CALL_WEIGHTS:
        return ops->set_weights(c->p->self, c, c->percent);
    case CALL_REMOVE_APP:
        return ops->remove_app(c->p->self, c);
    case CALL_OBSERVE:
        return ops->observe(c->p->self, c, &c->desired);
    case CALL_ROUTES:
        return ops->set_routes(c->p->self, c, c->percent, &c->routes);
    }
    return KN_EINVAL;
}

static void call_start(struct kn_platform_call *c)
{
    int rc;

    c->started = 1;
    if ((rc = provider_start(c)) < 0) {
        /* refused: the provider never calls done */
        c->provider_done = 1;
        call_unqueue(c);
        call_tell(c, rc, kn_strerror(rc));
        call_release(c);
    }
}

/* Hand the head of the queue to the provider, unless it has it already. */
static void queue_run(struct appq *q)
{
    struct kn_platform_call *c = q->head;

    if (c && !c->started && !c->p->closing) {
        uv_timer_start(c->p->kick, kick_fired, 0, 0);
    }
}

static struct kn_platform_call *call_new(struct kn_platform *p, enum call_kind kind,
                                         const struct kn_app_id *id, long long deployment,
                                         int stage, const char *stage_name, long long timeout_ms)
{
    struct kn_platform_op *op = kn_calloc(1, sizeof(*op));
    struct kn_platform_call *c = &op->call;

    c->p = p;
    c->kind = kind;
    c->id.repository = kn_strdup(id->repository);
    c->id.app = kn_strdup(id->app);
    c->deployment = deployment;
    c->stage = stage;
    c->stage_name = stage_name ? kn_strdup(stage_name) : NULL;
    c->deadline = (long long)uv_now(p->loop) + (timeout_ms > 0 ? timeout_ms : DEFAULT_TIMEOUT_MS);
    uv_timer_init(p->loop, &c->timer);
    c->timer.data = c;
    uv_timer_start(&c->timer, deadline_passed,
                   (uint64_t)(timeout_ms > 0 ? timeout_ms : DEFAULT_TIMEOUT_MS), 0);
    /* a deadline alone does not keep the loop running: what the provider does, does */
    uv_unref((uv_handle_t *)&c->timer);
    p->ncalls++;
    c->all_next = p->all;
    if (p->all) {
        p->all->all_prev = c;
    }
    p->all = c;
    return c;
}

static void token_make(struct kn_platform_call *c)
{
    char stage[16];

    if (c->stage >= 0) {
        snprintf(stage, sizeof(stage), "s%d", c->stage);
    } else {
        snprintf(stage, sizeof(stage), "sn");
    }
    switch (c->kind) {
    case CALL_APPLY:
    case CALL_REMOVE:
        snprintf(c->token, sizeof(c->token), "d%lld-%s-%s-%s", c->deployment, stage,
                 call_kind_names[c->kind], kn_variant_name(c->variant));
        break;
    default:
        snprintf(c->token, sizeof(c->token), "d%lld-%s-%s", c->deployment, stage,
                 call_kind_names[c->kind]);
        break;
    }
}

static int req_valid(const struct kn_platform *p, const struct kn_platform_req *req)
{
    return p && !p->closing && req && req->id.repository && req->id.app && req->done &&
           req->id.repository[0] && req->id.app[0];
}

/* Queue a call made from req behind the app's others; the provider gets it when its turn comes. */
static void call_queue(struct kn_platform_call *c, const struct kn_platform_req *req,
                       struct kn_platform_op **op)
{
    struct appq *q = queue_of(c->p, &req->id);

    c->done = req->done;
    c->progress = req->progress;
    c->data = req->data;
    token_make(c);
    c->q = q;
    if (q->tail) {
        q->tail->next = c;
    } else {
        q->head = c;
    }
    q->tail = c;
    if (op) {
        *op = (struct kn_platform_op *)c;
    }
    if (q->head == c) {
        /* the app's queue was idle: the provider has it now (its outcome still comes later) */
        c->p->asking++;
        call_start(c);
        c->p->asking--;
    }
}

/* An operation the platform cannot do that changes nothing: success at once, said so. */
static void call_skip(struct kn_platform_call *c, const struct kn_platform_req *req,
                      struct kn_platform_op **op, const char *why)
{
    c->done = req->done;
    c->progress = req->progress;
    c->data = req->data;
    token_make(c);
    c->provider_done = 1;
    if (op) {
        *op = (struct kn_platform_op *)c;
    }
    c->skip_line = kn_asprintf("skipped: %s", why);
    kn_log_info(c->p->who, "repository=%s app=%s %s", c->id.repository, c->id.app, c->skip_line);
    call_tell(c, 0, NULL);
}

int kn_platform_apply(struct kn_platform *p, const struct kn_platform_req *req,
                      const struct kn_variant_spec *spec, struct kn_platform_op **op)
{
    struct kn_platform_call *c;
    unsigned need;

    if (!req_valid(p, req) || !spec || !spec->manifests || spec->variant < 0 ||
        spec->variant >= KN_VARIANT_COUNT) {
        return KN_EINVAL;
    }
    need = spec->variant == KN_VARIANT_CANARY     ? KN_PLATFORM_CANARY
           : spec->variant == KN_VARIANT_BASELINE ? KN_PLATFORM_BASELINE
                                                  : KN_PLATFORM_APPLY;
    if (!(p->type->caps & need) || !p->type->ops->apply) {
        return KN_EUNSUPPORTED;
    }
    c = call_new(p, CALL_APPLY, &req->id, req->deployment_id, req->stage_index, req->stage_name,
                 req->timeout_ms);
    c->variant = spec->variant;
    c->spec = *spec;
    c->spec.commit = kn_strdup(spec->commit ? spec->commit : "");
    c->spec.manifests = json_incref((json_t *)(uintptr_t)spec->manifests);
    call_queue(c, req, op);
    return 0;
}

int kn_platform_remove(struct kn_platform *p, const struct kn_platform_req *req,
                       enum kn_variant v, struct kn_platform_op **op)
{
    struct kn_platform_call *c;
    unsigned need = v == KN_VARIANT_CANARY     ? KN_PLATFORM_CANARY
                    : v == KN_VARIANT_BASELINE ? KN_PLATFORM_BASELINE
                                               : KN_PLATFORM_APPLY;

    if (!req_valid(p, req) || v < 0 || v >= KN_VARIANT_COUNT) {
        return KN_EINVAL;
    }
    c = call_new(p, CALL_REMOVE, &req->id, req->deployment_id, req->stage_index, req->stage_name,
                 req->timeout_ms);
    c->variant = v;
    if (!(p->type->caps & need) || !p->type->ops->remove) {
        char why[160];
        snprintf(why, sizeof(why), "platform '%s' (%s) has no %s to remove (%s)", p->name,
                 p->type->name, kn_variant_name(v), kn_platform_cap_name(need));
        call_skip(c, req, op, why);
        return 0;
    }
    call_queue(c, req, op);
    return 0;
}

/* 1 when x is a whole multiple of step (to a millionth of a percent). */
static int on_step(double x, double step)
{
    double n;

    if (step <= 0) {
        return 1;
    }
    n = round(x / step);
    return fabs(n * step - x) < 1e-6;
}

int kn_platform_set_weights(struct kn_platform *p, const struct kn_platform_req *req,
                            const double percent[KN_VARIANT_COUNT], struct kn_platform_op **op)
{
    struct kn_platform_call *c;
    double sum = 0;

    if (!req_valid(p, req) || !percent) {
        return KN_EINVAL;
    }
    for (int v = 0; v < KN_VARIANT_COUNT; v++) {
        if (percent[v] < 0 || percent[v] > 100) {
            return KN_EINVAL;
        }
        sum += percent[v];
    }
    if (fabs(sum - 100) > 1e-6) {
        return KN_EINVAL;
    }
    if (!(p->type->caps & KN_PLATFORM_TRAFFIC_SPLIT) || !p->type->ops->set_weights) {
        if (percent[KN_VARIANT_PRIMARY] < 100) {
            return KN_EUNSUPPORTED;
        }
        c = call_new(p, CALL_WEIGHTS, &req->id, req->deployment_id, req->stage_index,
                     req->stage_name, req->timeout_ms);
        memcpy(c->percent, percent, sizeof(c->percent));
        {
            char why[160];
            snprintf(why, sizeof(why),
                     "platform '%s' (%s) sends all traffic to the primary (no %s)", p->name,
                     p->type->name, kn_platform_cap_name(KN_PLATFORM_TRAFFIC_SPLIT));
            call_skip(c, req, op, why);
        }
        return 0;
    }
    for (int v = 0; v < KN_VARIANT_COUNT; v++) {
        if (!on_step(percent[v], p->type->weight_step)) {
            return KN_EINVAL;
        }
    }
    /* all to the primary takes the routes away too (promotion, rollback) */
    c = call_new(p,
                 percent[KN_VARIANT_PRIMARY] >= 100 && p->type->ops->set_routes ? CALL_ROUTES
                                                                                : CALL_WEIGHTS,
                 &req->id, req->deployment_id, req->stage_index, req->stage_name,
                 req->timeout_ms);
    memcpy(c->percent, percent, sizeof(c->percent));
    call_queue(c, req, op);
    return 0;
}

int kn_platform_set_routes(struct kn_platform *p, const struct kn_platform_req *req,
                           const double percent[KN_VARIANT_COUNT], const struct kn_routes *routes,
                           struct kn_platform_op **op)
{
    struct kn_platform_call *c;
    struct kn_route_match *m;
    unsigned need = 0;

    if (!req_valid(p, req) || !percent || !routes || routes->mirror < 0 ||
        routes->mirror > 100 || (routes->nmatches && !routes->matches)) {
        return KN_EINVAL;
    }
    for (size_t i = 0; i < routes->nmatches; i++) {
        const struct kn_route_match *r = &routes->matches[i];
        if (!r->name || !r->name[0] || !r->value ||
            (r->field != KN_ROUTE_HEADER && r->field != KN_ROUTE_COOKIE)) {
            return KN_EINVAL;
        }
    }
    need |= routes->nmatches ? KN_PLATFORM_HEADER_ROUTING : 0;
    need |= routes->mirror > 0 ? KN_PLATFORM_MIRROR : 0;
    if (!need || !p->type->ops->set_routes) {
        /* no route asked (or none the type can hold): weights, which drop what routes there
         * were when all goes to the primary */
        if ((p->type->caps & need) != need) {
            return KN_EUNSUPPORTED;
        }
        return kn_platform_set_weights(p, req, percent, op);
    }
    if ((p->type->caps & need) != need) {
        return KN_EUNSUPPORTED;
    }
    if (!(p->type->caps & KN_PLATFORM_TRAFFIC_SPLIT) || !p->type->ops->set_weights) {
        return KN_EUNSUPPORTED;
    }
    {
        double sum = 0;
        for (int v = 0; v < KN_VARIANT_COUNT; v++) {
            if (percent[v] < 0 || percent[v] > 100 || !on_step(percent[v], p->type->weight_step)) {
                return KN_EINVAL;
            }
            sum += percent[v];
        }
        if (fabs(sum - 100) > 1e-6) {
            return KN_EINVAL;
        }
    }
    c = call_new(p, CALL_ROUTES, &req->id, req->deployment_id, req->stage_index, req->stage_name,
                 req->timeout_ms);
    memcpy(c->percent, percent, sizeof(c->percent));
    m = kn_calloc(routes->nmatches + 1, sizeof(*m));
    for (size_t i = 0; i < routes->nmatches; i++) {
        m[i] = routes->matches[i];
        m[i].name = kn_strdup(routes->matches[i].name);
        m[i].value = kn_strdup(routes->matches[i].value);
    }
    c->routes.matches = m;
    c->routes.nmatches = routes->nmatches;
    c->routes.mirror = routes->mirror;
    call_queue(c, req, op);
    return 0;
}

int kn_platform_remove_app(struct kn_platform *p, const struct kn_platform_req *req,
                           struct kn_platform_op **op)
{
    struct kn_platform_call *c;

    if (!req_valid(p, req)) {
        return KN_EINVAL;
    }
    if (!p->type->ops->remove_app) {
        return KN_EUNSUPPORTED;
    }
    c = call_new(p, CALL_REMOVE_APP, &req->id, req->deployment_id, req->stage_index,
                 req->stage_name, req->timeout_ms);
    call_queue(c, req, op);
    return 0;
}

int kn_platform_observe(struct kn_platform *p, const struct kn_app_id *id,
                        const struct kn_desired *desired, long long timeout_ms,
                        kn_platform_observe_cb cb, void *data)
{
    struct kn_platform_call *c;

    if (!p || p->closing || !id || !id->repository || !id->app || !cb) {
        return KN_EINVAL;
    }
    if (!(p->type->caps & KN_PLATFORM_LIVE) || !p->type->ops->observe) {
        return KN_EUNSUPPORTED;
    }
    c = call_new(p, CALL_OBSERVE, id, 0, -1, NULL, timeout_ms);
    if (desired) {
        c->desired = *desired;
        c->desired.commit = desired->commit ? kn_strdup(desired->commit) : NULL;
        c->desired.manifests = desired->manifests
                                   ? json_incref((json_t *)(uintptr_t)desired->manifests)
                                   : NULL;
    } else {
        c->desired.percent[KN_VARIANT_PRIMARY] = 100;
    }
    c->observed = cb;
    c->data = data;
    token_make(c);
    c->next = p->observing;
    p->observing = c;
    call_start(c);
    return 0;
}

void kn_platform_cancel(struct kn_platform_op *op)
{
    struct kn_platform_call *c = op ? &op->call : NULL;

    if (!c || c->told || c->cancelled) {
        return;
    }
    c->cancelled = 1;
    if (!c->started) {
        /* it waits: it ends now, and never reaches the provider */
        c->provider_done = 1;
        call_unqueue(c);
        call_tell(c, KN_ECANCELLED, "cancelled before it started");
        call_release(c);
        return;
    }
    if (c->p->type->ops->cancel) {
        /* the provider stops it and ends it with done */
        c->p->type->ops->cancel(c->p->self, c);
        return;
    }
    /* it runs to its end; the caller no longer waits (the app's next call still does) */
    call_tell(c, KN_ECANCELLED, "cancelled; the platform finishes what it started");
}

void kn_platform_template_vars(struct kn_platform *p, const struct kn_app_id *id,
                               enum kn_variant v, struct kn_strmap *out)
{
    if (p && p->type->ops->template_vars && p->self) {
        p->type->ops->template_vars(p->self, id, v, out);
    }
    kn_platform_vars_set(out, "app", id->app);
    kn_platform_vars_set(out, "repository", id->repository);
    kn_platform_vars_set(out, "variant", kn_variant_name(v));
}

/* ---- the call context, as providers see it ------------------------------------------------ */

const struct kn_app_id *kn_platform_call_id(const struct kn_platform_call *call)
{
    return &call->id;
}

long long kn_platform_call_deployment(const struct kn_platform_call *call)
{
    return call->deployment;
}

int kn_platform_call_stage(const struct kn_platform_call *call)
{
    return call->stage;
}

const char *kn_platform_call_stage_name(const struct kn_platform_call *call)
{
    return call->stage_name;
}

const char *kn_platform_call_token(const struct kn_platform_call *call)
{
    return call->token;
}

long long kn_platform_call_time_left(const struct kn_platform_call *call)
{
    long long left = call->deadline - (long long)uv_now(call->p->loop);

    return left > 0 ? left : 1;
}

int kn_platform_call_cancelled(const struct kn_platform_call *call)
{
    return call->cancelled || call->p->closing;
}

void kn_platform_call_progress(struct kn_platform_call *call, const char *fmt, ...)
{
    char line[LINE_MAX_LEN];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (call->last_line && strcmp(call->last_line, line) == 0) {
        call->repeats++; /* folded: said once */
        return;
    }
    free(call->last_line);
    call->last_line = kn_strdup(line);
    call->repeats = 0;
    kn_log_info(call->p->who, "repository=%s app=%s %s", call->id.repository, call->id.app, line);
    if (call->p->asking) {
        /* never from inside the caller's own call: handed over from the loop */
        call->held = kn_reallocarray(call->held, call->nheld + 1, sizeof(*call->held));
        call->held[call->nheld++] = kn_strdup(line);
        uv_timer_start(call->p->kick, kick_fired, 0, 0);
    } else if (call->progress && !call->told) {
        call->progress(line, call->data);
    }
}

static struct memo *memo_find(struct kn_platform *p, const struct kn_app_id *id, const char *key)
{
    for (struct memo *m = p->memos; m; m = m->next) {
        if (strcmp(m->repository, id->repository) == 0 && strcmp(m->app, id->app) == 0 &&
            strcmp(m->key, key) == 0) {
            return m;
        }
    }
    return NULL;
}

char *kn_platform_call_memo_get(struct kn_platform_call *call, const char *key)
{
    struct kn_platform *p = call->p;
    struct memo *m;
    char *value = NULL;

    if (!key) {
        return NULL;
    }
    if (p->store) {
        kn_store_memo_get(p->store, p->name, call->id.repository, call->id.app, key, &value);
        return value;
    }
    m = memo_find(p, &call->id, key);
    return m ? kn_strdup(m->value) : NULL;
}

int kn_platform_call_memo_set(struct kn_platform_call *call, const char *key, const char *value)
{
    struct kn_platform *p = call->p;
    struct memo *m;

    if (!key || (value && strlen(value) > MEMO_MAX)) {
        return KN_EINVAL;
    }
    if (p->store) {
        return kn_store_memo_set(p->store, p->name, call->id.repository, call->id.app, key,
                                 value);
    }
    m = memo_find(p, &call->id, key);
    if (!m && value) {
        m = kn_calloc(1, sizeof(*m));
        m->repository = kn_strdup(call->id.repository);
        m->app = kn_strdup(call->id.app);
        m->key = kn_strdup(key);
        m->next = p->memos;
        p->memos = m;
    }
    if (m && value) {
        free(m->value);
        m->value = kn_strdup(value);
    } else if (m) {
        struct memo **at = &p->memos;
        while (*at != m) {
            at = &(*at)->next;
        }
        *at = m->next;
        free(m->repository);
        free(m->app);
        free(m->key);
        free(m->value);
        free(m);
    }
    return 0;
}

struct kn_live_state *kn_platform_call_live(struct kn_platform_call *call)
{
    return &call->live;
}

void kn_platform_call_done(struct kn_platform_call *call, int status, const char *fmt, ...)
{
    char message[LINE_MAX_LEN];
    va_list ap;

    message[0] = '\0';
    if (fmt) {
        va_start(ap, fmt);
        vsnprintf(message, sizeof(message), fmt, ap);
        va_end(ap);
    }
    if (call->provider_done) {
        return; /* a second done is the provider's bug; the first counts */
    }
    call->provider_done = 1;
    call_unqueue(call);
    call_tell(call, status, message[0] ? message : NULL);
    call_release(call);
}
