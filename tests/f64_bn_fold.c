/* The Hessian operator's BatchNormalization fold (sensitivity/bn_fold.h), in
 * double precision (bp_real = double).
 *
 * Net: conv1 (bias) -> BN -> ReLU -> conv2 (no bias) -> BN (negative scale)
 * -> Add(residual) -> ReLU -> BN (after an Add: not foldable) -> depthwise
 * conv -> BN -> ReLU -> conv3 (1x1), whose output feeds a BN AND an Add (not
 * foldable) -> GAP -> Flatten -> Gemm.
 *
 * References, independent of the fold:
 *   - the graph as given, run by the engine (BP_MODEL_OP_NO_BN_FOLD and plain
 *     forward/backward): loss, gradient and H v of the folded operator equal
 *     them to 1e-10 relative;
 *   - central finite differences of the unfolded gradient along v (1e-6);
 *   - which BNs were folded, counted from the new graph's nodes. */
#include "tests/engine_util.h"

#include "sensitivity/bn_fold.h"
#include "sensitivity/sensitivity.h"

enum { NS = 7, BATCH = 3, HW = 5 };

static bp_graph *net(void)
{
    bp_graph *g = bp_graph_new();
    int x = IN(g, 4, D(1), D(2), D(HW), D(HW));
    bp_attrs p1 = bp_attrs_default();
    p1.pads[0] = p1.pads[1] = p1.pads[2] = p1.pads[3] = 1;
    int h = NODE(g, BP_OP_CONV, &p1, x, PAR(g, 4, D(4), D(2), D(3), D(3)), PAR(g, 1, D(4)));
    h = NODE(g, BP_OP_RELU, NULL, bn_(g, h, 4, NULL));
    int k = NODE(g, BP_OP_CONV, &p1, h, PAR(g, 4, D(4), D(4), D(3), D(3)));
    k = bn_(g, k, 4, NULL);
    h = NODE(g, BP_OP_RELU, NULL, NODE(g, BP_OP_ADD, NULL, k, h));
    h = bn_(g, h, 4, NULL);
    bp_attrs dw = p1;
    dw.group = 4;
    h = NODE(g, BP_OP_CONV, &dw, h, PAR(g, 4, D(4), D(1), D(3), D(3)));
    h = NODE(g, BP_OP_RELU, NULL, bn_(g, h, 4, NULL));
    int c3 = NODE(g, BP_OP_CONV, NULL, h, PAR(g, 4, D(3), D(4), D(1), D(1)));
    h = NODE(g, BP_OP_ADD, NULL, bn_(g, c3, 3, NULL), c3);
    h = NODE(g, BP_OP_FLATTEN, NULL, NODE(g, BP_OP_GAP, NULL, h));
    bp_attrs tb = bp_attrs_default();
    tb.trans_b = 1;
    int out = NODE(g, BP_OP_GEMM, &tb, h, PAR(g, 2, D(5), D(3)), PAR(g, 1, D(5)));
    g->output = out;
    init_params(g, 11);
    /* the second BN's scale negative: s < 0 must map as well */
    for (int i = 0, nbn = 0; i < g->nnodes; i++)
        if (g->nodes[i].op == BP_OP_BN && ++nbn == 2) {
            const bp_value *s = &g->values[g->nodes[i].in[1]];
            for (size_t j = 0; j < s->numel; j++)
                g->params[s->offset + j] *= -1;
        }
    return g;
}

static int count_op(const bp_graph *g, bp_op op)
{
    int n = 0;
    for (int i = 0; i < g->nnodes; i++)
        n += g->nodes[i].op == op;
    return n;
}

static bp_real X[NS * 2 * HW * HW];
static int Y[NS];

static void data(void)
{
    rng_seed(5);
    for (size_t i = 0; i < sizeof X / sizeof *X; i++)
        X[i] = (bp_real)urand();
    for (int i = 0; i < NS; i++)
        Y[i] = (i * 3 + 1) % 5;
}

