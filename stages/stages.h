/*
 * Options of the stage kinds (`with:`), private to stages/ and the engine. Each struct starts
 * with the presence bitmask that the schema engine fills.
 */
#ifndef KANARIA_STAGES_H
#define KANARIA_STAGES_H

#include <stdint.h>

#include "kanaria/stage.h"

/* CANARY_ROLLOUT, BASELINE_ROLLOUT */
struct kn_rollout_options {
    uint64_t set;
    struct kn_scale replicas;
};

/* TRAFFIC_ROUTING: percents, or everything to one variant */
struct kn_traffic_matcher {
    uint64_t set;
    char *name;
    char *exact;
    char *regex;
};

/* one entry of `match`: a header or a cookie */
struct kn_traffic_match {
    uint64_t set;
    struct kn_traffic_matcher header;
    struct kn_traffic_matcher cookie;
};

struct kn_traffic_options {
    uint64_t set;
    double percent[KN_VARIANT_COUNT];
    int all;   /* enum kn_variant, when set */
    int valid; /* set by the check: the weights above are usable */
    struct kn_list match; /* struct kn_traffic_match: requests that go to the canary */
    double mirror;        /* percent of the primary's requests copied to the canary */
};

/* WAIT */
struct kn_wait_options {
    uint64_t set;
    long long duration_ms;
};

/* WAIT_APPROVAL */
struct kn_approval_options {
    uint64_t set;
    struct kn_strlist approvers;
    long long min_approvers;
    long long timeout_ms;
};

/* SCRIPT_RUN */
struct kn_script_options {
    uint64_t set;
    char *run;
    struct kn_strmap env;
    char *on_rollback;
};

/* ANALYSIS */
enum kn_analysis_strategy {
    KN_STRATEGY_THRESHOLD = 0,
    KN_STRATEGY_CANARY_PRIMARY,
    KN_STRATEGY_CANARY_BASELINE,
    KN_STRATEGY_PREVIOUS,
    KN_STRATEGY_BURN_RATE, /* value/(1 - the SLO's objective) against maxBurnRate */
};

enum kn_deviation {
    KN_DEVIATION_EITHER = 0,
    KN_DEVIATION_HIGH,
    KN_DEVIATION_LOW,
};

enum kn_no_data {
    KN_NODATA_INCONCLUSIVE = 0,
    KN_NODATA_FAIL,
    KN_NODATA_SKIP,
};

struct kn_metric_expected {
    uint64_t set;
    double min;
    double max;
};

struct kn_analysis_metric {
    uint64_t set;
    char *name;
    char *provider;
    char *query;
    long long interval_ms;
    int strategy;  /* enum kn_analysis_strategy */
    struct kn_metric_expected expected;
    int deviation; /* enum kn_deviation */
    double alpha;
    long long min_samples;
    double min_effect;
    long long failure_limit;
    long long inconclusive_limit;
    int no_data;   /* enum kn_no_data */
    struct kn_strmap args;
    char *template_name; /* a metric of KN_ANALYSIS_TEMPLATES_FILE this one starts from */
    char *slo;             /* burn-rate: an SLO of the app (spec.slos) */
    double max_burn_rate;  /* burn-rate: the error ratio may burn its budget this fast */
};

struct kn_http_check {
    uint64_t set;
    char *name;
    char *url;
    int method;
    struct kn_strmap headers;
    struct kn_strlist expected_status;
    char *body_regex;
    long long max_latency_ms;
    long long timeout_ms;
    long long interval_ms;
    long long failure_limit;
    long long inconclusive_limit;
    int variant; /* enum kn_variant probed, when `variant` is set (KN_HTTP_CHECK_VARIANT_SET) */
};

/* The bit of kn_http_check.set that says `variant` was given (its field's index). */
#define KN_HTTP_CHECK_VARIANT_SET (1ull << 11)

struct kn_analysis_options {
    uint64_t set;
    long long duration_ms;
    struct kn_list metrics; /* struct kn_analysis_metric */
    struct kn_list http;    /* struct kn_http_check */
};

/*
 * An app's `spec.analysis` (kn_background_schema, stages/analysis.c): its checks run from the
 * stage `starting_stage` names until the stage `until` names starts (stages/background.c for
 * what the two mean, the engine for running them).
 */
