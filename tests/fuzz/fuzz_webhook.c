/*
 * libFuzzer target: the checks of a push webhook, through controller/api/webhook.h:
 * kn_webhook_verify (GitHub / generic HMAC-SHA256 and GitLab token), and kn_secret_read as the
 * endpoint reads a secret file.
 *
 * Input: byte 0 picks the header (none, GitHub, GitLab, generic); the bytes up to the first
 * '\n' are the header's value; the rest is the body. Beside not crashing, it holds the checks to
 * their contract: the right signature or token is always accepted, and one the secret did not
 * make is accepted only when it equals the right one.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "api/webhook.h"
#include "kanaria/secret.h"
#include "fuzz_file.h"

/* GitHub's documented example secret. */
static const char fz_secret[] = "It's a Secret to Everybody";

static char fz_path[KN_FUZZ_PATH_MAX];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    kn_fuzz_file_init(fz_path);
    return 0;
}

/* "sha256=" and the lowercase hex HMAC-SHA256 of body into sig (72 bytes with the NUL). */
static void fz_sign(const void *body, size_t len, char sig[72])
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int n = 0;

    if (!HMAC(EVP_sha256(), fz_secret, (int)strlen(fz_secret), len ? body : (const void *)"", len,
              mac, &n) ||
        n != 32) {
        abort();
    }
    memcpy(sig, "sha256=", 7);
    for (unsigned i = 0; i < 32; i++) {
        snprintf(sig + 7 + 2 * i, 3, "%02x", mac[i]);
    }
}

/* The whole input less one line end is the secret, as one line: feed it as a secret file. */
static void fz_secret_file(const uint8_t *data, size_t size)
{
    struct kn_secret s = {0};
    size_t want = size;

    kn_fuzz_file_set(data, size);
    if (want > 0 && data[want - 1] == '\n') {
        want--;
        if (want > 0 && data[want - 1] == '\r') {
            want--;
        }
    }
    if (kn_secret_read(&s, fz_path, KN_SECRET_LINE, NULL) == 0 &&
        (s.len == 0 || s.len != want || s.len > KN_SECRET_MAX || s.data[s.len] != '\0' ||
         memcmp(s.data, data, s.len) != 0 || memchr(s.data, '\0', s.len) ||
         memchr(s.data, '\n', s.len) || memchr(s.data, '\r', s.len))) {
        abort(); /* the secret is the input less one line end: one line, not empty, no NUL */
    }
    kn_secret_release(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const enum kn_webhook_kind kinds[] = {KN_WEBHOOK_NONE, KN_WEBHOOK_GITHUB,
                                                 KN_WEBHOOK_GITLAB, KN_WEBHOOK_GENERIC};
    const char *in = (const char *)data;
    size_t secret_len = strlen(fz_secret);
    char sig[72];

    fz_secret_file(data, size);
    if (size == 0) {
        return 0;
    }
    enum kn_webhook_kind kind = kinds[data[0] % 4];
    const char *nl = memchr(in + 1, '\n', size - 1);
    const char *value = in + 1;
    size_t value_len = nl ? (size_t)(nl - value) : size - 1;
    const char *body = nl ? nl + 1 : in + size;
    size_t body_len = (size_t)(in + size - body);

    int ok = kn_webhook_verify(kind, value, value_len, body, body_len, fz_secret, secret_len);
    fz_sign(body, body_len, sig);
    switch (kind) {
    case KN_WEBHOOK_GITHUB:
    case KN_WEBHOOK_GENERIC:
        if (ok && !(value_len == 71 && strncasecmp(value, sig, 71) == 0)) {
            abort(); /* accepted a signature the secret did not make */
        }
        if (!kn_webhook_verify(kind, sig, 71, body, body_len, fz_secret, secret_len)) {
            abort(); /* refused the right one */
        }
        break;
    case KN_WEBHOOK_GITLAB:
        if (ok && !(value_len == secret_len && memcmp(value, fz_secret, secret_len) == 0)) {
            abort();
        }
        if (!kn_webhook_verify(kind, fz_secret, secret_len, body, body_len, fz_secret,
                               secret_len)) {
            abort();
        }
        break;
    case KN_WEBHOOK_NONE:
        if (ok) {
            abort(); /* no header is never a match */
        }
        break;
    }
    return 0;
}
