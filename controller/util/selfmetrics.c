/*
 * kanaria's own metrics: a fixed table of families, each holding its series in a growing array
 * (a handful per family: one per repository or notification), rendered in the text format.
 */
#include "kanaria/selfmetrics.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum kn_sm_type { KN_SM_COUNTER, KN_SM_GAUGE, KN_SM_HISTOGRAM };

#define KN_SM_MAX_BUCKETS 12

struct kn_sm_family {
    const char *name;
    enum kn_sm_type type;
    const char *label[2]; /* NULL: unused */
    const char *help;
    double buckets[KN_SM_MAX_BUCKETS]; /* upper bounds, increasing; 0 ends the list */
};

static const struct kn_sm_family kn_sm_families[KN_SM_COUNT] = {
    [KN_SM_FETCH_DURATION] = {"kanaria_git_fetch_duration_seconds", KN_SM_HISTOGRAM,
                              {"repo", NULL},
                              "Time a fetch of the repository took, from starting its process to "
                              "its end (failed ones included).",
                              {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300}},
    [KN_SM_FETCH_FAILURES] = {"kanaria_git_fetch_failures_total", KN_SM_COUNTER, {"repo", NULL},
                              "Fetches of the repository (or the planning of their head) that "
                              "failed, since kanaria started.", {0}},
    [KN_SM_RECONCILE_LAG] = {"kanaria_reconcile_lag_seconds", KN_SM_GAUGE, {"repo", NULL},
                             "For the last new head of the repository: time from when its fetch "
                             "was asked for (the poll timer or a webhook) to its deployments being "
                             "recorded.", {0}},
    [KN_SM_WEBHOOK] = {"kanaria_webhook_deliveries_total", KN_SM_COUNTER, {"result", NULL},
                       "Push webhooks received since kanaria started, by result (accepted, "
                       "unsigned, bad_signature).", {0}},
    [KN_SM_NOTIFY_DELIVERIES] = {"kanaria_notification_deliveries_total", KN_SM_COUNTER,
                                 {"notification", "result"},
                                 "Notification delivery attempts since kanaria started, by result "
                                 "(sent, failed: to be tried again, given_up, dropped: the queue "
                                 "was full).", {0}},
    [KN_SM_NOTIFY_QUEUE] = {"kanaria_notification_queue_depth", KN_SM_GAUGE,
                            {"notification", NULL},
                            "Events waiting for delivery to the notification, the one being "
                            "delivered included.", {0}},
    [KN_SM_ENGINE_QUEUE] = {"kanaria_engine_queue_depth", KN_SM_GAUGE, {NULL, NULL},
                            "Open deployments the engine is not running yet (each waits for the "
                            "running deployment of its app).", {0}},
    [KN_SM_ENGINE_RUNNING] = {"kanaria_engine_running_deployments", KN_SM_GAUGE, {NULL, NULL},
                              "Deployments the engine runs now.", {0}},
};

struct kn_sm_series {
    char *l[2];
    double value; /* counter, gauge; the sum of a histogram */
    unsigned long long count;
    unsigned long long bucket[KN_SM_MAX_BUCKETS]; /* not cumulative */
};

struct kn_selfmetrics {
    struct {
        struct kn_sm_series *items;
        size_t n;
    } family[KN_SM_COUNT];
};

static struct kn_selfmetrics *kn_sm_process;

struct kn_selfmetrics *kn_selfmetrics_new(void)
{
    return kn_calloc(1, sizeof(struct kn_selfmetrics));
}

void kn_selfmetrics_free(struct kn_selfmetrics *m)
{
    if (!m) {
        return;
    }
    for (size_t f = 0; f < KN_SM_COUNT; f++) {
        for (size_t i = 0; i < m->family[f].n; i++) {
            free(m->family[f].items[i].l[0]);
            free(m->family[f].items[i].l[1]);
        }
        free(m->family[f].items);
    }
    free(m);
}

struct kn_selfmetrics *kn_selfmetrics_process(void)
{
    if (!kn_sm_process) {
        kn_sm_process = kn_selfmetrics_new();
    }
    return kn_sm_process;
}

