/* fuzz_onnx — libFuzzer target for the ONNX loader (protobuf-c decoding,
 * initializer conversion, constant folding, the batch rule, shape inference)
 * and for what follows a successful load: the layer table and the writer.
 * Nothing may crash, leak or read out of bounds, whatever the bytes.
 *
 * Built and run by `make fuzz` (FUZZ=fuzz_onnx FUZZ_SECONDS=600 for one long
 * run); seeds in fuzz/corpus/fuzz_onnx/ (copies of small tests/fixtures/onnx
 * models). docs/RELIABILITY.md has the run counts.
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
