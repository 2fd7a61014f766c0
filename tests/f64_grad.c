/* Gradient checks of the float engine in double precision: every op alone
 * (several attribute settings each) and whole small nets, against central
 * finite differences of the loss. Reference: the FD quotient
 * (L(p + h e_i) - L(p - h e_i)) / 2h with h = 1e-5, which is accurate to about
 * 1e-10 relative in double; the engine's gradient must agree per tensor to a
 * relative error of 1e-6. */
#include "tests/engine_util.h"

#define H 1e-5
#define TOL 1e-6

/* Checks d loss / d input and d loss / d every trainable parameter, on every
 * `every`-th element (1 = all; larger keeps big cases fast). */
static void check_grad_every(bp_graph *g, int n, bp_mode mode, uint64_t seed, size_t every);
static void check_grad(bp_graph *g, int n, bp_mode mode, uint64_t seed)
{
    check_grad_every(g, n, mode, seed, 1);
}

/* Keeps only the sampled coordinates of a (analytic) and b (FD) in place. */
static size_t sample(double *a, double *b, size_t n, size_t every)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i += every, k++) {
        a[k] = a[i];
        b[k] = b[i];
    }
    return k;
}

static void check_grad_every(bp_graph *g, int n, bp_mode mode, uint64_t seed, size_t every)
{
    init_params(g, seed);
    bp_exec *ex = bp_exec_new(g, n, BP_EXEC_GRAD);
    cr_assert_not_null(ex, "%s", bp_last_error());
    size_t nx = input_numel(g, n);
    bp_real *x = malloc(nx * sizeof *x);
    for (size_t i = 0; i < nx; i++)
        x[i] = (bp_real)(1.3 * urand());
    int lab[256];
    loss_of(ex, g, x, n, (int[256]){0}, mode); /* to learn the output rows */
    make_labels(ex, g, lab, 256);
    /* a backward on other data first, so that stale gradient buffers would
     * show (each backward must overwrite or clear what the last one left) */
    bp_real *x2 = malloc(nx * sizeof *x2), *gp2 = calloc(g->nparams, sizeof *gp2);
    for (size_t i = 0; i < nx; i++)
        x2[i] = (bp_real)(0.5 * x[i] + 0.3);
    loss_of(ex, g, x2, n, lab, mode);
    cr_assert_eq(bp_backward(ex, g->params, gp2), BP_OK, "%s", bp_last_error());
    free(x2);
    free(gp2);
    loss_of(ex, g, x, n, lab, mode);
    bp_real *gp = calloc(g->nparams, sizeof *gp);
    cr_assert_eq(bp_backward(ex, g->params, gp), BP_OK, "%s", bp_last_error());
    bp_real *gx = malloc(nx * sizeof *gx);
    memcpy(gx, bp_exec_grad(ex, g->input), nx * sizeof *gx);

    /* input */
    double *fd = calloc(nx + g->nparams, sizeof *fd);
    for (size_t i = 0; i < nx; i += every) {
        bp_real keep = x[i];
        x[i] = keep + H;
        double lp = loss_of(ex, g, x, n, lab, mode);
        x[i] = keep - H;
        double lm = loss_of(ex, g, x, n, lab, mode);
        x[i] = keep;
        fd[i] = (lp - lm) / (2 * H);
    }
    size_t kx = sample(gx, fd, nx, every);
    double e = rel_err(gx, fd, kx);
    cr_expect_leq(e, TOL, "d loss/d input: relative error %.3g (|fd| = %.3g)", e, norm2(fd, kx));
    cr_assert_gt(norm2(fd, kx), 1e-8, "input gradient vanishes: the check would be empty");

    /* parameters */
    int checked = 0;
    for (int v = 0; v < g->nvalues; v++) {
        bp_value *val = &g->values[v];
        if (val->kind != BP_VAL_PARAM || is_bn_stat(g, v))
            continue;
        bp_real *p = g->params + val->offset;
        for (size_t i = 0; i < val->numel; i += every) {
            bp_real keep = p[i];
            p[i] = keep + H;
            double lp = loss_of(ex, g, x, n, lab, mode);
            p[i] = keep - H;
            double lm = loss_of(ex, g, x, n, lab, mode);
            p[i] = keep;
            fd[i] = (lp - lm) / (2 * H);
        }
        size_t k = sample(gp + val->offset, fd, val->numel, every);
        e = rel_err(gp + val->offset, fd, k);
        cr_expect_leq(e, TOL, "d loss/d %s: relative error %.3g (|fd| = %.3g)", val->name, e,
                      norm2(fd, k));
        checked++;
    }
    (void)checked;
    free(fd);
    free(gx);
    free(gp);
    free(x);
    bp_exec_free(ex);
    bp_graph_free(g);
}

