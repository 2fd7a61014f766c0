/* Float engine benchmark on a ResNet-8-shaped net (input 1x28x28; conv3x3 16
 * + BN + ReLU; three basic residual blocks of 16, 32, 64 channels, stride 2
 * with a 1x1 conv + BN shortcut at stages 2 and 3; GAP; Gemm 10), built with
 * bp_graph_add_*. Prints medians of several runs:
 *   forward (inference BN) and forward+backward (training BN) images/s at batch 256;
 *   one HVP against one gradient (forward + loss + backward) at batch 128, as
 *   a ratio (target: HVP <= 2.5 gradients), for a probe on all parameters and
 *   for a probe on one late layer (the R-forward then starts there).
 * Also forward and forward+backward of the reference models (models/<name>.onnx, or
 * the ONNX files named after the mode argument) at batch 256.
 * Usage: engine [runs] [train|all] [MODEL.onnx ...]
 *   (default 5 runs; "train" skips the HVP part) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/exec.h"
#include "core/onnx.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* CPU seconds of the whole process (all threads): less sensitive than wall
 * time to other programs competing for the cores. */
static double cpu(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static uint64_t rs = 12345;
static double urand(void)
{
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return (double)(rs >> 11) / 9007199254740992.0 * 2 - 1;
}

static int np_ = 0;
static int param(bp_graph *g, int nd, const int64_t *d, double scale)
{
    char name[32];
    snprintf(name, sizeof name, "p%d", np_++);
    size_t n = 1;
    for (int i = 0; i < nd; i++)
        n *= (size_t)d[i];
    float *init = malloc(n * sizeof *init);
    for (size_t i = 0; i < n; i++)
        init[i] = (float)(scale < 0 ? -scale : urand() * scale);
    int id = bp_graph_add_param(g, name, nd, d, init);
    free(init);
    return id;
}

static int node(bp_graph *g, bp_op op, const bp_attrs *a, int nin, const int *in)
{
    char name[32];
    snprintf(name, sizeof name, "a%d", g->nvalues);
    int id = bp_graph_add_node(g, op, name, in, nin, name, a);
    if (id < 0) {
        fprintf(stderr, "engine bench: %s\n", bp_last_error());
        exit(1);
    }
    return id;
}

static int conv_bn(bp_graph *g, int x, int cin, int cout, int k, int stride, int relu)
{
    bp_attrs a = bp_attrs_default();
    a.stride[0] = a.stride[1] = stride;
    a.pads[0] = a.pads[1] = a.pads[2] = a.pads[3] = k / 2;
    int w = param(g, 4, (int64_t[]){cout, cin, k, k}, sqrt(6.0 / (cin * k * k)));
    int h = node(g, BP_OP_CONV, &a, 2, (int[]){x, w});
    int64_t c1[1] = {cout};
    int s = param(g, 1, c1, -1.0), b = param(g, 1, c1, 0.1), m = param(g, 1, c1, 0.1),
        v = param(g, 1, c1, -1.0);
    g->values[m].trainable = g->values[v].trainable = 0;
    h = node(g, BP_OP_BN, NULL, 5, (int[]){h, s, b, m, v});
    return relu ? node(g, BP_OP_RELU, NULL, 1, (int[]){h}) : h;
}

static int block(bp_graph *g, int x, int cin, int cout, int stride)
{
    int h = conv_bn(g, x, cin, cout, 3, stride, 1);
    h = conv_bn(g, h, cout, cout, 3, 1, 0);
    int sc = stride != 1 || cin != cout ? conv_bn(g, x, cin, cout, 1, stride, 0) : x;
    h = node(g, BP_OP_ADD, NULL, 2, (int[]){h, sc});
    return node(g, BP_OP_RELU, NULL, 1, (int[]){h});
}

static bp_graph *resnet8(int *late_weight)
{
    bp_graph *g = bp_graph_new();
    int x = bp_graph_add_input(g, "x", 4, (int64_t[]){1, 1, 28, 28});
    int h = conv_bn(g, x, 1, 16, 3, 1, 1);
    h = block(g, h, 16, 16, 1);
    h = block(g, h, 16, 32, 2);
    *late_weight = g->nvalues; /* the next value is stage 3's first conv weight */
    h = block(g, h, 32, 64, 2);
    h = node(g, BP_OP_GAP, NULL, 1, (int[]){h});
    h = node(g, BP_OP_FLATTEN, NULL, 1, (int[]){h});
    int w = param(g, 2, (int64_t[]){10, 64}, sqrt(1.0 / 64));
    int b = param(g, 1, (int64_t[]){10}, 0.1);
    bp_attrs tb = bp_attrs_default();
    tb.trans_b = 1;
    node(g, BP_OP_GEMM, &tb, 3, (int[]){h, w, b});
    return g;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *t, int n)
{
    qsort(t, n, sizeof *t, cmp);
    return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

#define CHECK(call)                                                              \
    do {                                                                         \
        bp_status st_ = (call);                                                  \
        if (st_) {                                                               \
            fprintf(stderr, "engine bench: %s: %s\n", #call, bp_last_error());   \
            exit(1);                                                             \
        }                                                                        \
    } while (0)

/* Forward (inference BN) and forward + backward (training BN) of graph g at
 * batch B on random inputs: medians of wall and CPU time. */
static int bench_train(bp_graph *g, int B, int runs, const char *what)
{
    size_t per = g->values[g->input].numel;
    bp_real *x = malloc(B * per * sizeof *x), *gp = calloc(g->nparams, sizeof *gp);
    int *lab = malloc(B * sizeof *lab);
    double *t = malloc(runs * sizeof *t), *tc = malloc(runs * sizeof *tc);
    for (size_t i = 0; i < B * per; i++)
        x[i] = (bp_real)urand();
    bp_exec *ex = bp_exec_new(g, B, BP_EXEC_GRAD);
    if (!ex) {
        fprintf(stderr, "engine bench: %s: %s\n", what, bp_last_error());
        return 1;
    }
    /* warm-up: first touch of every buffer; labels within the output's classes */
    CHECK(bp_forward(ex, g->params, x, B, BP_MODE_TRAIN));
    int nd;
    const int64_t *od = bp_exec_dims(ex, g->output, &nd);
    int classes = 1;
    for (int k = 1; k < nd; k++)
        classes *= (int)od[k];
    for (int i = 0; i < B; i++)
        lab[i] = i % classes;
    CHECK(bp_loss_softmax_ce(ex, lab, NULL, NULL));
    CHECK(bp_backward(ex, g->params, gp));
    for (int r = 0; r < runs; r++) {
        double t0 = now(), c0 = cpu();
        CHECK(bp_forward(ex, g->params, x, B, BP_MODE_INFER));
        t[r] = now() - t0;
        tc[r] = cpu() - c0;
    }
    double tf = median(t, runs), cf = median(tc, runs);
    for (int r = 0; r < runs; r++) {
        double t0 = now(), c0 = cpu();
        CHECK(bp_forward(ex, g->params, x, B, BP_MODE_TRAIN));
        CHECK(bp_loss_softmax_ce(ex, lab, NULL, NULL));
        CHECK(bp_backward(ex, g->params, gp));
        t[r] = now() - t0;
        tc[r] = cpu() - c0;
    }
    double tfb = median(t, runs), cfb = median(tc, runs);
    /* images per CPU-second does not depend on how busy the machine is */
    printf("%s, batch %d: forward           %8.1f ms wall %8.0f images/s | %8.1f ms cpu %8.0f images/cpu-s\n",
           what, B, tf * 1e3, B / tf, cf * 1e3, B / cf);
    printf("%s, batch %d: forward+backward  %8.1f ms wall %8.0f images/s | %8.1f ms cpu %8.0f images/cpu-s  (%.2fx forward, cpu)\n",
           what, B, tfb * 1e3, B / tfb, cfb * 1e3, B / cfb, cfb / cf);
    bp_exec_free(ex);
    free(x);
    free(gp);
    free(lab);
    free(t);
    free(tc);
    return 0;
}

int main(int argc, char **argv)
{
    int runs = argc > 1 ? atoi(argv[1]) : 5;
    if (runs < 1)
        runs = 1;
    int train_only = argc > 2 && strcmp(argv[2], "train") == 0;
    int late;
    bp_graph *g = resnet8(&late);
    const int B = 256, BH = 128;
    printf("float engine (%s), %d runs per figure (medians); ResNet-8 built in memory: %zu parameters\n",
           BP_REAL_NAME, runs, g->nparams);
    if (bench_train(g, B, runs, "resnet8 (built)"))
        return 1;
    /* the reference models, when given (or found under models/) */
    const char *defaults[] = {"models/lenet5.onnx", "models/resnet8.onnx", "models/mobilenetv2.onnx"};
    int nm = argc > 3 ? argc - 3 : 3;
    for (int k = 0; k < nm; k++) {
        const char *path = argc > 3 ? argv[3 + k] : defaults[k];
        FILE *f = fopen(path, "rb");
        if (!f)
            continue;
        fclose(f);
        bp_graph *m = NULL;
        if (bp_onnx_load(path, &m)) {
            fprintf(stderr, "engine bench: %s\n", bp_last_error());
            continue;
        }
        bench_train(m, B, runs, path);
        bp_graph_free(m);
    }

    size_t per = 28 * 28;
    bp_real *x = malloc(B * per * sizeof *x);
    int *lab = malloc(B * sizeof *lab);
    for (size_t i = 0; i < B * per; i++)
        x[i] = (bp_real)urand();
    for (int i = 0; i < B; i++)
        lab[i] = i % 10;
    bp_real *gp = calloc(g->nparams, sizeof *gp), *v = malloc(g->nparams * sizeof *v),
            *hv = calloc(g->nparams, sizeof *hv), *vl = calloc(g->nparams, sizeof *vl);
    for (size_t i = 0; i < g->nparams; i++)
        v[i] = urand() > 0 ? 1 : -1;
    const bp_value *lw = &g->values[late];
    for (size_t i = 0; i < lw->numel; i++)
        vl[lw->offset + i] = v[lw->offset + i];
    bp_exec *ex = NULL;
    if (train_only)
        goto done;
    ex = bp_exec_new(g, BH, BP_EXEC_ROP);
    if (!ex) {
        fprintf(stderr, "engine bench: %s\n", bp_last_error());
        return 1;
    }
    CHECK(bp_hvp(ex, g->params, x, lab, BH, v, hv, NULL, NULL));
    /* interleaved, so that a change in machine load hits all three alike */
    double *tw[3], *tcp[3];
    for (int k = 0; k < 3; k++) {
        tw[k] = malloc(runs * sizeof(double));
        tcp[k] = malloc(runs * sizeof(double));
    }
    for (int r = 0; r < runs; r++) {
        for (int k = 0; k < 3; k++) {
            double t0 = now(), c0 = cpu();
            if (k == 0) {
                CHECK(bp_forward(ex, g->params, x, BH, BP_MODE_INFER));
                CHECK(bp_loss_softmax_ce(ex, lab, NULL, NULL));
                CHECK(bp_backward(ex, g->params, gp));
            } else {
                CHECK(bp_hvp(ex, g->params, x, lab, BH, k == 1 ? v : vl, hv, NULL, NULL));
            }
            tw[k][r] = now() - t0;
            tcp[k][r] = cpu() - c0;
        }
    }
    double w[3], c[3];
    for (int k = 0; k < 3; k++) {
        w[k] = median(tw[k], runs);
        c[k] = median(tcp[k], runs);
        free(tw[k]);
        free(tcp[k]);
    }
    printf("batch %d: gradient           %8.1f ms wall  %8.1f ms cpu\n", BH, w[0] * 1e3, c[0] * 1e3);
    printf("batch %d: HVP (all params)   %8.1f ms wall  %8.1f ms cpu  = %.2f gradients wall, %.2f cpu (target <= 2.5)\n",
           BH, w[1] * 1e3, c[1] * 1e3, w[1] / w[0], c[1] / c[0]);
    printf("batch %d: HVP (one layer v)  %8.1f ms wall  %8.1f ms cpu  = %.2f gradients wall, %.2f cpu\n",
           BH, w[2] * 1e3, c[2] * 1e3, w[2] / w[0], c[2] / c[0]);
    bp_exec_free(ex);
done:
    free(x);
    free(lab);
    free(gp);
    free(v);
    free(hv);
    free(vl);
    bp_graph_free(g);
    return 0;
}
