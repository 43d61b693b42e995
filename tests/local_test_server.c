/*
 * A small HTTP server for the local platform's tests: what an app behind kanaria looks like.
 *
 *     kanaria_test_server --port N     (or the PORT environment variable)
 *
 * Environment:
 *   VERSION        reported as the body of every answer but /healthz ("unknown" when unset)
 *   ERROR_RATE     0..1: that fraction of answers (not /healthz) are 500
 *   EXIT_AFTER_MS  exit with status 3 after this many milliseconds (a crash)
 *   UNHEALTHY=1    /healthz answers 503
 *   HEALTHY_AFTER_MS  /healthz answers 503 for this many milliseconds after the start (a slow
 *                  start)
 *
 * One request per connection: it reads until the end of the headers, answers and closes. A test
 * fixture, not product code: it listens on 127.0.0.1 only and ignores request bodies.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#define KN_TS_REQUEST_MAX 16384

struct kn_ts_conn {
    uv_tcp_t tcp;
    uv_write_t write;
    char req[KN_TS_REQUEST_MAX + 1];
    size_t len;
    char *answer;
    int answered;
};

static const char *kn_ts_version = "unknown";
static double kn_ts_error_rate;
static int kn_ts_unhealthy;
static uint64_t kn_ts_healthy_at; /* uv_now() from which /healthz may answer 200 */

static void kn_ts_conn_closed(uv_handle_t *h)
{
    struct kn_ts_conn *c = h->data;
    free(c->answer);
    free(c);
}

static void kn_ts_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct kn_ts_conn *c = h->data;
    (void)suggested;
    buf->base = c->req + c->len;
    buf->len = KN_TS_REQUEST_MAX - c->len;
}

static void kn_ts_written(uv_write_t *w, int status)
{
    struct kn_ts_conn *c = w->data;
    (void)status;
    uv_close((uv_handle_t *)&c->tcp, kn_ts_conn_closed);
}

static void kn_ts_answer(struct kn_ts_conn *c)
{
    char path[1024] = "/";
    int status = 200;
    const char *reason = "OK";
    const char *body = kn_ts_version;

    sscanf(c->req, "%*s %1023s", path);
    char *q = strchr(path, '?');
    if (q) {
        *q = '\0';
    }
    if (strcmp(path, "/healthz") == 0) {
        body = "ok";
        if (kn_ts_unhealthy || uv_now(c->tcp.loop) < kn_ts_healthy_at) {
            status = 503;
            reason = "Service Unavailable";
            body = "unhealthy";
        }
    } else if (kn_ts_error_rate > 0 && rand() / ((double)RAND_MAX + 1) < kn_ts_error_rate) {
        status = 500;
        reason = "Internal Server Error";
        body = "error";
    }

    size_t size = strlen(body) + 256;
    c->answer = malloc(size);
    if (!c->answer) {
        abort();
    }
    int n = snprintf(c->answer, size,
                     "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n%s",
                     status, reason, strlen(body), body);
    uv_buf_t buf = uv_buf_init(c->answer, (unsigned)n);
    c->answered = 1;
    c->write.data = c;
    uv_read_stop((uv_stream_t *)&c->tcp);
    if (uv_write(&c->write, (uv_stream_t *)&c->tcp, &buf, 1, kn_ts_written) != 0) {
        uv_close((uv_handle_t *)&c->tcp, kn_ts_conn_closed);
    }
}

static void kn_ts_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct kn_ts_conn *c = s->data;
    (void)buf;
    if (nread < 0) {
        uv_close((uv_handle_t *)s, kn_ts_conn_closed);
        return;
    }
    c->len += (size_t)nread;
    c->req[c->len] = '\0';
    if (strstr(c->req, "\r\n\r\n")) {
        kn_ts_answer(c);
    } else if (c->len == KN_TS_REQUEST_MAX) {
        uv_close((uv_handle_t *)s, kn_ts_conn_closed);
    }
}

static void kn_ts_connection(uv_stream_t *server, int status)
{
    if (status < 0) {
        return;
    }
    struct kn_ts_conn *c = calloc(1, sizeof(*c));
    if (!c) {
        abort();
    }
    uv_tcp_init(server->loop, &c->tcp);
    c->tcp.data = c;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0 ||
        uv_read_start((uv_stream_t *)&c->tcp, kn_ts_alloc, kn_ts_read) != 0) {
        uv_close((uv_handle_t *)&c->tcp, kn_ts_conn_closed);
    }
}

static void kn_ts_exit_timer(uv_timer_t *t)
{
    (void)t;
    fprintf(stderr, "local_test_server: exiting with status 3 (EXIT_AFTER_MS)\n");
    exit(3);
}

int main(int argc, char **argv)
{
    const char *port_s = getenv("PORT");
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            port_s = argv[++i];
        } else {
            fprintf(stderr, "usage: %s --port N\n", argv[0]);
            return 2;
        }
    }
    int port = port_s ? atoi(port_s) : 0;
    if (port <= 0 || port > 65535) {
        fprintf(stderr, "local_test_server: a port is required (--port N or PORT)\n");
        return 2;
    }
    if (getenv("VERSION")) {
        kn_ts_version = getenv("VERSION");
    }
    if (getenv("ERROR_RATE")) {
        kn_ts_error_rate = atof(getenv("ERROR_RATE"));
    }
    kn_ts_unhealthy = getenv("UNHEALTHY") && strcmp(getenv("UNHEALTHY"), "1") == 0;
    srand((unsigned)getpid() ^ (unsigned)time(NULL));

    uv_loop_t *loop = uv_default_loop();
    if (getenv("HEALTHY_AFTER_MS")) {
        kn_ts_healthy_at = uv_now(loop) + (uint64_t)atoll(getenv("HEALTHY_AFTER_MS"));
    }
    uv_tcp_t server;
    struct sockaddr_in addr;
    uv_tcp_init(loop, &server);
    uv_ip4_addr("127.0.0.1", port, &addr);
    int rc = uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0);
    if (rc == 0) {
        rc = uv_listen((uv_stream_t *)&server, 128, kn_ts_connection);
    }
    if (rc != 0) {
        fprintf(stderr, "local_test_server: listen on 127.0.0.1:%d: %s\n", port, uv_strerror(rc));
        return 1;
    }

    uv_timer_t exit_timer;
    if (getenv("EXIT_AFTER_MS")) {
        uv_timer_init(loop, &exit_timer);
        uv_timer_start(&exit_timer, kn_ts_exit_timer, (uint64_t)atoll(getenv("EXIT_AFTER_MS")), 0);
    }
    fprintf(stderr, "local_test_server: version %s listening on 127.0.0.1:%d\n", kn_ts_version,
            port);
    return uv_run(loop, UV_RUN_DEFAULT);
}
