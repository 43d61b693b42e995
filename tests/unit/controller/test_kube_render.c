/*
 * The kubernetes platform's pure builders and readers (controller/platforms/kubernetes/render.c):
 * labels, rendering, apply order, replicas, the variants' Deployments and Services, route
 * weights written and read back, route status, Deployment health in kubectl's words, the pods'
 * reasons and drift.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kanaria/alloc.h"
#include "platforms/kubernetes/render.h"
#include "testutil.h"

static json_t *J(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);

    if (!j) {
        fail_msg("bad JSON in the test: %s: %s", e.text, text);
    }
    return j;
}

/* The value at a dotted path ("spec.template.metadata.labels"); array index as a number key. */
static json_t *at(json_t *j, const char *path)
{
    char *copy = kn_strdup(path), *save = NULL;

    for (char *k = strtok_r(copy, ".", &save); k && j; k = strtok_r(NULL, ".", &save)) {
        if (json_is_array(j)) {
            j = json_array_get(j, strtoul(k, NULL, 10));
        } else {
            j = json_object_get(j, k);
        }
    }
    free(copy);
    return j;
}

static const char *S(json_t *j, const char *path)
{
    return json_string_value(at(j, path));
}

static long long I(json_t *j, const char *path)
{
    json_t *v = at(j, path);

    assert_true(json_is_integer(v));
    return (long long)json_integer_value(v);
}

static const struct kn_kube_owner owner = {.app = "web", .repository = "shop", .commit = "abc123"};

/* ---- labels and rendering ----------------------------------------------------------------- */

static void test_label_value(void **state)
{
    char out[64];
    char long63[64], long64[65];

    (void)state;
    kn_kube_label_value("shop", out);
    assert_string_equal(out, "shop");
    kn_kube_label_value("my_repo.v2-x", out);
    assert_string_equal(out, "my_repo.v2-x");
    memset(long63, 'a', 63);
    long63[63] = '\0';
    kn_kube_label_value(long63, out);
    assert_string_equal(out, long63);
    memset(long64, 'a', 64);
    long64[64] = '\0';
    kn_kube_label_value(long64, out);
    assert_int_equal(strlen(out), 18);
    assert_memory_equal(out, "h-", 2);
    /* SHA-256("acme/shop") starts with these 8 bytes: not a label value (the slash) */
    kn_kube_label_value("acme/shop", out);
    assert_int_equal(strlen(out), 18);
    assert_memory_equal(out, "h-", 2);
    {
        char again[64], other[64];
        kn_kube_label_value("acme/shop", again);
        kn_kube_label_value("acme/shoq", other);
        assert_string_equal(out, again);
        assert_string_not_equal(out, other);
    }
    kn_kube_label_value("-web", out);
    assert_memory_equal(out, "h-", 2);
    kn_kube_label_value("web-", out);
    assert_memory_equal(out, "h-", 2);
    kn_kube_label_value("", out);
    assert_memory_equal(out, "h-", 2);
    /* the known digest of "" (e3b0c442 98fc1c14...) */
    assert_string_equal(out, "h-e3b0c44298fc1c14");
}

static void test_owner_selector_and_names(void **state)
{
    struct kn_kube_owner o = {.app = "web", .repository = "git@host:acme/shop.git"};
    char *sel, *n;
    char repo[64];

    (void)state;
    sel = kn_kube_owner_selector(&owner);
    assert_string_equal(sel, "kanaria.dev/app=web,kanaria.dev/repository=shop");
    free(sel);
    sel = kn_kube_owner_selector(&o);
    kn_kube_label_value(o.repository, repo);
    assert_memory_equal(repo, "h-", 2);
    assert_non_null(strstr(sel, repo));
    free(sel);
    assert_string_equal(kn_kube_variant_name(KN_VARIANT_PRIMARY), "primary");
    assert_string_equal(kn_kube_variant_name(KN_VARIANT_CANARY), "canary");
    assert_string_equal(kn_kube_variant_name(KN_VARIANT_BASELINE), "baseline");
    n = kn_kube_variant_object_name("web", KN_VARIANT_CANARY);
    assert_string_equal(n, "web-canary");
    free(n);
    n = kn_kube_variant_object_name("web", KN_VARIANT_BASELINE);
    assert_string_equal(n, "web-baseline");
    free(n);
    n = kn_kube_variant_object_name("web", KN_VARIANT_PRIMARY);
    assert_string_equal(n, "web");
    free(n);
}

static void test_render(void **state)
{
    json_t *m = J("{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"cfg\","
                  "\"labels\":{\"team\":\"a\"},\"uid\":\"u\",\"resourceVersion\":\"7\","
                  "\"generation\":3,\"creationTimestamp\":\"2026-01-01T00:00:00Z\","
                  "\"managedFields\":[{}]},\"data\":{\"k\":\"v\"},\"status\":{\"x\":1}}");
    json_t *r, *keep;

    (void)state;
    r = kn_kube_render(m, &owner, "shop", 1);
    assert_string_equal(S(r, "metadata.namespace"), "shop");
    assert_string_equal(S(r, "metadata.labels.team"), "a");
    assert_string_equal(
        json_string_value(json_object_get(at(r, "metadata.labels"), KN_KUBE_LABEL_APP)), "web");
    assert_string_equal(
        json_string_value(json_object_get(at(r, "metadata.labels"), KN_KUBE_LABEL_REPOSITORY)),
        "shop");
    assert_string_equal(json_string_value(json_object_get(at(r, "metadata.annotations"),
                                                          KN_KUBE_ANNOTATION_COMMIT)),
                        "abc123");
    assert_null(at(r, "status"));
    assert_null(at(r, "metadata.uid"));
    assert_null(at(r, "metadata.resourceVersion"));
    assert_null(at(r, "metadata.generation"));
    assert_null(at(r, "metadata.creationTimestamp"));
    assert_null(at(r, "metadata.managedFields"));
    assert_string_equal(S(r, "data.k"), "v");
    /* the manifest itself is untouched */
    assert_non_null(at(m, "status"));
    assert_null(at(m, "metadata.namespace"));
    json_decref(r);
    /* cluster-scoped: no namespace; a namespace of the manifest's own is kept */
    r = kn_kube_render(m, &owner, "shop", 0);
    assert_null(at(r, "metadata.namespace"));
    json_decref(r);
    keep = J("{\"kind\":\"Secret\",\"metadata\":{\"name\":\"s\",\"namespace\":\"other\"}}");
    r = kn_kube_render(keep, &owner, "shop", 1);
    assert_string_equal(S(r, "metadata.namespace"), "other");
    json_decref(r);
    json_decref(keep);
    json_decref(m);
}

