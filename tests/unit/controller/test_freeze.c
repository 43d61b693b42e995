/* Unit tests of controller/freeze.c: cron schedules, time zones from tzdata (DST changes in
 * Europe/Berlin), when a window is open, until when and when it opens next, the located errors of
 * bad entries, and the gate with its exemptions (controller/gate.c). */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "freeze.h"
#include "gate.h"
#include "kanaria/alloc.h"
#include "kanaria/config.h"
#include "kanaria/error.h"
#include "kanaria/freeze.h"

static int setup(void **state)
{
    *state = kn_test_tmpdir();
    return 0;
}

static int teardown(void **state)
{
    kn_test_rmtree(*state);
    free(*state);
    return 0;
}

static long long at(const char *rfc3339)
{
    long long ms = 0;

    assert_int_equal(kn_rfc3339_parse(rfc3339, &ms), 0);
    return ms;
}

static struct kn_config *load(const char *dir, const char *yaml, struct kn_diags *diags)
{
    char *path = kn_asprintf("%s/kanaria.yaml", dir);
    struct kn_config *cfg = NULL;

    kn_test_write(dir, "kanaria.yaml", yaml);
    kn_config_load(&cfg, path, diags);
    free(path);
    return cfg;
}

/* kanaria.yaml with these freeze windows (YAML list items, indented by 2); must load. */
static struct kn_config *windows(const char *dir, const char *items)
{
    char *yaml = kn_asprintf("dataDir: /var/lib/kanaria\nfreezeWindows:\n%s", items);
    struct kn_diags diags;
    struct kn_config *cfg;
    char buf[1024];

    kn_diags_init(&diags, 0);
    cfg = load(dir, yaml, &diags);
    for (size_t i = 0; i < diags.count; i++) {
        fprintf(stderr, "    diag: %s\n", kn_diag_format(&diags.items[i], buf, sizeof(buf)));
    }
    assert_non_null(cfg);
    kn_diags_release(&diags);
    free(yaml);
    return cfg;
}

static const struct kn_freeze_window *window(const struct kn_config *cfg, size_t i)
{
    assert_true(i < cfg->freeze_windows.count);
    return (const struct kn_freeze_window *)cfg->freeze_windows.items + i;
}

static void assert_utc(long long ms, const char *want)
{
    char buf[32];

    kn_freeze_format_utc(ms, buf, sizeof(buf));
    assert_string_equal(buf, want);
}

/* w open at now, from `from` until `until` (UTC, RFC 3339). */
static void assert_open(const struct kn_freeze_window *w, const char *now, const char *from,
                        const char *until)
{
    struct kn_freeze_span s;

    assert_int_equal(kn_freeze_window_open(w, at(now), &s), 1);
    assert_utc(s.from_ms, from);
    assert_utc(s.until_ms, until);
}

static void assert_closed(const struct kn_freeze_window *w, const char *now)
{
    struct kn_freeze_span s;

    assert_int_equal(kn_freeze_window_open(w, at(now), &s), 0);
}

static void assert_next(const struct kn_freeze_window *w, const char *now, const char *from,
                        const char *until)
{
    struct kn_freeze_span s;

    assert_int_equal(kn_freeze_window_next(w, at(now), &s), 1);
    assert_utc(s.from_ms, from);
    assert_utc(s.until_ms, until);
}

