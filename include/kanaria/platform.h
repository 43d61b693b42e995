/*
 * kanaria — the platform contract.
 *
 * A platform type (local today; kubernetes and ecs later) declares what it can do as capability
 * flags. Stage kinds declare the capabilities they need, and `kanaria validate` rejects a
 * pipeline that asks its platform for something it cannot do, before any rollout starts. The
 * operations themselves (apply a variant, remove it, set weights, read live state) join this
 * descriptor with the pipeline engine.
 */
#ifndef KANARIA_PLATFORM_H
#define KANARIA_PLATFORM_H

#include <jansson.h>
#include <stddef.h>

#include "kanaria/schema.h"
#include "kanaria/stage.h"

#define KN_PLATFORM_APPLY 0x01u         /* apply manifests as the primary */
#define KN_PLATFORM_CANARY 0x02u        /* run a canary variant beside the primary */
#define KN_PLATFORM_BASELINE 0x04u      /* run a baseline variant */
#define KN_PLATFORM_TRAFFIC_SPLIT 0x08u /* weighted traffic between variants */
#define KN_PLATFORM_SCRIPT 0x10u        /* run scripts on the controller's host */

/* Names of the flags above, for messages ("traffic splitting"). */
const char *kn_platform_cap_name(unsigned cap);

struct kn_app;

/* struct kn_manifest_kind and enum kn_kind_role, the entries of `kinds` below, are declared in
 * kanaria/manifest.h: the model reads them when it loads an app. */

struct kn_platform_type {
    const char *name;   /* the `type:` in kanaria.yaml */
    unsigned caps;      /* KN_PLATFORM_* */
    /* Keys of `spec.<name>` in app.kanaria.yaml, the app's options for this type, parsed into
     * kn_app_config.platform_options; NULL: the type takes none (the key is an error). */
    const struct kn_schema *app_schema;
    /* The manifest kinds an app of this type may list, and how many of each. */
    const struct kn_manifest_kind *kinds;
    size_t nkinds;
    /* Checks across the apps of one platform (one `platforms[]` entry of this type), after each
     * was loaded: problems are added, located, to the apps' diags. An app with errors already is
     * skipped. NULL: none. */
    void (*check_apps)(struct kn_app *const *apps, size_t n);
    /* The smallest traffic step, in percent: a TRAFFIC_ROUTING percent that is not a multiple of
     * it is refused by validation. 0: any percent. */
    double weight_step;
    const char *help;
    /* The keys of a `platforms[]` entry of this type beside `name` and `type`; the parsed
     * struct is kn_platform_config.options. NULL: the type takes no keys. Its defaults must be
     * valid: a config without `platforms` runs the embedded default with them. */
    const struct kn_schema *config_schema;
};

/* The registered platform types, NULL-terminated. */
extern const struct kn_platform_type *const kn_platform_types[];

/* A registered type by name, or NULL. */
const struct kn_platform_type *kn_platform_type_find(const char *name);

/* ---- operations ---------------------------------------------------------------------------- */

/* What one variant of an app runs: the manifests of a commit. */
struct kn_variant_spec {
    const char *app;
    enum kn_variant variant;
    const char *commit;
    const json_t *manifests;  /* canonical manifests (array) of that commit; borrowed */
    struct kn_scale replicas; /* canary and baseline: a count or a percent of the primary's;
                                 primary: value 0 means the manifest's own replicas */
    long long timeout_ms;     /* healthy within this many ms from the call (what is left of a
                                 stage's own timeout) or the apply fails; 0: the platform's own
                                 start timeout */
};

/* What runs now, read back from the platform (not only what kanaria remembers writing). */
struct kn_live_variant {
    int instances;     /* running */
    int healthy;
    double weight;     /* percent of the app's traffic */
    char commit[41];   /* the commit it was applied from, "" unknown */
};

#define KN_LIVE_SERVER_MAX 128 /* servers listed in a struct kn_live_state; more are counted */

/* One server (instance) of the app as the platform's traffic layer has it now, beside what
 * kanaria set: between deployments every server kanaria registered is in service at its weight. */
struct kn_live_server {
    char name[72];       /* "primary-3" */
    char state[16];      /* "ready", "drain", "maint"; "missing": kanaria registered it and the
                            traffic layer has it not */
    int weight;          /* its weight now */
    int expected_weight; /* the weight kanaria set; -1: a server kanaria did not register */
};

struct kn_live_state {
    struct kn_live_variant variant[KN_VARIANT_COUNT];
    char error[256];   /* why the platform could not be read back, "" when it could */
    /* every server, when the platform has read them back (nservers 0: not read, or none) */
    struct kn_live_server servers[KN_LIVE_SERVER_MAX];
    size_t nservers;
    size_t servers_dropped; /* servers past KN_LIVE_SERVER_MAX, not listed */
};

/* Completion of an asynchronous operation: status 0 or a KN_E* code, and a message that says
 * what failed in the platform's own words (NULL on success). Runs once, on the loop. */
typedef void (*kn_platform_cb)(int status, const char *message, void *data);

struct kn_platform;

/*
 * The operations of a platform instance. Every operation is idempotent (applying what already
 * runs, removing what is gone, setting the weights it has), so the engine can repeat one after a
 * restart. An operation that returns an error never calls its callback.
 */
struct kn_platform_ops {
    /* Start (or replace) the variant with spec's manifests and call cb once it is healthy. */
    int (*apply)(struct kn_platform *p, const struct kn_variant_spec *spec, kn_platform_cb cb,
                 void *data);
    /* Stop the variant and remove it from the traffic. */
    int (*remove)(struct kn_platform *p, const char *app, enum kn_variant v, kn_platform_cb cb,
                  void *data);
    /* Split the app's traffic: percents of primary, canary, baseline adding up to 100. */
    int (*set_weights)(struct kn_platform *p, const char *app,
                       const double percent[KN_VARIANT_COUNT], kn_platform_cb cb, void *data);
    /* Remove the whole app: every instance of every variant, then whatever routes traffic to
     * it (on the local platform, its HAProxy frontend and backend), and forget it. Removing an
     * app the platform does not know is done at once. NULL: the platform cannot (an orphaned
     * app is then left running). */
    int (*remove_app)(struct kn_platform *p, const char *app, kn_platform_cb cb, void *data);
    /* What runs now. Synchronous: from the platform's last reading. */
    int (*live)(struct kn_platform *p, const char *app, struct kn_live_state *out);
    void (*free)(struct kn_platform *p);
    /* Stop the operation asked with `data` as soon as it can (a stage timed out): what it was
     * starting is stopped and removed, and the operations asked after it run without waiting
     * for it. Its callback still runs once, later, with the operation's outcome (an error when
     * it was stopped). Unknown or finished `data` is a no-op. NULL: operations cannot be
     * stopped, they run to their end. */
    void (*cancel)(struct kn_platform *p, void *data);
};

struct kn_platform {
    const struct kn_platform_ops *ops;
    const struct kn_platform_type *type;
    char *name; /* owned by the implementation */
};

#endif /* KANARIA_PLATFORM_H */
