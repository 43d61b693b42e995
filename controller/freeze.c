/*
 * Freeze windows (kanaria/freeze.h): the schedule and time-zone math, the schema of a window,
 * and the gate that holds a deployment FROZEN while a window covering its app is open.
 *
 * Times are in seconds inside the math (cron has minutes, tzdata seconds) and in ms at the edges.
 * "local" is a wall-clock time counted like a UTC one (seconds since 1970-01-01 00:00 of that
 * wall clock), so that the calendar arithmetic below works on both.
 */
#include "freeze.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "kanaria/alloc.h"
#include "kanaria/app.h"
#include "kanaria/error.h"

#define KN_TZ_DIR           "/usr/share/zoneinfo"
#define KN_TZ_MAX_FILE      (256 * 1024)
#define KN_FREEZE_SEARCH_S  (5LL * 366 * 86400) /* how far a schedule is searched */
#define KN_FREEZE_MAX_CHAIN 64                  /* openings that run into each other */

/* ---- the calendar (proleptic Gregorian; H. Hinnant's days_from_civil) ------------------------ */

static long long days_from_civil(long long y, int m, int d)
{
    long long era;
    unsigned yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = (unsigned)(y - era * 400);
    doy = (unsigned)((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1);
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (long long)doe - 719468;
}

static void civil_from_days(long long z, long long *y, int *m, int *d)
{
    long long era;
    unsigned doe, yoe, doy, mp;

    z += 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = (unsigned)(z - era * 146097);
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (long long)yoe + era * 400 + (*m <= 2);
}

static long long floor_div(long long a, long long b)
{
    return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

static int is_leap(long long y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(long long y, int m)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

    return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

/* 0 Sunday .. 6 Saturday; 1970-01-01 was a Thursday. */
static int weekday(long long days)
{
    return (int)(((days % 7) + 11) % 7);
}

/* ---- time zones: TZif (RFC 8536) and its POSIX TZ footer ------------------------------------- */

struct tz_rule {
    char kind; /* 'M': month.week.day, 'J': Julian day 1-365 without Feb 29, 'N': day 0-365 */
    int month, week, day;
    long time; /* seconds after local midnight */
};

struct tz_posix {
    int valid;
    long std_off, dst_off; /* seconds east of UTC */
    int has_dst;
    struct tz_rule start, end;
};

struct kn_tz {
    char *name;
    long long *times;   /* transitions, seconds since the epoch */
    unsigned char *idx; /* type of each transition */
    size_t ntimes;
    long *offs; /* utoff of each type */
    unsigned char *isdst;
    size_t ntypes;
    struct tz_posix footer;
};

static long long be(const unsigned char *p, int n)
{
    unsigned long long v = 0;

    for (int i = 0; i < n; i++) {
        v = v << 8 | p[i];
    }
    if (n == 4) {
        return (int32_t)(uint32_t)v;
    }
    return (long long)v;
}

/* POSIX TZ pieces: a name ("CET", "<+03>"), an offset ("-1", "+05:30"), a rule ("M3.5.0/3"). */
static const char *posix_name(const char *p)
{
    const char *s = p;

    if (*p == '<') {
        p = strchr(p, '>');
        return p && p - s > 1 ? p + 1 : NULL;
    }
    while (isalpha((unsigned char)*p)) {
        p++;
    }
    return p - s >= 3 ? p : NULL;
}

static const char *posix_hms(const char *p, long *out)
{
    int sign = 1;
    long h = 0, m = 0, s = 0;
    char *end;

    if (*p == '+' || *p == '-') {
        sign = *p++ == '-' ? -1 : 1;
    }
    if (!isdigit((unsigned char)*p)) {
        return NULL;
    }
    h = strtol(p, &end, 10);
    if (*end == ':') {
        m = strtol(end + 1, &end, 10);
        if (*end == ':') {
            s = strtol(end + 1, &end, 10);
        }
    }
    if (h > 167 || m > 59 || s > 59) {
        return NULL;
    }
    *out = sign * (h * 3600 + m * 60 + s);
    return end;
}

static const char *posix_rule(const char *p, struct tz_rule *r)
{
    char *end;

    r->time = 7200;
    if (*p == 'M') {
        r->kind = 'M';
        r->month = (int)strtol(p + 1, &end, 10);
        if (*end != '.') {
            return NULL;
        }
        r->week = (int)strtol(end + 1, &end, 10);
        if (*end != '.') {
            return NULL;
        }
        r->day = (int)strtol(end + 1, &end, 10);
        if (r->month < 1 || r->month > 12 || r->week < 1 || r->week > 5 || r->day < 0 ||
            r->day > 6) {
            return NULL;
        }
    } else if (*p == 'J' || isdigit((unsigned char)*p)) {
        r->kind = *p == 'J' ? 'J' : 'N';
        r->day = (int)strtol(p + (*p == 'J'), &end, 10);
        if (r->day < (r->kind == 'J') || r->day > 365) {
            return NULL;
        }
    } else {
        return NULL;
    }
    p = end;
    if (*p == '/' && !(p = posix_hms(p + 1, &r->time))) {
        return NULL;
    }
    return p;
}

static void posix_parse(struct tz_posix *tp, const char *s)
{
    const char *p = posix_name(s);
    long off;

    memset(tp, 0, sizeof(*tp));
    if (!p || !(p = posix_hms(p, &off))) {
        return;
    }
    tp->std_off = -off; /* POSIX counts west of UTC */
    tp->dst_off = tp->std_off + 3600;
    if (*p == '\0') {
        tp->valid = 1;
        return;
    }
    if (!(p = posix_name(p))) {
        return;
    }
    tp->has_dst = 1;
    if (*p != ',' && *p != '\0') {
        if (!(p = posix_hms(p, &off))) {
            return;
        }
        tp->dst_off = -off;
    }
    if (*p == '\0') { /* no rules: the US ones, as POSIX says */
        tp->start = (struct tz_rule){'M', 3, 2, 0, 7200};
        tp->end = (struct tz_rule){'M', 11, 1, 0, 7200};
        tp->valid = 1;
        return;
    }
    if (*p != ',' || !(p = posix_rule(p + 1, &tp->start)) || *p != ',' ||
        !(p = posix_rule(p + 1, &tp->end)) || *p != '\0') {
        return;
    }
    tp->valid = 1;
}

/* The local time (seconds) at which rule r falls in year y. */
static long long rule_local(const struct tz_rule *r, long long y)
{
    long long days;

    if (r->kind == 'M') {
        long long first = days_from_civil(y, r->month, 1);
        int d = 1 + (r->day - weekday(first) + 7) % 7 + (r->week - 1) * 7;
        while (d > days_in_month(y, r->month)) {
            d -= 7;
        }
        days = first + d - 1;
    } else if (r->kind == 'J') {
        days = days_from_civil(y, 1, 1) + r->day - 1 + (is_leap(y) && r->day >= 60);
    } else {
        days = days_from_civil(y, 1, 1) + r->day;
    }
    return days * 86400 + r->time;
}

static long posix_offset(const struct tz_posix *tp, long long t)
{
    long long y, start, end;
    int m, d;
    int dst;

    if (!tp->has_dst) {
        return tp->std_off;
    }
    civil_from_days(floor_div(t + tp->std_off, 86400), &y, &m, &d);
    start = rule_local(&tp->start, y) - tp->std_off;
    end = rule_local(&tp->end, y) - tp->dst_off;
    dst = start < end ? t >= start && t < end : !(t >= end && t < start);
    return dst ? tp->dst_off : tp->std_off;
}

long kn_tz_offset(const struct kn_tz *tz, long long t)
{
    size_t lo = 0, hi;

    if (!tz) {
        return 0;
    }
    if (tz->ntimes == 0 || t >= tz->times[tz->ntimes - 1]) {
        if (tz->footer.valid) {
            return posix_offset(&tz->footer, t);
        }
        if (tz->ntimes == 0) {
            return tz->offs[0];
        }
    }
    if (t < tz->times[0]) {
        for (size_t i = 0; i < tz->ntypes; i++) {
            if (!tz->isdst[i]) {
                return tz->offs[i];
            }
        }
        return tz->offs[0];
    }
    hi = tz->ntimes; /* times[lo] <= t < times[hi] */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (tz->times[mid] <= t) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    return tz->offs[tz->idx[lo]];
}

/* Parse a TZif file's content: 0, or KN_EINVAL with why. */
static int tz_parse(struct kn_tz *tz, const unsigned char *buf, size_t len, char *why, size_t size)
{
    const unsigned char *p = buf, *endp = buf + len;
    long long cnt[6];
    size_t tsize = 4;
    int rc = KN_EINVAL;

    for (int pass = 0; pass < 2; pass++) {
        size_t need;
        if (endp - p < 44 || memcmp(p, "TZif", 4) != 0) {
            snprintf(why, size, "not a TZif file");
            goto out;
        }
        for (int i = 0; i < 6; i++) {
            cnt[i] = be(p + 20 + 4 * i, 4);
            if (cnt[i] < 0 || cnt[i] > 100000) {
                snprintf(why, size, "corrupt TZif header");
                goto out;
            }
        }
        /* isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt */
        need = (size_t)cnt[3] * (tsize + 1) + (size_t)cnt[4] * 6 + (size_t)cnt[5] +
               (size_t)cnt[2] * (tsize + 4) + (size_t)cnt[1] + (size_t)cnt[0];
        if ((size_t)(endp - p) < 44 + need || cnt[4] == 0) {
            snprintf(why, size, "truncated TZif file");
            goto out;
        }
        if (pass == 0 && p[4] >= '2') {
            p += 44 + need; /* the 64-bit data follow */
            tsize = 8;
            continue;
        }
        p += 44;
        tz->ntimes = (size_t)cnt[3];
        tz->ntypes = (size_t)cnt[4];
        tz->times = kn_calloc(tz->ntimes + 1, sizeof(*tz->times));
        tz->idx = kn_calloc(tz->ntimes + 1, 1);
        tz->offs = kn_calloc(tz->ntypes, sizeof(*tz->offs));
        tz->isdst = kn_calloc(tz->ntypes, 1);
        for (size_t i = 0; i < tz->ntimes; i++) {
            tz->times[i] = be(p + i * tsize, (int)tsize);
        }
        p += tz->ntimes * tsize;
        for (size_t i = 0; i < tz->ntimes; i++) {
            tz->idx[i] = p[i];
            if (p[i] >= tz->ntypes) {
                snprintf(why, size, "corrupt TZif transition");
                goto out;
            }
        }
        p += tz->ntimes;
        for (size_t i = 0; i < tz->ntypes; i++) {
            tz->offs[i] = (long)be(p + 6 * i, 4);
            tz->isdst[i] = p[6 * i + 4];
        }
        p += need - tz->ntimes * (tsize + 1);
        break;
    }
    if (tsize == 8 && p < endp && *p == '\n') {
        char footer[128];
        const unsigned char *nl = memchr(p + 1, '\n', (size_t)(endp - p - 1));
        if (nl && (size_t)(nl - p - 1) < sizeof(footer)) {
            memcpy(footer, p + 1, (size_t)(nl - p - 1));
            footer[nl - p - 1] = '\0';
            posix_parse(&tz->footer, footer);
        }
    }
    rc = 0;
out:
    return rc;
}

void kn_tz_free(struct kn_tz *tz)
{
    if (tz) {
        free(tz->name);
        free(tz->times);
        free(tz->idx);
        free(tz->offs);
        free(tz->isdst);
        free(tz);
    }
}

static int tz_is_utc(const char *name)
{
    return !name || strcmp(name, "UTC") == 0 || strcmp(name, "Etc/UTC") == 0 ||
           strcmp(name, "Z") == 0;
}

int kn_tz_load(struct kn_tz **out, const char *name, char *why, size_t size)
{
    const char *dir = getenv("TZDIR");
    char path[512];
    unsigned char *buf = NULL;
    size_t len = 0;
    FILE *f = NULL;
    struct kn_tz *tz = NULL;
    int rc = 0;

    *out = NULL;
    if (tz_is_utc(name)) {
        goto out;
    }
    /* a zone name, never a path: no leading '/', no "..", the characters tzdata uses */
    if (!name[0] || name[0] == '/' || strstr(name, "..") ||
        strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/_+-") !=
            strlen(name) ||
        strlen(name) > 128) {
        snprintf(why, size, "'%.128s' is not a time zone name (Area/City, as Europe/Berlin)", name);
        rc = KN_EINVAL;
        goto out;
    }
    snprintf(path, sizeof(path), "%s/%s", dir && dir[0] == '/' ? dir : KN_TZ_DIR, name);
    if (!(f = fopen(path, "rb"))) {
        snprintf(why, size, "unknown time zone '%s' (%s: %s)", name, path, strerror(errno));
        rc = KN_ENOENT;
        goto out;
    }
    buf = kn_malloc(KN_TZ_MAX_FILE);
    len = fread(buf, 1, KN_TZ_MAX_FILE, f);
    tz = kn_calloc(1, sizeof(*tz));
    tz->name = kn_strdup(name);
    if (tz_parse(tz, buf, len, why, size) < 0) {
        char detail[128];
        snprintf(detail, sizeof(detail), "%s", why);
        snprintf(why, size, "time zone '%s': %s: %s", name, path, detail);
        rc = KN_EINVAL;
        goto out;
    }
    *out = tz;
    tz = NULL;
out:
    if (f) {
        fclose(f);
    }
    free(buf);
    kn_tz_free(tz);
    return rc;
}

/* The earliest UTC time whose local time in tz is `local`; a local time that a DST change
 * skips maps to the instant the same distance after the change (02:30 -> 03:30 CEST). */
static long long tz_to_utc(const struct kn_tz *tz, long long local)
{
    long before = kn_tz_offset(tz, local - 86400), after = kn_tz_offset(tz, local + 86400);
    long long a = local - before, b = local - after;
    int a_ok = a + kn_tz_offset(tz, a) == local, b_ok = b + kn_tz_offset(tz, b) == local;

    if (a_ok && b_ok) {
        return a < b ? a : b;
    }
    if (b_ok) {
        return b;
    }
    return a; /* a_ok, or in the gap: read with the offset before the change */
}

/* ---- cron -------------------------------------------------------------------------------- */

struct cron_field {
    const char *what;
    int min, max;
    const char *const *names; /* names[i] is value min + i; NULL: numbers only */
};

static const char *const cron_months[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL",
                                          "AUG", "SEP", "OCT", "NOV", "DEC", NULL};
static const char *const cron_days[] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT", NULL};

static const struct cron_field cron_fields[] = {
    {"minute", 0, 59, NULL},          {"hour", 0, 23, NULL},
    {"day of month", 1, 31, NULL},    {"month", 1, 12, cron_months},
    {"day of week", 0, 7, cron_days},
};

/* One value of field f at *p: a number or a name. */
static int cron_value(const struct cron_field *f, const char **p, int *out, char *why, size_t size,
                      int fi)
{
    const char *s = *p;

    if (isdigit((unsigned char)*s)) {
        long v = 0;
        while (isdigit((unsigned char)*s)) {
            v = v * 10 + (*s++ - '0');
            if (v > 1000) {
                break;
            }
        }
        if (v < f->min || v > f->max) {
            snprintf(why, size, "field %d (%s): '%.*s' is out of range %d-%d", fi + 1, f->what,
                     (int)(s - *p), *p, f->min, f->max);
            return KN_EINVAL;
        }
        *out = (int)v;
        *p = s;
        return 0;
    }
    for (int i = 0; f->names && f->names[i]; i++) {
        if (strncasecmp(s, f->names[i], 3) == 0 && !isalpha((unsigned char)s[3])) {
            *out = f->min + i;
            *p = s + 3;
            return 0;
        }
    }
    snprintf(why, size, "field %d (%s): '%s' is not a number%s", fi + 1, f->what, s,
             f->names ? (f == &cron_fields[3] ? " or a month name (JAN-DEC)"
                                              : " or a day name (SUN-SAT)")
                      : "");
    return KN_EINVAL;
}

/* One field (comma-separated items) into *bits. */
static int cron_field_parse(int fi, const char *text, uint64_t *bits, int *any, char *why,
                            size_t size)
{
    const struct cron_field *f = &cron_fields[fi];
    char item[64];
    const char *s = text;
    int rc = 0;

    *bits = 0;
    *any = strcmp(text, "*") == 0;
    while (*s) {
        size_t n = strcspn(s, ",");
        const char *p = item;
        int lo, hi, step = 1;
        if (n == 0 || n >= sizeof(item)) {
            snprintf(why, size, "field %d (%s): empty or overlong item in '%s'", fi + 1, f->what,
                     text);
            rc = KN_EINVAL;
            goto out;
        }
        memcpy(item, s, n);
        item[n] = '\0';
        s += n + (s[n] == ',');
        if (*p == '*') {
            lo = f->min;
            hi = f->max;
            p++;
        } else {
            if ((rc = cron_value(f, &p, &lo, why, size, fi)) < 0) {
                goto out;
            }
            hi = lo;
            if (*p == '-') {
                p++;
                if ((rc = cron_value(f, &p, &hi, why, size, fi)) < 0) {
                    goto out;
                }
                if (hi < lo) {
                    snprintf(why, size, "field %d (%s): range '%s' goes backwards", fi + 1, f->what,
                             item);
                    rc = KN_EINVAL;
                    goto out;
                }
            } else if (*p == '/') {
                hi = f->max; /* "a/n": from a to the end */
            }
        }
        if (*p == '/') {
            char *end;
            long v = strtol(p + 1, &end, 10);
            if (!isdigit((unsigned char)p[1]) || *end || v < 1 || v > f->max) {
                snprintf(why, size, "field %d (%s): step in '%s' must be a number from 1 to %d",
                         fi + 1, f->what, item, f->max);
                rc = KN_EINVAL;
                goto out;
            }
            step = (int)v;
            p = end;
        }
        if (*p) {
            snprintf(why, size, "field %d (%s): '%s' is not a number, range, list or step", fi + 1,
                     f->what, item);
            rc = KN_EINVAL;
            goto out;
        }
        for (int v = lo; v <= hi; v += step) {
            *bits |= 1ULL << (fi == 4 && v == 7 ? 0 : v); /* day of week 7 is Sunday */
        }
    }
    if (*bits == 0) {
        snprintf(why, size, "field %d (%s) is empty", fi + 1, f->what);
        rc = KN_EINVAL;
    }
out:
    return rc;
}

int kn_cron_parse(struct kn_cron *out, const char *s, char *why, size_t size)
{
    char copy[256], *fields[6], *save = NULL, *tok;
    int n = 0, any, rc = 0;
    uint64_t bits[5];

    memset(out, 0, sizeof(*out));
    if (!s || strlen(s) >= sizeof(copy)) {
        snprintf(why, size, "too long");
        rc = KN_EINVAL;
        goto out;
    }
    snprintf(copy, sizeof(copy), "%s", s);
    for (tok = strtok_r(copy, " \t", &save); tok && n < 6; tok = strtok_r(NULL, " \t", &save)) {
        fields[n++] = tok;
    }
    if (n != 5) {
        snprintf(why, size,
                 "a schedule has 5 fields (minute hour day-of-month month day-of-week), got %s%d",
                 n > 5 ? "more than " : "", n > 5 ? 5 : n);
        rc = KN_EINVAL;
        goto out;
    }
    for (int i = 0; i < 5; i++) {
        if ((rc = cron_field_parse(i, fields[i], &bits[i], &any, why, size)) < 0) {
            goto out;
        }
        if (i == 2) {
            out->days_any = any;
        } else if (i == 4) {
            out->weekdays_any = any;
        }
    }
    out->minutes = bits[0];
    out->hours = (uint32_t)bits[1];
    out->days = (uint32_t)bits[2];
    out->months = (uint32_t)bits[3];
    out->weekdays = (uint32_t)bits[4];
out:
    return rc;
}

static int cron_day_matches(const struct kn_cron *c, int mday, int wday)
{
    int dom = (c->days >> mday) & 1, dow = (c->weekdays >> wday) & 1;

    if (c->days_any || c->weekdays_any) {
        return (c->days_any || dom) && (c->weekdays_any || dow);
    }
    return dom || dow; /* both restricted: either, as cron does */
}

/* The first start of schedule c in zone tz at or after t (seconds), or -1 within the search. */
static long long cron_next(const struct kn_cron *c, const struct kn_tz *tz, long long t)
{
    /* from 2 hours of wall time earlier: a start in a skipped hour lands after t */
    long long local = floor_div(t + kn_tz_offset(tz, t) + 59, 60) * 60 - 7200;
    long long limit = local + KN_FREEZE_SEARCH_S;

    while (local < limit) {
        long long days = floor_div(local, 86400), y;
        long sod = (long)(local - days * 86400);
        int m, d, h = (int)(sod / 3600), mi = (int)(sod % 3600 / 60);
        civil_from_days(days, &y, &m, &d);
        if (!((c->months >> m) & 1)) {
            local = days_from_civil(m == 12 ? y + 1 : y, m == 12 ? 1 : m + 1, 1) * 86400;
        } else if (!cron_day_matches(c, d, weekday(days))) {
            local = (days + 1) * 86400;
        } else if (!((c->hours >> h) & 1)) {
            local = days * 86400 + (h + 1) * 3600LL;
        } else if (!((c->minutes >> mi) & 1)) {
            local += 60;
        } else {
            long long u = tz_to_utc(tz, local);
            if (u >= t) {
                return u;
            }
            local += 60;
        }
    }
    return -1;
}

/* ---- windows ------------------------------------------------------------------------------ */

static int window_fixed(const struct kn_freeze_window *w)
{
    return w->from != NULL;
}

/* The span of the recurring window w that opens at start (s), run on through the openings that
 * begin before it ends. */
static void window_span(const struct kn_freeze_window *w, long long start,
                        struct kn_freeze_span *out)
{
    long long until = start * 1000 + w->duration_ms, s = start;

    for (int i = 0; i < KN_FREEZE_MAX_CHAIN; i++) {
        s = cron_next(&w->cron, w->tz, s + 1);
        if (s < 0 || s * 1000 > until) {
            break;
        }
        until = s * 1000 + w->duration_ms;
    }
    out->window = w;
    out->from_ms = start * 1000;
    out->until_ms = until;
}

int kn_freeze_window_open(const struct kn_freeze_window *w, long long now_ms,
                          struct kn_freeze_span *out)
{
    long long s;

    if (window_fixed(w)) {
        if (now_ms < w->from_ms || now_ms >= w->to_ms) {
            return 0;
        }
        *out = (struct kn_freeze_span){w, w->from_ms, w->to_ms};
        return 1;
    }
    if (w->duration_ms <= 0 || !w->schedule) {
        return 0;
    }
    /* the earliest opening whose duration still covers now */
    s = cron_next(&w->cron, w->tz, floor_div(now_ms - w->duration_ms, 1000) + 1);
    if (s < 0 || s * 1000 > now_ms) {
        return 0;
    }
    window_span(w, s, out);
    return out->until_ms > now_ms;
}

int kn_freeze_window_next(const struct kn_freeze_window *w, long long now_ms,
                          struct kn_freeze_span *out)
{
    struct kn_freeze_span open;
    long long after = now_ms, s;

    if (kn_freeze_window_open(w, now_ms, &open)) {
        after = open.until_ms;
    }
    if (window_fixed(w)) {
        if (w->from_ms <= after) {
            return 0;
        }
        *out = (struct kn_freeze_span){w, w->from_ms, w->to_ms};
        return 1;
    }
    if (w->duration_ms <= 0 || !w->schedule) {
        return 0;
    }
    s = cron_next(&w->cron, w->tz, floor_div(after, 1000) + 1);
    if (s < 0) {
        return 0;
    }
    window_span(w, s, out);
    return 1;
}

void kn_freeze_format_local(const struct kn_freeze_window *w, long long ms, char *buf, size_t size)
{
    long long t = floor_div(ms, 1000), local = t + kn_tz_offset(w ? w->tz : NULL, t);
    long long days = floor_div(local, 86400), y;
    long sod = (long)(local - days * 86400);
    int m, d;

    civil_from_days(days, &y, &m, &d);
    snprintf(buf, size, "%04lld-%02d-%02d %02ld:%02ld %s", y, m, d, sod / 3600, sod % 3600 / 60,
             w && w->tz ? w->tz->name : "UTC");
}

void kn_freeze_format_utc(long long ms, char *buf, size_t size)
{
    long long t = floor_div(ms, 1000), days = floor_div(t, 86400), y;
    long sod = (long)(t - days * 86400);
    int m, d;

    civil_from_days(days, &y, &m, &d);
    snprintf(buf, size, "%04lld-%02d-%02dT%02ld:%02ld:%02ldZ", y, m, d, sod / 3600, sod % 3600 / 60,
             sod % 60);
}

static int take_digits(const char **p, int n, int *out)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i])) {
            return -1;
        }
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

