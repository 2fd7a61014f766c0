/* Add (numpy broadcasting), Relu and Clip: forward, backward, R-op.
 *
 * Kink convention (documented in docs/ENGINE.md): the derivative of Relu and
 * Clip is 1 strictly inside (min, max) and 0 at and beyond the bounds. That is
 * PyTorch's relu (threshold_backward on x > 0) and hardtanh/ReLU6 backward
 * (min < x < max); torch.clamp's backward would pass the gradient at x == min
 * or x == max, but ONNX Clip nodes almost always come from ReLU6.
 */
#include <math.h>
#include <string.h>

#include "core/ops.h"

void bp_bcast_strides(const int64_t *d, int nd, const int64_t *od, int ond, int64_t *st)
{
    int64_t s = 1;
    for (int i = ond - 1; i >= 0; i--) {
        int j = i - (ond - nd);
        if (j < 0) {
            st[i] = 0;
            continue;
        }
        st[i] = (d[j] == 1 && od[i] != 1) ? 0 : s;
        s *= d[j];
    }
}

/* Elementwise loops run over chunks in parallel; each chunk is a plain
 * function of restrict pointers and scalar arguments so that the compiler
 * vectorizes it (shared scalars captured by an OpenMP region are read through
 * pointers, which kept the loops scalar and branchy). */
#define CHUNK 8192

static void add_range(size_t n, const bp_real *restrict in, bp_real *restrict out)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++)
        out[i] += in[i];
}

/* out += in */
static void copy_add(size_t n, const bp_real *in, bp_real *out)
{
    size_t nch = (n + CHUNK - 1) / CHUNK;
#pragma omp parallel for schedule(static) if (BIG(n))
    for (size_t k = 0; k < nch; k++) {
        size_t a = k * CHUNK, len = n - a < CHUNK ? n - a : CHUNK;
        add_range(len, in + a, out + a);
    }
}

static void sum_range(size_t n, const bp_real *restrict a, const bp_real *restrict b,
                      bp_real *restrict y)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++)
        y[i] = a[i] + b[i];
}

/* ---- Add -------------------------------------------------------------------------- */

typedef struct {
    int nd;
    int64_t od[BP_MAX_DIMS], sa[BP_MAX_DIMS], sb[BP_MAX_DIMS];
    size_t total, na, nb;
} adims;

static void adims_of(const bp_opctx *c, adims *d)
{
    d->nd = c->ynd;
    memcpy(d->od, c->yd, sizeof(int64_t) * d->nd);
    bp_bcast_strides(c->xd[0], c->xnd[0], d->od, d->nd, d->sa);
    bp_bcast_strides(c->xd[1], c->xnd[1], d->od, d->nd, d->sb);
    d->total = bp_numel(d->od, d->nd);
    d->na = bp_numel(c->xd[0], c->xnd[0]);
    d->nb = bp_numel(c->xd[1], c->xnd[1]);
}

/* y = a + b (a or b NULL = zero) with broadcasting. Rows over all but the
 * last dim run in parallel; each row walks the last dim with its strides. */
static void add_fwd(const adims *d, const bp_real *a, const bp_real *b, bp_real *y)
{
    if (d->na == d->total && d->nb == d->total) {
        if (a && b) {
            size_t n = d->total, nch = (n + CHUNK - 1) / CHUNK;
#pragma omp parallel for schedule(static) if (BIG(n))
            for (size_t k = 0; k < nch; k++) {
                size_t o = k * CHUNK, len = n - o < CHUNK ? n - o : CHUNK;
                sum_range(len, a + o, b + o, y + o);
            }
        } else {
            const bp_real *s = a ? a : b;
            memcpy(y, s, d->total * sizeof *y);
        }
        return;
    }
    int last = d->nd - 1;
    size_t L = d->nd ? (size_t)d->od[last] : 1, rows = L ? d->total / L : 0;
    int64_t la = d->nd ? d->sa[last] : 0, lb = d->nd ? d->sb[last] : 0;
#pragma omp parallel for schedule(static) if (BIG(d->total))
    for (size_t r = 0; r < rows; r++) {
        size_t t = r, oa = 0, ob = 0;
        for (int i = last - 1; i >= 0; i--) {
            size_t idx = t % (size_t)d->od[i];
            t /= (size_t)d->od[i];
            oa += idx * d->sa[i];
            ob += idx * d->sb[i];
        }
        bp_real *yr = y + r * L;
        for (size_t j = 0; j < L; j++)
            yr[j] = (a ? a[oa + j * la] : 0) + (b ? b[ob + j * lb] : 0);
    }
}

