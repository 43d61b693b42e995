/*
 * TRAFFIC_ROUTING: set the share of traffic each variant takes.
 */
#include <jansson.h>
#include <math.h>
#include <regex.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kanaria/alloc.h"
#include "kanaria/engine.h"
#include "kanaria/platform.h"
#include "kanaria/plugin/platform.h"
#include "stages.h"

static const char *const variant_names[] = {"primary", "canary", "baseline", NULL};

/* A header or cookie name: an HTTP token (RFC 9110), which no runtime command or generated
 * configuration can read as more than a name. */
static int token_valid(const char *s)
{
    if (!s || !*s || strlen(s) > 128) {
        return 0;
    }
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              strchr("!#$%&'*+-.^_`|~", c))) {
            return 0;
        }
    }
    return 1;
}

/* A value a request can carry: printable ASCII (spaces inside), at most 256 characters. */
static int value_valid(const char *s)
{
    if (!s || strlen(s) > 256) {
        return 0;
    }
    for (; *s; s++) {
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e) {
            return 0;
        }
    }
    return 1;
}

static void matcher_check(void *obj, const struct kn_node *node, struct kn_schema_ctx *ctx)
{
    struct kn_traffic_matcher *m = obj;
    int given = !!(m->set & 2u) + !!(m->set & 4u);

    if (m->set == 0) {
        return; /* not given (the other of header and cookie), or empty: match_check says */
    }
    if (!(m->set & 1u)) {
        kn_schema_error(ctx, node, "'name' is required");
    } else if (!token_valid(m->name)) {
        kn_schema_error(ctx, kn_node_get(node, "name"),
                        "'name' must be a header or cookie name (letters, digits and "
                        "!#$%%&'*+-.^_`|~, at most 128)");
    }
    if (given != 1) {
        kn_schema_error(ctx, node, "set one of 'exact' or 'regex'");
        return;
    }
    if ((m->set & 2u) && !value_valid(m->exact)) {
        kn_schema_error(ctx, kn_node_get(node, "exact"),
                        "'exact' must be printable characters, at most 256");
    }
    if (m->set & 4u) {
        regex_t re;
        int rc;
        if (!value_valid(m->regex) || !m->regex[0]) {
            kn_schema_error(ctx, kn_node_get(node, "regex"),
                            "'regex' must be printable characters, 1 to 256");
            return;
        }
        if ((rc = regcomp(&re, m->regex, REG_EXTENDED | REG_NOSUB)) != 0) {
            char why[128];
            regerror(rc, &re, why, sizeof(why));
            kn_schema_error(ctx, kn_node_get(node, "regex"), "'regex' is not a regular "
                            "expression: %s", why);
            return;
        }
        regfree(&re);
    }
}

static const struct kn_field matcher_fields[] = {
    {.key = "name",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_traffic_matcher, name),
     .flags = KN_FIELD_NONEMPTY,
     .help = "the header (any case) or cookie name"},
    {.key = "exact",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_traffic_matcher, exact),
     .help = "the value, exactly"},
    {.key = "regex",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_traffic_matcher, regex),
     .help = "a regular expression (POSIX extended) the whole value matches"},
};

static const struct kn_schema matcher_schema = {
    .name = "TRAFFIC_ROUTING match",
    KN_SCHEMA_FIELDS(matcher_fields),
    .size = sizeof(struct kn_traffic_matcher),
    .set_offset = offsetof(struct kn_traffic_matcher, set),
    .check = matcher_check,
};

static void match_check(void *obj, const struct kn_node *node, struct kn_schema_ctx *ctx)
{
    const struct kn_traffic_match *m = obj;

    if ((m->set & 3u) == 0 || (m->set & 3u) == 3u) {
        kn_schema_error(ctx, node, "set one of 'header' or 'cookie'");
    } else if (((m->set & 1u) ? m->header.set : m->cookie.set) == 0) {
        kn_schema_error(ctx, kn_node_get(node, (m->set & 1u) ? "header" : "cookie"),
                        "set 'name' and one of 'exact' or 'regex'");
    }
}

