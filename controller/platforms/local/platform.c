/*
 * The local platform's operations, as a provider (include/kanaria/plugin/platform.h). Each app
 * (repository, app) is an HAProxy backend behind a frontend on the LocalService's
 * `frontend.bind`; each variant a set of instances started by the process supervisor and
 * registered as servers VARIANT-N.
 *
 * Operations: the front end hands over an app's operations one at a time, and each starts here
 * at once, beside the other apps' (a health wait of one app never delays another's rollback).
 * Only what every app shares is taken in turn, and only while it is used: the HAProxy lock,
 * whose waiters are served first come first served and wait at most until their call's deadline.
 * Rendering the managed config and reloading (or starting) HAProxy, until it serves the new
 * config, holds it alone; a batch of runtime-API commands of one app holds it shared with other
 * apps' batches (each command is its own connection, and a reload in the middle of a batch
 * would drop the servers it added). apps.json is written whole from memory in one synchronous
 * step, and every operation keeps its app's record such that a restart from it is right at
 * every point where another app's operation may write it. The periodic reading of HAProxy's
 * servers (for observe) takes no lock and skips an app while an operation runs on it.
 *
 * Cancel stops the work where it is: a wait for the lock is left at once; instances being
 * started are stopped; an apply whose new servers are being added (or weighted) sends none of
 * the rest, takes out of HAProxy what it added, stops its instances and restores the weights.
 * Each ends the call KN_ECANCELLED. What only takes away (removing a variant or an app, the
 * last steps of an apply once the old instances leave HAProxy, setting weights) runs to its
 * end, which takes seconds, and reports its outcome. When kanaria stops, every call ends.
 *
 * Names: an app's backend, its instances' state folder and its record in apps.json share one
 * key. It is the bare app name when no other repository's app of that name has it (so queries
 * on `proxy="web"` keep working), else "REPOSITORY.APP" (repository names are [A-Za-z0-9._-]
 * and app names have no '.', so the key tells both apart), or "APP.HASH" (8 or more hex digits
 * of the repository name's SHA-256) when that would be too long for HAProxy. The key is kept
 * in apps.json with the repository and the app, so it never changes once chosen. A record
 * written by an earlier kanaria, which knew apps by bare name only, has no repository: the
 * first (repository, app) of that name that the platform is asked about adopts it, keeping its
 * backend, instances and state.
 *
 * Replacing a variant never drops traffic: the new instances start on new ports and are healthy
 * and in HAProxy before the old ones are drained and removed.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/sha.h>

#include "kanaria/alloc.h"
#include "kanaria/config.h"
#include "kanaria/log.h"
#include "kanaria/plugin/platform.h"
#include "kanaria/schema.h"
#include "platforms/local/config.h"
#include "platforms/local/haproxy.h"
#include "platforms/local/local.h"
#include "platforms/local/local_service.h"
#include "platforms/local/process.h"

#define CMD_TIMEOUT_MS 5000
#define RELOAD_WAIT_MS 10000
/* At most this many apps' command batches at once: each is a connection to HAProxy's admin
 * socket, whose backlog is short (a connect beyond it fails with EAGAIN). */
#define SHARED_MAX 4
#define UNDO_WAIT_MS 30000 /* how long taking out what a stopped apply added waits for HAProxy */
#define OBSERVE_MS 2000 /* how often HAProxy's servers are read back */

struct inst {
    char name[80];
    enum kn_variant variant;
    unsigned index;
    int port;
    char commit[41];
};

struct lapp {
    char *name;       /* the key: backend, state folder, apps.json record (see the top) */
    char *repository; /* NULL: a record of an earlier kanaria, not claimed yet */
    char *app;
    char *bind;
    struct inst *insts;
    size_t ninsts;
    double percent[KN_VARIANT_COUNT];
    unsigned next_index;
    /* read back from HAProxy (`show servers state`), valid while observed is 1: an operation
     * on the app makes it 0 until the next reading */
    int observed;
    double seen[KN_VARIANT_COUNT];
    struct kn_haproxy_server_state *seen_servers; /* the rows of that reading (owned) */
    size_t nseen_servers;
    char seen_error[256]; /* why the last reading failed, "" when it worked */
    unsigned gen; /* changes when an operation on the app starts or ends */
    unsigned probes; /* {{variant_url}} given so far: which instance the next one names */
    /* routes: requests whose headers match a key (kn_haproxy_route_regex) go to the canary;
     * desc says what each is ("header x-canary = always") */
    char **route_keys;
    char **route_descs;
    size_t nroutes;
    char **seen_routes; /* the keys of the app's route map in HAProxy at the last reading */
    size_t nseen_routes;
    int routes_observed; /* seen_routes is from the last reading */
};

struct op;

/* An app in a reading of HAProxy. */
struct lread {
    char *name;
    unsigned gen;  /* the app's generation when the reading began */
    unsigned need; /* READ_* still to do with commands of its own */
};

struct local {
    char *name; /* the platforms[] name */
    uv_loop_t *loop;
    struct kn_http_client *http;
    struct kn_proc_supervisor *sup;
    char *dir;
    char *socket;
    char *binary;
    char *cfg_path;
    char *pid_path;
    char *metrics_bind;
    int managed;
    struct lapp **apps;
    size_t napps;
    struct op *ops;     /* the operations running now, one at most per app */
    struct op *lock_head; /* waiting for the HAProxy lock, first come first */
    struct op *lock_tail;
    int lock_readers;   /* batches of runtime-API commands holding the lock */
    int lock_writer;    /* a render and reload holds it alone */
    int closing;        /* kanaria stops: the running operations end at their next step */
    uv_timer_t *observe; /* starts a reading of HAProxy every OBSERVE_MS */
    struct lread *reads; /* the reading in flight: every app as it was when it began */
    size_t nreads;
    size_t read_at; /* the app whose own commands run now (after the shared ones) */
    int reading;
    int holding;        /* local_free is ending calls: the platform is not freed meanwhile */
    char who[160];
};

/* What an operation knows of the service it applies (from the LocalService manifest). */
struct service {
    char **argv;
    size_t argc;
    char **env_keys;
    char **env_values;
    size_t envc;
    char *health_path;
    long long health_interval_ms;
    long long health_timeout_ms;
    long long healthy_threshold;
    char *bind;
    long long replicas;
};

enum op_kind { OP_APPLY, OP_REMOVE, OP_WEIGHTS, OP_ROUTES };

enum lock_mode { LOCK_NONE, LOCK_SHARED, LOCK_ALONE };

/* The steps of an apply that was cancelled (or whose wait for the lock ran out) after it
 * started instances: its servers out of HAProxy, its instances stopped, the end. */
#define STEP_UNDO_CMDS 20
#define STEP_UNDO_STOP 21
#define STEP_UNDO_END 22

struct op {
    struct op *next;
    struct local *lp;
    enum op_kind kind;
    char *app;
    enum kn_variant variant;
    char commit[41];
    struct service svc;
    struct kn_scale scale;
    double percent[KN_VARIANT_COUNT];
    struct kn_platform_call *call;
    char *repository; /* apply: who the app is, for a new record */
    char *app_name;
    long long deadline; /* uv_now() by which a start must be healthy; 0: the supervisor's own */
    int cancelled;      /* its stage gave up on it: stop what it starts, end at once */
    int end_status;     /* KN_ECANCELLED, or KN_ETIMEDOUT when its wait for the lock ran out */
    int undo;           /* taking out what it added (STEP_UNDO_*) */
    int added;          /* its new instances are in the app's record and sent to HAProxy */
    enum lock_mode lock_held;
    enum lock_mode lock_want; /* waiting for the lock in this mode */
    struct op *lock_next;
    void (*lock_then)(struct op *op); /* what runs once the lock is held */
    uv_timer_t *timer;  /* the wait for the lock, then handing it over; a deferred abort */
    /* progress */
    int step;
    struct inst *fresh; /* instances started by this apply */
    size_t nfresh;
    size_t pending;     /* starts or stops in flight */
    int failed;
    char error[512];
    char **cmds;        /* runtime-API commands to send, in order */
    size_t ncmds;
    size_t cmd_at;
    int tolerate;       /* command errors allowed (removing what is already gone) */
    uv_timer_t *wait;   /* reload wait */
    long long waited;
    /* routes: the new keys and what they say (owned until they become the app's) */
    char **route_keys;
    char **route_descs;
    size_t nroutes;
};

static void op_next(struct op *op);
static void local_release(struct local *lp);
static void release_if_idle(struct local *lp);

/* ---- small helpers ------------------------------------------------------------------------ */

static void strv_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i]);
    }
    free(v);
}

static void lapp_free(struct lapp *a)
{
    strv_free(a->route_keys, a->nroutes);
    strv_free(a->route_descs, a->nroutes);
    strv_free(a->seen_routes, a->nseen_routes);
    free(a->name);
    free(a->repository);
    free(a->app);
    free(a->bind);
    free(a->insts);
    kn_haproxy_servers_state_free(a->seen_servers, a->nseen_servers);
    free(a);
}

static struct lapp *find_app(struct local *lp, const char *name)
{
    for (size_t i = 0; i < lp->napps; i++) {
        if (strcmp(lp->apps[i]->name, name) == 0) {
            return lp->apps[i];
        }
    }
    return NULL;
}

static struct lapp *add_app(struct local *lp, const char *name, const char *repository,
                            const char *app, const char *bind)
{
    struct lapp *a = kn_calloc(1, sizeof(*a));

    a->name = kn_strdup(name);
    a->repository = repository ? kn_strdup(repository) : NULL;
    a->app = kn_strdup(app ? app : name);
    a->bind = kn_strdup(bind ? bind : "");
    a->percent[KN_VARIANT_PRIMARY] = 100;
    a->next_index = 1;
    lp->apps = kn_reallocarray(lp->apps, lp->napps + 1, sizeof(*lp->apps));
    lp->apps[lp->napps++] = a;
    return a;
}

static void save_state(struct local *lp);

/* The app (repository, app), adopting a record an earlier kanaria wrote under the bare app
 * name when no repository has claimed it yet; NULL when the platform does not know it. */
static struct lapp *lapp_of(struct local *lp, const struct kn_app_id *id)
{
    struct lapp *legacy = NULL;

    for (size_t i = 0; i < lp->napps; i++) {
        struct lapp *a = lp->apps[i];
        if (a->repository && strcmp(a->repository, id->repository) == 0 &&
            strcmp(a->app, id->app) == 0) {
            return a;
        }
        if (!a->repository && strcmp(a->name, id->app) == 0) {
            legacy = a;
        }
    }
    if (legacy) {
        legacy->repository = kn_strdup(id->repository);
        kn_log_info(lp->who, "repository=%s app=%s adopts the record of app '%s' that an earlier "
                    "kanaria kept by name alone", id->repository, id->app, legacy->name);
        save_state(lp);
    }
    return legacy;
}

static int key_taken(const struct local *lp, const char *key)
{
    for (size_t i = 0; i < lp->napps; i++) {
        if (strcmp(lp->apps[i]->name, key) == 0) {
            return 1;
        }
    }
    return 0;
}

/* The key a new app (repository, app) gets (see the top). Caller frees. */
static char *key_new(const struct local *lp, const struct kn_app_id *id)
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    char hex[2 * SHA256_DIGEST_LENGTH + 1];
    char *key;

    if (!key_taken(lp, id->app)) {
        return kn_strdup(id->app);
    }
    key = kn_asprintf("%s.%s", id->repository, id->app);
    if (id->repository[0] != '.' && kn_haproxy_name_valid(key) && !key_taken(lp, key)) {
        return key;
    }
    free(key);
    SHA256((const unsigned char *)id->repository, strlen(id->repository), md);
    for (size_t i = 0; i < sizeof(md); i++) {
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    }
    for (int len = 8;; len += 2) {
        key = kn_asprintf("%s.%.*s", id->app, len, hex);
        if (!key_taken(lp, key) || len >= (int)sizeof(md) * 2) {
            return key;
        }
        free(key);
    }
}

/* The start of the HAProxy server names of a variant's instances ("canary-"; the servers are
 * "canary-1", "canary-2", ...). */
