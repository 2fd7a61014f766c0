/* int_conv.c — bitplan's int8 convolution (quant/qkernels.h) against
 * oneDNN's int8 convolution (u8 activations, s8 weights, s32 bias, per-channel
 * output scales, u8 output; oneDNN picks its own blocked layouts, the
 * layout it would keep inside a network, so reorders are not timed) and
 * against bitplan's float path (bp_forward on a one-conv graph), on the conv
 * shapes of the reference models (resnet8 and mobilenetv2 at 1x28x28), at
 * batch 1 and 64, single-threaded, in one run. bitplan's int4 kernel is timed
 * as well.
 *
 * Each timing is the median over 5 rounds of the mean thread CPU time per call
 * in a round of at least 20 ms; implementations are interleaved within a
 * round so that load from other processes hits them alike. Ratios > 1 mean
 * bitplan's int8 kernel is faster. bitplan's int8 kernel is timed as the
 * implementation it picks at run time (bp-int8: AMX where the CPU and OS
 * allow it, else AVX-512 VNNI, AVX-VNNI or AVX2; the ratios use this one) and
 * as the AVX2 kernel (bp-i8avx2, vpmaddwd + vpaddd). Each bitplan conv is
 * prepared once per shape, outside the timed loop (bp_qconv_prepare: AMX
 * repacks the weights into tile layout there), as oneDNN creates its
 * primitive and reorders the weights once; the timed call is bp_qconv_run.
 *
 *   build/bench/int_conv                  oneDNN at its best ISA on this CPU
 *   ONEDNN_MAX_CPU_ISA=AVX2 build/bench/int_conv   oneDNN limited to AVX2
 * Options: --quick (batch 1 and 8, fewer rounds) for a smoke run.
 */
#include <math.h>
#include <stddef.h>
#include <oneapi/dnnl/dnnl.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/exec.h"
#include "quant/qkernels.h"
#include "train/arch.h"

void openblas_set_num_threads(int);

#define CHK(x)                                                                      \
    do {                                                                            \
        dnnl_status_t s_ = (x);                                                     \
        if (s_ != dnnl_success) {                                                   \
            fprintf(stderr, "int_conv: %s failed (%d) at line %d\n", #x, (int)s_, __LINE__); \
            exit(1);                                                                \
        }                                                                           \
    } while (0)

typedef struct {
    int cin, h, w, cout, k, stride, pad, group;
    const char *from;
} shape;

/* Thread CPU time: every implementation runs single-threaded in this thread,
 * and CPU time is far less disturbed than wall time on a shared machine. */
static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static int cmpd(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* ---- oneDNN ---------------------------------------------------------------- */

typedef struct {
    dnnl_primitive_t prim;
    dnnl_memory_t src, wei, bia, dst;
    const char *impl;
} dnn_conv;

static dnnl_engine_t eng;
static dnnl_stream_t strm;

static dnnl_memory_t mem_for(dnnl_primitive_desc_t pd, dnnl_query_t q, int idx)
{
    const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, q, idx);
    dnnl_memory_t m;
    CHK(dnnl_memory_create(&m, md, eng, DNNL_MEMORY_ALLOCATE));
    /* fill with small values (content does not change the timing of int8 convs) */
    void *h = NULL;
    CHK(dnnl_memory_get_data_handle(m, &h));
    memset(h, 1, dnnl_memory_desc_get_size(md));
    return m;
}

static void dnn_make(const shape *s, int n, dnn_conv *c)
{
    int oh = (s->h + 2 * s->pad - s->k) / s->stride + 1, ow = (s->w + 2 * s->pad - s->k) / s->stride + 1;
    dnnl_memory_desc_t src, wei, bia, dst;
    dnnl_dims_t sd = {n, s->cin, s->h, s->w}, dd = {n, s->cout, oh, ow}, bd = {s->cout};
    CHK(dnnl_memory_desc_init_by_tag(&src, 4, sd, dnnl_u8, dnnl_format_tag_any));
    CHK(dnnl_memory_desc_init_by_tag(&dst, 4, dd, dnnl_u8, dnnl_format_tag_any));
    CHK(dnnl_memory_desc_init_by_tag(&bia, 1, bd, dnnl_s32, dnnl_x));
    if (s->group > 1) {
        dnnl_dims_t wd = {s->group, s->cout / s->group, s->cin / s->group, s->k, s->k};
        CHK(dnnl_memory_desc_init_by_tag(&wei, 5, wd, dnnl_s8, dnnl_format_tag_any));
    } else {
        dnnl_dims_t wd = {s->cout, s->cin, s->k, s->k};
        CHK(dnnl_memory_desc_init_by_tag(&wei, 4, wd, dnnl_s8, dnnl_format_tag_any));
    }
    dnnl_dims_t st = {s->stride, s->stride}, pl = {s->pad, s->pad}, pr = {s->pad, s->pad};
    dnnl_convolution_desc_t cd;
    CHK(dnnl_convolution_forward_desc_init(&cd, dnnl_forward_inference, dnnl_convolution_direct, &src,
                                           &wei, &bia, &dst, st, pl, pr));
    dnnl_primitive_attr_t attr;
    CHK(dnnl_primitive_attr_create(&attr));
    float *scales = malloc(sizeof(float) * s->cout);
    for (int i = 0; i < s->cout; i++)
        scales[i] = 0.001f * (1 + i % 7);
    CHK(dnnl_primitive_attr_set_output_scales(attr, s->cout, 1 << 1, scales));
    free(scales);
    dnnl_primitive_desc_t pd;
    CHK(dnnl_primitive_desc_create(&pd, &cd, attr, eng, NULL));
    CHK(dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &c->impl));
    c->src = mem_for(pd, dnnl_query_src_md, 0);
    c->wei = mem_for(pd, dnnl_query_weights_md, 0);
    c->bia = mem_for(pd, dnnl_query_weights_md, 1); /* index 1 of the weights: the bias */
    c->dst = mem_for(pd, dnnl_query_dst_md, 0);
    CHK(dnnl_primitive_create(&c->prim, pd));
    dnnl_primitive_attr_destroy(attr);
    /* impl string belongs to pd; keep pd alive (leaked for the bench's lifetime) */
}

