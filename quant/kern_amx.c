/* kern_amx.c — int8 convs on AMX tiles (Intel AMX-TILE + AMX-INT8), for
 * every conv that is not depthwise.
 *
 * Implicit GEMM on channel quads, C = W · A with C tiles of 16 output
 * channels (rows) × 16 pixels (int32 columns), A tiles = weights (16 rows ×
 * up to 64 bytes of K), B tiles = activations in VNNI layout (K/4 rows × 16
 * pixels × 4 bytes). Per pass over a few images of a group, the input is
 * rewritten once into Q: for each channel quad, the zero-padded stride-phase
 * planes (phase (py, px) holds padded rows y·sh + py, columns x·sw + px; only
 * phases some tap reads; stride 1: the padded image), 4 bytes (the quad's
 * channels) per pixel. Output pixel (oy, ox) of image j is computed at the
 * "flat" f = j·hps·wps + oy·wps + ox; tap (ky, kx) reads its phase plane at
 * f + dy·wps + dx, so 16 consecutive flats of a quad are 64 contiguous bytes
 * and a B tile is 16 quad rows read in place by tileloadd. Flats with
 * ox >= ow, oy >= oh are computed and never stored. Images share a pass so
 * that small planes (7x7) fill the 16-pixel tiles.
 *
 * A tdp costs about the same for any K up to 64, and a tile load whose rows
 * straddle cache lines about three times as much, so taps are grouped
 * ("replicas", see REP_*): with few channels the B rows are (tap, quad) or
 * (kx, quad) over shifted copies of the planes, and the row width is padded
 * to 16 when that keeps every tile row aligned.
 *
 * K runs over (tap, channel quad) instead of the panel's (channel, tap):
 * integer sums do not depend on order. Weights are repacked into A tiles by
 * bp_qk_amx_prepare, once per layer (bp_qconv_prepare; bp_qconv prepares
 * into a temporary on every call), together with the batch-independent
 * tables (row runs, expansion masks, stride gathers): repacking costs more
 * than a whole batch-1 conv. The prep is the caller's; this file keeps no
 * state besides the once-asked AMX permission.
 *
 * Signed inputs use tdpbssd, unsigned ones tdpbsud (signed weights in A,
 * unsigned activations in B): no +128 shift. The tiles accumulate in int32
 * with wrap-around, exact while the true sum fits (the caller's guarantee,
 * qkernels.h); they start from the bias. C tiles are blocked two by two (32
 * channels × 32 flats) or one by four when a group has at most 16 channels.
 * The epilogue, software-pipelined one block behind the tile work, stores
 * the C tiles, requantizes 16 lanes at a time bit-exactly (one 64-bit
 * rounding, see rowpar; bp_requant for left shifts), clamps and stores each
 * output row's run of flats (a compress and a masked store where a tile
 * spans rows).
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

#define AMX __attribute__((target("amx-tile,amx-int8,avx2,avx512f,avx512bw,avx512vl,avx512vbmi,avx512vbmi2")))

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
    /* leaf 7: EDX 24 AMX-TILE, 25 AMX-INT8; ECX 1 AVX512_VBMI and 6
     * AVX512_VBMI2 (the padding and stride gathers); leaf 1 ECX 27 OSXSAVE
     * before xgetbv; XCR0 17/18: tile config and data state enabled by the OS */
    int ok = __get_cpuid_count(7, 0, &a, &b, &c, &d) && (d >> 24 & 1) && (d >> 25 & 1) &&
             (c >> 1 & 1) && (c >> 6 & 1) && __get_cpuid(1, &a1, &b1, &c1, &d1) && (c1 >> 27 & 1);
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

/* How taps share a B tile. A tdp costs about the same at any K up to 64, so
 * convs with few channels put several taps' channel quads into one tile, at
 * the price of shifted copies of the planes ("replicas") in Q:
 *   REP_NONE  B rows = channel quads; one pass of tiles per tap
 *   REP_KX    B rows = (kx, channel quad), replica kx shifted by its column
 *             offset; one pass per ky
 *   REP_ALL   B rows = (tap, channel quad), replicas shifted by the whole
 *             tap offset (im2col on channel quads); one pass */
enum { REP_NONE, REP_KX, REP_ALL };

typedef struct {
    int cig, cog, khw, k;
    int cqn;           /* channel quads */
    int mode, nrep, nouter;
    int nr;            /* B rows per outer tap: nrep · cqn */
    int nch, kc, nrp;  /* K chunks per outer tap, rows per chunk, nch · kc */
    int wide;          /* 1: 2x2 C tiles (32 channels); 0: 1x4 (16 channels) */
    int nmb;           /* 16-row blocks per group (even when wide) */
    int sh, sw, hps, wps, nslot;
    int slot_of[MAX_STRIDE * MAX_STRIDE];
    int slot_py[MAX_STRIDE * MAX_STRIDE], slot_px[MAX_STRIDE * MAX_STRIDE];
    int nsy;           /* planes per Q row */
    int nbmax;         /* images per pass over Q */
    size_t tile_bytes; /* one A tile: 16 rows of 64 bytes (4·kc used) */
} amx_geom;

static size_t img_px(const amx_geom *gm) { return (size_t)gm->hps * gm->wps; }
/* Pixels of one Q row for nb images. */
/* Pixels of one Q plane: nb images, rounded to 16 so that tile rows start
 * on cache lines (a tile load with split lines costs about three times as
 * much). */
static size_t lplane_of(const amx_geom *gm, int nb) { return ((size_t)nb * img_px(gm) + 15) / 16 * 16; }
static size_t lq_of(const amx_geom *gm, int nb) { return (size_t)gm->nsy * lplane_of(gm, nb); }
/* Bytes of T per channel: nb images' phase planes and room for the replicas'
 * shifted reads past them. */
static size_t tch_of(const amx_geom *gm, int nb)
{
    return ((size_t)gm->nslot * nb * img_px(gm) + img_px(gm) + 64 + 63) / 64 * 64;
}
/* Pixels of slack after Q's last row: flats run up to 63 past the last
 * output row, taps reach one plane row and a tile row further. */
static size_t q_slack(const amx_geom *gm) { return (size_t)gm->wps + 192; }

static int geom_of(const bp_qconv_params *p, amx_geom *gm)
{
    const int cig = p->cin / p->group, cog = p->cout / p->group;
    if (cig == 1 && cog == 1)
        return 0; /* depthwise */
    if (p->kh * p->kw > MAX_TAPS || p->stride_h > MAX_STRIDE || p->stride_w > MAX_STRIDE)
        return 0;
    int oh, ow;
    bp_qconv_out_hw(p, &oh, &ow);
    memset(gm, 0, sizeof *gm);
    gm->cig = cig, gm->cog = cog, gm->khw = p->kh * p->kw, gm->k = cig * gm->khw;
    gm->cqn = (cig + 3) / 4;
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
    /* Tile rows must start on cache lines: a tap's offset dy·wps + dx is
     * aligned when wps is a multiple of 16 and the replicas carry dx
     * (REP_KX), or when the replicas carry the whole offset (REP_ALL, which
     * costs khw copies of the planes: the choice when padding the width to 16
     * would waste more than a fifth of the flats). */
    const int wpad = (gm->wps + 15) / 16 * 16;
    if (gm->khw == 1)
        gm->mode = REP_NONE;
    else if (gm->khw * gm->cqn <= 16)
        gm->mode = REP_ALL;
    else if (wpad * 5 > gm->wps * 6)
        /* with 64 channels or more a tap already fills the K of a tile, and
         * khw copies of the planes cost more than split tile rows (measured
         * on 64>64 3x3 at 7x7: 268 against 340 us) */
        gm->mode = gm->cqn >= 16 && (p->kh == 1 || gm->sh == 1) && (p->kw == 1 || gm->sw == 1) ? REP_NONE : REP_ALL;
    else {
        gm->wps = wpad;
        gm->mode = p->kw > 1 ? REP_KX : REP_NONE;
    }
    gm->nrep = gm->mode == REP_ALL ? gm->khw : gm->mode == REP_KX ? p->kw : 1;
    gm->nouter = gm->mode == REP_ALL ? 1 : gm->mode == REP_KX ? p->kh : gm->khw;
    gm->nr = gm->nrep * gm->cqn;
    gm->nch = (gm->nr + 15) / 16;
    gm->kc = (gm->nr + gm->nch - 1) / gm->nch;
    gm->nrp = gm->nch * gm->kc;
    for (int i = 0; i < MAX_STRIDE * MAX_STRIDE; i++)
        gm->slot_of[i] = -1;
    for (int ky = 0; ky < p->kh; ky++)
        for (int kx = 0; kx < p->kw; kx++) {
            int py = (ky * p->dil_h) % gm->sh, px = (kx * p->dil_w) % gm->sw;
            if (gm->slot_of[py * MAX_STRIDE + px] < 0) {
                gm->slot_py[gm->nslot] = py;
                gm->slot_px[gm->nslot] = px;
                gm->slot_of[py * MAX_STRIDE + px] = gm->nslot++;
            }
        }
    if (gm->mode == REP_NONE)
        gm->nsy = gm->nslot;
    else if (gm->mode == REP_ALL)
        gm->nsy = 1;
    else {
        int seen[MAX_STRIDE] = {0};
        for (int ky = 0; ky < p->kh; ky++)
            if (!seen[(ky * p->dil_h) % gm->sh]++)
                gm->nsy++;
    }
    if (gm->nsy > MAX_STRIDE)
        return 0; /* amx_plan holds at most MAX_STRIDE planes per row */
    gm->tile_bytes = (size_t)16 * 64;
    /* several small images per pass fill the 16-pixel tiles better; Q stays
     * within about 256 KiB (L2) */
    const size_t per_img = (size_t)gm->nrp * gm->nsy * img_px(gm) * 4;
    gm->nbmax = per_img >= (256u << 10) ? 1 : (int)((256u << 10) / per_img);
    if (gm->nbmax > 64)
        gm->nbmax = 64;
    return 1;
}

