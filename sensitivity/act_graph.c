/* act_graph.c — the pieces of activation sensitivity that are not Hessian
 * products: the graph in which every layer reads its input through a private
 * Identity (so a perturbation reaches that layer only), and the validation
 * stage's activation quantizer for every layer (sensitivity/act.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/exec.h"
#include "quant/qmodel.h"
#include "sensitivity/act.h"

bp_act_opts bp_act_opts_default(void)
{
    bp_act_opts o;
    memset(&o, 0, sizeof o);
    o.samples = 512;
    o.batch = 64;
    o.trace = bp_trace_opts_default();
    o.trace.scheme = BP_PROBE_PER_LAYER;
    static const int bits[] = {2, 3, 4, 5, 6, 8};
    o.nbits = (int)(sizeof bits / sizeof *bits);
    memcpy(o.bits, bits, sizeof bits);
    o.calib = BP_CALIB_MSE;
    o.percentile = 99.99;
    o.calib_samples = 256;
    o.neg = BP_NEG_ABS;
    return o;
}

/* ---- the graph with private layer inputs ---------------------------------- */

bp_status bp_act_graph(const bp_graph *g, bp_graph **out, int **act_value, int *nlayers)
{
    *out = NULL;
    *act_value = NULL;
    *nlayers = 0;
    if (g->input < 0 || g->output < 0)
        return bp_error(BP_ERR_ARG, "%s: the graph has no input or output",
                        g->source && g->source[0] ? g->source : "model");
    bp_layer *layers = NULL;
    int nl = 0;
    bp_status st = bp_graph_layers(g, &layers, &nl);
    if (st)
        return st;
    int *map = malloc(sizeof(int) * (g->nvalues ? g->nvalues : 1));
    int *layer_of = malloc(sizeof(int) * (g->nnodes ? g->nnodes : 1));
    int *av = malloc(sizeof(int) * (nl ? nl : 1));
    bp_graph *ng = bp_graph_new();
    bp_layer *nlay = NULL;
    int nnl = 0;
    if (!map || !layer_of || !av || !ng) {
        st = bp_error(BP_ERR_NOMEM, "activation graph: out of memory");
        goto fail;
    }
    for (int v = 0; v < g->nvalues; v++)
        map[v] = -1;
    for (int i = 0; i < g->nnodes; i++)
        layer_of[i] = -1;
    for (int l = 0; l < nl; l++)
        layer_of[layers[l].node] = l;
    free(ng->source);
    ng->source = strdup(g->source ? g->source : "");
    if (!ng->source) {
        st = bp_error(BP_ERR_NOMEM, "activation graph: out of memory");
        goto fail;
    }
    memcpy(ng->sha256, g->sha256, sizeof ng->sha256);
    const bp_value *iv = &g->values[g->input];
    if ((ng->input = map[g->input] = bp_graph_add_input(ng, iv->name, iv->ndim, iv->dims)) < 0) {
        st = bp_error_wrap(BP_ERR_ARG, "activation graph");
        goto fail;
    }
    for (int i = 0; i < g->nnodes; i++) {
        const bp_node *nd = &g->nodes[i];
        int ins[BP_MAX_IN];
        for (int j = 0; j < nd->nin; j++) {
            int v = nd->in[j];
            ins[j] = g->values[v].kind == BP_VAL_PARAM ? bp_graph_copy_param(g, ng, v, map) : map[v];
            if (ins[j] < 0) {
                st = bp_error_wrap(BP_ERR_FORMAT, "activation graph: node '%s'", nd->name);
                goto fail;
            }
        }
        int l = layer_of[i];
        if (l >= 0) {
            /* The layer's private copy of its input. */
            char name[64];
            snprintf(name, sizeof name, "__bp_act_in_%d", l);
            if (bp_graph_find(g, name) >= 0) {
                st = bp_error(BP_ERR_UNSUPPORTED, "activation graph: the model already has a value "
                                                  "named '%s'", name);
                goto fail;
            }
            bp_attrs a = bp_attrs_default();
            int id = bp_graph_add_node(ng, BP_OP_IDENTITY, name, &ins[0], 1, name, &a);
            if (id < 0) {
                st = bp_error_wrap(BP_ERR_SHAPE, "activation graph: layer '%s'", layers[l].name);
                goto fail;
            }
            ins[0] = id;
            av[l] = id;
        }
        int id = bp_graph_add_node(ng, nd->op, nd->name, ins, nd->nin, g->values[nd->out].name, &nd->a);
        if (id < 0) {
            st = bp_error_wrap(BP_ERR_SHAPE, "activation graph: node '%s'", nd->name);
            goto fail;
        }
        map[nd->out] = id;
    }
    ng->output = map[g->output];
    if (ng->output < 0) {
        st = bp_error(BP_ERR_FORMAT, "activation graph: the graph output is not produced");
        goto fail;
    }
    /* The copy must have the same layers, in the same order, reading the
     * private inputs. */
    if ((st = bp_graph_layers(ng, &nlay, &nnl)))
        goto fail;
    if (nnl != nl) {
        st = bp_error(BP_ERR_SHAPE, "activation graph: %d layers, the model has %d", nnl, nl);
        goto fail;
    }
    for (int l = 0; l < nl; l++)
        if (strcmp(nlay[l].name, layers[l].name) || nlay[l].input != av[l]) {
            st = bp_error(BP_ERR_SHAPE, "activation graph: layer %d is '%s', the model's '%s'", l,
                          nlay[l].name, layers[l].name);
            goto fail;
        }
    free(nlay);
    free(layers);
    free(map);
    free(layer_of);
    *out = ng;
    *act_value = av;
    *nlayers = nl;
    return BP_OK;
fail:
    free(nlay);
    free(layers);
    free(map);
    free(layer_of);
    free(av);
    bp_graph_free(ng);
    return st;
}

