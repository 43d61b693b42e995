/*
 * The local platform's instance supervisor (process.h).
 *
 * Lifetime: an instance is in the supervisor's list from kn_proc_start (or adoption) until it is
 * stopped, fails to start, or the supervisor closes; it is then unlinked (state GONE) and freed
 * once its loop handles are closed and no health check of it is in flight (`refs`). The
 * supervisor is freed once it is closing and no instance is left.
 *
 * A spawned process is watched through its uv_process_t exit callback. An adopted one is not our
 * child (or was the child of an earlier supervisor in this process, whose handle is gone), so it
 * is watched by polling: waitpid(WNOHANG) reaps it when it is our child, kill(pid, 0) tells
 * otherwise. waitpid is safe here because libuv waits only for the pids of its own handles.
 */
#include "platforms/local/process.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kanaria/alloc.h"
#include "kanaria/error.h"
#include "kanaria/fd.h"
#include "kanaria/log.h"

#define KN_PROC_INTERVAL_MS      1000
#define KN_PROC_TIMEOUT_MS       1000
#define KN_PROC_START_TIMEOUT_MS 30000
#define KN_PROC_STOP_GRACE_MS    5000
/* The first health check comes this soon after a spawn (or the interval when it is shorter). */
#define KN_PROC_FIRST_CHECK_MS 100
/* How often an adopted instance's pid is checked. */
#define KN_PROC_POLL_MS 1000
/* How often a stopping instance is checked. */
#define KN_PROC_STOP_POLL_MS     50
#define KN_PROC_BACKOFF_FIRST_MS 1000
#define KN_PROC_BACKOFF_MAX_MS   30000
/* An instance that was up this long before exiting starts its backoff over. */
#define KN_PROC_STABLE_MS       60000
#define KN_PROC_NAME_MAX        64
#define KN_PROC_PIDFILE_MAX     (256 * 1024)
#define KN_PROC_HEALTH_BODY_MAX (64 * 1024)

enum kn_proc_state {
    KN_PROC_STARTING, /* spawned, not yet healthy; start_cb pending */
    KN_PROC_RUNNING,  /* supervised; `healthy` says whether it passed its check since (re)start */
    KN_PROC_BACKOFF,  /* exited; restarted when `tick` fires */
    KN_PROC_STOPPING, /* signalled; waiting for it to be gone */
    KN_PROC_GONE,     /* unlinked; freed when refs reach 0 */
};

struct kn_proc_instance {
    struct kn_proc_supervisor *sup;
    struct kn_proc_instance *next;
    enum kn_proc_state state;
    char *app;
    char *variant;
    unsigned index;
    char *name; /* "canary-1" */
    char *who;  /* "local app=hello variant=canary instance=1" */
    char *pidfile;
    char *logfile;

    /* What runs, substituted; argv is NULL-terminated. */
    char **argv;
    size_t argc;
    char **env_keys;
    char **env_values;
    size_t env_count;
    char *cwd;
    char *health_path; /* NULL: no HTTP check */
    long long interval_ms;
    long long timeout_ms;
    long long threshold;
    long long start_timeout_ms;

    int port;
    int pid;     /* 0 when no process */
    int running; /* the process has not been seen to exit */
    int adopted; /* watched by polling, not by `proc` */
    int healthy;
    long long streak; /* 2xx answers in a row */
    unsigned restarts;
    unsigned crashes; /* exits in a row, for the backoff */
    long long started_at_ms;
    uint64_t spawned_at; /* loop time */
    unsigned gen;        /* bumped whenever a health check in flight becomes meaningless */
    char last_error[256];
    char *fail_msg; /* why the start failed, reported once the process is gone */

    uv_process_t proc;
    int proc_open;
    uv_timer_t tick;     /* next health check, restart, or stop poll */
    uv_timer_t deadline; /* start deadline or stop grace */
    int refs;            /* open handles + health check in flight */

    kn_proc_start_cb start_cb;
    void *start_data;
    kn_proc_stop_cb stop_cb;
    void *stop_data;
};

struct kn_proc_supervisor {
    uv_loop_t *loop;
    char *state_dir;
    int port_min;
    int port_max;
    long long stop_grace_ms;
    struct kn_http_client *http;
    struct kn_proc_instance *instances;
    uv_timer_t poll; /* liveness of adopted instances */
    int refs;        /* the poll timer + every allocated instance */
    int closing;
};

extern char **environ;

static void kn_proc_on_check_tick(uv_timer_t *t);
static void kn_proc_begin_stop(struct kn_proc_instance *inst);

/* ---- small helpers ------------------------------------------------------------------------ */

long long kn_proc_backoff_ms(unsigned crashes)
{
    long long ms = KN_PROC_BACKOFF_FIRST_MS;
    for (unsigned i = 1; i < crashes && ms < KN_PROC_BACKOFF_MAX_MS; i++) {
        ms *= 2;
    }
    return ms < KN_PROC_BACKOFF_MAX_MS ? ms : KN_PROC_BACKOFF_MAX_MS;
}

char *kn_proc_substitute(const char *s, int port, const char *variant)
{
    struct kn_buf b;
    kn_buf_init(&b, KN_BUF_UNBOUNDED);
    while (*s) {
        if (strncmp(s, "{{port}}", 8) == 0) {
            kn_buf_addf(&b, "%d", port);
            s += 8;
        } else if (strncmp(s, "{{variant}}", 11) == 0) {
            kn_buf_adds(&b, variant);
            s += 11;
        } else {
            kn_buf_addch(&b, *s++);
        }
    }
    return kn_buf_detach(&b, NULL);
}

static long long kn_proc_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A name that is safe as one path component. */
static int kn_proc_name_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > KN_PROC_NAME_MAX || s[0] == '.') {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.')) {
            return 0;
        }
    }
    return 1;
}

/* "30s" for whole seconds, else "1500ms". */
static void kn_proc_format_ms(char *buf, size_t size, long long ms)
{
    if (ms % 1000 == 0) {
        snprintf(buf, size, "%llds", ms / 1000);
    } else {
        snprintf(buf, size, "%lldms", ms);
    }
}

