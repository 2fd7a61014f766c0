/* plots.c — data files and gnuplot scripts for each plot (plots.h). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "plots/plots.h"

#define W_PX 1000
#define H_PX 600

static bp_status open_in(bp_out *o, const char *dir, const char *name)
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path)
        return bp_error(BP_ERR_ARG, "%s: path too long", dir);
    return bp_out_open(o, path);
}

static bp_status close_out(bp_out *o)
{
    if (ferror(o->fp)) {
        bp_status st = bp_error(BP_ERR_IO, "%s: write failed", o->path);
        bp_out_abort(o);
        return st;
    }
    return bp_out_commit(o);
}

/* The terminal preamble and the PNG + SVG pair: the script draws once into
 * the PNG, then replots into the SVG. */
static void preamble(FILE *fp, const char *name, const char *title)
{
    fprintf(fp,
            "# %s — made by bitplan (plots/plots.c); rerun with: gnuplot %s.gp\n"
            "set encoding utf8\n"
            "set terminal pngcairo size %d,%d noenhanced font 'Sans,11'\n"
            "set output '%s.png'\n"
            "set title \"%s\"\n"
            "set grid\n"
            "set key above box opaque reverse Left width 4\n",
            name, name, W_PX, H_PX, name, title);
}

static void finish(FILE *fp, const char *name)
{
    fprintf(fp,
            "set terminal svg size %d,%d dynamic noenhanced font 'Sans,11'\n"
            "set output '%s.svg'\n"
            "replot\n"
            "unset output\n",
            W_PX, H_PX, name);
}

static void note(char *notes, size_t n, const char *fmt, ...)
{
    if (!notes || !n)
        return;
    size_t len = strlen(notes);
    if (len && len + 2 < n)
        strcat(notes, "; "), len += 2;
    va_list ap;
    va_start(ap, fmt);
    if (len < n)
        vsnprintf(notes + len, n - len, fmt, ap);
    va_end(ap);
}

/* A number for a .dat file; gnuplot reads NaN as missing. */
static void num(FILE *fp, double x) { isfinite(x) ? fprintf(fp, " %.9g", x) : fprintf(fp, " NaN"); }

static const bp_pipe_row *find_row(const bp_plot_inputs *in, const char *name)
{
    for (int i = 0; i < in->nrows; i++)
        if (!strcmp(in->rows[i].name, name))
            return &in->rows[i];
    return NULL;
}

/* x value of a row/point for axis a: 0 size KiB, 1 BOPs G, 2 latency ms. */
static double xval(int a, double size, double bops, double lat)
{
    return a == 0 ? size / 1024 : a == 1 ? bops / 1e9 : lat;
}

typedef struct {
    double x, y, z;
} xy;

static int by_x(const void *a, const void *b)
{
    double u = ((const xy *)a)->x, w = ((const xy *)b)->x;
    return u < w ? -1 : u > w;
}

