/* test_sensfile.c — sensitivity file: the documented hand-written example
 * loads, full round trip, CSV view, and every kind of bad file is rejected
 * with a message naming the file, the layer and the field. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/fileio.h"
#include "sensitivity/sens_file.h"

/* The ```json block after an HTML-comment marker in docs/FORMATS.md. */
static char *doc_example(const char *marker)
{
    char *text;
    size_t len;
    cr_assert_eq(bp_read_file("docs/FORMATS.md", &text, &len), BP_OK, "%s", bp_last_error());
    char *m = strstr(text, marker);
    cr_assert(m, "marker %s not in docs/FORMATS.md", marker);
    char *b = strstr(m, "```json\n");
    cr_assert(b);
    b += 8;
    char *e = strstr(b, "```");
    cr_assert(e);
    char *out = strndup(b, e - b);
    free(text);
    return out;
}

static char tmpdir[64];

static void mk_tmp(void)
{
    strcpy(tmpdir, "/tmp/bp_sensfile_XXXXXX");
    cr_assert(mkdtemp(tmpdir));
}

static void rm_tmp(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(sensfile, .init = mk_tmp, .fini = rm_tmp);

Test(sensfile, documented_minimal_example_loads)
{
    char *json = doc_example("<!-- example: sens-minimal -->");
    bp_sens s;
    bp_status st = bp_sens_parse(json, strlen(json), "FORMATS.md example", &s);
    cr_assert_eq(st, BP_OK, "%s", bp_last_error());
    cr_assert_eq(s.nlayers, 2);
    cr_assert_str_eq(s.layers[0].sig.name, "conv1");
    cr_assert_eq(s.layers[0].sig.op, BP_OP_CONV);
    cr_assert_eq(s.layers[1].sig.op, BP_OP_GEMM);
    cr_assert_eq(s.layers[0].sig.params, 432);
    cr_assert_eq(s.layers[0].sig.macs, 442368);
    cr_assert_eq(s.layers[0].sig.cout, 16);
    /* defaults documented in the table */
    cr_assert_eq(s.layers[0].sig.kh, 1);
    cr_assert_eq(s.layers[0].sig.group, 1);
    cr_assert_eq(s.layers[0].sig.fan_in, 442368 / 16);
    cr_assert(isnan(s.layers[0].trace));
    cr_assert_eq(s.layers[0].has_eigenvalue, 0);
    cr_assert_eq(s.layers[1].ncand, 2);
    cr_assert_eq(s.layers[1].cand[1].bits, 8);
    cr_assert_eq(s.layers[1].cand[1].omega, 0.00001);
    cr_assert(isnan(s.layers[1].cand[1].dw2));
    cr_assert_str_eq(s.model_sha256, "");
    bp_sens_free(&s);
    free(json);
}

/* A sensitivity set with every field set, including the optional ones. */
static void full_set(bp_sens *s)
{
    cr_assert_eq(bp_sens_init(s, 3), BP_OK);
    strcpy(s->model_path, "models/resnet, \"tiny\".onnx");
    strcpy(s->model_sha256, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
    bp_sens_settings *st = &s->settings;
    st->has_settings = 1;
    st->seed = 12345678901ULL;
    strcpy(st->probe, "joint");
    st->tolerance = 1e-3;
    st->min_probes = 8;
    st->max_probes = 200;
    st->samples = 512;
    st->batch = 64;
    strcpy(st->quantizer, "mse");
    st->nbits = 3;
    st->bits[0] = 2, st->bits[1] = 4, st->bits[2] = 8;
    for (int i = 0; i < 3; i++) {
        bp_sens_layer *l = &s->layers[i];
        snprintf(l->sig.name, sizeof l->sig.name, i == 1 ? "layer1,0.conv\"x\"" : "l%d", i);
        l->sig.op = i == 2 ? BP_OP_GEMM : BP_OP_CONV;
        l->sig.cin = 3 + i;
        l->sig.cout = 16 + i;
        l->sig.kh = 3, l->sig.kw = 1 + i, l->sig.stride = 2, l->sig.group = 1 + (i == 1);
        l->sig.in_h = 32, l->sig.in_w = 31, l->sig.out_h = 16, l->sig.out_w = 15;
        l->sig.params = 1000 + 7 * i;
        l->sig.macs = 123456789012LL + i;
        l->sig.fan_in = 27 + i;
        l->has_bias = i != 1;
        l->in_ndim = 4;
        int64_t is[4] = {-1, 3 + i, 32, 31}, os[4] = {-1, 16 + i, 16, 15};
        memcpy(l->in_shape, is, sizeof is);
        memcpy(l->out_shape, os, sizeof os);
        l->out_ndim = 4;
        l->trace = i == 0 ? -0.125 : 1.0 / 3.0 * (i + 1);
        l->trace_stderr = 0.1 / 7.0;
        l->probes = 40 + i;
        l->converged = i != 2;
        l->has_eigenvalue = i != 0;
        l->eigenvalue = 2.5e-3 * (i + 1);
        l->ncand = 3;
        for (int c = 0; c < 3; c++) {
            l->cand[c].bits = st->bits[c];
            l->cand[c].dw2 = c == 1 ? NAN : 1.0 / (c + 3 + i);
            l->cand[c].omega = 1e-7 * pow(10, 3 - c) / (i + 1.5);
        }
        if (i != 1)
            strcpy(l->tie, "add_1");
        if (i == 2) {
            l->has_act = 1;
            l->act_trace = 4.25;
            l->act_stderr = 0.5;
            l->nact = 2;
            l->act[0] = (bp_sens_act_cand){.bits = 4, .dx2 = 3.5, .omega = 0.02};
            l->act[1] = (bp_sens_act_cand){.bits = 8, .dx2 = NAN, .omega = 0.0001};
        }
    }
    s->ntop = 2;
    s->top_eigenvalues = malloc(2 * sizeof(double));
    s->top_eigenvalues[0] = 10.5, s->top_eigenvalues[1] = 3.25e-2;
    s->ndensity = 3;
    s->density_grid = malloc(3 * sizeof(double));
    s->density_values = malloc(3 * sizeof(double));
    for (int k = 0; k < 3; k++)
        s->density_grid[k] = -1 + k * 0.7, s->density_values[k] = 0.1 * k * k;
}

static int same_num(double a, double b) { return (isnan(a) && isnan(b)) || a == b; }

Test(sensfile, round_trip_keeps_every_field)
{
    bp_sens a, b;
    full_set(&a);
    char path[128];
    snprintf(path, sizeof path, "%s/s.json", tmpdir);
    cr_assert_eq(bp_sens_write(path, &a), BP_OK, "%s", bp_last_error());
    cr_assert_eq(bp_sens_read(path, &b), BP_OK, "%s", bp_last_error());
    cr_assert_str_eq(b.model_path, a.model_path);
    cr_assert_str_eq(b.model_sha256, a.model_sha256);
    cr_assert_eq(b.settings.has_settings, 1);
    cr_assert_eq(b.settings.seed, a.settings.seed);
    cr_assert_str_eq(b.settings.probe, "joint");
    cr_assert_str_eq(b.settings.quantizer, "mse");
    cr_assert_eq(b.settings.tolerance, 1e-3);
    cr_assert_eq(b.settings.min_probes, 8);
    cr_assert_eq(b.settings.max_probes, 200);
    cr_assert_eq(b.settings.samples, 512);
    cr_assert_eq(b.settings.batch, 64);
    cr_assert_eq(b.settings.nbits, 3);
    cr_assert_eq(b.settings.bits[2], 8);
    cr_assert_eq(b.nlayers, 3);
    for (int i = 0; i < 3; i++) {
        const bp_sens_layer *x = &a.layers[i], *y = &b.layers[i];
        cr_assert_str_eq(y->sig.name, x->sig.name);
        cr_assert_eq(y->sig.op, x->sig.op);
        cr_assert_eq(y->sig.cin, x->sig.cin);
        cr_assert_eq(y->sig.cout, x->sig.cout);
        cr_assert_eq(y->sig.kh, x->sig.kh);
        cr_assert_eq(y->sig.kw, x->sig.kw);
        cr_assert_eq(y->sig.stride, x->sig.stride);
        cr_assert_eq(y->sig.group, x->sig.group);
        cr_assert_eq(y->sig.in_h, x->sig.in_h);
        cr_assert_eq(y->sig.in_w, x->sig.in_w);
        cr_assert_eq(y->sig.out_h, x->sig.out_h);
        cr_assert_eq(y->sig.out_w, x->sig.out_w);
        cr_assert_eq(y->sig.params, x->sig.params);
        cr_assert_eq(y->sig.macs, x->sig.macs);
        cr_assert_eq(y->sig.fan_in, x->sig.fan_in);
        cr_assert_eq(y->sig.node, -1);
        cr_assert_eq(y->has_bias, x->has_bias);
        cr_assert_eq(y->in_ndim, 4);
        cr_assert_eq(y->out_ndim, 4);
        cr_assert_eq(memcmp(y->in_shape, x->in_shape, 4 * sizeof(int64_t)), 0);
        cr_assert_eq(memcmp(y->out_shape, x->out_shape, 4 * sizeof(int64_t)), 0);
        cr_assert(same_num(y->trace, x->trace));
        cr_assert(same_num(y->trace_stderr, x->trace_stderr));
        cr_assert_eq(y->probes, x->probes);
        cr_assert_eq(y->converged, x->converged);
        cr_assert_eq(y->has_eigenvalue, x->has_eigenvalue);
        if (x->has_eigenvalue)
            cr_assert_eq(y->eigenvalue, x->eigenvalue);
        cr_assert_str_eq(y->tie, x->tie);
        cr_assert_eq(y->ncand, 3);
        for (int c = 0; c < 3; c++) {
            cr_assert_eq(y->cand[c].bits, x->cand[c].bits);
            cr_assert(same_num(y->cand[c].dw2, x->cand[c].dw2), "layer %d cand %d dw2", i, c);
            cr_assert_eq(y->cand[c].omega, x->cand[c].omega);
        }
        cr_assert_eq(y->has_act, x->has_act);
        cr_assert_eq(y->nact, x->nact);
        cr_assert(same_num(y->act_trace, x->act_trace));
        cr_assert(same_num(y->act_stderr, x->act_stderr));
        for (int c = 0; c < x->nact; c++) {
            cr_assert_eq(y->act[c].bits, x->act[c].bits);
            cr_assert(same_num(y->act[c].dx2, x->act[c].dx2));
            cr_assert_eq(y->act[c].omega, x->act[c].omega);
        }
    }
    cr_assert_eq(b.ntop, 2);
    cr_assert_eq(b.top_eigenvalues[1], 3.25e-2);
    cr_assert_eq(b.ndensity, 3);
    for (int k = 0; k < 3; k++) {
        cr_assert_eq(b.density_grid[k], a.density_grid[k]);
        cr_assert_eq(b.density_values[k], a.density_values[k]);
    }
    bp_sens_free(&a);
    bp_sens_free(&b);
}

Test(sensfile, csv_view_has_flattened_columns)
{
    bp_sens a;
    full_set(&a);
    char path[128];
    snprintf(path, sizeof path, "%s/s.csv", tmpdir);
    cr_assert_eq(bp_sens_write_csv(path, &a), BP_OK, "%s", bp_last_error());
    char *text;
    size_t len;
    cr_assert_eq(bp_read_file(path, &text, &len), BP_OK);
    const char *hdr =
        "index,name,op,input_shape,output_shape,cin,cout,kh,kw,stride,group,in_h,in_w,out_h,out_w,"
        "params,macs,fan_in,bias,trace,trace_stderr,probes,converged,eigenvalue,tie,"
        "dw2_b2,omega_b2,dw2_b4,omega_b4,dw2_b8,omega_b8,act_trace,act_stderr,act_omega_a4,"
        "act_omega_a8\n";
    cr_assert_eq(strncmp(text, hdr, strlen(hdr)), 0, "header:\n%.400s", text);
    /* Layer 0: no eigenvalue and no dw2 at 4 bits (empty cells), no
     * activation terms (four empty cells at the end). */
    char row0[512];
    snprintf(row0, sizeof row0,
             "0,l0,Conv,-1x3x32x31,-1x16x16x15,3,16,3,1,2,1,32,31,16,15,1000,123456789012,27,1,"
             "-0.125,%.17g,40,1,,add_1,%.17g,%.17g,,%.17g,%.17g,%.17g,,,,\n",
             0.1 / 7.0, 1.0 / 3, 1e-7 * 1000 / 1.5, 1e-7 * 100 / 1.5, 1.0 / 5, 1e-7 * 10 / 1.5);
    cr_assert(strstr(text, row0), "row 0 expected:\n%s\ngot:\n%s", row0, text);
    cr_assert(strstr(text, "\n1,\"layer1,0.conv\"\"x\"\"\",Conv,"), "quoted name:\n%s", text);
    char act[128];
    snprintf(act, sizeof act, ",4.25,0.5,0.02,%.17g\n", 0.0001);
    cr_assert(strstr(text, act), "activation cells %s missing:\n%s", act, text);
    free(text);
    bp_sens_free(&a);
}

Test(sensfile, write_refuses_nonfinite_and_leaves_no_file)
{
    bp_sens a;
    full_set(&a);
    a.layers[2].cand[0].omega = NAN;
    char path[128];
    snprintf(path, sizeof path, "%s/bad.json", tmpdir);
    bp_status st = bp_sens_write(path, &a);
    cr_assert_eq(st, BP_ERR_NUMERIC);
    cr_assert(strstr(bp_last_error(), "layer 2 (l2)"), "%s", bp_last_error());
    cr_assert(strstr(bp_last_error(), "omega"), "%s", bp_last_error());
    cr_assert_neq(access(path, F_OK), 0, "a file was left behind");
    bp_sens_free(&a);
}

/* ---- bad files ----------------------------------------------------------- */

#define HEAD "{\"format\": \"bitplan-sensitivity\", \"version\": 1, "
#define L0 "{\"name\": \"c1\", \"op\": \"Conv\", \"params\": 10, \"macs\": 100, \"cout\": 2, " \
           "\"candidates\": [{\"bits\": 4, \"omega\": 1}, {\"bits\": 8, \"omega\": 0.5}]}"

static const struct {
    const char *json;
    bp_status st;
    const char *needle[3]; /* substrings the message must contain (besides the file name) */
} bad[] = {
    {"[1, 2]", BP_ERR_FORMAT, {"top level must be an object"}},
    {"{\"format\": \"bitplan-plan\", \"version\": 1}", BP_ERR_FORMAT, {"\"format\"", "bitplan-sensitivity"}},
    {"{\"version\": 1, \"layers\": []}", BP_ERR_FORMAT, {"missing field \"format\""}},
    {"{\"format\": \"bitplan-sensitivity\", \"version\": 3, \"layers\": [" L0 "]}", BP_ERR_FORMAT, {"\"version\"", "3"}},
    {HEAD "\"layers\": [" L0 ", " L0 "]}", BP_ERR_FORMAT, {"layer 1 (c1)", "\"name\""}},
    {HEAD "\"layers\": []}", BP_ERR_FORMAT, {"\"layers\"", "0 entries"}},
    {HEAD "\"layer\": []}", BP_ERR_FORMAT, {"missing field \"layers\""}},
    {HEAD "\"layers\": [" L0 ", {\"name\": \"fc\", \"op\": \"Gemm\", \"macs\": 10, \"cout\": 1, "
          "\"candidates\": [{\"bits\": 8, \"omega\": 1}]}]}",
     BP_ERR_FORMAT, {"layer 1 (fc)", "missing field \"params\""}},
    {HEAD "\"layers\": [{\"name\": \"fc\", \"op\": \"Gemm\", \"params\": -5, \"macs\": 10, \"cout\": 1, "
          "\"candidates\": [{\"bits\": 8, \"omega\": 1}]}]}",
     BP_ERR_FORMAT, {"layer 0 (fc)", "\"params\"", "-5"}},
    {HEAD "\"layers\": [{\"name\": \"r\", \"op\": \"Relu\", \"params\": 5, \"macs\": 10, \"cout\": 1, "
          "\"candidates\": [{\"bits\": 8, \"omega\": 1}]}]}",
     BP_ERR_FORMAT, {"layer 0 (r)", "\"op\"", "Relu"}},
    {HEAD "\"layers\": [{\"name\": \"fc\", \"op\": \"Gemm\", \"params\": 5, \"macs\": 10, \"cout\": 1, "
          "\"candidates\": [{\"bits\": 8, \"omega\": \"small\"}]}]}",
     BP_ERR_FORMAT, {"layer 0 (fc): candidates[0]", "\"omega\"", "a string"}},
    {HEAD "\"layers\": [{\"name\": \"fc\", \"op\": \"Gemm\", \"params\": 5, \"macs\": 10, \"cout\": 1, "
          "\"candidates\": [{\"bits\": 8, \"omega\": NaN}]}]}",
     BP_ERR_FORMAT, {"not valid JSON"}},
    {HEAD "\"layers\": [{\"name\": \"fc\", \"op\": \"Gemm\", \"params\": 5, \"macs\": 10, \"cout\": 1, "
          "\"candidates\": [{\"bits\": 8, \"omega\": 1e999}]}]}",
     BP_ERR_FORMAT, {"not valid JSON"}},
    {HEAD "\"layers\": [{\"name\": \"fc\", \"op\": \"Gemm\", \"params\": 5, \"macs\": 10, \"cout\": 1, "
          "\"candidates\": [{\"bits\": 8, \"omega\": 1}, {\"bits\": 4, \"omega\": 2}]}]}",
     BP_ERR_FORMAT, {"layer 0 (fc): candidates[1]", "\"bits\"", "increase"}},
    {HEAD "\"layers\": [{\"name\": \"fc\", \"op\": \"Gemm\", \"params\": 5, \"macs\": 10, \"cout\": 1, "
          "\"candidates\": [{\"bits\": 17, \"omega\": 1}]}]}",
     BP_ERR_FORMAT, {"layer 0 (fc): candidates[0]", "\"bits\"", "17"}},
    {HEAD "\"layers\": [{\"name\": \"fc\", \"op\": \"Gemm\", \"params\": 5, \"macs\": 10, \"cout\": 1, "
          "\"candidates\": []}]}",
     BP_ERR_FORMAT, {"layer 0 (fc)", "\"candidates\""}},
    {HEAD "\"layers\": [{\"name\": \"fc\", \"op\": \"Gemm\", \"params\": 5, \"macs\": 10, \"cout\": 1, "
          "\"trace_stderr\": -1, \"candidates\": [{\"bits\": 8, \"omega\": 1}]}]}",
     BP_ERR_FORMAT, {"layer 0 (fc)", "\"trace_stderr\""}},
    {HEAD "\"layers\": [{\"name\": \"fc\", \"op\": \"Gemm\", \"params\": 5, \"macs\": 10, \"cout\": 1, "
          "\"converged\": 1, \"candidates\": [{\"bits\": 8, \"omega\": 1}]}]}",
     BP_ERR_FORMAT, {"layer 0 (fc)", "\"converged\"", "true or false"}},
    {HEAD "\"layers\": [{\"name\": \"fc\", \"op\": \"Gemm\", \"params\": 5.5, \"macs\": 10, \"cout\": 1, "
          "\"candidates\": [{\"bits\": 8, \"omega\": 1}]}]}",
     BP_ERR_FORMAT, {"layer 0 (fc)", "\"params\"", "integer"}},
    {HEAD "\"layers\": [{\"op\": \"Gemm\", \"params\": 5, \"macs\": 10, \"cout\": 1, "
          "\"candidates\": [{\"bits\": 8, \"omega\": 1}]}]}",
     BP_ERR_FORMAT, {"layer 0", "missing field \"name\""}},
    {HEAD "\"layers\": [{\"name\": \"fc\", \"op\": \"Gemm\", \"params\": 5, \"macs\": 10, \"cout\": 1, "
          "\"input_shape\": [1, \"x\"], \"candidates\": [{\"bits\": 8, \"omega\": 1}]}]}",
     BP_ERR_FORMAT, {"layer 0 (fc)", "\"input_shape\"[1]"}},
    {HEAD "\"model\": {\"sha256\": \"abc\"}, \"layers\": [" L0 "]}", BP_ERR_FORMAT, {"\"sha256\""}},
    {HEAD "\"settings\": {\"quantizer\": \"l2\"}, \"layers\": [" L0 "]}", BP_ERR_FORMAT, {"settings", "\"quantizer\""}},
    {HEAD "\"settings\": {\"seed\": -1}, \"layers\": [" L0 "]}", BP_ERR_FORMAT, {"settings", "\"seed\""}},
    {HEAD "\"layers\": [" L0 "], \"density\": {\"grid\": [1, 2], \"values\": [1]}}", BP_ERR_FORMAT, {"density", "\"grid\""}},
    {HEAD "\"layers\": [" L0 "], \"top_eigenvalues\": [1, null]}", BP_ERR_FORMAT, {"\"top_eigenvalues\"[1]"}},
    {HEAD "\"layers\": [" L0 "], \"layers\": [" L0 "]}", BP_ERR_FORMAT, {"not valid JSON", "duplicate"}},
    {HEAD "\"layers\": [{\"name\": \"fc\", \"op\": \"Gemm\", \"params\": 5, \"macs\": 10, \"cout\": 1, "
          "\"candidates\": [{\"bits\": 8, \"omega\": 1}], \"act_candidates\": [{\"bits\": 4}]}]}",
     BP_ERR_FORMAT, {"layer 0 (fc): act_candidates[0]", "missing field \"omega\""}},
    /* version-2 activation fields */
    {HEAD "\"layers\": [{\"name\": \"fc\", \"op\": \"Gemm\", \"params\": 5, \"macs\": 10, \"cout\": 1, "
          "\"candidates\": [{\"bits\": 8, \"omega\": 1}], \"act_candidates\": [{\"bits\": 4, \"omega\": 1, "
          "\"clip\": -1}]}]}",
     BP_ERR_FORMAT, {"layer 0 (fc): act_candidates[0]", "\"clip\""}},
    {HEAD "\"layers\": [{\"name\": \"fc\", \"op\": \"Gemm\", \"params\": 5, \"macs\": 10, \"cout\": 1, "
          "\"act_numel\": -3, \"candidates\": [{\"bits\": 8, \"omega\": 1}]}]}",
     BP_ERR_FORMAT, {"layer 0 (fc)", "\"act_numel\""}},
    {HEAD "\"layers\": [{\"name\": \"fc\", \"op\": \"Gemm\", \"params\": 5, \"macs\": 10, \"cout\": 1, "
          "\"act_signed\": \"yes\", \"candidates\": [{\"bits\": 8, \"omega\": 1}]}]}",
     BP_ERR_FORMAT, {"layer 0 (fc)", "\"act_signed\""}},
    {HEAD "\"settings\": {\"act\": {\"calib\": \"l1\"}}, \"layers\": [" L0 "]}", BP_ERR_FORMAT,
     {"settings: act", "\"calib\"", "l1"}},
    {HEAD "\"settings\": {\"act\": {\"bits\": [4, 40]}}, \"layers\": [" L0 "]}", BP_ERR_FORMAT,
     {"settings: act", "\"bits\"[1]"}},
};

Test(sensfile, bad_files_are_rejected_with_file_layer_and_field)
{
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        char path[128];
        snprintf(path, sizeof path, "%s/bad%zu.json", tmpdir, k);
        cr_assert_eq(bp_write_file_atomic(path, bad[k].json, strlen(bad[k].json)), BP_OK);
        bp_sens s;
        bp_status st = bp_sens_read(path, &s);
        cr_assert_eq(st, bad[k].st, "case %zu: status %d, want %d (%s)", k, st, bad[k].st,
                     bp_last_error());
        const char *msg = bp_last_error();
        cr_assert(strstr(msg, path), "case %zu: message does not name the file: %s", k, msg);
        for (int j = 0; j < 3 && bad[k].needle[j]; j++)
            cr_assert(strstr(msg, bad[k].needle[j]), "case %zu: \"%s\" not in: %s", k,
                      bad[k].needle[j], msg);
        cr_assert_eq(s.nlayers, 0, "case %zu: struct not zeroed", k);
        cr_assert_null(s.layers);
    }
}

Test(sensfile, missing_file_is_an_io_error)
{
    bp_sens s;
    char path[128];
    snprintf(path, sizeof path, "%s/none.json", tmpdir);
    cr_assert_eq(bp_sens_read(path, &s), BP_ERR_IO);
}

/* Version 2 only for files with activation terms: weight-only files stay
 * readable by version-1 readers. */
Test(sensfile, version_two_only_with_activation_terms)
{
    for (int act = 0; act < 2; act++) {
        bp_sens s;
        cr_assert_eq(bp_sens_init(&s, 1), BP_OK);
        bp_sens_layer *l = &s.layers[0];
        strcpy(l->sig.name, "fc");
        l->sig.op = BP_OP_GEMM;
        l->sig.params = 10;
        l->sig.cout = 2;
        l->ncand = 1;
        l->cand[0] = (bp_sens_cand){.bits = 8, .dw2 = NAN, .omega = 0.5};
        if (act) {
            l->has_act = 1;
            l->act_trace = 2;
            l->act_stderr = 0.1;
            l->act_probes = 7;
            l->act_numel = 64;
            l->act_signed = 0;
            l->nact = 1;
            l->act[0] = (bp_sens_act_cand){.bits = 4, .dx2 = 3.2, .omega = 0.1, .clip = 5.5};
        }
        char path[128];
        snprintf(path, sizeof path, "%s/v%d.json", tmpdir, act);
        cr_assert_eq(bp_sens_write(path, &s), BP_OK, "%s", bp_last_error());
        char *text;
        size_t len;
        cr_assert_eq(bp_read_file(path, &text, &len), BP_OK);
        cr_assert(strstr(text, act ? "\"version\": 2" : "\"version\": 1"), "%s", text);
        cr_assert_eq(strstr(text, "act_") != NULL, act);
        free(text);
        bp_sens b;
        cr_assert_eq(bp_sens_read(path, &b), BP_OK, "%s", bp_last_error());
        cr_assert_eq(b.layers[0].act_signed, act ? 0 : -1);
        cr_assert_eq(b.layers[0].act_probes, act ? 7 : 0);
        cr_assert_eq(b.layers[0].act_numel, act ? 64 : 0);
        if (act)
            cr_assert_eq(b.layers[0].act[0].clip, 5.5);
        bp_sens_free(&b);
        bp_sens_free(&s);
    }
}
