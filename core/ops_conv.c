/* Conv (2-D, groups, strides, asymmetric pads, dilations, optional bias):
 * forward, backward and R-op.
 *
 * Three paths, chosen per call from the shape and the CPU:
 *  - Depthwise (one input and one output channel per group): conv_dw.c, on
 *    zero-padded phase planes where every tap is a contiguous shifted sum
 *    (vectorized, plain/AVX2/AVX-512). im2col would copy kh*kw times the
 *    input for a tiny gemm; the old per-pixel loops with bounds checks ran
 *    scalar and took 60% of a MobileNetV2 HVP.
 *  - Direct (one group, AVX-512, float build): the forward, the R-forward
 *    (both terms in one sum) and dx run conv_direct.c's register-blocked
 *    kernel on the same phase planes, straight from the input: no im2col,
 *    no col2im, and no per-sample OpenBLAS call on 7x7..28x28 planes, where
 *    packing and im2col/col2im cost as much as the products. dW runs
 *    conv_direct.c's dW kernel on the same planes and dy transposed.
 *  - General (everything else: groups, no AVX-512, the double build): per
 *    sample (OpenMP over the batch), im2col into (K_g x P) and one
 *    single-threaded gemm per group straight into NCHW; 1x1 stride-1 convs
 *    skip im2col. Backward: dW = dy col^T summed per thread, dx = W^T dy
 *    then col2im. This is also the path the tests compare the others with.
 * Sums per thread are added in thread order on every path, so a run is
 * reproducible at a given thread count.
 *
 * R-op (the conv is bilinear in x and W):
 *   R{y}  = conv(R{x}, W) + conv(x, V) + V_b
 *   R{dx} = conv^T(R{dy}, W) + conv^T(dy, V)
 *   R{dW} = corr(x, R{dy}) + corr(R{x}, dy),  R{db} = sum R{dy}
 */
#include <string.h>

#include <omp.h>

#include "core/blas.h"
#include "core/conv_direct.h"
#include "core/conv_dw.h"
#include "core/ops.h"

typedef struct {
    int N, C, H, W, M, OH, OW, kh, kw, sh, sw, pt, pl, dh, dw, G;
    int Cg, Mg, Kg, P;
    int depthwise; /* one input and one output channel per group */
    int pointwise; /* 1x1, stride 1, no pads: the input plane is already im2col */
    int same;      /* stride 1, dilation 1, output plane = input plane: rows are shifts */
    int nth;       /* threads the scratch was sized for */
    int direct;    /* one group, not depthwise, and the direct kernel runs here */
    bp_dwgeom dwg; /* phase-plane geometry, set when depthwise or direct */
} geom;

static void geom_of(const bp_opctx *c, geom *g)
{
    const bp_attrs *a = &c->node->a;
    const int64_t *x = c->xd[0], *w = c->xd[1], *y = c->yd;
    g->N = (int)x[0];
    g->C = (int)x[1];
    g->H = (int)x[2];
    g->W = (int)x[3];
    g->M = (int)w[0];
    g->kh = (int)w[2];
    g->kw = (int)w[3];
    g->OH = (int)y[2];
    g->OW = (int)y[3];
    g->sh = a->stride[0];
    g->sw = a->stride[1];
    g->pt = a->pads[0];
    g->pl = a->pads[1];
    g->dh = a->dilation[0];
    g->dw = a->dilation[1];
    g->G = a->group;
    g->Cg = g->C / g->G;
    g->Mg = g->M / g->G;
    g->Kg = g->Cg * g->kh * g->kw;
    g->P = g->OH * g->OW;
    g->depthwise = g->Cg == 1 && g->Mg == 1;
    g->pointwise = g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && g->OH == g->H &&
                   g->OW == g->W && g->pt == 0 && g->pl == 0;
    g->same = g->sh == 1 && g->sw == 1 && g->dh == 1 && g->dw == 1 && g->OH == g->H &&
              g->OW == g->W;
    /* never more threads than the scratch was sized for, nor than asked for now */
    g->nth = c->nthreads > 0 ? c->nthreads : 1;
    if (c->y && omp_get_max_threads() < g->nth)
        g->nth = omp_get_max_threads();
    g->direct = g->G == 1 && !g->depthwise && bp_cd_available();
    if (g->depthwise || g->direct)
        bp_dw_geom(&g->dwg, g->C, g->H, g->W, g->OH, g->OW, g->kh, g->kw, g->sh, g->sw, g->pt,
                   g->pl, g->dh, g->dw);
}

/* For a 'same' conv, im2col row (i, j) is the input plane shifted by
 * di*W + dj (di = i - pt, dj = j - pl): one contiguous range plus zeroed
 * border rows and columns. Returns the range [lo, hi) of output positions p
 * whose source p + shift lies in the plane. */
static void shift_range(const geom *g, int i, int j, long *shift, long *lo, long *hi)
{
    long P = g->P, sh = (long)(i - g->pt) * g->W + (j - g->pl);
    *shift = sh;
    *lo = sh < 0 ? -sh : 0;
    *hi = sh > 0 ? P - sh : P;
    if (*hi < *lo)
        *hi = *lo;
}

/* Zeroes the columns of a P-long row that read outside the plane's width for
 * a horizontal offset dj. */
