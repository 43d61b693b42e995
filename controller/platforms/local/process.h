/*
 * The local platform's instance supervisor: runs an app's instances as processes on this host,
 * checks their health over HTTP, restarts the ones that crash and stops them on request.
 *
 * Every instance runs in its own session (setsid), so it outlives kanaria: a restarted kanaria
 * finds it again through its pid file, STATE_DIR/APP/VARIANT-INDEX.json, written atomically:
 *
 *     {"pid": 4242, "port": 20001, "argv": [...], "started_at": 1764099601123,
 *      "env": {...}, "cwd": "/srv/hello", "health": {"path": "/healthz", "interval_ms": 1000,
 *      "timeout_ms": 1000, "healthy_threshold": 1}, "restarts": 0}
 *
 * (`started_at` in milliseconds since the epoch; the fields after it let an adopted instance be
 * restarted like one spawned by this run). stdout and stderr go to STATE_DIR/APP/VARIANT-INDEX.log
 * (appended).
 *
 * An instance is named VARIANT-INDEX ("canary-1"), as its HAProxy server. Its life:
 *   starting  spawned; health-checked every interval until `healthy_threshold` answers in a row
 *             are 2xx (then the start callback gets 0), or it exits, or the start deadline passes
 *             (then it is stopped and the callback gets KN_EIO with the reason);
 *   running   supervised: when it exits it is restarted on the same port after a backoff (1s
 *             doubling to 30s; the count starts over once it had been up for a minute) and health
 *             checked again until healthy (no deadline then);
 *   stopping  SIGTERM to its process group, SIGKILL after a grace period, pid file removed.
 *
 * Everything runs on the loop thread. Callbacks never run from inside the call that started the
 * operation. Blocking work on the loop is limited to small local files (pid files, /proc).
 */
#ifndef KANARIA_PLATFORMS_LOCAL_PROCESS_H
#define KANARIA_PLATFORMS_LOCAL_PROCESS_H

#include <stddef.h>
#include <uv.h>

#include "kanaria/http.h"

struct kn_proc_supervisor;

/* What to run for one instance. Everything is borrowed for the duration of kn_proc_start only
 * (the supervisor copies what it keeps). In argv and in env values, "{{port}}" and "{{variant}}"
 * are replaced by the instance's port and variant. 0 in a number means its default. */
struct kn_instance_spec {
    const char *app;         /* [A-Za-z0-9_.-], not starting with '.' */
    const char *variant;     /* "primary", "canary" or "baseline" (same charset) */
    unsigned index;          /* 1..N */
    const char *const *argv; /* argc strings; argv[0] is looked up in PATH when bare */
    size_t argc;
    const char *const *env_keys;   /* env_count keys and values, added to kanaria's own */
    const char *const *env_values; /* environment (and overriding it) */
    size_t env_count;
    const char *working_dir;      /* absolute */
    const char *health_path;      /* "/healthz"; NULL: healthy once it stayed up `threshold`
                                     intervals */
    long long health_interval_ms; /* default 1000 */
    long long health_timeout_ms;  /* default 1000 */
    long long healthy_threshold;  /* 2xx answers in a row; default 1 */
    long long start_timeout_ms;   /* healthy within this or the start fails; default 30000 */
};

/* One live instance. In a callback everything is borrowed for the callback's duration; in
 * kn_proc_list's array the strings are owned by the array (kn_proc_list_free). */
struct kn_instance_info {
    char *app;
    char *variant;
    unsigned index;
    int pid; /* 0 while it waits to be restarted */
    int port;
    int healthy;             /* passed its health check since it was last (re)started */
    int adopted;             /* found through its pid file, supervised by polling */
    unsigned restarts;       /* crash restarts (carried over in the pid file) */
    long long started_at_ms; /* wall clock, ms since the epoch */
};

/* status is 0 (healthy; info describes it) or KN_EIO with a readable `error` such as
 * "instance canary-1 exited with status 3 before it was healthy" or "instance canary-1 not
 * healthy after 30s: status 503"; the instance is then gone (pid file removed, process stopped),
 * and info still says what it was. `error` is NULL on success. */
