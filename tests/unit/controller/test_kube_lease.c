/*
 * Leader election on a Lease (controller/platforms/kubernetes/lease.c), against an in-process
 * apiserver that keeps one Lease with optimistic locking (a POST of an existing name is 409
 * AlreadyExists, a PUT with a stale resourceVersion 409 Conflict), answers each request after a
 * few ms on the loop, and can refuse or swallow the requests of one instance (a fault, a frozen
 * process). It stands in for kube.h's client at its contract, so the election is tested alone.
 * Short durations keep it fast: lease 1.5 s (written as 2 s), renew deadline 1 s, retry 0.2 s.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kanaria/alloc.h"
#include "platforms/kubernetes/lease.h"

#define LATENCY_MS 5
#define RUN_BOUND_MS 15000
#define LEASE_PATH "/apis/coordination.k8s.io/v1/namespaces/kanaria/leases/kanaria"
#define LEASES_PATH "/apis/coordination.k8s.io/v1/namespaces/kanaria/leases"

/* ---- the apiserver ------------------------------------------------------------------------- */

struct server {
    json_t *lease; /* NULL: absent */
    long long rv;
    uv_loop_t *loop;
    uint64_t last_write_ms; /* uv_now of the last write */
    int conflicts;      /* 409s served */
    int already_exists; /* of them, on a POST */
    /* the holder each successful write replaced, and the one it wrote, in order */
    char log[64][2][64];
    size_t nlog;
};

enum fault { FAULT_NONE, FAULT_REFUSE, FAULT_HANG };

/* One instance's session. */
struct kn_kube {
    uv_loop_t *loop;
    struct server *srv;
    enum fault fault;
    struct kn_kube_call *calls; /* in flight */
};

struct kn_kube_call {
    struct kn_kube *k;
    uv_timer_t timer;
    char *method;
    char *path;
    json_t *body;
    kn_kube_cb cb;
    void *data;
    long long timeout_ms;
    int timed_out;
    struct kn_kube_call *next;
};

static const char *holder_of(const json_t *obj)
{
    const char *h = json_string_value(json_object_get(json_object_get(obj, "spec"),
                                                      "holderIdentity"));
    return h ? h : "";
}

static void call_closed(uv_handle_t *h)
{
    struct kn_kube_call *c = h->data;

    free(c->method);
    free(c->path);
    json_decref(c->body);
    free(c);
}

static void call_end(struct kn_kube_call *c, const struct kn_kube_result *r)
{
    struct kn_kube_call **at = &c->k->calls;

    while (*at != c) {
        at = &(*at)->next;
    }
    *at = c->next;
    uv_timer_stop(&c->timer);
    c->cb(r, c->data);
    uv_close((uv_handle_t *)&c->timer, call_closed);
}

static void store(struct server *srv, json_t *obj)
{
    char rv[32];
    json_t *meta = json_object_get(obj, "metadata");

    if (srv->nlog < 64) {
        snprintf(srv->log[srv->nlog][0], 64, "%s", srv->lease ? holder_of(srv->lease) : "-");
        snprintf(srv->log[srv->nlog][1], 64, "%s", holder_of(obj));
        srv->nlog++;
    }
    srv->last_write_ms = uv_now(srv->loop);
    snprintf(rv, sizeof(rv), "%lld", ++srv->rv);
    json_object_set_new(meta, "resourceVersion", json_string(rv));
    json_decref(srv->lease);
    srv->lease = json_deep_copy(obj);
}

