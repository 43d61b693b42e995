/*
 * hello — the quickstart's demo service: the app kanaria deploys in `make demo`.
 *
 *     kanaria_hello --port N
 *
 * Answers:
 *   GET /         "hello from VERSION", with the header X-Version: VERSION
 *   GET /healthz  "ok" (what kanaria's health check asks)
 *
 * Environment, so that a commit to its LocalService manifest is all it takes to change it:
 *   VERSION     the version it reports ("unknown" when unset)
 *   ERROR_RATE  0..1: that fraction of answers on / are 500 (a bad release)
 *   LATENCY_MS  every answer on / waits this long first (a slow release)
 *
 * It listens on 127.0.0.1 only, reads a request up to the end of its headers, answers and closes
 * the connection (HAProxy keeps its clients' connections open on its side).
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#define KN_HELLO_REQUEST_MAX 8192
#define KN_HELLO_ANSWER_MAX  512

struct kn_hello {
    const char *version;
    double error_rate;
    uint64_t latency_ms;
};

struct kn_hello_conn {
    uv_tcp_t tcp;
    uv_timer_t delay;
    uv_write_t write;
    const struct kn_hello *hello;
    char req[KN_HELLO_REQUEST_MAX + 1];
    size_t len;
    char answer[KN_HELLO_ANSWER_MAX];
    size_t answer_len;
    int handles; /* open handles; the connection is freed when the last one closes */
};

static void kn_hello_closed(uv_handle_t *h)
{
    struct kn_hello_conn *c = h->data;

    if (--c->handles == 0) {
        free(c);
    }
}

static void kn_hello_close(struct kn_hello_conn *c)
{
    if (!uv_is_closing((uv_handle_t *)&c->tcp)) {
        uv_close((uv_handle_t *)&c->tcp, kn_hello_closed);
    }
    if (!uv_is_closing((uv_handle_t *)&c->delay)) {
        uv_close((uv_handle_t *)&c->delay, kn_hello_closed);
    }
}

static void kn_hello_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct kn_hello_conn *c = h->data;

    (void)suggested;
    buf->base = c->req + c->len;
    buf->len = KN_HELLO_REQUEST_MAX - c->len;
}

static void kn_hello_written(uv_write_t *w, int status)
{
    (void)status;
    kn_hello_close(w->data);
}

static void kn_hello_send(struct kn_hello_conn *c)
{
    uv_buf_t buf = uv_buf_init(c->answer, (unsigned)c->answer_len);

    c->write.data = c;
    if (uv_write(&c->write, (uv_stream_t *)&c->tcp, &buf, 1, kn_hello_written) != 0) {
        kn_hello_close(c);
    }
}

static void kn_hello_delayed(uv_timer_t *t)
{
    kn_hello_send(t->data);
}

/* Writes the answer to the request in c->req into c->answer. Returns whether it is the app's
 * own page (which LATENCY_MS slows down) rather than the health check. */
static int kn_hello_prepare(struct kn_hello_conn *c)
{
    const struct kn_hello *hello = c->hello;
    char path[256] = "/";
    char body[160];
    int status = 200;
    const char *reason = "OK";
    int page = 1;

    sscanf(c->req, "%*s %255s", path);
    path[strcspn(path, "?")] = '\0';
    if (strcmp(path, "/healthz") == 0) {
        snprintf(body, sizeof(body), "ok\n");
        page = 0;
    } else if (hello->error_rate > 0 && rand() / ((double)RAND_MAX + 1) < hello->error_rate) {
        status = 500;
        reason = "Internal Server Error";
        snprintf(body, sizeof(body), "hello %s failed (ERROR_RATE=%g)\n", hello->version,
                 hello->error_rate);
    } else {
        snprintf(body, sizeof(body), "hello from %s\n", hello->version);
    }
    int n = snprintf(c->answer, sizeof(c->answer),
                     "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                     "X-Version: %s\r\nConnection: close\r\n\r\n%s",
                     status, reason, strlen(body), hello->version, body);
    c->answer_len = n < 0 ? 0 : (size_t)n >= sizeof(c->answer) ? sizeof(c->answer) - 1 : (size_t)n;
    return page;
}

