/*
 * SCRIPT_RUN: run a shell command in a temporary checkout of the app's folder.
 */
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "kanaria/alloc.h"
#include "kanaria/engine.h"
#include "kanaria/fd.h"
#include "kanaria/platform.h"
#include "stages.h"

#define SCRIPT_OUTPUT_MAX (64 * 1024)

extern char **environ;

static const struct kn_field script_fields[] = {
    {.key = "run",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_script_options, run),
     .flags = KN_FIELD_REQUIRED | KN_FIELD_NONEMPTY,
     .help = "command run with /bin/sh -c in the app's folder; non-zero exit fails the stage"},
    {.key = "env",
     .type = KN_TYPE_STRING_MAP,
     .offset = offsetof(struct kn_script_options, env),
     .help = "extra environment variables"},
    {.key = "onRollback",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_script_options, on_rollback),
     .help = "command run during ROLLBACK when this stage had started"},
};

static const struct kn_schema script_schema = {
    .name = "SCRIPT_RUN",
    KN_SCHEMA_FIELDS(script_fields),
    .size = sizeof(struct kn_script_options),
    .set_offset = offsetof(struct kn_script_options, set),
};

/* ---- running a command ---------------------------------------------------------------------- */

struct script {
    uv_process_t proc;
    uv_pipe_t out;
    struct kn_stage_run *run; /* NULL once cancelled */
    void **slot;
    kn_script_done done;
    struct kn_buf output;
    int64_t exit_status;
    int term_signal;
    int exited;
    int out_open;
    int open_handles;
};

static void script_closed(uv_handle_t *h)
{
    struct script *sc = h->data;

    if (--sc->open_handles > 0) {
        return;
    }
    kn_buf_release(&sc->output);
    free(sc);
}

/* Both the exit and the end of the output are in: report once, then close. */
static void script_maybe_done(struct script *sc)
{
    struct kn_stage_run *run = sc->run;
    char *out;
    int status;

    if (!sc->exited || sc->out_open) {
        return;
    }
    status = sc->term_signal ? 128 + sc->term_signal : (int)sc->exit_status;
    if (run) {
        *sc->slot = NULL;
        /* the output, line by line, in the stage's log */
        out = kn_strdup(sc->output.data ? sc->output.data : "");
        for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
            kn_stage_run_log(run, "| %s", line);
        }
        free(out);
        sc->done(run, status, sc->output.len ? sc->output.data : NULL);
    }
    uv_close((uv_handle_t *)&sc->proc, script_closed);
}

static void script_exit(uv_process_t *p, int64_t exit_status, int term_signal)
{
    struct script *sc = p->data;

    sc->exit_status = exit_status;
    sc->term_signal = term_signal;
    sc->exited = 1;
    script_maybe_done(sc);
}

static void script_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    buf->base = kn_malloc(suggested);
    buf->len = suggested;
}

static void script_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct script *sc = s->data;

    if (n > 0) {
        /* past the cap the rest is dropped: a chatty script cannot eat the controller */
        size_t room = SCRIPT_OUTPUT_MAX - sc->output.len;
        kn_buf_add(&sc->output, buf->base, (size_t)n < room ? (size_t)n : room);
    } else if (n < 0) {
        sc->out_open = 0;
        uv_close((uv_handle_t *)&sc->out, script_closed);
        script_maybe_done(sc);
    }
    free(buf->base);
}

