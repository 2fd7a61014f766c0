/* data.h — labelled image data for calibration, evaluation and training.
 *
 * A data source is named by a spec string:
 *   fashion-mnist:train | fashion-mnist:test   Debian's dataset-fashion-mnist
 *                                               (/usr/share/datasets/fashion-mnist,
 *                                               or $BP_FASHION_MNIST_DIR)
 *   idx:IMAGES.gz,LABELS.gz                     IDX files, gzip or plain
 *   npy:X.npy,Y.npy                             X float32 (used as is) or uint8
 *                                               (normalized like IDX); Y integer labels
 * Images from IDX and uint8 .npy are normalized as (p/255 - mean) / std with
 * the Fashion-MNIST statistics (BP_FMNIST_MEAN, BP_FMNIST_STD) unless the
 * caller sets other values in bp_data_opts.
 *
 * Streams read batches in order without holding the whole set, so memory does
 * not grow with the number of samples used.
 */
#ifndef BP_DATA_H
#define BP_DATA_H

#include "core/bp_common.h"

#define BP_FMNIST_MEAN 0.2860f
#define BP_FMNIST_STD 0.3530f

typedef struct {
    float mean, std; /* normalization of 8-bit pixels */
    int limit;       /* at most this many samples (0 = all) */
    int offset;      /* skip this many samples first */
} bp_data_opts;

/* Defaults: Fashion-MNIST statistics, no limit, no offset. */
bp_data_opts bp_data_opts_default(void);

typedef struct bp_stream bp_stream;

/* Opens a stream; bad spec, missing file, bad magic, shape mismatch between
 * images and labels, or truncation give an error naming the file and reason. */
bp_status bp_stream_open(const char *spec, const bp_data_opts *opts, bp_stream **out);
/* Per-sample shape (C, H, W), sample count (after limit/offset) and class count
 * (max label + 1 where known from the header, else 10). */
void bp_stream_info(const bp_stream *s, int *c, int *h, int *w, int *n, int *nclasses);
/* Reads up to max samples into x (max, C, H, W) and y (max); *got = 0 at the end.
 * A truncated file is BP_ERR_FORMAT naming the file and the sample index. */
bp_status bp_stream_next(bp_stream *s, int max, bp_real *x, int *y, int *got);
/* Back to the first sample. */
bp_status bp_stream_rewind(bp_stream *s);
void bp_stream_close(bp_stream *s); /* accepts NULL */

/* A whole data set in memory (training, small evaluations). */
typedef struct {
    int n, c, h, w, nclasses;
    bp_real *x; /* (n, c, h, w) normalized */
    int *y;     /* (n) */
} bp_dataset;

bp_status bp_dataset_load(const char *spec, const bp_data_opts *opts, bp_dataset *ds);
void bp_dataset_free(bp_dataset *ds); /* frees the arrays; accepts NULL */

#endif
