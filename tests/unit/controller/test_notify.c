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
#include "kanaria/selfmetrics.h"
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
    assert_int_equal(kn_notify_new(&n, &loop, http, NULL, &cfg), 0);

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
    json_t *j;

    (void)state;
    body = kn_notify_payload(KN_NOTIFY_SLACK, &e);
    j = json_loads(body, 0, NULL);
    assert_non_null(j);
    /* the text fallback stays what it was */
    assert_string_equal(json_string_value(json_object_get(j, "text")),
                        "kanaria: hello ROLLED_BACK (deployment 7, repository deploy, by "
                        "kanaria): stage SYNC failed (rolled back)");
    assert_true(json_is_array(json_object_get(j, "blocks")));
    json_decref(j);
    free(body);
    e = event("TRIGGERED", "", "");
    snprintf(e.actor, sizeof(e.actor), "webhook");
    body = kn_notify_payload(KN_NOTIFY_SLACK, &e);
    j = json_loads(body, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(j, "text")),
                        "kanaria: deploy TRIGGERED (repository deploy, by webhook)");
    json_decref(j);
    free(body);
}

static void test_commit_url(void **state)
{
    static const char *const cases[][2] = {
        {"https://github.com/acme/web.git", "https://github.com/acme/web/commit/C"},
        {"https://github.com/acme/web", "https://github.com/acme/web/commit/C"},
        {"https://x-access-token:s3cr3t@github.com/acme/web.git/",
         "https://github.com/acme/web/commit/C"},
        {"git@github.com:acme/web.git", "https://github.com/acme/web/commit/C"},
        {"ssh://git@GitHub.com:22/acme/web.git", "https://github.com/acme/web/commit/C"},
        {"https://gitlab.com/group/sub/web.git", "https://gitlab.com/group/sub/web/-/commit/C"},
        {"git@gitlab.example.com:ops/web.git", "https://gitlab.example.com/ops/web/-/commit/C"},
        {"https://bitbucket.org/acme/web.git", "https://bitbucket.org/acme/web/commits/C"},
        {"git@codeberg.org:acme/web.git", "https://codeberg.org/acme/web/commit/C"},
        {"https://gitea.example.com/acme/web", "https://gitea.example.com/acme/web/commit/C"},
        {"https://git.example.com/acme/web.git", NULL},
        {"file:///srv/git/web", NULL},
        {"/srv/git/web", NULL},
        {"https://github.com/", NULL},
        {"https://github.com/acme", NULL},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *got = kn_notify_commit_url(cases[i][0], "C");
        if (cases[i][1] == NULL ? got != NULL : !got || strcmp(got, cases[i][1]) != 0) {
            fail_msg("%s: got %s, want %s", cases[i][0], got ? got : "NULL",
                     cases[i][1] ? cases[i][1] : "NULL");
        }
        free(got);
    }
    assert_null(kn_notify_commit_url("https://github.com/acme/web", ""));
}

#define SHA "0123456789abcdef0123456789abcdef01234567"

/* A deployment of hello at SHA, as the store returns it. */
static struct kn_deployment deployment(char *reason, char *message)
{
    struct kn_deployment d;

    memset(&d, 0, sizeof(d));
    d.id = 7;
    snprintf(d.repo, sizeof(d.repo), "deploy");
    snprintf(d.app, sizeof(d.app), "hello");
    snprintf(d.commit, sizeof(d.commit), SHA);
    snprintf(d.author, sizeof(d.author), "Ada <ada@example.com>");
    d.message = message;
    d.reason = reason;
    d.status = KN_DEPLOY_FAILURE;
    snprintf(d.trigger, sizeof(d.trigger), "commit");
    return d;
}

static const char *str(const json_t *j, const char *key)
{
    const char *s = json_string_value(json_object_get(j, key));

    if (!s) {
        fail_msg("no string '%s'", key);
    }
    return s;
}

