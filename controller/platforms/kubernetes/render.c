/*
 * What the kubernetes platform sends and how it reads what it gets back: pure functions of
 * jansson JSON (see render.h for the contract of each).
 */
#include "platforms/kubernetes/render.h"

#include <ctype.h>
#include <math.h>
#include <stdint.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kanaria/alloc.h"

#define KN_KUBE_VALUE_MAX 120 /* bytes of a value quoted in a drift message */

/* ---- names and labels --------------------------------------------------------------------- */

static int is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

void kn_kube_label_value(const char *s, char out[64])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    size_t n = s ? strlen(s) : 0;
    int ok = n > 0 && n <= 63 && is_alnum(s[0]) && is_alnum(s[n - 1]);

    for (size_t i = 0; ok && i < n; i++) {
        ok = is_alnum(s[i]) || s[i] == '-' || s[i] == '_' || s[i] == '.';
    }
    if (ok) {
        memcpy(out, s, n + 1);
        return;
    }
    if (!EVP_Digest(s ? s : "", n, md, &mdlen, EVP_sha256(), NULL) || mdlen < 8) {
        memset(md, 0, sizeof(md)); /* libcrypto failed: a fixed value beats none */
    }
    out[0] = 'h';
    out[1] = '-';
    for (unsigned i = 0; i < 8; i++) {
        out[2 + 2 * i] = hex[md[i] >> 4];
        out[3 + 2 * i] = hex[md[i] & 0xf];
    }
    out[18] = '\0';
}

char *kn_kube_owner_selector(const struct kn_kube_owner *o)
{
    char app[64], repo[64];

    kn_kube_label_value(o->app, app);
    kn_kube_label_value(o->repository, repo);
    return kn_asprintf("%s=%s,%s=%s", KN_KUBE_LABEL_APP, app, KN_KUBE_LABEL_REPOSITORY, repo);
}

const char *kn_kube_variant_name(enum kn_variant v)
{
    switch (v) {
    case KN_VARIANT_CANARY:
        return "canary";
    case KN_VARIANT_BASELINE:
        return "baseline";
    default:
        return "primary";
    }
}

char *kn_kube_variant_object_name(const char *name, enum kn_variant v)
{
    if (v == KN_VARIANT_PRIMARY) {
        return kn_strdup(name);
    }
    return kn_asprintf("%s-%s", name, kn_kube_variant_name(v));
}

/* The object member `key` of obj, added empty when absent or not an object. Borrowed. */
static json_t *object_member(json_t *obj, const char *key)
{
    json_t *m = json_object_get(obj, key);

    if (!json_is_object(m)) {
        m = json_object();
        json_object_set_new(obj, key, m);
    }
    return m;
}

static void set_string(json_t *obj, const char *key, const char *value)
{
    json_object_set_new(obj, key, json_string(value));
}

/* ---- rendering ---------------------------------------------------------------------------- */

json_t *kn_kube_render(const json_t *manifest, const struct kn_kube_owner *o, const char *ns,
                       int namespaced)
{
    static const char *const server_fields[] = {
        "managedFields", "resourceVersion", "uid", "creationTimestamp",
        "generation",    "selfLink",        NULL,
    };
    json_t *obj = json_deep_copy(manifest);
    json_t *meta, *labels;
    const char *have_ns;
    char value[64];

    if (!json_is_object(obj)) {
        json_decref(obj);
        obj = json_object();
    }
    json_object_del(obj, "status");
    meta = object_member(obj, "metadata");
    for (size_t i = 0; server_fields[i]; i++) {
        json_object_del(meta, server_fields[i]);
    }
    labels = object_member(meta, "labels");
    kn_kube_label_value(o->app, value);
    set_string(labels, KN_KUBE_LABEL_APP, value);
    kn_kube_label_value(o->repository, value);
    set_string(labels, KN_KUBE_LABEL_REPOSITORY, value);
    if (o->commit) {
        set_string(object_member(meta, "annotations"), KN_KUBE_ANNOTATION_COMMIT, o->commit);
    }
    have_ns = json_string_value(json_object_get(meta, "namespace"));
    if (namespaced && ns && (!have_ns || !*have_ns)) {
        set_string(meta, "namespace", ns);
    }
    return obj;
}

int kn_kube_apply_rank(const char *api_version, const char *kind)
{
    static const char *const access[] = {
        "ServiceAccount", "Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding", NULL,
    };
    static const char *const workloads[] = {
        "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod", NULL,
    };
    static const char *const routes[] = {"HTTPRoute", "VirtualService", NULL};

    (void)api_version; /* kinds are unique enough among what an app lists */
    if (!kind) {
        return 3;
    }
    if (strcmp(kind, "Namespace") == 0) {
        return 0;
    }
    if (strcmp(kind, "CustomResourceDefinition") == 0) {
        return 1;
    }
    for (size_t i = 0; access[i]; i++) {
        if (strcmp(kind, access[i]) == 0) {
            return 2;
        }
    }
    if (strcmp(kind, "Service") == 0) {
        return 4;
    }
    for (size_t i = 0; workloads[i]; i++) {
        if (strcmp(kind, workloads[i]) == 0) {
            return 5;
        }
    }
    for (size_t i = 0; routes[i]; i++) {
        if (strcmp(kind, routes[i]) == 0) {
            return 6;
        }
    }
    return 3; /* ConfigMaps, Secrets and the rest */
}

long long kn_kube_replicas(const struct kn_scale *s, long long primary)
{
    double n;

    if (!s) {
        return 1;
    }
    if (s->percent) {
        n = primary > 0 ? ceil((double)primary * s->value / 100.0 - 1e-9) : 1;
    } else {
        n = floor(s->value);
    }
    if (!(n >= 1)) {
        return 1;
    }
    return n > 1e9 ? 1000000000LL : (long long)n;
}

static void add_variant_label(json_t *obj, const char *key, enum kn_variant v)
{
    set_string(object_member(obj, key), KN_KUBE_LABEL_VARIANT, kn_kube_variant_name(v));
}

