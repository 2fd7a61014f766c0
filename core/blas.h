/* blas.h — one matrix-product entry point for the engine, row-major, in bp_real.
 *
 * C = alpha * op(A) * op(B) + beta * C with op(A) (m x k), op(B) (k x n),
 * C (m x n); lda/ldb/ldc are row strides of the matrices as stored. Calls
 * cblas_sgemm or cblas_dgemm depending on how bp_real is built. */
#ifndef BP_BLAS_H
#define BP_BLAS_H

#include <cblas.h>

#include "core/bp_common.h"

static inline void bp_gemm(int trans_a, int trans_b, int m, int n, int k, bp_real alpha,
                           const bp_real *a, int lda, const bp_real *b, int ldb, bp_real beta,
                           bp_real *c, int ldc)
{
    if (m <= 0 || n <= 0)
        return;
    if (k <= 0) { /* empty sum: C = beta * C, which BLAS may not do for k = 0 */
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
                c[(size_t)i * ldc + j] = beta == 0 ? 0 : beta * c[(size_t)i * ldc + j];
        return;
    }
#ifdef BP_F64
    cblas_dgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
#else
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
#endif
}

#endif
