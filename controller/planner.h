/*
 * The planner: for an app that a change touched, QUICK_SYNC or PIPELINE (or nothing to do), with a
 * one-line summary a person can read and the manifest diff, following design.md §3.2.
 */
#ifndef KANARIA_PLANNER_H
#define KANARIA_PLANNER_H

#include <jansson.h>

#include "kanaria/app.h"
#include "kanaria/manifest.h"

enum kn_plan_strategy {
    KN_PLAN_NONE = 0,   /* nothing to deploy: [skip deploy], or the manifests did not change */
    KN_PLAN_QUICK_SYNC,
    KN_PLAN_PIPELINE,
};

/* "NONE", "QUICK_SYNC", "PIPELINE" */
const char *kn_plan_strategy_name(enum kn_plan_strategy s);

struct kn_plan_input {
    const struct kn_app *app;   /* the app at the new commit; must be valid */
    const json_t *deployed;     /* canonical manifests deployed now; NULL: first deployment */
    const char *commit_message; /* may be NULL */
};

/* Caller-owned; release with kn_plan_release. */
struct kn_plan {
    enum kn_plan_strategy strategy;
    char *summary;       /* "pipeline: command changed hello-1.4.1 → hello-1.4.2" (owned) */
    struct kn_diff diff; /* from `deployed` to the app's manifests */
};

/* Plan one app. Returns 0, or KN_EINVAL for a missing app. */
int kn_plan_app(struct kn_plan *out, const struct kn_plan_input *in);

void kn_plan_release(struct kn_plan *plan);

/*
 * Whether a change of `changed` (paths relative to the repository top) touches the app: a path
 * inside its folder that matches `trigger.paths` and not `trigger.ignore` (globs relative to the
 * folder), or one of its manifest files wherever it lives. NULL changed means "everything".
 */
int kn_app_touched(const struct kn_app *app, const struct kn_strlist *changed);

#endif /* KANARIA_PLANNER_H */
