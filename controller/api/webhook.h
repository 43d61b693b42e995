/*
 * Git push webhooks (`POST /api/v1/webhooks/git`). The signature is checked over the raw body
 * before anything reads it:
 *   GitHub   X-Hub-Signature-256: sha256=HEX      HMAC-SHA256 of the body with the secret
 *   GitLab   X-Gitlab-Token: SECRET               the secret itself
 *   generic  X-Kanaria-Signature-256: sha256=HEX  as GitHub
 * Each repository of kanaria.yaml with `webhook.secretFile` is tried (the file read at each call,
 * as one line, by kanaria/secret.h); every one whose secret verifies is fetched at once. The
 * verification functions are pure, for the unit tests.
 */
#ifndef KANARIA_API_WEBHOOK_H
#define KANARIA_API_WEBHOOK_H

#include <stddef.h>

enum kn_webhook_kind {
    KN_WEBHOOK_NONE = 0, /* no signature header */
    KN_WEBHOOK_GITHUB,
    KN_WEBHOOK_GITLAB,
    KN_WEBHOOK_GENERIC,
};

/* 1 when `signature` ("sha256=" and 64 hex digits, either case) is the HMAC-SHA256 of body with
 * secret, compared in constant time; 0 otherwise (also for a malformed signature). */
int kn_webhook_hmac_ok(const char *signature, size_t sig_len, const void *body, size_t body_len,
                       const char *secret, size_t secret_len);

/* 1 when token equals secret (constant time in the secret's length), 0 otherwise. */
int kn_webhook_token_ok(const char *token, size_t token_len, const char *secret, size_t secret_len);

/* Check one request against one secret: kind says which header `value` came from. */
int kn_webhook_verify(enum kn_webhook_kind kind, const char *value, size_t value_len,
                      const void *body, size_t body_len, const char *secret, size_t secret_len);

#endif /* KANARIA_API_WEBHOOK_H */
