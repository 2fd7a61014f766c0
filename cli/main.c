/* bitplan — command dispatch. */
#include "cli/cli.h"

#include <stdio.h>
#include <string.h>

#include "cli/mpi_cli.h"
#include "core/dist.h"

/* Subcommands not yet built into this binary are weak and show as such. */
#pragma weak cmd_info
#pragma weak cmd_eval
#pragma weak cmd_train
#pragma weak cmd_sensitivity
#pragma weak cmd_ilp
#pragma weak cmd_latency
#pragma weak cmd_plan
#pragma weak cmd_plot
#pragma weak cmd_export
#pragma weak cmd_eval_plan

int bp_cli_quiet;

static const struct {
    const char *name;
    bp_cmd_fn fn;
    const char *summary;
} commands[] = {
    {"plan", cmd_plan, "the main job: sensitivity, search, validation, plots, configs"},
    {"info", cmd_info, "print a model's layer table (shapes, params, MACs)"},
    {"eval", cmd_eval, "float accuracy; with --plan, fake-quant and integer-only accuracy"},
    {"train", cmd_train, "train a built-in architecture on Fashion-MNIST, write ONNX"},
    {"sensitivity", cmd_sensitivity, "Hessian traces, eigenvalues, density and Omega per bit-width"},
    {"ilp", cmd_ilp, "choose per-layer bit-widths under size/BOPs/latency budgets (GLPK)"},
    {"latency", cmd_latency, "measure or show hardware latency profiles"},
    {"plot", cmd_plot, "remake the trade-off plots from output files (gnuplot)"},
    {"export", cmd_export, "write deployment configs (C header + standalone inference)"},
};

int bp_cli_fail(bp_status st)
{
    const char *m = bp_last_error();
    /* under MPI only the failing rank and rank 0 speak (cli/mpi_cli.c) */
    if (!(bp_dist_failed_elsewhere() && bp_dist_rank() != 0))
        fprintf(stderr, "bitplan: %s\n", m && m[0] ? m : bp_strerror(st));
    return st == BP_ERR_INFEASIBLE ? BP_EXIT_INFEASIBLE
           : st == BP_ERR_ARG      ? BP_EXIT_USAGE
                                   : BP_EXIT_FAIL;
}

static void usage(FILE *fp)
{
    fprintf(fp, "usage: bitplan <command> [options]   (bitplan <command> --help for more)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        fprintf(fp, "  %-12s %s%s\n", commands[i].name, commands[i].summary,
                commands[i].fn ? "" : " [not built]");
    fprintf(fp, "  %-12s %s\n", "help", "this list");
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "help") || !strcmp(argv[1], "--help") ||
        !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? BP_EXIT_USAGE : BP_EXIT_OK;
    }
    for (int i = 2; i < argc; i++)
        if (!strcmp(argv[i], "--quiet") || !strcmp(argv[i], "-q"))
            bp_cli_quiet = 1;
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++) {
        if (strcmp(argv[1], commands[i].name))
            continue;
        if (!commands[i].fn) {
            fprintf(stderr, "bitplan: '%s' is not built into this binary\n", argv[1]);
            return BP_EXIT_FAIL;
        }
#ifdef BP_MPI
        if (!strcmp(argv[1], "sensitivity")) /* over several processes: docs/MPI.md */
            return bp_cli_mpi_run(commands[i].fn, argc - 1, argv + 1);
#endif
        return commands[i].fn(argc - 1, argv + 1);
    }
    fprintf(stderr, "bitplan: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return BP_EXIT_USAGE;
}
