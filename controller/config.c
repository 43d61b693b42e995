/*
 * kanaria — the controller configuration, `kanaria.yaml`.
 *
 * One schema table per section: the tables drive parsing, `kanaria validate` and
 * `kanaria help config`. What a table cannot say is in the check hooks below them: the forms a
 * url or a HOST:PORT may take, keys that go together or exclude each other, unique names. A
 * hook names the struct it checks as the subject of its messages:
 *
 *     kanaria.yaml:12:7: repositories[1]: 'name' must be unique, 'deploy' is already used at line 4
 *
 * A platforms[] or metricsProviders[] entry is `name` and `type` here; its other keys are its
 * type's, parsed by the config_schema of the descriptor registered under that name.
 *
 * Sections that are lists (repositories, platforms, metricsProviders, users, notifications)
 * are empty when absent. In particular a config without `platforms` declares no platform and
 * this file adds none: the app side treats an empty list specially (an app's spec.platform then
 * names a platform type, which runs with its defaults), so it must stay empty.
 */
#include "kanaria/config.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kanaria/alloc.h"
#include "kanaria/error.h"
#include "kanaria/freeze.h"
#include "kanaria/log.h"
#include "kanaria/manifest.h"
#include "kanaria/metrics.h"
#include "kanaria/platform.h"
#include "kanaria/plugin/platform.h"
#include "kanaria/schema.h"
#include "template.h"

#define KN_CONFIG_URL_FORMS                                                                        \
    "a local path (/srv/git/deploy.git), file://, http://, https://, ssh:// or user@host:path"
#define KN_CONFIG_NAME_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"
#define KN_CONFIG_HOST_PORT  "HOST:PORT with a port from 1 to 65535 (IPv6 as [::1]:7070)"

/* Every type of event the controller writes, under the names notifications use (the store's
 * SUCCESS and FAILURE are SUCCEEDED, FAILED or ROLLED_BACK: see controller/notify.h). */
const char *const kn_event_names[] = {
    "TRIGGERED",          "PLANNED",        "STAGE_STARTED",  "STAGE_FINISHED",
    "WAITING_APPROVAL",   "APPROVED",       "REJECTED",       "ROLLING_BACK",
    "ROLLED_BACK",        "SUCCEEDED",      "FAILED",         "CANCELLED",
    "DRIFT_DETECTED",     "RUNNING",        "STAGE_LOG",      "SUPERSEDED",
    "DRIFT_RESOLVED",     "INVALID_APP",    "FORCE_PUSHED",   "CANCEL_REQUESTED",
    "ROLLBACK_REQUESTED", "SYNC_REQUESTED", "SKIP_REQUESTED", "APP_ORPHANED",
    "APP_PRUNED",         "APP_RESTORED",   "PRUNE_REQUESTED", "PRUNE_FAILED",
    "BREAK_GLASS",        "API_REFUSED",    NULL,
};

/* In the order of enum kn_role, enum kn_notification_type, enum kn_log_level and enum
 * kn_log_format. */
static const char *const kn_config_roles[] = {"viewer", "approver", "operator", "admin", NULL};
static const char *const kn_config_notify_types[] = {"webhook", "slack", "teams",
                                                             "pagerduty", NULL};
static const char *const kn_config_log_levels[] = {"debug", "info", "warn", "error", NULL};
static const char *const kn_config_log_formats[] = {"logfmt", "json", NULL};

/* ---- helpers for the check hooks ------------------------------------------------------------ */

/* Report a problem with `subject` (usually ctx->path, "repositories[1]") as the message's
 * subject, after the context's own prefix when there is one. */
static void kn_config_error(struct kn_schema_ctx *ctx, const char *subject,
                            const struct kn_node *node, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void kn_config_error(struct kn_schema_ctx *ctx, const char *subject,
                            const struct kn_node *node, const char *fmt, ...)
{
    char *msg;
    va_list ap;

    va_start(ap, fmt);
    msg = kn_vasprintf(fmt, ap);
    va_end(ap);
    kn_schema_error_in(ctx, subject, node, "%s", msg);
    free(msg);
}

/* The value node at a dotted path below map ("credentials.tokenFile"), or NULL. */
static const struct kn_node *kn_config_node(const struct kn_node *map, const char *path)
{
    char key[64];
    const char *dot;
    const struct kn_node *n = map;

    while (n && *path) {
        size_t len;
        dot = strchr(path, '.');
        len = dot ? (size_t)(dot - path) : strlen(path);
        if (len >= sizeof(key)) {
            n = NULL;
            goto out;
        }
        memcpy(key, path, len);
        key[len] = '\0';
        n = kn_node_get(n, key);
        path += len + (dot ? 1 : 0);
    }
out:
    return n;
}

static int kn_config_has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* http:// or https:// followed by a host. */
static int kn_config_is_http_url(const char *s)
{
    const char *rest = NULL;

    if (kn_config_has_prefix(s, "http://")) {
        rest = s + strlen("http://");
    } else if (kn_config_has_prefix(s, "https://")) {
        rest = s + strlen("https://");
    }
    return rest && *rest && *rest != '/' && !strpbrk(rest, " \t\r\n");
}

enum kn_config_url_kind {
    KN_CONFIG_URL_BAD = 0,
    KN_CONFIG_URL_LOCAL, /* a path, or file:// */
    KN_CONFIG_URL_HTTP,  /* http:// or https:// */
    KN_CONFIG_URL_SSH,   /* ssh:// or user@host:path */
};

/* user@host:path, as git and scp write it: no '/' before the ':' and each part non-empty. */
static int kn_config_is_scp_url(const char *s)
{
    const char *at = strchr(s, '@');
    const char *colon = NULL;
    int ok = 0;

    if (!at || at == s || memchr(s, '/', (size_t)(at - s)) || memchr(s, ':', (size_t)(at - s))) {
        goto out;
    }
    colon = strchr(at + 1, ':');
    if (!colon || colon == at + 1 || memchr(at + 1, '/', (size_t)(colon - at - 1))) {
        goto out;
    }
    ok = colon[1] != '\0';
out:
    return ok;
}

static enum kn_config_url_kind kn_config_url_kind(const char *s)
{
    enum kn_config_url_kind kind = KN_CONFIG_URL_BAD;

    if (kn_config_is_http_url(s)) {
        kind = KN_CONFIG_URL_HTTP;
    } else if (kn_config_has_prefix(s, "ssh://")) {
        kind = s[strlen("ssh://")] && s[strlen("ssh://")] != '/' ? KN_CONFIG_URL_SSH
                                                                 : KN_CONFIG_URL_BAD;
    } else if (kn_config_has_prefix(s, "file://")) {
        /* only local files: file:///srv/git/deploy.git */
        kind = s[strlen("file://")] == '/' ? KN_CONFIG_URL_LOCAL : KN_CONFIG_URL_BAD;
    } else if (strstr(s, "://")) {
        kind = KN_CONFIG_URL_BAD;
    } else if (s[0] == '/' || kn_config_has_prefix(s, "./") || kn_config_has_prefix(s, "../")) {
        kind = KN_CONFIG_URL_LOCAL;
    } else if (kn_config_is_scp_url(s)) {
        kind = KN_CONFIG_URL_SSH;
    }
    return kind;
}

/* HOST:PORT as everything in kanaria reads it (kn_hostport_parse): IPv6 in brackets, an empty
 * host for all addresses. */
static int kn_config_is_host_port(const char *s)
{
    char host[256];
    int port;

    return kn_hostport_parse(s, host, sizeof(host), &port) == 0;
}

/* ---- tls ------------------------------------------------------------------------------------ */

static void kn_config_check_tls(void *obj, const struct kn_node *node, struct kn_schema_ctx *ctx)
{
    const struct kn_tls_config *tls = obj;

    if (!!tls->cert_file != !!tls->key_file) {
        kn_config_error(ctx, ctx->path, node,
                        "'certFile' and 'keyFile' go together, '%s' is missing",
                        tls->cert_file ? "keyFile" : "certFile");
    }
}

static const struct kn_field kn_config_tls_fields[] = {
    {.key = "certFile",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_tls_config, cert_file),
     .flags = KN_FIELD_NONEMPTY,
     .help = "PEM certificate chain for `listen`; with keyFile the API is served over HTTPS"},
    {.key = "keyFile",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_tls_config, key_file),
     .flags = KN_FIELD_NONEMPTY,
     .help = "PEM private key of certFile; both or neither"},
};

