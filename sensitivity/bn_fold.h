/* bn_fold.h — internal to sensitivity/: the graph the Hessian operator runs,
 * with inference-form BatchNormalization folded into the convolution before
 * it, and what it takes to keep the Hessian that of the ORIGINAL weights.
 *
 * A BN with running statistics is the per-channel affine map
 * y = s·z + t, s = scale / sqrt(var + eps), t = shift − s·mean. After
 * conv(x, W) + b it gives conv(x, W') + b' with W'[c] = s[c]·W[c] and
 * b' = s·b + t. The loss is the same function L(W') of W' = diag(s)·W, so by
 * the chain rule (the map is linear in W):
 *   ∇_W L = s ⊙ ∇_W' L,   H_W v = s ⊙ H_W'(s ⊙ v)      (per output channel c)
 * — an identity, not an approximation; only the rounding of the products
 * differs. The folded graph skips BN's forward, backward and both R-passes.
 *
 * Unlike quant/fold_bn.h (which feeds the integer engine) the folded
 * parameters are computed in double and kept in bp_real, so the f64 build
 * folds to double precision. Not part of the public API. */
#ifndef BP_SENS_BN_FOLD_H
#define BP_SENS_BN_FOLD_H

#include "core/graph.h"

/* A new graph equal to g in inference mode with every foldable BN folded:
 * a Conv whose weight (and bias, if any) are PARAMs read by no other node,
 * whose output is read only by that BN's data input (and is not the graph
 * output), and whose BN statistics and affine terms are PARAMs. Every other
 * node, BN or not, is copied unchanged; value and node names are kept (the
 * conv writes the BN's output value), so g's layers are the new graph's
 * layers in the same order with the same weight names. The folded bias is a
 * new PARAM.
 *
 * *scale receives a malloc'd array of g->nnodes pointers: for a folded conv
 * node i, scale[i] is a malloc'd (Cout) array of s; NULL otherwise. Free it
 * with bp_bn_fold_scale_free. *nfolded may be NULL. When nothing folds,
 * *out is still a copy. */
bp_status bp_bn_fold(const bp_graph *g, bp_graph **out, double ***scale, int *nfolded);
void bp_bn_fold_scale_free(double **scale, int nnodes); /* accepts NULL */

#endif
