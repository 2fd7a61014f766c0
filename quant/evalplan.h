/* evalplan.h — evaluating a bit-width plan: float, fake-quant and
 * integer-only accuracy, size, BOPs, per-layer bits, accumulator analysis,
 * optionally power-of-two scales. The library side of
 * `bitplan eval MODEL --plan PLAN` (cli/cmd_eval_plan.c prints it).
 */
#ifndef BP_EVALPLAN_H
#define BP_EVALPLAN_H

#include <jansson.h>

#include "core/graph.h"
#include "quant/qmodel.h"

typedef struct {
    const char *data;        /* evaluation data spec (default fashion-mnist:test) */
    int limit;               /* evaluation samples, 0 = all */
    const char *calib_data;  /* calibration spec (default fashion-mnist:train) */
    int calib;               /* calibration samples (default 256) */
    bp_qopts q;              /* quantizer options (calibration method, ...) */
    int pow2;                /* also evaluate with power-of-two scales */
    int acc_bits;            /* accumulator width to check layers against (default 32) */
    int batch;               /* evaluation batch (default 100) */
} bp_evalq_opts;

bp_evalq_opts bp_evalq_opts_default(void);

typedef struct {
    char name[160];
    const char *op;
    int wbits, abits;
    size_t params;
    int64_t macs, fan_in;
    double bops;             /* MACs · wbits · abits per sample */
    double size_bytes;       /* ⌈params·wbits/8⌉ + int32 bias + {int32 mult, int32 shift} per output */
    int acc_worst;           /* b_w + b_a + ⌈log2 K⌉ */
    int acc_need;            /* bits by the per-channel bound with the actual weights */
    int overflow;            /* acc_need > acc_bits */
    double latency_ms;       /* from the plan (profile), NaN when unknown */
} bp_evalq_layer;

typedef struct {
    int nlayers;
    bp_evalq_layer *layers;
    int n;                   /* evaluated samples */
    double acc_float, acc_fq, acc_fq_ideal, acc_int;
    double agree;            /* fraction of logits with |int − dyadic sim| <= 1 step */
    double acc_pow2_fq, acc_pow2_int; /* NaN when pow2 was not asked */
    double size_bytes, size_float_bytes, bops, latency_ms;
    int acc_bits, noverflow;
    const char *kernels;     /* "avx2" or "ref" */
    const char *calib_method;
    int calib_n;
} bp_evalq_report;

/* Evaluates g quantized at wbits/abits (indexed like bp_graph_layers).
 * latency_ms (may be NULL): per-layer latency from a plan/profile, NaN for unknown. */
bp_status bp_evalq_run(const bp_graph *g, const int *wbits, const int *abits,
                       const double *latency_ms, const bp_evalq_opts *o, bp_evalq_report *r);
void bp_evalq_free(bp_evalq_report *r); /* frees layers; accepts zeroed */

/* The report as a JSON object (format "bitplan-eval", version 1). */
json_t *bp_evalq_json(const bp_evalq_report *r);

#endif
