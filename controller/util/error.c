/*
 * kanaria — error codes, located errors and diagnostic lists (include/kanaria/error.h).
 */
#include "kanaria/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kanaria/alloc.h"

const char *kn_strerror(int code)
{
    switch (code) {
#define KN_XX(name, msg)                                                                           \
    case KN_E##name:                                                                               \
        return msg;
        KN_ERRNO_MAP(KN_XX)
#undef KN_XX
    default:
        return "unknown error";
    }
}

const char *kn_err_name(int code)
{
    switch (code) {
#define KN_XX(name, msg)                                                                           \
    case KN_E##name:                                                                               \
        return "E" #name;
        KN_ERRNO_MAP(KN_XX)
#undef KN_XX
    default:
        return "EUNKNOWN";
    }
}

void kn_error_clear(struct kn_error *err)
{
    memset(err, 0, sizeof(*err));
}

int kn_error_set(struct kn_error *err, int code, const struct kn_loc *loc, const char *fmt, ...)
{
    va_list ap;

    if (!err) {
        goto out;
    }
    err->code = code;
    err->file_buf[0] = '\0';
    err->line = 0;
    err->col = 0;
    if (loc) {
        if (loc->file) {
            snprintf(err->file_buf, sizeof(err->file_buf), "%s", loc->file);
        }
        err->line = loc->line;
        err->col = loc->col;
    }
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
out:
    return code;
}

/* "file:line:col: msg" with the unknown parts left out. */
static const char *kn_format_located(char *buf, size_t size, const char *file, unsigned line,
                                     unsigned col, const char *msg)
{
    size_t off = 0;
    int n;

    if (size == 0) {
        goto out;
    }
    buf[0] = '\0';
    if (file && *file) {
        n = snprintf(buf, size, "%s:", file);
        off = n < 0 ? 0 : (size_t)n;
    }
    if (line && off < size) {
        n = snprintf(buf + off, size - off, "%u:", line);
        off += n < 0 ? 0 : (size_t)n;
        if (col && off < size) {
            n = snprintf(buf + off, size - off, "%u:", col);
            off += n < 0 ? 0 : (size_t)n;
        }
    }
    if (off < size) {
        snprintf(buf + off, size - off, "%s%s", off ? " " : "", msg);
    }
out:
    return buf;
}

const char *kn_error_format(const struct kn_error *err, char *buf, size_t size)
{
    const char *msg = err->msg[0] ? err->msg : kn_strerror(err->code);
    return kn_format_located(buf, size, err->file_buf, err->line, err->col, msg);
}

void kn_diags_init(struct kn_diags *d, size_t max)
{
    d->items = NULL;
    d->count = 0;
    d->cap = 0;
    d->max = max ? max : KN_DIAGS_DEFAULT_MAX;
    d->dropped = 0;
}

void kn_diags_release(struct kn_diags *d)
{
    for (size_t i = 0; i < d->count; i++) {
        free(d->items[i].file);
        free(d->items[i].msg);
    }
    free(d->items);
    kn_diags_init(d, d->max);
}

void kn_diags_add(struct kn_diags *d, const struct kn_loc *loc, const char *fmt, ...)
{
    va_list ap;

    if (d->count >= d->max) {
        d->dropped++;
        goto out;
    }
    if (d->count == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 8;
        if (d->cap > d->max) {
            d->cap = d->max;
        }
        d->items = kn_reallocarray(d->items, d->cap, sizeof(*d->items));
    }
    struct kn_diag *item = &d->items[d->count++];
    item->file = loc && loc->file ? kn_strdup(loc->file) : NULL;
    item->line = loc ? loc->line : 0;
    item->col = loc ? loc->col : 0;
    va_start(ap, fmt);
    item->msg = kn_vasprintf(fmt, ap);
    va_end(ap);
out:
    return;
}

size_t kn_diags_total(const struct kn_diags *d)
{
    return d->count + d->dropped;
}

const char *kn_diag_format(const struct kn_diag *d, char *buf, size_t size)
{
    return kn_format_located(buf, size, d->file, d->line, d->col, d->msg);
}