static const struct kn_schema kn_config_tls_schema = {
    .name = "tls",
    KN_SCHEMA_FIELDS(kn_config_tls_fields),
    .size = sizeof(struct kn_tls_config),
    .set_offset = offsetof(struct kn_tls_config, set),
    .check = kn_config_check_tls,
};

/* ---- repositories --------------------------------------------------------------------------- */

static void kn_config_check_credentials(void *obj, const struct kn_node *node,
                                        struct kn_schema_ctx *ctx)
{
    const struct kn_repo_credentials *c = obj;

    if (c->token_file && c->ssh_key_file) {
        kn_config_error(ctx, ctx->path, kn_node_get(node, "sshKeyFile"),
                        "'tokenFile' and 'sshKeyFile' cannot both be set");
    }
}

static const struct kn_field kn_config_credentials_fields[] = {
    {.key = "username",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_repo_credentials, username),
     .flags = KN_FIELD_NONEMPTY,
     .help = "user name for HTTP(S) authentication, or the SSH user when the url names none"},
    {.key = "tokenFile",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_repo_credentials, token_file),
     .flags = KN_FIELD_NONEMPTY,
     .help = "file holding an access token used as the HTTP(S) password; http(s) urls only"},
    {.key = "sshKeyFile",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_repo_credentials, ssh_key_file),
     .flags = KN_FIELD_NONEMPTY,
     .help = "private SSH key file, readable by kanaria (validation checks it); ssh:// and "
             "user@host:path urls only, not with tokenFile"},
};

static const struct kn_schema kn_config_credentials_schema = {
    .name = "repository credentials",
    KN_SCHEMA_FIELDS(kn_config_credentials_fields),
    .size = sizeof(struct kn_repo_credentials),
    .set_offset = offsetof(struct kn_repo_credentials, set),
    .check = kn_config_check_credentials,
};

static const struct kn_field kn_config_webhook_fields[] = {
    {.key = "secretFile",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_repo_webhook, secret_file),
     .flags = KN_FIELD_NONEMPTY,
     .help = "file holding the shared secret that signs this repository's push webhooks"},
};

static const struct kn_schema kn_config_webhook_schema = {
    .name = "repository webhook",
    KN_SCHEMA_FIELDS(kn_config_webhook_fields),
    .size = sizeof(struct kn_repo_webhook),
    .set_offset = offsetof(struct kn_repo_webhook, set),
};