static void dnn_run(dnn_conv *c)
{
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, c->src}, {DNNL_ARG_WEIGHTS, c->wei}, {DNNL_ARG_BIAS, c->bia},
                               {DNNL_ARG_DST, c->dst}};
    CHK(dnnl_primitive_execute(c->prim, strm, 4, args));
    CHK(dnnl_stream_wait(strm));
}

static void dnn_free(dnn_conv *c)
{
    dnnl_primitive_destroy(c->prim);
    dnnl_memory_destroy(c->src);
    dnnl_memory_destroy(c->wei);
    dnnl_memory_destroy(c->bia);
    dnnl_memory_destroy(c->dst);
}

/* ---- bitplan int ----------------------------------------------------------- */

typedef struct {
    bp_qconv_params p;
    uint8_t *in, *out, *panel;
    int32_t *bias;
    bp_qmul *qm;
    void *scratch;
    bp_qconv_prep *prep, *prep_avx2; /* the active implementation; AVX2 (or NULL) */
} bp_conv;

static void bpq_make(const shape *s, int n, int wbits, bp_conv *c)
{
    memset(c, 0, sizeof *c);
    bp_qconv_params *p = &c->p;
    *p = (bp_qconv_params){.n = n, .cin = s->cin, .h = s->h, .w = s->w, .cout = s->cout, .kh = s->k,
                           .kw = s->k, .stride_h = s->stride, .stride_w = s->stride, .pad_t = s->pad,
                           .pad_l = s->pad, .pad_b = s->pad, .pad_r = s->pad, .dil_h = 1, .dil_w = 1,
                           .group = s->group, .wbits = wbits, .in_type = BP_QT_U8, .out_type = BP_QT_U8,
                           .out_min = 0, .out_max = 255};
    int oh, ow;
    bp_qconv_out_hw(p, &oh, &ow);
    int kk = s->cin / s->group * s->k * s->k, m = s->cout / s->group;
    size_t nin = (size_t)n * s->cin * s->h * s->w, nout = (size_t)n * s->cout * oh * ow;
    c->in = malloc(nin);
    c->out = malloc(nout);
    for (size_t i = 0; i < nin; i++)
        c->in[i] = (uint8_t)(i * 37 % 251);
    int8_t *w = malloc((size_t)s->cout * kk);
    for (int i = 0; i < s->cout * kk; i++)
        w[i] = (int8_t)((i * 13 % 15) - 7);
    c->panel = malloc(bp_qweights_size(s->group, m, kk, wbits));
    if (bp_qweights_pack(w, s->group, m, kk, wbits, c->panel)) {
        fprintf(stderr, "int_conv: %s\n", bp_last_error());
        exit(1);
    }
    free(w);
    c->bias = calloc(s->cout, sizeof(int32_t));
    c->qm = malloc(sizeof(bp_qmul) * s->cout);
    for (int i = 0; i < s->cout; i++)
        c->qm[i] = (bp_qmul){(1 << 30) + i * 1000, -8};
    c->scratch = aligned_alloc(64, (bp_qconv_buffer_size(p) + 63) / 64 * 64);
    if (bp_qconv_prepare(p, c->panel, &c->prep)) {
        fprintf(stderr, "int_conv: %s\n", bp_last_error());
        exit(1);
    }
    if (bp_qkern_available(BP_QKERN_AVX2)) {
        bp_qkern_set_impl(BP_QKERN_AVX2);
        bp_status st = bp_qconv_prepare(p, c->panel, &c->prep_avx2);
        bp_qkern_set_impl(BP_QKERN_AUTO);
        if (st) {
            fprintf(stderr, "int_conv: %s\n", bp_last_error());
            exit(1);
        }
    }
}

