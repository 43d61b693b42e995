/*
 * Detection: discover the apps at the new head, decide which the change touches (a tree diff
 * from each app's baseline commit through its trigger globs), and plan those against what was
 * last deployed.
 */
#include "detect.h"

#include <stdlib.h>
#include <string.h>

#include "kanaria/alloc.h"
#include "kanaria/validate.h"
#include "platforms/local/local_service.h"

/* Changed paths from one baseline, shared by the apps that have it. */
struct changes_cache {
    git_oid from;
    struct kn_strlist paths;
    int failed;
};

/* A frontend.bind an app of this commit declares, and where (copied: the app is freed). */
struct bind_claim {
    char *bind;     /* NULL: given up to a deployed app */
    char *platform;
    char *file;
    struct kn_loc loc;
    int port;       /* compared first: thousands of apps make thousands of claims */
    size_t app;     /* index in apps */
    int deployed;
};

struct detect_ctx {
    struct kn_detect_app *apps; /* out->apps, for a claim an earlier app loses */
    struct bind_claim *claims;
    size_t nclaims;
    const struct kn_detect_input *in;
    struct kn_source *head_src;
    const char *message; /* the head's commit message: the planner reads its overrides */
    struct changes_cache *cache;
    size_t ncache;
};

static void strlist_free(struct kn_strlist *l)
{
    for (size_t i = 0; i < l->count; i++) {
        free(l->items[i]);
    }
    free(l->items);
    memset(l, 0, sizeof(*l));
}

static const struct kn_detect_known *known_app(const struct kn_detect_input *in,
                                               const char *name)
{
    for (size_t i = 0; i < in->nknown; i++) {
        if (strcmp(in->known[i].name, name) == 0) {
            return &in->known[i];
        }
    }
    return NULL;
}

/* The paths changed since `baseline`; NULL when that cannot be told (touch everything). */
static const struct kn_strlist *changes_since(struct detect_ctx *dc, const char *baseline)
{
    git_oid from;
    struct changes_cache *c;
    struct kn_error err;

    if (git_oid_fromstr(&from, baseline) != 0) {
        return NULL;
    }
    for (size_t i = 0; i < dc->ncache; i++) {
        if (git_oid_equal(&dc->cache[i].from, &from)) {
            return dc->cache[i].failed ? NULL : &dc->cache[i].paths;
        }
    }
    dc->cache = kn_reallocarray(dc->cache, dc->ncache + 1, sizeof(*dc->cache));
    c = &dc->cache[dc->ncache++];
    memset(c, 0, sizeof(*c));
    git_oid_cpy(&c->from, &from);
    /* a baseline gone from the repository (garbage-collected after a force-push) */
    c->failed = kn_git_changed_paths(dc->in->repo, &from, &dc->in->head, &c->paths, &err) < 0;
    return c->failed ? NULL : &c->paths;
}

static char *join_diags(const struct kn_diags *d)
{
    struct kn_buf b;
    char line[2048];

    kn_buf_init(&b, KN_BUF_UNBOUNDED);
    for (size_t i = 0; i < d->count; i++) {
        kn_buf_addf(&b, "%s%s", i ? "\n" : "", kn_diag_format(&d->items[i], line, sizeof(line)));
    }
    if (d->dropped) {
        kn_buf_addf(&b, "\n... and %zu more", d->dropped);
    }
    return kn_buf_detach(&b, NULL);
}

/* The manifests of the app at its last successful commit, or NULL. *keep holds them. */
static const json_t *deployed_manifests(struct detect_ctx *dc, const char *commit,
                                        const char *path, struct kn_app **keep)
{
    git_oid oid;
    struct kn_source *src = NULL;
    struct kn_error err;

    *keep = NULL;
    if (!commit || git_oid_fromstr(&oid, commit) != 0 ||
        kn_git_tree_source_new(&src, dc->in->repo, &oid, &err) < 0) {
        return NULL;
    }
    kn_validate_app_load(keep, src, path, dc->in->config);
    kn_source_free(src);
    if ((*keep)->diags.count > 0) {
        kn_app_free(*keep);
        *keep = NULL;
        return NULL;
    }
    return (*keep)->manifests;
}

static void bind_refuse(struct kn_detect_app *a, const struct kn_loc *loc, const char *bind,
                        const char *owner, const char *owner_path, const char *platform)
{
    struct kn_diags d;

    kn_diags_init(&d, 0);
    kn_diags_add(&d, loc, "frontend.bind %s is already used by app '%s' (%s) on platform '%s'",
                 bind, owner, owner_path, platform);
    free(a->errors);
    a->errors = join_diags(&d);
    kn_diags_release(&d);
    if (a->planned) {
        kn_plan_release(&a->plan);
    }
    free(a->plan_json);
    a->plan_json = NULL;
    a->planned = 0;
    a->touched = 0;
}

/*
 * Two apps of one platform on one frontend.bind would split its connections (validate reports
 * it the same way). The app that has been deployed keeps it; between two that have not, or two
 * that have, the first in path order. 1 when app `idx` loses (its errors say why).
 */
