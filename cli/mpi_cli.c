/* The MPI front of `bitplan sensitivity` (mpi_cli.h). */
#include "cli/mpi_cli.h"

#include <stdio.h>

#include "core/dist.h"

int bp_cli_mpi_run(bp_cmd_fn fn, int argc, char **argv)
{
    bp_status st = bp_dist_init();
    if (st)
        return bp_cli_fail(st);
    /* Progress, tables and warnings come from rank 0 alone; errors from the
     * rank that failed (and a one-line summary from rank 0). */
    if (bp_dist_rank() != 0)
        bp_cli_quiet = 1;
    int rc = fn(argc, argv);
    if (rc != BP_EXIT_OK && rc != BP_EXIT_USAGE && bp_dist_size() > 1 && !bp_dist_failed_together()) {
        /* This rank failed where the others could not learn of it (they may
         * be waiting in a collective): end the whole job. */
        fprintf(stderr, "bitplan: rank %d of %d failed on its own; ending every rank\n",
                bp_dist_rank(), bp_dist_size());
        fflush(stderr);
        bp_dist_abort(rc);
    }
    fflush(stdout);
    bp_dist_finalize();
    return rc;
}