static void bpq_run(bp_conv *c, int avx2)
{
    const bp_qconv_prep *pp = avx2 ? c->prep_avx2 : c->prep;
    if (!pp || bp_qconv_run(pp, c->p.n, c->in, c->bias, c->qm, c->out, c->scratch)) {
        fprintf(stderr, "int_conv: %s\n", pp ? bp_last_error() : "no AVX2 on this CPU");
        exit(1);
    }
}

static void bpq_free(bp_conv *c)
{
    bp_qconv_prep_free(c->prep), bp_qconv_prep_free(c->prep_avx2);
    free(c->in), free(c->out), free(c->panel), free(c->bias), free(c->qm), free(c->scratch);
}

/* ---- bitplan float --------------------------------------------------------- */

typedef struct {
    bp_graph *g;
    bp_exec *ex;
    bp_real *x;
    int n;
} bp_fconv;

static void bpf_make(const shape *s, int n, bp_fconv *c)
{
    c->g = bp_graph_new();
    int64_t xd[4] = {-1, s->cin, s->h, s->w}, wd[4] = {s->cout, s->cin / s->group, s->k, s->k},
            bd[1] = {s->cout};
    int x = bp_graph_add_input(c->g, "x", 4, xd);
    int w = bp_graph_add_param(c->g, "conv.weight", 4, wd, NULL);
    int b = bp_graph_add_param(c->g, "conv.bias", 1, bd, NULL);
    for (size_t i = 0; i < c->g->nparams; i++)
        c->g->params[i] = (bp_real)((i * 13 % 15) - 7) * 0.01f;
    bp_attrs a = bp_attrs_default();
    a.stride[0] = a.stride[1] = s->stride;
    a.pads[0] = a.pads[1] = a.pads[2] = a.pads[3] = s->pad;
    a.group = s->group;
    int in[3] = {x, w, b};
    int y = bp_graph_add_node(c->g, BP_OP_CONV, "conv", in, 3, "y", &a);
    if (y < 0) {
        fprintf(stderr, "int_conv: %s\n", bp_last_error());
        exit(1);
    }
    c->g->input = x;
    c->g->output = y;
    c->ex = bp_exec_new(c->g, n, 0);
    if (!c->ex) {
        fprintf(stderr, "int_conv: %s\n", bp_last_error());
        exit(1);
    }
    size_t nin = (size_t)n * s->cin * s->h * s->w;
    c->x = malloc(sizeof(bp_real) * nin);
    for (size_t i = 0; i < nin; i++)
        c->x[i] = (bp_real)(i % 17) * 0.1f;
    c->n = n;
}

static void bpf_run(bp_fconv *c)
{
    if (bp_forward(c->ex, c->g->params, c->x, c->n, BP_MODE_INFER)) {
        fprintf(stderr, "int_conv: %s\n", bp_last_error());
        exit(1);
    }
}

static void bpf_free(bp_fconv *c)
{
    bp_exec_free(c->ex);
    bp_graph_free(c->g);
    free(c->x);
}

/* ---- timing ---------------------------------------------------------------- */

enum { IMPL_BP8, IMPL_BP8_AVX2, IMPL_BP4, IMPL_DNN, IMPL_FLT, NIMPL };

typedef struct {
    bp_conv q8, q4;
    dnn_conv d;
    bp_fconv f;
} all_impl;

static void run_impl(all_impl *a, int which)
{
    switch (which) {
    case IMPL_BP8: bpq_run(&a->q8, 0); break;
    case IMPL_BP8_AVX2: bpq_run(&a->q8, 1); break;
    case IMPL_BP4: bpq_run(&a->q4, 0); break;
    case IMPL_DNN: dnn_run(&a->d); break;
    default: bpf_run(&a->f); break;
    }
}

static double time_round(all_impl *a, int which, double min_s)
{
    run_impl(a, which); /* warm */
    int it = 0;
    double t0 = now(), t;
    do {
        run_impl(a, which);
        it++;
        t = now() - t0;
    } while (t < min_s);
    return t / it;
}

