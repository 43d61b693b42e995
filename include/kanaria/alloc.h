/*
 * kanaria — allocation wrappers and a bounded growable buffer.
 *
 * The kn_*alloc functions abort the process with a message when memory runs out, so no NULL
 * check follows them. Memory they return is freed with free().
 */
#ifndef KANARIA_ALLOC_H
#define KANARIA_ALLOC_H

#include <stdarg.h>
#include <stddef.h>

void *kn_malloc(size_t size);
void *kn_calloc(size_t n, size_t size);
void *kn_realloc(void *p, size_t size);
/* n * size with an overflow check (aborts on overflow, like on OOM). */
void *kn_reallocarray(void *p, size_t n, size_t size);
char *kn_strdup(const char *s);
char *kn_strndup(const char *s, size_t n);
char *kn_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *kn_vasprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

/*
 * Give the pages that freed memory holds back to the system (glibc's malloc_trim(0), in every
 * malloc arena); a no-op with another C library. After a burst of work (a hundred deployments
 * at once) glibc keeps the pages the burst freed, mapped and counted in the RSS, as long as the
 * process lives: a daemon calls this once such a burst is over, not on a period (it walks
 * every free chunk, and the pages it gives back fault in again when reused). Any thread.
 */
void kn_alloc_trim(void);

/*
 * A growable byte buffer with a maximum size, for anything built from outside input. `data` is
 * always NUL-terminated once anything was added (the NUL is not counted in `len`). Caller-owned
 * storage: kn_buf_init, then kn_buf_release (or kn_buf_detach to take the bytes).
 */
struct kn_buf {
    char *data;
    size_t len;
    size_t cap;
    size_t max; /* the most `len` may reach; appends past it fail with KN_ETOOBIG */
};

#define KN_BUF_UNBOUNDED ((size_t)-1)

void kn_buf_init(struct kn_buf *b, size_t max);
void kn_buf_release(struct kn_buf *b);
/* Empty the buffer, keeping its memory. */
void kn_buf_reset(struct kn_buf *b);
/* Append bytes; 0, or KN_ETOOBIG (and the buffer unchanged) when it would pass `max`. */
int kn_buf_add(struct kn_buf *b, const void *data, size_t len);
int kn_buf_adds(struct kn_buf *b, const char *s);
int kn_buf_addch(struct kn_buf *b, char c);
int kn_buf_addf(struct kn_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Return the bytes (NUL-terminated, never NULL; caller frees) and reset the buffer to empty. */
char *kn_buf_detach(struct kn_buf *b, size_t *len);

#endif /* KANARIA_ALLOC_H */
