/*
 * Unit tests for the HTTP client (kanaria/http.h, controller/util/http_client.c): requests
 * against the tests' small HTTP server (testsrv.h) on the same libuv loop, answering by path, and
 * against a TLS server on a thread with a CA and certificates made at run time.
 */
#include "testutil.h"
#include "testsrv.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <uv.h>

#include "kanaria/alloc.h"
#include "kanaria/error.h"
#include "kanaria/http.h"

#define BIG_SIZE ((size_t)2 << 20)

/* ---- the test server's answers ---------------------------------------------------------- */

/* By path: /ok, /slow (ok after 2 s), /big, /stream (no Content-Length), /echo (method, the
 * X-Kanaria-Test header and the body), /status/503, /redirect, /headers (repeated fields),
 * /hold (a part of the body, then nothing until the server stops), /auth (the Authorization and
 * X-Amz-Security-Token headers); anything else 404. */
static void srv_handle(struct kn_testsrv_conn *c, const struct kn_testsrv_request *req,
                       void *data)
{
    const char *path = req->target;

    (void)data;
    if (strcmp(path, "/ok") == 0 || strcmp(path, "/slow") == 0) {
        kn_testsrv_reply(c, 200, "", "hello", 5, strcmp(path, "/slow") == 0 ? 2000 : 0);
    } else if (strcmp(path, "/big") == 0) {
        char *big = kn_malloc(BIG_SIZE);
        memset(big, 'x', BIG_SIZE);
        kn_testsrv_reply(c, 200, "", big, BIG_SIZE, 0);
        free(big);
    } else if (strcmp(path, "/stream") == 0) {
        /* No Content-Length: the body runs until the connection closes. */
        struct kn_buf b;
        size_t len;
        kn_buf_init(&b, KN_BUF_UNBOUNDED);
        kn_buf_adds(&b, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
        for (size_t i = 0; i < BIG_SIZE / 64; i++) {
            kn_buf_adds(&b, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
        }
        char *bytes = kn_buf_detach(&b, &len);
        kn_testsrv_reply_raw(c, bytes, len);
    } else if (strcmp(path, "/echo") == 0) {
        char *hdr = kn_testsrv_header(req->head, "X-Kanaria-Test");
        struct kn_buf out;
        kn_buf_init(&out, KN_BUF_UNBOUNDED);
        kn_buf_addf(&out, "%s %s\n", req->method, hdr);
        kn_buf_add(&out, req->body, req->body_len); /* may hold NUL bytes */
        kn_testsrv_reply(c, 200, "", out.data, out.len, 0);
        kn_buf_release(&out);
        free(hdr);
    } else if (strcmp(path, "/headers") == 0) {
        kn_testsrv_reply(c, 200,
                         "X-Multi: one\r\nContent-Type: text/plain\r\nx-multi:   two  \r\n"
                         "X-Empty:\r\n",
                         "h", 1, 0);
    } else if (strcmp(path, "/many-headers") == 0) {
        /* 80 KiB of header fields, past KN_HTTP_MAX_HEADERS */
        struct kn_buf b;
        kn_buf_init(&b, KN_BUF_UNBOUNDED);
        for (int i = 0; i < 1024; i++) {
            kn_buf_addf(&b, "X-Filler-%04d: %066d\r\n", i, i);
        }
        kn_testsrv_reply(c, 200, b.data, "ok", 2, 0);
        kn_buf_release(&b);
    } else if (strcmp(path, "/hold") == 0) {
        char *raw = kn_strdup("HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n"
                              "X-Watch: yes\r\n\r\nfirst-part");
        kn_testsrv_reply_raw(c, raw, strlen(raw));
        kn_testsrv_hold(c);
    } else if (strcmp(path, "/auth") == 0) {
        char *auth = kn_testsrv_header(req->head, "Authorization");
        char *token = kn_testsrv_header(req->head, "X-Amz-Security-Token");
        char *out = kn_asprintf("%s\n%s", auth, token);
        kn_testsrv_reply(c, 200, "", out, strlen(out), 0);
        free(out);
        free(token);
        free(auth);
    } else if (strcmp(path, "/status/503") == 0) {
        kn_testsrv_reply(c, 503, "", "unavailable", 11, 0);
    } else if (strcmp(path, "/redirect") == 0) {
        kn_testsrv_reply(c, 302, "Location: /ok\r\n", "", 0, 0);
    } else {
        kn_testsrv_reply(c, 404, "", "", 0, 0);
    }
}

/* ---- fixture ------------------------------------------------------------------------------ */

struct fx {
    uv_loop_t loop;
    struct kn_testsrv srv;
    struct kn_http_client *client;
};

/* The loop of the running test: callbacks uv_stop it so that run_until can look. (libuv 1.44's
 * UV_RUN_ONCE runs due timers and then may still block in poll, so it cannot serve here.) */
static uv_loop_t *test_loop;

/* What one callback saw. */
struct got {
    int calls;
    int status;
    int code;
    char *error;
    char *body;
    size_t body_len;
    double total_ms;
};

/* Run until no handle is left (a uv_stop from a callback may end a run early). */
static void drain(uv_loop_t *loop)
{
    while (uv_run(loop, UV_RUN_DEFAULT) != 0) {
    }
}

static int setup(void **state)
{
    struct fx *f = kn_calloc(1, sizeof(*f));

    assert_int_equal(uv_loop_init(&f->loop), 0);
    kn_testsrv_start(&f->srv, &f->loop, srv_handle, NULL);
    assert_int_equal(kn_http_client_new(&f->client, &f->loop), 0);
    test_loop = &f->loop;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    kn_http_client_close(f->client);
    kn_testsrv_stop(&f->srv);
    drain(&f->loop);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f);
    return 0;
}

static char *url(struct fx *f, const char *path)
{
    return kn_asprintf("http://127.0.0.1:%d%s", f->srv.port, path);
}

static void on_response(const struct kn_http_response *res, void *data)
{
    struct got *g = data;

    uv_stop(test_loop);
    g->calls++;
    g->status = res->status;
    g->code = res->code;
    assert_true((res->code == 0) == (res->error == NULL));
    g->error = res->error ? kn_strdup(res->error) : NULL;
    assert_non_null(res->body);
    assert_int_equal(res->body[res->body_len], '\0');
    g->body = kn_malloc(res->body_len + 1);
    memcpy(g->body, res->body, res->body_len + 1); /* may hold NUL bytes */
    g->body_len = res->body_len;
    g->total_ms = res->total_ms;
}

static void got_release(struct got *g)
{
    free(g->error);
    free(g->body);
}

static void run_until(struct fx *f, const int *calls, int want)
{
    while (*calls < want) {
        uv_run(&f->loop, UV_RUN_DEFAULT);
    }
}

/* One request to path with the given tweaks; waits for its callback. */
static void fetch(struct fx *f, struct kn_http_request *req, const char *path, struct got *g)
{
    char *u = url(f, path);

    req->url = u;
    assert_int_equal(kn_http_request(f->client, req, on_response, g), 0);
    free(u); /* the request copied it */
    assert_int_equal(g->calls, 0);
    run_until(f, &g->calls, 1);
}

/* ---- tests -------------------------------------------------------------------------------- */

static void test_get_ok(void **state)
{
    struct fx *f = *state;
    struct kn_http_request req = {0};
    struct got g = {0};

    fetch(f, &req, "/ok", &g);
    assert_int_equal(g.calls, 1);
    assert_null(g.error);
    assert_int_equal(g.status, 200);
    assert_int_equal(g.code, 0);
    assert_string_equal(g.body, "hello");
    assert_int_equal(g.body_len, 5);
    assert_true(g.total_ms > 0);
    got_release(&g);
}

static void test_post_echo_with_header(void **state)
{
    struct fx *f = *state;
    const char *headers[] = {"X-Kanaria-Test: canary-42", "Content-Type: text/plain", NULL};
    struct kn_http_request req = {.method = "POST", .headers = headers};
    struct got g = {0};
    char *body = kn_strdup("weight=10");

    req.body = body;
    req.body_len = strlen(body);
    fetch(f, &req, "/echo", &g);
    assert_null(g.error);
    assert_int_equal(g.status, 200);
    assert_string_equal(g.body, "POST canary-42\nweight=10");
    got_release(&g);
    free(body);

    /* Another method with a body, and a body with a NUL in it (length, not strlen). */
    memset(&g, 0, sizeof(g));
    struct kn_http_request put = {.method = "PUT", .body = "a\0b", .body_len = 3};
    fetch(f, &put, "/echo", &g);
    assert_int_equal(g.status, 200);
    assert_int_equal(g.body_len, strlen("PUT \n") + 3);
    assert_memory_equal(g.body, "PUT \na\0b", g.body_len);
    got_release(&g);

    memset(&g, 0, sizeof(g));
    struct kn_http_request del = {.method = "DELETE"};
    fetch(f, &del, "/echo", &g);
    assert_string_equal(g.body, "DELETE \n");
    got_release(&g);
}

static void test_status_503_is_a_response(void **state)
{
    struct fx *f = *state;
    struct kn_http_request req = {0};
    struct got g = {0};

    fetch(f, &req, "/status/503", &g);
    assert_null(g.error);
    assert_int_equal(g.status, 503);
    assert_string_equal(g.body, "unavailable");
    got_release(&g);
}

static void test_redirect_not_followed(void **state)
{
    struct fx *f = *state;
    struct kn_http_request req = {0};
    struct got g = {0};

    fetch(f, &req, "/redirect", &g);
    assert_null(g.error);
    assert_int_equal(g.status, 302);
    got_release(&g);
}

static void test_timeout(void **state)
{
    struct fx *f = *state;
    struct kn_http_request req = {.timeout_ms = 300};
    struct got g = {0};

    fetch(f, &req, "/slow", &g);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.status, 0);
    assert_non_null(g.error);
    assert_string_equal(g.error, "timed out after 300 ms");
    assert_int_equal(g.code, KN_ETIMEDOUT);
    got_release(&g);
}

