/*
 * The Datadog metrics provider (see datadog.h and include/kanaria/metrics.h).
 *
 * The keys are read from their files at each request (kanaria/secret.h) and go only into the
 * request's headers; making the instance reads them once too, so that a file that cannot be
 * read is an error at start. No message or log line holds them.
 *
 * Rate limits: every reply's X-RateLimit-* headers are read. A reply with Remaining 0 makes the
 * next queries of the instance wait for the Reset it gave; a 429 waits Reset seconds and asks
 * once more, when that fits in the query's timeout; otherwise the query fails naming the limit.
 * The waits are timers on the loop. Destroying the instance ends the queries that wait with
 * "cancelled"; those in flight complete on their own (without a retry) and call back once.
 */
#include "metrics/datadog/datadog.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "kanaria/alloc.h"
#include "kanaria/config.h"
#include "kanaria/http.h"
#include "kanaria/log.h"
#include "kanaria/secret.h"
#include "metrics/datadog/config.h"

/* Bytes of a non-JSON body, and of Datadog's joined `errors`, quoted in a message. */
#define KN_DATADOG_MAX_QUOTE 300

struct kn_datadog_call;

struct kn_datadog {
    char who[160];       /* "metrics provider=dd" */
    char *base;          /* https://api.SITE or the address, no trailing '/' (owned) */
    char *api_key_file;  /* (owned) */
    char *app_key_file;  /* (owned) */
    long timeout_ms;
    struct kn_http_client *http; /* borrowed; outlives the instance */
    uv_loop_t *loop;             /* the HTTP client's */
    uint64_t not_before;         /* uv_now() before which no query is sent (Remaining 0) */
    struct kn_datadog_ratelimit last; /* the limit that set not_before */
    struct kn_datadog_call *calls;    /* the queries not yet called back */
};

/* One query, from kn_datadog_query until its callback has run (then its timer closes). */
struct kn_datadog_call {
    struct kn_datadog *dd; /* NULL once the instance is gone */
    struct kn_datadog_call *next, *prev;
    char who[160];
    struct kn_http_client *http;
    char *url;          /* (owned) */
    char *api_key_file; /* (owned copies: a call may outlive the instance) */
    char *app_key_file;
    uint64_t deadline; /* uv_now() ms */
    uv_timer_t timer;  /* a wait before sending; closed when the call ends */
    int waiting;       /* the timer runs */
    int retried;       /* a 429 was retried already */
    struct kn_metrics_result r; /* a failure prepared before a wait of 0 ms */
    int failed;
    kn_metrics_cb cb;
    void *data;
};

/* ---- pure parts: the URL, the reply, the rate limit ----------------------------------------- */

int kn_datadog_url(char **out, const char *base, const struct kn_metrics_query *q,
                   struct kn_error *err)
{
    char *query = NULL;
    long long from, to;
    size_t len;
    int rc = 0;

    *out = NULL;
    if (!base || !q || !q->query || !*q->query) {
        rc = kn_error_set(err, KN_EINVAL, NULL, "datadog: no query");
        goto out;
    }
    if (q->start_ms < 0 || q->end_ms < q->start_ms) {
        rc = kn_error_set(err, KN_EINVAL, NULL, "datadog: bad window %lld..%lld ms", q->start_ms,
                          q->end_ms);
        goto out;
    }
    if (!(query = curl_easy_escape(NULL, q->query, 0))) {
        rc = kn_error_set(err, KN_EINVAL, NULL, "datadog: cannot encode the query");
        goto out;
    }
    len = strlen(base);
    while (len > 0 && base[len - 1] == '/') {
        len--;
    }
    to = (q->end_ms + 999) / 1000;
    from = q->start_ms == q->end_ms ? to - KN_DATADOG_INSTANT_WINDOW_S : q->start_ms / 1000;
    from = from < 0 ? 0 : from;
    *out = kn_asprintf("%.*s/api/v1/query?from=%lld&to=%lld&query=%s", (int)len, base, from, to,
                       query);
out:
    curl_free(query);
    return rc;
}

