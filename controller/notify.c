/*
 * Notifications: per-notification queues on the shared HTTP client, retried with backoff.
 */
#include "notify.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "kanaria/alloc.h"
#include "kanaria/log.h"
#include "kanaria/selfmetrics.h"
#include "kanaria/secret.h"
#include "template.h"

#define KN_NOTIFY_TIMEOUT_MS 10000

struct kn_notify_item {
    struct kn_event e; /* a copy; e.message owned */
    char name[32];     /* the event's notification name */
};

/* What a Slack bot request in flight is. */
enum kn_notify_slack_call { KN_NOTIFY_SLACK_POST = 0, KN_NOTIFY_SLACK_UPDATE };

/* One configured notification. Freed once it is retired, its timer closed and nothing is in
 * flight, so that a late answer never reaches freed memory. While retired it no longer uses its
 * owner (which may be gone). */
struct kn_notify_target {
    char who[192]; /* "notify name=ops" */
    struct kn_notify *n;
    char *name;
    int type; /* enum kn_notification_type */
    char *url;
    char *secret_file; /* read at each delivery; NULL: unsigned */
    char *token_file;  /* slack bot token or pagerduty routing key */
    char *channel;
    char *tmpl;
    struct kn_notification_config filter; /* events and apps, owned copies */
    struct kn_http_client *http;
    struct kn_notify_item ring[KN_NOTIFY_QUEUE_MAX];
    size_t head, count;
    struct kn_notify_item current; /* being delivered; current.e.id 0 when none */
    int has_current;
    long long queued_upto; /* the last event read from the store */
    long long saved;       /* the cursor last written to the store */
    int attempt;
    uint64_t first_attempt; /* uv_now of the current event's first attempt */
    long long retry_for_ms; /* retryFor */
    int inflight;
    int slack_call; /* enum kn_notify_slack_call */
    int pd_action;  /* KN_NOTIFY_PD_* of the request in flight */
    uv_timer_t timer;
    int retired;
    int timer_closed;
};

struct kn_notify_repo {
    char *name;
    char *url;
};

