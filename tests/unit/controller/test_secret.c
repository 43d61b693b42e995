/*
 * Unit tests for controller/util/secret.c (kanaria/secret.h): the whole file less one line end,
 * bounded, refused with a message that names the file and never the content.
 */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kanaria/alloc.h"
#include "kanaria/error.h"
#include "kanaria/secret.h"

struct fx {
    char *dir;
    char *path;
};

static int setup(void **state)
{
    struct fx *f = kn_calloc(1, sizeof(*f));

    f->dir = kn_test_tmpdir();
    f->path = kn_asprintf("%s/secret", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    kn_test_rmtree(f->dir);
    free(f->path);
    free(f->dir);
    free(f);
    return 0;
}

static void write_bytes(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");

    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* Read path expecting code; on failure the message names the file and holds no `content`. */
static void expect(const char *path, unsigned flags, int code, const char *content,
                   const char *reason)
{
    struct kn_secret s = {0};
    struct kn_error err;

    kn_error_clear(&err);
    assert_int_equal(kn_secret_read(&s, path, flags, &err), code);
    assert_null(s.data);
    assert_int_equal(s.len, 0);
    assert_int_equal(err.code, code);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, reason));
    if (content) {
        assert_null(strstr(err.msg, content));
    }
}

static void test_one_line_end_trimmed(void **state)
{
    struct fx *f = *state;
    struct kn_secret s = {0};
    static const struct {
        const char *in;
        const char *out;
    } cases[] = {
        {"s3cret\n", "s3cret"},
        {"s3cret\r\n", "s3cret"},
        {"s3cret", "s3cret"},
        {"s3cret\n\n", "s3cret\n"}, /* one line end only */
        {" s3cret \n", " s3cret "}, /* white space is content */
        {"line1\nline2\n", "line1\nline2"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        write_bytes(f->path, cases[i].in, strlen(cases[i].in));
        assert_int_equal(kn_secret_read(&s, f->path, 0, NULL), 0);
        assert_string_equal(s.data, cases[i].out);
        assert_int_equal(s.len, strlen(cases[i].out));
        kn_secret_release(&s);
        assert_null(s.data);
        assert_int_equal(s.len, 0);
    }
    kn_secret_release(&s); /* empty: no-op */
}

static void test_reread_at_each_use(void **state)
{
    struct fx *f = *state;
    struct kn_secret s = {0};

    write_bytes(f->path, "old\n", 4);
    assert_int_equal(kn_secret_read(&s, f->path, 0, NULL), 0);
    assert_string_equal(s.data, "old");
    kn_secret_release(&s);
    write_bytes(f->path, "new\n", 4);
    assert_int_equal(kn_secret_read(&s, f->path, 0, NULL), 0);
    assert_string_equal(s.data, "new");
    kn_secret_release(&s);
}

static void test_bounded(void **state)
{
    struct fx *f = *state;
    struct kn_secret s = {0};
    char *big = kn_malloc(KN_SECRET_MAX + 2);

    /* exactly the bound, and the bound plus its line end, are read */
    memset(big, 'k', KN_SECRET_MAX + 1);
    write_bytes(f->path, big, KN_SECRET_MAX);
    assert_int_equal(kn_secret_read(&s, f->path, 0, NULL), 0);
    assert_int_equal(s.len, KN_SECRET_MAX);
    kn_secret_release(&s);
    big[KN_SECRET_MAX] = '\n';
    write_bytes(f->path, big, KN_SECRET_MAX + 1);
    expect(f->path, 0, KN_ETOOBIG, "kkkk", "larger than 65536 bytes");
    big[KN_SECRET_MAX] = 'k';
    write_bytes(f->path, big, KN_SECRET_MAX + 1);
    expect(f->path, 0, KN_ETOOBIG, "kkkk", "larger than 65536 bytes");
    free(big);
}

static void test_refused(void **state)
{
    struct fx *f = *state;
    char *missing = kn_asprintf("%s/missing", f->dir);

    expect(missing, 0, KN_ENOENT, NULL, "cannot open");
    write_bytes(f->path, "", 0);
    expect(f->path, 0, KN_EINVAL, NULL, "empty");
    write_bytes(f->path, "\n", 1);
    expect(f->path, 0, KN_EINVAL, NULL, "empty");
    /* a NUL would leave a shorter secret than the file holds */
    write_bytes(f->path, "top\0secret\n", 11);
    expect(f->path, 0, KN_EINVAL, "secret\n", "NUL");
    expect(f->path, 0, KN_EINVAL, "top", "NUL");
    /* a secret that goes into a header must be one line */
    write_bytes(f->path, "tok3n\nX-Injected: 1\n", 20);
    expect(f->path, KN_SECRET_LINE, KN_EINVAL, "tok3n", "more than one line");
    expect(f->path, KN_SECRET_LINE, KN_EINVAL, "Injected", "more than one line");
    write_bytes(f->path, "tok3n\rX\n", 8);
    expect(f->path, KN_SECRET_LINE, KN_EINVAL, "tok3n", "more than one line");
    /* a folder is not a secret file */
    expect(f->dir, 0, KN_EIO, NULL, "not a regular file");
    expect("", 0, KN_EINVAL, NULL, "no path");
    free(missing);
}

static void test_unreadable(void **state)
{
    struct fx *f = *state;

    if (geteuid() == 0) {
        skip(); /* root reads it anyway */
    }
    write_bytes(f->path, "hidden\n", 7);
    assert_int_equal(chmod(f->path, 0), 0);
    expect(f->path, 0, KN_EIO, "hidden", "Permission denied");
}

static void test_free_str(void **state)
{
    (void)state;
    kn_secret_free_str(NULL);
    kn_secret_free_str(kn_strdup("Authorization: Bearer x"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_one_line_end_trimmed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reread_at_each_use, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unreadable, setup, teardown),
        cmocka_unit_test(test_free_str),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
