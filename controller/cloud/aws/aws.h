/*
 * kanaria — calling AWS: one session per platform (or metrics provider) with its region, its
 * credentials from the SDKs' standard chain, its endpoints, and calls of the three wire protocols
 * kanaria needs, retried as the SDKs' "standard" retry mode does.
 *
 *   ECS          awsJson1_1  POST /, X-Amz-Target AmazonEC2ContainerServiceV20141113.<Op>
 *   ELBv2        awsQuery    POST /, form body Action=<Op>&Version=2015-12-01&..., XML reply
 *   CloudWatch   awsJson1_0  POST /, X-Amz-Target GraniteServiceVersion20100801.<Op>
 *   STS          awsQuery    (AssumeRoleWithWebIdentity, unsigned, for web identity credentials)
 *
 * Parameters and replies are JSON whatever the protocol: an awsQuery call's parameters are
 * serialised from a JSON object (objects as `Name.Key`, arrays as `Name.member.N` from 1, an
 * empty array as `Name=`, true and false as such, numbers in decimal, null members left out),
 * and its XML reply is read back into JSON (the <OpResult> element: an element of text is a
 * string, an element of elements an object, an element whose children are all <member> an
 * array; an empty element is ""; an empty or absent <OpResult> is {}). Every leaf of such a
 * reply is a string: `"Weight": "80"`, `"IsDefault": "false"`, `"Priority": "default"`; an
 * empty list (`<Conditions/>`) is "", which json_array_size() reads as 0. DescribeRules gives
 * {"Rules": [{"RuleArn": "...", "Priority": "10", "IsDefault": "false", "Conditions": [...],
 * "Actions": [{"Type": "forward", "Order": "1", "ForwardConfig": {"TargetGroups":
 * [{"TargetGroupArn": "...", "Weight": "100"}, ...], "TargetGroupStickinessConfig":
 * {"Enabled": "false"}}}]}, ...], "NextMarker": "..."} (no NextMarker, or "", on the last page;
 * ResponseMetadata is left out). So a caller can take an ELBv2 action read from DescribeRules,
 * change a weight and send it back: strings encode as they came.
 *
 * Signing is libcurl's CURLOPT_AWS_SIGV4 (all four parts of its parameter given, a POST to path
 * `/` with no query string, no header that 7.88 signs wrongly: see include/kanaria/http.h). The
 * signed headers are content-type, host, x-amz-date, x-amz-security-token (only with a non-empty
 * session token) and x-amz-target (awsJson); never Expect or a second X-Amz-Date.
 *
 * Credentials, in the SDKs' order: the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
 * AWS_SESSION_TOKEN), web identity (AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN, also from the
 * profile's web_identity_token_file/role_arn, through STS AssumeRoleWithWebIdentity), the shared
 * files (AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials, then AWS_CONFIG_FILE or
 * ~/.aws/config; the profile from the config, else AWS_PROFILE, else `default`; `[NAME]` in the
 * credentials file, `[profile NAME]` or `[default]` in the config file; aws_access_key_id,
 * aws_secret_access_key, aws_session_token), the container endpoint
 * (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI on 169.254.170.2, or _FULL_URI on a loopback address,
 * 169.254.170.2, 169.254.170.23 or fd00:ec2::23, with AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE or
 * _TOKEN), then IMDSv2 (unless AWS_EC2_METADATA_DISABLED=true; at
 * AWS_EC2_METADATA_SERVICE_ENDPOINT when set; 1 s, 1 attempt; no IMDSv1 fallback). They are
 * resolved at the first call (one resolution at a time: concurrent calls wait for it), kept, and
 * refreshed when temporary ones come within 10 minutes of their expiry (or once per call after
 * an ExpiredToken answer); the credential variables and files are read at each resolution, the
 * web identity token file too. A source that is configured but fails fails the call with its
 * reason; a chain that finds nothing fails it with KN_EINVAL, "no AWS credentials: looked in the
 * environment, web identity, FILES, the container endpoint and the instance metadata". No
 * secret ever reaches a log line, a message or an error (AWS's words are redacted too), and
 * secrets are wiped from memory when freed.
 *
 * Endpoints: AWS_ENDPOINT_URL_<SERVICE> (ECS, ELASTIC_LOAD_BALANCING_V2, CLOUDWATCH, STS), else
 * AWS_ENDPOINT_URL, else the config's endpointUrl, else https://<prefix>.<region>.amazonaws.com
 * (.amazonaws.com.cn in cn- regions). These variables, the region's and AWS_PROFILE are read
 * when the session is made.
 *
 * A test knob: KANARIA_AWS_RETRY_BASE_MS (read when the session is made) replaces the backoff's
 * base (1 s for throttling, 50 ms otherwise) so that tests of retries stay fast.
 *
 * Every function runs on the loop thread.
 */
#ifndef KANARIA_CLOUD_AWS_H
#define KANARIA_CLOUD_AWS_H

#include <jansson.h>
#include <stdint.h>
#include <uv.h>

#include "kanaria/error.h"
#include "kanaria/schema.h"

struct kn_http_client;

/* The keys of an AWS-backed `platforms[]` entry (type ecs) beside name and type; a CloudWatch
 * metrics provider borrows its platform's. */
