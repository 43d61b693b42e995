/*
 * kanaria — stage kinds.
 *
 * A stage kind is a const descriptor registered in one table (stages/registry.c): its name, the
 * schema of its `with:` options, the platform capabilities it needs, its default timeout, and
 * how it changes the variants and traffic of a pipeline (`simulate`), which is how validation
 * finds a CANARY_CLEAN that would remove a canary still taking traffic. The engine operations
 * (start, resume, cancel, release) join this descriptor with the pipeline engine.
 */
#ifndef KANARIA_STAGE_H
#define KANARIA_STAGE_H

#include <stddef.h>
#include <stdint.h>

#include "kanaria/schema.h"

struct kn_config;
struct kn_placeholder;
struct json_t; /* jansson's */

#define KN_STAGE_IMPLICIT 0x1u /* added by kanaria, never listed in a pipeline (ROLLBACK) */

enum kn_variant {
    KN_VARIANT_PRIMARY = 0,
    KN_VARIANT_CANARY,
    KN_VARIANT_BASELINE,
    KN_VARIANT_COUNT,
};

const char *kn_variant_name(enum kn_variant v);

/* `skipOn:` of any stage. */
struct kn_skip_on {
    uint64_t set;
    struct kn_strlist commit_message_prefixes;
    struct kn_strlist paths;
};

/* One entry of an app's `pipeline:`. */
struct kn_stage_config {
    uint64_t set;
    char *name;
    char *id;                  /* optional; defaults to the name */
    long long timeout_ms;      /* 0: the kind's default */
    struct kn_skip_on skip_on;
    const struct kn_node *with_node; /* borrowed from the app's parsed file */
    const struct kn_stage_kind *kind; /* resolved from name; NULL when unknown */
    void *with;                /* kind->with->size bytes, parsed; owned */
    struct kn_loc loc;         /* of the entry; loc.file borrowed */
};

/* What validation knows of the pipeline as it walks it, stage by stage. */
struct kn_pipeline_sim {
    int running[KN_VARIANT_COUNT];  /* variant exists at this point */
    double weight[KN_VARIANT_COUNT]; /* percent of traffic */
    int traffic_shifted;       /* some TRAFFIC_ROUTING moved traffic off the primary */
    int primary_replaced;      /* PRIMARY_ROLLOUT ran */
    const struct kn_config *controller; /* may be NULL: names of providers are not checked */
    const char *platform; /* the app's platform, for messages; may be NULL */
    const struct kn_app *app; /* the app (its SLOs, for burn-rate checks); may be NULL */
    double weight_step;   /* its smallest traffic step in percent; 0: any */
    /* its type's name and analysis placeholders (kanaria/platform.h, ended by a NULL name);
     * type NULL when the type is unknown: the platform's own placeholders are not checked */
    const char *platform_type;
    const struct kn_placeholder *placeholders;
};

/* A stage being run by the engine (stages/engine.c); the kind reaches everything through the
 * kn_stage_run_* functions of engine.h. */
struct kn_stage_run;

struct kn_stage_kind {
    const char *name;
    const struct kn_schema *with; /* NULL: the stage takes no options */
    unsigned caps;                /* KN_PLATFORM_* it needs */
    long long default_timeout_ms;
    unsigned flags;               /* KN_STAGE_* */
    const char *help;
    /* Check this stage against the pipeline so far and apply its effect to `sim` (NULL: the
     * stage changes no variant and no traffic). */
    void (*simulate)(struct kn_pipeline_sim *sim, const struct kn_stage_config *stage,
                     struct kn_schema_ctx *ctx);
    /* Start the stage, or resume it after a restart from its stored metadata: a kind is written
     * so that starting it again is safe. It ends by calling kn_stage_run_finish exactly once
     * (possibly before start returns). */
    void (*start)(struct kn_stage_run *run);
    /* Stop timers and ignore work in flight: the stage timed out or the deployment stops. No
     * kn_stage_run_finish after this. NULL when start leaves nothing behind. */
    void (*cancel)(struct kn_stage_run *run);
    /* Something the running stage waits for may have changed (a person approved): look again
     * now rather than at the next poll. NULL: the stage waits for nothing outside. */
    void (*poke)(struct kn_stage_run *run);
    /* Fill in what the options take from a file shared by the repository's apps, once the app
     * config is parsed and before the pipeline is checked: `shared` is the root node of
     * KN_ANALYSIS_TEMPLATES_FILE, NULL when the repository has none. NULL: nothing to fill. */
    void (*resolve)(struct kn_stage_config *stage, const struct kn_node *shared,
                    struct kn_schema_ctx *ctx);
    /* What the stage's options mean to someone following the deployment, set in `out` (the
     * object of kn_stage_describe, its defaults already in): "duration_ms", "approvers",
     * "min_approvals", "weights", "checks". NULL: nothing beside the defaults. */
    void (*describe)(const struct kn_stage_config *stage, struct json_t *out);
};

/* An app's `spec.analysis` (background analysis): `startingStage`, `until`, and the `metrics`
 * and `http` checks of ANALYSIS, parsed into a struct of the stages' own (stages/stages.h,
 * schema->size bytes) that the app owns (kn_app_spec.analysis). */
extern const struct kn_schema kn_background_schema;

/* The repository's shared ANALYSIS metric templates (kind AnalysisTemplate), at its top. */
#define KN_ANALYSIS_TEMPLATES_FILE ".kanaria/analysis-templates.yaml"

/* The registered kinds, NULL-terminated, in the order of the reference docs. */
extern const struct kn_stage_kind *const kn_stage_kinds[];

/* A kind by name ("TRAFFIC_ROUTING"), or NULL. */
const struct kn_stage_kind *kn_stage_kind_find(const char *name);

/* The schema of one pipeline entry (name, id, timeout, skipOn, with); its check hook resolves the
 * kind and parses `with:` into stage->with. */
extern const struct kn_schema kn_stage_config_schema;

/* The effective timeout of a stage: its own, or its kind's default. */
long long kn_stage_timeout_ms(const struct kn_stage_config *stage);

/*
 * Stage `index` of a pipeline as the API shows it, a new JSON object (the caller decrefs it):
 * {"index", "kind", "id" ("" when the stage has none), "timeout_ms" (the caller's: what the
 * engine runs it with), "duration_ms" (0), "approvers" ([]), "min_approvals" (0)}, then what the
 * kind's describe sets (WAIT and ANALYSIS their duration; WAIT_APPROVAL its approvers and
 * minApprovers; TRAFFIC_ROUTING "weights" {"primary", "canary", "baseline"}; ANALYSIS "checks"
 * [{"name", "strategy", "max", "min", "interval_ms"}], max and min null when not bounded).
 */
struct json_t *kn_stage_describe(const struct kn_stage_config *stage, int index,
                                 long long timeout_ms);

/*
 * An analysis record's values_json (kn_store_analysis_add) read back, a new JSON object (the
 * caller decrefs it), or NULL when it is not a JSON object: {"values": {VARIANT: [samples]}}
 * with, when they were recorded, "times": {VARIANT: [ms since the epoch]} (the same keys and
 * lengths) and "threshold": {"max": N|null, "min": N|null} (a threshold check's fixed bound).
 * Records written before times were kept hold the samples alone; they read the same way. An
 * HTTP check's values are {"status", "latency_ms"}.
 */
struct json_t *kn_analysis_values_read(const char *values_json);

#endif /* KANARIA_STAGE_H */
