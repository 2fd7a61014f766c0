/* The float engine's executor: buffers, node loop, loss wiring, and the
 * forward / backward / R-forward / R-backward passes. Kernels live in
 * core/ops_*.c (see core/ops.h for their contract).
 *
 * Buffers are allocated once in bp_exec_new, sized for max_batch: one
 * activation per INPUT/ACT value, and with BP_EXEC_GRAD / BP_EXEC_ROP its
 * gradient, R-value and R-gradient; per-node state (MaxPool argmax, BN
 * statistics); one im2col scratch shared by all convs. Passes allocate nothing.
 *
 * R-values that are known to be zero (before the first perturbed value, or
 * when a node's inputs carry no direction) are tracked with flags, so kernels
 * get NULL and skip the vanishing terms; a per-layer probe thus pays the
 * R-forward only from its layer on.
 */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/exec.h"
#include "core/ops.h"

struct bp_exec {
    const bp_graph *g;
    int max_batch, n;
    unsigned flags;
    int64_t (*dims)[BP_MAX_DIMS]; /* (nvalues) resolved for the current batch */
    int *ndim;
    size_t *cap;                  /* elements allocated per activation */
    bp_real **act, **grad, **ract, **rgrad; /* (nvalues), NULL for PARAM */
    unsigned char *rzero, *rgzero; /* R-value / R-gradient is logically zero */
    unsigned char *vzero;         /* PARAM: the direction v is zero on it */
    unsigned char *gfresh;        /* gradient not yet written this backward (garbage) */
    unsigned char *need;          /* BP_EXEC_PARAM_GRADS: a trainable parameter lies upstream */
    int grads_valid;              /* activation gradients are those of the last forward */
    void **state;                 /* (nnodes) */
    bp_real *scratch;
    bp_real *prob;                /* softmax of the output after the loss */
    int nthreads;                 /* OpenMP threads at creation (sizes the scratch) */
    int fwd_done, loss_done;
    bp_mode mode;
};

static int is_param(const bp_graph *g, int v) { return g->values[v].kind == BP_VAL_PARAM; }

/* Parameters that get gradients and Hv: trainable ones, never BN running stats. */
static int param_trains(const bp_graph *g, const bp_node *n, int j)
{
    if (n->op == BP_OP_BN && j >= 3)
        return 0;
    return g->values[n->in[j]].trainable;
}

/* Shapes of every value for batch n. */
static bp_status resolve(bp_exec *ex, int n)
{
    bp_status st = bp_graph_resolve_shapes(ex->g, n, ex->dims, ex->ndim, "exec");
    if (st)
        return st;
    ex->n = n;
    return BP_OK;
}

static size_t numel_of(const bp_exec *ex, int v) { return bp_numel(ex->dims[v], ex->ndim[v]); }

/* Inputs, output, state and scratch of node i (forward view). */
static void ctx_init(bp_exec *ex, int i, bp_real *params, bp_opctx *c)
{
    const bp_graph *g = ex->g;
    const bp_node *nd = &g->nodes[i];
    memset(c, 0, sizeof *c);
    c->node = nd;
    c->nin = nd->nin;
    for (int j = 0; j < nd->nin; j++) {
        int v = nd->in[j];
        c->xd[j] = ex->dims[v];
        c->xnd[j] = ex->ndim[v];
        if (is_param(g, v)) {
            c->x[j] = params + g->values[v].offset;
            c->pmut[j] = params + g->values[v].offset;
        } else {
            c->x[j] = ex->act[v];
        }
    }
    c->y = ex->act[nd->out];
    c->yd = ex->dims[nd->out];
    c->ynd = ex->ndim[nd->out];
    c->mode = ex->mode;
    c->state = ex->state[i];
    c->scratch = ex->scratch;
    c->nthreads = ex->nthreads;
}