/* Slack's documented Block Kit shape (api.slack.com/reference/block-kit/blocks): a message has
 * "text" (the notification fallback) and "blocks", at most 50; every block has a "type"; a
 * header's text is plain_text of at most 150 characters; a section has "text" or "fields" (at
 * most 10, each at most 2000 characters), its text at most 3000; text objects have "type"
 * plain_text or mrkdwn and "text"; a context has "elements"; an actions block's button has a
 * plain_text "text" and a "url". */
static void expect_text_object(const json_t *t, size_t max)
{
    assert_true(json_is_object(t));
    assert_true(strcmp(str(t, "type"), "plain_text") == 0 || strcmp(str(t, "type"), "mrkdwn") == 0);
    assert_true(strlen(str(t, "text")) > 0);
    assert_true(strlen(str(t, "text")) <= max);
}

static void expect_block_kit(const json_t *msg)
{
    const json_t *blocks = json_object_get(msg, "blocks");
    size_t i;
    json_t *b;

    assert_true(strlen(str(msg, "text")) > 0);
    assert_true(json_is_array(blocks));
    assert_true(json_array_size(blocks) >= 1 && json_array_size(blocks) <= 50);
    json_array_foreach(blocks, i, b) {
        const char *type = str(b, "type");
        if (strcmp(type, "header") == 0) {
            expect_text_object(json_object_get(b, "text"), 150);
            assert_string_equal(str(json_object_get(b, "text"), "type"), "plain_text");
        } else if (strcmp(type, "section") == 0) {
            const json_t *fields = json_object_get(b, "fields");
            size_t k;
            json_t *f;
            assert_true(json_object_get(b, "text") || fields);
            if (json_object_get(b, "text")) {
                expect_text_object(json_object_get(b, "text"), 3000);
            }
            assert_true(json_array_size(fields) <= 10);
            json_array_foreach(fields, k, f) {
                expect_text_object(f, 2000);
            }
        } else if (strcmp(type, "context") == 0) {
            assert_true(json_array_size(json_object_get(b, "elements")) >= 1);
        } else if (strcmp(type, "actions") == 0) {
            const json_t *btn = json_array_get(json_object_get(b, "elements"), 0);
            assert_string_equal(str(btn, "type"), "button");
            expect_text_object(json_object_get(btn, "text"), 75);
            assert_true(strlen(str(btn, "url")) > 0);
        } else {
            fail_msg("unexpected block type %s", type);
        }
    }
}

static void test_slack_block_kit(void **state)
{
    char reason[] = "analysis check 'errors': 0.12 > 0.05 (3 of 3 failed) (rolled back)";
    char message[] = "make <it> & go";
    struct kn_deployment d = deployment(reason, message);
    struct kn_event e = event("FAILURE", "hello", reason);
    json_t *view, *msg;
    char *dump;

    (void)state;
    view = kn_notify_view(&e, &d, "git@github.com:acme/deploy.git",
                          "https://kanaria.example.com/");
    assert_string_equal(str(view, "commitUrl"), "https://github.com/acme/deploy/commit/" SHA);
    assert_string_equal(str(view, "deploymentUrl"), "https://kanaria.example.com/#/deployments/7");
    assert_string_equal(str(view, "appUrl"), "https://kanaria.example.com/#/apps/deploy/hello");
    assert_string_equal(str(view, "shortCommit"), "0123456");
    msg = kn_notify_slack_message(view, str(view, "text"));
    expect_block_kit(msg);
    dump = json_dumps(msg, JSON_COMPACT);
    /* the app, the linked commit (its message escaped for mrkdwn), the reason with its
     * numbers, the link to the deployment in the web UI */
    assert_non_null(strstr(dump, "\"hello ROLLED_BACK\""));
    assert_non_null(strstr(dump, "*App*\\nhello"));
    assert_non_null(
        strstr(dump, "<https://github.com/acme/deploy/commit/" SHA "|0123456> make &lt;it&gt; &amp; go"));
    assert_non_null(strstr(dump, "0.12 > 0.05 (3 of 3 failed)") ||
                    strstr(dump, "0.12 &gt; 0.05 (3 of 3 failed)"));
    assert_non_null(strstr(dump, "<https://kanaria.example.com/#/deployments/7|7>"));
    assert_non_null(strstr(dump, "\"url\":\"https://kanaria.example.com/#/deployments/7\""));
    free(dump);
    json_decref(msg);
    json_decref(view);

    /* no externalUrl, no known forge: no links, no button */
    view = kn_notify_view(&e, &d, "https://git.example.com/acme/deploy.git", NULL);
    assert_null(json_object_get(view, "commitUrl"));
    assert_null(json_object_get(view, "deploymentUrl"));
    msg = kn_notify_slack_message(view, str(view, "text"));
    expect_block_kit(msg);
    dump = json_dumps(msg, JSON_COMPACT);
    assert_null(strstr(dump, "\"actions\""));
    assert_non_null(strstr(dump, "`0123456` make"));
    free(dump);
    json_decref(msg);
    json_decref(view);
}

