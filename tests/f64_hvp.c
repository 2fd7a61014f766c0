/* Hessian-vector products (Pearlmutter R-op) in double precision against
 * central finite differences of the engine's gradient:
 *   H v ~ (g(p + h v) - g(p - h v)) / 2h,  h = 1e-5,
 * relative error at most 1e-6, on small nets that together contain every op
 * (ReLU / MaxPool inputs are random, so no kink or tie lies within h of them).
 * Also: symmetry u^T H v = v^T H u, HVP at activation directions (graph input
 * and an inner activation) against differences of activation gradients, and
 * the ordinary gradient returned by bp_hvp against bp_backward. */
#include "tests/engine_util.h"

#define H 1e-5
#define TOL 1e-6

typedef struct {
    bp_graph *g;
    bp_exec *ex;
    int n;
    bp_real *x;
    int lab[64];
} hcase;

static void setup(hcase *c, bp_graph *g, int n, uint64_t seed)
{
    c->g = g;
    c->n = n;
    init_params(g, seed);
    c->ex = bp_exec_new(g, n, BP_EXEC_ROP);
    cr_assert_not_null(c->ex, "%s", bp_last_error());
    size_t nx = input_numel(g, n);
    c->x = malloc(nx * sizeof *c->x);
    for (size_t i = 0; i < nx; i++)
        c->x[i] = (bp_real)(1.3 * urand());
    loss_of(c->ex, g, c->x, n, (int[64]){0}, BP_MODE_INFER);
    make_labels(c->ex, g, c->lab, 64);
}

static void teardown(hcase *c)
{
    free(c->x);
    bp_exec_free(c->ex);
    bp_graph_free(c->g);
}

/* Random direction over trainable parameters (zero on BN running stats). */
static bp_real *direction(const bp_graph *g)
{
    bp_real *v = calloc(g->nparams, sizeof *v);
    for (int i = 0; i < g->nvalues; i++) {
        const bp_value *val = &g->values[i];
        if (val->kind != BP_VAL_PARAM || is_bn_stat(g, i))
            continue;
        for (size_t j = 0; j < val->numel; j++)
            v[val->offset + j] = (bp_real)urand();
    }
    return v;
}

static void grad_at(hcase *c, bp_real *out)
{
    memset(out, 0, c->g->nparams * sizeof *out);
    loss_of(c->ex, c->g, c->x, c->n, c->lab, BP_MODE_INFER);
    cr_assert_eq(bp_backward(c->ex, c->g->params, out), BP_OK, "%s", bp_last_error());
}

static void hvp(hcase *c, const bp_real *v, bp_real *hv, bp_real *grad)
{
    memset(hv, 0, c->g->nparams * sizeof *hv);
    if (grad)
        memset(grad, 0, c->g->nparams * sizeof *grad);
    bp_status st = bp_hvp(c->ex, c->g->params, c->x, c->lab, c->n, v, hv, grad, NULL);
    cr_assert_eq(st, BP_OK, "%s", bp_last_error());
}

/* only >= 0: v is zero outside that parameter (the engine then skips the
 * R-terms of every other parameter; Hv is still the full vector). */
static void check_hvp_fd_only(bp_graph *g, int n, uint64_t seed, int only);
static void check_hvp_fd(bp_graph *g, int n, uint64_t seed)
{
    check_hvp_fd_only(g, n, seed, -1);
}

