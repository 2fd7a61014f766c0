/* qmodel.c — building a quantized model from a float graph and per-layer bits
 * (see qmodel.h for the rules). Floating point is fine here: all of it runs
 * before the integer path. */
#include "quant/qmodel.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quant/fold_bn.h"
#include "quant/frun.h"

#define CALIB_BATCH 64
#define ADD_LEFT_SHIFT 20

bp_qopts bp_qopts_default(void)
{
    bp_qopts o = {BP_CALIB_MSE, 99.99, 0, BP_CLIP_MAXABS, 16};
    return o;
}

void bp_qmodel_free(bp_qmodel *m)
{
    if (!m)
        return;
    for (int i = 0; i < m->nops; i++) {
        free(m->ops[i].wpanel);
        free(m->ops[i].bias);
        free(m->ops[i].qm);
    }
    for (int l = 0; l < m->nlayers; l++) {
        if (m->wscale)
            free(m->wscale[l]);
        if (m->wcodes)
            free(m->wcodes[l]);
    }
    free(m->wscale);
    free(m->wcodes);
    free(m->ops);
    free(m->t);
    free(m->layers);
    free(m->wbits);
    free(m->abits);
    free(m->value_t);
    free(m->fused);
    free(m->view_t);
    free(m->fq_params);
    bp_graph_free(m->g);
    free(m);
}

static int is_layer_op(bp_op op) { return op == BP_OP_CONV || op == BP_OP_GEMM || op == BP_OP_MATMUL; }
static int keeps_scale(bp_op op)
{
    return op == BP_OP_MAXPOOL || op == BP_OP_AVGPOOL || op == BP_OP_GAP || op == BP_OP_FLATTEN ||
           op == BP_OP_RESHAPE || op == BP_OP_IDENTITY || op == BP_OP_RELU || op == BP_OP_CLIP;
}
/* Lower bound of a Relu/Clip node (Relu: 0). */
static double clamp_lo(const bp_node *n) { return n->op == BP_OP_RELU ? 0.0 : (double)n->a.clip_min; }
static double clamp_hi(const bp_node *n) { return n->op == BP_OP_RELU ? INFINITY : (double)n->a.clip_max; }

static double pow2_up(double s) { return ldexp(1.0, (int)ceil(log2(s))); }

static bp_status qmul_of(double real, int pow2, bp_qmul *q, const char *what)
{
    bp_status st = pow2 ? bp_quantize_multiplier_pow2(real, q) : bp_quantize_multiplier(real, q);
    return st ? bp_error_wrap(st, "%s", what) : BP_OK;
}

/* Clamp range of a tensor after an optional Relu/Clip node (NULL: none). */
static void clamp_range(const bp_qtensor *t, const bp_node *c, int32_t *lo, int32_t *hi)
{
    *lo = t->qmin;
    *hi = t->qmax;
    if (!c)
        return;
    double l = clamp_lo(c), h = clamp_hi(c);
    if (isfinite(l) && round(l / t->scale) > *lo)
        *lo = (int32_t)fmin(round(l / t->scale), (double)t->qmax);
    if (isfinite(h) && round(h / t->scale) < *hi)
        *hi = (int32_t)fmax(round(h / t->scale), (double)t->qmin);
}

static int add_tensor(bp_qmodel *m, int *cap, const bp_qtensor *t)
{
    if (m->nt == *cap) {
        int nc = *cap ? 2 * *cap : 32;
        bp_qtensor *nt = realloc(m->t, sizeof *nt * nc);
        if (!nt)
            return -1;
        m->t = nt;
        *cap = nc;
    }
    m->t[m->nt] = *t;
    return m->nt++;
}

static bp_qop *add_op(bp_qmodel *m, int *cap)
{
    if (m->nops == *cap) {
        int nc = *cap ? 2 * *cap : 32;
        bp_qop *no = realloc(m->ops, sizeof *no * nc);
        if (!no)
            return NULL;
        m->ops = no;
        *cap = nc;
    }
    bp_qop *op = &m->ops[m->nops++];
    memset(op, 0, sizeof *op);
    op->layer = -1;
    op->node = -1;
    return op;
}

