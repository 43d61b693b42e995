/*
 * ANALYSIS: the options of the metric and HTTP checks and their validation. Queries and probe
 * URLs may use {{app}}, {{repository}}, {{variant}}, {{window}}, {{commit}}, {{args.NAME}} for
 * each NAME in `args` (queries only), and the placeholders of the app's platform type
 * (kn_platform_type.placeholders: the local platform's {{backend}} and {{server}}); anything
 * else between braces is an error before a rollout starts. They are checked with the pipeline
 * (analysis_simulate), once the app's platform type is known and shared templates are filled in.
 */
#include <jansson.h>
#include <regex.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kanaria/alloc.h"
#include "kanaria/app.h"
#include "kanaria/config.h"
#include "kanaria/metrics.h"
#include "kanaria/platform.h"
#include "stages.h"

static const char *const strategies[] = {"threshold", "canary-primary", "canary-baseline",
                                         "previous", "burn-rate", NULL};
static const char *const deviations[] = {"either", "high", "low", NULL};
static const char *const no_data_policies[] = {"inconclusive", "fail", "skip", NULL};
static const char *const methods[] = {"GET", "HEAD", "POST", "PUT", NULL};
/* in the order of enum kn_variant */
static const char *const probe_variants[] = {"primary", "canary", "baseline", NULL};

static const struct kn_field expected_fields[] = {
    {.key = "min",
     .type = KN_TYPE_DOUBLE,
     .offset = offsetof(struct kn_metric_expected, min),
     .help = "lowest acceptable value"},
    {.key = "max",
     .type = KN_TYPE_DOUBLE,
     .offset = offsetof(struct kn_metric_expected, max),
     .help = "highest acceptable value"},
};

static void expected_check(void *obj, const struct kn_node *node, struct kn_schema_ctx *ctx)
{
    const struct kn_metric_expected *e = obj;

    if ((e->set & 3u) == 3u && e->min > e->max) {
        kn_schema_error(ctx, node, "'%s.min' (%g) is greater than '%s.max' (%g)", ctx->path,
                        e->min, ctx->path, e->max);
    }
}

static const struct kn_schema expected_schema = {
    .name = "expected",
    KN_SCHEMA_FIELDS(expected_fields),
    .size = sizeof(struct kn_metric_expected),
    .set_offset = offsetof(struct kn_metric_expected, set),
    .check = expected_check,
};

/* The placeholders every app has: the front end's (kn_platform_template_vars) and the stage's. */
static const char *const common_placeholders[] = {"app", "repository", "variant", "window",
                                                  "commit", NULL};