static void rename_variant(json_t *obj, enum kn_variant v)
{
    json_t *meta = object_member(obj, "metadata");
    const char *name = json_string_value(json_object_get(meta, "name"));
    char *vname;

    if (v == KN_VARIANT_PRIMARY || !name) {
        return;
    }
    vname = kn_kube_variant_object_name(name, v);
    set_string(meta, "name", vname);
    free(vname);
}

json_t *kn_kube_variant_workload(const json_t *workload, enum kn_variant v, long long replicas)
{
    json_t *obj = json_deep_copy(workload);
    json_t *spec, *tmeta;

    if (!json_is_object(obj)) {
        json_decref(obj);
        obj = json_object();
    }
    rename_variant(obj, v);
    add_variant_label(object_member(obj, "metadata"), "labels", v);
    spec = object_member(obj, "spec");
    if (v != KN_VARIANT_PRIMARY) {
        /* the primary's selector is immutable and stays as in Git */
        add_variant_label(object_member(spec, "selector"), "matchLabels", v);
    }
    tmeta = object_member(object_member(spec, "template"), "metadata");
    add_variant_label(tmeta, "labels", v);
    if (replicas >= 0) {
        json_object_set_new(spec, "replicas", json_integer(replicas));
    }
    return obj;
}

json_t *kn_kube_variant_service(const json_t *service, enum kn_variant v, int exclusive)
{
    static const char *const cleared[] = {
        "clusterIP",
        "clusterIPs",
        "externalIPs",
        "loadBalancerIP",
        "loadBalancerSourceRanges",
        "externalTrafficPolicy",
        "healthCheckNodePort",
        "loadBalancerClass",
        "allocateLoadBalancerNodePorts",
        "externalName",
        NULL,
    };
    json_t *obj = json_deep_copy(service);
    json_t *spec, *port;
    size_t i;

    if (!json_is_object(obj)) {
        json_decref(obj);
        obj = json_object();
    }
    if (v == KN_VARIANT_PRIMARY && !exclusive) {
        return obj;
    }
    rename_variant(obj, v);
    add_variant_label(object_member(obj, "metadata"), "labels", v);
    spec = object_member(obj, "spec");
    add_variant_label(spec, "selector", v);
    if (v == KN_VARIANT_PRIMARY) {
        return obj;
    }
    /* the twin is internal: a ClusterIP of its own, no node port, no load balancer */
    set_string(spec, "type", "ClusterIP");
    for (i = 0; cleared[i]; i++) {
        json_object_del(spec, cleared[i]);
    }
    json_array_foreach(json_object_get(spec, "ports"), i, port)
    {
        json_object_del(port, "nodePort");
    }
    return obj;
}

/* ---- routes ------------------------------------------------------------------------------- */

enum route_kind { ROUTE_NONE = 0, ROUTE_HTTP, ROUTE_ISTIO };

static enum route_kind route_kind_of(const json_t *route)
{
    const char *kind = json_string_value(json_object_get(route, "kind"));

    if (kind && strcmp(kind, "HTTPRoute") == 0) {
        return ROUTE_HTTP;
    }
    if (kind && strcmp(kind, "VirtualService") == 0) {
        return ROUTE_ISTIO;
    }
    return ROUTE_NONE;
}

static const char *route_namespace(const json_t *route)
{
    return json_string_value(json_object_get(json_object_get(route, "metadata"), "namespace"));
}

/* Which variant's Service `name` is (-1: none of them). */
static int variant_of_service(const char *name, const char *service)
{
    size_t n = strlen(service);

    if (!name || strncmp(name, service, n) != 0) {
        return -1;
    }
    if (name[n] == '\0') {
        return KN_VARIANT_PRIMARY;
    }
    if (strcmp(name + n, "-canary") == 0) {
        return KN_VARIANT_CANARY;
    }
    if (strcmp(name + n, "-baseline") == 0) {
        return KN_VARIANT_BASELINE;
    }
    return -1;
}

/* An HTTPRoute backendRef's variant of `service` (a core Service in the route's namespace). */
static int backend_variant(const json_t *ref, const char *service, const char *ns)
{
    const char *group = json_string_value(json_object_get(ref, "group"));
    const char *kind = json_string_value(json_object_get(ref, "kind"));
    const char *rns = json_string_value(json_object_get(ref, "namespace"));

    if ((group && *group) || (kind && strcmp(kind, "Service") != 0)) {
        return -1;
    }
    if (rns && ns && strcmp(rns, ns) != 0) {
        return -1;
    }
    return variant_of_service(json_string_value(json_object_get(ref, "name")), service);
}

/* A VirtualService destination host's variant of `service`: the short name, or the name with
 * the route's namespace (".ns", ".ns.svc", ".ns.svc.cluster.local"). *suffix gets the part after
 * the name ("" for the short name). */
static int host_variant(const char *host, const char *service, const char *ns, const char **suffix)
{
    const char *dot;
    char *name;
    int v;

    if (!host) {
        return -1;
    }
    dot = strchr(host, '.');
    *suffix = dot ? dot : "";
    if (dot && ns) {
        size_t n = strlen(ns);
        const char *rest = dot + 1 + n;
        if (strncmp(dot + 1, ns, n) != 0 ||
            (*rest && strcmp(rest, ".svc") != 0 && strcmp(rest, ".svc.cluster.local") != 0)) {
            return -1;
        }
    }
    name = dot ? kn_strndup(host, (size_t)(dot - host)) : kn_strdup(host);
    v = variant_of_service(name, service);
    free(name);
    return v;
}

/* The rule list of a route: HTTPRoute spec.rules[], VirtualService spec.http[]. */
static json_t *route_rules(const json_t *route, enum route_kind k)
{
    return json_object_get(json_object_get(route, "spec"), k == ROUTE_HTTP ? "rules" : "http");
}

/* The variant of one backend entry of a rule (backendRefs[] or route[]); -1: none. */
static int entry_variant(const json_t *entry, enum route_kind k, const char *service,
                         const char *ns)
{
    const char *suffix;

    if (k == ROUTE_HTTP) {
        return backend_variant(entry, service, ns);
    }
    return host_variant(
        json_string_value(json_object_get(json_object_get(entry, "destination"), "host")), service,
        ns, &suffix);
}