static void kn_hello_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct kn_hello_conn *c = s->data;

    (void)buf;
    if (nread < 0) {
        kn_hello_close(c);
        return;
    }
    c->len += (size_t)nread;
    c->req[c->len] = '\0';
    if (strstr(c->req, "\r\n\r\n")) {
        uv_read_stop(s);
        if (kn_hello_prepare(c) && c->hello->latency_ms > 0) {
            uv_timer_start(&c->delay, kn_hello_delayed, c->hello->latency_ms, 0);
        } else {
            kn_hello_send(c);
        }
    } else if (c->len == KN_HELLO_REQUEST_MAX) {
        kn_hello_close(c);
    }
}

static void kn_hello_connection(uv_stream_t *server, int status)
{
    struct kn_hello_conn *c;

    if (status < 0) {
        return;
    }
    c = calloc(1, sizeof(*c));
    if (!c) {
        abort();
    }
    c->hello = server->data;
    uv_tcp_init(server->loop, &c->tcp);
    uv_timer_init(server->loop, &c->delay);
    c->tcp.data = c;
    c->delay.data = c;
    c->handles = 2;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0 ||
        uv_read_start((uv_stream_t *)&c->tcp, kn_hello_alloc, kn_hello_read) != 0) {
        kn_hello_close(c);
    }
}

static void kn_hello_signal(uv_signal_t *sig, int signum)
{
    fprintf(stderr, "hello: stopping on signal %d\n", signum);
    uv_stop(sig->loop);
}

static int kn_hello_usage(const char *argv0)
{
    fprintf(stderr, "usage: %s --port N\n", argv0);
    return 2;
}

int main(int argc, char **argv)
{
    struct kn_hello hello = {.version = "unknown"};
    const char *port_s = NULL;
    struct sockaddr_in addr;
    uv_tcp_t server;
    uv_signal_t sigterm;
    uv_loop_t *loop = uv_default_loop();
    int rc;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            port_s = argv[++i];
        } else {
            return kn_hello_usage(argv[0]);
        }
    }
    int port = port_s ? atoi(port_s) : 0;
    if (port <= 0 || port > 65535) {
        return kn_hello_usage(argv[0]);
    }
    if (getenv("VERSION") && *getenv("VERSION")) {
        hello.version = getenv("VERSION");
    }
    if (getenv("ERROR_RATE")) {
        hello.error_rate = atof(getenv("ERROR_RATE"));
    }
    if (getenv("LATENCY_MS")) {
        hello.latency_ms = strtoull(getenv("LATENCY_MS"), NULL, 10);
    }
    srand((unsigned)getpid() ^ (unsigned)time(NULL));
    signal(SIGPIPE, SIG_IGN);

    uv_tcp_init(loop, &server);
    server.data = &hello;
    uv_ip4_addr("127.0.0.1", port, &addr);
    rc = uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0);
    if (rc == 0) {
        rc = uv_listen((uv_stream_t *)&server, 128, kn_hello_connection);
    }
    if (rc != 0) {
        fprintf(stderr, "hello: listen on 127.0.0.1:%d: %s\n", port, uv_strerror(rc));
        return 1;
    }
    uv_signal_init(loop, &sigterm);
    uv_signal_start(&sigterm, kn_hello_signal, SIGTERM);
    fprintf(stderr, "hello: %s listening on 127.0.0.1:%d (ERROR_RATE=%g LATENCY_MS=%llu)\n",
            hello.version, port, hello.error_rate, (unsigned long long)hello.latency_ms);
    uv_run(loop, UV_RUN_DEFAULT);
    return 0;
}
