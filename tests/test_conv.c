/* Conv kernels (core/ops_conv.c, core/conv_dw.c) against direct loops written
 * here: forward, backward, R-forward and the fused backward + R-backward, on
 * shapes that exercise every path (depthwise with strides, pads, dilations
 * and large kernels; grouped, 1x1, strided and "same" general convs; odd
 * channel counts and batch sizes), for every depthwise kernel set the CPU
 * has, and for general convs with the direct kernel and with im2col + BLAS. Gradients are added into buffers holding random values, as the
 * engine's contract says. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "core/conv_direct.h"
#include "core/conv_dw.h"
#include "core/ops.h"

static uint64_t rs = 1;
static double urand(void)
{
    rs ^= rs >> 12;
    rs ^= rs << 25;
    rs ^= rs >> 27;
    return (double)((rs * 2685821657736338717ull) >> 11) / 9007199254740992.0 * 2 - 1;
}

static float *rnd(size_t n)
{
    float *p = malloc((n ? n : 1) * sizeof *p);
    for (size_t i = 0; i < n; i++)
        p[i] = (float)urand();
    return p;
}

static float *dup(const float *p, size_t n)
{
    float *q = malloc((n ? n : 1) * sizeof *q);
    memcpy(q, p, n * sizeof *q);
    return q;
}

typedef struct {
    int N, C, H, W, M, kh, kw, G, sh, sw, pt, pl, pb, pr, dh, dw;
} shape;

static int out_dim(int in, int k, int s, int p0, int p1, int d)
{
    return (in + p0 + p1 - d * (k - 1) - 1) / s + 1;
}

/* The reference: y[n][m][oh][ow] = sum over the window, in double. Each
 * (n, m, oh, ow, c, i, j) that reads inside the input is one term; dx and dW
 * are the same terms read backwards. */
typedef struct {
    const shape *s;
    int OH, OW;
} ref;

#define FOR_TERMS(R, BODY)                                                                  \
    for (int n = 0; n < (R)->s->N; n++)                                                     \
        for (int m = 0; m < (R)->s->M; m++)                                                 \
            for (int oh = 0; oh < (R)->OH; oh++)                                            \
                for (int ow = 0; ow < (R)->OW; ow++)                                        \
                    for (int cg = 0; cg < (R)->s->C / (R)->s->G; cg++)                      \
                        for (int i = 0; i < (R)->s->kh; i++)                                \
                            for (int j = 0; j < (R)->s->kw; j++) {                          \
                                const shape *S = (R)->s;                                    \
                                int c = m / (S->M / S->G) * (S->C / S->G) + cg;             \
                                int ih = oh * S->sh - S->pt + i * S->dh;                    \
                                int iw = ow * S->sw - S->pl + j * S->dw;                    \
                                if (ih < 0 || ih >= S->H || iw < 0 || iw >= S->W)           \
                                    continue;                                               \
                                size_t xi = (((size_t)n * S->C + c) * S->H + ih) * S->W + iw; \
                                size_t wi = (((size_t)m * (S->C / S->G) + cg) * S->kh + i) * S->kw + j; \
                                size_t yi = (((size_t)n * S->M + m) * (R)->OH + oh) * (R)->OW + ow; \
                                BODY;                                                       \
                            }

/* y += conv(x, w) */
static void ref_fwd(const ref *R, const float *x, const float *w, double *y)
{
    FOR_TERMS(R, y[yi] += (double)w[wi] * x[xi]);
}

/* dx += conv^T(dy, w), dw += corr(x, dy) */
static void ref_bwd(const ref *R, const float *x, const float *w, const float *dy, double *dx,
                    double *dw)
{
    FOR_TERMS(R, {
        if (dx)
            dx[xi] += (double)w[wi] * dy[yi];
        if (dw)
            dw[wi] += (double)x[xi] * dy[yi];
    });
}

