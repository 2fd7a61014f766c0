/* fakequant.c — float simulation of a quantized model ("fake quant"): the
 * folded float graph run node by node by the float engine's kernels
 * (quant/frun.h) with dequantized weights and biases (the same integer codes
 * the integer engine uses, times their scales), and every tensor the integer
 * engine stores quantized-then-dequantized at the same scale, bits and clamp.
 *
 * Two rounding models at the requantization points (layer outputs, residual
 * Add, a layer's lower-bit view of its input):
 *  - dyadic (default): the float result is brought back to its integer
 *    accumulator (y / (s_in·s_w[c]), rounded) and requantized with the same
 *    two-rounding rule the integer engine uses (bp_requant: gemmlowp's
 *    doubling high multiply, then a rounding shift); the Add uses TFLite's
 *    left-shift-20 scheme. This is the simulation the integer engine is
 *    checked against: what remains different is the arithmetic (float engine
 *    convs and GEMMs on dequantized values vs. packed integer kernels).
 *  - ideal (bp_fq_set_ideal): one rounding, x -> s · clamp(round(x / s)).
 *    The dyadic rule's double rounding differs from this by one step on about
 *    2^-r of the values (r the right shift, ~7 for typical scales), and those
 *    flips grow through later layers, so the integer engine matches the ideal
 *    simulation in accuracy but not value for value (docs/QUANT.md).
 * Round is half away from zero in both. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "quant/frun.h"
#include "quant/qmodel.h"

struct bp_fq {
    const bp_qmodel *m;
    bp_frun *run;
    int *layer_of;   /* (nnodes) layer index or -1 */
    bp_real *view;   /* a layer's quantized view of its input */
    bp_real *xin;    /* quantized-dequantized model input */
    int *node_op;    /* (nnodes) op computing a node's output, or -1 */
    int ideal;
    int max_batch;
};

void bp_fq_set_ideal(bp_fq *f, int ideal) { f->ideal = ideal; }

static int32_t clampi(int64_t v, int32_t lo, int32_t hi) { return v < lo ? lo : v > hi ? hi : (int32_t)v; }

/* Requantizes a layer's float output as the integer engine would. */
static void layer_dyadic(const bp_fq *f, const bp_qop *op, bp_real *y, size_t numel)
{
    const bp_qmodel *m = f->m;
    const bp_qtensor *ti = &m->t[op->in[0]], *to = &m->t[op->out];
    const double *sw = m->wscale[op->layer];
    size_t C, inner;
    if (op->kind == BP_QOP_CONV) {
        C = (size_t)op->cp.cout;
        inner = to->numel1 / C;
    } else {
        C = (size_t)op->gp.m;
        inner = 1;
    }
    for (size_t i = 0; i < numel; i++) {
        size_t c = (i / inner) % C;
        double acc_scale = ti->scale * sw[c];
        double a = round((double)y[i] / acc_scale);
        a = a > 2147483647.0 ? 2147483647.0 : a < -2147483648.0 ? -2147483648.0 : a;
        int32_t q = clampi(bp_requant((int32_t)a, op->qm[c]), op->lo, op->hi);
        y[i] = (bp_real)(q * to->scale);
    }
}

static int32_t on_grid(double x, double s) { return (int32_t)round(x / s); }

static void add_dyadic(bp_fq *f, const bp_qop *op, bp_real *y, size_t numel)
{
    const bp_qmodel *m = f->m;
    const bp_qtensor *ta = &m->t[op->in[0]], *tb = &m->t[op->in[1]], *to = &m->t[op->out];
    const bp_real *a = bp_frun_act(f->run, ta->value), *b = bp_frun_act(f->run, tb->value);
    for (size_t i = 0; i < numel; i++) {
        int32_t qa = on_grid(a[i], ta->scale) * (1 << op->left_shift);
        int32_t qb = on_grid(b[i], tb->scale) * (1 << op->left_shift);
        int32_t sum = bp_requant(qa, op->qa) + bp_requant(qb, op->qb);
        y[i] = (bp_real)(clampi(bp_requant(sum, op->qo), op->lo, op->hi) * to->scale);
    }
}

static void qdq(const bp_qtensor *t, const bp_real *x, bp_real *y, size_t n)
{
    const double s = t->scale, lo = t->qmin, hi = t->qmax;
    for (size_t i = 0; i < n; i++) {
        double q = round((double)x[i] / s);
        q = q < lo ? lo : q > hi ? hi : q;
        y[i] = (bp_real)(q * s);
    }
}

