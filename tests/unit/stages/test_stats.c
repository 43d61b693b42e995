/*
 * Unit tests for stages/stats: the Mann-Whitney U test against reference values from
 * scipy.stats.mannwhitneyu (scipy 1.10.1, defaults method='auto', use_continuity=True), and the
 * summaries. Each reference names the call that produced it; U is scipy's statistic, the U of x.
 */
#include "testutil.h"

#include <math.h>
#include <stdio.h>

#include "kanaria/error.h"
#include "stats.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* p and U of one alternative as scipy reported them. */
struct ref {
    enum kn_stats_alternative alt;
    double u;
    double p;
};

static void assert_close(double got, double want, double rel)
{
    if (!(fabs(got - want) <= rel * fmax(fabs(want), 1e-300))) {
        fail_msg("got %.17g, want %.17g", got, want);
    }
}

static void check(const double *x, size_t nx, const double *y, size_t ny, const struct ref *refs,
                  size_t nrefs, int exact)
{
    for (size_t i = 0; i < nrefs; i++) {
        struct kn_stats_mwu r;
        assert_int_equal(kn_stats_mann_whitney(&r, x, nx, y, ny, refs[i].alt), 0);
        assert_close(r.u, refs[i].u, 1e-12);
        assert_close(r.p, refs[i].p, 1e-9);
        assert_int_equal(r.exact, exact);
        assert_true(r.p >= 0.0 && r.p <= 1.0);
    }
}

static void test_tiny_exact(void **state)
{
    /* mannwhitneyu([1,2,3], [4,5,6], alternative='two-sided') -> U=0.0 p=0.1
     * mannwhitneyu([1,2,3], [4,5,6], alternative='greater')   -> U=0.0 p=1.0
     * mannwhitneyu([1,2,3], [4,5,6], alternative='less')      -> U=0.0 p=0.05 */
    static const double x[] = {1, 2, 3};
    static const double y[] = {4, 5, 6};
    static const struct ref refs[] = {
        {KN_STATS_TWO_SIDED, 0.0, 0.1},
        {KN_STATS_GREATER, 0.0, 1.0},
        {KN_STATS_LESS, 0.0, 0.05},
    };
    struct kn_stats_mwu r;

    (void)state;
    check(x, N(x), y, N(y), refs, N(refs), 1);
    assert_int_equal(kn_stats_mann_whitney(&r, x, N(x), y, N(y), KN_STATS_LESS), 0);
    assert_int_equal(r.nx, 3);
    assert_int_equal(r.ny, 3);
    assert_int_equal(r.dropped, 0);
    assert_close(r.median_x, 2.0, 1e-15);
    assert_close(r.median_y, 5.0, 1e-15);
    assert_close(r.effect, -3.0, 1e-15);
    assert_close(r.auc, 0.0, 1e-15);
    assert_true(r.z < 0.0);
}

static void test_exact_each_alternative(void **state)
{
    /* x = [3.1,4.5,2.2,5.0,6.3], y = [1.0,2.0,0.5,1.5]
     * mannwhitneyu(x, y, alternative='two-sided') -> U=20.0 p=0.015873015873015872
     * mannwhitneyu(x, y, alternative='greater')   -> U=20.0 p=0.007936507936507936
     * mannwhitneyu(x, y, alternative='less')      -> U=20.0 p=1.0 */
    static const double x[] = {3.1, 4.5, 2.2, 5.0, 6.3};
    static const double y[] = {1.0, 2.0, 0.5, 1.5};
    static const struct ref refs[] = {
        {KN_STATS_TWO_SIDED, 20.0, 0.015873015873015872},
        {KN_STATS_GREATER, 20.0, 0.007936507936507936},
        {KN_STATS_LESS, 20.0, 1.0},
    };
    struct kn_stats_mwu r;

    (void)state;
    check(x, N(x), y, N(y), refs, N(refs), 1);
    assert_int_equal(kn_stats_mann_whitney(&r, x, N(x), y, N(y), KN_STATS_GREATER), 0);
    assert_close(r.auc, 1.0, 1e-15);
    assert_close(r.effect, 4.5 - 1.25, 1e-15); /* np.median: 4.5 and 1.25 */
}

