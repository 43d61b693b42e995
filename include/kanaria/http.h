/*
 * kanaria — the HTTP client every stage and provider shares.
 *
 * One curl multi handle on the controller's libuv loop, driven by uv_poll and a uv_timer (curl's
 * multi-socket API), so no request ever blocks the loop. Health checks, metrics providers,
 * notifications and platform providers (their API calls and watches) all go through it.
 *
 * Threading: every function runs on the loop thread of the client.
 *
 * Callbacks: a request that kn_http_request or kn_http_start accepted (returned 0) completes
 * exactly once through its kn_http_cb: with a response, on timeout or transport error, or with
 * error "cancelled" (kn_http_cancel, kn_http_client_close, or its data callback said stop). The
 * completion never runs from inside kn_http_request / kn_http_start; it runs from inside
 * kn_http_cancel and kn_http_client_close. A request they refused (returned < 0) never calls
 * back. Callbacks may start requests, cancel others, or close the client.
 *
 * Ownership: everything a request points to (URL, headers, body, file names, credentials) is
 * copied or used before kn_http_start returns; the caller may free it then. Everything a
 * response points to (body, error, headers) is borrowed for the duration of the callback only.
 */
#ifndef KANARIA_HTTP_H
#define KANARIA_HTTP_H

#include <stddef.h>
#include <uv.h>

#include "kanaria/error.h"

struct kn_http_client;
/* One accepted request (see kn_http_start). */
struct kn_http_call;
/* The header fields of a response (see kn_http_header). */
struct kn_http_headers;

/* The response headers kept per request: more fails the request. */
#define KN_HTTP_MAX_HEADERS ((size_t)64 << 10)

struct kn_http_response {
    int status;        /* HTTP status, or 0 when no response (error says why) */
    int code;          /* 0 with a response; else KN_ECANCELLED,
                          KN_ETIMEDOUT, KN_ETOOBIG or KN_EIO */
    const char *error; /* NULL on a response; else "timed out after 1000 ms",
                          "connection refused", "cancelled", "response larger
                          than N bytes", a TLS reason from curl, ... */
    const char *body;  /* NUL-terminated in the completion ("" in streaming
                          mode); a data callback's piece is not */
    size_t body_len;
    double total_ms;                       /* from start to now (the end of the transfer) */
    const struct kn_http_headers *headers; /* of the final response; never NULL */
};

/* The streaming mode's data callback: `part` has the status and headers (complete by then) and in
 * body/body_len the next piece of the body, in order. Return 0 to go on, anything else to stop:
 * the request then completes with error "cancelled". It runs inside curl: kn_http_cancel and
 * kn_http_client_close called from it take effect once curl has returned (the completions run
 * then, not before they return), and a request started from it is refused. */
typedef int (*kn_http_data_cb)(const struct kn_http_response *part, void *data);

typedef void (*kn_http_cb)(const struct kn_http_response *res, void *data);

/* AWS Signature Version 4 for one request, signed by curl (CURLOPT_AWS_SIGV4). */
struct kn_http_aws_sigv4 {
    const char *provider; /* "aws:amz:REGION:SERVICE", e.g. "aws:amz:eu-west-1:ecs" */
    const char *access_key_id;
    const char *secret_access_key;
    const char *session_token; /* temporary credentials' token, or NULL ("" is none) */
};

struct kn_http_request {
    const char *method;         /* "GET" when NULL */
    const char *url;            /* http or https only */
    const char *const *headers; /* NULL-terminated "Name: value" lines; may be NULL */
    const char *body;           /* may be NULL */
    size_t body_len;
    long timeout_ms;               /* whole request; 0 means 10 s; < 0 none (a watch: cancel it),
                                      connecting then still times out after 10 s */
    size_t max_response;           /* body bytes kept; 0 means 1 MiB; more fails the request.
                                      Not used in streaming mode */
    kn_http_data_cb on_data;       /* NULL: the body is buffered and handed to the completion;
                                      else streaming mode, each piece goes here */
    const char *ca_file;           /* PEM CA bundle to verify the server with, instead of the
                                      system's; NULL: the system's */
    const char *cert_file;         /* PEM client certificate, or NULL */
    const char *key_file;          /* PEM key of cert_file (unencrypted), or NULL */
    /* Credentials, one kind at most; secret files are read at each request (kanaria/secret.h). */
    const char *bearer_token_file;       /* "Authorization: Bearer" with this file's content */
    const char *username;                /* basic auth, with password_file ("" without) */
    const char *password_file;           /* basic auth password, with username */
    const struct kn_http_aws_sigv4 *aws; /* sign with SigV4 */
};

/* A client on loop, into *out (free with kn_http_client_close). 0, or KN_EINVAL / KN_EIO. */
int kn_http_client_new(struct kn_http_client **out, uv_loop_t *loop);

/* The loop c runs on (borrowed), for users that need timers beside their requests. */
uv_loop_t *kn_http_client_loop(const struct kn_http_client *c);

/* Start a request; *out (may be NULL) receives its handle for kn_http_cancel, valid until its
 * completion starts to run. 0; or KN_EINVAL (no URL, no callback, client closing, two kinds of
 * credentials), KN_EIO (curl refused it), or the secret reader's code for bearer_token_file or
 * password_file, with err (may be NULL) saying why, and then cb is never called. */
int kn_http_start(struct kn_http_call **out, struct kn_http_client *c,
                  const struct kn_http_request *req, kn_http_cb cb, void *data,
                  struct kn_error *err);

/* kn_http_start without a handle or error detail. */
int kn_http_request(struct kn_http_client *c, const struct kn_http_request *req, kn_http_cb cb,
                    void *data);

/* Stop one request at once, queued or under way: its completion runs (before this returns) with
 * error "cancelled", and its transfer is gone. From a data callback the stop is deferred until
 * curl has returned, and the completion runs then. `call` must be a handle whose completion has
 * not started; NULL is a no-op. */
void kn_http_cancel(struct kn_http_call *call);

/* The nth value (from 0, in the order received) of header field `name` (case-insensitive), with
 * the white space around it removed; NULL when there are not that many. Borrowed like h. */
const char *kn_http_header(const struct kn_http_headers *h, const char *name, size_t nth);

/* Cancel what is in flight (each completion runs with error "cancelled"), close the loop
 * handles, and free the client once they are closed. The loop must run for that to finish.
 * NULL is a no-op. */
void kn_http_client_close(struct kn_http_client *c);

#endif /* KANARIA_HTTP_H */