/* Flattens a 4-D activation into logits. */
static int logits(bp_graph *g, int y)
{
    if (g->values[y].ndim == 2)
        return y;
    return NODE(g, BP_OP_FLATTEN, NULL, y);
}

static void conv_case_every(int C, int H_, int W_, int M, int k, int group, int stride, int pt,
                            int pl, int pb, int pr, int dil, int bias, size_t every)
{
    bp_graph *g = bp_graph_new();
    int x = IN(g, 4, D(1), D(C), D(H_), D(W_));
    int w = PAR(g, 4, D(M), D(C / group), D(k), D(k));
    bp_attrs a = bp_attrs_default();
    a.group = group;
    a.stride[0] = a.stride[1] = stride;
    a.pads[0] = pt, a.pads[1] = pl, a.pads[2] = pb, a.pads[3] = pr;
    a.dilation[0] = a.dilation[1] = dil;
    int y = bias ? NODE(g, BP_OP_CONV, &a, x, w, PAR(g, 1, D(M))) : NODE(g, BP_OP_CONV, &a, x, w);
    logits(g, y);
    check_grad_every(g, 2, BP_MODE_INFER, 11 + C + k + group, every);
}

static void conv_case(int C, int H_, int W_, int M, int k, int group, int stride, int pt, int pl,
                      int pb, int pr, int dil, int bias)
{
    conv_case_every(C, H_, W_, M, k, group, stride, pt, pl, pb, pr, dil, bias, 1);
}

Test(grad_op, conv_stride2_asym_pads_bias) { conv_case(3, 7, 6, 4, 3, 1, 2, 1, 0, 2, 1, 1, 1); }
Test(grad_op, conv_groups_dilation) { conv_case(4, 7, 7, 6, 3, 2, 1, 2, 2, 2, 2, 2, 0); }
Test(grad_op, conv_depthwise_stride2) { conv_case(3, 6, 6, 3, 3, 3, 2, 1, 1, 1, 1, 1, 1); }
Test(grad_op, conv_depthwise_multiplier) { conv_case(3, 5, 5, 6, 3, 3, 1, 1, 1, 1, 1, 1, 1); }
/* stride 1 with output = input size but lopsided pads: the shifted-plane path */
Test(grad_op, conv_same_asym_pads) { conv_case(2, 5, 6, 3, 3, 1, 1, 0, 2, 2, 0, 1, 1); }
/* big enough for the per-sample OpenMP path (private dW sums per thread);
 * every 13th element is checked to keep it fast */
Test(grad_op, conv_threaded_batch) { conv_case_every(6, 14, 14, 8, 3, 1, 1, 1, 1, 1, 1, 1, 1, 13); }
Test(grad_op, conv_1x1_nobias) { conv_case(5, 4, 4, 3, 1, 1, 1, 0, 0, 0, 0, 1, 0); }

static void gemm_case(int ta, int tb, int cmode)
{
    bp_graph *g = bp_graph_new();
    int n = 3, K = 5, N = 4;
    /* trans_a: the activation (n, K) is used as A^T, so the product has K rows */
    int x = IN(g, 2, D(n), D(K));
    int M = ta ? K : n, Kin = ta ? n : K;
    int b = tb ? PAR(g, 2, D(N), D(Kin)) : PAR(g, 2, D(Kin), D(N));
    bp_attrs a = bp_attrs_default();
    a.trans_a = ta;
    a.trans_b = tb;
    a.alpha = 0.7f;
    a.beta = 1.3f;
    int c = cmode == 0 ? PAR(g, 1, D(N)) : cmode == 1 ? PAR(g, 2, D(M), D(1)) : PAR(g, 2, D(M), D(N));
    NODE(g, BP_OP_GEMM, &a, x, b, c);
    check_grad(g, n, BP_MODE_INFER, 21 + ta + 2 * tb + 4 * cmode);
}

Test(grad_op, gemm_plain_c_row) { gemm_case(0, 0, 0); }
Test(grad_op, gemm_transb_c_full) { gemm_case(0, 1, 2); }
Test(grad_op, gemm_transa_c_col) { gemm_case(1, 0, 1); }
Test(grad_op, gemm_transa_transb) { gemm_case(1, 1, 0); }

