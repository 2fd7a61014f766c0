/* test_pipeline.c — `bitplan plan` end to end on a small model (LeNet-5 at
 * its initialization, saved to ONNX here) with few samples: every output
 * file exists and parses, the plan meets its budget (recomputed here from
 * the layer table), report.md has the rows, PNGs have the PNG signature,
 * SVGs carry their titles, a rerun reuses the sensitivity stage, and bad
 * inputs fail with nothing written — through the library and the CLI. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/onnx.h"
#include "pipeline/pipeline.h"
#include "train/arch.h"

static char dir[] = "/tmp/bp-pipe-XXXXXX";
static char model[300];

static void setup(void)
{
    cr_assert(mkdtemp(dir));
    bp_graph *g = NULL;
    cr_assert_eq(bp_arch_build("lenet5", 1, 28, 28, 10, 3, &g), BP_OK, "%s", bp_last_error());
    snprintf(model, sizeof model, "%s/lenet5.onnx", dir);
    cr_assert_eq(bp_onnx_save(g, model), BP_OK, "%s", bp_last_error());
    bp_graph_free(g);
}

static void teardown(void)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    (void)!system(cmd);
}

TestSuite(pipeline, .init = setup, .fini = teardown, .timeout = 300);

/* Small settings: a few seconds per run. */
static bp_pipe_opts small(const char *out)
{
    bp_pipe_opts o = bp_pipe_opts_default();
    o.model = model;
    o.outdir = out;
    o.sens.samples = 16;
    o.sens.batch = 16;
    o.sens.trace.min_probes = 2;
    o.sens.trace.max_probes = 3;
    o.sens.slq.steps = 6;
    o.sens.slq.grid = 100;
    o.calib = 32;
    o.eval_limit = 100;
    o.sweep_points = 12;
    o.eval_points = 8;
    return o;
}

static int reused_note;
static void note(void *ctx, const char *msg)
{
    (void)ctx;
    if (strstr(msg, "reusing sensitivity.json"))
        reused_note = 1;
}

static int exists(const char *d, const char *name)
{
    char p[600];
    snprintf(p, sizeof p, "%s/%s", d, name);
    return access(p, F_OK) == 0;
}

static char *slurp(const char *d, const char *name)
{
    char p[600];
    snprintf(p, sizeof p, "%s/%s", d, name);
    char *t = NULL;
    size_t n;
    cr_assert_eq(bp_read_file(p, &t, &n), BP_OK, "%s: %s", p, bp_last_error());
    return t;
}

static void sha_of(const char *d, const char *name, char hex[65])
{
    char p[600];
    unsigned char dg[32];
    snprintf(p, sizeof p, "%s/%s", d, name);
    cr_assert_eq(bp_sha256_file(p, dg), BP_OK);
    bp_sha256_hex(dg, hex);
}

/* Entries of a directory other than . and .. */
static int count_entries(const char *d)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "ls -A '%s' 2>/dev/null | wc -l", d);
    FILE *p = popen(cmd, "r");
    int n = -1;
    cr_assert(p);
    cr_assert_eq(fscanf(p, "%d", &n), 1);
    pclose(p);
    return n;
}

/* Packed weight bytes + int32 bias + scale per channel (docs/ILP.md), here
 * recomputed from the model's layer table rather than taken from the search. */
static double size_at(const bp_layer *L, int nl, const int *wbits)
{
    double s = 0;
    for (int i = 0; i < nl; i++)
        s += ceil((double)L[i].params * wbits[i] / 8.0) + 8.0 * (double)L[i].cout;
    return s;
}

