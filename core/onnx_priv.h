/* onnx_priv.h — pieces the ONNX reader, writer and constant folder share.
 * Not a public header: it includes the generated protobuf-c code.
 *
 * A constant is a tensor known at load time: an initializer, the output of a
 * Constant node, or the result of folding a shape chain. Integer constants
 * (int64/int32/bool) are kept as int64, float ones (float32/64/16) as float.
 * Each integer element carries a flag saying whether it is the batch size
 * (it came from Shape(x)[0] of an activation), so that Reshape can turn it
 * back into "copy dim 0" and the model runs at any batch. */
#ifndef BP_ONNX_PRIV_H
#define BP_ONNX_PRIV_H

#include "core/graph.h"
#include "onnx/onnx.pb-c.h"

typedef enum { BP_CONST_INT, BP_CONST_FLOAT, BP_CONST_BAD } bp_const_kind;

typedef struct {
    bp_const_kind kind;
    int dtype;               /* ONNX TensorProto.DataType it came from */
    int ndim;
    int64_t dims[BP_MAX_DIMS];
    size_t numel;
    int64_t *i;              /* (numel) INT */
    float *f;                /* (numel) FLOAT */
    unsigned char *batch;    /* (numel) INT: 1 where the element is the batch size */
    int param;               /* graph value id once used as a PARAM, else -1 */
} bp_const;

/* Frees the arrays of c (not c itself); accepts zeroed. */
void bp_const_clear(bp_const *c);

/* Allocates arrays for kind/ndim/dims (zero-filled). */
bp_status bp_const_alloc(bp_const *c, bp_const_kind kind, int ndim, const int64_t *dims);

/* Converts a TensorProto (raw_data or typed fields) to a constant. Types that
 * bitplan cannot use become BP_CONST_BAD with c->dtype set, so that an unused
 * odd initializer does not stop a load; `what` names the tensor in messages. */
bp_status bp_const_from_tensor(const Onnx__TensorProto *t, bp_const *c, const char *what);

/* Name of an ONNX data type ("float", "int64", ...). */
const char *bp_onnx_dtype_name(int dtype);

/* Folds one shape-computation node (Shape, Gather, Unsqueeze, Squeeze, Concat,
 * Slice, Cast, Constant) whose inputs are all known. in[k] is NULL for an
 * absent optional input. For Shape of an activation, the caller passes the
 * activation's dims in act_dims/act_ndim and in[0] = NULL.
 * Returns BP_ERR_UNSUPPORTED for an op it does not fold (message without
 * context; the caller adds file and node). */
bp_status bp_onnx_fold(const Onnx__NodeProto *node, const bp_const *const *in, int nin,
                       const int64_t *act_dims, int act_ndim, bp_const *out);

/* Attribute lookup on a node; NULL when absent. */
const Onnx__AttributeProto *bp_onnx_attr(const Onnx__NodeProto *node, const char *name);

#endif
