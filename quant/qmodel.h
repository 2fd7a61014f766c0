/* qmodel.h — a model quantized per plan, ready for integer-only inference
 * (int_engine.c) and for the float simulation of the same plan (fakequant.c).
 *
 * Building (bp_qmodel_build):
 *  1. BN is folded into the preceding convs (fold_bn.h).
 *  2. Tensors. Every op output is a quantized tensor (zero point 0), except a
 *     Conv/Gemm/MatMul/Add output read only by one Relu/Clip: that clamp is
 *     fused (the producer requantizes straight to the clamp's output). MaxPool,
 *     AveragePool, GlobalAveragePool, Relu/Clip, Flatten, Reshape and Identity
 *     keep their input's scale and bits. A tensor is unsigned when it comes out
 *     of a ReLU or of a Clip with min >= 0 (directly, or through those
 *     scale-keeping ops), signed otherwise.
 *  3. Bits. Layer i reads its input at abits[i], weights at wbits[i] (both
 *     2..8; indexed like bp_graph_layers). A tensor is stored at the largest
 *     bits any reader asks for (layers ask abits, Add asks 8, scale-keeping
 *     ops pass on what their readers ask); a layer whose abits are lower gets
 *     its own requantized copy (a "view"). The graph output (logits) is int32
 *     at a 16-bit scale (logit range / 32767), so argmax is exact and the
 *     comparison with the simulation is fine-grained.
 *  4. Ranges from calibration (calib.h) on the folded float model.
 *  5. Weights: symmetric per output channel (quant/wquant.h), packed panels
 *     (qkernels.h); bias int32 at s_in·s_w[c]; per-channel {mult, shift} for
 *     s_in·s_w[c]/s_out. Residual Add: both inputs shifted left by 20 bits,
 *     rescaled by s_a/(2·max(s_a, s_b)) and s_b/(2·max) to a common scale,
 *     added in int32, rescaled by 2·max/(2^20·s_out), clamped (TFLite's
 *     scheme). Average pooling divides with bp_round_div.
 *  6. pow2: every activation and weight scale is rounded up to a power of
 *     two, so every multiplier is a power of two and requantization is a
 *     single rounding shift.
 */
#ifndef BP_QMODEL_H
#define BP_QMODEL_H

#include "core/graph.h"
#include "quant/calib.h"
#include "quant/qkernels.h"
#include "quant/wquant.h"

typedef struct {
    bp_calib_method calib;  /* default BP_CALIB_MSE */
    double percentile;      /* for BP_CALIB_PERCENTILE, default 99.99 */
    int pow2;               /* power-of-two scales */
    bp_clip_mode wclip;     /* weight clipping, default max-abs */
    int logit_bits;         /* default 16 */
} bp_qopts;

bp_qopts bp_qopts_default(void);

typedef struct {
    int value;             /* value id in the folded graph (-1 for a view) */
    bp_qtype type;         /* storage: S8/U8, or S32 for logits */
    int bits;              /* 2..8, or logit_bits */
    int is_signed;
    double scale;          /* real = scale · q */
    int32_t qmin, qmax;
    size_t numel1;         /* elements per sample */
    int ndim;
    int64_t dims[BP_MAX_DIMS]; /* dims[0] is the batch (1 here) */
    int root;              /* tensor whose calibration gave the range */
} bp_qtensor;

typedef enum {
    BP_QOP_CONV,
    BP_QOP_GEMM,     /* Gemm and MatMul with a PARAM weight */
    BP_QOP_ADD,
    BP_QOP_CLAMP,    /* unfused Relu/Clip */
    BP_QOP_MAXPOOL,
    BP_QOP_AVGPOOL,
    BP_QOP_GAP,
    BP_QOP_COPY,     /* Flatten, Reshape, Identity */
    BP_QOP_REQUANT   /* a layer's view of its input at its own bits */
} bp_qop_kind;

