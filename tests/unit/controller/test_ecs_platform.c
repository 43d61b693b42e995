/*
 * The ecs platform's operations through the front end (include/kanaria/platform.h), against
 * kanaria's scripted AWS fake (tests/fakes/aws_fake.py, run with python3 on a free loopback
 * port, signatures checked). Each test starts from a fresh fake state: a cluster, a load
 * balancer with the primary (blue), canary (green) and a third (other) target group, a listener
 * whose default action and two rules (a path rule, a host-header rule) forward to the pair, a
 * rule already at 80/20, and a rule that forwards to the third target group only. What was
 * written is read back from the fake's /__log and /__state. Every wait is bounded.
 */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "cloud/aws/aws.h"
#include "kanaria/alloc.h"
#include "kanaria/config.h"
#include "kanaria/error.h"
#include "kanaria/http.h"
#include "kanaria/log.h"
#include "kanaria/platform.h"
#include "kanaria/store.h"
#include "platforms/ecs/ecs.h"
#include "testutil.h"

#define REGION "us-east-1"
#define ACCT "123456789012"
#define ELB "arn:aws:elasticloadbalancing:" REGION ":" ACCT ":"
#define LB_ARN ELB "loadbalancer/app/web/50dc6c495c0c9188"
#define TG_BLUE ELB "targetgroup/web-blue/1111111111111111"
#define TG_GREEN ELB "targetgroup/web-green/2222222222222222"
#define TG_OTHER ELB "targetgroup/other/3333333333333333"
#define LISTENER ELB "listener/app/web/50dc6c495c0c9188/f2f7dc8efc522ab2"
#define LISTENER_TLS ELB "listener/app/web/50dc6c495c0c9188/0000000000000443"
#define RULE(n) ELB "listener-rule/app/web/50dc6c495c0c9188/f2f7dc8efc522ab2/" n
#define RULE_PATH RULE("000000000000000a")
#define RULE_HOST RULE("000000000000000b")
#define RULE_RIGHT RULE("000000000000000c")
#define RULE_OTHER RULE("000000000000000d")
#define COMMIT1 "1111111111111111111111111111111111111111"
#define COMMIT2 "2222222222222222222222222222222222222222"

struct fixture {
    uv_loop_t loop;
    uv_timer_t wake;
    struct kn_http_client *http;
    struct kn_store *store; /* keeps the memos across a restart; NULL: in memory */
    struct kn_platform *p;
    pid_t fake;
    int port;
    char endpoint[64];
    long long seq; /* the fake's log is read from after this call */
};

struct outcome {
    int done;
    int status;
    char message[1024];
    char progress[4096];
};

struct seen {
    int done;
    int status;
    struct kn_live_state live;
};

static void wake_cb(uv_timer_t *t)
{
    (void)t;
}

static int run_until(struct fixture *f, const int *flag, long long ms)
{
    uint64_t end;

    uv_update_time(&f->loop);
    end = uv_now(&f->loop) + (uint64_t)ms;
    uv_timer_start(&f->wake, wake_cb, 50, 50);
    while (!*flag && uv_now(&f->loop) < end) {
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    uv_timer_stop(&f->wake);
    return *flag;
}

/* ---- the fake's control endpoints (plain HTTP/1.0 on loopback, blocking) ----------------- */

static char *fake_http(const struct fixture *f, const char *method, const char *path,
                       const char *body)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    int s = socket(AF_INET, SOCK_STREAM, 0);
    char head[256];
    size_t len = body ? strlen(body) : 0, cap = 1 << 16, n = 0;
    char *buf = kn_malloc(cap);
    const char *at;
    ssize_t r;
    char *out;

    a.sin_port = htons((uint16_t)f->port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(s, (struct sockaddr *)&a, sizeof(a)), 0);
    snprintf(head, sizeof(head),
             "%s %s HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
             "Content-Length: %zu\r\n\r\n",
             method, path, len);
    assert_true(write(s, head, strlen(head)) == (ssize_t)strlen(head));
    if (len) {
        assert_true(write(s, body, len) == (ssize_t)len);
    }
    while ((r = read(s, buf + n, cap - n - 1)) > 0) {
        n += (size_t)r;
        if (n + 1 >= cap) {
            cap *= 2;
            buf = kn_realloc(buf, cap);
        }
    }
    close(s);
    buf[n] = '\0';
    if (!strstr(buf, " 200 ")) {
        fail_msg("fake %s %s: %s", method, path, buf);
    }
    at = strstr(buf, "\r\n\r\n");
    out = kn_strdup(at ? at + 4 : "");
    free(buf);
    return out;
}

static json_t *fake_json(const struct fixture *f, const char *method, const char *path,
                         json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    char *reply = fake_http(f, method, path, text);
    json_t *j = json_loads(reply, 0, NULL);

    free(text);
    free(reply);
    json_decref(body);
    assert_non_null(j);
    return j;
}

static void fake_post(const struct fixture *f, const char *path, json_t *body)
{
    json_decref(fake_json(f, "POST", path, body));
}

/* The calls of op (a successful one when ok) since f->seq; into *first the first's params. */
static int calls_of(struct fixture *f, const char *op, int ok, json_t **first)
{
    char path[64];
    json_t *log, *c;
    size_t i;
    int n = 0;

    snprintf(path, sizeof(path), "/__log?since=%lld", f->seq);
    log = fake_json(f, "GET", path, NULL);
    json_array_foreach(json_object_get(log, "calls"), i, c) {
        if (strcmp(json_string_value(json_object_get(c, "op")), op) == 0 &&
            (!ok || json_integer_value(json_object_get(c, "status")) == 200)) {
            if (n == 0 && first) {
                *first = json_incref(json_object_get(c, "params"));
            }
            n++;
        }
    }
    json_decref(log);
    return n;
}

/* Start reading the log from now on. */
static void log_mark(struct fixture *f)
{
    char path[64];
    json_t *log, *c;
    size_t i;

    snprintf(path, sizeof(path), "/__log?since=%lld", f->seq);
    log = fake_json(f, "GET", path, NULL);
    json_array_foreach(json_object_get(log, "calls"), i, c) {
        long long seq = json_integer_value(json_object_get(c, "seq"));
        if (seq > f->seq) {
            f->seq = seq;
        }
    }
    json_decref(log);
}

/* The rule of the fake's state with that ARN. */
static json_t *state_rule(struct fixture *f, const char *arn)
{
    json_t *st = fake_json(f, "GET", "/__state", NULL), *r, *found = NULL;
    size_t i;

    json_array_foreach(json_object_get(st, "rules"), i, r) {
        if (strcmp(json_string_value(json_object_get(r, "RuleArn")), arn) == 0) {
            found = json_incref(r);
        }
    }
    json_decref(st);
    assert_non_null(found);
    return found;
}

/* The weight of tg in the first action of a rule of the state. */
static int rule_weight(const json_t *rule, const char *tg)
{
    json_t *g;
    size_t i;

    json_array_foreach(json_object_get(json_object_get(json_array_get(json_object_get(rule,
                                                                                      "Actions"),
                                                                      0),
                                                       "ForwardConfig"),
                                       "TargetGroups"),
                       i, g) {
        if (strcmp(json_string_value(json_object_get(g, "TargetGroupArn")), tg) == 0) {
            return (int)json_integer_value(json_object_get(g, "Weight"));
        }
    }
    return -1;
}