static void test_connection_refused(void **state)
{
    struct fx *f = *state;
    struct kn_http_request req = {0};
    struct got g = {0};
    struct sockaddr_in addr = {0};
    socklen_t len = sizeof(addr);

    /* A port that is bound but not listening refuses connections, and nobody else can take it
     * while we hold it. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&addr, &len), 0);

    char *u = kn_asprintf("http://127.0.0.1:%d/ok", ntohs(addr.sin_port));
    req.url = u;
    assert_int_equal(kn_http_request(f->client, &req, on_response, &g), 0);
    run_until(f, &g.calls, 1);
    assert_int_equal(g.status, 0);
    assert_non_null(g.error);
    assert_string_equal(g.error, "connection refused");
    assert_int_equal(g.code, KN_EIO);
    got_release(&g);
    free(u);
    close(fd);
}

static void test_response_too_big(void **state)
{
    struct fx *f = *state;
    struct kn_http_request req = {.max_response = 1024};
    struct got g = {0};

    /* Content-Length says too much. */
    fetch(f, &req, "/big", &g);
    assert_int_equal(g.status, 0);
    assert_int_equal(g.code, KN_ETOOBIG);
    assert_non_null(g.error);
    assert_string_equal(g.error, "response larger than 1024 bytes");
    assert_int_equal(g.body_len, 0);
    got_release(&g);

    /* No Content-Length: the write callback stops it. */
    memset(&g, 0, sizeof(g));
    fetch(f, &req, "/stream", &g);
    assert_int_equal(g.status, 0);
    assert_non_null(g.error);
    assert_string_equal(g.error, "response larger than 1024 bytes");
    got_release(&g);

    /* The default bound is 1 MiB. */
    memset(&g, 0, sizeof(g));
    req.max_response = 0;
    fetch(f, &req, "/big", &g);
    assert_non_null(g.error);
    assert_string_equal(g.error, "response larger than 1048576 bytes");
    got_release(&g);

    /* And a bound above the size lets it through whole. */
    memset(&g, 0, sizeof(g));
    req.max_response = BIG_SIZE;
    fetch(f, &req, "/stream", &g);
    assert_null(g.error);
    assert_int_equal(g.status, 200);
    assert_int_equal(g.body_len, BIG_SIZE);
    got_release(&g);
}

