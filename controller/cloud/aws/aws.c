/*
 * The AWS session: region and endpoints, and calls of the three wire protocols with the SDKs'
 * "standard" retries (see aws.h). One call is a small state machine driven by its own uv_timer:
 *
 *   READY ──▶ (credentials usable?) ──no──▶ WAIT_CREDS ──(resolution ends)──▶ READY
 *     │yes
 *     ▼
 *   IN_FLIGHT ──(retryable, attempts and time left)──▶ BACKOFF ──(timer)──▶ READY
 *     │
 *     ▼
 *   DONE (the callback ran; the timer closes and frees the call)
 *
 * Every state change that could run a callback goes through the timer, so a callback never runs
 * from inside kn_aws_call, and a resolution of the credential chain (credentials.c) only wakes
 * the calls waiting for it. The chain's own requests (STS, container endpoint, IMDS) are calls
 * too (`internal`), unsigned and not in the session's list.
 */
#include "cloud/aws/aws_int.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "kanaria/alloc.h"
#include "kanaria/http.h"
#include "kanaria/log.h"

#define KN_AWS_DEFAULT_TIMEOUT_MS 30000LL
#define KN_AWS_MAX_ATTEMPTS       3
#define KN_AWS_MAX_BACKOFF_MS     20000LL
#define KN_AWS_RETRY_AFTER_MAX_MS 5000LL
#define KN_AWS_WORDS_MAX          400
/* botocore's retry quota: a session's retries draw on 500 tokens, 5 a retry (10 after a
 * timeout); a success gives back what its retry took, or 1. */
#define KN_AWS_RETRY_QUOTA        500
#define KN_AWS_RETRY_COST         5
#define KN_AWS_TIMEOUT_RETRY_COST 10

enum kn_aws_proto { KN_AWS_JSON, KN_AWS_QUERY, KN_AWS_RAW };

static const struct {
    const char *name;    /* in messages: "ecs DescribeTaskSets" */
    const char *env;     /* its endpoint variable */
    const char *prefix;  /* its endpoint's host prefix */
    const char *signing; /* its SigV4 service */
    enum kn_aws_proto proto;
    const char *target;       /* awsJson: X-Amz-Target's prefix */
    const char *content_type; /* of requests */
    const char *version;      /* awsQuery: Version */
} kn_aws_services[KN_AWS_SERVICE_COUNT] = {
    [KN_AWS_ECS] = {"ecs", "AWS_ENDPOINT_URL_ECS", "ecs", "ecs", KN_AWS_JSON,
                    "AmazonEC2ContainerServiceV20141113", "application/x-amz-json-1.1", NULL},
    [KN_AWS_ELBV2] = {"elbv2", "AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING_V2",
                      "elasticloadbalancing", "elasticloadbalancing", KN_AWS_QUERY, NULL,
                      "application/x-www-form-urlencoded; charset=utf-8", "2015-12-01"},
    [KN_AWS_CLOUDWATCH] = {"cloudwatch", "AWS_ENDPOINT_URL_CLOUDWATCH", "monitoring",
                           "monitoring", KN_AWS_JSON, "GraniteServiceVersion20100801",
                           "application/x-amz-json-1.0", NULL},
    [KN_AWS_STS] = {"sts", "AWS_ENDPOINT_URL_STS", "sts", "sts", KN_AWS_QUERY, NULL,
                    "application/x-www-form-urlencoded; charset=utf-8", "2011-06-15"},
};

/* botocore retries/standard.py; LimitExceededException is left out for ECS (a quota there). */
static const char *const kn_aws_throttle_codes[] = {
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
    "TooManyRequestsException", "ProvisionedThroughputExceededException",
    "TransactionInProgressException", "RequestLimitExceeded", "BandwidthLimitExceeded",
    "LimitExceededException", "RequestThrottled", "SlowDown", "PriorRequestNotComplete",
    "EC2ThrottledException", NULL};
static const char *const kn_aws_transient_codes[] = {"RequestTimeout", "RequestTimeoutException",
                                                     "PriorRequestNotComplete", NULL};

enum kn_aws_state { KN_AWS_READY, KN_AWS_WAIT_CREDS, KN_AWS_IN_FLIGHT, KN_AWS_BACKOFF, KN_AWS_DONE };

struct kn_aws_call {
    struct kn_aws *a;
    int svc; /* -1: a plain request */
    enum kn_aws_proto proto;
    char what[160]; /* "ecs DescribeTaskSets" */
    char *method;
    char *url;
    char *body;
    size_t body_len;
    char **headers; /* NULL-terminated */
    int sign;
    int internal;
    int max_attempts;
    long attempt_timeout_ms;
    long long timeout_ms;
    uint64_t deadline_ms;
    enum kn_aws_state state;
    int attempts;
    int whole_attempt; /* the attempt in flight had all the time that was left */
    int refreshed;     /* credentials refreshed once after ExpiredToken */
    int woken;         /* a resolution ended for this call: take what it left */
    int cancelling;
    unsigned gen_used;
    int cred_status; /* the chain failed for this call */
    int quota_used;  /* retry tokens the last retry took */
    struct kn_http_call *http;
    uv_timer_t timer;
    kn_aws_cb cb;
    kn_aws__raw_cb raw_cb;
    void *data;
    /* the last attempt */
    int last_status; /* KN_E* of the last failed attempt */
    int http_status;
    char code[128];
    char words[KN_AWS_WORDS_MAX + 8];
    char request_id[128];
    char msg[1024];
    json_t *reply;
    const char *raw; /* borrowed from the HTTP response while it completes */
    size_t raw_len;
    struct kn_aws_call *prev;
    struct kn_aws_call *next;
    int listed;
};

