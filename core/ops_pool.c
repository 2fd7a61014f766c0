/* MaxPool, AveragePool, GlobalAveragePool: forward, backward, R-op.
 *
 * MaxPool keeps the argmax of every output (state, int32 index in its input
 * plane): backward routes dy there, R-forward reads R{x} there. Ties go to the
 * first maximum in scan order, as in PyTorch. Padding never wins.
 * AveragePool follows PyTorch's divisor: with count_include_pad the window is
 * counted up to the end padding (a ceil_mode window that runs past it counts
 * only up to it); without, only elements inside the input count.
 * All three are linear (MaxPool piecewise), so R-forward is the pool applied
 * to R{x} and R-backward is backward applied to R{dy}.
 */
#include <math.h>
#include <string.h>

#include "core/ops.h"

typedef struct {
    int N, C, H, W, OH, OW, kh, kw, sh, sw, pt, pl, pb, pr, dh, dw, cip;
} pgeom;

static void pgeom_of(const bp_opctx *c, pgeom *g)
{
    const bp_attrs *a = &c->node->a;
    g->N = (int)c->xd[0][0];
    g->C = (int)c->xd[0][1];
    g->H = (int)c->xd[0][2];
    g->W = c->xnd[0] > 3 ? (int)c->xd[0][3] : 1;
    g->OH = (int)c->yd[2];
    g->OW = c->ynd > 3 ? (int)c->yd[3] : 1;
    g->kh = a->kernel[0];
    g->kw = a->kernel[1];
    g->sh = a->stride[0];
    g->sw = a->stride[1];
    g->pt = a->pads[0];
    g->pl = a->pads[1];
    g->pb = a->pads[2];
    g->pr = a->pads[3];
    g->dh = a->dilation[0] > 0 ? a->dilation[0] : 1;
    g->dw = a->dilation[1] > 0 ? a->dilation[1] : 1;
    g->cip = a->count_include_pad;
}

size_t bp_pool_state(const bp_opctx *c)
{
    if (c->node->op != BP_OP_MAXPOOL)
        return 0;
    return sizeof(int32_t) * bp_numel(c->yd, c->ynd);
}

/* Spatial size of a (non-global) input plane, for GAP too. */
static size_t plane_of(const int64_t *d, int nd)
{
    size_t p = 1;
    for (int i = 2; i < nd; i++)
        p *= (size_t)d[i];
    return p;
}

static void maxpool_fwd(const pgeom *g, const bp_real *x, bp_real *y, int32_t *arg)
{
#pragma omp parallel for schedule(static) if (BIG((size_t)g->N * g->C * g->OH * g->OW * g->kh * g->kw))
    for (int pc = 0; pc < g->N * g->C; pc++) {
        const bp_real *xp = x + (size_t)pc * g->H * g->W;
        bp_real *yp = y + (size_t)pc * g->OH * g->OW;
        int32_t *ap = arg + (size_t)pc * g->OH * g->OW;
        for (int oh = 0; oh < g->OH; oh++)
            for (int ow = 0; ow < g->OW; ow++) {
                int best = -1;
                bp_real bv = 0;
                for (int i = 0; i < g->kh; i++) {
                    int ih = oh * g->sh - g->pt + i * g->dh;
                    if (ih < 0 || ih >= g->H)
                        continue;
                    for (int j = 0; j < g->kw; j++) {
                        int iw = ow * g->sw - g->pl + j * g->dw;
                        if (iw < 0 || iw >= g->W)
                            continue;
                        int at = ih * g->W + iw;
                        if (best < 0 || xp[at] > bv) {
                            best = at;
                            bv = xp[at];
                        }
                    }
                }
                yp[oh * g->OW + ow] = bv; /* a window wholly in padding gives 0 */
                ap[oh * g->OW + ow] = best;
            }
    }
}

/* Window of output (oh, ow): the divisor of AveragePool. */
static int avg_div(const pgeom *g, int oh, int ow)
{
    int ch = 0, cw = 0;
    for (int i = 0; i < g->kh; i++) {
        int ih = oh * g->sh - g->pt + i * g->dh;
        ch += g->cip ? ih < g->H + g->pb : (ih >= 0 && ih < g->H);
    }
    for (int j = 0; j < g->kw; j++) {
        int iw = ow * g->sw - g->pl + j * g->dw;
        cw += g->cip ? iw < g->W + g->pr : (iw >= 0 && iw < g->W);
    }
    return ch * cw;
}

static void avgpool_fwd(const pgeom *g, const bp_real *x, bp_real *y)
{
#pragma omp parallel for schedule(static) if (BIG((size_t)g->N * g->C * g->OH * g->OW * g->kh * g->kw))
    for (int pc = 0; pc < g->N * g->C; pc++) {
        const bp_real *xp = x + (size_t)pc * g->H * g->W;
        bp_real *yp = y + (size_t)pc * g->OH * g->OW;
        for (int oh = 0; oh < g->OH; oh++)
            for (int ow = 0; ow < g->OW; ow++) {
                bp_real acc = 0;
                for (int i = 0; i < g->kh; i++) {
                    int ih = oh * g->sh - g->pt + i * g->dh;
                    if (ih < 0 || ih >= g->H)
                        continue;
                    for (int j = 0; j < g->kw; j++) {
                        int iw = ow * g->sw - g->pl + j * g->dw;
                        if (iw >= 0 && iw < g->W)
                            acc += xp[ih * g->W + iw];
                    }
                }
                int dv = avg_div(g, oh, ow);
                yp[oh * g->OW + ow] = dv ? acc / dv : 0;
            }
    }
}

