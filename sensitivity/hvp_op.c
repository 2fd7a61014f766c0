/* The loss Hessian of a model, restricted to its layers' weights, as a
 * bp_linop: v -> H v with H the Hessian of the mean cross-entropy over the
 * calibration set. Each product streams the samples in batches through
 * bp_hvp (Pearlmutter's R-operator in core/exec.c) and sums the batch
 * products weighted by n_batch / N — the loss is a mean, so this is the exact
 * Hessian of the whole set — keeping only one batch in memory.
 *
 * The engine runs a copy of the graph with inference BN folded into the conv
 * before it (bn_fold.h); vectors are mapped in and results out per output
 * channel, v' = s ⊙ v and H v = s ⊙ H'v', so the operator is the Hessian with
 * respect to the original weights. */
#include <stdlib.h>
#include <string.h>

#include "core/exec.h"
#include "sensitivity/bn_fold.h"
#include "sensitivity/calib_batches.h"
#include "sensitivity/sensitivity.h"

/* Directions per pass over the data in apply_many: one forward per batch is
 * shared by this many R-passes. */
#define BP_MODEL_OP_KMAX 8

struct bp_model_op {
    const bp_graph *g;     /* what the engine runs: the folded graph, or the caller's */
    bp_graph *folded;      /* owned when BNs were folded, else NULL */
    double **chscale;      /* (nodes of the caller's graph) BN scale s per folded conv */
    int nfolded;
    const double **lscale; /* (nlayers) s of the layer's output channels, NULL: not folded */
    size_t *woff;          /* (nlayers) offset of the layer's weight in g->params */
    bp_exec *ex;
    bp_cbatch cal;         /* the calibration set, batch by batch */
    bp_real *vfull, *hvfull; /* (BP_MODEL_OP_KMAX, g->nparams) directions and products
                                in the params layout */
    bp_layer *layers;
    bp_block *blocks;
    int nlayers, nnodes_orig;
    size_t dim;            /* operator length: sum of the layers' weights */
    long products;
    double loss;
};

void bp_model_op_free(bp_model_op *m)
{
    if (!m)
        return;
    bp_exec_free(m->ex);
    bp_cbatch_free(&m->cal);
    if (m->chscale)
        bp_bn_fold_scale_free(m->chscale, m->nnodes_orig);
    bp_graph_free(m->folded);
    free(m->lscale);
    free(m->woff);
    free(m->vfull);
    free(m->hvfull);
    free(m->layers);
    free(m->blocks);
    free(m);
}

/* dst += w · (layer blocks of src, in the engine's layout), times s per
 * output channel where a BN was folded: ∇_W = s ⊙ ∇_W', H_W v = s ⊙ H_W' v'. */
static void gather_add(const bp_model_op *m, const bp_real *src, double w, double *dst)
{
    for (int l = 0; l < m->nlayers; l++) {
        const bp_real *a = src + m->woff[l];
        double *b = dst + m->blocks[l].off;
        size_t len = m->blocks[l].len;
        const double *s = m->lscale[l];
        if (!s) {
            for (size_t j = 0; j < len; j++)
                b[j] += w * (double)a[j];
            continue;
        }
        size_t per = len / (size_t)m->layers[l].cout;
        for (int64_t ch = 0; ch < m->layers[l].cout; ch++) {
            double ws = w * s[ch];
            for (size_t e = ch * per; e < (ch + 1) * per; e++)
                b[e] += ws * (double)a[e];
        }
    }
}

/* The engine's direction for operator vector v: layer blocks scattered into
 * the parameter layout (zero elsewhere), v' = s ⊙ v where a BN was folded
 * (W' = s ⊙ W moves by s ⊙ v when W moves by v). */
static void scatter(const bp_model_op *m, const double *v, bp_real *vf)
{
    memset(vf, 0, m->g->nparams * sizeof *vf);
    for (int l = 0; l < m->nlayers; l++) {
        bp_real *dst = vf + m->woff[l];
        const double *src = v + m->blocks[l].off;
        size_t len = m->blocks[l].len;
        const double *s = m->lscale[l];
        size_t per = s ? len / (size_t)m->layers[l].cout : len;
        for (size_t j = 0; j < len; j++)
            dst[j] = (bp_real)(s ? s[j / per] * src[j] : src[j]);
    }
}

typedef struct {
    bp_model_op *m;
    int k;
    double *hv;
} group_ctx;

/* After a batch's forward and loss: the R-passes of the k directions, then
 * the batch products added to hv with weight n_batch / N. */
