/* ONNX conformance: Debian's libonnx-testdata cases (node/ and
 * pytorch-converted/) run through bitplan's loader and float engine against
 * their stored outputs (rtol 1e-4, atol 1e-5).
 *
 * Node cases often feed weights as graph inputs. The harness binds every
 * graph input but the first to its input_k.pb tensor by adding that tensor to
 * the model's initializers (so the loader sees what an exporter would have
 * written), then feeds input_0.pb as the batch: its dims[0] is the batch size.
 *
 * A case whose model the loader rejects (an op or attribute bitplan does not
 * support, 1-D/3-D convolution, an op that moves the batch dimension, ...) is
 * skipped and the reason printed. Every case that loads must run and match. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/exec.h"
#include "core/fileio.h"
#include "core/onnx.h"
#include "core/onnx_tensor.h"
#include "onnx/onnx.pb-c.h"

#define DATA "/usr/share/libonnx-testdata/data"

typedef struct {
    int ran, passed, failed, skipped;
    char failures[4096];
    char passed_names[65536];
} tally;

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted subdirectory names of dir (caller frees each and the array). */
static char **list_dir(const char *dir, int *n)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "%s: missing (Debian package libonnx-testdata)", dir);
    char **v = NULL;
    int cnt = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        if (cnt == cap) {
            cap = cap ? 2 * cap : 256;
            v = realloc(v, (size_t)cap * sizeof *v);
        }
        v[cnt++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(v, (size_t)cnt, sizeof *v, cmp_str);
    *n = cnt;
    return v;
}

static Onnx__TensorProto *read_tensor_proto(const char *path)
{
    char *buf;
    size_t len;
    if (bp_read_file(path, &buf, &len))
        return NULL;
    Onnx__TensorProto *t = onnx__tensor_proto__unpack(NULL, len, (uint8_t *)buf);
    free(buf);
    return t;
}

/* The model with graph inputs 1.. bound to the data set's tensors, packed
 * again; NULL with *why set when the case cannot be prepared. */
static uint8_t *bind_inputs(const char *model_path, const char *set_dir, size_t *out_len,
                            char *why, size_t whylen)
{
    char *buf;
    size_t len;
    if (bp_read_file(model_path, &buf, &len)) {
        snprintf(why, whylen, "%s", bp_last_error());
        return NULL;
    }
    Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, len, (uint8_t *)buf);
    free(buf);
    if (!m || !m->graph) {
        snprintf(why, whylen, "model does not parse");
        if (m)
            onnx__model_proto__free_unpacked(m, NULL);
        return NULL;
    }
    Onnx__GraphProto *gp = m->graph;
    /* inputs that are not initializers, in order */
    size_t real = 0, ninit0 = gp->n_initializer;
    Onnx__TensorProto **added = calloc(gp->n_input + 1, sizeof *added);
    Onnx__TensorProto **inits = malloc((ninit0 + gp->n_input + 1) * sizeof *inits);
    if (ninit0)
        memcpy(inits, gp->initializer, ninit0 * sizeof *inits);
    size_t ninit = ninit0, nadded = 0;
    uint8_t *packed = NULL;
    for (size_t k = 0; k < gp->n_input; k++) {
        int is_init = 0;
        for (size_t j = 0; j < ninit0; j++)
            if (!strcmp(gp->initializer[j]->name, gp->input[k]->name))
                is_init = 1;
        if (is_init)
            continue;
        if (real > 0) {
            char p[1300];
            snprintf(p, sizeof p, "%s/input_%zu.pb", set_dir, real);
            Onnx__TensorProto *t = read_tensor_proto(p);
            if (!t) {
                snprintf(why, whylen, "cannot read input_%zu.pb", real);
                goto done;
            }
            free(t->name);
            t->name = strdup(gp->input[k]->name);
            added[nadded++] = t;
            inits[ninit++] = t;
        }
        real++;
    }
    Onnx__TensorProto **old = gp->initializer;
    gp->initializer = inits;
    gp->n_initializer = ninit;
    *out_len = onnx__model_proto__get_packed_size(m);
    packed = malloc(*out_len + 1);
    onnx__model_proto__pack(m, packed);
    gp->initializer = old;
    gp->n_initializer = ninit0;
done:
    for (size_t k = 0; k < nadded; k++)
        onnx__tensor_proto__free_unpacked(added[k], NULL);
    free(added);
    free(inits);
    onnx__model_proto__free_unpacked(m, NULL);
    return packed;
}

