/* frun.c — node-by-node float runner (see frun.h). Mirrors the executor's
 * forward loop on top of the op kernels in core/ops.h. */
#include "quant/frun.h"

#include <stdlib.h>
#include <string.h>

#include "core/ops.h"

struct bp_frun {
    const bp_graph *g;
    int max_batch, n;
    int64_t (*dims)[BP_MAX_DIMS]; /* (nvalues) for the current batch */
    int *ndim;
    size_t *numel1;               /* (nvalues) per-sample elements of activations */
    bp_real **act;                /* (nvalues) */
    void **state;                 /* (nnodes) */
    bp_real *scratch;
};

static bp_status resolve(bp_frun *r, int n)
{
    bp_status st = bp_graph_resolve_shapes(r->g, n, r->dims, r->ndim, "frun");
    if (st)
        return st;
    r->n = n;
    return BP_OK;
}

static void ctx_init(bp_frun *r, int i, const bp_real *params, bp_opctx *c)
{
    const bp_graph *g = r->g;
    const bp_node *nd = &g->nodes[i];
    memset(c, 0, sizeof *c);
    c->node = nd;
    c->nin = nd->nin;
    for (int j = 0; j < nd->nin; j++) {
        int v = nd->in[j];
        c->xd[j] = r->dims[v];
        c->xnd[j] = r->ndim[v];
        c->x[j] = g->values[v].kind == BP_VAL_PARAM ? params + g->values[v].offset : r->act[v];
    }
    c->y = r->act[nd->out];
    c->yd = r->dims[nd->out];
    c->ynd = r->ndim[nd->out];
    c->mode = BP_MODE_INFER;
    c->state = r->state[i];
    c->scratch = r->scratch;
}

void bp_frun_free(bp_frun *r)
{
    if (!r)
        return;
    for (int v = 0; r->act && v < r->g->nvalues; v++)
        free(r->act[v]);
    for (int i = 0; r->state && i < r->g->nnodes; i++)
        free(r->state[i]);
    free(r->act);
    free(r->state);
    free(r->dims);
    free(r->ndim);
    free(r->numel1);
    free(r->scratch);
    free(r);
}

bp_status bp_frun_new(const bp_graph *g, int max_batch, bp_frun **out)
{
    *out = NULL;
    if (max_batch < 1)
        return bp_error(BP_ERR_ARG, "frun: batch %d", max_batch);
    bp_frun *r = calloc(1, sizeof *r);
    if (!r)
        return bp_error(BP_ERR_NOMEM, "frun: out of memory");
    r->g = g;
    r->max_batch = max_batch;
    int nv = g->nvalues ? g->nvalues : 1;
    r->dims = calloc(nv, sizeof *r->dims);
    r->ndim = calloc(nv, sizeof *r->ndim);
    r->numel1 = calloc(nv, sizeof *r->numel1);
    r->act = calloc(nv, sizeof *r->act);
    r->state = calloc(g->nnodes ? g->nnodes : 1, sizeof *r->state);
    if (!r->dims || !r->ndim || !r->numel1 || !r->act || !r->state)
        goto nomem;
    bp_status st = resolve(r, max_batch);
    if (st) {
        bp_frun_free(r);
        return st;
    }
    for (int v = 0; v < g->nvalues; v++) {
        if (g->values[v].kind == BP_VAL_PARAM)
            continue;
        size_t n = bp_numel(r->dims[v], r->ndim[v]);
        r->numel1[v] = n / (size_t)max_batch;
        if (!(r->act[v] = calloc(n ? n : 1, sizeof(bp_real))))
            goto nomem;
    }
    size_t scratch = 1;
    for (int i = 0; i < g->nnodes; i++) {
        bp_opctx c;
        ctx_init(r, i, g->params, &c);
        size_t sb = bp_op_state_bytes(&c), sr = bp_op_scratch_reals(&c);
        if (sb && !(r->state[i] = calloc(1, sb)))
            goto nomem;
        if (sr > scratch)
            scratch = sr;
    }
    if (!(r->scratch = malloc(scratch * sizeof(bp_real))))
        goto nomem;
    *out = r;
    return BP_OK;
nomem:
    bp_frun_free(r);
    return bp_error(BP_ERR_NOMEM, "frun: out of memory for batch %d", max_batch);
}

bp_status bp_frun_forward(bp_frun *r, const bp_real *params, const bp_real *x, int n,
                          const bp_frun_hooks *h)
{
    const bp_graph *g = r->g;
    if (n < 1 || n > r->max_batch)
        return bp_error(BP_ERR_ARG, "frun: batch of %d samples (runner takes 1..%d)", n,
                        r->max_batch);
    if (n != r->n) {
        bp_status st = resolve(r, n);
        if (st)
            return st;
    }
    memcpy(r->act[g->input], x, (size_t)n * r->numel1[g->input] * sizeof(bp_real));
    for (int i = 0; i < g->nnodes; i++) {
        bp_opctx c;
        ctx_init(r, i, params, &c);
        const bp_node *nd = &g->nodes[i];
        if (h && h->pre)
            for (int j = 0; j < nd->nin; j++) {
                int v = nd->in[j];
                if (g->values[v].kind == BP_VAL_PARAM)
                    continue;
                const bp_real *alt = h->pre(h->ctx, i, j, c.x[j], (size_t)n * r->numel1[v]);
                if (alt)
                    c.x[j] = alt;
            }
        bp_status st = bp_op_forward(&c);
        if (st)
            return bp_error_wrap(st, "frun: node '%s'", nd->name);
        if (h && h->post)
            h->post(h->ctx, i, r->act[nd->out], (size_t)n * r->numel1[nd->out]);
    }
    return BP_OK;
}

bp_real *bp_frun_act(bp_frun *r, int value)
{
    return value >= 0 && value < r->g->nvalues ? r->act[value] : NULL;
}

size_t bp_frun_numel1(const bp_frun *r, int value)
{
    return value >= 0 && value < r->g->nvalues ? r->numel1[value] : 0;
}
