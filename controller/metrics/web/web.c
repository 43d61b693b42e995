/*
 * The web metrics provider (see web.h and include/kanaria/metrics.h).
 *
 * The values of headersFromFiles are read from their files at each query (kanaria/secret.h) and
 * go only into the request's headers; making the instance reads them once too, so that a file
 * that cannot be read is an error at start. No message or log line holds them. A query owns
 * nothing of the instance (its call record holds the callback and its own copy of the path), so
 * destroying the instance while queries are in flight is safe: each still calls back once.
 */
#include "metrics/web/web.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kanaria/alloc.h"
#include "kanaria/config.h"
#include "kanaria/http.h"
#include "kanaria/log.h"
#include "kanaria/secret.h"
#include "metrics/web/config.h"

/* Bytes of a body or a value quoted in a message. */
#define KN_WEB_MAX_QUOTE 200

struct kn_web {
    char who[160];        /* "metrics provider=stats" */
    const char *method;   /* static */
    char *json_path;      /* the default path, or NULL (owned) */
    char **headers;       /* "Name: value" lines, NULL-terminated (owned) */
    size_t nheaders;
    char **file_names;    /* headersFromFiles names and files, nfiles each (owned) */
    char **file_paths;
    size_t nfiles;
    char *body;           /* or NULL (owned) */
    long timeout_ms;
    struct kn_http_client *http; /* borrowed; outlives the instance */
};

/* One query in flight, from kn_http_start until its callback has run. */
struct kn_web_call {
    char *path;          /* (owned) */
    long long time_ms;   /* the sample's time */
    kn_metrics_cb cb;
    void *data;
};

/* ---- pure parts: the query, the path, the reply ---------------------------------------------- */

void kn_web_split_query(const char *query, size_t *url_len, const char **path)
{
    size_t n = strcspn(query, " \t\r\n");
    const char *rest = query + n;

    rest += strspn(rest, " \t\r\n");
    *url_len = n;
    *path = *rest ? rest : NULL;
}

static int kn_web_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-';
}

static int kn_web_bad(char *msg, size_t size, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int kn_web_bad(char *msg, size_t size, int rc, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, size, fmt, ap);
    va_end(ap);
    return rc;
}

