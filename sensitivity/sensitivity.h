/* sensitivity.h — Hessian sensitivity of a network's layers: Hutchinson
 * traces per block, top eigenvalues (power iteration, deflation), the
 * eigenvalue density by stochastic Lanczos quadrature, and the driver that
 * turns a model and calibration data into a sensitivity file (sens_file.h).
 *
 * The algorithms work on an abstract symmetric operator v -> A v in double
 * precision (bp_linop), so they run the same on an explicit matrix with a
 * known spectrum (the tests) and on the loss Hessian of a model
 * (bp_model_op, which streams the calibration set through bp_hvp).
 *
 * Randomness: Rademacher probes and random starts come from GSL's
 * gsl_rng_mt19937 seeded with the caller's seed, so every result is
 * reproducible for a given seed. The library never prints: long runs report
 * progress through an optional callback. docs/SENSITIVITY.md has the method,
 * the defaults and their reasons.
 */
#ifndef BP_SENSITIVITY_H
#define BP_SENSITIVITY_H

#include <stdint.h>

#include "core/data.h"
#include "core/graph.h"
#include "quant/wquant.h"
#include "sensitivity/sens_file.h"

/* ---- the operator ------------------------------------------------------- */

/* hv = A v (overwritten), both of length n. A must be symmetric. */
typedef bp_status (*bp_linop_fn)(void *ctx, const double *v, double *hv);
/* Optional: k products at once, v and hv (k, n) row by row. Worth having when
 * products share work (the model operator runs one forward pass per batch
 * for all k directions). Must give what k calls of apply give. */
typedef bp_status (*bp_linop_many_fn)(void *ctx, int k, const double *v, double *hv);

typedef struct {
    size_t n;
    bp_linop_fn apply;
    void *ctx;
    bp_linop_many_fn apply_many; /* may be NULL */
} bp_linop;

/* k products through apply_many when the operator has it, else k applies. */
bp_status bp_linop_apply_many(const bp_linop *op, int k, const double *v, double *hv);

/* A contiguous block [off, off + len) of the operator's vector: one layer. */
typedef struct {
    size_t off, len;
} bp_block;

/* Progress reports from long loops (the library never prints). */
typedef struct {
    const char *stage;  /* "trace", "eigen", "topk", "density" */
    int block;          /* block (layer) index, or -1 for the whole operator */
    int nblocks;
    int step;           /* probes / iterations / Lanczos steps done */
    double estimate;    /* current estimate (trace mean, eigenvalue) */
    double change;      /* current relative change */
} bp_progress;
typedef void (*bp_progress_fn)(void *ctx, const bp_progress *p);

/* ---- Hutchinson traces (hutchinson.c) ------------------------------------ */

typedef enum {
    BP_PROBE_JOINT,    /* one probe over every block per product; each block's
                          estimate v_iᵀ(Av)_i from that product (cross terms
                          have zero mean but add variance) */
    BP_PROBE_PER_LAYER /* a probe on one block at a time: one product per block */
} bp_probe_scheme;

const char *bp_probe_name(bp_probe_scheme s);  /* "joint", "per-layer" */
int bp_probe_parse(const char *name);          /* -1 when unknown */

typedef struct {
    bp_probe_scheme scheme;
    double tol;        /* stop when |m_k − m_{k−1}| <= tol·|m_k| (default 1e-3) */
    int min_probes;    /* never stop before this many probes (default 10) */
    int max_probes;    /* never use more (default 200) */
    uint64_t seed;     /* default 1 */
    int group;         /* probes drawn and multiplied together (default 4;
                          results do not depend on it: probes past the stop
                          are discarded) */
} bp_trace_opts;

bp_trace_opts bp_trace_opts_default(void);

typedef struct {
    double mean;        /* estimate of Tr(A_ii) */
    double se;          /* standard error of the mean (sample sd / sqrt(probes)) */
    int probes;         /* probes used */
    int converged;      /* the stop rule was met after min_probes */
    double tol_reached; /* relative change at the last probe (what to warn with) */
} bp_trace_est;

/* Per-block traces of A. With BP_PROBE_JOINT the probes are restricted to the
 * union of the blocks; the loop runs until every block has met the stop rule
 * (a block keeps accumulating after it has: the products are paid for anyway)
 * or max_probes. With BP_PROBE_PER_LAYER each block runs its own loop with its
 * own probes. A probe value that is not finite is BP_ERR_NUMERIC naming the
 * block. Not converging is not an error: see converged / tol_reached. */
