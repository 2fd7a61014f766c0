/* sens_file.h — the sensitivity file: per-layer Hessian traces and the
 * quantization perturbation Ω for every candidate bit-width, as JSON
 * ("format": "bitplan-sensitivity", "version": 1, or 2 when the file carries
 * activation terms) with a CSV view.
 *
 * The file is the hand-over between `bitplan sensitivity` and `bitplan ilp`,
 * and it is meant to be written by other tools too: the search reads nothing
 * else. docs/FORMATS.md ("Sensitivity file") lists every field, which ones are
 * required, and a minimal hand-written example.
 *
 * Doubles everywhere (not bp_real): the file is the same whichever precision
 * the engine was built with.
 */
#ifndef BP_SENS_FILE_H
#define BP_SENS_FILE_H

#include "core/graph.h"

#define BP_SENS_FORMAT "bitplan-sensitivity"
/* Newest version read and written. Version 2 gives the activation fields
 * (act_*) the meaning of sensitivity/act.h; the writer uses it only for files
 * that have activation terms, so weight-only files stay version 1 and older
 * readers keep reading them. The reader accepts 1 and 2. */
#define BP_SENS_VERSION 2

/* Candidate bit-widths per layer, weights or activations. Bits are 1..16. */
#define BP_SENS_MAX_CAND 16
#define BP_SENS_MAX_BITS 16

/* One candidate weight bit-width b of one layer. */
typedef struct {
    int bits;        /* b */
    double dw2;      /* ‖Q_b(W) − W‖² (sum over all weights); NaN when absent */
    double omega;    /* Ω_i(b) = Tr(H_i)/n_i · dw2 (see DESIGN.md / docs/FORMATS.md) */
} bp_sens_cand;

/* One candidate activation bit-width a of a layer's input activation
 * (written by bp_act_sens_run, sensitivity/act.h); the search adds omega to
 * the objective of every (w, a) candidate with this a. */
typedef struct {
    int bits;        /* a */
    double dx2;      /* mean over the calibration samples of the per-sample
                        ‖Q_a(x_s) − x_s‖² (version 2); NaN when absent */
    double omega;    /* Ω_a = Tr(H_a)/n_a · dx2 */
    double clip;     /* the quantizer's clipping value c (scale c/(2^a−1) unsigned,
                        c/(2^(a−1)−1) signed); NaN when absent */
} bp_sens_act_cand;

typedef struct {
    /* Signature. From a file, the graph ids (node, weight, bias, input,
     * output) are -1; name, op, cout, cin, kh, kw, stride, group, in_h, in_w,
     * out_h, out_w, params, macs, fan_in are filled. */
    bp_layer sig;
    int has_bias;                         /* the layer has a bias operand (informative) */
    int in_ndim, out_ndim;                /* 0 when the shapes are not known */
    int64_t in_shape[BP_MAX_DIMS];        /* input activation, batch dim as in the model */
    int64_t out_shape[BP_MAX_DIMS];

    double trace;          /* Hutchinson estimate of Tr(H_i); may be negative; NaN when absent */
    double trace_stderr;   /* standard error of that mean; NaN when absent */
    int probes;            /* probes used (0 when absent) */
    int converged;         /* relative change fell under the tolerance */
    int has_eigenvalue;
    double eigenvalue;     /* top eigenvalue of H_i when has_eigenvalue */

    int ncand;                          /* >= 1, bits strictly increasing */
    bp_sens_cand cand[BP_SENS_MAX_CAND];

    /* Layers sharing a non-empty tie name must get the same bits (residual
     * branches meeting at one Add; see bp_graph_residual_ties in ilp/ilp.h). */
    char tie[64];

    /* Activation terms (optional in the file; sensitivity/act.h). */
    int has_act;
    double act_trace, act_stderr;       /* Hutchinson estimate of Tr(H_a) of the mean
                                           loss w.r.t. the layer's stacked input over
                                           the calibration set, its standard error;
                                           NaN when absent */
    int act_probes;                     /* probes used (0 when absent) */
    int act_converged;                  /* the stop rule was met */
    int64_t act_numel;                  /* n_a: input elements per sample (0 when absent) */
    int act_signed;                     /* quantizer sign: 1 signed, 0 unsigned, -1 unknown */
    int nact;
    bp_sens_act_cand act[BP_SENS_MAX_CAND];
} bp_sens_layer;

