/* kern_amx.c — int8 convs on AMX tiles (Intel AMX-TILE + AMX-INT8), for
 * every conv that is not depthwise.
 *
 * Implicit GEMM without im2col. Per image and group the input is rewritten
 * once into channel quads: Q[cq][slot][y][x][t] = padded input of channel
 * 4·cq + t at row y·sh + py, column x·sw + px, where slot is one (py, px)
 * stride phase that some tap uses (stride 1: the zero-padded image itself).
 * A phase plane is hps × wps. Output pixel (oy, ox) is computed at the "flat"
 * position f = oy·wps + ox: tap (ky, kx) then reads Q at f + dy·wps + dx in
 * phase ((ky·dil_h) mod sh, (kx·dil_w) mod sw) with dy, dx the quotients, so
 * 16 consecutive flats of one channel quad are 64 contiguous bytes, and 16
 * channel quads, one plane apart, form a B tile (rows = K quads, columns =
 * 16 pixels × 4 bytes) that tileloadd reads in place. Flats with ox >= ow
 * (and past the last row) are computed and never stored.
 *
 * The GEMM's K runs over (tap, channel quad) instead of the panel's
 * (channel, tap): integer sums do not depend on order. Weights are repacked
 * once per panel into A tiles, 16 output channels × 4·kc bytes (kc channel
 * quads, K chunks of at most 64 bytes), and kept in a small process-wide cache
 * keyed by the panel's address and geometry and checked against a copy of
 * the panel's bytes on every call, so a panel rewritten in place (or freed
 * and reallocated) is never served stale. This is the one allocation in the
 * integer kernels: repacking costs more than a whole batch-1 conv.
 *
 * Signed inputs use tdpbssd, unsigned tdpbusd's mirror tdpbsud (signed
 * weights in A, unsigned activations in B): no +128 shift. The tiles
 * accumulate in int32 with wrap-around, exact while the true sum fits (the
 * caller's guarantee, qkernels.h). C tiles are 16 channels × 16 flats, two by
 * two (32 channels × 32 flats) or one by four when a group has at most 16
 * channels; the epilogue stores them, adds the bias, requantizes 16 lanes at a
 * time bit-exactly with bp_requant (or calls it for left shifts), clamps and
 * scatters each output row's run of flats with a compress and a masked store.
 *
 * AMX needs the OS to enable tile data for the process (Linux:
 * arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)); bp_qk_amx_usable asks
 * once. Functions carry target attributes so the file builds with the
 * project's common flags. Integer-only. */
#include <cpuid.h>
#include <immintrin.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "quant/kern_internal.h"

#define AMX __attribute__((target("amx-tile,amx-int8,avx2,avx512f,avx512bw,avx512vl,avx512vbmi")))

#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18
#define MAX_TAPS 64
#define MAX_STRIDE 4

/* ---- detection ------------------------------------------------------------ */

static atomic_int amx_state; /* 0 not yet asked, 1 usable, 2 not */

int bp_qk_amx_usable(void)
{
    int s = atomic_load_explicit(&amx_state, memory_order_acquire);
    if (s)
        return s == 1;
    unsigned a, b, c, d, a1, b1, c1, d1;
    /* leaf 7: EDX 24 AMX-TILE, 25 AMX-INT8; ECX 1 AVX512_VBMI (the strided
     * gathers); leaf 1 ECX 27 OSXSAVE before xgetbv; XCR0 17/18: tile
     * config and data state enabled by the OS */
    int ok = __get_cpuid_count(7, 0, &a, &b, &c, &d) && (d >> 24 & 1) && (d >> 25 & 1) &&
             (c >> 1 & 1) && __get_cpuid(1, &a1, &b1, &c1, &d1) && (c1 >> 27 & 1);
    if (ok) {
        unsigned lo, hi;
        __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
        (void)hi;
        ok = (lo >> 17 & 3) == 3;
    }
    /* Linux keeps tile data off until a process asks; a refusal (old kernel,
     * seccomp) means no AMX, not an error */
    if (ok)
        ok = syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
    atomic_store_explicit(&amx_state, ok ? 1 : 2, memory_order_release);
    return ok;
}

/* ---- geometry -------------------------------------------------------------- */