Test(pipeline, end_to_end_outputs_budget_report_plots_and_reuse)
{
    char out[400];
    snprintf(out, sizeof out, "%s/out", dir);
    bp_pipe_opts o = small(out);
    o.note = note;
    bp_pipe_result r;
    cr_assert_eq(bp_pipeline_run(&o, &r), BP_OK, "%s", bp_last_error());
    cr_assert_eq(r.sens_reused, 0);

    /* Every output file exists and parses. */
    static const char *files[] = {"sensitivity.json", "sensitivity.csv", "plan.json", "frontier.csv",
                                  "frontier.json", "evaluation.json", "report.md", ".cache.json"};
    for (size_t k = 0; k < sizeof files / sizeof *files; k++)
        cr_assert(exists(out, files[k]), "%s missing", files[k]);
    char p[600];
    bp_sens s;
    snprintf(p, sizeof p, "%s/sensitivity.json", out);
    cr_assert_eq(bp_sens_read(p, &s), BP_OK, "%s", bp_last_error());
    cr_assert_eq(s.nlayers, 5);
    cr_assert_gt(s.ndensity, 1);
    bp_plan plan;
    snprintf(p, sizeof p, "%s/plan.json", out);
    cr_assert_eq(bp_plan_read(p, &plan), BP_OK, "%s", bp_last_error());
    json_error_t je;
    snprintf(p, sizeof p, "%s/frontier.json", out);
    json_t *fr = json_load_file(p, 0, &je);
    cr_assert(fr, "frontier.json: %s", je.text);
    int npts = (int)json_array_size(json_object_get(fr, "points"));
    cr_assert_eq(npts, r.npoints);
    cr_assert_geq(npts, 8, "only %d distinct frontier plans", npts);
    json_decref(fr);
    char *csv = slurp(out, "frontier.csv");
    cr_assert(!strncmp(csv, "sweep,budget,budget_max,objective,size_bytes", 44), "%.60s", csv);
    int lines = 0;
    for (char *c = csv; *c; c++)
        lines += *c == '\n';
    cr_assert_eq(lines, npts + 1);
    free(csv);
    bp_pipe_result ev;
    snprintf(p, sizeof p, "%s/evaluation.json", out);
    cr_assert_eq(bp_pipe_read_eval(p, &ev), BP_OK, "%s", bp_last_error());
    cr_assert_eq(ev.nrows, r.nrows);
    int nfront = 0;
    for (int i = 0; i < ev.nrows; i++) {
        nfront += !strcmp(ev.rows[i].kind, "frontier");
        cr_assert(ev.rows[i].accuracy >= 0 && ev.rows[i].accuracy <= 1);
        cr_assert_float_eq(ev.rows[i].accuracy, r.rows[i].accuracy, 1e-9);
    }
    cr_assert_geq(nfront, 8, "%d frontier points evaluated", nfront);
    cr_assert_eq(ev.eval_samples, 100);

    /* The plan meets its budget (default: size fraction 0.5 between all-2-bit
     * and all-8-bit), recomputed from the layer table. */
    bp_graph *g = NULL;
    cr_assert_eq(bp_onnx_load(model, &g), BP_OK);
    bp_layer *L;
    int nl;
    cr_assert_eq(bp_graph_layers(g, &L, &nl), BP_OK);
    cr_assert_eq(nl, plan.nlayers);
    int w2[16], w8[16], wp[16];
    for (int i = 0; i < nl; i++) {
        w2[i] = 2, w8[i] = 8;
        cr_assert_str_eq(plan.layers[i].name, L[i].name);
        wp[i] = plan.layers[i].wbits;
        cr_assert_eq(plan.layers[i].abits, wp[i] > 4 ? wp[i] : 4);
    }
    double lo = size_at(L, nl, w2), hi = size_at(L, nl, w8), budget = lo + 0.5 * (hi - lo);
    double got = size_at(L, nl, wp);
    cr_assert_leq(got, budget + 1e-6, "plan size %.0f over budget %.0f", got, budget);
    cr_assert_float_eq(plan.size_bytes, got, 1e-6);
    cr_assert(plan.con[BP_CON_SIZE].active);
    cr_assert_float_eq(plan.con[BP_CON_SIZE].budget, budget, 1e-6);
    /* The plan row of the evaluation is the plan. */
    cr_assert_str_eq(r.rows[3].name, "plan");
    cr_assert_float_eq(r.rows[3].size_bytes, got, 1e-6);
    /* W8A8 and W4A4 sizes likewise. */
    int w4[16];
    for (int i = 0; i < nl; i++)
        w4[i] = 4;
    cr_assert_float_eq(r.rows[1].size_bytes, hi, 1e-6);
    cr_assert_float_eq(r.rows[2].size_bytes, size_at(L, nl, w4), 1e-6);

    /* report.md has the rows. */
    char *rep = slurp(out, "report.md");
    cr_assert(strstr(rep, "| float (FP32) |"), "no float row");
    cr_assert(strstr(rep, "| W8A8 (uniform) |"), "no W8A8 row");
    cr_assert(strstr(rep, "| W4A4 (uniform) |"), "no W4A4 row");
    cr_assert(strstr(rep, "| **mixed: chosen plan** |"), "no plan row");
    cr_assert(strstr(rep, "| mixed: frontier 0 |"), "no frontier row");
    cr_assert(strstr(rep, "latency is omitted"), "no latency note");
    /* the per-layer table splits Ω into its weight and activation parts (issue 10) */
    cr_assert(strstr(rep, "| Ω_w | Ω_a | Ω_i |"), "no Ω_w/Ω_a columns in the per-layer table");
    free(rep);

    /* Plots: PNG signature, SVG text with the title. */
    char pd[500];
    snprintf(pd, sizeof pd, "%s/plots", out);
    static const char *plots[] = {"frontier_size", "frontier_bops", "plan_bits", "traces", "density"};
    static const char *titles[] = {"Pareto frontier vs size", "Pareto frontier vs BOPs", "Bit-widths per layer",
                                   "Hessian trace per layer", "Eigenvalue density"};
    for (int k = 0; k < 5; k++) {
        snprintf(p, sizeof p, "%s/%s.png", pd, plots[k]);
        FILE *f = fopen(p, "rb");
        cr_assert(f, "%s missing", p);
        unsigned char sig[8];
        cr_assert_eq(fread(sig, 1, 8, f), 8);
        fclose(f);
        cr_assert(!memcmp(sig, "\x89PNG\r\n\x1a\n", 8), "%s is not a PNG", p);
        char name[64];
        snprintf(name, sizeof name, "%s.svg", plots[k]);
        char *svg = slurp(pd, name);
        cr_assert(strstr(svg, "<svg") && strstr(svg, "</svg>"), "%s", name);
        cr_assert(strstr(svg, titles[k]), "%s lacks its title", name);
        free(svg);
    }
    cr_assert(!exists(pd, "frontier_latency.png"), "latency plot without a profile");
    /* No staging directory left. */
    cr_assert_eq(count_entries(out), 9, "%d entries in %s", count_entries(out), out);

    /* A rerun with the same inputs reuses the sensitivity stage and the
     * cached evaluations, and gives the same plan. */
    char sha1[65], sha2[65], plan1[65], plan2[65];
    sha_of(out, "sensitivity.json", sha1);
    sha_of(out, "plan.json", plan1);
    /* A killed run's staging directory (its process is gone) is cleaned up. */
    snprintf(p, sizeof p, "%s/.staging-2147480000", out);
    cr_assert_eq(mkdir(p, 0755), 0);
    snprintf(p, sizeof p, "%s/.staging-2147480000/plan.json", out);
    cr_assert_eq(bp_write_file_atomic(p, "{}", 2), BP_OK);
    bp_pipe_result r2;
    reused_note = 0;
    cr_assert_eq(bp_pipeline_run(&o, &r2), BP_OK, "%s", bp_last_error());
    cr_assert_eq(r2.sens_reused, 1);
    cr_assert(reused_note, "no 'reusing sensitivity.json' note");
    for (int i = 0; i < r2.nrows; i++)
        cr_assert(r2.rows[i].cached, "row %s evaluated again", r2.rows[i].name);
    sha_of(out, "sensitivity.json", sha2);
    sha_of(out, "plan.json", plan2);
    cr_assert_str_eq(sha1, sha2);
    cr_assert(!exists(out, ".staging-2147480000"), "stale staging directory left");
    cr_assert_eq(count_entries(out), 9);
    /* same plan (the file differs only in solve_seconds) */
    bp_plan plan_again;
    snprintf(p, sizeof p, "%s/plan.json", out);
    cr_assert_eq(bp_plan_read(p, &plan_again), BP_OK);
    cr_assert_eq(plan_again.nlayers, plan.nlayers);
    for (int i = 0; i < nl; i++)
        cr_assert_eq(plan_again.layers[i].wbits, plan.layers[i].wbits);
    cr_assert_float_eq(plan_again.objective, plan.objective, 1e-12);
    bp_plan_free(&plan_again);
    (void)plan1, (void)plan2;
    /* Different settings: the stage runs again. */
    o.sens.trace.seed = 99;
    bp_pipe_result r3;
    cr_assert_eq(bp_pipeline_run(&o, &r3), BP_OK, "%s", bp_last_error());
    cr_assert_eq(r3.sens_reused, 0);
    /* An edited sensitivity file is not trusted either. */
    snprintf(p, sizeof p, "%s/sensitivity.json", out);
    FILE *f = fopen(p, "a");
    fputs("\n", f);
    fclose(f);
    bp_pipe_result r4;
    cr_assert_eq(bp_pipeline_run(&o, &r4), BP_OK, "%s", bp_last_error());
    cr_assert_eq(r4.sens_reused, 0);

    bp_pipe_result_free(&r);
    bp_pipe_result_free(&r2);
    bp_pipe_result_free(&r3);
    bp_pipe_result_free(&r4);
    bp_pipe_result_free(&ev);
    bp_plan_free(&plan);
    bp_sens_free(&s);
    free(L);
    bp_graph_free(g);
}