/* Replica rep's plane sy: which T slot it copies and the shift (pixels) of
 * its reads; and outer tap o's offset in a Q row (pixels, for nb images). */
typedef struct {
    /* planes per Q row: REP_NONE has one tap per pass (a 1x1 conv: one slot)
     * or kw = 1 (slots = row phases), REP_KX the row phases, REP_ALL one */
    ptrdiff_t src_slot[MAX_TAPS][MAX_STRIDE]; /* start of the T slot plane */
    ptrdiff_t shift[MAX_TAPS][MAX_STRIDE];
    ptrdiff_t toff[MAX_TAPS];
} amx_plan;

static void plan_of(const bp_qconv_params *p, const amx_geom *gm, int nb, amx_plan *pl)
{
    /* T planes are nb·img apart, Q planes lplane */
    const ptrdiff_t L = (ptrdiff_t)lplane_of(gm, nb), Lt = (ptrdiff_t)nb * (ptrdiff_t)img_px(gm), wps = gm->wps;
    int sy_of[MAX_STRIDE], py_of[MAX_STRIDE], nsy = 0;
    for (int i = 0; i < MAX_STRIDE; i++)
        sy_of[i] = -1;
    for (int ky = 0; ky < p->kh; ky++) {
        int py = (ky * p->dil_h) % gm->sh;
        if (sy_of[py] < 0)
            py_of[nsy] = py, sy_of[py] = nsy++;
    }
    for (int ky = 0; ky < p->kh; ky++)
        for (int kx = 0; kx < p->kw; kx++) {
            const int yy = ky * p->dil_h, xx = kx * p->dil_w, tap = ky * p->kw + kx;
            const int slot = gm->slot_of[yy % gm->sh * MAX_STRIDE + xx % gm->sw];
            const ptrdiff_t dy = yy / gm->sh, dx = xx / gm->sw;
            if (gm->mode == REP_NONE) {
                pl->toff[tap] = slot * L + dy * wps + dx;
            } else if (gm->mode == REP_ALL) {
                pl->src_slot[tap][0] = slot * Lt;
                pl->shift[tap][0] = dy * wps + dx;
            } else {
                pl->toff[ky] = sy_of[yy % gm->sh] * L + dy * wps;
                for (int sy = 0; sy < nsy; sy++) {
                    pl->src_slot[kx][sy] = gm->slot_of[py_of[sy] * MAX_STRIDE + xx % gm->sw] * Lt;
                    pl->shift[kx][sy] = dx;
                }
            }
        }
    if (gm->mode == REP_NONE)
        for (int sl = 0; sl < gm->nslot; sl++)
            pl->src_slot[0][sl] = sl * Lt, pl->shift[0][sl] = 0;
    if (gm->mode == REP_ALL)
        pl->toff[0] = 0;
}

size_t bp_qk_amx_scratch(const bp_qconv_params *p)
{
    amx_geom gm;
    if (p->group < 1 || p->cin < p->group || p->cout < p->group || !geom_of(p, &gm))
        return 0;
    const size_t lq = lq_of(&gm, gm.nbmax);
    /* T, and QB (the slots' quads before replication) of the same size */
    size_t q = ((size_t)gm.nrp * lq + q_slack(&gm)) * 4, t = 2 * 4 * tch_of(&gm, gm.nbmax);
    size_t rows = (size_t)gm.nmb * 16;
    return 64 + (q + 63) / 64 * 64 + t + 8 * 1024 + rows * 64 + rows * 48 +
           64; /* 48: sizeof(rowpar) */
}

/* ---- prepared weights -------------------------------------------------------- */

static size_t packed_bytes(const bp_qconv_params *p, const amx_geom *gm)
{
    return (size_t)p->group * gm->nmb * gm->nouter * gm->nch * gm->tile_bytes;
}

/* A tile (group g, row block mb, outer tap o, chunk ch): row r, byte 4·qi + t
 * = weight of channel 4·cq + t at tap (o, rep), where B row ch·kc + qi =
 * rep·cqn + cq; zero where that is past the channels or rows. */
static void pack_weights(const bp_qconv_params *p, const amx_geom *gm, const uint8_t *wpanel, uint8_t *dst)
{
    const size_t gbytes = bp_qk_group_bytes(gm->cog, gm->k, p->wbits);
    const size_t per_group = (size_t)gm->nmb * gm->nouter * gm->nch * gm->tile_bytes;
    memset(dst, 0, packed_bytes(p, gm));
    for (int g = 0; g < p->group; g++) {
        const uint8_t *gp = wpanel + (size_t)g * gbytes;
        uint8_t *gd = dst + (size_t)g * per_group;
        for (int r = 0; r < gm->cog; r++)
            for (int ci = 0; ci < gm->cig; ci++)
                for (int tap = 0; tap < gm->khw; tap++) {
                    const int o = gm->mode == REP_ALL ? 0 : gm->mode == REP_KX ? tap / p->kw : tap;
                    const int rep = gm->mode == REP_ALL ? tap : gm->mode == REP_KX ? tap % p->kw : 0;
                    const int R = rep * gm->cqn + ci / 4, ch = R / gm->kc, qi = R % gm->kc;
                    size_t at = (((size_t)(r / 16) * gm->nouter + o) * gm->nch + ch) * gm->tile_bytes +
                                (size_t)(r % 16) * 64 + 4 * qi + ci % 4;
                    gd[at] = (uint8_t)(int8_t)bp_qk_get(gp, gm->k, p->wbits, r, ci * gm->khw + tap);
                }
    }
}

/* ---- input to channel quads ------------------------------------------------- */

/* Q holds nb images of a group: row R = rep·cqn + cq (rows nr .. nrp−1
 * zero), each row nsy planes of L = nb·img pixels, 4 bytes (the quad's
 * channels) per pixel; flat f = image·img + y·wps + x. Per channel quad, in
 * two steps: (a) each of its 4 channels' padded phase planes into T (row
 * runs: one masked load of the source window, lanes outside the image zero
 * = padding, vpermb picking every sw-th byte, one masked store of the run);
 * (b) per replica and plane, the 4 channels' planes (shifted by the
 * replica's offset) interleaved into quads 64 pixels at a time. */
typedef struct {
    int ix0;         /* source column of the run's first byte */
    __mmask64 lm;    /* source bytes inside the image */
    __mmask64 sm;    /* destination bytes of the run */
} xrun;

#define MAX_RUNS 256

/* Runs of one phase row per slot: run c covers destination columns c·cl ..
 * c·cl + cl − 1 from a 64-byte source window (cl = 64 / sw). */
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