static void test_only_http(void **state)
{
    struct fx *f = *state;
    struct kn_http_request req = {.url = "file:///etc/passwd"};
    struct got g = {0};

    /* curl refuses the scheme when the transfer starts, so this is a callback, not KN_EIO. */
    assert_int_equal(kn_http_request(f->client, &req, on_response, &g), 0);
    run_until(f, &g.calls, 1);
    assert_int_equal(g.status, 0);
    assert_non_null(g.error);
    assert_string_equal(g.error, curl_easy_strerror(CURLE_UNSUPPORTED_PROTOCOL));
    assert_int_equal(g.body_len, 0);
    got_release(&g);
}

#define MANY 50

static void test_many_concurrent(void **state)
{
    struct fx *f = *state;
    struct kn_http_request req = {0};
    struct got g[MANY];
    int done = 0;
    char *u = url(f, "/ok");

    memset(g, 0, sizeof(g));
    req.url = u;
    for (int i = 0; i < MANY; i++) {
        assert_int_equal(kn_http_request(f->client, &req, on_response, &g[i]), 0);
    }
    free(u);
    while (done < MANY) {
        uv_run(&f->loop, UV_RUN_DEFAULT);
        done = 0;
        for (int i = 0; i < MANY; i++) {
            done += g[i].calls;
        }
    }
    for (int i = 0; i < MANY; i++) {
        assert_int_equal(g[i].calls, 1);
        assert_null(g[i].error);
        assert_int_equal(g[i].status, 200);
        assert_string_equal(g[i].body, "hello");
        got_release(&g[i]);
    }
}

struct cancel_ctx {
    struct fx *f;
    uv_timer_t timer;
    int fired;
};

static void on_close_timer(uv_timer_t *t)
{
    struct cancel_ctx *cc = t->data;

    uv_stop(test_loop);
    cc->fired = 1;
    kn_http_client_close(cc->f->client);
    cc->f->client = NULL;
    uv_close((uv_handle_t *)t, NULL);
}

#define IN_FLIGHT 5

static void test_close_cancels_in_flight(void **state)
{
    struct fx *f = *state;
    struct kn_http_request req = {0};
    struct got g[IN_FLIGHT];
    struct cancel_ctx cc = {.f = f};
    char *u = url(f, "/slow");

    memset(g, 0, sizeof(g));
    req.url = u;
    for (int i = 0; i < IN_FLIGHT; i++) {
        assert_int_equal(kn_http_request(f->client, &req, on_response, &g[i]), 0);
    }
    free(u);
    /* Close while the transfers are under way (the server holds /slow for 2 s). */
    uv_timer_init(&f->loop, &cc.timer);
    cc.timer.data = &cc;
    uv_timer_start(&cc.timer, on_close_timer, 100, 0);
    while (!cc.fired) {
        uv_run(&f->loop, UV_RUN_DEFAULT);
    }
    for (int i = 0; i < IN_FLIGHT; i++) {
        assert_int_equal(g[i].calls, 1);
        assert_int_equal(g[i].status, 0);
        assert_string_equal(g[i].error, "cancelled");
    }
    /* Closing finishes on the loop; nothing is called again. */
    kn_testsrv_stop(&f->srv);
    drain(&f->loop);
    for (int i = 0; i < IN_FLIGHT; i++) {
        assert_int_equal(g[i].calls, 1);
        got_release(&g[i]);
    }
    kn_testsrv_start(&f->srv, &f->loop, srv_handle, NULL); /* teardown stops it again */
}

static void test_close_before_loop_runs(void **state)
{
    struct fx *f = *state;
    struct kn_http_request req = {0};
    struct got g = {0};
    char *u = url(f, "/ok");

    req.url = u;
    assert_int_equal(kn_http_request(f->client, &req, on_response, &g), 0);
    free(u);
    kn_http_client_close(f->client);
    f->client = NULL;
    assert_int_equal(g.calls, 1);
    assert_string_equal(g.error, "cancelled");
    got_release(&g);
}

/* A callback that closes the client while other transfers are still being completed. */
struct close_in_cb {
    struct kn_http_client *client;
    int calls;
    int cancelled;
};

static void on_response_close(const struct kn_http_response *res, void *data)
{
    struct close_in_cb *cc = data;

    uv_stop(test_loop);
    cc->calls++;
    if (res->error && strcmp(res->error, "cancelled") == 0) {
        cc->cancelled++;
    }
    kn_http_client_close(cc->client);
}