/* How the estimates were made (all optional in the file; has_settings = 0
 * when the object is absent). Strings are "" when absent. */
typedef struct {
    int has_settings;
    uint64_t seed;
    char probe[32];        /* probe scheme, e.g. "joint" (one probe over all layers) or "per-layer" */
    double tolerance;      /* relative-change stop rule */
    int min_probes, max_probes;
    int samples, batch;    /* calibration samples and batch size */
    char quantizer[16];    /* "maxabs" or "mse" (weight clipping for dw2) */
    int nbits;
    int bits[BP_SENS_MAX_CAND]; /* candidate weight bits the run evaluated */
    /* Activation terms ("act" object; has_act = 0 when absent). */
    int has_act;
    int act_samples;           /* samples of the activation traces and dx2 */
    int act_calib_samples;     /* samples the activation ranges were calibrated on */
    char act_calib[16];        /* "minmax", "percentile" or "mse" ("" when absent) */
    double act_percentile;     /* for "percentile"; NaN when absent */
    double act_tolerance;      /* stop rule of the activation traces */
    int act_min_probes, act_max_probes;
    int act_nbits;
    int act_bits[BP_SENS_MAX_CAND]; /* candidate activation bits the run evaluated */
} bp_sens_settings;

typedef struct {
    char model_path[1024];   /* "" when unknown */
    char model_sha256[65];   /* 64 lowercase hex digits, or "" when unknown */
    bp_sens_settings settings;

    int nlayers;
    bp_sens_layer *layers;   /* (nlayers), in the model's node order */

    /* Optional whole-model spectrum. */
    int ntop;
    double *top_eigenvalues; /* (ntop) */
    int ndensity;
    double *density_grid;    /* (ndensity) */
    double *density_values;  /* (ndensity) */
} bp_sens;

/* Zeroes *s and allocates nlayers layers with every number NaN/0, ids -1,
 * no candidates. Free with bp_sens_free. */
bp_status bp_sens_init(bp_sens *s, int nlayers);
/* Frees what *s owns and zeroes it. Accepts NULL and zeroed structs. */
void bp_sens_free(bp_sens *s);

/* Copies a graph layer's signature into sl->sig (ids included) and fills
 * in/out shapes from the graph when g is not NULL. */
void bp_sens_layer_set_sig(bp_sens_layer *sl, const bp_layer *l, const bp_graph *g);

/* Candidate with the given weight bits, or NULL. */
const bp_sens_cand *bp_sens_find_cand(const bp_sens_layer *sl, int bits);
/* Activation candidate with the given bits, or NULL. */
const bp_sens_act_cand *bp_sens_find_act(const bp_sens_layer *sl, int bits);

/* Reads and validates a sensitivity file. Every error names the file, and for
 * per-layer errors the layer index and name, and the field. On failure *s is
 * left zeroed. */
bp_status bp_sens_read(const char *path, bp_sens *s);
/* Same from a buffer; `name` stands for the file in messages. */
bp_status bp_sens_parse(const char *text, size_t len, const char *name, bp_sens *s);

/* Validates an in-memory sensitivity set (what the reader checks, applied
 * before writing too). `name` is used in messages. */
bp_status bp_sens_validate(const bp_sens *s, const char *name);

/* Writes the JSON file atomically (validates first). */
bp_status bp_sens_write(const char *path, const bp_sens *s);
/* Writes the CSV view atomically: one row per layer, the JSON fields
 * flattened; per-candidate columns dw2_b<k>, omega_b<k> for the union of all
 * layers' candidate bits (empty cell when a layer lacks that b), and
 * act_omega_a<k> when any layer has activation terms. */
bp_status bp_sens_write_csv(const char *path, const bp_sens *s);

/* Op of a layer from its ONNX name ("Conv", "Gemm", "MatMul"); -1 otherwise. */
int bp_sens_op_from_name(const char *name);

#endif