/* Drop what r holds and say why, prefixed "datadog: ". */
static void kn_datadog_fail(struct kn_metrics_result *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void kn_datadog_fail(struct kn_metrics_result *r, const char *fmt, ...)
{
    va_list ap;
    int n;

    kn_metrics_result_release(r);
    n = snprintf(r->error, sizeof(r->error), "datadog: ");
    va_start(ap, fmt);
    vsnprintf(r->error + n, sizeof(r->error) - (size_t)n, fmt, ap);
    va_end(ap);
}

/* A short printable quote of text from the server. */
static void kn_datadog_quote(char *buf, size_t size, const char *text, size_t len)
{
    size_t n = 0;

    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r' || text[len - 1] == ' ')) {
        len--;
    }
    for (size_t i = 0; i < len && n + 1 < size && i < KN_DATADOG_MAX_QUOTE; i++) {
        unsigned char c = (unsigned char)text[i];
        buf[n++] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
    }
    buf[n] = '\0';
}

/* Datadog's words in an error reply: its `errors` strings joined by "; ", or its `error`. */
static int kn_datadog_words(const json_t *root, char *buf, size_t size)
{
    const json_t *errors = json_object_get(root, "errors");
    const char *one = json_string_value(json_object_get(root, "error"));
    struct kn_buf b;
    char *joined;
    size_t i;
    json_t *e;
    int found = 0;

    buf[0] = '\0';
    kn_buf_init(&b, KN_BUF_UNBOUNDED);
    json_array_foreach(errors, i, e)
    {
        if (json_is_string(e)) {
            kn_buf_addf(&b, "%s%s", found ? "; " : "", json_string_value(e));
            found = 1;
        }
    }
    if (!found && one && *one) {
        kn_buf_adds(&b, one);
        found = 1;
    }
    joined = kn_buf_detach(&b, NULL);
    if (found) {
        kn_datadog_quote(buf, size, joined, strlen(joined));
    }
    free(joined);
    return found;
}

/* Datadog's words in a body, when it is a JSON object that has some. */
static int kn_datadog_body_words(const char *body, size_t len, char *buf, size_t size)
{
    json_t *root = body && len ? json_loadb(body, len, 0, NULL) : NULL;
    int found = json_is_object(root) && kn_datadog_words(root, buf, size);

    json_decref(root);
    return found;
}

struct kn_datadog_label {
    const char *key;
    size_t key_len;
    const char *value;
};

static int kn_datadog_cmp_label(const void *a, const void *b)
{
    const struct kn_datadog_label *x = a, *y = b;
    size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
    int c = strncmp(x->key, y->key, n);

    if (c == 0 && x->key_len != y->key_len) {
        c = x->key_len < y->key_len ? -1 : 1;
    }
    return c ? c : strcmp(x->value, y->value);
}

static void kn_datadog_add_escaped(struct kn_buf *b, const char *s)
{
    for (const char *p = s; *p; p++) {
        if (*p == '\\' || *p == '"') {
            kn_buf_addch(b, '\\');
            kn_buf_addch(b, *p);
        } else if (*p == '\n') {
            kn_buf_adds(b, "\\n");
        } else {
            kn_buf_addch(b, *p);
        }
    }
}

/* `{scope="...",KEY="VALUE",...}` from a series' scope and tag_set, sorted by name. */
static char *kn_datadog_labels(const json_t *series)
{
    const char *scope = json_string_value(json_object_get(series, "scope"));
    const json_t *tags = json_object_get(series, "tag_set");
    struct kn_datadog_label *l;
    struct kn_buf b;
    size_t n = 0;
    size_t i;
    json_t *t;

    l = kn_reallocarray(NULL, json_array_size(tags) + 2, sizeof(*l));
    if (scope) {
        l[n++] = (struct kn_datadog_label){.key = "scope", .key_len = 5, .value = scope};
    }
    json_array_foreach(tags, i, t)
    {
        const char *tag = json_string_value(t);
        const char *colon = tag ? strchr(tag, ':') : NULL;
        if (!tag || !*tag) {
            continue;
        }
        l[n].key = tag;
        l[n].key_len = colon ? (size_t)(colon - tag) : strlen(tag);
        l[n++].value = colon ? colon + 1 : "";
    }
    qsort(l, n, sizeof(*l), kn_datadog_cmp_label);
    kn_buf_init(&b, KN_BUF_UNBOUNDED);
    kn_buf_addch(&b, '{');
    for (i = 0; i < n; i++) {
        kn_buf_addf(&b, "%s%.*s=\"", i ? "," : "", (int)l[i].key_len, l[i].key);
        kn_datadog_add_escaped(&b, l[i].value);
        kn_buf_addch(&b, '"');
    }
    kn_buf_addch(&b, '}');
    free(l);
    return kn_buf_detach(&b, NULL);
}

