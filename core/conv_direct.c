/* conv_direct.c — the direct conv kernel of conv_direct.h, AVX-512F only.
 *
 * A tile is 8 output channels by 32 positions: 16 zmm accumulators. For each
 * input plane and tap, two vectors of the input are loaded and each of the
 * 8 weights is broadcast into two FMAs, so the loop is FMA-bound (10 loads
 * per 16 FMAs). The tail of T is handled with masked loads and stores, which
 * also keep every read inside [off, off + T) of its plane. Sums run in a
 * fixed order (input plane, then tap), so results do not depend on threads.
 *
 * There is no portable build of this kernel: without AVX-512 (or in the
 * double build) ops_conv.c keeps im2col + BLAS, which is the reference the
 * tests compare against. */
#include <stddef.h>

#include "core/conv_direct.h"

static int enabled = 1;

void bp_cd_enable(int on) { enabled = on; }

size_t bp_cd_wsize(int no, int ni, int nk)
{
    return (size_t)((no + BP_CD_OB - 1) / BP_CD_OB) * BP_CD_OB * ni * nk;
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(BP_F64)
#include <immintrin.h>

#define AVX512 __attribute__((target("avx512f")))

static int avx512 = -1; /* CPUID once: it can trap to the hypervisor */

int bp_cd_available(void)
{
    int a = __atomic_load_n(&avx512, __ATOMIC_RELAXED);
    if (a < 0) {
        __builtin_cpu_init();
        a = __builtin_cpu_supports("avx512f") ? 1 : 0;
        __atomic_store_n(&avx512, a, __ATOMIC_RELAXED);
    }
    return a && enabled;
}

/* Adds input planes [0, ni) of src (stride lds) into the 16 accumulators. */
#define FMA8(w)                                                                    \
    do {                                                                           \
        __m512 b;                                                                  \
        b = _mm512_set1_ps((w)[0]), a00 = _mm512_fmadd_ps(b, x0, a00), a01 = _mm512_fmadd_ps(b, x1, a01); \
        b = _mm512_set1_ps((w)[1]), a10 = _mm512_fmadd_ps(b, x0, a10), a11 = _mm512_fmadd_ps(b, x1, a11); \
        b = _mm512_set1_ps((w)[2]), a20 = _mm512_fmadd_ps(b, x0, a20), a21 = _mm512_fmadd_ps(b, x1, a21); \
        b = _mm512_set1_ps((w)[3]), a30 = _mm512_fmadd_ps(b, x0, a30), a31 = _mm512_fmadd_ps(b, x1, a31); \
        b = _mm512_set1_ps((w)[4]), a40 = _mm512_fmadd_ps(b, x0, a40), a41 = _mm512_fmadd_ps(b, x1, a41); \
        b = _mm512_set1_ps((w)[5]), a50 = _mm512_fmadd_ps(b, x0, a50), a51 = _mm512_fmadd_ps(b, x1, a51); \
        b = _mm512_set1_ps((w)[6]), a60 = _mm512_fmadd_ps(b, x0, a60), a61 = _mm512_fmadd_ps(b, x1, a61); \
        b = _mm512_set1_ps((w)[7]), a70 = _mm512_fmadd_ps(b, x0, a70), a71 = _mm512_fmadd_ps(b, x1, a71); \
    } while (0)

#define PLANES(SRC, NI, LDS, LOAD0, LOAD1)                                         \
    for (int i = 0; i < (NI); i++) {                                               \
        const float *si = (SRC) + (size_t)i * (LDS) + t0;                          \
        for (int n = 0; n < nk; n++, w += BP_CD_OB) {                              \
            const float *p = si + off[n];                                          \
            __m512 x0 = LOAD0, x1 = LOAD1;                                         \
            FMA8(w);                                                               \
        }                                                                          \
    }

#define STORE(o, A0, A1)                                                           \
    if ((o) < nv && wq) {                                                          \
        float *q = out + (size_t)(ob + (o)) * ldo + yb;                            \
        __m512 bv = _mm512_set1_ps(bias ? bias[ob + (o)] : 0.0f);                  \
        __m512 r0 = _mm512_add_ps(A0, bv), r1 = _mm512_add_ps(A1, bv);             \
        if (accumulate) {                                                          \
            r0 = _mm512_add_ps(r0, _mm512_maskz_expandloadu_ps(v0, q));            \
            r1 = _mm512_add_ps(r1, _mm512_maskz_expandloadu_ps(v1, q + n0));       \
        }                                                                          \
        _mm512_mask_compressstoreu_ps(q, v0, r0);                                  \
        _mm512_mask_compressstoreu_ps(q + n0, v1, r1);                             \
    } else if ((o) < nv) {                                                         \
        float *q = out + (size_t)(ob + (o)) * ldo + t0;                            \
        __m512 r0 = A0, r1 = A1;                                                   \
        if (accumulate) {                                                          \
            r0 = _mm512_add_ps(r0, _mm512_maskz_loadu_ps(m0, q));                  \
            r1 = _mm512_add_ps(r1, _mm512_maskz_loadu_ps(m1, q + 16));             \
        }                                                                          \
        _mm512_mask_storeu_ps(q, m0, r0);                                          \
        _mm512_mask_storeu_ps(q + 16, m1, r1);                                     \
    }

/* With wq > 0 the output is an NCHW plane (row length ow, stride ldo per
 * channel) instead of the flat layout: position t = r*wq + c is stored at
 * r*ow + c when c < ow, dropped otherwise, with bias[o] added (bias may be
 * NULL); each half tile is one compress-store of its kept lanes (after an
 * expand-load to add to with accumulate), so no separate pass copies the
 * flat rows out. */
AVX512 static void run512(long T, int no, const float *src0, int ni0, long lds0, const float *src1,
                          int ni1, long lds1, int nk, const long *off, const float *wp, float *out,
                          long ldo, int accumulate, long wq, int ow, const float *bias)
{
    int ni = ni0 + ni1;
    for (int ob = 0; ob < no; ob += BP_CD_OB) {
        int nv = no - ob;
        const float *wb = wp + (size_t)ob * ni * nk;
        long c0 = 0, yb = 0; /* column of t0 in its row; NCHW index of the first kept t >= t0 */
        for (long t0 = 0; t0 < T; t0 += 32) {
            long rem = T - t0;
            __mmask16 m0 = rem >= 16 ? 0xFFFF : (__mmask16)((1u << rem) - 1);
            __mmask16 m1 = rem >= 32 ? 0xFFFF : rem > 16 ? (__mmask16)((1u << (rem - 16)) - 1) : 0;
            __mmask16 v0 = 0, v1 = 0;
            int n0 = 0;
            if (wq) {
                /* kept lanes: columns < ow of each row the tile touches */
                unsigned long long keep = 0;
                for (long l = -c0; l < 32; l += wq) {
                    long a = l < 0 ? 0 : l, b = l + ow;
                    if (b > 32)
                        b = 32;
                    if (b > a)
                        keep |= ((1ull << b) - 1) & ~((1ull << a) - 1);
                }
                v0 = (__mmask16)(keep & m0), v1 = (__mmask16)((keep >> 16) & m1);
                n0 = __builtin_popcount(v0);
            }
            __m512 a00 = _mm512_setzero_ps(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00,
                   a30 = a00, a31 = a00, a40 = a00, a41 = a00, a50 = a00, a51 = a00, a60 = a00,
                   a61 = a00, a70 = a00, a71 = a00;
            const float *w = wb;
            if (rem >= 32) {
                PLANES(src0, ni0, lds0, _mm512_loadu_ps(p), _mm512_loadu_ps(p + 16))
                PLANES(src1, ni1, lds1, _mm512_loadu_ps(p), _mm512_loadu_ps(p + 16))
            } else {
                PLANES(src0, ni0, lds0, _mm512_maskz_loadu_ps(m0, p), _mm512_maskz_loadu_ps(m1, p + 16))
                PLANES(src1, ni1, lds1, _mm512_maskz_loadu_ps(m0, p), _mm512_maskz_loadu_ps(m1, p + 16))
            }
            STORE(0, a00, a01)
            STORE(1, a10, a11)
            STORE(2, a20, a21)
            STORE(3, a30, a31)
            STORE(4, a40, a41)
            STORE(5, a50, a51)
            STORE(6, a60, a61)
            STORE(7, a70, a71)
            if (wq) {
                yb += n0 + __builtin_popcount(v1);
                c0 = (c0 + 32) % wq;
            }
        }
    }
}

void bp_cd_run(long T, int no, const bp_real *src0, int ni0, long lds0, const bp_real *src1,
               int ni1, long lds1, int nk, const long *off, const bp_real *wp, bp_real *out,
               long ldo, int accumulate)
{
    if (!src1)
        ni1 = 0;
    run512(T, no, src0, ni0, lds0, src1, ni1, lds1, nk, off, wp, out, ldo, accumulate, 0, 0, NULL);
}

void bp_cd_run_nchw(long T, int no, const bp_real *src0, int ni0, long lds0, const bp_real *src1,
                    int ni1, long lds1, int nk, const long *off, const bp_real *wp, bp_real *y,
                    long P, long Wq, int OW, const bp_real *bias, int accumulate)
{
    if (!src1)
        ni1 = 0;
    run512(T, no, src0, ni0, lds0, src1, ni1, lds1, nk, off, wp, y, P, accumulate, Wq, OW, bias);
}

/* ---- dW ---------------------------------------------------------------------- */

/* Rows r0 .. r0+7 of the transposed dW: row r reads plane r / K of the
 * term's input at tap offset xoff[r % K]. Rows past R repeat row r0 (a valid
 * address; their sums are not stored). */
static void dw_rows(const float *x, long lds, int K, const long *xoff, int r0, int R,
                    const float **rp)
{
    for (int q = 0; q < 8; q++) {
        int r = r0 + q < R ? r0 + q : r0;
        rp[q] = x + (size_t)(r / K) * lds + xoff[r % K];
    }
}

#define DWFMA(A0, A1, B, Y0, Y1) (A0 = _mm512_fmadd_ps(B, Y0, A0), A1 = _mm512_fmadd_ps(B, Y1, A1))

/* One output vector per row (16 of the transposed dW's columns, mask mk):
 * a_q0 sums even positions and a_q1 odd ones (two independent FMA chains
 * per row, and dy^T rows t and t+1 are adjacent in memory when ldm is 16). */
#define DW16_STEP(q, A0, A1)                                                       \
    do {                                                                           \
        A0 = _mm512_fmadd_ps(_mm512_set1_ps(rp[q][xo]), y0, A0);                   \
        A1 = _mm512_fmadd_ps(_mm512_set1_ps(rp[q][xo + 1]), y1, A1);               \
    } while (0)
#define DW16_LAST(q, A0) (A0 = _mm512_fmadd_ps(_mm512_set1_ps(rp[q][xo]), y0, A0))

#define DW_STORE(q, V0, V1)                                                        \
    if (r0 + (q) < R) {                                                            \
        float *o = dwt + (size_t)(r0 + (q)) * ldw + m0;                            \
        _mm512_mask_storeu_ps(o, k0, _mm512_add_ps(V0, _mm512_maskz_loadu_ps(k0, o))); \
        if (wide)                                                                  \
            _mm512_mask_storeu_ps(o + 16, k1, _mm512_add_ps(V1, _mm512_maskz_loadu_ps(k1, o + 16))); \
    }

AVX512 static void dw512(int R, int K, const long *xoff, int M, int nt, const float *const *xs,
                         long lds, const float *const *dyt, int ldm, int OH, int OW, long Wq,
                         float *dwt, int ldw)
{
    for (int r0 = 0; r0 < R; r0 += 8)
        for (int m0 = 0; m0 < M; m0 += 32) {
            int wide = M - m0 > 16, rem = M - m0;
            __mmask16 k0 = rem >= 16 ? 0xFFFF : (__mmask16)((1u << rem) - 1);
            __mmask16 k1 = rem >= 32 ? 0xFFFF : rem > 16 ? (__mmask16)((1u << (rem - 16)) - 1) : 0;
            __m512 a00 = _mm512_setzero_ps(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00,
                   a30 = a00, a31 = a00, a40 = a00, a41 = a00, a50 = a00, a51 = a00, a60 = a00,
                   a61 = a00, a70 = a00, a71 = a00;
            for (int k = 0; k < nt; k++) {
                const float *rp[8];
                dw_rows(xs[k], lds, K, xoff, r0, R, rp);
                const float *d = dyt[k] + m0;
                for (int oh = 0; oh < OH; oh++) {
                    long xo = (long)oh * Wq, xe = xo + OW;
                    if (wide) { /* 8 rows x 32 columns, one position per step */
                        for (; xo < xe; xo++, d += ldm) {
                            __m512 y0 = _mm512_loadu_ps(d), y1 = _mm512_loadu_ps(d + 16), b;
                            b = _mm512_set1_ps(rp[0][xo]), DWFMA(a00, a01, b, y0, y1);
                            b = _mm512_set1_ps(rp[1][xo]), DWFMA(a10, a11, b, y0, y1);
                            b = _mm512_set1_ps(rp[2][xo]), DWFMA(a20, a21, b, y0, y1);
                            b = _mm512_set1_ps(rp[3][xo]), DWFMA(a30, a31, b, y0, y1);
                            b = _mm512_set1_ps(rp[4][xo]), DWFMA(a40, a41, b, y0, y1);
                            b = _mm512_set1_ps(rp[5][xo]), DWFMA(a50, a51, b, y0, y1);
                            b = _mm512_set1_ps(rp[6][xo]), DWFMA(a60, a61, b, y0, y1);
                            b = _mm512_set1_ps(rp[7][xo]), DWFMA(a70, a71, b, y0, y1);
                        }
                        continue;
                    }
                    /* 8 rows x 16 columns, two positions per step */
                    for (; xo + 1 < xe; xo += 2, d += 2 * ldm) {
                        __m512 y0 = _mm512_loadu_ps(d), y1 = _mm512_loadu_ps(d + ldm);
                        DW16_STEP(0, a00, a01);
                        DW16_STEP(1, a10, a11);
                        DW16_STEP(2, a20, a21);
                        DW16_STEP(3, a30, a31);
                        DW16_STEP(4, a40, a41);
                        DW16_STEP(5, a50, a51);
                        DW16_STEP(6, a60, a61);
                        DW16_STEP(7, a70, a71);
                    }
                    if (xo < xe) {
                        __m512 y0 = _mm512_loadu_ps(d);
                        DW16_LAST(0, a00);
                        DW16_LAST(1, a10);
                        DW16_LAST(2, a20);
                        DW16_LAST(3, a30);
                        DW16_LAST(4, a40);
                        DW16_LAST(5, a50);
                        DW16_LAST(6, a60);
                        DW16_LAST(7, a70);
                        d += ldm;
                    }
                }
            }
            if (!wide) { /* fold the odd positions in */
                a00 = _mm512_add_ps(a00, a01), a10 = _mm512_add_ps(a10, a11);
                a20 = _mm512_add_ps(a20, a21), a30 = _mm512_add_ps(a30, a31);
                a40 = _mm512_add_ps(a40, a41), a50 = _mm512_add_ps(a50, a51);
                a60 = _mm512_add_ps(a60, a61), a70 = _mm512_add_ps(a70, a71);
            }
            DW_STORE(0, a00, a01)
            DW_STORE(1, a10, a11)
            DW_STORE(2, a20, a21)
            DW_STORE(3, a30, a31)
            DW_STORE(4, a40, a41)
            DW_STORE(5, a50, a51)
            DW_STORE(6, a60, a61)
            DW_STORE(7, a70, a71)
        }
}

void bp_cd_dw(int R, int K, const long *xoff, int M, int nt, const bp_real *const *xs, long lds,
              const bp_real *const *dyt, int ldm, int OH, int OW, long Wq, bp_real *dwt, int ldw)
{
    dw512(R, K, xoff, M, nt, xs, lds, dyt, ldm, OH, OW, Wq, dwt, ldw);
}

/* Sixteen channels of one position per gather (lanes past M masked to 0). */
AVX512 static void transpose512(int M, int P, const float *dy, int ld, float *dyt)
{
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    for (int m0 = 0; m0 < ld; m0 += 16) {
        int rem = M - m0;
        __mmask16 k = rem >= 16 ? 0xFFFF : rem > 0 ? (__mmask16)((1u << rem) - 1) : 0;
        __m512i idx = _mm512_mullo_epi32(lane, _mm512_set1_epi32(P));
        const float *base = dy + (size_t)m0 * P;
        for (int p = 0; p < P; p++)
            _mm512_storeu_ps(dyt + (size_t)p * ld + m0,
                             _mm512_mask_i32gather_ps(_mm512_setzero_ps(), k, idx, base + p, 4));
    }
}

void bp_cd_transpose(int M, int P, const bp_real *dy, int ld, bp_real *dyt)
{
    transpose512(M, P, dy, ld, dyt);
}

#else

int bp_cd_available(void) { return 0; }

void bp_cd_run(long T, int no, const bp_real *src0, int ni0, long lds0, const bp_real *src1,
               int ni1, long lds1, int nk, const long *off, const bp_real *wp, bp_real *out,
               long ldo, int accumulate)
{
    (void)T, (void)no, (void)src0, (void)ni0, (void)lds0, (void)src1, (void)ni1, (void)lds1;
    (void)nk, (void)off, (void)wp, (void)out, (void)ldo, (void)accumulate;
}

void bp_cd_dw(int R, int K, const long *xoff, int M, int nt, const bp_real *const *xs, long lds,
              const bp_real *const *dyt, int ldm, int OH, int OW, long Wq, bp_real *dwt, int ldw)
{
    (void)R, (void)K, (void)xoff, (void)M, (void)nt, (void)xs, (void)lds, (void)dyt, (void)ldm;
    (void)OH, (void)OW, (void)Wq, (void)dwt, (void)ldw;
}

void bp_cd_transpose(int M, int P, const bp_real *dy, int ld, bp_real *dyt)
{
    (void)M, (void)P, (void)dy, (void)ld, (void)dyt;
}

void bp_cd_run_nchw(long T, int no, const bp_real *src0, int ni0, long lds0, const bp_real *src1,
                    int ni1, long lds1, int nk, const long *off, const bp_real *wp, bp_real *y,
                    long P, long Wq, int OW, const bp_real *bias, int accumulate)
{
    (void)T, (void)no, (void)src0, (void)ni0, (void)lds0, (void)src1, (void)ni1, (void)lds1;
    (void)nk, (void)off, (void)wp, (void)y, (void)P, (void)Wq, (void)OW, (void)bias;
    (void)accumulate;
}

#endif