static void test_close_from_callback(void **state)
{
    struct fx *f = *state;
    struct kn_http_request req = {0};
    struct kn_http_request slow = {0};
    struct close_in_cb cc = {.client = f->client};
    char *u = url(f, "/ok");
    char *s = url(f, "/slow");

    req.url = u;
    slow.url = s;
    assert_int_equal(kn_http_request(f->client, &slow, on_response_close, &cc), 0);
    assert_int_equal(kn_http_request(f->client, &req, on_response_close, &cc), 0);
    free(u);
    free(s);
    f->client = NULL;
    run_until(f, &cc.calls, 2);
    assert_int_equal(cc.calls, 2);
    assert_int_equal(cc.cancelled, 1);
}

static void on_response_never(const struct kn_http_response *res, void *data)
{
    (void)res;
    (void)data;
    fail_msg("callback of a refused request");
}

static void test_invalid_arguments(void **state)
{
    struct fx *f = *state;
    struct kn_http_request req = {0};

    assert_int_equal(kn_http_request(f->client, &req, on_response_never, NULL), KN_EINVAL);
    assert_int_equal(kn_http_request(f->client, NULL, on_response_never, NULL), KN_EINVAL);
    req.url = "http://127.0.0.1:1/";
    assert_int_equal(kn_http_request(NULL, &req, on_response_never, NULL), KN_EINVAL);
    assert_int_equal(kn_http_request(f->client, &req, NULL, NULL), KN_EINVAL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
}

/* ---- response headers --------------------------------------------------------------------- */

struct got_headers {
    int calls;
    int status;
    char *multi[3];
    char *type;
    char *empty;
};

static char *dup_or_null(const char *s)
{
    return s ? kn_strdup(s) : NULL;
}

static void on_headers(const struct kn_http_response *res, void *data)
{
    struct got_headers *g = data;

    uv_stop(test_loop);
    g->calls++;
    g->status = res->status;
    assert_non_null(res->headers);
    for (size_t i = 0; i < 3; i++) {
        g->multi[i] = dup_or_null(kn_http_header(res->headers, "X-MULTI", i));
    }
    g->type = dup_or_null(kn_http_header(res->headers, "content-type", 0));
    g->empty = dup_or_null(kn_http_header(res->headers, "X-Empty", 0));
    assert_null(kn_http_header(res->headers, "X-Mult", 0));
    assert_null(kn_http_header(res->headers, "HTTP/1.1 200 X", 0));
}

static void test_response_headers(void **state)
{
    struct fx *f = *state;
    struct kn_http_request req = {0};
    struct got_headers g = {0};
    char *u = url(f, "/headers");

    req.url = u;
    assert_int_equal(kn_http_request(f->client, &req, on_headers, &g), 0);
    run_until(f, &g.calls, 1);
    assert_int_equal(g.status, 200);
    /* every value in order, the name in any case, white space around the value gone */
    assert_string_equal(g.multi[0], "one");
    assert_string_equal(g.multi[1], "two");
    assert_null(g.multi[2]);
    assert_string_equal(g.type, "text/plain");
    assert_string_equal(g.empty, "");
    for (size_t i = 0; i < 3; i++) {
        free(g.multi[i]);
    }
    free(g.type);
    free(g.empty);
    free(u);
}

static void test_response_headers_bounded(void **state)
{
    struct fx *f = *state;
    struct kn_http_request req = {0};
    struct got g = {0};

    fetch(f, &req, "/many-headers", &g);
    assert_int_equal(g.status, 0);
    assert_int_equal(g.code, KN_ETOOBIG);
    assert_string_equal(g.error, "response headers larger than 65536 bytes");
    got_release(&g);
}

/* ---- streaming ---------------------------------------------------------------------------- */

struct stream {
    struct kn_http_call *call;
    struct kn_buf seen;
    int chunks;
    int status_seen;
    int calls; /* completions */
    int code;
    char *error;
    size_t final_len;
    int cancel_in_data;     /* 1: kn_http_cancel(self) from the data callback; 2: return -1 */
    int stop_on_first_data; /* uv_stop once data came */
    char *watch_header;
};

static int on_stream_data(const struct kn_http_response *part, void *data)
{
    struct stream *s = data;

    assert_int_equal(s->calls, 0);
    s->chunks++;
    s->status_seen = part->status;
    assert_null(part->error);
    if (!s->watch_header) {
        s->watch_header = dup_or_null(kn_http_header(part->headers, "X-Watch", 0));
    }
    assert_int_equal(kn_buf_add(&s->seen, part->body, part->body_len), 0);
    if (s->stop_on_first_data) {
        uv_stop(test_loop);
    }
    if (s->cancel_in_data == 1) {
        kn_http_cancel(s->call);
    }
    return s->cancel_in_data == 2 ? -1 : 0;
}

static void on_stream_done(const struct kn_http_response *res, void *data)
{
    struct stream *s = data;

    uv_stop(test_loop);
    s->calls++;
    s->call = NULL;
    s->error = dup_or_null(res->error);
    s->code = res->code;
    s->final_len = res->body_len;
    assert_string_equal(res->body, "");
}

static void stream_release(struct stream *s)
{
    kn_buf_release(&s->seen);
    free(s->error);
    free(s->watch_header);
}

static void test_stream_in_order(void **state)
{
    struct fx *f = *state;
    struct kn_http_request req = {.on_data = on_stream_data, .max_response = 1024};
    struct stream s = {0};
    char *u = url(f, "/stream");

    kn_buf_init(&s.seen, KN_BUF_UNBOUNDED);
    req.url = u;
    assert_int_equal(kn_http_start(&s.call, f->client, &req, on_stream_done, &s, NULL), 0);
    assert_non_null(s.call);
    run_until(f, &s.calls, 1);
    /* the whole 2 MiB in order, past max_response (which buffers only) */
    assert_null(s.error);
    assert_int_equal(s.final_len, 0);
    assert_int_equal(s.status_seen, 200);
    assert_true(s.chunks > 1);
    assert_int_equal(s.seen.len, BIG_SIZE);
    for (size_t i = 0; i < BIG_SIZE; i += 64) {
        assert_memory_equal(s.seen.data + i,
                            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", 64);
    }
    stream_release(&s);
    free(u);
}

/* A timer that lets the loop run a while, to see that nothing more is called. */
static void on_quiet(uv_timer_t *t)
{
    int *fired = t->data;

    *fired = 1;
    uv_stop(test_loop);
}

static void run_quiet(struct fx *f, uint64_t ms)
{
    uv_timer_t t;
    int fired = 0;

    uv_timer_init(&f->loop, &t);
    t.data = &fired;
    uv_timer_start(&t, on_quiet, ms, 0);
    while (!fired) {
        uv_run(&f->loop, UV_RUN_DEFAULT);
    }
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
}

static void test_stream_cancel_mid_stream(void **state)
{
    struct fx *f = *state;
    struct kn_http_request req = {.on_data = on_stream_data, .timeout_ms = -1};
    struct stream s = {.stop_on_first_data = 1};
    char *u = url(f, "/hold");

    kn_buf_init(&s.seen, KN_BUF_UNBOUNDED);
    req.url = u;
    assert_int_equal(kn_http_start(&s.call, f->client, &req, on_stream_done, &s, NULL), 0);
    /* the first part arrives; the server then sends nothing more and keeps the connection */
    run_until(f, &s.chunks, 1);
    assert_string_equal(s.seen.data, "first-part");
    assert_string_equal(s.watch_header, "yes");
    assert_int_equal(s.calls, 0);
    kn_http_cancel(s.call);
    assert_int_equal(s.calls, 1);
    assert_string_equal(s.error, "cancelled");
    assert_int_equal(s.code, KN_ECANCELLED);
    run_quiet(f, 200);
    assert_int_equal(s.calls, 1);
    assert_int_equal(s.chunks, 1);
    stream_release(&s);
    free(u);
}

static void test_stream_cancel_from_data_callback(void **state)
{
    struct fx *f = *state;
    struct kn_http_request req = {.on_data = on_stream_data, .timeout_ms = -1};
    char *u = url(f, "/hold");

    req.url = u;
    /* by kn_http_cancel on itself, then by returning non-zero */
    for (int how = 1; how <= 2; how++) {
        struct stream s = {.cancel_in_data = how};
        kn_buf_init(&s.seen, KN_BUF_UNBOUNDED);
        assert_int_equal(kn_http_start(&s.call, f->client, &req, on_stream_done, &s, NULL), 0);
        run_until(f, &s.calls, 1);
        assert_int_equal(s.chunks, 1);
        assert_string_equal(s.error, "cancelled");
        run_quiet(f, 200);
        assert_int_equal(s.calls, 1);
        assert_int_equal(s.chunks, 1);
        stream_release(&s);
    }
    free(u);
}

/* Closing the client from a data callback: every call completes once, after curl returned. */
struct close_in_data {
    struct fx *f;
    struct got slow;
    int chunks;
    int calls;
    char *error;
};

static int on_data_close(const struct kn_http_response *part, void *data)
{
    struct close_in_data *cd = data;
    struct kn_http_request req = {.url = "http://127.0.0.1:1/"};

    (void)part;
    cd->chunks++;
    kn_http_client_close(cd->f->client);
    assert_int_equal(cd->calls, 0);
    assert_int_equal(cd->slow.calls, 0);
    /* closing: nothing new starts */
    assert_int_equal(kn_http_request(cd->f->client, &req, on_response_never, NULL), KN_EINVAL);
    return 0;
}

static void on_close_in_data_done(const struct kn_http_response *res, void *data)
{
    struct close_in_data *cd = data;

    uv_stop(test_loop);
    cd->calls++;
    cd->error = dup_or_null(res->error);
}

static void test_close_from_data_callback(void **state)
{
    struct fx *f = *state;
    struct kn_http_request req = {.on_data = on_data_close, .timeout_ms = -1};
    struct kn_http_request slow = {0};
    struct close_in_data cd = {.f = f};
    char *u = url(f, "/hold");
    char *s = url(f, "/slow");

    req.url = u;
    slow.url = s;
    assert_int_equal(kn_http_request(f->client, &slow, on_response, &cd.slow), 0);
    assert_int_equal(kn_http_request(f->client, &req, on_close_in_data_done, &cd), 0);
    run_until(f, &cd.calls, 1);
    f->client = NULL;
    assert_int_equal(cd.chunks, 1);
    assert_int_equal(cd.calls, 1);
    assert_string_equal(cd.error, "cancelled");
    assert_int_equal(cd.slow.calls, 1);
    assert_string_equal(cd.slow.error, "cancelled");
    run_quiet(f, 100);
    assert_int_equal(cd.calls, 1);
    assert_int_equal(cd.slow.calls, 1);
    got_release(&cd.slow);
    free(cd.error);
    free(s);
    free(u);
}

/* ---- cancel ------------------------------------------------------------------------------- */

static void test_cancel_queued(void **state)
{
    struct fx *f = *state;
    struct kn_http_request req = {0};
    struct kn_http_call *call = NULL;
    struct got g = {0}, other = {0};
    char *u = url(f, "/ok");

    req.url = u;
    assert_int_equal(kn_http_start(&call, f->client, &req, on_response, &g, NULL), 0);
    assert_int_equal(kn_http_request(f->client, &req, on_response, &other), 0);
    /* not started yet: the loop has not run */
    kn_http_cancel(call);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.status, 0);
    assert_int_equal(g.code, KN_ECANCELLED);
    assert_string_equal(g.error, "cancelled");
    kn_http_cancel(NULL);
    /* the other one is not disturbed */
    run_until(f, &other.calls, 1);
    assert_null(other.error);
    assert_int_equal(other.status, 200);
    run_quiet(f, 100);
    assert_int_equal(g.calls, 1);
    got_release(&g);
    got_release(&other);
    free(u);
}

static void test_cancel_in_flight(void **state)
{
    struct fx *f = *state;
    struct kn_http_request req = {0};
    struct kn_http_call *call = NULL;
    struct got g = {0};
    char *u = url(f, "/slow");

    req.url = u;
    assert_int_equal(kn_http_start(&call, f->client, &req, on_response, &g, NULL), 0);
    run_quiet(f, 100); /* connected, waiting for the answer */
    assert_int_equal(g.calls, 0);
    kn_http_cancel(call);
    assert_int_equal(g.calls, 1);
    assert_string_equal(g.error, "cancelled");
    run_quiet(f, 100);
    assert_int_equal(g.calls, 1);
    got_release(&g);
    free(u);
}

/* ---- credentials -------------------------------------------------------------------------- */

static void test_bearer_token_file(void **state)
{
    struct fx *f = *state;
    char *dir = kn_test_tmpdir();
    char *path = kn_asprintf("%s/token", dir);
    char *missing = kn_asprintf("%s/missing", dir);
    struct kn_http_request req = {.bearer_token_file = path};
    struct kn_error err;
    struct got g = {0};

    kn_test_write(dir, "token", "t0ken-1\n");
    fetch(f, &req, "/auth", &g);
    assert_string_equal(g.body, "Bearer t0ken-1\n");
    got_release(&g);

    /* read at each request: a rotated token is used at once */
    kn_test_write(dir, "token", "t0ken-2\n");
    memset(&g, 0, sizeof(g));
    fetch(f, &req, "/auth", &g);
    assert_string_equal(g.body, "Bearer t0ken-2\n");
    got_release(&g);

    /* a file that cannot be read refuses the request, naming the file, never calling back */
    req.bearer_token_file = missing;
    req.url = "http://127.0.0.1:1/";
    kn_error_clear(&err);
    assert_int_equal(kn_http_start(NULL, f->client, &req, on_response_never, NULL, &err),
                     KN_ENOENT);
    assert_non_null(strstr(err.msg, missing));
    /* a token of two lines would inject a header */
    kn_test_write(dir, "token", "t0ken\nX-Evil: 1\n");
    req.bearer_token_file = path;
    assert_int_equal(kn_http_start(NULL, f->client, &req, on_response_never, NULL, &err),
                     KN_EINVAL);
    assert_null(strstr(err.msg, "t0ken"));
    assert_null(strstr(err.msg, "Evil"));
    uv_run(&f->loop, UV_RUN_NOWAIT);
    kn_test_rmtree(dir);
    free(missing);
    free(path);
    free(dir);
}

static void test_basic_auth(void **state)
{
    struct fx *f = *state;
    char *dir = kn_test_tmpdir();
    char *path = kn_asprintf("%s/password", dir);
    struct kn_http_request req = {.username = "admin", .password_file = path};
    struct kn_error err;
    struct got g = {0};

    /* base64("admin:s3cret"), then base64("admin:n3w") once the file changed */
    kn_test_write(dir, "password", "s3cret\n");
    fetch(f, &req, "/auth", &g);
    assert_string_equal(g.body, "Basic YWRtaW46czNjcmV0\n");
    got_release(&g);
    kn_test_write(dir, "password", "n3w\n");
    memset(&g, 0, sizeof(g));
    fetch(f, &req, "/auth", &g);
    assert_string_equal(g.body, "Basic YWRtaW46bjN3\n");
    got_release(&g);

    /* one kind of credentials at most */
    req.bearer_token_file = path;
    req.url = "http://127.0.0.1:1/";
    kn_error_clear(&err);
    assert_int_equal(kn_http_start(NULL, f->client, &req, on_response_never, NULL, &err),
                     KN_EINVAL);
    assert_non_null(strstr(err.msg, "at most"));
    uv_run(&f->loop, UV_RUN_NOWAIT);
    kn_test_rmtree(dir);
    free(path);
    free(dir);
}

static void test_aws_sigv4(void **state)
{
    struct fx *f = *state;
    struct kn_http_aws_sigv4 aws = {.provider = "aws:amz:eu-west-1:ecs",
                                    .access_key_id = "AKIDEXAMPLE",
                                    .secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                                    .session_token = "session-tok"};
    const char *headers[] = {"Content-Type: application/x-amz-json-1.1", NULL};
    struct kn_http_request req = {
        .method = "POST", .body = "{}", .body_len = 2, .headers = headers, .aws = &aws};
    struct got g = {0};

    fetch(f, &req, "/auth", &g);
    assert_int_equal(g.status, 200);
    /* curl signs: the credential scope names the key, region and service; the secret is not sent */
    assert_true(strncmp(g.body, "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/", 40) == 0);
    assert_non_null(strstr(g.body, "/eu-west-1/ecs/aws4_request"));
    assert_non_null(strstr(g.body, "Signature="));
    assert_null(strstr(g.body, aws.secret_access_key));
    assert_non_null(strstr(g.body, "\nsession-tok"));
    got_release(&g);
}

/* An empty session token is no token: libcurl 7.88 would sign an "X-Amz-Security-Token:" entry
 * it does not send (AWS: IncompleteSignature). */
static void test_aws_sigv4_empty_token(void **state)
{
    struct fx *f = *state;
    struct kn_http_aws_sigv4 aws = {.provider = "aws:amz:eu-west-1:ecs",
                                    .access_key_id = "AKIDEXAMPLE",
                                    .secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                                    .session_token = ""};
    const char *headers[] = {"Content-Type: application/x-amz-json-1.1", NULL};
    struct kn_http_request req = {
        .method = "POST", .body = "{}", .body_len = 2, .headers = headers, .aws = &aws};
    struct got g = {0};

    fetch(f, &req, "/auth", &g);
    assert_int_equal(g.status, 200);
    assert_non_null(strstr(g.body, "SignedHeaders=content-type;host;x-amz-date, "));
    assert_null(strstr(g.body, "x-amz-security-token"));
    got_release(&g);
}

/* ---- TLS ---------------------------------------------------------------------------------- */

/* A CA, a server certificate for 127.0.0.1 and a client certificate it signs, and an unrelated CA,
 * as PEM files in a temporary folder. */
struct pki {
    char *dir;
    char *ca, *other_ca, *server_cert, *server_key, *client_cert, *client_key;
};

static EVP_PKEY *make_key(void)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");

    assert_non_null(k);
    return k;
}

