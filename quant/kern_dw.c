/* kern_dw.c — int8 depthwise convolution with AVX-512 VNNI (vpdpbusd on zmm)
 * and VBMI (vpermb/vpermt2b).
 *
 * A depthwise conv has 9 weights per channel and small planes (7x7, 14x14 in
 * the reference models), so row-wise vectors waste most lanes and the
 * requantization, not the multiply, is the cost. This kernel works on whole
 * planes, flattened:
 *
 * Phase planes. Per (image, channel) the zero-padded input plane (hp x wp)
 * is copied, as uint8, into sh row-phase planes: padded row Y goes to plane
 * Y mod sh, row Y/sh, with row pitch rp. Output (oy, ox) is flat index
 * q = oy·wq + ox and reads tap (ky, kx) at a constant byte offset from q
 * (stride 1, wq = rp = wp) or from 2q (stride 2, wq = ⌈wp/2⌉, rp = 2·wq), for
 * any dilation, with no borders; positions ox in [ow, wq) are computed and
 * dropped. Other column strides also split columns into sw phases (column X
 * at phase X mod sw, position X/sw) and run at stride 1 within them. The
 * padding and the read slack are written once per call; only the interior
 * changes from plane to plane.
 *
 * Quads. The taps of one kernel row that land in one phase plane are
 * consecutive columns, grouped in quads of 4 with zero weights in the gaps
 * (3x3: 3 quads, 5x5: 10). A 64-byte load at q0 + r + off holds in dword j
 * the quad of output q0 + 4j + r, so 4 loads and 4 vpdpbusd with the
 * broadcast weight quad add a quad to 64 consecutive outputs; at stride 2
 * the loads at 2·q0 + off + {0, 2, 64, 66} do the same (dwz_plane).
 *
 * Signed inputs are shifted to uint8 (x ^ 0x80 = x + 128, padding 0x80) and
 * the bias corrected by −128·Σw (as in the VNNI convs of kern_avx2.c); the
 * wrap-around int32 sum is exact whenever the true sum fits.
 *
 * Output. The 4 accumulators are requantized (bit-exact with bp_requant, in
 * one 64-bit rounding where it can: dwz_requant64), then 8-bit results are
 * packed with saturation and shuffled into flat order, and either stored
 * straight to the output through a vpermb (one-block planes) or stored to a
 * flat buffer and copied out by byte-permute windows; int32 results are
 * scattered into the flat buffer and copied out by rows.
 *
 * Byte-permute windows. Tables built once per call say, for each 64-byte
 * window of the phase planes, which input bytes it holds (a span under 128,
 * so one vpermt2b of two loads), and for each 64 output bytes which flat
 * positions; shapes whose windows do not fit (wide rows at stride 2, planes
 * over 4 KiB) copy row by row instead. Integer-only. */
#include <cpuid.h>
#include <immintrin.h>
#include <string.h>

#include "quant/kern_dw.h"
#include "quant/kern_internal.h"

#define DWZ __attribute__((target("avx2,avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi")))
#define MAXOPS 64
#define MAXWIN 64 /* 64-byte windows of the byte-permute fill and copy-out */

/* One 64-byte window of a byte permutation (vpermt2b) from a 128-byte source
 * span: byte j = src[base + idx[j]] where mask bit j is set, else 0. */
typedef struct {
    uint8_t idx[64];
    uint64_t mask;
    uint64_t m1, m2; /* load masks of the two source vectors (inside the source) */
    int32_t base;
    int32_t act;     /* takes any byte from the source */
    int32_t dst;     /* byte offset of the window in its destination */
} dwz_win;

/* The channels' requantization constants, set once per call (dwz_channels),
 * one array (cs) each. */
typedef struct {
    int64_t *nudge, *thr;   /* mode 0: 2^30 + 2^(30+e), 2^(30+e) */
    int64_t *cnt_o;         /* mode 0: e − 1, the shift after the high dword */
    int32_t *e, *mk, *mode; /* right shift, 2^e − 1, mode (see dwz_req) */
    const bp_qmul *qm;
} dwz_chs;
#define DWZ_CHS_BYTES 36 /* per channel: 3 int64 + 3 int32 */

typedef struct {
    int oh, ow, sh, sw, hq, wq;
    int cm;                    /* columns: 1 stride 1, 2 stride 2 (whole rows, outputs at
                                  byte 2q), 0 other strides (column phases) */
    int xs, rp;                /* column phases (sw when cm = 0, else 1); row pitch in bytes */
    size_t pq;                 /* bytes of one phase plane, hq·rp */
    int nops;                  /* quads per channel */
    int32_t off[MAXOPS];       /* byte offset of each quad from the first plane */
    int8_t tap[MAXOPS][4];     /* tap index ky·kw + kx of each quad byte, −1 for a gap */
    int nb;                    /* 64-output blocks of the flat output */
    size_t plane_bytes;        /* phase planes and read slack, a multiple of 64 */
    int org;                   /* byte of the buffer where the planes start */
    size_t flat_bytes;         /* one flat output, a multiple of 64 */
    int cb;                    /* planes per chunk (see dwz_run) */
    int cs;                    /* channel stride of the weight quads: cout rounded up to 16 */
    int py0, ry0;              /* phase and row of input row 0: pad_t mod sh, pad_t / sh */
    int nwi, nwo;              /* windows of the phase planes and of the output plane
                                  (0: too many for the permute paths) */
} dwz_geo;

static size_t up64(size_t x) { return (x + 63) & ~(size_t)63; }