static void check_hvp_fd_only(bp_graph *g, int n, uint64_t seed, int only)
{
    hcase c;
    setup(&c, g, n, seed);
    size_t np = g->nparams;
    bp_real *v = direction(g);
    if (only >= 0)
        for (size_t i = 0; i < np; i++)
            if (i < g->values[only].offset || i >= g->values[only].offset + g->values[only].numel)
                v[i] = 0;
    bp_real *hv = malloc(np * sizeof *hv), *gr = malloc(np * sizeof *gr);
    bp_real *gp = malloc(np * sizeof *gp), *gm = malloc(np * sizeof *gm), *g0 = malloc(np * sizeof *g0);
    double *fd = calloc(np, sizeof *fd);
    /* an HVP along another direction first: stale buffers would show */
    bp_real *w0 = direction(g);
    hvp(&c, w0, hv, gr);
    free(w0);
    hvp(&c, v, hv, gr);
    grad_at(&c, g0);
    cr_expect_leq(rel_err(gr, g0, np), 1e-12, "bp_hvp's gradient differs from bp_backward's");
    bp_real *p = g->params, *keep = malloc(np * sizeof *keep);
    memcpy(keep, p, np * sizeof *p);
    for (size_t i = 0; i < np; i++)
        p[i] = keep[i] + H * v[i];
    grad_at(&c, gp);
    for (size_t i = 0; i < np; i++)
        p[i] = keep[i] - H * v[i];
    grad_at(&c, gm);
    memcpy(p, keep, np * sizeof *p);
    for (size_t i = 0; i < np; i++)
        fd[i] = (gp[i] - gm[i]) / (2 * H);
    double e = rel_err(hv, fd, np);
    cr_expect_leq(e, TOL, "Hv vs finite differences: relative error %.3g (|Hv| = %.3g)", e,
                  norm2(fd, np));
    cr_assert_gt(norm2(fd, np), 1e-6, "Hv vanishes: the check would be empty");

    /* per-tensor as well, so one small layer cannot hide behind a big one */
    for (int i = 0; i < g->nvalues; i++) {
        const bp_value *val = &g->values[i];
        if (val->kind != BP_VAL_PARAM || is_bn_stat(g, i))
            continue;
        double et = rel_err(hv + val->offset, fd + val->offset, val->numel);
        cr_expect_leq(et, TOL, "(Hv)[%s]: relative error %.3g", val->name, et);
    }

    /* symmetry: u^T H v = v^T H u */
    bp_real *u = direction(g), *hu = malloc(np * sizeof *hu);
    hvp(&c, u, hu, NULL);
    double uhv = 0, vhu = 0;
    for (size_t i = 0; i < np; i++) {
        uhv += u[i] * hv[i];
        vhu += v[i] * hu[i];
    }
    cr_expect_leq(fabs(uhv - vhu), 1e-10 * (fabs(uhv) + fabs(vhu)), "u^T H v = %.15g, v^T H u = %.15g",
                  uhv, vhu);
    free(u);
    free(hu);
    free(keep);
    free(fd);
    free(v);
    free(hv);
    free(gr);
    free(gp);
    free(gm);
    free(g0);
    teardown(&c);
}

/* Conv net with every conv variant (same-padded, depthwise, grouped+dilated,
 * pointwise, strided), BN, ReLU, ReLU6, pools, residual Add,
 * broadcast PARAM Add, Reshape, Identity, Gemm with C. */