static void add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509_EXTENSION *ext;

    X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    assert_non_null(ext);
    assert_int_equal(X509_add_ext(cert, ext, -1), 1);
    X509_EXTENSION_free(ext);
}

/* A certificate for key named cn, signed by issuer (NULL: self-signed). */
static X509 *make_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key, int is_ca,
                       long serial)
{
    X509 *cert = X509_new();
    X509_NAME *name = X509_NAME_new();

    assert_non_null(cert);
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), serial);
    X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
    X509_set_pubkey(cert, key);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_subject_name(cert, name);
    X509_set_issuer_name(cert, issuer ? X509_get_subject_name(issuer) : name);
    X509_NAME_free(name);
    if (is_ca) {
        add_ext(cert, issuer ? issuer : cert, NID_basic_constraints, "critical,CA:TRUE");
        add_ext(cert, issuer ? issuer : cert, NID_key_usage, "critical,keyCertSign,cRLSign");
        add_ext(cert, issuer ? issuer : cert, NID_subject_key_identifier, "hash");
    } else {
        add_ext(cert, issuer, NID_basic_constraints, "critical,CA:FALSE");
        add_ext(cert, issuer, NID_subject_alt_name, "IP:127.0.0.1");
        add_ext(cert, issuer, NID_ext_key_usage, "serverAuth,clientAuth");
        add_ext(cert, issuer, NID_authority_key_identifier, "keyid");
    }
    assert_true(X509_sign(cert, issuer_key ? issuer_key : key, EVP_sha256()) > 0);
    return cert;
}