/* dx += dy summed over the axes along which x was broadcast (st = x's strides). */
static void add_reduce(const adims *d, const int64_t *st, size_t nx, const bp_real *dy, bp_real *dx)
{
    if (nx == d->total) {
        copy_add(d->total, dy, dx);
        return;
    }
    size_t idx[BP_MAX_DIMS] = {0}, off = 0;
    for (size_t i = 0; i < d->total; i++) {
        dx[off] += dy[i];
        for (int k = d->nd - 1; k >= 0; k--) {
            off += st[k];
            if (++idx[k] < (size_t)d->od[k])
                break;
            off -= st[k] * d->od[k];
            idx[k] = 0;
        }
    }
}

bp_status bp_add_forward(bp_opctx *c)
{
    adims d;
    adims_of(c, &d);
    add_fwd(&d, c->x[0], c->x[1], c->y);
    return BP_OK;
}

bp_status bp_add_backward(bp_opctx *c)
{
    adims d;
    adims_of(c, &d);
    for (int j = 0; j < 2; j++) {
        if (!c->dx[j])
            continue;
        size_t nx = j ? d.nb : d.na;
        if (c->dx_set[j] && nx == d.total) {
            memcpy(c->dx[j], c->dy, d.total * sizeof *c->dy);
            continue;
        }
        if (c->dx_set[j])
            memset(c->dx[j], 0, nx * sizeof *c->dx[j]);
        add_reduce(&d, j ? d.sb : d.sa, nx, c->dy, c->dx[j]);
    }
    return BP_OK;
}

bp_status bp_add_rop_forward(bp_opctx *c)
{
    adims d;
    adims_of(c, &d);
    add_fwd(&d, c->rx[0], c->rx[1], c->ry);
    return BP_OK;
}

static bp_status rop_as_backward(bp_opctx *c, bp_status (*bwd)(bp_opctx *));

bp_status bp_add_rop_backward(bp_opctx *c)
{
    return rop_as_backward(c, bp_add_backward);
}

/* ---- Relu, Clip --------------------------------------------------------------------- */

static void bounds(const bp_opctx *c, bp_real *lo, bp_real *hi)
{
    if (c->node->op == BP_OP_RELU) {
        *lo = 0;
        *hi = (bp_real)INFINITY;
    } else {
        *lo = (bp_real)c->node->a.clip_min;
        *hi = (bp_real)c->node->a.clip_max;
    }
}

static void clamp_range(size_t n, const bp_real *restrict x, bp_real *restrict y, bp_real lo,
                        bp_real hi)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        bp_real v = x[i];
        v = v < lo ? lo : v;
        y[i] = v > hi ? hi : v;
    }
}

/* Branch-free (the mask is data-dependent and would mispredict half the
 * time): every load is unconditional so the selects become vector blends. */
static void masked_add_range(size_t n, const bp_real *restrict x, const bp_real *restrict in,
                             bp_real *restrict out, bp_real lo, bp_real hi)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        bp_real xv = x[i], v = in[i];
        v = xv > lo ? v : 0;
        v = xv < hi ? v : 0;
        out[i] += v;
    }
}

bp_status bp_act_forward(bp_opctx *c)
{
    bp_real lo, hi;
    bounds(c, &lo, &hi);
    size_t n = bp_numel(c->yd, c->ynd), nch = (n + CHUNK - 1) / CHUNK;
    const bp_real *x = c->x[0];
    bp_real *y = c->y;
#pragma omp parallel for schedule(static) if (BIG(n))
    for (size_t k = 0; k < nch; k++) {
        size_t a = k * CHUNK, len = n - a < CHUNK ? n - a : CHUNK;
        clamp_range(len, x + a, y + a, lo, hi);
    }
    return BP_OK;
}