Test(bn_fold64, folds_only_where_valid)
{
    bp_graph *g = net(), *f;
    double **s;
    int nf;
    cr_assert_eq(bp_bn_fold(g, &f, &s, &nf), BP_OK, "%s", bp_last_error());
    cr_assert_eq(nf, 3, "folded %d BNs (conv1, conv2, depthwise)", nf);
    cr_assert_eq(count_op(g, BP_OP_BN), 5);
    cr_assert_eq(count_op(f, BP_OP_BN), 2, "the BN after the Add and the one beside an Add stay");
    cr_assert_eq(count_op(f, BP_OP_CONV), 4);
    int with_s = 0;
    for (int i = 0; i < g->nnodes; i++) {
        with_s += s[i] != NULL;
        cr_assert(!s[i] || g->nodes[i].op == BP_OP_CONV);
    }
    cr_assert_eq(with_s, 3);
    /* s = scale / sqrt(var + eps), from the BN after conv1 */
    const bp_node *bn = &g->nodes[1];
    cr_assert_eq(bn->op, BP_OP_BN);
    for (int c = 0; c < 4; c++) {
        double want = g->params[g->values[bn->in[1]].offset + c] /
                      sqrt(g->params[g->values[bn->in[4]].offset + c] + (double)bn->a.eps);
        cr_assert_float_eq(s[0][c], want, 1e-15 * fabs(want));
    }
    /* same logits */
    data();
    bp_exec *e0 = bp_exec_new(g, NS, 0), *e1 = bp_exec_new(f, NS, 0);
    cr_assert(e0 && e1);
    cr_assert_eq(bp_forward(e0, g->params, X, NS, BP_MODE_INFER), BP_OK);
    cr_assert_eq(bp_forward(e1, f->params, X, NS, BP_MODE_INFER), BP_OK);
    const bp_real *y0 = bp_exec_act(e0, g->output), *y1 = bp_exec_act(e1, f->output);
    for (int i = 0; i < NS * 5; i++)
        cr_assert(fabs(y0[i] - y1[i]) <= 1e-12 * (1 + fabs(y0[i])), "logit %d: %.17g vs %.17g", i,
                  y0[i], y1[i]);
    bp_exec_free(e0);
    bp_exec_free(e1);
    bp_bn_fold_scale_free(s, g->nnodes);
    bp_graph_free(f);
    bp_graph_free(g);
}

static double rel(const double *a, const double *b, size_t n)
{
    double d = 0, nb = 0;
    for (size_t i = 0; i < n; i++) {
        d += (a[i] - b[i]) * (a[i] - b[i]);
        nb += b[i] * b[i];
    }
    return sqrt(d / nb);
}

Test(bn_fold64, operator_equals_unfolded)
{
    bp_graph *g = net();
    data();
    bp_model_op *mf, *mu;
    cr_assert_eq(bp_model_op_new_memory(g, X, Y, NS, BATCH, &mf), BP_OK, "%s", bp_last_error());
    cr_assert_eq(bp_model_op_new_memory_flags(g, X, Y, NS, BATCH, BP_MODEL_OP_NO_BN_FOLD, &mu), BP_OK);
    cr_assert_eq(bp_model_op_folded(mf), 3);
    cr_assert_eq(bp_model_op_folded(mu), 0);
    bp_linop of = bp_model_op_linop(mf), ou = bp_model_op_linop(mu);
    cr_assert_eq(of.n, ou.n);
    size_t n = of.n;
    double *v = malloc(4 * n * sizeof *v), *hf = malloc(4 * n * sizeof *hf),
           *hu = malloc(4 * n * sizeof *hu);
    rng_seed(9);
    for (size_t i = 0; i < 4 * n; i++)
        v[i] = urand();
    for (int d = 0; d < 2; d++) {
        cr_assert_eq(of.apply(of.ctx, v + d * n, hf), BP_OK, "%s", bp_last_error());
        cr_assert_eq(ou.apply(ou.ctx, v + d * n, hu), BP_OK);
        double r = rel(hf, hu, n);
        cr_assert(r <= 1e-10, "Hv folded vs unfolded: %g", r);
        /* per layer too: the small blocks must not hide in the norm */
        const bp_block *B;
        int nl = bp_model_op_layers(mf, NULL, &B);
        for (int l = 0; l < nl; l++)
            cr_assert(rel(hf + B[l].off, hu + B[l].off, B[l].len) <= 1e-10, "layer %d", l);
        double lf = bp_model_op_loss(mf), lu = bp_model_op_loss(mu);
        cr_assert(fabs(lf - lu) <= 1e-13 * lu, "loss %.17g vs %.17g", lf, lu);
    }
    /* grouped products (one forward shared by several R-passes) */
    cr_assert_eq(bp_linop_apply_many(&of, 4, v, hf), BP_OK);
    cr_assert_eq(bp_linop_apply_many(&ou, 4, v, hu), BP_OK);
    cr_assert(rel(hf, hu, 4 * n) <= 1e-10);
    /* gradient */
    cr_assert_eq(bp_model_op_gradient(mf, hf), BP_OK, "%s", bp_last_error());
    cr_assert_eq(bp_model_op_gradient(mu, hu), BP_OK);
    double r = rel(hf, hu, n);
    cr_assert(r <= 1e-10, "gradient folded vs unfolded: %g", r);
    free(v);
    free(hf);
    free(hu);
    bp_model_op_free(mf);
    bp_model_op_free(mu);
    bp_graph_free(g);
}

