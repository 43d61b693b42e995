/*
 * The SigV4 signatures libcurl makes for kanaria's AWS calls are right: a verifier written here
 * with OpenSSL's SHA-256 and HMAC (test code only; kanaria itself signs through libcurl) is first
 * held to AWS's published SigV4 test-suite vectors and to the vector of the ECS notes, then
 * checks the Authorization of requests made through kn_aws_call (ECS JSON, ELBv2 form, with and
 * without a session token) as a loopback server received them. A wrong secret, or a body changed
 * after signing, fails verification, so the check can fail.
 */
#include "testutil.h"
#include "testsrv.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uv.h>

#include "cloud/aws/aws.h"
#include "kanaria/alloc.h"
#include "kanaria/http.h"

/* The test suite's credentials and session token (aws-sig-v4-test-suite, post-sts-token). */
#define SUITE_AKID   "AKIDEXAMPLE"
#define SUITE_SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define SUITE_TOKEN                                                                                \
    "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPf" \
    "IeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7W" \
    "Z0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8F" \
    "DrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA=="

/* ---- the verifier ------------------------------------------------------------------------- */

static void hex(const unsigned char *in, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        sprintf(out + 2 * i, "%02x", in[i]);
    }
    out[2 * n] = '\0';
}

static void sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char d[SHA256_DIGEST_LENGTH];

    SHA256(data, len, d);
    hex(d, sizeof(d), out);
}

static void hmac(const void *key, size_t klen, const char *msg, unsigned char out[32])
{
    unsigned int n = 32;

    assert_non_null(HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)msg, strlen(msg),
                         out, &n));
    assert_int_equal(n, 32);
}

/* A request as received: method, path, query, and header lines "Name:value". */
struct sreq {
    const char *method;
    const char *path;
    const char *query;
    const char *const *headers;
    const char *body;
    size_t body_len;
};

/* The canonical value of header `name`: every line of that name, trimmed, runs of spaces made
 * one, joined with ','; NULL when the request has none (AWS: IncompleteSignature). */
static char *canonical_value(const struct sreq *r, const char *name)
{
    struct kn_buf b;
    int found = 0;

    kn_buf_init(&b, KN_BUF_UNBOUNDED);
    for (const char *const *h = r->headers; *h; h++) {
        const char *colon = strchr(*h, ':');
        const char *v, *end;
        if (!colon || (size_t)(colon - *h) != strlen(name) ||
            strncasecmp(*h, name, strlen(name)) != 0) {
            continue;
        }
        if (found++) {
            kn_buf_addch(&b, ',');
        }
        v = colon + 1;
        end = v + strlen(v);
        while (*v == ' ' || *v == '\t') {
            v++;
        }
        while (end > v && (end[-1] == ' ' || end[-1] == '\t')) {
            end--;
        }
        for (const char *p = v; p < end; p++) {
            if (*p == ' ' && p + 1 < end && p[1] == ' ') {
                continue;
            }
            kn_buf_addch(&b, *p);
        }
    }
    if (!found) {
        kn_buf_release(&b);
        return NULL;
    }
    return kn_buf_detach(&b, NULL);
}

/* The signature of r, as AWS computes it; 0, or -1 when a signed header is missing. */
static int sigv4_signature(char out[65], const struct sreq *r, const char *signed_headers,
                           const char *secret, const char *amz_date, const char *region,
                           const char *service)
{
    struct kn_buf creq, sts;
    char body_hash[65], creq_hash[65], date[9];
    unsigned char k[32], k2[32];
    char *names = kn_strdup(signed_headers), *save = NULL, *key;
    int rc = 0;

    snprintf(date, sizeof(date), "%.8s", amz_date);
    kn_buf_init(&creq, KN_BUF_UNBOUNDED);
    kn_buf_addf(&creq, "%s\n%s\n%s\n", r->method, r->path, r->query);
    for (char *n = strtok_r(names, ";", &save); n; n = strtok_r(NULL, ";", &save)) {
        char *v = canonical_value(r, n);
        if (!v) {
            rc = -1;
            goto out;
        }
        kn_buf_addf(&creq, "%s:%s\n", n, v);
        free(v);
    }
    sha256_hex(r->body ? r->body : "", r->body_len, body_hash);
    kn_buf_addf(&creq, "\n%s\n%s", signed_headers, body_hash);
    sha256_hex(creq.data, creq.len, creq_hash);

    kn_buf_init(&sts, KN_BUF_UNBOUNDED);
    kn_buf_addf(&sts, "AWS4-HMAC-SHA256\n%s\n%s/%s/%s/aws4_request\n%s", amz_date, date, region,
                service, creq_hash);
    key = kn_asprintf("AWS4%s", secret);
    hmac(key, strlen(key), date, k);
    hmac(k, 32, region, k2);
    hmac(k2, 32, service, k);
    hmac(k, 32, "aws4_request", k2);
    hmac(k2, 32, sts.data, k);
    hex(k, 32, out);
    free(key);
    kn_buf_release(&sts);
out:
    kn_buf_release(&creq);
    free(names);
    return rc;
}

