/* test_qkernels_dw.c — depthwise convs (group = cin = cout) on every kernel
 * implementation the CPU has, against a naive int64 loop with its own
 * __int128 requantization, exactly: strides 1 and 2 (and 3), symmetric and
 * asymmetric padding, dilation 2, kernels 1x1, 3x3, 5x5 and 3x5, planes
 * narrower than a vector and not multiples of 16/32 or 64, 2/4/8-bit
 * weights, int8 and uint8 inputs, int8/uint8/int32 outputs with inner
 * clamps, batch 1 and 3, 1, 3, 16 and 17 channels, shift-only and
 * left-shift multipliers. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "quant/kern_dw.h"
#include "quant/qkernels.h"

typedef __int128 i128;

static uint64_t rng = 0x2545F4914F6CDD1Dull;
static uint32_t xr(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)rng;
}
static int rnd(int lo, int hi) { return lo + (int)(xr() % (uint32_t)(hi - lo + 1)); }

/* gemmlowp's two roundings in 128-bit integers: SRDHM with the sign-dependent
 * nudge and truncating division, then division by 2^right to nearest, ties
 * away from zero; shift-only (mult 0) and left shifts (saturating) too. */
static int64_t ref_req(int64_t acc, bp_qmul q)
{
    cr_assert(acc >= INT32_MIN && acc <= INT32_MAX, "accumulator overflow in the test itself");
    if (q.shift < -31)
        return 0;
    i128 x = acc;
    if (q.shift > 0) {
        x *= (i128)1 << q.shift;
        x = x > INT32_MAX ? INT32_MAX : x < INT32_MIN ? INT32_MIN : x;
        if (q.mult == 0)
            return (int64_t)x;
    }
    i128 y = x;
    if (q.mult != 0) {
        i128 ab = x * q.mult;
        i128 nudge = ab >= 0 ? ((i128)1 << 30) : (1 - ((i128)1 << 30));
        y = (ab + nudge) / ((i128)1 << 31);
    }
    int right = q.shift < 0 ? -q.shift : 0;
    if (right == 0)
        return (int64_t)y;
    i128 ay = y < 0 ? -y : y;
    i128 r = (2 * ay + ((i128)1 << right)) / ((i128)1 << (right + 1));
    return (int64_t)(y < 0 ? -r : r);
}

static int64_t get_out(const void *out, size_t i, bp_qtype t)
{
    return t == BP_QT_S8 ? ((const int8_t *)out)[i] : t == BP_QT_U8 ? ((const uint8_t *)out)[i]
                                                                   : ((const int32_t *)out)[i];
}

typedef struct {
    int n, c, h, w, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr, wbits;
    bp_qtype in, out;
    int qkind; /* 0 normal multipliers, 1 shift-only, 2 some left shifts, 3 shifts 0, 1, 30, 31 */
} dw_case;