int kn_web_path_eval(const json_t *root, const char *path, const json_t **out, char *msg,
                     size_t size)
{
    char key[KN_WEB_MAX_PATH + 1];
    const json_t *cur = root;
    size_t len = strlen(path);
    size_t i, end, start;
    int steps = 0;

    if (len > KN_WEB_MAX_PATH) {
        return kn_web_bad(msg, size, KN_EINVAL, "the path is longer than %d bytes",
                          KN_WEB_MAX_PATH);
    }
    start = 0;
    end = len;
    if (path[0] == '{') {
        if (len < 2 || path[len - 1] != '}') {
            return kn_web_bad(msg, size, KN_EINVAL, "the '{' at offset 0 is never closed");
        }
        start = 1;
        end = len - 1;
    }
    if (start >= end || path[start] != '$') {
        return kn_web_bad(msg, size, KN_EINVAL, "a path starts with '$' (at offset %zu)", start);
    }
    for (i = start + 1; i < end;) {
        const char *name = NULL;
        size_t name_len = 0, from = i, j;
        long long index = 0;
        if (++steps > KN_WEB_MAX_STEPS) {
            return kn_web_bad(msg, size, KN_EINVAL, "more than %d steps", KN_WEB_MAX_STEPS);
        }
        if (path[i] == '.') {
            for (j = i + 1; j < end && kn_web_name_char(path[j]); j++) {
            }
            if (j == i + 1) {
                return kn_web_bad(msg, size, KN_EINVAL,
                                  "a name (letters, digits, '_', '-') must follow the '.' at "
                                  "offset %zu; use ['...'] for others", i);
            }
            name = path + i + 1;
            name_len = j - i - 1;
            i = j;
        } else if (path[i] == '[' && i + 1 < end && (path[i + 1] == '\'' || path[i + 1] == '"')) {
            char q = path[i + 1];
            for (j = i + 2; j < end && path[j] != q; j++) {
            }
            if (j >= end) {
                return kn_web_bad(msg, size, KN_EINVAL,
                                  "the string opened with %c at offset %zu never ends", q, i + 1);
            }
            if (j + 1 >= end || path[j + 1] != ']') {
                return kn_web_bad(msg, size, KN_EINVAL, "expected ']' at offset %zu", j + 1);
            }
            name = path + i + 2;
            name_len = j - i - 2;
            i = j + 2;
        } else if (path[i] == '[') {
            int neg = 0, digits = 0;
            j = i + 1;
            if (j < end && path[j] == '-') {
                neg = 1;
                j++;
            }
            for (; j < end && path[j] >= '0' && path[j] <= '9' && digits < 9; j++, digits++) {
                index = index * 10 + (path[j] - '0');
            }
            if (!digits || j >= end || path[j] != ']') {
                return kn_web_bad(msg, size, KN_EINVAL,
                                  "expected an index ([0], [-1]) or a quoted name at offset %zu; "
                                  "wildcards, slices and filters are not supported", i);
            }
            index = neg ? -index : index;
            i = j + 1;
        } else {
            return kn_web_bad(msg, size, KN_EINVAL,
                              "unexpected '%c' at offset %zu (expected '.' or '[')", path[i], i);
        }
        if (!root) {
            continue;
        }
        if (name) {
            memcpy(key, name, name_len);
            key[name_len] = '\0';
            if (!json_is_object(cur)) {
                return kn_web_bad(msg, size, KN_ENOTFOUND, "the value at %.*s is not an object",
                                  (int)(from - start), path + start);
            }
            if (!(cur = json_object_get(cur, key))) {
                return kn_web_bad(msg, size, KN_ENOTFOUND, "no member '%s' in the object at %.*s",
                                  key, (int)(from - start), path + start);
            }
        } else {
            size_t n = json_array_size(cur);
            long long at = index < 0 ? (long long)n + index : index;
            if (!json_is_array(cur)) {
                return kn_web_bad(msg, size, KN_ENOTFOUND, "the value at %.*s is not an array",
                                  (int)(from - start), path + start);
            }
            if (at < 0 || at >= (long long)n) {
                return kn_web_bad(msg, size, KN_ENOTFOUND,
                                  "no element [%lld] in the array of %zu at %.*s", index, n,
                                  (int)(from - start), path + start);
            }
            cur = json_array_get(cur, (size_t)at);
        }
    }
    if (root && out) {
        *out = cur;
    }
    return 0;
}

/* Drop what r holds and say why, prefixed "web: ". */
static void kn_web_fail(struct kn_metrics_result *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void kn_web_fail(struct kn_metrics_result *r, const char *fmt, ...)
{
    va_list ap;
    int n;

    kn_metrics_result_release(r);
    n = snprintf(r->error, sizeof(r->error), "web: ");
    va_start(ap, fmt);
    vsnprintf(r->error + n, sizeof(r->error) - (size_t)n, fmt, ap);
    va_end(ap);
}

static void kn_web_quote(char *buf, size_t size, const char *text, size_t len)
{
    size_t n = 0;

    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r' || text[len - 1] == ' ')) {
        len--;
    }
    for (size_t i = 0; i < len && n + 1 < size && i < KN_WEB_MAX_QUOTE; i++) {
        unsigned char c = (unsigned char)text[i];
        buf[n++] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
    }
    buf[n] = '\0';
}

/* The number a JSON value stands for; 0, or KN_EINVAL when it stands for none. */
static int kn_web_number(const json_t *v, double *out)
{
    const char *s;
    char *end;
    int rc = 0;

    if (json_is_number(v)) {
        *out = json_number_value(v);
    } else if (json_is_boolean(v)) {
        *out = json_is_true(v) ? 1.0 : 0.0;
    } else if ((s = json_string_value(v)) && *s && !strchr(" \t\r\n", *s)) {
        errno = 0;
        *out = strtod(s, &end);
        if (*end || (errno == ERANGE && !isinf(*out) && *out != 0.0)) {
            rc = KN_EINVAL;
        }
    } else {
        rc = KN_EINVAL;
    }
    return rc;
}

