/* Power iteration, top-k with deflation and the SLQ density on explicit
 * symmetric matrices built with a chosen spectrum (tests/sens_matrix.h): the
 * known eigenvalues are the reference. */
#include <criterion/criterion.h>
#include <math.h>

#include "tests/sens_matrix.h"

/* Spectrum: a few well separated top values over a bulk in [-0.5, 1]. */
static void top_and_bulk(double *lam, size_t n, const double *top, int ntop)
{
    for (size_t i = 0; i < n; i++)
        lam[i] = -0.5 + 1.5 * (double)i / (double)(n - 1);
    for (int j = 0; j < ntop; j++)
        lam[j] = top[j];
}

Test(eigen, power_iteration_top)
{
    enum { N = 100 };
    double lam[N], top[1] = {10};
    top_and_bulk(lam, N, top, 1);
    test_mat m = test_mat_spectrum(lam, N, 21);
    bp_linop op = test_mat_op(&m);
    bp_eig_opts o = bp_eig_opts_default();
    o.tol = 1e-12;
    o.max_iter = 500;
    bp_eig_est e;
    double v[N];
    cr_assert_eq(bp_power_iteration(&op, NULL, &o, &e, v, NULL, NULL), BP_OK, "%s", bp_last_error());
    cr_assert(e.converged);
    cr_assert(fabs(e.value - 10) <= 1e-9 * 10, "top %.15g, expected 10", e.value);
    double d = 0;
    for (int k = 0; k < N; k++)
        d += v[k] * m.q[k]; /* m.q row 0 is the eigenvector of lam[0] */
    cr_assert(fabs(fabs(d) - 1) < 1e-5, "eigenvector overlap %g", d);
    test_mat_free(&m);
}

/* The dominant eigenvalue is the largest in magnitude; a negative one keeps
 * its sign (Rayleigh quotient). */
Test(eigen, power_iteration_negative_dominant)
{
    enum { N = 60 };
    double lam[N], top[2] = {-8, 4};
    top_and_bulk(lam, N, top, 2);
    test_mat m = test_mat_spectrum(lam, N, 22);
    bp_linop op = test_mat_op(&m);
    bp_eig_opts o = bp_eig_opts_default();
    o.tol = 1e-12;
    o.max_iter = 500;
    bp_eig_est e;
    cr_assert_eq(bp_power_iteration(&op, NULL, &o, &e, NULL, NULL, NULL), BP_OK);
    cr_assert(fabs(e.value + 8) <= 1e-9 * 8, "dominant %.15g, expected -8", e.value);
    test_mat_free(&m);
}

/* The default tolerance (1e-3 on the relative change) gives the eigenvalue to
 * about that accuracy; the loop stops early. */
Test(eigen, power_iteration_default_tolerance)
{
    enum { N = 60 };
    double lam[N], top[1] = {5};
    top_and_bulk(lam, N, top, 1);
    test_mat m = test_mat_spectrum(lam, N, 23);
    bp_linop op = test_mat_op(&m);
    bp_eig_opts o = bp_eig_opts_default();
    bp_eig_est e;
    cr_assert_eq(bp_power_iteration(&op, NULL, &o, &e, NULL, NULL, NULL), BP_OK);
    cr_assert(e.converged && e.iters < 100 && e.tol_reached <= 1e-3);
    cr_assert(fabs(e.value - 5) <= 1e-2 * 5, "%g", e.value);
    cr_assert_eq(m.applies, e.iters, "one product per iteration");
    test_mat_free(&m);
}

/* A block of a larger operator: A = blockdiag(B1, B2) + coupling between the
 * blocks. The diagonal block B1 alone has a known spectrum; the coupling must
 * not leak into it. */