static void test_cron_fields(void **state)
{
    struct kn_cron c;
    char why[256];

    (void)state;
    assert_int_equal(kn_cron_parse(&c, "*/15 9-17 * JAN,jul mon-fri", why, sizeof(why)), 0);
    assert_true(c.minutes == (1ULL << 0 | 1ULL << 15 | 1ULL << 30 | 1ULL << 45));
    assert_int_equal(c.hours, 0x3fe00); /* 9..17 */
    assert_true(c.days_any);
    assert_int_equal(c.months, 1u << 1 | 1u << 7);
    assert_int_equal(c.weekdays, 0x3e); /* MON..FRI */
    assert_int_equal(kn_cron_parse(&c, "0 0 * * 7", why, sizeof(why)), 0);
    assert_int_equal(c.weekdays, 1); /* 7 is Sunday */
    assert_int_equal(kn_cron_parse(&c, "5/20 0 1 * *", why, sizeof(why)), 0);
    assert_true(c.minutes == (1ULL << 5 | 1ULL << 25 | 1ULL << 45));

    assert_int_equal(kn_cron_parse(&c, "0 24 * * *", why, sizeof(why)), KN_EINVAL);
    assert_string_equal(why, "field 2 (hour): '24' is out of range 0-23");
    assert_int_equal(kn_cron_parse(&c, "0 0 32 * *", why, sizeof(why)), KN_EINVAL);
    assert_string_equal(why, "field 3 (day of month): '32' is out of range 1-31");
    assert_int_equal(kn_cron_parse(&c, "0 0 * FOO *", why, sizeof(why)), KN_EINVAL);
    assert_string_equal(why, "field 4 (month): 'FOO' is not a number or a month name (JAN-DEC)");
    assert_int_equal(kn_cron_parse(&c, "0 0 * * 5-2", why, sizeof(why)), KN_EINVAL);
    assert_string_equal(why, "field 5 (day of week): range '5-2' goes backwards");
    assert_int_equal(kn_cron_parse(&c, "*/0 0 * * *", why, sizeof(why)), KN_EINVAL);
    assert_string_equal(why, "field 1 (minute): step in '*/0' must be a number from 1 to 59");
    assert_int_equal(kn_cron_parse(&c, "0 18 * *", why, sizeof(why)), KN_EINVAL);
    assert_string_equal(why, "a schedule has 5 fields (minute hour day-of-month month "
                             "day-of-week), got 4");
    assert_int_equal(kn_cron_parse(&c, "0 1,,2 * * *", why, sizeof(why)), KN_EINVAL);
    assert_string_equal(why, "field 2 (hour): empty or overlong item in '1,,2'");
}

static void test_time_zone(void **state)
{
    struct kn_tz *tz = NULL;
    char why[512];

    (void)state;
    assert_int_equal(kn_tz_load(&tz, "Europe/Berlin", why, sizeof(why)), 0);
    assert_non_null(tz);
    assert_int_equal(kn_tz_offset(tz, at("2026-12-08T08:00:00Z") / 1000), 3600);
    assert_int_equal(kn_tz_offset(tz, at("2026-07-01T08:00:00Z") / 1000), 7200);
    /* the changes of 2026: 29 March 01:00Z and 25 October 01:00Z */
    assert_int_equal(kn_tz_offset(tz, at("2026-03-29T00:59:59Z") / 1000), 3600);
    assert_int_equal(kn_tz_offset(tz, at("2026-03-29T01:00:00Z") / 1000), 7200);
    assert_int_equal(kn_tz_offset(tz, at("2026-10-25T00:59:59Z") / 1000), 7200);
    assert_int_equal(kn_tz_offset(tz, at("2026-10-25T01:00:00Z") / 1000), 3600);
    /* past the file's transitions, from its POSIX rule */
    assert_int_equal(kn_tz_offset(tz, at("2090-07-01T00:00:00Z") / 1000), 7200);
    assert_int_equal(kn_tz_offset(tz, at("2090-12-01T00:00:00Z") / 1000), 3600);
    kn_tz_free(tz);

    assert_int_equal(kn_tz_load(&tz, "UTC", why, sizeof(why)), 0);
    assert_null(tz);
    assert_int_equal(kn_tz_load(&tz, "Europe/Berln", why, sizeof(why)), KN_ENOENT);
    assert_non_null(strstr(why, "unknown time zone 'Europe/Berln'"));
    assert_int_equal(kn_tz_load(&tz, "../../etc/passwd", why, sizeof(why)), KN_EINVAL);
    assert_string_equal(why, "'../../etc/passwd' is not a time zone name (Area/City, as "
                             "Europe/Berlin)");
}

