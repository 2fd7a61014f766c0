/* test_quantplan.c — accumulator bounds (hand-worked and brute force), the
 * plan -> bits adapter (names, hashes, missing layers), calibration clipping
 * choices on known distributions. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ilp/plan.h"
#include "quant/accum.h"
#include "quant/calib.h"
#include "quant/plan_bits.h"
#include "train/arch.h"

/* One conv layer: 2 output channels, 1 input channel, 1x3 kernel. */
static bp_graph *tiny_conv(const float *w6)
{
    bp_graph *g = bp_graph_new();
    int64_t xd[4] = {1, 1, 1, 5}, wd[4] = {2, 1, 1, 3};
    int x = bp_graph_add_input(g, "x", 4, xd);
    int w = bp_graph_add_param(g, "c.weight", 4, wd, w6);
    bp_attrs a = bp_attrs_default();
    int in[2] = {x, w};
    int y = bp_graph_add_node(g, BP_OP_CONV, "c", in, 2, "y", &a);
    cr_assert(y >= 0, "%s", bp_last_error());
    g->input = x;
    g->output = y;
    return g;
}

Test(accum, hand_worked_bounds)
{
    /* channel 0: [1, -0.5, 0.25] at 4 bits: S = 1/7, codes [7, -4, 2] (-3.5 -> -4
     * half away from zero, 1.75 -> 2), L1 = 13; channel 1: [0.1, 0.1, 0.1]:
     * codes [7, 7, 7], L1 = 21. At 8-bit activations the bound is 21·255 = 5355,
     * which needs ⌈log2 5356⌉ + 1 = 13 + 1 = 14 bits; worst case 4 + 8 + ⌈log2 3⌉ = 14. */
    const float w[6] = {1.0f, -0.5f, 0.25f, 0.1f, 0.1f, 0.1f};
    bp_graph *g = tiny_conv(w);
    bp_layer *L;
    int nl;
    cr_assert_eq(bp_graph_layers(g, &L, &nl), BP_OK);
    cr_assert_eq(nl, 1);
    int ov = -1, need = 0, worst = 0;
    cr_assert_eq(bp_acc_can_overflow(g, &L[0], 4, 8, 16, BP_CLIP_MAXABS, &ov, &need, &worst), BP_OK);
    cr_assert_eq(need, 14);
    cr_assert_eq(worst, 14);
    cr_assert_eq(ov, 0);
    cr_assert_eq(bp_acc_can_overflow(g, &L[0], 4, 8, 13, BP_CLIP_MAXABS, &ov, &need, NULL), BP_OK);
    cr_assert_eq(ov, 1);
    int64_t bound;
    const int32_t codes[6] = {7, -4, 2, 7, 7, 7};
    cr_assert_eq(bp_acc_bits_channel(codes, 2, 3, 8, &bound), 14);
    cr_assert_eq(bound, 21 * 255);
    cr_assert_eq(bp_acc_bits_worst(8, 8, 576), 8 + 8 + 10);
    cr_assert_eq(bp_acc_bits_worst(8, 8, 512), 8 + 8 + 9);
    cr_assert_eq(bp_acc_bits_worst(2, 2, 1), 4);
    /* table form */
    int cw[3] = {2, 4, 8}, ca[3] = {2, 8, 8};
    uint8_t t[3];
    cr_assert_eq(bp_acc_table(g, L, 1, cw, ca, 3, 14, BP_CLIP_MAXABS, t), BP_OK);
    cr_assert_eq(t[0], 0);
    cr_assert_eq(t[1], 0);
    cr_assert_eq(t[2], 1); /* 8-bit codes [127,-64,32],[127,127,127]: 381·255 needs 18 bits */
    free(L);
    bp_graph_free(g);
}