void kn_selfmetrics_process_release(void)
{
    kn_selfmetrics_free(kn_sm_process);
    kn_sm_process = NULL;
}

static int kn_sm_same(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "") == 0;
}

/* The series of family id with these labels, made when new; NULL for a call of the wrong kind. */
static struct kn_sm_series *kn_sm_find(struct kn_selfmetrics *m, enum kn_selfmetric id,
                                       enum kn_sm_type type, const char *l1, const char *l2)
{
    const struct kn_sm_family *fam;
    struct kn_sm_series *s;

    if ((unsigned)id >= KN_SM_COUNT || kn_sm_families[id].type != type) {
        return NULL;
    }
    if (!m) {
        m = kn_selfmetrics_process();
    }
    fam = &kn_sm_families[id];
    l1 = fam->label[0] ? l1 : NULL;
    l2 = fam->label[1] ? l2 : NULL;
    for (size_t i = 0; i < m->family[id].n; i++) {
        s = &m->family[id].items[i];
        if (kn_sm_same(s->l[0], l1) && kn_sm_same(s->l[1], l2)) {
            return s;
        }
    }
    m->family[id].items = kn_reallocarray(m->family[id].items, m->family[id].n + 1,
                                          sizeof(*m->family[id].items));
    s = &m->family[id].items[m->family[id].n++];
    memset(s, 0, sizeof(*s));
    s->l[0] = kn_strdup(l1 ? l1 : "");
    s->l[1] = kn_strdup(l2 ? l2 : "");
    return s;
}

void kn_selfmetrics_add(struct kn_selfmetrics *m, enum kn_selfmetric id, const char *l1,
                        const char *l2, double v)
{
    struct kn_sm_series *s = kn_sm_find(m, id, KN_SM_COUNTER, l1, l2);

    if (s && v >= 0) {
        s->value += v;
    }
}

void kn_selfmetrics_set(struct kn_selfmetrics *m, enum kn_selfmetric id, const char *l1,
                        const char *l2, double v)
{
    struct kn_sm_series *s = kn_sm_find(m, id, KN_SM_GAUGE, l1, l2);

    if (s) {
        s->value = v;
    }
}

void kn_selfmetrics_observe(struct kn_selfmetrics *m, enum kn_selfmetric id, const char *l1,
                            const char *l2, double v)
{
    struct kn_sm_series *s = kn_sm_find(m, id, KN_SM_HISTOGRAM, l1, l2);
    const double *b = kn_sm_families[id].buckets;

    if (!s) {
        return;
    }
    s->value += v;
    s->count++;
    for (size_t i = 0; i < KN_SM_MAX_BUCKETS && b[i] > 0; i++) {
        if (v <= b[i]) {
            s->bucket[i]++;
            break;
        }
    }
}

/* ---- the text format ------------------------------------------------------------------------- */

void kn_selfmetrics_label_value(struct kn_buf *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"') {
            kn_buf_addch(out, '\\');
            kn_buf_addch(out, *s);
        } else if (*s == '\n') {
            kn_buf_adds(out, "\\n");
        } else {
            kn_buf_addch(out, *s);
        }
    }
}

/* name{labels[,le="le"]} value */
static void kn_sm_sample(struct kn_buf *out, const struct kn_sm_family *fam, const char *suffix,
                         const struct kn_sm_series *s, const char *le, double value)
{
    int n = 0;

    kn_buf_addf(out, "%s%s", fam->name, suffix);
    for (size_t i = 0; i < 2; i++) {
        if (fam->label[i]) {
            kn_buf_addf(out, "%s%s=\"", n++ ? "," : "{", fam->label[i]);
            kn_selfmetrics_label_value(out, s->l[i]);
            kn_buf_addch(out, '"');
        }
    }
    if (le) {
        kn_buf_addf(out, "%sle=\"%s\"", n++ ? "," : "{", le);
    }
    kn_buf_addf(out, "%s %.15g\n", n ? "}" : "", value);
}

