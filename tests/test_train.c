/* Training: builders against parameter counts, shapes and MACs counted by
 * hand; the SGD update against steps worked by hand; the learning-rate
 * schedule at hand-computed points; initialization statistics; then short
 * trainings on a small Fashion-MNIST subset (loss goes down, same seed gives
 * the same weights) and train -> save ONNX -> load -> eval. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/data.h"
#include "core/exec.h"
#include "core/onnx.h"
#include "train/arch.h"
#include "train/train.h"

static size_t count_params(const bp_graph *g, int trainable)
{
    size_t n = 0;
    for (int i = 0; i < g->nvalues; i++)
        if (g->values[i].kind == BP_VAL_PARAM && g->values[i].trainable == trainable)
            n += g->values[i].numel;
    return n;
}

static int count_op(const bp_graph *g, bp_op op)
{
    int n = 0;
    for (int i = 0; i < g->nnodes; i++)
        n += g->nodes[i].op == op;
    return n;
}

static const bp_value *val(const bp_graph *g, const char *name)
{
    int id = bp_graph_find(g, name);
    cr_assert_geq(id, 0, "no value '%s'", name);
    return &g->values[id];
}

static void assert_dims(const bp_value *v, int nd, int64_t a, int64_t b, int64_t c, int64_t d)
{
    int64_t want[4] = {a, b, c, d};
    cr_assert_eq(v->ndim, nd, "%s: %d dims", v->name, v->ndim);
    for (int i = 0; i < nd; i++)
        cr_assert_eq(v->dims[i], want[i], "%s dim %d: %lld, want %lld", v->name, i, (long long)v->dims[i],
                     (long long)want[i]);
}

static int64_t total_macs(const bp_graph *g, int *nlayers)
{
    bp_layer *ls;
    cr_assert_eq(bp_graph_layers(g, &ls, nlayers), BP_OK);
    int64_t m = 0;
    for (int i = 0; i < *nlayers; i++)
        m += ls[i].macs;
    free(ls);
    return m;
}

Test(arch, lenet5_by_hand)
{
    bp_graph *g;
    cr_assert_eq(bp_arch_build("lenet5", 1, 28, 28, 10, 1, &g), BP_OK, "%s", bp_last_error());
    /* conv1 6*1*25+6, conv2 16*6*25+16, fc1 400*120+120, fc2 120*84+84, fc3 84*10+10 */
    cr_assert_eq(count_params(g, 1), 156 + 2416 + 48120 + 10164 + 850);
    cr_assert_eq(count_params(g, 0), 0);
    assert_dims(val(g, "conv2.weight"), 4, 16, 6, 5, 5);
    assert_dims(val(g, "fc1.weight"), 2, 120, 400, 0, 0);
    assert_dims(&g->values[g->output], 2, -1, 10, 0, 0);
    int nl;
    /* 28*28*6*25 + 10*10*16*150 + 400*120 + 120*84 + 84*10 */
    cr_assert_eq(total_macs(g, &nl), 117600 + 240000 + 48000 + 10080 + 840);
    cr_assert_eq(nl, 5);
    bp_graph_free(g);
}