bp_status bp_hutchinson(const bp_linop *op, const bp_block *blocks, int nblocks,
                        const bp_trace_opts *o, bp_trace_est *out, bp_progress_fn progress,
                        void *pctx);

/* ---- eigenvalues (eigen.c) ------------------------------------------------ */

typedef struct {
    double tol;       /* stop when |λ_k − λ_{k−1}| <= tol·|λ_k| (default 1e-3) */
    int max_iter;     /* default 100 */
    uint64_t seed;    /* random start, default 1 */
} bp_eig_opts;

bp_eig_opts bp_eig_opts_default(void);

typedef struct {
    double value;     /* Rayleigh quotient vᵀAv at the last iterate */
    int iters;
    int converged;
    double tol_reached;
} bp_eig_est;

/* Dominant eigenvalue (largest |λ|) of A restricted to block (NULL = the whole
 * operator) by power iteration from a Rademacher start. vec (block length, may
 * be NULL) receives the unit eigenvector estimate. */
bp_status bp_power_iteration(const bp_linop *op, const bp_block *block, const bp_eig_opts *o,
                             bp_eig_est *out, double *vec, bp_progress_fn progress, void *pctx);

/* The k dominant eigenvalues of A, each by power iteration on A deflated by
 * the ones already found (iterates are kept orthogonal to the earlier
 * eigenvectors, PyHessian's scheme). vals (k) in the order found (decreasing
 * |λ|); vecs (k·n, may be NULL). */
bp_status bp_top_eigenvalues(const bp_linop *op, int k, const bp_eig_opts *o, bp_eig_est *vals,
                             double *vecs, bp_progress_fn progress, void *pctx);

/* ---- spectral density (lanczos.c) ----------------------------------------- */

typedef struct {
    int steps;        /* Lanczos steps m per run (default 80, capped at n) */
    int runs;         /* random starts (default 4) */
    int grid;         /* density grid points (default 1000) */
    double sigma;     /* Gaussian width, relative to the spectrum's span
                         (default 0.01; PyHessian uses σ² = 1e-5·max(1, span)) */
    uint64_t seed;
} bp_slq_opts;

bp_slq_opts bp_slq_opts_default(void);

typedef struct {
    int runs, steps;       /* steps actually done (Lanczos may stop early on an
                              invariant subspace; missing nodes have weight 0) */
    double *nodes;         /* (runs·steps) Ritz values θ_j */
    double *weights;       /* (runs·steps) τ_j = (first component of the Ritz vector)²; sum 1 per run */
    int grid;
    double *x;             /* (grid) points, spanning [θ_min − 5σ, θ_max + 5σ] */
    double *density;       /* (grid) mean over runs of Σ_j τ_j N(x; θ_j, σ²); integrates to 1 */
    double sigma;          /* the absolute width used */
} bp_slq_result;

/* Density of A's eigenvalues: for each run a Rademacher start normalized to
 * unit length, m Lanczos steps with full reorthogonalization (twice, against
 * every previous vector), the tridiagonal eigenproblem by LAPACKE_dstev, and
 * Gaussian broadening on a grid. Free with bp_slq_free. */
bp_status bp_slq_density(const bp_linop *op, const bp_slq_opts *o, bp_slq_result *out,
                         bp_progress_fn progress, void *pctx);
void bp_slq_free(bp_slq_result *r); /* accepts NULL and zeroed */

/* ---- the model's Hessian as an operator (hvp_op.c) ------------------------- */

/* The loss Hessian of a graph (mean softmax cross-entropy over the calibration
 * set, inference mode: BN with running statistics) restricted to the weights
 * of its layers (bp_graph_layers), as a bp_linop on the concatenation of those
 * weights in layer order. Each product streams the data in batches through
 * bp_hvp and weights each batch by n_batch / N, so memory does not grow with N.
 * Block i of the operator's vector is layer i's weight. */
typedef struct bp_model_op bp_model_op;

/* From a stream: uses the first `samples` samples (0 = all) in batches of
 * `batch`. The stream is rewound before every product; it must outlive the op.
 * The graph's parameters are read, never written. */
bp_status bp_model_op_new_stream(const bp_graph *g, bp_stream *s, int samples, int batch,
                                 bp_model_op **out);