static int kn_proc_mkdirs(const char *path)
{
    int rc = 0;
    char *p = kn_strdup(path);
    for (char *s = p + 1;; s++) {
        if (*s == '/' || *s == '\0') {
            char c = *s;
            *s = '\0';
            if (mkdir(p, 0755) < 0 && errno != EEXIST) {
                rc = KN_EIO;
                goto out;
            }
            *s = c;
            if (c == '\0') {
                break;
            }
        }
    }
out:
    free(p);
    return rc;
}

/* 1 while pid is a process we may signal, 0 once it is gone (a zombie child of ours is reaped
 * here). Only for processes that no uv_process_t of this loop watches. */
static int kn_proc_alive(int pid)
{
    int status;
    int rc = 0;
    if (pid <= 1) {
        goto out;
    }
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) {
        goto out;
    }
    if (r == 0) {
        rc = 1;
        goto out;
    }
    /* Not our child: it exists when it may be signalled. EPERM means another user's process
     * has the pid now, so ours is gone. */
    rc = kill(pid, 0) == 0;
out:
    return rc;
}

/* Signal the instance's process group (it leads its own session), or the process alone when the
 * group is already gone. */
static void kn_proc_signal(int pid, int sig)
{
    if (pid > 1 && kill(-pid, sig) < 0) {
        kill(pid, sig);
    }
}

/* Whether /proc/PID/cmdline's first word is argv0 (0 when it cannot be read). */
static int kn_proc_cmdline_matches(int pid, const char *argv0)
{
    char path[64];
    char buf[4096];
    int rc = 0;
    snprintf(path, sizeof(path), "/proc/%d/cmdline", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        goto out;
    }
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0) {
        goto out;
    }
    buf[n] = '\0';
    rc = strcmp(buf, argv0) == 0;
out:
    return rc;
}

/* Whether the port can be bound on 127.0.0.1 right now (SO_REUSEADDR, as servers bind). */
static int kn_proc_port_bindable(int port)
{
    struct sockaddr_in addr;
    int one = 1;
    int rc = 0;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        goto out;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    rc = bind(fd, (const struct sockaddr *)&addr, sizeof(addr)) == 0;
out:
    if (fd >= 0) {
        close(fd);
    }
    return rc;
}

static int kn_proc_alloc_port(struct kn_proc_supervisor *sup, int *port)
{
    int rc = KN_ELIMIT;
    for (int p = sup->port_min; p <= sup->port_max; p++) {
        int ours = 0;
        for (struct kn_proc_instance *i = sup->instances; i; i = i->next) {
            if (i->port == p) {
                ours = 1;
                break;
            }
        }
        if (!ours && kn_proc_port_bindable(p)) {
            *port = p;
            rc = 0;
            break;
        }
    }
    return rc;
}

static struct kn_proc_instance *kn_proc_find(struct kn_proc_supervisor *sup, const char *app,
                                             const char *variant, unsigned index)
{
    struct kn_proc_instance *i = sup->instances;
    while (i &&
           !(i->index == index && strcmp(i->app, app) == 0 && strcmp(i->variant, variant) == 0)) {
        i = i->next;
    }
    return i;
}

static void kn_proc_info(const struct kn_proc_instance *inst, struct kn_instance_info *info)
{
    info->app = inst->app;
    info->variant = inst->variant;
    info->index = inst->index;
    info->pid = inst->pid;
    info->port = inst->port;
    info->healthy = inst->healthy;
    info->adopted = inst->adopted;
    info->restarts = inst->restarts;
    info->started_at_ms = inst->started_at_ms;
}

/* ---- instance memory ---------------------------------------------------------------------- */

static void kn_proc_strv_free(char **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++) {
        free(v[i]);
    }
    free(v);
}

static void kn_proc_sup_unref(struct kn_proc_supervisor *sup)
{
    if (--sup->refs == 0) {
        free(sup->state_dir);
        free(sup);
    }
}

static void kn_proc_inst_free(struct kn_proc_instance *inst)
{
    struct kn_proc_supervisor *sup = inst->sup;
    free(inst->app);
    free(inst->variant);
    free(inst->name);
    free(inst->who);
    free(inst->pidfile);
    free(inst->logfile);
    kn_proc_strv_free(inst->argv, inst->argc);
    kn_proc_strv_free(inst->env_keys, inst->env_count);
    kn_proc_strv_free(inst->env_values, inst->env_count);
    free(inst->cwd);
    free(inst->health_path);
    free(inst->fail_msg);
    free(inst);
    kn_proc_sup_unref(sup);
}

static void kn_proc_inst_unref(struct kn_proc_instance *inst)
{
    if (--inst->refs == 0 && inst->state == KN_PROC_GONE) {
        kn_proc_inst_free(inst);
    }
}

static void kn_proc_on_handle_closed(uv_handle_t *h)
{
    kn_proc_inst_unref(h->data);
}

/* A new instance with its timers, linked into the supervisor. Names must have been checked. */
static struct kn_proc_instance *kn_proc_inst_new(struct kn_proc_supervisor *sup, const char *app,
                                                 const char *variant, unsigned index, int port)
{
    struct kn_proc_instance *inst = kn_calloc(1, sizeof(*inst));
    inst->sup = sup;
    inst->app = kn_strdup(app);
    inst->variant = kn_strdup(variant);
    inst->index = index;
    inst->port = port;
    inst->name = kn_asprintf("%s-%u", variant, index);
    inst->who = kn_asprintf("local app=%s variant=%s instance=%u", app, variant, index);
    inst->pidfile = kn_asprintf("%s/%s/%s.json", sup->state_dir, app, inst->name);
    inst->logfile = kn_asprintf("%s/%s/%s.log", sup->state_dir, app, inst->name);
    inst->interval_ms = KN_PROC_INTERVAL_MS;
    inst->timeout_ms = KN_PROC_TIMEOUT_MS;
    inst->threshold = 1;
    inst->start_timeout_ms = KN_PROC_START_TIMEOUT_MS;
    uv_timer_init(sup->loop, &inst->tick);
    uv_timer_init(sup->loop, &inst->deadline);
    inst->tick.data = inst;
    inst->deadline.data = inst;
    inst->refs = 2;
    sup->refs++;
    inst->next = sup->instances;
    sup->instances = inst;
    return inst;
}