static bp_status group_batch(void *ctx, int done, int got, const int *y)
{
    group_ctx *c = ctx;
    bp_model_op *m = c->m;
    const bp_graph *g = m->g;
    size_t np = g->nparams;
    bp_status st = BP_OK;
    for (int d = 0; d < c->k && !st; d++) {
        bp_real *hf = m->hvfull + (size_t)d * np;
        memset(hf, 0, np * sizeof *hf);
        st = bp_rop_forward(m->ex, g->params, m->vfull + (size_t)d * np, -1, NULL);
        if (!st)
            st = bp_loss_softmax_ce_rop(m->ex, y);
        if (!st)
            st = bp_rop_backward(m->ex, g->params, m->vfull + (size_t)d * np, hf);
    }
    if (st)
        return st;
    double w = (double)got / m->cal.n;
    for (int d = 0; d < c->k; d++)
        gather_add(m, m->hvfull + (size_t)d * np, w, c->hv + (size_t)d * m->dim);
    return BP_OK;
}

/* k <= BP_MODEL_OP_KMAX products in one pass over the calibration data: per
 * batch one forward and loss, then R-forward, loss R-op and R-backward for
 * each direction (exec.h: the R-passes only read the forward state). */
static bp_status apply_group(bp_model_op *m, int k, const double *v, double *hv)
{
    const bp_graph *g = m->g;
    size_t np = g->nparams;
    for (int d = 0; d < k; d++)
        scatter(m, v + (size_t)d * m->dim, m->vfull + (size_t)d * np);
    memset(hv, 0, (size_t)k * m->dim * sizeof *hv);
    group_ctx c = {m, k, hv};
    bp_status st = bp_cbatch_pass(&m->cal, m->ex, g->params, group_batch, &c, &m->loss);
    if (st)
        return st;
    m->products += k;
    return BP_OK;
}

static bp_status apply_many(void *ctx, int k, const double *v, double *hv)
{
    bp_model_op *m = ctx;
    for (int d = 0; d < k; d += BP_MODEL_OP_KMAX) {
        int kk = k - d < BP_MODEL_OP_KMAX ? k - d : BP_MODEL_OP_KMAX;
        bp_status st = apply_group(m, kk, v + (size_t)d * m->dim, hv + (size_t)d * m->dim);
        if (st)
            return st;
    }
    return BP_OK;
}

static bp_status apply(void *ctx, const double *v, double *hv)
{
    return apply_group(ctx, 1, v, hv);
}

/* The folded graph and the per-layer maps (woff, lscale). Layers stay the
 * caller's graph's (names, shapes, node indices); the folded graph has the
 * same layers in the same order, which is checked. */
static bp_status setup_fold(bp_model_op *m, const bp_graph *g, unsigned flags)
{
    m->lscale = calloc(m->nlayers, sizeof *m->lscale);
    m->woff = malloc(m->nlayers * sizeof *m->woff);
    if (!m->lscale || !m->woff)
        return bp_error(BP_ERR_NOMEM, "hessian operator: out of memory");
    m->g = g;
    for (int l = 0; l < m->nlayers; l++)
        m->woff[l] = g->values[m->layers[l].weight].offset;
    if (flags & BP_MODEL_OP_NO_BN_FOLD)
        return BP_OK;
    bp_graph *fg;
    double **sc;
    int nf;
    bp_status st = bp_bn_fold(g, &fg, &sc, &nf);
    if (st)
        return bp_error_wrap(st, "hessian operator");
    m->folded = fg;
    m->chscale = sc;
    m->nnodes_orig = g->nnodes;
    m->nfolded = nf;
    bp_layer *fl;
    int nfl;
    if ((st = bp_graph_layers(fg, &fl, &nfl)))
        return st;
    int same = nfl == m->nlayers;
    for (int l = 0; same && l < nfl; l++) {
        same = fl[l].params == m->layers[l].params;
        m->woff[l] = fg->values[fl[l].weight].offset;
        m->lscale[l] = sc[m->layers[l].node];
    }
    if (same) {
        /* Only the layer weights are the operator's: biases and BN affine
         * terms need neither gradients nor R-terms (v is zero on them and
         * their Hv is dropped), so the engine skips them. */
        for (int v = 0; v < fg->nvalues; v++)
            if (fg->values[v].kind == BP_VAL_PARAM)
                fg->values[v].trainable = -fg->values[v].trainable; /* kept for the weights */
        for (int l = 0; l < nfl; l++)
            fg->values[fl[l].weight].trainable = -fg->values[fl[l].weight].trainable;
        for (int v = 0; v < fg->nvalues; v++)
            if (fg->values[v].trainable < 0)
                fg->values[v].trainable = 0;
    }
    free(fl);
    if (!same)
        return bp_error(BP_ERR_SHAPE, "hessian operator: folding BN changed the layers");
    m->g = fg;
    return BP_OK;
}

