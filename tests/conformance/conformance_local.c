/*
 * The conformance suite on the local platform: a real HAProxy (managed, from the system's
 * package), tests/local_test_server as the instances, free ports on 127.0.0.1. The truth is
 * read apart from the provider: which instance processes are alive (their pid files and the
 * processes themselves) and what HAProxy routes (`show servers state` through its admin socket).
 *
 * Without haproxy it prints a SKIPPED line and exits 77 (ctest's skip), but fails under CI=true.
 */
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "conformance.h"
#include "kanaria/alloc.h"
#include "kanaria/config.h"
#include "kanaria/http.h"
#include "kanaria/log.h"
#include "platforms/local/config.h"
#include "platforms/local/haproxy.h"
#include "platforms/local/local.h"

#define MAX_APPS 4

struct local_harness {
    uv_loop_t *loop;
    char *dir;          /* kanaria's dataDir */
    char *state;        /* dataDir/local/local: the platform's own folder */
    const char *server; /* the instance binary */
    struct kn_http_client *http;
    int port_min;
    struct kn_local_config options; /* its platforms[] keys */
    struct {
        char repository[32];
        char app[32];
        int port;     /* its frontend.bind */
        char key[96]; /* its HAProxy backend, once known */
    } apps[MAX_APPS];
    size_t napps;
};

static int free_port(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int port = 0;

    if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0) {
        port = ntohs(sa.sin_port);
    }
    if (fd >= 0) {
        close(fd);
    }
    return port;
}

static size_t app_slot(struct local_harness *h, const struct kn_app_id *id)
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
    h->apps[i].port = free_port();
    assert_true(h->apps[i].port > 0);
    h->napps++;
    return i;
}

static int local_setup(void **self, uv_loop_t *loop, const char *dir, char *why)
{
    struct local_harness *h;
    const char *server = getenv("KANARIA_TEST_SERVER");

    if (access(KN_HAPROXY_BINARY, X_OK) != 0) {
        snprintf(why, KN_CONF_WHY, "no haproxy at %s", KN_HAPROXY_BINARY);
        return 1;
    }
    if (!server || access(server, X_OK) != 0) {
        snprintf(why, KN_CONF_WHY, "KANARIA_TEST_SERVER does not name the test server");
        return 1;
    }
    h = kn_calloc(1, sizeof(*h));
    h->loop = loop;
    h->dir = kn_strdup(dir);
    h->state = kn_asprintf("%s/local/local", dir);
    h->server = server;
    h->port_min = 20000 + (int)(getpid() % 400) * 100;
    assert_int_equal(kn_http_client_new(&h->http, loop), 0);
    *self = h;
    return 0;
}

static struct kn_platform_config local_config(struct local_harness *h)
{
    struct kn_platform_config pc = {
        .name = (char *)(uintptr_t) "local",
        .ptype = &kn_platform_local,
        .options = &h->options,
    };

    memset(&h->options, 0, sizeof(h->options));
    h->options.haproxy.managed = 1;
    h->options.ports.min = h->port_min;
    h->options.ports.max = h->port_min + 99;
    return pc;
}

static void local_new(void *self, struct kn_platform **out)
{
    struct local_harness *h = self;
    struct kn_platform_config pc = local_config(h);
    struct kn_platform_deps deps = {.loop = h->loop, .data_dir = h->dir, .http = h->http};
    struct kn_error err;

    if (kn_platform_new(out, &deps, &pc, &err) != 0) {
        fail_msg("local platform: %s", err.msg);
    }
}

static json_t *local_manifests(void *self, const struct kn_app_id *id, const char *version,
                               int never_ready)
{
    struct local_harness *h = self;
    size_t i = app_slot(h, id);
    char bind[64];
    json_t *env = json_pack("{s:s}", "VERSION", version);

    if (never_ready) {
        json_object_set_new(env, "HEALTHY_AFTER_MS", json_string("600000"));
    }
    snprintf(bind, sizeof(bind), "127.0.0.1:%d", h->apps[i].port);
    return json_pack("[{s:s, s:s, s:{s:s}, s:{s:[s,s,s], s:o, s:{s:s, s:s}, s:{s:s}, s:i}}]",
                     "apiVersion", "kanaria.dev/v1", "kind", "LocalService", "metadata", "name",
                     id->app, "spec", "command", h->server, "--port", "{{port}}", "env", env,
                     "healthCheck", "path", "/healthz", "interval", "100ms", "frontend", "bind",
                     bind, "replicas", 1);
}

