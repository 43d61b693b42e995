/*
 * Unit tests for controller/cloud/aws: awsQuery bodies, XML replies, error codes, and calls
 * against a scripted AWS endpoint on 127.0.0.1 (testsrv.h): wire shapes, retries, timeouts,
 * cancellation and the credential chain (environment, shared files, web identity through a
 * loopback STS, container endpoint, IMDSv2). Every message a call reports is checked for the
 * test's secret key and session token.
 */
#include "testutil.h"
#include "testsrv.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <uv.h>

#include "cloud/aws/aws.h"
#include "cloud/aws/aws_int.h"
#include "kanaria/alloc.h"
#include "kanaria/error.h"
#include "kanaria/http.h"

#define SECRET "kn-test-secret-7f3a9c0b"
#define TOKEN  "kn-test-token-51d0e2aa"
#define AKID   "AKIDTESTENV"

static const char *const aws_vars[] = {
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
    "AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "AWS_EC2_METADATA_DISABLED",
    "AWS_EC2_METADATA_SERVICE_ENDPOINT", "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE",
    "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_ECS", "AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING_V2",
    "AWS_ENDPOINT_URL_CLOUDWATCH", "AWS_ENDPOINT_URL_STS", "KANARIA_AWS_RETRY_BASE_MS", NULL};

/* ---- the scripted endpoint ---------------------------------------------------------------- */

struct answer {
    int status;
    const char *headers; /* extra lines, each ending in CRLF */
    const char *body;
    long delay_ms;
};

/* Requests matching method, a target prefix and (optionally) a body substring get the answers
 * in order; past the last, the last again. */
struct route {
    const char *method;
    const char *target;
    const char *body_has;
    struct answer answers[6];
    int n;
    int served;
};

struct seen {
    char *method;
    char *target;
    char *head;
    char *body;
    uint64_t at_ms;
};

#define MAX_ROUTES 6
#define MAX_SEEN   32
#define MAX_OWNED  16

struct fx {
    uv_loop_t loop;
    struct kn_testsrv srv;
    struct kn_http_client *http;
    struct kn_aws *aws;
    char *dir;
    char base[64];
    struct route routes[MAX_ROUTES];
    int nroutes;
    struct seen seen[MAX_SEEN];
    int nseen;
    int unmatched;
    char *owned[MAX_OWNED]; /* strings answers point to */
    int nowned;
};

static uv_loop_t *test_loop;

static void srv_handle(struct kn_testsrv_conn *c, const struct kn_testsrv_request *req,
                       void *data)
{
    struct fx *f = data;

    if (f->nseen < MAX_SEEN) {
        struct seen *s = &f->seen[f->nseen++];
        s->method = kn_strdup(req->method);
        s->target = kn_strdup(req->target);
        s->head = kn_strdup(req->head);
        s->body = kn_strndup(req->body, req->body_len);
        s->at_ms = uv_hrtime() / 1000000u;
    }
    for (int i = 0; i < f->nroutes; i++) {
        struct route *r = &f->routes[i];
        const struct answer *a;
        char *body = kn_strndup(req->body, req->body_len);
        int match = strcmp(req->method, r->method) == 0 &&
                    strncmp(req->target, r->target, strlen(r->target)) == 0 &&
                    (!r->body_has || strstr(body, r->body_has));
        free(body);
        if (!match) {
            continue;
        }
        a = &r->answers[r->served < r->n ? r->served : r->n - 1];
        r->served++;
        kn_testsrv_reply(c, a->status, a->headers ? a->headers : "", a->body ? a->body : "",
                         a->body ? strlen(a->body) : 0, a->delay_ms);
        return;
    }
    f->unmatched++;
    kn_testsrv_reply(c, 404, "", "", 0, 0);
}

static struct route *route(struct fx *f, const char *method, const char *target,
                           const char *body_has)
{
    struct route *r = &f->routes[f->nroutes++];

    assert_true(f->nroutes <= MAX_ROUTES);
    r->method = method;
    r->target = target;
    r->body_has = body_has;
    return r;
}

static void answer(struct route *r, int status, const char *headers, const char *body,
                   long delay_ms)
{
    assert_true(r->n < 6);
    r->answers[r->n++] = (struct answer){status, headers, body, delay_ms};
}

static const char *own(struct fx *f, char *s)
{
    assert_true(f->nowned < MAX_OWNED);
    f->owned[f->nowned++] = s;
    return s;
}

/* The header of the i-th request seen (caller frees; "" when absent). */
static char *seen_header(struct fx *f, int i, const char *name)
{
    assert_true(i < f->nseen);
    return kn_testsrv_header(f->seen[i].head, name);
}

static int count_header(const char *head, const char *name)
{
    size_t n = strlen(name);
    int count = 0;

    for (const char *p = strstr(head, "\r\n"); p; p = strstr(p + 2, "\r\n")) {
        if (strncasecmp(p + 2, name, n) == 0 && p[2 + n] == ':') {
            count++;
        }
    }
    return count;
}

/* ---- fixture ------------------------------------------------------------------------------ */

static void drain(uv_loop_t *loop)
{
    while (uv_run(loop, UV_RUN_DEFAULT) != 0) {
    }
}

static void env_reset(struct fx *f)
{
    char *home = kn_asprintf("%s/home", f->dir);

    for (int i = 0; aws_vars[i]; i++) {
        unsetenv(aws_vars[i]);
    }
    setenv("HOME", home, 1);
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    setenv("AWS_ENDPOINT_URL", f->base, 1);
    setenv("AWS_REGION", "us-east-1", 1);
    setenv("KANARIA_AWS_RETRY_BASE_MS", "1", 1);
    setenv("AWS_ACCESS_KEY_ID", AKID, 1);
    setenv("AWS_SECRET_ACCESS_KEY", SECRET, 1);
    setenv("AWS_SESSION_TOKEN", TOKEN, 1);
    free(home);
}

