/* test_requant.c — the dyadic requantization helpers against an independent
 * wide-integer reference (__int128, gemmlowp's own truncating formulation,
 * exact rational rounding), on edge cases: ties, negatives, INT32 extremes,
 * every shift 0..31, multipliers near 2^31; quantize_multiplier round trips. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>

#include "quant/requant.h"

typedef __int128 i128;

/* gemmlowp's SaturatingRoundingDoublingHighMul as written there: a sign-
 * dependent nudge, then a division truncating toward zero. */
static int32_t ref_srdhm(int32_t a, int32_t b)
{
    if (a == INT32_MIN && b == INT32_MIN)
        return INT32_MAX;
    i128 ab = (i128)a * b;
    i128 nudge = ab >= 0 ? ((i128)1 << 30) : (1 - ((i128)1 << 30));
    i128 r = (ab + nudge) / ((i128)1 << 31);
    cr_assert(r >= INT32_MIN && r <= INT32_MAX, "reference out of range");
    return (int32_t)r;
}

/* x / 2^e rounded to nearest, ties away from zero, from the exact rational. */
static int32_t ref_rdbpot(int32_t x, int e)
{
    i128 ax = x < 0 ? -(i128)x : (i128)x;
    i128 q = (2 * ax + ((i128)1 << e)) / ((i128)1 << (e + 1)); /* floor(|x|/2^e + 1/2) */
    return (int32_t)(x < 0 ? -q : q);
}

static const int32_t edge[] = {INT32_MIN, INT32_MIN + 1, -(1 << 30) - 1, -(1 << 30), -65536,
                               -32769, -256, -255, -3, -2, -1, 0, 1, 2, 3, 255, 256, 32767,
                               65535, 1 << 30, (1 << 30) + 1, INT32_MAX - 1, INT32_MAX};
#define NEDGE (int)(sizeof edge / sizeof *edge)

static uint64_t rng = 88172645463325252ull;
static uint32_t xr(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)rng;
}

Test(requant, srdhm_edges_and_random)
{
    long n = 0;
    for (int i = 0; i < NEDGE; i++)
        for (int j = 0; j < NEDGE; j++, n++)
            cr_assert_eq(bp_srdhm(edge[i], edge[j]), ref_srdhm(edge[i], edge[j]),
                         "srdhm(%d, %d)", edge[i], edge[j]);
    cr_assert_eq(bp_srdhm(INT32_MIN, INT32_MIN), INT32_MAX);
    /* Ties: a·b = (2t+1)·2^30 exactly, both signs. gemmlowp rounds them up. */
    cr_assert_eq(bp_srdhm(1, 1 << 30), 1);
    cr_assert_eq(bp_srdhm(-1, 1 << 30), 0);
    cr_assert_eq(bp_srdhm(3, 1 << 30), 2);
    cr_assert_eq(bp_srdhm(-3, 1 << 30), -1);
    for (int t = 0; t < 200000; t++) {
        int32_t a = (int32_t)xr(), b = (int32_t)xr();
        if (t % 3 == 0) /* multipliers near 2^31 */
            b = INT32_MAX - (int32_t)(xr() % 1024);
        if (t % 5 == 0)
            a >>= xr() % 31;
        cr_assert_eq(bp_srdhm(a, b), ref_srdhm(a, b), "srdhm(%d, %d)", a, b);
    }
}

Test(requant, rdbpot_every_shift)
{
    for (int e = 0; e <= 31; e++) {
        for (int i = 0; i < NEDGE; i++)
            cr_assert_eq(bp_rdbpot(edge[i], e), ref_rdbpot(edge[i], e), "rdbpot(%d, %d)", edge[i], e);
        if (e >= 1 && e <= 30) {
            /* exact ties (2t+1)·2^(e-1), both signs: away from zero */
            for (int t = 0; t < 4; t++) {
                int64_t x = (int64_t)(2 * t + 1) << (e - 1);
                if (x > INT32_MAX)
                    break;
                cr_assert_eq(bp_rdbpot((int32_t)x, e), t + 1, "tie %lld >> %d", (long long)x, e);
                cr_assert_eq(bp_rdbpot((int32_t)-x, e), -(t + 1), "tie -%lld >> %d", (long long)x, e);
                cr_assert_eq(bp_rdbpot((int32_t)x - 1, e), ref_rdbpot((int32_t)x - 1, e));
                cr_assert_eq(bp_rdbpot((int32_t)-x + 1, e), ref_rdbpot((int32_t)-x + 1, e));
            }
        }
        for (int t = 0; t < 20000; t++) {
            int32_t x = (int32_t)xr();
            cr_assert_eq(bp_rdbpot(x, e), ref_rdbpot(x, e), "rdbpot(%d, %d)", x, e);
        }
    }
    cr_assert_eq(bp_rdbpot(5, 1), 3);
    cr_assert_eq(bp_rdbpot(-5, 1), -3);
    cr_assert_eq(bp_rdbpot(-6, 2), -2); /* -1.5 -> -2 */
    cr_assert_eq(bp_rdbpot(-5, 2), -1); /* -1.25 -> -1 */
}