/* One series' points; 0, or KN_EPARSE when a point is not [ms, number|null]. */
static int kn_datadog_series(struct kn_metrics_series *s, const json_t *item)
{
    const json_t *points = json_object_get(item, "pointlist");
    size_t n = json_array_size(points);
    size_t i;
    json_t *p;
    int rc = KN_EPARSE;

    s->labels = kn_datadog_labels(item);
    s->values = kn_reallocarray(NULL, n ? n : 1, sizeof(*s->values));
    s->times_ms = kn_reallocarray(NULL, n ? n : 1, sizeof(*s->times_ms));
    if (!json_is_array(points)) {
        goto out;
    }
    json_array_foreach(points, i, p)
    {
        const json_t *t = json_array_get(p, 0);
        const json_t *v = json_array_get(p, 1);
        if (!json_is_array(p) || json_array_size(p) != 2 || !json_is_number(t) ||
            !(fabs(json_number_value(t)) < 1e15) || !(json_is_number(v) || json_is_null(v))) {
            goto out;
        }
        if (json_is_null(v)) {
            continue; /* no data at that time */
        }
        s->times_ms[s->count] = llround(json_number_value(t));
        s->values[s->count++] = json_number_value(v);
    }
    rc = 0;
out:
    return rc;
}

static void kn_datadog_parse_series(struct kn_metrics_result *r, const json_t *series)
{
    size_t total = 0;
    size_t i;
    json_t *item;

    json_array_foreach(series, i, item)
    {
        total += json_array_size(json_object_get(item, "pointlist"));
    }
    if (total > KN_DATADOG_MAX_SAMPLES || json_array_size(series) > KN_DATADOG_MAX_SAMPLES) {
        kn_datadog_fail(r, "reply holds %zu points in %zu series, more than %d; narrow the query "
                        "(a rollup, fewer groups)", total, json_array_size(series),
                        KN_DATADOG_MAX_SAMPLES);
        return;
    }
    r->nseries = json_array_size(series);
    r->series = kn_calloc(r->nseries ? r->nseries : 1, sizeof(*r->series));
    json_array_foreach(series, i, item)
    {
        if (!json_is_object(item) || kn_datadog_series(&r->series[i], item) < 0) {
            kn_datadog_fail(r, "bad series %zu in the reply (pointlist is not [[ms, value], ...])",
                            i);
            return;
        }
    }
    r->ok = 1;
}

void kn_datadog_parse(struct kn_metrics_result *r, int status, const char *body, size_t body_len)
{
    json_t *root = NULL;
    json_error_t jerr;
    const char *st;
    char words[KN_DATADOG_MAX_QUOTE + 1];

    memset(r, 0, sizeof(*r));
    if (!body || body_len == 0) {
        kn_datadog_fail(r, "http status %d with an empty body", status);
        goto out;
    }
    root = json_loadb(body, body_len, 0, &jerr);
    if (!json_is_object(root)) {
        kn_datadog_quote(words, sizeof(words), body, body_len);
        if (status < 200 || status > 299) {
            kn_datadog_fail(r, "http status %d: %s", status, words);
        } else {
            kn_datadog_fail(r, "reply is not a json object: %s", words);
        }
        goto out;
    }
    st = json_string_value(json_object_get(root, "status"));
    if (status < 200 || status > 299 || (st && strcmp(st, "error") == 0)) {
        if (kn_datadog_words(root, words, sizeof(words))) {
            kn_datadog_fail(r, "http status %d: %s", status, words);
        } else {
            kn_datadog_fail(r, "http status %d", status);
        }
        goto out;
    }
    if (!json_is_array(json_object_get(root, "series"))) {
        kn_datadog_fail(r, "reply has no series array");
        goto out;
    }
    kn_datadog_parse_series(r, json_object_get(root, "series"));
out:
    json_decref(root);
}

static long long kn_datadog_header_num(const char *s)
{
    char *end;
    long long v;

    if (!s || !*s) {
        return -1;
    }
    errno = 0;
    v = strtoll(s, &end, 10);
    return *end || errno || v < 0 ? -1 : v;
}

void kn_datadog_ratelimit_parse(struct kn_datadog_ratelimit *rl, const char *limit,
                                const char *period, const char *remaining, const char *reset)
{
    rl->limit = kn_datadog_header_num(limit);
    rl->period = kn_datadog_header_num(period);
    rl->remaining = kn_datadog_header_num(remaining);
    rl->reset = kn_datadog_header_num(reset);
}

