/* requant.c — integer-only requantization helpers (see requant.h for the
 * formulas). This file must stay free of floating point: tests/test_nofloat.c
 * disassembles its object. bp_quantize_multiplier lives in requant_prep.c. */
#include "quant/requant.h"

int32_t bp_srdhm(int32_t a, int32_t b)
{
    /* The only product that does not fit the result is INT32_MIN², whose
     * doubled high half would be +2^31. */
    if (a == INT32_MIN && b == INT32_MIN)
        return INT32_MAX;
    int64_t ab = (int64_t)a * (int64_t)b;
    /* Floor shift of ab + 2^30: the same number as gemmlowp's sign-dependent
     * nudge followed by a truncating division by 2^31. */
    return (int32_t)((ab + ((int64_t)1 << 30)) >> 31);
}

int32_t bp_rdbpot(int32_t x, int exponent)
{
    if (exponent <= 0)
        return x;
    if (exponent > 31)
        exponent = 31;
    const int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

int32_t bp_sat_shl(int32_t x, int s)
{
    if (s <= 0)
        return x;
    int64_t y = (int64_t)x * ((int64_t)1 << (s > 32 ? 32 : s));
    if (y > INT32_MAX)
        return INT32_MAX;
    if (y < INT32_MIN)
        return INT32_MIN;
    return (int32_t)y;
}

int32_t bp_requant(int32_t x, bp_qmul q)
{
    if (q.mult == 0) {
        if (q.shift < -31)
            return 0; /* the zero multiplier */
        return q.shift >= 0 ? bp_sat_shl(x, q.shift) : bp_rdbpot(x, -q.shift);
    }
    int left = q.shift > 0 ? q.shift : 0;
    int right = q.shift > 0 ? 0 : -q.shift;
    return bp_rdbpot(bp_srdhm(bp_sat_shl(x, left), q.mult), right);
}

int32_t bp_round_div(int64_t num, int64_t den)
{
    /* den > 0; halves go away from zero like RoundingDivideByPOT. */
    int64_t q = num >= 0 ? (num + den / 2) / den : -((-num + den / 2) / den);
    /* Odd den: den/2 is floor, so exact halves cannot occur; even den: num +
     * den/2 rounds .5 up in magnitude, as wanted. */
    if (q > INT32_MAX)
        q = INT32_MAX;
    if (q < INT32_MIN)
        q = INT32_MIN;
    return (int32_t)q;
}