/* Exact x·m·2^(s−31) as a rational, for a closeness check of the composition. */
static double exact_real(int32_t x, bp_qmul q) { return ldexp((double)x * (double)q.mult, q.shift - 31); }

Test(requant, requant_composition)
{
    for (int s = -31; s <= 0; s++)
        for (int t = 0; t < 3000; t++) {
            bp_qmul q = {(int32_t)((1u << 30) + (xr() & ((1u << 30) - 1))), s};
            if (t % 7 == 0)
                q.mult = INT32_MAX - (int32_t)(xr() % 16);
            if (t % 11 == 0)
                q.mult = 1 << 30;
            int32_t x = t < NEDGE ? edge[t] : (int32_t)xr();
            int32_t want = ref_rdbpot(ref_srdhm(x, q.mult), -s);
            cr_assert_eq(bp_requant(x, q), want, "requant(%d, {%d, %d})", x, q.mult, s);
            /* Two roundings: within one of the exact value. */
            cr_assert(fabs((double)bp_requant(x, q) - exact_real(x, q)) <= 1.0 + 1e-9);
        }
    /* left shifts saturate */
    bp_qmul big = {1 << 30, 3};
    cr_assert_eq(bp_requant(1000, big), 4000);
    cr_assert_eq(bp_requant(INT32_MAX / 2, big), ref_srdhm(INT32_MAX, 1 << 30));
    /* shift-only (power of two) */
    for (int s = -31; s <= 0; s++)
        for (int i = 0; i < NEDGE; i++) {
            bp_qmul q = {0, s};
            cr_assert_eq(bp_requant(edge[i], q), ref_rdbpot(edge[i], -s));
        }
    bp_qmul z = {0, BP_QMUL_ZERO_SHIFT};
    cr_assert_eq(bp_requant(INT32_MAX, z), 0);
}

Test(requant, quantize_multiplier_round_trip)
{
    bp_qmul q;
    for (int t = 0; t < 100000; t++) {
        double real = ldexp(0.5 + (xr() / 4294967296.0) * 0.5, (int)(xr() % 60) - 31);
        cr_assert_eq(bp_quantize_multiplier(real, &q), BP_OK);
        if (q.mult == 0)
            continue;
        cr_assert(q.mult >= (1 << 30), "mantissa %d below 2^30", q.mult);
        double back = ldexp((double)q.mult, q.shift - 31);
        cr_assert(fabs(back - real) <= ldexp(real, -31), "%.17g -> {%d,%d} -> %.17g", real, q.mult,
                  q.shift, back);
    }
    /* rounding reaches 2^31: renormalized */
    cr_assert_eq(bp_quantize_multiplier(1.0 - ldexp(1, -33), &q), BP_OK);
    cr_assert_eq(q.mult, 1 << 30);
    cr_assert_eq(q.shift, 1);
    cr_assert_eq(bp_quantize_multiplier(0.5, &q), BP_OK);
    cr_assert_eq(q.mult, 1 << 30);
    cr_assert_eq(q.shift, 0);
    cr_assert_eq(bp_quantize_multiplier(0.75, &q), BP_OK);
    cr_assert_eq(q.mult, 3 << 29);
    cr_assert_eq(q.shift, 0);
    cr_assert_eq(bp_quantize_multiplier(0.0, &q), BP_OK);
    cr_assert_eq(bp_requant(123456, q), 0);
    cr_assert_neq(bp_quantize_multiplier(-1.0, &q), BP_OK);
    cr_assert_neq(bp_quantize_multiplier(NAN, &q), BP_OK);
    cr_assert_neq(bp_quantize_multiplier(ldexp(1, 31), &q), BP_OK);
    /* a real multiplier applied through the pair: close to the float product */
    cr_assert_eq(bp_quantize_multiplier(0.0123, &q), BP_OK);
    cr_assert_eq(bp_requant(10000, q), 123);
    cr_assert_eq(bp_requant(-10000, q), -123);
    cr_assert_eq(bp_quantize_multiplier_pow2(0.125, &q), BP_OK);
    cr_assert_eq(q.mult, 0);
    cr_assert_eq(q.shift, -3);
    cr_assert_eq(bp_requant(12, q), 2);  /* 1.5 -> 2 */
    cr_assert_eq(bp_requant(-12, q), -2);
    cr_assert_neq(bp_quantize_multiplier_pow2(0.3, &q), BP_OK);
}

Test(requant, round_div)
{
    for (int64_t den = 1; den <= 64; den++)
        for (int64_t num = -1000; num <= 1000; num++) {
            /* exact: floor((2|num| + den) / (2 den)) with the sign */
            int64_t a = num < 0 ? -num : num;
            int64_t q = (2 * a + den) / (2 * den);
            cr_assert_eq(bp_round_div(num, den), num < 0 ? -q : q, "%lld/%lld", (long long)num,
                         (long long)den);
        }
}