/* The mean gradient of the graph as given, over all samples in one batch,
 * with plain forward/backward (no fold, no R-op), gathered at the layers. */
static void plain_grad(bp_exec *ex, bp_graph *g, const bp_layer *L, int nl, const bp_block *B,
                       bp_real *gp, double *out)
{
    memset(gp, 0, g->nparams * sizeof *gp);
    cr_assert_eq(bp_forward(ex, g->params, X, NS, BP_MODE_INFER), BP_OK);
    cr_assert_eq(bp_loss_softmax_ce(ex, Y, NULL, NULL), BP_OK);
    cr_assert_eq(bp_backward(ex, g->params, gp), BP_OK);
    for (int l = 0; l < nl; l++)
        for (size_t j = 0; j < B[l].len; j++)
            out[B[l].off + j] = gp[g->values[L[l].weight].offset + j];
}

Test(bn_fold64, operator_matches_finite_differences)
{
    bp_graph *g = net();
    data();
    bp_model_op *m;
    cr_assert_eq(bp_model_op_new_memory(g, X, Y, NS, BATCH, &m), BP_OK, "%s", bp_last_error());
    bp_linop op = bp_model_op_linop(m);
    const bp_layer *L;
    const bp_block *B;
    int nl = bp_model_op_layers(m, &L, &B);
    size_t n = op.n;
    double *v = malloc(n * sizeof *v), *hv = malloc(n * sizeof *hv), *gpl = malloc(n * sizeof *gpl),
           *gmi = malloc(n * sizeof *gmi), *fd = malloc(n * sizeof *fd), *gr = malloc(n * sizeof *gr);
    bp_real *gp = malloc(g->nparams * sizeof *gp), *w0 = malloc(g->nparams * sizeof *w0);
    rng_seed(3);
    for (size_t i = 0; i < n; i++)
        v[i] = urand();
    cr_assert_eq(op.apply(op.ctx, v, hv), BP_OK);
    bp_exec *ex = bp_exec_new(g, NS, BP_EXEC_GRAD);
    cr_assert_not_null(ex);
    /* the folded gradient against the unfolded one from a plain backward */
    plain_grad(ex, g, L, nl, B, gp, gpl);
    cr_assert_eq(bp_model_op_gradient(m, gr), BP_OK);
    cr_assert(rel(gr, gpl, n) <= 1e-10, "gradient vs plain backward: %g", rel(gr, gpl, n));
    memcpy(w0, g->params, g->nparams * sizeof *w0);
    const double h = 1e-5;
    for (int sgn = -1; sgn <= 1; sgn += 2) {
        for (int l = 0; l < nl; l++)
            for (size_t j = 0; j < B[l].len; j++)
                g->params[g->values[L[l].weight].offset + j] =
                    w0[g->values[L[l].weight].offset + j] + sgn * h * v[B[l].off + j];
        plain_grad(ex, g, L, nl, B, gp, sgn < 0 ? gmi : gpl);
    }
    memcpy(g->params, w0, g->nparams * sizeof *w0);
    for (size_t i = 0; i < n; i++)
        fd[i] = (gpl[i] - gmi[i]) / (2 * h);
    double r = rel(hv, fd, n);
    cr_assert(r <= 1e-6, "Hv vs central differences of the unfolded gradient: %g", r);
    bp_exec_free(ex);
    free(v), free(hv), free(gpl), free(gmi), free(fd), free(gr), free(gp), free(w0);
    bp_model_op_free(m);
    bp_graph_free(g);
}
