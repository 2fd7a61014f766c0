/* Hutchinson block traces on explicit symmetric matrices whose exact block
 * traces are read off the diagonal: estimates within 4 standard errors for
 * both probe schemes, exact cases (diagonal, zero block), the stop rule,
 * reproducibility and error paths. */
#include <criterion/criterion.h>
#include <math.h>

#include "tests/sens_matrix.h"

/* Eigenvalues spread over [-1, 9]: traces of the blocks are not small
 * compared with the off-diagonal mass, and some curvature is negative. */
static void spread(double *lam, size_t n)
{
    for (size_t i = 0; i < n; i++)
        lam[i] = -1.0 + 10.0 * (double)i / (double)(n - 1);
}

static void check_within_4se(bp_probe_scheme scheme, unsigned long seed)
{
    enum { N = 120, NB = 4 };
    double lam[N];
    spread(lam, N);
    test_mat m = test_mat_spectrum(lam, N, seed);
    bp_linop op = test_mat_op(&m);
    /* Blocks of unequal length, not covering the whole vector (like layer
     * weights among all parameters). */
    bp_block b[NB] = {{0, 10}, {10, 40}, {55, 25}, {90, 30}};
    bp_trace_opts o = bp_trace_opts_default();
    o.scheme = scheme;
    o.min_probes = 30;
    o.seed = seed;
    o.group = 1; /* one product per probe, so products can be counted */
    bp_trace_est e[NB];
    cr_assert_eq(bp_hutchinson(&op, b, NB, &o, e, NULL, NULL), BP_OK, "%s", bp_last_error());
    for (int i = 0; i < NB; i++) {
        double exact = test_mat_block_trace(&m, b[i].off, b[i].len);
        cr_assert(e[i].probes >= 30 && e[i].probes <= 200, "probes %d", e[i].probes);
        cr_assert(e[i].se > 0 && isfinite(e[i].se));
        cr_assert(fabs(e[i].mean - exact) <= 4 * e[i].se,
                  "%s block %d: estimate %g, exact %g, se %g", bp_probe_name(scheme), i,
                  e[i].mean, exact, e[i].se);
    }
    if (scheme == BP_PROBE_JOINT) {
        /* One product per probe for all blocks. */
        int maxp = 0;
        for (int i = 0; i < NB; i++)
            maxp = e[i].probes > maxp ? e[i].probes : maxp;
        cr_assert_eq(m.applies, maxp);
    } else {
        long sum = 0;
        for (int i = 0; i < NB; i++)
            sum += e[i].probes;
        cr_assert_eq(m.applies, sum, "per-layer: one product per probe per block");
    }
    test_mat_free(&m);
}

Test(hutchinson, joint_within_4se) { check_within_4se(BP_PROBE_JOINT, 7); }
Test(hutchinson, per_layer_within_4se) { check_within_4se(BP_PROBE_PER_LAYER, 11); }

Test(hutchinson, whole_trace_known_spectrum)
{
    enum { N = 80 };
    double lam[N], tr = 0;
    for (int i = 0; i < N; i++)
        tr += lam[i] = 0.5 + (i % 7);
    test_mat m = test_mat_spectrum(lam, N, 3);
    bp_linop op = test_mat_op(&m);
    bp_block b = {0, N};
    bp_trace_opts o = bp_trace_opts_default();
    o.min_probes = 50;
    bp_trace_est e;
    cr_assert_eq(bp_hutchinson(&op, &b, 1, &o, &e, NULL, NULL), BP_OK);
    cr_assert(fabs(e.mean - tr) <= 4 * e.se, "estimate %g, exact %g (sum of eigenvalues), se %g",
              e.mean, tr, e.se);
    test_mat_free(&m);
}

/* For a diagonal matrix every Rademacher probe gives vᵀDv = tr(D) exactly:
 * the running mean never changes, the standard error is 0 and the stop rule
 * fires at min_probes. */