static void kn_config_check_repo(void *obj, const struct kn_node *node, struct kn_schema_ctx *ctx)
{
    const struct kn_repo_config *repo = obj;
    const struct kn_repo_credentials *c = &repo->credentials;
    enum kn_config_url_kind kind = KN_CONFIG_URL_BAD;

    if (repo->name && repo->name[0]) {
        if (strspn(repo->name, KN_CONFIG_NAME_CHARS) != strlen(repo->name)) {
            kn_config_error(ctx, ctx->path, kn_node_get(node, "name"),
                            "'name' may hold only letters, digits, '.', '_' and '-', got '%s'",
                            repo->name);
        } else if (strcmp(repo->name, ".") == 0 || strcmp(repo->name, "..") == 0) {
            kn_config_error(ctx, ctx->path, kn_node_get(node, "name"), "'name' must not be '%s'",
                            repo->name);
        }
    }
    if (repo->poll_interval_ms > 0 && repo->poll_interval_ms < 1000) {
        const struct kn_node *n = kn_node_get(node, "pollInterval");
        kn_config_error(ctx, ctx->path, n,
                        "'pollInterval' must be 0 (webhooks only) or at least 1s, got '%s'",
                        n ? n->scalar : "");
    }
    if (!repo->url) {
        goto out;
    }
    kind = kn_config_url_kind(repo->url);
    if (kind == KN_CONFIG_URL_BAD) {
        kn_config_error(ctx, ctx->path, kn_node_get(node, "url"),
                        "'url' must be " KN_CONFIG_URL_FORMS ", got '%s'", repo->url);
        goto out;
    }
    if (repo->ca_file && strncmp(repo->url, "https://", 8) != 0) {
        kn_config_error(ctx, ctx->path, kn_node_get(node, "caFile"),
                        "'caFile' is only for https:// urls, 'url' is '%s'", repo->url);
    } else if (repo->ca_file && access(repo->ca_file, R_OK) != 0) {
        /* else every fetch fails later with the TLS library's words, far from the cause */
        kn_config_error(ctx, ctx->path, kn_node_get(node, "caFile"),
                        "'caFile' '%s' cannot be read: %s", repo->ca_file, strerror(errno));
    }
    if (c->token_file && c->ssh_key_file) {
        goto out; /* reported by the credentials check */
    }
    if (c->token_file && kind != KN_CONFIG_URL_HTTP) {
        kn_config_error(ctx, ctx->path, kn_config_node(node, "credentials.tokenFile"),
                        "'credentials.tokenFile' is only for http:// and https:// urls, "
                        "'url' is '%s'",
                        repo->url);
    }
    if (c->ssh_key_file && kind != KN_CONFIG_URL_SSH) {
        kn_config_error(ctx, ctx->path, kn_config_node(node, "credentials.sshKeyFile"),
                        "'credentials.sshKeyFile' is only for ssh:// and user@host:path urls, "
                        "'url' is '%s'",
                        repo->url);
    } else if (c->ssh_key_file && access(c->ssh_key_file, R_OK) != 0) {
        /* else every fetch fails later with libssh2's words, far from the cause */
        kn_config_error(ctx, ctx->path, kn_config_node(node, "credentials.sshKeyFile"),
                        "'credentials.sshKeyFile' '%s' cannot be read: %s", c->ssh_key_file,
                        strerror(errno));
    }
out:
    return;
}

static const struct kn_field kn_config_repo_fields[] = {
    {.key = "name",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_repo_config, name),
     .flags = KN_FIELD_REQUIRED | KN_FIELD_NONEMPTY,
     .help = "unique name of the repository ([A-Za-z0-9._-]+), used in logs, the API and the "
             "mirror's folder under dataDir"},
    {.key = "url",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_repo_config, url),
     .flags = KN_FIELD_REQUIRED | KN_FIELD_NONEMPTY,
     .help = "Git remote: " KN_CONFIG_URL_FORMS},
    {.key = "branch",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_repo_config, branch),
     .flags = KN_FIELD_NONEMPTY,
     .def = "main",
     .help = "branch whose head is the desired state"},
    {.key = "pollInterval",
     .type = KN_TYPE_DURATION,
     .offset = offsetof(struct kn_repo_config, poll_interval_ms),
     .def = "30s",
     .help = "how often to fetch (jittered); 0 = webhooks only, otherwise at least 1s"},
    {.key = "fetchTimeout",
     .type = KN_TYPE_DURATION,
     .offset = offsetof(struct kn_repo_config, fetch_timeout_ms),
     .flags = KN_FIELD_MIN,
     .min = 1000,
     .def = "10m",
     .help = "the longest one fetch may take; past it the fetch is stopped, an error, and retried "
             "with backoff"},
    {.key = "fetchStallTimeout",
     .type = KN_TYPE_DURATION,
     .offset = offsetof(struct kn_repo_config, fetch_stall_timeout_ms),
     .flags = KN_FIELD_MIN,
     .min = 1000,
     .def = "1m",
     .help = "a fetch that receives nothing from the remote for this long (no answer, no "
             "progress) is stopped, an error, and retried with backoff"},
    {.key = "caFile",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_repo_config, ca_file),
     .flags = KN_FIELD_NONEMPTY,
     .help = "https:// urls: PEM file of the CA certificates trusted for this remote instead of "
             "the system's (a private CA); readable by kanaria (validation checks it)"},
    {.key = "credentials",
     .type = KN_TYPE_OBJECT,
     .offset = offsetof(struct kn_repo_config, credentials),
     .sub = &kn_config_credentials_schema,
     .help = "how to authenticate to the remote; none for public or local repositories"},
    {.key = "webhook",
     .type = KN_TYPE_OBJECT,
     .offset = offsetof(struct kn_repo_config, webhook),
     .sub = &kn_config_webhook_schema,
     .help = "push webhooks (POST /api/v1/webhooks/git) that trigger a fetch at once"},
};

static const struct kn_schema kn_config_repo_schema = {
    .name = "repository",
    KN_SCHEMA_FIELDS(kn_config_repo_fields),
    .size = sizeof(struct kn_repo_config),
    .set_offset = offsetof(struct kn_repo_config, set),
    .check = kn_config_check_repo,
};

/* ---- platforms and metrics providers -------------------------------------------------------- */

/* "'platforms[0].type' must be one of local, got 'kubernetes'", at the type's value; `names`
 * lists the registered types. */
static void kn_config_unknown_type(struct kn_schema_ctx *ctx, const struct kn_node *node,
                                   const char *type, const char *names)
{
    kn_schema_error(ctx, kn_node_get(node, "type"), "'%s.type' must be one of %s, got '%s'",
                    ctx->path, names, type);
}

/* The schema of the other keys of a platform: its type's. */
static const struct kn_schema *kn_config_platform_variant(const void *obj,
                                                          const struct kn_node *node,
                                                          struct kn_schema_ctx *ctx)
{
    const struct kn_platform_config *p = obj;
    const struct kn_platform_type *type = kn_platform_type_find(p->type);
    struct kn_buf names;

    if (!type && p->type && p->type[0] && ctx) {
        kn_buf_init(&names, KN_BUF_UNBOUNDED);
        for (size_t i = 0; kn_platform_types[i]; i++) {
            kn_buf_addf(&names, "%s%s", i ? ", " : "", kn_platform_types[i]->name);
        }
        kn_config_unknown_type(ctx, node, p->type, names.data);
        kn_buf_release(&names);
    }
    return type ? type->config_schema : NULL;
}

static void kn_config_check_platform(void *obj, const struct kn_node *node,
                                     struct kn_schema_ctx *ctx)
{
    struct kn_platform_config *p = obj;