void bp_exec_free(bp_exec *ex)
{
    if (!ex)
        return;
    const bp_graph *g = ex->g;
    for (int v = 0; g && v < g->nvalues; v++) {
        if (ex->act)
            free(ex->act[v]);
        if (ex->grad)
            free(ex->grad[v]);
        if (ex->ract)
            free(ex->ract[v]);
        if (ex->rgrad)
            free(ex->rgrad[v]);
    }
    for (int i = 0; ex->state && i < g->nnodes; i++)
        free(ex->state[i]);
    free(ex->act);
    free(ex->grad);
    free(ex->ract);
    free(ex->rgrad);
    free(ex->rzero);
    free(ex->rgzero);
    free(ex->vzero);
    free(ex->gfresh);
    free(ex->need);
    free(ex->state);
    free(ex->scratch);
    free(ex->prob);
    free(ex->dims);
    free(ex->ndim);
    free(ex->cap);
    free(ex);
}

bp_exec *bp_exec_new(const bp_graph *g, int max_batch, unsigned flags)
{
    if (!g || max_batch < 1) {
        bp_error(BP_ERR_ARG, "exec: need a graph and max_batch >= 1 (got %d)", max_batch);
        return NULL;
    }
    if (g->input < 0 || g->output < 0 || is_param(g, g->output)) {
        bp_error(BP_ERR_ARG, "exec: graph '%s' has no input or no computed output", g->source);
        return NULL;
    }
    if (flags & BP_EXEC_ROP)
        flags |= BP_EXEC_GRAD; /* the R-backward needs the ordinary gradients */
    bp_exec *ex = calloc(1, sizeof *ex);
    if (!ex)
        goto nomem;
    ex->g = g;
    ex->max_batch = max_batch;
    ex->flags = flags;
    ex->nthreads = omp_get_max_threads();
    int nv = g->nvalues;
    ex->dims = calloc(nv, sizeof *ex->dims);
    ex->ndim = calloc(nv, sizeof *ex->ndim);
    ex->cap = calloc(nv, sizeof *ex->cap);
    ex->act = calloc(nv, sizeof *ex->act);
    ex->grad = calloc(nv, sizeof *ex->grad);
    ex->ract = calloc(nv, sizeof *ex->ract);
    ex->rgrad = calloc(nv, sizeof *ex->rgrad);
    ex->rzero = calloc(nv, 1);
    ex->rgzero = calloc(nv, 1);
    ex->vzero = calloc(nv, 1);
    ex->gfresh = calloc(nv, 1);
    ex->need = calloc(nv, 1);
    ex->state = calloc(g->nnodes ? g->nnodes : 1, sizeof *ex->state);
    if (!ex->dims || !ex->ndim || !ex->cap || !ex->act || !ex->grad || !ex->ract || !ex->rgrad ||
        !ex->rzero || !ex->rgzero || !ex->vzero || !ex->gfresh || !ex->need || !ex->state)
        goto nomem;
    for (int i = 0; i < g->nnodes; i++) {
        const bp_node *nd = &g->nodes[i];
        int need = !(flags & BP_EXEC_PARAM_GRADS);
        for (int j = 0; j < nd->nin; j++)
            need |= is_param(g, nd->in[j]) ? param_trains(g, nd, j) : ex->need[nd->in[j]];
        ex->need[nd->out] = (unsigned char)need;
    }
    if (resolve(ex, max_batch)) {
        bp_exec_free(ex);
        return NULL;
    }
    for (int v = 0; v < nv; v++) {
        if (is_param(g, v))
            continue;
        size_t n = numel_of(ex, v);
        ex->cap[v] = n;
        size_t bytes = (n ? n : 1) * sizeof(bp_real);
        if (!(ex->act[v] = calloc(1, bytes)))
            goto nomem;
        if ((flags & BP_EXEC_GRAD) && !(ex->grad[v] = calloc(1, bytes)))
            goto nomem;
        if ((flags & BP_EXEC_ROP) &&
            (!(ex->ract[v] = calloc(1, bytes)) || !(ex->rgrad[v] = calloc(1, bytes))))
            goto nomem;
    }
    size_t scratch = 1;
    for (int i = 0; i < g->nnodes; i++) {
        bp_opctx c;
        ctx_init(ex, i, g->params, &c);
        size_t sb = bp_op_state_bytes(&c), sr = bp_op_scratch_reals(&c);
        if (sb && !(ex->state[i] = calloc(1, sb)))
            goto nomem;
        if (sr > scratch)
            scratch = sr;
    }
    if (!(ex->scratch = malloc(scratch * sizeof(bp_real))))
        goto nomem;
    if (!(ex->prob = calloc(ex->cap[g->output] ? ex->cap[g->output] : 1, sizeof(bp_real))))
        goto nomem;
    return ex;
nomem:
    bp_exec_free(ex);
    bp_error(BP_ERR_NOMEM, "exec: out of memory for batch %d of '%s'", max_batch,
             g->source ? g->source : "");
    return NULL;
}

