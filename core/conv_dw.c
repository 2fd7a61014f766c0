/* conv_dw.c — depthwise convolution on phase planes; the layout is described
 * in conv_dw.h.
 *
 * The two loops that carry the arithmetic (a sum of shifted rows, and a dot
 * product per tap) are compiled three times: plain (SSE2 with the project's
 * flags), AVX2+FMA and AVX-512, picked once at run time from the CPU's
 * features. Everything else is copying. */
#include <string.h>

#include <omp.h>

#include "core/conv_dw.h"
#include "core/ops.h"

/* Reals a scratch buffer is rounded up to (64 bytes in float). */
#define ALIGN_R 16

static size_t round_up(size_t n) { return (n + ALIGN_R - 1) / ALIGN_R * ALIGN_R; }

void bp_dw_geom(bp_dwgeom *d, int C, int H, int W, int OH, int OW, int kh, int kw, int sh, int sw,
                int pt, int pl, int dh, int dw)
{
    d->C = C, d->H = H, d->W = W, d->OH = OH, d->OW = OW, d->kh = kh, d->kw = kw;
    d->sh = sh, d->sw = sw, d->pt = pt, d->pl = pl, d->dh = dh, d->dw = dw;
    /* padded rows/columns the forward reads: (O-1)*s + (k-1)*dil + 1 */
    int hneed = OH > 0 ? (OH - 1) * sh + (kh - 1) * dh + 1 : 1;
    int wneed = OW > 0 ? (OW - 1) * sw + (kw - 1) * dw + 1 : 1;
    int amax = (kh - 1) * dh / sh, bmax = (kw - 1) * dw / sw;
    d->Hq = (hneed + sh - 1) / sh;
    d->Wq = (wneed + sw - 1) / sw;
    /* Row gaps of at least bmax columns keep a tap's read of row r from
     * running into row r+1's data (the ceil above already gives it; kept
     * explicit because everything below relies on it). */
    if (d->Wq < OW + bmax)
        d->Wq = OW + bmax;
    if (d->Hq < OH + amax)
        d->Hq = OH + amax;
    d->plane = (long)d->Hq * d->Wq;
    d->T = OH > 0 && OW > 0 ? (long)(OH - 1) * d->Wq + OW : 0;
    d->lead = (long)amax * d->Wq + bmax;
}

/* Per thread: NSLOT packed inputs and NSLOT dy buffers (one per distinct
 * tensor of a backward call), the dx phase planes, the flat output, the dW
 * sums and the tap tables. */
#define NSLOT (BP_DW_MAX_GROUPS * BP_DW_MAX_TERMS)

static size_t xph_size(const bp_dwgeom *d) { return round_up((size_t)d->sh * d->sw * d->plane); }
static size_t dyb_size(const bp_dwgeom *d) { return round_up((size_t)(d->lead + d->plane)); }
static size_t tab_size(const bp_dwgeom *d)
{
    return round_up((3 * (size_t)d->kh * d->kw * sizeof(long) + sizeof(bp_real) - 1) / sizeof(bp_real));
}

size_t bp_dw_scratch(const bp_dwgeom *d)
{
    return NSLOT * (xph_size(d) + dyb_size(d)) + xph_size(d) + round_up((size_t)d->plane) +
           round_up((size_t)BP_DW_MAX_GROUPS * d->C * d->kh * d->kw) + tab_size(d);
}

/* Tap tables, for tap k = i*kw + j: it reads the packed input at xoff[k] + t
 * and, gathered backwards into dx, the dy buffer at yoff[k] + t; order[]
 * lists the taps by phase plane (a stable sort, so each phase sums its taps
 * in kernel order). Returns whether every phase plane has a tap. They live
 * in the thread's scratch: the kernel size has no bound and passes must not
 * allocate. */
typedef bp_dwtaps taps;

int bp_dw_tap_tables(const bp_dwgeom *d, void *mem, bp_dwtaps *tb)
{
    int khw = d->kh * d->kw, nph = d->sh * d->sw, n = 0, phases = 0;
    tb->xoff = (long *)mem;
    tb->yoff = tb->xoff + khw;
    tb->order = tb->yoff + khw;
    for (int ph = 0; ph < nph && n < khw; ph++) {
        int before = n;
        for (int k = 0; k < khw; k++) {
            int i = k / d->kw, j = k % d->kw, ri = i * d->dh, cj = j * d->dw;
            if ((ri % d->sh) * d->sw + cj % d->sw == ph)
                tb->order[n++] = k;
        }
        phases += n > before;
    }
    for (int k = 0; k < khw; k++) {
        int i = k / d->kw, j = k % d->kw, ri = i * d->dh, cj = j * d->dw;
        long ph = (ri % d->sh) * d->sw + cj % d->sw, shift = (long)(ri / d->sh) * d->Wq + cj / d->sw;
        tb->xoff[k] = ph * d->plane + shift;
        tb->yoff[k] = d->lead - shift;
    }
    return phases == nph;
}