static int placeholder_known(const char *name, const struct kn_strmap *args,
                             const struct kn_pipeline_sim *sim)
{
    for (size_t i = 0; common_placeholders[i]; i++) {
        if (strcmp(name, common_placeholders[i]) == 0) {
            return 1;
        }
    }
    if (strncmp(name, "args.", 5) == 0) {
        for (size_t i = 0; args && i < args->count; i++) {
            if (strcmp(name + 5, args->keys[i]) == 0) {
                return 1;
            }
        }
        return 0;
    }
    if (!sim->platform_type) {
        return 1; /* the platform's type is unknown, and so are its placeholders */
    }
    for (const struct kn_placeholder *p = sim->placeholders; p && p->name; p++) {
        if (strcmp(name, p->name) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Report each {{placeholder}} of `text` that is neither a common one, nor an arg (args NULL:
 * the text takes none), nor one of the app's platform type: located at `node`, named `what`. */
static void check_placeholders(const char *text, const struct kn_strmap *args,
                               const char *what, const struct kn_node *node,
                               const struct kn_stage_config *stage,
                               const struct kn_pipeline_sim *sim, struct kn_schema_ctx *ctx)
{
    const char *p = text;

    while ((p = strstr(p, "{{")) != NULL) {
        const char *end = strstr(p + 2, "}}");
        const char *s = p + 2, *e;
        char name[128];

        if (!end) {
            kn_schema_error(ctx, node, "stage '%s': '%s' has '{{' without a closing '}}'",
                            stage->name, what);
            return;
        }
        while (s < end && *s == ' ') {
            s++;
        }
        e = end;
        while (e > s && e[-1] == ' ') {
            e--;
        }
        snprintf(name, sizeof(name), "%.*s", (int)(e - s), s);
        /* the base URL of one variant's instances: for http checks (args NULL), on the
         * platforms that can reach a variant alone */
        if (strcmp(name, "variant_url") == 0 && args) {
            kn_schema_error(ctx, node,
                            "stage '%s': '%s' uses '{{variant_url}}', which only an http "
                            "check's url may use",
                            stage->name, what);
        } else if (strcmp(name, "variant_url") == 0 && !placeholder_known(name, args, sim)) {
            kn_schema_error(ctx, node,
                            "stage '%s': '%s' uses '{{variant_url}}', but platform '%s' (type "
                            "%s) cannot reach one variant's instances alone",
                            stage->name, what, sim->platform ? sim->platform : "?",
                            sim->platform_type);
        } else if (!placeholder_known(name, args, sim)) {
            struct kn_buf known;
            kn_buf_init(&known, KN_BUF_UNBOUNDED);
            for (size_t i = 0; common_placeholders[i]; i++) {
                kn_buf_addf(&known, "%s{{%s}}", i ? ", " : "", common_placeholders[i]);
            }
            if (args) {
                kn_buf_adds(&known, ", {{args.NAME}} for each key of 'args'");
            }
            if (sim->platform_type) {
                kn_buf_addf(&known, "; platform '%s' (type %s) adds ",
                            sim->platform ? sim->platform : "?", sim->platform_type);
                if (!sim->placeholders || !sim->placeholders[0].name) {
                    kn_buf_adds(&known, "none");
                }
                for (const struct kn_placeholder *ph = sim->placeholders; ph && ph->name; ph++) {
                    kn_buf_addf(&known, "%s{{%s}}", ph == sim->placeholders ? "" : ", ",
                                ph->name);
                }
            }
            kn_schema_error(ctx, node, "stage '%s': '%s' uses unknown placeholder '{{%s}}' "
                            "(known: %s)", stage->name, what, name, known.data);
            kn_buf_release(&known);
        }
        p = end + 2;
    }
}

/* The rules on what a metric gives, once its template (if any) is filled in. */
static void metric_rules(const struct kn_analysis_metric *m, const struct kn_node *node,
                         struct kn_schema_ctx *ctx)
{
    int has_expected = (m->expected.set & 3u) != 0;

    if (!m->provider) {
        kn_schema_error(ctx, node, "'%s.provider' is required", ctx->path);
    }
    if (!m->query) {
        kn_schema_error(ctx, node, "'%s.query' is required", ctx->path);
    }
    const struct kn_node *given = kn_node_get(node, "strategy");
    if (given && (given->type != KN_NODE_SCALAR || strcmp(given->scalar, strategies[m->strategy]))) {
        return; /* an unknown strategy is reported; what it needs is unknown */
    }
    if (m->strategy == KN_STRATEGY_BURN_RATE && !m->slo) {
        kn_schema_error(ctx, node, "'%s': the burn-rate strategy needs 'slo' (an SLO of the "
                        "app's spec.slos)", ctx->path);
    } else if (m->strategy != KN_STRATEGY_BURN_RATE && m->slo) {
        kn_schema_error(ctx, kn_node_get(node, "slo") ? kn_node_get(node, "slo") : node,
                        "'%s.slo' is used by the burn-rate strategy only, not by '%s'",
                        ctx->path, strategies[m->strategy]);
    }
    if (m->strategy == KN_STRATEGY_THRESHOLD && !has_expected) {
        kn_schema_error(ctx, node, "'%s': the threshold strategy needs 'expected.min' or "
                        "'expected.max'", ctx->path);
    } else if (m->strategy != KN_STRATEGY_THRESHOLD && has_expected) {
        kn_schema_error(ctx, kn_node_get(node, "expected") ? kn_node_get(node, "expected") : node,
                        "'%s.expected' is used by the threshold strategy only, not by '%s'",
                        ctx->path, strategies[m->strategy]);
    }
}

static void metric_check(void *obj, const struct kn_node *node, struct kn_schema_ctx *ctx)
{
    const struct kn_analysis_metric *m = obj;

    if (!m->template_name) {
        metric_rules(m, node, ctx); /* else once the template is filled in (analysis_resolve) */
    }
}

static const struct kn_field metric_fields[] = {
    {.key = "name",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_analysis_metric, name),
     .flags = KN_FIELD_REQUIRED | KN_FIELD_NONEMPTY,
     .help = "the check's name, unique in the stage; reasons and records use it"},
    {.key = "provider",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_analysis_metric, provider),
     .help = "a metricsProviders name of kanaria.yaml"},
    {.key = "query",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_analysis_metric, query),
     .flags = KN_FIELD_NONEMPTY,
     .help = "query template; {{app}}, {{repository}}, {{variant}}, {{window}}, {{commit}}, "
             "{{args.NAME}} and the platform's own (`kanaria help platform TYPE`)"},
    {.key = "interval",
     .type = KN_TYPE_DURATION,
     .offset = offsetof(struct kn_analysis_metric, interval_ms),
     .flags = KN_FIELD_MIN,
     .def = "1m",
     .min = 1000,
     .help = "time between evaluations; also the {{window}}"},
    {.key = "strategy",
     .type = KN_TYPE_ENUM,
     .offset = offsetof(struct kn_analysis_metric, strategy),
     .def = "threshold",
     .enums = strategies,
     .help = "how a value is judged"},
    {.key = "expected",
     .type = KN_TYPE_OBJECT,
     .offset = offsetof(struct kn_analysis_metric, expected),
     .sub = &expected_schema,
     .help = "threshold bounds"},
    {.key = "deviation",
     .type = KN_TYPE_ENUM,
     .offset = offsetof(struct kn_analysis_metric, deviation),
     .def = "either",
     .enums = deviations,
     .help = "which direction of difference fails a comparison (high: canary higher is bad)"},
    {.key = "alpha",
     .type = KN_TYPE_DOUBLE,
     .offset = offsetof(struct kn_analysis_metric, alpha),
     .flags = KN_FIELD_MIN | KN_FIELD_MAX,
     .def = "0.05",
     .min = 0.0001,
     .max = 0.5,
     .help = "significance level of the Mann-Whitney U test"},
    {.key = "minSamples",
     .type = KN_TYPE_INT,
     .offset = offsetof(struct kn_analysis_metric, min_samples),
     .flags = KN_FIELD_MIN | KN_FIELD_MAX,
     .def = "5",
     .min = 1,
     .max = 10000,
     .help = "fewer samples per side make the evaluation INCONCLUSIVE"},
    {.key = "minEffect",
     .type = KN_TYPE_DOUBLE,
     .offset = offsetof(struct kn_analysis_metric, min_effect),
     .flags = KN_FIELD_MIN,
     .def = "0",
     .min = 0,
     .help = "relative difference of medians below which a significant difference passes"},
    {.key = "failureLimit",
     .type = KN_TYPE_INT,
     .offset = offsetof(struct kn_analysis_metric, failure_limit),
     .flags = KN_FIELD_MIN,
     .def = "0",
     .min = 0,
     .help = "FAIL evaluations tolerated; one more fails the check"},
    {.key = "inconclusiveLimit",
     .type = KN_TYPE_INT,
     .offset = offsetof(struct kn_analysis_metric, inconclusive_limit),
     .flags = KN_FIELD_MIN,
     .def = "1",
     .min = 0,
     .help = "INCONCLUSIVE evaluations tolerated; one more fails the check"},
    {.key = "noData",
     .type = KN_TYPE_ENUM,
     .offset = offsetof(struct kn_analysis_metric, no_data),
     .def = "inconclusive",
     .enums = no_data_policies,
     .help = "what an empty result counts as"},
    {.key = "args",
     .type = KN_TYPE_STRING_MAP,
     .offset = offsetof(struct kn_analysis_metric, args),
     .help = "values for {{args.NAME}} in the query"},
    {.key = "slo",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_analysis_metric, slo),
     .flags = KN_FIELD_NONEMPTY,
     .help = "burn-rate: the SLO of the app's spec.slos whose budget the query's error ratio "
             "burns"},
    {.key = "maxBurnRate",
     .type = KN_TYPE_DOUBLE,
     .offset = offsetof(struct kn_analysis_metric, max_burn_rate),
     .flags = KN_FIELD_MIN,
     .def = "14.4",
     .min = 0.001,
     .help = "burn-rate: the check fails when error ratio / (1 - objective) is above this"},
    {.key = "template",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_analysis_metric, template_name),
     .flags = KN_FIELD_NONEMPTY,
     .help = "a metric of " KN_ANALYSIS_TEMPLATES_FILE " to start from; what this entry sets "
             "wins, and its args are added to the template's"},
};

