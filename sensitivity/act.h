/* act.h — activation sensitivity: for the input activation of every layer
 * (the tensor a Conv/Gemm/MatMul reads, which the validation stage quantizes
 * at the layer's activation bits), the trace of the loss Hessian with respect
 * to that activation, and Ω_a(b) = Tr(H_a)/n_a · ‖Q_b(a) − a‖² for every
 * candidate activation bit-width b. Fills the sensitivity file's activation
 * fields (sens_file.h: act_trace, act_stderr, act_probes, act_candidates).
 * docs/SENSITIVITY.md ("Activation sensitivity") has the method and the
 * scale; this header the contract.
 *
 * What is differentiated. L = (1/N) Σ_s ℓ_s, the mean cross-entropy over the
 * N calibration samples, in inference form (BN with running statistics) —
 * the same loss as the weight traces. A_i is layer i's input activation of
 * all N samples stacked (N·n_a entries, n_a per sample), *as read by layer i
 * alone*: when the tensor has other readers (a residual Add, a second conv)
 * they keep the unperturbed value, because the validation stage gives a
 * layer that reads fewer bits its own requantized copy. H_a = ∂²L/∂A_i²,
 * which is block diagonal over samples (samples do not interact in
 * inference), so
 *     Tr(H_a) = Σ_s Tr((1/N) ∂²ℓ_s/∂a_s²) = mean over s of Tr(∂²ℓ_s/∂a_s²).
 *
 * Products are exact (Pearlmutter's R-operator: bp_rop_forward perturbing
 * the layer's private input, bp_loss_softmax_ce_rop, bp_rop_backward;
 * bp_exec_rgrad then holds H_a v). A Hutchinson probe is a Rademacher vector
 * over all N·n_a entries; one probe of one layer costs one R-forward (from
 * the layer on) and one R-backward per batch, with the forward shared by
 * every layer and probe of a pass over the data.
 *
 * The quantizer Q_b is the validation stage's (quant/qmodel.h): per tensor,
 * zero point 0, unsigned after ReLU/ReLU6 (Clip with min >= 0, through
 * pooling/flatten), signed otherwise, clipping value c from quant/calib.h on
 * the tensor the stage calibrates (its "root": before max pooling etc.),
 * scale c/(2^b − 1) unsigned, c/(2^(b−1) − 1) signed,
 * Q(x) = s·clamp(round(x/s), qmin, qmax), round half away from zero.
 *
 * Library code: never prints; errors through bp_error.
 */
#ifndef BP_ACT_H
#define BP_ACT_H

#include "quant/calib.h"
#include "sensitivity/sensitivity.h"

/* Activation bits accepted (the quantizer's range; the integer engine takes
 * 2..8, the search and this file up to 16). */
#define BP_ACT_MIN_BITS 2
#define BP_ACT_MAX_BITS 16

typedef struct {
    int samples, batch;      /* samples for the traces and ‖ΔA‖² (default 512), batch (64) */
    bp_trace_opts trace;     /* stop rule and seed; the scheme is ignored (one
                                activation per product by construction) */
    int nbits;               /* candidate activation bits (default {2,3,4,5,6,8}) */
    int bits[BP_SENS_MAX_CAND];
    bp_calib_method calib;   /* activation ranges (default mse, as bitplan eval) */
    double percentile;       /* for BP_CALIB_PERCENTILE (default 99.99) */
    int calib_samples;       /* ranges from the first N samples (default 256, as
                                bitplan eval --calib); capped at the data */
    bp_neg_policy neg;       /* what Ω does with a negative trace (default abs) */
} bp_act_opts;

bp_act_opts bp_act_opts_default(void);

/* ---- the pieces (tests use them directly) ---------------------------------- */

/* A copy of g in which every layer reads its input through a private Identity
 * node, so that perturbing that Identity's output perturbs what the layer
 * reads and nothing else. act_value[i] (malloc'd, nlayers entries, layer order
 * of bp_graph_layers) is the value id of layer i's private input in *out.
 * Parameters are copied exactly (bp_real), layer names and order are g's. */
bp_status bp_act_graph(const bp_graph *g, bp_graph **out, int **act_value, int *nlayers);