struct kn_background_options {
    uint64_t set;
    char *starting_stage; /* a stage id or kind; NULL: the first stage */
    char *until;          /* NULL: the first PRIMARY_ROLLOUT after it (none: the end) */
    struct kn_analysis_options checks; /* its metrics and http; duration 0: until stopped */
    /* the checks as an ANALYSIS stage (name ANALYSIS, id "background", with &checks, with_node
     * the block), for the ANALYSIS hooks (templates, placeholders, describe) and the engine */
    struct kn_stage_config stage;
};

/* Where the background analysis of `b` runs in `pipeline` (struct kn_stage_config): from stage
 * *start (it starts when that stage starts) until stage *until starts (pipeline->count: until
 * the pipeline ends). 0, or KN_ENOTFOUND when a name matches no stage
 * (kn_background_check_names reports it, located). */
int kn_background_bounds(const struct kn_background_options *b, const struct kn_list *pipeline,
                         size_t *start, size_t *until);

/* Validation of the block (stages/validate.c calls them): check its stage names against the
 * pipeline (located errors for a name that matches no stage, or an until not after
 * startingStage); then, with the pipeline's state as the analysis starts (before stage
 * `start`), its checks as ANALYSIS checks them (a variant compared must run by then, the
 * placeholders, the providers). */
void kn_background_check_names(const struct kn_background_options *b,
                               const struct kn_list *pipeline, struct kn_schema_ctx *ctx);
void kn_background_simulate(const struct kn_background_options *b,
                            const struct kn_pipeline_sim *sim, size_t start,
                            const struct kn_list *pipeline, struct kn_schema_ctx *ctx);

/*
 * Running one platform operation for a stage (stages/platform_op.c): `fn` starts it with the
 * request it is given (kn_platform_apply(p, req, ..., op) and the like); when it completes, `done` runs with its status and message
 * (NULL done: finish the stage with that result). `slot` keeps the operation while it is in
 * flight (kn_stage_run_state(run) for most kinds); kn_stage_op_cancel(slot), from a kind's
 * cancel, makes a completion that arrives later do nothing, and when the stage is halting
 * (kn_stage_run_halting) asks the platform to stop the operation.
 */
struct kn_platform_req;
struct kn_platform_op;
typedef int (*kn_stage_op_fn)(struct kn_stage_run *run, const struct kn_platform_req *req,
                              struct kn_platform_op **op);
typedef void (*kn_stage_op_done)(struct kn_stage_run *run, int status, const char *message);
void kn_stage_op_run(struct kn_stage_run *run, void **slot, kn_stage_op_fn fn,
                     kn_stage_op_done done, const char *what);
void kn_stage_op_cancel(void **slot);

/* A one-shot timer for a stage, kept in `slot`; cancel makes it never fire. */
void kn_stage_timer_start(struct kn_stage_run *run, void **slot, long long ms,
                          void (*cb)(struct kn_stage_run *run));
void kn_stage_timer_cancel(void **slot);

/* Run `command` with /bin/sh -c in the deployment's work folder, with env added to kanaria's
 * and KANARIA_APP, KANARIA_COMMIT, KANARIA_DEPLOYMENT; `done` gets the exit status (128+signal
 * when killed) and the output (stdout and stderr, capped; NULL when none). stages/script.c. */
typedef void (*kn_script_done)(struct kn_stage_run *run, int status, const char *output);
int kn_script_start(struct kn_stage_run *run, void **slot, const char *command,
                    const struct kn_strmap *env, kn_script_done done);
void kn_script_cancel(void **slot);

/* `tmpl` with each {{NAME}} filled in from `vars` (the platform's kn_platform_template_vars
 * plus "window" and "commit") and each {{args.NAME}} from `args` (NULL: none). Validation has
 * refused any other name; one missing here is filled in empty. Caller frees; NULL when it would
 * be over 64 KiB. */
char *kn_analysis_fill(const char *tmpl, const struct kn_strmap *args,
                       const struct kn_strmap *vars);