static int setup(void **state)
{
    struct fx *f = kn_calloc(1, sizeof(*f));

    assert_int_equal(uv_loop_init(&f->loop), 0);
    kn_testsrv_start(&f->srv, &f->loop, srv_handle, f);
    assert_int_equal(kn_http_client_new(&f->http, &f->loop), 0);
    snprintf(f->base, sizeof(f->base), "http://127.0.0.1:%d", f->srv.port);
    f->dir = kn_test_tmpdir();
    env_reset(f);
    test_loop = &f->loop;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    kn_aws_free(f->aws);
    kn_http_client_close(f->http);
    kn_testsrv_stop(&f->srv);
    drain(&f->loop);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    for (int i = 0; i < f->nseen; i++) {
        free(f->seen[i].method);
        free(f->seen[i].target);
        free(f->seen[i].head);
        free(f->seen[i].body);
    }
    for (int i = 0; i < f->nowned; i++) {
        free(f->owned[i]);
    }
    kn_test_rmtree(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

static void session(struct fx *f, const struct kn_aws_config *cfg)
{
    struct kn_error err = {0};

    assert_int_equal(kn_aws_new(&f->aws, &f->loop, f->http, cfg, &err), 0);
}

/* What one call's callback saw. */
struct got {
    int calls;
    int status;
    int http_status;
    int attempts;
    char *code;
    char *message;
    char *request_id;
    json_t *reply;
};

static void got_release(struct got *g)
{
    free(g->code);
    free(g->message);
    free(g->request_id);
    json_decref(g->reply);
    memset(g, 0, sizeof(*g));
}

static void on_result(const struct kn_aws_result *r, void *data)
{
    struct got *g = data;

    uv_stop(test_loop);
    g->calls++;
    g->status = r->status;
    g->http_status = r->http_status;
    g->attempts = r->attempts;
    g->code = r->code ? kn_strdup(r->code) : NULL;
    g->message = r->message ? kn_strdup(r->message) : NULL;
    g->request_id = r->request_id ? kn_strdup(r->request_id) : NULL;
    g->reply = r->reply ? json_deep_copy(r->reply) : NULL;
    assert_true((r->status == 0) == (r->message == NULL));
    assert_true((r->status == 0) == (r->reply != NULL));
    /* no secret in any message, ever */
    if (r->message) {
        assert_null(strstr(r->message, SECRET));
        assert_null(strstr(r->message, TOKEN));
        assert_null(strstr(r->message, "sts-secret"));
        assert_null(strstr(r->message, "container-secret"));
        assert_null(strstr(r->message, "file-secret"));
        assert_null(strstr(r->message, "imds-secret"));
    }
    if (r->code) {
        assert_null(strstr(r->code, SECRET));
    }
}

static void run_until(struct fx *f, const int *calls, int want)
{
    while (*calls < want) {
        uv_run(&f->loop, UV_RUN_DEFAULT);
    }
}

/* One call with params as JSON text ("" or NULL: none); waits for its callback. */
static void call(struct fx *f, enum kn_aws_service svc, const char *op, const char *params,
                 long long timeout_ms, struct got *g)
{
    json_t *p = params && *params ? json_loads(params, 0, NULL) : NULL;

    assert_true(!(params && *params) || p);
    assert_int_equal(kn_aws_call(NULL, f->aws, svc, op, p, timeout_ms, on_result, g), 0);
    json_decref(p);
    assert_int_equal(g->calls, 0); /* never from inside kn_aws_call */
    run_until(f, &g->calls, 1);
}

static void on_quiet(uv_timer_t *t)
{
    (void)t;
    uv_stop(test_loop);
}

/* Run the loop for ms (a wait with its own bound). */
static void run_for(struct fx *f, uint64_t ms)
{
    uv_timer_t t;

    uv_timer_init(&f->loop, &t);
    uv_timer_start(&t, on_quiet, ms, 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
}

/* The Credential=<id>/ of the i-th request's Authorization (caller frees). */
static char *seen_akid(struct fx *f, int i)
{
    char *auth = seen_header(f, i, "Authorization");
    const char *p = strstr(auth, "Credential=");
    char *id = p ? kn_strndup(p + 11, strcspn(p + 11, "/")) : kn_strdup("");

    free(auth);
    return id;
}

static const char ecs_ok[] = "{\"taskSets\":[],\"failures\":[]}";

static const char describe_rules_xml[] =
    "<DescribeRulesResponse xmlns=\"http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/\">\n"
    " <DescribeRulesResult><Rules>\n"
    "  <member><IsDefault>false</IsDefault>\n"
    "   <Conditions><member><Field>path-pattern</Field><Values><member>/api/*</member></Values>\n"
    "     <PathPatternConfig><Values><member>/api/*</member></Values></PathPatternConfig></member>"
    "</Conditions>\n"
    "   <Priority>10</Priority>\n"
    "   <Actions><member><Type>forward</Type><Order>1</Order><ForwardConfig>\n"
    "     <TargetGroups>\n"
    "      <member><TargetGroupArn>arn:aws:elasticloadbalancing:us-east-1:123456789012:"
    "targetgroup/web-blue/1111111111111111</TargetGroupArn><Weight>100</Weight></member>\n"
    "      <member><TargetGroupArn>arn:aws:elasticloadbalancing:us-east-1:123456789012:"
    "targetgroup/web-green/2222222222222222</TargetGroupArn><Weight>0</Weight></member>\n"
    "     </TargetGroups>\n"
    "     <TargetGroupStickinessConfig><Enabled>false</Enabled></TargetGroupStickinessConfig>\n"
    "   </ForwardConfig></member></Actions>\n"
    "   <RuleArn>arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/web/"
    "50dc6c495c0c9188/f2f7dc8efc522ab2/9683b2d02a6cabee</RuleArn></member>\n"
    "  <member><IsDefault>true</IsDefault><Conditions/><Priority>default</Priority>\n"
    "   <Actions><member><Type>forward</Type>\n"
    "     <TargetGroupArn>arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/"
    "web-blue/1111111111111111</TargetGroupArn>\n"
    "     <ForwardConfig><TargetGroups><member><TargetGroupArn>arn:aws:elasticloadbalancing:"
    "us-east-1:123456789012:targetgroup/web-blue/1111111111111111</TargetGroupArn><Weight>1"
    "</Weight></member></TargetGroups>\n"
    "     <TargetGroupStickinessConfig><Enabled>false</Enabled></TargetGroupStickinessConfig>"
    "</ForwardConfig></member></Actions>\n"
    "   <RuleArn>arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/web/"
    "50dc6c495c0c9188/f2f7dc8efc522ab2/0000000000000000</RuleArn></member>\n"
    " </Rules></DescribeRulesResult>\n"
    " <ResponseMetadata><RequestId>3f5b1e2a-0000-4000-8000-000000000001</RequestId>"
    "</ResponseMetadata>\n"
    "</DescribeRulesResponse>\n";

#define TG_BLUE  "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web-blue/1111111111111111"
#define TG_GREEN "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web-green/2222222222222222"
#define RULE     "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/web/50dc6c495c0c9188/f2f7dc8efc522ab2/9683b2d02a6cabee"
#define ENC_TG_BLUE  "arn%3Aaws%3Aelasticloadbalancing%3Aus-east-1%3A123456789012%3Atargetgroup%2Fweb-blue%2F1111111111111111"
#define ENC_TG_GREEN "arn%3Aaws%3Aelasticloadbalancing%3Aus-east-1%3A123456789012%3Atargetgroup%2Fweb-green%2F2222222222222222"
#define ENC_RULE     "arn%3Aaws%3Aelasticloadbalancing%3Aus-east-1%3A123456789012%3Alistener-rule%2Fapp%2Fweb%2F50dc6c495c0c9188%2Ff2f7dc8efc522ab2%2F9683b2d02a6cabee"

/* ---- pure pieces ---------------------------------------------------------------------------- */

static void test_query_modify_rule_as_botocore(void **state)
{
    json_t *p = json_pack(
        "{s:s, s:[{s:s, s:i, s:{s:[{s:s, s:i}, {s:s, s:i}]}}]}", "RuleArn", RULE, "Actions",
        "Type", "forward", "Order", 1, "ForwardConfig", "TargetGroups", "TargetGroupArn", TG_BLUE,
        "Weight", 80, "TargetGroupArn", TG_GREEN, "Weight", 20);
    char *body = kn_aws_query_encode("ModifyRule", "2015-12-01", p);

    (void)state;
    /* botocore 1.43.11's QuerySerializer, ecs.md §1.2 */
    assert_string_equal(
        body, "Action=ModifyRule&Version=2015-12-01&RuleArn=" ENC_RULE
              "&Actions.member.1.Type=forward&Actions.member.1.Order=1"
              "&Actions.member.1.ForwardConfig.TargetGroups.member.1.TargetGroupArn=" ENC_TG_BLUE
              "&Actions.member.1.ForwardConfig.TargetGroups.member.1.Weight=80"
              "&Actions.member.1.ForwardConfig.TargetGroups.member.2.TargetGroupArn=" ENC_TG_GREEN
              "&Actions.member.1.ForwardConfig.TargetGroups.member.2.Weight=20");
    free(body);
    json_decref(p);
}

static void test_query_values(void **state)
{
    json_t *p = json_pack("{s:b, s:b, s:f, s:f, s:f, s:I, s:[], s:n, s:{}, s:s, s:[[s]]}", "On",
                          1, "Off", 0, "Whole", 20.0, "Half", 0.5, "Tenth", 0.1, "Big",
                          (json_int_t)1234567890123LL, "Empty", "Gone", "Obj", "Text",
                          "a b/c:d~e_f.g-h&=+%\xc3\xa9", "Nested", "x");
    json_t *arr = json_array();
    char *body = kn_aws_query_encode("Act", "1", p);

    (void)state;
    assert_string_equal(body, "Action=Act&Version=1&On=true&Off=false&Whole=20&Half=0.5"
                              "&Tenth=0.1&Big=1234567890123&Empty="
                              "&Text=a%20b%2Fc%3Ad~e_f.g-h%26%3D%2B%25%C3%A9"
                              "&Nested.member.1.member.1=x");
    free(body);
    assert_null(kn_aws_query_encode("Act", "1", arr)); /* not an object */
    body = kn_aws_query_encode("Act", "1", NULL);
    assert_string_equal(body, "Action=Act&Version=1");
    free(body);
    json_decref(arr);
    json_decref(p);
}

static void test_xml_describe_rules(void **state)
{
    json_t *j = kn_aws_xml_to_json(describe_rules_xml, strlen(describe_rules_xml));
    json_t *rules, *r0, *r1, *tgs, *actions;
    char *body;

    (void)state;
    assert_non_null(j);
    rules = json_object_get(j, "Rules");
    assert_true(json_is_array(rules));
    assert_int_equal(json_array_size(rules), 2);
    r0 = json_array_get(rules, 0);
    r1 = json_array_get(rules, 1);
    assert_string_equal(json_string_value(json_object_get(r0, "IsDefault")), "false");
    assert_string_equal(json_string_value(json_object_get(r0, "Priority")), "10");
    assert_string_equal(json_string_value(json_object_get(r0, "RuleArn")), RULE);
    assert_string_equal(
        json_string_value(json_array_get(
            json_object_get(json_array_get(json_object_get(r0, "Conditions"), 0), "Values"), 0)),
        "/api/*");
    actions = json_object_get(r0, "Actions");
    tgs = json_object_get(json_object_get(json_array_get(actions, 0), "ForwardConfig"),
                          "TargetGroups");
    assert_int_equal(json_array_size(tgs), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(tgs, 0), "Weight")),
                        "100");
    assert_string_equal(json_string_value(json_object_get(json_array_get(tgs, 1), "Weight")),
                        "0");
    /* an empty element is "", which jansson's array functions read as an empty list */
    assert_string_equal(json_string_value(json_object_get(r1, "Conditions")), "");
    assert_int_equal(json_array_size(json_object_get(r1, "Conditions")), 0);
    assert_string_equal(json_string_value(json_object_get(r1, "Priority")), "default");
    /* a one-element list is still a list */
    assert_int_equal(json_array_size(json_object_get(
                         json_object_get(json_array_get(json_object_get(r1, "Actions"), 0),
                                         "ForwardConfig"),
                         "TargetGroups")),
                     1);
    assert_null(json_object_get(j, "ResponseMetadata"));

    /* what was read can be sent back: change a weight, encode, see it */
    json_object_set_new(json_array_get(tgs, 0), "Weight", json_string("80"));
    json_object_set_new(json_array_get(tgs, 1), "Weight", json_string("20"));
    {
        json_t *p = json_pack("{s:s, s:O}", "RuleArn", RULE, "Actions", actions);
        body = kn_aws_query_encode("ModifyRule", "2015-12-01", p);
        json_decref(p);
    }
    assert_non_null(strstr(
        body, "&Actions.member.1.ForwardConfig.TargetGroups.member.1.TargetGroupArn=" ENC_TG_BLUE
              "&Actions.member.1.ForwardConfig.TargetGroups.member.1.Weight=80"
              "&Actions.member.1.ForwardConfig.TargetGroups.member.2.TargetGroupArn=" ENC_TG_GREEN
              "&Actions.member.1.ForwardConfig.TargetGroups.member.2.Weight=20"
              "&Actions.member.1.ForwardConfig.TargetGroupStickinessConfig.Enabled=false"));
    free(body);
    json_decref(j);
}

static void check_error_frame(const char *xml, const char *code, const char *message)
{
    int is_error = 0;
    json_t *j = kn_aws__xml_parse(xml, strlen(xml), &is_error);

    assert_non_null(j);
    assert_int_equal(is_error, 1);
    assert_string_equal(json_string_value(json_object_get(j, "Code")), code);
    assert_string_equal(json_string_value(json_object_get(j, "Message")), message);
    json_decref(j);
}

static void test_xml_errors_and_refusals(void **state)
{
    static const char html[] = "<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 3.2 Final//EN\">\n"
                               "<title>500 Internal Server Error</title>\n<h1>Internal Server "
                               "Error</h1>";
    static const char entities[] =
        "<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b "
        "\"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\">]><XResponse><XResult><V>&b;</V></XResult>"
        "</XResponse>";
    static const char external[] =
        "<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>"
        "<XResponse><XResult><V>&x;</V></XResult></XResponse>";
    static const char empty_result[] =
        "<DeleteRuleResponse><DeleteRuleResult/><ResponseMetadata><RequestId>r</RequestId>"
        "</ResponseMetadata></DeleteRuleResponse>";
    int is_error = 0;
    json_t *j;

    (void)state;
    check_error_frame("<ErrorResponse xmlns=\"http://elasticloadbalancing.amazonaws.com/doc/"
                      "2015-12-01/\"><Error><Type>Sender</Type><Code>Throttling</Code><Message>"
                      "Rate exceeded</Message></Error><RequestId>r1</RequestId></ErrorResponse>",
                      "Throttling", "Rate exceeded");
    check_error_frame("<ErrorResponse><Errors><Error><Code>SignatureDoesNotMatch</Code><Message>"
                      "The request signature we calculated does not match</Message></Error>"
                      "</Errors></ErrorResponse>",
                      "SignatureDoesNotMatch", "The request signature we calculated does not match");
    check_error_frame("<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request "
                      "limit exceeded.</Message></Error></Errors><RequestID>x</RequestID>"
                      "</Response>",
                      "RequestLimitExceeded", "Request limit exceeded.");
    assert_null(kn_aws_xml_to_json(html, strlen(html)));
    assert_null(kn_aws_xml_to_json("{\"a\":1}", 7));
    assert_null(kn_aws_xml_to_json("<Other><A>1</A></Other>", 23));
    assert_null(kn_aws_xml_to_json("", 0));
    assert_null(kn_aws_xml_to_json(entities, strlen(entities))); /* no DTD at all */
    assert_null(kn_aws_xml_to_json(external, strlen(external)));
    j = kn_aws__xml_parse(empty_result, strlen(empty_result), &is_error);
    assert_non_null(j);
    assert_int_equal(is_error, 0);
    assert_true(json_is_object(j)); /* an empty <OpResult/> */
    assert_int_equal(json_object_size(j), 0);
    json_decref(j);
}

static void test_error_code(void **state)
{
    char out[64];

    (void)state;
    kn_aws_error_code("com.amazonaws.ecs#ServiceNotActiveException:http://internal.amazon.com/"
                      "coral/com.amazonaws.ecs/",
                      out, sizeof(out));
    assert_string_equal(out, "ServiceNotActiveException");
    kn_aws_error_code("ThrottlingException", out, sizeof(out));
    assert_string_equal(out, "ThrottlingException");
    kn_aws_error_code("aws.protocoltests#Deep#ClientException", out, sizeof(out));
    assert_string_equal(out, "ClientException");
    kn_aws_error_code("ClusterNotFoundException:http://x", out, sizeof(out));
    assert_string_equal(out, "ClusterNotFoundException");
    kn_aws_error_code(NULL, out, sizeof(out));
    assert_string_equal(out, "");
    kn_aws_error_code("VeryLongExceptionName", out, 5);
    assert_string_equal(out, "Very");
}

static void test_parse_time(void **state)
{
    (void)state;
    assert_true(kn_aws__parse_time("1970-01-01T00:00:00Z") == 0);
    assert_true(kn_aws__parse_time("2026-12-06T15:04:05Z") == 1796569445LL);
    assert_true(kn_aws__parse_time("2026-12-06T15:04:05.123Z") == 1796569445LL);
    assert_true(kn_aws__parse_time("2026-12-06T16:04:05+01:00") == 1796569445LL);
    assert_true(kn_aws__parse_time("2026-12-06") == -1);
    assert_true(kn_aws__parse_time("2026-12-06T15:04:05Zjunk") == -1);
    assert_true(kn_aws__parse_time(NULL) == -1);
}

/* ---- the session --------------------------------------------------------------------------- */

static void test_endpoints_and_region(void **state)
{
    struct fx *f = *state;
    char ep1[] = "http://127.0.0.1:1/", cn[] = "cn-north-1", bad_region[] = "us-east-1:x";
    char region[] = "us-east-1", ftp[] = "ftp://x";
    struct kn_aws_config cfg = {.endpoint_url = ep1};
    struct kn_error err = {0};
    struct kn_aws *a = NULL;

    setenv("AWS_ENDPOINT_URL_ECS", "http://127.0.0.1:2/", 1);
    session(f, &cfg);
    assert_string_equal(kn_aws_region(f->aws), "us-east-1");
    assert_string_equal(kn_aws_endpoint(f->aws, KN_AWS_ECS), "http://127.0.0.1:2");
    assert_string_equal(kn_aws_endpoint(f->aws, KN_AWS_ELBV2), f->base);
    kn_aws_free(f->aws);
    f->aws = NULL;

    unsetenv("AWS_ENDPOINT_URL");
    session(f, &cfg);
    assert_string_equal(kn_aws_endpoint(f->aws, KN_AWS_CLOUDWATCH), "http://127.0.0.1:1");
    kn_aws_free(f->aws);
    f->aws = NULL;

    unsetenv("AWS_ENDPOINT_URL_ECS");
    setenv("AWS_DEFAULT_REGION", "eu-west-3", 1);
    unsetenv("AWS_REGION");
    session(f, NULL);
    assert_string_equal(kn_aws_region(f->aws), "eu-west-3");
    assert_string_equal(kn_aws_endpoint(f->aws, KN_AWS_ECS), "https://ecs.eu-west-3.amazonaws.com");
    assert_string_equal(kn_aws_endpoint(f->aws, KN_AWS_ELBV2),
                        "https://elasticloadbalancing.eu-west-3.amazonaws.com");
    assert_string_equal(kn_aws_endpoint(f->aws, KN_AWS_CLOUDWATCH),
                        "https://monitoring.eu-west-3.amazonaws.com");
    assert_string_equal(kn_aws_endpoint(f->aws, KN_AWS_STS),
                        "https://sts.eu-west-3.amazonaws.com");
    kn_aws_free(f->aws);
    f->aws = NULL;

    cfg = (struct kn_aws_config){.region = cn};
    session(f, &cfg);
    assert_string_equal(kn_aws_endpoint(f->aws, KN_AWS_ECS),
                        "https://ecs.cn-north-1.amazonaws.com.cn");
    kn_aws_free(f->aws);
    f->aws = NULL;

    /* the profile's region in the config file */
    unsetenv("AWS_DEFAULT_REGION");
    kn_test_write(f->dir, "home/.aws/config", "[default]\nregion = ap-south-1\n[profile dev]\n"
                                               "region = sa-east-1\n");
    session(f, NULL);
    assert_string_equal(kn_aws_region(f->aws), "ap-south-1");
    kn_aws_free(f->aws);
    f->aws = NULL;
    setenv("AWS_PROFILE", "dev", 1);
    session(f, NULL);
    assert_string_equal(kn_aws_region(f->aws), "sa-east-1");
    kn_aws_free(f->aws);
    f->aws = NULL;

    /* none: where it looked */
    setenv("AWS_PROFILE", "nothere", 1);
    assert_int_equal(kn_aws_new(&a, &f->loop, f->http, NULL, &err), KN_EINVAL);
    assert_null(a);
    assert_non_null(strstr(err.msg, "no region"));
    assert_non_null(strstr(err.msg, "AWS_REGION"));
    assert_non_null(strstr(err.msg, "profile 'nothere'"));
    assert_non_null(strstr(err.msg, "/home/.aws/config"));

    /* bad names */
    cfg = (struct kn_aws_config){.region = bad_region};
    assert_int_equal(kn_aws_new(&a, &f->loop, f->http, &cfg, &err), KN_EINVAL);
    assert_non_null(strstr(err.msg, "region 'us-east-1:x'"));
    cfg = (struct kn_aws_config){.region = region, .endpoint_url = ftp};
    assert_int_equal(kn_aws_new(&a, &f->loop, f->http, &cfg, &err), KN_EINVAL);
    assert_non_null(strstr(err.msg, "endpointUrl 'ftp://x'"));
}

static void never(const struct kn_aws_result *r, void *data)
{
    (void)r;
    (void)data;
    fail_msg("a refused call called back");
}

static void test_call_refuses_bad_input(void **state)
{
    struct fx *f = *state;
    json_t *arr = json_array();

    session(f, NULL);
    assert_int_equal(kn_aws_call(NULL, f->aws, KN_AWS_ECS, "Bad Op", NULL, 0, never, NULL),
                     KN_EINVAL);
    assert_int_equal(kn_aws_call(NULL, f->aws, KN_AWS_ECS, "", NULL, 0, never, NULL), KN_EINVAL);
    assert_int_equal(kn_aws_call(NULL, f->aws, KN_AWS_ECS, "X", arr, 0, never, NULL), KN_EINVAL);
    assert_int_equal(kn_aws_call(NULL, f->aws, KN_AWS_SERVICE_COUNT, "X", NULL, 0, never, NULL),
                     KN_EINVAL);
    assert_int_equal(kn_aws_call(NULL, f->aws, KN_AWS_ECS, "X", NULL, -1, never, NULL),
                     KN_EINVAL);
    assert_int_equal(kn_aws_call(NULL, f->aws, KN_AWS_ECS, "X", NULL, 0, NULL, NULL), KN_EINVAL);
    run_for(f, 50);
    assert_int_equal(f->nseen, 0);
    json_decref(arr);
}

/* ---- wire shapes ---------------------------------------------------------------------------- */

static void test_ecs_json_call(void **state)
{
    struct fx *f = *state;
    struct got g = {0};
    char *h;

    answer(route(f, "POST", "/", NULL), 200,
           "Content-Type: application/x-amz-json-1.1\r\nx-amzn-RequestId: req-1\r\n", ecs_ok, 0);
    session(f, NULL);
    call(f, KN_AWS_ECS, "DescribeTaskSets", "{\"cluster\":\"c1\",\"service\":\"s1\"}", 0, &g);
    assert_int_equal(g.status, 0);
    assert_int_equal(g.attempts, 1);
    assert_int_equal(g.http_status, 200);
    assert_string_equal(g.request_id, "req-1");
    assert_int_equal(json_array_size(json_object_get(g.reply, "taskSets")), 0);
    assert_true(json_is_array(json_object_get(g.reply, "failures")));

    assert_int_equal(f->nseen, 1);
    assert_string_equal(f->seen[0].method, "POST");
    assert_string_equal(f->seen[0].target, "/");
    assert_string_equal(f->seen[0].body, "{\"cluster\":\"c1\",\"service\":\"s1\"}");
    h = seen_header(f, 0, "Content-Type");
    assert_string_equal(h, "application/x-amz-json-1.1");
    free(h);
    h = seen_header(f, 0, "X-Amz-Target");
    assert_string_equal(h, "AmazonEC2ContainerServiceV20141113.DescribeTaskSets");
    free(h);
    h = seen_header(f, 0, "X-Amz-Security-Token");
    assert_string_equal(h, TOKEN);
    free(h);
    h = seen_header(f, 0, "Authorization");
    assert_non_null(strstr(h, "AWS4-HMAC-SHA256 Credential=" AKID "/"));
    assert_non_null(strstr(h, "/us-east-1/ecs/aws4_request"));
    assert_non_null(strstr(h, "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;"
                              "x-amz-target"));
    assert_null(strstr(h, SECRET));
    free(h);
    /* libcurl 7.88's pitfalls: no Expect, one X-Amz-Date */
    assert_int_equal(count_header(f->seen[0].head, "Expect"), 0);
    assert_int_equal(count_header(f->seen[0].head, "X-Amz-Date"), 1);
    got_release(&g);

    /* no parameters: {} */
    call(f, KN_AWS_ECS, "ListClusters", NULL, 0, &g);
    assert_int_equal(g.status, 0);
    assert_string_equal(f->seen[1].body, "{}");
    got_release(&g);

    /* without a session token, no token header at all (not an empty one) */
    unsetenv("AWS_SESSION_TOKEN");
    kn_aws_free(f->aws);
    session(f, NULL);
    call(f, KN_AWS_ECS, "ListClusters", NULL, 0, &g);
    assert_int_equal(g.status, 0);
    assert_int_equal(count_header(f->seen[2].head, "X-Amz-Security-Token"), 0);
    h = seen_header(f, 2, "Authorization");
    assert_non_null(strstr(h, "SignedHeaders=content-type;host;x-amz-date;x-amz-target,"));
    free(h);
    got_release(&g);
    setenv("AWS_SESSION_TOKEN", "", 1); /* set but empty: the same */
    kn_aws_free(f->aws);
    session(f, NULL);
    call(f, KN_AWS_ECS, "ListClusters", NULL, 0, &g);
    assert_int_equal(g.status, 0);
    assert_int_equal(count_header(f->seen[3].head, "X-Amz-Security-Token"), 0);
    got_release(&g);
}

static void test_elbv2_query_call(void **state)
{
    struct fx *f = *state;
    struct got g = {0};
    char *h;

    answer(route(f, "POST", "/", NULL), 200, "Content-Type: text/xml\r\n", describe_rules_xml, 0);
    session(f, NULL);
    call(f, KN_AWS_ELBV2, "DescribeRules", "{\"ListenerArn\":\"arn:aws:l/1\",\"PageSize\":400}", 0,
         &g);
    assert_int_equal(g.status, 0);
    assert_string_equal(f->seen[0].body, "Action=DescribeRules&Version=2015-12-01&ListenerArn="
                                         "arn%3Aaws%3Al%2F1&PageSize=400");
    h = seen_header(f, 0, "Content-Type");
    assert_string_equal(h, "application/x-www-form-urlencoded; charset=utf-8");
    free(h);
    h = seen_header(f, 0, "Authorization");
    assert_non_null(strstr(h, "/us-east-1/elasticloadbalancing/aws4_request"));
    free(h);
    assert_int_equal(count_header(f->seen[0].head, "X-Amz-Target"), 0);
    assert_int_equal(json_array_size(json_object_get(g.reply, "Rules")), 2);
    assert_null(json_object_get(g.reply, "NextMarker"));
    got_release(&g);
}

static void test_cloudwatch_json10_call(void **state)
{
    struct fx *f = *state;
    struct got g = {0};
    char *h;

    answer(route(f, "POST", "/", NULL), 200, "Content-Type: application/x-amz-json-1.0\r\n",
           "{\"MetricDataResults\":[]}", 0);
    session(f, NULL);
    call(f, KN_AWS_CLOUDWATCH, "GetMetricData", "{\"MetricDataQueries\":[]}", 0, &g);
    assert_int_equal(g.status, 0);
    h = seen_header(f, 0, "X-Amz-Target");
    assert_string_equal(h, "GraniteServiceVersion20100801.GetMetricData");
    free(h);
    h = seen_header(f, 0, "Content-Type");
    assert_string_equal(h, "application/x-amz-json-1.0");
    free(h);
    h = seen_header(f, 0, "Authorization");
    assert_non_null(strstr(h, "/us-east-1/monitoring/aws4_request"));
    free(h);
    got_release(&g);
}

/* ---- errors and retries ---------------------------------------------------------------------- */

static const char throttle_json[] = "{\"__type\":\"ThrottlingException\",\"message\":\"Rate "
                                    "exceeded\"}";

static void test_throttled_twice_then_ok(void **state)
{
    struct fx *f = *state;
    struct route *r = route(f, "POST", "/", NULL);
    struct got g = {0};

    answer(r, 400, "", throttle_json, 0);
    answer(r, 400, "", throttle_json, 0);
    answer(r, 200, "", ecs_ok, 0);
    session(f, NULL);
    call(f, KN_AWS_ECS, "DescribeTaskSets", "{}", 0, &g);
    assert_int_equal(g.status, 0);
    assert_int_equal(g.attempts, 3);
    assert_int_equal(r->served, 3);
    got_release(&g);
}

static void test_throttled_gives_up_after_three(void **state)
{
    struct fx *f = *state;
    struct route *r = route(f, "POST", "/", NULL);
    struct got g = {0};

    answer(r, 400, "x-amzn-RequestId: rq-9\r\n", throttle_json, 0);
    session(f, NULL);
    call(f, KN_AWS_ECS, "DescribeTaskSets", "{}", 0, &g);
    assert_int_equal(g.status, KN_EIO);
    assert_int_equal(g.attempts, 3);
    assert_int_equal(r->served, 3);
    assert_int_equal(g.http_status, 400);
    assert_string_equal(g.code, "ThrottlingException");
    assert_string_equal(g.message,
                        "ThrottlingException: Rate exceeded (ecs DescribeTaskSets, 3 attempts)");
    assert_string_equal(g.request_id, "rq-9");
    got_release(&g);

    /* ELBv2's XML throttling too */
    r->n = 0;
    r->served = 0;
    answer(r, 400, "Content-Type: text/xml\r\n",
           "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate "
           "exceeded</Message></Error><RequestId>x</RequestId></ErrorResponse>",
           0);
    call(f, KN_AWS_ELBV2, "DescribeRules", "{}", 0, &g);
    assert_int_equal(g.status, KN_EIO);
    assert_int_equal(g.attempts, 3);
    assert_string_equal(g.code, "Throttling");
    assert_string_equal(g.message, "Throttling: Rate exceeded (elbv2 DescribeRules, 3 attempts)");
    got_release(&g);
}

static void test_not_retried(void **state)
{
    struct fx *f = *state;
    struct route *r = route(f, "POST", "/", NULL);
    struct got g = {0};

    /* an ECS quota, not throttling */
    answer(r, 400, "", "{\"__type\":\"LimitExceededException\",\"message\":\"5 deployments\"}", 0);
    session(f, NULL);
    call(f, KN_AWS_ECS, "CreateTaskSet", "{}", 0, &g);
    assert_int_equal(g.status, KN_EIO);
    assert_int_equal(g.attempts, 1);
    assert_string_equal(g.code, "LimitExceededException");
    got_release(&g);

    r->n = 0;
    answer(r, 400, "", "{\"__type\":\"ClientException\",\"message\":\"bad input\"}", 0);
    call(f, KN_AWS_ECS, "CreateTaskSet", "{}", 0, &g);
    assert_int_equal(g.attempts, 1);
    assert_string_equal(g.message, "ClientException: bad input (ecs CreateTaskSet, 1 attempt)");
    got_release(&g);
    assert_int_equal(r->served, 2);
}

static void test_5xx_and_transient_retried(void **state)
{
    struct fx *f = *state;
    struct route *r = route(f, "POST", "/", NULL);
    struct got g = {0};

    answer(r, 503, "", "", 0);
    answer(r, 400, "", "{\"__type\":\"RequestTimeoutException\",\"message\":\"slow\"}", 0);
    answer(r, 200, "", ecs_ok, 0);
    session(f, NULL);
    call(f, KN_AWS_ECS, "DescribeServices", "{}", 0, &g);
    assert_int_equal(g.status, 0);
    assert_int_equal(g.attempts, 3);
    got_release(&g);

    r->n = 0;
    r->served = 0;
    answer(r, 503, "", "", 0);
    call(f, KN_AWS_ECS, "DescribeServices", "{}", 0, &g);
    assert_int_equal(g.status, KN_EIO);
    assert_int_equal(g.attempts, 3);
    assert_int_equal(g.http_status, 503);
    assert_null(g.code);
    assert_string_equal(g.message, "ecs DescribeServices: HTTP 503 (3 attempts)");
    got_release(&g);
}

static void test_connection_refused_retried(void **state)
{
    struct fx *f = *state;
    uv_tcp_t t;
    struct sockaddr_in addr;
    struct sockaddr_storage name;
    int namelen = sizeof(name), port;
    char url[64];
    struct got g = {0};

    /* a port nothing listens on: bind one, close it */
    uv_ip4_addr("127.0.0.1", 0, &addr);
    uv_tcp_init(&f->loop, &t);
    assert_int_equal(uv_tcp_bind(&t, (const struct sockaddr *)&addr, 0), 0);
    uv_tcp_getsockname(&t, (struct sockaddr *)&name, &namelen);
    port = ntohs(((struct sockaddr_in *)&name)->sin_port);
    uv_close((uv_handle_t *)&t, NULL);
    run_for(f, 20);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
    setenv("AWS_ENDPOINT_URL", url, 1);
    session(f, NULL);
    call(f, KN_AWS_ECS, "ListClusters", NULL, 0, &g);
    assert_int_equal(g.status, KN_EIO);
    assert_int_equal(g.attempts, 3);
    assert_int_equal(g.http_status, 0);
    assert_non_null(strstr(g.message, "connection refused (ecs ListClusters at http://127.0.0.1:"));
    assert_non_null(strstr(g.message, "3 attempts)"));
    got_release(&g);
}

static void test_error_forms(void **state)
{
    struct fx *f = *state;
    struct route *r = route(f, "POST", "/", NULL);
    struct got g = {0};

    answer(r, 400, "",
           "{\"__type\":\"com.amazonaws.ecs#ClusterNotFoundException:http://internal/\","
           "\"Message\":\"Cluster not found.\"}",
           0);
    /* only the header names the error */
    answer(r, 400, "x-amzn-ErrorType: ServiceNotFoundException:http://internal/\r\n", "", 0);
    /* moto's auth error on ECS: XML */
    answer(r, 403, "Content-Type: text/xml\r\n",
           "<ErrorResponse><Errors><Error><Code>SignatureDoesNotMatch</Code><Message>The "
           "request signature we calculated does not match the signature you provided."
           "</Message></Error></Errors></ErrorResponse>",
           0);
    session(f, NULL);
    call(f, KN_AWS_ECS, "DescribeServices", "{}", 0, &g);
    assert_string_equal(g.code, "ClusterNotFoundException");
    assert_string_equal(g.message,
                        "ClusterNotFoundException: Cluster not found. (ecs DescribeServices, 1 "
                        "attempt)");
    got_release(&g);
    call(f, KN_AWS_ECS, "DescribeServices", "{}", 0, &g);
    assert_string_equal(g.code, "ServiceNotFoundException");
    assert_string_equal(g.message,
                        "ServiceNotFoundException (ecs DescribeServices, HTTP 400, 1 attempt)");
    got_release(&g);
    call(f, KN_AWS_ECS, "DescribeServices", "{}", 0, &g);
    assert_int_equal(g.status, KN_EIO);
    assert_int_equal(g.http_status, 403);
    assert_string_equal(g.code, "SignatureDoesNotMatch");
    got_release(&g);
}

static void test_html_500_is_a_parse_error(void **state)
{
    struct fx *f = *state;
    struct route *r = route(f, "POST", "/", NULL);
    struct got g = {0};

    answer(r, 500, "Content-Type: text/html; charset=utf-8\r\n",
           "<!doctype html><html><title>500 Internal Server Error</title></html>", 0);
    session(f, NULL);
    call(f, KN_AWS_ECS, "CreateTaskSet", "{}", 0, &g);
    assert_int_equal(g.status, KN_EPARSE);
    assert_int_equal(g.http_status, 500);
    assert_null(g.code);
    assert_string_equal(g.message, "ecs CreateTaskSet: HTTP 500 with a text/html body, not an AWS "
                                   "answer (3 attempts)");
    got_release(&g);

    /* a 200 that is not the protocol's */
    r->n = 0;
    answer(r, 200, "Content-Type: text/html\r\n", "<html></html>", 0);
    call(f, KN_AWS_ELBV2, "DescribeRules", "{}", 0, &g);
    assert_int_equal(g.status, KN_EPARSE);
    assert_int_equal(g.attempts, 1);
    assert_string_equal(g.message, "elbv2 DescribeRules: HTTP 200 with a text/html body, not an "
                                   "AWS answer (1 attempt)");
    got_release(&g);
}

static void test_secrets_redacted_from_aws_words(void **state)
{
    struct fx *f = *state;
    struct got g = {0};
    const char *body = own(
        f, kn_asprintf("<ErrorResponse><Error><Code>SignatureDoesNotMatch</Code><Message>The "
                       "Canonical String for this request should have been 'POST\n/\n\n"
                       "x-amz-security-token:%s\n' and the key %s</Message></Error>"
                       "</ErrorResponse>",
                       TOKEN, SECRET));

    answer(route(f, "POST", "/", NULL), 403, "Content-Type: text/xml\r\n", body, 0);
    session(f, NULL);
    call(f, KN_AWS_ELBV2, "DescribeRules", "{}", 0, &g); /* on_result greps */
    assert_string_equal(g.code, "SignatureDoesNotMatch");
    assert_non_null(strstr(g.message, "x-amz-security-token:[redacted]"));
    assert_non_null(strstr(g.message, "the key [redacted]"));
    got_release(&g);
}

static void test_timeout_covers_the_call(void **state)
{
    struct fx *f = *state;
    struct got g = {0};

    answer(route(f, "POST", "/", NULL), 200, "", ecs_ok, 3000);
    session(f, NULL);
    call(f, KN_AWS_ECS, "DescribeTaskSets", "{}", 300, &g);
    assert_int_equal(g.status, KN_ETIMEDOUT);
    assert_int_equal(g.attempts, 1);
    assert_non_null(strstr(g.message, "ecs DescribeTaskSets: timed out after 300 ms"));
    got_release(&g);
}

static void test_retry_after_is_honoured(void **state)
{
    struct fx *f = *state;
    struct route *r = route(f, "POST", "/", NULL);
    struct got g = {0};

    answer(r, 503, "x-amz-retry-after: 400\r\n", "", 0);
    answer(r, 200, "", ecs_ok, 0);
    session(f, NULL);
    call(f, KN_AWS_ECS, "DescribeTaskSets", "{}", 0, &g);
    assert_int_equal(g.status, 0);
    assert_int_equal(g.attempts, 2);
    assert_int_equal(f->nseen, 2);
    /* a lower bound only: the delay was at least what the server asked */
    assert_true(f->seen[1].at_ms - f->seen[0].at_ms >= 390);
    got_release(&g);
}

static void test_cancel_during_backoff(void **state)
{
    struct fx *f = *state;
    struct route *r = route(f, "POST", "/", NULL);
    struct kn_aws_call *c = NULL;
    struct got g = {0};

    answer(r, 503, "x-amz-retry-after: 5000\r\n", "", 0);
    session(f, NULL);
    assert_int_equal(kn_aws_call(&c, f->aws, KN_AWS_ECS, "DescribeTaskSets", NULL, 0, on_result,
                                 &g),
                     0);
    assert_non_null(c);
    for (int i = 0; i < 100 && r->served == 0; i++) {
        run_for(f, 20);
    }
    assert_int_equal(r->served, 1);
    run_for(f, 300); /* the answer is in; the call waits ~5 s before its next attempt */
    assert_int_equal(g.calls, 0);
    kn_aws_cancel(c);
    assert_int_equal(g.calls, 1); /* before kn_aws_cancel returned */
    assert_int_equal(g.status, KN_ECANCELLED);
    assert_int_equal(g.http_status, 503); /* so it was in the backoff, not in flight */
    assert_int_equal(g.attempts, 1);
    assert_non_null(strstr(g.message, "cancelled"));
    got_release(&g);
    run_for(f, 100);
    assert_int_equal(r->served, 1);
}

static void test_cancel_in_flight_and_free(void **state)
{
    struct fx *f = *state;
    struct route *r = route(f, "POST", "/", NULL);
    struct kn_aws_call *c = NULL;
    struct got g1 = {0}, g2 = {0};

    answer(r, 200, "", ecs_ok, 3000);
    session(f, NULL);
    assert_int_equal(kn_aws_call(&c, f->aws, KN_AWS_ECS, "ListClusters", NULL, 0, on_result, &g1),
                     0);
    assert_int_equal(kn_aws_call(NULL, f->aws, KN_AWS_ECS, "ListServices", NULL, 0, on_result,
                                 &g2),
                     0);
    for (int i = 0; i < 100 && r->served < 2; i++) {
        run_for(f, 20);
    }
    assert_int_equal(r->served, 2);
    kn_aws_cancel(c);
    assert_int_equal(g1.calls, 1);
    assert_int_equal(g1.status, KN_ECANCELLED);
    assert_int_equal(g1.http_status, 0);
    kn_aws_free(f->aws); /* the other ends too */
    f->aws = NULL;
    assert_int_equal(g2.calls, 1);
    assert_int_equal(g2.status, KN_ECANCELLED);
    got_release(&g1);
    got_release(&g2);
}

/* ---- credentials ----------------------------------------------------------------------------- */

static void test_shared_files_and_profile(void **state)
{
    struct fx *f = *state;
    char dev[] = "dev";
    struct kn_aws_config cfg = {.profile = dev};
    struct got g = {0};
    char *id, *h;

    answer(route(f, "POST", "/", NULL), 200, "", ecs_ok, 0);
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    unsetenv("AWS_SESSION_TOKEN");
    kn_test_write(f->dir, "home/.aws/credentials",
                  "# comment\n[default]\naws_access_key_id = AKIDDEFAULT\n"
                  "aws_secret_access_key = file-secret-default\n\n"
                  "[dev]\naws_access_key_id=AKIDDEV\naws_secret_access_key = file-secret-dev\n"
                  "aws_session_token = file-secret-devtoken\n");
    kn_test_write(f->dir, "home/.aws/config",
                  "[profile cfgonly]\nregion = eu-west-1\naws_access_key_id = AKIDCFG\n"
                  "aws_secret_access_key = file-secret-cfg\ns3 =\n  max_concurrent_requests = 2\n");

    /* the platform's profile, from the credentials file */
    session(f, &cfg);
    call(f, KN_AWS_ECS, "ListClusters", NULL, 0, &g);
    assert_int_equal(g.status, 0);
    id = seen_akid(f, 0);
    assert_string_equal(id, "AKIDDEV");
    free(id);
    h = seen_header(f, 0, "X-Amz-Security-Token");
    assert_string_equal(h, "file-secret-devtoken");
    free(h);
    got_release(&g);
    kn_aws_free(f->aws);

    /* the default profile */
    session(f, NULL);
    call(f, KN_AWS_ECS, "ListClusters", NULL, 0, &g);
    id = seen_akid(f, 1);
    assert_string_equal(id, "AKIDDEFAULT");
    free(id);
    assert_int_equal(count_header(f->seen[1].head, "X-Amz-Security-Token"), 0);
    got_release(&g);
    kn_aws_free(f->aws);

    /* AWS_PROFILE, found only in the config file ([profile x]) */
    setenv("AWS_PROFILE", "cfgonly", 1);
    session(f, NULL);
    call(f, KN_AWS_ECS, "ListClusters", NULL, 0, &g);
    id = seen_akid(f, 2);
    assert_string_equal(id, "AKIDCFG");
    free(id);
    got_release(&g);
    kn_aws_free(f->aws);

    /* the files named by the variables */
    unsetenv("AWS_PROFILE");
    kn_test_write(f->dir, "elsewhere/creds", "[default]\naws_access_key_id = AKIDELSE\n"
                                             "aws_secret_access_key = file-secret-else\n");
    {
        char *p = kn_asprintf("%s/elsewhere/creds", f->dir);
        setenv("AWS_SHARED_CREDENTIALS_FILE", p, 1);
        free(p);
    }
    session(f, NULL);
    call(f, KN_AWS_ECS, "ListClusters", NULL, 0, &g);
    id = seen_akid(f, 3);
    assert_string_equal(id, "AKIDELSE");
    free(id);
    got_release(&g);
    /* the environment comes first */
    kn_aws_free(f->aws);
    setenv("AWS_ACCESS_KEY_ID", AKID, 1);
    setenv("AWS_SECRET_ACCESS_KEY", SECRET, 1);
    session(f, NULL);
    call(f, KN_AWS_ECS, "ListClusters", NULL, 0, &g);
    id = seen_akid(f, 4);
    assert_string_equal(id, AKID);
    free(id);
    got_release(&g);
}

static void test_no_credentials(void **state)
{
    struct fx *f = *state;
    struct got g = {0};

    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    unsetenv("AWS_SESSION_TOKEN");
    session(f, NULL);
    call(f, KN_AWS_ECS, "ListClusters", NULL, 0, &g);
    assert_int_equal(g.status, KN_EINVAL);
    assert_int_equal(g.attempts, 0);
    assert_non_null(strstr(g.message, "ecs ListClusters: no AWS credentials: looked in the "
                                      "environment, web identity, "));
    assert_non_null(strstr(g.message, "/home/.aws/credentials and "));
    assert_non_null(strstr(g.message, "/home/.aws/config (profile default), the container "
                                      "endpoint and the instance metadata"));
    assert_int_equal(f->nseen, 0);
    got_release(&g);

    /* half a pair in the environment */
    setenv("AWS_ACCESS_KEY_ID", AKID, 1);
    call(f, KN_AWS_ECS, "ListClusters", NULL, 0, &g);
    assert_int_equal(g.status, KN_EINVAL);
    assert_non_null(strstr(g.message, "AWS_ACCESS_KEY_ID is set without AWS_SECRET_ACCESS_KEY"));
    got_release(&g);
}

static char *sts_reply(const char *akid, const char *secret, const char *token, long long in_s)
{
    char exp[32];
    time_t t = time(NULL) + in_s;
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(exp, sizeof(exp), "%Y-%m-%dT%H:%M:%SZ", &tm);
    return kn_asprintf(
        "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"
        "<AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>%s</AccessKeyId>"
        "<SecretAccessKey>%s</SecretAccessKey><SessionToken>%s</SessionToken>"
        "<Expiration>%s</Expiration></Credentials><SubjectFromWebIdentityToken>sub"
        "</SubjectFromWebIdentityToken></AssumeRoleWithWebIdentityResult>"
        "<ResponseMetadata><RequestId>r</RequestId></ResponseMetadata>"
        "</AssumeRoleWithWebIdentityResponse>",
        akid, secret, token, exp);
}

static char *creds_json(const char *akid, const char *secret, const char *token, long long in_s,
                        int imds)
{
    char exp[32];
    time_t t = time(NULL) + in_s;
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(exp, sizeof(exp), "%Y-%m-%dT%H:%M:%SZ", &tm);
    return kn_asprintf("{%s\"AccessKeyId\":\"%s\",\"SecretAccessKey\":\"%s\",\"Token\":\"%s\","
                       "\"Expiration\":\"%s\"}",
                       imds ? "\"Code\":\"Success\",\"Type\":\"AWS-HMAC\"," : "", akid, secret,
                       token, exp);
}

static int find_seen(struct fx *f, const char *method, const char *target, int from)
{
    for (int i = from; i < f->nseen; i++) {
        if (strcmp(f->seen[i].method, method) == 0 && strcmp(f->seen[i].target, target) == 0) {
            return i;
        }
    }
    return -1;
}

static void test_web_identity_and_refresh(void **state)
{
    struct fx *f = *state;
    struct route *sts = route(f, "POST", "/", "Action=AssumeRoleWithWebIdentity");
    struct route *api = route(f, "POST", "/", NULL);
    struct got g = {0};
    char *path = kn_asprintf("%s/token", f->dir);
    char *id, *h;
    int i;

    /* the first credentials expire in 5 minutes: the next call refreshes them */
    answer(sts, 200, "Content-Type: text/xml\r\n",
           own(f, sts_reply("ASIAWEB1", "sts-secret-1", "sts-secret-token-1", 300)), 0);
    answer(sts, 200, "Content-Type: text/xml\r\n",
           own(f, sts_reply("ASIAWEB2", "sts-secret-2", "sts-secret-token-2", 3600)), 0);
    answer(api, 200, "", ecs_ok, 0);
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    unsetenv("AWS_SESSION_TOKEN");
    kn_test_write(f->dir, "token", "jwt-one\n");
    setenv("AWS_WEB_IDENTITY_TOKEN_FILE", path, 1);
    setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/kanaria", 1);
    session(f, NULL);

    call(f, KN_AWS_ECS, "ListClusters", NULL, 0, &g);
    assert_int_equal(g.status, 0);
    got_release(&g);
    assert_int_equal(f->nseen, 2);
    /* STS: unsigned, awsQuery, the token from the file */
    assert_int_equal(count_header(f->seen[0].head, "Authorization"), 0);
    assert_non_null(strstr(f->seen[0].body, "Action=AssumeRoleWithWebIdentity&Version=2011-06-15"
                                            "&RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2F"
                                            "kanaria&RoleSessionName=kanaria-"));
    assert_non_null(strstr(f->seen[0].body, "&WebIdentityToken=jwt-one"));
    id = seen_akid(f, 1);
    assert_string_equal(id, "ASIAWEB1");
    free(id);
    h = seen_header(f, 1, "X-Amz-Security-Token");
    assert_string_equal(h, "sts-secret-token-1");
    free(h);

    /* within 10 minutes of the expiry: refreshed, reading the token file again */
    kn_test_write(f->dir, "token", "jwt-two\n");
    call(f, KN_AWS_ECS, "ListClusters", NULL, 0, &g);
    assert_int_equal(g.status, 0);
    got_release(&g);
    assert_int_equal(sts->served, 2);
    i = find_seen(f, "POST", "/", 2);
    assert_non_null(strstr(f->seen[i].body, "&WebIdentityToken=jwt-two"));
    id = seen_akid(f, f->nseen - 1);
    assert_string_equal(id, "ASIAWEB2");
    free(id);

    /* fresh ones are kept */
    call(f, KN_AWS_ECS, "ListClusters", NULL, 0, &g);
    got_release(&g);
    assert_int_equal(sts->served, 2);

    /* STS says no: the chain fails with its words */
    kn_aws_free(f->aws);
    sts->n = 0;
    sts->served = 0;
    answer(sts, 400, "Content-Type: text/xml\r\n",
           "<ErrorResponse><Error><Type>Sender</Type><Code>InvalidIdentityToken</Code><Message>"
           "Token is expired</Message></Error></ErrorResponse>",
           0);
    session(f, NULL);
    call(f, KN_AWS_ECS, "ListClusters", NULL, 0, &g);
    assert_int_equal(g.status, KN_EIO);
    assert_non_null(strstr(g.message, "web identity (role arn:aws:iam::123456789012:role/kanaria): "
                                      "InvalidIdentityToken: Token is expired (sts "
                                      "AssumeRoleWithWebIdentity, 1 attempt)"));
    got_release(&g);
    free(path);
}

static void test_container_full_uri_with_token_file(void **state)
{
    struct fx *f = *state;
    struct route *cont = route(f, "GET", "/creds", NULL);
    struct route *api = route(f, "POST", "/", NULL);
    struct got g[3] = {{0}};
    char *uri = kn_asprintf("%s/creds", f->base);
    char *tok = kn_asprintf("%s/auth-token", f->dir);
    char *h, *id;

    answer(cont, 200, "", own(f, creds_json("ASIACONT", "container-secret", "container-secret-t",
                                            3600, 0)),
           0);
    answer(api, 200, "", ecs_ok, 0);
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    unsetenv("AWS_SESSION_TOKEN");
    kn_test_write(f->dir, "auth-token", "Bearer pod-identity-token\n");
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", uri, 1);
    setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", tok, 1);
    setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "not-this-one", 1);
    session(f, NULL);

    /* three calls at once wait on one resolution */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(kn_aws_call(NULL, f->aws, KN_AWS_ECS, "ListClusters", NULL, 0,
                                     on_result, &g[i]),
                         0);
    }
    for (int i = 0; i < 3; i++) {
        run_until(f, &g[i].calls, 1);
        assert_int_equal(g[i].status, 0);
        got_release(&g[i]);
    }
    assert_int_equal(cont->served, 1);
    assert_int_equal(api->served, 3);
    h = seen_header(f, 0, "Authorization");
    assert_string_equal(h, "Bearer pod-identity-token");
    free(h);
    id = seen_akid(f, 1);
    assert_string_equal(id, "ASIACONT");
    free(id);
    kn_aws_free(f->aws);

    /* a host off the allow-list is refused before any request */
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://10.1.2.3/creds", 1);
    session(f, NULL);
    call(f, KN_AWS_ECS, "ListClusters", NULL, 0, &g[0]);
    assert_int_equal(g[0].status, KN_EINVAL);
    assert_non_null(strstr(g[0].message, "AWS_CONTAINER_CREDENTIALS_FULL_URI 'http://10.1.2.3/"
                                         "creds' is not on a loopback address"));
    got_release(&g[0]);
    assert_int_equal(cont->served, 1);
    free(uri);
    free(tok);
}

