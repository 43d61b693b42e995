/*
 * The local platform's instance supervisor against real processes: the test server
 * (tests/local_test_server.c, path in KANARIA_TEST_SERVER) started, health-checked, crashed,
 * restarted, stopped and adopted. Waits are bounded by a deadline on the loop, never timed
 * assertions. Every process the tests started is killed in the teardown, failed tests included.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "kanaria/alloc.h"
#include "kanaria/error.h"
#include "kanaria/log.h"
#include "platforms/local/process.h"
#include "testutil.h"
#include "kanaria/http.h"

#define MAX_SEEN 64

struct fixture {
    uv_loop_t loop;
    uv_timer_t wake; /* wakes the loop so that wait conditions are re-checked */
    struct kn_http_client *http;
    struct kn_proc_supervisor *sup;
    char *dir;
    char *state_dir;
    const char *server;
    int port_min;
    int port_max;
    int seen[MAX_SEEN];
    size_t nseen;
};

struct start_result {
    int done;
    int status;
    char error[512];
    int pid;
    int port;
    int healthy;
};

struct stop_result {
    int done;
    int status;
};

/* ---- helpers ------------------------------------------------------------------------------ */

static void seen_pid(struct fixture *f, int pid)
{
    if (pid > 1 && f->nseen < MAX_SEEN) {
        f->seen[f->nseen++] = pid;
    }
}

static void on_started(int status, const struct kn_instance_info *info, const char *error,
                       void *data)
{
    struct start_result *r = data;
    r->done++;
    r->status = status;
    snprintf(r->error, sizeof(r->error), "%s", error ? error : "");
    r->pid = info->pid;
    r->port = info->port;
    r->healthy = info->healthy;
}

static void on_stopped(int status, void *data)
{
    struct stop_result *r = data;
    r->done++;
    r->status = status;
}

static void on_wake(uv_timer_t *t)
{
    (void)t;
}

static int is_set(void *arg)
{
    return *(int *)arg != 0;
}

static int never(void *arg)
{
    (void)arg;
    return 0;
}

