/* kern_avx2.c — AVX2 and VNNI int conv/GEMM kernels. The uint8 × int8
 * vpdpbusd convs (AVX-VNNI ymm, AVX-512 VNNI zmm) are in the second half of
 * the file ("u8 x s8 kernel with vpdpbusd"); the depthwise kernel serves all.
 *
 * AVX2 scheme: activations are widened to int16 and laid out in k pairs (im2col
 * into scratch), weights come from the panel (int8 sign-extended, or int4
 * nibbles sign-extended with two shifts, in registers). One vpmaddwd forms
 * w[c][2j]·a[2j] + w[c][2j+1]·a[2j+1] in each int32 lane exactly — unlike
 * vpmaddubsw, whose int16 pair sum saturates for uint8·int8 (255·127·2 >
 * 32767) — and vpaddd accumulates. A micro-tile is 16 output channels (two
 * ymm) by 6 pixels (broadcast pairs): 12 accumulators.
 *
 * Requantization is vectorized across the 16 channels of a tile (per-lane
 * multipliers and shifts; 64-bit products by vpmuldq on even and odd lanes),
 * bit-exact with bp_requant. Tiles whose multipliers need a left shift or are
 * the zero multiplier take the scalar bp_requant.
 *
 * Every function carries target("avx2") (the VNNI tiles target("avx2,avxvnni"))
 * so the file builds with the project's common flags; qkernels.c calls in only
 * when the CPU has the features. Integer-only. */
#include <immintrin.h>
#include <string.h>

#include "quant/kern_internal.h"

#define AVX2 __attribute__((target("avx2")))
#define NR BP_QK_NR

/* Panel of activations for a block of np pixels (padded to npad, a multiple
 * of NR): A[kp][p] int32 pairs (low int16 = even k, high = odd k), zero
 * beyond np and beyond k. Built one k row at a time into int16 rows, then two
 * rows are interleaved into pairs with unpack instructions. */

/* Row kk of the im2col matrix for pixels p0 .. p0+np-1 into t (int16), zero
 * up to npad. Runs along output rows; no divisions inside the loop. Stores may
 * run up to 16 values past a run (rows have that much slack, and what lies
 * past a run is written again afterwards). */
AVX2 static void conv_row(const bp_qconv_params *p, int ow, const void *in, size_t in_total,
                          size_t in_off, int kk, int p0, int np, int npad, int16_t *t)
{
    const int khw = p->kh * p->kw;
    const int ci = kk / khw, ky = (kk / p->kw) % p->kh, kx = kk % p->kw;
    const size_t cbase = in_off + (size_t)ci * p->h * p->w;
    const int u8 = p->in_type == BP_QT_U8, sw = p->stride_w;
    const int off = kx * p->dil_w - p->pad_l, ybase = ky * p->dil_h - p->pad_t;
    /* output columns whose input column (ox·sw + off) lies in [0, w) */
    int oxa = off >= 0 ? 0 : (-off + sw - 1) / sw;
    int oxb = p->w - off > 0 ? (p->w - off + sw - 1) / sw : 0;
    oxa = oxa > ow ? ow : oxa;
    oxb = oxb > ow ? ow : oxb < oxa ? oxa : oxb;
    const __m256i zero = _mm256_setzero_si256();
    if (p->kh == 1 && p->kw == 1 && p->stride_h == 1 && sw == 1 && !p->pad_t && !p->pad_l &&
        !p->pad_b && !p->pad_r) {
        /* 1x1, stride 1, no padding: the row is a contiguous slice of channel ci */
        const uint8_t *src = (const uint8_t *)in + cbase + p0;
        const ptrdiff_t safe = (ptrdiff_t)in_total - 16 - (ptrdiff_t)(cbase + p0);
        int k = 0;
        for (; k < np && k <= safe; k += 16)
            _mm256_storeu_si256((__m256i *)(t + k),
                                u8 ? _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(src + k)))
                                   : _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(src + k))));
        for (; k < np; k++)
            t[k] = u8 ? src[k] : (int8_t)src[k];
        for (k = np; k < npad; k++)
            t[k] = 0;
        return;
    }
    if (p->stride_h == 1 && sw == 1 && p->dil_h == 1 && p->dil_w == 1 && ow == p->w) {
        /* Stride 1 with 'same' width: the row is the input plane shifted by
         * (ky − pad_t)·w + (kx − pad_l), one long copy, then the columns that
         * wrapped around a row edge and the rows outside the image are zeroed. */
        const int w = p->w;
        const ptrdiff_t shift = (ptrdiff_t)(ky - p->pad_t) * w + (kx - p->pad_l);
        /* output pixels whose input row is inside the image */
        long va = (long)(p->pad_t - ky) * w, vb = (long)(p->h + p->pad_t - ky) * w;
        va = va < 0 ? 0 : va;
        long a = va > p0 ? va - p0 : 0, b = vb - p0 < np ? vb - p0 : np;
        if (b < a)
            b = a;
        for (long k = 0; k < a; k++)
            t[k] = 0;
        const uint8_t *src = (const uint8_t *)in + cbase + shift + p0;
        long k = a;
        for (; k < b && (ptrdiff_t)cbase + shift + p0 + k < 0; k++) /* before the buffer: a wrapped column */
            t[k] = 0;
        const ptrdiff_t safe = (ptrdiff_t)in_total - 16 - ((ptrdiff_t)cbase + shift + p0);
        for (; k < b && k <= safe; k += 16)
            _mm256_storeu_si256((__m256i *)(t + k),
                                u8 ? _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(src + k)))
                                   : _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(src + k))));
        /* past the buffer's end only wrapped columns remain (zeroed below):
         * never read them */
        for (; k < b && (ptrdiff_t)cbase + shift + p0 + k < (ptrdiff_t)in_total; k++)
            t[k] = u8 ? src[k] : (int8_t)src[k];
        for (; k < b; k++)
            t[k] = 0;
        for (k = b; k < npad; k++)
            t[k] = 0;
        /* columns whose input column left the row: ox + kx − pad_l outside [0, w) */
        const int dx = kx - p->pad_l;
        if (dx != 0) {
            const int c0 = dx < 0 ? 0 : w - dx, c1 = dx < 0 ? -dx : w; /* zero ox in [c0, c1) */
            long first_row = (p0 + a) / w;
            for (long r = first_row; (long)r * w < p0 + b; r++)
                for (int c = c0; c < c1; c++) {
                    long qq = r * w + c - p0;
                    if (qq >= a && qq < b)
                        t[qq] = 0;
                }
        }
        return;
    }
    int q = 0, oy = p0 / ow, ox0 = p0 % ow;
    while (q < np) {
        const int run = ow - ox0 < np - q ? ow - ox0 : np - q;
        const int iy = oy * p->stride_h + ybase;
        int16_t *d = t + q;
        if (iy < 0 || iy >= p->h) {
            for (int k = 0; k < run; k += 16)
                _mm256_storeu_si256((__m256i *)(d + k), zero);
        } else {
            int j0 = oxa - ox0, j1 = oxb - ox0;
            j0 = j0 < 0 ? 0 : j0 > run ? run : j0;
            j1 = j1 > run ? run : j1 < j0 ? j0 : j1;
            for (int k = 0; k < j0; k++)
                d[k] = 0;
            const ptrdiff_t first = (ptrdiff_t)(cbase + (size_t)iy * p->w) + (ptrdiff_t)(ox0 + j0) * sw + off;
            int k = j0;
            if (sw == 1) {
                /* 16 at a time while the 16-byte load stays inside the input */
                const uint8_t *src = (const uint8_t *)in + first;
                const ptrdiff_t safe = (ptrdiff_t)in_total - 16 - first;
                if (u8)
                    for (; k < j1 && (ptrdiff_t)(k - j0) <= safe; k += 16, src += 16)
                        _mm256_storeu_si256((__m256i *)(d + k),
                                            _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)src)));
                else
                    for (; k < j1 && (ptrdiff_t)(k - j0) <= safe; k += 16, src += 16)
                        _mm256_storeu_si256((__m256i *)(d + k),
                                            _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)src)));
                if (u8)
                    for (; k < j1; k++, src++)
                        d[k] = *src;
                else
                    for (; k < j1; k++, src++)
                        d[k] = *(const int8_t *)src;
            } else if (u8) {
                const uint8_t *src = (const uint8_t *)in + first;
                for (; k < j1; k++, src += sw)
                    d[k] = *src;
            } else {
                const int8_t *src = (const int8_t *)in + first;
                for (; k < j1; k++, src += sw)
                    d[k] = *src;
            }
            for (k = j1; k < run; k++)
                d[k] = 0;
        }
        q += run;
        ox0 = 0;
        oy++;
    }
    for (; q < npad; q++)
        t[q] = 0;
}

/* A[p] = (t0[p], t1[p]) for p < npad (npad a multiple of NR; rows hold
 * npad16 >= npad elements, the multiple of 16 above). */
AVX2 static void interleave(const int16_t *t0, const int16_t *t1, int npad, int32_t *A)
{
    int p = 0;
    for (; p + 16 <= npad; p += 16) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(t0 + p));
        __m256i b = _mm256_loadu_si256((const __m256i *)(t1 + p));
        __m256i lo = _mm256_unpacklo_epi16(a, b), hi = _mm256_unpackhi_epi16(a, b);
        _mm256_storeu_si256((__m256i *)(A + p), _mm256_permute2x128_si256(lo, hi, 0x20));
        _mm256_storeu_si256((__m256i *)(A + p + 8), _mm256_permute2x128_si256(lo, hi, 0x31));
    }
    for (; p < npad; p++)
        A[p] = (int32_t)(uint16_t)t0[p] | (int32_t)((uint32_t)(uint16_t)t1[p] << 16);
}