static int dwz_geometry(const bp_qconv_params *p, dwz_geo *g)
{
    if (p->group != p->cin || p->group != p->cout || p->kh * p->kw > 64 || p->stride_h > 8 ||
        p->stride_w > 8)
        return 0;
    bp_qconv_out_hw(p, &g->oh, &g->ow);
    if (g->oh < 1 || g->ow < 1)
        return 0;
    const int sh = p->stride_h, sw = p->stride_w;
    /* out_hw truncates toward zero, so a window larger than the padded plane
     * still gives one output: the plane then reaches past the bottom (right)
     * padding, with zeros */
    int hp = p->h + p->pad_t + p->pad_b, wp = p->w + p->pad_l + p->pad_r;
    const int hn = (g->oh - 1) * sh + (p->kh - 1) * p->dil_h + 1, wn = (g->ow - 1) * sw + (p->kw - 1) * p->dil_w + 1;
    hp = hn > hp ? hn : hp;
    wp = wn > wp ? wn : wp;
    g->sh = sh, g->sw = sw;
    g->cm = sw == 1 ? 1 : sw == 2 ? 2 : 0;
    g->xs = g->cm ? 1 : sw;
    const int cdiv = g->cm ? 1 : sw; /* padded column X is column X / cdiv of phase X mod cdiv */
    g->hq = (hp + sh - 1) / sh, g->wq = (wp + (g->cm ? g->cm : sw) - 1) / (g->cm ? g->cm : sw);
    g->rp = g->cm == 2 ? 2 * g->wq : g->wq;
    g->pq = (size_t)g->hq * g->rp;
    g->cs = (p->cout + 15) / 16 * 16;
    g->py0 = p->pad_t % sh, g->ry0 = p->pad_t / sh;
    /* column phase and position of each kx, divided once (this runs per call) */
    int kpx[64], kcol[64];
    for (int kx = 0; kx < p->kw; kx++) {
        const int X = kx * p->dil_w;
        kpx[kx] = cdiv == 1 ? 0 : X % cdiv;
        kcol[kx] = cdiv == 1 ? X : X / cdiv;
    }
    int n = 0;
    size_t maxoff = 0;
    for (int ky = 0; ky < p->kh; ky++) {
        const int Y = ky * p->dil_h, py = Y % sh, row = Y / sh;
        for (int px = 0; px < g->xs; px++) {
            int cmin = -1, cmax = -1;
            for (int kx = 0; kx < p->kw; kx++) {
                if (kpx[kx] != px)
                    continue;
                if (cmin < 0)
                    cmin = kcol[kx];
                cmax = kcol[kx];
            }
            if (cmin < 0)
                continue;
            for (int c0 = cmin; c0 <= cmax; c0 += 4) {
                if (n == MAXOPS)
                    return 0;
                const size_t off = (size_t)(py * g->xs + px) * g->pq + (size_t)row * g->rp + c0;
                if (off > INT32_MAX)
                    return 0;
                g->off[n] = (int32_t)off;
                maxoff = off > maxoff ? off : maxoff;
                memset(g->tap[n], -1, 4);
                for (int kx = 0; kx < p->kw; kx++)
                    if (kpx[kx] == px && kcol[kx] >= c0 && kcol[kx] < c0 + 4)
                        g->tap[n][kcol[kx] - c0] = (int8_t)(ky * p->kw + kx);
                n++;
            }
        }
    }
    g->nops = n;
    const size_t nflat = (size_t)(g->oh - 1) * g->wq + g->ow;
    g->nb = (int)((nflat + 63) / 64);
    /* the last block's loads reach (nb − 1)·64 + 3 + maxoff + 63, at stride 2
     * 2·(nb − 1)·64 + 66 + maxoff + 63 */
    const size_t reach = g->cm == 2 ? (size_t)g->nb * 128 + 2 + maxoff : (size_t)g->nb * 64 + 3 + maxoff;
    const size_t planes = (size_t)sh * g->xs * g->pq;
    /* Planes start at byte org of their buffer: for one plane, where its first
     * input byte begins a 64-byte window, so a 7x7 plane's interior (61 bytes
     * at pitch 9) is one window of the permute fill, not two. */
    g->org = sh == 1 && g->cm ? (int)((64 - ((size_t)g->ry0 * g->rp + p->pad_l) % 64) % 64) : 0;
    g->plane_bytes = up64(g->org + (reach > planes ? reach : planes));
    /* +128: the row copy and the permute windows load whole vectors */
    g->flat_bytes = up64((size_t)g->nb * 64 * bp_qtype_size(p->out_type) + 128);
    const size_t nwi = (g->org + planes + 63) / 64, nwo = ((size_t)g->oh * g->ow + 63) / 64;
    /* int16 positions in the tables */
    const int fits = (size_t)p->h * p->w < 32768 && (size_t)g->oh * g->wq + 128 < 32768;
    g->nwi = fits && nwi <= MAXWIN && nwo <= MAXWIN ? (int)nwi : 0;
    g->nwo = g->nwi ? (int)nwo : 0;
    /* about 32 KiB of planes and flat outputs per chunk, at most 16 planes */
    const size_t per = g->plane_bytes + g->flat_bytes;
    g->cb = per * 16 <= 32768 ? 16 : per >= 16384 ? 1 : (int)(32768 / per);
    return 1;
}

/* Scratch: weight quads (nops·cs int32), corrected biases (cs int32),
 * requantization constants (dwz_chs), cb
 * phase-plane sets, cb flat outputs, window tables; each piece 64-byte
 * aligned, +64 to align the start. */
static size_t dwz_layout(const bp_qconv_params *p, const dwz_geo *g, size_t *o_beff, size_t *o_planes,
                         size_t *o_flat)
{
    *o_beff = up64((size_t)g->cs * g->nops * 4);
    /* the channels' constants (dwz_chs) after the biases */
    *o_planes = *o_beff + up64((size_t)g->cs * 4) + up64((size_t)DWZ_CHS_BYTES * g->cs);
    *o_flat = *o_planes + (size_t)g->cb * g->plane_bytes;
    /* then the window tables, and (while they are built) an int16 map of the
     * phase planes */
    size_t end = *o_flat + (size_t)g->cb * g->flat_bytes;
    if (g->nwi)
        end += up64(sizeof(dwz_win) * (size_t)(g->nwi + g->nwo)) +
               up64((size_t)(g->nwi > g->nwo ? g->nwi : g->nwo) * 64 * 2);
    return end + 64;
}

size_t bp_qk_dwz_scratch(const bp_qconv_params *p)
{
    dwz_geo g;
    size_t a, b, c;
    return dwz_geometry(p, &g) ? dwz_layout(p, &g, &a, &b, &c) : 0;
}

/* Requantizes 16 lanes of one channel: bit-exact bp_requant for
 * −31 <= shift <= 0 (mult == 0: the rounding shift alone). mask = 2^right − 1,
 * half = mask >> 1. */