    (void)node;
    (void)ctx;
    p->ptype = kn_platform_type_find(p->type);
}

static const struct kn_field kn_config_platform_fields[] = {
    {.key = "name",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_platform_config, name),
     .flags = KN_FIELD_REQUIRED | KN_FIELD_NONEMPTY,
     .help = "unique name that apps give as spec.platform"},
    {.key = "type",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_platform_config, type),
     .flags = KN_FIELD_REQUIRED | KN_FIELD_NONEMPTY,
     .help = "platform type: `kanaria help platform` lists them"},
};

static const struct kn_schema kn_config_platform_schema = {
    .name = "platform",
    KN_SCHEMA_FIELDS(kn_config_platform_fields),
    .size = sizeof(struct kn_platform_config),
    .set_offset = offsetof(struct kn_platform_config, set),
    .check = kn_config_check_platform,
    .variant = kn_config_platform_variant,
    .variant_offset = offsetof(struct kn_platform_config, options),
    .variant_help = "the keys of its type: `kanaria help platform TYPE`",
};

/* The schema of the other keys of a metrics provider: its type's. */
static const struct kn_schema *kn_config_metrics_variant(const void *obj,
                                                         const struct kn_node *node,
                                                         struct kn_schema_ctx *ctx)
{
    const struct kn_metrics_provider_config *p = obj;
    const struct kn_metrics_type *type = kn_metrics_type_find(p->type);
    struct kn_buf names;

    if (!type && p->type && p->type[0] && ctx) {
        kn_buf_init(&names, KN_BUF_UNBOUNDED);
        for (size_t i = 0; kn_metrics_types[i]; i++) {
            kn_buf_addf(&names, "%s%s", i ? ", " : "", kn_metrics_types[i]->name);
        }
        kn_config_unknown_type(ctx, node, p->type, names.data);
        kn_buf_release(&names);
    }
    return type ? type->config_schema : NULL;
}

/* Whether the type takes a `platform`; which one it names is checked with the whole config
 * (kn_config_resolve_platforms), since platforms may come later in the file. */
static void kn_config_check_metrics_provider(void *obj, const struct kn_node *node,
                                             struct kn_schema_ctx *ctx)
{
    struct kn_metrics_provider_config *p = obj;

    p->mtype = kn_metrics_type_find(p->type);
    if (!p->mtype) {
        goto out; /* reported with the type */
    }
    if (p->mtype->platform_type && !p->platform_name) {
        kn_config_error(ctx, ctx->path, node,
                        "'platform' is required: type %s takes its credentials and region from "
                        "a platform of type %s",
                        p->mtype->name, p->mtype->platform_type);
    } else if (!p->mtype->platform_type && p->platform_name) {
        kn_config_error(ctx, ctx->path, kn_node_get(node, "platform"),
                        "type %s takes no 'platform'", p->mtype->name);
    }
out:
    return;
}

static const struct kn_field kn_config_metrics_provider_fields[] = {
    {.key = "name",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_metrics_provider_config, name),
     .flags = KN_FIELD_REQUIRED | KN_FIELD_NONEMPTY,
     .help = "unique name that ANALYSIS metrics give as provider"},
    {.key = "type",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_metrics_provider_config, type),
     .flags = KN_FIELD_REQUIRED | KN_FIELD_NONEMPTY,
     .help = "provider type: `kanaria help metrics` lists them"},
    {.key = "platform",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_metrics_provider_config, platform_name),
     .flags = KN_FIELD_NONEMPTY,
     .help = "the platforms[] entry whose credentials and region the provider uses; only types "
             "that borrow one (cloudwatch: a platform of type ecs)"},
};

static const struct kn_schema kn_config_metrics_provider_schema = {
    .name = "metrics provider",
    KN_SCHEMA_FIELDS(kn_config_metrics_provider_fields),
    .size = sizeof(struct kn_metrics_provider_config),
    .set_offset = offsetof(struct kn_metrics_provider_config, set),
    .check = kn_config_check_metrics_provider,
    .variant = kn_config_metrics_variant,
    .variant_offset = offsetof(struct kn_metrics_provider_config, options),
    .variant_help = "the keys of its type: `kanaria help metrics TYPE`",
};

/* ---- users ---------------------------------------------------------------------------------- */

static int kn_config_is_sha256(const char *s)
{
    return s && strlen(s) == 64 && strspn(s, "0123456789abcdefABCDEF") == 64;
}

static void kn_config_check_user(void *obj, const struct kn_node *node, struct kn_schema_ctx *ctx)
{
    struct kn_user_config *u = obj;
    size_t len;

    if (!u->token_sha256) {
        goto out;
    }
    len = strlen(u->token_sha256);
    if (!kn_config_is_sha256(u->token_sha256)) {
        kn_config_error(ctx, ctx->path, kn_node_get(node, "tokenSha256"),
                        "'tokenSha256' must be the 64 hex digits of a SHA-256, got %zu "
                        "character%s (generate with: printf %%s TOKEN | sha256sum)",
                        len, len == 1 ? "" : "s");
        goto out;
    }
    /* compared with the hash of a presented token in lower case */
    for (char *p = u->token_sha256; *p; p++) {
        *p = (char)tolower((unsigned char)*p);
    }
out:
    return;
}

static const struct kn_field kn_config_user_fields[] = {
    {.key = "name",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_user_config, name),
     .flags = KN_FIELD_REQUIRED | KN_FIELD_NONEMPTY,
     .help = "unique user name, recorded in the audit log and matched by WAIT_APPROVAL approvers"},
    {.key = "role",
     .type = KN_TYPE_ENUM,
     .offset = offsetof(struct kn_user_config, role),
     .flags = KN_FIELD_REQUIRED,
     .enums = kn_config_roles,
     .help = "what the user may do; each role can do everything the ones before it can"},
    {.key = "tokenSha256",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_user_config, token_sha256),
     .flags = KN_FIELD_REQUIRED,
     .help = "SHA-256 (64 hex digits) of the user's API token: printf %s TOKEN | sha256sum"},
};