static json_t *rule_entries(const json_t *rule, enum route_kind k)
{
    return json_object_get(rule, k == ROUTE_HTTP ? "backendRefs" : "route");
}

/* Integer weights for percents: percent × scale for the smallest of 1, 10, 100, 1000 that
 * makes them all whole (HTTPRoute weights need not add up to 100). */
static void http_weights(const double percent[KN_VARIANT_COUNT], long long w[KN_VARIANT_COUNT])
{
    static const double scales[] = {1, 10, 100, 1000};
    double scale = 1000;

    for (size_t s = 0; s < sizeof(scales) / sizeof(scales[0]); s++) {
        int whole = 1;
        for (int v = 0; v < KN_VARIANT_COUNT; v++) {
            double x = percent[v] * scales[s];
            whole = whole && fabs(x - floor(x + 0.5)) < 1e-6;
        }
        if (whole) {
            scale = scales[s];
            break;
        }
    }
    for (int v = 0; v < KN_VARIANT_COUNT; v++) {
        w[v] = percent[v] > 0 ? llround(percent[v] * scale) : 0;
    }
}

/* Whole percents adding up to 100 (largest remainder), for Istio's 0-100 weights. */
static void istio_weights(const double percent[KN_VARIANT_COUNT], long long w[KN_VARIANT_COUNT])
{
    double sum = 0, frac[KN_VARIANT_COUNT];
    long long total = 0;

    for (int v = 0; v < KN_VARIANT_COUNT; v++) {
        sum += percent[v] > 0 ? percent[v] : 0;
    }
    for (int v = 0; v < KN_VARIANT_COUNT; v++) {
        double x = sum > 0 && percent[v] > 0 ? percent[v] * 100.0 / sum : 0;
        w[v] = (long long)floor(x + 1e-9);
        frac[v] = x - (double)w[v];
        total += w[v];
    }
    if (sum <= 0) {
        w[KN_VARIANT_PRIMARY] = 100; /* nothing asked: all to the primary */
        return;
    }
    while (total < 100) {
        int best = 0;
        for (int v = 1; v < KN_VARIANT_COUNT; v++) {
            if (frac[v] > frac[best]) {
                best = v;
            }
        }
        w[best]++;
        frac[best] = -1;
        total++;
    }
}

/* The entry of variant v made from the primary's entry `tmpl`. */
static json_t *variant_entry(const json_t *tmpl, enum route_kind k, const char *service,
                             const char *ns, enum kn_variant v, long long weight)
{
    json_t *e = json_deep_copy(tmpl);
    char *name = kn_kube_variant_object_name(service, v);

    if (k == ROUTE_HTTP) {
        set_string(e, "name", name);
    } else {
        json_t *dest = object_member(e, "destination");
        const char *suffix = "";
        char *host;
        host_variant(json_string_value(json_object_get(dest, "host")), service, ns, &suffix);
        host = kn_asprintf("%s%s", name, suffix);
        set_string(dest, "host", host);
        free(host);
        if (v != KN_VARIANT_PRIMARY) {
            json_object_del(dest, "subset"); /* the twin's host has no DestinationRule */
        }
    }
    json_object_set_new(e, "weight", json_integer(weight));
    free(name);
    return e;
}

json_t *kn_kube_route_with_weights(const json_t *route, const char *service,
                                   const double percent[KN_VARIANT_COUNT], char *why, size_t size)
{
    enum route_kind k = route_kind_of(route);
    const char *ns = route_namespace(route);
    json_t *out = NULL, *rules, *rule, *entries, *e;
    long long w[KN_VARIANT_COUNT];
    size_t i, j;
    int named = 0;

    if (k == ROUTE_NONE) {
        snprintf(why, size, "a %s is not a route kanaria splits (HTTPRoute, VirtualService)",
                 json_string_value(json_object_get(route, "kind"))
                     ? json_string_value(json_object_get(route, "kind"))
                     : "manifest without kind");
        goto out;
    }
    if (k == ROUTE_HTTP) {
        http_weights(percent, w);
    } else {
        istio_weights(percent, w);
    }
    out = json_deep_copy(route);
    rules = route_rules(out, k);
    json_array_foreach(rules, i, rule)
    {
        const json_t *tmpl = NULL, *any = NULL;
        json_t *fresh;
        entries = rule_entries(rule, k);
        json_array_foreach(entries, j, e)
        {
            int v = entry_variant(e, k, service, ns);
            if (v == KN_VARIANT_PRIMARY && !tmpl) {
                tmpl = e;
            } else if (v >= 0 && !any) {
                any = e;
            }
        }
        if (!tmpl && !any) {
            continue; /* another Service's rule: as it is */
        }
        named = 1;
        fresh = json_array();
        for (int v = 0; v < KN_VARIANT_COUNT; v++) {
            if (v == KN_VARIANT_PRIMARY || w[v] > 0) {
                json_array_append_new(fresh, variant_entry(tmpl ? tmpl : any, k, service, ns,
                                                           (enum kn_variant)v, w[v]));
            }
        }
        json_object_set_new(rule, k == ROUTE_HTTP ? "backendRefs" : "route", fresh);
    }
    if (!named) {
        snprintf(
            why, size, "no %s of %s '%s' sends traffic to Service '%s'",
            k == ROUTE_HTTP ? "rule" : "http route",
            k == ROUTE_HTTP ? "HTTPRoute" : "VirtualService",
            json_string_value(json_object_get(json_object_get(route, "metadata"), "name"))
                ? json_string_value(json_object_get(json_object_get(route, "metadata"), "name"))
                : "",
            service);
        json_decref(out);
        out = NULL;
    }
out:
    return out;
}

/* s with the characters a regular expression reads specially escaped (caller frees). */
static char *regex_escape(const char *s)
{
    char *out = kn_calloc(2 * strlen(s) + 1, 1), *o = out;

    for (; *s; s++) {
        if (strchr(".[]{}()\\*+?^$|", *s)) {
            *o++ = '\\';
        }
        *o++ = *s;
    }
    return out;
}