const char *kn_datadog_ratelimit_describe(const struct kn_datadog_ratelimit *rl, char *buf,
                                          size_t size)
{
    int n = 0;

    buf[0] = '\0';
    if (rl->limit >= 0 && rl->period >= 0) {
        n = snprintf(buf, size, "the limit is %lld requests per %lld s", rl->limit, rl->period);
    } else if (rl->limit >= 0) {
        n = snprintf(buf, size, "the limit is %lld requests", rl->limit);
    } else {
        n = snprintf(buf, size, "no X-RateLimit-Limit given");
    }
    if (n >= 0 && (size_t)n < size) {
        if (rl->reset >= 0) {
            snprintf(buf + n, size - (size_t)n, ", reset in %lld s", rl->reset);
        } else {
            snprintf(buf + n, size - (size_t)n, ", no X-RateLimit-Reset given");
        }
    }
    return buf;
}

/* ---- the calls ------------------------------------------------------------------------------ */

static void kn_datadog_call_closed(uv_handle_t *h)
{
    struct kn_datadog_call *call = h->data;

    free(call->url);
    free(call->api_key_file);
    free(call->app_key_file);
    free(call);
}

static void kn_datadog_unlink(struct kn_datadog_call *call)
{
    if (!call->dd) {
        return;
    }
    if (call->prev) {
        call->prev->next = call->next;
    } else {
        call->dd->calls = call->next;
    }
    if (call->next) {
        call->next->prev = call->prev;
    }
    call->next = call->prev = NULL;
    call->dd = NULL;
}

/* Call back with r (once), then let the timer close and free the call. */
static void kn_datadog_done(struct kn_datadog_call *call, struct kn_metrics_result *r)
{
    kn_datadog_unlink(call);
    uv_timer_stop(&call->timer);
    call->waiting = 0;
    call->cb(r, call->data);
    kn_metrics_result_release(r);
    kn_metrics_result_release(&call->r);
    uv_close((uv_handle_t *)&call->timer, kn_datadog_call_closed);
}

static void kn_datadog_on_response(const struct kn_http_response *res, void *data);

/* Read a key file into the header line "NAME: KEY" (kn_secret_free_str), or fail with err. */
static int kn_datadog_key_header(char **out, const char *name, const char *path,
                                 struct kn_error *err)
{
    struct kn_secret key = {0};
    int rc = 0;

    *out = NULL;
    if ((rc = kn_secret_read(&key, path, KN_SECRET_LINE, err)) < 0) {
        goto out;
    }
    *out = kn_asprintf("%s: %s", name, key.data);
out:
    kn_secret_release(&key);
    return rc;
}

/* Send the request within what is left of the query's time. 0, or <0 with err saying why (and
 * the response callback never runs). */
static int kn_datadog_send(struct kn_datadog_call *call, struct kn_error *err)
{
    struct kn_http_request req = {0};
    const char *headers[4] = {"Accept: application/json", NULL, NULL, NULL};
    char *api = NULL;
    char *app = NULL;
    uint64_t now = uv_now(call->timer.loop);
    int rc = 0;

    if (call->deadline <= now) {
        rc = kn_error_set(err, KN_ETIMEDOUT, NULL, "timed out");
        goto out;
    }
    if ((rc = kn_datadog_key_header(&api, "DD-API-KEY", call->api_key_file, err)) < 0 ||
        (rc = kn_datadog_key_header(&app, "DD-APPLICATION-KEY", call->app_key_file, err)) < 0) {
        goto out;
    }
    headers[1] = api;
    headers[2] = app;
    req.url = call->url;
    req.headers = headers;
    req.timeout_ms = (long)(call->deadline - now);
    req.max_response = KN_DATADOG_MAX_RESPONSE;
    rc = kn_http_start(NULL, call->http, &req, kn_datadog_on_response, call, err);
out:
    kn_secret_free_str(api);
    kn_secret_free_str(app);
    return rc;
}

static void kn_datadog_on_timer(uv_timer_t *t)
{
    struct kn_datadog_call *call = t->data;
    struct kn_metrics_result r = {0};
    struct kn_error err;

    call->waiting = 0;
    if (call->failed) {
        r = call->r;
        memset(&call->r, 0, sizeof(call->r));
        kn_datadog_done(call, &r);
        return;
    }
    kn_error_clear(&err);
    if (kn_datadog_send(call, &err) < 0) {
        kn_datadog_fail(&r, "%s", err.msg);
        kn_datadog_done(call, &r);
    }
}

