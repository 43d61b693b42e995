/*
 * kanaria — applications: `app.kanaria.yaml`, the manifests it lists, and where they are read
 * from.
 *
 * A struct kn_source reads files of one repository snapshot by path relative to its top: a
 * folder on disk now, a commit's tree (without checkout) with the git source. Paths are checked
 * before anything is read: absolute paths, `..` that leaves the repository and symlinks that
 * point outside it are refused with KN_EPATH.
 *
 * kn_app_load parses an app's config and manifests against the schemas (the app's, each stage
 * kind's `with:`, and the tables it is handed through a struct kn_app_loader: the manifest kinds
 * and app options of the app's platform type) and returns the app with every located problem in
 * app->diags. What needs more than the model (the pipeline walked against the stage kinds and
 * the platform's capabilities, names declared in the controller config) is the loader's:
 * kn_validate_app_load (kanaria/validate.h) loads an app with all of it.
 */
#ifndef KANARIA_APP_H
#define KANARIA_APP_H

#include <jansson.h>
#include <stdint.h>

#include "kanaria/alloc.h"
#include "kanaria/manifest.h"
#include "kanaria/schema.h"
#include "kanaria/stage.h"

#define KN_APP_CONFIG_FILE "app.kanaria.yaml"
#define KN_APP_MAX_FILE_BYTES (1024 * 1024)

/* ---- sources ----------------------------------------------------------------------------- */

struct kn_source;

/* Called for each regular file of the snapshot; non-zero return stops the walk and is
 * returned by walk. */
typedef int (*kn_source_walk_cb)(const char *relpath, void *data);

struct kn_source_ops {
    /* Read relpath (already normalized, relative, no `..`) into out (bounded by out->max).
     * 0, KN_ENOENT, KN_EPATH (a symlink leaving the repository), KN_ETOOBIG, KN_EIO; err says
     * which path and why. */
    int (*read)(struct kn_source *src, const char *relpath, struct kn_buf *out,
                struct kn_error *err);
    int (*walk)(struct kn_source *src, kn_source_walk_cb cb, void *data);
    void (*free)(struct kn_source *src);
};

struct kn_source {
    const struct kn_source_ops *ops;
    char *name; /* for messages: the folder, or "repo@commit" */
};

/* A source over a folder on disk. The walk skips `.git` and does not follow symlinked folders.
 * Returns KN_ENOENT when dir is not a folder (err says so). */
int kn_source_dir_new(struct kn_source **out, const char *dir, struct kn_error *err);

void kn_source_free(struct kn_source *src);

/* The checks every source makes before reading relpath: not NULL, not absolute, not climbing
 * out of the repository. On success *norm is the normalized path (caller frees). */
int kn_source_check_path(const char *relpath, char **norm, struct kn_error *err);

/*
 * Resolve `rel` against folder `base` (both relative to the repository top) into a normalized
 * relative path (caller frees). KN_EPATH when rel is absolute or climbs above the top.
 */
int kn_path_resolve(char **out, const char *base, const char *rel);

/* Shell-style glob match; a `**` segment spans folders ("docs/ **" without the space). */
int kn_glob_match(const char *pattern, const char *path);

/* ---- the application ---------------------------------------------------------------------- */

struct kn_app_metadata {
    uint64_t set;
    char *name;
    struct kn_strmap labels;
    struct kn_strmap annotations;
};

struct kn_trigger_config {
    uint64_t set;
    struct kn_strlist paths;
    struct kn_strlist ignore;
    int on_out_of_sync;
};

struct kn_planner_config {
    uint64_t set;
    int always_use_pipeline;
};

/* One SLO (`spec.slos[]`, or an entry of KN_SLO_FILE the app names): the ratio of good events
 * to all events over `window` must stay at or above `objective` percent. */
struct kn_slo_config {
    uint64_t set;
    char *name;
    double objective;    /* percent, in (0, 100) */
    long long window_ms; /* default 30d */
    char *good;          /* query of the good events; {{window}} is the window ("30d", "1h") */
    char *total;         /* query of all events, the same way */
    char *provider;      /* a metricsProviders name; NULL: the first one */
};

/* The SLOs shared by a repository's apps (`slos:`, entries as spec.slos), at its top. An app
 * entry that gives a name alone (or lacks a query) takes the rest from the entry of that name. */
#define KN_SLO_FILE ".kanaria/slo.yaml"

enum kn_budget_action { KN_BUDGET_BLOCK, KN_BUDGET_APPROVE };
enum kn_budget_on_error { KN_BUDGET_ERROR_BLOCK, KN_BUDGET_ERROR_ALLOW };

/* `spec.errorBudgetPolicy`: what a PIPELINE deployment does while an SLO's budget is spent. */
struct kn_error_budget_policy {
    uint64_t set;
    int given;            /* the app has the key: the error-budget gate applies */
    double min_remaining; /* percent of the budget that must be left (default 0) */
    int action;           /* enum kn_budget_action */
    int on_error;         /* enum kn_budget_on_error: a reading that failed */
};

struct kn_app_spec {
    uint64_t set;
    char *platform;
    struct kn_strlist manifests;
    struct kn_trigger_config trigger;
    struct kn_planner_config planner;
    int auto_rollback;
    long long timeout_ms;
    int prune;               /* removed from its platform once its folder leaves the repository */
    struct kn_list pipeline; /* struct kn_stage_config */
    struct kn_list freeze_windows; /* struct kn_freeze_window (kanaria/freeze.h) */
    /* `analysis:`, checks run in the background across stages of the pipeline: the block as
     * given (borrowed from the parsed file; NULL when absent), and it parsed by
     * kn_background_schema (kanaria/stage.h) into that schema's struct (owned; NULL when
     * absent) */
    const struct kn_node *analysis_node;
    void *analysis;
    struct kn_list slos;                   /* struct kn_slo_config, shared ones filled in */
    struct kn_error_budget_policy budget;  /* `errorBudgetPolicy` */
};


