/*
 * The LocalService manifest: schema and checks.
 */
#include "platforms/local/local_service.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "kanaria/alloc.h"
#include "kanaria/app.h"

/* Only these may appear between braces in a command or env value. */
static const char *const placeholders[] = {"port", "variant", NULL};

/* 1 when s contains {{port}}; reports unknown placeholders. */
static int scan_placeholders(const char *s, const char *what, const struct kn_node *node,
                             struct kn_schema_ctx *ctx)
{
    int has_port = 0;
    const char *p = s;

    while ((p = strstr(p, "{{")) != NULL) {
        const char *end = strstr(p + 2, "}}");
        char name[64];
        int ok = 0;

        if (!end) {
            kn_schema_error(ctx, node, "'%s' has '{{' without a closing '}}'", what);
            break;
        }
        snprintf(name, sizeof(name), "%.*s", (int)(end - p - 2), p + 2);
        for (size_t i = 0; placeholders[i]; i++) {
            ok |= strcmp(name, placeholders[i]) == 0;
        }
        if (!ok) {
            kn_schema_error(ctx, node,
                            "'%s' uses unknown placeholder '{{%s}}' (known: {{port}}, "
                            "{{variant}})", what, name);
        }
        has_port |= strcmp(name, "port") == 0;
        p = end + 2;
    }
    return has_port;
}

static void spec_check(void *obj, const struct kn_node *node, struct kn_schema_ctx *ctx)
{
    const struct kn_local_service_spec *s = obj;
    const struct kn_node *cmd = kn_node_get(node, "command");
    const struct kn_node *env = kn_node_get(node, "env");
    int has_port = 0;
    char what[64];

    for (size_t i = 0; i < s->command.count; i++) {
        snprintf(what, sizeof(what), "spec.command[%zu]", i);
        has_port |= scan_placeholders(s->command.items[i], what,
                                      cmd && i < cmd->len ? cmd->items[i] : node, ctx);
    }
    for (size_t i = 0; i < s->env.count; i++) {
        snprintf(what, sizeof(what), "spec.env.%s", s->env.keys[i]);
        has_port |= scan_placeholders(s->env.values[i], what,
                                      env && i < env->len ? env->pairs[i].value : node, ctx);
    }
    if (s->command.count > 0 && !has_port) {
        kn_schema_error(ctx, cmd ? cmd : node,
                        "'spec.command' or 'spec.env' must use {{port}}: each instance listens "
                        "on a port kanaria allocates");
    }
    if (s->working_dir && (s->working_dir[0] == '/' || strstr(s->working_dir, ".."))) {
        kn_schema_error(ctx, kn_node_get(node, "workingDir"),
                        "'spec.workingDir' must be a folder inside the app's folder, got '%s'",
                        s->working_dir);
    }
}

static void health_check(void *obj, const struct kn_node *node, struct kn_schema_ctx *ctx)
{
    const struct kn_health_check *h = obj;

    if (h->path && h->path[0] != '/') {
        kn_schema_error(ctx, kn_node_get(node, "path"),
                        "'spec.healthCheck.path' must start with '/', got '%s'", h->path);
    }
    if (h->timeout_ms > h->interval_ms) {
        kn_schema_error(ctx, kn_node_get(node, "timeout"),
                        "'spec.healthCheck.timeout' must not be longer than its 'interval'");
    }
}

static void frontend_check(void *obj, const struct kn_node *node, struct kn_schema_ctx *ctx)
{
    const struct kn_frontend *f = obj;
    char host[256];
    int port;

    if (f->bind && kn_hostport_parse(f->bind, host, sizeof(host), &port) < 0) {
        kn_schema_error(ctx, kn_node_get(node, "bind"),
                        "'spec.frontend.bind' must be HOST:PORT like 127.0.0.1:8080, got '%s'",
                        f->bind);
    }
}

static const struct kn_field health_fields[] = {
    {.key = "path",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_health_check, path),
     .def = "/healthz",
     .help = "HTTP path that answers 2xx when an instance is healthy"},
    {.key = "interval",
     .type = KN_TYPE_DURATION,
     .offset = offsetof(struct kn_health_check, interval_ms),
     .flags = KN_FIELD_MIN | KN_FIELD_MAX,
     .def = "1s",
     .min = 100,
     .max = 60 * 1000,
     .help = "time between checks"},
    {.key = "timeout",
     .type = KN_TYPE_DURATION,
     .offset = offsetof(struct kn_health_check, timeout_ms),
     .flags = KN_FIELD_MIN | KN_FIELD_MAX,
     .def = "1s",
     .min = 100,
     .max = 60 * 1000,
     .help = "a check slower than this fails"},
    {.key = "healthyThreshold",
     .type = KN_TYPE_INT,
     .offset = offsetof(struct kn_health_check, healthy_threshold),
     .flags = KN_FIELD_MIN | KN_FIELD_MAX,
     .def = "1",
     .min = 1,
     .max = 100,
     .help = "consecutive passing checks before an instance takes traffic"},
};

