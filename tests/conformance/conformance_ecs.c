/*
 * The conformance suite on the ecs platform, against kanaria's scripted AWS fake
 * (tests/fakes/aws_fake.py, run with python3 on a free loopback port for each scenario). The
 * fake is seeded with one cluster, an ALB with a listener whose default action forwards to the
 * first app's target-group pair, a path rule per app forwarding to that app's pair (100/0), and
 * a rule forwarding to a third target group that must never change. kanaria reaches it through
 * AWS_ENDPOINT_URL with keys from the environment, every request signed and checked.
 *
 * The truth is read from the fake's /__state, apart from the provider: task sets that are not
 * DRAINING, per variant by the target group they serve (instances: their runningCount; routed:
 * those whose target group has a weight above 0 on the app's rule; commit: the container image
 * of their task definition, which carries the version), and their ids. Behind kanaria's back:
 * a weight is the app's rule edited (the split moved by 7 or 8 %), a killed instance a task of
 * the task set stopped (replaced after 20 polls), and a version that never becomes ready is the
 * fake keeping its new task sets STABILIZING (the manifests stay those of the commit).
 *
 * Without python3 it prints a SKIPPED line and exits 77, but fails under CI=true. Until the
 * provider is built (its create says so) it prints "SKIPPED: ecs provider not built" and exits 77.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "cloud/aws/aws.h"
#include "conformance.h"
#include "kanaria/alloc.h"
#include "kanaria/config.h"
#include "kanaria/error.h"
#include "kanaria/http.h"
#include "kanaria/manifest.h"
#include "platforms/ecs/ecs.h"

#define MAX_APPS 4
#define CLUSTER "conformance"
#define ARN_ELB "arn:aws:elasticloadbalancing:us-east-1:123456789012:"
#define LB_ARN ARN_ELB "loadbalancer/app/conf/50dc6c495c0c9188"
#define LISTENER_ARN ARN_ELB "listener/app/conf/50dc6c495c0c9188/f2f7dc8efc522ab2"
#define FOREIGN_TG ARN_ELB "targetgroup/foreign/3333333333333333"
#define AKID "AKIDCONFORMANCE00001"
#define SECRET "Y29uZm9ybWFuY2Utc2VjcmV0LWtleQ=="

struct ecs_harness {
    uv_loop_t *loop;
    char *dir;
    struct kn_http_client *http;
    pid_t fake; /* the python3 process */
    int port;
    struct kn_aws_config aws; /* its platforms[] keys: all from the environment */
    struct {
        char repository[32];
        char app[32];
        struct kn_ecs_app_options options;
        int parsed;
    } apps[MAX_APPS];
    size_t napps;
};

static void tg_arn(char *out, size_t size, size_t slot, const char *which)
{
    snprintf(out, size, ARN_ELB "targetgroup/app%zu-%s/%016zu", slot, which, slot + 1);
}

static void rule_arn(char *out, size_t size, size_t slot)
{
    snprintf(out, size, ARN_ELB "listener-rule/app/conf/50dc6c495c0c9188/f2f7dc8efc522ab2/%016zx",
             slot + 1);
}

/* ---- the fake: started, spoken to with a blocking loopback HTTP/1.1 request, stopped -------- */

