/* graph.h — bitplan's graph IR: values (tensors), nodes (ops) in topological
 * order, and one flat parameter buffer.
 *
 * Shapes. Activations (kind INPUT or ACT) are NCHW-style with the batch as
 * dims[0]; the graph stores dims[0] as written in the model (often 1, or -1 when
 * symbolic) and the executor substitutes the batch it runs with. Op kernels see
 * whole tensors, batch included. Parameters (kind PARAM) have fixed shapes.
 *
 * Parameters. Every float initializer (weights, biases, BN scale/shift/mean/var,
 * constant Add operands) is a PARAM value whose data lives at
 * g->params + value.offset. Gradients, Hutchinson probes and Hessian-vector
 * products use the same layout, so dot products and axpys over "all parameters"
 * are one loop over g->nparams.
 *
 * Non-float constants (Reshape's target shape, Clip bounds given as inputs) are
 * folded into node attributes at load time and are not values.
 */
#ifndef BP_GRAPH_H
#define BP_GRAPH_H

#include "core/bp_common.h"

#define BP_MAX_DIMS 6

typedef enum {
    BP_OP_CONV,      /* in: x, W (Cout, Cin/g, kh, kw)[, B (Cout)] */
    BP_OP_GEMM,      /* in: A, B[, C]; Y = alpha*op(A)*op(B) + beta*C */
    BP_OP_MATMUL,    /* in: A, B (numpy matmul; B usually a PARAM (K, M)) */
    BP_OP_ADD,       /* in: a, b with numpy broadcasting (residual or bias) */
    BP_OP_BN,        /* in: x, scale, shift, mean, var (all (C)) */
    BP_OP_RELU,      /* in: x */
    BP_OP_CLIP,      /* in: x; bounds in attrs (ReLU6 is clip 0..6) */
    BP_OP_MAXPOOL,   /* in: x */
    BP_OP_AVGPOOL,   /* in: x */
    BP_OP_GAP,       /* GlobalAveragePool; in: x */
    BP_OP_FLATTEN,   /* in: x; attrs.axis */
    BP_OP_RESHAPE,   /* in: x; attrs.shape (0 = copy, -1 = infer) */
    BP_OP_IDENTITY,  /* in: x */
    BP_OP_COUNT
} bp_op;

/* ONNX-style op name ("Conv", "Gemm", ...). */
const char *bp_op_name(bp_op op);

typedef enum { BP_VAL_INPUT, BP_VAL_ACT, BP_VAL_PARAM } bp_val_kind;

typedef struct {
    char *name;
    bp_val_kind kind;
    int ndim;
    int64_t dims[BP_MAX_DIMS];
    size_t numel;    /* PARAM: all elements; INPUT/ACT: per sample (dims[1..]) */
    size_t offset;   /* PARAM: offset into g->params */
    int producer;    /* ACT: index of the node that writes it; else -1 */
    int trainable;   /* PARAM: 0 for BN running mean/var, 1 otherwise */
} bp_value;

/* One attribute block for every op; each op reads the fields it needs. */
typedef struct {
    int kernel[2];       /* conv/pool kh, kw (conv: taken from W when 0) */
    int stride[2];       /* default 1 */
    int pads[4];         /* top, left, bottom, right */
    int dilation[2];     /* default 1 */
    int group;           /* conv groups, default 1 */
    int ceil_mode;       /* pools */
    int count_include_pad; /* avgpool */
    int trans_a, trans_b;  /* gemm */
    float alpha, beta;     /* gemm, default 1 */
    float eps, momentum;   /* bn: ONNX defaults 1e-5, 0.9 */
    float clip_min, clip_max; /* clip: -inf/+inf when absent */
    int axis;              /* flatten, default 1 */
    int nshape;            /* reshape */
    int64_t shape[BP_MAX_DIMS];
} bp_attrs;

/* Attribute block with ONNX defaults filled in. */
bp_attrs bp_attrs_default(void);

#define BP_MAX_IN 5

typedef struct {
    bp_op op;
    char *name;
    int nin;
    int in[BP_MAX_IN];   /* value ids */
    int out;             /* value id */
    bp_attrs a;
} bp_node;

