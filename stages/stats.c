/*
 * The Mann-Whitney U test and sample summaries (see stats.h).
 *
 * The exact distribution of U under the null hypothesis counts, for each k, the arrangements of
 * nx x-samples and ny y-samples in which k pairs have x above y. Those counts are the coefficients
 * of the Gaussian binomial [nx+ny choose a]_q (a the smaller side), built as the product over
 * i = 1..a of (1 - q^(b+i)) / (1 - q^i): a multiplication and a running sum per factor, so
 * a * (a*b) additions in all. The low coefficients only ever see additions of small integers, so
 * they are exact, and the p-value is summed from the low end (the distribution is symmetric).
 */
#include "stats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kanaria/alloc.h"
#include "kanaria/error.h"

/* One sample in the pooled ranking. */
struct kn_stats_obs {
    double v;
    int from_x;
};

static int kn_stats_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a;
    double y = *(const double *)b;

    return (x > y) - (x < y);
}

static int kn_stats_cmp_obs(const void *a, const void *b)
{
    const struct kn_stats_obs *x = a;
    const struct kn_stats_obs *y = b;

    return (x->v > y->v) - (x->v < y->v);
}

/* The values of v that are not NaN, sorted, in a new array (caller frees; NULL when none). */
static double *kn_stats_sorted(const double *v, size_t n, size_t *count)
{
    double *s = NULL;
    size_t k = 0;

    *count = kn_stats_count(v, n);
    if (*count == 0) {
        goto out;
    }
    s = kn_reallocarray(NULL, *count, sizeof(*s));
    for (size_t i = 0; i < n; i++) {
        if (!isnan(v[i])) {
            s[k++] = v[i];
        }
    }
    qsort(s, k, sizeof(*s), kn_stats_cmp_double);
out:
    return s;
}

size_t kn_stats_count(const double *v, size_t n)
{
    size_t count = 0;

    for (size_t i = 0; v && i < n; i++) {
        count += !isnan(v[i]);
    }
    return count;
}

double kn_stats_median(const double *v, size_t n)
{
    size_t count;
    double *s = kn_stats_sorted(v, n, &count);
    double m = NAN;

    if (!s) {
        goto out;
    }
    m = count % 2 ? s[count / 2] : (s[count / 2 - 1] + s[count / 2]) / 2.0;
out:
    free(s);
    return m;
}

double kn_stats_mean(const double *v, size_t n)
{
    double sum = 0.0;
    size_t count = 0;

    for (size_t i = 0; v && i < n; i++) {
        if (!isnan(v[i])) {
            sum += v[i];
            count++;
        }
    }
    return count ? sum / (double)count : NAN;
}

double kn_stats_min(const double *v, size_t n)
{
    double m = NAN;

    for (size_t i = 0; v && i < n; i++) {
        if (!isnan(v[i]) && (isnan(m) || v[i] < m)) {
            m = v[i];
        }
    }
    return m;
}

double kn_stats_max(const double *v, size_t n)
{
    double m = NAN;

    for (size_t i = 0; v && i < n; i++) {
        if (!isnan(v[i]) && (isnan(m) || v[i] > m)) {
            m = v[i];
        }
    }
    return m;
}

/* Rank the pooled samples (ties get their average rank); return the rank sum of x, with the tie
 * term sum(t^3 - t) over groups of t equal values in *tie_term and whether any tie in *ties. */
static double kn_stats_rank_sum_x(struct kn_stats_obs *obs, size_t n, double *tie_term, int *ties)
{
    double r1 = 0.0;

    *tie_term = 0.0;
    *ties = 0;
    qsort(obs, n, sizeof(*obs), kn_stats_cmp_obs);
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && obs[j].v == obs[i].v) {
            j++;
        }
        /* Ranks i+1 .. j share their average. */
        double t = (double)(j - i);
        double rank = ((double)(i + 1) + (double)j) / 2.0;
        for (size_t k = i; k < j; k++) {
            if (obs[k].from_x) {
                r1 += rank;
            }
        }
        if (j - i > 1) {
            *ties = 1;
            *tie_term += t * t * t - t;
        }
        i = j;
    }
    return r1;
}