static const struct kn_schema metric_schema = {
    .name = "metric",
    KN_SCHEMA_FIELDS(metric_fields),
    .size = sizeof(struct kn_analysis_metric),
    .set_offset = offsetof(struct kn_analysis_metric, set),
    .check = metric_check,
};

static void http_check_check(void *obj, const struct kn_node *node, struct kn_schema_ctx *ctx)
{
    const struct kn_http_check *h = obj;
    const struct kn_node *statuses = kn_node_get(node, "expectedStatus");

    if (h->url) {
        /* {{variant_url}} is a base URL, http:// or https:// itself */
        if (strncmp(h->url, "http://", 7) != 0 && strncmp(h->url, "https://", 8) != 0 &&
            strncmp(h->url, "{{variant_url}}", 15) != 0 &&
            strncmp(h->url, "{{ variant_url }}", 17) != 0) {
            kn_schema_error(ctx, kn_node_get(node, "url"),
                            "'%s.url' must start with http://, https:// or {{variant_url}}, got "
                            "'%s'",
                            ctx->path, h->url);
        }
    }
    for (size_t i = 0; i < h->expected_status.count; i++) {
        const char *s = h->expected_status.items[i];
        char *end;
        long code = strtol(s, &end, 10);
        if (*end || end == s || code < 100 || code > 599) {
            kn_schema_error(ctx, statuses && i < statuses->len ? statuses->items[i] : node,
                            "'%s.expectedStatus[%zu]' must be an HTTP status from 100 to 599, "
                            "got '%s'", ctx->path, i, s);
        }
    }
    if (h->body_regex) {
        regex_t re;
        int rc = regcomp(&re, h->body_regex, REG_EXTENDED | REG_NOSUB);
        if (rc != 0) {
            char msg[128];
            regerror(rc, &re, msg, sizeof(msg));
            kn_schema_error(ctx, kn_node_get(node, "bodyRegex"),
                            "'%s.bodyRegex' is not a valid regular expression: %s", ctx->path,
                            msg);
        } else {
            regfree(&re);
        }
    }
    if (h->max_latency_ms > 0 && h->max_latency_ms > h->timeout_ms) {
        kn_schema_error(ctx, kn_node_get(node, "maxLatency"),
                        "'%s.maxLatency' must not be longer than its 'timeout'", ctx->path);
    }
}