static void zero_border_cols(const geom *g, int dj, bp_real *row)
{
    if (dj < 0)
        for (int oh = 0; oh < g->OH; oh++)
            for (int c = 0; c < -dj && c < g->OW; c++)
                row[(size_t)oh * g->OW + c] = 0;
    else if (dj > 0)
        for (int oh = 0; oh < g->OH; oh++)
            for (int c = g->OW - dj < 0 ? 0 : g->OW - dj; c < g->OW; c++)
                row[(size_t)oh * g->OW + c] = 0;
}

static void copy_range(long n, const bp_real *restrict src, bp_real *restrict dst)
{
#pragma omp simd
    for (long k = 0; k < n; k++)
        dst[k] = src[k];
}

static void add_range(long n, const bp_real *restrict src, bp_real *restrict dst)
{
#pragma omp simd
    for (long k = 0; k < n; k++)
        dst[k] += src[k];
}

/* At most this many output groups in one backward pass (ordinary + R). */
#define MAX_BGROUPS 2

/* Per thread: one sample's im2col (Kg x P) and a private dW (M x Kg) per
 * output group of a backward pass; with the direct kernel also the phase
 * planes of two inputs (the forward's x and R{x}, or the backward's dy and
 * R{dy}) and one output in phase-plane layout. */
static size_t round16(size_t n) { return (n + 15) / 16 * 16; }

static size_t ph_size(const geom *g) { return (size_t)g->dwg.sh * g->dwg.sw * g->dwg.plane; }
static size_t dyb_size(const geom *g) { return round16((size_t)(g->dwg.lead + g->dwg.plane)); }

/* Row stride of a transposed dy (positions x channels) for the direct dW. */
static int dyt_ld(const geom *g) { return (g->M + 15) / 16 * 16; }
static size_t dyt_size(const geom *g) { return round16((size_t)g->P * dyt_ld(g)); }

/* direct path: [x phase planes: 2 x C][dy buffers: 2 x M][out: max(M x T, C phase planes)]
 * [dy^T: 2] */
static size_t direct_per_thread(const geom *g)
{
    if (!g->direct)
        return 0;
    size_t in = 2 * round16((size_t)g->C * ph_size(g)), dy = 2 * (size_t)g->M * dyb_size(g);
    size_t out = (size_t)g->M * round16((size_t)g->dwg.T);
    if (out < (size_t)g->C * ph_size(g))
        out = (size_t)g->C * ph_size(g);
    return in + dy + round16(out) + 2 * dyt_size(g);
}

static size_t per_thread(const geom *g)
{
    return (size_t)g->Kg * g->P + MAX_BGROUPS * (size_t)g->M * g->Kg + direct_per_thread(g);
}

/* Ahead of the threads' areas, the direct path keeps packed weights (the
 * forward's [W|V] or one [W;V]^T per backward group) and the tap tables. */
static size_t tab_reals(const geom *g)
{
    return round16((bp_dw_tap_bytes(&g->dwg) + g->kh * g->kw * sizeof(long) + sizeof(bp_real) - 1) /
                   sizeof(bp_real));
}

static size_t shared_size(const geom *g)
{
    if (!g->direct)
        return 0;
    int K = g->kh * g->kw;
    size_t f = bp_cd_wsize(g->M, 2 * g->C, K), b = MAX_BGROUPS * bp_cd_wsize(g->C, 2 * g->M, K);
    return round16(f > b ? f : b) + tab_reals(g);
}

static bp_real *thread_area(const geom *g, bp_real *scratch, int th)
{
    return scratch + shared_size(g) + per_thread(g) * th;
}

size_t bp_conv_scratch(const bp_opctx *c)
{
    geom g;
    geom_of(c, &g);
    if (g.depthwise)
        return bp_dw_scratch(&g.dwg) * g.nth;
    return shared_size(&g) + per_thread(&g) * g.nth;
}

/* Output positions ow in [lo, hi) read an input column inside [0, W) for
 * kernel column offset off = j*dw - pl. */
static void valid_range(int off, int stride, int W, int OW, int *lo, int *hi)
{
    int l = off >= 0 ? 0 : (-off + stride - 1) / stride;
    int h = W - off > 0 ? (W - off + stride - 1) / stride : 0;
    if (h > OW)
        h = OW;
    if (l > h)
        l = h;
    *lo = l;
    *hi = h;
}

/* col (Kg x P) <- patches of sample s, channels of group grp. */
static void im2col(const geom *g, const bp_real *x, int s, int grp, bp_real *restrict col)
{
    int khw = g->kh * g->kw;
    if (g->same) {
        for (int r = 0; r < g->Kg; r++) {
            int cc = r / khw, i = (r / g->kw) % g->kh, j = r % g->kw;
            const bp_real *xp = x + ((size_t)s * g->C + (size_t)grp * g->Cg + cc) * g->P;
            bp_real *dst = col + (size_t)r * g->P;
            long sh, lo, hi;
            shift_range(g, i, j, &sh, &lo, &hi);
            for (long p = 0; p < lo; p++)
                dst[p] = 0;
            copy_range(hi - lo, xp + lo + sh, dst + lo);
            for (long p = hi; p < g->P; p++)
                dst[p] = 0;
            zero_border_cols(g, j - g->pl, dst);
        }
        return;
    }
    for (int r = 0; r < g->Kg; r++) {
        int cc = r / khw, i = (r / g->kw) % g->kh, j = r % g->kw;
        const bp_real *xp = x + ((size_t)s * g->C + (size_t)grp * g->Cg + cc) * g->H * g->W;
        bp_real *dst = col + (size_t)r * g->P;
        int off = j * g->dw - g->pl, lo, hi;
        valid_range(off, g->sw, g->W, g->OW, &lo, &hi);
        for (int oh = 0; oh < g->OH; oh++) {
            int ih = oh * g->sh - g->pt + i * g->dh;
            bp_real *restrict d = dst + (size_t)oh * g->OW;
            if (ih < 0 || ih >= g->H) {
                for (int ow = 0; ow < g->OW; ow++)
                    d[ow] = 0;
                continue;
            }
            const bp_real *restrict xr = xp + (size_t)ih * g->W + off;
            for (int ow = 0; ow < lo; ow++)
                d[ow] = 0;
            if (g->sw == 1)
#pragma omp simd
                for (int ow = lo; ow < hi; ow++)
                    d[ow] = xr[ow];
            else
                for (int ow = lo; ow < hi; ow++)
                    d[ow] = xr[(size_t)ow * g->sw];
            for (int ow = hi; ow < g->OW; ow++)
                d[ow] = 0;
        }
    }
}

