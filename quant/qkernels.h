/* qkernels.h — integer convolution and GEMM kernels: int8/uint8 activations,
 * 2..8-bit weights, int32 accumulation, int32 bias, per-output-channel dyadic
 * requantization (quant/requant.h), clamp, store.
 *
 * Implementations with identical results, chosen at run time unless the caller
 * forces one with bp_qkern_set_impl: AMX (convs except depthwise: int8 tiles,
 * tdpbssd/tdpbsud on an implicit GEMM over channel quads, kern_amx.c; the
 * rest as AVX-512 VNNI), AVX-512 VNNI, AVX-VNNI (convs: uint8 activation
 * quads and vpdpbusd, signed inputs shifted by 128 and corrected through the
 * bias; depthwise convs and GEMMs: the AVX2 kernels, GEMM with vpdpwssd,
 * except AVX-512 depthwise convs on flattened planes with VBMI,
 * kern_dw.c), AVX2 (int16 pairs and vpmaddwd), and a portable C reference.
 * CPU features are looked up once (AVX2 and AVX-512 F/BW/VL by
 * __builtin_cpu_supports; AVX-VNNI, CPUID leaf 7 subleaf 1 EAX bit 4, and
 * AVX512_VNNI, leaf 7 ECX bit 11, by CPUID; AMX-TILE/AMX-INT8, leaf 7 EDX bits
 * 24/25, with AVX512_VBMI/VBMI2 and the OS's tile state, plus Linux's
 * arch_prctl(ARCH_REQ_XCOMP_PERM) permission, asked once per process). Kernels
 * never allocate: callers pass scratch of bp_qconv_buffer_size()/
 * bp_qgemm_buffer_size() bytes. A conv layer run more than once is prepared
 * once (bp_qconv_prepare: the AMX kernel's weights in tile layout and its
 * geometry tables, owned by the returned prep) and run with bp_qconv_run;
 * bp_qconv, for one-off calls, prepares into a temporary heap object on
 * every call (with AMX that repacks the weights each time). The library
 * keeps no per-panel state.
 *
 * Value ranges. Activations have zero point 0: BP_QT_U8 holds 0..255 (after
 * ReLU/ReLU6), BP_QT_S8 −128..127; lower activation bit-widths use the same
 * storage with a narrower range. Weights are signed b-bit, −2^(b−1)..2^(b−1)−1,
 * b in 2..8. Accumulation is exact in int32 (vpmaddwd on int16 pairs or
 * vpdpbusd on uint8 × int8 quads: no intermediate saturation, wrap-around
 * int32 sums); the caller guarantees the sum fits in int32 (K · 255 · 128 < 2^31 holds for
 * K < 65793).
 *
 * Packed weights ("panel"). A conv with g groups is g GEMMs of
 * M = Cout/g rows by K = (Cin/g)·kh·kw; a Gemm/MatMul layer is one with
 * M = out features, K = in features. Rows are padded to a multiple of 16, K to
 * a multiple of 2 (with zeros). For each group, each block of 16 rows r0..r0+15
 * and each k pair (2j, 2j+1), 32 weight values are stored in the order
 *   v[2c + t] = w[r0 + c][2j + t],  c = 0..15, t = 0..1.
 *   wbits 5..8: 32 int8 bytes, byte i = v[i].
 *   wbits 2..4: 16 bytes, two values per byte: byte i = (v[i] & 0xF) | (v[i+16] << 4),
 *               i.e. rows r0..r0+7 in the low nibbles and rows r0+8..r0+15 in the
 *               high nibbles. Example: v[0] = −3, v[16] = 5 -> byte 0x5D.
 *   Nibbles are unpacked in registers (sign-extended with shifts) by the kernel.
 * bp_qweights_pack builds a panel from plain int8 weights (M, K) per group.
 */
#ifndef BP_QKERNELS_H
#define BP_QKERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "core/bp_common.h"
#include "quant/requant.h"

typedef enum {
    BP_QT_S8,  /* int8 */
    BP_QT_U8,  /* uint8 */
    BP_QT_S32  /* int32 (requantized and clamped; used for logits) */
} bp_qtype;

/* Bytes of one element of type t. */
size_t bp_qtype_size(bp_qtype t);

/* ---- packed weights ------------------------------------------------------ */

/* Bytes of a panel for `groups` GEMMs of m rows by k, at wbits (2..8). */
size_t bp_qweights_size(int groups, int m, int k, int wbits);
/* Packs w (groups, m, k) int8, each value in the signed wbits range, into dst
 * (bp_qweights_size bytes). BP_ERR_ARG if a value is out of range or bits bad. */
bp_status bp_qweights_pack(const int8_t *w, int groups, int m, int k, int wbits,
                           uint8_t *dst);
/* Reads one weight back from a panel (tests, reference kernel). */
int bp_qweights_get(const uint8_t *panel, int groups, int m, int k, int wbits,
                    int group, int row, int col);

/* ---- convolution --------------------------------------------------------- */

typedef struct {
    int n, cin, h, w;          /* input (n, cin, h, w), NCHW */
    int cout, kh, kw;          /* weights (cout, cin/group, kh, kw) */
    int stride_h, stride_w;    /* >= 1 */
    int pad_t, pad_l, pad_b, pad_r;  /* zero padding (the zero point) */
    int dil_h, dil_w;          /* >= 1 */
    int group;                 /* divides cin and cout; cin = cout = group: depthwise */
    int wbits;                 /* 2..8 */
    bp_qtype in_type;          /* BP_QT_S8 or BP_QT_U8 */
    bp_qtype out_type;         /* any */
    int32_t out_min, out_max;  /* clamp after requantization (fused ReLU/ReLU6) */
} bp_qconv_params;