static double *dcopy(const float *p, size_t n)
{
    double *q = malloc((n ? n : 1) * sizeof *q);
    for (size_t i = 0; i < n; i++)
        q[i] = p[i];
    return q;
}

static void expect_close(const float *got, const double *want, size_t n, const char *what,
                         const shape *s)
{
    double scale = 0;
    for (size_t i = 0; i < n; i++)
        scale = fmax(scale, fabs(want[i]));
    size_t bad = 0, worst = 0;
    double werr = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs(got[i] - want[i]);
        if (!(e <= 2e-5 * (scale + 1))) { /* NaN counts as off */
            bad++;
            if (!(e <= werr))
                werr = e, worst = i;
        }
    }
    cr_expect_eq(bad, 0,
                 "%s: %zu of %zu values off (worst [%zu] %g vs %g); N%d C%d %dx%d M%d k%dx%d g%d "
                 "s%d,%d pads %d,%d,%d,%d dil %d,%d",
                 what, bad, n, worst, bad ? got[worst] : 0.0, bad ? want[worst] : 0.0, s->N, s->C,
                 s->H, s->W, s->M, s->kh, s->kw, s->G, s->sh, s->sw, s->pt, s->pl, s->pb, s->pr,
                 s->dh, s->dw);
}

/* Runs every entry point on one shape and checks it against the reference. */
static void check_shape(shape s)
{
    rs = 77 + s.C * 13 + s.kh * 7 + s.sh + s.N * 31 + s.G * 5;
    bp_node node;
    memset(&node, 0, sizeof node);
    node.op = BP_OP_CONV;
    node.a = bp_attrs_default();
    node.a.group = s.G;
    node.a.stride[0] = s.sh, node.a.stride[1] = s.sw;
    node.a.pads[0] = s.pt, node.a.pads[1] = s.pl, node.a.pads[2] = s.pb, node.a.pads[3] = s.pr;
    node.a.dilation[0] = s.dh, node.a.dilation[1] = s.dw;
    ref R = {&s, out_dim(s.H, s.kh, s.sh, s.pt, s.pb, s.dh), out_dim(s.W, s.kw, s.sw, s.pl, s.pr, s.dw)};
    cr_assert(R.OH > 0 && R.OW > 0);
    int64_t xd[4] = {s.N, s.C, s.H, s.W}, wd[4] = {s.M, s.C / s.G, s.kh, s.kw}, bd[1] = {s.M};
    int64_t yd[4] = {s.N, s.M, R.OH, R.OW};
    size_t nx = (size_t)s.N * s.C * s.H * s.W, nw = (size_t)s.M * (s.C / s.G) * s.kh * s.kw;
    size_t ny = (size_t)s.N * s.M * R.OH * R.OW;

    float *x = rnd(nx), *w = rnd(nw), *b = rnd(s.M), *rx = rnd(nx), *v = rnd(nw), *vb = rnd(s.M);
    float *dy = rnd(ny), *rdy = rnd(ny), *y = rnd(ny), *ry = rnd(ny);
    float *dx = rnd(nx), *dw = rnd(nw), *db = rnd(s.M), *rdx = rnd(nx), *rdw = rnd(nw);
    float *rdb = rnd(s.M);

    bp_opctx c;
    memset(&c, 0, sizeof c);
    c.node = &node;
    c.nin = 3;
    c.xd[0] = xd, c.xd[1] = wd, c.xd[2] = bd;
    c.xnd[0] = 4, c.xnd[1] = 4, c.xnd[2] = 1;
    c.yd = yd, c.ynd = 4;
    c.nthreads = omp_get_max_threads();
    c.mode = BP_MODE_INFER;
    size_t ns = bp_conv_scratch(&c);
    /* guard values after the scratch catch a kernel that runs past it */
    float *scratch = malloc((ns + 64) * sizeof *scratch);
    for (int i = 0; i < 64; i++)
        scratch[ns + i] = 1234.5f;
    c.scratch = scratch;
    c.x[0] = x, c.x[1] = w, c.x[2] = b;
    c.y = y;

    /* forward */
    double *want = calloc(ny, sizeof *want);
    ref_fwd(&R, x, w, want);
    for (size_t i = 0; i < ny; i++)
        want[i] += b[i / ((size_t)R.OH * R.OW) % s.M];
    cr_assert_eq(bp_conv_forward(&c), BP_OK);
    expect_close(y, want, ny, "forward", &s);

    /* R-forward: conv(rx, W) + conv(x, V) + vb */
    memset(want, 0, ny * sizeof *want);
    ref_fwd(&R, rx, w, want);
    ref_fwd(&R, x, v, want);
    for (size_t i = 0; i < ny; i++)
        want[i] += vb[i / ((size_t)R.OH * R.OW) % s.M];
    c.rx[0] = rx, c.rx[1] = v, c.rx[2] = vb;
    c.ry = ry;
    cr_assert_eq(bp_conv_rop_forward(&c), BP_OK);
    expect_close(ry, want, ny, "R-forward", &s);
    /* R-forward with only V (R{x} zero): conv(x, V), no bias direction */
    memset(want, 0, ny * sizeof *want);
    ref_fwd(&R, x, v, want);
    c.rx[0] = NULL, c.rx[2] = NULL;
    cr_assert_eq(bp_conv_rop_forward(&c), BP_OK);
    expect_close(ry, want, ny, "R-forward (V only)", &s);
    c.rx[0] = rx, c.rx[2] = vb;

    /* backward: adds into what the buffers held */
    double *wdx = dcopy(dx, nx), *wdw = dcopy(dw, nw), *wdb = dcopy(db, s.M);
    ref_bwd(&R, x, w, dy, wdx, wdw);
    for (size_t i = 0; i < ny; i++)
        wdb[i / ((size_t)R.OH * R.OW) % s.M] += dy[i];
    float *dx0 = dup(dx, nx), *dw0 = dup(dw, nw), *db0 = dup(db, s.M);
    c.dy = dy;
    c.dx[0] = dx, c.dx[1] = dw, c.dx[2] = db;
    cr_assert_eq(bp_conv_backward(&c), BP_OK);
    expect_close(dx, wdx, nx, "backward dx", &s);
    expect_close(dw, wdw, nw, "backward dW", &s);
    expect_close(db, wdb, s.M, "backward db", &s);

    /* fused backward + R-backward, from the same starting buffers */
    memcpy(dx, dx0, nx * sizeof *dx), memcpy(dw, dw0, nw * sizeof *dw), memcpy(db, db0, s.M * sizeof *db);
    double *wrdx = dcopy(rdx, nx), *wrdw = dcopy(rdw, nw), *wrdb = dcopy(rdb, s.M);
    ref_bwd(&R, x, w, rdy, wrdx, wrdw);
    ref_bwd(&R, rx, v, dy, wrdx, wrdw);
    for (size_t i = 0; i < ny; i++)
        wrdb[i / ((size_t)R.OH * R.OW) % s.M] += rdy[i];
    c.rdy = rdy;
    c.rdx[0] = rdx, c.rdx[1] = rdw, c.rdx[2] = rdb;
    cr_assert_eq(bp_conv_bwd_rop(&c), BP_OK);
    expect_close(dx, wdx, nx, "fused dx", &s);
    expect_close(dw, wdw, nw, "fused dW", &s);
    expect_close(db, wdb, s.M, "fused db", &s);
    expect_close(rdx, wrdx, nx, "fused R{dx}", &s);
    expect_close(rdw, wrdw, nw, "fused R{dW}", &s);
    expect_close(rdb, wrdb, s.M, "fused R{db}", &s);

    /* backward without dx (a first layer) and without dW (a frozen weight) */
    float *dw1 = dup(dw0, nw), *dx1 = dup(dx0, nx);
    double *w1 = dcopy(dw0, nw), *x1 = dcopy(dx0, nx);
    ref_bwd(&R, x, w, dy, NULL, w1);
    ref_bwd(&R, x, w, dy, x1, NULL);
    c.rdy = NULL;
    c.dx[0] = NULL, c.dx[1] = dw1, c.dx[2] = NULL;
    cr_assert_eq(bp_conv_backward(&c), BP_OK);
    expect_close(dw1, w1, nw, "backward dW only", &s);
    c.dx[0] = dx1, c.dx[1] = NULL;
    cr_assert_eq(bp_conv_backward(&c), BP_OK);
    expect_close(dx1, x1, nx, "backward dx only", &s);

    /* dx_set / rdx_set: the buffers hold garbage (NaN) and must be written,
     * not added into; the fused call and the separate ones */
    {
        double *z = calloc(nx, sizeof *z), *zr = calloc(nx, sizeof *zr);
        ref_bwd(&R, x, w, dy, z, NULL);
        ref_bwd(&R, x, w, rdy, zr, NULL);
        ref_bwd(&R, rx, v, dy, zr, NULL);
        float *sx = malloc(nx * sizeof *sx), *srx = malloc(nx * sizeof *srx);
        for (size_t i = 0; i < nx; i++)
            sx[i] = srx[i] = NAN;
        memset(&c.dx, 0, sizeof c.dx), memset(&c.rdx, 0, sizeof c.rdx);
        c.dx[0] = sx, c.dx_set[0] = 1;
        c.rdy = NULL;
        cr_assert_eq(bp_conv_backward(&c), BP_OK);
        expect_close(sx, z, nx, "backward dx (set)", &s);
        for (size_t i = 0; i < nx; i++)
            sx[i] = NAN;
        c.rdy = rdy;
        c.rdx[0] = srx, c.rdx_set[0] = 1;
        cr_assert_eq(bp_conv_bwd_rop(&c), BP_OK);
        expect_close(sx, z, nx, "fused dx (set)", &s);
        expect_close(srx, zr, nx, "fused R{dx} (set)", &s);
        for (size_t i = 0; i < nx; i++)
            srx[i] = NAN;
        cr_assert_eq(bp_conv_rop_backward(&c), BP_OK);
        expect_close(srx, zr, nx, "R-backward R{dx} (set)", &s);
        c.dx_set[0] = c.rdx_set[0] = 0;
        free(z), free(zr), free(sx), free(srx);
    }

    for (int i = 0; i < 64; i++)
        cr_expect_eq(scratch[ns + i], 1234.5f, "scratch overrun at +%d", i);

    free(want), free(wdx), free(wdw), free(wdb), free(wrdx), free(wrdw), free(wrdb);
    free(dx0), free(dw0), free(db0), free(dw1), free(dx1), free(w1), free(x1);
    free(x), free(w), free(b), free(rx), free(v), free(vb), free(dy), free(rdy), free(y), free(ry);
    free(dx), free(dw), free(db), free(rdx), free(rdw), free(rdb), free(scratch);
}