/* Four 64-byte rows of bytes (one per channel) to 64 quads, 256 bytes. */
AMX static inline void quad4(__m512i b0, __m512i b1, __m512i b2, __m512i b3, __m512i o[4])
{
    const __m512i p01l = _mm512_unpacklo_epi8(b0, b1), p01h = _mm512_unpackhi_epi8(b0, b1);
    const __m512i p23l = _mm512_unpacklo_epi8(b2, b3), p23h = _mm512_unpackhi_epi8(b2, b3);
    /* d_i, 128-bit lane L: the quads of pixels 16L + 4i .. 16L + 4i + 3 */
    const __m512i d0 = _mm512_unpacklo_epi16(p01l, p23l), d1 = _mm512_unpackhi_epi16(p01l, p23l);
    const __m512i d2 = _mm512_unpacklo_epi16(p01h, p23h), d3 = _mm512_unpackhi_epi16(p01h, p23h);
    /* 4x4 transpose of 128-bit lanes: output L = (d0.L, d1.L, d2.L, d3.L) */
    const __m512i t0 = _mm512_shuffle_i64x2(d0, d1, 0x44), t1 = _mm512_shuffle_i64x2(d0, d1, 0xEE);
    const __m512i t2 = _mm512_shuffle_i64x2(d2, d3, 0x44), t3 = _mm512_shuffle_i64x2(d2, d3, 0xEE);
    o[0] = _mm512_shuffle_i64x2(t0, t2, 0x88);
    o[1] = _mm512_shuffle_i64x2(t0, t2, 0xDD);
    o[2] = _mm512_shuffle_i64x2(t1, t3, 0x88);
    o[3] = _mm512_shuffle_i64x2(t1, t3, 0xDD);
}

static const uint8_t zero64[64] __attribute__((aligned(64)));

/* Interleaves len pixels of four byte planes (NULL: zero) into quads at q.
 * A missing plane reads the same 64 zero bytes (step 0), so the loop has
 * four plain loads and keeps its rows in registers. */
AMX static void interleave(const uint8_t *const src[4], size_t len, uint8_t *q)
{
    const uint8_t *s0 = src[0] ? src[0] : zero64, *s1 = src[1] ? src[1] : zero64;
    const uint8_t *s2 = src[2] ? src[2] : zero64, *s3 = src[3] ? src[3] : zero64;
    const size_t i0 = src[0] ? 64 : 0, i1 = src[1] ? 64 : 0, i2 = src[2] ? 64 : 0, i3 = src[3] ? 64 : 0;
    size_t f = 0;
    __m512i o[4];
    for (; f + 64 <= len; f += 64, q += 256) {
        quad4(_mm512_loadu_si512((const void *)s0), _mm512_loadu_si512((const void *)s1),
              _mm512_loadu_si512((const void *)s2), _mm512_loadu_si512((const void *)s3), o);
        s0 += i0, s1 += i1, s2 += i2, s3 += i3;
        _mm512_storeu_si512((void *)q, o[0]);
        _mm512_storeu_si512((void *)(q + 64), o[1]);
        _mm512_storeu_si512((void *)(q + 128), o[2]);
        _mm512_storeu_si512((void *)(q + 192), o[3]);
    }
    if (f == len)
        return;
    const __mmask64 m = (__mmask64)((((uint64_t)1) << (len - f)) - 1);
    quad4(_mm512_maskz_loadu_epi8(m, (const void *)s0), _mm512_maskz_loadu_epi8(m, (const void *)s1),
          _mm512_maskz_loadu_epi8(m, (const void *)s2), _mm512_maskz_loadu_epi8(m, (const void *)s3), o);
    /* rows are not written in address order (replicas): no spill */
    for (int i = 0; i < 4; i++) {
        const ptrdiff_t nbytes = 4 * ((ptrdiff_t)(len - f) - 16 * i);
        if (nbytes <= 0)
            break;
        const __mmask64 sm = nbytes >= 64 ? ~(__mmask64)0 : (__mmask64)((((uint64_t)1) << nbytes) - 1);
        _mm512_mask_storeu_epi8((void *)(q + 64 * i), sm, o[i]);
    }
}

/* interleave over nb images' planes of img bytes each (image j's plane of
 * channel t at src[t] + j·istride) as if they were one plane: each 64-pixel
 * block is assembled from its images' runs by merge-masked loads (pointers
 * shifted so that the run lands at its lanes; lanes outside the mask are
 * not read). For planes of 65 to 255 pixels (14x14) this is several times
 * cheaper than a call per image. The last block may spill up to 63 pixels (the caller's
 * rows are written in address order). */
/* b with lanes m taken from s + d, shifted back by lane (masked-off lanes
 * are not read); a missing channel (s NULL) stays zero. */
AMX static inline __attribute__((always_inline)) __m512i merge_run(__m512i b, __mmask64 m, const uint8_t *s, size_t d,
                                                                   unsigned lane)
{
    return s ? _mm512_mask_loadu_epi8(b, m, (const void *)((uintptr_t)(s + d) - lane)) : b;
}

AMX static void interleave_images(const uint8_t *const src[4], size_t istride, size_t img, int nb, uint8_t *q)
{
    const size_t len = (size_t)nb * img;
    size_t j = 0, off = 0; /* image and pixel of the block's first flat */
    for (size_t f = 0; f < len; f += 64, q += 256) {
        __m512i b0 = _mm512_setzero_si512(), b1 = b0, b2 = b0, b3 = b0;
        size_t jj = j, oo = off;
        for (unsigned lane = 0; lane < 64 && jj < (size_t)nb;) {
            const size_t n = img - oo < 64 - lane ? img - oo : 64 - lane;
            const __mmask64 m = (__mmask64)((n + lane >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << (n + lane)) - 1)) &
                                            ~(((uint64_t)1 << lane) - 1));
            /* lanes lane .. lane+n−1 from pixel oo of image jj: the
             * pointer is shifted back by lane (masked-off lanes are not
             * read) */
            const size_t d = jj * istride + oo;
            b0 = merge_run(b0, m, src[0], d, lane);
            b1 = merge_run(b1, m, src[1], d, lane);
            b2 = merge_run(b2, m, src[2], d, lane);
            b3 = merge_run(b3, m, src[3], d, lane);
            lane += (unsigned)n;
            oo += n;
            if (oo == img)
                oo = 0, jj++;
        }
        j = jj, off = oo;
        __m512i o[4];
        quad4(b0, b1, b2, b3, o);
        for (int i = 0; i < 4; i++)
            _mm512_storeu_si512((void *)(q + 64 * i), o[i]);
    }
}

/* in points at image 0's group channel 0; images are istride bytes apart. */
/* Stride 1: a channel's padded plane is the input plane, in order, spread
 * over the positions inside the image; one vpexpandb per 64 bytes. */
typedef struct {
    int nblk;
    uint64_t m[MAX_RUNS]; /* __mmask64 */
    int cnt[MAX_RUNS];
} xblocks;

/* The padded plane hp × wp (image at row pad_t, column pad_l). */
static int expand_blocks_for(const bp_qconv_params *p, int hp, int wp, xblocks *xb)
{
    const size_t img = (size_t)hp * wp;
    if ((img + 63) / 64 > MAX_RUNS)
        return 0;
    xb->nblk = (int)((img + 63) / 64);
    uint64_t *bits = (uint64_t *)xb->m;
    memset(bits, 0, sizeof(uint64_t) * xb->nblk);
    for (int y = 0; y < p->h; y++) {
        size_t a = (size_t)(y + p->pad_t) * wp + p->pad_l, e = a + p->w;
        while (a < e) { /* bits a .. e−1, one word at a time */
            const size_t wd = a / 64, lo = a % 64, hi = e - wd * 64 < 64 ? e - wd * 64 : 64;
            bits[wd] |= (hi == 64 ? ~(uint64_t)0 : (((uint64_t)1 << hi) - 1)) & ~(((uint64_t)1 << lo) - 1);
            a = wd * 64 + hi;
        }
    }
    for (int b = 0; b < xb->nblk; b++) {
        const uint64_t m = bits[b];
        /* bit count without __builtin_popcountll, which may call into libgcc */
        uint64_t c = m - ((m >> 1) & 0x5555555555555555ull);
        c = (c & 0x3333333333333333ull) + ((c >> 2) & 0x3333333333333333ull);
        c = (c + (c >> 4)) & 0x0F0F0F0F0F0F0F0Full;
        xb->cnt[b] = (int)((c * 0x0101010101010101ull) >> 56);
    }
    return 1;
}

static int expand_blocks(const bp_qconv_params *p, const amx_geom *gm, xblocks *xb)
{
    return gm->sh == 1 && gm->sw == 1 && expand_blocks_for(p, gm->hps, gm->wps, xb);
}

/* Strides > 1: every cs-byte chunk of a phase plane is picked out of a
 * 128- or 256-byte window of the input plane with one or two vpermi2b, a
 * blend, and a zero mask for the bytes that are padding (per prep: each
 * chunk's window start, byte picks, blend and zero masks, and load masks
 * that keep the window inside the plane). Far fewer instructions than a
 * load, permute and store per phase row. (An earlier version expanded
 * each plane into a padded copy first and gathered from that; reading the
 * input directly is as fast and needs no copy.) */
#define MAX_PG 96

