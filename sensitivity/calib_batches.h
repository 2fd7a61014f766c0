/* calib_batches.h — internal to sensitivity/: the calibration set as a
 * sequence of batches, read from a bp_stream or taken from arrays in memory.
 * The weight Hessian (hvp_op.c) and the activation Hessian (act_trace.c) both
 * make full passes over the set this way; keeping it in one place keeps their
 * batching, and so their sums, identical. Not part of the public API. */
#ifndef BP_SENS_CALIB_BATCHES_H
#define BP_SENS_CALIB_BATCHES_H

#include "core/data.h"
#include "core/exec.h"

typedef struct {
    bp_stream *s;        /* either a stream ... */
    const bp_real *mx;   /* ... or arrays in memory (not owned) */
    const int *my;
    int n, batch;        /* samples per pass; batch = min(batch, n) */
    size_t per;          /* input elements per sample */
    bp_real *x;          /* (batch, per) stream batch, owned; NULL for memory */
    int *y;              /* (batch) */
    const char *what;    /* names the caller in error messages */
} bp_cbatch;

/* Sets up c over stream s (x, y NULL) or arrays x, y of n samples; batch is
 * clipped to n. Allocates the stream batch buffers. On failure c can still be
 * passed to bp_cbatch_free. */
bp_status bp_cbatch_init(bp_cbatch *c, const char *what, bp_stream *s, const bp_real *x,
                         const int *y, int n, int batch, size_t per);
void bp_cbatch_free(bp_cbatch *c);

/* Before reading a stream: its samples must fit the model input (when the
 * graph has one), and *samples (<= 0: all of them) must not exceed what the
 * stream holds; *samples is resolved to the count to use. */
bp_status bp_cbatch_check_stream(const bp_graph *g, bp_stream *s, int *samples);

/* Start of a pass: rewinds the stream (nothing to do for memory). */
bp_status bp_cbatch_rewind(bp_cbatch *c);
/* The batch that starts at sample done (< n): *got samples at *x, *y, valid
 * until the next call. A stream that ends early is BP_ERR_FORMAT. */
bp_status bp_cbatch_next(bp_cbatch *c, int done, const bp_real **x, const int **y, int *got);

/* Forward in inference mode (the engine reads params and never writes them)
 * and the batch-mean cross-entropy into *loss; a loss that is not finite is
 * BP_ERR_NUMERIC. */
bp_status bp_cbatch_loss(bp_exec *ex, bp_real *params, const bp_real *x, const int *y,
                         int got, double *loss);

/* What a pass does with each batch after its forward and loss: called with
 * the batch's samples [done, done + got) and their labels. */
typedef bp_status (*bp_cbatch_fn)(void *ctx, int done, int got, const int *y);

/* One pass over the set: rewind, then per batch bp_cbatch_loss and fn. An
 * error from a batch is wrapped with "<what> on samples a..b". On success
 * *loss is the mean loss over the set (each batch weighted by got / n); on
 * failure *loss is left untouched. */
bp_status bp_cbatch_pass(bp_cbatch *c, bp_exec *ex, bp_real *params, bp_cbatch_fn fn, void *ctx,
                         double *loss);

#endif