/* A regex without its leading ^ and trailing $ (the whole value is matched anyway). */
static char *regex_bare(const char *s)
{
    size_t n = strlen(s);

    if (*s == '^') {
        s++;
        n--;
    }
    if (n > 0 && s[n - 1] == '$' && (n < 2 || s[n - 2] != '\\')) {
        n--;
    }
    return kn_strndup(s, n);
}

/* The HTTPHeaderMatch of a route match: a header Exact or RegularExpression (the whole value), a
 * cookie as a RegularExpression on the Cookie header. New reference. */
static json_t *header_match(const struct kn_route_match *m)
{
    char *value, *bare = m->regex ? regex_bare(m->value) : NULL;
    json_t *out;

    if (m->field == KN_ROUTE_COOKIE) {
        char *name = regex_escape(m->name);
        char *v = m->regex ? kn_asprintf("(%s)", bare) : regex_escape(m->value);
        value = kn_asprintf("(^|;\\s*)%s=%s(;|$)", name, v);
        free(name);
        free(v);
        out = json_pack("{s:s, s:s, s:s}", "type", "RegularExpression", "name", "Cookie", "value",
                        value);
    } else if (m->regex) {
        value = kn_asprintf("^(%s)$", bare);
        out = json_pack("{s:s, s:s, s:s}", "type", "RegularExpression", "name", m->name, "value",
                        value);
    } else {
        value = NULL;
        out = json_pack("{s:s, s:s, s:s}", "type", "Exact", "name", m->name, "value", m->value);
    }
    free(value);
    free(bare);
    return out;
}

/* An Istio StringMatch of a route match: a header exact or regex (RE2, the whole value), a
 * cookie as a regex on the cookie header. Into headers (an object) of an HTTPMatchRequest. */
static void istio_header_match(json_t *headers, const struct kn_route_match *m)
{
    char *bare = m->regex ? regex_bare(m->value) : NULL;

    if (m->field == KN_ROUTE_COOKIE) {
        char *name = regex_escape(m->name);
        char *v = m->regex ? kn_asprintf("(%s)", bare) : regex_escape(m->value);
        char *re = kn_asprintf("^(.*;\\s*)?%s=%s(;.*)?$", name, v);
        json_object_set_new(headers, "cookie", json_pack("{s:s}", "regex", re));
        free(re);
        free(name);
        free(v);
    } else {
        /* Istio takes header names in lower case only (HTTP's are case-blind) */
        char *name = kn_strdup(m->name);
        for (char *c = name; *c; c++) {
            *c = (char)tolower((unsigned char)*c);
        }
        json_object_set_new(headers, name,
                            m->regex ? json_pack("{s:s}", "regex", bare)
                                     : json_pack("{s:s}", "exact", m->value));
        free(name);
    }
    free(bare);
}

#define HTTP_MAX_MATCHES  8  /* HTTPRouteRule.matches maxItems (gateway-api v1) */
#define ISTIO_MAX_MATCHES 16 /* kanaria's own bound on one VirtualService http route's matches */

/* The rule (HTTPRoute) or http route (VirtualService) sending the requests of `rule` that match
 * a route to the canary only: its own matches each with one route entry's header added, and the
 * canary's entry alone. NULL with why when the matches would be too many. */
static json_t *canary_rule(const json_t *rule, enum route_kind k, const json_t *tmpl,
                           const char *service, const char *ns, const struct kn_routes *routes,
                           char *why, size_t size)
{
    const char *key = k == ROUTE_HTTP ? "matches" : "match";
    const int max = k == ROUTE_HTTP ? HTTP_MAX_MATCHES : ISTIO_MAX_MATCHES;
    const json_t *own = json_object_get(rule, key), *m;
    const char *name = json_string_value(json_object_get(rule, "name"));
    json_t *out, *matches, *entries;
    size_t n = json_array_size(own) ? json_array_size(own) : 1, i;

    if (n * routes->nmatches > (size_t)max) {
        snprintf(why, size,
                 "%zu route matches times the %s's %zu matches make more than the %d matches "
                 "it may have",
                 routes->nmatches, k == ROUTE_HTTP ? "rule" : "http route", n, max);
        return NULL;
    }
    out = json_deep_copy(rule);
    matches = json_array();
    entries = json_array();
    for (i = 0; i < n; i++) {
        m = json_array_get(own, i);
        for (size_t r = 0; r < routes->nmatches; r++) {
            json_t *mm = m ? json_deep_copy(m) : json_object();
            json_t *headers = json_object_get(mm, "headers");
            if (k == ROUTE_HTTP) {
                if (!json_is_array(headers)) {
                    headers = json_array();
                    json_object_set_new(mm, "headers", headers);
                }
                json_array_append_new(headers, header_match(&routes->matches[r]));
            } else {
                if (!json_is_object(headers)) {
                    headers = json_object();
                    json_object_set_new(mm, "headers", headers);
                }
                istio_header_match(headers, &routes->matches[r]);
            }
            json_array_append_new(matches, mm);
        }
    }
    json_object_set_new(out, key, matches);
    json_array_append_new(entries, variant_entry(tmpl, k, service, ns, KN_VARIANT_CANARY,
                                                 k == ROUTE_HTTP ? 1 : 100));
    json_object_set_new(out, k == ROUTE_HTTP ? "backendRefs" : "route", entries);
    if (k == ROUTE_ISTIO) {
        json_object_del(out, "mirror");
        json_object_del(out, "mirrorPercentage");
        if (name) {
            char *own_name = kn_asprintf("%s-kanaria-canary", name); /* names are unique */
            json_object_set_new(out, "name", json_string(own_name));
            free(own_name);
        }
    }
    return out;
}

/* The VirtualService with the routes: before each http route that sends to the primary, one for
 * the matches to the canary; on it, a mirror to the canary of `mirror` percent. */