/* Rows need room for npad values rounded up to 16 (the interleave reads whole
 * vectors) plus 16 (the row copy may write one vector past a run). */
static int row_len(int pb) { return (pb + 15) / 16 * 16 + 16; }

AVX2 static void im2col_conv(const bp_qconv_params *p, int ow, const void *in, size_t in_off,
                             int p0, int np, int k, int32_t *A, int16_t *t0, int16_t *t1)
{
    const size_t in_total = (size_t)p->n * p->cin * p->h * p->w;
    const int kp_n = bp_qk_kpairs(k), npad = (np + NR - 1) / NR * NR;
    for (int kp = 0; kp < kp_n; kp++) {
        conv_row(p, ow, in, in_total, in_off, 2 * kp, p0, np, npad, t0);
        if (2 * kp + 1 < k)
            conv_row(p, ow, in, in_total, in_off, 2 * kp + 1, p0, np, npad, t1);
        else
            memset(t1, 0, sizeof(int16_t) * npad);
        interleave(t0, t1, npad, A + (size_t)kp * npad);
    }
}

AVX2 static void im2col_gemm(const void *in, bp_qtype t, int k, int p0, int np, int32_t *A)
{
    const int kp_n = bp_qk_kpairs(k), npad = (np + NR - 1) / NR * NR;
    for (int q = 0; q < npad; q++) {
        const size_t row = (size_t)(p0 + q) * k;
        for (int kp = 0; kp < kp_n; kp++) {
            int32_t lo = 0, hi = 0;
            if (q < np) {
                if (t == BP_QT_U8) {
                    lo = ((const uint8_t *)in)[row + 2 * kp];
                    hi = 2 * kp + 1 < k ? ((const uint8_t *)in)[row + 2 * kp + 1] : 0;
                } else {
                    lo = ((const int8_t *)in)[row + 2 * kp];
                    hi = 2 * kp + 1 < k ? ((const int8_t *)in)[row + 2 * kp + 1] : 0;
                }
            }
            A[(size_t)kp * npad + q] = (int32_t)(uint16_t)lo | (int32_t)((uint32_t)(uint16_t)hi << 16);
        }
    }
}

/* Requantizes 8 lanes: bit-exact bp_requant for mult != 0 and shift <= 0,
 * and for shift-only lanes (mult == 0, -31 <= shift <= 0) where zmask is set. */
AVX2 static inline __m256i vrequant(__m256i x, __m256i m, __m256i right, __m256i zmask)
{
    const __m256i nudge = _mm256_set1_epi64x((int64_t)1 << 30);
    __m256i pe = _mm256_add_epi64(_mm256_mul_epi32(x, m), nudge);
    __m256i po = _mm256_add_epi64(
        _mm256_mul_epi32(_mm256_srli_epi64(x, 32), _mm256_srli_epi64(m, 32)), nudge);
    /* bits 31..62 of each 64-bit sum: the floor shift's low 32 bits */
    __m256i re = _mm256_srli_epi64(pe, 31);
    __m256i ro = _mm256_slli_epi64(po, 1);
    __m256i y = _mm256_blend_epi32(re, ro, 0xAA);
    y = _mm256_blendv_epi8(y, x, zmask);
    /* RoundingDivideByPOT with per-lane exponents */
    const __m256i one = _mm256_set1_epi32(1);
    __m256i mask = _mm256_sub_epi32(_mm256_sllv_epi32(one, right), one);
    __m256i rem = _mm256_and_si256(y, mask);
    __m256i thr = _mm256_add_epi32(_mm256_srli_epi32(mask, 1),
                                   _mm256_and_si256(_mm256_cmpgt_epi32(_mm256_setzero_si256(), y), one));
    __m256i up = _mm256_and_si256(_mm256_cmpgt_epi32(rem, thr), one);
    return _mm256_add_epi32(_mm256_srav_epi32(y, right), up);
}

typedef struct {
    const int32_t *bias; /* (M) or NULL */
    const bp_qmul *qm;   /* (M) */
    void *out;
    size_t out_base;     /* element index of (row 0, pixel 0) */
    size_t rs, ps;       /* element strides of a row (channel) and a pixel */
    bp_qtype type;
    int32_t lo, hi;
} tile_out;

/* One group: out rows [0, M) by pixels [p0, p0 + np) from the activation
 * panel A of that pixel block and the group's weight panel gp. */
#define DEFINE_TILES(NAME, TARGET, MAC) \
TARGET static void NAME(const int32_t *A, int np, int p0, int k, const uint8_t *gp, int M,           \
                       int wbits, const tile_out *o)                                                 \
{                                                                                                    \
    const int kp_n = bp_qk_kpairs(k), cell = bp_qk_cell(wbits), nsb = (np + NR - 1) / NR;            \
    const int npad = nsb * NR;                                                                       \
    const int32_t lo = o->lo, hi = o->hi;                                                             \
    const size_t obase = o->out_base, rs = o->rs, ps = o->ps;                                         \
    const bp_qtype type = o->type;                                                                    \
    void *const out = o->out;                                                                         \
    const __m256i vlo = _mm256_set1_epi32(o->lo), vhi = _mm256_set1_epi32(o->hi);                    \
    for (int rb = 0; rb < bp_qk_rblocks(M); rb++) {                                                  \
        const int r0 = rb * BP_QK_MR, nr = M - r0 < BP_QK_MR ? M - r0 : BP_QK_MR;                    \
        int32_t bb[16] = {0}, mm[16] = {0}, rr[16] = {0}, zz[16] = {0};                              \
        int vec_ok = 1;                                                                              \
        for (int c = 0; c < nr; c++) {                                                               \
            bp_qmul q = o->qm[r0 + c];                                                               \
            bb[c] = o->bias ? o->bias[r0 + c] : 0;                                                   \
            mm[c] = q.mult;                                                                          \
            rr[c] = -q.shift;                                                                        \
            zz[c] = q.mult == 0 ? -1 : 0;                                                            \
            if (q.shift > 0 || q.shift < -31)                                                        \
                vec_ok = 0;                                                                          \
        }                                                                                            \
        const __m256i b0 = _mm256_loadu_si256((const __m256i *)bb),                                  \
                      b1 = _mm256_loadu_si256((const __m256i *)(bb + 8));                            \
        const __m256i m0 = _mm256_loadu_si256((const __m256i *)mm),                                  \
                      m1 = _mm256_loadu_si256((const __m256i *)(mm + 8));                            \
        const __m256i s0 = _mm256_loadu_si256((const __m256i *)rr),                                  \
                      s1 = _mm256_loadu_si256((const __m256i *)(rr + 8));                            \
        const __m256i z0 = _mm256_loadu_si256((const __m256i *)zz),                                  \
                      z1 = _mm256_loadu_si256((const __m256i *)(zz + 8));                            \
        const uint8_t *wrb = gp + (size_t)rb * kp_n * cell;                                          \
        for (int sb = 0; sb < nsb; sb++) {                                                           \
            const int32_t *a = A + (size_t)sb * NR;                                                  \
            const uint8_t *w = wrb;                                                                  \
            __m256i c00 = _mm256_setzero_si256(), c01 = c00, c10 = c00, c11 = c00, c20 = c00,        \
                    c21 = c00, c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;     \
            for (int kp = 0; kp < kp_n; kp++, a += npad, w += cell) {                                \
                __m256i w0, w1;                                                                      \
                if (cell == 32) {                                                                    \
                    w0 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)w));                  \
                    w1 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(w + 16)));           \
                } else {                                                                             \
                    __m256i x = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)w));           \
                    w0 = _mm256_srai_epi16(_mm256_slli_epi16(x, 12), 12);                            \
                    w1 = _mm256_srai_epi16(_mm256_slli_epi16(x, 8), 12);                             \
                }                                                                                    \
                __m256i av;                                                                          \
                av = _mm256_set1_epi32(a[0]); c00 = MAC(c00, w0, av); c01 = MAC(c01, w1, av);        \
                av = _mm256_set1_epi32(a[1]); c10 = MAC(c10, w0, av); c11 = MAC(c11, w1, av);        \
                av = _mm256_set1_epi32(a[2]); c20 = MAC(c20, w0, av); c21 = MAC(c21, w1, av);        \
                av = _mm256_set1_epi32(a[3]); c30 = MAC(c30, w0, av); c31 = MAC(c31, w1, av);        \
                av = _mm256_set1_epi32(a[4]); c40 = MAC(c40, w0, av); c41 = MAC(c41, w1, av);        \
                av = _mm256_set1_epi32(a[5]); c50 = MAC(c50, w0, av); c51 = MAC(c51, w1, av);        \
            }                                                                                        \
            __m256i acc[NR][2] = {{c00, c01}, {c10, c11}, {c20, c21},                                \
                                  {c30, c31}, {c40, c41}, {c50, c51}};                               \
            for (int j = 0; j < NR; j++) {                                                           \
                const int q = sb * NR + j;                                                           \
                if (q >= np)                                                                         \
                    break;                                                                           \
                int32_t res[16];                                                                     \
                __m256i x0 = _mm256_add_epi32(acc[j][0], b0), x1 = _mm256_add_epi32(acc[j][1], b1);  \
                if (vec_ok) {                                                                        \
                    x0 = _mm256_min_epi32(_mm256_max_epi32(vrequant(x0, m0, s0, z0), vlo), vhi);     \
                    x1 = _mm256_min_epi32(_mm256_max_epi32(vrequant(x1, m1, s1, z1), vlo), vhi);     \
                    _mm256_storeu_si256((__m256i *)res, x0);                                         \
                    _mm256_storeu_si256((__m256i *)(res + 8), x1);                                   \
                } else {                                                                             \
                    _mm256_storeu_si256((__m256i *)res, x0);                                         \
                    _mm256_storeu_si256((__m256i *)(res + 8), x1);                                   \
                    for (int c = 0; c < nr; c++) {                                                   \
                        int32_t v = bp_requant(res[c], o->qm[r0 + c]);                               \
                        res[c] = v < lo ? lo : v > hi ? hi : v;                                      \
                    }                                                                                \
                }                                                                                    \
                /* values are clamped: plain stores, pointers and strides in registers */            \
                const size_t base = obase + (size_t)(p0 + q) * ps + (size_t)r0 * rs;                 \
                if (type == BP_QT_U8) {                                                              \
                    uint8_t *dst = (uint8_t *)out + base;                                            \
                    for (int c = 0; c < nr; c++)                                                     \
                        dst[(size_t)c * rs] = (uint8_t)res[c];                                       \
                } else if (type == BP_QT_S8) {                                                       \
                    int8_t *dst = (int8_t *)out + base;                                              \
                    for (int c = 0; c < nr; c++)                                                     \
                        dst[(size_t)c * rs] = (int8_t)res[c];                                        \
                } else {                                                                             \
                    int32_t *dst = (int32_t *)out + base;                                            \
                    for (int c = 0; c < nr; c++)                                                     \
                        dst[(size_t)c * rs] = res[c];                                                \
                }                                                                                    \
            }                                                                                        \
        }                                                                                            \
    }                                                                                                \
}                                                                                                    \