static const struct kn_field http_fields[] = {
    {.key = "name",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_http_check, name),
     .flags = KN_FIELD_REQUIRED | KN_FIELD_NONEMPTY,
     .help = "the check's name, unique in the stage"},
    {.key = "url",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_http_check, url),
     .flags = KN_FIELD_REQUIRED,
     .help = "URL to probe; {{app}}, {{repository}}, {{variant}}, {{window}}, {{commit}} and "
             "the platform's own placeholders (such as {{variant_url}}) are substituted"},
    {.key = "method",
     .type = KN_TYPE_ENUM,
     .offset = offsetof(struct kn_http_check, method),
     .def = "GET",
     .enums = methods,
     .help = "HTTP method"},
    {.key = "headers",
     .type = KN_TYPE_STRING_MAP,
     .offset = offsetof(struct kn_http_check, headers),
     .help = "request headers"},
    {.key = "expectedStatus",
     .type = KN_TYPE_STRING_LIST,
     .offset = offsetof(struct kn_http_check, expected_status),
     .def = "200",
     .help = "status codes that pass"},
    {.key = "bodyRegex",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_http_check, body_regex),
     .help = "extended regular expression the body must match"},
    {.key = "maxLatency",
     .type = KN_TYPE_DURATION,
     .offset = offsetof(struct kn_http_check, max_latency_ms),
     .help = "slower answers fail"},
    {.key = "timeout",
     .type = KN_TYPE_DURATION,
     .offset = offsetof(struct kn_http_check, timeout_ms),
     .flags = KN_FIELD_MIN | KN_FIELD_MAX,
     .def = "5s",
     .min = 100,
     .max = 60 * 1000,
     .help = "no answer within this is INCONCLUSIVE"},
    {.key = "interval",
     .type = KN_TYPE_DURATION,
     .offset = offsetof(struct kn_http_check, interval_ms),
     .flags = KN_FIELD_MIN,
     .def = "30s",
     .min = 1000,
     .help = "time between probes"},
    {.key = "failureLimit",
     .type = KN_TYPE_INT,
     .offset = offsetof(struct kn_http_check, failure_limit),
     .flags = KN_FIELD_MIN,
     .def = "0",
     .min = 0,
     .help = "FAIL probes tolerated"},
    {.key = "inconclusiveLimit",
     .type = KN_TYPE_INT,
     .offset = offsetof(struct kn_http_check, inconclusive_limit),
     .flags = KN_FIELD_MIN,
     .def = "1",
     .min = 0,
     .help = "INCONCLUSIVE probes tolerated"},
    /* the last field: its bit of `set` is KN_HTTP_CHECK_VARIANT_SET */
    {.key = "variant",
     .type = KN_TYPE_ENUM,
     .offset = offsetof(struct kn_http_check, variant),
     .enums = probe_variants,
     .help = "the variant whose placeholders fill the URL, {{variant_url}} among them (the base "
             "URL that reaches only that variant's instances); default: the canary while one "
             "runs, else the primary"},
};

static const struct kn_schema http_schema = {
    .name = "http check",
    KN_SCHEMA_FIELDS(http_fields),
    .size = sizeof(struct kn_http_check),
    .set_offset = offsetof(struct kn_http_check, set),
    .check = http_check_check,
};

/* ---- shared templates ---------------------------------------------------------------------- */

/* A template is a metric without the rules (they apply once an app's entry is filled in). */
static const struct kn_schema template_metric_schema = {
    .name = "metric template",
    KN_SCHEMA_FIELDS(metric_fields),
    .size = sizeof(struct kn_analysis_metric),
    .set_offset = offsetof(struct kn_analysis_metric, set),
};

struct kn_analysis_templates_spec {
    uint64_t set;
    struct kn_list metrics; /* struct kn_analysis_metric */
};

struct kn_analysis_templates {
    uint64_t set;
    char *api_version;
    char *kind;
    struct kn_analysis_templates_spec spec;
};

static const struct kn_field templates_spec_fields[] = {
    {.key = "metrics",
     .type = KN_TYPE_LIST,
     .offset = offsetof(struct kn_analysis_templates_spec, metrics),
     .sub = &template_metric_schema,
     .flags = KN_FIELD_REQUIRED,
     .help = "metric checks that apps use by name (`template: NAME`)"},
};

static const struct kn_schema templates_spec_schema = {
    .name = "spec",
    KN_SCHEMA_FIELDS(templates_spec_fields),
    .size = sizeof(struct kn_analysis_templates_spec),
    .set_offset = offsetof(struct kn_analysis_templates_spec, set),
};

static void templates_check(void *obj, const struct kn_node *node, struct kn_schema_ctx *ctx)
{
    const struct kn_analysis_templates *t = obj;

    if (t->kind && strcmp(t->kind, "AnalysisTemplate") != 0) {
        kn_schema_error(ctx, kn_node_get(node, "kind"), "'kind' must be AnalysisTemplate, got '%s'",
                        t->kind);
    }
}

