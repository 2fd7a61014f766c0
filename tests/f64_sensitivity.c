/* Sensitivity on a tiny network in double precision (bp_real = double):
 * conv(1->4, 3x3, pad 1, bias) -> BN (running stats) -> ReLU -> flatten ->
 * Gemm(144 -> 3, transB, bias): 36 + 432 = 468 layer weights.
 *
 * The exact Hessian over the layer weights is built column by column with the
 * model operator (unit vectors through bp_hvp, streamed in uneven batches).
 * References, each independent of the code they check:
 *   - symmetry of that matrix;
 *   - per-layer traces: diagonal sum vs the sum of the block's eigenvalues
 *     (LAPACKE_dsyev), to 1e-8;
 *   - the diagonal vs central finite differences of the gradient (plain
 *     forward/backward, no R-op, one batch of all samples);
 *   - batch weighting: the streamed operator vs one bp_hvp on all samples at
 *     once, and the .npy stream vs arrays in memory;
 *   - Hutchinson estimates (both schemes) within 4 standard errors of the
 *     exact traces; power iteration and top-k vs dsyev eigenvalues;
 *   - the driver: Ω = Tr/n·‖ΔW‖², an all-zero layer, non-finite weights and
 *     loss as errors. */
#include <criterion/criterion.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <lapacke.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/exec.h"
#include "sensitivity/sensitivity.h"

enum { C = 4, HW = 6, K = 3, NS = 10, BATCH = 4 };

static bp_graph *tiny_net(unsigned long seed)
{
    gsl_rng *r = gsl_rng_alloc(gsl_rng_taus2);
    gsl_rng_set(r, seed);
    bp_graph *g = bp_graph_new();
    int64_t xd[4] = {1, 1, HW, HW};
    int x = bp_graph_add_input(g, "input", 4, xd);
    float w1[C * 9], b1[C], sc[C], sh[C], mu[C], var[C], w2[K * C * HW * HW], b2[K];
    for (int i = 0; i < C * 9; i++)
        w1[i] = (float)gsl_ran_gaussian(r, 0.5);
    for (int i = 0; i < C; i++) {
        b1[i] = (float)gsl_ran_gaussian(r, 0.1);
        sc[i] = (float)(0.8 + 0.4 * gsl_rng_uniform(r));
        sh[i] = (float)gsl_ran_gaussian(r, 0.1);
        mu[i] = (float)gsl_ran_gaussian(r, 0.1);
        var[i] = (float)(0.5 + gsl_rng_uniform(r));
    }
    for (int i = 0; i < K * C * HW * HW; i++)
        w2[i] = (float)gsl_ran_gaussian(r, 0.15);
    for (int i = 0; i < K; i++)
        b2[i] = (float)gsl_ran_gaussian(r, 0.1);
    int64_t d_w1[4] = {C, 1, 3, 3}, d_c[1] = {C}, d_w2[2] = {K, C * HW * HW}, d_k[1] = {K};
    int pw1 = bp_graph_add_param(g, "conv1.weight", 4, d_w1, w1);
    int pb1 = bp_graph_add_param(g, "conv1.bias", 1, d_c, b1);
    int psc = bp_graph_add_param(g, "bn1.weight", 1, d_c, sc);
    int psh = bp_graph_add_param(g, "bn1.bias", 1, d_c, sh);
    int pmu = bp_graph_add_param(g, "bn1.running_mean", 1, d_c, mu);
    int pva = bp_graph_add_param(g, "bn1.running_var", 1, d_c, var);
    g->values[pmu].trainable = g->values[pva].trainable = 0;
    int pw2 = bp_graph_add_param(g, "fc.weight", 2, d_w2, w2);
    int pb2 = bp_graph_add_param(g, "fc.bias", 1, d_k, b2);
    bp_attrs a = bp_attrs_default();
    a.pads[0] = a.pads[1] = a.pads[2] = a.pads[3] = 1;
    int in1[3] = {x, pw1, pb1};
    int y = bp_graph_add_node(g, BP_OP_CONV, "conv1", in1, 3, "c1", &a);
    cr_assert(y >= 0, "%s", bp_last_error());
    a = bp_attrs_default();
    int in2[5] = {y, psc, psh, pmu, pva};
    y = bp_graph_add_node(g, BP_OP_BN, "bn1", in2, 5, "b1", &a);
    int in3[1] = {y};
    y = bp_graph_add_node(g, BP_OP_RELU, "relu1", in3, 1, "r1", &a);
    in3[0] = y;
    y = bp_graph_add_node(g, BP_OP_FLATTEN, "flat", in3, 1, "f1", &a);
    a.trans_b = 1;
    int in4[3] = {y, pw2, pb2};
    y = bp_graph_add_node(g, BP_OP_GEMM, "fc", in4, 3, "logits", &a);
    cr_assert(y >= 0, "%s", bp_last_error());
    g->input = x;
    g->output = y;
    gsl_rng_free(r);
    return g;
}