#define MAC_AVX2(acc, w, a) _mm256_add_epi32(acc, _mm256_madd_epi16(w, a))
#define MAC_VNNI(acc, w, a) _mm256_dpwssd_avx_epi32(acc, w, a)
DEFINE_TILES(tiles_avx2, AVX2, MAC_AVX2)
/* AVX-VNNI: vpdpwssd fuses the pair multiply-add with the accumulation (same
 * int16 pairs, same exact int32 result, one instruction instead of two). */
DEFINE_TILES(tiles_vnni, __attribute__((target("avx2,avxvnni"))), MAC_VNNI)

/* Depthwise convolution (one input and one output channel per group): the
 * GEMM path would use one row of each 16-row block, so it gets a direct loop
 * instead. For each output row the kh input rows are copied, zero-padded, into
 * int32 rows in scratch; then 8 output pixels per vector (stride 1) take one
 * unaligned load and one vpmulld per tap (|a·w| <= 255·128 fits easily), other
 * strides a scalar loop over the padded rows. Requantization is vectorized
 * with the channel's pair broadcast. */
static int dw_row_len(const bp_qconv_params *p) { return p->w + p->pad_l + p->pad_r + 16 + (p->kw - 1) * p->dil_w; }

AVX2 static void dw_conv(const bp_qconv_params *p, int oh, int ow, const void *in,
                         const uint8_t *wpanel, const int32_t *bias, const bp_qmul *qm, void *out,
                         int32_t *rows)
{
    const int K = p->kh * p->kw, u8 = p->in_type == BP_QT_U8, rl = dw_row_len(p), sw = p->stride_w;
    const size_t gbytes = bp_qk_group_bytes(1, K, p->wbits), plane = (size_t)p->h * p->w,
                 oplane = (size_t)oh * ow;
    const int cell = bp_qk_cell(p->wbits);
    int32_t wv[64];
    __m256i wb[64];
    const __m256i vlo = _mm256_set1_epi32(p->out_min), vhi = _mm256_set1_epi32(p->out_max);
    memset(rows, 0, sizeof(int32_t) * (size_t)rl * bp_qk_dw_rows(p) * sw);
    size_t toff[64] = {0}; /* padded column kx·dil_w: phase row and position */
    for (int kx = 0; kx < p->kw && kx < 64; kx++)
        toff[kx] = (size_t)(kx * p->dil_w % sw) * rl + (size_t)(kx * p->dil_w / sw);
    const int k33 = p->kh == 3 && p->kw == 3;
    const size_t t0 = toff[0], t1 = toff[1], t2 = toff[2];
    const size_t in_total = (size_t)p->n * p->cin * plane;
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (int n = 0; n < p->n; n++)
        for (int c = 0; c < p->cout; c++) {
            const uint8_t *gp = wpanel + (size_t)c * gbytes;
            /* row 0 of the panel: value t of k pair j is byte t of cell j (5..8 bits)
             * or the low nibble of byte t (2..4 bits) */
            for (int k = 0; k < K; k++) {
                const uint8_t v = gp[(size_t)(k / 2) * cell + k % 2];
                wv[k] = p->wbits > 4 ? (int8_t)v : (int8_t)(uint8_t)(v << 4) >> 4;
                wb[k] = _mm256_set1_epi32(wv[k]);
            }
            for (int k = K; k < 9; k++)
                wb[k] = _mm256_setzero_si256();
            const __m256i w0 = wb[0], w1 = wb[1], w2 = wb[2], w3 = wb[3], w4 = wb[4], w5 = wb[5], w6 = wb[6],
                          w7 = wb[7], w8 = wb[8];
            const bp_qmul q = qm[c];
            const int vec_ok = q.shift <= 0 && q.shift >= -31;
            const __m256i vm = _mm256_set1_epi32(q.mult), vr = _mm256_set1_epi32(-q.shift),
                          vz = _mm256_set1_epi32(q.mult == 0 ? -1 : 0);
            const int32_t b = bias ? bias[c] : 0;
            const size_t ib = ((size_t)n * p->cin + c) * plane, ob = ((size_t)n * p->cout + c) * oplane;
            /* the zero-padded input plane, each row split into sw phases: padded
             * (Y, X) at rows[(Y·sw + X mod sw)·rl + X / sw]; padding stays zero */
            for (int iy = 0; iy < p->h; iy++) {
                int32_t *r = rows + (size_t)(iy + p->pad_t) * sw * rl;
                const size_t at = ib + (size_t)iy * p->w;
                if (sw == 1) {
                    r += p->pad_l;
                    int x = 0;
                    if (u8)
                        for (; x + 8 <= p->w; x += 8)
                            _mm256_storeu_si256((__m256i *)(r + x), _mm256_cvtepu8_epi32(_mm_loadl_epi64(
                                                    (const __m128i *)((const uint8_t *)in + at + x))));
                    else
                        for (; x + 8 <= p->w; x += 8)
                            _mm256_storeu_si256((__m256i *)(r + x), _mm256_cvtepi8_epi32(_mm_loadl_epi64(
                                                    (const __m128i *)((const uint8_t *)in + at + x))));
                    if (x < p->w && at + x + 8 <= in_total) {
                        /* the last < 8 values; lanes past w store the padding's zeros */
                        __m128i b8 = _mm_loadl_epi64((const __m128i *)((const uint8_t *)in + at + x));
                        __m256i v = u8 ? _mm256_cvtepu8_epi32(b8) : _mm256_cvtepi8_epi32(b8);
                        v = _mm256_and_si256(v, _mm256_cmpgt_epi32(_mm256_set1_epi32(p->w - x), lane));
                        _mm256_storeu_si256((__m256i *)(r + x), v);
                        x = p->w;
                    }
                    for (; x < p->w; x++)
                        r[x] = u8 ? ((const uint8_t *)in)[at + x] : ((const int8_t *)in)[at + x];
                } else {
                    int x = 0;
                    if (sw == 2) {
                        /* 16 input columns: even ones are one phase's 8 consecutive
                         * positions, odd ones the other's; lanes past w store zeros */
                        const __m128i sel = _mm_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
                        for (; x < p->w && at + x + 16 <= in_total; x += 16) {
                            __m128i v = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)((const uint8_t *)in + at + x)), sel);
                            __m256i ev = u8 ? _mm256_cvtepu8_epi32(v) : _mm256_cvtepi8_epi32(v);
                            __m128i hi = _mm_srli_si128(v, 8);
                            __m256i od = u8 ? _mm256_cvtepu8_epi32(hi) : _mm256_cvtepi8_epi32(hi);
                            const __m256i two = _mm256_slli_epi32(lane, 1);
                            ev = _mm256_and_si256(ev, _mm256_cmpgt_epi32(_mm256_set1_epi32(p->w - x), two));
                            od = _mm256_and_si256(od, _mm256_cmpgt_epi32(_mm256_set1_epi32(p->w - x - 1), two));
                            const int X = x + p->pad_l;
                            _mm256_storeu_si256((__m256i *)(r + (size_t)(X % 2) * rl + X / 2), ev);
                            _mm256_storeu_si256((__m256i *)(r + (size_t)((X + 1) % 2) * rl + (X + 1) / 2), od);
                        }
                        if (x > p->w)
                            x = p->w;
                    }
                    int ph = (x + p->pad_l) % sw, pos = (x + p->pad_l) / sw;
                    for (; x < p->w; x++) {
                        r[(size_t)ph * rl + pos] = u8 ? ((const uint8_t *)in)[at + x] : ((const int8_t *)in)[at + x];
                        if (++ph == sw)
                            ph = 0, pos++;
                    }
                }
            }
            for (int oy = 0; oy < oh; oy++) {
                int ox = 0;
                if (vec_ok)
                    for (; ox < ow; ox += 8) {
                        __m256i acc = _mm256_set1_epi32(b);
                        if (k33) {
                            const int32_t *r = rows + (size_t)(oy * p->stride_h) * sw * rl + ox;
                            const size_t dr = (size_t)p->dil_h * sw * rl;
#define DWTAP(R, T, W) \
    acc = _mm256_add_epi32(acc, _mm256_mullo_epi32(_mm256_loadu_si256((const __m256i *)((R) + (T))), W))
                            DWTAP(r, t0, w0); DWTAP(r, t1, w1); DWTAP(r, t2, w2);
                            r += dr;
                            DWTAP(r, t0, w3); DWTAP(r, t1, w4); DWTAP(r, t2, w5);
                            r += dr;
                            DWTAP(r, t0, w6); DWTAP(r, t1, w7); DWTAP(r, t2, w8);
#undef DWTAP
                        } else
                            for (int ky = 0; ky < p->kh; ky++) {
                                const int32_t *r = rows + (size_t)(oy * p->stride_h + ky * p->dil_h) * sw * rl + ox;
                                for (int kx = 0; kx < p->kw; kx++)
                                    acc = _mm256_add_epi32(
                                        acc, _mm256_mullo_epi32(_mm256_loadu_si256((const __m256i *)(r + toff[kx])),
                                                                wb[ky * p->kw + kx]));
                            }
                        acc = _mm256_min_epi32(_mm256_max_epi32(vrequant(acc, vm, vr, vz), vlo), vhi);
                        const int nj = ow - ox < 8 ? ow - ox : 8;
                        const size_t at = ob + (size_t)oy * ow + ox;
                        if (p->out_type == BP_QT_S32) {
                            int32_t res[8];
                            _mm256_storeu_si256((__m256i *)res, acc);
                            memcpy((int32_t *)out + at, res, sizeof(int32_t) * nj);
                        } else {
                            /* clamped to the type's range: the saturating packs are exact */
                            __m128i v16 = _mm_packs_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
                            __m128i v8 = p->out_type == BP_QT_U8 ? _mm_packus_epi16(v16, v16) : _mm_packs_epi16(v16, v16);
                            uint8_t *d = (uint8_t *)out + at;
                            if (nj == 8)
                                _mm_storel_epi64((__m128i *)d, v8);
                            else { /* fixed-size pieces: no library call */
                                uint64_t v = (uint64_t)_mm_cvtsi128_si64(v8);
                                if (nj & 4) {
                                    uint32_t v4 = (uint32_t)v;
                                    memcpy(d, &v4, 4);
                                    d += 4, v >>= 32;
                                }
                                if (nj & 2) {
                                    uint16_t v2 = (uint16_t)v;
                                    memcpy(d, &v2, 2);
                                    d += 2, v >>= 16;
                                }
                                if (nj & 1)
                                    *d = (uint8_t)v;
                            }
                        }
                    }
                for (; ox < ow; ox++) {
                    int32_t acc = b;
                    for (int ky = 0; ky < p->kh; ky++) {
                        const int32_t *r = rows + (size_t)(oy * p->stride_h + ky * p->dil_h) * sw * rl;
                        for (int kx = 0; kx < p->kw; kx++) {
                            const int X = ox * sw + kx * p->dil_w;
                            acc += r[(size_t)(X % sw) * rl + X / sw] * wv[ky * p->kw + kx];
                        }
                    }
                    bp_qk_store(out, ob + (size_t)oy * ow + ox, p->out_type, bp_requant(acc, q), p->out_min,
                                p->out_max);
                }
            }
        }
}