static const char *server_prefix(enum kn_variant v)
{
    static const char *const prefixes[KN_VARIANT_COUNT] = {"primary-", "canary-", "baseline-"};

    return prefixes[v];
}

static int count_of(const struct lapp *a, enum kn_variant v)
{
    int n = 0;
    for (size_t i = 0; i < a->ninsts; i++) {
        n += a->insts[i].variant == v;
    }
    return n;
}

static void service_release(struct service *s)
{
    for (size_t i = 0; i < s->argc; i++) {
        free(s->argv[i]);
    }
    free(s->argv);
    for (size_t i = 0; i < s->envc; i++) {
        free(s->env_keys[i]);
        free(s->env_values[i]);
    }
    free(s->env_keys);
    free(s->env_values);
    free(s->health_path);
    free(s->bind);
    memset(s, 0, sizeof(*s));
}

static long long json_duration(const json_t *obj, const char *key, long long def)
{
    const json_t *v = json_object_get(obj, key);
    long long ms;

    if (json_is_string(v) && kn_duration_parse(json_string_value(v), &ms) == 0) {
        return ms;
    }
    if (json_is_integer(v)) {
        return json_integer_value(v) * 1000;
    }
    return def;
}

/* The LocalService of a manifest set, validated when the app was loaded. */
static int service_from(struct service *s, const json_t *manifests, char *error, size_t size)
{
    const json_t *doc = NULL, *spec, *cmd, *env, *hc, *v;
    size_t i;
    const char *key;
    json_t *val;

    memset(s, 0, sizeof(*s));
    json_array_foreach(manifests, i, val) {
        const json_t *kind = json_object_get(val, "kind");
        if (json_is_string(kind) && strcmp(json_string_value(kind), "LocalService") == 0) {
            doc = val;
        }
    }
    spec = json_object_get(doc, "spec");
    cmd = json_object_get(spec, "command");
    if (!doc || !json_is_array(cmd) || json_array_size(cmd) == 0) {
        snprintf(error, size, "no LocalService with a command in the manifests");
        return KN_EINVAL;
    }
    s->argc = json_array_size(cmd);
    s->argv = kn_calloc(s->argc, sizeof(char *));
    json_array_foreach(cmd, i, val) {
        s->argv[i] = kn_strdup(json_is_string(val) ? json_string_value(val) : "");
    }
    env = json_object_get(spec, "env");
    s->env_keys = kn_calloc(json_object_size(env) + 1, sizeof(char *));
    s->env_values = kn_calloc(json_object_size(env) + 1, sizeof(char *));
    json_object_foreach((json_t *)(uintptr_t)env, key, val) {
        char *text = json_is_string(val) ? kn_strdup(json_string_value(val))
                                         : json_dumps(val, JSON_ENCODE_ANY | JSON_COMPACT);
        s->env_keys[s->envc] = kn_strdup(key);
        s->env_values[s->envc++] = text;
    }
    hc = json_object_get(spec, "healthCheck");
    v = json_object_get(hc, "path");
    s->health_path = kn_strdup(json_is_string(v) ? json_string_value(v) : "/healthz");
    s->health_interval_ms = json_duration(hc, "interval", 1000);
    s->health_timeout_ms = json_duration(hc, "timeout", 1000);
    v = json_object_get(hc, "healthyThreshold");
    s->healthy_threshold = json_is_integer(v) ? json_integer_value(v) : 1;
    v = json_object_get(json_object_get(spec, "frontend"), "bind");
    s->bind = kn_strdup(json_is_string(v) ? json_string_value(v) : "");
    v = json_object_get(spec, "replicas");
    s->replicas = json_is_integer(v) ? json_integer_value(v) : 1;
    return 0;
}

/* ---- state file: the apps this platform serves --------------------------------------------- */

static void save_state(struct local *lp)
{
    json_t *root = json_object();
    char *tmp = kn_asprintf("%s/apps.json.tmp", lp->dir);
    char *path = kn_asprintf("%s/apps.json", lp->dir);

    for (size_t i = 0; i < lp->napps; i++) {
        const struct lapp *a = lp->apps[i];
        json_t *insts = json_array();
        for (size_t j = 0; j < a->ninsts; j++) {
            json_array_append_new(insts, json_pack("{s:s, s:i, s:i, s:i, s:s}", "name",
                                                   a->insts[j].name, "variant",
                                                   a->insts[j].variant, "index",
                                                   (int)a->insts[j].index, "port",
                                                   a->insts[j].port, "commit",
                                                   a->insts[j].commit));
        }
        json_t *rec = json_pack("{s:s, s:[f,f,f], s:i, s:o, s:s}", "bind", a->bind, "percent",
                                a->percent[0], a->percent[1], a->percent[2], "next",
                                (int)a->next_index, "instances", insts, "app", a->app);
        if (a->repository) {
            json_object_set_new(rec, "repository", json_string(a->repository));
        }
        if (a->nroutes) {
            json_t *routes = json_array();
            for (size_t j = 0; j < a->nroutes; j++) {
                json_array_append_new(routes, json_pack("{s:s, s:s}", "key", a->route_keys[j],
                                                        "match", a->route_descs[j]));
            }
            json_object_set_new(rec, "routes", routes);
        }
        json_object_set_new(root, a->name, rec);
    }
    if (json_dump_file(root, tmp, JSON_INDENT(2)) == 0) {
        rename(tmp, path);
    } else {
        kn_log_error(lp->who, "cannot write %s", tmp);
    }
    json_decref(root);
    free(tmp);
    free(path);
}

/* The apps of apps.json; 0 also when there is none yet, KN_EIO when it is there but cannot be
 * read as kanaria writes it (then nothing is known of the instances that run). */
static int load_state(struct local *lp)
{
    char *path = kn_asprintf("%s/apps.json", lp->dir);
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    const char *name;
    json_t *a;
    int rc = 0;

    if ((!root && access(path, F_OK) == 0) || (root && !json_is_object(root))) {
        kn_log_error(lp->who, "cannot read %s (%s): the instances that run are kept as they are",
                     path, root ? "not an object" : jerr.text);
        rc = KN_EIO;
    }
    json_object_foreach(root, name, a) {
        /* no "repository": written by an earlier kanaria, adopted by lapp_of */
        struct lapp *app = add_app(lp, name,
                                   json_string_value(json_object_get(a, "repository")),
                                   json_string_value(json_object_get(a, "app")),
                                   json_string_value(json_object_get(a, "bind")));
        const json_t *pct = json_object_get(a, "percent");
        size_t i;
        json_t *inst;
        for (int v = 0; v < KN_VARIANT_COUNT; v++) {
            app->percent[v] = json_number_value(json_array_get(pct, (size_t)v));
        }
        app->next_index = (unsigned)json_integer_value(json_object_get(a, "next"));
        json_array_foreach(json_object_get(a, "routes"), i, inst) {
            const char *key = json_string_value(json_object_get(inst, "key"));
            const char *desc = json_string_value(json_object_get(inst, "match"));
            if (!key) {
                continue;
            }
            app->route_keys = kn_reallocarray(app->route_keys, app->nroutes + 1,
                                              sizeof(*app->route_keys));
            app->route_descs = kn_reallocarray(app->route_descs, app->nroutes + 1,
                                               sizeof(*app->route_descs));
            app->route_keys[app->nroutes] = kn_strdup(key);
            app->route_descs[app->nroutes++] = kn_strdup(desc ? desc : key);
        }
        json_array_foreach(json_object_get(a, "instances"), i, inst) {
            struct inst *in;
            app->insts = kn_reallocarray(app->insts, app->ninsts + 1, sizeof(*app->insts));
            in = &app->insts[app->ninsts++];
            memset(in, 0, sizeof(*in));
            snprintf(in->name, sizeof(in->name), "%s",
                     json_string_value(json_object_get(inst, "name")));
            in->variant = (enum kn_variant)json_integer_value(json_object_get(inst, "variant"));
            in->index = (unsigned)json_integer_value(json_object_get(inst, "index"));
            in->port = (int)json_integer_value(json_object_get(inst, "port"));
            snprintf(in->commit, sizeof(in->commit), "%s",
                     json_string_value(json_object_get(inst, "commit")));
        }
    }
    json_decref(root);
    free(path);
    return rc;
}

/* ---- HAProxy ------------------------------------------------------------------------------ */

/* The weight of each server of app for its current percents. */
static void weights_of(const struct lapp *a, int weight[KN_VARIANT_COUNT])
{
    int count[KN_VARIANT_COUNT];

    for (int v = 0; v < KN_VARIANT_COUNT; v++) {
        count[v] = count_of(a, (enum kn_variant)v);
    }
    kn_haproxy_weights(a->percent, count, weight);
}

/* The file of an app's routes (caller frees). */
static char *route_map_path(const struct local *lp, const struct lapp *a)
{
    return kn_asprintf("%s/routes-%s.map", lp->dir, a->name);
}

/* Write the app's route map as kanaria has it, for HAProxy's next start or reload (the
 * runtime commands change the one it has loaded). */
