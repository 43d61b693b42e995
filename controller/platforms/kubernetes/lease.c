/*
 * Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection package does
 * it (tryAcquireOrRenew), on one libuv timer:
 *
 *   - not leading: every retryPeriod (jitter factor 1.2, as client-go) GET the Lease; a 404
 *     creates it (POST) with this identity; a holder other than this one whose record changed
 *     less than its leaseDurationSeconds ago (by the local monotonic clock) is waited for;
 *     otherwise a PUT with the resourceVersion read takes it (acquireTime now, leaseTransitions
 *     + 1). A 409 on the POST or the PUT lost the race to another instance.
 *   - leading: every retryPeriod (jitter up to 1.2 x) a PUT of the Lease as last written
 *     (renewTime now); when it fails, a GET and the same decision as above. No successful renew
 *     for renewDeadline, or the Lease found in another holder's hands, loses the lead.
 */
#include "platforms/kubernetes/lease.h"

#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "kanaria/alloc.h"
#include "kanaria/log.h"

#define KN_LEASE_WHO "leader-election"
#define KN_LEASE_JITTER 1.2 /* client-go's JitterFactor */
#define KN_LEASE_RELEASE_MS 2000

struct kn_kube_lease {
    uv_loop_t *loop;
    struct kn_kube *k;
    char *ns;
    char *name;
    char *path;       /* the Lease's URL path */
    char *collection; /* the namespace's leases, for the POST */
    char *identity;
    long long duration_ms;
    long long renew_deadline_ms;
    long long retry_ms;
    kn_platform_lead_cb cb;
    void *data;
    uv_timer_t *timer;
    struct kn_kube_call *call; /* the request in flight, or NULL */
    json_t *object;            /* the Lease as this instance last wrote it (leading) */
    json_t *observed;          /* its spec as last seen to change */
    uint64_t observed_ms;      /* uv_now when that was */
    uint64_t renewed_ms;       /* uv_now of the last successful write (leading) */
    char *waited_for;          /* the holder last logged as waited for */
    char error[512];           /* why the last attempt failed */
    int leading;
    int over;     /* lost the lead: no more attempts, no more callbacks */
    int stopping; /* kn_kube_lease_free was called */
};

static void lease_get(struct kn_kube_lease *l);
static void on_timer(uv_timer_t *t);

/* ---- small helpers ------------------------------------------------------------------------- */

/* MicroTime, as the apiserver writes it: "2006-01-02T15:04:05.000000Z". */
static void micro_time(char *out, size_t size)
{
    struct timespec ts;
    struct tm tm;
    size_t n;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(out, size, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, size - n, ".%06dZ", (int)(ts.tv_nsec / 1000));
}

static double random_unit(void)
{
    uint32_t r = 0;

    if (RAND_bytes((unsigned char *)&r, sizeof(r)) != 1) {
        r = (uint32_t)rand();
    }
    return (double)r / 4294967296.0;
}

static char *make_identity(void)
{
    char host[256];
    unsigned char raw[4] = {0};

    if (gethostname(host, sizeof(host)) < 0 || !host[0]) {
        snprintf(host, sizeof(host), "kanaria");
    }
    host[sizeof(host) - 1] = '\0';
    if (RAND_bytes(raw, sizeof(raw)) != 1) {
        uint32_t r = (uint32_t)rand() ^ (uint32_t)getpid();
        memcpy(raw, &r, sizeof(raw));
    }
    return kn_asprintf("%s_%02x%02x%02x%02x", host, raw[0], raw[1], raw[2], raw[3]);
}

static const char *spec_holder(const json_t *spec)
{
    const char *h = json_string_value(json_object_get(spec, "holderIdentity"));
    return h ? h : "";
}

/* The record's leaseDurationSeconds in ms (0 when absent). */
static long long spec_duration_ms(const json_t *spec)
{
    return json_integer_value(json_object_get(spec, "leaseDurationSeconds")) * 1000;
}

/* Note the Lease's spec; a change restarts the time it stays valid for. */
static void observe(struct kn_kube_lease *l, const json_t *obj)
{
    json_t *spec = json_object_get(obj, "spec");

    if (!json_is_object(spec)) {
        spec = json_object();
    } else {
        json_incref(spec);
    }
    if (!l->observed || !json_equal(l->observed, spec)) {
        json_decref(l->observed);
        l->observed = json_deep_copy(spec);
        l->observed_ms = uv_now(l->loop);
    }
    json_decref(spec);
}