typedef struct {
    int cig, cog, khw, k;
    int nch, kc, cqp;  /* K chunks per tap, channel quads per chunk, nch·kc */
    int wide;          /* 1: 2x2 C tiles (32 channels); 0: 1x4 (16 channels) */
    int nmb;           /* 16-row blocks per group (even when wide) */
    int sh, sw, hps, wps, nslot;
    int slot_of[MAX_STRIDE * MAX_STRIDE];
    int slot_py[MAX_STRIDE * MAX_STRIDE], slot_px[MAX_STRIDE * MAX_STRIDE];
    int nbmax;         /* images per pass over Q */
    size_t tile_bytes; /* one A tile: 16 · 4·kc */
} amx_geom;

static int geom_of(const bp_qconv_params *p, amx_geom *gm)
{
    const int cig = p->cin / p->group, cog = p->cout / p->group;
    if (cig == 1 && cog == 1)
        return 0; /* depthwise */
    if (p->kh * p->kw > MAX_TAPS || p->stride_h > MAX_STRIDE || p->stride_w > MAX_STRIDE)
        return 0;
    int oh, ow;
    bp_qconv_out_hw(p, &oh, &ow);
    gm->cig = cig, gm->cog = cog, gm->khw = p->kh * p->kw, gm->k = cig * gm->khw;
    const int cq = (cig + 3) / 4;
    gm->nch = (cq + 15) / 16;
    gm->kc = (cq + gm->nch - 1) / gm->nch;
    gm->cqp = gm->nch * gm->kc;
    const int rb = (cog + 15) / 16;
    gm->wide = rb > 1;
    gm->nmb = gm->wide ? (rb + 1) / 2 * 2 : 1;
    if (gm->nmb > 64)
        return 0;
    gm->sh = p->stride_h, gm->sw = p->stride_w;
    int rows = p->h + p->pad_t + p->pad_b, need = (oh - 1) * p->stride_h + (p->kh - 1) * p->dil_h + 1;
    int cols = p->w + p->pad_l + p->pad_r, needw = (ow - 1) * p->stride_w + (p->kw - 1) * p->dil_w + 1;
    rows = need > rows ? need : rows;
    cols = needw > cols ? needw : cols;
    gm->hps = (rows + gm->sh - 1) / gm->sh;
    gm->wps = (cols + gm->sw - 1) / gm->sw;
    for (int i = 0; i < MAX_STRIDE * MAX_STRIDE; i++)
        gm->slot_of[i] = -1;
    gm->nslot = 0;
    for (int ky = 0; ky < p->kh; ky++)
        for (int kx = 0; kx < p->kw; kx++) {
            int ph = (ky * p->dil_h) % gm->sh * MAX_STRIDE + (kx * p->dil_w) % gm->sw;
            if (gm->slot_of[ph] < 0) {
                gm->slot_py[gm->nslot] = (ky * p->dil_h) % gm->sh;
                gm->slot_px[gm->nslot] = (kx * p->dil_w) % gm->sw;
                gm->slot_of[ph] = gm->nslot++;
            }
        }
    gm->tile_bytes = (size_t)16 * 4 * gm->kc;
    /* several small images per pass fill the 16-pixel tiles better; Q stays
     * within about 256 KiB (L2) */
    const size_t per_img = (size_t)gm->cqp * gm->nslot * gm->hps * gm->wps * 4;
    gm->nbmax = per_img >= (256u << 10) ? 1 : (int)((256u << 10) / per_img);
    if (gm->nbmax > 64)
        gm->nbmax = 64;
    return 1;
}

/* Pixels of slack after the last plane: flats run up to 63 past the last
 * output row, taps reach one plane row and a tile row further. */
static size_t q_slack(const amx_geom *gm) { return (size_t)gm->wps + 192; }

size_t bp_qk_amx_scratch(const bp_qconv_params *p)
{
    amx_geom gm;
    if (p->group < 1 || p->cin < p->group || p->cout < p->group || !geom_of(p, &gm))
        return 0;
    const size_t lq = (size_t)gm.nslot * gm.nbmax * gm.hps * gm.wps;
    size_t q = ((size_t)gm.cqp * lq + q_slack(&gm)) * 4, t = 4 * lq;
    size_t rows = (size_t)gm.nmb * 16;
    return 64 + (q + 63) / 64 * 64 + (t + 63) / 64 * 64 + 4 * 1024 + 6 * rows * 4 + 64;
}

/* ---- weight cache ------------------------------------------------------------ */

