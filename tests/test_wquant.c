/* The weight quantizer against examples worked by hand: scales, codes,
 * round-half-away-from-zero ties, the clamp at −2^(b−1) (reached under MSE
 * clipping), all-zero channels, channel layouts of Conv/Gemm weights, and MSE
 * clipping never worse than max-abs. */
#include <criterion/criterion.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <math.h>

#include "quant/wquant.h"

/* 4 bits: qmax = 7, S = 1.75 / 7 = 0.25 exactly, so w/S below are exact:
 *   1.75 -> 7;  -0.875 -> -3.5 -> -4 (tie, away from zero);
 *   0.125 -> 0.5 -> 1 (tie);  0.625 -> 2.5 -> 3 (tie);  -0.0625 -> -0.25 -> 0.
 * Second channel all zero: S = 0, q = 0. */
Test(wquant, hand_example_4bit_ties)
{
    bp_real w[10] = {1.75, -0.875, 0.125, 0.625, -0.0625, 0, 0, 0, 0, 0};
    bp_wq_shape s = {1, 2, 5};
    bp_real deq[10];
    double sc[2], err2;
    int32_t q[10];
    cr_assert_eq(bp_wquant_tensor(w, s, 1, 4, BP_CLIP_MAXABS, deq, sc, q, &err2), BP_OK);
    cr_assert_eq(sc[0], 0.25);
    cr_assert_eq(sc[1], 0.0);
    int32_t qe[10] = {7, -4, 1, 3, 0, 0, 0, 0, 0, 0};
    double de[10] = {1.75, -1.0, 0.25, 0.75, 0, 0, 0, 0, 0, 0};
    for (int i = 0; i < 10; i++) {
        cr_assert_eq(q[i], qe[i], "code %d: %d, expected %d", i, q[i], qe[i]);
        cr_assert_eq((double)deq[i], de[i], "value %d", i);
    }
    /* 0 + 0.125² + 0.125² + 0.125² + 0.0625² */
    cr_assert_float_eq(err2, 3 * 0.015625 + 0.00390625, 1e-15);
}

/* Per tensor: one scale from the tensor's max. 3 bits, qmax = 3,
 * S = 1.5 / 3 = 0.5: 1.5 -> 3, -0.25 -> -0.5 -> -1, 0.3 -> 0.6 -> 1,
 * -1.2 -> -2.4 -> -2. */
Test(wquant, per_tensor)
{
    bp_real w[4] = {1.5, -0.25, 0.3f, -1.2f};
    bp_wq_shape s = {1, 2, 2};
    double sc, err2;
    int32_t q[4];
    cr_assert_eq(bp_wquant_tensor(w, s, 0, 3, BP_CLIP_MAXABS, NULL, &sc, q, &err2), BP_OK);
    cr_assert_eq(sc, 0.5);
    cr_assert(q[0] == 3 && q[1] == -1 && q[2] == 1 && q[3] == -2, "%d %d %d %d", q[0], q[1], q[2], q[3]);
    double e = 0.25 * 0.25 + pow(0.5 - (double)0.3f, 2) + pow(-1.0 + (double)1.2f, 2);
    cr_assert(fabs(err2 - e) < 1e-12, "%g vs %g", err2, e);
}

/* 2 bits (levels −2..1), w = {−1, 0.4, 0.4, 0.4, 0.4}.
 * Max-abs: S = 1, 0.4 -> 0: ‖ΔW‖² = 4·0.16 = 0.64.
 * MSE: for α in [0.4, 2/3) the −1 maps to the clamped code −2 (−1/α in
 * [−2.5, −1.5]) and 0.4 to 1, so f(α) = (1 − 2α)² + 4(0.4 − α)², minimal
 * at α = 0.45 (on the grid k/200) with f = 0.01 + 0.01 = 0.02, codes
 * {−2, 1, 1, 1, 1}: the clamp at −2^(b−1) is reached. */
