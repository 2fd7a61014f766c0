/* mpi_cli.h — runs a subcommand on a process group (core/dist.h): starts
 * MPI, keeps the other ranks quiet, ends the job on a failure the ranks could
 * not agree on. docs/MPI.md. */
#ifndef BP_MPI_CLI_H
#define BP_MPI_CLI_H

#include "cli/cli.h"

int bp_cli_mpi_run(bp_cmd_fn fn, int argc, char **argv);

#endif
