/* test_qkernels.c — int conv/GEMM kernels: AVX2, AVX-VNNI, AVX-512 VNNI and
 * AMX (where the CPU has them; elsewhere those comparisons repeat the AVX2
 * one or are skipped) and reference against a naive
 * int64 loop (exact), on random shapes with odd sizes, groups, depthwise,
 * strides, padding, dilation, every weight width 2..8 (int4 and fewer packed
 * two per byte), signed and unsigned inputs, every output type. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "quant/qkernels.h"

typedef __int128 i128;

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint32_t xr(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)rng;
}
static int rnd(int lo, int hi) { return lo + (int)(xr() % (uint32_t)(hi - lo + 1)); }

/* Requantization from the exact product (gemmlowp's two roundings, written
 * with 128-bit integers; see test_requant.c for its own checks). */
static int64_t ref_req(int64_t acc, bp_qmul q)
{
    cr_assert(acc >= INT32_MIN && acc <= INT32_MAX, "accumulator overflow in the test itself");
    int32_t x = (int32_t)acc;
    int32_t y;
    int right = -q.shift;
    if (q.mult == 0 && q.shift < -31)
        return 0; /* the zero multiplier */
    if (q.shift > 0) { /* a saturating left shift first */
        const i128 v = (i128)x * ((i128)1 << q.shift);
        x = v > INT32_MAX ? INT32_MAX : v < INT32_MIN ? INT32_MIN : (int32_t)v;
        right = 0;
    }
    if (q.mult == 0) {
        y = x;
    } else {
        i128 ab = (i128)x * q.mult;
        i128 nudge = ab >= 0 ? ((i128)1 << 30) : (1 - ((i128)1 << 30));
        y = (int32_t)((ab + nudge) / ((i128)1 << 31));
    }
    if (right == 0)
        return y;
    i128 ay = y < 0 ? -(i128)y : y;
    i128 r = (2 * ay + ((i128)1 << right)) / ((i128)1 << (right + 1));
    return (int64_t)(y < 0 ? -r : r);
}

static int64_t clampl(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : v > hi ? hi : v; }

static int64_t get_out(const void *out, size_t i, bp_qtype t)
{
    return t == BP_QT_S8 ? ((const int8_t *)out)[i] : t == BP_QT_U8 ? ((const uint8_t *)out)[i]
                                                                   : ((const int32_t *)out)[i];
}

static void random_qm(bp_qmul *qm, int n, int k, int pow2)
{
    for (int i = 0; i < n; i++) {
        /* scale roughly 1/(k·64) so outputs spread over the 8-bit range */
        int sh = -(rnd(6, 9) + (k > 64 ? 4 : k > 8 ? 2 : 0));
        /* every fifth row a shift the vector epilogues treat apart: none
         * (one 64-bit shift), one (exactly the high dword), a left shift
         * (bp_requant); outputs mostly saturate, which the clamp must match */
        if (i % 5 == 4)
            sh = rnd(-1, 1);
        if (pow2)
            qm[i] = (bp_qmul){0, sh};
        else
            qm[i] = (bp_qmul){(int32_t)((1u << 30) + (xr() & ((1u << 30) - 1))), sh};
    }
}

static void out_range(bp_qtype t, int32_t *lo, int32_t *hi)
{
    if (t == BP_QT_S8) {
        *lo = -128;
        *hi = 127;
    } else if (t == BP_QT_U8) {
        *lo = 0;
        *hi = rnd(0, 1) ? 255 : 100; /* also a ReLU6-style inner clamp */
    } else {
        *lo = -100000;
        *hi = 100000;
    }
}

/* bp_qconv with the active implementation into out, then the same conv
 * prepared once (bp_qconv_prepare) and run at the full batch and at batch 1:
 * both must give out's bytes exactly. */
static void conv_both(const bp_qconv_params *p, const uint8_t *in, const uint8_t *panel, const int32_t *bias,
                      const bp_qmul *qm, void *out, void *scratch)
{
    cr_assert_eq(bp_qconv(p, in, panel, bias, qm, out, scratch), BP_OK, "%s", bp_last_error());
    int oh, ow;
    bp_qconv_out_hw(p, &oh, &ow);
    const size_t osz = (size_t)p->n * p->cout * oh * ow * bp_qtype_size(p->out_type);
    const size_t isz1 = (size_t)p->cin * p->h * p->w, osz1 = osz / (size_t)p->n;
    uint8_t *o = malloc(osz);
    bp_qconv_prep *pp = NULL;
    cr_assert_eq(bp_qconv_prepare(p, panel, &pp), BP_OK, "%s", bp_last_error());
    cr_assert_eq(bp_qconv_prep_impl(pp), bp_qkern_active());
    memset(o, 0x5A, osz);
    cr_assert_eq(bp_qconv_run(pp, p->n, in, bias, qm, o, scratch), BP_OK, "%s", bp_last_error());
    cr_assert(!memcmp(o, out, osz), "%s: prepared run differs from bp_qconv", bp_qkern_name(bp_qkern_active()));
    /* the last image alone: one prep serves any batch */
    memset(o, 0x5A, osz1);
    cr_assert_eq(bp_qconv_run(pp, 1, in + (size_t)(p->n - 1) * isz1, bias, qm, o, scratch), BP_OK);
    cr_assert(!memcmp(o, (const uint8_t *)out + (size_t)(p->n - 1) * osz1, osz1),
              "%s: prepared run at batch 1 differs", bp_qkern_name(bp_qkern_active()));
    bp_qconv_prep_free(pp);
    free(o);
}