static void test_apply_rank(void **state)
{
    (void)state;
    assert_true(kn_kube_apply_rank("v1", "Namespace") <
                kn_kube_apply_rank("apiextensions.k8s.io/v1", "CustomResourceDefinition"));
    assert_true(kn_kube_apply_rank("apiextensions.k8s.io/v1", "CustomResourceDefinition") <
                kn_kube_apply_rank("v1", "ServiceAccount"));
    assert_int_equal(kn_kube_apply_rank("v1", "ServiceAccount"),
                     kn_kube_apply_rank("rbac.authorization.k8s.io/v1", "RoleBinding"));
    assert_true(kn_kube_apply_rank("rbac.authorization.k8s.io/v1", "ClusterRole") <
                kn_kube_apply_rank("v1", "ConfigMap"));
    assert_int_equal(kn_kube_apply_rank("v1", "ConfigMap"), kn_kube_apply_rank("v1", "Secret"));
    assert_int_equal(kn_kube_apply_rank("v1", "Secret"),
                     kn_kube_apply_rank("example.com/v1", "Widget"));
    assert_true(kn_kube_apply_rank("v1", "Secret") < kn_kube_apply_rank("v1", "Service"));
    assert_true(kn_kube_apply_rank("v1", "Service") < kn_kube_apply_rank("apps/v1", "Deployment"));
    assert_true(kn_kube_apply_rank("apps/v1", "Deployment") <
                kn_kube_apply_rank("gateway.networking.k8s.io/v1", "HTTPRoute"));
    assert_int_equal(kn_kube_apply_rank("gateway.networking.k8s.io/v1", "HTTPRoute"),
                     kn_kube_apply_rank("networking.istio.io/v1", "VirtualService"));
}

static void test_replicas(void **state)
{
    struct kn_scale s = {.value = 20, .percent = 1};

    (void)state;
    assert_int_equal(kn_kube_replicas(&s, 10), 2);
    assert_int_equal(kn_kube_replicas(&s, 3), 1);  /* 0.6 rounds up */
    assert_int_equal(kn_kube_replicas(&s, 11), 3); /* 2.2 rounds up */
    assert_int_equal(kn_kube_replicas(&s, 0), 1);  /* at least one */
    s.value = 100;
    assert_int_equal(kn_kube_replicas(&s, 4), 4);
    s = (struct kn_scale){.value = 3, .percent = 0};
    assert_int_equal(kn_kube_replicas(&s, 10), 3);
    s.value = 0;
    assert_int_equal(kn_kube_replicas(&s, 10), 1);
    assert_int_equal(kn_kube_replicas(NULL, 10), 1);
}

/* ---- variants ----------------------------------------------------------------------------- */

static const char deploy_json[] =
    "{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{\"name\":\"web\","
    "\"namespace\":\"shop\",\"labels\":{\"app\":\"web\"}},\"spec\":{\"replicas\":4,"
    "\"selector\":{\"matchLabels\":{\"app\":\"web\"}},\"template\":{\"metadata\":{\"labels\":"
    "{\"app\":\"web\"}},\"spec\":{\"containers\":[{\"name\":\"web\",\"image\":\"web:2\","
    "\"ports\":[{\"containerPort\":8080}]}]}}}}";

static void test_variant_workload(void **state)
{
    json_t *d = J(deploy_json);
    json_t *c, *p;

    (void)state;
    c = kn_kube_variant_workload(d, KN_VARIANT_CANARY, 2);
    assert_string_equal(S(c, "metadata.name"), "web-canary");
    assert_int_equal(I(c, "spec.replicas"), 2);
    assert_string_equal(S(c, "spec.selector.matchLabels.app"), "web");
    assert_string_equal(json_string_value(json_object_get(at(c, "spec.selector.matchLabels"),
                                                          KN_KUBE_LABEL_VARIANT)),
                        "canary");
    assert_string_equal(json_string_value(json_object_get(at(c, "spec.template.metadata.labels"),
                                                          KN_KUBE_LABEL_VARIANT)),
                        "canary");
    assert_string_equal(
        json_string_value(json_object_get(at(c, "metadata.labels"), KN_KUBE_LABEL_VARIANT)),
        "canary");
    assert_string_equal(S(c, "spec.template.spec.containers.0.image"), "web:2");
    json_decref(c);
    c = kn_kube_variant_workload(d, KN_VARIANT_BASELINE, -1);
    assert_string_equal(S(c, "metadata.name"), "web-baseline");
    assert_int_equal(I(c, "spec.replicas"), 4); /* kept */
    assert_string_equal(json_string_value(json_object_get(at(c, "spec.selector.matchLabels"),
                                                          KN_KUBE_LABEL_VARIANT)),
                        "baseline");
    json_decref(c);
    /* the primary: the selector is immutable and stays; its pods say primary */
    p = kn_kube_variant_workload(d, KN_VARIANT_PRIMARY, -1);
    assert_string_equal(S(p, "metadata.name"), "web");
    assert_int_equal(json_object_size(at(p, "spec.selector.matchLabels")), 1);
    assert_string_equal(json_string_value(json_object_get(at(p, "spec.template.metadata.labels"),
                                                          KN_KUBE_LABEL_VARIANT)),
                        "primary");
    json_decref(p);
    json_decref(d);
}

