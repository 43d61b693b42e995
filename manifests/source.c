/*
 * kanaria — sources: reading a repository snapshot by relative path (include/kanaria/app.h).
 *
 * The folder source resolves every path with realpath() and requires the result to stay under
 * the realpath of the top folder, so symlinks inside the repository work and symlinks that
 * leave it are refused. The threat is the content of the repository (a committed symlink to
 * /etc/shadow), not a local process racing the controller on its own checkout, so the check is
 * done once per read; the final open uses O_NOFOLLOW so a swapped last component still fails.
 *
 * The walk descends with openat(O_NOFOLLOW) from an open descriptor of the top, never through a
 * symlinked folder, and visits each folder's entries in an order that makes the whole walk come
 * out in strcmp() order of the full relative paths.
 */
/* realpath() is POSIX 2008 base, but glibc declares it only for XSI (or _DEFAULT_SOURCE):
 * _XOPEN_SOURCE 700 is XSI over the same POSIX 2008 the rest of the tree builds against. */
#ifndef _XOPEN_SOURCE
#define _XOPEN_SOURCE 700
#endif

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kanaria/alloc.h"
#include "kanaria/app.h"
#include "kanaria/error.h"

/* Deeper trees than this fail the walk with KN_ELIMIT: one descriptor is open per level. */
#define KN_WALK_MAX_DEPTH 128

/* Bytes read per read(2) call. */
#define KN_READ_CHUNK 16384

struct kn_source_dir {
    struct kn_source base; /* first, so that a struct kn_source * converts back */
    char *top;             /* realpath of the folder */
    size_t top_len;
};

/* ---- paths ------------------------------------------------------------------------------- */

/* Append the segments of `p` to the normalized path in out[0..*len), resolving `.` and `..`.
 * KN_EPATH when `..` would climb above the top. */
static int kn_path_push(char *out, size_t *len, const char *p)
{
    int rc = 0;

    while (*p) {
        size_t n = strcspn(p, "/");

        if (n == 0 || (n == 1 && p[0] == '.')) {
            /* an empty segment (duplicate slash) or `.`: nothing to add */
        } else if (n == 2 && p[0] == '.' && p[1] == '.') {
            if (*len == 0) {
                rc = KN_EPATH;
                goto out;
            }
            while (*len > 0 && out[*len - 1] != '/') {
                (*len)--;
            }
            if (*len > 0) {
                (*len)--; /* the slash before the dropped segment */
            }
        } else {
            if (*len > 0) {
                out[(*len)++] = '/';
            }
            memcpy(out + *len, p, n);
            *len += n;
        }
        p += n;
        if (*p == '/') {
            p++;
        }
    }
out:
    return rc;
}

int kn_source_check_path(const char *relpath, char **norm, struct kn_error *err)
{
    *norm = NULL;
    if (!relpath) {
        return kn_error_set(err, KN_EINVAL, NULL, "no path to read");
    }
    if (relpath[0] == '/') {
        return kn_error_set(err, KN_EPATH, NULL, "'%s' is an absolute path", relpath);
    }
    if (kn_path_resolve(norm, "", relpath) < 0) {
        return kn_error_set(err, KN_EPATH, NULL, "'%s' climbs out of the repository", relpath);
    }
    return 0;
}

int kn_path_resolve(char **out, const char *base, const char *rel)
{
    int rc = 0;
    char *buf = NULL;
    size_t len = 0;

    *out = NULL;
    if (!rel) {
        rc = KN_EINVAL;
        goto out;
    }
    if (!base) {
        base = "";
    }
    /* base is relative to the top as well: an absolute one is as wrong as an absolute rel */
    if (rel[0] == '/' || base[0] == '/') {
        rc = KN_EPATH;
        goto out;
    }
    /* The result is never longer than base + '/' + rel. */
    buf = kn_malloc(strlen(base) + strlen(rel) + 2);
    if ((rc = kn_path_push(buf, &len, base)) < 0 || (rc = kn_path_push(buf, &len, rel)) < 0) {
        goto out;
    }
    buf[len] = '\0';
    *out = buf;
    buf = NULL;
out:
    free(buf);
    return rc;
}

/* ---- glob -------------------------------------------------------------------------------- */

/* If pattern[i] opens a bracket expression that is closed within pattern[0..n), the index just
 * past its `]`; otherwise 0 (the `[` is then an ordinary character). */