/* The next attempt in about retryPeriod: [1, 1 + factor) x retryPeriod. */
static void schedule(struct kn_kube_lease *l)
{
    double factor = l->leading ? KN_LEASE_JITTER - 1.0 : KN_LEASE_JITTER;
    uint64_t ms = (uint64_t)((double)l->retry_ms * (1.0 + factor * random_unit()));

    if (!l->over && !l->stopping) {
        uv_timer_start(l->timer, on_timer, ms, 0);
    }
}

static void lose(struct kn_kube_lease *l, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The lead is gone: say why once, and stop. */
static void lose(struct kn_kube_lease *l, const char *fmt, ...)
{
    char why[768];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    l->leading = 0;
    l->over = 1;
    uv_timer_stop(l->timer);
    kn_log_error(KN_LEASE_WHO, "%s", why);
    l->cb(0, why, l->data);
}

/* A failed attempt: a leader past its renew deadline has lost the lead. */
static void failed(struct kn_kube_lease *l)
{
    uint64_t now = uv_now(l->loop);

    if (l->leading && now >= l->renewed_ms + (uint64_t)l->renew_deadline_ms) {
        lose(l, "lost the lead of Lease %s/%s: not renewed within renewDeadline (%lld ms)%s%s",
             l->ns, l->name, l->renew_deadline_ms, l->error[0] ? ": " : "", l->error);
        return;
    }
    kn_log_debug(KN_LEASE_WHO, "Lease %s/%s: %s", l->ns, l->name, l->error);
    schedule(l);
}

static void note_error(struct kn_kube_lease *l, const char *what, const struct kn_kube_result *r)
{
    snprintf(l->error, sizeof(l->error), "%s: %s", what,
             r->message ? r->message : kn_strerror(r->status));
}

/* How long a request may take: a leader's must end before its renew deadline. */
static long long request_timeout(const struct kn_kube_lease *l)
{
    long long left;

    if (!l->leading) {
        return l->renew_deadline_ms;
    }
    left = (long long)(l->renewed_ms + (uint64_t)l->renew_deadline_ms) -
           (long long)uv_now(l->loop);
    return left > 1 ? left : 1;
}

/* ---- writes -------------------------------------------------------------------------------- */

static void lease_written(const struct kn_kube_result *r, void *data)
{
    struct kn_kube_lease *l = data;
    int was_leading = l->leading;

    l->call = NULL;
    if (l->stopping) {
        return;
    }
    if (r->status < 0 || !json_is_object(r->reply)) {
        /* a 409 (AlreadyExists on the POST, Conflict on the PUT): another instance wrote first */
        note_error(l, r->http_status == 409 ? "lost the race" : "write", r);
        if (was_leading) {
            /* read it again at once, as client-go does after a failed optimistic renew */
            json_decref(l->object);
            l->object = NULL;
            if (r->status != KN_ECANCELLED && uv_now(l->loop) < l->renewed_ms +
                                                                   (uint64_t)l->renew_deadline_ms) {
                lease_get(l);
                return;
            }
        }
        failed(l);
        return;
    }
    json_decref(l->object);
    l->object = json_deep_copy(r->reply);
    observe(l, r->reply);
    l->renewed_ms = uv_now(l->loop);
    l->error[0] = '\0';
    if (!was_leading) {
        l->leading = 1;
        free(l->waited_for);
        l->waited_for = NULL;
        kn_log_info(KN_LEASE_WHO, "leading: holding Lease %s/%s as %s", l->ns, l->name,
                    l->identity);
        l->cb(1, NULL, l->data);
        if (l->stopping || l->over) {
            return;
        }
    }
    schedule(l);
}

/* Fill obj's spec as this instance holding it from now; takeover: acquired now. */
static void set_holder(struct kn_kube_lease *l, json_t *obj)
{
    json_t *spec = json_object_get(obj, "spec");
    char now[40];
    int mine;

    if (!json_is_object(spec)) {
        spec = json_object();
        json_object_set_new(obj, "spec", spec);
    }
    mine = strcmp(spec_holder(spec), l->identity) == 0;
    micro_time(now, sizeof(now));
    if (!mine) {
        json_int_t transitions = json_integer_value(json_object_get(spec, "leaseTransitions"));
        json_object_set_new(spec, "acquireTime", json_string(now));
        json_object_set_new(spec, "leaseTransitions", json_integer(transitions + 1));
    }
    json_object_set_new(spec, "holderIdentity", json_string(l->identity));
    json_object_set_new(spec, "leaseDurationSeconds",
                        json_integer((json_int_t)((l->duration_ms + 999) / 1000)));
    json_object_set_new(spec, "renewTime", json_string(now));
}

static void lease_put(struct kn_kube_lease *l, json_t *obj, kn_kube_cb cb, long long timeout)
{
    struct kn_kube_req req = {
        .method = "PUT",
        .path = l->path,
        .content_type = "application/json",
        .body = obj,
        .timeout_ms = timeout,
    };

    if (kn_kube_request(&l->call, l->k, &req, cb, l) < 0) {
        l->call = NULL;
        snprintf(l->error, sizeof(l->error), "cannot send the PUT of %s", l->path);
        failed(l);
    }
}

static void lease_create(struct kn_kube_lease *l)
{
    json_t *obj = json_pack("{s:s, s:s, s:{s:s, s:s}, s:{}}", "apiVersion",
                            "coordination.k8s.io/v1", "kind", "Lease", "metadata", "name", l->name,
                            "namespace", l->ns, "spec");
    struct kn_kube_req req = {
        .method = "POST",
        .path = l->collection,
        .content_type = "application/json",
        .body = obj,
        .timeout_ms = request_timeout(l),
    };

    set_holder(l, obj);
    /* a new record starts with no transition, as client-go's */
    json_object_set_new(json_object_get(obj, "spec"), "leaseTransitions", json_integer(0));
    if (kn_kube_request(&l->call, l->k, &req, lease_written, l) < 0) {
        l->call = NULL;
        snprintf(l->error, sizeof(l->error), "cannot send the POST of %s", l->collection);
        failed(l);
    }
    json_decref(obj);
}

/* ---- reads --------------------------------------------------------------------------------- */

static void lease_read(const struct kn_kube_result *r, void *data)
{
    struct kn_kube_lease *l = data;
    const json_t *spec;
    const char *holder;
    json_t *obj;

    l->call = NULL;
    if (l->stopping) {
        return;
    }
    if (r->status == KN_ENOTFOUND) {
        json_decref(l->observed);
        l->observed = NULL;
        if (l->leading) {
            lose(l, "lost the lead of Lease %s/%s: it was deleted", l->ns, l->name);
            return;
        }
        lease_create(l);
        return;
    }
    if (r->status < 0 || !json_is_object(r->reply)) {
        note_error(l, "read", r);
        failed(l);
        return;
    }
    observe(l, r->reply);
    spec = l->observed;
    holder = spec_holder(spec);
    if (holder[0] && strcmp(holder, l->identity) != 0) {
        if (l->leading) {
            lose(l, "lost the lead of Lease %s/%s: it is held by %s now", l->ns, l->name,
                 holder);
            return;
        }
        if (uv_now(l->loop) < l->observed_ms + (uint64_t)spec_duration_ms(spec)) {
            if (!l->waited_for || strcmp(l->waited_for, holder) != 0) {
                free(l->waited_for);
                l->waited_for = kn_strdup(holder);
                kn_log_info(KN_LEASE_WHO, "waiting for the lead of Lease %s/%s (held by %s)",
                            l->ns, l->name, holder);
            }
            schedule(l);
            return;
        }
    }
    /* free, released, expired, or ours: take or renew it with the resourceVersion read */
    obj = json_deep_copy(r->reply);
    set_holder(l, obj);
    lease_put(l, obj, lease_written, request_timeout(l));
    json_decref(obj);
}

static void lease_get(struct kn_kube_lease *l)
{
    struct kn_kube_req req = {.method = "GET", .path = l->path, .timeout_ms = request_timeout(l)};

    if (kn_kube_request(&l->call, l->k, &req, lease_read, l) < 0) {
        l->call = NULL;
        snprintf(l->error, sizeof(l->error), "cannot send the GET of %s", l->path);
        failed(l);
    }
}

/* Leading: renew the Lease as last written (optimistic); else read it first. */
static void lease_attempt(struct kn_kube_lease *l)
{
    json_t *obj;

    if (l->over || l->stopping || l->call) {
        return;
    }
    if (l->leading && uv_now(l->loop) >= l->renewed_ms + (uint64_t)l->renew_deadline_ms) {
        failed(l);
        return;
    }
    if (!l->leading || !l->object) {
        lease_get(l);
        return;
    }
    obj = json_deep_copy(l->object);
    set_holder(l, obj);
    lease_put(l, obj, lease_written, request_timeout(l));
    json_decref(obj);
}

static void on_timer(uv_timer_t *t)
{
    lease_attempt(t->data);
}

/* ---- life ---------------------------------------------------------------------------------- */

int kn_kube_lease_start(struct kn_kube_lease **out, uv_loop_t *loop, struct kn_kube *k,
                        const struct kn_kube_leader_config *cfg, kn_platform_lead_cb cb,
                        void *data)
{
    struct kn_kube_lease *l;
    char api_version[] = "coordination.k8s.io/v1", kind[] = "Lease", resource[] = "leases";
    struct kn_kube_gvr leases = {
        .api_version = api_version,
        .kind = kind,
        .resource = resource,
        .namespaced = 1,
    };
    const char *ns;

    *out = NULL;
    if (!loop || !k || !cfg || !cb || cfg->retry_period_ms <= 0 ||
        cfg->renew_deadline_ms <= cfg->retry_period_ms ||
        cfg->lease_duration_ms <= cfg->renew_deadline_ms) {
        return KN_EINVAL;
    }
    ns = cfg->namespace_ ? cfg->namespace_ : kn_kube_namespace(k);
    l = kn_calloc(1, sizeof(*l));
    l->loop = loop;
    l->k = k;
    l->ns = kn_strdup(ns ? ns : "default");
    l->name = kn_strdup(cfg->lease ? cfg->lease : "kanaria");
    l->path = kn_kube_path(&leases, l->ns, l->name);
    l->collection = kn_kube_path(&leases, l->ns, NULL);
    l->identity = make_identity();
    l->duration_ms = cfg->lease_duration_ms;
    l->renew_deadline_ms = cfg->renew_deadline_ms;
    l->retry_ms = cfg->retry_period_ms;
    l->cb = cb;
    l->data = data;
    l->timer = kn_calloc(1, sizeof(*l->timer));
    uv_timer_init(loop, l->timer);
    l->timer->data = l;
    uv_timer_start(l->timer, on_timer, 0, 0);
    *out = l;
    return 0;
}

const char *kn_kube_lease_identity(const struct kn_kube_lease *l)
{
    return l->identity;
}

static void timer_closed(uv_handle_t *h)
{
    free(h);
}

static void lease_release_memory(struct kn_kube_lease *l)
{
    uv_close((uv_handle_t *)l->timer, timer_closed);
    json_decref(l->object);
    json_decref(l->observed);
    free(l->waited_for);
    free(l->identity);
    free(l->collection);
    free(l->path);
    free(l->name);
    free(l->ns);
    free(l);
}

static void lease_released(const struct kn_kube_result *r, void *data)
{
    struct kn_kube_lease *l = data;

    if (r->status < 0) {
        kn_log_warn(KN_LEASE_WHO, "could not release Lease %s/%s: %s", l->ns, l->name,
                    r->message ? r->message : kn_strerror(r->status));
    } else {
        kn_log_info(KN_LEASE_WHO, "released Lease %s/%s", l->ns, l->name);
    }
    lease_release_memory(l);
}

void kn_kube_lease_free(struct kn_kube_lease *l)
{
    json_t *obj, *spec;
    char now[40];
    struct kn_kube_req req = {.method = "PUT", .content_type = "application/json"};

    if (!l) {
        return;
    }
    l->stopping = 1;
    uv_timer_stop(l->timer);
    kn_kube_cancel(l->call); /* its callback sees stopping */
    l->call = NULL;
    if (!l->leading || l->over || !l->object) {
        lease_release_memory(l);
        return;
    }
    /* client-go's ReleaseOnCancel: no holder, a 1 s lease, the transitions kept */
    obj = json_deep_copy(l->object);
    spec = json_object_get(obj, "spec");
    micro_time(now, sizeof(now));
    json_object_set_new(spec, "holderIdentity", json_string(""));
    json_object_set_new(spec, "leaseDurationSeconds", json_integer(1));
    json_object_set_new(spec, "acquireTime", json_string(now));
    json_object_set_new(spec, "renewTime", json_string(now));
    req.path = l->path;
    req.body = obj;
    req.timeout_ms = KN_LEASE_RELEASE_MS;
    if (kn_kube_request(NULL, l->k, &req, lease_released, l) < 0) {
        lease_release_memory(l);
    }
    json_decref(obj);
}