static bp_graph *conv_net(void)
{
    bp_graph *g = bp_graph_new();
    bp_attrs p1 = bp_attrs_default();
    p1.pads[0] = p1.pads[1] = p1.pads[2] = p1.pads[3] = 1;
    int x = IN(g, 4, D(1), D(2), D(9), D(8));
    int h = NODE(g, BP_OP_CONV, &p1, x, PAR(g, 4, D(4), D(2), D(3), D(3)), PAR(g, 1, D(4)));
    h = NODE(g, BP_OP_RELU, NULL, bn_(g, h, 4, NULL));
    bp_attrs dw = p1;
    dw.group = 4;
    int b = NODE(g, BP_OP_CONV, &dw, h, PAR(g, 4, D(4), D(1), D(3), D(3)));
    bp_attrs r6 = bp_attrs_default();
    r6.clip_min = 0;
    r6.clip_max = 6;
    b = NODE(g, BP_OP_CLIP, &r6, bn_(g, b, 4, NULL));
    bp_attrs gd = bp_attrs_default();
    gd.group = 2;
    gd.dilation[0] = gd.dilation[1] = 2;
    gd.pads[0] = gd.pads[1] = gd.pads[2] = gd.pads[3] = 2;
    b = NODE(g, BP_OP_CONV, &gd, b, PAR(g, 4, D(4), D(2), D(3), D(3)));
    h = NODE(g, BP_OP_ADD, NULL, h, b);
    h = NODE(g, BP_OP_ADD, NULL, h, PAR(g, 3, D(4), D(1), D(1)));
    h = NODE(g, BP_OP_CONV, NULL, h, PAR(g, 4, D(4), D(4), D(1), D(1))); /* pointwise */
    bp_attrs mp = bp_attrs_default();
    mp.kernel[0] = mp.kernel[1] = 3;
    mp.stride[0] = mp.stride[1] = 2;
    mp.pads[0] = mp.pads[1] = mp.pads[2] = mp.pads[3] = 1;
    mp.ceil_mode = 1;
    h = NODE(g, BP_OP_MAXPOOL, &mp, h);
    bp_attrs s2 = p1;
    s2.stride[0] = s2.stride[1] = 2;
    s2.pads[2] = s2.pads[3] = 0;
    h = NODE(g, BP_OP_CONV, &s2, h, PAR(g, 4, D(6), D(4), D(3), D(3)), PAR(g, 1, D(6)));
    h = NODE(g, BP_OP_RELU, NULL, bn_(g, h, 6, NULL));
    bp_attrs ap = bp_attrs_default();
    ap.kernel[0] = ap.kernel[1] = 2;
    ap.pads[2] = ap.pads[3] = 1;
    ap.count_include_pad = 1;
    h = NODE(g, BP_OP_AVGPOOL, &ap, h);
    h = NODE(g, BP_OP_IDENTITY, NULL, NODE(g, BP_OP_GAP, NULL, h));
    bp_attrs rs = bp_attrs_default();
    rs.nshape = 2;
    rs.shape[0] = 0;
    rs.shape[1] = -1;
    h = NODE(g, BP_OP_RESHAPE, &rs, h);
    bp_attrs tb = bp_attrs_default();
    tb.trans_b = 1;
    tb.alpha = 0.9f;
    tb.beta = 1.1f;
    NODE(g, BP_OP_GEMM, &tb, h, PAR(g, 2, D(5), D(6)), PAR(g, 1, D(5)));
    return g;
}

/* Flatten, MatMul with a broadcast bias Add, and a MatMul of two activations
 * (bilinear in both operands). */
static bp_graph *matmul_net(void)
{
    bp_graph *g = bp_graph_new();
    int x = IN(g, 3, D(1), D(2), D(3));
    int f = NODE(g, BP_OP_FLATTEN, NULL, x);
    int a = NODE(g, BP_OP_MATMUL, NULL, f, PAR(g, 2, D(6), D(6)));
    a = NODE(g, BP_OP_ADD, NULL, a, PAR(g, 1, D(6)));
    int b = NODE(g, BP_OP_GEMM, NULL, f, PAR(g, 2, D(6), D(12)));
    bp_attrs ra = bp_attrs_default();
    ra.nshape = 3;
    ra.shape[0] = 0, ra.shape[1] = 2, ra.shape[2] = 3;
    bp_attrs rb = ra;
    rb.shape[1] = 3, rb.shape[2] = 4;
    a = NODE(g, BP_OP_RESHAPE, &ra, NODE(g, BP_OP_RELU, NULL, a));
    b = NODE(g, BP_OP_RESHAPE, &rb, b);
    int m = NODE(g, BP_OP_MATMUL, NULL, a, b); /* (n,2,3) @ (n,3,4) */
    m = NODE(g, BP_OP_FLATTEN, NULL, m);
    NODE(g, BP_OP_MATMUL, NULL, m, PAR(g, 2, D(8), D(5)));
    return g;
}

Test(hvp, conv_net_every_conv_op) { check_hvp_fd(conv_net(), 3, 41); }

