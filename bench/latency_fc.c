/* latency_fc — does the host profile order int4 below int8 where memory
 * bandwidth limits a layer? Times a batch-1 fully connected 4096x4096 layer
 * (16 Mi weights: 16 MiB at int8, 8 MiB at int4, beyond the caches) and, as a
 * compute-bound peer in the same run, a 3x3 conv 64->64 on 56x56, at every
 * weight width the integer kernels support, with the same method as
 * `bitplan latency measure` (bp_latency_time_layer), once with the wall clock
 * and once with the thread CPU clock (immune to other processes taking the
 * core). Prints medians, IQRs, minima and the int8/int4 ratio of each layer.
 *
 * A peer in the same run tells "int4 is not faster" apart from "the layer is
 * not memory bound": OpenBLAS sgemv on the same 4096x4096 layer in fp32 (64
 * MiB, memory bound: its GB/s is a floor for what this host's memory gives).
 * If the int kernels read their weights far slower than that, they are
 * compute bound and halving the weight bytes cannot show. */
#include <cblas.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "latency/measure.h"
#include "quant/qkernels.h"

static void run(const char *title, const bp_layer *L, bp_measure_opts *o)
{
    bp_lat_timing t[9];
    printf("%s (%s kernels, batch %d, %d reps, %s clock)\n", title,
           bp_qkern_name(bp_qkern_active()), o->batch, o->reps,
           o->thread_cpu ? "thread-cpu" : "wall");
    for (int b = 2; b <= 8; b++) {
        bp_status st = bp_latency_time_layer(L, NULL, b, 8, o, &t[b]);
        if (st) {
            fprintf(stderr, "latency_fc: %s\n", bp_last_error());
            return;
        }
        double bytes = (double)L->params * (b <= 4 ? 0.5 : 1.0);
        printf("  W%dA8  median %8.4f ms  iqr %8.4f..%8.4f  min %8.4f  (%d runs/rep)  "
               "weights %5.2f MiB  %5.2f GB/s\n", b, t[b].median_ms, t[b].q1_ms, t[b].q3_ms,
               t[b].min_ms, t[b].inner, bytes / 1048576.0, bytes / (t[b].median_ms * 1e-3) / 1e9);
    }
    printf("  int8/int4 ratio: median %.3f, min %.3f (>1: int4 faster)\n\n",
           t[8].median_ms / t[4].median_ms, t[8].min_ms / t[4].min_ms);
}

/* Thread CPU time: the peer runs in this thread (OpenBLAS at 1 thread), and
 * the machine is shared, so wall time would mostly measure the others. */
static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

enum { N = 4096, REPS = 21 };

/* Median ms of REPS runs of `call` (after one warm-up run). */
#define TIME_MEDIAN(out, call)                                  \
    do {                                                        \
        double t_[REPS];                                        \
        call;                                                   \
        for (int r_ = 0; r_ < REPS; r_++) {                     \
            double t0_ = now_ms();                              \
            call;                                               \
            t_[r_] = now_ms() - t0_;                            \
        }                                                       \
        qsort(t_, REPS, sizeof *t_, cmp_double);                \
        out = t_[REPS / 2];                                     \
    } while (0)

static void peer_sgemv(void)
{
    float *wf = malloc((size_t)N * N * sizeof *wf), *xf = malloc(N * sizeof *xf),
          *yf = malloc(N * sizeof *yf);
    if (!wf || !xf || !yf) {
        fprintf(stderr, "latency_fc: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < (size_t)N * N; i++)
        wf[i] = (float)((i * 7) % 13) - 6.0f;
    for (int i = 0; i < N; i++)
        xf[i] = (float)(i % 5);
    double t32;
    openblas_set_num_threads(1);
    TIME_MEDIAN(t32, cblas_sgemv(CblasRowMajor, CblasNoTrans, N, N, 1.0f, wf, N, xf, 1, 0.0f, yf, 1));
    printf("peer: OpenBLAS sgemv fp32, batch-1 4096x4096, 1 thread, thread-cpu clock, median of "
           "%d: %.4f ms, "
           "%.2f GB/s of weights\n", REPS, t32, 64.0 * 1048576 / (t32 * 1e-3) / 1e9);
    free(wf);
    free(xf);
    free(yf);
}

int main(void)
{
    bp_measure_opts o;
    bp_measure_opts_default(&o);
    o.reps = 21;
    o.min_rep_ms = 2.0;

    bp_layer fc;
    memset(&fc, 0, sizeof fc);
    snprintf(fc.name, sizeof fc.name, "fc4096");
    fc.op = BP_OP_GEMM;
    fc.cin = fc.cout = 4096;
    fc.kh = fc.kw = fc.stride = fc.group = 1;
    fc.in_h = fc.in_w = fc.out_h = fc.out_w = 1;
    fc.params = 4096 * 4096;
    fc.macs = 4096 * 4096;
    run("batch-1 FC 4096x4096 (memory bound)", &fc, &o);
    o.thread_cpu = 1;
    run("batch-1 FC 4096x4096 (memory bound)", &fc, &o);
    o.thread_cpu = 0;

    bp_layer cv;
    memset(&cv, 0, sizeof cv);
    snprintf(cv.name, sizeof cv.name, "conv64");
    cv.op = BP_OP_CONV;
    cv.cin = cv.cout = 64;
    cv.kh = cv.kw = 3;
    cv.stride = cv.group = 1;
    cv.in_h = cv.in_w = cv.out_h = cv.out_w = 56;
    cv.params = 64 * 64 * 9;
    cv.macs = (int64_t)64 * 64 * 9 * 56 * 56;
    run("3x3 conv 64->64 at 56x56 (compute bound)", &cv, &o);
    o.thread_cpu = 1;
    run("3x3 conv 64->64 at 56x56 (compute bound)", &cv, &o);
    peer_sgemv();
    return 0;
}
