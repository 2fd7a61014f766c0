/* Hutchinson estimates of the traces of an operator's diagonal blocks:
 * Tr(A_ii) = E[v_iᵀ A_ii v_i] for Rademacher v_i. See sensitivity.h. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sensitivity/probe.h"
#include "sensitivity/running.h"

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
                           .max_probes = 200, .seed = 1, .group = 4};
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

/* Probe sample of block B from product row hv for probe row v. */
static double block_sample(const double *v, const double *hv, const bp_block *B)
{
    double x = 0;
    for (size_t j = 0; j < B->len; j++)
        x += v[B->off + j] * hv[B->off + j];
    return x;
}

bp_status bp_hutchinson(const bp_linop *op, const bp_block *blocks, int nblocks,
                        const bp_trace_opts *o, bp_trace_est *out, bp_progress_fn progress,
                        void *pctx)
{
    bp_status st = check_opts(op, blocks, nblocks, o);
    if (st)
        return st;
    int G = o->group > 1 ? o->group : 1;
    if (G > o->max_probes)
        G = o->max_probes;
    size_t n = op->n;
    double *v = calloc((size_t)G * n, sizeof *v), *hv = malloc((size_t)G * n * sizeof *hv);
    bp_running *r = calloc(nblocks > 0 ? nblocks : 1, sizeof *r);
    gsl_rng *rng = bp_probe_rng(o->seed);
    if (!v || !hv || !r || !rng) {
        st = bp_error(BP_ERR_NOMEM, "hutchinson: out of memory (n = %zu, group %d)", n, G);
        goto cleanup;
    }

    if (o->scheme == BP_PROBE_JOINT) {
        /* Rows of v are zero outside the blocks (calloc'd; only block
         * entries are ever written). Probes are drawn in order, G at a time;
         * the ones past the stop are discarded, so results do not depend on G. */
        int k = 0, open = 1;
        while (k < o->max_probes && open) {
            int g = o->max_probes - k < G ? o->max_probes - k : G;
            for (int j = 0; j < g; j++)
                for (int b = 0; b < nblocks; b++)
                    bp_rademacher(rng, v + (size_t)j * n + blocks[b].off, blocks[b].len);
            if ((st = bp_linop_apply_many(op, g, v, hv)))
                goto cleanup;
            for (int j = 0; j < g && open; j++) {
                k++;
                int worst = -1;
                for (int b = 0; b < nblocks; b++) {
                    double x = block_sample(v + (size_t)j * n, hv + (size_t)j * n, &blocks[b]);
                    if (!isfinite(x)) {
                        st = bp_error(BP_ERR_NUMERIC, "hutchinson: probe %d of block %d is not finite", k, b);
                        goto cleanup;
                    }
                    bp_running_add(&r[b], x, o);
                    if (!r[b].converged && (worst < 0 || r[b].change > r[worst].change))
                        worst = b;
                }
                open = worst >= 0;
                if (progress) {
                    int show = worst >= 0 ? worst : 0;
                    bp_progress p = {"trace", worst, nblocks, k, nblocks ? r[show].mean : 0,
                                     nblocks ? r[show].change : 0};
                    progress(pctx, &p);
                }
            }
        }
    } else {
        for (int b = 0; b < nblocks; b++) {
            const bp_block *B = &blocks[b];
            /* A generator per block, so that a block's probes do not depend on
             * how many probes earlier blocks drew (or discarded). */
            gsl_rng_set(rng, (unsigned long)(o->seed + 0x9E3779B97F4A7C15ull * (uint64_t)(b + 1)));
            while (r[b].k < o->max_probes && !r[b].converged) {
                int g = o->max_probes - r[b].k < G ? o->max_probes - r[b].k : G;
                for (int j = 0; j < g; j++)
                    bp_rademacher(rng, v + (size_t)j * n + B->off, B->len);
                if ((st = bp_linop_apply_many(op, g, v, hv)))
                    goto cleanup;
                for (int j = 0; j < g && !r[b].converged; j++) {
                    double x = block_sample(v + (size_t)j * n, hv + (size_t)j * n, B);
                    if (!isfinite(x)) {
                        st = bp_error(BP_ERR_NUMERIC, "hutchinson: probe %d of block %d is not finite", r[b].k + 1, b);
                        goto cleanup;
                    }
                    bp_running_add(&r[b], x, o);
                    if (progress) {
                        bp_progress p = {"trace", b, nblocks, r[b].k, r[b].mean, r[b].change};
                        progress(pctx, &p);
                    }
                }
            }
            for (int j = 0; j < G; j++)
                memset(v + (size_t)j * n + B->off, 0, B->len * sizeof *v);
        }
    }
    for (int b = 0; b < nblocks; b++)
        bp_running_out(&r[b], &out[b]);

cleanup:
    free(v);
    free(hv);
    free(r);
    if (rng)
        gsl_rng_free(rng);
    return st;
}
