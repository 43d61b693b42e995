/*
 * Notifications: per-notification queues on the shared HTTP client, retried with backoff.
 */
#include "notify.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "kanaria/alloc.h"
#include "kanaria/log.h"
#include "kanaria/secret.h"

#define KN_NOTIFY_TIMEOUT_MS 10000

struct kn_notify_item {
    char *body;
    size_t len;
    long long event_id;
    char name[32]; /* the event's notification name */
};

/* One configured notification. Freed once it is retired, its timer closed and nothing is in
 * flight, so that a late answer never reaches freed memory. */
struct kn_notify_target {
    char who[192]; /* "notify name=ops" */
    char *name;
    int type; /* enum kn_notification_type */
    char *url;
    char *secret_file;                    /* read at each delivery; NULL: unsigned */
    struct kn_notification_config filter; /* events and apps, owned copies */
    struct kn_http_client *http;
    struct kn_notify_item ring[KN_NOTIFY_QUEUE_MAX];
    size_t head, count;
    struct kn_notify_item current; /* being delivered; body NULL when none */
    int attempt;
    int inflight;
    uv_timer_t timer;
    int retired;
    int timer_closed;
};

struct kn_notify {
    uv_loop_t *loop;
    struct kn_http_client *http;
    struct kn_notify_target **targets;
    size_t ntargets;
};

/* ---- pure parts ------------------------------------------------------------------------------ */

static int kn_notify_has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);

    return n >= m && strcmp(s + n - m, suffix) == 0;
}

const char *kn_notify_event_name(const struct kn_event *e)
{
    if (strcmp(e->type, "SUCCESS") == 0) {
        return "SUCCEEDED";
    }
    if (strcmp(e->type, "FAILURE") == 0) {
        /* the engine's reason for a failure whose rollback worked */
        return kn_notify_has_suffix(e->message, "(rolled back)") ? "ROLLED_BACK" : "FAILED";
    }
    return e->type;
}

static int kn_notify_listed(const struct kn_strlist *l, const char *s)
{
    for (size_t i = 0; i < l->count; i++) {
        if (strcmp(l->items[i], s) == 0) {
            return 1;
        }
    }
    return 0;
}

int kn_notify_matches(const struct kn_notification_config *c, const struct kn_event *e)
{
    const char *name = kn_notify_event_name(e);

    if (c->events.count == 0 ? strcmp(name, "STAGE_LOG") == 0
                             : !kn_notify_listed(&c->events, name)) {
        return 0;
    }
    return c->apps.count == 0 || (e->app[0] && kn_notify_listed(&c->apps, e->app));
}

json_t *kn_notify_event_json(const struct kn_event *e)
{
    return json_pack("{s:I, s:s, s:I, s:s, s:s, s:I, s:s, s:s}", "id", (json_int_t)e->id, "type",
                     kn_notify_event_name(e), "at", (json_int_t)e->at, "repo", e->repo, "app",
                     e->app, "deployment", (json_int_t)e->deployment, "actor", e->actor, "message",
                     e->message);
}

char *kn_notify_payload(int type, const struct kn_event *e)
{
    json_t *j;
    char *out;

    if (type == KN_NOTIFY_SLACK) {
        char deploy[64] = "";
        char *text;
        if (e->deployment > 0) {
            snprintf(deploy, sizeof(deploy), "deployment %lld, ", e->deployment);
        }
        text =
            kn_asprintf("kanaria: %s %s (%srepository %s, by %s)%s%s", e->app[0] ? e->app : e->repo,
                        kn_notify_event_name(e), deploy, e->repo,
                        e->actor[0] ? e->actor : "kanaria", e->message[0] ? ": " : "", e->message);
        j = json_pack("{s:s}", "text", text);
        free(text);
    } else {
        j = kn_notify_event_json(e);
    }
    out = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(j);
    if (!out) {
        abort(); /* only on out of memory: the values are valid strings and numbers */
    }
    return out;
}

