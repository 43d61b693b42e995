/*
 * The CloudWatch provider's query and reply (see query.h). The query is read with kanaria's YAML
 * reader (JSON is YAML's flow form), checked key by key against the tables below, and written as
 * the awsJson1_0 GetMetricData input: the AWS API's PascalCase names, MetricStat and Metric
 * nested, dimensions as [{Name, Value}].
 */
#define _XOPEN_SOURCE 700 /* strptime */
#define _DEFAULT_SOURCE   /* timegm */
#include "metrics/cloudwatch/query.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "kanaria/alloc.h"
#include "kanaria/manifest.h"

/* The query text is a metric's, at most 64 KiB once filled in (stages/analysis_run.c). */
#define KN_CLOUDWATCH_MAX_QUERY ((size_t)64 << 10)
/* Messages of a failed result quoted in its error. */
#define KN_CLOUDWATCH_MAX_MESSAGES 3

/* The keys of each form, for the unknown-key message. */
static const char *const kn_cloudwatch_metric_keys[] = {
    "namespace", "metricName", "dimensions", "stat", "period", "unit", "id", "label", NULL};
static const char *const kn_cloudwatch_math_keys[] = {"expression", "metrics", "period", "id",
                                                      "label", NULL};
static const char *const kn_cloudwatch_sub_keys[] = {
    "namespace", "metricName", "dimensions", "stat", "period", "unit", NULL};

/* CloudWatch's StandardUnit values. */
static const char *const kn_cloudwatch_units[] = {
    "Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes", "Gigabytes",
    "Terabytes", "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits", "Percent", "Count",
    "Bytes/Second", "Kilobytes/Second", "Megabytes/Second", "Gigabytes/Second",
    "Terabytes/Second", "Bits/Second", "Kilobits/Second", "Megabits/Second", "Gigabits/Second",
    "Terabits/Second", "Count/Second", "None", NULL};

/* What reading a query needs to carry around. */
struct kn_cloudwatch_reader {
    char *msg;
    size_t size;
    long long period; /* for metrics without one */
    json_t *queries;  /* MetricDataQueries */
};

static int kn_cloudwatch_bad(struct kn_cloudwatch_reader *rd, const char *where, const char *fmt,
                             ...) __attribute__((format(printf, 3, 4)));

/* A message "WHERE: what" (WHERE "" at the top) into rd->msg; returns KN_EINVAL. */
static int kn_cloudwatch_bad(struct kn_cloudwatch_reader *rd, const char *where, const char *fmt,
                             ...)
{
    va_list ap;
    int n = 0;

    if (where && *where) {
        n = snprintf(rd->msg, rd->size, "%s: ", where);
        n = n < 0 ? 0 : (size_t)n >= rd->size ? (int)rd->size - 1 : n;
    }
    va_start(ap, fmt);
    vsnprintf(rd->msg + n, rd->size - (size_t)n, fmt, ap);
    va_end(ap);
    return KN_EINVAL;
}

static int kn_cloudwatch_in(const char *const *list, const char *s)
{
    for (size_t i = 0; list[i]; i++) {
        if (strcmp(list[i], s) == 0) {
            return 1;
        }
    }
    return 0;
}

/* `known` when `key` is it in another case, else NULL. */
static const char *kn_cloudwatch_case_of(const char *known, const char *key)
{
    return strcasecmp(known, key) == 0 && strcmp(known, key) != 0 ? known : NULL;
}

