/*
 * Who is calling the API: `Authorization: Bearer TOKEN`, matched by the SHA-256 of the token
 * against each user's tokenSha256 of kanaria.yaml in constant time. Pure functions, no I/O.
 */
#ifndef KANARIA_API_AUTH_H
#define KANARIA_API_AUTH_H

#include <stddef.h>

#include "kanaria/config.h"

/* "viewer", "approver", "operator", "admin"; "?" out of range. */
const char *kn_auth_role_name(int role);

/* The SHA-256 of token[0..len) as 64 lower-case hex digits and a NUL into hex. */
void kn_auth_token_sha256(const char *token, size_t len, char hex[65]);

/* The token of an Authorization header value "Bearer TOKEN" (scheme case-insensitive, spaces
 * around the token ignored): a pointer into value and its length. KN_EINVAL when the value is
 * not a bearer token. */
int kn_auth_bearer(const char *value, size_t len, const char **token, size_t *token_len);

/* The user of cfg whose tokenSha256 is the hash of the token (borrowed from cfg), or NULL. Every
 * user is compared, each in constant time, so the time taken does not tell which hash matched. */
const struct kn_user_config *kn_auth_user(const struct kn_config *cfg, const char *token,
                                          size_t len);

#endif /* KANARIA_API_AUTH_H */
