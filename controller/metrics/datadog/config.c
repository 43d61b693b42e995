/*
 * The Datadog provider's keys in kanaria.yaml and its query check (see config.h):
 *
 *     metricsProviders:
 *       - name: dd
 *         type: datadog
 *         site: datadoghq.eu            # or address: http://127.0.0.1:8080 (a proxy, a test)
 *         apiKeyFile: /etc/kanaria/dd-api-key
 *         appKeyFile: /etc/kanaria/dd-app-key
 *         timeout: 30s
 */
#include "metrics/datadog/config.h"

#include <stdio.h>
#include <string.h>

#include "kanaria/error.h"

#define KN_DATADOG_MAX_NESTING 64

/* http:// or https:// followed by a host, no white space, no query string. */
static int kn_datadog_is_http_url(const char *s)
{
    const char *rest = NULL;

    if (strncmp(s, "http://", 7) == 0) {
        rest = s + 7;
    } else if (strncmp(s, "https://", 8) == 0) {
        rest = s + 8;
    }
    return rest && *rest && *rest != '/' && !strpbrk(rest, " \t\r\n?#");
}

/* A host name: letters, digits, '-' and '.', with a dot inside. */
static int kn_datadog_is_site(const char *s)
{
    size_t n = strlen(s);

    return n > 2 && n < 200 && strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-.") == n &&
           strchr(s, '.') && s[0] != '.' && s[n - 1] != '.' && !strstr(s, "..");
}

static void kn_datadog_check_config(void *obj, const struct kn_node *node,
                                    struct kn_schema_ctx *ctx)
{
    const struct kn_datadog_config *d = obj;

    if (d->address && !kn_datadog_is_http_url(d->address)) {
        kn_schema_error_in(ctx, ctx->path, kn_node_get(node, "address"),
                           "'address' must be an http:// or https:// url without a query, got "
                           "'%s'", d->address);
    }
    if (d->site && !kn_datadog_is_site(d->site)) {
        kn_schema_error_in(ctx, ctx->path, kn_node_get(node, "site"),
                           "'site' must be a Datadog site such as datadoghq.com, datadoghq.eu or "
                           "us3.datadoghq.com, got '%s'", d->site);
    }
    if (d->address && kn_node_get(node, "site")) {
        kn_schema_error_in(ctx, ctx->path, kn_node_get(node, "address"),
                           "'address' and 'site' cannot both be set");
    }
}

static const struct kn_field kn_datadog_config_fields[] = {
    {.key = "site",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_datadog_config, site),
     .flags = KN_FIELD_NONEMPTY,
     .def = "datadoghq.com",
     .help = "the Datadog site (datadoghq.com, datadoghq.eu, us3.datadoghq.com, "
             "us5.datadoghq.com, ap1.datadoghq.com, ddog-gov.com); queries go to "
             "https://api.SITE; not with address"},
    {.key = "address",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_datadog_config, address),
     .flags = KN_FIELD_NONEMPTY,
     .help = "base url instead of https://api.SITE (a proxy), http:// or https://; not with "
             "site"},
    {.key = "apiKeyFile",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_datadog_config, api_key_file),
     .flags = KN_FIELD_REQUIRED | KN_FIELD_NONEMPTY,
     .help = "file holding the API key, sent as DD-API-KEY; read at each query"},
    {.key = "appKeyFile",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_datadog_config, app_key_file),
     .flags = KN_FIELD_REQUIRED | KN_FIELD_NONEMPTY,
     .help = "file holding the application key, sent as DD-APPLICATION-KEY; read at each query"},
    {.key = "timeout",
     .type = KN_TYPE_DURATION,
     .offset = offsetof(struct kn_datadog_config, timeout_ms),
     .flags = KN_FIELD_MIN | KN_FIELD_MAX,
     .def = "30s",
     .min = 1000,
     .max = 300000,
     .help = "limit on one query with its wait for a rate limit's reset, 1s to 5m; a query "
             "that takes longer is inconclusive"},
};

const struct kn_schema kn_datadog_config_schema = {
    .name = "datadog provider",
    KN_SCHEMA_FIELDS(kn_datadog_config_fields),
    .size = sizeof(struct kn_datadog_config),
    .set_offset = offsetof(struct kn_datadog_config, set),
    .check = kn_datadog_check_config,
};

/* ---- the query check ------------------------------------------------------------------------ */

int kn_datadog_check_query(const char *query, char *msg, size_t size)
{
    char open[KN_DATADOG_MAX_NESTING];
    size_t at[KN_DATADOG_MAX_NESTING];
    size_t depth = 0;
    int rc = KN_EINVAL;

    if (!*query) {
        snprintf(msg, size, "the query is empty");
        goto out;
    }
    for (size_t i = 0; query[i]; i++) {
        char c = query[i];
        const char *close;
        if (c == '\n' || c == '\r') {
            snprintf(msg, size, "a line end at offset %zu", i);
            goto out;
        }
        if (c == '(' || c == '[' || c == '{') {
            if (depth == KN_DATADOG_MAX_NESTING) {
                snprintf(msg, size, "more than %d nested brackets at offset %zu",
                         KN_DATADOG_MAX_NESTING, i);
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
            goto out;
        }
        if ("([{"[close - ")]}"] != open[depth - 1]) {
            snprintf(msg, size, "'%c' at offset %zu does not close the '%c' at offset %zu", c, i,
                     open[depth - 1], at[depth - 1]);
            goto out;
        }
        depth--;
    }
    if (depth > 0) {
        snprintf(msg, size, "the '%c' at offset %zu is never closed", open[depth - 1],
                 at[depth - 1]);
        goto out;
    }
    rc = 0;
out:
    return rc;
}
