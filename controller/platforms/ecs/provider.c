/*
 * The `ecs` platform's operations, as a provider (include/kanaria/plugin/platform.h), on
 * controller/cloud/aws. An app is an ECS service with the EXTERNAL deployment controller; each
 * variant is a task set on its own target group (spec.ecs.targetGroups), and traffic is split by
 * the weights of the forward actions that hold the primary/canary pair.
 *
 *   apply primary  RegisterTaskDefinition (tags kanaria.dev/repository, app, commit) ->
 *                  DescribeServices -> CreateService (EXTERNAL, clientToken) when missing or
 *                  INACTIVE, else UpdateService with what EXTERNAL lets it change ->
 *                  DescribeTaskSets -> CreateTaskSet at 100% on the primary target group ->
 *                  wait until stable -> UpdateServicePrimaryTaskSet -> DeleteTaskSet of the
 *                  old primary (never a canary's; kept while a weight points at a target group
 *                  only it serves).
 *   apply canary   the same task set on the canary (baseline) target group at `replicas`, on
 *                  the service as it is. An older task set of that variant is deleted first
 *                  when its target group has no weight, else once the new one is stable.
 *   set_weights    DescribeTargetGroups(primary) -> its load balancers -> DescribeListeners ->
 *                  DescribeRules (all pages; after the app's first walk the three at once,
 *                  checked: see walk()) -> each forward action whose target groups are
 *                  exactly {primary, canary} (or {primary, canary, baseline}) gets the weights:
 *                  the default action by ModifyListener, the others by ModifyRule (actions
 *                  only, stickiness as read); a rule already right is not written. The weights
 *                  found are kept in the memo "weights-before" before the first write. The
 *                  writes go out together (one round trip, not one per rule); see
 *                  "weights_write" for what a failed one leaves.
 *   set_routes     the weights as set_weights, then kanaria's header rules (memo "routes")
 *                  deleted and one CreateRule per match before each rule holding the pair
 *                  (see "header routes" below).
 *   remove         refused while the variant's target group has weight; DeleteTaskSet, then
 *                  wait until the set is gone or draining with no task left.
 *   remove_app     weights to the primary, canary and baseline task sets deleted, the service
 *                  scaled to 0 and deleted (DeleteService force), the app's memos forgotten.
 *   observe        DescribeServices + DescribeTaskSets + the rule weights: counts per variant,
 *                  a resource line per task set and per matching rule, drift where a weight or
 *                  the primary's task definition is not what kanaria set.
 *
 * Idempotency: a task set's externalId is the call's token and the commit; after a restart the
 * same call finds its task set and waits for it. clientToken (at most 36 characters) is a digest
 * of the cluster, service and externalId. Every wait polls at most every 2 s and ends within
 * what is left of the call; a cancel stops the AWS call or the poll at once.
 *
 * Where the app is (cluster, service, target groups) is kept in the memo "service" by each
 * apply, so remove, set_weights and remove_app after a restart know it; the load balancer's
 * dimension for {{loadBalancer}} is cached by each walk of the rules (set_weights, observe), and
 * so are the load balancers and listeners it found (never the rules).
 */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

#include "cloud/aws/aws.h"
#include "kanaria/alloc.h"
#include "kanaria/log.h"
#include "kanaria/plugin/platform.h"
#include "platforms/ecs/ecs.h"
#include "platforms/ecs/shapes.h"

#define POLL_MS 2000                           /* task-set waits poll at most this often */
#define CALL_MS 30000                          /* one AWS call, retries included */
#define DEFAULT_READY_MS (10LL * 60 * 1000)    /* an apply's wait without ready_timeout_ms */
#define TAG_REPOSITORY "kanaria.dev/repository"
#define TAG_APP "kanaria.dev/app"
#define TAG_COMMIT "kanaria.dev/commit"
#define TAG_VARIANT "kanaria.dev/variant"
#define TAG_SPEC "kanaria.dev/spec"
#define TAG_TASKDEF "kanaria.dev/taskdef"
#define MEMO_SERVICE "service"
#define MEMO_WEIGHTS "weights-before"
#define MEMO_TASKDEF "primary-task-definition"
#define MEMO_ROUTES "routes" /* JSON array of the ARNs of the header rules kanaria made */
#define MAX_PRIORITY 50000   /* ELBv2 rule priorities are 1..50000 */
#define MAX_VALUE 128        /* characters of an http-header condition value */

const struct kn_placeholder kn_ecs_placeholders[] = {
    {.name = "targetGroup", .help = "the variant's ALB target group dimension (targetgroup/NAME/ID)"},
    {.name = "loadBalancer", .help = "the ALB dimension of the primary's load balancer (app/NAME/ID)"},
    {.name = NULL},
};

/* What the provider knows of an app: from the memo "service" and the walks of the rules. */
struct eapp {
    struct eapp *next;
    char *repository;
    char *app;
    char *cluster;
    char *service;
    char *tg[KN_VARIANT_COUNT]; /* target group ARNs; NULL: none */
    char *lb;                   /* app/NAME/ID of the primary's load balancer; NULL: not known */
    /* what the last walk of the rules found: the load balancer ARNs of the primary's target
     * group and their listener ARNs, in order (owned arrays; NULL: no walk yet); see walk() */
    json_t *walked_lbs;
    json_t *walked_listeners;
};

struct op;

/* One AWS call of a batch: calls in flight together, answered in any order (see batch_*). */
struct bcall {
    struct op *op;
    struct kn_aws_call *call; /* NULL once answered */
    int status;               /* its outcome: 0, or a KN_E* code */
    char *message;            /* AWS's words when it failed (owned) */
    json_t *reply;            /* its reply when it succeeded (owned) */
};

struct ecs {
    char *name;
    uv_loop_t *loop;
    struct kn_aws *aws;
    struct op *ops;
    struct eapp *apps;
    size_t handles; /* timers not yet closed */
    int closing;
    char who[160];
};

enum op_kind { OP_APPLY, OP_REMOVE, OP_WEIGHTS, OP_REMOVE_APP, OP_OBSERVE };

typedef void (*step_fn)(struct op *op, const struct kn_aws_result *r);

struct op {
    struct op *next;
    struct ecs *e;
    enum op_kind kind;
    struct kn_platform_call *call;
    struct eapp *a;
    enum kn_variant variant;
    char commit[41];
    json_t *servicedef; /* the ServiceDefinition manifest's spec (owned) */
    struct kn_scale scale;
    long long ready_ms;
    double percent[KN_VARIANT_COUNT];
    const struct kn_desired *desired; /* observe: borrowed for the call */
    /* the AWS call in flight */
    struct kn_aws_call *inflight;
    step_fn then;
    const char *doing;    /* its op name, for messages */
    const char *tolerate; /* an error code taken as an answer (then sees r->status != 0) */
    uv_timer_t *timer;    /* polls, and ends from the loop */
    void (*tick)(struct op *op);
    int cancelled;
    int ended;
    int own;      /* set_arn was made by this apply (or by the same call before a restart) */
    int promoted; /* the primary's set is the service's primary */
    int undoing;  /* cancelled or failed: deleting its own task set before it ends */
    int undo_status;
    char undo_why[768];
    /* apply */
    char *taskdef_arn;
    char external_id[112];
    char digest[13];    /* spec_digest */
    char td_digest[13]; /* of the task definition alone */
    json_t *td_wire;    /* the task definition to register (owned) */
    long long desired_count; /* the service's; -1 unknown */
    double pct;
    char *set_arn;
    json_t *sets;   /* DescribeTaskSets' taskSets (owned) */
    json_t *doomed; /* ARNs of task sets to delete (owned array) */
    json_t *later;  /* ARNs to delete once the new set is stable */
    json_t *set_lb; /* the loadBalancers entry of the variant's task set */
    json_t *del_list; /* delete_all's list (one of the above) */
    void (*del_then)(struct op *op);
    void (*after_weights)(struct op *op); /* remove_app: what follows the weights */
    size_t at;
    long long wait_until; /* uv_now() */
    /* the walk of the rules */
    json_t *lbs;
    size_t lb_at;
    json_t *listeners;
    size_t ls_at;
    char *marker;
    json_t *rules; /* [{"listener": ARN, "rule": rule}] (owned) */
    void (*walked)(struct op *op);
    json_t *walk_ls; /* the listener ARNs this walk read, in order (owned) */
    json_t *fast_lbs; /* walk_fast: the load balancers and listeners it read (owned) */
    json_t *fast_ls;
    json_t *writes;  /* [{"listener"|"rule": ARN, "name", "actions": [...]}] */
    /* calls in flight together */
    struct bcall *batch; /* (owned) */
    size_t nbatch;
    size_t bleft; /* not answered yet, plus one while the batch is being sent */
    void (*batched)(struct op *op);
    /* header routes */
    json_t *route_old;  /* ARNs of the memo MEMO_ROUTES (owned array) */
    json_t *route_seen; /* walked rule entries among them (owned array) */
    json_t *route_want; /* set_routes: an http-header condition per match (owned); NULL: keep */
    json_t *creates;    /* [{"ListenerArn", "Priority", "Conditions"}] planned (owned) */
    void (*after_routes)(struct op *op);
};

/* ---- small helpers ------------------------------------------------------------------------- */

static const char *jstr(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

/* A number that awsQuery replies give as text ("80") and awsJson as a number. */
static long long jint(const json_t *j, long long def)
{
    if (json_is_integer(j)) {
        return (long long)json_integer_value(j);
    }
    if (json_is_real(j)) {
        return (long long)json_real_value(j);
    }
    if (json_is_string(j) && json_string_value(j)[0]) {
        return strtoll(json_string_value(j), NULL, 10);
    }
    return def;
}

/* An awsQuery list read back: an array, or "" when it was empty. */
static const json_t *jlist(const json_t *j)
{
    static json_t *empty;

    if (json_is_array(j)) {
        return j;
    }
    if (!empty) {
        empty = json_array();
    }
    return empty;
}

/* The value of tag key in an ECS tag list [{key, value}], or NULL. */
static const char *tag_of(const json_t *tags, const char *key)
{
    size_t i;
    json_t *t;

    json_array_foreach(jlist(tags), i, t) {
        if (strcmp(jstr(t, "key"), key) == 0) {
            return jstr(t, "value");
        }
    }
    return NULL;
}

/* tags with key set to value (replacing it). */
static void tag_set(json_t *tags, const char *key, const char *value)
{
    size_t i;
    json_t *t;

    json_array_foreach(tags, i, t) {
        if (strcmp(jstr(t, "key"), key) == 0) {
            json_object_set_new(t, "value", json_string(value));
            return;
        }
    }
    json_array_append_new(tags, json_pack("{s:s, s:s}", "key", key, "value", value));
}

/* "arn:...:targetgroup/web/123" -> "targetgroup/web/123" (from the marker on), else the ARN. */
static const char *arn_from(const char *arn, const char *marker)
{
    const char *p = arn ? strstr(arn, marker) : NULL;
    return p ? p : (arn ? arn : "");
}

/* The part after the last '/' of an ARN ("9683b2d02a6cabee"). */
static const char *arn_tail(const char *arn)
{
    const char *p = arn ? strrchr(arn, '/') : NULL;
    return p ? p + 1 : (arn ? arn : "");
}

/* The spec of the manifest of kind in a canonical manifest list, or NULL. */
static const json_t *manifest_spec(const json_t *manifests, const char *kind)
{
    size_t i;
    json_t *m;

    json_array_foreach(manifests, i, m) {
        if (strcmp(jstr(m, "kind"), kind) == 0) {
            return json_object_get(m, "spec");
        }
    }
    return NULL;
}

/* First 32 hex digits of SHA-256 of the parts joined by '/': a clientToken (at most 36). */
static void client_token(char out[33], const char *a, const char *b, const char *c, int n)
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    char *text = kn_asprintf("%s/%s/%s/%d", a, b, c, n);

    SHA256((const unsigned char *)text, strlen(text), md);
    for (int i = 0; i < 16; i++) {
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    }
    free(text);
}

/* ---- what is known of an app --------------------------------------------------------------- */

static void eapp_free(struct eapp *a)
{
    json_decref(a->walked_lbs);
    json_decref(a->walked_listeners);
    free(a->repository);
    free(a->app);
    free(a->cluster);
    free(a->service);
    for (int v = 0; v < KN_VARIANT_COUNT; v++) {
        free(a->tg[v]);
    }
    free(a->lb);
    free(a);
}

static struct eapp *eapp_find(struct ecs *e, const struct kn_app_id *id)
{
    for (struct eapp *a = e->apps; a; a = a->next) {
        if (strcmp(a->repository, id->repository) == 0 && strcmp(a->app, id->app) == 0) {
            return a;
        }
    }
    return NULL;
}

static void set_str(char **at, const char *s)
{
    free(*at);
    *at = s && s[0] ? kn_strdup(s) : NULL;
}

/* Fill the app's record from a parsed spec.ecs and a service definition. */
static struct eapp *eapp_learn(struct ecs *e, const struct kn_app_id *id,
                               const struct kn_ecs_app_options *o, const json_t *servicedef)
{
    struct eapp *a = eapp_find(e, id);
    const char *cluster = jstr(servicedef, "cluster");

    if (!a) {
        a = kn_calloc(1, sizeof(*a));
        a->repository = kn_strdup(id->repository);
        a->app = kn_strdup(id->app);
        a->next = e->apps;
        e->apps = a;
    }
    set_str(&a->cluster, cluster[0] ? cluster : "default");
    set_str(&a->service, jstr(servicedef, "serviceName"));
    set_str(&a->tg[KN_VARIANT_PRIMARY], o->target_groups.primary.target_group_arn);
    set_str(&a->tg[KN_VARIANT_CANARY], o->target_groups.canary.target_group_arn);
    set_str(&a->tg[KN_VARIANT_BASELINE], o->target_groups.baseline.target_group_arn);
    return a;
}

