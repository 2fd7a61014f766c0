/* export_c.h — a quantized model (qmodel.h) as a C header plus a small
 * standalone C inference file (libc only, integer only) for deployment.
 *
 * The header holds the whole integer model as static const data:
 *   - a tensor table (storage type int8/uint8/int32, elements per sample,
 *     C/H/W, clamp range), one entry per tensor of the quantized model;
 *   - an op table in execution order (conv, gemm, residual add, requant,
 *     clamp/copy, max/avg pooling, global average pooling) with geometry,
 *     per-channel {multiplier, shift} pairs, int32 biases and packed weights;
 *   - weights of each layer as (group, row, col) row-major: 5..8-bit weights
 *     one int8 per byte; 2..4-bit weights two per byte, element e in byte
 *     e/2, the low nibble for even e (two's complement nibbles). Example:
 *     weights (−3, 5) -> byte 0x5D.
 *   - the input scale (the only float: quantizing the float input is the one
 *     step before the integer path, as in bp_qmodel_quantize_input).
 * The inference file includes the header and implements exactly what
 * quant/int_engine.c does (same requantization, rounding, clamping and
 * pooling rules, the reference kernels' loops), so its int32 logits equal
 * bp_qrun_forward's bit for bit (tests/test_export.c compiles and runs it).
 *
 * The emitted C uses no heap, no libm and no floating point on the integer
 * path; activation buffers are static arrays sized for one sample. Built with
 * -DBPM_NO_MAIN it is a library (bpm_run, bpm_quantize_input); otherwise it
 * has a main:  infer [-q] INPUT.bin  reads samples (float32 (C,H,W) each,
 * or with -q already-quantized bytes) and prints one line of int32 logits
 * per sample, then the argmax.
 */
#ifndef BP_EXPORT_C_H
#define BP_EXPORT_C_H

#include "quant/qmodel.h"

/* Writes the header (and, when source_path is not NULL, the inference file,
 * which includes the header by its file name) atomically. `what` is a line
 * of provenance written into the header comment (may be NULL). Errors name
 * the file or the op that cannot be exported. */
bp_status bp_export_c(const bp_qmodel *m, const char *header_path, const char *source_path,
                      const char *what);

#endif