/* Every key of map is in `keys`; else the message names the first that is not. */
static int kn_cloudwatch_known_keys(struct kn_cloudwatch_reader *rd, const char *where,
                                    const struct kn_node *map, const char *const *keys,
                                    const char *what)
{
    struct kn_buf list;
    const char *close = NULL;
    const char *key = NULL;
    int rc = 0;

    for (size_t i = 0; i < map->len && !key; i++) {
        if (!kn_cloudwatch_in(keys, map->pairs[i].key->scalar)) {
            key = map->pairs[i].key->scalar;
        }
    }
    if (!key) {
        goto out;
    }
    /* PascalCase from the AWS API: the camelCase key of either form */
    for (size_t i = 0; keys[i] && !close; i++) {
        close = kn_cloudwatch_case_of(keys[i], key);
    }
    for (size_t i = 0; kn_cloudwatch_metric_keys[i] && !close; i++) {
        close = kn_cloudwatch_case_of(kn_cloudwatch_metric_keys[i], key);
    }
    for (size_t i = 0; kn_cloudwatch_math_keys[i] && !close; i++) {
        close = kn_cloudwatch_case_of(kn_cloudwatch_math_keys[i], key);
    }
    kn_buf_init(&list, KN_BUF_UNBOUNDED);
    for (size_t i = 0; keys[i]; i++) {
        kn_buf_addf(&list, "%s%s", i ? ", " : "", keys[i]);
    }
    if (close) {
        rc = kn_cloudwatch_bad(rd, where, "unknown key '%s', did you mean '%s'? (keys of %s are "
                               "camelCase: %s)", key, close, what, list.data);
    } else {
        rc = kn_cloudwatch_bad(rd, where, "unknown key '%s' (keys of %s: %s)", key, what,
                               list.data);
    }
    kn_buf_release(&list);
out:
    return rc;
}

/* The non-empty string at `key` of map into *out (borrowed), NULL when absent. */
static int kn_cloudwatch_string(struct kn_cloudwatch_reader *rd, const char *where,
                                const struct kn_node *map, const char *key, const char **out)
{
    const struct kn_node *n = kn_node_get(map, key);
    int rc = 0;

    *out = NULL;
    if (!n) {
        goto out;
    }
    if (n->type != KN_NODE_SCALAR || (!n->quoted && kn_node_scalar_kind(n) == KN_SCALAR_NULL)) {
        rc = kn_cloudwatch_bad(rd, where, "'%s' must be a string, got %s", key,
                               kn_node_describe(n));
    } else if (n->len == 0) {
        rc = kn_cloudwatch_bad(rd, where, "'%s' must not be empty", key);
    } else {
        *out = n->scalar;
    }
out:
    return rc;
}

static int kn_cloudwatch_valid_period(long long p)
{
    return p == 1 || p == 5 || p == 10 || p == 30 || (p > 0 && p % 60 == 0);
}

/* The `period` of map into *out, or `fallback` when absent. */
static int kn_cloudwatch_period_of(struct kn_cloudwatch_reader *rd, const char *where,
                                   const struct kn_node *map, long long fallback, long long *out)
{
    const struct kn_node *n = kn_node_get(map, "period");
    char *end = NULL;
    long long p = 0;
    int rc = 0;

    *out = fallback;
    if (!n) {
        goto out;
    }
    if (n->type == KN_NODE_SCALAR && kn_node_scalar_kind(n) == KN_SCALAR_INT) {
        p = strtoll(n->scalar, &end, 10);
    }
    /* a year is more than any analysis window */
    if (!end || *end || !kn_cloudwatch_valid_period(p) || p > 366LL * 86400) {
        rc = kn_cloudwatch_bad(rd, where, "'period' must be 1, 5, 10, 30 or a multiple of 60 "
                               "(seconds), got '%s'",
                               n->type == KN_NODE_SCALAR ? n->scalar : kn_node_describe(n));
        goto out;
    }
    *out = p;
out:
    return rc;
}

/* Ids of MetricDataQueries: a lower-case letter, then letters, digits and '_' (AWS's rule). */
static int kn_cloudwatch_valid_id(const char *id)
{
    size_t n = strlen(id);

    if (n == 0 || n > 255 || id[0] < 'a' || id[0] > 'z') {
        return 0;
    }
    return strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") == n;
}