/* The weekend freeze of the README: Friday 18:00 Berlin time for 64 hours. */
static void test_weekly_window_berlin(void **state)
{
    struct kn_config *cfg = windows(*state, "  - name: weekend\n"
                                            "    schedule: \"0 18 * * 5\"\n"
                                            "    duration: 64h\n"
                                            "    timeZone: Europe/Berlin\n");
    const struct kn_freeze_window *w = window(cfg, 0);
    char buf[96];

    assert_closed(w, "2026-12-11T16:59:59Z");
    assert_open(w, "2026-12-11T17:00:00Z", "2026-12-11T17:00:00Z", "2026-12-14T09:00:00Z");
    assert_open(w, "2026-12-13T23:30:00Z", "2026-12-11T17:00:00Z", "2026-12-14T09:00:00Z");
    assert_closed(w, "2026-12-14T09:00:00Z");
    assert_next(w, "2026-12-12T00:00:00Z", "2026-12-18T17:00:00Z", "2026-12-21T09:00:00Z");
    assert_next(w, "2026-12-14T09:00:00Z", "2026-12-18T17:00:00Z", "2026-12-21T09:00:00Z");
    kn_freeze_format_local(w, at("2026-12-14T09:00:00Z"), buf, sizeof(buf));
    assert_string_equal(buf, "2026-12-14 10:00 Europe/Berlin");
    /* in summer the same wall time is an hour earlier in UTC */
    assert_open(w, "2026-07-11T12:00:00Z", "2026-07-10T16:00:00Z", "2026-07-13T08:00:00Z");
    /* across the change of 25 October: opens 18:00 CEST; a duration is elapsed time, so 64h
     * later the clock that went back an hour shows 09:00 CET */
    assert_open(w, "2026-10-24T12:00:00Z", "2026-10-23T16:00:00Z", "2026-10-26T08:00:00Z");
    kn_config_free(cfg);
}

static void test_dst_changes(void **state)
{
    struct kn_config *cfg = windows(*state, "  - name: nightly\n"
                                            "    schedule: \"0 1 * * *\"\n"
                                            "    duration: 2h\n"
                                            "    timeZone: Europe/Berlin\n"
                                            "  - name: skipped\n"
                                            "    schedule: \"30 2 29 3 *\"\n"
                                            "    duration: 1h\n"
                                            "    timeZone: Europe/Berlin\n"
                                            "  - name: repeated\n"
                                            "    schedule: \"30 2 25 10 *\"\n"
                                            "    duration: 1h\n"
                                            "    timeZone: Europe/Berlin\n");

    /* 01:00 CET is 00:00Z; the day after the change 01:00 CEST is 23:00Z */
    assert_next(window(cfg, 0), "2026-03-28T12:00:00Z", "2026-03-29T00:00:00Z",
                "2026-03-29T02:00:00Z");
    assert_next(window(cfg, 0), "2026-03-29T03:00:00Z", "2026-03-29T23:00:00Z",
                "2026-03-30T01:00:00Z");
    /* 02:30 does not exist on 29 March: it opens at 03:30 CEST */
    assert_next(window(cfg, 1), "2026-03-01T00:00:00Z", "2026-03-29T01:30:00Z",
                "2026-03-29T02:30:00Z");
    /* 02:30 happens twice on 25 October: the first, CEST */
    assert_next(window(cfg, 2), "2026-10-01T00:00:00Z", "2026-10-25T00:30:00Z",
                "2026-10-25T01:30:00Z");
    kn_config_free(cfg);
}