/* Forget the instance: unlink it and close its handles. The process is left alone. */
static void kn_proc_release(struct kn_proc_instance *inst)
{
    struct kn_proc_instance **pp = &inst->sup->instances;
    while (*pp && *pp != inst) {
        pp = &(*pp)->next;
    }
    if (*pp) {
        *pp = inst->next;
    }
    inst->next = NULL;
    inst->state = KN_PROC_GONE;
    inst->gen++;
    uv_close((uv_handle_t *)&inst->tick, kn_proc_on_handle_closed);
    uv_close((uv_handle_t *)&inst->deadline, kn_proc_on_handle_closed);
    if (inst->proc_open) {
        inst->proc_open = 0;
        uv_close((uv_handle_t *)&inst->proc, kn_proc_on_handle_closed);
    }
}

/* ---- pid files ---------------------------------------------------------------------------- */

static json_t *kn_proc_pidfile_json(const struct kn_proc_instance *inst)
{
    json_t *root = json_object();
    json_t *argv = json_array();
    json_t *env = json_object();
    json_t *health = json_object();
    for (size_t i = 0; i < inst->argc; i++) {
        json_array_append_new(argv, json_string(inst->argv[i]));
    }
    for (size_t i = 0; i < inst->env_count; i++) {
        json_object_set_new(env, inst->env_keys[i], json_string(inst->env_values[i]));
    }
    json_object_set_new(root, "pid", json_integer(inst->pid));
    json_object_set_new(root, "port", json_integer(inst->port));
    json_object_set_new(root, "argv", argv);
    json_object_set_new(root, "started_at", json_integer(inst->started_at_ms));
    json_object_set_new(root, "env", env);
    json_object_set_new(root, "cwd", json_string(inst->cwd));
    if (inst->health_path) {
        json_object_set_new(health, "path", json_string(inst->health_path));
    }
    json_object_set_new(health, "interval_ms", json_integer(inst->interval_ms));
    json_object_set_new(health, "timeout_ms", json_integer(inst->timeout_ms));
    json_object_set_new(health, "healthy_threshold", json_integer(inst->threshold));
    json_object_set_new(root, "health", health);
    json_object_set_new(root, "restarts", json_integer(inst->restarts));
    return root;
}

/* Write the pid file through a temporary file and rename(2), so a reader (or a crash) never
 * sees half of it. */
static int kn_proc_write_pidfile(struct kn_proc_instance *inst, char *err, size_t errsize)
{
    int rc = 0;
    int fd = -1;
    json_t *root = kn_proc_pidfile_json(inst);
    char *text = json_dumps(root, JSON_INDENT(2));
    char *tmp = kn_asprintf("%s.tmp", inst->pidfile);
    size_t len = text ? strlen(text) : 0;
    size_t done = 0;

    if (!text) {
        rc = KN_ENOMEM;
        snprintf(err, errsize, "cannot encode pid file %s", inst->pidfile);
        goto out;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        goto fail;
    }
    while (done < len) {
        ssize_t n = write(fd, text + done, len - done);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            goto fail;
        }
        done += (size_t)n;
    }
    if (fsync(fd) < 0 || close(fd) < 0) {
        fd = -1;
        goto fail;
    }
    fd = -1;
    if (rename(tmp, inst->pidfile) < 0) {
        goto fail;
    }
    goto out;
fail:
    rc = KN_EIO;
    snprintf(err, errsize, "cannot write pid file %s: %s", inst->pidfile, strerror(errno));
    unlink(tmp);
out:
    if (fd >= 0) {
        close(fd);
    }
    free(tmp);
    free(text);
    json_decref(root);
    return rc;
}

static void kn_proc_remove_pidfile(const struct kn_proc_instance *inst)
{
    if (unlink(inst->pidfile) < 0 && errno != ENOENT) {
        kn_log_warn(inst->who, "cannot remove pid file %s: %s", inst->pidfile, strerror(errno));
    }
}

/* ---- spawning ----------------------------------------------------------------------------- */

/* kanaria's environment with the instance's variables added (replacing ones of the same name).
 * NULL-terminated; free with kn_proc_strv_free(env, count). */
static char **kn_proc_build_env(const struct kn_proc_instance *inst, size_t *count)
{
    size_t n = 0;
    size_t total = 0;
    while (environ[total]) {
        total++;
    }
    char **env = kn_calloc(total + inst->env_count + 1, sizeof(*env));
    for (size_t i = 0; i < total; i++) {
        const char *eq = strchr(environ[i], '=');
        size_t klen = eq ? (size_t)(eq - environ[i]) : strlen(environ[i]);
        int overridden = 0;
        for (size_t j = 0; j < inst->env_count; j++) {
            if (strlen(inst->env_keys[j]) == klen &&
                strncmp(inst->env_keys[j], environ[i], klen) == 0) {
                overridden = 1;
                break;
            }
        }
        if (!overridden) {
            env[n++] = kn_strdup(environ[i]);
        }
    }
    for (size_t j = 0; j < inst->env_count; j++) {
        env[n++] = kn_asprintf("%s=%s", inst->env_keys[j], inst->env_values[j]);
    }
    *count = n;
    return env;
}

static void kn_proc_on_exit(uv_process_t *proc, int64_t status, int term_signal);

/* Spawn the instance's process in its own session with its output appended to its log file,
 * and record it in its pid file. On failure `err` says why; when the process runs but its pid
 * file could not be written, inst->pid is set and the process must be stopped. */