__attribute__((always_inline)) DWZ static inline __m512i dwz_requant(__m512i x, __m512i m, __m512i right, __m512i mask, __m512i half,
                                      int shift_only)
{
    __m512i y = x;
    if (!shift_only) {
        const __m512i nudge = _mm512_set1_epi64((int64_t)1 << 30);
        __m512i pe = _mm512_add_epi64(_mm512_mul_epi32(x, m), nudge);
        __m512i po = _mm512_add_epi64(_mm512_mul_epi32(_mm512_srli_epi64(x, 32), _mm512_srli_epi64(m, 32)), nudge);
        /* bits 31..62 of each 64-bit sum: the low 32 bits of the floor shift */
        y = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(pe, 31), _mm512_slli_epi64(po, 1));
    }
    const __m512i one = _mm512_set1_epi32(1);
    __m512i rem = _mm512_and_si512(y, mask);
    __m512i thr = _mm512_mask_add_epi32(half, _mm512_cmplt_epi32_mask(y, _mm512_setzero_si512()), half, one);
    __m512i r = _mm512_srav_epi32(y, right);
    return _mm512_mask_add_epi32(r, _mm512_cmpgt_epi32_mask(rem, thr), r, one);
}

static __mmask64 low_mask64(int n) { return n >= 64 ? ~(__mmask64)0 : ((__mmask64)1 << n) - 1; }

/* Copies input plane src (h x w) into the phase planes' interior. Rows step
 * through (phase, row) without divisions: an idiv per row cost as much as the
 * rest of a 7x7 plane. */
DWZ static void dwz_fill(const bp_qconv_params *p, const dwz_geo *g, const uint8_t *src, uint8_t *planes,
                         int s8)
{
    const int sh = g->sh, w = p->w;
    const size_t pstep = (size_t)g->xs * g->pq; /* from row phase py to py + 1 */
    int py = g->py0;
    uint8_t *row0 = planes + g->org + (size_t)g->ry0 * g->rp; /* row Y/sh of row phase 0 */
    if (g->cm) { /* whole rows */
        const __m512i flip = _mm512_set1_epi8(s8 ? (char)0x80 : 0);
        const __mmask64 m = low_mask64(w);
        uint8_t *d0 = row0 + p->pad_l;
        for (int iy = 0; iy < p->h; iy++, src += w) {
            uint8_t *d = d0 + (size_t)py * pstep;
            if (w <= 64)
                _mm512_mask_storeu_epi8(d, m, _mm512_xor_si512(_mm512_maskz_loadu_epi8(m, src), flip));
            else
                for (int x = 0; x < w; x += 64) {
                    const __mmask64 mx = low_mask64(w - x);
                    _mm512_mask_storeu_epi8(d + x, mx, _mm512_xor_si512(_mm512_maskz_loadu_epi8(mx, src + x), flip));
                }
            if (++py == sh)
                py = 0, d0 += g->rp;
        }
        return;
    }
    const int sw = g->sw;
    const uint8_t flip8 = s8 ? 0x80 : 0;
    for (int iy = 0; iy < p->h; iy++, src += w) {
        uint8_t *row = row0 + (size_t)py * pstep;
        int px = p->pad_l % sw, X = p->pad_l / sw;
        for (int x = 0; x < w; x++) {
            row[(size_t)px * g->pq + X] = (uint8_t)(src[x] ^ flip8);
            if (++px == sw)
                px = 0, X++;
        }
        if (++py == sh)
            py = 0, row0 += g->rp;
    }
}

/* AVX512_VBMI (vpermt2b): CPUID leaf 7 ECX bit 1, looked up once (CPUID
 * traps to the hypervisor in a VM). Ice Lake and later have it; Cascade Lake
 * (AVX-512 VNNI without VBMI) keeps the AVX2 depthwise kernel. */
static int vbmi_flag = -1;
/* Tests turn the permute windows off to reach the row-by-row paths. */
static int dwz_windows_on = 1;
void bp_qk_dwz_set_windows(int on) { dwz_windows_on = on; }

static int have_vbmi(void)
{
    if (vbmi_flag < 0) {
        unsigned a, b, c, d;
        vbmi_flag = __get_cpuid_count(7, 0, &a, &b, &c, &d) && ((c >> 1) & 1);
    }
    return vbmi_flag;
}

/* Turns 64 int16 source positions (−1: none) into a window: base = the
 * smallest, idx = offsets from it, mask = present. 0 when they span 128 or
 * more bytes. */
DWZ static int dwz_window(const int16_t *pos, dwz_win *t)
{
    const __m512i v0 = _mm512_loadu_si512((const void *)pos), v1 = _mm512_loadu_si512((const void *)(pos + 32));
    const __mmask32 k0 = _mm512_cmpge_epi16_mask(v0, _mm512_setzero_si512()),
                    k1 = _mm512_cmpge_epi16_mask(v1, _mm512_setzero_si512());
    t->mask = (uint64_t)k0 | (uint64_t)k1 << 32;
    t->act = t->mask != 0;
    if (!t->act)
        return 1;
    /* absent lanes as INT16_MAX for the minimum, −1 already loses the maximum */
    const __m512i big = _mm512_set1_epi16(INT16_MAX);
    const __m512i mn = _mm512_min_epi16(_mm512_mask_blend_epi16(k0, big, v0), _mm512_mask_blend_epi16(k1, big, v1));
    const __m512i mx = _mm512_max_epi16(v0, v1);
    /* horizontal: halve to 8 words, then phminposuw (positions are 0..32767,
     * and 32767 − x turns the maximum into a minimum) */
    __m256i n8 = _mm256_min_epi16(_mm512_castsi512_si256(mn), _mm512_extracti64x4_epi64(mn, 1));
    __m256i x8 = _mm256_max_epi16(_mm512_castsi512_si256(mx), _mm512_extracti64x4_epi64(mx, 1));
    __m128i n4 = _mm_min_epi16(_mm256_castsi256_si128(n8), _mm256_extracti128_si256(n8, 1));
    __m128i x4 = _mm_max_epi16(_mm256_castsi256_si128(x8), _mm256_extracti128_si256(x8, 1));
    const int lo = _mm_cvtsi128_si32(_mm_minpos_epu16(n4)) & 0xFFFF;
    const int hi = 32767 - (_mm_cvtsi128_si32(_mm_minpos_epu16(_mm_sub_epi16(_mm_set1_epi16(32767), x4))) & 0xFFFF);
    if (hi - lo >= 128)
        return 0;
    t->base = lo;
    const __m512i vl = _mm512_set1_epi16((int16_t)lo);
    _mm256_storeu_si256((__m256i *)t->idx, _mm512_cvtepi16_epi8(_mm512_maskz_sub_epi16(k0, v0, vl)));
    _mm256_storeu_si256((__m256i *)(t->idx + 32), _mm512_cvtepi16_epi8(_mm512_maskz_sub_epi16(k1, v1, vl)));
    return 1;
}