/* Sets qmin/qmax/type of a tensor from bits and sign. */
static void set_range(bp_qtensor *t)
{
    if (t->is_signed) {
        t->qmin = -(1 << (t->bits - 1));
        t->qmax = (1 << (t->bits - 1)) - 1;
    } else {
        t->qmin = 0;
        t->qmax = (1 << t->bits) - 1;
    }
    if (t->bits > 8)
        t->type = BP_QT_S32;
    else
        t->type = t->is_signed ? BP_QT_S8 : BP_QT_U8;
}

/* Calibration: min/max then histograms of every root tensor's value. */
static bp_status calibrate(bp_qmodel *m, const bp_real *x, int n, bp_calib_stats *stats)
{
    const bp_graph *G = m->g;
    bp_frun *r = NULL;
    int nb = n < CALIB_BATCH ? n : CALIB_BATCH;
    bp_status st = bp_frun_new(G, nb, &r);
    if (st)
        return st;
    size_t in1 = G->values[G->input].numel;
    for (int t = 0; t < m->nt; t++)
        bp_calib_reset(&stats[t]);
    for (int pass = 0; pass < 2 && !st; pass++)
        for (int s0 = 0; s0 < n && !st; s0 += nb) {
            int k = n - s0 < nb ? n - s0 : nb;
            st = bp_frun_forward(r, G->params, x + (size_t)s0 * in1, k, NULL);
            for (int t = 0; t < m->nt && !st; t++) {
                if (m->t[t].root != t || m->t[t].value < 0)
                    continue;
                const bp_real *a = bp_frun_act(r, m->t[t].value);
                size_t cnt = (size_t)k * bp_frun_numel1(r, m->t[t].value);
                if (pass == 0)
                    bp_calib_minmax(&stats[t], a, cnt);
                else
                    bp_calib_hist(&stats[t], a, cnt);
            }
        }
    bp_frun_free(r);
    return st;
}