typedef struct {
    int cs, nck;       /* destination bytes per chunk, chunks per phase plane */
    int32_t smin[MAX_PG];
    uint8_t wide[MAX_PG];
    uint64_t bm[MAX_PG];    /* bytes from the window's second 128 */
    uint64_t zm[MAX_PG];    /* bytes inside the image (the rest: padding, 0) */
    uint8_t idx[MAX_PG][64];
    uint64_t lm[MAX_PG][4]; /* the window's bytes inside the plane */
    uint64_t sm[MAX_PG];    /* chunk k's bytes inside the phase plane */
    uint8_t full[MAX_PG];   /* the window is inside the plane (lm all ones) */
} pgather;

/* Source offset in the input plane of phase-plane byte d of slot sl, or −1
 * for padding. */
static long pg_src(const bp_qconv_params *p, const amx_geom *gm, int sl, int d)
{
    const int iy = d / gm->wps * gm->sh + gm->slot_py[sl] - p->pad_t;
    const int ix = d % gm->wps * gm->sw + gm->slot_px[sl] - p->pad_l;
    return iy < 0 || iy >= p->h || ix < 0 || ix >= p->w ? -1 : (long)iy * p->w + ix;
}

static int pgather_of(const bp_qconv_params *p, const amx_geom *gm, pgather *pg)
{
    if (gm->sh == 1 && gm->sw == 1)
        return 0;
    const int img = gm->hps * gm->wps;
    const long plane = (long)p->h * p->w;
    for (int cs = 64; cs >= 16; cs /= 2) {
        const int nck = (img + cs - 1) / cs;
        if (nck * gm->nslot > MAX_PG)
            return 0;
        int ok = 1;
        for (int e = 0; e < gm->nslot * nck && ok; e++) {
            const int sl = e / nck, k = e % nck;
            long lo = -1, hi = -1;
            for (int i = 0; i < cs && k * cs + i < img; i++) {
                const long sd = pg_src(p, gm, sl, k * cs + i);
                if (sd >= 0 && (lo < 0 || sd < lo))
                    lo = sd;
                if (sd > hi)
                    hi = sd;
            }
            ok = hi - lo < 256;
            pg->smin[e] = (int32_t)(lo < 0 ? 0 : lo); /* all padding: any start */
        }
        if (!ok)
            continue;
        pg->cs = cs, pg->nck = nck;
        for (int k = 0; k < nck; k++) {
            const int n = img - k * cs < cs ? img - k * cs : cs;
            pg->sm[k] = n >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << n) - 1);
        }
        for (int e = 0; e < gm->nslot * nck; e++) {
            const int sl = e / nck, k = e % nck;
            const long s0 = pg->smin[e];
            pg->bm[e] = pg->zm[e] = 0;
            pg->wide[e] = 0;
            memset(pg->idx[e], 0, 64);
            for (int i = 0; i < cs && k * cs + i < img; i++) {
                const long sd = pg_src(p, gm, sl, k * cs + i);
                if (sd < 0)
                    continue;
                const long off = sd - s0;
                pg->idx[e][i] = (uint8_t)(off & 127);
                pg->zm[e] |= (uint64_t)1 << i;
                if (off >= 128)
                    pg->bm[e] |= (uint64_t)1 << i, pg->wide[e] = 1;
            }
            pg->full[e] = 1;
            for (int b = 0; b < 4; b++) {
                const long n = plane - (s0 + 64L * b);
                pg->lm[e][b] = n >= 64 ? ~(uint64_t)0 : n <= 0 ? 0 : (((uint64_t)1 << n) - 1);
                pg->full[e] &= n >= 64;
            }
        }
        return 1;
    }
    return 0;
}

/* Everything about a conv that does not depend on the batch or the data:
 * geometry, the input row runs, the expansion masks (stride 1) or gather
 * tables (strides > 1), and the weights in A-tile layout. Read-only once
 * built, so one prep serves concurrent calls (each with its own scratch). */
struct bp_qk_amx_prep {
    amx_geom gm;
    int nxc, has_xb, has_pg;
    xrun runs[MAX_RUNS];
    xblocks xb;
    pgather pg;
    uint8_t *packed; /* group · nmb · nouter · nch A tiles, 64-byte aligned */
};

int bp_qk_amx_prepare(const bp_qconv_params *p, const uint8_t *wpanel, bp_qk_amx_prep **out)
{
    *out = NULL;
    amx_geom gm;
    if (p->group < 1 || p->cin < p->group || p->cout < p->group || !geom_of(p, &gm))
        return 0;
    bp_qk_amx_prep *ap = malloc(sizeof *ap);
    if (!ap)
        return -1;
    memset(ap, 0, sizeof *ap);
    ap->gm = gm;
    if (!row_runs(p, &ap->gm, ap->runs, &ap->nxc)) {
        free(ap);
        return 0;
    }
    ap->has_xb = expand_blocks(p, &ap->gm, &ap->xb);
    /* the gather tables cost as much as a small batch-1 conv */
    ap->has_pg = !ap->has_xb && pgather_of(p, &ap->gm, &ap->pg);
    ap->packed = aligned_alloc(64, (packed_bytes(p, &ap->gm) + 63) / 64 * 64);
    if (!ap->packed) {
        free(ap);
        return -1;
    }
    pack_weights(p, &ap->gm, wpanel, ap->packed);
    *out = ap;
    return 1;
}

void bp_qk_amx_prep_free(bp_qk_amx_prep *ap)
{
    if (!ap)
        return;
    free(ap->packed);
    free(ap);
}

/* Chunk e of the phase planes of the channel plane at sp (see pgather). */
AMX static inline __attribute__((always_inline)) __m512i gather_chunk(const pgather *pg, int e, const uint8_t *sp)
{
    const uint8_t *base = sp + pg->smin[e];
    const uint64_t *lm = pg->lm[e];
    const __mmask64 zm = (__mmask64)pg->zm[e];
    const __m512i ix = _mm512_loadu_si512((const void *)pg->idx[e]);
    __m512i r;
    if (pg->full[e]) { /* the common case: plain loads */
        r = _mm512_maskz_permutex2var_epi8(zm, _mm512_loadu_si512((const void *)base), ix,
                                           _mm512_loadu_si512((const void *)(base + 64)));
        if (pg->wide[e])
            r = _mm512_mask_blend_epi8((__mmask64)pg->bm[e], r,
                                       _mm512_maskz_permutex2var_epi8(zm, _mm512_loadu_si512((const void *)(base + 128)),
                                                                      ix, _mm512_loadu_si512((const void *)(base + 192))));
        return r;
    }
    r = _mm512_maskz_permutex2var_epi8(zm, _mm512_maskz_loadu_epi8(lm[0], (const void *)base), ix,
                                       _mm512_maskz_loadu_epi8(lm[1], (const void *)(base + 64)));
    if (pg->wide[e])
        r = _mm512_mask_blend_epi8((__mmask64)pg->bm[e], r,
                                   _mm512_maskz_permutex2var_epi8(zm, _mm512_maskz_loadu_epi8(lm[2], (const void *)(base + 128)),
                                                                  ix, _mm512_maskz_loadu_epi8(lm[3], (const void *)(base + 192))));
    return r;
}

/* 64 pixels of slot 0's phase plane from chunk k on (64 / cs chunks; past
 * the last chunk, zeros: a chunk's bytes past cs are zero, zm covers only
 * the chunk). */
AMX static inline __attribute__((always_inline)) __m512i gather64(const pgather *pg, int k, const uint8_t *sp)
{
    __m512i r = gather_chunk(pg, k, sp);
    if (pg->cs == 64)
        return r;
    if (pg->cs == 32)
        return k + 1 < pg->nck ? _mm512_inserti64x4(r, _mm512_castsi512_si256(gather_chunk(pg, k + 1, sp)), 1) : r;
    if (k + 1 < pg->nck)
        r = _mm512_inserti32x4(r, _mm512_castsi512_si128(gather_chunk(pg, k + 1, sp)), 1);
    if (k + 2 < pg->nck)
        r = _mm512_inserti32x4(r, _mm512_castsi512_si128(gather_chunk(pg, k + 2, sp)), 2);
    if (k + 3 < pg->nck)
        r = _mm512_inserti32x4(r, _mm512_castsi512_si128(gather_chunk(pg, k + 3, sp)), 3);
    return r;
}