Test(pipeline, bad_inputs_fail_with_nothing_written)
{
    char out[400];
    snprintf(out, sizeof out, "%s/bad", dir);
    bp_pipe_opts o = small(out);
    bp_pipe_result r;
    /* missing model */
    char missing[400];
    snprintf(missing, sizeof missing, "%s/nope.onnx", dir);
    o.model = missing;
    cr_assert_neq(bp_pipeline_run(&o, &r), BP_OK);
    cr_assert(strstr(bp_last_error(), "nope.onnx"), "%s", bp_last_error());
    cr_assert(!exists(dir, "bad"), "outdir created for a missing model");
    /* infeasible budget: 100 bytes cannot hold LeNet-5 */
    o.model = model;
    o.budget[BP_CON_SIZE] = (bp_budget_spec){1, 100};
    cr_assert_eq(bp_pipeline_run(&o, &r), BP_ERR_INFEASIBLE);
    cr_assert(!exists(dir, "bad"), "outdir created for an infeasible budget");
    /* bad data spec */
    o.budget[BP_CON_SIZE] = (bp_budget_spec){0, 0};
    o.eval_data = "idx:/nonexistent/a.gz,/nonexistent/b.gz";
    cr_assert_neq(bp_pipeline_run(&o, &r), BP_OK);
    cr_assert(!exists(dir, "bad"));
    /* an existing outdir keeps exactly what it had */
    cr_assert_eq(mkdir(out, 0755), 0);
    o.eval_data = "fashion-mnist:test";
    o.budget[BP_CON_BOPS] = (bp_budget_spec){1, 10};
    cr_assert_eq(bp_pipeline_run(&o, &r), BP_ERR_INFEASIBLE);
    cr_assert_eq(count_entries(out), 0);
}

