/*
 * render_dump DIR: write every object the kubernetes platform's render.c makes for a few sample
 * apps into DIR, one JSON file each (NN-what.json), for tests/kube/schemas/validate.mjs to check
 * against the API's schemas: the rendered primary objects, the canary and baseline Deployments
 * and Services, HTTPRoutes with weights (two rules naming the Service, one another) and
 * VirtualServices with weights (short host and FQDN), and an HTTPRoute with header routing's
 * rules (header and cookie matches) and a RequestMirror filter.
 *
 * render_dump --health: read a Deployment (JSON) on stdin and print kn_kube_deployment_health's
 * verdict and words, "progressing|healthy|failed<TAB>why", for tests/kube/rollout_agree.sh.
 *
 * render_dump --drift APPLIED [--skip-weights]: read the live object (JSON) on stdin and print
 * kn_kube_drift's answer against the object in the file APPLIED, or "none", for
 * tests/kube/drift_fake.sh.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kanaria/alloc.h"
#include "platforms/kubernetes/render.h"

static const char *const deployment =
    "{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{\"name\":\"web\","
    "\"labels\":{\"app\":\"web\"}},\"spec\":{\"replicas\":4,\"selector\":{\"matchLabels\":"
    "{\"app\":\"web\"}},\"strategy\":{\"type\":\"RollingUpdate\",\"rollingUpdate\":{\"maxSurge\":"
    "\"25%\",\"maxUnavailable\":0}},\"template\":{\"metadata\":{\"labels\":{\"app\":\"web\"}},"
    "\"spec\":{\"containers\":[{\"name\":\"web\",\"image\":\"ghcr.io/acme/web:1.4.2\","
    "\"ports\":[{\"name\":\"http\",\"containerPort\":8080}],\"env\":[{\"name\":\"MODE\","
    "\"value\":\"prod\"}],\"readinessProbe\":{\"httpGet\":{\"path\":\"/healthz\",\"port\":"
    "\"http\"}},\"resources\":{\"requests\":{\"cpu\":\"100m\",\"memory\":\"64Mi\"}}}]}}},"
    "\"status\":{\"replicas\":4,\"observedGeneration\":3}}";

/* A LoadBalancer Service with everything the canary twin must not copy. */
static const char *const service =
    "{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{\"name\":\"web\",\"uid\":\"u-1\","
    "\"resourceVersion\":\"42\"},\"spec\":{\"type\":\"LoadBalancer\",\"clusterIP\":"
    "\"10.96.0.15\",\"clusterIPs\":[\"10.96.0.15\"],\"externalIPs\":[\"192.0.2.10\"],"
    "\"loadBalancerIP\":\"192.0.2.11\",\"loadBalancerSourceRanges\":[\"10.0.0.0/8\"],"
    "\"externalTrafficPolicy\":\"Local\",\"healthCheckNodePort\":30100,"
    "\"allocateLoadBalancerNodePorts\":true,\"selector\":{\"app\":\"web\"},\"ports\":[{\"name\":"
    "\"http\",\"port\":80,\"targetPort\":\"http\",\"protocol\":\"TCP\",\"nodePort\":30080}]}}";

static const char *const nodeport_service =
    "{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{\"name\":\"api\"},\"spec\":"
    "{\"type\":\"NodePort\",\"selector\":{\"app\":\"api\"},\"ports\":[{\"port\":8080,"
    "\"nodePort\":31000}]}}";

static const char *const httproute =
    "{\"apiVersion\":\"gateway.networking.k8s.io/v1\",\"kind\":\"HTTPRoute\",\"metadata\":"
    "{\"name\":\"web\"},\"spec\":{\"parentRefs\":[{\"name\":\"gw\",\"sectionName\":\"http\"}],"
    "\"hostnames\":[\"web.example.com\"],\"rules\":["
    "{\"matches\":[{\"path\":{\"type\":\"PathPrefix\",\"value\":\"/api\"}}],\"backendRefs\":"
    "[{\"name\":\"web\",\"port\":80}]},"
    "{\"matches\":[{\"path\":{\"type\":\"PathPrefix\",\"value\":\"/static\"}}],\"backendRefs\":"
    "[{\"name\":\"cdn\",\"port\":80}]},"
    "{\"backendRefs\":[{\"group\":\"\",\"kind\":\"Service\",\"name\":\"web\",\"port\":80}]}]}}";