static const struct kn_schema health_schema = {
    .name = "healthCheck",
    KN_SCHEMA_FIELDS(health_fields),
    .size = sizeof(struct kn_health_check),
    .set_offset = offsetof(struct kn_health_check, set),
    .check = health_check,
};

static const struct kn_field frontend_fields[] = {
    {.key = "bind",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_frontend, bind),
     .flags = KN_FIELD_REQUIRED,
     .help = "HOST:PORT where HAProxy serves the app"},
};

static const struct kn_schema frontend_schema = {
    .name = "frontend",
    KN_SCHEMA_FIELDS(frontend_fields),
    .size = sizeof(struct kn_frontend),
    .set_offset = offsetof(struct kn_frontend, set),
    .check = frontend_check,
};

static const struct kn_field spec_fields[] = {
    {.key = "command",
     .type = KN_TYPE_STRING_LIST,
     .offset = offsetof(struct kn_local_service_spec, command),
     .flags = KN_FIELD_REQUIRED | KN_FIELD_NONEMPTY,
     .help = "program and arguments; {{port}} is the instance's port"},
    {.key = "env",
     .type = KN_TYPE_STRING_MAP,
     .offset = offsetof(struct kn_local_service_spec, env),
     .help = "environment variables; {{port}} is substituted"},
    {.key = "workingDir",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_local_service_spec, working_dir),
     .help = "folder to run in, relative to the app's folder"},
    {.key = "replicas",
     .type = KN_TYPE_INT,
     .offset = offsetof(struct kn_local_service_spec, replicas),
     .flags = KN_FIELD_MIN | KN_FIELD_MAX,
     .def = "1",
     .min = 0,
     .max = 100,
     .help = "instances of the primary"},
    {.key = "healthCheck",
     .type = KN_TYPE_OBJECT,
     .offset = offsetof(struct kn_local_service_spec, health_check),
     .sub = &health_schema,
     .help = "how kanaria decides an instance is healthy"},
    {.key = "frontend",
     .type = KN_TYPE_OBJECT,
     .offset = offsetof(struct kn_local_service_spec, frontend),
     .flags = KN_FIELD_REQUIRED,
     .sub = &frontend_schema,
     .help = "where HAProxy listens for the app"},
};

static const struct kn_schema spec_schema = {
    .name = "LocalService spec",
    KN_SCHEMA_FIELDS(spec_fields),
    .size = sizeof(struct kn_local_service_spec),
    .set_offset = offsetof(struct kn_local_service_spec, set),
    .check = spec_check,
};

static const struct kn_field metadata_fields[] = {
    {.key = "name",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_local_service, metadata.name) -
               offsetof(struct kn_local_service, metadata),
     .flags = KN_FIELD_REQUIRED | KN_FIELD_NONEMPTY,
     .help = "the service's name"},
    {.key = "labels",
     .type = KN_TYPE_STRING_MAP,
     .offset = offsetof(struct kn_local_service, metadata.labels) -
               offsetof(struct kn_local_service, metadata),
     .help = "free-form labels"},
};

static const struct kn_schema metadata_schema = {
    .name = "metadata",
    KN_SCHEMA_FIELDS(metadata_fields),
    .size = sizeof(((struct kn_local_service *)0)->metadata),
    .set_offset = 0,
};

static const struct kn_field doc_fields[] = {
    {.key = "apiVersion",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_local_service, api_version),
     .flags = KN_FIELD_REQUIRED,
     .help = "kanaria.dev/v1"},
    {.key = "kind",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_local_service, kind),
     .flags = KN_FIELD_REQUIRED,
     .help = "LocalService"},
    {.key = "metadata",
     .type = KN_TYPE_OBJECT,
     .offset = offsetof(struct kn_local_service, metadata),
     .flags = KN_FIELD_REQUIRED,
     .sub = &metadata_schema,
     .help = "name and labels"},
    {.key = "spec",
     .type = KN_TYPE_OBJECT,
     .offset = offsetof(struct kn_local_service, spec),
     .flags = KN_FIELD_REQUIRED,
     .sub = &spec_schema,
     .help = "what to run"},
};