static int kn_proc_spawn(struct kn_proc_instance *inst, char *err, size_t errsize)
{
    struct kn_proc_supervisor *sup = inst->sup;
    uv_process_options_t opts;
    uv_stdio_container_t stdio[3];
    size_t envc = 0;
    char **env = NULL;
    int rc = 0;
    int fd = open(inst->logfile, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);

    if (fd < 0) {
        rc = KN_EIO;
        snprintf(err, errsize, "cannot open %s: %s", inst->logfile, strerror(errno));
        goto out;
    }
    env = kn_proc_build_env(inst, &envc);
    memset(&opts, 0, sizeof(opts));
    memset(stdio, 0, sizeof(stdio));
    stdio[0].flags = UV_IGNORE;
    stdio[1].flags = UV_INHERIT_FD;
    stdio[1].data.fd = fd;
    stdio[2].flags = UV_INHERIT_FD;
    stdio[2].data.fd = fd;
    opts.exit_cb = kn_proc_on_exit;
    opts.file = inst->argv[0];
    opts.args = inst->argv;
    opts.env = env;
    opts.cwd = inst->cwd;
    opts.flags = UV_PROCESS_DETACHED;
    opts.stdio_count = 3;
    opts.stdio = stdio;

    kn_fd_cloexec_all();
    /* On Unix the handle is initialized even when uv_spawn fails, so it is closed either way. */
    int uvrc = uv_spawn(sup->loop, &inst->proc, &opts);
    inst->proc.data = inst;
    inst->proc_open = 1;
    inst->refs++;
    if (uvrc < 0) {
        rc = KN_EIO;
        snprintf(err, errsize, "cannot run %s: %s", inst->argv[0], uv_strerror(uvrc));
        inst->proc_open = 0;
        uv_close((uv_handle_t *)&inst->proc, kn_proc_on_handle_closed);
        goto out;
    }
    /* An instance must not keep the loop alive, nor die with kanaria. */
    uv_unref((uv_handle_t *)&inst->proc);
    inst->pid = inst->proc.pid;
    inst->running = 1;
    inst->adopted = 0;
    inst->healthy = 0;
    inst->streak = 0;
    inst->spawned_at = uv_now(sup->loop);
    inst->started_at_ms = kn_proc_wall_ms();
    inst->last_error[0] = '\0';
    inst->gen++;
    rc = kn_proc_write_pidfile(inst, err, errsize);
out:
    if (fd >= 0) {
        close(fd);
    }
    kn_proc_strv_free(env, envc);
    return rc;
}

static void kn_proc_schedule_check(struct kn_proc_instance *inst, long long delay_ms)
{
    uv_timer_start(&inst->tick, kn_proc_on_check_tick, (uint64_t)delay_ms, 0);
}

/* Soon after a spawn when there is an HTTP check (most servers are up in well under the
 * interval); one interval when the check is only "still running". */
static long long kn_proc_first_check_ms(const struct kn_proc_instance *inst)
{
    long long ms = inst->interval_ms;
    if (inst->health_path && ms > KN_PROC_FIRST_CHECK_MS) {
        ms = KN_PROC_FIRST_CHECK_MS;
    }
    return ms;
}

/* ---- start and health checks -------------------------------------------------------------- */

/* The start failed for `msg` (taken): stop what runs, then report. */
static void kn_proc_fail_start(struct kn_proc_instance *inst, char *msg)
{
    free(inst->fail_msg);
    inst->fail_msg = msg;
    kn_proc_begin_stop(inst);
}

static void kn_proc_on_start_deadline(uv_timer_t *t)
{
    struct kn_proc_instance *inst = t->data;
    const char *why = inst->last_error[0] ? inst->last_error : "no health check finished";
    char took[32];
    if (inst->state == KN_PROC_STARTING) {
        kn_proc_format_ms(took, sizeof(took), inst->start_timeout_ms);
        kn_log_warn(inst->who, "not healthy after %s: %s; stopping it", took, why);
        kn_proc_fail_start(
            inst, kn_asprintf("instance %s not healthy after %s: %s", inst->name, took, why));
    }
}

static void kn_proc_became_healthy(struct kn_proc_instance *inst)
{
    struct kn_instance_info info;
    inst->healthy = 1;
    if (inst->state == KN_PROC_STARTING) {
        kn_proc_start_cb cb = inst->start_cb;
        void *data = inst->start_data;
        inst->state = KN_PROC_RUNNING;
        inst->start_cb = NULL;
        uv_timer_stop(&inst->deadline);
        kn_log_info(inst->who, "healthy on port %d (pid %d)", inst->port, inst->pid);
        kn_proc_info(inst, &info);
        cb(0, &info, NULL, data);
    } else {
        kn_log_info(inst->who, "healthy on port %d (pid %d, %s)", inst->port, inst->pid,
                    inst->adopted ? "adopted" : "restarted");
    }
}

/* One health check's verdict: count it, and decide. */
static void kn_proc_check_result(struct kn_proc_instance *inst, int ok)
{
    if (ok) {
        inst->streak++;
    } else {
        inst->streak = 0;
    }
    if (inst->streak >= inst->threshold) {
        kn_proc_became_healthy(inst);
    } else {
        kn_proc_schedule_check(inst, inst->interval_ms);
    }
}

/* One health check in flight: the instance it is for and the generation it was sent in. */
struct kn_proc_check {
    struct kn_proc_instance *inst;
    unsigned gen;
};

static void kn_proc_on_check_done(const struct kn_http_response *res, void *data)
{
    struct kn_proc_check *check = data;
    struct kn_proc_instance *inst = check->inst;
    int ok = 0;

    /* The check still counts in refs, so inst lives through a start callback run from here. */
    if (check->gen != inst->gen ||
        (inst->state != KN_PROC_STARTING && inst->state != KN_PROC_RUNNING)) {
        goto out;
    }
    if (res->error) {
        snprintf(inst->last_error, sizeof(inst->last_error), "%s", res->error);
    } else if (res->status < 200 || res->status > 299) {
        snprintf(inst->last_error, sizeof(inst->last_error), "status %d", res->status);
    } else {
        ok = 1;
    }
    kn_proc_check_result(inst, ok);
out:
    free(check);
    kn_proc_inst_unref(inst);
}