/* What verify() read from a request's Authorization. */
struct authz {
    char akid[64];
    char region[32];
    char service[64];
    char signed_headers[256];
};

/* Check a request as a server received it (head: request line and headers, CRLF-separated)
 * against secret: 1 when its Authorization is right. */
static int verify(const char *head, const char *body, size_t body_len, const char *secret,
                  struct authz *az)
{
    char *copy = kn_strdup(head), *save = NULL, *line;
    const char *lines[64];
    char method[16] = "", target[256] = "", date[9] = "", sig[65] = "", want[65];
    char *auth = NULL, *amz_date = NULL, *query;
    struct sreq r = {0};
    size_t n = 0;
    int ok = 0;

    line = strtok_r(copy, "\r\n", &save);
    assert_int_equal(sscanf(line, "%15s %255s", method, target), 2);
    while ((line = strtok_r(NULL, "\r\n", &save)) != NULL && n < 63) {
        lines[n++] = line;
    }
    lines[n] = NULL;
    for (size_t i = 0; i < n; i++) {
        if (strncasecmp(lines[i], "Authorization:", 14) == 0) {
            auth = kn_strdup(lines[i] + 14 + strspn(lines[i] + 14, " "));
        } else if (strncasecmp(lines[i], "X-Amz-Date:", 11) == 0) {
            amz_date = kn_strdup(lines[i] + 11 + strspn(lines[i] + 11, " "));
        }
    }
    if (!auth || !amz_date ||
        sscanf(auth,
               "AWS4-HMAC-SHA256 Credential=%63[^/]/%8[0-9]/%31[^/]/%63[^/]/aws4_request, "
               "SignedHeaders=%255[^,], Signature=%64[0-9a-f]",
               az->akid, date, az->region, az->service, az->signed_headers, sig) != 6 ||
        strncmp(date, amz_date, 8) != 0) {
        goto out;
    }
    query = strchr(target, '?');
    if (query) {
        *query++ = '\0';
    }
    r.method = method;
    r.path = target;
    r.query = query ? query : "";
    r.headers = lines;
    r.body = body;
    r.body_len = body_len;
    if (sigv4_signature(want, &r, az->signed_headers, secret, amz_date, az->region,
                        az->service) == 0) {
        ok = strcmp(want, sig) == 0;
    }
out:
    free(auth);
    free(amz_date);
    free(copy);
    return ok;
}

/* ---- the verifier against the published vectors ------------------------------------------- */

static void vector(const char *method, const char *const *headers, const char *signed_headers,
                   const char *body, const char *secret, const char *amz_date, const char *region,
                   const char *service, const char *want)
{
    struct sreq r = {method, "/", "", headers, body, strlen(body)};
    char got[65];

    assert_int_equal(sigv4_signature(got, &r, signed_headers, secret, amz_date, region, service),
                     0);
    assert_string_equal(got, want);
}

