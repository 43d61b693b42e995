/*
 * kanaria — allocation wrappers and the bounded buffer (include/kanaria/alloc.h).
 */
#include "kanaria/alloc.h"

#include <stdint.h>
#include <stdio.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdlib.h>
#include <string.h>

#include "kanaria/error.h"

/* The smallest capacity a buffer grows to, so that short appends do not realloc each time. */
#define KN_BUF_MIN_CAP 64

static void kn_oom(size_t size) __attribute__((noreturn));

static void kn_oom(size_t size)
{
    fprintf(stderr, "kanaria: out of memory allocating %zu bytes\n", size);
    fflush(stderr);
    abort();
}

void *kn_malloc(size_t size)
{
    /* malloc(0) may return NULL; ask for one byte so that NULL always means failure. */
    void *p = malloc(size ? size : 1);
    if (!p) {
        kn_oom(size);
    }
    return p;
}

void *kn_calloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) {
        kn_oom(n * size);
    }
    return p;
}

void *kn_realloc(void *p, size_t size)
{
    void *q = realloc(p, size ? size : 1);
    if (!q) {
        kn_oom(size);
    }
    return q;
}

void *kn_reallocarray(void *p, size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size) {
        fprintf(stderr, "kanaria: allocation size overflow (%zu * %zu)\n", n, size);
        fflush(stderr);
        abort();
    }
    return kn_realloc(p, n * size);
}

char *kn_strdup(const char *s)
{
    return kn_strndup(s, strlen(s));
}

char *kn_strndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *d = kn_malloc(len + 1);
    memcpy(d, s, len);
    d[len] = '\0';
    return d;
}

char *kn_vasprintf(const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0) {
        /* Only an invalid format or a wide-character conversion failure gets here: a bug. */
        fprintf(stderr, "kanaria: cannot format \"%s\"\n", fmt);
        fflush(stderr);
        abort();
    }
    char *s = kn_malloc((size_t)n + 1);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    return s;
}

char *kn_asprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = kn_vasprintf(fmt, ap);
    va_end(ap);
    return s;
}

void kn_alloc_trim(void)
{
#ifdef __GLIBC__
    malloc_trim(0);
#endif
}

void kn_buf_init(struct kn_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

void kn_buf_release(struct kn_buf *b)
{
    free(b->data);
    kn_buf_init(b, b->max);
}

void kn_buf_reset(struct kn_buf *b)
{
    b->len = 0;
    if (b->data) {
        b->data[0] = '\0';
    }
}

/* Make room for `extra` more bytes plus the NUL; the caller has checked `max`. */
static void kn_buf_grow(struct kn_buf *b, size_t extra)
{
    if (extra >= SIZE_MAX - b->len) {
        kn_oom(SIZE_MAX);
    }
    size_t need = b->len + extra + 1;
    if (need <= b->cap) {
        return;
    }
    size_t cap = b->cap ? b->cap : KN_BUF_MIN_CAP;
    while (cap < need) {
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    }
    b->data = kn_realloc(b->data, cap);
    b->cap = cap;
}

int kn_buf_add(struct kn_buf *b, const void *data, size_t len)
{
    if (len > b->max || b->len > b->max - len) {
        return KN_ETOOBIG;
    }
    kn_buf_grow(b, len);
    if (len) {
        memcpy(b->data + b->len, data, len);
    }
    b->len += len;
    b->data[b->len] = '\0';
    return 0;
}

int kn_buf_adds(struct kn_buf *b, const char *s)
{
    return kn_buf_add(b, s, strlen(s));
}

int kn_buf_addch(struct kn_buf *b, char c)
{
    return kn_buf_add(b, &c, 1);
}

int kn_buf_addf(struct kn_buf *b, const char *fmt, ...)
{
    int rc = 0;
    va_list ap;

    /* Format straight into the spare room; only when it does not fit, grow and format again. */
    kn_buf_grow(b, 0);
    size_t room = b->cap - b->len;
    va_start(ap, fmt);
    int n = vsnprintf(b->data + b->len, room, fmt, ap);
    va_end(ap);
    if (n < 0) {
        rc = KN_EINVAL;
        goto out;
    }
    if ((size_t)n > b->max || b->len > b->max - (size_t)n) {
        rc = KN_ETOOBIG;
        goto out;
    }
    if ((size_t)n >= room) {
        kn_buf_grow(b, (size_t)n);
        va_start(ap, fmt);
        vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)n;
out:
    /* On failure vsnprintf may have written past len: restore the terminator. */
    b->data[b->len] = '\0';
    return rc;
}

char *kn_buf_detach(struct kn_buf *b, size_t *len)
{
    char *data = b->data ? b->data : kn_strdup("");
    if (len) {
        *len = b->len;
    }
    kn_buf_init(b, b->max);
    return data;
}