int main(int argc, char **argv)
{
    int quick = argc > 1 && !strcmp(argv[1], "--quick");
    omp_set_num_threads(1);
    openblas_set_num_threads(1);
    CHK(dnnl_engine_create(&eng, dnnl_cpu, 0));
    CHK(dnnl_stream_create(&strm, eng, dnnl_stream_default_flags));

    /* conv shapes of the reference models, deduplicated */
    shape shapes[64];
    int ns = 0;
    const char *archs[] = {"resnet8", "mobilenetv2"};
    for (int ai = 0; ai < 2; ai++) {
        bp_graph *g = NULL;
        if (bp_arch_build(archs[ai], 1, 28, 28, 10, 1, &g)) {
            fprintf(stderr, "int_conv: %s\n", bp_last_error());
            return 1;
        }
        bp_layer *L;
        int nl;
        bp_graph_layers(g, &L, &nl);
        for (int l = 0; l < nl; l++) {
            if (L[l].op != BP_OP_CONV)
                continue;
            const bp_node *nd = &g->nodes[L[l].node];
            shape s = {(int)L[l].cin, (int)L[l].in_h, (int)L[l].in_w, (int)L[l].cout, L[l].kh,
                       L[l].stride, nd->a.pads[0], L[l].group, archs[ai]};
            int dup = 0;
            for (int j = 0; j < ns; j++)
                dup |= !memcmp(&shapes[j], &s, offsetof(shape, from));
            if (!dup && ns < 64)
                shapes[ns++] = s;
        }
        free(L);
        bp_graph_free(g);
    }
    const int batches[2] = {1, quick ? 8 : 64};
    const int rounds = quick ? 3 : 5;
    const double min_s = quick ? 0.005 : 0.02;
    printf("bitplan int8 conv vs oneDNN %s int8 conv and bitplan's float conv, 1 thread\n",
           "2.6");
    printf("bitplan kernels: %s; times are medians of %d rounds, microseconds per call\n\n",
           bp_qkern_name(bp_qkern_active()), rounds);
    printf("%-12s %-26s %5s %9s %9s %9s %9s %9s %8s %8s  %s\n", "model", "conv (cin>cout k s g, HxW)",
           "batch", "bp-int8", "bp-i8avx2", "bp-int4", "onednn", "bp-float", "vs-dnn", "vs-float",
           "oneDNN impl");
    double lr_dnn[2] = {0, 0}, lr_flt[2] = {0, 0};
    int cnt[2] = {0, 0};
    for (int bi = 0; bi < 2; bi++)
        for (int si = 0; si < ns; si++) {
            const shape *s = &shapes[si];
            int n = batches[bi];
            all_impl a;
            bpq_make(s, n, 8, &a.q8);
            bpq_make(s, n, 4, &a.q4);
            dnn_make(s, n, &a.d);
            bpf_make(s, n, &a.f);
            double t[NIMPL][9];
            for (int r = 0; r < rounds; r++)
                for (int k = 0; k < NIMPL; k++)
                    t[k][r] = time_round(&a, k, min_s);
            double med[NIMPL];
            for (int k = 0; k < NIMPL; k++) {
                qsort(t[k], rounds, sizeof(double), cmpd);
                med[k] = t[k][rounds / 2];
            }
            char desc[64];
            snprintf(desc, sizeof desc, "%d>%d k%d s%d g%d %dx%d", s->cin, s->cout, s->k, s->stride,
                     s->group, s->h, s->w);
            double vd = med[IMPL_DNN] / med[IMPL_BP8], vf = med[IMPL_FLT] / med[IMPL_BP8];
            printf("%-12s %-26s %5d %9.1f %9.1f %9.1f %9.1f %9.1f %7.2fx %7.2fx  %s\n", s->from, desc, n,
                   1e6 * med[IMPL_BP8], 1e6 * med[IMPL_BP8_AVX2], 1e6 * med[IMPL_BP4], 1e6 * med[IMPL_DNN],
                   1e6 * med[IMPL_FLT], vd, vf, a.d.impl);
            fflush(stdout);
            lr_dnn[bi] += log(vd);
            lr_flt[bi] += log(vf);
            cnt[bi]++;
            bpq_free(&a.q8);
            bpq_free(&a.q4);
            dnn_free(&a.d);
            bpf_free(&a.f);
        }
    printf("\n");
    for (int bi = 0; bi < 2; bi++)
        printf("batch %2d: geometric mean speed of bitplan int8 = %.2fx oneDNN int8, %.2fx bitplan float "
               "(targets >= 0.7x, >= 1.5x)\n",
               batches[bi], exp(lr_dnn[bi] / cnt[bi]), exp(lr_flt[bi] / cnt[bi]));
    dnnl_stream_destroy(strm);
    dnnl_engine_destroy(eng);
    return 0;
}
