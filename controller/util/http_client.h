/*
 * An asynchronous HTTP client on the controller's libuv loop: one curl multi handle driven by
 * uv_poll and a uv_timer (curl's multi-socket API), so no request ever blocks the loop. Used by
 * health checks, metric providers and notifications.
 *
 * All functions run on the loop thread. A callback runs exactly once per accepted request (also
 * on timeout, transport error or cancellation by kn_http_client_close), never from inside
 * kn_http_request itself.
 */
#ifndef KANARIA_HTTP_CLIENT_H
#define KANARIA_HTTP_CLIENT_H

#include <stddef.h>
#include <uv.h>

struct kn_http_client;

struct kn_http_request {
    const char *method;          /* "GET" when NULL */
    const char *url;
    const char *const *headers;  /* NULL-terminated "Name: value" lines; may be NULL */
    const char *body;            /* may be NULL */
    size_t body_len;
    long timeout_ms;             /* whole request; 0 means 10 s */
    size_t max_response;         /* body bytes kept; 0 means 1 MiB; more fails the request */
};

struct kn_http_response {
    int status;         /* HTTP status, or 0 when no response (error says why) */
    const char *error;  /* NULL on a response; else "timed out after 1000 ms", "connection
                           refused", "cancelled", "response larger than N bytes" */
    const char *body;   /* NUL-terminated; valid during the callback only */
    size_t body_len;
    double total_ms;    /* from start to the end of the transfer */
};

typedef void (*kn_http_cb)(const struct kn_http_response *res, void *data);

int kn_http_client_new(struct kn_http_client **out, uv_loop_t *loop);

/* Start a request. 0, or KN_EINVAL (no URL) / KN_EIO (curl refused it), and then cb is never
 * called. Everything in req is copied. */
int kn_http_request(struct kn_http_client *c, const struct kn_http_request *req, kn_http_cb cb,
                    void *data);

/* Cancel what is in flight (each callback runs with error "cancelled"), close the loop handles,
 * and free the client once they are closed. The loop must run for that to finish. */
void kn_http_client_close(struct kn_http_client *c);

#endif /* KANARIA_HTTP_CLIENT_H */
