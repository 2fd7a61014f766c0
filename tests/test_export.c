/* test_export.c — bitplan export --c-header: the emitted header and
 * standalone inference file are compiled with the system cc, run on real
 * Fashion-MNIST samples, and their int32 logits compared exactly with the
 * library's integer-only engine (bp_qrun_forward) on the same model. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/data.h"
#include "core/fileio.h"
#include "quant/export_c.h"
#include "quant/qmodel.h"
#include "train/arch.h"

#define NSAMP 12

static char dir[] = "/tmp/bp-export-XXXXXX";

static void setup(void) { cr_assert(mkdtemp(dir)); }
static void teardown(void)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    (void)!system(cmd);
}

TestSuite(export, .init = setup, .fini = teardown, .timeout = 120);

/* Builds arch with the given per-layer bits (pattern over layers), exports it,
 * compiles the emitted C, runs it on NSAMP test samples in float and in
 * quantized form, and compares every logit with the library's engine. */
static void check_arch(const char *arch, const int *wpat, const int *apat, int npat, int pow2)
{
    bp_graph *g = NULL;
    cr_assert_eq(bp_arch_build(arch, 1, 28, 28, 10, 7, &g), BP_OK, "%s", bp_last_error());
    bp_layer *L;
    int nl;
    cr_assert_eq(bp_graph_layers(g, &L, &nl), BP_OK);
    int wb[64], ab[64];
    for (int i = 0; i < nl; i++)
        wb[i] = wpat[i % npat], ab[i] = apat[i % npat];
    bp_dataset cal = {0}, ev = {0};
    bp_data_opts o = bp_data_opts_default();
    o.limit = 64;
    cr_assert_eq(bp_dataset_load("fashion-mnist:train", &o, &cal), BP_OK, "%s", bp_last_error());
    o.limit = NSAMP;
    cr_assert_eq(bp_dataset_load("fashion-mnist:test", &o, &ev), BP_OK, "%s", bp_last_error());
    bp_qopts qo = bp_qopts_default();
    qo.pow2 = pow2;
    bp_qmodel *m = NULL;
    cr_assert_eq(bp_qmodel_build(g, wb, ab, cal.x, cal.n, &qo, &m), BP_OK, "%s", bp_last_error());

    char h[256], c[256], exe[256], in_f[256], in_q[256], cmd[1400];
    snprintf(h, sizeof h, "%s/%s_model.h", dir, arch);
    snprintf(c, sizeof c, "%s/%s_infer.c", dir, arch);
    snprintf(exe, sizeof exe, "%s/%s_infer", dir, arch);
    snprintf(in_f, sizeof in_f, "%s/%s_x.f32", dir, arch);
    snprintf(in_q, sizeof in_q, "%s/%s_x.q", dir, arch);
    cr_assert_eq(bp_export_c(m, h, c, arch), BP_OK, "%s", bp_last_error());
    /* Strict flags: the emitted code must be clean C11 and link without libm. */
    snprintf(cmd, sizeof cmd, "cc -std=c11 -O2 -Wall -Wextra -Werror -o '%s' '%s' 2>&1", exe, c);
    cr_assert_eq(system(cmd), 0, "compile failed: %s", cmd);

    const size_t numel = (size_t)ev.c * ev.h * ev.w;
    float *xf = malloc(sizeof(float) * numel * NSAMP);
    for (size_t i = 0; i < numel * NSAMP; i++)
        xf[i] = (float)ev.x[i];
    cr_assert_eq(bp_write_file_atomic(in_f, xf, sizeof(float) * numel * NSAMP), BP_OK);
    uint8_t *xq = malloc(numel * NSAMP);
    bp_qmodel_quantize_input(m, ev.x, NSAMP, xq);
    cr_assert_eq(bp_write_file_atomic(in_q, xq, numel * NSAMP), BP_OK);

    bp_qrun *r = NULL;
    cr_assert_eq(bp_qrun_new(m, NSAMP, &r), BP_OK);
    int32_t ref[NSAMP * 10];
    cr_assert_eq(bp_qrun_forward(r, xq, NSAMP, ref), BP_OK);
    /* Not all-equal logits: a degenerate model would make the comparison weak. */
    int distinct = 0;
    for (int i = 1; i < NSAMP * 10; i++)
        distinct |= ref[i] != ref[0];
    cr_assert(distinct);
    size_t len0;

    for (int mode = 0; mode < 2; mode++) {
        snprintf(cmd, sizeof cmd, "'%s' %s '%s'", exe, mode ? "-q" : "", mode ? in_q : in_f);
        FILE *p = popen(cmd, "r");
        cr_assert(p);
        int mism = 0;
        for (int s = 0; s < NSAMP; s++) {
            int best = 0, got_best = -1;
            for (int k = 0; k < 10; k++) {
                long v;
                cr_assert_eq(fscanf(p, "%ld", &v), 1, "%s: sample %d logit %d missing", arch, s, k);
                if (v != ref[s * 10 + k]) {
                    mism++;
                    cr_log_error("%s %s sample %d logit %d: standalone %ld, engine %d", arch,
                                 mode ? "quantized" : "float", s, k, v, ref[s * 10 + k]);
                }
                if (ref[s * 10 + k] > ref[s * 10 + best])
                    best = k;
            }
            cr_assert_eq(fscanf(p, " -> %d", &got_best), 1);
            cr_assert_eq(got_best, best);
        }
        cr_assert_eq(pclose(p), 0);
        cr_assert_eq(mism, 0, "%s: %d logits differ", arch, mism);
    }
    /* libc only: the emitted source includes nothing else. */
    char *src;
    cr_assert_eq(bp_read_file(c, &src, &len0), BP_OK);
    for (char *q = strstr(src, "#include <"); q; q = strstr(q + 1, "#include <")) {
        char inc[64];
        cr_assert_eq(sscanf(q, "#include <%63[^>]>", inc), 1);
        cr_assert(!strcmp(inc, "stdint.h") || !strcmp(inc, "stddef.h") || !strcmp(inc, "stdio.h") ||
                      !strcmp(inc, "string.h"),
                  "emitted source includes <%s>", inc);
    }
    free(src);
    /* Integer only: apart from bpm_quantize_input (the one float step), the
     * compiled library form has no floating-point arithmetic. */
    snprintf(cmd, sizeof cmd,
             "cc -std=c11 -O2 -DBPM_NO_MAIN -ffunction-sections -c -o '%s.o' '%s' && objdump -d '%s.o' | "
             "awk '/^Disassembly of section/ {skip = /bpm_quantize_input/} !skip' | "
             "grep -Ei '\\s(v?(add|sub|mul|div|sqrt|min|max)[sp][sd]|v?cvt[a-z0-9]*|v?u?comis[sd])\\s' | head -3 > '%s.fp'",
             exe, c, exe, exe);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    char fpf[300];
    snprintf(fpf, sizeof fpf, "%s.fp", exe);
    char *fp_lines;
    size_t fp_len;
    cr_assert_eq(bp_read_file(fpf, &fp_lines, &fp_len), BP_OK);
    cr_assert_eq(fp_len, 0, "float instructions on the integer path:\n%s", fp_lines);
    free(fp_lines);
    /* Positive control: the same filter does see bpm_quantize_input's floats. */
    snprintf(cmd, sizeof cmd,
             "objdump -d '%s.o' | grep -Ei '\\s(v?(add|sub|mul|div|sqrt|min|max)[sp][sd]|v?cvt[a-z0-9]*|v?u?comis[sd])\\s'"
             " >/dev/null",
             exe);
    cr_assert_eq(system(cmd), 0, "the float filter found nothing in bpm_quantize_input");
    /* The header states the layer bits it was built with. */
    char *text;
    size_t len;
    cr_assert_eq(bp_read_file(h, &text, &len), BP_OK);
    char want[256];
    snprintf(want, sizeof want, "%-32s w%d a%d", L[0].name, wb[0], ab[0]);
    cr_assert(strstr(text, want), "header lacks '%s'", want);
    free(text);

    bp_qrun_free(r);
    free(xf);
    free(xq);
    free(L);
    bp_qmodel_free(m);
    bp_dataset_free(&cal);
    bp_dataset_free(&ev);
    bp_graph_free(g);
}