static void test_window_spans_midnight(void **state)
{
    struct kn_config *cfg = windows(*state, "  - name: night\n"
                                            "    schedule: \"0 22 * * *\"\n"
                                            "    duration: 4h\n"
                                            "  - name: quarter\n"
                                            "    schedule: \"*/15 * * * *\"\n"
                                            "    duration: 20m\n"
                                            "  - name: friday13\n"
                                            "    schedule: \"0 0 13 * 5\"\n"
                                            "    duration: 1h\n");

    assert_open(window(cfg, 0), "2026-12-08T01:00:00Z", "2026-12-07T22:00:00Z",
                "2026-12-08T02:00:00Z");
    assert_closed(window(cfg, 0), "2026-12-08T02:00:00Z");
    assert_open(window(cfg, 0), "2026-12-31T23:59:00Z", "2026-12-31T22:00:00Z",
                "2027-01-01T02:00:00Z");
    /* openings that run into each other are one span, up to the last one's end */
    assert_open(window(cfg, 1), "2026-12-08T01:00:00Z", "2026-12-08T00:45:00Z",
                "2026-12-08T17:05:00Z");
    /* both day fields restricted: either matches (Fri 11 Dec, then Sun 13 Dec) */
    assert_next(window(cfg, 2), "2026-12-08T00:00:00Z", "2026-12-11T00:00:00Z",
                "2026-12-11T01:00:00Z");
    assert_next(window(cfg, 2), "2026-12-11T00:00:00Z", "2026-12-13T00:00:00Z",
                "2026-12-13T01:00:00Z");
    kn_config_free(cfg);
}

static void test_fixed_window(void **state)
{
    struct kn_config *cfg = windows(*state, "  - name: xmas\n"
                                            "    from: 2026-12-24T00:00:00+01:00\n"
                                            "    to: \"2026-12-27T00:00:00.5+01:00\"\n"
                                            "    timeZone: Europe/Berlin\n");
    const struct kn_freeze_window *w = window(cfg, 0);
    char buf[96];

    assert_closed(w, "2026-12-23T22:59:59Z");
    assert_open(w, "2026-12-23T23:00:00Z", "2026-12-23T23:00:00Z", "2026-12-26T23:00:00Z");
    assert_next(w, "2026-12-01T00:00:00Z", "2026-12-23T23:00:00Z", "2026-12-26T23:00:00Z");
    assert_int_equal(w->to_ms % 1000, 500);
    kn_freeze_format_local(w, w->from_ms, buf, sizeof(buf));
    assert_string_equal(buf, "2026-12-24 00:00 Europe/Berlin");
    kn_config_free(cfg);
}

