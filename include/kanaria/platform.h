/*
 * kanaria — the platform contract, as the engine, drift, prune and the API use it.
 *
 * A platform type (local today; ecs and kubernetes next) is a provider behind one front end
 * (controller/platforms/platform.c). The front end knows apps by (repository, app), runs the
 * operations of one app one at a time in the order asked while other apps' run beside them,
 * skips what the platform cannot do the same way for every caller (SYNC and ROLLBACK alike),
 * enforces each operation's deadline, and keeps a small memo per app in the state store.
 * What a provider implements is in include/kanaria/plugin/platform.h.
 *
 * All functions run on the loop thread.
 */
#ifndef KANARIA_PLATFORM_H
#define KANARIA_PLATFORM_H

#include <jansson.h>
#include <stddef.h>
#include <uv.h>

#include "kanaria/error.h"
#include "kanaria/schema.h"
#include "kanaria/stage.h"

#define KN_PLATFORM_APPLY 0x01u         /* apply manifests as the primary */
#define KN_PLATFORM_CANARY 0x02u        /* run a canary variant beside the primary */
#define KN_PLATFORM_BASELINE 0x04u      /* run a baseline variant */
#define KN_PLATFORM_TRAFFIC_SPLIT 0x08u /* weighted traffic between variants */
#define KN_PLATFORM_LIVE 0x10u          /* what runs can be read back (drift) */
#define KN_PLATFORM_CANCEL 0x20u        /* an operation in flight can be stopped */
#define KN_PLATFORM_HEADER_ROUTING 0x40u /* requests matching a header or cookie go to the canary */
#define KN_PLATFORM_MIRROR 0x80u         /* a copy of the primary's requests goes to the canary */

/* Names of the flags above, for messages ("traffic splitting"). */
const char *kn_platform_cap_name(unsigned cap);

struct kn_platform_type; /* include/kanaria/plugin/platform.h */

/* The registered platform types, NULL-terminated (controller/platforms/registry.c). */
extern const struct kn_platform_type *const kn_platform_types[];

/* A registered type by name, or NULL. */
const struct kn_platform_type *kn_platform_type_find(const char *name);

/* Which app: the engine, the store and the API know an app by both. */
struct kn_app_id {
    const char *repository;
    const char *app;
};

/* What one variant of an app runs: the manifests of a commit. */
struct kn_variant_spec {
    enum kn_variant variant;
    const char *commit;
    const json_t *manifests;  /* canonical manifests (array) of that commit; borrowed */
    const void *options;      /* spec.<type> of the app at that commit, parsed with the type's
                                 app_schema; NULL when it has none. Borrowed until the call
                                 ends: the caller keeps the app until its callback has run.
                                 Only apply is handed them: a provider that needs them in
                                 set_weights, remove or observe keeps what it needs in its memo */
    struct kn_scale replicas; /* canary and baseline: a count or a percent of the primary's;
                                 primary: value 0 means the manifest's own replicas */
    long long ready_timeout_ms; /* healthy within this (what is left of a stage's own timeout),
                                   else the apply fails; 0: the provider's own start timeout.
                                   Apart from the call's deadline, which also covers queueing
                                   and which every stage has (its kind's default timeout). */
};

/* What kanaria set for an app, which observe compares what runs with. */
struct kn_desired {
    const char *commit;       /* the primary's commit (the last good one) */
    const json_t *manifests;  /* its canonical manifests; borrowed */
    const void *options;      /* its spec.<type>, or NULL */
    double percent[KN_VARIANT_COUNT]; /* the split kanaria set last */
};

/* What runs now, read back from the platform (not only what kanaria remembers writing). */
struct kn_live_variant {
    int instances;     /* running */
    int healthy;
    double weight;     /* percent of the app's traffic */
    char commit[41];   /* the commit it was applied from, "" unknown */
};

/* One resource of the app as the platform has it now (a HAProxy server, an ECS task set, a
 * Deployment): its status, and how it differs from what kanaria set (NULL: it does not). */