static void test_expired_token_refreshes_once(void **state)
{
    struct fx *f = *state;
    struct route *cont = route(f, "GET", "/creds", NULL);
    struct route *api = route(f, "POST", "/", NULL);
    static const char expired[] = "{\"__type\":\"ExpiredTokenException\",\"message\":\"The "
                                  "security token included in the request is expired\"}";
    struct got g = {0};
    char *uri = kn_asprintf("%s/creds", f->base);
    char *id;

    answer(cont, 200, "", own(f, creds_json("ASIAOLD", "container-secret-1", "container-secret-t1",
                                            3600, 0)),
           0);
    answer(cont, 200, "", own(f, creds_json("ASIANEW", "container-secret-2", "container-secret-t2",
                                            3600, 0)),
           0);
    answer(api, 403, "", expired, 0);
    answer(api, 200, "", ecs_ok, 0);
    answer(api, 403, "", expired, 0);
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    unsetenv("AWS_SESSION_TOKEN");
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", uri, 1);
    session(f, NULL);
    call(f, KN_AWS_ECS, "ListClusters", NULL, 0, &g);
    assert_int_equal(g.status, 0);
    assert_int_equal(g.attempts, 2);
    assert_int_equal(cont->served, 2);
    id = seen_akid(f, find_seen(f, "POST", "/", 0));
    assert_string_equal(id, "ASIAOLD");
    free(id);
    id = seen_akid(f, f->nseen - 1);
    assert_string_equal(id, "ASIANEW");
    free(id);
    got_release(&g);

    /* expired again and again: one refresh per call, then AWS's words */
    call(f, KN_AWS_ECS, "ListClusters", NULL, 0, &g);
    assert_int_equal(g.status, KN_EIO);
    assert_int_equal(g.attempts, 2);
    assert_string_equal(g.code, "ExpiredTokenException");
    assert_int_equal(cont->served, 3);
    got_release(&g);
    free(uri);
}