static void test_variant_service(void **state)
{
    json_t *s = J("{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{\"name\":\"web\","
                  "\"namespace\":\"shop\"},\"spec\":{\"type\":\"LoadBalancer\","
                  "\"clusterIP\":\"10.0.0.5\",\"clusterIPs\":[\"10.0.0.5\"],"
                  "\"externalIPs\":[\"1.2.3.4\"],\"loadBalancerIP\":\"1.2.3.5\","
                  "\"loadBalancerSourceRanges\":[\"10.0.0.0/8\"],"
                  "\"externalTrafficPolicy\":\"Local\",\"healthCheckNodePort\":30001,"
                  "\"selector\":{\"app\":\"web\"},\"ports\":[{\"name\":\"http\",\"port\":80,"
                  "\"targetPort\":8080,\"nodePort\":30080}]}}");
    json_t *c, *p;
    static const char *const cleared[] = {
        "clusterIP",
        "clusterIPs",
        "externalIPs",
        "loadBalancerIP",
        "loadBalancerSourceRanges",
        "externalTrafficPolicy",
        "healthCheckNodePort",
        NULL,
    };

    (void)state;
    c = kn_kube_variant_service(s, KN_VARIANT_CANARY, 1);
    assert_string_equal(S(c, "metadata.name"), "web-canary");
    assert_string_equal(S(c, "spec.type"), "ClusterIP");
    for (size_t i = 0; cleared[i]; i++) {
        assert_null(json_object_get(at(c, "spec"), cleared[i]));
    }
    assert_null(at(c, "spec.ports.0.nodePort"));
    assert_int_equal(I(c, "spec.ports.0.port"), 80);
    assert_int_equal(I(c, "spec.ports.0.targetPort"), 8080);
    assert_string_equal(S(c, "spec.selector.app"), "web");
    assert_string_equal(
        json_string_value(json_object_get(at(c, "spec.selector"), KN_KUBE_LABEL_VARIANT)),
        "canary");
    json_decref(c);
    /* the primary: as it is without a router, selecting its own pods only with one */
    p = kn_kube_variant_service(s, KN_VARIANT_PRIMARY, 0);
    assert_true(json_equal(p, s));
    json_decref(p);
    p = kn_kube_variant_service(s, KN_VARIANT_PRIMARY, 1);
    assert_string_equal(S(p, "metadata.name"), "web");
    assert_string_equal(S(p, "spec.type"), "LoadBalancer");
    assert_string_equal(
        json_string_value(json_object_get(at(p, "spec.selector"), KN_KUBE_LABEL_VARIANT)),
        "primary");
    json_decref(p);
    json_decref(s);
}

/* ---- routes ------------------------------------------------------------------------------- */

static const char httproute_json[] =
    "{\"apiVersion\":\"gateway.networking.k8s.io/v1\",\"kind\":\"HTTPRoute\",\"metadata\":"
    "{\"name\":\"web\",\"namespace\":\"shop\",\"generation\":4},\"spec\":{\"parentRefs\":"
    "[{\"name\":\"gw\"}],\"rules\":["
    "{\"matches\":[{\"path\":{\"type\":\"PathPrefix\",\"value\":\"/api\"}}],\"backendRefs\":"
    "[{\"name\":\"web\",\"port\":8080}]},"
    "{\"matches\":[{\"path\":{\"type\":\"PathPrefix\",\"value\":\"/static\"}}],\"backendRefs\":"
    "[{\"name\":\"cdn\",\"port\":80}]},"
    "{\"backendRefs\":[{\"kind\":\"Service\",\"name\":\"web\",\"port\":80}]}]}}";

static void test_route_with_weights_http(void **state)
{
    json_t *r = J(httproute_json);
    json_t *w;
    double pct[KN_VARIANT_COUNT] = {80, 20, 0};
    double back[KN_VARIANT_COUNT];
    char why[256] = "";

    (void)state;
    w = kn_kube_route_with_weights(r, "web", pct, why, sizeof(why));
    assert_non_null(w);
    /* rule 1: primary 80, canary 20 on the primary's port; no baseline at 0 */
    assert_int_equal(json_array_size(at(w, "spec.rules.0.backendRefs")), 2);
    assert_string_equal(S(w, "spec.rules.0.backendRefs.0.name"), "web");
    assert_int_equal(I(w, "spec.rules.0.backendRefs.0.weight"), 80);
    assert_int_equal(I(w, "spec.rules.0.backendRefs.0.port"), 8080);
    assert_string_equal(S(w, "spec.rules.0.backendRefs.1.name"), "web-canary");
    assert_int_equal(I(w, "spec.rules.0.backendRefs.1.weight"), 20);
    assert_int_equal(I(w, "spec.rules.0.backendRefs.1.port"), 8080);
    assert_string_equal(S(w, "spec.rules.0.matches.0.path.value"), "/api");
    /* rule 2 names another Service: as it is */
    assert_true(json_equal(at(w, "spec.rules.1"), at(r, "spec.rules.1")));
    /* rule 3: its own port */
    assert_int_equal(I(w, "spec.rules.2.backendRefs.1.port"), 80);
    assert_string_equal(S(w, "spec.rules.2.backendRefs.1.kind"), "Service");
    assert_int_equal(kn_kube_route_weights(w, "web", back, why, sizeof(why)), 0);
    assert_true(back[0] == 80 && back[1] == 20 && back[2] == 0);

    /* baseline too, and back to all primary on the written route */
    {
        double three[KN_VARIANT_COUNT] = {60, 20, 20};
        double all[KN_VARIANT_COUNT] = {100, 0, 0};
        json_t *w2 = kn_kube_route_with_weights(w, "web", three, why, sizeof(why));
        json_t *w3;
        assert_int_equal(json_array_size(at(w2, "spec.rules.0.backendRefs")), 3);
        assert_string_equal(S(w2, "spec.rules.0.backendRefs.2.name"), "web-baseline");
        assert_int_equal(I(w2, "spec.rules.0.backendRefs.2.weight"), 20);
        assert_int_equal(kn_kube_route_weights(w2, "web", back, why, sizeof(why)), 0);
        assert_true(back[0] == 60 && back[1] == 20 && back[2] == 20);
        w3 = kn_kube_route_with_weights(w2, "web", all, why, sizeof(why));
        assert_int_equal(json_array_size(at(w3, "spec.rules.2.backendRefs")), 1);
        assert_int_equal(I(w3, "spec.rules.2.backendRefs.0.weight"), 100);
        json_decref(w3);
        json_decref(w2);
    }
    /* fractions stay exact */
    {
        double frac[KN_VARIANT_COUNT] = {87.5, 12.5, 0};
        json_t *w4 = kn_kube_route_with_weights(r, "web", frac, why, sizeof(why));
        assert_int_equal(I(w4, "spec.rules.0.backendRefs.0.weight"), 875);
        assert_int_equal(I(w4, "spec.rules.0.backendRefs.1.weight"), 125);
        assert_int_equal(kn_kube_route_weights(w4, "web", back, why, sizeof(why)), 0);
        assert_true(back[0] == 87.5 && back[1] == 12.5);
        json_decref(w4);
    }
    /* a Service no rule names */
    assert_null(kn_kube_route_with_weights(r, "api", pct, why, sizeof(why)));
    assert_string_equal(why, "no rule of HTTPRoute 'web' sends traffic to Service 'api'");
    json_decref(w);
    json_decref(r);
}

