/* Rademacher probes and block views; see probe.h. */
#include "sensitivity/probe.h"

#include <stdlib.h>
#include <string.h>

gsl_rng *bp_probe_rng(uint64_t seed)
{
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    if (r)
        gsl_rng_set(r, (unsigned long)seed);
    return r;
}

void bp_rademacher(gsl_rng *r, double *x, size_t n)
{
    /* One 32-bit draw gives 32 signs: mt19937 outputs full 32-bit words. */
    size_t i = 0;
    while (i < n) {
        unsigned long bits = gsl_rng_get(r);
        for (int b = 0; b < 32 && i < n; b++, i++)
            x[i] = (bits >> b) & 1 ? 1.0 : -1.0;
    }
}

bp_status bp_linop_apply_many(const bp_linop *op, int k, const double *v, double *hv)
{
    if (op->apply_many)
        return op->apply_many(op->ctx, k, v, hv);
    for (int j = 0; j < k; j++) {
        bp_status st = op->apply(op->ctx, v + (size_t)j * op->n, hv + (size_t)j * op->n);
        if (st)
            return st;
    }
    return BP_OK;
}

static bp_status block_apply(void *ctx, const double *v, double *hv)
{
    bp_block_view *bv = ctx;
    memset(bv->vin, 0, bv->full->n * sizeof *bv->vin);
    memcpy(bv->vin + bv->blk.off, v, bv->blk.len * sizeof *v);
    bp_status st = bv->full->apply(bv->full->ctx, bv->vin, bv->vout);
    if (st)
        return st;
    memcpy(hv, bv->vout + bv->blk.off, bv->blk.len * sizeof *hv);
    return BP_OK;
}

bp_status bp_block_view_init(bp_block_view *bv, const bp_linop *full, bp_block blk)
{
    memset(bv, 0, sizeof *bv);
    if (blk.off + blk.len > full->n || blk.len == 0)
        return bp_error(BP_ERR_ARG, "sensitivity: block [%zu, %zu) outside the operator (n = %zu)",
                        blk.off, blk.off + blk.len, full->n);
    bv->full = full;
    bv->blk = blk;
    bv->vin = malloc(full->n * sizeof *bv->vin);
    bv->vout = malloc(full->n * sizeof *bv->vout);
    if (!bv->vin || !bv->vout) {
        bp_block_view_free(bv);
        return bp_error(BP_ERR_NOMEM, "sensitivity: out of memory for a block view (n = %zu)",
                        full->n);
    }
    return BP_OK;
}

void bp_block_view_free(bp_block_view *bv)
{
    if (!bv)
        return;
    free(bv->vin);
    free(bv->vout);
    bv->vin = bv->vout = NULL;
}

bp_linop bp_block_view_linop(bp_block_view *bv)
{
    return (bp_linop){.n = bv->blk.len, .apply = block_apply, .ctx = bv};
}