struct kn_notify {
    uv_loop_t *loop;
    struct kn_http_client *http;
    struct kn_store *store; /* NULL: events are taken as handed to kn_notify_event */
    char *external_url;
    struct kn_notify_repo *repos;
    size_t nrepos;
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

char *kn_notify_text(const struct kn_event *e)
{
    char deploy[64] = "";

    if (e->deployment > 0) {
        snprintf(deploy, sizeof(deploy), "deployment %lld, ", e->deployment);
    }
    return kn_asprintf("kanaria: %s %s (%srepository %s, by %s)%s%s", e->app[0] ? e->app : e->repo,
                       kn_notify_event_name(e), deploy, e->repo, e->actor[0] ? e->actor : "kanaria",
                       e->message && e->message[0] ? ": " : "", e->message ? e->message : "");
}

static int kn_notify_has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

char *kn_notify_commit_url(const char *repo_url, const char *commit)
{
    const char *p = repo_url, *slash, *at, *colon;
    char host[256], path[512];
    const char *mid = NULL;
    size_t n;

    if (!repo_url || !commit || !commit[0]) {
        return NULL;
    }
    if (kn_notify_has_prefix(p, "https://") || kn_notify_has_prefix(p, "http://") ||
        kn_notify_has_prefix(p, "ssh://")) {
        p = strstr(p, "://") + 3;
        slash = strchr(p, '/');
        if (!slash) {
            return NULL;
        }
        /* drop user info (it may hold a token) and a port (not the web one) */
        at = memchr(p, '@', (size_t)(slash - p));
        if (at) {
            p = at + 1;
        }
        colon = memchr(p, ':', (size_t)(slash - p));
        n = (size_t)((colon ? colon : slash) - p);
    } else {
        /* scp-like: [user@]host:owner/repo */
        colon = strchr(p, ':');
        slash = strchr(p, '/');
        if (!colon || (slash && slash < colon)) {
            return NULL;
        }
        at = memchr(p, '@', (size_t)(colon - p));
        if (at) {
            p = at + 1;
        }
        n = (size_t)(colon - p);
        slash = colon; /* the path starts after it */
    }
    if (n == 0 || n >= sizeof(host)) {
        return NULL;
    }
    memcpy(host, p, n);
    host[n] = '\0';
    for (char *c = host; *c; c++) {
        *c = (char)(*c >= 'A' && *c <= 'Z' ? *c - 'A' + 'a' : *c);
    }
    snprintf(path, sizeof(path), "%s", slash + 1);
    n = strlen(path);
    while (n > 0 && path[n - 1] == '/') {
        path[--n] = '\0';
    }
    if (n > 4 && strcmp(path + n - 4, ".git") == 0) {
        path[n -= 4] = '\0';
    }
    if (n == 0 || !strchr(path, '/') || strpbrk(path, " \t\r\n<>|")) {
        return NULL;
    }
    if (strcmp(host, "github.com") == 0) {
        mid = "commit";
    } else if (strcmp(host, "gitlab.com") == 0 || kn_notify_has_prefix(host, "gitlab.")) {
        mid = "-/commit";
    } else if (strcmp(host, "bitbucket.org") == 0) {
        mid = "commits";
    } else if (strcmp(host, "codeberg.org") == 0 || kn_notify_has_prefix(host, "gitea.")) {
        mid = "commit";
    }
    return mid ? kn_asprintf("https://%s/%s/%s/%s", host, path, mid, commit) : NULL;
}

json_t *kn_notify_view(const struct kn_event *e, const struct kn_deployment *d,
                       const char *repo_url, const char *external_url)
{
    json_t *v = kn_notify_event_json(e);
    char *text = kn_notify_text(e);
    char *url;

    json_object_set_new(v, "text", json_string(text));
    free(text);
    json_object_set_new(v, "reason", json_string(d && d->reason && d->reason[0] ? d->reason
                                                                               : e->message));
    if (d) {
        char short_id[8];
        snprintf(short_id, sizeof(short_id), "%.7s", d->commit);
        json_object_set_new(v, "commit", json_string(d->commit));
        json_object_set_new(v, "shortCommit", json_string(short_id));
        json_object_set_new(v, "commitMessage", json_string(d->message ? d->message : ""));
        json_object_set_new(v, "author", json_string(d->author));
        json_object_set_new(v, "status", json_string(kn_deploy_status_name(d->status)));
        json_object_set_new(v, "trigger", json_string(d->trigger));
        if ((url = kn_notify_commit_url(repo_url, d->commit))) {
            json_object_set_new(v, "commitUrl", json_string(url));
            free(url);
        }
    }
    if (external_url && external_url[0]) {
        size_t n = strlen(external_url);
        while (n > 0 && external_url[n - 1] == '/') {
            n--;
        }
        if (e->deployment > 0) {
            url = kn_asprintf("%.*s/#/deployments/%lld", (int)n, external_url, e->deployment);
            json_object_set_new(v, "deploymentUrl", json_string(url));
            free(url);
        }
        if (e->app[0]) {
            url = kn_asprintf("%.*s/#/apps/%s/%s", (int)n, external_url, e->repo, e->app);
            json_object_set_new(v, "appUrl", json_string(url));
            free(url);
        }
    }
    return v;
}

static const char *kn_notify_str(const json_t *view, const char *key)
{
    const char *s = json_string_value(json_object_get(view, key));
    return s ? s : "";
}

/* s cut to at most max bytes (on a UTF-8 boundary, "…" marking the cut), with Slack's mrkdwn
 * control characters escaped when mrkdwn. Caller frees. */
static char *kn_notify_cut(const char *s, size_t max, int mrkdwn)
{
    struct kn_buf b;
    size_t room = max > 3 ? max - 3 : 0;

    kn_buf_init(&b, KN_BUF_UNBOUNDED);
    for (const char *p = s; *p; p++) {
        const char *rep = NULL;
        size_t len = 1;
        if (mrkdwn) {
            rep = *p == '&' ? "&amp;" : *p == '<' ? "&lt;" : *p == '>' ? "&gt;" : NULL;
        }
        len = rep ? strlen(rep) : 1;
        if (b.len + len > room && strlen(p) + b.len > max) {
            /* back to the start of a UTF-8 sequence */
            while (b.len > 0 && ((unsigned char)b.data[b.len - 1] & 0xC0) == 0x80) {
                b.len--;
            }
            if (b.len > 0 && ((unsigned char)b.data[b.len - 1] & 0xC0) == 0xC0) {
                b.len--;
            }
            kn_buf_adds(&b, "\xe2\x80\xa6");
            break;
        }
        if (rep) {
            kn_buf_adds(&b, rep);
        } else {
            kn_buf_addch(&b, *p);
        }
    }
    if (!b.data) {
        kn_buf_adds(&b, "");
    }
    return kn_buf_detach(&b, NULL);
}

/* "hello SUCCEEDED": what a message is headed with. Caller frees. */
static char *kn_notify_title(const json_t *view)
{
    const char *app = kn_notify_str(view, "app");

    return kn_asprintf("%s %s", app[0] ? app : kn_notify_str(view, "repo"),
                       kn_notify_str(view, "type"));
}

static void kn_notify_slack_field(json_t *fields, const char *label, const char *value)
{
    char *text = kn_asprintf("*%s*\n%s", label, value);
    char *cut = kn_notify_cut(text, 2000, 0);

    json_array_append_new(fields, json_pack("{s:s, s:s}", "type", "mrkdwn", "text", cut));
    free(cut);
    free(text);
}

json_t *kn_notify_slack_message(const json_t *view, const char *text)
{
    json_t *blocks = json_array(), *fields = json_array(), *msg;
    char *title = kn_notify_title(view), *s, *body;
    const char *commit = kn_notify_str(view, "shortCommit");
    const char *link = kn_notify_str(view, "deploymentUrl");
    char *app = kn_notify_cut(kn_notify_str(view, "app"), 500, 1);
    char *repo = kn_notify_cut(kn_notify_str(view, "repo"), 500, 1);

    s = kn_notify_cut(title, 150, 0); /* a header's plain text: 150 characters at most */
    json_array_append_new(
        blocks, json_pack("{s:s, s:{s:s, s:s}}", "type", "header", "text", "type", "plain_text",
                          "text", s));
    free(s);
    body = kn_notify_cut(text, 3000, 1);
    if (app[0]) {
        kn_notify_slack_field(fields, "App", app);
    }
    kn_notify_slack_field(fields, "Repository", repo);
    if (commit[0]) {
        char *cmsg = kn_notify_cut(kn_notify_str(view, "commitMessage"), 200, 1);
        const char *url = kn_notify_str(view, "commitUrl");
        s = url[0] ? kn_asprintf("<%s|%s> %s", url, commit, cmsg)
                   : kn_asprintf("`%s` %s", commit, cmsg);
        kn_notify_slack_field(fields, "Commit", s);
        free(s);
        free(cmsg);
    }
    if (json_integer_value(json_object_get(view, "deployment")) > 0) {
        s = link[0] ? kn_asprintf("<%s|%" JSON_INTEGER_FORMAT ">", link,
                                  json_integer_value(json_object_get(view, "deployment")))
                    : kn_asprintf("%" JSON_INTEGER_FORMAT,
                                  json_integer_value(json_object_get(view, "deployment")));
        kn_notify_slack_field(fields, "Deployment", s);
        free(s);
    }
    json_array_append_new(blocks,
                          json_pack("{s:s, s:{s:s, s:s}, s:o}", "type", "section", "text", "type",
                                    "mrkdwn", "text", body[0] ? body : " ", "fields", fields));
    s = kn_asprintf("by %s", kn_notify_str(view, "actor")[0] ? kn_notify_str(view, "actor")
                                                              : "kanaria");
    json_array_append_new(blocks, json_pack("{s:s, s:[{s:s, s:s}]}", "type", "context",
                                            "elements", "type", "mrkdwn", "text", s));
    free(s);
    if (link[0]) {
        json_array_append_new(
            blocks, json_pack("{s:s, s:[{s:s, s:{s:s, s:s}, s:s}]}", "type", "actions",
                              "elements", "type", "button", "text", "type", "plain_text", "text",
                              "Open deployment", "url", link));
    }
    msg = json_pack("{s:s, s:o}", "text", text, "blocks", blocks);
    free(body);
    free(title);
    free(app);
    free(repo);
    return msg;
}

json_t *kn_notify_teams_message(const json_t *view, const char *text)
{
    json_t *facts = json_array(), *body, *card;
    char *title = kn_notify_title(view);
    const char *commit = kn_notify_str(view, "shortCommit");
    const char *curl = kn_notify_str(view, "commitUrl");
    const char *link = kn_notify_str(view, "deploymentUrl");
    const char *reason = kn_notify_str(view, "reason");
    char *s;

#define KN_FACT(t, v) json_array_append_new(facts, json_pack("{s:s, s:s}", "title", t, "value", v))
    if (kn_notify_str(view, "app")[0]) {
        KN_FACT("App", kn_notify_str(view, "app"));
    }
    KN_FACT("Repository", kn_notify_str(view, "repo"));
    if (commit[0]) {
        s = curl[0] ? kn_asprintf("[%s](%s) %s", commit, curl, kn_notify_str(view, "commitMessage"))
                    : kn_asprintf("%s %s", commit, kn_notify_str(view, "commitMessage"));
        KN_FACT("Commit", s);
        free(s);
    }
    if (json_integer_value(json_object_get(view, "deployment")) > 0) {
        s = kn_asprintf("%" JSON_INTEGER_FORMAT,
                        json_integer_value(json_object_get(view, "deployment")));
        KN_FACT("Deployment", s);
        free(s);
    }
    KN_FACT("By", kn_notify_str(view, "actor")[0] ? kn_notify_str(view, "actor") : "kanaria");
#undef KN_FACT
    body = json_pack("[{s:s, s:s, s:s, s:s, s:b}, {s:s, s:s, s:b}, {s:s, s:o}]", "type",
                     "TextBlock", "text", title, "weight", "Bolder", "size", "Medium", "wrap", 1,
                     "type", "TextBlock", "text", text, "wrap", 1, "type", "FactSet", "facts",
                     facts);
    (void)reason;
    card = json_pack("{s:s, s:s, s:s, s:s, s:o}", "$schema",
                     "http://adaptivecards.io/schemas/adaptive-card.json", "type", "AdaptiveCard",
                     "version", "1.4", "fallbackText", text, "body", body);
    if (link[0]) {
        json_object_set_new(card, "actions",
                            json_pack("[{s:s, s:s, s:s}]", "type", "Action.OpenUrl", "title",
                                      "Open deployment", "url", link));
    }
    free(title);
    return json_pack("{s:s, s:[{s:s, s:n, s:o}]}", "type", "message", "attachments",
                     "contentType", "application/vnd.microsoft.card.adaptive", "contentUrl",
                     "content", card);
}

int kn_notify_pagerduty_action(const struct kn_event *e)
{
    const char *name = kn_notify_event_name(e);

    if (strcmp(name, "FAILED") == 0 || strcmp(name, "ROLLED_BACK") == 0) {
        return KN_NOTIFY_PD_TRIGGER;
    }
    if (strcmp(name, "SUCCEEDED") == 0) {
        return KN_NOTIFY_PD_RESOLVE;
    }
    return KN_NOTIFY_PD_NONE;
}

char *kn_notify_pagerduty_dedup_key(const char *repo, const char *app)
{
    return kn_asprintf("kanaria/%s/%s", repo, app);
}

json_t *kn_notify_pagerduty_message(const json_t *view, const char *text, const char *routing_key,
                                    int action)
{
    char *dedup = kn_notify_pagerduty_dedup_key(kn_notify_str(view, "repo"),
                                                kn_notify_str(view, "app"));
    const char *link = kn_notify_str(view, "deploymentUrl");
    char *summary = kn_notify_cut(text, 1024, 0); /* the Events API's limit */
    char stamp[32];
    time_t at = (time_t)(json_integer_value(json_object_get(view, "at")) / 1000);
    struct tm tm;
    json_t *msg;

    gmtime_r(&at, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
    msg = json_pack("{s:s, s:s, s:s}", "routing_key", routing_key, "event_action",
                    action == KN_NOTIFY_PD_TRIGGER ? "trigger" : "resolve", "dedup_key", dedup);
    if (action == KN_NOTIFY_PD_TRIGGER) {
        json_t *details = json_deep_copy(view);
        json_object_del(details, "text");
        json_object_set_new(msg, "payload",
                            json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:o}", "summary",
                                      summary, "source", "kanaria", "severity", "error",
                                      "timestamp", stamp, "component", kn_notify_str(view, "app"),
                                      "group", kn_notify_str(view, "repo"), "class",
                                      kn_notify_str(view, "type"), "custom_details", details));
        json_object_set_new(msg, "client", json_string("kanaria"));
        if (link[0]) {
            json_object_set_new(msg, "client_url", json_string(link));
            json_object_set_new(msg, "links", json_pack("[{s:s, s:s}]", "href", link, "text",
                                                        "Open deployment"));
        }
    }
    free(dedup);
    free(summary);
    return msg;
}