/* Every bad entry is a located error that says what is wrong. */
static void test_bad_entries(void **state)
{
    const char *yaml = "dataDir: /var/lib/kanaria\n"
                       "freezeWindows:\n"
                       "  - name: a\n"                  /* 3 */
                       "    schedule: \"0 25 * * 5\"\n" /* 4 */
                       "    duration: 1h\n"
                       "  - name: b\n" /* 6 */
                       "    schedule: \"0 18 * * 5\"\n"
                       "    duration: 0s\n"             /* 8 */
                       "    timeZone: Europe/Nowhere\n" /* 9 */
                       "  - name: c\n"                  /* 10 */
                       "    from: 2026-12-24T00:00:00Z\n"
                       "    to: 2026-12-23T00:00:00Z\n" /* 12 */
                       "  - name: d\n"                  /* 13 */
                       "    schedule: \"0 18 * * 5\"\n"
                       "    duration: 1h\n"
                       "    from: 2026-12-24T00:00:00Z\n" /* 16 */
                       "  - name: a\n"                    /* 17 */
                       "    from: yesterday\n"            /* 18 */
                       "    to: 2026-12-23T00:00:00Z\n"
                       "  - name: f\n"                  /* 20 */
                       "    schedule: \"0 0 30 2 *\"\n" /* 21 */
                       "    duration: 1h\n";
    const char *want[] = {
        "kanaria.yaml:4:15: freezeWindows[0]: 'schedule' '0 25 * * 5': field 2 (hour): '25' is "
        "out of range 0-23",
        "kanaria.yaml:9:15: freezeWindows[1]: 'timeZone': unknown time zone 'Europe/Nowhere'",
        "kanaria.yaml:8:15: freezeWindows[1]: 'duration' must be more than 0, got '0s'",
        "kanaria.yaml:12:9: freezeWindows[2]: 'to' (2026-12-23T00:00:00Z) must be after 'from' "
        "(2026-12-24T00:00:00Z)",
        "kanaria.yaml:16:11: freezeWindows[3]: 'schedule' and 'from' cannot both be set: a "
        "window is recurring (schedule, duration) or fixed (from, to)",
        "kanaria.yaml:18:11: freezeWindows[4]: 'from' must be an RFC 3339 time "
        "(2026-12-24T00:00:00+01:00), got 'yesterday'",
        "kanaria.yaml:21:15: freezeWindows[5]: 'schedule' '0 0 30 2 *' never opens (no such day "
        "in the next 5 years)",
        "kanaria.yaml:17:11: freezeWindows[4]: 'name' must be unique, 'a' is already used at "
        "line 3",
    };
    struct kn_diags diags;
    struct kn_config *cfg;
    char buf[1024];

    kn_diags_init(&diags, 0);
    cfg = load(*state, yaml, &diags);
    assert_null(cfg);
    for (size_t i = 0; i < diags.count; i++) {
        fprintf(stderr, "    diag: %s\n", kn_diag_format(&diags.items[i], buf, sizeof(buf)));
    }
    assert_int_equal(diags.count, sizeof(want) / sizeof(want[0]));
    for (size_t i = 0; i < diags.count; i++) {
        char *expected = kn_asprintf("%s/%s", (char *)*state, want[i]);
        kn_diag_format(&diags.items[i], buf, sizeof(buf));
        /* the unknown zone's message ends with the path tried and the system's words */
        assert_int_equal(strncmp(buf, expected, strlen(expected)), 0);
        free(expected);
    }
    kn_diags_release(&diags);
}

static struct kn_deployment deployment(const char *repo, const char *app, const char *trigger,
                                       const char *message)
{
    static char text[256]; /* valid until the next call */
    struct kn_deployment d;

    memset(&d, 0, sizeof(d));
    snprintf(d.repo, sizeof(d.repo), "%s", repo);
    snprintf(d.app, sizeof(d.app), "%s", app);
    snprintf(d.trigger, sizeof(d.trigger), "%s", trigger);
    snprintf(text, sizeof(text), "%s", message);
    d.message = text;
    return d;
}

