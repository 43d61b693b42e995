/* Unit tests for controller/util/selfmetrics.c: counters, gauges and histograms in a registry,
 * their text, and the process metrics read from a /proc folder. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kanaria/alloc.h"
#include "kanaria/selfmetrics.h"

/* The whole line `line` is in text. */
static void expect_line(const char *text, const char *line)
{
    size_t n = strlen(line);

    for (const char *p = text; (p = strstr(p, line)) != NULL; p++) {
        if ((p == text || p[-1] == '\n') && p[n] == '\n') {
            return;
        }
    }
    fail_msg("no line '%s' in:\n%s", line, text);
}

static char *render(struct kn_selfmetrics *m)
{
    struct kn_buf out;
    size_t len;

    kn_buf_init(&out, KN_BUF_UNBOUNDED);
    kn_selfmetrics_render(m, &out);

    return kn_buf_detach(&out, &len);
}

static void test_counters_and_gauges(void **state)
{
    struct kn_selfmetrics *m = kn_selfmetrics_new();
    char *text;

    (void)state;
    kn_selfmetrics_add(m, KN_SM_FETCH_FAILURES, "deploy", NULL, 1);
    kn_selfmetrics_add(m, KN_SM_FETCH_FAILURES, "deploy", NULL, 1);
    kn_selfmetrics_add(m, KN_SM_FETCH_FAILURES, "other", NULL, 1);
    kn_selfmetrics_add(m, KN_SM_FETCH_FAILURES, "deploy", NULL, -5); /* a counter only grows */
    kn_selfmetrics_add(m, KN_SM_NOTIFY_DELIVERIES, "ops", "sent", 3);
    kn_selfmetrics_add(m, KN_SM_NOTIFY_DELIVERIES, "ops", "given_up", 1);
    kn_selfmetrics_set(m, KN_SM_NOTIFY_QUEUE, "o\"p\\s\n", NULL, 7);
    kn_selfmetrics_set(m, KN_SM_ENGINE_QUEUE, "ignored", NULL, 4);
    kn_selfmetrics_set(m, KN_SM_ENGINE_QUEUE, NULL, NULL, 2);
    kn_selfmetrics_set(m, KN_SM_FETCH_FAILURES, "deploy", NULL, 100); /* wrong kind: nothing */
    kn_selfmetrics_observe(m, KN_SM_WEBHOOK, "accepted", NULL, 1);     /* wrong kind: nothing */
    text = render(m);
    expect_line(text, "# HELP kanaria_git_fetch_failures_total Fetches of the repository (or the "
                      "planning of their head) that failed, since kanaria started.");
    expect_line(text, "# TYPE kanaria_git_fetch_failures_total counter");
    expect_line(text, "kanaria_git_fetch_failures_total{repo=\"deploy\"} 2");
    expect_line(text, "kanaria_git_fetch_failures_total{repo=\"other\"} 1");
    expect_line(text, "kanaria_notification_deliveries_total{notification=\"ops\",result=\"sent\"} 3");
    expect_line(text,
                "kanaria_notification_deliveries_total{notification=\"ops\",result=\"given_up\"} 1");
    expect_line(text, "kanaria_notification_queue_depth{notification=\"o\\\"p\\\\s\\n\"} 7");
    expect_line(text, "# TYPE kanaria_engine_queue_depth gauge");
    expect_line(text, "kanaria_engine_queue_depth 2");
    expect_line(text, "# TYPE kanaria_webhook_deliveries_total counter");
    assert_null(strstr(text, "kanaria_webhook_deliveries_total{"));
    assert_null(strstr(text, "100"));
    free(text);
    kn_selfmetrics_free(m);
}

/* The one escaping of label values, which GET /metrics uses for its own series too. */
static void test_label_value(void **state)
{
    struct kn_buf out;

    (void)state;
    kn_buf_init(&out, KN_BUF_UNBOUNDED);
    kn_selfmetrics_label_value(&out, "a\"b\\c\nd");
    assert_string_equal(out.data, "a\\\"b\\\\c\\nd");
    kn_buf_release(&out);
}

