/* arch.h — the built-in architectures `bitplan train --arch` knows.
 *
 * Each builder makes a graph for inputs (C, H, W) and `classes` outputs with
 * PyTorch-style parameter names ("layer1.0.conv1.weight", "bn1.running_mean"),
 * so a model trained here and one exported from the same torch module read
 * alike in every report. Parameters come out initialized by bp_init_params()
 * with `seed` (Kaiming normal weights, zero biases, BN scale 1, shift 0,
 * running mean 0, running variance 1). The input value is "input" with a
 * symbolic batch (dims[0] = -1); the output is the last Gemm's, (N, classes).
 *
 *   lenet5       conv5x5(6, pad 2)-ReLU-maxpool2, conv5x5(16)-ReLU-maxpool2,
 *                fc 120-ReLU, fc 84-ReLU, fc classes (LeNet-5 with ReLU and
 *                max pooling; 61,706 parameters at 1x28x28, 10 classes)
 *   resnet8      conv3x3(16)-BN-ReLU, three basic blocks (16, 32, 64 channels;
 *                the last two stride 2 with a 1x1 conv + BN shortcut), GAP, fc
 *                (77,754 trainable parameters at 1x28x28, 10 classes)
 *   mobilenetv2  a small MobileNetV2: conv3x3(16, stride 2)-BN-ReLU6, five
 *                inverted residual blocks (t, c, s) = (1,16,1) (4,24,2)
 *                (4,24,1) (4,32,1) (4,32,1) (expansion 1x1-BN-ReLU6,
 *                depthwise 3x3-BN-ReLU6, projection 1x1-BN, Add when shapes
 *                match), 1x1 conv to 128-BN-ReLU6, GAP, fc (32,234
 *                trainable parameters at 1x28x28, 10 classes)
 */
#ifndef BP_ARCH_H
#define BP_ARCH_H

#include "core/graph.h"

/* Builds architecture `name` (one of bp_arch_name(i)); BP_ERR_ARG naming the
 * known ones when it is not. *out is a new graph the caller frees. */
bp_status bp_arch_build(const char *name, int c, int h, int w, int classes, unsigned long seed,
                        bp_graph **out);

/* The architectures, for --help and messages: i from 0 while non-NULL. */
const char *bp_arch_name(int i);
const char *bp_arch_summary(int i);

bp_status bp_arch_lenet5(int c, int h, int w, int classes, bp_graph **out);
bp_status bp_arch_resnet8(int c, int h, int w, int classes, bp_graph **out);
bp_status bp_arch_mobilenetv2(int c, int h, int w, int classes, bp_graph **out);
/* (These three leave parameters zero; bp_arch_build initializes them.) */

/* Initializes every parameter the way training starts: Conv/Gemm weights
 * Kaiming normal (std sqrt(2 / fan_in); sqrt(1 / fan_in) for the layer that
 * produces the graph output, which no ReLU follows), biases 0, BN scale 1,
 * shift 0, running mean 0, running variance 1. Deterministic for a seed
 * (GSL's mt19937). Parameters no node reads as such are left alone. */
bp_status bp_init_params(bp_graph *g, unsigned long seed);

#endif