/* {"Metric": {...}, "Period": P, "Stat": S[, "Unit": U]} from a metric's map. */
static int kn_cloudwatch_metric_stat(struct kn_cloudwatch_reader *rd, const char *where,
                                     const struct kn_node *map, json_t **out)
{
    const struct kn_node *dims = kn_node_get(map, "dimensions");
    const char *ns, *name, *stat, *unit;
    json_t *metric = NULL;
    json_t *dimensions = json_array();
    long long period;
    int rc = 0;

    *out = NULL;
    if ((rc = kn_cloudwatch_string(rd, where, map, "namespace", &ns)) < 0 ||
        (rc = kn_cloudwatch_string(rd, where, map, "metricName", &name)) < 0 ||
        (rc = kn_cloudwatch_string(rd, where, map, "stat", &stat)) < 0 ||
        (rc = kn_cloudwatch_string(rd, where, map, "unit", &unit)) < 0 ||
        (rc = kn_cloudwatch_period_of(rd, where, map, rd->period, &period)) < 0) {
        goto out;
    }
    if (!ns || !name || !stat) {
        rc = kn_cloudwatch_bad(rd, where, "'%s' is required (a metric has namespace, metricName "
                               "and stat)", !ns ? "namespace" : !name ? "metricName" : "stat");
        goto out;
    }
    if (unit && !kn_cloudwatch_in(kn_cloudwatch_units, unit)) {
        rc = kn_cloudwatch_bad(rd, where, "'unit' must be a CloudWatch unit (Count, Percent, "
                               "Seconds, Bytes/Second, ...), got '%s'", unit);
        goto out;
    }
    if (dims && dims->type != KN_NODE_MAP) {
        rc = kn_cloudwatch_bad(rd, where, "'dimensions' must be a map of NAME: VALUE, got %s",
                               kn_node_describe(dims));
        goto out;
    }
    if (dims && dims->len > KN_CLOUDWATCH_MAX_DIMENSIONS) {
        rc = kn_cloudwatch_bad(rd, where, "'dimensions' has %zu entries, CloudWatch takes %d at "
                               "most", dims->len, KN_CLOUDWATCH_MAX_DIMENSIONS);
        goto out;
    }
    for (size_t i = 0; dims && i < dims->len; i++) {
        const struct kn_node *k = dims->pairs[i].key;
        const struct kn_node *v = dims->pairs[i].value;
        if (v->type != KN_NODE_SCALAR || (!v->quoted && kn_node_scalar_kind(v) == KN_SCALAR_NULL)) {
            rc = kn_cloudwatch_bad(rd, where, "dimension '%s' must be a string, got %s",
                                   k->scalar, kn_node_describe(v));
            goto out;
        }
        if (k->len == 0 || k->len > 255 || v->len == 0 || v->len > 1024) {
            rc = kn_cloudwatch_bad(rd, where, "dimension '%s': names take 1 to 255 characters "
                                   "and values 1 to 1024, got '%s'", k->scalar, v->scalar);
            goto out;
        }
        json_array_append_new(dimensions,
                              json_pack("{s:s, s:s}", "Name", k->scalar, "Value", v->scalar));
    }
    metric = json_pack("{s:s, s:s}", "Namespace", ns, "MetricName", name);
    if (json_array_size(dimensions) > 0) {
        json_object_set(metric, "Dimensions", dimensions);
    }
    *out = json_pack("{s:o, s:I, s:s}", "Metric", metric, "Period", (json_int_t)period, "Stat",
                     stat);
    metric = NULL;
    if (unit) {
        json_object_set_new(*out, "Unit", json_string(unit));
    }
out:
    json_decref(metric);
    json_decref(dimensions);
    return rc;
}

