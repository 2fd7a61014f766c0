/* ResNet-8 for small images: a 3x3 stem and three stages of one basic block
 * (16, 32, 64 channels), named like torchvision's ResNet so that layer names
 * match a PyTorch export of the same module. */
#include "train/arch.h"
#include "train/arch_util.h"

bp_status bp_arch_resnet8(int c, int h, int w, int classes, bp_graph **out)
{
    bp_nb b;
    *out = NULL;
    if (bp_nb_begin(&b, c, h, w))
        return b.st;
    int x = bp_nb_relu(&b, bp_nb_bn(&b, "bn1", bp_nb_conv(&b, "conv1", b.g->input, 16, 3, 1, 1, 1, 0)));
    x = bp_nb_basic_block(&b, "layer1.0", x, 16, 1);
    x = bp_nb_basic_block(&b, "layer2.0", x, 32, 2);
    x = bp_nb_basic_block(&b, "layer3.0", x, 64, 2);
    x = bp_nb_flatten(&b, bp_nb_gap(&b, x));
    x = bp_nb_linear(&b, "fc", x, classes);
    return bp_nb_end(&b, x, out);
}
