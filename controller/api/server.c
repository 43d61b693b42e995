/*
 * The API's HTTP server: libh2o on the controller's libuv loop. A uv_tcp_t listener hands each
 * connection to h2o (h2o_uv_socket_create + h2o_accept); one handler at "/" routes everything.
 */
#include "api/server.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "kanaria/alloc.h"
#include "kanaria/log.h"
#include "kanaria/schema.h"

#define WHO "api"

/* Idle keep-alive connections are closed after this; it also bounds how long a stop waits. */
#define KN_API_IDLE_TIMEOUT_MS 5000

struct kn_api_handler {
    h2o_handler_t super;
    struct kn_api *api;
};

/* On every answer of the listener (the API's, the web UI's, the event stream, and h2o's own
 * errors): no guessing of content types from the bytes, no address of kanaria in a Referer. */
static char kn_api_nosniff_name[] = "x-content-type-options";
static char kn_api_nosniff_value[] = "nosniff";
static char kn_api_referrer_name[] = "referrer-policy";
static char kn_api_referrer_value[] = "no-referrer";
static h2o_iovec_t kn_api_header_names[] = {
    {kn_api_nosniff_name, sizeof(kn_api_nosniff_name) - 1},
    {kn_api_referrer_name, sizeof(kn_api_referrer_name) - 1},
};
static h2o_headers_command_t kn_api_headers[] = {
    {H2O_HEADERS_CMD_SET, &kn_api_header_names[0],
     {kn_api_nosniff_value, sizeof(kn_api_nosniff_value) - 1}},
    {H2O_HEADERS_CMD_SET, &kn_api_header_names[1],
     {kn_api_referrer_value, sizeof(kn_api_referrer_value) - 1}},
    {H2O_HEADERS_CMD_NULL, NULL, {NULL, 0}},
};

static const char *kn_api_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 202:
        return "Accepted";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 413:
        return "Payload Too Large";
    case 503:
        return "Service Unavailable";
    default:
        return status < 400 ? "OK" : "Error";
    }
}

void kn_api_reply(h2o_req_t *req, int status, json_t *body)
{
    char *text = json_dumps(body, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    char *out;

    if (!text) {
        text = kn_strdup("{\"error\": \"cannot encode the answer\"}");
        status = 500;
    }
    out = kn_asprintf("%s\n", text);
    req->res.status = status;
    req->res.reason = kn_api_reason(status);
    req->res.content_length = strlen(out);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("application/json"));
    if (status == 401) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_WWW_AUTHENTICATE, NULL,
                       H2O_STRLIT("Bearer realm=\"kanaria\""));
    }
    h2o_send_inline(req, out, strlen(out)); /* copies into the request's pool */
    free(out);
    free(text);
}

void kn_api_reply_error(h2o_req_t *req, int status, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    json_t *body;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    body = json_pack("{s:s}", "error", msg);
    kn_api_reply(req, status, body);
    json_decref(body);
}

/* ---- refused calls --------------------------------------------------------------------------- */

static long long kn_api_clock_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* s[0..len) for a log line: at most size - 1 bytes, control bytes as '?'. */
static const char *kn_api_printable(char *buf, size_t size, const char *s, size_t len)
{
    size_t n = len < size - 1 ? len : size - 1;

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        buf[i] = c < 0x20 || c == 0x7f ? '?' : (char)c;
    }
    buf[n] = '\0';
    return buf;
}

/* Whether this 401 is written to the logs (0: only counted), starting a new window when due. */
static int kn_api_unauth_record(struct kn_api *api, long long now)
{
    if (!api->unauth_window || now - api->unauth_window >= KN_API_REFUSED_WINDOW_MS ||
        now < api->unauth_window) {
        if (api->unauth_quiet) {
            char msg[256];
            snprintf(msg, sizeof(msg),
                     "%llu more 401 refusals in the %d s from %lld were counted only (see "
                     "kanaria_api_refused_total)",
                     api->unauth_quiet, KN_API_REFUSED_WINDOW_MS / 1000, api->unauth_window);
            kn_log_warn(WHO, "%s", msg);
            kn_store_event_add(api->deps.store, "API_REFUSED", "", "", 0, "unauthenticated", msg,
                               now);
        }
        api->unauth_window = now;
        api->unauth_recorded = 0;
        api->unauth_quiet = 0;
    }
    if (api->unauth_recorded >= KN_API_REFUSED_BURST) {
        api->unauth_quiet++;
        return 0;
    }
    api->unauth_recorded++;
    return 1;
}