static int route_map_write(const struct local *lp, const struct lapp *a, struct kn_error *err)
{
    char *path = route_map_path(lp, a);
    char *tmp = kn_asprintf("%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    int rc = 0;

    for (size_t i = 0; f && i < a->nroutes; i++) {
        fprintf(f, "%s 1\n", a->route_keys[i]);
    }
    if (!f || ferror(f) || fclose(f) != 0 || rename(tmp, path) != 0) {
        rc = kn_error_set(err, KN_EIO, NULL, "cannot write %s: %s", path, strerror(errno));
    }
    free(tmp);
    free(path);
    return rc;
}

static int render_config(struct local *lp, struct kn_error *err)
{
    struct kn_haproxy_cfg cfg = {
        .stats_socket = lp->socket,
        .pid_file = NULL, /* given with -p when kanaria starts it */
        .prometheus_bind = lp->metrics_bind,
    };
    struct kn_haproxy_cfg_app *apps = kn_calloc(lp->napps + 1, sizeof(*apps));
    struct kn_haproxy_cfg_server **servers = kn_calloc(lp->napps + 1, sizeof(*servers));
    char **maps = kn_calloc(lp->napps + 1, sizeof(*maps));
    char *text = NULL;
    int rc = 0;

    for (size_t i = 0; i < lp->napps; i++) {
        const struct lapp *a = lp->apps[i];
        int w[KN_VARIANT_COUNT];
        weights_of(a, w);
        servers[i] = kn_calloc(a->ninsts + 1, sizeof(**servers));
        for (size_t j = 0; j < a->ninsts; j++) {
            servers[i][j].name = a->insts[j].name;
            servers[i][j].addr = "127.0.0.1";
            servers[i][j].port = a->insts[j].port;
            servers[i][j].weight = w[a->insts[j].variant];
            servers[i][j].canary = a->insts[j].variant == KN_VARIANT_CANARY;
        }
        maps[i] = route_map_path(lp, a);
        if (rc == 0) {
            rc = route_map_write(lp, a, err);
        }
        apps[i].route_map = maps[i];
        apps[i].name = a->name;
        apps[i].bind = a->bind;
        apps[i].servers = servers[i];
        apps[i].server_count = a->ninsts;
    }
    cfg.apps = apps;
    cfg.app_count = lp->napps;
    if (rc == 0) {
        rc = kn_haproxy_config_render(&text, &cfg, err);
    }
    if (rc == 0) {
        char *tmp = kn_asprintf("%s.tmp", lp->cfg_path);
        FILE *f = fopen(tmp, "w");
        if (!f || fputs(text, f) < 0 || fclose(f) != 0 || rename(tmp, lp->cfg_path) != 0) {
            rc = kn_error_set(err, KN_EIO, NULL, "cannot write %s: %s", lp->cfg_path,
                              strerror(errno));
        }
        free(tmp);
    }
    free(text);
    for (size_t i = 0; i < lp->napps; i++) {
        free(servers[i]);
        free(maps[i]);
    }
    free(maps);
    free(servers);
    free(apps);
    return rc;
}

/* Start the managed HAProxy, or reload it so it serves every app we know. */
static int haproxy_refresh(struct local *lp, struct kn_error *err)
{
    struct kn_error probe;
    int rc;

    if (!lp->managed) {
        return 0;
    }
    if ((rc = render_config(lp, err)) < 0) {
        return rc;
    }
    if (kn_haproxy_running(lp->pid_path, &probe) == 1) {
        return kn_haproxy_reload(lp->pid_path, err);
    } else {
        struct kn_haproxy_proc *proc = NULL;
        char *log = kn_asprintf("%s/haproxy.log", lp->dir);
        struct kn_haproxy_launch launch = {
            .binary = lp->binary,
            .cfg_path = lp->cfg_path,
            .pid_path = lp->pid_path,
            .log_path = log,
        };
        if ((rc = kn_haproxy_socket_claim(lp->socket, err)) < 0) {
            free(log);
            return rc;
        }
        rc = kn_haproxy_start(&proc, lp->loop, &launch, err);
        kn_haproxy_proc_free(proc); /* it runs on its own, in its own session */
        free(log);
        return rc;
    }
}

/* The app of this platform that serves `bind` already, other than `app`; NULL: none. */
static const struct lapp *bind_owner(const struct local *lp, const char *app, const char *bind)
{
    for (size_t i = 0; i < lp->napps; i++) {
        const struct lapp *o = lp->apps[i];
        if (strcmp(o->name, app) != 0 && o->bind[0] &&
            kn_local_service_binds_overlap(o->bind, bind)) {
            return o;
        }
    }
    return NULL;
}

/*
 * Before the managed HAProxy takes `bind` for `app` (NULL: only start it with what it has):
 * what it would listen on anew must be free, and a HAProxy that does not run must find its
 * admin socket free. A port or socket another process holds fails the operation, rather than
 * HAProxy sharing it (SO_REUSEPORT) or replacing it.
 */
static int haproxy_preflight(struct local *lp, const char *app, const char *bind,
                             struct kn_error *err)
{
    struct kn_error probe, why;
    int rc = 0;

    if (!lp->managed) {
        return 0;
    }
    if (kn_haproxy_running(lp->pid_path, &probe) == 1) {
        const struct lapp *a = app ? find_app(lp, app) : NULL;
        /* the app's own frontend holds a bind that overlaps its new one (127.0.0.1:P to *:P) */
        if (app && (!a || !kn_local_service_binds_overlap(a->bind, bind)) &&
            (rc = kn_haproxy_bind_probe(bind, &why)) < 0) {
            kn_error_set(err, rc, NULL, "frontend.bind of app '%s': %s", app, why.msg);
        }
        return rc;
    }
    if ((rc = kn_haproxy_socket_claim(lp->socket, err)) < 0) {
        return rc;
    }
    if (lp->metrics_bind && (rc = kn_haproxy_bind_probe(lp->metrics_bind, &why)) < 0) {
        return kn_error_set(err, rc, NULL, "haproxy.metricsBind: %s", why.msg);
    }
    for (size_t i = 0; i < lp->napps; i++) {
        const struct lapp *a = lp->apps[i];
        const char *b = app && strcmp(a->name, app) == 0 ? bind : a->bind;
        if (b[0] && (rc = kn_haproxy_bind_probe(b, &why)) < 0) {
            return kn_error_set(err, rc, NULL, "frontend.bind of app '%s': %s", a->name, why.msg);
        }
    }
    if (app && !find_app(lp, app) && (rc = kn_haproxy_bind_probe(bind, &why)) < 0) {
        kn_error_set(err, rc, NULL, "frontend.bind of app '%s': %s", app, why.msg);
    }
    return rc;
}

/* ---- the operation queue ------------------------------------------------------------------- */

static void wait_closed(uv_handle_t *h);

static void op_free(struct op *op)
{
    for (size_t i = 0; i < op->ncmds; i++) {
        free(op->cmds[i]);
    }
    free(op->cmds);
    free(op->fresh);
    free(op->app);
    free(op->repository);
    free(op->app_name);
    strv_free(op->route_keys, op->nroutes);
    strv_free(op->route_descs, op->nroutes);
    service_release(&op->svc);
    if (op->timer) {
        uv_close((uv_handle_t *)op->timer, wait_closed);
    }
    free(op);
}

/* ---- the HAProxy lock ---------------------------------------------------------------------- */

static int lock_free_for(const struct local *lp, enum lock_mode mode)
{
    return !lp->lock_writer &&
           (mode == LOCK_SHARED ? lp->lock_readers < SHARED_MAX : lp->lock_readers == 0);
}

static void lock_granted(uv_timer_t *t);

/* Hand the lock to the waiters at the head that can have it now, in their order. Their steps
 * go on from the loop, never from inside the caller's step. */
static void lock_grant(struct local *lp)
{
    while (lp->lock_head && !lp->closing && lock_free_for(lp, lp->lock_head->lock_want)) {
        struct op *op = lp->lock_head;
        lp->lock_head = op->lock_next;
        if (!lp->lock_head) {
            lp->lock_tail = NULL;
        }
        op->lock_next = NULL;
        op->lock_held = op->lock_want;
        op->lock_want = LOCK_NONE;
        if (op->lock_held == LOCK_ALONE) {
            lp->lock_writer = 1;
        } else {
            lp->lock_readers++;
        }
        uv_timer_start(op->timer, lock_granted, 0, 0);
    }
}

/* Out of the queue of waiters (it waits). */
static void lock_unwait(struct op *op)
{
    struct local *lp = op->lp;
    struct op **at = &lp->lock_head, *prev = NULL;

    if (op->lock_want == LOCK_NONE) {
        return;
    }
    while (*at && *at != op) {
        prev = *at;
        at = &(*at)->lock_next;
    }
    if (*at) {
        *at = op->lock_next;
        if (lp->lock_tail == op) {
            lp->lock_tail = prev;
        }
    }
    op->lock_next = NULL;
    op->lock_want = LOCK_NONE;
    uv_timer_stop(op->timer);
    lock_grant(lp); /* one waiting alone may have held back shared ones behind it */
}

static void lock_release(struct op *op)
{
    struct local *lp = op->lp;

    if (op->lock_held == LOCK_ALONE) {
        lp->lock_writer = 0;
    } else if (op->lock_held == LOCK_SHARED) {
        lp->lock_readers--;
    }
    op->lock_held = LOCK_NONE;
    lock_grant(lp);
}

static void op_abort(struct op *op);
static void op_end(struct op *op, int status, const char *message);

static void lock_waited_out(uv_timer_t *t)
{
    struct op *op = t->data;

    kn_log_warn(op->lp->who, "app=%s gave up waiting for HAProxy, which other apps' operations "
                "held", op->app);
    lock_unwait(op);
    if (op->undo) {
        /* its servers stay in HAProxy (weight 0 or in maintenance); its instances stop */
        op->step = STEP_UNDO_STOP;
        op_next(op);
        return;
    }
    op->cancelled = 1;
    op->end_status = KN_ETIMEDOUT;
    op_abort(op);
}

/*
 * Run then(op) holding the HAProxy lock in `mode`: at once when it is free and nobody waits
 * before, else when its turn comes. The wait lasts at most what is left of the call's deadline
 * (max_ms when that is shorter and not 0); past it the operation gives up (KN_ETIMEDOUT).
 */
static void lock_take(struct op *op, enum lock_mode mode, void (*then)(struct op *op),
                      long long max_ms)
{
    struct local *lp = op->lp;
    long long wait_ms = kn_platform_call_time_left(op->call);

    if (op->lock_held == mode || op->lock_held == LOCK_ALONE) {
        then(op); /* held already (an undo after the batch it interrupted) */
        return;
    }
    if (!lp->lock_head && lock_free_for(lp, mode)) {
        op->lock_held = mode;
        if (mode == LOCK_ALONE) {
            lp->lock_writer = 1;
        } else {
            lp->lock_readers++;
        }
        then(op);
        return;
    }
    if (max_ms > 0 && (wait_ms > max_ms || op->undo)) {
        wait_ms = max_ms;
    }
    kn_log_info(lp->who, "app=%s waits for HAProxy, which another app's operation uses",
                op->app);
    op->lock_want = mode;
    op->lock_then = then;
    if (lp->lock_tail) {
        lp->lock_tail->lock_next = op;
    } else {
        lp->lock_head = op;
    }
    lp->lock_tail = op;
    uv_timer_start(op->timer, lock_waited_out, (uint64_t)wait_ms, 0);
}

static void lock_granted(uv_timer_t *t)
{
    struct op *op = t->data;

    if (op->lp->closing) {
        op_end(op, KN_ECANCELLED, "kanaria is stopping");
        return;
    }
    if (op->cancelled && !op->undo) {
        lock_release(op);
        op_abort(op);
        return;
    }
    op->lock_then(op);
}

/* ---- the operations ------------------------------------------------------------------------ */

static void op_end(struct op *op, int status, const char *message)
{
    struct local *lp = op->lp;
    struct op **at = &lp->ops;
    struct lapp *a = find_app(lp, op->app);

    while (*at && *at != op) {
        at = &(*at)->next;
    }
    if (*at) {
        *at = op->next;
    }
    lock_unwait(op);
    lock_release(op);
    if (a) {
        a->observed = 0; /* what HAProxy says now is read again */
        a->routes_observed = 0;
        a->gen++;
    }
    save_state(lp);
    if (status != 0) {
        kn_log_warn(lp->who, "app=%s %s", op->app, message);
    }
    if (status) {
        kn_platform_call_done(op->call, status, "%s", message);
    } else {
        kn_platform_call_done(op->call, 0, NULL);
    }
    op_free(op);
    release_if_idle(lp);
}

static void op_fail(struct op *op, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void op_fail(struct op *op, int status, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(op->error, sizeof(op->error), fmt, ap);
    va_end(ap);
    op_end(op, status, op->error);
}

/* The operation starts now, beside those of the other apps (the front end hands over one
 * operation of an app at a time). */
static void op_start(struct local *lp, struct op *op)
{
    struct lapp *a = find_app(lp, op->app);

    op->next = lp->ops;
    lp->ops = op;
    if (a) {
        a->gen++; /* a reading of HAProxy asked before this is stale */
    }
    op_next(op);
}

/* 1 while an operation runs on the app `name`. */
static int app_busy(const struct local *lp, const char *name)
{
    for (const struct op *op = lp->ops; op; op = op->next) {
        if (strcmp(op->app, name) == 0) {
            return 1;
        }
    }
    return 0;
}

static void add_cmd(struct op *op, char *cmd)
{
    if (!cmd) {
        return;
    }
    op->cmds = kn_reallocarray(op->cmds, op->ncmds + 1, sizeof(*op->cmds));
    op->cmds[op->ncmds++] = cmd;
}

static void cmds_reset(struct op *op)
{
    for (size_t i = 0; i < op->ncmds; i++) {
        free(op->cmds[i]);
    }
    free(op->cmds);
    op->cmds = NULL;
    op->ncmds = 0;
    op->cmd_at = 0;
    op->tolerate = 0;
}

static void send_next_cmd(struct op *op);

/* A command queued with a leading '?' may fail (the route backend of an app that a HAProxy
 * started before kanaria knew routes does not have): the command is what follows. */
static const char *cmd_text(const char *cmd)
{
    return cmd[0] == '?' ? cmd + 1 : cmd;
}

static void add_cmd_optional(struct op *op, char *cmd)
{
    if (cmd) {
        char *q = kn_asprintf("?%s", cmd);
        free(cmd);
        add_cmd(op, q);
    }
}

static void cmd_done(int status, const char *text, void *data)
{
    struct op *op = data;
    struct kn_error err;

    kn_error_clear(&err);
    if (op->lp->closing) {
        op_end(op, KN_ECANCELLED, "kanaria is stopping");
        return;
    }
    if (op->cancelled && !op->undo && op->kind == OP_APPLY && (op->step == 3 || op->step == 4)) {
        /* the rest would only add: not sent; what was added is taken out (the lock is kept) */
        op_abort(op);
        return;
    }
    if (status == 0) {
        status = kn_haproxy_reply_check(cmd_text(op->cmds[op->cmd_at]), text, &err);
    } else {
        kn_error_set(&err, status, NULL, "%s", text ? text : kn_strerror(status));
    }
    if (status < 0 && !op->tolerate && op->cmds[op->cmd_at][0] != '?') {
        op_fail(op, KN_EIO, "haproxy refused '%s': %s", op->cmds[op->cmd_at], err.msg);
        return;
    }
    op->cmd_at++;
    send_next_cmd(op);
}

/* Send op->cmds one after the other, then go on with the next step. */
static void send_next_cmd(struct op *op)
{
    int rc;

    if (op->cmd_at >= op->ncmds) {
        cmds_reset(op);
        lock_release(op);
        op->step++;
        op_next(op);
        return;
    }
    rc = kn_haproxy_command(op->lp->loop, op->lp->socket, cmd_text(op->cmds[op->cmd_at]),
                            CMD_TIMEOUT_MS, cmd_done, op);
    if (rc < 0 && op->undo) {
        /* its servers stay in HAProxy (weight 0 or in maintenance); its instances stop */
        cmds_reset(op);
        lock_release(op);
        op->step = STEP_UNDO_STOP;
        op_next(op);
    } else if (rc < 0) {
        op_fail(op, KN_EIO, "haproxy is not reachable at %s", op->lp->socket);
    }
}

/* The app's route backend, NAME:canary (caller frees). */
static char *route_backend(const struct lapp *a)
{
    return kn_asprintf("%s" KN_HAPROXY_ROUTE_SUFFIX, a->name);
}

/* A canary server into the route backend too (in service at once: it is healthy). */
static void queue_route_add(struct op *op, struct lapp *a, const struct inst *in)
{
    char *be = route_backend(a);
    char *cmd = NULL;
    struct kn_error err;

    if (op->lp->managed && in->variant == KN_VARIANT_CANARY) {
        kn_haproxy_cmd_add_server(&cmd, be, in->name, "127.0.0.1", in->port, 1, &err);
        add_cmd_optional(op, cmd);
        cmd = NULL;
        kn_haproxy_cmd_enable_server(&cmd, be, in->name, &err);
        add_cmd_optional(op, cmd);
    }
    free(be);
}

/* A canary server out of the route backend. */
static void queue_route_del(struct op *op, struct lapp *a, const struct inst *in)
{
    char *be = route_backend(a);
    char *cmd = NULL;
    struct kn_error err;

    if (op->lp->managed && in->variant == KN_VARIANT_CANARY) {
        kn_haproxy_cmd_set_state(&cmd, be, in->name, KN_HAPROXY_MAINT, &err);
        add_cmd_optional(op, cmd);
        cmd = NULL;
        kn_haproxy_cmd_del_server(&cmd, be, in->name, &err);
        add_cmd_optional(op, cmd);
    }
    free(be);
}

/* The app's routes in HAProxy made what a->route_keys says: the file, then the map HAProxy
 * has loaded (cleared, then each key). */
static void queue_routes(struct op *op, struct lapp *a)
{
    char *map = route_map_path(op->lp, a);
    char *cmd = NULL;
    struct kn_error err;

    kn_haproxy_cmd_map(&cmd, "clear", map, &err);
    if (a->nroutes) {
        add_cmd(op, cmd);
    } else {
        add_cmd_optional(op, cmd); /* nothing to take away from a HAProxy without the map */
    }
    for (size_t i = 0; i < a->nroutes; i++) {
        cmd = NULL;
        kn_haproxy_cmd_add_map(&cmd, map, a->route_keys[i], &err);
        add_cmd(op, cmd);
    }
    free(map);
}

/* Forget the app's routes (the canary goes, or all the traffic goes to the primary), in its
 * record and file; queue_routes then takes them out of HAProxy. */
static void routes_drop(struct op *op, struct lapp *a)
{
    struct kn_error err;

    strv_free(a->route_keys, a->nroutes);
    strv_free(a->route_descs, a->nroutes);
    a->route_keys = NULL;
    a->route_descs = NULL;
    a->nroutes = 0;
    save_state(op->lp);
    if (op->lp->managed && route_map_write(op->lp, a, &err) < 0) {
        kn_log_error(op->lp->who, "app=%s %s", a->name, err.msg);
    }
}

/* `set weight` for every server of the app, from its percents. Between operations every
 * server kanaria registered is in service, so one put in maintenance or drained by hand is put
 * back in service too (what a self-heal relies on). */
static void queue_weights(struct op *op, struct lapp *a)
{
    int w[KN_VARIANT_COUNT];
    struct kn_error err;

    weights_of(a, w);
    for (size_t i = 0; i < a->ninsts; i++) {
        char *cmd = NULL;
        kn_haproxy_cmd_set_weight(&cmd, a->name, a->insts[i].name, w[a->insts[i].variant], &err);
        add_cmd(op, cmd);
        if (op->kind == OP_WEIGHTS || op->kind == OP_ROUTES) {
            cmd = NULL;
            kn_haproxy_cmd_set_state(&cmd, a->name, a->insts[i].name, KN_HAPROXY_READY, &err);
            add_cmd(op, cmd);
        }
    }
}

/* Take the instances of `variant` out of HAProxy, except those of this op. */
static void queue_removal(struct op *op, struct lapp *a, enum kn_variant variant)
{
    struct kn_error err;

    op->tolerate = 1; /* what is gone already is fine */
    for (size_t i = 0; i < a->ninsts; i++) {
        const struct inst *in = &a->insts[i];
        char *cmd = NULL;
        int fresh = 0;
        for (size_t j = 0; j < op->nfresh; j++) {
            fresh |= strcmp(op->fresh[j].name, in->name) == 0;
        }
        if (in->variant != variant || fresh) {
            continue;
        }
        queue_route_del(op, a, in);
        kn_haproxy_cmd_set_state(&cmd, a->name, in->name, KN_HAPROXY_MAINT, &err);
        add_cmd(op, cmd);
        cmd = NULL;
        kn_haproxy_cmd_del_server(&cmd, a->name, in->name, &err);
        add_cmd(op, cmd);
    }
}

static void stopped_one(int status, void *data)
{
    struct op *op = data;

    (void)status; /* an instance that is gone already is what we want */
    if (--op->pending == 0) {
        op->step++;
        op_next(op);
    }
}

/* Stop the instances of the variant that run but that the state does not list (started by an
 * operation a kill -9 interrupted, when they were not stopped at start), not this op's. */
static void stop_unlisted(struct op *op, struct lapp *a, enum kn_variant variant)
{
    struct kn_instance_info *infos = NULL;
    size_t n = 0;

    kn_proc_list(op->lp->sup, a->name, &infos, &n);
    for (size_t i = 0; i < n; i++) {
        int fresh = 0;
        for (size_t j = 0; j < op->nfresh; j++) {
            fresh |= op->fresh[j].index == infos[i].index;
        }
        if (fresh || strcmp(infos[i].variant, kn_variant_name(variant)) != 0) {
            continue;
        }
        kn_log_info(op->lp->who, "app=%s stopping %s-%u, which no operation finished starting",
                    a->name, infos[i].variant, infos[i].index);
        op->pending++;
        if (kn_proc_stop(op->lp->sup, a->name, infos[i].variant, infos[i].index, stopped_one,
                         op) < 0) {
            op->pending--;
        }
    }
    kn_proc_list_free(infos, n);
}

/* Stop the old instances of the variant (not this op's) and forget them. */
static void stop_old(struct op *op, struct lapp *a, enum kn_variant variant)
{
    size_t kept = 0;

    op->pending = 1;
    for (size_t i = 0; i < a->ninsts; i++) {
        struct inst in = a->insts[i];
        int fresh = 0;
        for (size_t j = 0; j < op->nfresh; j++) {
            fresh |= strcmp(op->fresh[j].name, in.name) == 0;
        }
        if (in.variant != variant || fresh) {
            a->insts[kept++] = in;
            continue;
        }
        op->pending++;
        if (kn_proc_stop(op->lp->sup, a->name, kn_variant_name(variant), in.index, stopped_one,
                         op) < 0) {
            op->pending--;
        }
    }
    a->ninsts = kept;
    save_state(op->lp);
    stop_unlisted(op, a, variant);
    stopped_one(0, op);
}

/* One start (or the setup that held the count at 1) is done; the last one moves on. */
static void start_settled(struct op *op)
{
    if (--op->pending == 0) {
        op->step++;
        op_next(op);
    }
}

static void started_one(int status, const struct kn_instance_info *info, const char *error,
                        void *data)
{
    struct op *op = data;

    if (status != 0) {
        if (!op->failed) {
            snprintf(op->error, sizeof(op->error), "%s", error ? error : kn_strerror(status));
        }
        op->failed = 1;
    } else {
        for (size_t i = 0; i < op->nfresh; i++) {
            if (op->fresh[i].index == info->index) {
                op->fresh[i].port = info->port;
            }
        }
    }
    start_settled(op);
}

static void start_instances(struct op *op, struct lapp *a, int n)
{
    struct local *lp = op->lp;
    char *apps = kn_asprintf("%s/apps", lp->dir);
    char *wd = kn_asprintf("%s/%s", apps, a->name);
    long long start_timeout = 0;

    /* the instances' working folder: kanaria's state folder for the app */
    mkdir(apps, 0755);
    mkdir(wd, 0755);
    free(apps);
    op->fresh = kn_calloc((size_t)n, sizeof(*op->fresh));
    op->nfresh = (size_t)n;
    op->pending = 1;
    if (op->deadline > 0) {
        start_timeout = op->deadline - (long long)uv_now(lp->loop);
    }
    for (int i = 0; i < n; i++) {
        struct inst *in = &op->fresh[i];
        struct kn_instance_spec spec = {
            .app = a->name,
            .variant = kn_variant_name(op->variant),
            .index = a->next_index++,
            .argv = (const char *const *)op->svc.argv,
            .argc = op->svc.argc,
            .env_keys = (const char *const *)op->svc.env_keys,
            .env_values = (const char *const *)op->svc.env_values,
            .env_count = op->svc.envc,
            .working_dir = wd,
            .health_path = op->svc.health_path,
            .health_interval_ms = op->svc.health_interval_ms,
            .health_timeout_ms = op->svc.health_timeout_ms,
            .healthy_threshold = op->svc.healthy_threshold,
            .start_timeout_ms = start_timeout,
        };
        int rc;
        in->variant = op->variant;
        in->index = spec.index;
        /* the HAProxy server name: local_template_vars gives its prefix as {{server}} */
        snprintf(in->name, sizeof(in->name), "%s%u", server_prefix(op->variant), in->index);
        snprintf(in->commit, sizeof(in->commit), "%s", op->commit);
        if (op->deadline > 0 && start_timeout <= 0) {
            op->failed = 1;
            snprintf(op->error, sizeof(op->error), "no time left to start instance %s",
                     in->name);
            continue;
        }
        op->pending++;
        if ((rc = kn_proc_start(lp->sup, &spec, started_one, op)) < 0) {
            op->pending--;
            op->failed = 1;
            snprintf(op->error, sizeof(op->error), "cannot start instance %s: %s", in->name,
                     kn_strerror(rc));
        }
    }
    free(wd);
    save_state(lp); /* the indices used: a restart never starts one of them again */
    start_settled(op);
}

/* Instances to run for a variant: the primary's own count, a canary's or baseline's count or
 * percent of the primary's. */
static int replicas_for(const struct op *op, const struct lapp *a)
{
    const struct kn_scale *s = &op->scale;
    double n;

    if (op->variant == KN_VARIANT_PRIMARY) {
        return (int)op->svc.replicas;
    }
    if (s->value <= 0) {
        return 1;
    }
    if (!s->percent) {
        return (int)s->value;
    }
    n = ceil((double)count_of(a, KN_VARIANT_PRIMARY) * s->value / 100.0);
    return n < 1 ? 1 : (int)n;
}

static void reload_poll(uv_timer_t *t);

static void wait_closed(uv_handle_t *h)
{
    free(h);
}

static void reload_probe_done(int status, const char *text, void *data)
{
    struct op *op = data;
    struct kn_error err;

    if (op->lp->closing) {
        uv_close((uv_handle_t *)op->wait, wait_closed);
        op->wait = NULL;
        op_end(op, KN_ECANCELLED, "kanaria is stopping");
        return;
    }
    /* an unknown backend is an error reply; a known one answers even without servers */
    if (status == 0 && kn_haproxy_reply_check("show servers state", text, &err) == 0) {
        uv_close((uv_handle_t *)op->wait, wait_closed);
        op->wait = NULL;
        lock_release(op); /* HAProxy serves the new config: other apps' commands reach it */
        op->step++;
        op_next(op);
        return;
    }
    if (op->waited % 2000 == 0) {
        /* a reload that reached HAProxy while its master re-executed itself is lost: again */
        kn_haproxy_reload(op->lp->pid_path, &err);
    }
    if (op->waited >= RELOAD_WAIT_MS) {
        uv_close((uv_handle_t *)op->wait, wait_closed);
        op->wait = NULL;
        op_fail(op, KN_EIO, "haproxy did not serve app '%s' within %llds after a reload", op->app,
                (long long)RELOAD_WAIT_MS / 1000);
        return;
    }
    uv_timer_start(op->wait, reload_poll, 200, 0);
}

static void reload_poll(uv_timer_t *t)
{
    struct op *op = t->data;
    char *cmd = NULL;
    struct kn_error err;

    op->waited += 200;
    kn_haproxy_cmd_show_servers_state(&cmd, op->app, &err);
    if (kn_haproxy_command(op->lp->loop, op->lp->socket, cmd, CMD_TIMEOUT_MS, reload_probe_done,
                           op) < 0) {
        reload_probe_done(KN_EIO, "", op);
    }
    free(cmd);
}

/* ---- the operations as steps -------------------------------------------------------------- */

static void cmds_go(struct op *op)
{
    op->cmd_at = 0;
    send_next_cmd(op);
}

/* Send op->cmds holding the HAProxy lock shared with other apps' commands (not during a
 * reload), then go on with the next step. */
static void send_cmds(struct op *op)
{
    lock_take(op, LOCK_SHARED, cmds_go, op->undo ? UNDO_WAIT_MS : 0);
}

static void aborted_one(int status, void *data)
{
    struct op *op = data;

    (void)status;
    if (--op->pending == 0) {
        /* a cancel that stopped the starts ends as cancelled, as the contract says */
        op_end(op, op->cancelled ? KN_ECANCELLED : KN_EIO, op->error);
    }
}

/* A start failed or the op was cancelled: stop the instances this op started, then end with the
 * first error. */
static void abort_fresh(struct op *op, struct lapp *a)
{
    op->pending = 1;
    for (size_t i = 0; i < op->nfresh; i++) {
        op->pending++;
        if (kn_proc_stop(op->lp->sup, a->name, kn_variant_name(op->variant), op->fresh[i].index,
                         aborted_one, op) < 0) {
            op->pending--;
        }
    }
    aborted_one(0, op);
}

/* Apply, step 0 holding the lock alone: the bind is free, the app is in the config, and the
 * managed HAProxy reloads (or starts) with it; step 1 waits until it serves it. */
static void apply_reload(struct op *op)
{
    struct local *lp = op->lp;
    struct lapp *a = find_app(lp, op->app);
    const struct lapp *owner;
    struct kn_error err;

    kn_error_clear(&err);
    owner = bind_owner(lp, op->app, op->svc.bind);
    if (owner && owner->repository) {
        op_fail(op, KN_EINVAL,
                "frontend.bind %s is already used by app '%s' of repository '%s' on "
                "platform '%s'",
                op->svc.bind, owner->app, owner->repository, lp->name);
        return;
    }
    if (owner) {
        op_fail(op, KN_EINVAL, "frontend.bind %s is already used by app '%s' on platform '%s'",
                op->svc.bind, owner->app, lp->name);
        return;
    }
    if (haproxy_preflight(lp, op->app, op->svc.bind, &err) < 0) {
        op_fail(op, KN_EIO, "%s", err.msg);
        return;
    }
    if (!a) {
        a = add_app(lp, op->app, op->repository, op->app_name, op->svc.bind);
    } else {
        free(a->bind);
        a->bind = kn_strdup(op->svc.bind);
    }
    if (haproxy_refresh(lp, &err) < 0) {
        op_fail(op, KN_EIO, "%s", err.msg);
        return;
    }
    op->step = 1;
    op->wait = kn_calloc(1, sizeof(*op->wait));
    uv_timer_init(lp->loop, op->wait);
    op->wait->data = op;
    uv_timer_start(op->wait, reload_poll, 100, 0);
}

/* Apply, step 3 holding the lock shared: the new instances into the app's record (before
 * HAProxy has them: a restart finds them as ours), then into HAProxy without traffic yet. */
static void apply_add(struct op *op)
{
    struct lapp *a = find_app(op->lp, op->app);
    struct kn_error err;

    a->insts = kn_reallocarray(a->insts, a->ninsts + op->nfresh, sizeof(*a->insts));
    for (size_t i = 0; i < op->nfresh; i++) {
        char *cmd = NULL;
        a->insts[a->ninsts++] = op->fresh[i];
        kn_haproxy_cmd_add_server(&cmd, a->name, op->fresh[i].name, "127.0.0.1",
                                  op->fresh[i].port, 0, &err);
        add_cmd(op, cmd);
        cmd = NULL;
        kn_haproxy_cmd_enable_server(&cmd, a->name, op->fresh[i].name, &err);
        add_cmd(op, cmd);
        queue_route_add(op, a, &op->fresh[i]);
    }
    op->added = 1;
    save_state(op->lp);
    cmds_go(op);
}

static void apply_next(struct op *op)
{
    struct local *lp = op->lp;
    struct lapp *a = find_app(lp, op->app);
    struct kn_error err;

    kn_error_clear(&err);
    switch (op->step) {
    case 0: /* HAProxy serves the app (a reload when it is new) */
        if (a && strcmp(a->bind, op->svc.bind) == 0 &&
            (!lp->managed || kn_haproxy_running(lp->pid_path, &err) == 1)) {
            op->step = 2;
            apply_next(op);
            return;
        }
        /* every app's binds and the config are shared: checked and changed holding the lock */
        lock_take(op, LOCK_ALONE, apply_reload, 0);
        return;
    case 2: /* new instances, healthy */
        start_instances(op, a, replicas_for(op, a));
        return;
    case 3: /* into HAProxy, without traffic yet */
        if (op->failed) {
            abort_fresh(op, a);
            return;
        }
        lock_take(op, LOCK_SHARED, apply_add, 0);
        return;
    case 4: /* weights with old and new side by side */
        queue_weights(op, a);
        send_cmds(op);
        return;
    case 5: /* the old instances of the variant out of HAProxy */
        queue_removal(op, a, op->variant);
        send_cmds(op);
        return;
    case 6:
        stop_old(op, a, op->variant);
        return;
    case 7: /* weights for the new counts */
        queue_weights(op, a);
        send_cmds(op);
        return;
    case STEP_UNDO_STOP:
        kn_log_info(lp->who, "app=%s stopping the new %s instances", op->app,
                    kn_variant_name(op->variant));
        op->pending = 1;
        for (size_t i = 0; i < op->nfresh; i++) {
            op->pending++;
            if (kn_proc_stop(lp->sup, op->app, kn_variant_name(op->variant), op->fresh[i].index,
                             stopped_one, op) < 0) {
                op->pending--;
            }
        }
        stopped_one(0, op);
        return;
    case STEP_UNDO_END:
        op_end(op, op->end_status ? op->end_status : KN_ECANCELLED,
               op->end_status == KN_ETIMEDOUT
                   ? "waited for haproxy past its deadline; what it started is stopped"
                   : "cancelled; what it started is stopped and out of haproxy");
        return;
    default:
        kn_log_info(lp->who, "app=%s %s runs %.7s on %zu instance%s", a->name,
                    kn_variant_name(op->variant), op->commit, op->nfresh,
                    op->nfresh == 1 ? "" : "s");
        op_end(op, 0, NULL);
        return;
    }
}

static void remove_app_next(struct op *op);

static void remove_next(struct op *op)
{
    struct lapp *a = find_app(op->lp, op->app);

    if (op->variant == KN_VARIANT_COUNT) {
        remove_app_next(op); /* the whole app (local_remove_app) */
        return;
    }
    if (!a) {
        op_end(op, 0, NULL); /* nothing of it runs here */
        return;
    }
    switch (op->step) {
    case 0:
        if (op->variant == KN_VARIANT_CANARY) {
            /* no request is sent to the canary by a route once it is gone */
            routes_drop(op, a);
            if (op->lp->managed) {
                queue_routes(op, a);
            }
        }
        queue_removal(op, a, op->variant);
        send_cmds(op);
        return;
    case 1:
        stop_old(op, a, op->variant);
        return;
    case 2:
        queue_weights(op, a);
        send_cmds(op);
        return;
    default:
        op_end(op, 0, NULL);
        return;
    }
}

/* Weights, holding the lock shared: the percents kanaria keeps change as HAProxy's do. */
static void weights_send(struct op *op)
{
    struct lapp *a = find_app(op->lp, op->app);

    memcpy(a->percent, op->percent, sizeof(a->percent));
    if (op->kind == OP_ROUTES) {
        struct kn_error err;
        /* the record and the file first: a restart or a reload keeps what HAProxy gets */
        strv_free(a->route_keys, a->nroutes);
        strv_free(a->route_descs, a->nroutes);
        a->route_keys = op->route_keys;
        a->route_descs = op->route_descs;
        a->nroutes = op->nroutes;
        op->route_keys = NULL;
        op->route_descs = NULL;
        op->nroutes = 0;
        save_state(op->lp);
        if (op->lp->managed && route_map_write(op->lp, a, &err) < 0) {
            op_fail(op, KN_EIO, "%s", err.msg);
            return;
        }
        if (op->lp->managed) {
            queue_routes(op, a);
        }
    }
    queue_weights(op, a);
    cmds_go(op);
}

static void weights_next(struct op *op)
{
    struct lapp *a = find_app(op->lp, op->app);

    if (!a && op->percent[KN_VARIANT_PRIMARY] >= 100 && op->nroutes == 0) {
        op_end(op, 0, NULL); /* nothing runs: all of nothing is on the primary */
        return;
    }
    if (op->nroutes && (!a || count_of(a, KN_VARIANT_CANARY) == 0)) {
        op_fail(op, KN_EINVAL, "no canary instance runs to take the requests that match");
        return;
    }
    if (op->nroutes && !op->lp->managed) {
        op_fail(op, KN_EUNSUPPORTED,
                "header and cookie routing needs the HAProxy that kanaria manages (platform "
                "'%s' uses one it does not)", op->lp->name);
        return;
    }
    if (!a) {
        op_fail(op, KN_ENOTFOUND, "app '%s' does not run on this platform", op->app);
        return;
    }
    if (op->step == 0) {
        /* all to a primary that has no instance (a first deployment that failed) is nothing
         * to do; traffic to a canary or baseline that does not run is an error */
        for (int v = KN_VARIANT_CANARY; v < KN_VARIANT_COUNT; v++) {
            if (op->percent[v] > 0 && count_of(a, (enum kn_variant)v) == 0) {
                op_fail(op, KN_EINVAL, "no %s instance runs to take %g%% of the traffic",
                        kn_variant_name((enum kn_variant)v), op->percent[v]);
                return;
            }
        }
        lock_take(op, LOCK_SHARED, weights_send, 0);
        return;
    }
    op_end(op, 0, NULL);
}

/* ---- reading HAProxy back ------------------------------------------------------------------ */


/* Each variant's share of the traffic from HAProxy's servers of the app: their user weights,
 * counting only servers in service (not in maintenance or drained). */
static void observe_shares(struct lapp *a, const struct kn_haproxy_server_state *st, size_t n)
{
    double sum[KN_VARIANT_COUNT] = {0}, total = 0;

    for (size_t i = 0; i < n; i++) {
        for (int v = 0; v < KN_VARIANT_COUNT; v++) {
            const char *name = kn_variant_name((enum kn_variant)v);
            size_t len = strlen(name);
            if (strncmp(st[i].name, name, len) == 0 && st[i].name[len] == '-' &&
                st[i].admin == KN_HAPROXY_READY) {
                sum[v] += st[i].weight;
                total += st[i].weight;
            }
        }
    }
    for (int v = 0; v < KN_VARIANT_COUNT; v++) {
        a->seen[v] = total > 0 ? 100.0 * sum[v] / total : 0;
    }
}

/* What an app of a reading still needs of its own, beyond the shared commands. */
#define READ_SERVERS 1u /* `show servers state APP`: the shared one has no row of it */
#define READ_MAP     2u /* `show map FILE`: its route map may have entries */

/* The app of the reading's entry i when its reading counts: the app is still there, and no
 * operation ran on it since the reading began nor runs now. */
static struct lapp *read_app(struct local *lp, size_t i)
{
    const struct lread *r = &lp->reads[i];
    struct lapp *a = i < lp->napps && strcmp(lp->apps[i]->name, r->name) == 0
                         ? lp->apps[i]
                         : find_app(lp, r->name);

    if (!a || lp->closing || a->gen != r->gen || app_busy(lp, a->name)) {
        return NULL;
    }
    return a;
}

static void seen_unreachable(const struct local *lp, struct lapp *a)
{
    snprintf(a->seen_error, sizeof(a->seen_error), "haproxy is not reachable at %s", lp->socket);
    a->observed = 0;
}

static void seen_unparsed(struct lapp *a, const struct kn_error *err)
{
    snprintf(a->seen_error, sizeof(a->seen_error), "haproxy: %.200s", err->msg);
    a->observed = 0;
}

/* The app's servers as HAProxy has them: st (n rows of its backend) becomes the app's. */
static void seen_servers(struct lapp *a, struct kn_haproxy_server_state *st, size_t n)
{
    observe_shares(a, st, n);
    kn_haproxy_servers_state_free(a->seen_servers, a->nseen_servers);
    a->seen_servers = st; /* kept for local_observe */
    a->nseen_servers = n;
    a->seen_error[0] = '\0';
    a->observed = 1;
}

/* The keys of the app's route map (taken), observed or not. */
static void seen_routes(struct lapp *a, char **keys, size_t n, int observed)
{
    strv_free(a->seen_routes, a->nseen_routes);
    a->seen_routes = keys;
    a->nseen_routes = n;
    a->routes_observed = observed;
}

static void read_next(struct local *lp);

/* An app's own route map as HAProxy has it (after its servers). */
static void read_map_done(int status, const char *text, void *data)
{
    struct local *lp = data;
    struct lapp *a = read_app(lp, lp->read_at);
    char **keys = NULL;
    size_t n = 0;
    struct kn_error err;

    if (a) {
        if (status == 0 && kn_haproxy_parse_map(&keys, &n, text, &err) == 0) {
            seen_routes(a, keys, n, 1);
        } else {
            seen_routes(a, NULL, 0, 0);
        }
    }
    lp->reads[lp->read_at].need = 0;
    lp->read_at++;
    read_next(lp);
}

/* An app's own servers: HAProxy's words when its backend is missing, or no server. */
static void read_done(int status, const char *text, void *data)
{
    struct local *lp = data;
    struct lread *r = &lp->reads[lp->read_at];
    struct lapp *a = read_app(lp, lp->read_at);
    struct kn_haproxy_server_state *st = NULL;
    size_t n = 0;
    struct kn_error err;

    kn_error_clear(&err);
    if (a && status != 0) {
        seen_unreachable(lp, a);
    } else if (a && kn_haproxy_parse_servers_state(&st, &n, text, &err) < 0) {
        seen_unparsed(a, &err);
    } else if (a) {
        seen_servers(a, st, n);
    }
    r->need &= ~READ_SERVERS;
    if (!a || !a->observed) {
        r->need = 0; /* its route map is read only beside its servers */
    }
    if (!r->need) {
        lp->read_at++;
    }
    read_next(lp);
}

/* The end of a reading. */
static void read_end(struct local *lp)
{
    for (size_t i = 0; i < lp->nreads; i++) {
        free(lp->reads[i].name);
    }
    free(lp->reads);
    lp->reads = NULL;
    lp->nreads = 0;
    lp->read_at = 0;
    lp->reading = 0;
    release_if_idle(lp);
}

/* The apps that need commands of their own, one after the other. */
static void read_next(struct local *lp)
{
    while (!lp->closing && lp->read_at < lp->nreads) {
        struct lread *r = &lp->reads[lp->read_at];
        struct lapp *a = r->need ? read_app(lp, lp->read_at) : NULL;
        kn_haproxy_cb cb = NULL;
        char *cmd = NULL;
        struct kn_error err;
        int rc = 0;
        if (a && (r->need & READ_SERVERS)) {
            rc = kn_haproxy_cmd_show_servers_state(&cmd, a->name, &err);
            cb = read_done;
        } else if (a && (r->need & READ_MAP)) {
            char *map = route_map_path(lp, a);
            rc = kn_haproxy_cmd_map(&cmd, "show", map, &err);
            free(map);
            cb = read_map_done;
        }
        if (!cb || rc < 0) {
            r->need = 0;
            lp->read_at++;
            continue;
        }
        rc = kn_haproxy_command(lp->loop, lp->socket, cmd, CMD_TIMEOUT_MS, cb, lp);
        free(cmd);
        if (rc < 0) {
            cb(KN_EIO, "", lp);
        }
        return;
    }
    read_end(lp);
}

/* The list of HAProxy's maps: a route map whose entry count is 0 is read as empty; any other
 * (entries, no count, not listed, no list) is read with its own `show map FILE`. */
static void map_list_done(int status, const char *text, void *data)
{
    struct local *lp = data;
    struct kn_haproxy_map_info *maps = NULL;
    size_t nmaps = 0;
    struct kn_error err;

    if (status == 0 && kn_haproxy_parse_map_list(&maps, &nmaps, text, &err) == 0) {
        for (size_t i = 0; i < lp->nreads; i++) {
            struct lapp *a = lp->reads[i].need == READ_MAP ? read_app(lp, i) : NULL;
            char *path = a ? route_map_path(lp, a) : NULL;
            const struct kn_haproxy_map_info *m =
                path ? kn_haproxy_map_list_find(maps, nmaps, path) : NULL;
            if (m && m->entries == 0) {
                seen_routes(a, NULL, 0, 1);
                lp->reads[i].need = 0;
            }
            free(path);
        }
    }
    kn_haproxy_map_list_free(maps, nmaps);
    read_next(lp);
}

/* The servers of every backend, handed to each app of the reading. */
static void all_servers_done(int status, const char *text, void *data)
{
    struct local *lp = data;
    struct kn_haproxy_server_state *rows = NULL;
    size_t nrows = 0;
    int parsed = -1;
    int maps = 0;
    struct kn_error err;

    kn_error_clear(&err);
    if (status == 0 && (parsed = kn_haproxy_parse_servers_state(&rows, &nrows, text, &err)) == 0) {
        kn_haproxy_servers_state_sort(rows, nrows);
    }
    for (size_t i = 0; i < lp->nreads; i++) {
        struct lapp *a = read_app(lp, i);
        size_t first = 0;
        size_t n;
        if (!a) {
            continue;
        }
        if (status != 0) {
            seen_unreachable(lp, a);
            continue;
        }
        if (parsed < 0) {
            seen_unparsed(a, &err);
            continue;
        }
        n = kn_haproxy_servers_state_find(rows, nrows, a->name, &first);
        if (n == 0) {
            /* no server, or no backend: its own command says which */
            lp->reads[i].need = READ_SERVERS | (lp->managed ? READ_MAP : 0);
            continue;
        }
        seen_servers(a, kn_haproxy_servers_state_copy(rows + first, n), n);
        if (lp->managed) {
            lp->reads[i].need = READ_MAP;
            maps = 1;
        }
    }
    kn_haproxy_servers_state_free(rows, nrows);
    if (maps && !lp->closing &&
        kn_haproxy_command(lp->loop, lp->socket, "show map", CMD_TIMEOUT_MS, map_list_done, lp) ==
            0) {
        return;
    }
    read_next(lp);
}

/*
 * Every OBSERVE_MS, unless the last reading still runs: one reading of HAProxy for every app.
 * One `show servers state` of every backend is parsed once and handed to each app, and (with
 * the HAProxy kanaria manages) one `show map` list tells by its entry counts which route maps
 * are empty. Only what those cannot tell costs a command per app: an app without a row (a
 * backend without servers, or one HAProxy does not have, which `show servers state APP` says
 * in HAProxy's words) and a route map with entries. Idle, that is two connections to the admin
 * socket per period, whatever the number of apps.
 */
static void observe_tick(uv_timer_t *t)
{
    struct local *lp = t->data;
    char *cmd = NULL;

    if (lp->reading || lp->napps == 0 || lp->closing) {
        return;
    }
    lp->reading = 1;
    lp->reads = kn_calloc(lp->napps, sizeof(*lp->reads));
    for (size_t i = 0; i < lp->napps; i++) {
        lp->reads[i].name = kn_strdup(lp->apps[i]->name);
        lp->reads[i].gen = lp->apps[i]->gen;
    }
    lp->nreads = lp->napps;
    lp->read_at = 0;
    kn_haproxy_cmd_show_servers_state(&cmd, NULL, NULL);
    if (kn_haproxy_command(lp->loop, lp->socket, cmd, CMD_TIMEOUT_MS, all_servers_done, lp) < 0) {
        all_servers_done(KN_EIO, "", lp);
    }
    free(cmd);
}

/*
 * An apply stopped after it started instances (cancelled, or its wait for the lock ran out):
 * what it added leaves HAProxy and the app's record, the weights of what stays are set again,
 * its instances stop, and it ends.
 */
static void apply_undo(struct op *op)
{
    struct lapp *a = find_app(op->lp, op->app);
    struct kn_error err;
    size_t kept = 0;

    op->undo = 1;
    cmds_reset(op);
    if (!a || !op->added) {
        lock_release(op);
        op->step = STEP_UNDO_STOP;
        op_next(op);
        return;
    }
    for (size_t i = 0; i < a->ninsts; i++) {
        int fresh = 0;
        for (size_t j = 0; j < op->nfresh; j++) {
            fresh |= strcmp(op->fresh[j].name, a->insts[i].name) == 0;
        }
        if (!fresh) {
            a->insts[kept++] = a->insts[i];
        }
    }
    a->ninsts = kept;
    save_state(op->lp);
    op->tolerate = 1; /* a server the apply had not added yet is not there */
    for (size_t i = 0; i < op->nfresh; i++) {
        char *cmd = NULL;
        queue_route_del(op, a, &op->fresh[i]);
        kn_haproxy_cmd_set_state(&cmd, a->name, op->fresh[i].name, KN_HAPROXY_MAINT, &err);
        add_cmd(op, cmd);
        cmd = NULL;
        kn_haproxy_cmd_del_server(&cmd, a->name, op->fresh[i].name, &err);
        add_cmd(op, cmd);
    }
    queue_weights(op, a);
    kn_log_info(op->lp->who, "app=%s taking the new %s instances out of haproxy again: %s",
                op->app, kn_variant_name(op->variant),
                op->end_status == KN_ETIMEDOUT ? "its deadline passed" : "cancelled");
    op->step = STEP_UNDO_CMDS;
    send_cmds(op);
}

/* Stop the operation where it is (see the top): an apply that started instances takes out what
 * it added; anything else ends now. */
static void op_abort(struct op *op)
{
    if (op->lp->closing) {
        op_end(op, KN_ECANCELLED, "kanaria is stopping");
    } else if (op->kind == OP_APPLY && op->nfresh > 0 && !op->undo) {
        apply_undo(op);
    } else if (op->end_status == KN_ETIMEDOUT) {
        op_end(op, KN_ETIMEDOUT, "waited for haproxy past its deadline");
    } else {
        op_end(op, KN_ECANCELLED, "cancelled");
    }
}

static void abort_deferred(uv_timer_t *t)
{
    op_abort(t->data);
}

static void op_next(struct op *op)
{
    if (op->lp->closing) {
        /* a step in flight has come back: go no further */
        op_end(op, KN_ECANCELLED, "kanaria is stopping");
        return;
    }
    if (op->cancelled && !op->undo && op->kind == OP_APPLY && op->step <= 4) {
        /* its new instances are not serving alone yet: take them out, and a rollback that
         * follows runs now */
        op_abort(op);
        return;
    }
    switch (op->kind) {
    case OP_APPLY:
        apply_next(op);
        break;
    case OP_REMOVE:
        remove_next(op);
        break;
    case OP_WEIGHTS:
    case OP_ROUTES:
        weights_next(op);
        break;
    }
}

/* ---- the provider contract ---------------------------------------------------------------- */

static struct op *op_new(struct local *lp, enum op_kind kind, const char *app,
                         struct kn_platform_call *call)
{
    struct op *op = kn_calloc(1, sizeof(*op));

    op->lp = lp;
    op->kind = kind;
    op->app = kn_strdup(app);
    op->call = call;
    op->timer = kn_calloc(1, sizeof(*op->timer));
    uv_timer_init(lp->loop, op->timer);
    op->timer->data = op;
    return op;
}

/* An op on the app of the call: its key, or (with `fresh`) the key a new app gets. NULL when the
 * platform does not know the app and fresh is 0. */
static struct op *op_for(struct local *lp, enum op_kind kind, struct kn_platform_call *call,
                         int fresh)
{
    const struct kn_app_id *id = kn_platform_call_id(call);
    struct lapp *a = lapp_of(lp, id);
    struct op *op;
    char *key;

    if (a) {
        return op_new(lp, kind, a->name, call);
    }
    key = fresh ? key_new(lp, id) : kn_strdup(id->app);
    op = op_new(lp, kind, key, call);
    op->repository = kn_strdup(id->repository);
    op->app_name = kn_strdup(id->app);
    free(key);
    if (!fresh) {
        /* unknown here: the steps find no app under a key no app has */
        free(op->app);
        op->app = kn_strdup("");
    }
    return op;
}

static int local_apply(void *self, struct kn_platform_call *call,
                       const struct kn_variant_spec *spec)
{
    struct local *lp = self;
    const struct kn_app_id *id = kn_platform_call_id(call);
    struct op *op;
    char error[256];
    struct service svc;

    if (service_from(&svc, spec->manifests, error, sizeof(error)) < 0) {
        kn_log_error(lp->who, "repository=%s app=%s %s", id->repository, id->app, error);
        return KN_EINVAL;
    }
    op = op_for(lp, OP_APPLY, call, 1);
    if (!kn_haproxy_name_valid(op->app)) {
        service_release(&svc);
        op_free(op);
        return KN_EINVAL;
    }
    op->variant = spec->variant;
    op->svc = svc;
    op->scale = spec->replicas;
    if (spec->ready_timeout_ms > 0) {
        op->deadline = (long long)uv_now(lp->loop) + spec->ready_timeout_ms;
    }
    snprintf(op->commit, sizeof(op->commit), "%s", spec->commit ? spec->commit : "");
    op_start(lp, op);
    return 0;
}

static int local_remove(void *self, struct kn_platform_call *call, enum kn_variant v)
{
    struct local *lp = self;
    struct op *op = op_for(lp, OP_REMOVE, call, 0);

    op->variant = v;
    op_start(lp, op);
    return 0;
}

/* What a route says, for the log and drift ("header x-canary = always"). */
static char *route_desc(const struct kn_route_match *m)
{
    return kn_asprintf("%s %s %s %s", m->field == KN_ROUTE_COOKIE ? "cookie" : "header", m->name,
                       m->regex ? "~" : "=", m->value);
}

static int local_set_routes(void *self, struct kn_platform_call *call,
                            const double percent[KN_VARIANT_COUNT],
                            const struct kn_routes *routes)
{
    struct local *lp = self;
    struct op *op;
    char **keys;
    char **descs;
    struct kn_error err;

    if (routes->mirror > 0) {
        return KN_EUNSUPPORTED; /* HAProxy 2.6 mirrors only through SPOE */
    }
    keys = kn_calloc(routes->nmatches + 1, sizeof(*keys));
    descs = kn_calloc(routes->nmatches + 1, sizeof(*descs));
    for (size_t i = 0; i < routes->nmatches; i++) {
        if (kn_haproxy_route_regex(&keys[i], &routes->matches[i], &err) < 0) {
            kn_log_error(lp->who, "%s", err.msg);
            strv_free(keys, i);
            strv_free(descs, i);
            return KN_EINVAL;
        }
        descs[i] = route_desc(&routes->matches[i]);
    }
    op = op_for(lp, OP_ROUTES, call, 0);
    memcpy(op->percent, percent, sizeof(op->percent));
    op->route_keys = keys;
    op->route_descs = descs;
    op->nroutes = routes->nmatches;
    op_start(lp, op);
    return 0;
}

static int local_set_weights(void *self, struct kn_platform_call *call,
                             const double percent[KN_VARIANT_COUNT])
{
    struct local *lp = self;
    struct op *op = op_for(lp, OP_WEIGHTS, call, 0);

    memcpy(op->percent, percent, sizeof(op->percent));
    op_start(lp, op);
    return 0;
}

/* Every server of the app from the last reading, beside the weight kanaria set on it, as
 * resources with their drift lines. */
static void live_servers(const struct lapp *a, struct kn_live_state *out)
{
    const char **names = kn_calloc(a->ninsts + 1, sizeof(*names));
    int *expected = kn_calloc(a->ninsts + 1, sizeof(*expected));
    size_t max = a->ninsts + a->nseen_servers + 1;
    struct kn_haproxy_live_server *srv = kn_calloc(max, sizeof(*srv));
    int w[KN_VARIANT_COUNT] = {0};
    size_t n;

    weights_of(a, w);
    for (size_t i = 0; i < a->ninsts; i++) {
        names[i] = a->insts[i].name;
        expected[i] = w[a->insts[i].variant];
    }
    n = kn_haproxy_live_servers(srv, max, names, expected, a->ninsts, a->seen_servers,
                                a->nseen_servers);
    for (size_t i = 0; i < n && i < max; i++) {
        const struct kn_haproxy_live_server *s = &srv[i];
        char status[64], drift[256];
        snprintf(status, sizeof(status), "%s, weight %d", s->state, s->weight);
        kn_haproxy_server_drift(s, drift, sizeof(drift));
        kn_live_state_add(out, "server", s->name, status, drift[0] ? drift : NULL);
    }
    free(srv);
    free(names);
    free(expected);
}

static void cancel_stopped(int status, void *data)
{
    (void)status;
    start_settled(data);
}

/*
 * The front end cancelled the operation (a stage timed out, a rollback follows, a deadline
 * passed); see the top for what stops where. One waiting for the HAProxy lock leaves the wait
 * now and ends from the loop. An apply that is starting instances stops them: their start
 * callbacks and stops settle the step, and the apply then ends. One sending commands stops at
 * the reply in flight (cmd_done).
 */
static void local_cancel(void *self, struct kn_platform_call *call)
{
    struct local *lp = self;
    struct op *op = lp->ops;

    while (op && op->call != call) {
        op = op->next;
    }
    if (!op || op->cancelled) {
        return;
    }
    op->cancelled = 1;
    op->end_status = KN_ECANCELLED;
    if (op->lock_want != LOCK_NONE) {
        lock_unwait(op);
        uv_timer_start(op->timer, abort_deferred, 0, 0);
        return;
    }
    if (op->kind != OP_APPLY || op->step != 2) {
        return;
    }
    if (!op->failed) {
        op->failed = 1;
        snprintf(op->error, sizeof(op->error), "cancelled while its instances started");
    }
    kn_log_info(lp->who, "app=%s stopping the %s instances being started: cancelled", op->app,
                kn_variant_name(op->variant));
    for (size_t i = 0; i < op->nfresh; i++) {
        op->pending++;
        if (kn_proc_stop(lp->sup, op->app, kn_variant_name(op->variant), op->fresh[i].index,
                         cancel_stopped, op) < 0) {
            op->pending--;
        }
    }
}

/* The app's routes beside what HAProxy's route map holds: a route kanaria set that is not
 * there, and an entry kanaria did not set (a stray route: it sends requests to the canary). */
static void live_routes(const struct lapp *a, struct kn_live_state *out)
{
    for (size_t i = 0; i < a->nroutes; i++) {
        int seen = !a->routes_observed;
        char name[48];
        for (size_t j = 0; !seen && j < a->nseen_routes; j++) {
            seen = strcmp(a->seen_routes[j], a->route_keys[i]) == 0;
        }
        snprintf(name, sizeof(name), "canary-route-%zu", i + 1);
        kn_live_state_add(out, "route", name, a->route_descs[i],
                          seen ? NULL : "missing from haproxy's route map");
    }
    for (size_t j = 0; a->routes_observed && j < a->nseen_routes; j++) {
        int known = 0;
        char drift[160];
        for (size_t i = 0; !known && i < a->nroutes; i++) {
            known = strcmp(a->seen_routes[j], a->route_keys[i]) == 0;
        }
        if (!known) {
            snprintf(drift, sizeof(drift), "stray route to the canary, kanaria set %s",
                     a->nroutes ? "other routes" : "none");
            kn_live_state_add(out, "route", "stray", a->seen_routes[j], drift);
        }
    }
}

/* What runs, from the supervisor and the last reading of HAProxy (every OBSERVE_MS): cheap. */
static int local_observe(void *self, struct kn_platform_call *call,
                         const struct kn_desired *desired)
{
    struct local *lp = self;
    struct lapp *a = lapp_of(lp, kn_platform_call_id(call));
    struct kn_live_state *out = kn_platform_call_live(call);
    struct kn_instance_info *infos = NULL;
    size_t n = 0;

    (void)desired; /* the weights kanaria set are its own record (a->percent) */
    if (!a) {
        kn_platform_call_done(call, KN_ENOTFOUND, "the app does not run on platform '%s'",
                              lp->name);
        return 0;
    }
    kn_proc_list(lp->sup, a->name, &infos, &n);
    for (size_t i = 0; i < n; i++) {
        enum kn_variant v = strcmp(infos[i].variant, "canary") == 0     ? KN_VARIANT_CANARY
                            : strcmp(infos[i].variant, "baseline") == 0 ? KN_VARIANT_BASELINE
                                                                        : KN_VARIANT_PRIMARY;
        out->variant[v].instances += infos[i].pid > 0;
        out->variant[v].healthy += infos[i].healthy;
    }
    kn_proc_list_free(infos, n);
    for (size_t i = 0; i < a->ninsts; i++) {
        snprintf(out->variant[a->insts[i].variant].commit,
                 sizeof(out->variant[0].commit), "%s", a->insts[i].commit);
    }
    for (int v = 0; v < KN_VARIANT_COUNT; v++) {
        out->variant[v].weight = a->observed ? a->seen[v] : a->percent[v];
    }
    if (a->observed) {
        live_servers(a, out);
    }
    live_routes(a, out);
    if (a->seen_error[0]) {
        out->error = kn_strdup(a->seen_error);
    }
    kn_platform_call_done(call, 0, NULL);
    return 0;
}

/* The placeholders of analysis queries (local_placeholders in local.c): what HAProxy's exporter
 * labels the app's servers with, `proxy` the backend (the app's key) and `server` the instance's
 * name (server_prefix and its number); and the address of one of the variant's instances. */
static void local_template_vars(void *self, const struct kn_app_id *id, enum kn_variant v,
                                struct kn_strmap *out)
{
    struct local *lp = self;
    struct lapp *a = lapp_of(lp, id);
    char *key = a ? kn_strdup(a->name) : key_new(lp, id);

    char url[64] = "";
    int n = a ? count_of(a, v) : 0;

    /* {{variant_url}}: the variant's instances in turn, one per probe */
    for (size_t i = 0, k = 0; n > 0 && i < a->ninsts; i++) {
        if (a->insts[i].variant == v && k++ == a->probes % (unsigned)n) {
            snprintf(url, sizeof(url), "http://127.0.0.1:%d", a->insts[i].port);
            a->probes++;
            break;
        }
    }
    kn_platform_vars_set(out, "backend", key);
    kn_platform_vars_set(out, "server", server_prefix(v));
    kn_platform_vars_set(out, "variant_url", url);
    free(key);
}

static void local_release(struct local *lp)
{
    if (lp->sup) {
        kn_proc_supervisor_close(lp->sup);
    }
    for (size_t i = 0; i < lp->napps; i++) {
        lapp_free(lp->apps[i]);
    }
    free(lp->apps);
    free(lp->name);
    free(lp->dir);
    free(lp->socket);
    free(lp->binary);
    free(lp->cfg_path);
    free(lp->pid_path);
    free(lp->metrics_bind);
    free(lp);
}

static void release_if_idle(struct local *lp)
{
    if (lp->closing && !lp->holding && !lp->ops && !lp->reading) {
        local_release(lp);
    }
}

/*
 * Let go of the platform (the apps keep running). Operations waiting for the HAProxy lock end
 * at once; the others end when their step in flight comes back (a start in progress comes back
 * at once: closing the supervisor ends it; a command within CMD_TIMEOUT_MS), and the platform
 * is freed after the last of them and after a reading of HAProxy in flight.
 */
static void local_free(void *self)
{
    struct local *lp = self;
    struct kn_proc_supervisor *sup;

    if (!lp) {
        return;
    }
    lp->closing = 1;
    lp->holding = 1;
    if (lp->observe) {
        uv_close((uv_handle_t *)lp->observe, wait_closed);
        lp->observe = NULL;
    }
    while (lp->lock_head) {
        op_end(lp->lock_head, KN_ECANCELLED, "kanaria is stopping");
    }
    lp->holding = 0;
    sup = lp->sup;
    lp->sup = NULL;
    if (!lp->ops && !lp->reading) {
        lp->sup = sup;
        local_release(lp);
        return;
    }
    /* its pending callbacks end the running operations; the last frees the platform */
    kn_proc_supervisor_close(sup);
}

/* ---- removing a whole app ------------------------------------------------------------------ */

static void remove_app_poll(uv_timer_t *t);

/* The managed HAProxy was reloaded without the app: done once it no longer knows its backend
 * (a reload that HAProxy's master lost is sent again every 2s, for at most RELOAD_WAIT_MS). */
static void remove_app_probe_done(int status, const char *text, void *data)
{
    struct op *op = data;
    struct kn_error err;
    /* kn_haproxy_command classifies the reply: HAProxy's own words say the backend is gone */
    int gone = status != 0 && text && strstr(text, "Can't find backend");

    if (op->lp->closing || gone || op->waited >= RELOAD_WAIT_MS) {
        uv_close((uv_handle_t *)op->wait, wait_closed);
        op->wait = NULL;
        if (op->lp->closing) {
            op_end(op, KN_ECANCELLED, "kanaria is stopping");
        } else if (!gone) {
            op_fail(op, KN_EIO, "haproxy still serves app '%s' %llds after a reload", op->app,
                    (long long)RELOAD_WAIT_MS / 1000);
        } else {
            kn_log_info(op->lp->who, "app=%s removed: instances, frontend and backend", op->app);
            op_end(op, 0, NULL);
        }
        return;
    }
    if (op->waited % 2000 == 0) {
        kn_haproxy_reload(op->lp->pid_path, &err);
    }
    uv_timer_start(op->wait, remove_app_poll, 200, 0);
}

static void remove_app_poll(uv_timer_t *t)
{
    struct op *op = t->data;
    char *cmd = NULL;
    struct kn_error err;

    op->waited += 200;
    kn_haproxy_cmd_show_servers_state(&cmd, op->app, &err);
    if (kn_haproxy_command(op->lp->loop, op->lp->socket, cmd, CMD_TIMEOUT_MS, remove_app_probe_done,
                           op) < 0) {
        remove_app_probe_done(KN_EIO, "", op);
    }
    free(cmd);
}

/* The app out of the platform's record. */
static void remove_app_forget(struct op *op)
{
    struct local *lp = op->lp;
    struct lapp *a = find_app(lp, op->app);
    size_t i;

    if (!a) {
        return;
    }
    for (i = 0; i < lp->napps && lp->apps[i] != a; i++) {
    }
    memmove(&lp->apps[i], &lp->apps[i + 1], (lp->napps - i - 1) * sizeof(*lp->apps));
    lp->napps--;
    lapp_free(a);
    save_state(lp);
}

/* Holding the lock alone: the app forgotten and the managed HAProxy reloaded without it; the
 * lock is held until HAProxy no longer serves it. */
static void remove_app_reload(struct op *op)
{
    struct local *lp = op->lp;
    struct kn_error err;

    remove_app_forget(op);
    kn_error_clear(&err);
    if (haproxy_refresh(lp, &err) < 0) {
        op_fail(op, KN_EIO, "%s", err.msg);
        return;
    }
    op->step = 3;
    op->wait = kn_calloc(1, sizeof(*op->wait));
    uv_timer_init(lp->loop, op->wait);
    op->wait->data = op;
    uv_timer_start(op->wait, remove_app_poll, 200, 0);
}

/* Every server of the app out of HAProxy, every instance stopped, then the app forgotten and the
 * managed HAProxy reloaded without its frontend and backend. An external HAProxy keeps its own
 * frontend: kanaria only takes its servers out. */
static void remove_app_next(struct op *op)
{
    struct local *lp = op->lp;
    struct lapp *a = find_app(lp, op->app);
    size_t i;

    if (!a && op->step < 2) {
        op_end(op, 0, NULL); /* nothing of it runs here */
        return;
    }
    switch (op->step) {
    case 0:
        for (int v = 0; v < KN_VARIANT_COUNT; v++) {
            queue_removal(op, a, (enum kn_variant)v);
        }
        send_cmds(op);
        return;
    case 1:
        op->pending = 1;
        for (i = 0; i < a->ninsts; i++) {
            op->pending++;
            if (kn_proc_stop(lp->sup, a->name, kn_variant_name(a->insts[i].variant),
                             a->insts[i].index, stopped_one, op) < 0) {
                op->pending--;
            }
        }
        a->ninsts = 0;
        stopped_one(0, op);
        return;
    case 2:
        if (!lp->managed) {
            remove_app_forget(op);
            op_end(op, 0, NULL);
            return;
        }
        lock_take(op, LOCK_ALONE, remove_app_reload, 0);
        return;
    default:
        op_end(op, 0, NULL);
        return;
    }
}

static int local_remove_app(void *self, struct kn_platform_call *call)
{
    struct local *lp = self;
    struct op *op = op_for(lp, OP_REMOVE, call, 0);

    op->variant = KN_VARIANT_COUNT; /* every variant, and the app itself */
    op_start(lp, op);
    return 0;
}

const struct kn_platform_provider_ops kn_local_ops = {
    .apply = local_apply,
    .remove = local_remove,
    .set_weights = local_set_weights,
    .set_routes = local_set_routes,
    .remove_app = local_remove_app,
    .observe = local_observe,
    .cancel = local_cancel,
    .template_vars = local_template_vars,
    .destroy = local_free,
};

/* 1 when the managed config on disk routes by route map (or cannot be read: nothing to do). */
static int config_has_routes(const struct local *lp)
{
    FILE *f = fopen(lp->cfg_path, "r");
    char line[512];
    int found = 0;

    if (!f) {
        return 1;
    }
    while (!found && fgets(line, sizeof(line), f)) {
        found = strstr(line, "acl kn_route ") != NULL;
    }
    fclose(f);
    return found;
}

static int make_dir(const char *path)
{
    char *p = kn_strdup(path);
    int rc = 0;

    for (char *s = p + 1; *s; s++) {
        if (*s == '/') {
            *s = '\0';
            mkdir(p, 0755);
            *s = '/';
        }
    }
    if (mkdir(p, 0755) < 0 && errno != EEXIST) {
        rc = KN_EIO;
    }
    free(p);
    return rc;
}

static void stray_stopped(int status, void *data)
{
    (void)status;
    (void)data;
}

/*
 * After a kill -9, instances may run that the state does not list: started by an operation that
 * never finished, so not in HAProxy. They are stopped (the operation, resumed, starts its own),
 * and no index of a running instance is used again.
 */
static void settle_adopted(struct local *lp)
{
    struct kn_instance_info *infos = NULL;
    size_t n = 0;

    kn_proc_list(lp->sup, NULL, &infos, &n);
    for (size_t i = 0; i < n; i++) {
        struct lapp *a = find_app(lp, infos[i].app);
        int listed = 0;
        for (size_t j = 0; a && j < a->ninsts; j++) {
            listed |= a->insts[j].index == infos[i].index &&
                      strcmp(kn_variant_name(a->insts[j].variant), infos[i].variant) == 0;
        }
        if (a && a->next_index <= infos[i].index) {
            a->next_index = infos[i].index + 1;
        }
        if (listed) {
            continue;
        }
        kn_log_warn(lp->who, "app=%s stopping %s-%u (pid %d): an operation that did not finish "
                    "started it", infos[i].app, infos[i].variant, infos[i].index, infos[i].pid);
        kn_proc_stop(lp->sup, infos[i].app, infos[i].variant, infos[i].index, stray_stopped, NULL);
    }
    kn_proc_list_free(infos, n);
}

int kn_local_create(void **out, const struct kn_platform_env *env, const void *config,
                    struct kn_error *err)
{
    const struct kn_local_config *lc = config; /* parsed by kn_local_config_schema */
    struct local *lp;
    uv_loop_t *loop = env->loop;
    struct kn_http_client *http = env->http;
    const char *data_dir = env->data_dir;
    size_t adopted = 0;
    int known;
    int rc;

    if (!lc) {
        return kn_error_set(err, KN_EINVAL, NULL, "platform '%s': no local options", env->name);
    }
    lp = kn_calloc(1, sizeof(*lp));
    lp->name = kn_strdup(env->name);
    lp->loop = loop;
    lp->http = http;
    lp->dir = kn_asprintf("%s/local/%s", data_dir, env->name);
    lp->managed = lc->haproxy.managed;
    lp->socket = lc->haproxy.socket ? kn_strdup(lc->haproxy.socket)
                                     : kn_asprintf("%s/haproxy.sock", lp->dir);
    lp->binary = kn_strdup(lc->haproxy.binary ? lc->haproxy.binary : KN_HAPROXY_BINARY);
    lp->cfg_path = kn_asprintf("%s/haproxy.cfg", lp->dir);
    lp->pid_path = kn_asprintf("%s/haproxy.pid", lp->dir);
    lp->metrics_bind = lc->haproxy.metrics_bind ? kn_strdup(lc->haproxy.metrics_bind) : NULL;
    snprintf(lp->who, sizeof(lp->who), "platform=%s", env->name);
    if (make_dir(lp->dir) < 0) {
        rc = kn_error_set(err, KN_EIO, NULL, "cannot create %s: %s", lp->dir, strerror(errno));
        goto fail;
    }
    if ((rc = kn_proc_supervisor_new(&lp->sup, loop, lp->dir, (int)lc->ports.min,
                                     (int)lc->ports.max, http)) < 0) {
        kn_error_set(err, rc, NULL, "cannot supervise processes in %s", lp->dir);
        goto fail;
    }
    known = load_state(lp) == 0;
    kn_proc_adopt_all(lp->sup, &adopted);
    if (known) {
        /* what an unfinished operation started and the state does not list never took traffic */
        settle_adopted(lp);
    }
    if (lp->managed && lp->napps > 0 && kn_haproxy_running(lp->pid_path, err) != 1) {
        /* HAProxy is gone (a reboot): start it with what still runs */
        if ((rc = haproxy_preflight(lp, NULL, NULL, err)) < 0 ||
            (rc = haproxy_refresh(lp, err)) < 0) {
            goto fail;
        }
    }
    if (lp->managed && lp->napps > 0 && !config_has_routes(lp) &&
        kn_haproxy_running(lp->pid_path, err) == 1) {
        /* a HAProxy started by a kanaria before routes: its frontends get their route map
         * (one reload, with every server kanaria knows) */
        kn_log_info(lp->who, "reloading haproxy: its configuration has no route maps yet");
        if (haproxy_refresh(lp, err) < 0) {
            kn_log_error(lp->who, "%s", err->msg);
        }
    }
    lp->observe = kn_calloc(1, sizeof(*lp->observe));
    uv_timer_init(loop, lp->observe);
    lp->observe->data = lp;
    uv_timer_start(lp->observe, observe_tick, OBSERVE_MS, OBSERVE_MS);
    uv_unref((uv_handle_t *)lp->observe);
    kn_log_info(lp->who, "local platform in %s: %zu apps, %zu instances adopted", lp->dir,
                lp->napps, adopted);
    *out = lp;
    return 0;
fail:
    local_free(lp);
    return rc;
}