bp_real *bp_exec_act(bp_exec *ex, int v)
{
    return v >= 0 && v < ex->g->nvalues ? ex->act[v] : NULL;
}

bp_real *bp_exec_grad(bp_exec *ex, int v)
{
    if (v < 0 || v >= ex->g->nvalues || !ex->grad[v])
        return NULL;
    if (ex->gfresh[v]) { /* no node wrote it in the last backward: it is zero */
        memset(ex->grad[v], 0, numel_of(ex, v) * sizeof(bp_real));
        ex->gfresh[v] = 0;
    }
    return ex->grad[v];
}

/* Logically-zero R buffers are cleared when someone looks at them. */
bp_real *bp_exec_ract(bp_exec *ex, int v)
{
    if (v < 0 || v >= ex->g->nvalues || !ex->ract[v])
        return NULL;
    if (ex->rzero[v]) {
        memset(ex->ract[v], 0, numel_of(ex, v) * sizeof(bp_real));
        ex->rzero[v] = 0;
    }
    return ex->ract[v];
}

bp_real *bp_exec_rgrad(bp_exec *ex, int v)
{
    if (v < 0 || v >= ex->g->nvalues || !ex->rgrad[v])
        return NULL;
    if (ex->rgzero[v]) {
        memset(ex->rgrad[v], 0, numel_of(ex, v) * sizeof(bp_real));
        ex->rgzero[v] = 0;
    }
    return ex->rgrad[v];
}

const int64_t *bp_exec_dims(const bp_exec *ex, int v, int *ndim)
{
    if (v < 0 || v >= ex->g->nvalues)
        return NULL;
    if (ndim)
        *ndim = ex->ndim[v];
    return ex->dims[v];
}

int bp_exec_batch(const bp_exec *ex) { return ex->n; }

/* ---- forward -------------------------------------------------------------------------- */

bp_status bp_forward(bp_exec *ex, bp_real *params, const bp_real *x, int n, bp_mode mode)
{
    const bp_graph *g = ex->g;
    if (n < 1 || n > ex->max_batch)
        return bp_error(BP_ERR_ARG, "exec: batch of %d samples (executor takes 1..%d)", n,
                        ex->max_batch);
    ex->fwd_done = ex->loss_done = ex->grads_valid = 0;
    if (n != ex->n) {
        bp_status st = resolve(ex, n);
        if (st)
            return st;
        for (int v = 0; v < g->nvalues; v++)
            if (!is_param(g, v) && numel_of(ex, v) > ex->cap[v])
                return bp_error(BP_ERR_SHAPE, "exec: value '%s' grows at batch %d beyond its size at batch %d",
                                g->values[v].name, n, ex->max_batch);
    }
    ex->mode = mode;
    /* memmove: a caller may pass the executor's own input buffer back */
    memmove(ex->act[g->input], x, numel_of(ex, g->input) * sizeof(bp_real));
    for (int i = 0; i < g->nnodes; i++) {
        bp_opctx c;
        ctx_init(ex, i, params, &c);
        bp_status st = bp_op_forward(&c);
        if (st)
            return bp_error_wrap(st, "forward");
    }
    ex->fwd_done = 1;
    return BP_OK;
}

/* Output as (rows, classes): rows = dims[0]. */
static void out_shape(const bp_exec *ex, int *rows, int *classes)
{
    int o = ex->g->output;
    *rows = ex->ndim[o] > 0 ? (int)ex->dims[o][0] : 1;
    size_t n = numel_of(ex, o);
    *classes = *rows ? (int)(n / *rows) : 0;
}

