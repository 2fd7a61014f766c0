/* resnet18.h — an ImageNet-shaped ResNet-18 graph for scale tests and
 * benchmarks (docs/MPI.md): torchvision's resnet18 layer for layer (7x7/2
 * stem, four stages of two basic blocks with 64/128/256/512 channels, GAP,
 * fc), 11,689,512 parameters at 3x224x224 with 1000 classes. One difference:
 * the stem's 3x3/2 max pool with padding 1 is a 2x2/2 max pool here (the
 * graph builders have no padded pooling); feature maps are the same
 * 56/28/14/7. Parameters are left zero: bp_init_params() fills them. Not one
 * of `bitplan train --arch` (too big to train on Fashion-MNIST). */
#ifndef BP_RESNET18_H
#define BP_RESNET18_H

#include "core/graph.h"

bp_status bp_arch_resnet18(int c, int h, int w, int classes, bp_graph **out);

#endif
