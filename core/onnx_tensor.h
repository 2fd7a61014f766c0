/* onnx_tensor.h — reading a single ONNX TensorProto file (the input_N.pb /
 * output_N.pb files of ONNX test cases) as float32. */
#ifndef BP_ONNX_TENSOR_H
#define BP_ONNX_TENSOR_H

#include "core/graph.h"

/* Reads the TensorProto in `path` as floats (float32, float64 and float16
 * are converted; integer tensors are converted too). On success *data is a
 * malloc'd (numel) array the caller frees, dims/ndim its shape (at most
 * BP_MAX_DIMS), *name (may be NULL) a malloc'd copy of the tensor's name. */
bp_status bp_onnx_tensor_read(const char *path, float **data, int64_t *dims, int *ndim,
                              char **name);

#endif
