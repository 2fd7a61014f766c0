/* Batches of the calibration set from a stream or from memory
 * (calib_batches.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sensitivity/calib_batches.h"

bp_status bp_cbatch_init(bp_cbatch *c, const char *what, bp_stream *s, const bp_real *x,
                         const int *y, int n, int batch, size_t per)
{
    memset(c, 0, sizeof *c);
    c->what = what;
    c->s = s;
    c->mx = x;
    c->my = y;
    c->n = n;
    c->batch = batch < n ? batch : n;
    c->per = per;
    if (s) {
        c->x = malloc((size_t)c->batch * per * sizeof *c->x);
        c->y = malloc((size_t)c->batch * sizeof *c->y);
        if (!c->x || !c->y)
            return bp_error(BP_ERR_NOMEM, "%s: out of memory", what);
    }
    return BP_OK;
}

void bp_cbatch_free(bp_cbatch *c)
{
    free(c->x);
    free(c->y);
    c->x = NULL;
    c->y = NULL;
}

bp_status bp_cbatch_check_stream(const bp_graph *g, bp_stream *s, int *samples)
{
    int c, h, w, n;
    bp_stream_info(s, &c, &h, &w, &n, NULL);
    if (g->input >= 0 && (size_t)c * h * w != g->values[g->input].numel)
        return bp_error(BP_ERR_SHAPE, "%s: calibration samples have %d×%d×%d = %d values, the "
                                      "model input '%s' takes %zu",
                        g->source && g->source[0] ? g->source : "model", c, h, w, c * h * w,
                        g->values[g->input].name, g->values[g->input].numel);
    if (*samples <= 0)
        *samples = n;
    if (*samples > n)
        return bp_error(BP_ERR_ARG, "calibration: %d samples asked for, the data has %d", *samples,
                        n);
    return BP_OK;
}

bp_status bp_cbatch_rewind(bp_cbatch *c)
{
    bp_status st;
    if (c->s && (st = bp_stream_rewind(c->s)))
        return bp_error_wrap(st, "%s: rewinding the calibration data", c->what);
    return BP_OK;
}

bp_status bp_cbatch_next(bp_cbatch *c, int done, const bp_real **x, const int **y, int *got)
{
    int want = c->n - done < c->batch ? c->n - done : c->batch;
    *got = want;
    if (!c->s) {
        *x = c->mx + (size_t)done * c->per;
        *y = c->my + done;
        return BP_OK;
    }
    bp_status st = bp_stream_next(c->s, want, c->x, c->y, got);
    if (st)
        return st;
    if (*got <= 0)
        return bp_error(BP_ERR_FORMAT, "%s: calibration data ended after %d of %d samples", c->what,
                        done, c->n);
    *x = c->x;
    *y = c->y;
    return BP_OK;
}

bp_status bp_cbatch_loss(bp_exec *ex, bp_real *params, const bp_real *x, const int *y,
                         int got, double *loss)
{
    *loss = 0;
    bp_status st = bp_forward(ex, params, x, got, BP_MODE_INFER);
    if (!st)
        st = bp_loss_softmax_ce(ex, y, loss, NULL);
    if (!st && !isfinite(*loss))
        st = bp_error(BP_ERR_NUMERIC, "the loss is not finite (%g)", *loss);
    return st;
}

bp_status bp_cbatch_pass(bp_cbatch *c, bp_exec *ex, bp_real *params, bp_cbatch_fn fn, void *ctx,
                         double *loss)
{
    bp_status st = bp_cbatch_rewind(c);
    if (st)
        return st;
    double loss_sum = 0;
    for (int done = 0; done < c->n;) {
        const bp_real *x;
        const int *y;
        int got;
        if ((st = bp_cbatch_next(c, done, &x, &y, &got)))
            return st;
        double l;
        st = bp_cbatch_loss(ex, params, x, y, got, &l);
        if (!st)
            st = fn(ctx, done, got, y);
        if (st)
            return bp_error_wrap(st, "%s on samples %d..%d", c->what, done, done + got - 1);
        loss_sum += (double)got / c->n * l;
        done += got;
    }
    *loss = loss_sum;
    return BP_OK;
}
