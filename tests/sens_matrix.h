/* sens_matrix.h — explicit symmetric test matrices with a chosen spectrum,
 * A = Q diag(λ) Qᵀ with Q a random orthogonal matrix, wrapped as a bp_linop.
 * Shared by test_hutchinson.c and test_eigen.c (header-only on purpose: each
 * suite is its own binary). Q comes from Gram-Schmidt on a Gaussian matrix,
 * independent of the code under test. */
#ifndef BP_TEST_SENS_MATRIX_H
#define BP_TEST_SENS_MATRIX_H

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sensitivity/sensitivity.h"

typedef struct {
    size_t n;
    double *a;     /* (n, n) row-major */
    double *q;     /* (n, n) eigenvectors as rows: q[i·n + k] = k-th entry of eigenvector i */
    long applies;
    int poison;    /* when set, apply returns NaN entries */
} test_mat;

static inline bp_status test_mat_apply(void *ctx, const double *v, double *hv)
{
    test_mat *m = ctx;
    m->applies++;
    for (size_t i = 0; i < m->n; i++) {
        double s = 0;
        for (size_t j = 0; j < m->n; j++)
            s += m->a[i * m->n + j] * v[j];
        hv[i] = m->poison ? NAN : s;
    }
    return BP_OK;
}

static inline bp_linop test_mat_op(test_mat *m)
{
    return (bp_linop){.n = m->n, .apply = test_mat_apply, .ctx = m};
}

/* A = Q diag(lam) Qᵀ. */
static inline test_mat test_mat_spectrum(const double *lam, size_t n, unsigned long seed)
{
    test_mat m = {.n = n};
    m.a = calloc(n * n, sizeof *m.a);
    m.q = malloc(n * n * sizeof *m.q);
    gsl_rng *r = gsl_rng_alloc(gsl_rng_taus2);
    gsl_rng_set(r, seed);
    for (size_t i = 0; i < n; i++) {
        double *qi = m.q + i * n;
        for (size_t k = 0; k < n; k++)
            qi[k] = gsl_ran_gaussian(r, 1.0);
        for (int pass = 0; pass < 2; pass++)
            for (size_t j = 0; j < i; j++) {
                double d = 0;
                for (size_t k = 0; k < n; k++)
                    d += qi[k] * m.q[j * n + k];
                for (size_t k = 0; k < n; k++)
                    qi[k] -= d * m.q[j * n + k];
            }
        double nn = 0;
        for (size_t k = 0; k < n; k++)
            nn += qi[k] * qi[k];
        nn = sqrt(nn);
        for (size_t k = 0; k < n; k++)
            qi[k] /= nn;
    }
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < n; k++) {
            double c = lam[i];
            for (size_t p = 0; p < n; p++)
                m.a[k * n + p] += c * m.q[i * n + k] * m.q[i * n + p];
        }
    gsl_rng_free(r);
    return m;
}

static inline void test_mat_free(test_mat *m)
{
    free(m->a);
    free(m->q);
}

/* Exact trace of the diagonal block [off, off + len). */
static inline double test_mat_block_trace(const test_mat *m, size_t off, size_t len)
{
    double t = 0;
    for (size_t i = off; i < off + len; i++)
        t += m->a[i * m->n + i];
    return t;
}

#endif