static const struct kn_field templates_fields[] = {
    {.key = "apiVersion",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_analysis_templates, api_version),
     .flags = KN_FIELD_REQUIRED,
     .help = "kanaria.dev/v1"},
    {.key = "kind",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_analysis_templates, kind),
     .flags = KN_FIELD_REQUIRED,
     .help = "AnalysisTemplate"},
    {.key = "spec",
     .type = KN_TYPE_OBJECT,
     .offset = offsetof(struct kn_analysis_templates, spec),
     .sub = &templates_spec_schema,
     .flags = KN_FIELD_REQUIRED,
     .help = "the templates"},
};

static const struct kn_schema templates_schema = {
    .name = "AnalysisTemplate",
    KN_SCHEMA_FIELDS(templates_fields),
    .size = sizeof(struct kn_analysis_templates),
    .set_offset = offsetof(struct kn_analysis_templates, set),
    .check = templates_check,
};

static void strmap_put(struct kn_strmap *m, const char *key, const char *value)
{
    m->keys = kn_reallocarray(m->keys, m->count + 1, sizeof(*m->keys));
    m->values = kn_reallocarray(m->values, m->count + 1, sizeof(*m->values));
    m->keys[m->count] = kn_strdup(key);
    m->values[m->count++] = kn_strdup(value);
}

/* Fill what `m` does not set from `t`; m's args are added to t's (m's win). */
static void merge_template(struct kn_analysis_metric *m, const struct kn_analysis_metric *t)
{
    for (size_t i = 0; i < sizeof(metric_fields) / sizeof(metric_fields[0]); i++) {
        const struct kn_field *f = &metric_fields[i];
        uint64_t bit = (uint64_t)1 << i;
        char *dst = (char *)m + f->offset;
        const char *src = (const char *)t + f->offset;

        if ((m->set & bit) || !(t->set & bit) || f->type == KN_TYPE_STRING_MAP ||
            strcmp(f->key, "name") == 0 || strcmp(f->key, "template") == 0) {
            continue;
        }
        switch (f->type) {
        case KN_TYPE_STRING:
            free(*(char **)dst);
            *(char **)dst = kn_strdup(*(char *const *)src);
            break;
        case KN_TYPE_DURATION:
        case KN_TYPE_INT:
            *(long long *)dst = *(const long long *)src;
            break;
        case KN_TYPE_DOUBLE:
            *(double *)dst = *(const double *)src;
            break;
        case KN_TYPE_ENUM:
            *(int *)dst = *(const int *)src;
            break;
        case KN_TYPE_OBJECT: /* expected: plain numbers */
            memcpy(dst, src, f->sub->size);
            break;
        default:
            continue;
        }
        m->set |= bit;
    }
    for (size_t i = 0; i < t->args.count; i++) {
        int given = 0;
        for (size_t j = 0; j < m->args.count; j++) {
            given |= strcmp(m->args.keys[j], t->args.keys[i]) == 0;
        }
        if (!given) {
            strmap_put(&m->args, t->args.keys[i], t->args.values[i]);
        }
    }
}

static const struct kn_node *list_item(const struct kn_node *node, const char *key, size_t i);

static void analysis_resolve(struct kn_stage_config *st, const struct kn_node *shared,
                             struct kn_schema_ctx *ctx)
{
    struct kn_analysis_options *o = st->with;
    struct kn_analysis_metric *metrics = o ? o->metrics.items : NULL;
    struct kn_analysis_templates t;
    const struct kn_analysis_metric *tm;
    char saved[sizeof(ctx->path)];
    int parsed = 0;

    memset(&t, 0, sizeof(t));
    memcpy(saved, ctx->path, sizeof(saved));
    for (size_t i = 0; o && i < o->metrics.count; i++) {
        struct kn_analysis_metric *m = &metrics[i];
        const struct kn_node *at = list_item(st->with_node, "metrics", i);
        const struct kn_analysis_metric *found = NULL;

        if (!m->template_name) {
            continue;
        }
        snprintf(ctx->path, sizeof(ctx->path), "metrics[%zu]", i);
        if (!shared) {
            kn_schema_error(ctx, kn_node_get(at, "template"),
                            "'%s.template' names '%s', but the repository has no %s", ctx->path,
                            m->template_name, KN_ANALYSIS_TEMPLATES_FILE);
            continue;
        }
        if (!parsed) {
            const char *prefix = ctx->prefix;
            ctx->prefix = NULL;
            ctx->path[0] = '\0';
            kn_schema_parse(&templates_schema, shared, &shared->loc, &t, ctx);
            ctx->prefix = prefix;
            snprintf(ctx->path, sizeof(ctx->path), "metrics[%zu]", i);
            parsed = 1;
        }
        tm = t.spec.metrics.items;
        for (size_t j = 0; j < t.spec.metrics.count; j++) {
            if (tm[j].name && strcmp(tm[j].name, m->template_name) == 0) {
                found = &tm[j];
            }
        }
        if (!found) {
            struct kn_buf names;
            kn_buf_init(&names, 1024);
            for (size_t j = 0; j < t.spec.metrics.count; j++) {
                kn_buf_addf(&names, "%s%s", j ? ", " : "", tm[j].name ? tm[j].name : "?");
            }
            kn_schema_error(ctx, kn_node_get(at, "template"),
                            "'%s.template': no metric '%s' in %s (it has: %s)", ctx->path,
                            m->template_name, KN_ANALYSIS_TEMPLATES_FILE,
                            names.data ? names.data : "none");
            kn_buf_release(&names);
            continue;
        }
        merge_template(m, found);
        metric_rules(m, at, ctx);
        if (o->duration_ms > 0 && m->interval_ms > o->duration_ms) {
            char d1[32], d2[32];
            kn_schema_error(ctx, at,
                            "check '%s': 'interval' (%s, from template '%s') is longer than "
                            "'duration' (%s), so it would never be evaluated",
                            m->name, kn_duration_format(m->interval_ms, d1, sizeof(d1)),
                            m->template_name, kn_duration_format(o->duration_ms, d2, sizeof(d2)));
        }
    }
    memcpy(ctx->path, saved, sizeof(saved));
    kn_schema_release(&templates_schema, &t);
}