int kn_notify_body(char **out, int type, const json_t *view, const char *tmpl, char *why,
                   size_t why_size)
{
    json_t *j = NULL, *parsed = NULL;
    char *text = NULL;
    json_error_t jerr;
    int rc = 0;

    *out = NULL;
    if (type == KN_NOTIFY_WEBHOOK) {
        if (!tmpl) {
            static const char *const keys[] = {"id",         "type",  "at",      "repo",
                                               "app",        "deployment", "actor", "message"};
            /* the event's own keys, in this order (the view adds more) */
            j = json_object();
            for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
                json_object_set(j, keys[i], json_object_get(view, keys[i]));
            }
            goto dump;
        }
        if ((rc = kn_template_render(out, tmpl, view, KN_TEMPLATE_JSON, why, why_size)) < 0) {
            goto out;
        }
        if (!(parsed = json_loads(*out, JSON_DECODE_ANY, &jerr))) {
            snprintf(why, why_size, "the template's output is not JSON: %s at offset %d",
                     jerr.text, jerr.position);
            free(*out);
            *out = NULL;
            rc = KN_EINVAL;
        }
        goto out;
    }
    if (tmpl) {
        if ((rc = kn_template_render(&text, tmpl, view, KN_TEMPLATE_TEXT, why, why_size)) < 0) {
            goto out;
        }
    } else {
        text = kn_strdup(kn_notify_str(view, "text"));
    }
    if (type == KN_NOTIFY_SLACK) {
        j = kn_notify_slack_message(view, text);
    } else if (type == KN_NOTIFY_TEAMS) {
        j = kn_notify_teams_message(view, text);
    } else {
        /* pagerduty: built at delivery, with the routing key; here without it */
        j = json_pack("{s:s}", "summary", text);
    }
