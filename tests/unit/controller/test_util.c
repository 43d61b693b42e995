/* Unit tests for controller/util: allocation and kn_buf, the error model, diagnostics, logging. */
#include "testutil.h"

#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kanaria/alloc.h"
#include "kanaria/error.h"
#include "kanaria/log.h"

/* 2026-11-25T19:40:01.123Z */
#define T_NOW_MS 1795635601123LL

/* ---- alloc ------------------------------------------------------------------------------- */

static void test_alloc_strings(void **state)
{
    (void)state;
    char *s = kn_asprintf("%s-%d", "web", 42);
    assert_string_equal(s, "web-42");
    free(s);

    s = kn_strndup("abcdef", 3);
    assert_string_equal(s, "abc");
    free(s);

    s = kn_strndup("ab", 10);
    assert_string_equal(s, "ab");
    free(s);

    s = kn_strdup("");
    assert_string_equal(s, "");
    free(s);

    int *v = kn_reallocarray(NULL, 1000, sizeof(int));
    v[999] = 7;
    v = kn_reallocarray(v, 2000, sizeof(int));
    assert_int_equal(v[999], 7);
    free(v);

    void *z = kn_malloc(0);
    assert_non_null(z);
    free(z);

    unsigned char *c = kn_calloc(16, 4);
    for (size_t i = 0; i < 64; i++) {
        assert_int_equal(c[i], 0);
    }
    free(c);
}

static void test_buf_grow(void **state)
{
    (void)state;
    struct kn_buf b;
    kn_buf_init(&b, KN_BUF_UNBOUNDED);
    assert_null(b.data);
    assert_int_equal(b.len, 0);

    for (int i = 0; i < 1000; i++) {
        assert_int_equal(kn_buf_addch(&b, (char)('a' + i % 26)), 0);
    }
    assert_int_equal(b.len, 1000);
    assert_int_equal(b.data[1000], '\0');
    assert_int_equal(b.data[27], 'b');

    kn_buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");

    assert_int_equal(kn_buf_adds(&b, "hello"), 0);
    assert_int_equal(kn_buf_add(&b, ", ", 2), 0);
    assert_int_equal(kn_buf_addf(&b, "%s #%d", "world", 1), 0);
    assert_string_equal(b.data, "hello, world #1");

    /* A formatted append larger than the spare room takes the second vsnprintf. */
    char big[300];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(kn_buf_addf(&b, "[%s]", big), 0);
    assert_int_equal(b.len, 15 + 2 + 299);
    assert_int_equal(b.data[b.len - 1], ']');
    assert_int_equal(b.data[b.len], '\0');

    size_t len = 0;
    char *s = kn_buf_detach(&b, &len);
    assert_int_equal(len, 316);
    assert_int_equal(strlen(s), 316);
    free(s);
    assert_null(b.data);
    assert_int_equal(b.len, 0);

    /* Detaching an empty buffer still gives a string. */
    s = kn_buf_detach(&b, &len);
    assert_string_equal(s, "");
    assert_int_equal(len, 0);
    free(s);
    kn_buf_release(&b);
}

static void test_buf_max(void **state)
{
    (void)state;
    struct kn_buf b;
    kn_buf_init(&b, 8);

    assert_int_equal(kn_buf_adds(&b, "12345"), 0);
    assert_int_equal(kn_buf_adds(&b, "6789"), KN_ETOOBIG);
    assert_string_equal(b.data, "12345");
    assert_int_equal(b.len, 5);

    assert_int_equal(kn_buf_addf(&b, "%d", 6789), KN_ETOOBIG);
    assert_string_equal(b.data, "12345");
    assert_int_equal(b.len, 5);

    /* Exactly max is allowed, one more is not. */
    assert_int_equal(kn_buf_addf(&b, "%d", 678), 0);
    assert_string_equal(b.data, "12345678");
    assert_int_equal(kn_buf_addch(&b, '9'), KN_ETOOBIG);
    assert_int_equal(kn_buf_add(&b, "", 0), 0);
    assert_int_equal(b.len, 8);

    /* A huge length must not wrap around the check. */
    assert_int_equal(kn_buf_add(&b, "x", (size_t)-1), KN_ETOOBIG);

    kn_buf_reset(&b);
    assert_int_equal(kn_buf_adds(&b, "abcdefgh"), 0);
    kn_buf_release(&b);
    assert_null(b.data);
    assert_int_equal(b.max, 8);

    struct kn_buf z;
    kn_buf_init(&z, 0);
    assert_int_equal(kn_buf_addch(&z, 'a'), KN_ETOOBIG);
    assert_int_equal(kn_buf_adds(&z, ""), 0);
    assert_string_equal(z.data, "");
    kn_buf_release(&z);
}