/*
 * An analysis run (stages/analysis_run.c), usable outside an ANALYSIS stage: the checks of
 * `options` evaluated on their intervals, each evaluation recorded (kn_store_analysis_add)
 * under the deployment of `run` and `record_index` (the stage index the API shows the records
 * with), the counts kept in the stage meta of `run` under `meta_prefix` ("" for the ANALYSIS
 * stage itself; "step.2." for CANARY_STEPS' third step; "background." for a pipeline's
 * background analysis), so that a restart resumes them. `duration_ms` 0 runs until stopped
 * (background analysis: it ends only with a failure or kn_analysis_runner_stop). `done` runs
 * exactly once, never from inside kn_analysis_runner_start, with ok 1 (the duration ended with
 * the checks passing) or 0 and the reason ("analysis 'errors' failed: ..."); the runner is
 * freed after `done` returns. kn_analysis_runner_stop (from a cancel, or when the pipeline
 * reaches the end of a background analysis) frees it without calling `done`; evaluations in
 * flight end on their own.
 */
struct kn_analysis_runner;
struct kn_analysis_runner_cfg {
    const struct kn_analysis_options *options; /* borrowed; outlives the runner */
    int record_index;
    const char *meta_prefix;                   /* copied */
    long long duration_ms;
    void (*done)(struct kn_stage_run *run, int ok, const char *reason, void *data);
    void *data;
};
int kn_analysis_runner_start(struct kn_stage_run *run, const struct kn_analysis_runner_cfg *cfg,
                             struct kn_analysis_runner **out);
void kn_analysis_runner_stop(struct kn_analysis_runner *r);

/* The checks of an ANALYSIS without its duration (stages/analysis.c), for stages that run them. */
extern const struct kn_schema kn_analysis_checks_schema;

/* CANARY_STEPS (stages/steps.c) */
#define KN_STEPS_MAX 100

struct kn_steps_pause {
    uint64_t set;
    long long step; /* 1-based */
    long long duration_ms;   /* a timed pause; 0 for one until approved */
    int until_approved;      /* held until approved (approvers, min_approvers as WAIT_APPROVAL's) */
    struct kn_strlist approvers;
    long long min_approvers;
};

struct kn_steps_options {
    uint64_t set;
    struct kn_strlist steps; /* percents as written */
    double step_weight;
    double max_weight;
    long long interval_ms;
    struct kn_analysis_options analysis; /* duration_ms: interval_ms, set by the check */
    struct kn_list pauses; /* struct kn_steps_pause */
    /* set by the check: the canary's percent at each step, ascending */
    double weight[KN_STEPS_MAX];
    size_t count;
    int valid;
    /* the checks as an ANALYSIS stage (kind ANALYSIS, name CANARY_STEPS for the messages, with
     * &analysis, with_node the block) for the ANALYSIS hooks (templates, placeholders, describe) */
    struct kn_stage_config as_analysis;
};

/* How long a CANARY_STEPS runs when every step passes: its intervals and timed pauses. */
long long kn_steps_length_ms(const struct kn_stage_config *stage);
/* Its timeout when it gives none: that length, 5 minutes, and for each pause until approved
 * WAIT_APPROVAL's default of 6 hours. */
long long kn_steps_timeout_ms(const struct kn_stage_config *stage);

/* ANALYSIS at run time (stages/analysis_run.c). */
void kn_analysis_start(struct kn_stage_run *run);
void kn_analysis_cancel(struct kn_stage_run *run);

extern const struct kn_stage_kind kn_stage_sync;
extern const struct kn_stage_kind kn_stage_canary_rollout;
extern const struct kn_stage_kind kn_stage_baseline_rollout;
extern const struct kn_stage_kind kn_stage_primary_rollout;
extern const struct kn_stage_kind kn_stage_traffic_routing;
extern const struct kn_stage_kind kn_stage_analysis;
extern const struct kn_stage_kind kn_stage_wait;
extern const struct kn_stage_kind kn_stage_wait_approval;
extern const struct kn_stage_kind kn_stage_canary_clean;
extern const struct kn_stage_kind kn_stage_baseline_clean;
extern const struct kn_stage_kind kn_stage_script_run;
extern const struct kn_stage_kind kn_stage_rollback;
extern const struct kn_stage_kind kn_stage_canary_steps;

#endif /* KANARIA_STAGES_H */