static const char *const virtualservice =
    "{\"apiVersion\":\"networking.istio.io/v1\",\"kind\":\"VirtualService\",\"metadata\":"
    "{\"name\":\"web\"},\"spec\":{\"hosts\":[\"web.example.com\"],\"gateways\":[\"gw\"],"
    "\"http\":[{\"match\":[{\"uri\":{\"prefix\":\"/api\"}}],\"route\":[{\"destination\":"
    "{\"host\":\"web.shop.svc.cluster.local\",\"port\":{\"number\":80}}}]},"
    "{\"route\":[{\"destination\":{\"host\":\"web\",\"port\":{\"number\":80}},"
    "\"weight\":100}]}]}}";

static int written;

static int dump(const char *dir, const char *what, json_t *obj)
{
    char *path = kn_asprintf("%s/%02d-%s.json", dir, ++written, what);
    int rc = 0;

    if (!obj || json_dump_file(obj, path, JSON_INDENT(2) | JSON_SORT_KEYS) != 0) {
        fprintf(stderr, "render_dump: cannot write %s%s\n", path, obj ? "" : " (no object)");
        rc = 1;
    }
    json_decref(obj);
    free(path);
    return rc;
}

static json_t *load(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);

    if (!j) {
        fprintf(stderr, "render_dump: bad sample: %s\n", e.text);
        exit(1);
    }
    return j;
}

static const struct kn_kube_owner owner = {
    .app = "web", .repository = "git@github.com:acme/shop.git", .commit = "0123abcd"};

/* A sample as kanaria applies it in namespace shop. */
static json_t *render(const char *text)
{
    json_t *m = load(text);
    json_t *r = kn_kube_render(m, &owner, "shop", 1);

    json_decref(m);
    return r;
}

static int health(void)
{
    static const char *const verdicts[] = {
        [KN_KUBE_PROGRESSING] = "progressing",
        [KN_KUBE_HEALTHY] = "healthy",
        [KN_KUBE_FAILED] = "failed",
    };
    json_error_t e;
    json_t *d = json_loadf(stdin, 0, &e);
    char why[512];
    enum kn_kube_health h;

    if (!d) {
        fprintf(stderr, "render_dump --health: bad JSON on stdin: %s\n", e.text);
        return 2;
    }
    h = kn_kube_deployment_health(d, why, sizeof(why));
    printf("%s\t%s\n", verdicts[h], why);
    json_decref(d);
    return 0;
}

static int drift(const char *applied_path, int skip_weights)
{
    json_error_t e;
    json_t *applied = json_load_file(applied_path, 0, &e);
    json_t *live = json_loadf(stdin, 0, &e);
    char *d;
    int rc = 0;

    if (!applied || !live) {
        fprintf(stderr, "render_dump --drift: bad JSON: %s\n", e.text);
        rc = 2;
        goto out;
    }
    d = kn_kube_drift(applied, live, skip_weights);
    printf("%s\n", d ? d : "none");
    free(d);
out:
    json_decref(applied);
    json_decref(live);
    return rc;
}