static void test_exact_fully_separated(void **state)
{
    /* x = [11..18], y = [1..8]: the most extreme arrangement, 1 in C(16,8) = 12870.
     * mannwhitneyu(x, y, alternative='two-sided') -> U=64.0 p=0.0001554001554001554
     * mannwhitneyu(x, y, alternative='greater')   -> U=64.0 p=7.77000777000777e-05
     * mannwhitneyu(x, y, alternative='less')      -> U=64.0 p=0.9999999999999997 */
    static const double x[] = {11, 12, 13, 14, 15, 16, 17, 18};
    static const double y[] = {1, 2, 3, 4, 5, 6, 7, 8};
    static const struct ref refs[] = {
        {KN_STATS_TWO_SIDED, 64.0, 0.0001554001554001554},
        {KN_STATS_GREATER, 64.0, 7.77000777000777e-05},
        {KN_STATS_LESS, 64.0, 0.9999999999999997},
    };

    (void)state;
    check(x, N(x), y, N(y), refs, N(refs), 1);
}

static void test_exact_small_against_many(void **state)
{
    /* One side of 5 samples is enough for the exact method, however long the other one.
     * y = [i * 0.37 % 5 + 0.013 * i for i in range(30)] (as listed below)
     * mannwhitneyu([3.3,1.7,2.9,4.1,2.5], y, alternative='two-sided') -> U=85.0
     * p=0.6638100988195864 mannwhitneyu([3.3,1.7,2.9,4.1,2.5], y, alternative='greater')   ->
     * U=85.0 p=0.3319050494097932 mannwhitneyu([3.3,1.7,2.9,4.1,2.5], y, alternative='less') ->
     * U=85.0 p=0.6846121146405777 */
    static const double x[] = {3.3, 1.7, 2.9, 4.1, 2.5};
    double y[30];
    static const struct ref refs[] = {
        {KN_STATS_TWO_SIDED, 85.0, 0.6638100988195864},
        {KN_STATS_GREATER, 85.0, 0.3319050494097932},
        {KN_STATS_LESS, 85.0, 0.6846121146405777},
    };

    (void)state;
    for (int i = 0; i < 30; i++) {
        y[i] = fmod((double)i * 0.37, 5.0) + 0.013 * i;
    }
    check(x, N(x), y, N(y), refs, N(refs), 1);
}

static void test_single_samples(void **state)
{
    /* mannwhitneyu([1], [2], alternative='two-sided') -> U=0.0 p=1.0
     * mannwhitneyu([1], [2], alternative='greater')   -> U=0.0 p=1.0
     * mannwhitneyu([1], [2], alternative='less')      -> U=0.0 p=0.5
     * mannwhitneyu([2], [1], alternative='greater')   -> U=1.0 p=0.5 */
    static const double one[] = {1};
    static const double two[] = {2};
    static const struct ref refs[] = {
        {KN_STATS_TWO_SIDED, 0.0, 1.0},
        {KN_STATS_GREATER, 0.0, 1.0},
        {KN_STATS_LESS, 0.0, 0.5},
    };
    static const struct ref swapped[] = {{KN_STATS_GREATER, 1.0, 0.5}};

    (void)state;
    check(one, 1, two, 1, refs, N(refs), 1);
    check(two, 1, one, 1, swapped, N(swapped), 1);
}

static void test_ties_use_normal_approximation(void **state)
{
    /* Ties make scipy's 'auto' choose the normal approximation, tie-corrected.
     * mannwhitneyu([1,2,2,3], [2,3,3,4], alternative='two-sided') -> U=3.0 p=0.1720337089218229
     * mannwhitneyu([1,2,2,3], [2,3,3,4], alternative='greater')   -> U=3.0 p=0.9524598065992065
     * mannwhitneyu([1,2,2,3], [2,3,3,4], alternative='less')      -> U=3.0 p=0.08601685446091145 */
    static const double x[] = {1, 2, 2, 3};
    static const double y[] = {2, 3, 3, 4};
    static const struct ref refs[] = {
        {KN_STATS_TWO_SIDED, 3.0, 0.1720337089218229},
        {KN_STATS_GREATER, 3.0, 0.9524598065992065},
        {KN_STATS_LESS, 3.0, 0.08601685446091145},
    };

    (void)state;
    check(x, N(x), y, N(y), refs, N(refs), 0);
}