/* Runs one case; returns 1 passed, 0 failed (message in why), -1 skipped. */
static int run_case(const char *case_dir, char *why, size_t whylen)
    __attribute__((nonnull));
static int run_case(const char *case_dir, char *why, size_t whylen)
{
    char model[1200], set[1200], p[1300];
    snprintf(model, sizeof model, "%s/model.onnx", case_dir);
    snprintf(set, sizeof set, "%s/test_data_set_0", case_dir);
    size_t len;
    uint8_t *buf = bind_inputs(model, set, &len, why, whylen);
    if (!buf)
        return -1;
    bp_graph *g = NULL;
    bp_status st = bp_onnx_load_buffer(buf, len, model, &g);
    free(buf);
    if (st) {
        /* the loader's message, without the path prefix */
        const char *m = bp_last_error();
        const char *s = strstr(m, "model.onnx: ");
        snprintf(why, whylen, "%s", s ? s + 12 : m);
        return -1;
    }
    float *x = NULL, *y = NULL;
    int64_t xd[BP_MAX_DIMS], yd[BP_MAX_DIMS];
    int xn, yn, result = 0;
    bp_exec *ex = NULL;
    snprintf(p, sizeof p, "%s/input_0.pb", set);
    if (bp_onnx_tensor_read(p, &x, xd, &xn, NULL)) {
        snprintf(why, whylen, "%s", bp_last_error());
        goto out;
    }
    snprintf(p, sizeof p, "%s/output_0.pb", set);
    if (bp_onnx_tensor_read(p, &y, yd, &yn, NULL)) {
        snprintf(why, whylen, "%s", bp_last_error());
        goto out;
    }
    const bp_value *in = &g->values[g->input];
    if (xn != in->ndim || xn < 1) {
        snprintf(why, whylen, "input_0 has %d dims, the model %d", xn, in->ndim);
        goto out;
    }
    for (int k = 1; k < xn; k++)
        if (xd[k] != in->dims[k]) {
            snprintf(why, whylen, "input_0 dim %d is %lld, the model says %lld", k, (long long)xd[k],
                     (long long)in->dims[k]);
            goto out;
        }
    int n = (int)xd[0];
    ex = bp_exec_new(g, n, 0);
    if (!ex) {
        snprintf(why, whylen, "executor: %s", bp_last_error());
        goto out;
    }
    if ((st = bp_forward(ex, g->params, x, n, BP_MODE_INFER))) {
        snprintf(why, whylen, "forward: %s", bp_last_error());
        goto out;
    }
    int on;
    const int64_t *od = bp_exec_dims(ex, g->output, &on);
    size_t total = 1, want = 1;
    for (int k = 0; k < on; k++)
        total *= (size_t)od[k];
    for (int k = 0; k < yn; k++)
        want *= (size_t)yd[k];
    int same = on == yn;
    for (int k = 0; same && k < on; k++)
        same = od[k] == yd[k];
    if (!same) {
        snprintf(why, whylen, "output shape differs (%d-D, %zu elements; expected %d-D, %zu)", on,
                 total, yn, want);
        goto out;
    }
    const bp_real *got = bp_exec_act(ex, g->output);
    for (size_t i = 0; i < total; i++) {
        double d = fabs((double)got[i] - y[i]);
        if (!(d <= 1e-5 + 1e-4 * fabs(y[i]))) {
            snprintf(why, whylen, "element %zu is %.7g, expected %.7g", i, (double)got[i], y[i]);
            goto out;
        }
    }
    result = 1;
out:
    bp_exec_free(ex);
    free(x);
    free(y);
    bp_graph_free(g);
    return result;
}

static void run_suite(const char *sub, tally *t)
{
    char dir[512];
    snprintf(dir, sizeof dir, DATA "/%s", sub);
    int n;
    char **cases = list_dir(dir, &n);
    for (int i = 0; i < n; i++) {
        char cdir[1024], why[512] = "";
        snprintf(cdir, sizeof cdir, "%s/%s", dir, cases[i]);
        int r = run_case(cdir, why, sizeof why);
        if (r < 0) {
            t->skipped++;
            fprintf(stderr, "  skip  %s/%s: %s\n", sub, cases[i], why);
        } else {
            t->ran++;
            if (r) {
                t->passed++;
                fprintf(stderr, "  pass  %s/%s\n", sub, cases[i]);
                size_t l = strlen(t->passed_names);
                snprintf(t->passed_names + l, sizeof t->passed_names - l, " %s/%s ", sub, cases[i]);
            } else {
                t->failed++;
                fprintf(stderr, "  FAIL  %s/%s: %s\n", sub, cases[i], why);
                size_t l = strlen(t->failures);
                snprintf(t->failures + l, sizeof t->failures - l, "%s/%s: %s\n", sub, cases[i], why);
            }
        }
        free(cases[i]);
    }
    free(cases);
}

