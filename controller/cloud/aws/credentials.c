/*
 * The SDKs' credential chain (botocore credentials.py, in its order): the environment, web
 * identity, the shared credentials and config files, the container endpoint, IMDSv2. One
 * resolution at a time per session; the calls that need credentials wait for it (aws.c). Steps
 * that read variables and files run at once; the HTTP steps are internal calls of the session,
 * so they have timeouts, retries and cancellation like any other.
 *
 * A source that is configured but fails (a web identity STS refusal, a container endpoint that
 * answers 500) fails the chain with its reason, as botocore does; IMDS that is not there just
 * ends the chain. No message names a secret: files are named, never quoted.
 */
#include "cloud/aws/aws_int.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdarg.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "kanaria/alloc.h"
#include "kanaria/secret.h"

#define KN_AWS_STS_TIMEOUT_MS       10000
#define KN_AWS_CONTAINER_TIMEOUT_MS 2000
#define KN_AWS_IMDS_TIMEOUT_MS      1000
#define KN_AWS_CONTAINER_HOST       "http://169.254.170.2"
#define KN_AWS_IMDS_HOST            "http://169.254.169.254"
#define KN_AWS_IMDS_HOST_V6         "http://[fd00:ec2::254]"

enum kn_aws_step { KN_AWS_ENV, KN_AWS_WEB, KN_AWS_FILES, KN_AWS_CONTAINER, KN_AWS_IMDS, KN_AWS_END };

struct kn_aws_resolve {
    struct kn_aws *a;
    struct kn_aws_call *call; /* the step's request; a resolution waits only on one */
    int aborting;
    char *role_arn;   /* web identity */
    char *imds_base;  /* "http://169.254.169.254" */
    char *imds_token; /* wiped */
    char *imds_role;
};

/* ---- small pieces ------------------------------------------------------------------------- */

static long long kn_aws_days_from_civil(long long y, unsigned m, unsigned d)
{
    /* Howard Hinnant's days_from_civil */
    long long era;
    unsigned yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = (unsigned)(y - era * 400);
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (long long)doe - 719468;
}

long long kn_aws__parse_time(const char *s)
{
    int y, mo, d, h, mi, se, n = 0;
    long long off = 0;
    const char *p;

    if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &se, &n) != 6 ||
        n == 0 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60) {
        return -1;
    }
    p = s + n;
    if (*p == '.') {
        for (p++; *p >= '0' && *p <= '9'; p++) {
        }
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om, k = 0;
        if (sscanf(p + 1, "%2d:%2d%n", &oh, &om, &k) != 2 || k != 5) {
            return -1;
        }
        off = (long long)(oh * 3600 + om * 60) * (*p == '-' ? -1 : 1);
        p += 6;
    }
    if (*p != '\0') {
        return -1;
    }
    return kn_aws_days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 +
           se - off;
}

static char *kn_aws_trim(char *s)
{
    char *end;

    while (*s == ' ' || *s == '\t' || *s == '\r') {
        s++;
    }
    end = s + strlen(s);
    while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r' || end[-1] == '\n')) {
        *--end = '\0';
    }
    return s;
}

/* Whether the header `[name]` (trimmed) is the section asked for. */
static int kn_aws_ini_match(const char *name, const char *section, int config_file)
{
    if (!config_file) {
        return strcmp(name, section) == 0;
    }
    if (strncmp(name, "profile", 7) == 0 && (name[7] == ' ' || name[7] == '\t')) {
        const char *rest = name + 8;
        while (*rest == ' ' || *rest == '\t') {
            rest++;
        }
        if (strcmp(section, "default") == 0) {
            return strcmp(rest, "default") == 0;
        }
        return strncmp(section, "profile ", 8) == 0 && strcmp(rest, section + 8) == 0;
    }
    return strcmp(name, section) == 0 && strcmp(section, "default") == 0;
}