static int claim_bind(struct detect_ctx *dc, const struct kn_app *app, size_t idx, int deployed)
{
    const char *platform = app->cfg.spec.platform ? app->cfg.spec.platform : "local";
    struct kn_loc loc;
    const char *bind = kn_local_service_bind(app, &loc);
    struct bind_claim *c;
    char host[256];
    int port;

    if (!bind || kn_hostport_parse(bind, host, sizeof(host), &port) < 0) {
        return 0;
    }
    for (size_t i = 0; i < dc->nclaims; i++) {
        c = &dc->claims[i];
        if (!c->bind || c->port != port || strcmp(c->platform, platform) != 0 ||
            !kn_local_service_binds_overlap(c->bind, bind)) {
            continue;
        }
        if (!deployed || c->deployed) {
            bind_refuse(&dc->apps[idx], &loc, bind, dc->apps[c->app].name,
                        dc->apps[c->app].path, platform);
            return 1;
        }
        bind_refuse(&dc->apps[c->app], &c->loc, c->bind, app->name, app->config_path, platform);
        free(c->bind);
        c->bind = NULL;
    }
    dc->claims = kn_reallocarray(dc->claims, dc->nclaims + 1, sizeof(*dc->claims));
    c = &dc->claims[dc->nclaims++];
    c->bind = kn_strdup(bind);
    c->platform = kn_strdup(platform);
    c->file = kn_strdup(loc.file ? loc.file : app->config_path);
    c->loc = loc;
    c->loc.file = c->file;
    c->port = port;
    c->app = idx;
    c->deployed = deployed;
    return 0;
}

static void detect_app(struct detect_ctx *dc, const char *path, struct kn_detect_app *out)
{
    const struct kn_detect_input *in = dc->in;
    struct kn_app *app = NULL;
    struct kn_app *old = NULL;
    const struct kn_detect_known *known;
    const char *baseline, *deployed;
    char head_hex[GIT_OID_HEXSZ + 1];

    memset(out, 0, sizeof(*out));
    out->path = kn_strdup(path);
    kn_validate_app_load(&app, dc->head_src, path, in->config);
    out->name = kn_strdup(app->name);
    if (app->diags.count > 0) {
        out->errors = join_diags(&app->diags);
        goto out;
    }
    git_oid_tostr(head_hex, sizeof(head_hex), &in->head);
    known = known_app(in, app->name);
    baseline = known ? known->baseline : in->fallback_baseline;
    deployed = known ? known->deployed : in->fallback_deployed;
    if (claim_bind(dc, app, (size_t)(out - dc->apps), deployed != NULL)) {
        goto out;
    }
    if (!baseline) {
        out->touched = 1;
    } else if (strcmp(baseline, head_hex) == 0) {
        out->touched = 0;
    } else {
        out->touched = kn_app_touched(app, changes_since(dc, baseline));
    }
    if (out->touched) {
        struct kn_plan_input pin = {
            .app = app,
            .deployed = deployed_manifests(dc, deployed, path, &old),
            .commit_message = dc->message,
        };
        json_t *j;
        out->planned = 1;
        kn_plan_app(&out->plan, &pin);
        j = json_pack("{s:s, s:s, s:o, s:s}", "strategy",
                      kn_plan_strategy_name(out->plan.strategy), "summary", out->plan.summary,
                      "diff", kn_diff_to_json(&out->plan.diff), "manifestsHash", app->hash);
        out->plan_json = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
        json_decref(j);
    }
out:
    kn_app_free(old);
    kn_app_free(app);
}

/* An app whose folder shares its name with another app's is invalid, both of them, as `kanaria
 * validate` says: neither is planned, so what runs under that name stays as it is. */
static void check_unique_names(struct kn_detect *out)
{
    struct kn_app_ref *refs = kn_calloc(out->napps ? out->napps : 1, sizeof(*refs));
    struct kn_diags *diags = kn_calloc(out->napps ? out->napps : 1, sizeof(*diags));

    for (size_t i = 0; i < out->napps; i++) {
        kn_diags_init(&diags[i], 0);
        refs[i].name = out->apps[i].name;
        refs[i].config_path = out->apps[i].path;
        refs[i].diags = &diags[i];
    }
    kn_app_check_unique_names(refs, out->napps);
    for (size_t i = 0; i < out->napps; i++) {
        struct kn_detect_app *a = &out->apps[i];
        char *more, *all;
        if (diags[i].count == 0) {
            kn_diags_release(&diags[i]);
            continue;
        }
        more = join_diags(&diags[i]);
        all = a->errors ? kn_asprintf("%s\n%s", a->errors, more) : kn_strdup(more);
        free(more);
        free(a->errors);
        a->errors = all;
        if (a->planned) {
            kn_plan_release(&a->plan);
            free(a->plan_json);
            a->plan_json = NULL;
            a->planned = 0;
        }
        kn_diags_release(&diags[i]);
    }
    free(diags);
    free(refs);
}

