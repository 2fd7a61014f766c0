/* bench/mpi_hvp — Hessian-vector products of an ImageNet-shaped network on
 * one or several processes (docs/MPI.md).
 *
 *   mpi_hvp [--model resnet18|lenet5] [--samples N] [--batch B] [--hvps K]
 *           [--size S] [--classes C] [--probes P] [--save MODEL.onnx]
 *
 * Builds the model with random weights (bp_init_params, seed 1) and
 * synthetic data (normal pixels, uniform labels, seed 2) of N samples, splits
 * the samples over the ranks in whole batches (bp_dist_shard), and times K
 * products of the calibration-loss Hessian with Rademacher vectors through
 * the distributed operator (sensitivity/dist_op.h), so each product is local
 * products on every rank plus one MPI_Allreduce of the operator-length double
 * vector. Prints per rank: peak RSS (getrusage ru_maxrss), seconds per HVP
 * (mean of the K, after one warm-up product), bytes handed to MPI_Allreduce
 * per HVP, seconds of one Allreduce of that vector alone; with --probes P, a
 * sensitivity pass (joint Hutchinson traces of every layer, P probes, products
 * grouped as bp_sens_run groups them) and its time. --save writes the model
 * (random weights) as ONNX and stops. Plain build: one process. MPI build (make MPI=1):
 *   OMP_NUM_THREADS=1 mpirun -np 2 build-mpi/bench/mpi_hvp
 * The defaults (resnet18, 224x224x3, 1000 classes, 4 samples in batches of
 * 2, 2 products) keep `make bench` short. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "core/dist.h"
#include "core/onnx.h"
#include "sensitivity/dist_op.h"
#include "train/arch.h"
#include "train/resnet18.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static int fail(bp_status st)
{
    fprintf(stderr, "mpi_hvp: rank %d: %s\n", bp_dist_rank(), bp_last_error());
    bp_dist_abort(1);
    return (int)st ? 1 : 1;
}

int main(int argc, char **argv)
{
    const char *model = "resnet18", *save = NULL;
    int samples = 4, batch = 2, hvps = 2, size = 224, classes = 1000, probes = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--model"))
            model = argv[i + 1];
        else if (!strcmp(argv[i], "--samples"))
            samples = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--batch"))
            batch = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--hvps"))
            hvps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--size"))
            size = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--save"))
            save = argv[i + 1];
        else if (!strcmp(argv[i], "--probes"))
            probes = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--classes"))
            classes = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "mpi_hvp: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    bp_status st = bp_dist_init();
    if (st)
        return fail(st);
    int rank = bp_dist_rank(), nranks = bp_dist_size();
    bp_graph *g = NULL;
    int ch = !strcmp(model, "lenet5") ? 1 : 3;
    if (!strcmp(model, "resnet18"))
        st = bp_arch_resnet18(ch, size, size, classes, &g);
    else
        st = bp_arch_lenet5(ch, size, size, classes, &g);
    if (!st)
        st = bp_init_params(g, 1);
    if (st)
        return fail(st);
    if (save) { /* the model as ONNX, for `bitplan sensitivity` (docs/MPI.md) */
        if (rank == 0 && (st = bp_onnx_save(g, save)))
            return fail(st);
        bp_graph_free(g);
        bp_dist_finalize();
        return 0;
    }

    /* This rank's samples: the same synthetic set on every rank, sliced. */
    int off, cnt;
    bp_dist_shard(samples, batch, rank, nranks, &off, &cnt);
    if (cnt < 1) {
        fprintf(stderr, "mpi_hvp: %d samples in batches of %d leave rank %d without one\n", samples,
                batch, rank);
        bp_dist_abort(2);
        return 2;
    }
    size_t per = g->values[g->input].numel;
    bp_real *x = malloc(sizeof *x * per * cnt);
    int *y = malloc(sizeof *y * cnt);
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(r, 2);
    for (int s = 0; s < samples; s++)
        for (size_t j = 0; j <= per; j++) {
            double v = j < per ? gsl_ran_gaussian(r, 1.0) : (double)gsl_rng_uniform_int(r, classes);
            if (s >= off && s < off + cnt) {
                if (j < per)
                    x[(size_t)(s - off) * per + j] = (bp_real)v;
                else
                    y[s - off] = (int)v;
            }
        }

    bp_model_op *m = NULL;
    bp_dist_op *d = NULL;
    st = bp_model_op_new_memory(g, x, y, cnt, batch, &m);
    if ((st = bp_dist_op_new(st, m, &d)))
        return fail(st);
    bp_linop op = bp_dist_op_linop(d);
    const bp_layer *layers;
    int nl = bp_model_op_layers(m, &layers, NULL);
    double *v = malloc(sizeof *v * op.n), *hv = malloc(sizeof *hv * op.n);
    gsl_rng_set(r, 3);
    double t = 0, vhv = 0;
    for (int k = 0; k <= hvps; k++) {
        for (size_t j = 0; j < op.n; j++)
            v[j] = gsl_rng_uniform_int(r, 2) ? 1.0 : -1.0;
        double t0 = now();
        if ((st = op.apply(op.ctx, v, hv)))
            return fail(st);
        if (k > 0)
            t += now() - t0; /* the first product is a warm-up */
        vhv = 0;
        for (size_t j = 0; j < op.n; j++)
            vhv += v[j] * hv[j];
    }
    double hvp_bytes = bp_dist_op_bytes(d) / (hvps + 1);
    /* The exchange alone: three Allreduces of an operator-length vector. */
    double tc = 0;
    for (int k = 0; k < 3 && nranks > 1; k++) {
        double t0 = now();
        if ((st = bp_dist_sum(hv, op.n)))
            return fail(st);
        tc += (now() - t0) / 3;
    }
    /* A sensitivity pass: joint Hutchinson traces of every layer with
     * `probes` probes (min = max), products grouped as bp_sens_run does. */
    double tp = 0;
    bp_trace_est *est = calloc(nl, sizeof *est);
    if (probes > 0) {
        const bp_block *blocks;
        bp_model_op_layers(m, NULL, &blocks);
        bp_trace_opts to = bp_trace_opts_default();
        to.min_probes = to.max_probes = probes;
        double t0 = now();
        if ((st = bp_hutchinson(&op, blocks, nl, &to, est, NULL, NULL)))
            return fail(st);
        tp = now() - t0;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    /* one line per rank, gathered as sums of one-hot arrays */
    double *row = calloc((size_t)nranks * 5, sizeof *row);
    row[rank * 5 + 0] = ru.ru_maxrss / 1024.0;
    row[rank * 5 + 1] = hvps > 0 ? t / hvps : 0;
    row[rank * 5 + 2] = hvp_bytes;
    row[rank * 5 + 3] = tc;
    row[rank * 5 + 4] = tp;
    if ((st = bp_dist_sum(row, (size_t)nranks * 5)))
        return fail(st);
    if (rank == 0) {
        printf("mpi_hvp: %s %dx%dx%d, %d classes, %zu parameters (%zu in the %d layers' weights), "
               "%d samples in batches of %d, %d rank%s, OMP threads %s\n",
               model, ch, size, size, classes, g->nparams, op.n, nl, samples, batch, nranks,
               nranks > 1 ? "s" : "", getenv("OMP_NUM_THREADS") ? getenv("OMP_NUM_THREADS") : "(default)");
        for (int q = 0; q < nranks; q++) {
            int o2, c2;
            bp_dist_shard(samples, batch, q, nranks, &o2, &c2);
            printf("  rank %d: %d samples, peak RSS %.0f MiB, %.3f s per HVP, %.1f MB to "
                   "MPI_Allreduce per HVP, %.3f s per Allreduce alone",
                   q, c2, row[q * 5], row[q * 5 + 1], row[q * 5 + 2] / 1e6, row[q * 5 + 3]);
            if (probes > 0)
                printf(", Hutchinson pass (%d probes, %d layers) %.2f s", probes, nl, row[q * 5 + 4]);
            printf("\n");
        }
        if (probes > 0)
            printf("  traces: %s %.6g, %s %.6g\n", layers[0].name, est[0].mean, layers[nl - 1].name,
                   est[nl - 1].mean);
        printf("  vHv of the last probe %.6g, loss %.6g, %d timed HVPs\n", vhv, bp_dist_op_loss(d), hvps);
    }
    free(row);
    free(est);
    free(v);
    free(hv);
    bp_dist_op_free(d);
    bp_model_op_free(m);
    gsl_rng_free(r);
    free(x);
    free(y);
    bp_graph_free(g);
    bp_dist_finalize();
    return 0;
}