/* dx (sample s, channels of group grp) += col2im(col). */
static void col2im(const geom *g, bp_real *restrict col, bp_real *dx, int s, int grp)
{
    if (g->same) {
        /* col is scratch: zero what fell on padding, then one contiguous add */
        for (int cc = 0; cc < g->Cg; cc++) {
            bp_real *xp = dx + ((size_t)s * g->C + (size_t)grp * g->Cg + cc) * g->P;
            for (int i = 0; i < g->kh; i++)
                for (int j = 0; j < g->kw; j++) {
                    bp_real *src = col + (size_t)((cc * g->kh + i) * g->kw + j) * g->P;
                    long sh, lo, hi;
                    shift_range(g, i, j, &sh, &lo, &hi);
                    zero_border_cols(g, j - g->pl, src);
                    add_range(hi - lo, src + lo, xp + lo + sh);
                }
        }
        return;
    }
    for (int cc = 0; cc < g->Cg; cc++) {
        bp_real *xp = dx + ((size_t)s * g->C + (size_t)grp * g->Cg + cc) * g->H * g->W;
        for (int i = 0; i < g->kh; i++)
            for (int j = 0; j < g->kw; j++) {
                int r = (cc * g->kh + i) * g->kw + j;
                const bp_real *src = col + (size_t)r * g->P;
                int off = j * g->dw - g->pl, lo, hi;
                valid_range(off, g->sw, g->W, g->OW, &lo, &hi);
                for (int oh = 0; oh < g->OH; oh++) {
                    int ih = oh * g->sh - g->pt + i * g->dh;
                    if (ih < 0 || ih >= g->H)
                        continue;
                    bp_real *restrict xr = xp + (size_t)ih * g->W + off;
                    const bp_real *restrict sr = src + (size_t)oh * g->OW;
                    if (g->sw == 1)
#pragma omp simd
                        for (int ow = lo; ow < hi; ow++)
                            xr[ow] += sr[ow];
                    else
                        for (int ow = lo; ow < hi; ow++)
                            xr[(size_t)ow * g->sw] += sr[ow];
                }
            }
    }
}

/* ---- general path ------------------------------------------------------------- */

/* The general path runs one sample per OpenMP iteration with a single-threaded
 * gemm straight into NCHW (W (Mg x Kg) times the sample's im2col (Kg x P)).
 * Mixing OpenBLAS's own thread pool with OpenMP loops on a 2-core machine
 * made both spin against each other; one threading system is faster. The
 * OpenBLAS thread count is set to 1 for the duration and restored. */
static int blas_single(void)
{
    int old = openblas_get_num_threads();
    if (old != 1)
        openblas_set_num_threads(1);
    return old;
}

static void blas_restore(int old)
{
    if (old != 1)
        openblas_set_num_threads(old);
}

/* ---- direct path (conv_direct.h) ------------------------------------------------ */

/* Tap tables and the packed-weight area ahead of the threads' areas. */
static bp_real *wpack_area(bp_real *scratch) { return scratch; }

static void direct_taps(const geom *g, bp_real *scratch, bp_dwtaps *tb, long **offp)
{
    bp_real *mem = scratch + shared_size(g) - tab_reals(g);
    int all = bp_dw_tap_tables(&g->dwg, mem, tb);
    (void)all;
    *offp = (long *)(void *)((char *)mem + bp_dw_tap_bytes(&g->dwg));
}

/* wp <- [w0 | w1] for the forward: output m, input i (i < C from w0, else
 * from w1), tap n, in blocks of BP_CD_OB outputs. */
static void pack_fwd_w(const geom *g, const bp_real *w0, const bp_real *w1, bp_real *wp)
{
    int K = g->kh * g->kw, ni = w1 ? 2 * g->C : g->C;
    size_t q = 0;
    for (int ob = 0; ob < g->M; ob += BP_CD_OB)
        for (int i = 0; i < ni; i++) {
            const bp_real *w = i < g->C ? w0 : w1;
            int c = i < g->C ? i : i - g->C;
            for (int n = 0; n < K; n++)
                for (int o = 0; o < BP_CD_OB; o++, q++)
                    wp[q] = ob + o < g->M ? w[((size_t)(ob + o) * g->C + c) * K + n] : 0;
        }
}