const struct kn_schema kn_local_service_schema = {
    .name = "LocalService",
    KN_SCHEMA_FIELDS(doc_fields),
    .size = sizeof(struct kn_local_service),
    .set_offset = offsetof(struct kn_local_service, set),
    /* the apiVersion is checked from the kinds table (local.c) */
};

/* ---- across apps --------------------------------------------------------------------------- */

static int kn_local_service_any_host(const char *host)
{
    return !host[0] || strcmp(host, "*") == 0 || strcmp(host, "0.0.0.0") == 0 ||
           strcmp(host, "::") == 0;
}

int kn_local_service_binds_overlap(const char *a, const char *b)
{
    char ha[256], hb[256];
    int pa, pb;

    if (kn_hostport_parse(a, ha, sizeof(ha), &pa) < 0 ||
        kn_hostport_parse(b, hb, sizeof(hb), &pb) < 0) {
        return strcmp(a, b) == 0;
    }
    return pa == pb && (strcmp(ha, hb) == 0 || kn_local_service_any_host(ha) ||
                        kn_local_service_any_host(hb));
}

/* The node of the document of `doc` in the app's parsed files, NULL when not found. */
static const struct kn_node *kn_local_service_doc_node(const struct kn_app *app,
                                                       const struct kn_manifest_doc *doc)
{
    for (size_t f = 0; f < app->nfiles; f++) {
        const struct kn_yaml *y = app->files[f];
        if (!y->file || !doc->loc.file || strcmp(y->file, doc->loc.file) != 0) {
            continue;
        }
        for (size_t d = 0; d < y->ndocs; d++) {
            if (y->docs[d] && y->docs[d]->loc.line == doc->loc.line &&
                y->docs[d]->loc.col == doc->loc.col) {
                return y->docs[d];
            }
        }
    }
    return NULL;
}

const char *kn_local_service_bind(const struct kn_app *app, struct kn_loc *loc)
{
    for (size_t i = 0; i < app->ndocs; i++) {
        const struct kn_manifest_doc *doc = &app->docs[i];
        const json_t *bind;
        const struct kn_node *node;
        if (!doc->kind || strcmp(doc->kind, KN_LOCAL_SERVICE_KIND) != 0) {
            continue;
        }
        bind = json_object_get(json_object_get(json_object_get(doc->json, "spec"), "frontend"),
                               "bind");
        if (!json_is_string(bind)) {
            return NULL;
        }
        node = kn_node_get(kn_node_get(kn_node_get(kn_local_service_doc_node(app, doc), "spec"),
                                       "frontend"),
                           "bind");
        if (loc) {
            *loc = node ? node->loc : doc->loc;
        }
        return json_string_value(bind);
    }
    return NULL;
}

static const char *kn_local_service_platform(const struct kn_app *app)
{
    return app->cfg.spec.platform ? app->cfg.spec.platform : "local";
}

void kn_local_service_check_binds(struct kn_app *const *apps, size_t n)
{
    /* each app's bind read once: a monorepo of thousands of apps compares ports first */
    const char **binds = kn_calloc(n + 1, sizeof(*binds));
    struct kn_loc *locs = kn_calloc(n + 1, sizeof(*locs));
    int *ports = kn_calloc(n + 1, sizeof(*ports));
    char host[256];

    for (size_t i = 0; i < n; i++) {
        binds[i] = apps[i]->diags.count > 0 ? NULL : kn_local_service_bind(apps[i], &locs[i]);
        if (binds[i] && kn_hostport_parse(binds[i], host, sizeof(host), &ports[i]) < 0) {
            binds[i] = NULL; /* reported by the schema already */
        }
    }
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; binds[i] && j < i; j++) {
            if (!binds[j] || ports[j] != ports[i] ||
                strcmp(kn_local_service_platform(apps[i]), kn_local_service_platform(apps[j])) ||
                !kn_local_service_binds_overlap(binds[i], binds[j])) {
                continue;
            }
            kn_diags_add(&apps[i]->diags, &locs[i],
                         "frontend.bind %s is already used by app '%s' (%s) on platform '%s'",
                         binds[i], apps[j]->name, apps[j]->config_path,
                         kn_local_service_platform(apps[i]));
            binds[i] = NULL; /* invalid now: owns nothing */
        }
    }
    free(binds);
    free(locs);
    free(ports);
}
