/*
 * The planner. Order of the rules, first match wins:
 *   1. `[skip deploy]` in the commit message: nothing to do;
 *   2. first deployment: quick sync (there is nothing to compare a canary with);
 *   3. manifests unchanged: nothing to do;
 *   4. `[kanaria quick-sync]` / `[kanaria pipeline]` in the message: as asked (a pipeline only
 *      when the app has one);
 *   5. no pipeline: quick sync;
 *   6. planner.alwaysUsePipeline: pipeline;
 *   7. no change to what runs: quick sync. What runs is, for a manifest whose kind the app's
 *      platform type declares, the kind's runtime_paths (kanaria/manifest.h; local: everything
 *      of a LocalService but spec.replicas and metadata); for a manifest loaded without a kinds
 *      table, everything but spec.replicas, labels and annotations;
 *   8. anything else changes what runs: pipeline.
 */
#include "planner.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kanaria/alloc.h"

const char *kn_plan_strategy_name(enum kn_plan_strategy s)
{
    switch (s) {
    case KN_PLAN_NONE:
        return "NONE";
    case KN_PLAN_QUICK_SYNC:
        return "QUICK_SYNC";
    case KN_PLAN_PIPELINE:
        return "PIPELINE";
    }
    return "?";
}

static int has_tag(const char *message, const char *tag)
{
    return message && strstr(message, tag) != NULL;
}

/* A field whose change does not change what runs, for a manifest without a kinds table. */
static int is_scaling_or_label(const char *path)
{
    return strcmp(path, "spec.replicas") == 0 || strncmp(path, "metadata.labels", 15) == 0 ||
           strncmp(path, "metadata.annotations", 20) == 0;
}

/* Whether changing `path` of the manifest kind/name of app changes what runs. */
static int changes_what_runs(const struct kn_app *app, const char *kind, const char *name,
                             const char *path)
{
    const struct kn_manifest_kind *def = NULL;

    for (size_t i = 0; i < app->ndocs && !def; i++) {
        if (strcmp(app->docs[i].kind, kind) == 0 && strcmp(app->docs[i].name, name) == 0) {
            def = app->docs[i].def;
        }
    }
    if (!def) {
        return !is_scaling_or_label(path);
    }
    if (!def->runtime_paths) {
        return 1;
    }
    for (size_t i = 0; def->runtime_paths[i]; i++) {
        size_t n = strlen(def->runtime_paths[i]);
        if (strncmp(path, def->runtime_paths[i], n) == 0 &&
            (path[n] == '\0' || path[n] == '.' || path[n] == '[')) {
            return 1;
        }
    }
    return 0;
}

/* JSON text of a value, with the quotes of a plain string taken off, for summaries. */
static char *readable(const char *json_text)
{
    size_t n;

    if (!json_text) {
        return kn_strdup("(none)");
    }
    n = strlen(json_text);
    if (n >= 2 && json_text[0] == '"' && json_text[n - 1] == '"' && !strchr(json_text + 1, '\\')) {
        return kn_strndup(json_text + 1, n - 2);
    }
    return kn_strdup(json_text);
}

/* "command" for spec.command[1], "env GREETING" for spec.env.GREETING, else the path. */
static char *field_label(const char *path)
{
    const char *p = strncmp(path, "spec.", 5) == 0 ? path + 5 : path;
    size_t word = strcspn(p, ".[");

    if (strncmp(p, "env.", 4) == 0) {
        return kn_asprintf("env %s", p + 4);
    }
    if (p[word] == '[') {
        return kn_strndup(p, word);
    }
    return kn_strdup(p);
}

static char *describe_change(const struct kn_app *app, const struct kn_diff *d, size_t *count)
{
    const struct kn_manifest_change *first = NULL;
    const struct kn_field_change *field = NULL;
    char *out;

    *count = 0;
    for (size_t i = 0; i < d->count; i++) {
        const struct kn_manifest_change *c = &d->items[i];
        if (c->op != KN_CHANGE_CHANGED) {
            *count += 1;
            first = first ? first : c;
            continue;
        }
        for (size_t j = 0; j < c->nfields; j++) {
            if (!changes_what_runs(app, c->kind, c->name, c->fields[j].path)) {
                continue;
            }
            *count += 1;
            if (!first) {
                first = c;
                field = &c->fields[j];
            }
        }
    }
    if (!first) {
        return NULL;
    }
    if (!field) {
        out = kn_asprintf("%s/%s %s", first->kind, first->name,
                          first->op == KN_CHANGE_ADDED ? "added" : "removed");
    } else {
        char *label = field_label(field->path);
        char *old = readable(field->old_value);
        char *new = readable(field->new_value);
        out = kn_asprintf("%s changed %s \u2192 %s", label, old, new);
        free(label);
        free(old);
        free(new);
    }
    if (*count > 1) {
        char *more = kn_asprintf("%s (and %zu more change%s)", out, *count - 1,
                                 *count == 2 ? "" : "s");
        free(out);
        out = more;
    }
    return out;
}