/* v on the stride-2 conv's weight only */
Test(hvp, conv_net_one_layer_direction)
{
    bp_graph *g = conv_net();
    int w = -1;
    for (int i = 0; i < g->nnodes; i++)
        if (g->nodes[i].op == BP_OP_CONV && g->nodes[i].a.stride[0] == 2)
            w = g->nodes[i].in[1];
    cr_assert_geq(w, 0);
    check_hvp_fd_only(g, 3, 47, w);
}
Test(hvp, matmul_net_two_activation_operands) { check_hvp_fd(matmul_net(), 4, 42); }

Test(hvp, gemm_transposes)
{
    bp_graph *g = bp_graph_new();
    int x = IN(g, 2, D(3), D(4));
    bp_attrs t = bp_attrs_default();
    t.trans_a = 1;
    t.alpha = 1.2f;
    int h = NODE(g, BP_OP_GEMM, &t, x, PAR(g, 2, D(3), D(5)), PAR(g, 2, D(4), D(1))); /* (4,5) */
    bp_attrs cl = bp_attrs_default();
    cl.clip_min = -0.5f;
    cl.clip_max = 0.5f;
    h = NODE(g, BP_OP_CLIP, &cl, h);
    bp_attrs tb = bp_attrs_default();
    tb.trans_b = 1;
    NODE(g, BP_OP_GEMM, &tb, h, PAR(g, 2, D(3), D(5)));
    check_hvp_fd(g, 3, 43);
}

/* ---- activation directions ---------------------------------------------------------- */

/* With v on the graph input: R{d loss/d x} = H_xx v against differences of
 * the input gradient. */
Test(hvp, input_direction)
{
    hcase c;
    setup(&c, conv_net(), 2, 44);
    size_t nx = input_numel(c.g, c.n);
    bp_real *u = malloc(nx * sizeof *u), *keep = malloc(nx * sizeof *keep);
    bp_real *gp = malloc(nx * sizeof *gp), *gm = malloc(nx * sizeof *gm), *hx = malloc(nx * sizeof *hx);
    double *fd = calloc(nx, sizeof *fd);
    for (size_t i = 0; i < nx; i++)
        u[i] = (bp_real)urand();
    loss_of(c.ex, c.g, c.x, c.n, c.lab, BP_MODE_INFER);
    cr_assert_eq(bp_rop_forward(c.ex, c.g->params, NULL, c.g->input, u), BP_OK, "%s", bp_last_error());
    cr_assert_eq(bp_loss_softmax_ce_rop(c.ex, c.lab), BP_OK);
    cr_assert_eq(bp_rop_backward(c.ex, c.g->params, NULL, NULL), BP_OK, "%s", bp_last_error());
    memcpy(hx, bp_exec_rgrad(c.ex, c.g->input), nx * sizeof *hx);
    memcpy(keep, c.x, nx * sizeof *keep);
    for (int s = -1; s <= 1; s += 2) {
        for (size_t i = 0; i < nx; i++)
            c.x[i] = keep[i] + s * H * u[i];
        loss_of(c.ex, c.g, c.x, c.n, c.lab, BP_MODE_INFER);
        cr_assert_eq(bp_backward(c.ex, c.g->params, NULL), BP_OK);
        memcpy(s < 0 ? gm : gp, bp_exec_grad(c.ex, c.g->input), nx * sizeof *gp);
    }
    memcpy(c.x, keep, nx * sizeof *keep);
    for (size_t i = 0; i < nx; i++)
        fd[i] = (gp[i] - gm[i]) / (2 * H);
    double e = rel_err(hx, fd, nx);
    cr_expect_leq(e, TOL, "H_xx u: relative error %.3g (|fd| = %.3g)", e, norm2(fd, nx));
    cr_assert_gt(norm2(fd, nx), 1e-6);
    free(u), free(keep), free(gp), free(gm), free(hx), free(fd);
    teardown(&c);
}

/* An inner activation t: the graph adds a zero PARAM z (shaped like one
 * sample of t) right after it, so with one sample, moving t along u is moving
 * z along u. Checks R{d loss/d t} at vact on t, the activation Hessian, and
 * the mixed block R{d loss/d W} against differences of gradients in z. */