static const struct kn_schema kn_config_user_schema = {
    .name = "user",
    KN_SCHEMA_FIELDS(kn_config_user_fields),
    .size = sizeof(struct kn_user_config),
    .set_offset = offsetof(struct kn_user_config, set),
    .check = kn_config_check_user,
};

/* ---- notifications -------------------------------------------------------------------------- */

static int kn_config_is_event(const char *s)
{
    int found = 0;

    for (size_t i = 0; kn_event_names[i] && !found; i++) {
        found = strcmp(kn_event_names[i], s) == 0;
    }
    return found;
}

static void kn_config_check_notification(void *obj, const struct kn_node *node,
                                         struct kn_schema_ctx *ctx)
{
    const struct kn_notification_config *n = obj;
    const struct kn_node *events = kn_node_get(node, "events");
    char why[200];

    if (n->url && !kn_config_is_http_url(n->url)) {
        kn_config_error(ctx, ctx->path, kn_node_get(node, "url"),
                        "'url' must be an http:// or https:// url, got '%s'", n->url);
    }
    if (n->token_file && n->type != KN_NOTIFY_SLACK && n->type != KN_NOTIFY_PAGERDUTY) {
        kn_config_error(ctx, ctx->path, kn_node_get(node, "tokenFile"),
                        "'tokenFile' is for type slack or pagerduty, not %s",
                        kn_config_notify_types[n->type]);
    }
    if (n->type == KN_NOTIFY_PAGERDUTY && !n->token_file) {
        kn_config_error(ctx, ctx->path, node,
                        "type pagerduty needs 'tokenFile', the file holding the routing key");
    }
    if (n->type == KN_NOTIFY_SLACK && n->token_file && !n->channel) {
        kn_config_error(ctx, ctx->path, node,
                        "a slack notification with 'tokenFile' needs 'channel' to post to");
    }
    if (n->channel && !n->token_file) {
        kn_config_error(ctx, ctx->path, kn_node_get(node, "channel"),
                        "'channel' is for a slack notification with 'tokenFile'; an incoming "
                        "webhook posts to its own channel");
    }
    if (n->secret_file && n->type != KN_NOTIFY_WEBHOOK) {
        kn_config_error(ctx, ctx->path, kn_node_get(node, "secretFile"),
                        "'secretFile' signs webhook bodies only, not %s",
                        kn_config_notify_types[n->type]);
    }
    if (n->template && kn_template_check(n->template, why, sizeof(why)) < 0) {
        kn_config_error(ctx, ctx->path, kn_node_get(node, "template"), "'template': %s", why);
    }
    if (!events || events->type != KN_NODE_SEQ) {
        goto out;
    }
    /* walk the nodes, not n->events: items that were not strings are missing from the list */
    for (size_t i = 0; i < events->len; i++) {
        const struct kn_node *item = events->items[i];
        struct kn_buf allowed;
        if (item->type != KN_NODE_SCALAR || kn_node_scalar_kind(item) == KN_SCALAR_NULL ||
            kn_config_is_event(item->scalar)) {
            continue;
        }
        kn_buf_init(&allowed, KN_BUF_UNBOUNDED);
        for (size_t j = 0; kn_event_names[j]; j++) {
            kn_buf_addf(&allowed, "%s%s", j ? ", " : "", kn_event_names[j]);
        }
        kn_config_error(ctx, ctx->path, item, "'events[%zu]' must be one of %s, got '%s'", i,
                        allowed.data, item->scalar);
        kn_buf_release(&allowed);
    }
out:
    return;
}

static const struct kn_field kn_config_notification_fields[] = {
    {.key = "name",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_notification_config, name),
     .flags = KN_FIELD_REQUIRED | KN_FIELD_NONEMPTY,
     .help = "unique name of the notification, used in logs"},
    {.key = "type",
     .type = KN_TYPE_ENUM,
     .offset = offsetof(struct kn_notification_config, type),
     .def = "webhook",
     .enums = kn_config_notify_types,
     .help = "webhook: the event as JSON (or the template); slack: a Block Kit message; teams: "
             "an Adaptive Card; pagerduty: Events v2 incidents for failures"},
    {.key = "url",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_notification_config, url),
     .flags = KN_FIELD_REQUIRED | KN_FIELD_NONEMPTY,
     .help = "where events are POSTed, http:// or https://; slack with tokenFile: the Web API "
             "base (https://slack.com/api); pagerduty: https://events.pagerduty.com/v2/enqueue"},
    {.key = "secretFile",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_notification_config, secret_file),
     .flags = KN_FIELD_NONEMPTY,
     .help = "webhook: file holding the key that signs each body with HMAC-SHA256; absent = "
             "unsigned"},
    {.key = "tokenFile",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_notification_config, token_file),
     .flags = KN_FIELD_NONEMPTY,
     .help = "slack: file holding a bot token (chat.postMessage, one message per deployment "
             "updated with chat.update); pagerduty: file holding the routing key"},
    {.key = "channel",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_notification_config, channel),
     .flags = KN_FIELD_NONEMPTY,
     .help = "slack with tokenFile: the channel (ID or #name) posted to"},
    {.key = "template",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_notification_config, template),
     .flags = KN_FIELD_NONEMPTY,
     .help = "Mustache subset ({{field}}, {{#field}}..{{/field}}, {{^field}}..{{/field}}): "
             "webhook: the whole JSON body, values JSON-escaped; slack, teams, pagerduty: the "
             "message text"},
    {.key = "retryFor",
     .type = KN_TYPE_DURATION,
     .offset = offsetof(struct kn_notification_config, retry_for_ms),
     .flags = KN_FIELD_MIN | KN_FIELD_MAX,
     .min = 1000,
     .max = 24LL * 60 * 60 * 1000,
     .def = "1h",
     .help = "how long an event that fails is retried (1s, 2s, 4s ... then every minute) before "
             "it is given up; the events behind it wait meanwhile; 1s to 24h"},
    {.key = "events",
     .type = KN_TYPE_STRING_LIST,
     .offset = offsetof(struct kn_notification_config, events),
     .help = "events to send (TRIGGERED, PLANNED, ... DRIFT_DETECTED); empty or absent = "
             "all but STAGE_LOG"},
    {.key = "apps",
     .type = KN_TYPE_STRING_LIST,
     .offset = offsetof(struct kn_notification_config, apps),
     .help = "apps whose events to send, by name; empty or absent = all"},
};