static void kn_proc_on_check_tick(uv_timer_t *t)
{
    struct kn_proc_instance *inst = t->data;
    struct kn_proc_check *check = NULL;
    char *url = NULL;

    if ((inst->state != KN_PROC_STARTING && inst->state != KN_PROC_RUNNING) || inst->healthy) {
        goto out;
    }
    if (!inst->health_path) {
        /* No HTTP check: each interval it stayed up counts as a pass. */
        kn_proc_check_result(inst, 1);
        goto out;
    }
    url = kn_asprintf("http://127.0.0.1:%d%s", inst->port, inst->health_path);
    struct kn_http_request req = {
        .method = "GET",
        .url = url,
        .timeout_ms = (long)inst->timeout_ms,
        .max_response = KN_PROC_HEALTH_BODY_MAX,
    };
    check = kn_malloc(sizeof(*check));
    check->inst = inst;
    check->gen = inst->gen;
    int rc = kn_http_request(inst->sup->http, &req, kn_proc_on_check_done, check);
    if (rc < 0) {
        free(check);
        snprintf(inst->last_error, sizeof(inst->last_error), "cannot send the check: %s",
                 kn_strerror(rc));
        kn_proc_check_result(inst, 0);
        goto out;
    }
    inst->refs++;
out:
    free(url);
}

/* ---- exits, restarts and stops ------------------------------------------------------------ */

static void kn_proc_on_restart_tick(uv_timer_t *t);

/* The process of a running instance is gone (or could not be restarted), `how` says so:
 * restart it after a backoff. */
static void kn_proc_crashed(struct kn_proc_instance *inst, const char *how)
{
    struct kn_proc_supervisor *sup = inst->sup;
    char delay_s[32];
    if (inst->spawned_at && uv_now(sup->loop) - inst->spawned_at >= KN_PROC_STABLE_MS) {
        inst->crashes = 0;
    }
    inst->crashes++;
    long long delay = kn_proc_backoff_ms(inst->crashes);
    kn_proc_format_ms(delay_s, sizeof(delay_s), delay);
    kn_log_warn(inst->who, "%s; restarting it on port %d in %s (restart %u)", how, inst->port,
                delay_s, inst->restarts + 1);
    inst->state = KN_PROC_BACKOFF;
    inst->pid = 0;
    inst->running = 0;
    inst->healthy = 0;
    inst->gen++;
    uv_timer_stop(&inst->deadline);
    uv_timer_start(&inst->tick, kn_proc_on_restart_tick, (uint64_t)delay, 0);
}

static void kn_proc_on_restart_tick(uv_timer_t *t)
{
    struct kn_proc_instance *inst = t->data;
    char err[512];
    char how[600];
    int rc = 0;

    if (inst->state != KN_PROC_BACKOFF) {
        goto out;
    }
    /* The previous process handle was closed at its exit, at least a second ago. */
    inst->restarts++;
    rc = kn_proc_spawn(inst, err, sizeof(err));
    if (rc < 0 && inst->pid == 0) {
        snprintf(how, sizeof(how), "restart failed: %s", err);
        kn_proc_crashed(inst, how);
        goto out;
    }
    if (rc < 0) {
        /* It runs; only the pid file is stale. Keep supervising it. */
        kn_log_error(inst->who, "%s", err);
    }
    inst->state = KN_PROC_RUNNING;
    kn_log_info(inst->who, "restarted as pid %d on port %d", inst->pid, inst->port);
    kn_proc_schedule_check(inst, kn_proc_first_check_ms(inst));
out:
    return;
}

/* The process is gone after a stop or a failed start: clean up and report. */
static void kn_proc_finish_stop(struct kn_proc_instance *inst)
{
    struct kn_instance_info info;
    kn_proc_start_cb start_cb = inst->start_cb;
    void *start_data = inst->start_data;
    kn_proc_stop_cb stop_cb = inst->stop_cb;
    void *stop_data = inst->stop_data;

    kn_proc_remove_pidfile(inst);
    kn_proc_info(inst, &info);
    info.healthy = 0;
    inst->start_cb = NULL;
    inst->stop_cb = NULL;
    if (stop_cb) {
        kn_log_info(inst->who, "stopped");
    }
    /* Released first so that the callbacks may start the same instance again; the closing
     * handles keep inst (and fail_msg) alive through them. */
    kn_proc_release(inst);
    if (start_cb) {
        start_cb(KN_EIO, &info, inst->fail_msg, start_data);
    }
    if (stop_cb) {
        stop_cb(0, stop_data);
    }
}

static void kn_proc_on_stop_poll(uv_timer_t *t)
{
    struct kn_proc_instance *inst = t->data;
    if (inst->state != KN_PROC_STOPPING) {
        goto out;
    }
    if (inst->running && inst->adopted && !kn_proc_alive(inst->pid)) {
        inst->running = 0;
    }
    if (inst->running) {
        uv_timer_start(&inst->tick, kn_proc_on_stop_poll, KN_PROC_STOP_POLL_MS, 0);
    } else {
        kn_proc_finish_stop(inst);
    }
out:
    return;
}

static void kn_proc_on_stop_grace(uv_timer_t *t)
{
    struct kn_proc_instance *inst = t->data;
    if (inst->state == KN_PROC_STOPPING && inst->running) {
        kn_log_warn(inst->who, "pid %d still running %lld ms after SIGTERM; sending SIGKILL",
                    inst->pid, inst->sup->stop_grace_ms);
        kn_proc_signal(inst->pid, SIGKILL);
    }
}

static void kn_proc_begin_stop(struct kn_proc_instance *inst)
{
    inst->state = KN_PROC_STOPPING;
    inst->healthy = 0;
    inst->gen++;
    uv_timer_stop(&inst->tick);
    uv_timer_stop(&inst->deadline);
    if (inst->running) {
        kn_proc_signal(inst->pid, SIGTERM);
        uv_timer_start(&inst->deadline, kn_proc_on_stop_grace, (uint64_t)inst->sup->stop_grace_ms,
                       0);
    }
    /* Also when nothing runs: the callbacks are never called from inside kn_proc_stop. */
    uv_timer_start(&inst->tick, kn_proc_on_stop_poll, inst->running ? KN_PROC_STOP_POLL_MS : 0, 0);
}