int main(int argc, char **argv)
{
    static const double splits[][KN_VARIANT_COUNT] = {
        {80, 20, 0}, {60, 20, 20}, {87.5, 12.5, 0}, {100, 0, 0}, {33.3, 33.3, 33.4}};
    json_t *d, *s, *np, *hr, *vs, *route;
    char why[512];
    int rc = 0;

    if (argc == 2 && strcmp(argv[1], "--health") == 0) {
        return health();
    }
    if ((argc == 3 || argc == 4) && strcmp(argv[1], "--drift") == 0) {
        return drift(argv[2], argc == 4 && strcmp(argv[3], "--skip-weights") == 0);
    }
    if (argc != 2) {
        fprintf(stderr, "usage: render_dump DIR | render_dump --health < DEPLOYMENT.json\n");
        return 2;
    }
    d = render(deployment);
    s = render(service);
    np = render(nodeport_service);
    hr = render(httproute);
    vs = render(virtualservice);

    rc |= dump(argv[1], "deployment-rendered", json_incref(d));
    rc |= dump(argv[1], "deployment-primary", kn_kube_variant_workload(d, KN_VARIANT_PRIMARY, -1));
    rc |= dump(argv[1], "deployment-canary", kn_kube_variant_workload(d, KN_VARIANT_CANARY, 1));
    rc |= dump(argv[1], "deployment-baseline", kn_kube_variant_workload(d, KN_VARIANT_BASELINE, 2));
    rc |= dump(argv[1], "service-rendered", json_incref(s));
    rc |= dump(argv[1], "service-primary-exclusive",
               kn_kube_variant_service(s, KN_VARIANT_PRIMARY, 1));
    rc |= dump(argv[1], "service-canary", kn_kube_variant_service(s, KN_VARIANT_CANARY, 1));
    rc |= dump(argv[1], "service-baseline", kn_kube_variant_service(s, KN_VARIANT_BASELINE, 1));
    rc |=
        dump(argv[1], "service-nodeport-canary", kn_kube_variant_service(np, KN_VARIANT_CANARY, 0));
    rc |= dump(argv[1], "httproute-rendered", json_incref(hr));
    rc |= dump(argv[1], "virtualservice-rendered", json_incref(vs));
    for (size_t i = 0; i < sizeof(splits) / sizeof(splits[0]); i++) {
        route = kn_kube_route_with_weights(hr, "web", splits[i], why, sizeof(why));
        if (!route) {
            fprintf(stderr, "render_dump: HTTPRoute: %s\n", why);
        }
        rc |= dump(argv[1], "httproute-weights", route);
        route = kn_kube_route_with_weights(vs, "web", splits[i], why, sizeof(why));
        if (!route) {
            fprintf(stderr, "render_dump: VirtualService: %s\n", why);
        }
        rc |= dump(argv[1], "virtualservice-weights", route);
    }
    {
        /* header routing: header exact and regex, a cookie, and a mirror of everything */
        static const struct kn_route_match ms[] = {
            {.field = KN_ROUTE_HEADER, .name = "X-Canary", .value = "always"},
            {.field = KN_ROUTE_HEADER, .name = "x-user", .value = "^(alice|bob)$", .regex = 1},
            {.field = KN_ROUTE_COOKIE, .name = "canary", .value = "1"},
        };
        const double split[KN_VARIANT_COUNT] = {90, 10, 0};
        struct kn_routes r = {.matches = ms, .nmatches = 3, .mirror = 100};
        route = kn_kube_route_with_routes(hr, "web", split, &r, why, sizeof(why));
        if (!route) {
            fprintf(stderr, "render_dump: HTTPRoute with routes: %s\n", why);
        }
        rc |= dump(argv[1], "httproute-routes", route);
        r.mirror = 25;
        route = kn_kube_route_with_routes(vs, "web", split, &r, why, sizeof(why));
        if (!route) {
            fprintf(stderr, "render_dump: VirtualService with routes: %s\n", why);
        }
        rc |= dump(argv[1], "virtualservice-routes", route);
    }
    json_decref(d);
    json_decref(s);
    json_decref(np);
    json_decref(hr);
    json_decref(vs);
    if (!rc) {
        printf("render_dump: %d objects in %s\n", written, argv[1]);
    }
    return rc;
}