/* Start tests/fakes/aws_fake.py; 0 with h->port set, or 1 with why. */
static int fake_start(struct ecs_harness *h, char *why)
{
    const char *src = getenv("KANARIA_SOURCE_DIR");
    char *script = kn_asprintf("%s/tests/fakes/aws_fake.py", src ? src : ".");
    char line[64] = "";
    size_t len = 0;
    int fds[2];
    int rc = 1;

    if (access(script, R_OK) != 0) {
        snprintf(why, KN_CONF_WHY, "no %s (KANARIA_SOURCE_DIR)", script);
        goto out;
    }
    assert_int_equal(pipe(fds), 0);
    h->fake = fork();
    assert_true(h->fake >= 0);
    if (h->fake == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* gone with the test, however it ends */
        dup2(fds[1], STDOUT_FILENO);
        close(fds[0]);
        close(fds[1]);
        execlp("python3", "python3", script, "--port", "0", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    /* "listening PORT", within 10 s */
    while (len + 1 < sizeof(line) && !strchr(line, '\n')) {
        struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
        ssize_t n;
        if (poll(&pfd, 1, 10000) <= 0 || (n = read(fds[0], line + len, 1)) <= 0) {
            break;
        }
        len += (size_t)n;
        line[len] = '\0';
    }
    close(fds[0]);
    if (sscanf(line, "listening %d", &h->port) != 1 || h->port <= 0) {
        snprintf(why, KN_CONF_WHY, "python3 could not start %s", script);
        kill(h->fake, SIGKILL);
        waitpid(h->fake, NULL, 0);
        h->fake = 0;
        goto out;
    }
    rc = 0;
out:
    free(script);
    return rc;
}

static void fake_stop(struct ecs_harness *h)
{
    int status = 0;

    if (h->fake <= 0) {
        return;
    }
    kill(h->fake, SIGTERM);
    for (int i = 0; i < 100; i++) {
        if (waitpid(h->fake, &status, WNOHANG) == h->fake) {
            h->fake = 0;
            return;
        }
        nanosleep(&(struct timespec){.tv_nsec = 50000000}, NULL);
    }
    kill(h->fake, SIGKILL);
    waitpid(h->fake, &status, 0);
    h->fake = 0;
}

/* One control request to the fake (body may be NULL); its JSON reply, new reference. */
static json_t *fake_control(struct ecs_harness *h, const char *method, const char *path,
                            json_t *body)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)h->port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {.tv_sec = 10};
    char *text = body ? json_dumps(body, JSON_COMPACT) : kn_strdup("");
    char *req = kn_asprintf("%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: "
                            "application/json\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
                            method, path, h->port, strlen(text), text);
    size_t cap = 1 << 16, len = 0, sent = 0;
    char *reply = kn_malloc(cap);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int status = 0;
    const char *start;
    json_t *out;
    json_error_t jerr;

    assert_true(fd >= 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    while (sent < strlen(req)) {
        ssize_t n = write(fd, req + sent, strlen(req) - sent);
        assert_true(n > 0);
        sent += (size_t)n;
    }
    for (;;) {
        ssize_t n;
        if (len + 1 >= cap) {
            cap *= 2;
            reply = kn_realloc(reply, cap);
        }
        n = read(fd, reply + len, cap - len - 1);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        assert_true(n >= 0); /* a timeout fails the scenario */
        if (n == 0) {
            break;
        }
        len += (size_t)n;
    }
    close(fd);
    reply[len] = '\0';
    start = strstr(reply, "\r\n\r\n");
    if (sscanf(reply, "HTTP/1.%*d %d", &status) != 1 || status != 200 || !start) {
        fail_msg("aws fake %s %s: %.300s", method, path, reply);
    }
    out = json_loads(start + 4, 0, &jerr);
    if (!out) {
        fail_msg("aws fake %s %s: not JSON: %s", method, path, jerr.text);
    }
    free(reply);
    free(req);
    free(text);
    return out;
}

static void fake_post(struct ecs_harness *h, const char *path, json_t *body)
{
    json_decref(fake_control(h, "POST", path, body));
    json_decref(body);
}

static json_t *forward_pair(const char *a, int wa, const char *b, int wb)
{
    return json_pack("[{s:s, s:i, s:{s:[{s:s, s:i}, {s:s, s:i}]}}]", "Type", "forward", "Order", 1,
                     "ForwardConfig", "TargetGroups", "TargetGroupArn", a, "Weight", wa,
                     "TargetGroupArn", b, "Weight", wb);
}

/* The world of every scenario: keys, a cluster, the ALB, its listener and rules. */
static void fake_seed(struct ecs_harness *h)
{
    json_t *tgs = json_array(), *rules = json_array();
    char blue[160], green[160], rarn[200];

    for (size_t i = 0; i < MAX_APPS; i++) {
        char path[32];
        tg_arn(blue, sizeof(blue), i, "primary");
        tg_arn(green, sizeof(green), i, "canary");
        rule_arn(rarn, sizeof(rarn), i);
        snprintf(path, sizeof(path), "/app%zu/*", i);
        json_array_append_new(tgs, json_pack("{s:s, s:s, s:[s]}", "name", strstr(blue, "app"),
                                             "arn", blue, "loadBalancers", "conf"));
        json_array_append_new(tgs, json_pack("{s:s, s:s, s:[s]}", "name", strstr(green, "app"),
                                             "arn", green, "loadBalancers", "conf"));
        json_array_append_new(rules,
                              json_pack("{s:s, s:s, s:i, s:[{s:s, s:[s]}], s:o}", "listener",
                                        LISTENER_ARN, "arn", rarn, "priority", (int)(10 + i),
                                        "conditions", "Field", "path-pattern", "Values", path,
                                        "actions", forward_pair(blue, 100, green, 0)));
    }
    json_array_append_new(tgs, json_pack("{s:s, s:s, s:[s]}", "name", "foreign", "arn", FOREIGN_TG,
                                         "loadBalancers", "conf"));
    json_array_append_new(rules, json_pack("{s:s, s:i, s:[{s:s, s:[s]}], s:[{s:s, s:s}]}",
                                           "listener", LISTENER_ARN, "priority", 90, "conditions",
                                           "Field", "host-header", "Values", "foreign.example",
                                           "actions", "Type", "forward", "TargetGroupArn",
                                           FOREIGN_TG));
    tg_arn(blue, sizeof(blue), 0, "primary");
    tg_arn(green, sizeof(green), 0, "canary");
    fake_post(h, "/__setup",
              json_pack("{s:s, s:s, s:[{s:s, s:s}], s:[s], s:[{s:s, s:s}], s:o, s:[{s:s, s:s, "
                        "s:i, s:o}], s:o}",
                        "accountId", "123456789012", "region", "us-east-1", "users",
                        "accessKeyId", AKID, "secretAccessKey", SECRET, "clusters", CLUSTER,
                        "loadBalancers", "name", "conf", "arn", LB_ARN, "targetGroups", tgs,
                        "listeners", "loadBalancer", "conf", "arn", LISTENER_ARN, "port", 80,
                        "defaultActions", forward_pair(blue, 100, green, 0), "rules", rules));
    /* task sets converge in 2 polls and drain in 1 */
    fake_post(h, "/__faults",
              json_pack("{s:[{s:i, s:i}]}", "newTaskSets", "pollsUntilSteady", 2, "drainPolls", 1));
}

/* A version that never becomes ready is the fake's doing, not the manifests' (which are those of
 * the commit): its new task sets never reach STEADY_STATE, though their tasks run. Asked for
 * ready again, the fake lets its task sets become steady: the cause went away, and an apply of
 * that commit (after a restart too) converges on the set it finds. */
static void fake_never_ready(struct ecs_harness *h, const char *image, int never_ready)
{
    json_t *state, *svc, *ts, *heal;
    size_t i, j;

    if (never_ready) {
        fake_post(h, "/__faults",
                  json_pack("{s:[{s:{s:s}, s:b, s:i}, {s:i, s:i}]}", "newTaskSets", "match",
                            "image", image, "neverSteady", 1, "pollsUntilSteady", 1,
                            "pollsUntilSteady", 2, "drainPolls", 1));
        return;
    }
    fake_post(h, "/__faults",
              json_pack("{s:[{s:i, s:i}]}", "newTaskSets", "pollsUntilSteady", 2, "drainPolls", 1));
    state = fake_control(h, "GET", "/__state", NULL);
    heal = json_object();
    json_array_foreach(json_object_get(state, "services"), i, svc)
    {
        json_array_foreach(json_object_get(svc, "taskSets"), j, ts)
        {
            const char *img = json_string_value(json_array_get(json_object_get(ts, "images"), 0));
            if (img && strcmp(img, image) == 0 &&
                json_is_true(json_object_get(json_object_get(ts, "knobs"), "neverSteady"))) {
                json_object_set_new(heal, json_string_value(json_object_get(ts, "taskSetArn")),
                                    json_pack("{s:b}", "neverSteady", 0));
            }
        }
    }
    json_decref(state);
    if (json_object_size(heal) > 0) {
        fake_post(h, "/__faults", json_pack("{s:o}", "taskSets", heal));
    } else {
        json_decref(heal);
    }
}

/* ---- the harness ---------------------------------------------------------------------------- */

static size_t app_slot(struct ecs_harness *h, const struct kn_app_id *id)
{
    size_t i;

    for (i = 0; i < h->napps; i++) {
        if (strcmp(h->apps[i].repository, id->repository) == 0 &&
            strcmp(h->apps[i].app, id->app) == 0) {
            return i;
        }
    }
    assert_true(h->napps < MAX_APPS);
    snprintf(h->apps[i].repository, sizeof(h->apps[i].repository), "%s", id->repository);
    snprintf(h->apps[i].app, sizeof(h->apps[i].app), "%s", id->app);
    h->napps++;
    return i;
}

static void set_env(struct ecs_harness *h)
{
    char url[64];

    snprintf(url, sizeof(url), "http://127.0.0.1:%d", h->port);
    setenv("AWS_ENDPOINT_URL", url, 1);
    setenv("AWS_ACCESS_KEY_ID", AKID, 1);
    setenv("AWS_SECRET_ACCESS_KEY", SECRET, 1);
    setenv("AWS_REGION", "us-east-1", 1);
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials", 1);
    setenv("AWS_CONFIG_FILE", "/nonexistent/config", 1);
    unsetenv("AWS_SESSION_TOKEN");
    unsetenv("AWS_PROFILE");
    unsetenv("AWS_WEB_IDENTITY_TOKEN_FILE");
    unsetenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
    unsetenv("AWS_CONTAINER_CREDENTIALS_FULL_URI");
    for (const char *const *v = (const char *const[]){"AWS_ENDPOINT_URL_ECS",
                                                       "AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING_V2",
                                                       "AWS_ENDPOINT_URL_CLOUDWATCH",
                                                       "AWS_ENDPOINT_URL_STS", NULL};
         *v; v++) {
        unsetenv(*v);
    }
}

static int ecs_setup(void **self, uv_loop_t *loop, const char *dir, char *why)
{
    struct ecs_harness *h = kn_calloc(1, sizeof(*h));

    h->loop = loop;
    h->dir = kn_strdup(dir);
    if (fake_start(h, why) != 0) {
        free(h->dir);
        free(h);
        return 1;
    }
    fake_seed(h);
    set_env(h);
    assert_int_equal(kn_http_client_new(&h->http, loop), 0);
    *self = h;
    return 0;
}

static void ecs_new(void *self, struct kn_platform **out)
{
    struct ecs_harness *h = self;
    struct kn_platform_config pc = {
        .name = (char *)(uintptr_t) "aws",
        .ptype = &kn_platform_ecs,
        .options = &h->aws,
    };
    struct kn_platform_deps deps = {.loop = h->loop, .data_dir = h->dir, .http = h->http};
    struct kn_error err;

    if (kn_platform_new(out, &deps, &pc, &err) != 0) {
        fail_msg("ecs platform: %s", err.msg);
    }
}

static void ecs_teardown(void *self)
{
    struct ecs_harness *h = self;

    fake_stop(h);
    kn_http_client_close(h->http);
    for (size_t i = 0; i < h->napps; i++) {
        if (h->apps[i].parsed) {
            kn_schema_release(&kn_ecs_app_schema, &h->apps[i].options);
        }
    }
    free(h->dir);
    free(h);
}

/* An app's names: its task definition family and service. */
static void names(size_t slot, char *family, char *service, size_t size)
{
    snprintf(family, size, "conf-web-%zu", slot);
    snprintf(service, size, "conf-svc-%zu", slot);
}

static json_t *ecs_manifests(void *self, const struct kn_app_id *id, const char *version,
                             int never_ready)
{
    struct ecs_harness *h = self;
    size_t i = app_slot(h, id);
    char family[32], service[32], image[96];

    names(i, family, service, sizeof(family));
    snprintf(image, sizeof(image), "registry.example/web:%s", version);
    fake_never_ready(h, image, never_ready);
    return json_pack(
        "[{s:s, s:{s:s}, s:{s:s, s:[{s:s, s:s, s:b, s:i, s:[{s:i, s:s}]}], s:s, s:[s], s:s, s:s}},"
        " {s:s, s:{s:s}, s:{s:s, s:s, s:i, s:s, s:{s:s}, s:{s:{s:[s], s:[s], s:s}}}}]",
        "kind", KN_ECS_TASK_DEFINITION, "metadata", "name", family, "spec", "family", family,
        "containerDefinitions", "name", "web", "image", image, "essential", 1, "memory", 128,
        "portMappings", "containerPort", 80, "protocol", "tcp", "networkMode", "awsvpc",
        "requiresCompatibilities", "FARGATE", "cpu", "256", "memory", "512", "kind",
        KN_ECS_SERVICE_DEFINITION, "metadata", "name", service, "spec", "cluster", CLUSTER,
        "serviceName", service, "desiredCount", 1, "launchType", "FARGATE",
        "deploymentController", "type", "EXTERNAL", "networkConfiguration", "awsvpcConfiguration",
        "subnets", "subnet-0conformance", "securityGroups", "sg-0conformance", "assignPublicIp",
        "DISABLED");
}

static const void *ecs_options(void *self, const struct kn_app_id *id)
{
    struct ecs_harness *h = self;
    size_t i = app_slot(h, id);
    char blue[160], green[160];
    char *text;
    struct kn_yaml *y = NULL;
    struct kn_error err;
    struct kn_diags d;
    struct kn_schema_ctx ctx = {0};

    if (h->apps[i].parsed) {
        return &h->apps[i].options;
    }
    tg_arn(blue, sizeof(blue), i, "primary");
    tg_arn(green, sizeof(green), i, "canary");
    text = kn_asprintf("taskDefinitionFile: taskdef.yaml\nserviceDefinitionFile: servicedef.yaml\n"
                       "targetGroups:\n"
                       "  primary: {targetGroupArn: \"%s\", containerName: web, containerPort: 80}\n"
                       "  canary: {targetGroupArn: \"%s\", containerName: web, containerPort: 80}\n",
                       blue, green);
    assert_int_equal(kn_yaml_parse(&y, "app.kanaria.yaml", text, strlen(text), NULL, &err), 0);
    kn_diags_init(&d, 0);
    ctx.diags = &d;
    kn_schema_parse(&kn_ecs_app_schema, y->docs[0], NULL, &h->apps[i].options, &ctx);
    h->apps[i].parsed = 1;
    assert_int_equal(d.count, 0);
    kn_diags_release(&d);
    kn_yaml_free(y);
    free(text);
    return &h->apps[i].options;
}

/* ---- the truth, from the fake's state ------------------------------------------------------- */

static json_t *find_by(json_t *array, const char *key, const char *value)
{
    size_t i;
    json_t *e;

    json_array_foreach(array, i, e)
    {
        const char *s = json_string_value(json_object_get(e, key));
        if (s && strcmp(s, value) == 0) {
            return e;
        }
    }
    return NULL;
}

/* The weight of target group tg on the app's rule (-1: not on it). */
static int rule_weight(json_t *state, size_t slot, const char *tg)
{
    char rarn[200];
    json_t *rule, *g;
    size_t i;

    rule_arn(rarn, sizeof(rarn), slot);
    rule = find_by(json_object_get(state, "rules"), "RuleArn", rarn);
    g = json_object_get(json_object_get(json_array_get(json_object_get(rule, "Actions"), 0),
                                        "ForwardConfig"),
                        "TargetGroups");
    json_array_foreach(g, i, rule)
    {
        if (strcmp(json_string_value(json_object_get(rule, "TargetGroupArn")), tg) == 0) {
            return (int)json_integer_value(json_object_get(rule, "Weight"));
        }
    }
    return -1;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void ecs_truth(void *self, const struct kn_app_id *id, struct kn_conf_truth *out)
{
    struct ecs_harness *h = self;
    size_t slot = app_slot(h, id);
    char family[32], service[32], tg[KN_VARIANT_COUNT][160];
    json_t *state = fake_control(h, "GET", "/__state", NULL);
    json_t *svc = NULL, *e, *ts;
    const char *ids[32];
    size_t i, nids = 0, len = 0;

    names(slot, family, service, sizeof(family));
    tg_arn(tg[KN_VARIANT_PRIMARY], sizeof(tg[0]), slot, "primary");
    tg_arn(tg[KN_VARIANT_CANARY], sizeof(tg[0]), slot, "canary");
    tg[KN_VARIANT_BASELINE][0] = '\0';
    json_array_foreach(json_object_get(state, "services"), i, e)
    {
        if (strcmp(json_string_value(json_object_get(e, "serviceName")), service) == 0 &&
            strcmp(json_string_value(json_object_get(e, "status")), "ACTIVE") == 0) {
            svc = e;
        }
    }
    json_array_foreach(json_object_get(svc, "taskSets"), i, ts)
    {
        const char *lb_tg = json_string_value(
            json_object_get(json_array_get(json_object_get(ts, "loadBalancers"), 0),
                            "targetGroupArn"));
        int running = (int)json_integer_value(json_object_get(ts, "runningCount"));
        int v;
        if (strcmp(json_string_value(json_object_get(ts, "status")), "DRAINING") == 0) {
            continue;
        }
        for (v = 0; v < KN_VARIANT_COUNT; v++) {
            if (lb_tg && tg[v][0] && strcmp(lb_tg, tg[v]) == 0) {
                break;
            }
        }
        if (v == KN_VARIANT_COUNT) {
            fail_msg("ecs: a task set of %s serves no target group of the app", service);
        }
        out->instances[v] += running;
        out->servers[v] += running;
        if (rule_weight(state, slot, tg[v]) > 0) {
            out->routed[v] += running;
        }
        snprintf(out->commit[v], sizeof(out->commit[v]), "%s",
                 json_string_value(json_array_get(json_object_get(ts, "images"), 0)));
        if (nids < 32) {
            ids[nids++] = json_string_value(json_object_get(ts, "id"));
        }
    }
    qsort(ids, nids, sizeof(*ids), cmp_str);
    out->ids[0] = '\0';
    for (i = 0; i < nids && len < sizeof(out->ids); i++) {
        len += (size_t)snprintf(out->ids + len, sizeof(out->ids) - len, "%s ", ids[i]);
    }
    json_decref(state);
}

/* The app's rule changed in "the console": the variant's share moved by 7 or 8 %. */
static int ecs_tamper_weight(void *self, const struct kn_app_id *id, enum kn_variant v, char *why)
{
    struct ecs_harness *h = self;
    size_t slot = app_slot(h, id);
    char blue[160], green[160], rarn[200];
    json_t *state = fake_control(h, "GET", "/__state", NULL);
    int wb = rule_weight(state, slot, (tg_arn(blue, sizeof(blue), slot, "primary"), blue));
    int wg = rule_weight(state, slot, (tg_arn(green, sizeof(green), slot, "canary"), green));

    (void)why;
    json_decref(state);
    assert_true(v == KN_VARIANT_PRIMARY || v == KN_VARIANT_CANARY);
    /* the split itself moves (7 or 8 % the other way): not only the weights' scale */
    if (v == KN_VARIANT_PRIMARY) {
        wb = wb == 93 ? 92 : 93;
        wg = 100 - wb;
    } else {
        wg = wg == 7 ? 8 : 7;
        wb = 100 - wg;
    }
    rule_arn(rarn, sizeof(rarn), slot);
    fake_post(h, "/__tamper",
              json_pack("{s:[{s:s, s:o}]}", "rules", "ruleArn", rarn, "actions",
                        forward_pair(blue, wb, green, wg)));
    return 0;
}

/* A task of the variant's task set stops ("the console", or a crash): ECS starts another one. */
static int ecs_kill_instance(void *self, const struct kn_app_id *id, enum kn_variant v, char *why)
{
    struct ecs_harness *h = self;
    size_t slot = app_slot(h, id);
    char family[32], service[32], tg[160];
    json_t *state = fake_control(h, "GET", "/__state", NULL);
    json_t *e, *ts;
    const char *target = NULL;
    size_t i, j;

    (void)why;
    names(slot, family, service, sizeof(family));
    tg_arn(tg, sizeof(tg), slot, v == KN_VARIANT_PRIMARY ? "primary" : "canary");
    json_array_foreach(json_object_get(state, "services"), i, e)
    {
        if (strcmp(json_string_value(json_object_get(e, "serviceName")), service) != 0) {
            continue;
        }
        json_array_foreach(json_object_get(e, "taskSets"), j, ts)
        {
            const char *lb_tg = json_string_value(json_object_get(
                json_array_get(json_object_get(ts, "loadBalancers"), 0), "targetGroupArn"));
            if (lb_tg && strcmp(lb_tg, tg) == 0 &&
                strcmp(json_string_value(json_object_get(ts, "status")), "DRAINING") != 0) {
                target = json_string_value(json_object_get(ts, "taskSetArn"));
            }
        }
    }
    assert_non_null(target);
    /* ECS takes a while to start a replacement: 20 polls here, so that observe sees the gap */
    fake_post(h, "/__faults",
              json_pack("{s:{s:{s:i}}}", "taskSets", target, "pollsUntilSteady", 20));
    fake_post(h, "/__tamper", json_pack("{s:[{s:s, s:i}]}", "taskSets", "taskSet", target,
                                        "stopTasks", 1));
    json_decref(state);
    return 0;
}

static void child_done(int status, const char *message, void *data)
{
    (void)status;
    (void)message;
    (void)data;
}

/* In a forked process: a platform over the same state, the apply, and nothing else until it is
 * killed. Never returns. */
static void crash_child(struct ecs_harness *h, const struct kn_app_id *id,
                        const struct kn_variant_spec *spec)
{
    uv_loop_t loop;
    struct kn_http_client *http = NULL;
    struct kn_platform *p = NULL;
    struct kn_platform_config pc = {
        .name = (char *)(uintptr_t) "aws", .ptype = &kn_platform_ecs, .options = &h->aws};
    struct kn_platform_deps deps;
    struct kn_platform_req req = {
        .id = *id, .deployment_id = 1, .stage_index = 0, .done = child_done};
    struct kn_error err;

    if (uv_loop_init(&loop) != 0 || kn_http_client_new(&http, &loop) != 0) {
        _exit(2);
    }
    deps = (struct kn_platform_deps){.loop = &loop, .data_dir = h->dir, .http = http};
    if (kn_platform_new(&p, &deps, &pc, &err) != 0 || kn_platform_apply(p, &req, spec, NULL) != 0) {
        _exit(3);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    _exit(4);
}

/* Whether the app's service has a task set of the variant that is not DRAINING. */
static int has_task_set(struct ecs_harness *h, size_t slot, enum kn_variant v)
{
    char family[32], service[32], tg[160];
    json_t *state = fake_control(h, "GET", "/__state", NULL);
    json_t *e, *ts;
    size_t i, j;
    int found = 0;

    names(slot, family, service, sizeof(family));
    tg_arn(tg, sizeof(tg), slot, v == KN_VARIANT_PRIMARY ? "primary" : "canary");
    json_array_foreach(json_object_get(state, "services"), i, e)
    {
        if (strcmp(json_string_value(json_object_get(e, "serviceName")), service) != 0) {
            continue;
        }
        json_array_foreach(json_object_get(e, "taskSets"), j, ts)
        {
            const char *lb_tg = json_string_value(json_object_get(
                json_array_get(json_object_get(ts, "loadBalancers"), 0), "targetGroupArn"));
            found |= lb_tg && strcmp(lb_tg, tg) == 0 &&
                     strcmp(json_string_value(json_object_get(ts, "status")), "DRAINING") != 0;
        }
    }
    json_decref(state);
    return found;
}

/* kanaria killed (SIGKILL) once its apply has created the variant's task set (which never
 * becomes steady): a new kanaria over the same state must converge and leave nothing behind. */
static int ecs_crash_mid_apply(void *self, struct kn_platform **p, const struct kn_app_id *id,
                               const struct kn_variant_spec *spec, char *why)
{
    struct ecs_harness *h = self;
    size_t slot = app_slot(h, id);
    int status = 0, found = 0;
    pid_t child;

    (void)why;
    kn_platform_free(*p);
    *p = NULL;
    kn_conf_spin(h->loop, 100);
    fflush(NULL);
    child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        crash_child(h, id, spec);
    }
    for (int waited = 0; !found && waited < 20000; waited += 100) {
        kn_conf_spin(h->loop, 100);
        found = has_task_set(h, slot, spec->variant);
        if (waitpid(child, &status, WNOHANG) == child) {
            fail_msg("the crashing kanaria exited on its own (status %d)", status);
        }
    }
    kill(child, SIGKILL);
    assert_int_equal(waitpid(child, &status, 0), child);
    if (!found) {
        fail_msg("the apply in the crashing kanaria created no %s task set",
                 kn_variant_name(spec->variant));
    }
    ecs_new(self, p);
    return 0;
}

static const struct kn_conf_provider ecs_provider = {
    .name = "ecs",
    .reapply_replaces = NULL,
    .setup = ecs_setup,
    .teardown = ecs_teardown,
    .platform_new = ecs_new,
    .manifests = ecs_manifests,
    .options = ecs_options,
    .truth = ecs_truth,
    .tamper_weight = ecs_tamper_weight,
    .kill_instance = ecs_kill_instance,
    .crash_mid_apply = ecs_crash_mid_apply,
};

/* 1 when the type's create says the provider is not built yet (the skeleton). */
static int provider_not_built(void)
{
    uv_loop_t loop;
    struct kn_aws_config aws = {0};
    struct kn_platform_config pc = {
        .name = (char *)(uintptr_t) "aws", .ptype = &kn_platform_ecs, .options = &aws};
    struct kn_platform_deps deps = {.loop = &loop, .data_dir = "/nonexistent"};
    struct kn_platform *p = NULL;
    struct kn_error err;
    int not_built = 0;

    setenv("AWS_REGION", "us-east-1", 1);
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(kn_http_client_new(&deps.http, &loop), 0);
    if (kn_platform_new(&p, &deps, &pc, &err) != 0) {
        not_built = err.code == KN_EUNSUPPORTED && strstr(err.msg, "not built") != NULL;
    }
    kn_platform_free(p);
    kn_http_client_close(deps.http);
    for (int i = 0; i < 100 && uv_run(&loop, UV_RUN_NOWAIT); i++) {
    }
    uv_loop_close(&loop);
    return not_built;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    if (provider_not_built()) {
        printf("SKIPPED: ecs provider not built\n");
        return 77;
    }
    return kn_conf_run(&ecs_provider);
}
