/*
 * The asynchronous HTTP client: curl's multi-socket API on the libuv loop (the pattern of curl's
 * docs/examples/multi-uv.c). curl says which sockets to watch through the socket callback (one
 * uv_poll_t per socket) and when to call it back through the timer callback (one uv_timer_t);
 * both lead to curl_multi_socket_action, after which curl_multi_info_read hands back finished
 * transfers.
 *
 * Re-entrancy: curl_multi_add_handle only asks for a timeout through the timer callback, which
 * merely arms the uv_timer; every transfer is driven from loop callbacks, so no request can
 * complete inside kn_http_request. Completions run only outside curl calls (from the info_read
 * loop, kn_http_cancel or kn_http_client_close), so they may start requests or close the client;
 * closing from a completion defers curl_multi_cleanup until the info_read loop has returned.
 * Data callbacks (streaming mode) do run inside curl: a cancel or a close from there is only
 * marked (cancel_pending, close_pending), the write callback then refuses the bytes, and
 * kn_http_drive completes the marked calls, or closes, once curl has returned.
 */
#include "kanaria/http.h"

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kanaria/alloc.h"
#include "kanaria/error.h"
#include "kanaria/secret.h"

#define KN_HTTP_DEFAULT_TIMEOUT_MS   10000L
#define KN_HTTP_DEFAULT_MAX_RESPONSE ((size_t)1 << 20)

/* One socket curl asked us to watch. Freed in its close callback, never earlier. */
struct kn_http_sock {
    uv_poll_t poll;
    struct kn_http_client *c;
    curl_socket_t fd;
    struct kn_http_sock *prev;
    struct kn_http_sock *next;
};

/* The header fields of the final response: "Name: value" entries, each NUL-terminated, one
 * after the other in `buf` (bounded by KN_HTTP_MAX_HEADERS). */
struct kn_http_headers {
    struct kn_buf buf;
};

/* One accepted request, from kn_http_start until its callback has run. */
struct kn_http_call {
    struct kn_http_client *c;
    CURL *easy;
    struct curl_slist *headers;
    char *body;         /* our copy; curl reads it during the transfer (CURLOPT_POSTFIELDS) */
    struct kn_buf resp; /* bounded by max_response; unused in streaming mode */
    struct kn_http_headers hdrs;
    int too_big;        /* the write callback refused more bytes */
    int hdrs_too_big;   /* the header callback refused more bytes */
    int cancel_pending; /* cancelled from inside curl: completes once curl has returned */
    long timeout_ms;    /* < 0: none */
    size_t max_response;
    uint64_t start_ns;
    kn_http_data_cb on_data;
    kn_http_cb cb;
    void *data;
    struct kn_http_call *prev;
    struct kn_http_call *next;
};

struct kn_http_client {
    uv_loop_t *loop;
    CURLM *multi; /* NULL once cleaned up */
    uv_timer_t timer;
    struct kn_http_call *calls; /* in flight */
    struct kn_http_sock *socks; /* polls not yet closing */
    unsigned open_handles;      /* timer and polls whose close callback has not run */
    unsigned busy;              /* depth of kn_http_drive: defer the multi cleanup */
    int in_curl;                /* inside curl_multi_socket_action: defer cancels and close */
    int close_pending;          /* closed from a data callback: close once curl has returned */
    int closing;
};

/* curl_global_init is not thread-safe in every libcurl build, so it runs once, lazily, from the
 * loop thread in kn_http_client_new: the controller creates its client on the loop thread before
 * any worker thread (libgit2 on uv_queue_work) could use curl. */
static int kn_http_global_done;

static void kn_http_check_done(struct kn_http_client *c);
static void kn_http_finish_pending(struct kn_http_client *c);
static void kn_http_finish_close(struct kn_http_client *c);

static void kn_http_maybe_free(struct kn_http_client *c)
{
    if (c->closing && c->multi == NULL && c->open_handles == 0) {
        free(c);
    }
}

/* ---- the loop side: polls and the timer -------------------------------------------------- */