static const bp_real *pre(void *ctx, int node, int j, const bp_real *x, size_t numel)
{
    bp_fq *f = ctx;
    const bp_qmodel *m = f->m;
    int l = f->layer_of[node];
    if (l < 0 || j != 0)
        return NULL;
    const bp_qtensor *v = &m->t[m->view_t[l]];
    if (v->value >= 0) /* reads the shared tensor, already quantized */
        return NULL;
    int k = f->node_op[node] - 1; /* the view's REQUANT op comes just before */
    if (f->ideal || k < 0 || m->ops[k].kind != BP_QOP_REQUANT) {
        qdq(v, x, f->view, numel);
        return f->view;
    }
    const bp_qop *rq = &m->ops[k];
    const double st = m->t[rq->in[0]].scale;
    for (size_t i = 0; i < numel; i++)
        f->view[i] = (bp_real)(clampi(bp_requant(on_grid(x[i], st), rq->qa), rq->lo, rq->hi) * v->scale);
    return f->view;
}

static void post(void *ctx, int node, bp_real *y, size_t numel)
{
    bp_fq *f = ctx;
    const bp_qmodel *m = f->m;
    int v = m->g->nodes[node].out, t = m->value_t[v];
    int k = f->node_op[node];
    if (!f->ideal && k >= 0 && (m->ops[k].kind == BP_QOP_CONV || m->ops[k].kind == BP_QOP_GEMM)) {
        layer_dyadic(f, &m->ops[k], y, numel); /* fused clamp included */
        return;
    }
    if (!f->ideal && k >= 0 && m->ops[k].kind == BP_QOP_ADD) {
        add_dyadic(f, &m->ops[k], y, numel);
        return;
    }
    if (t < 0 || m->t[t].value != v) /* output of a producer whose clamp is fused */
        return;
    qdq(&m->t[t], y, y, numel);
}

void bp_fq_free(bp_fq *f)
{
    if (!f)
        return;
    bp_frun_free(f->run);
    free(f->layer_of);
    free(f->view);
    free(f->xin);
    free(f->node_op);
    free(f);
}

bp_status bp_fq_new(const bp_qmodel *m, int max_batch, bp_fq **out)
{
    *out = NULL;
    bp_fq *f = calloc(1, sizeof *f);
    if (!f)
        return bp_error(BP_ERR_NOMEM, "fake quant: out of memory");
    f->m = m;
    f->max_batch = max_batch;
    bp_status st = bp_frun_new(m->g, max_batch, &f->run);
    if (st) {
        bp_fq_free(f);
        return st;
    }
    size_t big = 1;
    for (int t = 0; t < m->nt; t++)
        if (m->t[t].numel1 > big)
            big = m->t[t].numel1;
    f->layer_of = malloc(sizeof(int) * (m->g->nnodes ? m->g->nnodes : 1));
    f->view = malloc(sizeof(bp_real) * big * max_batch);
    f->xin = malloc(sizeof(bp_real) * m->t[m->input_t].numel1 * max_batch);
    f->node_op = malloc(sizeof(int) * (m->g->nnodes ? m->g->nnodes : 1));
    if (!f->layer_of || !f->view || !f->xin || !f->node_op) {
        bp_fq_free(f);
        return bp_error(BP_ERR_NOMEM, "fake quant: out of memory");
    }
    for (int i = 0; i < m->g->nnodes; i++)
        f->layer_of[i] = -1;
    for (int l = 0; l < m->nlayers; l++)
        f->layer_of[m->layers[l].node] = l;
    for (int i = 0; i < m->g->nnodes; i++)
        f->node_op[i] = -1;
    for (int k = 0; k < m->nops; k++)
        if (m->ops[k].node >= 0)
            f->node_op[m->ops[k].node] = k;
    *out = f;
    return BP_OK;
}

bp_status bp_fq_forward(bp_fq *f, const bp_real *x, int n, bp_real *logits)
{
    const bp_qmodel *m = f->m;
    if (n < 1 || n > f->max_batch)
        return bp_error(BP_ERR_ARG, "fake quant: batch of %d (1..%d)", n, f->max_batch);
    const bp_qtensor *ti = &m->t[m->input_t];
    qdq(ti, x, f->xin, (size_t)n * ti->numel1);
    bp_frun_hooks h = {f, pre, post};
    bp_status st = bp_frun_forward(f->run, m->fq_params, f->xin, n, &h);
    if (st)
        return st;
    memcpy(logits, bp_frun_act(f->run, m->g->output),
           sizeof(bp_real) * (size_t)n * m->t[m->output_t].numel1);
    return BP_OK;
}

const bp_real *bp_fq_act(bp_fq *f, int value) { return bp_frun_act(f->run, value); }
