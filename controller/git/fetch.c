/*
 * kanaria — a mirror fetch in a process of its own (git.h, "fetches in a process of their own").
 *
 * libgit2 1.5 has no timeout for its http and ssh transports: a remote that accepts the
 * connection and says nothing holds the fetching thread for good, and a thread cannot be
 * stopped. A process can. The loop runs `kanaria __fetch` with uv_spawn (fork and exec, so the
 * child starts clean whatever threads the controller runs), hands it the request on stdin, and
 * reads lines of JSON on its stdout: {"progress":1} whenever the remote sent something (at most
 * a few a second), then {"head":"<hex>"} or {"code":N,"message":"..."}. A uv timer kills the
 * child's process group when the fetch takes too long or nothing came for too long.
 *
 * The request goes through a pipe, not argv nor the environment, because the URL may hold
 * credentials and a process's argv is readable by every local user. The child bounds itself
 * too (alarm, and on Linux the parent's death), so a `kill -9` of the controller leaves no fetch
 * hanging behind it.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include <jansson.h>

#include "git/git.h"
#include "kanaria/alloc.h"
#include "kanaria/error.h"
#include "kanaria/fd.h"
#include "kanaria/schema.h"

/* The largest request the child reads, and the longest line the parent reads back: paths,
 * a URL and a message (KN_ERROR_MSG_MAX) with JSON escapes. */
#define KN_FETCH_MAX_REQUEST (64 * 1024)
#define KN_FETCH_MAX_LINE    (16 * 1024)

/* The child reports progress at most this often. */
#define KN_FETCH_PROGRESS_EVERY_MS 250

/* What the child adds to the whole-fetch timeout before its own alarm kills it: the parent
 * normally kills it first. */
#define KN_FETCH_ALARM_MARGIN_S 30

struct kn_git_fetch {
    uv_loop_t *loop;
    uv_process_t proc;
    uv_pipe_t in;  /* the child's stdin: the request */
    uv_pipe_t out; /* the child's stdout: progress and the result */
    uv_timer_t timer;
    uv_write_t write_req;
    char *request;
    char *shown_url; /* the URL without credentials */
    struct kn_buf line;
    char rbuf[4096]; /* what one read of stdout gets */
    int open;        /* handles not yet closed */
    int exited;
    int out_done; /* EOF or error on stdout, or given up after a kill */
    int killed;
    int64_t exit_status;
    int term_signal;
    uint64_t started;   /* uv_now */
    uint64_t last_data; /* uv_now when the remote last sent something (or the start) */
    long long timeout_ms;
    long long stall_timeout_ms;
    int have_result;
    int rc;
    git_oid head;
    struct kn_error err;
    kn_git_fetch_cb cb;
    void *data;
};

/* ---- the parent's side (loop) -------------------------------------------------------------- */

static void kn_fetch_closed(uv_handle_t *h)
{
    struct kn_git_fetch *f = h->data;

    if (--f->open > 0) {
        return;
    }
    free(f->request);
    free(f->shown_url);
    kn_buf_release(&f->line);
    free(f);
}

static void kn_fetch_close(uv_handle_t *h)
{
    if (!uv_is_closing(h)) {
        uv_close(h, kn_fetch_closed);
    }
}

/* Kill the child and everything it started (it leads its own process group). */
static void kn_fetch_kill(struct kn_git_fetch *f)
{
    if (f->exited || f->killed) {
        return;
    }
    f->killed = 1;
    uv_timer_stop(&f->timer);
    if (kill(-f->proc.pid, SIGKILL) < 0) {
        kill(f->proc.pid, SIGKILL);
    }
}

/* Once the child has exited and its output is read: call back, then close everything. */
static void kn_fetch_finish(struct kn_git_fetch *f)
{
    if (!f->exited || !f->out_done || !f->cb) {
        return;
    }
    if (!f->have_result && f->err.msg[0] == '\0') {
        if (f->term_signal) {
            kn_error_set(&f->err, KN_EIO, NULL,
                         "fetching %s: the fetch process was killed by signal %d", f->shown_url,
                         f->term_signal);
        } else {
            kn_error_set(&f->err, KN_EIO, NULL,
                         "fetching %s: the fetch process ended with status %lld and no result",
                         f->shown_url, (long long)f->exit_status);
        }
    }
    if (!f->have_result) {
        f->rc = f->err.code < 0 ? f->err.code : KN_EIO;
    }
    f->cb(f->rc, f->rc == 0 ? &f->head : NULL, &f->err, f->data);
    f->cb = NULL;
    kn_fetch_close((uv_handle_t *)&f->timer);
    kn_fetch_close((uv_handle_t *)&f->in);
    kn_fetch_close((uv_handle_t *)&f->out);
    kn_fetch_close((uv_handle_t *)&f->proc);
}

