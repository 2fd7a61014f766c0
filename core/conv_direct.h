/* conv_direct.h — a register-blocked direct convolution kernel for the
 * float engine's general (non-depthwise, one-group) convs, on the phase
 * planes of core/conv_dw.h. Internal to core/ops_conv.c.
 *
 * One call computes, for t < T and o < no,
 *   out[o*ldo + t] (+)= sum_i sum_n wp(o, i, n) * src_i[off[n] + t]
 * where inputs i < ni0 are planes of src0 (stride lds0) and the next ni1
 * are planes of src1 (stride lds1): the R-op's two terms (R{x} with W, x
 * with V) run as one sum. The forward uses it with the input's phase planes
 * and the tap offsets; the backward's dx with dy laid out like an output and
 * the transposed weights of one phase plane's taps. Nothing is copied into
 * an im2col matrix: each input vector is loaded once per tap and multiplied
 * into 8 output channels held in registers. */
#ifndef BP_CONV_DIRECT_H
#define BP_CONV_DIRECT_H

#include "core/bp_common.h"

/* Output channels per register block; packed weights are laid out
 * [o-block][i][n][BP_CD_OB], zero past no. */
#define BP_CD_OB 8

/* Whether the kernel can run here: a float build on a CPU with AVX-512F,
 * and not switched off by bp_cd_enable(0). */
int bp_cd_available(void);

/* Switches the direct path on or off (for tests and benchmarks; the
 * default is on). Not thread-safe against running convolutions. */
void bp_cd_enable(int on);

/* Reals of packed weights for no outputs, ni inputs, nk taps. */
size_t bp_cd_wsize(int no, int ni, int nk);

void bp_cd_run(long T, int no, const bp_real *src0, int ni0, long lds0, const bp_real *src1,
               int ni1, long lds1, int nk, const long *off, const bp_real *wp, bp_real *out,
               long ldo, int accumulate);

/* The same sums written (or added, with accumulate) straight into an NCHW
 * output plane per channel (stride P): position t = oh*Wq + ow goes to
 * y[o*P + oh*OW + ow], plus bias[o], for ow < OW and is dropped for the gap
 * columns (bias may be NULL). */
void bp_cd_run_nchw(long T, int no, const bp_real *src0, int ni0, long lds0, const bp_real *src1,
                    int ni1, long lds1, int nk, const long *off, const bp_real *wp, bp_real *y,
                    long P, long Wq, int OW, const bp_real *bias, int accumulate);

/* The weight gradient on the same phase planes, transposed and summed over
 * nt terms: for r < R (r = c*K + n: input plane c, tap n) and m < M,
 *   dwt[r*ldw + m] += sum_k sum_{oh<OH, ow<OW}
 *                     xs[k][c*lds + xoff[n] + oh*Wq + ow] * dyt[k][(oh*OW + ow)*ldm + m]
 * dyt[k] is one sample's dy transposed (positions x channels, row stride
 * ldm >= round-up(M, 16); columns M .. ldm-1 are read, and must be finite,
 * but do not reach dwt). A block of 8 rows by 32 (or 16) columns of dwt
 * stays in registers over all positions of all terms: each step loads one
 * row of dy^T and broadcasts 8 input values, so there is no im2col matrix
 * and no sum across vector lanes. */
void bp_cd_dw(int R, int K, const long *xoff, int M, int nt, const bp_real *const *xs, long lds,
              const bp_real *const *dyt, int ldm, int OH, int OW, long Wq, bp_real *dwt, int ldw);

/* dyt (P x ld) <- dy (M x P) transposed, zeros in columns M .. ld-1 (ld a
 * multiple of 16 and >= M): the dy^T that bp_cd_dw reads. */
void bp_cd_transpose(int M, int P, const bp_real *dy, int ld, bp_real *dyt);

#endif