void kn_api_refuse(struct kn_api *api, h2o_req_t *req, int status, const char *user,
                   const char *fmt, ...)
{
    enum kn_api_route_id route =
        kn_api_route_of(req->path_normalized.base, req->path_normalized.len);
    char reason[1024], peer[96], method[16], path[256];
    long long now = kn_api_clock_ms();
    const char *who = user && *user ? user : NULL;
    char *msg;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    api->refused[status == 403][route]++;
    if (status == 403 || kn_api_unauth_record(api, now)) {
        /* the path without its query, and nothing of the request's headers */
        msg = kn_asprintf("%d %s %s from %s: %s", status,
                          kn_api_printable(method, sizeof(method), req->method.base,
                                           req->method.len),
                          kn_api_printable(path, sizeof(path), req->path_normalized.base,
                                           req->path_normalized.len),
                          kn_api_peer(req, peer, sizeof(peer)), reason);
        kn_log_warn(WHO, "refused user=%s %s", who ? who : "-", msg);
        kn_store_event_add(api->deps.store, "API_REFUSED", "", "", 0,
                           who ? who : "unauthenticated", msg, now);
        free(msg);
    }
    kn_api_reply_error(req, status, "%s", reason);
}

const char *kn_api_peer(h2o_req_t *req, char *buf, size_t size)
{
    struct sockaddr_storage ss;
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;

    memset(&ss, 0, sizeof(ss));
    if (req->conn->callbacks->get_peername &&
        req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss) > 0) {
        if (ss.ss_family == AF_INET) {
            const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
            port = ntohs(in->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
            port = ntohs(in6->sin6_port);
        }
    }
    snprintf(buf, size, ss.ss_family == AF_INET6 ? "[%s]:%d" : "%s:%d", ip, port);
    return buf;
}

const char *kn_api_header(h2o_req_t *req, const char *name, size_t *len)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, name, strlen(name), -1);

    if (i < 0) {
        *len = 0;
        return NULL;
    }
    *len = req->headers.entries[i].value.len;
    return req->headers.entries[i].value.base;
}

static int kn_api_on_req(h2o_handler_t *self, h2o_req_t *req)
{
    struct kn_api_handler *h = (struct kn_api_handler *)self;

    kn_api_handle(h->api, req);
    return 0;
}

static void kn_api_on_accept(uv_stream_t *listener, int status)
{
    struct kn_api *api = listener->data;
    uv_tcp_t *conn;
    h2o_socket_t *sock;

    if (status != 0 || api->stopped) {
        return;
    }
    conn = kn_calloc(1, sizeof(*conn));
    uv_tcp_init(listener->loop, conn);
    if (uv_accept(listener, (uv_stream_t *)conn) != 0) {
        uv_close((uv_handle_t *)conn, (uv_close_cb)free);
        return;
    }
    sock = h2o_uv_socket_create((uv_stream_t *)conn, (uv_close_cb)free);
    h2o_accept(&api->accept_ctx, sock);
}

struct kn_api_handles {
    uv_handle_t **items;
    size_t count;
};

static void kn_api_collect_handle(uv_handle_t *h, void *data)
{
    struct kn_api_handles *l = data;

    l->items = kn_reallocarray(l->items, l->count + 1, sizeof(*l->items));
    l->items[l->count++] = h;
}

/*
 * h2o's context puts handles of its own on the loop: a uv_async_t for its message queue (always
 * active) and timers. Nothing in h2o 2.2 lets a stopping server release them until the context
 * is disposed, which needs the loop to have ended first; so the context is set up between two
 * walks of the loop, and the handles that appeared are unreferenced at stop.
 */