AMX static void build_quads(const bp_qconv_params *p, const amx_geom *gm, const amx_plan *pl, const uint8_t *in,
                            size_t istride, int nb, const xrun *runs, int nxc, const xblocks *xb,
                            const pgather *pg, uint8_t *T, uint8_t *QB, uint8_t *Q)
{
    const int sh = gm->sh, sw = gm->sw, wps = gm->wps, hps = gm->hps, cl = 64 / sw;
    const size_t plane = (size_t)p->h * p->w, img = img_px(gm), L = (size_t)nb * img, lq = lq_of(gm, nb);
    const size_t tch = tch_of(gm, nb);
    __m512i sel;
    {
        uint8_t idx[64];
        for (int j = 0; j < 64; j++)
            idx[j] = (uint8_t)(j < cl ? j * sw : 0);
        sel = _mm512_loadu_si512((const void *)idx);
    }
    const int direct = gm->mode == REP_NONE && gm->nslot == 1 && sh == 1 && sw == 1 && hps == p->h &&
                       wps == p->w && !p->pad_t && !p->pad_l;
    const __m512i zero = _mm512_setzero_si512();
    if (direct && nb > 1 && img <= 64) {
        /* planes of one block (7x7): a quad's nb planes per channel first
         * copied end to end into T (a masked load and a store per plane;
         * each store's spill is overwritten by the next plane or lands in
         * T's slack), then interleaved as one plane: faster than assembling
         * each 64-pixel block from its images' runs (128>32 1x1 at 7x7,
         * batch 64: 61 against 67 us) */
        for (int cq = 0; cq < gm->cqn; cq++) {
            const uint8_t *src[4];
            for (int t = 0; t < 4; t++) {
                const int ci = 4 * cq + t;
                src[t] = NULL;
                if (ci >= gm->cig)
                    continue;
                uint8_t *tp = T + (size_t)t * tch;
                src[t] = tp;
                const __mmask64 m = img >= 64 ? ~(__mmask64)0 : (__mmask64)((((uint64_t)1) << img) - 1);
                for (int j = 0; j < nb; j++)
                    _mm512_storeu_si512((void *)(tp + (size_t)j * img),
                                        _mm512_maskz_loadu_epi8(m, (const void *)(in + (size_t)j * istride +
                                                                                  (size_t)ci * plane)));
            }
            interleave(src, L, Q + (size_t)cq * lq * 4);
        }
        return;
    }
    if (direct && nb > 1 && img < 256 && img > 64) {
        for (int cq = 0; cq < gm->cqn; cq++) {
            const uint8_t *src[4];
            for (int t = 0; t < 4; t++)
                src[t] = 4 * cq + t < gm->cig ? in + (size_t)(4 * cq + t) * plane : NULL;
            interleave_images(src, istride, img, nb, Q + (size_t)cq * lq * 4);
        }
        return;
    }
    if (pg && gm->mode == REP_NONE && gm->nslot == 1 && gm->nsy == 1) {
        /* one phase plane (1x1 strided): each 64-pixel chunk of the four
         * channels gathered and interleaved in registers, straight into Q
         * (a chunk's spill past its image is overwritten by the next one,
         * past the plane it lands in the next row's plane, written later,
         * or in rows and slack nothing stored reads) */
        for (int cq = 0; cq < gm->cqn; cq++) {
            const int nt = gm->cig - 4 * cq < 4 ? gm->cig - 4 * cq : 4;
            for (int j = 0; j < nb; j++) {
                const uint8_t *sp = in + (size_t)j * istride + (size_t)4 * cq * plane;
                uint8_t *q = Q + ((size_t)cq * lq + (size_t)j * img) * 4;
                for (int k = 0; k < pg->nck; k += 64 / pg->cs, q += 256) {
                    const __m512i z = _mm512_setzero_si512();
                    __m512i o[4];
                    quad4(gather64(pg, k, sp), nt > 1 ? gather64(pg, k, sp + plane) : z,
                          nt > 2 ? gather64(pg, k, sp + 2 * plane) : z, nt > 3 ? gather64(pg, k, sp + 3 * plane) : z,
                          o);
                    for (int i = 0; i < 4; i++)
                        _mm512_storeu_si512((void *)(q + 64 * i), o[i]);
                }
            }
        }
        return;
    }
    if (direct) { /* 1x1-like: the input planes are the phase planes */
        for (int cq = 0; cq < gm->cqn; cq++)
            for (int j = 0; j < nb; j++) {
                const uint8_t *src[4];
                for (int t = 0; t < 4; t++)
                    src[t] = 4 * cq + t < gm->cig ? in + (size_t)j * istride + (size_t)(4 * cq + t) * plane : NULL;
                interleave(src, plane, Q + ((size_t)cq * lq + (size_t)j * img) * 4);
            }
        return;
    }
    for (int cq = 0; cq < gm->cqn; cq++) {
        const uint8_t *tb[4];
        for (int t = 0; t < 4; t++) {
            const int ci = 4 * cq + t;
            uint8_t *tp = T + (size_t)t * tch;
            if (ci >= gm->cig) {
                tb[t] = NULL;
                continue;
            }
            tb[t] = tp;
            if (xb) {
                for (int j = 0; j < nb; j++) {
                    const uint8_t *sp = in + (size_t)j * istride + (size_t)ci * plane;
                    uint8_t *d = tp + (size_t)j * img;
                    /* the last block spills into the next image's plane
                     * (written next) or T's slack */
                    for (int b = 0; b < xb->nblk; b++, d += 64) {
                        _mm512_storeu_si512((void *)d, _mm512_maskz_expandloadu_epi8((__mmask64)xb->m[b], (const void *)sp));
                        sp += xb->cnt[b];
                    }
                }
                continue;
            }
            if (pg) {
                for (int j = 0; j < nb; j++) {
                    const uint8_t *sp = in + (size_t)j * istride + (size_t)ci * plane;
                    for (int e = 0, slot = 0, k = 0; e < gm->nslot * pg->nck; e++, k++) {
                        if (k == pg->nck)
                            k = 0, slot++;
                        uint8_t *dst = tp + ((size_t)slot * nb + j) * img + (size_t)k * pg->cs;
                        _mm512_mask_storeu_epi8(dst, (__mmask64)pg->sm[k], gather_chunk(pg, e, sp));
                    }
                }
                continue;
            }
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
        if (gm->mode != REP_ALL) {
            for (int rep = 0; rep < gm->nrep; rep++)
                for (int sy = 0; sy < gm->nsy; sy++) {
                    const uint8_t *src[4];
                    const ptrdiff_t off = pl->src_slot[rep][sy] + pl->shift[rep][sy];
                    for (int t = 0; t < 4; t++)
                        src[t] = tb[t] ? tb[t] + off : NULL;
                    interleave(src, L, Q + (((size_t)rep * gm->cqn + cq) * lq + sy * lplane_of(gm, nb)) * 4);
                }
            continue;
        }
        /* every tap a replica: they are shifted copies of the quads (the shift
         * is the same for the four channels), so each slot is interleaved once
         * into QB and copied, which is cheaper than interleaving khw times */
        for (int slot = 0; slot < gm->nslot; slot++) {
            const uint8_t *src[4];
            for (int t = 0; t < 4; t++)
                src[t] = tb[t] ? tb[t] + (size_t)slot * L : NULL;
            interleave(src, L, QB + (size_t)slot * L * 4);
        }
        for (int rep = 0; rep < gm->nrep; rep++)
            for (int sy = 0; sy < gm->nsy; sy++) {
                const uint8_t *from = QB + (pl->src_slot[rep][sy] + pl->shift[rep][sy]) * 4;
                uint8_t *to = Q + (((size_t)rep * gm->cqn + cq) * lq + sy * lplane_of(gm, nb)) * 4;
                size_t i = 0;
                for (; i + 256 <= L * 4; i += 256) {
                    const __m512i a = _mm512_loadu_si512((const void *)(from + i)),
                                  b = _mm512_loadu_si512((const void *)(from + i + 64)),
                                  c = _mm512_loadu_si512((const void *)(from + i + 128)),
                                  d = _mm512_loadu_si512((const void *)(from + i + 192));
                    _mm512_storeu_si512((void *)(to + i), a);
                    _mm512_storeu_si512((void *)(to + i + 64), b);
                    _mm512_storeu_si512((void *)(to + i + 128), c);
                    _mm512_storeu_si512((void *)(to + i + 192), d);
                }
                /* rows are not written in address order: no spill past the plane */
                for (; i < L * 4; i += 64) {
                    const size_t n = L * 4 - i < 64 ? L * 4 - i : 64;
                    const __mmask64 m = n == 64 ? ~(__mmask64)0 : (__mmask64)((((uint64_t)1) << n) - 1);
                    _mm512_mask_storeu_epi8((void *)(to + i), m, _mm512_maskz_loadu_epi8(m, (const void *)(from + i)));
                }
            }
    }
}

/* ---- epilogue ---------------------------------------------------------------- */

/* Per output row: the requantization folded into one rounding. With
 * P = x·m + 2^30 (int64, m > 0) and right shift e, SRDHM then RDBPOT equal
 *   (P + 2^(30+e) − [x < 0]·2^31) >> (31 + e)   for e >= 1,   P >> 31 for e = 0
 * (floor((floor(P/2^31) + c)/2^e) = floor((P/2^31 + c)/2^e) for integer c;
 * t = floor(P/2^31) < 0 exactly when P < 0, and P < 0 differs from x < 0
 * only at x = −1, m = 2^30, where both forms give 0). The shift-only form
 * (m = 0) is the same with x·2^30 in place of P: (x·2^30 + 2^(29+e) −
 * [x < 0]·2^30) >> (30 + e). The [x < 0] term only moves results that are
 * <= 0 either way, so it is skipped when the clamp's minimum is >= 0. Left
 * shifts take bp_requant.
 *
 * A shift s >= 32 is done as floor(floor(Y/2^32)/2^(s−32)) (nested floors
 * of integer divisions are exact): the high dwords of the 64-bit sums are
 * picked by a shuffle and a blend, and one 32-bit shift of all 16 lanes
 * replaces two 64-bit shifts and a move; the 512-bit shifts and multiplies
 * share one port, the shuffles and blends do not. Rows with s = 31 keep the
 * 64-bit shift. */
enum { RQ_SCALAR, RQ_SHIFT64, RQ_HIGH32 };

typedef struct {
    int32_t m;   /* multiplier for vpmuldq */
    int32_t vec; /* RQ_*: bp_requant, 64-bit shift by s, high dword then s − 32 */
    int64_t k, d, s;
    int64_t kb;   /* k + bias·m: the bias folded into the rounding constant */
    int32_t bias; /* added in the epilogue when the C tiles start from zero */
    int32_t pad_;
} rowpar;
_Static_assert(sizeof(rowpar) == 48, "bp_qk_amx_scratch counts 48 bytes per row");

static rowpar row_of(bp_qmul q, int32_t bias)
{
    rowpar r = {0, RQ_HIGH32, 0, 0, 32, 0, bias, 0};
    if (q.shift > 0 || (q.mult != 0 && q.shift < -31)) {
        r.vec = RQ_SCALAR;
        return r;
    }
    if (q.mult == 0 && q.shift < -31)
        return r; /* the zero multiplier: m = 0 gives 0 */
    const int e = -q.shift, base = q.mult ? 31 : 30;
    r.m = q.mult ? q.mult : 1 << 30;
    r.k = (q.mult ? (int64_t)1 << 30 : 0) + (e ? (int64_t)1 << (base - 1 + e) : 0);
    r.d = e ? (int64_t)1 << base : 0;
    r.s = base + e;
    r.vec = r.s >= 32 ? RQ_HIGH32 : RQ_SHIFT64;
    /* |bias·m| < 2^62: the sum stays exact in int64 as long as the caller's
     * accumulator + bias fits int32 (qkernels.h) */
    r.kb = r.k + (int64_t)bias * r.m;
    return r;
}

/* A row's constants, broadcast once for all its tiles. fold: the bias is
 * in kb (only without the [x < 0] term, whose sign test sees x·m alone). */
typedef struct {
    __m512i vm, vk, vd, vs;
    int vec;
    int32_t badd; /* bp_requant rows: the folded bias, added back */
} rqc;

AMX static inline rqc rq_consts(const rowpar *rp, int fold)
{
    rqc c;
    c.vec = rp->vec;
    c.badd = fold ? rp->bias : 0;
    c.vm = _mm512_set1_epi32(rp->m);
    c.vk = _mm512_set1_epi64(fold ? rp->kb : rp->k);
    c.vd = _mm512_set1_epi64(rp->d); /* dead (and dropped) unless the [x < 0] term is needed */
    c.vs = c.vec == RQ_HIGH32 ? _mm512_set1_epi32((int32_t)(rp->s - 32)) : _mm512_set1_epi64(rp->s);
    return c;
}

/* The rows bp_requant takes (left shifts, tiny multipliers): out of line,
 * so that the vector loops keep their registers. */
__attribute__((noinline)) static void rq_scalar(int32_t *res, int32_t badd, const bp_qmul *qm)
{
    for (int j = 0; j < 16; j++)
        res[j] = bp_requant(res[j] + badd, *qm);
}

/* 16 int32 (accumulators, with the bias unless folded) requantized, not
 * clamped; vec is a constant at each call (rq_apply below). */
AMX static inline __attribute__((always_inline)) __m512i rq_vec(__m512i x, const rqc *c, const bp_qmul *qm,
                                                                int neg, int vec)
{
    if (vec == RQ_SCALAR) {
        int32_t res[16];
        _mm512_storeu_si512((void *)res, x);
        rq_scalar(res, c->badd, qm);
        return _mm512_loadu_si512((const void *)res);
    }
    const __m512i pe = _mm512_mul_epi32(x, c->vm);
    const __m512i po = _mm512_mul_epi32(_mm512_shuffle_epi32(x, (_MM_PERM_ENUM)0xF5), c->vm);
    __m512i ye = _mm512_add_epi64(pe, c->vk), yo = _mm512_add_epi64(po, c->vk);
    if (neg) {
        const __m512i z = _mm512_setzero_si512();
        ye = _mm512_mask_sub_epi64(ye, _mm512_cmplt_epi64_mask(pe, z), ye, c->vd);
        yo = _mm512_mask_sub_epi64(yo, _mm512_cmplt_epi64_mask(po, z), yo, c->vd);
    }
    if (vec == RQ_HIGH32)
        return _mm512_srav_epi32(_mm512_mask_blend_epi32(0xAAAA, _mm512_shuffle_epi32(ye, (_MM_PERM_ENUM)0xF5), yo),
                                 c->vs);
    ye = _mm512_srav_epi64(ye, c->vs);
    yo = _mm512_srav_epi64(yo, c->vs);
    return _mm512_mask_blend_epi32(0xAAAA, ye, _mm512_slli_epi64(yo, 32));
}

AMX static inline __attribute__((always_inline)) __m512i rq_apply(__m512i x, const rqc *c, const bp_qmul *qm, int neg)
{
    if (__builtin_expect(c->vec == RQ_HIGH32, 1))
        return rq_vec(x, c, qm, neg, RQ_HIGH32);
    return c->vec == RQ_SHIFT64 ? rq_vec(x, c, qm, neg, RQ_SHIFT64) : rq_vec(x, c, qm, neg, RQ_SCALAR);
}

typedef struct {
    const bp_qconv_params *p;
    const rowpar *rp;    /* the group's rows */
    int add_bias;        /* the C tiles started from zero, not the bias */
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
    int oh, ow, wps, hps;
    int nb;
    size_t istride;    /* output elements between images */
} flatmap;

/* Walks the flats in order, 16 at a time, without divisions. */
typedef struct {
    int j, oy, ox;
} fcursor;

static void advance(const flatmap *fm, fcursor *c, int n)
{
    c->ox += n;
    while (c->ox >= fm->wps) {
        c->ox -= fm->wps;
        if (++c->oy == fm->hps)
            c->oy = 0, c->j++;
    }
}

/* The output runs of the next 16 flats. */
static int segments(const flatmap *fm, fcursor *c, seg *sg)
{
    int ns = 0, f = 0;
    while (f < 16) {
        const int rem = 16 - f;
        if (c->j >= fm->nb) {
            advance(fm, c, rem);
            break;
        }
        int n;
        if (c->oy >= fm->oh)
            n = (fm->hps - c->oy) * fm->wps - c->ox;
        else if (c->ox >= fm->ow)
            n = fm->wps - c->ox;
        else {
            n = fm->ow - c->ox < rem ? fm->ow - c->ox : rem;
            const size_t at = (size_t)c->j * fm->istride + (size_t)c->oy * fm->ow + c->ox;
            if (ns && sg[ns - 1].lo + sg[ns - 1].n == f && sg[ns - 1].at + sg[ns - 1].n == at) {
                /* continues the previous run (no garbage columns between rows) */
                sg[ns - 1].n += n;
                sg[ns - 1].m |= (__mmask16)(((1u << (f + n)) - 1) & ~((1u << f) - 1));
            } else {
                sg[ns].lo = f;
                sg[ns].n = n;
                sg[ns].m = (__mmask16)(((1u << (f + n)) - 1) & ~((1u << f) - 1));
                sg[ns].at = at;
                ns++;
            }
        }
        n = n < rem ? n : rem;
        advance(fm, c, n);
        f += n;
    }
    return ns;
}

/* Rows outside, tiles inside: a run of lanes lo .. lo+n−1 is one masked
 * store at the run's address minus lo (masked-off lanes are not written),
 * so no compress; a tile that is one whole run is the same store with
 * every lane. off[t][k]: run k of tile t's address for row 0 minus lo;
 * rows are rstep bytes apart. Constant type, neg, addb and need_hi at each
 * call give loops without those branches. */
AMX static inline __attribute__((always_inline)) void
store_runs(const int32_t *c, int nt, int rend, const rowpar *rp0, const bp_qmul *qm0, int fold,
           uintptr_t (*off)[16], __mmask16 (*sm)[16], const int *ns, size_t rstep, bp_qtype type, int neg,
           int addb, int need_hi, __m512i vlo, __m512i vhi)
{
    for (int i = 0; i < rend; i++) {
        const rqc q = rq_consts(rp0 + i, fold);
        const __m512i vb = addb ? _mm512_set1_epi32(rp0[i].bias) : _mm512_setzero_si512();
        const uintptr_t ro = (uintptr_t)i * rstep;
        for (int t = 0; t < nt; t++) {
            if (!ns[t])
                continue;
            __m512i x = _mm512_loadu_si512((const void *)(c + 256 * t + 16 * i));
            if (addb)
                x = _mm512_add_epi32(x, vb);
            x = _mm512_max_epi32(rq_apply(x, &q, qm0 + i, neg), vlo);
            if (need_hi)
                x = _mm512_min_epi32(x, vhi);
            if (type == BP_QT_S32) {
                for (int k = 0; k < ns[t]; k++)
                    _mm512_mask_storeu_epi32((void *)(off[t][k] + ro), sm[t][k], x);
                continue;
            }
            /* clamped to the type's range: the saturating conversions are exact */
            const __m128i v = type == BP_QT_U8 ? _mm512_cvtusepi32_epi8(x) : _mm512_cvtsepi32_epi8(x);
            for (int k = 0; k < ns[t]; k++)
                _mm_mask_storeu_epi8((void *)(off[t][k] + ro), sm[t][k], v);
        }
    }
}

/* One row of one stored C tile requantized (and clamped when clamp). */
AMX static inline __attribute__((always_inline)) __m512i row_tile(const int32_t *c, const rqc *q, const bp_qmul *qm,
                                                                  __m512i vb, int neg, int clamp, int addb,
                                                                  __m512i vlo, __m512i vhi)
{
    __m512i x = _mm512_loadu_si512((const void *)c);
    if (addb)
        x = _mm512_add_epi32(x, vb);
    x = rq_apply(x, q, qm, neg);
    return clamp ? _mm512_min_epi32(_mm512_max_epi32(x, vlo), vhi) : x;
}

/* nt = 2 or 4 tiles whose runs (lanes set in the nt·16 bits of lanes, cnt
 * of them) are one contiguous stretch of output at o (row 0; rows oplane
 * apart), 8-bit output: per row, vpackssdw then vpackuswb (vpacksswb for
 * int8) saturate exactly like the clamp to the type's range (the clamp
 * is applied first when narrower, clamp = 1), one vpermd puts the 128-bit
 * lanes back in flat order, and vpcompressb squeezes out the garbage flats
 * (unless there are none): one store per row instead of one per run and
 * tile. */
AMX static inline __attribute__((always_inline)) void
store_packed(const int32_t *c, int nt, int rend, const rowpar *rp0, const bp_qmul *qm0, int fold, uint64_t lanes,
             int cnt, uint8_t *o, size_t oplane, bp_qtype type, int neg, int clamp, int addb, __m512i vlo,
             __m512i vhi)
{
    const __m512i perm = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    const uint64_t all = nt == 4 ? ~(uint64_t)0 : 0xFFFFFFFFull;
    const __mmask64 km = (__mmask64)lanes, sm = cnt >= 64 ? ~(__mmask64)0 : (__mmask64)((((uint64_t)1) << cnt) - 1);
    for (int i = 0; i < rend; i++, o += oplane) {
        const rqc q = rq_consts(rp0 + i, fold);
        const __m512i vb = addb ? _mm512_set1_epi32(rp0[i].bias) : _mm512_setzero_si512();
        const int32_t *ci = c + 16 * i;
        const bp_qmul *qi = qm0 + i;
        const __m512i w01 = _mm512_packs_epi32(row_tile(ci, &q, qi, vb, neg, clamp, addb, vlo, vhi),
                                               row_tile(ci + 256, &q, qi, vb, neg, clamp, addb, vlo, vhi));
        const __m512i w23 = nt == 4 ? _mm512_packs_epi32(row_tile(ci + 512, &q, qi, vb, neg, clamp, addb, vlo, vhi),
                                                         row_tile(ci + 768, &q, qi, vb, neg, clamp, addb, vlo, vhi))
                                    : w01;
        __m512i b = _mm512_permutexvar_epi32(
            perm, type == BP_QT_U8 ? _mm512_packus_epi16(w01, w23) : _mm512_packs_epi16(w01, w23));
        if (lanes == all) {
            if (nt == 4)
                _mm512_storeu_si512((void *)o, b);
            else
                _mm256_storeu_si256((__m256i *)o, _mm512_castsi512_si256(b));
        } else
            _mm512_mask_storeu_epi8((void *)o, sm, _mm512_maskz_compress_epi8(km, b));
    }
}

/* Rows r0 .. r0+15 (those < cog) of nt stored C tiles (16 × 16 int32 each,
 * 256 apart in c) covering consecutive 16-flat runs with segments sg[t]. A
 * tile that is one whole output run (the common case) takes a loop with
 * plain stores; the loops keep everything in registers (stores through
 * byte pointers would otherwise force reloads). Each row's constants are
 * broadcast once for all its tiles. */
AMX static void store_tiles(const epi *e, const int32_t *c, int nt, int r0, seg (*sg)[16], const int *ns, int cog)
{
    const bp_qconv_params *p = e->p;
    const __m512i vlo = _mm512_set1_epi32(p->out_min), vhi = _mm512_set1_epi32(p->out_max);
    const bp_qtype type = p->out_type;
    const int neg = p->out_min < 0, need_hi = !(type == BP_QT_U8 && p->out_max == 255), ab = e->add_bias;
    /* the bias goes into the rounding constant unless the sign test needs x */
    const int fold = ab && !neg, addb = ab && neg;
    const size_t osz = type == BP_QT_S32 ? 4 : 1, oplane = e->oplane;
    const int rend = cog - r0 < 16 ? cog - r0 : 16;
    const rowpar *rp0 = e->rp + r0;
    const bp_qmul *qm0 = e->qm + r0;
    if (type != BP_QT_S32 && (nt == 2 || nt == 4)) {
        /* the runs of all nt tiles, in lane order, one contiguous stretch
         * of output (rows of one image, only garbage flats between them) */
        uint64_t lanes = 0;
        size_t at0 = 0, next = 0;
        int cnt = 0, contig = 1;
        for (int t = 0; t < nt; t++)
            for (int k = 0; k < ns[t]; k++) {
                if (cnt && sg[t][k].at != next)
                    contig = 0;
                if (!cnt)
                    at0 = sg[t][k].at;
                next = sg[t][k].at + (size_t)sg[t][k].n;
                cnt += sg[t][k].n;
                lanes |= (uint64_t)sg[t][k].m << (16 * t);
            }
        if (!cnt)
            return;
        if (contig) {
            uint8_t *o = (uint8_t *)e->out + (size_t)(r0) * oplane + at0;
            const int lo_in = type == BP_QT_U8 ? p->out_min <= 0 : p->out_min <= -128;
            const int hi_in = type == BP_QT_U8 ? p->out_max >= 255 : p->out_max >= 127;
            /* constant arguments: loops without those branches for the
             * common ReLU case */
            if (type == BP_QT_U8 && !neg && lo_in && hi_in) {
                if (nt == 4)
                    store_packed(c, 4, rend, rp0, qm0, fold, lanes, cnt, o, oplane, BP_QT_U8, 0, 0, 0, vlo, vhi);
                else
                    store_packed(c, 2, rend, rp0, qm0, fold, lanes, cnt, o, oplane, BP_QT_U8, 0, 0, 0, vlo, vhi);
            } else
                store_packed(c, nt, rend, rp0, qm0, fold, lanes, cnt, o, oplane, type, neg, !(lo_in && hi_in),
                             addb, vlo, vhi);
            return;
        }
    }
    /* every other case, rows outside (store_runs) */
    uintptr_t off[4][16];
    __mmask16 sm[4][16];
    for (int t = 0; t < nt; t++)
        for (int k = 0; k < ns[t]; k++) {
            off[t][k] = (uintptr_t)(((uint8_t *)e->out + ((size_t)r0 * oplane + sg[t][k].at) * osz)) -
                        (uintptr_t)sg[t][k].lo * osz;
            sm[t][k] = sg[t][k].m;
        }
    const size_t rstep = oplane * osz;
    if (type == BP_QT_U8 && !neg && !addb) {
        if (need_hi)
            store_runs(c, nt, rend, rp0, qm0, fold, off, sm, ns, rstep, BP_QT_U8, 0, 0, 1, vlo, vhi);
        else
            store_runs(c, nt, rend, rp0, qm0, fold, off, sm, ns, rstep, BP_QT_U8, 0, 0, 0, vlo, vhi);
    } else if (type == BP_QT_S8 && neg)
        store_runs(c, nt, rend, rp0, qm0, fold, off, sm, ns, rstep, BP_QT_S8, 1, addb, 1, vlo, vhi);
    else
        store_runs(c, nt, rend, rp0, qm0, fold, off, sm, ns, rstep, type, neg, addb, need_hi, vlo, vhi);
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

/* C tiles 0..3 from the bias rows of row blocks r0 (tiles 0, 1) and r1
 * (tiles 2, 3), or zero (btile NULL). */
AMX static inline __attribute__((always_inline)) void c_start(const int32_t *btile, int r0, int r1)
{
    if (btile) {
        _tile_loadd(0, btile + 256 * r0, 64);
        _tile_loadd(1, btile + 256 * r0, 64);
        _tile_loadd(2, btile + 256 * r1, 64);
        _tile_loadd(3, btile + 256 * r1, 64);
    } else {
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
    }
}

AMX static inline __attribute__((always_inline)) void c_store(int32_t *c)
{
    _tile_stored(0, c, 64);
    _tile_stored(1, c + 256, 64);
    _tile_stored(2, c + 512, 64);
    _tile_stored(3, c + 768, 64);
}

/* The epilogue of a 2x2 block: row blocks mb and mb + 1, two tiles each. */
AMX static void store_wide(const epi *e, const int32_t *c, int mb, seg (*sg)[16], const int *ns, int cog)
{
    store_tiles(e, c, 2, 16 * mb, sg, ns, cog);
    if (16 * (mb + 1) < cog)
        store_tiles(e, c + 512, 2, 16 * (mb + 1), sg, ns, cog);
}

/* Software pipelined: block i's tile loads and tdps are issued before block
 * i−1's epilogue, so the TMUL works while the vector units requantize (two
 * C buffers, two segment sets). */
AMX static void run_group(const amx_geom *gm, const epi *e, const flatmap *fm, const uint8_t *W, const uint8_t *Q,
                          size_t lq, const ptrdiff_t *toff, size_t nflat, int u8, const int32_t *btile, int32_t *cbuf)
/* btile NULL: the C tiles start from zero and the epilogue adds the bias
 * (one tdp per tile: the bias loads would be a quarter of the tile traffic) */
{
    const size_t tb = gm->tile_bytes, qstride = lq * 4, kcq = (size_t)gm->kc * qstride;
    const int nouter = gm->nouter, nch = gm->nch, astride = 64, cog = gm->cog;
    seg sg[2][4][16];
    int ns[2][4];
    fcursor cur = {0, 0, 0};
    int32_t *cb[2] = {cbuf, cbuf + 1024};
    int pend = 0, pmb = 0, psg = 0, blk = 0;
    if (gm->wide) {
        for (size_t f0 = 0; f0 < nflat; f0 += 32) {
            const int si = (int)(f0 / 32) & 1;
            ns[si][0] = segments(fm, &cur, sg[si][0]);
            ns[si][1] = segments(fm, &cur, sg[si][1]);
            for (int mb = 0; mb < gm->nmb; mb += 2, blk++) {
                const uint8_t *w0 = W + (size_t)mb * nouter * nch * tb, *w1 = w0 + (size_t)nouter * nch * tb;
                /* C starts from the bias rows */
                c_start(btile, mb, mb + 1);
                for (int o = 0; o < nouter; o++) {
                    const uint8_t *b = Q + (toff[o] + f0) * 4;
                    for (int ch = 0; ch < nch; ch++, b += kcq) {
                        const size_t wo = ((size_t)o * nch + ch) * tb;
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
                if (pend)
                    store_wide(e, cb[(blk - 1) & 1], pmb, sg[psg], ns[psg], cog);
                c_store(cb[blk & 1]);
                pend = 1, pmb = mb, psg = si;
            }
        }
        if (pend)
            store_wide(e, cb[(blk - 1) & 1], pmb, sg[psg], ns[psg], cog);
    } else {
        for (size_t f0 = 0; f0 < nflat; f0 += 64, blk++) {
            const int si = blk & 1;
            for (int t = 0; t < 4; t++)
                ns[si][t] = segments(fm, &cur, sg[si][t]);
            c_start(btile, 0, 0);
            for (int o = 0; o < nouter; o++) {
                const uint8_t *b = Q + (toff[o] + f0) * 4;
                for (int ch = 0; ch < nch; ch++, b += kcq) {
                    _tile_loadd(4, W + ((size_t)o * nch + ch) * tb, astride);
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
            if (pend)
                store_tiles(e, cb[si ^ 1], 4, 0, sg[si ^ 1], ns[si ^ 1], cog);
            c_store(cb[si]);
            pend = 1;
        }
        if (pend)
            store_tiles(e, cb[(blk - 1) & 1], 4, 0, sg[(blk - 1) & 1], ns[(blk - 1) & 1], cog);
    }
}

AMX void bp_qconv_amx(const bp_qconv_params *p, const void *in, const bp_qk_amx_prep *ap, const int32_t *bias,
                      const bp_qmul *qm, void *out, void *scratch)
{
    const amx_geom gm = ap->gm;
    const xrun *runs = ap->runs;
    const int nxc = ap->nxc;
    const xblocks *xb = ap->has_xb ? &ap->xb : NULL;
    const pgather *pg = ap->has_pg ? &ap->pg : NULL;
    int oh, ow;
    bp_qconv_out_hw(p, &oh, &ow);
    const size_t plane = (size_t)p->h * p->w, oplane = (size_t)oh * ow, img = img_px(&gm);
    const size_t lqmax = lq_of(&gm, gm.nbmax);
    const size_t qbytes = ((size_t)gm.nrp * lqmax + q_slack(&gm)) * 4;
    uint8_t *Q = (uint8_t *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    uint8_t *T = Q + (qbytes + 63) / 64 * 64;
    uint8_t *QB = T + 4 * tch_of(&gm, gm.nbmax);
    int32_t *cbuf = (int32_t *)(QB + 4 * tch_of(&gm, gm.nbmax));
    const size_t rows = (size_t)gm.nmb * 16;
    int32_t *btile = cbuf + 2048;               /* rows x 16: each row's bias, repeated */
    rowpar *rp = (rowpar *)(btile + rows * 16); /* rows */
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
    const size_t per_group = (size_t)gm.nmb * gm.nouter * gm.nch * gm.tile_bytes;
    const int zero_c = gm.nouter * gm.nch == 1;
    const size_t osz = bp_qtype_size(p->out_type);
    for (int g = 0; g < p->group; g++) {
        const bp_qmul *gq = qm + (size_t)g * gm.cog;
        for (size_t r = 0; r < rows; r++) {
            const int real = r < (size_t)gm.cog;
            const int32_t b = real && bias ? bias[(size_t)g * gm.cog + r] : 0;
            for (int j = 0; j < 16; j++)
                btile[r * 16 + j] = b;
            rp[r] = row_of(real ? gq[r] : (bp_qmul){0, BP_QMUL_ZERO_SHIFT}, b);
        }
        for (int n0 = 0; n0 < p->n; n0 += gm.nbmax) {
            const int nb = p->n - n0 < gm.nbmax ? p->n - n0 : gm.nbmax;
            const size_t lq = lq_of(&gm, nb);
            amx_plan pl;
            plan_of(p, &gm, nb, &pl);
            /* the slack after this pass's planes: read only by flats never stored */
            memset(Q + (size_t)gm.nrp * lq * 4, 0, q_slack(&gm) * 4);
            const uint8_t *gin = (const uint8_t *)in + ((size_t)n0 * p->cin + (size_t)g * gm.cig) * plane;
            build_quads(p, &gm, &pl, gin, (size_t)p->cin * plane, nb, &runs[0], nxc, xb, pg, T, QB, Q);
            epi e = {p, rp, zero_c, gq, (uint8_t *)out + ((size_t)n0 * p->cout + (size_t)g * gm.cog) * oplane * osz,
                     oplane};
            flatmap fm = {oh, ow, gm.wps, gm.hps, nb, (size_t)p->cout * oplane};
            const size_t nflat = (size_t)(nb - 1) * img + (size_t)oh * gm.wps;
            run_group(&gm, &e, &fm, ap->packed + (size_t)g * per_group, Q, lq, pl.toff, nflat,
                      p->in_type == BP_QT_U8, zero_c ? NULL : btile, cbuf);
        }
    }
    _tile_release();
}
