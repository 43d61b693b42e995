/*
 * kanaria — requests to kube-apiserver (kube.h): credentials at each request, a token bucket,
 * retries, the apiserver's errors in its words, and discovery.
 */
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/crypto.h>

#include "kanaria/alloc.h"
#include "kanaria/http.h"
#include "kanaria/secret.h"
#include "platforms/kubernetes/kube_int.h"

#define KN_KUBE_DEFAULT_QPS        20
#define KN_KUBE_DEFAULT_TIMEOUT_MS 30000
#define KN_KUBE_MAX_RESPONSE       ((size_t)64 << 20)
#define KN_KUBE_MAX_ERROR_BODY     ((size_t)64 << 10)
#define KN_KUBE_MAX_RETRY_AFTER    10 /* attempts, as client-go */
#define KN_KUBE_MAX_REFUSED        3
#define KN_KUBE_DISCOVERY_STALE_MS 30000 /* an absent kind is asked for again after this */

struct kn_kube_gv {
    char *api_version;
    struct kn_kube_gvr *res;
    size_t n;
    int absent;       /* the server has no such group version */
    uint64_t fetched; /* uv_now */
    struct kn_kube_gv *next;
};

struct kn_kube {
    uv_loop_t *loop;
    struct kn_http_client *http;
    struct kn_kube_creds creds;
    char *state_dir;
    double qps;
    double burst;
    double tokens;
    uint64_t refilled; /* uv_now of the last refill */
    uv_timer_t limit_timer;
    struct kn_kube_call *calls;      /* every call not finished */
    struct kn_kube_call *limit_head; /* waiting for a token, in order */
    struct kn_kube_call *limit_tail;
    struct kn_kube_gv *gvs;
    struct kn_kube_informer **infs;
    size_t ninfs;
};

enum kn_kube_call_state {
    KN_KUBE_CALL_NEW = 0,
    KN_KUBE_CALL_LIMIT, /* in the token queue */
    KN_KUBE_CALL_EXEC,  /* waiting for the exec plugin */
    KN_KUBE_CALL_RETRY, /* waiting before the next attempt */
    KN_KUBE_CALL_HTTP,  /* an attempt under way */
};

struct kn_kube_call {
    struct kn_kube *k;
    struct kn_kube_call *prev, *next; /* k->calls */
    struct kn_kube_call *limit_next;
    enum kn_kube_call_state state;
    char *method;
    char *path;
    char *content_type;
    char *body;
    size_t body_len;
    uint64_t deadline; /* uv_now; 0: none (a stream) */
    kn_kube_cb cb;
    void *data;
    kn_kube_data_cb on_data;
    int attempts;
    int refused;
    int exec_rerun;
    int exec_fresh; /* the plugin just ran for it: use what it printed, even if expired */
    int done;       /* cb ran (or is running) */
    int stream_2xx; /* a stream's status was 2xx: pieces went to on_data */
    struct kn_buf errbody;
    struct kn_http_call *http;
    uv_timer_t timer;
};

uv_loop_t *kn_kube_loop(const struct kn_kube *k)
{
    return k->loop;
}

const char *kn_kube_server(const struct kn_kube *k)
{
    return k->creds.server;
}

const char *kn_kube_namespace(const struct kn_kube *k)
{
    return k->creds.namespace_;
}

char *kn_kube_escape(const char *s)
{
    char *e = curl_easy_escape(NULL, s, 0);
    char *r = kn_strdup(e ? e : "");
    curl_free(e);
    return r;
}

char *kn_kube_gv_path(const char *api_version)
{
    return strchr(api_version, '/') ? kn_asprintf("/apis/%s", api_version)
                                    : kn_asprintf("/api/%s", api_version);
}

char *kn_kube_path(const struct kn_kube_gvr *r, const char *ns, const char *name)
{
    struct kn_buf b;
    char *gv = kn_kube_gv_path(r->api_version);

    kn_buf_init(&b, KN_BUF_UNBOUNDED);
    kn_buf_adds(&b, gv);
    if (r->namespaced && ns) {
        char *e = kn_kube_escape(ns);
        kn_buf_addf(&b, "/namespaces/%s", e);
        free(e);
    }
    kn_buf_addf(&b, "/%s", r->resource);
    if (name) {
        char *e = kn_kube_escape(name);
        kn_buf_addf(&b, "/%s", e);
        free(e);
    }
    free(gv);
    return kn_buf_detach(&b, NULL);
}