int kn_aws__ini_section(struct kn_aws_ini *out, const char *path, const char *section,
                        int config_file, struct kn_error *err)
{
    struct kn_buf b;
    char chunk[4096];
    FILE *f = NULL;
    size_t n;
    int found = 0, in = 0, rc = 0;
    char *line, *save = NULL;

    memset(out, 0, sizeof(*out));
    kn_buf_init(&b, KN_AWS_MAX_INI);
    if (!path) {
        rc = KN_ENOENT;
        goto out;
    }
    if (!(f = fopen(path, "r"))) {
        rc = errno == ENOENT ? KN_ENOENT
                             : kn_error_set(err, KN_EIO, NULL, "aws: cannot read '%s': %s", path,
                                            strerror(errno));
        goto out;
    }
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (kn_buf_add(&b, chunk, n) < 0) {
            rc = kn_error_set(err, KN_ETOOBIG, NULL, "aws: '%s' is larger than %zu bytes", path,
                              KN_AWS_MAX_INI);
            goto out;
        }
    }
    if (ferror(f)) {
        rc = kn_error_set(err, KN_EIO, NULL, "aws: cannot read '%s'", path);
        goto out;
    }
    for (line = b.data ? strtok_r(b.data, "\n", &save) : NULL; line;
         line = strtok_r(NULL, "\n", &save)) {
        int nested = line[0] == ' ' || line[0] == '\t';
        char *t = kn_aws_trim(line), *eq;
        if (*t == '\0' || *t == '#' || *t == ';') {
            continue;
        }
        if (*t == '[') {
            char *close = strrchr(t, ']');
            if (close) {
                *close = '\0';
                in = kn_aws_ini_match(kn_aws_trim(t + 1), section, config_file);
                found |= in;
            } else {
                in = 0;
            }
            continue;
        }
        /* nested lines (`s3 =` then indented keys) belong to a sub-section: not ours */
        if (!in || nested || !(eq = strchr(t, '='))) {
            continue;
        }
        *eq = '\0';
        out->keys = kn_reallocarray(out->keys, out->n + 1, sizeof(*out->keys));
        out->vals = kn_reallocarray(out->vals, out->n + 1, sizeof(*out->vals));
        out->keys[out->n] = kn_strdup(kn_aws_trim(t));
        out->vals[out->n] = kn_strdup(kn_aws_trim(eq + 1));
        out->n++;
    }
    if (!found) {
        rc = KN_ENOTFOUND;
    }
out:
    if (f) {
        fclose(f);
    }
    if (b.data) {
        OPENSSL_cleanse(b.data, b.cap);
    }
    kn_buf_release(&b);
    OPENSSL_cleanse(chunk, sizeof(chunk));
    return rc;
}

const char *kn_aws__ini_get(const struct kn_aws_ini *ini, const char *key)
{
    const char *v = NULL;

    for (size_t i = 0; ini && i < ini->n; i++) {
        if (strcmp(ini->keys[i], key) == 0) {
            v = ini->vals[i]; /* the last one wins */
        }
    }
    return v && *v ? v : NULL;
}

void kn_aws__ini_release(struct kn_aws_ini *ini)
{
    for (size_t i = 0; i < ini->n; i++) {
        free(ini->keys[i]);
        OPENSSL_cleanse(ini->vals[i], strlen(ini->vals[i]));
        free(ini->vals[i]);
    }
    free(ini->keys);
    free(ini->vals);
    memset(ini, 0, sizeof(*ini));
}

static void kn_aws_creds_set(struct kn_aws_creds *c, const char *akid, const char *secret,
                             const char *token, long long expires, const char *source)
{
    kn_aws__creds_clear(c);
    c->access_key_id = kn_strdup(akid);
    c->secret_access_key = kn_strdup(secret);
    c->session_token = token && *token ? kn_strdup(token) : NULL;
    c->expires = expires > 0 ? expires : 0;
    snprintf(c->source, sizeof(c->source), "%s", source);
}