/* From arrays in memory: x (n, per-sample input shape), y (n); not copied. */
bp_status bp_model_op_new_memory(const bp_graph *g, const bp_real *x, const int *y, int n,
                                 int batch, bp_model_op **out);
void bp_model_op_free(bp_model_op *m); /* accepts NULL */

/* The engine runs the graph with inference BN folded into the conv before it
 * and maps vectors in and results out, so products are still those of the
 * Hessian with respect to the original weights (docs/SENSITIVITY.md). This
 * flag runs the graph as given instead (for tests and benchmarks). */
enum { BP_MODEL_OP_NO_BN_FOLD = 1u << 0 };
bp_status bp_model_op_new_memory_flags(const bp_graph *g, const bp_real *x, const int *y, int n,
                                       int batch, unsigned flags, bp_model_op **out);
/* BatchNormalization nodes folded (0 with BP_MODEL_OP_NO_BN_FOLD). */
int bp_model_op_folded(const bp_model_op *m);
/* The mean gradient over the calibration set with respect to the layers'
 * weights, in the operator's layout (grad has the operator's length n);
 * also updates bp_model_op_loss. */
bp_status bp_model_op_gradient(bp_model_op *m, double *grad);

/* The operator view (valid while m lives) and the layer blocks. */
bp_linop bp_model_op_linop(bp_model_op *m);
int bp_model_op_layers(const bp_model_op *m, const bp_layer **layers, const bp_block **blocks);
/* Samples the operator uses; products done so far; the mean loss over the
 * calibration set at the last product. */
int bp_model_op_samples(const bp_model_op *m);
long bp_model_op_products(const bp_model_op *m);
double bp_model_op_loss(const bp_model_op *m);

/* ---- the driver (run.c) --------------------------------------------------- */

/* What Ω does with a negative trace (see docs/SENSITIVITY.md). */
typedef enum {
    BP_NEG_ABS,   /* Ω uses |Tr(H_i)| (default) */
    BP_NEG_CLAMP, /* Ω uses max(Tr(H_i), 0) */
    BP_NEG_KEEP   /* Ω uses Tr(H_i) as is (lower bits then look better) */
} bp_neg_policy;

const char *bp_neg_name(bp_neg_policy p);
int bp_neg_parse(const char *name);

typedef struct {
    int samples, batch;       /* calibration samples (default 512) and batch (64) */
    bp_trace_opts trace;
    int nbits;                /* candidate weight bit-widths (default {2,3,4,5,6,8}) */
    int bits[BP_SENS_MAX_CAND];
    bp_clip_mode clip;        /* default max-abs */
    bp_neg_policy neg;        /* default BP_NEG_ABS */
    int eig;                  /* per-layer top eigenvalue (default off) */
    bp_eig_opts eig_opts;
    int topk;                 /* whole-model top-k eigenvalues (0 = off) */
    int density;              /* SLQ density (default off) */
    bp_slq_opts slq;
} bp_sens_opts;

bp_sens_opts bp_sens_opts_default(void);

/* Per-layer facts the file has no field for, for the caller to report. */
typedef struct {
    int zero_weights;        /* every weight of the layer is 0 */
    double tol_reached;      /* trace: relative change at the last probe */
    int eig_converged;
    double eig_tol_reached;
} bp_sens_note;

typedef struct {
    long products;           /* Hessian-vector products done */
    double seconds;          /* wall time of the run */
    double loss;             /* mean calibration loss */
    int samples;
    bp_sens_note *notes;     /* (nlayers) malloc'd; free() it */
} bp_sens_report;

/* Fills *out (bp_sens_init'd here; free with bp_sens_free) for graph g with
 * calibration data from stream s: per-layer traces, ‖ΔW_b‖² and Ω per
 * candidate, and on request eigenvalues and the density. Checks the weights
 * are finite first (the error names the parameter) and that the loss is
 * finite. model_path may be NULL. report may be NULL. */
bp_status bp_sens_run(const bp_graph *g, bp_stream *s, const char *model_path,
                      const bp_sens_opts *o, bp_sens *out, bp_sens_report *report,
                      bp_progress_fn progress, void *pctx);

/* Ω_i(b) = T/n · dw2 with T the trace after the negative-trace policy. */
double bp_sens_omega(double trace, size_t n, double dw2, bp_neg_policy neg);

#endif