static bp_status quantize_layer(bp_qmodel *m, int l, bp_qop *op, const bp_qtensor *tin,
                                const bp_qtensor *tout, const bp_node *clampn)
{
    const bp_graph *G = m->g;
    const bp_layer *L = &m->layers[l];
    const bp_node *nd = &G->nodes[L->node];
    const int bits = m->wbits[l], pow2 = m->opts.pow2;
    bp_wq_shape s;
    bp_status st = bp_wq_shape_of_layer(G, L, &s);
    if (st)
        return st;
    const size_t numel = G->values[L->weight].numel;
    const int64_t M = s.nchan;
    double *sc = malloc(sizeof(double) * M);
    int32_t *codes = malloc(sizeof(int32_t) * numel);
    int8_t *wmk = malloc(numel);
    op->bias = malloc(sizeof(int32_t) * M);
    op->qm = malloc(sizeof(bp_qmul) * M);
    if (!sc || !codes || !wmk || !op->bias || !op->qm) {
        free(sc), free(codes), free(wmk);
        return bp_error(BP_ERR_NOMEM, "quantizing layer '%s': out of memory", L->name);
    }
    m->wscale[l] = sc;
    m->wcodes[l] = codes;
    const bp_real *w = G->params + G->values[L->weight].offset;
    st = bp_wquant_tensor(w, s, 1, bits, m->opts.wclip, NULL, sc, codes, NULL);
    if (st) {
        free(wmk);
        return bp_error_wrap(st, "layer '%s'", L->name);
    }
    const double qlo = -(1 << (bits - 1)), qhi = (1 << (bits - 1)) - 1;
    for (int64_t c = 0; c < M; c++) {
        int zero = !(sc[c] > 0);
        if (zero) /* all-zero channel: codes are 0, any scale works; pick M = 1/2 */
            sc[c] = tout->scale / (2 * tin->scale);
        if (pow2)
            sc[c] = pow2_up(sc[c]);
        if (pow2 && !zero) /* codes at the rounded scale */
            for (int64_t o = 0; o < s.outer; o++)
                for (int64_t i = 0; i < s.inner; i++) {
                    int64_t idx = (o * s.nchan + c) * s.inner + i;
                    codes[idx] = (int32_t)fmin(fmax(round((double)w[idx] / sc[c]), qlo), qhi);
                }
    }
    /* codes as (M, K) rows for the panel */
    const int64_t K = (int64_t)numel / M;
    for (int64_t o = 0; o < s.outer; o++)
        for (int64_t c = 0; c < M; c++)
            for (int64_t i = 0; i < s.inner; i++) {
                int64_t idx = (o * s.nchan + c) * s.inner + i;
                int64_t k = s.inner == 1 ? o : i; /* (K, M) layout: k = o; (M, K): k = i */
                wmk[c * K + k] = (int8_t)codes[idx];
            }
    /* bias: folded conv bias, or Gemm's C (times beta) */
    const bp_real *b = NULL;
    double bscale = 1.0;
    if (L->bias >= 0) {
        b = G->params + G->values[L->bias].offset;
        if (L->op == BP_OP_GEMM)
            bscale = nd->a.beta;
        if ((int64_t)G->values[L->bias].numel != M) {
            free(wmk);
            return bp_error(BP_ERR_UNSUPPORTED, "layer '%s': bias of %zu elements for %lld outputs",
                            L->name, G->values[L->bias].numel, (long long)M);
        }
    }
    for (int64_t c = 0; c < M; c++) {
        double acc_scale = tin->scale * sc[c];
        double bi = b ? round(bscale * (double)b[c] / acc_scale) : 0.0;
        op->bias[c] = (int32_t)fmin(fmax(bi, -2147483647.0), 2147483647.0);
        char what[200];
        snprintf(what, sizeof what, "layer '%s' channel %lld", L->name, (long long)c);
        st = qmul_of(acc_scale / tout->scale, pow2, &op->qm[c], what);
        if (st) {
            free(wmk);
            return st;
        }
    }
    int groups = L->op == BP_OP_CONV ? L->group : 1;
    op->wbits = bits;
    op->wpanel = malloc(bp_qweights_size(groups, (int)(M / groups), (int)K, bits));
    if (!op->wpanel) {
        free(wmk);
        return bp_error(BP_ERR_NOMEM, "layer '%s': out of memory", L->name);
    }
    st = bp_qweights_pack(wmk, groups, (int)(M / groups), (int)K, bits, op->wpanel);
    free(wmk);
    if (st)
        return bp_error_wrap(st, "layer '%s'", L->name);
    clamp_range(tout, clampn, &op->lo, &op->hi);
    /* dequantized weights and biases for the float simulation */
    bp_real *fw = m->fq_params + G->values[L->weight].offset;
    for (int64_t o = 0; o < s.outer; o++)
        for (int64_t c = 0; c < M; c++)
            for (int64_t i = 0; i < s.inner; i++) {
                int64_t idx = (o * s.nchan + c) * s.inner + i;
                fw[idx] = (bp_real)(codes[idx] * sc[c]);
            }
    if (L->bias >= 0) {
        bp_real *fb = m->fq_params + G->values[L->bias].offset;
        for (int64_t c = 0; c < M; c++)
            fb[c] = (bp_real)(op->bias[c] * tin->scale * sc[c] / bscale);
    }
    if (L->op == BP_OP_CONV) {
        bp_qconv_params *p = &op->cp;
        const bp_value *xv = &G->values[L->input];
        p->n = 1;
        p->cin = (int)xv->dims[1];
        p->h = (int)xv->dims[2];
        p->w = (int)xv->dims[3];
        p->cout = (int)M;
        p->kh = L->kh;
        p->kw = L->kw;
        p->stride_h = nd->a.stride[0];
        p->stride_w = nd->a.stride[1];
        p->pad_t = nd->a.pads[0];
        p->pad_l = nd->a.pads[1];
        p->pad_b = nd->a.pads[2];
        p->pad_r = nd->a.pads[3];
        p->dil_h = nd->a.dilation[0];
        p->dil_w = nd->a.dilation[1];
        p->group = L->group;
        p->wbits = bits;
        p->in_type = tin->type;
        p->out_type = tout->type;
        p->out_min = op->lo;
        p->out_max = op->hi;
        st = bp_qconv_check(p);
        if (!st) {
            int oh, ow;
            bp_qconv_out_hw(p, &oh, &ow);
            if ((size_t)M * oh * ow != tout->numel1)
                st = bp_error(BP_ERR_SHAPE, "output shape disagrees with the graph");
        }
        if (!st) {
            size_t need = bp_qconv_buffer_size(p);
            if (need > m->scratch_bytes)
                m->scratch_bytes = need;
        }
    } else {
        bp_qgemm_params *p = &op->gp;
        if (nd->op == BP_OP_GEMM && (nd->a.trans_a || nd->a.alpha != 1.0f))
            return bp_error(BP_ERR_UNSUPPORTED, "layer '%s': Gemm with transA or alpha != 1", L->name);
        p->k = (int)K;
        p->m = (int)M;
        p->n = (int)(tin->numel1 / (size_t)K); /* rows per sample */
        p->wbits = bits;
        p->in_type = tin->type;
        p->out_type = tout->type;
        p->out_min = op->lo;
        p->out_max = op->hi;
        st = bp_qgemm_check(p);
        if (!st && (size_t)p->n * K != tin->numel1)
            st = bp_error(BP_ERR_SHAPE, "input of %zu elements is not rows of %lld", tin->numel1,
                          (long long)K);
        if (!st) {
            size_t need = bp_qgemm_buffer_size(p);
            if (need > m->scratch_bytes)
                m->scratch_bytes = need;
        }
    }
    return st ? bp_error_wrap(st, "layer '%s'", L->name) : BP_OK;
}