/* Credentials from a JSON object with the given member names; 0, or -1 when incomplete. */
static int kn_aws_creds_from_json(struct kn_aws_creds *c, const json_t *o, const char *k_id,
                                  const char *k_secret, const char *k_token, const char *source)
{
    const char *id = json_string_value(json_object_get(o, k_id));
    const char *secret = json_string_value(json_object_get(o, k_secret));
    const char *exp = json_string_value(json_object_get(o, "Expiration"));

    if (!id || !*id || !secret || !*secret) {
        return -1;
    }
    kn_aws_creds_set(c, id, secret, json_string_value(json_object_get(o, k_token)),
                     exp ? kn_aws__parse_time(exp) : 0, source);
    return 0;
}

/* ---- the resolution ----------------------------------------------------------------------- */

static void kn_aws_resolve_run(struct kn_aws_resolve *res, enum kn_aws_step step);

static void kn_aws_resolve_free(struct kn_aws_resolve *res)
{
    free(res->role_arn);
    free(res->imds_base);
    if (res->imds_token) {
        OPENSSL_cleanse(res->imds_token, strlen(res->imds_token));
        free(res->imds_token);
    }
    free(res->imds_role);
    free(res);
}

/* The end of the resolution: the session learns the outcome and wakes its calls. */
static void kn_aws_resolve_end(struct kn_aws_resolve *res, int status, struct kn_aws_creds *creds,
                               const char *msg)
{
    struct kn_aws *a = res->a;

    a->res = NULL;
    kn_aws_resolve_free(res);
    kn_aws__resolved(a, status, creds, msg);
}

