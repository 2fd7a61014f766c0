/* test_plots.c — gnuplot driving: every plot from hand-made inputs (PNG
 * signature, SVG text with the title, axis labels and legend entries, data
 * files holding the numbers given), plots left out with reasons, gnuplot
 * failures reported with gnuplot's message, and bp_plots_from_dir. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/fileio.h"
#include "plots/plots.h"

static char dir[] = "/tmp/bp-plots-XXXXXX";

static void setup(void) { cr_assert(mkdtemp(dir)); }
static void teardown(void)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    (void)!system(cmd);
}

TestSuite(plots, .init = setup, .fini = teardown, .timeout = 120);

static char *slurp(const char *d, const char *name)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", d, name);
    char *t = NULL;
    size_t n;
    cr_assert_eq(bp_read_file(p, &t, &n), BP_OK, "%s: %s", p, bp_last_error());
    return t;
}

static void check_png(const char *d, const char *name)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s.png", d, name);
    FILE *f = fopen(p, "rb");
    cr_assert(f, "%s missing", p);
    unsigned char sig[8];
    cr_assert_eq(fread(sig, 1, 8, f), 8);
    fclose(f);
    static const unsigned char want[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    cr_assert(!memcmp(sig, want, 8), "%s: not a PNG", p);
}

/* The SVG parses as XML-ish text and carries the given strings. */
static void check_svg(const char *d, const char *name, const char *const *want, int n)
{
    char f[128];
    snprintf(f, sizeof f, "%s.svg", name);
    char *t = slurp(d, f);
    cr_assert(strstr(t, "<svg"), "%s: no <svg", f);
    cr_assert(strstr(t, "</svg>"), "%s: not closed", f);
    for (int i = 0; i < n; i++)
        cr_assert(strstr(t, want[i]), "%s lacks '%s'", f, want[i]);
    free(t);
}

/* Three layers with traces (one negative), a density, a plan, rows and a
 * frontier, and a profile with an exact entry per layer and candidate. */
typedef struct {
    bp_sens s;
    bp_plan plan;
    bp_pipe_row rows[5];
    bp_plot_front front[4];
    bp_profile *prof;
} fixture;