/* Windows of the phase planes: which input byte each plane byte holds; the
 * count of windows that hold any (packed to the front of win). map (nwi·64
 * int16) is scratch. 0 when a window's bytes span 128 or more input bytes
 * (wide rows at stride 2): then rows are copied one by one. Vector
 * code: with scalar loops, building the tables cost a third of a 16-channel
 * 14x14 layer at batch 1. */
DWZ static int dwz_in_windows(const bp_qconv_params *p, const dwz_geo *g, int16_t *map, dwz_win *win)
{
    const int n = g->nwi * 64, plane = p->h * p->w;
    for (int i = 0; i < n; i += 32)
        _mm512_storeu_si512((void *)(map + i), _mm512_set1_epi16(-1));
    const __m512i iota = _mm512_set_epi16(31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14,
                                          13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    int py = g->py0, r = g->ry0;
    for (int iy = 0; iy < p->h; iy++) {
        const size_t rowp = g->org + (size_t)py * g->xs * g->pq + (size_t)r * g->rp;
        if (g->cm) /* whole rows: consecutive positions */
            for (int x = 0; x < p->w; x += 32)
                _mm512_mask_storeu_epi16(map + rowp + p->pad_l + x, (__mmask32)low_mask64(p->w - x),
                                         _mm512_add_epi16(iota, _mm512_set1_epi16((int16_t)(iy * p->w + x))));
        else {
            int px = p->pad_l % g->sw, col = p->pad_l / g->sw;
            for (int ix = 0; ix < p->w; ix++) {
                map[rowp + (size_t)px * g->pq + col] = (int16_t)(iy * p->w + ix);
                if (++px == g->sw)
                    px = 0, col++;
            }
        }
        if (++py == g->sh)
            py = 0, r++;
    }
    int na = 0; /* the windows holding input bytes, packed to the front */
    for (int wi = 0; wi < g->nwi; wi++) {
        dwz_win *t = &win[na];
        if (!dwz_window(map + wi * 64, t))
            return 0;
        if (t->act) {
            const int left = plane - t->base;
            t->m1 = low_mask64(left);
            t->m2 = left > 64 ? low_mask64(left - 64) : 0;
            t->dst = wi * 64;
            na++;
        }
    }
    return na;
}

/* Windows of the output plane: output byte o = (oy, ox) comes from flat
 * position oy·wq + ox. map (nwo·64 int16) is scratch. 0 when a window spans
 * 128 or more flat bytes. */
DWZ static int dwz_out_windows(const dwz_geo *g, int16_t *map, dwz_win *win)
{
    const int n = g->nwo * 64;
    const __m512i iota = _mm512_set_epi16(31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14,
                                          13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    for (int i = 0; i < n; i += 32)
        _mm512_storeu_si512((void *)(map + i), _mm512_set1_epi16(-1));
    for (int oy = 0; oy < g->oh; oy++)
        for (int x = 0; x < g->ow; x += 32)
            _mm512_mask_storeu_epi16(map + (size_t)oy * g->ow + x, (__mmask32)low_mask64(g->ow - x),
                                     _mm512_add_epi16(iota, _mm512_set1_epi16((int16_t)(oy * g->wq + x))));
    for (int k = 0; k < g->nwo; k++)
        if (!dwz_window(map + k * 64, &win[k]))
            return 0;
    return 1;
}

/* The phase planes' windows that hold input bytes, by permutes: no row loop,
 * whole 64-byte stores (padding bytes come out as zeros, then flipped). */
__attribute__((always_inline)) DWZ static inline void dwz_fill_perm(int na, const dwz_win *win,
                                                                  const uint8_t *src, uint8_t *planes,
                                                                  int s8, int masked)
{
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    if (na <= 4) {
        __m512i v[4];
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++) {
            if (k >= na)
                break;
            const dwz_win *t = &win[k];
            const __m512i a = masked ? _mm512_maskz_loadu_epi8(t->m1, src + t->base)
                                     : _mm512_loadu_si512((const void *)(src + t->base));
            const __m512i b = masked ? _mm512_maskz_loadu_epi8(t->m2, src + t->base + 64)
                                     : _mm512_loadu_si512((const void *)(src + t->base + 64));
            v[k] = _mm512_maskz_permutex2var_epi8(t->mask, a, _mm512_loadu_si512((const void *)t->idx), b);
        }
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++) {
            if (k >= na)
                break;
            _mm512_store_si512((void *)(planes + win[k].dst), s8 ? _mm512_xor_si512(v[k], flip) : v[k]);
        }
        return;
    }
    for (int k = 0; k < na; k++) {
        const dwz_win *t = &win[k];
        /* unmasked when 128 bytes past the plane are still input: the bytes
         * of the next plane read there are dropped by the permute's mask */
        const __m512i a = masked ? _mm512_maskz_loadu_epi8(t->m1, src + t->base)
                                 : _mm512_loadu_si512((const void *)(src + t->base));
        const __m512i b = masked ? _mm512_maskz_loadu_epi8(t->m2, src + t->base + 64)
                                 : _mm512_loadu_si512((const void *)(src + t->base + 64));
        const __m512i idx = _mm512_loadu_si512((const void *)t->idx);
        const __m512i v = _mm512_maskz_permutex2var_epi8(t->mask, a, idx, b);
        _mm512_store_si512((void *)(planes + t->dst), s8 ? _mm512_xor_si512(v, flip) : v);
    }
}

