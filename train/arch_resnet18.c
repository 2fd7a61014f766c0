/* ResNet-18 as torchvision builds it (resnet18.h), named like it. */
#include <stdio.h>

#include "train/arch_util.h"
#include "train/resnet18.h"

/* BasicBlock: conv3x3-BN-ReLU-conv3x3-BN, plus the input (through a 1x1
 * conv + BN "downsample" when the shape changes), then ReLU. */
static int block(bp_nb *b, const char *name, int x, int cout, int stride)
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

bp_status bp_arch_resnet18(int c, int h, int w, int classes, bp_graph **out)
{
    bp_nb b;
    *out = NULL;
    if (bp_nb_begin(&b, c, h, w))
        return b.st;
    int x = bp_nb_relu(&b, bp_nb_bn(&b, "bn1", bp_nb_conv(&b, "conv1", b.g->input, 64, 7, 2, 3, 1, 0)));
    x = bp_nb_maxpool(&b, x, 2, 2);
    static const int ch[4] = {64, 128, 256, 512};
    for (int s = 0; s < 4; s++)
        for (int i = 0; i < 2; i++) {
            char name[32];
            snprintf(name, sizeof name, "layer%d.%d", s + 1, i);
            x = block(&b, name, x, ch[s], s > 0 && i == 0 ? 2 : 1);
        }
    x = bp_nb_flatten(&b, bp_nb_gap(&b, x));
    x = bp_nb_linear(&b, "fc", x, classes);
    return bp_nb_end(&b, x, out);
}