typedef struct {
    const uint8_t *panel;
    size_t pbytes;
    int group, cog, cig, kh, kw, wbits;
    uint8_t *copy;   /* the panel's bytes when packed */
    uint8_t *packed; /* group · nmb · khw · nch A tiles */
    int refs;
    unsigned long stamp;
} wentry;

#define NCACHE 16
static wentry cache[NCACHE];
static atomic_flag cache_lock = ATOMIC_FLAG_INIT;
static unsigned long cache_clock;

static void lock(void)
{
    while (atomic_flag_test_and_set_explicit(&cache_lock, memory_order_acquire))
        ;
}
static void unlock(void) { atomic_flag_clear_explicit(&cache_lock, memory_order_release); }

static size_t packed_bytes(const bp_qconv_params *p, const amx_geom *gm)
{
    return (size_t)p->group * gm->nmb * gm->khw * gm->nch * gm->tile_bytes;
}

static void pack_weights(const bp_qconv_params *p, const amx_geom *gm, const uint8_t *wpanel, uint8_t *dst)
{
    const size_t gbytes = bp_qk_group_bytes(gm->cog, gm->k, p->wbits);
    const size_t per_group = (size_t)gm->nmb * gm->khw * gm->nch * gm->tile_bytes;
    memset(dst, 0, packed_bytes(p, gm));
    for (int g = 0; g < p->group; g++) {
        const uint8_t *gp = wpanel + (size_t)g * gbytes;
        uint8_t *gd = dst + (size_t)g * per_group;
        for (int r = 0; r < gm->cog; r++)
            for (int ci = 0; ci < gm->cig; ci++)
                for (int tap = 0; tap < gm->khw; tap++) {
                    const int cq = ci / 4, ch = cq / gm->kc, qi = cq % gm->kc;
                    size_t at = (((size_t)(r / 16) * gm->khw + tap) * gm->nch + ch) * gm->tile_bytes +
                                (size_t)(r % 16) * 4 * gm->kc + 4 * qi + ci % 4;
                    gd[at] = (uint8_t)(int8_t)bp_qk_get(gp, gm->k, p->wbits, r, ci * gm->khw + tap);
                }
    }
}

/* The packed weights of wpanel, or NULL (allocation failed, every entry in
 * use): the caller then takes another kernel. Pair with release_weights. */
static wentry *acquire_weights(const bp_qconv_params *p, const amx_geom *gm, const uint8_t *wpanel)
{
    const size_t pbytes = (size_t)p->group * bp_qk_group_bytes(gm->cog, gm->k, p->wbits);
    lock();
    wentry *hit = NULL, *victim = NULL;
    for (int i = 0; i < NCACHE; i++) {
        wentry *e = &cache[i];
        if (e->panel == wpanel && e->pbytes == pbytes && e->group == p->group && e->cog == gm->cog &&
            e->cig == gm->cig && e->kh == p->kh && e->kw == p->kw && e->wbits == p->wbits &&
            (e->refs == 0 || !memcmp(e->copy, wpanel, pbytes))) {
            hit = e;
            break;
        }
        if (e->refs == 0 && (!victim || e->stamp < victim->stamp))
            victim = e;
    }
    if (hit && !memcmp(hit->copy, wpanel, pbytes)) {
        hit->refs++;
        hit->stamp = ++cache_clock;
        unlock();
        return hit;
    }
    wentry *e = hit ? hit : victim; /* a hit here is stale and unused: refill it */
    if (!e) {
        unlock();
        return NULL;
    }
    free(e->copy);
    free(e->packed);
    memset(e, 0, sizeof *e);
    e->copy = malloc(pbytes);
    e->packed = malloc(packed_bytes(p, gm));
    if (!e->copy || !e->packed) {
        free(e->copy);
        free(e->packed);
        memset(e, 0, sizeof *e);
        unlock();
        return NULL;
    }
    memcpy(e->copy, wpanel, pbytes);
    pack_weights(p, gm, wpanel, e->packed);
    e->panel = wpanel, e->pbytes = pbytes, e->group = p->group, e->cog = gm->cog, e->cig = gm->cig;
    e->kh = p->kh, e->kw = p->kw, e->wbits = p->wbits;
    e->refs = 1;
    e->stamp = ++cache_clock;
    unlock();
    return e;
}

static void release_weights(wentry *e)
{
    lock();
    e->refs--;
    unlock();
}

/* ---- input to channel quads ------------------------------------------------- */