static void kn_proc_on_exit(uv_process_t *proc, int64_t status, int term_signal)
{
    struct kn_proc_instance *inst = proc->data;
    char how[96];

    if (term_signal) {
        snprintf(how, sizeof(how), "was killed by signal %d", term_signal);
    } else {
        snprintf(how, sizeof(how), "exited with status %lld", (long long)status);
    }
    inst->running = 0;
    inst->proc_open = 0;
    uv_close((uv_handle_t *)proc, kn_proc_on_handle_closed);

    switch (inst->state) {
    case KN_PROC_STARTING:
        kn_log_warn(inst->who, "pid %d %s before it was healthy", inst->pid, how);
        free(inst->fail_msg);
        inst->fail_msg = kn_asprintf("instance %s %s before it was healthy", inst->name, how);
        kn_proc_finish_stop(inst);
        break;
    case KN_PROC_RUNNING: {
        char what[128];
        snprintf(what, sizeof(what), "pid %d %s", inst->pid, how);
        kn_proc_crashed(inst, what);
        break;
    }
    case KN_PROC_STOPPING:
        uv_timer_stop(&inst->tick);
        kn_proc_finish_stop(inst);
        break;
    case KN_PROC_BACKOFF:
    case KN_PROC_GONE:
        break;
    }
}

/* Every second: is each adopted instance still there? */
static void kn_proc_on_poll(uv_timer_t *t)
{
    struct kn_proc_supervisor *sup = t->data;
    for (struct kn_proc_instance *i = sup->instances; i; i = i->next) {
        if (i->adopted && i->running && i->state == KN_PROC_RUNNING && !kn_proc_alive(i->pid)) {
            char how[96];
            snprintf(how, sizeof(how), "pid %d exited (adopted: status unknown)", i->pid);
            i->running = 0;
            kn_proc_crashed(i, how);
        }
    }
}

/* ---- the public API ----------------------------------------------------------------------- */

int kn_proc_supervisor_new(struct kn_proc_supervisor **out, uv_loop_t *loop, const char *state_dir,
                           int port_min, int port_max, struct kn_http_client *http)
{
    int rc = 0;
    struct kn_proc_supervisor *sup = NULL;

    *out = NULL;
    if (!loop || !state_dir || state_dir[0] == '\0' || !http || port_min < 1 || port_max > 65535 ||
        port_min > port_max) {
        rc = KN_EINVAL;
        goto out;
    }
    if ((rc = kn_proc_mkdirs(state_dir)) < 0) {
        kn_log_error("local", "cannot create state directory %s: %s", state_dir, strerror(errno));
        goto out;
    }
    sup = kn_calloc(1, sizeof(*sup));
    sup->loop = loop;
    sup->state_dir = kn_strdup(state_dir);
    sup->port_min = port_min;
    sup->port_max = port_max;
    sup->stop_grace_ms = KN_PROC_STOP_GRACE_MS;
    sup->http = http;
    uv_timer_init(loop, &sup->poll);
    sup->poll.data = sup;
    sup->refs = 1;
    *out = sup;
out:
    return rc;
}

static void kn_proc_on_poll_closed(uv_handle_t *h)
{
    kn_proc_sup_unref(h->data);
}

void kn_proc_supervisor_close(struct kn_proc_supervisor *sup)
{
    if (!sup || sup->closing) {
        goto out;
    }
    sup->closing = 1;
    /* Keep sup alive while callbacks run, whatever they do. */
    sup->refs++;
    while (sup->instances) {
        struct kn_proc_instance *inst = sup->instances;
        struct kn_instance_info info;
        kn_proc_start_cb start_cb = inst->start_cb;
        void *start_data = inst->start_data;
        kn_proc_stop_cb stop_cb = inst->stop_cb;
        void *stop_data = inst->stop_data;
        char *msg =
            kn_asprintf("instance %s: the supervisor closed before it was healthy", inst->name);

        kn_proc_info(inst, &info);
        inst->start_cb = NULL;
        inst->stop_cb = NULL;
        kn_proc_release(inst);
        if (start_cb) {
            start_cb(KN_EIO, &info, msg, start_data);
        }
        if (stop_cb) {
            stop_cb(KN_EIO, stop_data);
        }
        free(msg);
    }
    uv_close((uv_handle_t *)&sup->poll, kn_proc_on_poll_closed);
    kn_proc_sup_unref(sup);
out:
    return;
}

void kn_proc_supervisor_set_stop_grace(struct kn_proc_supervisor *sup, long long ms)
{
    sup->stop_grace_ms = ms > 0 ? ms : KN_PROC_STOP_GRACE_MS;
}

static int kn_proc_spec_ok(const struct kn_instance_spec *spec)
{
    int ok = spec && kn_proc_name_ok(spec->app) && kn_proc_name_ok(spec->variant) &&
             spec->index >= 1 && spec->argc >= 1 && spec->argv && spec->argv[0] &&
             spec->argv[0][0] != '\0' && spec->working_dir && spec->working_dir[0] == '/' &&
             (spec->env_count == 0 || (spec->env_keys && spec->env_values)) &&
             (!spec->health_path || spec->health_path[0] == '/');
    for (size_t i = 0; ok && i < spec->argc; i++) {
        ok = spec->argv[i] != NULL;
    }
    for (size_t i = 0; ok && i < spec->env_count; i++) {
        ok = spec->env_keys[i] && spec->env_keys[i][0] && !strchr(spec->env_keys[i], '=') &&
             spec->env_values[i];
    }
    return ok;
}