static int32_t *aligned_scratch(void *scratch)
{
    uintptr_t a = ((uintptr_t)scratch + 31) & ~(uintptr_t)31;
    return (int32_t *)a;
}

AVX2 void bp_qconv_avx2(const bp_qconv_params *p, const void *in, const uint8_t *wpanel,
                        const int32_t *bias, const bp_qmul *qm, void *out, void *scratch, int vnni)
{
    int oh, ow;
    bp_qconv_out_hw(p, &oh, &ow);
    const int cig = p->cin / p->group, cog = p->cout / p->group;
    const int k = cig * p->kh * p->kw, npix = oh * ow, pb = bp_qk_pixel_block(k);
    const size_t gbytes = bp_qk_group_bytes(cog, k, p->wbits);
    int32_t *A = aligned_scratch(scratch);
    int16_t *t0 = (int16_t *)(A + (size_t)pb * bp_qk_kpairs(k)), *t1 = t0 + row_len(pb);
    if (cig == 1 && cog == 1 && p->kh * p->kw <= 64) {
        dw_conv(p, oh, ow, in, wpanel, bias, qm, out, A);
        return;
    }
    for (int n = 0; n < p->n; n++)
        for (int g = 0; g < p->group; g++) {
            tile_out o = {bias ? bias + (size_t)g * cog : NULL,
                          qm + (size_t)g * cog,
                          out,
                          ((size_t)n * p->cout + (size_t)g * cog) * npix,
                          (size_t)npix,
                          1,
                          p->out_type,
                          p->out_min,
                          p->out_max};
            size_t in_off = ((size_t)n * p->cin + (size_t)g * cig) * p->h * p->w;
            for (int p0 = 0; p0 < npix; p0 += pb) {
                int np = npix - p0 < pb ? npix - p0 : pb;
                im2col_conv(p, ow, in, in_off, p0, np, k, A, t0, t1);
                (vnni ? tiles_vnni : tiles_avx2)(A, np, p0, k, wpanel + (size_t)g * gbytes, cog,
                                                 p->wbits, &o);
            }
        }
}

AVX2 void bp_qgemm_avx2(const bp_qgemm_params *p, const void *in, const uint8_t *wpanel,
                        const int32_t *bias, const bp_qmul *qm, void *out, void *scratch, int vnni)
{
    const int pb = bp_qk_pixel_block(p->k);
    int32_t *A = aligned_scratch(scratch);
    tile_out o = {bias, qm, out, 0, 1, (size_t)p->m, p->out_type, p->out_min, p->out_max};
    for (int p0 = 0; p0 < p->n; p0 += pb) {
        int np = p->n - p0 < pb ? p->n - p0 : pb;
        im2col_gemm(in, p->in_type, p->k, p0, np, A);
        (vnni ? tiles_vnni : tiles_avx2)(A, np, p0, p->k, wpanel, p->m, p->wbits, &o);
    }
}

/* ---- u8 x s8 kernel with vpdpbusd (AVX-VNNI) ------------------------------
 *
 * Activations as uint8: unsigned inputs as they are, signed ones plus 128
 * (x ^ 0x80), corrected by subtracting 128·Σ_k w[r][k] from the bias, so
 * Σ (a + 128)·w − 128·Σ w = Σ a·w. vpdpbusd multiplies 4 uint8 by 4 int8 and
 * adds the four products and the accumulator in int32 without saturation
 * (wrap-around), so the result is exact whenever the true sum fits in int32.
 *
 * Activation panel (per pixel block of npad pixels, npad a multiple of 16):
 *   Aq[kq][p][t] = a(pixel p, k = 4·kq + t), 4 bytes per (kq, pixel).
 * Weights are repacked per call from the public panel into scratch:
 *   Wq[rg][kq][i][t] = w[4·rg + i][4·kq + t], 16 bytes per (row group, kq).
 * Micro-tile: 4 output channels × 16 pixels (8 ymm accumulators); per k quad
 * two activation loads, four weight broadcasts and eight vpdpbusd. The output
 * stage (bias, requantization, clamp, pack to bytes) runs on the tile and
 * stores 16 contiguous pixels of a channel at once. */

#define VNNI __attribute__((target("avx2,avxvnni")))
#define QP 16 /* pixels per micro-tile */

static int qk_quads(int k) { return (k + 3) / 4; }

int bp_qk_quad_block(int k)
{
    int pb = 49152 / (qk_quads(k) * 4);
    pb -= pb % (2 * QP);
    if (pb < 2 * QP)
        pb = 2 * QP;
    if (pb > 32 * 2 * QP)
        pb = 32 * 2 * QP;
    return pb;
}

size_t bp_qk_vnni_scratch(const bp_qconv_params *p)
{
    const int cig = p->cin / p->group, m = p->cout / p->group, k = cig * p->kh * p->kw;
    size_t pb = (size_t)bp_qk_quad_block(k), kq = (size_t)qk_quads(k);
    size_t rb = (size_t)bp_qk_rblocks(m), s = (size_t)(p->stride_h > 0 ? p->stride_h : 1);
    size_t kw = p->kw > 0 && p->kw <= 64 ? (size_t)p->kw : 0;
    size_t phases = (size_t)cig * s * s * ((p->h + s - 1) / s) * ((p->w + s - 1) / s);
    return pb * kq * 4 + 4 * (size_t)row_len((int)pb) * 2 + rb * kq * 64 + rb * 16 * 4 + kw * pb + phases + 256;
}

/* Four int16 rows (16 pixels each step) to byte quads. s8: values −128..127
 * packed with signed saturation (exact) and flipped to a + 128. */