void kn_notify_sign(const char *secret, size_t secret_len, const char *body, size_t body_len,
                    char out[KN_NOTIFY_SIGNATURE_SIZE])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    char *p = out;

    memcpy(p, "sha256=", 7);
    p += 7;
    if (!HMAC(EVP_sha256(), secret, (int)secret_len, (const unsigned char *)(body_len ? body : ""),
              body_len, mac, &len)) {
        len = 0;
    }
    for (unsigned int i = 0; i < len && i < 32; i++) {
        *p++ = hex[mac[i] >> 4];
        *p++ = hex[mac[i] & 15];
    }
    *p = '\0';
}

long long kn_notify_backoff_ms(int attempt)
{
    long long ms = 1000;

    if (attempt < 2) {
        return 0;
    }
    for (int i = 2; i < attempt && ms < KN_NOTIFY_BACKOFF_MAX_MS; i++) {
        ms *= 2;
    }
    return ms < KN_NOTIFY_BACKOFF_MAX_MS ? ms : KN_NOTIFY_BACKOFF_MAX_MS;
}

/* ---- one notification ------------------------------------------------------------------------ */

static void kn_notify_item_release(struct kn_notify_item *it)
{
    free(it->body);
    memset(it, 0, sizeof(*it));
}

static void kn_notify_strlist_copy(struct kn_strlist *dst, const struct kn_strlist *src)
{
    dst->items = src->count ? kn_calloc(src->count, sizeof(*dst->items)) : NULL;
    dst->count = src->count;
    for (size_t i = 0; i < src->count; i++) {
        dst->items[i] = kn_strdup(src->items[i]);
    }
}

static void kn_notify_strlist_free(struct kn_strlist *l)
{
    for (size_t i = 0; i < l->count; i++) {
        free(l->items[i]);
    }
    free(l->items);
    memset(l, 0, sizeof(*l));
}

/* Take c's settings (the queue stays). */
static void kn_notify_target_configure(struct kn_notify_target *t,
                                       const struct kn_notification_config *c)
{
    struct kn_secret secret = {0};
    struct kn_error err;

    free(t->name);
    free(t->url);
    free(t->secret_file);
    kn_notify_strlist_free(&t->filter.events);
    kn_notify_strlist_free(&t->filter.apps);
    t->name = kn_strdup(c->name ? c->name : "");
    snprintf(t->who, sizeof(t->who), "notify name=%s", t->name);
    t->type = c->type;
    t->url = kn_strdup(c->url ? c->url : "");
    t->secret_file =
        c->secret_file && t->type == KN_NOTIFY_WEBHOOK ? kn_strdup(c->secret_file) : NULL;
    kn_notify_strlist_copy(&t->filter.events, &c->events);
    kn_notify_strlist_copy(&t->filter.apps, &c->apps);
    /* read now too, so that a file that cannot be read is reported at start or reload */
    if (t->secret_file && kn_secret_read(&secret, t->secret_file, KN_SECRET_LINE, &err) < 0) {
        kn_log_error(t->who, "%s: nothing is sent until it can be read", err.msg);
    }
    kn_secret_release(&secret);
}

static void kn_notify_target_maybe_free(struct kn_notify_target *t)
{
    if (!t->retired || !t->timer_closed || t->inflight) {
        return;
    }
    kn_notify_item_release(&t->current);
    for (size_t i = 0; i < t->count; i++) {
        kn_notify_item_release(&t->ring[(t->head + i) % KN_NOTIFY_QUEUE_MAX]);
    }
    free(t->name);
    free(t->url);
    free(t->secret_file);
    kn_notify_strlist_free(&t->filter.events);
    kn_notify_strlist_free(&t->filter.apps);
    free(t);
}

static void kn_notify_timer_closed(uv_handle_t *h)
{
    struct kn_notify_target *t = h->data;

    t->timer_closed = 1;
    kn_notify_target_maybe_free(t);
}

