/* mpi_cli.h — runs a subcommand on a process group (core/dist.h): starts
 * MPI, keeps the other ranks quiet, ends the job on a failure the ranks could
 * not agree on. docs/MPI.md. */
#ifndef BP_MPI_CLI_H
#define BP_MPI_CLI_H

#include "cli/act_cli.h"
#include "cli/cli.h"

int bp_cli_mpi_run(bp_cmd_fn fn, int argc, char **argv);

/* `--act` with several processes: activation traces are not distributed;
 * rank 0 computes them on the whole calibration set (the first o->samples
 * samples of `data`) exactly as one process does, while the others wait.
 * Collective; returns an exit code, agreed by every rank. */
int bp_cli_mpi_act(const bp_graph *g, const char *data, const bp_sens_opts *o, bp_cli_act *act,
                   bp_sens *sens);

#endif
