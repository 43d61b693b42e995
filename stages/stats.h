/*
 * Statistics for the ANALYSIS stage: the Mann-Whitney U test that compares a canary's samples with
 * the primary's or the baseline's, and the small summaries a verdict logs (median, mean, min,
 * max). Pure functions of their inputs: no allocation survives a call, no state, any thread.
 *
 * NaN means "no sample" everywhere here (Prometheus returns NaN for 0/0 rates): NaN values are
 * dropped before anything is computed. Infinities are ordinary values that rank above (or below)
 * every finite one.
 */
#ifndef KANARIA_STATS_H
#define KANARIA_STATS_H

#include <stddef.h>

/* What the test is asked about x compared with y. */
enum kn_stats_alternative {
    KN_STATS_TWO_SIDED = 0, /* x and y differ in either direction */
    KN_STATS_GREATER,       /* x tends to be larger than y */
    KN_STATS_LESS,          /* x tends to be smaller than y */
};

/* The samples of x and y above which no exact distribution is computed whatever the ties: the
 * exact method is used when there are no ties and one side has at most this many samples
 * (scipy.stats.mannwhitneyu's method='auto'), and nx * ny stays within KN_STATS_EXACT_MAX_CELLS. */
#define KN_STATS_EXACT_MAX_SMALL 8
#define KN_STATS_EXACT_MAX_CELLS 1000000

/* The outcome of kn_stats_mann_whitney. */
struct kn_stats_mwu {
    double u;        /* U of x (scipy's U1): pairs (xi, yj) with xi > yj, ties counting 1/2 */
    double p;        /* p-value for the alternative asked, in [0, 1] */
    double z;        /* (u - nx*ny/2) / sigma with the tie correction and no continuity
                        correction: > 0 when x ranks above y; 0 when sigma is 0 (all equal) */
    double auc;      /* u / (nx * ny): the chance that a sample of x exceeds one of y (ties 1/2);
                        0.5 means no difference */
    double median_x; /* medians of the samples kept */
    double median_y;
    double effect; /* median_x - median_y: the size of the difference, in the metric's unit */
    int exact;     /* 1: p from the exact distribution of U; 0: normal approximation with
                      tie and continuity corrections */
    size_t nx;     /* samples of x kept (NaN dropped) */
    size_t ny;
    size_t dropped; /* NaN values dropped from both sides */
};

/*
 * The Mann-Whitney U test (Wilcoxon rank-sum) of x against y, as scipy.stats.mannwhitneyu with
 * method='auto' and use_continuity=True computes it: p from the exact distribution of U when
 * there are no ties and a side has at most KN_STATS_EXACT_MAX_SMALL samples, else from the normal
 * approximation with tie correction and continuity correction. The two-sided p is twice the
 * smaller one-sided p, capped at 1; samples that are all equal give p = 1.
 *
 * x and y are borrowed for the call. Returns 0 and fills *out, or KN_EINVAL (and *out zeroed but
 * for nx, ny and dropped) when a side has no sample once NaN is dropped: the caller treats that
 * as inconclusive.
 */
int kn_stats_mann_whitney(struct kn_stats_mwu *out, const double *x, size_t nx, const double *y,
                          size_t ny, enum kn_stats_alternative alt);

/* Summaries of v[0..n) with NaN dropped; each returns NaN when nothing is left. The median of an
 * even count is the mean of the two middle values. */
double kn_stats_median(const double *v, size_t n);
double kn_stats_mean(const double *v, size_t n);
double kn_stats_min(const double *v, size_t n);
double kn_stats_max(const double *v, size_t n);

/* The number of values in v[0..n) that are not NaN. */
size_t kn_stats_count(const double *v, size_t n);

#endif /* KANARIA_STATS_H */
