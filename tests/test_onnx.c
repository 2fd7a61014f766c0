/* ONNX in and out, against references made outside bitplan:
 *  - tiny PyTorch models exported by torch.onnx.export at opsets 11/13/17, with
 *    BN kept and BN fused, static and symbolic batch (tools/make_fixtures.py):
 *    outputs against torch's at batch 1 and 3, the layer table against shapes
 *    and MACs taken from the torch modules, the file hash against hashlib;
 *  - a hand-built opset-9 model (float16/double/float_data initializers, Clip
 *    attributes, auto_pad SAME_*, a Shape/Gather/Slice/Concat chain) whose
 *    outputs come from a numpy interpreter (tools/onnx_ref.py);
 *  - save -> load round trips (identical outputs), and the written files
 *    checked by Debian's python onnx checker and run by the numpy interpreter;
 *  - broken files: truncated, random and mutated bytes, unsupported ops,
 *    training-mode BN, missing initializer, wrong types, a batch-moving Reshape. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/exec.h"
#include "core/fileio.h"
#include "core/onnx.h"
#include "train/arch.h"

#define FIX "tests/fixtures/onnx/"
#define NSAMPLES 3

/* Every fixture that loads, with the file holding its expected outputs. */
static const struct {
    const char *model, *expect, *layers;
} fixtures[] = {
    {"cnn_fused_op11", "cnn", "cnn"}, {"cnn_fused_op13", "cnn", "cnn"},
    {"cnn_bn_op11", "cnn", "cnn"},    {"cnn_bn_op13", "cnn", "cnn"},
    {"cnn_bn_op17", "cnn", "cnn"},    {"cnn_dyn_op13", "cnn", "cnn"},
    {"gap_fused_op11", "gap", "gap"}, {"gap_fused_op13", "gap", "gap"},
    {"gap_bn_op11", "gap", "gap"},    {"gap_bn_op13", "gap", "gap"},
    {"gap_bn_op17", "gap", "gap"},    {"gap_dyn_op13", "gap", "gap"},
    {"cnn_keepinit_op11", "cnn", "cnn"}, {"gap_keepinit_op11", "gap", "gap"},
    {"edge_opset9", "edge_opset9", NULL},
};
#define NFIX (sizeof fixtures / sizeof *fixtures)

static float *read_floats(const char *path, size_t *n)
{
    char *data;
    size_t len;
    cr_assert_eq(bp_read_file(path, &data, &len), BP_OK, "%s", bp_last_error());
    *n = len / sizeof(float);
    return (float *)data;
}

static bp_graph *load(const char *name)
{
    char path[256];
    snprintf(path, sizeof path, FIX "%s.onnx", name);
    bp_graph *g = NULL;
    bp_status st = bp_onnx_load(path, &g);
    cr_assert_eq(st, BP_OK, "%s: %s", path, bp_last_error());
    return g;
}

/* Forward of the first n samples of x; returns a malloc'd copy of the output. */
static float *forward(const bp_graph *g, const float *x, int n, size_t *nout)
{
    bp_exec *ex = bp_exec_new(g, n, 0);
    cr_assert_not_null(ex, "%s", bp_last_error());
    bp_status st = bp_forward(ex, g->params, x, n, BP_MODE_INFER);
    cr_assert_eq(st, BP_OK, "%s: forward: %s", g->source, bp_last_error());
    size_t per = g->values[g->output].numel;
    float *y = malloc(per * (size_t)n * sizeof *y);
    memcpy(y, bp_exec_act(ex, g->output), per * (size_t)n * sizeof *y);
    bp_exec_free(ex);
    *nout = per * (size_t)n;
    return y;
}

static void expect_close(const char *what, const float *got, const float *want, size_t n)
{
    double worst = 0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]) - (1e-4 * fabs(want[i]) + 1e-5);
        if (d > worst) {
            worst = d;
            at = i;
        }
    }
    cr_expect(worst <= 0, "%s: element %zu is %.7g, reference %.7g", what, at, got[at], want[at]);
}

