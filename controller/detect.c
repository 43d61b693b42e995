/*
 * Detection: discover the apps at the new head, decide which the change touches (a tree diff
 * from each app's baseline commit through its trigger globs), and plan those against what was
 * last deployed.
 *
 * With a cache (detect.h), the apps come from the cached list moved by the paths changed since
 * the cached head, and an app is loaded only when something it depends on changed: a path in its
 * folder, a path its load read (or a folder above one), or its baseline; or when it read through
 * a symlink (whose target may change under another path). The rest is carried over: the same
 * name, errors and bind claim, and untouched, as a load would find them.
 */
#include "detect.h"

#include <stdint.h>
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

/* An app's frontend.bind and where it is declared (copied: the app is freed). */
struct bind_info {
    char *bind; /* NULL: none */
    char *platform;
    char *file;
    struct kn_loc loc;
    int port;
};

/* A frontend.bind an app of this commit declares. */
struct bind_claim {
    const struct bind_info *b; /* borrowed (the cache's entry); NULL: `owned` */
    struct bind_info owned;    /* without a cache: a copy of the app's */
    size_t app;                /* index in apps */
    int deployed;
    int given_up;              /* to a deployed app */
    uint32_t next;             /* the next claim of the same port, + 1; 0: none */
};

/* Changed paths deeper than this fall back to a full plan: the walk of discovery fails on trees
 * this deep (KN_GIT_WALK_MAX_DEPTH in git/git.c), which a list moved by the changes would miss. */
#define MAX_CHANGED_DEPTH 120

struct cached_app {
    char *path;     /* its config */
    char *name;
    char *errors;   /* of its own load (not the checks across apps); NULL: valid */
    char *baseline; /* the baseline its touch was decided from; NULL: none */
    int untouched;  /* valid, and no change since `baseline` touches it */
    int volatile_;  /* read through a symlink: loaded at every detection */
    int cross;      /* its errors at the cached head were not its own load's alone (a name or
                     * a frontend.bind shared with another app) */
    struct kn_strlist reads; /* the paths outside its folder its load read or tried to, sorted */
    struct bind_info bind;
};

struct kn_detect_cache {
    int valid;
    git_oid head;
    const struct kn_config *config;
    struct cached_app *apps; /* by path */
    size_t napps;
};

/* The head source that notes the paths an app's load reads. */
struct rec_source {
    struct kn_source base;
    struct kn_source *inner;
    struct kn_strlist *reads; /* the app being loaded; NULL: none noted */
};

struct detect_ctx {
    struct kn_detect_app *apps; /* out->apps, for a claim an earlier app loses */
    struct bind_claim *claims;
    size_t nclaims;
    size_t claims_cap;
    const struct kn_detect_input *in;
    struct kn_source *head_src;
    const char *message; /* the head's commit message: the planner reads its overrides */
    struct changes_cache *cache;
    size_t ncache;
    uint32_t *port_first; /* claims by port: index + 1 of the first and last, 0: none */
    uint32_t *port_last;
    const struct kn_detect_known **known_by_name;
    git_tree *head_tree;  /* with a cache: to tell symlinks among the paths read */
    char cached_head[GIT_OID_HEXSZ + 1]; /* the cache's head, when used */
    unsigned char *carried; /* per app of out: carried unloaded, its name and path borrowed */
    struct rec_source rec;
};

static void strlist_free(struct kn_strlist *l)
{
    for (size_t i = 0; i < l->count; i++) {
        free(l->items[i]);
    }
    free(l->items);
    memset(l, 0, sizeof(*l));
}

static int known_order(const void *a, const void *b)
{
    const struct kn_detect_known *const *x = a;
    const struct kn_detect_known *const *y = b;

    return strcmp((*x)->name, (*y)->name);
}

/* Sorted once: thousands of apps would each scan thousands of known ones. */
static void index_known(struct detect_ctx *dc)
{
    const struct kn_detect_input *in = dc->in;

    dc->known_by_name = kn_calloc(in->nknown ? in->nknown : 1, sizeof(*dc->known_by_name));
    for (size_t i = 0; i < in->nknown; i++) {
        dc->known_by_name[i] = &in->known[i];
    }
    qsort((void *)dc->known_by_name, in->nknown, sizeof(*dc->known_by_name), known_order);
}

/* The first known app of that name (stable: as a scan of `known` in order would find). */
static const struct kn_detect_known *known_app(struct detect_ctx *dc, const char *name)
{
    size_t lo = 0, hi = dc->in->nknown;
    const struct kn_detect_known *found = NULL;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(dc->known_by_name[mid]->name, name);
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    for (size_t i = lo; i < dc->in->nknown && strcmp(dc->known_by_name[i]->name, name) == 0;
         i++) {
        if (!found || dc->known_by_name[i] < found) {
            found = dc->known_by_name[i];
        }
    }
    return found;
}

