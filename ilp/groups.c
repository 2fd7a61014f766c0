/* groups.c — tied groups derived from the graph: layers whose outputs meet at
 * one residual Add must share bit-widths, because an integer-only residual add
 * is cheapest (and HAWQ-V3 deploys it) with both branches at one precision. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ilp/ilp.h"

/* The only node reading value v, or -1 when none or several read it (a
 * branching output is not a plain path to one Add). */
static int sole_consumer(const bp_graph *g, int v)
{
    int found = -1;
    for (int k = 0; k < g->nnodes; k++) {
        const bp_node *nd = &g->nodes[k];
        for (int j = 0; j < nd->nin; j++) {
            if (nd->in[j] != v)
                continue;
            if (found >= 0 && found != k)
                return -1;
            found = k;
        }
    }
    return found;
}

static int passes_through(bp_op op)
{
    return op == BP_OP_BN || op == BP_OP_RELU || op == BP_OP_CLIP || op == BP_OP_IDENTITY;
}

/* Node index of the residual Add that layer l's output reaches, or -1. */
static int residual_add_of(const bp_graph *g, const bp_layer *l)
{
    int v = l->output;
    for (int steps = 0; steps < g->nnodes && v >= 0; steps++) {
        int k = sole_consumer(g, v);
        if (k < 0)
            return -1;
        const bp_node *nd = &g->nodes[k];
        if (nd->op == BP_OP_ADD) {
            if (nd->nin != 2)
                return -1;
            for (int j = 0; j < 2; j++)
                if (nd->in[j] < 0 || nd->in[j] >= g->nvalues ||
                    g->values[nd->in[j]].kind == BP_VAL_PARAM)
                    return -1;  /* a bias add, not a residual join */
            return k;
        }
        if (!passes_through(nd->op) || nd->in[0] != v)
            return -1;
        v = nd->out;
    }
    return -1;
}

bp_status bp_graph_residual_ties(const bp_graph *g, const bp_layer *layers, int n,
                                 int *group_of_layer)
{
    int *add = malloc((n ? (size_t)n : 1) * sizeof *add);
    if (!add)
        return bp_error(BP_ERR_NOMEM, "residual ties: out of memory");
    for (int i = 0; i < n; i++) {
        if (layers[i].output < 0 || layers[i].output >= g->nvalues) {
            free(add);
            return bp_error(BP_ERR_ARG, "residual ties: layer %d (%s) has no output value in the graph",
                            i, layers[i].name);
        }
        add[i] = residual_add_of(g, &layers[i]);
        group_of_layer[i] = -1;
    }
    int ng = 0;
    for (int i = 0; i < n; i++) {
        if (add[i] < 0 || group_of_layer[i] >= 0)
            continue;
        int members = 0;
        for (int j = i; j < n; j++)
            members += add[j] == add[i];
        if (members < 2)
            continue;
        for (int j = i; j < n; j++)
            if (add[j] == add[i])
                group_of_layer[j] = ng;
        ng++;
    }
    free(add);
    return BP_OK;
}

bp_status bp_sens_set_residual_ties(bp_sens *s, const bp_graph *g)
{
    bp_layer *ls = malloc((s->nlayers ? (size_t)s->nlayers : 1) * sizeof *ls);
    int *grp = malloc((s->nlayers ? (size_t)s->nlayers : 1) * sizeof *grp);
    bp_status st = BP_OK;
    if (!ls || !grp) {
        st = bp_error(BP_ERR_NOMEM, "residual ties: out of memory");
        goto done;
    }
    for (int i = 0; i < s->nlayers; i++)
        ls[i] = s->layers[i].sig;
    if ((st = bp_graph_residual_ties(g, ls, s->nlayers, grp)))
        goto done;
    for (int i = 0; i < s->nlayers; i++) {
        if (grp[i] < 0)
            continue;
        int k = residual_add_of(g, &ls[i]);
        const char *nm = g->nodes[k].name;
        if (nm && nm[0] && strlen(nm) < sizeof s->layers[i].tie)
            snprintf(s->layers[i].tie, sizeof s->layers[i].tie, "%s", nm);
        else
            snprintf(s->layers[i].tie, sizeof s->layers[i].tie, "add@%d", k);
    }
done:
    free(ls);
    free(grp);
    return st;
}