static void eapp_save(struct kn_platform_call *call, const struct eapp *a)
{
    json_t *m = json_pack("{s:s, s:s, s:{}}", "cluster", a->cluster, "service",
                          a->service ? a->service : "", "targetGroups");
    char *text;

    for (int v = 0; v < KN_VARIANT_COUNT; v++) {
        if (a->tg[v]) {
            json_object_set_new(json_object_get(m, "targetGroups"), kn_variant_name(v),
                                json_string(a->tg[v]));
        }
    }
    text = json_dumps(m, JSON_COMPACT);
    kn_platform_call_memo_set(call, MEMO_SERVICE, text);
    free(text);
    json_decref(m);
}

/* The app's record from memory, else from the memo; NULL when neither knows it. */
static struct eapp *eapp_recall(struct ecs *e, struct kn_platform_call *call)
{
    const struct kn_app_id *id = kn_platform_call_id(call);
    struct eapp *a = eapp_find(e, id);
    char *text;
    json_t *m;

    if (a && a->service) {
        return a;
    }
    text = kn_platform_call_memo_get(call, MEMO_SERVICE);
    m = text ? json_loads(text, 0, NULL) : NULL;
    free(text);
    if (!m || !jstr(m, "service")[0]) {
        json_decref(m);
        return NULL;
    }
    if (!a) {
        a = kn_calloc(1, sizeof(*a));
        a->repository = kn_strdup(id->repository);
        a->app = kn_strdup(id->app);
        a->next = e->apps;
        e->apps = a;
    }
    set_str(&a->cluster, jstr(m, "cluster"));
    set_str(&a->service, jstr(m, "service"));
    for (int v = 0; v < KN_VARIANT_COUNT; v++) {
        set_str(&a->tg[v], jstr(json_object_get(m, "targetGroups"), kn_variant_name(v)));
    }
    json_decref(m);
    return a;
}

/* ---- operations: start, AWS calls, end ----------------------------------------------------- */

static void handle_closed(uv_handle_t *h)
{
    struct ecs *e = h->data;

    free(h);
    if (--e->handles == 0 && e->closing && !e->ops) {
        free(e->name);
        free(e);
    }
}

static void batch_free(struct op *op);

static void op_free(struct op *op)
{
    struct ecs *e = op->e;

    json_decref(op->servicedef);
    json_decref(op->td_wire);
    json_decref(op->sets);
    json_decref(op->doomed);
    json_decref(op->later);
    json_decref(op->set_lb);
    json_decref(op->lbs);
    json_decref(op->listeners);
    json_decref(op->rules);
    json_decref(op->writes);
    json_decref(op->route_old);
    json_decref(op->route_seen);
    json_decref(op->route_want);
    json_decref(op->creates);
    free(op->taskdef_arn);
    free(op->set_arn);
    free(op->marker);
    batch_free(op);
    json_decref(op->walk_ls);
    json_decref(op->fast_lbs);
    json_decref(op->fast_ls);
    op->timer->data = e;
    uv_close((uv_handle_t *)op->timer, handle_closed);
    free(op);
}

static void op_end(struct op *op, int status, const char *message)
{
    struct ecs *e = op->e;
    struct op **at = &e->ops;

    if (op->ended) {
        return;
    }
    op->ended = 1;
    while (*at && *at != op) {
        at = &(*at)->next;
    }
    if (*at) {
        *at = op->next;
    }
    uv_timer_stop(op->timer);
    if (status) {
        if (op->kind != OP_OBSERVE) {
            const struct kn_app_id *id = kn_platform_call_id(op->call);
            kn_log_warn(e->who, "repository=%s app=%s %s", id->repository, id->app, message);
        }
        kn_platform_call_done(op->call, status, "%s", message);
    } else {
        kn_platform_call_done(op->call, 0, NULL);
    }
    op_free(op);
}