Test(hvp, inner_activation_direction)
{
    bp_graph *g = bp_graph_new();
    bp_attrs p1 = bp_attrs_default();
    p1.pads[0] = p1.pads[1] = p1.pads[2] = p1.pads[3] = 1;
    int x = IN(g, 4, D(1), D(2), D(6), D(6));
    int h = NODE(g, BP_OP_CONV, &p1, x, PAR(g, 4, D(3), D(2), D(3), D(3)), PAR(g, 1, D(3)));
    h = NODE(g, BP_OP_RELU, NULL, bn_(g, h, 3, NULL));
    int z = PAR(g, 4, D(1), D(3), D(6), D(6));
    int t = NODE(g, BP_OP_ADD, NULL, h, z);
    int k = NODE(g, BP_OP_CONV, &p1, t, PAR(g, 4, D(4), D(3), D(3), D(3)));
    bp_attrs mp = bp_attrs_default();
    mp.kernel[0] = mp.kernel[1] = 2;
    mp.stride[0] = mp.stride[1] = 2;
    k = NODE(g, BP_OP_MAXPOOL, &mp, NODE(g, BP_OP_RELU, NULL, k));
    k = NODE(g, BP_OP_FLATTEN, NULL, NODE(g, BP_OP_GAP, NULL, k));
    NODE(g, BP_OP_GEMM, NULL, k, PAR(g, 2, D(4), D(3)));
    hcase c;
    setup(&c, g, 1, 45);
    bp_value *zv = &g->values[z];
    bp_real *zp = g->params + zv->offset;
    memset(zp, 0, zv->numel * sizeof *zp);
    size_t nz = zv->numel, np = g->nparams;
    bp_real *u = malloc(nz * sizeof *u), *ht = malloc(nz * sizeof *ht);
    bp_real *hw = calloc(np, sizeof *hw), *gp = malloc(np * sizeof *gp), *gm = malloc(np * sizeof *gm);
    double *fd = calloc(np, sizeof *fd);
    for (size_t i = 0; i < nz; i++)
        u[i] = (bp_real)urand();
    loss_of(c.ex, g, c.x, 1, c.lab, BP_MODE_INFER);
    cr_assert_eq(bp_rop_forward(c.ex, g->params, NULL, t, u), BP_OK, "%s", bp_last_error());
    cr_assert_eq(bp_loss_softmax_ce_rop(c.ex, c.lab), BP_OK);
    cr_assert_eq(bp_rop_backward(c.ex, g->params, NULL, hw), BP_OK, "%s", bp_last_error());
    memcpy(ht, bp_exec_rgrad(c.ex, t), nz * sizeof *ht);
    for (int s = -1; s <= 1; s += 2) {
        for (size_t i = 0; i < nz; i++)
            zp[i] = s * H * u[i];
        bp_real *dst = s < 0 ? gm : gp;
        memset(dst, 0, np * sizeof *dst);
        loss_of(c.ex, g, c.x, 1, c.lab, BP_MODE_INFER);
        cr_assert_eq(bp_backward(c.ex, g->params, dst), BP_OK);
    }
    memset(zp, 0, nz * sizeof *zp);
    /* d loss / d z = d loss / d t at batch 1: the activation block */
    for (size_t i = 0; i < nz; i++)
        fd[i] = (gp[zv->offset + i] - gm[zv->offset + i]) / (2 * H);
    double e = rel_err(ht, fd, nz);
    cr_expect_leq(e, TOL, "H_tt u: relative error %.3g (|fd| = %.3g)", e, norm2(fd, nz));
    cr_assert_gt(norm2(fd, nz), 1e-6);
    /* mixed block: every parameter except z itself */
    for (size_t i = 0; i < np; i++)
        fd[i] = (gp[i] - gm[i]) / (2 * H);
    for (size_t i = 0; i < nz; i++)
        fd[zv->offset + i] = hw[zv->offset + i] = 0;
    for (int v = 0; v < g->nvalues; v++)
        if (is_bn_stat(g, v))
            for (size_t i = 0; i < g->values[v].numel; i++)
                fd[g->values[v].offset + i] = hw[g->values[v].offset + i] = 0;
    e = rel_err(hw, fd, np);
    cr_expect_leq(e, TOL, "H_wt u: relative error %.3g (|fd| = %.3g)", e, norm2(fd, np));
    cr_assert_gt(norm2(fd, np), 1e-6);
    free(u), free(ht), free(hw), free(gp), free(gm), free(fd);
    teardown(&c);
}