int kn_rfc3339_parse(const char *s, long long *ms)
{
    int y, mo, d, h, mi, sec, oh = 0, om = 0, sign = 0;
    long long frac = 0, scale = 1000;
    const char *p = s;

    if (!s || take_digits(&p, 4, &y) < 0 || *p++ != '-' || take_digits(&p, 2, &mo) < 0 ||
        *p++ != '-' || take_digits(&p, 2, &d) < 0 || (*p != 'T' && *p != 't' && *p != ' ')) {
        return KN_EINVAL;
    }
    p++;
    if (take_digits(&p, 2, &h) < 0 || *p++ != ':' || take_digits(&p, 2, &mi) < 0 || *p++ != ':' ||
        take_digits(&p, 2, &sec) < 0) {
        return KN_EINVAL;
    }
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p)) {
            return KN_EINVAL;
        }
        for (; isdigit((unsigned char)*p); p++) {
            if (scale > 1) {
                scale /= 10;
                frac += (*p - '0') * scale;
            }
        }
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        sign = *p++ == '-' ? -1 : 1;
        if (take_digits(&p, 2, &oh) < 0 || *p++ != ':' || take_digits(&p, 2, &om) < 0 || oh > 23 ||
            om > 59) {
            return KN_EINVAL;
        }
    } else {
        return KN_EINVAL;
    }
    if (*p || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 ||
        sec > 60) {
        return KN_EINVAL;
    }
    *ms = ((days_from_civil(y, mo, d) * 86400 + h * 3600LL + mi * 60LL + sec) -
           sign * (oh * 3600LL + om * 60LL)) *
              1000 +
          frac;
    return 0;
}