/* Answer c as kube-apiserver would. */
static void serve_call(struct kn_kube_call *c)
{
    struct server *srv = c->k->srv;
    struct kn_kube_result r = {.attempts = 1};
    const char *rv = json_string_value(
        json_object_get(json_object_get(c->body, "metadata"), "resourceVersion"));
    char stored_rv[32];

    snprintf(stored_rv, sizeof(stored_rv), "%lld", srv->rv);
    if (strcmp(c->method, "GET") == 0) {
        assert_string_equal(c->path, LEASE_PATH);
        if (!srv->lease) {
            r.status = KN_ENOTFOUND;
            r.http_status = 404;
            r.reason = "NotFound";
            r.message = "leases.coordination.k8s.io \"kanaria\" not found";
        } else {
            r.http_status = 200;
            r.reply = srv->lease;
        }
    } else if (strcmp(c->method, "POST") == 0) {
        assert_string_equal(c->path, LEASES_PATH);
        assert_string_equal(json_string_value(json_object_get(c->body, "kind")), "Lease");
        if (srv->lease) {
            srv->conflicts++;
            srv->already_exists++;
            r.status = KN_EEXISTS;
            r.http_status = 409;
            r.reason = "AlreadyExists";
            r.message = "leases.coordination.k8s.io \"kanaria\" already exists";
        } else {
            store(srv, c->body);
            r.http_status = 201;
            r.reply = srv->lease;
        }
    } else {
        assert_string_equal(c->method, "PUT");
        assert_string_equal(c->path, LEASE_PATH);
        if (!srv->lease) {
            r.status = KN_ENOTFOUND;
            r.http_status = 404;
        } else if (!rv || strcmp(rv, stored_rv) != 0) {
            srv->conflicts++;
            r.status = KN_EIO;
            r.http_status = 409;
            r.reason = "Conflict";
            r.message = "Operation cannot be fulfilled on leases.coordination.k8s.io \"kanaria\": "
                        "the object has been modified; please apply your changes to the latest "
                        "version and try again";
        } else {
            store(srv, c->body);
            r.http_status = 200;
            r.reply = srv->lease;
        }
    }
    call_end(c, &r);
}

static void on_call_timer(uv_timer_t *t)
{
    struct kn_kube_call *c = t->data;
    struct kn_kube_result r = {.attempts = 1};

    if (c->timed_out) {
        r.status = KN_ETIMEDOUT;
        r.message = "timed out";
        call_end(c, &r);
    } else if (c->k->fault == FAULT_REFUSE) {
        r.status = KN_EIO;
        r.message = "connection refused (3 attempts)";
        call_end(c, &r);
    } else if (c->k->fault == FAULT_HANG) {
        c->timed_out = 1; /* no answer: the request's own timeout ends it */
        uv_timer_start(&c->timer, on_call_timer, (uint64_t)c->timeout_ms, 0);
    } else {
        serve_call(c);
    }
}

int kn_kube_request(struct kn_kube_call **out, struct kn_kube *k, const struct kn_kube_req *req,
                    kn_kube_cb cb, void *data)
{
    struct kn_kube_call *c;
    long long timeout = req->timeout_ms ? req->timeout_ms : 30000;

    if (!req->path) {
        return KN_EINVAL;
    }
    assert_true(timeout > 0);
    c = kn_calloc(1, sizeof(*c));
    c->k = k;
    c->method = kn_strdup(req->method ? req->method : "GET");
    c->path = kn_strdup(req->path);
    c->body = req->body ? json_deep_copy(req->body) : NULL;
    c->cb = cb;
    c->data = data;
    c->timeout_ms = timeout;
    c->next = k->calls;
    k->calls = c;
    uv_timer_init(k->loop, &c->timer);
    c->timer.data = c;
    if (k->fault == FAULT_HANG) {
        c->timed_out = 1;
        uv_timer_start(&c->timer, on_call_timer, (uint64_t)timeout, 0);
    } else {
        uv_timer_start(&c->timer, on_call_timer, LATENCY_MS, 0);
    }
    if (out) {
        *out = c;
    }
    return 0;
}

void kn_kube_cancel(struct kn_kube_call *c)
{
    struct kn_kube_result r = {.status = KN_ECANCELLED, .message = "cancelled"};

    if (c) {
        call_end(c, &r);
    }
}

const char *kn_kube_namespace(const struct kn_kube *k)
{
    (void)k;
    return "kanaria";
}