/* Runs one case on every available implementation; returns mismatches. */
static long run_case(const dw_case *t, int id)
{
    bp_qconv_params p = {.n = t->n, .cin = t->c, .h = t->h, .w = t->w, .cout = t->c, .kh = t->kh,
                         .kw = t->kw, .stride_h = t->sh, .stride_w = t->sw, .pad_t = t->pt,
                         .pad_l = t->pl, .pad_b = t->pb, .pad_r = t->pr, .dil_h = t->dh,
                         .dil_w = t->dw, .group = t->c, .wbits = t->wbits, .in_type = t->in,
                         .out_type = t->out};
    if (t->out == BP_QT_S8)
        p.out_min = rnd(0, 1) ? -128 : -100, p.out_max = rnd(0, 1) ? 127 : 90;
    else if (t->out == BP_QT_U8)
        p.out_min = rnd(0, 1) ? 0 : 3, p.out_max = rnd(0, 1) ? 255 : 100; /* ReLU6-style too */
    else
        p.out_min = -100000, p.out_max = 100000;
    cr_assert_eq(bp_qconv_check(&p), BP_OK, "case %d: %s", id, bp_last_error());
    int oh, ow;
    bp_qconv_out_hw(&p, &oh, &ow);
    const int K = p.kh * p.kw;
    const size_t nin = (size_t)p.n * p.cin * p.h * p.w, nout = (size_t)p.n * p.cout * oh * ow;
    uint8_t *in = malloc(nin);
    int8_t *w = malloc((size_t)p.cout * K);
    for (size_t i = 0; i < nin; i++)
        in[i] = (uint8_t)xr();
    const int wl = -(1 << (p.wbits - 1)), wh = (1 << (p.wbits - 1)) - 1;
    for (int i = 0; i < p.cout * K; i++)
        w[i] = (int8_t)(id % 3 ? rnd(wl, wh) : (rnd(0, 1) ? wl : wh)); /* extremes too */
    int32_t *bias = malloc(sizeof(int32_t) * p.cout);
    bp_qmul *qm = malloc(sizeof(bp_qmul) * p.cout);
    for (int c = 0; c < p.cout; c++) {
        bias[c] = rnd(-20000, 20000);
        int sh = -(rnd(6, 9) + (K > 8 ? 2 : 0));
        if (t->qkind == 1)
            qm[c] = (bp_qmul){0, sh};
        else if (t->qkind == 3) /* shift extremes: none, 1, 30, 31 */
            qm[c] = (bp_qmul){(int32_t)((1u << 30) + (xr() & ((1u << 30) - 1))),
                              (int[]){0, -1, -30, -31}[c % 4]};
        else if (t->qkind == 2 && c % 2)
            qm[c] = (bp_qmul){(int32_t)((1u << 30) + (xr() & ((1u << 30) - 1))), rnd(0, 2)};
        else
            qm[c] = (bp_qmul){(int32_t)((1u << 30) + (xr() & ((1u << 30) - 1))), sh};
    }
    uint8_t *panel = malloc(bp_qweights_size(p.group, 1, K, p.wbits));
    cr_assert_eq(bp_qweights_pack(w, p.group, 1, K, p.wbits, panel), BP_OK, "%s", bp_last_error());
    const size_t ssz = bp_qconv_buffer_size(&p), osz = nout * bp_qtype_size(p.out_type);
    void *scratch = aligned_alloc(64, (ssz + 63) / 64 * 64);
    int64_t *want = malloc(sizeof(int64_t) * nout);
    for (int n = 0; n < p.n; n++)
        for (int c = 0; c < p.cout; c++)
            for (int oy = 0; oy < oh; oy++)
                for (int ox = 0; ox < ow; ox++) {
                    int64_t acc = bias[c];
                    for (int ky = 0; ky < p.kh; ky++)
                        for (int kx = 0; kx < p.kw; kx++) {
                            const int iy = oy * p.stride_h - p.pad_t + ky * p.dil_h;
                            const int ix = ox * p.stride_w - p.pad_l + kx * p.dil_w;
                            if (iy < 0 || iy >= p.h || ix < 0 || ix >= p.w)
                                continue;
                            const size_t ii = (((size_t)n * p.cin + c) * p.h + iy) * p.w + ix;
                            const int64_t a = p.in_type == BP_QT_U8 ? in[ii] : (int8_t)in[ii];
                            acc += a * w[(size_t)c * K + ky * p.kw + kx];
                        }
                    int64_t v = ref_req(acc, qm[c]);
                    want[(((size_t)n * p.cout + c) * oh + oy) * ow + ox] =
                        v < p.out_min ? p.out_min : v > p.out_max ? p.out_max : v;
                }
    /* AMX hands depthwise convs to the AVX-512 kernel; the last entry is that
     * kernel with its permute windows off */
    const bp_qkern_impl impls[] = {BP_QKERN_REF, BP_QKERN_AVX2, BP_QKERN_AVXVNNI, BP_QKERN_AVX512VNNI,
                                   BP_QKERN_AMX, BP_QKERN_AVX512VNNI};
    const int nimpl = (int)(sizeof impls / sizeof impls[0]);
    long bad = 0;
    void *o = malloc(osz + 64);
    for (int k = 0; k < nimpl; k++) {
        if (!bp_qkern_available(impls[k]))
            continue;
        bp_qkern_set_impl(impls[k]);
        bp_qk_dwz_set_windows(k != nimpl - 1);
        memset(o, 0xA5, osz + 64); /* also a guard past the end */
        memset(scratch, 0x5A, ssz); /* the kernels must not rely on zeroed scratch */
        cr_assert_eq(bp_qconv(&p, in, panel, bias, qm, o, scratch), BP_OK, "%s", bp_last_error());
        for (size_t i = 0; i < nout; i++) {
            int64_t got = get_out(o, i, p.out_type);
            if (got != want[i] && bad++ < 5)
                cr_log_error("case %d %s%s (n%d c%d %dx%d k%dx%d s%dx%d d%dx%d pad %d %d %d %d w%d %s>%s): "
                             "out[%zu] = %lld, want %lld",
                             id, bp_qkern_name(impls[k]), k == nimpl - 1 ? " rows" : "", p.n, p.cin, p.h, p.w, p.kh, p.kw, p.stride_h,
                             p.stride_w, p.dil_h, p.dil_w, p.pad_t, p.pad_l, p.pad_b, p.pad_r, p.wbits,
                             p.in_type == BP_QT_U8 ? "u8" : "s8",
                             p.out_type == BP_QT_S8 ? "s8" : p.out_type == BP_QT_U8 ? "u8" : "s32", i,
                             (long long)got, (long long)want[i]);
        }
        for (size_t i = osz; i < osz + 64; i++)
            if (((uint8_t *)o)[i] != 0xA5 && bad++ < 5)
                cr_log_error("case %d %s: wrote past the output (byte %zu)", id, bp_qkern_name(impls[k]), i);
    }
    bp_qkern_set_impl(BP_QKERN_AUTO);
    bp_qk_dwz_set_windows(1);
    free(in), free(w), free(bias), free(qm), free(panel), free(scratch), free(want), free(o);
    return bad;
}