struct kn_aws_config {
    uint64_t set;
    char *region;       /* NULL: AWS_REGION, AWS_DEFAULT_REGION, the profile's region */
    char *profile;      /* NULL: AWS_PROFILE, else "default" */
    char *endpoint_url; /* NULL or "": the service's endpoint (see above) */
};

/* Its table: the ecs type's config_schema. */
extern const struct kn_schema kn_aws_config_schema;

enum kn_aws_service {
    KN_AWS_ECS = 0,
    KN_AWS_ELBV2,
    KN_AWS_CLOUDWATCH,
    KN_AWS_STS,
    KN_AWS_SERVICE_COUNT
};

struct kn_aws;

/*
 * A session for cfg (copied). The region is resolved now: KN_EINVAL with err saying where it was
 * looked for when there is none. Credentials are not read until the first call.
 */
int kn_aws_new(struct kn_aws **out, uv_loop_t *loop, struct kn_http_client *http,
               const struct kn_aws_config *cfg, struct kn_error *err);
/* Calls in flight end with KN_ECANCELLED (callbacks run), then free. NULL is a no-op. */
void kn_aws_free(struct kn_aws *a);
const char *kn_aws_region(const struct kn_aws *a);
/* The endpoint a service's calls go to ("http://127.0.0.1:5000"), for messages and tests. */
const char *kn_aws_endpoint(const struct kn_aws *a, enum kn_aws_service svc);

/* The outcome of one call (after its retries). Everything is borrowed for the callback. */
struct kn_aws_result {
    int status;          /* 0; or KN_EIO (AWS said no, 5xx, transport), KN_ETIMEDOUT,
                            KN_ECANCELLED, KN_EPARSE (a reply that is not the protocol's: moto's
                            HTML 500), KN_EINVAL (no credentials) */
    int http_status;     /* of the last attempt; 0 without a response */
    const char *code;    /* AWS's error code, sanitised ("ThrottlingException",
                            "TargetGroupNotFound"); NULL on success or without one */
    const char *message; /* "ThrottlingException: Rate exceeded (ecs DescribeTaskSets, 3
                            attempts)": AWS's words with the code; "ecs X: HTTP 503 (3
                            attempts)"; "connection refused (ecs X at URL, 3 attempts)"; "ecs X:
                            HTTP 500 with a text/html body, not an AWS answer (3 attempts)"; "ecs
                            X: timed out after N ms ..."; "ecs X: cancelled"; "ecs X: no AWS
                            credentials: ...". Services are named ecs, elbv2, cloudwatch, sts.
                            NULL on success */
    const json_t *reply; /* success: the reply as JSON (see above); NULL otherwise */
    int attempts;
    const char *request_id; /* x-amzn-RequestId when there was one */
};

typedef void (*kn_aws_cb)(const struct kn_aws_result *r, void *data);

struct kn_aws_call;

/*
 * Call op ("DescribeTaskSets") of svc with params (a JSON object, borrowed; serialised before
 * this returns; NULL: none, which awsJson sends as {}). timeout_ms bounds the whole call, retries and credential reads included (0:
 * 30 s); each attempt is bounded by what is left. Retried (3 attempts, delay rand(0,1) x
 * min(2^(n-1), 20) s, throttling base 1 s, others 0.05 s... as botocore's standard mode, with
 * x-amz-retry-after honoured up to 5 s past that and a retry quota of 500 tokens per session):
 * HTTP 500/502/503/504, connection errors, RequestTimeout(Exception), PriorRequestNotComplete and
 * the throttling codes; never ECS LimitExceededException (a quota) nor other 4xx. An ExpiredToken
 * answer refreshes the credentials once and retries. 0 and cb runs once later (never from inside
 * this call), or KN_EINVAL (unknown op shape, params not an object) and it never runs. *out (may
 * be NULL) is a handle for kn_aws_cancel, valid until cb starts.
 */
int kn_aws_call(struct kn_aws_call **out, struct kn_aws *a, enum kn_aws_service svc,
                const char *op, const json_t *params, long long timeout_ms, kn_aws_cb cb,
                void *data);
/* Stop a call: cb runs before this returns, with KN_ECANCELLED. NULL is a no-op. */
void kn_aws_cancel(struct kn_aws_call *c);

/* ---- pieces, public for tests -------------------------------------------------------------- */

/* An awsQuery body from a JSON object: "Action=OP&Version=V&Name.member.1.Key=..." (RFC 3986
 * percent-encoding, keys in the object's order). Caller frees. NULL if params is not an object. */
char *kn_aws_query_encode(const char *action, const char *version, const json_t *params);
/* The awsQuery XML reply's <OpResult> (or, for an error, {"Code","Message","Type"} of its
 * <Error>) as JSON, new reference; NULL when the text is not such XML. */
json_t *kn_aws_xml_to_json(const char *xml, size_t len);
/* "com.amazonaws.ecs#ServiceNotActiveException:http://..." -> "ServiceNotActiveException",
 * into out. */
void kn_aws_error_code(const char *raw, char *out, size_t size);

#endif /* KANARIA_CLOUD_AWS_H */