static void test_larger_with_ties(void **state)
{
    /* x = [1,1,2,2,2,3,3,4,5,5], y = [2,3,3,4,4,4,5,5,6,6,7]
     * mannwhitneyu(x, y, alternative='two-sided') -> U=24.0 p=0.02943242027649015
     * mannwhitneyu(x, y, alternative='greater')   -> U=24.0 p=0.9877451508538142
     * mannwhitneyu(x, y, alternative='less')      -> U=24.0 p=0.014716210138245076 */
    static const double x[] = {1, 1, 2, 2, 2, 3, 3, 4, 5, 5};
    static const double y[] = {2, 3, 3, 4, 4, 4, 5, 5, 6, 6, 7};
    static const struct ref refs[] = {
        {KN_STATS_TWO_SIDED, 24.0, 0.02943242027649015},
        {KN_STATS_GREATER, 24.0, 0.9877451508538142},
        {KN_STATS_LESS, 24.0, 0.014716210138245076},
    };

    (void)state;
    check(x, N(x), y, N(y), refs, N(refs), 0);
}

static const double large_x[] = {10.2, 11.5, 9.8,  12.1, 10.9, 11.3, 13.0, 10.4, 12.6, 11.8,
                                 9.5,  12.9, 11.1, 10.7, 13.4, 12.2, 11.6, 10.1, 12.4, 11.9};
static const double large_y[] = {9.9,  10.3,  9.1,  10.8,  9.4,  10.0, 11.2, 9.6,   8.8,
                                 10.5, 9.3,   11.0, 9.7,   10.6, 8.9,  9.2,  10.25, 11.4,
                                 9.05, 10.15, 9.45, 10.95, 8.7,  9.85, 10.45};

static void test_large_normal_approximation(void **state)
{
    /* 20 against 25 samples, no ties: both sides above 8, so the normal approximation.
     * mannwhitneyu(large_x, large_y, alternative='two-sided') -> U=429.0 p=4.557593043282218e-05
     * mannwhitneyu(large_x, large_y, alternative='greater')   -> U=429.0 p=2.278796521641109e-05
     * mannwhitneyu(large_x, large_y, alternative='less')      -> U=429.0 p=0.9999793486448787
     * np.median(large_x) -> 11.55, np.median(large_y) -> 9.9 */
    static const struct ref refs[] = {
        {KN_STATS_TWO_SIDED, 429.0, 4.557593043282218e-05},
        {KN_STATS_GREATER, 429.0, 2.278796521641109e-05},
        {KN_STATS_LESS, 429.0, 0.9999793486448787},
    };
    struct kn_stats_mwu r;

    (void)state;
    check(large_x, N(large_x), large_y, N(large_y), refs, N(refs), 0);
    assert_int_equal(
        kn_stats_mann_whitney(&r, large_x, N(large_x), large_y, N(large_y), KN_STATS_TWO_SIDED), 0);
    /* z = (429 - 20*25/2) / sqrt(20*25*(45+1)/12), without the continuity correction. */
    assert_close(r.z, (429.0 - 250.0) / sqrt(20.0 * 25.0 * 46.0 / 12.0), 1e-12);
    assert_close(r.auc, 429.0 / 500.0, 1e-15);
    assert_close(r.median_x, 11.55, 1e-12);
    assert_close(r.median_y, 9.9, 1e-12);
    assert_close(r.effect, 11.55 - 9.9, 1e-12);
}