static void test_route_weights_read(void **state)
{
    json_t *r;
    double p[KN_VARIANT_COUNT];
    char why[256] = "";

    (void)state;
    /* weights are not percents; absent weight is 1; other Services in the rule count in the sum */
    r = J("{\"kind\":\"HTTPRoute\",\"spec\":{\"rules\":[{\"backendRefs\":[{\"name\":\"web\","
          "\"weight\":3},{\"name\":\"web-canary\"}]}]}}");
    assert_int_equal(kn_kube_route_weights(r, "web", p, why, sizeof(why)), 0);
    assert_true(p[0] == 75 && p[1] == 25 && p[2] == 0);
    json_decref(r);
    /* rules that disagree */
    r = J("{\"kind\":\"HTTPRoute\",\"spec\":{\"rules\":[{\"backendRefs\":[{\"name\":\"web\","
          "\"weight\":80},{\"name\":\"web-canary\",\"weight\":20}]},{\"backendRefs\":[{\"name\":"
          "\"other\"}]},{\"backendRefs\":[{\"name\":\"web\",\"weight\":50},{\"name\":"
          "\"web-canary\",\"weight\":50}]}]}}");
    assert_int_equal(kn_kube_route_weights(r, "web", p, why, sizeof(why)), -1);
    assert_string_equal(why, "rule 3 sends 50/50, rule 1 80/20");
    json_decref(r);
    /* none */
    r = J("{\"kind\":\"HTTPRoute\",\"spec\":{\"rules\":[{\"backendRefs\":[{\"name\":\"x\"}]}]}}");
    assert_int_equal(kn_kube_route_weights(r, "web", p, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "no rule"));
    json_decref(r);
    /* a backend of another namespace or kind is not the Service */
    r = J("{\"kind\":\"HTTPRoute\",\"metadata\":{\"namespace\":\"shop\"},\"spec\":{\"rules\":"
          "[{\"backendRefs\":[{\"name\":\"web\",\"namespace\":\"other\"},{\"name\":\"web\","
          "\"group\":\"example.com\",\"kind\":\"Bucket\"}]}]}}");
    assert_int_equal(kn_kube_route_weights(r, "web", p, why, sizeof(why)), -1);
    json_decref(r);
}

static const char vs_json[] =
    "{\"apiVersion\":\"networking.istio.io/v1\",\"kind\":\"VirtualService\",\"metadata\":"
    "{\"name\":\"web\",\"namespace\":\"shop\"},\"spec\":{\"hosts\":[\"web.example.com\"],"
    "\"http\":[{\"match\":[{\"uri\":{\"prefix\":\"/api\"}}],\"route\":[{\"destination\":"
    "{\"host\":\"web.shop.svc.cluster.local\",\"subset\":\"v1\",\"port\":{\"number\":80}}}]},"
    "{\"route\":[{\"destination\":{\"host\":\"cdn\"}}]},"
    "{\"route\":[{\"destination\":{\"host\":\"web\",\"port\":{\"number\":80}}}]}]}}";

/* Header routing's rules: a cookie's value escaped, the live split read past them, on an
 * HTTPRoute and a VirtualService (with a mirror of a part); refused on an HTTPRoute with more
 * than 8 matches in a rule, and for a mirror of part of the traffic. */
