/* Dominant eigenvalues by power iteration, with deflation for the top k.
 * See sensitivity.h. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sensitivity/probe.h"

bp_eig_opts bp_eig_opts_default(void)
{
    return (bp_eig_opts){.tol = 1e-3, .max_iter = 100, .seed = 1};
}

/* Removes from x its components along the nq orthonormal rows of Q (n each).
 * Done twice: one classical Gram-Schmidt pass loses orthogonality when x is
 * nearly inside span(Q), the second restores it ("twice is enough"). */
static void orthogonalize(double *x, const double *Q, int nq, size_t n)
{
    for (int pass = 0; pass < 2; pass++)
        for (int j = 0; j < nq; j++) {
            double d = cblas_ddot((int)n, Q + (size_t)j * n, 1, x, 1);
            cblas_daxpy((int)n, -d, Q + (size_t)j * n, 1, x, 1);
        }
}

/* Power iteration on A deflated by the nq eigenvectors in Q. */
static bp_status power(const bp_linop *op, const double *Q, int nq, const bp_eig_opts *o,
                       gsl_rng *rng, bp_eig_est *out, double *vec, const char *stage, int block,
                       bp_progress_fn progress, void *pctx)
{
    size_t n = op->n;
    if (!(o->tol > 0) || o->max_iter < 1)
        return bp_error(BP_ERR_ARG, "power iteration: need tol > 0 and max iterations >= 1 (got %g, %d)",
                        o->tol, o->max_iter);
    double *v = malloc(n * sizeof *v), *hv = malloc(n * sizeof *hv);
    bp_status st = BP_OK;
    if (!v || !hv) {
        st = bp_error(BP_ERR_NOMEM, "power iteration: out of memory (n = %zu)", n);
        goto cleanup;
    }
    bp_rademacher(rng, v, n);
    orthogonalize(v, Q, nq, n);
    double nv = cblas_dnrm2((int)n, v, 1);
    if (nv == 0) {
        st = bp_error(BP_ERR_ARG, "power iteration: no directions left after deflating %d", nq);
        goto cleanup;
    }
    cblas_dscal((int)n, 1 / nv, v, 1);
    double lam = 0, change = INFINITY;
    int it = 0, conv = 0;
    while (it < o->max_iter) {
        if ((st = op->apply(op->ctx, v, hv)))
            goto cleanup;
        it++;
        orthogonalize(hv, Q, nq, n);
        double nl = cblas_ddot((int)n, v, 1, hv, 1); /* Rayleigh quotient, |v| = 1 */
        if (!isfinite(nl)) {
            st = bp_error(BP_ERR_NUMERIC, "power iteration: the Rayleigh quotient is not finite "
                                          "(iteration %d)", it);
            goto cleanup;
        }
        double diff = fabs(nl - lam);
        change = it == 1 ? INFINITY : diff == 0 ? 0 : nl != 0 ? diff / fabs(nl) : INFINITY;
        lam = nl;
        if (progress) {
            bp_progress p = {stage, block, 0, it, lam, change};
            progress(pctx, &p);
        }
        double nh = cblas_dnrm2((int)n, hv, 1);
        if (nh == 0) { /* v is in the null space: the (deflated) operator is 0 there */
            conv = 1;
            change = 0;
            break;
        }
        if (change <= o->tol) {
            conv = 1;
            break;
        }
        for (size_t i = 0; i < n; i++)
            v[i] = hv[i] / nh;
    }
    out->value = lam;
    out->iters = it;
    out->converged = conv;
    out->tol_reached = change;
    if (vec)
        memcpy(vec, v, n * sizeof *v);

cleanup:
    free(v);
    free(hv);
    return st;
}

bp_status bp_power_iteration(const bp_linop *op, const bp_block *block, const bp_eig_opts *o,
                             bp_eig_est *out, double *vec, bp_progress_fn progress, void *pctx)
{
    gsl_rng *rng = bp_probe_rng(o->seed);
    if (!rng)
        return bp_error(BP_ERR_NOMEM, "power iteration: out of memory");
    bp_status st;
    if (!block) {
        st = power(op, NULL, 0, o, rng, out, vec, "eigen", -1, progress, pctx);
    } else {
        bp_block_view bv;
        st = bp_block_view_init(&bv, op, *block);
        if (!st) {
            bp_linop sub = bp_block_view_linop(&bv);
            st = power(&sub, NULL, 0, o, rng, out, vec, "eigen", -1, progress, pctx);
        }
        bp_block_view_free(&bv);
    }
    gsl_rng_free(rng);
    return st;
}

bp_status bp_top_eigenvalues(const bp_linop *op, int k, const bp_eig_opts *o, bp_eig_est *vals,
                             double *vecs, bp_progress_fn progress, void *pctx)
{
    if (k < 1 || (size_t)k > op->n)
        return bp_error(BP_ERR_ARG, "top eigenvalues: k = %d must be in 1..%zu", k, op->n);
    size_t n = op->n;
    double *Q = malloc((size_t)k * n * sizeof *Q);
    gsl_rng *rng = bp_probe_rng(o->seed);
    bp_status st = BP_OK;
    if (!Q || !rng) {
        st = bp_error(BP_ERR_NOMEM, "top eigenvalues: out of memory (k = %d, n = %zu)", k, n);
        goto cleanup;
    }
    for (int j = 0; j < k; j++) {
        if ((st = power(op, Q, j, o, rng, &vals[j], Q + (size_t)j * n, "topk", j, progress, pctx)))
            goto cleanup;
        /* Keep the basis exactly orthonormal for the next deflation. */
        orthogonalize(Q + (size_t)j * n, Q, j, n);
        double nq = cblas_dnrm2((int)n, Q + (size_t)j * n, 1);
        if (nq > 0)
            cblas_dscal((int)n, 1 / nq, Q + (size_t)j * n, 1);
    }
    if (vecs)
        memcpy(vecs, Q, (size_t)k * n * sizeof *Q);

cleanup:
    free(Q);
    if (rng)
        gsl_rng_free(rng);
    return st;
}