Test(onnx, outputs_match_reference_at_batch_1_and_3)
{
    size_t nx;
    float *x = read_floats(FIX "x.bin", &nx);
    for (size_t f = 0; f < NFIX; f++) {
        bp_graph *g = load(fixtures[f].model);
        char path[256];
        snprintf(path, sizeof path, FIX "%s.out.bin", fixtures[f].expect);
        size_t nw, ny;
        float *want = read_floats(path, &nw);
        cr_assert_eq(g->values[g->input].numel * NSAMPLES, nx, "%s: input size", fixtures[f].model);
        float *y = forward(g, x, NSAMPLES, &ny);
        cr_assert_eq(ny, nw, "%s: %zu outputs, reference has %zu", fixtures[f].model, ny, nw);
        char what[128];
        snprintf(what, sizeof what, "%s batch 3", fixtures[f].model);
        expect_close(what, y, want, ny);
        free(y);
        y = forward(g, x, 1, &ny);
        snprintf(what, sizeof what, "%s batch 1", fixtures[f].model);
        expect_close(what, y, want, ny);
        free(y);
        free(want);
        bp_graph_free(g);
    }
    free(x);
}

Test(onnx, layer_table_matches_torch_modules)
{
    const char *archs[] = {"cnn", "gap"};
    for (size_t f = 0; f < NFIX; f++) {
        if (!fixtures[f].layers)
            continue;
        char path[256];
        snprintf(path, sizeof path, FIX "%s.layers", fixtures[f].layers);
        FILE *fp = fopen(path, "r");
        cr_assert_not_null(fp, "%s", path);
        bp_graph *g = load(fixtures[f].model);
        bp_layer *ls;
        int nl;
        cr_assert_eq(bp_graph_layers(g, &ls, &nl), BP_OK);
        char line[512];
        int row = 0;
        while (fgets(line, sizeof line, fp)) {
            if (line[0] == '#')
                continue;
            char name[128];
            long long v[12];
            int got = sscanf(line, "%127s %lld %lld %lld %lld %lld %lld %lld %lld %lld %lld %lld %lld", name,
                             &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9],
                             &v[10], &v[11]);
            cr_assert_eq(got, 13, "%s: bad line", path);
            cr_assert_lt(row, nl, "%s: bitplan found only %d layers", fixtures[f].model, nl);
            const bp_layer *L = &ls[row];
            /* BN-fused weights are renamed from the node scope: same names as unfused */
            cr_expect_str_eq(L->name, name, "%s layer %d", fixtures[f].model, row);
            long long mine[12] = {L->cout, L->cin, L->kh, L->kw, L->stride, L->group, L->in_h,
                                  L->in_w, L->out_h, L->out_w, (long long)L->params, L->macs};
            static const char *const fields[12] = {"cout", "cin", "kh", "kw", "stride", "group",
                                                   "in_h", "in_w", "out_h", "out_w", "params", "macs"};
            for (int k = 0; k < 12; k++)
                cr_expect_eq(mine[k], v[k], "%s layer %s: %s is %lld, torch says %lld",
                             fixtures[f].model, name, fields[k], mine[k], v[k]);
            row++;
        }
        cr_expect_eq(row, nl, "%s: torch has %d layers, bitplan %d", fixtures[f].model, row, nl);
        fclose(fp);
        free(ls);
        bp_graph_free(g);
    }
    (void)archs;
}

Test(onnx, sha256_and_source_recorded)
{
    FILE *fp = fopen(FIX "fixtures.sha256", "r");
    cr_assert_not_null(fp);
    char hexw[80], name[128];
    int checked = 0;
    while (fscanf(fp, "%79s %127s", hexw, name) == 2) {
        for (size_t f = 0; f < NFIX; f++) {
            char file[160];
            snprintf(file, sizeof file, "%s.onnx", fixtures[f].model);
            if (strcmp(file, name))
                continue;
            bp_graph *g = load(fixtures[f].model);
            char hex[65], path[256];
            bp_sha256_hex(g->sha256, hex);
            cr_expect_str_eq(hex, hexw, "%s", name);
            snprintf(path, sizeof path, FIX "%s", name);
            cr_expect_str_eq(g->source, path);
            bp_graph_free(g);
            checked++;
        }
    }
    fclose(fp);
    cr_assert_eq(checked, (int)NFIX, "every fixture has a hashlib digest");
}