bp_status bp_loss_softmax_ce(bp_exec *ex, const int *labels, double *loss, int *correct)
{
    if (!ex->fwd_done)
        return bp_error(BP_ERR_ARG, "loss: no forward pass to take the loss of");
    int rows, classes, o = ex->g->output;
    out_shape(ex, &rows, &classes);
    if (classes < 1)
        return bp_error(BP_ERR_SHAPE, "loss: output '%s' has no classes", ex->g->values[o].name);
    ex->grads_valid = 0;
    bp_status st = bp_softmax_ce_rows(ex->act[o], rows, classes, labels, ex->prob, ex->grad[o],
                                      loss, correct);
    if (st)
        return st;
    ex->loss_done = 1;
    return BP_OK;
}

/* ---- backward ------------------------------------------------------------------------- */

/* Clears a buffer with both cores: at batch 256 the activation gradients of
 * a small ResNet are ~200 MB. */
static void zero_buf(bp_real *p, size_t n)
{
    const size_t chunk = (size_t)1 << 16;
    size_t nch = (n + chunk - 1) / chunk;
#pragma omp parallel for schedule(static) if (n >= 4 * chunk)
    for (size_t k = 0; k < nch; k++) {
        size_t a = k * chunk, len = n - a < chunk ? n - a : chunk;
        memset(p + a, 0, len * sizeof *p);
    }
}

/* Whether value v's gradient is computed: always, unless BP_EXEC_PARAM_GRADS
 * and no trainable parameter lies upstream of v (the model input, say). */
static int needed(const bp_exec *ex, int v)
{
    return !(ex->flags & BP_EXEC_PARAM_GRADS) || (v >= 0 && ex->need[v]);
}

/* Points the context's dy and dx at the gradient buffers: activations get
 * their gradient (the first writer of a fresh one is told to write rather
 * than add), trainable parameters their slice of gparams. */
static void set_grads(bp_exec *ex, const bp_node *nd, bp_opctx *c, bp_real *gparams)
{
    const bp_graph *g = ex->g;
    if (ex->gfresh[nd->out]) { /* an output nothing consumes: its gradient is zero */
        zero_buf(ex->grad[nd->out], numel_of(ex, nd->out));
        ex->gfresh[nd->out] = 0;
    }
    c->dy = ex->grad[nd->out];
    for (int j = 0; j < nd->nin; j++) {
        int v = nd->in[j];
        if (!is_param(g, v)) {
            if (!needed(ex, v))
                continue;
            c->dx[j] = ex->grad[v];
            if (ex->gfresh[v]) {
                /* first writer: writes instead of adding, unless the value
                 * also sits in another slot of this node */
                int twice = 0;
                for (int k = 0; k < nd->nin; k++)
                    twice |= k != j && nd->in[k] == v;
                if (twice)
                    zero_buf(ex->grad[v], numel_of(ex, v));
                else
                    c->dx_set[j] = 1;
                ex->gfresh[v] = 0;
            }
        } else if (gparams && param_trains(g, nd, j)) {
            c->dx[j] = gparams + g->values[v].offset;
        }
    }
}

/* No zeroing pass before a backward: every activation gradient but the
 * seeded output's starts "fresh" and its first writer writes it. */
static void fresh_grads(bp_exec *ex)
{
    memset(ex->gfresh, 1, ex->g->nvalues);
    ex->gfresh[ex->g->output] = 0;
}

/* Ordinary backward of node i into activation grads and (if gparams) params. */
static bp_status node_backward(bp_exec *ex, int i, bp_real *params, bp_real *gparams)
{
    bp_opctx c;
    ctx_init(ex, i, params, &c);
    set_grads(ex, &ex->g->nodes[i], &c, gparams);
    bp_status st = bp_op_backward(&c);
    return st ? bp_error_wrap(st, "backward") : BP_OK;
}

bp_status bp_backward(bp_exec *ex, bp_real *params, bp_real *gparams)
{
    if (!(ex->flags & BP_EXEC_GRAD))
        return bp_error(BP_ERR_ARG, "backward: executor made without BP_EXEC_GRAD");
    if (!ex->loss_done)
        return bp_error(BP_ERR_ARG, "backward: call bp_loss_softmax_ce after bp_forward first");
    fresh_grads(ex);
    for (int i = ex->g->nnodes - 1; i >= 0; i--) {
        if (!needed(ex, ex->g->nodes[i].out))
            continue; /* nothing trainable before it */
        bp_status st = node_backward(ex, i, params, gparams);
        if (st)
            return st;
    }
    ex->grads_valid = 1;
    return BP_OK;
}

