/* Stochastic Lanczos quadrature for the eigenvalue density of a symmetric
 * operator (Ghorbani et al. 2019; PyHessian's density): for a unit start v,
 * m Lanczos steps give a tridiagonal T whose eigenpairs (θ_j, u_j) define the
 * Gauss quadrature  vᵀ f(A) v ≈ Σ_j u_j[0]² f(θ_j).  With f a Gaussian bump
 * at x and v random, the mean over starts estimates the density of A's
 * spectrum, (1/n) Σ_i N(x; λ_i, σ²). See sensitivity.h. */
#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sensitivity/probe.h"

bp_slq_opts bp_slq_opts_default(void)
{
    return (bp_slq_opts){.steps = 80, .runs = 4, .grid = 1000, .sigma = 0.01, .seed = 1};
}

void bp_slq_free(bp_slq_result *r)
{
    if (!r)
        return;
    free(r->nodes);
    free(r->weights);
    free(r->x);
    free(r->density);
    memset(r, 0, sizeof *r);
}

/* One Lanczos run from a unit vector q0: fills alpha (m), beta (m−1) and
 * returns in *done the steps completed (fewer than m when the Krylov space
 * closes, i.e. an invariant subspace was found). Q (m·n) is scratch holding
 * the basis for full reorthogonalization. */
static bp_status lanczos_run(const bp_linop *op, int m, double *Q, double *w, double *alpha,
                             double *beta, int *done, int run, bp_progress_fn progress,
                             void *pctx)
{
    size_t n = op->n;
    int N = (int)n;
    for (int j = 0; j < m; j++) {
        double *q = Q + (size_t)j * n;
        bp_status st = op->apply(op->ctx, q, w);
        if (st)
            return st;
        double a = cblas_ddot(N, q, 1, w, 1);
        if (!isfinite(a))
            return bp_error(BP_ERR_NUMERIC, "lanczos: non-finite value at step %d of run %d", j + 1, run + 1);
        alpha[j] = a;
        /* Full reorthogonalization against every basis vector, twice: plain
         * three-term Lanczos loses orthogonality in floating point and then
         * produces spurious copies of the extreme Ritz values. */
        for (int pass = 0; pass < 2; pass++)
            for (int i = 0; i <= j; i++) {
                double d = cblas_ddot(N, Q + (size_t)i * n, 1, w, 1);
                cblas_daxpy(N, -d, Q + (size_t)i * n, 1, w, 1);
            }
        *done = j + 1;
        if (progress) {
            bp_progress p = {"density", run, 0, j + 1, a, 0};
            progress(pctx, &p);
        }
        if (j == m - 1)
            break;
        double b = cblas_dnrm2(N, w, 1);
        /* Relative breakdown test: the residual is at rounding level of the
         * operator's scale, so the subspace is invariant. */
        double scale = fabs(a) + (j > 0 ? beta[j - 1] : 0);
        if (b <= 1e-10 * (scale > 0 ? scale : 1))
            break;
        beta[j] = b;
        double *qn = Q + (size_t)(j + 1) * n;
        for (size_t i = 0; i < n; i++)
            qn[i] = w[i] / b;
    }
    return BP_OK;
}

bp_status bp_slq_density(const bp_linop *op, const bp_slq_opts *o, bp_slq_result *out,
                         bp_progress_fn progress, void *pctx)
{
    memset(out, 0, sizeof *out);
    if (o->steps < 1 || o->runs < 1 || o->grid < 2 || !(o->sigma > 0))
        return bp_error(BP_ERR_ARG, "lanczos: need steps >= 1, runs >= 1, grid >= 2, sigma > 0 "
                                    "(got %d, %d, %d, %g)",
                        o->steps, o->runs, o->grid, o->sigma);
    size_t n = op->n;
    int m = o->steps < (int)n ? o->steps : (int)n;
    double *Q = malloc((size_t)m * n * sizeof *Q), *w = malloc(n * sizeof *w);
    double *alpha = malloc(m * sizeof *alpha), *beta = malloc(m * sizeof *beta);
    double *z = malloc((size_t)m * m * sizeof *z);
    int *cnt = malloc(o->runs * sizeof *cnt);
    gsl_rng *rng = bp_probe_rng(o->seed);
    bp_status st = BP_OK;
    out->runs = o->runs;
    out->steps = m;
    out->grid = o->grid;
    out->nodes = calloc((size_t)o->runs * m, sizeof *out->nodes);
    out->weights = calloc((size_t)o->runs * m, sizeof *out->weights);
    out->x = malloc(o->grid * sizeof *out->x);
    out->density = calloc(o->grid, sizeof *out->density);
    if (!Q || !w || !alpha || !beta || !z || !cnt || !rng || !out->nodes || !out->weights ||
        !out->x || !out->density) {
        st = bp_error(BP_ERR_NOMEM, "lanczos: out of memory (%d steps, n = %zu)", m, n);
        goto cleanup;
    }

    double lo = INFINITY, hi = -INFINITY;
    for (int r = 0; r < o->runs; r++) {
        bp_rademacher(rng, Q, n);
        cblas_dscal((int)n, 1 / sqrt((double)n), Q, 1);
        int done = 0;
        if ((st = lanczos_run(op, m, Q, w, alpha, beta, &done, r, progress, pctx)))
            goto cleanup;
        /* Eigenpairs of the done×done tridiagonal: alpha is overwritten by the
         * Ritz values (ascending), z holds the Ritz vectors by columns. */
        lapack_int info = LAPACKE_dstev(LAPACK_COL_MAJOR, 'V', done, alpha, beta, z, done);
        if (info != 0) {
            st = bp_error(BP_ERR_NUMERIC, "lanczos: LAPACKE_dstev failed (info %d) in run %d",
                          (int)info, r + 1);
            goto cleanup;
        }
        cnt[r] = done;
        for (int j = 0; j < m; j++) {
            int jj = j < done ? j : done - 1;
            out->nodes[(size_t)r * m + j] = alpha[jj];
            out->weights[(size_t)r * m + j] = j < done ? z[(size_t)j * done] * z[(size_t)j * done] : 0;
        }
        if (alpha[0] < lo)
            lo = alpha[0];
        if (alpha[done - 1] > hi)
            hi = alpha[done - 1];
    }

    /* Broadening: σ relative to the span of the Ritz values; a single-point
     * spectrum gets σ relative to its magnitude (or 1). */
    double span = hi - lo;
    if (!(span > 0))
        span = fabs(hi) > 0 ? fabs(hi) : 1;
    double sigma = o->sigma * span;
    out->sigma = sigma;
    double x0 = lo - 5 * sigma, x1 = hi + 5 * sigma;
    double norm = 1 / (sigma * sqrt(2 * M_PI) * o->runs);
    for (int g = 0; g < o->grid; g++) {
        double x = x0 + (x1 - x0) * g / (o->grid - 1);
        double d = 0;
        for (int r = 0; r < o->runs; r++)
            for (int j = 0; j < cnt[r]; j++) {
                double t = (x - out->nodes[(size_t)r * m + j]) / sigma;
                d += out->weights[(size_t)r * m + j] * exp(-0.5 * t * t);
            }
        out->x[g] = x;
        out->density[g] = d * norm;
    }

cleanup:
    free(Q);
    free(w);
    free(alpha);
    free(beta);
    free(z);
    free(cnt);
    if (rng)
        gsl_rng_free(rng);
    if (st)
        bp_slq_free(out);
    return st;
}