static void test_verifier_matches_aws_test_suite(void **state)
{
    const char *vanilla[] = {"Host:example.amazonaws.com", "X-Amz-Date:20150830T123600Z", NULL};
    const char *form[] = {"Content-Type:application/x-www-form-urlencoded",
                          "Host:example.amazonaws.com", "X-Amz-Date:20150830T123600Z", NULL};
    const char *sts[] = {"Host:example.amazonaws.com", "X-Amz-Date:20150830T123600Z",
                         "X-Amz-Security-Token:" SUITE_TOKEN, NULL};

    (void)state;
    /* get-vanilla, post-vanilla, post-x-www-form-urlencoded, post-sts-token/post-sts-header-
     * before: the signatures AWS publishes */
    vector("GET", vanilla, "host;x-amz-date", "", SUITE_SECRET, "20150830T123600Z", "us-east-1",
           "service", "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
    vector("POST", vanilla, "host;x-amz-date", "", SUITE_SECRET, "20150830T123600Z", "us-east-1",
           "service", "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b");
    vector("POST", form, "content-type;host;x-amz-date", "Param1=value1", SUITE_SECRET,
           "20150830T123600Z", "us-east-1", "service",
           "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a");
    vector("POST", sts, "host;x-amz-date;x-amz-security-token", "", SUITE_SECRET,
           "20150830T123600Z", "us-east-1", "service",
           "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead");
}

static void test_verifier_matches_the_ecs_notes_vector(void **state)
{
    /* ecs.md §2.3: an ELBv2 DescribeRules signed by botocore and by libcurl 7.88.1 alike */
    const char *h[] = {"Content-Type: application/x-www-form-urlencoded; charset=utf-8",
                       "Host: 127.0.0.1:18431", "X-Amz-Date: 20261124T152926Z", NULL};

    (void)state;
    vector("POST", h, "content-type;host;x-amz-date",
           "Action=DescribeRules&Version=2015-12-01&ListenerArn=arn%3Aaws%3Aelasticloadbalancing"
           "%3Aus-east-1%3A123456789012%3Alistener%2Fapp%2Flb%2F50dc6c495c0c9188%2Ff2f7dc8efc522ab2",
           SUITE_SECRET, "20261124T152926Z", "us-east-1", "elasticloadbalancing",
           "9af25ba3ec0e014100b44bdd3bdda8d618bba5d4513491e46251c424cd23dab2");
}

static void test_verifier_refuses(void **state)
{
    const char *vanilla[] = {"Host:example.amazonaws.com", "X-Amz-Date:20150830T123600Z", NULL};
    struct sreq r = {"POST", "/", "", vanilla, "", 0};
    char got[65];

    (void)state;
    /* a wrong secret gives another signature; a signed header that is absent, none */
    assert_int_equal(sigv4_signature(got, &r, "host;x-amz-date", "wrong", "20150830T123600Z",
                                     "us-east-1", "service"),
                     0);
    assert_string_not_equal(got, "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b");
    assert_int_equal(sigv4_signature(got, &r, "expect;host;x-amz-date", SUITE_SECRET,
                                     "20150830T123600Z", "us-east-1", "service"),
                     -1);
}

/* ---- requests made through kn_aws_call ------------------------------------------------------ */

struct fx {
    uv_loop_t loop;
    struct kn_testsrv srv;
    struct kn_http_client *http;
    struct kn_aws *aws;
    char *head;
    char *body;
    size_t body_len;
    int calls;
    int status;
};

static void srv_handle(struct kn_testsrv_conn *c, const struct kn_testsrv_request *req,
                       void *data)
{
    struct fx *f = data;
    char *target = kn_testsrv_header(req->head, "X-Amz-Target");
    static const char xml[] = "<DescribeRulesResponse><DescribeRulesResult><Rules/>"
                              "</DescribeRulesResult></DescribeRulesResponse>";

    free(f->head);
    free(f->body);
    f->head = kn_strdup(req->head);
    f->body = kn_malloc(req->body_len + 1);
    memcpy(f->body, req->body, req->body_len);
    f->body[req->body_len] = '\0';
    f->body_len = req->body_len;
    if (*target) {
        kn_testsrv_reply(c, 200, "", "{}", 2, 0);
    } else {
        kn_testsrv_reply(c, 200, "Content-Type: text/xml\r\n", xml, strlen(xml), 0);
    }
    free(target);
}

static void on_result(const struct kn_aws_result *r, void *data)
{
    struct fx *f = data;

    f->calls++;
    f->status = r->status;
    uv_stop(&f->loop);
}

static int setup(void **state)
{
    struct fx *f = kn_calloc(1, sizeof(*f));
    char url[64];

    assert_int_equal(uv_loop_init(&f->loop), 0);
    kn_testsrv_start(&f->srv, &f->loop, srv_handle, f);
    assert_int_equal(kn_http_client_new(&f->http, &f->loop), 0);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", f->srv.port);
    setenv("AWS_ENDPOINT_URL", url, 1);
    setenv("AWS_REGION", "eu-central-1", 1);
    setenv("AWS_ACCESS_KEY_ID", SUITE_AKID, 1);
    setenv("AWS_SECRET_ACCESS_KEY", SUITE_SECRET, 1);
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    unsetenv("AWS_SESSION_TOKEN");
    unsetenv("AWS_ENDPOINT_URL_ECS");
    unsetenv("AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING_V2");
    unsetenv("AWS_ENDPOINT_URL_CLOUDWATCH");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    kn_aws_free(f->aws);
    kn_http_client_close(f->http);
    kn_testsrv_stop(&f->srv);
    while (uv_run(&f->loop, UV_RUN_DEFAULT) != 0) {
    }
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f->head);
    free(f->body);
    free(f);
    return 0;
}

