/* accum.h — accumulator-width analysis (overflow-aware quantization).
 *
 * For a layer with fan-in K (MACs per output), b_w-bit signed weights and
 * b_a-bit activations, one output's dot product is Σ_k w_k·a_k with
 * |w_k| <= 2^(b_w−1) and 0 <= a_k <= 2^(b_a) − 1 (unsigned, after ReLU) or
 * |a_k| <= 2^(b_a−1) (signed):
 *
 *   worst case   |Σ| < K · 2^(b_w−1) · 2^(b_a), so a signed accumulator of
 *                b_w + b_a + ⌈log2 K⌉ bits always holds it (the DESIGN bound);
 *   per channel  |Σ| <= ‖w_int[c]‖₁ · (2^(b_a) − 1), the bound of
 *                overflow-aware quantization with the actual integer weights;
 *                needs ⌈log2(B + 1)⌉ + 1 bits (sign) for B = max_c of it.
 *
 * The bias is added after the dot product and is not part of the bound (an
 * implementation that seeds the accumulator with it needs its bits on top).
 * The per-channel bound uses the unsigned activation range, which covers the
 * signed one (2^(b_a) − 1 >= 2^(b_a−1)), so it holds whatever the
 * activation's sign.
 *
 * For the ILP (overflow-aware candidate restriction): call
 * bp_acc_can_overflow for each layer and candidate (b_w, b_a) and drop the
 * candidates for which it says 1; it quantizes the layer's weights at b_w
 * with the same quantizer the evaluator uses (wquant.h, per output channel),
 * so the restriction and the evaluation agree. bp_acc_table does all layers
 * and candidates at once.
 */
#ifndef BP_ACCUM_H
#define BP_ACCUM_H

#include "core/graph.h"
#include "quant/wquant.h"

/* b_w + b_a + ⌈log2 K⌉. */
int bp_acc_bits_worst(int wbits, int abits, int64_t fan_in);

/* Per-channel bound of integer weights codes (M rows of K, row-major) at
 * abits: *bound (may be NULL) = max_c ‖codes[c]‖₁ · (2^abits − 1); returns
 * the signed accumulator bits it needs. */
int bp_acc_bits_channel(const int32_t *codes, int64_t m, int64_t k, int abits, int64_t *bound);

/* Whether layer l (of g's bp_graph_layers) quantized at (wbits, abits) can
 * overflow an acc_bits-bit signed accumulator by the per-channel bound.
 * *overflow = 1 if it can; *need_bits (may be NULL) = the bits it needs;
 * *worst_bits (may be NULL) = the worst-case bound. */
bp_status bp_acc_can_overflow(const bp_graph *g, const bp_layer *l, int wbits, int abits,
                              int acc_bits, bp_clip_mode clip, int *overflow, int *need_bits,
                              int *worst_bits);

/* For every layer (nl of them) and candidate (cw[j], ca[j]), j < nc:
 * overflow[i·nc + j] = 1 when the candidate can overflow acc_bits. */
bp_status bp_acc_table(const bp_graph *g, const bp_layer *layers, int nl, const int *cw,
                       const int *ca, int nc, int acc_bits, bp_clip_mode clip, uint8_t *overflow);

#endif
