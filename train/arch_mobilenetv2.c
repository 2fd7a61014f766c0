/* A small MobileNetV2 for 28x28 inputs (stride-2 stem, five blocks), named like torchvision's
 * (features.N.conv.0.0 expansion, .conv.1.0 depthwise, .conv.2 projection). */
#include <stdio.h>

#include "train/arch.h"
#include "train/arch_util.h"

/* Inverted residual: 1x1 expand (t x) - BN - ReLU6, depthwise 3x3 - BN -
 * ReLU6, 1x1 project - BN (linear bottleneck), plus the input when stride 1
 * and the channels match. With t = 1 there is no expansion conv and the
 * depthwise conv is conv.0, as in torchvision. */
static int inverted_residual(bp_nb *b, int idx, int x, int cout, int stride, int t)
{
    char n[2][96];
    int cin = bp_nb_channels(b, x), hid = cin * t, y = x, m = 0;
    if (t != 1) {
        snprintf(n[0], sizeof n[0], "features.%d.conv.0.0", idx);
        snprintf(n[1], sizeof n[1], "features.%d.conv.0.1", idx);
        y = bp_nb_relu6(b, bp_nb_bn(b, n[1], bp_nb_conv(b, n[0], y, hid, 1, 1, 0, 1, 0)));
        m = 1;
    }
    snprintf(n[0], sizeof n[0], "features.%d.conv.%d.0", idx, m);
    snprintf(n[1], sizeof n[1], "features.%d.conv.%d.1", idx, m);
    y = bp_nb_relu6(b, bp_nb_bn(b, n[1], bp_nb_conv(b, n[0], y, hid, 3, stride, 1, hid, 0)));
    snprintf(n[0], sizeof n[0], "features.%d.conv.%d", idx, m + 1);
    snprintf(n[1], sizeof n[1], "features.%d.conv.%d", idx, m + 2);
    y = bp_nb_bn(b, n[1], bp_nb_conv(b, n[0], y, cout, 1, 1, 0, 1, 0));
    return stride == 1 && cin == cout ? bp_nb_add(b, y, x) : y;
}

/* (expansion, channels, stride) per block. The stem has stride 2 as in
 * MobileNetV2, so the blocks run at 14x14 and 7x7: at full 28x28 resolution
 * the expanded tensors made an epoch cost three times a ResNet-8 epoch. */
static const int blocks[][3] = {
    {1, 16, 1}, {4, 24, 2}, {4, 24, 1}, {4, 32, 1}, {4, 32, 1},
};

bp_status bp_arch_mobilenetv2(int c, int h, int w, int classes, bp_graph **out)
{
    bp_nb b;
    *out = NULL;
    if (bp_nb_begin(&b, c, h, w))
        return b.st;
    int x = bp_nb_relu6(&b, bp_nb_bn(&b, "features.0.1",
                                     bp_nb_conv(&b, "features.0.0", b.g->input, 16, 3, 2, 1, 1, 0)));
    int nb = (int)(sizeof blocks / sizeof *blocks);
    for (int i = 0; i < nb; i++)
        x = inverted_residual(&b, i + 1, x, blocks[i][1], blocks[i][2], blocks[i][0]);
    char n[2][32];
    snprintf(n[0], sizeof n[0], "features.%d.0", nb + 1);
    snprintf(n[1], sizeof n[1], "features.%d.1", nb + 1);
    x = bp_nb_relu6(&b, bp_nb_bn(&b, n[1], bp_nb_conv(&b, n[0], x, 128, 1, 1, 0, 1, 0)));
    x = bp_nb_flatten(&b, bp_nb_gap(&b, x));
    x = bp_nb_linear(&b, "classifier.1", x, classes);
    return bp_nb_end(&b, x, out);
}