static void run_conv_case(int it)
{
    bp_qconv_params p = {0};
    int dw = it % 5 == 0;
    p.n = rnd(1, 3);
    p.group = dw ? rnd(1, 9) : (it % 4 == 1 ? rnd(2, 3) : 1);
    int cig = dw ? 1 : rnd(1, 7), cog = dw ? 1 : rnd(1, 21);
    p.cin = cig * p.group;
    p.cout = cog * p.group;
    p.h = rnd(1, 13);
    p.w = rnd(1, 11);
    p.kh = rnd(1, 3);
    p.kw = rnd(1, 3);
    p.stride_h = rnd(1, 2);
    p.stride_w = rnd(1, 2);
    p.dil_h = rnd(1, 2);
    p.dil_w = 1;
    p.pad_t = rnd(0, 1);
    p.pad_l = rnd(0, 1);
    p.pad_b = rnd(0, 2);
    p.pad_r = rnd(0, 1);
    if (dw && it % 10 == 0)
        p.kh = p.kw = 3; /* the depthwise kernel's unrolled 3x3 taps */
    if (it % 7 == 5 && !dw) {
        /* equal strides 1..3, dilation 1, output width ceil(w / s): the VNNI
         * kernels' shifted (phase) plane path */
        int s = rnd(1, 3);
        p.stride_h = p.stride_w = s;
        p.dil_h = p.dil_w = 1;
        p.kw = rnd(1, 3);
        p.w = rnd(p.kw, 11);
        int owant = (p.w + s - 1) / s;
        p.pad_l = rnd(0, p.kw - 1);
        p.pad_r = s * (owant - 1) - p.w - p.pad_l + p.kw + rnd(0, s - 1);
        if (p.pad_r < 0) {
            p.pad_l -= p.pad_r;
            p.pad_r = 0;
        }
    }
    if (it % 7 == 6) { /* 1x1, stride 1, no padding: the kernels' contiguous-row path */
        p.kh = p.kw = p.stride_h = p.stride_w = p.dil_h = p.dil_w = 1;
        p.pad_t = p.pad_l = p.pad_b = p.pad_r = 0;
    }
    p.wbits = 2 + it % 7;
    p.in_type = rnd(0, 1) ? BP_QT_U8 : BP_QT_S8;
    p.out_type = (bp_qtype)(it % 3);
    out_range(p.out_type, &p.out_min, &p.out_max);
    int oh, ow;
    bp_qconv_out_hw(&p, &oh, &ow);
    if (oh < 1 || ow < 1) {
        p.pad_b += p.kh * p.dil_h;
        p.pad_r += p.kw;
        bp_qconv_out_hw(&p, &oh, &ow);
    }
    cr_assert_eq(bp_qconv_check(&p), BP_OK, "%s", bp_last_error());
    const int k = cig * p.kh * p.kw;
    size_t nin = (size_t)p.n * p.cin * p.h * p.w, nout = (size_t)p.n * p.cout * oh * ow;
    size_t nw = (size_t)p.cout * k;
    uint8_t *in = malloc(nin);
    int8_t *w = malloc(nw);
    for (size_t i = 0; i < nin; i++)
        in[i] = (uint8_t)xr(); /* full 0..255 or -128..127 range */
    int wl = -(1 << (p.wbits - 1)), wh = (1 << (p.wbits - 1)) - 1;
    for (size_t i = 0; i < nw; i++)
        w[i] = (int8_t)(it % 2 ? rnd(wl, wh) : (rnd(0, 1) ? wl : wh)); /* extremes too */
    int32_t *bias = malloc(sizeof(int32_t) * p.cout);
    bp_qmul *qm = malloc(sizeof(bp_qmul) * p.cout);
    for (int c = 0; c < p.cout; c++)
        bias[c] = rnd(-5000, 5000);
    random_qm(qm, p.cout, k, it % 6 == 3);
    size_t wsz = bp_qweights_size(p.group, cog, k, p.wbits);
    uint8_t *panel = malloc(wsz);
    cr_assert_eq(bp_qweights_pack(w, p.group, cog, k, p.wbits, panel), BP_OK, "%s", bp_last_error());
    size_t ssz = bp_qconv_buffer_size(&p);
    void *scratch = aligned_alloc(64, (ssz + 63) / 64 * 64);
    size_t osz = nout * bp_qtype_size(p.out_type);
    void *o_ref = malloc(osz), *o_avx = malloc(osz), *o_vnni = malloc(osz), *o_z = malloc(osz),
         *o_amx = malloc(osz);

    bp_qkern_set_impl(BP_QKERN_REF);
    conv_both(&p, in, panel, bias, qm, o_ref, scratch);
    bp_qkern_set_impl(BP_QKERN_AVX2);
    conv_both(&p, in, panel, bias, qm, o_avx, scratch);
    int vnni = bp_qkern_available(BP_QKERN_AVXVNNI);
    bp_qkern_set_impl(BP_QKERN_AVXVNNI);
    if (vnni)
        conv_both(&p, in, panel, bias, qm, o_vnni, scratch);
    else
        memcpy(o_vnni, o_avx, osz);
    bp_qkern_set_impl(BP_QKERN_AVX512VNNI);
    if (bp_qkern_available(BP_QKERN_AVX512VNNI))
        conv_both(&p, in, panel, bias, qm, o_z, scratch);
    else
        memcpy(o_z, o_avx, osz);
    bp_qkern_set_impl(BP_QKERN_AMX);
    if (bp_qkern_available(BP_QKERN_AMX))
        conv_both(&p, in, panel, bias, qm, o_amx, scratch);
    else
        memcpy(o_amx, o_avx, osz);
    bp_qkern_set_impl(BP_QKERN_AUTO);

    long bad = 0;
    for (int n = 0; n < p.n; n++)
        for (int co = 0; co < p.cout; co++) {
            int g = co / cog;
            for (int oy = 0; oy < oh; oy++)
                for (int ox = 0; ox < ow; ox++) {
                    int64_t acc = bias[co];
                    for (int ci = 0; ci < cig; ci++)
                        for (int ky = 0; ky < p.kh; ky++)
                            for (int kx = 0; kx < p.kw; kx++) {
                                int iy = oy * p.stride_h - p.pad_t + ky * p.dil_h;
                                int ix = ox * p.stride_w - p.pad_l + kx * p.dil_w;
                                if (iy < 0 || iy >= p.h || ix < 0 || ix >= p.w)
                                    continue;
                                size_t ii = (((size_t)n * p.cin + g * cig + ci) * p.h + iy) * p.w + ix;
                                int64_t a = p.in_type == BP_QT_U8 ? in[ii] : (int8_t)in[ii];
                                acc += a * w[((size_t)co * cig + ci) * p.kh * p.kw + ky * p.kw + kx];
                            }
                    int64_t want = clampl(ref_req(acc, qm[co]), p.out_min, p.out_max);
                    size_t oi = (((size_t)n * p.cout + co) * oh + oy) * ow + ox;
                    int64_t r = get_out(o_ref, oi, p.out_type), a = get_out(o_avx, oi, p.out_type),
                            v = get_out(o_vnni, oi, p.out_type), z = get_out(o_z, oi, p.out_type),
                            x = get_out(o_amx, oi, p.out_type);
                    if (r != want || a != want || v != want || z != want || x != want) {
                        if (bad++ < 5)
                            cr_log_error("case %d (n%d g%d cin%d cout%d %dx%d k%dx%d s%dx%d d%dx%d pad %d %d %d %d w%d): out[%zu] "
                                         "naive %lld ref %lld avx2 %lld avxvnni %lld avx512vnni %lld amx %lld",
                                         it, p.n, p.group, p.cin, p.cout, p.h, p.w, p.kh, p.kw,
                                         p.stride_h, p.stride_w, p.dil_h, p.dil_w, p.pad_t, p.pad_l, p.pad_b,
                                         p.pad_r, p.wbits, oi, (long long)want, (long long)r,
                                         (long long)a, (long long)v, (long long)z, (long long)x);
                    }
                }
        }
    cr_assert_eq(bad, 0, "case %d: %ld mismatches", it, bad);
    free(in), free(w), free(bias), free(qm), free(panel), free(scratch), free(o_ref), free(o_avx), free(o_vnni), free(o_z), free(o_amx);
}