/* ---- errors ------------------------------------------------------------------------------ */

static void test_strerror_each_code(void **state)
{
    (void)state;
    struct {
        int code;
        const char *name;
        const char *msg;
    } codes[] = {
#define KN_XX(name, msg) {KN_E##name, "E" #name, msg},
        KN_ERRNO_MAP(KN_XX)
#undef KN_XX
    };
    size_t n = sizeof(codes) / sizeof(codes[0]);

    assert_int_equal(n, 15);
    for (size_t i = 0; i < n; i++) {
        assert_true(codes[i].code < 0);
        assert_string_equal(kn_strerror(codes[i].code), codes[i].msg);
        assert_string_equal(kn_err_name(codes[i].code), codes[i].name);
        for (size_t j = 0; j < i; j++) {
            assert_int_not_equal(codes[i].code, codes[j].code);
        }
    }
    assert_string_equal(kn_strerror(KN_EPARSE), "parse error");
    assert_string_equal(kn_strerror(KN_ENOENT), "no such file or directory");
    assert_string_equal(kn_err_name(KN_ELIMIT), "ELIMIT");
    assert_string_equal(kn_strerror(0), "unknown error");
    assert_string_equal(kn_strerror(12345), "unknown error");
    assert_string_equal(kn_strerror(KN__ELAST), "unknown error");
    assert_string_equal(kn_err_name(-1), "EUNKNOWN");
}