/* The output plane from the flat output by permutes, 64 bytes at a time.
 * Planes are written in order, so unless it is the tensor's last (masked)
 * the tail window is stored whole: the next plane overwrites what it spills. */
__attribute__((always_inline)) DWZ static inline void dwz_out_perm(const dwz_geo *g, const dwz_win *win,
                                                                 const uint8_t *flat, uint8_t *d, int masked)
{
    for (int k = 0; k < g->nwo; k++, d += 64) {
        const dwz_win *t = &win[k];
        const __m512i a = _mm512_loadu_si512((const void *)(flat + t->base));
        const __m512i b = _mm512_loadu_si512((const void *)(flat + t->base + 64));
        const __m512i v = _mm512_permutex2var_epi8(a, _mm512_loadu_si512((const void *)t->idx), b);
        if (masked)
            _mm512_mask_storeu_epi8(d, t->mask, v);
        else
            _mm512_storeu_si512((void *)d, v);
    }
}

/* Carves the arrays of ch from mem (DWZ_CHS_BYTES·cs bytes, 64-aligned) and
 * fills them, 8 channels at a time (a scalar loop was 7 % of a 96-channel
 * 7x7 layer at batch 1). */
DWZ static void dwz_channels(const bp_qmul *qm, int cout, int cs, uint8_t *mem, dwz_chs *ch)
{
    ch->nudge = (int64_t *)mem, ch->thr = ch->nudge + cs, ch->cnt_o = ch->thr + cs;
    ch->e = (int32_t *)(ch->cnt_o + cs), ch->mk = ch->e + cs, ch->mode = ch->mk + cs;
    ch->qm = qm;
    const __m512i zero = _mm512_setzero_si512(), one = _mm512_set1_epi64(1);
    for (int c0 = 0; c0 < cout; c0 += 8) {
        const __mmask8 km = (__mmask8)(cout - c0 >= 8 ? 0xFF : (1u << (cout - c0)) - 1);
        /* qword c: mult in the low dword, shift in the high one */
        const __m512i v = _mm512_maskz_loadu_epi64(km, qm + c0);
        const __m512i mult = _mm512_srai_epi64(_mm512_slli_epi64(v, 32), 32);
        const __m512i e = _mm512_sub_epi64(zero, _mm512_srai_epi64(v, 32));
        const __mmask8 bad = _mm512_cmplt_epi64_mask(e, zero) | _mm512_cmpgt_epi64_mask(e, _mm512_set1_epi64(31));
        const __mmask8 m0 = _mm512_cmpeq_epi64_mask(mult, zero), e0 = _mm512_cmpeq_epi64_mask(e, zero);
        __m512i mode = _mm512_mask_mov_epi64(zero, (__mmask8)(e0 & ~m0), _mm512_set1_epi64(3));
        mode = _mm512_mask_mov_epi64(mode, m0, one);
        mode = _mm512_mask_mov_epi64(mode, bad, _mm512_set1_epi64(2));
        const __mmask8 is0 = (__mmask8)~(bad | m0 | e0);
        const __m512i thr = _mm512_maskz_sllv_epi64(is0, one, _mm512_add_epi64(e, _mm512_set1_epi64(30)));
        const __m512i mk = _mm512_maskz_sub_epi64((__mmask8)~bad, _mm512_sllv_epi64(one, e), one);
        _mm512_storeu_si512((void *)(ch->thr + c0), thr);
        _mm512_storeu_si512((void *)(ch->nudge + c0), _mm512_add_epi64(thr, _mm512_set1_epi64((int64_t)1 << 30)));
        _mm512_storeu_si512((void *)(ch->cnt_o + c0), _mm512_sub_epi64(e, one));
        _mm256_storeu_si256((__m256i *)(ch->e + c0), _mm512_cvtepi64_epi32(e));
        _mm256_storeu_si256((__m256i *)(ch->mk + c0), _mm512_cvtepi64_epi32(mk));
        _mm256_storeu_si256((__m256i *)(ch->mode + c0), _mm512_cvtepi64_epi32(mode));
    }
}

/* One channel's requantization:
 *   mode 0: mult != 0 and a right shift e in 1..31, as one rounding in 64 bits
 *           (dwz_requant64);
 *   mode 1: shift-only pairs (mult == 0), the rounding shift alone;
 *   mode 2: scalar bp_requant (left shifts, the zero multiplier);
 *   mode 3: mult != 0 and no shift, SRDHM alone (dwz_requant). */
typedef struct {
    const dwz_chs *ch; /* channel c's constants, broadcast where used */
    int c;
    __m512i lo, hi;
    /* one-block planes with one output window: the block goes straight to
     * the output plane dout through the window's permute (didx), stored
     * under dmask; NULL dout: through the flat buffer */
    const uint8_t *didx;
    uint8_t *dout;
    uint64_t dmask;
} dwz_req;

/* SRDHM then RoundingDivideByPOT by e >= 1 with one 64-bit rounding: with
 * P = x·m + 2^30, SRDHM is y = ⌊P / 2^31⌋ and RDBPOT(y, e) is
 * ⌊(y + 2^(e−1) − [y < 0]) / 2^e⌋ (ties away from zero; y < 0 iff P < 0),
 * and nested floors of exact divisions merge:
 *   result = ⌊(P + 2^(30+e) − [P < 0]·2^31) / 2^(31+e)⌋,
 * exact in int64 (|x·m| < 2^62; m > 0, so SRDHM's saturation cannot occur).
 * The shift by 31 + e >= 32 is done as the high dword (a floor division
 * by 2^32, picked by a shuffle and a blend) then a 32-bit shift by e − 1:
 * nested floors of exact divisions again. One 32-bit shift of 16 lanes
 * replaces two 64-bit ones, which share the port of the multiplies.
 * The [P < 0] term only moves results that are <= 0 either way, so it is
 * left out (neg = 0) when the output's minimum is >= 0. */