static void test_route_with_routes(void **state)
{
    json_t *r = J(httproute_json), *vs = J(vs_json), *w;
    struct kn_route_match ms[9];
    struct kn_routes routes = {.matches = ms, .nmatches = 1};
    double pct[KN_VARIANT_COUNT] = {75, 25, 0}, back[KN_VARIANT_COUNT];
    char why[256] = "";

    (void)state;
    for (size_t i = 0; i < 9; i++) {
        ms[i] = (struct kn_route_match){.field = KN_ROUTE_COOKIE, .name = "v.1", .value = "a+b"};
    }
    w = kn_kube_route_with_routes(r, "web", pct, &routes, why, sizeof(why));
    assert_non_null(w);
    assert_int_equal(json_array_size(at(w, "spec.rules")), 5);
    assert_string_equal(S(w, "spec.rules.0.matches.0.headers.0.value"),
                        "(^|;\\s*)v\\.1=a\\+b(;|$)");
    assert_string_equal(S(w, "spec.rules.0.matches.0.path.value"), "/api");
    assert_string_equal(S(w, "spec.rules.0.backendRefs.0.name"), "web-canary");
    assert_string_equal(S(w, "spec.rules.2.backendRefs.0.name"), "cdn");
    assert_int_equal(kn_kube_route_weights(w, "web", back, why, sizeof(why)), 0);
    assert_true(back[KN_VARIANT_CANARY] > 24.9 && back[KN_VARIANT_CANARY] < 25.1);
    json_decref(w);
    /* a VirtualService: an http route to the canary before each that sends to the primary,
     * its own match kept beside the cookie's; the split read past them */
    w = kn_kube_route_with_routes(vs, "web", pct, &routes, why, sizeof(why));
    assert_non_null(w);
    assert_int_equal(json_array_size(at(w, "spec.http")), 5);
    assert_string_equal(S(w, "spec.http.0.match.0.headers.cookie.regex"),
                        "^(.*;\\s*)?v\\.1=a\\+b(;.*)?$");
    assert_string_equal(S(w, "spec.http.0.match.0.uri.prefix"), "/api");
    assert_int_equal(json_array_size(at(w, "spec.http.0.route")), 1);
    assert_string_equal(S(w, "spec.http.0.route.0.destination.host"),
                        "web-canary.shop.svc.cluster.local");
    assert_int_equal(I(w, "spec.http.0.route.0.weight"), 100);
    assert_string_equal(S(w, "spec.http.2.route.0.destination.host"), "cdn");
    assert_string_equal(S(w, "spec.http.3.route.0.destination.host"), "web-canary");
    assert_null(at(w, "spec.http.4.match"));
    assert_int_equal(kn_kube_route_weights(w, "web", back, why, sizeof(why)), 0);
    assert_true(back[KN_VARIANT_CANARY] > 24.9 && back[KN_VARIANT_CANARY] < 25.1);
    json_decref(w);
    /* a header exact and regex, and a mirror of a part: Istio takes a percent */
    ms[0] = (struct kn_route_match){.field = KN_ROUTE_HEADER, .name = "X-Canary", .value = "1"};
    ms[1] = (struct kn_route_match){
        .field = KN_ROUTE_HEADER, .name = "x-user", .value = "^(alice|bob)$", .regex = 1};
    routes.nmatches = 2;
    routes.mirror = 12.5;
    w = kn_kube_route_with_routes(vs, "web", pct, &routes, why, sizeof(why));
    assert_non_null(w);
    assert_string_equal(S(w, "spec.http.0.match.0.headers.x-canary.exact"), "1");
    assert_string_equal(S(w, "spec.http.0.match.1.headers.x-user.regex"), "(alice|bob)");
    assert_null(at(w, "spec.http.0.mirror"));
    assert_string_equal(S(w, "spec.http.1.mirror.host"), "web-canary.shop.svc.cluster.local");
    assert_true(json_real_value(at(w, "spec.http.1.mirrorPercentage.value")) == 12.5);
    assert_null(at(w, "spec.http.2.mirror"));
    json_decref(w);
    routes.nmatches = 1;
    routes.mirror = 0;
    ms[0] = (struct kn_route_match){.field = KN_ROUTE_COOKIE, .name = "v.1", .value = "a+b"};
    ms[1] = ms[0];
    routes.nmatches = 9;
    assert_null(kn_kube_route_with_routes(r, "web", pct, &routes, why, sizeof(why)));
    assert_non_null(strstr(why, "8 matches"));
    routes.nmatches = 0;
    routes.mirror = 50;
    assert_null(kn_kube_route_with_routes(r, "web", pct, &routes, why, sizeof(why)));
    assert_non_null(strstr(why, "mirror 50%"));
    json_decref(r);
    json_decref(vs);
}

static void test_route_with_weights_istio(void **state)
{
    json_t *r = J(vs_json);
    json_t *w;
    double pct[KN_VARIANT_COUNT] = {33.3, 33.3, 33.4};
    double back[KN_VARIANT_COUNT];
    char why[256] = "";
    long long sum = 0;

    (void)state;
    w = kn_kube_route_with_weights(r, "web", pct, why, sizeof(why));
    assert_non_null(w);
    assert_int_equal(json_array_size(at(w, "spec.http.0.route")), 3);
    assert_string_equal(S(w, "spec.http.0.route.0.destination.host"), "web.shop.svc.cluster.local");
    assert_string_equal(S(w, "spec.http.0.route.0.destination.subset"), "v1");
    assert_string_equal(S(w, "spec.http.0.route.1.destination.host"),
                        "web-canary.shop.svc.cluster.local");
    assert_null(at(w, "spec.http.0.route.1.destination.subset"));
    assert_int_equal(I(w, "spec.http.0.route.1.destination.port.number"), 80);
    assert_string_equal(S(w, "spec.http.0.route.2.destination.host"),
                        "web-baseline.shop.svc.cluster.local");
    for (int i = 0; i < 3; i++) {
        char path[64];
        snprintf(path, sizeof(path), "spec.http.0.route.%d.weight", i);
        assert_true(I(w, path) >= 0 && I(w, path) <= 100);
        sum += I(w, path);
    }
    assert_int_equal(sum, 100);
    assert_true(json_equal(at(w, "spec.http.1"), at(r, "spec.http.1")));
    assert_string_equal(S(w, "spec.http.2.route.1.destination.host"), "web-canary");
    assert_int_equal(kn_kube_route_weights(w, "web", back, why, sizeof(why)), 0);
    assert_true(back[0] + back[1] + back[2] > 99.99 && back[1] > 30);
    json_decref(w);
    {
        double all[KN_VARIANT_COUNT] = {100, 0, 0};
        w = kn_kube_route_with_weights(r, "web", all, why, sizeof(why));
        assert_int_equal(json_array_size(at(w, "spec.http.2.route")), 1);
        assert_int_equal(I(w, "spec.http.2.route.0.weight"), 100);
        json_decref(w);
    }
    /* a single destination without weight takes all */
    assert_int_equal(kn_kube_route_weights(r, "web", back, why, sizeof(why)), 0);
    assert_true(back[0] == 100 && back[1] == 0);
    json_decref(r);
    r = J("{\"kind\":\"VirtualService\",\"metadata\":{\"name\":\"v\",\"namespace\":\"shop\"},"
          "\"spec\":{\"http\":[{\"route\":[{\"destination\":{\"host\":\"web.other.svc.cluster."
          "local\"}}]}]}}");
    assert_null(kn_kube_route_with_weights(r, "web", pct, why, sizeof(why)));
    assert_string_equal(why, "no http route of VirtualService 'v' sends traffic to Service 'web'");
    json_decref(r);
    r = J("{\"kind\":\"Ingress\"}");
    assert_null(kn_kube_route_with_weights(r, "web", pct, why, sizeof(why)));
    json_decref(r);
}