static char *write_cert(const char *dir, const char *name, X509 *cert)
{
    char *path = kn_asprintf("%s/%s", dir, name);
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    assert_int_equal(PEM_write_X509(f, cert), 1);
    fclose(f);
    return path;
}

static char *write_key(const char *dir, const char *name, EVP_PKEY *key)
{
    char *path = kn_asprintf("%s/%s", dir, name);
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    assert_int_equal(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL), 1);
    fclose(f);
    return path;
}

static void pki_make(struct pki *p)
{
    EVP_PKEY *ca_key = make_key(), *other_key = make_key();
    EVP_PKEY *srv_key = make_key(), *cli_key = make_key();
    X509 *ca = make_cert(ca_key, "kanaria test CA", NULL, NULL, 1, 1);
    X509 *other = make_cert(other_key, "kanaria other CA", NULL, NULL, 1, 2);
    X509 *srv = make_cert(srv_key, "127.0.0.1", ca, ca_key, 0, 3);
    X509 *cli = make_cert(cli_key, "kanaria client", ca, ca_key, 0, 4);

    p->dir = kn_test_tmpdir();
    p->ca = write_cert(p->dir, "ca.pem", ca);
    p->other_ca = write_cert(p->dir, "other-ca.pem", other);
    p->server_cert = write_cert(p->dir, "server.pem", srv);
    p->server_key = write_key(p->dir, "server.key", srv_key);
    p->client_cert = write_cert(p->dir, "client.pem", cli);
    p->client_key = write_key(p->dir, "client.key", cli_key);
    X509_free(ca);
    X509_free(other);
    X509_free(srv);
    X509_free(cli);
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(other_key);
    EVP_PKEY_free(srv_key);
    EVP_PKEY_free(cli_key);
}