Test(qkernels, conv_random_shapes_exact)
{
    cr_assert(__builtin_cpu_supports("avx2"), "this suite needs an AVX2 host to compare paths");
    for (int it = 0; it < 300; it++)
        run_conv_case(it);
}

Test(qkernels, conv_large_fanin_and_blocks)
{
    /* Fan-in 576 (64 ch 3x3) and a 30x30 image: several pixel blocks and row
     * blocks; int4 and int8. */
    for (int wb = 4; wb <= 8; wb += 4) {
        bp_qconv_params p = {.n = 1, .cin = 64, .h = 30, .w = 30, .cout = 40, .kh = 3, .kw = 3,
                             .stride_h = 1, .stride_w = 1, .pad_t = 1, .pad_l = 1, .pad_b = 1,
                             .pad_r = 1, .dil_h = 1, .dil_w = 1, .group = 1, .wbits = wb,
                             .in_type = BP_QT_U8, .out_type = BP_QT_S32,
                             .out_min = INT32_MIN, .out_max = INT32_MAX};
        const int k = 576;
        size_t nin = 64 * 900, nout = 40 * 900;
        uint8_t *in = malloc(nin);
        int8_t *w = malloc(40 * k);
        for (size_t i = 0; i < nin; i++)
            in[i] = (uint8_t)xr();
        for (int i = 0; i < 40 * k; i++)
            w[i] = (int8_t)rnd(-(1 << (wb - 1)), (1 << (wb - 1)) - 1);
        bp_qmul qm[40];
        for (int c = 0; c < 40; c++)
            qm[c] = (bp_qmul){0, 0}; /* identity: raw accumulators */
        uint8_t *panel = malloc(bp_qweights_size(1, 40, k, wb));
        cr_assert_eq(bp_qweights_pack(w, 1, 40, k, wb, panel), BP_OK);
        void *scratch = aligned_alloc(64, (bp_qconv_buffer_size(&p) + 63) / 64 * 64);
        int32_t *o = malloc(nout * 4);
        cr_assert_eq(bp_qconv(&p, in, panel, NULL, qm, o, scratch), BP_OK);
        long bad = 0;
        for (int co = 0; co < 40; co++)
            for (int y = 0; y < 30; y++)
                for (int x = 0; x < 30; x++) {
                    int64_t acc = 0;
                    for (int ci = 0; ci < 64; ci++)
                        for (int ky = 0; ky < 3; ky++)
                            for (int kx = 0; kx < 3; kx++) {
                                int iy = y + ky - 1, ix = x + kx - 1;
                                if (iy < 0 || iy >= 30 || ix < 0 || ix >= 30)
                                    continue;
                                acc += (int64_t)in[(ci * 30 + iy) * 30 + ix] * w[(co * 64 + ci) * 9 + ky * 3 + kx];
                            }
                    bad += o[(co * 30 + y) * 30 + x] != acc;
                }
        cr_assert_eq(bad, 0, "%ld mismatches at %d bits", bad, wb);
        free(in), free(w), free(panel), free(scratch), free(o);
    }
}

