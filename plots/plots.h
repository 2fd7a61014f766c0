/* plots.h — the trade-off plots, made with gnuplot.
 *
 * For every plot the library writes its data (<name>.dat) and a gnuplot
 * script (<name>.gp) into the output directory, then runs `gnuplot <name>.gp`
 * there (posix_spawn; stdout discarded, stderr kept in gnuplot.log only when
 * gnuplot fails), which writes <name>.png (pngcairo, 1000x600) and
 * <name>.svg. The scripts are plain text, so a user can edit and rerun them
 * (`cd plots && gnuplot frontier_size.gp`). Every plot has a title, axis
 * labels with units and a legend. The plots (docs/PIPELINE.md):
 *
 *   frontier_size, frontier_bops, frontier_latency
 *       accuracy (left axis) and Ω (right axis, log) along the Pareto frontier
 *       against weight size, BOPs and latency; W8A8, W4A4, the chosen plan and
 *       the float accuracy marked. frontier_latency only with latencies.
 *   plan_bits        weight and activation bits per layer of the chosen plan
 *   traces           |Tr(H_i)| per layer on a log scale with ±1 standard error
 *                    bars (negative traces drawn in another colour)
 *   density          the eigenvalue density (SLQ), log scale; only when the
 *                    sensitivity file has one
 *   latency_layers   per-layer latency at each candidate bit-width from the
 *                    profile; only with a profile
 */
#ifndef BP_PLOTS_H
#define BP_PLOTS_H

#include "ilp/plan.h"
#include "latency/profile.h"
#include "pipeline/pipeline.h"
#include "sensitivity/sens_file.h"

typedef struct {
    double budget, objective, size_bytes, bops, latency_ms;
} bp_plot_front;

typedef struct {
    const bp_sens *sens;          /* may be NULL: no traces/density plots */
    const bp_plan *plan;          /* may be NULL: no plan_bits plot */
    const bp_pipe_row *rows;      /* evaluated rows (float, uniform, plan, frontier) */
    int nrows;
    const bp_plot_front *front;   /* every frontier point (Ω known for all) */
    int nfront;
    const bp_profile *profile;    /* may be NULL: no latency_layers plot */
} bp_plot_inputs;

/* Makes every plot the inputs allow into outdir (created if needed).
 * made (may be NULL) receives how many plots were made; notes (may be NULL,
 * n bytes) a ';'-separated list of plots left out and why. BP_ERR_IO when
 * gnuplot cannot be run or fails (the message has its last error line). */
bp_status bp_plots_make(const bp_plot_inputs *in, const char *outdir, int *made, char *notes,
                        size_t n);

/* Loads what the plots need from a `bitplan plan` output directory
 * (sensitivity.json, plan.json, evaluation.json, frontier.json; the profile
 * named in plan.json when it can be read) and makes the plots into outdir.
 * Files that are missing leave their plots out (see notes); a directory with
 * none of them is BP_ERR_IO. */
bp_status bp_plots_from_dir(const char *dir, const char *outdir, int *made, char *notes, size_t n);

/* The same from files named one by one (any may be NULL, not all). profile
 * NULL: the one named in the plan, when it can be read. */
typedef struct {
    const char *sens, *plan, *eval, *frontier, *profile;
} bp_plot_files;
bp_status bp_plots_from_files(const bp_plot_files *f, const char *outdir, int *made, char *notes, size_t n);

/* Runs gnuplot on script (a file name relative to dir) with dir as the
 * working directory. */
bp_status bp_gnuplot_run(const char *dir, const char *script);

#endif