Test(accum, brute_force_reaches_within_bound)
{
    /* For random int codes and every activation vector at 2..3 bits, the
     * largest |Σ| found by enumeration never exceeds the per-channel bound,
     * and the bits the bound asks for hold it. */
    uint32_t s = 12345;
    for (int trial = 0; trial < 200; trial++) {
        int k = 1 + trial % 4, ab = 2 + trial % 2;
        int32_t c[4];
        for (int i = 0; i < k; i++) {
            s = s * 1103515245u + 12345u;
            c[i] = (int32_t)((s >> 16) % 255) - 127;
        }
        int64_t bound;
        int bits = bp_acc_bits_channel(c, 1, k, ab, &bound);
        int levels = 1 << ab, total = 1;
        for (int i = 0; i < k; i++)
            total *= levels;
        int64_t best = 0;
        for (int v = 0; v < total; v++) {
            int64_t sum = 0, r = v;
            for (int i = 0; i < k; i++, r /= levels)
                sum += c[i] * (r % levels);
            best = llabs(sum) > best ? llabs(sum) : best;
        }
        cr_assert_leq(best, bound);
        cr_assert_leq(best, ((int64_t)1 << (bits - 1)) - 1, "%lld does not fit %d bits", (long long)best, bits);
        /* the bound is tight when all codes share a sign */
        int same = 1;
        for (int i = 1; i < k; i++)
            same &= (c[i] >= 0) == (c[0] >= 0);
        if (same)
            cr_assert_eq(best, bound);
    }
}

Test(plan_bits, names_hash_and_missing_layers)
{
    bp_graph *g = NULL;
    cr_assert_eq(bp_arch_build("lenet5", 1, 28, 28, 10, 1, &g), BP_OK);
    bp_layer *L;
    int nl;
    cr_assert_eq(bp_graph_layers(g, &L, &nl), BP_OK);
    bp_plan p;
    cr_assert_eq(bp_plan_init(&p, nl), BP_OK);
    for (int i = 0; i < nl; i++) {
        /* plan in reverse order: matching is by name */
        snprintf(p.layers[i].name, sizeof p.layers[i].name, "%s", L[nl - 1 - i].name);
        p.layers[i].wbits = 2 + i;
        p.layers[i].abits = 8 - i;
    }
    int *wb = calloc(nl, sizeof(int)), *ab = calloc(nl, sizeof(int));
    cr_assert_eq(bp_plan_to_bits(&p, "p.json", g, wb, ab), BP_OK, "%s", bp_last_error());
    for (int l = 0; l < nl; l++) {
        cr_assert_eq(wb[l], 2 + (nl - 1 - l));
        cr_assert_eq(ab[l], 8 - (nl - 1 - l));
    }
    /* hash: known on both sides and different */
    memset(g->sha256, 0xAB, 32);
    snprintf(p.model_sha256, sizeof p.model_sha256, "%064d", 0);
    cr_assert_eq(bp_plan_to_bits(&p, "p.json", g, wb, ab), BP_ERR_MISMATCH);
    cr_assert(strstr(bp_last_error(), "sha256"), "%s", bp_last_error());
    p.model_sha256[0] = 0; /* unknown: accepted */
    cr_assert_eq(bp_plan_to_bits(&p, "p.json", g, wb, ab), BP_OK);
    /* a layer the model does not have */
    char keep[160];
    snprintf(keep, sizeof keep, "%s", p.layers[0].name);
    snprintf(p.layers[0].name, sizeof p.layers[0].name, "features.99");
    cr_assert_eq(bp_plan_to_bits(&p, "p.json", g, wb, ab), BP_ERR_MISMATCH);
    cr_assert(strstr(bp_last_error(), "features.99"), "%s", bp_last_error());
    snprintf(p.layers[0].name, sizeof p.layers[0].name, "%s", keep);
    /* a model layer without bits */
    p.nlayers--;
    cr_assert_eq(bp_plan_to_bits(&p, "p.json", g, wb, ab), BP_ERR_MISMATCH);
    p.nlayers++;
    bp_plan_free(&p);
    free(wb), free(ab), free(L);
    bp_graph_free(g);
}