/* Let curl act on fd (or on its timeouts), then complete what finished. */
static void kn_http_drive(struct kn_http_client *c, curl_socket_t fd, int flags)
{
    int running = 0;

    c->busy++;
    c->in_curl = 1;
    curl_multi_socket_action(c->multi, fd, flags, &running);
    c->in_curl = 0;
    if (c->close_pending) {
        c->close_pending = 0;
        kn_http_client_close(c);
    }
    kn_http_check_done(c);
    kn_http_finish_pending(c);
    c->busy--;
    if (c->closing && c->busy == 0 && c->multi != NULL) {
        kn_http_finish_close(c);
    }
}

static void kn_http_on_poll(uv_poll_t *handle, int status, int events)
{
    struct kn_http_sock *s = handle->data;
    struct kn_http_client *c = s->c;
    int flags = 0;

    /* Read everything before curl runs: its socket callback may close this poll. */
    if (status < 0) {
        flags |= CURL_CSELECT_ERR;
    }
    if (events & UV_READABLE) {
        flags |= CURL_CSELECT_IN;
    }
    if (events & UV_WRITABLE) {
        flags |= CURL_CSELECT_OUT;
    }
    kn_http_drive(c, s->fd, flags);
}

static void kn_http_on_timer(uv_timer_t *handle)
{
    struct kn_http_client *c = handle->data;

    kn_http_drive(c, CURL_SOCKET_TIMEOUT, 0);
}

static void kn_http_on_sock_close(uv_handle_t *handle)
{
    struct kn_http_sock *s = handle->data;
    struct kn_http_client *c = s->c;

    free(s);
    c->open_handles--;
    kn_http_maybe_free(c);
}

static void kn_http_on_timer_close(uv_handle_t *handle)
{
    struct kn_http_client *c = handle->data;

    c->open_handles--;
    kn_http_maybe_free(c);
}

/* Stop watching and close; the memory goes in kn_http_on_sock_close. uv_close stops the poll at
 * once, so curl may close (and the kernel reuse) the descriptor right after this returns. */
static void kn_http_sock_close(struct kn_http_sock *s)
{
    struct kn_http_client *c = s->c;

    if (s->prev) {
        s->prev->next = s->next;
    } else {
        c->socks = s->next;
    }
    if (s->next) {
        s->next->prev = s->prev;
    }
    uv_poll_stop(&s->poll);
    uv_close((uv_handle_t *)&s->poll, kn_http_on_sock_close);
}

/* CURLMOPT_SOCKETFUNCTION. Returns -1 (curl then fails the transfer) when libuv cannot poll. */
static int kn_http_on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    struct kn_http_client *c = userp;
    struct kn_http_sock *s = socketp;
    int events = 0;
    int rc = 0;

    (void)easy;
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            /* During curl_multi_cleanup the socket hash is going away: leave it alone. */
            if (!c->closing) {
                curl_multi_assign(c->multi, fd, NULL);
            }
            kn_http_sock_close(s);
        }
        goto out;
    }
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT) {
        events |= UV_READABLE;
    }
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT) {
        events |= UV_WRITABLE;
    }
    if (!s) {
        s = kn_calloc(1, sizeof(*s));
        s->c = c;
        s->fd = fd;
        if (uv_poll_init_socket(c->loop, &s->poll, fd) < 0) {
            free(s);
            rc = -1;
            goto out;
        }
        s->poll.data = s;
        c->open_handles++;
        s->next = c->socks;
        if (c->socks) {
            c->socks->prev = s;
        }
        c->socks = s;
        curl_multi_assign(c->multi, fd, s);
    }
    if (uv_poll_start(&s->poll, events, kn_http_on_poll) < 0) {
        curl_multi_assign(c->multi, fd, NULL);
        kn_http_sock_close(s);
        rc = -1;
    }
out:
    return rc;
}

/* CURLMOPT_TIMERFUNCTION: only arm or stop the timer; curl must not be called back from here. */
static int kn_http_on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    struct kn_http_client *c = userp;

    (void)multi;
    if (timeout_ms < 0) {
        uv_timer_stop(&c->timer);
    } else {
        uv_timer_start(&c->timer, kn_http_on_timer, (uint64_t)timeout_ms, 0);
    }
    return 0;
}

/* ---- transfers ---------------------------------------------------------------------------- */

/* The response so far, for a data callback or the completion. */
static void kn_http_part(struct kn_http_call *x, struct kn_http_response *res)
{
    long status = 0;

    memset(res, 0, sizeof(*res));
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
    res->status = (int)status;
    res->body = "";
    res->headers = &x->hdrs;
    res->total_ms = (double)(uv_hrtime() - x->start_ns) / 1e6;
}