AVX2 static void interleave4(int16_t *const t[4], int npad, int s8, uint8_t *A)
{
    const __m128i flip = _mm_set1_epi8((char)0x80);
    for (int p = 0; p < npad; p += 16) {
        __m128i b[4];
        for (int j = 0; j < 4; j++) {
            __m256i r = _mm256_loadu_si256((const __m256i *)(t[j] + p));
            __m128i lo = _mm256_castsi256_si128(r), hi = _mm256_extracti128_si256(r, 1);
            b[j] = s8 ? _mm_xor_si128(_mm_packs_epi16(lo, hi), flip) : _mm_packus_epi16(lo, hi);
        }
        __m128i p01l = _mm_unpacklo_epi8(b[0], b[1]), p01h = _mm_unpackhi_epi8(b[0], b[1]);
        __m128i p23l = _mm_unpacklo_epi8(b[2], b[3]), p23h = _mm_unpackhi_epi8(b[2], b[3]);
        __m128i *d = (__m128i *)(A + (size_t)p * 4);
        _mm_storeu_si128(d, _mm_unpacklo_epi16(p01l, p23l));
        _mm_storeu_si128(d + 1, _mm_unpackhi_epi16(p01l, p23l));
        _mm_storeu_si128(d + 2, _mm_unpacklo_epi16(p01h, p23h));
        _mm_storeu_si128(d + 3, _mm_unpackhi_epi16(p01h, p23h));
    }
}

/* 1x1, stride 1, no padding: the quads come straight from four channel
 * planes (16 pixels of a plane are contiguous). Past np the loads may pick up
 * the next channel's bytes (those pixels are computed but never stored) as
 * long as they stay inside the input (avail bytes from in); otherwise the tail
 * goes byte by byte. */
AVX2 static void quads_1x1(const uint8_t *in, ptrdiff_t avail, size_t plane, int k, int np, int npad,
                           int s8, uint8_t *A, size_t astride)
{
    const __m128i flip = _mm_set1_epi8((char)(s8 ? 0x80 : 0));
    const int kqn = qk_quads(k);
    for (int kq = 0; kq < kqn; kq++) {
        uint8_t *Ak = A + (size_t)kq * astride;
        const uint8_t *src[4];
        for (int j = 0; j < 4; j++)
            src[j] = 4 * kq + j < k ? in + (size_t)(4 * kq + j) * plane : NULL;
        int p = 0;
        const ptrdiff_t last = (ptrdiff_t)(4 * kq + 3 < k ? 4 * kq + 3 : k - 1) * (ptrdiff_t)plane;
        for (; p < np && (p + 16 <= np || last + p + 16 <= avail); p += 16) {
            __m128i b[4];
            for (int j = 0; j < 4; j++)
                b[j] = src[j] ? _mm_xor_si128(_mm_loadu_si128((const __m128i *)(src[j] + p)), flip)
                              : _mm_setzero_si128();
            __m128i p01l = _mm_unpacklo_epi8(b[0], b[1]), p01h = _mm_unpackhi_epi8(b[0], b[1]);
            __m128i p23l = _mm_unpacklo_epi8(b[2], b[3]), p23h = _mm_unpackhi_epi8(b[2], b[3]);
            __m128i *d = (__m128i *)(Ak + (size_t)p * 4);
            _mm_storeu_si128(d, _mm_unpacklo_epi16(p01l, p23l));
            _mm_storeu_si128(d + 1, _mm_unpackhi_epi16(p01l, p23l));
            _mm_storeu_si128(d + 2, _mm_unpacklo_epi16(p01h, p23h));
            _mm_storeu_si128(d + 3, _mm_unpackhi_epi16(p01h, p23h));
        }
        for (; p < np; p++)
            for (int j = 0; j < 4; j++)
                Ak[(size_t)p * 4 + j] = src[j] ? (uint8_t)(src[j][p] ^ (s8 ? 0x80 : 0)) : 0;
        if (p < npad)
            memset(Ak + (size_t)p * 4, 0, (size_t)(npad - p) * 4);
    }
}

/* Convs whose output is as wide as the (phase) plane it reads, dilation 1.
 * Stride 1: the im2col row of k = (ci, ky, kx) is channel ci's plane shifted
 * by (ky − pad_t)·w + (kx − pad_l). Stride s > 1: the input is first split
 * into s·s phase planes per channel (ph[py][px][y][x] = in[s·y + py][s·x + px],
 * Hp × Wp each, zero past the image), and the row is phase plane
 * ((ky − pad_t) mod s, (kx − pad_l) mod s) shifted by dy·Wp + dx, dy and dx
 * the floor quotients. Either way a row is zero where the plane row leaves the
 * plane (outside a flat range [qa, qb) of the block's pixels, which also ends
 * at np) or the column wraps around (a periodic byte mask per kx). Four rows
 * are loaded, masked and interleaved straight into quads. A load that would
 * leave the source buffer goes byte by byte. */
typedef struct {
    ptrdiff_t poff;  /* plane start relative to the channel's */
    ptrdiff_t shift; /* dy·Wp + dx */
    int dx;
} qtap;

typedef struct {
    const uint8_t *src;
    ptrdiff_t total;   /* bytes readable from src */
    ptrdiff_t c0, cs;  /* offset of the group's channel 0, channel stride */
    int hp, wp;        /* plane height and width (= output width) */
    int khw, kw;
    const qtap *taps;  /* khw */
} qplanes;

static const uint8_t ramp_tbl[32] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                     255, 255, 255, 255, 255, 255, 255, 255,
                                     255, 255, 255, 255, 255, 255, 255, 255};

AVX2 static void quads_planes(const qplanes *g, int p0, int np, int npad, int k, int s8, uint8_t *A,
                              uint8_t *cm)
{
    const int w = g->wp, kqn = qk_quads(k);
    const ptrdiff_t plane = (ptrdiff_t)g->hp * w;
    const uint8_t *in = g->src;
    const __m128i flip = _mm_set1_epi8((char)(s8 ? 0x80 : 0));
    for (int kx = 0; kx < g->kw; kx++) {
        const int dx = g->taps[kx].dx;
        uint8_t *m = cm + (size_t)kx * npad;
        int ox = p0 % w, q = 0;
        for (; q < npad && q < w; q++) {
            m[q] = ox + dx >= 0 && ox + dx < w ? 0xFF : 0;
            if (++ox == w)
                ox = 0;
        }
        for (int len = w; q < npad; len *= 2) { /* period w: copy what is there */
            int c = npad - q < len ? npad - q : len;
            memcpy(m + q, m, (size_t)c);
            q += c;
        }
    }
    for (int kq = 0; kq < kqn; kq++) {
        const uint8_t *msk[4];
        ptrdiff_t off[4], qa[4], qb[4];
        for (int j = 0; j < 4; j++) {
            int kk = 4 * kq + j;
            if (kk >= k) {
                msk[j] = cm, off[j] = 0, qa[j] = qb[j] = 0;
                continue;
            }
            const int ci = kk / g->khw, tap = kk % g->khw;
            const qtap *t = &g->taps[tap];
            off[j] = g->c0 + ci * g->cs + t->poff + t->shift + p0;
            msk[j] = cm + (size_t)(tap % g->kw) * npad;
            ptrdiff_t lo = -t->shift - p0, hi = plane - t->shift - p0;
            qa[j] = lo < 0 ? 0 : lo;
            qb[j] = hi > np ? np : hi;
        }
        uint8_t *Ak = A + (size_t)kq * npad * 4;
        /* blocks [f0, f1) where every row's load is whole, inside its range and
         * inside the buffer: no per-block checks */
        ptrdiff_t lo = 0, hi = npad;
        int nv = 0;
        for (int j = 0; j < 4; j++)
            if (4 * kq + j < k) {
                ptrdiff_t l = qa[j] > -off[j] ? qa[j] : -off[j];
                ptrdiff_t h = qb[j] < g->total - off[j] ? qb[j] : g->total - off[j];
                lo = l > lo ? l : lo;
                hi = h < hi ? h : hi;
                nv = j + 1;
            }
        const ptrdiff_t f0 = (lo + 15) / 16 * 16;
        ptrdiff_t f1 = f0;
        while (f1 + 16 <= hi)
            f1 += 16;
        if (nv == 4)
            for (ptrdiff_t q = f0; q < f1; q += 16) {
                __m128i b0 = _mm_xor_si128(_mm_and_si128(_mm_loadu_si128((const __m128i *)(in + off[0] + q)),
                                                         _mm_loadu_si128((const __m128i *)(msk[0] + q))), flip);
                __m128i b1 = _mm_xor_si128(_mm_and_si128(_mm_loadu_si128((const __m128i *)(in + off[1] + q)),
                                                         _mm_loadu_si128((const __m128i *)(msk[1] + q))), flip);
                __m128i b2 = _mm_xor_si128(_mm_and_si128(_mm_loadu_si128((const __m128i *)(in + off[2] + q)),
                                                         _mm_loadu_si128((const __m128i *)(msk[2] + q))), flip);
                __m128i b3 = _mm_xor_si128(_mm_and_si128(_mm_loadu_si128((const __m128i *)(in + off[3] + q)),
                                                         _mm_loadu_si128((const __m128i *)(msk[3] + q))), flip);
                __m128i p01l = _mm_unpacklo_epi8(b0, b1), p01h = _mm_unpackhi_epi8(b0, b1);
                __m128i p23l = _mm_unpacklo_epi8(b2, b3), p23h = _mm_unpackhi_epi8(b2, b3);
                __m128i *d = (__m128i *)(Ak + (size_t)q * 4);
                _mm_storeu_si128(d, _mm_unpacklo_epi16(p01l, p23l));
                _mm_storeu_si128(d + 1, _mm_unpackhi_epi16(p01l, p23l));
                _mm_storeu_si128(d + 2, _mm_unpacklo_epi16(p01h, p23h));
                _mm_storeu_si128(d + 3, _mm_unpackhi_epi16(p01h, p23h));
            }
        else
            f1 = f0;
        for (int q = 0; q < npad; q += 16) {
            if (q == f0 && f1 > f0) {
                q = (int)f1 - 16;
                continue;
            }
            __m128i b[4];
            for (int j = 0; j < 4; j++) {
                if (q + 16 <= qa[j] || q >= qb[j])
                    b[j] = _mm_setzero_si128();
                else if (off[j] + q >= 0 && off[j] + q + 16 <= g->total) {
                    b[j] = _mm_and_si128(_mm_loadu_si128((const __m128i *)(in + off[j] + q)),
                                         _mm_loadu_si128((const __m128i *)(msk[j] + q)));
                    if (q < qa[j] || q + 16 > qb[j]) {
                        int l = (int)(qa[j] - q), h = (int)(qb[j] - q);
                        l = l < 0 ? 0 : l;
                        h = h > 16 ? 16 : h;
                        __m128i rl = _mm_loadu_si128((const __m128i *)(ramp_tbl + 16 - l));
                        __m128i rh = _mm_loadu_si128((const __m128i *)(ramp_tbl + 16 - h));
                        b[j] = _mm_and_si128(b[j], _mm_andnot_si128(rh, rl));
                    }
                } else {
                    uint8_t t[16];
                    for (int u = 0; u < 16; u++)
                        t[u] = q + u >= qa[j] && q + u < qb[j] ? (uint8_t)(in[off[j] + q + u] & msk[j][q + u]) : 0;
                    b[j] = _mm_loadu_si128((const __m128i *)t);
                }
                b[j] = _mm_xor_si128(b[j], flip);
            }
            __m128i p01l = _mm_unpacklo_epi8(b[0], b[1]), p01h = _mm_unpackhi_epi8(b[0], b[1]);
            __m128i p23l = _mm_unpacklo_epi8(b[2], b[3]), p23h = _mm_unpackhi_epi8(b[2], b[3]);
            __m128i *d = (__m128i *)(Ak + (size_t)q * 4);
            _mm_storeu_si128(d, _mm_unpacklo_epi16(p01l, p23l));
            _mm_storeu_si128(d + 1, _mm_unpackhi_epi16(p01l, p23l));
            _mm_storeu_si128(d + 2, _mm_unpacklo_epi16(p01h, p23h));
            _mm_storeu_si128(d + 3, _mm_unpackhi_epi16(p01h, p23h));
        }
    }
}

