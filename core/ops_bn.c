/* BatchNormalization: inference form (running statistics) and training form
 * (batch statistics, running statistics updated), forward, backward, R-op.
 *
 * Inputs: x (N, C, ...), scale, shift, mean, var (C). Running mean and var
 * never receive gradients or Hv (they are statistics, not trained).
 * Training form, as ONNX and PyTorch define it:
 *   y = scale * (x - mu_B) / sqrt(var_B + eps) + shift   (var_B biased)
 *   running_mean = momentum * running_mean + (1 - momentum) * mu_B
 *   running_var  = momentum * running_var  + (1 - momentum) * var_B * M/(M-1)
 * with M = N * spatial (the unbiased variance, like PyTorch). Note PyTorch's
 * own `momentum` is 1 - ONNX's; the attribute here is ONNX's (default 0.9).
 * The R-op exists for the inference form only, where BN is affine in x and
 * bilinear in (x, scale): v on scale and shift is supported, v on running
 * statistics is ignored.
 */
#include <math.h>
#include <string.h>

#include "core/ops.h"

typedef struct {
    int N, C;
    size_t P;
} bdims;

static void bdims_of(const bp_opctx *c, bdims *d)
{
    d->N = (int)c->xd[0][0];
    d->C = (int)c->xd[0][1];
    d->P = 1;
    for (int i = 2; i < c->xnd[0]; i++)
        d->P *= (size_t)c->xd[0][i];
}

/* State: per channel the mean and 1/sqrt(var + eps) the last forward used. */
size_t bp_bn_state(const bp_opctx *c)
{
    return 2 * sizeof(bp_real) * (size_t)c->xd[0][1];
}

static bp_real *st_mean(const bp_opctx *c) { return c->state; }
static bp_real *st_inv(const bp_opctx *c) { return (bp_real *)c->state + c->xd[0][1]; }

bp_status bp_bn_forward(bp_opctx *c)
{
    bdims d;
    bdims_of(c, &d);
    const bp_real *x = c->x[0], *sc = c->x[1], *sh = c->x[2];
    bp_real *mu = st_mean(c), *inv = st_inv(c);
    double eps = c->node->a.eps, mom = c->node->a.momentum;
    size_t M = (size_t)d.N * d.P;
    if (c->mode == BP_MODE_TRAIN) {
        if (M < 2)
            return bp_error(BP_ERR_SHAPE, "BatchNormalization '%s': training form needs more than one value per channel",
                            c->node->name);
#pragma omp parallel for schedule(static) if (BIG((size_t)d.N * d.P * d.C))
        for (int ch = 0; ch < d.C; ch++) {
            double s = 0, s2 = 0;
            for (int n = 0; n < d.N; n++) {
                const bp_real *p = x + ((size_t)n * d.C + ch) * d.P;
                for (size_t q = 0; q < d.P; q++)
                    s += p[q];
            }
            double m = s / M;
            for (int n = 0; n < d.N; n++) {
                const bp_real *p = x + ((size_t)n * d.C + ch) * d.P;
                for (size_t q = 0; q < d.P; q++)
                    s2 += (p[q] - m) * (p[q] - m);
            }
            double var = s2 / M;
            mu[ch] = (bp_real)m;
            inv[ch] = (bp_real)(1.0 / sqrt(var + eps));
            if (c->pmut[3])
                c->pmut[3][ch] = (bp_real)(mom * c->pmut[3][ch] + (1 - mom) * m);
            if (c->pmut[4])
                c->pmut[4][ch] = (bp_real)(mom * c->pmut[4][ch] + (1 - mom) * var * M / (M - 1));
        }
    } else {
        const bp_real *rm = c->x[3], *rv = c->x[4];
        for (int ch = 0; ch < d.C; ch++) {
            mu[ch] = rm[ch];
            inv[ch] = (bp_real)(1.0 / sqrt((double)rv[ch] + eps));
        }
    }
#pragma omp parallel for collapse(2) schedule(static) if (BIG((size_t)d.N * d.P * d.C))
    for (int n = 0; n < d.N; n++)
        for (int ch = 0; ch < d.C; ch++) {
            size_t o = ((size_t)n * d.C + ch) * d.P;
            bp_real a = sc[ch] * inv[ch], b = sh[ch] - mu[ch] * a;
#pragma omp simd
            for (size_t q = 0; q < d.P; q++)
                c->y[o + q] = a * x[o + q] + b;
        }
    return BP_OK;
}