static void test_route_ready(void **state)
{
    json_t *r;
    char why[256] = "";

    (void)state;
    r = J("{\"kind\":\"HTTPRoute\",\"metadata\":{\"generation\":4},\"spec\":{\"parentRefs\":"
          "[{\"name\":\"gw\"}]},\"status\":{\"parents\":[{\"parentRef\":{\"name\":\"gw\"},"
          "\"conditions\":[{\"type\":\"Accepted\",\"status\":\"True\",\"observedGeneration\":4},"
          "{\"type\":\"ResolvedRefs\",\"status\":\"True\",\"observedGeneration\":4}]}]}}");
    assert_int_equal(kn_kube_route_ready(r, why, sizeof(why)), 1);
    json_decref(r);
    r = J("{\"kind\":\"HTTPRoute\",\"metadata\":{\"generation\":4},\"spec\":{\"parentRefs\":"
          "[{\"name\":\"gw\"}]},\"status\":{\"parents\":[{\"parentRef\":{\"name\":\"gw\"},"
          "\"conditions\":[{\"type\":\"Accepted\",\"status\":\"True\",\"observedGeneration\":3},"
          "{\"type\":\"ResolvedRefs\",\"status\":\"False\",\"observedGeneration\":3}]}]}}");
    assert_int_equal(kn_kube_route_ready(r, why, sizeof(why)), 0);
    assert_string_equal(why, "parent gw: Accepted at generation 3 of 4");
    json_decref(r);
    r = J("{\"kind\":\"HTTPRoute\",\"metadata\":{\"generation\":4},\"spec\":{\"parentRefs\":"
          "[{\"name\":\"gw\"}]},\"status\":{\"parents\":[{\"parentRef\":{\"name\":\"gw\"},"
          "\"conditions\":[{\"type\":\"Accepted\",\"status\":\"True\",\"observedGeneration\":4},"
          "{\"type\":\"ResolvedRefs\",\"status\":\"False\",\"observedGeneration\":4,\"reason\":"
          "\"BackendNotFound\",\"message\":\"service \\\"web-canary\\\" not found\"}]}]}}");
    assert_int_equal(kn_kube_route_ready(r, why, sizeof(why)), -1);
    assert_string_equal(
        why, "parent gw: ResolvedRefs False, BackendNotFound: service \"web-canary\" not found");
    json_decref(r);
    /* a parent without status yet */
    r = J("{\"kind\":\"HTTPRoute\",\"metadata\":{\"generation\":1},\"spec\":{\"parentRefs\":"
          "[{\"name\":\"gw\"},{\"name\":\"gw2\",\"sectionName\":\"https\"}]},\"status\":{"
          "\"parents\":[{\"parentRef\":{\"name\":\"gw\"},\"conditions\":[{\"type\":\"Accepted\","
          "\"status\":\"True\",\"observedGeneration\":1},{\"type\":\"ResolvedRefs\",\"status\":"
          "\"True\",\"observedGeneration\":1}]}]}}");
    assert_int_equal(kn_kube_route_ready(r, why, sizeof(why)), 0);
    assert_string_equal(why, "parent gw2/https: no status yet");
    json_decref(r);
    r = J("{\"kind\":\"HTTPRoute\",\"metadata\":{\"generation\":1},\"spec\":{\"parentRefs\":"
          "[{\"name\":\"gw\"}]}}");
    assert_int_equal(kn_kube_route_ready(r, why, sizeof(why)), 0);
    json_decref(r);
    r = J("{\"kind\":\"VirtualService\",\"metadata\":{\"generation\":9}}");
    assert_int_equal(kn_kube_route_ready(r, why, sizeof(why)), 1);
    json_decref(r);
}

/* ---- health ------------------------------------------------------------------------------- */

static enum kn_kube_health health(const char *status, const char *spec, char *why, size_t size)
{
    char *text = kn_asprintf("{\"kind\":\"Deployment\",\"metadata\":{\"name\":\"web\","
                             "\"generation\":2},\"spec\":%s,\"status\":%s}",
                             spec, status);
    json_t *d = J(text);
    enum kn_kube_health h = kn_kube_deployment_health(d, why, size);

    json_decref(d);
    free(text);
    return h;
}