Test(arch, resnet8_by_hand)
{
    bp_graph *g;
    cr_assert_eq(bp_arch_build("resnet8", 1, 28, 28, 10, 1, &g), BP_OK, "%s", bp_last_error());
    /* stem 9*16 + bn 32; layer1 2*(16*16*9) + 2*32; layer2 16*32*9 + 32*32*9
     * + 16*32 + 3*64; layer3 32*64*9 + 64*64*9 + 32*64 + 3*128; fc 640 + 10 */
    size_t want = 144 + 32 + (2304 * 2 + 64) + (4608 + 9216 + 512 + 192) + (18432 + 36864 + 2048 + 384) + 650;
    cr_assert_eq(count_params(g, 1), want);
    /* running mean and variance of 16*3 + 32*3 + 64*3 channels */
    cr_assert_eq(count_params(g, 0), 2 * (48 + 96 + 192));
    assert_dims(val(g, "layer2.0.downsample.0.weight"), 4, 32, 16, 1, 1);
    assert_dims(val(g, "layer3.0.conv2.weight"), 4, 64, 64, 3, 3);
    cr_assert_eq(val(g, "layer3.0.bn2.running_var")->trainable, 0);
    assert_dims(val(g, "layer1.0.conv2"), 4, -1, 16, 28, 28);
    assert_dims(val(g, "layer2.0.conv1"), 4, -1, 32, 14, 14);
    assert_dims(val(g, "layer3.0.downsample.1"), 4, -1, 64, 7, 7);
    assert_dims(&g->values[g->output], 2, -1, 10, 0, 0);
    cr_assert_eq(count_op(g, BP_OP_ADD), 3);
    cr_assert_eq(count_op(g, BP_OP_BN), 9);
    cr_assert_eq(count_op(g, BP_OP_GAP), 1);
    int nl;
    int64_t macs = 28 * 28 * 16 * 9 + 2 * (28 * 28 * 16 * 144) + 14 * 14 * 32 * (144 + 288 + 16) +
                   7 * 7 * 64 * (288 + 576 + 32) + 640;
    cr_assert_eq(total_macs(g, &nl), macs);
    cr_assert_eq(nl, 10);
    bp_graph_free(g);
}

Test(arch, mobilenetv2_by_hand)
{
    bp_graph *g;
    cr_assert_eq(bp_arch_build("mobilenetv2", 1, 28, 28, 10, 1, &g), BP_OK, "%s", bp_last_error());
    /* stem 3x3x16 144 + BN 32;
     * block 1 (t=1, 16->16): dw 16*9 = 144 + 32, project 16*16 = 256 + 32;
     * block 2 (16->24, hidden 64): 16*64 = 1024 + 128, 64*9 = 576 + 128, 64*24 = 1536 + 48;
     * block 3 (24->24, hidden 96): 2304 + 192, 864 + 192, 2304 + 48;
     * block 4 (24->32, hidden 96): 2304 + 192, 864 + 192, 96*32 = 3072 + 64;
     * block 5 (32->32, hidden 128): 4096 + 256, 1152 + 256, 4096 + 64;
     * last 1x1 32->128: 4096 + 256; classifier 128*10 + 10 */
    size_t want = 176 + 464 + 3440 + 5904 + 6688 + 9920 + 4352 + 1290;
    cr_assert_eq(count_params(g, 1), want);
    assert_dims(val(g, "features.0.0.weight"), 4, 16, 1, 3, 3);
    assert_dims(val(g, "features.1.conv.0.0.weight"), 4, 16, 1, 3, 3);
    assert_dims(val(g, "features.2.conv.1.0.weight"), 4, 64, 1, 3, 3);
    assert_dims(val(g, "features.4.conv.2.weight"), 4, 32, 96, 1, 1);
    assert_dims(val(g, "features.6.0.weight"), 4, 128, 32, 1, 1);
    assert_dims(val(g, "features.1.conv.0.0"), 4, -1, 16, 14, 14);
    assert_dims(val(g, "features.2.conv.1.0"), 4, -1, 64, 7, 7);
    assert_dims(val(g, "features.5.conv.3"), 4, -1, 32, 7, 7);
    assert_dims(&g->values[g->output], 2, -1, 10, 0, 0);
    cr_assert_eq(count_op(g, BP_OP_ADD), 3, "residuals in blocks 1, 3, 5");
    cr_assert_eq(count_op(g, BP_OP_CLIP), 11);
    int nl;
    /* stem 14*14*16*9; block 1: 196*16*9 + 196*16*16; block 2: 196*16*64 +
     * 49*64*9 + 49*64*24; block 3: 49*(24*96 + 96*9 + 96*24); block 4:
     * 49*(24*96 + 96*9 + 96*32); block 5: 49*(32*128 + 128*9 + 128*32);
     * last 49*32*128; fc 1280 */
    int64_t macs = 28224 + (28224 + 50176) + (200704 + 28224 + 75264) + 49 * (2304 + 864 + 2304) +
                   49 * (2304 + 864 + 3072) + 49 * (4096 + 1152 + 4096) + 49 * 4096 + 1280;
    cr_assert_eq(total_macs(g, &nl), macs);
    cr_assert_eq(nl, 17);
    int dw = 0;
    for (int i = 0; i < g->nnodes; i++)
        if (g->nodes[i].op == BP_OP_CONV && g->nodes[i].a.group > 1) {
            dw++;
            cr_assert_eq(g->nodes[i].a.group, g->values[g->nodes[i].out].dims[1]);
        }
    cr_assert_eq(dw, 5);
    bp_graph_free(g);
}