/* The expression's metrics, each a MetricDataQuery with ReturnData false. */
static int kn_cloudwatch_math_metrics(struct kn_cloudwatch_reader *rd, const struct kn_node *map)
{
    const struct kn_node *metrics = kn_node_get(map, "metrics");
    char where[300];
    int rc = 0;

    if (!metrics || metrics->type != KN_NODE_MAP || metrics->len == 0) {
        rc = kn_cloudwatch_bad(rd, "", "'metrics' must be a map of ID: metric that the "
                               "expression uses, got %s",
                               metrics ? kn_node_describe(metrics) : "none");
        goto out;
    }
    if (metrics->len > KN_CLOUDWATCH_MAX_METRICS) {
        rc = kn_cloudwatch_bad(rd, "", "'metrics' has %zu entries, %d at most", metrics->len,
                               KN_CLOUDWATCH_MAX_METRICS);
        goto out;
    }
    for (size_t i = 0; i < metrics->len; i++) {
        const char *id = metrics->pairs[i].key->scalar;
        const struct kn_node *m = metrics->pairs[i].value;
        json_t *stat = NULL;
        snprintf(where, sizeof(where), "metrics.%s", id);
        if (!kn_cloudwatch_valid_id(id)) {
            rc = kn_cloudwatch_bad(rd, "", "metric id '%s' must start with a lower-case letter "
                                   "and hold only letters, digits and '_'", id);
            goto out;
        }
        if (m->type != KN_NODE_MAP) {
            rc = kn_cloudwatch_bad(rd, where, "must be a metric (a map with namespace, "
                                   "metricName, stat), got %s", kn_node_describe(m));
            goto out;
        }
        if ((rc = kn_cloudwatch_known_keys(rd, where, m, kn_cloudwatch_sub_keys,
                                           "an expression's metric")) < 0 ||
            (rc = kn_cloudwatch_metric_stat(rd, where, m, &stat)) < 0) {
            goto out;
        }
        json_array_append_new(rd->queries, json_pack("{s:s, s:o, s:b}", "Id", id, "MetricStat",
                                                     stat, "ReturnData", 0));
    }
out:
    return rc;
}

/* The answer's Id: the query's `id`, else "q" (or "q_N" when an expression's metric is "q"). */
static int kn_cloudwatch_answer_id(struct kn_cloudwatch_reader *rd, const struct kn_node *map,
                                   char **out)
{
    const struct kn_node *metrics = kn_node_get(map, "metrics");
    const char *given;
    char *id = NULL;
    int rc = 0;

    *out = NULL;
    if ((rc = kn_cloudwatch_string(rd, "", map, "id", &given)) < 0) {
        goto out;
    }
    if (given && !kn_cloudwatch_valid_id(given)) {
        rc = kn_cloudwatch_bad(rd, "", "'id' must start with a lower-case letter and hold only "
                               "letters, digits and '_', got '%s'", given);
        goto out;
    }
    if (given && kn_node_get(metrics, given)) {
        rc = kn_cloudwatch_bad(rd, "", "'id' '%s' is also the id of one of 'metrics'", given);
        goto out;
    }
    id = kn_strdup(given ? given : "q");
    for (int n = 1; kn_node_get(metrics, id); n++) {
        free(id);
        id = kn_asprintf("q_%d", n);
    }
    *out = id;
out:
    return rc;
}

/* `{label="..."}` or `{id="..."}`, the value escaped as Prometheus's labels are. */
static char *kn_cloudwatch_labels(const char *name, const char *value)
{
    struct kn_buf b;

    kn_buf_init(&b, KN_BUF_UNBOUNDED);
    kn_buf_addf(&b, "{%s=\"", name);
    for (const char *p = value; *p; p++) {
        if (*p == '\\' || *p == '"') {
            kn_buf_addch(&b, '\\');
            kn_buf_addch(&b, *p);
        } else if (*p == '\n') {
            kn_buf_adds(&b, "\\n");
        } else {
            kn_buf_addch(&b, *p);
        }
    }
    kn_buf_adds(&b, "\"}");
    return kn_buf_detach(&b, NULL);
}

long long kn_cloudwatch_period(long long step_ms)
{
    long long s = (step_ms + 999) / 1000;

    if (step_ms <= 0) {
        return KN_CLOUDWATCH_DEFAULT_PERIOD;
    }
    return s <= 1 ? 1 : s <= 5 ? 5 : s <= 10 ? 10 : s <= 30 ? 30 : (s + 59) / 60 * 60;
}

/* The answering query and its companions from the parsed query. */
static int kn_cloudwatch_read(struct kn_cloudwatch_reader *rd, const struct kn_node *map,
                              struct kn_cloudwatch_request *req)
{
    const char *expression, *label;
    json_t *answer = NULL;
    int rc = 0;

