/* calib.h — per-tensor activation ranges from calibration data.
 *
 * Statistics are gathered in two passes of the float model over the
 * calibration samples: min/max, then a histogram of |x| (BP_CALIB_BINS bins
 * over [0, max|x|]). The clipping value c of a tensor quantized at b bits is
 *   minmax      c = max|x| (for unsigned tensors, max x)
 *   percentile  c = the p-th percentile of |x| (default p = 99.99)
 *   mse         c minimizing the histogram's expected squared quantization
 *               error Σ count·(Q_c(v) − v)², searched on 200 fractions of
 *               max|x| (1 included, so never worse than minmax on the
 *               histogram)
 * and the scale is c / (2^b − 1) for unsigned tensors, c / (2^(b−1) − 1) for
 * signed ones. The default is mse: at 8 bits it is within noise of minmax, at
 * 4 bits and below it keeps far more accuracy (docs/QUANT.md has the numbers).
 */
#ifndef BP_CALIB_H
#define BP_CALIB_H

#include <stdint.h>

#include "core/bp_common.h"

#define BP_CALIB_BINS 2048

typedef enum { BP_CALIB_MINMAX, BP_CALIB_PERCENTILE, BP_CALIB_MSE } bp_calib_method;

const char *bp_calib_name(bp_calib_method m);
/* -1 for an unknown name. */
int bp_calib_parse(const char *name);

typedef struct {
    double min, max, absmax;
    uint64_t count;
    uint64_t hist[BP_CALIB_BINS]; /* of |x| over [0, absmax] */
} bp_calib_stats;

void bp_calib_reset(bp_calib_stats *s);
/* Pass 1: min, max. */
void bp_calib_minmax(bp_calib_stats *s, const bp_real *x, size_t n);
/* Pass 2 (after pass 1 over all data): histogram. */
void bp_calib_hist(bp_calib_stats *s, const bp_real *x, size_t n);

/* Clipping value for `bits` bits (see the header comment); > 0 (a tensor
 * that is all zero gets 1). */
double bp_calib_clip(const bp_calib_stats *s, bp_calib_method m, double percentile, int bits,
                     int is_signed);

#endif