Test(arch, unknown_and_bad)
{
    bp_graph *g;
    cr_assert_eq(bp_arch_build("vgg16", 1, 28, 28, 10, 1, &g), BP_ERR_ARG);
    cr_assert(strstr(bp_last_error(), "vgg16") && strstr(bp_last_error(), "resnet8"));
    cr_assert_null(g);
    /* too small for LeNet's second 5x5 conv after pooling */
    cr_assert_neq(bp_arch_build("lenet5", 1, 4, 4, 10, 1, &g), BP_OK);
    cr_assert_null(g);
    cr_assert_str_eq(bp_arch_name(1), "resnet8");
    cr_assert_null(bp_arch_name(3));
}

Test(init, kaiming_statistics_and_seed)
{
    bp_graph *a, *b, *c;
    cr_assert_eq(bp_arch_build("resnet8", 1, 28, 28, 10, 7, &a), BP_OK);
    cr_assert_eq(bp_arch_build("resnet8", 1, 28, 28, 10, 7, &b), BP_OK);
    cr_assert_eq(bp_arch_build("resnet8", 1, 28, 28, 10, 8, &c), BP_OK);
    cr_assert_eq(memcmp(a->params, b->params, a->nparams * sizeof(bp_real)), 0, "same seed, same weights");
    cr_assert_neq(memcmp(a->params, c->params, a->nparams * sizeof(bp_real)), 0);
    /* 36864 draws: the sample std is within 2% of sqrt(2/576) with
     * overwhelming probability (its relative standard error is 0.4%) */
    const bp_value *w = val(a, "layer3.0.conv2.weight");
    double s = 0, s2 = 0;
    for (size_t i = 0; i < w->numel; i++) {
        double x = a->params[w->offset + i];
        s += x;
        s2 += x * x;
    }
    double mean = s / w->numel, sd = sqrt(s2 / w->numel - mean * mean);
    cr_assert_float_eq(sd, sqrt(2.0 / 576), 0.02 * sqrt(2.0 / 576), "sd %g", sd);
    cr_assert_lt(fabs(mean), 0.002);
    const bp_value *fc = val(a, "fc.weight");
    s2 = 0;
    for (size_t i = 0; i < fc->numel; i++)
        s2 += a->params[fc->offset + i] * a->params[fc->offset + i];
    cr_assert_float_eq(sqrt(s2 / fc->numel), sqrt(1.0 / 64), 0.1 * sqrt(1.0 / 64), "output layer: gain 1");
    const char *ones[] = {"bn1.weight", "layer2.0.bn2.running_var"}, *zeros[] = {"bn1.bias", "fc.bias",
                                                                                 "layer1.0.bn1.running_mean"};
    for (int k = 0; k < 2; k++)
        for (size_t i = 0; i < val(a, ones[k])->numel; i++)
            cr_assert_eq(a->params[val(a, ones[k])->offset + i], 1);
    for (int k = 0; k < 3; k++)
        for (size_t i = 0; i < val(a, zeros[k])->numel; i++)
            cr_assert_eq(a->params[val(a, zeros[k])->offset + i], 0);
    bp_graph_free(a);
    bp_graph_free(b);
    bp_graph_free(c);
}