int kn_script_start(struct kn_stage_run *run, void **slot, const char *command,
                    const struct kn_strmap *env, kn_script_done done)
{
    struct script *sc = kn_calloc(1, sizeof(*sc));
    const struct kn_deployment *d = kn_stage_run_deployment(run);
    const char *cwd = kn_stage_run_workdir(run);
    /* stderr joins stdout in the one pipe the output is read from */
    char *script = kn_asprintf("exec 2>&1\n%s", command);
    char *args[] = {(char *)(uintptr_t) "/bin/sh", (char *)(uintptr_t) "-c", script, NULL};
    uv_stdio_container_t stdio[3];
    uv_process_options_t opt;
    size_t n = 0, extra = (env ? env->count : 0) + 3;
    char **envp;
    int rc;

    while (environ[n]) {
        n++;
    }
    envp = kn_calloc(n + extra + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        envp[i] = kn_strdup(environ[i]);
    }
    envp[n++] = kn_asprintf("KANARIA_APP=%s", d->app);
    envp[n++] = kn_asprintf("KANARIA_COMMIT=%s", d->commit);
    envp[n++] = kn_asprintf("KANARIA_DEPLOYMENT=%lld", d->id);
    for (size_t i = 0; env && i < env->count; i++) {
        envp[n++] = kn_asprintf("%s=%s", env->keys[i], env->values[i]);
    }
    kn_buf_init(&sc->output, SCRIPT_OUTPUT_MAX);
    sc->run = run;
    sc->slot = slot;
    sc->done = done;
    sc->proc.data = sc;
    sc->out.data = sc;
    uv_pipe_init(kn_stage_run_loop(run), &sc->out, 0);
    sc->open_handles = 2;
    sc->out_open = 1;
    memset(stdio, 0, sizeof(stdio));
    stdio[0].flags = UV_IGNORE;
    stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[1].data.stream = (uv_stream_t *)&sc->out;
    stdio[2].flags = UV_IGNORE;
    memset(&opt, 0, sizeof(opt));
    opt.file = "/bin/sh";
    opt.args = args;
    opt.env = envp;
    opt.cwd = cwd;
    opt.exit_cb = script_exit;
    opt.stdio = stdio;
    opt.stdio_count = 3;
    opt.flags = UV_PROCESS_DETACHED; /* its own process group, so a cancel stops all of it */
    kn_fd_cloexec_all();
    rc = uv_spawn(kn_stage_run_loop(run), &sc->proc, &opt);
    for (size_t i = 0; envp[i]; i++) {
        free(envp[i]);
    }
    free(envp);
    free(script);
    if (rc != 0) {
        sc->run = NULL;
        sc->out_open = 0;
        sc->open_handles = 1;
        uv_close((uv_handle_t *)&sc->out, script_closed);
        return KN_EIO;
    }
    *slot = sc;
    uv_read_start((uv_stream_t *)&sc->out, script_alloc, script_read);
    return 0;
}

void kn_script_cancel(void **slot)
{
    struct script *sc = *slot;

    if (sc) {
        sc->run = NULL;
        *slot = NULL;
        if (!sc->exited) {
            kill(-sc->proc.pid, SIGKILL);
        }
    }
}

/* ---- the stage -------------------------------------------------------------------------------- */

static void script_done(struct kn_stage_run *run, int status, const char *output)
{
    const char *last = NULL;

    if (status == 0) {
        kn_stage_run_finish(run, 1, NULL);
        return;
    }
    if (output) {
        /* the last line says most often why */
        const char *end = output + strlen(output);
        while (end > output && end[-1] == '\n') {
            end--;
        }
        last = end;
        while (last > output && last[-1] != '\n') {
            last--;
        }
        kn_stage_run_finish(run, 0, "the command exited with status %d: %.*s", status,
                            (int)(end - last), last);
        return;
    }
    kn_stage_run_finish(run, 0, "the command exited with status %d", status);
}

static void script_start(struct kn_stage_run *run)
{
    const struct kn_script_options *o = kn_stage_run_config(run)->with;

    if (!kn_stage_run_workdir(run)) {
        kn_stage_run_finish(run, 0, "no checkout of the app's folder to run in");
        return;
    }
    kn_stage_run_log(run, "running: %s", o->run);
    if (kn_script_start(run, kn_stage_run_state(run), o->run, &o->env, script_done) < 0) {
        kn_stage_run_finish(run, 0, "cannot run /bin/sh");
    }
}

static void script_cancel(struct kn_stage_run *run)
{
    kn_script_cancel(kn_stage_run_state(run));
}

const struct kn_stage_kind kn_stage_script_run = {
    .name = "SCRIPT_RUN",
    .with = &script_schema,
    .default_timeout_ms = 10 * 60 * 1000,
    .help = "run a command in the app's folder, with env and an optional onRollback command",
    .start = script_start,
    .cancel = script_cancel,
};