/* P(U >= u) under the null hypothesis for samples of m and n without ties, exactly. */
static double kn_stats_exact_sf(long long u, size_t m, size_t n)
{
    size_t a = m < n ? m : n;
    size_t b = m < n ? n : m;
    size_t len = a * b + 1;
    double *g = kn_calloc(len, sizeof(*g));
    double total = 0.0;
    double tail = 0.0;
    long long lo;

    g[0] = 1.0;
    for (size_t i = 1, deg = 0; i <= a; i++, deg += b) {
        /* Multiply by (1 - q^(b+i)); the product has degree deg + b + i, of which the last i
         * coefficients cancel in the division below (they never exceed len). */
        size_t shift = b + i;
        size_t top = deg + b + i < len ? deg + b + i : len - 1;
        for (size_t k = top; k >= shift; k--) { /* shift >= 1: k never wraps */
            g[k] -= g[k - shift];
        }
        /* Divide by (1 - q^i): a running sum with stride i, up to the new degree deg + b. */
        for (size_t k = i; k <= deg + b; k++) {
            g[k] += g[k - i];
        }
        for (size_t k = deg + b + 1; k <= top; k++) {
            g[k] = 0.0;
        }
    }
    for (size_t k = 0; k < len; k++) {
        total += g[k];
    }
    /* By symmetry P(U >= u) = P(U <= mn - u), summed from the exact low end. */
    lo = (long long)(a * b) - u;
    for (long long k = 0; k <= lo && k < (long long)len; k++) {
        tail += g[k];
    }
    free(g);
    return tail / total;
}

/* P(Z >= z) for a standard normal Z. */
static double kn_stats_norm_sf(double z)
{
    return 0.5 * erfc(z / sqrt(2.0));
}

int kn_stats_mann_whitney(struct kn_stats_mwu *out, const double *x, size_t nx, const double *y,
                          size_t ny, enum kn_stats_alternative alt)
{
    struct kn_stats_obs *obs = NULL;
    size_t n = 0;
    double tie_term;
    int ties;
    int rc = 0;

    memset(out, 0, sizeof(*out));
    out->nx = kn_stats_count(x, nx);
    out->ny = kn_stats_count(y, ny);
    out->dropped = (nx - out->nx) + (ny - out->ny);
    if (out->nx == 0 || out->ny == 0) {
        rc = KN_EINVAL;
        goto out;
    }

    obs = kn_reallocarray(NULL, out->nx + out->ny, sizeof(*obs));
    for (size_t i = 0; i < nx; i++) {
        if (!isnan(x[i])) {
            obs[n++] = (struct kn_stats_obs){.v = x[i], .from_x = 1};
        }
    }
    for (size_t i = 0; i < ny; i++) {
        if (!isnan(y[i])) {
            obs[n++] = (struct kn_stats_obs){.v = y[i], .from_x = 0};
        }
    }

    double n1 = (double)out->nx;
    double n2 = (double)out->ny;
    double r1 = kn_stats_rank_sum_x(obs, n, &tie_term, &ties);
    double u1 = r1 - n1 * (n1 + 1.0) / 2.0;
    double u2 = n1 * n2 - u1;
    double mu = n1 * n2 / 2.0;
    double nn = n1 + n2;
    double var = n1 * n2 / 12.0 * ((nn + 1.0) - tie_term / (nn * (nn - 1.0)));
    double sigma = var > 0.0 ? sqrt(var) : 0.0;
    /* The U the alternative looks at: large values speak against the null hypothesis. */
    double u = alt == KN_STATS_GREATER ? u1 : alt == KN_STATS_LESS ? u2 : fmax(u1, u2);

    out->u = u1;
    out->auc = u1 / (n1 * n2);
    out->z = sigma > 0.0 ? (u1 - mu) / sigma : 0.0;
    out->median_x = kn_stats_median(x, nx);
    out->median_y = kn_stats_median(y, ny);
    out->effect = out->median_x - out->median_y;
    out->exact = !ties &&
                 (out->nx <= KN_STATS_EXACT_MAX_SMALL || out->ny <= KN_STATS_EXACT_MAX_SMALL) &&
                 out->nx * out->ny <= KN_STATS_EXACT_MAX_CELLS;
    if (out->exact) {
        out->p = kn_stats_exact_sf(llround(u), out->nx, out->ny);
    } else if (sigma > 0.0) {
        out->p = kn_stats_norm_sf((u - mu - 0.5) / sigma);
    } else {
        out->p = 1.0; /* every sample equal: nothing to tell them apart */
    }
    if (alt == KN_STATS_TWO_SIDED) {
        out->p *= 2.0;
    }
    out->p = fmin(fmax(out->p, 0.0), 1.0);
out:
    free(obs);
    return rc;
}