static int floordiv(int a, int b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

/* Phase-plane geometry of p when it qualifies (dilation 1, equal strides,
 * output width = plane width, kh·kw <= 64): fills taps and returns 1. */
static int plane_taps(const bp_qconv_params *p, int ow, qtap *taps, int *hp, int *wp)
{
    const int s = p->stride_h;
    if (p->stride_w != s || p->dil_h != 1 || p->dil_w != 1 || p->kh * p->kw > 64)
        return 0;
    *hp = (p->h + s - 1) / s;
    *wp = (p->w + s - 1) / s;
    if (ow != *wp)
        return 0;
    for (int ky = 0; ky < p->kh; ky++)
        for (int kx = 0; kx < p->kw; kx++) {
            int dy = floordiv(ky - p->pad_t, s), dx = floordiv(kx - p->pad_l, s);
            int py = ky - p->pad_t - s * dy, px = kx - p->pad_l - s * dx;
            qtap *t = &taps[ky * p->kw + kx];
            t->poff = (ptrdiff_t)(py * s + px) * *hp * *wp;
            t->shift = (ptrdiff_t)dy * *wp + dx;
            t->dx = dx;
        }
    return 1;
}

/* Splits cig channels (planes h × w from src) into s·s phase planes each;
 * only the phases some tap reads (used[py·s + px]) are written. */
/* Stores the first n (0..8) bytes of v at d without a library call. */
AVX2 static inline void store_n8(uint8_t *d, __m128i v, int n)
{
    uint64_t x = (uint64_t)_mm_cvtsi128_si64(v);
    if (n == 8) {
        memcpy(d, &x, 8);
        return;
    }
    if (n & 4) {
        uint32_t x4 = (uint32_t)x;
        memcpy(d, &x4, 4);
        d += 4, x >>= 32;
    }
    if (n & 2) {
        uint16_t x2 = (uint16_t)x;
        memcpy(d, &x2, 2);
        d += 2, x >>= 16;
    }
    if (n & 1)
        *d = (uint8_t)x;
}

AVX2 static void split_phases(const uint8_t *src, int cig, int h, int w, int s, int hp, int wp,
                              const uint8_t *used, uint8_t *dst)
{
    if (s == 2 && w <= 127) {
        /* each input row gives both column phases: 16 columns, pshufb evens to
         * the low 8 bytes and odds to the high 8, bytes past w zeroed */
        const __m128i sel = _mm_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
        const __m128i col = sel; /* the column offset of each byte after the shuffle */
        const uint8_t *end = src + (size_t)cig * h * w;
        const size_t ps = (size_t)hp * wp;
        for (int c = 0; c < cig; c++)
            for (int iy = 0; iy < 2 * hp; iy++) {
                const int py = iy & 1, y = iy >> 1;
                uint8_t *d0 = dst + ((size_t)(c * 2 + py) * 2) * ps + (size_t)y * wp, *d1 = d0 + ps;
                const int u0 = used[py * 2], u1 = used[py * 2 + 1];
                if (!u0 && !u1)
                    continue;
                if (iy >= h) {
                    if (u0)
                        memset(d0, 0, (size_t)wp);
                    if (u1)
                        memset(d1, 0, (size_t)wp);
                    continue;
                }
                const uint8_t *r = src + ((size_t)c * h + iy) * w;
                int x = 0;
                for (; x < w && r + x + 16 <= end; x += 16) {
                    __m128i v = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(r + x)), sel);
                    v = _mm_and_si128(v, _mm_cmpgt_epi8(_mm_set1_epi8((char)(w - x)), col));
                    const int n = wp - x / 2 < 8 ? wp - x / 2 : 8;
                    if (u0)
                        store_n8(d0 + x / 2, v, n);
                    if (u1)
                        store_n8(d1 + x / 2, _mm_srli_si128(v, 8), n);
                }
                for (int xp = x / 2; xp < wp; xp++) {
                    d0[xp] = 2 * xp < w ? r[2 * xp] : 0;
                    d1[xp] = 2 * xp + 1 < w ? r[2 * xp + 1] : 0;
                }
            }
        return;
    }
    for (int c = 0; c < cig; c++)
        for (int py = 0; py < s; py++)
            for (int px = 0; px < s; px++) {
                if (!used[py * s + px])
                    continue;
                uint8_t *d = dst + ((size_t)(c * s + py) * s + px) * hp * wp;
                for (int y = 0; y < hp; y++, d += wp) {
                    const int iy = y * s + py;
                    if (iy >= h) {
                        memset(d, 0, (size_t)wp);
                        continue;
                    }
                    const uint8_t *r = src + ((size_t)c * h + iy) * w + px;
                    int x = 0;
                    if (s == 2)
                        for (; x + 8 <= wp && 2 * x + px + 16 <= w; x += 8) {
                            /* even bytes of 16 */
                            __m128i v = _mm_loadu_si128((const __m128i *)(r + 2 * x));
                            v = _mm_and_si128(v, _mm_set1_epi16(0xFF));
                            _mm_storel_epi64((__m128i *)(d + x), _mm_packus_epi16(v, v));
                        }
                    for (; x < wp; x++)
                        d[x] = x * s + px < w ? r[x * s] : 0;
                }
            }
}

/* Repacks one group's panel (M rows, K) into Wq and sets beff[r] = bias[r]
 * (− 128·Σ_k w[r][k] for signed inputs), for all rb·16 rows. Plain AVX2 (the
 * AVX-512 kernel uses it on CPUs that may lack AVX-VNNI). */
