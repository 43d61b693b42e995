/*
 * The Prometheus metrics provider (see prometheus.h and include/kanaria/metrics.h).
 *
 * Credentials are read from their files at each query (kanaria/secret.h), so a rotated password
 * or token is used at once; making the instance reads them once too, so that a file that cannot
 * be read is an error at start rather than at the first analysis. A query owns nothing of the
 * instance (its call record holds only the callback), so destroying the instance while queries are
 * in flight is safe: they still complete, or are cancelled by the HTTP client, and call back
 * exactly once.
 */
#include "metrics/prometheus/prometheus.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kanaria/alloc.h"
#include "kanaria/config.h"
#include "kanaria/http.h"
#include "kanaria/log.h"
#include "kanaria/secret.h"
#include "metrics/prometheus/config.h"

/* Bytes of a non-JSON error body quoted in a message. */
#define KN_PROMETHEUS_MAX_QUOTE 200

struct kn_prometheus {
    char who[160];           /* "metrics provider=main" */
    char *address;           /* base URL (owned) */
    char *username;          /* basic auth user, or NULL (owned) */
    char *password_file;     /* with username, or NULL (owned) */
    char *bearer_token_file; /* or NULL (owned) */
    long timeout_ms;
    struct kn_http_client *http; /* borrowed; outlives the instance */
};

/* One query in flight, from kn_http_request until its callback has run. */
struct kn_prometheus_call {
    kn_metrics_cb cb;
    void *data;
};

/* ---- pure parts: the URL and the reply ------------------------------------------------------ */

long long kn_prometheus_step_ms(const struct kn_metrics_query *q)
{
    long long step = q->step_ms;

    if (step <= 0) {
        step = (q->end_ms - q->start_ms + 59) / 60;
        step = (step + 999) / 1000 * 1000;
        step = step < 1000 ? 1000 : step;
    }
    return step;
}

/* ms since the epoch as the decimal seconds Prometheus takes ("1700000000.250"). */
static void kn_prometheus_fmt_time(char *buf, size_t size, long long ms)
{
    snprintf(buf, size, "%lld.%03lld", ms / 1000, ms % 1000);
}

int kn_prometheus_url(char **out, const char *address, const struct kn_metrics_query *q,
                      struct kn_error *err)
{
    char *query = NULL;
    char start[32];
    char end[32];
    char step[32];
    size_t len;
    int rc = 0;

    *out = NULL;
    if (!address || !q || !q->query || !*q->query) {
        rc = kn_error_set(err, KN_EINVAL, NULL, "prometheus: no query");
        goto out;
    }
    if (q->start_ms < 0 || q->end_ms < q->start_ms) {
        rc = kn_error_set(err, KN_EINVAL, NULL, "prometheus: bad window %lld..%lld ms", q->start_ms,
                          q->end_ms);
        goto out;
    }
    query = curl_easy_escape(NULL, q->query, 0);
    if (!query) {
        rc = kn_error_set(err, KN_EINVAL, NULL, "prometheus: cannot encode the query");
        goto out;
    }
    len = strlen(address);
    while (len > 0 && address[len - 1] == '/') {
        len--;
    }
    kn_prometheus_fmt_time(start, sizeof(start), q->start_ms);
    if (q->start_ms == q->end_ms) {
        *out = kn_asprintf("%.*s/api/v1/query?query=%s&time=%s", (int)len, address, query, start);
        goto out;
    }
    kn_prometheus_fmt_time(end, sizeof(end), q->end_ms);
    kn_prometheus_fmt_time(step, sizeof(step), kn_prometheus_step_ms(q));
    *out = kn_asprintf("%.*s/api/v1/query_range?query=%s&start=%s&end=%s&step=%s", (int)len,
                       address, query, start, end, step);
out:
    curl_free(query);
    return rc;
}