Test(wquant, mse_clipping_hand_example)
{
    bp_real w[5] = {-1, 0.4f, 0.4f, 0.4f, 0.4f};
    bp_wq_shape s = {1, 1, 5};
    double sc, e_max, e_mse;
    int32_t q[5];
    cr_assert_eq(bp_wquant_tensor(w, s, 1, 2, BP_CLIP_MAXABS, NULL, &sc, q, &e_max), BP_OK);
    cr_assert_eq(sc, 1.0);
    cr_assert(q[0] == -1 && q[1] == 0);
    cr_assert(fabs(e_max - 0.64) < 1e-6, "%g", e_max);
    cr_assert_eq(bp_wquant_tensor(w, s, 1, 2, BP_CLIP_MSE, NULL, &sc, q, &e_mse), BP_OK);
    cr_assert(fabs(sc - 0.45) < 1e-12, "scale %.15g", sc);
    cr_assert(q[0] == -2 && q[1] == 1 && q[4] == 1, "%d %d", q[0], q[1]);
    cr_assert(fabs(e_mse - 0.02) < 1e-6, "%g", e_mse);
}

/* Positive side: w = {1, 0.4 ×4}, 2 bits. The 1 clamps to code 1 for α < 2/3;
 * f(α) = (1 − α)² + 4(0.4 − α)² on [0.27, 0.8) is minimal at α = 0.52:
 * 0.2304 + 4·0.0144 = 0.288. */
Test(wquant, mse_clamps_positive_side)
{
    bp_real w[5] = {1, 0.4f, 0.4f, 0.4f, 0.4f};
    bp_wq_shape s = {1, 1, 5};
    double sc, e;
    int32_t q[5];
    cr_assert_eq(bp_wquant_tensor(w, s, 1, 2, BP_CLIP_MSE, NULL, &sc, q, &e), BP_OK);
    cr_assert(fabs(sc - 0.52) < 1e-12, "scale %.15g", sc);
    cr_assert(q[0] == 1 && q[1] == 1);
    cr_assert(fabs(e - 0.288) < 1e-6, "%g", e);
}

/* MSE clipping is never worse than max-abs, on heavy-tailed random channels,
 * and err2 equals the squared error of the dequantized output, which equals
 * code × scale. */
Test(wquant, mse_never_worse_and_consistent)
{
    enum { C = 8, K = 37, NW = C * K };
    gsl_rng *r = gsl_rng_alloc(gsl_rng_taus2);
    gsl_rng_set(r, 5);
    bp_real w[NW], deq[NW];
    for (int i = 0; i < NW; i++)
        w[i] = (bp_real)(gsl_ran_tdist(r, 3.0) * 0.05);
    bp_wq_shape s = {1, C, K};
    int bits[] = {2, 3, 4, 5, 6, 8, 12};
    int better = 0;
    for (size_t b = 0; b < sizeof bits / sizeof *bits; b++) {
        double e_max, e_mse, sc[C];
        int32_t q[NW];
        cr_assert_eq(bp_wquant_tensor(w, s, 1, bits[b], BP_CLIP_MAXABS, NULL, NULL, NULL, &e_max), BP_OK);
        cr_assert_eq(bp_wquant_tensor(w, s, 1, bits[b], BP_CLIP_MSE, deq, sc, q, &e_mse), BP_OK);
        cr_assert(e_mse <= e_max, "%d bits: mse %g > maxabs %g", bits[b], e_mse, e_max);
        better += e_mse < e_max;
        double e = 0;
        for (int c = 0; c < C; c++)
            for (int k = 0; k < K; k++) {
                int i = c * K + k;
                double d = q[i] * sc[c] - (double)w[i]; /* in double: deq is rounded to bp_real */
                e += d * d;
                cr_assert(fabs((double)deq[i] - q[i] * sc[c]) <= 1e-6 * fabs(q[i] * sc[c])); /* deq is bp_real */
                cr_assert(q[i] >= -(1 << (bits[b] - 1)) && q[i] <= (1 << (bits[b] - 1)) - 1);
            }
        cr_assert(fabs(e - e_mse) <= 1e-6 * e_mse + 1e-12, "err2 %g vs recomputed %g", e_mse, e);
    }
    cr_assert(better >= 3, "heavy tails: clipping should help at low bits (%d of 7)", better);
    gsl_rng_free(r);
}