/* The task sets of the service web in the fake's state. */
static json_t *state_sets(struct fixture *f)
{
    json_t *st = fake_json(f, "GET", "/__state", NULL);
    json_t *sets = json_incref(json_object_get(json_array_get(json_object_get(st, "services"), 0),
                                               "taskSets"));

    json_decref(st);
    return sets ? sets : json_array();
}

static json_t *pair(const char *a, int wa, const char *b, int wb)
{
    return json_pack("[{s:s, s:i, s:{s:[{s:s, s:i}, {s:s, s:i}], s:{s:b, s:i}}}]", "Type",
                     "forward", "Order", 1, "ForwardConfig", "TargetGroups", "TargetGroupArn", a,
                     "Weight", wa, "TargetGroupArn", b, "Weight", wb,
                     "TargetGroupStickinessConfig", "Enabled", 1, "DurationSeconds", 300);
}

static json_t *path_cond(const char *field, const char *value)
{
    return json_pack("[{s:s, s:[s]}]", "Field", field, "Values", value);
}

/* The step between the priorities of the seeded rules (1000, 1000 + step, ...). */
static int g_step = 1;

/* The fake's state for a test: see the top. extra_rules more rules to the third target group
 * before the pair rules (so that these come on a later page). */
static void seed(struct fixture *f, int extra_rules)
{
    json_t *rules = json_array();
    json_t *cfg;

    for (int i = 0; i < extra_rules; i++) {
        char value[32];
        snprintf(value, sizeof(value), "/filler/%d", i);
        json_array_append_new(rules, json_pack("{s:s, s:i, s:o, s:[{s:s, s:i, s:s}]}",
                                               "listener", LISTENER, "priority", 100 + i,
                                               "conditions", path_cond("path-pattern", value),
                                               "actions", "Type", "forward", "Order", 1,
                                               "TargetGroupArn", TG_OTHER));
    }
    json_array_append_new(rules, json_pack("{s:s, s:s, s:i, s:o, s:o}", "listener", LISTENER,
                                           "arn", RULE_PATH, "priority", 1000 + 0 * g_step, "conditions",
                                           path_cond("path-pattern", "/api/*"), "actions",
                                           pair(TG_BLUE, 100, TG_GREEN, 0)));
    json_array_append_new(rules, json_pack("{s:s, s:s, s:i, s:o, s:o}", "listener", LISTENER,
                                           "arn", RULE_HOST, "priority", 1000 + 1 * g_step, "conditions",
                                           path_cond("host-header", "api.example.com"),
                                           "actions", pair(TG_BLUE, 100, TG_GREEN, 0)));
    json_array_append_new(rules, json_pack("{s:s, s:s, s:i, s:o, s:o}", "listener", LISTENER,
                                           "arn", RULE_RIGHT, "priority", 1000 + 2 * g_step, "conditions",
                                           path_cond("path-pattern", "/right/*"), "actions",
                                           pair(TG_BLUE, 80, TG_GREEN, 20)));
    json_array_append_new(rules, json_pack("{s:s, s:s, s:i, s:o, s:o}", "listener", LISTENER,
                                           "arn", RULE_OTHER, "priority", 1000 + 3 * g_step, "conditions",
                                           path_cond("path-pattern", "/other/*"), "actions",
                                           pair(TG_BLUE, 50, TG_OTHER, 50)));
    cfg = json_pack("{s:s, s:s, s:[{s:s, s:s}], s:[s], s:[{s:s, s:s}], "
                    "s:[{s:s, s:s, s:[s, s]}, {s:s, s:s, s:[s]}, {s:s, s:s, s:[s]}], "
                    "s:[{s:s, s:s, s:i, s:o}], s:o}",
                    "accountId", ACCT, "region", REGION, "users", "accessKeyId", "AKIDEXAMPLE",
                    "secretAccessKey", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "clusters",
                    "c1", "loadBalancers", "name", "web", "arn", LB_ARN, "targetGroups", "name",
                    /* the primary's load balancer listed twice, as moto lists it once per
                       rule that forwards to the group: walked once all the same */
                    "web-blue", "arn", TG_BLUE, "loadBalancers", "web", "web", "name", "web-green",
                    "arn", TG_GREEN, "loadBalancers", "web", "name", "other", "arn", TG_OTHER,
                    "loadBalancers", "web", "listeners", "loadBalancer", "web", "arn", LISTENER,
                    "port", 80, "defaultActions", pair(TG_BLUE, 100, TG_GREEN, 0), "rules",
                    rules);
    fake_post(f, "/__reset", json_object());
    fake_post(f, "/__setup", cfg);
    f->seq = 0;
}

/* ---- the platform --------------------------------------------------------------------------- */

static char g_blue[] = TG_BLUE, g_green[] = TG_GREEN, g_web[] = "web";

static struct kn_ecs_app_options g_options = {
    .target_groups =
        {
            .primary = {.target_group_arn = g_blue, .container_name = g_web,
                        .container_port = 80},
            .canary = {.target_group_arn = g_green, .container_name = g_web,
                       .container_port = 80},
        },
};

static void platform_open(struct fixture *f)
{
    struct kn_platform_config cfg = {0};
    struct kn_aws_config options = {0};
    struct kn_platform_deps deps = {0};
    struct kn_error err;
    char name[] = "aws", region[] = REGION;

    cfg.name = name;
    cfg.ptype = kn_platform_type_find("ecs");
    options.region = region;
    options.endpoint_url = f->endpoint;
    cfg.options = &options;
    deps.loop = &f->loop;
    deps.http = f->http;
    deps.store = f->store;
    kn_error_clear(&err);
    if (kn_platform_new(&f->p, &deps, &cfg, &err) < 0) {
        fail_msg("ecs platform: %s", err.msg);
    }
}

static void on_done(int status, const char *message, void *data)
{
    struct outcome *o = data;

    o->done = 1;
    o->status = status;
    snprintf(o->message, sizeof(o->message), "%s", message ? message : "");
}

static void on_progress(const char *line, void *data)
{
    struct outcome *o = data;
    size_t len = strlen(o->progress);

    snprintf(o->progress + len, sizeof(o->progress) - len, "%s\n", line);
}

static struct kn_platform_req req_for(struct outcome *o, long long deployment, int stage)
{
    struct kn_platform_req req = {
        .id = {.repository = "deploy", .app = "web"},
        .deployment_id = deployment,
        .stage_index = stage,
        .stage_name = "STAGE",
        .timeout_ms = 60000,
        .done = on_done,
        .progress = on_progress,
        .data = o,
    };
    memset(o, 0, sizeof(*o));
    return req;
}

/* As PipeCD's files write them: the task-level cpu and memory as numbers (strings in the API),
 * "" for an enum left out. */
static json_t *manifests(const char *image, int desired)
{
    return json_pack("[{s:s, s:{s:s}, s:{s:s, s:i, s:i, s:s, s:[{s:s, s:s, s:i, s:[{s:i}]}]}}, "
                     "{s:s, s:{s:s}, s:{s:s, s:s, s:i, s:s}}]",
                     "kind", "TaskDefinition", "metadata", "name", "web", "spec", "family", "web",
                     "cpu", 256, "memory", 512, "pidMode", "",
                     "containerDefinitions", "name", "web", "image", image, "memory", 128,
                     "portMappings", "containerPort", 80, "kind", "ServiceDefinition",
                     "metadata", "name", "web", "spec", "cluster", "c1", "serviceName", "web",
                     "desiredCount", desired, "launchType", "FARGATE");
}