    if (map->type != KN_NODE_MAP) {
        rc = kn_cloudwatch_bad(rd, "", "a query is a map (a metric, or an expression with "
                               "metrics), got %s", kn_node_describe(map));
        goto out;
    }
    if ((rc = kn_cloudwatch_string(rd, "", map, "expression", &expression)) < 0 ||
        (rc = kn_cloudwatch_string(rd, "", map, "label", &label)) < 0 ||
        (rc = kn_cloudwatch_answer_id(rd, map, &req->id)) < 0) {
        goto out;
    }
    if (expression) {
        if ((rc = kn_cloudwatch_known_keys(rd, "", map, kn_cloudwatch_math_keys,
                                           "an expression")) < 0 ||
            (rc = kn_cloudwatch_period_of(rd, "", map, rd->period, &rd->period)) < 0 ||
            (rc = kn_cloudwatch_math_metrics(rd, map)) < 0) {
            goto out;
        }
        answer = json_pack("{s:s, s:s}", "Id", req->id, "Expression", expression);
    } else {
        json_t *stat = NULL;
        if (kn_node_get(map, "metrics")) {
            rc = kn_cloudwatch_bad(rd, "", "'metrics' goes with an 'expression', and there is "
                                   "none");
            goto out;
        }
        if ((rc = kn_cloudwatch_known_keys(rd, "", map, kn_cloudwatch_metric_keys,
                                           "a metric")) < 0 ||
            (rc = kn_cloudwatch_metric_stat(rd, "", map, &stat)) < 0) {
            goto out;
        }
        /* the window of an instant query is the metric's own period */
        rd->period = json_integer_value(json_object_get(stat, "Period"));
        answer = json_pack("{s:s, s:o}", "Id", req->id, "MetricStat", stat);
    }
    if (label) {
        json_object_set_new(answer, "Label", json_string(label));
    }
    json_object_set_new(answer, "ReturnData", json_true());
    json_array_append_new(rd->queries, answer);
    req->labels = label ? kn_cloudwatch_labels("label", label)
                        : kn_cloudwatch_labels("id", req->id);
out:
    return rc;
}

int kn_cloudwatch_request_init(struct kn_cloudwatch_request *req,
                               const struct kn_metrics_query *q, char *msg, size_t size)
{
    struct kn_cloudwatch_reader rd = {.msg = msg, .size = size};
    struct kn_yaml *yaml = NULL;
    struct kn_error err;
    long long start, end;
    int rc = 0;

    memset(req, 0, sizeof(*req));
    snprintf(msg, size, "%s", "");
    rd.queries = json_array();
    if (!q || !q->query || !*q->query) {
        rc = kn_cloudwatch_bad(&rd, "", "no query");
        goto out;
    }
    if (q->start_ms < 0 || q->end_ms < q->start_ms) {
        rc = kn_cloudwatch_bad(&rd, "", "bad window %lld..%lld ms", q->start_ms, q->end_ms);
        goto out;
    }
    kn_error_clear(&err);
    if (strlen(q->query) > KN_CLOUDWATCH_MAX_QUERY ||
        kn_yaml_parse(&yaml, "query", q->query, strlen(q->query), NULL, &err) < 0) {
        rc = kn_cloudwatch_bad(&rd, "", "not JSON or YAML (line %u, column %u): %s", err.line,
                               err.col, err.msg[0] ? err.msg : "over 64 KiB");
        goto out;
    }
    if (yaml->ndocs != 1) {
        rc = kn_cloudwatch_bad(&rd, "", "a query is one JSON or YAML object, got %zu documents",
                               yaml->ndocs);
        goto out;
    }
    rd.period = kn_cloudwatch_period(q->step_ms);
    if ((rc = kn_cloudwatch_read(&rd, yaml->docs[0], req)) < 0) {
        goto out;
    }
    /* CloudWatch takes whole seconds here; an instant query asks for the last period */
    end = (q->end_ms + 999) / 1000;
    start = q->start_ms == q->end_ms ? end - rd.period : q->start_ms / 1000;
    req->params = json_pack("{s:O, s:I, s:I, s:s, s:i}", "MetricDataQueries", rd.queries,
                            "StartTime", (json_int_t)start, "EndTime", (json_int_t)end, "ScanBy",
                            "TimestampAscending", "MaxDatapoints", KN_CLOUDWATCH_MAX_SAMPLES);
out:
    if (rc < 0) {
        kn_cloudwatch_request_release(req);
    }
    json_decref(rd.queries);
    kn_yaml_free(yaml);
    return rc;
}