static size_t kn_glob_bracket_end(const char *pattern, size_t i, size_t n)
{
    size_t j = i + 1;
    size_t end = 0;

    if (j < n && (pattern[j] == '!' || pattern[j] == '^')) {
        j++;
    }
    if (j < n && pattern[j] == ']') {
        j++; /* a `]` first in the list is a member, not the end */
    }
    while (j < n && pattern[j] != ']') {
        if (pattern[j] == '[' && j + 1 < n &&
            (pattern[j + 1] == ':' || pattern[j + 1] == '=' || pattern[j + 1] == '.')) {
            /* [:class:], [=equiv=], [.coll.]: skip to the matching close */
            char delim = pattern[j + 1];
            size_t k = j + 2;
            while (k + 1 < n && !(pattern[k] == delim && pattern[k + 1] == ']')) {
                k++;
            }
            if (k + 1 >= n) {
                goto out;
            }
            j = k + 2;
            continue;
        }
        if (pattern[j] == '\\' && j + 1 < n) {
            j++;
        }
        j++;
    }
    if (j < n) {
        end = j + 1;
    }
out:
    return end;
}

/* Does the bracket expression pattern[i..end) contain c? fnmatch(3) knows every form a
 * bracket expression can take (ranges, negation, POSIX classes), so it is asked about the one
 * character. */
static int kn_glob_bracket_has(const char *pattern, size_t i, size_t end, char c)
{
    char small[128];
    char *cls = small;
    char str[2] = {c, '\0'};
    int match;

    if (end - i >= sizeof(small)) {
        cls = kn_malloc(end - i + 1);
    }
    memcpy(cls, pattern + i, end - i);
    cls[end - i] = '\0';
    match = fnmatch(cls, str, 0) == 0;
    if (cls != small) {
        free(cls);
    }
    return match;
}

/* Match one pattern element at pattern[*pi] (not `*`) against the character c; on a match
 * advance *pi past the element and return 1. */
static int kn_glob_one(const char *pattern, size_t n, size_t *pi, char c)
{
    size_t i = *pi;
    size_t next;
    int match;

    if (pattern[i] == '?') {
        match = 1;
        next = i + 1;
    } else if (pattern[i] == '[' && (next = kn_glob_bracket_end(pattern, i, n)) != 0) {
        match = kn_glob_bracket_has(pattern, i, next, c);
    } else {
        if (pattern[i] == '\\' && i + 1 < n) {
            i++; /* an escaped character stands for itself */
        }
        match = pattern[i] == c;
        next = i + 1;
    }
    if (match) {
        *pi = next;
    }
    return match;
}

/* Match one segment (no slashes in either). Iterative with a single backtrack point, the last
 * `*`: an earlier `*` never needs to take back what it matched, so the cost is O(n * m), never
 * exponential. */
static int kn_glob_segment(const char *pattern, size_t pn, const char *str, size_t sn)
{
    size_t p = 0;
    size_t s = 0;
    size_t star_p = SIZE_MAX;
    size_t star_s = 0;
    int match = 0;

    while (s < sn) {
        if (p < pn && pattern[p] == '*') {
            star_p = ++p;
            star_s = s;
        } else if (p < pn && kn_glob_one(pattern, pn, &p, str[s])) {
            s++;
        } else if (star_p != SIZE_MAX) {
            p = star_p;
            s = ++star_s;
        } else {
            goto out;
        }
    }
    while (p < pn && pattern[p] == '*') {
        p++;
    }
    match = p == pn;
out:
    return match;
}

struct kn_seg {
    const char *s;
    size_t n;
};

/* Split s at '/' into a new array (caller frees); an empty string has no segments. */
static struct kn_seg *kn_glob_split(const char *s, size_t *count)
{
    size_t n = 1;
    struct kn_seg *segs;
    size_t i = 0;

    for (const char *p = s; *p; p++) {
        n += *p == '/';
    }
    segs = kn_calloc(n, sizeof(*segs));
    if (*s) {
        for (;;) {
            size_t len = strcspn(s, "/");
            segs[i].s = s;
            segs[i].n = len;
            i++;
            if (s[len] == '\0') {
                break;
            }
            s += len + 1;
        }
    }
    *count = i;
    return segs;
}

static int kn_seg_is_globstar(const struct kn_seg *seg)
{
    return seg->n == 2 && seg->s[0] == '*' && seg->s[1] == '*';
}

