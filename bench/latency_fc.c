/* latency_fc — does the host profile order int4 below int8 where memory
 * bandwidth limits a layer? Times a batch-1 fully connected 4096x4096 layer
 * (16 Mi weights: 16 MiB at int8, 8 MiB at int4, beyond the caches) and, as a
 * compute-bound peer in the same run, a 3x3 conv 64->64 on 56x56, at every
 * weight width the integer kernels support, with the same method as
 * `bitplan latency measure` (bp_latency_time_layer). Prints medians, IQRs and
 * the int8/int4 ratio of each layer. */
#include <stdio.h>
#include <string.h>

#include "latency/measure.h"
#include "quant/qkernels.h"

static void run(const char *title, const bp_layer *L, bp_measure_opts *o)
{
    bp_lat_timing t[9];
    printf("%s (%s kernels, batch %d, %d reps)\n", title, bp_qkern_name(bp_qkern_active()),
           o->batch, o->reps);
    for (int b = 2; b <= 8; b++) {
        bp_status st = bp_latency_time_layer(L, NULL, b, 8, o, &t[b]);
        if (st) {
            fprintf(stderr, "latency_fc: %s\n", bp_last_error());
            return;
        }
        double bytes = (double)L->params * (b <= 4 ? 0.5 : 1.0);
        printf("  W%dA8  median %9.4f ms  iqr %9.4f..%9.4f  (%d runs/rep)  weights %6.2f MiB  "
               "%6.2f GB/s\n", b, t[b].median_ms, t[b].q1_ms, t[b].q3_ms, t[b].inner,
               bytes / 1048576.0, bytes / (t[b].median_ms * 1e-3) / 1e9);
    }
    printf("  int8/int4 median ratio: %.3f (>1: int4 faster)\n\n", t[8].median_ms / t[4].median_ms);
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
    return 0;
}