__attribute__((always_inline)) DWZ static inline __m512i dwz_requant64(__m512i x, const dwz_req *rq, int neg)
{
    const __m512i two31 = _mm512_set1_epi64((int64_t)1 << 31);
    const dwz_chs *ch = rq->ch;
    const int c = rq->c;
    const __m512i m = _mm512_set1_epi32(ch->qm[c].mult), nudge = _mm512_set1_epi64(ch->nudge[c]),
                  thr = _mm512_set1_epi64(ch->thr[c]);
    __m512i pe = _mm512_add_epi64(_mm512_mul_epi32(x, m), nudge);
    __m512i po = _mm512_add_epi64(_mm512_mul_epi32(_mm512_shuffle_epi32(x, _MM_PERM_CDAB), m), nudge);
    if (neg) {
        pe = _mm512_mask_sub_epi64(pe, _mm512_cmplt_epi64_mask(pe, thr), pe, two31);
        po = _mm512_mask_sub_epi64(po, _mm512_cmplt_epi64_mask(po, thr), po, two31);
    }
    const __m512i hi32 = _mm512_mask_blend_epi32(0xAAAA, _mm512_shuffle_epi32(pe, (_MM_PERM_ENUM)0xF5), po);
    return _mm512_srav_epi32(hi32, _mm512_set1_epi32((int32_t)ch->cnt_o[c]));
}

__attribute__((always_inline)) DWZ static inline __m512i dwz_finish(__m512i x, const dwz_req *rq, int mode,
                                                                   int clamp, int neg)
{
    if (mode == 0)
        x = dwz_requant64(x, rq, neg);
    else if (mode == 1 || mode == 3)
        x = dwz_requant(x, _mm512_set1_epi32(rq->ch->qm[rq->c].mult), _mm512_set1_epi32(rq->ch->e[rq->c]),
                        _mm512_set1_epi32(rq->ch->mk[rq->c]), _mm512_set1_epi32(rq->ch->mk[rq->c] >> 1), mode == 1);
    else {
        int32_t v[16];
        _mm512_storeu_si512((void *)v, x);
        for (int j = 0; j < 16; j++)
            v[j] = bp_requant(v[j], rq->ch->qm[rq->c]);
        x = _mm512_loadu_si512((const void *)v);
    }
    return clamp ? _mm512_min_epi32(_mm512_max_epi32(x, rq->lo), rq->hi) : x;
}

/* 8-bit output of 4 requantized vectors: saturating packs (the clamp itself
 * when it is the type's range) give, in 128-bit lane L, bytes
 * a0[4L..4L+3], a1[..], a2[..], a3[..]; a byte shuffle within lanes puts them
 * in output order (byte 4j + r from a_r, lane j), and at stride 2 (a0, a1:
 * outputs 2j, 2j + 1; a2, a3: 32 + 2j, 33 + 2j) a qword permute follows.
 * Shuffle-port work instead of eight min/max and the shift-or merge on the
 * port that also runs vpdpbusd and the multiplies. */
__attribute__((always_inline)) DWZ static inline __m512i dwz_pack8(__m512i a0, __m512i a1, __m512i a2, __m512i a3,
                                                                  int u8, int stride2)
{
    __m512i x = u8 ? _mm512_packus_epi16(_mm512_packus_epi32(a0, a1), _mm512_packus_epi32(a2, a3))
                   : _mm512_packs_epi16(_mm512_packs_epi32(a0, a1), _mm512_packs_epi32(a2, a3));
    if (!stride2)
        return _mm512_shuffle_epi8(x, _mm512_set4_epi32(0x0F0B0703, 0x0E0A0602, 0x0D090501, 0x0C080400));
    x = _mm512_shuffle_epi8(x, _mm512_set4_epi32(0x0F0B0E0A, 0x0D090C08, 0x07030602, 0x05010400));
    return _mm512_permutexvar_epi64(_mm512_setr_epi64(0, 2, 4, 6, 1, 3, 5, 7), x);
}

/* One channel plane: 64 outputs per block, 4 accumulators, nops quads each.
 * Stride 1 (stride2 = 0): a_r holds outputs 4j + r, loads at q0 + off + r.
 * Stride 2 without column phases (stride2 = 1): output q reads its quads at
 * byte 2q + off of the row-phase planes, so dword j of a load at
 * 2·q0 + off + 2h holds the quad of output q0 + 2j + h: loads at
 * {0, 2, 64, 66} give the two 32-output halves (a0/a1, a2/a3), where column
 * phases would need twice the quads. Inlined with nops, mode and stride2
 * constant for the common cases. */
__attribute__((always_inline)) DWZ static inline void dwz_plane(const dwz_geo *g, int stride2, int nops,
                                                              int mode, const uint8_t *planes,
                                                              const int32_t *wc, int32_t b,
                                                              const dwz_req *rq, bp_qtype type,
                                                              int clamp, int neg, uint8_t *flat)
{
    const __m512i vb = _mm512_set1_epi32(b);
    /* byte offsets of the 4 loads, and where lane 0 of a_r lands in the block */
    const int l1 = stride2 ? 2 : 1, l2 = stride2 ? 64 : 2, l3 = stride2 ? 66 : 3;
    const int f2 = stride2 ? 32 : 2, f3 = stride2 ? 33 : 3, lanes = stride2 ? 2 : 4;
    for (int blk = 0; blk < g->nb; blk++) {
        const uint8_t *s = planes + (size_t)blk * (stride2 ? 128 : 64);
        __m512i a0 = vb, a1 = vb, a2 = vb, a3 = vb;
#pragma GCC unroll 8
        for (int o = 0; o < nops; o++) {
            const uint8_t *t = s + g->off[o];
            const __m512i w = _mm512_set1_epi32(wc[(size_t)o * g->cs]);
            a0 = _mm512_dpbusd_epi32(a0, _mm512_loadu_si512((const void *)t), w);
            a1 = _mm512_dpbusd_epi32(a1, _mm512_loadu_si512((const void *)(t + l1)), w);
            a2 = _mm512_dpbusd_epi32(a2, _mm512_loadu_si512((const void *)(t + l2)), w);
            a3 = _mm512_dpbusd_epi32(a3, _mm512_loadu_si512((const void *)(t + l3)), w);
        }
        a0 = dwz_finish(a0, rq, mode, clamp, neg);
        a1 = dwz_finish(a1, rq, mode, clamp, neg);
        a2 = dwz_finish(a2, rq, mode, clamp, neg);
        a3 = dwz_finish(a3, rq, mode, clamp, neg);
        if (type == BP_QT_S32) {
            /* lane j of a_r to its output position in the block */
            int32_t *f = (int32_t *)flat + (size_t)blk * 64;
            const __m512i idx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10,
                                                                     11, 12, 13, 14, 15),
                                                   _mm512_set1_epi32(lanes));
            _mm512_i32scatter_epi32(f, idx, a0, 4);
            _mm512_i32scatter_epi32(f + 1, idx, a1, 4);
            _mm512_i32scatter_epi32(f + f2, idx, a2, 4);
            _mm512_i32scatter_epi32(f + f3, idx, a3, 4);
        } else {
            const __m512i v = dwz_pack8(a0, a1, a2, a3, type == BP_QT_U8, stride2);
            if (rq->dout)
                _mm512_mask_storeu_epi8(rq->dout, rq->dmask,
                                        _mm512_permutexvar_epi8(_mm512_loadu_si512((const void *)rq->didx), v));
            else
                _mm512_storeu_si512((void *)(flat + (size_t)blk * 64), v);
        }
    }
}