static void test_error_set_format(void **state)
{
    (void)state;
    struct kn_error err;
    char buf[600];
    kn_error_clear(&err);
    assert_int_equal(err.code, 0);

    struct kn_loc loc = {.file = "apps/web/app.kanaria.yaml", .line = 14, .col = 7};
    int rc = kn_error_set(&err, KN_ESCHEMA, &loc, "'%s' must be between 0 and 100, got %d",
                          "canary", 150);
    assert_int_equal(rc, KN_ESCHEMA);
    assert_int_equal(err.code, KN_ESCHEMA);
    assert_string_equal(kn_error_format(&err, buf, sizeof(buf)),
                        "apps/web/app.kanaria.yaml:14:7: 'canary' must be between 0 and 100, "
                        "got 150");

    loc.col = 0;
    kn_error_set(&err, KN_EPARSE, &loc, "bad");
    assert_string_equal(kn_error_format(&err, buf, sizeof(buf)),
                        "apps/web/app.kanaria.yaml:14: bad");

    loc.line = 0;
    kn_error_set(&err, KN_EIO, &loc, "cannot read");
    assert_string_equal(kn_error_format(&err, buf, sizeof(buf)),
                        "apps/web/app.kanaria.yaml: cannot read");

    kn_error_set(&err, KN_EINVAL, NULL, "no place");
    assert_string_equal(kn_error_format(&err, buf, sizeof(buf)), "no place");
    assert_int_equal(err.line, 0);
    assert_string_equal(err.file_buf, "");

    /* No message: the code's own text. */
    kn_error_set(&err, KN_ENOENT, NULL, "%s", "");
    assert_string_equal(kn_error_format(&err, buf, sizeof(buf)), "no such file or directory");

    /* A NULL err is allowed and the code still comes back. */
    assert_int_equal(kn_error_set(NULL, KN_ELIMIT, NULL, "x"), KN_ELIMIT);

    /* The file name is copied, and cut to fit. */
    char longname[400];
    memset(longname, 'f', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    loc.file = longname;
    loc.line = 1;
    kn_error_set(&err, KN_EPARSE, &loc, "x");
    assert_int_equal(strlen(err.file_buf), sizeof(err.file_buf) - 1);

    /* Formatting into a small buffer truncates, NUL-terminated. */
    loc.file = "a.yaml";
    loc.line = 3;
    loc.col = 5;
    kn_error_set(&err, KN_EPARSE, &loc, "mapping values are not allowed in this context");
    char small[10];
    assert_string_equal(kn_error_format(&err, small, sizeof(small)), "a.yaml:3:");
    assert_ptr_equal(kn_error_format(&err, small, 0), small);
}

static void test_diags_cap(void **state)
{
    (void)state;
    struct kn_diags d;
    char buf[256];
    kn_diags_init(&d, 3);

    struct kn_loc loc = {.file = "a.yaml", .line = 2, .col = 4};
    for (int i = 0; i < 5; i++) {
        kn_diags_add(&d, &loc, "problem %d", i);
        loc.line++;
    }
    kn_diags_add(&d, NULL, "no location");
    assert_int_equal(d.count, 3);
    assert_int_equal(d.dropped, 3);
    assert_int_equal(kn_diags_total(&d), 6);
    assert_string_equal(kn_diag_format(&d.items[0], buf, sizeof(buf)), "a.yaml:2:4: problem 0");
    assert_string_equal(kn_diag_format(&d.items[2], buf, sizeof(buf)), "a.yaml:4:4: problem 2");
    kn_diags_release(&d);
    assert_int_equal(d.count, 0);
    assert_int_equal(kn_diags_total(&d), 0);

    /* 0 means the default cap; a diagnostic without a file has no prefix. */
    kn_diags_init(&d, 0);
    assert_int_equal(d.max, KN_DIAGS_DEFAULT_MAX);
    for (int i = 0; i < KN_DIAGS_DEFAULT_MAX + 10; i++) {
        kn_diags_add(&d, NULL, "n%d", i);
    }
    assert_int_equal(d.count, KN_DIAGS_DEFAULT_MAX);
    assert_int_equal(d.dropped, 10);
    assert_null(d.items[0].file);
    assert_string_equal(kn_diag_format(&d.items[49], buf, sizeof(buf)), "n49");
    kn_diags_release(&d);

    /* The diagnostic owns its copies. */
    char file[] = "b.yaml";
    kn_diags_init(&d, 2);
    loc.file = file;
    kn_diags_add(&d, &loc, "x");
    file[0] = 'z';
    assert_string_equal(d.items[0].file, "b.yaml");
    kn_diags_release(&d);
}

/* ---- logging ----------------------------------------------------------------------------- */

static void test_log_logfmt(void **state)
{
    (void)state;
    char buf[512];

    int n = kn_log_format_line(buf, sizeof(buf), T_NOW_MS, KN_LOG_INFO, KN_LOG_LOGFMT,
                               "reconcile app=hello", "planned PIPELINE");
    assert_string_equal(buf, "time=2026-11-25T19:40:01.123Z level=info who=reconcile app=hello "
                             "msg=\"planned PIPELINE\"");
    assert_int_equal(n, (int)strlen(buf));

    /* NULL who speaks as kanaria; a value without specials is bare. */
    kn_log_format_line(buf, sizeof(buf), T_NOW_MS, KN_LOG_WARN, KN_LOG_LOGFMT, NULL, "ready");
    assert_string_equal(buf, "time=2026-11-25T19:40:01.123Z level=warn who=kanaria msg=ready");

    /* Quotes, =, control characters and backslashes inside quotes are escaped. */
    kn_log_format_line(buf, sizeof(buf), T_NOW_MS, KN_LOG_ERROR, KN_LOG_LOGFMT, "git",
                       "say \"hi\"\n\ta=b\\c\x01");
    assert_string_equal(buf, "time=2026-11-25T19:40:01.123Z level=error who=git "
                             "msg=\"say \\\"hi\\\"\\n\\ta=b\\\\c\\u0001\"");

    kn_log_format_line(buf, sizeof(buf), T_NOW_MS, KN_LOG_DEBUG, KN_LOG_LOGFMT, "x", "k=v");
    assert_string_equal(buf, "time=2026-11-25T19:40:01.123Z level=debug who=x msg=\"k=v\"");

    /* An empty message, a backslash alone needs no quotes, UTF-8 passes through. */
    kn_log_format_line(buf, sizeof(buf), T_NOW_MS, KN_LOG_INFO, KN_LOG_LOGFMT, "x", "");
    assert_string_equal(buf, "time=2026-11-25T19:40:01.123Z level=info who=x msg=\"\"");
    kn_log_format_line(buf, sizeof(buf), T_NOW_MS, KN_LOG_INFO, KN_LOG_LOGFMT, "x",
                       "C:\\dir caf\xc3\xa9");
    assert_string_equal(
        buf, "time=2026-11-25T19:40:01.123Z level=info who=x msg=\"C:\\\\dir caf\xc3\xa9\"");
    kn_log_format_line(buf, sizeof(buf), T_NOW_MS, KN_LOG_INFO, KN_LOG_LOGFMT, "x", "a\\b");
    assert_string_equal(buf, "time=2026-11-25T19:40:01.123Z level=info who=x msg=a\\b");

    /* Fields from the fragment: quoted values are re-quoted; reserved names cannot shadow. */
    kn_log_format_line(buf, sizeof(buf), T_NOW_MS, KN_LOG_INFO, KN_LOG_LOGFMT,
                       "stage app=\"my app\" deployment=42  msg=sneaky stage=ANALYSIS", "ok");
    assert_string_equal(buf, "time=2026-11-25T19:40:01.123Z level=info who=stage app=\"my app\" "
                             "deployment=42 stage=ANALYSIS msg=ok");

    /* A fragment that starts with a field keeps the default speaker. */
    kn_log_format_line(buf, sizeof(buf), T_NOW_MS, KN_LOG_INFO, KN_LOG_LOGFMT, "app=hello", "ok");
    assert_string_equal(buf, "time=2026-11-25T19:40:01.123Z level=info who=kanaria app=hello "
                             "msg=ok");

    /* Truncated at size - 1. */
    n = kn_log_format_line(buf, 20, T_NOW_MS, KN_LOG_INFO, KN_LOG_LOGFMT, "x", "y");
    assert_int_equal(n, 19);
    assert_string_equal(buf, "time=2026-11-25T19:");
    assert_int_equal(kn_log_format_line(buf, 0, T_NOW_MS, KN_LOG_INFO, KN_LOG_LOGFMT, "x", "y"), 0);

    /* Before the epoch the milliseconds still count up. */
    kn_log_format_line(buf, sizeof(buf), -1, KN_LOG_INFO, KN_LOG_LOGFMT, "x", "y");
    assert_string_equal(buf, "time=1969-12-31T23:59:59.999Z level=info who=x msg=y");
}

static void test_log_json(void **state)
{
    (void)state;
    char buf[1024];
    json_error_t jerr;

    int n = kn_log_format_line(buf, sizeof(buf), T_NOW_MS, KN_LOG_INFO, KN_LOG_JSON,
                               "reconcile app=hello deployment=42", "planned \"PIPELINE\"\n");
    assert_int_equal(n, (int)strlen(buf));
    json_t *j = json_loads(buf, 0, &jerr);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "time")), "2026-11-25T19:40:01.123Z");
    assert_string_equal(json_string_value(json_object_get(j, "level")), "info");
    assert_string_equal(json_string_value(json_object_get(j, "who")), "reconcile");
    assert_string_equal(json_string_value(json_object_get(j, "app")), "hello");
    assert_string_equal(json_string_value(json_object_get(j, "deployment")), "42");
    assert_string_equal(json_string_value(json_object_get(j, "msg")), "planned \"PIPELINE\"\n");
    assert_int_equal(json_object_size(j), 6);
    json_decref(j);
    /* Keys in a fixed order, so lines read the same as logfmt. */
    assert_true(strncmp(buf, "{\"time\":", 8) == 0);

    kn_log_format_line(buf, sizeof(buf), T_NOW_MS, KN_LOG_ERROR, KN_LOG_JSON, NULL,
                       "bad \xff byte");
    j = json_loads(buf, 0, &jerr);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "who")), "kanaria");
    assert_string_equal(json_string_value(json_object_get(j, "level")), "error");
    assert_string_equal(json_string_value(json_object_get(j, "msg")), "bad ? byte");
    json_decref(j);

    /* A message too long for the buffer is shortened so the line stays valid JSON. */
    char msg[600];
    memset(msg, 'm', sizeof(msg) - 1);
    msg[sizeof(msg) - 1] = '\0';
    char small[200];
    n = kn_log_format_line(small, sizeof(small), T_NOW_MS, KN_LOG_INFO, KN_LOG_JSON, "x a=b", msg);
    assert_true(n <= 199);
    assert_int_equal(n, (int)strlen(small));
    j = json_loads(small, 0, &jerr);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "a")), "b");
    assert_true(strlen(json_string_value(json_object_get(j, "msg"))) > 50);
    json_decref(j);
}

