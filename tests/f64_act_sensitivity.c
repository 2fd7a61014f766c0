/* Activation sensitivity in double precision (bp_real = double), on a tiny
 * residual network:
 *   x (1×5×5) -> conv1 (1->3, 3×3, pad 1, bias) -> BN -> ReLU = r
 *   r -> conv2 (3->3, 3×3, pad 1) -> BN -> Add(·, r) -> ReLU -> MaxPool 2×2
 *     -> Flatten (12) -> fc (Gemm 12->4, transB, bias) = logits
 * Layers and their inputs: conv1 reads x (25 per sample, signed), conv2 reads
 * r (75, unsigned; r is also read by the residual Add), fc reads the pooled
 * and flattened tensor (12, unsigned).
 *
 * References, independent of sensitivity/act_*.c:
 *   - per sample s, the exact Hessian of ℓ_s with respect to what a layer
 *     reads, built column by column with bp_hvp on a copy of the network in
 *     which that layer reads (input + b), b a parameter: column j = H e_j on
 *     b's block (the weight-Hessian machinery, one sample per batch);
 *   - those columns against central finite differences of the gradient with
 *     respect to b (plain forward/backward, no R-op), to 1e-6;
 *   - the activation quantizer against the scales bp_qmodel_build gives the
 *     layer's input tensor with every layer at that many activation bits, and
 *     ‖Q(a) − a‖² recomputed here from the original network's activations.
 * Checked: the operator (exact products, block diagonal over samples, scaled
 * as the Hessian of the mean loss), the per-reader semantics (conv2's
 * Hessian is not the Hessian with respect to r itself, which the Add also
 * reads), Hutchinson within 4 standard errors of the exact traces, the
 * driver's fields, Ω and the file round trip (version 2). */
#include <criterion/criterion.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/data.h"
#include "core/fileio.h"
#include "core/exec.h"
#include "quant/qmodel.h"
#include "sensitivity/act.h"

enum { HW = 5, C = 3, K = 4, NS = 6, BATCH = 4, NLAYER = 3 };

/* Where the test puts its probe parameter b. */
enum { PROBE_NONE = -1, PROBE_CONV1 = 0, PROBE_CONV2 = 1, PROBE_FC = 2, PROBE_R_ALL = 3 };

static const size_t NA[NLAYER] = {HW * HW, C * HW * HW, C * 2 * 2};

static int add_par(bp_graph *g, const char *name, int nd, const int64_t *d, const float *init)
{
    int id = bp_graph_add_param(g, name, nd, d, init);
    cr_assert(id >= 0, "%s", bp_last_error());
    return id;
}

static int add_node(bp_graph *g, bp_op op, const char *name, const int *in, int nin, const bp_attrs *a)
{
    int id = bp_graph_add_node(g, op, name, in, nin, name, a);
    cr_assert(id >= 0, "%s: %s", name, bp_last_error());
    return id;
}

/* The network; with probe >= 0 a zero parameter "probe.b" is added to what
 * the chosen layer reads (PROBE_R_ALL: to r itself, for both readers). */
