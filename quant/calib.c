/* calib.c — activation range statistics and clipping choices (calib.h). */
#include "quant/calib.h"

#include <math.h>
#include <string.h>

const char *bp_calib_name(bp_calib_method m)
{
    return m == BP_CALIB_MINMAX ? "minmax" : m == BP_CALIB_PERCENTILE ? "percentile" : "mse";
}

int bp_calib_parse(const char *name)
{
    if (!strcmp(name, "minmax"))
        return BP_CALIB_MINMAX;
    if (!strcmp(name, "percentile"))
        return BP_CALIB_PERCENTILE;
    if (!strcmp(name, "mse"))
        return BP_CALIB_MSE;
    return -1;
}

void bp_calib_reset(bp_calib_stats *s)
{
    memset(s, 0, sizeof *s);
    s->min = INFINITY;
    s->max = -INFINITY;
}

void bp_calib_minmax(bp_calib_stats *s, const bp_real *x, size_t n)
{
    double lo = s->min, hi = s->max;
    for (size_t i = 0; i < n; i++) {
        double v = x[i];
        if (v < lo)
            lo = v;
        if (v > hi)
            hi = v;
    }
    s->min = lo;
    s->max = hi;
    s->absmax = fmax(fabs(lo), fabs(hi));
}

void bp_calib_hist(bp_calib_stats *s, const bp_real *x, size_t n)
{
    if (!(s->absmax > 0))
        return;
    const double k = BP_CALIB_BINS / s->absmax;
    for (size_t i = 0; i < n; i++) {
        int b = (int)(fabs((double)x[i]) * k);
        s->hist[b >= BP_CALIB_BINS ? BP_CALIB_BINS - 1 : b]++;
    }
    s->count += n;
}

/* Expected squared error of quantizing the histogram with clip c. */
static double hist_err(const bp_calib_stats *s, double c, double levels)
{
    const double w = s->absmax / BP_CALIB_BINS, step = c / levels;
    double e = 0;
    for (int b = 0; b < BP_CALIB_BINS; b++) {
        if (!s->hist[b])
            continue;
        double v = (b + 0.5) * w;
        double q = fmin(round(v / step), levels) * step;
        e += (double)s->hist[b] * (q - v) * (q - v);
    }
    return e;
}

double bp_calib_clip(const bp_calib_stats *s, bp_calib_method m, double percentile, int bits,
                     int is_signed)
{
    double top = is_signed ? s->absmax : fmax(s->max, 0.0);
    if (!(top > 0) || !isfinite(top))
        return 1.0;
    double levels = is_signed ? (double)((1 << (bits - 1)) - 1) : (double)((1 << bits) - 1);
    if (m == BP_CALIB_MINMAX || s->count == 0)
        return top;
    if (m == BP_CALIB_PERCENTILE) {
        uint64_t need = (uint64_t)ceil(percentile / 100.0 * (double)s->count), acc = 0;
        for (int b = 0; b < BP_CALIB_BINS; b++) {
            acc += s->hist[b];
            if (acc >= need)
                return fmin(top, (b + 1) * s->absmax / BP_CALIB_BINS);
        }
        return top;
    }
    double best = top, beste = INFINITY;
    for (int k = 200; k >= 1; k--) {
        double c = top * k / 200.0;
        double e = hist_err(s, c, levels);
        if (e < beste) {
            beste = e;
            best = c;
        }
    }
    return best;
}