static json_t *istio_with_routes(json_t *out, const char *service, const struct kn_routes *routes,
                                 char *why, size_t size)
{
    const char *ns = route_namespace(out);
    json_t *fresh = json_array(), *rule;
    size_t i;

    json_array_foreach(route_rules(out, ROUTE_ISTIO), i, rule)
    {
        const json_t *tmpl = NULL, *e;
        size_t j;
        json_array_foreach(rule_entries(rule, ROUTE_ISTIO), j, e)
        {
            if (!tmpl && entry_variant(e, ROUTE_ISTIO, service, ns) == KN_VARIANT_PRIMARY) {
                tmpl = e;
            }
        }
        if (tmpl && routes->nmatches) {
            json_t *c = canary_rule(rule, ROUTE_ISTIO, tmpl, service, ns, routes, why, size);
            if (!c) {
                json_decref(fresh);
                json_decref(out);
                return NULL;
            }
            json_array_append_new(fresh, c);
        }
        if (tmpl && routes->mirror > 0) {
            json_t *canary = variant_entry(tmpl, ROUTE_ISTIO, service, ns, KN_VARIANT_CANARY, 0);
            json_object_set(rule, "mirror", json_object_get(canary, "destination"));
            json_object_set_new(rule, "mirrorPercentage",
                                json_pack("{s:f}", "value", routes->mirror));
            json_decref(canary);
        }
        json_array_append(fresh, rule);
    }
    json_object_set_new(json_object_get(out, "spec"), "http", fresh);
    return out;
}

json_t *kn_kube_route_with_routes(const json_t *route, const char *service,
                                  const double percent[KN_VARIANT_COUNT],
                                  const struct kn_routes *routes, char *why, size_t size)
{
    json_t *out = kn_kube_route_with_weights(route, service, percent, why, size);
    json_t *rules, *fresh = NULL, *rule;
    const char *ns = route_namespace(route);
    size_t i;

    if (!out || !routes || (!routes->nmatches && routes->mirror <= 0)) {
        return out;
    }
    if (route_kind_of(route) == ROUTE_ISTIO) {
        return istio_with_routes(out, service, routes, why, size);
    }
    if (route_kind_of(route) != ROUTE_HTTP) {
        snprintf(why, size, "header routing and mirroring need an HTTPRoute or a VirtualService");
        goto fail;
    }
    if (routes->mirror > 0) {
        snprintf(why, size, "an HTTPRoute mirrors all the requests or none: mirror %g%% refused",
                 routes->mirror);
        if (routes->mirror < 100) {
            goto fail;
        }
    }
    rules = route_rules(out, ROUTE_HTTP);
    fresh = json_array();
    json_array_foreach(rules, i, rule)
    {
        const json_t *tmpl = NULL, *e;
        size_t j;
        json_array_foreach(rule_entries(rule, ROUTE_HTTP), j, e)
        {
            if (!tmpl && entry_variant(e, ROUTE_HTTP, service, ns) == KN_VARIANT_PRIMARY) {
                tmpl = e;
            }
        }
        if (tmpl && routes->nmatches) {
            json_t *c = canary_rule(rule, ROUTE_HTTP, tmpl, service, ns, routes, why, size);
            if (!c) {
                goto fail;
            }
            json_array_append_new(fresh, c);
        }
        if (tmpl && routes->mirror >= 100) {
            json_t *filters = json_object_get(rule, "filters");
            json_t *mirror = json_pack("{s:s, s:{s:o}}", "type", "RequestMirror", "requestMirror",
                                       "backendRef", json_deep_copy(tmpl));
            json_t *ref = json_object_get(json_object_get(mirror, "requestMirror"), "backendRef");
            char *name = kn_kube_variant_object_name(service, KN_VARIANT_CANARY);
            json_object_set_new(ref, "name", json_string(name));
            json_object_del(ref, "weight");
            json_object_del(ref, "filters");
            free(name);
            if (!json_is_array(filters)) {
                filters = json_array();
                json_object_set_new(rule, "filters", filters);
            }
            json_array_append_new(filters, mirror);
        }
        json_array_append(fresh, rule);
    }
    json_object_set_new(json_object_get(out, "spec"), "rules", fresh);
    return out;
fail:
    json_decref(fresh);
    json_decref(out);
    return NULL;
}

static void format_split(const double p[KN_VARIANT_COUNT], char *buf, size_t size)
{
    if (p[KN_VARIANT_BASELINE] > 0) {
        snprintf(buf, size, "%g/%g/%g", p[0], p[1], p[2]);
    } else {
        snprintf(buf, size, "%g/%g", p[0], p[1]);
    }
}

int kn_kube_route_weights(const json_t *route, const char *service,
                          double percent[KN_VARIANT_COUNT], char *why, size_t size)
{
    enum route_kind k = route_kind_of(route);
    const char *ns = route_namespace(route);
    const json_t *rule, *e;
    double first[KN_VARIANT_COUNT] = {0};
    size_t i, j, first_rule = 0;
    int found = 0, rc = 0;

    json_array_foreach(route_rules(route, k), i, rule)
    {
        double w[KN_VARIANT_COUNT] = {0}, sum = 0, p[KN_VARIANT_COUNT];
        const json_t *entries = rule_entries(rule, k);
        int named = 0, has_primary = 0;
        json_array_foreach(entries, j, e)
        {
            int v = entry_variant(e, k, service, ns);
            const json_t *weight = json_object_get(e, "weight");
            double x;
            if (json_is_number(weight)) {
                x = json_number_value(weight);
            } else if (k == ROUTE_HTTP) {
                x = 1; /* the API's default */
            } else {
                x = json_array_size(entries) == 1 ? 100 : 0; /* one destination takes all */
            }
            sum += x;
            if (v >= 0) {
                w[v] += x;
                named = 1;
                has_primary = has_primary || v == KN_VARIANT_PRIMARY;
            }
        }
        if (!named || !has_primary) {
            /* a rule without the primary: header routing's, sending matches to the canary */
            continue;
        }
        for (int v = 0; v < KN_VARIANT_COUNT; v++) {
            p[v] = sum > 0 ? w[v] * 100.0 / sum : 0;
        }
        if (!found) {
            memcpy(first, p, sizeof(first));
            first_rule = i;
            found = 1;
            continue;
        }
        for (int v = 0; v < KN_VARIANT_COUNT; v++) {
            if (fabs(p[v] - first[v]) > 0.01) {
                char a[64], b[64];
                format_split(p, a, sizeof(a));
                format_split(first, b, sizeof(b));
                snprintf(why, size, "rule %zu sends %s, rule %zu %s", i + 1, a, first_rule + 1, b);
                rc = -1;
                goto out;
            }
        }
    }
    if (!found) {
        snprintf(why, size, "no rule of the %s sends traffic to Service '%s' or its variants",
                 k == ROUTE_ISTIO ? "VirtualService" : "HTTPRoute", service);
        rc = -1;
        goto out;
    }
    memcpy(percent, first, sizeof(first));
out:
    return rc;
}