static void test_deployment_health(void **state)
{
    char why[256];

    (void)state;
    /* kubectl's words, in kubectl's order (rollout_status.go) */
    assert_int_equal(health("{\"observedGeneration\":1}", "{\"replicas\":3}", why, sizeof(why)),
                     KN_KUBE_PROGRESSING);
    assert_string_equal(why, "Waiting for deployment spec update to be observed...");
    /* a stale deadline before the generation is observed is not judged yet */
    assert_int_equal(health("{\"observedGeneration\":1,\"conditions\":[{\"type\":\"Progressing\","
                            "\"status\":\"False\",\"reason\":\"ProgressDeadlineExceeded\"}]}",
                            "{\"replicas\":3}", why, sizeof(why)),
                     KN_KUBE_PROGRESSING);
    assert_int_equal(health("{\"observedGeneration\":2}", "{\"replicas\":3}", why, sizeof(why)),
                     KN_KUBE_PROGRESSING);
    assert_string_equal(why, "Waiting for deployment \"web\" rollout to finish: 0 out of 3 new "
                             "replicas have been updated...");
    assert_int_equal(health("{\"observedGeneration\":2,\"replicas\":5,\"updatedReplicas\":3}",
                            "{\"replicas\":3}", why, sizeof(why)),
                     KN_KUBE_PROGRESSING);
    assert_string_equal(why, "Waiting for deployment \"web\" rollout to finish: 2 old replicas "
                             "are pending termination...");
    assert_int_equal(health("{\"observedGeneration\":2,\"replicas\":3,\"updatedReplicas\":3,"
                            "\"availableReplicas\":1}",
                            "{\"replicas\":3}", why, sizeof(why)),
                     KN_KUBE_PROGRESSING);
    assert_string_equal(why, "Waiting for deployment \"web\" rollout to finish: 1 of 3 updated "
                             "replicas are available...");
    assert_int_equal(health("{\"observedGeneration\":3,\"replicas\":3,\"updatedReplicas\":3,"
                            "\"availableReplicas\":3}",
                            "{\"replicas\":3}", why, sizeof(why)),
                     KN_KUBE_HEALTHY);
    assert_string_equal(why, "deployment \"web\" successfully rolled out");
    assert_int_equal(health("{\"observedGeneration\":2,\"replicas\":3,\"updatedReplicas\":3,"
                            "\"availableReplicas\":3,\"conditions\":[{\"type\":\"Progressing\","
                            "\"status\":\"False\",\"reason\":\"ProgressDeadlineExceeded\"}]}",
                            "{\"replicas\":3}", why, sizeof(why)),
                     KN_KUBE_FAILED);
    assert_string_equal(why, "deployment \"web\" exceeded its progress deadline");
    assert_int_equal(health("{\"observedGeneration\":2,\"conditions\":[{\"type\":"
                            "\"ReplicaFailure\",\"status\":\"True\",\"reason\":\"FailedCreate\","
                            "\"message\":\"exceeded quota\"}]}",
                            "{\"replicas\":3}", why, sizeof(why)),
                     KN_KUBE_FAILED);
    assert_non_null(strstr(why, "FailedCreate: exceeded quota"));
    /* scaled to zero: nothing to wait for */
    assert_int_equal(health("{\"observedGeneration\":2}", "{\"replicas\":0}", why, sizeof(why)),
                     KN_KUBE_HEALTHY);
}

/* ---- pods --------------------------------------------------------------------------------- */

static void test_pod_problems(void **state)
{
    json_t *pods =
        J("{\"kind\":\"PodList\",\"items\":["
          "{\"metadata\":{\"name\":\"web-canary-7d9f-x2k\"},\"status\":{\"containerStatuses\":[{"
          "\"name\":\"web\",\"state\":{\"waiting\":{\"reason\":\"ImagePullBackOff\",\"message\":"
          "\"Back-off pulling image \\\"web:bad\\\"\"}}}]}},"
          "{\"metadata\":{\"name\":\"web-canary-7d9f-ok\"},\"status\":{\"containerStatuses\":[{"
          "\"name\":\"web\",\"state\":{\"waiting\":{\"reason\":\"ContainerCreating\"}}}]}},"
          "{\"metadata\":{\"name\":\"web-canary-7d9f-p\"},\"status\":{\"conditions\":[{\"type\":"
          "\"PodScheduled\",\"status\":\"False\",\"reason\":\"Unschedulable\",\"message\":\"0/3 "
          "nodes are available\"}]}},"
          "{\"metadata\":{\"name\":\"web-canary-7d9f-i\"},\"status\":{\"initContainerStatuses\":[{"
          "\"name\":\"migrate\",\"state\":{\"waiting\":{\"reason\":\"CrashLoopBackOff\"}}}]}}]}");
    char out[512], small[24];

    (void)state;
    assert_int_equal(kn_kube_pod_problems(pods, out, sizeof(out)), 3);
    assert_string_equal(out, "pod web-canary-7d9f-x2k: container web ImagePullBackOff: Back-off "
                             "pulling image \"web:bad\"; pod web-canary-7d9f-p: Unschedulable: "
                             "0/3 nodes are available; pod web-canary-7d9f-i: container migrate "
                             "CrashLoopBackOff");
    assert_int_equal(kn_kube_pod_problems(pods, small, sizeof(small)), 3);
    assert_int_equal(strlen(small), sizeof(small) - 1);
    assert_string_equal(small + sizeof(small) - 4, "...");
    assert_int_equal(kn_kube_pod_problems(json_object_get(pods, "items"), out, sizeof(out)), 3);
    json_decref(pods);
    pods = J("{\"items\":[]}");
    assert_int_equal(kn_kube_pod_problems(pods, out, sizeof(out)), 0);
    assert_string_equal(out, "");
    json_decref(pods);
}

/* ---- drift -------------------------------------------------------------------------------- */