Test(eigen, power_iteration_on_block)
{
    enum { N1 = 30, N2 = 20, N = N1 + N2 };
    double l1[N1], top[1] = {6};
    top_and_bulk(l1, N1, top, 1);
    test_mat b1 = test_mat_spectrum(l1, N1, 31);
    test_mat m = {.n = N};
    m.a = calloc(N * N, sizeof *m.a);
    for (int i = 0; i < N1; i++)
        for (int j = 0; j < N1; j++)
            m.a[i * N + j] = b1.a[i * N1 + j];
    for (int i = N1; i < N; i++)
        m.a[i * N + i] = 50; /* B2 dominates the whole operator */
    for (int i = 0; i < N1; i++)
        for (int j = N1; j < N; j++)
            m.a[i * N + j] = m.a[j * N + i] = 0.3 * sin(i + 2.0 * j);
    bp_linop op = test_mat_op(&m);
    bp_block blk = {0, N1};
    bp_eig_opts o = bp_eig_opts_default();
    o.tol = 1e-12;
    o.max_iter = 500;
    bp_eig_est e;
    cr_assert_eq(bp_power_iteration(&op, &blk, &o, &e, NULL, NULL, NULL), BP_OK);
    cr_assert(fabs(e.value - 6) <= 1e-9 * 6, "block top %.15g, expected 6", e.value);
    test_mat_free(&b1);
    free(m.a);
}

Test(eigen, topk_with_deflation)
{
    enum { N = 80, K = 4 };
    double lam[N], top[K] = {12, -9, 7, 4};
    top_and_bulk(lam, N, top, K);
    test_mat m = test_mat_spectrum(lam, N, 41);
    bp_linop op = test_mat_op(&m);
    bp_eig_opts o = bp_eig_opts_default();
    o.tol = 1e-12;
    o.max_iter = 1000;
    bp_eig_est e[K];
    double *vecs = malloc(K * N * sizeof *vecs);
    cr_assert_eq(bp_top_eigenvalues(&op, K, &o, e, vecs, NULL, NULL), BP_OK, "%s", bp_last_error());
    for (int j = 0; j < K; j++) {
        cr_assert(fabs(e[j].value - top[j]) <= 1e-8 * fabs(top[j]), "eigenvalue %d: %.15g, expected %g",
                  j, e[j].value, top[j]);
        for (int i = 0; i <= j; i++) {
            double d = 0;
            for (int k = 0; k < N; k++)
                d += vecs[i * N + k] * vecs[j * N + k];
            cr_assert(fabs(d - (i == j)) < 1e-10, "eigenvectors %d, %d: dot %g", i, j, d);
        }
    }
    free(vecs);
    test_mat_free(&m);
}

Test(eigen, errors)
{
    enum { N = 5 };
    double lam[N] = {1, 2, 3, 4, 5};
    test_mat m = test_mat_spectrum(lam, N, 1);
    bp_linop op = test_mat_op(&m);
    bp_eig_opts o = bp_eig_opts_default();
    bp_eig_est e[6];
    cr_assert_eq(bp_top_eigenvalues(&op, 6, &o, e, NULL, NULL, NULL), BP_ERR_ARG);
    bp_block bad = {3, 4};
    cr_assert_eq(bp_power_iteration(&op, &bad, &o, e, NULL, NULL, NULL), BP_ERR_ARG);
    m.poison = 1;
    cr_assert_eq(bp_power_iteration(&op, NULL, &o, e, NULL, NULL, NULL), BP_ERR_NUMERIC);
    test_mat_free(&m);
}

/* ---- stochastic Lanczos quadrature -------------------------------------- */

static double trapz(const double *x, const double *y, int n)
{
    double s = 0;
    for (int i = 1; i < n; i++)
        s += 0.5 * (x[i] - x[i - 1]) * (y[i] + y[i - 1]);
    return s;
}

/* With m = n steps and full reorthogonalization the Ritz values are A's
 * eigenvalues (no spurious copies), whatever the start. */
Test(lanczos, full_steps_recover_spectrum)
{
    enum { N = 40 };
    double lam[N];
    for (int i = 0; i < N; i++)
        lam[i] = -2 + 0.25 * i + 0.01 * i * i; /* distinct, ascending */
    test_mat m = test_mat_spectrum(lam, N, 51);
    bp_linop op = test_mat_op(&m);
    bp_slq_opts o = bp_slq_opts_default();
    o.steps = N;
    o.runs = 1;
    bp_slq_result r;
    cr_assert_eq(bp_slq_density(&op, &o, &r, NULL, NULL), BP_OK, "%s", bp_last_error());
    cr_assert_eq(r.steps, N);
    double wsum = 0;
    for (int j = 0; j < N; j++) {
        cr_assert(fabs(r.nodes[j] - lam[j]) < 1e-9, "Ritz value %d: %.12g vs %.12g", j, r.nodes[j], lam[j]);
        wsum += r.weights[j];
    }
    cr_assert(fabs(wsum - 1) < 1e-12, "weights sum %g", wsum);
    bp_slq_free(&r);
    test_mat_free(&m);
}