static const struct kn_schema kn_config_notification_schema = {
    .name = "notification",
    KN_SCHEMA_FIELDS(kn_config_notification_fields),
    .size = sizeof(struct kn_notification_config),
    .set_offset = offsetof(struct kn_notification_config, set),
    .check = kn_config_check_notification,
};

/* ---- log ------------------------------------------------------------------------------------ */

static const struct kn_field kn_config_log_fields[] = {
    {.key = "level",
     .type = KN_TYPE_ENUM,
     .offset = offsetof(struct kn_log_config, level),
     .def = "info",
     .enums = kn_config_log_levels,
     .help = "lowest level written to stderr"},
    {.key = "format",
     .type = KN_TYPE_ENUM,
     .offset = offsetof(struct kn_log_config, format),
     .def = "logfmt",
     .enums = kn_config_log_formats,
     .help = "logfmt (key=value) or json (one object per line)"},
};

static const struct kn_schema kn_config_log_schema = {
    .name = "log",
    KN_SCHEMA_FIELDS(kn_config_log_fields),
    .size = sizeof(struct kn_log_config),
    .set_offset = offsetof(struct kn_log_config, set),
};

/* ---- the whole file ------------------------------------------------------------------------- */

/* `name` of each item of the list `key` is unique: the second use is located and names the
 * line of the first. */
static void kn_config_check_unique(struct kn_schema_ctx *ctx, const struct kn_node *root,
                                   const char *key, const struct kn_list *list, size_t size,
                                   size_t name_offset)
{
    const struct kn_node *seq = kn_node_get(root, key);
    char subject[64];

    if (!seq || seq->type != KN_NODE_SEQ || seq->len != list->count) {
        goto out;
    }
    for (size_t i = 1; i < list->count; i++) {
        const char *name = *(char *const *)((const char *)list->items + i * size + name_offset);
        if (!name) {
            continue;
        }
        for (size_t j = 0; j < i; j++) {
            const char *other =
                *(char *const *)((const char *)list->items + j * size + name_offset);
            const struct kn_node *first = kn_node_get(seq->items[j], "name");
            if (!other || strcmp(name, other) != 0) {
                continue;
            }
            snprintf(subject, sizeof(subject), "%s[%zu]", key, i);
            kn_config_error(ctx, subject, kn_node_get(seq->items[i], "name"),
                            "'name' must be unique, '%s' is already used at line %u", name,
                            first ? first->loc.line : 0);
            break;
        }
    }
out:
    return;
}

/* One token, one person: otherwise the audit log could not say who approved. */
static void kn_config_check_tokens(struct kn_schema_ctx *ctx, const struct kn_node *root,
                                   const struct kn_list *users)
{
    const struct kn_node *seq = kn_node_get(root, "users");
    const struct kn_user_config *u = users->items;
    char subject[64];

    if (!seq || seq->type != KN_NODE_SEQ || seq->len != users->count) {
        goto out;
    }
    for (size_t i = 1; i < users->count; i++) {
        for (size_t j = 0; j < i; j++) {
            /* malformed hashes were reported by the user check */
            if (!kn_config_is_sha256(u[i].token_sha256) ||
                !kn_config_is_sha256(u[j].token_sha256) ||
                strcmp(u[i].token_sha256, u[j].token_sha256) != 0) {
                continue;
            }
            snprintf(subject, sizeof(subject), "users[%zu]", i);
            kn_config_error(ctx, subject, kn_node_get(seq->items[i], "tokenSha256"),
                            "'tokenSha256' is already the token of '%s' at line %u, every user "
                            "needs their own token",
                            u[j].name ? u[j].name : "?",
                            kn_node_get(seq->items[j], "tokenSha256")->loc.line);
            break;
        }
    }
out:
    return;
}

/* Point each metrics provider that borrows a platform at its entry: a name that no platform
 * has, or a platform of another type than the provider's descriptor wants, is an error at the
 * provider's `platform`. */
static void kn_config_resolve_platforms(struct kn_schema_ctx *ctx, const struct kn_node *root,
                                        struct kn_config *cfg)
{
    struct kn_metrics_provider_config *mp = cfg->metrics_providers.items;
    const struct kn_node *seq = kn_node_get(root, "metricsProviders");
    char subject[64];

    for (size_t i = 0; i < cfg->metrics_providers.count; i++) {
        const struct kn_platform_config *pc = kn_config_platform(cfg, mp[i].platform_name);
        const struct kn_node *at =
            seq && seq->type == KN_NODE_SEQ && i < seq->len ? seq->items[i] : NULL;
        if (!mp[i].mtype || !mp[i].mtype->platform_type || !mp[i].platform_name) {
            continue; /* nothing to resolve, or reported by the entry's own check */
        }
        snprintf(subject, sizeof(subject), "metricsProviders[%zu]", i);
        at = kn_node_get(at, "platform") ? kn_node_get(at, "platform") : at;
        if (!pc) {
            struct kn_buf names;
            const struct kn_platform_config *p = cfg->platforms.items;
            kn_buf_init(&names, KN_BUF_UNBOUNDED);
            for (size_t j = 0; j < cfg->platforms.count; j++) {
                kn_buf_addf(&names, "%s%s", j ? ", " : "", p[j].name ? p[j].name : "?");
            }
            kn_config_error(ctx, subject, at, "platform '%s' is not in 'platforms' (%s)",
                            mp[i].platform_name,
                            names.len ? names.data : "it declares none");
            kn_buf_release(&names);
        } else if (!pc->ptype || strcmp(pc->ptype->name, mp[i].mtype->platform_type) != 0) {
            if (pc->ptype) { /* an unknown type is reported at the platform */
                kn_config_error(ctx, subject, at,
                                "platform '%s' is of type %s, type %s needs one of type %s",
                                pc->name, pc->ptype->name, mp[i].mtype->name,
                                mp[i].mtype->platform_type);
            }
        } else {
            mp[i].platform = pc;
        }
    }
}