/* Drop what r holds and say why, prefixed "prometheus: ". */
static void kn_prometheus_fail(struct kn_metrics_result *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void kn_prometheus_fail(struct kn_metrics_result *r, const char *fmt, ...)
{
    va_list ap;
    int n;

    kn_metrics_result_release(r);
    n = snprintf(r->error, sizeof(r->error), "prometheus: ");
    va_start(ap, fmt);
    vsnprintf(r->error + n, sizeof(r->error) - (size_t)n, fmt, ap);
    va_end(ap);
}

static int kn_prometheus_cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* `{a="b",c="d"}` from a series' `metric` object, names sorted, values escaped. */
static char *kn_prometheus_labels(json_t *metric)
{
    struct kn_buf b;
    const char **keys = NULL;
    size_t n = 0;
    const char *key;
    json_t *value;

    kn_buf_init(&b, KN_BUF_UNBOUNDED);
    if (json_is_object(metric)) {
        keys = kn_reallocarray(NULL, json_object_size(metric) + 1, sizeof(*keys));
        json_object_foreach(metric, key, value)
        {
            keys[n++] = key;
        }
        qsort(keys, n, sizeof(*keys), kn_prometheus_cmp_str);
    }
    kn_buf_addch(&b, '{');
    for (size_t i = 0; i < n; i++) {
        const char *v = json_string_value(json_object_get(metric, keys[i]));
        kn_buf_addf(&b, "%s%s=\"", i ? "," : "", keys[i]);
        for (const char *p = v ? v : ""; *p; p++) {
            if (*p == '\\' || *p == '"') {
                kn_buf_addch(&b, '\\');
                kn_buf_addch(&b, *p);
            } else if (*p == '\n') {
                kn_buf_adds(&b, "\\n");
            } else {
                kn_buf_addch(&b, *p);
            }
        }
        kn_buf_addch(&b, '"');
    }
    kn_buf_addch(&b, '}');
    free(keys);
    return kn_buf_detach(&b, NULL);
}

/* One `[<unix seconds>, "<value>"]` pair; 0, or KN_EPARSE when it is not one. */
static int kn_prometheus_sample(const json_t *pair, long long *time_ms, double *value)
{
    const json_t *t = json_array_get(pair, 0);
    const char *v = json_string_value(json_array_get(pair, 1));
    char *end;
    int rc = KN_EPARSE;

    /* Seconds beyond year 33658 are not a timestamp (and would not fit in ms). */
    if (!json_is_array(pair) || json_array_size(pair) != 2 || !json_is_number(t) ||
        !(fabs(json_number_value(t)) < 1e12) || !v || !*v) {
        goto out;
    }
    errno = 0;
    *value = strtod(v, &end);
    if (*end != '\0' || (errno == ERANGE && !isinf(*value) && *value != 0.0)) {
        goto out;
    }
    *time_ms = llround(json_number_value(t) * 1000.0);
    rc = 0;
out:
    return rc;
}

/* Fill series s from its sample pairs: an array of pairs, or one pair when `single`. */
static int kn_prometheus_series(struct kn_metrics_series *s, json_t *metric, const json_t *samples,
                                int single)
{
    size_t count = single ? 1 : json_array_size(samples);
    int rc = 0;

    s->labels = kn_prometheus_labels(metric);
    s->count = count;
    s->values = kn_reallocarray(NULL, count ? count : 1, sizeof(*s->values));
    s->times_ms = kn_reallocarray(NULL, count ? count : 1, sizeof(*s->times_ms));
    for (size_t i = 0; i < count; i++) {
        const json_t *pair = single ? samples : json_array_get(samples, i);
        if ((rc = kn_prometheus_sample(pair, &s->times_ms[i], &s->values[i])) < 0) {
            goto out;
        }
    }
out:
    return rc;
}

/* The series of a `matrix` or `vector` result, at most KN_PROMETHEUS_MAX_SAMPLES samples. */
static int kn_prometheus_parse_series(struct kn_metrics_result *r, const char *type,
                                      const json_t *result)
{
    int matrix = strcmp(type, "matrix") == 0;
    size_t total = 0;
    int rc = KN_EPARSE;

    if (!json_is_array(result)) {
        kn_prometheus_fail(r, "data.result of a %s is not an array", type);
        goto out;
    }
    /* Count before allocating: the cap is on what the reply holds. */
    for (size_t i = 0; i < json_array_size(result); i++) {
        const json_t *item = json_array_get(result, i);
        total += matrix ? json_array_size(json_object_get(item, "values")) : 1;
    }
    if (total > KN_PROMETHEUS_MAX_SAMPLES || json_array_size(result) > KN_PROMETHEUS_MAX_SAMPLES) {
        kn_prometheus_fail(r,
                           "reply holds %zu samples in %zu series, more than %d; narrow the query "
                           "or raise the step",
                           total, json_array_size(result), KN_PROMETHEUS_MAX_SAMPLES);
        rc = KN_ELIMIT;
        goto out;
    }
    r->nseries = json_array_size(result);
    r->series = kn_calloc(r->nseries ? r->nseries : 1, sizeof(*r->series));
    for (size_t i = 0; i < r->nseries; i++) {
        const json_t *item = json_array_get(result, i);
        const json_t *samples = json_object_get(item, matrix ? "values" : "value");
        if (!json_is_object(item) || !json_is_array(samples) ||
            kn_prometheus_series(&r->series[i], json_object_get(item, "metric"), samples, !matrix) <
                0) {
            kn_prometheus_fail(r, "bad series %zu in the %s reply", i, type);
            goto out;
        }
    }
    rc = 0;
out:
    return rc;
}

/* The series of data.result, by resultType; r->ok is 1, or 0 with r->error set. */
static void kn_prometheus_parse_data(struct kn_metrics_result *r, const json_t *data)
{
    const char *type = json_string_value(json_object_get(data, "resultType"));
    const json_t *result = json_object_get(data, "result");

    if (!type || !result) {
        kn_prometheus_fail(r, "reply has no data.resultType or data.result");
    } else if (strcmp(type, "scalar") == 0) {
        r->series = kn_calloc(1, sizeof(*r->series));
        r->nseries = 1;
        if (kn_prometheus_series(&r->series[0], NULL, result, 1) < 0) {
            kn_prometheus_fail(r, "bad scalar in the reply");
        } else {
            r->ok = 1;
        }
    } else if (strcmp(type, "matrix") != 0 && strcmp(type, "vector") != 0) {
        kn_prometheus_fail(r, "result type '%s' holds no numbers", type);
    } else if (kn_prometheus_parse_series(r, type, result) == 0) {
        r->ok = 1;
    }
}

/* A short printable quote of a body that is not JSON. */
static void kn_prometheus_quote(char *buf, size_t size, const char *body, size_t len)
{
    size_t n = 0;

    while (len > 0 && (body[len - 1] == '\n' || body[len - 1] == '\r' || body[len - 1] == ' ')) {
        len--;
    }
    for (size_t i = 0; i < len && n + 1 < size && i < KN_PROMETHEUS_MAX_QUOTE; i++) {
        unsigned char c = (unsigned char)body[i];
        buf[n++] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
    }
    buf[n] = '\0';
}

void kn_prometheus_parse(struct kn_metrics_result *r, int status, const char *body, size_t body_len)
{
    json_t *root = NULL;
    json_error_t jerr;
    const char *st;
    char quote[KN_PROMETHEUS_MAX_QUOTE + 1];

    memset(r, 0, sizeof(*r));
    if (!body || body_len == 0) {
        kn_prometheus_fail(r, "http status %d with an empty body", status);
        goto out;
    }
    root = json_loadb(body, body_len, 0, &jerr);
    if (!json_is_object(root)) {
        kn_prometheus_quote(quote, sizeof(quote), body, body_len);
        if (status < 200 || status > 299) {
            kn_prometheus_fail(r, "http status %d: %s", status, quote);
        } else if (!root) {
            kn_prometheus_fail(r, "reply is not json (%s): %s", jerr.text, quote);
        } else {
            kn_prometheus_fail(r, "reply is not a json object: %s", quote);
        }
        goto out;
    }
    st = json_string_value(json_object_get(root, "status"));
    if (st && strcmp(st, "error") == 0) {
        const char *type = json_string_value(json_object_get(root, "errorType"));
        const char *msg = json_string_value(json_object_get(root, "error"));
        kn_prometheus_fail(r, "%s: %s", type ? type : "error", msg ? msg : "(no message)");
        goto out;
    }
    if (status < 200 || status > 299) {
        kn_prometheus_fail(r, "http status %d", status);
        goto out;
    }
    if (!st || strcmp(st, "success") != 0) {
        kn_prometheus_fail(r, "reply has no status \"success\"");
        goto out;
    }
    if (!json_is_object(json_object_get(root, "data"))) {
        kn_prometheus_fail(r, "reply has no data object");
        goto out;
    }
    kn_prometheus_parse_data(r, json_object_get(root, "data"));
out:
    json_decref(root);
}

/* ---- the instance --------------------------------------------------------------------------- */

static void kn_prometheus_destroy(void *instance)
{
    struct kn_prometheus *p = instance;

    if (!p) {
        return;
    }
    free(p->address);
    free(p->username);
    free(p->password_file);
    free(p->bearer_token_file);
    free(p);
}

static int kn_prometheus_create(void **out, const struct kn_metrics_provider_config *mc,
                                struct kn_http_client *http, struct kn_error *err)
{
    static const struct kn_prometheus_config none = {0};
    const struct kn_prometheus_config *cfg = mc->options ? mc->options : &none;
    struct kn_prometheus *p = NULL;
    int rc = 0;

    *out = NULL;
    if (!cfg->address || !*cfg->address) {
        rc = kn_error_set(err, KN_EINVAL, NULL, "metrics provider '%s': no address", mc->name);
        goto out;
    }
    p = kn_calloc(1, sizeof(*p));
    snprintf(p->who, sizeof(p->who), "metrics provider=%s", mc->name ? mc->name : "");
    p->address = kn_strdup(cfg->address);
    p->http = http;
    p->timeout_ms = cfg->timeout_ms > 0 ? (long)cfg->timeout_ms : KN_PROMETHEUS_DEFAULT_TIMEOUT_MS;
    if (cfg->basic_auth.username) {
        p->username = kn_strdup(cfg->basic_auth.username);
        if (cfg->basic_auth.password_file) {
            p->password_file = kn_strdup(cfg->basic_auth.password_file);
            if ((rc = kn_metrics_check_secret(mc->name, "basicAuth.passwordFile", p->password_file,
                                              err)) < 0) {
                goto out;
            }
        }
    } else if (cfg->bearer_token_file) {
        p->bearer_token_file = kn_strdup(cfg->bearer_token_file);
        rc = kn_metrics_check_secret(mc->name, "bearerTokenFile", p->bearer_token_file, err);
        if (rc < 0) {
            goto out;
        }
    }
    *out = p;
    p = NULL;
out:
    kn_prometheus_destroy(p);
    return rc;
}

static void kn_prometheus_on_response(const struct kn_http_response *res, void *data)
{
    struct kn_prometheus_call *call = data;
    struct kn_metrics_result r;

    if (res->error) {
        memset(&r, 0, sizeof(r));
        kn_prometheus_fail(&r, "%s", res->error);
    } else {
        kn_prometheus_parse(&r, res->status, res->body, res->body_len);
    }
    call->cb(&r, call->data);
    kn_metrics_result_release(&r);
    free(call);
}

static int kn_prometheus_query(void *instance, const struct kn_metrics_query *q, kn_metrics_cb cb,
                               void *data)
{
    struct kn_prometheus *p = instance;
    struct kn_prometheus_call *call = NULL;
    const char *headers[] = {"Accept: application/json", NULL};
    struct kn_http_request req = {0};
    struct kn_error err;
    char *url = NULL;
    int rc = 0;

    if (!p || !q || !cb) {
        rc = KN_EINVAL;
        goto out;
    }
    if ((rc = kn_prometheus_url(&url, p->address, q, NULL)) < 0) {
        goto out;
    }
    kn_error_clear(&err);
    /* the HTTP client reads the credentials' files at each request */
    req.username = p->username;
    req.password_file = p->password_file;
    req.bearer_token_file = p->bearer_token_file;
    req.url = url;
    req.headers = headers;
    req.timeout_ms = q->timeout_ms > 0 ? q->timeout_ms : p->timeout_ms;
    req.max_response = KN_PROMETHEUS_MAX_RESPONSE;
    call = kn_calloc(1, sizeof(*call));
    call->cb = cb;
    call->data = data;
    if ((rc = kn_http_start(NULL, p->http, &req, kn_prometheus_on_response, call, &err)) < 0) {
        kn_log_error(p->who, "%s", err.msg);
        goto out;
    }
    call = NULL;
out:
    free(call);
    free(url);
    return rc;
}

const struct kn_metrics_type kn_metrics_prometheus = {
    .name = "prometheus",
    .help = "Prometheus's HTTP API: a metric's query is PromQL, run as a range query "
            "(/api/v1/query_range) over the check's window with a step of max(1s, window/60); "
            "HAProxy's exporter names servers VARIANT-N, so server=~\"{{variant}}-.*\" selects "
            "one variant",
    .config_schema = &kn_prometheus_config_schema,
    .metric_schema = NULL,
    .min_step_ms = 1000,
    .check_query = kn_prometheus_check_query,
    .create = kn_prometheus_create,
    .query = kn_prometheus_query,
    .destroy = kn_prometheus_destroy,
};
