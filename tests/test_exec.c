/* The float engine in float: forward of tiny nets against values worked by
 * hand, batch-size independence, a short last batch, and argument errors. */
#include "tests/engine_util.h"

/* x = 1..9 (3x3), W = [[1,2],[3,4]], bias -10, stride 2, pads 1 (all sides).
 * Output 2x2, each window by hand:
 *   (0,0): only x(0,0)=1 under W(1,1)=4                    ->  4 - 10 = -6
 *   (0,1): x(0,1)=2*W(1,0)=3 + x(0,2)=3*W(1,1)=4 = 6 + 12  -> 18 - 10 =  8
 *   (1,0): x(1,0)=4*W(0,1)=2 + x(2,0)=7*W(1,1)=4 = 8 + 28  -> 36 - 10 = 26
 *   (1,1): 5*1 + 6*2 + 8*3 + 9*4 = 77                      -> 77 - 10 = 67
 * then Relu: 0, 8, 26, 67. */
Test(exec, conv_relu_by_hand)
{
    bp_graph *g = bp_graph_new();
    int x = IN(g, 4, D(1), D(1), D(3), D(3));
    float w[4] = {1, 2, 3, 4}, b[1] = {-10};
    int wv = bp_graph_add_param(g, "w", 4, (int64_t[]){1, 1, 2, 2}, w);
    int bv = bp_graph_add_param(g, "b", 1, (int64_t[]){1}, b);
    bp_attrs a = bp_attrs_default();
    a.stride[0] = a.stride[1] = 2;
    a.pads[0] = a.pads[1] = a.pads[2] = a.pads[3] = 1;
    int c = NODE(g, BP_OP_CONV, &a, x, wv, bv);
    int r = NODE(g, BP_OP_RELU, NULL, c);
    NODE(g, BP_OP_FLATTEN, NULL, r);
    bp_exec *ex = bp_exec_new(g, 2, BP_EXEC_GRAD);
    cr_assert_not_null(ex, "%s", bp_last_error());
    bp_real in[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    cr_assert_eq(bp_forward(ex, g->params, in, 1, BP_MODE_INFER), BP_OK, "%s", bp_last_error());
    const float want_c[4] = {-6, 8, 26, 67}, want_r[4] = {0, 8, 26, 67};
    for (int i = 0; i < 4; i++) {
        cr_expect_float_eq(bp_exec_act(ex, c)[i], want_c[i], 1e-5, "conv[%d]", i);
        cr_expect_float_eq(bp_exec_act(ex, r)[i], want_r[i], 1e-5, "relu[%d]", i);
    }
    /* loss with label 2: log(sum exp(z - 67)) - (26 - 67) = 41 + log(1 + e^-41 + ...) */
    double loss;
    int correct;
    cr_assert_eq(bp_loss_softmax_ce(ex, (int[]){2}, &loss, &correct), BP_OK);
    cr_expect_float_eq(loss, 41.0, 1e-9);
    cr_expect_eq(correct, 0);
    int nd;
    const int64_t *d = bp_exec_dims(ex, c, &nd);
    cr_expect(nd == 4 && d[0] == 1 && d[1] == 1 && d[2] == 2 && d[3] == 2);
    bp_exec_free(ex);
    bp_graph_free(g);
}

/* Gemm with transB, alpha, beta and a row-broadcast C, by hand:
 * A = [[1,2],[3,4]], B = [[1,0],[1,1],[0,2]] (3x2, used transposed),
 * A B^T = [[1,3,4],[3,7,8]]; 2 * that + 0.5 * [1,2,3] = [[2.5,7,9.5],[6.5,15,17.5]]. */
Test(exec, gemm_by_hand)
{
    bp_graph *g = bp_graph_new();
    int x = IN(g, 2, D(1), D(2));
    float bw[6] = {1, 0, 1, 1, 0, 2}, cw[3] = {1, 2, 3};
    int bv = bp_graph_add_param(g, "B", 2, (int64_t[]){3, 2}, bw);
    int cv = bp_graph_add_param(g, "C", 1, (int64_t[]){3}, cw);
    bp_attrs a = bp_attrs_default();
    a.trans_b = 1;
    a.alpha = 2;
    a.beta = 0.5f;
    int y = NODE(g, BP_OP_GEMM, &a, x, bv, cv);
    bp_exec *ex = bp_exec_new(g, 2, 0);
    bp_real in[4] = {1, 2, 3, 4};
    cr_assert_eq(bp_forward(ex, g->params, in, 2, BP_MODE_INFER), BP_OK, "%s", bp_last_error());
    const float want[6] = {2.5f, 7, 9.5f, 6.5f, 15, 17.5f};
    for (int i = 0; i < 6; i++)
        cr_expect_float_eq(bp_exec_act(ex, y)[i], want[i], 1e-5, "y[%d]", i);
    bp_exec_free(ex);
    bp_graph_free(g);
}

/* A small conv/BN/pool/residual net: the logits of each sample do not depend
 * on which batch it runs in, nor on the batch size. */
static bp_graph *net(void)
{
    bp_graph *g = bp_graph_new();
    bp_attrs p1 = bp_attrs_default();
    p1.pads[0] = p1.pads[1] = p1.pads[2] = p1.pads[3] = 1;
    int x = IN(g, 4, D(1), D(1), D(10), D(10));
    int h = NODE(g, BP_OP_CONV, &p1, x, PAR(g, 4, D(8), D(1), D(3), D(3)));
    h = NODE(g, BP_OP_RELU, NULL, bn_(g, h, 8, NULL));
    int b = NODE(g, BP_OP_CONV, &p1, h, PAR(g, 4, D(8), D(8), D(3), D(3)), PAR(g, 1, D(8)));
    h = NODE(g, BP_OP_ADD, NULL, h, bn_(g, b, 8, NULL));
    bp_attrs mp = bp_attrs_default();
    mp.kernel[0] = mp.kernel[1] = 2;
    mp.stride[0] = mp.stride[1] = 2;
    h = NODE(g, BP_OP_MAXPOOL, &mp, NODE(g, BP_OP_RELU, NULL, h));
    h = NODE(g, BP_OP_FLATTEN, NULL, NODE(g, BP_OP_GAP, NULL, h));
    NODE(g, BP_OP_GEMM, NULL, h, PAR(g, 2, D(8), D(4)), PAR(g, 1, D(4)));
    init_params(g, 7);
    return g;
}

Test(exec, batch_independence_and_short_batch)
{
    bp_graph *g = net();
    size_t per = g->values[g->input].numel;
    bp_real *x = malloc(5 * per * sizeof *x);
    for (size_t i = 0; i < 5 * per; i++)
        x[i] = (bp_real)urand();
    bp_exec *ex5 = bp_exec_new(g, 5, BP_EXEC_GRAD);
    cr_assert_not_null(ex5, "%s", bp_last_error());
    cr_assert_eq(bp_forward(ex5, g->params, x, 5, BP_MODE_INFER), BP_OK, "%s", bp_last_error());
    float all[20];
    for (int i = 0; i < 20; i++)
        all[i] = bp_exec_act(ex5, g->output)[i];
    /* one sample at a time on a batch-1 executor */
    bp_exec *ex1 = bp_exec_new(g, 1, 0);
    for (int s = 0; s < 5; s++) {
        cr_assert_eq(bp_forward(ex1, g->params, x + s * per, 1, BP_MODE_INFER), BP_OK);
        for (int k = 0; k < 4; k++)
            cr_expect_float_eq(bp_exec_act(ex1, g->output)[k], all[s * 4 + k], 1e-5,
                               "sample %d logit %d", s, k);
    }
    /* a short last batch (2 of 5) on the batch-5 executor, then a full one again */
    cr_assert_eq(bp_forward(ex5, g->params, x + 3 * per, 2, BP_MODE_INFER), BP_OK);
    cr_expect_eq(bp_exec_batch(ex5), 2);
    int nd;
    cr_expect_eq(bp_exec_dims(ex5, g->output, &nd)[0], 2);
    for (int k = 0; k < 8; k++)
        cr_expect_float_eq(bp_exec_act(ex5, g->output)[k], all[12 + k], 1e-5, "short batch %d", k);
    double l2;
    cr_assert_eq(bp_loss_softmax_ce(ex5, (int[]){1, 3}, &l2, NULL), BP_OK);
    bp_real *gp = calloc(g->nparams, sizeof *gp);
    cr_assert_eq(bp_backward(ex5, g->params, gp), BP_OK, "%s", bp_last_error());
    cr_assert_eq(bp_forward(ex5, g->params, x, 5, BP_MODE_INFER), BP_OK);
    for (int k = 0; k < 20; k++)
        cr_expect_float_eq(bp_exec_act(ex5, g->output)[k], all[k], 1e-6, "full again %d", k);
    free(gp);
    free(x);
    bp_exec_free(ex1);
    bp_exec_free(ex5);
    bp_graph_free(g);
}

Test(exec, argument_errors)
{
    bp_graph *g = net();
    bp_exec *ex = bp_exec_new(g, 2, 0);
    bp_real x[200] = {0};
    cr_expect_eq(bp_forward(ex, g->params, x, 3, BP_MODE_INFER), BP_ERR_ARG);
    cr_expect_eq(bp_forward(ex, g->params, x, 0, BP_MODE_INFER), BP_ERR_ARG);
    cr_assert_eq(bp_forward(ex, g->params, x, 2, BP_MODE_INFER), BP_OK);
    cr_expect_eq(bp_loss_softmax_ce(ex, (int[]){0, 4}, NULL, NULL), BP_ERR_ARG);
    cr_expect_eq(bp_loss_softmax_ce(ex, (int[]){0, -1}, NULL, NULL), BP_ERR_ARG);
    cr_expect_eq(bp_backward(ex, g->params, NULL), BP_ERR_ARG, "no gradient buffers kept");
    cr_expect_eq(bp_rop_forward(ex, g->params, NULL, -1, NULL), BP_ERR_ARG);
    cr_expect_null(bp_exec_new(g, 0, 0));
    bp_exec_free(ex);
    bp_exec_free(NULL);
    bp_graph_free(g);
}

/* A NaN in the weights surfaces as a numeric error at the loss. */
Test(exec, nan_loss_is_an_error)
{
    bp_graph *g = net();
    g->params[0] = NAN;
    bp_exec *ex = bp_exec_new(g, 1, 0);
    bp_real x[100];
    for (int i = 0; i < 100; i++)
        x[i] = (bp_real)urand();
    cr_assert_eq(bp_forward(ex, g->params, x, 1, BP_MODE_INFER), BP_OK);
    cr_expect_eq(bp_loss_softmax_ce(ex, (int[]){0}, NULL, NULL), BP_ERR_NUMERIC);
    bp_exec_free(ex);
    bp_graph_free(g);
}
