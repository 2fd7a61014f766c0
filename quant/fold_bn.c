/* fold_bn.c — rebuilds a graph with BatchNormalization folded into convs. */
#include "quant/fold_bn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Copies PARAM value v of g into ng (once; map caches the new id). */
static int copy_param(const bp_graph *g, bp_graph *ng, int v, int *map)
{
    if (map[v] >= 0)
        return map[v];
    const bp_value *val = &g->values[v];
    float *tmp = malloc((val->numel ? val->numel : 1) * sizeof *tmp);
    if (!tmp) {
        bp_error(BP_ERR_NOMEM, "fold_bn: out of memory");
        return -1;
    }
    for (size_t i = 0; i < val->numel; i++)
        tmp[i] = (float)g->params[val->offset + i];
    int id = bp_graph_add_param(ng, val->name, val->ndim, val->dims, tmp);
    free(tmp);
    if (id >= 0)
        ng->values[id].trainable = val->trainable;
    map[v] = id;
    return id;
}

bp_status bp_fold_bn(const bp_graph *g, bp_graph **out, int *nfolded)
{
    *out = NULL;
    int folded = 0;
    bp_status st = BP_OK;
    int *map = malloc(sizeof(int) * (g->nvalues ? g->nvalues : 1));
    int *uses = calloc(g->nvalues ? g->nvalues : 1, sizeof(int));
    char *skip = calloc(g->nnodes ? g->nnodes : 1, 1);
    bp_graph *ng = bp_graph_new();
    float *w = NULL, *b = NULL;
    if (!map || !uses || !skip || !ng) {
        st = bp_error(BP_ERR_NOMEM, "fold_bn: out of memory");
        goto done;
    }
    for (int v = 0; v < g->nvalues; v++)
        map[v] = -1;
    for (int i = 0; i < g->nnodes; i++)
        for (int j = 0; j < g->nodes[i].nin; j++)
            uses[g->nodes[i].in[j]]++;
    uses[g->output]++;
    free(ng->source);
    ng->source = strdup(g->source ? g->source : "");
    memcpy(ng->sha256, g->sha256, sizeof ng->sha256);
    {
        const bp_value *in = &g->values[g->input];
        int id = bp_graph_add_input(ng, in->name, in->ndim, in->dims);
        if (id < 0) {
            st = BP_ERR_ARG;
            goto done;
        }
        map[g->input] = id;
        ng->input = id;
    }
    for (int i = 0; i < g->nnodes; i++) {
        if (skip[i])
            continue;
        const bp_node *nd = &g->nodes[i];
        /* the BN that follows this conv alone, if any */
        int bn = -1;
        if (nd->op == BP_OP_CONV && nd->nin >= 2 && g->values[nd->in[1]].kind == BP_VAL_PARAM &&
            uses[nd->out] == 1)
            for (int k = i + 1; k < g->nnodes; k++)
                if (g->nodes[k].op == BP_OP_BN && g->nodes[k].in[0] == nd->out) {
                    bn = k;
                    break;
                }
        int ins[BP_MAX_IN], nin = nd->nin;
        for (int j = 0; j < nd->nin; j++) {
            int v = nd->in[j];
            if (bn >= 0 && j >= 1) /* replaced by the folded weight and bias below */
                continue;
            ins[j] = g->values[v].kind == BP_VAL_PARAM ? copy_param(g, ng, v, map) : map[v];
            if (ins[j] < 0) {
                st = bp_error(BP_ERR_FORMAT, "fold_bn: node '%s' reads an unknown value", nd->name);
                goto done;
            }
        }
        const char *out_name = g->values[nd->out].name;
        int out_v = nd->out;
        if (bn >= 0) {
            const bp_node *bnn = &g->nodes[bn];
            const bp_value *wv = &g->values[nd->in[1]];
            int64_t cout = wv->dims[0];
            size_t per = wv->numel / (size_t)cout;
            const bp_real *sc = g->params + g->values[bnn->in[1]].offset,
                          *sh = g->params + g->values[bnn->in[2]].offset,
                          *mu = g->params + g->values[bnn->in[3]].offset,
                          *var = g->params + g->values[bnn->in[4]].offset;
            const bp_real *b0 = nd->nin > 2 ? g->params + g->values[nd->in[2]].offset : NULL;
            w = malloc(wv->numel * sizeof *w);
            b = malloc((size_t)cout * sizeof *b);
            if (!w || !b) {
                st = bp_error(BP_ERR_NOMEM, "fold_bn: out of memory");
                goto done;
            }
            for (int64_t c = 0; c < cout; c++) {
                double a = (double)sc[c] / sqrt((double)var[c] + (double)bnn->a.eps);
                for (size_t e = 0; e < per; e++)
                    w[c * per + e] = (float)(a * g->params[wv->offset + c * per + e]);
                b[c] = (float)(a * ((b0 ? (double)b0[c] : 0.0) - (double)mu[c]) + (double)sh[c]);
            }
            /* the folded weight replaces the conv's weight under the same name */
            int wid = bp_graph_add_param(ng, wv->name, wv->ndim, wv->dims, w);
            char bname[400];
            size_t L = strlen(wv->name);
            if (L > 7 && !strcmp(wv->name + L - 7, ".weight"))
                snprintf(bname, sizeof bname, "%.*s.bias", (int)(L - 7), wv->name);
            else
                snprintf(bname, sizeof bname, "%s_bias", wv->name);
            if (bp_graph_find(ng, bname) >= 0 ||
                (bp_graph_find(g, bname) >= 0 &&
                 !(nd->nin > 2 && !strcmp(g->values[nd->in[2]].name, bname))))
                snprintf(bname + strlen(bname), sizeof bname - strlen(bname), "_folded");
            int64_t bd[1] = {cout};
            int bid = bp_graph_add_param(ng, bname, 1, bd, b);
            free(w), free(b);
            w = b = NULL;
            if (wid < 0 || bid < 0) {
                st = BP_ERR_FORMAT;
                goto done;
            }
            ins[1] = wid;
            ins[2] = bid;
            nin = 3;
            out_name = g->values[bnn->out].name;
            out_v = bnn->out;
            skip[bn] = 1;
            folded++;
        }
        int id = bp_graph_add_node(ng, nd->op, nd->name, ins, nin, out_name, &nd->a);
        if (id < 0) {
            st = bp_error_wrap(BP_ERR_SHAPE, "fold_bn");
            goto done;
        }
        map[out_v] = id;
        if (out_v != nd->out)
            map[nd->out] = id; /* nothing else reads it */
    }
    ng->output = map[g->output];
    if (ng->output < 0) {
        st = bp_error(BP_ERR_FORMAT, "fold_bn: the graph output is not produced");
        goto done;
    }
done:
    free(map), free(uses), free(skip), free(w), free(b);
    if (st) {
        bp_graph_free(ng);
        return st;
    }
    *out = ng;
    if (nfolded)
        *nfolded = folded;
    return BP_OK;
}