/* y = conv(x0, w0) [+ conv(x1, w1)] + bias, one kernel call per
 * sample: both terms are summed in the same registers. */
static void fwd_direct(const geom *g, const bp_real *x0, const bp_real *w0, const bp_real *x1,
                       const bp_real *w1, const bp_real *bias, bp_real *y, bp_real *scratch)
{
    const bp_dwgeom *d = &g->dwg;
    if (!x0 || !w0)
        x0 = x1, w0 = w1, x1 = w1 = NULL;
    if (!x1 || !w1)
        x1 = w1 = NULL;
    int K = g->kh * g->kw;
    bp_dwtaps tb;
    long *offp;
    direct_taps(g, scratch, &tb, &offp);
    bp_real *wp = wpack_area(scratch);
    if (x0)
        pack_fwd_w(g, w0, w1, wp);
    size_t in = (size_t)g->C * g->H * g->W, out = (size_t)g->M * g->P, phs = ph_size(g);
    size_t xin = round16((size_t)g->C * phs);
#pragma omp parallel num_threads(g->nth) if (BIG((size_t)g->N * g->M * g->P * g->Kg / 8))
    {
        bp_real *xph = thread_area(g, scratch, omp_get_thread_num()) +
                       (per_thread(g) - direct_per_thread(g));
#pragma omp for schedule(static)
        for (int s = 0; s < g->N; s++) {
            bp_real *ys = y + s * out;
            if (!x0) { /* no term: bias only */
                for (int m = 0; m < g->M; m++)
                    for (int p = 0; p < g->P; p++)
                        ys[(size_t)m * g->P + p] = bias ? bias[m] : 0;
                continue;
            }
            if (g->pointwise) {
                bp_cd_run(g->P, g->M, x0 + s * in, g->C, g->P, x1 ? x1 + s * in : NULL, g->C, g->P,
                          1, tb.xoff, wp, ys, g->P, 0);
                if (bias)
                    for (int m = 0; m < g->M; m++) {
                        bp_real bv = bias[m], *restrict dst = ys + (size_t)m * g->P;
#pragma omp simd
                        for (int p = 0; p < g->P; p++)
                            dst[p] += bv;
                    }
                continue;
            }
            for (int c = 0; c < g->C; c++) {
                bp_dw_pack(d, x0 + s * in + (size_t)c * g->H * g->W, xph + c * phs);
                if (x1)
                    bp_dw_pack(d, x1 + s * in + (size_t)c * g->H * g->W, xph + xin + c * phs);
            }
            /* straight into y: gap columns dropped, bias added, no flat copy */
            bp_cd_run_nchw(d->T, g->M, xph, g->C, (long)phs, x1 ? xph + xin : NULL, g->C,
                           (long)phs, K, tb.xoff, wp, ys, g->P, d->Wq, g->OW, bias, 0);
        }
    }
    (void)offp;
}

/* The direct dx of one backward group: up to two terms (dy, w) summed,
 * dx += conv^T(dy_a, w_a) + conv^T(dy_b, w_b). */
typedef struct {
    const bp_real *dy[2], *w[2];
    int nt;
    const bp_real *wp; /* packed per phase plane, runs in tap order */
} dxplan;

/* wp <- for each phase plane's run of taps (order[n0..n1)), the transposed
 * weights [c-block][i][n][BP_CD_OB], input i < M from w[0], else w[1]. */
static size_t pack_dx_w(const geom *g, const bp_dwtaps *tb, const dxplan *pl, bp_real *wp)
{
    int K = g->kh * g->kw, ni = pl->nt * g->M;
    size_t q = 0;
    for (int n0 = 0; n0 < K;) {
        int ph = bp_dw_tap_phase(&g->dwg, tb->order[n0]), n1 = n0 + 1;
        while (n1 < K && bp_dw_tap_phase(&g->dwg, tb->order[n1]) == ph)
            n1++;
        for (int cb = 0; cb < g->C; cb += BP_CD_OB)
            for (int i = 0; i < ni; i++) {
                const bp_real *w = pl->w[i / g->M];
                int m = i % g->M;
                for (int n = n0; n < n1; n++)
                    for (int o = 0; o < BP_CD_OB; o++, q++)
                        wp[q] = cb + o < g->C ? w[((size_t)m * g->C + cb + o) * K + tb->order[n]] : 0;
            }
        n0 = n1;
    }
    return q;
}

/* Which dy tensors the two dy-buffer slots of a thread hold for the current
 * sample: the backward + R-backward's two groups read dy in both (W with dy,
 * V with dy), packed once. Cleared (n = 0) for each sample. */
typedef struct {
    const bp_real *who[2];
    int n;
} dyslots;

/* dx of sample s += (with set, =) the plan's terms. area is the thread's
 * direct area. */
