/* dist_op.h — the model Hessian operator over calibration data split across
 * the ranks of a process group (core/dist.h).
 *
 * Every rank holds a bp_model_op on its own contiguous shard of the
 * calibration set (bp_dist_shard: whole batches, so each rank's batches are
 * the batches one process would form). A product H v is the sum over ranks of
 * (n_r / N) · H_r v, H_r being the mean-loss Hessian of rank r's shard: each
 * rank scales its local product and the vectors are summed in place with one
 * MPI_Allreduce of k·dim doubles per call (k = directions of the call). The
 * algorithms (Hutchinson, power iteration, Lanczos) only see the operator and
 * draw their random vectors from the same seed on every rank, so they run in
 * lockstep and give what one process gives, up to the order of the final
 * double-precision sums.
 *
 * Failures: before the vectors are summed every rank states its status
 * (bp_dist_agree), so a rank whose shard is bad or whose product fails makes
 * every rank return an error instead of leaving the others waiting.
 *
 * In the serial build (or with one rank) the wrapper adds nothing but a copy
 * of the operator view.
 */
#ifndef BP_DIST_OP_H
#define BP_DIST_OP_H

#include "core/dist.h"
#include "sensitivity/sensitivity.h"

typedef struct bp_dist_op bp_dist_op;

/* Collective: every rank calls it, with local = its status from building its
 * own operator m (m may be NULL when local is not BP_OK). Agrees on failure
 * first (every rank then returns an error), then sums the sample counts.
 * The wrapper does not own m. */
bp_status bp_dist_op_new(bp_status local, bp_model_op *m, bp_dist_op **out);
void bp_dist_op_free(bp_dist_op *d); /* accepts NULL */

/* The summed operator (valid while d and its m live). Every product is
 * collective. */
bp_linop bp_dist_op_linop(bp_dist_op *d);
/* N: samples over every rank; this rank's n_r; mean loss over all N samples
 * at the last product; bytes this rank has handed to MPI_Allreduce so far
 * (8 per double per product). */
int bp_dist_op_samples(const bp_dist_op *d);
int bp_dist_op_local_samples(const bp_dist_op *d);
double bp_dist_op_loss(const bp_dist_op *d);
double bp_dist_op_bytes(const bp_dist_op *d);

/* Opens this rank's shard of data source `spec`: the first `samples`
 * samples of the source (0 = all; fewer when the source is shorter) are split
 * by bp_dist_shard in batches of `batch`. *total receives the samples over
 * every rank, the stream holds this rank's. A rank count larger than the
 * number of batches is BP_ERR_ARG saying how to fix it (each rank needs at
 * least one batch). Not collective: every rank computes the same split. */
bp_status bp_dist_stream_open(const char *spec, const bp_data_opts *base, int samples, int batch,
                              bp_stream **out, int *total);

#endif