Test(hvp, rop_rejects_training_forward)
{
    hcase c;
    setup(&c, matmul_net(), 2, 46);
    cr_assert_eq(bp_forward(c.ex, c.g->params, c.x, 2, BP_MODE_TRAIN), BP_OK);
    cr_expect_eq(bp_rop_forward(c.ex, c.g->params, NULL, -1, NULL), BP_ERR_ARG);
    teardown(&c);
}

/* BP_EXEC_PARAM_GRADS: after one forward, R-passes along three directions
 * (the second and third reuse the first's activation gradients, and no
 * gradient reaches the input) give the H v of separate bp_hvp calls on a
 * plain executor, to 1e-12 relative; so does the parameter gradient of a
 * plain bp_backward on the same executor. Runs on both test nets, with the
 * first layer's bias frozen (non-trainable) to exercise the upstream rule. */
static void check_param_grads(bp_graph *g, int n, uint64_t seed)
{
    hcase c;
    setup(&c, g, n, seed);
    for (int i = 0; i < g->nnodes; i++)
        if (g->nodes[i].nin > 2 && g->values[g->nodes[i].in[2]].kind == BP_VAL_PARAM) {
            g->values[g->nodes[i].in[2]].trainable = 0;
            break;
        }
    bp_exec *ex = bp_exec_new(g, n, BP_EXEC_ROP | BP_EXEC_PARAM_GRADS);
    cr_assert_not_null(ex, "%s", bp_last_error());
    size_t np = g->nparams;
    bp_real *v[3], *ref = malloc(np * sizeof *ref), *got = malloc(np * sizeof *got);
    for (int d = 0; d < 3; d++)
        v[d] = direction(g);
    /* the third direction lives on one parameter only */
    for (size_t i = 0; i < np / 2; i++)
        v[2][i] = 0;
    bp_real *g0 = calloc(np, sizeof *g0), *g1 = calloc(np, sizeof *g1);
    loss_of(ex, g, c.x, n, c.lab, BP_MODE_INFER);
    cr_assert_eq(bp_backward(ex, g->params, g1), BP_OK, "%s", bp_last_error());
    grad_at(&c, g0);
    cr_assert_leq(rel_err(g1, g0, np), 1e-12, "gradient with BP_EXEC_PARAM_GRADS");
    for (int round = 0; round < 2; round++) {
        /* round 0: after bp_backward; round 1: the first R-pass does the backward */
        loss_of(ex, g, c.x, n, c.lab, BP_MODE_INFER);
        if (round == 0)
            cr_assert_eq(bp_backward(ex, g->params, NULL), BP_OK);
        for (int d = 0; d < 3; d++) {
            hvp(&c, v[d], ref, NULL);
            memset(got, 0, np * sizeof *got);
            cr_assert_eq(bp_rop_forward(ex, g->params, v[d], -1, NULL), BP_OK, "%s", bp_last_error());
            cr_assert_eq(bp_loss_softmax_ce_rop(ex, c.lab), BP_OK);
            cr_assert_eq(bp_rop_backward(ex, g->params, v[d], got), BP_OK, "%s", bp_last_error());
            double e = rel_err(got, ref, np);
            cr_assert_leq(e, 1e-12, "round %d direction %d: relative error %.3g", round, d, e);
        }
    }
    for (int d = 0; d < 3; d++)
        free(v[d]);
    free(ref), free(got), free(g0), free(g1);
    bp_exec_free(ex);
    teardown(&c);
}

Test(hvp, param_grads_flag_conv_net) { check_param_grads(conv_net(), 3, 51); }
Test(hvp, param_grads_flag_matmul_net) { check_param_grads(matmul_net(), 4, 52); }