Test(qkernels_dw, listed_shapes_exact)
{
    /* n c h w kh kw sh sw dh dw pt pl pb pr wbits in out qkind */
    const dw_case cases[] = {
        /* the reference models' depthwise shapes */
        {1, 16, 14, 14, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 8, BP_QT_U8, BP_QT_U8, 0},
        {3, 17, 14, 14, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 8, BP_QT_S8, BP_QT_S8, 0},
        {1, 3, 7, 7, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 4, BP_QT_U8, BP_QT_S32, 0},
        /* narrow and odd planes */
        {1, 1, 5, 7, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 2, BP_QT_S8, BP_QT_U8, 1},
        {3, 3, 13, 13, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 4, BP_QT_U8, BP_QT_S8, 0},
        {1, 17, 33, 9, 3, 3, 1, 1, 1, 1, 0, 1, 2, 0, 8, BP_QT_S8, BP_QT_S32, 0},
        {3, 16, 9, 33, 3, 3, 2, 2, 1, 1, 1, 0, 1, 2, 2, BP_QT_U8, BP_QT_U8, 0},
        {1, 1, 1, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 8, BP_QT_S8, BP_QT_S8, 0},
        {1, 3, 2, 3, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 8, BP_QT_S8, BP_QT_U8, 0},
        /* asymmetric padding, odd left padding with stride 2 */
        {1, 17, 13, 13, 3, 3, 2, 2, 1, 1, 0, 1, 1, 0, 8, BP_QT_S8, BP_QT_S8, 0},
        {1, 16, 12, 12, 3, 3, 2, 2, 1, 1, 1, 0, 0, 1, 4, BP_QT_U8, BP_QT_U8, 0},
        {3, 3, 13, 13, 3, 3, 1, 1, 1, 1, 2, 0, 0, 2, 8, BP_QT_U8, BP_QT_S8, 2},
        /* dilation 2, 5x5, 1x1, 3x5, unequal strides, stride 3 */
        {1, 16, 13, 13, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2, 8, BP_QT_S8, BP_QT_S8, 0},
        {3, 3, 14, 14, 3, 3, 2, 2, 2, 2, 2, 2, 2, 2, 4, BP_QT_U8, BP_QT_U8, 1},
        {1, 17, 13, 13, 5, 5, 1, 1, 1, 1, 2, 2, 2, 2, 8, BP_QT_U8, BP_QT_S8, 0},
        {3, 16, 14, 14, 5, 5, 2, 2, 1, 1, 2, 2, 2, 2, 2, BP_QT_S8, BP_QT_S32, 0},
        {1, 17, 33, 9, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 8, BP_QT_S8, BP_QT_U8, 0},
        {3, 3, 13, 13, 1, 1, 2, 2, 1, 1, 0, 0, 0, 0, 4, BP_QT_U8, BP_QT_S8, 0},
        {1, 16, 13, 13, 3, 5, 1, 2, 1, 1, 1, 2, 1, 2, 8, BP_QT_S8, BP_QT_S8, 0},
        {1, 3, 17, 19, 3, 3, 3, 3, 1, 1, 1, 1, 1, 1, 8, BP_QT_U8, BP_QT_U8, 0},
        {1, 3, 17, 19, 3, 3, 2, 1, 1, 2, 1, 0, 1, 3, 8, BP_QT_S8, BP_QT_S32, 0},
        /* windows larger than the padded plane: out_hw's truncation still
         * gives one output row/column, its taps past the plane read zeros */
        {3, 2, 3, 3, 3, 3, 2, 2, 2, 1, 1, 0, 0, 0, 8, BP_QT_S8, BP_QT_S8, 0},
        {1, 3, 2, 4, 3, 5, 2, 2, 1, 1, 0, 0, 0, 0, 4, BP_QT_U8, BP_QT_S32, 0},
        /* requantization shift extremes, with large accumulators (5x5) */
        {1, 17, 9, 9, 5, 5, 1, 1, 1, 1, 2, 2, 2, 2, 8, BP_QT_U8, BP_QT_S32, 3},
        {3, 16, 9, 9, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 8, BP_QT_S8, BP_QT_S8, 3},
        /* planes over 4 KiB: more windows than the tables hold, rows copied
         * one by one even with the permute windows on */
        {1, 2, 70, 70, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 8, BP_QT_U8, BP_QT_U8, 0},
        {1, 3, 70, 70, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 4, BP_QT_S8, BP_QT_S8, 0},
        /* rows wider than 64 bytes: several chunks per row copy */
        {1, 3, 9, 150, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 8, BP_QT_S8, BP_QT_S8, 0},
        {1, 3, 9, 150, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 8, BP_QT_U8, BP_QT_S32, 0},
    };
    long bad = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        bad += run_case(&cases[i], (int)i);
    cr_assert_eq(bad, 0, "%ld mismatches", bad);
}