/* Teams' documented shape for incoming webhooks and Workflows
 * (learn.microsoft.com, "Create Incoming Webhooks", "send Adaptive Cards"): {"type": "message",
 * "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": null,
 * "content": {"$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "type":
 * "AdaptiveCard", "version": "1.x", "body": [elements with a "type"]}}]}. */
static void test_teams_card(void **state)
{
    char reason[] = "stage SYNC failed: exit 3";
    char message[] = "v2";
    struct kn_deployment d = deployment(reason, message);
    struct kn_event e = event("FAILURE", "hello", reason);
    json_t *view, *msg, *att, *card, *b;
    char *body, why[200];
    size_t i;

    (void)state;
    view = kn_notify_view(&e, &d, "https://gitlab.com/acme/deploy.git", "https://k.example.com");
    assert_int_equal(kn_notify_body(&body, KN_NOTIFY_TEAMS, view, NULL, why, sizeof(why)), 0);
    msg = json_loads(body, 0, NULL);
    assert_non_null(msg);
    assert_string_equal(str(msg, "type"), "message");
    assert_int_equal(json_array_size(json_object_get(msg, "attachments")), 1);
    att = json_array_get(json_object_get(msg, "attachments"), 0);
    assert_string_equal(str(att, "contentType"), "application/vnd.microsoft.card.adaptive");
    assert_true(json_is_null(json_object_get(att, "contentUrl")));
    card = json_object_get(att, "content");
    assert_string_equal(str(card, "$schema"), "http://adaptivecards.io/schemas/adaptive-card.json");
    assert_string_equal(str(card, "type"), "AdaptiveCard");
    assert_string_equal(str(card, "version"), "1.4");
    assert_string_equal(str(card, "fallbackText"), str(view, "text"));
    assert_true(json_array_size(json_object_get(card, "body")) >= 1);
    json_array_foreach(json_object_get(card, "body"), i, b) {
        assert_true(strcmp(str(b, "type"), "TextBlock") == 0 ||
                    strcmp(str(b, "type"), "FactSet") == 0);
    }
    assert_string_equal(str(json_array_get(json_object_get(card, "actions"), 0), "type"),
                        "Action.OpenUrl");
    assert_string_equal(str(json_array_get(json_object_get(card, "actions"), 0), "url"),
                        "https://k.example.com/#/deployments/7");
    assert_non_null(strstr(body, "[0123456](https://gitlab.com/acme/deploy/-/commit/" SHA ")"));
    json_decref(msg);
    free(body);

    /* a template sets the text */
    assert_int_equal(kn_notify_body(&body, KN_NOTIFY_TEAMS, view, "{{app}} is {{type}}", why,
                                    sizeof(why)),
                     0);
    assert_non_null(strstr(body, "\"fallbackText\":\"hello is FAILED\""));
    free(body);
    json_decref(view);
}

