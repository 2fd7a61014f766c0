/* ilp.h — the bit-width search: an integer program over per-layer candidates,
 * solved in-process with GLPK, plus budgets, Pareto sweeps and residual ties.
 *
 *   minimize   Σ_i Σ_c Ω_i(c) x_{i,c}
 *   subject to Σ_c x_{i,c} = 1                         every layer i
 *              Σ size_i(c) x_{i,c}    ≤ M               (when active)
 *              Σ bops_i(c) x_{i,c}    ≤ B               (when active)
 *              Σ lat_i(c) x_{i,c}     ≤ L               (when active)
 *              x_{i,k} = x_{j,k}                        i, j in one tied group
 *              x_{i,c} ∈ {0, 1}, only allowed candidates (allowed lists, pins)
 *
 * A candidate c is a (weight bits, activation bits) pair. By default every
 * weight bit-width in the sensitivity file is a candidate and activation bits
 * follow bp_default_abits (ilp/plan.h); with pairs, the candidates of a layer
 * are the pairs whose weight bits the layer has. Ω_i(c) = Ω_w(i, w) + Ω_a(i, a)
 * where Ω_a is 0 for a layer without activation terms.
 *
 * Costs (docs/ILP.md): size_i(c) = weight storage + 8·cout bytes (an int32
 * bias and a float32 scale per output channel); bops_i(c) = MACs_i·w·a per
 * sample; lat_i(c) from a latency profile (ms for the profile's batch).
 */
#ifndef BP_ILP_H
#define BP_ILP_H

#include "core/graph.h"
#include "ilp/plan.h"
#include "latency/profile.h"
#include "sensitivity/sens_file.h"

/* How weights are counted in size_i(c). */
typedef enum {
    BP_SIZE_PACKED = 0,  /* ceil(params·b/8): a bit stream (HAWQ-V3's accounting); default */
    BP_SIZE_CONTAINER    /* each weight in the smallest of 1, 2, 4, 8, 16 bits holding b:
                            3-bit weights take a nibble, 5..8-bit weights a byte */
} bp_size_model;

/* Weight storage in bytes of `params` weights at `bits` bits. */
double bp_weight_bytes(size_t params, int bits, bp_size_model m);

/* ---- the problem --------------------------------------------------------- */

typedef struct {
    int n;                  /* layers */
    char (*name)[160];      /* (n) */
    int *off;               /* (n+1): layer i's candidates are off[i] .. off[i+1]-1 */
    int *wbits, *abits;     /* (off[n]) */
    double *omega;          /* (off[n]) objective coefficient Ω_i(c) = Ω_w + Ω_a */
    double *omega_a;        /* (off[n]) its activation part Ω_a(i, a) (0 without activation
                               terms); allocated by bp_ilp_alloc, may be NULL in a
                               problem made by hand */
    double *cost[BP_CON_COUNT]; /* (off[n]) bytes, BOPs, ms; cost[BP_CON_LATENCY] NULL without latency */
    unsigned char *allowed; /* (off[n]) 0 for candidates excluded by pins / allowed lists / ties */
    unsigned char *lat_fallback; /* (off[n]) 1 when the latency came from a fallback; NULL without latency */
    int *group;             /* (n) tied group id 0..ngroups-1, or -1 */
    int ngroups;
} bp_ilp_problem;

/* Allocates a problem with n layers and ncand[i] candidates each; names
 * empty, candidates allowed, no groups, no latency. Free with bp_ilp_free. */
bp_status bp_ilp_alloc(bp_ilp_problem *p, int n, const int *ncand, int with_latency);
void bp_ilp_free(bp_ilp_problem *p);   /* accepts NULL / zeroed */

/* Checks sizes, finite non-negative costs, finite Ω, at least one allowed
 * candidate per layer, tied layers having identical allowed (w, a) sets.
 * Run by the solver before GLPK sees anything (GLPK aborts on bad input). */
bp_status bp_ilp_validate(const bp_ilp_problem *p);

/* Puts layers a and b in one tied group (merging groups) and restricts every
 * member's allowed candidates to the (w, a) pairs all members have.
 * BP_ERR_INFEASIBLE when no common candidate remains. */
bp_status bp_ilp_tie(bp_ilp_problem *p, int a, int b);

/* Restricts layer i to candidates with weight bits `wbits` (and activation
 * bits `abits` unless 0). BP_ERR_ARG when no allowed candidate has them. */
bp_status bp_ilp_pin(bp_ilp_problem *p, int i, int wbits, int abits);

