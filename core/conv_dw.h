/* conv_dw.h — depthwise convolution (one input and one output channel per
 * group) for the float engine: forward, backward and the terms of the R-op.
 * Internal to core/ops_conv.c; not a public header.
 *
 * Each input plane is copied into sh*sw zero-padded "phase" planes (phase
 * (pr, pc) holds padded rows pr, pr+sh, ... and columns pc, pc+sw, ...), all
 * of width Wq. In that layout every kernel tap (i, j) of a strided, dilated
 * conv reads one phase plane at a fixed offset, and output position (oh, ow)
 * sits at flat index t = oh*Wq + ow. A whole output plane is then a sum of
 * kh*kw shifted copies of contiguous memory: long, branch-free loops that
 * vectorize, instead of per-pixel bounds checks over 7- or 14-wide rows. The
 * columns t with ow >= OW are scratch and are dropped on the way out.
 *
 * Backward runs the same way: dy is laid out with row stride Wq after
 * enough leading zeros that every tap's read stays in the buffer, each phase
 * plane of dx gathers its taps from it, and dW of a tap is one dot product of
 * dy with the tap's shifted phase plane. Work is split by sample (planes are
 * then read in memory order; splitting by channel read them 64 samples
 * apart and cost 12% of a MobileNetV2 HVP in cache misses): each thread sums
 * dW of its samples privately and the partials are added in thread order,
 * so results are reproducible at a given thread count. */
#ifndef BP_CONV_DW_H
#define BP_CONV_DW_H

#include <stddef.h>

#include "core/bp_common.h"

typedef struct {
    int C, H, W, OH, OW, kh, kw, sh, sw, pt, pl, dh, dw;
    int Hq, Wq;  /* one phase plane */
    long plane;  /* Hq*Wq */
    long T;      /* flat output length, (OH-1)*Wq + OW */
    long lead;   /* zeros in front of dy in a dy buffer */
} bp_dwgeom;

/* x (N,C,H,W), w (C,1,kh,kw), y (N,C,OH,OW); sh..dw as in ONNX Conv. */
void bp_dw_geom(bp_dwgeom *d, int C, int H, int W, int OH, int OW, int kh, int kw, int sh, int sw,
                int pt, int pl, int dh, int dw);

/* Scratch (reals) one thread needs. */
size_t bp_dw_scratch(const bp_dwgeom *d);

/* y (=, or += when accumulate) conv(x0, w0) [+ conv(x1, w1)] + bias. A pair
 * with a NULL pointer is absent; bias may be NULL. scratch holds nth threads'
 * worth (bp_dw_scratch each). */
void bp_dw_forward(const bp_dwgeom *d, int N, const bp_real *x0, const bp_real *w0,
                   const bp_real *x1, const bp_real *w1, const bp_real *bias, bp_real *y,
                   int accumulate, bp_real *scratch, int nth);

/* One backward term and the outputs it is summed into: for each group,
 * dx += sum conv^T(t.dy, t.w) over terms with dy and w; dw += sum corr(t.x,
 * t.dy) over terms with dy and x. NULL pointers drop what needs them. */
typedef struct {
    const bp_real *x, *w, *dy;
} bp_dwterm;

#define BP_DW_MAX_TERMS 2
#define BP_DW_MAX_GROUPS 2

typedef struct {
    bp_dwterm t[BP_DW_MAX_TERMS];
    int nt;
    bp_real *dx, *dw;
} bp_dwgroup;

void bp_dw_backward(const bp_dwgeom *d, int N, const bp_dwgroup *gr, int ngr, bp_real *scratch,
                    int nth);

/* ---- phase-plane helpers, shared with the direct conv (conv_direct.c) ---- */

/* xph <- the sh*sw phase planes (each Hq x Wq) of one input plane x (H x W),
 * zeros outside it. Writes every element of the phase planes some tap reads
 * (all of them but for kernels that skip phases, e.g. 1x1 with stride 2); no
 * kernel reads the others. */
void bp_dw_pack(const bp_dwgeom *d, const bp_real *x, bp_real *xph);
/* dyb <- lead zeros, then dy (OH x OW) with row stride Wq, zeros up to
 * lead + plane. */
void bp_dw_pack_dy(const bp_dwgeom *d, const bp_real *dy, bp_real *dyb);
/* [lo, hi): the flat positions of phase plane ph (pr*sw + pc) that hold
 * input positions, the only ones bp_dw_unpack_add reads (empty: lo == hi). */
void bp_dw_phase_span(const bp_dwgeom *d, int ph, long *lo, long *hi);
/* dx (H x W) += phase planes dxph read back in input coordinates; phase
 * planes no tap reads are not read. */
void bp_dw_unpack_add(const bp_dwgeom *d, const bp_real *dxph, bp_real *dx);
/* The same, writing: every element of dx is written (zero where no phase
 * plane maps), so dx may hold garbage before. */
void bp_dw_unpack_set(const bp_dwgeom *d, const bp_real *dxph, bp_real *dx);

/* Tap k = i*kw + j reads packed input at xoff[k] + t; gathered back into a
 * dx phase plane it reads a dy buffer at yoff[k] + t; order lists the taps
 * grouped by phase plane. mem holds bp_dw_tap_bytes(d) bytes (8-byte
 * aligned). Returns 1 when every phase plane has a tap. */
typedef struct {
    long *xoff, *yoff, *order;
} bp_dwtaps;
#define bp_dw_tap_bytes(d) (3 * sizeof(long) * (size_t)(d)->kh * (d)->kw)
int bp_dw_tap_tables(const bp_dwgeom *d, void *mem, bp_dwtaps *tb);
int bp_dw_tap_phase(const bp_dwgeom *d, long k);

/* Chooses the arithmetic kernels: "plain" (portable C), "avx2", "avx512",
 * or NULL for the best the CPU has (the default). Returns 0, changing
 * nothing, when the CPU lacks the set. For tests and benchmarks; not
 * thread-safe against running convolutions. */
int bp_dw_use_kernels(const char *name);

#endif
