/*
 * kanaria — freeze windows: when deployments must not start.
 *
 * A window is recurring (a 5-field cron `schedule` that opens it, a `duration`, a `timeZone`
 * the schedule is read in) or fixed (`from` and `to`, RFC 3339). kanaria.yaml's `freezeWindows`
 * also say which apps (globs of app names) and repositories they cover; an app's own
 * `spec.freezeWindows` cover that app. The gate that holds deployments in them is
 * controller/freeze.h.
 *
 * Time zones come from the system's tzdata (TZif files under /usr/share/zoneinfo, or $TZDIR),
 * read by a small reader of our own into the window: glibc converts local times only in the
 * process-wide zone (TZ), and switching TZ races with every getenv of the other threads (libcurl,
 * libgit2), so it is never touched. A zone's rule past the file's last transition (its POSIX TZ
 * footer, "CET-1CEST,M3.5.0,M10.5.0/3") is read from the file too.
 *
 * Cron: minute hour day-of-month month day-of-week; numbers, `*`, ranges `a-b`, lists `a,b`,
 * steps `*\/n` and `a-b/n`, month and day names (JAN, MON); day of week 0-7 (0 and 7 Sunday).
 * When both day fields are restricted, either matches (as cron does). A start in the hour that a
 * DST change skips opens at the same wall time after the change (02:30 -> 03:30 CEST); a start
 * in the hour that repeats opens at its first occurrence.
 */
#ifndef KANARIA_FREEZE_WINDOW_H
#define KANARIA_FREEZE_WINDOW_H

#include <stddef.h>
#include <stdint.h>

#include "kanaria/schema.h"

/* The longest duration of a recurring window. */
#define KN_FREEZE_MAX_DURATION_MS (90LL * 24 * 3600 * 1000)

/* A parsed schedule: bit i of each field set when value i matches. */
struct kn_cron {
    uint64_t minutes;  /* 0-59 */
    uint32_t hours;    /* 0-23 */
    uint32_t days;     /* 1-31 */
    uint32_t months;   /* 1-12 */
    uint32_t weekdays; /* 0-6, 0 Sunday */
    int days_any;      /* the day-of-month field is `*` */
    int weekdays_any;  /* the day-of-week field is `*` */
};

/* A time zone read from tzdata (opaque). */
struct kn_tz;

struct kn_freeze_window {
    uint64_t set;
    char *name;
    char *schedule; /* recurring: the cron as written, or NULL */
    long long duration_ms;
    char *time_zone; /* as written; NULL: UTC */
    char *from;      /* fixed: RFC 3339 as written, or NULL */
    char *to;
    struct kn_strlist apps;         /* kanaria.yaml only: globs of app names; empty: all */
    struct kn_strlist repositories; /* kanaria.yaml only: repository names; empty: all */
    /* Filled by the schema's check hook when the entry is valid: */
    struct kn_cron cron;
    long long from_ms, to_ms; /* fixed window, ms since the epoch */
    struct kn_tz *tz;         /* owned; NULL: UTC */
};

/* `freezeWindows[]` of kanaria.yaml, and `spec.freezeWindows[]` of an app (no apps or
 * repositories). Every problem is a located error: a cron field that is wrong (which field and
 * why), an unknown time zone, `to` not after `from`, a duration of 0, both schedule and from. */
extern const struct kn_schema kn_freeze_window_schema;
extern const struct kn_schema kn_freeze_app_window_schema;

/* Each window's `name` is unique in the list `windows` parsed from the sequence `seq` (at `key`,
 * "freezeWindows"): the second use is a located error naming the line of the first. */
void kn_freeze_check_unique(struct kn_schema_ctx *ctx, const struct kn_node *seq,
                            const struct kn_list *windows, const char *key);

/* Parse a 5-field cron into *out: 0, or KN_EINVAL with why ("field 2 (hour): '24' is out of
 * range 0-23"). */
int kn_cron_parse(struct kn_cron *out, const char *s, char *why, size_t size);

/* Read time zone `name` ("Europe/Berlin") from tzdata: 0 and *out (kn_tz_free; NULL for UTC), or
 * KN_EINVAL / KN_ENOENT with why. */
int kn_tz_load(struct kn_tz **out, const char *name, char *why, size_t size);
void kn_tz_free(struct kn_tz *tz);

/* Seconds east of UTC in zone tz (NULL: UTC) at t seconds since the epoch. */
long kn_tz_offset(const struct kn_tz *tz, long long t);

/* One opening of a window: [from_ms, until_ms). */
struct kn_freeze_span {
    const struct kn_freeze_window *window; /* borrowed */
    long long from_ms;
    long long until_ms;
};

/* Whether w is open at now_ms: 1 with the span (a recurring window whose next opening starts
 * before the end runs on to that one's end), else 0. */
int kn_freeze_window_open(const struct kn_freeze_window *w, long long now_ms,
                          struct kn_freeze_span *out);

/* The next opening of w that starts after now_ms: 1 with the span, 0 when there is none (in the
 * next 5 years). */
int kn_freeze_window_next(const struct kn_freeze_window *w, long long now_ms,
                          struct kn_freeze_span *out);

/* ms in w's zone: "2026-12-08 09:00 Europe/Berlin" ("... UTC" without a zone). */
void kn_freeze_format_local(const struct kn_freeze_window *w, long long ms, char *buf, size_t size);

/* ms as RFC 3339 in UTC: "2026-12-08T08:00:00Z". */
void kn_freeze_format_utc(long long ms, char *buf, size_t size);

/* "2026-12-24T00:00:00+01:00", "...Z", with optional fractions: 0 and ms, or KN_EINVAL. */
int kn_rfc3339_parse(const char *s, long long *ms);

#endif /* KANARIA_FREEZE_WINDOW_H */