/* Samples as float32 values (exact in the .npy file too), labels 0..K-1. */
static void tiny_data(float *xf, bp_real *x, int *y, unsigned long seed)
{
    gsl_rng *r = gsl_rng_alloc(gsl_rng_taus2);
    gsl_rng_set(r, seed);
    for (int i = 0; i < NS * HW * HW; i++) {
        xf[i] = (float)gsl_ran_gaussian(r, 1.0);
        x[i] = xf[i];
    }
    for (int i = 0; i < NS; i++)
        y[i] = (int)gsl_rng_uniform_int(r, K);
    gsl_rng_free(r);
}

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

/* Shared fixture: the net, data, operator and its exact Hessian. */
static bp_graph *G;
static float XF[NS * HW * HW];
static bp_real X[NS * HW * HW];
static int Y[NS];
static bp_model_op *M;
static bp_linop OP;
static size_t D;
static double *H; /* (D, D) row-major: column j = H e_j */
static const bp_layer *L;
static const bp_block *B;
static int NL;
static char DIR[64], SPEC[300];

static void setup(void)
{
    /* The net is tiny: OpenMP threads only add overhead (and spin on a shared
     * machine), one thread keeps the suite well under a second. */
    omp_set_num_threads(1);
    G = tiny_net(3);
    tiny_data(XF, X, Y, 4);
    cr_assert_eq(bp_model_op_new_memory(G, X, Y, NS, BATCH, &M), BP_OK, "%s", bp_last_error());
    OP = bp_model_op_linop(M);
    D = OP.n;
    NL = bp_model_op_layers(M, &L, &B);
    cr_assert_eq(NL, 2);
    cr_assert_eq(D, 36 + 432);
    H = malloc(D * D * sizeof *H);
    double *e = calloc(D, sizeof *e), *col = malloc(D * sizeof *col);
    for (size_t j = 0; j < D; j++) {
        e[j] = 1;
        cr_assert_eq(OP.apply(OP.ctx, e, col), BP_OK, "%s", bp_last_error());
        e[j] = 0;
        for (size_t i = 0; i < D; i++)
            H[i * D + j] = col[i];
    }
    free(e);
    free(col);
    strcpy(DIR, "/tmp/bp_f64sens_XXXXXX");
    cr_assert_not_null(mkdtemp(DIR));
    char xp[128], yp[128];
    snprintf(xp, sizeof xp, "%s/x.npy", DIR);
    snprintf(yp, sizeof yp, "%s/y.npy", DIR);
    char shape[64];
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
    char p[128];
    snprintf(p, sizeof p, "%s/x.npy", DIR);
    unlink(p);
    snprintf(p, sizeof p, "%s/y.npy", DIR);
    unlink(p);
    rmdir(DIR);
    free(H);
    bp_model_op_free(M);
    bp_graph_free(G);
}

TestSuite(sens64, .init = setup, .fini = teardown);

static double maxabs_block(size_t off, size_t len)
{
    double m = 0;
    for (size_t i = off; i < off + len; i++)
        for (size_t j = off; j < off + len; j++)
            m = fmax(m, fabs(H[i * D + j]));
    return m;
}

Test(sens64, hessian_is_symmetric)
{
    double m = maxabs_block(0, D), worst = 0;
    cr_assert(m > 1e-3, "the Hessian should not vanish (max %g)", m);
    for (size_t i = 0; i < D; i++)
        for (size_t j = 0; j < i; j++)
            worst = fmax(worst, fabs(H[i * D + j] - H[j * D + i]));
    cr_assert(worst <= 1e-12 * m, "asymmetry %g (max entry %g)", worst, m);
}