/* Q holds nb images of a group: Q[cq][slot][image][y][x][t], one channel quad
 * every lq(nb) pixels; flat f = image·img + y·wps + x. Built per channel quad
 * in two steps: (a) each of its 4 channels' padded phase planes into T (row
 * runs: one masked load of the source window, lanes outside the image zero
 * = padding, vpermb picking every sw-th byte, one masked store of the run);
 * (b) the 4 planes interleaved into quads 64 pixels at a time (the last 64
 * may spill past the quad's planes; what comes next, or the slack, takes
 * it). */
typedef struct {
    int ix0;         /* source column of the run's first byte */
    __mmask64 lm;    /* source bytes inside the image */
    __mmask64 sm;    /* destination bytes of the run */
} xrun;

#define MAX_RUNS 512

static size_t img_px(const amx_geom *gm) { return (size_t)gm->hps * gm->wps; }
static size_t lq_of(const amx_geom *gm, int nb) { return (size_t)gm->nslot * nb * img_px(gm); }

/* Runs of one phase row per slot: run x0 = c·cl covers destination columns
 * x0 .. x0+cl−1 from 64/sw-wide source windows. */
static int row_runs(const bp_qconv_params *p, const amx_geom *gm, xrun *runs, int *nxc)
{
    const int sw = gm->sw, cl = 64 / sw, wps = gm->wps;
    *nxc = (wps + cl - 1) / cl;
    if (*nxc * gm->nslot > MAX_RUNS)
        return 0;
    for (int slot = 0; slot < gm->nslot; slot++)
        for (int c = 0; c < *nxc; c++) {
            xrun *r = &runs[slot * *nxc + c];
            const int x0 = c * cl, ix0 = x0 * sw + gm->slot_px[slot] - p->pad_l;
            int lo = -ix0 > 0 ? -ix0 : 0, hi = p->w - ix0 < cl * sw ? p->w - ix0 : cl * sw;
            uint64_t m = 0;
            if (hi > lo)
                m = (hi >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << hi) - 1)) & ~(((uint64_t)1 << lo) - 1);
            const int n = wps - x0 < cl ? wps - x0 : cl;
            r->ix0 = ix0;
            r->lm = (__mmask64)m;
            r->sm = (__mmask64)(n >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << n) - 1));
        }
    return 1;
}