AVX2 static void repack_q(const uint8_t *gp, int M, int k, int wbits, const int32_t *bias, int s8,
                          uint8_t *Wq, int32_t *beff)
{
    const int kpn = bp_qk_kpairs(k), kqn = qk_quads(k), cell = bp_qk_cell(wbits);
    const __m256i ones = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);
    for (int rb = 0; rb < bp_qk_rblocks(M); rb++) {
        __m256i slo = _mm256_setzero_si256(), shi = slo;
        for (int kq = 0; kq < kqn; kq++) {
            __m256i c[2];
            for (int h = 0; h < 2; h++) {
                int kp = 2 * kq + h;
                const uint8_t *w = gp + ((size_t)rb * kpn + kp) * cell;
                if (kp >= kpn)
                    c[h] = _mm256_setzero_si256();
                else if (cell == 32)
                    c[h] = _mm256_loadu_si256((const __m256i *)w);
                else {
                    const __m128i m4 = _mm_set1_epi8(0x0F), e8 = _mm_set1_epi8(8);
                    __m128i x = _mm_loadu_si128((const __m128i *)w);
                    __m128i lo = _mm_and_si128(x, m4), hi = _mm_and_si128(_mm_srli_epi16(x, 4), m4);
                    lo = _mm_sub_epi8(_mm_xor_si128(lo, e8), e8);
                    hi = _mm_sub_epi8(_mm_xor_si128(hi, e8), e8);
                    c[h] = _mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1);
                }
            }
            /* lo: rows 0-3 | 8-11, hi: rows 4-7 | 12-15, 4 k each */
            __m256i lo = _mm256_unpacklo_epi16(c[0], c[1]), hi = _mm256_unpackhi_epi16(c[0], c[1]);
            /* 1·w pair sums (|sum| <= 256, no saturation), then pairs of those */
            slo = _mm256_add_epi32(slo, _mm256_madd_epi16(_mm256_maddubs_epi16(ones, lo), ones16));
            shi = _mm256_add_epi32(shi, _mm256_madd_epi16(_mm256_maddubs_epi16(ones, hi), ones16));
            uint8_t *d = Wq + ((size_t)rb * 4 * kqn + kq) * 16;
            const size_t gs = (size_t)kqn * 16;
            _mm_storeu_si128((__m128i *)d, _mm256_castsi256_si128(lo));
            _mm_storeu_si128((__m128i *)(d + gs), _mm256_castsi256_si128(hi));
            _mm_storeu_si128((__m128i *)(d + 2 * gs), _mm256_extracti128_si256(lo, 1));
            _mm_storeu_si128((__m128i *)(d + 3 * gs), _mm256_extracti128_si256(hi, 1));
        }
        int32_t s[16], sl[8], sh[8];
        _mm256_storeu_si256((__m256i *)sl, slo);
        _mm256_storeu_si256((__m256i *)sh, shi);
        for (int i = 0; i < 4; i++) {
            s[i] = sl[i], s[4 + i] = sh[i], s[8 + i] = sl[4 + i], s[12 + i] = sh[4 + i];
        }
        for (int c = 0; c < 16; c++) {
            int r = rb * 16 + c;
            uint32_t b = r < M && bias ? (uint32_t)bias[r] : 0;
            beff[r] = (int32_t)(s8 ? b - 128u * (uint32_t)s[c] : b);
        }
    }
}

/* Rows [0, M) by pixels [0, np) of one pixel block; output element
 * obase + r·rs + q (pixels contiguous). */
VNNI static void tiles_q(const uint8_t *A, int np, int npad, int kqn, const uint8_t *Wq, int M,
                         const int32_t *beff, const bp_qmul *qm, void *out, size_t obase, size_t rs,
                         bp_qtype type, int32_t lo, int32_t hi)
{
    const __m256i vlo = _mm256_set1_epi32(lo), vhi = _mm256_set1_epi32(hi);
    const size_t astride = (size_t)npad * 4;
    for (int rg = 0; rg < (M + 3) / 4; rg++) {
        const uint8_t *wg = Wq + (size_t)rg * kqn * 16;
        __m256i vb[4], vm[4], vs[4], vz[4];
        int vec_ok = 1;
        for (int i = 0; i < 4; i++) {
            int r = 4 * rg + i;
            bp_qmul q = r < M ? qm[r] : (bp_qmul){0, 0};
            vb[i] = _mm256_set1_epi32(beff[r]);
            vm[i] = _mm256_set1_epi32(q.mult);
            vs[i] = _mm256_set1_epi32(-q.shift);
            vz[i] = _mm256_set1_epi32(q.mult == 0 ? -1 : 0);
            if (q.shift > 0 || q.shift < -31)
                vec_ok = 0;
        }
        for (int q0 = 0; q0 < np; q0 += QP) {
            const uint8_t *a = A + (size_t)q0 * 4;
            const uint8_t *w = wg;
            __m256i c00 = _mm256_setzero_si256(), c01 = c00, c10 = c00, c11 = c00, c20 = c00,
                    c21 = c00, c30 = c00, c31 = c00;
            for (int kq = 0; kq < kqn; kq++, a += astride, w += 16) {
                __m256i a0 = _mm256_loadu_si256((const __m256i *)a);
                __m256i a1 = _mm256_loadu_si256((const __m256i *)(a + 32));
                __m256i wb;
                int32_t wv;
                memcpy(&wv, w, 4);
                wb = _mm256_set1_epi32(wv);
                c00 = _mm256_dpbusd_avx_epi32(c00, a0, wb);
                c01 = _mm256_dpbusd_avx_epi32(c01, a1, wb);
                memcpy(&wv, w + 4, 4);
                wb = _mm256_set1_epi32(wv);
                c10 = _mm256_dpbusd_avx_epi32(c10, a0, wb);
                c11 = _mm256_dpbusd_avx_epi32(c11, a1, wb);
                memcpy(&wv, w + 8, 4);
                wb = _mm256_set1_epi32(wv);
                c20 = _mm256_dpbusd_avx_epi32(c20, a0, wb);
                c21 = _mm256_dpbusd_avx_epi32(c21, a1, wb);
                memcpy(&wv, w + 12, 4);
                wb = _mm256_set1_epi32(wv);
                c30 = _mm256_dpbusd_avx_epi32(c30, a0, wb);
                c31 = _mm256_dpbusd_avx_epi32(c31, a1, wb);
            }
            __m256i acc[4][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}};
            const int cnt = np - q0 < QP ? np - q0 : QP;
            for (int i = 0; i < 4; i++) {
                const int r = 4 * rg + i;
                if (r >= M)
                    break;
                __m256i x0 = _mm256_add_epi32(acc[i][0], vb[i]), x1 = _mm256_add_epi32(acc[i][1], vb[i]);
                if (vec_ok) {
                    x0 = _mm256_min_epi32(_mm256_max_epi32(vrequant(x0, vm[i], vs[i], vz[i]), vlo), vhi);
                    x1 = _mm256_min_epi32(_mm256_max_epi32(vrequant(x1, vm[i], vs[i], vz[i]), vlo), vhi);
                } else {
                    int32_t res[16];
                    _mm256_storeu_si256((__m256i *)res, x0);
                    _mm256_storeu_si256((__m256i *)(res + 8), x1);
                    for (int j = 0; j < 16; j++) {
                        int32_t v = bp_requant(res[j], qm[r]);
                        res[j] = v < lo ? lo : v > hi ? hi : v;
                    }
                    x0 = _mm256_loadu_si256((const __m256i *)res);
                    x1 = _mm256_loadu_si256((const __m256i *)(res + 8));
                }
                const size_t at = obase + (size_t)r * rs + (size_t)q0;
                if (type == BP_QT_S32) {
                    int32_t *dst = (int32_t *)out + at;
                    if (cnt == QP) {
                        _mm256_storeu_si256((__m256i *)dst, x0);
                        _mm256_storeu_si256((__m256i *)(dst + 8), x1);
                    } else {
                        int32_t res[16];
                        _mm256_storeu_si256((__m256i *)res, x0);
                        _mm256_storeu_si256((__m256i *)(res + 8), x1);
                        memcpy(dst, res, sizeof(int32_t) * cnt);
                    }
                } else {
                    /* clamped to the type's range: the saturating packs are exact */
                    __m256i v16 = _mm256_permute4x64_epi64(_mm256_packs_epi32(x0, x1), 0xD8);
                    __m128i l = _mm256_castsi256_si128(v16), h = _mm256_extracti128_si256(v16, 1);
                    __m128i b = type == BP_QT_U8 ? _mm_packus_epi16(l, h) : _mm_packs_epi16(l, h);
                    uint8_t *dst = (uint8_t *)out + at;
                    if (cnt == QP)
                        _mm_storeu_si128((__m128i *)dst, b);
                    else {
                        uint8_t res[16];
                        _mm_storeu_si128((__m128i *)res, b);
                        memcpy(dst, res, cnt);
                    }
                }
            }
        }
    }
}

/* AVX-512 VNNI: the same panels, 8 output channels × 32 pixels (16 zmm
 * accumulators), requantization on 16 lanes, masked stores for tails. */
#define AVX512 __attribute__((target("avx2,avx512f,avx512bw,avx512vl,avx512vnni")))

/* mask = 2^right − 1 and half = mask >> 1, precomputed per row */
AVX512 static inline __m512i vrequant_z(__m512i x, __m512i m, __m512i right, __m512i mask, __m512i half,
                                        __mmask16 zmask)
{
    const __m512i nudge = _mm512_set1_epi64((int64_t)1 << 30);
    __m512i pe = _mm512_add_epi64(_mm512_mul_epi32(x, m), nudge);
    __m512i po = _mm512_add_epi64(
        _mm512_mul_epi32(_mm512_srli_epi64(x, 32), _mm512_srli_epi64(m, 32)), nudge);
    __m512i y = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(pe, 31), _mm512_slli_epi64(po, 1));
    y = _mm512_mask_blend_epi32(zmask, y, x);
    const __m512i one = _mm512_set1_epi32(1);
    __m512i rem = _mm512_and_si512(y, mask);
    __m512i thr = _mm512_mask_add_epi32(half, _mm512_cmplt_epi32_mask(y, _mm512_setzero_si512()), half, one);
    __m512i r = _mm512_srav_epi32(y, right);
    return _mm512_mask_add_epi32(r, _mm512_cmpgt_epi32_mask(rem, thr), r, one);
}

