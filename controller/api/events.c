/*
 * GET /api/v1/events: the audit log as server-sent events. Each stream is an h2o response that
 * never ends on its own (h2o_start_response with a generator, h2o_send IN_PROGRESS); what is
 * written while h2o is still sending the previous chunk waits in the stream's buffer until h2o
 * asks for more (proceed).
 */
#include <stdlib.h>
#include <string.h>

#include "api/router.h"
#include "kanaria/alloc.h"
#include "kanaria/log.h"
#include "notify.h"

#define WHO "api"

/* A comment line every so often keeps proxies and clients from timing the stream out. */
#define KN_API_KEEPALIVE_MS (15 * 1000)
/* Events of the log sent after Last-Event-ID, at most. */
#define KN_API_BACKLOG 1000
/* What may wait for a slow client before it is disconnected. */
#define KN_API_STREAM_MAX (1024 * 1024)

/* Lives in the request's pool: freed with the request, whatever ends it. */
struct kn_api_stream {
    h2o_generator_t super;
    struct kn_api *api;
    h2o_req_t *req;             /* NULL once h2o stopped the response or it was ended */
    struct kn_api_stream *next; /* in api->streams */
    int linked;
    struct kn_buf pending;  /* written, not yet handed to h2o */
    struct kn_buf inflight; /* handed to h2o, kept until it proceeds */
    int sending;
    int closing;       /* end the response once the pending bytes are out */
    long long last_id; /* the newest event sent */
};

static void kn_api_stream_unlink(struct kn_api_stream *s)
{
    struct kn_api_stream **p;

    if (!s->linked) {
        return;
    }
    for (p = &s->api->streams; *p; p = &(*p)->next) {
        if (*p == s) {
            *p = s->next;
            break;
        }
    }
    s->linked = 0;
}

static void kn_api_stream_flush(struct kn_api_stream *s)
{
    struct kn_buf tmp;
    h2o_iovec_t buf;
    h2o_req_t *req = s->req;

    if (s->sending || !req || (s->pending.len == 0 && !s->closing)) {
        return;
    }
    tmp = s->inflight;
    s->inflight = s->pending;
    s->pending = tmp;
    kn_buf_reset(&s->pending);
    buf = h2o_iovec_init(s->inflight.data ? s->inflight.data : "", s->inflight.len);
    s->sending = 1;
    if (s->closing) {
        s->req = NULL; /* nothing more goes to h2o */
        kn_api_stream_unlink(s);
    }
    h2o_send(req, &buf, 1, s->closing ? H2O_SEND_STATE_FINAL : H2O_SEND_STATE_IN_PROGRESS);
}

static void kn_api_stream_proceed(h2o_generator_t *g, h2o_req_t *req)
{
    struct kn_api_stream *s = (struct kn_api_stream *)g;

    (void)req;
    s->sending = 0;
    kn_api_stream_flush(s);
}

static void kn_api_stream_stop(h2o_generator_t *g, h2o_req_t *req)
{
    struct kn_api_stream *s = (struct kn_api_stream *)g;

    (void)req;
    s->req = NULL;
    kn_api_stream_unlink(s);
}

static void kn_api_stream_dispose(void *p)
{
    struct kn_api_stream *s = p;

    s->req = NULL;
    kn_api_stream_unlink(s);
    kn_buf_release(&s->pending);
    kn_buf_release(&s->inflight);
}

/* Append text; a client that lets more than KN_API_STREAM_MAX wait is let go. */
static void kn_api_stream_write(struct kn_api_stream *s, const char *text, size_t len)
{
    if (!s->req || s->closing) {
        return;
    }
    if (kn_buf_add(&s->pending, text, len) < 0) {
        kn_log_warn(WHO, "an event stream reads too slowly (%d KiB waiting): closing it",
                    KN_API_STREAM_MAX / 1024);
        kn_buf_reset(&s->pending);
        s->closing = 1;
    }
    kn_api_stream_flush(s);
}