static void test_log_parse_and_levels(void **state)
{
    (void)state;
    enum kn_log_level level = KN_LOG_INFO;
    enum kn_log_format format = KN_LOG_LOGFMT;

    assert_int_equal(kn_log_level_parse("debug", &level), 0);
    assert_int_equal(level, KN_LOG_DEBUG);
    assert_int_equal(kn_log_level_parse("off", &level), 0);
    assert_int_equal(level, KN_LOG_OFF);
    assert_int_equal(kn_log_level_parse("warn", &level), 0);
    assert_int_equal(level, KN_LOG_WARN);
    assert_int_equal(kn_log_level_parse("verbose", &level), KN_EINVAL);
    assert_int_equal(level, KN_LOG_WARN);
    assert_int_equal(kn_log_level_parse(NULL, &level), KN_EINVAL);
    assert_int_equal(kn_log_format_parse("json", &format), 0);
    assert_int_equal(format, KN_LOG_JSON);
    assert_int_equal(kn_log_format_parse("logfmt", &format), 0);
    assert_int_equal(format, KN_LOG_LOGFMT);
    assert_int_equal(kn_log_format_parse("xml", &format), KN_EINVAL);

    assert_true(kn_log_enabled(KN_LOG_INFO));
    assert_false(kn_log_enabled(KN_LOG_DEBUG));
    kn_log_setup(KN_LOG_WARN, KN_LOG_LOGFMT);
    assert_false(kn_log_enabled(KN_LOG_INFO));
    assert_true(kn_log_enabled(KN_LOG_ERROR));
    kn_log_setup(KN_LOG_OFF, KN_LOG_LOGFMT);
    assert_false(kn_log_enabled(KN_LOG_ERROR));
    assert_false(kn_log_enabled(KN_LOG_OFF));
    kn_log_setup(KN_LOG_INFO, KN_LOG_LOGFMT);
}