bp_status bp_qmodel_build(const bp_graph *g, const int *wbits, const int *abits,
                          const bp_real *calib_x, int ncalib, const bp_qopts *o, bp_qmodel **out)
{
    *out = NULL;
    if (ncalib < 1)
        return bp_error(BP_ERR_ARG, "quantize: no calibration samples");
    bp_qmodel *m = calloc(1, sizeof *m);
    if (!m)
        return bp_error(BP_ERR_NOMEM, "quantize: out of memory");
    m->opts = o ? *o : bp_qopts_default();
    bp_layer *orig = NULL;
    int norig = 0, tcap = 0, ocap = 0;
    int *uses = NULL, *fuse_of = NULL, *demand = NULL, *lnode = NULL;
    bp_calib_stats *stats = NULL;
    bp_status st = bp_fold_bn(g, &m->g, NULL);
    if (st)
        goto fail;
    bp_graph *G = m->g;
    if ((st = bp_graph_layers(G, &m->layers, &m->nlayers)) ||
        (st = bp_graph_layers(g, &orig, &norig)))
        goto fail;
    if (norig != m->nlayers) {
        st = bp_error(BP_ERR_SHAPE, "quantize: folding changed the layer count");
        goto fail;
    }
    const int NL = m->nlayers, NN = G->nnodes, NV = G->nvalues;
    m->wbits = malloc(sizeof(int) * (NL ? NL : 1));
    m->abits = malloc(sizeof(int) * (NL ? NL : 1));
    m->wscale = calloc(NL ? NL : 1, sizeof(double *));
    m->wcodes = calloc(NL ? NL : 1, sizeof(int32_t *));
    m->view_t = malloc(sizeof(int) * (NL ? NL : 1));
    m->value_t = malloc(sizeof(int) * NV);
    m->fused = calloc(NN ? NN : 1, sizeof(int));
    uses = calloc(NV, sizeof(int));
    fuse_of = malloc(sizeof(int) * (NN ? NN : 1));
    m->fq_params = malloc(sizeof(bp_real) * (G->nparams ? G->nparams : 1));
    if (!m->wbits || !m->abits || !m->wscale || !m->wcodes || !m->view_t || !m->value_t ||
        !m->fused || !uses || !fuse_of || !m->fq_params) {
        st = bp_error(BP_ERR_NOMEM, "quantize: out of memory");
        goto fail;
    }
    memcpy(m->fq_params, G->params, sizeof(bp_real) * G->nparams);
    for (int l = 0; l < NL; l++) {
        if (strcmp(orig[l].name, m->layers[l].name)) {
            st = bp_error(BP_ERR_SHAPE, "quantize: layer %d is '%s' after folding, '%s' before", l,
                          m->layers[l].name, orig[l].name);
            goto fail;
        }
        m->wbits[l] = wbits[l];
        m->abits[l] = abits[l];
        if (wbits[l] < 2 || wbits[l] > 8 || abits[l] < 2 || abits[l] > 8) {
            st = bp_error(BP_ERR_UNSUPPORTED,
                          "quantize: layer '%s' asks for W%dA%d; the integer engine takes 2..8 bits",
                          m->layers[l].name, wbits[l], abits[l]);
            goto fail;
        }
    }
    for (int v = 0; v < NV; v++)
        m->value_t[v] = -1;
    for (int i = 0; i < NN; i++)
        for (int j = 0; j < G->nodes[i].nin; j++)
            uses[G->nodes[i].in[j]]++;
    uses[G->output]++;
    int *layer_of = fuse_of; /* reuse: first layer index per node, then fusion */
    for (int i = 0; i < NN; i++)
        layer_of[i] = -1;
    for (int l = 0; l < NL; l++)
        layer_of[m->layers[l].node] = l;
    lnode = malloc(sizeof(int) * (NN ? NN : 1));
    if (!lnode) {
        st = bp_error(BP_ERR_NOMEM, "quantize: out of memory");
        goto fail;
    }
    memcpy(lnode, layer_of, sizeof(int) * (NN ? NN : 1));
    /* fusion: producer node -> the Relu/Clip node that alone reads it */
    for (int i = 0; i < NN; i++)
        fuse_of[i] = -1;
    for (int i = 0; i < NN; i++) {
        const bp_node *nd = &G->nodes[i];
        if (nd->op != BP_OP_RELU && nd->op != BP_OP_CLIP)
            continue;
        int v = nd->in[0], p = G->values[v].producer;
        if (p < 0 || uses[v] != 1)
            continue;
        bp_op po = G->nodes[p].op;
        if ((is_layer_op(po) && lnode[p] >= 0) || po == BP_OP_ADD) {
            fuse_of[p] = i;
            m->fused[i] = 1;
        }
    }
    /* tensors */
    {
        const bp_value *iv = &G->values[G->input];
        bp_qtensor t = {0};
        t.value = G->input;
        t.is_signed = 1;
        t.numel1 = iv->numel;
        t.ndim = iv->ndim;
        memcpy(t.dims, iv->dims, sizeof t.dims);
        t.dims[0] = 1;
        t.root = 0;
        m->input_t = add_tensor(m, &tcap, &t);
        if (m->input_t < 0)
            goto nomem;
        m->value_t[G->input] = m->input_t;
    }
    for (int i = 0; i < NN; i++) {
        const bp_node *nd = &G->nodes[i];
        if (m->fused[i])
            continue;
        switch (nd->op) {
        case BP_OP_CONV:
        case BP_OP_GEMM:
        case BP_OP_MATMUL:
            if (lnode[i] < 0) {
                st = bp_error(BP_ERR_UNSUPPORTED, "quantize: node '%s' (%s) has no constant weight",
                              nd->name, bp_op_name(nd->op));
                goto fail;
            }
            break;
        case BP_OP_ADD:
            for (int j = 0; j < 2; j++)
                if (G->values[nd->in[j]].kind == BP_VAL_PARAM) {
                    st = bp_error(BP_ERR_UNSUPPORTED,
                                  "quantize: Add '%s' with a constant operand (fold it into a bias first)",
                                  nd->name);
                    goto fail;
                }
            if (G->values[nd->in[0]].numel != G->values[nd->in[1]].numel) {
                st = bp_error(BP_ERR_UNSUPPORTED, "quantize: Add '%s' broadcasts (only equal shapes)",
                              nd->name);
                goto fail;
            }
            break;
        case BP_OP_BN:
            st = bp_error(BP_ERR_UNSUPPORTED,
                          "quantize: BatchNormalization '%s' does not follow a conv, so it cannot be folded",
                          nd->name);
            goto fail;
        default:
            break;
        }
        int fz = fuse_of[i];
        int v = fz >= 0 ? G->nodes[fz].out : nd->out;
        int tin = m->value_t[nd->in[0]];
        if (tin < 0 && G->values[nd->in[0]].kind != BP_VAL_PARAM) {
            st = bp_error(BP_ERR_FORMAT, "quantize: node '%s' reads an unknown tensor", nd->name);
            goto fail;
        }
        bp_qtensor t = {0};
        t.value = v;
        const bp_value *vv = &G->values[v];
        t.numel1 = vv->numel;
        t.ndim = vv->ndim;
        memcpy(t.dims, vv->dims, sizeof t.dims);
        t.dims[0] = 1;
        if (keeps_scale(nd->op)) {
            t.root = m->t[tin].root;
            t.is_signed = m->t[t.root].is_signed;
        } else {
            t.root = m->nt;
            double lo = fz >= 0 ? clamp_lo(&G->nodes[fz]) : -INFINITY;
            t.is_signed = !(lo >= 0);
        }
        int id = add_tensor(m, &tcap, &t);
        if (id < 0)
            goto nomem;
        m->value_t[v] = id;
        if (fz >= 0)
            m->value_t[nd->out] = id;
    }
    if (m->value_t[G->output] < 0) {
        st = bp_error(BP_ERR_FORMAT, "quantize: the graph output is not computed");
        goto fail;
    }
    m->output_t = m->value_t[G->output];
    /* bits demanded per root */
    demand = calloc(m->nt, sizeof(int));
    if (!demand)
        goto nomem;
    for (int i = 0; i < NN; i++) {
        const bp_node *nd = &G->nodes[i];
        if (lnode[i] >= 0) {
            int r = m->t[m->value_t[nd->in[0]]].root;
            if (abits[lnode[i]] > demand[r])
                demand[r] = abits[lnode[i]];
        } else if (nd->op == BP_OP_ADD) {
            for (int j = 0; j < 2; j++) {
                int r = m->t[m->value_t[nd->in[j]]].root;
                if (demand[r] < 8)
                    demand[r] = 8;
            }
        }
    }
    int out_root = m->t[m->output_t].root;
    for (int t = 0; t < m->nt; t++) {
        bp_qtensor *T = &m->t[t];
        if (T->root != t)
            continue;
        T->bits = t == out_root ? m->opts.logit_bits : demand[t] ? demand[t] : 8;
        if (t == out_root)
            T->is_signed = 1;
    }
    /* calibration and scales */
    stats = malloc(sizeof *stats * m->nt);
    if (!stats)
        goto nomem;
    if ((st = calibrate(m, calib_x, ncalib, stats)))
        goto fail;
    for (int t = 0; t < m->nt; t++) {
        bp_qtensor *T = &m->t[t];
        if (T->root != t)
            continue;
        double c = t == out_root ? fmax(stats[t].absmax, 1e-6)
                                 : bp_calib_clip(&stats[t], m->opts.calib, m->opts.percentile, T->bits,
                                                 T->is_signed);
        double levels = T->is_signed ? (1 << (T->bits - 1)) - 1 : (1 << T->bits) - 1;
        T->scale = c / levels;
        if (m->opts.pow2)
            T->scale = pow2_up(T->scale);
        set_range(T);
    }
    for (int t = 0; t < m->nt; t++) {
        bp_qtensor *T = &m->t[t];
        if (T->root == t)
            continue;
        const bp_qtensor *R = &m->t[T->root];
        T->bits = R->bits;
        T->is_signed = R->is_signed;
        T->scale = R->scale;
        T->qmin = R->qmin;
        T->qmax = R->qmax;
        T->type = R->type;
    }
    if (m->t[m->input_t].type == BP_QT_S32) {
        st = bp_error(BP_ERR_UNSUPPORTED, "quantize: the model input is the logits");
        goto fail;
    }
    /* ops, with views where a layer reads fewer bits than the tensor holds */
    for (int i = 0; i < NN; i++) {
        const bp_node *nd = &G->nodes[i];
        if (m->fused[i])
            continue;
        int fz = fuse_of[i];
        const bp_node *clampn = fz >= 0 ? &G->nodes[fz] : NULL;
        int tout = m->value_t[fz >= 0 ? G->nodes[fz].out : nd->out];
        int tin = m->value_t[nd->in[0]];
        if (lnode[i] >= 0) {
            int l = lnode[i];
            const bp_qtensor *TI = &m->t[tin];
            if (TI->bits != abits[l]) {
                bp_qtensor v = *TI;
                v.value = -1;
                v.bits = abits[l];
                double c = bp_calib_clip(&stats[TI->root], m->opts.calib, m->opts.percentile, v.bits,
                                         v.is_signed);
                double levels = v.is_signed ? (1 << (v.bits - 1)) - 1 : (1 << v.bits) - 1;
                v.scale = c / levels;
                if (m->opts.pow2)
                    v.scale = pow2_up(v.scale);
                set_range(&v);
                int vid = add_tensor(m, &tcap, &v);
                if (vid < 0)
                    goto nomem;
                bp_qop *rq = add_op(m, &ocap);
                if (!rq)
                    goto nomem;
                rq->kind = BP_QOP_REQUANT;
                rq->in[0] = tin;
                rq->out = vid;
                rq->lo = m->t[vid].qmin;
                rq->hi = m->t[vid].qmax;
                char what[200];
                snprintf(what, sizeof what, "view of layer '%s'", m->layers[l].name);
                if ((st = qmul_of(m->t[tin].scale / m->t[vid].scale, m->opts.pow2, &rq->qa, what)))
                    goto fail;
                tin = vid;
            }
            m->view_t[l] = tin;
            bp_qop *op = add_op(m, &ocap);
            if (!op)
                goto nomem;
            op->kind = nd->op == BP_OP_CONV ? BP_QOP_CONV : BP_QOP_GEMM;
            op->node = i;
            op->layer = l;
            op->in[0] = tin;
            op->out = tout;
            if ((st = quantize_layer(m, l, op, &m->t[tin], &m->t[tout], clampn)))
                goto fail;
            continue;
        }
        bp_qop *op = add_op(m, &ocap);
        if (!op)
            goto nomem;
        op->node = i;
        op->in[0] = tin;
        op->out = tout;
        const bp_qtensor *TO = &m->t[tout];
        clamp_range(TO, NULL, &op->lo, &op->hi);
        switch (nd->op) {
        case BP_OP_ADD: {
            op->kind = BP_QOP_ADD;
            op->in[1] = m->value_t[nd->in[1]];
            double sa = m->t[op->in[0]].scale, sb = m->t[op->in[1]].scale, so = TO->scale;
            double tm = 2 * fmax(sa, sb);
            op->left_shift = ADD_LEFT_SHIFT;
            clamp_range(TO, clampn, &op->lo, &op->hi);
            if ((st = qmul_of(sa / tm, m->opts.pow2, &op->qa, nd->name)) ||
                (st = qmul_of(sb / tm, m->opts.pow2, &op->qb, nd->name)) ||
                (st = qmul_of(tm / (ldexp(1.0, ADD_LEFT_SHIFT) * so), m->opts.pow2, &op->qo, nd->name)))
                goto fail;
            break;
        }
        case BP_OP_RELU:
        case BP_OP_CLIP:
            op->kind = BP_QOP_CLAMP;
            clamp_range(TO, nd, &op->lo, &op->hi);
            break;
        case BP_OP_MAXPOOL:
        case BP_OP_AVGPOOL:
            op->kind = nd->op == BP_OP_MAXPOOL ? BP_QOP_MAXPOOL : BP_QOP_AVGPOOL;
            op->kh = nd->a.kernel[0];
            op->kw = nd->a.kernel[1];
            op->sh = nd->a.stride[0];
            op->sw = nd->a.stride[1];
            op->pt = nd->a.pads[0];
            op->pl = nd->a.pads[1];
            op->pb = nd->a.pads[2];
            op->pr = nd->a.pads[3];
            op->count_include_pad = nd->a.count_include_pad;
            if (nd->a.dilation[0] != 1 || nd->a.dilation[1] != 1) {
                st = bp_error(BP_ERR_UNSUPPORTED, "quantize: pooling '%s' with dilation", nd->name);
                goto fail;
            }
            break;
        case BP_OP_GAP:
            op->kind = BP_QOP_GAP;
            break;
        case BP_OP_FLATTEN:
        case BP_OP_RESHAPE:
        case BP_OP_IDENTITY:
            op->kind = BP_QOP_COPY;
            break;
        default:
            st = bp_error(BP_ERR_UNSUPPORTED, "quantize: op %s ('%s') has no integer kernel",
                          bp_op_name(nd->op), nd->name);
            goto fail;
        }
    }
    free(lnode), free(orig), free(uses), free(fuse_of), free(demand), free(stats);
    *out = m;
    return BP_OK;
nomem:
    st = bp_error(BP_ERR_NOMEM, "quantize: out of memory");
fail:
    free(lnode), free(orig), free(uses), free(fuse_of), free(demand), free(stats);
    bp_qmodel_free(m);
    return st;
}

void bp_qmodel_quantize_input(const bp_qmodel *m, const bp_real *x, int n, void *xq)
{
    const bp_qtensor *T = &m->t[m->input_t];
    size_t cnt = (size_t)n * T->numel1;
    for (size_t i = 0; i < cnt; i++) {
        double q = fmin(fmax(round((double)x[i] / T->scale), T->qmin), T->qmax);
        if (T->type == BP_QT_U8)
            ((uint8_t *)xq)[i] = (uint8_t)q;
        else
            ((int8_t *)xq)[i] = (int8_t)q;
    }
}
