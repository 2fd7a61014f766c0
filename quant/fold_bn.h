/* fold_bn.h — BatchNormalization folded into the preceding convolution.
 *
 * For a Conv whose output feeds only a BatchNormalization (inference
 * statistics), with a = scale / sqrt(var + eps) per output channel:
 *   W'[c] = a[c] · W[c],   b'[c] = a[c] · (b[c] − mean[c]) + shift[c]
 * (b = 0 when the conv has no bias). The folded conv writes the BN's output
 * value, keeps the conv's weight name (so layer names, and plans keyed by
 * them, stay valid) and gets a bias named after the weight ("x.weight" ->
 * "x.bias", or "<weight>_bias" when that name is taken). Quantization happens
 * after folding, on W' and b'.
 */
#ifndef BP_FOLD_BN_H
#define BP_FOLD_BN_H

#include "core/graph.h"

/* A new graph equal to g in inference mode, with every foldable BN folded.
 * *nfolded (may be NULL) receives how many were folded. BN nodes that follow
 * anything else are kept (the integer engine reports them as unsupported). */
bp_status bp_fold_bn(const bp_graph *g, bp_graph **out, int *nfolded);

#endif