static void pki_release(struct pki *p)
{
    kn_test_rmtree(p->dir);
    free(p->dir);
    free(p->ca);
    free(p->other_ca);
    free(p->server_cert);
    free(p->server_key);
    free(p->client_cert);
    free(p->client_key);
}

/* A blocking TLS server on a thread: one connection at a time, answers every request 200 with
 * "tls:" and the client certificate's CN (or "none"). Every wait is bounded: accept polls every
 * 50 ms for the stop flag, reads and writes time out after 5 s. */
struct tls_srv {
    SSL_CTX *ctx;
    int fd;
    int port;
    volatile int stop;
    pthread_t thread;
};

static void tls_serve_one(struct tls_srv *t, int conn)
{
    struct timeval tv = {.tv_sec = 5};
    SSL *ssl = SSL_new(t->ctx);
    char buf[4096], cn[128] = "none", reply[256];
    size_t have = 0;

    setsockopt(conn, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(conn, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    SSL_set_fd(ssl, conn);
    if (SSL_accept(ssl) != 1) {
        goto out;
    }
    while (have < sizeof(buf) - 1) {
        int n = SSL_read(ssl, buf + have, (int)(sizeof(buf) - 1 - have));
        if (n <= 0) {
            goto out;
        }
        have += (size_t)n;
        buf[have] = '\0';
        if (strstr(buf, "\r\n\r\n")) {
            break;
        }
    }
    X509 *peer = SSL_get1_peer_certificate(ssl);
    if (peer) {
        X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, cn, sizeof(cn));
        X509_free(peer);
    }
    int body = snprintf(reply, sizeof(reply), "tls:%s", cn);
    char head[128];
    int hn = snprintf(head, sizeof(head),
                      "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: %d\r\n\r\n", body);
    SSL_write(ssl, head, hn);
    SSL_write(ssl, reply, body);
    SSL_shutdown(ssl);
out:
    SSL_free(ssl);
    close(conn);
}

static void *tls_main(void *arg)
{
    struct tls_srv *t = arg;

    while (!t->stop) {
        struct pollfd p = {.fd = t->fd, .events = POLLIN};
        if (poll(&p, 1, 50) == 1) {
            int conn = accept(t->fd, NULL, NULL);
            if (conn >= 0) {
                tls_serve_one(t, conn);
            }
        }
    }
    return NULL;
}

static void tls_start(struct tls_srv *t, const struct pki *p, int require_client_cert)
{
    struct sockaddr_in addr = {0};
    socklen_t len = sizeof(addr);

    memset(t, 0, sizeof(*t));
    t->ctx = SSL_CTX_new(TLS_server_method());
    assert_non_null(t->ctx);
    assert_int_equal(SSL_CTX_use_certificate_file(t->ctx, p->server_cert, SSL_FILETYPE_PEM), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey_file(t->ctx, p->server_key, SSL_FILETYPE_PEM), 1);
    if (require_client_cert) {
        assert_int_equal(SSL_CTX_load_verify_locations(t->ctx, p->ca, NULL), 1);
        SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    }
    t->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(t->fd >= 0);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(t->fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    assert_int_equal(listen(t->fd, 8), 0);
    assert_int_equal(getsockname(t->fd, (struct sockaddr *)&addr, &len), 0);
    t->port = ntohs(addr.sin_port);
    assert_int_equal(pthread_create(&t->thread, NULL, tls_main, t), 0);
}

static void tls_stop(struct tls_srv *t)
{
    t->stop = 1;
    pthread_join(t->thread, NULL);
    close(t->fd);
    SSL_CTX_free(t->ctx);
}

/* One https request to the TLS server with the given TLS settings. */
static void tls_fetch(struct fx *f, struct tls_srv *t, struct kn_http_request *req, struct got *g)
{
    char *u = kn_asprintf("https://127.0.0.1:%d/", t->port);

    memset(g, 0, sizeof(*g));
    req->url = u;
    req->timeout_ms = 10000;
    assert_int_equal(kn_http_request(f->client, req, on_response, g), 0);
    run_until(f, &g->calls, 1);
    free(u);
}

static void test_tls_per_request_ca(void **state)
{
    struct fx *f = *state;
    struct pki p = {0};
    struct tls_srv t;
    struct got g;

    pki_make(&p);
    tls_start(&t, &p, 0);

    struct kn_http_request with_ca = {.ca_file = p.ca};
    tls_fetch(f, &t, &with_ca, &g);
    assert_null(g.error);
    assert_int_equal(g.status, 200);
    assert_string_equal(g.body, "tls:none");
    got_release(&g);

    /* the system's CAs do not know this one */
    struct kn_http_request without = {0};
    tls_fetch(f, &t, &without, &g);
    assert_int_equal(g.status, 0);
    assert_non_null(g.error);
    assert_string_equal(g.error, curl_easy_strerror(CURLE_PEER_FAILED_VERIFICATION));
    got_release(&g);

    /* nor does another CA given for this request */
    struct kn_http_request other = {.ca_file = p.other_ca};
    tls_fetch(f, &t, &other, &g);
    assert_int_equal(g.status, 0);
    assert_string_equal(g.error, curl_easy_strerror(CURLE_PEER_FAILED_VERIFICATION));
    got_release(&g);

    tls_stop(&t);
    pki_release(&p);
}

static void test_tls_client_certificate(void **state)
{
    struct fx *f = *state;
    struct pki p = {0};
    struct tls_srv t;
    struct got g;

    pki_make(&p);
    tls_start(&t, &p, 1);

    struct kn_http_request with_cert = {
        .ca_file = p.ca, .cert_file = p.client_cert, .key_file = p.client_key};
    tls_fetch(f, &t, &with_cert, &g);
    assert_null(g.error);
    assert_int_equal(g.status, 200);
    assert_string_equal(g.body, "tls:kanaria client");
    got_release(&g);

    /* the server requires one: without it there is no response */
    struct kn_http_request without = {.ca_file = p.ca};
    tls_fetch(f, &t, &without, &g);
    assert_int_equal(g.status, 0);
    assert_non_null(g.error);
    got_release(&g);

    tls_stop(&t);
    pki_release(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_get_ok, setup, teardown),
        cmocka_unit_test_setup_teardown(test_post_echo_with_header, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_503_is_a_response, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redirect_not_followed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_response_too_big, setup, teardown),
        cmocka_unit_test_setup_teardown(test_only_http, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_concurrent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_cancels_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_before_loop_runs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_from_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_response_headers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_response_headers_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_cancel_mid_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_cancel_from_data_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_from_data_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_queued, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bearer_token_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_basic_auth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_aws_sigv4, setup, teardown),
        cmocka_unit_test_setup_teardown(test_aws_sigv4_empty_token, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tls_per_request_ca, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tls_client_certificate, setup, teardown),
    };
    int rc;

    /* The server writes to connections the client may have dropped; a proxy from the
     * environment must not stand between the client and 127.0.0.1. */
    signal(SIGPIPE, SIG_IGN);
    setenv("no_proxy", "127.0.0.1", 1);
    setenv("NO_PROXY", "127.0.0.1", 1);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