/* The gate holds what a window covers, by app glob and repository, and lets exemptions pass. */
static void test_gate(void **state)
{
    struct kn_config *cfg = windows(*state, "  - name: weekend\n"
                                            "    schedule: \"0 18 * * 5\"\n"
                                            "    duration: 64h\n"
                                            "    timeZone: Europe/Berlin\n"
                                            "    apps: [\"web-*\"]\n"
                                            "    repositories: [deploy]\n");
    struct kn_gates gates = {.cfg = cfg};
    struct kn_gate_verdict v;
    struct kn_deployment d = deployment("deploy", "web-api", "commit", "add a feature");
    long long now = at("2026-12-12T12:00:00Z");

    kn_freeze_gate(cfg, &d, NULL, now, &v);
    assert_int_equal(v.status, KN_DEPLOY_FROZEN);
    assert_string_equal(v.reason, "freeze window 'weekend' is open until 2026-12-14 10:00 "
                                  "Europe/Berlin (2026-12-14T09:00:00Z)");
    assert_true(v.recheck_at_ms == at("2026-12-14T09:00:00Z"));
    kn_freeze_gate(cfg, &d, NULL, at("2026-12-14T09:00:00Z"), &v);
    assert_int_equal(v.status, KN_DEPLOY_RUNNING);

    /* not covered: another app, another repository */
    d = deployment("deploy", "worker", "commit", "x");
    kn_freeze_gate(cfg, &d, NULL, now, &v);
    assert_int_equal(v.status, KN_DEPLOY_RUNNING);
    d = deployment("other", "web-api", "commit", "x");
    kn_freeze_gate(cfg, &d, NULL, now, &v);
    assert_int_equal(v.status, KN_DEPLOY_RUNNING);

    /* through the dispatcher: held, and a rollback and a hotfix pass with why */
    d = deployment("deploy", "web-api", "commit", "add a feature");
    kn_gates_check(&gates, &d, NULL, now, &v);
    assert_int_equal(v.status, KN_DEPLOY_FROZEN);
    d = deployment("deploy", "web-api", "rollback by alice", "add a feature");
    kn_gates_check(&gates, &d, NULL, now, &v);
    assert_int_equal(v.status, KN_DEPLOY_RUNNING);
    assert_string_equal(v.reason, "passed the gates as a rollback; without that: freeze window "
                                  "'weekend' is open until 2026-12-14 10:00 Europe/Berlin "
                                  "(2026-12-14T09:00:00Z)");
    d = deployment("deploy", "web-api", "commit", "fix the login [kanaria hotfix]");
    kn_gates_check(&gates, &d, NULL, now, &v);
    assert_int_equal(v.status, KN_DEPLOY_RUNNING);
    assert_non_null(strstr(v.reason, "passed the gates as a hotfix"));
    d = deployment("deploy", "web-api", "self-heal", "x");
    kn_gates_check(&gates, &d, NULL, now, &v);
    assert_int_equal(v.status, KN_DEPLOY_RUNNING);
    assert_non_null(strstr(v.reason, "passed the gates as a self-heal"));
    kn_config_free(cfg);
}

/* Active and next over kanaria.yaml's windows and the app's own. */
static void test_active_and_next(void **state)
{
    struct kn_config *cfg = windows(*state, "  - name: weekend\n"
                                            "    schedule: \"0 18 * * 5\"\n"
                                            "    duration: 64h\n"
                                            "    timeZone: Europe/Berlin\n"
                                            "  - name: xmas\n"
                                            "    from: 2026-12-12T00:00:00Z\n"
                                            "    to: 2026-12-20T00:00:00Z\n"
                                            "    apps: [shop]\n");
    struct kn_freeze_span s;

    assert_int_equal(kn_freeze_active(cfg, NULL, "deploy", "web", at("2026-12-12T12:00:00Z"), &s),
                     1);
    assert_string_equal(s.window->name, "weekend");
    /* two open: the one that ends last */
    assert_int_equal(kn_freeze_active(cfg, NULL, "deploy", "shop", at("2026-12-12T12:00:00Z"), &s),
                     1);
    assert_string_equal(s.window->name, "xmas");
    /* next: the one that opens first */
    assert_int_equal(kn_freeze_next(cfg, NULL, "deploy", "shop", at("2026-12-08T12:00:00Z"), &s),
                     1);
    assert_string_equal(s.window->name, "weekend");
    assert_utc(s.from_ms, "2026-12-11T17:00:00Z");
    assert_int_equal(kn_freeze_next(cfg, NULL, "deploy", "shop", at("2026-12-11T18:00:00Z"), &s),
                     1);
    assert_string_equal(s.window->name, "xmas");
    assert_int_equal(kn_freeze_active(cfg, NULL, "deploy", "web", at("2026-12-15T12:00:00Z"), &s),
                     0);
    kn_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cron_fields),
        cmocka_unit_test(test_time_zone),
        cmocka_unit_test_setup_teardown(test_weekly_window_berlin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dst_changes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_window_spans_midnight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fixed_window, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_entries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_active_and_next, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
