/* BatchNormalization folded into the preceding conv for the Hessian
 * operator (bn_fold.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sensitivity/bn_fold.h"

void bp_bn_fold_scale_free(double **scale, int nnodes)
{
    if (!scale)
        return;
    for (int i = 0; i < nnodes; i++)
        free(scale[i]);
    free(scale);
}

/* The BN node that conv node i can be folded into, or -1. */
static int foldable(const bp_graph *g, int i, const int *uses)
{
    const bp_node *nd = &g->nodes[i];
    if (nd->op != BP_OP_CONV || nd->nin < 2 || nd->out == g->output || uses[nd->out] != 1)
        return -1;
    for (int j = 1; j < nd->nin; j++)
        if (g->values[nd->in[j]].kind != BP_VAL_PARAM || uses[nd->in[j]] != 1)
            return -1;
    for (int k = i + 1; k < g->nnodes; k++) {
        const bp_node *b = &g->nodes[k];
        int reads = 0;
        for (int j = 0; j < b->nin; j++)
            reads |= b->in[j] == nd->out;
        if (!reads)
            continue;
        if (b->op != BP_OP_BN || b->nin != 5 || b->in[0] != nd->out)
            return -1;
        for (int j = 1; j < 5; j++)
            if (g->values[b->in[j]].kind != BP_VAL_PARAM ||
                g->values[b->in[j]].numel != (size_t)g->values[nd->in[1]].dims[0])
                return -1;
        return k;
    }
    return -1;
}

/* A name for the folded bias that neither graph uses. */
static void bias_name(const bp_graph *g, const bp_graph *ng, const char *wname, char *buf,
                      size_t cap)
{
    size_t L = strlen(wname);
    if (L > 7 && !strcmp(wname + L - 7, ".weight"))
        snprintf(buf, cap, "%.*s.bias_bnfold", (int)(L - 7), wname);
    else
        snprintf(buf, cap, "%s_bias_bnfold", wname);
    size_t base = strlen(buf);
    for (int k = 2; bp_graph_find(g, buf) >= 0 || bp_graph_find(ng, buf) >= 0; k++)
        snprintf(buf + base, cap - base, "%d", k);
}

bp_status bp_bn_fold(const bp_graph *g, bp_graph **out, double ***scale_out, int *nfolded)
{
    *out = NULL;
    *scale_out = NULL;
    int folded = 0;
    bp_status st = BP_OK;
    int *map = malloc(sizeof(int) * (g->nvalues ? g->nvalues : 1));
    int *uses = calloc(g->nvalues ? g->nvalues : 1, sizeof(int));
    char *skip = calloc(g->nnodes ? g->nnodes : 1, 1);
    double **scale = calloc(g->nnodes ? g->nnodes : 1, sizeof *scale);
    bp_graph *ng = bp_graph_new();
    if (!map || !uses || !skip || !scale || !ng)
        goto nomem;
    if (g->input < 0 || g->output < 0) {
        st = bp_error(BP_ERR_ARG, "bn fold: the graph has no input or output");
        goto done;
    }
    for (int v = 0; v < g->nvalues; v++)
        map[v] = -1;
    for (int i = 0; i < g->nnodes; i++)
        for (int j = 0; j < g->nodes[i].nin; j++)
            uses[g->nodes[i].in[j]]++;
    free(ng->source);
    if (!(ng->source = strdup(g->source ? g->source : "")))
        goto nomem;
    memcpy(ng->sha256, g->sha256, sizeof ng->sha256);
    const bp_value *in = &g->values[g->input];
    if ((map[g->input] = bp_graph_add_input(ng, in->name, in->ndim, in->dims)) < 0) {
        st = bp_error_wrap(BP_ERR_ARG, "bn fold");
        goto done;
    }
    for (int i = 0; i < g->nnodes; i++) {
        if (skip[i])
            continue;
        const bp_node *nd = &g->nodes[i];
        int bn = foldable(g, i, uses);
        int ins[BP_MAX_IN], nin = nd->nin, out_v = nd->out;
        for (int j = 0; j < nd->nin; j++) {
            int v = nd->in[j];
            if (bn >= 0 && j >= 1)
                break; /* the folded weight and bias come below */
            ins[j] = g->values[v].kind == BP_VAL_PARAM ? bp_graph_copy_param(g, ng, v, map) : map[v];
            if (ins[j] < 0) {
                st = bp_error_wrap(BP_ERR_FORMAT, "bn fold: node '%s'", nd->name);
                goto done;
            }
        }
        if (bn >= 0) {
            const bp_node *b = &g->nodes[bn];
            const bp_value *wv = &g->values[nd->in[1]];
            int64_t cout = wv->dims[0];
            size_t per = wv->numel / (size_t)cout;
            const bp_real *P = g->params;
            const bp_real *sc = P + g->values[b->in[1]].offset, *sh = P + g->values[b->in[2]].offset,
                          *mu = P + g->values[b->in[3]].offset, *var = P + g->values[b->in[4]].offset;
            const bp_real *b0 = nd->nin > 2 ? P + g->values[nd->in[2]].offset : NULL;
            double *s = malloc((size_t)cout * sizeof *s);
            if (!s)
                goto nomem;
            scale[i] = s;
            int wid = bp_graph_add_param(ng, wv->name, wv->ndim, wv->dims, NULL);
            char bname[400];
            bias_name(g, ng, wv->name, bname, sizeof bname);
            int64_t bd[1] = {cout};
            int bid = wid < 0 ? -1 : bp_graph_add_param(ng, bname, 1, bd, NULL);
            if (bid < 0) {
                st = bp_error_wrap(BP_ERR_NOMEM, "bn fold");
                goto done;
            }
            ng->values[wid].trainable = wv->trainable;
            bp_real *w = ng->params + ng->values[wid].offset, *bb = ng->params + ng->values[bid].offset;
            for (int64_t c = 0; c < cout; c++) {
                /* in double, as the BN kernel's 1/sqrt(var + eps) */
                s[c] = (double)sc[c] / sqrt((double)var[c] + (double)b->a.eps);
                for (size_t e = 0; e < per; e++)
                    w[c * per + e] = (bp_real)(s[c] * (double)P[wv->offset + c * per + e]);
                bb[c] = (bp_real)(s[c] * ((b0 ? (double)b0[c] : 0.0) - (double)mu[c]) + (double)sh[c]);
            }
            ins[1] = wid;
            ins[2] = bid;
            nin = 3;
            out_v = b->out;
            skip[bn] = 1;
            folded++;
        }
        int id = bp_graph_add_node(ng, nd->op, nd->name, ins, nin, g->values[out_v].name, &nd->a);
        if (id < 0) {
            st = bp_error_wrap(BP_ERR_SHAPE, "bn fold");
            goto done;
        }
        map[out_v] = id;
    }
    ng->output = map[g->output];
    if (ng->output < 0)
        st = bp_error(BP_ERR_FORMAT, "bn fold: the graph output is not produced");
    goto done;
nomem:
    st = bp_error(BP_ERR_NOMEM, "bn fold: out of memory");
done:
    free(map);
    free(uses);
    free(skip);
    if (st) {
        bp_bn_fold_scale_free(scale, g->nnodes);
        bp_graph_free(ng);
        return st;
    }
    *out = ng;
    *scale_out = scale;
    if (nfolded)
        *nfolded = folded;
    return BP_OK;
}