Test(qkernels, gemm_random_shapes_exact)
{
    for (int it = 0; it < 200; it++) {
        bp_qgemm_params p = {.n = rnd(1, 70), .k = rnd(1, 300), .m = rnd(1, 40), .wbits = 2 + it % 7,
                             .in_type = it % 2 ? BP_QT_U8 : BP_QT_S8, .out_type = (bp_qtype)(it % 3)};
        out_range(p.out_type, &p.out_min, &p.out_max);
        uint8_t *in = malloc((size_t)p.n * p.k);
        int8_t *w = malloc((size_t)p.m * p.k);
        for (int i = 0; i < p.n * p.k; i++)
            in[i] = (uint8_t)xr();
        for (int i = 0; i < p.m * p.k; i++)
            w[i] = (int8_t)rnd(-(1 << (p.wbits - 1)), (1 << (p.wbits - 1)) - 1);
        int32_t *bias = malloc(4 * p.m);
        bp_qmul *qm = malloc(sizeof *qm * p.m);
        for (int c = 0; c < p.m; c++)
            bias[c] = rnd(-3000, 3000);
        random_qm(qm, p.m, p.k, it % 5 == 2);
        uint8_t *panel = malloc(bp_qweights_size(1, p.m, p.k, p.wbits));
        cr_assert_eq(bp_qweights_pack(w, 1, p.m, p.k, p.wbits, panel), BP_OK);
        void *scratch = aligned_alloc(64, (bp_qgemm_buffer_size(&p) + 63) / 64 * 64);
        size_t osz = (size_t)p.n * p.m * bp_qtype_size(p.out_type);
        void *o1 = malloc(osz), *o2 = malloc(osz), *o3 = malloc(osz), *o4 = malloc(osz);
        bp_qkern_set_impl(BP_QKERN_REF);
        cr_assert_eq(bp_qgemm(&p, in, panel, bias, qm, o1, scratch), BP_OK);
        bp_qkern_set_impl(BP_QKERN_AVX2);
        cr_assert_eq(bp_qgemm(&p, in, panel, bias, qm, o2, scratch), BP_OK);
        bp_qkern_set_impl(BP_QKERN_AVXVNNI);
        if (bp_qkern_available(BP_QKERN_AVXVNNI))
            cr_assert_eq(bp_qgemm(&p, in, panel, bias, qm, o3, scratch), BP_OK);
        else
            memcpy(o3, o2, osz);
        bp_qkern_set_impl(BP_QKERN_AVX512VNNI);
        if (bp_qkern_available(BP_QKERN_AVX512VNNI))
            cr_assert_eq(bp_qgemm(&p, in, panel, bias, qm, o4, scratch), BP_OK);
        else
            memcpy(o4, o2, osz);
        bp_qkern_set_impl(BP_QKERN_AUTO);
        for (int n = 0; n < p.n; n++)
            for (int r = 0; r < p.m; r++) {
                int64_t acc = bias[r];
                for (int c = 0; c < p.k; c++)
                    acc += (int64_t)(p.in_type == BP_QT_U8 ? in[n * p.k + c] : (int8_t)in[n * p.k + c]) *
                           w[r * p.k + c];
                int64_t want = clampl(ref_req(acc, qm[r]), p.out_min, p.out_max);
                cr_assert_eq(get_out(o1, (size_t)n * p.m + r, p.out_type), want, "gemm %d ref (%d,%d)", it, n, r);
                cr_assert_eq(get_out(o2, (size_t)n * p.m + r, p.out_type), want, "gemm %d avx2 (%d,%d)", it, n, r);
                cr_assert_eq(get_out(o3, (size_t)n * p.m + r, p.out_type), want, "gemm %d avxvnni (%d,%d)", it, n, r);
                cr_assert_eq(get_out(o4, (size_t)n * p.m + r, p.out_type), want, "gemm %d avx512vnni (%d,%d)", it, n, r);
            }
        free(in), free(w), free(bias), free(qm), free(panel), free(scratch), free(o1), free(o2), free(o3), free(o4);
    }
}