/* x (N, 3) -> Gemm fc (W (2, 3), b (2)) -> BatchNormalization bn (2 channels) */
static bp_graph *tiny_graph(void)
{
    bp_graph *g = bp_graph_new();
    int64_t xd[2] = {-1, 3}, wd[2] = {2, 3}, cd[1] = {2};
    int x = bp_graph_add_input(g, "x", 2, xd);
    int in[5] = {x, bp_graph_add_param(g, "fc.weight", 2, wd, NULL), bp_graph_add_param(g, "fc.bias", 1, cd, NULL)};
    bp_attrs a = bp_attrs_default();
    a.trans_b = 1;
    int y = bp_graph_add_node(g, BP_OP_GEMM, "fc", in, 3, "fc", &a);
    int bn[5] = {y, bp_graph_add_param(g, "bn.weight", 1, cd, NULL), bp_graph_add_param(g, "bn.bias", 1, cd, NULL),
                 bp_graph_add_param(g, "bn.running_mean", 1, cd, NULL),
                 bp_graph_add_param(g, "bn.running_var", 1, cd, NULL)};
    g->values[bn[3]].trainable = g->values[bn[4]].trainable = 0;
    cr_assert_geq(bp_graph_add_node(g, BP_OP_BN, "bn", bn, 5, "bn", NULL), 0, "%s", bp_last_error());
    cr_assert_eq(g->nparams, 6 + 2 + 2 + 2 + 2 + 2);
    return g;
}

Test(sgd, momentum_and_decay_by_hand)
{
    bp_graph *g = tiny_graph();
    bp_sgd *s;
    cr_assert_eq(bp_sgd_new(g, 0.9, 0.01, &s), BP_OK);
    /* layout: W 0..5, b 6..7, bn.weight 8..9, bn.bias 10..11, mean 12..13, var 14..15 */
    for (size_t i = 0; i < 16; i++) {
        cr_assert_eq(bp_sgd_decays(s, i), i < 6, "element %zu", i);
        cr_assert_eq(bp_sgd_updates(s, i), i < 12, "element %zu", i);
    }
    for (int i = 0; i < 16; i++)
        g->params[i] = 0.5f;
    bp_real g1[16], g2[16];
    for (int i = 0; i < 16; i++) {
        g1[i] = 0.2f;
        g2[i] = -0.1f;
    }
    bp_sgd_step(s, g->params, g1, 0.1);
    /* W: buf = 0.2 + 0.01*0.5 = 0.205, w = 0.5 - 0.1*0.205 = 0.4795
     * b, BN: buf = 0.2, w = 0.5 - 0.02 = 0.48;  running stats untouched */
    cr_assert_float_eq(g->params[0], 0.4795, 1e-7);
    cr_assert_float_eq(g->params[7], 0.48, 1e-7);
    cr_assert_float_eq(g->params[10], 0.48, 1e-7);
    cr_assert_eq(g->params[13], 0.5f);
    bp_sgd_step(s, g->params, g2, 0.05);
    /* W: buf = 0.9*0.205 - 0.1 + 0.01*0.4795 = 0.089295, w = 0.4795 - 0.05*0.089295 = 0.47503525
     * b: buf = 0.9*0.2 - 0.1 = 0.08, w = 0.48 - 0.004 = 0.476 */
    cr_assert_float_eq(g->params[5], 0.47503525, 1e-7);
    cr_assert_float_eq(g->params[6], 0.476, 1e-7);
    cr_assert_float_eq(g->params[9], 0.476, 1e-7);
    cr_assert_eq(g->params[14], 0.5f);
    bp_sgd_free(s);
    cr_assert_eq(bp_sgd_new(g, 1.0, 0, &s), BP_ERR_ARG);
    bp_graph_free(g);
}

Test(sgd, schedule_by_hand)
{
    /* 10 warm-up steps of 100: 0.1 * (t+1)/10, then 0.05 * (1 + cos(pi (t-10)/90)) */
    cr_assert_float_eq(bp_lr_at(0.1, 0, 100, 10), 0.01, 1e-12);
    cr_assert_float_eq(bp_lr_at(0.1, 4, 100, 10), 0.05, 1e-12);
    cr_assert_float_eq(bp_lr_at(0.1, 9, 100, 10), 0.1, 1e-12);
    cr_assert_float_eq(bp_lr_at(0.1, 10, 100, 10), 0.1, 1e-12);
    cr_assert_float_eq(bp_lr_at(0.1, 55, 100, 10), 0.05, 1e-12);
    cr_assert_float_eq(bp_lr_at(0.1, 40, 100, 10), 0.075, 1e-12); /* cos(pi/3) = 1/2 */
    cr_assert_float_eq(bp_lr_at(0.1, 100, 100, 10), 0.0, 1e-12);
    cr_assert_float_eq(bp_lr_at(0.2, 0, 50, 0), 0.2, 1e-12, "no warm-up");
}