/* ---- health ------------------------------------------------------------------------------- */

static long long int_member(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);

    return json_is_integer(v) ? (long long)json_integer_value(v) : 0;
}

static const json_t *condition(const json_t *status, const char *type)
{
    const json_t *c;
    size_t i;

    json_array_foreach(json_object_get(status, "conditions"), i, c)
    {
        const char *t = json_string_value(json_object_get(c, "type"));
        if (t && strcmp(t, type) == 0) {
            return c;
        }
    }
    return NULL;
}

static const char *str_member(const json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));

    return s ? s : "";
}

enum kn_kube_health kn_kube_deployment_health(const json_t *deploy, char *why, size_t size)
{
    const json_t *meta = json_object_get(deploy, "metadata");
    const json_t *spec = json_object_get(deploy, "spec");
    const json_t *status = json_object_get(deploy, "status");
    const char *name = str_member(meta, "name");
    const json_t *c;
    long long updated = int_member(status, "updatedReplicas");
    long long replicas = int_member(status, "replicas");
    long long available = int_member(status, "availableReplicas");

    if (int_member(meta, "generation") > int_member(status, "observedGeneration")) {
        snprintf(why, size, "Waiting for deployment spec update to be observed...");
        return KN_KUBE_PROGRESSING;
    }
    c = condition(status, "Progressing");
    if (c && strcmp(str_member(c, "reason"), "ProgressDeadlineExceeded") == 0) {
        snprintf(why, size, "deployment \"%s\" exceeded its progress deadline", name);
        return KN_KUBE_FAILED;
    }
    c = condition(status, "ReplicaFailure");
    if (c && strcmp(str_member(c, "status"), "True") == 0) {
        snprintf(why, size, "deployment \"%s\" cannot create its pods: %s: %s", name,
                 str_member(c, "reason"), str_member(c, "message"));
        return KN_KUBE_FAILED;
    }
    /* kubectl skips this test when spec.replicas is absent (the server always defaults it) */
    if (json_is_integer(json_object_get(spec, "replicas")) &&
        updated < int_member(spec, "replicas")) {
        snprintf(why, size,
                 "Waiting for deployment \"%s\" rollout to finish: %lld out of %lld new replicas "
                 "have been updated...",
                 name, updated, int_member(spec, "replicas"));
        return KN_KUBE_PROGRESSING;
    }
    if (replicas > updated) {
        snprintf(why, size,
                 "Waiting for deployment \"%s\" rollout to finish: %lld old replicas are pending "
                 "termination...",
                 name, replicas - updated);
        return KN_KUBE_PROGRESSING;
    }
    if (available < updated) {
        snprintf(why, size,
                 "Waiting for deployment \"%s\" rollout to finish: %lld of %lld updated replicas "
                 "are available...",
                 name, available, updated);
        return KN_KUBE_PROGRESSING;
    }
    snprintf(why, size, "deployment \"%s\" successfully rolled out", name);
    return KN_KUBE_HEALTHY;
}