Test(qkernels, int4_packing_byte)
{
    /* 16 rows x 2 cols at 4 bits: one cell of 16 bytes. v[2c+t] = w[c][t].
     * Row 0 col 0 (v[0]) = -3 and row 8 col 0 (v[16]) = 5 share byte 0:
     * low nibble 0xD (-3), high nibble 0x5 -> 0x5D. */
    int8_t w[16 * 2] = {0};
    w[0 * 2 + 0] = -3;
    w[8 * 2 + 0] = 5;
    w[7 * 2 + 1] = -8; /* v[15]: low nibble of byte 15 = 0x8 */
    w[15 * 2 + 1] = 7; /* v[31]: high nibble of byte 15 = 0x7 */
    uint8_t panel[16];
    cr_assert_eq(bp_qweights_size(1, 16, 2, 4), 16);
    cr_assert_eq(bp_qweights_pack(w, 1, 16, 2, 4, panel), BP_OK);
    cr_assert_eq(panel[0], 0x5D);
    cr_assert_eq(panel[15], 0x78);
    for (int i = 1; i < 15; i++)
        cr_assert_eq(panel[i], 0);
    for (int r = 0; r < 16; r++)
        for (int c = 0; c < 2; c++)
            cr_assert_eq(bp_qweights_get(panel, 1, 16, 2, 4, 0, r, c), w[r * 2 + c]);
    /* 8-bit panels: a byte per value; 2-bit values use the 4-bit format. */
    cr_assert_eq(bp_qweights_size(1, 16, 2, 8), 32);
    cr_assert_eq(bp_qweights_size(2, 17, 3, 2), 2 * 2 * 2 * 16);
    int8_t bad[2] = {2, 0}; /* 2 is outside the 2-bit range -2..1 */
    uint8_t p2[64];
    cr_assert_eq(bp_qweights_pack(bad, 1, 1, 2, 2, p2), BP_ERR_ARG);
}

Test(qkernels, rejects_bad_params)
{
    bp_qconv_params p = {.n = 1, .cin = 3, .h = 4, .w = 4, .cout = 4, .kh = 3, .kw = 3, .stride_h = 1,
                         .stride_w = 1, .dil_h = 1, .dil_w = 1, .group = 2, .wbits = 8,
                         .in_type = BP_QT_U8, .out_type = BP_QT_U8, .out_min = 0, .out_max = 255};
    cr_assert_eq(bp_qconv_check(&p), BP_ERR_ARG); /* group 2 does not divide 3 */
    p.group = 1;
    p.out_max = 300;
    cr_assert_eq(bp_qconv_check(&p), BP_ERR_ARG); /* clamp outside uint8 */
    p.out_max = 255;
    p.wbits = 9;
    cr_assert_eq(bp_qconv_check(&p), BP_ERR_ARG);
    p.wbits = 8;
    cr_assert_eq(bp_qconv_check(&p), BP_OK);
}

/* Random operands of a conv: input (full byte range), weights at p's width
 * packed into a panel, bias in ±5000, multipliers (random_qm). */
typedef struct {
    uint8_t *in, *panel;
    int32_t *bias;
    bp_qmul *qm;
} operands;

static operands random_operands(const bp_qconv_params *p, int pow2)
{
    const int cig = p->cin / p->group, cog = p->cout / p->group, k = cig * p->kh * p->kw;
    const size_t nin = (size_t)p->n * p->cin * p->h * p->w;
    operands o = {malloc(nin), malloc(bp_qweights_size(p->group, cog, k, p->wbits)), malloc(4 * p->cout),
                  malloc(sizeof(bp_qmul) * p->cout)};
    int8_t *w = malloc((size_t)p->cout * k);
    for (size_t i = 0; i < nin; i++)
        o.in[i] = (uint8_t)xr();
    for (int i = 0; i < p->cout * k; i++)
        w[i] = (int8_t)rnd(-(1 << (p->wbits - 1)), (1 << (p->wbits - 1)) - 1);
    for (int c = 0; c < p->cout; c++)
        o.bias[c] = rnd(-5000, 5000);
    random_qm(o.qm, p->cout, k, pow2);
    cr_assert_eq(bp_qweights_pack(w, p->group, cog, k, p->wbits, o.panel), BP_OK);
    free(w);
    return o;
}

static void operands_free(operands *o) { free(o->in), free(o->panel), free(o->bias), free(o->qm); }