/* ---- the validation stage's activation quantizer --------------------------- */

static double levels_of(int bits, int is_signed)
{
    return is_signed ? ldexp(1.0, bits - 1) - 1 : ldexp(1.0, bits) - 1;
}

static bp_status check_bits(const bp_act_opts *o)
{
    if (o->nbits < 1 || o->nbits > BP_SENS_MAX_CAND)
        return bp_error(BP_ERR_ARG, "activation sensitivity: between 1 and %d candidate bit-widths "
                                    "needed (got %d)", BP_SENS_MAX_CAND, o->nbits);
    for (int k = 0; k < o->nbits; k++) {
        if (o->bits[k] < BP_ACT_MIN_BITS || o->bits[k] > BP_ACT_MAX_BITS)
            return bp_error(BP_ERR_ARG, "activation sensitivity: candidate %d bits is outside %d..%d",
                            o->bits[k], BP_ACT_MIN_BITS, BP_ACT_MAX_BITS);
        if (k && o->bits[k] <= o->bits[k - 1])
            return bp_error(BP_ERR_ARG, "activation sensitivity: candidate bits must be strictly "
                                        "increasing (%d after %d)", o->bits[k], o->bits[k - 1]);
    }
    if (o->calib == BP_CALIB_PERCENTILE && !(o->percentile > 0 && o->percentile <= 100))
        return bp_error(BP_ERR_ARG, "activation sensitivity: percentile %g is outside (0, 100]",
                        o->percentile);
    return BP_OK;
}

