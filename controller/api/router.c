/*
 * The API's routes in one table, and the router: match the path and the method, check the
 * caller's role, then call the route's handler.
 */
#include "api/router.h"

#include <stdio.h>
#include <string.h>

#include "actions.h"
#include "api/auth.h"

/* ---- the table ------------------------------------------------------------------------------- */

const struct kn_api_route kn_api_routes[] = {
    {KN_API_ROUTE_HEALTHZ, "GET", "/healthz", KN_API_PUBLIC, "read", KN_API_BODY_MAX,
     kn_api_healthz},
    /* app names and deployment outcomes: readable by viewers, like the rest of the API */
    {KN_API_ROUTE_METRICS, "GET", "/metrics", KN_ROLE_VIEWER, "read metrics", KN_API_BODY_MAX,
     kn_api_metrics_get},
    {KN_API_ROUTE_SESSION, "GET", "/api/v1/session", KN_ROLE_VIEWER, "read", KN_API_BODY_MAX,
     kn_api_session_get},
    {KN_API_ROUTE_APPS, "GET", "/api/v1/apps", KN_ROLE_VIEWER, "read", KN_API_BODY_MAX,
     kn_api_apps_list},
    {KN_API_ROUTE_APP, "GET", "/api/v1/apps/{app}", KN_ROLE_VIEWER, "read", KN_API_BODY_MAX,
     kn_api_app_get},
    {KN_API_ROUTE_HISTORY, "GET", "/api/v1/apps/{app}/history", KN_ROLE_VIEWER, "read",
     KN_API_BODY_MAX, kn_api_app_history},
    {KN_API_ROUTE_APPROVE, "POST", "/api/v1/apps/{app}/approve", KN_ROLE_APPROVER, "approve",
     KN_API_BODY_MAX, kn_api_approve},
    {KN_API_ROUTE_REJECT, "POST", "/api/v1/apps/{app}/reject", KN_ROLE_APPROVER, "reject",
     KN_API_BODY_MAX, kn_api_reject},
    {KN_API_ROUTE_CANCEL, "POST", "/api/v1/apps/{app}/cancel", KN_ROLE_OPERATOR, "cancel",
     KN_API_BODY_MAX, kn_api_cancel},
    {KN_API_ROUTE_ROLLBACK, "POST", "/api/v1/apps/{app}/rollback", KN_ROLE_OPERATOR, "roll back",
     KN_API_BODY_MAX, kn_api_rollback},
    {KN_API_ROUTE_SYNC, "POST", "/api/v1/apps/{app}/sync", KN_ROLE_OPERATOR, "sync",
     KN_API_BODY_MAX, kn_api_sync},
    {KN_API_ROUTE_SKIP, "POST", "/api/v1/apps/{app}/skip", KN_ROLE_OPERATOR, "skip a stage",
     KN_API_BODY_MAX, kn_api_skip},
    {KN_API_ROUTE_PRUNE, "POST", "/api/v1/apps/{app}/prune", KN_ROLE_OPERATOR, "prune",
     KN_API_BODY_MAX, kn_api_prune},
    {KN_API_ROUTE_DEPLOYMENT, "GET", "/api/v1/deployments/{id}", KN_ROLE_VIEWER, "read",
     KN_API_BODY_MAX, kn_api_deployment_get},
    {KN_API_ROUTE_POSTMORTEM, "GET", "/api/v1/deployments/{id}/postmortem", KN_ROLE_VIEWER,
     "read", KN_API_BODY_MAX, kn_api_postmortem_get},
    {KN_API_ROUTE_RETRY, "POST", "/api/v1/apps/{app}/retry", KN_ROLE_OPERATOR, "retry",
     KN_API_BODY_MAX, kn_api_retry},
    {KN_API_ROUTE_PROMOTE, "POST", "/api/v1/deployments/{id}/promote", KN_ROLE_OPERATOR,
     "promote", KN_API_BODY_MAX, kn_api_promote},
    {KN_API_ROUTE_REPOS, "GET", "/api/v1/repositories", KN_ROLE_VIEWER, "read", KN_API_BODY_MAX,
     kn_api_repositories_list},
    {KN_API_ROUTE_REPO, "GET", "/api/v1/repositories/{repo}", KN_ROLE_VIEWER, "read",
     KN_API_BODY_MAX, kn_api_repository_get},
    {KN_API_ROUTE_EVENTS, "GET", "/api/v1/events", KN_ROLE_VIEWER, "read", KN_API_BODY_MAX,
     kn_api_events_get},
    {KN_API_ROUTE_AUDIT, "GET", "/api/v1/audit", KN_ROLE_VIEWER, "read", KN_API_BODY_MAX,
     kn_api_audit_get},
    /* signed with the repository's webhook secret, not a token (webhook.c) */
    {KN_API_ROUTE_WEBHOOK, "POST", "/api/v1/webhooks/git", KN_API_PUBLIC, "trigger a fetch",
     KN_WEBHOOK_BODY_MAX, kn_api_webhook_post},
    /* the web UI's files, embedded at build time (ui.c): no data in them, so no token */
    {KN_API_ROUTE_UI_INDEX, "GET", "/", KN_API_PUBLIC, "read", KN_API_BODY_MAX, kn_api_ui_get},
    {KN_API_ROUTE_UI_INDEX, "HEAD", "/", KN_API_PUBLIC, "read", KN_API_BODY_MAX, kn_api_ui_get},
    {KN_API_ROUTE_UI_JS, "GET", "/app.js", KN_API_PUBLIC, "read", KN_API_BODY_MAX, kn_api_ui_get},
    {KN_API_ROUTE_UI_JS, "HEAD", "/app.js", KN_API_PUBLIC, "read", KN_API_BODY_MAX,
     kn_api_ui_get},
    {KN_API_ROUTE_UI_CSS, "GET", "/app.css", KN_API_PUBLIC, "read", KN_API_BODY_MAX,
     kn_api_ui_get},
    {KN_API_ROUTE_UI_CSS, "HEAD", "/app.css", KN_API_PUBLIC, "read", KN_API_BODY_MAX,
     kn_api_ui_get},
};