/* Apply variant v; returns 0 after starting (the outcome comes in o). */
static void apply_start(struct fixture *f, enum kn_variant v, const char *commit,
                        struct kn_scale replicas, long long ready_ms, long long deployment,
                        int stage, struct outcome *o, struct kn_platform_op **op)
{
    json_t *m = manifests(commit[0] == '1' ? "nginx:1" : "nginx:2", 10);
    struct kn_platform_req req = req_for(o, deployment, stage);
    struct kn_variant_spec spec = {
        .variant = v,
        .commit = commit,
        .manifests = m,
        .options = &g_options,
        .replicas = replicas,
        .ready_timeout_ms = ready_ms,
    };

    assert_int_equal(kn_platform_apply(f->p, &req, &spec, op), 0);
    json_decref(m);
}

static void apply_ok(struct fixture *f, enum kn_variant v, const char *commit,
                     struct kn_scale replicas, long long deployment, int stage,
                     struct outcome *o)
{
    apply_start(f, v, commit, replicas, 0, deployment, stage, o, NULL);
    if (!run_until(f, &o->done, 50000)) {
        fail_msg("apply %s did not end", kn_variant_name(v));
    }
    if (o->status != 0) {
        fail_msg("apply %s: %s", kn_variant_name(v), o->message);
    }
}

static void weights(struct fixture *f, int primary, int canary, struct outcome *o)
{
    struct kn_platform_req req = req_for(o, 5, 2);
    const double pc[KN_VARIANT_COUNT] = {primary, canary, 0};

    assert_int_equal(kn_platform_set_weights(f->p, &req, pc, NULL), 0);
    assert_true(run_until(f, &o->done, 30000));
}

static void remove_variant(struct fixture *f, enum kn_variant v, struct outcome *o)
{
    struct kn_platform_req req = req_for(o, 5, 4);

    assert_int_equal(kn_platform_remove(f->p, &req, v, NULL), 0);
    assert_true(run_until(f, &o->done, 30000));
}

static void on_observed(int status, const struct kn_live_state *live, void *data)
{
    struct seen *s = data;

    s->done = 1;
    s->status = status;
    if (live) {
        kn_live_state_copy(&s->live, live);
    }
}

/* ---- fixtures ------------------------------------------------------------------------------ */

static int group_setup(void **state)
{
    struct fixture *f = kn_calloc(1, sizeof(*f));
    char script[1024], line[128];
    int fds[2];
    FILE *fp;

    kn_log_setup(getenv("KANARIA_TEST_LOG") ? KN_LOG_DEBUG : KN_LOG_OFF, KN_LOG_LOGFMT);
    snprintf(script, sizeof(script), "%s/tests/fakes/aws_fake.py", kn_test_source_dir());
    if (access("/usr/bin/python3", X_OK) != 0) {
        /* ctest's SKIP_RETURN_CODE; a CI machine has python3, so there it fails */
        printf("SKIPPED: test_ecs_platform needs /usr/bin/python3 for tests/fakes/aws_fake.py\n");
        exit(getenv("CI") && strcmp(getenv("CI"), "true") == 0 ? 1 : 77);
    }
    assert_int_equal(pipe(fds), 0);
    f->fake = fork();
    if (f->fake == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execl("/usr/bin/python3", "python3", script, "--port", "0", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    fp = fdopen(fds[0], "r");
    if (!fgets(line, sizeof(line), fp) || sscanf(line, "listening %d", &f->port) != 1) {
        fail_msg("the AWS fake did not start: %s", line);
    }
    fclose(fp);
    snprintf(f->endpoint, sizeof(f->endpoint), "http://127.0.0.1:%d", f->port);
    /* only what the test gives: no file, profile, instance metadata or endpoint of the host */
    setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", 1);
    unsetenv("AWS_SESSION_TOKEN");
    unsetenv("AWS_PROFILE");
    unsetenv("AWS_REGION");
    unsetenv("AWS_DEFAULT_REGION");
    unsetenv("AWS_ENDPOINT_URL");
    unsetenv("AWS_ENDPOINT_URL_ECS");
    unsetenv("AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING_V2");
    unsetenv("AWS_WEB_IDENTITY_TOKEN_FILE");
    setenv("AWS_CONFIG_FILE", "/nonexistent/kanaria-test", 1);
    setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/kanaria-test", 1);
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    *state = f;
    return 0;
}

static int group_teardown(void **state)
{
    struct fixture *f = *state;
    int st;

    if (f) {
        kill(f->fake, SIGTERM);
        waitpid(f->fake, &st, 0);
        free(f);
    }
    return 0;
}

static int setup(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(uv_loop_init(&f->loop), 0);
    uv_timer_init(&f->loop, &f->wake);
    assert_int_equal(kn_http_client_new(&f->http, &f->loop), 0);
    seed(f, 0);
    platform_open(f);
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    kn_platform_free(f->p);
    f->p = NULL;
    kn_store_close(f->store);
    f->store = NULL;
    g_step = 1;
    kn_http_client_close(f->http);
    uv_close((uv_handle_t *)&f->wake, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    return 0;
}

static const struct kn_scale all = {.value = 0};
static const struct kn_scale two = {.value = 2};

/* ---- the tests ----------------------------------------------------------------------------- */

/* The first sync creates the EXTERNAL service and a primary task set at 100% on the primary
 * target group with an idempotency token, waits through STABILIZING, and makes it primary. */
static void test_first_sync(void **state)
{
    struct fixture *f = *state;
    struct outcome o;
    json_t *p = NULL, *sets;

    apply_ok(f, KN_VARIANT_PRIMARY, COMMIT1, all, 1, 0, &o);
    assert_int_equal(calls_of(f, "RegisterTaskDefinition", 1, &p), 1);
    assert_string_equal(json_string_value(json_object_get(p, "cpu")), "256");
    json_decref(p);
    p = NULL;
    assert_non_null(strstr(o.progress, "/10 tasks running, STABILIZING"));
    assert_non_null(strstr(o.progress, "primary: 10/10 tasks running, STEADY_STATE"));
    /* the API's types: numbers for its strings are sent as strings, "" enums left out */
    assert_int_equal(calls_of(f, "RegisterTaskDefinition", 1, &p), 1);
    assert_true(json_is_string(json_object_get(p, "cpu")));
    assert_true(json_is_string(json_object_get(p, "memory")));
    assert_string_equal(json_string_value(json_object_get(p, "cpu")), "256");
    assert_string_equal(json_string_value(json_object_get(p, "memory")), "512");
    assert_null(json_object_get(p, "pidMode"));
    assert_true(json_is_integer(
        json_object_get(json_array_get(json_object_get(p, "containerDefinitions"), 0), "memory")));
    json_decref(p);
    p = NULL;
    assert_int_equal(calls_of(f, "CreateService", 1, &p), 1);
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(p, "deploymentController"), "type")),
                        "EXTERNAL");
    assert_true(strlen(json_string_value(json_object_get(p, "clientToken"))) <= 36);
    json_decref(p);
    p = NULL;
    assert_int_equal(calls_of(f, "CreateTaskSet", 1, &p), 1);
    assert_true(strlen(json_string_value(json_object_get(p, "clientToken"))) <= 36);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(p, "loadBalancers"), 0),
                            "targetGroupArn")),
                        TG_BLUE);
    assert_true(json_real_value(json_object_get(json_object_get(p, "scale"), "value")) == 100);
    json_decref(p);
    assert_int_equal(calls_of(f, "UpdateServicePrimaryTaskSet", 1, NULL), 1);
    sets = state_sets(f);
    assert_int_equal(json_array_size(sets), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(sets, 0), "status")),
                        "PRIMARY");
    json_decref(sets);

    /* a second primary rollout replaces the primary set and deletes the old one */
    log_mark(f);
    apply_ok(f, KN_VARIANT_PRIMARY, COMMIT2, all, 2, 0, &o);
    assert_int_equal(calls_of(f, "UpdateService", 1, NULL), 1);
    assert_int_equal(calls_of(f, "CreateTaskSet", 1, NULL), 1);
    assert_int_equal(calls_of(f, "DeleteTaskSet", 1, NULL), 1);
}

