/* The MPI front of `bitplan sensitivity` (mpi_cli.h). */
#include "cli/mpi_cli.h"

#include <stdio.h>

#include "core/dist.h"
#include "core/data.h"

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

int bp_cli_mpi_act(const bp_graph *g, const char *data, const bp_sens_opts *o, bp_cli_act *act,
                   bp_sens *sens)
{
    int rc = BP_EXIT_OK;
    if (bp_dist_rank() == 0) {
        /* the whole calibration set, as one process reads it */
        bp_data_opts d = bp_data_opts_default();
        d.limit = o->samples;
        bp_stream *full = NULL;
        bp_status st = bp_stream_open(data, &d, &full);
        rc = st ? bp_cli_fail(st) : bp_cli_act_run(g, full, o, act, sens);
        bp_stream_close(full);
    }
    /* rank 0 has printed its message; the others learn of the failure here */
    bp_status st = bp_dist_agree(rc == BP_EXIT_OK ? BP_OK : rc == BP_EXIT_USAGE ? BP_ERR_ARG : BP_ERR_IO);
    if (!st)
        return BP_EXIT_OK;
    return bp_dist_rank() == 0 ? rc : bp_cli_fail(st);
}
