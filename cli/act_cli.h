/* act_cli.h — the activation-sensitivity options of `bitplan sensitivity`
 * (--act and --act-*), kept apart from cmd_sensitivity.c, which calls these
 * three hooks. docs/SENSITIVITY.md ("Activation sensitivity"). */
#ifndef BP_ACT_CLI_H
#define BP_ACT_CLI_H

#include <stdio.h>

#include "sensitivity/act.h"

typedef struct {
    int on;                 /* --act given */
    bp_act_opts o;
    /* set explicitly; otherwise they follow the weight options */
    int set_samples, set_min, set_max;
} bp_cli_act;

void bp_cli_act_init(bp_cli_act *a);
/* argv[*i] is an activation option: consumes it (and its value, advancing
 * *i) and returns 1; not one: 0; a bad value: prints why and returns -1. */
int bp_cli_act_option(int argc, char **argv, int *i, bp_cli_act *a);
void bp_cli_act_usage(FILE *fp);
/* With --act: runs bp_act_sens_run after the weight pass (settings that were
 * not given follow so: samples, batch, seed, tolerance, probe bounds,
 * negative-trace policy), prints its table and warnings. Returns an exit
 * code (0 when done or when --act was not given). */
int bp_cli_act_run(const bp_graph *g, bp_stream *s, const bp_sens_opts *so, bp_cli_act *a,
                   bp_sens *sens);

#endif