void kn_web_parse(struct kn_metrics_result *r, int status, const char *body, size_t body_len,
                  const char *path, long long time_ms)
{
    const json_t *v = NULL;
    json_t *root = NULL;
    json_error_t jerr;
    char quote[KN_WEB_MAX_QUOTE + 1];
    char msg[512];
    char *dump = NULL;
    double value = 0;

    memset(r, 0, sizeof(*r));
    if (status < 200 || status > 299) {
        kn_web_quote(quote, sizeof(quote), body ? body : "", body ? body_len : 0);
        kn_web_fail(r, "http status %d%s%s", status, quote[0] ? ": " : "", quote);
        goto out;
    }
    if (!path) {
        kn_web_fail(r, "no JSONPath: give one after the url in the query, or 'jsonPath' in the "
                    "provider's entry");
        goto out;
    }
    root = body && body_len ? json_loadb(body, body_len, JSON_DECODE_ANY, &jerr) : NULL;
    if (!root) {
        kn_web_quote(quote, sizeof(quote), body ? body : "", body ? body_len : 0);
        kn_web_fail(r, "reply is not json (%s): %s", body_len ? jerr.text : "empty body", quote);
        goto out;
    }
    if (kn_web_path_eval(root, path, &v, msg, sizeof(msg)) < 0) {
        kn_web_fail(r, "%s", msg);
        goto out;
    }
    if (json_is_null(v)) {
        r->ok = 1; /* no data */
        goto out;
    }
    if (kn_web_number(v, &value) < 0) {
        dump = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT | JSON_REAL_PRECISION(15));
        kn_web_quote(quote, sizeof(quote), dump ? dump : "?", dump ? strlen(dump) : 1);
        kn_web_fail(r, "the value at %s is not a number: %s", path, quote);
        goto out;
    }
    r->nseries = 1;
    r->series = kn_calloc(1, sizeof(*r->series));
    r->series[0].labels = kn_strdup("{}");
    r->series[0].count = 1;
    r->series[0].values = kn_calloc(1, sizeof(double));
    r->series[0].times_ms = kn_calloc(1, sizeof(long long));
    r->series[0].values[0] = value;
    r->series[0].times_ms[0] = time_ms;
    r->ok = 1;
out:
    free(dump);
    json_decref(root);
}

/* ---- the instance --------------------------------------------------------------------------- */

static void kn_web_destroy(void *instance)
{
    struct kn_web *w = instance;

    if (!w) {
        return;
    }
    for (size_t i = 0; i < w->nheaders; i++) {
        free(w->headers[i]);
    }
    for (size_t i = 0; i < w->nfiles; i++) {
        free(w->file_names[i]);
        free(w->file_paths[i]);
    }
    free(w->headers);
    free(w->file_names);
    free(w->file_paths);
    free(w->json_path);
    free(w->body);
    free(w);
}

/* Read the header files into "Name: value" lines at lines[0..nfiles-1] (kn_secret_free_str
 * each); 0, or the secret reader's code with err saying which file (never its content). */
static int kn_web_file_headers(const struct kn_web *w, char **lines, struct kn_error *err)
{
    int rc = 0;

    for (size_t i = 0; i < w->nfiles; i++) {
        struct kn_secret s = {0};
        struct kn_error e;
        kn_error_clear(&e);
        if ((rc = kn_secret_read(&s, w->file_paths[i], KN_SECRET_LINE, &e)) < 0) {
            rc = kn_error_set(err, rc, NULL, "headersFromFiles.%s: %s", w->file_names[i], e.msg);
            goto out;
        }
        lines[i] = kn_asprintf("%s: %s", w->file_names[i], s.data);
        kn_secret_release(&s);
    }
out:
    return rc;
}