static void kn_api_context_init(struct kn_api *api)
{
    struct kn_api_handles before = {0}, after = {0};

    uv_walk(api->deps.loop, kn_api_collect_handle, &before);
    h2o_context_init(&api->h2o_ctx, api->deps.loop, &api->h2o_config);
    api->h2o_ready = 1;
    uv_walk(api->deps.loop, kn_api_collect_handle, &after);
    for (size_t i = 0; i < after.count; i++) {
        int seen = 0;
        for (size_t j = 0; j < before.count && !seen; j++) {
            seen = after.items[i] == before.items[j];
        }
        if (!seen) {
            api->h2o_handles =
                kn_reallocarray(api->h2o_handles, api->nh2o_handles + 1, sizeof(uv_handle_t *));
            api->h2o_handles[api->nh2o_handles++] = after.items[i];
        }
    }
    free(before.items);
    free(after.items);
}

static int kn_api_tls(struct kn_api *api, const struct kn_tls_config *tls, struct kn_error *err)
{
    unsigned long e;
    char msg[256] = "";
    int rc = 0;

    api->ssl_ctx = SSL_CTX_new(TLS_server_method());
    if (!api->ssl_ctx) {
        rc = kn_error_set(err, KN_EIO, NULL, "cannot create a TLS context");
        goto out;
    }
    SSL_CTX_set_min_proto_version(api->ssl_ctx, TLS1_2_VERSION);
    if (SSL_CTX_use_certificate_chain_file(api->ssl_ctx, tls->cert_file) != 1 ||
        SSL_CTX_use_PrivateKey_file(api->ssl_ctx, tls->key_file, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(api->ssl_ctx) != 1) {
        if ((e = ERR_get_error()) != 0) {
            ERR_error_string_n(e, msg, sizeof(msg));
        }
        ERR_clear_error();
        rc = kn_error_set(err, KN_EIO, NULL, "tls: cannot use '%s' and '%s': %s", tls->cert_file,
                          tls->key_file, msg[0] ? msg : "unknown error");
        goto out;
    }
    api->accept_ctx.ssl_ctx = api->ssl_ctx;
out:
    return rc;
}

static int kn_api_listen(struct kn_api *api, const char *listen, struct kn_error *err)
{
    struct sockaddr_storage addr;
    char host[256];
    int port = 0;
    int rc = 0;
    int uvrc;

    memset(&addr, 0, sizeof(addr));
    if (kn_hostport_parse(listen, host, sizeof(host), &port) < 0) {
        rc = kn_error_set(err, KN_EINVAL, NULL, "listen: '%s' is not HOST:PORT", listen);
        goto out;
    }
    if (strcmp(host, "localhost") == 0) {
        snprintf(host, sizeof(host), "127.0.0.1");
    }
    if (host[0] == '\0') {
        uvrc = uv_ip4_addr("0.0.0.0", port, (struct sockaddr_in *)&addr);
    } else if (strchr(host, ':')) {
        uvrc = uv_ip6_addr(host, port, (struct sockaddr_in6 *)&addr);
        api->loopback = strcmp(host, "::1") == 0;
    } else {
        uvrc = uv_ip4_addr(host, port, (struct sockaddr_in *)&addr);
        api->loopback = strncmp(host, "127.", 4) == 0;
    }
    if (uvrc != 0) {
        rc = kn_error_set(err, KN_EINVAL, NULL, "listen: '%s' is not an IP address and port",
                          listen);
        goto out;
    }
    api->listener = kn_calloc(1, sizeof(*api->listener));
    uv_tcp_init(api->deps.loop, api->listener);
    api->listener->data = api;
    if ((uvrc = uv_tcp_bind(api->listener, (const struct sockaddr *)&addr, 0)) != 0 ||
        (uvrc = uv_listen((uv_stream_t *)api->listener, 128, kn_api_on_accept)) != 0) {
        rc = kn_error_set(err, KN_EIO, NULL, "cannot listen on %s: %s", listen, uv_strerror(uvrc));
        goto out;
    }
out:
    return rc;
}

int kn_api_new(struct kn_api **out, const struct kn_api_deps *deps, struct kn_error *err)
{
    struct kn_api *api = kn_calloc(1, sizeof(*api));
    const struct kn_config *cfg = deps->config;
    const char *listen = cfg->listen ? cfg->listen : "127.0.0.1:7070";
    struct kn_api_handler *h;
    h2o_hostconf_t *host;
    h2o_pathconf_t *path;
    int rc = 0;

    *out = NULL;
    api->deps = *deps;
    api->config = cfg;
    api->data_dir = kn_strdup(cfg->data_dir);
    h2o_config_init(&api->h2o_config);
    /* h2o 2.2 reads a body whole before the handler: the webhook's cap is the largest it holds;
     * a Content-Length over it is answered 413 by h2o before the body is read */
    api->h2o_config.max_request_entity_size = KN_WEBHOOK_BODY_MAX;
    api->h2o_config.http1.req_timeout = KN_API_IDLE_TIMEOUT_MS;
    host = h2o_config_register_host(&api->h2o_config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    path = h2o_config_register_path(host, "/", 0);
    h = (struct kn_api_handler *)h2o_create_handler(path, sizeof(*h));
    h->super.on_req = kn_api_on_req;
    h->api = api;
    /* a filter of the path of every request, and of the path h2o answers its own errors on */
    h2o_headers_register(path, kn_api_headers);
    h2o_headers_register(&host->fallback_path, kn_api_headers);
    if (cfg->tls.cert_file && cfg->tls.key_file && (rc = kn_api_tls(api, &cfg->tls, err)) < 0) {
        goto out;
    }
    if ((rc = kn_api_listen(api, listen, err)) < 0) {
        goto out;
    }
    /* last, so that a failure leaves nothing of h2o on the loop; nothing is accepted before the
     * loop runs again */
    kn_api_context_init(api);
    api->accept_ctx.ctx = &api->h2o_ctx;
    api->accept_ctx.hosts = api->h2o_config.hosts;
    kn_log_info(WHO, "listening on %s%s%s", cfg->tls.cert_file ? "https://" : "http://", listen,
                cfg->users.count == 0
                    ? (api->loopback ? " (no users: anonymous reads, no actions)"
                                     : " (no users: everything but /healthz and webhooks refused)")
                    : "");
    *out = api;
    api = NULL;
out:
    if (api) {
        kn_api_stop(api); /* the listener, if any, is freed when the loop runs its close */
        kn_api_free(api);
    }
    return rc;
}

void kn_api_set_config(struct kn_api *api, const struct kn_config *config)
{
    if (api && config) {
        api->config = config;
    }
}

void kn_api_stop(struct kn_api *api)
{
    if (!api || api->stopped) {
        return;
    }
    api->stopped = 1;
    kn_api_events_stop(api);
    if (api->listener) {
        uv_close((uv_handle_t *)api->listener, (uv_close_cb)free);
        api->listener = NULL;
    }
    if (api->h2o_ready) {
        /* connections close once their response is sent (h2o_context_request_shutdown would
         * also arm HTTP/2's graceful-shutdown timer, which must not outlive the loop) */
        api->h2o_ctx.shutdown_requested = 1;
        /* connections still open keep the loop running until h2o closes them; h2o's own handles
         * must not */
        for (size_t i = 0; i < api->nh2o_handles; i++) {
            uv_unref(api->h2o_handles[i]);
        }
    }
}

void kn_api_free(struct kn_api *api)
{
    if (!api) {
        return;
    }
    if (api->h2o_ready) {
        h2o_context_dispose(&api->h2o_ctx);
        /* h2o closes its timers: let the loop finish those closes */
        uv_run(api->deps.loop, UV_RUN_NOWAIT);
    }
    h2o_config_dispose(&api->h2o_config);
    if (api->ssl_ctx) {
        SSL_CTX_free(api->ssl_ctx);
    }
    free(api->h2o_handles);
    free(api->data_dir);
    free(api);
}
