/* dist.h — the process group a job runs on: a tiny communicator abstraction.
 *
 * The plain build is serial: one process, rank 0 of 1, and every function is
 * a cheap no-op (a sum over one process is the value itself). The MPI build
 * (`make MPI=1`: mpicc and -DBP_MPI) implements the same calls on Open MPI's
 * MPI_COMM_WORLD. Library code that works on data split across processes
 * (sensitivity/dist_op.c) calls these and never MPI directly, so it compiles
 * and runs the same in both builds. docs/MPI.md has the whole picture.
 *
 * Failure handling: a collective must be entered by every rank, so a rank
 * that fails on its own must still take part in the next agreement point;
 * bp_dist_agree() is that point. It tells every rank whether any rank
 * failed, and which. The library never aborts: the CLI ends a job whose
 * ranks could not agree (bp_dist_abort).
 */
#ifndef BP_DIST_H
#define BP_DIST_H

#include <stddef.h>

#include "core/bp_common.h"

/* Starts the process group (MPI_Init_thread when built with MPI and not yet
 * initialized; nothing otherwise). Idempotent. Returns BP_OK or an error. */
bp_status bp_dist_init(void);
/* Ends it (MPI_Finalize when this module initialized MPI). Idempotent. */
void bp_dist_finalize(void);

int bp_dist_rank(void); /* 0 in the serial build and before init */
int bp_dist_size(void); /* 1 in the serial build and before init */

/* Whether this build has MPI (1) or is the plain serial build (0). */
int bp_dist_has_mpi(void);

/* In-place sum of n doubles over every rank (MPI_Allreduce, MPI_SUM); on
 * return every rank holds the same sums. Serial: nothing to do. Collective. */
bp_status bp_dist_sum(double *buf, size_t n);
/* Same for long integers. */
bp_status bp_dist_sum_long(long *buf, size_t n);

/* Agreement point. st is this rank's status. Every rank returns BP_OK when
 * every rank passed BP_OK. Otherwise every rank returns the status of the
 * lowest failing rank: that rank keeps its own message, prefixed with
 * "rank R of N" when N > 1; the others get "rank R of N failed (...)".
 * After a non-OK return bp_dist_failed_together() is 1. Collective. */
bp_status bp_dist_agree(bp_status st);
/* 1 once an agreement point has returned a failure (so every rank knows and
 * the job can end cleanly), else 0. */
int bp_dist_failed_together(void);
/* 1 when the last agreed failure happened on another rank (this rank then
 * need not repeat the message: the failing rank printed its own). */
int bp_dist_failed_elsewhere(void);

/* Collective check that every rank holds the same n values (a model hash,
 * a sample count): a rank whose values differ from another rank's gets
 * BP_ERR_MISMATCH naming `what` (at least one rank does whenever they are
 * not all equal); follow with bp_dist_agree so that every rank stops.
 * Serial: BP_OK. */
bp_status bp_dist_same(const long *v, size_t n, const char *what);

/* Ends every rank of the job at once (MPI_Abort); for a failure the other
 * ranks cannot learn of (they may be waiting in a collective). Serial:
 * returns without doing anything. Never called by library code. */
void bp_dist_abort(int code);

/* Contiguous shard of n samples in whole batches of `batch`: rank r gets
 * batches [B·r/size, B·(r+1)/size) of the B = ceil(n/batch) batches, i.e.
 * samples [*offset, *offset + *count). Every rank's batches are exactly the
 * batches a single process would form, so results do not depend on the rank
 * count beyond the order of the final sums. *count is 0 when size > B. */
void bp_dist_shard(int n, int batch, int rank, int size, int *offset, int *count);

#endif