struct kn_live_resource {
    char *kind;    /* "server", "TaskSet", "Deployment" (owned) */
    char *name;    /* "primary-3" (owned) */
    char *status;  /* "ready, weight 50" (owned) */
    char *drift;   /* "weight 0, kanaria set 50"; NULL: as kanaria set it (owned) */
};

struct kn_live_state {
    struct kn_live_variant variant[KN_VARIANT_COUNT];
    char *error;   /* why the platform could not be read back; NULL when it could (owned) */
    struct kn_live_resource *resources; /* (owned) */
    size_t nresources;
};

/* Add a resource (strings copied; drift may be NULL). */
void kn_live_state_add(struct kn_live_state *s, const char *kind, const char *name,
                       const char *status, const char *drift);
/* Free what a live state owns (not the struct); a zeroed one is fine. */
void kn_live_state_release(struct kn_live_state *s);
/* A deep copy of src into dst (zeroed or released by the caller). */
void kn_live_state_copy(struct kn_live_state *dst, const struct kn_live_state *src);

/* ---- instances ------------------------------------------------------------------------------ */

struct kn_platform;
struct kn_platform_config;
struct kn_store;
struct kn_http_client;

struct kn_platform_deps {
    uv_loop_t *loop;
    const char *data_dir;
    struct kn_http_client *http;
    struct kn_store *store; /* keeps the memos; NULL: memos live in memory (tests) */
};

/* A platform from its kanaria.yaml entry (its type's create). Errors with err filled. */
int kn_platform_new(struct kn_platform **out, const struct kn_platform_deps *deps,
                    const struct kn_platform_config *cfg, struct kn_error *err);
/* Stop: calls in flight end KN_ECANCELLED (callbacks run), then free. NULL is a no-op. */
void kn_platform_free(struct kn_platform *p);
const char *kn_platform_name(const struct kn_platform *p);
const struct kn_platform_type *kn_platform_type_of(const struct kn_platform *p);
unsigned kn_platform_caps(const struct kn_platform *p);

/* ---- operations ----------------------------------------------------------------------------- */

/* Completion: status 0 or a KN_E* code, and the platform's own words (NULL on success). Runs
 * once, on the loop, never from inside the call that asked. */
typedef void (*kn_platform_cb)(int status, const char *message, void *data);
/* A progress line of an operation ("2/3 pods ready"). */
typedef void (*kn_platform_progress_cb)(const char *line, void *data);

/* Who asks, and how long it may take. */
struct kn_platform_req {
    struct kn_app_id id;
    long long deployment_id;   /* 0: not for a deployment */
    int stage_index;           /* -1: not for a stage */
    const char *stage_name;    /* "CANARY_ROLLOUT"; NULL */
    long long timeout_ms;      /* from the call, queueing included; 0: the front end's default
                                  (10 minutes) */
    kn_platform_cb done;
    kn_platform_progress_cb progress; /* NULL: progress is only logged */
    void *data;
};

struct kn_platform_op; /* a handle to cancel an operation; valid until its callback ran */

/*
 * Each returns 0 and the callback runs once later, or a KN_E* code and it never runs. `op` (may
 * be NULL) receives the handle. What the platform cannot do (KN_PLATFORM_*) is not an error where
 * it changes nothing: removing a canary on a platform without canaries, or putting all the traffic
 * on the primary without traffic splitting, ends at once with 0 and a progress line saying it
 * was skipped; a split the platform cannot make is KN_EUNSUPPORTED, a percent off the type's
 * weight_step KN_EINVAL.
 */
int kn_platform_apply(struct kn_platform *p, const struct kn_platform_req *req,
                      const struct kn_variant_spec *spec, struct kn_platform_op **op);
int kn_platform_remove(struct kn_platform *p, const struct kn_platform_req *req,
                       enum kn_variant v, struct kn_platform_op **op);
int kn_platform_set_weights(struct kn_platform *p, const struct kn_platform_req *req,
                            const double percent[KN_VARIANT_COUNT], struct kn_platform_op **op);
/* KN_EUNSUPPORTED when the type cannot remove apps. */
int kn_platform_remove_app(struct kn_platform *p, const struct kn_platform_req *req,
                           struct kn_platform_op **op);