int kn_proc_start(struct kn_proc_supervisor *sup, const struct kn_instance_spec *spec,
                  kn_proc_start_cb cb, void *data)
{
    int rc = 0;
    int port = 0;
    char err[512];
    char *dir = NULL;
    struct kn_proc_instance *inst = NULL;

    if (sup->closing || !cb || !kn_proc_spec_ok(spec)) {
        rc = KN_EINVAL;
        goto out;
    }
    if (kn_proc_find(sup, spec->app, spec->variant, spec->index)) {
        rc = KN_EEXISTS;
        goto out;
    }
    dir = kn_asprintf("%s/%s", sup->state_dir, spec->app);
    if (kn_proc_mkdirs(dir) < 0) {
        kn_log_error("local", "cannot create %s: %s", dir, strerror(errno));
        rc = KN_EIO;
        goto out;
    }
    if ((rc = kn_proc_alloc_port(sup, &port)) < 0) {
        kn_log_error("local", "app=%s no free port in %d-%d for %s-%u", spec->app, sup->port_min,
                     sup->port_max, spec->variant, spec->index);
        goto out;
    }

    inst = kn_proc_inst_new(sup, spec->app, spec->variant, spec->index, port);
    inst->argc = spec->argc;
    inst->argv = kn_calloc(spec->argc + 1, sizeof(*inst->argv));
    for (size_t i = 0; i < spec->argc; i++) {
        inst->argv[i] = kn_proc_substitute(spec->argv[i], port, spec->variant);
    }
    inst->env_count = spec->env_count;
    inst->env_keys = kn_calloc(spec->env_count + 1, sizeof(*inst->env_keys));
    inst->env_values = kn_calloc(spec->env_count + 1, sizeof(*inst->env_values));
    for (size_t i = 0; i < spec->env_count; i++) {
        inst->env_keys[i] = kn_strdup(spec->env_keys[i]);
        inst->env_values[i] = kn_proc_substitute(spec->env_values[i], port, spec->variant);
    }
    inst->cwd = kn_strdup(spec->working_dir);
    inst->health_path = spec->health_path ? kn_strdup(spec->health_path) : NULL;
    if (spec->health_interval_ms > 0) {
        inst->interval_ms = spec->health_interval_ms;
    }
    if (spec->health_timeout_ms > 0) {
        inst->timeout_ms = spec->health_timeout_ms;
    }
    if (spec->healthy_threshold > 0) {
        inst->threshold = spec->healthy_threshold;
    }
    if (spec->start_timeout_ms > 0) {
        inst->start_timeout_ms = spec->start_timeout_ms;
    }
    inst->start_cb = cb;
    inst->start_data = data;
    inst->state = KN_PROC_STARTING;

    /* From here on every outcome goes through cb. */
    if (kn_proc_spawn(inst, err, sizeof(err)) < 0) {
        kn_log_error(inst->who, "%s", err);
        kn_proc_fail_start(inst, kn_asprintf("instance %s: %s", inst->name, err));
        goto out;
    }
    kn_log_info(inst->who, "started pid %d on port %d: %s", inst->pid, port, inst->argv[0]);
    uv_timer_start(&inst->deadline, kn_proc_on_start_deadline, (uint64_t)inst->start_timeout_ms, 0);
    kn_proc_schedule_check(inst, kn_proc_first_check_ms(inst));
out:
    free(dir);
    return rc;
}

int kn_proc_stop(struct kn_proc_supervisor *sup, const char *app, const char *variant,
                 unsigned index, kn_proc_stop_cb cb, void *data)
{
    int rc = 0;
    struct kn_proc_instance *inst = NULL;

    if (!app || !variant || !cb) {
        rc = KN_EINVAL;
        goto out;
    }
    inst = kn_proc_find(sup, app, variant, index);
    if (!inst) {
        rc = KN_ENOTFOUND;
        goto out;
    }
    if (inst->state == KN_PROC_STOPPING) {
        rc = KN_EINVAL;
        goto out;
    }
    kn_log_info(inst->who, "stopping pid %d", inst->pid);
    if (inst->state == KN_PROC_STARTING) {
        free(inst->fail_msg);
        inst->fail_msg = kn_asprintf("instance %s was stopped before it was healthy", inst->name);
    }
    inst->stop_cb = cb;
    inst->stop_data = data;
    kn_proc_begin_stop(inst);
out:
    return rc;
}

/* ---- adoption ----------------------------------------------------------------------------- */

static long long kn_proc_json_ll(json_t *obj, const char *key, long long dflt)
{
    json_t *v = json_object_get(obj, key);
    return json_is_integer(v) ? (long long)json_integer_value(v) : dflt;
}

/* Read one pid file into a new instance when its process is alive and ours. 1 adopted, 0 not
 * (the pid file is then removed, and the reason logged). */