static size_t kn_http_on_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct kn_http_call *x = userdata;
    struct kn_http_response part;
    size_t n = size * nmemb;

    /* anything short of n makes curl abort with CURLE_WRITE_ERROR */
    if (x->cancel_pending) {
        n = 0;
    } else if (x->on_data) {
        kn_http_part(x, &part);
        part.body = ptr;
        part.body_len = n;
        if (x->on_data(&part, x->data) != 0) {
            x->cancel_pending = 1;
            n = 0;
        }
    } else if (kn_buf_add(&x->resp, ptr, n) < 0) {
        x->too_big = 1;
        n = 0;
    }
    return n;
}

/* CURLOPT_HEADERFUNCTION: keep the fields of the last response (a status line starts over, so
 * that a "100 Continue" leaves nothing behind). */
static size_t kn_http_on_header(char *ptr, size_t size, size_t nitems, void *userdata)
{
    struct kn_http_call *x = userdata;
    size_t n = size * nitems;
    size_t len = n;

    while (len > 0 && (ptr[len - 1] == '\n' || ptr[len - 1] == '\r' || ptr[len - 1] == ' ' ||
                       ptr[len - 1] == '\t')) {
        len--;
    }
    if (len >= 5 && strncmp(ptr, "HTTP/", 5) == 0) {
        kn_buf_reset(&x->hdrs.buf);
    } else if (len > 0 && memchr(ptr, ':', len) && !memchr(ptr, '\0', len)) {
        if (kn_buf_add(&x->hdrs.buf, ptr, len) < 0 || kn_buf_addch(&x->hdrs.buf, '\0') < 0) {
            x->hdrs_too_big = 1;
            n = 0;
        }
    }
    return n;
}

const char *kn_http_header(const struct kn_http_headers *h, const char *name, size_t nth)
{
    size_t name_len = strlen(name);
    const char *p, *end;

    if (!h || !h->buf.data) {
        return NULL;
    }
    end = h->buf.data + h->buf.len;
    for (p = h->buf.data; p < end; p += strlen(p) + 1) {
        const char *colon = strchr(p, ':');
        if (!colon || (size_t)(colon - p) != name_len || strncasecmp(p, name, name_len) != 0) {
            continue;
        }
        if (nth-- > 0) {
            continue;
        }
        colon++;
        while (*colon == ' ' || *colon == '\t') {
            colon++;
        }
        return colon;
    }
    return NULL;
}

static void kn_http_call_free(struct kn_http_call *x)
{
    if (x->easy) {
        curl_easy_cleanup(x->easy);
    }
    /* header lines may carry credentials (Authorization, X-Amz-Security-Token) */
    for (struct curl_slist *l = x->headers; l; l = l->next) {
        OPENSSL_cleanse(l->data, strlen(l->data));
    }
    curl_slist_free_all(x->headers);
    free(x->body);
    kn_buf_release(&x->resp);
    kn_buf_release(&x->hdrs.buf);
    free(x);
}

/* Take x off the multi and the in-flight list, run its callback once, free it. `cancelled`
 * overrides result. */
static void kn_http_call_finish(struct kn_http_call *x, CURLcode result, int cancelled)
{
    struct kn_http_client *c = x->c;
    struct kn_http_response res;
    char msg[64];

    curl_multi_remove_handle(c->multi, x->easy);
    if (x->prev) {
        x->prev->next = x->next;
    } else {
        c->calls = x->next;
    }
    if (x->next) {
        x->next->prev = x->prev;
    }

    kn_http_part(x, &res);
    res.code = KN_EIO;
    if (cancelled || x->cancel_pending) {
        res.error = "cancelled";
        res.code = KN_ECANCELLED;
    } else if (x->hdrs_too_big) {
        snprintf(msg, sizeof(msg), "response headers larger than %zu bytes", KN_HTTP_MAX_HEADERS);
        res.error = msg;
        res.code = KN_ETOOBIG;
    } else if (x->too_big || result == CURLE_FILESIZE_EXCEEDED) {
        snprintf(msg, sizeof(msg), "response larger than %zu bytes", x->max_response);
        res.error = msg;
        res.code = KN_ETOOBIG;
    } else if (result == CURLE_OPERATION_TIMEDOUT) {
        if (x->timeout_ms > 0) {
            snprintf(msg, sizeof(msg), "timed out after %ld ms", x->timeout_ms);
        } else {
            snprintf(msg, sizeof(msg), "could not connect within %ld ms",
                     KN_HTTP_DEFAULT_TIMEOUT_MS);
        }
        res.error = msg;
        res.code = KN_ETIMEDOUT;
    } else if (result == CURLE_COULDNT_CONNECT) {
        res.error = "connection refused";
    } else if (result != CURLE_OK) {
        res.error = curl_easy_strerror(result);
    } else {
        res.code = 0;
        if (x->resp.data) {
            res.body = x->resp.data;
            res.body_len = x->resp.len;
        }
    }
    if (res.error) {
        res.status = 0;
    }
    x->cb(&res, x->data);
    kn_http_call_free(x);
}