static void kn_aws_resolve_fail(struct kn_aws_resolve *res, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void kn_aws_resolve_fail(struct kn_aws_resolve *res, int status, const char *fmt, ...)
{
    char msg[KN_ERROR_MSG_MAX + 128];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    kn_aws_resolve_end(res, status, NULL, msg);
}

/* A completion of a step's request: 1 when the resolution was stopped (res is gone). */
static int kn_aws_resolve_aborted(struct kn_aws_resolve *res)
{
    res->call = NULL;
    if (res->aborting) {
        kn_aws_resolve_free(res);
        return 1;
    }
    return 0;
}

static void kn_aws_on_web_identity(const struct kn_aws_result *r, const char *body, size_t len,
                                   void *data)
{
    struct kn_aws_resolve *res = data;
    struct kn_aws_creds creds = {0};
    char source[300];

    (void)body;
    (void)len;
    if (kn_aws_resolve_aborted(res)) {
        return;
    }
    if (r->status < 0) {
        kn_aws_resolve_fail(res, r->status, "web identity (role %s): %s", res->role_arn,
                            r->message);
        return;
    }
    snprintf(source, sizeof(source), "web identity (role %s)", res->role_arn);
    if (kn_aws_creds_from_json(&creds, json_object_get(r->reply, "Credentials"), "AccessKeyId",
                               "SecretAccessKey", "SessionToken", source) < 0) {
        kn_aws_resolve_fail(res, KN_EPARSE,
                            "web identity (role %s): sts AssumeRoleWithWebIdentity answered "
                            "without Credentials",
                            res->role_arn);
        return;
    }
    kn_aws_resolve_end(res, 0, &creds, NULL);
}

/* Web identity: 1 when a request was started, 0 when not configured, < 0 when it failed (res is
 * gone then). */
static int kn_aws_step_web(struct kn_aws_resolve *res, const struct kn_aws_ini *profile)
{
    struct kn_aws *a = res->a;
    const char *file = kn_aws__env("AWS_WEB_IDENTITY_TOKEN_FILE");
    const char *role = kn_aws__env("AWS_ROLE_ARN");
    const char *session = kn_aws__env("AWS_ROLE_SESSION_NAME");
    struct kn_secret token = {0};
    struct kn_error err = {0};
    struct kn_aws__req req = {0};
    char *path = NULL, *name = NULL;
    json_t *params = NULL;
    int rc;

    if (!file && !role) {
        file = kn_aws__ini_get(profile, "web_identity_token_file");
        role = kn_aws__ini_get(profile, "role_arn");
        session = kn_aws__ini_get(profile, "role_session_name");
    }
    if (!file || !role) {
        rc = 0;
        goto out;
    }
    res->role_arn = kn_strdup(role);
    path = kn_aws__expand_home(file);
    if ((rc = kn_secret_read(&token, path ? path : file, 0, &err)) < 0) {
        kn_aws_resolve_fail(res, rc, "web identity (role %s): %s", role, err.msg);
        goto out;
    }
    name = session ? kn_strdup(session) : kn_asprintf("kanaria-%lld", (long long)time(NULL));
    params = json_pack("{s:s, s:s, s:s}", "RoleArn", role, "RoleSessionName", name,
                       "WebIdentityToken", token.data);
    req.svc = KN_AWS_STS;
    req.op = "AssumeRoleWithWebIdentity";
    req.params = params;
    req.timeout_ms = KN_AWS_STS_TIMEOUT_MS;
    if (!params || (rc = kn_aws__request(&res->call, a, &req, kn_aws_on_web_identity, res)) < 0) {
        kn_aws_resolve_fail(res, KN_EINVAL, "web identity (role %s): cannot call STS", role);
        rc = KN_EINVAL;
        goto out;
    }
    rc = 1;
out:
    kn_aws__json_wipe(params);
    json_decref(params);
    kn_secret_release(&token);
    free(path);
    free(name);
    return rc;
}

/* The shared files: 1 with creds, 0 when they hold none, < 0 with err when one cannot be read. */
static int kn_aws_step_files(struct kn_aws *a, const struct kn_aws_ini *profile,
                             struct kn_aws_creds *creds, struct kn_error *err)
{
    struct kn_aws_ini ini = {0};
    char source[300];
    int rc;

    rc = kn_aws__ini_section(&ini, a->credentials_file, a->profile, 0, err);
    if (rc < 0 && rc != KN_ENOENT && rc != KN_ENOTFOUND) {
        goto out;
    }
    rc = 0;
    if (kn_aws__ini_get(&ini, "aws_access_key_id") &&
        kn_aws__ini_get(&ini, "aws_secret_access_key")) {
        const char *token = kn_aws__ini_get(&ini, "aws_session_token");
        snprintf(source, sizeof(source), "%s (profile %s)", a->credentials_file, a->profile);
        kn_aws_creds_set(creds, kn_aws__ini_get(&ini, "aws_access_key_id"),
                         kn_aws__ini_get(&ini, "aws_secret_access_key"),
                         token ? token : kn_aws__ini_get(&ini, "aws_security_token"), 0, source);
        rc = 1;
        goto out;
    }
    if (kn_aws__ini_get(profile, "aws_access_key_id") &&
        kn_aws__ini_get(profile, "aws_secret_access_key")) {
        snprintf(source, sizeof(source), "%s (profile %s)", a->config_file, a->profile);
        kn_aws_creds_set(creds, kn_aws__ini_get(profile, "aws_access_key_id"),
                         kn_aws__ini_get(profile, "aws_secret_access_key"),
                         kn_aws__ini_get(profile, "aws_session_token"), 0, source);
        rc = 1;
    }
out:
    kn_aws__ini_release(&ini);
    return rc;
}

/* FULL_URI hosts botocore allows: loopback, the ECS and EKS Pod Identity agents. */
static int kn_aws_container_host_ok(const char *url)
{
    CURLU *u = curl_url();
    char *host = NULL, *scheme = NULL;
    int ok = 0;

    if (!u || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK) {
        goto out;
    }
    if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) {
        goto out;
    }
    if (strncmp(host, "127.", 4) == 0) {
        ok = strspn(host, "0123456789.") == strlen(host);
    } else {
        ok = strcasecmp(host, "localhost") == 0 || strcmp(host, "[::1]") == 0 ||
             strcmp(host, "169.254.170.2") == 0 || strcmp(host, "169.254.170.23") == 0 ||
             strcasecmp(host, "[fd00:ec2::23]") == 0;
    }
out:
    curl_free(host);
    curl_free(scheme);
    curl_url_cleanup(u);
    return ok;
}

