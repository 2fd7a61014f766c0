/* cli.h — the bitplan command line. The CLI is the only place that prints to
 * the terminal or exits; each subcommand lives in cli/cmd_<name>.c.
 *
 * Exit codes (documented in README.md):
 *   0 success, 1 bad input or failure (message on stderr), 2 usage error,
 *   3 infeasible budget (the message states the smallest reachable values). */
#ifndef BP_CLI_H
#define BP_CLI_H

#include "core/bp_common.h"

enum { BP_EXIT_OK = 0, BP_EXIT_FAIL = 1, BP_EXIT_USAGE = 2, BP_EXIT_INFEASIBLE = 3 };

typedef int (*bp_cmd_fn)(int argc, char **argv);

int cmd_info(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_sensitivity(int argc, char **argv);
int cmd_ilp(int argc, char **argv);
int cmd_latency(int argc, char **argv);
int cmd_plan(int argc, char **argv);
int cmd_plot(int argc, char **argv);
int cmd_export(int argc, char **argv);
/* `bitplan eval MODEL --plan PLAN ...`: cmd_eval hands over when --plan is given. */
int cmd_eval_plan(int argc, char **argv);

/* Prints "bitplan: <message>" for a failed status and returns the exit code
 * that goes with it. */
int bp_cli_fail(bp_status st);

/* Whether --quiet was given anywhere; progress lines go to stderr unless so. */
extern int bp_cli_quiet;

#endif