/* in points at image 0's group channel 0; images are cstride bytes apart. */
AMX static void build_quads(const bp_qconv_params *p, const amx_geom *gm, const uint8_t *in, size_t istride,
                            int nb, const xrun *runs, int nxc, uint8_t *T, uint8_t *Q)
{
    const int sh = gm->sh, sw = gm->sw, wps = gm->wps, hps = gm->hps, cl = 64 / sw;
    const size_t plane = (size_t)p->h * p->w, img = img_px(gm), lq = lq_of(gm, nb);
    __m512i sel;
    {
        uint8_t idx[64];
        for (int j = 0; j < 64; j++)
            idx[j] = (uint8_t)(j < cl ? j * sw : 0);
        sel = _mm512_loadu_si512((const void *)idx);
    }
    const int direct = gm->nslot == 1 && sh == 1 && sw == 1 && hps == p->h && wps == p->w && !p->pad_t &&
                       !p->pad_l && nb == 1;
    const __m512i zero = _mm512_setzero_si512();
    for (int cq = 0; cq < gm->cqp; cq++) {
        const uint8_t *src[4];
        for (int t = 0; t < 4; t++) {
            const int ci = 4 * cq + t;
            uint8_t *tp = T + (size_t)t * lq;
            if (ci >= gm->cig) {
                src[t] = NULL;
                continue;
            }
            if (direct) { /* the plane as it is */
                src[t] = in + (size_t)ci * plane;
                continue;
            }
            src[t] = tp;
            for (int slot = 0; slot < gm->nslot; slot++) {
                const xrun *rr = runs + (size_t)slot * nxc;
                for (int j = 0; j < nb; j++) {
                    const uint8_t *cp = in + (size_t)j * istride + (size_t)ci * plane;
                    uint8_t *d = tp + ((size_t)slot * nb + j) * img;
                    for (int yy = 0; yy < hps; yy++, d += wps) {
                        const int iy = yy * sh + gm->slot_py[slot] - p->pad_t;
                        if (iy < 0 || iy >= p->h) {
                            for (int c = 0; c < nxc; c++)
                                _mm512_mask_storeu_epi8(d + c * cl, rr[c].sm, zero);
                            continue;
                        }
                        const uintptr_t row = (uintptr_t)(cp + (size_t)iy * p->w);
                        for (int c = 0; c < nxc; c++) {
                            /* masked-off lanes are not read: the window may
                             * start before the row (left padding) */
                            __m512i v = _mm512_maskz_loadu_epi8(rr[c].lm, (const void *)(row + (intptr_t)rr[c].ix0));
                            if (sw > 1)
                                v = _mm512_permutexvar_epi8(sel, v);
                            _mm512_mask_storeu_epi8(d + c * cl, rr[c].sm, v);
                        }
                    }
                }
            }
        }
        uint8_t *q = Q + (size_t)cq * lq * 4;
        for (size_t f = 0; f < lq; f += 64, q += 256) {
            const __mmask64 m = lq - f >= 64 ? ~(__mmask64)0 : (__mmask64)((((uint64_t)1) << (lq - f)) - 1);
            __m512i b[4];
            for (int t = 0; t < 4; t++)
                b[t] = src[t] ? _mm512_maskz_loadu_epi8(m, (const void *)(src[t] + f)) : zero;
            __m512i p01l = _mm512_unpacklo_epi8(b[0], b[1]), p01h = _mm512_unpackhi_epi8(b[0], b[1]);
            __m512i p23l = _mm512_unpacklo_epi8(b[2], b[3]), p23h = _mm512_unpackhi_epi8(b[2], b[3]);
            /* d_i, 128-bit lane L: the quads of pixels 16L + 4i .. 16L + 4i + 3 */
            __m512i d0 = _mm512_unpacklo_epi16(p01l, p23l), d1 = _mm512_unpackhi_epi16(p01l, p23l);
            __m512i d2 = _mm512_unpacklo_epi16(p01h, p23h), d3 = _mm512_unpackhi_epi16(p01h, p23h);
            /* 4x4 transpose of 128-bit lanes: output L = (d0.L, d1.L, d2.L, d3.L) */
            __m512i t0 = _mm512_shuffle_i64x2(d0, d1, 0x44), t1 = _mm512_shuffle_i64x2(d0, d1, 0xEE);
            __m512i t2 = _mm512_shuffle_i64x2(d2, d3, 0x44), t3 = _mm512_shuffle_i64x2(d2, d3, 0xEE);
            _mm512_storeu_si512((void *)q, _mm512_shuffle_i64x2(t0, t2, 0x88));
            _mm512_storeu_si512((void *)(q + 64), _mm512_shuffle_i64x2(t0, t2, 0xDD));
            _mm512_storeu_si512((void *)(q + 128), _mm512_shuffle_i64x2(t1, t3, 0x88));
            _mm512_storeu_si512((void *)(q + 192), _mm512_shuffle_i64x2(t1, t3, 0xDD));
        }
    }
}

/* ---- epilogue ---------------------------------------------------------------- */

/* Per output row of a group: bias, multiplier, right shift, 2^right − 1,
 * (2^right − 1) >> 1, and −1 for the shift-only form. */
typedef struct {
    int32_t *bias, *mult, *right, *mask, *half, *zero;
} rowpar;

AMX static inline __m512i vrequant(__m512i x, __m512i m, __m512i right, __m512i mask, __m512i half,
                                   __mmask16 zmask)
{
    const __m512i nudge = _mm512_set1_epi64((int64_t)1 << 30);
    __m512i pe = _mm512_add_epi64(_mm512_mul_epi32(x, m), nudge);
    __m512i po = _mm512_add_epi64(_mm512_mul_epi32(_mm512_srli_epi64(x, 32), _mm512_srli_epi64(m, 32)), nudge);
    /* (a·b + 2^30) >> 31 of the even lanes, and of the odd ones shifted into place */
    __m512i y = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(pe, 31), _mm512_slli_epi64(po, 1));
    y = _mm512_mask_blend_epi32(zmask, y, x);
    const __m512i one = _mm512_set1_epi32(1);
    __m512i rem = _mm512_and_si512(y, mask);
    __m512i thr = _mm512_mask_add_epi32(half, _mm512_cmplt_epi32_mask(y, _mm512_setzero_si512()), half, one);
    __m512i r = _mm512_srav_epi32(y, right);
    return _mm512_mask_add_epi32(r, _mm512_cmpgt_epi32_mask(rem, thr), r, one);
}

