/*
 * kanaria — what a platform provider implements (the local platform, ECS, Kubernetes).
 *
 * A provider is one const struct kn_platform_type: its name and help, what it can do, its own
 * kanaria.yaml schema (the keys of a `platforms[]` entry besides `name` and `type`), its app
 * options schema (the keys of `spec.<type>` in app.kanaria.yaml), the manifest kinds it accepts,
 * a factory and its operations. Adding a provider is its folder under controller/platforms/, one
 * line in controller/platforms/registry.c and one in CMakeLists.txt: serve, config, manifests,
 * stages, drift and the CLI read everything they need from this descriptor.
 *
 * Providers are called only by the front end (controller/platforms/platform.c), which
 * serialises operations per app (repository, app), skips what the platform cannot do, enforces
 * deadlines and keeps the memo. Operations of different apps may run at the same time: a
 * provider must not make one app's operation wait for another's (a shared resource, such as the
 * local platform's HAProxy reload, is held only as long as it is used).
 *
 * Every callback runs on the loop thread.
 */
#ifndef KANARIA_PLUGIN_PLATFORM_H
#define KANARIA_PLUGIN_PLATFORM_H

#include <jansson.h>
#include <stdarg.h>
#include <stddef.h>
#include <uv.h>

#include "kanaria/error.h"
#include "kanaria/platform.h"
#include "kanaria/schema.h"

struct kn_app;
struct kn_stage_config;

/* The manifest kinds of a type's table (struct kn_manifest_kind, enum kn_kind_role) are declared
 * in kanaria/manifest.h: the model reads the table when it loads an app. */

/* ---- the call context ---------------------------------------------------------------------- */

/*
 * One operation, as the provider sees it. Made by the front end; the provider ends it with
 * kn_platform_call_done exactly once (never from inside the operation's start function when that
 * returns an error), after which it must not touch it.
 */
struct kn_platform_call;

const struct kn_app_id *kn_platform_call_id(const struct kn_platform_call *call);
/* The deployment and stage on whose behalf it runs (0 and -1/NULL when none: prune, observe).
 * Together an idempotency key: the same (deployment, stage, operation) asked again after a
 * restart must not do the work twice (ECS's clientToken). */
long long kn_platform_call_deployment(const struct kn_platform_call *call);
int kn_platform_call_stage(const struct kn_platform_call *call);
const char *kn_platform_call_stage_name(const struct kn_platform_call *call);
/* A key that names this operation of this stage of this deployment, the same after a restart
 * ("d42-s3-apply-canary"); at most 64 characters of [A-Za-z0-9-]. */
const char *kn_platform_call_token(const struct kn_platform_call *call);
/* Milliseconds left before the deadline (at least 1 while the call runs). Past it the front end
 * cancels the call and it ends KN_ETIMEDOUT. */
long long kn_platform_call_time_left(const struct kn_platform_call *call);
/* 1 once the call is cancelled (a stage timed out, a rollback follows, kanaria stops): the
 * provider stops what it started and ends the call as soon as it can. */