static void test_all_equal(void **state)
{
    /* mannwhitneyu([5,5,5], [5,5,5,5], alternative=any of the three) -> U=6.0 p=1.0 */
    static const double x[] = {5, 5, 5};
    static const double y[] = {5, 5, 5, 5};
    static const struct ref refs[] = {
        {KN_STATS_TWO_SIDED, 6.0, 1.0},
        {KN_STATS_GREATER, 6.0, 1.0},
        {KN_STATS_LESS, 6.0, 1.0},
    };
    struct kn_stats_mwu r;

    (void)state;
    check(x, N(x), y, N(y), refs, N(refs), 0);
    assert_int_equal(kn_stats_mann_whitney(&r, x, N(x), y, N(y), KN_STATS_TWO_SIDED), 0);
    assert_true(r.z == 0.0);
    assert_close(r.auc, 0.5, 1e-15);
    assert_true(r.effect == 0.0);
}

static void test_nan_dropped(void **state)
{
    /* mannwhitneyu([3.1,nan,4.5,2.2,5.0,6.3], [1.0,2.0,nan,nan,0.5,1.5], nan_policy='omit',
     *              alternative='two-sided') -> U=20.0 p=0.015873015873015872
     * (same with 'greater' -> p=0.007936507936507936, 'less' -> p=1.0): as without the NaN. */
    static const double x[] = {3.1, NAN, 4.5, 2.2, 5.0, 6.3};
    static const double y[] = {1.0, 2.0, NAN, NAN, 0.5, 1.5};
    static const struct ref refs[] = {
        {KN_STATS_TWO_SIDED, 20.0, 0.015873015873015872},
        {KN_STATS_GREATER, 20.0, 0.007936507936507936},
        {KN_STATS_LESS, 20.0, 1.0},
    };
    struct kn_stats_mwu r;

    (void)state;
    check(x, N(x), y, N(y), refs, N(refs), 1);
    assert_int_equal(kn_stats_mann_whitney(&r, x, N(x), y, N(y), KN_STATS_TWO_SIDED), 0);
    assert_int_equal(r.nx, 5);
    assert_int_equal(r.ny, 4);
    assert_int_equal(r.dropped, 3);
    assert_close(r.median_x, 4.5, 1e-15);
    assert_close(r.median_y, 1.25, 1e-15);
}

static void test_infinities_rank_at_the_ends(void **state)
{
    /* scipy 1.10 fails on infinities in its exact path, so the reference uses +-1e300, which
     * rank the same:
     * mannwhitneyu([1.0,1e300,3.0], [2.0,-1e300,0.5,4.0], alternative='two-sided') -> U=9.0 p=0.4
     * mannwhitneyu([1.0,1e300,3.0], [2.0,-1e300,0.5,4.0], alternative='greater')   -> U=9.0 p=0.2
     * mannwhitneyu([1.0,1e300,3.0], [2.0,-1e300,0.5,4.0], alternative='less')
     *     -> U=9.0 p=0.8857142857142858 */
    static const double x[] = {1.0, INFINITY, 3.0};
    static const double y[] = {2.0, -INFINITY, 0.5, 4.0};
    static const struct ref refs[] = {
        {KN_STATS_TWO_SIDED, 9.0, 0.4},
        {KN_STATS_GREATER, 9.0, 0.2},
        {KN_STATS_LESS, 9.0, 0.8857142857142858},
    };

    (void)state;
    check(x, N(x), y, N(y), refs, N(refs), 1);
}

static void test_empty_side(void **state)
{
    static const double x[] = {1, 2, 3};
    static const double nans[] = {NAN, NAN};
    struct kn_stats_mwu r;

    (void)state;
    assert_int_equal(kn_stats_mann_whitney(&r, x, N(x), NULL, 0, KN_STATS_TWO_SIDED), KN_EINVAL);
    assert_int_equal(r.nx, 3);
    assert_int_equal(r.ny, 0);
    assert_int_equal(kn_stats_mann_whitney(&r, NULL, 0, x, N(x), KN_STATS_GREATER), KN_EINVAL);
    assert_int_equal(kn_stats_mann_whitney(&r, x, N(x), nans, N(nans), KN_STATS_LESS), KN_EINVAL);
    assert_int_equal(r.dropped, 2);
    assert_true(r.p == 0.0);
}

