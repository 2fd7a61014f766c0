/* The table of built-in architectures. */
#include <stdio.h>
#include <string.h>

#include "train/arch.h"

static const struct {
    const char *name, *summary;
    bp_status (*build)(int c, int h, int w, int classes, bp_graph **out);
} archs[] = {
    {"lenet5", "LeNet-5 style CNN (2 conv + 3 fc, ReLU, max pooling)", bp_arch_lenet5},
    {"resnet8", "ResNet-8: 3x3 stem, basic blocks 16-32-64 with BN and 1x1 downsample", bp_arch_resnet8},
    {"mobilenetv2", "small MobileNetV2: inverted residuals, depthwise 3x3, ReLU6", bp_arch_mobilenetv2},
};
enum { NARCH = sizeof archs / sizeof *archs };

const char *bp_arch_name(int i)
{
    return i >= 0 && i < NARCH ? archs[i].name : NULL;
}

const char *bp_arch_summary(int i)
{
    return i >= 0 && i < NARCH ? archs[i].summary : NULL;
}

bp_status bp_arch_build(const char *name, int c, int h, int w, int classes, unsigned long seed,
                        bp_graph **out)
{
    *out = NULL;
    if (classes < 1)
        return bp_error(BP_ERR_ARG, "architecture '%s': %d classes", name, classes);
    for (int i = 0; i < NARCH; i++) {
        if (strcmp(name, archs[i].name))
            continue;
        bp_graph *g;
        bp_status st = archs[i].build(c, h, w, classes, &g);
        if (st)
            return bp_error_wrap(st, "building %s for %dx%dx%d inputs", name, c, h, w);
        if ((st = bp_init_params(g, seed))) {
            bp_graph_free(g);
            return st;
        }
        *out = g;
        return BP_OK;
    }
    return bp_error(BP_ERR_ARG, "unknown architecture '%s' (known: lenet5, resnet8, mobilenetv2)", name);
}