/* PagerDuty Events API v2 (developer.pagerduty.com, "Send an Alert Event"): routing_key,
 * event_action trigger|resolve, dedup_key; a trigger has payload {summary (at most 1024),
 * source, severity (critical, error, warning or info)}, optional timestamp, component, group,
 * class, custom_details. */
static void test_pagerduty(void **state)
{
    char reason[] = "analysis check 'errors': 0.12 > 0.05 (rolled back)";
    char message[] = "v2";
    struct kn_deployment d = deployment(reason, message);
    struct kn_event e = event("FAILURE", "hello", reason);
    json_t *view, *msg, *payload;

    (void)state;
    assert_int_equal(kn_notify_pagerduty_action(&e), KN_NOTIFY_PD_TRIGGER);
    view = kn_notify_view(&e, &d, NULL, "https://k.example.com");
    msg = kn_notify_pagerduty_message(view, str(view, "text"), "R0UTING", KN_NOTIFY_PD_TRIGGER);
    assert_string_equal(str(msg, "routing_key"), "R0UTING");
    assert_string_equal(str(msg, "event_action"), "trigger");
    assert_string_equal(str(msg, "dedup_key"), "kanaria/deploy/hello");
    payload = json_object_get(msg, "payload");
    assert_string_equal(str(payload, "summary"), str(view, "text"));
    assert_string_equal(str(payload, "source"), "kanaria");
    assert_string_equal(str(payload, "severity"), "error");
    assert_string_equal(str(payload, "timestamp"), "2026-11-25T19:40:01Z");
    assert_string_equal(str(payload, "component"), "hello");
    assert_string_equal(str(payload, "class"), "ROLLED_BACK");
    assert_string_equal(str(json_object_get(payload, "custom_details"), "commit"), SHA);
    assert_string_equal(str(json_array_get(json_object_get(msg, "links"), 0), "href"),
                        "https://k.example.com/#/deployments/7");
    json_decref(msg);
    msg = kn_notify_pagerduty_message(view, "x", "R0UTING", KN_NOTIFY_PD_RESOLVE);
    assert_string_equal(str(msg, "event_action"), "resolve");
    assert_string_equal(str(msg, "dedup_key"), "kanaria/deploy/hello");
    assert_null(json_object_get(msg, "payload"));
    json_decref(msg);
    json_decref(view);

    e = event("SUCCESS", "hello", "");
    assert_int_equal(kn_notify_pagerduty_action(&e), KN_NOTIFY_PD_RESOLVE);
    e = event("RUNNING", "hello", "");
    assert_int_equal(kn_notify_pagerduty_action(&e), KN_NOTIFY_PD_NONE);
}

static void test_webhook_template(void **state)
{
    char reason[] = "said \"no\"\nthen left";
    char message[] = "v2";
    struct kn_deployment d = deployment(reason, message);
    struct kn_event e = event("FAILURE", "hello", reason);
    json_t *view, *j;
    char *body, why[200];

    (void)state;
    view = kn_notify_view(&e, &d, "https://github.com/acme/deploy", NULL);
    assert_int_equal(kn_notify_body(&body, KN_NOTIFY_WEBHOOK, view,
                                    "{\"summary\": \"{{app}}: {{reason}}\"{{#commitUrl}}, "
                                    "\"link\": \"{{commitUrl}}\"{{/commitUrl}}}",
                                    why, sizeof(why)),
                     0);
    j = json_loads(body, 0, NULL);
    assert_non_null(j);
    assert_string_equal(str(j, "summary"), "hello: said \"no\"\nthen left");
    assert_string_equal(str(j, "link"), "https://github.com/acme/deploy/commit/" SHA);
    json_decref(j);
    free(body);
    /* a template that does not give JSON fails with where */
    assert_int_equal(kn_notify_body(&body, KN_NOTIFY_WEBHOOK, view, "{\"a\": {{reason}}}", why,
                                    sizeof(why)),
                     KN_EINVAL);
    assert_null(body);
    assert_non_null(strstr(why, "not JSON"));
    /* without a template: the event's JSON, as before */
    assert_int_equal(kn_notify_body(&body, KN_NOTIFY_WEBHOOK, view, NULL, why, sizeof(why)), 0);
    assert_string_equal(body, "{\"id\":42,\"type\":\"FAILED\",\"at\":1795635601123,"
                              "\"repo\":\"deploy\",\"app\":\"hello\",\"deployment\":7,"
                              "\"actor\":\"kanaria\",\"message\":\"said \\\"no\\\"\\nthen left\"}");
    free(body);
    json_decref(view);
}