char *kn_kube_path(const struct kn_kube_gvr *r, const char *ns, const char *name)
{
    assert_string_equal(r->api_version, "coordination.k8s.io/v1");
    assert_string_equal(r->resource, "leases");
    return name ? kn_asprintf("/apis/%s/namespaces/%s/%s/%s", r->api_version, ns, r->resource,
                              name)
                : kn_asprintf("/apis/%s/namespaces/%s/%s", r->api_version, ns, r->resource);
}

/* ---- instances ----------------------------------------------------------------------------- */

struct instance {
    struct kn_kube kube;
    struct kn_kube_lease *lease;
    int leads;       /* cb(1) calls */
    int losses;      /* cb(0) calls */
    uint64_t led_at; /* uv_now of cb(1) */
    uint64_t lost_at;
    char why[512];
};

struct fixture {
    uv_loop_t loop;
    struct server srv;
    struct instance a, b;
    struct kn_kube_leader_config cfg;
    uv_timer_t bound;
    uv_timer_t poll;
    int (*until)(struct fixture *f);
    int timed_out;
};

static void on_lead(int leading, const char *why, void *data)
{
    struct instance *in = data;

    if (leading) {
        in->leads++;
        in->led_at = uv_now(in->kube.loop);
    } else {
        in->losses++;
        in->lost_at = uv_now(in->kube.loop);
        snprintf(in->why, sizeof(in->why), "%s", why ? why : "");
    }
}

static void start(struct fixture *f, struct instance *in)
{
    in->kube.loop = &f->loop;
    in->kube.srv = &f->srv;
    f->srv.loop = &f->loop;
    assert_int_equal(kn_kube_lease_start(&in->lease, &f->loop, &in->kube, &f->cfg, on_lead, in),
                     0);
    assert_int_equal(in->leads + in->losses, 0); /* never from inside the call */
}

static void stop_loop(uv_timer_t *t)
{
    struct fixture *f = t->data;

    f->timed_out = 1;
    uv_stop(&f->loop);
}

static void poll_until(uv_timer_t *t)
{
    struct fixture *f = t->data;

    if (f->until(f)) {
        uv_stop(&f->loop);
    }
}

/* Run the loop until until(f) holds, failing after RUN_BOUND_MS. */
static void run_until(struct fixture *f, int (*until)(struct fixture *f), const char *what)
{
    f->until = until;
    f->timed_out = 0;
    uv_timer_start(&f->bound, stop_loop, RUN_BOUND_MS, 0);
    uv_timer_start(&f->poll, poll_until, 1, 1);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    uv_timer_stop(&f->bound);
    uv_timer_stop(&f->poll);
    if (f->timed_out) {
        fail_msg("not within %d ms: %s", RUN_BOUND_MS, what);
    }
}

static uint64_t wait_until_ms;

static int time_passed(struct fixture *f)
{
    return uv_now(&f->loop) >= wait_until_ms;
}

/* Run the loop for ms. */
static void run_for(struct fixture *f, uint64_t ms)
{
    wait_until_ms = uv_now(&f->loop) + ms;
    run_until(f, time_passed, "time to pass");
}

static int one_leads(struct fixture *f)
{
    return f->a.leads + f->b.leads > 0;
}

static int b_leads(struct fixture *f)
{
    return f->b.leads > 0;
}

static int a_lost(struct fixture *f)
{
    return f->a.losses > 0;
}

static int idle(struct fixture *f)
{
    return !f->a.kube.calls && !f->b.kube.calls;
}