/* out += in where lo < x < hi (the derivative of the clamp), else nothing. */
static void masked_add(const bp_opctx *c, const bp_real *in, bp_real *out)
{
    bp_real lo, hi;
    bounds(c, &lo, &hi);
    size_t n = bp_numel(c->yd, c->ynd), nch = (n + CHUNK - 1) / CHUNK;
    const bp_real *x = c->x[0];
#pragma omp parallel for schedule(static) if (BIG(n))
    for (size_t k = 0; k < nch; k++) {
        size_t a = k * CHUNK, len = n - a < CHUNK ? n - a : CHUNK;
        masked_add_range(len, x + a, in + a, out + a, lo, hi);
    }
}

static void masked_set_range(size_t n, const bp_real *restrict x, const bp_real *restrict in,
                             bp_real *restrict out, bp_real lo, bp_real hi)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        bp_real xv = x[i], v = in[i];
        v = xv > lo ? v : 0;
        out[i] = xv < hi ? v : 0;
    }
}

/* out = in where lo < x < hi, else 0: one pass, no clearing first. */
static void masked_set(const bp_opctx *c, const bp_real *in, bp_real *out)
{
    bp_real lo, hi;
    bounds(c, &lo, &hi);
    size_t n = bp_numel(c->yd, c->ynd), nch = (n + CHUNK - 1) / CHUNK;
    const bp_real *x = c->x[0];
#pragma omp parallel for schedule(static) if (BIG(n))
    for (size_t k = 0; k < nch; k++) {
        size_t a = k * CHUNK, len = n - a < CHUNK ? n - a : CHUNK;
        masked_set_range(len, x + a, in + a, out + a, lo, hi);
    }
}

bp_status bp_act_backward(bp_opctx *c)
{
    if (!c->dx[0])
        return BP_OK;
    if (!c->dx_set[0]) {
        masked_add(c, c->dy, c->dx[0]);
        return BP_OK;
    }
    masked_set(c, c->dy, c->dx[0]);
    return BP_OK;
}

bp_status bp_act_rop_forward(bp_opctx *c)
{
    masked_set(c, c->rx[0], c->ry);
    return BP_OK;
}

/* The R-backward of the linear and piecewise-linear ops is their backward
 * applied to R{dy}; rdx_set (write, not add) carries over. */
static bp_status rop_as_backward(bp_opctx *c, bp_status (*bwd)(bp_opctx *))
{
    if (!c->rdy) {
        for (int j = 0; j < c->nin; j++)
            if (c->rdx_set[j] && c->rdx[j])
                memset(c->rdx[j], 0, bp_numel(c->xd[j], c->xnd[j]) * sizeof(bp_real));
        return BP_OK;
    }
    bp_opctx t = *c;
    t.dy = c->rdy;
    memcpy(t.dx, c->rdx, sizeof t.dx);
    memcpy(t.dx_set, c->rdx_set, sizeof t.dx_set);
    return bwd(&t);
}

bp_status bp_act_rop_backward(bp_opctx *c)
{
    return rop_as_backward(c, bp_act_backward);
}

/* ---- Flatten, Reshape, Identity: the data is copied unchanged ------------------------ */

bp_status bp_copy_forward(bp_opctx *c)
{
    memcpy(c->y, c->x[0], sizeof *c->y * bp_numel(c->yd, c->ynd));
    return BP_OK;
}

bp_status bp_copy_backward(bp_opctx *c)
{
    if (c->dx[0] && c->dx_set[0])
        memcpy(c->dx[0], c->dy, sizeof *c->dy * bp_numel(c->yd, c->ynd));
    else if (c->dx[0])
        copy_add(bp_numel(c->yd, c->ynd), c->dy, c->dx[0]);
    return BP_OK;
}

bp_status bp_copy_rop_forward(bp_opctx *c)
{
    memcpy(c->ry, c->rx[0], sizeof *c->ry * bp_numel(c->yd, c->ynd));
    return BP_OK;
}

bp_status bp_copy_rop_backward(bp_opctx *c)
{
    return rop_as_backward(c, bp_copy_backward);
}