/* A canary of 2 of 10 tasks is a task set at 20%; 80/20 goes on the default action and on the
 * two rules holding the pair at 100/0; the rule already at 80/20 and the rule to a third target
 * group are not written; the stickiness stays as it was. Setting it again writes nothing. */
static void test_canary_and_weights(void **state)
{
    struct fixture *f = *state;
    struct outcome o;
    json_t *p = NULL, *r;
    int n;

    apply_ok(f, KN_VARIANT_PRIMARY, COMMIT1, all, 1, 0, &o);
    log_mark(f);
    apply_ok(f, KN_VARIANT_CANARY, COMMIT2, two, 5, 1, &o);
    assert_int_equal(calls_of(f, "CreateTaskSet", 1, &p), 1);
    assert_true(json_real_value(json_object_get(json_object_get(p, "scale"), "value")) == 20);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(p, "loadBalancers"), 0),
                            "targetGroupArn")),
                        TG_GREEN);
    json_decref(p);
    p = NULL;

    log_mark(f);
    weights(f, 80, 20, &o);
    if (o.status != 0) {
        fail_msg("weights: %s", o.message);
    }
    assert_int_equal(calls_of(f, "ModifyListener", 1, &p), 1);
    assert_null(json_object_get(p, "Conditions"));
    json_decref(p);
    n = calls_of(f, "ModifyRule", 1, NULL);
    assert_int_equal(n, 2);
    {
        json_t *log = fake_json(f, "GET", "/__log", NULL), *c;
        size_t i;
        json_array_foreach(json_object_get(log, "calls"), i, c) {
            const char *arn = json_string_value(
                json_object_get(json_object_get(c, "params"), "RuleArn"));
            if (strcmp(json_string_value(json_object_get(c, "op")), "ModifyRule") != 0) {
                continue;
            }
            assert_non_null(arn);
            assert_true(strcmp(arn, RULE_PATH) == 0 || strcmp(arn, RULE_HOST) == 0);
            assert_null(json_object_get(json_object_get(c, "params"), "Conditions"));
        }
        json_decref(log);
    }
    r = state_rule(f, RULE_PATH);
    assert_int_equal(rule_weight(r, TG_BLUE), 80);
    assert_int_equal(rule_weight(r, TG_GREEN), 20);
    /* the stickiness as it was read */
    assert_true(json_is_true(json_object_get(
        json_object_get(json_object_get(json_array_get(json_object_get(r, "Actions"), 0),
                                        "ForwardConfig"),
                        "TargetGroupStickinessConfig"),
        "Enabled")));
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(json_object_get(json_array_get(
                                                             json_object_get(r, "Actions"), 0),
                                                         "ForwardConfig"),
                                         "TargetGroupStickinessConfig"),
                         "DurationSeconds")),
                     300);
    json_decref(r);
    r = state_rule(f, RULE_OTHER);
    assert_int_equal(rule_weight(r, TG_BLUE), 50);
    assert_int_equal(rule_weight(r, TG_OTHER), 50);
    json_decref(r);

    /* the same weights again: nothing is written */
    log_mark(f);
    weights(f, 80, 20, &o);
    assert_int_equal(o.status, 0);
    assert_int_equal(calls_of(f, "ModifyListener", 0, NULL), 0);
    assert_int_equal(calls_of(f, "ModifyRule", 0, NULL), 0);

    /* the canary's commit promoted: its task definition is reused, not registered again */
    log_mark(f);
    apply_ok(f, KN_VARIANT_PRIMARY, COMMIT2, all, 5, 3, &o);
    assert_int_equal(calls_of(f, "RegisterTaskDefinition", 0, NULL), 0);
    assert_int_equal(calls_of(f, "CreateTaskSet", 1, &p), 1);
    assert_string_equal(json_string_value(json_object_get(p, "taskDefinition")),
                        "arn:aws:ecs:" REGION ":" ACCT ":task-definition/web:2");
    json_decref(p);
}

/* The rule holding the pair is on the second page of DescribeRules (the fake's pages hold 400
 * rules): it is found and written. */
static void test_rules_paginated(void **state)
{
    struct fixture *f = *state;
    struct outcome o;
    json_t *r;

    seed(f, 410);
    apply_ok(f, KN_VARIANT_PRIMARY, COMMIT1, all, 1, 0, &o);
    log_mark(f);
    weights(f, 90, 10, &o);
    if (o.status != 0) {
        fail_msg("weights: %s", o.message);
    }
    assert_true(calls_of(f, "DescribeRules", 1, NULL) >= 2);
    r = state_rule(f, RULE_HOST);
    assert_int_equal(rule_weight(r, TG_GREEN), 10);
    json_decref(r);
}

/* kanaria stops during a canary's wait (as after a kill -9, nothing of the call is kept); a
 * new platform asked the same operation finds the task set by its externalId and waits for
 * it: one CreateTaskSet in all. */
static void test_restart_idempotent(void **state)
{
    struct fixture *f = *state;
    struct outcome o;
    json_t *sets, *s;
    size_t i;
    int canaries = 0;

    apply_ok(f, KN_VARIANT_PRIMARY, COMMIT1, all, 1, 0, &o);
    fake_post(f, "/__faults", json_pack("{s:{s:i}}", "newTaskSets", "pollsUntilSteady", 4));
    log_mark(f);
    apply_start(f, KN_VARIANT_CANARY, COMMIT2, two, 0, 5, 1, &o, NULL);
    for (int k = 0; k < 100 && calls_of(f, "CreateTaskSet", 1, NULL) == 0; k++) {
        int never = 0;
        run_until(f, &never, 100);
    }
    assert_int_equal(calls_of(f, "CreateTaskSet", 1, NULL), 1);
    assert_false(o.done);
    kn_platform_free(f->p);
    assert_true(run_until(f, &o.done, 5000));
    assert_int_equal(o.status, KN_ECANCELLED);

    platform_open(f);
    apply_ok(f, KN_VARIANT_CANARY, COMMIT2, two, 5, 1, &o);
    assert_non_null(strstr(o.progress, "(made by this operation) exists: waiting for it"));
    assert_int_equal(calls_of(f, "CreateTaskSet", 0, NULL), 1);
    sets = state_sets(f);
    json_array_foreach(sets, i, s) {
        canaries += strcmp(json_string_value(json_object_get(s, "status")), "ACTIVE") == 0;
    }
    assert_int_equal(canaries, 1);
    json_decref(sets);
}