static void test_histogram(void **state)
{
    struct kn_selfmetrics *m = kn_selfmetrics_new();
    char *text;

    (void)state;
    kn_selfmetrics_observe(m, KN_SM_FETCH_DURATION, "deploy", NULL, 0.2);
    kn_selfmetrics_observe(m, KN_SM_FETCH_DURATION, "deploy", NULL, 0.25); /* le is inclusive */
    kn_selfmetrics_observe(m, KN_SM_FETCH_DURATION, "deploy", NULL, 3);
    kn_selfmetrics_observe(m, KN_SM_FETCH_DURATION, "deploy", NULL, 1000);
    text = render(m);
    expect_line(text, "# TYPE kanaria_git_fetch_duration_seconds histogram");
    expect_line(text, "kanaria_git_fetch_duration_seconds_bucket{repo=\"deploy\",le=\"0.1\"} 0");
    expect_line(text, "kanaria_git_fetch_duration_seconds_bucket{repo=\"deploy\",le=\"0.25\"} 2");
    expect_line(text, "kanaria_git_fetch_duration_seconds_bucket{repo=\"deploy\",le=\"2.5\"} 2");
    expect_line(text, "kanaria_git_fetch_duration_seconds_bucket{repo=\"deploy\",le=\"5\"} 3");
    expect_line(text, "kanaria_git_fetch_duration_seconds_bucket{repo=\"deploy\",le=\"300\"} 3");
    expect_line(text, "kanaria_git_fetch_duration_seconds_bucket{repo=\"deploy\",le=\"+Inf\"} 4");
    expect_line(text, "kanaria_git_fetch_duration_seconds_sum{repo=\"deploy\"} 1003.45");
    expect_line(text, "kanaria_git_fetch_duration_seconds_count{repo=\"deploy\"} 4");
    free(text);
    kn_selfmetrics_free(m);
}

/* The process registry is made at first use and is what NULL means. */
static void test_process_registry(void **state)
{
    char *text;

    (void)state;
    kn_selfmetrics_add(NULL, KN_SM_WEBHOOK, "bad_signature", NULL, 1);
    text = render(kn_selfmetrics_process());
    expect_line(text, "kanaria_webhook_deliveries_total{result=\"bad_signature\"} 1");
    free(text);
    kn_selfmetrics_process_release();
    text = render(NULL);
    assert_null(strstr(text, "bad_signature\"}"));
    free(text);
    kn_selfmetrics_process_release();
}

static void test_process_metrics(void **state)
{
    char *dir = kn_test_tmpdir(), *proc, *stat;
    long ticks = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    struct kn_buf out;
    char line[256];

    (void)state;
    /* a command with spaces and a parenthesis; utime 250 + stime 150 ticks, start 1000 ticks
     * after boot, 300 pages resident */
    kn_test_write(dir, "p/stat", "42 (kan aria) x) S 1 42 42 0 -1 4194560 100 0 0 0 250 150 0 0 "
                                 "20 0 1 0 1000 123456 300 18446744073709551615\n");
    kn_test_write(dir, "stat", "cpu  1 2 3\nbtime 1700000000\nprocesses 9\n");
    kn_test_write(dir, "p/fd/0", "");
    kn_test_write(dir, "p/fd/1", "");
    kn_test_write(dir, "p/fd/7", "");
    proc = kn_asprintf("%s/p", dir);
    stat = kn_asprintf("%s/stat", dir);
    kn_buf_init(&out, KN_BUF_UNBOUNDED);
    kn_selfmetrics_render_process(&out, proc, stat);
    snprintf(line, sizeof(line), "process_cpu_seconds_total %.15g", 400.0 / (double)ticks);
    expect_line(out.data, line);
    expect_line(out.data, "# TYPE process_cpu_seconds_total counter");
    snprintf(line, sizeof(line), "process_resident_memory_bytes %.15g", 300.0 * (double)page);
    expect_line(out.data, line);
    snprintf(line, sizeof(line), "process_start_time_seconds %.15g",
             1700000000.0 + 1000.0 / (double)ticks);
    expect_line(out.data, line);
    expect_line(out.data, "process_open_fds 3");
    kn_buf_release(&out);

    /* the real process: every one of the four is there */
    kn_buf_init(&out, KN_BUF_UNBOUNDED);
    kn_selfmetrics_render_process(&out, "/proc/self", "/proc/stat");
    assert_non_null(strstr(out.data, "\nprocess_cpu_seconds_total "));
    assert_non_null(strstr(out.data, "\nprocess_resident_memory_bytes "));
    assert_non_null(strstr(out.data, "\nprocess_start_time_seconds "));
    assert_non_null(strstr(out.data, "\nprocess_open_fds "));
    kn_buf_release(&out);

    /* nothing readable: nothing written */
    kn_buf_init(&out, KN_BUF_UNBOUNDED);
    kn_selfmetrics_render_process(&out, stat, stat);
    assert_int_equal(out.len, 0);
    kn_buf_release(&out);
    kn_test_rmtree(dir);
    free(proc);
    free(stat);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counters_and_gauges),
        cmocka_unit_test(test_label_value),
        cmocka_unit_test(test_histogram),
        cmocka_unit_test(test_process_registry),
        cmocka_unit_test(test_process_metrics),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
