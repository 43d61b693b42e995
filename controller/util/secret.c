/*
 * Secrets kept in files (see kanaria/secret.h).
 */
#include "kanaria/secret.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kanaria/alloc.h"

/* The bytes of fd up to max + 1 into buf (so that one more than max shows the file is too big);
 * the count, or -1 with errno. */
static ssize_t kn_secret_read_fd(int fd, char *buf, size_t max)
{
    size_t n = 0;

    while (n < max + 1) {
        ssize_t r = read(fd, buf + n, max + 1 - n);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            return -1;
        }
        if (r == 0) {
            break;
        }
        n += (size_t)r;
    }
    return (ssize_t)n;
}

int kn_secret_read(struct kn_secret *out, const char *path, unsigned flags, struct kn_error *err)
{
    char *buf = NULL;
    struct stat st;
    ssize_t got;
    size_t len = 0;
    int fd = -1;
    int rc = 0;

    memset(out, 0, sizeof(*out));
    if (!path || !*path) {
        rc = kn_error_set(err, KN_EINVAL, NULL, "secret file: no path");
        goto out;
    }
    /* O_NONBLOCK: a FIFO put in place of the file must not hang the caller in open */
    if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)) < 0) {
        rc = kn_error_set(err, errno == ENOENT ? KN_ENOENT : KN_EIO, NULL,
                          "secret file '%s': cannot open: %s", path, strerror(errno));
        goto out;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        rc = kn_error_set(err, KN_EIO, NULL, "secret file '%s': not a regular file", path);
        goto out;
    }
    if ((size_t)st.st_size > KN_SECRET_MAX) {
        rc = kn_error_set(err, KN_ETOOBIG, NULL, "secret file '%s': larger than %zu bytes", path,
                          KN_SECRET_MAX);
        goto out;
    }
    buf = kn_malloc(KN_SECRET_MAX + 2);
    if ((got = kn_secret_read_fd(fd, buf, KN_SECRET_MAX)) < 0) {
        rc = kn_error_set(err, KN_EIO, NULL, "secret file '%s': cannot read: %s", path,
                          strerror(errno));
        goto out;
    }
    len = (size_t)got;
    if (len > KN_SECRET_MAX) { /* it grew since fstat */
        rc = kn_error_set(err, KN_ETOOBIG, NULL, "secret file '%s': larger than %zu bytes", path,
                          KN_SECRET_MAX);
        goto out;
    }
    if (len > 0 && buf[len - 1] == '\n') {
        len--;
        if (len > 0 && buf[len - 1] == '\r') {
            len--;
        }
    }
    buf[len] = '\0';
    if (len == 0) {
        rc = kn_error_set(err, KN_EINVAL, NULL, "secret file '%s': empty", path);
        goto out;
    }
    /* a NUL would cut the secret short without a word wherever it is used as a string */
    if (memchr(buf, '\0', len)) {
        rc = kn_error_set(err, KN_EINVAL, NULL, "secret file '%s': holds a NUL byte", path);
        goto out;
    }
    if ((flags & KN_SECRET_LINE) && strpbrk(buf, "\r\n")) {
        rc = kn_error_set(err, KN_EINVAL, NULL, "secret file '%s': more than one line", path);
        goto out;
    }
    out->data = buf;
    out->len = len;
    buf = NULL;
out:
    if (buf) {
        OPENSSL_cleanse(buf, KN_SECRET_MAX + 2);
        free(buf);
    }
    if (fd >= 0) {
        close(fd);
    }
    return rc;
}

void kn_secret_release(struct kn_secret *s)
{
    if (s->data) {
        /* the buffer is KN_SECRET_MAX + 2 bytes; only what was read can hold the secret */
        OPENSSL_cleanse(s->data, s->len + 2);
        free(s->data);
    }
    s->data = NULL;
    s->len = 0;
}

void kn_secret_free_str(char *s)
{
    if (s) {
        OPENSSL_cleanse(s, strlen(s));
        free(s);
    }
}