Test(calib, clipping_choices)
{
    /* 100000 values uniform on [0, 1) plus one outlier at 50 */
    const size_t n = 100001;
    bp_real *x = malloc(sizeof(bp_real) * n);
    for (size_t i = 0; i < n - 1; i++)
        x[i] = (bp_real)((double)i / (n - 1));
    x[n - 1] = 50;
    bp_calib_stats *s = malloc(sizeof *s);
    bp_calib_reset(s);
    bp_calib_minmax(s, x, n);
    bp_calib_hist(s, x, n);
    cr_assert_eq(s->min, 0);
    cr_assert_eq(s->max, 50);
    cr_assert_eq(bp_calib_clip(s, BP_CALIB_MINMAX, 99.99, 8, 0), 50);
    /* 99.99th percentile of |x|: within one bin (50/2048) of 0.9999 */
    double p = bp_calib_clip(s, BP_CALIB_PERCENTILE, 99.99, 8, 0);
    cr_assert(fabs(p - 0.9999) <= 50.0 / BP_CALIB_BINS + 1e-9, "percentile clip %g", p);
    /* MSE: the outlier is not worth 50x coarser steps */
    double c = bp_calib_clip(s, BP_CALIB_MSE, 0, 4, 0);
    cr_assert(c < 5 && c > 0.5, "mse clip %g", c);
    free(s), free(x);
}

/* The evaluation report on the reference LeNet-5: consistent numbers and a
 * JSON object with the documented fields; size and BOPs recomputed here from
 * the layer table. */
#include "core/onnx.h"
#include "quant/evalplan.h"

Test(evalplan, report_on_reference_lenet5)
{
    bp_graph *g = NULL;
    cr_assert_eq(bp_onnx_load("models/lenet5.onnx", &g), BP_OK,
                 "the reference model must be present (run from the repository root): %s", bp_last_error());
    bp_layer *L;
    int nl;
    cr_assert_eq(bp_graph_layers(g, &L, &nl), BP_OK);
    int wb[16], ab[16];
    for (int i = 0; i < nl; i++) {
        wb[i] = i % 2 ? 4 : 8;
        ab[i] = 8;
    }
    bp_evalq_opts o = bp_evalq_opts_default();
    o.limit = 200;
    o.calib = 64;
    o.acc_bits = 16;
    bp_evalq_report r;
    cr_assert_eq(bp_evalq_run(g, wb, ab, NULL, &o, &r), BP_OK, "%s", bp_last_error());
    cr_assert_eq(r.n, 200);
    cr_assert_eq(r.nlayers, nl);
    cr_assert(r.acc_float > 0.7 && r.acc_int > 0.6, "float %g int %g", r.acc_float, r.acc_int);
    cr_assert_eq(r.acc_int, r.acc_fq); /* integer == dyadic simulation, value for value */
    cr_assert_eq(r.agree, 1.0);
    double size = 0, bops = 0;
    for (int i = 0; i < nl; i++) {
        size += ceil((double)L[i].params * wb[i] / 8) + 12.0 * (double)L[i].cout;
        bops += (double)L[i].macs * wb[i] * ab[i];
        cr_assert_eq(r.layers[i].acc_worst, bp_acc_bits_worst(wb[i], ab[i], L[i].fan_in));
        cr_assert_leq(r.layers[i].acc_need, r.layers[i].acc_worst);
        cr_assert_eq(r.layers[i].overflow, r.layers[i].acc_need > 16);
    }
    cr_assert_float_eq(r.size_bytes, size, 1e-6);
    cr_assert_float_eq(r.bops, bops, 1e-3);
    json_t *j = bp_evalq_json(&r);
    cr_assert_str_eq(json_string_value(json_object_get(j, "format")), "bitplan-eval");
    json_t *acc = json_object_get(j, "accuracy");
    cr_assert_float_eq(json_real_value(json_object_get(acc, "integer")), r.acc_int, 1e-12);
    cr_assert(json_is_null(json_object_get(acc, "pow2_integer")));
    cr_assert_eq(json_array_size(json_object_get(j, "layers")), (size_t)nl);
    json_decref(j);
    bp_evalq_free(&r);
    free(L);
    bp_graph_free(g);
}