typedef struct {
    int nvalues, cap_values;
    bp_value *values;
    int nnodes, cap_nodes;
    bp_node *nodes;      /* topological order */
    int input;           /* value id of the model input */
    int output;          /* value id of the model output (logits) */
    size_t nparams, cap_params;
    bp_real *params;     /* (nparams) every PARAM value's data */
    char *source;        /* file the graph came from, or "" (for messages) */
    uint8_t sha256[32];  /* of that file's bytes; zero when built in memory */
} bp_graph;

/* ---- building ---------------------------------------------------------- */

/* A new empty graph; NULL on allocation failure. */
bp_graph *bp_graph_new(void);
/* Frees everything the graph owns. Accepts NULL. */
void bp_graph_free(bp_graph *g);

/* Adds a value; returns its id (>= 0) or -1 on allocation failure or a
 * duplicate name (with bp_last_error set). `init` may be NULL for PARAM
 * (zero-filled). The graph copies name and data. */
int bp_graph_add_input(bp_graph *g, const char *name, int ndim, const int64_t *dims);
int bp_graph_add_param(bp_graph *g, const char *name, int ndim, const int64_t *dims,
                       const float *init);
/* Copies PARAM value v of `from` into g bit for bit in either precision
 * (add_param's float init would round doubles), with its trainable flag,
 * once: map[v] caches the new id (-1 = not copied yet). Returns the id in g,
 * or -1 as bp_graph_add_param. Used by graph rewrites that build a copy. */
int bp_graph_copy_param(const bp_graph *from, bp_graph *g, int v, int *map);

/* Adds a node reading values `in` (nin of them) and writing a new ACT value
 * named out_name, whose shape is inferred from the inputs now. Returns the
 * output value id, or -1 with bp_last_error set (shape mismatch, bad attrs). */
int bp_graph_add_node(bp_graph *g, bp_op op, const char *name, const int *in, int nin,
                      const char *out_name, const bp_attrs *a);

/* Value id by name, or -1. */
int bp_graph_find(const bp_graph *g, const char *name);

/* Output shape of one node from its inputs' shapes, with dims[0] of the first
 * input standing for the batch. Used when building and by the executor when it
 * resolves a batch size. */
bp_status bp_infer_shape(const bp_graph *g, const bp_node *n, const int64_t *const *in_dims,
                         const int *in_ndim, int64_t *out_dims, int *out_ndim);

/* Shapes of every value when the graph runs on a batch of n: INPUT values get
 * dims[0] = n and each node's output is inferred in order. dims and ndim have
 * g->nvalues entries. `who` names the caller in messages ("exec", "frun"). */
bp_status bp_graph_resolve_shapes(const bp_graph *g, int n, int64_t (*dims)[BP_MAX_DIMS],
                                  int *ndim, const char *who);

/* Data pointer of a PARAM value inside a flat buffer laid out like g->params. */
static inline bp_real *bp_param_ptr(const bp_graph *g, bp_real *flat, int value)
{
    return flat + g->values[value].offset;
}

/* ---- layers: the units that get a bit-width ----------------------------- */

/* Conv, Gemm and MatMul nodes whose weight operand is a PARAM. */
typedef struct {
    int node;             /* index into g->nodes */
    char name[160];       /* "<module>" from a "<module>.weight" name, else the node name */
    bp_op op;
    int weight;           /* value id of the weight */
    int bias;             /* value id of the bias, or -1 */
    int input, output;    /* value ids of the activation in and out */
    int64_t cout, cin;    /* output channels/features, input channels/features */
    int kh, kw, stride, group;
    int64_t in_h, in_w, out_h, out_w;   /* 1 for Gemm/MatMul */
    size_t params;        /* weight elements */
    int64_t macs;         /* multiply-accumulates per sample */
    int64_t fan_in;       /* K: MACs per output element */
} bp_layer;

/* Fills *out with a malloc'd array of the graph's layers in node order.
 * Caller frees *out. */
bp_status bp_graph_layers(const bp_graph *g, bp_layer **out, int *n);

/* Validates that every value is finite; names the first bad PARAM. */
bp_status bp_graph_check_finite(const bp_graph *g);

#endif