/* A rollback before the primary was replaced: the primary's task set of the last good commit
 * runs, so it is kept (no new task set), and observe shows no drift of its task definition. */
static void test_rollback_keeps_primary(void **state)
{
    struct fixture *f = *state;
    struct outcome o;
    struct seen s = {0};
    struct kn_app_id id = {.repository = "deploy", .app = "web"};
    struct kn_desired d = {.commit = COMMIT1, .percent = {100, 0, 0}};
    json_t *m = manifests("nginx:1", 10);

    apply_ok(f, KN_VARIANT_PRIMARY, COMMIT1, all, 1, 0, &o);
    apply_ok(f, KN_VARIANT_CANARY, COMMIT2, two, 5, 1, &o);
    log_mark(f);
    apply_ok(f, KN_VARIANT_PRIMARY, COMMIT1, all, 5, 9, &o);
    assert_non_null(strstr(o.progress, "(of the same commit) exists: waiting for it"));
    assert_int_equal(calls_of(f, "CreateTaskSet", 0, NULL), 0);
    assert_int_equal(calls_of(f, "DeleteTaskSet", 0, NULL), 0);
    d.manifests = m;
    d.options = &g_options;
    assert_int_equal(kn_platform_observe(f->p, &id, &d, 20000, on_observed, &s), 0);
    assert_true(run_until(f, &s.done, 25000));
    assert_int_equal(s.status, 0);
    for (size_t i = 0; i < s.live.nresources; i++) {
        if (strcmp(s.live.resources[i].kind, "TaskSet") == 0 && s.live.resources[i].drift) {
            fail_msg("%s %s: %s", s.live.resources[i].kind, s.live.resources[i].name,
                     s.live.resources[i].drift);
        }
    }
    kn_live_state_release(&s.live);
    json_decref(m);
}

/* A task set that never gets steady fails the apply at its ready timeout, with the counts,
 * and is deleted. */
static void test_never_steady(void **state)
{
    struct fixture *f = *state;
    struct outcome o;
    json_t *sets, *s;
    size_t i;

    apply_ok(f, KN_VARIANT_PRIMARY, COMMIT1, all, 1, 0, &o);
    fake_post(f, "/__faults", json_pack("{s:{s:b, s:i}}", "newTaskSets", "neverSteady", 1,
                                        "runningCap", 1));
    apply_start(f, KN_VARIANT_CANARY, COMMIT2, two, 5000, 5, 1, &o, NULL);
    assert_true(run_until(f, &o.done, 20000));
    assert_int_equal(o.status, KN_ETIMEDOUT);
    assert_non_null(strstr(o.message, "1/2 tasks running, 1 pending, STABILIZING"));
    /* a failed apply leaves nothing of its variant running */
    assert_non_null(strstr(o.message, "was deleted"));
    sets = state_sets(f);
    json_array_foreach(sets, i, s) {
        assert_string_not_equal(json_string_value(json_object_get(s, "status")), "ACTIVE");
    }
    json_decref(sets);
}

/* Throttled calls are retried: the apply succeeds. */
static void test_throttled(void **state)
{
    struct fixture *f = *state;
    struct outcome o;
    json_t *log, *c;
    size_t i;
    int throttled = 0;

    fake_post(f, "/__faults", json_pack("{s:[{s:s, s:i, s:i}, {s:s, s:i, s:i}]}", "throttle",
                                        "op", "DescribeTaskSets", "from", 1, "to", 1, "op",
                                        "DescribeRules", "from", 1, "to", 1));
    apply_ok(f, KN_VARIANT_PRIMARY, COMMIT1, all, 1, 0, &o);
    weights(f, 100, 0, &o);
    assert_int_equal(o.status, 0);
    log = fake_json(f, "GET", "/__log", NULL);
    json_array_foreach(json_object_get(log, "calls"), i, c) {
        throttled += json_is_string(json_object_get(c, "fault"));
    }
    json_decref(log);
    assert_int_equal(throttled, 2);
}

/* The writes of one set_weights of the calls since f->seq, in the order the fake logged them. */
static json_t *weight_writes(struct fixture *f)
{
    char path[64];
    json_t *log, *c, *out = json_array();
    size_t i;

    snprintf(path, sizeof(path), "/__log?since=%lld", f->seq);
    log = fake_json(f, "GET", path, NULL);
    json_array_foreach(json_object_get(log, "calls"), i, c) {
        const char *op = json_string_value(json_object_get(c, "op"));
        if (strcmp(op, "ModifyRule") == 0 || strcmp(op, "ModifyListener") == 0) {
            json_array_append(out, c);
        }
    }
    json_decref(log);
    return out;
}

/* The weight writes of one set_weights go out together: with each answer held 400 ms by the
 * fake, the three writes (the default action and the two rules) were all in flight at once. A
 * failed write among four fails the call with its words while the others are made; the retry
 * writes only the rule left behind. */
static void test_weights_parallel(void **state)
{
    struct fixture *f = *state;
    struct outcome o;
    json_t *w, *r;
    int behind = 0;

    apply_ok(f, KN_VARIANT_PRIMARY, COMMIT1, all, 1, 0, &o);
    fake_post(f, "/__faults", json_pack("{s:[{s:s, s:i}, {s:s, s:i}]}", "delays", "op",
                                        "ModifyRule", "ms", 400, "op", "ModifyListener", "ms",
                                        400));
    log_mark(f);
    weights(f, 80, 20, &o);
    if (o.status != 0) {
        fail_msg("weights: %s", o.message);
    }
    w = weight_writes(f);
    assert_int_equal(json_array_size(w), 3);
    for (size_t i = 0; i < 3; i++) {
        for (size_t j = 0; j < 3; j++) {
            const json_t *a = json_array_get(w, i), *b = json_array_get(w, j);
            /* each began before every other one ended: none waited for another */
            assert_true(json_number_value(json_object_get(a, "start")) <
                        json_number_value(json_object_get(b, "end")));
        }
    }
    json_decref(w);

    /* one ModifyRule refused (whichever comes first to the fake) */
    fake_post(f, "/__faults",
              json_pack("{s:[], s:[{s:s, s:i, s:i, s:i, s:s, s:s}]}", "delays", "errors", "op",
                        "ModifyRule", "from", 1, "to", 1, "status", 400, "code", "AccessDenied",
                        "message", "not authorized to perform elasticloadbalancing:ModifyRule"));
    log_mark(f);
    weights(f, 50, 50, &o);
    assert_int_equal(o.status, KN_EIO);
    if (!strstr(o.message, "ModifyRule of rule ") || !strstr(o.message, "AccessDenied") ||
        !strstr(o.message, "1 of 4 weight write(s) failed")) {
        fail_msg("message: %s", o.message);
    }
    w = weight_writes(f);
    assert_int_equal(json_array_size(w), 4); /* the failed one did not stop the others */
    json_decref(w);
    for (size_t i = 0; i < 3; i++) {
        r = state_rule(f, i == 0 ? RULE_PATH : i == 1 ? RULE_HOST : RULE_RIGHT);
        behind += rule_weight(r, TG_GREEN) == 20;
        json_decref(r);
    }
    assert_int_equal(behind, 1);

    /* the retry: the rule left behind is written, the others are right already */
    fake_post(f, "/__faults", json_pack("{s:[]}", "errors"));
    log_mark(f);
    weights(f, 50, 50, &o);
    if (o.status != 0) {
        fail_msg("retry: %s", o.message);
    }
    w = weight_writes(f);
    assert_int_equal(json_array_size(w), 1);
    json_decref(w);
    for (size_t i = 0; i < 3; i++) {
        r = state_rule(f, i == 0 ? RULE_PATH : i == 1 ? RULE_HOST : RULE_RIGHT);
        assert_int_equal(rule_weight(r, TG_GREEN), 50);
        json_decref(r);
    }
}

