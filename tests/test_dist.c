/* The process-group layer in the plain (serial) build: shard arithmetic, the
 * serial communicator, and the distributed Hessian operator's weighting
 * (products of shards scaled by n_r/N add up to the whole set's product).
 * The MPI build is checked end to end by tools/mpi-check (make check). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>

#include "core/dist.h"
#include "sensitivity/dist_op.h"
#include "train/arch.h"

Test(dist, shards_are_whole_batches_covering_every_sample)
{
    for (int n = 1; n <= 70; n += 3)
        for (int batch = 1; batch <= 9; batch += 2)
            for (int size = 1; size <= 5; size++) {
                int next = 0, nb = (n + batch - 1) / batch;
                for (int r = 0; r < size; r++) {
                    int off, cnt;
                    bp_dist_shard(n, batch, r, size, &off, &cnt);
                    cr_assert_eq(off, next, "n %d batch %d size %d rank %d: offset %d, expected %d",
                                 n, batch, size, r, off, next);
                    cr_assert_eq(off % batch, 0, "shard starts inside a batch");
                    cr_assert(cnt >= 0);
                    if (off + cnt < n)
                        cr_assert_eq(cnt % batch, 0, "only the last shard ends with a short batch");
                    int mine = (cnt + batch - 1) / batch;
                    cr_assert(mine >= nb / size && mine <= nb / size + 1,
                              "rank %d has %d of %d batches over %d ranks", r, mine, nb, size);
                    next = off + cnt;
                }
                cr_assert_eq(next, n, "n %d batch %d size %d: shards end at %d", n, batch, size, next);
            }
}

Test(dist, serial_group)
{
    cr_assert_eq(bp_dist_init(), BP_OK);
    cr_assert_eq(bp_dist_rank(), 0);
    cr_assert_eq(bp_dist_size(), 1);
#ifdef BP_MPI
    cr_assert_eq(bp_dist_has_mpi(), 1); /* a singleton run of the MPI build */
#else
    cr_assert_eq(bp_dist_has_mpi(), 0);
#endif
    double v[3] = {1.5, -2, 3};
    cr_assert_eq(bp_dist_sum(v, 3), BP_OK);
    cr_assert(v[0] == 1.5 && v[1] == -2 && v[2] == 3, "a sum over one process is the value");
    long l = 7;
    cr_assert_eq(bp_dist_sum_long(&l, 1), BP_OK);
    cr_assert_eq(l, 7);
    cr_assert_eq(bp_dist_agree(BP_OK), BP_OK);
    cr_assert_eq(bp_dist_failed_together(), 0);
    bp_error(BP_ERR_FORMAT, "x.idx: truncated");
    cr_assert_eq(bp_dist_agree(BP_ERR_FORMAT), BP_ERR_FORMAT);
    cr_assert_eq(bp_dist_failed_together(), 1);
    cr_assert_eq(bp_dist_failed_elsewhere(), 0);
    cr_assert_str_eq(bp_last_error(), "x.idx: truncated", "one process keeps its message as is");
    bp_dist_abort(1); /* serial: returns */
    bp_dist_finalize();
}

/* lenet5 at 1x12x12 with 4 classes and n samples of random data */
static bp_graph *small_model(int n, bp_real **x, int **y)
{
    bp_graph *g = NULL;
    cr_assert_eq(bp_arch_build("lenet5", 1, 12, 12, 4, 3, &g), BP_OK, "%s", bp_last_error());
    size_t per = g->values[g->input].numel;
    *x = malloc(sizeof **x * per * n);
    *y = malloc(sizeof **y * n);
    unsigned s = 12345;
    for (size_t j = 0; j < per * n; j++) {
        s = s * 1103515245u + 12345u;
        (*x)[j] = (bp_real)((s >> 8) % 2001) / 1000.0f - 1.0f;
    }
    for (int i = 0; i < n; i++)
        (*y)[i] = i % 4;
    return g;
}

