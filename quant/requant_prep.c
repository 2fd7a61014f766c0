/* requant_prep.c — turning real multipliers into {mult, shift} pairs. Runs
 * when a model is prepared, before any integer inference, so it may use
 * floating point (it is deliberately outside the integer-only objects). */
#include <math.h>

#include "quant/requant.h"

bp_status bp_quantize_multiplier(double real, bp_qmul *out)
{
    if (!isfinite(real) || real < 0)
        return bp_error(BP_ERR_NUMERIC, "requant: multiplier %g is not a finite non-negative number",
                        real);
    if (real < ldexp(1.0, -32)) {
        out->mult = 0;
        out->shift = BP_QMUL_ZERO_SHIFT;
        return BP_OK;
    }
    int e;
    double q = frexp(real, &e); /* real = q · 2^e, q in [0.5, 1) */
    int64_t m = (int64_t)llround(q * (double)((int64_t)1 << 31));
    if (m == ((int64_t)1 << 31)) { /* rounding reached 1.0: renormalize */
        m /= 2;
        e++;
    }
    if (e > 30)
        return bp_error(BP_ERR_NUMERIC, "requant: multiplier %g is too large (>= 2^30)", real);
    if (e < -31) {
        /* q·2^e in [2^-32, 2^-31): representable only as a right shift of 32. */
        out->mult = 0;
        out->shift = BP_QMUL_ZERO_SHIFT;
        return BP_OK;
    }
    out->mult = (int32_t)m;
    out->shift = e;
    return BP_OK;
}

bp_status bp_quantize_multiplier_pow2(double real, bp_qmul *out)
{
    if (!isfinite(real) || real <= 0)
        return bp_error(BP_ERR_ARG, "requant: power-of-two multiplier %g is not positive", real);
    int e;
    double q = frexp(real, &e);
    if (q != 0.5)
        return bp_error(BP_ERR_ARG, "requant: multiplier %g is not a power of two", real);
    int k = e - 1; /* real = 2^k */
    if (k > 30 || k < -31)
        return bp_error(BP_ERR_ARG, "requant: power-of-two multiplier 2^%d is out of range", k);
    out->mult = 0;
    out->shift = k;
    return BP_OK;
}
