/* test_intengine.c — BN folding, the node-by-node float runner, and the
 * integer-only engine against the float simulation of the same plan on the
 * built-in nets (LeNet-5: max pooling and Gemm chains; ResNet-8: folded BN,
 * residual Add, GAP; small MobileNetV2: depthwise convs, ReLU6, Add without
 * ReLU), at W8A8, mixed bits with views, 2-bit layers and power-of-two scales.
 * Agreement: integer logits within one output step of the simulation on
 * >= 99.9% of values. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/data.h"
#include "core/exec.h"
#include "core/onnx.h"
#include "quant/fold_bn.h"
#include "quant/frun.h"
#include "quant/qmodel.h"
#include "train/arch.h"

#define NS 64

static bp_dataset ds;

static void load_data(void)
{
    if (ds.x)
        return;
    bp_data_opts o = bp_data_opts_default();
    o.limit = NS;
    cr_assert_eq(bp_dataset_load("fashion-mnist:test", &o, &ds), BP_OK, "%s", bp_last_error());
}

static uint64_t rng = 0x2545F4914F6CDD1Dull;
static double urand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (rng >> 11) * (1.0 / 9007199254740992.0);
}

/* Random-initialized architecture with non-trivial BN statistics. */
static bp_graph *make_net(const char *arch, unsigned long seed)
{
    bp_graph *g = NULL;
    cr_assert_eq(bp_arch_build(arch, 1, 28, 28, 10, seed, &g), BP_OK, "%s", bp_last_error());
    for (int i = 0; i < g->nnodes; i++) {
        const bp_node *n = &g->nodes[i];
        if (n->op != BP_OP_BN)
            continue;
        const bp_value *sc = &g->values[n->in[1]];
        for (size_t c = 0; c < sc->numel; c++) {
            g->params[g->values[n->in[1]].offset + c] = (bp_real)(0.5 + urand());
            g->params[g->values[n->in[2]].offset + c] = (bp_real)(urand() - 0.5) * 0.5f;
            g->params[g->values[n->in[3]].offset + c] = (bp_real)(urand() - 0.5) * 0.3f;
            g->params[g->values[n->in[4]].offset + c] = (bp_real)(0.5 + urand());
        }
    }
    return g;
}

static void float_logits(const bp_graph *g, const bp_real *x, int n, bp_real *out)
{
    bp_exec *ex = bp_exec_new(g, n, 0);
    cr_assert(ex, "%s", bp_last_error());
    cr_assert_eq(bp_forward(ex, g->params, x, n, BP_MODE_INFER), BP_OK, "%s", bp_last_error());
    memcpy(out, bp_exec_act(ex, g->output), sizeof(bp_real) * n * 10);
    bp_exec_free(ex);
}

Test(intengine, fold_bn_matches_float_engine)
{
    load_data();
    const char *archs[] = {"resnet8", "mobilenetv2"};
    for (int a = 0; a < 2; a++) {
        bp_graph *g = make_net(archs[a], 7 + a), *f = NULL;
        int nf = 0;
        cr_assert_eq(bp_fold_bn(g, &f, &nf), BP_OK, "%s", bp_last_error());
        int nbn = 0;
        for (int i = 0; i < g->nnodes; i++)
            nbn += g->nodes[i].op == BP_OP_BN;
        cr_assert_eq(nf, nbn, "%s: folded %d of %d BN", archs[a], nf, nbn);
        for (int i = 0; i < f->nnodes; i++)
            cr_assert_neq(f->nodes[i].op, BP_OP_BN);
        bp_real *y0 = malloc(sizeof(bp_real) * 32 * 10), *y1 = malloc(sizeof(bp_real) * 32 * 10);
        float_logits(g, ds.x, 32, y0);
        float_logits(f, ds.x, 32, y1);
        double worst = 0, scale = 0;
        for (int i = 0; i < 320; i++) {
            worst = fmax(worst, fabs(y0[i] - y1[i]));
            scale = fmax(scale, fabs(y0[i]));
        }
        cr_assert(worst <= 1e-4 * fmax(scale, 1.0), "%s: folded logits differ by %g (scale %g)",
                  archs[a], worst, scale);
        /* the runner without hooks computes what bp_forward computes */
        bp_frun *r = NULL;
        cr_assert_eq(bp_frun_new(g, 32, &r), BP_OK);
        cr_assert_eq(bp_frun_forward(r, g->params, ds.x, 32, NULL), BP_OK, "%s", bp_last_error());
        const bp_real *y2 = bp_frun_act(r, g->output);
        for (int i = 0; i < 320; i++)
            cr_assert_eq(y2[i], y0[i], "runner vs bp_forward at %d", i);
        bp_frun_free(r);
        free(y0), free(y1);
        bp_graph_free(g), bp_graph_free(f);
    }
}

/* Builds the quantized model, runs both paths on NS samples, returns the
 * fraction of logits within one step; also checks argmax agreement rate. */