/* Channel layout of real layers: Conv (Cout first) and Gemm without transB
 * (K, M: the output channel is the column). */
Test(wquant, layer_layouts)
{
    bp_graph *g = bp_graph_new();
    int64_t xd[2] = {1, 3}, wd[2] = {3, 2};
    int x = bp_graph_add_input(g, "x", 2, xd);
    float wv[6] = {1, 0.1f, -0.5f, 0.3f, 0.25f, -0.4f}; /* (K = 3, M = 2) */
    int wi = bp_graph_add_param(g, "fc.weight", 2, wd, wv);
    bp_attrs a = bp_attrs_default();
    int in[2] = {x, wi};
    int y = bp_graph_add_node(g, BP_OP_GEMM, "fc", in, 2, "y", &a);
    cr_assert(y >= 0, "%s", bp_last_error());
    g->input = x;
    g->output = y;
    bp_layer *ls;
    int nl;
    cr_assert_eq(bp_graph_layers(g, &ls, &nl), BP_OK);
    cr_assert_eq(nl, 1);
    bp_wq_shape s;
    cr_assert_eq(bp_wq_shape_of_layer(g, &ls[0], &s), BP_OK);
    cr_assert(s.outer == 3 && s.nchan == 2 && s.inner == 1);
    /* 3 bits: column 0 {1, −0.5, 0.25}: S = 1/3, codes 3, −1.5 -> −2, 0.75 -> 1;
     * column 1 {0.1, 0.3, −0.4}: S = 0.4/3, codes 0.75 -> 1, 2.25 -> 2, −3. */
    double sc[2], err2;
    int32_t q[6];
    cr_assert_eq(bp_wquant_tensor(g->params + g->values[wi].offset, s, 1, 3, BP_CLIP_MAXABS, NULL,
                                  sc, q, &err2), BP_OK);
    cr_assert(fabs(sc[0] - 1.0 / 3) < 1e-12 && fabs(sc[1] - (double)0.4f / 3) < 1e-12);
    int32_t qe[6] = {3, 1, -2, 2, 1, -3};
    for (int i = 0; i < 6; i++)
        cr_assert_eq(q[i], qe[i], "code %d: %d vs %d", i, q[i], qe[i]);
    int bits[2] = {3, 8};
    double dw2[2];
    cr_assert_eq(bp_wquant_layer_err2(g, &ls[0], bits, 2, BP_CLIP_MAXABS, dw2), BP_OK);
    cr_assert(fabs(dw2[0] - err2) < 1e-15 && dw2[1] < dw2[0]);
    free(ls);
    bp_graph_free(g);
}

Test(wquant, errors)
{
    bp_real w[4] = {1, 2, NAN, 4};
    bp_wq_shape s = {1, 1, 4};
    double e;
    cr_assert_eq(bp_wquant_tensor(w, s, 1, 1, BP_CLIP_MAXABS, NULL, NULL, NULL, &e), BP_ERR_ARG);
    cr_assert_eq(bp_wquant_tensor(w, s, 1, 17, BP_CLIP_MAXABS, NULL, NULL, NULL, &e), BP_ERR_ARG);
    cr_assert_eq(bp_wquant_tensor(w, s, 1, 4, BP_CLIP_MAXABS, NULL, NULL, NULL, &e), BP_ERR_NUMERIC);
    cr_assert(strstr(bp_last_error(), "element 2") != NULL, "%s", bp_last_error());
    cr_assert_eq(bp_clip_parse("mse"), BP_CLIP_MSE);
    cr_assert_eq(bp_clip_parse("maxabs"), BP_CLIP_MAXABS);
    cr_assert_eq(bp_clip_parse("x"), -1);
}