static void avgpool_bwd(const pgeom *g, const bp_real *dy, bp_real *dx)
{
#pragma omp parallel for schedule(static) if (BIG((size_t)g->N * g->C * g->OH * g->OW * g->kh * g->kw))
    for (int pc = 0; pc < g->N * g->C; pc++) {
        bp_real *xp = dx + (size_t)pc * g->H * g->W;
        const bp_real *yp = dy + (size_t)pc * g->OH * g->OW;
        for (int oh = 0; oh < g->OH; oh++)
            for (int ow = 0; ow < g->OW; ow++) {
                int dv = avg_div(g, oh, ow);
                if (!dv)
                    continue;
                bp_real d = yp[oh * g->OW + ow] / dv;
                for (int i = 0; i < g->kh; i++) {
                    int ih = oh * g->sh - g->pt + i * g->dh;
                    if (ih < 0 || ih >= g->H)
                        continue;
                    for (int j = 0; j < g->kw; j++) {
                        int iw = ow * g->sw - g->pl + j * g->dw;
                        if (iw >= 0 && iw < g->W)
                            xp[ih * g->W + iw] += d;
                    }
                }
            }
    }
}

static void gap_fwd(const bp_opctx *c, const bp_real *x, bp_real *y)
{
    size_t planes = (size_t)c->xd[0][0] * c->xd[0][1], P = plane_of(c->xd[0], c->xnd[0]);
#pragma omp parallel for schedule(static) if (BIG(planes * P))
    for (size_t pc = 0; pc < planes; pc++) {
        bp_real acc = 0;
        for (size_t q = 0; q < P; q++)
            acc += x[pc * P + q];
        y[pc] = acc / (bp_real)P;
    }
}

static void gap_bwd(const bp_opctx *c, const bp_real *dy, bp_real *dx)
{
    size_t planes = (size_t)c->xd[0][0] * c->xd[0][1], P = plane_of(c->xd[0], c->xnd[0]);
#pragma omp parallel for schedule(static) if (BIG(planes * P))
    for (size_t pc = 0; pc < planes; pc++) {
        bp_real d = dy[pc] / (bp_real)P;
        for (size_t q = 0; q < P; q++)
            dx[pc * P + q] += d;
    }
}

/* dx += dy routed through the argmax (MaxPool), spread (AveragePool, GAP). */
static void pool_bwd(const bp_opctx *c, const bp_real *dy, bp_real *dx)
{
    if (c->node->op == BP_OP_GAP) {
        gap_bwd(c, dy, dx);
        return;
    }
    pgeom g;
    pgeom_of(c, &g);
    if (c->node->op == BP_OP_AVGPOOL) {
        avgpool_bwd(&g, dy, dx);
        return;
    }
    const int32_t *arg = c->state;
    size_t O = (size_t)g.OH * g.OW;
#pragma omp parallel for schedule(static) if (BIG((size_t)g.N * g.C * O))
    for (int pc = 0; pc < g.N * g.C; pc++) {
        bp_real *xp = dx + (size_t)pc * g.H * g.W;
        for (size_t q = 0; q < O; q++) {
            int32_t a = arg[(size_t)pc * O + q];
            if (a >= 0)
                xp[a] += dy[(size_t)pc * O + q];
        }
    }
}

bp_status bp_pool_forward(bp_opctx *c)
{
    if (c->node->op == BP_OP_GAP) {
        gap_fwd(c, c->x[0], c->y);
        return BP_OK;
    }
    pgeom g;
    pgeom_of(c, &g);
    if (c->node->op == BP_OP_MAXPOOL)
        maxpool_fwd(&g, c->x[0], c->y, c->state);
    else
        avgpool_fwd(&g, c->x[0], c->y);
    return BP_OK;
}

bp_status bp_pool_backward(bp_opctx *c)
{
    if (c->dx[0])
        pool_bwd(c, c->dy, c->dx[0]);
    return BP_OK;
}

bp_status bp_pool_rop_forward(bp_opctx *c)
{
    if (c->node->op == BP_OP_GAP) {
        gap_fwd(c, c->rx[0], c->ry);
        return BP_OK;
    }
    pgeom g;
    pgeom_of(c, &g);
    if (c->node->op == BP_OP_AVGPOOL) {
        avgpool_fwd(&g, c->rx[0], c->ry);
        return BP_OK;
    }
    const int32_t *arg = c->state;
    size_t O = (size_t)g.OH * g.OW;
    const bp_real *rx = c->rx[0];
#pragma omp parallel for schedule(static) if (BIG((size_t)g.N * g.C * O))
    for (int pc = 0; pc < g.N * g.C; pc++)
        for (size_t q = 0; q < O; q++) {
            int32_t a = arg[(size_t)pc * O + q];
            c->ry[(size_t)pc * O + q] = a >= 0 ? rx[(size_t)pc * g.H * g.W + a] : 0;
        }
    return BP_OK;
}

bp_status bp_pool_rop_backward(bp_opctx *c)
{
    if (c->rdy && c->rdx[0])
        pool_bwd(c, c->rdy, c->rdx[0]);
    return BP_OK;
}