static void kn_notify_retire(struct kn_notify_target *t)
{
    if (t->retired) {
        return;
    }
    t->retired = 1;
    uv_close((uv_handle_t *)&t->timer, kn_notify_timer_closed);
}

static void kn_notify_send(struct kn_notify_target *t);

/* Start on the next queued event, when nothing is being delivered. */
static void kn_notify_next(struct kn_notify_target *t)
{
    if (t->retired || t->current.body || t->count == 0) {
        return;
    }
    t->current = t->ring[t->head];
    memset(&t->ring[t->head], 0, sizeof(t->ring[t->head]));
    t->head = (t->head + 1) % KN_NOTIFY_QUEUE_MAX;
    t->count--;
    t->attempt = 1;
    kn_notify_send(t);
}

static void kn_notify_on_timer(uv_timer_t *h)
{
    kn_notify_send(h->data);
}

/* The current delivery failed: try again later, or give up on it. */
static void kn_notify_failed(struct kn_notify_target *t, const char *why)
{
    long long wait;

    if (t->attempt >= KN_NOTIFY_ATTEMPTS) {
        kn_log_error(t->who, "giving up on event %lld %s after %d attempts: %s",
                     t->current.event_id, t->current.name, t->attempt, why);
        kn_notify_item_release(&t->current);
        kn_notify_next(t);
        return;
    }
    t->attempt++;
    wait = kn_notify_backoff_ms(t->attempt);
    kn_log_warn(t->who, "event %lld %s: %s; attempt %d in %lld ms", t->current.event_id,
                t->current.name, why, t->attempt, wait);
    uv_timer_start(&t->timer, kn_notify_on_timer, (uint64_t)wait, 0);
}

static void kn_notify_on_response(const struct kn_http_response *res, void *data)
{
    struct kn_notify_target *t = data;
    char why[300];

    t->inflight = 0;
    if (t->retired) {
        kn_notify_target_maybe_free(t);
        return;
    }
    if (res->status >= 200 && res->status <= 299) {
        kn_log_debug(t->who, "sent event %lld %s (HTTP %d, attempt %d)", t->current.event_id,
                     t->current.name, res->status, t->attempt);
        kn_notify_item_release(&t->current);
        kn_notify_next(t);
        return;
    }
    if (res->status) {
        snprintf(why, sizeof(why), "%s answered HTTP %d", t->url, res->status);
    } else {
        snprintf(why, sizeof(why), "%s: %s", t->url, res->error ? res->error : "no answer");
    }
    kn_notify_failed(t, why);
}

static void kn_notify_send(struct kn_notify_target *t)
{
    char event[64], delivery[64], agent[64];
    char sig[KN_NOTIFY_SIGNATURE_SIZE + 32];
    const char *headers[6];
    struct kn_http_request req = {
        .method = "POST",
        .url = t->url,
        .headers = headers,
        .body = t->current.body,
        .body_len = t->current.len,
        .timeout_ms = KN_NOTIFY_TIMEOUT_MS,
        .max_response = 64 * 1024,
    };
    struct kn_secret secret = {0};
    struct kn_error err;
    size_t h = 0;

    if (t->retired || !t->current.body) {
        return;
    }
    /* read at each delivery, so a rotated secret signs at once; never sent unsigned */
    if (t->secret_file && kn_secret_read(&secret, t->secret_file, KN_SECRET_LINE, &err) < 0) {
        kn_notify_failed(t, err.msg);
        return;
    }
    snprintf(event, sizeof(event), "X-Kanaria-Event: %s", t->current.name);
    snprintf(delivery, sizeof(delivery), "X-Kanaria-Delivery: %lld", t->current.event_id);
    snprintf(agent, sizeof(agent), "User-Agent: kanaria/%s", KANARIA_VERSION);
    headers[h++] = "Content-Type: application/json";
    headers[h++] = event;
    headers[h++] = delivery;
    headers[h++] = agent;
    if (secret.data) {
        memcpy(sig, "X-Kanaria-Signature-256: ", 25);
        kn_notify_sign(secret.data, secret.len, t->current.body, t->current.len, sig + 25);
        headers[h++] = sig;
    }
    kn_secret_release(&secret);
    headers[h] = NULL;
    if (kn_http_request(t->http, &req, kn_notify_on_response, t) < 0) {
        kn_notify_failed(t, "the request could not be started");
        return;
    }
    t->inflight = 1;
}