static bp_status op_new(const bp_graph *g, bp_stream *s, const bp_real *x, const int *y, int n,
                        int batch, unsigned flags, bp_model_op **out)
{
    *out = NULL;
    if (g->input < 0 || g->output < 0)
        return bp_error(BP_ERR_ARG, "%s: the graph has no input or output", g->source);
    if (n < 1 || batch < 1)
        return bp_error(BP_ERR_ARG, "hessian operator: need samples >= 1 and batch >= 1 (got %d, %d)",
                        n, batch);
    bp_model_op *m = calloc(1, sizeof *m);
    if (!m)
        return bp_error(BP_ERR_NOMEM, "hessian operator: out of memory");
    m->g = g;
    bp_status st = bp_cbatch_init(&m->cal, "hessian-vector product", s, x, y, n, batch,
                                  g->values[g->input].numel);
    if (st) {
        st = bp_error(BP_ERR_NOMEM, "hessian operator: out of memory");
        goto fail;
    }
    st = bp_graph_layers(g, &m->layers, &m->nlayers);
    if (st)
        goto fail;
    if (m->nlayers == 0) {
        st = bp_error(BP_ERR_UNSUPPORTED, "%s: no Conv, Gemm or MatMul layer with weights",
                      g->source && g->source[0] ? g->source : "model");
        goto fail;
    }
    if ((st = setup_fold(m, g, flags)))
        goto fail;
    g = m->g;
    m->blocks = malloc(m->nlayers * sizeof *m->blocks);
    m->vfull = malloc(BP_MODEL_OP_KMAX * (g->nparams ? g->nparams : 1) * sizeof *m->vfull);
    m->hvfull = malloc(BP_MODEL_OP_KMAX * (g->nparams ? g->nparams : 1) * sizeof *m->hvfull);
    if (!m->blocks || !m->vfull || !m->hvfull) {
        st = bp_error(BP_ERR_NOMEM, "hessian operator: out of memory");
        goto fail;
    }
    for (int l = 0; l < m->nlayers; l++) {
        m->blocks[l].off = m->dim;
        m->blocks[l].len = m->layers[l].params;
        m->dim += m->layers[l].params;
    }
    /* only the weights' products are wanted: no input gradient, and the R-passes
     * of a group share the ordinary backward of the first */
    m->ex = bp_exec_new(g, m->cal.batch, BP_EXEC_GRAD | BP_EXEC_ROP | BP_EXEC_PARAM_GRADS);
    if (!m->ex) {
        st = bp_error_wrap(BP_ERR_NOMEM, "hessian operator");
        goto fail;
    }
    *out = m;
    return BP_OK;
fail:
    bp_model_op_free(m);
    return st;
}

bp_status bp_model_op_new_stream(const bp_graph *g, bp_stream *s, int samples, int batch,
                                 bp_model_op **out)
{
    bp_status st = bp_cbatch_check_stream(g, s, &samples);
    if (st)
        return st;
    return op_new(g, s, NULL, NULL, samples, batch, 0, out);
}

bp_status bp_model_op_new_memory(const bp_graph *g, const bp_real *x, const int *y, int n,
                                 int batch, bp_model_op **out)
{
    return op_new(g, NULL, x, y, n, batch, 0, out);
}

bp_status bp_model_op_new_memory_flags(const bp_graph *g, const bp_real *x, const int *y, int n,
                                       int batch, unsigned flags, bp_model_op **out)
{
    return op_new(g, NULL, x, y, n, batch, flags, out);
}

int bp_model_op_folded(const bp_model_op *m) { return m->nfolded; }

typedef struct {
    bp_model_op *m;
    double *grad;
} grad_ctx;

static bp_status grad_batch(void *ctx, int done, int got, const int *y)
{
    grad_ctx *c = ctx;
    bp_model_op *m = c->m;
    bp_real *gf = m->hvfull;
    memset(gf, 0, m->g->nparams * sizeof *gf);
    bp_status st = bp_backward(m->ex, m->g->params, gf);
    if (!st)
        gather_add(m, gf, (double)got / m->cal.n, c->grad);
    return st;
}

bp_status bp_model_op_gradient(bp_model_op *m, double *grad)
{
    memset(grad, 0, m->dim * sizeof *grad);
    grad_ctx c = {m, grad};
    return bp_cbatch_pass(&m->cal, m->ex, m->g->params, grad_batch, &c, &m->loss);
}

bp_linop bp_model_op_linop(bp_model_op *m)
{
    return (bp_linop){.n = m->dim, .apply = apply, .ctx = m, .apply_many = apply_many};
}

int bp_model_op_layers(const bp_model_op *m, const bp_layer **layers, const bp_block **blocks)
{
    if (layers)
        *layers = m->layers;
    if (blocks)
        *blocks = m->blocks;
    return m->nlayers;
}

int bp_model_op_samples(const bp_model_op *m) { return m->cal.n; }
long bp_model_op_products(const bp_model_op *m) { return m->products; }
double bp_model_op_loss(const bp_model_op *m) { return m->loss; }
