/*
 * kanaria — error model.
 *
 * Functions return int: 0 on success, a negative KN_E* code on failure. Every code is declared
 * once in KN_ERRNO_MAP with its message. Where a caller needs more than the code (where in which
 * file, what exactly), it passes a struct kn_error that the callee fills. Errors from libraries
 * (libyaml, jansson, libgit2, curl, SQLite) are translated to these codes at the boundary.
 */
#ifndef KANARIA_ERROR_H
#define KANARIA_ERROR_H

#include <stddef.h>

#define KN_ERRNO_MAP(XX)                                                                           \
    XX(NOMEM, "out of memory")                                                                     \
    XX(INVAL, "invalid argument")                                                                  \
    XX(IO, "input/output error")                                                                   \
    XX(NOENT, "no such file or directory")                                                         \
    XX(TOOBIG, "too large")                                                                        \
    XX(PARSE, "parse error")                                                                       \
    XX(SCHEMA, "invalid configuration")                                                            \
    XX(PATH, "path escapes the repository")                                                        \
    XX(EXISTS, "already exists")                                                                   \
    XX(NOTFOUND, "not found")                                                                      \
    XX(UNSUPPORTED, "not supported")                                                               \
    XX(LIMIT, "limit exceeded")                                                                    \
    XX(USAGE, "usage error")                                                                       \
    XX(CANCELLED, "cancelled")                                                                     \
    XX(TIMEDOUT, "timed out")

enum kn_errno {
    KN_OK = 0,
#define KN_XX(name, msg) KN_E##name,
    KN__EFIRST = -1000,
    KN_ERRNO_MAP(KN_XX)
#undef KN_XX
    KN__ELAST
};

/* A readable message for a KN_E* code; "unknown error" for anything else. Never NULL. */
const char *kn_strerror(int code);

/* The constant's name without the prefix ("EPARSE") for logs and JSON; never NULL. */
const char *kn_err_name(int code);

/* Where something is in a source file. `file` is borrowed from whoever loaded the file. Line and
 * column count from 1; 0 means unknown. */
struct kn_loc {
    const char *file;
    unsigned line;
    unsigned col;
};

#define KN_ERROR_MSG_MAX 512

/* Detail for one failure. Caller-owned storage; functions that take one fill it when they fail
 * and leave it alone on success. `file` is copied into `file_buf`, so the error outlives the
 * source it came from. */
struct kn_error {
    int code;
    char file_buf[256];
    unsigned line;
    unsigned col;
    char msg[KN_ERROR_MSG_MAX];
};

/* Reset to "no error". */
void kn_error_clear(struct kn_error *err);

/* Fill err (when not NULL) with code, location (may be NULL) and a printf-style message;
 * returns code so that a caller can write `return kn_error_set(err, KN_EPARSE, loc, ...)`. */
int kn_error_set(struct kn_error *err, int code, const struct kn_loc *loc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* "file:line:col: message" (the parts that are known) into buf; returns buf. */
const char *kn_error_format(const struct kn_error *err, char *buf, size_t size);

/* A list of located diagnostics: how validation reports every error in a file, not only the
 * first. Bounded: after `max` entries further ones are counted in `dropped`, not stored. */
struct kn_diag {
    char *file; /* owned; NULL when the diagnostic is about no file */
    unsigned line;
    unsigned col;
    char *msg; /* owned */
};

struct kn_diags {
    struct kn_diag *items;
    size_t count;
    size_t cap;
    size_t max;
    size_t dropped;
};

#define KN_DIAGS_DEFAULT_MAX 50

/* Caller-owned storage; release with kn_diags_release. max 0 means KN_DIAGS_DEFAULT_MAX. */
void kn_diags_init(struct kn_diags *d, size_t max);
void kn_diags_release(struct kn_diags *d);

/* Record one diagnostic at loc (may be NULL). Copies everything it is given. */
void kn_diags_add(struct kn_diags *d, const struct kn_loc *loc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Number of diagnostics seen, stored or dropped. */
size_t kn_diags_total(const struct kn_diags *d);

/* "file:line:col: msg" for diagnostic i into buf; returns buf. */
const char *kn_diag_format(const struct kn_diag *d, char *buf, size_t size);

#endif /* KANARIA_ERROR_H */
