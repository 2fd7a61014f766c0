/* kern_dw.h — the AVX-512 VNNI depthwise conv (kern_dw.c), called by
 * qkernels.c. Not a public header. */
#ifndef BP_KERN_DW_H
#define BP_KERN_DW_H

#include "quant/qkernels.h"

/* Scratch bytes bp_qconv_dwz needs for p, or 0 when it does not take p (not
 * depthwise with one channel per group, strides over 8, or a kernel row
 * spreading over more than 64 quads). */
size_t bp_qk_dwz_scratch(const bp_qconv_params *p);

/* Runs the depthwise conv p (already checked) and returns 1, or returns 0
 * without touching out when it does not take p (bp_qk_dwz_scratch(p) == 0)
 * or the CPU lacks AVX512_VBMI. Needs AVX-512 F/BW/VNNI (the caller checks);
 * scratch as bp_qconv, at least bp_qk_dwz_scratch(p) bytes. */
int bp_qconv_dwz(const bp_qconv_params *p, const void *in, const uint8_t *wpanel,
                 const int32_t *bias, const bp_qmul *qm, void *out, void *scratch);

/* Tests: 0 turns off the byte-permute fill and copy-out (the row-by-row
 * paths run instead), 1 (the default) turns them back on. Not thread-safe. */
void bp_qk_dwz_set_windows(int on);

#endif
