/* Hutchinson estimates of the traces of an operator's diagonal blocks:
 * Tr(A_ii) = E[v_iᵀ A_ii v_i] for Rademacher v_i. See sensitivity.h. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sensitivity/probe.h"

const char *bp_probe_name(bp_probe_scheme s)
{
    return s == BP_PROBE_PER_LAYER ? "per-layer" : "joint";
}

int bp_probe_parse(const char *name)
{
    if (!name)
        return -1;
    if (!strcmp(name, "joint"))
        return BP_PROBE_JOINT;
    if (!strcmp(name, "per-layer") || !strcmp(name, "per_layer") || !strcmp(name, "layer"))
        return BP_PROBE_PER_LAYER;
    return -1;
}

bp_trace_opts bp_trace_opts_default(void)
{
    return (bp_trace_opts){.scheme = BP_PROBE_JOINT, .tol = 1e-3, .min_probes = 10,
                           .max_probes = 200, .seed = 1};
}

/* Running mean and variance (Welford) plus the stop rule of one block. */
typedef struct {
    double mean, m2;
    int k;
    double change;
    int converged;
} running;

static void running_add(running *r, double x, const bp_trace_opts *o)
{
    double old = r->mean;
    r->k++;
    double d = x - old;
    r->mean += d / r->k;
    r->m2 += d * (x - r->mean);
    /* Relative change of the running mean; a mean that stays exactly 0 (a
     * block that does not touch the loss) has changed by 0. */
    double diff = fabs(r->mean - old);
    if (r->k < 2)
        r->change = INFINITY;
    else if (diff == 0)
        r->change = 0;
    else
        r->change = r->mean != 0 ? diff / fabs(r->mean) : INFINITY;
    if (r->k >= o->min_probes && r->k >= 2 && r->change <= o->tol)
        r->converged = 1;
}

static void running_out(const running *r, bp_trace_est *e)
{
    e->mean = r->mean;
    e->se = r->k > 1 ? sqrt(r->m2 / (r->k - 1) / r->k) : INFINITY;
    e->probes = r->k;
    e->converged = r->converged;
    e->tol_reached = r->change;
}

static bp_status check_opts(const bp_linop *op, const bp_block *blocks, int nblocks,
                            const bp_trace_opts *o)
{
    if (!(o->tol > 0) || o->min_probes < 1 || o->max_probes < o->min_probes ||
        o->max_probes < 2)
        return bp_error(BP_ERR_ARG,
                        "hutchinson: need tol > 0 and 1 <= min probes <= max probes, max >= 2 "
                        "(got tol %g, min %d, max %d)",
                        o->tol, o->min_probes, o->max_probes);
    for (int b = 0; b < nblocks; b++)
        if (blocks[b].len == 0 || blocks[b].off + blocks[b].len > op->n)
            return bp_error(BP_ERR_ARG, "hutchinson: block %d [%zu, +%zu) outside the operator (n = %zu)",
                            b, blocks[b].off, blocks[b].len, op->n);
    return BP_OK;
}

bp_status bp_hutchinson(const bp_linop *op, const bp_block *blocks, int nblocks,
                        const bp_trace_opts *o, bp_trace_est *out, bp_progress_fn progress,
                        void *pctx)
{
    bp_status st = check_opts(op, blocks, nblocks, o);
    if (st)
        return st;
    double *v = calloc(op->n, sizeof *v), *hv = malloc(op->n * sizeof *hv);
    running *r = calloc(nblocks > 0 ? nblocks : 1, sizeof *r);
    gsl_rng *rng = bp_probe_rng(o->seed);
    if (!v || !hv || !r || !rng) {
        st = bp_error(BP_ERR_NOMEM, "hutchinson: out of memory (n = %zu)", op->n);
        goto cleanup;
    }

    if (o->scheme == BP_PROBE_JOINT) {
        for (int k = 0; k < o->max_probes; k++) {
            /* v is zero outside the blocks (it was calloc'd and only block
             * entries are ever written). */
            for (int b = 0; b < nblocks; b++)
                bp_rademacher(rng, v + blocks[b].off, blocks[b].len);
            if ((st = op->apply(op->ctx, v, hv)))
                goto cleanup;
            int open = -1;
            for (int b = 0; b < nblocks; b++) {
                double x = 0;
                for (size_t j = 0; j < blocks[b].len; j++)
                    x += v[blocks[b].off + j] * hv[blocks[b].off + j];
                if (!isfinite(x)) {
                    st = bp_error(BP_ERR_NUMERIC, "hutchinson: probe %d of block %d is not finite", k + 1, b);
                    goto cleanup;
                }
                running_add(&r[b], x, o);
                if (!r[b].converged && (open < 0 || r[b].change > r[open].change))
                    open = b;
            }
            if (progress) {
                int show = open >= 0 ? open : 0;
                bp_progress p = {"trace", open, nblocks, k + 1, nblocks ? r[show].mean : 0,
                                 nblocks ? r[show].change : 0};
                progress(pctx, &p);
            }
            if (open < 0)
                break;
        }
    } else {
        for (int b = 0; b < nblocks; b++) {
            const bp_block *B = &blocks[b];
            for (int k = 0; k < o->max_probes && !r[b].converged; k++) {
                bp_rademacher(rng, v + B->off, B->len);
                if ((st = op->apply(op->ctx, v, hv)))
                    goto cleanup;
                double x = 0;
                for (size_t j = 0; j < B->len; j++)
                    x += v[B->off + j] * hv[B->off + j];
                if (!isfinite(x)) {
                    st = bp_error(BP_ERR_NUMERIC, "hutchinson: probe %d of block %d is not finite", k + 1, b);
                    goto cleanup;
                }
                running_add(&r[b], x, o);
                if (progress) {
                    bp_progress p = {"trace", b, nblocks, k + 1, r[b].mean, r[b].change};
                    progress(pctx, &p);
                }
            }
            memset(v + B->off, 0, B->len * sizeof *v);
        }
    }
    for (int b = 0; b < nblocks; b++)
        running_out(&r[b], &out[b]);

cleanup:
    free(v);
    free(hv);
    free(r);
    if (rng)
        gsl_rng_free(rng);
    return st;
}
