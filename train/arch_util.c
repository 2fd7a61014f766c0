/* Module-at-a-time graph building for the built-in architectures. */
#include "train/arch_util.h"

#include <stdio.h>
#include <string.h>

bp_status bp_nb_begin(bp_nb *b, int c, int h, int w)
{
    memset(b, 0, sizeof *b);
    if (c < 1 || h < 1 || w < 1)
        return b->st = bp_error(BP_ERR_ARG, "input shape %dx%dx%d is empty", c, h, w);
    b->g = bp_graph_new();
    if (!b->g)
        return b->st = bp_error(BP_ERR_NOMEM, "out of memory for a graph");
    int64_t d[4] = {-1, c, h, w}; /* symbolic batch */
    if (bp_graph_add_input(b->g, "input", 4, d) < 0)
        b->st = BP_ERR_NOMEM;
    return b->st;
}

bp_status bp_nb_end(bp_nb *b, int logits, bp_graph **out)
{
    *out = NULL;
    if (!b->st && logits >= 0)
        b->g->output = logits;
    if (b->st) {
        bp_graph_free(b->g);
        b->g = NULL;
        return b->st;
    }
    *out = b->g;
    return BP_OK;
}

/* Records the status of a failed add (bp_last_error already says why). */
static int check(bp_nb *b, int id)
{
    if (id < 0 && !b->st)
        b->st = BP_ERR_SHAPE;
    return id;
}

static int param(bp_nb *b, const char *mod, const char *what, int ndim, const int64_t *d)
{
    char name[192];
    snprintf(name, sizeof name, "%s.%s", mod, what);
    return check(b, bp_graph_add_param(b->g, name, ndim, d, NULL));
}

static int node(bp_nb *b, bp_op op, const char *name, const int *in, int nin, const bp_attrs *a)
{
    char auto_name[64];
    if (!name) {
        snprintf(auto_name, sizeof auto_name, "%s_%d", bp_op_name(op), b->seq++);
        name = auto_name;
    }
    return check(b, bp_graph_add_node(b->g, op, name, in, nin, name, a));
}

int bp_nb_channels(const bp_nb *b, int x)
{
    return x < 0 ? 0 : (int)b->g->values[x].dims[1];
}

int bp_nb_conv(bp_nb *b, const char *name, int x, int cout, int k, int stride, int pad, int group,
               int bias)
{
    if (b->st)
        return -1;
    int cin = bp_nb_channels(b, x);
    int64_t wd[4] = {cout, cin / group, k, k}, bd[1] = {cout};
    int in[3] = {x, param(b, name, "weight", 4, wd), -1};
    if (bias)
        in[2] = param(b, name, "bias", 1, bd);
    if (b->st)
        return -1;
    bp_attrs a = bp_attrs_default();
    a.kernel[0] = a.kernel[1] = k;
    a.stride[0] = a.stride[1] = stride;
    a.pads[0] = a.pads[1] = a.pads[2] = a.pads[3] = pad;
    a.group = group;
    return node(b, BP_OP_CONV, name, in, bias ? 3 : 2, &a);
}

int bp_nb_bn(bp_nb *b, const char *name, int x)
{
    if (b->st)
        return -1;
    int64_t d[1] = {bp_nb_channels(b, x)};
    int in[5] = {x, param(b, name, "weight", 1, d), param(b, name, "bias", 1, d),
                 param(b, name, "running_mean", 1, d), param(b, name, "running_var", 1, d)};
    if (b->st)
        return -1;
    b->g->values[in[3]].trainable = 0;
    b->g->values[in[4]].trainable = 0;
    bp_attrs a = bp_attrs_default(); /* eps 1e-5, momentum 0.9 as torch's 0.1 */
    return node(b, BP_OP_BN, name, in, 5, &a);
}

int bp_nb_linear(bp_nb *b, const char *name, int x, int out)
{
    if (b->st)
        return -1;
    const bp_value *v = &b->g->values[x];
    int64_t wd[2] = {out, v->dims[v->ndim - 1]}, bd[1] = {out};
    int in[3] = {x, param(b, name, "weight", 2, wd), param(b, name, "bias", 1, bd)};
    if (b->st)
        return -1;
    bp_attrs a = bp_attrs_default();
    a.trans_b = 1;
    return node(b, BP_OP_GEMM, name, in, 3, &a);
}

int bp_nb_relu(bp_nb *b, int x)
{
    return b->st ? -1 : node(b, BP_OP_RELU, NULL, &x, 1, NULL);
}

int bp_nb_relu6(bp_nb *b, int x)
{
    if (b->st)
        return -1;
    bp_attrs a = bp_attrs_default();
    a.clip_min = 0.0f;
    a.clip_max = 6.0f;
    return node(b, BP_OP_CLIP, NULL, &x, 1, &a);
}

int bp_nb_add(bp_nb *b, int x, int y)
{
    int in[2] = {x, y};
    return b->st ? -1 : node(b, BP_OP_ADD, NULL, in, 2, NULL);
}

int bp_nb_maxpool(bp_nb *b, int x, int k, int stride)
{
    if (b->st)
        return -1;
    bp_attrs a = bp_attrs_default();
    a.kernel[0] = a.kernel[1] = k;
    a.stride[0] = a.stride[1] = stride;
    return node(b, BP_OP_MAXPOOL, NULL, &x, 1, &a);
}

int bp_nb_gap(bp_nb *b, int x)
{
    return b->st ? -1 : node(b, BP_OP_GAP, NULL, &x, 1, NULL);
}

int bp_nb_flatten(bp_nb *b, int x)
{
    return b->st ? -1 : node(b, BP_OP_FLATTEN, NULL, &x, 1, NULL);
}

/* torchvision BasicBlock: conv3x3-BN-ReLU-conv3x3-BN, plus the input (through
 * a 1x1 conv + BN "downsample" when the shape changes), then ReLU. Shared by
 * ResNet-8 and ResNet-18 so both name their layers exactly as PyTorch does. */
int bp_nb_basic_block(bp_nb *b, const char *name, int x, int cout, int stride)
{
    char n[4][96];
    snprintf(n[0], sizeof n[0], "%s.conv1", name);
    snprintf(n[1], sizeof n[1], "%s.bn1", name);
    snprintf(n[2], sizeof n[2], "%s.conv2", name);
    snprintf(n[3], sizeof n[3], "%s.bn2", name);
    int y = bp_nb_relu(b, bp_nb_bn(b, n[1], bp_nb_conv(b, n[0], x, cout, 3, stride, 1, 1, 0)));
    y = bp_nb_bn(b, n[3], bp_nb_conv(b, n[2], y, cout, 3, 1, 1, 1, 0));
    int sc = x;
    if (stride != 1 || bp_nb_channels(b, x) != cout) {
        snprintf(n[0], sizeof n[0], "%s.downsample.0", name);
        snprintf(n[1], sizeof n[1], "%s.downsample.1", name);
        sc = bp_nb_bn(b, n[1], bp_nb_conv(b, n[0], x, cout, 1, stride, 0, 1, 0));
    }
    return bp_nb_relu(b, bp_nb_add(b, y, sc));
}