/* One call through a new session; the server keeps what it received. */
static void capture(struct fx *f, enum kn_aws_service svc, const char *op, const char *params)
{
    struct kn_error err = {0};
    json_t *p = json_loads(params, 0, NULL);

    kn_aws_free(f->aws);
    f->aws = NULL;
    assert_int_equal(kn_aws_new(&f->aws, &f->loop, f->http, NULL, &err), 0);
    f->calls = 0;
    assert_int_equal(kn_aws_call(NULL, f->aws, svc, op, p, 5000, on_result, f), 0);
    json_decref(p);
    while (f->calls == 0) {
        uv_run(&f->loop, UV_RUN_DEFAULT);
    }
    assert_int_equal(f->status, 0);
    assert_non_null(f->head);
}

static void check_signed(struct fx *f, const char *service, const char *signed_headers)
{
    struct authz az = {0};
    char *tampered;

    assert_true(verify(f->head, f->body, f->body_len, SUITE_SECRET, &az));
    assert_string_equal(az.akid, SUITE_AKID);
    assert_string_equal(az.region, "eu-central-1");
    assert_string_equal(az.service, service);
    assert_string_equal(az.signed_headers, signed_headers);
    /* the verifier can say no: another secret, or the body changed after signing */
    assert_false(verify(f->head, f->body, f->body_len, "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEX",
                        &az));
    tampered = kn_strdup(f->body);
    tampered[f->body_len - 2] ^= 1;
    assert_false(verify(f->head, tampered, f->body_len, SUITE_SECRET, &az));
    free(tampered);
}

static void test_ecs_json_signed(void **state)
{
    struct fx *f = *state;

    capture(f, KN_AWS_ECS, "DescribeTaskSets",
            "{\"cluster\":\"arn:aws:ecs:eu-central-1:123456789012:cluster/c1\",\"service\":"
            "\"web\",\"taskSets\":[\"ecs-svc/1234567890123456789\"],\"include\":[\"TAGS\"]}");
    check_signed(f, "ecs", "content-type;host;x-amz-date;x-amz-target");
}

static void test_ecs_json_signed_with_session_token(void **state)
{
    struct fx *f = *state;
    char *tok;

    setenv("AWS_SESSION_TOKEN", SUITE_TOKEN, 1);
    capture(f, KN_AWS_ECS, "UpdateTaskSet",
            "{\"cluster\":\"c1\",\"service\":\"web\",\"taskSet\":\"ts\",\"scale\":{\"value\":20.5,"
            "\"unit\":\"PERCENT\"}}");
    check_signed(f, "ecs", "content-type;host;x-amz-date;x-amz-security-token;x-amz-target");
    tok = kn_testsrv_header(f->head, "X-Amz-Security-Token");
    assert_string_equal(tok, SUITE_TOKEN);
    free(tok);
}

static void test_elbv2_form_signed(void **state)
{
    struct fx *f = *state;

    capture(f, KN_AWS_ELBV2, "ModifyRule",
            "{\"RuleArn\":\"arn:aws:elasticloadbalancing:eu-central-1:123456789012:listener-rule/"
            "app/web/1/2/3\",\"Actions\":[{\"Type\":\"forward\",\"Order\":1,\"ForwardConfig\":{"
            "\"TargetGroups\":[{\"TargetGroupArn\":\"arn:tg/a\",\"Weight\":80},{\"TargetGroupArn\":"
            "\"arn:tg/b\",\"Weight\":20}]}}]}");
    check_signed(f, "elasticloadbalancing", "content-type;host;x-amz-date");
}

static void test_elbv2_form_signed_with_session_token(void **state)
{
    struct fx *f = *state;

    setenv("AWS_SESSION_TOKEN", SUITE_TOKEN, 1);
    capture(f, KN_AWS_ELBV2, "DescribeRules", "{\"ListenerArn\":\"arn:l/1\"}");
    check_signed(f, "elasticloadbalancing", "content-type;host;x-amz-date;x-amz-security-token");
}

static void test_cloudwatch_signed(void **state)
{
    struct fx *f = *state;

    capture(f, KN_AWS_CLOUDWATCH, "GetMetricData", "{\"MetricDataQueries\":[]}");
    check_signed(f, "monitoring", "content-type;host;x-amz-date;x-amz-target");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verifier_matches_aws_test_suite),
        cmocka_unit_test(test_verifier_matches_the_ecs_notes_vector),
        cmocka_unit_test(test_verifier_refuses),
        cmocka_unit_test_setup_teardown(test_ecs_json_signed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ecs_json_signed_with_session_token, setup, teardown),
        cmocka_unit_test_setup_teardown(test_elbv2_form_signed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_elbv2_form_signed_with_session_token, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cloudwatch_signed, setup, teardown),
    };

    setenv("no_proxy", "127.0.0.1", 1);
    setenv("NO_PROXY", "127.0.0.1", 1);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