const size_t kn_api_nroutes = sizeof(kn_api_routes) / sizeof(kn_api_routes[0]);

/* The label of refusals in /metrics: the route's pattern. */
const char *const kn_api_route_names[KN_API_NROUTES] = {
    [KN_API_ROUTE_OTHER] = "other",
    [KN_API_ROUTE_HEALTHZ] = "/healthz",
    [KN_API_ROUTE_METRICS] = "/metrics",
    [KN_API_ROUTE_APPS] = "/api/v1/apps",
    [KN_API_ROUTE_APP] = "/api/v1/apps/{app}",
    [KN_API_ROUTE_HISTORY] = "/api/v1/apps/{app}/history",
    [KN_API_ROUTE_APPROVE] = "/api/v1/apps/{app}/approve",
    [KN_API_ROUTE_REJECT] = "/api/v1/apps/{app}/reject",
    [KN_API_ROUTE_CANCEL] = "/api/v1/apps/{app}/cancel",
    [KN_API_ROUTE_ROLLBACK] = "/api/v1/apps/{app}/rollback",
    [KN_API_ROUTE_SYNC] = "/api/v1/apps/{app}/sync",
    [KN_API_ROUTE_SKIP] = "/api/v1/apps/{app}/skip",
    [KN_API_ROUTE_PRUNE] = "/api/v1/apps/{app}/prune",
    [KN_API_ROUTE_DEPLOYMENT] = "/api/v1/deployments/{id}",
    [KN_API_ROUTE_REPOS] = "/api/v1/repositories",
    [KN_API_ROUTE_REPO] = "/api/v1/repositories/{repo}",
    [KN_API_ROUTE_EVENTS] = "/api/v1/events",
    [KN_API_ROUTE_WEBHOOK] = "/api/v1/webhooks/git",
    [KN_API_ROUTE_UI_INDEX] = "/",
    [KN_API_ROUTE_UI_JS] = "/app.js",
    [KN_API_ROUTE_UI_CSS] = "/app.css",
    [KN_API_ROUTE_SESSION] = "/api/v1/session",
    [KN_API_ROUTE_AUDIT] = "/api/v1/audit",
    [KN_API_ROUTE_RETRY] = "/api/v1/apps/{app}/retry",
    [KN_API_ROUTE_PROMOTE] = "/api/v1/deployments/{id}/promote",
    [KN_API_ROUTE_POSTMORTEM] = "/api/v1/deployments/{id}/postmortem",
};