/* ---- delivery from the store: a Slack bot, a cursor across restarts ------------------------ */

struct bot {
    uv_loop_t *loop;
    int hits;
    char target[8][64];
    char auth[8][128];
    char delivery[8][32];
    char body[8][8192];
};

static void bot_handle(struct kn_testsrv_conn *c, const struct kn_testsrv_request *req, void *data)
{
    static const char ok[] = "{\"ok\":true,\"channel\":\"C0CHAN\",\"ts\":\"1700000000.000100\"}";
    struct bot *b = data;
    char *auth = kn_testsrv_header(req->head, "Authorization");
    char *delivery = kn_testsrv_header(req->head, "X-Kanaria-Delivery");

    if (b->hits < 8) {
        snprintf(b->target[b->hits], sizeof(b->target[0]), "%s", req->target);
        snprintf(b->auth[b->hits], sizeof(b->auth[0]), "%s", auth);
        snprintf(b->delivery[b->hits], sizeof(b->delivery[0]), "%s", delivery);
        snprintf(b->body[b->hits], sizeof(b->body[0]), "%.*s", (int)req->body_len, req->body);
    }
    b->hits++;
    free(auth);
    free(delivery);
    kn_testsrv_reply(c, 200, "Content-Type: application/json\r\n", ok, strlen(ok), 0);
    uv_stop(b->loop);
}