/* One line from the child. A line that is not what the child writes is ignored: the result is
 * then missing, which is reported from the exit status. */
static void kn_fetch_line(struct kn_git_fetch *f, const char *s, size_t len)
{
    json_t *j = json_loadb(s, len, 0, NULL);
    const char *hex;
    const char *msg;

    if (!j || f->killed) {
        goto out;
    }
    if (json_object_get(j, "progress")) {
        f->last_data = uv_now(f->loop);
    } else if ((hex = json_string_value(json_object_get(j, "head"))) != NULL) {
        if (git_oid_fromstr(&f->head, hex) == 0) {
            f->have_result = 1;
            f->rc = 0;
        }
    } else if ((msg = json_string_value(json_object_get(j, "message"))) != NULL) {
        int code = (int)json_integer_value(json_object_get(j, "code"));

        f->have_result = 1;
        f->rc = code < 0 ? code : KN_EIO;
        kn_error_set(&f->err, f->rc, NULL, "%s", msg);
    }
out:
    json_decref(j);
}

static void kn_fetch_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct kn_git_fetch *f = h->data;

    (void)suggested;
    buf->base = f->rbuf; /* consumed by kn_fetch_read before the next read */
    buf->len = sizeof(f->rbuf);
}

static void kn_fetch_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct kn_git_fetch *f = s->data;
    char *nl;

    if (nread < 0) {
        f->out_done = 1;
        uv_read_stop(s);
        kn_fetch_finish(f);
        return;
    }
    if (nread == 0) {
        return;
    }
    if (kn_buf_add(&f->line, buf->base, (size_t)nread) < 0) {
        kn_buf_reset(&f->line); /* a line past the bound is not the child's: drop it */
        return;
    }
    while ((nl = memchr(f->line.data, '\n', f->line.len)) != NULL) {
        size_t n = (size_t)(nl - f->line.data);

        kn_fetch_line(f, f->line.data, n);
        memmove(f->line.data, nl + 1, f->line.len - n - 1);
        f->line.len -= n + 1;
        f->line.data[f->line.len] = '\0';
    }
}

static void kn_fetch_exited(uv_process_t *p, int64_t status, int term_signal)
{
    struct kn_git_fetch *f = p->data;

    f->exited = 1;
    f->exit_status = status;
    f->term_signal = term_signal;
    uv_timer_stop(&f->timer);
    if (f->killed && !f->out_done) {
        /* nothing it wrote matters now; do not wait for its pipe to drain */
        f->out_done = 1;
        uv_read_stop((uv_stream_t *)&f->out);
    } else if (!f->out_done) {
        /* what it wrote is still to be read, but a process it left in its group could hold the
         * pipe open for good: end the group, so that the end of the pipe comes */
        kill(-f->proc.pid, SIGKILL);
    }
    kn_fetch_finish(f);
}

static void kn_fetch_written(uv_write_t *req, int status)
{
    struct kn_git_fetch *f = req->data;

    /* a child that died early is reported by its exit; closing gives it EOF after the request */
    (void)status;
    kn_fetch_close((uv_handle_t *)&f->in);
}

static void kn_fetch_tick(uv_timer_t *t)
{
    struct kn_git_fetch *f = t->data;
    uint64_t now = uv_now(f->loop);
    uint64_t end = f->started + (uint64_t)f->timeout_ms;
    uint64_t stall = f->last_data + (uint64_t)f->stall_timeout_ms;
    char shown[32];

    if (now >= end) {
        kn_duration_format(f->timeout_ms, shown, sizeof(shown));
        kn_error_set(&f->err, KN_EIO, NULL,
                     "fetching %s: not done after %s (fetchTimeout), stopped", f->shown_url, shown);
        kn_fetch_kill(f);
    } else if (now >= stall) {
        kn_duration_format(f->stall_timeout_ms, shown, sizeof(shown));
        kn_error_set(&f->err, KN_EIO, NULL,
                     "fetching %s: no data from the remote for %s (fetchStallTimeout), stopped",
                     f->shown_url, shown);
        kn_fetch_kill(f);
    } else {
        uv_timer_start(&f->timer, kn_fetch_tick, (end < stall ? end : stall) - now, 0);
    }
}