/* The app's backend (its key) from the platform's apps.json; "" when it has none (any more). */
static void key_of(struct local_harness *h, const struct kn_app_id *id, char *key, size_t size)
{
    char *path = kn_asprintf("%s/apps.json", h->state);
    json_t *root = json_load_file(path, 0, NULL);
    const char *name;
    json_t *rec;

    key[0] = '\0';
    json_object_foreach(root, name, rec)
    {
        const char *repo = json_string_value(json_object_get(rec, "repository"));
        const char *app = json_string_value(json_object_get(rec, "app"));
        if (repo && app && strcmp(repo, id->repository) == 0 && strcmp(app, id->app) == 0) {
            snprintf(key, size, "%s", name);
        }
    }
    json_decref(root);
    free(path);
}

struct reply {
    int done;
    int status;
    char *text;
};

static void reply_cb(int status, const char *text, void *data)
{
    struct reply *r = data;

    r->done = 1;
    r->status = status;
    r->text = kn_strdup(text ? text : "");
}

/* One runtime-API command to the managed HAProxy, waited for. */
static int haproxy_ask(struct local_harness *h, const char *cmd, char **text)
{
    char *sock = kn_asprintf("%s/haproxy.sock", h->state);
    struct reply r = {0};

    assert_int_equal(kn_haproxy_command(h->loop, sock, cmd, 5000, reply_cb, &r), 0);
    for (int i = 0; !r.done && i < 700; i++) {
        kn_conf_spin(h->loop, 10);
    }
    assert_true(r.done);
    free(sock);
    *text = r.text;
    return r.status;
}

static enum kn_variant variant_of(const char *name)
{
    for (int v = 0; v < KN_VARIANT_COUNT; v++) {
        const char *vn = kn_variant_name((enum kn_variant)v);
        if (strncmp(name, vn, strlen(vn)) == 0 && name[strlen(vn)] == '-') {
            return (enum kn_variant)v;
        }
    }
    return KN_VARIANT_COUNT;
}

/* 1 when pid is a live process (not a zombie waiting to be reaped). */
static int alive(int pid)
{
    char path[64], buf[256];
    FILE *f;
    char *close_paren;
    int live = 0;

    if (pid <= 0 || kill(pid, 0) != 0) {
        return 0;
    }
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    if (!(f = fopen(path, "r"))) {
        return 0;
    }
    if (fgets(buf, sizeof(buf), f) && (close_paren = strrchr(buf, ')')) && close_paren[1] &&
        close_paren[2] != 'Z' && close_paren[2] != 'X') {
        live = 1;
    }
    fclose(f);
    return live;
}

/* Each instance pid file of the app's folder: its variant and pid. */
static void each_pidfile(struct local_harness *h, const char *key,
                         void (*fn)(void *data, enum kn_variant v, const char *name, int pid),
                         void *data)
{
    char *folder = kn_asprintf("%s/%s", h->state, key);
    DIR *d = key[0] ? opendir(folder) : NULL;
    struct dirent *e;

    while (d && (e = readdir(d))) {
        size_t len = strlen(e->d_name);
        char *path;
        json_t *pf;
        char name[80];
        if (len < 6 || strcmp(e->d_name + len - 5, ".json") != 0 ||
            variant_of(e->d_name) == KN_VARIANT_COUNT) {
            continue;
        }
        path = kn_asprintf("%s/%s", folder, e->d_name);
        pf = json_load_file(path, 0, NULL);
        snprintf(name, sizeof(name), "%.*s", (int)(len - 5), e->d_name);
        fn(data, variant_of(e->d_name), name, (int)json_integer_value(json_object_get(pf, "pid")));
        json_decref(pf);
        free(path);
    }
    if (d) {
        closedir(d);
    }
    free(folder);
}

