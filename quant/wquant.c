/* Symmetric uniform weight quantizer, per output channel or per tensor. See
 * wquant.h for the formulas, rounding rule and layout. */
#include "quant/wquant.h"

#include <math.h>
#include <string.h>

const char *bp_clip_name(bp_clip_mode m)
{
    return m == BP_CLIP_MSE ? "mse" : "maxabs";
}

int bp_clip_parse(const char *name)
{
    if (!name)
        return -1;
    if (!strcmp(name, "maxabs") || !strcmp(name, "max-abs") || !strcmp(name, "minmax"))
        return BP_CLIP_MAXABS;
    if (!strcmp(name, "mse"))
        return BP_CLIP_MSE;
    return -1;
}

bp_status bp_wq_shape_of_layer(const bp_graph *g, const bp_layer *l, bp_wq_shape *s)
{
    const bp_value *w = &g->values[l->weight];
    const bp_node *nd = &g->nodes[l->node];
    if (l->op == BP_OP_CONV || (l->op == BP_OP_GEMM && nd->a.trans_b)) {
        /* Output channel is the leading dimension. */
        s->outer = 1;
        s->nchan = w->dims[0];
    } else if (l->op == BP_OP_GEMM || l->op == BP_OP_MATMUL) {
        /* (…, K, M): output feature is the last dimension. */
        s->nchan = w->dims[w->ndim - 1];
        s->outer = s->nchan ? (int64_t)w->numel / s->nchan : 0;
        s->inner = 1;
        return BP_OK;
    } else {
        return bp_error(BP_ERR_UNSUPPORTED, "wquant: layer '%s' (%s) has no weight to quantize",
                        l->name, bp_op_name(l->op));
    }
    s->inner = s->nchan ? (int64_t)w->numel / s->nchan : 0;
    return BP_OK;
}

/* The elements of channel c (or of the whole tensor when c < 0) are visited
 * as (o, c', i) triples; these loops keep the strided walk in one place. */
#define FOR_CHANNEL(s, c, idx)                                                   \
    for (int64_t o_ = 0; o_ < (s).outer; o_++)                                   \
        for (int64_t c_ = (c) < 0 ? 0 : (c); c_ < ((c) < 0 ? (s).nchan : (c) + 1); c_++) \
            for (int64_t i_ = 0, idx = (o_ * (s).nchan + c_) * (s).inner;        \
                 i_ < (s).inner; i_++, idx++)

static double quant_one(double w, double S, double qmin, double qmax, double *q)
{
    double r = round(w / S); /* half away from zero */
    if (r < qmin)
        r = qmin;
    if (r > qmax)
        r = qmax;
    *q = r;
    return r * S;
}

static double channel_err2(const bp_real *w, bp_wq_shape s, int64_t c, double S, double qmin,
                           double qmax)
{
    double e = 0, q;
    if (S == 0) {
        FOR_CHANNEL(s, c, k) e += (double)w[k] * (double)w[k];
        return e;
    }
    FOR_CHANNEL(s, c, k)
    {
        double d = quant_one((double)w[k], S, qmin, qmax, &q) - (double)w[k];
        e += d * d;
    }
    return e;
}

bp_status bp_wquant_tensor(const bp_real *w, bp_wq_shape s, int per_channel, int bits,
                           bp_clip_mode mode, bp_real *out_deq, double *out_scales,
                           int32_t *out_codes, double *err2)
{
    if (bits < BP_WQ_MIN_BITS || bits > BP_WQ_MAX_BITS)
        return bp_error(BP_ERR_ARG, "wquant: %d bits is outside %d..%d", bits, BP_WQ_MIN_BITS,
                        BP_WQ_MAX_BITS);
    if (s.outer < 0 || s.nchan <= 0 || s.inner < 0)
        return bp_error(BP_ERR_ARG, "wquant: bad shape (%lld, %lld, %lld)", (long long)s.outer,
                        (long long)s.nchan, (long long)s.inner);
    if (mode != BP_CLIP_MAXABS && mode != BP_CLIP_MSE)
        return bp_error(BP_ERR_ARG, "wquant: unknown clipping mode %d", (int)mode);
    int64_t numel = s.outer * s.nchan * s.inner;
    for (int64_t k = 0; k < numel; k++)
        if (!isfinite((double)w[k]))
            return bp_error(BP_ERR_NUMERIC, "wquant: weight element %lld is not finite",
                            (long long)k);

    const double qmax = ldexp(1.0, bits - 1) - 1, qmin = -ldexp(1.0, bits - 1);
    int64_t nch = per_channel ? s.nchan : 1;
    double total = 0;
    for (int64_t ci = 0; ci < nch; ci++) {
        int64_t c = per_channel ? ci : -1;
        double m = 0;
        FOR_CHANNEL(s, c, k)
        {
            double a = fabs((double)w[k]);
            if (a > m)
                m = a;
        }
        double S = m / qmax, best = channel_err2(w, s, c, S, qmin, qmax);
        if (mode == BP_CLIP_MSE && m > 0) {
            /* From α = 1 downwards; strict < keeps the larger α on ties, so a
             * channel that clipping cannot help keeps the max-abs scale. */
            for (int k = BP_WQ_MSE_GRID - 1; k >= 1; k--) {
                double Sa = (double)k / BP_WQ_MSE_GRID * m / qmax;
                double e = channel_err2(w, s, c, Sa, qmin, qmax);
                if (e < best) {
                    best = e;
                    S = Sa;
                }
            }
        }
        total += best;
        if (out_scales)
            out_scales[ci] = S;
        if (out_deq || out_codes) {
            FOR_CHANNEL(s, c, k)
            {
                double q = 0, d = 0;
                if (S > 0)
                    d = quant_one((double)w[k], S, qmin, qmax, &q);
                if (out_codes)
                    out_codes[k] = (int32_t)q;
                if (out_deq)
                    out_deq[k] = (bp_real)d;
            }
        }
    }
    if (err2)
        *err2 = total;
    return BP_OK;
}

bp_status bp_wquant_layer_err2(const bp_graph *g, const bp_layer *l, const int *bits,
                               int nbits, bp_clip_mode mode, double *dw2)
{
    bp_wq_shape s;
    bp_status st = bp_wq_shape_of_layer(g, l, &s);
    if (st)
        return st;
    const bp_real *w = g->params + g->values[l->weight].offset;
    for (int j = 0; j < nbits; j++) {
        st = bp_wquant_tensor(w, s, 1, bits[j], mode, NULL, NULL, NULL, &dw2[j]);
        if (st)
            return bp_error_wrap(st, "layer '%s'", l->name);
    }
    return BP_OK;
}