Test(qkernels, model_shapes_match_reference)
{
    /* The reference models' conv shapes (wider than the random cases: several
     * 16-column chunks per row, pixel blocks, phase planes), each SIMD
     * implementation against the reference kernel, signed and unsigned inputs. */
    const int sh[][7] = {/* cin, cout, hw, k, stride, pad, group */
                         {1, 16, 28, 3, 1, 1, 1},   {16, 16, 28, 3, 1, 1, 1},  {16, 32, 28, 3, 2, 1, 1},
                         {16, 32, 28, 1, 2, 0, 1},  {32, 64, 14, 3, 2, 1, 1},  {32, 64, 14, 1, 2, 0, 1},
                         {1, 16, 28, 3, 2, 1, 1},   {16, 16, 14, 3, 1, 1, 16}, {64, 64, 14, 3, 2, 1, 64},
                         {24, 96, 7, 1, 1, 0, 1},   {96, 96, 7, 3, 1, 1, 96},  {17, 20, 33, 3, 2, 1, 1},
                         {8, 8, 31, 3, 2, 1, 8}};
    const bp_qkern_impl impls[] = {BP_QKERN_AVX2, BP_QKERN_AVXVNNI, BP_QKERN_AVX512VNNI, BP_QKERN_AMX};
    for (size_t si = 0; si < sizeof sh / sizeof sh[0]; si++)
        for (int s8 = 0; s8 < 2; s8++) {
            const int *q = sh[si];
            bp_qconv_params p = {.n = 2, .cin = q[0], .h = q[2], .w = q[2], .cout = q[1], .kh = q[3],
                                 .kw = q[3], .stride_h = q[4], .stride_w = q[4], .pad_t = q[5],
                                 .pad_l = q[5], .pad_b = q[5], .pad_r = q[5], .dil_h = 1, .dil_w = 1,
                                 .group = q[6], .wbits = s8 ? 4 : 8,
                                 .in_type = s8 ? BP_QT_S8 : BP_QT_U8, .out_type = BP_QT_S8,
                                 .out_min = -128, .out_max = 127};
            int oh, ow;
            bp_qconv_out_hw(&p, &oh, &ow);
            const size_t nout = (size_t)p.n * p.cout * oh * ow;
            operands op = random_operands(&p, 0);
            const uint8_t *in = op.in, *panel = op.panel;
            const int32_t *bias = op.bias;
            const bp_qmul *qm = op.qm;
            void *scratch = aligned_alloc(64, (bp_qconv_buffer_size(&p) + 63) / 64 * 64);
            int8_t *o_ref = malloc(nout), *o = malloc(nout);
            bp_qkern_set_impl(BP_QKERN_REF);
            cr_assert_eq(bp_qconv(&p, in, panel, bias, qm, o_ref, scratch), BP_OK);
            for (size_t ii = 0; ii < sizeof impls / sizeof impls[0]; ii++) {
                if (!bp_qkern_available(impls[ii]))
                    continue;
                bp_qkern_set_impl(impls[ii]);
                memset(o, 0x5A, nout);
                cr_assert_eq(bp_qconv(&p, in, panel, bias, qm, o, scratch), BP_OK);
                size_t bad = 0;
                for (size_t i = 0; i < nout; i++)
                    bad += o[i] != o_ref[i];
                cr_assert_eq(bad, 0, "shape %zu (%d>%d k%d s%d g%d %dx%d) %s input, %s: %zu mismatches", si,
                             p.cin, p.cout, p.kh, p.stride_h, p.group, p.h, p.w, s8 ? "int8" : "uint8",
                             bp_qkern_name(impls[ii]), bad);
            }
            bp_qkern_set_impl(BP_QKERN_AUTO);
            operands_free(&op), free(scratch), free(o_ref), free(o);
        }
}

/* One AMX prep run at batch n against the reference kernel's bp_qconv of
 * the same params; returns the mismatching bytes. */
static size_t prep_vs_ref(const bp_qconv_prep *pp, bp_qconv_params p, int n, const uint8_t *in,
                          const uint8_t *panel, const int32_t *bias, const bp_qmul *qm)
{
    p.n = n;
    int oh, ow;
    bp_qconv_out_hw(&p, &oh, &ow);
    size_t osz = (size_t)n * p.cout * oh * ow * bp_qtype_size(p.out_type);
    void *scratch = aligned_alloc(64, (bp_qconv_buffer_size(&p) + 63) / 64 * 64);
    uint8_t *o_ref = malloc(osz), *o = malloc(osz);
    bp_qkern_set_impl(BP_QKERN_REF);
    cr_assert_eq(bp_qconv(&p, in, panel, bias, qm, o_ref, scratch), BP_OK);
    bp_qkern_set_impl(BP_QKERN_AUTO);
    memset(o, 0x5A, osz);
    cr_assert_eq(bp_qconv_run(pp, n, in, bias, qm, o, scratch), BP_OK, "%s", bp_last_error());
    size_t bad = 0;
    for (size_t i = 0; i < osz; i++)
        bad += o[i] != o_ref[i];
    free(scratch), free(o_ref), free(o);
    return bad;
}

/* One conv on the AMX kernel against the reference kernel (itself checked
 * against the naive loop above); returns the mismatches. */