/* Wait ms, then send (or, when call->failed, call back with call->r). */
static void kn_datadog_wait(struct kn_datadog_call *call, uint64_t ms)
{
    call->waiting = 1;
    uv_timer_start(&call->timer, kn_datadog_on_timer, ms, 0);
}

static void kn_datadog_on_response(const struct kn_http_response *res, void *data)
{
    struct kn_datadog_call *call = data;
    struct kn_datadog *dd = call->dd;
    struct kn_datadog_ratelimit rl;
    struct kn_metrics_result r = {0};
    uint64_t now = uv_now(call->timer.loop);
    char words[KN_DATADOG_MAX_QUOTE + 1];
    char limit[160];
    int have;

    if (res->error) {
        kn_datadog_fail(&r, "%s", res->error);
        goto done;
    }
    kn_datadog_ratelimit_parse(&rl, kn_http_header(res->headers, "X-RateLimit-Limit", 0),
                               kn_http_header(res->headers, "X-RateLimit-Period", 0),
                               kn_http_header(res->headers, "X-RateLimit-Remaining", 0),
                               kn_http_header(res->headers, "X-RateLimit-Reset", 0));
    if (dd && (rl.remaining == 0 || res->status == 429) && rl.reset > 0) {
        dd->not_before = now + (uint64_t)rl.reset * 1000;
        dd->last = rl;
        kn_log_warn(call->who, "Datadog's rate limit is used up (%s): queries wait for the reset",
                    kn_datadog_ratelimit_describe(&rl, limit, sizeof(limit)));
    }
    if (res->status == 429) {
        uint64_t wait = rl.reset >= 0 ? (uint64_t)rl.reset * 1000 : 0;
        if (dd && !call->retried && rl.reset >= 0 && now + wait < call->deadline) {
            call->retried = 1;
            kn_datadog_wait(call, wait);
            return;
        }
        have = kn_datadog_body_words(res->body, res->body_len, words, sizeof(words));
        kn_datadog_fail(&r, "rate limited (http status 429%s%s): %s%s", have ? ": " : "",
                        have ? words : "",
                        kn_datadog_ratelimit_describe(&rl, limit, sizeof(limit)),
                        call->retried ? ", still after one wait"
                        : rl.reset < 0 ? ""
                        : !dd          ? ", and the provider is gone"
                                       : ", beyond the query's timeout");
        goto done;
    }
    kn_datadog_parse(&r, res->status, res->body, res->body_len);
done:
    kn_datadog_done(call, &r);
}

/* ---- the instance --------------------------------------------------------------------------- */

static void kn_datadog_destroy(void *instance)
{
    struct kn_datadog *dd = instance;

    if (!dd) {
        return;
    }
    while (dd->calls) {
        struct kn_datadog_call *call = dd->calls;
        kn_datadog_unlink(call);
        if (call->waiting) {
            struct kn_metrics_result r = {0};
            kn_datadog_fail(&r, "cancelled");
            kn_datadog_done(call, &r);
        }
    }
    free(dd->base);
    free(dd->api_key_file);
    free(dd->app_key_file);
    free(dd);
}

static int kn_datadog_create(void **out, const struct kn_metrics_provider_config *mc,
                             struct kn_http_client *http, struct kn_error *err)
{
    static const struct kn_datadog_config none = {0};
    const struct kn_datadog_config *cfg = mc->options ? mc->options : &none;
    struct kn_datadog *dd = NULL;
    int rc = 0;

    *out = NULL;
    if (!cfg->api_key_file || !cfg->app_key_file) {
        rc = kn_error_set(err, KN_EINVAL, NULL, "metrics provider '%s': no %s", mc->name,
                          cfg->api_key_file ? "appKeyFile" : "apiKeyFile");
        goto out;
    }
    dd = kn_calloc(1, sizeof(*dd));
    snprintf(dd->who, sizeof(dd->who), "metrics provider=%s", mc->name ? mc->name : "");
    dd->base = cfg->address ? kn_strdup(cfg->address)
                            : kn_asprintf("https://api.%s", cfg->site ? cfg->site
                                                                      : "datadoghq.com");
    dd->api_key_file = kn_strdup(cfg->api_key_file);
    dd->app_key_file = kn_strdup(cfg->app_key_file);
    dd->http = http;
    dd->loop = kn_http_client_loop(http);
    dd->timeout_ms = cfg->timeout_ms > 0 ? (long)cfg->timeout_ms : KN_DATADOG_DEFAULT_TIMEOUT_MS;
    if ((rc = kn_metrics_check_secret(mc->name, "apiKeyFile", dd->api_key_file, err)) < 0 ||
        (rc = kn_metrics_check_secret(mc->name, "appKeyFile", dd->app_key_file, err)) < 0) {
        goto out;
    }
    *out = dd;
    dd = NULL;
out:
    kn_datadog_destroy(dd);
    return rc;
}