/* Block eigenvalues by LAPACK (ascending). */
static double *block_eigs(size_t off, size_t len)
{
    double *a = malloc(len * len * sizeof *a), *w = malloc(len * sizeof *w);
    for (size_t i = 0; i < len; i++)
        for (size_t j = 0; j < len; j++)
            a[i * len + j] = H[(off + i) * D + off + j];
    cr_assert_eq(LAPACKE_dsyev(LAPACK_ROW_MAJOR, 'N', 'U', (int)len, a, (int)len, w), 0);
    free(a);
    return w;
}

static double block_trace(int l)
{
    double t = 0;
    for (size_t i = B[l].off; i < B[l].off + B[l].len; i++)
        t += H[i * D + i];
    return t;
}

Test(sens64, trace_equals_eigenvalue_sum)
{
    for (int l = 0; l < NL; l++) {
        double *w = block_eigs(B[l].off, B[l].len), s = 0;
        for (size_t i = 0; i < B[l].len; i++)
            s += w[i];
        double t = block_trace(l);
        cr_assert(fabs(t - s) <= 1e-8 * fmax(fabs(t), 1e-3), "layer %s: diagonal sum %.15g, eigenvalue sum %.15g",
                  L[l].name, t, s);
        free(w);
    }
}

/* Mean loss gradient over all samples in one batch, no R-op involved. */
static void gradient(bp_exec *ex, bp_real *params, bp_real *grad)
{
    memset(grad, 0, G->nparams * sizeof *grad);
    cr_assert_eq(bp_forward(ex, params, X, NS, BP_MODE_INFER), BP_OK, "%s", bp_last_error());
    cr_assert_eq(bp_loss_softmax_ce(ex, Y, NULL, NULL), BP_OK);
    cr_assert_eq(bp_backward(ex, params, grad), BP_OK);
}

Test(sens64, diagonal_matches_finite_differences)
{
    bp_exec *ex = bp_exec_new(G, NS, BP_EXEC_GRAD);
    cr_assert_not_null(ex, "%s", bp_last_error());
    bp_real *p = malloc(G->nparams * sizeof *p), *gp = malloc(G->nparams * sizeof *gp),
            *gm = malloc(G->nparams * sizeof *gm);
    memcpy(p, G->params, G->nparams * sizeof *p);
    const double h = 1e-6; /* small: ReLU kinks must not be crossed */
    for (int l = 0; l < NL; l++) {
        size_t woff = G->values[L[l].weight].offset;
        double scale = maxabs_block(B[l].off, B[l].len), fd_sum = 0, worst = 0;
        for (size_t j = 0; j < B[l].len; j++) {
            double w0 = p[woff + j];
            p[woff + j] = w0 + h;
            gradient(ex, p, gp);
            p[woff + j] = w0 - h;
            gradient(ex, p, gm);
            p[woff + j] = w0;
            double fd = (gp[woff + j] - gm[woff + j]) / (2 * h);
            double ex_ = H[(B[l].off + j) * D + B[l].off + j];
            worst = fmax(worst, fabs(fd - ex_));
            fd_sum += fd;
        }
        cr_assert(worst <= 1e-6 * scale, "layer %s: diagonal vs finite differences off by %g (scale %g)",
                  L[l].name, worst, scale);
        double t = block_trace(l);
        cr_assert(fabs(fd_sum - t) <= 1e-6 * fmax(fabs(t), scale), "layer %s: trace %.12g, from differences %.12g",
                  L[l].name, t, fd_sum);
    }
    free(p);
    free(gp);
    free(gm);
    bp_exec_free(ex);
}

/* The operator streams batches of 4, 4 and 2 weighted by size; one bp_hvp on
 * all 10 samples at once must give the same product. */