static void test_imdsv2(void **state)
{
    struct fx *f = *state;
    struct route *tok = route(f, "PUT", "/latest/api/token", NULL);
    struct route *cred = route(f, "GET", "/latest/meta-data/iam/security-credentials/", NULL);
    struct route *api = route(f, "POST", "/", NULL);
    struct got g = {0};
    int i;
    char *h, *id;

    answer(tok, 200, "", "imds-session-token", 0);
    /* the role's name, then (same prefix) its credentials */
    answer(cred, 200, "", "kanaria-role\n", 0);
    answer(cred, 200, "", own(f, creds_json("ASIAIMDS", "imds-secret", "imds-secret-token", 3600,
                                            1)),
           0);
    answer(api, 200, "", ecs_ok, 0);
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    unsetenv("AWS_SESSION_TOKEN");
    unsetenv("AWS_EC2_METADATA_DISABLED");
    setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", f->base, 1);
    session(f, NULL);
    call(f, KN_AWS_ECS, "ListClusters", NULL, 0, &g);
    assert_int_equal(g.status, 0);
    got_release(&g);
    assert_int_equal(f->nseen, 4);
    assert_string_equal(f->seen[0].method, "PUT");
    h = seen_header(f, 0, "X-aws-ec2-metadata-token-ttl-seconds");
    assert_string_equal(h, "21600");
    free(h);
    i = find_seen(f, "GET", "/latest/meta-data/iam/security-credentials/", 0);
    assert_int_equal(i, 1);
    h = seen_header(f, 1, "X-aws-ec2-metadata-token");
    assert_string_equal(h, "imds-session-token");
    free(h);
    assert_int_equal(find_seen(f, "GET", "/latest/meta-data/iam/security-credentials/kanaria-role",
                               0),
                     2);
    h = seen_header(f, 2, "X-aws-ec2-metadata-token");
    assert_string_equal(h, "imds-session-token");
    free(h);
    id = seen_akid(f, 3);
    assert_string_equal(id, "ASIAIMDS");
    free(id);
    kn_aws_free(f->aws);

    /* no IMDS (the token refused): the chain ends without credentials */
    tok->n = 0;
    answer(tok, 403, "", "", 0);
    session(f, NULL);
    call(f, KN_AWS_ECS, "ListClusters", NULL, 0, &g);
    assert_int_equal(g.status, KN_EINVAL);
    assert_non_null(strstr(g.message, "no AWS credentials"));
    got_release(&g);
}