/* Read what runs (drift is the only caller); cb gets the state, borrowed for the call (when
 * status is not 0, only its error is set: why, in the provider's words). Does not wait behind
 * the app's queue. */
typedef void (*kn_platform_observe_cb)(int status, const struct kn_live_state *live, void *data);
int kn_platform_observe(struct kn_platform *p, const struct kn_app_id *id,
                        const struct kn_desired *desired, long long timeout_ms,
                        kn_platform_observe_cb cb, void *data);
/* Stop the operation: a waiting one ends at once, a running one is cancelled in the provider
 * (or, for a type without KN_PLATFORM_CANCEL, no longer waited for: the app's next operation
 * waits for it still, so they never overlap). Its callback runs once, with KN_ECANCELLED or its
 * outcome. The operations asked after it do not wait for its end beyond the provider's stop. */
void kn_platform_cancel(struct kn_platform_op *op);

/* ---- routes: requests that go to the canary whatever the weights ------------------------------ */

enum kn_route_field {
    KN_ROUTE_HEADER = 0, /* a request header, its name in any case */
    KN_ROUTE_COOKIE,     /* a cookie of the Cookie header, its name as written */
};

/* One match: a request whose header (or cookie) `name` has the value `value` goes to the canary.
 * With `regex` 1, value is a regular expression (POSIX extended, which HAProxy's PCRE, RE2 and
 * Envoy all read alike for the usual patterns) that the whole value must match. */
struct kn_route_match {
    enum kn_route_field field;
    const char *name;
    const char *value;
    int regex;
};

/* The routes of an app beside its weights: requests matching any match go to the canary, and
 * `mirror` percent of the primary's requests are copied to the canary (their answers dropped).
 * No match and mirror 0: none. */
struct kn_routes {
    const struct kn_route_match *matches;
    size_t nmatches;
    double mirror;
};

/*
 * Set the weights (as kn_platform_set_weights) and replace the app's routes with `routes`.
 * Routes stay, through later kn_platform_set_weights, until they are replaced, the traffic goes
 * all to the primary (kn_platform_set_weights with primary 100, which promotion and rollback
 * do), the canary is removed or the app is. KN_EUNSUPPORTED when routes has matches and the type
 * lacks KN_PLATFORM_HEADER_ROUTING, or a mirror and it lacks KN_PLATFORM_MIRROR; KN_EINVAL for a
 * match without a name or value, or a mirror outside 0..100. Everything is copied.
 */
int kn_platform_set_routes(struct kn_platform *p, const struct kn_platform_req *req,
                           const double percent[KN_VARIANT_COUNT], const struct kn_routes *routes,
                           struct kn_platform_op **op);

/* Leader election: leading 1 once this instance may deploy, 0 (with why) when it lost the lead. */
typedef void (*kn_platform_lead_cb)(int leading, const char *why, void *data);
/* Campaign for the lead through p (a kubernetes platform with leaderElection): cb as above, on
 * the loop, never from inside this call. KN_EUNSUPPORTED when p offers no leader election. */
int kn_platform_lead(struct kn_platform *p, kn_platform_lead_cb cb, void *data);

/* Set name to a copy of value in a placeholder map (replacing it), and free such a map. */
void kn_platform_vars_set(struct kn_strmap *m, const char *name, const char *value);
void kn_platform_vars_release(struct kn_strmap *m);

/* A placeholder of analysis queries that a platform type fills in ({{backend}}), with a line
 * for `kanaria help platform TYPE` and validation's messages. A type declares them in a table
 * ended by an entry whose name is NULL (kn_platform_type.placeholders). */
struct kn_placeholder {
    const char *name;
    const char *help;
};

/* The analysis placeholders of an app's variant: "app", "repository", "variant" and the
 * type's own (out released by the caller). p NULL: the first three only. */
void kn_platform_template_vars(struct kn_platform *p, const struct kn_app_id *id,
                               enum kn_variant v, struct kn_strmap *out);

#endif /* KANARIA_PLATFORM_H */
