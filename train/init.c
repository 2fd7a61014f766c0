/* Initial parameter values for training (see bp_init_params in arch.h).
 *
 * Kaiming (He) normal with fan_in keeps the variance of activations roughly
 * constant through ReLU layers, which lets the ResNet and the BN-free LeNet
 * start learning at a large learning rate without a warm-up collapse. */
#include <math.h>
#include <string.h>

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "train/arch.h"

static void fill(bp_graph *g, int v, bp_real x)
{
    bp_real *p = g->params + g->values[v].offset;
    for (size_t i = 0; i < g->values[v].numel; i++)
        p[i] = x;
}

bp_status bp_init_params(bp_graph *g, unsigned long seed)
{
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    if (!r)
        return bp_error(BP_ERR_NOMEM, "out of memory for a random generator");
    gsl_rng_set(r, seed);
    /* node order is fixed by the builder, so the draws are reproducible */
    for (int i = 0; i < g->nnodes; i++) {
        const bp_node *n = &g->nodes[i];
        switch (n->op) {
        case BP_OP_CONV:
        case BP_OP_GEMM:
        case BP_OP_MATMUL: {
            if (n->nin < 2 || g->values[n->in[1]].kind != BP_VAL_PARAM)
                break;
            const bp_value *w = &g->values[n->in[1]];
            size_t fan_in = w->numel / (size_t)(w->dims[0] ? w->dims[0] : 1);
            if (n->op == BP_OP_MATMUL || (n->op == BP_OP_GEMM && !n->a.trans_b))
                fan_in = (size_t)w->dims[0]; /* (in, out) layout */
            double gain = n->out == g->output ? 1.0 : 2.0;
            double sd = sqrt(gain / (double)(fan_in ? fan_in : 1));
            bp_real *p = g->params + w->offset;
            for (size_t k = 0; k < w->numel; k++)
                p[k] = (bp_real)gsl_ran_gaussian_ziggurat(r, sd);
            if (n->nin > 2 && g->values[n->in[2]].kind == BP_VAL_PARAM)
                fill(g, n->in[2], 0);
            break;
        }
        case BP_OP_BN:
            fill(g, n->in[1], 1);
            fill(g, n->in[2], 0);
            fill(g, n->in[3], 0);
            fill(g, n->in[4], 1);
            break;
        default:
            break;
        }
    }
    gsl_rng_free(r);
    return BP_OK;
}
