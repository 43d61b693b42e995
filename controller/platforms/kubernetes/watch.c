/*
 * kanaria — informers (kube.h): a paged LIST, then a WATCH streamed line by line (NDJSON) from
 * the list's resourceVersion; bookmarks move the resourceVersion on, a 410 relists and sends
 * what changed, a clean end rewatches, errors back off.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kanaria/alloc.h"
#include "platforms/kubernetes/kube_int.h"

#define KN_KUBE_LIST_LIMIT      500
#define KN_KUBE_LIST_TIMEOUT_MS 60000
#define KN_KUBE_BACKOFF_MIN_MS  500
#define KN_KUBE_BACKOFF_MAX_MS  30000
#define KN_KUBE_MAX_EVENT       ((size_t)16 << 20) /* one watch event line */
#define KN_KUBE_WATCH_SLACK_S                                                                      \
    60 /* a watch still open this long after its timeoutSeconds is                                 \
          taken for a dead connection */

enum kn_kube_next { KN_KUBE_NEXT_LIST = 1, KN_KUBE_NEXT_WATCH };

struct kn_kube_informer {
    struct kn_kube *k; /* NULL once the session is gone */
    struct kn_kube_gvr r;
    char *ns;
    char *selector;
    kn_kube_event_cb cb;
    void *data;
    json_t *cache;   /* "ns/name" -> object */
    json_t *listing; /* the pages of the list under way */
    char *rv;        /* the last resourceVersion seen */
    char *cont;      /* the next page's continue token */
    int synced;
    char *error;
    struct kn_kube_call *call;
    uv_timer_t timer;
    enum kn_kube_next next;
    uint64_t backoff_ms;
    struct kn_buf line;
    int timeout_s;     /* the watch's timeoutSeconds */
    int stalled;       /* the watch outlived it: cancelled, resumed */
    int relist;        /* the watch said 410 */
    char *watch_error; /* an ERROR event other than 410 */
    int dead;
};

static void kn_kube_inf_list(struct kn_kube_informer *inf);
static void kn_kube_inf_watch(struct kn_kube_informer *inf);

static char *kn_kube_inf_key(const json_t *obj)
{
    const json_t *md = json_object_get(obj, "metadata");
    const char *ns = json_string_value(json_object_get(md, "namespace"));
    const char *name = json_string_value(json_object_get(md, "name"));

    if (!name) {
        return NULL;
    }
    return kn_asprintf("%s/%s", ns ? ns : "", name);
}

static const char *kn_kube_inf_rv(const json_t *obj)
{
    return json_string_value(json_object_get(json_object_get(obj, "metadata"), "resourceVersion"));
}

static void kn_kube_inf_set_rv(struct kn_kube_informer *inf, const char *rv)
{
    if (rv && *rv) {
        free(inf->rv);
        inf->rv = kn_strdup(rv);
    }
}

static void kn_kube_inf_set_error(struct kn_kube_informer *inf, const char *what, const char *msg)
{
    free(inf->error);
    inf->error = msg ? kn_asprintf("%s %s: %s", what, inf->r.resource, msg) : NULL;
}

static void kn_kube_inf_on_timer(uv_timer_t *t)
{
    struct kn_kube_informer *inf = t->data;

    if (inf->dead || !inf->k) {
        return;
    }
    if (inf->next == KN_KUBE_NEXT_LIST) {
        kn_kube_inf_list(inf);
    } else {
        kn_kube_inf_watch(inf);
    }
}

static void kn_kube_inf_later(struct kn_kube_informer *inf, enum kn_kube_next next, uint64_t ms)
{
    inf->next = next;
    uv_timer_start(&inf->timer, kn_kube_inf_on_timer, ms, 0);
}

/* Tell the owner; 1 when the informer was freed from the callback. */
static int kn_kube_inf_emit(struct kn_kube_informer *inf, enum kn_kube_event ev, const json_t *obj)
{
    inf->cb(ev, obj, inf->data);
    return inf->dead || !inf->k;
}

static void kn_kube_inf_lost(struct kn_kube_informer *inf, const char *what, const char *msg,
                             enum kn_kube_next next)
{
    uint64_t wait = inf->backoff_ms ? inf->backoff_ms : KN_KUBE_BACKOFF_MIN_MS;

    kn_kube_inf_set_error(inf, what, msg);
    inf->backoff_ms = wait * 2 > KN_KUBE_BACKOFF_MAX_MS ? KN_KUBE_BACKOFF_MAX_MS : wait * 2;
    if (kn_kube_inf_emit(inf, KN_KUBE_LOST, NULL)) {
        return;
    }
    kn_kube_inf_later(inf, next, wait);
}

/* A list's items carry no kind and apiVersion: give them the type's (an event's object has
 * them already), so that objects compare alike whichever way they came. */