static void kn_api_stream_event(struct kn_api_stream *s, const struct kn_event *e)
{
    json_t *j;
    char *data, *text;

    if (e->id <= s->last_id) {
        return;
    }
    s->last_id = e->id;
    j = kn_notify_event_json(e);
    data = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(j);
    if (!data) {
        return;
    }
    /* JSON_COMPACT escapes newlines in strings: the data stays on one line */
    text = kn_asprintf("id: %lld\ndata: %s\n\n", e->id, data);
    kn_api_stream_write(s, text, strlen(text));
    free(text);
    free(data);
}

void kn_api_publish(const struct kn_event *e, void *data)
{
    struct kn_api *api = data;
    struct kn_api_stream *s, *next;

    if (!api) {
        return;
    }
    for (s = api->streams; s; s = next) {
        next = s->next; /* a write may unlink s */
        kn_api_stream_event(s, e);
    }
}

static void kn_api_keepalive(uv_timer_t *t)
{
    static const char line[] = ": keep-alive\n\n";
    struct kn_api *api = t->data;
    struct kn_api_stream *s, *next;

    for (s = api->streams; s; s = next) {
        next = s->next;
        kn_api_stream_write(s, line, sizeof(line) - 1);
    }
}

static int kn_api_backlog_event(const struct kn_event *e, void *data)
{
    kn_api_stream_event(data, e);
    return 0;
}

/* Last-Event-ID as a number (0: from the start of the log), or -1 when absent or not a
 * number: then the stream starts with the events written after it opened. */
static long long kn_api_last_event_id(h2o_req_t *req)
{
    char buf[32];
    size_t len;
    const char *v = kn_api_header(req, "last-event-id", &len);
    char *end = NULL;
    long long id;

    if (!v || len == 0 || len >= sizeof(buf)) {
        return -1;
    }
    memcpy(buf, v, len);
    buf[len] = '\0';
    id = strtoll(buf, &end, 10);
    return end != buf && *end == '\0' && id >= 0 ? id : -1;
}

void kn_api_events_get(struct kn_api *api, h2o_req_t *req, const struct kn_api_call *call)
{
    static const char hello[] = ": kanaria events\nretry: 2000\n\n";
    struct kn_api_stream *s;
    long long after = kn_api_last_event_id(req);

    (void)call;
    if (api->stopped) {
        kn_api_reply_error(req, 503, "the server is stopping");
        return;
    }
    s = h2o_mem_alloc_shared(&req->pool, sizeof(*s), kn_api_stream_dispose);
    memset(s, 0, sizeof(*s));
    s->super.proceed = kn_api_stream_proceed;
    s->super.stop = kn_api_stream_stop;
    s->api = api;
    s->req = req;
    kn_buf_init(&s->pending, KN_API_STREAM_MAX);
    kn_buf_init(&s->inflight, KN_API_STREAM_MAX); /* the two are swapped: same bound */
    s->next = api->streams;
    api->streams = s;
    s->linked = 1;
    if (!api->keepalive) {
        api->keepalive = kn_calloc(1, sizeof(*api->keepalive));
        uv_timer_init(api->deps.loop, api->keepalive);
        api->keepalive->data = api;
        uv_timer_start(api->keepalive, kn_api_keepalive, KN_API_KEEPALIVE_MS, KN_API_KEEPALIVE_MS);
    }
    req->res.status = 200;
    req->res.reason = "OK";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("text/event-stream"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL,
                   H2O_STRLIT("no-cache"));
    h2o_start_response(req, &s->super);
    kn_buf_add(&s->pending, hello, sizeof(hello) - 1);
    if (after >= 0) {
        /* what the client missed; newer events come from kn_api_publish, each once */
        kn_store_events(api->deps.store, after, KN_API_BACKLOG, kn_api_backlog_event, s);
    }
    kn_api_stream_flush(s);
}

/* ---- GET /api/v1/audit: the log as JSON, a page at a time ----------------------------------- */

#define KN_API_AUDIT_LIMIT     100
#define KN_API_AUDIT_LIMIT_MAX 1000