/* Run the loop until cond(arg) or until timeout_ms passed; returns cond(arg). */
static int wait_for(struct fixture *f, int (*cond)(void *), void *arg, long long timeout_ms)
{
    uint64_t end = uv_now(&f->loop) + (uint64_t)timeout_ms;
    uv_timer_start(&f->wake, on_wake, 20, 20);
    while (!cond(arg) && uv_now(&f->loop) < end) {
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    uv_timer_stop(&f->wake);
    return cond(arg);
}

/* A blocking GET on 127.0.0.1 (the server is another process); returns the status, 0 on
 * failure, and the body in body. */
static int http_get(int port, const char *path, char *body, size_t size)
{
    char buf[8192];
    size_t len = 0;
    int status = 0;
    struct sockaddr_in addr;
    struct timeval tv = {.tv_sec = 3};
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    body[0] = '\0';
    if (fd < 0) {
        return 0;
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (const struct sockaddr *)&addr, sizeof(addr)) == 0) {
        char req[256];
        int n = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
        if (write(fd, req, (size_t)n) == n) {
            ssize_t r;
            while (len < sizeof(buf) - 1 && (r = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0) {
                len += (size_t)r;
            }
        }
    }
    close(fd);
    buf[len] = '\0';
    if (sscanf(buf, "HTTP/%*s %d", &status) != 1) {
        status = 0;
    }
    const char *b = strstr(buf, "\r\n\r\n");
    snprintf(body, size, "%s", b ? b + 4 : "");
    return status;
}

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static char *pidfile_path(struct fixture *f, const char *app, const char *name)
{
    return kn_asprintf("%s/%s/%s.json", f->state_dir, app, name);
}

/* The pid recorded in a pid file, 0 when there is none. */
static int pidfile_pid(struct fixture *f, const char *app, const char *name)
{
    char *path = pidfile_path(f, app, name);
    json_t *root = json_load_file(path, 0, NULL);
    int pid = (int)json_integer_value(json_object_get(root, "pid"));
    json_decref(root);
    free(path);
    return pid;
}

static int process_exists(int pid)
{
    return pid > 1 && kill(pid, 0) == 0;
}

/* Whether pid runs the test server (so that cleanup never kills a stranger). */
static int is_test_server(struct fixture *f, int pid)
{
    char path[64];
    char buf[4096];
    int rc = 0;
    snprintf(path, sizeof(path), "/proc/%d/cmdline", pid);
    int fd = open(path, O_RDONLY);
    if (fd >= 0) {
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        if (n > 0) {
            buf[n] = '\0';
            rc = strcmp(buf, f->server) == 0;
        }
        close(fd);
    }
    return rc;
}

static void kill_instance(struct fixture *f, int pid)
{
    if (pid <= 1 || !is_test_server(f, pid)) {
        return;
    }
    kill(-pid, SIGKILL);
    kill(pid, SIGKILL);
    if (waitpid(pid, NULL, 0) < 0) {
        /* Not our child: wait for whoever reaps it. */
        struct timespec ts = {.tv_nsec = 10000000};
        for (int i = 0; i < 200 && kill(pid, 0) == 0; i++) {
            nanosleep(&ts, NULL);
        }
    }
}

/* Kill every instance named by a pid file or seen by a test. */
static void kill_all(struct fixture *f)
{
    DIR *top = opendir(f->state_dir);
    struct dirent *e;
    while (top && (e = readdir(top)) != NULL) {
        if (e->d_name[0] == '.') {
            continue;
        }
        char *dir = kn_asprintf("%s/%s", f->state_dir, e->d_name);
        DIR *d = opendir(dir);
        struct dirent *g;
        while (d && (g = readdir(d)) != NULL) {
            size_t n = strlen(g->d_name);
            if (n > 5 && strcmp(g->d_name + n - 5, ".json") == 0) {
                char *path = kn_asprintf("%s/%s", dir, g->d_name);
                json_t *root = json_load_file(path, 0, NULL);
                kill_instance(f, (int)json_integer_value(json_object_get(root, "pid")));
                json_decref(root);
                free(path);
            }
        }
        if (d) {
            closedir(d);
        }
        free(dir);
    }
    if (top) {
        closedir(top);
    }
    for (size_t i = 0; i < f->nseen; i++) {
        kill_instance(f, f->seen[i]);
    }
}

static void new_supervisor(struct fixture *f)
{
    assert_int_equal(
        kn_proc_supervisor_new(&f->sup, &f->loop, f->state_dir, f->port_min, f->port_max, f->http),
        0);
}

/* Close the supervisor and let its handles close (instances keep running). */
static void close_supervisor(struct fixture *f)
{
    kn_proc_supervisor_close(f->sup);
    f->sup = NULL;
    wait_for(f, never, NULL, 100);
}

static int setup(void **state)
{
    struct fixture *f = kn_calloc(1, sizeof(*f));
    f->server = getenv("KANARIA_TEST_SERVER");
    if (!f->server || f->server[0] != '/') {
        fail_msg("KANARIA_TEST_SERVER must be the absolute path of kanaria_test_server");
    }
    kn_log_setup(getenv("KANARIA_TEST_LOG") ? KN_LOG_DEBUG : KN_LOG_OFF, KN_LOG_LOGFMT);
    f->dir = kn_test_tmpdir();
    f->state_dir = kn_asprintf("%s/state", f->dir);
    /* A range of its own per test process, so that parallel runs rarely meet. */
    f->port_min = 30000 + (int)(getpid() % 700) * 40;
    f->port_max = f->port_min + 39;
    assert_int_equal(uv_loop_init(&f->loop), 0);
    uv_timer_init(&f->loop, &f->wake);
    assert_int_equal(kn_http_client_new(&f->http, &f->loop), 0);
    new_supervisor(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    if (f->sup) {
        kn_proc_supervisor_close(f->sup);
    }
    kn_http_client_close(f->http);
    uv_close((uv_handle_t *)&f->wake, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    kill_all(f);
    int rc = uv_loop_close(&f->loop);
    kn_test_rmtree(f->dir);
    free(f->state_dir);
    free(f->dir);
    free(f);
    assert_int_equal(rc, 0);
    return 0;
}

/* The test server on {{port}}, with env given as "K", "V", ... pairs. */
struct spec_buf {
    const char *argv[3];
    const char *keys[8];
    const char *values[8];
    struct kn_instance_spec spec;
};

static void make_spec(struct fixture *f, struct spec_buf *b, const char *variant, unsigned index,
                      const char *const *env)
{
    memset(b, 0, sizeof(*b));
    b->argv[0] = f->server;
    b->argv[1] = "--port";
    b->argv[2] = "{{port}}";
    size_t n = 0;
    for (; env && env[2 * n]; n++) {
        b->keys[n] = env[2 * n];
        b->values[n] = env[2 * n + 1];
    }
    b->spec.app = "hello";
    b->spec.variant = variant;
    b->spec.index = index;
    b->spec.argv = b->argv;
    b->spec.argc = 3;
    b->spec.env_keys = b->keys;
    b->spec.env_values = b->values;
    b->spec.env_count = n;
    b->spec.working_dir = f->dir;
    b->spec.health_path = "/healthz";
    b->spec.health_interval_ms = 100;
    b->spec.health_timeout_ms = 1000;
    b->spec.healthy_threshold = 2;
    b->spec.start_timeout_ms = 10000;
}

static void start_and_wait(struct fixture *f, struct spec_buf *b, struct start_result *r)
{
    memset(r, 0, sizeof(*r));
    assert_int_equal(kn_proc_start(f->sup, &b->spec, on_started, r), 0);
    assert_true(wait_for(f, is_set, &r->done, 20000));
    assert_int_equal(r->done, 1);
    seen_pid(f, r->pid);
}

/* ---- pure functions ----------------------------------------------------------------------- */

static void test_backoff(void **state)
{
    (void)state;
    assert_int_equal(kn_proc_backoff_ms(1), 1000);
    assert_int_equal(kn_proc_backoff_ms(2), 2000);
    assert_int_equal(kn_proc_backoff_ms(3), 4000);
    assert_int_equal(kn_proc_backoff_ms(5), 16000);
    assert_int_equal(kn_proc_backoff_ms(6), 30000);
    assert_int_equal(kn_proc_backoff_ms(1000), 30000);
}

static void test_substitute(void **state)
{
    (void)state;
    char *s = kn_proc_substitute("--port={{port}}", 20001, "canary");
    assert_string_equal(s, "--port=20001");
    free(s);
    s = kn_proc_substitute("{{variant}}:{{port}}:{{variant}}", 7, "canary");
    assert_string_equal(s, "canary:7:canary");
    free(s);
    s = kn_proc_substitute("{{other}} {{port} {{", 7, "primary");
    assert_string_equal(s, "{{other}} {{port} {{");
    free(s);
}

/* ---- with processes ----------------------------------------------------------------------- */

static void test_start_two_healthy(void **state)
{
    struct fixture *f = *state;
    static const char *const env[] = {"VERSION", "v1-{{variant}}", NULL};
    struct spec_buf b1, b2;
    struct start_result r1, r2;
    char body[256];

    make_spec(f, &b1, "primary", 1, env);
    make_spec(f, &b2, "primary", 2, env);
    start_and_wait(f, &b1, &r1);
    start_and_wait(f, &b2, &r2);
    assert_int_equal(r1.status, 0);
    assert_int_equal(r2.status, 0);
    assert_true(r1.healthy && r2.healthy);
    assert_int_not_equal(r1.port, r2.port);
    assert_true(r1.port >= f->port_min && r1.port <= f->port_max);

    /* Pid files and logs. */
    assert_int_equal(pidfile_pid(f, "hello", "primary-1"), r1.pid);
    assert_int_equal(pidfile_pid(f, "hello", "primary-2"), r2.pid);
    char *log = kn_asprintf("%s/hello/primary-1.log", f->state_dir);
    assert_true(file_exists(log));
    free(log);

    /* Serving through their ports, env substituted. */
    assert_int_equal(http_get(r1.port, "/", body, sizeof(body)), 200);
    assert_string_equal(body, "v1-primary");
    assert_int_equal(http_get(r2.port, "/", body, sizeof(body)), 200);
    assert_string_equal(body, "v1-primary");

    /* Listed. */
    struct kn_instance_info *items;
    size_t n;
    kn_proc_list(f->sup, "hello", &items, &n);
    assert_int_equal(n, 2);
    assert_string_equal(items[0].variant, "primary");
    assert_int_equal(items[0].index, 1);
    assert_int_equal(items[0].pid, r1.pid);
    assert_int_equal(items[1].index, 2);
    assert_int_equal(items[1].port, r2.port);
    assert_true(items[0].healthy && items[1].healthy);
    assert_int_equal(items[0].restarts, 0);
    kn_proc_list_free(items, n);
    kn_proc_list(f->sup, "other", &items, &n);
    assert_int_equal(n, 0);
    assert_null(items);

    /* The same instance again, or a bad spec, fail at once. */
    struct start_result again;
    memset(&again, 0, sizeof(again));
    assert_int_equal(kn_proc_start(f->sup, &b1.spec, on_started, &again), KN_EEXISTS);
    b2.spec.index = 3;
    b2.spec.working_dir = "relative";
    assert_int_equal(kn_proc_start(f->sup, &b2.spec, on_started, &again), KN_EINVAL);
    b2.spec.working_dir = f->dir;
    b2.spec.app = "../escape";
    assert_int_equal(kn_proc_start(f->sup, &b2.spec, on_started, &again), KN_EINVAL);
    wait_for(f, never, NULL, 50);
    assert_int_equal(again.done, 0);
}

static void test_unhealthy(void **state)
{
    struct fixture *f = *state;
    static const char *const env[] = {"UNHEALTHY", "1", NULL};
    struct spec_buf b;
    struct start_result r;

    make_spec(f, &b, "canary", 1, env);
    b.spec.start_timeout_ms = 2000;
    start_and_wait(f, &b, &r);
    assert_int_equal(r.status, KN_EIO);
    assert_string_equal(r.error, "instance canary-1 not healthy after 2s: status 503");
    assert_false(process_exists(r.pid));
    char *path = pidfile_path(f, "hello", "canary-1");
    assert_false(file_exists(path));
    free(path);

    struct kn_instance_info *items;
    size_t n;
    kn_proc_list(f->sup, NULL, &items, &n);
    assert_int_equal(n, 0);
}

static void test_exit_before_healthy(void **state)
{
    struct fixture *f = *state;
    static const char *const env[] = {"UNHEALTHY", "1", "EXIT_AFTER_MS", "300", NULL};
    struct spec_buf b;
    struct start_result r;

    make_spec(f, &b, "canary", 1, env);
    start_and_wait(f, &b, &r);
    assert_int_equal(r.status, KN_EIO);
    assert_string_equal(r.error, "instance canary-1 exited with status 3 before it was healthy");
    char *path = pidfile_path(f, "hello", "canary-1");
    assert_false(file_exists(path));
    free(path);

    /* A program that cannot be run is reported through the callback as well. */
    b.argv[0] = "/nonexistent/kanaria-test-server";
    start_and_wait(f, &b, &r);
    assert_int_equal(r.status, KN_EIO);
    assert_non_null(strstr(r.error, "instance canary-1: cannot run /nonexistent/"));
}

struct restarted {
    struct fixture *f;
    int old_pid;
    int pid;
    int port;
    unsigned restarts;
};

static int has_restarted(void *arg)
{
    struct restarted *w = arg;
    struct kn_instance_info *items;
    size_t n;
    int rc = 0;
    kn_proc_list(w->f->sup, "hello", &items, &n);
    if (n == 1 && items[0].pid > 0 && items[0].pid != w->old_pid && items[0].healthy) {
        w->pid = items[0].pid;
        w->port = items[0].port;
        w->restarts = items[0].restarts;
        rc = 1;
    }
    if (n == 1) {
        seen_pid(w->f, items[0].pid);
    }
    kn_proc_list_free(items, n);
    return rc;
}

static void test_crash_restart(void **state)
{
    struct fixture *f = *state;
    static const char *const env[] = {"VERSION", "v2", "EXIT_AFTER_MS", "1500", NULL};
    struct spec_buf b;
    struct start_result r;
    char body[256];

    make_spec(f, &b, "primary", 1, env);
    b.spec.healthy_threshold = 1;
    start_and_wait(f, &b, &r);
    assert_int_equal(r.status, 0);

    struct restarted w = {.f = f, .old_pid = r.pid};
    assert_true(wait_for(f, has_restarted, &w, 15000));
    assert_int_not_equal(w.pid, r.pid);
    assert_int_equal(w.port, r.port);
    assert_true(w.restarts >= 1);
    assert_int_equal(http_get(w.port, "/", body, sizeof(body)), 200);
    assert_string_equal(body, "v2");
    /* The pid file follows the new process (it may have been restarted once more by now). */
    assert_int_not_equal(pidfile_pid(f, "hello", "primary-1"), r.pid);
}

static void test_stop(void **state)
{
    struct fixture *f = *state;
    struct spec_buf b;
    struct start_result r;
    struct stop_result s = {0};

    make_spec(f, &b, "canary", 2, NULL);
    start_and_wait(f, &b, &r);
    assert_int_equal(r.status, 0);
    assert_true(process_exists(r.pid));

    assert_int_equal(kn_proc_stop(f->sup, "hello", "canary", 2, on_stopped, &s), 0);
    assert_int_equal(kn_proc_stop(f->sup, "hello", "canary", 2, on_stopped, &s), KN_EINVAL);
    assert_true(wait_for(f, is_set, &s.done, 15000));
    assert_int_equal(s.done, 1);
    assert_int_equal(s.status, 0);
    assert_false(process_exists(r.pid));
    char *path = pidfile_path(f, "hello", "canary-2");
    assert_false(file_exists(path));
    free(path);
    assert_int_equal(kn_proc_stop(f->sup, "hello", "canary", 2, on_stopped, &s), KN_ENOTFOUND);

    /* Stopping an instance that is still starting reports both. */
    static const char *const env[] = {"UNHEALTHY", "1", NULL};
    make_spec(f, &b, "canary", 3, env);
    memset(&r, 0, sizeof(r));
    memset(&s, 0, sizeof(s));
    assert_int_equal(kn_proc_start(f->sup, &b.spec, on_started, &r), 0);
    assert_int_equal(kn_proc_stop(f->sup, "hello", "canary", 3, on_stopped, &s), 0);
    assert_true(wait_for(f, is_set, &s.done, 15000));
    seen_pid(f, r.pid);
    assert_int_equal(r.done, 1);
    assert_int_equal(r.status, KN_EIO);
    assert_string_equal(r.error, "instance canary-3 was stopped before it was healthy");
}

/* An instance that ignores SIGTERM is killed once the grace period is over. */
static void test_stop_sigkill(void **state)
{
    struct fixture *f = *state;
    struct spec_buf b;
    struct start_result r;
    struct stop_result s = {0};

    kn_proc_supervisor_set_stop_grace(f->sup, 300);
    make_spec(f, &b, "primary", 1, NULL);
    char *script = kn_asprintf("trap '' TERM; exec %s --port {{port}}", f->server);
    b.argv[0] = "/bin/sh";
    b.argv[1] = "-c";
    b.argv[2] = script;
    start_and_wait(f, &b, &r);
    free(script);
    assert_int_equal(r.status, 0);

    assert_int_equal(kn_proc_stop(f->sup, "hello", "primary", 1, on_stopped, &s), 0);
    assert_true(wait_for(f, is_set, &s.done, 15000));
    assert_int_equal(s.status, 0);
    assert_false(process_exists(r.pid));
}

struct healthy_wait {
    struct fixture *f;
    int pid;
};

static int is_healthy(void *arg)
{
    struct healthy_wait *w = arg;
    struct kn_instance_info *items;
    size_t n;
    kn_proc_list(w->f->sup, "hello", &items, &n);
    int rc = n == 1 && items[0].pid == w->pid && items[0].healthy;
    kn_proc_list_free(items, n);
    return rc;
}

static void test_adopt(void **state)
{
    struct fixture *f = *state;
    static const char *const env[] = {"VERSION", "v3", NULL};
    struct spec_buf b;
    struct start_result r;
    struct stop_result s = {0};
    size_t adopted = 0;
    char body[256];

    make_spec(f, &b, "primary", 1, env);
    start_and_wait(f, &b, &r);
    assert_int_equal(r.status, 0);

    /* kanaria goes away: the instance stays. */
    close_supervisor(f);
    assert_true(process_exists(r.pid));
    assert_int_equal(http_get(r.port, "/", body, sizeof(body)), 200);
    assert_string_equal(body, "v3");

    new_supervisor(f);
    assert_int_equal(kn_proc_adopt_all(f->sup, &adopted), 0);
    assert_int_equal(adopted, 1);
    struct kn_instance_info *items;
    size_t n;
    kn_proc_list(f->sup, "hello", &items, &n);
    assert_int_equal(n, 1);
    assert_string_equal(items[0].variant, "primary");
    assert_int_equal(items[0].index, 1);
    assert_int_equal(items[0].pid, r.pid);
    assert_int_equal(items[0].port, r.port);
    assert_true(items[0].adopted);
    kn_proc_list_free(items, n);

    /* Health-checked again, and not adopted twice. */
    struct healthy_wait w = {.f = f, .pid = r.pid};
    assert_true(wait_for(f, is_healthy, &w, 10000));
    assert_int_equal(kn_proc_adopt_all(f->sup, &adopted), 0);
    assert_int_equal(adopted, 0);

    /* A new instance does not take the adopted one's port. */
    struct spec_buf b2;
    struct start_result r2;
    make_spec(f, &b2, "canary", 1, env);
    start_and_wait(f, &b2, &r2);
    assert_int_equal(r2.status, 0);
    assert_int_not_equal(r2.port, r.port);

    /* Stopped through the new supervisor. */
    assert_int_equal(kn_proc_stop(f->sup, "hello", "primary", 1, on_stopped, &s), 0);
    assert_true(wait_for(f, is_set, &s.done, 15000));
    assert_int_equal(s.status, 0);
    assert_false(process_exists(r.pid));
    char *path = pidfile_path(f, "hello", "primary-1");
    assert_false(file_exists(path));
    free(path);
}

/* An adopted instance that exits is noticed by polling and restarted like a spawned one. */
static void test_adopt_crash_restart(void **state)
{
    struct fixture *f = *state;
    static const char *const env[] = {"VERSION", "v4", "EXIT_AFTER_MS", "2500", NULL};
    struct spec_buf b;
    struct start_result r;
    size_t adopted = 0;
    char body[256];

    make_spec(f, &b, "primary", 1, env);
    b.spec.healthy_threshold = 1;
    start_and_wait(f, &b, &r);
    assert_int_equal(r.status, 0);
    close_supervisor(f);
    new_supervisor(f);
    assert_int_equal(kn_proc_adopt_all(f->sup, &adopted), 0);
    assert_int_equal(adopted, 1);

    struct restarted w = {.f = f, .old_pid = r.pid};
    assert_true(wait_for(f, has_restarted, &w, 15000));
    assert_int_equal(w.port, r.port);
    assert_true(w.restarts >= 1);
    assert_int_equal(http_get(w.port, "/", body, sizeof(body)), 200);
    assert_string_equal(body, "v4");
    assert_false(process_exists(r.pid));
}

static void test_adopt_stale(void **state)
{
    struct fixture *f = *state;
    size_t adopted = 9;

    /* The pid of a process that has finished. */
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        _exit(0);
    }
    assert_int_equal(waitpid(child, NULL, 0), child);

    char *gone = kn_asprintf("{\"pid\": %d, \"port\": %d, \"argv\": [\"%s\", \"--port\", "
                             "\"%d\"], \"started_at\": 1}",
                             (int)child, f->port_min, f->server, f->port_min);
    kn_test_write(f->state_dir, "hello/primary-1.json", gone);
    /* A live pid that now runs another program (this test). */
    char *reused = kn_asprintf("{\"pid\": %d, \"port\": %d, \"argv\": [\"%s\"], "
                               "\"started_at\": 1}",
                               (int)getpid(), f->port_min + 1, f->server);
    kn_test_write(f->state_dir, "hello/canary-1.json", reused);
    kn_test_write(f->state_dir, "hello/broken-1.json", "{not json");
    kn_test_write(f->state_dir, "hello/notes.json", "{}");

    assert_int_equal(kn_proc_adopt_all(f->sup, &adopted), 0);
    assert_int_equal(adopted, 0);
    char *p1 = pidfile_path(f, "hello", "primary-1");
    char *p2 = pidfile_path(f, "hello", "canary-1");
    char *p3 = pidfile_path(f, "hello", "broken-1");
    char *p4 = pidfile_path(f, "hello", "notes");
    assert_false(file_exists(p1));
    assert_false(file_exists(p2));
    assert_false(file_exists(p3));
    assert_true(file_exists(p4)); /* not named like an instance: not ours to remove */
    free(p1);
    free(p2);
    free(p3);
    free(p4);
    free(gone);
    free(reused);

    struct kn_instance_info *items;
    size_t n;
    kn_proc_list(f->sup, NULL, &items, &n);
    assert_int_equal(n, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_substitute),
        cmocka_unit_test_setup_teardown(test_start_two_healthy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unhealthy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exit_before_healthy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_sigkill, setup, teardown),
        cmocka_unit_test_setup_teardown(test_adopt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_adopt_crash_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_adopt_stale, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