static void test_drift(void **state)
{
    json_t *applied = J(deploy_json);
    json_t *live = J(deploy_json);
    char *d;

    (void)state;
    /* what the server adds is never drift */
    json_object_set_new(live, "status", J("{\"replicas\":4}"));
    json_object_set_new(at(live, "metadata"), "uid", json_string("u-1"));
    json_object_set_new(at(live, "metadata.labels"), "added", json_string("by-someone"));
    json_object_set_new(at(live, "spec"), "progressDeadlineSeconds", json_integer(600));
    json_object_set_new(at(live, "spec.template.spec.containers.0"), "imagePullPolicy",
                        json_string("IfNotPresent"));
    json_object_set_new(at(live, "spec.template.spec.containers.0.ports.0"), "protocol",
                        json_string("TCP"));
    assert_null(kn_kube_drift(applied, live, 0));
    /* a number equals its numeric string; empty equals absent */
    json_object_set_new(at(live, "spec"), "replicas", json_string("4"));
    json_object_set_new(at(applied, "spec.template.spec"), "volumes", json_array());
    json_object_set_new(at(applied, "spec.template.metadata"), "annotations", json_object());
    json_object_set_new(at(applied, "spec.template.spec"), "hostname", json_string(""));
    json_object_set_new(at(applied, "spec.template.spec"), "nodeName", json_null());
    assert_null(kn_kube_drift(applied, live, 0));
    /* quantities as the server writes them back */
    json_object_set_new(at(applied, "spec.template.spec.containers.0"), "resources",
                        J("{\"requests\":{\"cpu\":0.5,\"memory\":\"1024Mi\"},"
                          "\"limits\":{\"cpu\":\"1000m\",\"memory\":\"2G\"}}"));
    json_object_set_new(at(live, "spec.template.spec.containers.0"), "resources",
                        J("{\"requests\":{\"cpu\":\"500m\",\"memory\":\"1Gi\"},"
                          "\"limits\":{\"cpu\":\"1\",\"memory\":\"2G\"}}"));
    assert_null(kn_kube_drift(applied, live, 0));
    json_object_set_new(at(live, "spec.template.spec.containers.0.resources.limits"), "memory",
                        json_string("2Gi"));
    d = kn_kube_drift(applied, live, 0);
    assert_string_equal(d, "spec.template.spec.containers[web].resources.limits.memory: live "
                           "\"2Gi\", kanaria applied \"2G\"");
    free(d);
    json_object_set_new(at(live, "spec.template.spec.containers.0.resources.limits"), "memory",
                        json_string("2G"));
    /* containers matched by name, whatever their order */
    json_array_insert_new(at(live, "spec.template.spec.containers"), 0,
                          J("{\"name\":\"sidecar\",\"image\":\"s:1\"}"));
    json_array_append_new(at(applied, "spec.template.spec.containers"),
                          J("{\"name\":\"sidecar\",\"image\":\"s:1\"}"));
    assert_null(kn_kube_drift(applied, live, 0));
    json_object_set_new(json_array_get(at(live, "spec.template.spec.containers"), 1), "image",
                        json_string("web:3"));
    d = kn_kube_drift(applied, live, 0);
    assert_non_null(d);
    assert_string_equal(d, "spec.template.spec.containers[web].image: live \"web:3\", kanaria "
                           "applied \"web:2\"");
    free(d);
    json_object_set_new(at(live, "spec"), "replicas", json_integer(9));
    json_object_set_new(at(live, "metadata.labels"), "app", json_string("x"));
    d = kn_kube_drift(applied, live, 0);
    assert_string_equal(d, "metadata.labels.app: live \"x\", kanaria applied \"web\" (and 2 "
                           "more)");
    free(d);
    json_decref(live);
    json_decref(applied);

    /* a key removed live, a label key with a slash */
    applied = J("{\"metadata\":{\"labels\":{\"kanaria.dev/app\":\"web\"}},\"data\":{\"a\":\"1\"}}");
    live = J("{\"metadata\":{\"labels\":{}},\"data\":{\"a\":\"1\"}}");
    d = kn_kube_drift(applied, live, 0);
    assert_string_equal(d, "metadata.labels[\"kanaria.dev/app\"]: live absent, kanaria applied "
                           "\"web\"");
    free(d);
    json_decref(live);
    json_decref(applied);

    /* lists without names by index; an extra element live is drift */
    applied = J("{\"spec\":{\"args\":[\"a\",\"b\"]}}");
    live = J("{\"spec\":{\"args\":[\"a\",\"b\",\"c\"]}}");
    d = kn_kube_drift(applied, live, 0);
    assert_string_equal(d, "spec.args[2]: live \"c\", kanaria applied absent");
    free(d);
    json_decref(live);
    json_decref(applied);

    /* route weights: drift unless skipped */
    applied = J("{\"kind\":\"HTTPRoute\",\"spec\":{\"rules\":[{\"backendRefs\":[{\"name\":\"web\","
                "\"weight\":80},{\"name\":\"web-canary\",\"weight\":20}]}]}}");
    live = J("{\"kind\":\"HTTPRoute\",\"spec\":{\"rules\":[{\"backendRefs\":[{\"name\":\"web\","
             "\"weight\":50,\"group\":\"\",\"kind\":\"Service\"},{\"name\":\"web-canary\","
             "\"weight\":50}]}]}}");
    d = kn_kube_drift(applied, live, 0);
    assert_string_equal(d, "spec.rules[0].backendRefs[web].weight: live 50, kanaria applied 80 "
                           "(and 1 more)");
    free(d);
    assert_null(kn_kube_drift(applied, live, 1));
    json_decref(live);
    json_decref(applied);
    applied = J("{\"kind\":\"VirtualService\",\"spec\":{\"http\":[{\"route\":[{\"destination\":"
                "{\"host\":\"web\"},\"weight\":80}]}]}}");
    live = J("{\"kind\":\"VirtualService\",\"spec\":{\"http\":[{\"route\":[{\"destination\":"
             "{\"host\":\"web\"},\"weight\":70}]}]}}");
    assert_non_null(d = kn_kube_drift(applied, live, 0));
    free(d);
    assert_null(kn_kube_drift(applied, live, 1));
    json_decref(live);
    json_decref(applied);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_label_value),
        cmocka_unit_test(test_owner_selector_and_names),
        cmocka_unit_test(test_render),
        cmocka_unit_test(test_apply_rank),
        cmocka_unit_test(test_replicas),
        cmocka_unit_test(test_variant_workload),
        cmocka_unit_test(test_variant_service),
        cmocka_unit_test(test_route_with_weights_http),
        cmocka_unit_test(test_route_weights_read),
        cmocka_unit_test(test_route_with_weights_istio),
        cmocka_unit_test(test_route_with_routes),
        cmocka_unit_test(test_route_ready),
        cmocka_unit_test(test_deployment_health),
        cmocka_unit_test(test_pod_problems),
        cmocka_unit_test(test_drift),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