/* The batch rule and the IR details the loader is responsible for. */
Test(onnx, batch_rule_bn_and_folding)
{
    /* torch wrote Reshape [1, 64] (static batch) or a Shape/Gather chain
     * (symbolic batch): both must become "copy dim 0" */
    const char *cnn[] = {"cnn_fused_op13", "cnn_bn_op11", "cnn_dyn_op13", "edge_opset9"};
    for (size_t k = 0; k < sizeof cnn / sizeof *cnn; k++) {
        bp_graph *g = load(cnn[k]);
        int found = 0;
        for (int i = 0; i < g->nnodes; i++)
            if (g->nodes[i].op == BP_OP_RESHAPE) {
                found++;
                cr_expect_eq(g->nodes[i].a.shape[0], 0, "%s: Reshape target[0] = %lld", cnn[k],
                             (long long)g->nodes[i].a.shape[0]);
            }
        cr_expect_eq(found, strcmp(cnn[k], "edge_opset9") ? 1 : 2, "%s: Reshape count", cnn[k]);
        bp_graph_free(g);
    }
    bp_graph *g = load("cnn_dyn_op13");
    cr_expect_eq(g->values[g->input].dims[0], -1, "symbolic batch stays symbolic");
    bp_graph_free(g);

    g = load("cnn_bn_op13");
    int nbn = 0;
    for (int i = 0; i < g->nnodes; i++)
        nbn += g->nodes[i].op == BP_OP_BN;
    cr_expect_eq(nbn, 2, "BN kept as its own op");
    int mean = bp_graph_find(g, "bn1.running_mean"), var = bp_graph_find(g, "bn1.running_var"),
        scale = bp_graph_find(g, "bn1.weight");
    cr_assert(mean >= 0 && var >= 0 && scale >= 0);
    cr_expect_eq(g->values[mean].trainable, 0);
    cr_expect_eq(g->values[var].trainable, 0);
    cr_expect_eq(g->values[scale].trainable, 1);
    cr_expect_eq(g->values[g->input].dims[0], 1, "static batch as written");
    /* ReLU6 -> Clip 0..6 from Constant/initializer inputs */
    int nclip = 0;
    for (int i = 0; i < g->nnodes; i++)
        if (g->nodes[i].op == BP_OP_CLIP) {
            nclip++;
            cr_expect_eq(g->nodes[i].a.clip_min, 0.0f);
            cr_expect_eq(g->nodes[i].a.clip_max, 6.0f);
        }
    cr_expect_eq(nclip, 1);
    bp_graph_free(g);

    g = load("cnn_fused_op13");
    for (int i = 0; i < g->nnodes; i++)
        cr_expect_neq(g->nodes[i].op, BP_OP_BN, "the exporter fused BN into Conv");
    bp_graph_free(g);

    /* opset 9 Clip with attributes; SAME_LOWER / SAME_UPPER resolved to pads */
    g = load("edge_opset9");
    int clip = -1, same_lower = -1, same_upper = -1;
    for (int i = 0; i < g->nnodes; i++) {
        if (!strcmp(g->nodes[i].name, "clip_attr"))
            clip = i;
        if (!strcmp(g->nodes[i].name, "conv_same_lower"))
            same_lower = i;
        if (!strcmp(g->nodes[i].name, "conv_same_upper"))
            same_upper = i;
    }
    cr_assert(clip >= 0 && same_lower >= 0 && same_upper >= 0);
    cr_expect_eq(g->nodes[clip].a.clip_min, -0.5f);
    cr_expect_eq(g->nodes[clip].a.clip_max, 1.5f);
    /* 10 -> 5 with k3 s2: total pad (5-1)*2+3-10 = 1, LOWER puts it first */
    const int *p = g->nodes[same_lower].a.pads;
    cr_expect(p[0] == 1 && p[1] == 1 && p[2] == 0 && p[3] == 0, "SAME_LOWER pads %d %d %d %d", p[0],
              p[1], p[2], p[3]);
    /* 5 -> 5 with k2 s1: total pad 1, UPPER puts it last */
    p = g->nodes[same_upper].a.pads;
    cr_expect(p[0] == 0 && p[1] == 0 && p[2] == 1 && p[3] == 1, "SAME_UPPER pads %d %d %d %d", p[0],
              p[1], p[2], p[3]);
    bp_graph_free(g);
}