Test(grad_op, gemm_param_a_activation_b)
{
    bp_graph *g = bp_graph_new();
    int x = IN(g, 2, D(3), D(4));
    int a = PAR(g, 2, D(3), D(3));
    NODE(g, BP_OP_GEMM, NULL, a, x); /* (3x3) (3x4): the parameter on the left */
    check_grad(g, 3, BP_MODE_INFER, 5);
}

Test(grad_op, matmul_param)
{
    bp_graph *g = bp_graph_new();
    int x = IN(g, 4, D(1), D(2), D(3), D(4));
    int w = PAR(g, 2, D(4), D(5));
    logits(g, NODE(g, BP_OP_MATMUL, NULL, x, w));
    check_grad(g, 2, BP_MODE_INFER, 6);
}

Test(grad_op, matmul_broadcast_batch_dims)
{
    bp_graph *g = bp_graph_new();
    int x = IN(g, 4, D(1), D(1), D(2), D(4)); /* (n, 1, 2, 4) @ (3, 4, 5) -> (n, 3, 2, 5) */
    int w = PAR(g, 3, D(3), D(4), D(5));
    logits(g, NODE(g, BP_OP_MATMUL, NULL, x, w));
    check_grad(g, 2, BP_MODE_INFER, 7);
}

Test(grad_op, add_broadcast_param)
{
    bp_graph *g = bp_graph_new();
    int x = IN(g, 4, D(1), D(3), D(4), D(5));
    int b = PAR(g, 3, D(3), D(1), D(5));
    logits(g, NODE(g, BP_OP_ADD, NULL, x, b));
    check_grad(g, 2, BP_MODE_INFER, 8);
}

Test(grad_op, add_broadcast_both_ways)
{
    bp_graph *g = bp_graph_new();
    int x = IN(g, 4, D(1), D(3), D(1), D(5));
    int b = PAR(g, 2, D(4), D(1)); /* (n,3,1,5) + (4,1) -> (n,3,4,5) */
    logits(g, NODE(g, BP_OP_ADD, NULL, b, x));
    check_grad(g, 2, BP_MODE_INFER, 9);
}

Test(grad_op, add_residual_same_value)
{
    bp_graph *g = bp_graph_new();
    int x = IN(g, 2, D(1), D(6));
    int w = PAR(g, 2, D(6), D(6));
    int h = NODE(g, BP_OP_GEMM, NULL, x, w);
    int s = NODE(g, BP_OP_ADD, NULL, h, x);
    NODE(g, BP_OP_ADD, NULL, s, s);
    check_grad(g, 3, BP_MODE_INFER, 10);
}

/* A branch nothing consumes (its gradient is zero) beside the real path, and
 * an activation read by two nodes: the first writer of a gradient writes, the
 * second adds. */
Test(grad_op, dangling_branch_and_shared_input)
{
    bp_graph *g = bp_graph_new();
    int x = IN(g, 2, D(1), D(5));
    int h = NODE(g, BP_OP_RELU, NULL, x);
    NODE(g, BP_OP_CLIP, NULL, h); /* dangling */
    int a = NODE(g, BP_OP_GEMM, NULL, h, PAR(g, 2, D(5), D(4)));
    int b = NODE(g, BP_OP_GEMM, NULL, x, PAR(g, 2, D(5), D(4)));
    int y = NODE(g, BP_OP_ADD, NULL, a, b);
    g->output = y;
    check_grad(g, 3, BP_MODE_INFER, 17);
}

static void bn_case(bp_mode mode)
{
    bp_graph *g = bp_graph_new();
    int x = IN(g, 4, D(1), D(3), D(4), D(5));
    bp_attrs a = bp_attrs_default();
    a.eps = 1e-3f;
    logits(g, bn_(g, x, 3, &a));
    check_grad(g, 3, mode, mode == BP_MODE_TRAIN ? 12 : 13);
}

Test(grad_op, bn_inference) { bn_case(BP_MODE_INFER); }
Test(grad_op, bn_training) { bn_case(BP_MODE_TRAIN); }

static void act_case(bp_op op, float lo, float hi)
{
    bp_graph *g = bp_graph_new();
    int x = IN(g, 2, D(1), D(12));
    int w = PAR(g, 2, D(12), D(12));
    int h = NODE(g, BP_OP_GEMM, NULL, x, w);
    bp_attrs a = bp_attrs_default();
    a.clip_min = lo;
    a.clip_max = hi;
    NODE(g, op, &a, h);
    check_grad(g, 3, BP_MODE_INFER, 14);
}