static const struct kn_node *list_item(const struct kn_node *node, const char *key, size_t i)
{
    const struct kn_node *list = kn_node_get(node, key);
    return list && list->type == KN_NODE_SEQ && i < list->len ? list->items[i] : node;
}

static void analysis_check(void *obj, const struct kn_node *node, struct kn_schema_ctx *ctx)
{
    const struct kn_analysis_options *a = obj;
    const struct kn_analysis_metric *metrics = a->metrics.items;
    const struct kn_http_check *https = a->http.items;
    size_t total = a->metrics.count + a->http.count;
    char d1[32], d2[32];

    if (total == 0) {
        kn_schema_error(ctx, node, "set at least one check in 'metrics' or 'http'");
    }
    for (size_t i = 0; i < total; i++) {
        const char *name = i < a->metrics.count ? metrics[i].name
                                                : https[i - a->metrics.count].name;
        long long interval = i < a->metrics.count ? metrics[i].interval_ms
                                                  : https[i - a->metrics.count].interval_ms;
        const struct kn_node *at = i < a->metrics.count
                                       ? list_item(node, "metrics", i)
                                       : list_item(node, "http", i - a->metrics.count);
        if (!name) {
            continue;
        }
        for (size_t j = 0; j < i; j++) {
            const char *other = j < a->metrics.count ? metrics[j].name
                                                     : https[j - a->metrics.count].name;
            if (other && strcmp(name, other) == 0) {
                kn_schema_error(ctx, at, "check name '%s' is used twice", name);
                break;
            }
        }
        if (a->duration_ms > 0 && interval > a->duration_ms &&
            !(i < a->metrics.count && metrics[i].template_name)) { /* checked once filled in */
            kn_schema_error(ctx, at,
                            "check '%s': 'interval' (%s) is longer than 'duration' (%s), so it "
                            "would never be evaluated",
                            name, kn_duration_format(interval, d1, sizeof(d1)),
                            kn_duration_format(a->duration_ms, d2, sizeof(d2)));
        }
    }
}

static const struct kn_field analysis_fields[] = {
    {.key = "duration",
     .type = KN_TYPE_DURATION,
     .offset = offsetof(struct kn_analysis_options, duration_ms),
     .flags = KN_FIELD_REQUIRED | KN_FIELD_MIN | KN_FIELD_MAX,
     .min = 1000,
     .max = 24 * 3600 * 1000.0,
     .help = "how long to analyse; the stage passes when it ends with no check failed"},
    {.key = "metrics",
     .type = KN_TYPE_LIST,
     .offset = offsetof(struct kn_analysis_options, metrics),
     .sub = &metric_schema,
     .help = "metric checks (Prometheus queries)"},
    {.key = "http",
     .type = KN_TYPE_LIST,
     .offset = offsetof(struct kn_analysis_options, http),
     .sub = &http_schema,
     .help = "HTTP probes"},
};

static const struct kn_schema analysis_schema = {
    .name = "ANALYSIS",
    KN_SCHEMA_FIELDS(analysis_fields),
    .size = sizeof(struct kn_analysis_options),
    .set_offset = offsetof(struct kn_analysis_options, set),
    .check = analysis_check,
};

/* The checks of an ANALYSIS without its duration (another stage gives it: CANARY_STEPS' step
 * interval). */
static const struct kn_field checks_fields[] = {
    {.key = "metrics",
     .type = KN_TYPE_LIST,
     .offset = offsetof(struct kn_analysis_options, metrics),
     .sub = &metric_schema,
     .help = "metric checks, as ANALYSIS's (templates allowed)"},
    {.key = "http",
     .type = KN_TYPE_LIST,
     .offset = offsetof(struct kn_analysis_options, http),
     .sub = &http_schema,
     .help = "HTTP probes, as ANALYSIS's"},
};

/* Absent, the block asks for nothing; given, it needs a check. */
static void checks_check(void *obj, const struct kn_node *node, struct kn_schema_ctx *ctx)
{
    if (node) {
        analysis_check(obj, node, ctx);
    }
}

const struct kn_schema kn_analysis_checks_schema = {
    .name = "analysis",
    KN_SCHEMA_FIELDS(checks_fields),
    .size = sizeof(struct kn_analysis_options),
    .set_offset = offsetof(struct kn_analysis_options, set),
    .check = checks_check,
};