static char tmpdir[64];

static void make_tmpdir(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/bp_onnx_XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
}

static void remove_tmpdir(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    cr_expect_eq(system(cmd), 0);
}

Test(onnx, save_load_round_trip_is_identical, .init = make_tmpdir, .fini = remove_tmpdir)
{
    size_t nx;
    float *x = read_floats(FIX "x.bin", &nx);
    for (size_t f = 0; f < NFIX; f++) {
        bp_graph *g = load(fixtures[f].model);
        char path[256];
        snprintf(path, sizeof path, "%s/%s.onnx", tmpdir, fixtures[f].model);
        cr_assert_eq(bp_onnx_save(g, path), BP_OK, "%s", bp_last_error());
        bp_graph *h = NULL;
        cr_assert_eq(bp_onnx_load(path, &h), BP_OK, "%s", bp_last_error());
        cr_expect_eq(h->nnodes, g->nnodes, "%s", fixtures[f].model);
        cr_expect_eq(h->nparams, g->nparams, "%s", fixtures[f].model);
        cr_expect_eq(memcmp(h->params, g->params, g->nparams * sizeof *g->params), 0);
        cr_expect_eq(h->values[h->input].dims[0], -1, "written with a symbolic batch");
        for (int i = 0; i < g->nnodes && i < h->nnodes; i++) {
            cr_expect_eq(h->nodes[i].op, g->nodes[i].op);
            cr_expect_eq(memcmp(&h->nodes[i].a, &g->nodes[i].a, sizeof(bp_attrs)), 0,
                         "%s node %s: attributes differ after the round trip", fixtures[f].model,
                         g->nodes[i].name);
        }
        size_t n1, n2;
        float *y1 = forward(g, x, NSAMPLES, &n1), *y2 = forward(h, x, NSAMPLES, &n2);
        cr_assert_eq(n1, n2);
        cr_expect_eq(memcmp(y1, y2, n1 * sizeof *y1), 0, "%s: outputs differ after the round trip",
                     fixtures[f].model);
        free(y1);
        free(y2);
        bp_graph_free(h);
        bp_graph_free(g);
    }
    free(x);
}

/* The files bp_onnx_save writes, judged by other ONNX tools: Debian's python
 * onnx checker (full_check, with shape inference) and the numpy reference
 * interpreter tools/onnx_ref.py, against torch's outputs at batch 3. */
Test(onnx, written_files_pass_onnx_checker_and_numpy_reference, .init = make_tmpdir,
     .fini = remove_tmpdir)
{
    char list[128];
    snprintf(list, sizeof list, "%s/list.txt", tmpdir);
    FILE *lf = fopen(list, "w");
    cr_assert_not_null(lf);
    for (size_t f = 0; f < NFIX; f++) {
        bp_graph *g = load(fixtures[f].model);
        char path[256];
        snprintf(path, sizeof path, "%s/%s.onnx", tmpdir, fixtures[f].model);
        cr_assert_eq(bp_onnx_save(g, path), BP_OK, "%s", bp_last_error());
        fprintf(lf, "%s " FIX "x.bin " FIX "%s.out.bin\n", path, fixtures[f].expect);
        bp_graph_free(g);
    }
    fclose(lf);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 tools/onnx_ref.py --check %s >%s/log.txt 2>&1", list,
             tmpdir);
    int rc = system(cmd);
    char logp[128], *log = NULL;
    size_t len;
    snprintf(logp, sizeof logp, "%s/log.txt", tmpdir);
    bp_read_file(logp, &log, &len);
    cr_expect_eq(rc, 0, "python onnx checker / numpy reference:\n%s", log ? log : "");
    int oks = 0;
    for (char *p = log; p && (p = strstr(p, "checker ok")); p++)
        oks++;
    cr_expect_eq(oks, (int)NFIX, "every written file was checked:\n%s", log ? log : "");
    free(log);
}