static void kn_aws_call_step(struct kn_aws_call *c);

static uint64_t kn_aws_now_ms(void)
{
    return uv_hrtime() / 1000000u;
}

const char *kn_aws__env(const char *name)
{
    const char *v = getenv(name);

    return v && *v ? v : NULL;
}

char *kn_aws__expand_home(const char *path)
{
    const char *home;

    if (!path) {
        return NULL;
    }
    if (path[0] == '~' && (path[1] == '/' || path[1] == '\0')) {
        if (!(home = kn_aws__env("HOME"))) {
            return NULL;
        }
        return kn_asprintf("%s%s", home, path + 1);
    }
    return kn_strdup(path);
}

static void kn_aws_wipe_str(char *s)
{
    if (s) {
        OPENSSL_cleanse(s, strlen(s));
        free(s);
    }
}

void kn_aws__creds_clear(struct kn_aws_creds *c)
{
    kn_aws_wipe_str(c->access_key_id);
    kn_aws_wipe_str(c->secret_access_key);
    kn_aws_wipe_str(c->session_token);
    memset(c, 0, sizeof(*c));
}

void kn_aws__json_wipe(json_t *v)
{
    const char *key;
    json_t *member;

    if (json_is_string(v)) {
        /* jansson owns a writable copy; overwrite it in place before it is freed */
        OPENSSL_cleanse((void *)(uintptr_t)json_string_value(v), json_string_length(v));
    } else if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            kn_aws__json_wipe(json_array_get(v, i));
        }
    } else if (json_is_object(v)) {
        json_object_foreach(v, key, member)
        {
            kn_aws__json_wipe(member);
        }
    }
}

void kn_aws_error_code(const char *raw, char *out, size_t size)
{
    const char *start = raw, *end;
    size_t len;

    if (size == 0) {
        return;
    }
    out[0] = '\0';
    if (!raw) {
        return;
    }
    end = raw + strcspn(raw, ":");
    for (const char *p = raw; p < end; p++) {
        if (*p == '#') {
            start = p + 1;
        }
    }
    while (start < end && (*start == ' ' || *start == '\t')) {
        start++;
    }
    while (end > start && (end[-1] == ' ' || end[-1] == '\t')) {
        end--;
    }
    len = (size_t)(end - start);
    if (len >= size) {
        len = size - 1;
    }
    memcpy(out, start, len);
    out[len] = '\0';
}

/* Replace every occurrence of secret in buf (NUL-terminated, of size `size`) by [redacted]. */
static void kn_aws_redact(char *buf, size_t size, const char *secret)
{
    static const char mark[] = "[redacted]";
    size_t slen = secret ? strlen(secret) : 0;
    char *p;

    if (slen < 4) {
        return;
    }
    while ((p = strstr(buf, secret)) != NULL) {
        size_t tail = strlen(p + slen);
        size_t room = size - (size_t)(p - buf) - 1;
        size_t mlen = sizeof(mark) - 1 < room ? sizeof(mark) - 1 : room;
        if (mlen + tail > room) {
            tail = room - mlen;
        }
        memmove(p + mlen, p + slen, tail);
        memcpy(p, mark, mlen);
        p[mlen + tail] = '\0';
    }
}

/* AWS's words, made safe for a message: control characters as spaces, bounded. */
static void kn_aws_set_words(struct kn_aws_call *c, const char *s, size_t len)
{
    size_t n = len < KN_AWS_WORDS_MAX ? len : KN_AWS_WORDS_MAX;

    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        c->words[i] = ch < 0x20 || ch == 0x7f ? ' ' : (char)ch;
    }
    c->words[n] = '\0';
    if (len > n) {
        strcat(c->words, "...");
    }
}

/* ---- the session -------------------------------------------------------------------------- */

static int kn_aws_region_ok(const char *r)
{
    size_t n = strlen(r);

    if (n == 0 || n > 64) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (!((r[i] >= 'a' && r[i] <= 'z') || (r[i] >= '0' && r[i] <= '9') || r[i] == '-')) {
            return 0;
        }
    }
    return 1;
}

static int kn_aws_resolve_region(struct kn_aws *a, const struct kn_aws_config *cfg,
                                 struct kn_error *err)
{
    const char *where = NULL;
    struct kn_aws_ini ini = {0};
    char *section = NULL;
    int rc = 0;