static void kn_config_check(void *obj, const struct kn_node *node, struct kn_schema_ctx *ctx)
{
    struct kn_config *cfg = obj;

    if (cfg->drift_interval_ms > 0 && cfg->drift_interval_ms < 1000) {
        const struct kn_node *n = kn_node_get(node, "driftInterval");
        kn_config_error(ctx, ctx->path, n,
                        "'driftInterval' must be 0 (never) or at least 1s, got '%s'",
                        n && n->scalar ? n->scalar : "");
    }
    if (cfg->external_url && !kn_config_is_http_url(cfg->external_url)) {
        kn_config_error(ctx, ctx->path, kn_node_get(node, "externalUrl"),
                        "'externalUrl' must be an http:// or https:// url, got '%s'",
                        cfg->external_url);
    }
    if (cfg->listen && kn_node_get(node, "listen") && !kn_config_is_host_port(cfg->listen)) {
        kn_config_error(ctx, ctx->path, kn_node_get(node, "listen"),
                        "'listen' must be " KN_CONFIG_HOST_PORT ", got '%s'", cfg->listen);
    }
    kn_config_check_unique(ctx, node, "repositories", &cfg->repositories,
                           sizeof(struct kn_repo_config), offsetof(struct kn_repo_config, name));
    kn_config_check_unique(ctx, node, "platforms", &cfg->platforms,
                           sizeof(struct kn_platform_config),
                           offsetof(struct kn_platform_config, name));
    kn_config_check_unique(ctx, node, "metricsProviders", &cfg->metrics_providers,
                           sizeof(struct kn_metrics_provider_config),
                           offsetof(struct kn_metrics_provider_config, name));
    kn_config_check_unique(ctx, node, "users", &cfg->users, sizeof(struct kn_user_config),
                           offsetof(struct kn_user_config, name));
    kn_config_check_unique(ctx, node, "notifications", &cfg->notifications,
                           sizeof(struct kn_notification_config),
                           offsetof(struct kn_notification_config, name));
    kn_config_check_tokens(ctx, node, &cfg->users);
    kn_freeze_check_unique(ctx, kn_node_get(node, "freezeWindows"), &cfg->freeze_windows,
                           "freezeWindows");
    kn_config_resolve_platforms(ctx, node, cfg);
}

static const struct kn_field kn_config_fields[] = {
    {.key = "dataDir",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_config, data_dir),
     .flags = KN_FIELD_REQUIRED | KN_FIELD_NONEMPTY,
     .help = "folder for the SQLite database, Git mirrors and process state"},
    {.key = "listen",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_config, listen),
     .flags = KN_FIELD_NONEMPTY,
     .def = "127.0.0.1:7070",
     .help = "HOST:PORT of the API, webhooks, web UI and /metrics (IPv6 as [::1]:7070, "
             "all addresses as :7070)"},
    {.key = "externalUrl",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_config, external_url),
     .flags = KN_FIELD_NONEMPTY,
     .help = "the web UI's address as people reach it (https://kanaria.example.com); "
             "notifications link to EXTERNAL_URL/#/deployments/ID; absent = no links"},
    {.key = "driftInterval",
     .type = KN_TYPE_DURATION,
     .offset = offsetof(struct kn_config, drift_interval_ms),
     .def = "10s",
     .help = "how often each app's live state is compared with its last good commit; 0 = "
             "never, otherwise at least 1s"},
    {.key = "tls",
     .type = KN_TYPE_OBJECT,
     .offset = offsetof(struct kn_config, tls),
     .sub = &kn_config_tls_schema,
     .help = "serve `listen` over HTTPS; absent = plain HTTP"},
    {.key = "repositories",
     .type = KN_TYPE_LIST,
     .offset = offsetof(struct kn_config, repositories),
     .sub = &kn_config_repo_schema,
     .help = "Git repositories to watch; apps are found in them by their app.kanaria.yaml"},
    {.key = "platforms",
     .type = KN_TYPE_LIST,
     .offset = offsetof(struct kn_config, platforms),
     .sub = &kn_config_platform_schema,
     .help = "named deployment targets that apps choose with spec.platform"},
    {.key = "metricsProviders",
     .type = KN_TYPE_LIST,
     .offset = offsetof(struct kn_config, metrics_providers),
     .sub = &kn_config_metrics_provider_schema,
     .help = "metric sources that ANALYSIS stages query"},
    {.key = "users",
     .type = KN_TYPE_LIST,
     .offset = offsetof(struct kn_config, users),
     .sub = &kn_config_user_schema,
     .help = "API users and their roles (viewer < approver < operator < admin)"},
    {.key = "notifications",
     .type = KN_TYPE_LIST,
     .offset = offsetof(struct kn_config, notifications),
     .sub = &kn_config_notification_schema,
     .help = "where to send deployment events"},
    {.key = "freezeWindows",
     .type = KN_TYPE_LIST,
     .offset = offsetof(struct kn_config, freeze_windows),
     .sub = &kn_freeze_window_schema,
     .help = "when deployments wait FROZEN: recurring (schedule, duration, timeZone) or fixed "
             "(from, to), for the apps and repositories named (all when none); rollbacks and "
             "hotfixes pass"},
    {.key = "log",
     .type = KN_TYPE_OBJECT,
     .offset = offsetof(struct kn_config, log),
     .sub = &kn_config_log_schema,
     .help = "the controller's own log on stderr"},
};

const struct kn_schema kn_config_schema = {
    .name = "kanaria.yaml",
    KN_SCHEMA_FIELDS(kn_config_fields),
    .size = sizeof(struct kn_config),
    .set_offset = offsetof(struct kn_config, set),
    .check = kn_config_check,
};

/* ---- loading -------------------------------------------------------------------------------- */

static int kn_config_is_empty_doc(const struct kn_node *root)
{
    return !root || (root->type == KN_NODE_SCALAR && kn_node_scalar_kind(root) == KN_SCALAR_NULL);
}

