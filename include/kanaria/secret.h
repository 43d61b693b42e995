/*
 * kanaria — secrets kept in files (tokens, passwords, HMAC keys).
 *
 * A secret is read from its file at each use, so that a rotated file takes effect without a
 * restart, and is wiped from memory when released. The content is the whole file, bounded by
 * KN_SECRET_MAX, with one trailing line end ("\n" or "\r\n") removed. Messages name the file and
 * the reason, never the content; nothing here logs.
 *
 * Threading: no shared state; any thread (a fetch's credential callback runs on a worker).
 */
#ifndef KANARIA_SECRET_H
#define KANARIA_SECRET_H

#include <stddef.h>

#include "kanaria/error.h"

/* The largest secret file read. */
#define KN_SECRET_MAX ((size_t)64 << 10)

/* Flags of kn_secret_read. */
#define KN_SECRET_LINE 0x1 /* refuse a line end inside: for secrets that go into headers */

/* A secret in caller-owned storage; data is NUL-terminated and holds no NUL, len excludes it. */
struct kn_secret {
    char *data;
    size_t len;
};

/* Read the file at path into *out (release with kn_secret_release; *out is empty on failure).
 * 0; or KN_ENOENT (no such file), KN_EIO (cannot open or read, not a regular file), KN_ETOOBIG
 * (more than KN_SECRET_MAX bytes), KN_EINVAL (empty, holds a NUL byte, or a line end inside with
 * KN_SECRET_LINE), with err (may be NULL) saying "secret file 'PATH': REASON". */
int kn_secret_read(struct kn_secret *out, const char *path, unsigned flags, struct kn_error *err);

/* Wipe (OPENSSL_cleanse) and free the secret; leaves it empty. An empty one is a no-op. */
void kn_secret_release(struct kn_secret *s);

/* Wipe and free a NUL-terminated string holding secret material (a header built from a secret);
 * NULL is a no-op. */
void kn_secret_free_str(char *s);

#endif /* KANARIA_SECRET_H */