Test(grad_op, relu) { act_case(BP_OP_RELU, 0, 0); }
Test(grad_op, clip_both_bounds) { act_case(BP_OP_CLIP, -0.3f, 0.4f); }
Test(grad_op, clip_min_only) { act_case(BP_OP_CLIP, 0.1f, INFINITY); }

static void pool_case(bp_op op, int k, int s, int p, int ceil_mode, int cip, int dil, int H_)
{
    bp_graph *g = bp_graph_new();
    int x = IN(g, 4, D(1), D(2), D(H_), D(H_ - 1));
    bp_attrs a = bp_attrs_default();
    a.kernel[0] = a.kernel[1] = k;
    a.stride[0] = a.stride[1] = s;
    a.pads[0] = a.pads[1] = a.pads[2] = a.pads[3] = p;
    a.ceil_mode = ceil_mode;
    a.count_include_pad = cip;
    a.dilation[0] = a.dilation[1] = dil;
    logits(g, NODE(g, op, &a, x));
    check_grad(g, 2, BP_MODE_INFER, 15 + k + s + p);
}

Test(grad_op, maxpool_k3s2p1_ceil) { pool_case(BP_OP_MAXPOOL, 3, 2, 1, 1, 0, 1, 8); }
Test(grad_op, maxpool_k2s2) { pool_case(BP_OP_MAXPOOL, 2, 2, 0, 0, 0, 1, 6); }
Test(grad_op, maxpool_dilated) { pool_case(BP_OP_MAXPOOL, 2, 1, 1, 0, 0, 2, 6); }
Test(grad_op, avgpool_ceil_exclude_pad) { pool_case(BP_OP_AVGPOOL, 3, 2, 1, 1, 0, 1, 8); }
Test(grad_op, avgpool_ceil_include_pad) { pool_case(BP_OP_AVGPOOL, 3, 2, 1, 1, 1, 1, 8); }
Test(grad_op, avgpool_include_pad) { pool_case(BP_OP_AVGPOOL, 3, 1, 1, 0, 1, 1, 5); }

Test(grad_op, gap_reshape_identity)
{
    bp_graph *g = bp_graph_new();
    int x = IN(g, 4, D(1), D(4), D(3), D(3));
    int h = NODE(g, BP_OP_GAP, NULL, x);
    h = NODE(g, BP_OP_IDENTITY, NULL, h);
    bp_attrs a = bp_attrs_default();
    a.nshape = 2;
    a.shape[0] = 0;
    a.shape[1] = -1;
    NODE(g, BP_OP_RESHAPE, &a, h);
    check_grad(g, 3, BP_MODE_INFER, 16);
}

/* ---- whole nets ------------------------------------------------------------------- */

/* conv-BN-ReLU stem, a block with a depthwise conv, BN and ReLU6 whose output
 * joins the stem by a residual Add, max pool, strided conv, average pool,
 * GAP, Gemm. */
static bp_graph *small_net(void)
{
    bp_graph *g = bp_graph_new();
    bp_attrs p1 = bp_attrs_default();
    p1.pads[0] = p1.pads[1] = p1.pads[2] = p1.pads[3] = 1;
    int x = IN(g, 4, D(1), D(2), D(8), D(8));
    int h = NODE(g, BP_OP_CONV, &p1, x, PAR(g, 4, D(4), D(2), D(3), D(3)), PAR(g, 1, D(4)));
    h = NODE(g, BP_OP_RELU, NULL, bn_(g, h, 4, NULL));
    bp_attrs dw = p1;
    dw.group = 4;
    int b = NODE(g, BP_OP_CONV, &dw, h, PAR(g, 4, D(4), D(1), D(3), D(3)));
    bp_attrs r6 = bp_attrs_default();
    r6.clip_min = 0;
    r6.clip_max = 6;
    b = NODE(g, BP_OP_CLIP, &r6, bn_(g, b, 4, NULL));
    b = NODE(g, BP_OP_CONV, NULL, b, PAR(g, 4, D(4), D(4), D(1), D(1)));
    h = NODE(g, BP_OP_ADD, NULL, h, b);
    bp_attrs mp = bp_attrs_default();
    mp.kernel[0] = mp.kernel[1] = 2;
    mp.stride[0] = mp.stride[1] = 2;
    h = NODE(g, BP_OP_MAXPOOL, &mp, h);
    bp_attrs s2 = p1;
    s2.stride[0] = s2.stride[1] = 2;
    h = NODE(g, BP_OP_CONV, &s2, h, PAR(g, 4, D(6), D(4), D(3), D(3)), PAR(g, 1, D(6)));
    h = NODE(g, BP_OP_RELU, NULL, bn_(g, h, 6, NULL));
    bp_attrs ap = bp_attrs_default();
    ap.kernel[0] = ap.kernel[1] = 2;
    ap.pads[2] = ap.pads[3] = 1;
    h = NODE(g, BP_OP_AVGPOOL, &ap, h);
    h = NODE(g, BP_OP_FLATTEN, NULL, NODE(g, BP_OP_GAP, NULL, h));
    bp_attrs tb = bp_attrs_default();
    tb.trans_b = 1;
    NODE(g, BP_OP_GEMM, &tb, h, PAR(g, 2, D(5), D(6)), PAR(g, 1, D(5)));
    return g;
}

