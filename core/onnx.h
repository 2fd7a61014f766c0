/* onnx.h — reading and writing ONNX models (protobuf-c code generated at build
 * time from Debian's onnx.proto).
 *
 * Loading maps ONNX nodes onto bp_op, folds constant subgraphs (the
 * Shape/Gather/Unsqueeze/Concat chains exporters put before Reshape; Constant
 * nodes) and records the file's SHA-256 in g->sha256. Anything unsupported is
 * an error naming the op, the node and the file. */
#ifndef BP_ONNX_H
#define BP_ONNX_H

#include "core/graph.h"

bp_status bp_onnx_load(const char *path, bp_graph **out);
/* Loads from memory; `name` is used in messages. */
bp_status bp_onnx_load_buffer(const void *data, size_t len, const char *name, bp_graph **out);
/* Writes the graph (with g->params as initializers) as an ONNX model, opset 13,
 * atomically. */
bp_status bp_onnx_save(const bp_graph *g, const char *path);

#endif