int kn_glob_match(const char *pattern, const char *path)
{
    struct kn_seg *ps = NULL;
    struct kn_seg *ss = NULL;
    size_t pn;
    size_t sn;
    size_t p = 0;
    size_t s = 0;
    size_t star_p = SIZE_MAX;
    size_t star_s = 0;
    int match = 0;

    if (!pattern || !path) {
        goto out;
    }
    ps = kn_glob_split(pattern, &pn);
    ss = kn_glob_split(path, &sn);
    /* The same algorithm as kn_glob_segment one level up: segments are the characters, a `**`
     * segment is the `*` and every other segment matches exactly one path segment. */
    while (s < sn) {
        if (p < pn && kn_seg_is_globstar(&ps[p])) {
            star_p = ++p;
            star_s = s;
        } else if (p < pn && kn_glob_segment(ps[p].s, ps[p].n, ss[s].s, ss[s].n)) {
            p++;
            s++;
        } else if (star_p != SIZE_MAX) {
            p = star_p;
            s = ++star_s;
        } else {
            goto out;
        }
    }
    while (p < pn && kn_seg_is_globstar(&ps[p])) {
        p++;
    }
    match = p == pn;
out:
    free(ps);
    free(ss);
    return match;
}

/* ---- the folder source ------------------------------------------------------------------- */

/* Is the absolute, symlink-free path `real` the top folder or inside it? */
static int kn_source_dir_contains(const struct kn_source_dir *d, const char *real)
{
    /* A top of "/" holds every absolute path. */
    return d->top_len == 1 || (strncmp(real, d->top, d->top_len) == 0 &&
                               (real[d->top_len] == '/' || real[d->top_len] == '\0'));
}

/* Read fd into out, never more than out->max + 1 bytes. */
static int kn_source_read_fd(int fd, const char *relpath, struct kn_buf *out, struct kn_error *err)
{
    int rc = 0;
    char chunk[KN_READ_CHUNK];
    size_t total = 0;

    for (;;) {
        size_t want = sizeof(chunk);
        ssize_t got;

        /* Ask for one byte past max, and no more, to notice a file that grew after fstat. */
        if (out->max != KN_BUF_UNBOUNDED && out->max - total < want) {
            want = out->max - total + 1;
        }
        got = read(fd, chunk, want);
        if (got < 0) {
            if (errno == EINTR) {
                continue;
            }
            rc = kn_error_set(err, KN_EIO, NULL, "cannot read '%s': %s", relpath, strerror(errno));
            goto out;
        }
        if (got == 0) {
            break;
        }
        if (kn_buf_add(out, chunk, (size_t)got) < 0) {
            rc = kn_error_set(err, KN_ETOOBIG, NULL, "'%s' is larger than %zu bytes", relpath,
                              out->max);
            goto out;
        }
        total += (size_t)got;
    }
    /* An empty file still leaves out->data pointing at a NUL. */
    rc = kn_buf_add(out, "", 0);
out:
    return rc;
}

static int kn_source_dir_read(struct kn_source *src, const char *relpath, struct kn_buf *out,
                              struct kn_error *err)
{
    struct kn_source_dir *d = (struct kn_source_dir *)src;
    int rc = 0;
    int fd = -1;
    char *norm = NULL;
    char *full = NULL;
    char *real = NULL;
    const char *shown = relpath && *relpath ? relpath : ".";
    struct stat st;

    kn_buf_reset(out);
    if ((rc = kn_source_check_path(relpath, &norm, err)) < 0) {
        goto out;
    }
    full = *norm ? kn_asprintf("%s/%s", d->top, norm) : kn_strdup(d->top);
    real = realpath(full, NULL);
    if (!real) {
        if (errno == ENOENT || errno == ENOTDIR) {
            rc = kn_error_set(err, KN_ENOENT, NULL, "'%s' does not exist", shown);
        } else if (errno == ELOOP) {
            rc = kn_error_set(err, KN_EIO, NULL, "'%s' is a symlink loop", shown);
        } else {
            rc = kn_error_set(err, KN_EIO, NULL, "cannot open '%s': %s", shown, strerror(errno));
        }
        goto out;
    }
    if (!kn_source_dir_contains(d, real)) {
        rc = kn_error_set(err, KN_EPATH, NULL, "'%s' is a symlink that leaves the repository",
                          shown);
        goto out;
    }
    /* O_NONBLOCK so that opening a FIFO does not wait for a writer; it is refused below. */
    fd = open(real, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) {
            rc = kn_error_set(err, KN_ENOENT, NULL, "'%s' does not exist", shown);
        } else if (errno == ELOOP) {
            /* realpath() saw no symlink here a moment ago: something swapped it in */
            rc = kn_error_set(err, KN_EPATH, NULL, "'%s' is a symlink that leaves the repository",
                              shown);
        } else {
            rc = kn_error_set(err, KN_EIO, NULL, "cannot open '%s': %s", shown, strerror(errno));
        }
        goto out;
    }
    if (fstat(fd, &st) < 0) {
        rc = kn_error_set(err, KN_EIO, NULL, "cannot stat '%s': %s", shown, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = kn_error_set(err, KN_EIO, NULL, "'%s' is not a regular file", shown);
        goto out;
    }
    if (out->max != KN_BUF_UNBOUNDED && (uintmax_t)st.st_size > (uintmax_t)out->max) {
        rc = kn_error_set(err, KN_ETOOBIG, NULL, "'%s' is larger than %zu bytes", shown, out->max);
        goto out;
    }
    rc = kn_source_read_fd(fd, shown, out, err);
out:
    if (rc < 0) {
        kn_buf_reset(out);
    }
    if (fd >= 0) {
        close(fd);
    }
    free(real);
    free(full);
    free(norm);
    return rc;
}