    if (cfg && cfg->region && *cfg->region) {
        a->region = kn_strdup(cfg->region);
        where = "the platform's region";
    } else if (kn_aws__env("AWS_REGION")) {
        a->region = kn_strdup(kn_aws__env("AWS_REGION"));
        where = "AWS_REGION";
    } else if (kn_aws__env("AWS_DEFAULT_REGION")) {
        a->region = kn_strdup(kn_aws__env("AWS_DEFAULT_REGION"));
        where = "AWS_DEFAULT_REGION";
    } else if (a->config_file) {
        section = strcmp(a->profile, "default") == 0 ? kn_strdup("default")
                                                     : kn_asprintf("profile %s", a->profile);
        rc = kn_aws__ini_section(&ini, a->config_file, section, 1, err);
        if (rc < 0 && rc != KN_ENOENT && rc != KN_ENOTFOUND) {
            goto out;
        }
        rc = 0;
        if (kn_aws__ini_get(&ini, "region")) {
            a->region = kn_strdup(kn_aws__ini_get(&ini, "region"));
            where = a->config_file;
        }
    }
    if (!a->region) {
        rc = kn_error_set(err, KN_EINVAL, NULL,
                          "aws: no region: set the platform's region, AWS_REGION or "
                          "AWS_DEFAULT_REGION, or region in profile '%s' of %s",
                          a->profile, a->config_file ? a->config_file : "~/.aws/config");
        goto out;
    }
    if (!kn_aws_region_ok(a->region)) {
        rc = kn_error_set(err, KN_EINVAL, NULL,
                          "aws: region '%.64s' (from %s) is not a region name like us-east-1",
                          a->region, where);
        goto out;
    }
out:
    kn_aws__ini_release(&ini);
    free(section);
    return rc;
}

static int kn_aws_resolve_endpoints(struct kn_aws *a, const struct kn_aws_config *cfg,
                                    struct kn_error *err)
{
    int rc = 0;

    for (int s = 0; s < KN_AWS_SERVICE_COUNT; s++) {
        const char *where = kn_aws_services[s].env;
        const char *url = kn_aws__env(where);
        size_t len;
        if (!url) {
            where = "AWS_ENDPOINT_URL";
            url = kn_aws__env(where);
        }
        if (!url && cfg && cfg->endpoint_url && *cfg->endpoint_url) {
            where = "the platform's endpointUrl";
            url = cfg->endpoint_url;
        }
        if (!url) {
            a->endpoint[s] = kn_asprintf("https://%s.%s.amazonaws.com%s", kn_aws_services[s].prefix,
                                         a->region, strncmp(a->region, "cn-", 3) == 0 ? ".cn" : "");
            continue;
        }
        if ((strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) ||
            strpbrk(url, " \t\r\n?#")) {
            rc = kn_error_set(err, KN_EINVAL, NULL,
                              "aws: %s '%.200s' is not an http:// or https:// URL without a query",
                              where, url);
            goto out;
        }
        len = strlen(url);
        while (len > 0 && url[len - 1] == '/') {
            len--;
        }
        a->endpoint[s] = kn_strndup(url, len);
    }
out:
    return rc;
}

int kn_aws_new(struct kn_aws **out, uv_loop_t *loop, struct kn_http_client *http,
               const struct kn_aws_config *cfg, struct kn_error *err)
{
    struct kn_aws *a = NULL;
    const char *knob;
    int rc = 0;

    *out = NULL;
    if (!loop || !http) {
        rc = kn_error_set(err, KN_EINVAL, NULL, "aws: no loop or HTTP client");
        goto out;
    }
    a = kn_calloc(1, sizeof(*a));
    a->loop = loop;
    a->http = http;
    a->retry_base_ms = -1;
    a->retry_quota = KN_AWS_RETRY_QUOTA;
    if (cfg && cfg->profile && *cfg->profile) {
        a->profile = kn_strdup(cfg->profile);
    } else if (kn_aws__env("AWS_PROFILE")) {
        a->profile = kn_strdup(kn_aws__env("AWS_PROFILE"));
    } else {
        a->profile = kn_strdup("default");
    }
    a->credentials_file = kn_aws__expand_home(kn_aws__env("AWS_SHARED_CREDENTIALS_FILE")
                                                  ? kn_aws__env("AWS_SHARED_CREDENTIALS_FILE")
                                                  : "~/.aws/credentials");
    a->config_file = kn_aws__expand_home(
        kn_aws__env("AWS_CONFIG_FILE") ? kn_aws__env("AWS_CONFIG_FILE") : "~/.aws/config");
    if ((rc = kn_aws_resolve_region(a, cfg, err)) < 0 ||
        (rc = kn_aws_resolve_endpoints(a, cfg, err)) < 0) {
        goto out;
    }
    /* A test knob: the backoff's base in ms instead of botocore's 1 s (throttling) and 50 ms. */
    if ((knob = kn_aws__env("KANARIA_AWS_RETRY_BASE_MS")) != NULL) {
        char *end;
        long long v = strtoll(knob, &end, 10);
        if (*end == '\0' && v >= 0 && v <= KN_AWS_MAX_BACKOFF_MS) {
            a->retry_base_ms = v;
        }
    }
    *out = a;
    a = NULL;
out:
    kn_aws_free(a);
    return rc;
}

