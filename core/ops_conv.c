/* Conv (2-D, groups, strides, asymmetric pads, dilations, optional bias):
 * forward, backward and R-op.
 *
 * General path: im2col of a chunk of samples into a (K_g x B*P) matrix, one
 * gemm per group and chunk (big enough for OpenBLAS to thread), then a scatter
 * into NCHW. Backward gathers dy into (M_g x B*P) the same way: dW is one gemm
 * against the im2col of x, dx is W^T dy followed by col2im.
 * Depthwise convolutions (one input and one output channel per group) use
 * direct loops: im2col would copy kh*kw times the input for a tiny gemm.
 *
 * R-op (the conv is bilinear in x and W):
 *   R{y}  = conv(R{x}, W) + conv(x, V) + V_b
 *   R{dx} = conv^T(R{dy}, W) + conv^T(dy, V)
 *   R{dW} = corr(x, R{dy}) + corr(R{x}, dy),  R{db} = sum R{dy}
 */
#include <string.h>

#include "core/blas.h"
#include "core/ops.h"

/* Samples per chunk are chosen so that the im2col matrix has at most this
 * many elements (16 MB in float): large gemms, bounded scratch. */
#define CHUNK_REALS ((size_t)1 << 22)

typedef struct {
    int N, C, H, W, M, OH, OW, kh, kw, sh, sw, pt, pl, dh, dw, G;
    int Cg, Mg, Kg, P, B;
    int depthwise; /* one input and one output channel per group */
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
    size_t per = (size_t)g->Kg * g->P;
    size_t b = per ? CHUNK_REALS / per : 1;
    if (b < 1)
        b = 1;
    if (b > (size_t)g->N)
        b = g->N;
    g->B = (int)b;
    g->depthwise = g->Cg == 1 && g->Mg == 1;
}

