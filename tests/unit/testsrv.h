/*
 * A small HTTP/1.1 server on 127.0.0.1 (an ephemeral port) for the unit tests of HTTP clients,
 * running on the test's libuv loop. Test scaffolding: it reads a request up to the blank line
 * plus Content-Length bytes, hands it to the test's handler, writes the one reply the handler
 * made (at once or after a delay) and closes the connection.
 */
#ifndef KANARIA_TESTSRV_H
#define KANARIA_TESTSRV_H

#include <stddef.h>
#include <uv.h>

struct kn_testsrv_conn;

struct kn_testsrv_request {
    const char *method;
    const char *target;
    const char *head;  /* the request line and headers, NUL-terminated before the blank line */
    const char *body;  /* Content-Length bytes (may hold NUL bytes) */
    size_t body_len;
};

/* Answer `req` with kn_testsrv_reply or kn_testsrv_reply_raw, exactly once. */
typedef void (*kn_testsrv_handler)(struct kn_testsrv_conn *c,
                                   const struct kn_testsrv_request *req, void *data);

struct kn_testsrv {
    uv_tcp_t listener;
    int port;
    struct kn_testsrv_conn *conns;
    kn_testsrv_handler handler;
    void *data;
};

/* Listen; fails the test when it cannot. */
void kn_testsrv_start(struct kn_testsrv *s, uv_loop_t *loop, kn_testsrv_handler handler,
                      void *data);
/* Close the listener and the connections; the loop must run for the handles to close. */
void kn_testsrv_stop(struct kn_testsrv *s);

/* A reply with Content-Length and `extra` header lines (each ending in CRLF, or ""), written
 * after delay_ms (0: at once). */
void kn_testsrv_reply(struct kn_testsrv_conn *c, int status, const char *extra, const void *body,
                      size_t body_len, long delay_ms);
/* The reply's bytes as given (owned by the server from now on). */
void kn_testsrv_reply_raw(struct kn_testsrv_conn *c, char *bytes, size_t len);

/* Keep the connection open once the reply is written, until the server stops (a response that
 * stops half-way, for streaming clients). */
void kn_testsrv_hold(struct kn_testsrv_conn *c);

/* The value of header `name` in a request's head, "" when absent (caller frees). */
char *kn_testsrv_header(const char *head, const char *name);

#endif /* KANARIA_TESTSRV_H */