static int kn_web_has_header(const struct kn_web *w, const char *name)
{
    size_t n = strlen(name);

    for (size_t i = 0; i < w->nheaders; i++) {
        if (strncasecmp(w->headers[i], name, n) == 0 && w->headers[i][n] == ':') {
            return 1;
        }
    }
    for (size_t i = 0; i < w->nfiles; i++) {
        if (strcasecmp(w->file_names[i], name) == 0) {
            return 1;
        }
    }
    return 0;
}

static int kn_web_create(void **out, const struct kn_metrics_provider_config *mc,
                         struct kn_http_client *http, struct kn_error *err)
{
    static const struct kn_web_config none = {0};
    const struct kn_web_config *cfg = mc->options ? mc->options : &none;
    struct kn_web *w = kn_calloc(1, sizeof(*w));
    char **lines = NULL;
    struct kn_error e;
    int rc = 0;

    *out = NULL;
    snprintf(w->who, sizeof(w->who), "metrics provider=%s", mc->name ? mc->name : "");
    w->method = kn_web_methods[cfg->method >= 0 && cfg->method <= KN_WEB_PUT ? cfg->method : 0];
    w->json_path = cfg->json_path ? kn_strdup(cfg->json_path) : NULL;
    w->body = cfg->body ? kn_strdup(cfg->body) : NULL;
    w->timeout_ms = cfg->timeout_ms > 0 ? (long)cfg->timeout_ms : KN_WEB_DEFAULT_TIMEOUT_MS;
    w->http = http;
    w->headers = kn_calloc(cfg->headers.count + 2, sizeof(*w->headers));
    for (size_t i = 0; i < cfg->headers.count; i++) {
        w->headers[w->nheaders++] =
            kn_asprintf("%s: %s", cfg->headers.keys[i], cfg->headers.values[i]);
    }
    w->file_names = kn_calloc(cfg->headers_from_files.count + 1, sizeof(char *));
    w->file_paths = kn_calloc(cfg->headers_from_files.count + 1, sizeof(char *));
    for (size_t i = 0; i < cfg->headers_from_files.count; i++) {
        w->file_names[i] = kn_strdup(cfg->headers_from_files.keys[i]);
        w->file_paths[i] = kn_strdup(cfg->headers_from_files.values[i]);
        w->nfiles++;
    }
    if (w->body && !kn_web_has_header(w, "Content-Type")) {
        w->headers[w->nheaders++] = kn_strdup("Content-Type: application/json");
    }
    /* the files are read at each query; read them now too, to fail at start */
    lines = kn_calloc(w->nfiles + 1, sizeof(*lines));
    kn_error_clear(&e);
    if ((rc = kn_web_file_headers(w, lines, &e)) < 0) {
        rc = kn_error_set(err, rc, NULL, "metrics provider '%s': %s", mc->name, e.msg);
        goto out;
    }
    *out = w;
    w = NULL;
out:
    for (size_t i = 0; lines && lines[i]; i++) {
        kn_secret_free_str(lines[i]);
    }
    free(lines);
    kn_web_destroy(w);
    return rc;
}

static void kn_web_on_response(const struct kn_http_response *res, void *data)
{
    struct kn_web_call *call = data;
    struct kn_metrics_result r;

    if (res->error) {
        memset(&r, 0, sizeof(r));
        kn_web_fail(&r, "%s", res->error);
    } else {
        kn_web_parse(&r, res->status, res->body, res->body_len, call->path, call->time_ms);
    }
    call->cb(&r, call->data);
    kn_metrics_result_release(&r);
    free(call->path);
    free(call);
}