static int setup(void **state)
{
    struct fixture *f = kn_calloc(1, sizeof(*f));

    uv_loop_init(&f->loop);
    uv_timer_init(&f->loop, &f->bound);
    uv_timer_init(&f->loop, &f->poll);
    f->bound.data = f->poll.data = f;
    f->cfg.lease_duration_ms = 1500;
    f->cfg.renew_deadline_ms = 1000;
    f->cfg.retry_period_ms = 200;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    kn_kube_lease_free(f->a.lease);
    kn_kube_lease_free(f->b.lease);
    f->a.kube.fault = f->b.kube.fault = FAULT_NONE;
    run_until(f, idle, "the releases to end");
    uv_close((uv_handle_t *)&f->bound, NULL);
    uv_close((uv_handle_t *)&f->poll, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    json_decref(f->srv.lease);
    free(f);
    return 0;
}

static const json_t *spec(const struct fixture *f)
{
    return json_object_get(f->srv.lease, "spec");
}

static long long transitions(const struct fixture *f)
{
    return json_integer_value(json_object_get(spec(f), "leaseTransitions"));
}

/* "2006-01-02T15:04:05.000000Z" */
static void assert_micro_time(const char *t)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd.ddddddZ";

    assert_non_null(t);
    assert_int_equal(strlen(t), strlen(shape));
    for (size_t i = 0; shape[i]; i++) {
        if (shape[i] == 'd') {
            assert_true(t[i] >= '0' && t[i] <= '9');
        } else {
            assert_int_equal(t[i], shape[i]);
        }
    }
}

/* ---- cases --------------------------------------------------------------------------------- */

/* Two instances start at once: both find no Lease, both POST, one gets 409 AlreadyExists; exactly
 * one leads, and keeps leading while the other waits. */
static void test_race_one_leads(void **state)
{
    struct fixture *f = *state;
    struct instance *leader, *other;
    const char *id;

    start(f, &f->a);
    start(f, &f->b);
    run_until(f, one_leads, "one instance to lead");
    run_for(f, 3000); /* longer than the lease: renewals keep it */
    assert_int_equal(f->a.leads + f->b.leads, 1);
    assert_int_equal(f->a.losses + f->b.losses, 0);
    assert_int_equal(f->srv.already_exists, 1);
    leader = f->a.leads ? &f->a : &f->b;
    other = leader == &f->a ? &f->b : &f->a;
    id = kn_kube_lease_identity(leader->lease);
    assert_string_equal(holder_of(f->srv.lease), id);
    assert_string_not_equal(kn_kube_lease_identity(other->lease), id);
    assert_non_null(strchr(id, '_'));
    assert_int_equal(strlen(strrchr(id, '_') + 1), 8);
    /* created with no transition; lease 1.5 s written rounded up */
    assert_int_equal(transitions(f), 0);
    assert_int_equal(json_integer_value(json_object_get(spec(f), "leaseDurationSeconds")), 2);
    assert_micro_time(json_string_value(json_object_get(spec(f), "acquireTime")));
    assert_micro_time(json_string_value(json_object_get(spec(f), "renewTime")));
    /* renewed several times, never taken */
    assert_true(f->srv.nlog >= 5);
    for (size_t i = 1; i < f->srv.nlog; i++) {
        assert_string_equal(f->srv.log[i][0], id);
        assert_string_equal(f->srv.log[i][1], id);
    }
}

/* The leader's requests fail from now on (a fault): it gives up the lead after renewDeadline,
 * and the other takes the Lease only once it saw no change for leaseDurationSeconds. */
static void common_takeover(struct fixture *f, enum fault fault)
{
    uint64_t last_write;
    size_t writes;

    start(f, &f->a);
    run_until(f, one_leads, "a to lead");
    start(f, &f->b);
    run_for(f, 500);
    assert_int_equal(f->b.leads, 0);
    f->a.kube.fault = fault;
    writes = f->srv.nlog;
    last_write = f->srv.last_write_ms; /* a's last renew: no write of a's is answered now */
    run_until(f, b_leads, "b to take over");
    assert_int_equal(f->a.losses, 1);
    assert_non_null(strstr(f->a.why, "lost the lead of Lease kanaria/kanaria"));
    /* a stopped deploying before b started */
    assert_true(f->a.lost_at <= f->b.led_at);
    /* no write of a's reached the server after the fault; b waited the whole lease */
    assert_int_equal(f->srv.nlog, writes + 1);
    assert_true(f->b.led_at >= last_write + 2000);
    assert_string_equal(holder_of(f->srv.lease), kn_kube_lease_identity(f->b.lease));
    assert_int_equal(transitions(f), 1);
    assert_string_equal(f->srv.log[f->srv.nlog - 1][0], kn_kube_lease_identity(f->a.lease));
}