static void kn_aws_on_container(const struct kn_aws_result *r, const char *body, size_t len,
                                void *data)
{
    struct kn_aws_resolve *res = data;
    struct kn_aws_creds creds = {0};
    json_t *j = NULL;

    if (kn_aws_resolve_aborted(res)) {
        return;
    }
    if (r->status < 0) {
        kn_aws_resolve_fail(res, r->status, "the container endpoint: %s", r->message);
        return;
    }
    j = json_loadb(body, len, 0, NULL);
    if (kn_aws_creds_from_json(&creds, j, "AccessKeyId", "SecretAccessKey", "Token",
                               "the container endpoint") < 0) {
        kn_aws_resolve_fail(res, KN_EPARSE,
                            "the container endpoint answered without AccessKeyId and "
                            "SecretAccessKey");
    } else {
        kn_aws_resolve_end(res, 0, &creds, NULL);
    }
    kn_aws__json_wipe(j);
    json_decref(j);
}

/* The container endpoint: 1 when a request was started, 0 when not configured, < 0 when it
 * failed (res is gone then). */
static int kn_aws_step_container(struct kn_aws_resolve *res)
{
    const char *rel = kn_aws__env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
    const char *full = kn_aws__env("AWS_CONTAINER_CREDENTIALS_FULL_URI");
    const char *token_file = kn_aws__env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
    const char *token_env = kn_aws__env("AWS_CONTAINER_AUTHORIZATION_TOKEN");
    const char *headers[2] = {NULL, NULL};
    struct kn_secret token = {0};
    struct kn_error err = {0};
    struct kn_aws__req req = {0};
    char *url = NULL, *auth = NULL;
    int rc = 0;

    if (rel) {
        url = kn_asprintf("%s%s%s", KN_AWS_CONTAINER_HOST, rel[0] == '/' ? "" : "/", rel);
    } else if (full) {
        if (!kn_aws_container_host_ok(full)) {
            kn_aws_resolve_fail(res, KN_EINVAL,
                                "AWS_CONTAINER_CREDENTIALS_FULL_URI '%.200s' is not on a "
                                "loopback address, 169.254.170.2, 169.254.170.23 or "
                                "fd00:ec2::23",
                                full);
            rc = KN_EINVAL;
            goto out;
        }
        url = kn_strdup(full);
        if (token_file) {
            if ((rc = kn_secret_read(&token, token_file, KN_SECRET_LINE, &err)) < 0) {
                kn_aws_resolve_fail(res, rc, "the container endpoint's token: %s", err.msg);
                goto out;
            }
            auth = kn_asprintf("Authorization: %s", token.data);
        } else if (token_env) {
            if (strpbrk(token_env, "\r\n")) {
                kn_aws_resolve_fail(res, KN_EINVAL,
                                    "AWS_CONTAINER_AUTHORIZATION_TOKEN holds a line end");
                rc = KN_EINVAL;
                goto out;
            }
            auth = kn_asprintf("Authorization: %s", token_env);
        }
    } else {
        goto out;
    }
    headers[0] = auth;
    req.svc = -1;
    req.what = "the container endpoint";
    req.method = "GET";
    req.url = url;
    req.headers = headers;
    req.max_attempts = 3;
    req.attempt_timeout_ms = KN_AWS_CONTAINER_TIMEOUT_MS;
    req.timeout_ms = 3 * KN_AWS_CONTAINER_TIMEOUT_MS + 1000;
    if (kn_aws__request(&res->call, res->a, &req, kn_aws_on_container, res) < 0) {
        kn_aws_resolve_fail(res, KN_EINVAL, "the container endpoint: cannot request %s", url);
        rc = KN_EINVAL;
        goto out;
    }
    rc = 1;
out:
    kn_secret_release(&token);
    kn_secret_free_str(auth);
    free(url);
    return rc;
}

/* IMDSv2, one request after the other: the token, the role's name, the role's credentials. */
static void kn_aws_imds_request(struct kn_aws_resolve *res, const char *method, const char *path,
                                kn_aws__raw_cb cb);