static bp_graph *net(int probe)
{
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_taus2);
    gsl_rng_set(rng, 11);
    float w1[C * 9], b1[C], w2[C * C * 9], bn[2][4][C], w3[K * 12], b3[K];
    for (int i = 0; i < C * 9; i++)
        w1[i] = (float)gsl_ran_gaussian(rng, 0.6);
    for (int i = 0; i < C; i++)
        b1[i] = (float)gsl_ran_gaussian(rng, 0.2);
    for (int i = 0; i < C * C * 9; i++)
        w2[i] = (float)gsl_ran_gaussian(rng, 0.35);
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < C; i++) {
            bn[k][0][i] = (float)(0.8 + 0.4 * gsl_rng_uniform(rng));
            bn[k][1][i] = (float)gsl_ran_gaussian(rng, 0.2);
            bn[k][2][i] = (float)gsl_ran_gaussian(rng, 0.1);
            bn[k][3][i] = (float)(0.5 + gsl_rng_uniform(rng));
        }
    for (int i = 0; i < K * 12; i++)
        w3[i] = (float)gsl_ran_gaussian(rng, 0.3);
    for (int i = 0; i < K; i++)
        b3[i] = (float)gsl_ran_gaussian(rng, 0.1);
    gsl_rng_free(rng);

    bp_graph *g = bp_graph_new();
    int64_t xd[4] = {1, 1, HW, HW};
    int x = bp_graph_add_input(g, "input", 4, xd);
    g->input = x;
    int64_t dw1[4] = {C, 1, 3, 3}, dc[1] = {C}, dw2[4] = {C, C, 3, 3}, dw3[2] = {K, 12}, dk[1] = {K};
    int pw1 = add_par(g, "conv1.weight", 4, dw1, w1), pb1 = add_par(g, "conv1.bias", 1, dc, b1);
    int pbn[2][4];
    static const char *bnn[4] = {"weight", "bias", "running_mean", "running_var"};
    for (int k = 0; k < 2; k++)
        for (int q = 0; q < 4; q++) {
            char name[64];
            snprintf(name, sizeof name, "bn%d.%s", k + 1, bnn[q]);
            pbn[k][q] = add_par(g, name, 1, dc, bn[k][q]);
            if (q >= 2)
                g->values[pbn[k][q]].trainable = 0;
        }
    int pw2 = add_par(g, "conv2.weight", 4, dw2, w2);
    int pw3 = add_par(g, "fc.weight", 2, dw3, w3), pb3 = add_par(g, "fc.bias", 1, dk, b3);

    bp_attrs a = bp_attrs_default(), pad = bp_attrs_default();
    pad.pads[0] = pad.pads[1] = pad.pads[2] = pad.pads[3] = 1;
    int64_t dx[4] = {1, 1, HW, HW}, dr[4] = {1, C, HW, HW}, df[2] = {1, 12};
    int in = x;
    if (probe == PROBE_CONV1) {
        int b = add_par(g, "probe.b", 4, dx, NULL);
        in = add_node(g, BP_OP_ADD, "probe_add", (int[]){x, b}, 2, &a);
    }
    int y = add_node(g, BP_OP_CONV, "conv1", (int[]){in, pw1, pb1}, 3, &pad);
    y = add_node(g, BP_OP_BN, "bn1", (int[]){y, pbn[0][0], pbn[0][1], pbn[0][2], pbn[0][3]}, 5, &a);
    int r = add_node(g, BP_OP_RELU, "relu1", (int[]){y}, 1, &a);
    int r_conv = r, r_add = r;
    if (probe == PROBE_CONV2 || probe == PROBE_R_ALL) {
        int b = add_par(g, "probe.b", 4, dr, NULL);
        r_conv = add_node(g, BP_OP_ADD, "probe_add", (int[]){r, b}, 2, &a);
        if (probe == PROBE_R_ALL)
            r_add = r_conv;
    }
    y = add_node(g, BP_OP_CONV, "conv2", (int[]){r_conv, pw2}, 2, &pad);
    y = add_node(g, BP_OP_BN, "bn2", (int[]){y, pbn[1][0], pbn[1][1], pbn[1][2], pbn[1][3]}, 5, &a);
    y = add_node(g, BP_OP_ADD, "res", (int[]){y, r_add}, 2, &a);
    y = add_node(g, BP_OP_RELU, "relu2", (int[]){y}, 1, &a);
    bp_attrs mp = bp_attrs_default();
    mp.kernel[0] = mp.kernel[1] = 2;
    mp.stride[0] = mp.stride[1] = 2;
    y = add_node(g, BP_OP_MAXPOOL, "pool", (int[]){y}, 1, &mp);
    y = add_node(g, BP_OP_FLATTEN, "flat", (int[]){y}, 1, &a);
    if (probe == PROBE_FC) {
        int b = add_par(g, "probe.b", 2, df, NULL);
        y = add_node(g, BP_OP_ADD, "probe_add", (int[]){y, b}, 2, &a);
    }
    bp_attrs gm = bp_attrs_default();
    gm.trans_b = 1;
    g->output = add_node(g, BP_OP_GEMM, "fc", (int[]){y, pw3, pb3}, 3, &gm);
    return g;
}

static float XF[NS * HW * HW];
static bp_real X[NS * HW * HW];
static int Y[NS];
static bp_graph *G;
/* Exact per-sample Hessians: HS[l][s] is (NA[l], NA[l]) row-major, of ℓ_s. */
static double *HS[NLAYER + 1][NS];
static double EXACT[NLAYER + 1]; /* Tr of the mean loss's Hessian = mean_s Tr(HS) */
static char DIR[64], SPEC[300];