/* ---- R-op ------------------------------------------------------------------------------ */

/* Marks the parameters on which v is exactly zero, so that a probe on one
 * layer skips the R-terms of all others (one pass over v, cheap next to an HVP). */
static void scan_direction(bp_exec *ex, const bp_real *vparams)
{
    const bp_graph *g = ex->g;
    for (int v = 0; v < g->nvalues; v++) {
        const bp_value *val = &g->values[v];
        if (val->kind != BP_VAL_PARAM)
            continue;
        int zero = 1;
        for (size_t i = 0; vparams && zero && i < val->numel; i++)
            zero = vparams[val->offset + i] == 0;
        ex->vzero[v] = (unsigned char)zero;
    }
}

/* Direction of input j of a node: R-value of an activation, v of a trainable
 * parameter; NULL when zero. */
static const bp_real *rx_of(const bp_exec *ex, const bp_node *nd, int j, const bp_real *vparams)
{
    const bp_graph *g = ex->g;
    int v = nd->in[j];
    if (is_param(g, v))
        return vparams && param_trains(g, nd, j) && !ex->vzero[v] ? vparams + g->values[v].offset
                                                                   : NULL;
    return ex->rzero[v] ? NULL : ex->ract[v];
}

static void add_into(bp_real *dst, const bp_real *src, size_t n, int overwrite)
{
    if (overwrite)
        memcpy(dst, src, n * sizeof *dst);
    else
        for (size_t i = 0; i < n; i++)
            dst[i] += src[i];
}

bp_status bp_rop_forward(bp_exec *ex, const bp_real *params, const bp_real *vparams,
                         int vact_value, const bp_real *vact)
{
    const bp_graph *g = ex->g;
    if (!(ex->flags & BP_EXEC_ROP))
        return bp_error(BP_ERR_ARG, "R-forward: executor made without BP_EXEC_ROP");
    if (!ex->fwd_done || ex->mode != BP_MODE_INFER)
        return bp_error(BP_ERR_ARG, "R-forward: needs a preceding forward in inference mode");
    if (vact_value >= g->nvalues || (vact_value >= 0 && (is_param(g, vact_value) || !vact)))
        return bp_error(BP_ERR_ARG, "R-forward: value %d cannot carry an activation direction",
                        vact_value);
    memset(ex->rzero, 1, g->nvalues);
    scan_direction(ex, vparams);
    if (vact_value == g->input) {
        add_into(ex->ract[g->input], vact, numel_of(ex, g->input), 1);
        ex->rzero[g->input] = 0;
    }
    for (int i = 0; i < g->nnodes; i++) {
        const bp_node *nd = &g->nodes[i];
        bp_opctx c;
        ctx_init(ex, i, (bp_real *)params, &c);
        int any = 0;
        for (int j = 0; j < nd->nin; j++)
            any |= (c.rx[j] = rx_of(ex, nd, j, vparams)) != NULL;
        if (any) {
            c.ry = ex->ract[nd->out];
            bp_status st = bp_op_rop_forward(&c);
            if (st)
                return bp_error_wrap(st, "R-forward");
        }
        if (nd->out == vact_value) {
            add_into(ex->ract[nd->out], vact, numel_of(ex, nd->out), !any);
            any = 1;
        }
        ex->rzero[nd->out] = !any;
    }
    return BP_OK;
}

bp_status bp_loss_softmax_ce_rop(bp_exec *ex, const int *labels)
{
    (void)labels; /* the Hessian of softmax cross-entropy does not depend on them */
    if (!ex->loss_done)
        return bp_error(BP_ERR_ARG, "loss R-op: call bp_loss_softmax_ce first");
    int o = ex->g->output, rows, classes;
    out_shape(ex, &rows, &classes);
    if (ex->rzero[o]) {
        ex->rgzero[o] = 1;
        return BP_OK;
    }
    bp_softmax_ce_rop_rows(ex->prob, ex->ract[o], rows, classes, ex->rgrad[o]);
    ex->rgzero[o] = 0;
    return BP_OK;
}