int bp_dw_tap_phase(const bp_dwgeom *d, long k)
{
    int i = (int)k / d->kw, j = (int)k % d->kw;
    return (i * d->dh % d->sh) * d->sw + j * d->dw % d->sw;
}

/* ---- the arithmetic, three builds --------------------------------------------- */

/* out[t] (+)= sum_n w[m] * src[off[m] + t] for t < T, m = idx[n] (or n when
 * idx is NULL), n < nk; `set` makes the first tap write instead of add. */
#define DEFINE_TAPS(SFX, ATTR)                                                                \
    ATTR static void taps_sum_##SFX(long T, bp_real *restrict out, const bp_real *restrict src, \
                                    const long *off, const bp_real *w, const long *idx, int nk, \
                                    int set)                                                  \
    {                                                                                         \
        int n = 0;                                                                            \
        if (set && nk == 0)                                                                   \
            memset(out, 0, (size_t)T * sizeof *out);                                          \
        /* up to four taps per pass over out: fewer loads and stores of it */                \
        while (n < nk) {                                                                      \
            int m = nk - n < 4 ? nk - n : 4;                                                  \
            long i0 = idx ? idx[n] : n, i1 = m > 1 ? (idx ? idx[n + 1] : n + 1) : i0;         \
            long i2 = m > 2 ? (idx ? idx[n + 2] : n + 2) : i0;                                \
            long i3 = m > 3 ? (idx ? idx[n + 3] : n + 3) : i0;                                \
            const bp_real *restrict s0 = src + off[i0], *restrict s1 = src + off[i1];         \
            const bp_real *restrict s2 = src + off[i2], *restrict s3 = src + off[i3];         \
            bp_real a0 = w[i0], a1 = m > 1 ? w[i1] : 0, a2 = m > 2 ? w[i2] : 0;               \
            bp_real a3 = m > 3 ? w[i3] : 0;                                                   \
            if (set && n == 0)                                                                \
                _Pragma("omp simd") for (long t = 0; t < T; t++)                              \
                    out[t] = a0 * s0[t] + a1 * s1[t] + a2 * s2[t] + a3 * s3[t];               \
            else                                                                              \
                _Pragma("omp simd") for (long t = 0; t < T; t++)                              \
                    out[t] += a0 * s0[t] + a1 * s1[t] + a2 * s2[t] + a3 * s3[t];              \
            n += m;                                                                           \
        }                                                                                     \
    }                                                                                         \
    /* acc[k] += sum_t a[t] * src[off[k] + t] for t < T, k < nk */                            \
    ATTR static void taps_dot_##SFX(long T, const bp_real *restrict a, const bp_real *restrict src, \
                                    const long *off, int nk, bp_real *acc)                    \
    {                                                                                         \
        for (int k = 0; k < nk; k++) {                                                        \
            const bp_real *restrict s = src + off[k];                                         \
            bp_real sum = 0;                                                                  \
            _Pragma("omp simd reduction(+ : sum)") for (long t = 0; t < T; t++) sum += a[t] * s[t]; \
            acc[k] += sum;                                                                    \
        }                                                                                     \
    }

DEFINE_TAPS(plain, )
#if defined(__x86_64__) && defined(__GNUC__)
DEFINE_TAPS(avx2, __attribute__((target("avx2,fma"))))
DEFINE_TAPS(avx512, __attribute__((target("avx2,fma,avx512f,prefer-vector-width=512"))))
#endif

typedef struct {
    const char *name;
    void (*sum)(long, bp_real *restrict, const bp_real *restrict, const long *, const bp_real *,
                const long *, int, int);
    void (*dot)(long, const bp_real *restrict, const bp_real *restrict, const long *, int,
                bp_real *);
} kernels;

