/*
 * The Prometheus provider's keys in kanaria.yaml and its query check (see config.h). Messages
 * name the entry they are in:
 *
 *     kanaria.yaml:7:22: metricsProviders[0]: 'bearerTokenFile' and 'basicAuth' cannot both be set
 */
#include "metrics/prometheus/config.h"

#include <stdio.h>
#include <string.h>

#include "kanaria/error.h"

static void kn_prometheus_check_basic_auth(void *obj, const struct kn_node *node,
                                           struct kn_schema_ctx *ctx)
{
    const struct kn_prometheus_basic_auth *a = obj;

    if (node && !!a->username != !!a->password_file) {
        kn_schema_error_in(ctx, ctx->path, node,
                           "'username' and 'passwordFile' go together, '%s' is missing",
                           a->username ? "passwordFile" : "username");
    }
}

static const struct kn_field kn_prometheus_basic_auth_fields[] = {
    {.key = "username",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_prometheus_basic_auth, username),
     .flags = KN_FIELD_NONEMPTY,
     .help = "HTTP basic auth user; with passwordFile"},
    {.key = "passwordFile",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_prometheus_basic_auth, password_file),
     .flags = KN_FIELD_NONEMPTY,
     .help = "file holding the HTTP basic auth password; with username"},
};

static const struct kn_schema kn_prometheus_basic_auth_schema = {
    .name = "basicAuth",
    KN_SCHEMA_FIELDS(kn_prometheus_basic_auth_fields),
    .size = sizeof(struct kn_prometheus_basic_auth),
    .set_offset = offsetof(struct kn_prometheus_basic_auth, set),
    .check = kn_prometheus_check_basic_auth,
};

/* http:// or https:// followed by a host. */
static int kn_prometheus_is_http_url(const char *s)
{
    const char *rest = NULL;

    if (strncmp(s, "http://", 7) == 0) {
        rest = s + 7;
    } else if (strncmp(s, "https://", 8) == 0) {
        rest = s + 8;
    }
    return rest && *rest && *rest != '/' && !strpbrk(rest, " \t\r\n");
}

static void kn_prometheus_check_config(void *obj, const struct kn_node *node,
                                       struct kn_schema_ctx *ctx)
{
    const struct kn_prometheus_config *p = obj;

    if (p->address && !kn_prometheus_is_http_url(p->address)) {
        kn_schema_error_in(ctx, ctx->path, kn_node_get(node, "address"),
                           "'address' must be an http:// or https:// url, got '%s'", p->address);
    }
    if (p->bearer_token_file && kn_node_get(node, "basicAuth")) {
        kn_schema_error_in(ctx, ctx->path, kn_node_get(node, "bearerTokenFile"),
                           "'bearerTokenFile' and 'basicAuth' cannot both be set");
    }
}

static const struct kn_field kn_prometheus_config_fields[] = {
    {.key = "address",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_prometheus_config, address),
     .flags = KN_FIELD_REQUIRED | KN_FIELD_NONEMPTY,
     .help = "base url of the server, http:// or https://"},
    {.key = "timeout",
     .type = KN_TYPE_DURATION,
     .offset = offsetof(struct kn_prometheus_config, timeout_ms),
     .flags = KN_FIELD_MIN | KN_FIELD_MAX,
     .def = "10s",
     .min = 1000,
     .max = 300000,
     .help = "limit on one query, 1s to 5m; a query that takes longer is inconclusive"},
    {.key = "basicAuth",
     .type = KN_TYPE_OBJECT,
     .offset = offsetof(struct kn_prometheus_config, basic_auth),
     .sub = &kn_prometheus_basic_auth_schema,
     .help = "HTTP basic auth; not with bearerTokenFile"},
    {.key = "bearerTokenFile",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_prometheus_config, bearer_token_file),
     .flags = KN_FIELD_NONEMPTY,
     .help = "file holding a token sent as `Authorization: Bearer`; not with basicAuth"},
};

const struct kn_schema kn_prometheus_config_schema = {
    .name = "prometheus provider",
    KN_SCHEMA_FIELDS(kn_prometheus_config_fields),
    .size = sizeof(struct kn_prometheus_config),
    .set_offset = offsetof(struct kn_prometheus_config, set),
    .check = kn_prometheus_check_config,
};

/* ---- the query check ------------------------------------------------------------------------ */

#define KN_PROMETHEUS_MAX_NESTING 64

int kn_prometheus_check_query(const char *query, char *msg, size_t size)
{
    char open[KN_PROMETHEUS_MAX_NESTING];
    size_t at[KN_PROMETHEUS_MAX_NESTING];
    size_t depth = 0;
    int rc = 0;

    for (size_t i = 0; query[i]; i++) {
        char c = query[i];
        const char *close;
        if (c == '"' || c == '\'' || c == '`') {
            size_t start = i++;
            while (query[i] && query[i] != c) {
                if (c != '`' && query[i] == '\\' && query[i + 1]) {
                    i++; /* an escaped character, the quote included */
                }
                i++;
            }
            if (!query[i]) {
                snprintf(msg, size, "the string opened with %c at offset %zu never ends", c, start);
                rc = KN_EINVAL;
                goto out;
            }
            continue;
        }
        if (c == '(' || c == '[' || c == '{') {
            if (depth == KN_PROMETHEUS_MAX_NESTING) {
                snprintf(msg, size, "more than %d nested brackets at offset %zu",
                         KN_PROMETHEUS_MAX_NESTING, i);
                rc = KN_EINVAL;
                goto out;
            }
            open[depth] = c;
            at[depth++] = i;
            continue;
        }
        if (!(close = strchr(")]}", c)) || !c) {
            continue;
        }
        if (depth == 0) {
            snprintf(msg, size, "'%c' at offset %zu closes nothing", c, i);
            rc = KN_EINVAL;
            goto out;
        }
        if ("([{"[close - ")]}"] != open[depth - 1]) {
            snprintf(msg, size, "'%c' at offset %zu does not close the '%c' at offset %zu", c, i,
                     open[depth - 1], at[depth - 1]);
            rc = KN_EINVAL;
            goto out;
        }
        depth--;
    }
    if (depth > 0) {
        snprintf(msg, size, "the '%c' at offset %zu is never closed", open[depth - 1],
                 at[depth - 1]);
        rc = KN_EINVAL;
    }
out:
    return rc;
}