typedef void (*kn_proc_start_cb)(int status, const struct kn_instance_info *info, const char *error,
                                 void *data);

/* status is 0 once the process is gone and its pid file removed; KN_EIO when the supervisor was
 * closed first (the instance is then left to the next adoption). */
typedef void (*kn_proc_stop_cb)(int status, void *data);

/* A supervisor for the pid files under state_dir (created when missing) and ports in
 * [port_min, port_max]. The loop and the HTTP client are borrowed and must outlive it; close the
 * supervisor before the client. Returns 0, KN_EINVAL (bad range) or KN_EIO (state_dir). */
int kn_proc_supervisor_new(struct kn_proc_supervisor **out, uv_loop_t *loop, const char *state_dir,
                           int port_min, int port_max, struct kn_http_client *http);

/* Stop supervising and free the supervisor once its handles are closed (the loop must run).
 * Instances are NOT stopped: they keep running and their pid files stay for the next
 * kn_proc_adopt_all. Pending start and stop callbacks run from here with KN_EIO.
 * NULL is a no-op. */
void kn_proc_supervisor_close(struct kn_proc_supervisor *sup);

/* The grace period between SIGTERM and SIGKILL in kn_proc_stop; default 5000 ms. */
void kn_proc_supervisor_set_stop_grace(struct kn_proc_supervisor *sup, long long ms);

/* Start one instance on a free port: not used by another instance of this supervisor, and free
 * to bind on 127.0.0.1. A pid file left by an earlier run for the same instance is replaced, so
 * adopt first. Returns 0 and later calls cb exactly once (a program that cannot be run is
 * reported there too), or fails without calling cb: KN_EINVAL (bad names, no argv, relative
 * working dir), KN_EEXISTS (the instance is already supervised), KN_ELIMIT (no free port). */
int kn_proc_start(struct kn_proc_supervisor *sup, const struct kn_instance_spec *spec,
                  kn_proc_start_cb cb, void *data);

/* Stop an instance: SIGTERM to its process group, SIGKILL after the grace period; then remove
 * its pid file and forget it. A start in progress gets its callback (KN_EIO, "stopped before it
 * was healthy") before cb. Returns 0 and calls cb later, or KN_ENOTFOUND (no such instance) /
 * KN_EINVAL (already stopping) without calling it. */
int kn_proc_stop(struct kn_proc_supervisor *sup, const char *app, const char *variant,
                 unsigned index, kn_proc_stop_cb cb, void *data);

/* Read every pid file under state_dir. An instance whose process is alive and whose
 * /proc/PID/cmdline starts with the recorded argv[0] is adopted: supervised by polling its pid
 * every second, health-checked until healthy, restarted when it exits. Other pid files (process
 * gone, pid reused, unreadable) are removed and logged. Instances already supervised are
 * skipped. Returns 0 (with the number adopted in *adopted when not NULL) or KN_EIO when
 * state_dir cannot be read. */
int kn_proc_adopt_all(struct kn_proc_supervisor *sup, size_t *adopted);

/* The live instances of `app` (every app when NULL), sorted by variant and index, including
 * ones waiting to be restarted (pid 0) but not ones being stopped. *out is NULL when there are
 * none. Free with kn_proc_list_free. */
void kn_proc_list(struct kn_proc_supervisor *sup, const char *app, struct kn_instance_info **out,
                  size_t *count);
void kn_proc_list_free(struct kn_instance_info *items, size_t count);

/* Delay before restart number `crashes` in a row (1, 2, ...): 1s doubling, capped at 30s. */
long long kn_proc_backoff_ms(unsigned crashes);

/* `s` with every "{{port}}" and "{{variant}}" replaced; other text, other "{{...}}" included, is
 * copied as is. Caller frees. */
char *kn_proc_substitute(const char *s, int port, const char *variant);

#endif /* KANARIA_PLATFORMS_LOCAL_PROCESS_H */