const char *kn_aws_region(const struct kn_aws *a)
{
    return a ? a->region : NULL;
}

const char *kn_aws_endpoint(const struct kn_aws *a, enum kn_aws_service svc)
{
    return a && (int)svc >= 0 && svc < KN_AWS_SERVICE_COUNT ? a->endpoint[svc] : NULL;
}

void kn_aws_free(struct kn_aws *a)
{
    if (!a || a->closing) {
        return;
    }
    a->closing = 1;
    while (a->calls) {
        kn_aws_cancel(a->calls);
    }
    kn_aws__resolve_abort(a);
    for (int s = 0; s < KN_AWS_SERVICE_COUNT; s++) {
        free(a->endpoint[s]);
    }
    kn_aws__creds_clear(&a->creds);
    free(a->region);
    free(a->profile);
    free(a->credentials_file);
    free(a->config_file);
    free(a);
}

/* ---- calls -------------------------------------------------------------------------------- */

static void kn_aws_call_on_close(uv_handle_t *h)
{
    struct kn_aws_call *c = h->data;

    if (c->body) {
        OPENSSL_cleanse(c->body, c->body_len);
    }
    free(c->body);
    for (size_t i = 0; c->headers && c->headers[i]; i++) {
        kn_aws_wipe_str(c->headers[i]);
    }
    free(c->headers);
    free(c->method);
    free(c->url);
    free(c);
}

static void kn_aws_unlist(struct kn_aws_call *c)
{
    struct kn_aws *a = c->a;

    if (!c->listed) {
        return;
    }
    if (c->prev) {
        c->prev->next = c->next;
    } else {
        a->calls = c->next;
    }
    if (c->next) {
        c->next->prev = c->prev;
    }
    c->listed = 0;
}

/* The end: run the callback once with status (0: c->reply), then close and free. */
static void kn_aws_call_finish(struct kn_aws_call *c, int status)
{
    struct kn_aws_result r = {0};
    struct kn_aws *a = c->a;

    if (c->state == KN_AWS_DONE) {
        return;
    }
    c->state = KN_AWS_DONE;
    uv_timer_stop(&c->timer);
    kn_aws_unlist(c);
    kn_aws_redact(c->msg, sizeof(c->msg), a->creds.secret_access_key);
    kn_aws_redact(c->msg, sizeof(c->msg), a->creds.session_token);
    r.status = status;
    r.http_status = c->http_status;
    r.code = status != 0 && c->code[0] ? c->code : NULL;
    r.message = status != 0 ? c->msg : NULL;
    r.reply = status == 0 ? c->reply : NULL;
    r.attempts = c->attempts;
    r.request_id = c->request_id[0] ? c->request_id : NULL;
    /* after the callback, the session may be gone: only c is touched */
    if (c->internal) {
        c->raw_cb(&r, status == 0 ? c->raw : NULL, status == 0 ? c->raw_len : 0, c->data);
        kn_aws__json_wipe(c->reply);
    } else {
        c->cb(&r, c->data);
    }
    json_decref(c->reply);
    c->reply = NULL;
    uv_close((uv_handle_t *)&c->timer, kn_aws_call_on_close);
}

static const char *kn_aws_plural(int n)
{
    return n == 1 ? "" : "s";
}

/* The message of the last failed attempt into c->msg. */
static void kn_aws_call_message(struct kn_aws_call *c, const char *extra)
{
    int n = c->attempts;

    if (c->code[0] && c->words[0]) {
        snprintf(c->msg, sizeof(c->msg), "%s: %s (%s, %d attempt%s%s)", c->code, c->words,
                 c->what, n, kn_aws_plural(n), extra);
    } else if (c->code[0]) {
        snprintf(c->msg, sizeof(c->msg), "%s (%s, HTTP %d, %d attempt%s%s)", c->code, c->what,
                 c->http_status, n, kn_aws_plural(n), extra);
    } else if (c->last_status == KN_EPARSE) {
        snprintf(c->msg, sizeof(c->msg), "%s: %s (%d attempt%s%s)", c->what, c->words, n,
                 kn_aws_plural(n), extra);
    } else if (c->http_status) {
        snprintf(c->msg, sizeof(c->msg), "%s: HTTP %d%s%s (%d attempt%s%s)", c->what,
                 c->http_status, c->words[0] ? ": " : "", c->words, n, kn_aws_plural(n), extra);
    } else {
        snprintf(c->msg, sizeof(c->msg), "%s (%s at %s, %d attempt%s%s)", c->words, c->what,
                 c->url, n, kn_aws_plural(n), extra);
    }
}