Test(hutchinson, diagonal_is_exact)
{
    enum { N = 6 };
    test_mat m = {.n = N};
    m.a = calloc(N * N, sizeof *m.a);
    double d[N] = {3, -1, 0.5, 2, 7, -4};
    for (int i = 0; i < N; i++)
        m.a[i * N + i] = d[i];
    bp_linop op = test_mat_op(&m);
    bp_block b[2] = {{0, 3}, {3, 3}};
    bp_trace_opts o = bp_trace_opts_default();
    o.min_probes = 5;
    bp_trace_est e[2];
    for (int s = 0; s < 2; s++) {
        o.scheme = s ? BP_PROBE_PER_LAYER : BP_PROBE_JOINT;
        cr_assert_eq(bp_hutchinson(&op, b, 2, &o, e, NULL, NULL), BP_OK);
        cr_assert_float_eq(e[0].mean, 2.5, 1e-15);
        cr_assert_float_eq(e[1].mean, 5.0, 1e-15);
        for (int i = 0; i < 2; i++) {
            cr_assert_eq(e[i].probes, 5);
            cr_assert(e[i].converged);
            cr_assert_eq(e[i].se, 0.0);
        }
    }
    free(m.a);
}

/* A block with zero Hessian (a layer that does not touch the loss): trace 0,
 * converged, no division by zero. */
Test(hutchinson, zero_block)
{
    enum { N = 10 };
    test_mat m = {.n = N};
    m.a = calloc(N * N, sizeof *m.a);
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 5; j++)
            m.a[i * N + j] = 1.0 / (1 + i + j); /* Hilbert block */
    bp_linop op = test_mat_op(&m);
    bp_block b[2] = {{0, 5}, {5, 5}};
    bp_trace_opts o = bp_trace_opts_default();
    bp_trace_est e[2];
    cr_assert_eq(bp_hutchinson(&op, b, 2, &o, e, NULL, NULL), BP_OK);
    cr_assert_eq(e[1].mean, 0.0);
    cr_assert(e[1].converged);
    cr_assert_eq(e[1].tol_reached, 0.0);
    free(m.a);
}

Test(hutchinson, not_converged_reports_tolerance)
{
    enum { N = 50 };
    double lam[N];
    spread(lam, N);
    test_mat m = test_mat_spectrum(lam, N, 5);
    bp_linop op = test_mat_op(&m);
    bp_block b = {0, N};
    bp_trace_opts o = bp_trace_opts_default();
    o.tol = 1e-14;
    o.min_probes = 3;
    o.max_probes = 20;
    bp_trace_est e;
    cr_assert_eq(bp_hutchinson(&op, &b, 1, &o, &e, NULL, NULL), BP_OK);
    cr_assert_eq(e.probes, 20);
    cr_assert(!e.converged);
    cr_assert(e.tol_reached > 1e-14 && isfinite(e.tol_reached), "tol reached %g", e.tol_reached);
    test_mat_free(&m);
}

static int progress_calls;
static void count_progress(void *ctx, const bp_progress *p)
{
    (void)ctx;
    cr_assert_str_eq(p->stage, "trace");
    progress_calls++;
}

Test(hutchinson, reproducible_by_seed)
{
    enum { N = 40 };
    double lam[N];
    spread(lam, N);
    test_mat m = test_mat_spectrum(lam, N, 9);
    bp_linop op = test_mat_op(&m);
    bp_block b[2] = {{0, 20}, {20, 20}};
    bp_trace_opts o = bp_trace_opts_default();
    o.max_probes = 30;
    o.group = 1;
    bp_trace_est e1[2], e2[2], e3[2];
    progress_calls = 0;
    cr_assert_eq(bp_hutchinson(&op, b, 2, &o, e1, count_progress, NULL), BP_OK);
    cr_assert_eq(progress_calls, e1[0].probes > e1[1].probes ? e1[0].probes : e1[1].probes);
    cr_assert_eq(bp_hutchinson(&op, b, 2, &o, e2, NULL, NULL), BP_OK);
    o.seed = 2;
    cr_assert_eq(bp_hutchinson(&op, b, 2, &o, e3, NULL, NULL), BP_OK);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(e1[i].mean, e2[i].mean, "same seed, same estimate");
        cr_assert_eq(e1[i].probes, e2[i].probes);
    }
    cr_assert(e1[0].mean != e3[0].mean, "another seed, other probes");
    test_mat_free(&m);
}