static void wait_bot(uv_loop_t *loop, struct bot *b, int hits)
{
    uv_timer_t deadline;
    int expired = 0;

    uv_timer_init(loop, &deadline);
    deadline.data = &expired;
    uv_timer_start(&deadline, on_deadline, 5000, 0);
    while (b->hits < hits && !expired) {
        uv_run(loop, UV_RUN_DEFAULT);
    }
    uv_close((uv_handle_t *)&deadline, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    assert_int_equal(b->hits, hits);
}

/* Run the loop for ms (to see that nothing more arrives). */
static void settle(uv_loop_t *loop, long ms)
{
    uv_timer_t t;
    int expired = 0;

    uv_timer_init(loop, &t);
    t.data = &expired;
    uv_timer_start(&t, on_deadline, (uint64_t)ms, 0);
    while (!expired) {
        uv_run(loop, UV_RUN_DEFAULT);
    }
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
}

static void test_slack_bot_updates_in_place(void **state)
{
    char *dir = kn_test_tmpdir();
    char *db = kn_asprintf("%s/kanaria.db", dir);
    char *token = kn_asprintf("%s/token", dir);
    char name[] = "chat", channel[] = "#deploys", rname[] = "deploy";
    char rurl[] = "git@github.com:acme/deploy.git", ext[] = "https://kanaria.example.com";
    struct kn_notification_config nc = {
        .name = name, .type = KN_NOTIFY_SLACK, .token_file = token, .channel = channel};
    struct kn_repo_config rc = {.name = rname, .url = rurl};
    struct kn_deployment_new dn = {
        .repo = "deploy", .app = "hello", .commit = SHA, .author = "Ada", .message = "v2"};
    struct kn_config cfg;
    struct kn_http_client *http;
    struct kn_notify *n;
    struct kn_store *st = NULL;
    struct kn_testsrv srv;
    struct kn_error err;
    struct bot b = {0};
    uv_loop_t loop;
    long long dep = 0, ev[4];
    json_t *j;

    (void)state;
    memset(&cfg, 0, sizeof(cfg));
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(kn_store_open(&st, db, &err), 0);
    assert_int_equal(kn_store_deployment_add(st, &dn, 1000, &dep), 0);
    b.loop = &loop;
    kn_testsrv_start(&srv, &loop, bot_handle, &b);
    nc.url = kn_asprintf("http://127.0.0.1:%d/api/", srv.port);
    cfg.notifications.items = &nc;
    cfg.notifications.count = 1;
    cfg.repositories.items = &rc;
    cfg.repositories.count = 1;
    cfg.external_url = ext;
    kn_test_write(dir, "token", "xoxb-test-token\n");
    assert_int_equal(kn_http_client_new(&http, &loop), 0);
    assert_int_equal(kn_notify_new(&n, &loop, http, st, &cfg), 0);
    settle(&loop, 100);
    assert_int_equal(b.hits, 0); /* what was there at the first start is not sent */

    /* the first event of the deployment is posted; the second updates that message */
    kn_store_event_add(st, "PLANNED", "deploy", "hello", dep, "kanaria", "1 change", 2000);
    kn_store_event_last_id(st, &ev[0]);
    kn_notify_event(NULL, n);
    wait_bot(&loop, &b, 1);
    assert_string_equal(b.target[0], "/api/chat.postMessage");
    assert_string_equal(b.auth[0], "Bearer xoxb-test-token");
    assert_int_equal(atoll(b.delivery[0]), ev[0]);
    j = json_loads(b.body[0], 0, NULL);
    assert_non_null(j);
    assert_string_equal(str(j, "channel"), "#deploys");
    assert_null(json_object_get(j, "ts"));
    expect_block_kit(j);
    assert_non_null(strstr(b.body[0], "https://github.com/acme/deploy/commit/" SHA));
    json_decref(j);

    kn_store_event_add(st, "SUCCESS", "deploy", "hello", dep, "kanaria", "done", 3000);
    kn_store_event_last_id(st, &ev[1]);
    kn_notify_event(NULL, n);
    wait_bot(&loop, &b, 2);
    assert_string_equal(b.target[1], "/api/chat.update");
    j = json_loads(b.body[1], 0, NULL);
    assert_string_equal(str(j, "channel"), "C0CHAN"); /* the channel id Slack answered */
    assert_string_equal(str(j, "ts"), "1700000000.000100");
    assert_non_null(strstr(str(j, "text"), "hello SUCCEEDED"));
    expect_block_kit(j);
    json_decref(j);
    assert_null(strstr(b.body[1], "xoxb")); /* the token is never in a message */

    /* stopped; an event written meanwhile goes out once after the restart, as an update, and
     * nothing delivered before goes out again */
    kn_notify_close(n);
    uv_run(&loop, UV_RUN_NOWAIT);
    kn_store_event_add(st, "DRIFT_DETECTED", "deploy", "hello", dep, "kanaria", "gone", 4000);
    kn_store_event_last_id(st, &ev[2]);
    assert_int_equal(kn_notify_new(&n, &loop, http, st, &cfg), 0);
    wait_bot(&loop, &b, 3);
    assert_string_equal(b.target[2], "/api/chat.update");
    assert_int_equal(atoll(b.delivery[2]), ev[2]);
    settle(&loop, 200);
    assert_int_equal(b.hits, 3);

    kn_notify_close(n);
    kn_http_client_close(http);
    kn_testsrv_stop(&srv);
    while (uv_run(&loop, UV_RUN_DEFAULT) != 0) {
    }
    assert_int_equal(uv_loop_close(&loop), 0);
    kn_store_close(st);
    kn_test_rmtree(dir);
    free(nc.url);
    free(token);
    free(db);
    free(dir);
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

/* A receiver that answers 500 while `failing`, else 200. */
struct flaky {
    uv_loop_t *loop;
    int hits;
    int failing;
};

static void flaky_handle(struct kn_testsrv_conn *c, const struct kn_testsrv_request *req,
                         void *data)
{
    struct flaky *f = data;

    (void)req;
    f->hits++;
    kn_testsrv_reply(c, f->failing ? 500 : 200, "", "", 0, 0);
}

/* Run the loop for ms. */
static void run_for(uv_loop_t *loop, long ms)
{
    uv_timer_t deadline;
    int expired = 0;

    uv_timer_init(loop, &deadline);
    deadline.data = &expired;
    uv_timer_start(&deadline, on_deadline, (uint64_t)ms, 0);
    while (!expired) {
        uv_run(loop, UV_RUN_DEFAULT);
    }
    uv_close((uv_handle_t *)&deadline, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
}

/* The value of a series in the process's /metrics text, -1 when absent. */
static double metric(const char *series)
{
    struct kn_buf out;
    double v = -1;
    char *at;

    kn_buf_init(&out, KN_BUF_UNBOUNDED);
    kn_selfmetrics_render(NULL, &out);
    if (out.data && (at = strstr(out.data, series)) != NULL) {
        v = strtod(at + strlen(series), NULL);
    }
    kn_buf_release(&out);
    return v;
}

/* An event is retried for retryFor (here 2 s: the first attempt, a retry after 1 s, then the
 * next retry, 2 s later, would come past it) and then given up; the next event goes out. The
 * deliveries are counted in kanaria_notification_deliveries_total by result. */
static void test_retry_for(void **state)
{
    char name[] = "flaky";
    struct kn_notification_config nc = {
        .name = name, .type = KN_NOTIFY_WEBHOOK, .retry_for_ms = 2000};
    struct kn_config cfg;
    struct kn_http_client *http;
    struct kn_notify *n;
    struct kn_testsrv srv;
    struct flaky f = {0};
    uv_loop_t loop;
    struct kn_event e = event("FAILED", "hello", "down");

    (void)state;
    memset(&cfg, 0, sizeof(cfg));
    assert_int_equal(uv_loop_init(&loop), 0);
    f.loop = &loop;
    f.failing = 1;
    kn_testsrv_start(&srv, &loop, flaky_handle, &f);
    nc.url = kn_asprintf("http://127.0.0.1:%d/hook", srv.port);
    cfg.notifications.items = &nc;
    cfg.notifications.count = 1;
    assert_int_equal(kn_http_client_new(&http, &loop), 0);
    assert_int_equal(kn_notify_new(&n, &loop, http, NULL, &cfg), 0);

    kn_notify_event(&e, n);
    run_for(&loop, 2600);
    assert_int_equal(f.hits, 2);
    assert_true(metric("kanaria_notification_deliveries_total{notification=\"flaky\","
                       "result=\"failed\"} ") == 1);
    assert_true(metric("kanaria_notification_deliveries_total{notification=\"flaky\","
                       "result=\"given_up\"} ") == 1);
    assert_true(metric("kanaria_notification_queue_depth{notification=\"flaky\"} ") == 0);

    f.failing = 0;
    e.id++;
    kn_notify_event(&e, n);
    run_for(&loop, 500);
    assert_int_equal(f.hits, 3);
    assert_true(metric("kanaria_notification_deliveries_total{notification=\"flaky\","
                       "result=\"sent\"} ") == 1);

    kn_notify_close(n);
    kn_http_client_close(http);
    kn_testsrv_stop(&srv);
    while (uv_run(&loop, UV_RUN_DEFAULT) != 0) {
    }
    assert_int_equal(uv_loop_close(&loop), 0);
    kn_selfmetrics_process_release();
    free(nc.url);
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
        cmocka_unit_test(test_commit_url),
        cmocka_unit_test(test_slack_block_kit),
        cmocka_unit_test(test_teams_card),
        cmocka_unit_test(test_pagerduty),
        cmocka_unit_test(test_webhook_template),
        cmocka_unit_test(test_slack_bot_updates_in_place),
        cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_retry_for),
        cmocka_unit_test(test_event_names),
        cmocka_unit_test(test_names_are_filterable),
        cmocka_unit_test(test_matches),
        cmocka_unit_test(test_feed),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