void kn_cloudwatch_request_release(struct kn_cloudwatch_request *req)
{
    if (!req) {
        return;
    }
    json_decref(req->params);
    free(req->id);
    free(req->labels);
    memset(req, 0, sizeof(*req));
}

int kn_cloudwatch_check_query(const char *query, char *msg, size_t size)
{
    struct kn_metrics_query q = {.query = query, .start_ms = 0, .end_ms = 600000};
    struct kn_cloudwatch_request req;
    int rc = kn_cloudwatch_request_init(&req, &q, msg, size);

    kn_cloudwatch_request_release(&req);
    return rc;
}

/* ---- the reply ------------------------------------------------------------------------------ */

void kn_cloudwatch_fail(struct kn_metrics_result *r, const char *fmt, ...)
{
    va_list ap;
    int n;

    kn_metrics_result_release(r);
    n = snprintf(r->error, sizeof(r->error), "cloudwatch: ");
    va_start(ap, fmt);
    vsnprintf(r->error + n, sizeof(r->error) - (size_t)n, fmt, ap);
    va_end(ap);
}

/* A timestamp of the reply: epoch seconds (awsJson's form), or an ISO 8601 UTC string. */
static int kn_cloudwatch_time(const json_t *t, long long *ms)
{
    const char *s = json_string_value(t);
    struct tm tm;
    const char *rest;
    double frac = 0;
    int rc = KN_EPARSE;

    if (json_is_number(t) && fabs(json_number_value(t)) < 1e12) {
        *ms = llround(json_number_value(t) * 1000.0);
        rc = 0;
        goto out;
    }
    memset(&tm, 0, sizeof(tm));
    if (!s || !(rest = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm))) {
        goto out;
    }
    if (*rest == '.') {
        char *end;
        frac = strtod(rest, &end);
        rest = end;
    }
    if (strcmp(rest, "Z") != 0 && strcmp(rest, "+00:00") != 0) {
        goto out;
    }
    *ms = (long long)timegm(&tm) * 1000 + llround(frac * 1000.0);
    rc = 0;
out:
    return rc;
}

/* "Code: Value; Code: Value" of a Messages array, at most a few. */
static void kn_cloudwatch_messages(char *buf, size_t size, const json_t *messages)
{
    size_t n = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < json_array_size(messages) && i < KN_CLOUDWATCH_MAX_MESSAGES; i++) {
        const json_t *m = json_array_get(messages, i);
        const char *code = json_string_value(json_object_get(m, "Code"));
        const char *value = json_string_value(json_object_get(m, "Value"));
        int w = snprintf(buf + n, size - n, "%s%s%s%s", n ? "; " : "", code ? code : "",
                         code && value ? ": " : "", value ? value : "");
        if (w < 0 || (size_t)w >= size - n) {
            break;
        }
        n += (size_t)w;
    }
}

/* The one series of r, made on the first page. */
static struct kn_metrics_series *kn_cloudwatch_series(struct kn_metrics_result *r,
                                                      const char *labels)
{
    if (r->nseries == 0) {
        r->series = kn_calloc(1, sizeof(*r->series));
        r->nseries = 1;
        r->series[0].labels = kn_strdup(labels ? labels : "{}");
    }
    return &r->series[0];
}