static void test_free_while_resolving(void **state)
{
    struct fx *f = *state;
    struct route *cont = route(f, "GET", "/creds", NULL);
    struct got g = {0};
    char *uri = kn_asprintf("%s/creds", f->base);

    answer(cont, 200, "", own(f, creds_json("ASIAX", "container-secret", "t", 3600, 0)), 3000);
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", uri, 1);
    session(f, NULL);
    assert_int_equal(kn_aws_call(NULL, f->aws, KN_AWS_ECS, "ListClusters", NULL, 0, on_result, &g),
                     0);
    for (int i = 0; i < 100 && cont->served == 0; i++) {
        run_for(f, 20);
    }
    assert_int_equal(cont->served, 1);
    kn_aws_free(f->aws);
    f->aws = NULL;
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.status, KN_ECANCELLED);
    got_release(&g);
    free(uri);
}

static void test_retry_quota(void **state)
{
    struct fx *f = *state;
    struct route *r = route(f, "POST", "/", NULL);
    struct got g = {0};

    answer(r, 503, "", "", 0);
    session(f, NULL);
    /* 50 calls of 3 attempts spend 100 retries of 5 tokens: the 500 of the session */
    for (int i = 0; i < 50; i++) {
        call(f, KN_AWS_ECS, "DescribeServices", "{}", 0, &g);
        assert_int_equal(g.attempts, 3);
        got_release(&g);
    }
    call(f, KN_AWS_ECS, "DescribeServices", "{}", 0, &g);
    assert_int_equal(g.attempts, 1);
    assert_string_equal(g.message, "ecs DescribeServices: HTTP 503 (1 attempt; the session's retry "
                                   "quota is spent)");
    got_release(&g);
    /* a success gives a token back: one retry's worth after five */
    r->n = 0;
    answer(r, 200, "", ecs_ok, 0);
    for (int i = 0; i < 5; i++) {
        call(f, KN_AWS_ECS, "DescribeServices", "{}", 0, &g);
        assert_int_equal(g.status, 0);
        got_release(&g);
    }
    r->n = 0;
    answer(r, 503, "", "", 0);
    call(f, KN_AWS_ECS, "DescribeServices", "{}", 0, &g);
    assert_int_equal(g.attempts, 2);
    got_release(&g);
}

