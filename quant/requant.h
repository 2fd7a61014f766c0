/* requant.h — dyadic requantization: int32 accumulator -> output scale by an
 * int32 multiplier and a power-of-two shift, bit-exact with gemmlowp, TFLite
 * and CMSIS-NN.
 *
 * A real multiplier M > 0 is represented as M = m · 2^(shift − 31) with the
 * Q31 mantissa m in [2^30, 2^31) (quantize_multiplier, from frexp, rounded and
 * renormalized when rounding reaches 2^31). Applying it to an int32 x:
 *
 *   left  = max(shift, 0), right = max(−shift, 0)
 *   y     = RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(x · 2^left, m), right)
 *
 *   SaturatingRoundingDoublingHighMul(a, b) = (int32)((a·b + 2^30) >> 31) with
 *     a·b in int64; the only overflow, a = b = INT32_MIN, saturates to INT32_MAX.
 *     (gemmlowp writes the nudge as 2^30 for a·b >= 0 and 1 − 2^30 for a·b < 0,
 *     then divides by 2^31 truncating toward zero; that is the same number as
 *     the floor shift of a·b + 2^30 above: ties round toward +infinity.)
 *   RoundingDivideByPOT(x, e) = x / 2^e rounded to nearest, ties away from zero
 *     (mask = 2^e − 1, remainder = x & mask, threshold = mask/2 + (x < 0),
 *      result = (x >> e) + (remainder > threshold)).
 *
 * The left shift saturates to INT32_MIN/INT32_MAX instead of overflowing (TFLite
 * leaves that undefined; bitplan's multipliers are < 1 for conv/gemm, so left
 * shifts only occur for hand-made cases).
 *
 * Power-of-two scales: a multiplier m == 0 marks shift-only requantization,
 * y = RoundingDivideByPOT(x, −shift) for shift <= 0, x · 2^shift (saturating)
 * for shift > 0 — one rounding instead of two.
 *
 * Everything here is integer-only (the no-float test inspects this object),
 * except bp_quantize_multiplier, which runs when a model is prepared.
 */
#ifndef BP_REQUANT_H
#define BP_REQUANT_H

#include <stdint.h>

#include "core/bp_common.h"

/* One output channel's requantization: y ≈ x · m · 2^(shift − 31). */
typedef struct {
    int32_t mult;  /* Q31 mantissa in [2^30, 2^31), or 0 for shift-only */
    int32_t shift; /* > 0 left shift, < 0 right shift; in [-31, 30] */
} bp_qmul;

/* shift of the zero multiplier (every input maps to 0). */
#define BP_QMUL_ZERO_SHIFT (-64)

int32_t bp_srdhm(int32_t a, int32_t b);      /* SaturatingRoundingDoublingHighMul */
int32_t bp_rdbpot(int32_t x, int exponent);  /* RoundingDivideByPOT, exponent 0..31 */
/* x · 2^s for s in 0..31, saturating to INT32_MIN/INT32_MAX. */
int32_t bp_sat_shl(int32_t x, int s);
/* MultiplyByQuantizedMultiplier (see the header comment). */
int32_t bp_requant(int32_t x, bp_qmul q);

/* Splits a real multiplier into {mult, shift}: real = mult · 2^(shift − 31),
 * mult in [2^30, 2^31). real must be finite and >= 0. Reals below 2^-32
 * (including 0) give the zero multiplier {0, BP_QMUL_ZERO_SHIFT}, for which
 * bp_requant returns 0. Reals of 2^31 or more are BP_ERR_NUMERIC. */
bp_status bp_quantize_multiplier(double real, bp_qmul *out);

/* Power-of-two form: real must be 2^k exactly (k in [-31, 30]); gives
 * {0, k}. BP_ERR_ARG when real is not a power of two. */
bp_status bp_quantize_multiplier_pow2(double real, bp_qmul *out);

/* Rounding division of a sum by a positive count, ties away from zero: the
 * integer average of average pooling. */
int32_t bp_round_div(int64_t num, int64_t den);

#endif