static void write_npy(const char *path, const char *descr, const char *shape, const void *data,
                      size_t bytes)
{
    char hdr[128];
    int n = snprintf(hdr, sizeof hdr, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr, shape);
    int total = 10 + n + 1, pad = (64 - total % 64) % 64;
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    unsigned short hl = (unsigned short)(n + pad + 1);
    fwrite("\x93NUMPY\x01\x00", 1, 8, f);
    fwrite(&hl, 2, 1, f);
    fwrite(hdr, 1, n, f);
    for (int i = 0; i < pad; i++)
        fputc(' ', f);
    fputc('\n', f);
    fwrite(data, 1, bytes, f);
    fclose(f);
}

/* Column by column with bp_hvp on the probe network, one sample per batch. */
static void exact_hessians(int probe, size_t na)
{
    bp_graph *pg = net(probe);
    int b = bp_graph_find(pg, "probe.b");
    cr_assert(b >= 0);
    cr_assert_eq(pg->values[b].numel, na);
    size_t off = pg->values[b].offset, np = pg->nparams;
    bp_exec *ex = bp_exec_new(pg, 1, BP_EXEC_GRAD | BP_EXEC_ROP);
    cr_assert_not_null(ex);
    bp_real *v = calloc(np, sizeof *v), *hv = malloc(np * sizeof *hv);
    EXACT[probe] = 0;
    for (int s = 0; s < NS; s++) {
        double *H = HS[probe][s] = malloc(na * na * sizeof *H);
        for (size_t j = 0; j < na; j++) {
            memset(hv, 0, np * sizeof *hv);
            v[off + j] = 1;
            cr_assert_eq(bp_hvp(ex, pg->params, X + (size_t)s * HW * HW, &Y[s], 1, v, hv, NULL, NULL),
                         BP_OK, "%s", bp_last_error());
            v[off + j] = 0;
            for (size_t i = 0; i < na; i++)
                H[i * na + j] = hv[off + i];
        }
        for (size_t j = 0; j < na; j++)
            EXACT[probe] += H[j * na + j] / NS;
    }
    free(v);
    free(hv);
    bp_exec_free(ex);
    bp_graph_free(pg);
}

static void setup(void)
{
    omp_set_num_threads(1);
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_taus2);
    gsl_rng_set(rng, 5);
    for (int i = 0; i < NS * HW * HW; i++) {
        XF[i] = (float)gsl_ran_gaussian(rng, 1.0);
        X[i] = XF[i];
    }
    for (int i = 0; i < NS; i++)
        Y[i] = (int)gsl_rng_uniform_int(rng, K);
    gsl_rng_free(rng);
    G = net(PROBE_NONE);
    for (int l = 0; l < NLAYER; l++)
        exact_hessians(l, NA[l]);
    exact_hessians(PROBE_R_ALL, NA[1]);

    strcpy(DIR, "/tmp/bp_f64act_XXXXXX");
    cr_assert_not_null(mkdtemp(DIR));
    char xp[128], yp[128], shape[64];
    snprintf(xp, sizeof xp, "%s/x.npy", DIR);
    snprintf(yp, sizeof yp, "%s/y.npy", DIR);
    snprintf(shape, sizeof shape, "(%d, 1, %d, %d)", NS, HW, HW);
    write_npy(xp, "<f4", shape, XF, sizeof XF);
    int32_t y32[NS];
    for (int i = 0; i < NS; i++)
        y32[i] = Y[i];
    snprintf(shape, sizeof shape, "(%d,)", NS);
    write_npy(yp, "<i4", shape, y32, sizeof y32);
    snprintf(SPEC, sizeof SPEC, "npy:%s,%s", xp, yp);
}

static void teardown(void)
{
    char p[160];
    const char *files[] = {"x.npy", "y.npy", "sens.json"};
    for (size_t k = 0; k < sizeof files / sizeof *files; k++) {
        snprintf(p, sizeof p, "%s/%s", DIR, files[k]);
        unlink(p);
    }
    rmdir(DIR);
    for (int l = 0; l <= NLAYER; l++)
        for (int s = 0; s < NS; s++)
            free(HS[l][s]);
    bp_graph_free(G);
}