/* The density integrates to 1; its mean is the mean of the runs' vᵀAv/n,
 * whose expectation is tr(A)/n and whose variance for Rademacher v is
 * 2·Σ_{i≠j} a_ij² / n² per run (computed here from the explicit matrix). */
Test(lanczos, density_integrates_to_one_and_mean_is_trace_over_n)
{
    enum { N = 150, RUNS = 6 };
    double lam[N], tr = 0;
    for (int i = 0; i < N; i++)
        tr += lam[i] = i < N / 2 ? 1.0 + 0.01 * i : 5.0 + 0.01 * i; /* two clusters */
    test_mat m = test_mat_spectrum(lam, N, 61);
    bp_linop op = test_mat_op(&m);
    bp_slq_opts o = bp_slq_opts_default();
    o.steps = 30;
    o.runs = RUNS;
    bp_slq_result r;
    cr_assert_eq(bp_slq_density(&op, &o, &r, NULL, NULL), BP_OK, "%s", bp_last_error());
    cr_assert_eq(r.grid, 1000);
    double mass = trapz(r.x, r.density, r.grid);
    cr_assert(fabs(mass - 1) < 1e-4, "density integrates to %.8g", mass);
    double *xy = malloc(r.grid * sizeof *xy);
    for (int g = 0; g < r.grid; g++)
        xy[g] = r.x[g] * r.density[g];
    double mean = trapz(r.x, xy, r.grid);
    double off2 = 0;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++)
            if (i != j)
                off2 += m.a[i * N + j] * m.a[i * N + j];
    double se = sqrt(2 * off2 / ((double)N * N) / RUNS);
    cr_assert(fabs(mean - tr / N) <= 4 * se + 1e-6, "density mean %.8g, tr/n %.8g, se %g", mean,
              tr / N, se);
    /* Half the eigenvalues sit in each cluster. */
    double lowmass = 0;
    for (int g = 1; g < r.grid; g++)
        if (r.x[g] < 3.3)
            lowmass += 0.5 * (r.x[g] - r.x[g - 1]) * (r.density[g] + r.density[g - 1]);
    cr_assert(fabs(lowmass - 0.5) < 0.15, "mass of the low cluster %g", lowmass);
    /* The extreme Ritz values converge to the extreme eigenvalues first. */
    double lo = INFINITY, hi = -INFINITY;
    for (int j = 0; j < RUNS * r.steps; j++)
        if (r.weights[j] > 0) {
            lo = fmin(lo, r.nodes[j]);
            hi = fmax(hi, r.nodes[j]);
        }
    cr_assert(fabs(hi - lam[N - 1]) < 1e-3 && fabs(lo - lam[0]) < 1e-3, "extremes %g %g", lo, hi);
    free(xy);
    bp_slq_free(&r);
    test_mat_free(&m);
}

/* A multiple of the identity: Lanczos stops after one step (invariant
 * subspace) and the density is one Gaussian at the eigenvalue. */
Test(lanczos, identity_breaks_down_cleanly)
{
    enum { N = 20 };
    test_mat m = {.n = N};
    m.a = calloc(N * N, sizeof *m.a);
    for (int i = 0; i < N; i++)
        m.a[i * N + i] = 3;
    bp_linop op = test_mat_op(&m);
    bp_slq_opts o = bp_slq_opts_default();
    o.steps = 10;
    o.runs = 2;
    bp_slq_result r;
    cr_assert_eq(bp_slq_density(&op, &o, &r, NULL, NULL), BP_OK, "%s", bp_last_error());
    cr_assert_eq(m.applies, 2, "one product per run before the breakdown");
    cr_assert(fabs(r.nodes[0] - 3) < 1e-12 && fabs(r.weights[0] - 1) < 1e-12);
    cr_assert_eq(r.weights[1], 0.0);
    double mass = trapz(r.x, r.density, r.grid);
    cr_assert(fabs(mass - 1) < 1e-4, "mass %g", mass);
    int peak = 0;
    for (int g = 0; g < r.grid; g++)
        if (r.density[g] > r.density[peak])
            peak = g;
    cr_assert(fabs(r.x[peak] - 3) < 0.01, "peak at %g", r.x[peak]);
    bp_slq_free(&r);
    free(m.a);
}
