/* fuzz_onnx — libFuzzer target for the ONNX loader (protobuf-c decoding,
 * initializer conversion, constant folding, the batch rule, shape inference)
 * and for what follows a successful load: the layer table and the writer.
 * Nothing may crash, leak or read out of bounds, whatever the bytes. Not built
 * by the Makefile; build (after `make` made $(BUILD)/gen) and run:
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I. -Ibuild/gen -Ibuild/gen/onnx \
 *       fuzz/fuzz_onnx.c core/onnx_read.c core/onnx_write.c core/onnx_fold.c \
 *       core/onnx_tensor.c core/graph.c core/error.c core/fileio.c core/sha256.c \
 *       build/gen/onnx/onnx.pb-c.c -lprotobuf-c -lm -o /tmp/fuzz_onnx
 *   mkdir -p /tmp/onnx_corpus && cp tests/fixtures/onnx/[a-z]*.onnx /tmp/onnx_corpus/
 *   /tmp/fuzz_onnx -max_total_time=180 /tmp/onnx_corpus   # 180 s: ~530k runs, no findings
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/onnx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bp_graph *g = NULL;
    if (bp_onnx_load_buffer(data, size, "fuzz.onnx", &g) != BP_OK)
        return 0;
    bp_layer *ls = NULL;
    int n = 0;
    if (bp_graph_layers(g, &ls, &n) == BP_OK)
        free(ls);
    char path[64];
    snprintf(path, sizeof path, "/tmp/fuzz_onnx_%d.onnx", (int)getpid());
    if (bp_onnx_save(g, path) == BP_OK) {
        bp_graph *h = NULL;
        if (bp_onnx_load(path, &h) == BP_OK)
            bp_graph_free(h);
        unlink(path);
    }
    bp_graph_free(g);
    return 0;
}