bp_status bp_act_quantizers(const bp_graph *g, const bp_real *calib_x, int ncalib,
                            const bp_act_opts *o, bp_act_quant *out)
{
    bp_status st = check_bits(o);
    if (st)
        return st;
    if (ncalib < 1)
        return bp_error(BP_ERR_ARG, "activation ranges: no calibration samples");
    bp_layer *layers = NULL;
    int nl = 0;
    if ((st = bp_graph_layers(g, &layers, &nl)))
        return st;
    free(layers);
    /* The validation stage decides which tensor each layer reads, which
     * tensor's calibration gives its range and whether it is unsigned; build
     * its model (bits do not matter for that) and read the answer. */
    int *w8 = malloc(sizeof(int) * (nl ? nl : 1));
    bp_qmodel *m = NULL;
    bp_exec *ex = NULL;
    bp_calib_stats *stats = NULL;
    int *root_of = NULL;
    if (!w8) {
        st = bp_error(BP_ERR_NOMEM, "activation ranges: out of memory");
        goto done;
    }
    for (int l = 0; l < nl; l++)
        w8[l] = 8;
    bp_qopts qo = bp_qopts_default();
    qo.calib = o->calib;
    qo.percentile = o->percentile;
    if ((st = bp_qmodel_build(g, w8, w8, calib_x, ncalib, &qo, &m))) {
        st = bp_error_wrap(st, "activation ranges use the validation stage's quantizer, which "
                               "does not take this model");
        goto done;
    }
    if (m->nlayers != nl) {
        st = bp_error(BP_ERR_SHAPE, "activation ranges: the quantized model has %d layers, the "
                                    "model %d", m->nlayers, nl);
        goto done;
    }
    const bp_graph *G = m->g; /* BN folded: what the stage calibrates on */
    stats = malloc(sizeof *stats * (nl ? nl : 1));
    root_of = malloc(sizeof(int) * (nl ? nl : 1));
    if (!stats || !root_of) {
        st = bp_error(BP_ERR_NOMEM, "activation ranges: out of memory");
        goto done;
    }
    for (int l = 0; l < nl; l++) {
        const bp_qtensor *T = &m->t[m->view_t[l]];
        const bp_qtensor *R = &m->t[T->root];
        if (R->value < 0 || R->value >= G->nvalues || G->values[R->value].kind == BP_VAL_PARAM) {
            st = bp_error(BP_ERR_SHAPE, "activation ranges: layer '%s' reads no calibrated tensor",
                          m->layers[l].name);
            goto done;
        }
        root_of[l] = R->value;
        out[l].is_signed = T->is_signed;
        bp_calib_reset(&stats[l]);
    }
    /* Two passes, as the stage does: min/max, then the |x| histogram. */
    int nb = ncalib < 64 ? ncalib : 64;
    ex = bp_exec_new(G, nb, 0);
    if (!ex) {
        st = bp_error_wrap(BP_ERR_NOMEM, "activation ranges");
        goto done;
    }
    size_t in1 = G->values[G->input].numel;
    for (int pass = 0; pass < 2 && !st; pass++)
        for (int s0 = 0; s0 < ncalib && !st; s0 += nb) {
            int k = ncalib - s0 < nb ? ncalib - s0 : nb;
            if ((st = bp_forward(ex, G->params, calib_x + (size_t)s0 * in1, k, BP_MODE_INFER))) {
                st = bp_error_wrap(st, "activation ranges: samples %d..%d", s0, s0 + k - 1);
                break;
            }
            for (int l = 0; l < nl; l++) {
                const bp_real *a = bp_exec_act(ex, root_of[l]);
                size_t cnt = (size_t)k * G->values[root_of[l]].numel;
                if (pass == 0)
                    bp_calib_minmax(&stats[l], a, cnt);
                else
                    bp_calib_hist(&stats[l], a, cnt);
            }
        }
    if (st)
        goto done;
    for (int l = 0; l < nl; l++) {
        bp_act_quant *q = &out[l];
        if (!isfinite(stats[l].absmax)) {
            st = bp_error(BP_ERR_NUMERIC, "activation ranges: layer '%s': the input is not finite",
                          m->layers[l].name);
            goto done;
        }
        q->nbits = o->nbits;
        for (int k = 0; k < o->nbits; k++) {
            q->bits[k] = o->bits[k];
            q->clip[k] = bp_calib_clip(&stats[l], o->calib, o->percentile, o->bits[k], q->is_signed);
            q->scale[k] = q->clip[k] / levels_of(o->bits[k], q->is_signed);
        }
    }
done:
    bp_exec_free(ex);
    bp_qmodel_free(m);
    free(stats);
    free(root_of);
    free(w8);
    return st;
}

double bp_act_quant_err2(const bp_act_quant *q, int k, const bp_real *x, size_t n)
{
    const int b = q->bits[k];
    const double s = q->scale[k];
    const double qmin = q->is_signed ? -ldexp(1.0, b - 1) : 0.0;
    const double qmax = levels_of(b, q->is_signed);
    double e = 0;
    for (size_t i = 0; i < n; i++) {
        double v = (double)x[i];
        double r = s * fmin(fmax(round(v / s), qmin), qmax) - v;
        e += r * r;
    }
    return e;
}
