/* measure.h — host latency measurement with bitplan's own integer kernels
 * (quant/qkernels.h): each layer of a model, at each candidate (b_w, b_a),
 * timed the way TVM's time_evaluator does it: warm-up runs, then `reps`
 * repetitions, each repetition running the kernel `inner` times back to back
 * (inner chosen during warm-up so that a repetition lasts at least
 * min_rep_ms), latency = repetition time / inner. The profile keeps the median
 * and the interquartile range of the repetitions.
 *
 * What the host kernels can and cannot show: weights of 2..4 bits are stored
 * as packed nibbles and 5..8 bits as int8 (so only the storage class changes
 * the work); activations of any width up to 8 bits are stored as uint8, so b_a
 * does not change the time. Candidates outside 2..8 / 1..8 bits are
 * BP_ERR_UNSUPPORTED.
 *
 * Threads: the kernels are single-threaded; with T > 1 threads the batch is
 * split into T slices run in parallel (OpenMP, omp_set_num_threads), so
 * threads only help at batch >= 2.
 *
 * Clock: wall time (CLOCK_MONOTONIC) by default. On a machine shared with
 * other work, wall time includes the time the thread waited for a core;
 * thread_cpu = 1 times with CLOCK_THREAD_CPUTIME_ID instead, which counts only
 * the CPU time the measuring thread used (cache interference from others still
 * shows). It needs threads = 1. The profile records which clock was used.
 */
#ifndef BP_LATENCY_MEASURE_H
#define BP_LATENCY_MEASURE_H

#include "latency/profile.h"

typedef struct {
    int layer, nlayers;    /* layer being timed (index into the model's layers) */
    int cand, ncand;       /* candidate being timed */
    const char *name;      /* layer name */
    int b_w, b_a;
    double median_ms;      /* result of this timing */
    int reused;            /* 1: same signature as an earlier layer, not timed again */
} bp_measure_event;

/* Called after each (layer, candidate); the library itself never prints. */
typedef void (*bp_measure_progress_fn)(const bp_measure_event *ev, void *ctx);

typedef struct {
    int ncand;
    const int *wbits, *abits;  /* (ncand) candidates */
    int batch;                 /* samples per run (default 1) */
    int threads;               /* OpenMP threads (default 1) */
    int reps;                  /* timed repetitions (default 30) */
    int warmup;                /* untimed runs first (default 3) */
    double min_rep_ms;         /* shortest repetition (default 0.5 ms) */
    int thread_cpu;            /* 1: CLOCK_THREAD_CPUTIME_ID (threads must be 1) */
    bp_measure_progress_fn progress;  /* may be NULL */
    void *ctx;
} bp_measure_opts;

/* Defaults above; candidates left NULL. */
void bp_measure_opts_default(bp_measure_opts *o);

typedef struct {
    double median_ms, q1_ms, q3_ms, min_ms, max_ms;
    int inner;                 /* kernel runs per repetition */
} bp_lat_timing;

/* Times one layer at (b_w, b_a), batch o->batch. For convolutions the padding
 * is taken from `a` when given (dilation too), else derived from L->out_h/out_w
 * (stride L->stride, dilation 1, the extra pixel at the bottom/right). */
bp_status bp_latency_time_layer(const bp_layer *L, const bp_attrs *a, int b_w, int b_a,
                                const bp_measure_opts *o, bp_lat_timing *t);

/* Measures every layer of g at every candidate and returns a new profile
 * (device "host: <cpu model>", conditions filled in, source "measured", the
 * note naming the layers that share each signature). Layers with a signature
 * already timed are not timed again. */
bp_status bp_latency_measure_graph(const bp_graph *g, const bp_measure_opts *o,
                                   bp_profile **out);

/* "model name" of the first CPU in /proc/cpuinfo, or "unknown cpu". */
void bp_host_cpu_name(char *buf, size_t len);

#endif