static void kn_http_check_done(struct kn_http_client *c)
{
    CURLMsg *m;
    int pending = 0;

    while (!c->closing && (m = curl_multi_info_read(c->multi, &pending)) != NULL) {
        if (m->msg == CURLMSG_DONE) {
            char *priv = NULL;
            CURLcode result = m->data.result; /* m is invalid once the handle is removed */

            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
            kn_http_call_finish((struct kn_http_call *)(void *)priv, result, 0);
        }
    }
}

/* Complete the calls cancelled from inside curl that curl has not finished itself (a cancel of
 * another call from a data callback). Each completion may change the list: start over. */
static void kn_http_finish_pending(struct kn_http_client *c)
{
    struct kn_http_call *x = c->calls;

    while (!c->closing && x) {
        if (x->cancel_pending) {
            kn_http_call_finish(x, CURLE_OK, 1);
            x = c->calls;
        } else {
            x = x->next;
        }
    }
}

static int kn_http_add_header(struct kn_http_call *x, const char *line)
{
    struct curl_slist *l = curl_slist_append(x->headers, line);

    if (!l) {
        return KN_EIO;
    }
    x->headers = l;
    return 0;
}

/* curl_easy_setopt in the functions below, which have `e`, `rc`, `err` and `out:`. */
#define KN_SETOPT(opt, val)                                                                        \
    do {                                                                                           \
        if (curl_easy_setopt(e, opt, val) != CURLE_OK) {                                           \
            rc = kn_error_set(err, KN_EIO, NULL, "http: curl refused option %s", #opt);            \
            goto out;                                                                              \
        }                                                                                          \
    } while (0)

/* The request's credentials, one kind at most: curl builds the header (Bearer, Basic) or signs
 * (SigV4); secret files are read now. 0, KN_EINVAL, KN_EIO or the secret reader's code. */
static int kn_http_call_auth(struct kn_http_call *x, const struct kn_http_request *req,
                             struct kn_error *err)
{
    struct kn_secret secret = {0};
    CURL *e = x->easy;
    int rc = 0;

    if ((req->bearer_token_file != NULL) + (req->username != NULL) + (req->aws != NULL) > 1) {
        rc = kn_error_set(err, KN_EINVAL, NULL,
                          "http: one of bearer_token_file, username and aws at most");
        goto out;
    }
    if (req->bearer_token_file) {
        if ((rc = kn_secret_read(&secret, req->bearer_token_file, KN_SECRET_LINE, err)) < 0) {
            goto out;
        }
        KN_SETOPT(CURLOPT_HTTPAUTH, (long)CURLAUTH_BEARER);
        KN_SETOPT(CURLOPT_XOAUTH2_BEARER, secret.data);
    } else if (req->username) {
        if (req->password_file &&
            (rc = kn_secret_read(&secret, req->password_file, KN_SECRET_LINE, err)) < 0) {
            goto out;
        }
        KN_SETOPT(CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        KN_SETOPT(CURLOPT_USERNAME, req->username);
        KN_SETOPT(CURLOPT_PASSWORD, secret.data ? secret.data : "");
    } else if (req->aws) {
        if (!req->aws->provider || !req->aws->access_key_id || !req->aws->secret_access_key) {
            rc = kn_error_set(err, KN_EINVAL, NULL,
                              "http: SigV4 needs a provider, an access key id and a secret key");
            goto out;
        }
        KN_SETOPT(CURLOPT_AWS_SIGV4, req->aws->provider);
        KN_SETOPT(CURLOPT_USERNAME, req->aws->access_key_id);
        KN_SETOPT(CURLOPT_PASSWORD, req->aws->secret_access_key);
        /* an empty token is none: libcurl 7.88 would sign an empty header it does not send */
        if (req->aws->session_token && *req->aws->session_token) {
            char *line = kn_asprintf("X-Amz-Security-Token: %s", req->aws->session_token);
            rc = kn_http_add_header(x, line);
            kn_secret_free_str(line);
            if (rc < 0) {
                rc = kn_error_set(err, rc, NULL, "http: cannot add a header");
                goto out;
            }
        }
    }
out:
    kn_secret_release(&secret);
    return rc;
}

/* Everything kn_http_start asks of curl; 0, KN_EIO, or the secret reader's code. */
static int kn_http_call_setup(struct kn_http_call *x, const struct kn_http_request *req,
                              struct kn_error *err)
{
    const char *method = req->method ? req->method : "GET";
    CURL *e = x->easy;
    int rc = 0;

    KN_SETOPT(CURLOPT_URL, req->url);
    KN_SETOPT(CURLOPT_PRIVATE, (void *)x);
    KN_SETOPT(CURLOPT_NOSIGNAL, 1L);
    if (x->timeout_ms > 0) {
        KN_SETOPT(CURLOPT_TIMEOUT_MS, x->timeout_ms);
    } else {
        KN_SETOPT(CURLOPT_CONNECTTIMEOUT_MS, KN_HTTP_DEFAULT_TIMEOUT_MS);
    }
    KN_SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
#if LIBCURL_VERSION_NUM >= 0x075500
    KN_SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
#else
    KN_SETOPT(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    KN_SETOPT(CURLOPT_WRITEFUNCTION, kn_http_on_write);
    KN_SETOPT(CURLOPT_WRITEDATA, (void *)x);
    KN_SETOPT(CURLOPT_HEADERFUNCTION, kn_http_on_header);
    KN_SETOPT(CURLOPT_HEADERDATA, (void *)x);
    if (!x->on_data) {
        /* Refuse early when Content-Length already says too much; the write callback catches
         * the rest (chunked or close-delimited bodies). */
        KN_SETOPT(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)x->max_response);
    }

    if (req->body || strcmp(method, "POST") == 0) {
        x->body = kn_malloc(req->body_len + 1);
        if (req->body_len) {
            memcpy(x->body, req->body, req->body_len);
        }
        x->body[req->body_len] = '\0';
        KN_SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        KN_SETOPT(CURLOPT_POSTFIELDS, x->body);
        if (strcmp(method, "POST") != 0) {
            KN_SETOPT(CURLOPT_CUSTOMREQUEST, method);
        }
    } else if (strcmp(method, "HEAD") == 0) {
        KN_SETOPT(CURLOPT_NOBODY, 1L);
    } else if (strcmp(method, "GET") != 0) {
        KN_SETOPT(CURLOPT_CUSTOMREQUEST, method);
    }

    /* TLS: curl copies the file names; it reads the files when it connects */
    if (req->ca_file) {
        /* only this bundle: without the CA folder curl was built with (/etc/ssl/certs) */
        KN_SETOPT(CURLOPT_CAINFO, req->ca_file);
        KN_SETOPT(CURLOPT_CAPATH, (char *)NULL);
    }
    if (req->cert_file) {
        KN_SETOPT(CURLOPT_SSLCERT, req->cert_file);
        KN_SETOPT(CURLOPT_SSLCERTTYPE, "PEM");
    }
    if (req->key_file) {
        KN_SETOPT(CURLOPT_SSLKEY, req->key_file);
        KN_SETOPT(CURLOPT_SSLKEYTYPE, "PEM");
    }

    if ((rc = kn_http_call_auth(x, req, err)) < 0) {
        goto out;
    }

    for (const char *const *h = req->headers; h && *h; h++) {
        if ((rc = kn_http_add_header(x, *h)) < 0) {
            rc = kn_error_set(err, rc, NULL, "http: cannot add a header");
            goto out;
        }
    }
    if (x->headers) {
        KN_SETOPT(CURLOPT_HTTPHEADER, x->headers);
    }
out:
    return rc;
}

#undef KN_SETOPT

/* ---- the public functions ----------------------------------------------------------------- */

int kn_http_client_new(struct kn_http_client **out, uv_loop_t *loop)
{
    struct kn_http_client *c = NULL;
    int rc = 0;

    *out = NULL;
    if (!loop) {
        rc = KN_EINVAL;
        goto out;
    }
    if (!kn_http_global_done) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            rc = KN_EIO;
            goto out;
        }
        kn_http_global_done = 1;
    }
    c = kn_calloc(1, sizeof(*c));
    c->loop = loop;
    c->multi = curl_multi_init();
    if (!c->multi) {
        rc = KN_EIO;
        goto out;
    }
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, kn_http_on_socket);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, kn_http_on_curl_timer);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    c->open_handles = 1;
    *out = c;
    c = NULL;