typedef struct {
    bp_qop_kind kind;
    int node;              /* node in the folded graph (-1 for REQUANT) */
    int in[2], out;        /* tensor ids */
    /* CONV / GEMM */
    int layer;             /* index into the layer table, else -1 */
    int wbits;
    bp_qconv_params cp;    /* n = 1; the engine sets the batch */
    bp_qgemm_params gp;    /* n = rows per sample */
    uint8_t *wpanel;
    int32_t *bias;         /* (cout) */
    bp_qmul *qm;           /* (cout) */
    /* ADD: a, b then output; REQUANT: qa */
    bp_qmul qa, qb, qo;
    int left_shift;
    /* CLAMP (and the clamp every op applies to its output) */
    int32_t lo, hi;
    /* pools */
    int kh, kw, sh, sw, pt, pl, pb, pr, count_include_pad;
} bp_qop;

typedef struct {
    bp_graph *g;           /* folded graph (owned) */
    int nlayers;
    bp_layer *layers;      /* of the folded graph (same names/order as the original) */
    int *wbits, *abits;    /* (nlayers) */
    double **wscale;       /* (nlayers) per-output-channel weight scales */
    int32_t **wcodes;      /* (nlayers) weight codes, laid out like the weight */
    int nt;
    bp_qtensor *t;
    int nops;
    bp_qop *ops;
    int input_t, output_t; /* tensor ids */
    int *value_t;          /* (nvalues) tensor holding a value (fused values: their clamp's), or -1 */
    int *fused;            /* (nnodes) 1 for a Relu/Clip node folded into its producer */
    int *view_t;           /* (nlayers) tensor a layer reads (its view or the shared tensor) */
    bp_real *fq_params;    /* folded params with weights and biases dequantized */
    bp_qopts opts;
    size_t scratch_bytes;  /* kernel scratch for one op at a time */
} bp_qmodel;

/* Builds a quantized model from g (not modified) with per-layer bits indexed
 * like bp_graph_layers(g), calibrating on ncalib samples calib_x (ncalib,
 * per-sample input shape). Errors name the layer or node. */
bp_status bp_qmodel_build(const bp_graph *g, const int *wbits, const int *abits,
                          const bp_real *calib_x, int ncalib, const bp_qopts *o,
                          bp_qmodel **out);
void bp_qmodel_free(bp_qmodel *m); /* accepts NULL */

/* Quantizes float inputs (n, per-sample shape) to the model's input tensor
 * (n · numel1 elements of its type, int8 or uint8). The only float step
 * before the integer path. */
void bp_qmodel_quantize_input(const bp_qmodel *m, const bp_real *x, int n, void *xq);

/* ---- integer-only engine (int_engine.c) ---------------------------------- */

typedef struct bp_qrun bp_qrun;

/* Workspace for batches up to max_batch (all buffers allocated here, none
 * during a run). Every conv layer is prepared here (bp_qconv_prepare, with
 * the kernel implementation active now: AMX repacks its weights once) and
 * freed by bp_qrun_free; m and its panels must outlive the workspace. */
bp_status bp_qrun_new(const bp_qmodel *m, int max_batch, bp_qrun **out);
void bp_qrun_free(bp_qrun *r);
/* Runs n samples from quantized input xq to int32 logits (n, classes) at
 * scale m->t[m->output_t].scale. Integer operations only. */
bp_status bp_qrun_forward(bp_qrun *r, const void *xq, int n, int32_t *logits);
/* A tensor's integer data after the last run (tests). */
const void *bp_qrun_tensor(const bp_qrun *r, int t);

/* ---- fake quantization (fakequant.c) ------------------------------------- */

typedef struct bp_fq bp_fq;

bp_status bp_fq_new(const bp_qmodel *m, int max_batch, bp_fq **out);
void bp_fq_free(bp_fq *f);
/* Rounding model at requantization points: dyadic (default, 0) or ideal
 * single rounding (1); see fakequant.c. */
void bp_fq_set_ideal(bp_fq *f, int ideal);
/* Float simulation of the same plan: logits (n, classes) in real units. */
bp_status bp_fq_forward(bp_fq *f, const bp_real *x, int n, bp_real *logits);
/* A value's simulated activation after the last forward (tests, reports). */
const bp_real *bp_fq_act(bp_fq *f, int value);

#endif
