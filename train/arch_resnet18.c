/* ResNet-18 as torchvision builds it (resnet18.h), named like it. */
#include <stdio.h>

#include "train/arch_util.h"
#include "train/resnet18.h"

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
            x = bp_nb_basic_block(&b, name, x, ch[s], s > 0 && i == 0 ? 2 : 1);
        }
    x = bp_nb_flatten(&b, bp_nb_gap(&b, x));
    x = bp_nb_linear(&b, "fc", x, classes);
    return bp_nb_end(&b, x, out);
}