/* ---- matching -------------------------------------------------------------------------------- */

/* The non-empty segments of p[0..len) into seg/seglen: how many, or -1 over max. */
static int kn_api_split(const char *p, size_t len, const char **seg, size_t *seglen, int max)
{
    size_t start = 0;
    int n = 0;

    for (size_t i = 0; i <= len; i++) {
        if (i < len && p[i] != '/') {
            continue;
        }
        if (i > start) {
            if (n == max) {
                return -1;
            }
            seg[n] = p + start;
            seglen[n++] = i - start;
        }
        start = i + 1;
    }
    return n;
}

/* Whether the path's segments fit the pattern's; the params into call when pool is set. */
static int kn_api_fits(const struct kn_api_route *r, const char *const *seg, const size_t *seglen,
                       int n, h2o_mem_pool_t *pool, struct kn_api_call *call)
{
    const char *pseg[KN_API_MAX_SEGMENTS];
    size_t plen[KN_API_MAX_SEGMENTS];
    int pn = kn_api_split(r->pattern, strlen(r->pattern), pseg, plen, KN_API_MAX_SEGMENTS);

    if (pn != n) {
        return 0;
    }
    for (int i = 0; i < n; i++) {
        if (pseg[i][0] != '{' && !h2o_memis(seg[i], seglen[i], pseg[i], plen[i])) {
            return 0;
        }
    }
    if (!pool) {
        return 1;
    }
    call->nparams = 0;
    for (int i = 0; i < n && call->nparams < KN_API_MAX_PARAMS; i++) {
        if (pseg[i][0] == '{') {
            /* the names are "{name}" in a literal of the table: kept in the pool without braces */
            call->name[call->nparams] = h2o_strdup(pool, pseg[i] + 1, plen[i] - 2).base;
            call->value[call->nparams++] = h2o_strdup(pool, seg[i], seglen[i]).base;
        }
    }
    return 1;
}

int kn_api_route_match(const char *method, size_t mlen, const char *path, size_t plen,
                       h2o_mem_pool_t *pool, struct kn_api_call *call, char *allow,
                       size_t allow_size)
{
    const char *seg[KN_API_MAX_SEGMENTS];
    size_t seglen[KN_API_MAX_SEGMENTS];
    int n = kn_api_split(path, plen, seg, seglen, KN_API_MAX_SEGMENTS);
    int known = 0;

    memset(call, 0, sizeof(*call));
    if (allow_size) {
        allow[0] = '\0';
    }
    /* h2o has decoded the escapes of the path already: a NUL is no name */
    if (n < 0 || memchr(path, '\0', plen)) {
        return 404;
    }
    for (size_t i = 0; i < kn_api_nroutes; i++) {
        const struct kn_api_route *r = &kn_api_routes[i];
        if (!kn_api_fits(r, seg, seglen, n, NULL, NULL)) {
            continue;
        }
        if (!method || h2o_memis(method, mlen, r->method, strlen(r->method))) {
            kn_api_fits(r, seg, seglen, n, pool, call);
            call->route = r;
            return 0;
        }
        if (allow_size) {
            size_t used = strlen(allow);
            snprintf(allow + used, allow_size - used, "%s%s", known ? ", " : "", r->method);
        }
        known = 1;
    }
    return known ? 405 : 404;
}

const char *kn_api_param(const struct kn_api_call *call, const char *name)
{
    for (int i = 0; i < call->nparams; i++) {
        if (strcmp(call->name[i], name) == 0) {
            return call->value[i];
        }
    }
    return NULL;
}

enum kn_api_route_id kn_api_route_of(const char *path, size_t len)
{
    struct kn_api_call call;

    if (kn_api_route_match(NULL, 0, path, len, NULL, &call, NULL, 0) != 0) {
        return KN_API_ROUTE_OTHER;
    }
    return call.route->id;
}

size_t kn_api_body_max(const char *path, size_t len)
{
    struct kn_api_call call;

    if (kn_api_route_match(NULL, 0, path, len, NULL, &call, NULL, 0) != 0) {
        return KN_API_BODY_MAX;
    }
    return call.route->body_max;
}

/* ---- who is calling -------------------------------------------------------------------------- */