static void make_fixture(fixture *f, int with_latency)
{
    memset(f, 0, sizeof *f);
    cr_assert_eq(bp_sens_init(&f->s, 3), BP_OK);
    static const char *names[] = {"conv1", "layer1.conv", "fc"};
    static const double tr[] = {12.5, -0.75, 3.25}, se[] = {1.5, 0.5, 0.25};
    for (int i = 0; i < 3; i++) {
        bp_sens_layer *l = &f->s.layers[i];
        snprintf(l->sig.name, sizeof l->sig.name, "%s", names[i]);
        l->sig.op = i == 2 ? BP_OP_GEMM : BP_OP_CONV;
        l->sig.cin = 4 * (i + 1), l->sig.cout = 8, l->sig.kh = l->sig.kw = i == 2 ? 1 : 3;
        l->sig.stride = l->sig.group = 1, l->sig.in_h = l->sig.in_w = i == 2 ? 1 : 8;
        l->sig.out_h = l->sig.out_w = i == 2 ? 1 : 8;
        l->sig.params = (size_t)(l->sig.cin * 8 * l->sig.kh * l->sig.kw);
        l->sig.macs = (int64_t)l->sig.params * l->sig.out_h * l->sig.out_w;
        l->trace = tr[i], l->trace_stderr = se[i], l->probes = 10;
        l->ncand = 2;
        l->cand[0] = (bp_sens_cand){4, 1, 0.1};
        l->cand[1] = (bp_sens_cand){8, 0.01, 0.001};
    }
    f->s.ndensity = 50;
    f->s.density_grid = malloc(sizeof(double) * 50);
    f->s.density_values = malloc(sizeof(double) * 50);
    for (int i = 0; i < 50; i++) {
        f->s.density_grid[i] = i - 10;
        f->s.density_values[i] = exp(-0.5 * (i - 10) * (i - 10) / 4.0) + 1e-12;
    }
    cr_assert_eq(bp_plan_init(&f->plan, 3), BP_OK);
    for (int i = 0; i < 3; i++) {
        snprintf(f->plan.layers[i].name, sizeof f->plan.layers[i].name, "%s", names[i]);
        f->plan.layers[i].wbits = i == 1 ? 4 : 8;
        f->plan.layers[i].abits = i == 1 ? 4 : 8;
    }
    f->plan.size_bytes = 2048;
    f->plan.bops = 3e6;
    static const char *rn[] = {"float", "W8A8", "W4A4", "plan", "frontier 0"};
    static const char *rk[] = {"float", "uniform", "uniform", "plan", "frontier"};
    for (int i = 0; i < 5; i++) {
        bp_pipe_row *r = &f->rows[i];
        snprintf(r->name, sizeof r->name, "%s", rn[i]);
        snprintf(r->kind, sizeof r->kind, "%s", rk[i]);
        r->index = i == 4 ? 0 : -1;
        r->accuracy = 0.9 - 0.05 * i;
        r->size_bytes = 4096.0 / (i + 1);
        r->bops = 1e7 / (i + 1);
        r->latency_ms = with_latency ? 0.5 / (i + 1) : NAN;
        r->objective = 0.001 * (i + 1);
        r->budget = NAN;
    }
    for (int j = 0; j < 4; j++)
        f->front[j] = (bp_plot_front){1000.0 * (j + 1), 0.5 / (j + 1), 1000.0 * (j + 1), 2e6 * (j + 1),
                                      with_latency ? 0.1 * (j + 1) : NAN};
    if (with_latency) {
        f->prof = bp_profile_new("test device", 1);
        cr_assert(f->prof);
        for (int i = 0; i < 3; i++)
            for (int b = 4; b <= 8; b += 4) {
                bp_profile_entry e;
                memset(&e, 0, sizeof e);
                e.sig = bp_lat_sig_of_layer(&f->s.layers[i].sig, 1);
                e.b_w = e.b_a = b;
                e.macs = f->s.layers[i].sig.macs;
                e.latency_ms = 0.125 * (i + 1) * b; /* distinct, recognisable numbers */
                e.source = BP_LAT_MEASURED;
                cr_assert_eq(bp_profile_add(f->prof, &e), BP_OK, "%s", bp_last_error());
            }
    }
}

static void free_fixture(fixture *f)
{
    bp_sens_free(&f->s);
    bp_plan_free(&f->plan);
    bp_profile_free(f->prof);
}

