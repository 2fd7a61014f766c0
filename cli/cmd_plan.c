/* `bitplan plan [MODEL.onnx] [budgets] [options] -o OUTDIR`: the main job
 * (pipeline/pipeline.h, docs/PIPELINE.md). Progress on stderr unless --quiet;
 * --json prints a summary object on stdout. */
#include "cli/cli.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pipeline/pipeline.h"

static void usage(FILE *fp)
{
    bp_pipe_opts d = bp_pipe_opts_default();
    fprintf(fp,
            "usage: bitplan plan [MODEL.onnx] [budgets] [options] -o OUTDIR\n"
            "  Sensitivity -> bit-width search (plan + Pareto sweep) -> integer-only evaluation\n"
            "  -> plan.json, frontier.csv/.json, sensitivity.json, evaluation.json, report.md, plots/.\n"
            "  Without MODEL: the embedded default (models/resnet8.onnx, else models/lenet5.onnx;\n"
            "  $BP_MODELS_DIR overrides) on Fashion-MNIST.\n"
            "budgets (default --size-frac 0.5; fractions r: lowest + r*(highest - lowest)):\n"
            "  --size S | --bops B | --latency T | --size-frac R | --bops-frac R | --latency-frac R\n"
            "options:\n"
            "  --profile P        latency profile (default: profiles/host-<model>.json if it exists)\n"
            "  --no-profile       no latency, even when a host profile exists\n"
            "  --samples N        sensitivity calibration samples (default %d)\n"
            "  --probes N         at most N Hutchinson probes (default %d; at least %d)\n"
            "  --no-density       skip the eigenvalue density (saves %d Hessian-vector products)\n"
            "  --calib N          quantizer calibration samples (default %d)\n"
            "  --eval-limit N     test samples per accuracy (default %d; 0 = all 10000)\n"
            "  --sweep N          budgets in the Pareto sweep (default %d)\n"
            "  --sweep-kind K     size, bops or latency (default: the budget's kind)\n"
            "  --eval-points N    frontier plans to evaluate (default %d)\n"
            "  --bits LIST        candidate weight bits (default 2,3,4,5,6,8)\n"
            "  --pin-first-last   first and last layer at w8a8\n"
            "  --data SPEC        evaluation data (default %s)\n"
            "  --calib-data SPEC  calibration data (default %s)\n"
            "  --no-plots         skip gnuplot\n"
            "  --json             summary JSON on stdout\n"
            "  --quiet            no progress on stderr\n"
            "  -o OUTDIR          output directory (required); reruns reuse unchanged stages\n"
            "exit: 0 ok, 1 failure, 2 usage, 3 infeasible budget (nothing is written on failure)\n",
            d.sens.samples, d.sens.trace.max_probes, d.sens.trace.min_probes, d.sens.slq.steps * d.sens.slq.runs,
            d.calib, d.eval_limit, d.sweep_points, d.eval_points, d.eval_data, d.calib_data);
}

static int usage_err(const char *fmt, const char *arg)
{
    fprintf(stderr, "bitplan plan: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    usage(stderr);
    return BP_EXIT_USAGE;
}

static int int_arg(const char *s, int lo, int *out)
{
    char *e;
    errno = 0;
    long v = strtol(s, &e, 10);
    if (errno || *e || e == s || v < lo || v > 1000000000)
        return -1;
    *out = (int)v;
    return 0;
}

static void note(void *ctx, const char *msg)
{
    (void)ctx;
    if (!bp_cli_quiet)
        fprintf(stderr, "bitplan plan: %s\n", msg);
}

static double wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* Sensitivity progress: at most one line every 2 s. */
static void progress(void *ctx, const bp_progress *p)
{
    static double last;
    (void)ctx;
    if (bp_cli_quiet)
        return;
    double t = wall();
    if (t - last < 2)
        return;
    last = t;
    if (!strcmp(p->stage, "trace"))
        fprintf(stderr, "  sensitivity: trace probe %d, change %.2e\n", p->step, p->change);
    else if (!strcmp(p->stage, "density"))
        fprintf(stderr, "  sensitivity: density Lanczos step %d\n", p->step);
    else
        fprintf(stderr, "  sensitivity: %s step %d\n", p->stage, p->step);
}

static int parse_bits(const char *s, bp_sens_opts *o)
{
    int n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        long b = strtol(p, &end, 10);
        if (end == p || b < 2 || b > 8 || n >= BP_SENS_MAX_CAND)
            return -1;
        o->bits[n++] = (int)b;
        p = end;
        if (*p == ',')
            p++;
        else if (*p)
            return -1;
    }
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && o->bits[j] < o->bits[j - 1]; j--) {
            int t = o->bits[j];
            o->bits[j] = o->bits[j - 1];
            o->bits[j - 1] = t;
        }
    for (int i = 1; i < n; i++)
        if (o->bits[i] == o->bits[i - 1])
            return -1;
    o->nbits = n;
    return n ? 0 : -1;
}

