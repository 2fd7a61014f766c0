/* kern_internal.h — what qkernels.c, kern_ref.c and kern_avx2.c share: panel
 * geometry and the per-implementation entry points. Not a public header. */
#ifndef BP_KERN_INTERNAL_H
#define BP_KERN_INTERNAL_H

#include "quant/qkernels.h"

#define BP_QK_MR 16 /* rows per panel block */
#define BP_QK_NR 6  /* pixels per AVX2 micro-tile */

/* k pairs of a K-long row. */
static inline int bp_qk_kpairs(int k) { return (k + 1) / 2; }
static inline int bp_qk_rblocks(int m) { return (m + BP_QK_MR - 1) / BP_QK_MR; }
/* Bytes of one (row block, k pair) cell: 32 values at 8 or 4 bits. */
static inline int bp_qk_cell(int wbits) { return wbits > 4 ? 32 : 16; }
/* Bytes of one group's panel. */
static inline size_t bp_qk_group_bytes(int m, int k, int wbits)
{
    return (size_t)bp_qk_rblocks(m) * (size_t)bp_qk_kpairs(k) * (size_t)bp_qk_cell(wbits);
}

/* Weight (row, col) of one group's panel. */
static inline int bp_qk_get(const uint8_t *gp, int k, int wbits, int row, int col)
{
    int rb = row / BP_QK_MR, c = row % BP_QK_MR, kp = col / 2, t = col % 2;
    const uint8_t *cell = gp + ((size_t)rb * bp_qk_kpairs(k) + kp) * bp_qk_cell(wbits);
    int v = 2 * c + t;
    if (wbits > 4)
        return (int8_t)cell[v];
    int nib = v < 16 ? cell[v] & 0xF : cell[v - 16] >> 4;
    return nib >= 8 ? nib - 16 : nib;
}

/* Rows of the depthwise kernel's padded plane: h + pad_t + pad_b, or more when
 * the last output row's window reaches past the bottom padding (out_hw
 * divides with truncation, so a window may overhang by up to stride − 1 rows). */
static inline int bp_qk_dw_rows(const bp_qconv_params *p)
{
    int oh, ow, r = p->h + p->pad_t + p->pad_b;
    bp_qconv_out_hw(p, &oh, &ow);
    int need = (oh - 1) * p->stride_h + (p->kh - 1) * p->dil_h + 1;
    return oh >= 1 && need > r ? need : r;
}

/* Pixels per im2col block of the AVX2 path for fan-in k. */
int bp_qk_pixel_block(int k);

/* Clamps and stores one value of the output type. */
static inline void bp_qk_store(void *out, size_t idx, bp_qtype t, int32_t v, int32_t lo, int32_t hi)
{
    v = v < lo ? lo : v > hi ? hi : v;
    if (t == BP_QT_S8)
        ((int8_t *)out)[idx] = (int8_t)v;
    else if (t == BP_QT_U8)
        ((uint8_t *)out)[idx] = (uint8_t)v;
    else
        ((int32_t *)out)[idx] = v;
}

static inline int32_t bp_qk_load(const void *in, size_t idx, bp_qtype t)
{
    return t == BP_QT_U8 ? ((const uint8_t *)in)[idx] : ((const int8_t *)in)[idx];
}

void bp_qconv_ref(const bp_qconv_params *p, const void *in, const uint8_t *wpanel,
                  const int32_t *bias, const bp_qmul *qm, void *out);
void bp_qgemm_ref(const bp_qgemm_params *p, const void *in, const uint8_t *wpanel,
                  const int32_t *bias, const bp_qmul *qm, void *out);
/* vnni = 1: the AVX-VNNI tiles (vpdpwssd); needs the CPU feature. */
void bp_qconv_avx2(const bp_qconv_params *p, const void *in, const uint8_t *wpanel,
                   const int32_t *bias, const bp_qmul *qm, void *out, void *scratch, int vnni);
void bp_qgemm_avx2(const bp_qgemm_params *p, const void *in, const uint8_t *wpanel,
                   const int32_t *bias, const bp_qmul *qm, void *out, void *scratch, int vnni);
/* The VNNI conv: uint8 activation quads, vpdpbusd; wide = 0: AVX-VNNI ymm,
 * 4 channels x 16 pixels; wide = 1: AVX-512 VNNI zmm, 8 x 32 (kern_avx2.c); depthwise convs go to bp_qconv_avx2. Scratch: the larger of
 * bp_qk_vnni_scratch(p) and the AVX2 kernel's. */
void bp_qconv_vnni(const bp_qconv_params *p, const void *in, const uint8_t *wpanel,
                   const int32_t *bias, const bp_qmul *qm, void *out, void *scratch, int wide);
size_t bp_qk_vnni_scratch(const bp_qconv_params *p);
int bp_qk_quad_block(int k);

/* AMX (kern_amx.c): whether the CPU has AMX-TILE, AMX-INT8 and AVX512_VBMI
 * and the OS granted tile data to the process (asked once, thread-safe). */
int bp_qk_amx_usable(void);
/* Scratch bytes of bp_qconv_amx for p (0 when it would decline p). */
size_t bp_qk_amx_scratch(const bp_qconv_params *p);
/* The batch-independent part of an AMX conv: weights in tile layout and
 * geometry tables. Owned by the caller; read-only once built. */
typedef struct bp_qk_amx_prep bp_qk_amx_prep;
/* Prepares p (n ignored) with weights wpanel: 1 and *out set; 0 and *out
 * NULL when AMX declines p (depthwise, strides > 4, > 64 taps, ...); −1 out
 * of memory. Needs no CPU feature (plain C); wpanel is not referenced after. */
int bp_qk_amx_prepare(const bp_qconv_params *p, const uint8_t *wpanel, bp_qk_amx_prep **out);
void bp_qk_amx_prep_free(bp_qk_amx_prep *ap); /* accepts NULL */
/* Runs p on AMX tiles with ap from bp_qk_amx_prepare of the same params
 * (any n); needs bp_qk_amx_usable() and AVX-512 F/BW/VL. */
void bp_qconv_amx(const bp_qconv_params *p, const void *in, const bp_qk_amx_prep *ap, const int32_t *bias,
                  const bp_qmul *qm, void *out, void *scratch);

#endif