/* The provider's own check of a metric's query, with its placeholders filled in by sample
 * values (its args by their own): located at the query, or at the metric when the query came
 * from a shared template. */
static void check_query(const struct kn_metrics_provider_config *provider,
                        const struct kn_analysis_metric *m, const struct kn_node *at,
                        const struct kn_stage_config *stage, const struct kn_pipeline_sim *sim,
                        struct kn_schema_ctx *ctx)
{
    const struct kn_metrics_type *type = provider->mtype;
    const struct kn_node *query = kn_node_get(at, "query");
    struct kn_strmap vars = {0};
    char *filled = NULL;
    char msg[256];

    if (!type || !type->check_query) {
        goto out;
    }
    kn_platform_vars_set(&vars, "app", "app");
    kn_platform_vars_set(&vars, "repository", "repository");
    kn_platform_vars_set(&vars, "variant", "canary");
    kn_platform_vars_set(&vars, "window", "1m");
    kn_platform_vars_set(&vars, "commit", "0000000000000000000000000000000000000000");
    for (const struct kn_placeholder *p = sim->placeholders; p && p->name; p++) {
        kn_platform_vars_set(&vars, p->name, p->name); /* a sample: the platform's values vary */
    }
    filled = kn_analysis_fill(m->query, &m->args, &vars);
    if (!filled || type->check_query(filled, msg, sizeof(msg)) == 0) {
        goto out; /* too long once filled in: reported when the stage runs */
    }
    if (query || at != stage->with_node) {
        kn_schema_error(ctx, query ? query : at,
                        "stage '%s': metric '%s': the %s query is not valid: %s", stage->name,
                        m->name ? m->name : "?", type->name, msg);
    } else {
        kn_schema_error_at(ctx, &stage->loc,
                           "stage '%s': metric '%s': the %s query is not valid: %s",
                           stage->name, m->name ? m->name : "?", type->name, msg);
    }
out:
    kn_platform_vars_release(&vars);
    free(filled);
}

static void analysis_simulate(struct kn_pipeline_sim *sim, const struct kn_stage_config *stage,
                              struct kn_schema_ctx *ctx)
{
    const struct kn_analysis_options *a = stage->with;
    const struct kn_analysis_metric *metrics;
    char d1[32], d2[32];

    if (!a) {
        return;
    }
    metrics = a->metrics.items;
    if (stage->timeout_ms > 0 && stage->timeout_ms <= a->duration_ms) {
        kn_schema_error_at(ctx, &stage->loc,
                           "stage 'ANALYSIS': 'timeout' (%s) must be longer than 'duration' (%s)",
                           kn_duration_format(stage->timeout_ms, d1, sizeof(d1)),
                           kn_duration_format(a->duration_ms, d2, sizeof(d2)));
    }
    for (size_t i = 0; i < a->metrics.count; i++) {
        const struct kn_analysis_metric *m = &metrics[i];
        int needs_canary = m->strategy == KN_STRATEGY_CANARY_PRIMARY ||
                           m->strategy == KN_STRATEGY_CANARY_BASELINE;
        if (needs_canary && !sim->running[KN_VARIANT_CANARY]) {
            kn_schema_error_at(ctx, &stage->loc,
                               "stage '%s': metric '%s' compares the canary, but no canary "
                               "runs at this point (add CANARY_ROLLOUT before it)",
                               stage->name, m->name);
        }
        if (m->strategy == KN_STRATEGY_CANARY_BASELINE && !sim->running[KN_VARIANT_BASELINE]) {
            kn_schema_error_at(ctx, &stage->loc,
                               "stage '%s': metric '%s' compares with the baseline, but no "
                               "baseline runs at this point (add BASELINE_ROLLOUT before it)",
                               stage->name, m->name);
        }
        if (m->strategy == KN_STRATEGY_BURN_RATE && m->slo && sim->app &&
            !kn_app_slo(sim->app, m->slo)) {
            const struct kn_node *at = list_item(stage->with_node, "metrics", i);
            kn_schema_error(ctx, kn_node_get(at, "slo") ? kn_node_get(at, "slo") : at,
                            "stage '%s': metric '%s' burns SLO '%s', which the app does not "
                            "declare in spec.slos",
                            stage->name, m->name ? m->name : "?", m->slo);
        }
        if (m->query) {
            const struct kn_node *at = list_item(stage->with_node, "metrics", i);
            char what[64];
            snprintf(what, sizeof(what), "metrics[%zu].query", i);
            check_placeholders(m->query, &m->args, what,
                               kn_node_get(at, "query") ? kn_node_get(at, "query") : at, stage,
                               sim, ctx);
        }
        if (sim->controller && m->provider &&
            !kn_config_metrics_provider(sim->controller, m->provider)) {
            kn_schema_error_at(ctx, &stage->loc,
                               "stage '%s': metric '%s' uses provider '%s', which "
                               "kanaria.yaml does not declare in 'metricsProviders'",
                               stage->name, m->name ? m->name : "?", m->provider);
        } else if (sim->controller && m->provider && m->query) {
            check_query(kn_config_metrics_provider(sim->controller, m->provider), m,
                        list_item(stage->with_node, "metrics", i), stage, sim, ctx);
        }
    }
    for (size_t i = 0; i < a->http.count; i++) {
        const struct kn_http_check *h = &((const struct kn_http_check *)a->http.items)[i];
        const struct kn_node *at = list_item(stage->with_node, "http", i);
        char what[64];
        if (h->url) {
            snprintf(what, sizeof(what), "http[%zu].url", i);
            check_placeholders(h->url, NULL, what,
                               kn_node_get(at, "url") ? kn_node_get(at, "url") : at, stage, sim,
                               ctx);
        }
        if ((h->set & KN_HTTP_CHECK_VARIANT_SET) && !sim->running[h->variant]) {
            kn_schema_error(ctx, kn_node_get(at, "variant") ? kn_node_get(at, "variant") : at,
                            "stage '%s': http check '%s' probes the %s, but no %s runs at this "
                            "point (add %s before it)",
                            stage->name, h->name ? h->name : "?", probe_variants[h->variant],
                            probe_variants[h->variant],
                            h->variant == KN_VARIANT_CANARY ? "CANARY_ROLLOUT"
                                                            : "BASELINE_ROLLOUT");
        }
    }
}