static void test_takeover_after_refused_renewals(void **state)
{
    common_takeover(*state, FAULT_REFUSE);
}

/* The leader's requests get no answer at all (a frozen process, a partition): its renew times
 * out within renewDeadline, never later. */
static void test_takeover_after_hung_renewals(void **state)
{
    struct fixture *f = *state;

    common_takeover(f, FAULT_HANG);
    assert_true(f->a.lost_at <= f->b.led_at);
}

/* Freeing the leader releases the Lease (holder emptied): the other takes it at its next try,
 * without waiting for the lease to expire. */
static void test_release_hands_over(void **state)
{
    struct fixture *f = *state;
    size_t i;

    start(f, &f->a);
    run_until(f, one_leads, "a to lead");
    start(f, &f->b);
    run_for(f, 500);
    kn_kube_lease_free(f->a.lease);
    f->a.lease = NULL;
    assert_int_equal(f->a.losses, 0); /* no callback after free */
    run_until(f, b_leads, "b to take over");
    /* the release, then b's takeover of the empty record */
    i = f->srv.nlog - 2;
    assert_string_equal(f->srv.log[i][1], "");
    assert_string_equal(f->srv.log[i + 1][0], "");
    assert_string_equal(f->srv.log[i + 1][1], kn_kube_lease_identity(f->b.lease));
    assert_int_equal(transitions(f), 1);
}

/* Someone else writes the Lease (a label, say): the leader's optimistic renew gets 409 Conflict,
 * reads the Lease again and renews it, still leading. */
static void test_conflict_on_renew_reads_again(void **state)
{
    struct fixture *f = *state;
    json_t *edited;

    start(f, &f->a);
    run_until(f, one_leads, "a to lead");
    edited = json_deep_copy(f->srv.lease);
    json_object_set_new(json_object_get(edited, "metadata"), "labels",
                        json_pack("{s:s}", "team", "platform"));
    store(&f->srv, edited);
    json_decref(edited);
    run_for(f, 1500);
    assert_int_equal(f->srv.conflicts, 1);
    assert_int_equal(f->a.losses, 0);
    assert_string_equal(holder_of(f->srv.lease), kn_kube_lease_identity(f->a.lease));
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(json_object_get(f->srv.lease, "metadata"), "labels"),
                            "team")),
                        "platform");
}

/* Another instance took the Lease behind the leader's back: the leader's renew gets 409, the
 * read shows the new holder, and it loses the lead at once. */
static void test_taken_lease_loses_lead(void **state)
{
    struct fixture *f = *state;
    json_t *taken;

    start(f, &f->a);
    run_until(f, one_leads, "a to lead");
    taken = json_deep_copy(f->srv.lease);
    json_object_set_new(json_object_get(taken, "spec"), "holderIdentity",
                        json_string("other_0000beef"));
    store(&f->srv, taken);
    json_decref(taken);
    run_until(f, a_lost, "a to lose the lead");
    assert_non_null(strstr(f->a.why, "held by other_0000beef"));
    assert_string_equal(holder_of(f->srv.lease), "other_0000beef");
}

/* A bad configuration is refused. */
static void test_bad_config(void **state)
{
    struct fixture *f = *state;
    struct kn_kube_lease *l = NULL;
    struct kn_kube_leader_config cfg = f->cfg;

    f->a.kube.loop = &f->loop;
    cfg.renew_deadline_ms = cfg.lease_duration_ms;
    assert_int_equal(kn_kube_lease_start(&l, &f->loop, &f->a.kube, &cfg, on_lead, &f->a),
                     KN_EINVAL);
    assert_null(l);
    kn_kube_lease_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_race_one_leads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_takeover_after_refused_renewals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_takeover_after_hung_renewals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_release_hands_over, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conflict_on_renew_reads_again, setup, teardown),
        cmocka_unit_test_setup_teardown(test_taken_lease_loses_lead, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_config, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