static void kn_aws_call_timed_out(struct kn_aws_call *c, const char *when)
{
    char *last = NULL, *m;

    if (c->last_status) {
        kn_aws_call_message(c, "");
        last = kn_asprintf("; the last answer: %s", c->msg);
    }
    m = kn_asprintf("%s: timed out after %lld ms %s (%d attempt%s)%s", c->what, c->timeout_ms,
                    when, c->attempts, kn_aws_plural(c->attempts), last ? last : "");
    snprintf(c->msg, sizeof(c->msg), "%s", m);
    free(m);
    free(last);
    kn_aws_call_finish(c, KN_ETIMEDOUT);
}

static void kn_aws_call_on_timer(uv_timer_t *t)
{
    struct kn_aws_call *c = t->data;

    if (c->state == KN_AWS_WAIT_CREDS) {
        kn_aws_call_timed_out(c, "waiting for credentials");
    } else {
        kn_aws_call_step(c);
    }
}

static int kn_aws_in(const char *code, const char *const *list)
{
    for (; *list; list++) {
        if (strcmp(code, *list) == 0) {
            return 1;
        }
    }
    return 0;
}

static double kn_aws_rand01(void)
{
    uint32_t r = 0;

    if (RAND_bytes((unsigned char *)&r, sizeof(r)) != 1) {
        r = (uint32_t)uv_hrtime();
    }
    return (double)r / 4294967296.0;
}

/* "text/html" from the Content-Type header, for a message. */
static void kn_aws_content_type(const struct kn_http_response *res, char *out, size_t size)
{
    const char *ct = kn_http_header(res->headers, "Content-Type", 0);
    size_t n;

    if (!ct || !*ct) {
        snprintf(out, size, "body without a Content-Type");
        return;
    }
    n = strcspn(ct, "; \t");
    if (n > 60) {
        n = 60;
    }
    snprintf(out, size, "%.*s body", (int)n, ct);
}

/* Read an error out of a JSON body: 0 when it was one. */
static int kn_aws_json_error(struct kn_aws_call *c, const char *body, size_t len)
{
    json_t *j = json_loadb(body, len, 0, NULL);
    const char *type, *words;
    int rc = -1;

    if (!json_is_object(j)) {
        goto out;
    }
    type = json_string_value(json_object_get(j, "__type"));
    if (!type) {
        type = json_string_value(json_object_get(j, "code"));
    }
    words = json_string_value(json_object_get(j, "message"));
    if (!words) {
        words = json_string_value(json_object_get(j, "Message"));
    }
    if (!type && !words) {
        goto out;
    }
    kn_aws_error_code(type, c->code, sizeof(c->code));
    if (words) {
        kn_aws_set_words(c, words, strlen(words));
    }
    rc = 0;
out:
    json_decref(j);
    return rc;
}

/* Read an error out of an XML body: 0 when it was one. */
static int kn_aws_xml_error(struct kn_aws_call *c, const char *body, size_t len)
{
    int is_error = 0;
    json_t *j = kn_aws__xml_parse(body, len, &is_error);
    const char *words;
    int rc = -1;

    if (!j || !is_error) {
        goto out;
    }
    kn_aws_error_code(json_string_value(json_object_get(j, "Code")), c->code, sizeof(c->code));
    if ((words = json_string_value(json_object_get(j, "Message"))) != NULL) {
        kn_aws_set_words(c, words, strlen(words));
    }
    rc = 0;
out:
    json_decref(j);
    return rc;
}

/* Classify a response: 0 with c->reply (or c->raw) on success; else the KN_E* of the failure
 * with c->code / c->words set. */
static int kn_aws_classify(struct kn_aws_call *c, const struct kn_http_response *res)
{
    const char *body = res->body;
    size_t len = res->body_len;
    char ctype[96];
    const char *hdr;

    if (res->status >= 200 && res->status < 300) {
        if (c->proto == KN_AWS_RAW) {
            c->raw = body;
            c->raw_len = len;
            return 0;
        }
        if (c->proto == KN_AWS_JSON) {
            c->reply = len == 0 ? json_object() : json_loadb(body, len, 0, NULL);
            if (json_is_object(c->reply)) {
                return 0;
            }
        } else {
            int is_error = 0;
            c->reply = kn_aws__xml_parse(body, len, &is_error);
            if (c->reply && !is_error) {
                return 0;
            }
        }
        json_decref(c->reply);
        c->reply = NULL;
        kn_aws_content_type(res, ctype, sizeof(ctype));
        snprintf(c->words, sizeof(c->words), "HTTP %d with a %s, not an AWS answer", res->status,
                 ctype);
        return KN_EPARSE;
    }
    if (c->proto != KN_AWS_RAW && len > 0) {
        /* moto answers ECS auth errors in XML: try both forms whatever the protocol */
        if (kn_aws_json_error(c, body, len) == 0 || kn_aws_xml_error(c, body, len) == 0) {
            return KN_EIO;
        }
    }
    if ((hdr = kn_http_header(res->headers, "x-amzn-ErrorType", 0)) != NULL && *hdr) {
        kn_aws_error_code(hdr, c->code, sizeof(c->code));
        return KN_EIO;
    }
    if (len == 0 || c->proto == KN_AWS_RAW) {
        return KN_EIO;
    }
    kn_aws_content_type(res, ctype, sizeof(ctype));
    snprintf(c->words, sizeof(c->words), "HTTP %d with a %s, not an AWS answer", res->status,
             ctype);
    return KN_EPARSE;
}