static void kn_kube_inf_typed(const struct kn_kube_informer *inf, json_t *obj)
{
    if (!json_object_get(obj, "kind")) {
        json_object_set_new(obj, "kind", json_string(inf->r.kind));
    }
    if (!json_object_get(obj, "apiVersion")) {
        json_object_set_new(obj, "apiVersion", json_string(inf->r.api_version));
    }
}

/* ---- list ---------------------------------------------------------------------------------- */

static char *kn_kube_inf_url(struct kn_kube_informer *inf, int watch)
{
    struct kn_buf b;
    char *path = kn_kube_path(&inf->r, inf->ns, NULL);

    kn_buf_init(&b, KN_BUF_UNBOUNDED);
    kn_buf_adds(&b, path);
    if (watch) {
        char *rv = kn_kube_escape(inf->rv ? inf->rv : "0");
        inf->timeout_s = 300 + (int)(uv_hrtime() % 301);
        kn_buf_addf(&b, "?watch=1&resourceVersion=%s&allowWatchBookmarks=true&timeoutSeconds=%d",
                    rv, inf->timeout_s);
        free(rv);
    } else {
        kn_buf_addf(&b, "?limit=%d", KN_KUBE_LIST_LIMIT);
        if (inf->cont) {
            char *c = kn_kube_escape(inf->cont);
            kn_buf_addf(&b, "&continue=%s", c);
            free(c);
        }
    }
    if (inf->selector) {
        char *s = kn_kube_escape(inf->selector);
        kn_buf_addf(&b, "&labelSelector=%s", s);
        free(s);
    }
    free(path);
    return kn_buf_detach(&b, NULL);
}

/* The list is whole: swap it in and tell what changed across it. */
static void kn_kube_inf_listed(struct kn_kube_informer *inf)
{
    json_t *old = inf->cache;
    const char *key;
    json_t *obj;

    inf->cache = inf->listing;
    inf->listing = NULL;
    inf->synced = 1;
    kn_kube_inf_set_error(inf, NULL, NULL);
    json_object_foreach(inf->cache, key, obj)
    {
        const json_t *was = json_object_get(old, key);
        if (was && json_equal(was, obj)) {
            continue;
        }
        if (kn_kube_inf_emit(inf, was ? KN_KUBE_MODIFIED : KN_KUBE_ADDED, obj)) {
            goto out;
        }
    }
    json_object_foreach(old, key, obj)
    {
        if (!json_object_get(inf->cache, key) && kn_kube_inf_emit(inf, KN_KUBE_DELETED, obj)) {
            goto out;
        }
    }
    if (kn_kube_inf_emit(inf, KN_KUBE_SYNCED, NULL)) {
        goto out;
    }
    kn_kube_inf_watch(inf);
out:
    json_decref(old);
}

static void kn_kube_inf_on_list(const struct kn_kube_result *res, void *data)
{
    struct kn_kube_informer *inf = data;
    const json_t *items, *md, *item;
    const char *cont;
    size_t i;

    inf->call = NULL;
    if (inf->dead || !inf->k || res->status == KN_ECANCELLED) {
        return;
    }
    if (res->status < 0 || !json_is_object(res->reply)) {
        free(inf->cont);
        inf->cont = NULL; /* an expired continue token (410) starts over too */
        json_decref(inf->listing);
        inf->listing = NULL;
        kn_kube_inf_lost(inf, "listing", res->message ? res->message : "no list in the answer",
                         KN_KUBE_NEXT_LIST);
        return;
    }
    items = json_object_get(res->reply, "items");
    md = json_object_get(res->reply, "metadata");
    json_array_foreach(items, i, item)
    {
        char *key = kn_kube_inf_key(item);
        json_t *copy;
        if (!key) {
            continue;
        }
        copy = json_deep_copy(item);
        kn_kube_inf_typed(inf, copy);
        json_object_set_new(inf->listing, key, copy);
        free(key);
    }
    cont = json_string_value(json_object_get(md, "continue"));
    free(inf->cont);
    inf->cont = cont && *cont ? kn_strdup(cont) : NULL;
    if (inf->cont) {
        kn_kube_inf_list(inf);
        return;
    }
    free(inf->rv);
    inf->rv = NULL;
    kn_kube_inf_set_rv(inf, json_string_value(json_object_get(md, "resourceVersion")));
    kn_kube_inf_listed(inf);
}

static void kn_kube_inf_list(struct kn_kube_informer *inf)
{
    struct kn_kube_req req;
    char *path;
    int rc;

    if (!inf->cont) {
        json_decref(inf->listing);
        inf->listing = json_object();
    }
    inf->relist = 0;
    path = kn_kube_inf_url(inf, 0);
    memset(&req, 0, sizeof(req));
    req.path = path;
    req.timeout_ms = KN_KUBE_LIST_TIMEOUT_MS;
    rc = kn_kube_request(&inf->call, inf->k, &req, kn_kube_inf_on_list, inf);
    free(path);
    if (rc < 0) {
        kn_kube_inf_lost(inf, "listing", kn_strerror(rc), KN_KUBE_NEXT_LIST);
    }
}