static void test_exact_matches_recurrence(void **state)
{
    /* The Gaussian-binomial counts against the textbook recurrence
     * f(m, n, k) = f(m-1, n, k-n) + f(m, n-1, k), through P(U >= u) for every u with m = 7 and
     * n = 6 (y arranged so that U of x is u, without ties). */
    enum { M = 7, NN = 6, K = M * NN };
    static double f[M + 1][NN + 1][K + 1];
    double x[M];
    double y[NN];

    (void)state;
    for (int m = 0; m <= M; m++) {
        for (int n = 0; n <= NN; n++) {
            for (int k = 0; k <= K; k++) {
                if (m == 0 || n == 0) {
                    f[m][n][k] = k == 0;
                } else {
                    f[m][n][k] = (k >= n ? f[m - 1][n][k - n] : 0) + f[m][n - 1][k];
                }
            }
        }
    }
    double total = 0.0;
    for (int k = 0; k <= K; k++) {
        total += f[M][NN][k];
    }
    assert_close(total, 1716.0, 0.0); /* C(13, 7) */
    for (int u = 0; u <= K; u++) {
        /* x: 0..6; y[j] sits just below the `below` largest x values (distinct offsets keep
         * the y values apart), so the below counts add up to U of x. */
        int left = u;
        for (int i = 0; i < M; i++) {
            x[i] = (double)i;
        }
        for (int j = 0; j < NN; j++) {
            int below = left > M ? M : left;
            left -= below;
            y[j] = (double)(M - below) - 0.5 + 0.01 * j;
        }
        struct kn_stats_mwu r;
        assert_int_equal(kn_stats_mann_whitney(&r, x, M, y, NN, KN_STATS_GREATER), 0);
        assert_close(r.u, (double)u, 0.0);
        assert_int_equal(r.exact, 1);
        double tail = 0.0;
        for (int k = u; k <= K; k++) {
            tail += f[M][NN][k];
        }
        assert_close(r.p, tail / total, 1e-12);
    }
}

static void test_summaries(void **state)
{
    static const double v[] = {4.0, NAN, 1.0, 3.0, 2.0};
    static const double odd[] = {7.0, NAN, -1.0, 3.0};
    static const double nans[] = {NAN};

    (void)state;
    assert_close(kn_stats_median(v, N(v)), 2.5, 1e-15);
    assert_close(kn_stats_median(odd, N(odd)), 3.0, 1e-15);
    assert_close(kn_stats_mean(v, N(v)), 2.5, 1e-15);
    assert_close(kn_stats_min(v, N(v)), 1.0, 1e-15);
    assert_close(kn_stats_max(v, N(v)), 4.0, 1e-15);
    assert_int_equal(kn_stats_count(v, N(v)), 4);
    assert_true(isnan(kn_stats_median(nans, N(nans))));
    assert_true(isnan(kn_stats_mean(nans, N(nans))));
    assert_true(isnan(kn_stats_min(nans, N(nans))));
    assert_true(isnan(kn_stats_max(NULL, 0)));
    assert_int_equal(kn_stats_count(NULL, 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tiny_exact),
        cmocka_unit_test(test_exact_each_alternative),
        cmocka_unit_test(test_exact_fully_separated),
        cmocka_unit_test(test_exact_small_against_many),
        cmocka_unit_test(test_single_samples),
        cmocka_unit_test(test_ties_use_normal_approximation),
        cmocka_unit_test(test_larger_with_ties),
        cmocka_unit_test(test_large_normal_approximation),
        cmocka_unit_test(test_all_equal),
        cmocka_unit_test(test_nan_dropped),
        cmocka_unit_test(test_infinities_rank_at_the_ends),
        cmocka_unit_test(test_empty_side),
        cmocka_unit_test(test_exact_matches_recurrence),
        cmocka_unit_test(test_summaries),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
