/* ResNet-8 for small images: a 3x3 stem and three stages of one basic block
 * (16, 32, 64 channels), named like torchvision's ResNet so that layer names
 * match a PyTorch export of the same module. */
#include <stdio.h>

#include "train/arch.h"
#include "train/arch_util.h"

/* torchvision BasicBlock: conv3x3-BN-ReLU-conv3x3-BN, plus the input (through
 * a 1x1 conv + BN "downsample" when the shape changes), then ReLU. */
static int basic_block(bp_nb *b, const char *name, int x, int cout, int stride)
{
    char n[5][96];
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

bp_status bp_arch_resnet8(int c, int h, int w, int classes, bp_graph **out)
{
    bp_nb b;
    *out = NULL;
    if (bp_nb_begin(&b, c, h, w))
        return b.st;
    int x = bp_nb_relu(&b, bp_nb_bn(&b, "bn1", bp_nb_conv(&b, "conv1", b.g->input, 16, 3, 1, 1, 1, 0)));
    x = basic_block(&b, "layer1.0", x, 16, 1);
    x = basic_block(&b, "layer2.0", x, 32, 2);
    x = basic_block(&b, "layer3.0", x, 64, 2);
    x = bp_nb_flatten(&b, bp_nb_gap(&b, x));
    x = bp_nb_linear(&b, "fc", x, classes);
    return bp_nb_end(&b, x, out);
}