struct kn_app_config {
    uint64_t set;
    char *api_version;
    char *kind;
    struct kn_app_metadata metadata;
    struct kn_app_spec spec;
    /* `spec.<type>`, the options for the app's platform type, parsed with the type's app_schema
     * (platform_schema, borrowed: a static table) into platform_schema->size bytes; owned, freed
     * by kn_app_free. NULL (both) when the app gives none or its platform type takes none. */
    void *platform_options;
    const struct kn_schema *platform_schema;
};

extern const struct kn_schema kn_app_config_schema;

/* One document of a manifest file. */
struct kn_manifest_doc {
    char *file;     /* path relative to the repository top */
    struct kn_loc loc;
    char *kind;
    char *name;
    const struct kn_manifest_kind *def; /* its entry of the platform type's kinds table
                                           (borrowed, static); NULL: loaded without a table */
    json_t *json;   /* canonical form (owned reference) */
    char hash[65];
};

struct kn_app {
    char *dir;         /* the app's folder relative to the repository top ("" for the top) */
    char *config_path; /* dir + "/app.kanaria.yaml" */
    char *name;        /* metadata.name, or the folder's name when that is missing */
    struct kn_app_config cfg;
    struct kn_manifest_doc *docs;
    size_t ndocs;
    json_t *manifests; /* array of the docs' canonical JSON (owned) */
    char hash[65];     /* of the whole manifest set */
    struct kn_diags diags; /* every problem, located; count 0 means valid */
    struct kn_yaml **files; /* owned: parsed files that locations point into */
    size_t nfiles;
};

/* What the app's platform type accepts, as a struct kn_app_loader resolves it. Borrowed: the
 * type's static tables. */
struct kn_app_platform {
    const char *type;                     /* the type's name, also the key `spec.<type>`; NULL:
                                             not resolved (kinds and options are not checked) */
    const struct kn_schema *app_schema;   /* keys of spec.<type>; NULL: the type takes none */
    const struct kn_manifest_kind *kinds; /* the kinds its apps may list (kanaria/manifest.h) */
    size_t nkinds;
};

/* What kn_app_load is handed: the model knows no stage kind and no platform type. */
struct kn_app_loader {
    /*
     * Called once the app config is parsed, before its manifests are read: resolve what the
     * model cannot (the stage kinds' options shared by the repository, the app's platform from
     * app->cfg.spec.platform), check what needs it (the pipeline against the stage kinds and the
     * platform's capabilities), and fill *platform (zeroed on entry; left so when the platform is
     * unknown). Problems go to ctx with kn_schema_error, located; `root` is the config's node.
     */
    void (*resolve)(struct kn_app_platform *platform, struct kn_app *app, struct kn_source *src,
                    const struct kn_node *root, struct kn_schema_ctx *ctx, void *data);
    /* Names of every platform type, NULL-terminated: `spec.<name>` holds the app's options for
     * type <name>, accepted only for the app's own type. NULL: no such key is accepted. */
    const char *const *types;
    void *data; /* for resolve */
};

/*
 * Load the app whose config is at `config_path` in `src`, with `loader`'s checks (NULL: the
 * model alone: every manifest kind is kept unchecked and no spec.<type> key is taken). Always
 * returns a new app in *out (kn_app_free) unless an argument is invalid; whether it is valid is
 * app->diags.count == 0.
 */
int kn_app_load(struct kn_app **out, struct kn_source *src, const char *config_path,
                const struct kn_app_loader *loader);

/*
 * Read and parse a file of the app's repository for a loader's checks, kept with the app (the
 * nodes' locations point into it): the root of its first document, or NULL when it has none,
 * when it is missing (silently if missing_ok) or when it cannot be read or parsed (a diagnostic
 * in app->diags).
 */
const struct kn_node *kn_app_load_file(struct kn_app *app, struct kn_source *src,
                                       const char *relpath, int missing_ok);

void kn_app_free(struct kn_app *app);

/* Number of stages in the app's pipeline (0 for a quick-sync-only app). */
size_t kn_app_stage_count(const struct kn_app *app);

/* The SLO `name` of the app (spec.slos, shared ones filled in), or NULL. Borrowed. */
const struct kn_slo_config *kn_app_slo(const struct kn_app *app, const char *name);

/* One app of a repository, for the checks across its apps. Everything is borrowed. */
struct kn_app_ref {
    const char *name;
    const char *config_path;
    struct kn_diags *diags; /* where the app's problems are added */
};

/*
 * Two apps of one repository with the same name would share a backend and a history, so each
 * app whose name another one also uses gets a located error naming that other app's config:
 * every app of such a group is invalid, whatever the order of refs. `kanaria validate` and
 * `kanaria serve` both use this check.
 */
void kn_app_check_unique_names(const struct kn_app_ref *refs, size_t n);

/* Find every app.kanaria.yaml in src; *paths is a sorted array of *count relative paths (free
 * each and the array). */
int kn_app_discover(struct kn_source *src, char ***paths, size_t *count);

#endif /* KANARIA_APP_H */