/* After a first walk of the rules, the next one reads the target group, the listeners and the
 * rules in one round trip; a listener added since then is found all the same (the walk goes on
 * call after call from there), one gone is no error, and a rule changed by hand is read afresh
 * (here put at the weights asked for: it is not written). */
static void test_walk_one_round_trip(void **state)
{
    struct fixture *f = *state;
    struct outcome o;
    json_t *log, *c, *r;
    size_t i;
    int n = 0, found = 0, rules = 0;

    apply_ok(f, KN_VARIANT_PRIMARY, COMMIT1, all, 1, 0, &o);
    weights(f, 80, 20, &o);
    assert_int_equal(o.status, 0);

    fake_post(f, "/__faults",
              json_pack("{s:[{s:s, s:i}, {s:s, s:i}, {s:s, s:i}]}", "delays", "op",
                        "DescribeTargetGroups", "ms", 300, "op", "DescribeListeners", "ms", 300,
                        "op", "DescribeRules", "ms", 300));
    log_mark(f);
    weights(f, 70, 30, &o);
    assert_int_equal(o.status, 0);
    {
        char path[64];
        json_t *reads = json_array();
        snprintf(path, sizeof(path), "/__log?since=%lld", f->seq);
        log = fake_json(f, "GET", path, NULL);
        json_array_foreach(json_object_get(log, "calls"), i, c) {
            if (strncmp(json_string_value(json_object_get(c, "op")), "Describe", 8) == 0) {
                json_array_append(reads, c);
            }
        }
        json_decref(log);
        assert_int_equal(json_array_size(reads), 3);
        for (size_t a = 0; a < 3; a++) {
            for (size_t b = 0; b < 3; b++) {
                assert_true(json_number_value(json_object_get(json_array_get(reads, a),
                                                              "start")) <
                            json_number_value(json_object_get(json_array_get(reads, b), "end")));
            }
        }
        json_decref(reads);
    }

    /* a rule put back by hand, and a listener added, both forwarding to the pair */
    fake_post(f, "/__faults", json_pack("{s:[]}", "delays"));
    fake_post(f, "/__tamper", json_pack("{s:[{s:s, s:o}]}", "rules", "ruleArn", RULE_PATH,
                                        "actions", pair(TG_BLUE, 60, TG_GREEN, 40)));
    fake_post(f, "/__setup", json_pack("{s:[{s:s, s:s, s:i, s:o}]}", "listeners",
                                       "loadBalancer", "web", "arn", LISTENER_TLS, "port", 443,
                                       "defaultActions", pair(TG_BLUE, 100, TG_GREEN, 0)));
    log_mark(f);
    weights(f, 60, 40, &o);
    if (o.status != 0) {
        fail_msg("weights: %s", o.message);
    }
    log = fake_json(f, "GET", "/__log", NULL);
    json_array_foreach(json_object_get(log, "calls"), i, c) {
        const char *arn = json_string_value(
            json_object_get(json_object_get(c, "params"), "ListenerArn"));
        const char *rule = json_string_value(
            json_object_get(json_object_get(c, "params"), "RuleArn"));
        if (json_integer_value(json_object_get(c, "seq")) <= f->seq) {
            continue;
        }
        if (strcmp(json_string_value(json_object_get(c, "op")), "ModifyListener") == 0) {
            n++;
            found += arn && strcmp(arn, LISTENER_TLS) == 0;
        }
        if (strcmp(json_string_value(json_object_get(c, "op")), "ModifyRule") == 0) {
            rules++;
            assert_string_not_equal(rule, RULE_PATH);
        }
    }
    json_decref(log);
    assert_int_equal(n, 2);
    assert_int_equal(found, 1);
    assert_int_equal(rules, 2); /* the host rule and the one at 80/20 at first */
    r = state_rule(f, RULE_PATH);
    assert_int_equal(rule_weight(r, TG_GREEN), 40);
    json_decref(r);

    /* that listener gone: its DescribeRules is refused (ListenerNotFound), and the walk goes on
     * call after call without it */
    fake_post(f, "/__tamper", json_pack("{s:[{s:s, s:b}]}", "listeners", "listenerArn",
                                        LISTENER_TLS, "delete", 1));
    log_mark(f);
    weights(f, 50, 50, &o);
    if (o.status != 0) {
        fail_msg("weights after a listener went: %s", o.message);
    }
    assert_int_equal(calls_of(f, "ModifyListener", 1, NULL), 1);
    r = state_rule(f, RULE_PATH);
    assert_int_equal(rule_weight(r, TG_GREEN), 50);
    json_decref(r);
}

/* CANARY_CLEAN is refused while the canary's target group has weight; with 100/0 it removes
 * the canary's task set and waits until it drained. */
static void test_clean_after_weights(void **state)
{
    struct fixture *f = *state;
    struct outcome o;
    json_t *sets, *s;
    size_t i;

    apply_ok(f, KN_VARIANT_PRIMARY, COMMIT1, all, 1, 0, &o);
    apply_ok(f, KN_VARIANT_CANARY, COMMIT2, two, 5, 1, &o);
    weights(f, 80, 20, &o);
    assert_int_equal(o.status, 0);
    log_mark(f);
    remove_variant(f, KN_VARIANT_CANARY, &o);
    assert_int_equal(o.status, KN_EINVAL);
    assert_non_null(strstr(o.message, "weight 20"));
    assert_int_equal(calls_of(f, "DeleteTaskSet", 0, NULL), 0);

    weights(f, 100, 0, &o);
    assert_int_equal(o.status, 0);
    remove_variant(f, KN_VARIANT_CANARY, &o);
    if (o.status != 0) {
        fail_msg("remove: %s", o.message);
    }
    assert_int_equal(calls_of(f, "DeleteTaskSet", 1, NULL), 1);
    sets = state_sets(f);
    json_array_foreach(sets, i, s) {
        assert_string_not_equal(json_string_value(json_object_get(s, "status")), "ACTIVE");
    }
    json_decref(sets);
    /* removing what is gone is done at once */
    log_mark(f);
    remove_variant(f, KN_VARIANT_CANARY, &o);
    assert_int_equal(o.status, 0);
    assert_int_equal(calls_of(f, "DeleteTaskSet", 0, NULL), 0);
}