out:
    free(c);
    return rc;
}

uv_loop_t *kn_http_client_loop(const struct kn_http_client *c)
{
    return c ? c->loop : NULL;
}

int kn_http_start(struct kn_http_call **out, struct kn_http_client *c,
                  const struct kn_http_request *req, kn_http_cb cb, void *data,
                  struct kn_error *err)
{
    struct kn_http_call *x = NULL;
    int rc = 0;

    if (out) {
        *out = NULL;
    }
    if (!c || !req || !req->url || !cb || c->closing || c->close_pending) {
        rc = kn_error_set(err, KN_EINVAL, NULL, "http: no client, URL or callback");
        goto out;
    }
    x = kn_calloc(1, sizeof(*x));
    x->c = c;
    x->cb = cb;
    x->on_data = req->on_data;
    x->data = data;
    x->timeout_ms = req->timeout_ms == 0 ? KN_HTTP_DEFAULT_TIMEOUT_MS : req->timeout_ms;
    x->max_response = req->max_response ? req->max_response : KN_HTTP_DEFAULT_MAX_RESPONSE;
    kn_buf_init(&x->resp, x->max_response);
    kn_buf_init(&x->hdrs.buf, KN_HTTP_MAX_HEADERS);
    x->easy = curl_easy_init();
    if (!x->easy) {
        rc = kn_error_set(err, KN_EIO, NULL, "http: curl_easy_init failed");
        goto out;
    }
    if ((rc = kn_http_call_setup(x, req, err)) < 0) {
        goto out;
    }
    x->start_ns = uv_hrtime();
    if (curl_multi_add_handle(c->multi, x->easy) != CURLM_OK) {
        rc = kn_error_set(err, KN_EIO, NULL, "http: curl refused the transfer");
        goto out;
    }
    x->next = c->calls;
    if (c->calls) {
        c->calls->prev = x;
    }
    c->calls = x;
    if (out) {
        *out = x;
    }
    x = NULL;
out:
    if (x) {
        kn_http_call_free(x);
    }
    return rc;
}

