/* Gemm (Y = alpha*op(A)*op(B) + beta*C, C broadcast) and MatMul (numpy
 * semantics, leading dims broadcast): forward, backward, R-op.
 *
 * Both are bilinear in their two operands, so every derivative is built from
 * two helpers: a forward product and a backward that produces dA (from dY and
 * a B) and dB (from an A and dY). The R-op then reads
 *   R{Y}  = f(R{A}, B) + f(A, R{B}) + beta*R{C}
 *   R{dA} = fA^T(R{dY}, B) + fA^T(dY, R{B})
 *   R{dB} = fB^T(A, R{dY}) + fB^T(R{A}, dY)
 */
#include <string.h>

#include "core/blas.h"
#include "core/ops.h"

/* ---- Gemm ------------------------------------------------------------------------ */

typedef struct {
    int m, n, k, ta, tb, lda, ldb;
    bp_real alpha, beta;
} gdims;

static void gdims_of(const bp_opctx *c, gdims *d)
{
    const bp_attrs *a = &c->node->a;
    d->ta = a->trans_a;
    d->tb = a->trans_b;
    d->m = (int)(d->ta ? c->xd[0][1] : c->xd[0][0]);
    d->k = (int)(d->ta ? c->xd[0][0] : c->xd[0][1]);
    d->n = (int)(d->tb ? c->xd[1][0] : c->xd[1][1]);
    d->lda = (int)c->xd[0][1];
    d->ldb = (int)c->xd[1][1];
    d->alpha = a->alpha;
    d->beta = a->beta;
}

static void gemm_fwd(const gdims *d, const bp_real *A, const bp_real *B, bp_real *Y, int acc)
{
    bp_gemm(d->ta, d->tb, d->m, d->n, d->k, d->alpha, A, d->lda, B, d->ldb, acc ? 1 : 0, Y, d->n);
}

/* dA += d(alpha op(A) op(B))/dA given dY and B; dB likewise given A. */
static void gemm_bwd(const gdims *d, const bp_real *A, const bp_real *B, const bp_real *dY,
                     bp_real *dA, bp_real *dB)
{
    if (dA) {
        if (!d->ta) /* dA (m x k) = alpha dY op(B)^T */
            bp_gemm(0, !d->tb, d->m, d->k, d->n, d->alpha, dY, d->n, B, d->ldb, 1, dA, d->k);
        else /* dA (k x m) = alpha op(B) dY^T */
            bp_gemm(d->tb, 1, d->k, d->m, d->n, d->alpha, B, d->ldb, dY, d->n, 1, dA, d->m);
    }
    if (dB) {
        if (!d->tb) /* dB (k x n) = alpha op(A)^T dY */
            bp_gemm(!d->ta, 0, d->k, d->n, d->m, d->alpha, A, d->lda, dY, d->n, 1, dB, d->n);
        else /* dB (n x k) = alpha dY^T op(A) */
            bp_gemm(1, d->ta, d->n, d->k, d->m, d->alpha, dY, d->n, A, d->lda, 1, dB, d->k);
    }
}

/* Y += beta * C with C broadcast to (m, n); or, reverse, dC += beta * sum dY. */
static void c_strides(const bp_opctx *c, const gdims *d, int64_t *st)
{
    int64_t od[2] = {d->m, d->n};
    bp_bcast_strides(c->xd[2], c->xnd[2], od, 2, st);
}

static void add_c(const bp_opctx *c, const gdims *d, const bp_real *C, bp_real *Y)
{
    int64_t st[2];
    c_strides(c, d, st);
    for (int i = 0; i < d->m; i++)
        for (int j = 0; j < d->n; j++)
            Y[(size_t)i * d->n + j] += d->beta * C[i * st[0] + j * st[1]];
}

static void reduce_c(const bp_opctx *c, const gdims *d, const bp_real *dY, bp_real *dC)
{
    int64_t st[2];
    c_strides(c, d, st);
    for (int i = 0; i < d->m; i++)
        for (int j = 0; j < d->n; j++)
            dC[i * st[0] + j * st[1]] += d->beta * dY[(size_t)i * d->n + j];
}

bp_status bp_gemm_forward(bp_opctx *c)
{
    gdims d;
    gdims_of(c, &d);
    gemm_fwd(&d, c->x[0], c->x[1], c->y, 0);
    if (c->nin > 2)
        add_c(c, &d, c->x[2], c->y);
    return BP_OK;
}

bp_status bp_gemm_backward(bp_opctx *c)
{
    gdims d;
    gdims_of(c, &d);
    gemm_bwd(&d, c->x[0], c->x[1], c->dy, c->dx[0], c->dx[1]);
    if (c->nin > 2 && c->dx[2])
        reduce_c(c, &d, c->dy, c->dx[2]);
    return BP_OK;
}

bp_status bp_gemm_rop_forward(bp_opctx *c)
{
    gdims d;
    gdims_of(c, &d);
    int acc = 0;
    if (c->rx[0]) {
        gemm_fwd(&d, c->rx[0], c->x[1], c->ry, 0);
        acc = 1;
    }
    if (c->rx[1]) {
        gemm_fwd(&d, c->x[0], c->rx[1], c->ry, acc);
        acc = 1;
    }
    if (!acc)
        memset(c->ry, 0, sizeof *c->ry * (size_t)d.m * d.n);
    if (c->nin > 2 && c->rx[2])
        add_c(c, &d, c->rx[2], c->ry);
    return BP_OK;
}

