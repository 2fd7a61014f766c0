/* Conv (2-D, groups, strides, asymmetric pads, dilations, optional bias):
 * forward, backward and R-op.
 *
 * General path: per sample (OpenMP over the batch), im2col into (K_g x P) and
 * one single-threaded gemm per group straight into NCHW; 1x1 stride-1 convs
 * skip im2col. Backward: dW = dy col^T summed per thread, dx = W^T dy then
 * col2im.
 * Depthwise convolutions (one input and one output channel per group) use
 * direct loops: im2col would copy kh*kw times the input for a tiny gemm.
 *
 * R-op (the conv is bilinear in x and W):
 *   R{y}  = conv(R{x}, W) + conv(x, V) + V_b
 *   R{dx} = conv^T(R{dy}, W) + conv^T(dy, V)
 *   R{dW} = corr(x, R{dy}) + corr(R{x}, dy),  R{db} = sum R{dy}
 */
#include <string.h>

#include <omp.h>

#include "core/blas.h"
#include "core/conv_dw.h"
#include "core/ops.h"

typedef struct {
    int N, C, H, W, M, OH, OW, kh, kw, sh, sw, pt, pl, dh, dw, G;
    int Cg, Mg, Kg, P;
    int depthwise; /* one input and one output channel per group */
    int pointwise; /* 1x1, stride 1, no pads: the input plane is already im2col */
    int same;      /* stride 1, dilation 1, output plane = input plane: rows are shifts */
    int nth;       /* threads the scratch was sized for */
    bp_dwgeom dwg; /* set when depthwise */
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
    if (g->depthwise)
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
 * output group of a backward pass. */
static size_t per_thread(const geom *g)
{
    return (size_t)g->Kg * g->P + MAX_BGROUPS * (size_t)g->M * g->Kg;
}

size_t bp_conv_scratch(const bp_opctx *c)
{
    geom g;
    geom_of(c, &g);
    return (g.depthwise ? bp_dw_scratch(&g.dwg) : per_thread(&g)) * g.nth;
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
    int old = blas_single();
#pragma omp parallel num_threads(g->nth) if (BIG((size_t)g->N * g->M * g->P * g->Kg / 8))
    {
        bp_real *col = scratch + per_thread(g) * omp_get_thread_num();
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
 * dw += sum corr(t.x, t.dy); dx or dw may be NULL. */
typedef struct {
    const bterm *t;
    int nt;
    bp_real *dx, *dw;
} bgroup;

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
    int old = blas_single();
    size_t nw = (size_t)g->M * g->Kg, ccol = (size_t)g->Kg * g->P;
#pragma omp parallel num_threads(g->nth) if (BIG((size_t)g->N * g->M * g->P * g->Kg / 8))
    {
        bp_real *col = scratch + per_thread(g) * omp_get_thread_num();
        for (int q = 0; q < ngr; q++)
            if (gr[q].dw)
                memset(col + ccol + q * nw, 0, nw * sizeof *col);
#pragma omp for schedule(static)
        for (int s = 0; s < g->N; s++)
            for (int grp = 0; grp < g->G; grp++) {
                size_t yoff = ((size_t)s * g->M + (size_t)grp * g->Mg) * g->P;
                size_t xoff = ((size_t)s * g->C + (size_t)grp * g->Cg) * g->P;
                size_t woff = (size_t)grp * g->Mg * g->Kg;
                for (int q = 0; q < ngr; q++) {
                    const bgroup *G = &gr[q];
                    bp_real *dwt = col + ccol + q * nw;
                    for (int k = 0; G->dw && k < G->nt; k++) {
                        const bterm *t = &G->t[k];
                        if (!t->dy || !t->x)
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
                    acc += scratch[per_thread(g) * th + src];
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
    bgroup gr = {&t, 1, c->dx[0], c->dx[1]};
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
    bgroup gr = {t, 2, c->rdx[0], c->rdx[1]};
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
    bgroup gr[2] = {{&t0, 1, c->dx[0], c->dx[1]}, {t1, 2, c->rdx[0], c->rdx[1]}};
    conv_bwd_groups(&g, gr, 2, c->scratch);
    if (c->nin > 2 && c->dx[2])
        bias_bwd(&g, c->dy, c->dx[2]);
    if (c->rdy && c->nin > 2 && c->rdx[2])
        bias_bwd(&g, c->rdy, c->rdx[2]);
    return BP_OK;
}
