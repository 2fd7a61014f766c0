/* plan_bits.h — a plan file's per-layer bits as arrays indexed like
 * bp_graph_layers(g), which is what the quantizer takes. */
#ifndef BP_PLAN_BITS_H
#define BP_PLAN_BITS_H

#include "core/graph.h"
#include "ilp/plan.h"

/* Matches plan layers to the graph's layers by name. Errors
 * (BP_ERR_MISMATCH, naming plan_name and the layer): the plan's model hash
 * differs from g->sha256 (when both are known); a plan layer the model does
 * not have; a model layer the plan does not give bits for.
 * wbits, abits: (number of layers of g). */
bp_status bp_plan_to_bits(const bp_plan *p, const char *plan_name, const bp_graph *g, int *wbits,
                          int *abits);

#endif