static void op_fail(struct op *op, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void op_fail(struct op *op, int status, const char *fmt, ...)
{
    char message[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    op_end(op, status, message);
}

static void undo_done(struct op *op, const struct kn_aws_result *r)
{
    if (r->status) {
        op_fail(op, op->undo_status, "%s; its task set %s could not be deleted: %s",
                op->undo_why, arn_from(op->set_arn, "ecs-svc/"), r->message ? r->message : "");
        return;
    }
    op_fail(op, op->undo_status, "%s; its task set %s was deleted", op->undo_why,
            arn_from(op->set_arn, "ecs-svc/"));
}

static void op_call_tol(struct op *op, enum kn_aws_service svc, const char *op_name,
                        json_t *params, const char *tolerate, step_fn then);

/* End a cancelled call. An apply takes out the task set it made first (unless it is the
 * service's primary by now), so that nothing of a cancelled variant runs; when kanaria stops
 * nothing more is sent: the same call after the restart finds the set. */
static void op_undo(struct op *op, int status, const char *why);

static void op_cancelled(struct op *op)
{
    if (op->e->closing || op->undoing || op->kind != OP_APPLY || !op->set_arn || !op->own ||
        op->promoted) {
        op_end(op, KN_ECANCELLED, op->e->closing ? "kanaria is stopping" : "cancelled");
        return;
    }
    op_undo(op, KN_ECANCELLED, "cancelled");
}

/* End the apply with status and why after deleting the task set it made. */
static void op_undo(struct op *op, int status, const char *why)
{
    json_t *p;

    op->undoing = 1;
    op->undo_status = status;
    snprintf(op->undo_why, sizeof(op->undo_why), "%s", why);
    kn_platform_call_progress(op->call, "%s: deleting task set %s",
                              kn_variant_name(op->variant), arn_from(op->set_arn, "ecs-svc/"));
    p = json_pack("{s:s, s:s, s:s, s:b}", "cluster", op->a->cluster, "service", op->a->service,
                  "taskSet", op->set_arn, "force", 1);
    op_call_tol(op, KN_AWS_ECS, "DeleteTaskSet", p, NULL, undo_done);
}

/* 1 when code is one of the '|'-separated codes of list. */
static int code_in(const char *list, const char *code)
{
    size_t n = code ? strlen(code) : 0;

    for (const char *p = list; p && n; p = strchr(p, '|') ? strchr(p, '|') + 1 : NULL) {
        if (strncmp(p, code, n) == 0 && (p[n] == '|' || p[n] == '\0')) {
            return 1;
        }
    }
    return 0;
}

static void call_done(const struct kn_aws_result *r, void *data)
{
    struct op *op = data;
    step_fn then = op->then;
    const char *tolerate = op->tolerate;

    op->inflight = NULL;
    op->tolerate = NULL;
    if (op->undoing && !op->e->closing) {
        then(op, r);
        return;
    }
    if (op->cancelled || op->e->closing || r->status == KN_ECANCELLED) {
        op_cancelled(op);
        return;
    }
    if (r->status && !code_in(tolerate, r->code)) {
        op_fail(op, r->status ? r->status : KN_EIO, "%s: %s", op->doing,
                r->message ? r->message : kn_strerror(r->status));
        return;
    }
    then(op, r);
}

/* Milliseconds an AWS call of op may take. */
static long long call_budget(const struct op *op)
{
    long long left = kn_platform_call_time_left(op->call);
    return left < CALL_MS && !op->undoing ? left : CALL_MS;
}

/* Call op_name of svc with params (stolen); then runs with the result: a success, or an error
 * whose code is tolerate (may be NULL). Any other error ends op with AWS's words. When the call
 * cannot be made op ends at once: the caller returns without touching op. */
static void op_call_tol(struct op *op, enum kn_aws_service svc, const char *op_name,
                        json_t *params, const char *tolerate, step_fn then)
{
    int rc;

    op->then = then;
    op->tolerate = tolerate;
    op->doing = op_name;
    rc = kn_aws_call(&op->inflight, op->e->aws, svc, op_name, params, call_budget(op), call_done,
                     op);
    json_decref(params);
    if (rc < 0) {
        op->inflight = NULL;
        op_fail(op, rc, "%s: the request could not be made (%s)", op_name, kn_strerror(rc));
    }
}

static void op_call(struct op *op, enum kn_aws_service svc, const char *op_name, json_t *params,
                    step_fn then)
{
    op_call_tol(op, svc, op_name, params, NULL, then);
}

/* ---- calls in flight together -------------------------------------------------------------- */

static void batch_free(struct op *op)
{
    for (size_t i = 0; i < op->nbatch; i++) {
        free(op->batch[i].message);
        json_decref(op->batch[i].reply);
    }
    free(op->batch);
    op->batch = NULL;
    op->nbatch = 0;
}

/* One more call of the batch answered (or never sent): the last one ends the batch. */
static void batch_answered(struct op *op)
{
    if (--op->bleft > 0) {
        return;
    }
    for (size_t i = 0; i < op->nbatch; i++) {
        if (op->batch[i].status == KN_ECANCELLED) {
            op_cancelled(op);
            return;
        }
    }
    if (op->cancelled || op->e->closing) {
        op_cancelled(op);
        return;
    }
    op->batched(op);
}

static void batch_done(const struct kn_aws_result *r, void *data)
{
    struct bcall *b = data;

    b->call = NULL;
    b->status = r->status;
    if (r->status) {
        b->message = kn_strdup(r->message ? r->message : kn_strerror(r->status));
    } else {
        b->reply = json_incref((json_t *)(uintptr_t)r->reply);
    }
    batch_answered(b->op);
}

/* A batch of n calls; batched(op) runs once all have answered, with op->batch[i] holding each
 * one's outcome (a cancel or kanaria stopping ends op instead). Send each with batch_call, then
 * batch_sent. */
static void batch_start(struct op *op, size_t n, void (*batched)(struct op *op))
{
    batch_free(op);
    op->batch = kn_calloc(n ? n : 1, sizeof(*op->batch));
    op->nbatch = n;
    op->bleft = n + 1;
    op->batched = batched;
    for (size_t i = 0; i < n; i++) {
        op->batch[i].op = op;
    }
}

/* Send call i of the batch: op_name of svc with params (stolen). A call that cannot be made is
 * answered at once with why. */
static void batch_call(struct op *op, size_t i, enum kn_aws_service svc, const char *op_name,
                       json_t *params)
{
    struct bcall *b = &op->batch[i];
    int rc = kn_aws_call(&b->call, op->e->aws, svc, op_name, params, call_budget(op), batch_done,
                         b);

    json_decref(params);
    if (rc < 0) {
        b->call = NULL;
        b->status = rc;
        b->message = kn_asprintf("%s: the request could not be made (%s)", op_name,
                                 kn_strerror(rc));
        batch_answered(op);
    }
}

/* Every call of the batch is sent: batched(op) runs when the last answers (now, when none is in
 * flight). */
static void batch_sent(struct op *op)
{
    batch_answered(op);
}

/* Stop the calls of op's batch still in flight; each one's callback runs now. 1 when there were
 * some (the last callback has then ended op: it must not be touched), 0 when none was. */
static int batch_cancel(struct op *op)
{
    struct bcall *b = op->batch;
    size_t n = op->nbatch, left = op->bleft;

    if (!b || left == 0) {
        return 0;
    }
    for (size_t i = 0; i < n && left > 0; i++) {
        if (b[i].call) {
            left--;
            kn_aws_cancel(b[i].call); /* the last one frees op and b */
        }
    }
    return 1;
}

static void timer_fired(uv_timer_t *t)
{
    struct op *op = t->data;

    if (op->cancelled || op->e->closing) {
        op_cancelled(op);
        return;
    }
    op->tick(op);
}

/* Run tick after ms (a poll). */
static void op_after(struct op *op, long long ms, void (*tick)(struct op *op))
{
    op->tick = tick;
    uv_timer_start(op->timer, timer_fired, (uint64_t)(ms > 0 ? ms : 0), 0);
}

static struct op *op_new(struct ecs *e, enum op_kind kind, struct kn_platform_call *call)
{
    struct op *op = kn_calloc(1, sizeof(*op));

    op->e = e;
    op->kind = kind;
    op->call = call;
    op->desired_count = -1;
    op->timer = kn_calloc(1, sizeof(*op->timer));
    uv_timer_init(e->loop, op->timer);
    op->timer->data = op;
    e->handles++;
    op->next = e->ops;
    e->ops = op;
    return op;
}

static json_t *ecs_params(const struct op *op)
{
    return json_pack("{s:s, s:s}", "cluster", op->a->cluster, "service", op->a->service);
}

/* ---- the walk of the listener rules -------------------------------------------------------- */

static void walk_listeners_r(struct op *op, const struct kn_aws_result *r);
static void walk_rules_r(struct op *op, const struct kn_aws_result *r);

static void routes_split(struct op *op);

/* The walk is over: what it found is kept for the next one (see walk_fast), then walked. */
static void walk_end(struct op *op)
{
    json_decref(op->a->walked_lbs);
    op->a->walked_lbs = json_copy(op->lbs);
    json_decref(op->a->walked_listeners);
    op->a->walked_listeners = json_copy(op->walk_ls);
    routes_split(op);
    op->walked(op);
}

static void walk_next_lb(struct op *op)
{
    json_t *p;

    if (op->lb_at >= json_array_size(op->lbs)) {
        walk_end(op);
        return;
    }
    p = json_pack("{s:s}", "LoadBalancerArn",
                  json_string_value(json_array_get(op->lbs, op->lb_at)));
    if (op->marker) {
        json_object_set_new(p, "Marker", json_string(op->marker));
    }
    op_call(op, KN_AWS_ELBV2, "DescribeListeners", p, walk_listeners_r);
}

static void walk_next_listener(struct op *op)
{
    json_t *p;

    if (op->ls_at >= json_array_size(op->listeners)) {
        json_array_clear(op->listeners);
        op->ls_at = 0;
        op->lb_at++;
        walk_next_lb(op);
        return;
    }
    p = json_pack("{s:s}", "ListenerArn",
                  jstr(json_array_get(op->listeners, op->ls_at), "ListenerArn"));
    if (op->marker) {
        json_object_set_new(p, "Marker", json_string(op->marker));
    }
    op_call(op, KN_AWS_ELBV2, "DescribeRules", p, walk_rules_r);
}

static void next_marker(struct op *op, const json_t *reply)
{
    const char *m = jstr(reply, "NextMarker");

    free(op->marker);
    op->marker = m[0] ? kn_strdup(m) : NULL;
}

static void walk_listeners_r(struct op *op, const struct kn_aws_result *r)
{
    size_t i;
    json_t *l;

    json_array_foreach(jlist(json_object_get(r->reply, "Listeners")), i, l) {
        json_array_append(op->listeners, l);
        json_array_append_new(op->walk_ls, json_string(jstr(l, "ListenerArn")));
    }
    next_marker(op, r->reply);
    if (op->marker) {
        walk_next_lb(op);
        return;
    }
    op->ls_at = 0;
    walk_next_listener(op);
}

static void walk_rules_r(struct op *op, const struct kn_aws_result *r)
{
    const char *listener = jstr(json_array_get(op->listeners, op->ls_at), "ListenerArn");
    size_t i;
    json_t *rule;

    json_array_foreach(jlist(json_object_get(r->reply, "Rules")), i, rule) {
        json_array_append_new(op->rules,
                              json_pack("{s:s, s:O}", "listener", listener, "rule", rule));
    }
    next_marker(op, r->reply);
    if (!op->marker) {
        op->ls_at++;
    }
    walk_next_listener(op);
}

/* The load balancer ARNs of a DescribeTargetGroups reply, each once (moto lists one per rule
 * that forwards to the group), as a new array; the first one's dimension is kept in a->lb. */
static json_t *tg_lbs(struct eapp *a, const json_t *reply)
{
    const json_t *tg = json_array_get(jlist(json_object_get(reply, "TargetGroups")), 0);
    const json_t *lbs = jlist(json_object_get(tg, "LoadBalancerArns"));
    json_t *out = json_array();

    for (size_t i = 0; i < json_array_size(lbs); i++) {
        const json_t *arn = json_array_get(lbs, i);
        int seen = 0;
        for (size_t j = 0; j < json_array_size(out) && !seen; j++) {
            seen = json_equal(json_array_get(out, j), (json_t *)(uintptr_t)arn);
        }
        if (!seen) {
            json_array_append(out, (json_t *)(uintptr_t)arn);
        }
    }
    if (json_array_size(out) > 0) {
        set_str(&a->lb, arn_from(json_string_value(json_array_get(out, 0)), "app/"));
    }
    return out;
}

static void walk_tg_r(struct op *op, const struct kn_aws_result *r)
{
    json_decref(op->lbs);
    op->lbs = tg_lbs(op->a, r->reply);
    op->lb_at = 0;
    walk_next_lb(op);
}

/* The answers of walk_fast. They are the walk's when the target group's load balancers are
 * those the batch asked for, their listeners (one page each) too, and each listener's rules
 * fit one page: then every rule was read, fresh, as a walk one call after the other reads
 * them. Otherwise (a load balancer or listener that the batch asked about gone, a
 * DescribeListeners or DescribeRules refused or failed, more pages) the walk goes on one call
 * after the other from the target group just read, as the first walk does. */
static void walk_fast_r(struct op *op)
{
    size_t nl = json_array_size(op->fast_lbs), nr = json_array_size(op->fast_ls);
    json_t *lbs, *ls;
    int same = 1;

    if (op->batch[0].status) {
        op_fail(op, op->batch[0].status, "%s", op->batch[0].message);
        return;
    }
    for (size_t i = 1; i < op->nbatch; i++) {
        same = same && op->batch[i].status == 0;
    }
    ls = json_array();
    lbs = tg_lbs(op->a, op->batch[0].reply);
    same = same && json_equal(lbs, op->fast_lbs);
    for (size_t i = 0; i < nl && same; i++) {
        const json_t *reply = op->batch[1 + i].reply;
        size_t k;
        json_t *l;
        json_array_foreach(jlist(json_object_get(reply, "Listeners")), k, l) {
            json_array_append_new(ls, json_string(jstr(l, "ListenerArn")));
        }
        same = jstr(reply, "NextMarker")[0] == '\0';
    }
    same = same && json_equal(ls, op->fast_ls);
    for (size_t i = 0; i < nr && same; i++) {
        same = jstr(op->batch[1 + nl + i].reply, "NextMarker")[0] == '\0';
    }
    json_decref(ls);
    json_decref(op->lbs);
    op->lbs = lbs;
    op->lb_at = 0;
    if (!same) {
        walk_next_lb(op);
        return;
    }
    for (size_t i = 0; i < nr; i++) {
        const char *listener = json_string_value(json_array_get(op->fast_ls, i));
        size_t k;
        json_t *rule;
        json_array_foreach(jlist(json_object_get(op->batch[1 + nl + i].reply, "Rules")), k,
                           rule) {
            json_array_append_new(op->rules,
                                  json_pack("{s:s, s:O}", "listener", listener, "rule", rule));
        }
        json_array_append_new(op->walk_ls, json_string(listener));
    }
    walk_end(op);
}

/* The walk in one round trip: the target group, the listeners of the load balancers the last
 * walk found, and the rules of the listeners it found, all read at once. */
static void walk_fast(struct op *op)
{
    size_t nl, nr;

    json_decref(op->fast_lbs);
    op->fast_lbs = json_incref(op->a->walked_lbs);
    json_decref(op->fast_ls);
    op->fast_ls = json_incref(op->a->walked_listeners);
    nl = json_array_size(op->fast_lbs);
    nr = json_array_size(op->fast_ls);
    batch_start(op, 1 + nl + nr, walk_fast_r);
    batch_call(op, 0, KN_AWS_ELBV2, "DescribeTargetGroups",
               json_pack("{s:[s]}", "TargetGroupArns", op->a->tg[KN_VARIANT_PRIMARY]));
    for (size_t i = 0; i < nl; i++) {
        batch_call(op, 1 + i, KN_AWS_ELBV2, "DescribeListeners",
                   json_pack("{s:s}", "LoadBalancerArn",
                             json_string_value(json_array_get(op->fast_lbs, i))));
    }
    for (size_t i = 0; i < nr; i++) {
        batch_call(op, 1 + nl + i, KN_AWS_ELBV2, "DescribeRules",
                   json_pack("{s:s}", "ListenerArn",
                             json_string_value(json_array_get(op->fast_ls, i))));
    }
    batch_sent(op);
}

/*
 * Read every rule of every listener of the load balancers of the primary's target group into
 * op->rules, then walked(op). One call after the other (DescribeTargetGroups, then
 * DescribeListeners of each load balancer, then DescribeRules of each listener, each paged)
 * the first time; after that in one round trip (walk_fast) on what the last walk found, checked
 * against the answers: a load balancer or listener added or gone since then costs the calls
 * one after the other again, never a rule missed. Rules are always read afresh: a write sends
 * back every action of a rule as it was read.
 */
static void walk(struct op *op, void (*walked)(struct op *op))
{
    op->walked = walked;
    json_decref(op->rules);
    op->rules = json_array();
    json_decref(op->listeners);
    op->listeners = json_array();
    json_decref(op->walk_ls);
    op->walk_ls = json_array();
    free(op->marker);
    op->marker = NULL;
    if (json_array_size(op->a->walked_lbs) > 0) {
        walk_fast(op);
        return;
    }
    op_call(op, KN_AWS_ELBV2, "DescribeTargetGroups",
            json_pack("{s:[s]}", "TargetGroupArns", op->a->tg[KN_VARIANT_PRIMARY]), walk_tg_r);
}

/* ---- reading and changing weights ---------------------------------------------------------- */

static const json_t *fwd_groups(const json_t *action)
{
    if (strcmp(jstr(action, "Type"), "forward") != 0) {
        return NULL;
    }
    return json_is_array(json_object_get(json_object_get(action, "ForwardConfig"),
                                         "TargetGroups"))
               ? json_object_get(json_object_get(action, "ForwardConfig"), "TargetGroups")
               : NULL;
}

/* The variant whose target group is arn, or -1. */
static int variant_of_tg(const struct eapp *a, const char *arn)
{
    for (int v = 0; v < KN_VARIANT_COUNT; v++) {
        if (a->tg[v] && strcmp(a->tg[v], arn) == 0) {
            return v;
        }
    }
    return -1;
}

/* 1 when a forward action's target groups are exactly {primary, canary} or {primary, canary,
 * baseline}; w gets their weights (-1 for a variant not in it). */
static int action_is_pair(const struct eapp *a, const json_t *action, int w[KN_VARIANT_COUNT])
{
    const json_t *groups = fwd_groups(action);
    int seen = 0;
    size_t i;
    json_t *g;

    if (!groups || !a->tg[KN_VARIANT_CANARY]) {
        return 0;
    }
    for (int v = 0; v < KN_VARIANT_COUNT; v++) {
        w[v] = -1;
    }
    json_array_foreach(groups, i, g) {
        int v = variant_of_tg(a, jstr(g, "TargetGroupArn"));
        if (v < 0 || w[v] >= 0) {
            return 0;
        }
        w[v] = (int)jint(json_object_get(g, "Weight"), 1);
        seen++;
    }
    return w[KN_VARIANT_PRIMARY] >= 0 && w[KN_VARIANT_CANARY] >= 0 && seen >= 2;
}

/* The weight a's variant v gets from an action (0 when it is not in it). */
static int action_weight(const struct eapp *a, const json_t *action, enum kn_variant v)
{
    const json_t *groups = fwd_groups(action);
    size_t i;
    json_t *g;

    if (!a->tg[v] || strcmp(jstr(action, "Type"), "forward") != 0) {
        return 0;
    }
    if (!groups) {
        return strcmp(jstr(action, "TargetGroupArn"), a->tg[v]) == 0;
    }
    json_array_foreach(groups, i, g) {
        if (strcmp(jstr(g, "TargetGroupArn"), a->tg[v]) == 0) {
            return (int)jint(json_object_get(g, "Weight"), 1);
        }
    }
    return 0;
}

/* A name for a rule in messages: "rule 9683b2d0 (listener f2f7dc8e)" or "the default rule of
 * listener f2f7dc8e". */
static void rule_name(const json_t *entry, char *out, size_t size)
{
    const json_t *rule = json_object_get(entry, "rule");
    const char *l = jstr(entry, "listener");

    if (strcmp(jstr(rule, "IsDefault"), "true") == 0) {
        snprintf(out, size, "the default rule of listener %s", arn_from(l, "listener/"));
    } else {
        snprintf(out, size, "rule %s", arn_from(jstr(rule, "RuleArn"), "listener-rule/"));
    }
}

/* An action list fit to send back: empty values dropped, an OIDC secret never echoed. */
static void actions_clean(json_t *j)
{
    const char *key;
    json_t *v;
    void *tmp;
    size_t i;

    if (json_is_array(j)) {
        json_array_foreach(j, i, v) {
            actions_clean(v);
        }
        return;
    }
    if (!json_is_object(j)) {
        return;
    }
    json_object_foreach_safe(j, tmp, key, v) {
        if (json_is_string(v) && json_string_value(v)[0] == '\0') {
            json_object_del(j, key);
        } else {
            actions_clean(v);
        }
    }
    v = json_object_get(j, "AuthenticateOidcConfig");
    if (json_is_object(v)) {
        json_object_del(v, "ClientSecret");
        json_object_set_new(v, "UseExistingClientSecret", json_string("true"));
    }
}

/* ---- set_weights --------------------------------------------------------------------------- */

/* The weights are in place: the call ends, or (remove_app) goes on. */
static void weights_finish(struct op *op)
{
    if (op->after_weights) {
        op->after_weights(op);
    } else {
        op_end(op, 0, NULL);
    }
}

/* Every write has answered: the call goes on, or fails with the words of the first failed
 * write in the order of op->writes. */
static void weights_written(struct op *op)
{
    size_t n = json_array_size(op->writes), failed = 0, first = 0;

    for (size_t i = n; i-- > 0;) {
        if (op->batch[i].status) {
            failed++;
            first = i;
        }
    }
    if (failed > 0) {
        const json_t *w = json_array_get(op->writes, first);
        op_fail(op, op->batch[first].status,
                "%s of %s: %s; %zu of %zu weight write(s) failed, the others were made (a "
                "retry reads the rules again and writes those not yet right)",
                json_object_get(w, "listener") ? "ModifyListener" : "ModifyRule",
                jstr(w, "name"), op->batch[first].message, failed, n);
        return;
    }
    kn_platform_call_progress(op->call, "weights %g/%g/%g written on %zu rule(s)",
                              op->percent[KN_VARIANT_PRIMARY], op->percent[KN_VARIANT_CANARY],
                              op->percent[KN_VARIANT_BASELINE], n);
    weights_finish(op);
}

/*
 * Write op->writes all at once: each is its own ModifyRule or ModifyListener, and the call
 * goes on when every one has answered. A write that fails does not stop the others: each
 * replaces the actions of one rule, so every rule holds either the weights it had or the new
 * ones, never a mix, and what the others made is kept. The call then fails with the words of
 * the first failed write in the order of the walk (each listener's default action, then its
 * rules as DescribeRules lists them) and the count of failed ones; a retry of the call walks
 * the rules again and writes only those not yet right, and the memo "weights-before" keeps what
 * the first try found. A cancel stops every write still in flight.
 */
static void weights_write(struct op *op)
{
    size_t n = json_array_size(op->writes);

    if (n == 0) {
        weights_finish(op);
        return;
    }
    batch_start(op, n, weights_written);
    for (size_t i = 0; i < n; i++) {
        const json_t *w = json_array_get(op->writes, i);

        if (json_object_get(w, "listener")) {
            batch_call(op, i, KN_AWS_ELBV2, "ModifyListener",
                       json_pack("{s:s, s:O}", "ListenerArn", jstr(w, "listener"),
                                 "DefaultActions", json_object_get(w, "actions")));
        } else {
            batch_call(op, i, KN_AWS_ELBV2, "ModifyRule",
                       json_pack("{s:s, s:O}", "RuleArn", jstr(w, "rule"), "Actions",
                                 json_object_get(w, "actions")));
        }
    }
    batch_sent(op);
}

/* Append name to a ", "-separated list in buf, while it fits. */
static void list_add(char *buf, size_t size, const char *name)
{
    size_t len = strlen(buf);

    if (len + strlen(name) + 8 < size) {
        snprintf(buf + len, size - len, "%s%s", len ? ", " : "", name);
    } else if (len + 5 < size && strcmp(buf + len - 3, "...") != 0) {
        snprintf(buf + len, size - len, ", ...");
    }
}

/* 1 when some forward action of rule (not a pair) sends traffic to one of the app's target
 * groups; *other when it is the canary's or the baseline's with weight. */
static int rule_holds_one(const struct eapp *a, const json_t *rule, int *other)
{
    int holds = 0;
    size_t k;
    json_t *act;

    json_array_foreach(jlist(json_object_get(rule, "Actions")), k, act) {
        for (int v = 0; v < KN_VARIANT_COUNT; v++) {
            int w = action_weight(a, act, (enum kn_variant)v);
            int in = w > 0;
            const json_t *groups = fwd_groups(act);
            size_t g;
            json_t *grp;
            json_array_foreach(jlist(groups), g, grp) {
                in |= a->tg[v] && strcmp(jstr(grp, "TargetGroupArn"), a->tg[v]) == 0;
            }
            holds |= in;
            if (v != KN_VARIANT_PRIMARY && w > 0) {
                *other = 1;
            }
        }
    }
    return holds;
}

/*
 * Plan the writes over op->rules and make them; fail without writing anything when the weights
 * cannot be put. A matching action gets the weights, everything else of the rule is sent back
 * as read (stickiness included; conditions are never sent).
 */
static void weights_plan(struct op *op)
{
    const struct eapp *a = op->a;
    int want[KN_VARIANT_COUNT];
    json_t *before = json_object();
    char only[768] = "", lacks[512] = "";
    size_t npair = 0, nright = 0, i;
    int stray = 0;
    json_t *entry;

    for (int v = 0; v < KN_VARIANT_COUNT; v++) {
        want[v] = (int)lround(op->percent[v]);
    }
    json_decref(op->writes);
    op->writes = json_array();
    json_array_foreach(op->rules, i, entry) {
        const json_t *rule = json_object_get(entry, "rule");
        json_t *actions = json_deep_copy(jlist(json_object_get(rule, "Actions")));
        int change = 0, pair = 0;
        char name[256];
        size_t k;
        json_t *act;

        rule_name(entry, name, sizeof(name));
        json_array_foreach(actions, k, act) {
            int w[KN_VARIANT_COUNT];
            size_t g;
            json_t *grp;

            if (!action_is_pair(a, act, w)) {
                continue;
            }
            pair = 1;
            if (want[KN_VARIANT_BASELINE] > 0 && w[KN_VARIANT_BASELINE] < 0) {
                list_add(lacks, sizeof(lacks), name);
            }
            if (!json_object_get(before, jstr(rule, "RuleArn"))) {
                json_object_set_new(before, jstr(rule, "RuleArn"),
                                    json_deep_copy(fwd_groups(act)));
            }
            json_array_foreach(fwd_groups(act), g, grp) {
                int v = variant_of_tg(a, jstr(grp, "TargetGroupArn"));
                if (jint(json_object_get(grp, "Weight"), 1) != want[v]) {
                    json_object_set_new(grp, "Weight", json_integer(want[v]));
                    change = 1;
                }
            }
            json_object_del(act, "TargetGroupArn"); /* the pair is in ForwardConfig */
        }
        if (pair) {
            npair++;
        } else if (rule_holds_one(a, rule, &stray)) {
            list_add(only, sizeof(only), name);
        }
        if (!pair || !change) {
            nright += pair;
            json_decref(actions);
            continue;
        }
        actions_clean(actions);
        if (strcmp(jstr(rule, "IsDefault"), "true") == 0) {
            json_array_append_new(op->writes, json_pack("{s:s, s:s, s:o}", "listener",
                                                        jstr(entry, "listener"), "name", name,
                                                        "actions", actions));
        } else {
            json_array_append_new(op->writes, json_pack("{s:s, s:s, s:o}", "rule",
                                                        jstr(rule, "RuleArn"), "name", name,
                                                        "actions", actions));
        }
    }
    if (lacks[0]) {
        json_decref(before);
        op_fail(op, KN_EINVAL,
                "%s forward(s) to the primary and canary target groups only: the baseline's "
                "%d%% cannot be routed there",
                lacks, want[KN_VARIANT_BASELINE]);
        return;
    }
    if (npair == 0) {
        json_decref(before);
        if (want[KN_VARIANT_CANARY] == 0 && want[KN_VARIANT_BASELINE] == 0 && !stray) {
            kn_platform_call_progress(op->call, "no listener rule forwards to the canary's "
                                                "target group: all traffic is on the primary");
            weights_finish(op);
        } else {
            op_fail(op, KN_EINVAL,
                    "no listener rule of the load balancer of %s forwards to both the primary "
                    "and the canary target groups (%s%s); create the rules with both target "
                    "groups in one forward action",
                    arn_from(a->tg[KN_VARIANT_PRIMARY], "targetgroup/"),
                    only[0] ? "these hold only one of them: " : "none holds either", only);
        }
        return;
    }
    if (json_array_size(op->writes) > 0) {
        const char *token = kn_platform_call_token(op->call);
        char *old = kn_platform_call_memo_get(op->call, MEMO_WEIGHTS);
        json_t *oldj = old ? json_loads(old, 0, NULL) : NULL;
        int rc = 0;

        /* the weights found before this call's first write (a retry after a restart keeps
         * the first record) */
        if (!oldj || strcmp(jstr(oldj, "token"), token) != 0) {
            json_t *m = json_pack("{s:s, s:O}", "token", token, "rules", before);
            char *text = json_dumps(m, JSON_COMPACT);
            rc = kn_platform_call_memo_set(op->call, MEMO_WEIGHTS, text);
            free(text);
            json_decref(m);
        }
        free(old);
        json_decref(oldj);
        if (rc < 0) {
            json_decref(before);
            op_fail(op, rc, "the weights found could not be kept before the change: %s",
                    kn_strerror(rc));
            return;
        }
    }
    json_decref(before);
    if (nright > 0) {
        kn_platform_call_progress(op->call, "%zu rule(s) already at %d/%d/%d", nright,
                                  want[KN_VARIANT_PRIMARY], want[KN_VARIANT_CANARY],
                                  want[KN_VARIANT_BASELINE]);
    }
    weights_write(op);
}

static int ecs_set_weights(void *self, struct kn_platform_call *call,
                           const double percent[KN_VARIANT_COUNT])
{
    struct ecs *e = self;
    struct eapp *a = eapp_recall(e, call);
    struct op *op;

    if (!a) {
        if (percent[KN_VARIANT_PRIMARY] >= 100) {
            kn_platform_call_done(call, 0, NULL);
            return 0;
        }
        kn_platform_call_done(call, KN_ENOTFOUND,
                              "platform '%s' has not deployed the app: no target groups known",
                              e->name);
        return 0;
    }
    if (!a->tg[KN_VARIANT_PRIMARY]) {
        kn_platform_call_done(call, KN_EINVAL, "spec.ecs.targetGroups.primary is not set");
        return 0;
    }
    op = op_new(e, OP_WEIGHTS, call);
    op->a = a;
    memcpy(op->percent, percent, sizeof(op->percent));
    walk(op, weights_plan);
    return 0;
}

/* ---- header routes (set_routes) ------------------------------------------------------------ */

/* Each match is a listener rule of its own: the conditions of the rule that holds the pair (none
 * for a default action) and an http-header condition, forwarding to the canary's target group,
 * at a free priority just before that rule (after every other rule for a default action). The
 * rules made are kept in the memo MEMO_ROUTES, each as soon as it exists, so a restart finds
 * them; they are all deleted before new ones are made, when the traffic goes all to the
 * primary, and when the canary or the app is removed. */

static void routes_load(struct op *op)
{
    char *text;
    json_t *j;

    if (op->route_old) {
        return;
    }
    text = kn_platform_call_memo_get(op->call, MEMO_ROUTES);
    j = text ? json_loads(text, 0, NULL) : NULL;
    free(text);
    if (json_is_array(j)) {
        op->route_old = j;
    } else {
        json_decref(j);
        op->route_old = json_array();
    }
}

static int routes_save(struct op *op)
{
    char *text = json_dumps(op->route_old, JSON_COMPACT);
    int rc = kn_platform_call_memo_set(op->call, MEMO_ROUTES,
                                       json_array_size(op->route_old) ? text : NULL);

    free(text);
    return rc;
}

static int arn_in(const json_t *list, const char *arn)
{
    size_t i;
    json_t *x;

    json_array_foreach(list, i, x) {
        if (strcmp(json_string_value(x) ? json_string_value(x) : "", arn) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Take kanaria's header rules out of the walked rules (into op->route_seen): they are not the
 * traffic split. */
static void routes_split(struct op *op)
{
    size_t i = 0;

    routes_load(op);
    json_decref(op->route_seen);
    op->route_seen = json_array();
    while (i < json_array_size(op->rules)) {
        json_t *entry = json_array_get(op->rules, i);
        if (arn_in(op->route_old, jstr(json_object_get(entry, "rule"), "RuleArn"))) {
            json_array_append(op->route_seen, entry);
            json_array_remove(op->rules, i);
        } else {
            i++;
        }
    }
}

/* 1 when rule looks like a header route to the canary: an http-header condition, and one
 * forward action to the canary's target group alone. */
static int rule_is_route(const struct eapp *a, const json_t *rule)
{
    const json_t *acts = jlist(json_object_get(rule, "Actions"));
    const json_t *act = json_array_get(acts, 0);
    int header = 0;
    size_t i;
    json_t *c;

    json_array_foreach(jlist(json_object_get(rule, "Conditions")), i, c) {
        header |= strcmp(jstr(c, "Field"), "http-header") == 0;
    }
    return header && json_array_size(acts) == 1 && json_array_size(fwd_groups(act)) <= 1 &&
           action_weight(a, act, KN_VARIANT_CANARY) > 0;
}

static void routes_delete_next(struct op *op);

static void routes_deleted(struct op *op, const struct kn_aws_result *r)
{
    int rc;

    (void)r; /* RuleNotFound: gone already */
    json_array_remove(op->route_old, 0);
    if ((rc = routes_save(op)) < 0) {
        op_fail(op, rc, "the header rules left could not be kept: %s", kn_strerror(rc));
        return;
    }
    routes_delete_next(op);
}

static void routes_delete_next(struct op *op)
{
    const char *arn = json_string_value(json_array_get(op->route_old, 0));

    if (!arn) {
        op->after_routes(op);
        return;
    }
    op_call_tol(op, KN_AWS_ELBV2, "DeleteRule", json_pack("{s:s}", "RuleArn", arn),
                "RuleNotFound", routes_deleted);
}

/* Delete every header rule kanaria made for the app (one gone already is no error), then
 * then(op). */
static void routes_delete(struct op *op, void (*then)(struct op *op))
{
    routes_load(op);
    if (json_array_size(op->route_old) > 0) {
        kn_platform_call_progress(op->call, "deleting %zu header rule(s) to the canary",
                                  json_array_size(op->route_old));
    }
    op->after_routes = then;
    routes_delete_next(op);
}

static void routes_create_next(struct op *op);

static void routes_created(struct op *op, const struct kn_aws_result *r)
{
    const json_t *rule = json_array_get(jlist(json_object_get(r->reply, "Rules")), 0);
    int rc;

    if (!jstr(rule, "RuleArn")[0]) {
        op_fail(op, KN_EIO, "CreateRule: the reply names no rule");
        return;
    }
    json_array_append_new(op->route_old, json_string(jstr(rule, "RuleArn")));
    if ((rc = routes_save(op)) < 0) {
        op_fail(op, rc, "header rule %s could not be kept: %s",
                arn_from(jstr(rule, "RuleArn"), "listener-rule/"), kn_strerror(rc));
        return;
    }
    op->at++;
    routes_create_next(op);
}

static void routes_create_next(struct op *op)
{
    const json_t *c = json_array_get(op->creates, op->at);
    const struct kn_app_id *id = kn_platform_call_id(op->call);
    json_t *p;

    if (!c) {
        if (op->at > 0) {
            kn_platform_call_progress(op->call, "%zu header rule(s) to the canary created",
                                      op->at);
        }
        op_end(op, 0, NULL);
        return;
    }
    p = json_pack("{s:O, s:O, s:O, s:[{s:s, s:i, s:{s:[{s:s, s:i}]}}], "
                  "s:[{s:s, s:s}, {s:s, s:s}]}",
                  "ListenerArn", json_object_get(c, "ListenerArn"), "Priority",
                  json_object_get(c, "Priority"), "Conditions", json_object_get(c, "Conditions"),
                  "Actions", "Type", "forward", "Order", 1, "ForwardConfig", "TargetGroups",
                  "TargetGroupArn", op->a->tg[KN_VARIANT_CANARY], "Weight", 1, "Tags", "Key",
                  TAG_REPOSITORY, "Value", id->repository, "Key", TAG_APP, "Value", id->app);
    op_call(op, KN_AWS_ELBV2, "CreateRule", p, routes_created);
}

static void routes_create(struct op *op)
{
    op->at = 0;
    routes_create_next(op);
}

/* After the weights: the old header rules go, the planned ones are made. */
static void routes_sync(struct op *op)
{
    routes_delete(op, routes_create);
}

/* A rule's conditions fit to send again: a condition with a ...Config loses its old-style
 * Values (AWS refuses both), empty values are dropped. */
static json_t *conds_copy(const json_t *conds)
{
    json_t *out = json_array();
    size_t i;
    json_t *c;

    json_array_foreach(jlist(conds), i, c) {
        json_t *cc = json_deep_copy(c);
        const char *key;
        json_t *v;
        int config = 0;

        json_object_foreach(cc, key, v) {
            size_t n = strlen(key);
            config |= n > 6 && strcmp(key + n - 6, "Config") == 0;
        }
        if (config) {
            json_object_del(cc, "Values");
        }
        actions_clean(cc);
        json_array_append_new(out, cc);
    }
    return out;
}

/* The priority of a non-default rule, or 0. */
static long long rule_priority(const json_t *rule)
{
    long long p = jint(json_object_get(rule, "Priority"), 0);
    return strcmp(jstr(rule, "IsDefault"), "true") == 0 || p < 1 || p > MAX_PRIORITY ? 0 : p;
}

/* Plan op->creates over op->rules for op->route_want: 0, or the op failed (return at once). */
static int routes_plan(struct op *op)
{
    size_t nwant = json_array_size(op->route_want), npair = 0, i;
    json_t *entry;

    json_decref(op->creates);
    op->creates = json_array();
    if (nwant == 0) {
        return 0;
    }
    json_array_foreach(op->rules, i, entry) {
        const json_t *rule = json_object_get(entry, "rule");
        const char *listener = jstr(entry, "listener");
        long long prio = rule_priority(rule), below = 0, above = 0, at;
        int pair = 0, w[KN_VARIANT_COUNT];
        size_t k;
        json_t *x;

        json_array_foreach(jlist(json_object_get(rule, "Actions")), k, x) {
            pair |= action_is_pair(op->a, x, w);
        }
        if (!pair) {
            continue;
        }
        npair++;
        /* the nearest priorities in use on the listener before and after the rule's */
        json_array_foreach(op->rules, k, x) {
            long long q = rule_priority(json_object_get(x, "rule"));
            if (q == 0 || strcmp(jstr(x, "listener"), listener) != 0) {
                continue;
            }
            if (q > below && (prio == 0 || q < prio)) {
                below = q;
            }
            if (prio && q > prio && (above == 0 || q < above)) {
                above = q;
            }
        }
        (void)above;
        if ((prio ? prio - 1 : MAX_PRIORITY) - below < (long long)nwant) {
            char name[256];
            rule_name(entry, name, sizeof(name));
            op_fail(op, KN_EINVAL,
                    "no %zu free rule priorities between %lld and %s on listener %s for the "
                    "header routes before %s: leave a gap between the rules' priorities",
                    nwant, below, prio ? "its rule" : "the default rule",
                    arn_from(listener, "listener/"), name);
            return -1;
        }
        at = prio ? prio - 1 : below + 1;
        json_array_foreach(op->route_want, k, x) {
            json_t *conds = prio ? conds_copy(json_object_get(rule, "Conditions"))
                                 : json_array();
            json_array_append(conds, x);
            json_array_append_new(op->creates,
                                  json_pack("{s:s, s:I, s:o}", "ListenerArn", listener,
                                            "Priority", (json_int_t)at, "Conditions", conds));
            at += prio ? -1 : 1;
        }
    }
    if (npair == 0) {
        op_fail(op, KN_EINVAL,
                "no listener rule of the load balancer of %s forwards to both the primary and "
                "the canary target groups: header routes go before such a rule",
                arn_from(op->a->tg[KN_VARIANT_PRIMARY], "targetgroup/"));
        return -1;
    }
    return 0;
}

static void routes_walked(struct op *op)
{
    if (routes_plan(op) < 0) {
        return;
    }
    op->after_weights = routes_sync;
    weights_plan(op);
}

/* A match as an http-header condition of an ALB rule into want; 0, or KN_EUNSUPPORTED or
 * KN_EINVAL with why. */
static int route_condition(const struct kn_route_match *m, json_t *want, char *why, size_t size)
{
    const char *field = m->field == KN_ROUTE_COOKIE ? "cookie" : "header";
    char value[MAX_VALUE + 8];
    int n;

    if (m->regex) {
        snprintf(why, size, "%s '%s': an ALB matches a %s by its exact value (with * and ? "
                 "wildcards), not by a regex: write 'exact'", field, m->name, field);
        return KN_EUNSUPPORTED;
    }
    if (strpbrk(m->value, "*?") || (m->field == KN_ROUTE_COOKIE && strpbrk(m->name, "*?"))) {
        snprintf(why, size, "%s '%s': '*' and '?' are wildcards in an ALB condition, an exact "
                 "value cannot hold them", field, m->name);
        return KN_EUNSUPPORTED;
    }
    if (m->field == KN_ROUTE_COOKIE) {
        n = snprintf(value, sizeof(value), "*%s=%s*", m->name, m->value);
    } else {
        n = snprintf(value, sizeof(value), "%s", m->value);
    }
    if (n < 0 || n > MAX_VALUE || strlen(m->name) > 40) {
        snprintf(why, size, "%s '%.40s': an ALB condition takes a header name of at most 40 "
                 "characters and a value of at most %d", field, m->name, MAX_VALUE);
        return KN_EINVAL;
    }
    json_array_append_new(want, json_pack("{s:s, s:{s:s, s:[s]}}", "Field", "http-header",
                                          "HttpHeaderConfig", "HttpHeaderName",
                                          m->field == KN_ROUTE_COOKIE ? "Cookie" : m->name,
                                          "Values", value));
    return 0;
}

static int ecs_set_routes(void *self, struct kn_platform_call *call,
                          const double percent[KN_VARIANT_COUNT], const struct kn_routes *routes)
{
    struct ecs *e = self;
    struct eapp *a;
    json_t *want = json_array();
    struct op *op;
    char why[512];
    int rc;

    if (routes->mirror > 0) {
        kn_platform_call_done(call, KN_EUNSUPPORTED,
                              "platform '%s' (ecs): an ALB cannot mirror requests", e->name);
        goto out;
    }
    for (size_t i = 0; i < routes->nmatches; i++) {
        if ((rc = route_condition(&routes->matches[i], want, why, sizeof(why))) < 0) {
            kn_platform_call_done(call, rc, "platform '%s' (ecs): %s", e->name, why);
            goto out;
        }
    }
    a = eapp_recall(e, call);
    if (!a) {
        if (routes->nmatches == 0 && percent[KN_VARIANT_PRIMARY] >= 100) {
            kn_platform_call_done(call, 0, NULL);
        } else {
            kn_platform_call_done(call, KN_ENOTFOUND,
                                  "platform '%s' has not deployed the app: no target groups known",
                                  e->name);
        }
        goto out;
    }
    if (!a->tg[KN_VARIANT_PRIMARY] || (routes->nmatches && !a->tg[KN_VARIANT_CANARY])) {
        kn_platform_call_done(call, KN_EINVAL, "spec.ecs.targetGroups.%s is not set",
                              a->tg[KN_VARIANT_PRIMARY] ? "canary" : "primary");
        goto out;
    }
    op = op_new(e, OP_WEIGHTS, call);
    op->a = a;
    memcpy(op->percent, percent, sizeof(op->percent));
    op->route_want = want;
    want = NULL;
    walk(op, routes_walked);
out:
    json_decref(want);
    return 0;
}

/* ---- waiting for a task set ---------------------------------------------------------------- */

static void wait_poll(struct op *op);
static void apply_stable(struct op *op);

/* Why a task set cannot run, or NULL. */
static int set_broken(const json_t *set, char *why, size_t size)
{
    const char *status = jstr(set, "status");

    if (strcmp(status, "DRAINING") == 0) {
        snprintf(why, size, "task set %s is DRAINING: it was deleted", jstr(set, "id"));
        return 1;
    }
    return 0;
}

static void wait_r(struct op *op, const struct kn_aws_result *r)
{
    const json_t *set = json_array_get(jlist(json_object_get(r->reply, "taskSets")), 0);
    const json_t *failure = json_array_get(jlist(json_object_get(r->reply, "failures")), 0);
    const char *variant = kn_variant_name(op->variant);
    long long running, computed, pending, want = -1;
    const char *stability;
    char why[512];
    long long now = (long long)uv_now(op->e->loop);

    if (!set) {
        op_fail(op, KN_EIO, "%s: task set %s is gone (%s%s%s)", variant, arn_tail(op->set_arn),
                failure ? jstr(failure, "reason") : "not listed", failure ? " " : "",
                failure ? jstr(failure, "detail") : "");
        return;
    }
    if (set_broken(set, why, sizeof(why))) {
        op_fail(op, KN_EIO, "%s: %s", variant, why);
        return;
    }
    running = jint(json_object_get(set, "runningCount"), 0);
    computed = jint(json_object_get(set, "computedDesiredCount"), -1);
    pending = jint(json_object_get(set, "pendingCount"), 0);
    stability = jstr(set, "stabilityStatus");
    if (op->desired_count >= 0) {
        want = (long long)ceil((double)op->desired_count * op->pct / 100.0 - 1e-9);
    }
    kn_platform_call_progress(op->call, "%s: %lld/%lld tasks running, %s", variant, running,
                              computed >= 0 ? computed : want, stability[0] ? stability : "?");
    if (strcmp(stability, "STEADY_STATE") == 0 && computed >= 0 && running == computed &&
        (want < 0 || computed == want)) {
        apply_stable(op);
        return;
    }
    if (now + POLL_MS >= op->wait_until) {
        snprintf(why, sizeof(why),
                 "%s: task set %s not stable in time: %lld/%lld tasks running, %lld pending, %s",
                 variant, jstr(set, "id"), running, computed >= 0 ? computed : want, pending,
                 stability[0] ? stability : "no stability status");
        if (op->own && !op->promoted) {
            /* a failed apply leaves nothing of its variant running */
            op_undo(op, KN_ETIMEDOUT, why);
        } else {
            op_fail(op, KN_ETIMEDOUT, "%s", why);
        }
        return;
    }
    op_after(op, POLL_MS, wait_poll);
}

static void wait_poll(struct op *op)
{
    json_t *p = ecs_params(op);

    json_object_set_new(p, "taskSets", json_pack("[s]", op->set_arn));
    op_call(op, KN_AWS_ECS, "DescribeTaskSets", p, wait_r);
}

static void wait_start(struct op *op)
{
    long long left = kn_platform_call_time_left(op->call) - 500;
    long long budget = op->ready_ms > 0 ? op->ready_ms : DEFAULT_READY_MS;

    if (budget > left) {
        budget = left;
    }
    op->wait_until = (long long)uv_now(op->e->loop) + (budget > 0 ? budget : 0);
    wait_poll(op);
}

/* ---- deleting task sets -------------------------------------------------------------------- */

static void delete_next(struct op *op);

static void delete_r(struct op *op, const struct kn_aws_result *r)
{
    (void)r;
    op->at++;
    delete_next(op);
}

static void delete_next(struct op *op)
{
    const char *arn = json_string_value(json_array_get(op->del_list, op->at));
    json_t *p;

    if (!arn) {
        op->at = 0;
        op->del_then(op);
        return;
    }
    kn_platform_call_progress(op->call, "deleting task set %s", arn_from(arn, "ecs-svc/"));
    p = ecs_params(op);
    json_object_set_new(p, "taskSet", json_string(arn));
    json_object_set_new(p, "force", json_true());
    op_call_tol(op, KN_AWS_ECS, "DeleteTaskSet", p, "TaskSetNotFoundException", delete_r);
}

/* Delete the task sets of list (ARNs, borrowed from op) one by one, force (a set still scaled
 * up goes too) and one already gone is fine, then then(op). */
static void delete_all(struct op *op, json_t *list, void (*then)(struct op *op))
{
    op->del_list = list;
    op->del_then = then;
    op->at = 0;
    delete_next(op);
}

/* ---- apply --------------------------------------------------------------------------------- */

static void apply_done(struct op *op);
static void apply_delete_doomed(struct op *op);
static void apply_create_set(struct op *op);
static void apply_create_set_now(struct op *op);

static const char *const set_keys[] = {"launchType", "networkConfiguration", "platformVersion",
                                       "capacityProviderStrategy", "serviceRegistries"};
static const char *const update_keys[] = {"desiredCount", "placementConstraints",
                                          "placementStrategy", "healthCheckGracePeriodSeconds",
                                          "enableECSManagedTags", "propagateTags"};

static json_t *kanaria_tags(const struct op *op, json_t *tags, int with_variant)
{
    const struct kn_app_id *id = kn_platform_call_id(op->call);

    tags = json_is_array(tags) ? json_deep_copy(tags) : json_array();
    tag_set(tags, TAG_REPOSITORY, id->repository);
    tag_set(tags, TAG_APP, id->app);
    tag_set(tags, TAG_COMMIT, op->commit);
    if (with_variant) {
        tag_set(tags, TAG_VARIANT, kn_variant_name(op->variant));
        tag_set(tags, TAG_SPEC, op->digest);
        tag_set(tags, TAG_TASKDEF, op->td_digest);
    }
    return tags;
}

static void apply_primary_set_r(struct op *op, const struct kn_aws_result *r)
{
    (void)r;
    op->promoted = 1;
    kn_platform_call_progress(op->call, "primary: task set %s is the primary",
                              arn_from(op->set_arn, "ecs-svc/"));
    apply_delete_doomed(op);
}

static void apply_finish(struct op *op)
{
    if (op->variant == KN_VARIANT_PRIMARY && op->taskdef_arn) {
        json_t *m = json_pack("{s:s, s:s}", "commit", op->commit, "taskDefinition",
                              op->taskdef_arn);
        char *text = json_dumps(m, JSON_COMPACT);
        kn_platform_call_memo_set(op->call, MEMO_TASKDEF, text);
        free(text);
        json_decref(m);
    }
    op_end(op, 0, NULL);
}

static void apply_lb_r(struct op *op, const struct kn_aws_result *r)
{
    const json_t *tg = json_array_get(jlist(json_object_get(r->reply, "TargetGroups")), 0);
    const json_t *lbs = jlist(json_object_get(tg, "LoadBalancerArns"));

    if (r->status == 0 && json_array_size(lbs) > 0) {
        set_str(&op->a->lb, arn_from(json_string_value(json_array_get(lbs, 0)), "app/"));
    }
    apply_finish(op);
}

/* Done, once the primary's load balancer is known: {{loadBalancer}} of an analysis that runs
 * before any TRAFFIC_ROUTING (or drift read) walked the rules. */
static void apply_done(struct op *op)
{
    if (op->a->lb || !op->a->tg[KN_VARIANT_PRIMARY]) {
        apply_finish(op);
        return;
    }
    op_call_tol(op, KN_AWS_ELBV2, "DescribeTargetGroups",
                json_pack("{s:[s]}", "TargetGroupArns", op->a->tg[KN_VARIANT_PRIMARY]),
                "TargetGroupNotFound", apply_lb_r);
}

static const json_t *set_by_arn(const json_t *sets, const char *arn)
{
    size_t i;
    json_t *s;

    json_array_foreach(jlist(sets), i, s) {
        if (strcmp(jstr(s, "taskSetArn"), arn) == 0) {
            return s;
        }
    }
    return NULL;
}

/* The largest weight any forward action of op->rules gives target group tg (a forward to tg
 * alone counts as 1). */
static int tg_weight(const struct op *op, const char *tg)
{
    int max = 0;
    size_t j;
    json_t *entry;

    json_array_foreach(op->rules, j, entry) {
        size_t n;
        json_t *act;
        json_array_foreach(jlist(json_object_get(json_object_get(entry, "rule"), "Actions")), n,
                           act) {
            const json_t *groups = fwd_groups(act);
            size_t g;
            json_t *grp;
            if (strcmp(jstr(act, "Type"), "forward") != 0) {
                continue;
            }
            if (!groups && strcmp(jstr(act, "TargetGroupArn"), tg) == 0 && max < 1) {
                max = 1;
            }
            json_array_foreach(jlist(groups), g, grp) {
                int w = (int)jint(json_object_get(grp, "Weight"), 1);
                if (strcmp(jstr(grp, "TargetGroupArn"), tg) == 0 && w > max) {
                    max = w;
                }
            }
        }
    }
    return max;
}

/* Of the doomed sets, keep those serving a target group that the new set does not serve and
 * that some rule still weighs; delete the others, then the apply is done. */
static void apply_doomed_checked(struct op *op)
{
    json_t *go = json_array();
    size_t i;
    json_t *arn;

    json_array_foreach(op->doomed, i, arn) {
        const json_t *set = set_by_arn(op->sets, json_string_value(arn));
        int weighted = 0;
        size_t k;
        json_t *lb;

        json_array_foreach(jlist(json_object_get(set, "loadBalancers")), k, lb) {
            const char *tg = jstr(lb, "targetGroupArn");
            if (strcmp(tg, op->a->tg[op->variant]) != 0 && tg_weight(op, tg) > 0) {
                weighted = 1;
            }
        }
        if (weighted) {
            kn_platform_call_progress(op->call,
                                      "kept task set %s: a rule still sends traffic to a target "
                                      "group only it serves",
                                      arn_from(json_string_value(arn), "ecs-svc/"));
        } else {
            json_array_append(go, arn);
        }
    }
    json_decref(op->doomed);
    op->doomed = go;
    delete_all(op, op->doomed, apply_done);
}

/* After the new set is stable (and primary): delete the sets it replaces. A set serving a
 * target group the new one does not serve waits for a look at the rules first. */
static void apply_delete_doomed(struct op *op)
{
    int lonely = 0;
    size_t i;
    json_t *arn;

    json_array_foreach(op->doomed, i, arn) {
        const json_t *set = set_by_arn(op->sets, json_string_value(arn));
        size_t k;
        json_t *lb;
        json_array_foreach(jlist(json_object_get(set, "loadBalancers")), k, lb) {
            if (strcmp(jstr(lb, "targetGroupArn"), op->a->tg[op->variant]) != 0) {
                lonely = 1;
            }
        }
    }
    if (lonely) {
        walk(op, apply_doomed_checked);
        return;
    }
    json_decref(op->rules);
    op->rules = json_array();
    apply_doomed_checked(op);
}

static void apply_stable(struct op *op)
{
    const json_t *set = set_by_arn(op->sets, op->set_arn);
    json_t *p;

    kn_platform_call_progress(op->call, "%s: task set %s is stable",
                              kn_variant_name(op->variant), arn_from(op->set_arn, "ecs-svc/"));
    if (op->variant != KN_VARIANT_PRIMARY) {
        json_array_extend(op->doomed, op->later); /* older sets of the variant not gone yet */
        apply_delete_doomed(op);
        return;
    }
    if (set && strcmp(jstr(set, "status"), "PRIMARY") == 0) {
        op->promoted = 1;
        apply_delete_doomed(op);
        return;
    }
    p = ecs_params(op);
    json_object_set_new(p, "primaryTaskSet", json_string(op->set_arn));
    op_call(op, KN_AWS_ECS, "UpdateServicePrimaryTaskSet", p, apply_primary_set_r);
}

static void apply_set_created(struct op *op, const struct kn_aws_result *r)
{
    const json_t *set = json_object_get(r->reply, "taskSet");

    set_str(&op->set_arn, jstr(set, "taskSetArn"));
    if (!op->set_arn) {
        op_fail(op, KN_EIO, "CreateTaskSet: the reply names no task set");
        return;
    }
    op->own = 1;
    kn_platform_call_progress(op->call, "%s: task set %s created at %g%%",
                              kn_variant_name(op->variant), jstr(set, "id"), op->pct);
    wait_start(op);
}

static void apply_registered(struct op *op, const struct kn_aws_result *r)
{
    const json_t *td = json_object_get(r->reply, "taskDefinition");

    set_str(&op->taskdef_arn, jstr(td, "taskDefinitionArn"));
    if (!op->taskdef_arn) {
        op_fail(op, KN_EIO, "RegisterTaskDefinition: the reply names no task definition");
        return;
    }
    kn_platform_call_progress(op->call, "%s: task definition %s registered",
                              kn_variant_name(op->variant),
                              arn_from(op->taskdef_arn, "task-definition/"));
    apply_create_set(op);
}

/* The task definition of the set about to be made: one a live task set of the service runs
 * from the same file (tag kanaria.dev/taskdef; the canary's, when its commit is promoted), else
 * a new revision. Then the set. */
static void apply_create_set(struct op *op)
{
    size_t i;
    json_t *s, *p;

    if (!op->taskdef_arn) {
        json_array_foreach(op->sets, i, s) {
            const char *h = tag_of(json_object_get(s, "tags"), TAG_TASKDEF);
            if (h && strcmp(h, op->td_digest) == 0 && jstr(s, "taskDefinition")[0] &&
                strcmp(jstr(s, "status"), "DRAINING") != 0) {
                set_str(&op->taskdef_arn, jstr(s, "taskDefinition"));
                kn_platform_call_progress(op->call, "%s: task definition %s (task set %s runs "
                                                    "it)",
                                          kn_variant_name(op->variant),
                                          arn_from(op->taskdef_arn, "task-definition/"),
                                          jstr(s, "id"));
                break;
            }
        }
    }
    if (!op->taskdef_arn) {
        p = json_deep_copy(op->td_wire);
        json_object_set_new(p, "tags", kanaria_tags(op, json_object_get(p, "tags"), 0));
        op_call(op, KN_AWS_ECS, "RegisterTaskDefinition", p, apply_registered);
        return;
    }
    apply_create_set_now(op);
}

static void apply_create_set_now(struct op *op)
{
    char token[33];
    int draining = 0;
    json_t *p;
    size_t i;
    json_t *s;

    /* a set of this externalId that was deleted since: a fresh clientToken, or ECS would
     * answer with that set again */
    json_array_foreach(jlist(op->sets), i, s) {
        if (strcmp(jstr(s, "externalId"), op->external_id) == 0) {
            draining++;
        }
    }
    client_token(token, op->a->cluster, op->a->service, op->external_id, draining);
    p = ecs_params(op);
    json_object_set_new(p, "taskDefinition", json_string(op->taskdef_arn));
    json_object_set_new(p, "externalId", json_string(op->external_id));
    json_object_set_new(p, "clientToken", json_string(token));
    json_object_set_new(p, "scale", json_pack("{s:f, s:s}", "value", op->pct, "unit",
                                              "PERCENT"));
    json_object_set_new(p, "loadBalancers", json_pack("[O]", op->set_lb));
    for (size_t k = 0; k < sizeof(set_keys) / sizeof(set_keys[0]); k++) {
        json_t *v = json_object_get(op->servicedef, set_keys[k]);
        if (v) {
            json_object_set(p, set_keys[k], v);
        }
    }
    json_object_set_new(p, "tags", kanaria_tags(op, NULL, 1));
    op_call(op, KN_AWS_ECS, "CreateTaskSet", p, apply_set_created);
}

static void apply_old_deleted(struct op *op)
{
    json_array_clear(op->later);
    apply_create_set(op);
}

/* The older sets of a canary (baseline): deleted first when their target group has no weight
 * (the service's task sets are few), else once the new set is stable. */
static void apply_old_checked(struct op *op)
{
    if (tg_weight(op, op->a->tg[op->variant]) > 0) {
        kn_platform_call_progress(op->call,
                                  "%s: the older task set goes once the new one is stable (its "
                                  "target group has weight)",
                                  kn_variant_name(op->variant));
        apply_create_set(op);
        return;
    }
    delete_all(op, op->later, apply_old_deleted);
}

/* 1 when a task set serves target group tg. */
static int set_serves(const json_t *set, const char *tg)
{
    size_t i;
    json_t *lb;

    json_array_foreach(jlist(json_object_get(set, "loadBalancers")), i, lb) {
        if (tg && strcmp(jstr(lb, "targetGroupArn"), tg) == 0) {
            return 1;
        }
    }
    return 0;
}

/* The task set this apply waits for instead of creating one: its own (the same externalId:
 * the same call after a restart), else for the primary a live primary set of the same commit
 * on the primary target group (a rollback before the primary was replaced). NULL: none. */
static const json_t *apply_own_set(const struct op *op)
{
    const json_t *found = NULL;
    size_t i;
    json_t *s;

    json_array_foreach(op->sets, i, s) {
        const json_t *tags = json_object_get(s, "tags");
        const char *variant = tag_of(tags, TAG_VARIANT);
        const char *commit = tag_of(tags, TAG_COMMIT);
        const char *digest = tag_of(tags, TAG_SPEC);
        if (strcmp(jstr(s, "status"), "DRAINING") == 0) {
            continue;
        }
        if (strcmp(jstr(s, "externalId"), op->external_id) == 0) {
            return s;
        }
        if (!found && op->variant == KN_VARIANT_PRIMARY && variant &&
            strcmp(variant, "primary") == 0 && commit && strcmp(commit, op->commit) == 0 &&
            digest && strcmp(digest, op->digest) == 0 &&
            set_serves(s, op->a->tg[KN_VARIANT_PRIMARY])) {
            found = s;
        }
    }
    return found;
}

static void apply_sets_r(struct op *op, const struct kn_aws_result *r)
{
    const json_t *own;
    size_t i;
    json_t *s;

    json_decref(op->sets);
    op->sets = json_deep_copy(jlist(json_object_get(r->reply, "taskSets")));
    json_decref(op->doomed);
    op->doomed = json_array();
    json_decref(op->later);
    op->later = json_array();
    own = apply_own_set(op);
    if (own) {
        set_str(&op->set_arn, jstr(own, "taskSetArn"));
        op->own = strcmp(jstr(own, "externalId"), op->external_id) == 0;
        /* what runs is that set's task definition, not the revision just registered */
        set_str(&op->taskdef_arn, jstr(own, "taskDefinition"));
    }
    json_array_foreach(op->sets, i, s) {
        const char *status = jstr(s, "status");
        const char *variant = tag_of(json_object_get(s, "tags"), TAG_VARIANT);
        if (strcmp(status, "DRAINING") == 0 || s == own) {
            continue;
        }
        if (op->variant == KN_VARIANT_PRIMARY) {
            if (strcmp(status, "PRIMARY") == 0 || (variant && strcmp(variant, "primary") == 0)) {
                json_array_append_new(op->doomed, json_string(jstr(s, "taskSetArn")));
            }
        } else if (variant && strcmp(variant, kn_variant_name(op->variant)) == 0 &&
                   strcmp(status, "PRIMARY") != 0) {
            json_array_append_new(op->later, json_string(jstr(s, "taskSetArn")));
        }
    }
    if (own) {
        kn_platform_call_progress(op->call, "%s: task set %s (%s) exists: waiting for it",
                                  kn_variant_name(op->variant), jstr(own, "id"),
                                  strcmp(jstr(own, "externalId"), op->external_id) == 0
                                      ? "made by this operation"
                                      : "of the same commit");
        wait_start(op);
        return;
    }
    if (op->variant != KN_VARIANT_PRIMARY && json_array_size(op->later) > 0) {
        walk(op, apply_old_checked);
        return;
    }
    apply_create_set(op);
}

static void apply_list_sets(struct op *op)
{
    json_t *p = ecs_params(op);

    json_object_set_new(p, "include", json_pack("[s]", "TAGS"));
    op_call(op, KN_AWS_ECS, "DescribeTaskSets", p, apply_sets_r);
}

static void apply_service_r(struct op *op, const struct kn_aws_result *r)
{
    const json_t *svc = json_object_get(r->reply, "service");

    if (json_object_get(svc, "desiredCount")) {
        op->desired_count = jint(json_object_get(svc, "desiredCount"), -1);
    }
    apply_list_sets(op);
}

/* The percent of the service's desiredCount a canary (baseline) of op->scale gets: a percent
 * as it is; a count (none given: one task) as the largest whole percent whose share (rounded
 * up, as ECS computes it) is that count. */
static int scale_percent(struct op *op, char *why, size_t size)
{
    long long n = op->scale.value > 0 ? (long long)ceil(op->scale.value) : 1;
    long long d = op->desired_count, p;

    if (op->variant == KN_VARIANT_PRIMARY) {
        op->pct = 100;
        return 0;
    }
    if (op->scale.percent && op->scale.value > 0) {
        op->pct = op->scale.value > 100 ? 100 : op->scale.value;
        return 0;
    }
    if (d <= 0) {
        snprintf(why, size, "the service's desiredCount is %lld: %lld task(s) cannot be a share "
                            "of it",
                 d, n);
        return -1;
    }
    p = n * 100 / d;
    while (p < 100 && (d * p + 99) / 100 < n) {
        p++;
    }
    op->pct = (double)(p > 100 ? 100 : p);
    return 0;
}

static void apply_described(struct op *op, const struct kn_aws_result *r)
{
    const json_t *svc = json_array_get(jlist(json_object_get(r->reply, "services")), 0);
    const char *status = jstr(svc, "status");
    const char *ctl = jstr(json_object_get(svc, "deploymentController"), "type");
    int exists = svc && strcmp(status, "INACTIVE") != 0;
    char why[256];
    json_t *p;

    if (exists && ctl[0] && strcmp(ctl, "EXTERNAL") != 0) {
        op_fail(op, KN_EINVAL,
                "service %s has the %s deployment controller: kanaria needs EXTERNAL, which "
                "only a new service can have",
                op->a->service, ctl);
        return;
    }
    if (exists) {
        op->desired_count = jint(json_object_get(svc, "desiredCount"), -1);
    }
    if (op->variant != KN_VARIANT_PRIMARY) {
        if (!exists) {
            op_fail(op, KN_ENOTFOUND, "service %s of cluster %s does not exist: deploy the "
                                      "primary first",
                    op->a->service, op->a->cluster);
            return;
        }
        if (scale_percent(op, why, sizeof(why)) < 0) {
            op_fail(op, KN_EINVAL, "%s", why);
            return;
        }
        apply_list_sets(op);
        return;
    }
    op->pct = 100;
    if (!exists) {
        char token[33];
        const char *key;
        json_t *v;

        client_token(token, op->a->cluster, op->a->service, kn_platform_call_token(op->call), 0);
        p = json_object();
        json_object_foreach(op->servicedef, key, v) {
            int skip = strcmp(key, "taskDefinition") == 0 || strcmp(key, "loadBalancers") == 0;
            for (size_t k = 0; k < sizeof(set_keys) / sizeof(set_keys[0]); k++) {
                skip |= strcmp(key, set_keys[k]) == 0;
            }
            if (!skip) {
                json_object_set(p, key, v);
            }
        }
        json_object_set_new(p, "cluster", json_string(op->a->cluster));
        json_object_set_new(p, "deploymentController", json_pack("{s:s}", "type", "EXTERNAL"));
        json_object_set_new(p, "clientToken", json_string(token));
        json_object_set_new(p, "tags",
                            kanaria_tags(op, json_object_get(op->servicedef, "tags"), 0));
        kn_platform_call_progress(op->call, "creating service %s", op->a->service);
        op_call(op, KN_AWS_ECS, "CreateService", p, apply_service_r);
        return;
    }
    p = ecs_params(op);
    for (size_t k = 0; k < sizeof(update_keys) / sizeof(update_keys[0]); k++) {
        json_t *v = json_object_get(op->servicedef, update_keys[k]);
        if (v) {
            json_object_set(p, update_keys[k], v);
        }
    }
    op_call(op, KN_AWS_ECS, "UpdateService", p, apply_service_r);
}


/* What the task set is made of (the task definition, its target group, the service
 * definition's task-set keys), as 12 hex digits of a SHA-256: part of its externalId and its
 * tag kanaria.dev/spec, so that a set made from other files is never taken for this one. */
static void spec_digest(struct op *op, const json_t *td)
{
    json_t *j = json_pack("{s:O, s:O, s:{}}", "taskDefinition", td, "loadBalancer", op->set_lb,
                          "service");
    char hex[65];

    for (size_t k = 0; k < sizeof(set_keys) / sizeof(set_keys[0]); k++) {
        json_t *v = json_object_get(op->servicedef, set_keys[k]);
        if (v) {
            json_object_set(json_object_get(j, "service"), set_keys[k], v);
        }
    }
    kn_json_hash(j, hex);
    snprintf(op->digest, sizeof(op->digest), "%.12s", hex);
    json_decref(j);
    kn_json_hash(td, hex);
    snprintf(op->td_digest, sizeof(op->td_digest), "%.12s", hex);
}

static int ecs_apply(void *self, struct kn_platform_call *call,
                     const struct kn_variant_spec *spec)
{
    struct ecs *e = self;
    const struct kn_app_id *id = kn_platform_call_id(call);
    const struct kn_ecs_app_options *o = spec->options;
    const json_t *td = manifest_spec(spec->manifests, KN_ECS_TASK_DEFINITION);
    const json_t *sd = manifest_spec(spec->manifests, KN_ECS_SERVICE_DEFINITION);
    const struct kn_ecs_target_group *tg;
    struct op *op;
    json_t *wire;
    const char *ctl;

    if (!o || !json_is_object(td) || !json_is_object(sd)) {
        kn_platform_call_done(call, KN_EINVAL,
                              "an ecs app needs spec.ecs, a TaskDefinition and a "
                              "ServiceDefinition");
        return 0;
    }
    if (!jstr(sd, "serviceName")[0]) {
        kn_platform_call_done(call, KN_EINVAL, "the service definition has no serviceName");
        return 0;
    }
    ctl = jstr(json_object_get(sd, "deploymentController"), "type");
    if (ctl[0] && strcmp(ctl, "EXTERNAL") != 0) {
        kn_platform_call_done(call, KN_EINVAL,
                              "the service definition's deploymentController is %s: kanaria "
                              "drives task sets, which needs EXTERNAL",
                              ctl);
        return 0;
    }
    tg = spec->variant == KN_VARIANT_CANARY     ? &o->target_groups.canary
         : spec->variant == KN_VARIANT_BASELINE ? &o->target_groups.baseline
                                                : &o->target_groups.primary;
    if (!tg->target_group_arn) {
        kn_platform_call_done(call, KN_EINVAL, "spec.ecs.targetGroups.%s is not set",
                              kn_variant_name(spec->variant));
        return 0;
    }
    op = op_new(e, OP_APPLY, call);
    op->a = eapp_learn(e, id, o, sd);
    eapp_save(call, op->a);
    op->variant = spec->variant;
    snprintf(op->commit, sizeof(op->commit), "%s", spec->commit ? spec->commit : "");
    op->scale = spec->replicas;
    op->ready_ms = spec->ready_timeout_ms;
    /* the files in the API's types (task-level cpu: 256 is sent as "256") */
    op->servicedef = kn_ecs_shape_to_wire(sd, kn_ecs_create_service_input);
    wire = kn_ecs_shape_to_wire(td, kn_ecs_register_task_definition_input);
    op->set_lb = json_pack("{s:s, s:s, s:I}", "targetGroupArn", tg->target_group_arn,
                           "containerName", tg->container_name ? tg->container_name : "",
                           "containerPort", (json_int_t)tg->container_port);
    spec_digest(op, wire);
    snprintf(op->external_id, sizeof(op->external_id), "%s-%.12s-%s",
             kn_platform_call_token(call), op->commit[0] ? op->commit : "none", op->digest);
    op->td_wire = wire;
    op_call(op, KN_AWS_ECS, "DescribeServices",
            json_pack("{s:s, s:[s], s:[s]}", "cluster", op->a->cluster, "services",
                      op->a->service, "include", "TAGS"),
            apply_described);
    return 0;
}

/* ---- remove -------------------------------------------------------------------------------- */

static void remove_wait(struct op *op);

static void remove_wait_r(struct op *op, const struct kn_aws_result *r)
{
    size_t i;
    json_t *s;
    int left = 0;
    long long running = 0;

    json_array_foreach(jlist(json_object_get(r->reply, "taskSets")), i, s) {
        long long n = jint(json_object_get(s, "runningCount"), 0) +
                      jint(json_object_get(s, "pendingCount"), 0);
        if (strcmp(jstr(s, "status"), "DRAINING") != 0 || n > 0) {
            left++;
            running += n;
        }
    }
    if (!left) {
        kn_platform_call_progress(op->call, "%s: removed", kn_variant_name(op->variant));
        op_end(op, 0, NULL);
        return;
    }
    kn_platform_call_progress(op->call, "%s: %d task set(s) draining, %lld task(s) left",
                              kn_variant_name(op->variant), left, running);
    if ((long long)uv_now(op->e->loop) + POLL_MS >= op->wait_until) {
        op_fail(op, KN_ETIMEDOUT, "%s: %d task set(s) still draining with %lld task(s)",
                kn_variant_name(op->variant), left, running);
        return;
    }
    op_after(op, POLL_MS, remove_wait);
}

static void remove_wait(struct op *op)
{
    json_t *p = ecs_params(op);

    json_object_set(p, "taskSets", op->doomed);
    op_call(op, KN_AWS_ECS, "DescribeTaskSets", p, remove_wait_r);
}

static void remove_deleted(struct op *op)
{
    if (json_array_size(op->doomed) == 0) {
        op_end(op, 0, NULL);
        return;
    }
    op->wait_until = (long long)uv_now(op->e->loop) + kn_platform_call_time_left(op->call) - 500;
    remove_wait(op);
}

static void remove_sets_r(struct op *op, const struct kn_aws_result *r)
{
    size_t i;
    json_t *s;

    json_decref(op->doomed);
    op->doomed = json_array();
    if (r->status == 0) {
        json_array_foreach(jlist(json_object_get(r->reply, "taskSets")), i, s) {
            const char *variant = tag_of(json_object_get(s, "tags"), TAG_VARIANT);
            if (variant && strcmp(variant, kn_variant_name(op->variant)) == 0 &&
                strcmp(jstr(s, "status"), "PRIMARY") != 0 &&
                strcmp(jstr(s, "status"), "DRAINING") != 0) {
                json_array_append_new(op->doomed, json_string(jstr(s, "taskSetArn")));
            }
        }
    }
    if (json_array_size(op->doomed) == 0) {
        kn_platform_call_progress(op->call, "%s: no task set to remove",
                                  kn_variant_name(op->variant));
        op_end(op, 0, NULL);
        return;
    }
    delete_all(op, op->doomed, remove_deleted);
}

static void remove_list_sets(struct op *op)
{
    json_t *p = ecs_params(op);

    json_object_set_new(p, "include", json_pack("[s]", "TAGS"));
    op_call_tol(op, KN_AWS_ECS, "DescribeTaskSets", p, "ServiceNotFoundException", remove_sets_r);
}

static void remove_checked(struct op *op)
{
    size_t j;
    json_t *entry;

    json_array_foreach(op->rules, j, entry) {
        size_t n;
        json_t *act;
        json_array_foreach(jlist(json_object_get(json_object_get(entry, "rule"), "Actions")), n,
                           act) {
            int w = action_weight(op->a, act, op->variant);
            if (w > 0) {
                char name[256];
                rule_name(entry, name, sizeof(name));
                op_fail(op, KN_EINVAL,
                        "the %s's target group still has weight %d on %s: route its traffic "
                        "away first",
                        kn_variant_name(op->variant), w, name);
                return;
            }
        }
    }
    if (op->variant == KN_VARIANT_CANARY) {
        routes_delete(op, remove_list_sets);
        return;
    }
    remove_list_sets(op);
}

static int ecs_remove(void *self, struct kn_platform_call *call, enum kn_variant v)
{
    struct ecs *e = self;
    struct eapp *a = eapp_recall(e, call);
    struct op *op;

    if (!a) {
        kn_platform_call_progress(call, "%s: nothing deployed", kn_variant_name(v));
        kn_platform_call_done(call, 0, NULL);
        return 0;
    }
    if (v == KN_VARIANT_PRIMARY) {
        kn_platform_call_done(call, KN_EUNSUPPORTED,
                              "the primary of an ecs app goes only with the app (prune)");
        return 0;
    }
    op = op_new(e, OP_REMOVE, call);
    op->a = a;
    op->variant = v;
    if (a->tg[v] && a->tg[KN_VARIANT_PRIMARY]) {
        walk(op, remove_checked);
    } else {
        op->rules = json_array();
        remove_checked(op);
    }
    return 0;
}

/* ---- remove_app ---------------------------------------------------------------------------- */

static void remove_app_forget(struct op *op, const struct kn_aws_result *r)
{
    (void)r;
    kn_platform_call_memo_set(op->call, MEMO_SERVICE, NULL);
    kn_platform_call_memo_set(op->call, MEMO_WEIGHTS, NULL);
    kn_platform_call_memo_set(op->call, MEMO_TASKDEF, NULL);
    kn_platform_call_memo_set(op->call, MEMO_ROUTES, NULL);
    kn_platform_call_progress(op->call, "service %s deleted", op->a->service);
    op_end(op, 0, NULL);
}

static void remove_app_scaled(struct op *op, const struct kn_aws_result *r)
{
    json_t *p = ecs_params(op);

    (void)r;
    json_object_set_new(p, "force", json_true());
    op_call_tol(op, KN_AWS_ECS, "DeleteService", p, "ServiceNotFoundException", remove_app_forget);
}

static void remove_app_sets_gone(struct op *op)
{
    json_t *p = ecs_params(op);

    json_object_set_new(p, "desiredCount", json_integer(0));
    op_call_tol(op, KN_AWS_ECS, "UpdateService", p, "ServiceNotFoundException", remove_app_scaled);
}

static void remove_app_sets_r(struct op *op, const struct kn_aws_result *r)
{
    size_t i;
    json_t *s;

    json_decref(op->doomed);
    op->doomed = json_array();
    if (r->status != 0) {
        /* no service: nothing runs; forget the app */
        remove_app_forget(op, r);
        return;
    }
    json_array_foreach(jlist(json_object_get(r->reply, "taskSets")), i, s) {
        if (strcmp(jstr(s, "status"), "ACTIVE") == 0) {
            json_array_append_new(op->doomed, json_string(jstr(s, "taskSetArn")));
        }
    }
    delete_all(op, op->doomed, remove_app_sets_gone);
}

static void remove_app_sets(struct op *op)
{
    json_t *p = ecs_params(op);

    kn_platform_call_progress(op->call, "removing service %s of cluster %s", op->a->service,
                              op->a->cluster);
    op_call_tol(op, KN_AWS_ECS, "DescribeTaskSets", p, "ServiceNotFoundException", remove_app_sets_r);
}

static void remove_app_routes(struct op *op)
{
    routes_delete(op, remove_app_sets);
}

/* The weights go to the primary on every matching rule first, as set_weights puts them. */
static void remove_app_walked(struct op *op)
{
    op->percent[KN_VARIANT_PRIMARY] = 100;
    op->percent[KN_VARIANT_CANARY] = 0;
    op->percent[KN_VARIANT_BASELINE] = 0;
    op->after_weights = remove_app_routes;
    weights_plan(op);
}

static int ecs_remove_app(void *self, struct kn_platform_call *call)
{
    struct ecs *e = self;
    struct eapp *a = eapp_recall(e, call);
    struct op *op;

    if (!a) {
        kn_platform_call_done(call, 0, NULL);
        return 0;
    }
    op = op_new(e, OP_REMOVE_APP, call);
    op->a = a;
    if (a->tg[KN_VARIANT_PRIMARY] && a->tg[KN_VARIANT_CANARY]) {
        walk(op, remove_app_walked);
    } else {
        remove_app_sets(op);
    }
    return 0;
}

/* ---- observe ------------------------------------------------------------------------------- */

static void observe_walked(struct op *op)
{
    struct kn_live_state *out = kn_platform_call_live(op->call);
    const struct kn_desired *d = op->desired;
    char *memo = kn_platform_call_memo_get(op->call, MEMO_TASKDEF);
    json_t *td = memo ? json_loads(memo, 0, NULL) : NULL;
    int first = 1;
    size_t i;
    json_t *s;

    free(memo);
    json_array_foreach(jlist(op->sets), i, s) {
        const char *status = jstr(s, "status");
        const char *variant = tag_of(json_object_get(s, "tags"), TAG_VARIANT);
        const char *commit = tag_of(json_object_get(s, "tags"), TAG_COMMIT);
        long long running = jint(json_object_get(s, "runningCount"), 0);
        const char *stability = jstr(s, "stabilityStatus");
        int v = strcmp(status, "PRIMARY") == 0 ? KN_VARIANT_PRIMARY
                : !variant                       ? -1
                : strcmp(variant, "canary") == 0   ? KN_VARIANT_CANARY
                : strcmp(variant, "baseline") == 0 ? KN_VARIANT_BASELINE
                                                   : -1;
        char line[512], drift[512];

        drift[0] = '\0';
        if (v >= 0 && strcmp(status, "DRAINING") != 0) {
            out->variant[v].instances += (int)running;
            out->variant[v].healthy += strcmp(stability, "STEADY_STATE") == 0 ? (int)running : 0;
            if (commit) {
                snprintf(out->variant[v].commit, sizeof(out->variant[v].commit), "%s", commit);
            }
        }
        if (v == KN_VARIANT_PRIMARY && td && d && d->commit &&
            strcmp(jstr(td, "commit"), d->commit) == 0 &&
            strcmp(jstr(s, "taskDefinition"), jstr(td, "taskDefinition")) != 0) {
            snprintf(drift, sizeof(drift), "task definition %s, kanaria set %s",
                     arn_from(jstr(s, "taskDefinition"), "task-definition/"),
                     arn_from(jstr(td, "taskDefinition"), "task-definition/"));
        }
        snprintf(line, sizeof(line), "%s, %lld/%lld running, %lld pending, %s, %s", status,
                 running, jint(json_object_get(s, "computedDesiredCount"), 0),
                 jint(json_object_get(s, "pendingCount"), 0), stability,
                 arn_from(jstr(s, "taskDefinition"), "task-definition/"));
        kn_live_state_add(out, "TaskSet", jstr(s, "id"), line, drift[0] ? drift : NULL);
    }
    json_decref(td);
    json_array_foreach(op->rules, i, s) {
        size_t k;
        json_t *act;
        json_array_foreach(jlist(json_object_get(json_object_get(s, "rule"), "Actions")), k, act) {
            int w[KN_VARIANT_COUNT], sum = 0, set[KN_VARIANT_COUNT], differs = 0;
            char name[256], line[128], drift[256];
            if (!action_is_pair(op->a, act, w)) {
                continue;
            }
            for (int v = 0; v < KN_VARIANT_COUNT; v++) {
                sum += w[v] > 0 ? w[v] : 0;
            }
            for (int v = 0; v < KN_VARIANT_COUNT; v++) {
                double pc = sum > 0 && w[v] > 0 ? 100.0 * w[v] / sum : 0;
                set[v] = d ? (int)lround(d->percent[v]) : (v == 0 ? 100 : 0);
                /* kanaria writes the percents as the weights */
                if ((w[v] >= 0 ? w[v] : 0) != set[v]) {
                    differs = 1;
                }
                if (first) {
                    out->variant[v].weight = pc;
                }
            }
            first = 0;
            rule_name(s, name, sizeof(name));
            if (w[KN_VARIANT_BASELINE] >= 0) {
                snprintf(line, sizeof(line), "weights %d/%d/%d", w[0], w[1], w[2]);
                snprintf(drift, sizeof(drift), "weights %d/%d/%d, kanaria set %d/%d/%d", w[0],
                         w[1], w[2], set[0], set[1], set[2]);
            } else {
                snprintf(line, sizeof(line), "weights %d/%d", w[0], w[1]);
                snprintf(drift, sizeof(drift), "weights %d/%d, kanaria set %d/%d", w[0], w[1],
                         set[0], set[1]);
            }
            kn_live_state_add(out, "Rule", arn_tail(jstr(json_object_get(s, "rule"), "RuleArn")),
                              line, differs ? drift : NULL);
            (void)name;
        }
    }
    /* header routes: each kanaria made, found or missing; a rule like them it did not make */
    json_array_foreach(op->route_old, i, s) {
        const char *arn = json_string_value(s);
        int found = 0;
        size_t k;
        json_t *x;
        json_array_foreach(op->route_seen, k, x) {
            found |= strcmp(jstr(json_object_get(x, "rule"), "RuleArn"), arn) == 0;
        }
        kn_live_state_add(out, "Rule", arn_tail(arn),
                          found ? "header route to the canary" : "missing",
                          found ? NULL : "header route to the canary missing, kanaria made it");
    }
    json_array_foreach(op->rules, i, s) {
        const json_t *rule = json_object_get(s, "rule");
        if (rule_is_route(op->a, rule)) {
            kn_live_state_add(out, "Rule", arn_tail(jstr(rule, "RuleArn")),
                              "header route to the canary",
                              "stray route to the canary, kanaria did not make it");
        }
    }
    if (first) {
        /* no rule holds the pair: the primary has it all as far as kanaria can tell */
        out->variant[KN_VARIANT_PRIMARY].weight = out->variant[KN_VARIANT_PRIMARY].instances ? 100 : 0;
    }
    op_end(op, 0, NULL);
}

static void observe_sets_r(struct op *op, const struct kn_aws_result *r)
{
    json_decref(op->sets);
    op->sets = json_deep_copy(jlist(json_object_get(r->reply, "taskSets")));
    if (op->a->tg[KN_VARIANT_PRIMARY]) {
        walk(op, observe_walked);
        return;
    }
    op->rules = json_array();
    observe_walked(op);
}

/* Where the service is gone: KN_ENOTFOUND, as the contract says. */
static void observe_r(struct op *op, const struct kn_aws_result *r)
{
    if (r->status) {
        op_fail(op, KN_ENOTFOUND, "service %s of cluster %s: %s", op->a->service,
                op->a->cluster, r->message ? r->message : "not found");
        return;
    }
    observe_sets_r(op, r);
}

static int ecs_observe(void *self, struct kn_platform_call *call,
                       const struct kn_desired *desired)
{
    struct ecs *e = self;
    const json_t *sd = desired ? manifest_spec(desired->manifests, KN_ECS_SERVICE_DEFINITION)
                               : NULL;
    struct eapp *a;
    struct op *op;

    if (desired && desired->options && json_is_object(sd) && jstr(sd, "serviceName")[0]) {
        a = eapp_learn(e, kn_platform_call_id(call), desired->options, sd);
    } else {
        a = eapp_recall(e, call);
    }
    if (!a) {
        kn_platform_call_done(call, KN_ENOTFOUND, "platform '%s' has not deployed the app",
                              e->name);
        return 0;
    }
    op = op_new(e, OP_OBSERVE, call);
    op->a = a;
    op->desired = desired;
    /* one DescribeTaskSets: the task sets as they are now (a DescribeServices first would be a
     * second look at them, later than the first) */
    op_call_tol(op, KN_AWS_ECS, "DescribeTaskSets",
                json_pack("{s:s, s:s, s:[s]}", "cluster", a->cluster, "service", a->service,
                          "include", "TAGS"),
                "ServiceNotFoundException|ServiceNotActiveException", observe_r);
    return 0;
}

/* ---- cancel, placeholders, life -------------------------------------------------------------- */

static void ecs_cancel(void *self, struct kn_platform_call *call)
{
    struct ecs *e = self;
    struct op *op = e->ops;

    while (op && op->call != call) {
        op = op->next;
    }
    if (!op || op->cancelled) {
        return;
    }
    op->cancelled = 1;
    if (op->inflight) {
        kn_aws_cancel(op->inflight); /* its callback ends the call, from the loop */
        return;
    }
    if (batch_cancel(op)) {
        return; /* the last call's callback ended the call */
    }
    op_after(op, 0, op_cancelled); /* a poll waits: end from the loop */
}

static void ecs_template_vars(void *self, const struct kn_app_id *id, enum kn_variant v,
                              struct kn_strmap *out)
{
    struct ecs *e = self;
    const struct eapp *a = eapp_find(e, id);

    kn_platform_vars_set(out, "targetGroup",
                         a && a->tg[v] ? arn_from(a->tg[v], "targetgroup/") : "");
    kn_platform_vars_set(out, "loadBalancer", a && a->lb ? a->lb : "");
}

static void ecs_destroy(void *self)
{
    struct ecs *e = self;

    if (!e) {
        return;
    }
    e->closing = 1;
    while (e->ops) {
        struct op *op = e->ops;
        if (op->inflight) {
            kn_aws_cancel(op->inflight); /* ends op */
        } else {
            batch_cancel(op); /* ends op when a batch was in flight */
        }
        if (e->ops == op) {
            op_cancelled(op);
        }
    }
    kn_aws_free(e->aws);
    e->aws = NULL;
    while (e->apps) {
        struct eapp *a = e->apps;
        e->apps = a->next;
        eapp_free(a);
    }
    if (e->handles == 0) {
        free(e->name);
        free(e);
    }
}

const struct kn_platform_provider_ops kn_ecs_ops = {
    .apply = ecs_apply,
    .remove = ecs_remove,
    .set_weights = ecs_set_weights,
    .set_routes = ecs_set_routes,
    .remove_app = ecs_remove_app,
    .observe = ecs_observe,
    .cancel = ecs_cancel,
    .template_vars = ecs_template_vars,
    .destroy = ecs_destroy,
};

int kn_ecs_create(void **out, const struct kn_platform_env *env, const void *config,
                  struct kn_error *err)
{
    struct ecs *e = kn_calloc(1, sizeof(*e));
    struct kn_error aerr;
    int rc = 0;

    *out = NULL;
    e->name = kn_strdup(env->name);
    e->loop = env->loop;
    snprintf(e->who, sizeof(e->who), "platform=%s", env->name);
    kn_error_clear(&aerr);
    if ((rc = kn_aws_new(&e->aws, env->loop, env->http, config, &aerr)) < 0) {
        rc = kn_error_set(err, rc, NULL, "platform '%s': %s", env->name, aerr.msg);
        goto out;
    }
    *out = e;
    e = NULL;
out:
    if (e) {
        free(e->name);
        free(e);
    }
    return rc;
}