static void count_alive(void *data, enum kn_variant v, const char *name, int pid)
{
    struct kn_conf_truth *t = data;
    size_t len = strlen(t->ids);

    if (alive(pid)) {
        t->instances[v]++;
        snprintf(t->ids + len, sizeof(t->ids) - len, "%s:%d ", name, pid);
    }
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The identities in a stable order (pid files are read in the folder's order). */
static void sort_ids(char *ids, size_t size)
{
    char *copy = kn_strdup(ids);
    char *words[64];
    size_t n = 0, len = 0;
    char *save = NULL;

    for (char *w = strtok_r(copy, " ", &save); w && n < 64; w = strtok_r(NULL, " ", &save)) {
        words[n++] = w;
    }
    qsort(words, n, sizeof(*words), cmp_str);
    ids[0] = '\0';
    for (size_t i = 0; i < n && len < size; i++) {
        len += (size_t)snprintf(ids + len, size - len, "%s ", words[i]);
    }
    free(copy);
}

static void local_truth(void *self, const struct kn_app_id *id, struct kn_conf_truth *out)
{
    struct local_harness *h = self;
    size_t i = app_slot(h, id);
    char key[96];
    char *cmd = NULL, *text = NULL;
    struct kn_haproxy_server_state *rows = NULL;
    size_t n = 0;
    struct kn_error err;

    key_of(h, id, key, sizeof(key));
    if (key[0]) {
        snprintf(h->apps[i].key, sizeof(h->apps[i].key), "%s", key); /* kept after a removal */
    }
    if (!h->apps[i].key[0]) {
        return; /* never applied here */
    }
    each_pidfile(h, h->apps[i].key, count_alive, out);
    sort_ids(out->ids, sizeof(out->ids));
    assert_int_equal(kn_haproxy_cmd_show_servers_state(&cmd, h->apps[i].key, &err), 0);
    if (haproxy_ask(h, cmd, &text) == 0 &&
        kn_haproxy_parse_servers_state(&rows, &n, text, &err) == 0) {
        for (size_t r = 0; r < n; r++) {
            enum kn_variant v = variant_of(rows[r].name);
            if (v == KN_VARIANT_COUNT) {
                continue;
            }
            out->servers[v]++;
            out->routed[v] += rows[r].admin == KN_HAPROXY_READY && rows[r].weight > 0;
        }
    }
    /* what each variant runs: the VERSION its instances answer with would need traffic; the
     * commit comes from the platform's record */
    {
        char *path = kn_asprintf("%s/apps.json", h->state);
        json_t *root = json_load_file(path, 0, NULL);
        json_t *rec = json_object_get(root, h->apps[i].key), *inst;
        size_t j;
        json_array_foreach(json_object_get(rec, "instances"), j, inst)
        {
            int v = (int)json_integer_value(json_object_get(inst, "variant"));
            if (v >= 0 && v < KN_VARIANT_COUNT) {
                snprintf(out->commit[v], sizeof(out->commit[v]), "%s",
                         json_string_value(json_object_get(inst, "commit")));
            }
        }
        json_decref(root);
        free(path);
    }
    kn_haproxy_servers_state_free(rows, n);
    free(cmd);
    free(text);
}

static int local_tamper_weight(void *self, const struct kn_app_id *id, enum kn_variant v, char *why)
{
    struct local_harness *h = self;
    size_t i = app_slot(h, id);
    char *cmd = NULL, *text = NULL;
    struct kn_haproxy_server_state *rows = NULL;
    size_t n = 0;
    struct kn_error err;
    int changed = 0;

    (void)why;
    key_of(h, id, h->apps[i].key, sizeof(h->apps[i].key));
    assert_int_equal(kn_haproxy_cmd_show_servers_state(&cmd, h->apps[i].key, &err), 0);
    assert_int_equal(haproxy_ask(h, cmd, &text), 0);
    assert_int_equal(kn_haproxy_parse_servers_state(&rows, &n, text, &err), 0);
    for (size_t r = 0; r < n; r++) {
        char *set = NULL, *answer = NULL;
        if (variant_of(rows[r].name) != v) {
            continue;
        }
        assert_int_equal(kn_haproxy_cmd_set_weight(&set, h->apps[i].key, rows[r].name,
                                                   rows[r].weight == 7 ? 8 : 7, &err),
                         0);
        assert_int_equal(haproxy_ask(h, set, &answer), 0);
        changed++;
        free(set);
        free(answer);
    }
    assert_true(changed > 0);
    kn_haproxy_servers_state_free(rows, n);
    free(cmd);
    free(text);
    return 0;
}

static void note_variant(void *data, enum kn_variant v, const char *name, int pid)
{
    int *found = data;

    (void)name;
    if (v == (enum kn_variant)found[0] && alive(pid)) {
        found[1] = pid;
    }
}

/* SIGKILL to the first live instance of the variant (its supervisor restarts it later). */
static int local_kill_instance(void *self, const struct kn_app_id *id, enum kn_variant v, char *why)
{
    struct local_harness *h = self;
    size_t i = app_slot(h, id);
    int found[2] = {(int)v, 0};

    (void)why;
    key_of(h, id, h->apps[i].key, sizeof(h->apps[i].key));
    each_pidfile(h, h->apps[i].key, note_variant, found);
    assert_true(found[1] > 0);
    assert_int_equal(kill(found[1], SIGKILL), 0);
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
static void crash_child(struct local_harness *h, const struct kn_app_id *id,
                        const struct kn_variant_spec *spec)
{
    uv_loop_t loop;
    struct kn_http_client *http = NULL;
    struct kn_platform *p = NULL;
    struct kn_platform_config pc = local_config(h);
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

/* kanaria killed (SIGKILL) while its apply waits for the new instances to be healthy: they run
 * on, listed nowhere, and a new kanaria over the same state must not leave them running. */
static int local_crash_mid_apply(void *self, struct kn_platform **p, const struct kn_app_id *id,
                                 const struct kn_variant_spec *spec, char *why)
{
    struct local_harness *h = self;
    size_t i = app_slot(h, id);
    int found[2] = {(int)spec->variant, 0};
    int status = 0;
    pid_t child;

    (void)why;
    key_of(h, id, h->apps[i].key, sizeof(h->apps[i].key));
    /* the process that crashes is the only one to run the platform meanwhile */
    kn_platform_free(*p);
    *p = NULL;
    kn_conf_spin(h->loop, 200);
    fflush(NULL);
    child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        crash_child(h, id, spec);
    }
    for (int waited = 0; !found[1] && waited < 20000; waited += 100) {
        kn_conf_spin(h->loop, 100);
        each_pidfile(h, h->apps[i].key, note_variant, found);
        if (waitpid(child, &status, WNOHANG) == child) {
            fail_msg("the crashing kanaria exited on its own (status %d)", status);
        }
    }
    kill(child, SIGKILL);
    assert_int_equal(waitpid(child, &status, 0), child);
    if (!found[1]) {
        fail_msg("the apply in the crashing kanaria started no %s instance",
                 kn_variant_name(spec->variant));
    }
    print_message("local: kanaria killed with %s instance pid %d starting\n",
                  kn_variant_name(spec->variant), found[1]);
    local_new(self, p);
    return 0;
}

static void kill_left(void *data, enum kn_variant v, const char *name, int pid)
{
    (void)v;
    (void)data;
    if (alive(pid)) {
        printf("local: %s (pid %d) was left running; killed\n", name, pid);
        kill(-pid, SIGKILL);
        kill(pid, SIGKILL);
    }
}

static void local_teardown(void *self)
{
    struct local_harness *h = self;
    char *pid_path = kn_asprintf("%s/haproxy.pid", h->state);
    struct kn_error err;

    for (size_t i = 0; i < h->napps; i++) {
        if (h->apps[i].key[0]) {
            each_pidfile(h, h->apps[i].key, kill_left, NULL);
        }
    }
    kn_haproxy_stop(pid_path, &err);
    for (int i = 0; i < 50 && kn_haproxy_running(pid_path, &err) == 1; i++) {
        kn_conf_spin(h->loop, 100);
    }
    kn_http_client_close(h->http);
    free(pid_path);
    free(h->state);
    free(h->dir);
    free(h);
}

static const struct kn_conf_provider local_provider = {
    .name = "local",
    .reapply_replaces = "an apply starts new instances and retires the old ones even when the "
                        "variant already runs that commit healthy",
    .setup = local_setup,
    .teardown = local_teardown,
    .platform_new = local_new,
    .manifests = local_manifests,
    .truth = local_truth,
    .tamper_weight = local_tamper_weight,
    .kill_instance = local_kill_instance,
    .crash_mid_apply = local_crash_mid_apply,
};

int main(void)
{
    const char *ci = getenv("CI");

    signal(SIGPIPE, SIG_IGN);
    if (access(KN_HAPROXY_BINARY, X_OK) != 0) {
        printf("SKIPPED: conformance_local: no haproxy at %s\n", KN_HAPROXY_BINARY);
        return ci && strcmp(ci, "true") == 0 ? 1 : 77;
    }
    return kn_conf_run(&local_provider);
}