/* The CLI: exit codes, nothing written on failure, the reuse message. */
static int run(const char *args, const char *err_file)
{
    const char *bin = getenv("BP_BIN") ? getenv("BP_BIN") : "bin/bitplan";
    char cmd[2000];
    snprintf(cmd, sizeof cmd, "%s %s >/dev/null 2>'%s'", bin, args, err_file);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(pipeline, cli_exit_codes_and_reuse_message)
{
    char out[400], err[400], args[1500];
    snprintf(out, sizeof out, "%s/cli", dir);
    snprintf(err, sizeof err, "%s/stderr.txt", dir);
    const char *opts = "--samples 16 --probes 3 --no-density --calib 32 --eval-limit 50 --sweep 6 --eval-points 2";
    snprintf(args, sizeof args, "plan %s/missing.onnx %s -o '%s'", dir, opts, out);
    cr_assert_eq(run(args, err), 1);
    cr_assert(!exists(dir, "cli"));
    snprintf(args, sizeof args, "plan '%s' --size 100B %s -o '%s'", model, opts, out);
    cr_assert_eq(run(args, err), 3);
    cr_assert(!exists(dir, "cli"));
    char *e = slurp(dir, "stderr.txt");
    cr_assert(strstr(e, "size"), "%s", e);
    free(e);
    snprintf(args, sizeof args, "plan '%s' --bogus -o '%s'", model, out);
    cr_assert_eq(run(args, err), 2);
    snprintf(args, sizeof args, "plan '%s' %s -o '%s'", model, opts, out);
    cr_assert_eq(run(args, err), 0);
    cr_assert(exists(out, "report.md"));
    cr_assert_eq(run(args, err), 0);
    e = slurp(dir, "stderr.txt");
    cr_assert(strstr(e, "reusing sensitivity.json"), "%s", e);
    free(e);
    /* --json: one summary object on stdout (reused stages, every row). */
    {
        const char *bin = getenv("BP_BIN") ? getenv("BP_BIN") : "bin/bitplan";
        char cmd[2000], js[500];
        snprintf(js, sizeof js, "%s/summary.json", dir);
        snprintf(cmd, sizeof cmd, "%s plan '%s' %s --json --quiet -o '%s' >'%s' 2>'%s'", bin, model, opts, out, js,
                 err);
        cr_assert_eq(system(cmd), 0);
        json_error_t je;
        json_t *sum = json_load_file(js, 0, &je);
        cr_assert(sum, "summary: %s", je.text);
        cr_assert(json_is_true(json_object_get(sum, "sensitivity_reused")));
        json_t *rows = json_object_get(sum, "rows");
        int fp = (int)json_integer_value(json_object_get(sum, "frontier_points"));
        cr_assert_geq(fp, 1);
        /* float, W8A8, W4A4, plan, then --eval-points 2 frontier points */
        cr_assert_eq((int)json_array_size(rows), 4 + (fp < 2 ? fp : 2));
        cr_assert_str_eq(json_string_value(json_object_get(json_array_get(rows, 3), "name")), "plan");
        json_decref(sum);
        char *quiet = slurp(dir, "stderr.txt");
        cr_assert_str_empty(quiet, "--quiet printed: %s", quiet);
        free(quiet);
    }
    /* bitplan plot remakes the plots from the files. */
    snprintf(args, sizeof args, "plot '%s' -o '%s/replot'", out, dir);
    cr_assert_eq(run(args, err), 0);
    char pd[500];
    snprintf(pd, sizeof pd, "%s/replot", dir);
    cr_assert(exists(pd, "plan_bits.png") && exists(pd, "frontier_size.svg") && exists(pd, "traces.png"));
    /* and export writes a header and source that compile */
    snprintf(args, sizeof args, "export '%s' --plan '%s/plan.json' --calib 32 --c-header '%s/m.h' --c-source '%s/m.c' "
                                "--bit-config '%s/bits.json'",
             model, out, dir, dir, dir);
    cr_assert_eq(run(args, err), 0);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "cc -std=c11 -O1 -Wall -Werror -o '%s/m' '%s/m.c'", dir, dir);
    cr_assert_eq(system(cmd), 0);
    char *bc = slurp(dir, "bits.json");
    cr_assert(strstr(bc, "\"bit_config\""), "%s", bc);
    free(bc);
}