static int name_order(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Whether the config of the app at its last successful commit asks to be pruned. */
static int wants_prune(struct detect_ctx *dc, const struct kn_detect_known *k)
{
    struct kn_app *app = NULL;
    int prune;

    if (!k->path) {
        return 0;
    }
    deployed_manifests(dc, k->deployed, k->path, &app);
    prune = app && app->cfg.spec.prune;
    kn_app_free(app);
    return prune;
}

/* Whether a folder of the head has the config at `path`, whatever name it reads as now: a config
 * that does not parse reads as its folder's name, and must not make its app look gone. */
static int path_in_head(const struct kn_detect *out, const char *path)
{
    for (size_t i = 0; path && i < out->napps; i++) {
        if (out->apps[i].path && strcmp(out->apps[i].path, path) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Known apps with deployments that no folder of the head declares (valid or not) any more. */
static void find_gone(struct detect_ctx *dc, struct kn_detect *out)
{
    const struct kn_detect_input *in = dc->in;
    const char **names = kn_calloc(out->napps ? out->napps : 1, sizeof(*names));

    for (size_t i = 0; i < out->napps; i++) {
        names[i] = out->apps[i].name;
    }
    qsort((void *)names, out->napps, sizeof(*names), name_order);
    for (size_t i = 0; i < in->nknown; i++) {
        const struct kn_detect_known *k = &in->known[i];
        struct kn_detect_gone *g;
        if (k->orphaned || (!k->baseline && !k->deployed) ||
            bsearch(&k->name, (void *)names, out->napps, sizeof(*names), name_order) ||
            path_in_head(out, k->path)) {
            continue;
        }
        out->gone = kn_reallocarray(out->gone, out->ngone + 1, sizeof(*out->gone));
        g = &out->gone[out->ngone++];
        g->name = kn_strdup(k->name);
        g->prune = wants_prune(dc, k);
    }
    free((void *)names);
}

int kn_detect_run(struct kn_detect *out, const struct kn_detect_input *in, struct kn_error *err)
{
    struct detect_ctx dc;
    char **paths = NULL;
    size_t npaths = 0;
    int rc;

    memset(out, 0, sizeof(*out));
    memset(&dc, 0, sizeof(dc));
    dc.in = in;
    if ((rc = kn_git_commit_info(in->repo, &in->head, &out->info, err)) < 0 ||
        (rc = kn_git_tree_source_new(&dc.head_src, in->repo, &in->head, err)) < 0) {
        goto out;
    }
    dc.message = out->info.message;
    if (in->prev_head) {
        git_oid prev;
        out->forced = git_oid_fromstr(&prev, in->prev_head) == 0 &&
                      kn_git_is_ancestor(in->repo, &prev, &in->head) != 1;
    }
    for (size_t i = 0; i < in->nopen; i++) {
        git_oid c;
        if (git_oid_fromstr(&c, in->open_commits[i]) == 0 &&
            kn_git_is_ancestor(in->repo, &c, &in->head) != 1) {
            out->stale = kn_reallocarray(out->stale, out->nstale + 1, sizeof(*out->stale));
            out->stale[out->nstale++] = kn_strdup(in->open_commits[i]);
        }
    }
    if ((rc = kn_app_discover(dc.head_src, &paths, &npaths)) < 0) {
        kn_error_set(err, rc, NULL, "listing the apps at %s: %s", out->info.oid,
                     kn_strerror(rc));
        goto out;
    }
    out->apps = kn_calloc(npaths ? npaths : 1, sizeof(*out->apps));
    dc.apps = out->apps;
    for (size_t i = 0; i < npaths; i++) {
        detect_app(&dc, paths[i], &out->apps[out->napps++]);
    }
    check_unique_names(out);
    find_gone(&dc, out);
out:
    for (size_t i = 0; i < npaths; i++) {
        free(paths[i]);
    }
    free(paths);
    for (size_t i = 0; i < dc.ncache; i++) {
        strlist_free(&dc.cache[i].paths);
    }
    free(dc.cache);
    for (size_t i = 0; i < dc.nclaims; i++) {
        free(dc.claims[i].bind);
        free(dc.claims[i].platform);
        free(dc.claims[i].file);
    }
    free(dc.claims);
    kn_source_free(dc.head_src);
    return rc;
}

void kn_detect_release(struct kn_detect *d)
{
    for (size_t i = 0; i < d->napps; i++) {
        struct kn_detect_app *a = &d->apps[i];
        free(a->name);
        free(a->path);
        free(a->errors);
        free(a->plan_json);
        if (a->planned) {
            kn_plan_release(&a->plan);
        }
    }
    free(d->apps);
    for (size_t i = 0; i < d->nstale; i++) {
        free(d->stale[i]);
    }
    free(d->stale);
    for (size_t i = 0; i < d->ngone; i++) {
        free(d->gone[i].name);
    }
    free(d->gone);
    kn_git_commit_info_release(&d->info);
    memset(d, 0, sizeof(*d));
}