static void dx_direct(const geom *g, const dxplan *pl, const bp_dwtaps *tb, const long *offp,
                      int set, int s, bp_real *dx, bp_real *area, dyslots *ds)
{
    const bp_dwgeom *d = &g->dwg;
    int K = g->kh * g->kw;
    size_t out = (size_t)g->M * g->P, in = (size_t)g->C * g->H * g->W, phs = ph_size(g);
    size_t xin = round16((size_t)g->C * phs), dybsz = dyb_size(g);
    if (g->pointwise) {
        bp_cd_run(g->P, g->C, pl->dy[0] + s * out, g->M, g->P,
                  pl->nt > 1 ? pl->dy[1] + s * out : NULL, g->M, g->P, 1, offp, pl->wp, dx + s * in,
                  g->P, !set);
        return;
    }
    bp_real *dyb = area + 2 * xin, *dxph = dyb + 2 * (size_t)g->M * dybsz;
    const bp_real *src[2] = {NULL, NULL};
    int slot[2] = {-1, -1};
    for (int k = 0; k < pl->nt; k++) {
        for (int i = 0; i < ds->n; i++)
            if (ds->who[i] == pl->dy[k])
                slot[k] = i;
        if (slot[k] < 0 && ds->n < 2)
            ds->who[slot[k] = ds->n++] = NULL;
    }
    if (slot[0] < 0 || (pl->nt > 1 && slot[1] < 0)) { /* no room: this call's terms only */
        ds->n = pl->nt;
        for (int k = 0; k < pl->nt; k++)
            ds->who[k] = NULL, slot[k] = k;
    }
    for (int k = 0; k < pl->nt; k++) {
        bp_real *b = dyb + (size_t)slot[k] * g->M * dybsz;
        if (ds->who[slot[k]] != pl->dy[k]) {
            for (int m = 0; m < g->M; m++)
                bp_dw_pack_dy(d, pl->dy[k] + s * out + (size_t)m * g->P, b + (size_t)m * dybsz);
            ds->who[slot[k]] = pl->dy[k];
        }
        src[k] = b;
    }
    const bp_real *wp = pl->wp;
    long lo0, hi0;
    bp_dw_phase_span(d, 0, &lo0, &hi0);
    if (d->sh == 1 && d->sw == 1 && hi0 - lo0 == (long)(g->H - 1) * d->Wq + g->W) {
        /* one phase plane whose span is the whole input: the kernel writes
         * (or adds into) dx in NCHW directly, no phase plane to unpack */
        bp_cd_run_nchw(hi0 - lo0, g->C, src[0] + lo0, g->M, (long)dybsz,
                       pl->nt > 1 ? src[1] + lo0 : NULL, g->M, (long)dybsz, K, offp, wp, dx + s * in,
                       (long)g->H * g->W, d->Wq, g->W, NULL, !set);
        return;
    }
    for (int n0 = 0; n0 < K;) {
        int ph = bp_dw_tap_phase(d, tb->order[n0]), n1 = n0 + 1;
        while (n1 < K && bp_dw_tap_phase(d, tb->order[n1]) == ph)
            n1++;
        /* only the span unpack reads: the padding border of a phase plane is
         * dropped anyway (a third of a 9x9 plane around a 7x7 input) */
        long lo, hi;
        bp_dw_phase_span(d, ph, &lo, &hi);
        if (hi > lo)
            bp_cd_run(hi - lo, g->C, src[0] + lo, g->M, (long)dybsz,
                      pl->nt > 1 ? src[1] + lo : NULL, g->M, (long)dybsz,
                      n1 - n0, offp + n0, wp, dxph + (size_t)ph * d->plane + lo, (long)phs, 0);
        wp += bp_cd_wsize(g->C, pl->nt * g->M, n1 - n0);
        n0 = n1;
    }
    /* each phase plane a tap reaches is written by one run above; unpacking
     * skips the others */
    for (int c = 0; c < g->C; c++)
        (set ? bp_dw_unpack_set : bp_dw_unpack_add)(d, dxph + c * phs,
                                                    dx + s * in + (size_t)c * g->H * g->W);
}

/* y (=, or += when accumulate) conv(x0, w0) [+ conv(x1, w1)] + bias; the
 * second term (x1/w1 NULL = absent) is the R-forward's conv(x, V), done on
 * the same sample while its output is in cache. bias may be NULL. */
static void conv_fwd2(const geom *g, const bp_real *x0, const bp_real *w0, const bp_real *x1,
                      const bp_real *w1, const bp_real *bias, bp_real *y, int accumulate,
                      bp_real *scratch)
{
    if (g->depthwise) {
        bp_dw_forward(&g->dwg, g->N, x0, w0, x1, w1, bias, y, accumulate, scratch, g->nth);
        return;
    }
    if (g->direct && !accumulate) { /* the direct kernel writes y */
        fwd_direct(g, x0, w0, x1, w1, bias, y, scratch);
        return;
    }
    int old = blas_single();
#pragma omp parallel num_threads(g->nth) if (BIG((size_t)g->N * g->M * g->P * g->Kg / 8))
    {
        bp_real *col = thread_area(g, scratch, omp_get_thread_num());
#pragma omp for schedule(static)
        for (int s = 0; s < g->N; s++)
            for (int grp = 0; grp < g->G; grp++) {
                bp_real *ys = y + ((size_t)s * g->M + (size_t)grp * g->Mg) * g->P;
                size_t xoff = ((size_t)s * g->C + (size_t)grp * g->Cg) * g->P;
                size_t woff = (size_t)grp * g->Mg * g->Kg;
                int wrote = accumulate; /* beta 0 for the first product written */
                for (int k = 0; k < 2; k++) {
                    const bp_real *x = k ? x1 : x0, *w = k ? w1 : w0;
                    if (!x || !w)
                        continue;
                    const bp_real *b = col;
                    if (g->pointwise)
                        b = x + xoff;
                    else
                        im2col(g, x, s, grp, col);
                    bp_gemm(0, 0, g->Mg, g->P, g->Kg, 1, w + woff, g->Kg, b, g->P, wrote ? 1 : 0,
                            ys, g->P);
                    wrote = 1;
                }
                if (bias)
                    for (int m = 0; m < g->Mg; m++) {
                        bp_real bv = bias[grp * g->Mg + m], *restrict d = ys + (size_t)m * g->P;
#pragma omp simd
                        for (int p = 0; p < g->P; p++)
                            d[p] += bv;
                    }
            }
    }
    blas_restore(old);
}