/* N, C, H, W, M, kh, kw, G, sh, sw, pt, pl, pb, pr, dh, dw */
static const shape depthwise[] = {
    {3, 5, 7, 7, 5, 3, 3, 5, 1, 1, 1, 1, 1, 1, 1, 1},      /* MobileNet 7x7 block, odd batch */
    {1, 17, 14, 14, 17, 3, 3, 17, 2, 2, 1, 1, 1, 1, 1, 1}, /* stride 2, batch 1 */
    {2, 3, 9, 8, 3, 3, 3, 3, 2, 2, 0, 1, 1, 0, 1, 1},      /* asymmetric pads, odd height */
    {2, 4, 11, 10, 4, 3, 3, 4, 1, 1, 2, 2, 2, 2, 2, 2},    /* dilation 2 */
    {2, 3, 10, 11, 3, 3, 2, 3, 3, 2, 1, 0, 2, 1, 2, 1},    /* strides 3x2, dilation 2x1, kh != kw */
    {2, 2, 9, 9, 2, 5, 5, 2, 1, 1, 2, 2, 2, 2, 1, 1},      /* 5x5 */
    {3, 3, 8, 8, 3, 1, 1, 3, 2, 2, 0, 0, 0, 0, 1, 1},      /* 1x1 stride 2: phases no tap reaches */
    {1, 2, 12, 12, 2, 9, 9, 2, 1, 1, 4, 4, 4, 4, 1, 1},    /* 81 taps */
    {2, 3, 6, 6, 3, 3, 3, 3, 1, 1, 0, 0, 0, 0, 1, 1},      /* valid conv, output smaller */
    {2, 2, 5, 7, 2, 3, 3, 2, 2, 3, 3, 3, 3, 3, 1, 1},      /* pads larger than the kernel reach */
    {1, 2, 1, 1, 2, 3, 3, 2, 1, 1, 1, 1, 1, 1, 1, 1},      /* 1x1 plane */
};

