/* Float accuracy of a graph on labelled data (BN in inference mode). */
#include <stdlib.h>

#include "core/exec.h"
#include "train/train.h"

/* Accumulates over batches pulled by `next`, so the in-memory and the
 * streaming forms share the loop. */
typedef bp_status (*next_fn)(void *src, int max, bp_real *x, int *y, int *got);

static bp_status eval_loop(bp_graph *g, size_t per, next_fn next, void *src, int batch, double *acc,
                           double *loss, int *nout)
{
    if (batch < 1)
        return bp_error(BP_ERR_ARG, "evaluation batch %d", batch);
    bp_real *x = malloc((size_t)batch * per * sizeof *x);
    int *y = malloc((size_t)batch * sizeof *y);
    bp_exec *ex = NULL;
    bp_status st = BP_OK;
    double lsum = 0;
    long hits = 0, n = 0;
    if (!x || !y) {
        st = bp_error(BP_ERR_NOMEM, "evaluation: out of memory");
        goto done;
    }
    if (!(ex = bp_exec_new(g, batch, 0))) {
        st = bp_error_wrap(BP_ERR_NOMEM, "evaluation");
        goto done;
    }
    for (;;) {
        int got;
        if ((st = next(src, batch, x, y, &got)))
            goto done;
        if (!got)
            break;
        double l;
        int c;
        if ((st = bp_forward(ex, g->params, x, got, BP_MODE_INFER)) ||
            (st = bp_loss_softmax_ce(ex, y, &l, &c))) {
            bp_error_wrap(st, "evaluating samples %ld to %ld", n, n + got - 1);
            goto done;
        }
        lsum += l * got;
        hits += c;
        n += got;
    }
    if (acc)
        *acc = n ? (double)hits / (double)n : 0;
    if (loss)
        *loss = n ? lsum / (double)n : 0;
    if (nout)
        *nout = (int)n;
done:
    bp_exec_free(ex);
    free(x);
    free(y);
    return st;
}

typedef struct {
    const bp_dataset *ds;
    int pos;
} ds_cursor;

static bp_status ds_next(void *src, int max, bp_real *x, int *y, int *got)
{
    ds_cursor *c = src;
    size_t per = (size_t)c->ds->c * c->ds->h * c->ds->w;
    int k = c->ds->n - c->pos < max ? c->ds->n - c->pos : max;
    for (int i = 0; i < k; i++) {
        for (size_t j = 0; j < per; j++)
            x[(size_t)i * per + j] = c->ds->x[(size_t)(c->pos + i) * per + j];
        y[i] = c->ds->y[c->pos + i];
    }
    c->pos += k;
    *got = k;
    return BP_OK;
}

static bp_status stream_next(void *src, int max, bp_real *x, int *y, int *got)
{
    return bp_stream_next(src, max, x, y, got);
}

/* Samples must fit the model input; a mismatch is a clear error, not a crash. */
static bp_status check_input(const bp_graph *g, int c, int h, int w)
{
    const bp_value *in = &g->values[g->input];
    /* any input layout with the same elements per sample works: the
     * executor reads (n, per-sample) contiguous data */
    if (in->numel != (size_t)c * h * w)
        return bp_error(BP_ERR_SHAPE, "%s: the data's samples are %dx%dx%d but the model input '%s' is %lldx%lldx%lld",
                        g->source && g->source[0] ? g->source : "model", c, h, w, in->name,
                        (long long)(in->ndim > 1 ? in->dims[1] : 0),
                        (long long)(in->ndim > 2 ? in->dims[2] : 0),
                        (long long)(in->ndim > 3 ? in->dims[3] : 0));
    return BP_OK;
}

bp_status bp_evaluate(bp_graph *g, const bp_dataset *ds, int batch, double *acc, double *loss)
{
    bp_status st = check_input(g, ds->c, ds->h, ds->w);
    if (st)
        return st;
    ds_cursor c = {ds, 0};
    return eval_loop(g, (size_t)ds->c * ds->h * ds->w, ds_next, &c, batch, acc, loss, NULL);
}

bp_status bp_evaluate_stream(bp_graph *g, bp_stream *s, int batch, double *acc, double *loss, int *n)
{
    int c, h, w;
    bp_stream_info(s, &c, &h, &w, NULL, NULL);
    bp_status st = check_input(g, c, h, w);
    if (st)
        return st;
    return eval_loop(g, (size_t)c * h * w, stream_next, s, batch, acc, loss, n);
}
