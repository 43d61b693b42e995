/*
 * The web provider's keys in kanaria.yaml and its query check (see config.h):
 *
 *     metricsProviders:
 *       - name: stats
 *         type: web
 *         jsonPath: $.data.errorRate          # for queries that give no path
 *         method: GET
 *         headers: {Accept: application/json}
 *         headersFromFiles: {Authorization: /etc/kanaria/stats-auth}   # "Bearer ..." inside
 *         timeout: 5s
 */
#include "metrics/web/config.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "kanaria/error.h"
#include "metrics/web/web.h"

const char *const kn_web_methods[] = {"GET", "POST", "PUT", NULL};

/* Header fields the HTTP client writes itself. */
static const char *const kn_web_reserved[] = {"Host", "Content-Length", "Transfer-Encoding",
                                              "Connection", NULL};

/* An RFC 9110 token. */
static int kn_web_is_token(const char *s)
{
    static const char chars[] = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz"
                                "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    size_t n = strlen(s);

    return n > 0 && strspn(s, chars) == n;
}

static void kn_web_check_headers(const struct kn_strmap *m, const char *key,
                                 const struct kn_strmap *other, const struct kn_node *node,
                                 struct kn_schema_ctx *ctx)
{
    const struct kn_node *at = kn_node_get(node, key);

    for (size_t i = 0; i < m->count; i++) {
        const char *name = m->keys[i];
        if (!kn_web_is_token(name)) {
            kn_schema_error_in(ctx, ctx->path, at, "'%s': '%s' is not a header name", key, name);
            continue;
        }
        for (size_t j = 0; kn_web_reserved[j]; j++) {
            if (strcasecmp(name, kn_web_reserved[j]) == 0) {
                kn_schema_error_in(ctx, ctx->path, at, "'%s': kanaria sets '%s' itself", key,
                                   name);
            }
        }
        if (m != other && strpbrk(m->values[i], "\r\n")) {
            kn_schema_error_in(ctx, ctx->path, at, "'%s': the value of '%s' holds a line end",
                               key, name);
        }
        for (size_t j = 0; other && m != other && j < other->count; j++) {
            if (strcasecmp(name, other->keys[j]) == 0) {
                kn_schema_error_in(ctx, ctx->path, at,
                                   "'%s' is in both 'headers' and 'headersFromFiles'", name);
            }
        }
    }
}

static void kn_web_check_config(void *obj, const struct kn_node *node, struct kn_schema_ctx *ctx)
{
    const struct kn_web_config *w = obj;
    char msg[256];

    if (w->json_path && kn_web_path_eval(NULL, w->json_path, NULL, msg, sizeof(msg)) < 0) {
        kn_schema_error_in(ctx, ctx->path, kn_node_get(node, "jsonPath"),
                           "'jsonPath' is not valid: %s", msg);
    }
    if (w->body && w->method == KN_WEB_GET) {
        kn_schema_error_in(ctx, ctx->path, kn_node_get(node, "body"),
                           "'body' needs 'method' POST or PUT");
    }
    kn_web_check_headers(&w->headers, "headers", &w->headers_from_files, node, ctx);
    kn_web_check_headers(&w->headers_from_files, "headersFromFiles", &w->headers_from_files,
                         node, ctx);
}

static const struct kn_field kn_web_config_fields[] = {
    {.key = "jsonPath",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_web_config, json_path),
     .flags = KN_FIELD_NONEMPTY,
     .help = "JSONPath to the value ($.a.b[0].c, ['a b'], [-1]) for queries that give none"},
    {.key = "method",
     .type = KN_TYPE_ENUM,
     .offset = offsetof(struct kn_web_config, method),
     .def = "GET",
     .enums = kn_web_methods,
     .help = "the request's method"},
    {.key = "headers",
     .type = KN_TYPE_STRING_MAP,
     .offset = offsetof(struct kn_web_config, headers),
     .help = "header fields sent as written (no secrets here: see headersFromFiles)"},
    {.key = "headersFromFiles",
     .type = KN_TYPE_STRING_MAP,
     .offset = offsetof(struct kn_web_config, headers_from_files),
     .help = "header fields whose value is a file's content (one line), read at each query: "
             "`Authorization: /etc/kanaria/token` with `Bearer ...` in the file"},
    {.key = "body",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_web_config, body),
     .help = "request body with POST or PUT, sent as written (Content-Type application/json "
             "unless headers say otherwise)"},
    {.key = "timeout",
     .type = KN_TYPE_DURATION,
     .offset = offsetof(struct kn_web_config, timeout_ms),
     .flags = KN_FIELD_MIN | KN_FIELD_MAX,
     .def = "10s",
     .min = 100,
     .max = 300000,
     .help = "limit on one request, 100ms to 5m; a request that takes longer is inconclusive"},
};

const struct kn_schema kn_web_config_schema = {
    .name = "web provider",
    KN_SCHEMA_FIELDS(kn_web_config_fields),
    .size = sizeof(struct kn_web_config),
    .set_offset = offsetof(struct kn_web_config, set),
    .check = kn_web_check_config,
};

/* ---- the query check ------------------------------------------------------------------------ */

int kn_web_check_query(const char *query, char *msg, size_t size)
{
    const char *path = NULL;
    const char *host = NULL;
    char why[200];
    size_t url_len = 0;
    int rc = KN_EINVAL;

    kn_web_split_query(query, &url_len, &path);
    if (strncmp(query, "http://", 7) == 0) {
        host = query + 7;
    } else if (strncmp(query, "https://", 8) == 0) {
        host = query + 8;
    }
    if (!host || host >= query + url_len || *host == '/') {
        snprintf(msg, size, "the query must be an http:// or https:// url, got '%.*s'",
                 (int)(url_len > 100 ? 100 : url_len), query);
        goto out;
    }
    if (path && kn_web_path_eval(NULL, path, NULL, why, sizeof(why)) < 0) {
        snprintf(msg, size, "the JSONPath after the url is not valid: %s", why);
        goto out;
    }
    rc = 0;
out:
    return rc;
}
