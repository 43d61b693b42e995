/* Unit tests for controller/notify.c (signing, payloads, backoff, filters) and controller/feed.c
 * (the cursor on the audit log). */
#include "testutil.h"

#include "testsrv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "feed.h"
#include "kanaria/alloc.h"
#include "kanaria/http.h"
#include "notify.h"

/* The event's message points into a static buffer: one event at a time. */
static struct kn_event event(const char *type, const char *app, const char *message)
{
    static char text[2048];
    struct kn_event e;

    memset(&e, 0, sizeof(e));
    e.id = 42;
    e.at = 1795635601123LL;
    snprintf(e.type, sizeof(e.type), "%s", type);
    snprintf(e.repo, sizeof(e.repo), "deploy");
    snprintf(e.app, sizeof(e.app), "%s", app);
    e.deployment = app[0] ? 7 : 0;
    snprintf(e.actor, sizeof(e.actor), "kanaria");
    snprintf(text, sizeof(text), "%s", message);
    e.message = text;
    return e;
}

static void test_sign(void **state)
{
    char sig[KN_NOTIFY_SIGNATURE_SIZE];
    const char *body = "what do ya want for nothing?";

    (void)state;
    /* RFC 4231, test case 2 */
    kn_notify_sign("Jefe", 4, body, strlen(body), sig);
    assert_string_equal(sig,
                        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    kn_notify_sign("k", 1, "", 0, sig);
    assert_int_equal(strlen(sig), 7 + 64);
}

/* ---- delivery: the secret file is read at each delivery ------------------------------------ */

struct hook {
    uv_loop_t *loop;
    int hits;
    char sig[128];
    char body[512];
};

static void hook_handle(struct kn_testsrv_conn *c, const struct kn_testsrv_request *req, void *data)
{
    struct hook *h = data;
    char *sig = kn_testsrv_header(req->head, "X-Kanaria-Signature-256");

    h->hits++;
    snprintf(h->sig, sizeof(h->sig), "%s", sig);
    snprintf(h->body, sizeof(h->body), "%.*s", (int)req->body_len, req->body);
    free(sig);
    kn_testsrv_reply(c, 200, "", "", 0, 0);
    uv_stop(h->loop);
}

/* Run the loop until the hook has had `hits` requests, or 5 s. */
static void on_deadline(uv_timer_t *t)
{
    *(int *)t->data = 1;
    uv_stop(t->loop);
}

static void wait_hits(uv_loop_t *loop, struct hook *h, int hits)
{
    uv_timer_t deadline;
    int expired = 0;

    uv_timer_init(loop, &deadline);
    deadline.data = &expired;
    uv_timer_start(&deadline, on_deadline, 5000, 0);
    while (h->hits < hits && !expired) {
        uv_run(loop, UV_RUN_DEFAULT);
    }
    uv_close((uv_handle_t *)&deadline, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    assert_int_equal(h->hits, hits);
}

static void expect_signed(const struct hook *h, const char *secret)
{
    char want[KN_NOTIFY_SIGNATURE_SIZE];

    kn_notify_sign(secret, strlen(secret), h->body, strlen(h->body), want);
    assert_string_equal(h->sig, want);
}

static void test_secret_read_at_each_delivery(void **state)
{
    char *dir = kn_test_tmpdir();
    char *path = kn_asprintf("%s/secret", dir);
    char name[] = "ops";
    struct kn_notification_config nc = {
        .name = name, .type = KN_NOTIFY_WEBHOOK, .secret_file = path};
    struct kn_config cfg;
    struct kn_http_client *http;
    struct kn_notify *n;
    struct kn_testsrv srv;
    struct hook h = {0};
    uv_loop_t loop;
    struct kn_event e = event("SUCCEEDED", "hello", "done");

    (void)state;
    memset(&cfg, 0, sizeof(cfg));
    assert_int_equal(uv_loop_init(&loop), 0);
    h.loop = &loop;
    kn_testsrv_start(&srv, &loop, hook_handle, &h);
    nc.url = kn_asprintf("http://127.0.0.1:%d/hook", srv.port);
    cfg.notifications.items = &nc;
    cfg.notifications.count = 1;
    assert_int_equal(kn_http_client_new(&http, &loop), 0);
    kn_test_write(dir, "secret", "first\n");
    assert_int_equal(kn_notify_new(&n, &loop, http, &cfg), 0);

    kn_notify_event(&e, n);
    wait_hits(&loop, &h, 1);
    expect_signed(&h, "first");

    /* a rotated secret signs the next delivery, with no reload */
    kn_test_write(dir, "secret", "second\n");
    e.id++;
    kn_notify_event(&e, n);
    wait_hits(&loop, &h, 2);
    expect_signed(&h, "second");

    /* a file that cannot be read sends nothing (never unsigned); the retry after 1 s finds it
     * back */
    assert_int_equal(unlink(path), 0);
    e.id++;
    kn_notify_event(&e, n);
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(h.hits, 2);
    kn_test_write(dir, "secret", "third\n");
    wait_hits(&loop, &h, 3);
    expect_signed(&h, "third");

    kn_notify_close(n);
    kn_http_client_close(http);
    kn_testsrv_stop(&srv);
    while (uv_run(&loop, UV_RUN_DEFAULT) != 0) {
    }
    assert_int_equal(uv_loop_close(&loop), 0);
    kn_test_rmtree(dir);
    free(nc.url);
    free(path);
    free(dir);
}

static void test_payload_webhook(void **state)
{
    struct kn_event e = event("SUCCESS", "hello", "");
    char *body;

    (void)state;
    body = kn_notify_payload(KN_NOTIFY_WEBHOOK, &e);
    assert_string_equal(body, "{\"id\":42,\"type\":\"SUCCEEDED\",\"at\":1795635601123,"
                              "\"repo\":\"deploy\",\"app\":\"hello\",\"deployment\":7,"
                              "\"actor\":\"kanaria\",\"message\":\"\"}");
    free(body);
    e = event("STAGE_STARTED", "hello", "stage 0 \"SYNC\":\nRUNNING");
    body = kn_notify_payload(KN_NOTIFY_WEBHOOK, &e);
    assert_non_null(strstr(body, "\"message\":\"stage 0 \\\"SYNC\\\":\\nRUNNING\""));
    free(body);
}

static void test_payload_slack(void **state)
{
    struct kn_event e = event("FAILURE", "hello", "stage SYNC failed (rolled back)");
    char *body;

    (void)state;
    body = kn_notify_payload(KN_NOTIFY_SLACK, &e);
    assert_string_equal(body, "{\"text\":\"kanaria: hello ROLLED_BACK (deployment 7, repository "
                              "deploy, by kanaria): stage SYNC failed (rolled back)\"}");
    free(body);
    e = event("TRIGGERED", "", "");
    snprintf(e.actor, sizeof(e.actor), "webhook");
    body = kn_notify_payload(KN_NOTIFY_SLACK, &e);
    assert_string_equal(body,
                        "{\"text\":\"kanaria: deploy TRIGGERED (repository deploy, by webhook)\"}");
    free(body);
}

static void test_backoff(void **state)
{
    (void)state;
    assert_int_equal(kn_notify_backoff_ms(1), 0);
    assert_int_equal(kn_notify_backoff_ms(2), 1000);
    assert_int_equal(kn_notify_backoff_ms(3), 2000);
    assert_int_equal(kn_notify_backoff_ms(4), 4000);
    assert_int_equal(kn_notify_backoff_ms(5), 8000);
    assert_int_equal(kn_notify_backoff_ms(6), 16000);
    assert_int_equal(kn_notify_backoff_ms(7), 32000);
    assert_int_equal(kn_notify_backoff_ms(8), KN_NOTIFY_BACKOFF_MAX_MS);
    assert_int_equal(kn_notify_backoff_ms(1000), KN_NOTIFY_BACKOFF_MAX_MS);
}

static void test_event_names(void **state)
{
    struct kn_event e;
    const char *stored[] = {"SUCCESS", "FAILURE", "PLANNED", "DRIFT_DETECTED", "STAGE_LOG"};
    const char *named[] = {"SUCCEEDED", "FAILED", "PLANNED", "DRIFT_DETECTED", "STAGE_LOG"};

    (void)state;
    for (size_t i = 0; i < sizeof(stored) / sizeof(*stored); i++) {
        e = event(stored[i], "hello", "x");
        assert_string_equal(kn_notify_event_name(&e), named[i]);
    }
    e = event("FAILURE", "hello", "unhealthy (rolled back)");
    assert_string_equal(kn_notify_event_name(&e), "ROLLED_BACK");
    e = event("FAILURE", "hello", "unhealthy; rollback failed: timeout");
    assert_string_equal(kn_notify_event_name(&e), "FAILED");
}

/* Every name a notification may produce is one a filter may name. */
static void test_names_are_filterable(void **state)
{
    static const char *const produced[] = {
        "TRIGGERED",          "PLANNED",        "RUNNING",          "STAGE_STARTED",
        "STAGE_FINISHED",     "STAGE_LOG",      "WAITING_APPROVAL", "APPROVED",
        "REJECTED",           "ROLLING_BACK",   "SUCCEEDED",        "FAILED",
        "ROLLED_BACK",        "CANCELLED",      "SUPERSEDED",       "DRIFT_DETECTED",
        "DRIFT_RESOLVED",     "INVALID_APP",    "FORCE_PUSHED",     "CANCEL_REQUESTED",
        "ROLLBACK_REQUESTED", "SYNC_REQUESTED", "SKIP_REQUESTED",   "APP_ORPHANED",
        "APP_PRUNED",         "APP_RESTORED",   "PRUNE_REQUESTED",  "PRUNE_FAILED",
        "BREAK_GLASS",        "API_REFUSED"};

    (void)state;
    for (size_t i = 0; i < sizeof(produced) / sizeof(*produced); i++) {
        int found = 0;
        for (size_t j = 0; kn_event_names[j]; j++) {
            found |= strcmp(kn_event_names[j], produced[i]) == 0;
        }
        if (!found) {
            fail_msg("'%s' is not in kn_event_names", produced[i]);
        }
    }
}

static void test_matches(void **state)
{
    char ev1[] = "SUCCEEDED", ev2[] = "ROLLED_BACK", app[] = "hello";
    char *events[] = {ev1, ev2};
    char *apps[] = {app};
    struct kn_notification_config all = {0};
    struct kn_notification_config some = {
        .events = {.items = events, .count = 2},
        .apps = {.items = apps, .count = 1},
    };
    struct kn_event e;

    (void)state;
    e = event("PLANNED", "hello", "");
    assert_true(kn_notify_matches(&all, &e));
    assert_false(kn_notify_matches(&some, &e));
    e = event("STAGE_LOG", "hello", "a log line");
    assert_false(kn_notify_matches(&all, &e)); /* only when named */
    e = event("SUCCESS", "hello", "");
    assert_true(kn_notify_matches(&some, &e));
    e = event("SUCCESS", "world", "");
    assert_false(kn_notify_matches(&some, &e));
    e = event("FAILURE", "hello", "x (rolled back)");
    assert_true(kn_notify_matches(&some, &e));
    e = event("FAILURE", "hello", "x");
    assert_false(kn_notify_matches(&some, &e));
    some.events.count = 0;
    e = event("TRIGGERED", "", "");
    assert_true(kn_notify_matches(&all, &e));
    assert_false(kn_notify_matches(&some, &e)); /* no app: only for an empty apps list */
}

/* ---- the feed ---------------------------------------------------------------------------- */

struct seen {
    long long ids[16];
    int n;
};

static void collect(const struct kn_event *e, void *data)
{
    struct seen *s = data;

    if (s->n < 16) {
        s->ids[s->n++] = e->id;
    }
}

static void test_feed(void **state)
{
    char *dir = kn_test_tmpdir();
    char *path = kn_asprintf("%s/kanaria.db", dir);
    struct kn_store *st = NULL;
    struct kn_feed *f = NULL;
    struct kn_error err;
    struct seen a = {0}, b = {0};
    uv_loop_t loop;

    (void)state;
    kn_error_clear(&err);
    assert_int_equal(kn_store_open(&st, path, &err), 0);
    kn_store_event_add(st, "TRIGGERED", "deploy", "", 0, "webhook", "old", 1);
    kn_store_event_add(st, "TRIGGERED", "deploy", "", 0, "webhook", "old", 2);
    uv_loop_init(&loop);
    kn_feed_new(&f, &loop, st, 0);
    assert_int_equal(kn_feed_cursor(f), 2); /* what was there at start is not handed out */
    kn_feed_subscribe(f, collect, &a);
    kn_feed_subscribe(f, collect, &b);
    kn_feed_poll(f);
    assert_int_equal(a.n, 0);
    kn_store_event_add(st, "PLANNED", "deploy", "hello", 1, "kanaria", "new", 3);
    kn_store_event_add(st, "RUNNING", "deploy", "hello", 1, "kanaria", "", 4);
    kn_feed_poll(f);
    kn_feed_poll(f);
    assert_int_equal(a.n, 2);
    assert_int_equal(a.ids[0], 3);
    assert_int_equal(a.ids[1], 4);
    assert_int_equal(b.n, 2);
    assert_int_equal(kn_feed_cursor(f), 4);
    for (int i = 0; i < 250; i++) { /* more than one query's worth */
        kn_store_event_add(st, "STAGE_LOG", "deploy", "hello", 1, "kanaria", "line", 5 + i);
    }
    kn_feed_poll(f);
    assert_int_equal(kn_feed_cursor(f), 254);
    kn_feed_close(f);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    kn_store_close(st);
    kn_test_rmtree(dir);
    free(path);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sign),
        cmocka_unit_test(test_secret_read_at_each_delivery),
        cmocka_unit_test(test_payload_webhook),
        cmocka_unit_test(test_payload_slack),
        cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_event_names),
        cmocka_unit_test(test_names_are_filterable),
        cmocka_unit_test(test_matches),
        cmocka_unit_test(test_feed),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