static const kernels k_plain = {"plain", taps_sum_plain, taps_dot_plain};
#if defined(__x86_64__) && defined(__GNUC__)
static const kernels k_avx2 = {"avx2", taps_sum_avx2, taps_dot_avx2};
static const kernels k_avx512 = {"avx512", taps_sum_avx512, taps_dot_avx512};
#endif

static const kernels *chosen = NULL;

static const kernels *best(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f"))
        return &k_avx512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return &k_avx2;
#endif
    return &k_plain;
}

/* The CPU is asked once (CPUID can trap to the hypervisor in a VM). Two
 * first callers racing store the same pointer. */
static const kernels *pick(void)
{
    const kernels *k = __atomic_load_n(&chosen, __ATOMIC_ACQUIRE);
    if (!k) {
        k = best();
        __atomic_store_n(&chosen, k, __ATOMIC_RELEASE);
    }
    return k;
}

int bp_dw_use_kernels(const char *name)
{
    const kernels *k = NULL;
    if (!name)
        k = best();
    else if (!strcmp(name, "plain"))
        k = &k_plain;
#if defined(__x86_64__) && defined(__GNUC__)
    else if (!strcmp(name, "avx2") && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        k = &k_avx2;
    else if (!strcmp(name, "avx512") && __builtin_cpu_supports("avx512f"))
        k = &k_avx512;
#endif
    if (!k)
        return 0;
    __atomic_store_n(&chosen, k, __ATOMIC_RELEASE);
    return 1;
}

/* ---- layout changes --------------------------------------------------------------- */

/* Every element of every phase plane is written (data or zero), so the
 * buffers need no clearing first. Rows are short (7 to 30 values): GCC would
 * turn the copy loops into memcpy/memset calls that cost more than the copy,
 * hence NO_LIBCALL. */
#if defined(__GNUC__) && !defined(__clang__)
#define NO_LIBCALL __attribute__((optimize("no-tree-loop-distribute-patterns")))
#else
#define NO_LIBCALL
#endif


/* Whether some tap reads phase row pr (col: phase column) of a kernel of k
 * taps at dilation dil and stride s. A 1x1 stride-2 conv reads one phase of
 * four; the others are not packed. */
static int phase_read(int p, int k, int dil, int s)
{
    for (int i = 0; i < k; i++)
        if (i * dil % s == p)
            return 1;
    return 0;
}

/* Phase column c reads input column c*sw + pc - pl (off = pc - pl): inside
 * [0, W) for c in [c0, c1). */
static void phase_cols(const bp_dwgeom *d, int pc, int *c0p, int *c1p, int *offp)
{
    int c0 = 0, c1 = d->Wq, off = pc - d->pl;
    if (off < 0)
        c0 = (-off + d->sw - 1) / d->sw;
    if (d->W - off <= 0)
        c1 = 0;
    else if ((d->W - off + d->sw - 1) / d->sw < c1)
        c1 = (d->W - off + d->sw - 1) / d->sw;
    if (c0 > c1)
        c0 = c1;
    *c0p = c0, *c1p = c1, *offp = off;
}

void bp_dw_phase_span(const bp_dwgeom *d, int ph, long *lo, long *hi)
{
    int pr = ph / d->sw, pc = ph % d->sw, c0, c1, off, r0 = -1, r1 = -1;
    phase_cols(d, pc, &c0, &c1, &off);
    for (int r = 0; r < d->Hq; r++) {
        int h = r * d->sh + pr - d->pt;
        if (h >= 0 && h < d->H) {
            if (r0 < 0)
                r0 = r;
            r1 = r;
        }
    }
    if (r0 < 0 || c0 >= c1) {
        *lo = *hi = 0;
        return;
    }
    *lo = (long)r0 * d->Wq + c0;
    *hi = (long)r1 * d->Wq + c1;
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(BP_F64)
#include <immintrin.h>
/* Asks for the n reals at p, the plane the caller packs next, to be brought
 * into L1 while this one is packed: planes are a few KB and cross 4 KB pages
 * often, where the hardware prefetcher starts over, and the packing stalled
 * on those loads (~1% of a ResNet-8 HVP; the same for dy and dx measured no
 * gain). Prefetches do not fault, so p may run past the tensor. */
static void prefetch_next(const bp_real *p, size_t n)
{
    for (const char *c = (const char *)p, *e = (const char *)(p + n); c < e; c += 64)
        __builtin_prefetch(c, 0, 3);
}

#define PACK512_MAXCH 16 /* 16-column chunks per row: Wq <= 256 */

/* Lanes [a, b) of a 16-lane mask, clipped to [0, 16). */
static __mmask16 lane_range(int a, int b)
{
    a = a < 0 ? 0 : a > 16 ? 16 : a;
    b = b < 0 ? 0 : b > 16 ? 16 : b;
    return b > a ? (__mmask16)(((1u << b) - 1) & ~((1u << a) - 1)) : 0;
}

/* bp_dw_pack for sw 1 or 2 with AVX-512: per 16-column chunk of a row one
 * masked load (two and a permute for sw 2: even input columns) and one
 * store. The masks depend only on the chunk, so they are made once per phase
 * plane; the plain loops (a short copy and two fills per row, and a scalar
 * gather for stride 2) took 3-4 times as long. Masked-off lanes are not
 * read, so nothing outside the sources of [c0, c1) is touched (for sw 2 the
 * odd columns between them, inside the same input row). */
__attribute__((target("avx512f"))) static void pack512(const bp_dwgeom *d, const float *x, float *xph)
{
    const __m512i evens = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512 zero = _mm512_setzero_ps();
    int nch = (d->Wq + 15) / 16;
    __mmask16 st[PACK512_MAXCH], v[PACK512_MAXCH], lo[PACK512_MAXCH], hi[PACK512_MAXCH];
    prefetch_next(x + (size_t)d->H * d->W, (size_t)d->H * d->W);
    for (int pr = 0; pr < d->sh; pr++) {
        if (!phase_read(pr, d->kh, d->dh, d->sh))
            continue;
        for (int pc = 0; pc < d->sw; pc++) {
            if (!phase_read(pc, d->kw, d->dw, d->sw))
                continue;
            float *pp = xph + (size_t)(pr * d->sw + pc) * d->plane;
            int c0, c1, off;
            phase_cols(d, pc, &c0, &c1, &off);
            for (int j = 0; j < nch; j++) {
                int b = 16 * j;
                st[j] = lane_range(0, d->Wq - b);
                v[j] = lane_range(c0 - b, c1 - b);
                lo[j] = lane_range(2 * (c0 - b), 2 * (c1 - b) - 1);
                hi[j] = lane_range(2 * (c0 - b) - 16, 2 * (c1 - b) - 17);
            }
            for (int r = 0; r < d->Hq; r++) {
                float *row = pp + (size_t)r * d->Wq;
                int h = r * d->sh + pr - d->pt;
                if (h < 0 || h >= d->H) {
                    for (int j = 0; j < nch; j++)
                        _mm512_mask_storeu_ps(row + 16 * j, st[j], zero);
                    continue;
                }
                const float *xr = x + (size_t)h * d->W + off;
                if (d->sw == 1)
                    for (int j = 0; j < nch; j++)
                        _mm512_mask_storeu_ps(row + 16 * j, st[j],
                                              _mm512_maskz_loadu_ps(v[j], xr + 16 * j));
                else
                    for (int j = 0; j < nch; j++) {
                        __m512 a = _mm512_maskz_loadu_ps(lo[j], xr + 32 * j);
                        __m512 b = _mm512_maskz_loadu_ps(hi[j], xr + 32 * j + 16);
                        _mm512_mask_storeu_ps(row + 16 * j, st[j],
                                              _mm512_maskz_permutex2var_ps(v[j], a, evens, b));
                    }
            }
        }
    }
}
#endif

/* xph <- phase planes of one input plane x (H x W), zeros outside it. */
NO_LIBCALL void bp_dw_pack(const bp_dwgeom *d, const bp_real *restrict x, bp_real *restrict xph)
{
#if defined(__x86_64__) && defined(__GNUC__) && !defined(BP_F64)
    if (d->sw <= 2 && d->Wq <= 16 * PACK512_MAXCH && pick() == &k_avx512) {
        pack512(d, x, xph);
        return;
    }
#endif
    for (int pr = 0; pr < d->sh; pr++)
        for (int pc = 0; pc < d->sw; pc++) {
            if (!phase_read(pr, d->kh, d->dh, d->sh) || !phase_read(pc, d->kw, d->dw, d->sw))
                continue;
            bp_real *restrict pp = xph + (size_t)(pr * d->sw + pc) * d->plane;
            int c0, c1, off;
            phase_cols(d, pc, &c0, &c1, &off);
            for (int r = 0; r < d->Hq; r++) {
                bp_real *restrict row = pp + (size_t)r * d->Wq;
                int h = r * d->sh + pr - d->pt;
                if (h < 0 || h >= d->H || c0 == c1) {
                    for (int c = 0; c < d->Wq; c++)
                        row[c] = 0;
                    continue;
                }
                const bp_real *restrict xr = x + (size_t)h * d->W + off;
                for (int c = 0; c < c0; c++)
                    row[c] = 0;
                if (d->sw == 1)
#pragma omp simd
                    for (int c = c0; c < c1; c++)
                        row[c] = xr[c];
                else
                    for (int c = c0; c < c1; c++)
                        row[c] = xr[(long)c * d->sw];
                for (int c = c1; c < d->Wq; c++)
                    row[c] = 0;
            }
        }
}

/* dyb <- lead zeros, then dy (OH x OW) with row stride Wq, zeros after. */
NO_LIBCALL void bp_dw_pack_dy(const bp_dwgeom *d, const bp_real *restrict dy, bp_real *restrict dyb)
{
    for (long t = 0; t < d->lead; t++)
        dyb[t] = 0;
    bp_real *restrict base = dyb + d->lead;
    for (int r = 0; r < d->Hq; r++) {
        bp_real *restrict row = base + (size_t)r * d->Wq;
        int ow = 0;
        if (r < d->OH) {
            const bp_real *restrict src = dy + (size_t)r * d->OW;
#pragma omp simd
            for (int c = 0; c < d->OW; c++)
                row[c] = src[c];
            ow = d->OW;
        }
        for (int c = ow; c < d->Wq; c++)
            row[c] = 0;
    }
}

/* Whether every input position lies in a phase plane some tap reads (then
 * unpacking writes each of them once). */
static int covers_input(const bp_dwgeom *d)
{
    long n = 0;
    for (int ph = 0; ph < d->sh * d->sw; ph++) {
        int pr = ph / d->sw, pc = ph % d->sw, c0, c1, off, rows = 0;
        if (!phase_read(pr, d->kh, d->dh, d->sh) || !phase_read(pc, d->kw, d->dw, d->sw))
            continue;
        phase_cols(d, pc, &c0, &c1, &off);
        for (int r = 0; r < d->Hq; r++) {
            int h = r * d->sh + pr - d->pt;
            rows += h >= 0 && h < d->H;
        }
        n += (long)rows * (c1 - c0);
    }
    return n == (long)d->H * d->W;
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(BP_F64)
/* One row of a stride-1 unpack: xr[c] (+)= src[c] for c in [c0, c1). */
__attribute__((target("avx512f"))) static void unpack_row512(const float *src, float *xr, int c0,
                                                             int c1, int set)
{
    for (int c = c0; c < c1; c += 16) {
        __mmask16 m = lane_range(0, c1 - c);
        __m512 v = _mm512_maskz_loadu_ps(m, src + c);
        if (!set)
            v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, xr + c));
        _mm512_mask_storeu_ps(xr + c, m, v);
    }
}
#endif

/* dx (H x W) += (or, with set, =) the phase planes dxph read back in input
 * coordinates. Phase planes no tap reads are skipped (their gradient is
 * zero, and they may hold garbage). Input positions past the last phase row
 * or column were never read by the forward: their gradient is zero. */
static NO_LIBCALL void unpack(const bp_dwgeom *d, const bp_real *restrict dxph,
                              bp_real *restrict dx, int set)
{
    if (set && !covers_input(d)) {
        memset(dx, 0, (size_t)d->H * d->W * sizeof *dx);
        set = 0;
    }
#if defined(__x86_64__) && defined(__GNUC__) && !defined(BP_F64)
    int v512 = d->sw == 1 && pick() == &k_avx512;
#endif
    for (int pr = 0; pr < d->sh; pr++)
        for (int pc = 0; pc < d->sw; pc++) {
            if (!phase_read(pr, d->kh, d->dh, d->sh) || !phase_read(pc, d->kw, d->dw, d->sw))
                continue;
            const bp_real *restrict pp = dxph + (size_t)(pr * d->sw + pc) * d->plane;
            /* input column w = c*sw + pc - pl for c in [c0, c1) */
            int c0, c1, off;
            phase_cols(d, pc, &c0, &c1, &off);
            for (int r = 0; r < d->Hq && c0 < c1; r++) {
                int h = r * d->sh + pr - d->pt;
                if (h < 0 || h >= d->H)
                    continue;
                bp_real *restrict xr = dx + (size_t)h * d->W + off;
                const bp_real *restrict src = pp + (size_t)r * d->Wq;
#if defined(__x86_64__) && defined(__GNUC__) && !defined(BP_F64)
                if (v512) {
                    unpack_row512(src, xr, c0, c1, set);
                    continue;
                }
#endif
                if (d->sw == 1 && set)
#pragma omp simd
                    for (int c = c0; c < c1; c++)
                        xr[c] = src[c];
                else if (d->sw == 1)
#pragma omp simd
                    for (int c = c0; c < c1; c++)
                        xr[c] += src[c];
                else if (set)
                    for (int c = c0; c < c1; c++)
                        xr[(long)c * d->sw] = src[c];
                else
                    for (int c = c0; c < c1; c++)
                        xr[(long)c * d->sw] += src[c];
            }
        }
}

void bp_dw_unpack_add(const bp_dwgeom *d, const bp_real *dxph, bp_real *dx)
{
    unpack(d, dxph, dx, 0);
}

void bp_dw_unpack_set(const bp_dwgeom *d, const bp_real *dxph, bp_real *dx)
{
    unpack(d, dxph, dx, 1);
}

/* ---- forward ------------------------------------------------------------------------ */

void bp_dw_forward(const bp_dwgeom *d, int N, const bp_real *x0, const bp_real *w0,
                   const bp_real *x1, const bp_real *w1, const bp_real *bias, bp_real *y,
                   int accumulate, bp_real *scratch, int nth)
{
    const kernels *K = pick();
    const bp_real *xs[2] = {x0, x1}, *ws[2] = {w0, w1};
    int khw = d->kh * d->kw;
    size_t per = bp_dw_scratch(d), in = (size_t)d->H * d->W, out = (size_t)d->OH * d->OW;
    size_t tab = per - tab_size(d);
#pragma omp parallel num_threads(nth) if (BIG((size_t)N * d->C * d->plane * khw))
    {
        bp_real *xph = scratch + per * omp_get_thread_num();
        bp_real *flat = xph + xph_size(d);
        taps tb;
        bp_dw_tap_tables(d, xph + tab, &tb);
#pragma omp for collapse(2) schedule(static)
        for (int s = 0; s < N; s++)
            for (int ch = 0; ch < d->C; ch++) {
                size_t pi = (size_t)s * d->C + ch;
                int set = 1;
                for (int k = 0; k < 2; k++) {
                    if (!xs[k] || !ws[k])
                        continue;
                    bp_dw_pack(d, xs[k] + pi * in, xph);
                    K->sum(d->T, flat, xph, tb.xoff, ws[k] + (size_t)ch * khw, NULL, khw, set);
                    set = 0;
                }
                bp_real bv = bias ? bias[ch] : 0;
                bp_real *restrict yp = y + pi * out;
                for (int oh = 0; oh < d->OH; oh++) {
                    bp_real *restrict yr = yp + (size_t)oh * d->OW;
                    const bp_real *restrict fr = flat + (size_t)oh * d->Wq;
                    if (set) /* no term: bias only */
#pragma omp simd
                        for (int ow = 0; ow < d->OW; ow++)
                            yr[ow] = (accumulate ? yr[ow] : 0) + bv;
                    else if (accumulate)
#pragma omp simd
                        for (int ow = 0; ow < d->OW; ow++)
                            yr[ow] += fr[ow] + bv;
                    else
#pragma omp simd
                        for (int ow = 0; ow < d->OW; ow++)
                            yr[ow] = fr[ow] + bv;
                }
            }
    }
}

/* ---- backward ----------------------------------------------------------------------- */

/* One slot per distinct tensor: returns the index of p in keys, adding it. */
static int slot_of(const bp_real **keys, int *n, const bp_real *p)
{
    for (int i = 0; i < *n; i++)
        if (keys[i] == p)
            return i;
    keys[*n] = p;
    return (*n)++;
}

void bp_dw_backward(const bp_dwgeom *d, int N, const bp_dwgroup *gr, int ngr, bp_real *scratch,
                    int nth)
{
    const kernels *K = pick();
    int khw = d->kh * d->kw;
    size_t per = bp_dw_scratch(d), in = (size_t)d->H * d->W, out = (size_t)d->OH * d->OW;
    size_t sx = xph_size(d), sy = dyb_size(d);

    /* Which packed x (for dW) and dy each term uses, -1 when the term adds
     * nothing there: the HVP's backward shares x between dW and R{dW}, and
     * dy between dx, dW and the R-terms, so each is packed once per plane. */
    const bp_real *xkey[NSLOT], *ykey[NSLOT];
    int nx = 0, ny = 0, xs[BP_DW_MAX_GROUPS][BP_DW_MAX_TERMS], ys[BP_DW_MAX_GROUPS][BP_DW_MAX_TERMS];
    int dxs[BP_DW_MAX_GROUPS][BP_DW_MAX_TERMS];
    for (int q = 0; q < ngr; q++)
        for (int k = 0; k < gr[q].nt; k++) {
            const bp_dwterm *t = &gr[q].t[k];
            int to_dw = t->dy && t->x && gr[q].dw, to_dx = t->dy && t->w && gr[q].dx;
            xs[q][k] = to_dw ? slot_of(xkey, &nx, t->x) : -1;
            ys[q][k] = to_dw || to_dx ? slot_of(ykey, &ny, t->dy) : -1;
            dxs[q][k] = to_dx;
        }
    if (!ny)
        return;

#pragma omp parallel num_threads(nth) if (BIG((size_t)N * d->C * d->plane * khw))
    {
        bp_real *base = scratch + per * omp_get_thread_num();
        bp_real *xb = base, *yb = xb + NSLOT * sx, *dxph = yb + NSLOT * sy;
        bp_real *wacc = dxph + sx + round_up((size_t)d->plane);
        taps tb;
        int all_phases = bp_dw_tap_tables(d, base + per - tab_size(d), &tb);
        size_t nw = (size_t)d->C * khw;
        memset(wacc, 0, ngr * nw * sizeof *wacc);
#pragma omp for schedule(static)
        for (int s = 0; s < N; s++) {
            for (int ch = 0; ch < d->C; ch++) {
                size_t pi = (size_t)s * d->C + ch;
                for (int i = 0; i < nx; i++)
                    bp_dw_pack(d, xkey[i] + pi * in, xb + i * sx);
                for (int i = 0; i < ny; i++)
                    bp_dw_pack_dy(d, ykey[i] + pi * out, yb + i * sy);
                for (int q = 0; q < ngr; q++) {
                    /* dW: one dot product per tap and term */
                    for (int k = 0; k < gr[q].nt; k++)
                        if (xs[q][k] >= 0)
                            K->dot(d->T, yb + ys[q][k] * sy + d->lead, xb + xs[q][k] * sx, tb.xoff,
                                   khw, wacc + q * nw + (size_t)ch * khw);
                    int any = 0;
                    for (int k = 0; k < gr[q].nt; k++)
                        any |= dxs[q][k];
                    if (!any)
                        continue;
                    /* dx: each phase plane gathers its taps from every term */
                    if (!all_phases) /* planes no tap reaches stay zero */
                        memset(dxph, 0, (size_t)d->sh * d->sw * d->plane * sizeof *dxph);
                    for (int n0 = 0; n0 < khw;) {
                        int ph = bp_dw_tap_phase(d, tb.order[n0]), n1 = n0 + 1;
                        while (n1 < khw && bp_dw_tap_phase(d, tb.order[n1]) == ph)
                            n1++;
                        bp_real *dst = dxph + (size_t)ph * d->plane;
                        int set = all_phases;
                        for (int k = 0; k < gr[q].nt; k++) {
                            if (!dxs[q][k])
                                continue;
                            K->sum(d->plane, dst, yb + ys[q][k] * sy, tb.yoff,
                                   gr[q].t[k].w + (size_t)ch * khw, tb.order + n0, n1 - n0, set);
                            set = 0;
                        }
                        n0 = n1;
                    }
                    bp_dw_unpack_add(d, dxph, gr[q].dx + pi * in);
                }
            }
        }
        /* the loop above ends with a barrier: every partial is complete */
        int nthr = omp_get_num_threads();
        for (int q = 0; q < ngr; q++) {
            if (!gr[q].dw)
                continue;
#pragma omp for schedule(static)
            for (size_t i = 0; i < nw; i++) {
                bp_real acc = gr[q].dw[i];
                for (int th = 0; th < nthr; th++)
                    acc += (scratch + per * th + (wacc - base))[q * nw + i];
                gr[q].dw[i] = acc;
            }
        }
    }
}