static void strlist_add(struct kn_strlist *l, const char *s)
{
    l->items = kn_reallocarray(l->items, l->count + 1, sizeof(*l->items));
    l->items[l->count++] = kn_strdup(s);
}

static int str_order(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sort and drop duplicates. */
static void strlist_sort(struct kn_strlist *l)
{
    size_t keep = 0;

    if (l->count == 0) {
        return;
    }
    qsort((void *)l->items, l->count, sizeof(*l->items), str_order);
    for (size_t i = 0; i < l->count; i++) {
        if (keep > 0 && strcmp(l->items[keep - 1], l->items[i]) == 0) {
            free(l->items[i]);
        } else {
            l->items[keep++] = l->items[i];
        }
    }
    l->count = keep;
}

/* Whether the sorted list holds the first `n` bytes of s. */
static int strlist_has_n(const struct kn_strlist *l, const char *s, size_t n)
{
    size_t lo = 0, hi = l->count;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const char *item = l->items[mid];
        int c = strncmp(item, s, n);
        if (c == 0 && item[n] != '\0') {
            c = 1;
        }
        if (c == 0) {
            return 1;
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return 0;
}

static int strlist_has(const struct kn_strlist *l, const char *s)
{
    return strlist_has_n(l, s, strlen(s));
}

/* Whether a path of the sorted list lies under folder `dir` ("" is the top: every path). */
static int strlist_has_under(const struct kn_strlist *l, const char *dir, size_t dlen)
{
    size_t lo = 0, hi = l->count;

    if (dlen == 0) {
        return l->count > 0;
    }
    while (lo < hi) { /* the first path not before `dir` */
        size_t mid = lo + (hi - lo) / 2;
        if (strncmp(l->items[mid], dir, dlen) < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    for (; lo < l->count && strncmp(l->items[lo], dir, dlen) == 0; lo++) {
        if (l->items[lo][dlen] == '/') {
            return 1;
        }
    }
    return 0;
}

static void bind_info_release(struct bind_info *b)
{
    free(b->bind);
    free(b->platform);
    free(b->file);
    memset(b, 0, sizeof(*b));
}

static void cached_app_release(struct cached_app *e)
{
    free(e->path);
    free(e->name);
    free(e->errors);
    free(e->baseline);
    strlist_free(&e->reads);
    bind_info_release(&e->bind);
    memset(e, 0, sizeof(*e));
}

static void cache_clear(struct kn_detect_cache *c)
{
    for (size_t i = 0; i < c->napps; i++) {
        cached_app_release(&c->apps[i]);
    }
    free(c->apps);
    c->apps = NULL;
    c->napps = 0;
    c->valid = 0;
    c->config = NULL;
}

struct kn_detect_cache *kn_detect_cache_new(void)
{
    return kn_calloc(1, sizeof(struct kn_detect_cache));
}

void kn_detect_cache_free(struct kn_detect_cache *cache)
{
    if (cache) {
        cache_clear(cache);
        free(cache);
    }
}

/* ---- the recording source ---------------------------------------------------------------- */

static int rec_read(struct kn_source *src, const char *relpath, struct kn_buf *out,
                    struct kn_error *err)
{
    struct rec_source *r = (struct rec_source *)src;

    if (r->reads) {
        strlist_add(r->reads, relpath);
    }
    return r->inner->ops->read(r->inner, relpath, out, err);
}

static int rec_walk(struct kn_source *src, kn_source_walk_cb cb, void *data)
{
    struct rec_source *r = (struct rec_source *)src;

    return r->inner->ops->walk(r->inner, cb, data);
}

static void rec_free(struct kn_source *src)
{
    (void)src; /* lives in the detection's context; the inner source is freed by its owner */
}

static const struct kn_source_ops rec_source_ops = {
    .read = rec_read,
    .walk = rec_walk,
    .free = rec_free,
};

/* Whether `path` or a folder above it is a symlink at the head: what is read there may change
 * under another path, which the changed paths would not name. */
static int through_symlink(git_tree *tree, const char *path)
{
    git_tree_entry *e = NULL;
    char *prefix = kn_strdup(path);
    int link = 0;

    for (char *p = prefix; !link; p++) {
        char c = *p;
        if (c != '/' && c != '\0') {
            continue;
        }
        *p = '\0';
        if (git_tree_entry_bypath(&e, tree, prefix) != 0) {
            break; /* missing from here down: a file created later is a changed path */
        }
        link = git_tree_entry_filemode(e) == GIT_FILEMODE_LINK;
        git_tree_entry_free(e);
        e = NULL;
        if (c == '\0') {
            break;
        }
        *p = c;
    }
    free(prefix);
    return link;
}

/* The paths changed since `baseline`; NULL when that cannot be told (touch everything). */
static int changed_since(struct detect_ctx *dc, const git_oid *from, struct kn_strlist *out);

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
    /* a baseline gone from the repository (garbage-collected after a force-push); with a cache
     * (and the head's tree), by the walk that skips unchanged subtrees, else by libgit2's diff,
     * so that a detection without the cache checks one with it */
    if (dc->head_tree) {
        c->failed = changed_since(dc, &from, &c->paths) < 0;
    } else {
        c->failed = kn_git_changed_paths(dc->in->repo, &from, &dc->in->head, &c->paths,
                                         &err) < 0;
    }
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

/* The app's frontend.bind, copied; b->bind NULL when it declares none that parses. */
static void bind_info_of(struct bind_info *b, const struct kn_app *app)
{
    const char *platform = app->cfg.spec.platform ? app->cfg.spec.platform : "local";
    struct kn_loc loc;
    const char *bind = kn_local_service_bind(app, &loc);
    char host[256];
    int port;

    memset(b, 0, sizeof(*b));
    if (!bind || kn_hostport_parse(bind, host, sizeof(host), &port) < 0 || port < 0 ||
        port > 65535) {
        return;
    }
    b->bind = kn_strdup(bind);
    b->platform = kn_strdup(platform);
    b->file = kn_strdup(loc.file ? loc.file : app->config_path);
    b->loc = loc;
    b->loc.file = b->file;
    b->port = port;
}

/*
 * Two apps of one platform on one frontend.bind would split its connections (validate reports
 * it the same way). The app that has been deployed keeps it; between two that have not, or two
 * that have, the first in path order. 1 when app `idx` (named `name`, config `path`) loses (its
 * errors say why). Claims are chained by port: thousands of apps make thousands of claims. `b`
 * is borrowed until the end of the detection when `own` is 0, else moved into the claim.
 */
static const struct bind_info *claim_info(const struct bind_claim *c)
{
    return c->b ? c->b : &c->owned;
}

static int claim_bind(struct detect_ctx *dc, struct bind_info *b, int own, const char *name,
                      const char *path, size_t idx, int deployed)
{
    struct bind_claim *c;
    int port;

    if (!b->bind) {
        return 0;
    }
    if (!dc->port_first) {
        dc->port_first = kn_calloc(65536, sizeof(*dc->port_first));
        dc->port_last = kn_calloc(65536, sizeof(*dc->port_last));
    }
    for (uint32_t i = dc->port_first[b->port]; i; i = dc->claims[i - 1].next) {
        c = &dc->claims[i - 1];
        const struct bind_info *cb = claim_info(c);
        if (c->given_up || strcmp(cb->platform, b->platform) != 0 ||
            !kn_local_service_binds_overlap(cb->bind, b->bind)) {
            continue;
        }
        if (!deployed || c->deployed) {
            bind_refuse(&dc->apps[idx], &b->loc, b->bind, dc->apps[c->app].name,
                        dc->apps[c->app].path, b->platform);
            if (own) {
                bind_info_release(b);
            }
            return 1;
        }
        bind_refuse(&dc->apps[c->app], &cb->loc, cb->bind, name, path, b->platform);
        c->given_up = 1;
    }
    if (dc->nclaims == dc->claims_cap) {
        dc->claims_cap = dc->claims_cap ? dc->claims_cap * 2 : 64;
        dc->claims = kn_reallocarray(dc->claims, dc->claims_cap, sizeof(*dc->claims));
    }
    port = b->port;
    c = &dc->claims[dc->nclaims++];
    memset(c, 0, sizeof(*c));
    if (own) {
        c->owned = *b;
        memset(b, 0, sizeof(*b));
    } else {
        c->b = b;
    }
    c->app = idx;
    c->deployed = deployed;
    if (dc->port_last[port]) {
        dc->claims[dc->port_last[port] - 1].next = (uint32_t)dc->nclaims;
    } else {
        dc->port_first[port] = (uint32_t)dc->nclaims;
    }
    dc->port_last[port] = (uint32_t)dc->nclaims;
    return 0;
}

/* Of the paths the load of `e` read, keep those outside its folder (a change in the folder
 * loads it anyway); any read through a symlink makes it volatile. */
static void keep_outside_reads(struct detect_ctx *dc, struct cached_app *e)
{
    const char *slash = strrchr(e->path, '/');
    size_t dlen = slash ? (size_t)(slash - e->path) : 0;
    size_t keep = 0;

    strlist_sort(&e->reads);
    for (size_t i = 0; i < e->reads.count; i++) {
        char *r = e->reads.items[i];
        e->volatile_ = e->volatile_ || through_symlink(dc->head_tree, r);
        if (dlen == 0 || (strncmp(r, e->path, dlen) == 0 && r[dlen] == '/')) {
            free(r);
        } else {
            e->reads.items[keep++] = r;
        }
    }
    e->reads.count = keep;
}

/* Load, validate and (when touched) plan the app at `path`; `e` (NULL without a cache) gets
 * what the next detection needs to carry it over. */
static void detect_app(struct detect_ctx *dc, const char *path, struct kn_detect_app *out,
                       struct cached_app *e)
{
    const struct kn_detect_input *in = dc->in;
    struct kn_app *app = NULL;
    struct kn_app *old = NULL;
    const struct kn_detect_known *known;
    const char *baseline, *deployed;
    struct bind_info bind;
    char head_hex[GIT_OID_HEXSZ + 1];

    memset(out, 0, sizeof(*out));
    memset(&bind, 0, sizeof(bind));
    out->path = kn_strdup(path);
    dc->rec.reads = e ? &e->reads : NULL;
    kn_validate_app_load(&app, &dc->rec.base, path, in->config);
    dc->rec.reads = NULL;
    out->name = kn_strdup(app->name);
    if (e) {
        e->path = kn_strdup(path);
        e->name = kn_strdup(app->name);
        keep_outside_reads(dc, e);
    }
    if (app->diags.count > 0) {
        out->errors = join_diags(&app->diags);
        if (e) {
            e->errors = kn_strdup(out->errors);
        }
        goto out;
    }
    git_oid_tostr(head_hex, sizeof(head_hex), &in->head);
    known = known_app(dc, app->name);
    baseline = known ? known->baseline : in->fallback_baseline;
    deployed = known ? known->deployed : in->fallback_deployed;
    bind_info_of(e ? &e->bind : &bind, app);
    if (claim_bind(dc, e ? &e->bind : &bind, !e, app->name, app->config_path,
                   (size_t)(out - dc->apps), deployed != NULL)) {
        goto out;
    }
    if (!baseline) {
        out->touched = 1;
    } else if (strcmp(baseline, head_hex) == 0) {
        out->touched = 0;
    } else {
        out->touched = kn_app_touched(app, changes_since(dc, baseline));
    }
    if (e) {
        e->baseline = baseline ? kn_strdup(baseline) : NULL;
        e->untouched = !out->touched;
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
    bind_info_release(&bind); /* moved into its claim, when it made one */
    kn_app_free(old);
    kn_app_free(app);
}

/*
 * Whether the cached app `e` can be carried over to the head unloaded: nothing in its folder
 * changed, none of the paths its load read (nor a folder above one: a file or symlink now), it
 * read through no symlink, and, when valid, its baseline is the head, or the cached head (the
 * changes since are those checked here), or the one it was proved untouched from at the cached
 * head. Then a load would find the same name, errors and bind, and the changes since its
 * baseline (those to the cached head, which did not touch it, and those since, which do not
 * either) leave it untouched.
 */
static int can_carry(struct detect_ctx *dc, const struct cached_app *e,
                     const struct kn_strlist *changed, const char *head_hex)
{
    const char *slash = strrchr(e->path, '/');
    size_t dlen = slash ? (size_t)(slash - e->path) : 0;
    const struct kn_detect_known *known;
    const char *baseline;

    if (e->volatile_ || strlist_has_under(changed, e->path, dlen)) {
        return 0;
    }
    for (size_t i = 0; i < e->reads.count; i++) {
        const char *r = e->reads.items[i];
        if (strlist_has(changed, r)) {
            return 0;
        }
        for (const char *p = strchr(r, '/'); p; p = strchr(p + 1, '/')) {
            if (strlist_has_n(changed, r, (size_t)(p - r))) {
                return 0;
            }
        }
    }
    if (e->errors) {
        return 1;
    }
    known = known_app(dc, e->name);
    baseline = known ? known->baseline : dc->in->fallback_baseline;
    if (baseline && (strcmp(baseline, head_hex) == 0 || strcmp(baseline, dc->cached_head) == 0)) {
        return 1;
    }
    return e->untouched && baseline && e->baseline && strcmp(baseline, e->baseline) == 0;
}

/* The cached app `e`, unloaded, as out (its name and path borrowed from `ne` until the end of
 * the detection: most carried apps are left out of the result); moved into `ne`, the next
 * cache's entry (proved untouched from its baseline now, by can_carry). */
static void carry_app(struct detect_ctx *dc, struct cached_app *e, struct kn_detect_app *out,
                      struct cached_app *ne)
{
    const struct kn_detect_known *known;
    const char *baseline, *deployed;

    *ne = *e;
    memset(e, 0, sizeof(*e));
    memset(out, 0, sizeof(*out));
    out->path = ne->path;
    out->name = ne->name;
    dc->carried[out - dc->apps] = 1;
    if (ne->errors) {
        out->errors = kn_strdup(ne->errors);
        return;
    }
    known = known_app(dc, ne->name);
    baseline = known ? known->baseline : dc->in->fallback_baseline;
    deployed = known ? known->deployed : dc->in->fallback_deployed;
    if (!baseline || !ne->baseline || strcmp(baseline, ne->baseline) != 0) {
        free(ne->baseline);
        ne->baseline = baseline ? kn_strdup(baseline) : NULL;
    }
    ne->untouched = baseline != NULL;
    claim_bind(dc, &ne->bind, 0, ne->name, ne->path, (size_t)(out - dc->apps), deployed != NULL);
}

/* An app of the result, by name: one sorted index serves the check of names and the search
 * for apps gone. */
struct name_ref {
    const char *name;
    size_t idx;
};

static int name_ref_order(const void *a, const void *b)
{
    const struct name_ref *x = a;
    const struct name_ref *y = b;
    int c = strcmp(x->name, y->name);

    return c ? c : (x->idx > y->idx) - (x->idx < y->idx);
}

static int name_ref_find(const void *key, const void *elem)
{
    return strcmp(key, ((const struct name_ref *)elem)->name);
}

static struct name_ref *names_index(const struct kn_detect *out)
{
    struct name_ref *names = kn_calloc(out->napps ? out->napps : 1, sizeof(*names));

    for (size_t i = 0; i < out->napps; i++) {
        names[i].name = out->apps[i].name;
        names[i].idx = i;
    }
    qsort(names, out->napps, sizeof(*names), name_ref_order);
    return names;
}

static int index_order(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;

    return (x > y) - (x < y);
}

/* An app whose folder shares its name with another app's is invalid, both of them, as `kanaria
 * validate` says: neither is planned, so what runs under that name stays as it is. The check
 * runs on the apps whose name is shared alone (it relates apps of one name only). */
static void check_unique_names(struct kn_detect *out, const struct name_ref *names)
{
    struct kn_app_ref *refs;
    struct kn_diags *diags;
    size_t *dup = NULL, ndup = 0;

    for (size_t i = 0; i + 1 < out->napps; i++) {
        size_t end = i + 1;
        while (end < out->napps && strcmp(names[end].name, names[i].name) == 0) {
            end++;
        }
        if (end - i > 1) {
            dup = kn_reallocarray(dup, ndup + (end - i), sizeof(*dup));
            for (; i < end; i++) {
                dup[ndup++] = names[i].idx;
            }
        }
        i = end - 1;
    }
    if (ndup == 0) {
        return;
    }
    qsort(dup, ndup, sizeof(*dup), index_order); /* in path order, as validate lists them */
    refs = kn_calloc(ndup, sizeof(*refs));
    diags = kn_calloc(ndup, sizeof(*diags));
    for (size_t k = 0; k < ndup; k++) {
        kn_diags_init(&diags[k], 0);
        refs[k].name = out->apps[dup[k]].name;
        refs[k].config_path = out->apps[dup[k]].path;
        refs[k].diags = &diags[k];
    }
    kn_app_check_unique_names(refs, ndup);
    for (size_t k = 0; k < ndup; k++) {
        struct kn_detect_app *a = &out->apps[dup[k]];
        char *more, *all;
        if (diags[k].count == 0) {
            kn_diags_release(&diags[k]);
            continue;
        }
        more = join_diags(&diags[k]);
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
        kn_diags_release(&diags[k]);
    }
    free(diags);
    free(refs);
    free(dup);
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
static void find_gone(struct detect_ctx *dc, struct kn_detect *out, const struct name_ref *names)
{
    const struct kn_detect_input *in = dc->in;

    for (size_t i = 0; i < in->nknown; i++) {
        const struct kn_detect_known *k = &in->known[i];
        struct kn_detect_gone *g;
        if (k->orphaned || (!k->baseline && !k->deployed) ||
            bsearch(k->name, names, out->napps, sizeof(*names), name_ref_find) ||
            path_in_head(out, k->path)) {
            continue;
        }
        out->gone = kn_reallocarray(out->gone, out->ngone + 1, sizeof(*out->gone));
        g = &out->gone[out->ngone++];
        g->name = kn_strdup(k->name);
        g->prune = wants_prune(dc, k);
    }
}

/* ---- the changes since the cache's head ------------------------------------------------- */

/*
 * The files changed between two trees, as kn_git_changed_paths lists them (both sides, no
 * rename detection, submodules at their path), by walking both trees at once and skipping every
 * subtree whose id did not change: a commit that changes one app of thousands reads the trees
 * on the way to it, where libgit2's diff iterates every entry of the folders it passes.
 */
struct tree_diff {
    git_repository *repo;
    struct kn_strlist *out;
    size_t cap;
};

static int is_tree(const git_tree_entry *e)
{
    return git_tree_entry_filemode(e) == GIT_FILEMODE_TREE;
}

/* Git's order of tree entries: by name, a tree's name read with a '/' after it. */
static int entry_order(const git_tree_entry *a, const git_tree_entry *b)
{
    const char *x = git_tree_entry_name(a), *y = git_tree_entry_name(b);
    size_t lx = strlen(x), ly = strlen(y);

    for (size_t i = 0;; i++) {
        int cx = i < lx ? (unsigned char)x[i] : (i == lx && is_tree(a) ? '/' : 0);
        int cy = i < ly ? (unsigned char)y[i] : (i == ly && is_tree(b) ? '/' : 0);
        if (cx != cy || cx == 0) {
            return cx - cy;
        }
    }
}

static void td_add(struct tree_diff *td, const char *prefix, const git_tree_entry *e)
{
    if (td->out->count == td->cap) {
        td->cap = td->cap ? td->cap * 2 : 16;
        td->out->items = kn_reallocarray(td->out->items, td->cap, sizeof(*td->out->items));
    }
    td->out->items[td->out->count++] = kn_asprintf("%s%s", prefix, git_tree_entry_name(e));
}

static int td_trees(struct tree_diff *td, const git_tree *a, const git_tree *b,
                    const char *prefix, int depth);

/* Entry `e` present on one side only (or of another kind): every file under it. */
static int td_one(struct tree_diff *td, const git_tree_entry *e, const char *prefix, int depth)
{
    git_tree *t = NULL;
    char *sub;
    int rc;

    if (!is_tree(e)) {
        td_add(td, prefix, e);
        return 0;
    }
    if (git_tree_lookup(&t, td->repo, git_tree_entry_id(e)) < 0) {
        return -1;
    }
    sub = kn_asprintf("%s%s/", prefix, git_tree_entry_name(e));
    rc = td_trees(td, NULL, t, sub, depth + 1);
    free(sub);
    git_tree_free(t);
    return rc;
}

/* Both trees' entries in step (git keeps them sorted; `git fsck` calls a tree that is not
 * broken); `a` NULL is the empty tree. -1 on a read error or a tree too deep (the caller then
 * plans everything). */
static int td_trees(struct tree_diff *td, const git_tree *a, const git_tree *b,
                    const char *prefix, int depth)
{
    size_t na = a ? git_tree_entrycount(a) : 0, nb = b ? git_tree_entrycount(b) : 0;
    size_t i = 0, j = 0;

    if (depth > MAX_CHANGED_DEPTH) {
        return -1;
    }
    while (i < na || j < nb) {
        const git_tree_entry *x = i < na ? git_tree_entry_byindex(a, i) : NULL;
        const git_tree_entry *y = j < nb ? git_tree_entry_byindex(b, j) : NULL;
        int c;

        if (x && y && is_tree(x) == is_tree(y) &&
            strcmp(git_tree_entry_name(x), git_tree_entry_name(y)) == 0) {
            c = 0; /* the common case: the same entry on both sides */
        } else {
            c = !x ? 1 : !y ? -1 : entry_order(x, y);
        }
        if (c < 0) {
            i++;
            if (td_one(td, x, prefix, depth) < 0) {
                return -1;
            }
        } else if (c > 0) {
            j++;
            if (td_one(td, y, prefix, depth) < 0) {
                return -1;
            }
        } else {
            i++;
            j++;
            if (git_oid_equal(git_tree_entry_id(x), git_tree_entry_id(y)) &&
                git_tree_entry_filemode(x) == git_tree_entry_filemode(y)) {
                continue;
            }
            if (is_tree(x)) {
                git_tree *tx = NULL, *ty = NULL;
                char *sub = kn_asprintf("%s%s/", prefix, git_tree_entry_name(x));
                int rc = git_tree_lookup(&tx, td->repo, git_tree_entry_id(x)) < 0 ||
                                 git_tree_lookup(&ty, td->repo, git_tree_entry_id(y)) < 0
                             ? -1
                             : td_trees(td, tx, ty, sub, depth + 1);
                free(sub);
                git_tree_free(tx);
                git_tree_free(ty);
                if (rc < 0) {
                    return -1;
                }
            } else {
                td_add(td, prefix, x);
            }
        }
    }
    return 0;
}

/* The files changed from commit `from` to the head, sorted and unique; -1 when they cannot be
 * read (a commit gone). */
static int changed_since(struct detect_ctx *dc, const git_oid *from, struct kn_strlist *out)
{
    git_commit *c = NULL;
    git_tree *old = NULL;
    struct tree_diff td = {.repo = dc->in->repo, .out = out};
    int rc = -1;

    memset(out, 0, sizeof(*out));
    if (git_commit_lookup(&c, dc->in->repo, from) < 0 || git_commit_tree(&old, c) < 0) {
        goto out;
    }
    rc = td_trees(&td, old, dc->head_tree, "", 0);
    strlist_sort(out);
out:
    git_tree_free(old);
    git_commit_free(c);
    return rc;
}

/* The paths changed since the cache's head, when the cache may be used: NULL (plan everything)
 * after a failure or with another config, when the cached head is not the head recorded last
 * (prev_head, when given: the apps carried over keep what was recorded then), when the cached
 * head is gone, or when `.kanaria/` (shared by every app) or a path too deep for discovery
 * changed. */
static const struct kn_strlist *changes_since_cache(struct detect_ctx *dc, struct kn_strlist *out)
{
    const struct kn_detect_cache *c = dc->in->cache;
    git_oid prev;

    if (!c || !c->valid || c->config != dc->in->config ||
        (dc->in->prev_head && (git_oid_fromstr(&prev, dc->in->prev_head) < 0 ||
                               !git_oid_equal(&prev, &c->head))) ||
        changed_since(dc, &c->head, out) < 0) {
        return NULL;
    }
    for (size_t i = 0; i < out->count; i++) {
        const char *p = out->items[i];
        int depth = 0;
        for (const char *q = p; *q; q++) {
            depth += *q == '/';
        }
        if (strncmp(p, ".kanaria", 8) == 0 && (p[8] == '/' || p[8] == '\0')) {
            return NULL;
        }
        if (depth >= MAX_CHANGED_DEPTH) {
            return NULL;
        }
    }
    return out;
}

/* Whether the head has an app config at `path` (as discovery's walk would list it). */
static int config_in_head(git_tree *tree, const char *path)
{
    git_tree_entry *e = NULL;
    int found = 0;

    if (git_tree_entry_bypath(&e, tree, path) == 0) {
        git_filemode_t mode = git_tree_entry_filemode(e);
        found = mode == GIT_FILEMODE_BLOB || mode == GIT_FILEMODE_BLOB_EXECUTABLE ||
                mode == GIT_FILEMODE_LINK;
        git_tree_entry_free(e);
    }
    return found;
}

/* The app configs of the head: the cached list, less the configs the change removed, plus those
 * it added; sorted as discovery sorts them. The paths kept are borrowed from the cache (owned[i]
 * 0), the added ones owned. The configs that left the head go to out->removed. */
static void paths_from_cache(struct detect_ctx *dc, const struct kn_strlist *changed,
                             struct kn_detect *out, char ***paths, unsigned char **owned,
                             size_t *npaths)
{
    const struct kn_detect_cache *c = dc->in->cache;
    size_t cap = c->napps + changed->count + 1, n = 0, kept;
    char **items = kn_calloc(cap, sizeof(*items));
    unsigned char *own = kn_calloc(cap, 1);

    for (size_t i = 0; i < c->napps; i++) {
        if (!strlist_has(changed, c->apps[i].path)) {
            items[n++] = c->apps[i].path;
        } else if (!config_in_head(dc->head_tree, c->apps[i].path)) {
            strlist_add(&out->removed, c->apps[i].path);
        }
    }
    kept = n;
    for (size_t i = 0; i < changed->count; i++) {
        const char *p = changed->items[i];
        const char *slash = strrchr(p, '/');
        if (strcmp(slash ? slash + 1 : p, KN_APP_CONFIG_FILE) == 0 &&
            config_in_head(dc->head_tree, p)) {
            own[n] = 1;
            items[n++] = kn_strdup(p);
        }
    }
    if (n > kept) { /* what was kept is in order still; the owned flags go with their paths */
        char **borrowed = kn_calloc(kept ? kept : 1, sizeof(*borrowed));
        memcpy(borrowed, items, kept * sizeof(*borrowed));
        qsort((void *)items, n, sizeof(*items), str_order);
        for (size_t i = 0; i < n; i++) {
            own[i] = !bsearch(&items[i], borrowed, kept, sizeof(*borrowed), str_order);
        }
        free(borrowed);
    }
    *paths = items;
    *owned = own;
    *npaths = n;
}

/* The head's top tree, for the cache's lookups. */
static int head_tree(struct detect_ctx *dc, struct kn_error *err)
{
    git_commit *c = NULL;
    int rc = 0;

    if (git_commit_lookup(&c, dc->in->repo, &dc->in->head) < 0 ||
        git_commit_tree(&dc->head_tree, c) < 0) {
        rc = kn_error_set(err, KN_EIO, NULL, "cannot read the tree of commit %s: %s",
                          git_oid_tostr_s(&dc->in->head), git_error_last() ?
                          git_error_last()->message : "unknown error");
    }
    git_commit_free(c);
    return rc;
}

/*
 * Leave out of the result the carried apps whose errors are those of their own load, now and at
 * the cached head (a shared name or bind changes them): what was recorded for them holds. The
 * others carried get their strings of their own. With a cache, note which apps' errors are not
 * their own load's alone.
 */
static void compact(struct detect_ctx *dc, struct kn_detect *out, struct cached_app *next)
{
    size_t keep = 0;

    for (size_t i = 0; i < out->napps; i++) {
        struct kn_detect_app *a = &out->apps[i];
        const char *own = next ? next[i].errors : NULL;
        int cross = next && (!a->errors != !own || (own && strcmp(a->errors, own) != 0));
        if (dc->carried[i] && !cross && !next[i].cross) {
            free(a->errors);
            out->carried++;
            next[i].cross = 0;
            continue;
        }
        if (dc->carried[i]) {
            a->name = kn_strdup(a->name);
            a->path = kn_strdup(a->path);
        }
        if (next) {
            next[i].cross = cross;
        }
        if (keep != i) {
            out->apps[keep] = *a;
        }
        keep++;
    }
    out->napps = keep;
}

int kn_detect_run(struct kn_detect *out, const struct kn_detect_input *in, struct kn_error *err)
{
    struct detect_ctx dc;
    struct kn_detect_cache *cache = in->cache;
    struct cached_app *next = NULL;
    struct kn_strlist changed_buf = {0};
    const struct kn_strlist *changed = NULL;
    struct name_ref *names = NULL;
    char head_hex[GIT_OID_HEXSZ + 1];
    char **paths = NULL;
    unsigned char *owned = NULL;
    size_t npaths = 0, j = 0;
    int rc;

    memset(out, 0, sizeof(*out));
    memset(&dc, 0, sizeof(dc));
    dc.in = in;
    git_oid_tostr(head_hex, sizeof(head_hex), &in->head);
    if ((rc = kn_git_commit_info(in->repo, &in->head, &out->info, err)) < 0 ||
        (rc = kn_git_tree_source_new(&dc.head_src, in->repo, &in->head, err)) < 0 ||
        (cache && (rc = head_tree(&dc, err)) < 0)) {
        goto out;
    }
    dc.rec.base.ops = &rec_source_ops;
    dc.rec.base.name = dc.head_src->name;
    dc.rec.inner = dc.head_src;
    dc.message = out->info.message;
    index_known(&dc);
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
    if ((changed = changes_since_cache(&dc, &changed_buf)) != NULL) {
        out->incremental = 1;
        git_oid_tostr(dc.cached_head, sizeof(dc.cached_head), &cache->head);
        memcpy(out->from, dc.cached_head, sizeof(out->from));
        paths_from_cache(&dc, changed, out, &paths, &owned, &npaths);
    } else if ((rc = kn_app_discover(dc.head_src, &paths, &npaths)) < 0) {
        kn_error_set(err, rc, NULL, "listing the apps at %s: %s", out->info.oid,
                     kn_strerror(rc));
        goto out;
    } else {
        owned = kn_calloc(npaths ? npaths : 1, 1);
        memset(owned, 1, npaths);
    }
    out->apps = kn_calloc(npaths ? npaths : 1, sizeof(*out->apps));
    dc.carried = kn_calloc(npaths ? npaths : 1, 1);
    next = cache ? kn_calloc(npaths ? npaths : 1, sizeof(*next)) : NULL;
    dc.apps = out->apps;
    for (size_t i = 0; i < npaths; i++) {
        struct kn_detect_app *a = &out->apps[out->napps++];
        struct cached_app *e = NULL;
        /* both lists are sorted by path */
        while (changed && j < cache->napps && strcmp(cache->apps[j].path, paths[i]) < 0) {
            j++;
        }
        if (changed && j < cache->napps && strcmp(cache->apps[j].path, paths[i]) == 0) {
            e = &cache->apps[j++]; /* carried (moved out) or left for cache_clear */
        }
        if (e && can_carry(&dc, e, changed, head_hex)) {
            carry_app(&dc, e, a, &next[i]);
        } else {
            detect_app(&dc, paths[i], a, next ? &next[i] : NULL);
            out->loaded++;
        }
    }
    names = names_index(out);
    check_unique_names(out, names);
    find_gone(&dc, out, names);
    compact(&dc, out, next);
out:
    if (cache) {
        cache_clear(cache);
        if (rc == 0) {
            cache->apps = next;
            cache->napps = npaths;
            cache->valid = 1;
            cache->config = in->config;
            git_oid_cpy(&cache->head, &in->head);
            next = NULL;
        }
    }
    for (size_t i = 0; next && i < npaths; i++) {
        cached_app_release(&next[i]);
    }
    free(next);
    free(names);
    strlist_free(&changed_buf);
    for (size_t i = 0; i < npaths; i++) {
        if (owned[i]) {
            free(paths[i]);
        }
    }
    free(paths);
    free(owned);
    free(dc.carried);
    for (size_t i = 0; i < dc.ncache; i++) {
        strlist_free(&dc.cache[i].paths);
    }
    free(dc.cache);
    for (size_t i = 0; i < dc.nclaims; i++) {
        bind_info_release(&dc.claims[i].owned);
    }
    free(dc.claims);
    free(dc.port_first);
    free(dc.port_last);
    free((void *)dc.known_by_name);
    git_tree_free(dc.head_tree);
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
    strlist_free(&d->removed);
    kn_git_commit_info_release(&d->info);
    memset(d, 0, sizeof(*d));
}