static void kn_aws_call_on_http(const struct kn_http_response *res, void *data)
{
    struct kn_aws_call *c = data;
    struct kn_aws *a = c->a;
    int status, retryable, throttle = 0, expired = 0;
    const char *hdr;
    long long left, delay;

    c->http = NULL;
    if (c->cancelling) {
        return; /* kn_aws_cancel finishes it */
    }
    c->attempts++;
    c->http_status = res->status;
    c->code[0] = '\0';
    c->words[0] = '\0';
    c->raw = NULL;
    if ((hdr = kn_http_header(res->headers, "x-amzn-RequestId", 0)) != NULL ||
        (hdr = kn_http_header(res->headers, "x-amz-request-id", 0)) != NULL) {
        snprintf(c->request_id, sizeof(c->request_id), "%.100s", hdr);
    }
    if (res->code == KN_ECANCELLED) {
        snprintf(c->msg, sizeof(c->msg), "%s: cancelled", c->what);
        kn_aws_call_finish(c, KN_ECANCELLED);
        return;
    }
    if (res->code != 0) {
        if (res->code == KN_ETIMEDOUT && c->whole_attempt) {
            c->last_status = 0;
            kn_aws_call_timed_out(c, "waiting for an answer");
            return;
        }
        status = KN_EIO;
        kn_aws_set_words(c, res->error ? res->error : "no answer",
                         strlen(res->error ? res->error : "no answer"));
        retryable = res->code != KN_ETOOBIG;
    } else {
        if ((status = kn_aws_classify(c, res)) == 0) {
            a->retry_quota += c->quota_used ? c->quota_used : 1;
            if (a->retry_quota > KN_AWS_RETRY_QUOTA) {
                a->retry_quota = KN_AWS_RETRY_QUOTA;
            }
            kn_aws_call_finish(c, 0);
            return;
        }
        retryable = res->status == 500 || res->status == 502 || res->status == 503 ||
                    res->status == 504;
        if (c->code[0]) {
            int quota = c->svc == KN_AWS_ECS && strcmp(c->code, "LimitExceededException") == 0;
            throttle = !quota && kn_aws_in(c->code, kn_aws_throttle_codes);
            retryable = retryable || throttle || kn_aws_in(c->code, kn_aws_transient_codes);
            expired = c->sign && (strcmp(c->code, "ExpiredToken") == 0 ||
                                  strcmp(c->code, "ExpiredTokenException") == 0);
        }
    }
    c->last_status = status;
    if (a->gen == c->gen_used) {
        /* AWS may quote the request back (SignatureDoesNotMatch): never the credentials */
        kn_aws_redact(c->words, sizeof(c->words), a->creds.secret_access_key);
        kn_aws_redact(c->words, sizeof(c->words), a->creds.session_token);
    }
    if (c->attempts >= c->max_attempts || (!retryable && !(expired && !c->refreshed))) {
        kn_aws_call_message(c, "");
        kn_aws_call_finish(c, status);
        return;
    }
    if (expired) {
        /* once: resolve the chain again (unless another call did since) and retry at once */
        c->refreshed = 1;
        if (a->gen == c->gen_used) {
            a->stale = 1;
        }
        c->state = KN_AWS_READY;
        uv_timer_start(&c->timer, kn_aws_call_on_timer, 0, 0);
        return;
    }
    {
        int cost = res->code == KN_ETIMEDOUT ? KN_AWS_TIMEOUT_RETRY_COST : KN_AWS_RETRY_COST;
        if (a->retry_quota < cost) {
            kn_aws_call_message(c, "; the session's retry quota is spent");
            kn_aws_call_finish(c, status);
            return;
        }
        a->retry_quota -= cost;
        c->quota_used = cost;
    }
    {
        long long base = a->retry_base_ms >= 0 ? a->retry_base_ms : throttle ? 1000 : 50;
        long long cap = base << (c->attempts - 1);
        if (cap > KN_AWS_MAX_BACKOFF_MS) {
            cap = KN_AWS_MAX_BACKOFF_MS;
        }
        delay = (long long)(kn_aws_rand01() * (double)cap);
    }
    if ((hdr = kn_http_header(res->headers, "x-amz-retry-after", 0)) != NULL) {
        char *end;
        long long after = strtoll(hdr, &end, 10);
        if (end != hdr && *end == '\0' && after > delay) {
            delay = after < delay + KN_AWS_RETRY_AFTER_MAX_MS ? after
                                                              : delay + KN_AWS_RETRY_AFTER_MAX_MS;
        }
    }
    left = (long long)c->deadline_ms - (long long)kn_aws_now_ms();
    if (delay >= left) {
        kn_aws_call_message(c, "; no time left for another");
        kn_aws_call_finish(c, status);
        return;
    }
    c->state = KN_AWS_BACKOFF;
    uv_timer_start(&c->timer, kn_aws_call_on_timer, (uint64_t)delay, 0);
}