/* Index of the layer called name, or -1. */
int bp_ilp_find(const bp_ilp_problem *p, const char *name);

/* ---- building from a sensitivity file ------------------------------------ */

typedef struct {
    char name[160];
    int wbits, abits;       /* abits 0: any */
} bp_ilp_pin_spec;

typedef struct {
    /* Candidates: npairs == 0 means every weight bit-width of the layer with
     * abits = bp_default_abits(w); else the listed (w, a) pairs. */
    int npairs;
    int pair_w[64], pair_a[64];
    /* Weight bits allowed everywhere (nbits == 0: all). */
    int nbits;
    int bits[BP_SENS_MAX_CAND];
    bp_size_model size_model;
    int pin_first_last;     /* pin the first and last layer at 8 bits (w8a8) */
    int npins;
    const bp_ilp_pin_spec *pins;
    int nties;
    const char *const *ties; /* each "A,B[,C...]": layer names separated by commas */
    int no_file_ties;       /* ignore the sensitivity file's "tie" names */
    const bp_profile *profile; /* NULL: no latency costs */
} bp_ilp_options;

/* Builds the problem for a sensitivity set. Errors name the layer / option. */
bp_status bp_ilp_from_sens(const bp_sens *s, const bp_ilp_options *o, bp_ilp_problem *p);

/* ---- budgets ------------------------------------------------------------- */

/* Parses an absolute budget with units:
 *   size:    "48KiB", "1.5MB", "2000000", "3.2MiB", "100kB", "12B" (B optional;
 *            k/M/G = 10^3/10^6/10^9, Ki/Mi/Gi = 2^10/2^20/2^30)
 *   bops:    "1.2G", "3e9", "800M", "5T" (k/M/G/T, optional "BOPs"/"bops")
 *   latency: "3.1ms", "850us", "0.002s" (unit required), result in ms.
 * Rejects empty, negative, NaN/Inf, trailing junk, unknown units. */
bp_status bp_parse_budget(bp_con_kind k, const char *text, double *out);
/* Parses a fraction r in [0, 1]. */
bp_status bp_parse_frac(const char *text, double *r);

/* Parses a candidate list "w4a8,W8A8,6:8,4" into (w, a) pairs, each of the
 * bit-widths in [1, max_bits]. A bare W gets a = bp_default_abits(W) when
 * default_abits is set (the search's convention), else a = W (a profile's
 * uniform WnAn). Returns the count, or -1 for a malformed list or more than max. */
int bp_parse_candidates(const char *s, int *wb, int *ab, int max, int max_bits, int default_abits);

typedef struct {
    int active[BP_CON_COUNT];
    double limit[BP_CON_COUNT];   /* absolute, in bp_con_unit() */
} bp_limits;

/* Smallest and largest total of one cost that any plan can reach, respecting
 * allowed candidates and ties (groups are independent, so this is exact). */
bp_status bp_ilp_range(const bp_ilp_problem *p, bp_con_kind k, double *lo, double *hi);

/* A budget as the user gave it: absolute or a fraction r of the range,
 * lo + r·(hi − lo) (HAWQ-V3's all-lowest to all-highest). */
typedef struct {
    int set;        /* 0 none, 1 absolute, 2 fraction */
    double value;
} bp_budget_spec;
bp_status bp_budgets_resolve(const bp_ilp_problem *p, const bp_budget_spec spec[BP_CON_COUNT],
                             bp_limits *out);

/* Command-line budget options shared by `bitplan ilp` and `bitplan plan`:
 * --size/--bops/--latency (absolute, with units) and --size-frac/--bops-frac/
 * --latency-frac. Returns 1 when opt is one of them and val parsed into
 * spec[kind]; 0 when opt is not a budget option; on a bad value or a second
 * budget of the same kind, -1 with bp_last_error set. */
int bp_budget_option(const char *opt, const char *val, bp_budget_spec spec[BP_CON_COUNT]);

/* ---- solving ------------------------------------------------------------- */

typedef struct {
    int *choice;            /* (n) chosen candidate of each layer (index into the flat arrays) */
    double objective;
    double total[BP_CON_COUNT];   /* NaN for latency without a table */
    bp_plan_status status;  /* OPTIMAL, or FEASIBLE when stopped by the time limit */
    double seconds;         /* wall time of the solve */
} bp_ilp_result;

void bp_ilp_result_free(bp_ilp_result *r);   /* accepts NULL / zeroed */

