/* wquant.h — the weight quantizer: symmetric, per output channel (or per
 * tensor), uniform, b bits.
 *
 *   S = c / (2^(b−1) − 1)            c = max|w| over the channel (max-abs),
 *                                    or α·max|w| with α chosen to minimize
 *                                    ‖Q(W) − W‖² over the channel (MSE)
 *   q = clamp(round(w / S), −2^(b−1), 2^(b−1) − 1)
 *   Q(w) = q · S
 *
 * round() is half away from zero (C's round(): round(2.5) = 3,
 * round(−2.5) = −3), computed in double. With max-abs clipping |w/S| <= 2^(b−1)−1,
 * so the extra negative level −2^(b−1) is only reached under MSE clipping.
 * A channel whose weights are all zero gets S = 0, q = 0, Q(w) = 0 (no
 * division by zero).
 *
 * Layout. A weight tensor is viewed as (outer, nchan, inner): element
 * (o, c, i) lives at w[(o·nchan + c)·inner + i] and c is the output channel.
 * Conv W (Cout, Cin/g, kh, kw) is (1, Cout, Cin/g·kh·kw); Gemm with transB
 * (Cout, Cin) is (1, Cout, Cin); Gemm without transB and MatMul (…, K, M) are
 * (numel/M, M, 1). bp_wq_shape_of_layer works this out from the layer table.
 *
 * MSE clipping searches α on the grid k/BP_WQ_MSE_GRID, k = 1..BP_WQ_MSE_GRID
 * (α = 1 is on it, so MSE clipping is never worse than max-abs); ties keep the
 * larger α.
 */
#ifndef BP_WQUANT_H
#define BP_WQUANT_H

#include <stdint.h>

#include "core/graph.h"

#define BP_WQ_MIN_BITS 2
#define BP_WQ_MAX_BITS 16
#define BP_WQ_MSE_GRID 200

typedef enum {
    BP_CLIP_MAXABS, /* c = max|w| */
    BP_CLIP_MSE     /* c = α·max|w|, α minimizing the squared error */
} bp_clip_mode;

/* Name ("maxabs", "mse") and parse (-1 on an unknown name). */
const char *bp_clip_name(bp_clip_mode m);
int bp_clip_parse(const char *name);

typedef struct {
    int64_t outer, nchan, inner; /* numel = outer·nchan·inner */
} bp_wq_shape;

/* Shape view of a layer's weight (see the header comment). BP_ERR_UNSUPPORTED
 * for a layer op without weights. */
bp_status bp_wq_shape_of_layer(const bp_graph *g, const bp_layer *l, bp_wq_shape *s);

/* Quantizes w (numel = outer·nchan·inner) to `bits` (2..16) bits.
 * per_channel = 1: one scale per output channel; 0: one scale for the tensor.
 * Every output may be NULL:
 *   out_deq    (numel)  Q(w), may alias w
 *   out_scales (nchan when per_channel, else 1)  S
 *   out_codes  (numel)  q
 *   err2       ‖Q(W) − W‖², accumulated in double
 * BP_ERR_ARG on bad bits or shape; BP_ERR_NUMERIC naming the element on a
 * non-finite weight. */
bp_status bp_wquant_tensor(const bp_real *w, bp_wq_shape s, int per_channel, int bits,
                           bp_clip_mode mode, bp_real *out_deq, double *out_scales,
                           int32_t *out_codes, double *err2);

/* ‖Q_b(W) − W‖² of a layer's weight for each of nbits bit-widths, per output
 * channel. dw2 has nbits entries. Writes nothing into the graph. */
bp_status bp_wquant_layer_err2(const bp_graph *g, const bp_layer *l, const int *bits,
                               int nbits, bp_clip_mode mode, double *dw2);

#endif