int kn_api_auth_check(const struct kn_config *cfg, int loopback, const char *authorization,
                      size_t len, int role, const char *action, struct kn_api_caller *c,
                      char *msg, size_t size)
{
    const struct kn_user_config *u;
    const char *token;
    size_t tlen;

    memset(c, 0, sizeof(*c));
    if (cfg->users.count == 0) {
        /* no users: a loopback API can be read anonymously, nothing else is allowed */
        if (loopback && role == KN_ROLE_VIEWER) {
            snprintf(c->name, sizeof(c->name), "anonymous");
            c->role = KN_ROLE_VIEWER;
            return 0;
        }
        snprintf(msg, size, "no users are declared in kanaria.yaml: %s is refused", action);
        return role == KN_ROLE_VIEWER ? 401 : 403;
    }
    if (!authorization) {
        snprintf(msg, size, "missing 'Authorization: Bearer TOKEN'");
        return 401;
    }
    if (kn_auth_bearer(authorization, len, &token, &tlen) < 0) {
        snprintf(msg, size, "the Authorization header is not a bearer token");
        return 401;
    }
    if (!(u = kn_auth_user(cfg, token, tlen))) {
        snprintf(msg, size, "unknown token");
        return 401;
    }
    snprintf(c->name, sizeof(c->name), "%s", u->name);
    c->role = u->role;
    if (u->role < role) {
        snprintf(msg, size, "user '%s' (%s) may not %s: it needs the %s role", u->name,
                 kn_auth_role_name(u->role), action, kn_auth_role_name(role));
        return 403;
    }
    return 0;
}

/* ---- helpers of the handlers ----------------------------------------------------------------- */

static int kn_api_hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* Percent-decode a query value s[0..len) into the pool ('+' is a space); NULL when it holds an
 * invalid escape or a NUL. */
static char *kn_api_decode(h2o_mem_pool_t *pool, const char *s, size_t len)
{
    char *out = h2o_mem_alloc_pool(pool, len + 1);
    size_t n = 0;

    for (size_t i = 0; i < len; i++) {
        int hi, lo;
        if (s[i] != '%') {
            out[n++] = s[i] == '+' ? ' ' : s[i];
            continue;
        }
        if (i + 2 >= len) {
            return NULL;
        }
        hi = kn_api_hexval(s[i + 1]);
        lo = kn_api_hexval(s[i + 2]);
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
            return NULL;
        }
        out[n++] = (char)(hi << 4 | lo);
        i += 2;
    }
    out[n] = '\0';
    return out;
}

const char *kn_api_query_param(h2o_req_t *req, const char *name, int *bad)
{
    size_t nlen = strlen(name), qlen;
    const char *q;

    *bad = 0;
    if (req->query_at == SIZE_MAX || req->query_at >= req->path.len) {
        return NULL;
    }
    q = req->path.base + req->query_at + 1;
    qlen = req->path.len - req->query_at - 1;
    while (qlen > 0) {
        const char *amp = memchr(q, '&', qlen);
        size_t n = amp ? (size_t)(amp - q) : qlen;
        if (n > nlen && memcmp(q, name, nlen) == 0 && q[nlen] == '=') {
            const char *v = kn_api_decode(&req->pool, q + nlen + 1, n - nlen - 1);
            *bad = v == NULL;
            return v;
        }
        q += n;
        qlen -= n;
        if (qlen > 0) {
            q++;
            qlen--;
        }
    }
    return NULL;
}

/* ?repo= of the request into call->repo: KN_EPARSE when malformed. */
static int kn_api_parse_query(h2o_req_t *req, struct kn_api_call *call)
{
    const char *q;
    size_t qlen;

    if (req->query_at == SIZE_MAX || req->query_at >= req->path.len) {
        return 0;
    }
    q = req->path.base + req->query_at + 1;
    qlen = req->path.len - req->query_at - 1;
    while (qlen > 0) {
        const char *amp = memchr(q, '&', qlen);
        size_t n = amp ? (size_t)(amp - q) : qlen;
        if (n > 5 && memcmp(q, "repo=", 5) == 0 &&
            !(call->repo = kn_api_decode(&req->pool, q + 5, n - 5))) {
            return KN_EPARSE;
        }
        q += n;
        qlen -= n;
        if (qlen > 0) {
            q++;
            qlen--;
        }
    }
    return 0;
}