static int kn_web_query(void *instance, const struct kn_metrics_query *q, kn_metrics_cb cb,
                        void *data)
{
    struct kn_web *w = instance;
    struct kn_web_call *call = NULL;
    struct kn_http_request req = {0};
    const char **headers = NULL;
    char **lines = NULL;
    const char *path = NULL;
    struct kn_error err;
    char *url = NULL;
    char msg[256];
    size_t url_len, n = 0;
    int rc = 0;

    if (!w || !q || !q->query || !cb) {
        rc = KN_EINVAL;
        goto out;
    }
    if (kn_web_check_query(q->query, msg, sizeof(msg)) < 0) {
        kn_log_error(w->who, "%s", msg);
        rc = KN_EINVAL;
        goto out;
    }
    kn_web_split_query(q->query, &url_len, &path);
    url = kn_asprintf("%.*s", (int)url_len, q->query);
    kn_error_clear(&err);
    lines = kn_calloc(w->nfiles + 1, sizeof(*lines));
    if ((rc = kn_web_file_headers(w, lines, &err)) < 0) {
        kn_log_error(w->who, "%s", err.msg);
        goto out;
    }
    headers = kn_calloc(w->nheaders + w->nfiles + 1, sizeof(*headers));
    for (size_t i = 0; i < w->nheaders; i++) {
        headers[n++] = w->headers[i];
    }
    for (size_t i = 0; i < w->nfiles; i++) {
        headers[n++] = lines[i];
    }
    req.method = w->method;
    req.url = url;
    req.headers = headers;
    req.body = w->method != kn_web_methods[KN_WEB_GET] ? w->body : NULL;
    req.body_len = req.body ? strlen(req.body) : 0;
    req.timeout_ms = q->timeout_ms > 0 ? q->timeout_ms : w->timeout_ms;
    req.max_response = KN_WEB_MAX_RESPONSE;
    call = kn_calloc(1, sizeof(*call));
    call->path = path ? kn_strdup(path) : w->json_path ? kn_strdup(w->json_path) : NULL;
    call->time_ms = q->end_ms;
    call->cb = cb;
    call->data = data;
    if ((rc = kn_http_start(NULL, w->http, &req, kn_web_on_response, call, &err)) < 0) {
        kn_log_error(w->who, "%s", err.msg);
        goto out;
    }
    call = NULL;
out:
    if (call) {
        free(call->path);
        free(call);
    }
    for (size_t i = 0; lines && i < w->nfiles; i++) {
        kn_secret_free_str(lines[i]);
    }
    free(lines);
    free(headers);
    free(url);
    return rc;
}

const struct kn_metrics_type kn_metrics_web = {
    .name = "web",
    .help = "A JSON document over HTTP (Argo Rollouts' `web` metric): a metric's query is the "
            "url, optionally followed by a JSONPath to the value; the provider's entry gives "
            "the path of queries without one, the method, headers (secrets read from files at "
            "each query), a body and the timeout. One value per evaluation, sampled when the "
            "reply arrives",
    .query_help =
        "A query is `URL` or `URL JSONPATH`: the url (http:// or https://, placeholders filled "
        "in and not encoded, so keep them url-safe), then white space and the path to the "
        "value. Without a path the entry's `jsonPath` is used. The path is a subset of JSONPath: "
        "`$`, `.name`, `['any name']`, `[0]`, `[-1]` (the last element); Argo's `{$.a.b}` "
        "braces are accepted. The value is a number, a string holding one (\"0.25\"), or "
        "true/false (1/0); `null` is no data (the check's `noData` decides); anything else, a "
        "missing member or a status other than 2xx fails the evaluation. Each evaluation gives "
        "one sample: use the `threshold` strategy (a comparison judges the samples of one "
        "evaluation and needs `minSamples` of them).\n\n"
        "    query: \"https://stats.example/api/v1/errors?app={{app}}&variant={{variant}}"
        " $.data.errorRate\"\n",
    .config_schema = &kn_web_config_schema,
    .metric_schema = NULL,
    .min_step_ms = 0,
    .check_query = kn_web_check_query,
    .create = kn_web_create,
    .query = kn_web_query,
    .destroy = kn_web_destroy,
};