void kn_selfmetrics_render(struct kn_selfmetrics *m, struct kn_buf *out)
{
    static const char *const types[] = {"counter", "gauge", "histogram"};

    if (!m) {
        m = kn_selfmetrics_process();
    }
    for (size_t f = 0; f < KN_SM_COUNT; f++) {
        const struct kn_sm_family *fam = &kn_sm_families[f];
        kn_buf_addf(out, "# HELP %s %s\n# TYPE %s %s\n", fam->name, fam->help, fam->name,
                    types[fam->type]);
        for (size_t i = 0; i < m->family[f].n; i++) {
            const struct kn_sm_series *s = &m->family[f].items[i];
            unsigned long long cum = 0;
            char le[32];
            if (fam->type != KN_SM_HISTOGRAM) {
                kn_sm_sample(out, fam, "", s, NULL, s->value);
                continue;
            }
            for (size_t b = 0; b < KN_SM_MAX_BUCKETS && fam->buckets[b] > 0; b++) {
                cum += s->bucket[b];
                snprintf(le, sizeof(le), "%g", fam->buckets[b]);
                kn_sm_sample(out, fam, "_bucket", s, le, (double)cum);
            }
            kn_sm_sample(out, fam, "_bucket", s, "+Inf", (double)s->count);
            kn_sm_sample(out, fam, "_sum", s, NULL, s->value);
            kn_sm_sample(out, fam, "_count", s, NULL, (double)s->count);
        }
    }
}

/* ---- the process ----------------------------------------------------------------------------- */

static void kn_sm_process_gauge(struct kn_buf *out, const char *name, const char *type,
                                const char *help, double v)
{
    kn_buf_addf(out, "# HELP %s %s\n# TYPE %s %s\n%s %.15g\n", name, help, name, type, name, v);
}

/* The boot time in seconds since the epoch ("btime" of /proc/stat), or -1. */
static long long kn_sm_boot_time(const char *stat_file)
{
    FILE *f = fopen(stat_file, "r");
    char line[256];
    long long btime = -1;

    while (f && fgets(line, sizeof(line), f)) {
        if (sscanf(line, "btime %lld", &btime) == 1) {
            break;
        }
    }
    if (f) {
        fclose(f);
    }
    return btime;
}

void kn_selfmetrics_render_process(struct kn_buf *out, const char *proc_dir,
                                   const char *stat_file)
{
    char path[512], text[1024], *p;
    unsigned long long utime, stime, start;
    long long rss, btime;
    long ticks = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    FILE *f;
    DIR *d;
    size_t n;

    snprintf(path, sizeof(path), "%s/stat", proc_dir);
    if ((f = fopen(path, "r")) != NULL) {
        n = fread(text, 1, sizeof(text) - 1, f);
        text[n] = '\0';
        fclose(f);
        /* the fields after the command, which may hold spaces and parentheses: state is the 3rd,
         * utime the 14th, stime the 15th, starttime the 22nd, rss the 24th */
        if ((p = strrchr(text, ')')) != NULL && ticks > 0 &&
            sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d "
                          "%*d %*d %llu %*u %lld", &utime, &stime, &start, &rss) == 4) {
            kn_sm_process_gauge(out, "process_cpu_seconds_total", "counter",
                                "Total user and system CPU time spent in seconds.",
                                (double)(utime + stime) / (double)ticks);
            kn_sm_process_gauge(out, "process_resident_memory_bytes", "gauge",
                                "Resident memory size in bytes.", (double)rss * (double)page);
            if ((btime = kn_sm_boot_time(stat_file)) >= 0) {
                kn_sm_process_gauge(out, "process_start_time_seconds", "gauge",
                                    "Start time of the process since unix epoch in seconds.",
                                    (double)btime + (double)start / (double)ticks);
            }
        }
    }
    snprintf(path, sizeof(path), "%s/fd", proc_dir);
    if ((d = opendir(path)) != NULL) {
        struct dirent *e;
        n = 0;
        while ((e = readdir(d)) != NULL) {
            n += e->d_name[0] != '.';
        }
        closedir(d);
        /* the folder being read is one of them, as the client libraries count it too */
        kn_sm_process_gauge(out, "process_open_fds", "gauge", "Number of open file descriptors.",
                            (double)n);
    }
}