static void conv_fwd(const geom *g, const bp_real *x, const bp_real *w, const bp_real *bias,
                     bp_real *y, int accumulate, bp_real *scratch)
{
    conv_fwd2(g, x, w, NULL, NULL, bias, y, accumulate, scratch);
}

/* One backward term: dy paired with the x that multiplies it in dW and the w
 * that carries it back to dx. Any pointer may be NULL (term absent). */
typedef struct {
    const bp_real *x, *w, *dy;
} bterm;

/* Terms summed into one pair of outputs: dx += sum conv^T(t.dy, t.w),
 * dw += sum corr(t.x, t.dy); dx or dw may be NULL. With set, dx holds
 * garbage and is written (the engine's dx_set). */
typedef struct {
    const bterm *t;
    int nt;
    bp_real *dx, *dw;
    int set;
} bgroup;


/* Index of p in the n-entry list, added when absent and there is room
 * (n < 2); -1 when full. */
static int slot_of(const bp_real **list, int *n, const bp_real *p)
{
    for (int i = 0; i < *n; i++)
        if (list[i] == p)
            return i;
    if (*n >= 2)
        return -1;
    list[*n] = p;
    return (*n)++;
}

/* The direct dW of one sample: for each group, dwt (Kg x M, transposed) +=
 * the terms' corr(x, dy), all terms of a group in one kernel call. Each
 * distinct x is packed into phase planes once and each distinct dy
 * transposed once, in the thread's direct area. Terms that find no free slot
 * (never with the engine's callers: at most x, R{x} and dy, R{dy}) are left
 * to the caller, flagged in done[q][k] = 0. */
static void dw_direct(const geom *g, const bgroup *gr, int ngr, const bp_dwtaps *tb, int s,
                      bp_real *darea, bp_real *dwt0, size_t nw, int done[][2])
{
    const bp_dwgeom *d = &g->dwg;
    size_t in = (size_t)g->C * g->H * g->W, out = (size_t)g->M * g->P, phs = ph_size(g);
    size_t xin = round16((size_t)g->C * phs);
    bp_real *dytb = darea + direct_per_thread(g) - 2 * dyt_size(g);
    const bp_real *xl[2], *yl[2];
    int nx = 0, ny = 0;
    for (int q = 0; q < ngr; q++) {
        if (!gr[q].dw)
            continue;
        const bp_real *xs[2], *ys[2];
        int nt = 0;
        for (int k = 0; k < gr[q].nt && k < 2; k++) {
            const bterm *t = &gr[q].t[k];
            done[q][k] = 0;
            if (!t->dy || !t->x)
                continue;
            int had_x = nx, had_y = ny;
            int ix = slot_of(xl, &nx, t->x), iy = slot_of(yl, &ny, t->dy);
            if (ix < 0 || iy < 0)
                continue;
            if (ix == had_x && !g->pointwise)
                for (int c = 0; c < g->C; c++)
                    bp_dw_pack(d, t->x + s * in + (size_t)c * g->H * g->W,
                               darea + ix * xin + c * phs);
            if (iy == had_y)
                bp_cd_transpose(g->M, g->P, t->dy + s * out, dyt_ld(g), dytb + iy * dyt_size(g));
            xs[nt] = g->pointwise ? t->x + s * in : darea + ix * xin;
            ys[nt++] = dytb + iy * dyt_size(g);
            done[q][k] = 1;
        }
        if (nt)
            bp_cd_dw(g->Kg, g->kh * g->kw, tb->xoff, g->M, nt, xs,
                     g->pointwise ? (long)g->P : (long)phs, ys, dyt_ld(g), g->OH, g->OW,
                     g->pointwise ? g->OW : d->Wq, dwt0 + q * nw, g->M);
    }
}

/* Runs up to MAX_BGROUPS output groups in one pass over the batch: the
 * ordinary backward is one group with one term; the HVP's backward adds the
 * R-group with terms (x, W, R{dy}) and (R{x}, V, dy), so each sample's dy is
 * used while in cache and each group needs one col2im per sample.
 * Each thread sums its samples' dW privately (transposed per group, Kg x Mg:
 * col · dy^T runs 20-35% faster in OpenBLAS than dy · col^T here), then the
 * partials are added in thread order, so a run is reproducible at a given
 * thread count. */