/* The request as one JSON object; NULL strings are left out. Caller frees. */
static char *kn_fetch_request(const struct kn_git_fetch_opts *o)
{
    json_t *j = json_object();
    const struct kn_git_auth *a = o->auth;
    char *s;

    json_object_set_new(j, "mirror", json_string(o->mirror_path));
    json_object_set_new(j, "url", json_string(o->url));
    json_object_set_new(j, "branch", json_string(o->branch));
    if (a && a->username) {
        json_object_set_new(j, "username", json_string(a->username));
    }
    if (a && a->token_file) {
        json_object_set_new(j, "tokenFile", json_string(a->token_file));
    }
    if (a && a->ssh_key_file) {
        json_object_set_new(j, "sshKeyFile", json_string(a->ssh_key_file));
    }
    if (a && a->ca_file) {
        json_object_set_new(j, "caFile", json_string(a->ca_file));
    }
    if (a && a->repo_name) {
        json_object_set_new(j, "repository", json_string(a->repo_name));
    }
    json_object_set_new(j, "timeoutMs", json_integer(o->timeout_ms));
    json_object_set_new(j, "parent", json_integer((json_int_t)getpid()));
    s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return s;
}

int kn_git_fetch_start(struct kn_git_fetch **out, uv_loop_t *loop,
                       const struct kn_git_fetch_opts *opts, kn_git_fetch_cb cb, void *data,
                       struct kn_error *err)
{
    struct kn_git_fetch *f = NULL;
    uv_process_options_t po;
    uv_stdio_container_t stdio[3];
    char *args[3];
    uv_buf_t buf;
    int rc = 0;
    int uverr;

    *out = NULL;
    if (!opts->exe || !opts->mirror_path || !opts->url || !opts->branch || opts->timeout_ms <= 0 ||
        opts->stall_timeout_ms <= 0) {
        rc = kn_error_set(err, KN_EINVAL, NULL,
                          "a fetch needs the binary, a mirror, a URL, a "
                          "branch and its timeouts");
        goto out;
    }
    f = kn_calloc(1, sizeof(*f));
    f->loop = loop;
    f->cb = cb;
    f->data = data;
    f->timeout_ms = opts->timeout_ms;
    f->stall_timeout_ms = opts->stall_timeout_ms;
    f->shown_url = kn_git_redact_url(opts->url);
    f->request = kn_fetch_request(opts);
    kn_buf_init(&f->line, KN_FETCH_MAX_LINE);
    kn_error_clear(&f->err);
    uv_pipe_init(loop, &f->in, 0);
    uv_pipe_init(loop, &f->out, 0);
    uv_timer_init(loop, &f->timer);
    f->in.data = f->out.data = f->timer.data = f->proc.data = f->write_req.data = f;
    f->open = 3;

    memset(&po, 0, sizeof(po));
    memset(stdio, 0, sizeof(stdio));
    args[0] = (char *)(uintptr_t)opts->exe;
    args[1] = (char *)(uintptr_t)KN_GIT_FETCH_COMMAND;
    args[2] = NULL;
    stdio[0].flags = UV_CREATE_PIPE | UV_READABLE_PIPE;
    stdio[0].data.stream = (uv_stream_t *)&f->in;
    stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[1].data.stream = (uv_stream_t *)&f->out;
    stdio[2].flags = UV_INHERIT_FD;
    stdio[2].data.fd = STDERR_FILENO;
    po.file = opts->exe;
    po.args = args;
    po.stdio = stdio;
    po.stdio_count = 3;
    po.exit_cb = kn_fetch_exited;
    /* its own process group, so that a kill takes whatever it may have started */
    po.flags = UV_PROCESS_DETACHED;
    kn_fd_cloexec_all(); /* the fetch holds none of kanaria's sockets while it runs */
    /* the process handle is initialised even when uv_spawn fails: closed either way */
    f->open++;
    if ((uverr = uv_spawn(loop, &f->proc, &po)) < 0) {
        rc = kn_error_set(err, KN_EIO, NULL, "fetching %s: cannot start '%s %s': %s", f->shown_url,
                          opts->exe, KN_GIT_FETCH_COMMAND, uv_strerror(uverr));
        goto out;
    }
    f->started = f->last_data = uv_now(loop);
    buf = uv_buf_init(f->request, (unsigned)strlen(f->request));
    if (uv_write(&f->write_req, (uv_stream_t *)&f->in, &buf, 1, kn_fetch_written) < 0) {
        kn_fetch_close((uv_handle_t *)&f->in); /* the child reads an empty request and fails */
    }
    uv_read_start((uv_stream_t *)&f->out, kn_fetch_alloc, kn_fetch_read);
    kn_fetch_tick(&f->timer);
    *out = f;
out:
    if (rc < 0 && f) {
        f->cb = NULL;
        kn_fetch_close((uv_handle_t *)&f->timer);
        kn_fetch_close((uv_handle_t *)&f->in);
        kn_fetch_close((uv_handle_t *)&f->out);
        kn_fetch_close((uv_handle_t *)&f->proc);
    }
    return rc;
}

void kn_git_fetch_stop(struct kn_git_fetch *f)
{
    if (!f || f->exited || f->killed) {
        return;
    }
    kn_error_set(&f->err, KN_EIO, NULL, "fetching %s: stopped", f->shown_url);
    kn_fetch_kill(f);
}