static bp_status rop_backward(bp_exec *ex, const bp_real *params, const bp_real *vparams,
                              bp_real *hv, bp_real *gparams)
{
    const bp_graph *g = ex->g;
    if (!(ex->flags & BP_EXEC_ROP))
        return bp_error(BP_ERR_ARG, "R-backward: executor made without BP_EXEC_ROP");
    if (!ex->loss_done || ex->mode != BP_MODE_INFER)
        return bp_error(BP_ERR_ARG, "R-backward: needs forward (inference mode), loss and R-forward first");
    /* With BP_EXEC_PARAM_GRADS the activation gradients of an earlier
     * backward over this forward are still valid (R-passes never write them):
     * only the R-terms are computed, unless the caller wants the gradient. */
    int reuse = (ex->flags & BP_EXEC_PARAM_GRADS) && ex->grads_valid && !gparams;
    if (!reuse)
        fresh_grads(ex);
    for (int v = 0; v < g->nvalues; v++)
        if (v != g->output)
            ex->rgzero[v] = 1;
    scan_direction(ex, vparams); /* the caller may pass another buffer than to R-forward */
    for (int i = g->nnodes - 1; i >= 0; i--) {
        const bp_node *nd = &g->nodes[i];
        if (!needed(ex, nd->out))
            continue; /* nothing trainable before it */
        bp_opctx c;
        ctx_init(ex, i, (bp_real *)params, &c);
        if (reuse)
            c.dy = ex->grad[nd->out];
        else
            set_grads(ex, nd, &c, gparams);
        c.rdy = ex->rgzero[nd->out] ? NULL : ex->rgrad[nd->out];
        int any = c.rdy != NULL;
        for (int j = 0; j < nd->nin; j++)
            any |= (c.rx[j] = rx_of(ex, nd, j, vparams)) != NULL;
        bp_status st = BP_OK;
        if (!any) {
            if (!reuse)
                st = bp_op_backward(&c); /* nothing moves along v here */
        } else {
            for (int j = 0; j < nd->nin; j++) {
                int v = nd->in[j];
                if (!is_param(g, v)) {
                    if (!needed(ex, v))
                        continue;
                    if (ex->rgzero[v]) {
                        /* first writer writes (as for gradients), unless the
                         * value also sits in another slot of this node */
                        int twice = 0;
                        for (int k = 0; k < nd->nin; k++)
                            twice |= k != j && nd->in[k] == v;
                        if (twice)
                            zero_buf(ex->rgrad[v], numel_of(ex, v));
                        else
                            c.rdx_set[j] = 1;
                        ex->rgzero[v] = 0;
                    }
                    c.rdx[j] = ex->rgrad[v];
                } else if (hv && param_trains(g, nd, j)) {
                    c.rdx[j] = hv + g->values[v].offset;
                }
            }
            st = bp_op_bwd_rop(&c);
        }
        if (st)
            return bp_error_wrap(st, "R-backward");
    }
    ex->grads_valid = 1;
    return BP_OK;
}

bp_status bp_rop_backward(bp_exec *ex, const bp_real *params, const bp_real *vparams, bp_real *hv)
{
    return rop_backward(ex, params, vparams, hv, NULL);
}

bp_status bp_hvp(bp_exec *ex, bp_real *params, const bp_real *x, const int *labels, int n,
                 const bp_real *v, bp_real *hv, bp_real *grad, double *loss)
{
    bp_status st = bp_forward(ex, params, x, n, BP_MODE_INFER);
    if (!st)
        st = bp_loss_softmax_ce(ex, labels, loss, NULL);
    if (!st)
        st = bp_rop_forward(ex, params, v, -1, NULL);
    if (!st)
        st = bp_loss_softmax_ce_rop(ex, labels);
    if (!st)
        st = rop_backward(ex, params, v, hv, grad);
    return st ? bp_error_wrap(st, "HVP") : BP_OK;
}