/* The activation quantizer of one layer's input. */
typedef struct {
    int is_signed;
    int nbits;
    int bits[BP_SENS_MAX_CAND];
    double clip[BP_SENS_MAX_CAND];   /* clipping value c at bits[k] */
    double scale[BP_SENS_MAX_CAND];  /* c / levels */
} bp_act_quant;

/* The validation stage's activation quantizer for every layer of g (layer
 * order of bp_graph_layers), calibrated on the ncalib samples calib_x with
 * o->calib / o->percentile, for o->bits. Uses bp_qmodel_build to find each
 * layer's calibrated tensor and its sign, so a model that stage refuses is
 * refused here too (the error says why). out has nlayers entries. */
bp_status bp_act_quantizers(const bp_graph *g, const bp_real *calib_x, int ncalib,
                            const bp_act_opts *o, bp_act_quant *out);

/* ‖Q(x) − x‖² over n values with the quantizer's k-th bit-width. */
double bp_act_quant_err2(const bp_act_quant *q, int k, const bp_real *x, size_t n);

/* ---- the operator -------------------------------------------------------- */

/* H_a as an operator for each layer (see the header comment): the data are
 * streamed in batches; the stream is rewound before every pass. */
typedef struct bp_act_op bp_act_op;

bp_status bp_act_op_new_stream(const bp_graph *g, bp_stream *s, int samples, int batch,
                               bp_act_op **out);
/* x (n, per-sample input shape), y (n): not copied, must outlive the op. */
bp_status bp_act_op_new_memory(const bp_graph *g, const bp_real *x, const int *y, int n,
                               int batch, bp_act_op **out);
void bp_act_op_free(bp_act_op *m); /* accepts NULL */

/* Layers (g's, node order) and samples N. */
int bp_act_op_layers(const bp_act_op *m, const bp_layer **layers);
int bp_act_op_samples(const bp_act_op *m);
/* n_a: elements of layer i's input per sample. */
size_t bp_act_op_numel(const bp_act_op *m, int layer);
/* hv = H_a v for layer `layer`, v and hv of N·n_a entries (sample-major, each
 * sample laid out like the activation). */
bp_status bp_act_op_apply(bp_act_op *m, int layer, const double *v, double *hv);
/* R-passes done so far (one per layer, probe and batch) and the mean loss at
 * the last pass. */
long bp_act_op_rpasses(const bp_act_op *m);
double bp_act_op_loss(const bp_act_op *m);

/* Hutchinson traces of every layer's H_a with the stop rule of o->trace,
 * each layer on its own (a layer stops when it has converged or reached
 * max_probes; probes past its stop are discarded, so the result does not
 * depend on how probes are grouped). Probe k of layer i is a Rademacher
 * vector drawn from a counter-based generator keyed by (seed, i, k, sample),
 * so it does not depend on the batch size either. With quant (may be NULL),
 * dx2 (nlayers × quant[i].nbits, row i at dx2 + i·BP_SENS_MAX_CAND) receives
 * mean over samples of ‖Q(a_s) − a_s‖², computed during the first pass. */
bp_status bp_act_traces(bp_act_op *m, const bp_trace_opts *o, const bp_act_quant *quant,
                        bp_trace_est *est, double *dx2, bp_progress_fn progress, void *pctx);

/* ---- the driver ------------------------------------------------------------ */

typedef struct {
    long rpasses;       /* R-forward + R-backward pairs, per batch */
    double seconds;     /* wall time */
    double loss;        /* mean calibration loss */
    int samples, calib_samples;
    double *tol_reached; /* (nlayers) relative change at the last probe; free() it */
} bp_act_report;

/* Fills the activation fields of every layer of *sens (already filled by
 * bp_sens_run for g: same layers, same order, checked by name) and the
 * activation settings: act_trace, act_stderr, act_probes, act_converged,
 * act_numel, act_signed, and act_candidates {bits, clip, dx2 = mean over the
 * samples of ‖Q_b(a_s) − a_s‖², omega = bp_sens_omega(act_trace, n_a, dx2,
 * o->neg)}. Ranges come from the first o->calib_samples samples of s, traces
 * and dx2 from the first o->samples. Progress stage "act-trace". On failure
 * the activation fields of *sens are left untouched. report may be NULL. */
bp_status bp_act_sens_run(const bp_graph *g, bp_stream *s, const bp_act_opts *o, bp_sens *sens,
                          bp_act_report *report, bp_progress_fn progress, void *pctx);

#endif
