/* exec.h — the float engine: batched forward, backward, and Pearlmutter's
 * R-operator (forward-over-reverse) for exact Hessian-vector products.
 *
 * An executor holds every activation of one batch (and, on request, their
 * gradients and R-values) for a graph; it never owns parameters. Parameters,
 * parameter gradients, probes v and products Hv are flat buffers laid out like
 * g->params (see graph.h).
 *
 * The order of calls for one batch:
 *   bp_forward            activations
 *   bp_loss_softmax_ce    loss; seeds d loss / d logits
 *   bp_backward           adds d loss / d params into gparams
 * and for a Hessian-vector product, after bp_forward:
 *   bp_rop_forward        R{activations} for a direction v (params and/or acts)
 *   bp_loss_softmax_ce_rop seeds R{d loss / d logits}
 *   bp_rop_backward       adds H v into hv (and, with BP_EXEC_GRAD, the
 *                          ordinary gradient is available as well)
 * bp_hvp() does the whole sequence.
 *
 * The loss is the mean over the batch; callers that average over several
 * batches scale by n_batch / n_total.
 */
#ifndef BP_EXEC_H
#define BP_EXEC_H

#include "core/graph.h"

typedef enum {
    BP_MODE_INFER, /* BatchNormalization with running statistics */
    BP_MODE_TRAIN  /* BatchNormalization with batch statistics; updates running ones */
} bp_mode;

enum {
    BP_EXEC_GRAD = 1 << 0, /* keep gradient buffers for backward */
    BP_EXEC_ROP = 1 << 1,  /* keep R-value buffers for Hessian-vector products */
    /* Only parameter gradients and H v are wanted: activation gradients and
     * R-gradients are computed only where they lead to a trainable parameter
     * (never the model input's), so bp_exec_grad / bp_exec_rgrad are not
     * valid; and after a backward or R-backward without gparams, further
     * R-backwards over the same forward reuse the ordinary activation
     * gradients instead of recomputing them (one forward, several
     * directions). Parameter trainable flags are read at bp_exec_new. */
    BP_EXEC_PARAM_GRADS = 1 << 2
};

typedef struct bp_exec bp_exec;

/* An executor for batches of up to max_batch samples. NULL on failure with
 * bp_last_error set. The graph must outlive it. */
bp_exec *bp_exec_new(const bp_graph *g, int max_batch, unsigned flags);
void bp_exec_free(bp_exec *ex); /* accepts NULL */

/* Runs the graph on n samples x (n, per-sample input shape), contiguous.
 * In BP_MODE_TRAIN, BN running statistics in `params` are updated with the
 * node's momentum (that is why params is not const). */
bp_status bp_forward(bp_exec *ex, bp_real *params, const bp_real *x, int n, bp_mode mode);

/* Activation buffer of a value after forward: (n, per-sample shape). For PARAM
 * values, NULL. Writable so callers can inspect or (with care) edit. */
bp_real *bp_exec_act(bp_exec *ex, int value);
/* Gradient and R-value buffers of an activation (NULL when not kept). */
bp_real *bp_exec_grad(bp_exec *ex, int value);
bp_real *bp_exec_ract(bp_exec *ex, int value);
bp_real *bp_exec_rgrad(bp_exec *ex, int value);
/* Resolved dims of a value for the current batch (dims[0] = n for activations). */
const int64_t *bp_exec_dims(const bp_exec *ex, int value, int *ndim);
/* Number of samples in the last forward. */
int bp_exec_batch(const bp_exec *ex);

/* Mean softmax cross-entropy of the graph output (n, classes) against labels.
 * Sets *loss (may be NULL) and *correct (argmax hits; may be NULL), and seeds the
 * output gradient (softmax - onehot) / n when the executor keeps gradients.
 * A label outside [0, classes) is BP_ERR_ARG. A non-finite loss is BP_ERR_NUMERIC. */
bp_status bp_loss_softmax_ce(bp_exec *ex, const int *labels, double *loss, int *correct);

/* Backward from the seeded output gradient: zeroes activation gradients, then
 * ADDS d loss / d params into gparams (laid out like g->params; clear it
 * yourself between steps). gparams may be NULL to get only activation grads. */
bp_status bp_backward(bp_exec *ex, bp_real *params, bp_real *gparams);

/* R-forward: directional derivative of every activation along v. vparams (laid
 * out like g->params, may be NULL = 0) perturbs parameters; vact_value >= 0 and
 * vact (shaped like that activation) perturbs one activation instead/as well
 * (used for Hessians with respect to activations); -1/NULL for none.
 * Needs BP_EXEC_ROP and a preceding bp_forward in BP_MODE_INFER. */
bp_status bp_rop_forward(bp_exec *ex, const bp_real *params, const bp_real *vparams,
                         int vact_value, const bp_real *vact);

/* Seeds R{d loss / d logits} = (diag(p) - p p^T) R{logits} / n. */
bp_status bp_loss_softmax_ce_rop(bp_exec *ex, const int *labels);

/* R-backward: ADDS R{d loss / d params} = H v into hv (may be NULL). Also runs
 * the ordinary backward so gradient buffers are valid. After it,
 * bp_exec_rgrad(ex, value) holds R{d loss / d activation} = (H v) restricted
 * to that activation. */
bp_status bp_rop_backward(bp_exec *ex, const bp_real *params, const bp_real *vparams,
                          bp_real *hv);

/* One Hessian-vector product of the mean cross-entropy over a batch, with
 * respect to the parameters: hv += H v. Forward in inference mode. Optionally
 * adds the gradient into grad (may be NULL) and sets *loss (may be NULL). */
bp_status bp_hvp(bp_exec *ex, bp_real *params, const bp_real *x, const int *labels, int n,
                 const bp_real *v, bp_real *hv, bp_real *grad, double *loss);

#endif