int kn_http_request(struct kn_http_client *c, const struct kn_http_request *req, kn_http_cb cb,
                    void *data)
{
    return kn_http_start(NULL, c, req, cb, data, NULL);
}

void kn_http_cancel(struct kn_http_call *call)
{
    if (!call) {
        goto out;
    }
    if (call->c->in_curl) {
        call->cancel_pending = 1;
        goto out;
    }
    kn_http_call_finish(call, CURLE_OK, 1);
out:
    return;
}

/* The last step of closing, outside any curl call: clean up the multi (which may still report
 * sockets to remove), close what polls remain and the timer. */
static void kn_http_finish_close(struct kn_http_client *c)
{
    curl_multi_cleanup(c->multi);
    c->multi = NULL;
    while (c->socks) {
        kn_http_sock_close(c->socks);
    }
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, kn_http_on_timer_close);
}

void kn_http_client_close(struct kn_http_client *c)
{
    if (!c || c->closing) {
        goto out;
    }
    if (c->in_curl) {
        /* from a data callback: refuse every further byte, close when curl has returned */
        c->close_pending = 1;
        for (struct kn_http_call *x = c->calls; x; x = x->next) {
            x->cancel_pending = 1;
        }
        goto out;
    }
    c->closing = 1;
    while (c->calls) {
        kn_http_call_finish(c->calls, CURLE_OK, 1);
    }
    if (c->busy == 0) {
        kn_http_finish_close(c);
    }
out:
    return;
}