static void kn_aws_imds_none(struct kn_aws_resolve *res)
{
    kn_aws_resolve_run(res, KN_AWS_END);
}

static void kn_aws_on_imds_creds(const struct kn_aws_result *r, const char *body, size_t len,
                                 void *data)
{
    struct kn_aws_resolve *res = data;
    struct kn_aws_creds creds = {0};
    const char *code;
    char source[300];
    json_t *j;

    if (kn_aws_resolve_aborted(res)) {
        return;
    }
    if (r->status < 0) {
        kn_aws_imds_none(res);
        return;
    }
    j = json_loadb(body, len, 0, NULL);
    code = json_string_value(json_object_get(j, "Code"));
    snprintf(source, sizeof(source), "the instance metadata (role %s)", res->imds_role);
    if ((code && strcmp(code, "Success") != 0) ||
        kn_aws_creds_from_json(&creds, j, "AccessKeyId", "SecretAccessKey", "Token", source) <
            0) {
        kn_aws_imds_none(res);
    } else {
        kn_aws_resolve_end(res, 0, &creds, NULL);
    }
    kn_aws__json_wipe(j);
    json_decref(j);
}

static void kn_aws_on_imds_role(const struct kn_aws_result *r, const char *body, size_t len,
                                void *data)
{
    struct kn_aws_resolve *res = data;
    size_t n;
    char *path;

    if (kn_aws_resolve_aborted(res)) {
        return;
    }
    n = r->status == 0 ? strcspn(body, "\r\n") : 0;
    if (n == 0 || n > 128 || n > len || memchr(body, '/', n)) {
        kn_aws_imds_none(res);
        return;
    }
    res->imds_role = kn_strndup(body, n);
    path = kn_asprintf("/latest/meta-data/iam/security-credentials/%s", res->imds_role);
    kn_aws_imds_request(res, "GET", path, kn_aws_on_imds_creds);
    free(path);
}

static void kn_aws_on_imds_token(const struct kn_aws_result *r, const char *body, size_t len,
                                 void *data)
{
    struct kn_aws_resolve *res = data;
    size_t n;

    if (kn_aws_resolve_aborted(res)) {
        return;
    }
    n = r->status == 0 ? strcspn(body, "\r\n") : 0;
    if (n == 0 || n > 4096 || n > len) {
        kn_aws_imds_none(res);
        return;
    }
    res->imds_token = kn_strndup(body, n);
    kn_aws_imds_request(res, "GET", "/latest/meta-data/iam/security-credentials/",
                        kn_aws_on_imds_role);
}

static void kn_aws_imds_request(struct kn_aws_resolve *res, const char *method, const char *path,
                                kn_aws__raw_cb cb)
{
    const char *headers[2] = {NULL, NULL};
    struct kn_aws__req req = {0};
    char *url = kn_asprintf("%s%s", res->imds_base, path);
    char *h = res->imds_token ? kn_asprintf("X-aws-ec2-metadata-token: %s", res->imds_token)
                              : kn_strdup("X-aws-ec2-metadata-token-ttl-seconds: 21600");

    headers[0] = h;
    req.svc = -1;
    req.what = "the instance metadata";
    req.method = method;
    req.url = url;
    req.headers = headers;
    req.max_attempts = 1;
    req.timeout_ms = KN_AWS_IMDS_TIMEOUT_MS;
    if (kn_aws__request(&res->call, res->a, &req, cb, res) < 0) {
        kn_aws_imds_none(res);
    }
    kn_secret_free_str(h);
    free(url);
}