Test(qkernels_dw, random_shapes_exact)
{
    static const int chans[] = {1, 3, 16, 17};
    long bad = 0;
    for (int it = 0; it < 120; it++) {
        dw_case t;
        t.n = it % 4 == 0 ? 3 : 1;
        t.c = chans[it % 4];
        t.h = rnd(1, 20), t.w = rnd(1, 40);
        t.kh = 1 + 2 * rnd(0, 2), t.kw = it % 5 == 0 ? 1 + 2 * rnd(0, 2) : t.kh;
        t.sh = rnd(1, 2), t.sw = it % 7 == 0 ? rnd(1, 3) : t.sh;
        t.dh = it % 6 == 0 ? 2 : 1, t.dw = it % 6 == 0 ? rnd(1, 2) : 1;
        t.pt = rnd(0, t.kh / 2 * t.dh), t.pb = rnd(0, t.kh / 2 * t.dh);
        t.pl = rnd(0, t.kw / 2 * t.dw), t.pr = rnd(0, t.kw / 2 * t.dw);
        /* enough room for one output: a window may overhang the padded
         * plane by less than the stride (out_hw truncates toward zero) */
        while (t.h + t.pt + t.pb + t.sh - 1 < (t.kh - 1) * t.dh + 1)
            t.pb++;
        while (t.w + t.pl + t.pr + t.sw - 1 < (t.kw - 1) * t.dw + 1)
            t.pr++;
        t.wbits = (int[]){2, 4, 8, 3, 6}[it % 5];
        t.in = rnd(0, 1) ? BP_QT_U8 : BP_QT_S8;
        t.out = (bp_qtype)(it % 3);
        t.qkind = it % 9 == 4 ? 1 : it % 11 == 7 ? 2 : it % 13 == 5 ? 3 : 0;
        bad += run_case(&t, 1000 + it);
    }
    cr_assert_eq(bad, 0, "%ld mismatches", bad);
}
