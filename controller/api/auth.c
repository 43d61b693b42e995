/*
 * API tokens: SHA-256 through OpenSSL's EVP interface, compared with CRYPTO_memcmp.
 */
#include "api/auth.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "kanaria/error.h"

static const char *const kn_auth_roles[] = {
    [KN_ROLE_VIEWER] = "viewer",
    [KN_ROLE_APPROVER] = "approver",
    [KN_ROLE_OPERATOR] = "operator",
    [KN_ROLE_ADMIN] = "admin",
};

const char *kn_auth_role_name(int role)
{
    if (role < 0 || role > KN_ROLE_ADMIN) {
        return "?";
    }
    return kn_auth_roles[role];
}

static void kn_auth_sha256(const char *data, size_t len, unsigned char out[32])
{
    unsigned int n = 0;

    if (EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) != 1 || n != 32) {
        memset(out, 0, 32); /* matches no configured hash: those are never all zeroes */
    }
}

void kn_auth_token_sha256(const char *token, size_t len, char hex[65])
{
    static const char digits[] = "0123456789abcdef";
    unsigned char md[32];

    kn_auth_sha256(token, len, md);
    for (size_t i = 0; i < 32; i++) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 15];
    }
    hex[64] = '\0';
}

static int kn_auth_hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c = (char)tolower((unsigned char)c);
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;
}

/* 64 hex digits into 32 bytes; KN_EINVAL otherwise. */
static int kn_auth_unhex(const char *hex, unsigned char out[32])
{
    if (!hex || strlen(hex) != 64) {
        return KN_EINVAL;
    }
    for (size_t i = 0; i < 32; i++) {
        int hi = kn_auth_hexval(hex[2 * i]);
        int lo = kn_auth_hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            return KN_EINVAL;
        }
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return 0;
}

int kn_auth_bearer(const char *value, size_t len, const char **token, size_t *token_len)
{
    static const char scheme[] = "bearer";
    size_t n = sizeof(scheme) - 1;

    if (!value || len <= n || strncasecmp(value, scheme, n) != 0 || value[n] != ' ') {
        return KN_EINVAL;
    }
    value += n;
    len -= n;
    while (len > 0 && *value == ' ') {
        value++;
        len--;
    }
    while (len > 0 && (value[len - 1] == ' ' || value[len - 1] == '\t')) {
        len--;
    }
    if (len == 0 || memchr(value, ' ', len)) {
        return KN_EINVAL;
    }
    *token = value;
    *token_len = len;
    return 0;
}

const struct kn_user_config *kn_auth_user(const struct kn_config *cfg, const char *token,
                                          size_t len)
{
    const struct kn_user_config *users;
    const struct kn_user_config *found = NULL;
    unsigned char md[32], want[32];

    if (!cfg || !token || len == 0) {
        goto out;
    }
    users = cfg->users.items;
    kn_auth_sha256(token, len, md);
    for (size_t i = 0; i < cfg->users.count; i++) {
        if (kn_auth_unhex(users[i].token_sha256, want) < 0) {
            continue;
        }
        if (CRYPTO_memcmp(md, want, sizeof(md)) == 0 && !found) {
            found = &users[i];
        }
    }
out:
    return found;
}
