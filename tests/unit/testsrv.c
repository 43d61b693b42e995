/*
 * The unit tests' small HTTP server (see testsrv.h).
 */
#include "testsrv.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kanaria/alloc.h"

struct kn_testsrv_conn {
    uv_tcp_t tcp;
    uv_timer_t delay;
    struct kn_testsrv *srv;
    struct kn_buf in;
    char *reply; /* the whole response, written once */
    size_t reply_len;
    long delay_ms;
    int answered;
    int hold; /* keep the connection open after the reply */
    int closing;
    int pending_close; /* handles of this connection not yet closed */
    struct kn_testsrv_conn *prev;
    struct kn_testsrv_conn *next;
};

static void conn_on_close(uv_handle_t *h)
{
    struct kn_testsrv_conn *c = h->data;

    if (--c->pending_close == 0) {
        kn_buf_release(&c->in);
        free(c->reply);
        free(c);
    }
}

static void conn_close(struct kn_testsrv_conn *c)
{
    if (c->closing) {
        return;
    }
    c->closing = 1;
    if (c->prev) {
        c->prev->next = c->next;
    } else {
        c->srv->conns = c->next;
    }
    if (c->next) {
        c->next->prev = c->prev;
    }
    c->pending_close = 2;
    uv_close((uv_handle_t *)&c->delay, conn_on_close);
    uv_close((uv_handle_t *)&c->tcp, conn_on_close);
}

static void on_written(uv_write_t *w, int status)
{
    struct kn_testsrv_conn *c = w->data;

    (void)status;
    free(w);
    if (!c->hold || status < 0) {
        conn_close(c);
    }
}

static void send_reply(struct kn_testsrv_conn *c)
{
    uv_write_t *w = kn_calloc(1, sizeof(*w));
    uv_buf_t b = uv_buf_init(c->reply ? c->reply : (char *)(uintptr_t) "",
                             (unsigned)c->reply_len);

    w->data = c;
    if (uv_write(w, (uv_stream_t *)&c->tcp, &b, 1, on_written) < 0) {
        free(w);
        conn_close(c);
    }
}

static void on_delay(uv_timer_t *t)
{
    send_reply(t->data);
}

char *kn_testsrv_header(const char *head, const char *name)
{
    size_t n = strlen(name);

    for (const char *p = strstr(head, "\r\n"); p; p = strstr(p + 2, "\r\n")) {
        const char *line = p + 2;
        if (strncasecmp(line, name, n) == 0 && line[n] == ':') {
            const char *v = line + n + 1;
            while (*v == ' ') {
                v++;
            }
            return kn_strndup(v, strcspn(v, "\r\n"));
        }
    }
    return kn_strdup("");
}

void kn_testsrv_reply(struct kn_testsrv_conn *c, int status, const char *extra, const void *body,
                      size_t body_len, long delay_ms)
{
    struct kn_buf b;

    kn_buf_init(&b, KN_BUF_UNBOUNDED);
    kn_buf_addf(&b, "HTTP/1.1 %d X\r\nConnection: close\r\nContent-Length: %zu\r\n%s\r\n", status,
                body_len, extra ? extra : "");
    kn_buf_add(&b, body, body_len);
    free(c->reply);
    c->reply = kn_buf_detach(&b, &c->reply_len);
    c->delay_ms = delay_ms;
}

void kn_testsrv_reply_raw(struct kn_testsrv_conn *c, char *bytes, size_t len)
{
    free(c->reply);
    c->reply = bytes;
    c->reply_len = len;
    c->delay_ms = 0;
}

void kn_testsrv_hold(struct kn_testsrv_conn *c)
{
    c->hold = 1;
}

/* Hand the request over once it is all in; returns 1 when it was. */
static int handle(struct kn_testsrv_conn *c)
{
    char *end = strstr(c->in.data, "\r\n\r\n");
    char method[16] = "", target[1024] = "";
    struct kn_testsrv_request req;
    size_t head_len, body_len;
    char *clen;

    if (!end) {
        return 0;
    }
    *end = '\0';
    head_len = (size_t)(end - c->in.data) + 4;
    clen = kn_testsrv_header(c->in.data, "Content-Length");
    body_len = (size_t)strtoul(clen, NULL, 10);
    free(clen);
    if (c->in.len - head_len < body_len) {
        *end = '\r';
        return 0;
    }
    sscanf(c->in.data, "%15s %1023s", method, target);
    req.method = method;
    req.target = target;
    req.head = c->in.data;
    req.body = c->in.data + head_len;
    req.body_len = body_len;
    c->srv->handler(c, &req, c->srv->data);
    if (c->delay_ms > 0) {
        uv_timer_start(&c->delay, on_delay, (uint64_t)c->delay_ms, 0);
    } else {
        send_reply(c);
    }
    return 1;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    buf->base = kn_malloc(suggested);
    buf->len = suggested;
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct kn_testsrv_conn *c = stream->data;

    if (nread < 0) {
        conn_close(c);
    } else if (nread > 0 && !c->answered) {
        if (kn_buf_add(&c->in, buf->base, (size_t)nread) < 0) {
            conn_close(c);
        } else if (handle(c)) {
            c->answered = 1;
        }
    }
    free(buf->base);
}

static void on_connection(uv_stream_t *listener, int status)
{
    struct kn_testsrv *s = listener->data;
    struct kn_testsrv_conn *c;

    if (status < 0) {
        return;
    }
    c = kn_calloc(1, sizeof(*c));
    c->srv = s;
    kn_buf_init(&c->in, 1 << 20);
    uv_tcp_init(listener->loop, &c->tcp);
    uv_timer_init(listener->loop, &c->delay);
    c->tcp.data = c;
    c->delay.data = c;
    c->next = s->conns;
    if (s->conns) {
        s->conns->prev = c;
    }
    s->conns = c;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) < 0 ||
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0) {
        conn_close(c);
    }
}

void kn_testsrv_start(struct kn_testsrv *s, uv_loop_t *loop, kn_testsrv_handler handler,
                      void *data)
{
    struct sockaddr_in addr;
    struct sockaddr_storage name;
    int namelen = sizeof(name);

    memset(s, 0, sizeof(*s));
    s->handler = handler;
    s->data = data;
    assert_int_equal(uv_ip4_addr("127.0.0.1", 0, &addr), 0);
    assert_int_equal(uv_tcp_init(loop, &s->listener), 0);
    s->listener.data = s;
    assert_int_equal(uv_tcp_bind(&s->listener, (const struct sockaddr *)&addr, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&s->listener, 128, on_connection), 0);
    assert_int_equal(uv_tcp_getsockname(&s->listener, (struct sockaddr *)&name, &namelen), 0);
    s->port = ntohs(((struct sockaddr_in *)&name)->sin_port);
}

void kn_testsrv_stop(struct kn_testsrv *s)
{
    while (s->conns) {
        conn_close(s->conns);
    }
    uv_close((uv_handle_t *)&s->listener, NULL);
}