int kn_config_load(struct kn_config **out, const char *path, struct kn_diags *diags)
{
    struct kn_config *cfg = NULL;
    struct kn_yaml *yaml = NULL;
    struct kn_schema_ctx ctx;
    struct kn_error err;
    size_t before = kn_diags_total(diags);
    int rc = 0;

    *out = NULL;
    kn_error_clear(&err);
    rc = kn_yaml_load_file(&yaml, path, path, NULL, &err);
    if (rc < 0) {
        struct kn_loc loc = {err.file_buf[0] ? err.file_buf : path, err.line, err.col};
        kn_diags_add(diags, &loc, "%s", err.msg[0] ? err.msg : kn_strerror(rc));
        goto out;
    }
    cfg = kn_calloc(1, sizeof(*cfg));
    cfg->yaml = yaml;
    if (yaml->ndocs == 0 || (yaml->ndocs == 1 && kn_config_is_empty_doc(yaml->docs[0]))) {
        struct kn_loc loc = {yaml->file, 0, 0};
        kn_diags_add(diags, &loc, "empty config");
        rc = KN_ESCHEMA;
        goto out;
    }
    if (yaml->ndocs > 1) {
        kn_diags_add(diags, &yaml->docs[1]->loc, "expected one YAML document, found %zu",
                     yaml->ndocs);
    }
    memset(&ctx, 0, sizeof(ctx));
    ctx.diags = diags;
    ctx.data = cfg;
    kn_schema_parse(&kn_config_schema, yaml->docs[0], &yaml->docs[0]->loc, cfg, &ctx);
    if (kn_diags_total(diags) > before) {
        rc = KN_ESCHEMA;
        goto out;
    }
    *out = cfg;
    cfg = NULL;
out:
    kn_config_free(cfg);
    return rc;
}

void kn_config_free(struct kn_config *cfg)
{
    if (!cfg) {
        return;
    }
    kn_schema_release(&kn_config_schema, cfg);
    kn_yaml_free(cfg->yaml);
    free(cfg);
}

const struct kn_platform_config *kn_config_platform(const struct kn_config *cfg, const char *name)
{
    const struct kn_platform_config *p = cfg ? cfg->platforms.items : NULL;
    const struct kn_platform_config *found = NULL;

    for (size_t i = 0; p && name && i < cfg->platforms.count && !found; i++) {
        if (p[i].name && strcmp(p[i].name, name) == 0) {
            found = &p[i];
        }
    }
    return found;
}

const struct kn_metrics_provider_config *kn_config_metrics_provider(const struct kn_config *cfg,
                                                                    const char *name)
{
    const struct kn_metrics_provider_config *p = cfg ? cfg->metrics_providers.items : NULL;
    const struct kn_metrics_provider_config *found = NULL;

    for (size_t i = 0; p && name && i < cfg->metrics_providers.count && !found; i++) {
        if (p[i].name && strcmp(p[i].name, name) == 0) {
            found = &p[i];
        }
    }
    return found;
}

/* ---- what a reload cannot change ------------------------------------------------------------ */

static int kn_config_str_differs(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "") != 0;
}

/* The first entry of a list of `schema` structs that differs, with its first differing key
 * ("platforms[0].ports.max"), in key; 0 when none does. Generic over the entries' types: the
 * schemas chosen by `type` are compared key by key. */
static int kn_config_list_differs(const char *name, const struct kn_schema *schema,
                                  const struct kn_list *a, const struct kn_list *b, char *key,
                                  size_t size)
{
    char field[200];

    if (a->count != b->count) {
        snprintf(key, size, "%s", name);
        return 1;
    }
    for (size_t i = 0; i < a->count; i++) {
        if (kn_schema_compare(schema, (const char *)a->items + i * schema->size,
                              (const char *)b->items + i * schema->size, field, sizeof(field))) {
            snprintf(key, size, "%s[%zu].%s", name, i, field);
            return 1;
        }
    }
    return 0;
}

int kn_config_restart_key(const struct kn_config *running, const struct kn_config *cfg,
                          char *key, size_t size)
{
    const char *field = NULL;

    key[0] = '\0';
    if (kn_config_str_differs(running->data_dir, cfg->data_dir)) {
        field = "dataDir";
    } else if (kn_config_str_differs(running->listen, cfg->listen)) {
        field = "listen";
    } else if (kn_config_str_differs(running->tls.cert_file, cfg->tls.cert_file)) {
        field = "tls.certFile";
    } else if (kn_config_str_differs(running->tls.key_file, cfg->tls.key_file)) {
        field = "tls.keyFile";
    } else if (running->drift_interval_ms != cfg->drift_interval_ms) {
        field = "driftInterval";
    }
    if (field) {
        snprintf(key, size, "%s", field);
        goto out;
    }
    if (kn_config_list_differs("platforms", &kn_config_platform_schema, &running->platforms,
                               &cfg->platforms, key, size)) {
        goto out;
    }
    kn_config_list_differs("metricsProviders", &kn_config_metrics_provider_schema,
                           &running->metrics_providers, &cfg->metrics_providers, key, size);
out:
    return key[0] != '\0';
}

/* ---- the embedded default platform ---------------------------------------------------------- */

int kn_config_platform_default(struct kn_platform_config *out, const char *name,
                               const char *type)
{
    const struct kn_platform_type *ptype = kn_platform_type_find(type);
    struct kn_schema_ctx ctx;
    struct kn_diags diags;
    int rc = 0;

    memset(out, 0, sizeof(*out));
    if (!ptype || !name) {
        rc = KN_EINVAL;
        goto out;
    }
    out->name = kn_strdup(name);
    out->type = kn_strdup(type);
    out->ptype = ptype;
    if (ptype->config_schema) {
        memset(&ctx, 0, sizeof(ctx));
        kn_diags_init(&diags, 0);
        ctx.diags = &diags;
        out->options = kn_calloc(1, ptype->config_schema->size);
        /* every key absent: the defaults, which a type's table must make valid */
        kn_schema_parse(ptype->config_schema, NULL, NULL, out->options, &ctx);
        rc = diags.count > 0 ? KN_EINVAL : 0;
        kn_diags_release(&diags);
    }
out:
    if (rc < 0) {
        kn_config_platform_release(out);
    }
    return rc;
}

void kn_config_platform_release(struct kn_platform_config *p)
{
    if (p) {
        kn_schema_release(&kn_config_platform_schema, p);
        memset(p, 0, sizeof(*p));
    }
}