Test(sens64, batch_weighting_and_stream)
{
    bp_exec *ex = bp_exec_new(G, NS, BP_EXEC_GRAD | BP_EXEC_ROP);
    cr_assert_not_null(ex);
    bp_real *v = calloc(G->nparams, sizeof *v), *hv = calloc(G->nparams, sizeof *hv);
    double *vc = malloc(D * sizeof *vc), *hc = malloc(D * sizeof *hc), *hs = malloc(D * sizeof *hs);
    for (size_t i = 0; i < D; i++)
        vc[i] = sin(1.0 + i);
    for (int l = 0; l < NL; l++)
        for (size_t j = 0; j < B[l].len; j++)
            v[G->values[L[l].weight].offset + j] = vc[B[l].off + j];
    double loss;
    cr_assert_eq(bp_hvp(ex, G->params, X, Y, NS, v, hv, NULL, &loss), BP_OK);
    cr_assert_eq(OP.apply(OP.ctx, vc, hc), BP_OK);
    cr_assert(fabs(bp_model_op_loss(M) - loss) <= 1e-12 * loss);
    double m = 0;
    for (size_t i = 0; i < D; i++)
        m = fmax(m, fabs(hc[i]));
    for (int l = 0; l < NL; l++)
        for (size_t j = 0; j < B[l].len; j++) {
            double a = hv[G->values[L[l].weight].offset + j], b = hc[B[l].off + j];
            cr_assert(fabs(a - b) <= 1e-12 * m, "layer %d entry %zu: %g vs %g", l, j, a, b);
        }
    /* The same through a .npy stream in batches of 3 (3, 3, 3, 1). */
    bp_stream *s;
    cr_assert_eq(bp_stream_open(SPEC, NULL, &s), BP_OK, "%s", bp_last_error());
    bp_model_op *ms;
    cr_assert_eq(bp_model_op_new_stream(G, s, 0, 3, &ms), BP_OK, "%s", bp_last_error());
    bp_linop ops = bp_model_op_linop(ms);
    for (int rep = 0; rep < 2; rep++) { /* twice: the stream must rewind */
        cr_assert_eq(ops.apply(ops.ctx, vc, hs), BP_OK, "%s", bp_last_error());
        for (size_t i = 0; i < D; i++)
            cr_assert(fabs(hs[i] - hc[i]) <= 1e-12 * m, "stream entry %zu: %g vs %g", i, hs[i], hc[i]);
    }
    cr_assert_eq(bp_model_op_products(ms), 2);
    bp_model_op *bad;
    cr_assert_eq(bp_model_op_new_stream(G, s, NS + 1, 3, &bad), BP_ERR_ARG);
    bp_model_op_free(ms);
    bp_stream_close(s);
    free(v);
    free(hv);
    free(vc);
    free(hc);
    free(hs);
    bp_exec_free(ex);
}

/* k directions in one pass over the data (shared forward) give what k
 * separate products give; more than the per-pass maximum splits cleanly. */
Test(sens64, apply_many_matches_apply)
{
    enum { KD = 11 };
    cr_assert_not_null(OP.apply_many);
    double *v = malloc(KD * D * sizeof *v), *hm = malloc(KD * D * sizeof *hm), *h1 = malloc(D * sizeof *h1);
    for (size_t i = 0; i < KD * D; i++)
        v[i] = cos(0.37 * i);
    long before = bp_model_op_products(M);
    cr_assert_eq(bp_linop_apply_many(&OP, KD, v, hm), BP_OK, "%s", bp_last_error());
    cr_assert_eq(bp_model_op_products(M) - before, KD);
    for (int d = 0; d < KD; d++) {
        cr_assert_eq(OP.apply(OP.ctx, v + d * D, h1), BP_OK);
        for (size_t i = 0; i < D; i++)
            cr_assert(fabs(hm[d * D + i] - h1[i]) <= 1e-13 * (fabs(h1[i]) + 1e-3),
                      "direction %d entry %zu: %.17g vs %.17g", d, i, hm[d * D + i], h1[i]);
    }
    free(v);
    free(hm);
    free(h1);
}

static void check_hutchinson(bp_probe_scheme scheme, uint64_t seed)
{
    bp_trace_opts o = bp_trace_opts_default();
    o.scheme = scheme;
    o.min_probes = 30;
    o.seed = seed;
    bp_trace_est e[2];
    cr_assert_eq(bp_hutchinson(&OP, B, NL, &o, e, NULL, NULL), BP_OK, "%s", bp_last_error());
    for (int l = 0; l < NL; l++) {
        double t = block_trace(l);
        cr_assert(fabs(e[l].mean - t) <= 4 * e[l].se, "%s, layer %s: estimate %g ± %g, exact %g",
                  bp_probe_name(scheme), L[l].name, e[l].mean, e[l].se, t);
        cr_assert(e[l].probes >= 30);
    }
}