static const shape general[] = {
    {3, 16, 28, 28, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1},  /* ResNet-8 layer1, odd batch */
    {2, 16, 28, 28, 32, 3, 3, 1, 2, 2, 1, 1, 1, 1, 1, 1},  /* stride 2 */
    {5, 32, 14, 14, 64, 1, 1, 1, 2, 2, 0, 0, 0, 0, 1, 1},  /* 1x1 stride 2 shortcut */
    {1, 24, 7, 7, 96, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1},    /* pointwise, batch 1 */
    {3, 19, 7, 7, 13, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1},    /* odd channels */
    {2, 6, 9, 8, 4, 3, 3, 2, 1, 1, 2, 1, 0, 2, 2, 1},      /* groups, asymmetric pads, dilation */
    {2, 4, 6, 6, 8, 3, 3, 4, 1, 1, 1, 1, 1, 1, 1, 1},      /* depth multiplier 2 */
    {7, 1, 28, 28, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1},   /* stem, one input channel */
    {2, 5, 9, 7, 48, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1},     /* dW: 32 + 16 columns, odd width */
    {3, 3, 6, 11, 24, 3, 2, 1, 2, 1, 1, 0, 1, 1, 1, 2},    /* dW: 24 columns, strides, dilation */
};

static void run_all(const shape *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        check_shape(list[i]);
}