Test(pipeline, default_model_and_profile_lookup)
{
    char buf[4096];
    setenv("BP_MODELS_DIR", dir, 1);
    cr_assert_eq(bp_default_model("/nonexistent/bin/bitplan", buf, sizeof buf), BP_OK, "%s", bp_last_error());
    cr_assert_str_eq(buf, model); /* lenet5.onnx in $BP_MODELS_DIR; no resnet8.onnx there */
    char empty[400];
    snprintf(empty, sizeof empty, "%s/empty", dir);
    cr_assert_eq(mkdir(empty, 0755), 0);
    setenv("BP_MODELS_DIR", empty, 1);
    char cwd[4096];
    cr_assert(getcwd(cwd, sizeof cwd));
    cr_assert_eq(chdir(empty), 0); /* no ./models either */
    bp_status st = bp_default_model("/nonexistent/bin/bitplan", buf, sizeof buf);
    cr_assert_eq(chdir(cwd), 0);
    unsetenv("BP_MODELS_DIR");
    cr_assert_eq(st, BP_ERR_IO);
    cr_assert(strstr(bp_last_error(), "resnet8.onnx"), "%s", bp_last_error());
    /* profiles/host-<stem>.json (from the empty directory: no ./profiles) */
    setenv("BP_PROFILES_DIR", dir, 1);
    cr_assert_eq(chdir(empty), 0);
    int none = bp_default_profile("/nonexistent/bin/bitplan", "/x/lenet5.onnx", buf, sizeof buf);
    char p[500];
    snprintf(p, sizeof p, "%s/host-lenet5.json", dir);
    cr_assert_eq(bp_write_file_atomic(p, "{}", 2), BP_OK);
    int found = bp_default_profile("/nonexistent/bin/bitplan", "/x/lenet5.onnx", buf, sizeof buf);
    cr_assert_eq(chdir(cwd), 0);
    unsetenv("BP_PROFILES_DIR");
    cr_assert_eq(none, -1);
    cr_assert_eq(found, 0);
    cr_assert_str_eq(buf, p);
}