dump:
    *out = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!*out) {
        abort(); /* only on out of memory: the values are valid strings and numbers */
    }
out:
    json_decref(parsed);
    json_decref(j);
    free(text);
    return rc;
}

char *kn_notify_payload(int type, const struct kn_event *e)
{
    json_t *view = kn_notify_view(e, NULL, NULL, NULL);
    char *out = NULL;
    char why[8];

    if (type == KN_NOTIFY_WEBHOOK) {
        json_t *j = kn_notify_event_json(e);
        out = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_decref(j);
    } else {
        kn_notify_body(&out, type, view, NULL, why, sizeof(why));
    }
    json_decref(view);
    if (!out) {
        abort();
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
    kn_event_release(&it->e);
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

static char *kn_notify_dup(const char *s)
{
    return s ? kn_strdup(s) : NULL;
}

static void kn_notify_target_settings_free(struct kn_notify_target *t)
{
    free(t->name);
    free(t->url);
    free(t->secret_file);
    free(t->token_file);
    free(t->channel);
    free(t->tmpl);
    kn_notify_strlist_free(&t->filter.events);
    kn_notify_strlist_free(&t->filter.apps);
}

/* Take c's settings (the queue stays). */
static void kn_notify_target_configure(struct kn_notify_target *t,
                                       const struct kn_notification_config *c)
{
    struct kn_secret secret = {0};
    struct kn_error err;
    const char *file;

    kn_notify_target_settings_free(t);
    t->name = kn_strdup(c->name ? c->name : "");
    snprintf(t->who, sizeof(t->who), "notify name=%s", t->name);
    t->type = c->type;
    t->url = kn_strdup(c->url ? c->url : "");
    t->secret_file =
        c->secret_file && t->type == KN_NOTIFY_WEBHOOK ? kn_strdup(c->secret_file) : NULL;
    t->token_file = kn_notify_dup(c->token_file);
    t->channel = kn_notify_dup(c->channel);
    t->tmpl = kn_notify_dup(c->template);
    t->retry_for_ms = c->retry_for_ms > 0 ? c->retry_for_ms : KN_NOTIFY_RETRY_FOR_DEFAULT_MS;
    kn_notify_strlist_copy(&t->filter.events, &c->events);
    kn_notify_strlist_copy(&t->filter.apps, &c->apps);
    /* read now too, so that a file that cannot be read is reported at start or reload */
    file = t->secret_file ? t->secret_file : t->token_file;
    if (file && kn_secret_read(&secret, file, KN_SECRET_LINE, &err) < 0) {
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
    kn_notify_target_settings_free(t);
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
    t->n = NULL;
    uv_close((uv_handle_t *)&t->timer, kn_notify_timer_closed);
}

/* Whether t sends anything for e (its filters, and for pagerduty only failures and successes). */
static int kn_notify_wants(const struct kn_notify_target *t, const struct kn_event *e)
{
    if (!kn_notify_matches(&t->filter, e)) {
        return 0;
    }
    return t->type != KN_NOTIFY_PAGERDUTY || (e->app[0] && kn_notify_pagerduty_action(e));
}

/* Write the cursor: every event up to `id` is delivered or given up. */
static void kn_notify_save_cursor(struct kn_notify_target *t, long long id)
{
    char value[32];

    if (!t->n || !t->n->store || id <= t->saved) {
        return;
    }
    snprintf(value, sizeof(value), "%lld", id);
    if (kn_store_notify_set(t->n->store, t->name, "cursor", value) < 0) {
        kn_log_warn(t->who, "cannot save the cursor at event %lld; events after %lld may be "
                    "sent again after a restart", id, t->saved);
        return;
    }
    t->saved = id;
}

static void kn_notify_push(struct kn_notify_target *t, const struct kn_event *e)
{
    struct kn_notify_item *it;

    if (t->count == KN_NOTIFY_QUEUE_MAX) {
        it = &t->ring[t->head];
        kn_log_warn(t->who, "queue full (%d events): dropping event %lld %s", KN_NOTIFY_QUEUE_MAX,
                    it->e.id, it->name);
        kn_notify_item_release(it);
        t->head = (t->head + 1) % KN_NOTIFY_QUEUE_MAX;
        t->count--;
        kn_selfmetrics_add(NULL, KN_SM_NOTIFY_DELIVERIES, t->name, "dropped", 1);
    }
    it = &t->ring[(t->head + t->count) % KN_NOTIFY_QUEUE_MAX];
    kn_event_copy(&it->e, e);
    snprintf(it->name, sizeof(it->name), "%s", kn_notify_event_name(e));
    t->count++;
    kn_selfmetrics_set(NULL, KN_SM_NOTIFY_QUEUE, t->name, NULL, (double)(t->count + t->has_current));
}

static int kn_notify_pull_one(const struct kn_event *e, void *data)
{
    struct kn_notify_target *t = data;

    t->queued_upto = e->id;
    if (kn_notify_wants(t, e)) {
        kn_notify_push(t, e);
    }
    return 0;
}

/* Read the events after queued_upto from the store into the queue, while there is room. */
static void kn_notify_pull(struct kn_notify_target *t)
{
    long long before;
    int room;

    if (t->retired || !t->n || !t->n->store) {
        return;
    }
    while ((room = KN_NOTIFY_QUEUE_MAX - (int)t->count) > 0) {
        before = t->queued_upto;
        if (kn_store_events(t->n->store, t->queued_upto, room, kn_notify_pull_one, t) < 0) {
            kn_log_warn(t->who, "cannot read the events after %lld; trying again", before);
            break;
        }
        if (t->queued_upto == before) {
            break;
        }
    }
}

static void kn_notify_send(struct kn_notify_target *t);

/* Start on the next queued event, when nothing is being delivered. */
static void kn_notify_next(struct kn_notify_target *t)
{
    if (t->retired || t->has_current) {
        return;
    }
    if (t->count == 0) {
        kn_notify_pull(t);
    }
    if (t->count == 0) {
        /* everything read was delivered or not wanted */
        kn_notify_save_cursor(t, t->queued_upto);
        return;
    }
    t->current = t->ring[t->head];
    t->has_current = 1;
    memset(&t->ring[t->head], 0, sizeof(t->ring[t->head]));
    t->head = (t->head + 1) % KN_NOTIFY_QUEUE_MAX;
    t->count--;
    kn_selfmetrics_set(NULL, KN_SM_NOTIFY_QUEUE, t->name, NULL, (double)(t->count + 1));
    t->attempt = 1;
    t->first_attempt = uv_now(t->timer.loop);
    kn_notify_send(t);
}

/* The current event is done with (delivered, given up or nothing to send). */
static void kn_notify_done(struct kn_notify_target *t)
{
    long long id = t->current.e.id;

    kn_notify_item_release(&t->current);
    t->has_current = 0;
    kn_selfmetrics_set(NULL, KN_SM_NOTIFY_QUEUE, t->name, NULL, (double)t->count);
    /* events before the next queued one were not wanted, so the cursor may pass them too */
    kn_notify_save_cursor(t, t->count ? t->ring[t->head].e.id - 1 : id);
    kn_notify_next(t);
}

static void kn_notify_on_timer(uv_timer_t *h)
{
    kn_notify_send(h->data);
}

/* The current delivery failed: try again later, or give up on it when the next attempt would
 * come past retryFor after the first. */
static void kn_notify_failed(struct kn_notify_target *t, const char *why)
{
    long long wait = kn_notify_backoff_ms(t->attempt + 1);
    long long spent = (long long)(uv_now(t->timer.loop) - t->first_attempt);
    int give_up = spent + wait > t->retry_for_ms;
    char shown[32];

    kn_selfmetrics_add(NULL, KN_SM_NOTIFY_DELIVERIES, t->name, give_up ? "given_up" : "failed",
                       1);
    if (give_up) {
        kn_duration_format(t->retry_for_ms, shown, sizeof(shown));
        kn_log_error(t->who, "giving up on event %lld %s after %d attempts in %s (retryFor): %s",
                     t->current.e.id, t->current.name, t->attempt, shown, why);
        kn_notify_done(t);
        return;
    }
    t->attempt++;
    kn_log_warn(t->who, "event %lld %s: %s; attempt %d in %lld ms", t->current.e.id,
                t->current.name, why, t->attempt, wait);
    uv_timer_start(&t->timer, kn_notify_on_timer, (uint64_t)wait, 0);
}

/* The state key of a deployment's Slack message: "slack:ID". */
static void kn_notify_slack_key(char *out, size_t size, long long deployment)
{
    snprintf(out, size, "slack:%lld", deployment);
}

/* A Slack Web API answer: 0 when "ok" is true, else why into why. */
static int kn_notify_slack_answer(struct kn_notify_target *t, const struct kn_http_response *res,
                                  char *why, size_t why_size)
{
    json_t *j = json_loadb(res->body, res->body_len, 0, NULL);
    const char *error = json_string_value(json_object_get(j, "error"));
    const char *channel = json_string_value(json_object_get(j, "channel"));
    const char *ts = json_string_value(json_object_get(j, "ts"));
    char key[64], *value;
    int rc = 0;

    if (!j || !json_is_true(json_object_get(j, "ok"))) {
        snprintf(why, why_size, "Slack answered %s", error ? error : "without \"ok\": true");
        if (error && strcmp(error, "message_not_found") == 0 && t->n && t->n->store) {
            /* the message was deleted: the next attempt posts a new one */
            kn_notify_slack_key(key, sizeof(key), t->current.e.deployment);
            kn_store_notify_set(t->n->store, t->name, key, NULL);
        }
        rc = KN_EIO;
        goto out;
    }
    if (t->slack_call == KN_NOTIFY_SLACK_POST && t->current.e.deployment > 0 && channel && ts &&
        t->n && t->n->store) {
        kn_notify_slack_key(key, sizeof(key), t->current.e.deployment);
        value = kn_asprintf("%s %s", channel, ts);
        if (kn_store_notify_set(t->n->store, t->name, key, value) < 0) {
            kn_log_warn(t->who, "cannot save the message of deployment %lld; its next event "
                        "is posted as a new one", t->current.e.deployment);
        }
        free(value);
    }
out:
    json_decref(j);
    return rc;
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
        if (t->type == KN_NOTIFY_SLACK && t->token_file &&
            kn_notify_slack_answer(t, res, why, sizeof(why)) < 0) {
            kn_notify_failed(t, why);
            return;
        }
        if (t->type == KN_NOTIFY_PAGERDUTY && t->n && t->n->store) {
            char *dedup = kn_notify_pagerduty_dedup_key(t->current.e.repo, t->current.e.app);
            kn_store_notify_set(t->n->store, t->name, dedup,
                                t->pd_action == KN_NOTIFY_PD_TRIGGER ? "open" : NULL);
            free(dedup);
        }
        kn_selfmetrics_add(NULL, KN_SM_NOTIFY_DELIVERIES, t->name, "sent", 1);
        kn_log_debug(t->who, "sent event %lld %s (HTTP %d, attempt %d)", t->current.e.id,
                     t->current.name, res->status, t->attempt);
        kn_notify_done(t);
        return;
    }
    if (res->status) {
        snprintf(why, sizeof(why), "%s answered HTTP %d", t->url, res->status);
    } else {
        snprintf(why, sizeof(why), "%s: %s", t->url, res->error ? res->error : "no answer");
    }
    kn_notify_failed(t, why);
}

/* The view of the current event, with its deployment and repository when known. */
static json_t *kn_notify_current_view(struct kn_notify_target *t)
{
    struct kn_notify *n = t->n;
    struct kn_deployment d;
    const char *repo_url = NULL;
    int have = 0;
    json_t *v;

    memset(&d, 0, sizeof(d));
    if (n && n->store && t->current.e.deployment > 0 &&
        kn_store_deployment_get(n->store, t->current.e.deployment, &d) == 0) {
        have = 1;
    }
    for (size_t i = 0; n && i < n->nrepos && !repo_url; i++) {
        if (strcmp(n->repos[i].name, t->current.e.repo) == 0) {
            repo_url = n->repos[i].url;
        }
    }
    v = kn_notify_view(&t->current.e, have ? &d : NULL, repo_url, n ? n->external_url : NULL);
    if (have) {
        kn_deployment_release(&d);
    }
    return v;
}

/* The body, URL and bearer token file of the current event's request, into the out-parameters
 * (body and url: caller frees). 1: nothing to send (done with it); 0: send; < 0: failed, why
 * set. */
static int kn_notify_build(struct kn_notify_target *t, char **body, char **url,
                           const char **bearer, char *why, size_t why_size)
{
    json_t *view = kn_notify_current_view(t), *j = NULL;
    struct kn_secret key = {0};
    struct kn_error err;
    char skey[64], *saved = NULL, *text = NULL, *dedup = NULL;
    int rc = 0;

    *body = NULL;
    *url = NULL;
    *bearer = NULL;
    if (t->type == KN_NOTIFY_WEBHOOK || t->type == KN_NOTIFY_TEAMS ||
        (t->type == KN_NOTIFY_SLACK && !t->token_file)) {
        rc = kn_notify_body(body, t->type, view, t->tmpl, why, why_size);
        *url = kn_strdup(t->url);
        goto out;
    }
    if (t->tmpl) {
        if ((rc = kn_template_render(&text, t->tmpl, view, KN_TEMPLATE_TEXT, why, why_size)) <
            0) {
            goto out;
        }
    } else {
        text = kn_strdup(kn_notify_str(view, "text"));
    }
    if (t->type == KN_NOTIFY_SLACK) {
        size_t n = strlen(t->url);
        while (n > 0 && t->url[n - 1] == '/') {
            n--;
        }
        j = kn_notify_slack_message(view, text);
        kn_notify_slack_key(skey, sizeof(skey), t->current.e.deployment);
        if (t->current.e.deployment > 0 && t->n && t->n->store &&
            kn_store_notify_get(t->n->store, t->name, skey, &saved) == 0 && strchr(saved, ' ')) {
            *strchr(saved, ' ') = '\0';
            json_object_set_new(j, "channel", json_string(saved));
            json_object_set_new(j, "ts", json_string(saved + strlen(saved) + 1));
            *url = kn_asprintf("%.*s/chat.update", (int)n, t->url);
            t->slack_call = KN_NOTIFY_SLACK_UPDATE;
        } else {
            json_object_set_new(j, "channel", json_string(t->channel ? t->channel : ""));
            *url = kn_asprintf("%.*s/chat.postMessage", (int)n, t->url);
            t->slack_call = KN_NOTIFY_SLACK_POST;
        }
        *bearer = t->token_file;
    } else {
        t->pd_action = kn_notify_pagerduty_action(&t->current.e);
        if (t->pd_action == KN_NOTIFY_PD_RESOLVE) {
            /* resolve only what kanaria triggered */
            dedup = kn_notify_pagerduty_dedup_key(t->current.e.repo, t->current.e.app);
            if (!t->n || !t->n->store ||
                kn_store_notify_get(t->n->store, t->name, dedup, &saved) < 0) {
                rc = 1;
                goto out;
            }
        }
        if (kn_secret_read(&key, t->token_file, KN_SECRET_LINE, &err) < 0) {
            snprintf(why, why_size, "%.250s", err.msg);
            rc = KN_EIO;
            goto out;
        }
        j = kn_notify_pagerduty_message(view, text, key.data, t->pd_action);
        *url = kn_strdup(t->url);
    }
    *body = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!*body) {
        abort(); /* only on out of memory */
    }
out:
    if (rc != 0) {
        free(*url);
        *url = NULL;
    }
    kn_secret_release(&key);
    json_decref(j);
    json_decref(view);
    free(saved);
    free(text);
    free(dedup);
    return rc;
}

static void kn_notify_send(struct kn_notify_target *t)
{
    char event[64], delivery[64], agent[64], why[300];
    char sig[KN_NOTIFY_SIGNATURE_SIZE + 32];
    const char *headers[6];
    char *body = NULL, *url = NULL;
    const char *bearer = NULL;
    struct kn_http_request req = {
        .method = "POST",
        .headers = headers,
        .timeout_ms = KN_NOTIFY_TIMEOUT_MS,
        .max_response = 64 * 1024,
    };
    struct kn_secret secret = {0};
    struct kn_error err;
    size_t h = 0;
    int rc;

    if (t->retired || !t->has_current) {
        goto out;
    }
    if ((rc = kn_notify_build(t, &body, &url, &bearer, why, sizeof(why))) == 1) {
        kn_log_debug(t->who, "event %lld %s: nothing to send", t->current.e.id, t->current.name);
        kn_notify_done(t);
        goto out;
    }
    if (rc < 0) {
        /* the body will not build better next time, except for a secret file that comes back */
        kn_notify_failed(t, why);
        goto out;
    }
    /* read at each delivery, so a rotated secret signs at once; never sent unsigned */
    if (t->secret_file && kn_secret_read(&secret, t->secret_file, KN_SECRET_LINE, &err) < 0) {
        kn_notify_failed(t, err.msg);
        goto out;
    }
    snprintf(event, sizeof(event), "X-Kanaria-Event: %s", t->current.name);
    snprintf(delivery, sizeof(delivery), "X-Kanaria-Delivery: %lld", t->current.e.id);
    snprintf(agent, sizeof(agent), "User-Agent: kanaria/%s", KANARIA_VERSION);
    headers[h++] = t->type == KN_NOTIFY_SLACK && bearer ? "Content-Type: application/json; "
                                                          "charset=utf-8"
                                                        : "Content-Type: application/json";
    headers[h++] = event;
    headers[h++] = delivery;
    headers[h++] = agent;
    if (secret.data) {
        memcpy(sig, "X-Kanaria-Signature-256: ", 25);
        kn_notify_sign(secret.data, secret.len, body, strlen(body), sig + 25);
        headers[h++] = sig;
    }
    kn_secret_release(&secret);
    headers[h] = NULL;
    req.url = url;
    req.body = body;
    req.body_len = strlen(body);
    req.bearer_token_file = bearer;
    kn_error_clear(&err);
    if (kn_http_start(NULL, t->http, &req, kn_notify_on_response, t, &err) < 0) {
        kn_notify_failed(t, err.msg[0] ? err.msg : "the request could not be started");
        goto out;
    }
    t->inflight = 1;
out:
    if (body && t->type == KN_NOTIFY_PAGERDUTY) {
        kn_secret_free_str(body); /* it holds the routing key */
        body = NULL;
    }
    free(body);
    free(url);
}

static struct kn_notify_target *kn_notify_target_new(struct kn_notify *n,
                                                     const struct kn_notification_config *c)
{
    struct kn_notify_target *t = kn_calloc(1, sizeof(*t));
    char *cursor = NULL;

    t->n = n;
    t->http = n->http;
    uv_timer_init(n->loop, &t->timer);
    t->timer.data = t;
    kn_notify_target_configure(t, c);
    if (n->store) {
        /* a new notification starts at the newest event; a known one where it stopped */
        if (kn_store_notify_get(n->store, t->name, "cursor", &cursor) == 0) {
            t->queued_upto = t->saved = atoll(cursor);
        } else if (kn_store_event_last_id(n->store, &t->queued_upto) < 0) {
            kn_log_warn(t->who, "cannot read the newest event id; starting from the beginning");
        } else {
            kn_notify_save_cursor(t, t->queued_upto);
        }
        free(cursor);
        if (t->saved) {
            kn_log_info(t->who, "delivering the events after %lld", t->saved);
        }
    }
    return t;
}

/* ---- the set of notifications ---------------------------------------------------------------- */

static void kn_notify_take_config(struct kn_notify *n, const struct kn_config *cfg)
{
    const struct kn_repo_config *r = cfg->repositories.items;

    for (size_t i = 0; i < n->nrepos; i++) {
        free(n->repos[i].name);
        free(n->repos[i].url);
    }
    free(n->repos);
    free(n->external_url);
    n->external_url = kn_notify_dup(cfg->external_url);
    n->nrepos = cfg->repositories.count;
    n->repos = n->nrepos ? kn_calloc(n->nrepos, sizeof(*n->repos)) : NULL;
    for (size_t i = 0; i < n->nrepos; i++) {
        n->repos[i].name = kn_strdup(r[i].name ? r[i].name : "");
        n->repos[i].url = kn_strdup(r[i].url ? r[i].url : "");
    }
}

int kn_notify_new(struct kn_notify **out, uv_loop_t *loop, struct kn_http_client *http,
                  struct kn_store *store, const struct kn_config *cfg)
{
    struct kn_notify *n = kn_calloc(1, sizeof(*n));

    n->loop = loop;
    n->http = http;
    n->store = store;
    kn_notify_set_config(n, cfg);
    *out = n;
    /* what was not delivered before a stop goes out now */
    kn_notify_event(NULL, n);
    return 0;
}

void kn_notify_set_config(struct kn_notify *n, const struct kn_config *cfg)
{
    const struct kn_notification_config *list = cfg->notifications.items;
    size_t count = cfg->notifications.count;
    struct kn_notify_target **next = kn_calloc(count + 1, sizeof(*next));

    kn_notify_take_config(n, cfg);
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
        if (!n->store && e && kn_notify_wants(t, e)) {
            kn_notify_push(t, e);
        }
        /* with a store, the event is read from it (after the target's own cursor) */
        kn_notify_next(t);
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
    for (size_t i = 0; i < n->nrepos; i++) {
        free(n->repos[i].name);
        free(n->repos[i].url);
    }
    free(n->repos);
    free(n->external_url);
    free(n->targets);
    free(n);
}
