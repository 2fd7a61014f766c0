/* Softmax cross-entropy on rows of logits, and its R-op. Works on raw arrays;
 * exec.c wires it to the executor's buffers. */
#include <math.h>

#include "core/ops.h"

bp_status bp_softmax_ce_rows(const bp_real *z, int rows, int classes, const int *labels,
                             bp_real *prob, bp_real *grad, double *loss, int *correct)
{
    for (int r = 0; r < rows; r++)
        if (labels[r] < 0 || labels[r] >= classes)
            return bp_error(BP_ERR_ARG, "loss: label %d of sample %d is outside [0, %d)", labels[r],
                            r, classes);
    double total = 0;
    int hits = 0;
#pragma omp parallel for reduction(+ : total, hits) schedule(static) if (BIG((size_t)rows * classes))
    for (int r = 0; r < rows; r++) {
        const bp_real *zr = z + (size_t)r * classes;
        bp_real *pr = prob + (size_t)r * classes;
        int arg = 0;
        for (int k = 1; k < classes; k++)
            if (zr[k] > zr[arg])
                arg = k;
        double mx = zr[arg], sum = 0;
        for (int k = 0; k < classes; k++)
            sum += exp((double)zr[k] - mx);
        for (int k = 0; k < classes; k++)
            pr[k] = (bp_real)(exp((double)zr[k] - mx) / sum);
        /* log-sum-exp form: exact even when p[label] underflows */
        total += log(sum) - ((double)zr[labels[r]] - mx);
        hits += arg == labels[r];
        if (grad) {
            bp_real *gr = grad + (size_t)r * classes;
            for (int k = 0; k < classes; k++)
                gr[k] = (pr[k] - (k == labels[r])) / (bp_real)rows;
        }
    }
    double l = rows ? total / rows : 0;
    if (!isfinite(l))
        return bp_error(BP_ERR_NUMERIC, "loss: cross-entropy is not finite (%g)", l);
    if (loss)
        *loss = l;
    if (correct)
        *correct = hits;
    return BP_OK;
}

void bp_softmax_ce_rop_rows(const bp_real *prob, const bp_real *rz, int rows, int classes,
                            bp_real *rdz)
{
#pragma omp parallel for schedule(static) if (BIG((size_t)rows * classes))
    for (int r = 0; r < rows; r++) {
        const bp_real *p = prob + (size_t)r * classes, *v = rz + (size_t)r * classes;
        double pv = 0;
        for (int k = 0; k < classes; k++)
            pv += (double)p[k] * v[k];
        for (int k = 0; k < classes; k++)
            rdz[(size_t)r * classes + k] = (bp_real)(p[k] * (v[k] - pv) / rows);
    }
}
