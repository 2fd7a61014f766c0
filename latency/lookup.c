/* lookup.c — per-layer latency from a profile: exact entry, then the
 * documented fallbacks (promotion to a hardware unit, log-log interpolation
 * over MACs, roofline). The order is described in latency/profile.h. */
#include "latency/profile.h"

#include <gsl/gsl_fit.h>
#include <math.h>
#include <stdlib.h>

/* Narrowest hardware unit holding both operands; 0 when none does. */
static int promote_bits(const bp_profile *p, int b_w, int b_a)
{
    int m = b_w > b_a ? b_w : b_a;
    for (int k = 0; k < p->nunits; k++)
        if (p->units[k] >= m)
            return p->units[k];
    return 0;
}

/* Least-squares line through (log total MACs, log ms) of measured entries
 * with these bits, optionally only of one op. Returns 1 and *ms when there
 * are at least two distinct MAC counts. */
static int interp_fit(const bp_profile *p, int only_op, bp_op op, int b_w, int b_a,
                      double total_macs, double *ms)
{
    size_t m = p->n > 0 ? (size_t)p->n : 1;
    double *x = malloc(m * sizeof *x);
    double *y = malloc(m * sizeof *y);
    int k = 0, distinct = 0;
    if (!x || !y) {
        free(x);
        free(y);
        return 0;
    }
    for (int i = 0; i < p->n; i++) {
        const bp_profile_entry *e = &p->e[i];
        if (e->source != BP_LAT_MEASURED || e->b_w != b_w || e->b_a != b_a ||
            e->latency_ms <= 0 || (only_op && e->sig.op != op))
            continue;
        x[k] = log((double)e->macs * e->sig.batch);
        y[k] = log(e->latency_ms);
        if (k > 0 && x[k] != x[0])
            distinct = 1;
        k++;
    }
    int ok = 0;
    if (k >= 2 && distinct) {
        double c0, c1, cov00, cov01, cov11, sumsq;
        if (!gsl_fit_linear(x, 1, y, 1, (size_t)k, &c0, &c1, &cov00, &cov01, &cov11, &sumsq)) {
            *ms = exp(c0 + c1 * log(total_macs));
            ok = isfinite(*ms);
        }
    }
    free(x);
    free(y);
    return ok;
}

static int roofline(const bp_profile *p, const bp_layer *L, int b_w, int b_a, double *ms)
{
    int m = b_w > b_a ? b_w : b_a;
    int k = 0;
    while (k < p->npeak && p->peak_bits[k] < m)
        k++;
    if (k == p->npeak)
        return 0;
    double batch = p->batch;
    double ops = 2.0 * (double)L->macs * batch;
    double bytes = (double)L->params * b_w / 8.0 +
                   batch * ((double)L->cin * L->in_h * L->in_w +
                            (double)L->cout * L->out_h * L->out_w) * b_a / 8.0;
    double t_compute = ops / p->peak_ops[k];
    double t_memory = bytes / p->mem_bw;
    *ms = 1e3 * (t_compute > t_memory ? t_compute : t_memory);
    return 1;
}

bp_status bp_profile_roofline(const bp_profile *p, const bp_layer *L, int b_w, int b_a,
                              double *ms)
{
    if (p->npeak == 0)
        return bp_error(BP_ERR_ARG, "profile %s: no roofline spec", p->device);
    if (!roofline(p, L, b_w, b_a, ms))
        return bp_error(BP_ERR_ARG, "profile %s: roofline spec has no peak for %d bits or "
                        "wider", p->device, b_w > b_a ? b_w : b_a);
    return BP_OK;
}

bp_status bp_profile_latency(const bp_profile *p, const bp_layer *L, int b_w, int b_a,
                             double *ms, int *how)
{
    int h = 0;
    if (b_w < 1 || b_w > 32 || b_a < 1 || b_a > 32)
        return bp_error(BP_ERR_ARG, "profile %s: layer '%s': candidate W%dA%d out of range",
                        p->device, L->name, b_w, b_a);
    if (L->op != BP_OP_CONV && L->op != BP_OP_GEMM && L->op != BP_OP_MATMUL)
        return bp_error(BP_ERR_ARG, "profile %s: layer '%s': op %s has no latency entries",
                        p->device, L->name, bp_op_name(L->op));
    bp_lat_sig s = bp_lat_sig_of_layer(L, p->batch);
    int i = bp_profile_find(p, &s, b_w, b_a);
    if (i < 0 && p->nunits > 0) {
        int u = promote_bits(p, b_w, b_a);
        if (u == 0)
            return bp_error(BP_ERR_ARG, "profile %s: layer '%s' at W%dA%d: wider than the "
                            "widest unit of the device (%d bits)", p->device, L->name, b_w,
                            b_a, p->units[p->nunits - 1]);
        if (u != b_w || u != b_a)
            h |= BP_LAT_PROMOTED;
        b_w = b_a = u;
        i = bp_profile_find(p, &s, b_w, b_a);
    }
    double v;
    if (i >= 0) {
        v = p->e[i].latency_ms;
        h |= BP_LAT_EXACT;
    } else if (L->macs > 0 &&
               (interp_fit(p, 1, L->op, b_w, b_a, (double)L->macs * p->batch, &v) ||
                interp_fit(p, 0, L->op, b_w, b_a, (double)L->macs * p->batch, &v))) {
        h |= BP_LAT_INTERP;
    } else if (roofline(p, L, b_w, b_a, &v)) {
        h |= BP_LAT_ROOFLINE;
    } else {
        return bp_error(BP_ERR_ARG, "profile %s: layer '%s' (%s %lldx%lld k%dx%d s%d g%d in "
                        "%lldx%lld, batch %d) at W%dA%d: no exact entry, fewer than 2 measured "
                        "entries at these bits to interpolate, and %s",
                        p->device, L->name, bp_op_name(s.op), (long long)s.cin,
                        (long long)s.cout, s.kh, s.kw, s.stride, s.group, (long long)s.in_h,
                        (long long)s.in_w, s.batch, b_w, b_a,
                        p->npeak ? "no roofline peak for these bits" : "no roofline spec");
    }
    *ms = v;
    if (how)
        *how = h;
    return BP_OK;
}

bp_status bp_profile_latency_table(const bp_profile *p, const bp_layer *layers, int n,
                                   const int *wbits, const int *abits, int ncand,
                                   double *lat, int *how)
{
    for (int i = 0; i < n; i++)
        for (int c = 0; c < ncand; c++) {
            bp_status st = bp_profile_latency(p, &layers[i], wbits[c], abits[c],
                                              &lat[(size_t)i * ncand + c],
                                              how ? &how[(size_t)i * ncand + c] : NULL);
            if (st)
                return st;
        }
    return BP_OK;
}
