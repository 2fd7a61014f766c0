/* The model Hessian operator summed over the ranks of a process group
 * (dist_op.h). */
#include "sensitivity/dist_op.h"

#include <stdlib.h>

struct bp_dist_op {
    bp_model_op *m;
    bp_linop inner;
    int n_local, n_total;
    double scale;   /* n_local / n_total */
    double loss;
    double bytes;
};

bp_status bp_dist_op_new(bp_status local, bp_model_op *m, bp_dist_op **out)
{
    *out = NULL;
    bp_dist_op *d = NULL;
    if (!local && !(d = calloc(1, sizeof *d)))
        local = bp_error(BP_ERR_NOMEM, "distributed hessian operator: out of memory");
    bp_status st = bp_dist_agree(local);
    if (st) {
        free(d);
        return st;
    }
    d->m = m;
    d->inner = bp_model_op_linop(m);
    d->n_local = bp_model_op_samples(m);
    long n = d->n_local;
    if ((st = bp_dist_sum_long(&n, 1))) {
        free(d);
        return st;
    }
    d->n_total = (int)n;
    d->scale = (double)d->n_local / (double)d->n_total;
    *out = d;
    return BP_OK;
}

void bp_dist_op_free(bp_dist_op *d)
{
    free(d);
}

/* k local products, then (after every rank has said it succeeded) the sum of
 * the scaled products over ranks. */
static bp_status apply_many(void *ctx, int k, const double *v, double *hv)
{
    bp_dist_op *d = ctx;
    bp_status st = bp_linop_apply_many(&d->inner, k, v, hv);
    if ((st = bp_dist_agree(st)))
        return st;
    if (bp_dist_size() > 1) {
        size_t cnt = (size_t)k * d->inner.n;
        for (size_t j = 0; j < cnt; j++)
            hv[j] *= d->scale;
        double loss = d->scale * bp_model_op_loss(d->m);
        if ((st = bp_dist_sum(hv, cnt)) || (st = bp_dist_sum(&loss, 1)))
            return bp_error_wrap(st, "hessian-vector product");
        d->loss = loss;
        d->bytes += 8.0 * (double)(cnt + 1);
    } else {
        d->loss = bp_model_op_loss(d->m);
    }
    return BP_OK;
}

static bp_status apply(void *ctx, const double *v, double *hv)
{
    return apply_many(ctx, 1, v, hv);
}

bp_linop bp_dist_op_linop(bp_dist_op *d)
{
    return (bp_linop){.n = d->inner.n, .apply = apply, .ctx = d, .apply_many = apply_many};
}

int bp_dist_op_samples(const bp_dist_op *d) { return d->n_total; }
int bp_dist_op_local_samples(const bp_dist_op *d) { return d->n_local; }
double bp_dist_op_loss(const bp_dist_op *d) { return d->loss; }
double bp_dist_op_bytes(const bp_dist_op *d) { return d->bytes; }

bp_status bp_dist_stream_open(const char *spec, const bp_data_opts *base, int samples, int batch,
                              bp_stream **out, int *total)
{
    *out = NULL;
    *total = 0;
    bp_data_opts o = *base;
    o.limit = samples > 0 ? samples : 0;
    bp_stream *s = NULL;
    bp_status st = bp_stream_open(spec, &o, &s);
    if (st)
        return st;
    int n = 0;
    bp_stream_info(s, NULL, NULL, NULL, &n, NULL);
    *total = n;
    int size = bp_dist_size(), rank = bp_dist_rank();
    if (size <= 1) {
        *out = s;
        return BP_OK;
    }
    bp_stream_close(s);
    if (batch < 1)
        batch = 1;
    int nb = (n + batch - 1) / batch;
    if (nb < size)
        return bp_error(BP_ERR_ARG, "%s: %d calibration samples in batches of %d are %d batch%s, "
                                    "fewer than the %d ranks (each rank needs at least one batch: "
                                    "use a smaller --batch, more --samples or fewer ranks)",
                        spec, n, batch, nb, nb == 1 ? "" : "es", size);
    int off, cnt;
    bp_dist_shard(n, batch, rank, size, &off, &cnt);
    o.offset = base->offset + off;
    o.limit = cnt;
    if ((st = bp_stream_open(spec, &o, &s)))
        return bp_error_wrap(st, "rank %d of %d, samples %d..%d", rank, size, off, off + cnt - 1);
    int got = 0;
    bp_stream_info(s, NULL, NULL, NULL, &got, NULL);
    if (got != cnt) {
        bp_stream_close(s);
        return bp_error(BP_ERR_FORMAT, "%s: rank %d of %d expected samples %d..%d and the source "
                                       "gave %d", spec, rank, size, off, off + cnt - 1, got);
    }
    *out = s;
    return BP_OK;
}