Test(conv, depthwise_best_kernels) { cr_assert(bp_dw_use_kernels(NULL)); run_all(depthwise, sizeof depthwise / sizeof *depthwise); }

Test(conv, depthwise_portable_kernels)
{
    cr_assert(bp_dw_use_kernels("plain"));
    run_all(depthwise, sizeof depthwise / sizeof *depthwise);
    bp_dw_use_kernels(NULL);
}

Test(conv, depthwise_avx2_kernels)
{
    if (!bp_dw_use_kernels("avx2"))
        cr_skip_test("no AVX2+FMA on this CPU");
    run_all(depthwise, sizeof depthwise / sizeof *depthwise);
    bp_dw_use_kernels(NULL);
}

Test(conv, depthwise_one_thread)
{
    omp_set_num_threads(1);
    run_all(depthwise, 3);
}

Test(conv, general) { run_all(general, sizeof general / sizeof *general); }

/* im2col + BLAS, what runs without AVX-512 and in the double build */
Test(conv, general_blas_path)
{
    bp_cd_enable(0);
    cr_assert_not(bp_cd_available());
    run_all(general, sizeof general / sizeof *general);
    bp_cd_enable(1);
}

Test(conv, general_one_thread)
{
    omp_set_num_threads(1);
    run_all(general, sizeof general / sizeof *general);
}

Test(conv, unknown_kernel_set) { cr_expect_not(bp_dw_use_kernels("sse9")); }