/* What `bitplan train` saves: every built-in architecture, with parameters
 * perturbed so that BN statistics matter, written by bp_onnx_save, must pass
 * the onnx checker and compute in the numpy interpreter what bitplan's engine
 * computes on the in-memory graph. */
Test(onnx, builtin_architectures_written_for_other_tools, .init = make_tmpdir, .fini = remove_tmpdir)
{
    char list[128];
    snprintf(list, sizeof list, "%s/list.txt", tmpdir);
    FILE *lf = fopen(list, "w");
    cr_assert_not_null(lf);
    uint32_t seed = 99;
    int narch = 0;
    for (int i = 0; bp_arch_name(i); i++) {
        bp_graph *g;
        cr_assert_eq(bp_arch_build(bp_arch_name(i), 1, 28, 28, 10, 1, &g), BP_OK, "%s", bp_last_error());
        for (int k = 0; k < g->nnodes; k++) {
            const bp_node *n = &g->nodes[k];
            if (n->op != BP_OP_BN)
                continue;
            for (int j = 1; j < 5; j++) {
                bp_real *p = bp_param_ptr(g, g->params, n->in[j]);
                for (size_t e = 0; e < g->values[n->in[j]].numel; e++) {
                    double u = (double)(seed = seed * 1664525u + 1013904223u) / 4294967296.0;
                    p[e] = (bp_real)(j == 1 || j == 4 ? 0.5 + u : 0.4 * (u - 0.5));
                }
            }
        }
        enum { NS = 2 };
        float x[NS * 28 * 28];
        for (size_t e = 0; e < sizeof x / sizeof *x; e++)
            x[e] = (float)((double)(seed = seed * 1664525u + 1013904223u) / 4294967296.0 - 0.5);
        size_t ny;
        float *y = forward(g, x, NS, &ny);
        char mp[256], xp[256], yp[256];
        snprintf(mp, sizeof mp, "%s/%s.onnx", tmpdir, bp_arch_name(i));
        snprintf(xp, sizeof xp, "%s/%s.x.bin", tmpdir, bp_arch_name(i));
        snprintf(yp, sizeof yp, "%s/%s.y.bin", tmpdir, bp_arch_name(i));
        cr_assert_eq(bp_onnx_save(g, mp), BP_OK, "%s", bp_last_error());
        cr_assert_eq(bp_write_file_atomic(xp, x, sizeof x), BP_OK);
        cr_assert_eq(bp_write_file_atomic(yp, y, ny * sizeof *y), BP_OK);
        fprintf(lf, "%s %s %s\n", mp, xp, yp);
        free(y);
        bp_graph_free(g);
        narch++;
    }
    fclose(lf);
    cr_assert_geq(narch, 3, "lenet5, resnet8, mobilenetv2 at least");
    char cmd[512];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 tools/onnx_ref.py --check %s >%s/log.txt 2>&1", list,
             tmpdir);
    int rc = system(cmd);
    char logp[128], *log = NULL;
    size_t len;
    snprintf(logp, sizeof logp, "%s/log.txt", tmpdir);
    bp_read_file(logp, &log, &len);
    cr_expect_eq(rc, 0, "python onnx checker / numpy reference:\n%s", log ? log : "");
    int oks = 0;
    for (char *p = log; p && (p = strstr(p, "checker ok")); p++)
        oks++;
    cr_expect_eq(oks, narch, "every written file was checked:\n%s", log ? log : "");
    free(log);
}

/* `bitplan info --json` reports the layer table torch's modules describe,
 * with totals that add up; bad input exits non-zero with the loader's message. */