enum kn_walk_kind {
    KN_WALK_SKIP,
    KN_WALK_FILE,
    KN_WALK_DIR,
};

struct kn_walk_entry {
    char *name;
    enum kn_walk_kind kind;
};

/* Order entries as their full paths compare with strcmp(): a folder sorts as if its name ended
 * in '/' ("a.yaml" < "a/x" because '.' < '/'), so the walk as a whole comes out sorted. */
static int kn_walk_entry_cmp(const void *a, const void *b)
{
    const struct kn_walk_entry *x = a;
    const struct kn_walk_entry *y = b;
    const unsigned char *p = (const unsigned char *)x->name;
    const unsigned char *q = (const unsigned char *)y->name;
    unsigned cp;
    unsigned cq;

    for (;;) {
        cp = *p ? *p : (x->kind == KN_WALK_DIR ? '/' : 0);
        cq = *q ? *q : (y->kind == KN_WALK_DIR ? '/' : 0);
        if (cp != cq || !*p || !*q) {
            break;
        }
        p++;
        q++;
    }
    return cp < cq ? -1 : cp > cq;
}

/* What the walk does with `name` in the folder dfd: regular files (and symlinks to them) are
 * reported, real folders descended into, everything else skipped. */
static enum kn_walk_kind kn_walk_classify(int dfd, const char *name)
{
    struct stat st;
    enum kn_walk_kind kind = KN_WALK_SKIP;

    if (strcmp(name, ".git") == 0 || fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        kind = KN_WALK_SKIP;
    } else if (S_ISDIR(st.st_mode)) {
        kind = KN_WALK_DIR;
    } else if (S_ISREG(st.st_mode)) {
        kind = KN_WALK_FILE;
    } else if (S_ISLNK(st.st_mode) && fstatat(dfd, name, &st, 0) == 0 && S_ISREG(st.st_mode)) {
        /* A symlink to a file is reported and read decides whether it may be followed; one to
         * a folder is not descended into. */
        kind = KN_WALK_FILE;
    }
    return kind;
}

/* Walk the open folder dfd (consumed) whose path from the top is prefix ("" for the top). */
static int kn_walk_dir(int dfd, const char *prefix, int depth, kn_source_walk_cb cb, void *data)
{
    int rc = 0;
    DIR *dir = NULL;
    struct dirent *de;
    struct kn_walk_entry *ents = NULL;
    size_t n = 0;
    size_t cap = 0;

    if (depth > KN_WALK_MAX_DEPTH) {
        close(dfd);
        rc = KN_ELIMIT;
        goto out;
    }
    dir = fdopendir(dfd);
    if (!dir) {
        close(dfd);
        rc = KN_EIO;
        goto out;
    }
    for (;;) {
        errno = 0;
        de = readdir(dir);
        if (!de) {
            if (errno != 0) {
                rc = KN_EIO;
                goto out;
            }
            break;
        }
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) {
            continue;
        }
        enum kn_walk_kind kind = kn_walk_classify(dfd, de->d_name);
        if (kind == KN_WALK_SKIP) {
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            ents = kn_reallocarray(ents, cap, sizeof(*ents));
        }
        ents[n].name = kn_strdup(de->d_name);
        ents[n].kind = kind;
        n++;
    }
    if (n > 0) {
        qsort(ents, n, sizeof(*ents), kn_walk_entry_cmp);
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        char *rel = *prefix ? kn_asprintf("%s/%s", prefix, ents[i].name) : kn_strdup(ents[i].name);

        if (ents[i].kind == KN_WALK_FILE) {
            rc = cb(rel, data);
        } else {
            int sub = openat(dfd, ents[i].name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            /* Gone or swapped for a symlink since it was classified: skip it, as the walk of
             * a changing folder cannot be exact anyway. */
            if (sub >= 0) {
                rc = kn_walk_dir(sub, rel, depth + 1, cb, data);
            } else if (errno != ENOENT && errno != ELOOP && errno != ENOTDIR) {
                rc = KN_EIO;
            }
        }
        free(rel);
    }
out:
    for (size_t i = 0; i < n; i++) {
        free(ents[i].name);
    }
    free(ents);
    if (dir) {
        closedir(dir);
    }
    return rc;
}