int cmd_plan(int argc, char **argv)
{
    bp_pipe_opts o = bp_pipe_opts_default();
    const char *model = NULL, *profile = NULL;
    int no_profile = 0, as_json = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return BP_EXIT_OK;
        } else if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) {
            bp_cli_quiet = 1;
            continue;
        } else if (!strcmp(a, "--json")) {
            as_json = 1;
            continue;
        } else if (!strcmp(a, "--no-profile")) {
            no_profile = 1;
            continue;
        } else if (!strcmp(a, "--no-density")) {
            o.sens.density = 0;
            continue;
        } else if (!strcmp(a, "--no-plots")) {
            o.plots = 0;
            continue;
        } else if (!strcmp(a, "--pin-first-last")) {
            o.ilp.pin_first_last = 1;
            continue;
        } else if (a[0] != '-') {
            if (model)
                return usage_err("unexpected argument '%s'", a);
            model = a;
            continue;
        }
        if (!v)
            return usage_err("option %s needs a value", a);
        i++;
        int is_budget = bp_budget_option(a, v, o.budget);
        if (is_budget < 0) {
            fprintf(stderr, "bitplan plan: %s\n", bp_last_error());
            return BP_EXIT_USAGE;
        }
        if (is_budget) {
            /* parsed into o.budget[] */
        } else if (!strcmp(a, "-o")) {
            o.outdir = v;
        } else if (!strcmp(a, "--profile")) {
            profile = v;
        } else if (!strcmp(a, "--samples")) {
            if (int_arg(v, 1, &o.sens.samples))
                return usage_err("--samples '%s': an integer >= 1", v);
        } else if (!strcmp(a, "--probes")) {
            if (int_arg(v, 1, &o.sens.trace.max_probes))
                return usage_err("--probes '%s': an integer >= 1", v);
            if (o.sens.trace.min_probes > o.sens.trace.max_probes)
                o.sens.trace.min_probes = o.sens.trace.max_probes;
        } else if (!strcmp(a, "--calib")) {
            if (int_arg(v, 1, &o.calib))
                return usage_err("--calib '%s': an integer >= 1", v);
        } else if (!strcmp(a, "--eval-limit")) {
            if (int_arg(v, 0, &o.eval_limit))
                return usage_err("--eval-limit '%s': an integer >= 0", v);
        } else if (!strcmp(a, "--sweep")) {
            if (int_arg(v, 2, &o.sweep_points) || o.sweep_points > 10000)
                return usage_err("--sweep '%s': an integer in 2..10000", v);
        } else if (!strcmp(a, "--sweep-kind")) {
            o.sweep_kind = !strcmp(v, "size") ? BP_CON_SIZE : !strcmp(v, "bops") ? BP_CON_BOPS
                           : !strcmp(v, "latency") ? BP_CON_LATENCY : -2;
            if (o.sweep_kind == -2)
                return usage_err("--sweep-kind '%s': size, bops or latency", v);
        } else if (!strcmp(a, "--eval-points")) {
            if (int_arg(v, 2, &o.eval_points))
                return usage_err("--eval-points '%s': an integer >= 2", v);
        } else if (!strcmp(a, "--bits")) {
            if (parse_bits(v, &o.sens))
                return usage_err("--bits '%s': distinct bit-widths in 2..8, e.g. 2,4,8", v);
        } else if (!strcmp(a, "--data")) {
            o.eval_data = v;
        } else if (!strcmp(a, "--calib-data")) {
            o.calib_data = v;
        } else {
            return usage_err("unknown option '%s'", a);
        }
    }
    if (!o.outdir)
        return usage_err("%s", "missing -o OUTDIR");
    char model_buf[4096], prof_buf[4096];
    if (!model) {
        bp_status st = bp_default_model(NULL, model_buf, sizeof model_buf);
        if (st)
            return bp_cli_fail(st);
        model = model_buf;
        if (!bp_cli_quiet)
            fprintf(stderr, "bitplan plan: no model given: using the embedded default %s on Fashion-MNIST\n", model);
    }
    o.model = model;
    if (profile && !no_profile) {
        o.profile = profile;
    } else if (!no_profile && !bp_default_profile(NULL, model, prof_buf, sizeof prof_buf)) {
        o.profile = prof_buf;
        if (!bp_cli_quiet)
            fprintf(stderr, "bitplan plan: latency profile %s\n", prof_buf);
    } else if (!bp_cli_quiet) {
        fprintf(stderr, "bitplan plan: no latency profile for this model: latency is omitted "
                        "(--profile P, or `bitplan latency measure`)\n");
    }
    o.note = note;
    o.progress = progress;
    bp_pipe_result r;
    bp_status st = bp_pipeline_run(&o, &r);
    if (st)
        return bp_cli_fail(st);
    if (as_json) {
        json_t *rows = json_array();
        for (int i = 0; i < r.nrows; i++) {
            const bp_pipe_row *w = &r.rows[i];
            json_t *x = json_pack("{s:s, s:s, s:f}", "name", w->name, "kind", w->kind, "accuracy", w->accuracy);
            json_object_set_new(x, "size_bytes", isfinite(w->size_bytes) ? json_real(w->size_bytes) : json_null());
            json_object_set_new(x, "bops", isfinite(w->bops) ? json_real(w->bops) : json_null());
            json_object_set_new(x, "latency_ms", isfinite(w->latency_ms) ? json_real(w->latency_ms) : json_null());
            json_object_set_new(x, "objective", isfinite(w->objective) ? json_real(w->objective) : json_null());
            json_array_append_new(rows, x);
        }
        json_t *out = json_pack("{s:s, s:s, s:s, s:o, s:b, s:i, s:i, s:f, s:f}", "outdir", o.outdir, "model",
                                model, "model_sha256", r.model_sha256, "rows", rows, "sensitivity_reused",
                                r.sens_reused, "eval_samples", r.eval_samples, "frontier_points", r.npoints,
                                "seconds", r.seconds[4], "cpu_seconds", r.cpu[4]);
        char *txt = out ? json_dumps(out, JSON_INDENT(2) | JSON_REAL_PRECISION(8)) : NULL;
        if (txt)
            printf("%s\n", txt);
        free(txt);
        json_decref(out);
    } else if (!bp_cli_quiet) {
        printf("%-16s %9s %12s %14s %12s %10s\n", "configuration", "accuracy", "size KiB", "BOPs/sample",
               "latency ms", "omega");
        for (int i = 0; i < r.nrows; i++) {
            const bp_pipe_row *w = &r.rows[i];
            printf("%-16s %8.2f%% %12.1f %14.4g %12.4g %10.4g\n", w->name, 100 * w->accuracy,
                   w->size_bytes / 1024, w->bops, w->latency_ms, w->objective);
        }
        printf("wrote %s/{report.md, plan.json, frontier.csv, frontier.json, sensitivity.json, "
               "evaluation.json, plots/} in %.1f s (CPU %.1f s)\n", o.outdir, r.seconds[4], r.cpu[4]);
    }
    bp_pipe_result_free(&r);
    return BP_EXIT_OK;
}
