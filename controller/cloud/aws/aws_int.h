/*
 * kanaria — the inside of controller/cloud/aws, shared by its files and by nothing else:
 *
 *   aws.c          the session, endpoints, calls, retries, error parsing
 *   credentials.c  the credential chain, the shared files, ISO 8601 times
 *   query.c        awsQuery bodies
 *   xml.c          awsQuery XML replies read into JSON (libxml2)
 *
 * Every function runs on the loop thread of the session.
 */
#ifndef KANARIA_CLOUD_AWS_INT_H
#define KANARIA_CLOUD_AWS_INT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "cloud/aws/aws.h"
#include "kanaria/error.h"

/* Refresh temporary credentials this close to their expiry (botocore's mandatory window). */
#define KN_AWS_REFRESH_S 600
/* The largest reply read (JSON or XML). */
#define KN_AWS_MAX_REPLY ((size_t)8 << 20)
/* The largest shared config or credentials file read. */
#define KN_AWS_MAX_INI ((size_t)1 << 20)

/* One set of credentials; every string is wiped when freed. */
struct kn_aws_creds {
    char *access_key_id;
    char *secret_access_key;
    char *session_token; /* NULL when there is none */
    long long expires;   /* epoch seconds; 0: they do not expire */
    char source[300];    /* where they came from, for the log: "the environment" */
};

/* Wipe and free the strings; leaves *c empty. */
void kn_aws__creds_clear(struct kn_aws_creds *c);

struct kn_aws_resolve;

struct kn_aws {
    uv_loop_t *loop;
    struct kn_http_client *http;
    char *region;
    char *profile;          /* resolved: cfg, AWS_PROFILE, "default" */
    char *credentials_file; /* AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials */
    char *config_file;      /* AWS_CONFIG_FILE or ~/.aws/config */
    char *endpoint[KN_AWS_SERVICE_COUNT];
    long long retry_base_ms;    /* < 0: botocore's (1 s throttling, 50 ms others) */
    int retry_quota;            /* retry tokens left (see aws.c) */
    struct kn_aws_creds creds;  /* empty until the first resolution */
    int stale;                  /* AWS said they expired: resolve again */
    unsigned gen;               /* counts resolutions that gave credentials */
    struct kn_aws_resolve *res; /* the resolution under way, or NULL */
    struct kn_aws_call *calls;  /* the callers' calls in flight (not the chain's own) */
    int closing;
};

/* An internal request of the chain: a plain HTTP request (container, IMDS) when svc < 0, else an
 * unsigned call of svc (STS) with params. */
struct kn_aws__req {
    int svc;                   /* enum kn_aws_service, or -1 */
    const char *op;            /* svc's operation */
    const json_t *params;      /* svc's parameters */
    const char *what;          /* for messages: "container credentials" */
    const char *method;        /* plain request */
    const char *url;           /* plain request */
    const char *const *headers; /* plain request; may hold secrets (wiped) */
    int max_attempts;
    long attempt_timeout_ms; /* 0: what is left of the call's time */
    long long timeout_ms;
};

/* The completion of an internal request: r as for kn_aws_call, and the body of a plain one. */
typedef void (*kn_aws__raw_cb)(const struct kn_aws_result *r, const char *body, size_t len,
                               void *data);

/* Start an internal request; 0 and cb runs once later, or KN_EINVAL. Replies' strings are wiped
 * before they are freed. */
int kn_aws__request(struct kn_aws_call **out, struct kn_aws *a, const struct kn_aws__req *req,
                    kn_aws__raw_cb cb, void *data);

/* Start a resolution of the chain into a->res (a->res must be NULL). It ends with
 * kn_aws__resolved, maybe from inside this call (which only wakes the waiting calls). */
void kn_aws__resolve_start(struct kn_aws *a);
/* Stop the resolution under way (kn_aws_free): nothing is woken. */
void kn_aws__resolve_abort(struct kn_aws *a);
/* The end of a resolution (credentials.c → aws.c): status 0 and *creds (taken, left empty), or a
 * status and msg for the calls waiting. */
void kn_aws__resolved(struct kn_aws *a, int status, struct kn_aws_creds *creds, const char *msg);

/* The variables a session reads once: AWS_PROFILE... (NULL when unset or empty). */
const char *kn_aws__env(const char *name);
/* "~/x" → "$HOME/x"; NULL when path is NULL or HOME is needed and unset. Caller frees. */
char *kn_aws__expand_home(const char *path);

/* One section of an INI file (the shared config and credentials files). */
struct kn_aws_ini {
    char **keys;
    char **vals; /* wiped when released */
    size_t n;
};

/* Section `section` of the INI file at path (for the config file: "profile NAME", or "default"
 * for the default profile, as the SDKs look them up). 0; KN_ENOENT (no file), KN_ENOTFOUND (no
 * such section), or KN_EIO / KN_ETOOBIG with err naming the file (never its content). */
int kn_aws__ini_section(struct kn_aws_ini *out, const char *path, const char *section,
                        int config_file, struct kn_error *err);
const char *kn_aws__ini_get(const struct kn_aws_ini *ini, const char *key);
void kn_aws__ini_release(struct kn_aws_ini *ini);

/* "2026-12-06T15:04:05Z" (fractions and ±hh:mm allowed) → epoch seconds; -1 when not that. */
long long kn_aws__parse_time(const char *iso);

/* kn_aws_xml_to_json, saying whether the document was an error frame. */
json_t *kn_aws__xml_parse(const char *xml, size_t len, int *is_error);

/* Overwrite every string in v (before it is freed: it may hold credentials). */
void kn_aws__json_wipe(json_t *v);

#endif /* KANARIA_CLOUD_AWS_INT_H */