size_t bp_conv_scratch(const bp_opctx *c)
{
    geom g;
    geom_of(c, &g);
    if (g.depthwise)
        return 0;
    return ((size_t)g.Kg + g.Mg) * g.B * g.P;
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

/* col (Kg x nb*P) <- patches of samples s0..s0+nb-1, channels of group grp. */
static void im2col(const geom *g, const bp_real *x, int s0, int nb, int grp, bp_real *col)
{
    size_t BP = (size_t)nb * g->P;
    int khw = g->kh * g->kw;
#pragma omp parallel for collapse(2) schedule(static) if (BIG((size_t)g->Kg * nb * g->P))
    for (int r = 0; r < g->Kg; r++)
        for (int b = 0; b < nb; b++) {
            int cc = r / khw, i = (r / g->kw) % g->kh, j = r % g->kw;
            const bp_real *xp = x + ((size_t)(s0 + b) * g->C + (size_t)grp * g->Cg + cc) * g->H * g->W;
            bp_real *dst = col + (size_t)r * BP + (size_t)b * g->P;
            int off = j * g->dw - g->pl, lo, hi;
            valid_range(off, g->sw, g->W, g->OW, &lo, &hi);
            for (int oh = 0; oh < g->OH; oh++) {
                int ih = oh * g->sh - g->pt + i * g->dh;
                bp_real *d = dst + (size_t)oh * g->OW;
                if (ih < 0 || ih >= g->H) {
                    memset(d, 0, sizeof *d * g->OW);
                    continue;
                }
                const bp_real *xr = xp + (size_t)ih * g->W + off;
                for (int ow = 0; ow < lo; ow++)
                    d[ow] = 0;
                if (g->sw == 1)
                    memcpy(d + lo, xr + lo, sizeof *d * (hi - lo));
                else
                    for (int ow = lo; ow < hi; ow++)
                        d[ow] = xr[(size_t)ow * g->sw];
                for (int ow = hi; ow < g->OW; ow++)
                    d[ow] = 0;
            }
        }
}

/* dx (samples s0.., channels of group grp) += col2im(col). One thread per
 * (sample, channel) plane, so no two threads write the same element. */
static void col2im(const geom *g, const bp_real *col, bp_real *dx, int s0, int nb, int grp)
{
    size_t BP = (size_t)nb * g->P;
#pragma omp parallel for collapse(2) schedule(static) if (BIG((size_t)g->Kg * nb * g->P))
    for (int b = 0; b < nb; b++)
        for (int cc = 0; cc < g->Cg; cc++) {
            bp_real *xp = dx + ((size_t)(s0 + b) * g->C + (size_t)grp * g->Cg + cc) * g->H * g->W;
            for (int i = 0; i < g->kh; i++)
                for (int j = 0; j < g->kw; j++) {
                    int r = (cc * g->kh + i) * g->kw + j;
                    const bp_real *src = col + (size_t)r * BP + (size_t)b * g->P;
                    int off = j * g->dw - g->pl, lo, hi;
                    valid_range(off, g->sw, g->W, g->OW, &lo, &hi);
                    for (int oh = 0; oh < g->OH; oh++) {
                        int ih = oh * g->sh - g->pt + i * g->dh;
                        if (ih < 0 || ih >= g->H)
                            continue;
                        bp_real *xr = xp + (size_t)ih * g->W + off;
                        const bp_real *s = src + (size_t)oh * g->OW;
                        for (int ow = lo; ow < hi; ow++)
                            xr[(size_t)ow * g->sw] += s[ow];
                    }
                }
        }
}

/* ---- depthwise: direct loops ------------------------------------------------ */

static void dw_forward(const geom *g, const bp_real *x, const bp_real *w, const bp_real *bias,
                       bp_real *y, int accumulate)
{
#pragma omp parallel for collapse(2) schedule(static) if (BIG((size_t)g->N * g->C * g->P * g->kh * g->kw))
    for (int s = 0; s < g->N; s++)
        for (int ch = 0; ch < g->C; ch++) {
            const bp_real *xp = x + ((size_t)s * g->C + ch) * g->H * g->W;
            const bp_real *wp = w + (size_t)ch * g->kh * g->kw;
            bp_real *yp = y + ((size_t)s * g->C + ch) * g->P;
            bp_real bv = bias ? bias[ch] : 0;
            for (int oh = 0; oh < g->OH; oh++)
                for (int ow = 0; ow < g->OW; ow++) {
                    bp_real acc = bv;
                    for (int i = 0; i < g->kh; i++) {
                        int ih = oh * g->sh - g->pt + i * g->dh;
                        if (ih < 0 || ih >= g->H)
                            continue;
                        for (int j = 0; j < g->kw; j++) {
                            int iw = ow * g->sw - g->pl + j * g->dw;
                            if (iw >= 0 && iw < g->W)
                                acc += wp[i * g->kw + j] * xp[(size_t)ih * g->W + iw];
                        }
                    }
                    if (accumulate)
                        yp[(size_t)oh * g->OW + ow] += acc;
                    else
                        yp[(size_t)oh * g->OW + ow] = acc;
                }
        }
}

static void dw_backward(const geom *g, const bp_real *xw, const bp_real *w, const bp_real *dy,
                        bp_real *dx, bp_real *dw)
{
    if (dx) {
#pragma omp parallel for collapse(2) schedule(static) if (BIG((size_t)g->N * g->C * g->P * g->kh * g->kw))
        for (int s = 0; s < g->N; s++)
            for (int ch = 0; ch < g->C; ch++) {
                bp_real *xp = dx + ((size_t)s * g->C + ch) * g->H * g->W;
                const bp_real *wp = w + (size_t)ch * g->kh * g->kw;
                const bp_real *dp = dy + ((size_t)s * g->C + ch) * g->P;
                for (int oh = 0; oh < g->OH; oh++)
                    for (int ow = 0; ow < g->OW; ow++) {
                        bp_real d = dp[(size_t)oh * g->OW + ow];
                        for (int i = 0; i < g->kh; i++) {
                            int ih = oh * g->sh - g->pt + i * g->dh;
                            if (ih < 0 || ih >= g->H)
                                continue;
                            for (int j = 0; j < g->kw; j++) {
                                int iw = ow * g->sw - g->pl + j * g->dw;
                                if (iw >= 0 && iw < g->W)
                                    xp[(size_t)ih * g->W + iw] += wp[i * g->kw + j] * d;
                            }
                        }
                    }
            }
    }
    if (dw) {
#pragma omp parallel for schedule(static) if (BIG((size_t)g->N * g->C * g->P * g->kh * g->kw))
        for (int ch = 0; ch < g->C; ch++) {
            bp_real *wp = dw + (size_t)ch * g->kh * g->kw;
            for (int i = 0; i < g->kh; i++)
                for (int j = 0; j < g->kw; j++) {
                    bp_real acc = 0;
                    for (int s = 0; s < g->N; s++) {
                        const bp_real *xp = xw + ((size_t)s * g->C + ch) * g->H * g->W;
                        const bp_real *dp = dy + ((size_t)s * g->C + ch) * g->P;
                        for (int oh = 0; oh < g->OH; oh++) {
                            int ih = oh * g->sh - g->pt + i * g->dh;
                            if (ih < 0 || ih >= g->H)
                                continue;
                            for (int ow = 0; ow < g->OW; ow++) {
                                int iw = ow * g->sw - g->pl + j * g->dw;
                                if (iw >= 0 && iw < g->W)
                                    acc += dp[(size_t)oh * g->OW + ow] * xp[(size_t)ih * g->W + iw];
                            }
                        }
                    }
                    wp[i * g->kw + j] += acc;
                }
        }
    }
}

/* ---- general path ------------------------------------------------------------- */

/* y (=, or += when accumulate) conv(x, w) + bias. bias may be NULL. */
static void conv_fwd(const geom *g, const bp_real *x, const bp_real *w, const bp_real *bias,
                     bp_real *y, int accumulate, bp_real *scratch)
{
    if (g->depthwise) {
        dw_forward(g, x, w, bias, y, accumulate);
        return;
    }
    bp_real *col = scratch, *yb = scratch + (size_t)g->Kg * g->B * g->P;
    for (int s0 = 0; s0 < g->N; s0 += g->B) {
        int nb = g->N - s0 < g->B ? g->N - s0 : g->B;
        int BP = nb * g->P;
        for (int grp = 0; grp < g->G; grp++) {
            im2col(g, x, s0, nb, grp, col);
            bp_gemm(0, 0, g->Mg, BP, g->Kg, 1, w + (size_t)grp * g->Mg * g->Kg, g->Kg, col, BP, 0,
                    yb, BP);
#pragma omp parallel for collapse(2) schedule(static) if (BIG((size_t)nb * g->Mg * g->P))
            for (int b = 0; b < nb; b++)
                for (int m = 0; m < g->Mg; m++) {
                    int oc = grp * g->Mg + m;
                    bp_real *dst = y + ((size_t)(s0 + b) * g->M + oc) * g->P;
                    const bp_real *src = yb + (size_t)m * BP + (size_t)b * g->P;
                    bp_real bv = bias ? bias[oc] : 0;
                    if (accumulate)
                        for (int p = 0; p < g->P; p++)
                            dst[p] += src[p] + bv;
                    else
                        for (int p = 0; p < g->P; p++)
                            dst[p] = src[p] + bv;
                }
        }
    }
}

/* dx += conv^T(dy, w) and dw += corr(xw, dy); either output may be NULL. */
static void conv_bwd(const geom *g, const bp_real *xw, const bp_real *w, const bp_real *dy,
                     bp_real *dx, bp_real *dw, bp_real *scratch)
{
    if (!dx && !dw)
        return;
    if (g->depthwise) {
        dw_backward(g, xw, w, dy, dx, dw);
        return;
    }
    bp_real *col = scratch, *yb = scratch + (size_t)g->Kg * g->B * g->P;
    for (int s0 = 0; s0 < g->N; s0 += g->B) {
        int nb = g->N - s0 < g->B ? g->N - s0 : g->B;
        int BP = nb * g->P;
        for (int grp = 0; grp < g->G; grp++) {
#pragma omp parallel for collapse(2) schedule(static) if (BIG((size_t)nb * g->Mg * g->P))
            for (int b = 0; b < nb; b++)
                for (int m = 0; m < g->Mg; m++)
                    memcpy(yb + (size_t)m * BP + (size_t)b * g->P,
                           dy + ((size_t)(s0 + b) * g->M + (size_t)grp * g->Mg + m) * g->P,
                           sizeof *yb * g->P);
            if (dw) {
                im2col(g, xw, s0, nb, grp, col);
                bp_gemm(0, 1, g->Mg, g->Kg, BP, 1, yb, BP, col, BP, 1,
                        dw + (size_t)grp * g->Mg * g->Kg, g->Kg);
            }
            if (dx) {
                bp_gemm(1, 0, g->Kg, BP, g->Mg, 1, w + (size_t)grp * g->Mg * g->Kg, g->Kg, yb, BP,
                        0, col, BP);
                col2im(g, col, dx, s0, nb, grp);
            }
        }
    }
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
    conv_bwd(&g, c->x[0], c->x[1], c->dy, c->dx[0], c->dx[1], c->scratch);
    if (c->nin > 2 && c->dx[2])
        bias_bwd(&g, c->dy, c->dx[2]);
    return BP_OK;
}

bp_status bp_conv_rop_forward(bp_opctx *c)
{
    geom g;
    geom_of(c, &g);
    const bp_real *vb = c->nin > 2 ? c->rx[2] : NULL;
    int acc = 0;
    if (c->rx[0]) {
        conv_fwd(&g, c->rx[0], c->x[1], vb, c->ry, 0, c->scratch);
        acc = 1;
        vb = NULL;
    }
    if (c->rx[1]) {
        conv_fwd(&g, c->x[0], c->rx[1], vb, c->ry, acc, c->scratch);
        acc = 1;
        vb = NULL;
    }
    if (!acc) { /* only the bias moves */
        size_t plane = (size_t)g.P;
#pragma omp parallel for collapse(2) schedule(static) if (BIG((size_t)g.N * g.M * g.P))
        for (int s = 0; s < g.N; s++)
            for (int m = 0; m < g.M; m++) {
                bp_real *d = c->ry + ((size_t)s * g.M + m) * plane;
                bp_real v = vb ? vb[m] : 0;
                for (size_t q = 0; q < plane; q++)
                    d[q] = v;
            }
    }
    return BP_OK;
}

bp_status bp_conv_rop_backward(bp_opctx *c)
{
    geom g;
    geom_of(c, &g);
    if (c->rdy) {
        conv_bwd(&g, c->x[0], c->x[1], c->rdy, c->rdx[0], c->rdx[1], c->scratch);
        if (c->nin > 2 && c->rdx[2])
            bias_bwd(&g, c->rdy, c->rdx[2]);
    }
    conv_bwd(&g, c->rx[0], c->rx[1], c->dy, c->rx[1] ? c->rdx[0] : NULL,
             c->rx[0] ? c->rdx[1] : NULL, c->scratch);
    return BP_OK;
}