/* Cases the issue names; each must be among the passes. */
static const char *const required[] = {
    "node/test_basic_conv_with_padding", "node/test_basic_conv_without_padding",
    "node/test_conv_with_strides_padding", "node/test_conv_with_strides_no_padding",
    "node/test_conv_with_strides_and_asymmetric_padding", "node/test_conv_with_autopad_same",
    "node/test_gemm_default_no_bias", "node/test_gemm_default_vector_bias",
    "node/test_gemm_default_matrix_bias", "node/test_gemm_transposeB", "node/test_gemm_alpha",
    "node/test_gemm_beta", "node/test_gemm_all_attributes",
    "node/test_batchnorm_example", "node/test_batchnorm_epsilon", "node/test_relu",
    "node/test_clip", "node/test_clip_example", "node/test_clip_inbounds", "node/test_clip_outbounds",
    "node/test_clip_splitbounds", "node/test_clip_default_min", "node/test_clip_default_max",
    "node/test_maxpool_2d_default", "node/test_maxpool_2d_pads", "node/test_maxpool_2d_strides",
    "node/test_maxpool_2d_ceil", "node/test_maxpool_2d_dilations", "node/test_maxpool_2d_same_upper",
    "node/test_maxpool_2d_same_lower", "node/test_maxpool_2d_precomputed_pads",
    "node/test_averagepool_2d_default", "node/test_averagepool_2d_pads",
    "node/test_averagepool_2d_pads_count_include_pad", "node/test_averagepool_2d_strides",
    "node/test_averagepool_2d_ceil", "node/test_averagepool_2d_same_upper",
    "node/test_averagepool_2d_same_lower", "node/test_averagepool_2d_precomputed_same_upper",
    "node/test_globalaveragepool", "node/test_globalaveragepool_precomputed",
    "node/test_flatten_axis1", "node/test_flatten_default_axis", "node/test_flatten_axis2",
    "node/test_flatten_axis3",
    "pytorch-converted/test_Conv2d", "pytorch-converted/test_Conv2d_depthwise",
    "pytorch-converted/test_Conv2d_depthwise_padded", "pytorch-converted/test_Conv2d_depthwise_strided",
    "pytorch-converted/test_Conv2d_depthwise_with_multiplier", "pytorch-converted/test_Conv2d_dilated",
    "pytorch-converted/test_Conv2d_groups", "pytorch-converted/test_Conv2d_groups_thnn",
    "pytorch-converted/test_Conv2d_no_bias", "pytorch-converted/test_Conv2d_padding",
    "pytorch-converted/test_Conv2d_strided", "pytorch-converted/test_Linear",
    "pytorch-converted/test_Linear_no_bias", "pytorch-converted/test_BatchNorm2d_eval",
    "pytorch-converted/test_BatchNorm2d_momentum_eval", "pytorch-converted/test_ReLU",
    "pytorch-converted/test_MaxPool2d", "pytorch-converted/test_MaxPool2d_stride_padding_dilation",
    "pytorch-converted/test_AvgPool2d", "pytorch-converted/test_AvgPool2d_stride",
};

Test(conformance, libonnx_testdata, .timeout = 600)
{
    tally t;
    memset(&t, 0, sizeof t);
    run_suite("node", &t);
    run_suite("pytorch-converted", &t);
    run_suite("pytorch-operator", &t);
    run_suite("simple", &t);
    fprintf(stderr, "[====] conformance: %d cases ran, %d passed, %d failed, %d skipped\n", t.ran,
            t.passed, t.failed, t.skipped);
    cr_expect_eq(t.failed, 0, "cases that loaded but did not match:\n%s", t.failures);
    for (size_t k = 0; k < sizeof required / sizeof *required; k++) {
        char key[256];
        snprintf(key, sizeof key, " %s ", required[k]);
        cr_expect(strstr(t.passed_names, key) != NULL, "required case %s did not pass", required[k]);
    }
    cr_expect_geq(t.passed, 104, "only %d cases passed (104 did when this floor was set)", t.passed);
}