/* Probes drawn and multiplied G at a time give the same estimates as one at a
 * time (probes past the stop are discarded), for both schemes; at most G − 1
 * products are wasted per stop. */
Test(hutchinson, group_does_not_change_results)
{
    enum { N = 60 };
    double lam[N];
    spread(lam, N);
    test_mat m = test_mat_spectrum(lam, N, 13);
    bp_linop op = test_mat_op(&m);
    bp_block b[3] = {{0, 20}, {20, 25}, {45, 15}};
    for (int s = 0; s < 2; s++) {
        bp_trace_opts o = bp_trace_opts_default();
        o.scheme = s ? BP_PROBE_PER_LAYER : BP_PROBE_JOINT;
        o.tol = 2e-2; /* stops at different probe counts per block */
        o.min_probes = 5;
        o.max_probes = 50;
        bp_trace_est ref[3], e[3];
        o.group = 1;
        m.applies = 0;
        cr_assert_eq(bp_hutchinson(&op, b, 3, &o, ref, NULL, NULL), BP_OK);
        long ref_applies = m.applies;
        int groups[] = {2, 4, 7, 64};
        for (int gi = 0; gi < 4; gi++) {
            o.group = groups[gi];
            m.applies = 0;
            cr_assert_eq(bp_hutchinson(&op, b, 3, &o, e, NULL, NULL), BP_OK);
            for (int i = 0; i < 3; i++) {
                cr_assert_eq(e[i].probes, ref[i].probes, "%s group %d block %d", bp_probe_name(o.scheme), o.group, i);
                cr_assert(fabs(e[i].mean - ref[i].mean) <= 1e-12 * fabs(ref[i].mean));
                cr_assert(fabs(e[i].se - ref[i].se) <= 1e-9 * ref[i].se);
            }
            long stops = s ? 3 : 1;
            cr_assert(m.applies >= ref_applies && m.applies <= ref_applies + stops * (groups[gi] - 1),
                      "group %d: %ld products vs %ld", groups[gi], m.applies, ref_applies);
        }
    }
    test_mat_free(&m);
}

Test(hutchinson, errors)
{
    enum { N = 8 };
    double lam[N] = {1, 2, 3, 4, 5, 6, 7, 8};
    test_mat m = test_mat_spectrum(lam, N, 1);
    bp_linop op = test_mat_op(&m);
    bp_block b = {0, N}, bad = {4, 8};
    bp_trace_opts o = bp_trace_opts_default();
    bp_trace_est e;
    cr_assert_eq(bp_hutchinson(&op, &bad, 1, &o, &e, NULL, NULL), BP_ERR_ARG);
    o.min_probes = 300;
    cr_assert_eq(bp_hutchinson(&op, &b, 1, &o, &e, NULL, NULL), BP_ERR_ARG);
    o = bp_trace_opts_default();
    o.tol = 0;
    cr_assert_eq(bp_hutchinson(&op, &b, 1, &o, &e, NULL, NULL), BP_ERR_ARG);
    o = bp_trace_opts_default();
    m.poison = 1;
    cr_assert_eq(bp_hutchinson(&op, &b, 1, &o, &e, NULL, NULL), BP_ERR_NUMERIC);
    cr_assert(strstr(bp_last_error(), "block 0") != NULL, "%s", bp_last_error());
    test_mat_free(&m);
}

Test(hutchinson, scheme_names)
{
    cr_assert_eq(bp_probe_parse("joint"), BP_PROBE_JOINT);
    cr_assert_eq(bp_probe_parse("per-layer"), BP_PROBE_PER_LAYER);
    cr_assert_eq(bp_probe_parse("nope"), -1);
    cr_assert_str_eq(bp_probe_name(BP_PROBE_PER_LAYER), "per-layer");
}