/* A weight changed behind kanaria's back shows as drift; the task sets are listed. */
static void test_observe_drift(void **state)
{
    struct fixture *f = *state;
    struct outcome o;
    struct seen s = {0};
    struct kn_app_id id = {.repository = "deploy", .app = "web"};
    struct kn_desired d = {.commit = COMMIT1, .percent = {80, 20, 0}};
    int drift = 0, tasksets = 0;
    json_t *m = manifests("nginx:1", 10);
    struct kn_strmap vars = {0};

    apply_ok(f, KN_VARIANT_PRIMARY, COMMIT1, all, 1, 0, &o);
    apply_ok(f, KN_VARIANT_CANARY, COMMIT2, two, 5, 1, &o);
    weights(f, 80, 20, &o);
    assert_int_equal(o.status, 0);
    fake_post(f, "/__tamper", json_pack("{s:[{s:s, s:o}]}", "rules", "ruleArn", RULE_PATH,
                                        "actions", pair(TG_BLUE, 100, TG_GREEN, 0)));
    d.manifests = m;
    d.options = &g_options;
    assert_int_equal(kn_platform_observe(f->p, &id, &d, 20000, on_observed, &s), 0);
    assert_true(run_until(f, &s.done, 25000));
    assert_int_equal(s.status, 0);
    for (size_t i = 0; i < s.live.nresources; i++) {
        const struct kn_live_resource *r = &s.live.resources[i];
        if (strcmp(r->kind, "TaskSet") == 0) {
            tasksets++;
        }
        if (strcmp(r->kind, "Rule") == 0 && r->drift) {
            assert_string_equal(r->drift, "weights 100/0, kanaria set 80/20");
            assert_string_equal(r->name, "000000000000000a");
            drift++;
        }
    }
    assert_int_equal(drift, 1);
    assert_int_equal(tasksets, 2);
    assert_int_equal(s.live.variant[KN_VARIANT_PRIMARY].instances, 10);
    assert_int_equal(s.live.variant[KN_VARIANT_CANARY].instances, 2);
    assert_string_equal(s.live.variant[KN_VARIANT_CANARY].commit, COMMIT2);
    kn_live_state_release(&s.live);
    json_decref(m);

    /* the placeholders of analysis queries, from what the walk of the rules saw */
    kn_platform_template_vars(f->p, &id, KN_VARIANT_CANARY, &vars);
    for (size_t i = 0; i < vars.count; i++) {
        if (strcmp(vars.keys[i], "targetGroup") == 0) {
            assert_string_equal(vars.values[i], "targetgroup/web-green/2222222222222222");
        }
        if (strcmp(vars.keys[i], "loadBalancer") == 0) {
            assert_string_equal(vars.values[i], "app/web/50dc6c495c0c9188");
        }
    }
    kn_platform_vars_release(&vars);
}

/* {{loadBalancer}} is known once the app is applied, before any traffic routing: an analysis
 * may run right after CANARY_ROLLOUT. */
static void test_load_balancer_after_apply(void **state)
{
    struct fixture *f = *state;
    struct outcome o;
    struct kn_app_id id = {.repository = "deploy", .app = "web"};
    struct kn_strmap vars = {0};
    int found = 0;

    apply_ok(f, KN_VARIANT_PRIMARY, COMMIT1, all, 1, 0, &o);
    kn_platform_template_vars(f->p, &id, KN_VARIANT_PRIMARY, &vars);
    for (size_t i = 0; i < vars.count; i++) {
        if (strcmp(vars.keys[i], "loadBalancer") == 0) {
            assert_string_equal(vars.values[i], "app/web/50dc6c495c0c9188");
            found = 1;
        }
    }
    assert_true(found);
    kn_platform_vars_release(&vars);
}

/* A cancel during a stability wait ends the apply soon with KN_ECANCELLED, its task set
 * deleted. */
static void test_cancel_wait(void **state)
{
    struct fixture *f = *state;
    struct outcome o;
    struct kn_platform_op *op = NULL;
    json_t *sets, *s;
    size_t i;
    int draining = 0;

    apply_ok(f, KN_VARIANT_PRIMARY, COMMIT1, all, 1, 0, &o);
    fake_post(f, "/__faults", json_pack("{s:{s:b}}", "newTaskSets", "neverSteady", 1));
    apply_start(f, KN_VARIANT_CANARY, COMMIT2, two, 60000, 5, 1, &o, &op);
    for (int k = 0; k < 100 && !strstr(o.progress, "STABILIZING"); k++) {
        int never = 0;
        run_until(f, &never, 100);
    }
    assert_non_null(strstr(o.progress, "STABILIZING"));
    assert_false(o.done);
    kn_platform_cancel(op);
    assert_true(run_until(f, &o.done, 5000));
    assert_int_equal(o.status, KN_ECANCELLED);
    /* nothing of the cancelled canary runs on: its task set is draining */
    sets = state_sets(f);
    json_array_foreach(sets, i, s) {
        if (strcmp(json_string_value(json_object_get(s, "status")), "PRIMARY") != 0) {
            assert_string_equal(json_string_value(json_object_get(s, "status")), "DRAINING");
            draining++;
        }
    }
    assert_int_equal(draining, 1);
    json_decref(sets);
}


/* ---- header routes ------------------------------------------------------------------------- */

static const struct kn_route_match g_matches[] = {
    {.field = KN_ROUTE_HEADER, .name = "X-Canary", .value = "always"},
    {.field = KN_ROUTE_COOKIE, .name = "tester", .value = "alice"},
};

static void routes(struct fixture *f, int primary, int canary, const struct kn_route_match *m,
                   size_t n, struct outcome *o)
{
    struct kn_platform_req req = req_for(o, 5, 2);
    const double pc[KN_VARIANT_COUNT] = {primary, canary, 0};
    const struct kn_routes r = {.matches = m, .nmatches = n};

    assert_int_equal(kn_platform_set_routes(f->p, &req, pc, &r, NULL), 0);
    assert_true(run_until(f, &o->done, 30000));
}

/* The rules of the fake's state that forward to the canary's target group alone. */
static json_t *state_routes(struct fixture *f)
{
    json_t *st = fake_json(f, "GET", "/__state", NULL), *r, *out = json_array();
    size_t i;

    json_array_foreach(json_object_get(st, "rules"), i, r) {
        const json_t *groups = json_object_get(
            json_object_get(json_array_get(json_object_get(r, "Actions"), 0), "ForwardConfig"),
            "TargetGroups");
        if (json_array_size(groups) == 1 && rule_weight(r, TG_GREEN) > 0) {
            json_array_append(out, r);
        }
    }
    json_decref(st);
    return out;
}

/* The route of state_routes at priority prio, or NULL. */
static const json_t *route_at(const json_t *list, int prio)
{
    size_t i;
    json_t *r;

    json_array_foreach(list, i, r) {
        if (atoi(json_string_value(json_object_get(r, "Priority"))) == prio) {
            return r;
        }
    }
    return NULL;
}

/* The http-header condition of a rule: its name and first value. */
static void header_cond(const json_t *rule, const char **name, const char **value)
{
    size_t i;
    json_t *c;

    *name = *value = NULL;
    json_array_foreach(json_object_get(rule, "Conditions"), i, c) {
        const json_t *hc = json_object_get(c, "HttpHeaderConfig");
        if (hc) {
            *name = json_string_value(json_object_get(hc, "HttpHeaderName"));
            *value = json_string_value(json_array_get(json_object_get(hc, "Values"), 0));
        }
    }
}

/* A header and a cookie match: one rule per match before each rule holding the pair (with its
 * conditions), and after every rule for the default action; all to primary deletes them. */
