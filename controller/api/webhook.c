/*
 * Git push webhooks: signature checks (pure), the secret files, and the endpoint.
 */
#include "api/webhook.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "actions.h"
#include "api/router.h"
#include "kanaria/error.h"
#include "kanaria/log.h"
#include "kanaria/selfmetrics.h"
#include "kanaria/secret.h"

#define WHO "api"

static int kn_webhook_hexval(char c)
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

int kn_webhook_hmac_ok(const char *signature, size_t sig_len, const void *body, size_t body_len,
                       const char *secret, size_t secret_len)
{
    static const char prefix[] = "sha256=";
    size_t n = sizeof(prefix) - 1;
    unsigned char want[32], got[EVP_MAX_MD_SIZE];
    unsigned int got_len = 0;
    int ok = 0;

    if (!signature || sig_len != n + 64 || strncmp(signature, prefix, n) != 0 || !secret ||
        secret_len == 0) {
        goto out;
    }
    for (size_t i = 0; i < 32; i++) {
        int hi = kn_webhook_hexval(signature[n + 2 * i]);
        int lo = kn_webhook_hexval(signature[n + 2 * i + 1]);
        if (hi < 0 || lo < 0) {
            goto out;
        }
        want[i] = (unsigned char)(hi << 4 | lo);
    }
    if (!HMAC(EVP_sha256(), secret, (int)secret_len, body_len ? body : (const void *)"", body_len,
              got, &got_len) ||
        got_len != 32) {
        goto out;
    }
    ok = CRYPTO_memcmp(want, got, 32) == 0;
out:
    return ok;
}

int kn_webhook_token_ok(const char *token, size_t token_len, const char *secret, size_t secret_len)
{
    unsigned char a[32], b[32];
    unsigned int la = 0, lb = 0;

    if (!token || !secret || secret_len == 0 || token_len != secret_len) {
        return 0;
    }
    /* compare digests so that the time taken does not depend on where the strings differ */
    if (EVP_Digest(token, token_len, a, &la, EVP_sha256(), NULL) != 1 ||
        EVP_Digest(secret, secret_len, b, &lb, EVP_sha256(), NULL) != 1) {
        return 0;
    }
    return CRYPTO_memcmp(a, b, sizeof(a)) == 0 && CRYPTO_memcmp(token, secret, secret_len) == 0;
}

int kn_webhook_verify(enum kn_webhook_kind kind, const char *value, size_t value_len,
                      const void *body, size_t body_len, const char *secret, size_t secret_len)
{
    switch (kind) {
    case KN_WEBHOOK_GITHUB:
    case KN_WEBHOOK_GENERIC:
        return kn_webhook_hmac_ok(value, value_len, body, body_len, secret, secret_len);
    case KN_WEBHOOK_GITLAB:
        return kn_webhook_token_ok(value, value_len, secret, secret_len);
    case KN_WEBHOOK_NONE:
        break;
    }
    return 0;
}

/* ---- the endpoint ---------------------------------------------------------------------------- */

static const char *const kn_webhook_kind_names[] = {
    [KN_WEBHOOK_NONE] = "none",
    [KN_WEBHOOK_GITHUB] = "github",
    [KN_WEBHOOK_GITLAB] = "gitlab",
    [KN_WEBHOOK_GENERIC] = "generic",
};

static long long kn_webhook_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void kn_api_webhook_post(struct kn_api *api, h2o_req_t *req, const struct kn_api_call *call)
{
    static const struct {
        const char *header;
        enum kn_webhook_kind kind;
    } headers[] = {
        {"x-hub-signature-256", KN_WEBHOOK_GITHUB},
        {"x-gitlab-token", KN_WEBHOOK_GITLAB},
        {"x-kanaria-signature-256", KN_WEBHOOK_GENERIC},
    };
    const struct kn_repo_config *repos = api->config->repositories.items;
    enum kn_webhook_kind kind = KN_WEBHOOK_NONE;
    const char *value = NULL;
    const void *body = req->entity.base ? req->entity.base : "";
    size_t body_len = req->entity.base ? req->entity.len : 0;
    struct kn_secret secret = {0};
    struct kn_error err;
    char peer[96], names[512] = "";
    size_t value_len = 0, n;
    int triggered = 0;
    json_t *answer, *list;

    (void)call;
    kn_api_peer(req, peer, sizeof(peer));
    for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]) && !value; i++) {
        if ((value = kn_api_header(req, headers[i].header, &value_len))) {
            kind = headers[i].kind;
        }
    }
    if (!value) {
        kn_selfmetrics_add(NULL, KN_SM_WEBHOOK, "unsigned", NULL, 1);
        kn_api_refuse(api, req, 401, NULL,
                      "no webhook signature (X-Hub-Signature-256, X-Gitlab-Token "
                      "or X-Kanaria-Signature-256)");
        return;
    }
    list = json_array();
    /* every repository whose secret verifies the body is fetched; the body is not read */
    for (size_t i = 0; i < api->config->repositories.count; i++) {
        if (!repos[i].webhook.secret_file) {
            continue;
        }
        kn_secret_release(&secret);
        if (kn_secret_read(&secret, repos[i].webhook.secret_file, KN_SECRET_LINE, &err) < 0) {
            kn_log_warn(WHO, "repo=%s webhook: %s", repos[i].name, err.msg);
            continue;
        }
        if (!kn_webhook_verify(kind, value, value_len, body, body_len, secret.data, secret.len)) {
            continue;
        }
        if (!api->deps.actions || kn_actions_fetch(api->deps.actions, repos[i].name) < 0) {
            continue;
        }
        json_array_append_new(list, json_string(repos[i].name));
        n = strlen(names);
        snprintf(names + n, sizeof(names) - n, "%s%s", n ? ", " : "", repos[i].name);
        triggered++;
    }
    kn_secret_release(&secret);
    if (!triggered) {
        kn_selfmetrics_add(NULL, KN_SM_WEBHOOK, "bad_signature", NULL, 1);
        kn_log_warn(WHO, "webhook from %s (%s): the signature matches no repository", peer,
                    kn_webhook_kind_names[kind]);
        json_decref(list);
        kn_api_refuse(api, req, 401, NULL, "the webhook signature matches no repository");
        return;
    }
    for (size_t i = 0; i < json_array_size(list); i++) {
        const char *name = json_string_value(json_array_get(list, i));
        char msg[256];
        snprintf(msg, sizeof(msg), "%s push webhook from %s: fetching now",
                 kn_webhook_kind_names[kind], peer);
        kn_store_event_add(api->deps.store, "TRIGGERED", name, "", 0, "webhook", msg,
                           kn_webhook_now_ms());
    }
    kn_selfmetrics_add(NULL, KN_SM_WEBHOOK, "accepted", NULL, 1);
    kn_log_info(WHO, "webhook from %s (%s): fetching %s", peer, kn_webhook_kind_names[kind], names);
    answer = json_pack("{s:o}", "fetching", list);
    kn_api_reply(req, 202, answer);
    json_decref(answer);
}