/* ---- the schema ------------------------------------------------------------------------------ */

static void window_error(struct kn_schema_ctx *ctx, const struct kn_node *node, const char *key,
                         const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* An error about the entry, at its key `key` when given (and present), else at the entry. */
static void window_error(struct kn_schema_ctx *ctx, const struct kn_node *node, const char *key,
                         const char *fmt, ...)
{
    const struct kn_node *at = key ? kn_node_get(node, key) : NULL;
    va_list ap;
    char *msg;

    va_start(ap, fmt);
    msg = kn_vasprintf(fmt, ap);
    va_end(ap);
    kn_schema_error_in(ctx, ctx->path, at ? at : node, "%s", msg);
    free(msg);
}

static void window_check(void *obj, const struct kn_node *node, struct kn_schema_ctx *ctx)
{
    struct kn_freeze_window *w = obj;
    char why[512], dur[32];
    struct kn_freeze_span span;

    if (w->time_zone && kn_tz_load(&w->tz, w->time_zone, why, sizeof(why)) < 0) {
        window_error(ctx, node, "timeZone", "'timeZone': %s", why);
    }
    if (w->schedule && (w->from || w->to)) {
        window_error(ctx, node, w->from ? "from" : "to",
                     "'schedule' and '%s' cannot both be set: a window is recurring (schedule, "
                     "duration) or fixed (from, to)",
                     w->from ? "from" : "to");
        return;
    }
    if (!w->schedule && !w->from && !w->to) {
        window_error(ctx, node, NULL,
                     "needs 'schedule' and 'duration' (recurring) or 'from' and 'to' (fixed)");
        return;
    }
    if (w->schedule) {
        if (kn_cron_parse(&w->cron, w->schedule, why, sizeof(why)) < 0) {
            window_error(ctx, node, "schedule", "'schedule' '%s': %s", w->schedule, why);
        } else if (!kn_node_get(node, "duration")) {
            window_error(ctx, node, NULL, "'duration' is required with 'schedule'");
        } else if (w->duration_ms <= 0) {
            window_error(ctx, node, "duration", "'duration' must be more than 0, got '%s'",
                         kn_duration_format(w->duration_ms, dur, sizeof(dur)));
        } else if (w->duration_ms > KN_FREEZE_MAX_DURATION_MS) {
            window_error(ctx, node, "duration", "'duration' must be at most 90d, got '%s'",
                         kn_duration_format(w->duration_ms, dur, sizeof(dur)));
        } else if (!kn_freeze_window_next(w, (long long)time(NULL) * 1000, &span)) {
            window_error(ctx, node, "schedule",
                         "'schedule' '%s' never opens (no such day in the next 5 years)",
                         w->schedule);
        }
        return;
    }
    if (w->duration_ms > 0 || kn_node_get(node, "duration")) {
        window_error(ctx, node, "duration",
                     "'duration' goes with 'schedule'; a fixed window ends at 'to'");
    }
    if (!w->from || !w->to) {
        window_error(ctx, node, NULL, "'from' and 'to' go together, '%s' is missing",
                     w->from ? "to" : "from");
        return;
    }
    if (kn_rfc3339_parse(w->from, &w->from_ms) < 0) {
        window_error(ctx, node, "from",
                     "'from' must be an RFC 3339 time (2026-12-24T00:00:00+01:00), got '%s'",
                     w->from);
    } else if (kn_rfc3339_parse(w->to, &w->to_ms) < 0) {
        window_error(ctx, node, "to",
                     "'to' must be an RFC 3339 time (2026-12-24T00:00:00+01:00), got '%s'", w->to);
    } else if (w->to_ms <= w->from_ms) {
        window_error(ctx, node, "to", "'to' (%s) must be after 'from' (%s)", w->to, w->from);
    }
}

static void window_release(void *obj)
{
    struct kn_freeze_window *w = obj;

    kn_tz_free(w->tz);
    w->tz = NULL;
}

#define KN_FREEZE_COMMON_FIELDS                                                                    \
    {.key = "name",                                                                                \
     .type = KN_TYPE_STRING,                                                                       \
     .offset = offsetof(struct kn_freeze_window, name),                                            \
     .flags = KN_FIELD_REQUIRED | KN_FIELD_NONEMPTY,                                               \
     .help = "unique name of the window, shown in a FROZEN deployment's reason"},                  \
        {.key = "schedule",                                                                        \
         .type = KN_TYPE_STRING,                                                                   \
         .offset = offsetof(struct kn_freeze_window, schedule),                                    \
         .flags = KN_FIELD_NONEMPTY,                                                               \
         .help = "recurring: when it opens, 5-field cron in timeZone (\"0 18 * * FRI\"); with "    \
                 "duration, not with from/to"},                                                    \
        {.key = "duration",                                                                        \
         .type = KN_TYPE_DURATION,                                                                 \
         .offset = offsetof(struct kn_freeze_window, duration_ms),                                 \
         .help = "recurring: how long it stays open (64h), more than 0 and at most 90d"},          \
        {.key = "timeZone",                                                                        \
         .type = KN_TYPE_STRING,                                                                   \
         .offset = offsetof(struct kn_freeze_window, time_zone),                                   \
         .flags = KN_FIELD_NONEMPTY,                                                               \
         .def = "UTC",                                                                             \
         .help = "tzdata zone the schedule is read in and times are shown in (Europe/Berlin)"},    \
        {.key = "from",                                                                            \
         .type = KN_TYPE_STRING,                                                                   \
         .offset = offsetof(struct kn_freeze_window, from),                                        \
         .flags = KN_FIELD_NONEMPTY,                                                               \
         .help = "fixed: when it opens, RFC 3339 (2026-12-24T00:00:00+01:00); with to"},           \
    {                                                                                              \
        .key = "to", .type = KN_TYPE_STRING, .offset = offsetof(struct kn_freeze_window, to),      \
        .flags = KN_FIELD_NONEMPTY, .help = "fixed: when it closes, RFC 3339, after from"          \
    }

static const struct kn_field window_fields[] = {
    KN_FREEZE_COMMON_FIELDS,
    {.key = "apps",
     .type = KN_TYPE_STRING_LIST,
     .offset = offsetof(struct kn_freeze_window, apps),
     .help = "globs of the app names it covers (web-*); absent or empty = all"},
    {.key = "repositories",
     .type = KN_TYPE_STRING_LIST,
     .offset = offsetof(struct kn_freeze_window, repositories),
     .help = "names of the repositories whose apps it covers; absent or empty = all"},
};

static const struct kn_field app_window_fields[] = {
    KN_FREEZE_COMMON_FIELDS,
};

const struct kn_schema kn_freeze_window_schema = {
    .name = "freeze window",
    KN_SCHEMA_FIELDS(window_fields),
    .size = sizeof(struct kn_freeze_window),
    .set_offset = offsetof(struct kn_freeze_window, set),
    .check = window_check,
    .release = window_release,
};

const struct kn_schema kn_freeze_app_window_schema = {
    .name = "app freeze window",
    KN_SCHEMA_FIELDS(app_window_fields),
    .size = sizeof(struct kn_freeze_window),
    .set_offset = offsetof(struct kn_freeze_window, set),
    .check = window_check,
    .release = window_release,
};

void kn_freeze_check_unique(struct kn_schema_ctx *ctx, const struct kn_node *seq,
                            const struct kn_list *windows, const char *key)
{
    const struct kn_freeze_window *w = windows->items;

    if (!seq || seq->type != KN_NODE_SEQ || seq->len != windows->count) {
        return;
    }
    for (size_t i = 1; i < windows->count; i++) {
        for (size_t j = 0; j < i && w[i].name; j++) {
            const struct kn_node *first = kn_node_get(seq->items[j], "name");
            char subject[128];
            if (!w[j].name || strcmp(w[i].name, w[j].name) != 0) {
                continue;
            }
            snprintf(subject, sizeof(subject), "%s[%zu]", key, i);
            kn_schema_error_in(ctx, subject, kn_node_get(seq->items[i], "name"),
                               "'name' must be unique, '%s' is already used at line %u", w[i].name,
                               first ? first->loc.line : 0);
            break;
        }
    }
}

/* ---- the gate ------------------------------------------------------------------------------ */

int kn_freeze_covers(const struct kn_freeze_window *w, const char *repo, const char *app)
{
    int apps = w->apps.count == 0, repos = w->repositories.count == 0;

    for (size_t i = 0; !apps && app && i < w->apps.count; i++) {
        apps = kn_glob_match(w->apps.items[i], app);
    }
    for (size_t i = 0; !repos && repo && i < w->repositories.count; i++) {
        repos = strcmp(w->repositories.items[i], repo) == 0;
    }
    return apps && repos;
}

/* Each window of kanaria.yaml that covers the app, then the app's own: 1 when fn said so. */
typedef int (*window_fn)(const struct kn_freeze_window *w, long long now_ms,
                         struct kn_freeze_span *out);

static int freeze_pick(const struct kn_config *cfg, const struct kn_list *own, const char *repo,
                       const char *app, long long now_ms, window_fn fn, int latest_end,
                       struct kn_freeze_span *out)
{
    const struct kn_list *lists[2] = {cfg ? &cfg->freeze_windows : NULL, own};
    struct kn_freeze_span s;
    int found = 0;

    for (int l = 0; l < 2; l++) {
        const struct kn_freeze_window *w = lists[l] ? lists[l]->items : NULL;
        for (size_t i = 0; w && i < lists[l]->count; i++) {
            if ((l == 0 && !kn_freeze_covers(&w[i], repo, app)) || !fn(&w[i], now_ms, &s)) {
                continue;
            }
            if (!found || (latest_end ? s.until_ms > out->until_ms : s.from_ms < out->from_ms)) {
                *out = s;
                found = 1;
            }
        }
    }
    return found;
}

int kn_freeze_active(const struct kn_config *cfg, const struct kn_list *own, const char *repo,
                     const char *app, long long now_ms, struct kn_freeze_span *out)
{
    return freeze_pick(cfg, own, repo, app, now_ms, kn_freeze_window_open, 1, out);
}

int kn_freeze_next(const struct kn_config *cfg, const struct kn_list *own, const char *repo,
                   const char *app, long long now_ms, struct kn_freeze_span *out)
{
    return freeze_pick(cfg, own, repo, app, now_ms, kn_freeze_window_next, 0, out);
}

void kn_freeze_gate(const struct kn_config *cfg, const struct kn_deployment *d,
                    const struct kn_app *app, long long now_ms, struct kn_gate_verdict *out)
{
    struct kn_freeze_span s;
    char local[96], utc[32];

    out->status = KN_DEPLOY_RUNNING;
    if (!kn_freeze_active(cfg, app ? &app->cfg.spec.freeze_windows : NULL, d->repo, d->app, now_ms,
                          &s)) {
        return;
    }
    kn_freeze_format_local(s.window, s.until_ms, local, sizeof(local));
    kn_freeze_format_utc(s.until_ms, utc, sizeof(utc));
    out->status = KN_DEPLOY_FROZEN;
    snprintf(out->reason, sizeof(out->reason), "freeze window '%.200s' is open until %s (%s)",
             s.window->name ? s.window->name : "?", local, utc);
    out->recheck_at_ms = s.until_ms;
}