Test(export, lenet5_mixed_bits_match_engine)
{
    int w[] = {8, 4, 6, 3, 8}, a[] = {8, 4, 6, 4, 8};
    check_arch("lenet5", w, a, 5, 0);
}

/* resnet8: residual adds, downsample shortcuts, GAP, views at lower bits. */
Test(export, resnet8_mixed_bits_match_engine)
{
    int w[] = {8, 4, 2, 5, 8, 4}, a[] = {8, 4, 4, 5, 8, 6};
    check_arch("resnet8", w, a, 6, 0);
}

Test(export, resnet8_pow2_scales_match_engine)
{
    int w[] = {4, 8}, a[] = {4, 8};
    check_arch("resnet8", w, a, 2, 1);
}

/* mobilenetv2: depthwise (grouped) convs and ReLU6 clamps. */
Test(export, mobilenetv2_match_engine)
{
    int w[] = {8, 4, 6}, a[] = {8, 8, 6};
    check_arch("mobilenetv2", w, a, 3, 0);
}

/* Packing rule from export_c.h, worked by hand: a 1x1 conv with 4-bit weights
 * (−3, 5) packs into byte 0x5D; (7, −8) into 0x87. */
Test(export, nibble_packing_by_hand)
{
    bp_qmodel m;
    memset(&m, 0, sizeof m);
    bp_qop op;
    memset(&op, 0, sizeof op);
    op.kind = BP_QOP_GEMM;
    op.gp = (bp_qgemm_params){.n = 1, .k = 4, .m = 1, .wbits = 4, .in_type = BP_QT_S8,
                              .out_type = BP_QT_S32, .out_min = INT32_MIN, .out_max = INT32_MAX};
    op.wbits = 4;
    int8_t w[4] = {-3, 5, 7, -8};
    op.wpanel = malloc(bp_qweights_size(1, 1, 4, 4));
    cr_assert_eq(bp_qweights_pack(w, 1, 1, 4, 4, op.wpanel), BP_OK);
    bp_qmul q = {0, 0};
    op.qm = &q;
    op.in[0] = 0;
    op.out = 1;
    op.layer = -1;
    bp_qtensor t[2];
    memset(t, 0, sizeof t);
    t[0] = (bp_qtensor){.type = BP_QT_S8, .bits = 8, .is_signed = 1, .scale = 1, .qmin = -128, .qmax = 127,
                        .numel1 = 4, .ndim = 2, .dims = {1, 4}};
    t[1] = (bp_qtensor){.type = BP_QT_S32, .bits = 16, .is_signed = 1, .scale = 1, .qmin = INT32_MIN,
                        .qmax = INT32_MAX, .numel1 = 1, .ndim = 2, .dims = {1, 1}};
    m.t = t;
    m.nt = 2;
    m.ops = &op;
    m.nops = 1;
    m.input_t = 0;
    m.output_t = 1;
    char h[256];
    snprintf(h, sizeof h, "%s/pack.h", dir);
    cr_assert_eq(bp_export_c(&m, h, NULL, "packing"), BP_OK, "%s", bp_last_error());
    char *text;
    size_t len;
    cr_assert_eq(bp_read_file(h, &text, &len), BP_OK);
    cr_assert(strstr(text, "bpm_w0[2] = {\n    0x5d, 0x87,"), "%s", text);
    cr_assert(strstr(text, "#define BPM_OUTPUT 1"));
    free(text);
    free(op.wpanel);
}

Test(export, unwritable_path_fails_without_output)
{
    bp_graph *g = NULL;
    cr_assert_eq(bp_arch_build("lenet5", 1, 28, 28, 10, 1, &g), BP_OK);
    bp_layer *L;
    int nl;
    cr_assert_eq(bp_graph_layers(g, &L, &nl), BP_OK);
    int wb[16], ab[16];
    for (int i = 0; i < nl; i++)
        wb[i] = ab[i] = 8;
    bp_real *x = calloc(8 * 784, sizeof(bp_real));
    for (int i = 0; i < 8 * 784; i++)
        x[i] = (bp_real)((i * 37 % 101) / 50.0 - 1);
    bp_qmodel *m = NULL;
    cr_assert_eq(bp_qmodel_build(g, wb, ab, x, 8, NULL, &m), BP_OK, "%s", bp_last_error());
    cr_assert_neq(bp_export_c(m, "/nonexistent-dir/x.h", NULL, NULL), BP_OK);
    cr_assert(strstr(bp_last_error(), "/nonexistent-dir/x.h"), "%s", bp_last_error());
    bp_qmodel_free(m);
    free(x);
    free(L);
    bp_graph_free(g);
}