static const struct kn_field match_fields[] = {
    {.key = "header",
     .type = KN_TYPE_OBJECT,
     .offset = offsetof(struct kn_traffic_match, header),
     .sub = &matcher_schema,
     .help = "a request header: {name, exact | regex}"},
    {.key = "cookie",
     .type = KN_TYPE_OBJECT,
     .offset = offsetof(struct kn_traffic_match, cookie),
     .sub = &matcher_schema,
     .help = "a cookie: {name, exact | regex}"},
};

static const struct kn_schema match_schema = {
    .name = "TRAFFIC_ROUTING match",
    KN_SCHEMA_FIELDS(match_fields),
    .size = sizeof(struct kn_traffic_match),
    .set_offset = offsetof(struct kn_traffic_match, set),
    .check = match_check,
};

static const struct kn_field traffic_fields[] = {
    {.key = "primary",
     .type = KN_TYPE_PERCENT,
     .offset = offsetof(struct kn_traffic_options, percent[KN_VARIANT_PRIMARY]),
     .flags = KN_FIELD_MIN | KN_FIELD_MAX,
     .min = 0,
     .max = 100,
     .help = "percent of traffic to the primary (default: what the others leave)"},
    {.key = "canary",
     .type = KN_TYPE_PERCENT,
     .offset = offsetof(struct kn_traffic_options, percent[KN_VARIANT_CANARY]),
     .flags = KN_FIELD_MIN | KN_FIELD_MAX,
     .min = 0,
     .max = 100,
     .help = "percent of traffic to the canary"},
    {.key = "baseline",
     .type = KN_TYPE_PERCENT,
     .offset = offsetof(struct kn_traffic_options, percent[KN_VARIANT_BASELINE]),
     .flags = KN_FIELD_MIN | KN_FIELD_MAX,
     .min = 0,
     .max = 100,
     .help = "percent of traffic to the baseline"},
    {.key = "all",
     .type = KN_TYPE_ENUM,
     .offset = offsetof(struct kn_traffic_options, all),
     .enums = variant_names,
     .help = "send all traffic to one variant (instead of percents)"},
    {.key = "match",
     .type = KN_TYPE_LIST,
     .offset = offsetof(struct kn_traffic_options, match),
     .sub = &match_schema,
     .flags = KN_FIELD_NONEMPTY,
     .help = "requests matching any entry go to the canary whatever the weights"},
    {.key = "mirror",
     .type = KN_TYPE_PERCENT,
     .offset = offsetof(struct kn_traffic_options, mirror),
     .flags = KN_FIELD_MIN | KN_FIELD_MAX,
     .min = 0,
     .max = 100,
     .help = "percent of the primary's requests copied to the canary (answers dropped)"},
};

static void traffic_check(void *obj, const struct kn_node *node, struct kn_schema_ctx *ctx)
{
    struct kn_traffic_options *t = obj;
    int given = 0;
    double sum = 0;

    /* fields 0..2 of the table are the variants in enum order */
    for (int v = 0; v < KN_VARIANT_COUNT; v++) {
        if (t->set & (1u << v)) {
            if (t->percent[v] < 0 || t->percent[v] > 100) {
                return; /* already reported; a sum would only repeat it */
            }
            given++;
            sum += t->percent[v];
        }
    }
    if (t->set & (1u << 3)) {
        if (given) {
            kn_schema_error(ctx, kn_node_get(node, "all"),
                            "'all' cannot be combined with percents");
            return;
        }
        for (int v = 0; v < KN_VARIANT_COUNT; v++) {
            t->percent[v] = v == t->all ? 100 : 0;
        }
        t->valid = 1;
        return;
    }
    if (!given && (t->set & ((1u << 4) | (1u << 5)))) {
        /* only routes: the weights stay all on the primary */
        t->percent[KN_VARIANT_PRIMARY] = 100;
        t->valid = 1;
        return;
    }
    if (!given) {
        kn_schema_error(ctx, node, "set 'primary', 'canary', 'baseline' (percents) or 'all'");
        return;
    }
    if (t->set & (1u << KN_VARIANT_PRIMARY)) {
        if (sum < 99.999 || sum > 100.001) {
            kn_schema_error(ctx, node, "'primary', 'canary' and 'baseline' must add up to 100, "
                            "got %g", sum);
            return;
        }
    } else if (sum > 100.001) {
        kn_schema_error(ctx, node, "'canary' and 'baseline' add up to %g, more than 100", sum);
        return;
    } else {
        t->percent[KN_VARIANT_PRIMARY] = 100 - sum;
    }
    t->valid = 1;
}