static int is_problem_reason(const char *r)
{
    static const char *const reasons[] = {
        "ErrImagePull",         "ImagePullBackOff",
        "CrashLoopBackOff",     "CreateContainerConfigError",
        "CreateContainerError", "InvalidImageName",
        "RunContainerError",    NULL,
    };

    for (size_t i = 0; r && reasons[i]; i++) {
        if (strcmp(r, reasons[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

/* One pod's reasons appended to b ("container web ImagePullBackOff: ..."); how many. */
static int pod_reasons(const json_t *pod, struct kn_buf *b)
{
    static const char *const lists[] = {"initContainerStatuses", "containerStatuses", NULL};
    const json_t *status = json_object_get(pod, "status");
    const json_t *cs, *c;
    int n = 0;
    size_t i;

    for (size_t l = 0; lists[l]; l++) {
        json_array_foreach(json_object_get(status, lists[l]), i, cs)
        {
            const json_t *waiting = json_object_get(json_object_get(cs, "state"), "waiting");
            const char *reason = json_string_value(json_object_get(waiting, "reason"));
            const char *msg = json_string_value(json_object_get(waiting, "message"));
            if (!is_problem_reason(reason)) {
                continue;
            }
            kn_buf_addf(b, "%scontainer %s %s%s%s", n ? ", " : "", str_member(cs, "name"), reason,
                        msg && *msg ? ": " : "", msg ? msg : "");
            n++;
        }
    }
    c = condition(status, "PodScheduled");
    if (c && strcmp(str_member(c, "status"), "False") == 0 &&
        strcmp(str_member(c, "reason"), "Unschedulable") == 0) {
        const char *msg = str_member(c, "message");
        kn_buf_addf(b, "%sUnschedulable%s%s", n ? ", " : "", *msg ? ": " : "", msg);
        n++;
    }
    return n;
}

int kn_kube_pod_problems(const json_t *pods, char *out, size_t size)
{
    const json_t *items = json_is_array(pods) ? pods : json_object_get(pods, "items");
    const json_t *pod;
    struct kn_buf b, one;
    int count = 0;
    size_t i;

    kn_buf_init(&b, KN_BUF_UNBOUNDED);
    kn_buf_init(&one, KN_BUF_UNBOUNDED);
    json_array_foreach(items, i, pod)
    {
        kn_buf_reset(&one);
        if (pod_reasons(pod, &one) == 0) {
            continue;
        }
        kn_buf_addf(&b, "%spod %s: %s", count ? "; " : "",
                    str_member(json_object_get(pod, "metadata"), "name"), one.data);
        count++;
    }
    if (size > 0) {
        size_t n = b.len < size - 1 ? b.len : size - 1;
        memcpy(out, b.data ? b.data : "", n);
        out[n] = '\0';
        if (n < b.len && size > 4) {
            memcpy(out + size - 4, "...", 4);
        }
    }
    kn_buf_release(&one);
    kn_buf_release(&b);
    return count;
}

/* ---- route status -------------------------------------------------------------------------- */

static void parent_label(const json_t *ref, char *buf, size_t size)
{
    const char *section = json_string_value(json_object_get(ref, "sectionName"));

    snprintf(buf, size, "%s%s%s", str_member(ref, "name"), section ? "/" : "",
             section ? section : "");
}

static int same_parent(const json_t *a, const json_t *b, const char *route_ns)
{
    static const char *const keys[] = {"group", "kind", "name", "sectionName", "port", NULL};
    const char *na = json_string_value(json_object_get(a, "namespace"));
    const char *nb = json_string_value(json_object_get(b, "namespace"));

    for (size_t i = 0; keys[i]; i++) {
        const json_t *x = json_object_get(a, keys[i]), *y = json_object_get(b, keys[i]);
        if (x && y && !json_equal(x, y)) {
            return 0;
        }
        if (strcmp(keys[i], "name") == 0 && (!x || !y)) {
            return 0;
        }
    }
    na = na ? na : route_ns;
    nb = nb ? nb : route_ns;
    return !na || !nb || strcmp(na, nb) == 0;
}

/* One parent's status: 1 ready, 0 not yet, -1 refused, with why. */
static int parent_ready(const json_t *parent, long long generation, char *why, size_t size)
{
    static const char *const types[] = {"Accepted", "ResolvedRefs", NULL};
    char label[256];

    parent_label(json_object_get(parent, "parentRef"), label, sizeof(label));
    for (size_t t = 0; types[t]; t++) {
        const json_t *c = condition(parent, types[t]);
        const char *st = str_member(c, "status");
        long long observed = int_member(c, "observedGeneration");
        if (!c) {
            snprintf(why, size, "parent %s: no %s condition yet", label, types[t]);
            return 0;
        }
        if (observed < generation) {
            snprintf(why, size, "parent %s: %s at generation %lld of %lld", label, types[t],
                     observed, generation);
            return 0;
        }
        if (strcmp(st, "True") == 0) {
            continue;
        }
        snprintf(why, size, "parent %s: %s %s, %s: %s", label, types[t], st,
                 str_member(c, "reason"), str_member(c, "message"));
        return strcmp(st, "False") == 0 ? -1 : 0;
    }
    return 1;
}

int kn_kube_route_ready(const json_t *route, char *why, size_t size)
{
    const json_t *meta = json_object_get(route, "metadata");
    const json_t *parents = json_object_get(json_object_get(route, "status"), "parents");
    const json_t *ref, *p;
    long long generation = int_member(meta, "generation");
    const char *ns = json_string_value(json_object_get(meta, "namespace"));
    char first[512] = "";
    int rc = 1;
    size_t i, j;

    if (route_kind_of(route) != ROUTE_HTTP) {
        return 1; /* a VirtualService reports no status */
    }
    json_array_foreach(json_object_get(json_object_get(route, "spec"), "parentRefs"), i, ref)
    {
        int seen = 0;
        json_array_foreach(parents, j, p)
        {
            seen = seen || same_parent(ref, json_object_get(p, "parentRef"), ns);
        }
        if (!seen && rc == 1) {
            char label[256];
            parent_label(ref, label, sizeof(label));
            snprintf(first, sizeof(first), "parent %s: no status yet", label);
            rc = 0;
        }
    }
    json_array_foreach(parents, j, p)
    {
        char one[512];
        int r = parent_ready(p, generation, one, sizeof(one));
        if (r < rc) {
            snprintf(first, sizeof(first), "%s", one);
            rc = r;
        }
    }
    if (rc != 1) {
        snprintf(why, size, "%s", first);
    }
    return rc;
}

/* ---- drift -------------------------------------------------------------------------------- */

struct drift {
    struct kn_buf first;
    int count;
    int skip_weights;
};

static int is_empty(const json_t *v)
{
    return !v || json_is_null(v) || (json_is_string(v) && json_string_length(v) == 0) ||
           (json_is_array(v) && json_array_size(v) == 0) ||
           (json_is_object(v) && json_object_size(v) == 0);
}

/* A number, or a string holding one, as a double (1 when it is one). */
static int as_number(const json_t *v, double *out)
{
    const char *s;
    char *end;

    if (json_is_number(v)) {
        *out = json_number_value(v);
        return 1;
    }
    s = json_string_value(v);
    if (!s || !*s) {
        return 0;
    }
    *out = strtod(s, &end);
    return *end == '\0';
}

static void value_text(const json_t *v, struct kn_buf *b)
{
    char *s = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS) : NULL;

    if (!s) {
        kn_buf_adds(b, "absent");
    } else if (strlen(s) > KN_KUBE_VALUE_MAX) {
        kn_buf_add(b, s, KN_KUBE_VALUE_MAX);
        kn_buf_adds(b, "...");
    } else {
        kn_buf_adds(b, s);
    }
    free(s);
}

static void differ(struct drift *d, const char *path, const json_t *live, const json_t *applied)
{
    if (d->count++ > 0) {
        return;
    }
    kn_buf_addf(&d->first, "%s: live ", path);
    value_text(live, &d->first);
    kn_buf_adds(&d->first, ", kanaria applied ");
    value_text(applied, &d->first);
}

static char *child_path(const char *path, const char *key)
{
    int plain = *key != '\0';

    for (const char *c = key; *c; c++) {
        plain = plain && (is_alnum(*c) || *c == '_' || *c == '-');
    }
    if (plain) {
        return *path ? kn_asprintf("%s.%s", path, key) : kn_strdup(key);
    }
    return kn_asprintf("%s[\"%s\"]", path, key);
}

/* Whether every element of a list is a map with a distinct string `name`. */
static int named_list(const json_t *list)
{
    const json_t *e, *f;
    size_t i, j;

    if (json_array_size(list) == 0) {
        return 0;
    }
    json_array_foreach(list, i, e)
    {
        const char *n = json_string_value(json_object_get(e, "name"));
        if (!n) {
            return 0;
        }
        for (j = 0; j < i; j++) {
            f = json_array_get(list, j);
            if (strcmp(n, json_string_value(json_object_get(f, "name"))) == 0) {
                return 0;
            }
        }
    }
    return 1;
}

static const json_t *find_named(const json_t *list, const char *name)
{
    const json_t *e;
    size_t i;

    json_array_foreach(list, i, e)
    {
        const char *n = json_string_value(json_object_get(e, "name"));
        if (n && strcmp(n, name) == 0) {
            return e;
        }
    }
    return NULL;
}

/* Where a value is, for compare: in a route rule's entries (whose weight may be skipped), or
 * a quantity of resources.requests / limits (the server writes 0.5 as "500m"). */
#define KN_DRIFT_BACKEND  0x1
#define KN_DRIFT_QUANTITY 0x2

static void compare(struct drift *d, const char *path, const char *key, const json_t *applied,
                    const json_t *live, int where);

static void compare_lists(struct drift *d, const char *path, const char *key, const json_t *applied,
                          const json_t *live)
{
    /* the entries of a route rule, whose weights may be left out */
    int backend = key && (strcmp(key, "backendRefs") == 0 || strcmp(key, "route") == 0);
    const json_t *e;
    size_t i;

    if (named_list(applied) && (json_array_size(live) == 0 || named_list(live))) {
        json_array_foreach(applied, i, e)
        {
            const char *n = json_string_value(json_object_get(e, "name"));
            char *p = kn_asprintf("%s[%s]", path, n);
            compare(d, p, NULL, e, find_named(live, n), backend);
            free(p);
        }
        json_array_foreach(live, i, e)
        {
            const char *n = json_string_value(json_object_get(e, "name"));
            if (!find_named(applied, n)) {
                char *p = kn_asprintf("%s[%s]", path, n);
                differ(d, p, e, NULL);
                free(p);
            }
        }
        return;
    }
    for (i = 0; i < json_array_size(applied) || i < json_array_size(live); i++) {
        char *p = kn_asprintf("%s[%zu]", path, i);
        if (i < json_array_size(applied)) {
            compare(d, p, NULL, json_array_get(applied, i), json_array_get(live, i), backend);
        } else {
            differ(d, p, json_array_get(live, i), NULL);
        }
        free(p);
    }
}

/* A resource quantity ("500m", "1Gi", "2", 0.5) as a number; 1 when it is one. */
static int as_quantity(const json_t *v, double *out)
{
    static const struct {
        const char *suffix;
        double factor;
    } units[] = {
        {"n", 1e-9},    {"u", 1e-6},    {"m", 1e-3},    {"", 1},
        {"k", 1e3},     {"M", 1e6},     {"G", 1e9},     {"T", 1e12},
        {"P", 1e15},    {"E", 1e18},    {"Ki", 1024},   {"Mi", 0x1p20},
        {"Gi", 0x1p30}, {"Ti", 0x1p40}, {"Pi", 0x1p50}, {"Ei", 0x1p60},
    };
    const char *s;
    char *end;
    double x;

    if (json_is_number(v)) {
        *out = json_number_value(v);
        return 1;
    }
    s = json_string_value(v);
    if (!s || !*s || strchr("+-.0123456789", *s) == NULL) {
        return 0;
    }
    x = strtod(s, &end);
    if (end == s) {
        return 0;
    }
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(end, units[i].suffix) == 0) {
            *out = x * units[i].factor;
            return 1;
        }
    }
    return 0;
}

static void compare(struct drift *d, const char *path, const char *key, const json_t *applied,
                    const json_t *live, int where)
{
    int quantities = key && (strcmp(key, "requests") == 0 || strcmp(key, "limits") == 0);
    double a, b;

    if (is_empty(applied) && is_empty(live)) {
        return;
    }
    if (json_is_object(applied) && (json_is_object(live) || is_empty(live))) {
        const char *k;
        const json_t *v;
        json_object_foreach((json_t *)(uintptr_t)applied, k, v)
        {
            char *p;
            if (d->skip_weights && (where & KN_DRIFT_BACKEND) && strcmp(k, "weight") == 0) {
                continue;
            }
            p = child_path(path, k);
            compare(d, p, k, v, json_object_get(live, k), quantities ? KN_DRIFT_QUANTITY : 0);
            free(p);
        }
        return;
    }
    if (json_is_array(applied) && (json_is_array(live) || is_empty(live))) {
        compare_lists(d, path, key, applied, live);
        return;
    }
    if ((where & KN_DRIFT_QUANTITY) && as_quantity(applied, &a) && as_quantity(live, &b)) {
        if (fabs(a - b) > 1e-9 * fmax(fabs(a), fabs(b))) {
            differ(d, path, live, applied);
        }
        return;
    }
    if (as_number(applied, &a) && as_number(live, &b) &&
        (json_is_number(applied) || json_is_number(live))) {
        if (a != b) {
            differ(d, path, live, applied);
        }
        return;
    }
    if (!live || !json_equal(applied, live)) {
        differ(d, path, live, applied);
    }
}

char *kn_kube_drift(const json_t *applied, const json_t *live, int skip_weights)
{
    struct drift d = {.skip_weights = skip_weights};
    char *out = NULL;

    kn_buf_init(&d.first, KN_BUF_UNBOUNDED);
    compare(&d, "", NULL, applied, live, 0);
    if (d.count > 1) {
        kn_buf_addf(&d.first, " (and %d more)", d.count - 1);
    }
    if (d.count > 0) {
        out = kn_buf_detach(&d.first, NULL);
    }
    kn_buf_release(&d.first);
    return out;
}