struct kn_api_audit_page {
    json_t *events;
    const char *name; /* the type asked for as the API names it (SUCCEEDED, ...), or NULL */
    long long limit;
    long long scanned; /* rows read; limit + 1 of them: another page follows */
    long long next;    /* the id of the last row of this page */
};

static int kn_api_audit_collect(const struct kn_event *e, void *data)
{
    struct kn_api_audit_page *p = data;

    if (++p->scanned > p->limit) {
        return 0;
    }
    p->next = e->id;
    if (!p->name || strcmp(kn_notify_event_name(e), p->name) == 0) {
        json_array_append_new(p->events, kn_notify_event_json(e));
    }
    return 0;
}

/* A query parameter that is a whole number in [min, max], else def when absent; -1 answered 400
 * when it is something else. */
static int kn_api_audit_number(h2o_req_t *req, const char *name, long long min, long long max,
                               long long def, long long *out)
{
    int bad;
    const char *v = kn_api_query_param(req, name, &bad);
    char *end = NULL;

    *out = def;
    if (!v && !bad) {
        return 0;
    }
    if (v) {
        *out = strtoll(v, &end, 10);
    }
    if (!v || end == v || *end || *out < min || *out > max) {
        kn_api_reply_error(req, 400, "query parameter '%s' must be a whole number from %lld to %lld",
                           name, min, max);
        return -1;
    }
    return 0;
}

/* The stored type of the type the API shows: final statuses are named as in notifications. */
static const char *kn_api_audit_stored_type(const char *name)
{
    if (strcmp(name, "SUCCEEDED") == 0) {
        return "SUCCESS";
    }
    if (strcmp(name, "FAILED") == 0 || strcmp(name, "ROLLED_BACK") == 0) {
        return "FAILURE";
    }
    return name;
}

void kn_api_audit_get(struct kn_api *api, h2o_req_t *req, const struct kn_api_call *call)
{
    struct kn_event_filter f = {0};
    struct kn_api_audit_page page = {0};
    long long after, last = 0;
    json_t *body;
    int bad = 0, b;

    if (kn_api_audit_number(req, "after", 0, 1LL << 62, 0, &after) < 0 ||
        kn_api_audit_number(req, "limit", 1, KN_API_AUDIT_LIMIT_MAX, KN_API_AUDIT_LIMIT,
                            &page.limit) < 0 ||
        kn_api_audit_number(req, "since", 0, 1LL << 62, 0, &f.since_ms) < 0) {
        return;
    }
    f.repo = call->repo;
    f.app = kn_api_query_param(req, "app", &b);
    bad |= b;
    page.name = kn_api_query_param(req, "type", &b);
    bad |= b;
    if (bad) {
        kn_api_reply_error(req, 400, "query parameter 'app' or 'type' is not percent-encoded text");
        return;
    }
    f.type = page.name ? kn_api_audit_stored_type(page.name) : NULL;
    page.events = json_array();
    page.next = after;
    /* one row more than asked: whether another page follows */
    if (kn_store_events_find(api->deps.store, after, (int)page.limit + 1, &f,
                             kn_api_audit_collect, &page) < 0 ||
        kn_store_event_last_id(api->deps.store, &last) < 0) {
        kn_api_reply_error(req, 500, "cannot read the audit log of the state store");
        json_decref(page.events);
        return;
    }
    body = json_pack("{s:o, s:I, s:b, s:I}", "events", page.events, "next", (json_int_t)page.next,
                     "more", page.scanned > page.limit, "last_event_id", (json_int_t)last);
    kn_api_reply(req, 200, body);
    json_decref(body);
}

void kn_api_events_stop(struct kn_api *api)
{
    while (api->streams) {
        struct kn_api_stream *s = api->streams;
        kn_api_stream_unlink(s);
        s->closing = 1;
        kn_api_stream_flush(s);
    }
    if (api->keepalive) {
        uv_close((uv_handle_t *)api->keepalive, (uv_close_cb)free);
        api->keepalive = NULL;
    }
}