Test(grad_net, residual_dw_bn_relu6_inference) { check_grad(small_net(), 3, BP_MODE_INFER, 31); }
Test(grad_net, residual_dw_bn_relu6_training) { check_grad(small_net(), 3, BP_MODE_TRAIN, 32); }

/* MLP head through MatMul with a broadcast bias Add and a reshape. */
Test(grad_net, matmul_bias_mlp)
{
    bp_graph *g = bp_graph_new();
    int x = IN(g, 4, D(1), D(2), D(3), D(3));
    bp_attrs ap = bp_attrs_default();
    ap.kernel[0] = ap.kernel[1] = 2;
    ap.count_include_pad = 1;
    ap.pads[0] = ap.pads[1] = 1;
    ap.ceil_mode = 1;
    ap.stride[0] = ap.stride[1] = 2;
    int h = NODE(g, BP_OP_AVGPOOL, &ap, x);
    h = NODE(g, BP_OP_FLATTEN, NULL, h);
    h = NODE(g, BP_OP_MATMUL, NULL, h, PAR(g, 2, D(8), D(7)));
    h = NODE(g, BP_OP_ADD, NULL, h, PAR(g, 1, D(7)));
    h = NODE(g, BP_OP_RELU, NULL, h);
    NODE(g, BP_OP_GEMM, NULL, h, PAR(g, 2, D(7), D(4)), PAR(g, 2, D(1), D(4)));
    check_grad(g, 4, BP_MODE_INFER, 33);
}

/* BN training form: running statistics after one forward, against the
 * definition (momentum * old + (1 - momentum) * batch, unbiased variance). */
Test(grad_op, bn_running_stats_update)
{
    bp_graph *g = bp_graph_new();
    int x = IN(g, 4, D(1), D(2), D(1), D(2));
    bp_attrs a = bp_attrs_default();
    a.momentum = 0.8f;
    logits(g, bn_(g, x, 2, &a));
    init_params(g, 3);
    const bp_node *bn = &g->nodes[0];
    bp_real *rm = g->params + g->values[bn->in[3]].offset, *rv = g->params + g->values[bn->in[4]].offset;
    double m0[2] = {rm[0], rm[1]}, v0[2] = {rv[0], rv[1]};
    bp_real xs[12];
    for (int i = 0; i < 12; i++)
        xs[i] = (bp_real)urand();
    bp_exec *ex = bp_exec_new(g, 3, 0);
    cr_assert_eq(bp_forward(ex, g->params, xs, 3, BP_MODE_TRAIN), BP_OK);
    for (int c = 0; c < 2; c++) {
        double s = 0, s2 = 0;
        for (int n = 0; n < 3; n++)
            for (int w = 0; w < 2; w++)
                s += xs[(n * 2 + c) * 2 + w];
        double mu = s / 6;
        for (int n = 0; n < 3; n++)
            for (int w = 0; w < 2; w++)
                s2 += (xs[(n * 2 + c) * 2 + w] - mu) * (xs[(n * 2 + c) * 2 + w] - mu);
        double mom = (double)0.8f; /* the attribute is a float */
        cr_expect_float_eq(rm[c], mom * m0[c] + (1 - mom) * mu, 1e-12, "running mean %d", c);
        cr_expect_float_eq(rv[c], mom * v0[c] + (1 - mom) * s2 / 5, 1e-12, "running var %d", c);
    }
    bp_exec_free(ex);
    bp_graph_free(g);
}