/* ---- watch --------------------------------------------------------------------------------- */

/* One event line; 1 to stop reading (freed, 410, an error). */
static int kn_kube_inf_event(struct kn_kube_informer *inf, const char *line, size_t len)
{
    json_t *ev = json_loadb(line, len, 0, NULL);
    const char *type = json_string_value(json_object_get(ev, "type"));
    json_t *obj = json_object_get(ev, "object");
    char *key = NULL;
    int stop = 0;

    if (!type || !json_is_object(obj)) {
        free(inf->watch_error);
        inf->watch_error = kn_asprintf("a watch event that is not {type, object}: %.100s", line);
        stop = 1;
        goto out;
    }
    if (strcmp(type, "ERROR") == 0) {
        const char *reason = json_string_value(json_object_get(obj, "reason"));
        const char *msg = json_string_value(json_object_get(obj, "message"));
        if (json_integer_value(json_object_get(obj, "code")) == 410 ||
            (reason && (strcmp(reason, "Expired") == 0 || strcmp(reason, "Gone") == 0))) {
            inf->relist = 1;
        } else {
            free(inf->watch_error);
            inf->watch_error = kn_strdup(msg ? msg : reason ? reason : "an ERROR event");
        }
        stop = 1;
        goto out;
    }
    kn_kube_inf_set_rv(inf, kn_kube_inf_rv(obj));
    kn_kube_inf_set_error(inf, NULL, NULL); /* the watch works */
    if (strcmp(type, "BOOKMARK") == 0) {
        goto out;
    }
    kn_kube_inf_typed(inf, obj);
    inf->backoff_ms = 0; /* the watch works: the next failure starts from 0.5 s */
    if (!(key = kn_kube_inf_key(obj))) {
        goto out;
    }
    if (strcmp(type, "ADDED") == 0 || strcmp(type, "MODIFIED") == 0) {
        int had = json_object_get(inf->cache, key) != NULL;
        json_object_set(inf->cache, key, obj);
        stop = kn_kube_inf_emit(inf, had ? KN_KUBE_MODIFIED : KN_KUBE_ADDED, obj);
    } else if (strcmp(type, "DELETED") == 0) {
        json_object_del(inf->cache, key);
        stop = kn_kube_inf_emit(inf, KN_KUBE_DELETED, obj);
    }
out:
    free(key);
    json_decref(ev);
    return stop;
}

static int kn_kube_inf_on_data(const char *piece, size_t len, void *data)
{
    struct kn_kube_informer *inf = data;
    const char *p = piece, *end = piece + len;

    if (inf->dead || !inf->k) {
        return 1;
    }
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (kn_buf_add(&inf->line, p, n) < 0) {
            free(inf->watch_error);
            inf->watch_error =
                kn_asprintf("a watch event larger than %zu bytes", KN_KUBE_MAX_EVENT);
            return 1;
        }
        p += n;
        if (!nl) {
            break;
        }
        p++;
        if (inf->line.len > 0 && kn_kube_inf_event(inf, inf->line.data, inf->line.len) != 0) {
            kn_buf_reset(&inf->line);
            return 1;
        }
        kn_buf_reset(&inf->line);
    }
    return 0;
}

static void kn_kube_inf_on_watch_end(const struct kn_kube_result *res, void *data)
{
    struct kn_kube_informer *inf = data;
    char *werr;

    inf->call = NULL;
    kn_buf_reset(&inf->line);
    if (inf->dead || !inf->k) {
        return;
    }
    uv_timer_stop(&inf->timer);
    if (inf->stalled) {
        char msg[96];
        inf->stalled = 0;
        snprintf(msg, sizeof(msg), "the server did not end the watch %d s after its timeout",
                 KN_KUBE_WATCH_SLACK_S);
        kn_kube_inf_lost(inf, "watching", msg, KN_KUBE_NEXT_WATCH);
        return;
    }
    if (inf->relist || res->http_status == 410) {
        kn_kube_inf_list(inf);
        return;
    }
    if (inf->watch_error) {
        werr = inf->watch_error;
        inf->watch_error = NULL;
        kn_kube_inf_lost(inf, "watching", werr, KN_KUBE_NEXT_LIST);
        free(werr);
        return;
    }
    if (res->status == 0) {
        kn_kube_inf_watch(inf); /* the server ended it (timeoutSeconds): go on from rv */
        return;
    }
    /* a dropped connection resumes from rv; a refusal (an HTTP error) relists */
    kn_kube_inf_lost(inf, "watching", res->message ? res->message : kn_strerror(res->status),
                     res->http_status ? KN_KUBE_NEXT_LIST : KN_KUBE_NEXT_WATCH);
}

