/*
 * Unit tests for controller/util/http_client: requests against the tests' small HTTP server
 * (testsrv.h) on the same libuv loop, answering by path.
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
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "kanaria/alloc.h"
#include "kanaria/error.h"
#include "util/http_client.h"

#define BIG_SIZE ((size_t)2 << 20)

/* ---- the test server's answers ---------------------------------------------------------- */

/* By path: /ok, /slow (ok after 2 s), /big, /stream (no Content-Length), /echo (method, the
 * X-Kanaria-Test header and the body), /status/503, /redirect; anything else 404. */
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
