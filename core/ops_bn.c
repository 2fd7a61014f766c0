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

/* Plane kernels: restrict pointers and scalar arguments, so they vectorize.
 * Sums run in bp_real within a plane (at most a few thousand terms) and in
 * double across planes. */
static bp_real plane_sum(size_t n, const bp_real *restrict p)
{
    bp_real s = 0;
#pragma omp simd reduction(+ : s)
    for (size_t q = 0; q < n; q++)
        s += p[q];
    return s;
}

static bp_real plane_sqdev(size_t n, const bp_real *restrict p, bp_real m)
{
    bp_real s = 0;
#pragma omp simd reduction(+ : s)
    for (size_t q = 0; q < n; q++)
        s += (p[q] - m) * (p[q] - m);
    return s;
}

/* sum dy and sum dy * (x - m) */
static void plane_dots(size_t n, const bp_real *restrict dy, const bp_real *restrict x, bp_real m,
                       double *sdy, double *sdyx)
{
    bp_real a = 0, b = 0;
#pragma omp simd reduction(+ : a, b)
    for (size_t q = 0; q < n; q++) {
        a += dy[q];
        b += dy[q] * (x[q] - m);
    }
    *sdy += a;
    *sdyx += b;
}

static void plane_affine(size_t n, const bp_real *restrict x, bp_real *restrict y, bp_real a,
                         bp_real b)
{
#pragma omp simd
    for (size_t q = 0; q < n; q++)
        y[q] = a * x[q] + b;
}

/* dx (+)= a * (dy - m1 - (x - m) * iv * m2); set: write instead of add */
static void plane_bwd_train(size_t n, const bp_real *restrict dy, const bp_real *restrict x,
                            bp_real *restrict dx, bp_real a, bp_real m1, bp_real m, bp_real ivm2,
                            int set)
{
    if (set) {
#pragma omp simd
        for (size_t q = 0; q < n; q++)
            dx[q] = a * (dy[q] - m1 - (x[q] - m) * ivm2);
    } else {
#pragma omp simd
        for (size_t q = 0; q < n; q++)
            dx[q] += a * (dy[q] - m1 - (x[q] - m) * ivm2);
    }
}

static void plane_axpy(size_t n, const bp_real *restrict dy, bp_real *restrict dx, bp_real a)
{
#pragma omp simd
    for (size_t q = 0; q < n; q++)
        dx[q] += a * dy[q];
}

static void plane_scale(size_t n, const bp_real *restrict dy, bp_real *restrict dx, bp_real a)
{
#pragma omp simd
    for (size_t q = 0; q < n; q++)
        dx[q] = a * dy[q];
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
            for (int n = 0; n < d.N; n++)
                s += plane_sum(d.P, x + ((size_t)n * d.C + ch) * d.P);
            double m = s / M;
            /* two passes: the variance about the mean, not E[x^2] - m^2 */
            for (int n = 0; n < d.N; n++)
                s2 += plane_sqdev(d.P, x + ((size_t)n * d.C + ch) * d.P, (bp_real)m);
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
            plane_affine(d.P, x + o, c->y + o, a, b);
        }
    return BP_OK;
}

bp_status bp_bn_backward(bp_opctx *c)
{
    if (!c->dx[0] && !c->dx[1] && !c->dx[2])
        return BP_OK; /* an R-pass reusing the ordinary gradients */
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
            plane_dots(d.P, dy + o, x + o, mu[ch], &sdy, &sdyx);
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
                plane_bwd_train(d.P, dy + o, x + o, dx, a, m1, mu[ch], inv[ch] * m2,
                                c->dx_set[0]);
            } else if (c->dx_set[0]) {
                plane_scale(d.P, dy + o, dx, a);
            } else {
                plane_axpy(d.P, dy + o, dx, a);
            }
        }
    }
    return BP_OK;
}

/* ry = a * rx + s * (x - m) + b (rx may be NULL) */
static void plane_rop(size_t n, const bp_real *restrict rx, const bp_real *restrict x,
                      bp_real *restrict ry, bp_real a, bp_real s, bp_real m, bp_real b)
{
    if (rx) {
#pragma omp simd
        for (size_t q = 0; q < n; q++)
            ry[q] = a * rx[q] + s * (x[q] - m) + b;
    } else {
#pragma omp simd
        for (size_t q = 0; q < n; q++)
            ry[q] = s * (x[q] - m) + b;
    }
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
            plane_rop(d.P, rx ? rx + o : NULL, x + o, c->ry + o, a, s, mu[ch], b);
        }
    return BP_OK;
}

/* sum dy * rx */
static bp_real plane_dot(size_t n, const bp_real *restrict a, const bp_real *restrict b)
{
    bp_real s = 0;
#pragma omp simd reduction(+ : s)
    for (size_t q = 0; q < n; q++)
        s += a[q] * b[q];
    return s;
}

/*   R{dx}     = a R{dy} + v_s inv dy
 *   R{dscale} = sum R{dy} (x - m) inv + sum dy R{x} inv
 *   R{dshift} = sum R{dy} */
bp_status bp_bn_rop_backward(bp_opctx *c)
{
    bdims d;
    bdims_of(c, &d);
    const bp_real *x = c->x[0], *sc = c->x[1], *dy = c->dy, *rdy = c->rdy;
    const bp_real *rx = c->rx[0], *vs = c->rx[1];
    const bp_real *mu = st_mean(c), *inv = st_inv(c);
#pragma omp parallel for schedule(static) if (BIG((size_t)d.N * d.P * d.C))
    for (int ch = 0; ch < d.C; ch++) {
        double rb = 0, rxm = 0, dyrx = 0;
        bp_real a = sc[ch] * inv[ch], s = vs ? vs[ch] * inv[ch] : 0;
        for (int n = 0; n < d.N; n++) {
            size_t o = ((size_t)n * d.C + ch) * d.P;
            if (rdy)
                plane_dots(d.P, rdy + o, x + o, mu[ch], &rb, &rxm);
            if (rx)
                dyrx += plane_dot(d.P, dy + o, rx + o);
            if (c->rdx[0]) {
                if (c->rdx_set[0] && rdy) /* first writer: write */
                    plane_scale(d.P, rdy + o, c->rdx[0] + o, a);
                else if (c->rdx_set[0])
                    memset(c->rdx[0] + o, 0, d.P * sizeof(bp_real));
                else if (rdy)
                    plane_axpy(d.P, rdy + o, c->rdx[0] + o, a);
                if (s != 0)
                    plane_axpy(d.P, dy + o, c->rdx[0] + o, s);
            }
        }
        if (c->rdx[1])
            c->rdx[1][ch] += (bp_real)((rxm + dyrx) * inv[ch]);
        if (c->rdx[2])
            c->rdx[2][ch] += (bp_real)rb;
    }
    return BP_OK;
}