/* ---- the child's side (`kanaria __fetch`) -------------------------------------------------- */

struct kn_fetch_child {
    long long last_ms; /* CLOCK_MONOTONIC of the last progress line */
};

static long long kn_fetch_mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Write all of s to stdout; a parent that went away ends this process by SIGPIPE. */
static void kn_fetch_say(const char *s)
{
    size_t len = strlen(s);

    while (len > 0) {
        ssize_t n = write(STDOUT_FILENO, s, len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return;
        }
        s += n;
        len -= (size_t)n;
    }
}

static int kn_fetch_child_progress(void *data)
{
    struct kn_fetch_child *c = data;
    long long now = kn_fetch_mono_ms();

    if (now - c->last_ms >= KN_FETCH_PROGRESS_EVERY_MS) {
        c->last_ms = now;
        kn_fetch_say("{\"progress\":1}\n");
    }
    return 0;
}

/* The result line: {"head":...} or {"code":...,"message":...}. */
static void kn_fetch_child_result(int rc, const git_oid *head, const struct kn_error *err)
{
    json_t *j = json_object();
    char hex[GIT_OID_HEXSZ + 1];
    char *s;

    if (rc == 0) {
        git_oid_tostr(hex, sizeof(hex), head);
        json_object_set_new(j, "head", json_string(hex));
    } else {
        json_object_set_new(j, "code", json_integer(rc));
        json_object_set_new(j, "message", json_string(err->msg[0] ? err->msg : kn_strerror(rc)));
    }
    s = json_dumps(j, JSON_COMPACT);
    kn_fetch_say(s);
    kn_fetch_say("\n");
    free(s);
    json_decref(j);
}

/* Read the whole of stdin (bounded) into *out; caller frees. */
static int kn_fetch_child_read(struct kn_buf *out)
{
    char chunk[4096];
    ssize_t n;

    while ((n = read(STDIN_FILENO, chunk, sizeof(chunk))) != 0) {
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 || kn_buf_add(out, chunk, (size_t)n) < 0) {
            return KN_EIO;
        }
    }
    return 0;
}

/* A string member of the request, NULL when absent. */
static const char *kn_fetch_str(json_t *j, const char *key)
{
    return json_string_value(json_object_get(j, key));
}

int kn_git_fetch_child_main(int argc, char **argv)
{
    struct kn_buf req;
    struct kn_error err;
    struct kn_fetch_child child = {.last_ms = 0};
    struct kn_git_auth auth;
    json_t *j = NULL;
    git_oid head;
    long long timeout_ms;
    int rc = 0;

    (void)argv;
    kn_buf_init(&req, KN_FETCH_MAX_REQUEST);
    kn_error_clear(&err);
    memset(&head, 0, sizeof(head));
    if (argc != 1) {
        rc = kn_error_set(&err, KN_EUSAGE, NULL,
                          "'%s' is run by kanaria serve, with the request "
                          "on stdin",
                          KN_GIT_FETCH_COMMAND);
        goto out;
    }
    if (kn_fetch_child_read(&req) < 0 || req.len == 0 ||
        !(j = json_loadb(req.data, req.len, 0, NULL)) || !json_is_object(j)) {
        rc = kn_error_set(&err, KN_EINVAL, NULL, "%s: no valid request on stdin",
                          KN_GIT_FETCH_COMMAND);
        goto out;
    }
#ifdef __linux__
    /* the parent killed with -9 takes this fetch with it */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (json_integer_value(json_object_get(j, "parent")) != (json_int_t)getppid()) {
        rc = kn_error_set(&err, KN_EIO, NULL, "%s: the controller is gone", KN_GIT_FETCH_COMMAND);
        goto out;
    }
#endif
    timeout_ms = (long long)json_integer_value(json_object_get(j, "timeoutMs"));
    if (timeout_ms > 0) {
        alarm((unsigned)(timeout_ms / 1000 + KN_FETCH_ALARM_MARGIN_S));
    }
    auth.username = kn_fetch_str(j, "username");
    auth.token_file = kn_fetch_str(j, "tokenFile");
    auth.ssh_key_file = kn_fetch_str(j, "sshKeyFile");
    auth.ca_file = kn_fetch_str(j, "caFile");
    auth.repo_name = kn_fetch_str(j, "repository");
    rc = kn_git_mirror_fetch_progress(kn_fetch_str(j, "mirror"), kn_fetch_str(j, "url"),
                                      kn_fetch_str(j, "branch"), &auth, &head, &err,
                                      kn_fetch_child_progress, &child);
out:
    kn_fetch_child_result(rc, &head, &err);
    json_decref(j);
    kn_buf_release(&req);
    return rc == 0 ? 0 : 1;
}