/* Output height and width implied by p. */
void bp_qconv_out_hw(const bp_qconv_params *p, int *oh, int *ow);
/* Checks p (positive sizes, group divides channels, bits, types, clamp within
 * the output type); BP_ERR_ARG naming the field. */
bp_status bp_qconv_check(const bp_qconv_params *p);
/* Scratch bytes bp_qconv needs (independent of n). */
size_t bp_qconv_buffer_size(const bp_qconv_params *p);

/* out (n, cout, oh, ow) = clamp(requant(conv(in, W) + bias)) per channel.
 *   in      (n, cin, h, w) of p->in_type
 *   wpanel  bp_qweights_pack of W viewed as (group, cout/group, cin/group·kh·kw)
 *   bias    (cout) int32, at scale s_in · s_w[c]; may be NULL (zero)
 *   qm      (cout) requantization per output channel
 *   out     (n, cout, oh, ow) of p->out_type
 *   scratch bp_qconv_buffer_size(p) bytes, 32-byte aligned
 * Returns BP_ERR_ARG on bad params (checked as bp_qconv_check). */
bp_status bp_qconv(const bp_qconv_params *p, const void *in, const uint8_t *wpanel,
                   const int32_t *bias, const bp_qmul *qm, void *out, void *scratch);

/* A conv layer prepared once and run many times: the parameters, the
 * implementation active (bp_qkern_active) at prepare time, which it keeps
 * even if bp_qkern_set_impl changes later, and what that implementation
 * derives from the weights (AMX: the weights repacked into tile layout and
 * the batch-independent tables; the other implementations: nothing, they
 * read wpanel). */
typedef struct bp_qconv_prep bp_qconv_prep;

/* Prepares a conv of params p (p->n is ignored: any batch runs) on the
 * panel wpanel. wpanel is referenced, not copied: the caller keeps it alive
 * and unchanged until bp_qconv_prep_free (AMX reads a copy in tile layout,
 * the other implementations read wpanel itself; changing the weights means
 * preparing again). *out is the caller's, freed by bp_qconv_prep_free; NULL
 * on error. BP_ERR_ARG (as bp_qconv_check), BP_ERR_UNSUPPORTED (a forced
 * implementation this CPU lacks), BP_ERR_NOMEM. */
bp_status bp_qconv_prepare(const bp_qconv_params *p, const uint8_t *wpanel, bp_qconv_prep **out);
/* Frees a prep; accepts NULL. */
void bp_qconv_prep_free(bp_qconv_prep *prep);
/* bp_qconv of prep's params with batch n (>= 1): in (n, cin, h, w), out
 * (n, cout, oh, ow), bias, qm and scratch as bp_qconv (scratch:
 * bp_qconv_buffer_size of the prepared params). prep is only read:
 * threads may share it, each with its own scratch and out. BP_ERR_ARG if
 * prep is NULL or n < 1. */
bp_status bp_qconv_run(const bp_qconv_prep *prep, int n, const void *in, const int32_t *bias,
                       const bp_qmul *qm, void *out, void *scratch);

/* ---- GEMM (fully connected) ---------------------------------------------- */

typedef struct {
    int n;           /* rows of the input (samples) */
    int k;           /* input features */
    int m;           /* output features */
    int wbits;
    bp_qtype in_type, out_type;
    int32_t out_min, out_max;
} bp_qgemm_params;

bp_status bp_qgemm_check(const bp_qgemm_params *p);
size_t bp_qgemm_buffer_size(const bp_qgemm_params *p);
/* out (n, m) = clamp(requant(in (n, k) · Wᵀ + bias)), W (m, k) packed as one
 * group; bias (m) may be NULL; qm (m). */
bp_status bp_qgemm(const bp_qgemm_params *p, const void *in, const uint8_t *wpanel,
                   const int32_t *bias, const bp_qmul *qm, void *out, void *scratch);

/* ---- implementation choice ----------------------------------------------- */

typedef enum {
    BP_QKERN_AUTO = 0, /* AMX, else AVX-512 VNNI, else AVX-VNNI, else AVX2, else reference */
    BP_QKERN_REF,      /* portable C */
    BP_QKERN_AVX2,     /* BP_ERR_UNSUPPORTED from kernels when the CPU lacks AVX2 */
    BP_QKERN_AVXVNNI,  /* convs: uint8 activations and vpdpbusd on ymm (AVX-VNNI);
                          depthwise and GEMM: the AVX2 kernel with vpdpwssd */
    BP_QKERN_AVX512VNNI, /* convs: vpdpbusd on zmm (AVX-512 F/BW/VL/VNNI); depthwise:
                          kern_dw.c if the CPU has AVX512_VBMI; GEMM (and depthwise
                          without VBMI): the AVX2 kernel (with vpdpwssd if AVX-VNNI) */
    BP_QKERN_AMX        /* convs except depthwise: AMX int8 tiles (kern_amx.c);
                          the rest as BP_QKERN_AVX512VNNI */
} bp_qkern_impl;

/* Whether this CPU can run impl (REF always). */
int bp_qkern_available(bp_qkern_impl impl);
/* Process-wide choice (tests and benchmarks compare implementations). */
void bp_qkern_set_impl(bp_qkern_impl impl);
/* The implementation kernels use now (AUTO resolved). */
bp_qkern_impl bp_qkern_active(void);
const char *bp_qkern_name(bp_qkern_impl impl);
/* The implementation a prepared conv runs with (AMX also for the convs it
 * declines, which run as BP_QKERN_AVX512VNNI). */
bp_qkern_impl bp_qconv_prep_impl(const bp_qconv_prep *prep);

#endif