TestSuite(act64, .init = setup, .fini = teardown);

/* The reference itself: symmetric, not vanishing, and its columns equal
 * central differences of the gradient with respect to b. */
Test(act64, exact_hessian_matches_finite_differences)
{
    for (int probe = 0; probe <= NLAYER; probe++) {
        size_t na = NA[probe == PROBE_R_ALL ? 1 : probe];
        bp_graph *pg = net(probe);
        int b = bp_graph_find(pg, "probe.b");
        size_t off = pg->values[b].offset, np = pg->nparams;
        bp_exec *ex = bp_exec_new(pg, 1, BP_EXEC_GRAD);
        bp_real *gp = malloc(np * sizeof *gp), *gm = malloc(np * sizeof *gm);
        const double h = 1e-5;
        for (int s = 0; s < NS; s += 2) {
            const double *H = HS[probe][s];
            double big = 0;
            for (size_t i = 0; i < na * na; i++)
                big = fmax(big, fabs(H[i]));
            cr_assert(big > 1e-3, "layer probe %d sample %d: Hessian vanishes (%g)", probe, s, big);
            for (size_t j = 0; j < na; j++) {
                for (int sg = 0; sg < 2; sg++) {
                    bp_real *gg = sg ? gm : gp;
                    memset(gg, 0, np * sizeof *gg);
                    pg->params[off + j] = sg ? -h : h;
                    cr_assert_eq(bp_forward(ex, pg->params, X + (size_t)s * HW * HW, 1, BP_MODE_INFER), BP_OK);
                    cr_assert_eq(bp_loss_softmax_ce(ex, &Y[s], NULL, NULL), BP_OK);
                    cr_assert_eq(bp_backward(ex, pg->params, gg), BP_OK);
                }
                pg->params[off + j] = 0;
                for (size_t i = 0; i < na; i++) {
                    double fd = ((double)gp[off + i] - (double)gm[off + i]) / (2 * h);
                    cr_assert(fabs(fd - H[i * na + j]) <= 1e-6 * big,
                              "probe %d sample %d H[%zu][%zu] = %.12g, finite differences %.12g", probe,
                              s, i, j, H[i * na + j], fd);
                    cr_assert(fabs(H[i * na + j] - H[j * na + i]) <= 1e-9 * big,
                              "probe %d sample %d: H[%zu][%zu] = %.17g, H[%zu][%zu] = %.17g", probe, s,
                              i, j, H[i * na + j], j, i, H[j * na + i]);
                }
            }
        }
        free(gp);
        free(gm);
        bp_exec_free(ex);
        bp_graph_free(pg);
    }
}

Test(act64, graph_gives_each_layer_a_private_input)
{
    bp_graph *ag;
    int *av, nl;
    cr_assert_eq(bp_act_graph(G, &ag, &av, &nl), BP_OK, "%s", bp_last_error());
    cr_assert_eq(nl, NLAYER);
    bp_layer *L, *AL;
    int n1, n2;
    cr_assert_eq(bp_graph_layers(G, &L, &n1), BP_OK);
    cr_assert_eq(bp_graph_layers(ag, &AL, &n2), BP_OK);
    cr_assert_eq(n2, NLAYER);
    /* same forward, bit for bit; the private input equals what the layer read */
    bp_exec *e1 = bp_exec_new(G, NS, 0), *e2 = bp_exec_new(ag, NS, 0);
    cr_assert_eq(bp_forward(e1, G->params, X, NS, BP_MODE_INFER), BP_OK);
    cr_assert_eq(bp_forward(e2, ag->params, X, NS, BP_MODE_INFER), BP_OK);
    const bp_real *o1 = bp_exec_act(e1, G->output), *o2 = bp_exec_act(e2, ag->output);
    for (int i = 0; i < NS * K; i++)
        cr_assert_eq(o1[i], o2[i]);
    for (int l = 0; l < NLAYER; l++) {
        cr_assert_str_eq(AL[l].name, L[l].name);
        cr_assert_eq(AL[l].input, av[l]);
        cr_assert_eq(ag->values[av[l]].numel, NA[l]);
        const bp_real *a1 = bp_exec_act(e1, L[l].input), *a2 = bp_exec_act(e2, av[l]);
        for (size_t i = 0; i < NS * NA[l]; i++)
            cr_assert_eq(a1[i], a2[i]);
        /* only the layer reads it */
        int readers = 0;
        for (int i = 0; i < ag->nnodes; i++)
            for (int j = 0; j < ag->nodes[i].nin; j++)
                readers += ag->nodes[i].in[j] == av[l];
        cr_assert_eq(readers, 1);
    }
    bp_exec_free(e1);
    bp_exec_free(e2);
    free(L);
    free(AL);
    free(av);
    bp_graph_free(ag);
}