Test(sens64, hutchinson_joint_within_4se) { check_hutchinson(BP_PROBE_JOINT, 1); }
Test(sens64, hutchinson_per_layer_within_4se) { check_hutchinson(BP_PROBE_PER_LAYER, 2); }

Test(sens64, eigenvalues_match_lapack)
{
    bp_eig_opts o = bp_eig_opts_default();
    o.tol = 1e-10;
    o.max_iter = 3000;
    for (int l = 0; l < NL; l++) {
        double *w = block_eigs(B[l].off, B[l].len);
        double dom = fabs(w[0]) > fabs(w[B[l].len - 1]) ? w[0] : w[B[l].len - 1];
        bp_eig_est e;
        cr_assert_eq(bp_power_iteration(&OP, &B[l], &o, &e, NULL, NULL, NULL), BP_OK);
        cr_assert(fabs(e.value - dom) <= 1e-6 * fabs(dom), "layer %s: power %.12g, LAPACK %.12g",
                  L[l].name, e.value, dom);
        free(w);
    }
    double *w = block_eigs(0, D);
    bp_eig_est e[3];
    cr_assert_eq(bp_top_eigenvalues(&OP, 3, &o, e, NULL, NULL, NULL), BP_OK);
    /* The top of a loss Hessian is positive here; compare with the largest. */
    for (int j = 0; j < 3; j++)
        cr_assert(fabs(e[j].value - w[D - 1 - j]) <= 1e-5 * w[D - 1], "top %d: %.12g vs %.12g", j,
                  e[j].value, w[D - 1 - j]);
    free(w);
}

/* SLQ on the model: mass 1, and the top Ritz value close to λ_max. */
Test(sens64, density_on_model)
{
    double *w = block_eigs(0, D);
    bp_slq_opts o = bp_slq_opts_default();
    o.steps = 40;
    o.runs = 2;
    bp_slq_result r;
    cr_assert_eq(bp_slq_density(&OP, &o, &r, NULL, NULL), BP_OK, "%s", bp_last_error());
    double mass = 0, hi = -INFINITY;
    for (int g = 1; g < r.grid; g++)
        mass += 0.5 * (r.x[g] - r.x[g - 1]) * (r.density[g] + r.density[g - 1]);
    for (int j = 0; j < r.runs * r.steps; j++)
        if (r.weights[j] > 0)
            hi = fmax(hi, r.nodes[j]);
    cr_assert(fabs(mass - 1) < 1e-4, "mass %g", mass);
    cr_assert(fabs(hi - w[D - 1]) <= 1e-6 * w[D - 1], "top Ritz %.12g vs %.12g", hi, w[D - 1]);
    bp_slq_free(&r);
    free(w);
}

Test(sens64, driver_fills_file_and_omega)
{
    bp_stream *s;
    cr_assert_eq(bp_stream_open(SPEC, NULL, &s), BP_OK, "%s", bp_last_error());
    bp_sens_opts o = bp_sens_opts_default();
    o.samples = NS;
    o.batch = BATCH;
    o.trace.min_probes = 30;
    o.eig = 1;
    o.topk = 2;
    o.density = 1;
    o.slq.steps = 20;
    o.slq.runs = 1;
    o.slq.grid = 200;
    bp_sens sens;
    bp_sens_report rep;
    cr_assert_eq(bp_sens_run(G, s, "tiny.onnx", &o, &sens, &rep, NULL, NULL), BP_OK, "%s", bp_last_error());
    cr_assert_eq(sens.nlayers, 2);
    cr_assert_str_eq(sens.layers[0].sig.name, "conv1");
    cr_assert_str_eq(sens.layers[1].sig.name, "fc");
    cr_assert_eq(sens.ntop, 2);
    cr_assert_eq(sens.ndensity, 200);
    cr_assert_eq(sens.settings.samples, NS);
    for (int l = 0; l < 2; l++) {
        const bp_sens_layer *sl = &sens.layers[l];
        double t = block_trace(l);
        cr_assert(fabs(sl->trace - t) <= 4 * sl->trace_stderr, "layer %d: %g ± %g vs %g", l, sl->trace,
                  sl->trace_stderr, t);
        cr_assert_eq(sl->ncand, 6);
        cr_assert(sl->has_eigenvalue);
        for (int c = 0; c < sl->ncand; c++) {
            /* Independent ‖ΔW‖²: 4-bit etc. computed right here. */
            const bp_real *wv = G->params + G->values[L[l].weight].offset;
            size_t nper = L[l].params / L[l].cout;
            double qmax = ldexp(1, sl->cand[c].bits - 1) - 1, e2 = 0;
            for (int64_t ch = 0; ch < L[l].cout; ch++) {
                double mx = 0;
                for (size_t k = 0; k < nper; k++)
                    mx = fmax(mx, fabs(wv[ch * nper + k]));
                for (size_t k = 0; k < nper; k++) {
                    double S = mx / qmax, q = round(wv[ch * nper + k] / S);
                    e2 += pow(q * S - wv[ch * nper + k], 2);
                }
            }
            cr_assert(fabs(sl->cand[c].dw2 - e2) <= 1e-12 * e2, "dw2 %g vs %g", sl->cand[c].dw2, e2);
            cr_assert(fabs(sl->cand[c].omega - fabs(sl->trace) / L[l].params * e2) <= 1e-12 * sl->cand[c].omega);
        }
    }
    cr_assert(rep.products > 0 && rep.loss > 0 && !rep.notes[0].zero_weights);
    free(rep.notes);
    char out[128];
    snprintf(out, sizeof out, "%s/sens.json", DIR);
    cr_assert_eq(bp_sens_write(out, &sens), BP_OK, "%s", bp_last_error());
    unlink(out);
    bp_sens_free(&sens);
    bp_stream_close(s);
}