static void test_routes_created_and_deleted(void **state)
{
    struct fixture *f = *state;
    struct outcome o;
    json_t *list, *rule;
    const json_t *r;
    const char *name, *value;

    g_step = 10;
    seed(f, 0);
    apply_ok(f, KN_VARIANT_PRIMARY, COMMIT1, all, 1, 0, &o);
    apply_ok(f, KN_VARIANT_CANARY, COMMIT2, two, 5, 1, &o);
    log_mark(f);
    routes(f, 90, 10, g_matches, 2, &o);
    if (o.status != 0) {
        fail_msg("set_routes: %s", o.message);
    }
    /* the pair is on the default action and the rules at 1000, 1010, 1020 */
    assert_int_equal(calls_of(f, "CreateRule", 1, NULL), 8);
    list = state_routes(f);
    assert_int_equal(json_array_size(list), 8);
    r = route_at(list, 999);
    assert_non_null(r);
    header_cond(r, &name, &value);
    assert_string_equal(name, "X-Canary");
    assert_string_equal(value, "always");
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(r, "Conditions"), 0), "Field")),
                        "path-pattern");
    r = route_at(list, 998);
    assert_non_null(r);
    header_cond(r, &name, &value);
    assert_string_equal(name, "Cookie");
    assert_string_equal(value, "*tester=alice*");
    assert_non_null(route_at(list, 1009));
    assert_non_null(route_at(list, 1019));
    r = route_at(list, 1031); /* after the last rule (1030), for the default action */
    assert_non_null(r);
    assert_int_equal(json_array_size(json_object_get(r, "Conditions")), 1);
    assert_non_null(route_at(list, 1032));
    json_decref(list);
    rule = state_rule(f, RULE_PATH);
    assert_int_equal(rule_weight(rule, TG_GREEN), 10);
    json_decref(rule);

    /* later weights keep the routes */
    log_mark(f);
    weights(f, 50, 50, &o);
    assert_int_equal(o.status, 0);
    assert_int_equal(calls_of(f, "DeleteRule", 0, NULL), 0);
    list = state_routes(f);
    assert_int_equal(json_array_size(list), 8);
    json_decref(list);

    /* rollback (or promotion): all to the primary, no route left */
    log_mark(f);
    weights(f, 100, 0, &o);
    if (o.status != 0) {
        fail_msg("weights 100/0: %s", o.message);
    }
    assert_int_equal(calls_of(f, "DeleteRule", 1, NULL), 8);
    list = state_routes(f);
    assert_int_equal(json_array_size(list), 0);
    json_decref(list);
}

/* kanaria restarts (the memo in the store): the rules made before are found and deleted, one
 * deleted behind kanaria's back is no error; remove(canary) takes the routes away. */
static void test_routes_after_restart(void **state)
{
    struct fixture *f = *state;
    struct outcome o;
    struct kn_error err;
    char dir[] = "/tmp/kanaria-ecs-XXXXXX", db[64];
    json_t *list;
    struct seen s = {0};
    struct kn_app_id id = {.repository = "deploy", .app = "web"};
    struct kn_desired d = {.commit = COMMIT1, .percent = {100, 0, 0}};
    json_t *m = manifests("nginx:1", 10);
    int missing = 0;

    assert_non_null(mkdtemp(dir));
    snprintf(db, sizeof(db), "%s/kanaria.db", dir);
    kn_error_clear(&err);
    assert_int_equal(kn_store_open(&f->store, db, &err), 0);
    kn_platform_free(f->p);
    platform_open(f);
    g_step = 10;
    seed(f, 0);
    apply_ok(f, KN_VARIANT_PRIMARY, COMMIT1, all, 1, 0, &o);
    apply_ok(f, KN_VARIANT_CANARY, COMMIT2, two, 5, 1, &o);
    /* only the testers reach the canary */
    routes(f, 100, 0, g_matches, 1, &o);
    if (o.status != 0) {
        fail_msg("set_routes: %s", o.message);
    }
    list = state_routes(f);
    assert_int_equal(json_array_size(list), 4);
    /* one of them deleted behind kanaria's back */
    fake_post(f, "/__tamper", json_pack("{s:[{s:O, s:b}]}", "rules", "ruleArn",
                                        json_object_get(json_array_get(list, 0), "RuleArn"),
                                        "delete", 1));
    json_decref(list);

    kn_platform_free(f->p);
    platform_open(f);
    d.manifests = m;
    d.options = &g_options;
    assert_int_equal(kn_platform_observe(f->p, &id, &d, 20000, on_observed, &s), 0);
    assert_true(run_until(f, &s.done, 25000));
    assert_int_equal(s.status, 0);
    for (size_t i = 0; i < s.live.nresources; i++) {
        const struct kn_live_resource *r = &s.live.resources[i];
        if (strcmp(r->kind, "Rule") == 0 && r->drift && strstr(r->drift, "missing")) {
            missing++;
        }
    }
    assert_int_equal(missing, 1);
    kn_live_state_release(&s.live);
    json_decref(m);

    log_mark(f);
    remove_variant(f, KN_VARIANT_CANARY, &o);
    if (o.status != 0) {
        fail_msg("remove canary: %s", o.message);
    }
    assert_int_equal(calls_of(f, "DeleteRule", 0, NULL), 4);
    list = state_routes(f);
    assert_int_equal(json_array_size(list), 0);
    json_decref(list);
    kn_platform_free(f->p);
    f->p = NULL;
    kn_store_close(f->store);
    f->store = NULL;
    unlink(db);
    {
        char side[96];
        snprintf(side, sizeof(side), "%s-wal", db);
        unlink(side);
        snprintf(side, sizeof(side), "%s-shm", db);
        unlink(side);
    }
    rmdir(dir);
}

/* Refused before anything is written: a regex (an ALB has wildcards only), and rules with no
 * free priority before them (the seeded rules are 1000, 1001, ...). */
static void test_routes_refused(void **state)
{
    struct fixture *f = *state;
    struct outcome o;
    const struct kn_route_match re = {.field = KN_ROUTE_HEADER, .name = "X-Canary",
                                      .value = "^(a|b)$", .regex = 1};

    apply_ok(f, KN_VARIANT_PRIMARY, COMMIT1, all, 1, 0, &o);
    apply_ok(f, KN_VARIANT_CANARY, COMMIT2, two, 5, 1, &o);
    log_mark(f);
    routes(f, 90, 10, &re, 1, &o);
    assert_int_equal(o.status, KN_EUNSUPPORTED);
    assert_non_null(strstr(o.message, "platform 'aws' (ecs)"));
    assert_non_null(strstr(o.message, "regex"));
    routes(f, 90, 10, g_matches, 2, &o);
    assert_int_equal(o.status, KN_EINVAL);
    assert_non_null(strstr(o.message, "free rule priorities"));
    assert_int_equal(calls_of(f, "CreateRule", 0, NULL), 0);
    assert_int_equal(calls_of(f, "ModifyRule", 0, NULL), 0);
    assert_int_equal(calls_of(f, "ModifyListener", 0, NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_first_sync, setup, teardown),
        cmocka_unit_test_setup_teardown(test_canary_and_weights, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rules_paginated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_idempotent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rollback_keeps_primary, setup, teardown),
        cmocka_unit_test_setup_teardown(test_never_steady, setup, teardown),
        cmocka_unit_test_setup_teardown(test_throttled, setup, teardown),
        cmocka_unit_test_setup_teardown(test_weights_parallel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_walk_one_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clean_after_weights, setup, teardown),
        cmocka_unit_test_setup_teardown(test_observe_drift, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_balancer_after_apply, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_wait, setup, teardown),
        cmocka_unit_test_setup_teardown(test_routes_created_and_deleted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_routes_after_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_routes_refused, setup, teardown),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
