/* LeNet-5 in its modern form (ReLU, max pooling), as the PyTorch tutorials
 * write it: conv1 6@5x5 pad 2, pool, conv2 16@5x5, pool, fc1 120, fc2 84, fc3. */
#include "train/arch.h"
#include "train/arch_util.h"

bp_status bp_arch_lenet5(int c, int h, int w, int classes, bp_graph **out)
{
    bp_nb b;
    *out = NULL;
    if (bp_nb_begin(&b, c, h, w))
        return b.st;
    int x = b.g->input;
    x = bp_nb_maxpool(&b, bp_nb_relu(&b, bp_nb_conv(&b, "conv1", x, 6, 5, 1, 2, 1, 1)), 2, 2);
    x = bp_nb_maxpool(&b, bp_nb_relu(&b, bp_nb_conv(&b, "conv2", x, 16, 5, 1, 0, 1, 1)), 2, 2);
    x = bp_nb_flatten(&b, x);
    x = bp_nb_relu(&b, bp_nb_linear(&b, "fc1", x, 120));
    x = bp_nb_relu(&b, bp_nb_linear(&b, "fc2", x, 84));
    x = bp_nb_linear(&b, "fc3", x, classes);
    return bp_nb_end(&b, x, out);
}