/* Solves with GLPK (presolve, zero MIP gap, terminal output off).
 * time_limit_s <= 0: no limit; when the limit passes, the best plan known
 * (GLPK's or the LP-based incumbent) is returned with status FEASIBLE. BP_ERR_INFEASIBLE: message states, for each
 * active constraint, the smallest total any plan reaches (and whether each
 * budget alone is reachable). BP_ERR_SOLVER: GLPK failed, or the time limit
 * passed before any plan was found. */
bp_status bp_ilp_solve(const bp_ilp_problem *p, const bp_limits *lim, double time_limit_s,
                       bp_ilp_result *r);

/* Flags of bp_ilp_solve_ex. By default the solver first solves the LP
 * relaxation, builds an incumbent plan from it (rounding plus local moves),
 * fixes every binary whose reduced cost proves it cannot be in a better plan,
 * and adds an objective cutoff at the incumbent; GLPK then proves optimality
 * on the smaller problem (docs/ILP.md). BP_ILP_PLAIN hands GLPK the whole
 * model instead (for benchmarks and tests of that step). */
enum { BP_ILP_PLAIN = 1 };
bp_status bp_ilp_solve_ex(const bp_ilp_problem *p, const bp_limits *lim, double time_limit_s,
                          unsigned flags, bp_ilp_result *r);
/* Same, with a plan (n candidate indices, e.g. the previous sweep point's)
 * that competes with the LP-based incumbent when it meets the budgets;
 * ignored when NULL or not a plan of p. */
bp_status bp_ilp_solve_hint(const bp_ilp_problem *p, const bp_limits *lim, double time_limit_s,
                            unsigned flags, const int *hint, bp_ilp_result *r);

/* Totals and objective of a given choice (used by the solver's exact
 * post-check and by tests). */
void bp_ilp_evaluate(const bp_ilp_problem *p, const int *choice, double *objective,
                     double total[BP_CON_COUNT]);

/* Fills a plan (zeroed *plan) from a result. s may be NULL (no model hash). */
bp_status bp_ilp_to_plan(const bp_ilp_problem *p, const bp_ilp_result *r, const bp_limits *lim,
                         const bp_sens *s, bp_plan *plan);

/* ---- Pareto sweep -------------------------------------------------------- */

typedef struct {
    double budget, budget_max;  /* budgets (first and last) that gave this plan */
    double objective;
    double total[BP_CON_COUNT];
    bp_plan_status status;
    int *choice;                /* (n) */
} bp_sweep_point;

/* Solves npoints (>= 2) budgets of kind k evenly spaced between the range's lo
 * and hi, with the other active limits of *base held; budgets where no plan
 * exists (other limits) are skipped; consecutive identical plans are
 * collapsed into one point. *pts is malloc'd; free with bp_sweep_free. */
bp_status bp_ilp_sweep(const bp_ilp_problem *p, const bp_limits *base, bp_con_kind k,
                       int npoints, double time_limit_s, bp_sweep_point **pts, int *npts);
void bp_sweep_free(bp_sweep_point *pts, int n);

/* Frontier files: CSV (one row per point: budget, budget_max, objective,
 * size_bytes, bops, latency_ms, status, then w_<layer> and a_<layer>) and JSON
 * ("format": "bitplan-frontier"), see docs/FORMATS.md. */
bp_status bp_sweep_write_csv(const char *path, const bp_ilp_problem *p, bp_con_kind k,
                             const bp_sweep_point *pts, int n);
bp_status bp_sweep_write_json(const char *path, const bp_ilp_problem *p, bp_con_kind k,
                              const bp_sweep_point *pts, int n, const bp_sens *s);

/* ---- residual ties from the graph ------------------------------------------ */

/* For each of the n layers, follows its output through single-consumer
 * BatchNormalization / Relu / Clip / Identity nodes; when that reaches an Add
 * of two activations, the layer belongs to that Add. Layers meeting at one Add
 * (a downsample shortcut conv and its block's last conv) share a group:
 * group_of_layer[i] = 0..k-1 for layers in groups of two or more, else -1. */
bp_status bp_graph_residual_ties(const bp_graph *g, const bp_layer *layers, int n,
                                 int *group_of_layer);
/* Same, writing each grouped layer's tie name (the Add node's name, or
 * "add@<node index>" when it has none) into s->layers[i].tie. s's layers must
 * be the graph's layers in order (sig.node set). */
bp_status bp_sens_set_residual_ties(bp_sens *s, const bp_graph *g);

#endif