static const struct kn_schema traffic_schema = {
    .name = "TRAFFIC_ROUTING",
    KN_SCHEMA_FIELDS(traffic_fields),
    .size = sizeof(struct kn_traffic_options),
    .set_offset = offsetof(struct kn_traffic_options, set),
    .check = traffic_check,
};

/* match and mirror: the platform can, and a canary runs to take them. */
static void traffic_simulate_routes(struct kn_pipeline_sim *sim,
                                    const struct kn_stage_config *stage,
                                    struct kn_schema_ctx *ctx)
{
    const struct kn_traffic_options *t = stage->with;
    const struct kn_platform_type *type =
        sim->platform_type ? kn_platform_type_find(sim->platform_type) : NULL;
    static const struct {
        const char *key;
        unsigned cap;
    } wants[] = {{"match", KN_PLATFORM_HEADER_ROUTING}, {"mirror", KN_PLATFORM_MIRROR}};

    for (size_t i = 0; i < sizeof(wants) / sizeof(wants[0]); i++) {
        int asked = i == 0 ? t->match.count > 0 : t->mirror > 0;
        if (!asked) {
            continue;
        }
        if (type && !(type->caps & wants[i].cap)) {
            kn_schema_error_at(ctx, &stage->loc,
                               "stage 'TRAFFIC_ROUTING': '%s' needs %s, which platform '%s' "
                               "(type %s) cannot do",
                               wants[i].key, kn_platform_cap_name(wants[i].cap),
                               sim->platform ? sim->platform : "?", type->name);
        }
        if (!sim->running[KN_VARIANT_CANARY]) {
            kn_schema_error_at(ctx, &stage->loc,
                               "stage 'TRAFFIC_ROUTING': '%s' sends requests to the canary, but "
                               "no canary runs at this point (add CANARY_ROLLOUT before it)",
                               wants[i].key);
        }
    }
}

static void traffic_simulate(struct kn_pipeline_sim *sim, const struct kn_stage_config *stage,
                             struct kn_schema_ctx *ctx)
{
    const struct kn_traffic_options *t = stage->with;

    if (!t || !t->valid) {
        return; /* already reported; guessing weights would only add errors */
    }
    for (int v = KN_VARIANT_CANARY; v < KN_VARIANT_COUNT; v++) {
        if (t->percent[v] > 0 && !sim->running[v]) {
            kn_schema_error_at(ctx, &stage->loc,
                               "stage 'TRAFFIC_ROUTING': sends %g%% to the %s, but no %s runs "
                               "at this point (add %s before it)",
                               t->percent[v], kn_variant_name(v), kn_variant_name(v),
                               v == KN_VARIANT_CANARY ? "CANARY_ROLLOUT" : "BASELINE_ROLLOUT");
        }
    }
    for (int v = 0; sim->weight_step > 0 && v < KN_VARIANT_COUNT; v++) {
        double steps = t->percent[v] / sim->weight_step;
        if (fabs(steps - round(steps)) > 1e-9) {
            kn_schema_error_at(ctx, &stage->loc,
                               "stage 'TRAFFIC_ROUTING': %g%% to the %s is not a multiple of "
                               "%g%%, the smallest traffic step of platform '%s'",
                               t->percent[v], kn_variant_name(v), sim->weight_step,
                               sim->platform ? sim->platform : "?");
        }
    }
    traffic_simulate_routes(sim, stage, ctx);
    for (int v = 0; v < KN_VARIANT_COUNT; v++) {
        sim->weight[v] = t->percent[v];
    }
    if (t->percent[KN_VARIANT_PRIMARY] < 100) {
        sim->traffic_shifted = 1;
    }
}