/* bp_act_op_apply = block-diagonal (1/N)·H_s v_s, exactly, in uneven batches. */
Test(act64, operator_is_the_mean_loss_hessian)
{
    bp_act_op *m;
    cr_assert_eq(bp_act_op_new_memory(G, X, Y, NS, BATCH, &m), BP_OK, "%s", bp_last_error());
    cr_assert_eq(bp_act_op_samples(m), NS);
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_taus2);
    gsl_rng_set(rng, 9);
    for (int l = 0; l < NLAYER; l++) {
        size_t na = bp_act_op_numel(m, l), n = NS * na;
        cr_assert_eq(na, NA[l]);
        double *v = malloc(n * sizeof *v), *hv = malloc(n * sizeof *hv);
        for (size_t i = 0; i < n; i++)
            v[i] = gsl_ran_gaussian(rng, 1.0);
        cr_assert_eq(bp_act_op_apply(m, l, v, hv), BP_OK, "%s", bp_last_error());
        double big = 0, worst = 0;
        for (int s = 0; s < NS; s++)
            for (size_t i = 0; i < na; i++) {
                double ref = 0;
                for (size_t j = 0; j < na; j++)
                    ref += HS[l][s][i * na + j] * v[s * na + j] / NS;
                big = fmax(big, fabs(ref));
                worst = fmax(worst, fabs(ref - hv[s * na + i]));
            }
        cr_assert(big > 1e-6);
        cr_assert(worst <= 1e-10 * big, "layer %d: |H v − ref| = %g (max %g)", l, worst, big);
        free(v);
        free(hv);
    }
    gsl_rng_free(rng);
    cr_assert_eq(bp_act_op_rpasses(m), NLAYER * 2); /* batches 4 + 2 */
    bp_act_op_free(m);
}

/* conv2's input r is also read by the residual Add; its activation term is
 * about conv2's reading of r alone, which is a different Hessian. */
Test(act64, per_reader_not_per_tensor)
{
    double tr_reader = EXACT[PROBE_CONV2], tr_tensor = EXACT[PROBE_R_ALL];
    cr_assert(fabs(tr_reader - tr_tensor) > 0.05 * fabs(tr_tensor),
              "the two traces should differ: %g vs %g", tr_reader, tr_tensor);
    bp_act_op *m;
    cr_assert_eq(bp_act_op_new_memory(G, X, Y, NS, BATCH, &m), BP_OK, "%s", bp_last_error());
    size_t n = NS * NA[1];
    double *e = calloc(n, sizeof *e), *col = malloc(n * sizeof *col), tr = 0;
    for (size_t j = 0; j < n; j++) {
        e[j] = 1;
        cr_assert_eq(bp_act_op_apply(m, 1, e, col), BP_OK);
        e[j] = 0;
        tr += col[j];
    }
    cr_assert(fabs(tr - tr_reader) <= 1e-10 * fabs(tr_reader), "trace %.15g, exact %.15g", tr, tr_reader);
    free(e);
    free(col);
    bp_act_op_free(m);
}