bp_status bp_gemm_rop_backward(bp_opctx *c)
{
    gdims d;
    gdims_of(c, &d);
    if (c->rdy) {
        gemm_bwd(&d, c->x[0], c->x[1], c->rdy, c->rdx[0], c->rdx[1]);
        if (c->nin > 2 && c->rdx[2])
            reduce_c(c, &d, c->rdy, c->rdx[2]);
    }
    gemm_bwd(&d, c->rx[0], c->rx[1], c->dy, c->rx[1] ? c->rdx[0] : NULL,
             c->rx[0] ? c->rdx[1] : NULL);
    return BP_OK;
}

/* ---- MatMul ------------------------------------------------------------------------ */

typedef struct {
    int m, n, k;
    int nb;                   /* number of leading (batch) dims of Y */
    int64_t bd[BP_MAX_DIMS];  /* Y's leading dims */
    int64_t sa[BP_MAX_DIMS], sb[BP_MAX_DIMS]; /* A/B leading strides in matrices, 0 = broadcast */
    size_t batches;
    int flat;                 /* B has no leading extent: A's rows are one matrix */
} mdims;

static void mdims_of(const bp_opctx *c, mdims *d)
{
    int na = c->xnd[0], nbb = c->xnd[1], ny = c->ynd;
    d->m = (int)c->xd[0][na - 2];
    d->k = (int)c->xd[0][na - 1];
    d->n = (int)c->xd[1][nbb - 1];
    d->nb = ny - 2;
    memcpy(d->bd, c->yd, sizeof(int64_t) * d->nb);
    bp_bcast_strides(c->xd[0], na - 2, d->bd, d->nb, d->sa);
    bp_bcast_strides(c->xd[1], nbb - 2, d->bd, d->nb, d->sb);
    d->batches = bp_numel(d->bd, d->nb);
    d->flat = bp_numel(c->xd[1], nbb - 2) == 1;
}

/* Matrix offsets (in units of one matrix) of A and B for batch index t. */
static void moffsets(const mdims *d, size_t t, size_t *oa, size_t *ob)
{
    size_t a = 0, b = 0;
    for (int i = d->nb - 1; i >= 0; i--) {
        size_t idx = t % (size_t)d->bd[i];
        t /= (size_t)d->bd[i];
        a += idx * (size_t)d->sa[i];
        b += idx * (size_t)d->sb[i];
    }
    *oa = a;
    *ob = b;
}

static void mm_fwd(const mdims *d, const bp_real *A, const bp_real *B, bp_real *Y, int acc)
{
    if (d->flat) {
        bp_gemm(0, 0, (int)(d->batches * d->m), d->n, d->k, 1, A, d->k, B, d->n, acc ? 1 : 0, Y,
                d->n);
        return;
    }
    for (size_t t = 0; t < d->batches; t++) {
        size_t oa, ob;
        moffsets(d, t, &oa, &ob);
        bp_gemm(0, 0, d->m, d->n, d->k, 1, A + oa * d->m * d->k, d->k, B + ob * d->k * d->n, d->n,
                acc ? 1 : 0, Y + t * d->m * d->n, d->n);
    }
}

static void mm_bwd(const mdims *d, const bp_real *A, const bp_real *B, const bp_real *dY,
                   bp_real *dA, bp_real *dB)
{
    if (d->flat) {
        int rows = (int)(d->batches * d->m);
        if (dA)
            bp_gemm(0, 1, rows, d->k, d->n, 1, dY, d->n, B, d->n, 1, dA, d->k);
        if (dB)
            bp_gemm(1, 0, d->k, d->n, rows, 1, A, d->k, dY, d->n, 1, dB, d->n);
        return;
    }
    /* serial over batches: broadcast operands accumulate into shared slots */
    for (size_t t = 0; t < d->batches; t++) {
        size_t oa, ob;
        moffsets(d, t, &oa, &ob);
        const bp_real *dy = dY + t * d->m * d->n;
        if (dA)
            bp_gemm(0, 1, d->m, d->k, d->n, 1, dy, d->n, B + ob * d->k * d->n, d->n, 1,
                    dA + oa * d->m * d->k, d->k);
        if (dB)
            bp_gemm(1, 0, d->k, d->n, d->m, 1, A + oa * d->m * d->k, d->k, dy, d->n, 1,
                    dB + ob * d->k * d->n, d->n);
    }
}

bp_status bp_matmul_forward(bp_opctx *c)
{
    mdims d;
    mdims_of(c, &d);
    mm_fwd(&d, c->x[0], c->x[1], c->y, 0);
    return BP_OK;
}

bp_status bp_matmul_backward(bp_opctx *c)
{
    mdims d;
    mdims_of(c, &d);
    mm_bwd(&d, c->x[0], c->x[1], c->dy, c->dx[0], c->dx[1]);
    return BP_OK;
}

bp_status bp_matmul_rop_forward(bp_opctx *c)
{
    mdims d;
    mdims_of(c, &d);
    int acc = 0;
    if (c->rx[0]) {
        mm_fwd(&d, c->rx[0], c->x[1], c->ry, 0);
        acc = 1;
    }
    if (c->rx[1]) {
        mm_fwd(&d, c->x[0], c->rx[1], c->ry, acc);
        acc = 1;
    }
    if (!acc)
        memset(c->ry, 0, sizeof *c->ry * d.batches * d.m * d.n);
    return BP_OK;
}

bp_status bp_matmul_rop_backward(bp_opctx *c)
{
    mdims d;
    mdims_of(c, &d);
    if (c->rdy)
        mm_bwd(&d, c->x[0], c->x[1], c->rdy, c->rdx[0], c->rdx[1]);
    mm_bwd(&d, c->rx[0], c->rx[1], c->dy, c->rx[1] ? c->rdx[0] : NULL,
           c->rx[0] ? c->rdx[1] : NULL);
    return BP_OK;
}