static int kn_proc_adopt_one(struct kn_proc_supervisor *sup, const char *app, const char *file)
{
    int rc = 0;
    char variant[KN_PROC_NAME_MAX + 1];
    unsigned index = 0;
    char *path = kn_asprintf("%s/%s/%s", sup->state_dir, app, file);
    char *who = kn_asprintf("local app=%s file=%s", app, file);
    json_error_t jerr;
    json_t *root = NULL;
    const char *why = NULL;
    size_t base = strlen(file) - strlen(".json");
    const char *dash = NULL;

    for (const char *p = file; p < file + base; p++) {
        if (*p == '-') {
            dash = p;
        }
    }
    if (!dash || (size_t)(dash - file) > KN_PROC_NAME_MAX || dash + 1 == file + base ||
        strspn(dash + 1, "0123456789") != (size_t)(file + base - dash - 1)) {
        /* Not one of ours: leave it alone. */
        goto out;
    }
    memcpy(variant, file, (size_t)(dash - file));
    variant[dash - file] = '\0';
    index = (unsigned)strtoul(dash + 1, NULL, 10);
    if (!kn_proc_name_ok(variant) || index == 0 || kn_proc_find(sup, app, variant, index)) {
        goto out;
    }

    struct stat st;
    if (stat(path, &st) == 0 && st.st_size <= KN_PROC_PIDFILE_MAX) {
        root = json_load_file(path, 0, &jerr);
    }
    json_t *argv = json_object_get(root, "argv");
    long long pid = kn_proc_json_ll(root, "pid", 0);
    long long port = kn_proc_json_ll(root, "port", 0);
    if (!root) {
        why = "unreadable or too large";
    } else if (!json_is_array(argv) || json_array_size(argv) == 0 ||
               !json_is_string(json_array_get(argv, 0)) || pid <= 1 || pid > 0x7fffffff ||
               port < 1 || port > 65535) {
        why = "malformed";
    } else if (!kn_proc_alive((int)pid)) {
        why = "its process is gone";
    } else if (!kn_proc_cmdline_matches((int)pid, json_string_value(json_array_get(argv, 0)))) {
        why = "its pid now belongs to another program";
    }
    if (why) {
        kn_log_warn(who, "removing stale pid file %s: %s (pid %lld)", path, why, pid);
        if (unlink(path) < 0 && errno != ENOENT) {
            kn_log_warn(who, "cannot remove %s: %s", path, strerror(errno));
        }
        goto out;
    }

    struct kn_proc_instance *inst = kn_proc_inst_new(sup, app, variant, index, (int)port);
    inst->argc = json_array_size(argv);
    inst->argv = kn_calloc(inst->argc + 1, sizeof(*inst->argv));
    for (size_t i = 0; i < inst->argc; i++) {
        const char *s = json_string_value(json_array_get(argv, i));
        inst->argv[i] = kn_strdup(s ? s : "");
    }
    json_t *env = json_object_get(root, "env");
    size_t nenv = json_is_object(env) ? json_object_size(env) : 0;
    inst->env_keys = kn_calloc(nenv + 1, sizeof(*inst->env_keys));
    inst->env_values = kn_calloc(nenv + 1, sizeof(*inst->env_values));
    const char *key;
    json_t *value;
    json_object_foreach(env, key, value)
    {
        if (json_is_string(value) && inst->env_count < nenv) {
            inst->env_keys[inst->env_count] = kn_strdup(key);
            inst->env_values[inst->env_count] = kn_strdup(json_string_value(value));
            inst->env_count++;
        }
    }
    json_t *cwd = json_object_get(root, "cwd");
    inst->cwd = kn_strdup(json_is_string(cwd) ? json_string_value(cwd) : "/");
    json_t *health = json_object_get(root, "health");
    json_t *hpath = json_object_get(health, "path");
    inst->health_path = json_is_string(hpath) ? kn_strdup(json_string_value(hpath)) : NULL;
    inst->interval_ms = kn_proc_json_ll(health, "interval_ms", KN_PROC_INTERVAL_MS);
    inst->timeout_ms = kn_proc_json_ll(health, "timeout_ms", KN_PROC_TIMEOUT_MS);
    inst->threshold = kn_proc_json_ll(health, "healthy_threshold", 1);
    inst->interval_ms = inst->interval_ms > 0 ? inst->interval_ms : KN_PROC_INTERVAL_MS;
    inst->timeout_ms = inst->timeout_ms > 0 ? inst->timeout_ms : KN_PROC_TIMEOUT_MS;
    inst->threshold = inst->threshold > 0 ? inst->threshold : 1;
    inst->started_at_ms = kn_proc_json_ll(root, "started_at", 0);
    long long restarts = kn_proc_json_ll(root, "restarts", 0);
    inst->restarts = restarts > 0 && restarts < 1000000 ? (unsigned)restarts : 0;
    inst->pid = (int)pid;
    inst->running = 1;
    inst->adopted = 1;
    inst->state = KN_PROC_RUNNING;
    inst->spawned_at = uv_now(sup->loop);
    kn_log_info(inst->who, "adopted pid %lld on port %lld", pid, port);
    kn_proc_schedule_check(inst, kn_proc_first_check_ms(inst));
    rc = 1;
out:
    json_decref(root);
    free(path);
    free(who);
    return rc;
}

static int kn_proc_ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s);
    size_t m = strlen(suffix);
    return n > m && strcmp(s + n - m, suffix) == 0;
}

int kn_proc_adopt_all(struct kn_proc_supervisor *sup, size_t *adopted)
{
    int rc = 0;
    size_t count = 0;
    DIR *top = NULL;
    struct dirent *e;

    if (sup->closing) {
        rc = KN_EINVAL;
        goto out;
    }
    top = opendir(sup->state_dir);
    if (!top) {
        kn_log_error("local", "cannot read %s: %s", sup->state_dir, strerror(errno));
        rc = KN_EIO;
        goto out;
    }
    while ((e = readdir(top)) != NULL) {
        if (!kn_proc_name_ok(e->d_name)) {
            continue;
        }
        char *dir = kn_asprintf("%s/%s", sup->state_dir, e->d_name);
        DIR *d = opendir(dir);
        struct dirent *f;
        while (d && (f = readdir(d)) != NULL) {
            if (kn_proc_ends_with(f->d_name, ".json")) {
                count += (size_t)kn_proc_adopt_one(sup, e->d_name, f->d_name);
            }
        }
        if (d) {
            closedir(d);
        }
        free(dir);
    }
    if (count > 0 && !uv_is_active((uv_handle_t *)&sup->poll)) {
        uv_timer_start(&sup->poll, kn_proc_on_poll, KN_PROC_POLL_MS, KN_PROC_POLL_MS);
        /* Watching adopted instances must not keep the loop alive, as for spawned ones. */
        uv_unref((uv_handle_t *)&sup->poll);
    }
out:
    if (top) {
        closedir(top);
    }
    if (adopted) {
        *adopted = count;
    }
    return rc;
}

/* ---- listing ------------------------------------------------------------------------------ */

static int kn_proc_info_cmp(const void *a, const void *b)
{
    const struct kn_instance_info *x = a;
    const struct kn_instance_info *y = b;
    int c = strcmp(x->app, y->app);
    if (c == 0) {
        c = strcmp(x->variant, y->variant);
    }
    if (c == 0) {
        c = (x->index > y->index) - (x->index < y->index);
    }
    return c;
}

void kn_proc_list(struct kn_proc_supervisor *sup, const char *app, struct kn_instance_info **out,
                  size_t *count)
{
    size_t n = 0;
    struct kn_instance_info *items = NULL;

    for (struct kn_proc_instance *i = sup->instances; i; i = i->next) {
        if (i->state == KN_PROC_STOPPING || (app && strcmp(i->app, app) != 0)) {
            continue;
        }
        items = kn_reallocarray(items, n + 1, sizeof(*items));
        kn_proc_info(i, &items[n]);
        items[n].app = kn_strdup(i->app);
        items[n].variant = kn_strdup(i->variant);
        n++;
    }
    if (n > 1) {
        qsort(items, n, sizeof(*items), kn_proc_info_cmp);
    }
    *out = items;
    *count = n;
}

void kn_proc_list_free(struct kn_instance_info *items, size_t count)
{
    for (size_t i = 0; items && i < count; i++) {
        free(items[i].app);
        free(items[i].variant);
    }
    free(items);
}