Test(act64, hutchinson_within_four_standard_errors)
{
    bp_act_op *m;
    cr_assert_eq(bp_act_op_new_memory(G, X, Y, NS, BATCH, &m), BP_OK, "%s", bp_last_error());
    bp_trace_opts o = bp_trace_opts_default();
    o.tol = 1e-12; /* never converges: exactly max_probes */
    o.min_probes = 10;
    o.max_probes = 120;
    o.seed = 3;
    bp_trace_est est[NLAYER];
    cr_assert_eq(bp_act_traces(m, &o, NULL, est, NULL, NULL, NULL), BP_OK, "%s", bp_last_error());
    for (int l = 0; l < NLAYER; l++) {
        cr_assert_eq(est[l].probes, 120);
        cr_assert(est[l].se > 0 && isfinite(est[l].se));
        cr_assert(EXACT[l] > 0, "layer %d: exact trace %g", l, EXACT[l]);
        cr_assert(fabs(est[l].mean - EXACT[l]) <= 4 * est[l].se,
                  "layer %d: estimate %g ± %g, exact %g", l, est[l].mean, est[l].se, EXACT[l]);
        /* the standard error is honest: not orders of magnitude above the
         * error either (Rademacher probes on 6 samples: a few percent) */
        cr_assert(est[l].se < 0.2 * EXACT[l], "layer %d: se %g for trace %g", l, est[l].se, EXACT[l]);
    }
    /* the same probes whatever the batch size, and grouping does not matter */
    bp_act_op *m1;
    cr_assert_eq(bp_act_op_new_memory(G, X, Y, NS, 1, &m1), BP_OK);
    bp_trace_opts o2 = o;
    o2.max_probes = 30;
    o2.group = 7;
    bp_trace_est a[NLAYER], b[NLAYER];
    cr_assert_eq(bp_act_traces(m1, &o2, NULL, a, NULL, NULL, NULL), BP_OK);
    o2.group = 1;
    cr_assert_eq(bp_act_traces(m, &o2, NULL, b, NULL, NULL, NULL), BP_OK);
    for (int l = 0; l < NLAYER; l++) {
        cr_assert_eq(a[l].probes, b[l].probes);
        cr_assert(fabs(a[l].mean - b[l].mean) <= 1e-12 * fabs(b[l].mean), "%.17g vs %.17g", a[l].mean,
                  b[l].mean);
    }
    bp_act_op_free(m1);
    bp_act_op_free(m);
}

/* Stop rule: a loose tolerance stops after min_probes at the earliest, each
 * layer on its own, with the converged flag set. */
Test(act64, stop_rule)
{
    bp_act_op *m;
    cr_assert_eq(bp_act_op_new_memory(G, X, Y, NS, BATCH, &m), BP_OK);
    bp_trace_opts o = bp_trace_opts_default();
    o.tol = 0.5;
    o.min_probes = 5;
    o.max_probes = 50;
    bp_trace_est est[NLAYER];
    cr_assert_eq(bp_act_traces(m, &o, NULL, est, NULL, NULL, NULL), BP_OK);
    for (int l = 0; l < NLAYER; l++) {
        cr_assert(est[l].converged);
        cr_assert(est[l].probes >= 5 && est[l].probes < 50, "%d probes", est[l].probes);
        cr_assert(est[l].tol_reached <= 0.5);
    }
    o.min_probes = 20;
    o.max_probes = 10;
    cr_assert_eq(bp_act_traces(m, &o, NULL, est, NULL, NULL, NULL), BP_ERR_ARG);
    bp_act_op_free(m);
}

/* The quantizer is the validation stage's: the scale its model gives the
 * layer's input with every layer at a activation bits. */
Test(act64, quantizer_matches_the_validation_stage)
{
    bp_act_opts o = bp_act_opts_default();
    int bits[3] = {2, 4, 8};
    o.nbits = 3;
    memcpy(o.bits, bits, sizeof bits);
    for (int method = 0; method < 3; method++) {
        o.calib = (bp_calib_method)method;
        bp_act_quant q[NLAYER];
        cr_assert_eq(bp_act_quantizers(G, X, NS, &o, q), BP_OK, "%s", bp_last_error());
        cr_assert_eq(q[0].is_signed, 1);
        cr_assert_eq(q[1].is_signed, 0);
        cr_assert_eq(q[2].is_signed, 0);
        for (int k = 0; k < 3; k++) {
            int w[NLAYER] = {8, 8, 8}, a[NLAYER] = {bits[k], bits[k], bits[k]};
            bp_qopts qo = bp_qopts_default();
            qo.calib = o.calib;
            bp_qmodel *qm;
            cr_assert_eq(bp_qmodel_build(G, w, a, X, NS, &qo, &qm), BP_OK, "%s", bp_last_error());
            for (int l = 0; l < NLAYER; l++) {
                const bp_qtensor *T = &qm->t[qm->view_t[l]];
                cr_assert_eq(T->bits, bits[k]);
                cr_assert_eq(T->is_signed, q[l].is_signed);
                cr_assert(fabs(T->scale - q[l].scale[k]) <= 1e-15 * T->scale,
                          "method %d layer %d a%d: scale %.17g, stage %.17g", method, l, bits[k],
                          q[l].scale[k], T->scale);
            }
            bp_qmodel_free(qm);
        }
    }
    /* bits outside 2..16 and unsorted lists are refused */
    bp_act_quant q[NLAYER];
    o.bits[0] = 1;
    cr_assert_eq(bp_act_quantizers(G, X, NS, &o, q), BP_ERR_ARG);
    o.bits[0] = 4;
    o.bits[1] = 4;
    cr_assert_eq(bp_act_quantizers(G, X, NS, &o, q), BP_ERR_ARG);
}

