/* report.c — OUTDIR/report.md: the table of float, W8A8, W4A4, the chosen
 * mixed plan and the evaluated frontier plans, then the plan per layer, the
 * sensitivity per layer, the plots and the run's settings and timings. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/fileio.h"
#include "pipeline/pipe_priv.h"

static void size_s(char *b, size_t n, double x)
{
    if (!isfinite(x))
        snprintf(b, n, "–");
    else if (x >= 1048576)
        snprintf(b, n, "%.2f MiB", x / 1048576);
    else
        snprintf(b, n, "%.1f KiB", x / 1024);
}

static void bops_s(char *b, size_t n, double x)
{
    if (!isfinite(x))
        snprintf(b, n, "–");
    else if (x >= 1e9)
        snprintf(b, n, "%.3f G", x / 1e9);
    else
        snprintf(b, n, "%.2f M", x / 1e6);
}

static void ms_s(char *b, size_t n, double x)
{
    if (!isfinite(x))
        snprintf(b, n, "–");
    else
        snprintf(b, n, "%.4f ms", x);
}

static void g_s(char *b, size_t n, double x)
{
    if (!isfinite(x))
        snprintf(b, n, "–");
    else
        snprintf(b, n, "%.4g", x);
}

bp_status bp_pipe_write_report(const char *path, const bp_report_in *in)
{
    bp_out out = {0};
    bp_status st = bp_out_open(&out, path);
    if (st)
        return st;
    FILE *fp = out.fp;
    const bp_pipe_opts *o = in->o;
    const bp_pipe_result *r = in->r;
    size_t weights = 0;
    double macs = 0;
    for (int i = 0; i < in->nlayers; i++)
        weights += in->layers[i].params, macs += (double)in->layers[i].macs;

    fprintf(fp, "# bitplan plan report\n\n");
    fprintf(fp, "- **Model:** `%s` (sha256 `%.16s…`): %d quantizable layers, %zu weights, %.3g M MACs per sample\n",
            o->model, r->model_sha256, in->nlayers, weights, macs / 1e6);
    fprintf(fp, "- **Budget:** %s; Pareto sweep over %s (%d budgets, %d distinct plans)\n", in->budget_text,
            in->sweep_kind, o->sweep_points, r->npoints);
    fprintf(fp, "- **Accuracy:** top-1 on the first %d samples of `%s`; quantized rows run the integer-only "
                "engine (dyadic requantization), calibrated on %d samples of `%s`\n",
            r->eval_samples, o->eval_data, o->calib, o->calib_data);
    if (r->has_latency)
        fprintf(fp, "- **Latency:** from the profile `%s` (ms per batch of the profile)\n", o->profile);
    else
        fprintf(fp, "- **Latency:** no latency profile for this model, so latency is omitted (give one with "
                    "`--profile`, or measure one with `bitplan latency measure`)\n");
    fprintf(fp, "\n## Float, uniform and mixed-precision plans\n\n");
    fprintf(fp, "| configuration | accuracy | Δ vs float | size | BOPs / sample | latency | Ω (Σ Ω_i) |\n");
    fprintf(fp, "|---|---:|---:|---:|---:|---:|---:|\n");
    double facc = r->nrows ? r->rows[0].accuracy : NAN;
    for (int i = 0; i < r->nrows; i++) {
        const bp_pipe_row *w = &r->rows[i];
        char sz[32], bo[32], la[32], om[32], label[96];
        size_s(sz, sizeof sz, w->size_bytes);
        bops_s(bo, sizeof bo, w->bops);
        ms_s(la, sizeof la, w->latency_ms);
        g_s(om, sizeof om, w->objective);
        if (!strcmp(w->kind, "float"))
            snprintf(label, sizeof label, "float (FP32)");
        else if (!strcmp(w->kind, "uniform"))
            snprintf(label, sizeof label, "%s (uniform)", w->name);
        else if (!strcmp(w->kind, "plan"))
            snprintf(label, sizeof label, "**mixed: chosen plan**");
        else
            snprintf(label, sizeof label, "mixed: %s", w->name);
        fprintf(fp, "| %s | %.2f%% | %+.2f | %s | %s | %s | %s |\n", label, 100 * w->accuracy,
                100 * (w->accuracy - facc), sz, bo, la, om);
    }
    fprintf(fp, "\nSize counts weights at their bit-width plus an int32 bias and a scale per output "
                "channel (docs/ILP.md); float counts 4 bytes per weight and bias. BOPs = MACs · b_w · b_a "
                "(float: 32 · 32).\n");

    const bp_plan *pl = in->plan;
    fprintf(fp, "\n## Chosen plan per layer (`plan.json`, solver: %s)\n\n", bp_plan_status_name(pl->status));
    /* Ω_i = Ω_w + Ω_a: both parts are shown so a reader sees what the activation
     * terms (sensitivity --act) contributed; Ω_a is 0 when none were computed. */
    fprintf(fp, "| # | layer | op | weights | w bits | a bits | size | BOPs | latency | Ω_w | Ω_a | Ω_i |\n");
    fprintf(fp, "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (int i = 0; i < pl->nlayers; i++) {
        const bp_plan_layer *l = &pl->layers[i];
        char sz[32], bo[32], la[32], om[32], ow[32], oa[32];
        snprintf(sz, sizeof sz, isfinite(l->size_bytes) ? "%.0f B" : "–", l->size_bytes);
        bops_s(bo, sizeof bo, l->bops);
        ms_s(la, sizeof la, l->latency_ms);
        g_s(om, sizeof om, l->omega);
        g_s(ow, sizeof ow, l->omega_w);
        g_s(oa, sizeof oa, l->omega_a);
        const bp_layer *sig = i < in->nlayers ? &in->layers[i] : NULL;
        fprintf(fp, "| %d | `%s` | %s | %zu | %d | %d | %s | %s | %s%s | %s | %s | %s |\n", i, l->name,
                sig ? bp_op_name(sig->op) : "?", sig ? sig->params : 0, l->wbits, l->abits, sz, bo, la,
                l->lat_fallback ? "*" : "", ow, oa, om);
    }

    const bp_sens *s = in->sens;
    fprintf(fp, "\n## Sensitivity (`sensitivity.json`%s)\n\n",
            r->sens_reused ? ", reused from the previous run: same model, data and settings" : "");
    fprintf(fp, "Hutchinson traces of each layer's Hessian block (mean cross-entropy over %d calibration "
                "samples, %s probes, tolerance %g, at most %d probes). Ω_i(b) = Tr(H_i)/n_i · ‖Q_b(W_i) − W_i‖².\n\n",
            s->settings.samples, s->settings.probe[0] ? s->settings.probe : "joint", s->settings.tolerance,
            s->settings.max_probes);
    fprintf(fp, "| layer | Tr(H_i) | std. error | probes | converged |\n|---|---:|---:|---:|---|\n");
    for (int i = 0; i < s->nlayers; i++) {
        const bp_sens_layer *l = &s->layers[i];
        fprintf(fp, "| `%s` | %.5g | %.3g | %d | %s |\n", l->sig.name, l->trace, l->trace_stderr, l->probes,
                l->converged ? "yes" : "no");
    }

    fprintf(fp, "\n## Plots (`plots/`, PNG and SVG, made with gnuplot)\n\n");
    static const char *plots[] = {"frontier_size", "frontier_bops", "frontier_latency", "plan_bits",
                                  "traces", "density", "latency_layers"};
    char p2[4096];
    const char *slash = strrchr(path, '/');
    for (size_t k = 0; k < sizeof plots / sizeof *plots; k++) {
        /* list the ones made: they sit beside report.md in plots/ */
        snprintf(p2, sizeof p2, "%.*s/plots/%s.png", slash ? (int)(slash - path) : 1, slash ? path : ".",
                 plots[k]);
        FILE *t = fopen(p2, "rb");
        if (!t)
            continue;
        fclose(t);
        fprintf(fp, "![%s](plots/%s.png)\n\n", plots[k], plots[k]);
    }
    if (in->plot_notes && in->plot_notes[0])
        fprintf(fp, "Not drawn: %s.\n\n", in->plot_notes);

    fprintf(fp, "## Run\n\n");
    fprintf(fp, "Wall time and process CPU time (all threads; gnuplot runs in its own processes, not counted). "
                "Wall time depends on what else the machine runs.\n\n");
    fprintf(fp, "| stage | wall s | CPU s |\n|---|---:|---:|\n| sensitivity%s | %.1f | %.1f |\n"
                "| search + sweep | %.2f | %.2f |\n| evaluation (%d configurations) | %.1f | %.1f |\n"
                "| plots and files | %.1f | %.1f |\n| total | %.1f | %.1f |\n",
            r->sens_reused ? " (reused)" : "", r->seconds[0], r->cpu[0], r->seconds[1], r->cpu[1], r->nrows,
            r->seconds[2], r->cpu[2], r->seconds[3], r->cpu[3], r->seconds[4], r->cpu[4]);
    fprintf(fp, "\nFiles: `sensitivity.json` (+ `.csv`), `plan.json` (with the HAWQ-style `bit_config`), "
                "`frontier.csv`, `frontier.json`, `evaluation.json`, `report.md`, `plots/`. "
                "Deploy with `bitplan export %s --plan plan.json --c-header model.h --c-source infer.c`.\n",
            o->model);
    if (ferror(fp)) {
        bp_out_abort(&out);
        return bp_error(BP_ERR_IO, "%s: write failed", path);
    }
    return bp_out_commit(&out);
}