static int kn_source_dir_walk(struct kn_source *src, kn_source_walk_cb cb, void *data)
{
    struct kn_source_dir *d = (struct kn_source_dir *)src;
    int rc = 0;
    int fd = open(d->top, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (fd < 0) {
        rc = errno == ENOENT ? KN_ENOENT : KN_EIO;
        goto out;
    }
    rc = kn_walk_dir(fd, "", 0, cb, data);
out:
    return rc;
}

static void kn_source_dir_free(struct kn_source *src)
{
    struct kn_source_dir *d = (struct kn_source_dir *)src;

    free(d->top);
    free(d->base.name);
    free(d);
}

static const struct kn_source_ops kn_source_dir_ops = {
    .read = kn_source_dir_read,
    .walk = kn_source_dir_walk,
    .free = kn_source_dir_free,
};

int kn_source_dir_new(struct kn_source **out, const char *dir, struct kn_error *err)
{
    int rc = 0;
    char *top = NULL;
    struct stat st;
    struct kn_source_dir *d;

    *out = NULL;
    if (!dir || !*dir) {
        rc = kn_error_set(err, KN_EINVAL, NULL, "no folder given");
        goto out;
    }
    top = realpath(dir, NULL);
    if (!top) {
        if (errno == ENOENT || errno == ENOTDIR) {
            rc = kn_error_set(err, KN_ENOENT, NULL, "'%s' does not exist", dir);
        } else {
            rc = kn_error_set(err, KN_EIO, NULL, "cannot open '%s': %s", dir, strerror(errno));
        }
        goto out;
    }
    if (stat(top, &st) < 0 || !S_ISDIR(st.st_mode)) {
        rc = kn_error_set(err, KN_ENOENT, NULL, "'%s' is not a folder", dir);
        goto out;
    }
    d = kn_calloc(1, sizeof(*d));
    d->base.ops = &kn_source_dir_ops;
    d->base.name = kn_strdup(dir);
    d->top = top;
    d->top_len = strlen(top);
    top = NULL;
    *out = &d->base;
out:
    free(top);
    return rc;
}

void kn_source_free(struct kn_source *src)
{
    if (src) {
        src->ops->free(src);
    }
}

/* ---- discovery --------------------------------------------------------------------------- */

struct kn_discover {
    char **paths;
    size_t count;
    size_t cap;
};

static int kn_discover_cb(const char *relpath, void *data)
{
    struct kn_discover *dc = data;
    const char *slash = strrchr(relpath, '/');
    const char *last = slash ? slash + 1 : relpath;

    if (strcmp(last, KN_APP_CONFIG_FILE) == 0) {
        if (dc->count == dc->cap) {
            dc->cap = dc->cap ? dc->cap * 2 : 8;
            dc->paths = kn_reallocarray(dc->paths, dc->cap, sizeof(*dc->paths));
        }
        dc->paths[dc->count++] = kn_strdup(relpath);
    }
    return 0;
}

static int kn_discover_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int kn_app_discover(struct kn_source *src, char ***paths, size_t *count)
{
    int rc = 0;
    struct kn_discover dc = {0};

    *paths = NULL;
    *count = 0;
    if ((rc = src->ops->walk(src, kn_discover_cb, &dc)) < 0) {
        goto out;
    }
    /* Walks of other sources need not come out sorted. */
    if (dc.count > 0) {
        qsort(dc.paths, dc.count, sizeof(*dc.paths), kn_discover_cmp);
    }
    *paths = dc.paths;
    *count = dc.count;
    dc.paths = NULL;
    dc.count = 0;
out:
    for (size_t i = 0; i < dc.count; i++) {
        free(dc.paths[i]);
    }
    free(dc.paths);
    return rc;
}