typedef struct {
    const bp_qconv_params *p;
    const rowpar *rp;
    const bp_qmul *qm;   /* the group's */
    void *out;           /* first image's, group's channel 0 */
    size_t oplane;       /* oh · ow */
} epi;

/* A run of one output row inside a 16-flat tile: lanes lo .. lo+n−1 go to
 * elements at .. at+n−1 (from the group's channel 0 of the first image). */
typedef struct {
    int lo, n;
    __mmask16 m;
    size_t at;
} seg;

typedef struct {
    int oh, ow, wps;
    size_t img;        /* flats per image */
    int nb;
    size_t istride;    /* output elements between images */
} flatmap;

static int segments(const flatmap *fm, size_t f0, seg *sg)
{
    int ns = 0;
    size_t f = f0, end = f0 + 16;
    while (f < end) {
        const size_t j = f / fm->img, within = f % fm->img;
        if (j >= (size_t)fm->nb)
            break;
        const int oy = (int)(within / fm->wps), ox = (int)(within % fm->wps);
        if (oy >= fm->oh) {
            f = (j + 1) * fm->img;
            continue;
        }
        if (ox >= fm->ow) {
            f += fm->wps - ox;
            continue;
        }
        size_t n = fm->ow - ox;
        if (n > end - f)
            n = end - f;
        const int lo = (int)(f - f0);
        sg[ns].lo = lo;
        sg[ns].n = (int)n;
        sg[ns].m = (__mmask16)(((1u << (lo + n)) - 1) & ~((1u << lo) - 1));
        sg[ns].at = j * fm->istride + (size_t)oy * fm->ow + ox;
        ns++;
        f += n;
    }
    return ns;
}

/* Rows r0 .. r0+15 (those < cog) of a stored C tile c (16 × 16 int32). */
AMX static void store_tile(const epi *e, const int32_t *c, int r0, const seg *sg, int nseg, int cog, int vec_ok)
{
    if (!nseg)
        return;
    const bp_qconv_params *p = e->p;
    const __m512i vlo = _mm512_set1_epi32(p->out_min), vhi = _mm512_set1_epi32(p->out_max);
    const rowpar *rp = e->rp;
    const int whole = nseg == 1 && sg[0].n == 16;
    for (int i = 0; i < 16; i++) {
        const int r = r0 + i;
        if (r >= cog)
            break;
        __m512i x = _mm512_add_epi32(_mm512_loadu_si512((const void *)(c + 16 * i)), _mm512_set1_epi32(rp->bias[r]));
        if (vec_ok)
            x = vrequant(x, _mm512_set1_epi32(rp->mult[r]), _mm512_set1_epi32(rp->right[r]),
                         _mm512_set1_epi32(rp->mask[r]), _mm512_set1_epi32(rp->half[r]),
                         rp->zero[r] ? 0xFFFF : 0);
        else {
            int32_t res[16];
            _mm512_storeu_si512((void *)res, x);
            for (int j = 0; j < 16; j++)
                res[j] = bp_requant(res[j], e->qm[r]);
            x = _mm512_loadu_si512((const void *)res);
        }
        x = _mm512_min_epi32(_mm512_max_epi32(x, vlo), vhi);
        const size_t rbase = (size_t)r * e->oplane;
        for (int s = 0; s < nseg; s++) {
            __m512i v = whole ? x : _mm512_maskz_compress_epi32(sg[s].m, x);
            const __mmask16 km = (__mmask16)((1u << sg[s].n) - 1);
            const size_t at = rbase + sg[s].at;
            /* clamped to the type's range: the saturating conversions are exact */
            if (p->out_type == BP_QT_S32)
                _mm512_mask_storeu_epi32((int32_t *)e->out + at, km, v);
            else if (p->out_type == BP_QT_U8)
                _mm_mask_storeu_epi8((uint8_t *)e->out + at, km, _mm512_cvtusepi32_epi8(v));
            else
                _mm_mask_storeu_epi8((int8_t *)e->out + at, km, _mm512_cvtsepi32_epi8(v));
        }
    }
}

/* ---- tiles -------------------------------------------------------------------- */

typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tilecfg;

#define DP(u8, C, A, B)              \
    do {                             \
        if (u8)                      \
            _tile_dpbsud(C, A, B);   \
        else                         \
            _tile_dpbssd(C, A, B);   \
    } while (0)