static int kn_datadog_query(void *instance, const struct kn_metrics_query *q, kn_metrics_cb cb,
                            void *data)
{
    struct kn_datadog *dd = instance;
    struct kn_datadog_call *call = NULL;
    struct kn_error err;
    char *url = NULL;
    char limit[160];
    uint64_t now;
    int rc = 0;

    if (!dd || !q || !cb) {
        rc = KN_EINVAL;
        goto out;
    }
    kn_error_clear(&err);
    if ((rc = kn_datadog_url(&url, dd->base, q, &err)) < 0) {
        kn_log_error(dd->who, "%s", err.msg);
        goto out;
    }
    now = uv_now(dd->loop);
    call = kn_calloc(1, sizeof(*call));
    snprintf(call->who, sizeof(call->who), "%s", dd->who);
    call->http = dd->http;
    call->url = url;
    url = NULL;
    call->api_key_file = kn_strdup(dd->api_key_file);
    call->app_key_file = kn_strdup(dd->app_key_file);
    call->deadline = now + (uint64_t)(q->timeout_ms > 0 ? q->timeout_ms : dd->timeout_ms);
    call->cb = cb;
    call->data = data;
    uv_timer_init(dd->loop, &call->timer);
    call->timer.data = call;
    if (dd->not_before > now) {
        /* the limit was used up: wait for its reset, or fail at once when that is too late */
        if (dd->not_before >= call->deadline) {
            call->failed = 1;
            kn_datadog_fail(&call->r, "rate limit used up (%s), beyond the query's timeout",
                            kn_datadog_ratelimit_describe(&dd->last, limit, sizeof(limit)));
            kn_datadog_wait(call, 0);
        } else {
            kn_datadog_wait(call, dd->not_before - now);
        }
    } else if ((rc = kn_datadog_send(call, &err)) < 0) {
        kn_log_error(dd->who, "%s", err.msg);
        uv_close((uv_handle_t *)&call->timer, kn_datadog_call_closed);
        call = NULL;
        goto out;
    }
    call->dd = dd;
    call->next = dd->calls;
    if (dd->calls) {
        dd->calls->prev = call;
    }
    dd->calls = call;
    call = NULL;
out:
    free(url);
    return rc;
}

const struct kn_metrics_type kn_metrics_datadog = {
    .name = "datadog",
    .help = "Datadog's v1 API (GET /api/v1/query, \"query timeseries points\"): a metric's "
            "query is a Datadog metrics query, run over the check's window (whole seconds) with "
            "the API and application keys read from their files at each query; each series of "
            "the answer is labelled by its scope and tag_set. Datadog's X-RateLimit-* headers "
            "are honoured: a 429 waits X-RateLimit-Reset seconds and asks once more when that "
            "fits in the query's timeout, and a reply with X-RateLimit-Remaining 0 holds the "
            "next queries until the reset",
    .query_help =
        "A query is one Datadog metrics query, `AGGREGATION:METRIC{SCOPE} by {TAGS}` with "
        "functions and arithmetic as in a Datadog graph; its placeholders are filled in first. "
        "The answer's `series[].pointlist` gives the samples (a null point is no data, left "
        "out); an empty `series` is no data (the check's `noData` decides). An error reply "
        "(`{\"errors\": [...]}`, or `status: error`) fails the evaluation in Datadog's words.\n\n"
        "    query: >-\n"
        "      sum:trace.http.request.errors{service:{{app}},version:{{variant}}}.as_count() /\n"
        "      sum:trace.http.request.hits{service:{{app}},version:{{variant}}}.as_count()\n",
    .config_schema = &kn_datadog_config_schema,
    .metric_schema = NULL,
    .min_step_ms = 1000,
    .check_query = kn_datadog_check_query,
    .create = kn_datadog_create,
    .query = kn_datadog_query,
    .destroy = kn_datadog_destroy,
};