AVX512 static void tiles_z(const uint8_t *A, int np, int npad, int kqn, const uint8_t *Wq, int M,
                           const int32_t *beff, const bp_qmul *qm, void *out, size_t obase, size_t rs,
                           bp_qtype type, int32_t lo, int32_t hi)
{
    const __m512i vlo = _mm512_set1_epi32(lo), vhi = _mm512_set1_epi32(hi);
    const size_t astride = (size_t)npad * 4;
    for (int rg = 0; rg < (M + 7) / 8; rg++) {
        const uint8_t *wg0 = Wq + (size_t)(2 * rg) * kqn * 16, *wg1 = wg0 + (size_t)kqn * 16;
        __m512i vb[8], vm[8], vs[8], vk[8], vh[8];
        __mmask16 vz[8];
        int vec_ok = 1;
        for (int i = 0; i < 8; i++) {
            int r = 8 * rg + i;
            bp_qmul q = r < M ? qm[r] : (bp_qmul){0, 0};
            vb[i] = _mm512_set1_epi32(beff[r]);
            vm[i] = _mm512_set1_epi32(q.mult);
            vs[i] = _mm512_set1_epi32(-q.shift);
            const uint32_t mk = q.shift <= 0 && q.shift >= -31 ? (1u << -q.shift) - 1 : 0;
            vk[i] = _mm512_set1_epi32((int32_t)mk);
            vh[i] = _mm512_set1_epi32((int32_t)(mk >> 1));
            vz[i] = q.mult == 0 ? 0xFFFF : 0;
            if (q.shift > 0 || q.shift < -31)
                vec_ok = 0;
        }
        for (int q0 = 0; q0 < np; q0 += 2 * QP) {
            const uint8_t *a = A + (size_t)q0 * 4;
            const uint8_t *w0 = wg0, *w1 = wg1;
            /* named accumulators: an array would live in memory at -O2 */
            __m512i z = _mm512_setzero_si512(), c00 = z, c01 = z, c10 = z, c11 = z, c20 = z, c21 = z,
                    c30 = z, c31 = z, c40 = z, c41 = z, c50 = z, c51 = z, c60 = z, c61 = z, c70 = z,
                    c71 = z;
            for (int kq = 0; kq < kqn; kq++, a += astride, w0 += 16, w1 += 16) {
                __m512i a0 = _mm512_loadu_si512((const void *)a);
                __m512i a1 = _mm512_loadu_si512((const void *)(a + 64));
                int32_t wv;
                __m512i wb;
#define ZSTEP(C0, C1, W)                                   \
                memcpy(&wv, W, 4);                         \
                wb = _mm512_set1_epi32(wv);                \
                C0 = _mm512_dpbusd_epi32(C0, a0, wb);      \
                C1 = _mm512_dpbusd_epi32(C1, a1, wb);
                ZSTEP(c00, c01, w0)
                ZSTEP(c10, c11, w0 + 4)
                ZSTEP(c20, c21, w0 + 8)
                ZSTEP(c30, c31, w0 + 12)
                ZSTEP(c40, c41, w1)
                ZSTEP(c50, c51, w1 + 4)
                ZSTEP(c60, c61, w1 + 8)
                ZSTEP(c70, c71, w1 + 12)
#undef ZSTEP
            }
            __m512i c[8][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31},
                               {c40, c41}, {c50, c51}, {c60, c61}, {c70, c71}};
            for (int i = 0; i < 8; i++) {
                const int r = 8 * rg + i;
                if (r >= M)
                    break;
                for (int h = 0; h < 2; h++) {
                    const int qs = q0 + 16 * h;
                    if (qs >= np)
                        break;
                    const int cnt = np - qs < 16 ? np - qs : 16;
                    const __mmask16 km = (__mmask16)(cnt == 16 ? 0xFFFF : (1u << cnt) - 1);
                    __m512i x = _mm512_add_epi32(c[i][h], vb[i]);
                    if (vec_ok)
                        x = _mm512_min_epi32(_mm512_max_epi32(vrequant_z(x, vm[i], vs[i], vk[i], vh[i], vz[i]), vlo), vhi);
                    else {
                        int32_t res[16];
                        _mm512_storeu_si512((void *)res, x);
                        for (int j = 0; j < 16; j++) {
                            int32_t v = bp_requant(res[j], qm[r]);
                            res[j] = v < lo ? lo : v > hi ? hi : v;
                        }
                        x = _mm512_loadu_si512((const void *)res);
                    }
                    const size_t at = obase + (size_t)r * rs + (size_t)qs;
                    /* clamped to the type's range: the saturating conversions are exact */
                    if (type == BP_QT_S32)
                        _mm512_mask_storeu_epi32((int32_t *)out + at, km, x);
                    else if (type == BP_QT_U8)
                        _mm_mask_storeu_epi8((uint8_t *)out + at, km, _mm512_cvtusepi32_epi8(x));
                    else
                        _mm_mask_storeu_epi8((int8_t *)out + at, km, _mm512_cvtsepi32_epi8(x));
                }
            }
        }
    }
}

AVX2 void bp_qconv_vnni(const bp_qconv_params *p, const void *in, const uint8_t *wpanel,
                        const int32_t *bias, const bp_qmul *qm, void *out, void *scratch, int wide)
{
    int oh, ow;
    bp_qconv_out_hw(p, &oh, &ow);
    const int cig = p->cin / p->group, cog = p->cout / p->group;
    if (cig == 1 && cog == 1 && p->kh * p->kw <= 64) {
        bp_qconv_avx2(p, in, wpanel, bias, qm, out, scratch, 0);
        return;
    }
    const int k = cig * p->kh * p->kw, npix = oh * ow, pb = bp_qk_quad_block(k), kqn = qk_quads(k);
    const int s8 = p->in_type == BP_QT_S8;
    const size_t gbytes = bp_qk_group_bytes(cog, k, p->wbits), plane = (size_t)p->h * p->w;
    const size_t in_total = (size_t)p->n * p->cin * plane;
    uint8_t *A = (uint8_t *)aligned_scratch(scratch);
    int16_t *t[4];
    t[0] = (int16_t *)(A + (size_t)pb * kqn * 4);
    for (int j = 1; j < 4; j++)
        t[j] = t[j - 1] + row_len(pb);
    uint8_t *Wq = (uint8_t *)(t[3] + row_len(pb));
    int32_t *beff = (int32_t *)(Wq + (size_t)bp_qk_rblocks(cog) * kqn * 64);
    const int direct = p->kh == 1 && p->kw == 1 && p->stride_h == 1 && p->stride_w == 1 && !p->pad_t &&
                       !p->pad_l && !p->pad_b && !p->pad_r;
    qtap taps[64];
    int hp = 0, wp = 0;
    const int planes = !direct && p->stride_h <= 8 && plane_taps(p, ow, taps, &hp, &wp),
              split = planes && p->stride_h > 1;
    uint8_t *cmask = (uint8_t *)(beff + (size_t)bp_qk_rblocks(cog) * 16); /* kw·pb bytes */
    uint8_t *phases = cmask + (size_t)p->kw * pb;                         /* cig·s·s·hp·wp bytes */
    uint8_t used[64] = {0};
    if (split && p->stride_h <= 8)
        for (int i = 0; i < p->kh * p->kw; i++)
            used[taps[i].poff / ((ptrdiff_t)hp * wp)] = 1;
    qplanes qp = {split ? phases : (const uint8_t *)in,
                  split ? (ptrdiff_t)cig * p->stride_h * p->stride_h * hp * wp : (ptrdiff_t)in_total,
                  0,
                  split ? (ptrdiff_t)p->stride_h * p->stride_h * hp * wp : (ptrdiff_t)plane,
                  hp, wp, p->kh * p->kw, p->kw, taps};
    for (int g = 0; g < p->group; g++) {
        repack_q(wpanel + (size_t)g * gbytes, cog, k, p->wbits, bias ? bias + (size_t)g * cog : NULL, s8,
                 Wq, beff);
        for (int n = 0; n < p->n; n++) {
            const size_t in_off = ((size_t)n * p->cin + (size_t)g * cig) * plane;
            const size_t obase = ((size_t)n * p->cout + (size_t)g * cog) * npix;
            if (split)
                split_phases((const uint8_t *)in + in_off, cig, p->h, p->w, p->stride_h, hp, wp, used, phases);
            else
                qp.c0 = (ptrdiff_t)in_off;
            for (int p0 = 0; p0 < npix; p0 += pb) {
                const int np = npix - p0 < pb ? npix - p0 : pb, tq = wide ? 2 * QP : QP,
                          npad = (np + tq - 1) / tq * tq;
                if (direct)
                    quads_1x1((const uint8_t *)in + in_off + p0, (ptrdiff_t)(in_total - in_off - p0), plane, k, np,
                              npad, s8, A, (size_t)npad * 4);
                else if (planes)
                    quads_planes(&qp, p0, np, npad, k, s8, A, cmask);
                else
                    for (int kq = 0; kq < kqn; kq++) {
                        for (int j = 0; j < 4; j++) {
                            if (4 * kq + j < k)
                                conv_row(p, ow, in, in_total, in_off, 4 * kq + j, p0, np, npad, t[j]);
                            else
                                memset(t[j], 0, sizeof(int16_t) * npad);
                        }
                        interleave4(t, npad, s8, A + (size_t)kq * npad * 4);
                    }
                (wide ? tiles_z : tiles_q)(A, np, npad, kqn, Wq, cog, beff, qm + (size_t)g * cog, out,
                                           obase + p0, (size_t)npix, p->out_type, p->out_min, p->out_max);
            }
        }
    }
}
