/* SGD with momentum and decoupled-from-BN weight decay (see train.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "train/train.h"

typedef struct {
    size_t off, n;
    int decay;
} seg;

struct bp_sgd {
    double momentum, wd;
    size_t nparams;
    bp_real *buf;   /* (nparams) momentum */
    int nseg;
    seg *segs;      /* trainable parameter ranges */
};

/* A PARAM is a "weight" (decayed) when some Conv/Gemm/MatMul reads it as its
 * second operand; biases, BN scale/shift and the rest are not decayed. */
static int is_weight(const bp_graph *g, int v)
{
    for (int i = 0; i < g->nnodes; i++) {
        const bp_node *n = &g->nodes[i];
        if ((n->op == BP_OP_CONV || n->op == BP_OP_GEMM || n->op == BP_OP_MATMUL) && n->nin > 1 &&
            n->in[1] == v)
            return 1;
    }
    return 0;
}

bp_status bp_sgd_new(const bp_graph *g, double momentum, double weight_decay, bp_sgd **out)
{
    *out = NULL;
    if (!(momentum >= 0 && momentum < 1) || !(weight_decay >= 0))
        return bp_error(BP_ERR_ARG, "SGD: momentum %g must be in [0, 1) and weight decay %g >= 0",
                        momentum, weight_decay);
    bp_sgd *s = calloc(1, sizeof *s);
    if (!s)
        return bp_error(BP_ERR_NOMEM, "out of memory for the optimizer");
    s->momentum = momentum;
    s->wd = weight_decay;
    s->nparams = g->nparams;
    s->buf = calloc(g->nparams ? g->nparams : 1, sizeof *s->buf);
    s->segs = calloc(g->nvalues ? (size_t)g->nvalues : 1, sizeof *s->segs);
    if (!s->buf || !s->segs) {
        bp_sgd_free(s);
        return bp_error(BP_ERR_NOMEM, "out of memory for the optimizer");
    }
    for (int v = 0; v < g->nvalues; v++) {
        const bp_value *val = &g->values[v];
        if (val->kind != BP_VAL_PARAM || !val->trainable || !val->numel)
            continue;
        s->segs[s->nseg++] = (seg){val->offset, val->numel, is_weight(g, v)};
    }
    *out = s;
    return BP_OK;
}

void bp_sgd_free(bp_sgd *s)
{
    if (!s)
        return;
    free(s->buf);
    free(s->segs);
    free(s);
}

void bp_sgd_step(bp_sgd *s, bp_real *params, const bp_real *grad, double lr)
{
    const bp_real mu = (bp_real)s->momentum, eta = (bp_real)lr;
    for (int k = 0; k < s->nseg; k++) {
        const seg *sg = &s->segs[k];
        const bp_real wd = sg->decay ? (bp_real)s->wd : 0;
        bp_real *w = params + sg->off, *b = s->buf + sg->off;
        const bp_real *gr = grad + sg->off;
        for (size_t i = 0; i < sg->n; i++) {
            b[i] = mu * b[i] + gr[i] + wd * w[i];
            w[i] -= eta * b[i];
        }
    }
}

static const seg *find(const bp_sgd *s, size_t i)
{
    for (int k = 0; k < s->nseg; k++)
        if (i >= s->segs[k].off && i < s->segs[k].off + s->segs[k].n)
            return &s->segs[k];
    return NULL;
}

int bp_sgd_decays(const bp_sgd *s, size_t i)
{
    const seg *sg = find(s, i);
    return sg && sg->decay;
}

int bp_sgd_updates(const bp_sgd *s, size_t i)
{
    return find(s, i) != NULL;
}

double bp_lr_at(double lr, long step, long total, long warmup)
{
    if (warmup > total)
        warmup = total;
    if (step < warmup)
        return lr * (double)(step + 1) / (double)warmup;
    if (total <= warmup)
        return lr;
    double t = (double)(step - warmup) / (double)(total - warmup);
    return lr * 0.5 * (1.0 + cos(M_PI * t));
}