/* Run kn_log_write with stderr pointed at a file and return what it wrote. */
static char *capture_stderr_log(enum kn_log_format format)
{
    char *dir = kn_test_tmpdir();
    char *path = kn_asprintf("%s/log", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    assert_true(dup2(fd, STDERR_FILENO) >= 0);

    kn_log_setup(KN_LOG_INFO, format);
    kn_log_debug("reconcile", "hidden %d", 1);
    kn_log_info("reconcile app=hello", "planned %s", "PIPELINE");

    assert_true(dup2(saved, STDERR_FILENO) >= 0);
    close(saved);
    kn_log_setup(KN_LOG_INFO, KN_LOG_LOGFMT);

    char text[1024];
    ssize_t n = pread(fd, text, sizeof(text) - 1, 0);
    assert_true(n > 0);
    text[n] = '\0';
    close(fd);
    kn_test_rmtree(dir);
    free(path);
    free(dir);
    return kn_strdup(text);
}

static void test_log_write(void **state)
{
    (void)state;
    char *text = capture_stderr_log(KN_LOG_LOGFMT);
    assert_true(strncmp(text, "time=", 5) == 0);
    assert_non_null(strstr(text, " level=info who=reconcile app=hello msg=\"planned PIPELINE\"\n"));
    assert_null(strstr(text, "hidden"));
    assert_ptr_equal(strchr(text, '\n'), text + strlen(text) - 1);
    free(text);

    text = capture_stderr_log(KN_LOG_JSON);
    assert_ptr_equal(strchr(text, '\n'), text + strlen(text) - 1);
    json_error_t jerr;
    json_t *j = json_loads(text, 0, &jerr);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "msg")), "planned PIPELINE");
    assert_string_equal(json_string_value(json_object_get(j, "app")), "hello");
    json_decref(j);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alloc_strings),
        cmocka_unit_test(test_buf_grow),
        cmocka_unit_test(test_buf_max),
        cmocka_unit_test(test_strerror_each_code),
        cmocka_unit_test(test_error_set_format),
        cmocka_unit_test(test_diags_cap),
        cmocka_unit_test(test_log_logfmt),
        cmocka_unit_test(test_log_json),
        cmocka_unit_test(test_log_parse_and_levels),
        cmocka_unit_test(test_log_write),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
