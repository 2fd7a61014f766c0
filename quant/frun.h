/* frun.h — a node-by-node float runner with hooks, for calibration and fake
 * quantization.
 *
 * bp_forward (core/exec.h) runs a whole graph in one call; quantization needs
 * to act between nodes (quantize-dequantize a node's output, or a layer's own
 * view of its input). This runner drives the float engine's own op kernels
 * (core/ops.h, the same ones bp_forward calls) one node at a time, in
 * inference mode, and calls the hooks in between. With no hooks it computes
 * what bp_forward computes (tests/test_intengine.c checks that).
 */
#ifndef BP_FRUN_H
#define BP_FRUN_H

#include "core/graph.h"

typedef struct bp_frun bp_frun;

typedef struct {
    void *ctx;
    /* Before node i, for each activation input j: may return a replacement
     * buffer (same shape) for the node to read, e.g. the input quantized at
     * this layer's bits; NULL keeps x. */
    const bp_real *(*pre)(void *ctx, int node, int j, const bp_real *x, size_t numel);
    /* After node i wrote y (numel elements, batch included); may edit y. */
    void (*post)(void *ctx, int node, bp_real *y, size_t numel);
} bp_frun_hooks;

/* A runner for batches up to max_batch. The graph must outlive it. */
bp_status bp_frun_new(const bp_graph *g, int max_batch, bp_frun **out);
void bp_frun_free(bp_frun *r); /* accepts NULL */

/* Runs n samples x (n, per-sample input shape) with parameters `params`
 * (laid out like g->params). hooks may be NULL. */
bp_status bp_frun_forward(bp_frun *r, const bp_real *params, const bp_real *x, int n,
                          const bp_frun_hooks *hooks);

/* Activation of a value after the last forward, (n, per-sample shape). */
bp_real *bp_frun_act(bp_frun *r, int value);
/* Elements of one sample of a value. */
size_t bp_frun_numel1(const bp_frun *r, int value);

#endif