/* ‖Q(x) − x‖² by hand on values where the answer is known. */
Test(act64, quant_err2_by_hand)
{
    bp_act_quant q = {.is_signed = 0, .nbits = 1, .bits = {2}, .clip = {3}, .scale = {1}};
    /* unsigned 2 bits, scale 1: levels 0..3; -0.5 -> 0, 1.4 -> 1, 2.5 -> 3 (half away), 7 -> 3 */
    bp_real x[4] = {-0.5, 1.4, 2.5, 7};
    double e = bp_act_quant_err2(&q, 0, x, 4);
    cr_assert(fabs(e - (0.25 + 0.16 + 0.25 + 16)) < 1e-12, "%.17g", e);
    q.is_signed = 1; /* signed 2 bits: -2..1 */
    bp_real y[3] = {-3, -1.5, 1.2};
    e = bp_act_quant_err2(&q, 0, y, 3);
    cr_assert(fabs(e - (1 + 0.25 + 0.04)) < 1e-12, "%.17g", e);
}

/* The driver: fields, Ω, settings, and the file round trip. */
Test(act64, driver_fills_the_sensitivity_set)
{
    bp_data_opts dopt = bp_data_opts_default();
    bp_stream *s;
    cr_assert_eq(bp_stream_open(SPEC, &dopt, &s), BP_OK, "%s", bp_last_error());
    bp_sens_opts so = bp_sens_opts_default();
    so.samples = NS;
    so.batch = BATCH;
    so.trace.min_probes = 2;
    so.trace.max_probes = 2;
    bp_sens sens;
    cr_assert_eq(bp_sens_run(G, s, NULL, &so, &sens, NULL, NULL, NULL), BP_OK, "%s", bp_last_error());
    bp_act_opts o = bp_act_opts_default();
    o.samples = NS;
    o.batch = BATCH;
    o.calib_samples = 4; /* ranges from the first 4, errors over all 6 */
    o.trace.tol = 1e-12;
    o.trace.min_probes = 10;
    o.trace.max_probes = 100;
    bp_act_report rep;
    cr_assert_eq(bp_act_sens_run(G, s, &o, &sens, &rep, NULL, NULL), BP_OK, "%s", bp_last_error());
    cr_assert_eq(rep.samples, NS);
    cr_assert_eq(rep.calib_samples, 4);
    cr_assert_eq(rep.rpasses, NLAYER * 100 * 2);

    /* independent ‖Q(a) − a‖²: the stage's scales on 4 samples, activations of
     * the original network on all 6, quantized here */
    bp_layer *L;
    int nl;
    cr_assert_eq(bp_graph_layers(G, &L, &nl), BP_OK);
    bp_exec *ex = bp_exec_new(G, NS, 0);
    cr_assert_eq(bp_forward(ex, G->params, X, NS, BP_MODE_INFER), BP_OK);
    for (int l = 0; l < NLAYER; l++) {
        const bp_sens_layer *sl = &sens.layers[l];
        cr_assert(sl->has_act);
        cr_assert_eq(sl->act_probes, 100);
        cr_assert(fabs(sl->act_trace - EXACT[l]) <= 4 * sl->act_stderr, "layer %d: %g ± %g vs %g", l,
                  sl->act_trace, sl->act_stderr, EXACT[l]);
        cr_assert_eq(sl->act_numel, (int64_t)NA[l]);
        cr_assert_eq(sl->act_signed, l == 0);
        cr_assert_eq(sl->nact, 6);
        const bp_real *act = bp_exec_act(ex, L[l].input);
        for (int k = 0; k < sl->nact; k++) {
            int b = sl->act[k].bits;
            int w[NLAYER] = {8, 8, 8}, a[NLAYER] = {b, b, b};
            double scale;
            if (b <= 8) {
                bp_qmodel *qm;
                cr_assert_eq(bp_qmodel_build(G, w, a, X, 4, NULL, &qm), BP_OK, "%s", bp_last_error());
                scale = qm->t[qm->view_t[l]].scale;
                bp_qmodel_free(qm);
            } else {
                cr_assert_fail("default bits are at most 8");
            }
            double lo = l == 0 ? -pow(2, b - 1) : 0, hi = l == 0 ? pow(2, b - 1) - 1 : pow(2, b) - 1;
            double e2 = 0;
            for (size_t i = 0; i < NS * NA[l]; i++) {
                double qv = round(act[i] / scale);
                qv = qv < lo ? lo : qv > hi ? hi : qv;
                e2 += (qv * scale - act[i]) * (qv * scale - act[i]);
            }
            e2 /= NS;
            cr_assert(e2 > 0);
            cr_assert(fabs(sl->act[k].dx2 - e2) <= 1e-12 * e2, "layer %d a%d: dx2 %.17g, by hand %.17g",
                      l, b, sl->act[k].dx2, e2);
            cr_assert(fabs(sl->act[k].clip - scale * hi) <= 1e-12 * sl->act[k].clip);
            double om = fabs(sl->act_trace) / NA[l] * e2;
            cr_assert(fabs(sl->act[k].omega - om) <= 1e-12 * om);
            if (k)
                cr_assert(sl->act[k].dx2 < sl->act[k - 1].dx2, "more bits, less error");
        }
    }
    bp_exec_free(ex);
    free(L);
    cr_assert(sens.settings.has_act);
    cr_assert_eq(sens.settings.act_samples, NS);
    cr_assert_eq(sens.settings.act_calib_samples, 4);
    cr_assert_str_eq(sens.settings.act_calib, "mse");

    /* round trip: version 2, every field back */
    char path[160];
    snprintf(path, sizeof path, "%s/sens.json", DIR);
    cr_assert_eq(bp_sens_write(path, &sens), BP_OK, "%s", bp_last_error());
    char *text;
    size_t len;
    cr_assert_eq(bp_read_file(path, &text, &len), BP_OK);
    cr_assert(strstr(text, "\"version\": 2"), "%.200s", text);
    free(text);
    bp_sens back;
    cr_assert_eq(bp_sens_read(path, &back), BP_OK, "%s", bp_last_error());
    for (int l = 0; l < NLAYER; l++) {
        const bp_sens_layer *x = &sens.layers[l], *y = &back.layers[l];
        cr_assert_eq(y->act_trace, x->act_trace);
        cr_assert_eq(y->act_stderr, x->act_stderr);
        cr_assert_eq(y->act_probes, x->act_probes);
        cr_assert_eq(y->act_converged, x->act_converged);
        cr_assert_eq(y->act_numel, x->act_numel);
        cr_assert_eq(y->act_signed, x->act_signed);
        cr_assert_eq(y->nact, x->nact);
        for (int k = 0; k < x->nact; k++) {
            cr_assert_eq(y->act[k].bits, x->act[k].bits);
            cr_assert_eq(y->act[k].dx2, x->act[k].dx2);
            cr_assert_eq(y->act[k].clip, x->act[k].clip);
            cr_assert_eq(y->act[k].omega, x->act[k].omega);
        }
    }
    cr_assert(back.settings.has_act);
    cr_assert_eq(back.settings.act_nbits, 6);
    cr_assert_eq(back.settings.act_calib_samples, 4);
    cr_assert_eq(back.settings.act_max_probes, 100);
    bp_sens_free(&back);

    /* a sensitivity set of another model is refused */
    strcpy(sens.layers[1].sig.name, "other");
    cr_assert_eq(bp_act_sens_run(G, s, &o, &sens, NULL, NULL, NULL), BP_ERR_MISMATCH);
    free(rep.tol_reached);
    bp_sens_free(&sens);
    bp_stream_close(s);
}