static double agreement(const bp_graph *g, const int *wb, const int *ab, int pow2, const char *what)
{
    bp_qopts o = bp_qopts_default();
    o.pow2 = pow2;
    bp_qmodel *m = NULL;
    cr_assert_eq(bp_qmodel_build(g, wb, ab, ds.x, NS, &o, &m), BP_OK, "%s: %s", what, bp_last_error());
    bp_qrun *r = NULL;
    bp_fq *f = NULL;
    cr_assert_eq(bp_qrun_new(m, NS, &r), BP_OK);
    cr_assert_eq(bp_fq_new(m, NS, &f), BP_OK);
    const bp_qtensor *ti = &m->t[m->input_t], *to = &m->t[m->output_t];
    void *xq = malloc(NS * ti->numel1);
    int32_t *li = malloc(sizeof(int32_t) * NS * to->numel1);
    bp_real *lf = malloc(sizeof(bp_real) * NS * to->numel1);
    bp_qmodel_quantize_input(m, ds.x, NS, xq);
    cr_assert_eq(bp_qrun_forward(r, xq, NS, li), BP_OK, "%s", bp_last_error());
    cr_assert_eq(bp_fq_forward(f, ds.x, NS, lf), BP_OK, "%s", bp_last_error());
    size_t n = NS * to->numel1, ok = 0, exact = 0;
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs(li[i] - lf[i] / to->scale);
        worst = fmax(worst, d);
        ok += d <= 1.0 + 1e-3;
        exact += d < 0.5;
    }
    /* the logits are not degenerate: they span many steps */
    int32_t lo = INT32_MAX, hi = INT32_MIN;
    for (size_t i = 0; i < n; i++) {
        lo = li[i] < lo ? li[i] : lo;
        hi = li[i] > hi ? li[i] : hi;
    }
    cr_assert(hi - lo > 1000, "%s: integer logits span only %d steps", what, hi - lo);
    /* the ideal single-rounding simulation: same predictions almost always */
    bp_fq_set_ideal(f, 1);
    cr_assert_eq(bp_fq_forward(f, ds.x, NS, lf), BP_OK);
    int same = 0;
    for (int s = 0; s < NS; s++) {
        int ai = 0, af = 0;
        for (int c = 1; c < 10; c++) {
            ai = li[s * 10 + c] > li[s * 10 + ai] ? c : ai;
            af = lf[s * 10 + c] > lf[s * 10 + af] ? c : af;
        }
        same += ai == af;
    }
    cr_log_info("%s: %zu/%zu logits within one step of the dyadic simulation (%zu exact), worst %.2f "
                "steps; argmax equal to the ideal-rounding simulation on %d/%d",
                what, ok, n, exact, worst, same, NS);
    cr_assert_geq(same, NS * 9 / 10, "%s: integer and ideal simulation disagree on %d of %d predictions",
                  what, NS - same, NS);
    free(xq), free(li), free(lf);
    bp_qrun_free(r);
    bp_fq_free(f);
    bp_qmodel_free(m);
    return (double)ok / n;
}

static void run_arch(const char *arch, unsigned long seed)
{
    load_data();
    bp_graph *g = make_net(arch, seed);
    bp_layer *L = NULL;
    int nl = 0;
    cr_assert_eq(bp_graph_layers(g, &L, &nl), BP_OK);
    int *wb = malloc(sizeof(int) * nl), *ab = malloc(sizeof(int) * nl);
    char what[200];
    /* uniform 8 bits */
    for (int i = 0; i < nl; i++)
        wb[i] = ab[i] = 8;
    snprintf(what, sizeof what, "%s W8A8", arch);
    cr_assert_geq(agreement(g, wb, ab, 0, what), 0.999, "%s", what);
    /* mixed, with views at lower activation bits and 2-bit weights */
    for (int i = 0; i < nl; i++) {
        wb[i] = 2 + (i * 3) % 7;
        ab[i] = i == 0 ? 8 : 4 + (i % 5);
    }
    snprintf(what, sizeof what, "%s mixed", arch);
    cr_assert_geq(agreement(g, wb, ab, 0, what), 0.999, "%s", what);
    /* power-of-two scales */
    for (int i = 0; i < nl; i++)
        wb[i] = ab[i] = i % 2 ? 8 : 6;
    snprintf(what, sizeof what, "%s pow2", arch);
    cr_assert_geq(agreement(g, wb, ab, 1, what), 0.999, "%s", what);
    free(wb), free(ab), free(L);
    bp_graph_free(g);
}

Test(intengine, lenet5_int_vs_fakequant) { run_arch("lenet5", 3); }
Test(intengine, resnet8_int_vs_fakequant) { run_arch("resnet8", 4); }
Test(intengine, mobilenetv2_int_vs_fakequant) { run_arch("mobilenetv2", 5); }

/* The reference model (models/resnet8.onnx, trained by `bitplan train`): the
 * integer engine against the simulation at W8A8 and at a mixed plan. */
Test(intengine, reference_resnet8_int_vs_fakequant)
{
    load_data();
    bp_graph *g = NULL;
    cr_assert_eq(bp_onnx_load("models/resnet8.onnx", &g), BP_OK,
                 "the reference model must be present (run from the repository root): %s", bp_last_error());
    bp_layer *L = NULL;
    int nl = 0;
    cr_assert_eq(bp_graph_layers(g, &L, &nl), BP_OK);
    int *wb = malloc(sizeof(int) * nl), *ab = malloc(sizeof(int) * nl);
    for (int i = 0; i < nl; i++)
        wb[i] = ab[i] = 8;
    cr_assert_geq(agreement(g, wb, ab, 0, "reference resnet8 W8A8"), 0.999);
    for (int i = 0; i < nl; i++) {
        wb[i] = i == 0 || i == nl - 1 ? 8 : 4 + i % 3;
        ab[i] = i == 0 ? 8 : 4 + (i + 1) % 3;
    }
    cr_assert_geq(agreement(g, wb, ab, 0, "reference resnet8 mixed"), 0.999);
    free(wb), free(ab), free(L);
    bp_graph_free(g);
}