/* Whether the session's credentials may sign now. `woken`: a resolution just ended for this
 * call, so credentials in their last 10 minutes (a refresh that failed) still do. */
static int kn_aws_creds_usable(const struct kn_aws *a, int woken)
{
    long long now = (long long)time(NULL);

    if (!a->creds.access_key_id || a->stale) {
        return 0;
    }
    return a->creds.expires == 0 || a->creds.expires - now > KN_AWS_REFRESH_S ||
           (woken && a->creds.expires > now);
}

static void kn_aws_call_attempt(struct kn_aws_call *c, long long left)
{
    struct kn_aws *a = c->a;
    struct kn_http_aws_sigv4 sig = {0};
    struct kn_http_request req = {0};
    struct kn_error err = {0};
    char provider[128];
    long long t = left;
    int rc;

    if (c->attempt_timeout_ms > 0 && c->attempt_timeout_ms < left) {
        t = c->attempt_timeout_ms;
    }
    c->whole_attempt = t == left;
    req.method = c->method;
    req.url = c->url;
    req.headers = (const char *const *)c->headers;
    req.body = c->body;
    req.body_len = c->body_len;
    req.timeout_ms = t > 0 ? (long)t : 1;
    req.max_response = KN_AWS_MAX_REPLY;
    if (c->sign) {
        snprintf(provider, sizeof(provider), "aws:amz:%s:%s", a->region,
                 kn_aws_services[c->svc].signing);
        sig.provider = provider;
        sig.access_key_id = a->creds.access_key_id;
        sig.secret_access_key = a->creds.secret_access_key;
        /* an empty token header would be signed wrongly by libcurl 7.88 */
        sig.session_token =
            a->creds.session_token && *a->creds.session_token ? a->creds.session_token : NULL;
        req.aws = &sig;
        c->gen_used = a->gen;
    }
    c->state = KN_AWS_IN_FLIGHT;
    if ((rc = kn_http_start(&c->http, a->http, &req, kn_aws_call_on_http, c, &err)) < 0) {
        c->http = NULL;
        c->last_status = KN_EIO;
        snprintf(c->msg, sizeof(c->msg), "%s: %s", c->what, err.msg);
        kn_aws_call_finish(c, KN_EIO);
    }
}

static void kn_aws_call_step(struct kn_aws_call *c)
{
    struct kn_aws *a = c->a;
    long long left = (long long)c->deadline_ms - (long long)kn_aws_now_ms();

    if (c->cred_status) {
        kn_aws_call_finish(c, c->cred_status);
        return;
    }
    if (left <= 0) {
        kn_aws_call_timed_out(c, c->attempts ? "between attempts" : "before it started");
        return;
    }
    if (c->sign && !kn_aws_creds_usable(a, c->woken)) {
        c->woken = 0;
        c->state = KN_AWS_WAIT_CREDS;
        uv_timer_start(&c->timer, kn_aws_call_on_timer, (uint64_t)left, 0);
        if (!a->res) {
            kn_aws__resolve_start(a);
        }
        return;
    }
    c->woken = 0;
    kn_aws_call_attempt(c, left);
}

void kn_aws__resolved(struct kn_aws *a, int status, struct kn_aws_creds *creds, const char *msg)
{
    long long now = (long long)time(NULL);

    if (status == 0) {
        kn_aws__creds_clear(&a->creds);
        a->creds = *creds;
        memset(creds, 0, sizeof(*creds));
        a->stale = 0;
        a->gen++;
        kn_log_info("aws", "region=%s credentials from %s", a->region, a->creds.source);
    } else if (a->creds.access_key_id && !a->stale &&
               (a->creds.expires == 0 || a->creds.expires > now)) {
        /* a refresh that failed: the credentials still valid serve until they expire */
        kn_log_warn("aws", "region=%s refreshing the credentials failed, the current ones expire "
                    "in %lld s: %s", a->region, a->creds.expires - now, msg);
        status = 0;
    }
    for (struct kn_aws_call *c = a->calls; c; c = c->next) {
        if (c->state != KN_AWS_WAIT_CREDS) {
            continue;
        }
        c->state = KN_AWS_READY;
        c->woken = 1;
        if (status < 0) {
            c->cred_status = status;
            snprintf(c->msg, sizeof(c->msg), "%s: %s", c->what, msg);
        }
        uv_timer_start(&c->timer, kn_aws_call_on_timer, 0, 0);
    }
}

static int kn_aws_op_ok(const char *op)
{
    size_t n = op ? strlen(op) : 0;

    if (n == 0 || n > 64) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (!((op[i] >= 'A' && op[i] <= 'Z') || (op[i] >= 'a' && op[i] <= 'z') ||
              (op[i] >= '0' && op[i] <= '9'))) {
            return 0;
        }
    }
    return 1;
}