static void conv_bwd_groups(const geom *g, const bgroup *gr, int ngr, bp_real *scratch)
{
    int any = 0;
    for (int q = 0; q < ngr; q++)
        any |= gr[q].dx || gr[q].dw;
    if (!any)
        return;
    /* A dx to be written: the direct path writes it per sample while in cache
     * (dx_direct); elsewhere it is cleared here and added into. */
    size_t nx = (size_t)g->N * g->C * g->H * g->W;
    int direct_set[MAX_BGROUPS] = {0};
    for (int q = 0; q < ngr; q++) {
        if (!gr[q].dx || !gr[q].set)
            continue;
        int terms = 0;
        for (int k = 0; k < gr[q].nt; k++)
            terms += gr[q].t[k].dy && gr[q].t[k].w;
        if (g->direct && terms)
            direct_set[q] = 1;
        else
            memset(gr[q].dx, 0, nx * sizeof *gr[q].dx);
    }
    if (g->depthwise) {
        bp_dwgroup dg[BP_DW_MAX_GROUPS];
        for (int q = 0; q < ngr; q++) {
            dg[q].nt = gr[q].nt;
            dg[q].dx = gr[q].dx;
            dg[q].dw = gr[q].dw;
            for (int k = 0; k < gr[q].nt; k++)
                dg[q].t[k] = (bp_dwterm){gr[q].t[k].x, gr[q].t[k].w, gr[q].t[k].dy};
        }
        bp_dw_backward(&g->dwg, g->N, dg, ngr, scratch, g->nth);
        return;
    }
    /* direct dx: weights packed once per call, per group */
    dxplan plan[MAX_BGROUPS];
    bp_dwtaps tb;
    long *offp = NULL;
    if (g->direct) {
        bp_real *mem = scratch + shared_size(g) - tab_reals(g);
        bp_dw_tap_tables(&g->dwg, mem, &tb);
        offp = (long *)(void *)((char *)mem + bp_dw_tap_bytes(&g->dwg));
        for (int n = 0; n < g->kh * g->kw; n++)
            offp[n] = tb.yoff[tb.order[n]];
        bp_real *wp = wpack_area(scratch);
        for (int q = 0; q < ngr; q++) {
            plan[q].nt = 0;
            for (int k = 0; gr[q].dx && k < gr[q].nt; k++)
                if (gr[q].t[k].dy && gr[q].t[k].w) {
                    plan[q].dy[plan[q].nt] = gr[q].t[k].dy;
                    plan[q].w[plan[q].nt++] = gr[q].t[k].w;
                }
            plan[q].wp = wp;
            if (plan[q].nt)
                wp += pack_dx_w(g, &tb, &plan[q], wp);
        }
    }
    int old = blas_single();
    size_t nw = (size_t)g->M * g->Kg, ccol = (size_t)g->Kg * g->P;
#pragma omp parallel num_threads(g->nth) if (BIG((size_t)g->N * g->M * g->P * g->Kg / 8))
    {
        bp_real *col = thread_area(g, scratch, omp_get_thread_num());
        bp_real *darea = col + (per_thread(g) - direct_per_thread(g));
        for (int q = 0; q < ngr; q++)
            if (gr[q].dw)
                memset(col + ccol + q * nw, 0, nw * sizeof *col);
#pragma omp for schedule(static)
        for (int s = 0; s < g->N; s++)
            for (int grp = 0; grp < g->G; grp++) {
                size_t yoff = ((size_t)s * g->M + (size_t)grp * g->Mg) * g->P;
                size_t xoff = ((size_t)s * g->C + (size_t)grp * g->Cg) * g->P;
                size_t woff = (size_t)grp * g->Mg * g->Kg;
                int done[MAX_BGROUPS][2] = {{0}};
                dyslots ds = {{NULL, NULL}, 0};
                if (g->direct)
                    dw_direct(g, gr, ngr, &tb, s, darea, col + ccol, nw, done);
                for (int q = 0; q < ngr; q++) {
                    const bgroup *G = &gr[q];
                    bp_real *dwt = col + ccol + q * nw;
                    for (int k = 0; G->dw && k < G->nt; k++) {
                        const bterm *t = &G->t[k];
                        if (!t->dy || !t->x || (k < 2 && done[q][k]))
                            continue;
                        const bp_real *b = col;
                        if (g->pointwise)
                            b = t->x + xoff;
                        else
                            im2col(g, t->x, s, grp, col);
                        bp_gemm(0, 1, g->Kg, g->Mg, g->P, 1, b, g->P, t->dy + yoff, g->P, 1,
                                dwt + woff, g->Mg);
                    }
                    if (!G->dx)
                        continue;
                    if (g->direct) {
                        if (plan[q].nt)
                            dx_direct(g, &plan[q], &tb, offp, direct_set[q], s, G->dx, darea, &ds);
                        continue;
                    }
                    int have = 0;
                    for (int k = 0; k < G->nt; k++) {
                        const bterm *t = &G->t[k];
                        if (!t->dy || !t->w)
                            continue;
                        if (g->pointwise)
                            bp_gemm(1, 0, g->Kg, g->P, g->Mg, 1, t->w + woff, g->Kg, t->dy + yoff,
                                    g->P, 1, G->dx + xoff, g->P);
                        else
                            bp_gemm(1, 0, g->Kg, g->P, g->Mg, 1, t->w + woff, g->Kg, t->dy + yoff,
                                    g->P, have ? 1 : 0, col, g->P);
                        have = 1;
                    }
                    if (have && !g->pointwise)
                        col2im(g, col, G->dx, s, grp);
                }
            }
        /* the loop above ends with a barrier: every partial is complete */
        int nthr = omp_get_num_threads();
        for (int q = 0; q < ngr; q++) {
            if (!gr[q].dw)
                continue;
            bp_real *dw = gr[q].dw;
#pragma omp for schedule(static)
            for (size_t i = 0; i < nw; i++) {
                /* dw[grp][m][k] from the transposed partials [grp][k][m] */
                size_t grp = i / ((size_t)g->Mg * g->Kg), r = i % ((size_t)g->Mg * g->Kg);
                size_t m = r / g->Kg, k = r % g->Kg;
                size_t src = ccol + q * nw + grp * g->Mg * g->Kg + k * g->Mg + m;
                bp_real acc = dw[i];
                for (int th = 0; th < nthr; th++)
                    acc += thread_area(g, scratch, th)[src];
                dw[i] = acc;
            }
        }
    }
    blas_restore(old);
}

