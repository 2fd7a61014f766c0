/* arch_util.h — private to the builders (arch_*.c): one call per PyTorch
 * module. A builder carries a sticky error: after the first failure every
 * call returns -1 without touching the graph, so a builder reads as a plain
 * list of layers and checks once at the end. */
#ifndef BP_ARCH_UTIL_H
#define BP_ARCH_UTIL_H

#include "core/graph.h"

typedef struct {
    bp_graph *g;
    bp_status st; /* first failure, BP_OK while none */
    int seq;      /* numbers the parameter-less nodes ("relu_3") */
} bp_nb;

bp_status bp_nb_begin(bp_nb *b, int c, int h, int w); /* new graph with "input" */
bp_status bp_nb_end(bp_nb *b, int logits, bp_graph **out); /* frees the graph on failure */

/* module "name": weight "name.weight" (cout, cin/group, k, k) and, with bias,
 * "name.bias" */
int bp_nb_conv(bp_nb *b, const char *name, int x, int cout, int k, int stride, int pad, int group,
               int bias);
/* BatchNormalization with "name.weight/.bias/.running_mean/.running_var" */
int bp_nb_bn(bp_nb *b, const char *name, int x);
/* Gemm with transB, weight (out, in) as torch.nn.Linear stores it */
int bp_nb_linear(bp_nb *b, const char *name, int x, int out);
int bp_nb_relu(bp_nb *b, int x);
int bp_nb_relu6(bp_nb *b, int x);
int bp_nb_add(bp_nb *b, int x, int y);
int bp_nb_maxpool(bp_nb *b, int x, int k, int stride);
int bp_nb_gap(bp_nb *b, int x);
int bp_nb_flatten(bp_nb *b, int x);
/* Channels of an activation (dims[1]). */
int bp_nb_channels(const bp_nb *b, int x);
/* torchvision BasicBlock "name" (name.conv1, .bn1, .conv2, .bn2 and, when the
 * shape changes, .downsample.0/.1); returns the block's output. */
int bp_nb_basic_block(bp_nb *b, const char *name, int x, int cout, int stride);

#endif