static size_t amx_vs_ref(const bp_qconv_params *p, const uint8_t *in, const uint8_t *panel, const int32_t *bias,
                         const bp_qmul *qm)
{
    int oh, ow;
    bp_qconv_out_hw(p, &oh, &ow);
    size_t osz = (size_t)p->n * p->cout * oh * ow * bp_qtype_size(p->out_type);
    void *scratch = aligned_alloc(64, (bp_qconv_buffer_size(p) + 63) / 64 * 64);
    uint8_t *o_ref = malloc(osz), *o = malloc(osz);
    bp_qkern_set_impl(BP_QKERN_REF);
    cr_assert_eq(bp_qconv(p, in, panel, bias, qm, o_ref, scratch), BP_OK);
    bp_qkern_set_impl(BP_QKERN_AMX);
    memset(o, 0x5A, osz);
    cr_assert_eq(bp_qconv(p, in, panel, bias, qm, o, scratch), BP_OK, "%s", bp_last_error());
    size_t bad = 0;
    for (size_t i = 0; i < osz; i++)
        bad += o[i] != o_ref[i];
    /* and prepared once, run twice */
    bp_qconv_prep *pp = NULL;
    cr_assert_eq(bp_qconv_prepare(p, panel, &pp), BP_OK, "%s", bp_last_error());
    bp_qkern_set_impl(BP_QKERN_AUTO);
    cr_assert_eq(bp_qconv_prep_impl(pp), BP_QKERN_AMX);
    for (int rep = 0; rep < 2; rep++)
        bad += prep_vs_ref(pp, *p, p->n, in, panel, bias, qm);
    bp_qconv_prep_free(pp);
    free(scratch), free(o_ref), free(o);
    return bad;
}

Test(qkernels, amx_layouts_exact)
{
    /* Shapes that reach each way the AMX kernel lays out taps (replicas of
     * every tap, of kx only, none: 1x1, kh x 1 and 64+ channels on planes
     * whose rows are not 16-aligned), several passes over the
     * images, images batched into one pass with and without 16-pixel
     * alignment, K chunks, odd row blocks, large strides and dilations,
     * every output type. */
    if (!bp_qkern_available(BP_QKERN_AMX))
        cr_skip_test("the CPU or OS has no AMX: nothing to compare");
    const int sh[][16] = {
        /* cin cout h  w  kh kw sh sw pt pl pb pr dh dw g  n */
        {64, 40, 30, 30, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 3},  /* kx replicas, one image per pass */
        {32, 20, 29, 30, 3, 1, 1, 1, 1, 0, 1, 0, 1, 1, 1, 2},  /* kh x 1, no replicas */
        {40, 70, 7, 7, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 5},    /* 1x1, images batched, unaligned */
        {20, 33, 8, 8, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 3},    /* 1x1 straight from the input */
        {24, 17, 20, 23, 3, 3, 3, 1, 2, 1, 0, 2, 1, 2, 1, 2},  /* stride 3, dilation in w */
        {12, 33, 17, 19, 2, 5, 2, 1, 1, 2, 1, 2, 1, 3, 1, 1},  /* 2x5 taps */
        {3, 8, 15, 16, 7, 7, 2, 2, 3, 3, 3, 3, 1, 1, 1, 2},    /* 49 tap replicas, 4 K chunks */
        {128, 130, 4, 4, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 2},  /* 9 row blocks */
        {16, 16, 17, 17, 1, 1, 4, 4, 0, 0, 0, 0, 1, 1, 1, 2},  /* stride 4 */
        {6, 9, 11, 13, 3, 3, 2, 3, 1, 1, 1, 1, 2, 1, 3, 2},    /* groups */
        {256, 16, 9, 9, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1},   /* long K, 16 channels, split rows */
        {64, 64, 7, 7, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 3},    /* split tile rows, 2x2 blocks */
        {16, 32, 28, 28, 1, 1, 2, 2, 0, 0, 0, 0, 1, 1, 1, 3},  /* stride 2 gathered from the input */
        {8, 24, 28, 28, 2, 2, 2, 2, 0, 0, 0, 0, 1, 1, 1, 2},   /* the same with four phases */
        {12, 20, 27, 28, 3, 3, 2, 2, 0, 0, 0, 0, 1, 1, 1, 2},  /* unpadded, phases past the image */
    };
    for (size_t si = 0; si < sizeof sh / sizeof sh[0]; si++)
        for (int v = 0; v < 4; v++) {
            /* v: uint8 out clamped to [0, 255] (ReLU, the packed stores), to
             * [0, 100] with 3-bit weights and power-of-two scales, int8 in
             * and out, int32 out */
            const int *q = sh[si];
            bp_qconv_params p = {.n = q[15], .cin = q[0], .h = q[2], .w = q[3], .cout = q[1], .kh = q[4],
                                 .kw = q[5], .stride_h = q[6], .stride_w = q[7], .pad_t = q[8], .pad_l = q[9],
                                 .pad_b = q[10], .pad_r = q[11], .dil_h = q[12], .dil_w = q[13], .group = q[14],
                                 .wbits = v == 1 ? 3 : 8, .in_type = v == 2 ? BP_QT_S8 : BP_QT_U8,
                                 .out_type = v <= 1 ? BP_QT_U8 : v == 2 ? BP_QT_S8 : BP_QT_S32};
            out_range(p.out_type, &p.out_min, &p.out_max);
            if (v <= 1)
                p.out_max = v == 0 ? 255 : 100;
            cr_assert_eq(bp_qconv_check(&p), BP_OK, "%s", bp_last_error());
            operands op = random_operands(&p, v == 1);
            size_t bad = amx_vs_ref(&p, op.in, op.panel, v == 3 ? NULL : op.bias, op.qm);
            cr_assert_eq(bad, 0, "shape %zu variant %d: %zu mismatching bytes", si, v, bad);
            operands_free(&op);
        }
}