Test(augment, shift_and_flip_by_hand)
{
    const bp_real src[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}; /* rows 1 2 3 / 4 5 6 / 7 8 9 */
    bp_real d[9];
    static const struct {
        int dy, dx, flip;
        bp_real want[9];
    } cases[] = {
        {0, 0, 0, {1, 2, 3, 4, 5, 6, 7, 8, 9}},
        {1, 0, 0, {4, 5, 6, 7, 8, 9, 1, 1, 1}},  /* up one row, the minimum below */
        {0, 1, 0, {2, 3, 1, 5, 6, 1, 8, 9, 1}},  /* left one column */
        {0, 0, 1, {3, 2, 1, 6, 5, 4, 9, 8, 7}},  /* mirrored */
        {0, -1, 1, {1, 3, 2, 1, 6, 5, 1, 9, 8}}, /* src(y, 3 - x) */
        {-2, 2, 0, {1, 1, 1, 1, 1, 1, 3, 1, 1}},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        bp_augment(d, src, 1, 3, 3, cases[k].dy, cases[k].dx, cases[k].flip);
        for (int i = 0; i < 9; i++)
            cr_assert_eq(d[i], cases[k].want[i], "case %zu pixel %d: %g", k, i, (double)d[i]);
    }
}

/* ---- with the engine ------------------------------------------------------ */

static bp_dataset train_small, test_small;

static void load_small(void)
{
    bp_data_opts o = bp_data_opts_default();
    o.limit = 512;
    cr_assert_eq(bp_dataset_load("fashion-mnist:train", &o, &train_small), BP_OK, "%s", bp_last_error());
    o.limit = 300;
    cr_assert_eq(bp_dataset_load("fashion-mnist:test", &o, &test_small), BP_OK, "%s", bp_last_error());
}

static void free_small(void)
{
    bp_dataset_free(&train_small);
    bp_dataset_free(&test_small);
}

typedef struct {
    int n;
    double loss[8], acc[8];
} trace;

static int record(void *ctx, const bp_epoch_report *r)
{
    trace *t = ctx;
    t->loss[t->n] = r->loss;
    t->acc[t->n++] = r->test_acc;
    return 0;
}

TestSuite(training, .init = load_small, .fini = free_small, .timeout = 120);

Test(training, sgd_reduces_the_loss)
{
    bp_graph *g;
    cr_assert_eq(bp_arch_build("lenet5", 1, 28, 28, 10, 3, &g), BP_OK);
    double acc0, loss0;
    cr_assert_eq(bp_evaluate(g, &train_small, 128, &acc0, &loss0), BP_OK, "%s", bp_last_error());
    bp_train_opts o = bp_train_opts_default();
    o.epochs = 4;
    o.batch = 64;
    o.lr = 0.05;
    trace t = {0};
    o.progress = record;
    o.ctx = &t;
    bp_epoch_report last;
    cr_assert_eq(bp_train(g, &train_small, &test_small, &o, &last), BP_OK, "%s", bp_last_error());
    cr_assert_eq(t.n, 4);
    double acc1, loss1;
    cr_assert_eq(bp_evaluate(g, &train_small, 128, &acc1, &loss1), BP_OK);
    /* an untrained net sits near ln 10 = 2.30 */
    cr_assert_gt(loss0, 1.5, "initial loss %g", loss0);
    cr_assert_lt(loss1, 0.75 * loss0, "loss %g -> %g", loss0, loss1);
    cr_assert_lt(t.loss[3], t.loss[0], "epoch losses %g ... %g", t.loss[0], t.loss[3]);
    cr_assert_gt(acc1, 0.6, "train accuracy after 4 short epochs: %g", acc1);
    cr_assert_gt(last.test_acc, 0.5, "test accuracy %g", last.test_acc);
    bp_graph_free(g);
}

