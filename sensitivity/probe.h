/* probe.h — internal helpers of the sensitivity algorithms: Rademacher
 * vectors from a seeded GSL generator, and the restriction of an operator to
 * one block. Not part of the public API. */
#ifndef BP_SENS_PROBE_H
#define BP_SENS_PROBE_H

#include <gsl/gsl_rng.h>

#include "sensitivity/sensitivity.h"

/* A gsl_rng_mt19937 seeded with seed (GSL treats seed 0 as its default
 * 4357; any value is fine). NULL on allocation failure. */
gsl_rng *bp_probe_rng(uint64_t seed);

/* x[i] = ±1 with probability 1/2 each, for i < n. */
void bp_rademacher(gsl_rng *r, double *x, size_t n);

/* The operator restricted to a block: v (block length) is placed into a
 * zero vector of the full length, A is applied, and the block of the result
 * is returned in hv (block length). Scratch buffers are owned by the view. */
typedef struct {
    const bp_linop *full;
    bp_block blk;
    double *vin, *vout;   /* (full->n) */
} bp_block_view;

bp_status bp_block_view_init(bp_block_view *bv, const bp_linop *full, bp_block blk);
void bp_block_view_free(bp_block_view *bv);
/* The view as a bp_linop of length blk.len (valid while bv lives). */
bp_linop bp_block_view_linop(bp_block_view *bv);

#endif