Test(onnx_cli, info_json_and_errors, .init = make_tmpdir, .fini = remove_tmpdir)
{
    char cmd[1024], out[128], err[128];
    snprintf(out, sizeof out, "%s/out.json", tmpdir);
    snprintf(err, sizeof err, "%s/err.txt", tmpdir);
    snprintf(cmd, sizeof cmd, "bin/bitplan info " FIX "cnn_fused_op11.onnx --json >%s 2>%s", out, err);
    cr_assert_eq(system(cmd), 0, "bin/bitplan info failed (is bin/bitplan built?)");
    json_error_t je;
    json_t *root = json_load_file(out, 0, &je);
    cr_assert_not_null(root, "%s: %s", out, je.text);
    json_t *layers = json_object_get(root, "layers");
    cr_assert_eq(json_array_size(layers), 5);
    FILE *fp = fopen(FIX "cnn.layers", "r");
    cr_assert_not_null(fp);
    char line[512];
    size_t row = 0;
    long long macs = 0;
    while (fgets(line, sizeof line, fp)) {
        char name[128];
        long long v[12];
        if (line[0] == '#' ||
            sscanf(line, "%127s %lld %lld %lld %lld %lld %lld %lld %lld %lld %lld %lld %lld", name, &v[0],
                   &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9], &v[10], &v[11]) != 13)
            continue;
        json_t *L = json_array_get(layers, row++);
        cr_assert_not_null(L);
        cr_expect_str_eq(json_string_value(json_object_get(L, "name")), name);
        cr_expect_eq(json_integer_value(json_object_get(L, "params")), v[10], "%s params", name);
        cr_expect_eq(json_integer_value(json_object_get(L, "macs")), v[11], "%s MACs", name);
        macs += v[11];
    }
    fclose(fp);
    cr_expect_eq(row, 5);
    cr_expect_eq(json_integer_value(json_object_get(root, "total_macs")), macs);
    json_decref(root);

    snprintf(cmd, sizeof cmd, "bin/bitplan info " FIX "sigmoid_op13.onnx >%s 2>%s", out, err);
    int rc = system(cmd);
    cr_expect(WIFEXITED(rc) && WEXITSTATUS(rc) == 1, "unsupported op: exit 1");
    char *msg = NULL;
    size_t len;
    cr_assert_eq(bp_read_file(err, &msg, &len), BP_OK);
    cr_expect(strstr(msg, "sigmoid_op13.onnx: node '/Sigmoid' (op Sigmoid): unsupported op") != NULL, "%s", msg);
    free(msg);
    snprintf(cmd, sizeof cmd, "bin/bitplan info >%s 2>%s", out, err);
    rc = system(cmd);
    cr_expect(WIFEXITED(rc) && WEXITSTATUS(rc) == 2, "no model: usage error");
}

/* ---- errors ------------------------------------------------------------------ */

static void expect_error(const char *file, bp_status want, const char *const *needles)
{
    char path[256];
    snprintf(path, sizeof path, FIX "%s", file);
    bp_graph *g = (bp_graph *)1;
    bp_status st = bp_onnx_load(path, &g);
    cr_expect_eq(st, want, "%s: status %s, expected %s (%s)", file, bp_strerror(st), bp_strerror(want),
                 bp_last_error());
    cr_expect_null(g, "no graph on failure");
    cr_expect(strstr(bp_last_error(), path) != NULL, "message names the file: %s", bp_last_error());
    for (int k = 0; needles && needles[k]; k++)
        cr_expect(strstr(bp_last_error(), needles[k]) != NULL, "message mentions '%s': %s", needles[k],
                  bp_last_error());
}

