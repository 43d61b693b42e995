/*
 * The web UI's files on the API listener: `GET /`, `GET /app.js`, `GET /app.css` (and HEAD),
 * from the table embedded at build time (ui.h). No token: they hold no data, the API they call
 * does. Each answer is revalidated by its strong ETag (Cache-Control: no-cache, If-None-Match ->
 * 304) and sent gzip-compressed when the client takes it (compressed once, at build time). The
 * headers every answer of the listener carries (nosniff, no referrer) are set in server.c.
 */
#include "api/ui.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/router.h"

/* What the page may load: its own script and stylesheet, the API, images inlined by the build;
 * no inline script or style, no frame around it. */
#define KN_UI_CSP                                                                                  \
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "              \
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; "                   \
    "frame-ancestors 'none'"

const struct kn_ui_asset *kn_ui_asset_find(const char *path, size_t len)
{
    for (size_t i = 0; i < kn_ui_nassets; i++) {
        if (strlen(kn_ui_assets[i].path) == len && memcmp(kn_ui_assets[i].path, path, len) == 0) {
            return &kn_ui_assets[i];
        }
    }
    return NULL;
}

/* The next element of a comma-separated list s[*at..len), spaces and tabs around it trimmed:
 * its start and length, or NULL at the end. */
static const char *kn_ui_next(const char *s, size_t len, size_t *at, size_t *elen)
{
    size_t start, end;

    while (*at < len) {
        start = *at;
        while (*at < len && s[*at] != ',') {
            (*at)++;
        }
        end = *at;
        if (*at < len) {
            (*at)++; /* the comma */
        }
        while (start < end && (s[start] == ' ' || s[start] == '\t')) {
            start++;
        }
        while (end > start && (s[end - 1] == ' ' || s[end - 1] == '\t')) {
            end--;
        }
        if (end > start) {
            *elen = end - start;
            return s + start;
        }
    }
    return NULL;
}

/* The q-value of an Accept-Encoding element e[0..len) ("gzip;q=0.5"): 1 when it has none, 0 for
 * one that is 0 ("0", "0.0", "0.000"). */
static int kn_ui_q_positive(const char *e, size_t len)
{
    const char *semi = memchr(e, ';', len);
    size_t i;

    while (semi) {
        i = (size_t)(semi - e) + 1;
        while (i < len && (e[i] == ' ' || e[i] == '\t')) {
            i++;
        }
        if (i + 1 < len && (e[i] == 'q' || e[i] == 'Q') && e[i + 1] == '=') {
            for (i += 2; i < len && e[i] != ';'; i++) {
                if (e[i] >= '1' && e[i] <= '9') {
                    return 1;
                }
            }
            return 0;
        }
        semi = memchr(semi + 1, ';', len - (size_t)(semi + 1 - e));
    }
    return 1;
}

/* Whether the coding name of element e[0..len) (before any ';') is name. */
static int kn_ui_coding_is(const char *e, size_t len, const char *name)
{
    const char *semi = memchr(e, ';', len);
    size_t n = semi ? (size_t)(semi - e) : len;

    while (n > 0 && (e[n - 1] == ' ' || e[n - 1] == '\t')) {
        n--;
    }
    return n == strlen(name) && strncasecmp(e, name, n) == 0;
}

int kn_ui_takes_gzip(const char *value, size_t len)
{
    size_t at = 0, elen;
    const char *e;
    int star = 0, gzip = -1;

    if (!value) {
        return 0;
    }
    while ((e = kn_ui_next(value, len, &at, &elen))) {
        if (kn_ui_coding_is(e, elen, "gzip") || kn_ui_coding_is(e, elen, "x-gzip")) {
            gzip = kn_ui_q_positive(e, elen);
        } else if (kn_ui_coding_is(e, elen, "*")) {
            star = kn_ui_q_positive(e, elen);
        }
    }
    return gzip >= 0 ? gzip : star;
}

int kn_ui_etag_matches(const char *value, size_t len, const char *etag)
{
    size_t at = 0, elen, tlen = strlen(etag);
    const char *e;

    if (!value) {
        return 0;
    }
    while ((e = kn_ui_next(value, len, &at, &elen))) {
        if (elen == 1 && e[0] == '*') {
            return 1;
        }
        if (elen > 2 && e[0] == 'W' && e[1] == '/') {
            e += 2;
            elen -= 2;
        }
        if (elen == tlen && memcmp(e, etag, tlen) == 0) {
            return 1;
        }
    }
    return 0;
}

static void kn_ui_header(h2o_req_t *req, const h2o_token_t *token, const char *value)
{
    h2o_add_header(&req->pool, &req->res.headers, token, NULL, value, strlen(value));
}

static void kn_ui_header_str(h2o_req_t *req, const char *name, const char *value)
{
    h2o_add_header_by_str(&req->pool, &req->res.headers, name, strlen(name), 0, NULL, value,
                          strlen(value));
}

void kn_api_ui_get(struct kn_api *api, h2o_req_t *req, const struct kn_api_call *call)
{
    const struct kn_ui_asset *a =
        kn_ui_asset_find(call->route->pattern, strlen(call->route->pattern));
    const char *accept, *inm;
    size_t alen, ilen;
    int gz;

    (void)api;
    if (!a) {
        /* a route of the table without its file in the build: a bug of the build */
        kn_api_reply_error(req, 500, "the web UI's '%s' is not in this build",
                           call->route->pattern);
        return;
    }
    accept = kn_api_header(req, "accept-encoding", &alen);
    inm = kn_api_header(req, "if-none-match", &ilen);
    gz = kn_ui_takes_gzip(accept, alen);
    /* a cache keeps one copy per Accept-Encoding, whichever was sent */
    kn_ui_header(req, H2O_TOKEN_VARY, "Accept-Encoding");
    kn_ui_header(req, H2O_TOKEN_CACHE_CONTROL, "no-cache");
    kn_ui_header(req, H2O_TOKEN_ETAG, gz ? a->etag_gzip : a->etag);
    if (strcmp(a->path, "/") == 0) {
        kn_ui_header_str(req, "content-security-policy", KN_UI_CSP);
        kn_ui_header_str(req, "x-frame-options", "DENY");
    }
    /* either representation's tag: the bytes are the same once decoded */
    if (kn_ui_etag_matches(inm, ilen, a->etag) || kn_ui_etag_matches(inm, ilen, a->etag_gzip)) {
        req->res.status = 304;
        req->res.reason = "Not Modified";
        h2o_send_inline(req, "", 0);
        return;
    }
    kn_ui_header(req, H2O_TOKEN_CONTENT_TYPE, a->content_type);
    if (gz) {
        kn_ui_header(req, H2O_TOKEN_CONTENT_ENCODING, "gzip");
    }
    req->res.status = 200;
    req->res.reason = "OK";
    req->res.content_length = gz ? a->gzip_len : a->len;
    /* copies into the request's pool; a HEAD gets the headers only */
    h2o_send_inline(req, (const char *)(gz ? a->gzip : a->body), req->res.content_length);
}