static char **kn_aws_headers(const char *const *in, const char *h1, const char *h2)
{
    size_t n = 0, k = 0;
    char **out;

    while (in && in[n]) {
        n++;
    }
    out = kn_calloc(n + 3, sizeof(*out));
    for (size_t i = 0; i < n; i++) {
        out[k++] = kn_strdup(in[i]);
    }
    if (h1) {
        out[k++] = kn_strdup(h1);
    }
    if (h2) {
        out[k++] = kn_strdup(h2);
    }
    return out;
}

static int kn_aws_start(struct kn_aws_call **out, struct kn_aws *a, const struct kn_aws__req *req,
                        int internal, kn_aws_cb cb, kn_aws__raw_cb raw_cb, void *data)
{
    struct kn_aws_call *c = NULL;
    json_t *empty = NULL;
    int rc = 0;

    if (out) {
        *out = NULL;
    }
    if (!a || a->closing || req->timeout_ms < 0 || (internal ? !raw_cb : !cb) ||
        (req->svc >= 0 && (req->svc >= KN_AWS_SERVICE_COUNT || !kn_aws_op_ok(req->op) ||
                           (req->params && !json_is_object(req->params)))) ||
        (req->svc < 0 && (!req->url || !req->method))) {
        rc = KN_EINVAL;
        goto out;
    }
    c = kn_calloc(1, sizeof(*c));
    c->a = a;
    c->svc = req->svc;
    c->internal = internal;
    c->sign = !internal;
    c->cb = cb;
    c->raw_cb = raw_cb;
    c->data = data;
    c->max_attempts = req->max_attempts > 0 ? req->max_attempts : KN_AWS_MAX_ATTEMPTS;
    c->attempt_timeout_ms = req->attempt_timeout_ms;
    c->timeout_ms = req->timeout_ms > 0 ? req->timeout_ms : KN_AWS_DEFAULT_TIMEOUT_MS;
    c->deadline_ms = kn_aws_now_ms() + (uint64_t)c->timeout_ms;
    if (req->svc < 0) {
        c->proto = KN_AWS_RAW;
        snprintf(c->what, sizeof(c->what), "%s", req->what ? req->what : "request");
        c->method = kn_strdup(req->method);
        c->url = kn_strdup(req->url);
        c->headers = kn_aws_headers(req->headers, NULL, NULL);
    } else {
        const char *const no_headers[] = {NULL};
        char *ctype = kn_asprintf("Content-Type: %s", kn_aws_services[req->svc].content_type);
        char *target = NULL;
        c->proto = kn_aws_services[req->svc].proto;
        snprintf(c->what, sizeof(c->what), "%s %s", kn_aws_services[req->svc].name, req->op);
        c->method = kn_strdup("POST");
        c->url = kn_asprintf("%s/", a->endpoint[req->svc]);
        if (c->proto == KN_AWS_JSON) {
            empty = json_object();
            c->body = json_dumps(req->params ? req->params : empty, JSON_COMPACT);
            target = kn_asprintf("X-Amz-Target: %s.%s", kn_aws_services[req->svc].target, req->op);
        } else {
            c->body = kn_aws_query_encode(req->op, kn_aws_services[req->svc].version, req->params);
        }
        c->headers = kn_aws_headers(no_headers, ctype, target);
        free(ctype);
        free(target);
        if (!c->body) {
            rc = KN_EINVAL;
            goto out;
        }
        c->body_len = strlen(c->body);
    }
    uv_timer_init(a->loop, &c->timer);
    c->timer.data = c;
    c->state = KN_AWS_READY;
    if (!internal) {
        c->next = a->calls;
        if (a->calls) {
            a->calls->prev = c;
        }
        a->calls = c;
        c->listed = 1;
    }
    uv_timer_start(&c->timer, kn_aws_call_on_timer, 0, 0);
    if (out) {
        *out = c;
    }
    c = NULL;
out:
    json_decref(empty);
    if (c) {
        free(c->body);
        for (size_t i = 0; c->headers && c->headers[i]; i++) {
            free(c->headers[i]);
        }
        free(c->headers);
        free(c->method);
        free(c->url);
        free(c);
    }
    return rc;
}

int kn_aws_call(struct kn_aws_call **out, struct kn_aws *a, enum kn_aws_service svc,
                const char *op, const json_t *params, long long timeout_ms, kn_aws_cb cb,
                void *data)
{
    struct kn_aws__req req = {
        .svc = (int)svc, .op = op, .params = params, .timeout_ms = timeout_ms};

    return kn_aws_start(out, a, &req, 0, cb, NULL, data);
}

int kn_aws__request(struct kn_aws_call **out, struct kn_aws *a, const struct kn_aws__req *req,
                    kn_aws__raw_cb cb, void *data)
{
    return kn_aws_start(out, a, req, 1, NULL, cb, data);
}

void kn_aws_cancel(struct kn_aws_call *c)
{
    if (!c || c->state == KN_AWS_DONE) {
        return;
    }
    if (c->http) {
        c->cancelling = 1;
        kn_http_cancel(c->http);
        c->http = NULL;
    }
    snprintf(c->msg, sizeof(c->msg), "%s: cancelled", c->what);
    c->code[0] = '\0';
    kn_aws_call_finish(c, KN_ECANCELLED);
}