Test(dist, one_process_operator_is_the_model_operator)
{
    bp_real *x;
    int *y;
    bp_graph *g = small_model(10, &x, &y);
    bp_model_op *m = NULL;
    bp_dist_op *d = NULL;
    cr_assert_eq(bp_model_op_new_memory(g, x, y, 10, 4, &m), BP_OK, "%s", bp_last_error());
    cr_assert_eq(bp_dist_op_new(BP_OK, m, &d), BP_OK, "%s", bp_last_error());
    bp_linop a = bp_model_op_linop(m), b = bp_dist_op_linop(d);
    cr_assert_eq(a.n, b.n);
    double *v = malloc(sizeof *v * a.n * 2), *h1 = malloc(sizeof *h1 * a.n * 2),
           *h2 = malloc(sizeof *h2 * a.n * 2);
    for (size_t j = 0; j < a.n * 2; j++)
        v[j] = (j * 7919) % 3 ? 1 : -1;
    cr_assert_eq(bp_linop_apply_many(&a, 2, v, h1), BP_OK);
    double la = bp_model_op_loss(m);
    cr_assert_eq(bp_linop_apply_many(&b, 2, v, h2), BP_OK);
    for (size_t j = 0; j < a.n * 2; j++)
        cr_assert(h1[j] == h2[j], "entry %zu: %g vs %g", j, h1[j], h2[j]);
    cr_assert_eq(bp_dist_op_samples(d), 10);
    cr_assert_eq(bp_dist_op_local_samples(d), 10);
    cr_assert(bp_dist_op_loss(d) == la && la > 0, "loss %g vs %g", bp_dist_op_loss(d), la);
    cr_assert(bp_dist_op_bytes(d) == 0, "one process moves nothing");
    free(v), free(h1), free(h2);
    bp_dist_op_free(d);
    bp_model_op_free(m);
    bp_graph_free(g);
    free(x), free(y);
}

/* What the ranks compute, emulated in one process: each shard's mean-loss
 * product scaled by n_r/N, summed, is the whole set's product; batch-aligned
 * shards see the whole set's batches, so the float products per batch are
 * the same and only the double sums differ. */
Test(dist, shard_products_weighted_by_size_add_up)
{
    const int n = 11, batch = 3;
    bp_real *x;
    int *y;
    bp_graph *g = small_model(n, &x, &y);
    size_t per = g->values[g->input].numel;
    bp_model_op *all = NULL;
    cr_assert_eq(bp_model_op_new_memory(g, x, y, n, batch, &all), BP_OK, "%s", bp_last_error());
    bp_linop a = bp_model_op_linop(all);
    double *v = malloc(sizeof *v * a.n), *h = malloc(sizeof *h * a.n), *hs = calloc(a.n, sizeof *hs),
           *t = malloc(sizeof *t * a.n);
    for (size_t j = 0; j < a.n; j++)
        v[j] = (j * 104729) % 5 < 2 ? 1 : -1;
    cr_assert_eq(a.apply(a.ctx, v, h), BP_OK);
    double loss = bp_model_op_loss(all), loss_sum = 0;
    for (int size = 2; size <= 4; size++) {
        for (size_t j = 0; j < a.n; j++)
            hs[j] = 0;
        loss_sum = 0;
        for (int r = 0; r < size; r++) {
            int off, cnt;
            bp_dist_shard(n, batch, r, size, &off, &cnt);
            bp_model_op *m = NULL;
            cr_assert_eq(bp_model_op_new_memory(g, x + (size_t)off * per, y + off, cnt, batch, &m), BP_OK);
            bp_linop o = bp_model_op_linop(m);
            cr_assert_eq(o.apply(o.ctx, v, t), BP_OK);
            double w = (double)cnt / n;
            for (size_t j = 0; j < a.n; j++)
                hs[j] += w * t[j];
            loss_sum += w * bp_model_op_loss(m);
            bp_model_op_free(m);
        }
        double worst = 0, big = 0;
        for (size_t j = 0; j < a.n; j++) {
            worst = fmax(worst, fabs(hs[j] - h[j]));
            big = fmax(big, fabs(h[j]));
        }
        cr_assert(big > 0);
        cr_assert(worst <= 1e-12 * big, "%d shards: max |difference| %g of max |Hv| %g", size, worst, big);
        cr_assert(fabs(loss_sum - loss) <= 1e-12 * loss, "%d shards: loss %.17g vs %.17g", size, loss_sum, loss);
    }
    free(v), free(h), free(hs), free(t);
    bp_model_op_free(all);
    bp_graph_free(g);
    free(x), free(y);
}

Test(dist, failure_in_building_the_local_operator_is_returned)
{
    bp_dist_op *d = (bp_dist_op *)1;
    bp_error(BP_ERR_NOMEM, "hessian operator: out of memory");
    cr_assert_eq(bp_dist_op_new(BP_ERR_NOMEM, NULL, &d), BP_ERR_NOMEM);
    cr_assert_null(d);
}

Test(dist, stream_shard_with_one_process_is_the_first_samples)
{
    bp_data_opts o = bp_data_opts_default();
    bp_stream *s = NULL;
    int total = 0, n = 0;
    cr_assert_eq(bp_dist_stream_open("fashion-mnist:test", &o, 20, 8, &s, &total), BP_OK, "%s",
                 bp_last_error());
    bp_stream_info(s, NULL, NULL, NULL, &n, NULL);
    cr_assert_eq(total, 20);
    cr_assert_eq(n, 20);
    bp_stream_close(s);
}