AMX static void run_group(const amx_geom *gm, const epi *e, const flatmap *fm, const uint8_t *W, const uint8_t *Q,
                          size_t lq, const ptrdiff_t *toff, size_t nflat, int u8, const uint8_t *vec_ok, int32_t *cbuf)
{
    const size_t tb = gm->tile_bytes, qstride = lq * 4, kcq = (size_t)gm->kc * qstride;
    const int khw = gm->khw, nch = gm->nch, astride = 4 * gm->kc;
    seg sg[4][16];
    int ns[4];
    if (gm->wide) {
        for (size_t f0 = 0; f0 < nflat; f0 += 32) {
            ns[0] = segments(fm, f0, sg[0]);
            ns[1] = segments(fm, f0 + 16, sg[1]);
            for (int mb = 0; mb < gm->nmb; mb += 2) {
                const uint8_t *w0 = W + (size_t)mb * khw * nch * tb, *w1 = w0 + (size_t)khw * nch * tb;
                _tile_zero(0);
                _tile_zero(1);
                _tile_zero(2);
                _tile_zero(3);
                for (int tap = 0; tap < khw; tap++) {
                    const uint8_t *b = Q + (toff[tap] + f0) * 4;
                    for (int ch = 0; ch < nch; ch++, b += kcq) {
                        const size_t wo = ((size_t)tap * nch + ch) * tb;
                        _tile_loadd(4, w0 + wo, astride);
                        _tile_loadd(6, b, qstride);
                        DP(u8, 0, 4, 6);
                        _tile_loadd(7, b + 64, qstride);
                        DP(u8, 1, 4, 7);
                        _tile_loadd(5, w1 + wo, astride);
                        DP(u8, 2, 5, 6);
                        DP(u8, 3, 5, 7);
                    }
                }
                _tile_stored(0, cbuf, 64);
                _tile_stored(1, cbuf + 256, 64);
                _tile_stored(2, cbuf + 512, 64);
                _tile_stored(3, cbuf + 768, 64);
                store_tile(e, cbuf, 16 * mb, sg[0], ns[0], gm->cog, vec_ok[mb]);
                store_tile(e, cbuf + 256, 16 * mb, sg[1], ns[1], gm->cog, vec_ok[mb]);
                if (16 * (mb + 1) < gm->cog) {
                    store_tile(e, cbuf + 512, 16 * (mb + 1), sg[0], ns[0], gm->cog, vec_ok[mb + 1]);
                    store_tile(e, cbuf + 768, 16 * (mb + 1), sg[1], ns[1], gm->cog, vec_ok[mb + 1]);
                }
            }
        }
    } else {
        for (size_t f0 = 0; f0 < nflat; f0 += 64) {
            _tile_zero(0);
            _tile_zero(1);
            _tile_zero(2);
            _tile_zero(3);
            for (int tap = 0; tap < khw; tap++) {
                const uint8_t *b = Q + (toff[tap] + f0) * 4;
                for (int ch = 0; ch < nch; ch++, b += kcq) {
                    _tile_loadd(4, W + ((size_t)tap * nch + ch) * tb, astride);
                    _tile_loadd(5, b, qstride);
                    DP(u8, 0, 4, 5);
                    _tile_loadd(6, b + 64, qstride);
                    DP(u8, 1, 4, 6);
                    _tile_loadd(7, b + 128, qstride);
                    DP(u8, 2, 4, 7);
                    _tile_loadd(5, b + 192, qstride);
                    DP(u8, 3, 4, 5);
                }
            }
            _tile_stored(0, cbuf, 64);
            _tile_stored(1, cbuf + 256, 64);
            _tile_stored(2, cbuf + 512, 64);
            _tile_stored(3, cbuf + 768, 64);
            for (int t = 0; t < 4; t++) {
                ns[t] = segments(fm, f0 + 16 * t, sg[t]);
                store_tile(e, cbuf + 256 * t, 0, sg[t], ns[t], gm->cog, vec_ok[0]);
            }
        }
    }
}

