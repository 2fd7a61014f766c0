/* plan_bits.c — plan -> per-layer bit arrays (plan_bits.h). */
#include "quant/plan_bits.h"

#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"

bp_status bp_plan_to_bits(const bp_plan *p, const char *plan_name, const bp_graph *g, int *wbits,
                          int *abits)
{
    const char *model = g->source && g->source[0] ? g->source : "the model";
    static const uint8_t zero[32];
    if (p->model_sha256[0] && memcmp(g->sha256, zero, 32)) {
        char hex[65];
        bp_sha256_hex(g->sha256, hex);
        if (strcmp(hex, p->model_sha256))
            return bp_error(BP_ERR_MISMATCH,
                            "%s: the plan was made for the model with sha256 %.12s…, but %s has %.12s…",
                            plan_name, p->model_sha256, model, hex);
    }
    bp_layer *L = NULL;
    int nl = 0;
    bp_status st = bp_graph_layers(g, &L, &nl);
    if (st)
        return st;
    for (int i = 0; i < p->nlayers; i++) {
        int found = 0;
        for (int l = 0; l < nl; l++)
            found |= !strcmp(L[l].name, p->layers[i].name);
        if (!found) {
            st = bp_error(BP_ERR_MISMATCH, "%s: plan layer '%s' is not a layer of %s (is the plan for another model?)",
                          plan_name, p->layers[i].name, model);
            goto done;
        }
    }
    for (int l = 0; l < nl; l++) {
        int k = bp_plan_find(p, L[l].name);
        if (k < 0) {
            st = bp_error(BP_ERR_MISMATCH, "%s: no bits for layer '%s' of %s", plan_name, L[l].name, model);
            goto done;
        }
        wbits[l] = p->layers[k].wbits;
        abits[l] = p->layers[k].abits;
    }
done:
    free(L);
    return st;
}