static void analysis_describe(const struct kn_stage_config *stage, json_t *out)
{
    const struct kn_analysis_options *o = stage->with;
    const struct kn_analysis_metric *metrics = o->metrics.items;
    const struct kn_http_check *https = o->http.items;
    json_t *checks = json_array();

    json_object_set_new(out, "duration_ms", json_integer(o->duration_ms));
    for (size_t i = 0; i < o->metrics.count; i++) {
        const struct kn_analysis_metric *m = &metrics[i];
        const struct kn_metric_expected *e = &m->expected;
        /* a fixed bound only for a threshold; the others compare two sets of samples */
        int fixed = m->strategy == KN_STRATEGY_THRESHOLD;
        json_array_append_new(
            checks, json_pack("{s:s, s:s, s:o, s:o, s:I}", "name", m->name ? m->name : "",
                              "strategy", strategies[m->strategy], "max",
                              fixed && (e->set & 2u) ? json_real(e->max) : json_null(), "min",
                              fixed && (e->set & 1u) ? json_real(e->min) : json_null(),
                              "interval_ms", (json_int_t)m->interval_ms));
    }
    for (size_t i = 0; i < o->http.count; i++) {
        json_t *c = json_pack("{s:s, s:s, s:n, s:n, s:I}", "name",
                              https[i].name ? https[i].name : "", "strategy", "http", "max",
                              "min", "interval_ms", (json_int_t)https[i].interval_ms);
        if (https[i].set & KN_HTTP_CHECK_VARIANT_SET) {
            json_object_set_new(c, "variant", json_string(probe_variants[https[i].variant]));
        }
        json_array_append_new(checks, c);
    }
    json_object_set_new(out, "checks", checks);
}

const struct kn_stage_kind kn_stage_analysis = {
    .name = "ANALYSIS",
    .with = &analysis_schema,
    .default_timeout_ms = 0, /* duration + 5m, computed by the engine */
    .help = "evaluate metric and HTTP checks for a duration; fail at the first failed check",
    .simulate = analysis_simulate,
    .resolve = analysis_resolve,
    .start = kn_analysis_start,
    .cancel = kn_analysis_cancel,
    .describe = analysis_describe,
};

/* ---- background analysis: an app's `spec.analysis` ------------------------------------------ */

static void background_check(void *obj, const struct kn_node *node, struct kn_schema_ctx *ctx)
{
    struct kn_background_options *b = obj;

    b->stage.name = (char *)(uintptr_t) "ANALYSIS";
    b->stage.id = (char *)(uintptr_t) "background";
    b->stage.kind = &kn_stage_analysis;
    b->stage.with = &b->checks;
    b->stage.with_node = node;
    if (node) {
        b->stage.loc = node->loc;
    }
    analysis_check(&b->checks, node, ctx);
}

static const struct kn_field background_fields[] = {
    {.key = "startingStage",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_background_options, starting_stage),
     .flags = KN_FIELD_NONEMPTY,
     .help = "the stage (its id, or its kind) whose start starts the analysis (default: the "
             "first stage)"},
    {.key = "until",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_background_options, until),
     .flags = KN_FIELD_NONEMPTY,
     .help = "the stage (its id, or its kind) whose start ends it (default: the first "
             "PRIMARY_ROLLOUT after startingStage; none: the end of the pipeline)"},
    {.key = "metrics",
     .type = KN_TYPE_LIST,
     .offset = offsetof(struct kn_background_options, checks.metrics),
     .sub = &metric_schema,
     .help = "metric checks, as ANALYSIS's (templates allowed)"},
    {.key = "http",
     .type = KN_TYPE_LIST,
     .offset = offsetof(struct kn_background_options, checks.http),
     .sub = &http_schema,
     .help = "HTTP probes, as ANALYSIS's"},
};

const struct kn_schema kn_background_schema = {
    .name = "analysis",
    KN_SCHEMA_FIELDS(background_fields),
    .size = sizeof(struct kn_background_options),
    .set_offset = offsetof(struct kn_background_options, set),
    .check = background_check,
};