AMX int bp_qconv_amx(const bp_qconv_params *p, const void *in, const uint8_t *wpanel, const int32_t *bias,
                     const bp_qmul *qm, void *out, void *scratch)
{
    amx_geom gm;
    xrun runs[MAX_RUNS];
    int nxc;
    if (!geom_of(p, &gm) || !row_runs(p, &gm, runs, &nxc))
        return 0;
    wentry *we = acquire_weights(p, &gm, wpanel);
    if (!we)
        return 0;
    int oh, ow;
    bp_qconv_out_hw(p, &oh, &ow);
    const size_t plane = (size_t)p->h * p->w, oplane = (size_t)oh * ow, img = img_px(&gm);
    const size_t lqmax = lq_of(&gm, gm.nbmax);
    const size_t qbytes = ((size_t)gm.cqp * lqmax + q_slack(&gm)) * 4;
    uint8_t *Q = (uint8_t *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    uint8_t *T = Q + (qbytes + 63) / 64 * 64;
    int32_t *cbuf = (int32_t *)(T + (4 * lqmax + 63) / 64 * 64);
    const size_t rows = (size_t)gm.nmb * 16;
    int32_t *rpv = cbuf + 1024;
    rowpar rp = {rpv, rpv + rows, rpv + 2 * rows, rpv + 3 * rows, rpv + 4 * rows, rpv + 5 * rows};
    uint8_t vok[64];
    tilecfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 4; t++)
        cfg.rows[t] = 16, cfg.colsb[t] = 64;
    const int a_tiles = gm.wide ? 2 : 1;
    for (int t = 4; t < 8; t++) {
        const int is_a = t < 4 + a_tiles;
        cfg.rows[t] = (uint8_t)(is_a ? 16 : gm.kc);
        cfg.colsb[t] = (uint16_t)(is_a ? 4 * gm.kc : 64);
    }
    _tile_loadconfig(&cfg);
    const size_t per_group = (size_t)gm.nmb * gm.khw * gm.nch * gm.tile_bytes;
    const size_t osz = bp_qtype_size(p->out_type);
    for (int g = 0; g < p->group; g++) {
        const bp_qmul *gq = qm + (size_t)g * gm.cog;
        for (int mb = 0; mb < gm.nmb; mb++) {
            int ok = 1;
            for (int i = 0; i < 16; i++) {
                const int r = 16 * mb + i;
                bp_qmul q = r < gm.cog ? gq[r] : (bp_qmul){0, 0};
                rp.bias[r] = r < gm.cog && bias ? bias[(size_t)g * gm.cog + r] : 0;
                rp.mult[r] = q.mult;
                rp.right[r] = -q.shift;
                const uint32_t mk = q.shift <= 0 && q.shift >= -31 ? (uint32_t)(((uint64_t)1 << -q.shift) - 1) : 0;
                rp.mask[r] = (int32_t)mk;
                rp.half[r] = (int32_t)(mk >> 1);
                rp.zero[r] = q.mult == 0;
                if (q.shift > 0 || q.shift < -31)
                    ok = 0;
            }
            vok[mb] = (uint8_t)ok;
        }
        for (int n0 = 0; n0 < p->n; n0 += gm.nbmax) {
            const int nb = p->n - n0 < gm.nbmax ? p->n - n0 : gm.nbmax;
            const size_t lq = lq_of(&gm, nb);
            ptrdiff_t toff[MAX_TAPS];
            for (int ky = 0; ky < p->kh; ky++)
                for (int kx = 0; kx < p->kw; kx++) {
                    const int yy = ky * p->dil_h, xx = kx * p->dil_w;
                    const int slot = gm.slot_of[yy % gm.sh * MAX_STRIDE + xx % gm.sw];
                    toff[ky * p->kw + kx] = (ptrdiff_t)slot * nb * (ptrdiff_t)img +
                                            (ptrdiff_t)(yy / gm.sh) * gm.wps + xx / gm.sw;
                }
            /* the slack after this pass's planes: read only by flats never stored */
            memset(Q + (size_t)gm.cqp * lq * 4, 0, q_slack(&gm) * 4);
            const uint8_t *gin = (const uint8_t *)in + ((size_t)n0 * p->cin + (size_t)g * gm.cig) * plane;
            build_quads(p, &gm, gin, (size_t)p->cin * plane, nb, &runs[0], nxc, T, Q);
            epi e = {p, &rp, gq, (uint8_t *)out + ((size_t)n0 * p->cout + (size_t)g * gm.cog) * oplane * osz,
                     oplane};
            flatmap fm = {oh, ow, gm.wps, img, nb, (size_t)p->cout * oplane};
            const size_t nflat = (size_t)(nb - 1) * img + (size_t)oh * gm.wps;
            run_group(&gm, &e, &fm, we->packed + (size_t)g * per_group, Q, lq, toff, nflat,
                      p->in_type == BP_QT_U8, vok, cbuf);
        }
    }
    _tile_release();
    release_weights(we);
    return 1;
}