static void bias_bwd(const geom *g, const bp_real *dy, bp_real *db)
{
#pragma omp parallel for schedule(static) if (BIG((size_t)g->N * g->M * g->P))
    for (int m = 0; m < g->M; m++) {
        bp_real acc = 0;
        for (int s = 0; s < g->N; s++) {
            const bp_real *p = dy + ((size_t)s * g->M + m) * g->P;
            for (int q = 0; q < g->P; q++)
                acc += p[q];
        }
        db[m] += acc;
    }
}

/* ---- op entry points ------------------------------------------------------------ */

/* The backward entry points honour dx_set / rdx_set (ops_table.c passes them
 * through): the data input's through bgroup.set, any other input's (W or
 * the bias as activations, which no engine graph has) by clearing it here. */
static void clear_set_params(const bp_opctx *c, const unsigned char *set, bp_real *const *buf)
{
    for (int j = 1; j < c->nin; j++)
        if (set[j] && buf[j])
            memset(buf[j], 0, bp_numel(c->xd[j], c->xnd[j]) * sizeof(bp_real));
}

bp_status bp_conv_forward(bp_opctx *c)
{
    geom g;
    geom_of(c, &g);
    conv_fwd(&g, c->x[0], c->x[1], c->nin > 2 ? c->x[2] : NULL, c->y, 0, c->scratch);
    return BP_OK;
}

bp_status bp_conv_backward(bp_opctx *c)
{
    geom g;
    geom_of(c, &g);
    bterm t = {c->x[0], c->x[1], c->dy};
    clear_set_params(c, c->dx_set, c->dx);
    bgroup gr = {&t, 1, c->dx[0], c->dx[1], c->dx_set[0]};
    conv_bwd_groups(&g, &gr, 1, c->scratch);
    if (c->nin > 2 && c->dx[2])
        bias_bwd(&g, c->dy, c->dx[2]);
    return BP_OK;
}

bp_status bp_conv_rop_forward(bp_opctx *c)
{
    geom g;
    geom_of(c, &g);
    const bp_real *vb = c->nin > 2 ? c->rx[2] : NULL;
    if (c->rx[0] || c->rx[1]) {
        /* R{y} = conv(R{x}, W) + conv(x, V) + V_b */
        conv_fwd2(&g, c->rx[0], c->rx[0] ? c->x[1] : NULL, c->x[0], c->rx[1], vb, c->ry, 0,
                  c->scratch);
        return BP_OK;
    }
    /* only the bias moves */
    size_t plane = (size_t)g.P;
#pragma omp parallel for collapse(2) schedule(static) if (BIG((size_t)g.N * g.M * g.P))
    for (int s = 0; s < g.N; s++)
        for (int m = 0; m < g.M; m++) {
            bp_real *d = c->ry + ((size_t)s * g.M + m) * plane;
            bp_real v = vb ? vb[m] : 0;
            for (size_t q = 0; q < plane; q++)
                d[q] = v;
        }
    return BP_OK;
}

/* R{dx} = conv^T(R{dy}, W) + conv^T(dy, V); R{dW} = corr(x, R{dy}) + corr(R{x}, dy) */
bp_status bp_conv_rop_backward(bp_opctx *c)
{
    geom g;
    geom_of(c, &g);
    bterm t[2] = {{c->x[0], c->x[1], c->rdy}, {c->rx[0], c->rx[1], c->dy}};
    clear_set_params(c, c->rdx_set, c->rdx);
    bgroup gr = {t, 2, c->rdx[0], c->rdx[1], c->rdx_set[0]};
    conv_bwd_groups(&g, &gr, 1, c->scratch);
    if (c->rdy && c->nin > 2 && c->rdx[2])
        bias_bwd(&g, c->rdy, c->rdx[2]);
    return BP_OK;
}

/* Ordinary backward and R-backward in one pass (same sums as calling
 * bp_conv_backward then bp_conv_rop_backward). */
bp_status bp_conv_bwd_rop(bp_opctx *c)
{
    geom g;
    geom_of(c, &g);
    bterm t0 = {c->x[0], c->x[1], c->dy};
    bterm t1[2] = {{c->x[0], c->x[1], c->rdy}, {c->rx[0], c->rx[1], c->dy}};
    clear_set_params(c, c->dx_set, c->dx);
    clear_set_params(c, c->rdx_set, c->rdx);
    bgroup gr[2] = {{&t0, 1, c->dx[0], c->dx[1], c->dx_set[0]},
                    {t1, 2, c->rdx[0], c->rdx[1], c->rdx_set[0]}};
    conv_bwd_groups(&g, gr, 2, c->scratch);
    if (c->nin > 2 && c->dx[2])
        bias_bwd(&g, c->dy, c->dx[2]);
    if (c->rdy && c->nin > 2 && c->rdx[2])
        bias_bwd(&g, c->rdy, c->rdx[2]);
    return BP_OK;
}