Test(qkernels, amx_preps_exact_across_runs_and_batches)
{
    /* Preps hold the weights in tile layout and the geometry tables: each
     * must give the reference result on every run and at every batch size,
     * and preps of different panels (and of one panel seen as two shapes)
     * live side by side. Then strided convs on inputs of three sizes, one
     * prep each, interleaved. */
    if (!bp_qkern_available(BP_QKERN_AMX))
        cr_skip_test("the CPU or OS has no AMX");
    bp_qconv_params p = {.n = 1, .cin = 16, .h = 9, .w = 9, .cout = 32, .kh = 3, .kw = 3, .stride_h = 1,
                         .stride_w = 1, .pad_t = 1, .pad_l = 1, .pad_b = 1, .pad_r = 1, .dil_h = 1, .dil_w = 1,
                         .group = 1, .wbits = 8, .in_type = BP_QT_U8, .out_type = BP_QT_S32,
                         .out_min = INT32_MIN, .out_max = INT32_MAX};
    const int k = 16 * 9;
    static uint8_t in[4 * 144 * 81]; /* 4 images, enough for the 144-channel view */
    for (size_t i = 0; i < sizeof in; i++)
        in[i] = (uint8_t)xr();
    bp_qmul qm[32];
    for (int c = 0; c < 32; c++)
        qm[c] = (bp_qmul){0, 0};
    int8_t w[32 * 16 * 9];
    const size_t pbytes = bp_qweights_size(1, 32, k, 8);
    uint8_t *panel[3];
    bp_qconv_params pv[3];
    bp_qconv_prep *pp[3];
    bp_qkern_set_impl(BP_QKERN_AMX);
    for (int j = 0; j < 3; j++) {
        for (size_t i = 0; i < sizeof w; i++)
            w[i] = (int8_t)rnd(-128, 127);
        panel[j] = malloc(pbytes);
        cr_assert_eq(bp_qweights_pack(w, 1, 32, k, 8, panel[j]), BP_OK);
        pv[j] = p;
        if (j == 2) { /* the same bytes seen as 144 channels of 1x1 */
            pv[j].cin = 144, pv[j].kh = pv[j].kw = 1, pv[j].pad_t = pv[j].pad_l = pv[j].pad_b = pv[j].pad_r = 0;
        }
        cr_assert_eq(bp_qconv_prepare(&pv[j], panel[j], &pp[j]), BP_OK, "%s", bp_last_error());
    }
    bp_qkern_set_impl(BP_QKERN_AUTO);
    const int batch[] = {1, 3, 4, 1, 2};
    for (int r = 0; r < 5; r++)
        for (int j = 0; j < 3; j++)
            cr_assert_eq(prep_vs_ref(pp[j], pv[j], batch[r], in, panel[j], NULL, qm), 0, "prep %d, run %d at batch %d", j,
                         r, batch[r]);
    for (int j = 0; j < 3; j++)
        bp_qconv_prep_free(pp[j]);
    /* one panel, strided convs on inputs of three sizes, each prepared */
    p.stride_h = p.stride_w = 2;
    const int hw[][2] = {{9, 9}, {8, 5}, {6, 7}};
    bp_qkern_set_impl(BP_QKERN_AMX);
    for (int i = 0; i < 3; i++) {
        pv[i] = p;
        pv[i].h = hw[i][0], pv[i].w = hw[i][1];
        cr_assert_eq(bp_qconv_prepare(&pv[i], panel[0], &pp[i]), BP_OK, "%s", bp_last_error());
    }
    bp_qkern_set_impl(BP_QKERN_AUTO);
    for (int r = 0; r < 3; r++)
        for (int i = 0; i < 3; i++)
            cr_assert_eq(prep_vs_ref(pp[i], pv[i], batch[r], in, panel[0], NULL, qm), 0, "strided %dx%d batch %d",
                         pv[i].h, pv[i].w, batch[r]);
    for (int i = 0; i < 3; i++)
        bp_qconv_prep_free(pp[i]), free(panel[i]);
}

Test(qkernels, prepare_rejects_bad_params)
{
    bp_qconv_params p = {.n = 1, .cin = 6, .h = 5, .w = 5, .cout = 4, .kh = 3, .kw = 3, .stride_h = 1,
                         .stride_w = 1, .dil_h = 1, .dil_w = 1, .group = 4, .wbits = 8, .in_type = BP_QT_U8,
                         .out_type = BP_QT_U8, .out_min = 0, .out_max = 255};
    uint8_t panel[64] = {0};
    bp_qconv_prep *pp = (bp_qconv_prep *)panel; /* must be overwritten with NULL */
    cr_assert_eq(bp_qconv_prepare(&p, panel, &pp), BP_ERR_ARG); /* group 4 does not divide cin 6 */
    cr_assert_null(pp);
    bp_qconv_prep_free(NULL);
}
