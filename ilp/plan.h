/* plan.h — the plan file: per-layer weight and activation bit-widths chosen by
 * the search (or written by hand), with totals, constraint slacks and solver
 * status. JSON, "format": "bitplan-plan", "version": 1; every field is listed
 * in docs/FORMATS.md ("Plan file").
 *
 * Consumers (quant/, eval --plan, export, plots) need only the per-layer
 * {name, wbits, abits}; a hand-written plan may contain just those (the
 * reader fills the rest as "unknown"). A HAWQ-style "bit_config" object
 * {layer name: wbits} is written alongside and, when "layers" is absent, read
 * in its place (activation bits then follow bp_default_abits).
 */
#ifndef BP_PLAN_H
#define BP_PLAN_H

#include "core/bp_common.h"

#define BP_PLAN_FORMAT "bitplan-plan"
#define BP_PLAN_VERSION 1

/* Activation bits that go with weight bits when activations are not searched
 * (HAWQ-V3 pairs 8-bit weights with 8-bit activations and 4 with 4; below 4
 * weight bits activations stay at 4, above they follow the weights):
 * a = max(w, 4). */
int bp_default_abits(int wbits);

typedef enum { BP_CON_SIZE = 0, BP_CON_BOPS, BP_CON_LATENCY, BP_CON_COUNT } bp_con_kind;

/* "size", "bops", "latency". */
const char *bp_con_name(bp_con_kind k);
/* Units of that constraint's values: "bytes", "BOPs", "ms". */
const char *bp_con_unit(bp_con_kind k);

typedef enum {
    BP_PLAN_UNKNOWN = 0,   /* hand-written plan, no solver involved */
    BP_PLAN_OPTIMAL,       /* proven optimal (GLPK: GLP_OPT, zero gap) */
    BP_PLAN_FEASIBLE       /* best found before the time limit; not proven optimal */
} bp_plan_status;

/* "unknown", "optimal", "feasible". */
const char *bp_plan_status_name(bp_plan_status s);

typedef struct {
    char name[160];
    int wbits, abits;
    /* What the search computed for this layer (NaN when unknown): */
    double size_bytes;     /* see docs/ILP.md for what is counted */
    double bops;           /* MACs per sample · wbits · abits */
    double latency_ms;     /* NaN when no profile was given */
    double omega;          /* objective term of the chosen candidate: omega_w + omega_a */
    double omega_w;        /* its weight part Ω_w(i, wbits) */
    double omega_a;        /* its activation part Ω_a(i, abits) (0 when the sensitivity
                              file has no activation terms) */
    int lat_fallback;      /* 1 when the latency came from a fallback model, not a measurement */
} bp_plan_layer;

typedef struct {
    int active;            /* 1 when the search used this budget */
    double budget;         /* in bp_con_unit(k) */
    double value;          /* the plan's total */
    double slack;          /* budget - value (>= 0 for a feasible plan) */
} bp_plan_con;

typedef struct {
    char model_sha256[65];       /* copied from the sensitivity file; "" when unknown */
    char sensitivity_path[1024]; /* the sensitivity file the plan came from; "" when unknown */
    char profile[1024];          /* latency profile path; "" when none */

    int nlayers;
    bp_plan_layer *layers;       /* (nlayers) in the model's node order */

    /* Totals (NaN when unknown; latency_ms NaN when no profile). */
    double size_bytes, bops, latency_ms;
    bp_plan_con con[BP_CON_COUNT];

    double objective;            /* Σ Ω of the chosen candidates; NaN when unknown */
    bp_plan_status status;
    double solve_seconds;        /* wall time of the solve; NaN when unknown */
} bp_plan;

/* Zeroes *p and allocates nlayers layers with NaN numbers. */
bp_status bp_plan_init(bp_plan *p, int nlayers);
/* Frees and zeroes; accepts NULL and zeroed structs. */
void bp_plan_free(bp_plan *p);
/* Deep copy into a zeroed *dst. */
bp_status bp_plan_copy(bp_plan *dst, const bp_plan *src);

/* Reads and validates a plan file; messages name the file, the layer and the
 * field. On failure *p is left zeroed. */
bp_status bp_plan_read(const char *path, bp_plan *p);
bp_status bp_plan_parse(const char *text, size_t len, const char *name, bp_plan *p);
/* Checks names non-empty and unique, bits in 1..16, numbers finite where set,
 * slack = budget - value for active constraints. */
bp_status bp_plan_validate(const bp_plan *p, const char *name);
/* Writes the plan atomically (validates first). */
bp_status bp_plan_write(const char *path, const bp_plan *p);

/* Index of the layer called `name`, or -1. */
int bp_plan_find(const bp_plan *p, const char *name);

#endif