Test(sens64, omega_negative_policy)
{
    cr_assert_float_eq(bp_sens_omega(-2, 4, 3, BP_NEG_ABS), 1.5, 1e-15);
    cr_assert_float_eq(bp_sens_omega(-2, 4, 3, BP_NEG_CLAMP), 0.0, 1e-15);
    cr_assert_float_eq(bp_sens_omega(-2, 4, 3, BP_NEG_KEEP), -1.5, 1e-15);
    cr_assert_float_eq(bp_sens_omega(2, 4, 3, BP_NEG_CLAMP), 1.5, 1e-15);
}

Test(sens64, zero_layer_and_bad_input)
{
    bp_stream *s;
    cr_assert_eq(bp_stream_open(SPEC, NULL, &s), BP_OK);
    bp_sens_opts o = bp_sens_opts_default();
    o.samples = NS;
    o.trace.max_probes = 20;
    bp_graph *g = tiny_net(3);
    memset(g->params + g->values[L[0].weight].offset, 0, L[0].params * sizeof(bp_real));
    bp_sens sens;
    bp_sens_report rep;
    cr_assert_eq(bp_sens_run(g, s, NULL, &o, &sens, &rep, NULL, NULL), BP_OK, "%s", bp_last_error());
    cr_assert(rep.notes[0].zero_weights && !rep.notes[1].zero_weights);
    cr_assert(isfinite(sens.layers[0].trace));
    for (int c = 0; c < sens.layers[0].ncand; c++)
        cr_assert(sens.layers[0].cand[c].dw2 == 0 && sens.layers[0].cand[c].omega == 0);
    free(rep.notes);
    bp_sens_free(&sens);

    g->params[g->values[L[1].weight].offset + 5] = NAN;
    cr_assert_eq(bp_sens_run(g, s, NULL, &o, &sens, NULL, NULL, NULL), BP_ERR_NUMERIC);
    cr_assert(strstr(bp_last_error(), "fc.weight") != NULL, "%s", bp_last_error());
    /* A non-finite input makes the loss non-finite: an error, not a NaN trace. */
    g->params[g->values[L[1].weight].offset + 5] = 0.1;
    bp_real xb[NS * HW * HW];
    memcpy(xb, X, sizeof xb);
    xb[7] = NAN;
    bp_model_op *m;
    cr_assert_eq(bp_model_op_new_memory(g, xb, Y, NS, BATCH, &m), BP_OK);
    bp_linop op = bp_model_op_linop(m);
    double *v = calloc(op.n, sizeof *v), *hv = malloc(op.n * sizeof *hv);
    v[0] = 1;
    cr_assert_eq(op.apply(op.ctx, v, hv), BP_ERR_NUMERIC);
    cr_assert(strstr(bp_last_error(), "not finite") != NULL, "%s", bp_last_error());
    free(v);
    free(hv);
    bp_model_op_free(m);
    bp_graph_free(g);
    bp_stream_close(s);
}