static bp_status frontier_plot(const bp_plot_inputs *in, const char *dir, int axis)
{
    static const char *names[] = {"frontier_size", "frontier_bops", "frontier_latency"};
    static const char *xlab[] = {"model size: weights + per-channel bias/scale (KiB)",
                                 "bit operations per sample, MACs x b_w x b_a (GBOPs)",
                                 "latency from the profile (ms per batch)"};
    static const char *what[] = {"size", "BOPs", "latency"};
    const char *name = names[axis];
    bp_out o = {0};
    char fname[64];
    bp_status st;
    /* Ω of every frontier point */
    snprintf(fname, sizeof fname, "%s_omega.dat", name);
    if ((st = open_in(&o, dir, fname)))
        return st;
    /* Sorted by x: the sweep orders points by its own budget, which need
     * not be monotone in the other costs (lines would zigzag). */
    fprintf(o.fp, "# x omega (every Pareto point, by x)\n");
    xy *v = malloc(sizeof *v * (in->nfront + in->nrows + 1));
    if (!v) {
        bp_out_abort(&o);
        return bp_error(BP_ERR_NOMEM, "plots: out of memory");
    }
    int nv = 0;
    for (int i = 0; i < in->nfront; i++) {
        const bp_plot_front *f = &in->front[i];
        v[nv++] = (xy){xval(axis, f->size_bytes, f->bops, f->latency_ms), f->objective, NAN};
    }
    qsort(v, nv, sizeof *v, by_x);
    for (int i = 0; i < nv; i++) {
        num(o.fp, v[i].x);
        num(o.fp, v[i].y);
        fprintf(o.fp, "\n");
    }
    st = close_out(&o);
    /* evaluated points, one block per kind */
    snprintf(fname, sizeof fname, "%s.dat", name);
    if (st || (st = open_in(&o, dir, fname))) {
        free(v);
        return st;
    }
    static const char *blocks[] = {"frontier", "W8A8", "W4A4", "plan"};
    for (int b = 0; b < 4; b++) {
        fprintf(o.fp, "# block %d: %s — x accuracy_percent omega\n", b, blocks[b]);
        nv = 0;
        for (int i = 0; i < in->nrows; i++) {
            const bp_pipe_row *r = &in->rows[i];
            if (b == 0 ? strcmp(r->kind, "frontier") : strcmp(r->name, blocks[b]))
                continue;
            v[nv++] = (xy){xval(axis, r->size_bytes, r->bops, r->latency_ms), 100 * r->accuracy, r->objective};
        }
        qsort(v, nv, sizeof *v, by_x);
        for (int i = 0; i < nv; i++) {
            num(o.fp, v[i].x);
            num(o.fp, v[i].y);
            num(o.fp, v[i].z);
            fprintf(o.fp, "\n");
        }
        fprintf(o.fp, "\n\n");
    }
    free(v);
    if ((st = close_out(&o)))
        return st;
    const bp_pipe_row *fl = find_row(in, "float");
    char title[256];
    snprintf(title, sizeof title, "Accuracy and Ω along the Pareto frontier vs %s", what[axis]);
    snprintf(fname, sizeof fname, "%s.gp", name);
    if ((st = open_in(&o, dir, fname)))
        return st;
    FILE *fp = o.fp;
    preamble(fp, name, title);
    fprintf(fp,
            "set xlabel '%s'\n"
            "set ylabel 'top-1 accuracy, integer-only inference (%%)'\n"
            "set y2label 'Ω = Σ_i Tr(H_i)/n_i · ‖Q(W_i) − W_i‖² (log scale)'\n"
            "set ytics nomirror\nset y2tics\nset logscale y2\n"
            "set datafile missing 'NaN'\n",
            xlab[axis]);
    fprintf(fp, "plot '%s.dat' index 0 using 1:2 with linespoints lw 2 pt 7 lc rgb '#1f77b4' "
                "title 'frontier: accuracy', \\\n", name);
    fprintf(fp, "     '%s_omega.dat' using 1:2 axes x1y2 with linespoints dt 2 pt 6 lc rgb '#ff7f0e' "
                "title 'frontier: Ω (right axis)', \\\n", name);
    fprintf(fp, "     '%s.dat' index 1 using 1:2 with points pt 5 ps 2 lc rgb '#2ca02c' title 'W8A8 uniform', \\\n",
            name);
    fprintf(fp, "     '%s.dat' index 2 using 1:2 with points pt 9 ps 2 lc rgb '#d62728' title 'W4A4 uniform', \\\n",
            name);
    fprintf(fp, "     '%s.dat' index 1 using 1:3 axes x1y2 with points pt 4 ps 2 lc rgb '#2ca02c' "
                "title 'W8A8 Ω', \\\n", name);
    fprintf(fp, "     '%s.dat' index 2 using 1:3 axes x1y2 with points pt 8 ps 2 lc rgb '#d62728' "
                "title 'W4A4 Ω', \\\n", name);
    fprintf(fp, "     '%s.dat' index 3 using 1:2 with points pt 3 ps 3 lw 2 lc rgb '#9467bd' "
                "title 'chosen plan'", name);
    if (fl && isfinite(fl->accuracy))
        fprintf(fp, ", \\\n     %.6g with lines dt 3 lw 2 lc rgb 'black' title 'float accuracy (%.2f%%)'",
                100 * fl->accuracy, 100 * fl->accuracy);
    fprintf(fp, "\n");
    finish(fp, name);
    if ((st = close_out(&o)))
        return st;
    return bp_gnuplot_run(dir, fname);
}

