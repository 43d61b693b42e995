/*
 * kanaria's metrics about itself (fetches, webhooks, notifications, the engine's queue and the
 * process), kept in memory since start and rendered by GET /metrics in the Prometheus text
 * format 0.0.4. The families are fixed in a table (kanaria_ names, HELP, labels, histogram
 * buckets); a series is made at its first update and kept until the registry is freed.
 *
 * Modules update the process's registry (pass NULL); tests make their own with
 * kn_selfmetrics_new. Everything runs on the loop thread: there is no locking.
 */
#ifndef KANARIA_SELFMETRICS_H
#define KANARIA_SELFMETRICS_H

#include "kanaria/alloc.h"

enum kn_selfmetric {
    KN_SM_FETCH_DURATION,    /* histogram {repo}: a fetch's child process, start to end */
    KN_SM_FETCH_FAILURES,    /* counter {repo}: fetches (or their planning) that failed */
    KN_SM_RECONCILE_LAG,     /* gauge {repo}: last new head, fetch asked -> plans recorded */
    KN_SM_WEBHOOK,           /* counter {result}: push webhooks by outcome */
    KN_SM_NOTIFY_DELIVERIES, /* counter {notification,result}: delivery attempts by outcome */
    KN_SM_NOTIFY_QUEUE,      /* gauge {notification}: events waiting, the one in flight counted */
    KN_SM_ENGINE_QUEUE,      /* gauge: open deployments waiting behind their app's running one */
    KN_SM_ENGINE_RUNNING,    /* gauge: deployments the engine runs now */
    KN_SM_COUNT
};

struct kn_selfmetrics;

/* A new empty registry; free with kn_selfmetrics_free (NULL is a no-op). */
struct kn_selfmetrics *kn_selfmetrics_new(void);
void kn_selfmetrics_free(struct kn_selfmetrics *m);

/* The process's registry, made at first use (what m == NULL means below). */
struct kn_selfmetrics *kn_selfmetrics_process(void);
/* Free the process's registry (at exit; a later update makes a new one). */
void kn_selfmetrics_process_release(void);

/* Update the series of family `id` with label values l1, l2 (NULL for a family with fewer
 * labels; the strings are copied). add: a counter grows by v (>= 0); set: a gauge becomes v;
 * observe: a histogram counts v in its buckets. A call of the wrong kind for `id` does
 * nothing. */
void kn_selfmetrics_add(struct kn_selfmetrics *m, enum kn_selfmetric id, const char *l1,
                        const char *l2, double v);
void kn_selfmetrics_set(struct kn_selfmetrics *m, enum kn_selfmetric id, const char *l1,
                        const char *l2, double v);
void kn_selfmetrics_observe(struct kn_selfmetrics *m, enum kn_selfmetric id, const char *l1,
                            const char *l2, double v);

/* Append s to out as the text format wants a label value: backslash, double quote and
 * newline escaped (`\\`, `\"`, `\n`); the quotes around it are the caller's. */
void kn_selfmetrics_label_value(struct kn_buf *out, const char *s);

/* Append every family (HELP, TYPE, then its series in the order they were made) to out. */
void kn_selfmetrics_render(struct kn_selfmetrics *m, struct kn_buf *out);

/* Append process_resident_memory_bytes, process_cpu_seconds_total, process_open_fds and
 * process_start_time_seconds, read from proc_dir (the /proc/PID folder: "/proc/self") and
 * stat_file (for the boot time: "/proc/stat"), as the Prometheus client libraries export them.
 * A value that cannot be read is left out. */
void kn_selfmetrics_render_process(struct kn_buf *out, const char *proc_dir,
                                   const char *stat_file);

#endif /* KANARIA_SELFMETRICS_H */