/* Append the points of one MetricDataResult. */
static int kn_cloudwatch_add_points(struct kn_metrics_result *r,
                                    const struct kn_cloudwatch_request *req, const json_t *result)
{
    const json_t *times = json_object_get(result, "Timestamps");
    const json_t *values = json_object_get(result, "Values");
    struct kn_metrics_series *s;
    size_t n = json_array_size(values);
    int rc = 0;

    if ((times && !json_is_array(times)) || (values && !json_is_array(values)) ||
        json_array_size(times) != n) {
        kn_cloudwatch_fail(r, "result '%s' has %zu timestamps for %zu values", req->id,
                           json_array_size(times), n);
        rc = KN_EPARSE;
        goto out;
    }
    s = kn_cloudwatch_series(r, req->labels);
    if (s->count + n > KN_CLOUDWATCH_MAX_SAMPLES) {
        kn_cloudwatch_fail(r, "the answer holds more than %d data points; narrow the window or "
                           "raise the period", KN_CLOUDWATCH_MAX_SAMPLES);
        rc = KN_ELIMIT;
        goto out;
    }
    s->values = kn_reallocarray(s->values, s->count + n + 1, sizeof(*s->values));
    s->times_ms = kn_reallocarray(s->times_ms, s->count + n + 1, sizeof(*s->times_ms));
    for (size_t i = 0; i < n; i++) {
        const json_t *v = json_array_get(values, i);
        if (!json_is_number(v) || kn_cloudwatch_time(json_array_get(times, i),
                                                     &s->times_ms[s->count]) < 0) {
            kn_cloudwatch_fail(r, "result '%s': point %zu is not a time and a number", req->id,
                               i);
            rc = KN_EPARSE;
            goto out;
        }
        s->values[s->count++] = json_number_value(v);
    }
out:
    return rc;
}

int kn_cloudwatch_add_page(struct kn_metrics_result *r, const struct kn_cloudwatch_request *req,
                           const json_t *reply, const char **next_token)
{
    const json_t *results = json_object_get(reply, "MetricDataResults");
    const json_t *token = json_object_get(reply, "NextToken");
    char messages[512];
    int rc = 0;

    *next_token = NULL;
    if (!json_is_object(reply) || (results && !json_is_array(results)) ||
        (token && !json_is_null(token) && !json_is_string(token))) {
        kn_cloudwatch_fail(r, "the GetMetricData reply is not of the API's shape");
        rc = KN_EPARSE;
        goto out;
    }
    for (size_t i = 0; i < json_array_size(results); i++) {
        const json_t *res = json_array_get(results, i);
        const char *id = json_string_value(json_object_get(res, "Id"));
        const char *status = json_string_value(json_object_get(res, "StatusCode"));
        if (!id || strcmp(id, req->id) != 0) {
            continue; /* not the answer (ReturnData false is not sent back anyway) */
        }
        if (status && strcmp(status, "Complete") != 0 && strcmp(status, "PartialData") != 0) {
            kn_cloudwatch_messages(messages, sizeof(messages), json_object_get(res, "Messages"));
            if (!messages[0]) {
                kn_cloudwatch_messages(messages, sizeof(messages),
                                       json_object_get(reply, "Messages"));
            }
            kn_cloudwatch_fail(r, "%s%s%s", status, messages[0] ? ": " : "", messages);
            rc = KN_EIO;
            goto out;
        }
        if ((rc = kn_cloudwatch_add_points(r, req, res)) < 0) {
            goto out;
        }
    }
    if (json_is_string(token) && json_string_length(token) > 0) {
        *next_token = json_string_value(token);
    }
out:
    return rc;
}

static int kn_cloudwatch_cmp_point(const void *a, const void *b)
{
    const long long *x = a, *y = b;

    return (*x > *y) - (*x < *y);
}

void kn_cloudwatch_finish(struct kn_metrics_result *r)
{
    struct kn_metrics_series *s = r->nseries ? &r->series[0] : NULL;

    if (s && s->count == 0) {
        kn_metrics_result_release(r);
    } else if (s) {
        /* pages come in order, but an emulator may answer newest first: sort pairs by time */
        struct {
            long long t;
            double v;
        } *p = kn_reallocarray(NULL, s->count, sizeof(*p));
        for (size_t i = 0; i < s->count; i++) {
            p[i].t = s->times_ms[i];
            p[i].v = s->values[i];
        }
        qsort(p, s->count, sizeof(*p), kn_cloudwatch_cmp_point);
        for (size_t i = 0; i < s->count; i++) {
            s->times_ms[i] = p[i].t;
            s->values[i] = p[i].v;
        }
        free(p);
    }
    r->ok = 1;
}