int kn_platform_call_cancelled(const struct kn_platform_call *call);
/* A line into the stage's log ("2/3 pods ready"); repeated lines are folded by the front end. */
void kn_platform_call_progress(struct kn_platform_call *call, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The app's memo on this platform: small values (at most 64 KiB each) kept in the state store
 * across restarts (the ELBv2 rule weights before a change). get: the value (caller frees) or
 * NULL; set: value NULL deletes. Written to the store before set returns. */
char *kn_platform_call_memo_get(struct kn_platform_call *call, const char *key);
int kn_platform_call_memo_set(struct kn_platform_call *call, const char *key, const char *value);
/* observe only: where the provider writes what it read (see struct kn_live_state). */
struct kn_live_state *kn_platform_call_live(struct kn_platform_call *call);
/* End the call: status 0 or a KN_E* code and the platform's own words (NULL on success). */
void kn_platform_call_done(struct kn_platform_call *call, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- the descriptor ------------------------------------------------------------------------ */

/* What an app's pipeline does with the canary and the baseline, found as validation walks it
 * (stages/validate.c): the first stage after which each runs, and the first that sends it
 * traffic; NULL when none does (the primary's entries are always NULL). Borrowed from the app. */
struct kn_pipeline_uses {
    const struct kn_stage_config *runs[KN_VARIANT_COUNT];
    const struct kn_stage_config *routes[KN_VARIANT_COUNT];
    /* the first TRAFFIC_ROUTING with header or cookie `match`es, and the first with a `mirror`
     * and its percent (NULL: none) */
    const struct kn_stage_config *matches;
    const struct kn_stage_config *mirror;
    double mirror_percent;
};

struct kn_platform_provider_ops {
    /* Start (or replace) the variant with spec's manifests; done once it is healthy. */
    int (*apply)(void *self, struct kn_platform_call *call, const struct kn_variant_spec *spec);
    /* Stop the variant and take it out of the traffic. Removing what is gone is done at once. */
    int (*remove)(void *self, struct kn_platform_call *call, enum kn_variant v);
    /* Split the app's traffic: percents of primary, canary, baseline adding up to 100, each a
     * multiple of the type's weight_step. */
    int (*set_weights)(void *self, struct kn_platform_call *call,
                       const double percent[KN_VARIANT_COUNT]);
    /* Set the weights as set_weights does and replace the app's routes (kanaria/platform.h,
     * struct kn_routes; none: take them all away). Required of a type that declares
     * KN_PLATFORM_HEADER_ROUTING or KN_PLATFORM_MIRROR, and then the provider keeps the routes
     * (across restarts) through set_weights until set_routes replaces them, remove takes the
     * canary away or remove_app the app. The front end turns a set_weights that puts all the
     * traffic on the primary into set_routes with none, so promotion and rollback leave no
     * route behind. A provider refuses (done with KN_EUNSUPPORTED) what it cannot express. */
    int (*set_routes)(void *self, struct kn_platform_call *call,
                      const double percent[KN_VARIANT_COUNT], const struct kn_routes *routes);
    /* Remove the whole app and whatever routes traffic to it, and forget it. NULL: cannot. */
    int (*remove_app)(void *self, struct kn_platform_call *call);
    /* Read what runs now into kn_platform_call_live(call): from a cache or a watch, cheap to
     * call every driftInterval. KN_ENOTFOUND (through done) when the platform has no such app. */
    int (*observe)(void *self, struct kn_platform_call *call, const struct kn_desired *desired);
    /* The call was cancelled: stop it soon (it still ends with done). NULL: calls run to their
     * end and the front end only stops waiting for them. */
    void (*cancel)(void *self, struct kn_platform_call *call);
    /* Placeholders of analysis queries for the app's variant v ("namespace", "targetGroup",
     * "server"), in out as "name" -> "value" pairs (kn_strmap, caller releases): a value for
     * each name of the type's placeholders table. The front end adds "app", "repository" and
     * "variant". NULL: none. */
    void (*template_vars)(void *self, const struct kn_app_id *id, enum kn_variant v,
                          struct kn_strmap *out);
    /* Leader election through the platform (a Kubernetes Lease), when the instance's config
     * asks for it: campaign, call cb(1, NULL, data) once this instance leads, and cb(0, why,
     * data) when it lost the lead (it then stops campaigning; kanaria stops deploying). 0, or
     * KN_EUNSUPPORTED when the instance is not configured for it. destroy releases the lead.
     * NULL: never. */
    int (*lead)(void *self, kn_platform_lead_cb cb, void *data);
    /* kanaria stops: end every call (done with KN_ECANCELLED), then free. */
    void (*destroy)(void *self);
};

/* What a provider instance is made with. */
struct kn_platform_env {
    uv_loop_t *loop;
    const char *name;              /* the platforms[] name */
    const char *data_dir;          /* kanaria's dataDir: keep state under DIR/<type>/<name> */
    struct kn_http_client *http;   /* shared HTTP client (include/kanaria/http.h) */
};

struct kn_platform_type {
    const char *name;   /* the `type:` in kanaria.yaml */
    const char *help;   /* a paragraph for `kanaria help platform TYPE` */
    unsigned caps;      /* KN_PLATFORM_* */
    double weight_step; /* the smallest traffic step in percent (1 for integer weights); 0: any */
    /* keys of a platforms[] entry besides name and type (struct of config_schema->size) */
    const struct kn_schema *config_schema;
    /* keys of spec.<type> in app.kanaria.yaml; NULL: the type has none */
    const struct kn_schema *app_schema;
    const struct kn_manifest_kind *kinds; /* the manifest kinds it accepts */
    /* The placeholders ops->template_vars fills in, ended by a NULL name: validation accepts
     * them in an app's analysis queries and HTTP probe URLs (beside the common {{app}},
     * {{repository}}, {{variant}}, {{window}}, {{commit}}, {{args.NAME}}). NULL: none. */
    const struct kn_placeholder *placeholders;
    size_t nkinds;
    /* Checks across the apps of one platform after each was loaded (two apps on one
     * frontend.bind): a located error in the later app's diags. NULL: none. */
    void (*check_apps)(struct kn_app *const *apps, size_t n);
    /* Checks of one loaded app that need its spec.<type> options (app->cfg.platform_options,
     * NULL when it gives none) together with its pipeline (a baseline stage without the
     * baseline's target group): located errors into ctx, whose diags are the app's. Called by
     * kn_validate_app_load after the app is loaded, whatever its other errors, so validate,
     * plan, serve and the API refuse the same apps. NULL: none. */
    void (*check_app)(const struct kn_app *app, const struct kn_pipeline_uses *uses,
                      struct kn_schema_ctx *ctx);
    /* Make an instance from its parsed config (config_schema's struct, borrowed for the call). */
    int (*create)(void **out, const struct kn_platform_env *env, const void *config,
                  struct kn_error *err);
    const struct kn_platform_provider_ops *ops;
};

#endif /* KANARIA_PLUGIN_PLATFORM_H */