static bp_status plan_bits_plot(const bp_plan *p, const char *dir)
{
    bp_out o = {0};
    bp_status st;
    if ((st = open_in(&o, dir, "plan_bits.dat")))
        return st;
    fprintf(o.fp, "# layer wbits abits\n");
    for (int i = 0; i < p->nlayers; i++)
        fprintf(o.fp, "\"%s\" %d %d\n", p->layers[i].name, p->layers[i].wbits, p->layers[i].abits);
    if ((st = close_out(&o)))
        return st;
    if ((st = open_in(&o, dir, "plan_bits.gp")))
        return st;
    FILE *fp = o.fp;
    char title[200];
    if (isfinite(p->size_bytes))
        snprintf(title, sizeof title, "Bit-widths per layer of the chosen plan (%.1f KiB, %.3g GBOPs per sample)",
                 p->size_bytes / 1024, p->bops / 1e9);
    else
        snprintf(title, sizeof title, "Bit-widths per layer of the chosen plan");
    preamble(fp, "plan_bits", title);
    fprintf(fp,
            "set xlabel 'layer (model order)'\n"
            "set ylabel 'bit-width (bits)'\n"
            "set yrange [0:9]\nset ytics 1\n"
            "set style data histograms\nset style histogram clustered gap 1\n"
            "set style fill solid 0.8 border -1\n"
            "set xtics rotate by -40 scale 0 noenhanced\n"
            "set bmargin 9\n"
            "plot 'plan_bits.dat' using 2:xtic(1) lc rgb '#1f77b4' title 'weight bits', \\\n"
            "     '' using 3 lc rgb '#ff7f0e' title 'activation bits (layer input)'\n");
    finish(fp, "plan_bits");
    if ((st = close_out(&o)))
        return st;
    return bp_gnuplot_run(dir, "plan_bits.gp");
}

static bp_status traces_plot(const bp_sens *s, const char *dir)
{
    bp_out o = {0};
    bp_status st;
    if ((st = open_in(&o, dir, "traces.dat")))
        return st;
    /* |trace| with bars [max(|t| - se, |t|/1000), |t| + se]: a log axis cannot
     * show a bar reaching zero, so the lower end is floored (docs/PIPELINE.md). */
    fprintf(o.fp, "# index layer abs_trace low high negative\n");
    for (int i = 0; i < s->nlayers; i++) {
        const bp_sens_layer *l = &s->layers[i];
        double t = fabs(l->trace), se = isfinite(l->trace_stderr) ? l->trace_stderr : 0;
        if (!isfinite(t) || t <= 0)
            continue;
        double lo = t - se > t / 1000 ? t - se : t / 1000;
        fprintf(o.fp, "%d \"%s\" %.9g %.9g %.9g %d\n", i, l->sig.name, t, lo, t + se, l->trace < 0);
    }
    if ((st = close_out(&o)))
        return st;
    if ((st = open_in(&o, dir, "traces.gp")))
        return st;
    FILE *fp = o.fp;
    preamble(fp, "traces", "Hessian trace per layer (Hutchinson, mean +/- 1 standard error)");
    fprintf(fp,
            "set xlabel 'layer (model order)'\n"
            "set ylabel '|Tr(H_i)| (loss units per weight^2, log scale)'\n"
            "set logscale y\n"
            "set xtics rotate by -40 scale 0 noenhanced\n"
            "set bmargin 9\nset offsets 0.5, 0.5, 0, 0\n"
            "plot 'traces.dat' using 1:($6 == 0 ? $3 : 1/0):4:5:xtic(2) with yerrorbars pt 7 ps 1.5 "
            "lc rgb '#1f77b4' title 'Tr(H_i) > 0', \\\n"
            "     '' using 1:($6 == 1 ? $3 : 1/0):4:5 with yerrorbars pt 9 ps 1.5 lc rgb '#d62728' "
            "title '|Tr(H_i)|, trace < 0'\n");
    finish(fp, "traces");
    if ((st = close_out(&o)))
        return st;
    return bp_gnuplot_run(dir, "traces.gp");
}

static bp_status density_plot(const bp_sens *s, const char *dir)
{
    bp_out o = {0};
    bp_status st;
    if ((st = open_in(&o, dir, "density.dat")))
        return st;
    fprintf(o.fp, "# eigenvalue density\n");
    double floor_ = 0;
    for (int i = 0; i < s->ndensity; i++)
        floor_ = fmax(floor_, s->density_values[i]);
    floor_ *= 1e-8; /* below this the log axis shows only the Gaussian tails */
    /* Values under the floor are drawn at it, so the curve stays connected. */
    for (int i = 0; i < s->ndensity; i++)
        fprintf(o.fp, "%.9g %.9g\n", s->density_grid[i],
                s->density_values[i] > floor_ ? s->density_values[i] : floor_);
    if ((st = close_out(&o)))
        return st;
    if ((st = open_in(&o, dir, "density.gp")))
        return st;
    FILE *fp = o.fp;
    preamble(fp, "density", "Eigenvalue density of the loss Hessian (stochastic Lanczos quadrature)");
    fprintf(fp,
            "set xlabel 'eigenvalue of the Hessian (loss units per weight^2)'\n"
            "set ylabel 'density (per eigenvalue unit, log scale)'\n"
            "set logscale y\n"
            "set format y '%%.0e'\n"
            "set yrange [%.9g:*]\n"
            "plot 'density.dat' using 1:2 with lines lw 2 lc rgb '#1f77b4' title 'SLQ density (Gaussian-broadened)'\n",
            floor_ > 0 ? floor_ : 1e-300);
    finish(fp, "density");
    if ((st = close_out(&o)))
        return st;
    return bp_gnuplot_run(dir, "density.gp");
}