Test(onnx_errors, unsupported_and_malformed_models)
{
    expect_error("sigmoid_op13.onnx", BP_ERR_UNSUPPORTED,
                 (const char *[]){"node '/Sigmoid'", "op Sigmoid", "unsupported op", NULL});
    expect_error("cnn_train_op13.onnx", BP_ERR_UNSUPPORTED,
                 (const char *[]){"BatchNormalization", "/bn1/", "training", NULL});
    expect_error("err_missing_init.onnx", BP_ERR_FORMAT,
                 (const char *[]){"node 'lonely'", "op Conv", "'nowhere'", NULL});
    expect_error("err_wrong_type.onnx", BP_ERR_FORMAT, (const char *[]){"node 'intconv'", "int64", NULL});
    expect_error("err_batch_move.onnx", BP_ERR_UNSUPPORTED,
                 (const char *[]){"node 'mixer'", "op Reshape", "batch", NULL});
    expect_error("err_two_inputs.onnx", BP_ERR_UNSUPPORTED, (const char *[]){"'x2'", "more than one input", NULL});
    expect_error("no_such_model.onnx", BP_ERR_IO, NULL);
}

Test(onnx_errors, truncated_files, .init = make_tmpdir, .fini = remove_tmpdir)
{
    char *data;
    size_t len;
    cr_assert_eq(bp_read_file(FIX "cnn_bn_op13.onnx", &data, &len), BP_OK);
    char path[128];
    snprintf(path, sizeof path, "%s/half.onnx", tmpdir);
    cr_assert_eq(bp_write_file_atomic(path, data, len / 2), BP_OK);
    bp_graph *g;
    cr_expect_eq(bp_onnx_load(path, &g), BP_ERR_FORMAT);
    cr_expect(strstr(bp_last_error(), path) != NULL, "%s", bp_last_error());
    cr_expect(strstr(bp_last_error(), "truncated") != NULL, "%s", bp_last_error());
    /* every prefix is a format error, never a crash or a graph */
    for (size_t cut = 0; cut < len; cut += 53) {
        bp_status st = bp_onnx_load_buffer(data, cut, "cut.onnx", &g);
        cr_expect_eq(st, BP_ERR_FORMAT, "prefix of %zu bytes: %s (%s)", cut, bp_strerror(st),
                     bp_last_error());
        cr_expect(strstr(bp_last_error(), "cut.onnx") != NULL, "%s", bp_last_error());
        if (st == BP_OK)
            bp_graph_free(g);
    }
    free(data);
}

static uint32_t lcg(uint32_t *s)
{
    *s = *s * 1664525u + 1013904223u;
    return *s >> 8;
}

Test(onnx_errors, random_and_mutated_bytes)
{
    uint32_t seed = 12345;
    unsigned char buf[4096];
    for (int r = 0; r < 200; r++) {
        size_t n = 1 + lcg(&seed) % sizeof buf;
        for (size_t i = 0; i < n; i++)
            buf[i] = (unsigned char)lcg(&seed);
        bp_graph *g;
        bp_status st = bp_onnx_load_buffer(buf, n, "random.onnx", &g);
        cr_expect_neq(st, BP_OK, "random bytes loaded as a model");
        cr_expect(strstr(bp_last_error(), "random.onnx") != NULL, "%s", bp_last_error());
        if (st == BP_OK)
            bp_graph_free(g);
    }
    /* a valid model with a few bytes changed: either loads or fails with a
     * message naming the file — never a crash */
    char *data;
    size_t len;
    cr_assert_eq(bp_read_file(FIX "cnn_dyn_op13.onnx", &data, &len), BP_OK);
    char *mut = malloc(len);
    int failed = 0;
    for (int r = 0; r < 300; r++) {
        memcpy(mut, data, len);
        int flips = 1 + (int)(lcg(&seed) % 4);
        for (int k = 0; k < flips; k++)
            mut[lcg(&seed) % len] = (char)lcg(&seed);
        bp_graph *g;
        bp_status st = bp_onnx_load_buffer(mut, len, "mutant.onnx", &g);
        if (st == BP_OK) {
            bp_graph_free(g);
        } else {
            failed++;
            cr_expect(strstr(bp_last_error(), "mutant.onnx") != NULL, "%s", bp_last_error());
        }
    }
    cr_expect_gt(failed, 0, "some mutations must break the model");
    free(mut);
    free(data);
}
