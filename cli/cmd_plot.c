/* `bitplan plot OUTDIR [-o PLOTDIR]`: remakes the plots of a `bitplan plan`
 * output directory from its files (plots/plots.h: bp_plots_from_dir). */
#include "cli/cli.h"

#include <stdio.h>
#include <string.h>

#include "plots/plots.h"

static void usage(FILE *fp)
{
    fprintf(fp, "usage: bitplan plot OUTDIR [-o PLOTDIR] [--quiet]\n"
                "       bitplan plot [--sens F] [--plan F] [--eval F] [--frontier F] [--profile P] -o PLOTDIR\n"
                "  Remakes the PNG and SVG plots (gnuplot) from OUTDIR's sensitivity.json, plan.json,\n"
                "  evaluation.json and frontier.json (or the files given) into PLOTDIR (default\n"
                "  OUTDIR/plots). Files that are missing leave their plots out; the .gp scripts and .dat\n"
                "  files stay beside the images. The profile defaults to the one named in the plan.\n"
                "exit: 0 ok, 1 failure (unreadable file, gnuplot missing or failing), 2 usage\n");
}

int cmd_plot(int argc, char **argv)
{
    const char *dir = NULL, *out = NULL;
    bp_plot_files f = {0};
    for (int i = 1; i < argc; i++) {
        const char **slot = !strcmp(argv[i], "--sens") ? &f.sens : !strcmp(argv[i], "--plan") ? &f.plan
                            : !strcmp(argv[i], "--eval") ? &f.eval : !strcmp(argv[i], "--frontier") ? &f.frontier
                            : !strcmp(argv[i], "--profile") ? &f.profile : NULL;
        if (slot && i + 1 < argc) {
            *slot = argv[++i];
            continue;
        }
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return BP_EXIT_OK;
        } else if (!strcmp(argv[i], "--quiet") || !strcmp(argv[i], "-q")) {
            bp_cli_quiet = 1;
        } else if (!strcmp(argv[i], "-o") && i + 1 < argc) {
            out = argv[++i];
        } else if (argv[i][0] == '-' || dir) {
            fprintf(stderr, "bitplan plot: unexpected argument '%s'\n", argv[i]);
            usage(stderr);
            return BP_EXIT_USAGE;
        } else {
            dir = argv[i];
        }
    }
    int files = f.sens || f.plan || f.eval || f.frontier;
    if (dir ? files : !files || !out) {
        fprintf(stderr, "bitplan plot: give OUTDIR, or files with -o PLOTDIR\n");
        usage(stderr);
        return BP_EXIT_USAGE;
    }
    char buf[4096];
    if (!out) {
        snprintf(buf, sizeof buf, "%s/plots", dir);
        out = buf;
    }
    int made = 0;
    char notes[1024] = "";
    bp_status st = dir ? bp_plots_from_dir(dir, out, &made, notes, sizeof notes)
                       : bp_plots_from_files(&f, out, &made, notes, sizeof notes);
    if (st)
        return bp_cli_fail(st);
    if (!bp_cli_quiet) {
        printf("%d plots (PNG + SVG) in %s\n", made, out);
        if (notes[0])
            printf("left out: %s\n", notes);
    }
    return BP_EXIT_OK;
}
