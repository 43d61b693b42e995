/* Unit tests for controller/notify.c (signing, payloads, backoff, filters) and controller/feed.c
 * (the cursor on the audit log). */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "feed.h"
#include "kanaria/alloc.h"
#include "notify.h"

static struct kn_event event(const char *type, const char *app, const char *message)
{
    struct kn_event e;

    memset(&e, 0, sizeof(e));
    e.id = 42;
    e.at = 1795635601123LL;
    snprintf(e.type, sizeof(e.type), "%s", type);
    snprintf(e.repo, sizeof(e.repo), "deploy");
    snprintf(e.app, sizeof(e.app), "%s", app);
    e.deployment = app[0] ? 7 : 0;
    snprintf(e.actor, sizeof(e.actor), "kanaria");
    snprintf(e.message, sizeof(e.message), "%s", message);
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

/* The secret is the whole first line: a NUL in it is refused, never a shorter secret. */
static void test_read_secret(void **state)
{
    char *dir = kn_test_tmpdir();
    char *path = kn_asprintf("%s/secret", dir);
    char why[256];
    char *secret = NULL;
    size_t len = 0;
    FILE *f;

    (void)state;
    f = fopen(path, "wb");
    assert_non_null(f);
    fputs("s3cret \nsecond line\n", f);
    fclose(f);
    assert_int_equal(kn_notify_read_secret(path, &secret, &len, why, sizeof(why)), 0);
    assert_string_equal(secret, "s3cret");
    assert_int_equal(len, 6);
    free(secret);
    secret = NULL;

    f = fopen(path, "wb");
    assert_non_null(f);
    fwrite("top\0secret\n", 1, 11, f);
    fclose(f);
    assert_int_equal(kn_notify_read_secret(path, &secret, &len, why, sizeof(why)), KN_EINVAL);
    assert_null(secret);
    assert_non_null(strstr(why, "NUL"));
    assert_null(strstr(why, "top"));

    f = fopen(path, "wb");
    assert_non_null(f);
    fclose(f);
    assert_int_equal(kn_notify_read_secret(path, &secret, &len, why, sizeof(why)), KN_EINVAL);
    assert_null(secret);
    kn_test_rmtree(dir);
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
        cmocka_unit_test(test_sign),          cmocka_unit_test(test_read_secret),
                  cmocka_unit_test(test_payload_webhook),
        cmocka_unit_test(test_payload_slack), cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_event_names),   cmocka_unit_test(test_names_are_filterable),
        cmocka_unit_test(test_matches),       cmocka_unit_test(test_feed),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