static void kn_aws_resolve_run(struct kn_aws_resolve *res, enum kn_aws_step step)
{
    struct kn_aws *a = res->a;
    struct kn_aws_creds creds = {0};
    struct kn_aws_ini profile = {0};
    struct kn_error err = {0};
    char *section = NULL;
    const char *v;
    int rc;

    section = strcmp(a->profile, "default") == 0 ? kn_strdup("default")
                                                 : kn_asprintf("profile %s", a->profile);
    rc = kn_aws__ini_section(&profile, a->config_file, section, 1, &err);
    if (rc < 0 && rc != KN_ENOENT && rc != KN_ENOTFOUND) {
        kn_aws_resolve_fail(res, rc, "%s", err.msg);
        goto out;
    }
    for (; step < KN_AWS_END; step++) {
        switch (step) {
        case KN_AWS_ENV: {
            const char *id = kn_aws__env("AWS_ACCESS_KEY_ID");
            const char *secret = kn_aws__env("AWS_SECRET_ACCESS_KEY");
            const char *token = kn_aws__env("AWS_SESSION_TOKEN");
            if (!id && !secret) {
                break;
            }
            if (!id || !secret) {
                kn_aws_resolve_fail(res, KN_EINVAL, "%s is set without %s",
                                    id ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY",
                                    id ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID");
                goto out;
            }
            kn_aws_creds_set(&creds, id, secret, token ? token : kn_aws__env("AWS_SECURITY_TOKEN"),
                             0, "the environment");
            kn_aws_resolve_end(res, 0, &creds, NULL);
            goto out;
        }
        case KN_AWS_WEB:
            if (kn_aws_step_web(res, &profile) != 0) {
                goto out; /* started, or failed and ended */
            }
            break;
        case KN_AWS_FILES:
            if ((rc = kn_aws_step_files(a, &profile, &creds, &err)) < 0) {
                kn_aws_resolve_fail(res, rc, "%s", err.msg);
                goto out;
            }
            if (rc > 0) {
                kn_aws_resolve_end(res, 0, &creds, NULL);
                goto out;
            }
            break;
        case KN_AWS_CONTAINER:
            if (kn_aws_step_container(res) != 0) {
                goto out;
            }
            break;
        case KN_AWS_IMDS:
            v = kn_aws__env("AWS_EC2_METADATA_DISABLED");
            if (v && strcasecmp(v, "true") == 0) {
                break;
            }
            if ((v = kn_aws__env("AWS_EC2_METADATA_SERVICE_ENDPOINT")) != NULL) {
                size_t n = strlen(v);
                while (n > 0 && v[n - 1] == '/') {
                    n--;
                }
                res->imds_base = kn_strndup(v, n);
            } else {
                v = kn_aws__env("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE");
                res->imds_base = kn_strdup(v && strcasecmp(v, "ipv6") == 0 ? KN_AWS_IMDS_HOST_V6
                                                                          : KN_AWS_IMDS_HOST);
            }
            kn_aws_imds_request(res, "PUT", "/latest/api/token", kn_aws_on_imds_token);
            goto out;
        case KN_AWS_END:
            break;
        }
    }
    kn_aws_resolve_fail(res, KN_EINVAL,
                        "no AWS credentials: looked in the environment, web identity, %s and %s "
                        "(profile %s), the container endpoint and the instance metadata%s",
                        a->credentials_file ? a->credentials_file : "~/.aws/credentials",
                        a->config_file ? a->config_file : "~/.aws/config", a->profile,
                        (v = kn_aws__env("AWS_EC2_METADATA_DISABLED")) && strcasecmp(v, "true") == 0
                            ? " (disabled by AWS_EC2_METADATA_DISABLED)"
                            : "");
out:
    kn_aws__creds_clear(&creds);
    kn_aws__ini_release(&profile);
    free(section);
}

void kn_aws__resolve_start(struct kn_aws *a)
{
    struct kn_aws_resolve *res = kn_calloc(1, sizeof(*res));

    res->a = a;
    a->res = res;
    kn_aws_resolve_run(res, KN_AWS_ENV);
}

void kn_aws__resolve_abort(struct kn_aws *a)
{
    struct kn_aws_resolve *res = a->res;

    if (!res) {
        return;
    }
    a->res = NULL;
    res->aborting = 1;
    if (res->call) {
        kn_aws_cancel(res->call); /* its completion frees res */
    } else {
        kn_aws_resolve_free(res);
    }
}