#define DWZ_MODES(PLANE, S2, NOPS)                                                    \
    do {                                                                              \
        if (mode == 0 && !clamp && !neg)                                              \
            PLANE(g, S2, NOPS, 0, pl, wc, beff[c], &rq, type, 0, 0, fl);              \
        else if (mode == 0 && !clamp)                                                 \
            PLANE(g, S2, NOPS, 0, pl, wc, beff[c], &rq, type, 0, 1, fl);              \
        else if (mode == 0 && !neg)                                                   \
            PLANE(g, S2, NOPS, 0, pl, wc, beff[c], &rq, type, 1, 0, fl);              \
        else if (mode == 0)                                                           \
            PLANE(g, S2, NOPS, 0, pl, wc, beff[c], &rq, type, 1, 1, fl);              \
        else if (mode == 1)                                                           \
            PLANE(g, S2, NOPS, 1, pl, wc, beff[c], &rq, type, 1, 1, fl);              \
        else if (mode == 3)                                                           \
            PLANE(g, S2, NOPS, 3, pl, wc, beff[c], &rq, type, 1, 1, fl);              \
        else                                                                          \
            PLANE(g, S2, NOPS, 2, pl, wc, beff[c], &rq, type, 1, 1, fl);              \
    } while (0)

/* Planes go in chunks of cb: fill the chunk's phase planes, compute them all,
 * then copy all flat outputs out. A load that overlaps narrower or masked
 * stores still in flight cannot take its data from the store buffer and waits
 * for them to reach L1; a chunk of other planes' work in between keeps the
 * loads of the compute and the copy-out away from the stores they read. */
DWZ static void dwz_run(const bp_qconv_params *p, const dwz_geo *g, const void *in, const int32_t *wd,
                        const int32_t *beff, const bp_qmul *qm, void *out, uint8_t *planes, uint8_t *flat,
                        const dwz_chs *chs, int nwin, const dwz_win *win_in, const dwz_win *win_out)
{
    const int s8 = p->in_type == BP_QT_S8, oh = g->oh, ow = g->ow, wq = g->wq, nops = g->nops;
    const size_t plane = (size_t)p->h * p->w, oplane = (size_t)oh * ow;
    const size_t nplanes = (size_t)p->n * p->cout;
    const bp_qtype type = p->out_type;
    const __m512i lo = _mm512_set1_epi32(p->out_min), hi = _mm512_set1_epi32(p->out_max);
    /* 8-bit outputs clamped to the whole type: the saturating packs clamp */
    const int clamp = !(type == BP_QT_U8 && p->out_min == 0 && p->out_max == 255) &&
                      !(type == BP_QT_S8 && p->out_min == -128 && p->out_max == 127);
    const int direct = win_out && g->nb == 1 && g->nwo == 1;
    /* the [P < 0] term only for outputs that can be negative (not u8, not
     * int8 after a ReLU clamp) */
    const int neg = p->out_min < 0;
    int c0 = 0; /* channel of plane ch0 */
    for (size_t ch0 = 0; ch0 < nplanes; ch0 += (size_t)g->cb, c0 = (c0 + g->cb) % p->cout) {
        const int nc = nplanes - ch0 < (size_t)g->cb ? (int)(nplanes - ch0) : g->cb;
        for (int i = 0; i < nc; i++) {
            const uint8_t *src = (const uint8_t *)in + (ch0 + i) * plane;
            uint8_t *dst = planes + (size_t)i * g->plane_bytes;
            const int masked = (ch0 + i + 1) * plane + 128 > nplanes * plane;
            if (!win_in)
                dwz_fill(p, g, src, dst, s8);
            else if (!masked && !s8)
                dwz_fill_perm(nwin, win_in, src, dst, 0, 0);
            else if (!masked)
                dwz_fill_perm(nwin, win_in, src, dst, 1, 0);
            else
                dwz_fill_perm(nwin, win_in, src, dst, s8, 1);
        }
        for (int i = 0, c = c0; i < nc; i++, c = c + 1 == p->cout ? 0 : c + 1) {
            const uint8_t *pl = planes + (size_t)i * g->plane_bytes + g->org;
            uint8_t *fl = flat + (size_t)i * g->flat_bytes;
            const int mode = chs->mode[c];
            const size_t ch = ch0 + i;
            const dwz_req rq = {chs, c, lo, hi, direct ? win_out->idx : NULL,
                                direct ? (uint8_t *)out + ch * oplane : NULL,
                                direct && (ch + 1) * oplane + 64 > nplanes * oplane ? win_out->mask
                                                                                   : ~(uint64_t)0};
            const int32_t *wc = wd + c;
            if (g->cm == 2) {
                if (nops == 3)
                    DWZ_MODES(dwz_plane, 1, 3);
                else
                    DWZ_MODES(dwz_plane, 1, nops);
            } else if (nops == 3)
                DWZ_MODES(dwz_plane, 0, 3);
            else
                DWZ_MODES(dwz_plane, 0, nops);
        }
        /* the flat rows (pitch wq) into the output planes (pitch ow) */
        for (int i = 0; i < nc; i++) {
            const size_t ch = ch0 + i;
            if (type == BP_QT_S32) {
                const int32_t *f = (const int32_t *)(flat + (size_t)i * g->flat_bytes);
                int32_t *d = (int32_t *)out + ch * oplane;
                for (int oy = 0; oy < oh; oy++, f += wq, d += ow)
                    for (int x = 0; x < ow; x += 16) {
                        const int cnt = ow - x < 16 ? ow - x : 16;
                        _mm512_mask_storeu_epi32(d + x, (__mmask16)((1u << cnt) - 1),
                                                 _mm512_loadu_si512((const void *)(f + x)));
                    }
            } else if (direct) {
                break; /* stored by the compute loop */
            } else if (win_out) {
                if ((ch + 1) * oplane + 64 > nplanes * oplane)
                    dwz_out_perm(g, win_out, flat + (size_t)i * g->flat_bytes, (uint8_t *)out + ch * oplane, 1);
                else
                    dwz_out_perm(g, win_out, flat + (size_t)i * g->flat_bytes, (uint8_t *)out + ch * oplane, 0);
            } else {
                const uint8_t *f = flat + (size_t)i * g->flat_bytes;
                uint8_t *d = (uint8_t *)out + ch * oplane;
                for (int oy = 0; oy < oh; oy++, f += wq, d += ow)
                    for (int x = 0; x < ow; x += 64) {
                        const int cnt = ow - x < 64 ? ow - x : 64;
                        const __mmask64 m = cnt == 64 ? ~(__mmask64)0 : ((__mmask64)1 << cnt) - 1;
                        _mm512_mask_storeu_epi8(d + x, m, _mm512_loadu_si512((const void *)(f + x)));
                    }
            }
        }
    }
}