static bp_status latency_plot(const bp_sens *s, const bp_profile *prof, const char *dir)
{
    /* Candidates: the weight bits of the first layer, a = max(w, 4). */
    const bp_sens_layer *l0 = &s->layers[0];
    int nc = l0->ncand;
    bp_out o = {0};
    bp_status st;
    if ((st = open_in(&o, dir, "latency_layers.dat")))
        return st;
    fprintf(o.fp, "# layer");
    for (int c = 0; c < nc; c++)
        fprintf(o.fp, " w%da%d_ms", l0->cand[c].bits, bp_default_abits(l0->cand[c].bits));
    fprintf(o.fp, "\n");
    for (int i = 0; i < s->nlayers; i++) {
        fprintf(o.fp, "\"%s\"", s->layers[i].sig.name);
        for (int c = 0; c < nc; c++) {
            double ms = NAN;
            int w = l0->cand[c].bits;
            if (bp_profile_latency(prof, &s->layers[i].sig, w, bp_default_abits(w), &ms, NULL))
                ms = NAN;
            num(o.fp, ms);
        }
        fprintf(o.fp, "\n");
    }
    bp_clear_error();
    if ((st = close_out(&o)))
        return st;
    if ((st = open_in(&o, dir, "latency_layers.gp")))
        return st;
    FILE *fp = o.fp;
    char title[300];
    snprintf(title, sizeof title, "Per-layer latency by bit-width on %.120s (batch %d)",
             prof->device ? prof->device : "device", prof->batch);
    preamble(fp, "latency_layers", title);
    fprintf(fp,
            "set xlabel 'layer (model order)'\n"
            "set ylabel 'latency (ms per batch)'\n"
            "set datafile missing 'NaN'\n"
            "set style data histograms\nset style histogram clustered gap 1\n"
            "set style fill solid 0.8 border -1\n"
            "set xtics rotate by -40 scale 0 noenhanced\n"
            "set bmargin 9\n"
            "plot ");
    for (int c = 0; c < nc; c++) {
        int w = l0->cand[c].bits;
        fprintf(fp, "%s'latency_layers.dat' using %d%s title 'W%dA%d'", c ? ", \\\n     " : "", c + 2,
                c ? "" : ":xtic(1)", w, bp_default_abits(w));
    }
    fprintf(fp, "\n");
    finish(fp, "latency_layers");
    if ((st = close_out(&o)))
        return st;
    return bp_gnuplot_run(dir, "latency_layers.gp");
}

static int has_latency(const bp_plot_inputs *in)
{
    for (int i = 0; i < in->nrows; i++)
        if (strcmp(in->rows[i].kind, "float") && isfinite(in->rows[i].latency_ms))
            return 1;
    return 0;
}

bp_status bp_plots_make(const bp_plot_inputs *in, const char *outdir, int *made, char *notes, size_t n)
{
    int count = 0;
    if (notes && n)
        notes[0] = 0;
    bp_status st = bp_mkdir_p(outdir);
    if (st)
        return st;
    if (in->nrows || in->nfront) {
        for (int a = 0; a < 3; a++) {
            if (a == 2 && !has_latency(in)) {
                note(notes, n, "frontier_latency left out: no latency profile");
                continue;
            }
            if ((st = frontier_plot(in, outdir, a)))
                return st;
            count++;
        }
    } else {
        note(notes, n, "frontier plots left out: no evaluation or frontier file");
    }
    if (in->plan) {
        if ((st = plan_bits_plot(in->plan, outdir)))
            return st;
        count++;
    } else {
        note(notes, n, "plan_bits left out: no plan");
    }
    if (in->sens && in->sens->nlayers) {
        if ((st = traces_plot(in->sens, outdir)))
            return st;
        count++;
        if (in->sens->ndensity > 1) {
            if ((st = density_plot(in->sens, outdir)))
                return st;
            count++;
        } else {
            note(notes, n, "density left out: the sensitivity file has no eigenvalue density");
        }
        if (in->profile) {
            if ((st = latency_plot(in->sens, in->profile, outdir)))
                return st;
            count++;
        } else {
            note(notes, n, "latency_layers left out: no latency profile");
        }
    } else {
        note(notes, n, "traces, density and latency_layers left out: no sensitivity file");
    }
    if (made)
        *made = count;
    return BP_OK;
}
