/* ops.h — internal interface between the executor (exec.c) and the op kernels
 * (ops_*.c). Not a public header.
 *
 * The executor fills one bp_opctx per node call. Every pointer is to a whole
 * tensor (batch included) with its resolved dims beside it. Inputs that are
 * PARAM values point into the flat parameter buffer (and their gradient /
 * direction / Hv pointers into the matching flat buffers).
 *
 * Conventions shared by all kernels:
 *  - backward and rop_backward ADD into dx[i] / rdx[i]; NULL means "not
 *    wanted" (a non-trainable parameter, or no buffer given).
 *  - rx[i] NULL means the R-value (directional derivative) of that input is
 *    zero; rdy NULL means R{dy} is zero. Kernels skip the terms that vanish.
 *  - rop_* are only called after a forward in BP_MODE_INFER.
 */
#ifndef BP_OPS_H
#define BP_OPS_H

#include "core/exec.h"

typedef struct {
    const bp_node *node;
    int nin;
    const bp_real *x[BP_MAX_IN];   /* input data */
    const int64_t *xd[BP_MAX_IN];  /* resolved input dims */
    int xnd[BP_MAX_IN];
    bp_real *pmut[BP_MAX_IN];      /* writable PARAM data (BN running stats), else NULL */
    bp_real *y;                    /* output data */
    const int64_t *yd;
    int ynd;
    const bp_real *dy;             /* d loss / d y */
    bp_real *dx[BP_MAX_IN];        /* d loss / d input (added into) */
    unsigned char dx_set[BP_MAX_IN]; /* backward only: dx[j] holds garbage, WRITE it
                                      * (the first writer of a gradient skips the
                                      * zeroing pass); ops that cannot get it
                                      * cleared by the dispatcher first */
    const bp_real *rx[BP_MAX_IN];  /* R{input} (params: the direction v) */
    bp_real *ry;                   /* R{y} (written) */
    const bp_real *rdy;            /* R{d loss / d y} */
    bp_real *rdx[BP_MAX_IN];       /* R{d loss / d input} (added into) */
    unsigned char rdx_set[BP_MAX_IN]; /* like dx_set, for rdx in the R-backward */
    bp_mode mode;
    void *state;                   /* per-node buffer of op_state_bytes() bytes */
    bp_real *scratch;              /* shared scratch of op_scratch_reals() reals */
    int nthreads;                  /* OpenMP threads the scratch is sized for */
} bp_opctx;

/* Sizes an op needs, from a context whose dims are resolved at max batch
 * (data pointers unset). */
size_t bp_op_state_bytes(const bp_opctx *c);
size_t bp_op_scratch_reals(const bp_opctx *c);

/* Dispatch on c->node->op. */
bp_status bp_op_forward(bp_opctx *c);
bp_status bp_op_backward(bp_opctx *c);
bp_status bp_op_rop_forward(bp_opctx *c);
bp_status bp_op_rop_backward(bp_opctx *c);
/* Ordinary backward (dx) and R-backward (rdx) of one node in one call: a fused
 * kernel where the op has one (Conv), else the two calls in turn. */
bp_status bp_op_bwd_rop(bp_opctx *c);

/* Helpers shared by kernels. */

/* OpenMP only pays off above some work: a parallel region costs microseconds
 * (more when the machine is busy), which dominates tiny tensors. */
#define BP_OMP_MIN ((size_t)1 << 14)
#define BIG(work) ((size_t)(work) >= BP_OMP_MIN)
static inline size_t bp_numel(const int64_t *d, int nd)
{
    size_t n = 1;
    for (int i = 0; i < nd; i++)
        n *= (size_t)d[i];
    return n;
}

/* ---- per-family kernels (ops_<family>.c) ---- */
bp_status bp_conv_forward(bp_opctx *c);
bp_status bp_conv_backward(bp_opctx *c);
bp_status bp_conv_rop_forward(bp_opctx *c);
bp_status bp_conv_rop_backward(bp_opctx *c);
bp_status bp_conv_bwd_rop(bp_opctx *c); /* backward + R-backward in one pass */
size_t bp_conv_scratch(const bp_opctx *c);

bp_status bp_gemm_forward(bp_opctx *c);
bp_status bp_gemm_backward(bp_opctx *c);
bp_status bp_gemm_rop_forward(bp_opctx *c);
bp_status bp_gemm_rop_backward(bp_opctx *c);

bp_status bp_matmul_forward(bp_opctx *c);
bp_status bp_matmul_backward(bp_opctx *c);
bp_status bp_matmul_rop_forward(bp_opctx *c);
bp_status bp_matmul_rop_backward(bp_opctx *c);

bp_status bp_bn_forward(bp_opctx *c);
bp_status bp_bn_backward(bp_opctx *c);
bp_status bp_bn_rop_forward(bp_opctx *c);
bp_status bp_bn_rop_backward(bp_opctx *c);
size_t bp_bn_state(const bp_opctx *c);

/* Elementwise and shape ops (ops_eltwise.c). The linear ones
 * (Add, Flatten, Reshape, Identity) and the piecewise-linear ones (Relu, Clip)
 * share one pattern: R-forward applies the (masked) map to R{x}, R-backward
 * applies backward to R{dy}. */
bp_status bp_add_forward(bp_opctx *c);
bp_status bp_add_backward(bp_opctx *c);
bp_status bp_add_rop_forward(bp_opctx *c);
bp_status bp_add_rop_backward(bp_opctx *c);

bp_status bp_act_forward(bp_opctx *c);   /* Relu, Clip */
bp_status bp_act_backward(bp_opctx *c);
bp_status bp_act_rop_forward(bp_opctx *c);
bp_status bp_act_rop_backward(bp_opctx *c);

bp_status bp_copy_forward(bp_opctx *c);  /* Flatten, Reshape, Identity */
bp_status bp_copy_backward(bp_opctx *c);
bp_status bp_copy_rop_forward(bp_opctx *c);
bp_status bp_copy_rop_backward(bp_opctx *c);

bp_status bp_pool_forward(bp_opctx *c);  /* MaxPool, AveragePool, GlobalAveragePool */
bp_status bp_pool_backward(bp_opctx *c);
bp_status bp_pool_rop_forward(bp_opctx *c);
bp_status bp_pool_rop_backward(bp_opctx *c);
size_t bp_pool_state(const bp_opctx *c);

/* Softmax cross-entropy over rows (loss.c). prob (rows x classes) receives the
 * softmax; grad, when not NULL, (p - onehot) / rows. */
bp_status bp_softmax_ce_rows(const bp_real *z, int rows, int classes, const int *labels,
                             bp_real *prob, bp_real *grad, double *loss, int *correct);
/* rdz = (diag(p) - p p^T) rz / rows, row by row. */
void bp_softmax_ce_rop_rows(const bp_real *prob, const bp_real *rz, int rows, int classes,
                            bp_real *rdz);

/* Numpy broadcasting: strides of an input of dims (nd) aligned to an output of
 * dims (ond), 0 along broadcast axes. */
void bp_bcast_strides(const int64_t *d, int nd, const int64_t *od, int ond, int64_t *strides);

#endif