Test(plots, every_plot_with_title_labels_and_legend)
{
    fixture f;
    make_fixture(&f, 1);
    bp_plot_inputs in = {&f.s, &f.plan, f.rows, 5, f.front, 4, f.prof};
    char out[300], notes[512];
    snprintf(out, sizeof out, "%s/plots", dir);
    int made = 0;
    cr_assert_eq(bp_plots_make(&in, out, &made, notes, sizeof notes), BP_OK, "%s", bp_last_error());
    cr_assert_eq(made, 7, "made %d, notes: %s", made, notes);
    cr_assert_str_empty(notes);
    static const char *names[] = {"frontier_size", "frontier_bops", "frontier_latency", "plan_bits",
                                  "traces", "density", "latency_layers"};
    for (int k = 0; k < 7; k++)
        check_png(out, names[k]);
    const char *fs[] = {"Pareto frontier vs size", "(KiB)", "accuracy", "W8A8 uniform", "W4A4 uniform",
                        "chosen plan", "float accuracy"};
    check_svg(out, "frontier_size", fs, 7);
    const char *fb[] = {"vs BOPs", "(GBOPs)"};
    check_svg(out, "frontier_bops", fb, 2);
    const char *fl[] = {"vs latency", "(ms per batch)"};
    check_svg(out, "frontier_latency", fl, 2);
    const char *pb[] = {"Bit-widths per layer", "bit-width (bits)", "weight bits", "activation bits",
                        "layer1.conv"};
    check_svg(out, "plan_bits", pb, 5);
    const char *tr[] = {"Hessian trace per layer", "log scale", "trace &lt; 0", "conv1"};
    check_svg(out, "traces", tr, 4);
    const char *de[] = {"Eigenvalue density", "eigenvalue of the Hessian", "SLQ density"};
    check_svg(out, "density", de, 3);
    const char *la[] = {"latency by bit-width on test device", "latency (ms per batch)", "W4A4", "W8A8"};
    check_svg(out, "latency_layers", la, 4);

    /* The data files hold the numbers given. */
    char *t = slurp(out, "traces.dat");
    cr_assert(strstr(t, "0 \"conv1\" 12.5 11 14 0"), "%s", t);      /* 12.5 ± 1.5 */
    cr_assert(strstr(t, "1 \"layer1.conv\" 0.75 0.25 1.25 1"), "%s", t); /* |−0.75| ± 0.5, negative */
    free(t);
    t = slurp(out, "plan_bits.dat");
    cr_assert(strstr(t, "\"layer1.conv\" 4 4"), "%s", t);
    free(t);
    t = slurp(out, "latency_layers.dat");
    cr_assert(strstr(t, "\"fc\" 1.5 3"), "%s", t); /* 0.125·3·4, 0.125·3·8 */
    free(t);
    t = slurp(out, "frontier_size.dat");
    cr_assert(strstr(t, " 2 85 0.002"), "%s", t); /* W8A8: 4096/2 B = 2 KiB, 85 %, Ω 0.002 */
    free(t);
    /* Nothing of gnuplot's log is left on success. */
    char log[400];
    snprintf(log, sizeof log, "%s/gnuplot.log", out);
    cr_assert_neq(access(log, F_OK), 0);
    free_fixture(&f);
}

Test(plots, left_out_without_latency_density_or_plan)
{
    fixture f;
    make_fixture(&f, 0);
    f.s.ndensity = 0;
    bp_plot_inputs in = {&f.s, NULL, f.rows, 5, f.front, 4, NULL};
    char out[300], notes[512];
    snprintf(out, sizeof out, "%s/p2", dir);
    int made = -1;
    cr_assert_eq(bp_plots_make(&in, out, &made, notes, sizeof notes), BP_OK, "%s", bp_last_error());
    cr_assert_eq(made, 3, "%d: %s", made, notes); /* frontier_size, frontier_bops, traces */
    cr_assert(strstr(notes, "frontier_latency left out: no latency profile"), "%s", notes);
    cr_assert(strstr(notes, "plan_bits left out"), "%s", notes);
    cr_assert(strstr(notes, "density left out"), "%s", notes);
    cr_assert(strstr(notes, "latency_layers left out"), "%s", notes);
    char p[400];
    snprintf(p, sizeof p, "%s/frontier_latency.png", out);
    cr_assert_neq(access(p, F_OK), 0);
    check_png(out, "traces");
    free_fixture(&f);
}

Test(plots, gnuplot_error_is_reported)
{
    char p[300];
    snprintf(p, sizeof p, "%s/bad.gp", dir);
    const char *script = "set terminal pngcairo\nset output 'bad.png'\nplot 'no-such-file.dat' using 1:2\n";
    cr_assert_eq(bp_write_file_atomic(p, script, strlen(script)), BP_OK);
    cr_assert_eq(bp_gnuplot_run(dir, "bad.gp"), BP_ERR_IO);
    cr_assert(strstr(bp_last_error(), "gnuplot failed"), "%s", bp_last_error());
    cr_assert(strstr(bp_last_error(), "bad.gp\" line 3"), "%s", bp_last_error()); /* gnuplot's own words */
}

Test(plots, missing_gnuplot_says_how_to_install)
{
    char p[300];
    snprintf(p, sizeof p, "%s/ok.gp", dir);
    cr_assert_eq(bp_write_file_atomic(p, "print 1\n", 8), BP_OK);
    setenv("BP_GNUPLOT", "/nonexistent/gnuplot", 1);
    bp_status st = bp_gnuplot_run(dir, "ok.gp");
    unsetenv("BP_GNUPLOT");
    cr_assert_eq(st, BP_ERR_IO);
    cr_assert(strstr(bp_last_error(), "gnuplot-nox"), "%s", bp_last_error());
    cr_assert_eq(bp_gnuplot_run(dir, "ok.gp"), BP_OK, "%s", bp_last_error());
}