/* Weight quads wd[o·cs + c] and corrected biases of 16 channels at a time.
 * Channel c's weight k is row 0 of group c of the panel: byte k mod 2 of k
 * pair cell k/2 (its low nibble at 2..4 bits), gathered across channels. A
 * scalar loop here cost a quarter of a 7x7 layer at batch 1. */
DWZ static void dwz_weights(const bp_qconv_params *p, const dwz_geo *g, const uint8_t *wpanel,
                            const int32_t *bias, int32_t *wd, int32_t *beff)
{
    const int K = p->kh * p->kw, cell = bp_qk_cell(p->wbits), s8 = p->in_type == BP_QT_S8;
    const int sext = p->wbits > 4 ? 24 : 28;
    const size_t gbytes = bp_qk_group_bytes(1, K, p->wbits);
    const __m512i idx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                           _mm512_set1_epi32((int32_t)gbytes));
    const __m512i lo8 = _mm512_set1_epi32(0xFF);
    __m512i wk[65];
    for (int c0 = 0; c0 < p->cout; c0 += 16) {
        const __mmask16 m = (__mmask16)(p->cout - c0 >= 16 ? 0xFFFF : (1u << (p->cout - c0)) - 1);
        const uint8_t *gp = wpanel + (size_t)c0 * gbytes;
        __m512i sum = _mm512_setzero_si512();
        for (int k = 0; k < K; k += 2) {
            /* the first dword of k pair cell k/2 (16 or 32 bytes) holds row 0's
             * values k and k + 1 in bytes 0 and 1: one gather per pair */
            const __m512i v = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), m, idx,
                                                          gp + (size_t)(k / 2) * cell, 1);
            wk[k] = _mm512_srai_epi32(_mm512_slli_epi32(v, sext), sext);
            wk[k + 1] = _mm512_srai_epi32(_mm512_slli_epi32(v, sext - 8), sext);
            sum = _mm512_add_epi32(sum, wk[k]);
            if (k + 1 < K)
                sum = _mm512_add_epi32(sum, wk[k + 1]);
        }
        for (int o = 0; o < g->nops; o++) {
            __m512i d = _mm512_setzero_si512();
            for (int j = 0; j < 4; j++)
                if (g->tap[o][j] >= 0)
                    d = _mm512_or_si512(d, _mm512_slli_epi32(_mm512_and_si512(wk[g->tap[o][j]], lo8), 8 * j));
            _mm512_storeu_si512((void *)(wd + (size_t)o * g->cs + c0), d);
        }
        __m512i b = bias ? _mm512_maskz_loadu_epi32(m, bias + c0) : _mm512_setzero_si512();
        if (s8) /* wrap-around, as the accumulation */
            b = _mm512_sub_epi32(b, _mm512_slli_epi32(sum, 7));
        _mm512_storeu_si512((void *)(beff + c0), b);
    }
}

int bp_qconv_dwz(const bp_qconv_params *p, const void *in, const uint8_t *wpanel, const int32_t *bias,
                 const bp_qmul *qm, void *out, void *scratch)
{
    dwz_geo g;
    if (!have_vbmi() || !dwz_geometry(p, &g))
        return 0;
    size_t o_beff, o_planes, o_flat;
    dwz_layout(p, &g, &o_beff, &o_planes, &o_flat);
    uint8_t *base = (uint8_t *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    int32_t *wd = (int32_t *)base, *beff = (int32_t *)(base + o_beff);
    uint8_t *planes = base + o_planes, *flat = base + o_flat;
    const int s8 = p->in_type == BP_QT_S8;
    dwz_weights(p, &g, wpanel, bias, wd, beff);
    const dwz_win *win_in = NULL, *win_out = NULL;
    int nwin = 0;
    if (g.nwi && dwz_windows_on) {
        dwz_win *w = (dwz_win *)(flat + (size_t)g.cb * g.flat_bytes);
        int16_t *map = (int16_t *)((uint8_t *)w + up64(sizeof(dwz_win) * (size_t)(g.nwi + g.nwo)));
        if ((nwin = dwz_in_windows(p, &g, map, w)) > 0)
            win_in = w;
        if (p->out_type != BP_QT_S32 && dwz_out_windows(&g, map, w + g.nwi))
            win_out = w + g.nwi;
    }
    memset(planes, s8 ? 0x80 : 0, (size_t)g.cb * g.plane_bytes);
    dwz_chs chs;
    dwz_channels(qm, p->cout, g.cs, base + o_beff + up64((size_t)g.cs * 4), &chs);
    dwz_run(p, &g, in, wd, beff, qm, out, planes, flat, &chs, nwin, win_in, win_out);
    return 1;
}