/* A watch has no overall timeout (it streams), but the server ends it at timeoutSeconds: one
 * still open long after is a dead connection. */
static void kn_kube_inf_on_stall(uv_timer_t *t)
{
    struct kn_kube_informer *inf = t->data;

    if (inf->call) {
        inf->stalled = 1;
        kn_kube_cancel(inf->call); /* its completion resumes the watch */
    }
}

static void kn_kube_inf_watch(struct kn_kube_informer *inf)
{
    char *path = kn_kube_inf_url(inf, 1);
    int rc;

    kn_buf_reset(&inf->line);
    rc = kn_kube_stream(&inf->call, inf->k, path, kn_kube_inf_on_data, kn_kube_inf_on_watch_end,
                        inf);
    free(path);
    if (rc < 0) {
        kn_kube_inf_lost(inf, "watching", kn_strerror(rc), KN_KUBE_NEXT_LIST);
        return;
    }
    uv_timer_start(&inf->timer, kn_kube_inf_on_stall,
                   (uint64_t)(inf->timeout_s + KN_KUBE_WATCH_SLACK_S) * 1000, 0);
}

/* ---- the public functions ------------------------------------------------------------------ */

int kn_kube_informer_new(struct kn_kube_informer **out, struct kn_kube *k,
                         const struct kn_kube_gvr *r, const char *ns, const char *label_selector,
                         kn_kube_event_cb cb, void *data)
{
    struct kn_kube_informer *inf;

    *out = NULL;
    if (!k || !r || !r->api_version || !r->resource || !r->kind || !cb) {
        return KN_EINVAL;
    }
    inf = kn_calloc(1, sizeof(*inf));
    inf->k = k;
    inf->r.api_version = kn_strdup(r->api_version);
    inf->r.kind = kn_strdup(r->kind);
    inf->r.resource = kn_strdup(r->resource);
    inf->r.namespaced = r->namespaced;
    inf->ns = ns && r->namespaced ? kn_strdup(ns) : NULL;
    inf->selector = label_selector && *label_selector ? kn_strdup(label_selector) : NULL;
    inf->cb = cb;
    inf->data = data;
    inf->cache = json_object();
    kn_buf_init(&inf->line, KN_KUBE_MAX_EVENT);
    uv_timer_init(kn_kube_loop(k), &inf->timer);
    inf->timer.data = inf;
    kn_kube_add_informer(k, inf);
    /* the first list starts from the loop, like every later step */
    kn_kube_inf_later(inf, KN_KUBE_NEXT_LIST, 0);
    *out = inf;
    return 0;
}

const json_t *kn_kube_informer_get(const struct kn_kube_informer *inf, const char *ns,
                                   const char *name)
{
    char *key;
    const json_t *obj;

    if (!inf || !name) {
        return NULL;
    }
    key = kn_asprintf("%s/%s", ns && inf->r.namespaced ? ns : "", name);
    obj = json_object_get(inf->cache, key);
    free(key);
    return obj;
}

void kn_kube_informer_each(const struct kn_kube_informer *inf,
                           void (*fn)(const json_t *obj, void *data), void *data)
{
    const char *key;
    json_t *obj;

    if (!inf) {
        return;
    }
    json_object_foreach(inf->cache, key, obj)
    {
        fn(obj, data);
    }
}

int kn_kube_informer_synced(const struct kn_kube_informer *inf)
{
    return inf && inf->synced;
}

const char *kn_kube_informer_error(const struct kn_kube_informer *inf)
{
    return inf ? inf->error : NULL;
}

void kn_kube_informer_detach(struct kn_kube_informer *inf)
{
    struct kn_kube_call *c = inf->call;

    inf->k = NULL;
    inf->call = NULL;
    uv_timer_stop(&inf->timer);
    kn_kube_cancel(c);
}

static void kn_kube_inf_closed(uv_handle_t *h)
{
    struct kn_kube_informer *inf = h->data;

    json_decref(inf->cache);
    json_decref(inf->listing);
    free(inf->r.api_version);
    free(inf->r.kind);
    free(inf->r.resource);
    free(inf->ns);
    free(inf->selector);
    free(inf->rv);
    free(inf->cont);
    free(inf->error);
    free(inf->watch_error);
    kn_buf_release(&inf->line);
    free(inf);
}

void kn_kube_informer_free(struct kn_kube_informer *inf)
{
    if (!inf || inf->dead) {
        return;
    }
    inf->dead = 1;
    if (inf->k) {
        kn_kube_remove_informer(inf->k, inf);
        kn_kube_informer_detach(inf);
    }
    /* memory goes once the timer is closed: a data callback may still be on the stack */
    uv_close((uv_handle_t *)&inf->timer, kn_kube_inf_closed);
}