Test(plots, from_dir_needs_some_file)
{
    int made = -1;
    char notes[256];
    cr_assert_eq(bp_plots_from_dir(dir, dir, &made, notes, sizeof notes), BP_ERR_IO);
    cr_assert(strstr(bp_last_error(), "sensitivity.json"), "%s", bp_last_error());
}

Test(plots, from_dir_remakes_from_files)
{
    fixture f;
    make_fixture(&f, 0);
    char p[400];
    snprintf(p, sizeof p, "%s/sensitivity.json", dir);
    cr_assert_eq(bp_sens_write(p, &f.s), BP_OK, "%s", bp_last_error());
    bp_pipe_result r = {0};
    r.rows = f.rows;
    r.nrows = 5;
    r.eval_samples = 100;
    snprintf(p, sizeof p, "%s/evaluation.json", dir);
    cr_assert_eq(bp_pipe_write_eval(p, &r, "m.onnx", "fashion-mnist:test", 64, NULL, "size"), BP_OK);
    /* The evaluation file reads back as written. */
    bp_pipe_result back;
    cr_assert_eq(bp_pipe_read_eval(p, &back), BP_OK, "%s", bp_last_error());
    cr_assert_eq(back.nrows, 5);
    cr_assert_str_eq(back.rows[2].name, "W4A4");
    cr_assert_float_eq(back.rows[2].accuracy, 0.8, 1e-12);
    cr_assert(isnan(back.rows[1].latency_ms));
    bp_pipe_result_free(&back);
    int made = 0;
    char notes[512];
    char out[400];
    snprintf(out, sizeof out, "%s/again", dir);
    cr_assert_eq(bp_plots_from_dir(dir, out, &made, notes, sizeof notes), BP_OK, "%s", bp_last_error());
    /* frontier_size, frontier_bops (rows only), traces, density */
    cr_assert_eq(made, 4, "%d: %s", made, notes);
    check_png(out, "density");
    check_png(out, "frontier_size");
    /* A broken evaluation file is an error naming it. */
    cr_assert_eq(bp_write_file_atomic(p, "{\"format\": \"bitplan-evaluation\", \"version\": 1}", 46), BP_OK);
    cr_assert_eq(bp_plots_from_dir(dir, out, &made, notes, sizeof notes), BP_ERR_FORMAT);
    cr_assert(strstr(bp_last_error(), "evaluation.json"), "%s", bp_last_error());
    free_fixture(&f);
}

Test(plots, from_files_one_by_one)
{
    fixture f;
    make_fixture(&f, 0);
    char sp[400], out[400];
    snprintf(sp, sizeof sp, "%s/s.json", dir);
    snprintf(out, sizeof out, "%s/ff", dir);
    cr_assert_eq(bp_sens_write(sp, &f.s), BP_OK, "%s", bp_last_error());
    bp_plot_files files = {sp, NULL, NULL, NULL, NULL};
    int made = 0;
    char notes[512];
    cr_assert_eq(bp_plots_from_files(&files, out, &made, notes, sizeof notes), BP_OK, "%s", bp_last_error());
    cr_assert_eq(made, 2, "%d: %s", made, notes); /* traces, density */
    check_png(out, "traces");
    /* A profile asked for by name must load. */
    files.profile = "/nonexistent/profile.json";
    cr_assert_neq(bp_plots_from_files(&files, out, &made, notes, sizeof notes), BP_OK);
    cr_assert(strstr(bp_last_error(), "/nonexistent/profile.json"), "%s", bp_last_error());
    bp_plot_files none = {0};
    cr_assert_eq(bp_plots_from_files(&none, out, &made, notes, sizeof notes), BP_ERR_ARG);
    free_fixture(&f);
}