json_t *kn_api_body_json(h2o_req_t *req)
{
    json_error_t jerr;
    json_t *j;

    if (req->entity.base == NULL || req->entity.len == 0) {
        return json_object();
    }
    j = json_loadb(req->entity.base, req->entity.len, JSON_REJECT_DUPLICATES, &jerr);
    if (!j) {
        kn_api_reply_error(req, 400, "malformed JSON at line %d, column %d: %s", jerr.line,
                           jerr.column, jerr.text);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        kn_api_reply_error(req, 400, "the body must be a JSON object");
        return NULL;
    }
    return j;
}

void kn_api_reply_refusal(struct kn_api *api, h2o_req_t *req, const struct kn_api_call *call,
                          int rc, const struct kn_error *err)
{
    int status;

    switch (rc) {
    case KN_EUNSUPPORTED:
        kn_api_refuse(api, req, 403, call->caller.name, "%s", err->msg);
        return;
    case KN_EINVAL:
        status = 400;
        break;
    case KN_ENOTFOUND:
        status = 404;
        break;
    case KN_EEXISTS:
        status = 409;
        break;
    case KN_ELIMIT:
        status = 503;
        break;
    default:
        status = 500;
        break;
    }
    kn_api_reply_error(req, status, "%s", err->msg[0] ? err->msg : kn_strerror(rc));
}

void kn_api_actor(h2o_req_t *req, const struct kn_api_call *call, struct kn_actor *who,
                  char *peer, size_t size)
{
    who->name = call->caller.name;
    who->role = call->caller.role;
    who->from = kn_api_peer(req, peer, size);
}

void kn_api_healthz(struct kn_api *api, h2o_req_t *req, const struct kn_api_call *call)
{
    json_t *body = json_pack("{s:s, s:s}", "status", "ok", "version", KANARIA_VERSION);

    (void)api;
    (void)call;
    kn_api_reply(req, 200, body);
    json_decref(body);
}

void kn_api_metrics_get(struct kn_api *api, h2o_req_t *req, const struct kn_api_call *call)
{
    (void)call;
    kn_api_metrics(api, req);
}

/* ---- the router ------------------------------------------------------------------------------ */

void kn_api_handle(struct kn_api *api, h2o_req_t *req)
{
    const h2o_iovec_t path = req->path_normalized;
    struct kn_api_call call;
    char allow[64], msg[512];
    const char *authz;
    size_t alen, max = kn_api_body_max(path.base, path.len);
    int status;

    /* h2o has read the body whole: up to KN_WEBHOOK_BODY_MAX, the largest of any route */
    if (req->entity.base && req->entity.len > max) {
        if (max == KN_WEBHOOK_BODY_MAX) {
            kn_api_reply_error(req, 413, "a webhook body is at most %d MiB",
                               KN_WEBHOOK_BODY_MAX / (1024 * 1024));
        } else {
            kn_api_reply_error(req, 413, "the body is larger than %d KiB", KN_API_BODY_MAX / 1024);
        }
        return;
    }
    status = kn_api_route_match(req->method.base, req->method.len, path.base, path.len,
                                &req->pool, &call, allow, sizeof(allow));
    if (status == 404) {
        kn_api_reply_error(req, 404, "no such route: %.*s", (int)path.len, path.base);
        return;
    }
    if (status == 405) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL,
                       h2o_strdup(&req->pool, allow, SIZE_MAX).base, strlen(allow));
        kn_api_reply_error(req, 405, "%.*s is not allowed here, only %s", (int)req->method.len,
                           req->method.base, allow);
        return;
    }
    if (kn_api_parse_query(req, &call) < 0) {
        kn_api_reply_error(req, 400, "malformed query: %.*s", (int)(req->path.len - req->query_at),
                           req->path.base + req->query_at);
        return;
    }
    if (call.route->role != KN_API_PUBLIC) {
        authz = kn_api_header(req, "authorization", &alen);
        status = kn_api_auth_check(api->config, api->loopback, authz, alen, call.route->role,
                                   call.route->action, &call.caller, msg, sizeof(msg));
        if (status != 0) {
            kn_api_refuse(api, req, status, status == 403 ? call.caller.name : NULL, "%s", msg);
            return;
        }
    }
    call.route->handler(api, req, &call);
}