static void test_waiting_for_credentials(void **state)
{
    struct fx *f = *state;
    struct route *cont = route(f, "GET", "/creds", NULL);
    struct route *api = route(f, "POST", "/", NULL);
    struct kn_aws_call *c = NULL;
    struct got g1 = {0}, g2 = {0};
    char *uri = kn_asprintf("%s/creds", f->base);

    answer(cont, 200, "", own(f, creds_json("ASIAW", "container-secret", "t", 3600, 0)), 600);
    answer(api, 200, "", ecs_ok, 0);
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", uri, 1);
    session(f, NULL);
    /* one is cancelled while it waits, the other still gets the credentials */
    assert_int_equal(kn_aws_call(&c, f->aws, KN_AWS_ECS, "ListClusters", NULL, 0, on_result, &g1),
                     0);
    assert_int_equal(kn_aws_call(NULL, f->aws, KN_AWS_ECS, "ListServices", NULL, 0, on_result,
                                 &g2),
                     0);
    for (int i = 0; i < 100 && cont->served == 0; i++) {
        run_for(f, 20);
    }
    kn_aws_cancel(c);
    assert_int_equal(g1.calls, 1);
    assert_int_equal(g1.status, KN_ECANCELLED);
    assert_int_equal(g1.attempts, 0);
    run_until(f, &g2.calls, 1);
    assert_int_equal(g2.status, 0);
    assert_int_equal(api->served, 1);
    got_release(&g1);
    got_release(&g2);
    kn_aws_free(f->aws);

    /* the call's timeout covers the wait */
    session(f, NULL);
    call(f, KN_AWS_ECS, "ListClusters", NULL, 200, &g1);
    assert_int_equal(g1.status, KN_ETIMEDOUT);
    assert_string_equal(g1.message, "ecs ListClusters: timed out after 200 ms waiting for "
                                    "credentials (0 attempts)");
    got_release(&g1);
    free(uri);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_query_modify_rule_as_botocore),
        cmocka_unit_test(test_query_values),
        cmocka_unit_test(test_xml_describe_rules),
        cmocka_unit_test(test_xml_errors_and_refusals),
        cmocka_unit_test(test_error_code),
        cmocka_unit_test(test_parse_time),
        cmocka_unit_test_setup_teardown(test_endpoints_and_region, setup, teardown),
        cmocka_unit_test_setup_teardown(test_call_refuses_bad_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ecs_json_call, setup, teardown),
        cmocka_unit_test_setup_teardown(test_elbv2_query_call, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cloudwatch_json10_call, setup, teardown),
        cmocka_unit_test_setup_teardown(test_throttled_twice_then_ok, setup, teardown),
        cmocka_unit_test_setup_teardown(test_throttled_gives_up_after_three, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_5xx_and_transient_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_refused_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_forms, setup, teardown),
        cmocka_unit_test_setup_teardown(test_html_500_is_a_parse_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secrets_redacted_from_aws_words, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout_covers_the_call, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_after_is_honoured, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_during_backoff, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_in_flight_and_free, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shared_files_and_profile, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_credentials, setup, teardown),
        cmocka_unit_test_setup_teardown(test_web_identity_and_refresh, setup, teardown),
        cmocka_unit_test_setup_teardown(test_container_full_uri_with_token_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expired_token_refreshes_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_imdsv2, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_while_resolving, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_quota, setup, teardown),
        cmocka_unit_test_setup_teardown(test_waiting_for_credentials, setup, teardown),
    };

    setenv("no_proxy", "127.0.0.1", 1);
    setenv("NO_PROXY", "127.0.0.1", 1);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