static int set_weights(struct kn_stage_run *run, const struct kn_platform_req *req,
                       struct kn_platform_op **op)
{
    const struct kn_traffic_options *t = kn_stage_run_config(run)->with;
    const struct kn_traffic_match *items = t->match.items;
    struct kn_route_match *m;
    struct kn_routes routes = {.mirror = t->mirror};
    int rc;

    if (t->match.count == 0 && t->mirror <= 0) {
        /* the routes a stage before set stay */
        return kn_platform_set_weights(kn_stage_run_platform(run), req, t->percent, op);
    }
    m = kn_calloc(t->match.count + 1, sizeof(*m));
    for (size_t i = 0; i < t->match.count; i++) {
        const struct kn_traffic_matcher *x =
            (items[i].set & 1u) ? &items[i].header : &items[i].cookie;
        m[i].field = (items[i].set & 1u) ? KN_ROUTE_HEADER : KN_ROUTE_COOKIE;
        m[i].name = x->name;
        m[i].regex = (x->set & 4u) != 0;
        m[i].value = m[i].regex ? x->regex : x->exact;
    }
    routes.matches = m;
    routes.nmatches = t->match.count;
    rc = kn_platform_set_routes(kn_stage_run_platform(run), req, t->percent, &routes, op);
    free(m);
    return rc;
}

static void traffic_start(struct kn_stage_run *run)
{
    const struct kn_traffic_options *t = kn_stage_run_config(run)->with;
    char what[320];

    char mirror[64] = "";

    if (t->mirror > 0) {
        snprintf(mirror, sizeof(mirror), ", %g%% mirrored to the canary", t->mirror);
    }
    snprintf(what, sizeof(what), "routing traffic: primary %g%%, canary %g%%, baseline %g%%%s%s",
             t->percent[KN_VARIANT_PRIMARY], t->percent[KN_VARIANT_CANARY],
             t->percent[KN_VARIANT_BASELINE],
             t->match.count ? ", matching requests to the canary" : "", mirror);
    kn_stage_op_run(run, kn_stage_run_state(run), set_weights, NULL, what);
}

static void traffic_cancel(struct kn_stage_run *run)
{
    kn_stage_op_cancel(kn_stage_run_state(run));
}

static void traffic_describe(const struct kn_stage_config *stage, json_t *out)
{
    const struct kn_traffic_options *t = stage->with;

    if (t->valid) {
        json_object_set_new(out, "weights",
                            json_pack("{s:f, s:f, s:f}", "primary",
                                      t->percent[KN_VARIANT_PRIMARY], "canary",
                                      t->percent[KN_VARIANT_CANARY], "baseline",
                                      t->percent[KN_VARIANT_BASELINE]));
    }
    if (t->match.count) {
        const struct kn_traffic_match *items = t->match.items;
        json_t *list = json_array();
        for (size_t i = 0; i < t->match.count; i++) {
            const struct kn_traffic_matcher *x =
                (items[i].set & 1u) ? &items[i].header : &items[i].cookie;
            json_t *o = json_pack("{s:s, s:s?}", (items[i].set & 1u) ? "header" : "cookie",
                                  x->name ? x->name : "", "exact", x->exact);
            if (x->regex) {
                json_object_set_new(o, "regex", json_string(x->regex));
            }
            json_array_append_new(list, o);
        }
        json_object_set_new(out, "match", list);
    }
    if (t->mirror > 0) {
        json_object_set_new(out, "mirror", json_real(t->mirror));
    }
}

const struct kn_stage_kind kn_stage_traffic_routing = {
    .name = "TRAFFIC_ROUTING",
    .with = &traffic_schema,
    .caps = KN_PLATFORM_TRAFFIC_SPLIT,
    .default_timeout_ms = 2 * 60 * 1000,
    .help = "set the percent of traffic each variant takes",
    .simulate = traffic_simulate,
    .start = traffic_start,
    .cancel = traffic_cancel,
    .describe = traffic_describe,
};