static bp_graph *train_resnet(unsigned long seed, int augment)
{
    bp_graph *g;
    cr_assert_eq(bp_arch_build("resnet8", 1, 28, 28, 10, seed, &g), BP_OK);
    bp_dataset sub = train_small;
    sub.n = 96;
    bp_train_opts o = bp_train_opts_default();
    o.epochs = 1;
    o.batch = 32;
    o.seed = seed;
    o.augment = augment;
    cr_assert_eq(bp_train(g, &sub, NULL, &o, NULL), BP_OK, "%s", bp_last_error());
    return g;
}

Test(training, same_seed_same_weights)
{
    bp_graph *a = train_resnet(5, 1), *b = train_resnet(5, 1), *c = train_resnet(6, 1);
    size_t differ = 0;
    for (size_t i = 0; i < a->nparams; i++)
        differ += a->params[i] != b->params[i];
    cr_assert_eq(differ, 0, "%zu of %zu parameters differ between two runs with seed 5", differ, a->nparams);
    differ = 0;
    for (size_t i = 0; i < a->nparams; i++)
        differ += a->params[i] != c->params[i];
    cr_assert_gt(differ, a->nparams / 2, "another seed trains another net");
    /* BN running statistics moved away from (0, 1) in training mode */
    const bp_value *rv = &a->values[bp_graph_find(a, "layer1.0.bn1.running_var")];
    cr_assert_neq(a->params[rv->offset], 1.0f);
    bp_graph_free(a);
    bp_graph_free(b);
    bp_graph_free(c);
}

Test(training, train_save_load_eval)
{
    bp_graph *g;
    cr_assert_eq(bp_arch_build("mobilenetv2", 1, 28, 28, 10, 2, &g), BP_OK);
    bp_dataset sub = train_small;
    sub.n = 192;
    bp_train_opts o = bp_train_opts_default();
    o.epochs = 1;
    o.batch = 64;
    cr_assert_eq(bp_train(g, &sub, NULL, &o, NULL), BP_OK, "%s", bp_last_error());
    double acc, loss;
    cr_assert_eq(bp_evaluate(g, &test_small, 100, &acc, &loss), BP_OK, "%s", bp_last_error());

    char path[] = "/tmp/bp_train_XXXXXX.onnx";
    int fd = mkstemps(path, 5);
    cr_assert_geq(fd, 0);
    close(fd);
    cr_assert_eq(bp_onnx_save(g, path), BP_OK, "%s", bp_last_error());
    bp_graph *h;
    cr_assert_eq(bp_onnx_load(path, &h), BP_OK, "%s", bp_last_error());
    cr_assert_eq(h->nparams, g->nparams);
    cr_assert_eq(memcmp(h->params, g->params, g->nparams * sizeof(bp_real)), 0, "weights survive the file");
    double acc2, loss2;
    cr_assert_eq(bp_evaluate(h, &test_small, 100, &acc2, &loss2), BP_OK, "%s", bp_last_error());
    cr_assert_eq(acc2, acc, "accuracy %g before saving, %g after loading", acc, acc2);
    cr_assert_float_eq(loss2, loss, 1e-6);

    /* the streaming evaluation (what `bitplan eval` runs) agrees */
    bp_data_opts d = bp_data_opts_default();
    d.limit = 300;
    bp_stream *s;
    cr_assert_eq(bp_stream_open("fashion-mnist:test", &d, &s), BP_OK);
    int n;
    double acc3;
    cr_assert_eq(bp_evaluate_stream(h, s, 64, &acc3, NULL, &n), BP_OK, "%s", bp_last_error());
    cr_assert_eq(n, 300);
    cr_assert_eq(acc3, acc);
    bp_stream_close(s);
    unlink(path);
    bp_graph_free(g);
    bp_graph_free(h);
}

Test(training, wrong_input_shape_is_an_error)
{
    bp_graph *g;
    cr_assert_eq(bp_arch_build("lenet5", 1, 32, 32, 10, 1, &g), BP_OK);
    cr_assert_eq(bp_train(g, &train_small, NULL, NULL, NULL), BP_ERR_SHAPE);
    cr_assert(strstr(bp_last_error(), "1x28x28") && strstr(bp_last_error(), "32"), "%s", bp_last_error());
    double acc;
    cr_assert_eq(bp_evaluate(g, &test_small, 100, &acc, NULL), BP_ERR_SHAPE);
    bp_graph_free(g);
}