/* ---- the session --------------------------------------------------------------------------- */

int kn_kube_new(struct kn_kube **out, uv_loop_t *loop, struct kn_http_client *http,
                const struct kn_kube_config *cfg, const char *state_dir, struct kn_error *err)
{
    struct kn_kube *k = NULL;
    struct stat st;
    int rc = 0;

    *out = NULL;
    if (!loop || !http || !state_dir) {
        return kn_error_set(err, KN_EINVAL, NULL, "kubernetes: no loop, HTTP client or state dir");
    }
    if (mkdir(state_dir, 0700) != 0 && errno != EEXIST) {
        return kn_error_set(err, KN_EIO, NULL, "cannot create '%s': %s", state_dir,
                            strerror(errno));
    }
    if (stat(state_dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        return kn_error_set(err, KN_EIO, NULL, "'%s' is not a folder", state_dir);
    }
    k = kn_calloc(1, sizeof(*k));
    if ((rc = kn_kube_creds_load(&k->creds, cfg, state_dir, err)) < 0) {
        free(k);
        return rc;
    }
    k->loop = loop;
    k->http = http;
    k->state_dir = kn_strdup(state_dir);
    k->qps = cfg && cfg->qps > 0 ? (double)cfg->qps : KN_KUBE_DEFAULT_QPS;
    k->burst = 2 * k->qps;
    k->tokens = k->burst;
    k->refilled = uv_now(loop);
    uv_timer_init(loop, &k->limit_timer);
    k->limit_timer.data = k;
    *out = k;
    return 0;
}

static void kn_kube_gv_free(struct kn_kube_gv *g)
{
    for (size_t i = 0; i < g->n; i++) {
        free(g->res[i].api_version);
        free(g->res[i].kind);
        free(g->res[i].resource);
    }
    free(g->res);
    free(g->api_version);
    free(g);
}

void kn_kube_forget(struct kn_kube *k, const char *api_version)
{
    struct kn_kube_gv **pp = &k->gvs;

    while (*pp) {
        struct kn_kube_gv *g = *pp;
        if (!api_version || strcmp(g->api_version, api_version) == 0) {
            *pp = g->next;
            kn_kube_gv_free(g);
        } else {
            pp = &g->next;
        }
    }
}

static void kn_kube_on_closed(uv_handle_t *h)
{
    struct kn_kube *k = h->data;
    free(k->state_dir);
    free(k->infs);
    free(k);
}

void kn_kube_free(struct kn_kube *k)
{
    if (!k) {
        return;
    }
    while (k->ninfs > 0) {
        struct kn_kube_informer *inf = k->infs[--k->ninfs];
        kn_kube_informer_detach(inf);
    }
    while (k->calls) {
        kn_kube_cancel(k->calls);
    }
    kn_kube_forget(k, NULL);
    kn_kube_creds_release(&k->creds);
    uv_close((uv_handle_t *)&k->limit_timer, kn_kube_on_closed);
}

void kn_kube_add_informer(struct kn_kube *k, struct kn_kube_informer *inf)
{
    k->infs = kn_reallocarray(k->infs, k->ninfs + 1, sizeof(*k->infs));
    k->infs[k->ninfs++] = inf;
}

void kn_kube_remove_informer(struct kn_kube *k, struct kn_kube_informer *inf)
{
    for (size_t i = 0; i < k->ninfs; i++) {
        if (k->infs[i] == inf) {
            k->infs[i] = k->infs[--k->ninfs];
            return;
        }
    }
}

/* ---- calls --------------------------------------------------------------------------------- */

static void kn_kube_call_closed(uv_handle_t *h)
{
    struct kn_kube_call *c = h->data;
    free(c->method);
    free(c->path);
    free(c->content_type);
    if (c->body) {
        OPENSSL_cleanse(c->body, c->body_len);
    }
    free(c->body);
    kn_buf_release(&c->errbody);
    free(c);
}

static void kn_kube_limit_unqueue(struct kn_kube_call *c)
{
    struct kn_kube *k = c->k;
    struct kn_kube_call **pp = &k->limit_head;
    struct kn_kube_call *prev = NULL;

    while (*pp && *pp != c) {
        prev = *pp;
        pp = &(*pp)->limit_next;
    }
    if (*pp) {
        *pp = c->limit_next;
        if (k->limit_tail == c) {
            k->limit_tail = prev;
        }
    }
    c->limit_next = NULL;
}

/* Out of every list; its memory goes once no HTTP completion is to come. */
static void kn_kube_call_unlink(struct kn_kube_call *c)
{
    struct kn_kube *k = c->k;

    if (c->state == KN_KUBE_CALL_LIMIT) {
        kn_kube_limit_unqueue(c);
    }
    if (c->prev) {
        c->prev->next = c->next;
    } else if (k->calls == c) {
        k->calls = c->next;
    }
    if (c->next) {
        c->next->prev = c->prev;
    }
    c->prev = c->next = NULL;
    uv_timer_stop(&c->timer);
}

static void kn_kube_call_release(struct kn_kube_call *c)
{
    if (!c->http && !uv_is_closing((uv_handle_t *)&c->timer)) {
        uv_close((uv_handle_t *)&c->timer, kn_kube_call_closed);
    }
}

static void kn_kube_finish(struct kn_kube_call *c, struct kn_kube_result *r)
{
    kn_kube_call_unlink(c);
    c->done = 1;
    r->attempts = c->attempts;
    c->cb(r, c->data);
    kn_kube_call_release(c);
}

static void kn_kube_fail(struct kn_kube_call *c, int status, int http_status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void kn_kube_fail(struct kn_kube_call *c, int status, int http_status, const char *fmt, ...)
{
    struct kn_kube_result r;
    char msg[KN_ERROR_MSG_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    memset(&r, 0, sizeof(r));
    r.status = status;
    r.http_status = http_status;
    r.message = msg;
    kn_kube_finish(c, &r);
}

void kn_kube_cancel(struct kn_kube_call *c)
{
    struct kn_http_call *h;

    if (!c || c->done) {
        return;
    }
    h = c->http;
    kn_kube_fail(c, KN_ECANCELLED, 0, "cancelled (%s %s)", c->method, c->path);
    if (h) {
        /* its completion frees c (now, or once curl returns from a data callback) */
        kn_http_cancel(h);
    }
}

static void kn_kube_step(struct kn_kube_call *c);
static void kn_kube_send(struct kn_kube_call *c);

static void kn_kube_on_timer(uv_timer_t *t)
{
    struct kn_kube_call *c = t->data;

    if (c->state == KN_KUBE_CALL_LIMIT || c->state == KN_KUBE_CALL_EXEC) {
        /* the deadline passed while it waited */
        kn_kube_fail(c, KN_ETIMEDOUT, 0, "timed out waiting for %s (%s %s)",
                     c->state == KN_KUBE_CALL_LIMIT ? "the client-side rate limit"
                                                    : "the exec credential plugin",
                     c->method, c->path);
        return;
    }
    kn_kube_step(c);
}

static uint64_t kn_kube_left(const struct kn_kube_call *c)
{
    uint64_t now = uv_now(c->k->loop);
    return c->deadline > now ? c->deadline - now : 0;
}

/* ---- rate limit ---------------------------------------------------------------------------- */

static void kn_kube_refill(struct kn_kube *k)
{
    uint64_t now = uv_now(k->loop);
    k->tokens += (double)(now - k->refilled) * k->qps / 1000.0;
    if (k->tokens > k->burst) {
        k->tokens = k->burst;
    }
    k->refilled = now;
}

static void kn_kube_on_limit(uv_timer_t *t)
{
    struct kn_kube *k = t->data;

    kn_kube_refill(k);
    while (k->limit_head && k->tokens >= 1.0) {
        struct kn_kube_call *c = k->limit_head;
        k->limit_head = c->limit_next;
        if (!k->limit_head) {
            k->limit_tail = NULL;
        }
        c->limit_next = NULL;
        k->tokens -= 1.0;
        uv_timer_stop(&c->timer);
        c->state = KN_KUBE_CALL_RETRY;
        kn_kube_send(c);
    }
    if (k->limit_head) {
        double need = 1.0 - k->tokens;
        uv_timer_start(&k->limit_timer, kn_kube_on_limit, (uint64_t)(need * 1000.0 / k->qps) + 1,
                       0);
    }
}

/* Take a token or queue c (FIFO) until one comes. */
static void kn_kube_take_token(struct kn_kube_call *c)
{
    struct kn_kube *k = c->k;

    kn_kube_refill(k);
    if (!k->limit_head && k->tokens >= 1.0) {
        k->tokens -= 1.0;
        kn_kube_send(c);
        return;
    }
    c->state = KN_KUBE_CALL_LIMIT;
    if (k->limit_tail) {
        k->limit_tail->limit_next = c;
    } else {
        k->limit_head = c;
    }
    k->limit_tail = c;
    if (c->deadline) {
        uv_timer_start(&c->timer, kn_kube_on_timer, kn_kube_left(c), 0);
    }
    if (!uv_is_active((uv_handle_t *)&k->limit_timer)) {
        double need = 1.0 - k->tokens;
        uv_timer_start(&k->limit_timer, kn_kube_on_limit,
                       need <= 0 ? 0 : (uint64_t)(need * 1000.0 / k->qps) + 1, 0);
    }
}

/* ---- credentials --------------------------------------------------------------------------- */

static void kn_kube_on_exec(int status, const char *message, void *data)
{
    struct kn_kube *k = data;
    struct kn_kube_call *c, *next;

    for (c = k->calls; c; c = next) {
        next = c->next;
        if (c->state != KN_KUBE_CALL_EXEC) {
            continue;
        }
        uv_timer_stop(&c->timer);
        if (status < 0) {
            kn_kube_fail(c, KN_EINVAL, 0, "%s", message);
        } else {
            c->state = KN_KUBE_CALL_RETRY;
            c->exec_fresh = 1;
            kn_kube_send(c);
        }
    }
}

/* One attempt: credentials ready (or wait for the plugin), then the HTTP request. */
static void kn_kube_step(struct kn_kube_call *c)
{
    if (c->deadline && kn_kube_left(c) == 0) {
        kn_kube_fail(c, KN_ETIMEDOUT, 0, "timed out (%s %s, %d attempts)", c->method, c->path,
                     c->attempts);
        return;
    }
    kn_kube_take_token(c);
}

static int kn_kube_on_data(const struct kn_http_response *part, void *data);
static void kn_kube_on_http(const struct kn_http_response *res, void *data);

static void kn_kube_send(struct kn_kube_call *c)
{
    struct kn_kube *k = c->k;
    struct kn_kube_exec *x = k->creds.exec;
    struct kn_http_request req;
    struct kn_error err;
    const char *headers[6];
    char *auth = NULL, *ctype = NULL, *url = NULL;
    const char *token = k->creds.token;
    size_t nh = 0;
    int rc;

    if (x && !c->exec_fresh && !kn_kube_exec_valid(x)) {
        c->state = KN_KUBE_CALL_EXEC;
        if (c->deadline) {
            uv_timer_start(&c->timer, kn_kube_on_timer, kn_kube_left(c), 0);
        }
        if (!x->run && kn_kube_exec_start(x, k->loop, kn_kube_on_exec, k, &err) < 0) {
            kn_kube_fail(c, KN_EINVAL, 0, "%s", err.msg);
        }
        return;
    }
    c->exec_fresh = 0;
    memset(&req, 0, sizeof(req));
    kn_error_clear(&err);
    url = kn_asprintf("%s%s", k->creds.server, c->path);
    headers[nh++] = "Accept: application/json";
    headers[nh++] = "User-Agent: kanaria";
    if (c->body) {
        ctype =
            kn_asprintf("Content-Type: %s", c->content_type ? c->content_type : "application/json");
        headers[nh++] = ctype;
    }
    if (x && x->token) {
        token = x->token;
    }
    if (token) {
        auth = kn_asprintf("Authorization: Bearer %s", token);
        headers[nh++] = auth;
    }
    headers[nh] = NULL;
    req.method = c->method;
    req.url = url;
    req.headers = headers;
    req.body = c->body;
    req.body_len = c->body_len;
    req.timeout_ms = c->deadline ? (long)kn_kube_left(c) : -1;
    if (req.timeout_ms == 0) {
        req.timeout_ms = 1;
    }
    req.max_response = KN_KUBE_MAX_RESPONSE;
    req.on_data = c->on_data ? kn_kube_on_data : NULL;
    req.ca_file = k->creds.ca_file;
    req.cert_file = x && x->cert_file ? x->cert_file : k->creds.cert_file;
    req.key_file = x && x->key_file ? x->key_file : k->creds.key_file;
    req.bearer_token_file = token ? NULL : k->creds.token_file;
    c->attempts++;
    c->state = KN_KUBE_CALL_HTTP;
    c->stream_2xx = 0;
    kn_buf_reset(&c->errbody);
    rc = kn_http_start(&c->http, k->http, &req, kn_kube_on_http, c, &err);
    kn_secret_free_str(auth);
    free(ctype);
    free(url);
    if (rc < 0) {
        c->http = NULL;
        kn_kube_fail(c, rc == KN_EIO ? KN_EIO : KN_EINVAL, 0, "%s (%s %s)", err.msg, c->method,
                     c->path);
    }
}

static int kn_kube_on_data(const struct kn_http_response *part, void *data)
{
    struct kn_kube_call *c = data;

    if (c->done) {
        return 1;
    }
    if (part->status >= 200 && part->status < 300) {
        c->stream_2xx = 1;
        return c->on_data(part->body, part->body_len, c->data) != 0 || c->done;
    }
    /* an error's body is a Status: kept for the completion (bounded) */
    if (kn_buf_add(&c->errbody, part->body, part->body_len) < 0) {
        return 0;
    }
    return 0;
}

/* ---- answers ------------------------------------------------------------------------------- */

/* The Warning headers' texts: `299 - "unknown field \"spec.replica\""` -> unknown field ... */
static char *kn_kube_warnings(const struct kn_http_headers *h)
{
    struct kn_buf b;
    const char *w;

    kn_buf_init(&b, 8192);
    for (size_t i = 0; (w = kn_http_header(h, "Warning", i)) != NULL; i++) {
        const char *q = strchr(w, '"');
        if (b.len) {
            kn_buf_adds(&b, "; ");
        }
        if (!q) {
            kn_buf_adds(&b, w);
            continue;
        }
        for (q++; *q && *q != '"'; q++) {
            if (*q == '\\' && q[1]) {
                q++;
            }
            kn_buf_addch(&b, *q);
        }
    }
    if (!b.len) {
        kn_buf_release(&b);
        return NULL;
    }
    return kn_buf_detach(&b, NULL);
}

/* Seconds of a Retry-After header (delta-seconds only, as client-go); -1 without one. */
static long kn_kube_retry_after(const struct kn_http_headers *h)
{
    const char *v = kn_http_header(h, "Retry-After", 0);
    char *end;
    long s;

    if (!v || !*v) {
        return -1;
    }
    errno = 0;
    s = strtol(v, &end, 10);
    if (errno || *end || s < 0) {
        return -1;
    }
    return s > 3600 ? 3600 : s;
}

/* A transport failure worth another attempt: nothing reached the server, or it hung up. */
static int kn_kube_refused(const struct kn_http_response *res)
{
    return res->code == KN_EIO && res->error &&
           (strcmp(res->error, "connection refused") == 0 ||
            strstr(res->error, "receiving data from the peer") ||
            strstr(res->error, "Server returned nothing") || strstr(res->error, "Send failure"));
}

/* "/apis/apps/v1/namespaces/x/..." -> "apps/v1"; NULL when not a resource path. */
static char *kn_kube_path_gv(const char *path)
{
    const char *p;
    size_t n;

    if (strncmp(path, "/api/", 5) == 0) {
        p = path + 5;
        n = strcspn(p, "/?");
        return n ? kn_strndup(p, n) : NULL;
    }
    if (strncmp(path, "/apis/", 6) == 0) {
        p = path + 6;
        n = strcspn(p, "/?");
        if (p[n] != '/') {
            return NULL;
        }
        n += 1 + strcspn(p + n + 1, "/?");
        return kn_strndup(p, n);
    }
    return NULL;
}

static void kn_kube_answer(struct kn_kube_call *c, const struct kn_http_response *res)
{
    struct kn_kube_result r;
    const char *body = res->body;
    size_t body_len = res->body_len;
    char *warning = kn_kube_warnings(res->headers);
    char *msg = NULL;
    json_t *j = NULL;
    json_error_t jerr;
    char suffix[32] = "";

    memset(&r, 0, sizeof(r));
    r.http_status = res->status;
    r.warning = warning;
    if (c->on_data && !c->stream_2xx) {
        body = c->errbody.data ? c->errbody.data : "";
        body_len = c->errbody.len;
    }
    if (c->attempts > 1) {
        snprintf(suffix, sizeof(suffix), " (%d attempts)", c->attempts);
    }
    if (res->status >= 200 && res->status < 300) {
        if (body_len > 0 && !c->on_data) {
            j = json_loadb(body, body_len, 0, &jerr);
            if (!j) {
                r.status = KN_EPARSE;
                msg = kn_asprintf("the answer to %s %s is not JSON: %s", c->method, c->path,
                                  jerr.text);
            }
        }
        r.reply = j;
        goto out;
    }
    r.status = res->status == 404 ? KN_ENOTFOUND : KN_EIO;
    j = body_len ? json_loadb(body, body_len, 0, NULL) : NULL;
    if (json_is_object(j) && json_is_string(json_object_get(j, "kind")) &&
        strcmp(json_string_value(json_object_get(j, "kind")), "Status") == 0) {
        r.reason = json_string_value(json_object_get(j, "reason"));
        if (r.reason && !*r.reason) {
            r.reason = NULL;
        }
        msg = kn_asprintf("%s%s",
                          json_string_value(json_object_get(j, "message"))
                              ? json_string_value(json_object_get(j, "message"))
                              : (r.reason ? r.reason : "error"),
                          suffix);
        if (res->status == 409 && r.reason && strcmp(r.reason, "AlreadyExists") == 0) {
            r.status = KN_EEXISTS;
        }
    } else if (res->status == 404) {
        /* an unknown resource type: the group version may have changed */
        char *gv = kn_kube_path_gv(c->path);
        size_t n = strcspn(c->path, "?");
        msg = kn_asprintf("the server has no resource at %.*s (404 page not found)%s", (int)n,
                          c->path, suffix);
        if (gv) {
            kn_kube_forget(c->k, gv);
            free(gv);
        }
    } else {
        size_t n = body ? strcspn(body, "\r\n") : 0;
        msg = kn_asprintf("HTTP %d from %s %.*s%s%.*s%s", res->status, c->method,
                          (int)strcspn(c->path, "?"), c->path, n ? ": " : "",
                          (int)(n > 200 ? 200 : n), n ? body : "", suffix);
    }
out:
    r.message = msg;
    kn_kube_finish(c, &r);
    json_decref(j);
    free(msg);
    free(warning);
}

static void kn_kube_retry_in(struct kn_kube_call *c, uint64_t ms)
{
    c->state = KN_KUBE_CALL_RETRY;
    uv_timer_start(&c->timer, kn_kube_on_timer, ms, 0);
}

static void kn_kube_on_http(const struct kn_http_response *res, void *data)
{
    struct kn_kube_call *c = data;
    struct kn_kube *k = c->k;
    long ra;

    c->http = NULL;
    if (c->done) {
        kn_kube_call_release(c);
        return;
    }
    if (res->code != 0) {
        if (!c->on_data && kn_kube_refused(res) && ++c->refused < KN_KUBE_MAX_REFUSED) {
            uint64_t wait = 200u << (c->refused - 1);
            if (kn_kube_left(c) > wait) {
                kn_kube_retry_in(c, wait);
                return;
            }
        }
        if (c->attempts > 1) {
            kn_kube_fail(c, res->code, 0, "%s (%s %s%s, %d attempts)", res->error, c->method,
                         k->creds.server, c->path, c->attempts);
        } else {
            kn_kube_fail(c, res->code, 0, "%s (%s %s%s)", res->error, c->method, k->creds.server,
                         c->path);
        }
        return;
    }
    if (res->status == 401 && k->creds.exec && !c->exec_rerun) {
        /* the plugin's credential was refused: run it once more */
        c->exec_rerun = 1;
        kn_kube_exec_drop(k->creds.exec);
        kn_kube_retry_in(c, 0);
        return;
    }
    if (!c->on_data && (res->status == 429 || res->status >= 500) &&
        c->attempts < KN_KUBE_MAX_RETRY_AFTER && (ra = kn_kube_retry_after(res->headers)) >= 0 &&
        kn_kube_left(c) > (uint64_t)ra * 1000) {
        kn_kube_retry_in(c, (uint64_t)ra * 1000);
        return;
    }
    kn_kube_answer(c, res);
}

static int kn_kube_start(struct kn_kube_call **out, struct kn_kube *k, const char *method,
                         const char *path, const char *content_type, char *body,
                         long long timeout_ms, kn_kube_data_cb on_data, kn_kube_cb cb, void *data)
{
    struct kn_kube_call *c;

    if (out) {
        *out = NULL;
    }
    if (!k || !path || path[0] != '/' || !cb) {
        free(body);
        return KN_EINVAL;
    }
    c = kn_calloc(1, sizeof(*c));
    c->k = k;
    c->method = kn_strdup(method ? method : "GET");
    c->path = kn_strdup(path);
    c->content_type = content_type ? kn_strdup(content_type) : NULL;
    c->body = body;
    c->body_len = body ? strlen(body) : 0;
    c->deadline = on_data
                      ? 0
                      : uv_now(k->loop) +
                            (uint64_t)(timeout_ms > 0 ? timeout_ms : KN_KUBE_DEFAULT_TIMEOUT_MS);
    c->on_data = on_data;
    c->cb = cb;
    c->data = data;
    kn_buf_init(&c->errbody, KN_KUBE_MAX_ERROR_BODY);
    uv_timer_init(k->loop, &c->timer);
    c->timer.data = c;
    c->next = k->calls;
    if (k->calls) {
        k->calls->prev = c;
    }
    k->calls = c;
    /* never call back from inside the call: the first step runs from the loop */
    kn_kube_retry_in(c, 0);
    if (out) {
        *out = c;
    }
    return 0;
}

int kn_kube_request(struct kn_kube_call **out, struct kn_kube *k, const struct kn_kube_req *req,
                    kn_kube_cb cb, void *data)
{
    char *body = NULL;

    if (!req || !req->path) {
        if (out) {
            *out = NULL;
        }
        return KN_EINVAL;
    }
    if (req->body) {
        body = json_dumps(req->body, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!body) {
            return KN_EINVAL;
        }
    }
    return kn_kube_start(out, k, req->method, req->path, req->content_type, body, req->timeout_ms,
                         NULL, cb, data);
}

int kn_kube_stream(struct kn_kube_call **out, struct kn_kube *k, const char *path,
                   kn_kube_data_cb on_data, kn_kube_cb cb, void *data)
{
    if (!on_data) {
        return KN_EINVAL;
    }
    return kn_kube_start(out, k, "GET", path, NULL, NULL, 0, on_data, cb, data);
}

/* ---- discovery ----------------------------------------------------------------------------- */

struct kn_kube_resolving {
    struct kn_kube *k;
    char *api_version;
    char *kind;
    kn_kube_resolve_cb cb;
    void *data;
};

static struct kn_kube_gv *kn_kube_gv_find(struct kn_kube *k, const char *api_version)
{
    for (struct kn_kube_gv *g = k->gvs; g; g = g->next) {
        if (strcmp(g->api_version, api_version) == 0) {
            return g;
        }
    }
    return NULL;
}

static const struct kn_kube_gvr *kn_kube_gv_kind(const struct kn_kube_gv *g, const char *kind)
{
    for (size_t i = 0; i < g->n; i++) {
        if (strcmp(g->res[i].kind, kind) == 0) {
            return &g->res[i];
        }
    }
    return NULL;
}

/* An APIResourceList into the cache (replacing what was there). */
static struct kn_kube_gv *kn_kube_gv_store(struct kn_kube *k, const char *api_version,
                                           const json_t *list)
{
    struct kn_kube_gv *g;
    const json_t *resources = json_object_get(list, "resources");
    const json_t *item;
    size_t i;

    kn_kube_forget(k, api_version);
    g = kn_calloc(1, sizeof(*g));
    g->api_version = kn_strdup(api_version);
    g->fetched = uv_now(k->loop);
    g->absent = list == NULL;
    if (json_is_array(resources)) {
        g->res = kn_calloc(json_array_size(resources) + 1, sizeof(*g->res));
    }
    json_array_foreach(resources, i, item)
    {
        const char *name = json_string_value(json_object_get(item, "name"));
        const char *kind = json_string_value(json_object_get(item, "kind"));
        if (!name || !kind || strchr(name, '/')) {
            continue; /* subresources: deployments/status */
        }
        g->res[g->n].api_version = kn_strdup(api_version);
        g->res[g->n].kind = kn_strdup(kind);
        g->res[g->n].resource = kn_strdup(name);
        g->res[g->n].namespaced = json_is_true(json_object_get(item, "namespaced"));
        g->n++;
    }
    g->next = k->gvs;
    k->gvs = g;
    return g;
}

static void kn_kube_resolving_free(struct kn_kube_resolving *s)
{
    free(s->api_version);
    free(s->kind);
    free(s);
}

static void kn_kube_on_discovery(const struct kn_kube_result *r, void *data)
{
    struct kn_kube_resolving *s = data;
    struct kn_kube_gv *g = NULL;
    const struct kn_kube_gvr *gvr = NULL;
    char msg[KN_ERROR_MSG_MAX];

    if (r->status == 0 && json_is_object(r->reply)) {
        g = kn_kube_gv_store(s->k, s->api_version, r->reply);
    } else if (r->status == KN_ENOTFOUND) {
        g = kn_kube_gv_store(s->k, s->api_version, NULL);
    } else {
        s->cb(r->status == 0 ? KN_EPARSE : r->status, NULL,
              r->message ? r->message : "discovery answered no resource list", s->data);
        goto out;
    }
    gvr = kn_kube_gv_kind(g, s->kind);
    if (!gvr) {
        snprintf(msg, sizeof(msg), "the server has no kind %s in %s", s->kind, s->api_version);
        s->cb(KN_ENOTFOUND, NULL, msg, s->data);
        goto out;
    }
    s->cb(0, gvr, NULL, s->data);
out:
    kn_kube_resolving_free(s);
}

int kn_kube_resolve(struct kn_kube_call **out, struct kn_kube *k, const char *api_version,
                    const char *kind, long long timeout_ms, kn_kube_resolve_cb cb, void *data)
{
    struct kn_kube_gv *g;
    struct kn_kube_resolving *s;
    struct kn_kube_req req;
    char *path;
    int rc;

    if (out) {
        *out = NULL;
    }
    if (!k || !api_version || !*api_version || !kind || !*kind || !cb || strchr(api_version, '?') ||
        strstr(api_version, "..")) {
        return KN_EINVAL;
    }
    g = kn_kube_gv_find(k, api_version);
    if (g) {
        const struct kn_kube_gvr *gvr = kn_kube_gv_kind(g, kind);
        if (gvr) {
            cb(0, gvr, NULL, data);
            return 0;
        }
        if (uv_now(k->loop) - g->fetched < KN_KUBE_DISCOVERY_STALE_MS) {
            char msg[KN_ERROR_MSG_MAX];
            snprintf(msg, sizeof(msg), "the server has no kind %s in %s", kind, api_version);
            cb(KN_ENOTFOUND, NULL, msg, data);
            return 0;
        }
    }
    s = kn_calloc(1, sizeof(*s));
    s->k = k;
    s->api_version = kn_strdup(api_version);
    s->kind = kn_strdup(kind);
    s->cb = cb;
    s->data = data;
    path = kn_kube_gv_path(api_version);
    memset(&req, 0, sizeof(req));
    req.path = path;
    req.timeout_ms = timeout_ms;
    rc = kn_kube_request(out, k, &req, kn_kube_on_discovery, s);
    free(path);
    if (rc < 0) {
        kn_kube_resolving_free(s);
    }
    return rc;
}