/* "replicas 2 → 3" when only scaling changed, else what did (nothing that runs). */
static char *describe_scaling(const struct kn_diff *d)
{
    const char *other = NULL;

    for (size_t i = 0; i < d->count; i++) {
        for (size_t j = 0; j < d->items[i].nfields; j++) {
            const struct kn_field_change *f = &d->items[i].fields[j];
            if (strcmp(f->path, "spec.replicas") == 0) {
                return kn_asprintf("replicas %s \u2192 %s", f->old_value ? f->old_value : "1",
                                   f->new_value ? f->new_value : "1");
            }
            if (!other && strncmp(f->path, "metadata.labels", 15) != 0 &&
                strncmp(f->path, "metadata.annotations", 20) != 0) {
                other = f->path;
            }
        }
    }
    return other ? kn_asprintf("%s changed", other) : kn_strdup("labels changed");
}

int kn_plan_app(struct kn_plan *out, const struct kn_plan_input *in)
{
    const struct kn_app *app = in ? in->app : NULL;
    int has_pipeline;
    size_t nchanges = 0;
    char *what = NULL;

    if (!out || !app) {
        return KN_EINVAL;
    }
    memset(out, 0, sizeof(*out));
    has_pipeline = kn_app_stage_count(app) > 0;
    kn_diff_manifests(&out->diff, in->deployed, app->manifests);

    if (has_tag(in->commit_message, "[skip deploy]")) {
        out->strategy = KN_PLAN_NONE;
        out->summary = kn_strdup("skipped: the commit message says [skip deploy]");
        goto out;
    }
    if (!in->deployed) {
        out->strategy = KN_PLAN_QUICK_SYNC;
        out->summary = kn_strdup("quick sync: first deployment");
        goto out;
    }
    if (out->diff.count == 0) {
        out->strategy = KN_PLAN_NONE;
        out->summary = kn_strdup("nothing to do: the manifests did not change");
        goto out;
    }
    what = describe_change(app, &out->diff, &nchanges);
    if (has_tag(in->commit_message, "[kanaria quick-sync]")) {
        out->strategy = KN_PLAN_QUICK_SYNC;
        out->summary = kn_strdup("quick sync: the commit message asks for it");
    } else if (has_tag(in->commit_message, "[kanaria pipeline]") && has_pipeline) {
        out->strategy = KN_PLAN_PIPELINE;
        out->summary = kn_strdup("pipeline: the commit message asks for it");
    } else if (!has_pipeline) {
        out->strategy = KN_PLAN_QUICK_SYNC;
        out->summary = kn_strdup("quick sync: the app has no pipeline");
    } else if (app->cfg.spec.planner.always_use_pipeline) {
        out->strategy = KN_PLAN_PIPELINE;
        out->summary = kn_asprintf("pipeline: planner.alwaysUsePipeline (%s)",
                                   what ? what : "scaling only");
    } else if (!what) {
        char *scaling = describe_scaling(&out->diff);
        out->strategy = KN_PLAN_QUICK_SYNC;
        out->summary = kn_asprintf("quick sync: %s", scaling);
        free(scaling);
    } else {
        out->strategy = KN_PLAN_PIPELINE;
        out->summary = kn_asprintf("pipeline: %s", what);
    }
out:
    free(what);
    return 0;
}

void kn_plan_release(struct kn_plan *plan)
{
    if (!plan) {
        return;
    }
    free(plan->summary);
    kn_diff_release(&plan->diff);
    memset(plan, 0, sizeof(*plan));
}

static int matches_any(const struct kn_strlist *globs, const char *path)
{
    for (size_t i = 0; i < globs->count; i++) {
        if (kn_glob_match(globs->items[i], path)) {
            return 1;
        }
    }
    return 0;
}

static int is_manifest_file(const struct kn_app *app, const char *path)
{
    for (size_t i = 0; i < app->ndocs; i++) {
        if (strcmp(app->docs[i].file, path) == 0) {
            return 1;
        }
    }
    return strcmp(app->config_path, path) == 0;
}

int kn_app_touched(const struct kn_app *app, const struct kn_strlist *changed)
{
    const struct kn_trigger_config *t = &app->cfg.spec.trigger;
    size_t dlen = strlen(app->dir);

    if (!changed) {
        return 1;
    }
    for (size_t i = 0; i < changed->count; i++) {
        const char *path = changed->items[i];
        const char *rel;

        if (is_manifest_file(app, path)) {
            return 1;
        }
        if (dlen == 0) {
            rel = path;
        } else if (strncmp(path, app->dir, dlen) == 0 && path[dlen] == '/') {
            rel = path + dlen + 1;
        } else {
            continue;
        }
        if (matches_any(&t->paths, rel) && !matches_any(&t->ignore, rel)) {
            return 1;
        }
    }
    return 0;
}