bp_status bp_bn_backward(bp_opctx *c)
{
    bdims d;
    bdims_of(c, &d);
    const bp_real *x = c->x[0], *sc = c->x[1], *dy = c->dy;
    const bp_real *mu = st_mean(c), *inv = st_inv(c);
    double M = (double)d.N * d.P;
    int train = c->mode == BP_MODE_TRAIN;
#pragma omp parallel for schedule(static) if (BIG((size_t)d.N * d.P * d.C))
    for (int ch = 0; ch < d.C; ch++) {
        double sdy = 0, sdyx = 0; /* sum dy, sum dy * xhat */
        for (int n = 0; n < d.N; n++) {
            size_t o = ((size_t)n * d.C + ch) * d.P;
            bp_real m = mu[ch];
#pragma omp simd reduction(+ : sdy, sdyx)
            for (size_t q = 0; q < d.P; q++) {
                sdy += dy[o + q];
                sdyx += dy[o + q] * (x[o + q] - m);
            }
        }
        sdyx *= inv[ch];
        if (c->dx[1])
            c->dx[1][ch] += (bp_real)sdyx;
        if (c->dx[2])
            c->dx[2][ch] += (bp_real)sdy;
        if (!c->dx[0])
            continue;
        bp_real a = sc[ch] * inv[ch];
        for (int n = 0; n < d.N; n++) {
            size_t o = ((size_t)n * d.C + ch) * d.P;
            bp_real *dx = c->dx[0] + o;
            if (train) {
                /* d/dx through mu_B and var_B as well */
                bp_real m1 = (bp_real)(sdy / M), m2 = (bp_real)(sdyx / M);
                bp_real m = mu[ch], iv = inv[ch];
#pragma omp simd
                for (size_t q = 0; q < d.P; q++) {
                    bp_real xh = (x[o + q] - m) * iv;
                    dx[q] += a * (dy[o + q] - m1 - xh * m2);
                }
            } else {
#pragma omp simd
                for (size_t q = 0; q < d.P; q++)
                    dx[q] += a * dy[o + q];
            }
        }
    }
    return BP_OK;
}

bp_status bp_bn_rop_forward(bp_opctx *c)
{
    bdims d;
    bdims_of(c, &d);
    const bp_real *x = c->x[0], *sc = c->x[1], *rx = c->rx[0], *vs = c->rx[1], *vb = c->rx[2];
    const bp_real *mu = st_mean(c), *inv = st_inv(c);
#pragma omp parallel for collapse(2) schedule(static) if (BIG((size_t)d.N * d.P * d.C))
    for (int n = 0; n < d.N; n++)
        for (int ch = 0; ch < d.C; ch++) {
            size_t o = ((size_t)n * d.C + ch) * d.P;
            bp_real a = sc[ch] * inv[ch];
            bp_real s = vs ? vs[ch] * inv[ch] : 0, b = vb ? vb[ch] : 0;
            for (size_t q = 0; q < d.P; q++)
                c->ry[o + q] = (rx ? a * rx[o + q] : 0) + s * (x[o + q] - mu[ch]) + b;
        }
    return BP_OK;
}

bp_status bp_bn_rop_backward(bp_opctx *c)
{
    bdims d;
    bdims_of(c, &d);
    const bp_real *x = c->x[0], *sc = c->x[1], *dy = c->dy, *rdy = c->rdy;
    const bp_real *rx = c->rx[0], *vs = c->rx[1];
    const bp_real *mu = st_mean(c), *inv = st_inv(c);
#pragma omp parallel for schedule(static) if (BIG((size_t)d.N * d.P * d.C))
    for (int ch = 0; ch < d.C; ch++) {
        double rs = 0, rb = 0;
        bp_real a = sc[ch] * inv[ch], s = vs ? vs[ch] * inv[ch] : 0;
        for (int n = 0; n < d.N; n++) {
            size_t o = ((size_t)n * d.C + ch) * d.P;
            for (size_t q = 0; q < d.P; q++) {
                bp_real r = rdy ? rdy[o + q] : 0;
                rs += r * (x[o + q] - mu[ch]) * inv[ch] + (rx ? dy[o + q] * rx[o + q] * inv[ch] : 0);
                rb += r;
            }
            if (c->rdx[0])
                for (size_t q = 0; q < d.P; q++)
                    c->rdx[0][o + q] += (rdy ? a * rdy[o + q] : 0) + s * dy[o + q];
        }
        if (c->rdx[1])
            c->rdx[1][ch] += (bp_real)rs;
        if (c->rdx[2])
            c->rdx[2][ch] += (bp_real)rb;
    }
    return BP_OK;
}
