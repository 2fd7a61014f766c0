/* The training loop: shuffled mini-batches, BN in training mode, SGD with a
 * warm-up + cosine schedule, a test pass per epoch (see train.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "core/exec.h"
#include "train/train.h"

bp_train_opts bp_train_opts_default(void)
{
    bp_train_opts o;
    memset(&o, 0, sizeof o);
    o.epochs = 8;
    o.batch = 128;
    o.lr = 0.1;
    o.momentum = 0.9;
    o.weight_decay = 5e-4;
    o.warmup = 0.5;
    o.seed = 1;
    o.eval_batch = 500;
    return o;
}

static double now(clockid_t id)
{
    struct timespec t;
    clock_gettime(id, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* With dy, dx drawn from -2..2 this is a random crop of the image padded by
 * 2 pixels on each side; the minimum stands for the padding because
 * Fashion-MNIST's background (the border) is the darkest pixel. */
void bp_augment(bp_real *dst, const bp_real *src, int c, int h, int w, int dy, int dx, int flip)
{
    for (int ch = 0; ch < c; ch++) {
        const bp_real *s = src + (size_t)ch * h * w;
        bp_real *d = dst + (size_t)ch * h * w;
        bp_real lo = s[0];
        for (int i = 1; i < h * w; i++)
            lo = s[i] < lo ? s[i] : lo;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                int sy = y + dy, sx = flip ? w - 1 - (x + dx) : x + dx;
                d[y * w + x] = sy >= 0 && sy < h && sx >= 0 && sx < w ? s[sy * w + sx] : lo;
            }
    }
}

static bp_status check_shapes(const bp_graph *g, const bp_dataset *ds, const char *what)
{
    const bp_value *in = &g->values[g->input];
    if (in->numel != (size_t)ds->c * ds->h * ds->w)
        return bp_error(BP_ERR_SHAPE, "%s samples are %dx%dx%d but the model input is %s%lldx%lldx%lld",
                        what, ds->c, ds->h, ds->w, in->ndim == 4 ? "" : "not 4-D: ",
                        (long long)(in->ndim > 1 ? in->dims[1] : 0),
                        (long long)(in->ndim > 2 ? in->dims[2] : 0),
                        (long long)(in->ndim > 3 ? in->dims[3] : 0));
    return BP_OK;
}

bp_status bp_train(bp_graph *g, const bp_dataset *tr, const bp_dataset *te, const bp_train_opts *opts,
                   bp_epoch_report *last)
{
    bp_train_opts o = opts ? *opts : bp_train_opts_default();
    if (o.epochs < 1 || o.batch < 1 || !(o.lr > 0) || !(o.warmup >= 0) || o.eval_batch < 1)
        return bp_error(BP_ERR_ARG, "training: epochs %d, batch %d, lr %g, warm-up %g: each must be positive",
                        o.epochs, o.batch, o.lr, o.warmup);
    if (!tr || tr->n < 1)
        return bp_error(BP_ERR_ARG, "training: no training samples");
    bp_status st = check_shapes(g, tr, "training");
    if (!st && te)
        st = check_shapes(g, te, "test");
    if (st)
        return st;

    const int B = o.batch < tr->n ? o.batch : tr->n;
    const long steps = tr->n / B, total = steps * o.epochs;
    const long warm = lround(o.warmup * (double)steps);
    const size_t per = (size_t)tr->c * tr->h * tr->w;
    bp_exec *ex = NULL;
    bp_sgd *sgd = NULL;
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    bp_real *grad = calloc(g->nparams ? g->nparams : 1, sizeof *grad);
    bp_real *xb = malloc((size_t)B * per * sizeof *xb);
    int *yb = malloc((size_t)B * sizeof *yb), *idx = malloc((size_t)tr->n * sizeof *idx);
    if (!rng || !grad || !xb || !yb || !idx) {
        st = bp_error(BP_ERR_NOMEM, "training: out of memory");
        goto done;
    }
    gsl_rng_set(rng, o.seed);
    for (int i = 0; i < tr->n; i++)
        idx[i] = i;
    if ((st = bp_sgd_new(g, o.momentum, o.weight_decay, &sgd)))
        goto done;
    if (!(ex = bp_exec_new(g, B, BP_EXEC_GRAD))) {
        st = bp_error_wrap(BP_ERR_NOMEM, "training");
        goto done;
    }

    long step = 0;
    for (int ep = 1; ep <= o.epochs; ep++) {
        double t0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_PROCESS_CPUTIME_ID);
        double loss_sum = 0, lr = o.lr;
        long hits = 0;
        gsl_ran_shuffle(rng, idx, (size_t)tr->n, sizeof *idx);
        for (long s = 0; s < steps; s++, step++) {
            for (int b = 0; b < B; b++) {
                int k = idx[s * B + b];
                const bp_real *src = tr->x + (size_t)k * per;
                if (o.augment) {
                    int dy = (int)gsl_rng_uniform_int(rng, 5) - 2, dx = (int)gsl_rng_uniform_int(rng, 5) - 2;
                    int flip = (int)gsl_rng_uniform_int(rng, 2);
                    bp_augment(xb + (size_t)b * per, src, tr->c, tr->h, tr->w, dy, dx, flip);
                } else {
                    memcpy(xb + (size_t)b * per, src, per * sizeof *xb);
                }
                yb[b] = tr->y[k];
            }
            double loss;
            int correct;
            if ((st = bp_forward(ex, g->params, xb, B, BP_MODE_TRAIN)) ||
                (st = bp_loss_softmax_ce(ex, yb, &loss, &correct))) {
                bp_error_wrap(st, "training epoch %d step %ld (a smaller --lr may help)", ep, s + 1);
                goto done;
            }
            memset(grad, 0, g->nparams * sizeof *grad);
            if ((st = bp_backward(ex, g->params, grad))) {
                bp_error_wrap(st, "training epoch %d step %ld", ep, s + 1);
                goto done;
            }
            lr = bp_lr_at(o.lr, step, total, warm);
            bp_sgd_step(sgd, g->params, grad, lr);
            loss_sum += loss * B;
            hits += correct;
        }
        bp_epoch_report r = {ep, o.epochs, loss_sum / (double)(steps * B), (double)hits / (double)(steps * B),
                             -1, -1, 0, 0, lr};
        if (te && (st = bp_evaluate(g, te, o.eval_batch, &r.test_acc, &r.test_loss)))
            goto done;
        r.seconds = now(CLOCK_MONOTONIC) - t0;
        r.cpu_seconds = now(CLOCK_PROCESS_CPUTIME_ID) - c0;
        if (last)
            *last = r;
        if (o.progress && o.progress(o.ctx, &r))
            break;
    }
    st = bp_graph_check_finite(g);
done:
    bp_exec_free(ex);
    bp_sgd_free(sgd);
    gsl_rng_free(rng);
    free(grad);
    free(xb);
    free(yb);
    free(idx);
    return st;
}