static void kn_notify_enqueue(struct kn_notify_target *t, const struct kn_event *e)
{
    struct kn_notify_item *it;

    if (t->count == KN_NOTIFY_QUEUE_MAX) {
        it = &t->ring[t->head];
        kn_log_warn(t->who, "queue full (%d events): dropping event %lld %s", KN_NOTIFY_QUEUE_MAX,
                    it->event_id, it->name);
        kn_notify_item_release(it);
        t->head = (t->head + 1) % KN_NOTIFY_QUEUE_MAX;
        t->count--;
    }
    it = &t->ring[(t->head + t->count) % KN_NOTIFY_QUEUE_MAX];
    it->body = kn_notify_payload(t->type, e);
    it->len = strlen(it->body);
    it->event_id = e->id;
    snprintf(it->name, sizeof(it->name), "%s", kn_notify_event_name(e));
    t->count++;
    kn_notify_next(t);
}

static struct kn_notify_target *kn_notify_target_new(struct kn_notify *n,
                                                     const struct kn_notification_config *c)
{
    struct kn_notify_target *t = kn_calloc(1, sizeof(*t));

    t->http = n->http;
    uv_timer_init(n->loop, &t->timer);
    t->timer.data = t;
    kn_notify_target_configure(t, c);
    return t;
}

/* ---- the set of notifications ---------------------------------------------------------------- */

int kn_notify_new(struct kn_notify **out, uv_loop_t *loop, struct kn_http_client *http,
                  const struct kn_config *cfg)
{
    struct kn_notify *n = kn_calloc(1, sizeof(*n));

    n->loop = loop;
    n->http = http;
    kn_notify_set_config(n, cfg);
    *out = n;
    return 0;
}

void kn_notify_set_config(struct kn_notify *n, const struct kn_config *cfg)
{
    const struct kn_notification_config *list = cfg->notifications.items;
    size_t count = cfg->notifications.count;
    struct kn_notify_target **next = kn_calloc(count + 1, sizeof(*next));

    for (size_t i = 0; i < count; i++) {
        for (size_t j = 0; j < n->ntargets && !next[i]; j++) {
            if (n->targets[j] && strcmp(n->targets[j]->name, list[i].name) == 0) {
                next[i] = n->targets[j];
                n->targets[j] = NULL;
                kn_notify_target_configure(next[i], &list[i]);
            }
        }
        if (!next[i]) {
            next[i] = kn_notify_target_new(n, &list[i]);
        }
    }
    for (size_t j = 0; j < n->ntargets; j++) {
        if (n->targets[j]) {
            kn_notify_retire(n->targets[j]);
        }
    }
    free(n->targets);
    n->targets = next;
    n->ntargets = count;
}

void kn_notify_event(const struct kn_event *e, void *data)
{
    struct kn_notify *n = data;

    for (size_t i = 0; n && i < n->ntargets; i++) {
        struct kn_notify_target *t = n->targets[i];
        if (kn_notify_matches(&t->filter, e)) {
            kn_notify_enqueue(t, e);
        }
    }
}

void kn_notify_close(struct kn_notify *n)
{
    if (!n) {
        return;
    }
    for (size_t i = 0; i < n->ntargets; i++) {
        kn_notify_retire(n->targets[i]);
    }
    free(n->targets);
    free(n);
}
